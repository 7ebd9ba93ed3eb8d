//! SPEC §5.3 Durable change feed: rows written with each mutation, readable by a second handle,
//! rollback, expiry, retention (`max_rows`, `max_age`, `pruned_through` and `gap`),
//! `record_values`, a disabled feed, limits, `next_seq`, and versions across two handles.

use std::collections::BTreeSet;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use store::{Change, ErrorKind, EventKind, Kv, Store, StoreConfig};

use crate::common::{
    HeldTransaction, START_MS, expect_invalid, expect_not_found, file_store, file_store_with, memory_store,
    memory_store_with, within,
};
use crate::support::{all_changes_since, assert_strictly_increasing, change_summary, drain, ev};

const DAY: Duration = Duration::from_secs(24 * 3600);

#[test]
fn file_stores_have_the_feed_on_and_memory_stores_off_by_default() {
    assert!(StoreConfig::file("x.db").changes.enabled);
    assert!(!StoreConfig::memory().changes.enabled);
    let f = file_store();
    assert_eq!(f.store.last_seq().unwrap(), 0);
    let empty = f.store.changes_since(0, 10).unwrap();
    assert!(empty.changes.is_empty() && !empty.gap && empty.next_seq == 0);
    let (memory, _) = memory_store();
    assert_eq!(
        memory.changes_since(0, 10).unwrap_err().kind(),
        ErrorKind::Unsupported
    );
    let (memory, _) = memory_store_with(|c| c.with_change_feed(true));
    let v = memory.set("g", "k", "v").unwrap();
    assert_eq!(memory.changes_since(0, 10).unwrap().changes[0].seq, v);
}

#[test]
fn a_second_store_on_the_file_reads_every_change_of_the_first_in_order() {
    let f = file_store();
    let reader = f.reopen();
    let events = f
        .store
        .watch_with("*", store::WatchOptions { capacity: 100 })
        .unwrap();
    let v1 = f.store.set("config", "pool", "eu-west").unwrap();
    let v2 = f
        .store
        .set_with_ttl("sessions", "abc", "alice", Duration::from_secs(60))
        .unwrap();
    assert_eq!(f.store.increment("stats", "hits", 5).unwrap(), 5);
    assert!(f.store.delete("config", "pool").unwrap());
    f.store
        .transaction(|tx| {
            tx.set("config", "a", "1")?;
            tx.set("config", "b", "2")?;
            Ok(())
        })
        .unwrap();
    assert_eq!(f.store.delete_group("config").unwrap(), 2);
    f.clock.advance(Duration::from_secs(60));
    expect_not_found(f.store.get("sessions", "abc"), "sessions", "abc");

    let changes = all_changes_since(&reader, 0);
    assert_eq!(
        change_summary(&changes),
        [
            ev(EventKind::Set, "config", Some("pool")),
            ev(EventKind::Set, "sessions", Some("abc")),
            ev(EventKind::Set, "stats", Some("hits")),
            ev(EventKind::Delete, "config", Some("pool")),
            ev(EventKind::Set, "config", Some("a")),
            ev(EventKind::Set, "config", Some("b")),
            ev(EventKind::DeleteGroup, "config", None),
            ev(EventKind::Expired, "sessions", Some("abc")),
        ]
    );
    let seqs: Vec<u64> = changes.iter().map(|c| c.seq).collect();
    assert_strictly_increasing(&seqs);
    assert_eq!(
        (seqs[0], seqs[1]),
        (v1, v2),
        "a Set's seq is the version returned"
    );
    assert_eq!(changes[1].expires_at, Some(START_MS + 60_000));
    assert_eq!(changes[0].value.as_deref(), Some("eu-west"));
    assert_eq!(changes[2].value.as_deref(), Some("5"));
    assert!(
        changes[3..]
            .iter()
            .filter(|c| c.kind != EventKind::Set)
            .all(|c| c.value.is_none())
    );
    assert_eq!(changes[7].at_ms, START_MS + 60_000);
    assert!(changes[..7].iter().all(|c| c.at_ms == START_MS));
    // Events and feed rows share their seq.
    let event_seqs: Vec<u64> = drain(&events).iter().map(|e| e.seq).collect();
    assert_eq!(event_seqs, seqs);
    assert_eq!(reader.last_seq().unwrap(), *seqs.last().unwrap());
    assert_eq!(f.store.last_seq().unwrap(), *seqs.last().unwrap());
}

#[test]
fn a_rolled_back_transaction_leaves_no_change_rows() {
    let f = file_store();
    f.store.set("g", "k", "v").unwrap();
    let last = f.store.last_seq().unwrap();
    let _ = f
        .store
        .transaction(|tx| {
            tx.set("g", "k2", "v")?;
            tx.delete("g", "k")?;
            tx.delete_prefix("")?;
            Err::<(), _>(store::Error::InvalidInput {
                op: "test",
                field: "x",
                reason: "roll back".into(),
            })
        })
        .unwrap_err();
    assert_eq!(f.store.last_seq().unwrap(), last);
    assert!(f.store.changes_since(last, 100).unwrap().changes.is_empty());
    let raw: i64 = f
        .raw()
        .query_row("SELECT count(*) FROM changes", [], |r| r.get(0))
        .unwrap();
    assert_eq!(raw, 1);
}

#[test]
fn every_kind_of_expiry_is_recorded_as_expired() {
    let f = file_store();
    f.store
        .set_with_ttl("g", "lazy", "v", Duration::from_secs(1))
        .unwrap();
    f.store
        .set_with_ttl("g", "deleted", "v", Duration::from_secs(1))
        .unwrap();
    f.store
        .set_with_ttl("g", "purged", "v", Duration::from_secs(1))
        .unwrap();
    let after_sets = f.store.last_seq().unwrap();
    f.clock.advance(Duration::from_secs(1));
    expect_not_found(f.store.get("g", "lazy"), "g", "lazy");
    assert!(!f.store.delete("g", "deleted").unwrap());
    assert_eq!(f.store.purge_expired().unwrap(), 1);
    let changes = f.store.changes_since(after_sets, 100).unwrap().changes;
    assert_eq!(
        change_summary(&changes),
        [
            ev(EventKind::Expired, "g", Some("lazy")),
            ev(EventKind::Expired, "g", Some("deleted")),
            ev(EventKind::Expired, "g", Some("purged")),
        ]
    );
    assert!(
        changes
            .iter()
            .all(|c| c.value.is_none() && c.at_ms == START_MS + 1000)
    );
    let kinds: Vec<String> = {
        let conn = f.raw();
        let mut stmt = conn
            .prepare("SELECT kind FROM changes WHERE seq > ?1 ORDER BY seq")
            .unwrap();
        stmt.query_map([after_sets as i64], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    assert_eq!(kinds, ["expired", "expired", "expired"]);
}

#[test]
fn change_rows_store_the_kind_as_set_delete_delete_group_or_expired() {
    let f = file_store();
    f.store.set("g", "a", "1").unwrap();
    f.store.delete("g", "a").unwrap();
    f.store.set("h", "b", "2").unwrap();
    f.store.delete_group("h").unwrap();
    f.store.set_with_ttl("g", "c", "3", Duration::ZERO).unwrap();
    f.store.purge_expired().unwrap();
    let conn = f.raw();
    let mut stmt = conn
        .prepare("SELECT kind, group_name, entry_key FROM changes ORDER BY seq")
        .unwrap();
    let rows: Vec<(String, String, Option<String>)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let kinds: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(kinds, ["set", "delete", "set", "delete_group", "set", "expired"]);
    assert_eq!(rows[3], ("delete_group".to_string(), "h".to_string(), None));
}

#[test]
fn max_rows_5_after_10_writes_prunes_to_5_and_reports_a_gap_from_0_only() {
    let f = file_store_with(|mut c| {
        c.changes.max_rows = Some(5);
        c.changes.max_age = None;
        c
    });
    let versions: Vec<u64> = (0..10)
        .map(|i| f.store.set("g", &format!("k{i}"), "v").unwrap())
        .collect();
    assert_eq!(
        f.store.changes_since(0, 100).unwrap().changes.len(),
        10,
        "nothing pruned before asked"
    );
    assert_eq!(f.store.prune_changes().unwrap(), 5);
    let from_zero = f.store.changes_since(0, 100).unwrap();
    assert!(from_zero.gap);
    let seqs: Vec<u64> = from_zero.changes.iter().map(|c| c.seq).collect();
    assert_eq!(seqs, versions[5..]);
    let resumed = f.store.changes_since(from_zero.next_seq, 100).unwrap();
    assert!(!resumed.gap && resumed.changes.is_empty());
    // The boundary: reading after the last pruned seq has no gap, before it has one.
    assert!(!f.store.changes_since(versions[4], 100).unwrap().gap);
    assert!(f.store.changes_since(versions[3], 100).unwrap().gap);
    // A reader that kept up (read through seq 7) resumes without a gap.
    let partial = f.store.changes_since(versions[6], 100).unwrap();
    assert!(!partial.gap);
    assert_eq!(partial.changes.len(), 3);
    assert_eq!(f.store.last_seq().unwrap(), versions[9]);
    assert_eq!(
        f.store.prune_changes().unwrap(),
        0,
        "pruning again removes nothing"
    );
    let raw: i64 = f
        .raw()
        .query_row("SELECT count(*) FROM changes", [], |r| r.get(0))
        .unwrap();
    assert_eq!(raw, 5);
}

#[test]
fn pruning_every_row_keeps_last_seq_and_the_next_write_continues_above_it() {
    let f = file_store_with(|mut c| {
        c.changes.max_rows = Some(0);
        c
    });
    let versions: Vec<u64> = (0..3)
        .map(|i| f.store.set("g", &i.to_string(), "v").unwrap())
        .collect();
    let last = versions[2];
    assert_eq!(f.store.prune_changes().unwrap(), 3);
    assert!(f.store.changes_since(0, 10).unwrap().changes.is_empty());
    assert_eq!(f.store.last_seq().unwrap(), last, "last_seq survives pruning");
    assert!(f.store.changes_since(0, 10).unwrap().gap);
    assert!(!f.store.changes_since(last, 10).unwrap().gap);
    let next = f.store.set("g", "after", "v").unwrap();
    assert!(next > last);
    let after = f.store.changes_since(last, 10).unwrap();
    assert_eq!(after.changes.iter().map(|c| c.seq).collect::<Vec<_>>(), [next]);
    // Seqs are never reused, even after every row was pruned and the file reopened.
    assert_eq!(f.store.prune_changes().unwrap(), 1);
    f.store.close().unwrap();
    let again = f.reopen();
    assert_eq!(again.last_seq().unwrap(), next);
    let reopened = again.set("g", "reopened", "v").unwrap();
    assert!(reopened > next, "{reopened} reuses a seq at or below {next}");
}

#[test]
fn max_age_prunes_rows_older_than_the_age_by_the_store_clock() {
    let f = file_store_with(|mut c| {
        c.changes.max_age = Some(DAY);
        c.changes.max_rows = None;
        c
    });
    let old: Vec<u64> = (0..3)
        .map(|i| f.store.set("old", &i.to_string(), "v").unwrap())
        .collect();
    f.clock.advance(DAY);
    let boundary = f.store.set("mid", "k", "v").unwrap(); // exactly max_age old at prune time
    f.clock.advance(DAY);
    let fresh: Vec<u64> = (0..2)
        .map(|i| f.store.set("new", &i.to_string(), "v").unwrap())
        .collect();
    assert_eq!(f.store.prune_changes().unwrap(), 3);
    let batch = f.store.changes_since(0, 100).unwrap();
    assert!(batch.gap);
    let seqs: Vec<u64> = batch.changes.iter().map(|c| c.seq).collect();
    assert_eq!(seqs, [boundary, fresh[0], fresh[1]]);
    assert!(!f.store.changes_since(old[2], 100).unwrap().gap);
    // One more millisecond and the boundary row is too old.
    f.clock.advance(Duration::from_millis(1));
    assert_eq!(f.store.prune_changes().unwrap(), 1);
    assert!(f.store.changes_since(old[2], 100).unwrap().gap);
    assert!(!f.store.changes_since(boundary, 100).unwrap().gap);
}

#[test]
fn max_age_prunes_an_old_row_even_after_the_clock_stepped_back() {
    // SPEC §5.3: pruning drops rows older than max_age. Here the store clock stepped back (as a
    // wall clock may), so an old row follows a younger one in seq order.
    let f = file_store_with(|mut c| {
        c.changes.max_age = Some(DAY);
        c.changes.max_rows = None;
        c
    });
    f.clock.advance(2 * DAY);
    let young = f.store.set("g", "young", "v").unwrap(); // at START + 2 d
    f.clock.set(START_MS);
    let old = f.store.set("g", "old", "v").unwrap(); // at START, after `young` in seq order
    f.clock.set(START_MS + 2 * 24 * 3600 * 1000 + 3600 * 1000); // START + 2 d + 1 h
    assert_eq!(f.store.prune_changes().unwrap(), 1, "the row 2 d + 1 h old goes");
    let left: Vec<u64> = all_changes_since(&f.store, 0).iter().map(|c| c.seq).collect();
    assert_eq!(left, [young]);
    assert!(
        f.store.changes_since(young, 10).unwrap().gap,
        "a reader at {young} missed {old}"
    );
}

#[test]
fn the_purge_thread_also_prunes_the_feed() {
    // Real clock, 20 ms purge interval: the thread applies max_rows on its own.
    let dir = tempfile::tempdir().unwrap();
    let mut config =
        StoreConfig::file(dir.path().join("state.db")).with_purge_interval(Duration::from_millis(20));
    config.changes.max_rows = Some(2);
    let store = Store::open_with(config).unwrap();
    for i in 0..10 {
        store.set("g", &i.to_string(), "v").unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while store.changes_since(0, 100).unwrap().changes.len() > 2 {
        assert!(
            Instant::now() < deadline,
            "the purge thread did not prune the feed within 5 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let batch = store.changes_since(0, 100).unwrap();
    assert!(batch.gap);
    assert_eq!(batch.changes.len(), 2);
    store.close().unwrap();
}

#[test]
fn record_values_false_stores_no_values_but_events_keep_them() {
    let f = file_store_with(|mut c| {
        c.changes.record_values = false;
        c
    });
    let all = f.store.watch("*").unwrap();
    f.store.set("g", "k", "secret").unwrap();
    f.store
        .set_with_ttl("g", "t", "secret2", Duration::from_secs(5))
        .unwrap();
    f.store.increment("g", "n", 1).unwrap();
    f.store.transaction(|tx| tx.set("g", "x", "secret3")).unwrap();
    let changes = all_changes_since(&f.store, 0);
    assert_eq!(changes.len(), 4);
    assert!(
        changes
            .iter()
            .all(|c| c.kind == EventKind::Set && c.value.is_none())
    );
    assert_eq!(
        changes[1].expires_at,
        Some(START_MS + 5000),
        "expiry is still recorded"
    );
    let non_null: i64 = f
        .raw()
        .query_row(
            "SELECT count(*) FROM changes WHERE entry_value IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(non_null, 0);
    let values: Vec<Option<String>> = drain(&all).into_iter().map(|e| e.value).collect();
    assert_eq!(
        values,
        [
            Some("secret".into()),
            Some("secret2".into()),
            Some("1".into()),
            Some("secret3".into())
        ]
    );
}

#[test]
fn disabled_feed_is_unsupported_while_versions_and_seqs_still_increase() {
    let f = file_store_with(|c| c.with_change_feed(false));
    for result in [
        f.store.changes_since(0, 10).map(drop),
        f.store.last_seq().map(drop),
        f.store.prune_changes().map(drop),
    ] {
        assert_eq!(result.unwrap_err().kind(), ErrorKind::Unsupported);
    }
    let all = f.store.watch("*").unwrap();
    let mut versions = vec![f.store.set("g", "a", "1").unwrap()];
    versions.push(f.store.set("g", "a", "2").unwrap());
    f.store.delete("g", "a").unwrap();
    versions.push(f.store.set("g", "b", "3").unwrap());
    versions.push(f.store.transaction(|tx| tx.set("g", "c", "4")).unwrap());
    assert_eq!(f.store.increment("g", "n", 1).unwrap(), 1);
    versions.push(f.store.get_with_version("g", "n").unwrap().version);
    assert!(versions[0] >= 1);
    assert_strictly_increasing(&versions);
    let seqs: Vec<u64> = drain(&all).iter().map(|e| e.seq).collect();
    assert_eq!(seqs.len(), 6);
    assert_strictly_increasing(&seqs);
    // No rows are written, and a second handle on the file continues above every version.
    let rows: i64 = f
        .raw()
        .query_row("SELECT count(*) FROM changes", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 0);
    let other = Store::open_with(f.config().with_change_feed(false)).unwrap();
    let from_other = other.set("g", "z", "v").unwrap();
    assert!(from_other > *versions.last().unwrap());
    let back = f.store.set("g", "y", "v").unwrap();
    assert!(back > from_other);
}

#[test]
fn limit_must_be_between_1_and_10000() {
    let f = file_store();
    for i in 0..3 {
        f.store.set("g", &i.to_string(), "v").unwrap();
    }
    expect_invalid(f.store.changes_since(0, 0), "limit");
    expect_invalid(f.store.changes_since(0, 10_001), "limit");
    expect_invalid(f.store.changes_since(0, usize::MAX), "limit");
    assert_eq!(f.store.changes_since(0, 1).unwrap().changes.len(), 1);
    assert_eq!(f.store.changes_since(0, 10_000).unwrap().changes.len(), 3);
    assert_eq!(store::kv::MAX_CHANGES_PER_CALL, 10_000);
}

#[test]
fn next_seq_is_the_last_seq_returned_or_the_requested_one() {
    let f = file_store();
    let empty = f.store.changes_since(12_345, 10).unwrap();
    assert_eq!(
        (empty.changes.len(), empty.next_seq, empty.gap),
        (0, 12_345, false)
    );
    let versions: Vec<u64> = (0..5)
        .map(|i| f.store.set("g", &i.to_string(), "v").unwrap())
        .collect();
    let mut seen: Vec<Change> = Vec::new();
    let mut cursor = 0;
    let mut pages = Vec::new();
    loop {
        let batch = f.store.changes_since(cursor, 2).unwrap();
        assert!(!batch.gap);
        if batch.changes.is_empty() {
            assert_eq!(batch.next_seq, cursor);
            break;
        }
        assert_eq!(batch.next_seq, batch.changes.last().unwrap().seq);
        assert!(batch.changes.iter().all(|c| c.seq > cursor));
        pages.push(batch.changes.len());
        cursor = batch.next_seq;
        seen.extend(batch.changes);
    }
    assert_eq!(pages, [2, 2, 1]);
    assert_eq!(seen.iter().map(|c| c.seq).collect::<Vec<_>>(), versions);
    assert_eq!(cursor, f.store.last_seq().unwrap());
    // Reading from the middle returns only later rows.
    let mid = f.store.changes_since(versions[2], 10).unwrap();
    assert_eq!(
        mid.changes.iter().map(|c| c.seq).collect::<Vec<_>>(),
        versions[3..]
    );
}

#[test]
fn versions_across_two_handles_on_one_file_increase_in_commit_order() {
    let f = file_store();
    let a = f.store.clone();
    let b = f.reopen();
    let mut versions = Vec::new();
    for i in 0..50 {
        versions.push(a.set("g", &format!("a{i}"), "v").unwrap());
        versions.push(b.set("g", &format!("b{i}"), "v").unwrap());
        if i % 10 == 0 {
            versions.push(a.transaction(|tx| tx.set("g", "ta", "v")).unwrap());
            b.delete("g", &format!("b{i}")).unwrap();
            let expected = b.get_with_version("g", "cas").ok().map(|v| v.version);
            versions.push(b.set_if_version("g", "cas", &i.to_string(), expected).unwrap());
        }
    }
    assert_strictly_increasing(&versions);
    // The feed, read from either handle, lists every version in the same order.
    let feed_sets: Vec<u64> = all_changes_since(&b, 0)
        .iter()
        .filter(|c| c.kind == EventKind::Set)
        .map(|c| c.seq)
        .collect();
    assert_eq!(feed_sets, versions);
    assert_strictly_increasing(&all_changes_since(&a, 0).iter().map(|c| c.seq).collect::<Vec<_>>());
}

fn two_handles_racing(config: impl Fn() -> StoreConfig + Send + Sync + 'static, feed: bool) {
    let config = Arc::new(config);
    let handles = [
        Store::open_with(config()).unwrap(),
        Store::open_with(config()).unwrap(),
    ];
    let per_thread = within(Duration::from_secs(60), move || {
        let barrier = Arc::new(Barrier::new(2));
        let threads: Vec<_> = handles
            .into_iter()
            .enumerate()
            .map(|(t, store)| {
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    barrier.wait();
                    let mut versions = Vec::new();
                    for i in 0..200 {
                        if i % 20 == 0 {
                            versions.extend(
                                store
                                    .transaction(|tx| {
                                        Ok([
                                            tx.set("g", &format!("{t}-{i}-x"), "v")?,
                                            tx.set("g", &format!("{t}-{i}-y"), "v")?,
                                        ])
                                    })
                                    .unwrap(),
                            );
                        } else {
                            versions.push(store.set("g", &format!("{t}-{i}"), "v").unwrap());
                        }
                    }
                    versions
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect::<Vec<_>>()
    });
    let mut all = BTreeSet::new();
    for versions in &per_thread {
        assert_eq!(versions.len(), 210);
        assert_strictly_increasing(versions);
        all.extend(versions.iter().copied());
    }
    assert_eq!(all.len(), 420, "versions are unique across handles");
    let reader = Store::open_with(config()).unwrap();
    if feed {
        let seqs: Vec<u64> = all_changes_since(&reader, 0).iter().map(|c| c.seq).collect();
        assert_eq!(
            seqs,
            all.into_iter().collect::<Vec<_>>(),
            "commit order = seq order"
        );
    }
}

#[test]
fn two_handles_racing_on_one_file_get_unique_versions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    two_handles_racing(
        move || StoreConfig::file(&path).with_purge_interval(Duration::ZERO),
        true,
    );
}

#[test]
fn two_handles_racing_on_one_file_get_unique_versions_with_the_feed_disabled() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    two_handles_racing(
        move || {
            StoreConfig::file(&path)
                .with_purge_interval(Duration::ZERO)
                .with_change_feed(false)
        },
        false,
    );
}

/// The writer holds its transaction until the read is done: a reader that waited for it
/// would wait out the busy timeout, however loaded the machine.
#[test]
fn the_feed_reader_does_not_block_on_a_long_writer() {
    let f = file_store();
    f.store.set("g", "k", "v").unwrap();
    let reader = f.reopen();
    let writer = HeldTransaction::start(&f.store, "g", "pending", "v");
    let start = Instant::now();
    let batch = reader.changes_since(0, 10);
    let elapsed = start.elapsed();
    writer.release();
    assert_eq!(batch.unwrap().changes.len(), 1, "uncommitted rows are invisible");
    assert!(
        elapsed < Duration::from_secs(4),
        "changes_since waited {elapsed:?}, as for the writer's busy timeout"
    );
}

#[test]
fn the_purge_thread_applies_max_age_on_its_own() {
    // Issue 3: "retention by count or age, applied by the purge thread": no prune_changes()
    // call here, only the thread (20 ms interval) and the store clock moving past max_age.
    let f = file_store_with(|mut c| {
        c.changes.max_age = Some(DAY);
        c.changes.max_rows = None;
        c.with_purge_interval(Duration::from_millis(20))
    });
    let old: Vec<u64> = (0..3)
        .map(|i| f.store.set("old", &i.to_string(), "v").unwrap())
        .collect();
    f.clock.advance(DAY + Duration::from_secs(1));
    let fresh = f.store.set("new", "k", "v").unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while f.store.changes_since(0, 100).unwrap().changes.len() > 1 {
        assert!(
            Instant::now() < deadline,
            "the purge thread did not apply max_age within 5 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let batch = f.store.changes_since(0, 100).unwrap();
    assert!(batch.gap, "rows were pruned, so reading from 0 reports a gap");
    assert_eq!(batch.changes.iter().map(|c| c.seq).collect::<Vec<_>>(), [fresh]);
    assert!(!f.store.changes_since(old[2], 100).unwrap().gap);
}
