//! Read invariants under concurrency (h182's stress hunt, adopted). Concurrent writers (threads of one handle, two handles on
//! one file, child OS processes) with short real-clock TTLs expiring during the run; readers
//! check at EVERY read that what they see never exceeds the namespace's quota, that versions
//! never go backwards, that no busy/locked error leaks out of a read; a child process tails the
//! change feed and must see every change, in order, without a gap; the final state is compared
//! with a raw-SQL ground truth.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use store::{Clock, Kv, ManualClock, Quota, ScopedStore, Store, StoreConfig, SystemClock};

use crate::common::{
    ChildProcess, Rng, all_changes_since, assert_counters_equal_a_recount, assert_feed_replays_to_entries,
    child_test_command, patient, truth,
};
use crate::support::{quota, scoped};

const NS: &str = "hunt";
const Q: Quota = Quota {
    max_keys: 25,
    max_groups: 4,
    max_bytes: 600,
};
const CHILD_ENV: &str = "STORE_H182_CHILD";
const MARKER: &str = "H182 ";

/// What the readers and writers saw.
#[derive(Default)]
struct Stats {
    reads: AtomicU64,
    writes_ok: AtomicU64,
    writes_over: AtomicU64,
    /// Invariant violations (the first few kept in full).
    violations: Mutex<Vec<String>>,
    violation_count: AtomicU64,
    /// Busy/locked errors that leaked out of a read.
    busy_reads: Mutex<Vec<String>>,
    /// Busy/locked errors out of writes.
    busy_writes: Mutex<Vec<String>>,
    /// Any other unexpected error.
    errors: Mutex<Vec<String>>,
    /// `usage().keys != count_all("")` inside one transaction (time moves between the calls).
    tx_mismatch: AtomicU64,
    tx_mismatch_examples: Mutex<Vec<String>>,
    /// Transactions in which the two were compared.
    tx_compared: AtomicU64,
}

impl Stats {
    fn violation(&self, msg: String) {
        self.violation_count.fetch_add(1, Ordering::Relaxed);
        let mut v = self.violations.lock().unwrap();
        if v.len() < 20 {
            v.push(msg);
        }
    }

    fn error(&self, what: &str, e: &store::Error, read: bool) {
        let msg = format!("{what}: {e} (kind {:?})", e.kind());
        let list = if e.is_busy() {
            if read { &self.busy_reads } else { &self.busy_writes }
        } else {
            &self.errors
        };
        let mut l = list.lock().unwrap();
        if l.len() < 20 {
            l.push(msg);
        }
    }

    fn summary(&self) -> String {
        format!(
            "reads {} writes_ok {} writes_over {} violations {} busy_reads {} busy_writes {} errors {} tx_compared {} tx_mismatch {}",
            self.reads.load(Ordering::Relaxed),
            self.writes_ok.load(Ordering::Relaxed),
            self.writes_over.load(Ordering::Relaxed),
            self.violation_count.load(Ordering::Relaxed),
            self.busy_reads.lock().unwrap().len(),
            self.busy_writes.lock().unwrap().len(),
            self.errors.lock().unwrap().len(),
            self.tx_compared.load(Ordering::Relaxed),
            self.tx_mismatch.load(Ordering::Relaxed),
        )
    }

    fn details(&self) -> String {
        format!(
            "{}\nviolations: {:#?}\nbusy reads: {:#?}\nbusy writes: {:#?}\nerrors: {:#?}\ntx mismatch examples: {:#?}",
            self.summary(),
            self.violations.lock().unwrap(),
            self.busy_reads.lock().unwrap(),
            self.busy_writes.lock().unwrap(),
            self.errors.lock().unwrap(),
            self.tx_mismatch_examples.lock().unwrap(),
        )
    }
}

fn bytes_of(map: &BTreeMap<String, String>) -> u64 {
    map.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum()
}

/// One writer: random scoped operations with TTLs of 5–50 ms on the system clock.
fn writer_loop(ns: &ScopedStore, stop: &AtomicBool, stats: &Stats, seed: u64, keys: u64) {
    let mut rng = Rng::new(seed);
    while !stop.load(Ordering::Relaxed) {
        let group = format!("g{}", rng.below(6));
        let key = format!("k{}", rng.below(keys));
        let value = "v".repeat(1 + rng.below(40) as usize);
        let ttl = Duration::from_millis(5 + rng.below(46));
        let result: store::Result<()> = match rng.below(20) {
            0..=5 => ns.set_with_ttl(&group, &key, &value, ttl).map(drop),
            6..=8 => ns.set(&group, &key, &value).map(drop),
            9..=11 => ns.delete(&group, &key).map(drop),
            12 => ns.increment("ctr", &format!("c{}", rng.below(3)), 1).map(drop),
            13 | 14 => ns.transaction(|tx| {
                tx.set_with_ttl(&group, &key, &value, ttl)?;
                tx.set(
                    &format!("g{}", rng.below(6)),
                    &format!("k{}", rng.below(keys)),
                    "pair",
                )?;
                Ok(())
            }),
            15 => {
                let current = ns.get_with_version(&group, &key).ok().map(|v| v.version);
                match ns.set_if_version(&group, &key, &value, current) {
                    Err(e) if e.kind() == store::ErrorKind::Conflict => Ok(()),
                    other => other.map(drop),
                }
            }
            16 => ns.delete_group(&group).map(drop),
            17 => {
                // A scoped read that may delete lazily.
                match ns.get(&group, &key) {
                    Err(e) if e.kind() == store::ErrorKind::NotFound => Ok(()),
                    other => other.map(drop),
                }
            }
            18 if keys <= 20 => ns.purge_expired().map(drop),
            _ => ns
                .set_with_ttl(&group, &key, &value, Duration::from_millis(1 + rng.below(5)))
                .map(drop),
        };
        match result {
            Ok(()) => {
                stats.writes_ok.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) if e.is_quota_exceeded() => {
                stats.writes_over.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => stats.error("write", &e, false),
        }
    }
}

macro_rules! read {
    ($stats:expr, $what:expr, $e:expr) => {
        match $e {
            Ok(v) => {
                $stats.reads.fetch_add(1, Ordering::Relaxed);
                v
            }
            Err(e) if e.kind() == store::ErrorKind::NotFound => {
                $stats.reads.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            Err(e) => {
                $stats.error($what, &e, true);
                continue;
            }
        }
    };
}

/// One reader: checks the quota invariants at every read, versions per key never decreasing.
fn reader_loop(ns: &ScopedStore, stop: &AtomicBool, stats: &Stats, seed: u64, tag: &str) {
    let mut rng = Rng::new(seed);
    let q = ns.quota();
    // (group, key) -> (version, value)
    let mut seen: HashMap<(String, String), (u64, String)> = HashMap::new();
    while !stop.load(Ordering::Relaxed) {
        match rng.below(9) {
            0 => {
                let n = read!(stats, "count_all", ns.count_all(""));
                if n > q.max_keys {
                    stats.violation(format!("{tag}: count_all(\"\") = {n} > {}", q.max_keys));
                }
            }
            1 => {
                let u = read!(stats, "usage", ns.usage());
                if u.keys > q.max_keys || u.groups > q.max_groups || u.bytes > q.max_bytes {
                    stats.violation(format!("{tag}: usage {u:?} over {q:?}"));
                }
            }
            2 => {
                let groups = read!(stats, "groups", ns.groups(""));
                if groups.len() as u64 > q.max_groups {
                    stats.violation(format!("{tag}: groups(\"\") = {groups:?} over {}", q.max_groups));
                }
            }
            3 => {
                let groups: Vec<String> = read!(
                    stats,
                    "groups_iter",
                    ns.groups_iter("").collect::<store::Result<Vec<_>>>()
                );
                if groups.len() as u64 > q.max_groups {
                    stats.violation(format!("{tag}: groups_iter = {groups:?} over {}", q.max_groups));
                }
            }
            4 => {
                let g = if rng.below(4) == 0 {
                    "ctr".to_string()
                } else {
                    format!("g{}", rng.below(6))
                };
                let all = read!(stats, "get_all", ns.get_all(&g));
                if all.len() as u64 > q.max_keys || bytes_of(&all) > q.max_bytes {
                    stats.violation(format!(
                        "{tag}: get_all({g}) {} keys {} bytes",
                        all.len(),
                        bytes_of(&all)
                    ));
                }
                for (k, v) in &all {
                    let got = match ns.get_with_version(&g, k) {
                        Ok(got) => got,
                        Err(e) if e.kind() == store::ErrorKind::NotFound => continue,
                        Err(e) => {
                            stats.error("get_with_version", &e, true);
                            continue;
                        }
                    };
                    stats.reads.fetch_add(1, Ordering::Relaxed);
                    let _ = v;
                    let slot = seen.entry((g.clone(), k.clone())).or_insert((0, String::new()));
                    if got.version < slot.0 {
                        stats.violation(format!(
                            "{tag}: {g}/{k} version went back {} -> {}",
                            slot.0, got.version
                        ));
                    } else if got.version == slot.0 && got.value != slot.1 {
                        stats.violation(format!(
                            "{tag}: {g}/{k} version {} had value {:?}, now {:?}",
                            got.version, slot.1, got.value
                        ));
                    }
                    *slot = (got.version, got.value);
                }
            }
            5 => {
                let g = format!("g{}", rng.below(6));
                let items: Vec<store::Entry> =
                    read!(stats, "iter", ns.iter(&g).collect::<store::Result<Vec<_>>>());
                if items.len() as u64 > q.max_keys {
                    stats.violation(format!("{tag}: iter({g}) {} > {}", items.len(), q.max_keys));
                }
                let page = read!(stats, "get_page", ns.get_page(&g, 0, 1000));
                if page.len() as u64 > q.max_keys {
                    stats.violation(format!("{tag}: get_page({g}) {} > {}", page.len(), q.max_keys));
                }
                let n = read!(stats, "count", ns.count(&g));
                if n > q.max_keys {
                    stats.violation(format!("{tag}: count({g}) {n}"));
                }
                let r = read!(stats, "render", ns.render("{{ entries|length }}", &g));
                if r.parse::<u64>().map_or(true, |n| n > q.max_keys) {
                    stats.violation(format!("{tag}: render({g}) = {r}"));
                }
            }
            6 | 7 => {
                // One transaction: usage, count_all, the groups and the sum of their counts.
                let r = ns.transaction(|tx| {
                    let u = tx.usage()?;
                    let all = tx.count_all("")?;
                    let groups = tx.groups("")?;
                    let mut sum = 0;
                    let mut bytes = 0;
                    for g in &groups {
                        sum += tx.count(g)?;
                        bytes += bytes_of(&tx.get_all(g)?);
                    }
                    Ok((u, all, groups, sum, bytes))
                });
                let (u, all, groups, sum, bytes) = read!(stats, "transaction read", r);
                stats.tx_compared.fetch_add(1, Ordering::Relaxed);
                if u.keys != all {
                    stats.tx_mismatch.fetch_add(1, Ordering::Relaxed);
                    let mut l = stats.tx_mismatch_examples.lock().unwrap();
                    if l.len() < 5 {
                        l.push(format!(
                            "{tag}: usage {u:?} vs count_all {all} (sum of counts {sum})"
                        ));
                    }
                }
                if all > q.max_keys
                    || sum > q.max_keys
                    || groups.len() as u64 > q.max_groups
                    || bytes > q.max_bytes
                {
                    stats.violation(format!(
                        "{tag}: in a transaction count_all {all}, sum {sum}, groups {groups:?}, bytes {bytes}"
                    ));
                }
            }
            _ => {
                let ok = read!(stats, "exists", ns.group_exists(&format!("g{}", rng.below(6))));
                let _ = ok;
            }
        }
    }
}

fn config(path: &Path, variant: u64) -> StoreConfig {
    let mut c =
        patient(StoreConfig::file(path).with_purge_interval(Duration::from_millis(15 + 10 * variant)));
    if variant % 2 == 1 {
        c = c.with_checkpoint_pages(30);
    }
    if variant % 3 == 2 {
        c.readers = 0;
    }
    c
}

/// Runs `writers` writer and `readers` reader threads over the given handles for `run`.
fn run_threads(
    handles: &[ScopedStore],
    writers: u64,
    readers: u64,
    run: Duration,
    stats: &Stats,
    seed: u64,
    keys: u64,
) {
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        for w in 0..writers {
            let ns = &handles[w as usize % handles.len()];
            let stop = &stop;
            s.spawn(move || writer_loop(ns, stop, stats, seed * 100 + w, keys));
        }
        for r in 0..readers {
            let ns = &handles[r as usize % handles.len()];
            let stop = &stop;
            s.spawn(move || reader_loop(ns, stop, stats, seed * 1000 + r, &format!("reader{r}")));
        }
        std::thread::sleep(run);
        stop.store(true, Ordering::Relaxed);
    });
}

/// The final state against raw SQL, at one fixed time, through a handle on a manual clock.
fn check_final(path: &Path) -> Vec<String> {
    let now = SystemClock.now_ms();
    let clock = Arc::new(ManualClock::new(now));
    let store = Store::open_with(
        StoreConfig::file(path)
            .with_clock(clock)
            .with_purge_interval(Duration::ZERO),
    )
    .unwrap();
    let ns = scoped(&store, NS, Q);
    let mut problems = Vec::new();
    let t = truth(path, NS, now);
    let u = ns.usage().unwrap();
    if u != t {
        problems.push(format!("usage {u:?} != truth {t:?}"));
    }
    let all = ns.count_all("").unwrap();
    if all != t.keys {
        problems.push(format!("count_all {all} != truth keys {}", t.keys));
    }
    if t.keys > Q.max_keys || t.groups > Q.max_groups || t.bytes > Q.max_bytes {
        problems.push(format!("truth {t:?} over quota"));
    }
    let conn = crate::common::raw(path);
    let mut stmt = conn
        .prepare(
            "SELECT group_name, count(*) FROM entries WHERE group_name LIKE 'hunt:%' \
             AND (expires_at IS NULL OR expires_at > ?1) GROUP BY 1",
        )
        .unwrap();
    let raw: BTreeMap<String, u64> = stmt
        .query_map([now], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let groups = ns.groups("").unwrap();
    let mine: BTreeMap<String, u64> = groups
        .iter()
        .map(|g| (format!("{NS}:{g}"), ns.count(g).unwrap()))
        .collect();
    if mine != raw {
        problems.push(format!("per-group counts {mine:?} != raw {raw:?}"));
    }
    drop(stmt);
    drop(conn);
    assert_counters_equal_a_recount(path);
    let feed = all_changes_since(&store, 0);
    assert_feed_replays_to_entries(path, &feed);
    let backwards: Vec<String> = feed
        .windows(2)
        .filter(|w| w[1].at_ms < w[0].at_ms)
        .take(10)
        .map(|w| {
            format!(
                "seq {} at {} then seq {} at {} ({:?} {:?})",
                w[0].seq, w[0].at_ms, w[1].seq, w[1].at_ms, w[0].kind, w[1].kind
            )
        })
        .collect();
    if !backwards.is_empty() {
        problems.push(format!("feed at_ms goes backwards: {backwards:?}"));
    }
    let set_expired: Vec<String> = feed
        .iter()
        .filter(|c| c.kind == store::EventKind::Set && c.expires_at.is_some_and(|e| e <= c.at_ms))
        .take(10)
        .map(|c| format!("{c:?}"))
        .collect();
    if !set_expired.is_empty() {
        problems.push(format!(
            "Set changes already expired when written: {set_expired:?}"
        ));
    }
    problems
}

fn assert_clean(stats: &Stats, problems: &[String]) {
    let details = stats.details();
    eprintln!("{details}\nfinal problems: {problems:?}");
    assert!(
        stats.violation_count.load(Ordering::Relaxed) == 0
            && stats.busy_reads.lock().unwrap().is_empty()
            && stats.errors.lock().unwrap().is_empty()
            && problems.is_empty(),
        "{details}\nfinal: {problems:?}"
    );
}

fn run_secs() -> Duration {
    Duration::from_millis(
        std::env::var("READ_INVARIANTS_MS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(1_500),
    )
}

#[test]
fn threads_on_one_handle_never_see_more_than_the_quota() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let store = Store::open_with(config(&path, 0)).unwrap();
    let ns = scoped(&store, NS, Q);
    let stats = Stats::default();
    run_threads(&[ns], 3, 3, run_secs(), &stats, 1, 20);
    drop(store);
    let problems = check_final(&path);
    assert_clean(&stats, &problems);
}

#[test]
fn two_handles_on_one_file_never_see_more_than_the_quota() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let a = Store::open_with(config(&path, 0)).unwrap();
    let b = Store::open_with(config(&path, 1)).unwrap();
    let c = Store::open_with(config(&path, 2)).unwrap(); // readers: 0
    let handles = [scoped(&a, NS, Q), scoped(&b, NS, Q), scoped(&c, NS, Q)];
    let stats = Stats::default();
    run_threads(&handles, 3, 3, run_secs(), &stats, 2, 20);
    drop(handles);
    drop((a, b, c));
    let problems = check_final(&path);
    assert_clean(&stats, &problems);
}

// ---------------------------------------------------------------------------------------------
// Child processes.

#[test]
#[ignore = "helper: acts only as a child process of the tests in scope/read_invariants.rs"]
fn child() {
    let Ok(args) = std::env::var(CHILD_ENV) else {
        return;
    };
    let args: Value = serde_json::from_str(&args).unwrap();
    let path = PathBuf::from(args["path"].as_str().unwrap());
    match args["role"].as_str().unwrap() {
        "worker" => worker_child(&path, &args),
        "tail" => tail_child(&path),
        "churn" => churn_child(&path, &args),
        role => panic!("unknown role {role}"),
    }
}

fn say(line: &str) {
    println!("{MARKER}{line}");
    let _ = std::io::stdout().flush();
}

/// Writers and readers until stdin gets a line; then prints its findings.
fn worker_child(path: &Path, args: &Value) {
    let id = args["id"].as_u64().unwrap();
    let mut c = config(path, id);
    if args["wide"].as_bool().unwrap() {
        c = c.with_purge_interval(Duration::ZERO);
        c.busy_timeout = Duration::from_secs(5);
    }
    let store = Store::open_with(c).unwrap();
    let ns = scoped(&store, NS, Q);
    let stats = Stats::default();
    let stop = AtomicBool::new(false);
    say("READY");
    std::thread::scope(|s| {
        for w in 0..2 {
            let (ns, stop, stats) = (&ns, &stop, &stats);
            s.spawn(move || {
                writer_loop(
                    ns,
                    stop,
                    stats,
                    10_000 * (id + 1) + w,
                    args["keys"].as_u64().unwrap(),
                )
            });
        }
        let (ns, stop, stats) = (&ns, &stop, &stats);
        s.spawn(move || reader_loop(ns, stop, stats, 20_000 * (id + 1), &format!("child{id}")));
        std::io::stdin().read_line(&mut String::new()).unwrap();
        stop.store(true, Ordering::Relaxed);
    });
    drop(ns);
    store.close().unwrap();
    say(&format!(
        "STATS {}",
        serde_json::to_string(&stats.details()).unwrap()
    ));
    say(&format!(
        "CLEAN {}",
        stats.violation_count.load(Ordering::Relaxed) == 0
            && stats.busy_reads.lock().unwrap().is_empty()
            && stats.errors.lock().unwrap().is_empty()
    ));
}

/// Tails the change feed from 0: strictly increasing seqs, never a gap. Stops once it has
/// reached the seq the parent writes to stdin; prints every seq it saw.
fn tail_child(path: &Path) {
    let store = Store::open_with(StoreConfig::file(path).with_purge_interval(Duration::ZERO)).unwrap();
    let target = Arc::new(AtomicU64::new(u64::MAX));
    {
        let target = target.clone();
        std::thread::spawn(move || {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line).unwrap();
            target.store(line.trim().parse().unwrap(), Ordering::SeqCst);
        });
    }
    say("READY");
    let mut after = 0u64;
    let mut seqs: Vec<u64> = Vec::new();
    let mut problems: Vec<String> = Vec::new();
    let mut busy = 0u64;
    let started = Instant::now();
    loop {
        match store.changes_since(after, 1 + (seqs.len() % 37)) {
            Ok(batch) => {
                if batch.gap {
                    problems.push(format!("gap after {after}"));
                }
                for c in &batch.changes {
                    if c.seq <= after {
                        problems.push(format!("seq {} after {after}", c.seq));
                    }
                    after = c.seq;
                    seqs.push(c.seq);
                }
                if batch.changes.is_empty() && after >= target.load(Ordering::SeqCst) {
                    break;
                }
            }
            Err(e) => {
                if e.is_busy() {
                    busy += 1;
                }
                problems.push(format!("changes_since: {e}"));
            }
        }
        if started.elapsed() > Duration::from_secs(60) {
            problems.push("tail never reached the target".into());
            break;
        }
    }
    say(&format!(
        "SEQS {}",
        serde_json::to_string(&json!({"seqs": seqs, "problems": problems, "busy": busy})).unwrap()
    ));
}

fn spawn_child(args: Value) -> ChildProcess {
    let mut cmd = child_test_command("read_invariants::child");
    cmd.env(CHILD_ENV, args.to_string()).stdin(Stdio::piped());
    ChildProcess::spawn(cmd, MARKER)
}

#[test]
fn processes_with_expiring_entries_never_see_more_than_the_quota_and_the_feed_has_no_gaps() {
    processes(false);
}

/// The same with 300 keys a group, no purge thread and the default 5 s busy timeout: expired
/// rows pile up past 128, so writes near the limit count them and purge after their commit.
#[test]
fn processes_with_piles_of_expired_rows_never_see_more_than_the_quota() {
    processes(true);
}

fn processes(wide: bool) {
    let keys = if wide { 300 } else { 20 };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    // The schema exists before the children open the file.
    let mut c = config(&path, 0);
    if wide {
        c = c.with_purge_interval(Duration::ZERO);
        c.busy_timeout = Duration::from_secs(5);
    }
    let store = Store::open_with(c).unwrap();
    let ns = scoped(&store, NS, Q);
    let mut tail = spawn_child(json!({"role": "tail", "path": path}));
    let mut workers: Vec<ChildProcess> = (1..=3)
        .map(|id| spawn_child(json!({"role": "worker", "path": path, "id": id, "keys": keys, "wide": wide})))
        .collect();
    tail.wait_for("READY");
    workers.iter_mut().for_each(|c| c.wait_for("READY"));
    let stats = Stats::default();
    run_threads(std::slice::from_ref(&ns), 1, 2, run_secs(), &stats, 3, keys);
    for w in &mut workers {
        w.process.stdin.take().unwrap().write_all(b"stop\n").unwrap();
    }
    let mut child_reports = Vec::new();
    let mut all_clean = true;
    for w in workers {
        let lines = w.finish();
        all_clean &= lines.iter().any(|l| l == "CLEAN true");
        child_reports.extend(lines);
    }
    let last = store.last_seq().unwrap();
    tail.process
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{last}\n").as_bytes())
        .unwrap();
    let tail_lines = tail.finish();
    let tailed: Value =
        serde_json::from_str(tail_lines.last().unwrap().strip_prefix("SEQS ").unwrap()).unwrap();
    let tailed_seqs: Vec<u64> = serde_json::from_value(tailed["seqs"].clone()).unwrap();
    // The parent's purge thread may still write after `last`: the tail was asked to reach `last`.
    let full_feed = all_changes_since(&store, 0);
    let after_last: Vec<String> = full_feed
        .iter()
        .filter(|c| c.seq > last)
        .map(|c| format!("{} {:?} {}", c.seq, c.kind, c.group))
        .collect();
    eprintln!("feed rows after the tail's target {last}: {after_last:?}");
    let feed: Vec<u64> = full_feed.iter().map(|c| c.seq).filter(|s| *s <= last).collect();
    drop(ns);
    store.close().unwrap();
    let mut problems = check_final(&path);
    if tailed_seqs != feed {
        let missing: Vec<&u64> = feed
            .iter()
            .filter(|s| !tailed_seqs.contains(s))
            .take(20)
            .collect();
        problems.push(format!(
            "tail saw {} changes, the feed holds {}; missing (first 20): {missing:?}",
            tailed_seqs.len(),
            feed.len()
        ));
    }
    if !tailed["problems"].as_array().unwrap().is_empty() {
        problems.push(format!("tail problems: {}", tailed["problems"]));
    }
    for line in &child_reports {
        if let Some(s) = line.strip_prefix("STATS ") {
            eprintln!("child: {}", serde_json::from_str::<String>(s).unwrap());
        }
    }
    eprintln!("feed rows {} tail rows {}", feed.len(), tailed_seqs.len());
    assert!(all_clean, "a child saw a violation or error: {child_reports:?}");
    assert_clean(&stats, &problems);
}

#[test]
fn threads_on_a_memory_store_never_see_more_than_the_quota() {
    let store =
        Store::open_with(StoreConfig::memory().with_purge_interval(Duration::from_millis(15))).unwrap();
    let ns = scoped(&store, NS, Q);
    let stats = Stats::default();
    run_threads(&[ns], 3, 3, run_secs(), &stats, 4, 300);
    assert_clean(&stats, &[]);
}

#[test]
fn threads_and_handles_with_piles_of_expired_rows_never_see_more_than_the_quota() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let mut c = StoreConfig::file(&path).with_purge_interval(Duration::ZERO);
    let a = Store::open_with(c.clone()).unwrap();
    c.readers = 0;
    let b = Store::open_with(c).unwrap();
    let handles = [scoped(&a, NS, Q), scoped(&b, NS, Q)];
    let stats = Stats::default();
    run_threads(&handles, 4, 3, run_secs(), &stats, 5, 300);
    drop(handles);
    drop((a, b));
    let problems = check_final(&path);
    assert_clean(&stats, &problems);
}

/// Opens the store, makes a few reads and writes with both, closes it; again and again until
/// `ms` have passed (short-lived processes, as CLI invocations are). Every open, read or write
/// error is reported.
fn churn_child(path: &Path, args: &Value) {
    let id = args["id"].as_u64().unwrap();
    let ms = args["ms"].as_u64().unwrap();
    let patient_cfg = args["patient"].as_bool().unwrap();
    let stats = Stats::default();
    let mut open_errors: Vec<String> = Vec::new();
    let mut close_errors: Vec<String> = Vec::new();
    let mut opens = 0u64;
    let started = Instant::now();
    let mut round = 0u64;
    while started.elapsed() < Duration::from_millis(ms) {
        round += 1;
        let mut c = StoreConfig::file(path).with_purge_interval(Duration::from_millis(10));
        if patient_cfg {
            c = patient(c);
        }
        if round.is_multiple_of(3) {
            c = c.with_checkpoint_pages(10);
        }
        let store = match Store::open_with(c) {
            Ok(s) => s,
            Err(e) => {
                open_errors.push(format!("{e} (busy {})", e.is_busy()));
                continue;
            }
        };
        opens += 1;
        let ns = scoped(&store, NS, Q);
        let stop = AtomicBool::new(false);
        std::thread::scope(|s| {
            let (ns2, stop2, stats2) = (&ns, &stop, &stats);
            s.spawn(move || writer_loop(ns2, stop2, stats2, id * 1_000_000 + round, 20));
            let (ns3, stop3, stats3) = (&ns, &stop, &stats);
            s.spawn(move || reader_loop(ns3, stop3, stats3, id * 1_000_000 + round, &format!("churn{id}")));
            std::thread::sleep(Duration::from_millis(30));
            stop.store(true, Ordering::Relaxed);
        });
        drop(ns);
        if let Err(e) = store.close() {
            close_errors.push(e.to_string());
        }
    }
    say(&format!(
        "CHURN {}",
        serde_json::to_string(&json!({
            "opens": opens, "open_errors": open_errors, "close_errors": close_errors,
            "details": stats.details(),
            "clean": stats.violation_count.load(Ordering::Relaxed) == 0
                && stats.busy_reads.lock().unwrap().is_empty()
                && stats.errors.lock().unwrap().is_empty(),
        }))
        .unwrap()
    ));
}

/// Short-lived processes opening and closing the file over and over, nobody holding it in
/// between (the last close checkpoints and removes the log; the next open recovers): opens,
/// reads and writes never fail, reads stay within the quota.
#[test]
fn short_lived_processes_opening_and_closing_never_fail_or_overshoot() {
    churn(true);
}

fn churn(patient_cfg: bool) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    Store::open_with(StoreConfig::file(&path))
        .unwrap()
        .close()
        .unwrap();
    let ms = run_secs().as_millis() as u64;
    let children: Vec<ChildProcess> = (1..=4)
        .map(|id| {
            spawn_child(json!({"role": "churn", "path": path, "id": id, "ms": ms, "patient": patient_cfg}))
        })
        .collect();
    let mut reports = Vec::new();
    for c in children {
        for line in c.finish() {
            if let Some(j) = line.strip_prefix("CHURN ") {
                reports.push(serde_json::from_str::<Value>(j).unwrap());
            }
        }
    }
    let mut bad = Vec::new();
    for r in &reports {
        eprintln!(
            "opens {} open_errors {} close_errors {}\n{}",
            r["opens"],
            r["open_errors"],
            r["close_errors"],
            r["details"].as_str().unwrap()
        );
        if !r["open_errors"].as_array().unwrap().is_empty()
            || !r["close_errors"].as_array().unwrap().is_empty()
            || !r["clean"].as_bool().unwrap()
        {
            bad.push(r.clone());
        }
    }
    let problems = check_final(&path);
    assert!(bad.is_empty() && problems.is_empty(), "{bad:#?}\n{problems:?}");
}

/// SPEC §3.3: each 256-row chunk of `iter` is its own snapshot. So with a quota above 256 keys
/// in one group, one pass of `iter` can yield more keys than the quota allows at any moment:
/// a key deleted after the first chunk was read, another added past it. Deterministic; this
/// pins down the documented behaviour (it does not fail).
#[test]
fn one_iteration_over_more_than_a_chunk_can_yield_more_keys_than_the_quota() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let store = Store::open_with(StoreConfig::file(&path).with_purge_interval(Duration::ZERO)).unwrap();
    let ns = scoped(&store, NS, quota(300, 0, 0));
    ns.transaction(|tx| {
        for i in 0..300 {
            tx.set("g", &format!("k{i:03}"), "v")?;
        }
        Ok(())
    })
    .unwrap();
    let mut it = ns.iter("g");
    let first: Vec<String> = it.by_ref().take(256).map(|e| e.unwrap().key).collect();
    ns.delete("g", "k000").unwrap();
    ns.set("g", "k999", "v").unwrap();
    let rest: Vec<String> = it.map(|e| e.unwrap().key).collect();
    let total = first.len() + rest.len();
    eprintln!(
        "iter yielded {total} keys under max_keys 300 (count_all now {})",
        ns.count_all("").unwrap()
    );
    assert_eq!(total, 301);
}
