//! SPEC §6 concurrency: the quota check and the write share one `BEGIN IMMEDIATE`, so threads
//! racing on a file-backed store — through one handle or through two separate opens of the same
//! file — never overshoot: exactly as many writes succeed as fit, every other write gets
//! `QuotaExceeded`, and the final usage equals the limit.

use std::sync::Barrier;
use std::time::Duration;

use store::{Clock, Kv, ScopedStore};

use crate::common::{file_store, within};
use crate::support::{NS_A, assert_usage_exact, bytes_value, quota, scoped, usage};

/// Outcome of a race: successes, quota errors, anything else.
#[derive(Debug, Default)]
struct Tally {
    ok: u64,
    quota: u64,
    other: Vec<String>,
}

/// Runs `threads` threads per handle, all released at once; thread `t` makes `attempts` writes
/// `write(handle, t, i)`.
fn race<W>(handles: &[ScopedStore], threads: usize, attempts: usize, write: W) -> Tally
where
    W: Fn(&ScopedStore, usize, usize) -> store::Result<()> + Sync,
{
    let total = handles.len() * threads;
    let barrier = Barrier::new(total);
    let results: Vec<Tally> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..total)
            .map(|t| {
                let handle = &handles[t % handles.len()];
                let (barrier, write) = (&barrier, &write);
                s.spawn(move || {
                    let mut tally = Tally::default();
                    barrier.wait();
                    for i in 0..attempts {
                        match write(handle, t, i) {
                            Ok(()) => tally.ok += 1,
                            Err(e) if e.is_quota_exceeded() => tally.quota += 1,
                            Err(e) => tally.other.push(e.to_string()),
                        }
                    }
                    tally
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().expect("worker")).collect()
    });
    let mut sum = Tally::default();
    for t in results {
        sum.ok += t.ok;
        sum.quota += t.quota;
        sum.other.extend(t.other);
    }
    sum
}

/// A new key of `thread`, `i`: distinct across threads, always 7 bytes (`t0-k000`).
fn key(thread: usize, i: usize) -> String {
    format!("t{thread}-k{i:03}")
}

const LIMIT: Duration = Duration::from_secs(120);

#[test]
fn eight_threads_racing_write_exactly_max_keys_1000() {
    within(LIMIT, || {
        let f = file_store();
        let ns = scoped(&f.store, NS_A, quota(1000, 0, 0));
        let tally = race(std::slice::from_ref(&ns), 8, 250, |ns, t, i| {
            ns.set(&format!("g{}", i % 4), &key(t, i), "v").map(drop)
        });
        assert!(tally.other.is_empty(), "unexpected errors: {:?}", tally.other);
        assert_eq!((tally.ok, tally.quota), (1000, 1000));
        assert_eq!(ns.count_all("").unwrap(), 1000);
        assert_eq!(ns.usage().unwrap().keys, 1000);
        assert_usage_exact(&ns, &f.path(), f.clock.now_ms(), "the race");
    });
}

#[test]
fn eight_threads_racing_write_exactly_as_many_entries_as_max_bytes_allows() {
    within(LIMIT, || {
        let f = file_store();
        // Every entry is 7 + 93 = 100 bytes: exactly 300 fit in 30,000.
        let ns = scoped(&f.store, NS_A, quota(0, 0, 30_000));
        let value = bytes_value(93);
        let tally = race(std::slice::from_ref(&ns), 8, 100, |ns, t, i| {
            ns.set(&format!("g{}", t % 3), &key(t, i), &value).map(drop)
        });
        assert!(tally.other.is_empty(), "unexpected errors: {:?}", tally.other);
        assert_eq!((tally.ok, tally.quota), (300, 500));
        let u = ns.usage().unwrap();
        assert!(u.bytes <= 30_000);
        assert_eq!((u.keys, u.bytes), (300, 30_000));
        // Which groups got entries depends on scheduling.
        assert_eq!(u.groups, ns.groups("").unwrap().len() as u64);
        assert_usage_exact(&ns, &f.path(), f.clock.now_ms(), "the race");
    });
}

#[test]
fn racing_threads_create_exactly_max_groups_groups() {
    within(LIMIT, || {
        let f = file_store();
        let ns = scoped(&f.store, NS_A, quota(0, 12, 0));
        let tally = race(std::slice::from_ref(&ns), 8, 10, |ns, t, i| {
            ns.set(&format!("g-{t}-{i}"), "k", "v").map(drop)
        });
        assert!(tally.other.is_empty(), "unexpected errors: {:?}", tally.other);
        assert_eq!((tally.ok, tally.quota), (12, 68));
        assert_eq!(ns.groups("").unwrap().len(), 12);
    });
}

#[test]
fn upserts_of_live_keys_always_succeed_while_new_keys_race_for_the_last_slots() {
    within(LIMIT, || {
        let f = file_store();
        let ns = scoped(&f.store, NS_A, quota(510, 0, 0));
        for i in 0..10 {
            ns.set("shared", &format!("s{i}"), "0").unwrap();
        }
        let tally = race(std::slice::from_ref(&ns), 8, 200, |ns, t, i| {
            if i % 2 == 0 {
                // Must never fail: an update, not a new key.
                ns.set("shared", &format!("s{}", (t + i) % 10), &i.to_string())
                    .map_err(|e| store::Error::Unsupported {
                        op: "test",
                        what: format!("upsert failed: {e}"),
                    })
                    .map(drop)
            } else {
                ns.set("new", &key(t, i), "v").map(drop)
            }
        });
        assert!(tally.other.is_empty(), "unexpected errors: {:?}", tally.other);
        assert_eq!(tally.ok, 8 * 100 + 500);
        assert_eq!(tally.quota, 8 * 100 - 500);
        assert_eq!(ns.usage().unwrap().keys, 510);
    });
}

#[test]
fn two_separate_opens_racing_write_exactly_max_keys_1000() {
    within(LIMIT, || {
        let f = file_store();
        let second = f.reopen();
        let handles = [
            scoped(&f.store, NS_A, quota(1000, 0, 0)),
            scoped(&second, NS_A, quota(1000, 0, 0)),
        ];
        let tally = race(&handles, 4, 250, |ns, t, i| {
            ns.set(&format!("g{}", i % 4), &key(t, i), "v").map(drop)
        });
        assert!(tally.other.is_empty(), "unexpected errors: {:?}", tally.other);
        assert_eq!((tally.ok, tally.quota), (1000, 1000));
        for ns in &handles {
            assert_eq!(ns.count_all("").unwrap(), 1000);
            assert_eq!(ns.usage().unwrap().keys, 1000);
        }
        assert_usage_exact(&handles[1], &f.path(), f.clock.now_ms(), "the race");
    });
}

#[test]
fn two_separate_opens_racing_write_exactly_as_many_entries_as_max_bytes_allows() {
    within(LIMIT, || {
        let f = file_store();
        let second = f.reopen();
        let handles = [
            scoped(&f.store, NS_A, quota(0, 0, 20_000)),
            scoped(&second, NS_A, quota(0, 0, 20_000)),
        ];
        let value = bytes_value(93);
        let tally = race(&handles, 4, 100, |ns, t, i| {
            ns.set("g", &key(t, i), &value).map(drop)
        });
        assert!(tally.other.is_empty(), "unexpected errors: {:?}", tally.other);
        assert_eq!((tally.ok, tally.quota), (200, 600));
        assert_eq!(handles[0].usage().unwrap(), usage(200, 1, 20_000));
        assert_usage_exact(&handles[0], &f.path(), f.clock.now_ms(), "the race");
    });
}

#[test]
fn spec_scenario_8_threads_by_50_keys_under_max_keys_100_through_one_and_two_opens() {
    within(LIMIT, || {
        let f = file_store();
        let one = scoped(&f.store, "one", quota(100, 0, 0));
        let tally = race(std::slice::from_ref(&one), 8, 50, |ns, t, i| {
            ns.set("g", &key(t, i), "v").map(drop)
        });
        assert!(tally.other.is_empty(), "unexpected errors: {:?}", tally.other);
        assert_eq!((tally.ok, tally.quota), (100, 300));
        assert_eq!(one.count_all("").unwrap(), 100);

        let second = f.reopen();
        let two = [
            scoped(&f.store, "two", quota(100, 0, 0)),
            scoped(&second, "two", quota(100, 0, 0)),
        ];
        let tally = race(&two, 4, 50, |ns, t, i| ns.set("g", &key(t, i), "v").map(drop));
        assert!(tally.other.is_empty(), "unexpected errors: {:?}", tally.other);
        assert_eq!((tally.ok, tally.quota), (100, 300));
        assert_eq!(two[0].count_all("").unwrap(), 100);
    });
}
