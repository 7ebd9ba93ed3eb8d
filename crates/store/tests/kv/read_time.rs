//! Reads of several rows judge them all at one time, read after the read's snapshot is taken
//! (SPEC §8: each call reads one snapshot). A time read before it could count an entry that
//! had expired by the snapshot together with the entry another process wrote because it had.
//!
//! [`HookClock`] stands for the other process: the store reads the time `T - 1`, and before
//! the store's next step another handle on the file (a separate connection) writes a key at
//! `T`, the moment `old` (expiring at `T`) expired. A read whose snapshot was taken before it
//! read the clock cannot see that write; one that read the clock first sees `old` still live
//! at `T - 1` beside `new`, a state that never existed.

use std::time::Duration;

use store::{Kv, Store, StoreConfig};

use crate::common::{HookClock, racing_pair};

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
    let clock = HookClock::new(T - 1_000);
    let memory = Store::open_with(
        StoreConfig::memory()
            .with_clock(clock.clone())
            .with_purge_interval(Duration::ZERO),
    )
    .unwrap();
    memory
        .set_with_ttl("g", "old", "1", Duration::from_millis(1_000))
        .unwrap();
    clock.set(T - 1);
    assert_eq!(memory.count("g").unwrap(), 1);
    assert_eq!(memory.get_all("g").unwrap().len(), 1);
    clock.set(T);
    assert_eq!(memory.count("g").unwrap(), 0);
    assert_eq!(memory.groups("").unwrap(), Vec::<String>::new());
}
