//! SPEC §6 and §5.2 events of scoped handles: a scoped `watch` (including `"*"`) and `on_change`
//! see only their namespace's events, in commit order, under local group names; raw watchers see
//! scoped writes as `ns:group`; the change feed records stored names.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use store::{Event, EventKind, Kv, WatchOptions};

use crate::common::file_store;
use crate::support::{NS_A, NS_B, changes_since, drain, ev, summary};

fn big() -> WatchOptions {
    WatchOptions { capacity: 256 }
}

#[test]
fn scoped_star_watch_gets_its_own_events_in_order_under_local_names() {
    let f = file_store();
    let a = f.store.scoped(NS_A).unwrap();
    let b = f.store.scoped(NS_B).unwrap();
    let sub_a = a.watch_with("*", big()).unwrap();
    let sub_b = b.watch_with("*", big()).unwrap();

    let v1 = a.set("config", "k1", "v1").unwrap();
    b.set("config", "k1", "v1").unwrap();
    f.store.set("config", "k1", "raw").unwrap();
    f.store.set("tenant-ab:config", "k1", "raw").unwrap();
    f.store.set("tenant-a", "k1", "raw").unwrap();
    a.set_with_ttl("session", "t", "tok", Duration::from_secs(1))
        .unwrap();
    b.delete("config", "k1").unwrap();
    a.delete("config", "k1").unwrap();
    a.increment("stats", "hits", 2).unwrap();
    a.set_json("config", "j", &[1]).unwrap();
    a.set_if_version("config", "cas", "x", None).unwrap();
    a.delete_group("stats").unwrap();
    f.clock.advance(Duration::from_secs(1));
    assert!(a.get("session", "t").unwrap_err().is_not_found()); // lazy expiry
    a.set_key("k", "v").unwrap();

    let events = drain(&sub_a);
    assert_eq!(
        summary(&events),
        [
            ev(EventKind::Set, "config", Some("k1")),
            ev(EventKind::Set, "session", Some("t")),
            ev(EventKind::Delete, "config", Some("k1")),
            ev(EventKind::Set, "stats", Some("hits")),
            ev(EventKind::Set, "config", Some("j")),
            ev(EventKind::Set, "config", Some("cas")),
            ev(EventKind::DeleteGroup, "stats", None),
            ev(EventKind::Expired, "session", Some("t")),
            ev(EventKind::Set, "default", Some("k")),
        ]
    );
    assert!(events.windows(2).all(|w| w[0].seq < w[1].seq), "seq order");
    assert_eq!(
        (events[0].value.as_deref(), events[0].version),
        (Some("v1"), Some(v1))
    );
    assert_eq!(events[3].value.as_deref(), Some("2"));
    assert_eq!(events[4].value.as_deref(), Some("[1]"));
    assert_eq!((events[2].value.as_deref(), events[2].version), (None, None));

    assert_eq!(
        summary(&drain(&sub_b)),
        [
            ev(EventKind::Set, "config", Some("k1")),
            ev(EventKind::Delete, "config", Some("k1")),
        ]
    );
}

#[test]
fn scoped_watch_of_one_group_sees_only_that_local_group() {
    let f = file_store();
    let a = f.store.scoped(NS_A).unwrap();
    let b = f.store.scoped(NS_B).unwrap();
    let sub = a.watch_with("config", big()).unwrap();
    a.set("config", "k", "1").unwrap();
    a.set("config-2", "k", "2").unwrap();
    b.set("config", "k", "3").unwrap();
    f.store.set("config", "k", "4").unwrap();
    a.delete_group("config").unwrap();
    let events = drain(&sub);
    assert_eq!(
        summary(&events),
        [
            ev(EventKind::Set, "config", Some("k")),
            ev(EventKind::DeleteGroup, "config", None),
        ]
    );
    assert_eq!(events[0].value.as_deref(), Some("1"));
}

#[test]
fn raw_writes_into_the_namespace_reach_its_watchers_under_local_names() {
    let f = file_store();
    let a = f.store.scoped(NS_A).unwrap();
    let sub = a.watch_with("*", big()).unwrap();
    f.store.set("tenant-a:config", "k", "v").unwrap();
    f.store.set("Tenant-A:config", "k", "v").unwrap();
    assert_eq!(summary(&drain(&sub)), [ev(EventKind::Set, "config", Some("k"))]);
}

#[test]
fn scoped_on_change_sees_only_its_namespace_with_local_names() {
    let f = file_store();
    let a = f.store.scoped(NS_A).unwrap();
    let b = f.store.scoped(NS_B).unwrap();
    let seen: Arc<Mutex<Vec<Event>>> = Arc::default();
    let sink = seen.clone();
    let _guard = a
        .on_change(move |e| sink.lock().unwrap().push(e.clone()))
        .unwrap();

    a.set("config", "k", "v").unwrap();
    b.set("config", "k", "v").unwrap();
    f.store.set("config", "k", "v").unwrap();
    a.set_with_ttl("session", "t", "v", Duration::from_secs(1))
        .unwrap();
    a.delete("config", "k").unwrap();
    b.delete_prefix("").unwrap();
    f.clock.advance(Duration::from_secs(1));
    assert_eq!(a.purge_expired().unwrap(), 1);
    a.transaction(|tx| {
        tx.set("tx", "k", "v")?;
        tx.delete_group("tx")?;
        Ok(())
    })
    .unwrap();

    assert_eq!(
        summary(&seen.lock().unwrap()),
        [
            ev(EventKind::Set, "config", Some("k")),
            ev(EventKind::Set, "session", Some("t")),
            ev(EventKind::Delete, "config", Some("k")),
            ev(EventKind::Expired, "session", Some("t")),
            ev(EventKind::Set, "tx", Some("k")),
            ev(EventKind::DeleteGroup, "tx", None),
        ]
    );
}

#[test]
fn raw_watchers_and_callbacks_see_scoped_writes_under_stored_names() {
    let f = file_store();
    let a = f.store.scoped(NS_A).unwrap();
    let all = f.store.watch_with("*", big()).unwrap();
    let stored = f.store.watch_with("tenant-a:config", big()).unwrap();
    let plain = f.store.watch_with("config", big()).unwrap();
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = seen.clone();
    let _guard = f
        .store
        .on_change(move |e| sink.lock().unwrap().push(e.group.clone()))
        .unwrap();

    a.set("config", "k", "v").unwrap();
    a.set_key("k", "v").unwrap();
    a.delete_prefix("").unwrap();

    let expected = [
        ev(EventKind::Set, "tenant-a:config", Some("k")),
        ev(EventKind::Set, "tenant-a:default", Some("k")),
        ev(EventKind::DeleteGroup, "tenant-a:config", None),
        ev(EventKind::DeleteGroup, "tenant-a:default", None),
    ];
    assert_eq!(summary(&drain(&all)), expected);
    assert_eq!(
        summary(&drain(&stored)),
        [
            ev(EventKind::Set, "tenant-a:config", Some("k")),
            ev(EventKind::DeleteGroup, "tenant-a:config", None),
        ]
    );
    assert!(drain(&plain).is_empty(), "`config` is not `tenant-a:config`");
    assert_eq!(
        *seen.lock().unwrap(),
        [
            "tenant-a:config",
            "tenant-a:default",
            "tenant-a:config",
            "tenant-a:default"
        ]
    );
}

#[test]
fn delete_prefix_emits_one_delete_group_per_local_group_in_ascending_order() {
    let f = file_store();
    let a = f.store.scoped(NS_A).unwrap();
    for g in ["zeta", "cache-warm", "cache", "alpha"] {
        a.set(g, "k", "v").unwrap();
        a.set(g, "k2", "v").unwrap();
    }
    f.store.set("tenant-b:cache", "k", "v").unwrap();
    let sub = a.watch_with("*", big()).unwrap();
    let raw = f.store.watch_with("*", big()).unwrap();
    assert_eq!(a.delete_prefix("cache").unwrap(), 4);
    assert_eq!(a.delete_prefix("").unwrap(), 4);
    assert_eq!(
        summary(&drain(&sub)),
        [
            ev(EventKind::DeleteGroup, "cache", None),
            ev(EventKind::DeleteGroup, "cache-warm", None),
            ev(EventKind::DeleteGroup, "alpha", None),
            ev(EventKind::DeleteGroup, "zeta", None),
        ]
    );
    assert_eq!(drain(&raw).len(), 4, "tenant-b:cache was not deleted");
}

#[test]
fn scoped_transaction_events_are_published_after_commit_under_local_names_and_never_on_rollback() {
    let f = file_store();
    let a = f.store.scoped(NS_A).unwrap();
    let sub = a.watch_with("*", big()).unwrap();
    let inside = a
        .transaction(|tx| {
            tx.set("config", "k1", "v")?;
            tx.set("prefs", "k2", "v")?;
            Ok(drain(&sub).len())
        })
        .unwrap();
    assert_eq!(inside, 0);
    assert_eq!(
        summary(&drain(&sub)),
        [
            ev(EventKind::Set, "config", Some("k1")),
            ev(EventKind::Set, "prefs", Some("k2")),
        ]
    );
    let _ = a.transaction(|tx| {
        tx.set("config", "k3", "v")?;
        Err::<(), _>(tx.get("config", "missing").unwrap_err())
    });
    assert!(drain(&sub).is_empty());
}

#[test]
fn change_feed_records_scoped_writes_under_stored_names() {
    let f = file_store();
    let a = f.store.scoped(NS_A).unwrap();
    let start = f.store.last_seq().unwrap();
    a.set("config", "k", "v").unwrap();
    a.delete_group("config").unwrap();
    let changes = changes_since(&f.store, start);
    let rows: Vec<_> = changes
        .iter()
        .map(|c| (c.kind, c.group.as_str(), c.key.as_deref()))
        .collect();
    assert_eq!(
        rows,
        [
            (EventKind::Set, "tenant-a:config", Some("k")),
            (EventKind::DeleteGroup, "tenant-a:config", None),
        ]
    );
}
