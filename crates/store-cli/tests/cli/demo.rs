//! `store demo` and output robustness (a reader that closes the pipe early).

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{BIN, Home, keys};

#[test]
fn demo_runs_twice_in_the_same_home_and_leaves_demo_config_readable() {
    let home = Home::new();
    for _ in 0..2 {
        let out = home.run(&["demo"]).success();
        assert!(out.stdout.contains("store demo on"), "{}", out.stdout);
        // The suggested command reaches this home, not the default one.
        let hint = format!("`store --home {} kv ls _demo:config`", home.path().display());
        assert!(out.stdout.contains(&hint), "{}", out.stdout);
        assert!(!out.stdout.contains("no conflict?"), "{}", out.stdout);
    }
    let ls = home.ok(&["kv", "ls", "_demo:config"]);
    let rows: Vec<Vec<&str>> = ls.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(
        rows,
        [
            vec!["KEY", "VALUE"],
            vec!["pool", "us-east"],
            vec!["wallet", "0xabc"]
        ]
    );
    // The second run cleared the first run's state: runs was incremented three times, not six.
    assert_eq!(home.get("_demo:stats", "runs"), "3");
    assert_eq!(home.json(&["kv", "count", "_demo:sessions"]), json!({"count": 1}));
}

#[test]
fn demo_clears_only_its_own_groups_never_a_demo_namespace_or_demo_groups() {
    let home = Home::new();
    home.ok(&["kv", "--ns", "demo", "set", "orders", "o-1", "kept"]);
    home.ok(&["kv", "set", "demo:config", "mine", "kept too"]);
    home.ok(&["kv", "set", "_demo-notes", "n", "not the prefix"]);
    // An expired entry of the user's stays for the user's own purge (the demo expires only
    // its own key, so no Expired event reaches the user's watchers).
    home.ok(&["kv", "set", "mine", "old", "expired", "--ttl", "1ms"]);
    std::thread::sleep(std::time::Duration::from_millis(5));
    home.run(&["demo"]).success();
    home.run(&["demo"]).success();
    assert_eq!(
        home.ok(&["kv", "--ns", "demo", "get", "orders", "o-1"]).trim(),
        "kept"
    );
    assert_eq!(home.get("demo:config", "mine"), "kept too");
    assert_eq!(home.get("_demo-notes", "n"), "not the prefix");
    let purged = home.json(&["kv", "purge"]);
    assert_eq!(purged["purged"], 1, "{purged}");
}

#[test]
fn demo_json_parses_with_home_and_steps() {
    let home = Home::new();
    let v = home.json(&["demo"]);
    assert_eq!(keys(&v), ["home", "steps"]);
    assert_eq!(v["home"], home.path().to_str().expect("UTF-8 path"));
    let steps = v["steps"].as_array().expect("steps");
    assert!(!steps.is_empty() && steps.iter().all(|s| s.is_string()), "{v}");
    // A second run in the same home works too.
    home.json(&["demo"]);
}

/// `store kv ls g | head -1`: writing into a closed pipe must not panic.
#[test]
fn ls_into_a_pipe_closed_early_does_not_panic() {
    let home = Home::new();
    let big = "x".repeat(16 * 1024);
    for i in 0..40 {
        home.ok(&["kv", "set", "g", &format!("key-{i:02}"), &big]);
    }
    let mut child = crate::support::piped(["--home".as_ref(), home.path().as_os_str()])
        .args(["kv", "ls", "g"])
        .spawn()
        .expect("spawn store");
    {
        let mut reader = BufReader::new(child.stdout.take().expect("stdout"));
        let mut header = String::new();
        reader.read_line(&mut header).expect("read header");
        assert!(header.starts_with("KEY"), "{header:?}");
    } // the read end closes here, with ~600 KiB still to be written
    let output = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "stderr: {stderr}");
    assert_eq!(
        output.status.code(),
        Some(0),
        "status {}; stderr: {stderr}",
        output.status
    );
}

/// Same for a streamed command: `store changes --follow --json | head -1` ends the follower
/// (exit 0, no panic) instead of leaving it running or crashing.
#[test]
fn follow_into_a_pipe_closed_early_exits_without_panic() {
    let home = Home::new();
    let big = "y".repeat(32 * 1024);
    for i in 0..30 {
        home.ok(&["kv", "set", "g", &format!("k{i}"), &big]);
    }
    let mut child = Command::new(BIN)
        .arg("--home")
        .arg(home.path())
        .args(["--json", "changes", "--follow", "--since", "0"])
        .env_remove("STORE_HOME")
        .env_remove("XDG_DATA_HOME")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn store");
    {
        let mut reader = BufReader::new(child.stdout.take().expect("stdout"));
        let mut first = String::new();
        reader.read_line(&mut first).expect("read first change");
        assert!(first.starts_with('{'), "{first:?}");
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("follower kept running after its reader closed the pipe");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("read stderr");
    assert!(!stderr.contains("panicked"), "stderr: {stderr}");
    assert_eq!(status.code(), Some(0), "status {status}; stderr: {stderr}");
}
