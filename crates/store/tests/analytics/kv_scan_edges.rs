//! The chunked `kv_entries` scan of a file store at its edges (h176's attacks): rows of every
//! type another program wrote, chunk boundaries, one `now` and one snapshot per scan, early
//! ended and dropped scans, many scans at once, closes, and a store file renamed, replaced,
//! deleted or reached by a relative path after a change of directory.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use rusqlite::types::ValueRef;
use store::analytics::{Analytics, Value};
use store::{ErrorKind, Kv, Store, StoreConfig};

use crate::common::{
    START_MS, file_store, file_store_with, holding_old, memory_store, racing_pair_in, raw, raw_built_file,
    within,
};
use crate::support::{fill, in_own_process, scalar, text};

fn lossy(v: ValueRef<'_>) -> String {
    match v {
        ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(r) => r.to_string(),
        ValueRef::Blob(b) => String::from_utf8_lossy(b).into_owned(),
        ValueRef::Null => String::new(),
    }
}

/// Multiset of (group, key) decoded as the store decodes them, of rows live at `now`.
fn raw_live(path: &Path, now: i64) -> BTreeMap<(String, String), usize> {
    let conn = raw(path);
    let mut stmt = conn
        .prepare("SELECT group_name, entry_key FROM entries WHERE expires_at IS NULL OR expires_at > ?1")
        .unwrap();
    let mut rows = stmt.query([now]).unwrap();
    let mut out = BTreeMap::new();
    while let Some(r) = rows.next().unwrap() {
        *out.entry((lossy(r.get_ref(0).unwrap()), lossy(r.get_ref(1).unwrap())))
            .or_insert(0) += 1;
    }
    out
}

/// (group, key) -> how many times `view` returns it.
pub fn scanned(db: &Analytics, view: &str) -> BTreeMap<(String, String), usize> {
    let rows = db
        .query(&format!("SELECT group_name, entry_key FROM {view}"), &[])
        .unwrap();
    let mut out = BTreeMap::new();
    for r in rows.rows {
        let (Value::Text(g), Value::Text(k)) = (&r[0], &r[1]) else {
            panic!("non-text row {r:?}")
        };
        *out.entry((g.clone(), k.clone())).or_insert(0) += 1;
    }
    out
}

/// One query reading `kv_entries` `n` times: `n` scans at once.
fn union_of_scans(n: usize) -> String {
    vec!["SELECT entry_key FROM kv_entries"; n].join(" UNION ALL ")
}

fn total(m: &BTreeMap<(String, String), usize>) -> usize {
    m.values().sum()
}

/// This process's open descriptors on files under `dir` (other tests' files do not count).
fn open_fds(dir: &Path) -> usize {
    fd_targets()
        .iter()
        .filter(|t| Path::new(t).starts_with(dir))
        .count()
}

/// Inserts foreign rows of every storable type into `entries`, `n` of each shape.
fn insert_foreign(path: &Path, n: usize, now: i64) {
    let mut conn = raw(path);
    let tx = conn.transaction().unwrap();
    {
        let mut text = tx
            .prepare("INSERT INTO entries (group_name, entry_key, entry_value, expires_at, version) VALUES (?1, ?2, 'v', ?3, ?4)")
            .unwrap();
        let mut blob_group = tx
            .prepare("INSERT INTO entries (group_name, entry_key, entry_value, expires_at, version) VALUES (CAST(?1 AS BLOB), ?2, 'v', ?3, ?4)")
            .unwrap();
        let mut bad_text = tx
            .prepare("INSERT INTO entries (group_name, entry_key, entry_value, expires_at, version) VALUES (CAST(x'ff41' AS TEXT), CAST(?1 AS TEXT) || CAST(x'fe' AS TEXT), 'v', ?2, ?3)")
            .unwrap();
        for i in 0..n {
            // expiry shapes: NULL, REAL just above now (live), REAL just below (expired),
            // exactly now (expired), TEXT (never expires)
            let exp: rusqlite::types::Value = match i % 6 {
                0 => rusqlite::types::Value::Null,
                1 => rusqlite::types::Value::Real(now as f64 + 0.5),
                2 => rusqlite::types::Value::Real(now as f64 - 0.5),
                3 => rusqlite::types::Value::Integer(now),
                4 => rusqlite::types::Value::Text("never".into()),
                _ => rusqlite::types::Value::Integer(now + 1),
            };
            let ver: rusqlite::types::Value = match i % 4 {
                0 => rusqlite::types::Value::Integer(-5),
                1 => rusqlite::types::Value::Real(3.7),
                2 => rusqlite::types::Value::Text("x".into()),
                _ => rusqlite::types::Value::Integer(i as i64),
            };
            text.execute(rusqlite::params![
                format!("t{}", i % 3),
                format!("k{i:05}"),
                exp,
                ver
            ])
            .unwrap();
            text.execute(rusqlite::params!["", format!("{i}"), exp, ver])
                .unwrap();
            // same text as a TEXT row, but stored as BLOB: a distinct row with the same decoding
            blob_group
                .execute(rusqlite::params![
                    format!("t{}", i % 3),
                    format!("k{i:05}"),
                    exp,
                    ver
                ])
                .unwrap();
            bad_text
                .execute(rusqlite::params![format!("{i}"), exp, ver])
                .unwrap();
        }
        text.execute(rusqlite::params!["", "", rusqlite::types::Value::Null, 0])
            .unwrap();
    }
    tx.commit().unwrap();
}

#[test]
fn foreign_rows_of_every_type_each_appear_once_across_chunks() {
    let f = file_store();
    insert_foreign(&f.path(), 3000, START_MS);
    let db = Analytics::in_memory().unwrap();
    db.attach_kv(&f.store).unwrap();
    let expected = raw_live(&f.path(), START_MS);
    assert!(total(&expected) > 3 * 2048, "{}", total(&expected));
    let got = within(Duration::from_secs(120), move || scanned(&db, "kv_entries"));
    assert_eq!(total(&got), total(&expected));
    assert_eq!(got, expected);
}

/// Another program created `entries` without column types first, so groups and keys may be
/// stored as INTEGER and REAL too.
#[test]
fn untyped_foreign_table_mixed_types_each_appear_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    {
        let conn = raw(&path);
        conn.execute_batch(
            "CREATE TABLE entries (group_name, entry_key, entry_value, expires_at, PRIMARY KEY (group_name, entry_key))",
        )
        .unwrap();
    }
    let clock = Arc::new(store::ManualClock::new(START_MS));
    let store = Store::open_with(
        StoreConfig::file(&path)
            .with_clock(clock.clone())
            .with_purge_interval(Duration::ZERO),
    )
    .unwrap();
    {
        let mut conn = raw(&path);
        let tx = conn.transaction().unwrap();
        {
            let mut ins = tx
                .prepare("INSERT INTO entries (group_name, entry_key, entry_value) VALUES (?1, ?2, 'v')")
                .unwrap();
            for i in 0..2500i64 {
                use rusqlite::types::Value as V;
                let group = match i % 5 {
                    0 => V::Integer(i % 7),
                    1 => V::Real((i % 7) as f64 + 0.25),
                    2 => V::Text(format!("{}", i % 7)),
                    3 => V::Blob(vec![0xff, (i % 7) as u8]),
                    _ => V::Integer(-(i % 3)),
                };
                let key = match i % 3 {
                    0 => V::Integer(i),
                    1 => V::Real(i as f64 + 0.5),
                    _ => V::Text(format!("{i}")),
                };
                ins.execute(rusqlite::params![group, key]).unwrap();
            }
        }
        tx.commit().unwrap();
    }
    insert_foreign(&path, 1000, START_MS);
    let db = Analytics::in_memory().unwrap();
    db.attach_kv(&store).unwrap();
    let expected = raw_live(&path, START_MS);
    let got = within(Duration::from_secs(120), move || {
        scanned(&db, "kv_entries_scan()")
    });
    assert_eq!(total(&got), total(&expected));
    assert_eq!(got, expected);
}

#[test]
fn chunk_boundary_sizes() {
    for n in [0usize, 1, 2047, 2048, 2049, 4095, 4096, 4097, 6144] {
        let (_f, db) = attached(n);
        let row = db
            .query_row("SELECT count(*), count(DISTINCT entry_key) FROM kv_entries", &[])
            .unwrap()
            .unwrap();
        assert_eq!(
            row.values,
            vec![Value::Int(n as i64), Value::Int(n as i64)],
            "n={n}"
        );
        // streamed: batches add up
        let rows: usize = db
            .query_arrow("SELECT * FROM kv_entries", &[])
            .unwrap()
            .map(|b| b.unwrap().num_rows())
            .sum();
        assert_eq!(rows, n, "n={n} streamed");
    }
}

/// Entries whose TTL passes while a streamed scan is between chunks stay in it (one `now`);
/// entries expired before it started stay out.
#[test]
fn ttl_expiring_between_chunks_follows_the_scans_now() {
    let f = file_store();
    f.store
        .transaction(|tx| {
            for i in 0..8000 {
                let k = format!("k{i:06}");
                match i % 3 {
                    0 => tx.set("g", &k, "v")?,
                    1 => tx.set_with_ttl("g", &k, "v", Duration::from_secs(10))?,
                    _ => tx.set_with_ttl("g", &k, "v", Duration::from_millis(1))?,
                };
            }
            Ok(())
        })
        .unwrap();
    f.clock.advance(Duration::from_millis(5)); // the 1 ms ones are gone
    let live_before = raw_live(&f.path(), START_MS + 5);
    let db = Analytics::in_memory().unwrap();
    db.attach_kv(&f.store).unwrap();
    let mut batches = db.query_arrow("SELECT entry_key FROM kv_entries", &[]).unwrap();
    let mut rows = batches.next().unwrap().unwrap().num_rows();
    f.clock.advance(Duration::from_secs(60));
    for b in batches {
        rows += b.unwrap().num_rows();
    }
    assert_eq!(rows, total(&live_before));
    assert_eq!(
        scalar(&db, "SELECT count(*) FROM kv_entries"),
        Value::Int((0..8000).filter(|i| i % 3 == 0).count() as i64)
    );
}

/// A truncating checkpoint's result (busy, log frames, checkpointed frames), at once: with a
/// busy timeout it would first wait out the reader it reports.
pub fn wal_checkpoint_truncate(path: &Path) -> (i64, i64, i64) {
    let conn = raw(path);
    conn.busy_timeout(Duration::ZERO).unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
    })
    .unwrap()
}

/// LIMIT queries, failed queries and dropped streams release the scan's connection: a full
/// checkpoint afterwards is not blocked, `sync` works, and descriptors do not pile up.
#[test]
fn early_ended_scans_release_their_connection() {
    let f = file_store_with(|c| {
        let mut c = c;
        c.busy_timeout = Duration::from_millis(300);
        c
    });
    fill(&f.store, "g", 9000, |i| i.to_string());
    let db = Analytics::in_memory().unwrap();
    db.attach_kv(&f.store).unwrap();
    // a held stream blocks a truncating checkpoint once there are later frames
    {
        let mut s = db.query_arrow("SELECT * FROM kv_entries", &[]).unwrap();
        s.next().unwrap().unwrap();
        f.store.set("g", "late", "1").unwrap();
        let (busy, _, _) = wal_checkpoint_truncate(&f.path());
        assert_eq!(busy, 1, "the held stream should block the truncating checkpoint");
        assert!(f.store.sync().unwrap_err().is_busy());
    }
    // dropped: released
    f.store.set("g", "late2", "1").unwrap();
    assert_eq!(
        wal_checkpoint_truncate(&f.path()).0,
        0,
        "after dropping the stream"
    );
    f.store.sync().unwrap();

    let base = open_fds(f.dir.path());
    for i in 0..500 {
        match i % 5 {
            0 => {
                db.query("SELECT * FROM kv_entries LIMIT 3", &[]).unwrap();
            }
            1 => {
                let mut s = db.query_arrow("SELECT * FROM kv_entries", &[]).unwrap();
                s.next().unwrap().unwrap();
                drop(s);
            }
            2 => {
                // fails on a later row ('late' is not a number... all values are numbers, so
                // use a cast that fails on the key instead)
                let e = db
                    .query("SELECT CAST(entry_key AS INTEGER) FROM kv_entries", &[])
                    .unwrap_err();
                let _ = e;
            }
            3 => {
                let _ = db.query_arrow("SELECT * FROM kv_entries LIMIT 1", &[]).unwrap();
            }
            _ => {
                scalar(&db, "SELECT count(*) FROM kv_entries WHERE entry_key = 'k000001'");
            }
        }
        if i % 50 == 0 {
            f.store.set("g", "tick", &i.to_string()).unwrap();
            assert_eq!(wal_checkpoint_truncate(&f.path()).0, 0, "iteration {i}");
        }
    }
    let after = open_fds(f.dir.path());
    assert!(after <= base + 4, "fds grew from {base} to {after}");
    f.store.set("g", "tick", "end").unwrap();
    f.store.sync().unwrap();
}

#[test]
fn many_scans_in_one_query() {
    let f = file_store_with(|c| {
        let mut c = c;
        c.readers = 1;
        c
    });
    fill(&f.store, "g", 5000, |_| "1".into());
    let db = Analytics::in_memory().unwrap();
    db.attach_kv(&f.store).unwrap();
    let union = union_of_scans(10);
    let n = within(Duration::from_secs(60), {
        let db = Analytics::in_memory().unwrap();
        db.attach_kv(&f.store).unwrap();
        let sql = format!("SELECT count(*) FROM ({union})");
        move || scalar(&db, &sql)
    });
    assert_eq!(n, Value::Int(50_000));
    assert_eq!(
        scalar(
            &db,
            "SELECT count(*) FROM kv_entries a JOIN kv_entries b USING (group_name, entry_key)
             JOIN kv_entries c USING (group_name, entry_key) JOIN kv_entries d USING (group_name, entry_key)"
        ),
        Value::Int(5000)
    );
    // a streamed union of 10 scans
    let rows: usize = db
        .query_arrow(&union, &[])
        .unwrap()
        .map(|b| b.unwrap().num_rows())
        .sum();
    assert_eq!(rows, 50_000);
}

/// Scans from several threads while a writer moves value between keys in transactions: every
/// scan's sum equals the constant (one snapshot per scan).
#[test]
fn concurrent_scans_each_see_one_snapshot() {
    const KEYS: usize = 6000;
    let f = file_store_with(|c| {
        let mut c = c;
        c.busy_timeout = Duration::from_secs(30);
        c
    });
    fill(&f.store, "g", KEYS, |_| "100".into());
    let expected = (KEYS * 100) as i64;
    let stop = Arc::new(AtomicBool::new(false));
    let moves = Arc::new(AtomicU64::new(0));
    let writer = {
        let (store, stop, moves) = (f.store.clone(), stop.clone(), moves.clone());
        std::thread::spawn(move || {
            let mut x: u64 = 12345;
            while !stop.load(Ordering::Relaxed) {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let (a, b) = ((x >> 33) as usize % KEYS, (x >> 13) as usize % KEYS);
                if a == b {
                    continue;
                }
                store
                    .transaction(|tx| {
                        let ka = format!("k{a:06}");
                        let kb = format!("k{b:06}");
                        let va: i64 = tx.get("g", &ka)?.parse().unwrap();
                        let vb: i64 = tx.get("g", &kb)?.parse().unwrap();
                        tx.set("g", &ka, &(va - 7).to_string())?;
                        tx.set("g", &kb, &(vb + 7).to_string())?;
                        Ok(())
                    })
                    .unwrap();
                moves.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let scanners: Vec<_> = (0..3)
        .map(|t| {
            let store = f.store.clone();
            std::thread::spawn(move || {
                let db = Analytics::in_memory().unwrap();
                db.attach_kv(&store).unwrap();
                let mut bad = Vec::new();
                for i in 0..25 {
                    let sql = if (i + t) % 2 == 0 {
                        "SELECT sum(CAST(entry_value AS BIGINT)), count(*) FROM kv_entries"
                    } else {
                        "SELECT sum(CAST(entry_value AS BIGINT)), count(*) FROM kv_entries_scan()"
                    };
                    let row = db.query_row(sql, &[]).unwrap().unwrap();
                    if row.values != vec![Value::Int(expected), Value::Int(KEYS as i64)]
                        && row.values[0] != Value::Float(expected as f64)
                    {
                        bad.push(format!("{:?}", row.values));
                    }
                    // and a streamed one with a pause between chunks
                    let s = db
                        .query_arrow("SELECT CAST(entry_value AS BIGINT) AS v FROM kv_entries", &[])
                        .unwrap();
                    let mut sum = 0i64;
                    let mut rows = 0;
                    for b in s {
                        let b = b.unwrap();
                        let col = b
                            .column(0)
                            .as_any()
                            .downcast_ref::<duckdb::arrow::array::Int64Array>()
                            .unwrap();
                        sum += col.iter().map(|v| v.unwrap()).sum::<i64>();
                        rows += b.num_rows();
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    if sum != expected || rows != KEYS {
                        bad.push(format!("streamed sum {sum} rows {rows}"));
                    }
                }
                bad
            })
        })
        .collect();
    let mut bad = Vec::new();
    for s in scanners {
        bad.extend(s.join().unwrap());
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert!(
        moves.load(Ordering::Relaxed) > 10,
        "the writer hardly ran beside the scans"
    );
    assert!(bad.is_empty(), "{bad:?}");
}

/// The store's own transaction on another thread, held while scans run (file store, default
/// readers and readers = 0): no deadlock, the uncommitted write is not seen.
#[test]
fn scans_beside_a_held_transaction_never_wait_for_it() {
    for readers in [4usize, 0] {
        let f = file_store_with(|c| {
            let mut c = c;
            c.readers = readers;
            c.busy_timeout = Duration::from_millis(500);
            c
        });
        for i in 0..3000 {
            f.store.set("g", &format!("k{i:06}"), "v").unwrap();
        }
        let held = crate::common::HeldTransaction::start(&f.store, "g", "uncommitted", "x");
        let db = Analytics::in_memory().unwrap();
        db.attach_kv(&f.store).unwrap();
        let n = within(Duration::from_secs(20), move || {
            let a = scalar(&db, "SELECT count(*) FROM kv_entries");
            let b = scalar(
                &db,
                "SELECT count(*) FROM kv_entries WHERE entry_key = 'uncommitted'",
            );
            (a, b)
        });
        assert_eq!(n, (Value::Int(3000), Value::Int(0)), "readers={readers}");
        held.release();
        let db = Analytics::in_memory().unwrap();
        db.attach_kv(&f.store).unwrap();
        assert_eq!(scalar(&db, "SELECT count(*) FROM kv_entries"), Value::Int(3001));
    }
}

/// While a streamed scan is held, the store's own transaction on another thread commits, and
/// writes on this very thread work.
#[test]
fn store_transaction_during_a_streamed_scan() {
    let f = file_store();
    for i in 0..5000 {
        f.store.set("g", &format!("k{i:06}"), "v").unwrap();
    }
    let db = Analytics::in_memory().unwrap();
    db.attach_kv(&f.store).unwrap();
    let mut s = db.query_arrow("SELECT * FROM kv_entries", &[]).unwrap();
    let mut rows = s.next().unwrap().unwrap().num_rows();
    let store = f.store.clone();
    within(Duration::from_secs(20), move || {
        store
            .transaction(|tx| {
                for i in 0..5000 {
                    tx.set("h", &format!("k{i}"), "w")?;
                }
                Ok(())
            })
            .unwrap();
    });
    f.store.delete_group("g").unwrap();
    for b in s {
        rows += b.unwrap().num_rows();
    }
    assert_eq!(rows, 5000);
}

/// A file store holding `n` entries, attached to a new in-memory analytics handle.
fn attached(n: usize) -> (crate::common::Fixture, Analytics) {
    let f = file_store();
    fill(&f.store, "g", n, |_| "v".into());
    let db = Analytics::in_memory().unwrap();
    db.attach_kv(&f.store).unwrap();
    (f, db)
}

#[test]
fn closed_or_dropped_store_before_and_during_a_scan() {
    // closed before: Closed
    let (f, db) = attached(5000);
    f.store.close().unwrap();
    let e = db.query("SELECT * FROM kv_entries", &[]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Closed, "{e}");
    let e = db.query("SELECT * FROM kv_entries_scan()", &[]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Closed, "{e}");

    // closed during a streamed scan
    let (f, db) = attached(5000);
    let mut s = db.query_arrow("SELECT * FROM kv_entries", &[]).unwrap();
    let mut rows = s.next().unwrap().unwrap().num_rows();
    f.store.close().unwrap();
    // A scan already running finishes its snapshot (docs/guarantees.md, known gaps).
    for batch in s {
        rows += batch.unwrap().num_rows();
    }
    assert_eq!(rows, 5000);

    // dropped during a streamed scan
    let (f, db) = attached(5000);
    let path = f.path();
    let dir = f.dir;
    let mut s = db.query_arrow("SELECT * FROM kv_entries", &[]).unwrap();
    let mut rows = s.next().unwrap().unwrap().num_rows();
    drop(f.store);
    for batch in s {
        rows += batch.unwrap().num_rows();
    }
    assert_eq!(rows, 5000);
    let reopened = Store::open(&path).unwrap();
    assert_eq!(reopened.count("g").unwrap(), 5000);
    drop(dir);
}

/// The database file deleted while the store is open: the store itself still reads it.
#[test]
fn database_file_deleted_after_open() {
    let (f, db) = attached(10);
    assert_eq!(scalar(&db, "SELECT count(*) FROM kv_entries"), Value::Int(10));
    std::fs::remove_file(f.path()).unwrap();
    assert_eq!(
        f.store.count("g").unwrap(),
        10,
        "the store still reads its (unlinked) file"
    );
    let r = db.query("SELECT count(*) FROM kv_entries", &[]);
    assert!(r.is_ok(), "kv_entries fails while the store works: {r:?}");
}

/// The database file renamed and another database put at its path while the store is open.
#[test]
fn database_file_replaced_after_open() {
    let (f, db) = attached(10);
    f.store.sync().unwrap();
    let other = f.dir.path().join("other.db");
    {
        let s = Store::open(&other).unwrap();
        s.set("intruder", "x", "y").unwrap();
        s.close().unwrap();
    }
    std::fs::rename(f.path(), f.dir.path().join("moved.db")).unwrap();
    std::fs::rename(&other, f.path()).unwrap();
    assert_eq!(
        f.store.count("g").unwrap(),
        10,
        "the store still reads its own file"
    );
    let rows = db.query("SELECT group_name, count(*) FROM kv_entries GROUP BY 1", &[]);
    let rows = rows.unwrap();
    assert_eq!(rows.rows, vec![vec![Value::Text("g".into()), Value::Int(10)]]);
}

/// A store opened on a relative path, then the process changes its working directory.
#[test]
fn relative_path_store_after_chdir() {
    if !in_own_process("kv_scan_edges::relative_path_store_after_chdir") {
        return;
    }
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    {
        let s = Store::open(b.path().join("state.db")).unwrap();
        s.set("intruder", "x", "y").unwrap();
        s.close().unwrap();
    }
    std::env::set_current_dir(a.path()).unwrap();
    let store = Store::open("state.db").unwrap();
    store.set("g", "k", "v").unwrap();
    let db = Analytics::in_memory().unwrap();
    db.attach_kv(&store).unwrap();
    std::env::set_current_dir(b.path()).unwrap();
    assert_eq!(store.get("g", "k").unwrap(), "v");
    let rows = db.query("SELECT group_name, entry_key FROM kv_entries", &[]);
    assert_eq!(
        rows.unwrap().rows,
        vec![vec![Value::Text("g".into()), Value::Text("k".into())]]
    );
}

#[test]
fn memory_store_scans_still_fine() {
    let (store, clock) = memory_store();
    store
        .transaction(|tx| {
            for i in 0..5000 {
                tx.set("g", &format!("k{i:06}"), "1")?;
                if i % 2 == 0 {
                    tx.set_with_ttl("t", &format!("k{i:06}"), "1", Duration::from_secs(1))?;
                }
            }
            Ok(())
        })
        .unwrap();
    let db = Analytics::in_memory().unwrap();
    db.attach_kv(&store).unwrap();
    assert_eq!(scalar(&db, "SELECT count(*) FROM kv_entries"), Value::Int(7500));
    let mut s = db.query_arrow("SELECT * FROM kv_entries", &[]).unwrap();
    let mut rows = s.next().unwrap().unwrap().num_rows();
    clock.advance(Duration::from_secs(2));
    store.set("late", "x", "y").unwrap();
    for b in s {
        rows += b.unwrap().num_rows();
    }
    assert_eq!(rows, 7500);
    assert_eq!(scalar(&db, "SELECT count(*) FROM kv_entries"), Value::Int(5001));
    db.query("SELECT * FROM kv_entries LIMIT 2", &[]).unwrap();
    let union = union_of_scans(10);
    assert_eq!(
        scalar(&db, &format!("SELECT count(*) FROM ({union})")),
        Value::Int(50010)
    );
}

#[test]
fn service_store_sql_over_many_entries() {
    let home = tempfile::tempdir().unwrap();
    let service = store::Service::open(store::ServiceConfig::new(home.path())).unwrap();
    fill(service.store(), "g", 5000, |_| "v".into());
    let r = service
        .call(
            "store/sql",
            serde_json::json!({"sql": "SELECT count(*) AS n, count(DISTINCT entry_key) AS d FROM kv_entries"}),
        )
        .unwrap();
    assert_eq!(
        r,
        serde_json::json!({"columns": ["n", "d"], "rows": [[5000, 5000]]})
    );
    let r = service
        .call(
            "store/sql",
            serde_json::json!({"sql": "SELECT entry_key FROM kv_entries_scan() ORDER BY 1"}),
        )
        .unwrap();
    assert_eq!(r["rows"].as_array().unwrap().len(), 5000);
    let r = service
        .call(
            "store/sql",
            serde_json::json!({"sql": "SELECT entry_key FROM kv_entries LIMIT 3"}),
        )
        .unwrap();
    assert_eq!(r["rows"].as_array().unwrap().len(), 3);
    service.store().sync().unwrap();
    service.close().unwrap();
}

fn fd_targets() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .map(|p| p.display().to_string())
        .collect();
    v.sort();
    v
}

/// Descriptors across many scans of one handle: each scan's reader is closed with it.
#[test]
fn fds_over_many_multi_scan_queries() {
    let f = file_store();
    fill(&f.store, "g", 5000, |_| "1".into());
    let db = Analytics::in_memory().unwrap();
    db.attach_kv(&f.store).unwrap();
    let union = union_of_scans(10);
    let sql = format!("SELECT count(*) FROM ({union})");
    scalar(&db, &sql);
    let base = open_fds(f.dir.path());
    for _ in 0..100 {
        assert_eq!(scalar(&db, &sql), Value::Int(50_000));
    }
    assert!(open_fds(f.dir.path()) <= base, "descriptors grew from {base}");
    // A ten-scan union held open in a stream holds one reader per scan, released on drop.
    let mut s = db.query_arrow(&union, &[]).unwrap();
    s.next().unwrap().unwrap();
    assert!(open_fds(f.dir.path()) > base);
    drop(s);
    assert!(
        open_fds(f.dir.path()) <= base,
        "descriptors kept after the stream was dropped"
    );
}

fn foreign_table_store(create: &str, rows: impl FnOnce(&rusqlite::Connection)) -> (tempfile::TempDir, Store) {
    let (dir, path) = raw_built_file(create);
    let mut conn = raw(&path);
    let tx = conn.transaction().unwrap();
    rows(&tx);
    tx.commit().unwrap();
    let store = Store::open(&path).unwrap();
    (dir, store)
}

/// The key constraint in the other order, (entry_key, group_name), which the store accepts:
/// the scan's chunks seek on the rowid whatever the key's order (chunks ordered by group and
/// key sorted the whole table for every chunk there), and every row arrives once.
#[test]
fn reversed_key_order_tables_scan_by_rowid_seeks() {
    for create in [
        "CREATE TABLE entries (group_name TEXT NOT NULL, entry_key TEXT NOT NULL, entry_value TEXT NOT NULL, expires_at INTEGER, PRIMARY KEY (group_name, entry_key))",
        "CREATE TABLE entries (group_name TEXT NOT NULL, entry_key TEXT NOT NULL, entry_value TEXT NOT NULL, expires_at INTEGER, PRIMARY KEY (entry_key, group_name))",
    ] {
        let (dir, store) = foreign_table_store(create, |c| {
            let mut ins = c
                .prepare("INSERT INTO entries (group_name, entry_key, entry_value) VALUES (?1, ?2, 'v')")
                .unwrap();
            for i in 0..10_000 {
                ins.execute(rusqlite::params![format!("g{}", i % 10), format!("k{i:07}")])
                    .unwrap();
            }
        });
        let plan: Vec<String> = raw(&dir.path().join("state.db"))
            .prepare(
                "EXPLAIN QUERY PLAN SELECT group_name, entry_key, entry_value, expires_at, version, rowid
                 FROM entries WHERE rowid > ?3 AND (expires_at IS NULL OR expires_at > ?1) ORDER BY rowid LIMIT ?2",
            )
            .unwrap()
            .query_map(rusqlite::params![0, 2048, 1], |r| r.get::<_, String>(3))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(
            plan,
            ["SEARCH entries USING INTEGER PRIMARY KEY (rowid>?)"],
            "{create}"
        );
        let db = Analytics::in_memory().unwrap();
        db.attach_kv(&store).unwrap();
        let row = db
            .query_row("SELECT count(*), count(DISTINCT entry_key) FROM kv_entries", &[])
            .unwrap()
            .unwrap();
        assert_eq!(row.values, [Value::Int(10_000), Value::Int(10_000)], "{create}");
    }
}

/// A table another program made without rowids is read whole, through the same snapshot.
#[test]
fn tables_without_rowids_are_scanned_whole() {
    let (_dir, store) = foreign_table_store(
        "CREATE TABLE entries (group_name TEXT NOT NULL, entry_key TEXT NOT NULL, entry_value TEXT NOT NULL,
           expires_at INTEGER, PRIMARY KEY (group_name, entry_key)) WITHOUT ROWID",
        |c| {
            let mut ins = c
                .prepare("INSERT INTO entries (group_name, entry_key, entry_value) VALUES (?1, ?2, 'v')")
                .unwrap();
            for i in 0..5000 {
                ins.execute(rusqlite::params![format!("g{}", i % 3), format!("k{i:05}")])
                    .unwrap();
            }
        },
    );
    let db = Analytics::in_memory().unwrap();
    db.attach_kv(&store).unwrap();
    assert_eq!(
        scalar(
            &db,
            "SELECT count(DISTINCT (group_name, entry_key)) FROM kv_entries"
        ),
        Value::Int(5000)
    );
}

/// Columns collated NOCASE with a BINARY unique index (which the store accepts as its key):
/// rows equal under NOCASE straddling a chunk boundary.
#[test]
fn nocase_columns_with_a_binary_key() {
    let (dir, store) = foreign_table_store(
        "CREATE TABLE entries (group_name TEXT COLLATE NOCASE NOT NULL, entry_key TEXT COLLATE NOCASE NOT NULL, entry_value TEXT NOT NULL, expires_at INTEGER);
         CREATE UNIQUE INDEX entries_bin ON entries(group_name COLLATE BINARY, entry_key COLLATE BINARY);",
        |c| {
            let mut ins = c
                .prepare("INSERT INTO entries (group_name, entry_key, entry_value) VALUES (?1, ?2, 'v')")
                .unwrap();
            ins.execute(rusqlite::params!["a", "first"]).unwrap();
            for i in 0..3000 {
                ins.execute(rusqlite::params!["g", format!("k{i:06}")]).unwrap();
                ins.execute(rusqlite::params!["G", format!("k{i:06}")]).unwrap();
            }
        },
    );
    let expected = raw_live(&dir.path().join("state.db"), START_MS);
    let db = Analytics::in_memory().unwrap();
    db.attach_kv(&store).unwrap();
    let got = scanned(&db, "kv_entries");
    assert_eq!(got, expected);
}

// Adopted from h181's review: the scan's time after its snapshot on the fallback path and in
// memory, and `row_id_name` on tables named in another letter case.

const T: i64 = 2_000_000;

const KEYS: &str = "SELECT coalesce(string_agg(entry_key, ',' ORDER BY entry_key), '') FROM kv_entries";

/// The store's directory renamed: the scan cannot open a reader of its own and falls back to
/// `read_bounded` (pooled reader, or the writer with `readers: 0`), which must also take its
/// snapshot before the clock.
#[test]
fn kv_entries_fallback_judges_entries_after_its_snapshot() {
    for readers in [0usize, 2] {
        let top = tempfile::tempdir().unwrap();
        let d1 = top.path().join("d1");
        std::fs::create_dir(&d1).unwrap();
        let (store, clock, other) = racing_pair_in(&d1, readers, T);
        let db = Analytics::in_memory().unwrap();
        db.attach_kv(&store).unwrap();
        std::fs::rename(&d1, top.path().join("d2")).unwrap();
        clock.arm(move || {
            other.set("g", "new", "2").unwrap();
        });
        assert_eq!(text(&scalar(&db, KEYS)), "old", "readers {readers}");
        assert!(clock.fired(), "readers {readers}");
        assert_eq!(text(&scalar(&db, KEYS)), "new,old", "readers {readers}");
        clock.set(T);
        assert_eq!(text(&scalar(&db, KEYS)), "new", "readers {readers}");
    }
}

/// Memory stores: the scan reads the clock inside its read.
#[test]
fn kv_entries_on_a_memory_store() {
    let (store, clock) = holding_old(StoreConfig::memory(), T);
    store.set("g", "k", "v").unwrap();
    let db = Analytics::in_memory().unwrap();
    db.attach_kv(&store).unwrap();
    assert_eq!(text(&scalar(&db, KEYS)), "k,old");
    clock.set(T);
    assert_eq!(text(&scalar(&db, KEYS)), "k");
}

/// `pragma_table_list('entries')` must find a `WITHOUT ROWID` table named `Entries`: taken for
/// a rowid table, the scan would take the chunked path and fail on `SELECT rowid`.
#[test]
fn kv_entries_on_a_without_rowid_table_named_in_another_case() {
    let (_dir, path) = raw_built_file(
        "CREATE TABLE Entries (group_name TEXT NOT NULL, entry_key TEXT NOT NULL, entry_value TEXT NOT NULL,
           expires_at INTEGER, PRIMARY KEY (group_name, entry_key)) WITHOUT ROWID;
         INSERT INTO Entries (group_name, entry_key, entry_value) VALUES ('g', 'a', '1'), ('g', 'b', '2');",
    );
    let store = Store::open(&path).unwrap();
    store.set("g", "c", "3").unwrap();
    let db = Analytics::in_memory().unwrap();
    db.attach_kv(&store).unwrap();
    assert_eq!(text(&scalar(&db, KEYS)), "a,b,c");
    assert_eq!(scalar(&db, "SELECT count(*) FROM kv_entries"), Value::Int(3));
    assert_eq!(store.count("g").unwrap(), 3);
    drop(raw(&path));
}

/// An `entries` table with a column called `rowid` (another program's): the scan uses `_rowid_`.
#[test]
fn kv_entries_with_a_rowid_column_in_another_case() {
    let (_dir, path) = raw_built_file(
        "CREATE TABLE ENTRIES (group_name TEXT NOT NULL, entry_key TEXT NOT NULL, entry_value TEXT NOT NULL,
           expires_at INTEGER, RowID TEXT, PRIMARY KEY (group_name, entry_key));
         INSERT INTO ENTRIES (group_name, entry_key, entry_value, RowID) VALUES ('g', 'a', '1', 'x'), ('g', 'b', '2', 'y');",
    );
    let store = Store::open(&path).unwrap();
    let db = Analytics::in_memory().unwrap();
    db.attach_kv(&store).unwrap();
    assert_eq!(text(&scalar(&db, KEYS)), "a,b");
}
