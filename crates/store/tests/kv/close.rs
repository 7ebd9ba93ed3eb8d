//! SPEC §3.8: `close`, idempotence, and dropping clones.

use std::time::Duration;

use store::{Error, ErrorKind, Kv, Store};

use crate::common::{both, file_store};

/// Asserts the result is `Closed`, naming `op`.
#[track_caller]
fn expect_closed<T: std::fmt::Debug>(result: store::Result<T>, op: &str) {
    match result {
        Err(e @ Error::Closed { .. }) => {
            assert!(e.is_closed());
            assert_eq!(e.kind(), ErrorKind::Closed);
            assert_eq!(e.op(), op);
        }
        other => panic!("{op}: expected Closed, got {other:?}"),
    }
}

/// Every data call of the store, each expected to fail with `Closed`.
fn assert_every_call_is_closed(store: &Store) {
    expect_closed(store.get("g", "k"), "Store::get");
    expect_closed(store.get_with_version("g", "k"), "Store::get_with_version");
    expect_closed(store.get_json::<String>("g", "k"), "Store::get_json");
    expect_closed(store.exists("g", "k"), "Store::exists");
    expect_closed(store.group_exists("g"), "Store::group_exists");
    expect_closed(store.set("g", "k", "v"), "Store::set");
    expect_closed(
        store.set_with_ttl("g", "k", "v", Duration::from_secs(1)),
        "Store::set_with_ttl",
    );
    expect_closed(store.set_json("g", "k", &1), "Store::set_json");
    expect_closed(store.set_if_version("g", "k", "v", None), "Store::set_if_version");
    expect_closed(store.increment("g", "k", 1), "Store::increment");
    expect_closed(store.delete("g", "k"), "Store::delete");
    expect_closed(store.delete_group("g"), "Store::delete_group");
    expect_closed(store.delete_prefix(""), "Store::delete_prefix");
    expect_closed(store.count("g"), "Store::count");
    expect_closed(store.count_all(""), "Store::count_all");
    expect_closed(store.get_all("g"), "Store::get_all");
    expect_closed(store.get_page("g", 0, 10), "Store::get_page");
    expect_closed(store.groups(""), "Store::groups");
    expect_closed(store.render("{{ k }}", "g"), "Store::render");
    expect_closed(store.get_split("g", "k", ","), "Store::get_split");
    expect_closed(store.get_fields("g", "k"), "Store::get_fields");
    expect_closed(store.purge_expired(), "Store::purge_expired");
    expect_closed(store.sync(), "Store::sync");
    // The feed's calls too, whether or not the store has a feed (a memory store has none by
    // default, and said `Unsupported` after close before h159).
    expect_closed(store.changes_since(0, 10), "Store::changes_since");
    expect_closed(store.last_seq(), "Store::last_seq");
    expect_closed(store.prune_changes(), "Store::prune_changes");
    let mut it = store.iter("g");
    expect_closed(it.next().expect("an error item"), "Store::iter");
    assert!(it.next().is_none(), "iter yields the error once");
    let mut it = store.groups_iter("");
    expect_closed(it.next().expect("an error item"), "Store::groups_iter");
    assert!(it.next().is_none(), "groups_iter yields the error once");
}

#[test]
fn after_close_every_data_call_is_closed() {
    for (kind, store, _, _dir) in both() {
        store.set("g", "k", "v").unwrap();
        assert!(!store.is_closed(), "{kind}");
        store.close().unwrap();
        assert!(store.is_closed(), "{kind}");
        assert_every_call_is_closed(&store);
        let msg = store.get("g", "k").unwrap_err().to_string();
        assert!(msg.starts_with("Store::get: "), "{msg}");
    }
}

#[test]
fn get_page_with_limit_zero_after_close_is_closed() {
    for (_, store, _, _dir) in both() {
        store.close().unwrap();
        expect_closed(store.get_page("g", 0, 0), "Store::get_page");
    }
}

#[test]
fn close_is_idempotent() {
    for (kind, store, _, _dir) in both() {
        store.close().unwrap();
        store.close().unwrap();
        store.close().unwrap();
        assert!(store.is_closed(), "{kind}");
    }
}

#[test]
fn close_through_one_clone_closes_every_clone() {
    for (kind, store, _, _dir) in both() {
        let clone = store.clone();
        clone.close().unwrap();
        assert!(store.is_closed(), "{kind}");
        assert_every_call_is_closed(&store);
    }
}

#[test]
fn an_iterator_created_before_close_fails_cleanly_after_it() {
    for (kind, store, _, _dir) in both() {
        for i in 0..300 {
            store.set("g", &format!("{i:03}"), "v").unwrap();
        }
        let mut it = store.iter("g");
        let first_chunk: Vec<_> = it.by_ref().take(256).collect::<Result<_, _>>().unwrap();
        assert_eq!(first_chunk.len(), 256, "{kind}");
        store.close().unwrap();
        expect_closed(it.next().expect("error for the next chunk"), "Store::iter");
        assert!(it.next().is_none(), "{kind}");
    }
}

#[test]
fn data_persists_after_close_and_reopen() {
    let f = file_store();
    f.store.set("g", "k", "v").unwrap();
    f.store.close().unwrap();
    let again = f.reopen();
    assert_eq!(again.get("g", "k").unwrap(), "v");
    assert!(!again.is_closed());
}

#[test]
fn dropping_clones_keeps_the_store_open_until_the_last_is_dropped() {
    let f = file_store();
    let wal = f.dir.path().join("state.db-wal");
    let first = f.reopen();
    first.set("g", "k", "v").unwrap();
    let second = first.clone();
    let third = first.clone();
    drop(first);
    second.set("g", "k2", "v2").unwrap();
    drop(second);
    assert!(!third.is_closed());
    assert_eq!(third.get("g", "k").unwrap(), "v");
    let moved = std::thread::spawn(move || {
        third.set("g", "k3", "v3").unwrap();
        third
    })
    .join()
    .unwrap();
    assert_eq!(moved.count("g").unwrap(), 3);
    drop(moved);
    // The fixture's own handle is still open; the data is all there.
    assert_eq!(f.store.count("g").unwrap(), 3);
    f.store.close().unwrap();
    // SQLite removes the write-ahead log only when the last connection to the file closes, so
    // this also shows that dropping `moved` (the last clone of the other store) closed it.
    assert!(!wal.exists(), "the last drop closed every connection");
}

#[test]
fn dropping_the_last_handle_closes_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let wal = dir.path().join("state.db-wal");
    let store = Store::open(&path).unwrap();
    let clone = store.clone();
    store.set("g", "k", "v").unwrap();
    assert!(wal.exists(), "WAL mode keeps a log while open");
    drop(store);
    assert!(wal.exists(), "one clone is still open");
    assert_eq!(clone.get("g", "k").unwrap(), "v");
    drop(clone);
    assert!(!wal.exists(), "dropping the last clone closed the database");
    assert_eq!(Store::open(&path).unwrap().get("g", "k").unwrap(), "v");
}

#[test]
fn sync_checkpoints_an_open_store() {
    let f = file_store();
    f.store.set("g", "k", "v").unwrap();
    f.store.sync().unwrap();
    let (m, _) = crate::common::memory_store();
    m.sync().unwrap();
}

#[test]
fn concurrent_closes_all_return_after_the_store_is_closed() {
    for round in 0..20 {
        let f = file_store();
        for i in 0..200 {
            f.store.set("g", &i.to_string(), &"v".repeat(1000)).unwrap();
        }
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(4));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let store = f.store.clone();
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    barrier.wait();
                    store.close().unwrap();
                    store.is_closed()
                })
            })
            .collect();
        for h in handles {
            assert!(
                h.join().unwrap(),
                "round {round}: close() returned Ok before the store was closed"
            );
        }
    }
}
