//! The durable change feed: `store changes [--since] [--limit] [--follow]` and `store kv watch`
//! (SPEC §5.3, §12 "feed"). Watchers run as background processes and see other processes'
//! writes; Ctrl-C is sent as SIGINT with `kill -INT`.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Home, keys, parse_json_line};

/// Time allowed for a watcher to print another process's write (SPEC §12 acceptance).
pub(crate) const WITHIN: Duration = Duration::from_secs(2);
/// Time allowed for a watcher to start (open the store, read `last_seq`).
pub(crate) const STARTUP: Duration = Duration::from_secs(20);
/// The banner `kv watch` and `changes --follow` print to stderr once they are following.
pub(crate) const BANNER: &str = "following changes";

fn fields(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

// ---- changes ---------------------------------------------------------------------------------

#[test]
fn changes_lists_sets_and_deletes_with_seq_kind_group_and_key() {
    let home = Home::new();
    let v1 = home.set("config", "pool", "eu-west");
    let v2 = home.set("config", "wallet", "0xabc");
    home.ok(&["kv", "del", "config", "pool"]);
    let out = home.ok(&["changes"]);
    let rows: Vec<Vec<&str>> = out.lines().map(fields).collect();
    assert_eq!(rows[0], ["SEQ", "KIND", "GROUP", "KEY", "VALUE"], "{out}");
    assert_eq!(
        rows[1],
        [v1.to_string().as_str(), "set", "config", "pool", "eu-west"],
        "{out}"
    );
    assert_eq!(
        rows[2],
        [v2.to_string().as_str(), "set", "config", "wallet", "0xabc"],
        "{out}"
    );
    assert_eq!(rows[3][1..], ["delete", "config", "pool"], "{out}");
    assert!(rows[3][0].parse::<u64>().expect("seq") > v2, "{out}");
    assert_eq!(rows.len(), 4, "{out}");
}

#[test]
fn changes_json_has_changes_next_seq_and_gap() {
    let home = Home::new();
    let version = home.set("g", "k", "v");
    home.ok(&["kv", "del", "g", "k"]);
    let batch = home.json(&["changes"]);
    assert_eq!(keys(&batch), ["changes", "gap", "next_seq"]);
    assert_eq!(batch["gap"], false);
    let changes = batch["changes"].as_array().expect("changes");
    assert_eq!(changes.len(), 2);
    assert_eq!(
        keys(&changes[0]),
        ["at_ms", "expires_at", "group", "key", "kind", "seq", "value"]
    );
    assert_eq!(
        changes[0]["seq"], version,
        "a set's version is its change seq (SPEC §3.6)"
    );
    assert_eq!(
        (
            &changes[0]["kind"],
            &changes[0]["group"],
            &changes[0]["key"],
            &changes[0]["value"]
        ),
        (&json!("set"), &json!("g"), &json!("k"), &json!("v"))
    );
    assert_eq!(
        (&changes[1]["kind"], &changes[1]["value"]),
        (&json!("delete"), &Value::Null)
    );
    assert_eq!(batch["next_seq"], changes[1]["seq"]);
}

#[test]
fn changes_of_an_empty_store_are_empty() {
    let home = Home::new();
    assert_eq!(
        home.json(&["changes"]),
        json!({"changes": [], "gap": false, "next_seq": 0})
    );
    assert_eq!(
        fields(&home.ok(&["changes"])),
        ["SEQ", "KIND", "GROUP", "KEY", "VALUE"]
    );
}

#[test]
fn changes_since_lists_only_later_changes() {
    let home = Home::new();
    let first = home.set("g", "a", "1");
    let second = home.set("g", "b", "2");
    let third = home.set("g", "c", "3");
    let batch = home.json(&["changes", "--since", &first.to_string()]);
    let seqs: Vec<&Value> = batch["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| &c["seq"])
        .collect();
    assert_eq!(seqs, [&json!(second), &json!(third)]);
    let after_all = home.json(&["changes", "--since", &third.to_string()]);
    assert_eq!(after_all, json!({"changes": [], "gap": false, "next_seq": third}));
    // next_seq is the last seq returned, or `since` itself when nothing is (SPEC §5.3).
    assert_eq!(home.json(&["changes", "--since", "1000"])["next_seq"], 1000);
}

#[test]
fn changes_limit_caps_the_batch_and_next_seq_resumes() {
    let home = Home::new();
    for key in ["a", "b", "c"] {
        home.set("g", key, "v");
    }
    let first = home.json(&["changes", "--limit", "2"]);
    assert_eq!(first["changes"].as_array().expect("changes").len(), 2);
    let next = first["next_seq"].to_string();
    let rest = home.json(&["changes", "--since", &next, "--limit", "2"]);
    assert_eq!(rest["changes"].as_array().expect("changes").len(), 1);
    assert_eq!(rest["changes"][0]["key"], "c");
}

#[test]
fn changes_record_increments_and_purged_expiry() {
    let home = Home::new();
    home.ok(&["kv", "incr", "g", "n", "5"]);
    home.ok(&["kv", "set", "g", "gone", "v", "--ttl", "0s"]);
    home.ok(&["kv", "purge"]);
    let batch = home.json(&["changes"]);
    let kinds: Vec<(&Value, &Value, &Value)> = batch["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| (&c["kind"], &c["key"], &c["value"]))
        .collect();
    assert_eq!(kinds[0], (&json!("set"), &json!("n"), &json!("5")));
    assert_eq!(kinds[1], (&json!("set"), &json!("gone"), &json!("v")));
    assert_eq!((kinds[2].0, kinds[2].1), (&json!("expired"), &json!("gone")));
    assert_eq!(kinds.len(), 3);
}

#[test]
fn scoped_writes_appear_in_changes_with_the_full_group_name() {
    let home = Home::new();
    home.ok(&["kv", "--ns", "tenant-a", "set", "config", "k", "v"]);
    assert_eq!(home.json(&["changes"])["changes"][0]["group"], "tenant-a:config");
}

// ---- kv watch --------------------------------------------------------------------------------

#[test]
fn kv_watch_prints_another_process_write_within_2s_and_exits_0_on_sigint() {
    let home = Home::new();
    home.set("g", "before", "old"); // before the watcher starts: not printed
    let watch = home.spawn(&["kv", "watch"]);
    watch.expect_stderr(BANNER, STARTUP);
    let version = home.set("config", "pool", "eu-west");
    let line = watch.expect_line(WITHIN);
    let cells: Vec<&str> = line.split('\t').collect();
    assert_eq!(
        cells,
        [version.to_string().as_str(), "set", "config", "pool", "eu-west"],
        "{line:?}"
    );
    home.ok(&["kv", "del", "config", "pool"]);
    let line = watch.expect_line(WITHIN);
    assert_eq!(
        line.split('\t').skip(1).collect::<Vec<_>>(),
        ["delete", "config", "pool", ""]
    );
    let rest = watch.interrupt_and_expect_exit_0();
    assert!(rest.is_empty(), "unexpected output: {rest:?}");
}

#[test]
fn kv_watch_of_a_group_prints_only_that_group() {
    let home = Home::new();
    let watch = home.spawn(&["kv", "watch", "wanted"]);
    watch.expect_stderr(BANNER, STARTUP);
    home.set("unwanted", "k", "v");
    home.set("wanted-not", "k", "v");
    home.set("wanted", "k", "yes");
    let line = watch.expect_line(WITHIN);
    assert_eq!(
        line.split('\t').skip(1).collect::<Vec<_>>(),
        ["set", "wanted", "k", "yes"]
    );
    let rest = watch.interrupt_and_expect_exit_0();
    assert!(rest.is_empty(), "unexpected output: {rest:?}");
}

#[test]
fn kv_watch_json_prints_one_change_object_per_line() {
    let home = Home::new();
    home.set("g", "first", "1");
    // --since 0 replays the first write, which shows the watcher is running.
    let watch = home.spawn(&["--json", "kv", "watch", "--since", "0"]);
    let first = parse_json_line(&watch.expect_line(STARTUP));
    assert_eq!((&first["key"], &first["kind"]), (&json!("first"), &json!("set")));
    let version = home.set("g", "second", "2");
    let second = parse_json_line(&watch.expect_line(WITHIN));
    assert_eq!(
        keys(&second),
        ["at_ms", "expires_at", "group", "key", "kind", "seq", "value"]
    );
    assert_eq!((&second["seq"], &second["value"]), (&json!(version), &json!("2")));
    watch.interrupt_and_expect_exit_0();
}

#[test]
fn kv_watch_in_a_namespace_shows_only_its_changes_with_local_group_names() {
    let home = Home::new();
    let watch = home.spawn(&["kv", "--ns", "tenant-a", "watch"]);
    watch.expect_stderr(BANNER, STARTUP);
    home.ok(&["kv", "--ns", "tenant-b", "set", "config", "k", "b"]);
    home.set("config", "k", "raw");
    home.set("tenant-ab:config", "k", "lookalike");
    home.ok(&["kv", "--ns", "tenant-a", "set", "config", "k", "a"]);
    home.set("tenant-a:cache", "raw-into-ns", "r");
    let first = watch.expect_line(WITHIN);
    assert_eq!(
        first.split('\t').skip(1).collect::<Vec<_>>(),
        ["set", "config", "k", "a"]
    );
    let second = watch.expect_line(WITHIN);
    assert_eq!(
        second.split('\t').skip(1).collect::<Vec<_>>(),
        ["set", "cache", "raw-into-ns", "r"]
    );
    let rest = watch.interrupt_and_expect_exit_0();
    assert!(rest.is_empty(), "unexpected output: {rest:?}");
}

#[test]
fn kv_watch_of_a_group_in_a_namespace_matches_the_local_group() {
    let home = Home::new();
    home.ok(&["kv", "count"]); // create the database first: see home::concurrent_first_opens…
    let watch = home.spawn(&["--json", "kv", "--ns", "tenant-a", "watch", "config"]);
    home.ok(&["kv", "--ns", "tenant-a", "set", "config", "boot", "1"]);
    // The watcher starts at the newest seq; keep writing until it is following.
    let mut line = watch.next_line(Duration::from_millis(300));
    for i in 0..60 {
        if line.is_some() {
            break;
        }
        home.ok(&["kv", "--ns", "tenant-a", "set", "config", "boot", &i.to_string()]);
        line = watch.next_line(Duration::from_millis(300));
    }
    assert!(line.is_some(), "watcher never started");
    while watch.next_line(Duration::from_millis(500)).is_some() {}
    home.ok(&["kv", "--ns", "tenant-a", "set", "other", "k", "no"]);
    home.set("config", "k", "no");
    home.ok(&["kv", "--ns", "tenant-a", "set", "config", "k", "yes"]);
    // A late line for a `boot` write may still come first on a loaded machine.
    let change = loop {
        let change = parse_json_line(&watch.expect_line(WITHIN));
        if change["key"] != "boot" {
            break change;
        }
    };
    assert_eq!(
        (&change["group"], &change["key"], &change["value"]),
        (&json!("config"), &json!("k"), &json!("yes"))
    );
    watch.interrupt_and_expect_exit_0();
}

// ---- changes --follow ------------------------------------------------------------------------

#[test]
fn changes_follow_json_prints_other_process_writes_and_exits_0_on_sigint() {
    let home = Home::new();
    home.set("g", "first", "1");
    let follow = home.spawn(&["--json", "changes", "--follow", "--since", "0"]);
    let first = parse_json_line(&follow.expect_line(STARTUP));
    assert_eq!(first["key"], "first");
    let version = home.set("other", "second", "2");
    let second = parse_json_line(&follow.expect_line(WITHIN));
    assert_eq!(
        (&second["seq"], &second["group"]),
        (&json!(version), &json!("other"))
    );
    home.ok(&["kv", "del", "other", "second"]);
    let third = parse_json_line(&follow.expect_line(WITHIN));
    assert_eq!(
        (&third["kind"], &third["key"]),
        (&json!("delete"), &json!("second"))
    );
    let rest = follow.interrupt_and_expect_exit_0();
    for line in rest {
        parse_json_line(&line);
    }
}

/// A home whose two changes were pruned from the feed (a follower from 0 meets a gap).
fn home_with_a_pruned_feed() -> Home {
    let home = Home::new();
    home.set("g", "a", "1");
    home.set("g", "b", "2");
    let mut config = store::StoreConfig::file(home.path().join("state.db"));
    config.changes.max_age = Some(Duration::ZERO);
    let store = store::Store::open_with(config).unwrap();
    assert_eq!(store.prune_changes().unwrap(), 2);
    store.close().unwrap();
    home
}

#[test]
fn changes_follow_reports_a_pruned_gap_once_not_on_every_poll() {
    let home = home_with_a_pruned_feed();
    let follow = home.spawn(&["changes", "--follow", "--since", "0"]);
    follow.expect_stderr("were pruned", STARTUP);
    // The follower polls every 200 ms; nothing new arrives, so the gap stays.
    std::thread::sleep(Duration::from_secs(1));
    let again = follow.stderr_so_far();
    assert!(!again.iter().any(|l| l.contains("were pruned")), "{again:?}");
    follow.interrupt_and_expect_exit_0();
}

#[test]
fn changes_follow_without_since_starts_at_the_newest_change() {
    let home = Home::new();
    home.set("g", "old", "1");
    let follow = home.spawn(&["changes", "--follow"]);
    follow.expect_stderr(BANNER, STARTUP);
    home.set("g", "new", "2");
    let line = follow.expect_line(WITHIN);
    assert_eq!(
        line.split('\t').skip(1).collect::<Vec<_>>(),
        ["set", "g", "new", "2"]
    );
    follow.interrupt_and_expect_exit_0();
}

#[test]
fn watch_with_an_invalid_namespace_or_group_exits_1_instead_of_following() {
    let home = Home::new();
    for args in [
        &["kv", "--ns", "a_b", "watch"][..],
        &["kv", "--ns", "../x", "watch", "g"],
        &["kv", "watch", ""],
        &["kv", "--ns", "ok", "watch", ""],
    ] {
        let mut watch = home.spawn(args);
        let status = watch.wait_exit(Duration::from_secs(20));
        assert_eq!(
            status.and_then(|s| s.code()),
            Some(1),
            "`store {}` should refuse at once",
            args.join(" ")
        );
    }
}

/// A follower can wait in its open for another program's write lock (here on a file without
/// the store's schema, which the open must create) for the whole busy timeout: Ctrl-C then
/// still ends it with exit 0, as while following, not by the signal.
#[cfg(target_os = "linux")]
#[test]
fn ctrl_c_while_a_follower_is_still_opening_the_store_exits_0() {
    let commands: [&[&str]; 3] = [
        &["kv", "watch"],
        &["changes", "--follow"],
        &["kv", "--ns", "t", "watch", "g"],
    ];
    for args in commands {
        let home = Home::new();
        std::fs::create_dir_all(home.path()).unwrap();
        let state = home.path().join("state.db");
        let other = rusqlite::Connection::open(&state).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        let follower = home.spawn(&[&["--busy-timeout", "2m"], args].concat());
        // The file is opened after the handler is installed: from here on a signal is its.
        let state = state.canonicalize().unwrap();
        assert!(
            follower.wait_until_open(&state, STARTUP),
            "{args:?} never opened {state:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
        follower.interrupt_and_expect_exit_0();
        other.execute_batch("ROLLBACK").unwrap();
    }
}

#[test]
fn kv_watch_follow_tails_another_process_and_exits_0_on_sigint() {
    // Issue 3: "`store kv watch --follow` in the CLI tails it".
    let home = Home::new();
    let watch = home.spawn(&["kv", "watch", "--follow"]);
    watch.expect_stderr(BANNER, STARTUP);
    let version = home.set("g", "k", "v1");
    let line = watch.expect_line(WITHIN);
    assert_eq!(
        line.split('\t').collect::<Vec<_>>(),
        [version.to_string().as_str(), "set", "g", "k", "v1"],
        "{line:?}"
    );
    let rest = watch.interrupt_and_expect_exit_0();
    assert!(rest.is_empty(), "unexpected output: {rest:?}");
}

/// h125: SIGTERM (what `docker stop`, `systemctl stop` and `timeout` send) and SIGHUP (a
/// closed terminal) killed a follower by the signal; they end it like Ctrl-C, with exit 0
/// after the changes it has printed.
#[test]
fn sigterm_and_sighup_end_a_follower_with_exit_0_like_ctrl_c() {
    for (signal, args) in [
        ("TERM", &["kv", "watch"][..]),
        ("HUP", &["kv", "watch", "--follow"][..]),
        ("TERM", &["changes", "--follow"][..]),
    ] {
        let home = Home::new();
        let follower = home.spawn(args);
        follower.expect_stderr(BANNER, STARTUP);
        home.set("g", "k", "v1");
        let line = follower.expect_line(WITHIN);
        assert!(line.contains("v1") || line.contains("set"), "{args:?}: {line:?}");
        let rest = follower.signal_and_expect_exit_0(signal);
        assert!(rest.is_empty(), "{args:?}: unexpected output: {rest:?}");
    }
}

#[test]
fn kv_watch_lines_show_control_characters_escaped() {
    let home = Home::new();
    let watch = home.spawn(&["kv", "watch"]);
    watch.expect_stderr(BANNER, STARTUP);
    home.set("g\tx", "k", "two\nlines\u{1b}[31m");
    let line = watch.expect_line(WITHIN);
    assert_eq!(
        line.split('\t').skip(1).collect::<Vec<_>>(),
        ["set", "g\\tx", "k", "two\\nlines\\u{1b}[31m"]
    );
    let rest = watch.interrupt_and_expect_exit_0();
    assert!(rest.is_empty(), "the change spilled onto another line: {rest:?}");
}

/// Past the newest change, later changes could be numbered below `--since` and never show:
/// the follower refuses instead of waiting silently.
#[test]
fn following_from_past_the_newest_change_is_refused() {
    let home = Home::new();
    home.set("g", "a", "1");
    for args in [
        &["changes", "--follow", "--since", "1000"][..],
        &["kv", "watch", "*", "--since", "1000"][..],
    ] {
        let out = home.cmd(args).run().library_error();
        assert!(out.stderr.contains("past the newest change"), "{}", out.stderr);
    }
}

/// With --json a pruned gap is reported too, as a JSON warning on stderr (stdout carries
/// only changes).
#[test]
fn a_pruned_gap_is_reported_as_json_under_json() {
    let home = home_with_a_pruned_feed();
    let follow = home.spawn(&["--json", "changes", "--follow", "--since", "0"]);
    let line = follow.expect_stderr("\"gap\"", STARTUP);
    let warning = crate::support::parse_json_line(&line);
    assert_eq!(warning["warning"]["kind"], "gap", "{line}");
    follow.interrupt_and_expect_exit_0();
}

/// The table has no cursor: a full page says where to continue, and a cursor past the newest
/// change is warned about (later changes may be numbered below it).
#[test]
fn changes_table_says_where_a_full_page_continues_and_warns_of_a_cursor_past_the_end() {
    let home = Home::new();
    for key in ["a", "b", "c"] {
        home.set("g", key, "v");
    }
    let page = home.run(&["changes", "--limit", "2"]).success();
    assert!(page.stderr.contains("continue with --since"), "{}", page.stderr);
    let past = home.run(&["changes", "--since", "1000"]).success();
    assert!(past.stderr.contains("past the newest change"), "{}", past.stderr);
    let rest = home.run(&["changes"]).success();
    assert!(rest.stderr.is_empty(), "{}", rest.stderr);
}

/// Writes `n` sets straight into the home's store (one process, not `n`).
fn many_sets(home: &Home, n: usize) {
    use store::Kv;
    std::fs::create_dir_all(home.path()).expect("create the home");
    let store = store::Store::open(home.path().join("state.db")).expect("open the home's store");
    for i in 0..n {
        store.set("bulk", &format!("k{i:04}"), "v").expect("set");
    }
    store.close().expect("close");
}

/// SPEC §12: `changes` calls `store/changes`, whose `limit` defaults to 1,000 (§11).
#[test]
fn changes_without_limit_prints_up_to_1000_like_the_action() {
    let home = Home::new();
    many_sets(&home, 1_005);
    let all = home.json(&["changes"]);
    assert_eq!(all["changes"].as_array().expect("changes").len(), 1_000);
    let table = home.ok(&["changes", "--quiet"]);
    assert_eq!(table.lines().count(), 1_000 + 1, "a header and 1,000 rows");
}

/// SPEC §12 `changes [--since N] [--limit N] [--follow]`: with `--follow`, `--limit` bounds
/// each read, and every change is printed in the end.
#[test]
fn changes_follow_with_a_limit_prints_every_change() {
    let home = Home::new();
    many_sets(&home, 7);
    let second = home.json(&["changes"])["changes"][1]["seq"].to_string();
    let follow = home.spawn(&[
        "--json", "changes", "--since", &second, "--limit", "2", "--follow",
    ]);
    // The first line waits for the process to start too.
    let keys: Vec<String> = (0..5)
        .map(|i| {
            parse_json_line(&follow.expect_line(if i == 0 { STARTUP } else { WITHIN }))["key"]
                .as_str()
                .expect("key")
                .to_string()
        })
        .collect();
    assert_eq!(keys, ["k0002", "k0003", "k0004", "k0005", "k0006"]);
    follow.interrupt_and_expect_exit_0();
}

/// SPEC §12: a watcher prints "until Ctrl-C (exit 0)", also when its stdout is blocked (a pipe
/// nobody reads, a paused terminal). The Ctrl-C handler used to only set a flag the loop checks
/// between reads, while the loop sat in a write that never returned, so no Ctrl-C ended it.
#[test]
fn sigint_ends_a_follower_whose_output_is_blocked() {
    use std::io::{BufRead, BufReader};
    use std::sync::mpsc;
    use std::time::Instant;

    let home = Home::new();
    // 160 KB of values replayed with --since 0: more than a pipe holds (64 KiB on Linux).
    let big = "x".repeat(40_000);
    for i in 0..4 {
        home.ok(&["kv", "set", "g", &format!("big{i}"), &big]);
    }
    for args in [
        &["kv", "watch", "*", "--since", "0"][..],
        // Not --json, which prints no banner to wait for.
        &["changes", "--follow", "--since", "0"][..],
    ] {
        let mut child = crate::support::piped(["--home".as_ref(), home.path().as_os_str()])
            .args(args)
            .spawn()
            .expect("spawn store");
        // Held open and never read, so the pipe fills and the follower's write blocks.
        let stalled = child.stdout.take().expect("piped stdout");
        let (tx, banner) = mpsc::channel();
        let stderr = child.stderr.take().expect("piped stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains(BANNER) {
                    let _ = tx.send(());
                }
            }
        });
        banner.recv_timeout(STARTUP).expect("the follower started");
        // Time to print into the pipe until it is full.
        std::thread::sleep(Duration::from_millis(1_000));
        let status = std::process::Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -INT failed: {status}");
        let deadline = Instant::now() + Duration::from_secs(5);
        let exited = loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                break Some(status);
            }
            if Instant::now() >= deadline {
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        if exited.is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
        drop(stalled);
        let status =
            exited.unwrap_or_else(|| panic!("`store {args:?}` ignored SIGINT while its stdout was blocked"));
        assert_eq!(status.code(), Some(0), "store {args:?}: {status}");
    }
}
