//! SPEC §5.1–5.2 Events: subscriptions (`watch`, `watch_with`), callbacks (`on_change`), group
//! matching, non-blocking sends, close, re-entrancy, and which event kind each mutation emits.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use store::{Event, EventKind, Kv, StoreConfig, WatchOptions};

use crate::common::{expect_invalid, expect_not_found, file_store, file_store_with, within};
use crate::support::{HANG, assert_strictly_increasing, capture_logs, drain, ev, logged, summary};

#[test]
fn star_watcher_sees_set_set_delete_delete_group_across_groups_in_order() {
    let f = file_store();
    let all = f.store.watch("*").unwrap();
    f.store.set("a", "k1", "v1").unwrap();
    f.store.set("b", "k2", "v2").unwrap();
    assert!(f.store.delete("a", "k1").unwrap());
    assert_eq!(f.store.delete_group("b").unwrap(), 1);
    let events = drain(&all);
    assert_eq!(
        summary(&events),
        [
            ev(EventKind::Set, "a", Some("k1")),
            ev(EventKind::Set, "b", Some("k2")),
            ev(EventKind::Delete, "a", Some("k1")),
            ev(EventKind::DeleteGroup, "b", None),
        ]
    );
    assert_strictly_increasing(&events.iter().map(|e| e.seq).collect::<Vec<_>>());
}

#[test]
fn exact_group_watcher_sees_only_that_group_while_star_sees_all() {
    let f = file_store();
    let exact = f.store.watch("a").unwrap();
    let all = f.store.watch("*").unwrap();
    f.store.set("ab", "k", "v").unwrap();
    f.store.set("b", "k", "v").unwrap();
    f.store.set("A", "k", "v").unwrap();
    f.store.set("a", "k", "v").unwrap();
    f.store.delete_group("ab").unwrap();
    f.store.delete_group("a").unwrap();
    assert_eq!(
        summary(&drain(&exact)),
        [
            ev(EventKind::Set, "a", Some("k")),
            ev(EventKind::DeleteGroup, "a", None)
        ]
    );
    assert_eq!(drain(&all).len(), 6);
}

#[test]
fn dropping_or_unsubscribing_lowers_listener_count() {
    let f = file_store();
    assert_eq!(f.store.listener_count(), 0);
    let a = f.store.watch("*").unwrap();
    let b = f.store.watch("g").unwrap();
    let c = f.store.watch_with("g", WatchOptions { capacity: 4 }).unwrap();
    let guard = f.store.on_change(|_| {}).unwrap();
    assert_eq!(f.store.listener_count(), 4);
    drop(a);
    assert_eq!(f.store.listener_count(), 3);
    b.unsubscribe();
    assert_eq!(f.store.listener_count(), 2);
    guard.unregister();
    assert_eq!(f.store.listener_count(), 1);
    // The remaining subscription still works.
    f.store.set("g", "k", "v").unwrap();
    assert_eq!(drain(&c).len(), 1);
    drop(c);
    assert_eq!(f.store.listener_count(), 0);
    // Writes with no listeners still succeed.
    f.store.set("g", "k", "w").unwrap();
}

#[test]
fn default_watch_options_take_the_stores_configured_capacity() {
    let f = file_store_with(|c| StoreConfig {
        watch_capacity: 4,
        ..c
    });
    let defaulted = f.store.watch_with("*", WatchOptions::default()).unwrap();
    let plain = f.store.watch("*").unwrap();
    let scoped = f
        .store
        .scoped("ns")
        .unwrap()
        .watch_with("*", WatchOptions::default())
        .unwrap();
    for i in 0..10 {
        f.store.set("ns:g", &format!("k{i}"), "v").unwrap();
    }
    for sub in [&defaulted, &plain, &scoped] {
        assert_eq!(drain(sub).len(), 4);
        assert_eq!(sub.dropped(), 6);
    }
}

#[test]
fn zero_capacity_subscription_is_invalid_input() {
    let f = file_store();
    let err = f.store.watch_with("*", WatchOptions { capacity: 0 }).unwrap_err();
    assert_eq!(err.field(), Some("capacity"), "{err}");
}

#[test]
fn close_disconnects_subscriptions_and_later_registrations_are_closed() {
    let f = file_store();
    let sub = f.store.watch("*").unwrap();
    let blocked = f.store.watch("g").unwrap();
    let called = Arc::new(AtomicUsize::new(0));
    let c = called.clone();
    f.store
        .on_change(move |_| {
            c.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap()
        .detach();
    f.store.set("g", "k", "v").unwrap();
    assert_eq!(called.load(Ordering::SeqCst), 1);
    // A thread blocked in recv() wakes up with None when the store closes.
    let waiter = std::thread::spawn(move || {
        let first = blocked.recv();
        let second = blocked.recv();
        (first.is_some(), second.is_none())
    });
    f.store.close().unwrap();
    assert_eq!(within(HANG, move || waiter.join().unwrap()), (true, true));
    // Buffered events drain, then None.
    assert_eq!(sub.recv().map(|e| e.kind), Some(EventKind::Set));
    assert!(sub.recv().is_none());
    assert!(sub.recv_timeout(Duration::from_millis(10)).is_none());
    assert_eq!(f.store.listener_count(), 0);
    assert!(f.store.watch("*").unwrap_err().is_closed());
    assert!(
        f.store
            .watch_with("g", WatchOptions { capacity: 8 })
            .unwrap_err()
            .is_closed()
    );
    assert!(f.store.on_change(|_| {}).unwrap_err().is_closed());
}

fn unread_subscription_drops_overflow(writes: usize) {
    let f = file_store();
    let sub = f.store.watch("*").unwrap(); // default watch_capacity: 16
    assert_eq!(f.store.config().watch_capacity, 16);
    let store = f.store.clone();
    within(HANG, move || {
        for i in 0..writes {
            store.set("g", &format!("k{i:02}"), "v").unwrap();
        }
    });
    let events = drain(&sub);
    assert_eq!(events.len(), 16);
    assert_eq!(sub.dropped(), (writes - 16) as u64);
    // The buffered ones are the oldest, in order.
    let keys: Vec<String> = events.iter().map(|e| e.key.clone().unwrap()).collect();
    let expected: Vec<String> = (0..16).map(|i| format!("k{i:02}")).collect();
    assert_eq!(keys, expected);
    // After draining, new events arrive again.
    f.store.set("g", "later", "v").unwrap();
    assert_eq!(drain(&sub).len(), 1);
    assert_eq!(sub.dropped(), (writes - 16) as u64);
}

#[test]
fn twenty_four_writes_into_an_unread_16_slot_subscription_never_block() {
    unread_subscription_drops_overflow(24);
}

#[test]
fn thirty_two_writes_into_an_unread_16_slot_subscription_never_block() {
    unread_subscription_drops_overflow(32);
}

#[test]
fn a_full_subscription_does_not_starve_another_one() {
    let f = file_store();
    let full = f.store.watch_with("*", WatchOptions { capacity: 1 }).unwrap();
    let roomy = f.store.watch_with("*", WatchOptions { capacity: 100 }).unwrap();
    for i in 0..10 {
        f.store.set("g", &i.to_string(), "v").unwrap();
    }
    assert_eq!(drain(&full).len(), 1);
    assert_eq!(full.dropped(), 9);
    assert_eq!(drain(&roomy).len(), 10);
    assert_eq!(roomy.dropped(), 0);
}

#[test]
fn on_change_sees_set_and_delete_before_the_call_returns() {
    let f = file_store();
    let seen: Arc<Mutex<Vec<Event>>> = Arc::default();
    let log = seen.clone();
    let _guard = f
        .store
        .on_change(move |e| log.lock().unwrap().push(e.clone()))
        .unwrap();
    let version = f.store.set("g", "k", "v").unwrap();
    {
        let seen = seen.lock().unwrap();
        assert_eq!(summary(&seen), [ev(EventKind::Set, "g", Some("k"))]);
        assert_eq!(seen[0].version, Some(version));
    }
    assert!(f.store.delete("g", "k").unwrap());
    assert_eq!(
        summary(&seen.lock().unwrap()),
        [
            ev(EventKind::Set, "g", Some("k")),
            ev(EventKind::Delete, "g", Some("k"))
        ]
    );
}

#[test]
fn on_change_callbacks_run_on_the_committing_thread_in_registration_order() {
    let f = file_store();
    let order: Arc<Mutex<Vec<(&'static str, std::thread::ThreadId)>>> = Arc::default();
    let (o1, o2) = (order.clone(), order.clone());
    let _g1 = f
        .store
        .on_change(move |_| o1.lock().unwrap().push(("first", std::thread::current().id())))
        .unwrap();
    let _g2 = f
        .store
        .on_change(move |_| o2.lock().unwrap().push(("second", std::thread::current().id())))
        .unwrap();
    f.store.set("g", "k", "v").unwrap();
    let me = std::thread::current().id();
    assert_eq!(*order.lock().unwrap(), [("first", me), ("second", me)]);
}

#[test]
fn a_dropped_guard_is_never_called_and_a_detached_one_keeps_running() {
    let f = file_store();
    let dropped_calls = Arc::new(AtomicUsize::new(0));
    let detached_calls = Arc::new(AtomicUsize::new(0));
    let d = dropped_calls.clone();
    let guard = f
        .store
        .on_change(move |_| {
            d.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    drop(guard);
    let k = detached_calls.clone();
    f.store
        .on_change(move |_| {
            k.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap()
        .detach();
    assert_eq!(
        f.store.listener_count(),
        1,
        "the detached callback stays registered"
    );
    f.store.set("g", "a", "1").unwrap();
    f.store.delete("g", "a").unwrap();
    assert_eq!(dropped_calls.load(Ordering::SeqCst), 0);
    assert_eq!(detached_calls.load(Ordering::SeqCst), 2);
    // Close drops detached callbacks.
    f.store.close().unwrap();
    assert_eq!(f.store.listener_count(), 0);
}

#[test]
fn callback_registered_mid_dispatch_misses_that_event_and_can_unregister_itself() {
    // SPEC §5 acceptance: on `first`, callback A registers B; B logs `nested:<key>` and
    // unregisters itself after one call; writes first, second, third log
    // [first, second, nested:second, third]; no deadlock.
    let f = file_store();
    let log: Arc<Mutex<Vec<String>>> = Arc::default();
    let b_guard: Arc<Mutex<Option<store::CallbackGuard>>> = Arc::default();
    let store = f.store.clone();
    let (a_log, a_slot) = (log.clone(), b_guard.clone());
    let _a = f
        .store
        .on_change(move |e| {
            let key = e.key.clone().unwrap_or_default();
            a_log.lock().unwrap().push(key.clone());
            if key == "first" {
                let (b_log, b_slot) = (a_log.clone(), a_slot.clone());
                let guard = store
                    .on_change(move |e| {
                        b_log
                            .lock()
                            .unwrap()
                            .push(format!("nested:{}", e.key.clone().unwrap_or_default()));
                        // Unregister itself after one call (dropping the guard).
                        drop(b_slot.lock().unwrap().take());
                    })
                    .unwrap();
                *a_slot.lock().unwrap() = Some(guard);
            }
        })
        .unwrap();
    let writer = f.store.clone();
    within(HANG, move || {
        for key in ["first", "second", "third"] {
            writer.set("g", key, "v").unwrap();
        }
    });
    assert_eq!(
        *log.lock().unwrap(),
        ["first", "second", "nested:second", "third"]
    );
    assert_eq!(f.store.listener_count(), 1, "only A is left");
    // A holds a Store clone (a cycle through the registry); close breaks it.
    f.store.close().unwrap();
}

#[test]
fn a_callback_that_writes_to_the_store_dispatches_nested_without_deadlock() {
    let f = file_store();
    let seen: Arc<Mutex<Vec<(EventKind, String)>>> = Arc::default();
    let store = f.store.clone();
    let log = seen.clone();
    f.store
        .on_change(move |e| {
            log.lock().unwrap().push((e.kind, e.group.clone()));
            if e.group == "input" {
                // A write (and a read) from inside the callback.
                let n = store.increment("derived", "count", 1).unwrap();
                assert!(n >= 1);
                let _ = store.get_all("input").unwrap();
            }
        })
        .unwrap()
        .detach();
    let all = f.store.watch("*").unwrap();
    let store = f.store.clone();
    within(HANG, move || {
        store.set("input", "a", "1").unwrap();
        store.set("input", "b", "2").unwrap();
    });
    assert_eq!(f.store.get("derived", "count").unwrap(), "2");
    assert_eq!(
        *seen.lock().unwrap(),
        [
            (EventKind::Set, "input".to_string()),
            (EventKind::Set, "derived".to_string()),
            (EventKind::Set, "input".to_string()),
            (EventKind::Set, "derived".to_string()),
        ]
    );
    let groups: Vec<String> = drain(&all).into_iter().map(|e| e.group).collect();
    assert_eq!(groups, ["input", "derived", "input", "derived"]);
    f.store.close().unwrap();
}

#[test]
fn a_panicking_callback_is_logged_and_the_write_still_returns_ok() {
    capture_logs();
    let f = file_store();
    let after = Arc::new(AtomicUsize::new(0));
    let _bad = f
        .store
        .on_change(|e| {
            if e.key.as_deref() == Some("explode") {
                panic!("callback panic on purpose");
            }
        })
        .unwrap();
    let a = after.clone();
    let _good = f
        .store
        .on_change(move |_| {
            a.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    let version = f.store.set("g", "explode", "v").unwrap();
    assert!(version >= 1);
    assert_eq!(f.store.get("g", "explode").unwrap(), "v");
    assert_eq!(after.load(Ordering::SeqCst), 1, "later callbacks still run");
    // The same after a transaction's commit.
    f.store.transaction(|tx| tx.set("g", "explode", "again")).unwrap();
    assert_eq!(f.store.get("g", "explode").unwrap(), "again");
    assert_eq!(after.load(Ordering::SeqCst), 2);
    assert!(
        !logged("on_change callback panicked").is_empty(),
        "the panic is reported through log::warn"
    );
    // The store keeps working, from this and other threads.
    f.store.set("g", "fine", "v").unwrap();
    let store = f.store.clone();
    within(HANG, move || store.set("g", "other-thread", "v").unwrap());
    assert_eq!(after.load(Ordering::SeqCst), 4);
}

#[test]
fn delete_of_a_live_key_is_delete_and_of_an_expired_key_is_expired() {
    let f = file_store();
    let all = f.store.watch("*").unwrap();
    f.store.set("g", "live", "v").unwrap();
    f.store
        .set_with_ttl("g", "old", "v", Duration::from_secs(1))
        .unwrap();
    f.clock.advance(Duration::from_secs(1));
    drain(&all);
    assert!(f.store.delete("g", "live").unwrap());
    assert!(
        !f.store.delete("g", "old").unwrap(),
        "deleting an expired entry returns false"
    );
    assert!(!f.store.delete("g", "missing").unwrap());
    let events = drain(&all);
    assert_eq!(
        summary(&events),
        [
            ev(EventKind::Delete, "g", Some("live")),
            ev(EventKind::Expired, "g", Some("old"))
        ]
    );
    assert!(events.iter().all(|e| e.value.is_none() && e.version.is_none()));
    assert_eq!(f.raw_rows(), 0);
}

#[test]
fn lazy_expiry_through_get_emits_one_expired_without_value() {
    let f = file_store();
    f.store
        .set_with_ttl("s", "token", "secret", Duration::from_secs(10))
        .unwrap();
    let all = f.store.watch("*").unwrap();
    f.clock.advance(Duration::from_secs(10));
    expect_not_found(f.store.get("s", "token"), "s", "token");
    expect_not_found(f.store.get("s", "token"), "s", "token");
    let events = drain(&all);
    assert_eq!(summary(&events), [ev(EventKind::Expired, "s", Some("token"))]);
    assert_eq!((events[0].value.as_deref(), events[0].version), (None, None));
    // exists/count never delete and so never emit.
    f.store
        .set_with_ttl("s", "t2", "x", Duration::from_secs(1))
        .unwrap();
    f.clock.advance(Duration::from_secs(1));
    drain(&all);
    assert!(!f.store.exists("s", "t2").unwrap());
    assert_eq!(f.store.count("s").unwrap(), 0);
    assert!(drain(&all).is_empty());
}

#[test]
fn lazy_expiry_through_get_split_and_get_fields_emits_expired() {
    let f = file_store();
    f.store
        .set_with_ttl("s", "a", "x y", Duration::from_secs(1))
        .unwrap();
    f.store
        .set_with_ttl("s", "b", "x,y", Duration::from_secs(1))
        .unwrap();
    f.clock.advance(Duration::from_secs(1));
    let all = f.store.watch("*").unwrap();
    expect_not_found(f.store.get_fields("s", "a"), "s", "a");
    expect_not_found(f.store.get_split("s", "b", ","), "s", "b");
    assert_eq!(
        summary(&drain(&all)),
        [
            ev(EventKind::Expired, "s", Some("a")),
            ev(EventKind::Expired, "s", Some("b"))
        ]
    );
}

#[test]
fn purge_expired_emits_one_expired_per_row() {
    let f = file_store();
    f.store
        .set_with_ttl("a", "1", "v", Duration::from_secs(1))
        .unwrap();
    f.store
        .set_with_ttl("b", "2", "v", Duration::from_secs(1))
        .unwrap();
    f.store.set_with_ttl("a", "3", "v", Duration::ZERO).unwrap();
    f.store.set("a", "live", "v").unwrap();
    f.clock.advance(Duration::from_secs(1));
    let all = f.store.watch("*").unwrap();
    assert_eq!(f.store.purge_expired().unwrap(), 3);
    let events = drain(&all);
    let mut got = summary(&events);
    got.sort_by(|a, b| (&a.1, &a.2).cmp(&(&b.1, &b.2)));
    assert_eq!(
        got,
        [
            ev(EventKind::Expired, "a", Some("1")),
            ev(EventKind::Expired, "a", Some("3")),
            ev(EventKind::Expired, "b", Some("2")),
        ]
    );
    assert_eq!(f.store.purge_expired().unwrap(), 0);
    assert!(drain(&all).is_empty());
}

#[test]
fn set_events_carry_value_and_the_returned_version() {
    let f = file_store();
    let all = f.store.watch("*").unwrap();
    let v1 = f.store.set("g", "k", "one").unwrap();
    let v2 = f
        .store
        .set_with_ttl("g", "t", "two", Duration::from_secs(5))
        .unwrap();
    let v3 = f
        .store
        .set_json("g", "j", &serde_json::json!({"b": 1, "a": [true]}))
        .unwrap();
    let v4 = f.store.set_if_version("g", "k", "four", Some(v1)).unwrap();
    let n = f.store.increment("g", "n", 3).unwrap();
    let v5 = f.store.get_with_version("g", "n").unwrap().version;
    let events = drain(&all);
    let got: Vec<(Option<&str>, Option<u64>, u64)> = events
        .iter()
        .map(|e| (e.value.as_deref(), e.version, e.seq))
        .collect();
    let json = f.store.get("g", "j").unwrap();
    assert_eq!(
        got,
        [
            (Some("one"), Some(v1), v1),
            (Some("two"), Some(v2), v2),
            (Some(json.as_str()), Some(v3), v3),
            (Some("four"), Some(v4), v4),
            (Some(n.to_string().as_str()), Some(v5), v5),
        ]
    );
    assert!(
        events
            .iter()
            .all(|e| e.kind == EventKind::Set && e.at_ms == crate::common::START_MS)
    );
}

#[test]
fn increment_by_zero_still_emits_a_set_with_a_new_version() {
    let f = file_store();
    f.store.set("g", "n", "7").unwrap();
    let before = f.store.get_with_version("g", "n").unwrap().version;
    let all = f.store.watch("*").unwrap();
    assert_eq!(f.store.increment("g", "n", 0).unwrap(), 7);
    let events = drain(&all);
    assert_eq!(summary(&events), [ev(EventKind::Set, "g", Some("n"))]);
    assert_eq!(events[0].value.as_deref(), Some("7"));
    let after = f.store.get_with_version("g", "n").unwrap().version;
    assert!(after > before);
    assert_eq!(events[0].version, Some(after));
}

#[test]
fn failed_writes_emit_nothing() {
    let f = file_store();
    let v = f.store.set("g", "k", "v").unwrap();
    let all = f.store.watch("*").unwrap();
    assert!(
        f.store
            .set_if_version("g", "k", "w", Some(v + 1000))
            .unwrap_err()
            .is_conflict()
    );
    assert!(
        f.store
            .set_if_version("g", "k", "w", None)
            .unwrap_err()
            .is_conflict()
    );
    f.store.set("g", "big", &i64::MAX.to_string()).unwrap();
    f.store.set("g", "text", "abc").unwrap();
    drain(&all);
    expect_invalid(f.store.increment("g", "big", 1), "value");
    expect_invalid(f.store.increment("g", "text", 1), "value");
    expect_invalid(f.store.set("g", "", "v"), "key");
    assert!(drain(&all).is_empty());
}

#[test]
fn delete_group_event_has_no_key_value_or_version() {
    let f = file_store();
    f.store.set("g", "a", "1").unwrap();
    f.store.set("g", "b", "2").unwrap();
    let all = f.store.watch("*").unwrap();
    assert_eq!(f.store.delete_group("g").unwrap(), 2);
    let events = drain(&all);
    assert_eq!(events.len(), 1, "one DeleteGroup per group, not one per key");
    let e = &events[0];
    assert_eq!(
        (e.kind, e.group.as_str(), e.key.as_deref()),
        (EventKind::DeleteGroup, "g", None)
    );
    assert_eq!((e.value.as_deref(), e.version), (None, None));
}

#[test]
fn delete_group_on_an_empty_group_emits_nothing() {
    // Observed (and consistent with SPEC §3.5 "one DeleteGroup per group" removed): a group
    // without rows is not removed, so nothing is emitted and nothing is recorded in the feed.
    let f = file_store();
    let last = f.store.last_seq().unwrap();
    let all = f.store.watch("*").unwrap();
    assert_eq!(f.store.delete_group("never-written").unwrap(), 0);
    assert_eq!(f.store.delete_prefix("nothing-here:").unwrap(), 0);
    assert!(drain(&all).is_empty());
    assert_eq!(f.store.last_seq().unwrap(), last);
}

#[test]
fn delete_group_reports_each_expired_row_as_expired_then_the_group() {
    // SPEC §3.5 "all rows … one DeleteGroup per group" with §14.3 "every removal of an expired
    // row emits Expired": the expired rows one by one, by key, as the purge would report them,
    // then the group, so that a reader replaying the feed removes each key before the rest.
    let f = file_store();
    for (g, k) in [("g", "b"), ("g", "a"), ("mixed", "old")] {
        f.store.set_with_ttl(g, k, "1", Duration::from_secs(1)).unwrap();
    }
    f.store.set("mixed", "live", "2").unwrap();
    f.clock.advance(Duration::from_secs(1));
    let last = f.store.last_seq().unwrap();
    let all = f.store.watch("*").unwrap();
    assert_eq!(f.store.delete_group("g").unwrap(), 0);
    assert_eq!(
        summary(&drain(&all)),
        [
            ev(EventKind::Expired, "g", Some("a")),
            ev(EventKind::Expired, "g", Some("b")),
            ev(EventKind::DeleteGroup, "g", None)
        ]
    );
    assert_eq!(f.store.delete_prefix("").unwrap(), 1);
    assert_eq!(
        summary(&drain(&all)),
        [
            ev(EventKind::Expired, "mixed", Some("old")),
            ev(EventKind::DeleteGroup, "mixed", None)
        ]
    );
    assert_eq!(f.raw_rows(), 0);
    // The feed says the same, in the same order.
    let feed = f.store.changes_since(last, 100).unwrap();
    let kinds: Vec<(EventKind, &str, Option<&str>)> = feed
        .changes
        .iter()
        .map(|c| (c.kind, c.group.as_str(), c.key.as_deref()))
        .collect();
    assert_eq!(
        kinds,
        [
            (EventKind::Expired, "g", Some("a")),
            (EventKind::Expired, "g", Some("b")),
            (EventKind::DeleteGroup, "g", None),
            (EventKind::Expired, "mixed", Some("old")),
            (EventKind::DeleteGroup, "mixed", None)
        ]
    );
}

/// Another program may write a group name that is not valid UTF-8: `delete_prefix("")` deletes
/// it too (it was matched by its decoded text, which is not what is stored, and survived).
#[test]
fn delete_prefix_removes_groups_stored_as_invalid_utf8() {
    let f = file_store();
    f.store.set("plain", "k", "v").unwrap();
    f.raw()
        .execute_batch(
            "INSERT INTO entries (group_name, entry_key, entry_value, expires_at) \
             VALUES (CAST(X'67FF' AS TEXT), 'k', 'v', NULL), (CAST(X'68FE' AS TEXT), 'k', 'v', 1)",
        )
        .unwrap();
    let all = f.store.watch("*").unwrap();
    assert_eq!(
        f.store.delete_prefix("").unwrap(),
        2,
        "the live rows: plain/k and the 67FF one"
    );
    assert_eq!(f.raw_rows(), 0, "every row went");
    let kinds: Vec<EventKind> = drain(&all).iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            EventKind::DeleteGroup,
            EventKind::Expired,
            EventKind::DeleteGroup,
            EventKind::DeleteGroup
        ]
    );
}

#[test]
fn delete_prefix_emits_one_delete_group_per_group_ascending() {
    let f = file_store();
    for g in ["tenant-a:z", "tenant-a:b", "tenant-a:m", "tenant-b:a"] {
        f.store.set(g, "k", "v").unwrap();
    }
    let all = f.store.watch("*").unwrap();
    assert_eq!(f.store.delete_prefix("tenant-a:").unwrap(), 3);
    assert_eq!(
        summary(&drain(&all)),
        [
            ev(EventKind::DeleteGroup, "tenant-a:b", None),
            ev(EventKind::DeleteGroup, "tenant-a:m", None),
            ev(EventKind::DeleteGroup, "tenant-a:z", None),
        ]
    );
}

#[test]
fn four_threads_of_250_sets_reach_a_2000_slot_star_subscription_in_seq_order() {
    let f = file_store();
    let sub = f.store.watch_with("*", WatchOptions { capacity: 2000 }).unwrap();
    let store = f.store.clone();
    within(Duration::from_secs(60), move || {
        let barrier = Arc::new(Barrier::new(4));
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let store = store.clone();
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    barrier.wait();
                    for i in 0..250 {
                        store.set(&format!("t{t}"), &format!("k{i}"), "v").unwrap();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    });
    let events = drain(&sub);
    assert_eq!(events.len(), 1000);
    assert_eq!(sub.dropped(), 0);
    assert_strictly_increasing(&events.iter().map(|e| e.seq).collect::<Vec<_>>());
    for t in 0..4 {
        let group = format!("t{t}");
        // Each thread's own events arrive in its call order.
        let keys: Vec<String> = events
            .iter()
            .filter(|e| e.group == group)
            .map(|e| e.key.clone().unwrap())
            .collect();
        let expected: Vec<String> = (0..250).map(|i| format!("k{i}")).collect();
        assert_eq!(keys, expected);
    }
}

#[test]
fn dropping_the_last_handle_disconnects_subscriptions_like_close() {
    let crate::common::Fixture { store, dir, .. } = file_store();
    let sub = store.watch("*").unwrap();
    let clone = store.clone();
    store.set("g", "k", "v").unwrap();
    drop(store);
    clone.set("g", "k2", "v").unwrap(); // a clone keeps the store open
    drop(clone);
    let waiter = std::thread::spawn(move || sub.iter().count());
    assert_eq!(within(HANG, move || waiter.join().unwrap()), 2);
    drop(dir);
}

#[test]
fn watching_an_invalid_group_is_invalid_input() {
    let f = file_store();
    assert_eq!(f.store.watch("").unwrap_err().field(), Some("group"));
    assert_eq!(f.store.watch("a\0b").unwrap_err().field(), Some("group"));
    assert_eq!(f.store.listener_count(), 0);
}

#[test]
fn racing_gets_of_one_expired_key_emit_exactly_one_expired() {
    let f = file_store();
    for round in 0..20 {
        let key = format!("k{round}");
        f.store
            .set_with_ttl("s", &key, "v", Duration::from_secs(1))
            .unwrap();
        f.clock.advance(Duration::from_secs(1));
        let all = f.store.watch_with("*", WatchOptions { capacity: 64 }).unwrap();
        let store = f.store.clone();
        within(HANG, move || {
            let barrier = Arc::new(Barrier::new(8));
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let (store, barrier, key) = (store.clone(), barrier.clone(), key.clone());
                    std::thread::spawn(move || {
                        barrier.wait();
                        assert!(store.get("s", &key).unwrap_err().is_not_found());
                    })
                })
                .collect();
            for h in handles {
                h.join().unwrap();
            }
        });
        assert_eq!(
            summary(&drain(&all)),
            [ev(EventKind::Expired, "s", Some(&format!("k{round}")))]
        );
    }
    let expired = f
        .store
        .changes_since(0, 100)
        .unwrap()
        .changes
        .iter()
        .filter(|c| c.kind == EventKind::Expired)
        .count();
    assert_eq!(expired, 20);
}

#[test]
fn a_guard_dropped_during_a_transactions_dispatch_is_not_called_for_its_later_events() {
    // SPEC §5 acceptance "a dropped guard is never called"; §5.1 "Drop unregisters". X (first in
    // registration order) drops Y's guard while handling `first`; a two-write transaction
    // dispatches `first` then `second`. Y may still see the in-flight `first`, but `second`
    // is dispatched after Y's guard is gone. Observed: Y is called for `second` too, because
    // callbacks run over one registry snapshot per committed batch, not per event.
    let f = file_store();
    let log: Arc<Mutex<Vec<String>>> = Arc::default();
    let y_guard: Arc<Mutex<Option<store::CallbackGuard>>> = Arc::default();
    let (x_log, slot) = (log.clone(), y_guard.clone());
    let _x = f
        .store
        .on_change(move |e| {
            let key = e.key.clone().unwrap_or_default();
            x_log.lock().unwrap().push(format!("x:{key}"));
            if key == "first" {
                drop(slot.lock().unwrap().take());
            }
        })
        .unwrap();
    let y_log = log.clone();
    let guard = f
        .store
        .on_change(move |e| {
            y_log
                .lock()
                .unwrap()
                .push(format!("y:{}", e.key.clone().unwrap_or_default()))
        })
        .unwrap();
    *y_guard.lock().unwrap() = Some(guard);
    f.store
        .transaction(|tx| {
            tx.set("g", "first", "v")?;
            tx.set("g", "second", "v")?;
            Ok(())
        })
        .unwrap();
    let log = log.lock().unwrap().clone();
    assert!(
        !log.contains(&"y:second".to_string()),
        "Y ran after its guard was dropped: {log:?}"
    );
    assert_eq!(f.store.listener_count(), 1);
}

#[test]
fn re_entrancy_scenario_within_one_transaction_logs_first_second_nested_second_third() {
    // SPEC §5 acceptance re-entrancy scenario with the three writes committed by one
    // transaction. §5.2: "over a registry snapshot (one added mid-dispatch misses the in-flight
    // event)" — B, added while `first` is in flight, should see `second`. Observed:
    // [first, second, third] — B misses the whole batch (one snapshot per batch).
    let f = file_store();
    let log: Arc<Mutex<Vec<String>>> = Arc::default();
    let b_guard: Arc<Mutex<Option<store::CallbackGuard>>> = Arc::default();
    let store = f.store.clone();
    let (a_log, a_slot) = (log.clone(), b_guard.clone());
    let _a = f
        .store
        .on_change(move |e| {
            let key = e.key.clone().unwrap_or_default();
            a_log.lock().unwrap().push(key.clone());
            if key == "first" {
                let (b_log, b_slot) = (a_log.clone(), a_slot.clone());
                let guard = store
                    .on_change(move |e| {
                        b_log
                            .lock()
                            .unwrap()
                            .push(format!("nested:{}", e.key.clone().unwrap_or_default()));
                        drop(b_slot.lock().unwrap().take());
                    })
                    .unwrap();
                *a_slot.lock().unwrap() = Some(guard);
            }
        })
        .unwrap();
    let writer = f.store.clone();
    within(HANG, move || {
        writer
            .transaction(|tx| {
                for key in ["first", "second", "third"] {
                    tx.set("g", key, "v")?;
                }
                Ok(())
            })
            .unwrap();
    });
    assert_eq!(
        *log.lock().unwrap(),
        ["first", "second", "nested:second", "third"]
    );
    f.store.close().unwrap();
}

#[test]
fn the_purge_thread_delivers_expired_to_subscribers_and_callbacks() {
    // Real clock: a 20 ms purge interval removes a 1 ms TTL entry on its own.
    let dir = tempfile::tempdir().unwrap();
    let config =
        store::StoreConfig::file(dir.path().join("state.db")).with_purge_interval(Duration::from_millis(20));
    let store = store::Store::open_with(config).unwrap();
    let sub = store.watch("s").unwrap();
    let purger: Arc<Mutex<Option<std::thread::ThreadId>>> = Arc::default();
    let p = purger.clone();
    let _guard = store
        .on_change(move |e| {
            if e.kind == EventKind::Expired {
                *p.lock().unwrap() = Some(std::thread::current().id());
            }
        })
        .unwrap();
    store
        .set_with_ttl("s", "k", "v", Duration::from_millis(1))
        .unwrap();
    assert_eq!(
        sub.recv_timeout(Duration::from_secs(5)).map(|e| e.kind),
        Some(EventKind::Set)
    );
    let expired = sub
        .recv_timeout(Duration::from_secs(5))
        .expect("the purge thread expired the entry");
    assert_eq!(
        (expired.kind, expired.key.as_deref(), expired.value),
        (EventKind::Expired, Some("k"), None)
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while purger.lock().unwrap().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "callback not called for the purge"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_ne!(
        *purger.lock().unwrap(),
        Some(std::thread::current().id()),
        "callbacks run on the purging thread"
    );
    store.close().unwrap();
}

#[test]
fn a_callback_can_subscribe_and_unsubscribe_watchers_without_deadlock() {
    // Issue 3: "callbacks may subscribe and unsubscribe from inside a callback without
    // deadlock". On `open` the callback subscribes to `g`; on `close` it unsubscribes
    // explicitly; on `drop-me` a second subscription made in the callback is dropped there.
    let f = file_store();
    let store = f.store.clone();
    let held: Arc<Mutex<Option<store::Subscription>>> = Arc::default();
    let slot = held.clone();
    let _guard = f
        .store
        .on_change(move |e| match e.key.as_deref() {
            Some("open") => *slot.lock().unwrap() = Some(store.watch("g").unwrap()),
            Some("close") => {
                if let Some(sub) = slot.lock().unwrap().take() {
                    sub.unsubscribe();
                }
            }
            Some("drop-me") => drop(store.watch("*").unwrap()),
            _ => {}
        })
        .unwrap();
    let writer = f.store.clone();
    within(HANG, move || {
        writer.set("g", "open", "1").unwrap();
        assert_eq!(writer.listener_count(), 2, "the callback and its subscription");
        writer.set("g", "a", "1").unwrap();
        writer.set("other", "b", "1").unwrap();
        writer.set("g", "drop-me", "1").unwrap();
        assert_eq!(
            writer.listener_count(),
            2,
            "the subscription dropped in the callback is gone"
        );
    });
    {
        let sub = held.lock().unwrap();
        let sub = sub.as_ref().expect("subscribed in the callback");
        // Registered while `open` was being dispatched: it sees the later events of `g` only.
        assert_eq!(
            summary(&drain(sub)),
            [
                ev(EventKind::Set, "g", Some("a")),
                ev(EventKind::Set, "g", Some("drop-me")),
            ]
        );
    }
    let writer = f.store.clone();
    within(HANG, move || writer.set("g", "close", "1").unwrap());
    assert!(held.lock().unwrap().is_none());
    assert_eq!(f.store.listener_count(), 1, "only the callback is left");
}

#[test]
fn the_configured_watch_capacity_bounds_every_plain_watch() {
    // Issue 3: "bounded channel (capacity 16 by default, configurable)": the store's
    // watch_capacity is what watch() and a scoped watch() buffer.
    let f = file_store_with(|mut c| {
        c.watch_capacity = 4;
        c
    });
    let sub = f.store.watch("*").unwrap();
    let scoped = f.store.scoped("app").unwrap().watch("*").unwrap();
    for i in 0..10 {
        f.store.set("app:g", &i.to_string(), "v").unwrap();
    }
    for s in [&sub, &scoped] {
        assert_eq!(drain(s).len(), 4);
        assert_eq!(s.dropped(), 6);
    }
}

/// Runs `while_it_runs` while another thread's transaction, begun with nobody listening, has
/// written config/pool = 8 and holds on for `hold`, or until `while_it_runs` returns if that
/// is sooner, before committing.
fn during_an_unwatched_transaction(store: &store::Store, hold: Duration, while_it_runs: impl FnOnce()) {
    let began = Barrier::new(2);
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|scope| {
        let began = &began;
        scope.spawn(move || {
            store
                .transaction(|tx| {
                    tx.set("config", "pool", "8")?;
                    began.wait();
                    let _ = release_rx.recv_timeout(hold);
                    Ok(())
                })
                .unwrap();
        });
        began.wait();
        while_it_runs();
        drop(release_tx);
    });
}

/// Subscribe, then read: a write that began while nobody listened (so it stages no events)
/// and commits after the registration must be visible to the read that follows it, or be
/// delivered. With the change feed on, its events are read back from the feed at commit;
/// with it off, registration waits for such a write in flight. Here a transaction.
#[test]
fn a_listener_registered_while_an_unwatched_transaction_runs_misses_nothing() {
    for (register, feed) in [
        ("watch", true),
        ("on_change", true),
        ("watch", false),
        ("on_change", false),
    ] {
        let fixture = file_store_with(|c| c.with_change_feed(feed));
        let store = &fixture.store;
        during_an_unwatched_transaction(store, Duration::from_millis(300), || {
            let seen = Arc::new(Mutex::new(Vec::new()));
            let (subscription, _guard) = if register == "watch" {
                (Some(store.watch("config").unwrap()), None)
            } else {
                let seen = Arc::clone(&seen);
                let guard = store
                    .on_change(move |e: &Event| seen.lock().unwrap().push(e.key.clone()))
                    .unwrap();
                (None, Some(guard))
            };
            if store.get("config", "pool").is_ok() {
                return; // the read sees the write: nothing to deliver
            }
            // Not visible yet: the event must come once it commits (polled, so a loaded
            // machine that commits late is only waited for).
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            let delivered = loop {
                let delivered = match &subscription {
                    Some(sub) => sub.try_recv().is_some(),
                    None => !seen.lock().unwrap().is_empty(),
                };
                if delivered || std::time::Instant::now() > deadline {
                    break delivered;
                }
                std::thread::sleep(Duration::from_millis(20));
            };
            assert!(
                delivered,
                "{register}: the read missed the write and no event came"
            );
        });
    }
}

/// A listener registered while a transaction that began unwatched is still running gets that
/// transaction's events at its commit, in order, like one registered before it began (they
/// are read back from the change feed), even when the transaction waits for the registration.
#[test]
fn a_listener_registered_mid_transaction_gets_its_events_at_commit() {
    let fixture = file_store();
    let store = &fixture.store;
    let (registered_tx, registered_rx) = std::sync::mpsc::channel::<()>();
    let began = Barrier::new(2);
    let calls = Arc::new(Mutex::new(Vec::new()));
    std::thread::scope(|scope| {
        let began = &began;
        let writer = scope.spawn(move || {
            store
                .transaction(|tx| {
                    tx.set("config", "a", "1")?;
                    tx.delete("config", "a")?;
                    began.wait();
                    registered_rx.recv().unwrap(); // the listener registers meanwhile
                    tx.set("config", "b", "2")
                })
                .unwrap()
        });
        began.wait();
        let sub = store.watch("config").unwrap();
        let seen = Arc::clone(&calls);
        let _guard = store
            .on_change(move |e: &Event| seen.lock().unwrap().push((e.kind, e.key.clone())))
            .unwrap();
        registered_tx.send(()).unwrap();
        let version_b = writer.join().unwrap();
        let got: Vec<Event> = std::iter::from_fn(|| sub.recv_timeout(Duration::from_secs(2)))
            .take(3)
            .collect();
        let kinds: Vec<_> = got
            .iter()
            .map(|e| (e.kind, e.key.as_deref(), e.value.as_deref()))
            .collect();
        assert_eq!(
            kinds,
            [
                (EventKind::Set, Some("a"), Some("1")),
                (EventKind::Delete, Some("a"), None),
                (EventKind::Set, Some("b"), Some("2"))
            ]
        );
        assert_eq!(got[2].version, Some(version_b));
        assert_strictly_increasing(&got.iter().map(|e| e.seq).collect::<Vec<_>>());
        assert_eq!(calls.lock().unwrap().len(), 3);
    });
}

/// With the change feed off nothing can replay an unwatched write's events, so registering
/// waits for such a write in flight; one still running after the busy timeout makes the
/// registration fail as busy, registering nothing, rather than hand back a listener that
/// would miss it.
#[test]
fn with_the_feed_off_registering_behind_a_long_unwatched_write_fails_busy() {
    let fixture = file_store_with(|mut c| {
        c.busy_timeout = Duration::from_millis(200);
        c.with_change_feed(false)
    });
    let store = &fixture.store;
    // Held until the registrations are done: however late they run, the write is in flight.
    during_an_unwatched_transaction(store, Duration::from_secs(60), || {
        let err = store.watch("config").unwrap_err();
        assert!(err.is_busy(), "{err}");
        assert!(err.to_string().contains("turn the change feed on"), "{err}");
        let err = store.on_change(|_| {}).unwrap_err();
        assert!(err.is_busy(), "{err}");
        assert_eq!(store.listener_count(), 0, "nothing stays registered");
    });
    let sub = store.watch("config").unwrap();
    store.set("config", "pool", "9").unwrap();
    assert_eq!(sub.try_recv().unwrap().value.as_deref(), Some("9"));
}

/// Dropping a guard whose callback holds the last handle of the store closes the store: the
/// callback is dropped after the registry's lock is released (dropped under it, the store's
/// close took that lock again on the same thread and hung forever).
#[test]
fn dropping_a_guard_whose_callback_holds_the_last_handle_closes_the_store() {
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for scoped in [false, true] {
            let store = store::Store::in_memory().unwrap();
            let guard = if scoped {
                let ns = store.scoped("app").unwrap();
                let held = ns.clone();
                ns.on_change(move |_| drop(held.get("g", "k"))).unwrap()
            } else {
                let held = store.clone();
                store.on_change(move |_| drop(held.get("g", "k"))).unwrap()
            };
            drop(store);
            drop(guard);
        }
        done_tx.send(()).unwrap();
    });
    assert!(
        done_rx.recv_timeout(HANG).is_ok(),
        "dropping the guard hung: the store's close waited for the lock held while dropping it"
    );
}

#[test]
fn a_purge_thread_callback_closing_the_store_during_another_close_does_not_deadlock() {
    let f = file_store_with(|c| c.with_purge_interval(Duration::from_millis(5)));
    let (entered_tx, entered_rx) = std::sync::mpsc::channel();
    let entered_tx = Mutex::new(entered_tx);
    let store = f.store.clone();
    let _guard = f
        .store
        .on_change(move |e| {
            if e.kind != EventKind::Expired {
                return;
            }
            let _ = entered_tx.lock().unwrap().send(());
            // Wait until the main thread's close is under way (data calls fail `Closed`), so it
            // holds the close lock and waits to join this thread, then close from here too.
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while store.get("g", "other").map_or_else(|e| !e.is_closed(), |_| true)
                && std::time::Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(1));
            }
            store.close().unwrap();
        })
        .unwrap();
    f.store
        .set_with_ttl("g", "k", "v", Duration::from_millis(1))
        .unwrap();
    f.clock.advance(Duration::from_secs(1));
    entered_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("the purge thread expired the entry");
    let store = f.store.clone();
    within(HANG, move || store.close()).unwrap();
    assert!(f.store.is_closed());
}

#[test]
fn a_write_that_commits_while_close_waits_for_it_reaches_subscribers() {
    let f = file_store();
    let sub = f.store.watch("*").unwrap();
    let (inside_tx, inside_rx) = std::sync::mpsc::channel();
    let writer = {
        let store = f.store.clone();
        std::thread::spawn(move || {
            store.transaction(|tx| {
                tx.set("g", "k", "v")?;
                inside_tx.send(()).unwrap();
                // Close starts meanwhile and waits for this transaction.
                std::thread::sleep(Duration::from_millis(200));
                Ok(())
            })
        })
    };
    inside_rx.recv_timeout(Duration::from_secs(5)).unwrap();
    f.store.close().unwrap();
    writer
        .join()
        .unwrap()
        .expect("the transaction began before close and commits");
    // Its event was sent before the subscription was disconnected.
    assert_eq!(
        sub.recv_timeout(Duration::from_secs(5)).map(|e| (e.kind, e.key)),
        Some((EventKind::Set, Some("k".to_string())))
    );
    assert!(
        sub.recv_timeout(Duration::from_secs(5)).is_none(),
        "then disconnected"
    );
}
