//! SPEC §3.6: versions, compare-and-swap (`set_if_version`) and `increment`.

use std::collections::BTreeSet;
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use store::{Error, Kv, Store};

use crate::common::{START_MS, both, expect_invalid, file_store, memory_store};

#[test]
fn get_with_version_returns_the_version_of_the_last_write() {
    for (kind, store, _, _dir) in both() {
        let v = store.set("g", "k", "v").unwrap();
        assert!(v >= 1, "{kind}");
        assert_eq!(
            store.get_with_version("g", "k").unwrap().version,
            v,
            "{kind}: set"
        );
        let v = store
            .set_with_ttl("g", "k", "v", Duration::from_secs(60))
            .unwrap();
        assert_eq!(
            store.get_with_version("g", "k").unwrap().version,
            v,
            "{kind}: set_with_ttl"
        );
        let v = store.set_json("g", "k", &[1]).unwrap();
        assert_eq!(
            store.get_with_version("g", "k").unwrap().version,
            v,
            "{kind}: set_json"
        );
        let v = store.set_if_version("g", "k", "5", Some(v)).unwrap();
        assert_eq!(
            store.get_with_version("g", "k").unwrap().version,
            v,
            "{kind}: set_if_version"
        );
        store.increment("g", "k", 1).unwrap();
        let after = store.get_with_version("g", "k").unwrap();
        assert!(after.version > v, "{kind}: increment makes a new version");
        assert_eq!(after.value, "6");
    }
}

#[test]
fn versions_strictly_increase_across_groups_keys_and_operations() {
    for (kind, store, _, _dir) in both() {
        let mut last = 0;
        let mut seen = Vec::new();
        for i in 0..50 {
            let g = format!("g{}", i % 7);
            let k = format!("k{}", i % 3);
            let v = match i % 5 {
                0 => store.set(&g, &k, "x").unwrap(),
                1 => store.set_with_ttl(&g, &k, "x", Duration::from_secs(5)).unwrap(),
                2 => store.set_json(&g, &k, &i).unwrap(),
                3 => {
                    let current = store.get_with_version(&g, &k).ok().map(|v| v.version);
                    store.set_if_version(&g, &k, "7", current).unwrap()
                }
                _ => {
                    store.set(&g, &k, "1").unwrap();
                    store.increment(&g, &k, 1).unwrap();
                    store.get_with_version(&g, &k).unwrap().version
                }
            };
            assert!(v > last, "{kind}: version {v} after {last}");
            last = v;
            seen.push(v);
            // Deletes never reuse or lower the sequence.
            if i % 11 == 0 {
                store.delete(&g, &k).unwrap();
                store.delete_group("unrelated").unwrap();
            }
        }
        assert_eq!(seen.iter().collect::<BTreeSet<_>>().len(), seen.len());
    }
}

#[test]
fn versions_keep_increasing_after_reopen() {
    let f = file_store();
    let mut last = 0;
    for i in 0..5 {
        last = f.store.set("g", &i.to_string(), "v").unwrap();
    }
    f.store.close().unwrap();
    let store = f.reopen();
    let v = store.set("other", "k", "v").unwrap();
    assert!(v > last, "{v} after reopen, {last} before");
    assert_eq!(store.get_with_version("g", "4").unwrap().version, last);
}

#[test]
fn failed_writes_do_not_break_version_ordering() {
    for (kind, store, _, _dir) in both() {
        let v1 = store.set("g", "k", "abc").unwrap();
        assert!(store.set_if_version("g", "k", "x", None).is_err());
        assert!(store.increment("g", "k", 1).is_err());
        let v2 = store.set("g", "k", "y").unwrap();
        assert!(v2 > v1, "{kind}");
    }
}

#[test]
fn set_if_version_none_on_a_present_key_conflicts_with_the_actual_version() {
    for (kind, store, _, _dir) in both() {
        let v = store.set("g", "k", "original").unwrap();
        match store.set_if_version("g", "k", "new", None) {
            Err(Error::Conflict {
                group,
                key,
                expected,
                actual,
                op,
            }) => {
                assert_eq!((group.as_str(), key.as_str()), ("g", "k"), "{kind}");
                assert_eq!(expected, None, "{kind}");
                assert_eq!(actual, Some(v), "{kind}");
                assert_eq!(op, "Store::set_if_version");
            }
            other => panic!("{kind}: expected Conflict, got {other:?}"),
        }
        let got = store.get_with_version("g", "k").unwrap();
        assert_eq!(
            (got.value.as_str(), got.version),
            ("original", v),
            "{kind}: value kept"
        );
        let err = store.set_if_version("g", "k", "new", None).unwrap_err();
        assert!(err.is_conflict());
        assert_eq!(err.kind().as_str(), "conflict");
    }
}

#[test]
fn set_if_version_with_a_stale_version_conflicts_and_keeps_the_value() {
    for (kind, store, _, _dir) in both() {
        let v1 = store.set_if_version("g", "k", "first", None).unwrap();
        let v2 = store.set_if_version("g", "k", "second", Some(v1)).unwrap();
        assert!(v2 > v1);
        match store.set_if_version("g", "k", "third", Some(v1)) {
            Err(Error::Conflict { expected, actual, .. }) => {
                assert_eq!((expected, actual), (Some(v1), Some(v2)), "{kind}");
            }
            other => panic!("{kind}: expected Conflict, got {other:?}"),
        }
        let got = store.get_with_version("g", "k").unwrap();
        assert_eq!((got.value.as_str(), got.version), ("second", v2), "{kind}");
        // A future version conflicts too.
        assert!(
            store
                .set_if_version("g", "k", "x", Some(v2 + 1000))
                .unwrap_err()
                .is_conflict()
        );
    }
}

#[test]
fn set_if_version_some_on_a_missing_key_conflicts_with_actual_none() {
    for (kind, store, _, _dir) in both() {
        match store.set_if_version("g", "missing", "v", Some(1)) {
            Err(Error::Conflict { expected, actual, .. }) => {
                assert_eq!((expected, actual), (Some(1), None), "{kind}");
            }
            other => panic!("{kind}: expected Conflict, got {other:?}"),
        }
        assert!(!store.exists("g", "missing").unwrap(), "{kind}: nothing written");
    }
}

#[test]
fn expired_entries_count_as_absent_for_compare_and_swap() {
    for (kind, store, clock, _dir) in both() {
        let v = store
            .set_with_ttl("g", "k", "old", Duration::from_secs(1))
            .unwrap();
        clock.advance(Duration::from_secs(1));
        match store.set_if_version("g", "k", "x", Some(v)) {
            Err(Error::Conflict { expected, actual, .. }) => {
                assert_eq!((expected, actual), (Some(v), None), "{kind}");
            }
            other => panic!("{kind}: expected Conflict, got {other:?}"),
        }
        let v2 = store.set_if_version("g", "k", "new", None).unwrap();
        let got = store.get_with_version("g", "k").unwrap();
        assert_eq!(
            (got.value.as_str(), got.version, got.expires_at),
            ("new", v2, None),
            "{kind}"
        );
    }
}

#[test]
fn set_if_version_after_delete_treats_the_key_as_absent() {
    for (kind, store, _, _dir) in both() {
        let v = store.set("g", "k", "a").unwrap();
        store.delete("g", "k").unwrap();
        assert!(
            store
                .set_if_version("g", "k", "b", Some(v))
                .unwrap_err()
                .is_conflict(),
            "{kind}"
        );
        store.set_if_version("g", "k", "b", None).unwrap();
        assert_eq!(store.get("g", "k").unwrap(), "b");
    }
}

/// Eight threads race `set_if_version(None)` on one key; returns (wins, conflicts).
fn race_create(store: &Store) -> (usize, usize) {
    let barrier = Arc::new(Barrier::new(8));
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                (
                    i,
                    store.set_if_version("race", "key", &format!("thread-{i}"), None),
                )
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let winners: Vec<_> = results.iter().filter(|(_, r)| r.is_ok()).collect();
    let conflicts = results
        .iter()
        .filter(|(_, r)| matches!(r, Err(e) if e.is_conflict()))
        .count();
    assert_eq!(winners.len(), 1, "exactly one thread wins: {results:?}");
    let (i, version) = winners[0];
    let got = store.get_with_version("race", "key").unwrap();
    assert_eq!(got.value, format!("thread-{i}"));
    assert_eq!(Some(got.version), version.as_ref().ok().copied());
    for (_, r) in &results {
        if let Err(Error::Conflict { actual, .. }) = r {
            assert_eq!(*actual, Some(got.version), "losers see the winner's version");
        }
    }
    (winners.len(), conflicts)
}

#[test]
fn eight_racing_creates_have_exactly_one_winner() {
    for _ in 0..5 {
        let f = file_store();
        assert_eq!(race_create(&f.store), (1, 7));
        let (m, _) = memory_store();
        assert_eq!(race_create(&m), (1, 7));
    }
}

#[test]
fn increment_adds_to_a_decimal_value() {
    for (kind, store, _, _dir) in both() {
        store.set("g", "n", "41").unwrap();
        assert_eq!(store.increment("g", "n", 1).unwrap(), 42, "{kind}");
        assert_eq!(
            store.get("g", "n").unwrap(),
            "42",
            "{kind}: stored as decimal text"
        );
        assert_eq!(store.increment("g", "n", -50).unwrap(), -8, "{kind}");
        assert_eq!(store.get("g", "n").unwrap(), "-8");
        assert_eq!(
            store.increment("g", "absent", 7).unwrap(),
            7,
            "{kind}: absent = 0"
        );
        assert_eq!(store.increment("g", "absent2", -3).unwrap(), -3, "{kind}");
        store.set("g", "zeros", "007").unwrap();
        assert_eq!(store.increment("g", "zeros", 1).unwrap(), 8, "{kind}");
        store.set("g", "negzero", "-0").unwrap();
        assert_eq!(store.increment("g", "negzero", 0).unwrap(), 0, "{kind}");
        store.set("g", "max", &i64::MAX.to_string()).unwrap();
        assert_eq!(store.increment("g", "max", 0).unwrap(), i64::MAX);
        store.set("g", "min", &i64::MIN.to_string()).unwrap();
        assert_eq!(store.increment("g", "min", 1).unwrap(), i64::MIN + 1);
    }
}

#[test]
fn increment_by_zero_still_makes_a_new_version() {
    for (kind, store, _, _dir) in both() {
        let v = store.set("g", "n", "5").unwrap();
        assert_eq!(store.increment("g", "n", 0).unwrap(), 5);
        let got = store.get_with_version("g", "n").unwrap();
        assert!(got.version > v, "{kind}");
        assert_eq!(got.value, "5");
    }
}

#[test]
fn increment_of_a_non_integer_is_invalid_input_and_writes_nothing() {
    for (kind, store, _, _dir) in both() {
        for bad in [
            "abc",
            "",
            " 1",
            "1 ",
            "+1",
            "1.0",
            "0x10",
            "1e3",
            "-",
            "--1",
            "1-",
            "٣",
            "１",
            "9223372036854775808",
            "-9223372036854775809",
            "99999999999999999999999",
        ] {
            let v = store.set("g", "n", bad).unwrap();
            expect_invalid(store.increment("g", "n", 1), "value");
            let got = store.get_with_version("g", "n").unwrap();
            assert_eq!(
                (got.value.as_str(), got.version),
                (bad, v),
                "{kind}: {bad:?} untouched"
            );
        }
        let err = {
            store.set("g", "n", "abc").unwrap();
            store.increment("g", "n", 1).unwrap_err()
        };
        assert_eq!(err.op(), "Store::increment");
    }
}

#[test]
fn increment_overflow_is_invalid_input_and_writes_nothing() {
    for (kind, store, _, _dir) in both() {
        let v = store.set("g", "max", &i64::MAX.to_string()).unwrap();
        expect_invalid(store.increment("g", "max", 1), "value");
        let got = store.get_with_version("g", "max").unwrap();
        assert_eq!((got.value, got.version), (i64::MAX.to_string(), v), "{kind}");

        let v = store.set("g", "min", &i64::MIN.to_string()).unwrap();
        expect_invalid(store.increment("g", "min", -1), "value");
        assert_eq!(store.get_with_version("g", "min").unwrap().version, v, "{kind}");

        store.set("g", "one", "1").unwrap();
        expect_invalid(store.increment("g", "one", i64::MAX), "value");
        assert_eq!(store.get("g", "one").unwrap(), "1");
        // An absent key with an extreme delta is fine.
        assert_eq!(
            store.increment("g", "fresh", i64::MIN).unwrap(),
            i64::MIN,
            "{kind}"
        );
    }
}

#[test]
fn ten_threads_of_100_increments_reach_1000() {
    let f = file_store();
    let handles: Vec<_> = (0..10)
        .map(|_| {
            let store = f.store.clone();
            std::thread::spawn(move || {
                for _ in 0..100 {
                    store.increment("stats", "hits", 1).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(f.store.get("stats", "hits").unwrap(), "1000");
    assert_eq!(f.reopen().get("stats", "hits").unwrap(), "1000");
}

#[test]
fn ten_threads_of_100_increments_reach_1000_in_memory() {
    let (store, _) = memory_store();
    std::thread::scope(|s| {
        for _ in 0..10 {
            s.spawn(|| {
                for _ in 0..100 {
                    store.increment("stats", "hits", 1).unwrap();
                }
            });
        }
    });
    assert_eq!(store.get("stats", "hits").unwrap(), "1000");
}

#[test]
fn two_stores_on_one_file_alternating_writes_get_increasing_versions() {
    let f = file_store();
    let a = &f.store;
    let b = f.reopen();
    let mut last = 0;
    for i in 0..40 {
        // Mix of single writes and bursts from each handle.
        let (store, n) = match i % 4 {
            0 => (a, 1),
            1 => (&b, 1),
            2 => (a, 3),
            _ => (&b, 2),
        };
        for j in 0..n {
            let v = store.set("g", &format!("k{i}-{j}"), "v").unwrap();
            assert!(v > last, "write {i}/{j}: version {v} after {last}");
            last = v;
        }
    }
    let v = a
        .increment("g", "n", 1)
        .map(|_| a.get_with_version("g", "n").unwrap().version)
        .unwrap();
    assert!(v > last);
    let v2 = b.set_if_version("g", "n", "x", Some(v)).unwrap();
    assert!(v2 > v);
}

#[test]
fn two_stores_on_one_file_racing_get_unique_versions_increasing_in_commit_order() {
    let f = file_store();
    let stores = [f.store.clone(), f.reopen()];
    // The lock makes the commit order observable: each write and its record happen under it.
    let order: Arc<Mutex<Vec<u64>>> = Arc::default();
    let all: Arc<Mutex<Vec<u64>>> = Arc::default();
    std::thread::scope(|s| {
        for (t, store) in stores.iter().enumerate() {
            for thread in 0..2 {
                let order = order.clone();
                let all = all.clone();
                s.spawn(move || {
                    let mut mine = Vec::new();
                    for i in 0..100 {
                        let key = format!("{t}-{thread}-{i}");
                        if i % 2 == 0 {
                            let mut order = order.lock().unwrap();
                            let v = store.set("ordered", &key, "v").unwrap();
                            order.push(v);
                            mine.push(v);
                        } else {
                            mine.push(store.set("free", &key, "v").unwrap());
                        }
                    }
                    assert!(mine.windows(2).all(|w| w[0] < w[1]), "per-thread order: {mine:?}");
                    all.lock().unwrap().extend(mine);
                });
            }
        }
    });
    let order = order.lock().unwrap();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "commit order: {order:?}");
    let all = all.lock().unwrap();
    assert_eq!(all.len(), 400);
    assert_eq!(
        all.iter().collect::<BTreeSet<_>>().len(),
        400,
        "versions are unique"
    );
    for store in &stores {
        assert_eq!(
            store.count("ordered").unwrap() + store.count("free").unwrap(),
            400
        );
    }
}

/// SPEC §3.2: rows another program writes have version 0. The Go implementation's upsert sets
/// only `entry_value` and `expires_at`; the row must not keep the version of our last write, or
/// a compare-and-swap that read the row before the Go write would still match and overwrite it
/// (a lost update).
#[test]
fn a_foreign_upsert_over_our_row_resets_its_version_so_a_stale_compare_and_swap_conflicts() {
    let f = file_store();
    let v = f.store.set("app", "theme", "ours").unwrap();
    assert!(v >= 1);
    f.raw()
        .execute(
            "INSERT INTO entries (group_name, entry_key, entry_value, expires_at) VALUES ('app', 'theme', 'go', NULL)
             ON CONFLICT(group_name, entry_key) DO UPDATE SET entry_value = excluded.entry_value,
               expires_at = excluded.expires_at",
            [],
        )
        .unwrap();
    let got = f.store.get_with_version("app", "theme").unwrap();
    assert_eq!((got.value.as_str(), got.version), ("go", 0));
    let err = f
        .store
        .set_if_version("app", "theme", "stale-writer", Some(v))
        .unwrap_err();
    match err {
        Error::Conflict { expected, actual, .. } => assert_eq!((expected, actual), (Some(v), Some(0))),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(f.store.get("app", "theme").unwrap(), "go");
    // A writer that read the foreign row (version 0) may replace it.
    let v2 = f
        .store
        .set_if_version("app", "theme", "after-go", Some(0))
        .unwrap();
    assert!(v2 > v);
}

/// Plain `UPDATE`s of the value or of the expiry alone by another program reset the version
/// too; an update that assigns a version of its own keeps it, and so do moves of a row to
/// another group or key, which no stale compare-and-swap can match (versions are unique).
#[test]
fn foreign_updates_of_value_or_expiry_reset_the_version_and_explicit_versions_are_kept() {
    let f = file_store();
    let value = f.store.set("g", "value", "v").unwrap();
    let ttl = f.store.set("g", "ttl", "v").unwrap();
    let explicit = f.store.set("g", "explicit", "v").unwrap();
    let moved = f.store.set("g", "moved", "v").unwrap();
    let untouched = f.store.set("g", "untouched", "v").unwrap();
    let raw = f.raw();
    raw.execute_batch(&format!(
        "UPDATE entries SET entry_value = 'foreign' WHERE entry_key = 'value';
         UPDATE entries SET expires_at = {} WHERE entry_key = 'ttl';
         UPDATE entries SET entry_value = 'foreign', version = 777777 WHERE entry_key = 'explicit';
         UPDATE entries SET entry_key = 'moved-here' WHERE entry_key = 'moved';",
        START_MS + 60_000
    ))
    .unwrap();
    let version = |k: &str| f.store.get_with_version("g", k).unwrap().version;
    assert_eq!(version("value"), 0, "value update (was {value})");
    assert_eq!(version("ttl"), 0, "expiry-only update (was {ttl})");
    assert_eq!(version("explicit"), 777_777, "was {explicit}");
    assert_eq!(version("moved-here"), moved);
    assert_eq!(version("untouched"), untouched);
}

/// Our own writes always assign a fresh version, so the reset never touches them: every kind
/// of value write, over an existing row, leaves the version it returned.
#[test]
fn our_own_overwrites_are_never_taken_for_foreign_writes() {
    for (kind, store, _, _dir) in both() {
        store.set("g", "k", "1").unwrap();
        let mut versions = vec![store.set("g", "k", "2").unwrap()];
        versions.push(
            store
                .set_with_ttl("g", "k", "3", Duration::from_secs(60))
                .unwrap(),
        );
        store.increment("g", "k", 1).unwrap();
        versions.push(store.get_with_version("g", "k").unwrap().version);
        versions.push(
            store
                .set_if_version("g", "k", "9", versions.last().copied())
                .unwrap(),
        );
        versions.push(store.set_json("g", "k", &[1]).unwrap());
        store
            .transaction(|t| {
                t.set("g", "k", "a")?;
                t.set("g", "k", "b")
            })
            .unwrap();
        versions.push(store.get_with_version("g", "k").unwrap().version);
        assert!(versions.iter().all(|v| *v > 0), "{kind}: {versions:?}");
        assert!(versions.windows(2).all(|w| w[0] < w[1]), "{kind}: {versions:?}");
    }
}

/// Rows can arrive with versions this file never issued (copied in from another store file, or
/// written with an explicit version by another program). On the first open that migrates the
/// file, the allocator moves above them, so a version is never issued twice; had the store
/// issued a row's own version again for that row, the foreign-write trigger would have reset
/// its write to 0.
#[test]
fn a_first_open_issues_versions_above_those_already_in_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("copied.db");
    Store::open(&path).unwrap().close().unwrap();
    {
        let raw = rusqlite::Connection::open(&path).unwrap();
        raw.execute_batch(
            "INSERT INTO entries (group_name, entry_key, entry_value, version) VALUES ('g', 'k', 'copied', 5000);
             DELETE FROM store_meta WHERE name = 'schema_version';",
        )
        .unwrap();
    }
    let store = Store::open(&path).unwrap();
    let issued = store.set("g", "k", "ours").unwrap();
    assert!(issued > 5000, "issued {issued}, at or below a stored version");
    let read = store.get_with_version("g", "k").unwrap();
    assert_eq!((read.value.as_str(), read.version), ("ours", issued));
}

/// A file whose version reservation was lost (the `store_meta` row deleted, the table dropped,
/// or the value cleared or set back, by hand) still holds the feed's numbers: the next open moves the allocator above
/// them and above every stored version, so writes go on with fresh, unique numbers instead of
/// colliding with `changes.seq` on every attempt.
#[test]
fn a_lost_version_reservation_is_rebuilt_above_the_feed_and_the_entries() {
    for damage in [
        "DELETE FROM store_meta WHERE name = 'version_reserved'",
        "DROP TABLE store_meta",
        "UPDATE store_meta SET value = NULL WHERE name = 'version_reserved'",
        "UPDATE store_meta SET value = 0 WHERE name = 'version_reserved'",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kv.db");
        let store = Store::open(&path).unwrap();
        for i in 0..5 {
            store.set("g", &i.to_string(), "v").unwrap();
        }
        store.set("kept", "k", "v").unwrap();
        store.delete_group("g").unwrap();
        let last = store.last_seq().unwrap();
        store.close().unwrap();
        drop(store);
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute_batch(damage)
            .unwrap();

        let store = Store::open(&path).unwrap();
        let issued = store.set("g", "x", "v").unwrap();
        assert!(
            issued > last,
            "{damage}: issued {issued}, at or below the feed's {last}"
        );
        let seqs: Vec<u64> = store
            .changes_since(0, 100)
            .unwrap()
            .changes
            .iter()
            .map(|c| c.seq)
            .collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{damage}: {seqs:?}");
        assert_eq!(seqs.last(), Some(&issued), "{damage}");
    }
}

/// SQLite stores integers as i64: a version past i64::MAX would wrap negative. A reservation
/// at the top (another program's doing) ends in a clear error, never a wrapped version.
#[test]
fn versions_never_wrap_past_i64_max() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.db");
    Store::open(&path).unwrap().close().unwrap();
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute(
            "UPDATE store_meta SET value = ?1 WHERE name = 'version_reserved'",
            [i64::MAX - 3],
        )
        .unwrap();
    let store = Store::open(&path).unwrap();
    let mut issued = Vec::new();
    let mut refused = None;
    for i in 0..6 {
        match store.set("g", &format!("k{i}"), "v") {
            Ok(v) => issued.push(v),
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    assert!(issued.iter().all(|v| *v <= i64::MAX as u64), "{issued:?}");
    assert!(issued.windows(2).all(|w| w[0] < w[1]), "{issued:?}");
    let refused = refused.expect("the numbers run out within six writes");
    assert!(refused.to_string().contains("used up"), "{refused}");
    for (i, v) in issued.iter().enumerate() {
        assert_eq!(store.get_with_version("g", &format!("k{i}")).unwrap().version, *v);
    }
}
