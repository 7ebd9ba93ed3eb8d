//! Several OS processes on one SQLite file (SPEC §3.3, §3.6, §4, §5.3, §6; issues 3 and 4):
//!
//! - quota races: processes racing for `max_groups`, or inserting, rewriting and deleting under all
//!   three limits, end with exactly the limit and usage equal to a recount of the rows;
//! - feed tailing: a reader process following `changes_since` while writer processes write sees
//!   every change once and in order, and with a pruner process reports a gap for every change it
//!   missed;
//! - increments and compare-and-set from several processes hand out each value once, and exactly
//!   one process wins a must-be-absent write;
//! - TTL expiry and purges running in every process at once report each expiry once, never show
//!   more live keys than the quota and keep the usage counters exact;
//! - processes SIGKILLed mid-work (big transactions, acknowledged bulk writes, purges,
//!   `delete_prefix`, the counter build on open) leave a file that passes `integrity_check`, keeps
//!   every acknowledged write, has all-or-nothing transactions, a feed that replays to `entries`
//!   and counters equal to a recount;
//! - concurrent opens: processes creating a new file, migrating a legacy `kv` table or building the
//!   counters of a foreign `entries` table at the same moment all succeed, and the work is done once;
//! - mixed handles: feed-on and feed-off handles, or handles with different quotas for one
//!   namespace, agree on versions and usage, and a process's small writes are not starved by
//!   another's back-to-back transactions.
//!
//! The test binary re-executes itself as the child processes (`common::child_test_command`,
//! `common::ChildProcess`, as `scope/processes.rs` does): the ignored helper test
//! `multiprocess::child_entry` takes its role and arguments as JSON from `STORE_MULTIPROCESS_CHILD`
//! and reports on stdout lines starting with `CHILD `. Children that race wait for a line on stdin
//! (sent once every one of them is `READY`). Every test has its own temp dir.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use store::{
    Change, ChangeFeedConfig, Clock, Error, ErrorKind, EventKind, Kv, ManualClock, QuotaLimit, ScopedConfig,
    Store, StoreConfig, SystemClock,
};

use crate::common::{
    ChildProcess, Rng, all_changes_since, assert_counters_equal_a_recount, assert_feed_replays_to_entries,
    child_test_command, patient, quota, raw, truth,
};

const CHILD_ENV: &str = "STORE_MULTIPROCESS_CHILD";
const MARKER: &str = "CHILD ";

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

/// Starts `child_entry` with `args`, stdin piped (the start signal of racing children).
fn spawn_child(args: Value) -> ChildProcess {
    let mut cmd = child_test_command("multiprocess::child_entry");
    cmd.env(CHILD_ENV, args.to_string()).stdin(Stdio::piped());
    ChildProcess::spawn(cmd, MARKER)
}

/// Spawns one child per `args`, waits until every one is `READY`, then lets them all go at once.
fn start(args: Vec<Value>) -> Vec<ChildProcess> {
    let mut children: Vec<ChildProcess> = args.into_iter().map(spawn_child).collect();
    children.iter_mut().for_each(|c| c.wait_for("READY"));
    children.iter_mut().for_each(go);
    children
}

/// Sends the child the start signal it waits for on stdin.
fn go(child: &mut ChildProcess) {
    let stdin = child.process.stdin.as_mut().expect("piped stdin");
    stdin.write_all(b"go\n").unwrap();
}

/// Reads the child's lines until one starts with `prefix`.
fn read_until_prefix(child: &mut ChildProcess, prefix: &str) {
    while !child.seen.last().is_some_and(|l| l.starts_with(prefix)) {
        child.read_until(child.seen.len() + 1);
    }
}

/// Waits for every child to succeed; returns all their lines, which must hold no `ERROR`.
fn finish_all(children: Vec<ChildProcess>) -> Vec<String> {
    let lines: Vec<String> = children.into_iter().flat_map(ChildProcess::finish).collect();
    assert_no_errors(&lines);
    lines
}

#[track_caller]
fn assert_no_errors(lines: &[String]) {
    let errors: Vec<&String> = lines.iter().filter(|l| l.starts_with("ERROR")).collect();
    assert!(errors.is_empty(), "a child reported errors: {errors:?}");
}

fn count(lines: &[String], line: &str) -> usize {
    lines.iter().filter(|l| *l == line).count()
}

/// A fresh temp dir with `state.db`, whose schema exists before the children race to open it.
fn fresh() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    open(&path, Duration::ZERO).close().unwrap();
    (dir, path)
}

fn open(path: &Path, purge: Duration) -> Store {
    Store::open_with(patient(StoreConfig::file(path).with_purge_interval(purge))).unwrap()
}

fn now_ms() -> i64 {
    SystemClock.now_ms()
}

/// Every row of `entries` as (group, key) -> value.
fn table(path: &Path) -> BTreeMap<(String, String), String> {
    let conn = raw(path);
    let mut stmt = conn
        .prepare("SELECT group_name, entry_key, entry_value FROM entries")
        .unwrap();
    let rows = stmt.query_map([], |r| Ok(((r.get(0)?, r.get(1)?), r.get(2)?)));
    rows.unwrap().collect::<Result<_, _>>().unwrap()
}

/// Live rows of groups `<namespace>:…` right now, read with raw SQL.
///
/// The clock is read after the snapshot starts, as the store's quota check reads it: a time read
/// before could judge the snapshot's rows by an earlier moment than any writer did, and count a
/// row as live that a write in the snapshot replaced because it had expired (under load, a few
/// milliseconds of descheduling showed 152 keys under `max_keys` 150 with 40 ms TTLs).
fn live_rows(conn: &rusqlite::Connection, namespace: &str) -> i64 {
    let snapshot = conn.unchecked_transaction().unwrap();
    snapshot
        .query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))
        .unwrap();
    let now = now_ms();
    snapshot
        .query_row(
            "SELECT count(*) FROM entries
             WHERE substr(group_name, 1, length(?1) + 1) = ?1 || ':'
               AND (expires_at IS NULL OR expires_at > ?2)",
            rusqlite::params![namespace, now],
            |r| r.get(0),
        )
        .unwrap()
}

/// The largest number of live rows of `namespace` seen while polling the file for `period`.
fn max_live_rows_during(path: &Path, namespace: &str, period: Duration) -> i64 {
    let conn = raw(path);
    let started = Instant::now();
    let mut max = 0;
    while started.elapsed() < period {
        max = max.max(live_rows(&conn, namespace));
        std::thread::sleep(Duration::from_millis(3));
    }
    max
}

fn assert_integrity(path: &Path) {
    let result: String = raw(path)
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(result, "ok");
}

/// Reads the whole feed (which must report no gap, in strictly increasing seq order) and checks
/// that replaying it gives exactly the rows of `entries`.
fn assert_feed_replays(path: &Path) -> Vec<Change> {
    let store = open(path, Duration::ZERO);
    assert!(!store.changes_since(0, 1).unwrap().gap, "the feed lost changes");
    let feed = all_changes_since(&store, 0);
    store.close().unwrap();
    assert!(feed.windows(2).all(|w| w[0].seq < w[1].seq), "feed out of order");
    assert_feed_replays_to_entries(path, &feed);
    feed
}

/// `usage()` of `namespace` equals a raw recount of its live rows (both at one fixed moment);
/// returns (keys, groups, bytes).
fn assert_usage_matches_recount(path: &Path, namespace: &str) -> (u64, u64, u64) {
    let now = now_ms();
    let config = StoreConfig::file(path)
        .with_purge_interval(Duration::ZERO)
        .with_clock(Arc::new(ManualClock::new(now)));
    let store = Store::open_with(config).unwrap();
    let usage = store.scoped(namespace).unwrap().usage().unwrap();
    store.close().unwrap();
    assert_eq!(
        usage,
        truth(path, namespace, now),
        "usage() of {namespace} vs the live rows"
    );
    (usage.keys, usage.groups, usage.bytes)
}

// ---------------------------------------------------------------------------------------------
// Child roles
// ---------------------------------------------------------------------------------------------

fn say(line: impl AsRef<str>) {
    println!("{MARKER}{}", line.as_ref());
}

/// Waits for the parent's start signal.
fn wait_go() {
    std::io::stdin().read_line(&mut String::new()).unwrap();
}

/// A numeric argument of the child (0 when absent).
fn num(args: &Value, name: &str) -> u64 {
    args[name].as_u64().unwrap_or(0)
}

#[test]
#[ignore = "helper: acts only as a child process of the tests in changes/multiprocess.rs"]
fn child_entry() {
    let Ok(args) = std::env::var(CHILD_ENV) else {
        return;
    };
    let args: Value = serde_json::from_str(&args).unwrap();
    let path = PathBuf::from(args["path"].as_str().unwrap());
    match args["role"].as_str().unwrap() {
        "groups_race" => groups_race_child(&path, &args),
        "quota_mix" => quota_mix_child(&path, &args),
        "feed_writer" => feed_writer_child(&path, &args),
        "tail" => tail_child(&path, &args),
        "pruner" => pruner_child(&path, &args),
        "incr" => increment_child(&path, &args),
        "cas" => cas_child(&path, &args),
        "ttl" => ttl_child(&path, &args),
        "ttl_many" => ttl_many_child(&path, &args),
        "kill_bigtx" => big_transactions_child(&path, &args),
        "kill_bulk" => bulk_child(&path, &args),
        "kill_purge" => purge_child(&path),
        "kill_delprefix" => delete_prefix_child(&path),
        "mixcfg" => feed_config_child(&path, &args),
        "open_write" => open_write_child(&path, &args),
        "hog" => hog_child(&path, &args),
        "small" => small_writes_child(&path, &args),
        role => panic!("unknown role {role}"),
    }
}

/// `per` new keys into 15 groups of namespace `gr` under `max_groups`: `OK g k v` or
/// `OVER g k <limit> <max> <requested>`.
fn groups_race_child(path: &Path, args: &Value) {
    let store = open(path, Duration::ZERO);
    let ns = store
        .scoped_with(ScopedConfig::new("gr").with_quota(quota(0, num(args, "max_groups"), 0)))
        .unwrap();
    say("READY");
    wait_go();
    let p = num(args, "proc");
    for i in 0..num(args, "per") {
        let g = format!("g{}", (p * 5 + i) % 15);
        let k = format!("k{p}_{i}");
        match ns.set(&g, &k, "v") {
            Ok(v) => say(format!("OK {g} {k} {v}")),
            Err(Error::QuotaExceeded {
                limit,
                max,
                requested,
                ..
            }) => say(format!("OVER {g} {k} {limit:?} {max} {requested}")),
            Err(e) => say(format!("ERROR {e}")),
        }
    }
    say("DONE");
}

/// Random inserts, growing and shrinking rewrites and deletes of the child's own keys in
/// namespace `mix` under all three limits; ends with `LIVE g k v` for every key it holds.
fn quota_mix_child(path: &Path, args: &Value) {
    let store = open(path, Duration::from_millis(num(args, "purge_ms")));
    let q = quota(
        num(args, "max_keys"),
        num(args, "max_groups"),
        num(args, "max_bytes"),
    );
    let ns = store.scoped_with(ScopedConfig::new("mix").with_quota(q)).unwrap();
    say("READY");
    wait_go();
    let p = num(args, "proc");
    let mut rng = Rng::new(p + 77);
    let mut mine: BTreeMap<String, (String, String)> = BTreeMap::new();
    for i in 0..num(args, "per") {
        let r = rng.below(10);
        let val = "x".repeat(1 + rng.below(40) as usize);
        if r < 8 || mine.is_empty() {
            // A new key, or a rewrite of one of ours.
            let (k, g) = if r < 6 || mine.is_empty() {
                (format!("k{p}_{i}"), format!("g{}", rng.below(7)))
            } else {
                let idx = rng.below(mine.len() as u64) as usize;
                let (k, (g, _)) = mine.iter().nth(idx).unwrap();
                (k.clone(), g.clone())
            };
            match ns.set(&g, &k, &val) {
                Ok(_) => {
                    mine.insert(k, (g, val));
                }
                Err(e) if e.is_quota_exceeded() => say(format!("OVER {e}")),
                Err(e) => say(format!("ERROR {e}")),
            }
        } else {
            let idx = rng.below(mine.len() as u64) as usize;
            let (k, (g, _)) = mine.iter().nth(idx).map(|(k, v)| (k.clone(), v.clone())).unwrap();
            match ns.delete(&g, &k) {
                Ok(true) => {
                    mine.remove(&k);
                }
                Ok(false) => say(format!("ERROR delete of own live key {g}/{k} returned false")),
                Err(e) => say(format!("ERROR {e}")),
            }
        }
    }
    for (k, (g, v)) in &mine {
        say(format!("LIVE {g} {k} {v}"));
    }
    say("DONE");
}

/// Sets, transactions (two sets and an increment), deletes and increments into group `w<proc>`;
/// `V <version>` for every version handed out by a set, and a final set into group `end`.
fn feed_writer_child(path: &Path, args: &Value) {
    let store = open(path, Duration::ZERO);
    say("READY");
    wait_go();
    let p = num(args, "proc");
    let mut rng = Rng::new(p + 5);
    let g = format!("w{p}");
    for i in 0..num(args, "per") {
        let r = rng.below(10);
        if r < 5 {
            let v = store.set(&g, &format!("k{}", i % 20), &format!("{i}")).unwrap();
            say(format!("V {v}"));
        } else if r < 7 {
            let (a, b) = store
                .transaction(|tx| {
                    let a = tx.set(&g, &format!("t{}", i % 7), "a")?;
                    let b = tx.set("shared", &format!("p{p}"), &format!("{i}"))?;
                    tx.increment(&g, "ctr", 1)?;
                    Ok((a, b))
                })
                .unwrap();
            say(format!("V {a}"));
            say(format!("V {b}"));
        } else if r < 8 {
            store.delete(&g, &format!("k{}", rng.below(20))).unwrap();
        } else {
            store.increment(&g, "n", 1).unwrap();
        }
        if num(args, "sleep_us") > 0 {
            std::thread::sleep(Duration::from_micros(num(args, "sleep_us")));
        }
    }
    let v = store.set("end", &format!("w{p}"), "done").unwrap();
    say(format!("V {v}"));
    say("DONE");
}

/// Follows the feed with page size `limit`, sleeping `sleep_ms` between polls: `B <after> <gap>
/// <first seq or 0> <next_seq> <len>` per batch and `C <seq>` per change. Stops at an empty batch
/// once all `writers` wrote their `end` key, or (with no writers) once `<path>.stop` exists.
fn tail_child(path: &Path, args: &Value) {
    let store = open(path, Duration::ZERO);
    let writers = num(args, "writers") as usize;
    let limit = num(args, "limit") as usize;
    let sleep = Duration::from_millis(num(args, "sleep_ms"));
    let stop_file = PathBuf::from(format!("{}.stop", path.display()));
    say("READY");
    let mut after = 0u64;
    let mut ends = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let b = store.changes_since(after, limit).unwrap();
        let first = b.changes.first().map_or(0, |c| c.seq);
        say(format!(
            "B {after} {} {first} {} {}",
            b.gap,
            b.next_seq,
            b.changes.len()
        ));
        for c in &b.changes {
            say(format!("C {}", c.seq));
            if c.group == "end" {
                ends.insert(c.key.clone().unwrap());
            }
        }
        let done = if writers > 0 {
            ends.len() >= writers
        } else {
            stop_file.exists()
        };
        if b.changes.is_empty() && done {
            break;
        }
        after = b.next_seq;
        assert!(Instant::now() < deadline, "the tail did not finish within 60 s");
        std::thread::sleep(sleep);
    }
    say("DONE");
}

/// Keeps the feed at `max_rows` (purge thread every 5 ms plus `prune_changes` in a loop) until
/// killed.
fn pruner_child(path: &Path, args: &Value) {
    let mut config = patient(StoreConfig::file(path).with_purge_interval(Duration::from_millis(5)));
    config.changes = ChangeFeedConfig {
        max_rows: Some(num(args, "max_rows")),
        ..ChangeFeedConfig::default()
    };
    let store = Store::open_with(config).unwrap();
    say("READY");
    loop {
        match store.prune_changes() {
            Ok(_) => {}
            Err(e) if e.is_busy() => {}
            Err(e) => say(format!("ERROR {e}")),
        }
        std::thread::sleep(Duration::from_millis(3));
    }
}

/// `per` increments of `c/n`: `I <new value>` each.
fn increment_child(path: &Path, args: &Value) {
    let store = open(path, Duration::ZERO);
    say("READY");
    wait_go();
    for _ in 0..num(args, "per") {
        match store.increment("c", "n", 1) {
            Ok(v) => say(format!("I {v}")),
            Err(e) => say(format!("ERROR {e}")),
        }
    }
    say("DONE");
}

/// `per` successful read-increment-`set_if_version` steps of `c/cas` (`OK <value> <version>`
/// each, then `CONFLICTS <n>`); after a second start signal, one must-be-absent write of
/// `c/claim`: `CLAIM OK <version>` or `CLAIM CONFLICT <winner's version>`.
fn cas_child(path: &Path, args: &Value) {
    let store = open(path, Duration::ZERO);
    say("READY");
    wait_go();
    let mut conflicts = 0;
    let mut done = 0;
    while done < num(args, "per") {
        let (current, version) = match store.get_with_version("c", "cas") {
            Ok(v) => (v.value.parse::<u64>().unwrap(), Some(v.version)),
            Err(e) if e.is_not_found() => (0, None),
            Err(e) => {
                say(format!("ERROR {e}"));
                continue;
            }
        };
        match store.set_if_version("c", "cas", &(current + 1).to_string(), version) {
            Ok(v) => {
                done += 1;
                say(format!("OK {} {v}", current + 1));
            }
            Err(Error::Conflict { expected, actual, .. }) => {
                conflicts += 1;
                if expected != version || actual == version {
                    say(format!(
                        "ERROR bad conflict: expected {expected:?}, actual {actual:?}, sent {version:?}"
                    ));
                }
            }
            Err(e) => say(format!("ERROR {e}")),
        }
    }
    say(format!("CONFLICTS {conflicts}"));
    wait_go();
    match store.set_if_version("c", "claim", &format!("p{}", num(args, "proc")), None) {
        Ok(v) => say(format!("CLAIM OK {v}")),
        Err(Error::Conflict { actual, .. }) => say(format!("CLAIM CONFLICT {}", actual.unwrap_or(0))),
        Err(e) => say(format!("ERROR {e}")),
    }
    say("DONE");
}

/// Short-TTL writes in namespace `t` under `max_keys` (purge thread every 5 ms), lazy reads of
/// other processes' keys, and now and then a scoped or whole-store `purge_expired`.
fn ttl_child(path: &Path, args: &Value) {
    let store = open(path, Duration::from_millis(5));
    let ns = store
        .scoped_with(ScopedConfig::new("t").with_quota(quota(num(args, "max_keys"), 0, 0)))
        .unwrap();
    say("READY");
    wait_go();
    let p = num(args, "proc");
    let mut rng = Rng::new(p + 1000);
    for i in 0..num(args, "per") {
        let g = format!("g{}", i % 3);
        let k = format!("k{p}_{}", rng.below(30));
        // Long enough that four processes hold more than 25 live keys even on a loaded machine.
        let ttl = Duration::from_millis(100 + rng.below(200));
        match ns.set_with_ttl(&g, &k, "val", ttl) {
            Ok(_) => {}
            Err(e) if e.is_quota_exceeded() => say("OVER"),
            Err(e) => say(format!("ERROR {e}")),
        }
        // Lazy expiry of a key another process may be expiring at the same time.
        let other = format!("k{}_{}", rng.below(num(args, "procs")), rng.below(30));
        match ns.get(&format!("g{}", rng.below(3)), &other) {
            Ok(_) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => say(format!("ERROR {e}")),
        }
        if rng.below(20) == 0
            && let Err(e) = ns.purge_expired()
        {
            say(format!("ERROR scoped purge: {e}"));
        }
        if rng.below(25) == 0
            && let Err(e) = store.purge_expired()
        {
            say(format!("ERROR purge: {e}"));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    // The store stays open (its purge thread running) until the purge threads have removed
    // every row, however loaded the machine: the test then checks they left none.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !table(path).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    say("DONE");
}

/// `per` writes or more, for 2 s, with a 200 ms TTL in namespace `tm` under `max_keys`, no purge
/// thread (so the writes near the limit purge expired rows after commit): `OVER` for each
/// refusal. The TTL is long enough for four processes to reach the quota even on a loaded
/// machine.
fn ttl_many_child(path: &Path, args: &Value) {
    let store = open(path, Duration::ZERO);
    let ns = store
        .scoped_with(ScopedConfig::new("tm").with_quota(quota(num(args, "max_keys"), 0, 0)))
        .unwrap();
    say("READY");
    wait_go();
    let p = num(args, "proc");
    // At least `per` writes, and for at least ten TTLs, so many rows expire however fast or
    // slow the machine writes.
    let started = Instant::now();
    let mut i = 0;
    while i < num(args, "per") || started.elapsed() < Duration::from_secs(2) {
        i += 1;
        match ns.set_with_ttl("g", &format!("k{p}_{i}"), "val", Duration::from_millis(200)) {
            Ok(_) => {}
            Err(e) if e.is_quota_exceeded() => say("OVER"),
            Err(e) => say(format!("ERROR {e}")),
        }
        if i % 50 == 0 {
            std::thread::sleep(Duration::from_millis(12));
        }
    }
    say("DONE");
}

/// Until killed: transactions of `size` sets into a new group `k:r<proc>_<n>`,
/// `COMMITTED r<proc>_<n>` after each.
fn big_transactions_child(path: &Path, args: &Value) {
    let store = open(path, Duration::ZERO);
    let ns = store
        .scoped_with(ScopedConfig::new("k").with_quota(quota(1_000_000, 0, 0)))
        .unwrap();
    say("READY");
    for r in 0.. {
        let g = format!("r{}_{r}", num(args, "proc"));
        ns.transaction(|tx| {
            for i in 0..num(args, "size") {
                tx.set(&g, &format!("k{i}"), "value-value")?;
            }
            Ok(())
        })
        .unwrap();
        say(format!("COMMITTED {g}"));
    }
}

/// Until killed (checkpointing often): a scoped set and an increment of `ctr/p<proc>` per step,
/// acknowledged as `ACK <group> <key> <version> <counter value>`.
fn bulk_child(path: &Path, args: &Value) {
    let config = patient(
        StoreConfig::file(path)
            .with_purge_interval(Duration::ZERO)
            .with_checkpoint_pages(20),
    );
    let store = Store::open_with(config).unwrap();
    let ns = store.scoped("b").unwrap();
    let p = num(args, "proc");
    say("READY");
    for i in 0u64.. {
        let g = format!("g{}", i % 9);
        let k = format!("p{p}_{i}");
        let v = ns.set(&g, &k, "bulk").unwrap();
        let c = store.increment("ctr", &format!("p{p}"), 1).unwrap();
        say(format!("ACK {g} {k} {v} {c}"));
    }
}

/// Until killed: `purge_expired` in a loop (and a purge thread every millisecond).
fn purge_child(path: &Path) {
    let store = open(path, Duration::from_millis(1));
    say("READY");
    loop {
        match store.purge_expired() {
            Ok(n) => say(format!("PURGED {n}")),
            Err(e) => say(format!("ERROR {e}")),
        }
    }
}

/// One `delete_prefix("")` over namespace `d` (`DELETED <n>`), then idles until killed.
fn delete_prefix_child(path: &Path) {
    let store = open(path, Duration::ZERO);
    let ns = store.scoped("d").unwrap();
    say("READY");
    let n = ns.delete_prefix("").unwrap();
    say(format!("DELETED {n}"));
    std::thread::sleep(Duration::from_secs(30));
}

/// With the feed on or off (`feed`): `per` sets into `m<proc>`, each followed by a transaction
/// incrementing `m/shared`: `V <set version> <counter value> <counter version>`.
fn feed_config_child(path: &Path, args: &Value) {
    let mut config = patient(StoreConfig::file(path).with_purge_interval(Duration::ZERO));
    config.changes.enabled = args["feed"].as_bool().unwrap();
    let store = Store::open_with(config).unwrap();
    say("READY");
    wait_go();
    for i in 0..num(args, "per") {
        let v = store
            .set(&format!("m{}", num(args, "proc")), &format!("k{i}"), "v")
            .unwrap();
        let (w, wv) = store
            .transaction(|tx| {
                let w = tx.increment("m", "shared", 1)?;
                Ok((w, tx.get_with_version("m", "shared")?.version))
            })
            .unwrap();
        say(format!("V {v} {w} {wv}"));
    }
    say("DONE");
}

/// Opens the file only after the start signal, then writes `per` new keys into namespace `lg`
/// under `max_keys`: `OK` or `OVER` each.
fn open_write_child(path: &Path, args: &Value) {
    say("READY");
    wait_go();
    let store = match Store::open_with(patient(
        StoreConfig::file(path).with_purge_interval(Duration::ZERO),
    )) {
        Ok(s) => s,
        Err(e) => {
            say(format!("ERROR open: {e}"));
            return;
        }
    };
    let ns = store
        .scoped_with(ScopedConfig::new("lg").with_quota(quota(num(args, "max_keys"), 0, 0)))
        .unwrap();
    let p = num(args, "proc");
    for i in 0..num(args, "per") {
        match ns.set(&format!("g{}", i % 10), &format!("new{p}_{i}"), "val") {
            Ok(_) => say("OK"),
            Err(e) if e.is_quota_exceeded() => say("OVER"),
            Err(e) => say(format!("ERROR {e}")),
        }
    }
    say("DONE");
}

/// Back-to-back transactions of `size` sets for `ms` milliseconds: `ROUNDS <n>`.
fn hog_child(path: &Path, args: &Value) {
    let store = open(path, Duration::ZERO);
    say("READY");
    wait_go();
    let started = Instant::now();
    let mut rounds = 0;
    while started.elapsed() < Duration::from_millis(num(args, "ms")) {
        store
            .transaction(|tx| {
                for i in 0..num(args, "size") {
                    tx.set("hog", &format!("k{i}"), &format!("{rounds}"))?;
                }
                Ok(())
            })
            .unwrap();
        rounds += 1;
    }
    say(format!("ROUNDS {rounds}"));
    say("DONE");
}

/// Single sets every 5 ms for `ms` milliseconds: `WORST <slowest write in ms> <writes>`.
fn small_writes_child(path: &Path, args: &Value) {
    // The default busy timeout (5 s), which this child's test is about.
    let store = Store::open_with(StoreConfig::file(path).with_purge_interval(Duration::ZERO)).unwrap();
    say("READY");
    wait_go();
    let started = Instant::now();
    let mut worst = Duration::ZERO;
    let (mut i, mut ok) = (0, 0u64);
    while started.elapsed() < Duration::from_millis(num(args, "ms")) {
        let t = Instant::now();
        match store.set("small", &format!("k{}", i % 50), "v") {
            Ok(_) => ok += 1,
            Err(e) if e.is_busy() => say(format!("BUSY {}", t.elapsed().as_millis())),
            Err(e) => say(format!("ERROR after {:?}: {e}", t.elapsed())),
        }
        worst = worst.max(t.elapsed());
        i += 1;
        std::thread::sleep(Duration::from_millis(5));
    }
    say(format!("WORST {} {i}", worst.as_millis()));
    say(format!("SMALL_OK {ok}"));
    say("DONE");
}

// ---------------------------------------------------------------------------------------------
// Quotas across processes
// ---------------------------------------------------------------------------------------------

/// 6 processes race new keys into 15 groups under max_groups = 7: exactly 7 groups exist, every
/// acknowledged write is there, and every refusal is `Groups` with max 7 and requested 8.
#[test]
fn processes_racing_into_new_groups_create_exactly_max_groups_and_refuse_the_rest() {
    let (_dir, path) = fresh();
    let args =
        (0..6).map(|p| json!({"role": "groups_race", "path": path, "proc": p, "per": 30, "max_groups": 7}));
    let lines = finish_all(start(args.collect()));
    let store = open(&path, Duration::ZERO);
    let ns = store.scoped("gr").unwrap();
    let groups: BTreeSet<String> = ns.groups("").unwrap().into_iter().collect();
    assert_eq!(groups.len(), 7, "groups: {groups:?}");
    let mut ok = 0;
    for line in &lines {
        match line.split(' ').collect::<Vec<_>>()[..] {
            ["OK", g, k, _] => {
                ok += 1;
                assert!(groups.contains(g), "{line}");
                assert_eq!(ns.get(g, k).unwrap(), "v");
            }
            ["OVER", _, _, limit, max, requested] => {
                assert_eq!([limit, max, requested], ["Groups", "7", "8"], "{line}");
            }
            _ => {}
        }
    }
    assert_eq!(ns.count_all("").unwrap(), ok);
    store.close().unwrap();
    assert_usage_matches_recount(&path, "gr");
    assert_counters_equal_a_recount(&path);
}

/// 6 processes with all three quotas set insert, rewrite (growing and shrinking) and delete their
/// own keys, with purge threads on: the namespace ends holding exactly the union of what each
/// process believes it holds, and usage is within every limit and equals a recount.
#[test]
fn processes_inserting_rewriting_and_deleting_under_all_three_quotas_keep_usage_exact() {
    let (_dir, path) = fresh();
    let (max_keys, max_groups, max_bytes) = (40u64, 5u64, 900u64);
    let args = (0..6).map(|p| {
        json!({
            "role": "quota_mix", "path": path, "proc": p, "per": 150, "purge_ms": 7,
            "max_keys": max_keys, "max_groups": max_groups, "max_bytes": max_bytes,
        })
    });
    let lines = finish_all(start(args.collect()));
    assert!(
        lines.iter().any(|l| l.starts_with("OVER")),
        "the workload never hit a quota"
    );
    let mut expected = BTreeMap::new();
    for line in lines.iter().filter_map(|l| l.strip_prefix("LIVE ")) {
        let f: Vec<&str> = line.splitn(3, ' ').collect();
        expected.insert((format!("mix:{}", f[0]), f[1].to_string()), f[2].to_string());
    }
    let actual: BTreeMap<_, _> = table(&path)
        .into_iter()
        .filter(|((g, _), _)| g.starts_with("mix:"))
        .collect();
    assert_eq!(actual, expected);
    let (keys, groups, bytes) = assert_usage_matches_recount(&path, "mix");
    assert!(
        keys <= max_keys && groups <= max_groups && bytes <= max_bytes,
        "usage {keys} keys, {groups} groups, {bytes} bytes is over the quota"
    );
    assert_counters_equal_a_recount(&path);
    assert_feed_replays(&path);
}

// ---------------------------------------------------------------------------------------------
// Change feed across processes
// ---------------------------------------------------------------------------------------------

/// A batch the tail reported: `after`, `gap`, and the first seq it returned (0: none).
struct Batch {
    after: u64,
    gap: bool,
    first: u64,
}

/// The seqs the tail saw, in order, and its batches.
fn parse_tail(lines: &[String]) -> (Vec<u64>, Vec<Batch>) {
    let mut seqs = Vec::new();
    let mut batches = Vec::new();
    for line in lines {
        match line.split(' ').collect::<Vec<_>>()[..] {
            ["C", seq] => seqs.push(seq.parse().unwrap()),
            ["B", after, gap, first, ..] => batches.push(Batch {
                after: after.parse().unwrap(),
                gap: gap == "true",
                first: first.parse().unwrap(),
            }),
            _ => {}
        }
    }
    (seqs, batches)
}

fn writer_versions(lines: &[String]) -> Vec<u64> {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix("V "))
        .map(|v| v.parse().unwrap())
        .collect()
}

#[track_caller]
fn assert_strictly_increasing(seqs: &[u64], who: &str) {
    for w in seqs.windows(2) {
        assert!(w[0] < w[1], "{who} saw {} then {}", w[0], w[1]);
    }
}

/// 4 writer processes (sets, transactions, deletes, increments) and a reader process tailing
/// `changes_since` with a small page while they write: the reader sees exactly the final feed, in
/// order, each change once, including every version a writer was handed; no version is handed
/// out twice.
#[test]
fn a_reader_process_tailing_the_feed_sees_every_change_of_concurrent_writer_processes_once_in_order() {
    let (_dir, path) = fresh();
    let mut tail =
        spawn_child(json!({"role": "tail", "path": path, "writers": 4, "limit": 7, "sleep_ms": 0}));
    tail.wait_for("READY");
    let args = (0..4).map(|p| json!({"role": "feed_writer", "path": path, "proc": p, "per": 300}));
    let written = finish_all(start(args.collect()));
    let (seen, _) = parse_tail(&tail.finish());
    assert_strictly_increasing(&seen, "the tail");
    let feed: Vec<u64> = assert_feed_replays(&path).iter().map(|c| c.seq).collect();
    let seen_set: BTreeSet<u64> = seen.iter().copied().collect();
    let missing: Vec<u64> = feed.iter().filter(|s| !seen_set.contains(s)).copied().collect();
    assert!(
        missing.is_empty(),
        "the tail missed {} committed changes, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    assert_eq!(seen, feed);
    let versions = writer_versions(&written);
    assert!(versions.iter().all(|v| seen_set.contains(v)));
    let unique: BTreeSet<u64> = versions.iter().copied().collect();
    assert_eq!(
        unique.len(),
        versions.len(),
        "two writers were handed the same version"
    );
}

/// As above, with a pruner process keeping only 40 feed rows and a slow reader: every committed
/// version the reader did not see falls inside a batch that reported `gap = true`, and what it
/// saw is strictly increasing. The pruner is SIGKILLed mid-loop and the file stays intact.
#[test]
fn a_slow_reader_process_reports_a_gap_for_every_change_a_pruner_process_removed_unread() {
    let (_dir, path) = fresh();
    let mut pruner = spawn_child(json!({"role": "pruner", "path": path, "max_rows": 40}));
    pruner.wait_for("READY");
    let mut tail =
        spawn_child(json!({"role": "tail", "path": path, "writers": 0, "limit": 13, "sleep_ms": 50}));
    tail.wait_for("READY");
    let args =
        (0..3).map(|p| json!({"role": "feed_writer", "path": path, "proc": p, "per": 250, "sleep_us": 300}));
    let written = finish_all(start(args.collect()));
    std::fs::write(format!("{}.stop", path.display()), "").unwrap();
    let (seen, batches) = parse_tail(&tail.finish());
    assert_no_errors(&pruner.kill());
    assert_strictly_increasing(&seen, "the tail");
    let seen_set: BTreeSet<u64> = seen.iter().copied().collect();
    // A gap batch covers the seqs after `after` and before its first change (all, if empty).
    let gaps: Vec<(u64, u64)> = batches
        .iter()
        .filter(|b| b.gap)
        .map(|b| (b.after, if b.first == 0 { u64::MAX } else { b.first }))
        .collect();
    assert!(
        !gaps.is_empty(),
        "the slow reader never saw a gap: the pruner did nothing?"
    );
    let unexplained: Vec<u64> = writer_versions(&written)
        .into_iter()
        .filter(|v| !seen_set.contains(v))
        .filter(|v| !gaps.iter().any(|(after, first)| after < v && v < first))
        .collect();
    assert!(
        unexplained.is_empty(),
        "the reader missed committed versions without a gap: {unexplained:?}"
    );
    assert_integrity(&path);
}

// ---------------------------------------------------------------------------------------------
// Increments and compare-and-set across processes
// ---------------------------------------------------------------------------------------------

#[test]
fn increments_from_six_processes_total_exactly_and_hand_out_each_value_once() {
    let (_dir, path) = fresh();
    let args = (0..6).map(|p| json!({"role": "incr", "path": path, "proc": p, "per": 200}));
    let lines = finish_all(start(args.collect()));
    let mut values: Vec<u64> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("I "))
        .map(|v| v.parse().unwrap())
        .collect();
    values.sort_unstable();
    assert_eq!(values, (1..=1200).collect::<Vec<_>>());
    let store = open(&path, Duration::ZERO);
    assert_eq!(store.get("c", "n").unwrap(), "1200");
    let feed = all_changes_since(&store, 0);
    assert_eq!(feed.iter().filter(|c| c.kind == EventKind::Set).count(), 1200);
}

/// 5 processes each complete 40 read-increment-`set_if_version` steps on one key: every value
/// 1..=200 is written once, in version order, and every conflict names the version sent and a
/// different current one. Then all 5 race a must-be-absent write: exactly one wins, and every
/// loser's conflict names the winner's version.
#[test]
fn compare_and_set_loops_in_five_processes_apply_every_step_once_and_one_process_wins_a_claim() {
    let (_dir, path) = fresh();
    let args = (0..5).map(|p| json!({"role": "cas", "path": path, "proc": p, "per": 40}));
    let mut children = start(args.collect());
    for child in &mut children {
        read_until_prefix(child, "CONFLICTS");
    }
    children.iter_mut().for_each(go);
    let lines = finish_all(children);
    let mut steps: Vec<(u64, u64)> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("OK "))
        .map(|l| {
            let (value, version) = l.split_once(' ').unwrap();
            (value.parse().unwrap(), version.parse().unwrap())
        })
        .collect();
    steps.sort_unstable();
    assert_eq!(
        steps.iter().map(|s| s.0).collect::<Vec<_>>(),
        (1..=200).collect::<Vec<_>>()
    );
    for w in steps.windows(2) {
        assert!(
            w[0].1 < w[1].1,
            "value {} got version {} after value {} got {}",
            w[1].0,
            w[1].1,
            w[0].0,
            w[0].1
        );
    }
    let claims: Vec<&String> = lines.iter().filter(|l| l.starts_with("CLAIM OK")).collect();
    assert_eq!(claims.len(), 1, "{claims:?}");
    let winner = claims[0].rsplit(' ').next().unwrap();
    for line in lines.iter().filter(|l| l.starts_with("CLAIM CONFLICT")) {
        assert_eq!(line.rsplit(' ').next().unwrap(), winner, "{line}");
    }
}

// ---------------------------------------------------------------------------------------------
// TTL expiry and purges in several processes
// ---------------------------------------------------------------------------------------------

/// 4 processes with purge threads every 5 ms write short-TTL keys under max_keys 25, lazily read
/// each other's keys and call `purge_expired`: a snapshot never shows more than 25 live keys, every
/// expired row is reported once (the feed replays to `entries`), and at the end every row is
/// purged and the counters equal a recount.
#[test]
fn ttl_writes_lazy_expiry_and_purges_in_four_processes_report_each_expiry_once_and_keep_counters_exact() {
    let (_dir, path) = fresh();
    let args = (0..4)
        .map(|p| json!({"role": "ttl", "path": path, "proc": p, "procs": 4, "per": 250, "max_keys": 25}));
    let children = start(args.collect());
    let max_live = max_live_rows_during(&path, "t", Duration::from_millis(1500));
    let lines = finish_all(children);
    assert!(lines.iter().any(|l| l == "OVER"), "the quota was never reached");
    assert!(
        max_live <= 25,
        "a snapshot showed {max_live} live keys over max_keys 25"
    );
    assert_eq!(table(&path).len(), 0, "the purge threads left rows behind");
    assert_eq!(assert_usage_matches_recount(&path, "t"), (0, 0, 0));
    assert_counters_equal_a_recount(&path);
    let feed = assert_feed_replays(&path);
    assert!(feed.iter().any(|c| c.kind == EventKind::Expired));
}

/// Many expired rows and no purge thread: writes near the limit trigger the after-commit purge of
/// 128+ expired rows in four processes at once. No row is reported expired twice, a snapshot never
/// shows more live keys than the quota, and the counters equal a recount.
#[test]
fn after_commit_purges_racing_in_four_processes_report_each_expiry_once_and_never_exceed_max_keys() {
    let (_dir, path) = fresh();
    let args =
        (0..4).map(|p| json!({"role": "ttl_many", "path": path, "proc": p, "per": 600, "max_keys": 150}));
    let children = start(args.collect());
    let max_live = max_live_rows_during(&path, "tm", Duration::from_millis(800));
    let lines = finish_all(children);
    assert!(count(&lines, "OVER") > 0, "the quota was never reached");
    assert!(
        max_live <= 150,
        "a snapshot showed {max_live} live keys over max_keys 150"
    );
    assert_counters_equal_a_recount(&path);
    assert_usage_matches_recount(&path, "tm");
    let feed = assert_feed_replays(&path);
    assert!(feed.iter().filter(|c| c.kind == EventKind::Expired).count() > 128);
}

// ---------------------------------------------------------------------------------------------
// SIGKILL mid-work
// ---------------------------------------------------------------------------------------------

/// `groups` × `per` rows in namespace `p` that expired long ago (written at a clock 10 s back,
/// TTL 1 ms).
fn populate_expired(path: &Path, groups: usize, per: usize) {
    let clock = Arc::new(ManualClock::new(now_ms() - 10_000));
    let config = StoreConfig::file(path)
        .with_purge_interval(Duration::ZERO)
        .with_clock(clock);
    let store = Store::open_with(config).unwrap();
    let ns = store.scoped("p").unwrap();
    ns.transaction(|tx| {
        for g in 0..groups {
            for i in 0..per {
                tx.set_with_ttl(
                    &format!("e{g}"),
                    &format!("k{i}"),
                    "expired-value",
                    Duration::from_millis(1),
                )?;
            }
        }
        Ok(())
    })
    .unwrap();
    store.close().unwrap();
}

/// 10,000 rows in 40 groups of namespace `d`.
fn populate_for_delete_prefix(path: &Path) {
    let store = open(path, Duration::ZERO);
    let ns = store.scoped("d").unwrap();
    ns.transaction(|tx| {
        for g in 0..40 {
            for i in 0..250 {
                tx.set(&format!("dg{g}"), &format!("k{i}"), "to-delete")?;
            }
        }
        Ok(())
    })
    .unwrap();
    store.close().unwrap();
}

/// Rounds of: a big-transaction writer, two acknowledged bulk writers, a purger over 30,000
/// expired rows and a scoped `delete_prefix` over 10,000 rows, all on one file, each SIGKILLed at
/// a random moment. After every round the file passes `integrity_check`, every transaction is all
/// or nothing, every acknowledged write and counter step is there, versions keep increasing, the
/// feed replays to `entries` and the counters equal a recount.
#[test]
fn processes_sigkilled_mid_transaction_bulk_purge_and_delete_prefix_leave_a_consistent_file() {
    let (_dir, path) = fresh();
    let mut rng = Rng::new(42);
    let mut acked: HashMap<(String, String), u64> = HashMap::new();
    let mut counters: HashMap<String, u64> = HashMap::new();
    let mut committed = BTreeSet::new();
    for round in 0..3u64 {
        populate_expired(&path, 6, 5000);
        populate_for_delete_prefix(&path);
        let mut children: Vec<Option<ChildProcess>> = [
            json!({"role": "kill_bigtx", "path": path, "proc": round, "size": 8000}),
            json!({"role": "kill_bulk", "path": path, "proc": round * 10}),
            json!({"role": "kill_bulk", "path": path, "proc": round * 10 + 1}),
            json!({"role": "kill_purge", "path": path}),
            json!({"role": "kill_delprefix", "path": path}),
        ]
        .into_iter()
        .map(|args| Some(spawn_child(args)))
        .collect();
        for child in children.iter_mut().flatten() {
            child.wait_for("READY");
        }
        let mut order: Vec<usize> = (0..children.len()).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i as u64 + 1) as usize);
        }
        let mut all = Vec::new();
        for i in order {
            std::thread::sleep(Duration::from_millis(30 + rng.below(250)));
            all.extend(children[i].take().unwrap().kill());
        }
        assert_no_errors(&all);
        for line in &all {
            match line.split(' ').collect::<Vec<_>>()[..] {
                ["ACK", g, k, v, c] => {
                    acked.insert((format!("b:{g}"), k.into()), v.parse().unwrap());
                    let p = k.split('_').next().unwrap().to_string();
                    let c: u64 = c.parse().unwrap();
                    let e = counters.entry(p).or_default();
                    *e = (*e).max(c);
                }
                ["COMMITTED", g] => {
                    committed.insert(g.to_string());
                }
                _ => {}
            }
        }
        eprintln!(
            "round {round}: {} lines, {} acked, {} transactions committed, {} purges, deleted: {:?}",
            all.len(),
            acked.len(),
            committed.len(),
            all.iter().filter(|l| l.starts_with("PURGED")).count(),
            all.iter().find(|l| l.starts_with("DELETED"))
        );
        assert_integrity(&path);
        let rows = table(&path);
        for ((g, k), v) in &acked {
            assert!(
                rows.contains_key(&(g.clone(), k.clone())),
                "acknowledged write {g}/{k} (v{v}) lost"
            );
        }
        let store = open(&path, Duration::ZERO);
        for (p, c) in &counters {
            let got: u64 = store.get("ctr", p).unwrap().parse().unwrap();
            // The increment after the last acknowledgement may have committed before the kill.
            assert!(
                (*c..=*c + 1).contains(&got),
                "counter {p} = {got}, acknowledged {c}"
            );
        }
        let mut per_transaction: BTreeMap<String, usize> = BTreeMap::new();
        for (g, _) in rows.keys() {
            if let Some(g) = g.strip_prefix("k:") {
                *per_transaction.entry(g.into()).or_default() += 1;
            }
        }
        for (g, n) in &per_transaction {
            assert_eq!(*n, 8000, "transaction {g} partially committed");
        }
        for g in &committed {
            assert_eq!(
                per_transaction.get(g),
                Some(&8000),
                "committed transaction {g} missing"
            );
        }
        let d = rows.keys().filter(|(g, _)| g.starts_with("d:")).count();
        assert!(d == 0 || d == 10_000, "delete_prefix left {d} of 10,000 rows");
        let before = store.last_seq().unwrap();
        let v = store.set("after", "kill", "x").unwrap();
        assert!(v > before, "version {v} after the kills is not above {before}");
        store.close().unwrap();
        assert_counters_equal_a_recount(&path);
        for ns in ["k", "b", "p", "d"] {
            assert_usage_matches_recount(&path, ns);
        }
        assert_feed_replays(&path);
    }
}

/// Writes `rows` rows (keys `f<i>`, groups `group(i)`) into an `entries` table without counters
/// or a version column at `path`, as another program would.
fn foreign_entries_file(path: &Path, rows: usize, group: impl Fn(usize) -> String, value: &str) {
    let conn = raw(path);
    conn.execute_batch(
        "PRAGMA journal_mode=WAL;
         CREATE TABLE entries (group_name TEXT NOT NULL, entry_key TEXT NOT NULL,
             entry_value TEXT NOT NULL, expires_at INTEGER, PRIMARY KEY (group_name, entry_key));",
    )
    .unwrap();
    let tx = conn.unchecked_transaction().unwrap();
    for i in 0..rows {
        tx.execute(
            "INSERT INTO entries VALUES (?1, ?2, ?3, NULL)",
            rusqlite::params![group(i), format!("f{i}"), value],
        )
        .unwrap();
    }
    tx.commit().unwrap();
}

/// A process opening a large file without counters is SIGKILLed while it builds them (six times,
/// at different moments); the next clean open still ends with exact counters.
#[test]
fn process_killed_while_building_counters_on_open_leaves_a_file_whose_counters_end_exact() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("foreign.db");
    foreign_entries_file(
        &path,
        200_000,
        |i| format!("ns{}:g{}", i % 7, i % 100),
        "foreign-value",
    );
    let mut rng = Rng::new(9);
    for round in 0..6 {
        let mut child =
            spawn_child(json!({"role": "open_write", "path": path, "proc": round, "per": 100_000}));
        child.wait_for("READY");
        go(&mut child);
        std::thread::sleep(Duration::from_millis(20 + rng.below(300)));
        let lines = child.kill();
        assert_no_errors(&lines);
        eprintln!(
            "round {round}: the child wrote {} before the kill",
            count(&lines, "OK")
        );
        assert_integrity(&path);
    }
    open(&path, Duration::ZERO).close().unwrap();
    assert_counters_equal_a_recount(&path);
    assert_usage_matches_recount(&path, "lg");
    assert_usage_matches_recount(&path, "ns3");
}

// ---------------------------------------------------------------------------------------------
// Opening one file at once: new files, legacy files, files without counters
// ---------------------------------------------------------------------------------------------

/// `procs` processes open the file at `path` at the same moment and each write `per` new keys
/// into namespace `lg` under `max_keys` (0: unlimited).
fn open_race(path: &Path, procs: u64, per: u64, max_keys: u64) -> Vec<String> {
    let args = (0..procs)
        .map(|p| json!({"role": "open_write", "path": path, "proc": p, "per": per, "max_keys": max_keys}));
    finish_all(start(args.collect()))
}

#[test]
fn six_processes_creating_the_same_new_file_at_once_all_open_and_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.db");
    let lines = open_race(&path, 6, 30, 0);
    assert_eq!(count(&lines, "OK"), 180);
    assert_eq!(table(&path).len(), 180);
    assert_counters_equal_a_recount(&path);
    assert_feed_replays(&path);
}

/// A legacy `kv` table migrated while six processes open the file at once: every legacy row is
/// migrated exactly once, `kv` is gone, nobody fails, and the quota counts the migrated rows.
#[test]
fn six_processes_opening_a_legacy_kv_file_at_once_migrate_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("legacy.db");
    {
        let conn = raw(&path);
        conn.execute_batch(
            "CREATE TABLE kv (grp TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
                              PRIMARY KEY (grp, key));",
        )
        .unwrap();
        for i in 0..500 {
            conn.execute(
                "INSERT INTO kv VALUES (?1, ?2, 'old')",
                rusqlite::params![format!("lg:g{}", i % 10), format!("old{i}")],
            )
            .unwrap();
        }
    }
    let lines = open_race(&path, 6, 30, 520);
    assert_eq!(
        count(&lines, "OK"),
        20,
        "max_keys 520 over 500 migrated rows leaves room for exactly 20"
    );
    assert_eq!(table(&path).len(), 520);
    let kv: i64 = raw(&path)
        .query_row("SELECT count(*) FROM sqlite_master WHERE name = 'kv'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(kv, 0, "the legacy table is gone");
    assert_counters_equal_a_recount(&path);
    assert_usage_matches_recount(&path, "lg");
}

/// An `entries` table written by another program (no counters, no version column) opened by six
/// processes at once that immediately race for the remaining quota: the counters are built once
/// and exactly, and exactly the remaining room is written.
#[test]
fn six_processes_opening_a_file_without_counters_at_once_build_them_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("foreign.db");
    foreign_entries_file(&path, 3000, |i| format!("lg:g{}", i % 10), "foreign");
    let lines = open_race(&path, 6, 40, 3100);
    assert_eq!(count(&lines, "OK"), 100);
    assert_eq!(table(&path).len(), 3100);
    assert_counters_equal_a_recount(&path);
    assert_usage_matches_recount(&path, "lg");
}

// ---------------------------------------------------------------------------------------------
// Different configurations on one file
// ---------------------------------------------------------------------------------------------

/// Two processes with the change feed on and two with it off write the same file at once, each
/// set followed by an increment of one shared counter: every version is a distinct number, each
/// process's versions increase, and the counter's values 1..=1200 got versions in commit order.
#[test]
fn feed_on_and_feed_off_processes_on_one_file_hand_out_unique_increasing_versions() {
    let (_dir, path) = fresh();
    let args =
        (0..4).map(|p| json!({"role": "mixcfg", "path": path, "proc": p, "per": 300, "feed": p % 2 == 0}));
    let children = start(args.collect());
    let mut versions = Vec::new();
    let mut increments: Vec<(u64, u64)> = Vec::new();
    for child in children {
        let mut set_versions = Vec::new();
        for line in child.finish().iter().filter_map(|l| l.strip_prefix("V ")) {
            let f: Vec<u64> = line.split(' ').map(|x| x.parse().unwrap()).collect();
            set_versions.push(f[0]);
            increments.push((f[1], f[2]));
        }
        assert_strictly_increasing(&set_versions, "one process");
        versions.extend(set_versions);
    }
    increments.sort_unstable();
    assert_eq!(
        increments.iter().map(|i| i.0).collect::<Vec<_>>(),
        (1..=1200).collect::<Vec<_>>()
    );
    for w in increments.windows(2) {
        assert!(
            w[0].1 < w[1].1,
            "commit order vs version order: value {} has version {}, value {} has {}",
            w[0].0,
            w[0].1,
            w[1].0,
            w[1].1
        );
    }
    let store = open(&path, Duration::ZERO);
    assert_eq!(store.get("m", "shared").unwrap(), "1200");
    store.close().unwrap();
    versions.extend(increments.iter().map(|i| i.1));
    let n = versions.len();
    versions.sort_unstable();
    versions.dedup();
    assert_eq!(
        versions.len(),
        n,
        "duplicate versions across feed-on and feed-off processes"
    );
    let shared: i64 = raw(&path)
        .query_row(
            "SELECT count(*) FROM (SELECT version FROM entries WHERE version > 0
                                   GROUP BY version HAVING count(*) > 1)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(shared, 0, "rows share a version");
}

/// Handles with the feed on and off taking turns on one file: each write's version is above the
/// last, and the feed-off handle refuses to read the feed.
#[test]
fn feed_on_and_off_handles_taking_turns_keep_versions_increasing() {
    let (_dir, path) = fresh();
    let on = open(&path, Duration::ZERO);
    let mut config = StoreConfig::file(&path).with_purge_interval(Duration::ZERO);
    config.changes.enabled = false;
    let off = Store::open_with(config).unwrap();
    let mut last = 0;
    for i in 0..200 {
        let s = if i % 3 == 0 { &off } else { &on };
        let v = s.set("turns", &format!("k{}", i % 7), "v").unwrap();
        assert!(v > last, "write {i} got version {v} after {last}");
        last = v;
        s.increment("turns", "ctr", 1).unwrap();
        let v = on.get_with_version("turns", "ctr").unwrap().version;
        assert!(v > last, "increment {i} got version {v} after {last}");
        last = v;
    }
    assert_eq!(
        off.changes_since(0, 10).unwrap_err().kind(),
        ErrorKind::Unsupported
    );
}

/// Two handles with different quotas for one namespace: each enforces its own quota against the
/// shared, on-disk usage ("Quotas live on the handle, not on disk"), and an update of a live key
/// is allowed even over the quota.
#[test]
fn handles_with_different_quotas_for_one_namespace_each_enforce_theirs_against_the_shared_usage() {
    let (_dir, path) = fresh();
    let a = open(&path, Duration::ZERO);
    let b = open(&path, Duration::ZERO);
    let small = a
        .scoped_with(ScopedConfig::new("q").with_quota(quota(5, 0, 0)))
        .unwrap();
    let big = b
        .scoped_with(ScopedConfig::new("q").with_quota(quota(10, 0, 0)))
        .unwrap();
    for i in 0..10 {
        big.set("g", &format!("k{i}"), "v").unwrap();
    }
    assert!(big.set("g", "k10", "v").unwrap_err().is_quota_exceeded());
    match small.set("g", "x", "v") {
        Err(Error::QuotaExceeded {
            limit: QuotaLimit::Keys,
            max: 5,
            requested: 11,
            ..
        }) => {}
        other => panic!("expected QuotaExceeded(Keys, max 5, requested 11), got {other:?}"),
    }
    small.set("g", "k1", "w").unwrap();
    assert_eq!(small.usage().unwrap().keys, 10);
}

/// One process runs back-to-back write transactions (~100 ms each) for 8 s, longer than the busy
/// timeout (5 s); another process's small writes wait for their turn (docs/guarantees.md: "a write waits
/// for another process or handle up to the busy timeout"). SQLite's busy handler is not fair,
/// so on a loaded machine a write may still miss every turn; then it fails busy, never before
/// the busy timeout and with no other error, and writes do get through.
#[test]
fn small_writes_beside_back_to_back_transactions_of_another_process_wait_up_to_the_busy_timeout() {
    let (_dir, path) = fresh();
    let children = start(vec![
        json!({"role": "hog", "path": path, "ms": 8000, "size": 20000}),
        json!({"role": "small", "path": path, "ms": 8000}),
    ]);
    let lines = finish_all(children);
    let busy: Vec<u64> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("BUSY "))
        .map(|ms| ms.parse().unwrap())
        .collect();
    assert!(
        busy.iter().all(|&ms| ms >= 4_900),
        "a write failed busy before the 5 s busy timeout: {busy:?} ms"
    );
    let ok: u64 = lines
        .iter()
        .find_map(|l| l.strip_prefix("SMALL_OK ").and_then(|n| n.parse().ok()))
        .expect("the small writer's OK count");
    assert!(ok >= 1, "no small write got through ({} failed busy)", busy.len());
}
