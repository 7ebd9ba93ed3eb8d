//! SPEC §3.3 and §4 under load: eight threads of mixed operations (including transactions) on
//! one file store end in exactly the state a per-thread sequential replay predicts, a shared
//! counter loses no increment, and readers never wait for a writer's transaction.

use std::collections::BTreeMap;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use store::{Error, EventKind, Kv, Store, WatchOptions};

use crate::common::{HeldTransaction, Rng, file_store, within};
use crate::support::{all_changes_since, assert_strictly_increasing, change_summary, drain, summary};

const THREADS: usize = 8;
const OPS_PER_THREAD: usize = 10_000;
const KEYS: u64 = 16;
const LIMIT: Duration = Duration::from_secs(120);

/// The expected contents of one thread's group: key → (value, version if known).
type Model = BTreeMap<String, (String, Option<u64>)>;

#[track_caller]
fn unexpected(what: &str, err: &Error) -> ! {
    panic!("{what}: unexpected error {err} ({:?})", err.kind())
}

/// Runs one random single-key operation on `h` (the store or a transaction), checks its result
/// against `model` (the sequential replay of this thread) and updates the model. Versions of
/// writes are appended to `versions`.
fn step(h: &impl Kv, rng: &mut Rng, group: &str, model: &mut Model, versions: &mut Vec<u64>) {
    let key = format!("k{}", rng.below(KEYS));
    let roll = rng.below(100);
    match roll {
        0..=29 => {
            let value = rng.below(1000).to_string();
            let v = h
                .set(group, &key, &value)
                .unwrap_or_else(|e| unexpected("set", &e));
            versions.push(v);
            model.insert(key, (value, Some(v)));
        }
        30..=49 => match (h.get(group, &key), model.get(&key)) {
            (Ok(got), Some((want, _))) => assert_eq!(&got, want, "get {group}/{key}"),
            (Err(e), None) if e.is_not_found() => {}
            (got, want) => panic!("get {group}/{key}: got {got:?}, model has {want:?}"),
        },
        50..=59 => {
            let removed = h.delete(group, &key).unwrap_or_else(|e| unexpected("delete", &e));
            assert_eq!(removed, model.remove(&key).is_some(), "delete {group}/{key}");
        }
        60..=74 => {
            let delta = rng.below(11) as i64 - 5;
            let base: i64 = model.get(&key).map_or(0, |(v, _)| v.parse().unwrap());
            let got = h
                .increment(group, &key, delta)
                .unwrap_or_else(|e| unexpected("increment", &e));
            assert_eq!(got, base + delta, "increment {group}/{key}");
            model.insert(key, (got.to_string(), None));
        }
        75..=84 => {
            let value = rng.below(1000).to_string();
            if rng.below(2) == 0 {
                // ZERO = already expired: written but never visible.
                let v = h
                    .set_with_ttl(group, &key, &value, Duration::ZERO)
                    .unwrap_or_else(|e| unexpected("ttl", &e));
                versions.push(v);
                model.remove(&key);
            } else {
                // The manual clock never moves in this test, so one hour is "forever".
                let v = h
                    .set_with_ttl(group, &key, &value, Duration::from_secs(3600))
                    .unwrap_or_else(|e| unexpected("ttl", &e));
                versions.push(v);
                model.insert(key, (value, Some(v)));
            }
        }
        _ => {
            let value = format!("{}", rng.below(1000));
            let current = model.get(&key).cloned();
            let stale = rng.below(3) == 0;
            let expected = match &current {
                None if stale => Some(1), // nothing live: any version conflicts
                None => None,
                Some(_) if stale => Some(0),
                Some((_, Some(v))) => Some(*v),
                Some((_, None)) => {
                    let live = h
                        .get_with_version(group, &key)
                        .unwrap_or_else(|e| unexpected("get_with_version", &e));
                    Some(live.version)
                }
            };
            match h.set_if_version(group, &key, &value, expected) {
                Ok(v) => {
                    assert!(!stale, "stale CAS on {group}/{key} succeeded");
                    versions.push(v);
                    model.insert(key, (value, Some(v)));
                }
                Err(e) if e.is_conflict() => assert!(stale, "fresh CAS on {group}/{key} conflicted: {e}"),
                Err(e) => unexpected("set_if_version", &e),
            }
        }
    }
}

/// One thread: 10,000 operations, about a fifth of them batched into transactions (some of
/// which roll back). Returns the model and the versions it saw committed.
fn worker(store: &Store, t: usize) -> (Model, Vec<u64>) {
    let group = format!("t{t}");
    let mut rng = Rng::new(t as u64 + 1);
    let mut model = Model::new();
    let mut versions = Vec::new();
    let mut done = 0;
    while done < OPS_PER_THREAD {
        if rng.below(20) == 0 {
            let n = (2 + rng.below(6) as usize).min(OPS_PER_THREAD - done);
            let commit = rng.below(5) != 0;
            let mut staged = model.clone();
            let mut tx_versions = Vec::new();
            let outcome = store.transaction(|tx| {
                for _ in 0..n {
                    step(tx, &mut rng, &group, &mut staged, &mut tx_versions);
                }
                if commit {
                    Ok(())
                } else {
                    Err(Error::InvalidInput {
                        op: "test",
                        field: "rollback",
                        reason: "on purpose".into(),
                    })
                }
            });
            match outcome {
                Ok(()) => {
                    model = staged;
                    versions.extend(tx_versions);
                }
                Err(e) if !commit && e.field() == Some("rollback") => {}
                Err(e) => unexpected("transaction", &e),
            }
            done += n;
        } else {
            step(store, &mut rng, &group, &mut model, &mut versions);
            done += 1;
        }
    }
    (model, versions)
}

#[test]
fn eight_threads_of_mixed_operations_end_in_the_state_a_sequential_replay_predicts() {
    let f = file_store();
    // Large enough for every event of the run, so none is dropped.
    let all = f
        .store
        .watch_with("*", WatchOptions { capacity: 200_000 })
        .unwrap();
    let store = f.store.clone();
    let start = Instant::now();
    let results = within(LIMIT, move || {
        let barrier = Arc::new(Barrier::new(THREADS));
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let store = store.clone();
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    barrier.wait();
                    worker(&store, t)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect::<Vec<_>>()
    });
    eprintln!("8 x 10,000 mixed operations took {:?}", start.elapsed());
    let mut all_versions = Vec::new();
    for (t, (model, versions)) in results.iter().enumerate() {
        let group = format!("t{t}");
        assert_strictly_increasing(versions);
        all_versions.extend(versions.iter().copied());
        let expected: BTreeMap<String, String> =
            model.iter().map(|(k, (v, _))| (k.clone(), v.clone())).collect();
        assert_eq!(
            f.store.get_all(&group).unwrap(),
            expected,
            "final state of {group}"
        );
        for (key, (_, version)) in model {
            if let Some(version) = version {
                assert_eq!(
                    f.store.get_with_version(&group, key).unwrap().version,
                    *version,
                    "{group}/{key}"
                );
            }
        }
    }
    all_versions.sort_unstable();
    let before = all_versions.len();
    all_versions.dedup();
    assert_eq!(all_versions.len(), before, "versions are unique across threads");
    // Every committed mutation is one event and one change row, with the same seq, in the same
    // (commit) order; rolled-back transactions left neither.
    let events = drain(&all);
    assert_eq!(all.dropped(), 0);
    let changes = all_changes_since(&f.store, 0);
    assert_eq!(summary(&events), change_summary(&changes));
    let event_seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    let change_seqs: Vec<u64> = changes.iter().map(|c| c.seq).collect();
    assert_eq!(event_seqs, change_seqs);
    assert_strictly_increasing(&event_seqs);
    // Every version a writer got is a Set in the feed.
    let set_seqs: Vec<u64> = changes
        .iter()
        .filter(|c| c.kind == EventKind::Set)
        .map(|c| c.seq)
        .collect();
    assert!(all_versions.iter().all(|v| set_seqs.binary_search(v).is_ok()));
}

#[test]
fn eight_threads_incrementing_one_counter_1000_times_end_at_8000() {
    let f = file_store();
    let store = f.store.clone();
    let results = within(LIMIT, move || {
        let barrier = Arc::new(Barrier::new(8));
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let store = store.clone();
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    barrier.wait();
                    (0..1000)
                        .map(|_| store.increment("shared", "counter", 1).unwrap())
                        .collect::<Vec<i64>>()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect::<Vec<_>>()
    });
    assert_eq!(f.store.get("shared", "counter").unwrap(), "8000");
    // Every intermediate result was returned to exactly one caller.
    let mut all: Vec<i64> = results.into_iter().flatten().collect();
    all.sort_unstable();
    assert_eq!(all, (1..=8000).collect::<Vec<i64>>());
}

/// The writer holds its transaction until the reads are done, so a read that waited for it
/// would wait out the 5 s busy timeout and fail or come back late; a loaded machine cannot make
/// the writer finish first and let a waiting read pass.
#[test]
fn a_get_from_another_thread_completes_while_a_transaction_holds_the_writer() {
    let f = file_store();
    f.store.set("g", "k", "old").unwrap();
    let writer = HeldTransaction::start(&f.store, "g", "k", "new");
    let start = Instant::now();
    let value = f.store.get("g", "k");
    let count = f.store.count_all("");
    let elapsed = start.elapsed();
    let writer_done = writer.is_finished();
    writer.release();
    assert_eq!(value.unwrap(), "old", "the read sees the last committed value");
    assert_eq!(count.unwrap(), 1);
    assert!(!writer_done, "the read happened while the transaction was open");
    assert!(
        elapsed < Duration::from_secs(4),
        "the read waited {elapsed:?}, as for the writer's busy timeout"
    );
    assert_eq!(f.store.get("g", "k").unwrap(), "new");
}
