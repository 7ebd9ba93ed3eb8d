//! SPEC §4 Transactions: atomic commit, rollback on `Err` and panic, read-your-writes, events
//! published only after commit in call order, the same-thread guard, versions allocated inside a
//! transaction, lazy expiry, CAS and increment inside a transaction.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;
use std::time::Duration;

use store::{Error, ErrorKind, EventKind, Kv, Quota, ScopedConfig};

use crate::common::{HeldTransaction, expect_invalid, expect_not_found, file_store, within};
use crate::support::{HANG, all_changes_since, assert_strictly_increasing, drain, ev, summary};

fn user_error() -> Error {
    Error::NotFound {
        op: "test",
        group: "user".into(),
        key: "error".into(),
    }
}

#[test]
fn writes_to_two_groups_commit_together() {
    let f = file_store();
    f.store
        .transaction(|tx| {
            tx.set("accounts", "alice", "90")?;
            tx.set("ledger", "t1", "alice->bob:10")?;
            Ok(())
        })
        .unwrap();
    assert_eq!(f.store.get("accounts", "alice").unwrap(), "90");
    assert_eq!(f.store.get("ledger", "t1").unwrap(), "alice->bob:10");
    // Durable: a fresh handle on the file sees both.
    let other = f.reopen();
    assert_eq!(other.count_all("").unwrap(), 2);
}

#[test]
fn watcher_sees_the_two_sets_only_after_commit() {
    let f = file_store();
    let all = f.store.watch("*").unwrap();
    let seen_inside = f
        .store
        .transaction(|tx| {
            tx.set("a", "k1", "v1")?;
            tx.set("b", "k2", "v2")?;
            Ok(drain(&all).len())
        })
        .unwrap();
    assert_eq!(
        seen_inside, 0,
        "events must not be published while the closure runs"
    );
    let events = drain(&all);
    assert_eq!(
        summary(&events),
        [
            ev(EventKind::Set, "a", Some("k1")),
            ev(EventKind::Set, "b", Some("k2"))
        ]
    );
}

#[test]
fn err_rolls_back_writes_events_and_change_rows_and_returns_the_error_unchanged() {
    let f = file_store();
    f.store.set("g", "before", "1").unwrap();
    let last = f.store.last_seq().unwrap();
    let all = f.store.watch("*").unwrap();
    let err = f
        .store
        .transaction(|tx| {
            tx.set("g", "k", "v")?;
            tx.delete("g", "before")?;
            tx.set("h", "k", "v")?;
            Err::<(), _>(user_error())
        })
        .unwrap_err();
    assert!(matches!(&err, Error::NotFound { op: "test", group, key } if group == "user" && key == "error"));
    assert!(!f.store.exists("g", "k").unwrap());
    assert!(!f.store.exists("h", "k").unwrap());
    assert_eq!(f.store.get("g", "before").unwrap(), "1");
    assert!(
        drain(&all).is_empty(),
        "a rolled-back transaction publishes no events"
    );
    assert_eq!(f.store.last_seq().unwrap(), last);
    assert!(f.store.changes_since(last, 100).unwrap().changes.is_empty());
    // Still usable.
    f.store.set("g", "after", "2").unwrap();
    assert_eq!(drain(&all).len(), 1);
}

#[test]
fn panic_rolls_back_and_leaves_the_store_usable_from_other_threads() {
    let f = file_store();
    let last = f.store.last_seq().unwrap();
    let all = f.store.watch("*").unwrap();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        f.store.transaction(|tx| -> store::Result<()> {
            tx.set("g", "k", "v")?;
            tx.set("h", "k", "v")?;
            panic!("boom inside the transaction");
        })
    }));
    let payload = outcome.expect_err("the panic is resumed to the caller");
    assert_eq!(
        payload.downcast_ref::<&str>(),
        Some(&"boom inside the transaction")
    );
    assert!(!f.store.exists("g", "k").unwrap());
    assert!(!f.store.exists("h", "k").unwrap());
    assert_eq!(f.raw_rows(), 0);
    assert!(drain(&all).is_empty());
    assert_eq!(f.store.last_seq().unwrap(), last);
    // The writer lock is released and not poisoned: another thread can write, and this one too.
    let store = f.store.clone();
    within(HANG, move || store.set("g", "from-thread", "ok").unwrap());
    f.store.set("g", "same-thread", "ok").unwrap();
    f.store.transaction(|tx| tx.set("g", "in-tx", "ok")).unwrap();
    assert_eq!(f.store.count("g").unwrap(), 3);
}

#[test]
fn reads_inside_see_pending_writes() {
    let f = file_store();
    f.store
        .transaction(|tx| {
            tx.set("config", "pool", "eu-west")?;
            tx.set("config", "list", "alpha,beta,gamma")?;
            tx.set("audit", "line", " login\tok  now\n")?;
            assert_eq!(tx.get("config", "pool")?, "eu-west");
            assert_eq!(tx.count("config")?, 2);
            assert_eq!(tx.count_all("")?, 3);
            assert_eq!(tx.groups("")?, ["audit", "config"]);
            let all = tx.get_all("config")?;
            let expected: BTreeMap<String, String> = [("list", "alpha,beta,gamma"), ("pool", "eu-west")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            assert_eq!(all, expected);
            assert_eq!(
                tx.render("pool={{ pool }};{{ entries[\"list\"] }}", "config")?,
                "pool=eu-west;alpha,beta,gamma"
            );
            assert_eq!(tx.get_split("config", "list", ",")?, ["alpha", "beta", "gamma"]);
            assert_eq!(tx.get_fields("audit", "line")?, ["login", "ok", "now"]);
            assert!(tx.exists("config", "pool")?);
            assert!(!tx.exists("config", "nope")?);
            let page: Vec<String> = tx.get_page("config", 1, 10)?.into_iter().map(|e| e.key).collect();
            assert_eq!(page, ["pool"]);
            let keys: Vec<String> = tx
                .iter("config")
                .map(|e| e.map(|e| e.key))
                .collect::<Result<_, _>>()?;
            assert_eq!(keys, ["list", "pool"]);
            assert!(tx.group_exists("audit")?);
            // A delete is visible too.
            assert!(tx.delete("config", "list")?);
            assert_eq!(tx.count_all("")?, 2);
            Ok(())
        })
        .unwrap();
    assert_eq!(f.store.count_all("").unwrap(), 2);
}

#[test]
fn delete_prefix_of_everything_inside_clears_all_groups() {
    let f = file_store();
    for g in ["a", "b", "c"] {
        f.store.set(g, "k1", "v").unwrap();
        f.store.set(g, "k2", "v").unwrap();
    }
    let all = f.store.watch("*").unwrap();
    let removed = f
        .store
        .transaction(|tx| {
            let n = tx.delete_prefix("")?;
            assert_eq!(tx.count_all("")?, 0);
            assert!(tx.groups("")?.is_empty());
            Ok(n)
        })
        .unwrap();
    assert_eq!(removed, 6);
    assert_eq!(f.store.count_all("").unwrap(), 0);
    assert_eq!(f.raw_rows(), 0);
    assert_eq!(
        summary(&drain(&all)),
        [
            ev(EventKind::DeleteGroup, "a", None),
            ev(EventKind::DeleteGroup, "b", None),
            ev(EventKind::DeleteGroup, "c", None)
        ]
    );
}

#[test]
fn events_after_commit_follow_call_order() {
    let f = file_store();
    f.store.set("x", "old", "1").unwrap();
    f.store.set("counters", "c", "41").unwrap();
    let all = f.store.watch("*").unwrap();
    f.store
        .transaction(|tx| {
            tx.set("b", "2", "two")?;
            tx.set("a", "1", "one")?;
            assert!(tx.delete("b", "2")?);
            assert_eq!(tx.increment("counters", "c", 1)?, 42);
            tx.delete_group("x")?;
            tx.set("a", "0", "zero")?;
            Ok(())
        })
        .unwrap();
    let events = drain(&all);
    assert_eq!(
        summary(&events),
        [
            ev(EventKind::Set, "b", Some("2")),
            ev(EventKind::Set, "a", Some("1")),
            ev(EventKind::Delete, "b", Some("2")),
            ev(EventKind::Set, "counters", Some("c")),
            ev(EventKind::DeleteGroup, "x", None),
            ev(EventKind::Set, "a", Some("0")),
        ]
    );
    assert_strictly_increasing(&events.iter().map(|e| e.seq).collect::<Vec<_>>());
    assert_eq!(events[3].value.as_deref(), Some("42"));
}

#[test]
fn calling_the_store_inside_its_own_transaction_is_invalid_input_not_a_deadlock() {
    let f = file_store();
    f.store.set("g", "existing", "v").unwrap();
    let store = f.store.clone();
    within(HANG, move || {
        let inner = store.clone();
        store
            .transaction(|tx| {
                tx.set("g", "k", "v")?;
                expect_invalid(inner.set("g", "other", "v"), "transaction");
                expect_invalid(inner.get("g", "existing"), "transaction");
                expect_invalid(inner.count_all(""), "transaction");
                expect_invalid(inner.delete("g", "existing"), "transaction");
                expect_invalid(inner.transaction(|_| Ok(())), "transaction");
                expect_invalid(inner.watch("*"), "transaction");
                expect_invalid(inner.changes_since(0, 10), "transaction");
                expect_invalid(inner.last_seq(), "transaction");
                expect_invalid(inner.prune_changes(), "transaction");
                expect_invalid(inner.on_change(|_| {}), "transaction");
                expect_invalid(inner.sync(), "transaction");
                expect_invalid(inner.purge_expired(), "transaction");
                assert_eq!(
                    inner.iter("g").next().unwrap().unwrap_err().field(),
                    Some("transaction")
                );
                let err = inner.set("g", "x", "y").unwrap_err();
                assert_eq!(err.kind(), ErrorKind::InvalidInput);
                assert_eq!(err.field(), Some("transaction"));
                Ok(())
            })
            .unwrap();
        // The guard is lifted once the closure ends.
        store.set("g", "after", "v").unwrap();
    });
    assert!(f.store.exists("g", "k").unwrap());
    assert!(!f.store.exists("g", "other").unwrap());
    assert!(f.store.exists("g", "existing").unwrap());
}

#[test]
fn another_thread_may_use_the_store_while_a_transaction_runs_and_waits_for_the_commit() {
    let f = file_store();
    let writer = HeldTransaction::start(&f.store, "g", "in-tx", "v");
    // Reads from another thread are not "inside" the transaction: they work and see the old state.
    assert!(!f.store.exists("g", "in-tx").unwrap());
    let store = f.store.clone();
    let other_writer = std::thread::spawn(move || store.set("g", "other", "v").unwrap());
    writer.release();
    let other_version = within(HANG, move || other_writer.join().unwrap());
    assert!(other_version >= 1);
    assert_eq!(f.store.count("g").unwrap(), 2);
}

#[test]
fn versions_inside_a_transaction_increase_in_call_order_and_match_the_events() {
    let f = file_store();
    let before = f.store.set("g", "before", "0").unwrap();
    let all = f.store.watch("*").unwrap();
    let versions = f
        .store
        .transaction(|tx| {
            let a = tx.set("g", "z", "1")?;
            let b = tx.set_with_ttl("g", "a", "2", Duration::from_secs(60))?;
            let c = tx.set_json("g", "m", &[1, 2])?;
            let d = tx.set_if_version("g", "z", "3", Some(a))?;
            tx.increment("g", "n", 5)?;
            let e = tx.get_with_version("g", "n")?.version;
            Ok(vec![a, b, c, d, e])
        })
        .unwrap();
    assert!(versions[0] > before);
    assert_strictly_increasing(&versions);
    let events = drain(&all);
    let event_versions: Vec<u64> = events.iter().map(|e| e.version.unwrap()).collect();
    assert_eq!(event_versions, versions);
    assert!(events.iter().all(|e| Some(e.seq) == e.version));
    assert_eq!(f.store.get_with_version("g", "z").unwrap().version, versions[3]);
    assert_eq!(f.store.get_with_version("g", "n").unwrap().version, versions[4]);
}

#[test]
fn a_rolled_back_transaction_publishes_no_version() {
    let f = file_store();
    let first = f.store.set("g", "k", "1").unwrap();
    let last_before = f.store.last_seq().unwrap();
    let rolled_back = f
        .store
        .transaction(|tx| {
            let v = tx.set("g", "k", "2")?;
            tx.set("g", "other", "x")?;
            Err::<u64, _>(Error::Conflict {
                op: "test",
                group: "g".into(),
                key: "k".into(),
                expected: Some(v),
                actual: None,
            })
        })
        .unwrap_err();
    assert!(rolled_back.is_conflict());
    assert_eq!(f.store.get_with_version("g", "k").unwrap().version, first);
    assert_eq!(
        f.store.last_seq().unwrap(),
        last_before,
        "no change row from the rollback"
    );
    let next = f.store.set("g", "k", "3").unwrap();
    assert!(
        next > first,
        "the next committed version {next} exceeds every earlier one ({first})"
    );
    let seqs: Vec<u64> = all_changes_since(&f.store, 0).iter().map(|c| c.seq).collect();
    assert_eq!(seqs, [first, next]);
    // Also through a fresh handle on the file (the allocator state survives reopen).
    let other = f.reopen();
    let from_other = other.set("g", "k", "4").unwrap();
    assert!(from_other > next);
}

#[test]
fn lazy_expiry_inside_a_transaction_stages_expired_and_commits_it() {
    let f = file_store();
    f.store
        .set_with_ttl("s", "token", "abc", Duration::from_secs(1))
        .unwrap();
    f.clock.advance(Duration::from_secs(2));
    let all = f.store.watch("*").unwrap();
    f.store
        .transaction(|tx| {
            expect_not_found(tx.get("s", "token"), "s", "token");
            assert!(drain(&all).is_empty(), "Expired is staged, not yet published");
            Ok(())
        })
        .unwrap();
    let events = drain(&all);
    assert_eq!(summary(&events), [ev(EventKind::Expired, "s", Some("token"))]);
    assert_eq!(events[0].value, None);
    assert_eq!(f.raw_rows(), 0);
    let changes = all_changes_since(&f.store, 0);
    assert_eq!(changes.last().unwrap().kind, EventKind::Expired);
}

#[test]
fn lazy_expiry_inside_a_rolled_back_transaction_is_undone_too() {
    let f = file_store();
    f.store
        .set_with_ttl("s", "token", "abc", Duration::from_secs(1))
        .unwrap();
    f.clock.advance(Duration::from_secs(2));
    let last = f.store.last_seq().unwrap();
    let all = f.store.watch("*").unwrap();
    let _ = f
        .store
        .transaction(|tx| {
            expect_not_found(tx.get("s", "token"), "s", "token");
            Err::<(), _>(user_error())
        })
        .unwrap_err();
    assert!(drain(&all).is_empty());
    assert_eq!(
        f.raw_rows(),
        1,
        "the expired row's deletion rolled back with the transaction"
    );
    assert_eq!(f.store.last_seq().unwrap(), last);
}

#[test]
fn purge_expired_inside_a_transaction_stages_one_expired_per_row() {
    let f = file_store();
    f.store
        .set_with_ttl("s", "a", "1", Duration::from_secs(1))
        .unwrap();
    f.store
        .set_with_ttl("t", "b", "2", Duration::from_secs(1))
        .unwrap();
    f.store.set("s", "live", "3").unwrap();
    f.clock.advance(Duration::from_secs(1));
    let all = f.store.watch("*").unwrap();
    let purged = f.store.transaction(|tx| tx.purge_expired()).unwrap();
    assert_eq!(purged, 2);
    assert_eq!(
        summary(&drain(&all)),
        [
            ev(EventKind::Expired, "s", Some("a")),
            ev(EventKind::Expired, "t", Some("b"))
        ]
    );
}

#[test]
fn cas_and_increment_work_inside_a_transaction() {
    let f = file_store();
    let v0 = f.store.set("g", "cas", "start").unwrap();
    f.store.set("g", "n", "41").unwrap();
    f.store.set("g", "text", "abc").unwrap();
    f.store
        .transaction(|tx| {
            let v1 = tx.set_if_version("g", "cas", "second", Some(v0))?;
            let stale = tx.set_if_version("g", "cas", "third", Some(v0)).unwrap_err();
            assert!(matches!(stale, Error::Conflict { expected: Some(e), actual: Some(a), .. } if e == v0 && a == v1));
            let present = tx.set_if_version("g", "cas", "x", None).unwrap_err();
            assert!(present.is_conflict());
            tx.set_if_version("g", "fresh", "new", None)?;
            assert_eq!(tx.increment("g", "n", 1)?, 42);
            assert_eq!(tx.increment("g", "n", -2)?, 40);
            assert_eq!(tx.increment("g", "absent", 7)?, 7);
            expect_invalid(tx.increment("g", "text", 1), "value");
            assert_eq!(tx.get("g", "cas")?, "second");
            Ok(())
        })
        .unwrap();
    assert_eq!(f.store.get("g", "cas").unwrap(), "second");
    assert_eq!(f.store.get("g", "fresh").unwrap(), "new");
    assert_eq!(f.store.get("g", "n").unwrap(), "40");
    assert_eq!(f.store.get("g", "absent").unwrap(), "7");
    assert_eq!(f.store.get("g", "text").unwrap(), "abc");
}

#[test]
fn transaction_after_close_is_closed() {
    let f = file_store();
    f.store.close().unwrap();
    let err = f.store.transaction(|tx| tx.set("g", "k", "v")).unwrap_err();
    assert!(err.is_closed(), "{err}");
}

#[test]
fn close_inside_its_own_transaction_is_invalid_input_not_a_deadlock() {
    // SPEC §3.3: a Store call on the thread running that database's transaction closure →
    // InvalidInput{field:"transaction"}, never a deadlock. (At commit 4ff4b98 `close()` marked the
    // store Closing and then blocked forever on the writer lock its own thread held.)
    let f = file_store();
    let store = f.store.clone();
    within(Duration::from_secs(10), move || {
        let inner = store.clone();
        store
            .transaction(|tx| {
                tx.set("g", "k", "v")?;
                expect_invalid(inner.close(), "transaction");
                Ok(())
            })
            .unwrap();
        assert!(!store.is_closed());
        assert_eq!(store.get("g", "k").unwrap(), "v");
    });
}

#[test]
fn a_failed_call_inside_does_not_abort_the_transaction_or_leave_partial_writes() {
    let f = file_store();
    f.store
        .set_with_ttl("g", "old", "v", Duration::from_secs(1))
        .unwrap();
    f.clock.advance(Duration::from_secs(1));
    let all = f.store.watch("*").unwrap();
    f.store
        .transaction(|tx| {
            tx.set("g", "a", "1")?;
            expect_invalid(tx.set("g", "", "x"), "key");
            expect_invalid(tx.set("", "k", "x"), "group");
            assert!(!tx.delete("g", "old")?, "deleting an expired entry returns false");
            assert!(tx.set_if_version("g", "a", "2", None).unwrap_err().is_conflict());
            tx.set("g", "b", "2")?;
            Ok(())
        })
        .unwrap();
    assert_eq!(
        summary(&drain(&all)),
        [
            ev(EventKind::Set, "g", Some("a")),
            ev(EventKind::Expired, "g", Some("old")),
            ev(EventKind::Set, "g", Some("b"))
        ]
    );
    assert_eq!(f.store.get("g", "a").unwrap(), "1");
    assert_eq!(f.raw_rows(), 2);
}

fn scoped_config(namespace: &str, max_keys: u64, max_groups: u64) -> ScopedConfig {
    ScopedConfig::new(namespace).with_quota(Quota {
        max_keys,
        max_groups,
        ..Default::default()
    })
}

#[test]
fn scoped_third_pending_write_over_max_keys_2_rolls_back_all_three_when_returned() {
    let f = file_store();
    let ns = f.store.scoped_with(scoped_config("tenant-a", 2, 0)).unwrap();
    let all = f.store.watch("*").unwrap();
    let err = ns
        .transaction(|tx| {
            tx.set("config", "a", "1")?;
            tx.set("config", "b", "2")?;
            tx.set("other", "c", "3")?;
            Ok(())
        })
        .unwrap_err();
    assert!(err.is_quota_exceeded(), "{err}");
    assert_eq!(f.store.count_all("").unwrap(), 0);
    assert_eq!(f.raw_rows(), 0);
    assert!(drain(&all).is_empty());
    assert_eq!(f.store.last_seq().unwrap(), 0);
    // Two fit.
    ns.transaction(|tx| {
        tx.set("config", "a", "1")?;
        tx.set("config", "b", "2")
    })
    .unwrap();
    assert_eq!(ns.count_all("").unwrap(), 2);
}

#[test]
fn scoped_quota_4_keys_2_groups_sees_local_groups_inside_and_commits_full_names() {
    let f = file_store();
    let ns = f.store.scoped_with(scoped_config("tenant-a", 4, 2)).unwrap();
    ns.transaction(|tx| {
        tx.set_key("greeting", "hi")?;
        tx.set("preferences", "theme", "dark")?;
        tx.set("preferences", "lang", "en")?;
        assert_eq!(tx.groups("")?, ["default", "preferences"]);
        assert_eq!(tx.count_all("")?, 3);
        // A third group is over max_groups 2; ignoring the error keeps the other writes.
        assert!(tx.set("third", "k", "v").unwrap_err().is_quota_exceeded());
        Ok(())
    })
    .unwrap();
    assert_eq!(
        f.store.groups("").unwrap(),
        ["tenant-a:default", "tenant-a:preferences"]
    );
    assert_eq!(f.store.get("tenant-a:default", "greeting").unwrap(), "hi");
    assert_eq!(ns.count_all("").unwrap(), 3);
}

#[test]
fn scoped_writes_in_a_transaction_reach_raw_subscribers_as_namespace_colon_group() {
    let f = file_store();
    let ns = f.store.scoped("tenant-a").unwrap();
    let raw = f.store.watch("*").unwrap();
    let raw_exact = f.store.watch("tenant-a:config").unwrap();
    let local = ns.watch("*").unwrap();
    let other = f.store.scoped("tenant-b").unwrap().watch("*").unwrap();
    ns.transaction(|tx| {
        tx.set("config", "k", "v")?;
        tx.delete("config", "k")?;
        Ok(())
    })
    .unwrap();
    let expected_raw = [
        ev(EventKind::Set, "tenant-a:config", Some("k")),
        ev(EventKind::Delete, "tenant-a:config", Some("k")),
    ];
    assert_eq!(summary(&drain(&raw)), expected_raw);
    assert_eq!(summary(&drain(&raw_exact)), expected_raw);
    assert_eq!(
        summary(&drain(&local)),
        [
            ev(EventKind::Set, "config", Some("k")),
            ev(EventKind::Delete, "config", Some("k"))
        ]
    );
    assert!(drain(&other).is_empty());
    let changes = all_changes_since(&f.store, 0);
    assert!(
        changes.iter().all(|c| c.group == "tenant-a:config"),
        "the feed keeps full group names"
    );
}

#[test]
fn scoped_store_called_inside_its_own_transaction_is_invalid_input() {
    let f = file_store();
    let ns = f.store.scoped("tenant-a").unwrap();
    let inner = ns.clone();
    within(HANG, move || {
        ns.transaction(|tx| {
            tx.set("g", "k", "v")?;
            expect_invalid(inner.set("g", "other", "v"), "transaction");
            expect_invalid(inner.get("g", "k"), "transaction");
            expect_invalid(inner.watch("*"), "transaction");
            Ok(())
        })
        .unwrap();
    });
    assert!(f.store.exists("tenant-a:g", "k").unwrap());
}

#[test]
fn close_from_another_thread_waits_for_a_running_transaction_whose_later_calls_are_closed() {
    // SPEC §3.8: close enters Closing (data, watch and transaction calls → Closed). A transaction
    // that propagates that error rolls back; close finishes once the writer is free.
    let f = file_store();
    let (started_tx, started_rx) = mpsc::channel();
    let store = f.store.clone();
    let tx_thread = std::thread::spawn(move || {
        store.transaction(|tx| {
            tx.set("g", "pending", "v")?;
            started_tx.send(()).unwrap();
            let deadline = std::time::Instant::now() + HANG;
            loop {
                tx.get("g", "pending")?; // Closed once close() has begun
                assert!(std::time::Instant::now() < deadline, "close never began");
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    });
    started_rx.recv().unwrap();
    let store = f.store.clone();
    let closer = std::thread::spawn(move || store.close());
    let tx_result: store::Result<()> = within(HANG, move || tx_thread.join().unwrap());
    assert!(tx_result.unwrap_err().is_closed());
    within(HANG, move || closer.join().unwrap()).unwrap();
    assert!(f.store.is_closed());
    let reopened = f.reopen();
    assert!(
        !reopened.exists("g", "pending").unwrap(),
        "the interrupted transaction rolled back"
    );
    assert_eq!(reopened.last_seq().unwrap(), 0);
}

/// h125: subscribing from inside a transaction closure is refused, but the error said "use the
/// transaction handle", which has no watch or on_change. It now says to subscribe before or
/// after the transaction; so do the change-feed calls and `sync`, which the handle lacks too
/// (h156). Calls the handle has keep pointing to it.
#[test]
fn subscribing_inside_a_transaction_says_to_subscribe_before_or_after_it() {
    let f = file_store();
    let scoped = f.store.scoped("ns").unwrap();
    let errors = f
        .store
        .transaction(|_tx| {
            Ok(vec![
                f.store.watch("*").map(drop).unwrap_err(),
                f.store.on_change(|_| {}).map(drop).unwrap_err(),
                scoped.watch("g").map(drop).unwrap_err(),
                scoped.on_change(|_| {}).map(drop).unwrap_err(),
                f.store.changes_since(0, 10).map(drop).unwrap_err(),
                f.store.last_seq().map(drop).unwrap_err(),
                f.store.prune_changes().map(drop).unwrap_err(),
                f.store.sync().map(drop).unwrap_err(),
                f.store.get("g", "k").map(drop).unwrap_err(),
                f.store.transaction(|_| Ok(())).unwrap_err(),
                scoped.transaction(|_| Ok(())).unwrap_err(),
            ])
        })
        .unwrap();
    let (subscribing, other) = errors.split_at(8);
    // A nested transaction says why it is refused, then where the work goes (h160).
    for nested in &other[1..] {
        assert_eq!(nested.kind(), ErrorKind::InvalidInput, "{nested}");
        let msg = nested.to_string();
        assert!(msg.contains("transactions do not nest"), "{msg}");
        assert!(msg.contains("through the transaction handle"), "{msg}");
    }
    for err in subscribing {
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        assert!(
            err.to_string()
                .contains("before the transaction starts or after it ends"),
            "{err}"
        );
        assert!(!err.to_string().contains("use the transaction handle"), "{err}");
    }
    assert!(
        other[0].to_string().contains("use the transaction handle"),
        "{}",
        other[0]
    );
    // After it ends, subscribing works.
    let _sub = f.store.watch("*").unwrap();
}
