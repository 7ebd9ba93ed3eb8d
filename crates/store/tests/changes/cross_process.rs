//! SPEC §5.3 "Readable by any process": this test binary re-executes itself as a second OS
//! process (the ignored helper test `feed_child`, activated by the `STORE_FEED_CHILD` variable)
//! which follows the change feed of the same file and reports what it read as one JSON line.

use std::process::Command;
use std::time::{Duration, Instant};

use store::{Error, EventKind, Kv, Store, StoreConfig};

use crate::common::{ChildProcess, Fixture, child_test_command, file_store};

/// Database path for the child; its presence turns `feed_child` on.
const CHILD_ENV: &str = "STORE_FEED_CHILD";
/// When set, the child keeps polling until it has read a change with this key.
const UNTIL_ENV: &str = "STORE_FEED_CHILD_UNTIL";
/// When set to `n`, the child writes `n` sets to group `STORE_FEED_CHILD_GROUP` instead of
/// reading, and reports the versions it got.
const WRITES_ENV: &str = "STORE_FEED_CHILD_WRITES";
const GROUP_ENV: &str = "STORE_FEED_CHILD_GROUP";
/// Prefix of the child's report lines: `READY`, then `RESULT <json>`.
const REPORT: &str = "FEED_CHILD ";
const CHANGES: usize = 500;
const MARKER: &str = "final-marker";

/// `(kind, group, key)` of a change, as both processes describe it.
type Row = (String, String, Option<String>);

#[test]
#[ignore = "helper: acts only as the child process of the cross-process feed tests"]
fn feed_child() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    if let Ok(writes) = std::env::var(WRITES_ENV) {
        return child_writer(&path, writes.parse().unwrap());
    }
    let until = std::env::var(UNTIL_ENV).ok();
    let store = Store::open_with(StoreConfig::file(&path).with_purge_interval(Duration::ZERO)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut cursor = 0;
    let mut seqs = Vec::new();
    let mut rows: Vec<Row> = Vec::new();
    let mut gap = false;
    let mut polls = 0u64;
    let mut announced = false;
    loop {
        // A small page size, so following the feed takes several pages.
        let batch = store.changes_since(cursor, 64).unwrap();
        polls += 1;
        gap |= batch.gap;
        assert!(batch.changes.iter().all(|c| c.seq > cursor));
        cursor = batch.next_seq;
        let empty = batch.changes.is_empty();
        for c in batch.changes {
            seqs.push(c.seq);
            rows.push((c.kind.as_str().to_string(), c.group, c.key));
        }
        if !announced {
            println!("{REPORT}READY");
            announced = true;
        }
        let finished = match &until {
            None => empty,
            Some(marker) => rows.iter().any(|(_, _, k)| k.as_deref() == Some(marker.as_str())),
        };
        if finished {
            break;
        }
        assert!(Instant::now() < deadline, "child: no end of feed within 30 s");
        if empty {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let line = serde_json::json!({ "seqs": seqs, "rows": rows, "gap": gap, "polls": polls });
    println!("{REPORT}RESULT {line}");
}

/// The child's writer mode: `n` sets, then the versions as JSON. The store closes on return.
fn child_writer(path: &str, n: usize) {
    let group = std::env::var(GROUP_ENV).unwrap_or_else(|_| "child".into());
    let store = Store::open_with(StoreConfig::file(path).with_purge_interval(Duration::ZERO)).unwrap();
    println!("{REPORT}READY");
    let versions: Vec<u64> = (0..n)
        .map(|i| paced_write(&store, &group, &format!("c{i}"), i))
        .collect();
    store.close().unwrap();
    println!("{REPORT}RESULT {}", serde_json::json!({ "versions": versions }));
}

/// One write of the two-writer tests: every tenth is a transaction, and every fifth is followed
/// by a short pause, so two writers hand the SQLite write lock back and forth (SQLite's busy
/// handler is not fair: a writer in a tight loop would otherwise keep the lock to the end).
fn paced_write(store: &Store, group: &str, key: &str, i: usize) -> u64 {
    let v = if i % 10 == 9 {
        store.transaction(|tx| tx.set(group, key, "v")).unwrap()
    } else {
        store.set(group, key, "v").unwrap()
    };
    if i % 5 == 4 {
        std::thread::sleep(Duration::from_millis(1));
    }
    v
}

/// What the parent committed, in commit order, and the versions its sets returned.
struct Written {
    rows: Vec<Row>,
    /// (index into `rows`, version returned to the writer) for every `Set`.
    set_versions: Vec<(usize, u64)>,
}

impl Written {
    fn push(&mut self, kind: EventKind, group: &str, key: Option<&str>) {
        self.rows.push((
            kind.as_str().to_string(),
            group.to_string(),
            key.map(str::to_string),
        ));
    }

    fn set(&mut self, group: &str, key: &str, version: u64) {
        self.set_versions.push((self.rows.len(), version));
        self.push(EventKind::Set, group, Some(key));
    }
}

/// Writes exactly `CHANGES` changes: plain sets, transactions of three sets, deletes, group
/// deletes, lazily expired entries, and rolled-back transactions (which write nothing); the last
/// change is a set of `MARKER`. `pause` runs every 50 changes.
fn write_workload(store: &Store, mut pause: impl FnMut()) -> Written {
    let mut w = Written {
        rows: Vec::new(),
        set_versions: Vec::new(),
    };
    let mut i = 0usize;
    let mut next_pause = 50;
    while w.rows.len() < CHANGES - 1 {
        let left = CHANGES - 1 - w.rows.len();
        let group = format!("g{}", i % 7);
        let key = format!("k{i}");
        match i % 11 {
            3 if left >= 3 => {
                let versions = store
                    .transaction(|tx| {
                        Ok([
                            tx.set(&group, &format!("{key}-a"), "a")?,
                            tx.set("tx-group", &format!("{key}-b"), "b")?,
                            tx.set(&group, &format!("{key}-c"), "c")?,
                        ])
                    })
                    .unwrap();
                w.set(&group, &format!("{key}-a"), versions[0]);
                w.set("tx-group", &format!("{key}-b"), versions[1]);
                w.set(&group, &format!("{key}-c"), versions[2]);
            }
            5 => {
                let err = store
                    .transaction(|tx| {
                        tx.set(&group, "rolled-back", "x")?;
                        tx.delete_prefix("")?;
                        Err::<(), _>(Error::InvalidInput {
                            op: "test",
                            field: "rollback",
                            reason: "on purpose".into(),
                        })
                    })
                    .unwrap_err();
                assert_eq!(err.field(), Some("rollback"));
            }
            7 if i > 11 => {
                // Delete a key written by an earlier plain set (i - 11 had the same residue 7,
                // so use i - 10, a plain set of residue 8).
                let victim = format!("k{}", i - 10);
                let victim_group = format!("g{}", (i - 10) % 7);
                assert!(
                    store.delete(&victim_group, &victim).unwrap(),
                    "{victim_group}/{victim}"
                );
                w.push(EventKind::Delete, &victim_group, Some(&victim));
            }
            9 if left >= 2 => {
                let v = store.set_with_ttl(&group, &key, "gone", Duration::ZERO).unwrap();
                w.set(&group, &key, v);
                assert!(store.get(&group, &key).unwrap_err().is_not_found());
                w.push(EventKind::Expired, &group, Some(&key));
            }
            10 if i.is_multiple_of(3) && left >= 2 => {
                let v = store.set("doomed", &key, "x").unwrap();
                w.set("doomed", &key, v);
                assert_eq!(store.delete_group("doomed").unwrap(), 1);
                w.push(EventKind::DeleteGroup, "doomed", None);
            }
            _ => {
                let v = store.set(&group, &key, &format!("value-{i}")).unwrap();
                w.set(&group, &key, v);
            }
        }
        i += 1;
        if w.rows.len() >= next_pause {
            next_pause += 50;
            pause();
        }
    }
    let v = store.set("marker", MARKER, "done").unwrap();
    w.set("marker", MARKER, v);
    assert_eq!(w.rows.len(), CHANGES);
    w
}

fn child_writer_command(f: &Fixture, writes: usize, group: &str) -> Command {
    let mut cmd = child_command(f, None);
    cmd.env(WRITES_ENV, writes.to_string()).env(GROUP_ENV, group);
    cmd
}

fn child_versions(result: &serde_json::Value) -> Vec<u64> {
    serde_json::from_value(result["versions"].clone()).unwrap()
}

fn child_command(f: &Fixture, until: Option<&str>) -> Command {
    let mut cmd = child_test_command("cross_process::feed_child");
    cmd.env(CHILD_ENV, f.path());
    match until {
        Some(marker) => cmd.env(UNTIL_ENV, marker),
        None => cmd.env_remove(UNTIL_ENV),
    };
    cmd.env_remove(WRITES_ENV).env_remove(GROUP_ENV);
    cmd
}

/// Runs the child: waits for its READY (then calls `on_ready`) and returns its result.
fn read_child(cmd: Command, on_ready: impl FnOnce()) -> serde_json::Value {
    let mut child = ChildProcess::spawn(cmd, REPORT);
    child.wait_for("READY");
    on_ready();
    let lines = child.finish();
    let result = lines.iter().find_map(|l| l.strip_prefix("RESULT "));
    let result = result.unwrap_or_else(|| panic!("child printed no result: {lines:?}"));
    serde_json::from_str(result).unwrap()
}

fn compare(child: &serde_json::Value, written: &Written) {
    assert_eq!(child["gap"], false, "the child saw a gap");
    let seqs: Vec<u64> = serde_json::from_value(child["seqs"].clone()).unwrap();
    let rows: Vec<Row> = serde_json::from_value(child["rows"].clone()).unwrap();
    assert_eq!(rows.len(), CHANGES, "the child saw every committed change");
    for (i, (got, want)) in rows.iter().zip(&written.rows).enumerate() {
        assert_eq!(got, want, "change #{i} differs");
    }
    for pair in seqs.windows(2) {
        assert_eq!(
            pair[1],
            pair[0] + 1,
            "the sequence of changes has a hole: {} then {}",
            pair[0],
            pair[1]
        );
    }
    for &(index, version) in &written.set_versions {
        assert_eq!(
            seqs[index], version,
            "change #{index}: seq differs from the version the writer got"
        );
    }
}

#[test]
fn another_process_reads_every_committed_change_in_order_without_gaps() {
    let f = file_store();
    let written = write_workload(&f.store, || {});
    let child = child_command(&f, None);
    let result = read_child(child, || {});
    compare(&result, &written);
}

#[test]
fn another_process_following_the_feed_while_it_is_written_sees_every_change_in_order() {
    let f = file_store();
    let child = child_command(&f, Some(MARKER));
    let store = f.store.clone();
    let mut writer = None;
    // Start writing only once the child has opened the file and read the (empty) feed.
    let result = read_child(child, || {
        writer = Some(std::thread::spawn(move || {
            write_workload(&store, || std::thread::sleep(Duration::from_millis(5)))
        }));
    });
    let written = writer
        .expect("the writer started")
        .join()
        .expect("the writer finished");
    compare(&result, &written);
    let polls = result["polls"].as_u64().unwrap();
    assert!(
        polls > 1,
        "the child followed the feed over several polls ({polls})"
    );
}

#[test]
fn versions_increase_in_commit_order_when_processes_take_turns_writing() {
    // Parent, child process, parent, another child process: each one's versions are above
    // everything committed before it (including after a child closes and hands back the unused
    // part of its reserved numbers).
    let f = file_store();
    let mut order: Vec<u64> = (0..10)
        .map(|i| f.store.set("parent", &format!("p{i}"), "v").unwrap())
        .collect();
    let first = read_child(child_writer_command(&f, 10, "child-1"), || {});
    order.extend(child_versions(&first));
    order.extend((10..20).map(|i| f.store.set("parent", &format!("p{i}"), "v").unwrap()));
    let second = read_child(child_writer_command(&f, 10, "child-2"), || {});
    order.extend(child_versions(&second));
    order.extend((20..30).map(|i| f.store.set("parent", &format!("p{i}"), "v").unwrap()));
    assert_eq!(order.len(), 50);
    for pair in order.windows(2) {
        assert!(
            pair[0] < pair[1],
            "commit order broken: {} then {} in {order:?}",
            pair[0],
            pair[1]
        );
    }
    let seqs: Vec<u64> = crate::support::all_changes_since(&f.store, 0)
        .iter()
        .map(|c| c.seq)
        .collect();
    assert_eq!(
        seqs, order,
        "the feed lists every write of both processes in commit order"
    );
}

#[test]
fn two_processes_writing_at_once_get_unique_versions_and_one_ordered_feed() {
    const EACH: usize = 300;
    let f = file_store();
    let child = child_writer_command(&f, EACH, "child");
    let store = f.store.clone();
    let mut parent = None;
    let result = read_child(child, || {
        parent = Some(std::thread::spawn(move || {
            (0..EACH)
                .map(|i| paced_write(&store, "parent", &format!("p{i}"), i))
                .collect::<Vec<u64>>()
        }));
    });
    let parent_versions = parent.expect("parent writer started").join().unwrap();
    let child_versions = child_versions(&result);
    assert_eq!((parent_versions.len(), child_versions.len()), (EACH, EACH));
    crate::support::assert_strictly_increasing(&parent_versions);
    crate::support::assert_strictly_increasing(&child_versions);
    let mut all: Vec<u64> = parent_versions.iter().chain(&child_versions).copied().collect();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), 2 * EACH, "versions are unique across processes");
    let changes = crate::support::all_changes_since(&f.store, 0);
    let seqs: Vec<u64> = changes.iter().map(|c| c.seq).collect();
    assert_eq!(
        seqs, all,
        "one feed, in seq order, with every write of both processes"
    );
    let keys_of = |group: &str| -> Vec<String> {
        changes
            .iter()
            .filter(|c| c.group == group)
            .map(|c| c.key.clone().unwrap())
            .collect()
    };
    assert_eq!(
        keys_of("parent"),
        (0..EACH).map(|i| format!("p{i}")).collect::<Vec<_>>()
    );
    assert_eq!(
        keys_of("child"),
        (0..EACH).map(|i| format!("c{i}")).collect::<Vec<_>>()
    );
    let switches = changes.windows(2).filter(|w| w[0].group != w[1].group).count();
    eprintln!("two writer processes: the feed switches writer {switches} times");
    // Each Set's seq is the version its writer got.
    for c in &changes {
        let v = f
            .store
            .get_with_version(&c.group, c.key.as_deref().unwrap())
            .unwrap()
            .version;
        assert_eq!(v, c.seq);
    }
}
