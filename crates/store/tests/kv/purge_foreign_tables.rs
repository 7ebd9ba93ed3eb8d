//! The purge on `entries` tables another program created (h179's attacks): row ids reached
//! through a name no column takes (`rowid`, `_rowid_`, `oid`), and in tables without one the
//! expired rows deleted one by one by their exact key, never a live row along with them (key
//! columns collated NOCASE, NULL keys, mixed types), by the purge thread and the quota purge.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use store::{EventKind, Kv, Quota, ScopedConfig, Store, StoreConfig};

use crate::common::{open_manual, raw, raw_built_file};

const EXPIRED_AT: i64 = 500_000; // before the manual clock's START_MS
/// Rows as `quote(group)|quote(key)`, sorted.
fn rows(path: &Path) -> Vec<String> {
    let c = raw(path);
    let mut s = c
        .prepare("SELECT quote(group_name) || '|' || quote(entry_key) FROM entries ORDER BY 1")
        .unwrap();
    s.query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .collect::<rusqlite::Result<Vec<_>>>()
        .unwrap()
}

/// Every event's kind, group and key, as a callback records them.
type Seen = Arc<Mutex<Vec<(EventKind, String, Option<String>)>>>;

fn events_of(store: &Store) -> (Seen, store::CallbackGuard) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let guard = store
        .on_change(move |e| s2.lock().unwrap().push((e.kind, e.group.clone(), e.key.clone())))
        .unwrap();
    (seen, guard)
}

const NOCASE_COLS: &str = "group_name TEXT NOT NULL COLLATE NOCASE, entry_key TEXT NOT NULL COLLATE NOCASE, \
     entry_value TEXT NOT NULL, expires_at INTEGER, version INTEGER NOT NULL DEFAULT 0";

/// Key columns with a NOCASE default collation, keyed BINARY (so `K` and `k` are two rows).
/// The purge by key compares `(group_name, entry_key) IN (...)` with the columns' collation.
#[test]
fn collated_key_columns_purge_only_the_expired_row() {
    let mut bad = Vec::new();
    for (label, create) in [
        (
            "rowid (control)",
            format!(
                "CREATE TABLE entries ({NOCASE_COLS}, PRIMARY KEY (group_name COLLATE BINARY, entry_key COLLATE BINARY))"
            ),
        ),
        (
            "WITHOUT ROWID",
            format!(
                "CREATE TABLE entries ({NOCASE_COLS}, PRIMARY KEY (group_name COLLATE BINARY, entry_key COLLATE BINARY)) WITHOUT ROWID"
            ),
        ),
        (
            "all three names taken",
            format!(
                "CREATE TABLE entries ({NOCASE_COLS}, RowId INTEGER, \"_ROWID_\" INTEGER, OID TEXT, PRIMARY KEY (group_name COLLATE BINARY, entry_key COLLATE BINARY))"
            ),
        ),
    ] {
        let (_dir, path) = raw_built_file(&create);
        raw(&path)
            .execute_batch(&format!(
                "INSERT INTO entries (group_name, entry_key, entry_value, expires_at) VALUES
                   ('g', 'K', 'live', NULL), ('g', 'k', 'dead', {EXPIRED_AT}),
                   ('G', 'x', 'live', NULL), ('g', 'x', 'dead', {EXPIRED_AT});"
            ))
            .unwrap();
        let (store, _clock) = open_manual(&path);
        let (seen, _g) = events_of(&store);
        let purged = store.purge_expired();
        let left = rows(&path);
        let want = vec!["'G'|'x'".to_string(), "'g'|'K'".to_string()];
        let ev: Vec<_> = seen.lock().unwrap().clone();
        if purged.as_ref().ok() != Some(&2) || left != want || ev.len() != 2 {
            bad.push(format!(
                "{label}: purged {purged:?}, left {left:?}, events {ev:?}"
            ));
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

/// An untyped table (no NOT NULL, no affinity) whose columns take rowid, _rowid_ and oid: the
/// purge deletes by key. Expired rows with NULL / INTEGER / BLOB keys and groups next to live
/// text rows of the same spelling.
#[test]
fn untyped_table_without_row_id_names_mixed_and_null_keys() {
    let mut bad = Vec::new();
    for (label, extra) in [
        ("rowid free (control)", ""),
        ("all three taken", ", rowid, _rowid_, oid"),
        ("case variants taken", ", \"RowId\", \"_RowId_\", \"OID\""),
        ("spaces do not shadow", ", \"row id\", \" rowid\", \"oid \""),
    ] {
        let (_dir, path) = raw_built_file(&format!(
            "CREATE TABLE entries (group_name, entry_key, entry_value, expires_at, version DEFAULT 0{extra});
             CREATE UNIQUE INDEX foreign_key_idx ON entries (group_name, entry_key);"
        ));
        raw(&path)
            .execute_batch(&format!(
                "INSERT INTO entries (group_name, entry_key, entry_value, expires_at) VALUES
                   ('f', NULL, 'dead', {EXPIRED_AT}),
                   ('f', 1, 'dead', {EXPIRED_AT}),
                   ('f', X'6b', 'dead', {EXPIRED_AT}),
                   (NULL, 'k', 'dead', {EXPIRED_AT}),
                   (2, 'k', 'dead', {EXPIRED_AT}),
                   ('f', 'dead', 'dead', {EXPIRED_AT}),
                   ('f', '1', 'live', NULL),
                   ('f', 'k', 'live', NULL),
                   ('f', 'live', 'live', 99999999999),
                   ('2', 'k', 'live', NULL);"
            ))
            .unwrap();
        let (store, _clock) = open_manual(&path);
        let (seen, _g) = events_of(&store);
        let purged = store.purge_expired();
        let left = rows(&path);
        let want: Vec<String> = ["'2'|'k'", "'f'|'1'", "'f'|'k'", "'f'|'live'"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let ev = seen.lock().unwrap().len();
        if purged.as_ref().ok() != Some(&6) || left != want || ev != 6 {
            bad.push(format!(
                "{label}: purged {purged:?} (want 6), events {ev}, left {left:?}"
            ));
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

/// 10,000 expired rows with a NULL key ahead (earlier expiry) of one ordinary expired row, in a
/// table without a usable row id name: the purge's batch is taken by rows its key comparison
/// can never delete.
#[test]
fn null_key_rows_starve_the_purge_by_key() {
    let (_dir, path) = raw_built_file(
        "CREATE TABLE entries (group_name, entry_key, entry_value, expires_at, version DEFAULT 0, rowid, _rowid_, oid);
         CREATE UNIQUE INDEX foreign_key_idx ON entries (group_name, entry_key);",
    );
    {
        let c = raw(&path);
        c.execute_batch(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10000)
             INSERT INTO entries (group_name, entry_key, entry_value, expires_at)
               SELECT 'f', NULL, 'dead', 100 FROM n;
             INSERT INTO entries (group_name, entry_key, entry_value, expires_at) VALUES
               ('f', 'x', 'dead', 900000), ('f', 'live', 'live', NULL);",
        )
        .unwrap();
    }
    let (store, _clock) = open_manual(&path);
    let purged = store.purge_expired();
    let x_left: i64 = raw(&path)
        .query_row("SELECT count(*) FROM entries WHERE entry_key = 'x'", [], |r| {
            r.get(0)
        })
        .unwrap();
    let live_left: i64 = raw(&path)
        .query_row("SELECT count(*) FROM entries WHERE entry_key = 'live'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(live_left, 1);
    assert_eq!(
        (purged.as_ref().ok().copied(), x_left),
        (Some(10_001), 0),
        "purge returned {purged:?}; the ordinary expired row ('f','x') left: {x_left}"
    );
}

/// The purge thread (real clock, short interval) on foreign tables, with events and the feed.
#[test]
fn purge_thread_on_foreign_tables() {
    let mut bad = Vec::new();
    for (label, create) in [
        (
            "WITHOUT ROWID",
            "CREATE TABLE entries (group_name TEXT NOT NULL, entry_key TEXT NOT NULL, entry_value TEXT NOT NULL, \
             expires_at INTEGER, version INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (group_name, entry_key)) WITHOUT ROWID",
        ),
        (
            "WITHOUT ROWID, BLOB keys",
            "CREATE TABLE entries (group_name BLOB NOT NULL, entry_key BLOB NOT NULL, entry_value TEXT NOT NULL, \
             expires_at INTEGER, version INTEGER NOT NULL DEFAULT 0, rowid INTEGER DEFAULT 7, PRIMARY KEY (entry_key, group_name)) WITHOUT ROWID",
        ),
        (
            "all three names taken",
            "CREATE TABLE entries (group_name TEXT NOT NULL, entry_key TEXT NOT NULL, entry_value TEXT NOT NULL, \
             expires_at INTEGER, version INTEGER NOT NULL DEFAULT 0, ROWID INT DEFAULT 1, _rowid_ AS (1), oid TEXT DEFAULT 'o', \
             PRIMARY KEY (group_name, entry_key))",
        ),
        (
            "rowid and _rowid_ taken: oid",
            "CREATE TABLE entries (group_name TEXT NOT NULL, entry_key TEXT NOT NULL, entry_value TEXT NOT NULL, \
             expires_at INTEGER, version INTEGER NOT NULL DEFAULT 0, rowid INT DEFAULT 1, _rowid_ INT DEFAULT 1, \
             PRIMARY KEY (group_name, entry_key))",
        ),
    ] {
        let (_dir, path) = raw_built_file(create);
        {
            let c = raw(&path);
            // Foreign rows: 20 expired (BLOB and INTEGER keys among them), 20 live with the
            // same spellings as text.
            c.execute_batch(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20)
                 INSERT INTO entries (group_name, entry_key, entry_value, expires_at)
                   SELECT 'old', CASE i % 3 WHEN 0 THEN CAST(('k' || i) AS BLOB) WHEN 1 THEN i ELSE 'k' || i END,
                          'dead', 1000 FROM n;
                 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20)
                 INSERT INTO entries (group_name, entry_key, entry_value, expires_at)
                   SELECT 'live', 'k' || i, 'v', NULL FROM n;",
            )
            .unwrap();
        }
        let before = rows(&path).len();
        let store = Store::open_with(StoreConfig::file(&path).with_purge_interval(Duration::from_millis(50)))
            .unwrap();
        let (seen, _g) = events_of(&store);
        let start_seq = store.changes_since(0, 10_000).map(|b| b.next_seq).unwrap_or(0);
        for i in 0..30 {
            store
                .set_with_ttl("t", &format!("e{i}"), "v", Duration::from_millis(1))
                .unwrap();
            store.set("t", &format!("l{i}"), "v").unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && rows(&path).len() != 50 {
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(200));
        let left = rows(&path);
        let ev = seen.lock().unwrap().clone();
        let expired: Vec<_> = ev.iter().filter(|e| e.0 == EventKind::Expired).collect();
        let bad_ev: Vec<_> = expired
            .iter()
            .filter(|e| e.1 == "live" || e.2.as_deref().is_some_and(|k| k.starts_with('l')))
            .collect();
        let feed = store
            .changes_since(start_seq, 10_000)
            .map(|b| b.changes.iter().filter(|c| c.kind == EventKind::Expired).count());
        let live_ok = store.count("live").unwrap() == 20 && store.count("t").unwrap() == 30;
        if before != 40
            || left.len() != 50
            || expired.len() != 50
            || !bad_ev.is_empty()
            || feed.as_ref().ok() != Some(&50)
            || !live_ok
        {
            bad.push(format!(
                "{label}: rows left {} (want 50), expired events {} (want 50), on live rows {bad_ev:?}, feed {feed:?}, live ok {live_ok}",
                left.len(),
                expired.len()
            ));
        }
        store.close().unwrap();
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

/// The purge after a write near a namespace's quota (≥128 expired rows), on foreign tables,
/// and a scoped `purge_expired`, `delete_group` and `delete_prefix` with expired rows.
#[test]
fn quota_triggered_and_scoped_purges_on_foreign_tables() {
    let mut bad = Vec::new();
    for (label, create) in [
        (
            "WITHOUT ROWID",
            "CREATE TABLE entries (group_name TEXT NOT NULL, entry_key TEXT NOT NULL, entry_value TEXT NOT NULL, \
             expires_at INTEGER, version INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (group_name, entry_key)) WITHOUT ROWID",
        ),
        (
            "all three names taken",
            "CREATE TABLE entries (group_name TEXT NOT NULL, entry_key TEXT NOT NULL, entry_value TEXT NOT NULL, \
             expires_at INTEGER, version INTEGER NOT NULL DEFAULT 0, \"RowID\" INT DEFAULT 0, \"_ROWID_\" INT DEFAULT 0, \"Oid\" INT DEFAULT 0, \
             PRIMARY KEY (group_name, entry_key))",
        ),
        (
            "rowid taken",
            "CREATE TABLE entries (group_name TEXT NOT NULL, entry_key TEXT NOT NULL, entry_value TEXT NOT NULL, \
             expires_at INTEGER, version INTEGER NOT NULL DEFAULT 0, rowid INT DEFAULT 0, \
             PRIMARY KEY (group_name, entry_key))",
        ),
    ] {
        let (_dir, path) = raw_built_file(create);
        let (store, clock) = open_manual(&path);
        let ns = store
            .scoped_with(ScopedConfig::new("ns").with_quota(Quota {
                max_keys: 200,
                ..Default::default()
            }))
            .unwrap();
        // 150 expiring rows in the namespace, 40 live ones, and rows outside it.
        ns.transaction(|tx| {
            for i in 0..150 {
                tx.set_with_ttl("a", &format!("e{i:03}"), "v", Duration::from_millis(10))?;
            }
            for i in 0..40 {
                tx.set("a", &format!("l{i:03}"), "v")?;
            }
            Ok(())
        })
        .unwrap();
        for i in 0..10 {
            store
                .set_with_ttl("other", &format!("e{i}"), "v", Duration::from_millis(10))
                .unwrap();
            store.set("other", &format!("l{i}"), "v").unwrap();
        }
        clock.advance(Duration::from_secs(1));
        let (seen, _g) = events_of(&store);
        // 190 counted + 11 > 200: refused in O(1), checked against live usage (150 expired ≥ 128).
        let mut writes = Vec::new();
        for i in 0..11 {
            writes.push(ns.set("b", &format!("n{i}"), "v").map_err(|e| e.to_string()));
        }
        let ns_rows: i64 = raw(&path)
            .query_row(
                "SELECT count(*) FROM entries WHERE group_name LIKE 'ns:%'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let ev = seen.lock().unwrap().clone();
        let expired = ev.iter().filter(|e| e.0 == EventKind::Expired).count();
        if writes.iter().any(|w| w.is_err()) || ns_rows != 51 || expired != 150 {
            bad.push(format!(
                "{label}: quota purge: writes {:?}, ns rows {ns_rows} (want 51), expired events {expired} (want 150)",
                writes.iter().filter(|w| w.is_err()).collect::<Vec<_>>()
            ));
        }
        // Scoped purge must not touch `other`.
        let p = ns.purge_expired();
        let other_rows: i64 = raw(&path)
            .query_row(
                "SELECT count(*) FROM entries WHERE group_name = 'other'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        if p.as_ref().ok() != Some(&0) || other_rows != 20 {
            bad.push(format!("{label}: scoped purge {p:?}, other rows {other_rows}"));
        }
        // delete_group / delete_prefix with expired rows.
        for i in 0..5 {
            ns.set_with_ttl("c", &format!("e{i}"), "v", Duration::from_millis(10))
                .unwrap();
            ns.set_with_ttl("d", &format!("e{i}"), "v", Duration::from_millis(10))
                .unwrap();
        }
        ns.set("c", "live", "v").unwrap();
        clock.advance(Duration::from_secs(1));
        seen.lock().unwrap().clear();
        let dg = ns.delete_group("c");
        let dp = ns.delete_prefix("d");
        let unscoped = store.purge_expired();
        let left: i64 = raw(&path)
            .query_row(
                "SELECT count(*) FROM entries WHERE expires_at IS NOT NULL",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let ev = seen.lock().unwrap().clone();
        let expired = ev.iter().filter(|e| e.0 == EventKind::Expired).count();
        if dg.is_err() || dp.is_err() || unscoped.as_ref().ok() != Some(&10) || left != 0 || expired != 20 {
            bad.push(format!(
                "{label}: delete_group {dg:?}, delete_prefix {dp:?}, purge {unscoped:?} (want 10), expiring rows left {left}, expired events {expired} (want 20)"
            ));
        }
        if store.count("other").unwrap() != 10 || ns.count("a").unwrap() != 40 || ns.count("b").unwrap() != 11
        {
            bad.push(format!("{label}: live rows lost"));
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

/// A table without row ids whose key columns collate NOCASE: each delete of the purge by key
/// finds its row through the key index (compared only bytewise, no index could serve it, and
/// each of a batch's deletes scanned every expired row: 48 s for these 20,000, h180). The
/// live row stays.
#[test]
fn the_purge_by_key_finds_rows_through_a_nocase_key() {
    let (_dir, path) = raw_built_file(&format!(
        "CREATE TABLE entries ({NOCASE_COLS}, PRIMARY KEY (group_name, entry_key)) WITHOUT ROWID;
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
         INSERT INTO entries (group_name, entry_key, entry_value, expires_at)
           SELECT 'g', 'k' || i, 'dead', {EXPIRED_AT} FROM n;
         INSERT INTO entries (group_name, entry_key, entry_value) VALUES ('G', 'LIVE', 'v');"
    ));
    let (store, _clock) = open_manual(&path);
    let (purged, store) = crate::common::within(Duration::from_secs(30), move || {
        (store.purge_expired().unwrap(), store)
    });
    assert_eq!(purged, 20_000);
    assert_eq!(rows(&path), ["'G'|'LIVE'"]);
    assert_eq!(store.get("g", "live").unwrap(), "v");
}
