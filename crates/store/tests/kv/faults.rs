//! Real SQLite faults on real files: triggers installed by another connection make statements
//! fail, and a raw connection holds the write lock. Covers atomicity of multi-row writes, the
//! purge thread carrying on after errors, busy timeouts, and chunked purges.

use std::sync::Arc;
use std::time::{Duration, Instant};

use store::{Error, ErrorKind, Kv, Store, StoreConfig, SystemClock};

use crate::common::{Tmpfs, file_store, file_store_with, raw, raw_rows, within};

#[test]
fn a_fault_mid_delete_prefix_leaves_every_group() {
    let f = file_store();
    for g in ["p:1", "p:2", "p:3"] {
        f.store.set(g, "a", "v").unwrap();
        f.store.set(g, "b", "v").unwrap();
    }
    // Deleting rows of the second group fails, after the first group's rows went.
    f.raw()
        .execute_batch(
            "CREATE TRIGGER fault BEFORE DELETE ON entries WHEN OLD.group_name = 'p:2'
             BEGIN SELECT RAISE(ABORT, 'injected fault'); END;",
        )
        .unwrap();
    let err = f.store.delete_prefix("p:").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Sqlite, "{err}");
    assert_eq!(err.op(), "Store::delete_prefix");
    assert_eq!(
        f.store.groups("p:").unwrap(),
        ["p:1", "p:2", "p:3"],
        "all groups are still there"
    );
    assert_eq!(f.store.count_all("p:").unwrap(), 6);

    f.raw().execute_batch("DROP TRIGGER fault").unwrap();
    assert_eq!(f.store.delete_prefix("p:").unwrap(), 6);
    assert_eq!(f.raw_rows(), 0);
}

#[test]
fn a_failed_write_changes_nothing_and_later_versions_still_increase() {
    let f = file_store();
    let v1 = f.store.set("g", "k", "before").unwrap();
    f.raw()
        .execute_batch(
            "CREATE TRIGGER fault BEFORE UPDATE ON entries WHEN NEW.entry_value = 'poison'
             BEGIN SELECT RAISE(ABORT, 'injected fault'); END;",
        )
        .unwrap();
    let err = f.store.set("g", "k", "poison").unwrap_err();
    assert!(matches!(err, Error::Sqlite { .. }), "{err:?}");
    assert_eq!(err.op(), "Store::set");
    assert!(err.to_string().contains("injected fault"), "{err}");
    let got = f.store.get_with_version("g", "k").unwrap();
    assert_eq!((got.value.as_str(), got.version), ("before", v1));

    let err = f.store.set_if_version("g", "k", "poison", Some(v1)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Sqlite);
    assert_eq!(f.store.get("g", "k").unwrap(), "before");

    let v2 = f.store.set("g", "k", "after").unwrap();
    assert!(v2 > v1);
    assert_eq!(f.store.get_with_version("g", "k").unwrap().version, v2);
}

#[test]
fn the_purge_thread_logs_errors_and_carries_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let store = Store::open_with(
        StoreConfig::file(&path)
            .with_clock(Arc::new(SystemClock))
            .with_purge_interval(Duration::from_millis(20)),
    )
    .unwrap();
    raw(&path)
        .execute_batch(
            "CREATE TRIGGER fault BEFORE DELETE ON entries
             BEGIN SELECT RAISE(ABORT, 'injected fault'); END;",
        )
        .unwrap();
    store
        .set_with_ttl("g", "k", "v", Duration::from_millis(1))
        .unwrap();
    std::thread::sleep(Duration::from_millis(120)); // several failing purge rounds
    assert_eq!(raw_rows(&path), 1, "the trigger blocks the purge");
    raw(&path).execute_batch("DROP TRIGGER fault").unwrap();
    let start = Instant::now();
    while raw_rows(&path) != 0 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "purge thread stopped after an error"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(!store.is_closed());
    store.set("g", "k2", "v").unwrap();
}

#[test]
fn purge_expired_removes_more_than_one_batch_of_rows() {
    let f = file_store();
    {
        let mut conn = f.raw();
        let tx = conn.transaction().unwrap();
        {
            let mut stmt = tx
                .prepare("INSERT INTO entries (group_name, entry_key, entry_value, expires_at) VALUES (?1, ?2, 'v', ?3)")
                .unwrap();
            for i in 0..25_000 {
                stmt.execute(rusqlite::params![
                    format!("g{}", i % 7),
                    format!("k{i}"),
                    crate::common::START_MS - 1
                ])
                .unwrap();
            }
        }
        tx.commit().unwrap();
    }
    f.store.set("g0", "live", "v").unwrap();
    assert_eq!(f.store.count_all("").unwrap(), 1);
    assert_eq!(f.store.purge_expired().unwrap(), 25_000);
    assert_eq!(f.raw_rows(), 1);
    assert_eq!(f.store.get("g0", "live").unwrap(), "v");
}

#[test]
fn a_write_waits_for_another_connections_lock_within_busy_timeout() {
    let f = file_store();
    f.store.set("g", "k", "v0").unwrap();
    let path = f.path();
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        let conn = raw(&path);
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        locked_tx.send(()).unwrap();
        release_rx.recv().unwrap();
        std::thread::sleep(Duration::from_millis(100));
        conn.execute_batch("COMMIT").unwrap();
    });
    locked_rx.recv().unwrap();
    // Reads are not blocked by the other connection's write lock (WAL): this completes while
    // the lock is still held.
    let store = f.store.clone();
    let read = within(Duration::from_secs(3), move || store.get("g", "k").unwrap());
    assert_eq!(read, "v0");
    // The write waits (default busy timeout 5 s) for the lock, held ≥ 100 ms more, then succeeds.
    // Timed from before the release: the holder commits ≥ 100 ms after it, however loaded.
    let start = Instant::now();
    release_tx.send(()).unwrap();
    f.store.set("g", "k", "v1").unwrap();
    assert!(
        start.elapsed() >= Duration::from_millis(100),
        "the write did not wait for the lock"
    );
    holder.join().unwrap();
    assert_eq!(f.store.get("g", "k").unwrap(), "v1");
}

#[test]
fn a_write_blocked_past_busy_timeout_is_a_sqlite_busy_error() {
    let f = file_store_with(|mut c| {
        c.busy_timeout = Duration::from_millis(20);
        c
    });
    let v = f.store.set("g", "k", "v0").unwrap();
    let conn = f.raw();
    conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    let err = f.store.set("g", "k", "v1").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Sqlite, "{err}");
    assert_eq!(err.op(), "Store::set");
    assert!(
        err.to_string().contains("busy_timeout"),
        "the message suggests the fix: {err}"
    );
    conn.execute_batch("ROLLBACK").unwrap();
    let got = f.store.get_with_version("g", "k").unwrap();
    assert_eq!((got.value.as_str(), got.version), ("v0", v));
    assert!(f.store.set("g", "k", "v2").unwrap() > v);
}

#[test]
fn iterators_hold_no_connection_between_chunks() {
    let f = file_store_with(|mut c| {
        c.readers = 1;
        c
    });
    for i in 0..600 {
        f.store.set("g", &format!("{i:03}"), "v").unwrap();
    }
    let store = f.store.clone();
    within(Duration::from_secs(30), move || {
        let mut it = store.iter("g");
        let mut groups = store.groups_iter("");
        assert!(it.next().unwrap().is_ok());
        assert_eq!(groups.next().unwrap().unwrap(), "g");
        // With one reader, these would wait forever if an iterator held it.
        assert_eq!(store.count("g").unwrap(), 600);
        store.set("g", "zzz", "v").unwrap();
        assert_eq!(store.get("g", "zzz").unwrap(), "v");
        let rest: Vec<_> = it.collect::<Result<Vec<_>, _>>().unwrap();
        assert_eq!(
            rest.len(),
            600,
            "599 left of the first 600, plus zzz written mid-iteration"
        );
        store.close().unwrap();
    });
}

#[test]
fn memory_iterators_hold_no_lock_between_chunks() {
    let (store, _) = crate::common::memory_store();
    for i in 0..300 {
        store.set("g", &format!("{i:03}"), "v").unwrap();
    }
    within(Duration::from_secs(30), move || {
        let mut it = store.iter("g");
        assert!(it.next().unwrap().is_ok());
        store.set("g", "new", "v").unwrap();
        assert_eq!(it.count(), 300);
    });
}

#[test]
fn a_directory_as_the_database_path_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = Store::open(dir.path()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io, "{err:?}");
    assert_eq!(err.op(), "Store::open");
    let message = err.to_string();
    assert!(message.contains("is a directory"), "{message}");
    assert!(
        message.contains(&dir.path().join("store.db").display().to_string()),
        "{message}"
    );
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "nothing created inside"
    );
}

/// On a full disk SQLite may roll a whole transaction back on its own (here: spilling its page
/// cache). A closure that catches that error and goes on must not get its later writes
/// committed one by one outside the transaction: they are refused, the transaction fails, and
/// the version counter and feed stay consistent for the writes after it.
#[test]
fn writes_after_sqlite_rolled_a_transaction_back_are_refused_not_autocommitted() {
    let Some(fs) = Tmpfs::mount("3m") else { return };
    let path = fs.path().join("state.db");
    let filler = fs.path().join("filler");
    std::fs::write(&filler, vec![0u8; 1 << 20]).unwrap();
    let store = Store::open_with(StoreConfig::file(&path).with_purge_interval(Duration::ZERO)).unwrap();
    let before = store.set("pre", "k", "v").unwrap();
    let sub = store.watch("*").unwrap();
    let big = "z".repeat(100_000);
    let mut failures = Vec::new();
    let mut refused_after_rollback = 0;
    let result = store.transaction(|tx| {
        for i in 0..60 {
            if let Err(e) = tx.set("tx", &format!("big{i}"), &big) {
                if e.field() == Some("transaction") {
                    refused_after_rollback += 1;
                } else {
                    failures.push(e);
                }
            }
        }
        for i in 0..3 {
            let _ = tx.set("tx", &format!("small{i}"), "s");
        }
        Ok(()) // every error swallowed
    });
    assert!(!failures.is_empty(), "the disk never filled");
    assert!(
        refused_after_rollback > 0,
        "SQLite did not roll back: {failures:?}"
    );
    let err = result.unwrap_err();
    assert_eq!(err.field(), Some("transaction"), "{err}");
    assert!(err.to_string().contains("rolled this transaction back"), "{err}");
    assert!(
        store.get_all("tx").unwrap().is_empty(),
        "rows of the failed transaction were committed"
    );
    assert!(
        sub.try_recv().is_none(),
        "events of the failed transaction were sent"
    );

    std::fs::remove_file(&filler).unwrap();
    let mut last = before;
    for i in 0..30 {
        let v = store.set("after", &format!("k{i}"), "v").unwrap();
        assert!(v > last, "versions went backwards: {v} after {last}");
        last = v;
    }
    let seqs: Vec<u64> = store
        .changes_since(0, 1000)
        .unwrap()
        .changes
        .iter()
        .map(|c| c.seq)
        .collect();
    assert_eq!(seqs.len(), 31, "{seqs:?}");
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    store.close().unwrap();
}
