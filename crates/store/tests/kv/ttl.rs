//! SPEC §3.4: liveness and TTL with `ManualClock`, lazy deletion, `purge_expired`, and the
//! real-clock purge thread.

use std::sync::Arc;
use std::time::{Duration, Instant};

use store::{Kv, ManualClock, Store, StoreConfig, SystemClock};

use crate::common::{HeldTransaction, START_MS, both, expect_not_found, file_store, raw_rows};

const MINUTE: Duration = Duration::from_secs(60);

/// Asserts (group, key) is invisible to every read of the store.
#[track_caller]
fn assert_invisible(store: &Store, group: &str, key: &str, what: &str) {
    assert!(!store.exists(group, key).unwrap(), "{what}: exists");
    assert!(!store.group_exists(group).unwrap(), "{what}: group_exists");
    assert_eq!(store.count(group).unwrap(), 0, "{what}: count");
    assert_eq!(store.count_all("").unwrap(), 0, "{what}: count_all");
    assert_eq!(store.count_all(group).unwrap(), 0, "{what}: count_all(group)");
    assert!(store.get_all(group).unwrap().is_empty(), "{what}: get_all");
    assert!(
        store.get_page(group, 0, 10).unwrap().is_empty(),
        "{what}: get_page"
    );
    assert_eq!(store.iter(group).count(), 0, "{what}: iter");
    assert!(store.groups("").unwrap().is_empty(), "{what}: groups");
    assert_eq!(store.groups_iter("").count(), 0, "{what}: groups_iter");
    assert_eq!(
        store.render(&format!("[{{{{ {key} }}}}]"), group).unwrap(),
        "[]",
        "{what}: render"
    );
    assert_eq!(
        store.render("{{ entries|length }}", group).unwrap(),
        "0",
        "{what}: render entries"
    );
    expect_not_found(store.get_split(group, key, ","), group, key);
    expect_not_found(store.get_fields(group, key), group, key);
    expect_not_found(store.get_json::<String>(group, key), group, key);
    expect_not_found(store.get_with_version(group, key), group, key);
    expect_not_found(store.get(group, key), group, key);
}

#[test]
fn ttl_expired_key_is_invisible_to_every_read() {
    for (kind, store, clock, _dir) in both() {
        store
            .set_with_ttl("session", "token", "\"abc\"", Duration::from_secs(10))
            .unwrap();
        assert_eq!(store.get("session", "token").unwrap(), "\"abc\"", "{kind}");
        clock.advance(Duration::from_secs(10));
        assert_invisible(&store, "session", "token", kind);
    }
}

#[test]
fn entry_is_live_until_exactly_its_expiry() {
    for (kind, store, clock, _dir) in both() {
        store
            .set_with_ttl("g", "k", "v", Duration::from_millis(1500))
            .unwrap();
        let expires_at = store.get_with_version("g", "k").unwrap().expires_at;
        assert_eq!(expires_at, Some(START_MS + 1500), "{kind}: now + ttl");
        clock.advance(Duration::from_millis(1499));
        assert_eq!(store.get("g", "k").unwrap(), "v", "{kind}: 1 ms before expiry");
        assert_eq!(store.count("g").unwrap(), 1, "{kind}");
        clock.advance(Duration::from_millis(1));
        assert!(
            !store.exists("g", "k").unwrap(),
            "{kind}: expires_at == now is expired"
        );
        expect_not_found(store.get("g", "k"), "g", "k");
    }
}

#[test]
fn expired_entries_are_hidden_but_live_neighbours_stay_visible() {
    for (kind, store, clock, _dir) in both() {
        store
            .set_with_ttl("g", "short", "s", Duration::from_secs(1))
            .unwrap();
        store
            .set_with_ttl("g", "long", "l", Duration::from_secs(100))
            .unwrap();
        store.set("g", "forever", "f").unwrap();
        clock.advance(Duration::from_secs(1));
        assert_eq!(store.count("g").unwrap(), 2, "{kind}");
        assert_eq!(store.count_all("").unwrap(), 2, "{kind}");
        assert_eq!(
            store.get_all("g").unwrap().keys().collect::<Vec<_>>(),
            ["forever", "long"]
        );
        let page: Vec<String> = store
            .get_page("g", 0, 10)
            .unwrap()
            .into_iter()
            .map(|e| e.key)
            .collect();
        assert_eq!(page, ["forever", "long"], "{kind}");
        assert_eq!(
            store.get_page("g", 1, 10).unwrap().len(),
            1,
            "{kind}: offsets skip live rows only"
        );
        assert_eq!(
            store.render("{{ short }}{{ long }}{{ forever }}", "g").unwrap(),
            "lf",
            "{kind}"
        );
        assert!(!store.exists("g", "short").unwrap());
    }
}

#[test]
fn set_clears_a_ttl() {
    for (kind, store, clock, _dir) in both() {
        store.set_with_ttl("g", "k", "temp", MINUTE).unwrap();
        store.set("g", "k", "permanent").unwrap();
        assert_eq!(
            store.get_with_version("g", "k").unwrap().expires_at,
            None,
            "{kind}"
        );
        clock.advance(MINUTE * 2);
        assert_eq!(store.get("g", "k").unwrap(), "permanent", "{kind}");
    }
}

#[test]
fn set_json_and_set_if_version_clear_a_ttl() {
    for (kind, store, clock, _dir) in both() {
        store.set_with_ttl("g", "json", "1", MINUTE).unwrap();
        store.set_json("g", "json", &[1, 2]).unwrap();
        let v = store.set_with_ttl("g", "cas", "1", MINUTE).unwrap();
        store.set_if_version("g", "cas", "2", Some(v)).unwrap();
        clock.advance(MINUTE * 2);
        assert_eq!(store.get_json::<Vec<i32>>("g", "json").unwrap(), [1, 2], "{kind}");
        assert_eq!(store.get("g", "cas").unwrap(), "2", "{kind}");
    }
}

#[test]
fn set_with_ttl_replaces_an_earlier_ttl() {
    for (kind, store, clock, _dir) in both() {
        store.set_with_ttl("g", "k", "a", Duration::from_secs(1)).unwrap();
        store
            .set_with_ttl("g", "k", "b", Duration::from_secs(10))
            .unwrap();
        clock.advance(Duration::from_secs(5));
        assert_eq!(store.get("g", "k").unwrap(), "b", "{kind}");
        store.set("g", "p", "x").unwrap();
        store.set_with_ttl("g", "p", "y", Duration::from_secs(1)).unwrap();
        clock.advance(Duration::from_secs(1));
        assert!(
            !store.exists("g", "p").unwrap(),
            "{kind}: a TTL can be added to a permanent entry"
        );
    }
}

#[test]
fn increment_keeps_the_ttl() {
    for (kind, store, clock, _dir) in both() {
        store
            .set_with_ttl("g", "n", "41", Duration::from_secs(10))
            .unwrap();
        assert_eq!(store.increment("g", "n", 1).unwrap(), 42, "{kind}");
        assert_eq!(
            store.get_with_version("g", "n").unwrap().expires_at,
            Some(START_MS + 10_000)
        );
        clock.advance(Duration::from_secs(5));
        assert_eq!(store.increment("g", "n", 1).unwrap(), 43, "{kind}");
        clock.advance(Duration::from_secs(5));
        assert!(
            !store.exists("g", "n").unwrap(),
            "{kind}: expires at the original time"
        );
    }
}

#[test]
fn increment_of_an_expired_entry_starts_from_zero() {
    for (kind, store, clock, _dir) in both() {
        store
            .set_with_ttl("g", "n", "100", Duration::from_secs(1))
            .unwrap();
        store
            .set_with_ttl("g", "bad", "not a number", Duration::from_secs(1))
            .unwrap();
        clock.advance(Duration::from_secs(1));
        assert_eq!(store.increment("g", "n", 5).unwrap(), 5, "{kind}");
        assert_eq!(
            store.increment("g", "bad", 2).unwrap(),
            2,
            "{kind}: expired = absent"
        );
        clock.advance(MINUTE);
        assert_eq!(
            store.get("g", "n").unwrap(),
            "5",
            "{kind}: the new value is visible"
        );
    }
}

#[test]
fn set_with_ttl_zero_is_never_visible() {
    for (kind, store, _, _dir) in both() {
        let v = store.set_with_ttl("g", "k", "v", Duration::ZERO).unwrap();
        assert!(v >= 1, "{kind}: the write still gets a version");
        assert_invisible(&store, "g", "k", kind);
        // ZERO over an existing live entry removes it from view as well.
        store.set("g", "k2", "v").unwrap();
        store.set_with_ttl("g", "k2", "v2", Duration::ZERO).unwrap();
        assert!(!store.exists("g", "k2").unwrap(), "{kind}");
    }
}

#[test]
fn a_sub_millisecond_ttl_keeps_the_entry_for_a_millisecond() {
    for (kind, store, clock, _dir) in both() {
        store
            .set_with_ttl("g", "k", "v", Duration::from_micros(1))
            .unwrap();
        store
            .set_with_ttl("g", "k2", "v", Duration::from_micros(1_500))
            .unwrap();
        assert_eq!(
            store.get("g", "k").unwrap(),
            "v",
            "{kind}: 1 µs rounds up to 1 ms"
        );
        let expiry = store.get_with_version("g", "k2").unwrap().expires_at;
        assert_eq!(expiry, Some(START_MS + 2), "{kind}: 1.5 ms rounds up to 2 ms");
        clock.advance(Duration::from_millis(1));
        assert!(
            !store.exists("g", "k").unwrap(),
            "{kind}: gone after its millisecond"
        );
        assert!(store.exists("g", "k2").unwrap(), "{kind}");
    }
}

#[test]
fn purge_expired_removes_two_expired_and_keeps_the_live_one() {
    let f = file_store();
    let s = &f.store;
    s.set_with_ttl("a", "x", "1", Duration::from_secs(1)).unwrap();
    s.set_with_ttl("b", "y", "2", Duration::from_secs(2)).unwrap();
    s.set_with_ttl("a", "live", "3", MINUTE).unwrap();
    f.clock.advance(Duration::from_secs(2));
    assert_eq!(f.raw_rows(), 3);
    assert_eq!(s.purge_expired().unwrap(), 2);
    assert_eq!(f.raw_rows(), 1);
    assert_eq!(s.get("a", "live").unwrap(), "3");
    assert_eq!(s.purge_expired().unwrap(), 0);

    let (m, clock) = crate::common::memory_store();
    m.set_with_ttl("a", "x", "1", Duration::from_secs(1)).unwrap();
    m.set_with_ttl("b", "y", "2", Duration::ZERO).unwrap();
    m.set("a", "live", "3").unwrap();
    clock.advance(Duration::from_secs(1));
    assert_eq!(m.purge_expired().unwrap(), 2);
    assert_eq!(m.get("a", "live").unwrap(), "3");
}

#[test]
fn get_on_an_expired_key_deletes_the_row_but_exists_does_not() {
    let f = file_store();
    f.store
        .set_with_ttl("g", "k", "v", Duration::from_secs(1))
        .unwrap();
    f.store.set("g", "live", "v").unwrap();
    f.clock.advance(Duration::from_secs(1));
    assert!(!f.store.exists("g", "k").unwrap());
    assert_eq!(f.store.count("g").unwrap(), 1);
    assert_eq!(f.raw_rows(), 2, "exists and count never delete");
    expect_not_found(f.store.get("g", "k"), "g", "k");
    assert_eq!(f.raw_rows(), 1, "get deleted the expired row");
    assert_eq!(f.store.purge_expired().unwrap(), 0);
}

#[test]
fn every_get_variant_lazily_deletes_an_expired_row() {
    let f = file_store();
    let keys = ["get", "with_version", "json", "split", "fields"];
    for k in keys {
        f.store.set_with_ttl("g", k, "1", Duration::from_secs(1)).unwrap();
    }
    f.clock.advance(Duration::from_secs(1));
    assert_eq!(f.raw_rows(), 5);
    expect_not_found(f.store.get("g", "get"), "g", "get");
    expect_not_found(f.store.get_with_version("g", "with_version"), "g", "with_version");
    expect_not_found(f.store.get_json::<i32>("g", "json"), "g", "json");
    expect_not_found(f.store.get_split("g", "split", ","), "g", "split");
    expect_not_found(f.store.get_fields("g", "fields"), "g", "fields");
    assert_eq!(f.raw_rows(), 0);
}

#[test]
fn delete_of_an_expired_entry_returns_false_and_removes_the_row() {
    let f = file_store();
    f.store
        .set_with_ttl("g", "k", "v", Duration::from_secs(1))
        .unwrap();
    f.clock.advance(Duration::from_secs(1));
    assert!(!f.store.delete("g", "k").unwrap());
    assert_eq!(f.raw_rows(), 0);
}

#[test]
fn ttl_survives_reopen_and_is_judged_by_the_clock() {
    let f = file_store();
    f.store
        .set_with_ttl("g", "k", "v", Duration::from_secs(10))
        .unwrap();
    f.store.close().unwrap();
    let store = f.reopen();
    assert_eq!(store.get("g", "k").unwrap(), "v");
    f.clock.advance(Duration::from_secs(10));
    assert!(!store.exists("g", "k").unwrap());
}

#[test]
fn a_clock_moved_backwards_revives_unpurged_entries() {
    // Liveness is `expires_at > now` for the clock's current reading, nothing more.
    let (store, clock) = crate::common::memory_store();
    store.set_with_ttl("g", "k", "v", Duration::from_secs(1)).unwrap();
    clock.advance(Duration::from_secs(1));
    assert!(!store.exists("g", "k").unwrap());
    clock.set(START_MS);
    assert!(store.exists("g", "k").unwrap());
}

/// A file store on the system clock with a 20 ms purge interval.
fn real_clock_store() -> (tempfile::TempDir, std::path::PathBuf, Store) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let store = Store::open_with(
        StoreConfig::file(&path)
            .with_clock(Arc::new(SystemClock))
            .with_purge_interval(Duration::from_millis(20)),
    )
    .unwrap();
    (dir, path, store)
}

#[test]
fn purge_thread_removes_expired_rows_within_500ms() {
    let (_dir, path, store) = real_clock_store();
    store
        .set_with_ttl("g", "k", "v", Duration::from_millis(1))
        .unwrap();
    store.set("g", "live", "v").unwrap();
    let start = Instant::now();
    loop {
        // Count physical rows: a read through the store would delete the row itself.
        if raw_rows(&path) == 1 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "expired row still present after 10 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(store.get("g", "live").unwrap(), "v");
}

#[test]
fn closing_stops_the_purge_thread_promptly() {
    let (_dir, path, store) = real_clock_store();
    store.set("g", "k", "v").unwrap();
    std::thread::sleep(Duration::from_millis(50)); // let it run a few rounds
    let start = Instant::now();
    store.close().unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "close took {:?}",
        start.elapsed()
    );
    assert!(store.is_closed());
    assert_eq!(raw_rows(&path), 1);

    // With the default 60 s interval the thread is asleep; close must wake it, not wait.
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("s.db")).unwrap();
    let start = Instant::now();
    store.close().unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "close took {:?}",
        start.elapsed()
    );
}

#[test]
fn dropping_the_last_handle_stops_the_purge_thread_promptly() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("s.db")).unwrap();
    let clone = store.clone();
    drop(store);
    clone.set("g", "k", "v").unwrap();
    let start = Instant::now();
    drop(clone);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "drop took {:?}",
        start.elapsed()
    );
}

#[test]
fn purge_thread_uses_the_configured_clock() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let clock = Arc::new(ManualClock::new(START_MS));
    let store = Store::open_with(
        StoreConfig::file(&path)
            .with_clock(clock.clone())
            .with_purge_interval(Duration::from_millis(10)),
    )
    .unwrap();
    store.set_with_ttl("g", "k", "v", MINUTE).unwrap();
    std::thread::sleep(Duration::from_millis(60));
    assert_eq!(
        raw_rows(&path),
        1,
        "not expired on the manual clock, so not purged"
    );
    clock.advance(MINUTE);
    let start = Instant::now();
    while raw_rows(&path) != 0 {
        assert!(start.elapsed() < Duration::from_secs(10), "not purged after 10 s");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// SQLite's write lock on a file, held by another connection (as another process would) until
/// [`WriteLock::release`], or for at most a minute should a failing test never release it.
/// Released on demand rather than after a fixed time, so a loaded machine cannot let the lock
/// lapse before the test has looked.
struct WriteLock {
    release: std::sync::mpsc::Sender<()>,
    holder: std::thread::JoinHandle<()>,
}

impl WriteLock {
    fn release(self) {
        drop(self.release);
        self.holder.join().unwrap();
    }
}

/// Takes SQLite's write lock on `path`; returns once it is held.
fn hold_write_lock(path: &std::path::Path) -> WriteLock {
    let path = path.to_path_buf();
    let (taken_tx, taken) = std::sync::mpsc::channel();
    let (release, release_rx) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("BEGIN IMMEDIATE; INSERT INTO entries (group_name, entry_key, entry_value) VALUES ('lock', 'x', 'y')")
            .unwrap();
        taken_tx.send(()).unwrap();
        let _ = release_rx.recv_timeout(Duration::from_secs(60));
        conn.execute_batch("ROLLBACK").unwrap();
    });
    taken.recv().unwrap();
    WriteLock { release, holder }
}

/// SPEC §3.3: reads never wait for writers. A `get` that finds an expired entry deletes it only
/// if it can write at once; otherwise it is still `NotFound` at once, and the entry is removed
/// (and reported `Expired`) later.
/// Also without reader connections, where reads go through the writer connection.
#[test]
fn get_of_an_expired_key_is_not_found_at_once_while_another_connection_writes() {
    for readers in [StoreConfig::file("x").readers, 0] {
        // The lock is held until the get returns: a get that waited for it would wait out
        // the busy timeout.
        let f = crate::common::file_store_with(|mut c| {
            c.busy_timeout = Duration::from_secs(10);
            c.readers = readers;
            c
        });
        f.store.set_with_ttl("g", "k", "v", MINUTE).unwrap();
        f.clock.advance(2 * MINUTE);
        let holder = hold_write_lock(&f.path());
        let started = Instant::now();
        let result = f.store.get("g", "k");
        let took = started.elapsed();
        holder.release();
        expect_not_found(result, "g", "k");
        assert!(
            took < Duration::from_secs(5),
            "get with {readers} readers waited {took:?} for the other writer"
        );
        // The entry is still there for the purge to report.
        let sub = f.store.watch("g").unwrap();
        assert_eq!(f.store.purge_expired().unwrap(), 1);
        assert_eq!(sub.try_recv().map(|e| e.kind), Some(store::EventKind::Expired));
    }
}

/// SPEC §3.4: the purge thread stops promptly on close or last drop, also while another
/// process holds the write lock (its batches do not wait inside SQLite for that lock; they are
/// retried where a stop request ends them). Its work is only postponed: once the lock is free,
/// the expired entry goes.
#[test]
fn close_and_last_drop_stop_a_purge_thread_at_once_while_another_connection_writes() {
    for close in [true, false] {
        // The lock is held until the stop returns: a purge batch waiting inside SQLite for
        // it would hold the stop up for the whole busy timeout.
        let f = crate::common::file_store_with(|mut c| {
            c.busy_timeout = Duration::from_secs(10);
            c.purge_interval = Duration::from_millis(10);
            c
        });
        f.store.set_with_ttl("g", "k", "v", MINUTE).unwrap();
        f.clock.advance(2 * MINUTE);
        let holder = hold_write_lock(&f.path());
        std::thread::sleep(Duration::from_millis(200)); // the purge thread is retrying by now
        let started = Instant::now();
        if close {
            f.store.close().unwrap();
        } else {
            drop(f.store);
        }
        let took = started.elapsed();
        holder.release();
        assert!(
            took < Duration::from_secs(5),
            "{} took {took:?}",
            if close { "close" } else { "the last drop" }
        );
    }
    let f = crate::common::file_store_with(|mut c| {
        c.purge_interval = Duration::from_millis(10);
        c
    });
    f.store.set_with_ttl("g", "k", "v", MINUTE).unwrap();
    let holder = hold_write_lock(&f.path());
    f.clock.advance(2 * MINUTE);
    std::thread::sleep(Duration::from_millis(200));
    let rows = raw_rows(&f.path());
    holder.release();
    assert_eq!(rows, 1, "purged while another connection held the lock");
    let start = Instant::now();
    while raw_rows(&f.path()) != 0 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "not purged after the lock was freed"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn get_of_an_expired_key_does_not_wait_for_another_threads_transaction() {
    let f = file_store();
    f.store.set_with_ttl("g", "k", "v", MINUTE).unwrap();
    f.clock.advance(2 * MINUTE);
    // Held until the get returns.
    let writer = HeldTransaction::start(&f.store, "other", "k", "v");
    let begun = Instant::now();
    let result = f.store.get("g", "k");
    let took = begun.elapsed();
    writer.release();
    expect_not_found(result, "g", "k");
    assert!(
        took < Duration::from_secs(5),
        "get waited {took:?} for the transaction"
    );
    // Without a writer in the way, the lazy delete happens as before.
    let _ = f.store.get("g", "k");
    assert_eq!(f.raw_rows(), 1, "only other/k is left");
}

/// On a memory store reads share the writer's lock, so a busy lock means nothing about other
/// writers: a `get` of an expired key always deletes it and reports `Expired`, even while
/// another thread reads flat out.
#[test]
fn memory_store_get_of_an_expired_key_reports_expired_despite_concurrent_reads() {
    let (store, clock) = crate::common::memory_store();
    for i in 0..50 {
        store.set_with_ttl("g", &format!("k{i}"), "v", MINUTE).unwrap();
    }
    store.set("other", "k", "v").unwrap();
    clock.advance(2 * MINUTE);
    let sub = store
        .watch_with("g", store::WatchOptions { capacity: 256 })
        .unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (store, stop) = (store.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                store.count("other").unwrap();
            }
        })
    };
    for i in 0..50 {
        expect_not_found(store.get("g", &format!("k{i}")), "g", &format!("k{i}"));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    reader.join().unwrap();
    let expired = std::iter::from_fn(|| sub.try_recv())
        .filter(|e| e.kind == store::EventKind::Expired)
        .count();
    assert_eq!(expired, 50);
    assert_eq!(store.count_all("").unwrap(), 1);
}

/// A lazy-expiry delete that fails (here a foreign trigger refuses its change row) leaves a
/// plain read answering NotFound, the failed delete rolled back on its own; inside a
/// transaction the error reaches the closure, so its `?` rolls the transaction back instead
/// of committing a removal without its change row.
#[test]
fn a_failed_lazy_expiry_delete_is_not_found_outside_a_transaction_and_an_error_inside() {
    let fixture = crate::common::file_store();
    let store = &fixture.store;
    store
        .set_with_ttl("g", "k", "v", Duration::from_millis(5))
        .unwrap();
    fixture.clock.advance(Duration::from_millis(10));
    fixture
        .raw()
        .execute_batch(
            "CREATE TRIGGER refuse_expired BEFORE INSERT ON changes WHEN NEW.kind = 'expired'
             BEGIN SELECT RAISE(ABORT, 'no expiry today'); END;",
        )
        .unwrap();

    expect_not_found(store.get("g", "k"), "g", "k");
    assert_eq!(fixture.raw_rows(), 1, "the failed delete rolled back");

    let result = store.transaction(|tx| {
        tx.set("g", "other", "1")?;
        tx.get("g", "k").map(drop)
    });
    let err = result.unwrap_err();
    assert!(err.to_string().contains("no expiry today"), "{err}");
    assert!(
        !store.exists("g", "other").unwrap(),
        "the transaction rolled back"
    );
    assert_eq!(fixture.raw_rows(), 1);
}
