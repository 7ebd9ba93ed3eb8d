//! SPEC §3.3: concurrent readers and writers on a file store (and a shared memory store).

use std::collections::BTreeSet;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use store::{Kv, Store};

use crate::common::{file_store, memory_store, within};

const LIMIT: Duration = Duration::from_secs(60);

fn writers_and_readers(store: Store) {
    within(LIMIT, move || {
        let barrier = Arc::new(Barrier::new(20));
        let mut handles = Vec::new();
        for w in 0..10 {
            let store = store.clone();
            let barrier = barrier.clone();
            handles.push(std::thread::spawn(move || {
                barrier.wait();
                for i in 0..100 {
                    store
                        .set(&format!("group-{w}"), &format!("key-{i:03}"), &format!("{w}:{i}"))
                        .unwrap();
                }
                Vec::new()
            }));
        }
        for r in 0..10 {
            let store = store.clone();
            let barrier = barrier.clone();
            handles.push(std::thread::spawn(move || {
                barrier.wait();
                let mut errors = Vec::new();
                for i in 0..100 {
                    let (g, k) = (format!("group-{}", (r + i) % 10), format!("key-{i:03}"));
                    match store.get(&g, &k) {
                        Ok(v) => assert_eq!(v, format!("{}:{i}", (r + i) % 10), "a read saw a torn value"),
                        Err(e) => errors.push(e),
                    }
                    let _ = store.count(&g).unwrap();
                }
                errors
            }));
        }
        for h in handles {
            for e in h.join().unwrap() {
                assert!(e.is_not_found(), "readers may only see NotFound, got {e}");
            }
        }
        for w in 0..10 {
            assert_eq!(store.count(&format!("group-{w}")).unwrap(), 100);
        }
        assert_eq!(store.count_all("group-").unwrap(), 1000);
    });
}

#[test]
fn ten_writers_and_ten_readers_see_only_not_found_and_leave_100_keys_per_group() {
    let f = file_store();
    writers_and_readers(f.store.clone());
}

#[test]
fn ten_writers_and_ten_readers_on_a_memory_store() {
    let (store, _) = memory_store();
    writers_and_readers(store);
}

#[test]
fn ten_parallel_get_all_each_see_50_entries() {
    let f = file_store();
    for i in 0..50 {
        f.store.set("g", &format!("k{i:02}"), &i.to_string()).unwrap();
    }
    let store = f.store.clone();
    within(LIMIT, move || {
        let barrier = Arc::new(Barrier::new(10));
        let handles: Vec<_> = (0..10)
            .map(|_| {
                let store = store.clone();
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    barrier.wait();
                    (0..20)
                        .map(|_| store.get_all("g").unwrap().len())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            assert!(h.join().unwrap().iter().all(|&n| n == 50));
        }
    });
}

#[test]
fn parallel_set_and_delete_group_do_not_deadlock() {
    let f = file_store();
    let store = f.store.clone();
    within(LIMIT, move || {
        std::thread::scope(|s| {
            for t in 0..4 {
                let store = &store;
                s.spawn(move || {
                    for i in 0..200 {
                        store.set("shared", &format!("{t}-{i}"), "v").unwrap();
                    }
                });
            }
            for _ in 0..2 {
                let store = &store;
                s.spawn(move || {
                    for _ in 0..100 {
                        store.delete_group("shared").unwrap();
                        let _ = store.count("shared").unwrap();
                        let _ = store.get_all("shared").unwrap();
                    }
                });
            }
            let store = &store;
            s.spawn(move || {
                for _ in 0..50 {
                    store.delete_prefix("sha").unwrap();
                    let _ = store.groups("").unwrap();
                }
            });
        });
        // Consistent afterwards: count matches what get_all and iter see.
        let n = store.count("shared").unwrap();
        assert_eq!(store.get_all("shared").unwrap().len() as u64, n);
        assert_eq!(store.iter("shared").count() as u64, n);
        store.delete_group("shared").unwrap();
        assert_eq!(store.count_all("").unwrap(), 0);
    });
}

#[test]
fn a_write_that_returned_is_visible_to_every_later_read_on_any_thread() {
    let f = file_store();
    let store = f.store.clone();
    within(LIMIT, move || {
        for i in 0..200 {
            let v = store.set("g", "k", &i.to_string()).unwrap();
            let reader = store.clone();
            let seen = std::thread::spawn(move || reader.get_with_version("g", "k").unwrap())
                .join()
                .unwrap();
            assert_eq!((seen.value, seen.version), (i.to_string(), v));
        }
    });
}

#[test]
fn iteration_during_concurrent_writes_stays_ascending_without_repeats() {
    let f = file_store();
    for i in 0..1000 {
        f.store.set("g", &format!("k{i:04}"), "v").unwrap();
    }
    let store = f.store.clone();
    within(LIMIT, move || {
        std::thread::scope(|s| {
            let writer = &store;
            s.spawn(move || {
                for i in 0..1000 {
                    if i % 2 == 0 {
                        writer.delete("g", &format!("k{i:04}")).unwrap();
                    } else {
                        writer.set("g", &format!("k{i:04}x"), "new").unwrap();
                    }
                }
            });
            for _ in 0..5 {
                let keys: Vec<String> = store.iter("g").map(|e| e.unwrap().key).collect();
                assert!(keys.windows(2).all(|w| w[0] < w[1]), "strictly ascending");
                assert_eq!(keys.iter().collect::<BTreeSet<_>>().len(), keys.len());
                // Keys that are never touched are always seen.
                for i in (1..1000).step_by(2) {
                    assert!(keys.binary_search(&format!("k{i:04}")).is_ok(), "k{i:04} missing");
                }
            }
        });
    });
}

#[test]
fn many_groups_are_written_concurrently_across_two_handles() {
    let f = file_store();
    let a = f.store.clone();
    let b = f.reopen();
    within(LIMIT, move || {
        std::thread::scope(|s| {
            for (t, store) in [&a, &b, &a, &b].into_iter().enumerate() {
                s.spawn(move || {
                    for i in 0..50 {
                        store.set(&format!("h{t}"), &i.to_string(), "v").unwrap();
                        store.increment("shared", "n", 1).unwrap();
                    }
                });
            }
        });
        assert_eq!(a.get("shared", "n").unwrap(), "200");
        assert_eq!(b.count_all("h").unwrap(), 200);
    });
}

#[test]
fn half_of_concurrent_writes_with_a_50ms_ttl_leave_25_per_group() {
    let f = file_store();
    let store = f.store.clone();
    let clock = f.clock.clone();
    within(LIMIT, move || {
        std::thread::scope(|s| {
            for w in 0..10 {
                let store = &store;
                s.spawn(move || {
                    let group = format!("ttl-{w}");
                    for i in 0..50 {
                        let key = format!("k{i:02}");
                        if i % 2 == 0 {
                            store
                                .set_with_ttl(&group, &key, "short", Duration::from_millis(50))
                                .unwrap();
                        } else {
                            store.set(&group, &key, "long").unwrap();
                        }
                    }
                });
            }
        });
        for w in 0..10 {
            assert_eq!(store.count(&format!("ttl-{w}")).unwrap(), 50);
        }
        clock.advance(Duration::from_millis(50));
        for w in 0..10 {
            let group = format!("ttl-{w}");
            assert_eq!(store.count(&group).unwrap(), 25, "{group}");
            assert!(store.get_all(&group).unwrap().values().all(|v| v == "long"));
        }
        assert_eq!(store.purge_expired().unwrap(), 250);
        assert_eq!(store.count_all("ttl-").unwrap(), 250);
    });
}

#[test]
fn a_file_store_with_zero_readers_reads_through_the_writer() {
    let f = crate::common::file_store_with(|mut c| {
        c.readers = 0;
        c
    });
    let store = f.store.clone();
    within(LIMIT, move || {
        std::thread::scope(|s| {
            for t in 0..4 {
                let store = &store;
                s.spawn(move || {
                    for i in 0..50 {
                        store.set("g", &format!("{t}-{i}"), "v").unwrap();
                        assert_eq!(store.get("g", &format!("{t}-{i}")).unwrap(), "v");
                    }
                });
            }
        });
        assert_eq!(store.count("g").unwrap(), 200);
        assert_eq!(store.iter("g").count(), 200);
    });
}
