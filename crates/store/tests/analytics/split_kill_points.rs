//! Split exports cut short at exact points of their publish, their in-process rollback, or the
//! next export's recovery (Linux). docs/guarantees.md: a manifest, when present, lists exactly the
//! partitions beside it; and the next export ends whole.
//!
//! A child run of this binary ([`child_exports_when_asked`]) does one split export under
//! `strace`, which kills it (`inject=…:signal=KILL`) or fails the call (`error=ENOSPC`) on entry
//! to a chosen syscall on a chosen path (`-P`; for a rename, its first path). The child runs in
//! its own pid namespace (`unshare -p`), so its pid, and with it the name of its set-aside
//! directory `.out.replaced-<pid>-<n>`, is known in advance. The tests need root, `unshare` and
//! `strace`; where one is missing each says it was skipped and why.
//!
//! The tests came from the review of the manifest order (h23): their doc comments describe the
//! defect each was written against (past behaviour); the test name states the behaviour it pins
//! now.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use store::analytics::{Analytics, Value};

use crate::common::child_test_command;
use crate::support::names_in;

/// The child test, as `--exact` names it.
const CHILD: &str = "split_kill_points::child_exports_when_asked";
/// Set for the child: the database file, the output directory, the column to split on (`k`
/// unless set).
const DB_ENV: &str = "SPLIT_KILL_POINTS_DB";
const OUT_ENV: &str = "SPLIT_KILL_POINTS_OUT";
const COLUMN_ENV: &str = "SPLIT_KILL_POINTS_COLUMN";
/// What the child prints once its export returned, before the result.
const RESULT: &str = "SPLIT-KILL-POINTS-RESULT ";

/// Not a test of its own: the child every test here runs under `strace`. It returns at once
/// unless `SPLIT_KILL_POINTS_DB` names a database, whose table `t` it then exports split into
/// `SPLIT_KILL_POINTS_OUT`, printing the result.
#[test]
#[ignore = "child of the split_kill_points tests: run by them under strace"]
fn child_exports_when_asked() {
    let (Some(db), Some(out)) = (std::env::var_os(DB_ENV), std::env::var_os(OUT_ENV)) else {
        return;
    };
    let column = std::env::var(COLUMN_ENV).unwrap_or_else(|_| "k".into());
    let db = Analytics::open(db).expect("child: open");
    let result = db.export_split_parquet("t", out, &column);
    println!("{RESULT}{:?}", result.map(|m| m.files.len()));
}

/// Why kill points cannot be injected here, if they cannot.
fn missing_tools() -> Option<String> {
    let root = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .is_some_and(|l| l.split_whitespace().nth(2) == Some("0"));
    if !root {
        return Some("not running as root".into());
    }
    for (tool, flag) in [("unshare", "--version"), ("strace", "-V")] {
        if !Command::new(tool)
            .arg(flag)
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return Some(format!("`{tool}` is not installed"));
        }
    }
    let works = Command::new("unshare")
        .args([
            "-p",
            "-f",
            "--mount-proc",
            "strace",
            "-f",
            "-qq",
            "-o",
            "/dev/null",
        ])
        .args(["-e", "inject=getpid:error=EPERM", "true"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !works {
        return Some("`unshare -p -f --mount-proc strace … true` fails here".into());
    }
    None
}

/// Whether this test can run; if not, says so (naming the test) and why.
fn kill_points_available() -> bool {
    static MISSING: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let Some(why) = MISSING.get_or_init(missing_tools) else {
        return true;
    };
    let test = std::thread::current()
        .name()
        .unwrap_or("split_kill_points")
        .to_string();
    eprintln!("SKIP {test}: it needs root, `unshare` and `strace`: {why}");
    false
}

/// How a child export ended: its stdout and stderr.
struct Run(String);

impl Run {
    /// Killed before its export returned.
    fn cut_short(&self) -> bool {
        !self.0.contains(RESULT)
    }

    /// Its export returned an error.
    fn failed(&self) -> bool {
        self.0.contains(&format!("{RESULT}Err"))
    }
}

/// Runs [`child_exports_when_asked`] on `db`'s table `t` into `out` (split on `column`), in a new
/// pid namespace under `strace` with `strace_args` (path filters and injections).
fn export_under_strace(db: &Path, out: &Path, column: &str, strace_args: &[String]) -> Run {
    let child = child_test_command(CHILD);
    let mut cmd = Command::new("unshare");
    cmd.args([
        "-p",
        "-f",
        "--mount-proc",
        "strace",
        "-f",
        "-qq",
        "-o",
        "/dev/null",
    ])
    .args(strace_args)
    .arg(child.get_program())
    .args(child.get_args())
    .env(DB_ENV, db)
    .env(OUT_ENV, out)
    .env(COLUMN_ENV, column)
    .env("RUST_BACKTRACE", "0");
    let out = cmd.output().expect("run the child under unshare + strace");
    Run(format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

/// strace arguments: each of `paths` as a `-P` filter, then `-e` for each of `exprs`.
fn strace_args<P: AsRef<OsStr>>(paths: impl IntoIterator<Item = P>, exprs: &[&str]) -> Vec<String> {
    let mut args = Vec::new();
    for path in paths {
        args.push("-P".to_string());
        args.push(path.as_ref().to_str().expect("utf-8 path").to_string());
    }
    for expr in exprs {
        args.push("-e".to_string());
        args.push(expr.to_string());
    }
    args
}

/// `leaf` in every set-aside directory a child in a fresh pid namespace can use.
fn in_every_aside(parent: &Path, leaf: &str) -> Vec<PathBuf> {
    (1..=8)
        .flat_map(|pid| (0..12).map(move |n| (pid, n)))
        .map(|(pid, n)| parent.join(format!(".out.replaced-{pid}-{n}")).join(leaf))
        .collect()
}

/// The set-aside directory a killed publish left in `parent`.
fn the_aside(parent: &Path) -> Option<PathBuf> {
    std::fs::read_dir(parent)
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with(".out.replaced-"))
        .map(|e| e.path())
}

/// Fails an `openat` of the `.committed` marker with ENOSPC: the publish rolls back.
fn marker_write_fails(parent: &Path) -> Vec<String> {
    opening_fails(in_every_aside(parent, ".committed"))
}

/// strace arguments that fail with ENOSPC every open of one of `paths`.
fn opening_fails<P: AsRef<OsStr>>(paths: impl IntoIterator<Item = P>) -> Vec<String> {
    strace_args(paths, &["trace=openat", "inject=openat:error=ENOSPC"])
}

/// The partition directories `manifest.json` lists, sorted, or `None` without a manifest.
fn manifest_partitions(out: &Path) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(out.join("manifest.json")).ok()?;
    let manifest: serde_json::Value = serde_json::from_str(&text).expect("manifest is JSON");
    let mut listed: Vec<String> = manifest["files"]
        .as_array()
        .expect("manifest files")
        .iter()
        .map(|f| f["path"].as_str().unwrap().split('/').next().unwrap().to_string())
        .collect();
    listed.sort();
    Some(listed)
}

/// The entries of `out` other than `manifest.json`, sorted.
fn present_partitions(out: &Path) -> Vec<String> {
    let mut present = names_in(out);
    present.retain(|n| n != "manifest.json");
    present
}

/// docs/guarantees.md: a manifest, when present, lists exactly the partitions beside it (and every file it
/// lists is there).
#[track_caller]
fn assert_the_manifest_lists_what_is_beside_it(out: &Path, after: &str) {
    let Some(listed) = manifest_partitions(out) else {
        return;
    };
    assert_eq!(
        listed,
        present_partitions(out),
        "{after} left a manifest that disagrees with the partitions beside it"
    );
    let text = std::fs::read_to_string(out.join("manifest.json")).unwrap();
    let manifest: serde_json::Value = serde_json::from_str(&text).unwrap();
    let missing: Vec<&str> = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .filter(|p| !out.join(p).is_file())
        .collect();
    assert!(
        missing.is_empty(),
        "{after} left a manifest listing missing files: {missing:?}"
    );
}

/// `db_path` holding `t(k INTEGER, n INTEGER)` with three rows (n = 0, 1, 2) for each of `keys`.
fn write_table(db_path: &Path, keys: &[i64]) {
    let db = Analytics::open(db_path).unwrap();
    db.exec_batch("CREATE OR REPLACE TABLE t (k INTEGER, n INTEGER)")
        .unwrap();
    for k in keys {
        for n in 0..3 {
            db.exec("INSERT INTO t VALUES (?, ?)", &[Value::Int(*k), Value::Int(n)])
                .unwrap();
        }
    }
    db.close().unwrap();
}

/// The partition names `k=…` of `keys`, sorted.
fn parts(keys: &[i64]) -> Vec<String> {
    let mut names: Vec<String> = keys.iter().map(|k| format!("k={k}")).collect();
    names.sort();
    names
}

/// The first export (k = 1..3) is back whole: its manifest byte for byte, its partitions, and
/// nothing left beside `out`.
#[track_caller]
fn assert_first_export_back(parent: &Path, out: &Path, manifest: &[u8], context: &str) {
    let now = std::fs::read(out.join("manifest.json")).unwrap();
    assert_eq!(now, manifest, "{context}");
    assert_eq!(present_partitions(out), parts(&[1, 2, 3]), "{context}");
    assert_eq!(names_in(parent), ["db.duckdb", "out"], "{context}");
}

/// A split export of `t` over k = 1, 2, 3 into `parent/out` (done here), then `t` over k = 4, 5
/// left to export next. Returns (database, out).
fn first_export_done(parent: &Path) -> (PathBuf, PathBuf) {
    let db_path = parent.join("db.duckdb");
    let out = parent.join("out");
    write_table(&db_path, &[1, 2, 3]);
    let db = Analytics::open(&db_path).unwrap();
    db.export_split_parquet("t", &out, "k").unwrap();
    db.close().unwrap();
    assert_eq!(manifest_partitions(&out), Some(parts(&[1, 2, 3])));
    write_table(&db_path, &[4, 5]);
    (db_path, out)
}

/// Leaves `parent/out` as a publish killed after it moved the new manifest into place and before
/// it wrote its `.committed` marker: the previous export (k = 1..3) and its manifest set aside,
/// the new partitions (k = 4, 5) and the new manifest in `out`. Returns (database, out, aside).
fn publish_killed_before_its_commit_marker(parent: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let (db_path, out) = first_export_done(parent);
    let args = strace_args(
        in_every_aside(parent, ".committed"),
        &["trace=openat", "inject=openat:signal=KILL"],
    );
    let run = export_under_strace(&db_path, &out, "k", &args);
    assert!(
        run.cut_short(),
        "setup: the child was not killed before .committed:\n{}",
        run.0
    );
    let aside = the_aside(parent).expect("setup: the killed publish left its set-aside directory");
    assert_eq!(manifest_partitions(&out), Some(parts(&[4, 5])), "setup state");
    assert_eq!(present_partitions(&out), parts(&[4, 5]), "setup state");
    assert!(
        aside.join("manifest.json").is_file(),
        "setup: previous manifest aside"
    );
    assert!(aside.join(".moving-in").is_file(), "setup: moving-in marker");
    (db_path, out, aside)
}

/// Kills the next export's recovery of the publish killed in `parent` as it renames the previous
/// manifest back from `aside`, its last step.
fn recovery_killed_as_the_old_manifest_returns(db_path: &Path, out: &Path, aside: &Path) {
    let args = strace_args(
        [aside.join("manifest.json")],
        &[
            "trace=rename,renameat,renameat2",
            "inject=rename,renameat,renameat2:signal=KILL",
        ],
    );
    let run = export_under_strace(db_path, out, "k", &args);
    assert!(
        run.cut_short(),
        "setup: the recovering child was not killed:\n{}",
        run.0
    );
    assert!(
        aside.join("manifest.json").is_file(),
        "setup: killed before the manifest came back"
    );
}

/// The recovery of a publish killed after its new manifest was in place, itself killed just
/// before it puts the previous manifest back, left the new manifest (k = 4, 5, whose partitions
/// recovery had already deleted) over the restored old partitions (k = 1..3): the restore kept
/// the new manifest in `out` while it deleted the new partitions and brought the old ones back,
/// and only replaced it at the end.
#[test]
fn a_recovery_cut_short_never_leaves_a_manifest_over_partitions_it_does_not_list() {
    if !kill_points_available() {
        return;
    }
    let parent = tempfile::tempdir().unwrap();
    let (db_path, out, aside) = publish_killed_before_its_commit_marker(parent.path());
    recovery_killed_as_the_old_manifest_returns(&db_path, &out, &aside);
    assert_the_manifest_lists_what_is_beside_it(&out, "a recovery cut short");
    // And the export after it ends whole, leaving nothing beside `out`.
    let db = Analytics::open(&db_path).unwrap();
    assert_eq!(db.export_split_parquet("t", &out, "k").unwrap().files.len(), 2);
    assert_eq!(manifest_partitions(&out), Some(parts(&[4, 5])));
    assert_eq!(present_partitions(&out), parts(&[4, 5]));
    assert_eq!(names_in(parent.path()), ["db.duckdb", "out"]);
}

/// Another recovery kill point: killed while it deletes the new partitions (on the second
/// removal inside them: the first new partition is gone), the new manifest still listed `k=4`.
#[test]
fn a_recovery_cut_short_while_removing_new_partitions_never_leaves_a_manifest_listing_them() {
    if !kill_points_available() {
        return;
    }
    let parent = tempfile::tempdir().unwrap();
    let (db_path, out, _aside) = publish_killed_before_its_commit_marker(parent.path());
    let args = strace_args(
        [out.join("k=4"), out.join("k=5")],
        &["trace=rmdir,unlinkat", "inject=rmdir,unlinkat:signal=KILL:when=2"],
    );
    let run = export_under_strace(&db_path, &out, "k", &args);
    assert!(
        run.cut_short(),
        "setup: the recovering child was not killed:\n{}",
        run.0
    );
    assert_the_manifest_lists_what_is_beside_it(&out, "a recovery cut short");
}

/// A publish whose `.committed` marker cannot be written rolls back in process; killed during
/// that rollback (on the second partition it moves back out), the new manifest was still in
/// `out` although one of its partitions had already left: the rollback removed the new manifest
/// only after moving the new partitions out.
#[test]
fn a_rollback_cut_short_never_leaves_the_new_manifest_over_partitions_that_left() {
    if !kill_points_available() {
        return;
    }
    let parent = tempfile::tempdir().unwrap();
    let (db_path, out) = first_export_done(parent.path());
    let mut filtered = in_every_aside(parent.path(), ".committed");
    filtered.push(out.join("k=4"));
    // The first rename from out/k=4 moves it back out during the rollback, after k=5 (moved in
    // last, out first) already left.
    let args = strace_args(
        filtered,
        &[
            "trace=openat,rename,renameat,renameat2",
            "inject=openat:error=ENOSPC",
            "inject=rename,renameat,renameat2:signal=KILL",
        ],
    );
    let run = export_under_strace(&db_path, &out, "k", &args);
    assert!(
        run.cut_short(),
        "setup: the child was not killed during its rollback:\n{}",
        run.0
    );
    assert_the_manifest_lists_what_is_beside_it(&out, "a rollback cut short");
    // And the next export puts everything right.
    let db = Analytics::open(&db_path).unwrap();
    db.export_split_parquet("t", &out, "k").unwrap();
    assert_eq!(manifest_partitions(&out), Some(parts(&[4, 5])));
    assert_eq!(present_partitions(&out), parts(&[4, 5]));
}

/// A publish failing at each of its writes (ENOSPC on the `.committed` marker, on the
/// manifest's temporary file, on the `.moving-in` marker) brings the previous export back whole,
/// manifest included, and leaves no work directory.
#[test]
fn a_publish_failing_at_each_write_brings_the_previous_export_back_whole() {
    if !kill_points_available() {
        return;
    }
    for leaf in [".committed", "manifest.json.tmp", ".moving-in"] {
        let parent = tempfile::tempdir().unwrap();
        let (db_path, out) = first_export_done(parent.path());
        let before = std::fs::read(out.join("manifest.json")).unwrap();
        let filtered = if leaf == "manifest.json.tmp" {
            vec![out.join(leaf)]
        } else {
            in_every_aside(parent.path(), leaf)
        };
        let run = export_under_strace(&db_path, &out, "k", &opening_fails(filtered));
        assert!(run.failed(), "{leaf}: the export should fail:\n{}", run.0);
        assert_first_export_back(parent.path(), &out, &before, leaf);
    }
}

/// Leftovers of the earlier publish scheme (the manifest left in place during a publish, a copy
/// of it aside, maybe a partial `.manifest-copy`) are rolled back to the previous export by the
/// next export's recovery.
#[test]
fn leftovers_of_the_earlier_publish_scheme_roll_back_to_the_previous_export() {
    if !kill_points_available() {
        return;
    }
    for case in ["partial-copy", "moving-in-with-copy", "moving-in-new-manifest"] {
        let parent = tempfile::tempdir().unwrap();
        let (db_path, out) = first_export_done(parent.path());
        let manifest = std::fs::read(out.join("manifest.json")).unwrap();
        let aside = parent.path().join(".out.replaced-999999-0");
        std::fs::create_dir(&aside).unwrap();
        for p in parts(&[1, 2, 3]) {
            std::fs::rename(out.join(&p), aside.join(&p)).unwrap();
        }
        if case == "partial-copy" {
            std::fs::write(aside.join(".manifest-copy"), &manifest[..manifest.len() / 2]).unwrap();
        } else {
            std::fs::write(aside.join("manifest.json"), &manifest).unwrap();
            std::fs::write(aside.join(".moving-in"), "k=").unwrap();
            std::fs::create_dir(out.join("k=9")).unwrap();
            std::fs::copy(
                aside.join("k=1").join("data.parquet"),
                out.join("k=9").join("data.parquet"),
            )
            .unwrap();
            if case == "moving-in-new-manifest" {
                std::fs::write(
                    out.join("manifest.json"),
                    r#"{"column":"k","files":[{"path":"k=9/data.parquet","rows":3,"value":"9"}],"table":"t","total_rows":3}"#,
                )
                .unwrap();
            }
        }
        // The export recovers, then fails to publish and rolls back to what recovery restored.
        let run = export_under_strace(&db_path, &out, "k", &marker_write_fails(parent.path()));
        assert!(run.failed(), "{case}: the export should fail:\n{}", run.0);
        assert_first_export_back(parent.path(), &out, &manifest, case);
    }
}

/// A `manifest.json` that is a symlink to a file outside `out` survives a failed publish as the
/// same symlink, and a successful publish replaces the link, not its target.
#[test]
fn a_symlinked_manifest_survives_a_failed_publish_and_a_publish_replaces_only_the_link() {
    if !kill_points_available() {
        return;
    }
    let parent = tempfile::tempdir().unwrap();
    let (db_path, out) = first_export_done(parent.path());
    let target = parent.path().join("real-manifest.json");
    std::fs::rename(out.join("manifest.json"), &target).unwrap();
    std::os::unix::fs::symlink(&target, out.join("manifest.json")).unwrap();
    let target_text = std::fs::read(&target).unwrap();
    let run = export_under_strace(&db_path, &out, "k", &marker_write_fails(parent.path()));
    assert!(run.failed(), "the export should fail:\n{}", run.0);
    let meta = std::fs::symlink_metadata(out.join("manifest.json")).unwrap();
    assert!(meta.file_type().is_symlink(), "the link came back");
    assert_eq!(std::fs::read(&target).unwrap(), target_text);
    assert_eq!(present_partitions(&out), parts(&[1, 2, 3]));
    let db = Analytics::open(&db_path).unwrap();
    db.export_split_parquet("t", &out, "k").unwrap();
    assert_eq!(
        std::fs::read(&target).unwrap(),
        target_text,
        "the link's target is untouched"
    );
    assert_eq!(manifest_partitions(&out), Some(parts(&[4, 5])));
}

/// An export split on another column into the same directory, killed before its commit, is
/// rolled back by the next export's recovery to the first column's export (partitions and
/// manifest), even when that next export then fails to publish.
#[test]
fn an_export_of_another_column_killed_before_commit_rolls_back_to_the_first_columns_export() {
    if !kill_points_available() {
        return;
    }
    let parent = tempfile::tempdir().unwrap();
    let db_path = parent.path().join("db.duckdb");
    let out = parent.path().join("out");
    write_table(&db_path, &[1, 2, 3]);
    let db = Analytics::open(&db_path).unwrap();
    db.export_split_parquet("t", &out, "k").unwrap();
    db.close().unwrap();
    let manifest = std::fs::read(out.join("manifest.json")).unwrap();
    let args = strace_args(
        in_every_aside(parent.path(), ".committed"),
        &["trace=openat", "inject=openat:signal=KILL"],
    );
    let run = export_under_strace(&db_path, &out, "n", &args);
    assert!(run.cut_short(), "setup: not killed:\n{}", run.0);
    assert_eq!(
        manifest_partitions(&out),
        Some(vec!["n=0".into(), "n=1".into(), "n=2".into()])
    );
    assert_eq!(present_partitions(&out), ["n=0", "n=1", "n=2"]);
    let run = export_under_strace(&db_path, &out, "k", &marker_write_fails(parent.path()));
    assert!(run.failed(), "the export should fail:\n{}", run.0);
    assert_first_export_back(parent.path(), &out, &manifest, "another column");
}
