//! Reads of several rows judge them all at one time, read after the read's snapshot is taken
//! (SPEC §8: each call reads one snapshot). A time read before it could count an entry that
//! had expired by the snapshot together with the entry another process wrote because it had.
//!
//! [`HookClock`] stands for the other process: the store reads the time `T - 1`, and before
//! the store's next step another handle on the file (a separate connection) writes a key at
//! `T`, the moment `old` (expiring at `T`) expired. A read whose snapshot was taken before it
//! read the clock cannot see that write; one that read the clock first sees `old` still live
//! at `T - 1` beside `new`, a state that never existed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

use store::{Clock, ErrorKind, Kv, Store, StoreConfig, UnixMillis};

use crate::common::{HookClock, holding_old, racing_pair, racing_pair_in, raw};

const T: i64 = 2_000_000;

/// Runs `read` with the other handle writing `g/new` between the store's clock read and its
/// next step, and returns what it read.
fn read_racing_a_write<T>(read: impl FnOnce(&Store) -> T) -> T {
    let (_dir, store, clock, other) = racing_pair(T);
    clock.arm(move || {
        other.set("g", "new", "2").unwrap();
    });
    let seen = read(&store);
    assert!(clock.fired(), "the read never read the clock");
    seen
}

#[test]
fn count_never_sees_an_expired_entry_beside_the_one_written_after_it() {
    assert_eq!(read_racing_a_write(|s| s.count("g").unwrap()), 1);
}

#[test]
fn count_all_never_sees_an_expired_entry_beside_the_one_written_after_it() {
    assert_eq!(read_racing_a_write(|s| s.count_all("").unwrap()), 1);
}

#[test]
fn get_all_and_render_never_see_an_expired_entry_beside_the_one_written_after_it() {
    let all = read_racing_a_write(|s| s.get_all("g").unwrap());
    assert_eq!(all.keys().collect::<Vec<_>>(), ["old"]);
    let rendered = read_racing_a_write(|s| {
        s.render("{% for k, v in entries|items %}{{ k }};{% endfor %}", "g")
            .unwrap()
    });
    assert_eq!(rendered, "old;");
}

#[test]
fn pages_and_iteration_never_see_an_expired_entry_beside_the_one_written_after_it() {
    let page = read_racing_a_write(|s| s.get_page("g", 0, 10).unwrap());
    assert_eq!(page.iter().map(|e| e.key.as_str()).collect::<Vec<_>>(), ["old"]);
    let iterated = read_racing_a_write(|s| s.iter("g").map(|e| e.unwrap().key).collect::<Vec<_>>());
    assert_eq!(iterated, ["old"]);
}

#[test]
fn group_listings_never_see_an_expired_group_beside_the_one_written_after_it() {
    let (_dir, store, clock, other) = racing_pair(T);
    clock.arm(move || {
        other.set("h", "new", "2").unwrap();
    });
    assert_eq!(store.groups("").unwrap(), ["g"]);
    let (_dir, store, clock, other) = racing_pair(T);
    clock.arm(move || {
        other.set("h", "new", "2").unwrap();
    });
    let listed = store.groups_iter("").collect::<Result<Vec<_>, _>>().unwrap();
    assert_eq!(listed, ["g"]);
}

#[test]
fn a_read_after_the_race_sees_the_write_and_judges_at_its_own_time() {
    let (_dir, store, clock, other) = racing_pair(T);
    clock.arm(move || {
        other.set("g", "new", "2").unwrap();
    });
    assert_eq!(store.count("g").unwrap(), 1);
    clock.set(T);
    assert_eq!(store.get_all("g").unwrap().keys().collect::<Vec<_>>(), ["new"]);
}

#[test]
fn reads_inside_a_transaction_and_on_a_memory_store_still_judge_by_the_clock() {
    let (_dir, store, clock, _other) = racing_pair(T);
    store
        .transaction(|tx| {
            assert_eq!(tx.count("g")?, 1);
            clock.set(T);
            assert_eq!(tx.count("g")?, 0);
            Ok(())
        })
        .unwrap();
    let (memory, clock) = holding_old(StoreConfig::memory(), T);
    assert_eq!(memory.count("g").unwrap(), 1);
    assert_eq!(memory.get_all("g").unwrap().len(), 1);
    clock.set(T);
    assert_eq!(memory.count("g").unwrap(), 0);
    assert_eq!(memory.groups("").unwrap(), Vec::<String>::new());
}

// Adopted from h181's review of the change (tests it ran against the parent commit too).

/// [`racing_pair`] with `readers` pooled readers.
fn racing_pair_with(readers: usize) -> (tempfile::TempDir, Store, Arc<HookClock>, Store) {
    let dir = tempfile::tempdir().unwrap();
    let (store, clock, other) = racing_pair_in(dir.path(), readers, T);
    (dir, store, clock, other)
}

/// The commit's race, on a store whose reads run on the writer connection (`readers: 0`).
#[test]
fn readers_zero_reads_never_see_an_expired_entry_beside_the_one_written_after_it() {
    let race = |read: &dyn Fn(&Store) -> u64| {
        let (_dir, store, clock, other) = racing_pair_with(0);
        clock.arm(move || {
            other.set("g", "new", "2").unwrap();
        });
        let seen = read(&store);
        assert!(clock.fired());
        seen
    };
    assert_eq!(race(&|s| s.count("g").unwrap()), 1);
    assert_eq!(race(&|s| s.count_all("").unwrap()), 1);
    assert_eq!(race(&|s| s.get_all("g").unwrap().len() as u64), 1);
    assert_eq!(race(&|s| s.get_page("g", 0, 10).unwrap().len() as u64), 1);
    assert_eq!(race(&|s| s.iter("g").count() as u64), 1);
    // and the read after it sees the write: no read transaction was left open
    let (_dir, store, clock, other) = racing_pair_with(0);
    clock.arm(move || {
        other.set("g", "new", "2").unwrap();
    });
    assert_eq!(store.count("g").unwrap(), 1);
    clock.set(T);
    assert_eq!(store.get_all("g").unwrap().keys().collect::<Vec<_>>(), ["new"]);
}

/// A clock that panics on its next read once armed.
struct PanicClock {
    now: UnixMillis,
    armed: AtomicBool,
}

impl Clock for PanicClock {
    fn now_ms(&self) -> UnixMillis {
        if self.armed.swap(false, Ordering::SeqCst) {
            panic!("h181: clock failure");
        }
        self.now
    }
}

/// A clock that panics inside the read transaction must not leave it open on the pooled
/// reader (or the writer, `readers: 0`): the next read sees writes made since.
#[test]
fn a_panicking_clock_leaves_no_read_transaction_open() {
    for readers in [0usize, 1] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let clock = Arc::new(PanicClock {
            now: T,
            armed: AtomicBool::new(false),
        });
        let store = Store::open_with(StoreConfig {
            readers,
            ..StoreConfig::file(&path)
                .with_clock(clock.clone())
                .with_purge_interval(Duration::ZERO)
        })
        .unwrap();
        store.set("g", "a", "1").unwrap();
        clock.armed.store(true, Ordering::SeqCst);
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| store.count("g")));
        assert!(
            caught.is_err(),
            "readers {readers}: the clock's panic reaches the caller"
        );
        // another connection writes, and checkpoints fully (no reader pins an old snapshot)
        let other = raw(&path);
        other
            .execute("INSERT INTO entries (group_name, entry_key, entry_value, version) VALUES ('g', 'b', '2', 99)", [])
            .unwrap_or_else(|_| {
                // the schema may need other columns: go through a store handle instead
                let s = Store::open_with(StoreConfig::file(&path).with_purge_interval(Duration::ZERO)).unwrap();
                s.set("g", "b", "2").unwrap();
                0
            });
        assert_eq!(
            store.count("g").unwrap(),
            2,
            "readers {readers}: a stale snapshot"
        );
        let (busy, _, _): (i64, i64, i64) = other
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .unwrap();
        assert_eq!(
            busy, 0,
            "readers {readers}: a read transaction blocks the checkpoint"
        );
    }
}

/// Scoped transactions (the default `read_at_snapshot`) judge by the clock read inside.
#[test]
fn scoped_transaction_reads_judge_at_the_clock() {
    let (_dir, store, clock, _other) = racing_pair_with(4);
    let ns = store.scoped("ns").unwrap();
    ns.set_with_ttl("g", "x", "1", Duration::from_millis(1)).unwrap();
    ns.transaction(|tx| {
        assert_eq!(tx.count("g")?, 1);
        assert_eq!(tx.get_all("g")?.len(), 1);
        clock.set(T);
        assert_eq!(tx.count("g")?, 0);
        assert_eq!(tx.groups("")?, Vec::<String>::new());
        Ok(())
    })
    .unwrap();
    let tx_in_store = store.transaction(|tx| {
        let s = tx.scoped("ns")?;
        Ok((s.count("g")?, s.count_all("")?, s.iter("g").count()))
    });
    assert_eq!(tx_in_store.unwrap(), (0, 0, 0));
}

/// Stress: a namespace with `max_keys` 1 on one handle, a TTL churn writing into it from a
/// second handle (another set of connections, as another process), and every multi-row read
/// of the first handle on several threads (readers 0 and 2): never more than one key, no error,
/// no deadlock.
#[test]
fn stress_multi_row_reads_never_exceed_a_quota_of_one_across_handles() {
    use store::{Quota, ScopedConfig};
    for readers in [0usize, 2] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let reader = Store::open_with(StoreConfig {
            readers,
            ..crate::common::patient(StoreConfig::file(&path).with_purge_interval(Duration::ZERO))
        })
        .unwrap();
        let writer = Store::open_with(crate::common::patient(
            StoreConfig::file(&path).with_purge_interval(Duration::ZERO),
        ))
        .unwrap();
        let q = Quota {
            max_keys: 1,
            max_groups: 0,
            max_bytes: 0,
        };
        let deadline = Instant::now() + Duration::from_secs(3);
        let stop = Arc::new(AtomicBool::new(false));
        let w = {
            let ns = writer.scoped_with(ScopedConfig::new("ns").with_quota(q)).unwrap();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut written = 0u64;
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    match ns.set_with_ttl("g", &format!("k{i}"), "v", Duration::from_millis(2)) {
                        Ok(_) => written += 1,
                        Err(e) if e.kind() == store::ErrorKind::QuotaExceeded => {}
                        Err(e) => panic!("write: {e}"),
                    }
                }
                written
            })
        };
        let mut readers_threads = Vec::new();
        for t in 0..3 {
            let ns = reader.scoped_with(ScopedConfig::new("ns").with_quota(q)).unwrap();
            readers_threads.push(std::thread::spawn(move || {
                let mut reads = 0u64;
                while Instant::now() < deadline {
                    let n = match (t + reads) % 5 {
                        0 => ns.count("g").unwrap(),
                        1 => ns.count_all("").unwrap(),
                        2 => ns.get_all("g").unwrap().len() as u64,
                        3 => ns.get_page("g", 0, 10).unwrap().len() as u64,
                        _ => ns.iter("g").collect::<store::Result<Vec<_>>>().unwrap().len() as u64,
                    };
                    assert!(n <= 1, "readers {readers}: read {n} keys under max_keys 1");
                    reads += 1;
                }
                reads
            }));
        }
        let reads: u64 = readers_threads.into_iter().map(|h| h.join().unwrap()).sum();
        stop.store(true, Ordering::Relaxed);
        let written = w.join().unwrap();
        eprintln!("readers {readers}: {reads} reads, {written} writes");
        assert!(written > 10 && reads > 100);
    }
}

/// A clock that reads the very store it serves (a simulated time kept in the store, say): it
/// reads `clock/now`, records what that call returned, and falls back to `T`.
struct StoreClock {
    store: OnceLock<Store>,
    calls: Mutex<Vec<store::Result<String>>>,
}

impl Clock for StoreClock {
    fn now_ms(&self) -> UnixMillis {
        let Some(store) = self.store.get() else {
            return T;
        };
        let read = store.get("clock", "now");
        let now = read.as_ref().ok().and_then(|v| v.parse().ok()).unwrap_or(T);
        self.calls.lock().unwrap().push(read);
        now
    }
}

/// The store reads its clock while it holds a connection (a write's lock, a read's snapshot),
/// so a clock's call into the same store would wait for the call reading the clock: with one
/// pooled reader for ever, with `readers: 0` or in memory for the writer's 30 s. It fails at
/// once instead (`InvalidInput`, field `clock`), and the outer call goes on.
#[test]
fn a_clock_that_calls_its_own_store_fails_at_once_instead_of_waiting_for_itself() {
    let dir = tempfile::tempdir().unwrap();
    let configs = [
        (
            "one reader",
            StoreConfig {
                readers: 1,
                ..StoreConfig::file(dir.path().join("one.db"))
            },
        ),
        (
            "no reader",
            StoreConfig {
                readers: 0,
                ..StoreConfig::file(dir.path().join("zero.db"))
            },
        ),
        ("memory", StoreConfig::memory()),
    ];
    for (name, config) in configs {
        let clock = Arc::new(StoreClock {
            store: OnceLock::new(),
            calls: Mutex::new(Vec::new()),
        });
        let store = Store::open_with(
            config
                .with_clock(clock.clone())
                .with_purge_interval(Duration::ZERO),
        )
        .unwrap();
        store.set("g", "a", "1").unwrap();
        let _ = clock.store.set(store.clone());
        let (done, results) = mpsc::channel();
        let worker = store.clone();
        std::thread::spawn(move || {
            let started = Instant::now();
            let results = (worker.count("g"), worker.set("g", "b", "2"), worker.get_all("g"));
            let _ = done.send((results, started.elapsed()));
        });
        let ((count, set, all), took) = results
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("{name}: the calls waited for themselves"));
        assert_eq!(count.unwrap(), 1, "{name}");
        set.unwrap();
        assert_eq!(all.unwrap().len(), 2, "{name}");
        assert!(took < Duration::from_secs(5), "{name}: {took:?}");
        let calls = std::mem::take(&mut *clock.calls.lock().unwrap());
        assert!(!calls.is_empty(), "{name}");
        for call in calls {
            let err = call.expect_err(name);
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "{name}: {err}");
            assert!(
                err.to_string().contains("Clock called the store it serves"),
                "{name}: {err}"
            );
        }
        // The same store, called by the thread outside the clock, is unaffected.
        let _ = clock.store.get().map(|s| assert_eq!(s.count("g").unwrap(), 2));
    }
}
