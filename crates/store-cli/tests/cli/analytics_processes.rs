//! Analytics commands as several processes at once on one home, and killed part-way (SIGKILL):
//! concurrent commands take turns on the analytics file and keep every import that succeeded
//! (docs/guarantees.md "Analytics files"); a killed import leaves the table as it was (issue 5, SPEC §8);
//! a killed export never leaves a partial target (docs/guarantees.md "Exports stage beside the target").
//!
//! From QA (h20): before analytics files were opened as typed DuckDB paths, imports that
//! waited for the file while another committed and closed could open the older checkpoint,
//! and imports that had printed "imported 20000 rows" were gone.

use std::time::Duration;

use crate::support::{Background, Home, fails_after_a_300ms_busy_timeout, names_in};

/// `count(*)` (or any one integer) of `sql`, run as `store --json sql`.
fn scalar(home: &Home, sql: &str) -> i64 {
    let out = home.json(&["sql", sql]);
    out["rows"][0][0]
        .as_i64()
        .unwrap_or_else(|| panic!("{sql}: {out}"))
}

/// Waits up to two minutes for a background command; whether it exited 0.
fn succeeded(mut command: Background) -> bool {
    let status = command.wait_exit(Duration::from_secs(120));
    status.expect("the command ended within two minutes").success()
}

/// `--busy-timeout` bounds the wait for an analytics file another process holds: the command
/// fails busy once it has passed (not after the default 5 s), and succeeds once the holder
/// lets go.
#[test]
fn busy_timeout_sets_how_long_a_command_waits_for_the_analytics_file() {
    let home = Home::new();
    home.ok(&["sql", "CREATE TABLE t AS SELECT 1 AS x"]);
    let held = store::analytics::Analytics::open(home.path().join("workspace.duckdb")).unwrap();
    let out = fails_after_a_300ms_busy_timeout(&home, &["sql", "SELECT x FROM t"]);
    assert!(
        out.stderr.contains("another process has this database open"),
        "{}",
        out.stderr
    );
    held.close().unwrap();
    assert_eq!(
        home.json(&["--busy-timeout", "300ms", "sql", "SELECT x FROM t"])["rows"],
        serde_json::json!([[1]])
    );
}

/// Eighteen `store import` processes on one home, each a CSV of 20,000 rows tagged with its
/// number, started 15 ms apart, each willing to wait two minutes for its turn; four rounds.
/// Every import succeeds and has its rows in the table.
#[test]
fn concurrent_cli_imports_keep_every_import_that_succeeded() {
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<_> = (0..18)
        .map(|i| {
            let path = dir.path().join(format!("s{i}.csv"));
            let mut text = String::from("id,src\n");
            for j in 0..20_000 {
                text.push_str(&format!("{j},{i}\n"));
            }
            std::fs::write(&path, text).unwrap();
            path
        })
        .collect();
    for round in 0..4 {
        let home = Home::new();
        home.ok(&["sql", "CREATE TABLE t (id BIGINT, src BIGINT)"]);
        let imports: Vec<Background> = files
            .iter()
            .map(|f| {
                let import = home.spawn(&["--busy-timeout", "2m", "import", "t", f.to_str().unwrap()]);
                std::thread::sleep(Duration::from_millis(15));
                import
            })
            .collect();
        let ok: Vec<i64> = imports
            .into_iter()
            .enumerate()
            .filter_map(|(i, import)| succeeded(import).then_some(i as i64))
            .collect();
        assert_eq!(
            ok.len(),
            files.len(),
            "round {round}: only imports {ok:?} succeeded"
        );
        let got = home.json(&["sql", "SELECT DISTINCT src FROM t ORDER BY 1"]);
        let got: Vec<i64> = got["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r[0].as_i64().unwrap())
            .collect();
        let lost: Vec<_> = ok.iter().filter(|i| !got.contains(i)).collect();
        assert!(
            lost.is_empty(),
            "round {round}: imports that exited 0 are gone: {lost:?}; the table holds {got:?}"
        );
    }
}

/// Issue 5 / SPEC §8: imports are atomic. `store import` of a 600,000-row CSV killed at several
/// points, creating the table and appending to it: the table is exactly as before or exactly
/// as after, nothing else is left in the home, and the same import then succeeds.
#[test]
fn killed_import_leaves_the_table_as_it_was() {
    const ROWS: i64 = 600_000;
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("big.csv");
    let mut text = String::from("id,model,name,score\n");
    for i in 0..ROWS {
        text.push_str(&format!("{i},m{},name_{i},{}\n", i % 50, i as f64 * 0.5));
    }
    std::fs::write(&csv, text).unwrap();
    let csv = csv.to_str().unwrap();
    for delay in [10u64, 120, 300] {
        for append in [false, true] {
            let home = Home::new();
            home.ok(&["kv", "set", "g", "k", "v"]);
            // The analytics file exists before the kill, so the kill hits the import, not the
            // file's first creation (a file killed mid-creation is moved aside, not deleted:
            // `cli analytics::an_empty_analytics_file_left_by_a_killed_first_open_…`).
            home.ok(&["sql", "SELECT 1"]);
            let before = if append {
                home.ok(&["import", "t", csv]);
                ROWS
            } else {
                0
            };
            let import = home.spawn(&["import", "t", csv]);
            std::thread::sleep(Duration::from_millis(delay));
            import.kill();
            let out = home.run(&["--json", "sql", "SELECT count(*) FROM t"]);
            let n = if out.code == Some(0) {
                out.json()["rows"][0][0].as_i64().unwrap()
            } else {
                assert!(!append, "append, {delay} ms: {}", out.stderr);
                0
            };
            assert!(
                n == before || n == before + ROWS,
                "{delay} ms, append {append}: {n} rows"
            );
            assert_eq!(
                names_in(home.path()),
                ["state.db", "workspace.duckdb"],
                "{delay} ms, append {append}: left in the home"
            );
            home.ok(&["import", "t", csv]);
            assert_eq!(scalar(&home, "SELECT count(*) FROM t"), n + ROWS);
        }
    }
}

/// docs/guarantees.md "Exports stage beside the target": a `store export` killed at several points never
/// leaves a partial file at the target (absent, or the previous whole file), and the rerun
/// succeeds.
#[test]
fn killed_export_never_leaves_a_partial_target() {
    let home = Home::new();
    home.ok(&[
        "sql",
        "CREATE TABLE big AS SELECT range AS id, 'n' || range AS name FROM range(1500000)",
    ]);
    home.ok(&[
        "sql",
        "CREATE TABLE small AS SELECT range AS id, 'x' AS name FROM range(10)",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("o.parquet");
    let t = target.to_str().unwrap();
    let rows = format!("SELECT count(*) FROM read_parquet('{t}')");
    for (round, delay) in [5u64, 50, 100, 150, 200, 250, 300].into_iter().enumerate() {
        let _ = std::fs::remove_file(&target);
        let previous = round % 2 == 1;
        if previous {
            home.ok(&["export", "small", t]);
        }
        let export = home.spawn(&["export", "big", t]);
        std::thread::sleep(Duration::from_millis(delay));
        export.kill();
        if target.exists() {
            let n = scalar(&home, &rows);
            assert!(
                n == 1_500_000 || (previous && n == 10),
                "{delay} ms: the target holds {n} rows"
            );
        }
        home.ok(&["export", "big", t]);
        assert_eq!(scalar(&home, &rows), 1_500_000);
    }
}

/// h129 D2: a split export waited for another export into its directory without bound, so a
/// stalled export hung the next one, and that one's home's analytics with it, whatever
/// `--busy-timeout` said. It gives up after the busy timeout with the busy hint, changing
/// nothing, and runs once the other export's lock is gone.
#[test]
fn a_split_export_waits_for_another_into_its_directory_only_the_busy_timeout() {
    let home = Home::new();
    home.ok(&[
        "sql",
        "CREATE TABLE t AS SELECT range AS id, 'v' || (range % 3) AS k FROM range(30)",
    ]);
    let parent = tempfile::tempdir().unwrap();
    let out = parent.path().join("d");
    // What another export into `d` holds while it runs (see `split/workdirs.rs`).
    let lock = std::fs::File::create(parent.path().join(".d.split.lock")).unwrap();
    lock.lock().unwrap();
    let o = out.to_str().unwrap();
    let refused = fails_after_a_300ms_busy_timeout(&home, &["export-split", "t", "k", o]);
    assert!(
        refused
            .stderr
            .contains("another split export into this directory"),
        "{}",
        refused.stderr
    );
    assert!(refused.stderr.contains("--busy-timeout"), "{}", refused.stderr);
    // The directory it made stays, empty: the export it waited for is to publish into it
    // (h130: removing it made that export fail).
    assert_eq!(names_in(&out), Vec::<String>::new());
    lock.unlock().unwrap();
    home.ok(&["export-split", "t", "k", o]);
    assert_eq!(names_in(&out).len(), 4, "three partitions and the manifest");
}

/// h129 D1: a previous export's partition directory that could not be read (no permission)
/// was reported as "holding files a split export does not write", naming neither the cause
/// nor the right fix. The I/O error is reported, with nothing changed. Runs the binary as
/// `nobody` through `setpriv` (root reads any directory); skips where that is not possible.
#[test]
fn an_unreadable_partition_directory_is_reported_as_unreadable() {
    use std::os::unix::fs::PermissionsExt;
    let root = std::process::Command::new("id").arg("-u").output();
    let setpriv = std::process::Command::new("setpriv").arg("--version").output();
    if !root.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0") || setpriv.is_err() {
        eprintln!("SKIP: needs root and setpriv");
        return;
    }
    let base = tempfile::tempdir().unwrap();
    let (home, out) = (base.path().join("home"), base.path().join("out"));
    std::fs::create_dir(&home).unwrap();
    for dir in [base.path(), &home] {
        std::os::unix::fs::chown(dir, Some(65534), Some(65534)).unwrap();
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let as_nobody = |args: &[&str]| {
        std::process::Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                crate::support::BIN,
                "--home",
            ])
            .arg(&home)
            .args(args)
            .env_remove("STORE_HOME")
            .env_remove("XDG_DATA_HOME")
            .output()
            .expect("run setpriv")
    };
    let sql = "CREATE TABLE t AS SELECT range AS id, 'v' || (range % 4) AS k FROM range(40)";
    assert!(as_nobody(&["sql", sql]).status.success());
    let o = out.to_str().unwrap();
    assert!(as_nobody(&["export-split", "t", "k", o]).status.success());
    let part = out.join("k=v2");
    std::fs::set_permissions(&part, std::fs::Permissions::from_mode(0o000)).unwrap();
    let refused = as_nobody(&["export-split", "t", "k", o]);
    std::fs::set_permissions(&part, std::fs::Permissions::from_mode(0o755)).unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(
        !stderr.contains("holds files a split export does not write"),
        "{stderr}"
    );
    assert!(
        stderr.contains("Permission denied") && stderr.contains("make it readable"),
        "{stderr}"
    );
    assert_eq!(names_in(&part), ["data.parquet"]);
}
