//! SPEC §6 `max_keys`: the 6th key under `max_keys` 5 fails across groups and writes nothing; a
//! live upsert at the limit passes; rewriting an expired key counts as new and emits one `Set`;
//! deletes and expiry free slots; 0 is unlimited; every checked write is checked and deletes never.

use std::time::Duration;

use store::{EventKind, Kv, QuotaLimit};

use crate::common::file_store;
use crate::support::{NS_A, NS_B, changes_since, drain, ev, expect_quota, quota, scoped, summary, usage};

#[test]
fn sixth_key_across_groups_exceeds_max_keys_5_and_writes_nothing() {
    let f = file_store();
    let ns = scoped(&f.store, NS_A, quota(5, 0, 0));
    ns.set("a", "k1", "v").unwrap();
    ns.set("a", "k2", "v").unwrap();
    ns.set("b", "k1", "v").unwrap();
    ns.set_key("k1", "v").unwrap();
    ns.set("c", "k1", "v").unwrap();
    assert_eq!(ns.usage().unwrap().keys, 5);

    let sub = ns.watch("*").unwrap();
    let seq = f.store.last_seq().unwrap();
    let rows = f.raw_rows();
    for group in ["a", "b", "new-group"] {
        let err = ns.set(group, "k6", "v").unwrap_err();
        assert_eq!(err.op(), "ScopedStore::set");
        assert!(err.is_quota_exceeded());
        expect_quota(Err::<(), _>(err), NS_A, QuotaLimit::Keys, 5, 6);
    }
    expect_quota(ns.set_key("k6", "v"), NS_A, QuotaLimit::Keys, 5, 6);

    assert_eq!(f.raw_rows(), rows, "nothing written");
    assert!(!ns.exists("a", "k6").unwrap());
    assert_eq!(f.store.last_seq().unwrap(), seq, "no change row, no version used");
    assert!(drain(&sub).is_empty(), "no event");
    assert_eq!(ns.usage().unwrap(), usage(5, 4, 5 * 3));
    // Other namespaces are not limited by this handle's quota.
    let other = scoped(&f.store, NS_B, quota(5, 0, 0));
    other.set("a", "k6", "v").unwrap();
}

#[test]
fn quota_exceeded_message_names_the_namespace_the_usage_and_the_limit() {
    let f = file_store();
    let ns = scoped(&f.store, "uploads", quota(1000, 0, 0));
    ns.transaction(|tx| {
        for i in 0..1000 {
            tx.set("files", &format!("f{i}"), "x")?;
        }
        Ok(())
    })
    .unwrap();
    let err = ns.set("files", "one-more", "x").unwrap_err();
    assert_eq!(err.kind().as_str(), "quota_exceeded");
    let text = err.to_string();
    assert!(
        text.starts_with(
            "ScopedStore::set: namespace \"uploads\" would hold 1001 keys, over max_keys 1000; "
        ),
        "{text}"
    );
}

#[test]
fn quota_exceeded_message_is_the_spec_example_verbatim() {
    let f = file_store();
    let ns = scoped(&f.store, "uploads", quota(1000, 0, 0));
    ns.transaction(|tx| {
        for i in 0..1000 {
            tx.set("files", &format!("f{i}"), "x")?;
        }
        Ok(())
    })
    .unwrap();
    assert_eq!(
        ns.set("files", "one-more", "x").unwrap_err().to_string(),
        "ScopedStore::set: namespace \"uploads\" would hold 1001 keys, over max_keys 1000; \
         delete keys or raise the quota"
    );
}

#[test]
fn at_the_key_limit_upserts_of_live_keys_are_allowed() {
    let f = file_store();
    let ns = scoped(&f.store, NS_A, quota(3, 0, 0));
    ns.set("g", "a", "1").unwrap();
    ns.set("g", "b", "1").unwrap();
    ns.set_with_ttl("h", "c", "1", Duration::from_secs(60)).unwrap();
    ns.set("g", "a", "2").unwrap();
    ns.set_with_ttl("g", "b", "2", Duration::from_secs(60)).unwrap();
    ns.set_json("h", "c", &"json").unwrap();
    let v = ns.get_with_version("g", "a").unwrap().version;
    ns.set_if_version("g", "a", "3", Some(v)).unwrap();
    ns.set("g", "b", "10").unwrap();
    assert_eq!(ns.increment("g", "b", 5).unwrap(), 15);
    ns.set_key("x", "1").unwrap_err();
    assert_eq!(ns.usage().unwrap().keys, 3);
    assert_eq!(ns.get("g", "a").unwrap(), "3");
}

#[test]
fn rewriting_an_expired_key_counts_as_new_and_emits_one_set_and_no_expired() {
    let f = file_store();
    let ns = scoped(&f.store, NS_A, quota(2, 0, 0));
    ns.set_with_ttl("g", "a", "old", Duration::from_secs(10)).unwrap();
    ns.set("g", "b", "1").unwrap();
    f.clock.advance(Duration::from_secs(10));
    assert_eq!(ns.usage().unwrap().keys, 1, "the expired key is not counted");

    let sub = ns.watch("*").unwrap();
    let seq = f.store.last_seq().unwrap();
    let v = ns.set("g", "a", "new").unwrap();
    let events = drain(&sub);
    assert_eq!(summary(&events), [ev(EventKind::Set, "g", Some("a"))]);
    assert_eq!(events[0].version, Some(v));
    let kinds: Vec<_> = changes_since(&f.store, seq).iter().map(|c| c.kind).collect();
    assert_eq!(kinds, [EventKind::Set], "one change row, no `expired`");
    assert_eq!(ns.get("g", "a").unwrap(), "new");
    assert_eq!(ns.get_with_version("g", "a").unwrap().expires_at, None);
    assert_eq!(ns.usage().unwrap().keys, 2);

    // Counted as new: with the namespace full, rewriting an expired key is rejected.
    ns.set_with_ttl("g", "a", "short", Duration::from_secs(1))
        .unwrap();
    f.clock.advance(Duration::from_secs(1));
    ns.set("g", "c", "1").unwrap();
    expect_quota(ns.set("g", "a", "again"), NS_A, QuotaLimit::Keys, 2, 3);
    expect_quota(
        ns.set_with_ttl("g", "a", "again", Duration::from_secs(5)),
        NS_A,
        QuotaLimit::Keys,
        2,
        3,
    );
    expect_quota(ns.increment("g", "a", 1), NS_A, QuotaLimit::Keys, 2, 3);
    expect_quota(
        ns.set_if_version("g", "a", "again", None),
        NS_A,
        QuotaLimit::Keys,
        2,
        3,
    );
}

#[test]
fn rewriting_an_expired_key_with_each_checked_write_emits_one_set() {
    let f = file_store();
    let ns = scoped(&f.store, NS_A, quota(1, 0, 0));
    let sub = ns.watch_with("*", store::WatchOptions { capacity: 64 }).unwrap();
    type Write<'a> = Box<dyn Fn() -> store::Result<u64> + 'a>;
    let writes: Vec<(&str, Write<'_>)> = vec![
        ("set", Box::new(|| ns.set("g", "k", "1"))),
        (
            "set_with_ttl",
            Box::new(|| ns.set_with_ttl("g", "k", "2", Duration::from_secs(9))),
        ),
        ("set_json", Box::new(|| ns.set_json("g", "k", &3))),
        (
            "set_if_version",
            Box::new(|| ns.set_if_version("g", "k", "4", None)),
        ),
        (
            "increment",
            Box::new(|| ns.increment("g", "k", 5).map(|v| v as u64)),
        ),
        ("set_key", Box::new(|| ns.set_key("k", "6"))),
    ];
    for (name, write) in &writes {
        let group = if *name == "set_key" { "default" } else { "g" };
        ns.set_with_ttl(group, "k", "stale", Duration::from_secs(1))
            .unwrap();
        f.clock.advance(Duration::from_secs(1));
        drain(&sub);
        write().unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            summary(&drain(&sub)),
            [ev(EventKind::Set, group, Some("k"))],
            "{name}"
        );
        ns.delete(group, "k").unwrap();
    }
    // increment treats an expired value as absent (0).
    ns.set_with_ttl("g", "n", "41", Duration::from_secs(1)).unwrap();
    f.clock.advance(Duration::from_secs(1));
    assert_eq!(ns.increment("g", "n", 1).unwrap(), 1);
}

#[test]
fn deleting_frees_a_key_slot() {
    let f = file_store();
    let ns = scoped(&f.store, NS_A, quota(2, 0, 0));
    ns.set("g", "a", "1").unwrap();
    ns.set("h", "b", "1").unwrap();
    expect_quota(ns.set("g", "c", "1"), NS_A, QuotaLimit::Keys, 2, 3);

    assert!(ns.delete("g", "a").unwrap());
    ns.set("g", "c", "1").unwrap();
    expect_quota(ns.set("g", "d", "1"), NS_A, QuotaLimit::Keys, 2, 3);

    assert_eq!(ns.delete_group("h").unwrap(), 1);
    ns.set_key("d", "1").unwrap();
    assert!(ns.delete_key("d").unwrap());
    ns.set("g", "e", "1").unwrap();

    assert_eq!(ns.delete_prefix("").unwrap(), 2);
    ns.set("x", "1", "1").unwrap();
    ns.set("y", "2", "1").unwrap();
    expect_quota(ns.set("z", "3", "1"), NS_A, QuotaLimit::Keys, 2, 3);
    // A raw delete of a namespaced row frees a slot too.
    assert!(f.store.delete("tenant-a:x", "1").unwrap());
    ns.set("z", "3", "1").unwrap();
}

#[test]
fn expiry_frees_a_key_slot_without_a_purge() {
    let f = file_store();
    let ns = scoped(&f.store, NS_A, quota(5, 0, 0));
    for i in 0..4 {
        ns.set("g", &format!("k{i}"), "v").unwrap();
    }
    ns.set_with_ttl("g", "temp", "v", Duration::from_millis(500))
        .unwrap();
    expect_quota(ns.set("g", "k5", "v"), NS_A, QuotaLimit::Keys, 5, 6);
    f.clock.advance(Duration::from_millis(499));
    expect_quota(ns.set("g", "k5", "v"), NS_A, QuotaLimit::Keys, 5, 6);
    f.clock.advance(Duration::from_millis(1));
    assert_eq!(f.raw_rows(), 5, "the expired row is still stored");
    ns.set("g", "k5", "v").unwrap();
    assert_eq!(ns.count("g").unwrap(), 5);
    expect_quota(ns.set("g", "k6", "v"), NS_A, QuotaLimit::Keys, 5, 6);
}

#[test]
fn a_zero_ttl_write_uses_no_slot_afterwards() {
    let f = file_store();
    let ns = scoped(&f.store, NS_A, quota(1, 0, 0));
    ns.set_with_ttl("g", "gone", "v", Duration::ZERO).unwrap();
    assert_eq!(ns.usage().unwrap().keys, 0);
    ns.set("g", "k", "v").unwrap();
}

#[test]
fn max_keys_zero_is_unlimited() {
    let f = file_store();
    let ns = scoped(&f.store, NS_A, quota(0, 0, 0));
    assert!(ns.quota().is_unlimited());
    for i in 0..100 {
        ns.set(&format!("g{}", i % 7), &format!("k{i}"), "v").unwrap();
    }
    assert_eq!(ns.count_all("").unwrap(), 100);

    // max_keys 0 with another limit set: keys are still unlimited.
    let ns = scoped(&f.store, NS_B, quota(0, 0, 1_000_000));
    for i in 0..100 {
        ns.set_key(&format!("k{i}"), "v").unwrap();
    }
    assert_eq!(ns.usage().unwrap().keys, 100);
}

#[test]
fn every_checked_write_is_checked_against_max_keys() {
    let f = file_store();
    let ns = scoped(&f.store, NS_A, quota(1, 0, 0));
    ns.set("g", "only", "1").unwrap();
    expect_quota(ns.set("g", "n", "1"), NS_A, QuotaLimit::Keys, 1, 2);
    expect_quota(
        ns.set_with_ttl("g", "n", "1", Duration::from_secs(1)),
        NS_A,
        QuotaLimit::Keys,
        1,
        2,
    );
    expect_quota(ns.set_json("g", "n", &1), NS_A, QuotaLimit::Keys, 1, 2);
    expect_quota(
        ns.set_if_version("g", "n", "1", None),
        NS_A,
        QuotaLimit::Keys,
        1,
        2,
    );
    expect_quota(ns.increment("g", "n", 1), NS_A, QuotaLimit::Keys, 1, 2);
    expect_quota(ns.set_key("n", "1"), NS_A, QuotaLimit::Keys, 1, 2);
    assert_eq!(f.raw_rows(), 1);
}

#[test]
fn deletes_are_never_checked_even_over_the_limit() {
    let f = file_store();
    let ns = scoped(&f.store, NS_A, quota(5, 1, 10));
    // Raw writes are unchecked: the namespace ends up over every limit.
    for i in 0..7 {
        f.store
            .set(&format!("tenant-a:g{}", i % 2), &format!("k{i}"), "value")
            .unwrap();
    }
    assert_eq!(ns.usage().unwrap(), usage(7, 2, 7 * 7));
    expect_quota(ns.set("g0", "new", ""), NS_A, QuotaLimit::Keys, 5, 8);

    assert!(ns.delete("g0", "k0").unwrap());
    assert!(!ns.delete("g0", "missing").unwrap());
    assert_eq!(ns.delete_group("g1").unwrap(), 3);
    ns.transaction(|tx| tx.delete("g0", "k2").map(drop)).unwrap();
    assert_eq!(ns.usage().unwrap(), usage(2, 1, 14));
    // Back under max_keys and max_groups, still over max_bytes: shrinking is allowed,
    // a new key is not.
    expect_quota(ns.set("g0", "n", ""), NS_A, QuotaLimit::Bytes, 10, 15);
    ns.set("g0", "k4", "").unwrap();
    assert_eq!(ns.delete_prefix("").unwrap(), 2);
    assert_eq!(ns.usage().unwrap(), usage(0, 0, 0));
}

/// A write is judged at the time read once it holds the write lock. Judged at a time read
/// before it waited, an entry that expired meanwhile would still count as live: the write
/// would take it for an update of that live key, while another write its expiry allowed had
/// already taken the last slot (2 live keys under max_keys 1).
#[test]
fn a_write_that_waited_is_judged_at_the_time_it_got_the_lock() {
    let (late, ns, _dir) = crate::support::run_across_an_expiry(|ns| ns.set("g", "a", "v2"));
    expect_quota(late, NS_A, QuotaLimit::Keys, 1, 2);
    assert_eq!(ns.usage().unwrap().keys, 1);
    assert_eq!(ns.get("g", "b").unwrap(), "v");
}

/// Expired rows counted before a write purges them (the library's `PURGE_AFTER_COUNTING`).
const PURGE_AFTER: usize = 128;

/// Writes `n` entries `<prefix><i>` with a 1 s TTL into `group` of the namespace, unchecked
/// (through an unlimited handle), in one transaction.
fn expiring(store: &store::Store, namespace: &str, group: &str, prefix: &str, n: usize) {
    scoped(store, namespace, quota(0, 0, 0))
        .transaction(|tx| {
            for i in 0..n {
                tx.set_with_ttl(group, &format!("{prefix}{i}"), "v", Duration::from_secs(1))?;
            }
            Ok(())
        })
        .unwrap();
}

/// SPEC §3.4 removes expired rows lazily on reads and by purges; §6: rewriting an expired
/// key at the limit gives one `Set`. A quota check beside a few expired rows counts them
/// (a bounded count) and leaves them where they are.
#[test]
fn a_check_beside_a_few_expired_rows_counts_them_and_leaves_them() {
    let f = file_store();
    let ns = scoped(&f.store, NS_A, quota(5, 0, 0));
    ns.set("g", "a", "v").unwrap();
    ns.set("g", "b", "v").unwrap();
    expiring(&f.store, NS_A, "g", "t", 3);
    f.clock.advance(Duration::from_secs(2));
    let sub = f.store.watch("*").unwrap();
    ns.set("g", "t0", "again").unwrap(); // at the recorded limit: counted, fits
    ns.set("g", "c", "v").unwrap();
    assert_eq!(
        summary(&drain(&sub)),
        [
            ev(EventKind::Set, "tenant-a:g", Some("t0")),
            ev(EventKind::Set, "tenant-a:g", Some("c"))
        ]
    );
    assert_eq!(f.raw_rows(), 6, "t1 and t2 stay until a purge");
    assert_eq!(ns.purge_expired().unwrap(), 2);
}

/// Issue 4 "quota checks are O(1)": the counters still include expired rows until they are
/// purged, so a write they would refuse counts the namespace's expired rows. Beside many, it
/// then purges them (recording `Expired`), so the counters are exact again and the following
/// writes near the limit do not count them again. Before, every such write counted them all
/// until the purge thread came by (15 ms per write beside 50,000).
#[test]
fn a_write_that_counts_many_expired_rows_purges_them_for_the_next_checks() {
    let f = file_store();
    let ns = scoped(&f.store, NS_A, quota(PURGE_AFTER as u64 + 2, 0, 0));
    expiring(&f.store, NS_A, "cache", "c", PURGE_AFTER);
    ns.set("g", "a", "v").unwrap();
    ns.set("g", "b", "v").unwrap();
    // Expired rows of other namespaces (one sharing the name's prefix) and of raw groups
    // spelled like the namespace are never touched.
    expiring(&f.store, NS_B, "cache", "x", 1);
    for raw in ["tenant-ab", "tenant-ab:x", "tenant-a"] {
        f.store
            .set_with_ttl(raw, "y", "v", Duration::from_secs(1))
            .unwrap();
    }
    f.clock.advance(Duration::from_secs(2));
    let others = 4;
    assert_eq!(
        f.raw_rows(),
        (PURGE_AFTER + 2 + others) as i64,
        "expired, not purged yet"
    );
    let sub = f
        .store
        .watch_with("*", store::WatchOptions { capacity: 1_000 })
        .unwrap();

    ns.set("g", "c", "v").unwrap();
    assert_eq!(
        f.raw_rows(),
        (3 + others) as i64,
        "the write that counted the expired rows purged them"
    );
    let events = summary(&drain(&sub));
    assert_eq!(events[0], ev(EventKind::Set, "tenant-a:g", Some("c")));
    assert_eq!(events.len(), 1 + PURGE_AFTER, "{events:?}");
    assert!(
        events[1..]
            .iter()
            .all(|e| e.0 == EventKind::Expired && e.1 == "tenant-a:cache"),
        "{events:?}"
    );
    assert_eq!(ns.purge_expired().unwrap(), 0, "nothing left for the purge");
    assert_eq!(ns.usage().unwrap(), usage(3, 1, 6));
    assert_eq!(f.store.purge_expired().unwrap(), others as u64);
}

/// The purge also follows a write the live usage still refuses: it is not rolled back with
/// the refused write, so a caller retrying against a full namespace does not pay the count
/// again. Inside a transaction nothing is purged, after a refused or a passing write: a
/// refused write there leaves nothing behind (`Transaction`'s rule), and the transaction
/// commits only its own writes.
#[test]
fn a_refused_write_that_counted_many_expired_rows_still_purges_them_outside_transactions() {
    let f = file_store();
    let ns = scoped(&f.store, NS_A, quota(0, 0, 800));
    expiring(&f.store, NS_A, "g", "t", PURGE_AFTER);
    scoped(&f.store, NS_A, quota(0, 0, 0))
        .set("g", "a", &"x".repeat(700))
        .unwrap();
    f.clock.advance(Duration::from_secs(2));
    let last = f.store.last_seq().unwrap();
    // Live 701 + 101 > 800, and more so the recorded usage.
    ns.transaction(|tx| {
        expect_quota(
            tx.set("g", "b", &"x".repeat(100)),
            NS_A,
            QuotaLimit::Bytes,
            800,
            802,
        );
        Ok(())
    })
    .unwrap();
    assert_eq!(
        f.raw_rows(),
        1 + PURGE_AFTER as i64,
        "the transaction purged nothing"
    );
    assert_eq!(f.store.last_seq().unwrap(), last, "and committed no change");
    // A passing write that counted them: recorded > 800, live 701 + 10 fits.
    ns.transaction(|tx| tx.set("g", "small", "xxxxx").map(drop))
        .unwrap();
    assert_eq!(f.raw_rows(), 2 + PURGE_AFTER as i64, "only the write");
    let kinds: Vec<EventKind> = changes_since(&f.store, last).iter().map(|c| c.kind).collect();
    assert_eq!(kinds, [EventKind::Set]);
    let last = f.store.last_seq().unwrap();

    expect_quota(
        ns.set("g", "b", &"x".repeat(100)),
        NS_A,
        QuotaLimit::Bytes,
        800,
        812,
    );
    assert_eq!(
        f.raw_rows(),
        2,
        "the expired rows were purged, the refused one not written"
    );
    let kinds: Vec<EventKind> = changes_since(&f.store, last).iter().map(|c| c.kind).collect();
    assert_eq!(kinds, vec![EventKind::Expired; PURGE_AFTER]);
}

/// One write purges at most 10,000 expired rows (the purge thread's batch), so its latency
/// stays bounded; fewer than 128 left over stay until a later purge.
#[test]
fn one_write_purges_at_most_10000_expired_rows() {
    let f = file_store();
    let ns = scoped(&f.store, NS_A, quota(1, 0, 0));
    expiring(&f.store, NS_A, "g", "t", 10_050);
    f.clock.advance(Duration::from_secs(2));
    ns.set("g", "a", "v").unwrap(); // recorded 10,050 + 1 > 1, live 0 + 1 fits
    assert_eq!(f.raw_rows(), 51, "10,000 purged, 50 left");
    expect_quota(ns.set("g", "b", "v"), NS_A, QuotaLimit::Keys, 1, 2);
    assert_eq!(f.raw_rows(), 51, "50 counted: under 128, left for a purge");
    assert_eq!(ns.purge_expired().unwrap(), 50);
}

/// How [`purge_never_waits`] holds the write lock once the set has committed: another
/// connection to the file (SQLite's lock), or a transaction of the same store on another
/// thread (its writer mutex, which a memory store's reads share too).
enum Holder {
    OtherConnection(std::path::PathBuf),
    StoreTransaction,
}

/// The purge never waits for another writer: a set that committed returns without waiting
/// when the write lock is taken right after its commit (the purge is skipped; the purge thread
/// or a later write removes the rows). The holder lets go only when the set has returned, or
/// after 20 s; with a 30 s busy timeout, a purge that waited would see it let go first.
fn purge_never_waits(store: &store::Store, clock: &store::ManualClock, holder: Holder) {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex, mpsc};

    let ns = scoped(store, NS_A, quota(2, 0, 0));
    ns.set("g", "a", "v").unwrap();
    expiring(store, NS_A, "g", "t", PURGE_AFTER);
    clock.advance(Duration::from_secs(2));
    let sub = store
        .watch_with("*", store::WatchOptions { capacity: 1_000 })
        .unwrap();

    let released = Arc::new(AtomicBool::new(false));
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let thread: Arc<Mutex<Option<std::thread::JoinHandle<()>>>> = Arc::default();
    let start = Mutex::new(Some((holder, store.clone(), released.clone(), done_rx)));
    let slot = thread.clone();
    // Callbacks run once the set has committed and released the lock, before it returns.
    let guard = store.on_change(move |_| {
        let Some((holder, store, released, done_rx)) = start.lock().unwrap().take() else {
            return;
        };
        let (locked_tx, locked_rx) = mpsc::channel();
        let hold = move || {
            locked_tx.send(()).unwrap();
            let _ = done_rx.recv_timeout(Duration::from_secs(20));
            released.store(true, Ordering::SeqCst);
        };
        *slot.lock().unwrap() = Some(std::thread::spawn(move || match holder {
            Holder::OtherConnection(path) => {
                let conn = crate::common::raw(&path);
                conn.execute_batch("BEGIN IMMEDIATE").unwrap();
                hold();
                conn.execute_batch("COMMIT").unwrap();
            }
            Holder::StoreTransaction => store
                .transaction(|_| {
                    hold();
                    Ok(())
                })
                .unwrap(),
        }));
        locked_rx.recv().unwrap();
    });

    // Recorded 129 + 1 > 2 keys, live 1 + 1 fits: the check counted the `t` rows, which stay.
    ns.set("g", "b", "v").unwrap();
    assert!(
        !released.load(Ordering::SeqCst),
        "the set waited for the other writer"
    );
    done_tx.send(()).unwrap();
    let handle = thread.lock().unwrap().take().expect("the callback ran");
    handle.join().unwrap();
    drop(guard);
    let kinds: Vec<EventKind> = drain(&sub).iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [EventKind::Set],
        "the purge was skipped, the `t` rows are still stored"
    );

    // The next write that counts them purges them (refused: live 2 + 1 > 2).
    expect_quota(ns.set("g", "c", "v"), NS_A, QuotaLimit::Keys, 2, 3);
    let kinds: Vec<EventKind> = drain(&sub).iter().map(|e| e.kind).collect();
    assert_eq!(kinds, vec![EventKind::Expired; PURGE_AFTER]);
}

#[test]
fn the_purge_after_a_write_never_waits_for_another_connection() {
    let f = crate::common::file_store_with(|mut c| {
        c.busy_timeout = Duration::from_secs(30);
        c
    });
    purge_never_waits(&f.store, &f.clock, Holder::OtherConnection(f.path()));
}

/// Without reader connections a file store's reads share the writer's lock, and lazy
/// expiry's `IfFree` deletes wait for it like reads; this purge does not.
#[test]
fn the_purge_after_a_write_never_waits_on_a_file_store_without_readers() {
    let f = crate::common::file_store_with(|mut c| {
        c.busy_timeout = Duration::from_secs(30);
        c.readers = 0;
        c
    });
    purge_never_waits(&f.store, &f.clock, Holder::StoreTransaction);
}

#[test]
fn the_purge_after_a_write_never_waits_on_a_memory_store() {
    let (store, clock) = crate::common::memory_store_with(|mut c| {
        c.busy_timeout = Duration::from_secs(30);
        c
    });
    purge_never_waits(&store, &clock, Holder::StoreTransaction);
}
