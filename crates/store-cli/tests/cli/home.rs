//! Which data directory the CLI uses (SPEC §11 "Home directory", §12 `--home`): `--home`, then
//! `STORE_HOME`, then the platform data directory plus `store`. HOME is always pointed at a
//! temporary directory here so no test can touch the real user's data.

use std::path::Path;

use tempfile::TempDir;

use crate::support::TestCommand;

fn tempdir() -> TempDir {
    tempfile::tempdir().expect("temp dir")
}

/// `store` with HOME set to `home` and nothing else chosen.
fn store(home: &Path) -> TestCommand {
    TestCommand::new().env("HOME", home)
}

#[track_caller]
fn assert_holds_state(dir: &Path) {
    assert!(
        dir.join("state.db").is_file(),
        "{} has no state.db",
        dir.display()
    );
}

#[test]
fn home_flag_beats_store_home() {
    let (flag, env, user) = (tempdir(), tempdir(), tempdir());
    let flag_home = flag.path().join("flag-home");
    let env_home = env.path().join("env-home");
    store(user.path())
        .env("STORE_HOME", &env_home)
        .arg("--home")
        .arg(&flag_home)
        .args(["kv", "set", "g", "k", "from-flag"])
        .run()
        .success();
    assert_holds_state(&flag_home);
    assert!(
        !env_home.exists(),
        "STORE_HOME was created although --home was given"
    );
    // STORE_HOME alone does not see the write; --home does.
    store(user.path())
        .env("STORE_HOME", &env_home)
        .args(["kv", "get", "g", "k"])
        .run()
        .library_error();
    let out = store(user.path())
        .env("STORE_HOME", &env_home)
        .arg("--home")
        .arg(&flag_home)
        .args(["kv", "get", "g", "k"])
        .run()
        .success();
    assert_eq!(out.stdout, "from-flag\n");
}

#[test]
fn store_home_beats_xdg_data_home() {
    let (env, xdg, user) = (tempdir(), tempdir(), tempdir());
    let env_home = env.path().join("env-home");
    let run = |args: &[&str]| {
        store(user.path())
            .env("STORE_HOME", &env_home)
            .env("XDG_DATA_HOME", xdg.path())
            .args(args)
            .run()
    };
    run(&["kv", "set", "g", "k", "from-env"]).success();
    assert_holds_state(&env_home);
    assert!(
        !xdg.path().join("store").exists(),
        "XDG_DATA_HOME/store used despite STORE_HOME"
    );
    assert_eq!(run(&["kv", "get", "g", "k"]).success().stdout, "from-env\n");
}

#[test]
fn xdg_data_home_store_is_used_without_store_home() {
    let (xdg, user) = (tempdir(), tempdir());
    let run = |args: &[&str]| {
        store(user.path())
            .env("XDG_DATA_HOME", xdg.path())
            .args(args)
            .run()
    };
    run(&["kv", "set", "g", "k", "from-xdg"]).success();
    assert_holds_state(&xdg.path().join("store"));
    assert!(
        !user.path().join(".local").exists(),
        "~/.local used despite XDG_DATA_HOME"
    );
    assert_eq!(run(&["kv", "get", "g", "k"]).success().stdout, "from-xdg\n");
}

#[cfg(target_os = "linux")]
#[test]
fn local_share_store_is_used_without_store_home_or_xdg_data_home() {
    let user = tempdir();
    store(user.path())
        .args(["kv", "set", "g", "k", "v"])
        .run()
        .success();
    assert_holds_state(&user.path().join(".local/share/store"));
    assert_eq!(
        store(user.path())
            .args(["kv", "get", "g", "k"])
            .run()
            .success()
            .stdout,
        "v\n"
    );
}

#[test]
fn home_directory_is_created_with_missing_parents_and_holds_state_db() {
    let base = tempdir();
    let home = base.path().join("a/b/c");
    TestCommand::new()
        .arg("--home")
        .arg(&home)
        .args(["kv", "count"])
        .run()
        .success();
    assert_holds_state(&home);
}

/// The error says the path is not a directory and what to do, not the OS's "File exists".
#[test]
fn a_home_that_is_a_file_exits_1() {
    let base = tempdir();
    let file = base.path().join("not-a-dir");
    std::fs::write(&file, "x").expect("write");
    let out = TestCommand::new()
        .arg("--home")
        .arg(&file)
        .args(["kv", "count"])
        .run()
        .library_error();
    assert!(out.stderr.contains("not a directory"), "{}", out.stderr);
    assert!(out.stderr.contains("--home"), "{}", out.stderr);
}

/// SPEC §3.8: a non-SQLite file → `Sqlite` with `op() == "Store::open"`.
#[test]
fn a_state_db_that_is_not_a_database_exits_1_with_a_sqlite_error() {
    let base = tempdir();
    std::fs::write(base.path().join("state.db"), "plain text, not SQLite ".repeat(20)).expect("write");
    let out = TestCommand::new()
        .arg("--home")
        .arg(base.path())
        .args(["--json", "kv", "count"])
        .run()
        .library_error();
    let error = out.json_error();
    assert_eq!(
        (&error["kind"], &error["op"]),
        (&"sqlite".into(), &"Store::open".into())
    );
}

/// Two processes opening a brand-new home at once (e.g. `kv watch` started on a fresh home
/// while another process writes) must both succeed: SPEC §3.3 serialises processes "via busy
/// timeout", and §3.2 sets `busy_timeout` on every connection before WAL is enabled.
#[test]
fn concurrent_first_opens_of_a_new_home_both_succeed() {
    for round in 0..60 {
        let base = tempdir();
        let home = base.path().join("home");
        let failures: Vec<String> = std::thread::scope(|s| {
            let handles: Vec<_> = ["a", "b"]
                .into_iter()
                .map(|key| {
                    let home = &home;
                    s.spawn(move || {
                        TestCommand::new()
                            .arg("--home")
                            .arg(home)
                            .args(["kv", "set", "g", key, "v"])
                            .run()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("thread"))
                .filter(|out| out.code != Some(0))
                .map(|out| out.stderr)
                .collect()
        });
        assert!(failures.is_empty(), "round {round}: {failures:?}");
    }
}

/// The bundled SQLite reads names starting with `file:` as URIs (`file:data/state.db` would
/// open `data/state.db`); a relative home of that name is still the directory it names.
#[test]
fn a_relative_home_named_like_a_uri_is_a_plain_directory() {
    let cwd = tempdir();
    std::fs::create_dir(cwd.path().join("data")).unwrap();
    store(cwd.path())
        .current_dir(cwd.path())
        .args(["--home", "file:data", "kv", "set", "g", "k", "v"])
        .run()
        .success();
    assert_holds_state(&cwd.path().join("file:data"));
    assert!(
        !cwd.path().join("data/state.db").exists(),
        "the KV file went to data/"
    );
    let out = store(cwd.path())
        .current_dir(cwd.path())
        .args(["--home", "file:data", "kv", "get", "g", "k"])
        .run()
        .success();
    assert_eq!(out.stdout, "v\n");
}

/// An empty `workspace.duckdb` an hour old: what a process killed while creating the analytics
/// file leaves. The library moves it aside and says so through `log`.
#[cfg(feature = "analytics")]
fn home_with_an_unfinished_analytics_file() -> TempDir {
    let home = tempdir();
    let file = std::fs::File::create(home.path().join("workspace.duckdb")).expect("create");
    let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    file.set_modified(hour_ago).expect("set mtime");
    home
}

/// The library's warnings reach the user: a CLI without a logger dropped them, so nobody
/// learnt that a file in their home had been moved aside.
#[cfg(feature = "analytics")]
#[test]
fn library_warnings_print_on_stderr_by_default_even_when_quiet() {
    let home = home_with_an_unfinished_analytics_file();
    let out = TestCommand::new()
        .arg("--home")
        .arg(home.path())
        .args(["--quiet", "inventory"])
        .run()
        .success();
    let warning = out
        .stderr
        .lines()
        .find(|line| line.starts_with("store: warning: the analytics file"))
        .unwrap_or_else(|| panic!("no warning on stderr: {:?}", out.stderr));
    assert!(warning.contains("moved aside to"), "{warning}");
    assert!(warning.contains(".workspace.duckdb.unfinished-"), "{warning}");
}

/// `STORE_LOG=off` silences them; a value that is not a level says so and keeps warnings.
#[cfg(feature = "analytics")]
#[test]
fn store_log_chooses_the_level_and_reports_a_value_that_is_not_one() {
    let home = home_with_an_unfinished_analytics_file();
    let out = TestCommand::new()
        .env("STORE_LOG", "off")
        .arg("--home")
        .arg(home.path())
        .arg("inventory")
        .run()
        .success();
    assert_eq!(out.stderr, "", "STORE_LOG=off prints nothing");

    let home = home_with_an_unfinished_analytics_file();
    let out = TestCommand::new()
        .env("STORE_LOG", "loud")
        .arg("--home")
        .arg(home.path())
        .arg("inventory")
        .run()
        .success();
    assert!(
        out.stderr.contains("STORE_LOG=loud is not a level"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("store: warning: the analytics file"),
        "{}",
        out.stderr
    );
}
