//! SPEC §6 across OS processes, with §4 and §5.3 under crashes: processes sharing one file
//! never overshoot a quota together (exactly the limit succeeds, every other write is
//! `QuotaExceeded`, no busy or locked error leaks out), and processes SIGKILLed in the middle of
//! mixed scoped writes leave a file that reopens intact, whose usage counters equal a recount of
//! its rows and stay within the quota, whose change feed reports no gap and replays to `entries`, and
//! in which every transaction is all or nothing, every acknowledged write survived and new
//! versions stay above every committed one.
//!
//! The test binary re-executes itself as the child processes, as the cross-process feed tests do
//! (`common::child_test_command`): the ignored helper test `process_child` takes its role and
//! arguments as JSON from `STORE_SCOPE_CHILD` and reports on stdout lines starting with `CHILD `.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use store::{
    Change, Clock, Durability, EventKind, Kv, ManualClock, Quota, ScopedConfig, ScopedStore, Store,
    StoreConfig,
};

use crate::common::{
    ChildProcess, Fixture, Rng, all_changes_since, assert_counters_equal_a_recount,
    assert_feed_replays_to_entries, child_test_command, file_store, patient, raw, truth,
};
use crate::support::{assert_usage_exact, quota, scoped, usage};

const CHILD_ENV: &str = "STORE_SCOPE_CHILD";
const MARKER: &str = "CHILD ";
const RACE_NS: &str = "race";
const CHAOS_NS: &str = "chaos";
const CHAOS_QUOTA: Quota = Quota {
    max_keys: 60,
    max_groups: 5,
    max_bytes: 12_000,
};

#[test]
#[ignore = "helper: acts only as a child process of the tests in scope/processes.rs"]
fn process_child() {
    let Ok(args) = std::env::var(CHILD_ENV) else {
        return;
    };
    let args: Value = serde_json::from_str(&args).unwrap();
    let path = PathBuf::from(args["path"].as_str().unwrap());
    match args["role"].as_str().unwrap() {
        "race" => race_child(&path, &args),
        "chaos" => chaos_child(&path, &args),
        role => panic!("unknown role {role}"),
    }
}

/// Starts `process_child` with `args`, stdin piped (the race's start signal).
fn spawn_child(args: Value) -> ChildProcess {
    let mut cmd = child_test_command("processes::process_child");
    cmd.env(CHILD_ENV, args.to_string()).stdin(Stdio::piped());
    ChildProcess::spawn(cmd, MARKER)
}

fn say(line: &str) {
    println!("{MARKER}{line}");
}

/// Reports one operation: its line, `OVER` for a quota refusal; any other error prints
/// `ERROR …` and ends the process.
fn report(result: store::Result<String>) {
    match result {
        Ok(line) => say(&line),
        Err(e) if e.is_quota_exceeded() => say("OVER"),
        Err(e) => {
            say(&format!("ERROR {e} (busy: {})", e.is_busy()));
            std::process::exit(3);
        }
    }
}

/// Race role: once the parent writes a line to stdin (every process is ready), `threads` threads
/// each make `per` attempts to write a new key (`<proc><thread><i>a`: 6 bytes, value 4 bytes, so
/// 10 bytes an entry), or with `transaction` two keys (`…a`, `…b`) in one transaction.
fn race_child(path: &Path, args: &Value) {
    let n = |name: &str| args[name].as_u64().unwrap();
    let store = Store::open_with(patient(
        StoreConfig::file(path).with_purge_interval(Duration::ZERO),
    ))
    .unwrap();
    let ns = scoped(&store, RACE_NS, quota(n("max_keys"), 0, n("max_bytes")));
    say("READY");
    std::io::stdin().read_line(&mut String::new()).unwrap();
    std::thread::scope(|s| {
        for t in 0..n("threads") {
            let ns = &ns;
            s.spawn(move || {
                for i in 0..n("per") {
                    let (group, key) = (format!("g{}", i % 5), format!("{}{t}{i:03}", n("proc")));
                    let result = if args["transaction"].as_bool().unwrap() {
                        ns.transaction(|tx| {
                            tx.set(&group, &format!("{key}a"), "abcd")?;
                            tx.set(&group, &format!("{key}b"), "abcd")
                        })
                    } else {
                        ns.set(&group, &format!("{key}a"), "abcd")
                    };
                    report(result.map(|_| "OK".into()));
                }
            });
        }
    });
}

/// 4 processes × 2 threads × `per` attempts against `quota` in namespace [`RACE_NS`]; asserts
/// exactly `fit` attempts succeed, all others are `QuotaExceeded`, and usage equals a recount.
fn race(quota: Quota, transaction: bool, per: u64, fit: u64) -> (Fixture, ScopedStore) {
    const PROCESSES: u64 = 4;
    const THREADS: u64 = 2;
    let f = file_store(); // the schema exists before the children open the file
    let mut children: Vec<ChildProcess> = (0..PROCESSES)
        .map(|p| {
            spawn_child(json!({
                "role": "race", "path": f.path(), "proc": p, "threads": THREADS, "per": per,
                "transaction": transaction, "max_keys": quota.max_keys, "max_bytes": quota.max_bytes,
            }))
        })
        .collect();
    children.iter_mut().for_each(|c| c.wait_for("READY"));
    for child in &mut children {
        child.process.stdin.take().unwrap().write_all(b"go\n").unwrap();
    }
    let lines: Vec<String> = children.into_iter().flat_map(ChildProcess::finish).collect();
    let count = |outcome: &str| lines.iter().filter(|l| *l == outcome).count() as u64;
    assert_eq!(
        count("OK") + count("OVER"),
        PROCESSES * THREADS * per,
        "{lines:?}"
    );
    assert_eq!(count("OK"), fit, "successful writes");
    let ns = scoped(&f.store, RACE_NS, quota);
    assert_usage_exact(&ns, &f.path(), f.clock.now_ms(), "the race");
    assert_counters_equal_a_recount(&f.path());
    (f, ns)
}

#[test]
fn processes_racing_for_max_keys_write_exactly_the_limit() {
    let (_f, ns) = race(quota(200, 0, 0), false, 60, 200);
    assert_eq!(ns.usage().unwrap(), usage(200, 5, 2_000));
}

#[test]
fn processes_racing_for_max_bytes_write_exactly_as_many_entries_as_fit() {
    let (_f, ns) = race(quota(0, 0, 1_500), false, 60, 150);
    assert_eq!(ns.usage().unwrap(), usage(150, 5, 1_500));
}

#[test]
fn processes_racing_with_two_key_transactions_commit_exactly_the_pairs_that_fit() {
    let (_f, ns) = race(quota(200, 0, 0), true, 30, 100);
    assert_eq!(ns.usage().unwrap(), usage(200, 5, 2_000));
    let groups = ns.groups("").unwrap();
    let keys: Vec<String> = groups
        .iter()
        .flat_map(|g| ns.get_all(g).unwrap().into_keys())
        .collect();
    for key in &keys {
        let partner = format!("{}{}", &key[..5], if key.ends_with('a') { 'b' } else { 'a' });
        assert!(keys.contains(&partner), "{key} committed without {partner}");
    }
}

/// Chaos role: mixed scoped and raw writes until killed, one [`report`] per operation:
/// `SET <version> <group> <key>` for an acknowledged set, `TX <tag>` for a committed transaction,
/// `OK` otherwise. Every child runs a purge thread; odd `id`s also checkpoint often and use
/// `Durability::Full`.
fn chaos_child(path: &Path, args: &Value) {
    let id = args["id"].as_u64().unwrap();
    let mut config = patient(StoreConfig::file(path).with_purge_interval(Duration::from_millis(10)));
    if id % 2 == 1 {
        config = config.with_checkpoint_pages(40).with_durability(Durability::Full);
    }
    let store = Store::open_with(config).unwrap();
    let ns = scoped(&store, CHAOS_NS, CHAOS_QUOTA);
    let mut rng = Rng::new(args["seed"].as_u64().unwrap());
    say("READY");
    for n in 0u64.. {
        let (g, key) = (rng.below(6), format!("k{}", rng.below(40)));
        let (group, full_group, raw_group) = (
            format!("g{g}"),
            format!("{CHAOS_NS}:g{g}"),
            format!("raw-{}", g % 3),
        );
        let value = "v".repeat(1 + rng.below(300) as usize);
        let ttl = [Duration::from_millis(rng.below(20)), Duration::from_secs(3600)][rng.below(2) as usize];
        report(match rng.below(10) {
            0..=2 => set_line(ns.set(&group, &key, &value), &full_group, &key),
            3 => set_line(ns.set_with_ttl(&group, &key, &value, ttl), &full_group, &key),
            4 | 5 => chaos_transaction(&store, &format!("tx-{id}-{n}"), &mut rng),
            6 => ok(ns.increment("counters", &format!("c{}", g % 3), 1)),
            7 => ok(ns.delete_prefix(&format!("g{}", g % 3))),
            8 => ok(ns.delete(&group, &key)),
            _ => set_line(store.set(&raw_group, &key, &value), &raw_group, &key),
        });
        // Hand the write lock over: SQLite's busy handler is not fair, and a writer in a tight
        // loop starves the other process (for seconds, seen in debug builds).
        std::thread::sleep(Duration::from_micros(100));
    }
}

fn set_line(result: store::Result<u64>, group: &str, key: &str) -> store::Result<String> {
    result.map(|version| format!("SET {version} {group} {key}"))
}

fn ok<T>(result: store::Result<T>) -> store::Result<String> {
    result.map(|_| "OK".into())
}

/// 2–6 sets, scoped or raw, sometimes with a scoped delete between them; every value starts with
/// `<tag>-<count>|`, so the feed shows whether all `count` sets committed.
fn chaos_transaction(store: &Store, tag: &str, rng: &mut Rng) -> store::Result<String> {
    let count = 2 + rng.below(5);
    let tag = format!("{tag}-{count}");
    store.transaction(|tx| {
        let ns = tx.scoped_with(ScopedConfig::new(CHAOS_NS).with_quota(CHAOS_QUOTA))?;
        for j in 0..count {
            let key = format!("t{j}-{}", rng.below(20));
            let value = format!("{tag}|{}", "t".repeat(rng.below(200) as usize));
            match rng.below(2) {
                0 => ns.set(&format!("g{}", rng.below(6)), &key, &value)?,
                _ => tx.set(&format!("raw-{}", rng.below(3)), &key, &value)?,
            };
            if rng.below(4) == 0 {
                ns.delete(&format!("g{}", rng.below(6)), &format!("k{}", rng.below(40)))?;
            }
        }
        Ok(format!("TX {tag}"))
    })
}

#[test]
fn writers_killed_mid_write_leave_counters_feed_and_transactions_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    Store::open(&path).unwrap().close().unwrap(); // the schema exists before the children open
    let mut rng = Rng::new(20_240_601);
    let mut lines = Vec::new();
    for round in 0..6 {
        let mut children: Vec<ChildProcess> = (0..2)
            .map(|i| {
                let args = json!({ "role": "chaos", "path": path, "id": round * 2 + i, "seed": rng.next() });
                spawn_child(args)
            })
            .collect();
        children.iter_mut().for_each(|c| c.wait_for("READY"));
        for mut child in children {
            // A random moment, counted in operations rather than time.
            child.read_until(30 + rng.below(470) as usize);
            lines.extend(child.kill());
        }
        check_after_kills(&path, &lines);
    }
    assert!(lines.iter().any(|l| l == "OVER"), "the quota was never reached");
    assert!(
        lines.iter().any(|l| l.starts_with("TX ")),
        "no transaction committed"
    );
}

/// Reopens the file the killed children wrote, ten minutes on (every short TTL has passed, no
/// one-hour TTL has), and checks everything the module doc promises.
fn check_after_kills(path: &Path, lines: &[String]) {
    assert!(
        !lines.iter().any(|l| l.starts_with("ERROR")),
        "a child failed: {lines:?}"
    );
    let integrity: String = raw(path)
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
    let now = store::SystemClock.now_ms() + 600_000;
    let config = StoreConfig::file(path).with_clock(Arc::new(ManualClock::new(now)));
    let store = Store::open_with(config.with_purge_interval(Duration::ZERO)).expect("reopen");
    assert_counters_equal_a_recount(path);
    let usage = scoped(&store, CHAOS_NS, CHAOS_QUOTA).usage().unwrap();
    assert_eq!(usage, truth(path, CHAOS_NS, now), "usage() vs the live rows");
    let q = CHAOS_QUOTA;
    let within = usage.keys <= q.max_keys && usage.groups <= q.max_groups && usage.bytes <= q.max_bytes;
    assert!(within, "usage {usage:?} over the quota {q:?}");

    assert!(!store.changes_since(0, 1).unwrap().gap, "the feed lost changes");
    let feed = all_changes_since(&store, 0);
    assert!(feed.windows(2).all(|w| w[0].seq < w[1].seq), "feed out of order");
    assert_feed_replays_to_entries(path, &feed);
    let mut tags: BTreeMap<&str, u64> = BTreeMap::new();
    for c in &feed {
        if let Some((tag, _)) = c.value.as_deref().and_then(|v| v.split_once('|')) {
            *tags.entry(tag).or_default() += 1;
        }
    }
    for (tag, sets) in &tags {
        let count: u64 = tag.rsplit('-').next().unwrap().parse().unwrap();
        assert_eq!(*sets, count, "transaction {tag} is in the feed partially");
    }
    let by_seq: HashMap<u64, &Change> = feed.iter().map(|c| (c.seq, c)).collect();
    for line in lines {
        match line.split(' ').collect::<Vec<_>>()[..] {
            ["SET", seq, group, key] => {
                let c = by_seq.get(&seq.parse().unwrap());
                let c = c.unwrap_or_else(|| panic!("acknowledged {line} is not in the feed"));
                assert_eq!(
                    (c.kind, c.group.as_str(), c.key.as_deref()),
                    (EventKind::Set, group, Some(key))
                );
            }
            ["TX", tag] => assert!(tags.contains_key(tag), "acknowledged transaction {tag} lost"),
            _ => {}
        }
    }
    let last = feed.last().map_or(0, |c| c.seq);
    let next = store.set("after-kills", "k", "v").unwrap();
    assert!(
        next > last,
        "version {next} reused after the kills (feed ends at {last})"
    );
    store.close().unwrap();
}
