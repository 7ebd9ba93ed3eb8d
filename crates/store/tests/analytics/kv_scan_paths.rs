//! The chunked `kv_entries` scan against odd paths (symlinks, special characters, `..`, renamed
//! directories, hard links, a name that is not UTF-8), VACUUM, explicit row ids, other
//! programs' schemas with columns named like the row id (which must decide neither what a scan
//! reads nor what the purge deletes), reader settings, many stores, mid-way errors and the
//! Service (h178's attacks).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use store::analytics::{Analytics, Value};
use store::{Kv, Store, StoreConfig};

use crate::common::{raw, raw_built_file, within};
use crate::kv_scan_edges::scanned;
use crate::support::fill;

fn groups(db: &Analytics) -> Vec<Vec<Value>> {
    db.query(
        "SELECT group_name, count(*), count(DISTINCT entry_key) FROM kv_entries GROUP BY 1 ORDER BY 1",
        &[],
    )
    .unwrap()
    .rows
}

fn g(name: &str, n: i64) -> Vec<Value> {
    vec![Value::Text(name.into()), Value::Int(n), Value::Int(n)]
}

fn checkpoint_busy(real_file: &Path) -> i64 {
    crate::kv_scan_edges::wal_checkpoint_truncate(real_file).0
}

/// Whether a held streamed scan holds a SQLite snapshot (the chunked path: a truncating
/// checkpoint after a later write is blocked) rather than rows loaded at once.
fn scan_is_chunked(db: &Analytics, store: &Store, real_file: &Path) -> bool {
    let mut s = db.query_arrow("SELECT * FROM kv_entries", &[]).unwrap();
    s.next().unwrap().unwrap();
    store.set("probe", "p", "1").unwrap();
    let busy = checkpoint_busy(real_file);
    drop(s);
    store.delete("probe", "p").unwrap();
    busy == 1
}

fn open(path: impl AsRef<Path>) -> Store {
    Store::open_with(StoreConfig::file(path.as_ref()).with_purge_interval(Duration::ZERO)).unwrap()
}

fn intruder(path: &Path) {
    let s = open(path);
    fill(&s, "intruder", 3000, |i| i.to_string());
    s.close().unwrap();
}

/// The store opened through a file symlink; the symlink then re-pointed at another database.
#[test]
fn file_symlink_then_repointed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("real")).unwrap();
    let real = dir.path().join("real/state.db");
    let link = dir.path().join("link.db");
    let other = dir.path().join("other.db");
    intruder(&other);
    {
        // create the real file first, so the symlink has a target
        let s = open(&real);
        s.close().unwrap();
    }
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let store = open(&link);
    fill(&store, "g", 5000, |i| i.to_string());
    let db = Analytics::in_memory().unwrap();
    db.attach_kv(&store).unwrap();
    assert_eq!(groups(&db), vec![g("g", 5000)]);
    assert!(scan_is_chunked(&db, &store, &real), "symlinked store not chunked");
    // re-point
    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink(&other, &link).unwrap();
    store.set("g", "after", "x").unwrap();
    assert_eq!(store.count("g").unwrap(), 5001);
    assert_eq!(groups(&db), vec![g("g", 5001)]);
    assert!(
        scan_is_chunked(&db, &store, &real),
        "re-pointed symlink: scan fell back (the real file is unchanged)"
    );
}

/// The store opened in a directory reached through a directory symlink, then the symlink
/// re-pointed at a directory holding another store's `state.db`.
#[test]
fn directory_symlink_then_repointed() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, link) = (dir.path().join("a"), dir.path().join("b"), dir.path().join("cur"));
    std::fs::create_dir(&a).unwrap();
    std::fs::create_dir(&b).unwrap();
    intruder(&b.join("state.db"));
    std::os::unix::fs::symlink(&a, &link).unwrap();
    let store = open(link.join("state.db"));
    fill(&store, "g", 4500, |i| i.to_string());
    let db = Analytics::in_memory().unwrap();
    db.attach_kv(&store).unwrap();
    assert_eq!(groups(&db), vec![g("g", 4500)]);
    assert!(scan_is_chunked(&db, &store, &a.join("state.db")));
    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink(&b, &link).unwrap();
    assert_eq!(groups(&db), vec![g("g", 4500)]);
}

/// Paths with characters SQLite URIs give a meaning to, spaces, unicode, `file:` names.
#[test]
fn special_character_paths() {
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "q?mode=memory.db",
        "hash#frag.db",
        "pct%20x%00.db",
        "sp ace  .db",
        "ünï cødé ✓.db",
        "file:x.db",
        "file:x.db?mode=ro",
        ":memory:",
        "a'b\"c.db",
        "new\nline.db",
    ] {
        let sub = dir.path().join(format!("d {}", name.len()));
        std::fs::create_dir_all(&sub).unwrap();
        // a directory component with the same characters too
        let inner = sub.join(name.replace(".db", "") + "-dir");
        std::fs::create_dir_all(&inner).unwrap();
        let path = inner.join(name);
        let store = open(&path);
        fill(&store, "g", 2100, |i| i.to_string());
        assert!(path.exists(), "{name}: not at its path");
        let db = Analytics::in_memory().unwrap();
        db.attach_kv(&store).unwrap();
        assert_eq!(groups(&db), vec![g("g", 2100)], "{name}");
        assert!(
            scan_is_chunked(&db, &store, &path),
            "{name}: scan fell back to loading all"
        );
        store.close().unwrap();
    }
}

/// A path that is not valid UTF-8 (Linux allows any bytes but `/` and NUL).
#[test]
fn non_utf8_path() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir
        .path()
        .join(std::ffi::OsStr::from_bytes(b"bad\xff\xfename.db"));
    let store = open(&path);
    fill(&store, "g", 3000, |i| i.to_string());
    let db = Analytics::in_memory().unwrap();
    db.attach_kv(&store).unwrap();
    assert_eq!(groups(&db), vec![g("g", 3000)]);
    assert!(
        scan_is_chunked(&db, &store, &path),
        "non-UTF-8 path: the scan fell back to reading everything at once"
    );
}

/// A relative path with `..` components, one of them after a symlinked directory (the kernel
/// resolves `link/..` to the link target's parent).
#[test]
fn relative_path_with_dotdot_through_a_symlink() {
    let dir = tempfile::tempdir().unwrap();
    let (x, y) = (dir.path().join("x"), dir.path().join("y/deep"));
    std::fs::create_dir_all(&x).unwrap();
    std::fs::create_dir_all(&y).unwrap();
    std::os::unix::fs::symlink(&y, x.join("lnk")).unwrap();
    // dir/x/lnk/../state.db is dir/y/state.db for the kernel, dir/x/state.db textually
    intruder(&x.join("state.db"));
    let cwd = std::env::current_dir().unwrap();
    let ups = "../".repeat(cwd.components().count() - 1);
    let rel = PathBuf::from(format!(
        "{ups}{}/x/lnk/../state.db",
        dir.path().strip_prefix("/").unwrap().display()
    ));
    let store = open(&rel);
    fill(&store, "g", 3000, |i| i.to_string());
    let kernel = dir.path().join("y/state.db");
    assert!(kernel.exists(), "SQLite did not open what the kernel resolves");
    let db = Analytics::in_memory().unwrap();
    db.attach_kv(&store).unwrap();
    assert_eq!(groups(&db), vec![g("g", 3000)]);
    assert!(scan_is_chunked(&db, &store, &kernel));
}

/// The store's directory renamed while open; later another store appears at the old path.
#[test]
fn directory_renamed_while_open() {
    let dir = tempfile::tempdir().unwrap();
    let d1 = dir.path().join("d1");
    std::fs::create_dir(&d1).unwrap();
    let store = open(d1.join("state.db"));
    fill(&store, "g", 3000, |i| i.to_string());
    let db = Analytics::in_memory().unwrap();
    db.attach_kv(&store).unwrap();
    std::fs::rename(&d1, dir.path().join("d2")).unwrap();
    store.set("g", "after-rename", "1").unwrap();
    assert_eq!(groups(&db), vec![g("g", 3001)]);
    std::fs::create_dir(&d1).unwrap();
    intruder(&d1.join("state.db"));
    store.set("g", "after-intruder", "1").unwrap();
    assert_eq!(groups(&db), vec![g("g", 3002)]);
    // renamed back: the chunked path is used again
    std::fs::remove_dir_all(&d1).unwrap();
    std::fs::rename(dir.path().join("d2"), &d1).unwrap();
    assert_eq!(groups(&db), vec![g("g", 3002)]);
    assert!(scan_is_chunked(&db, &store, &d1.join("state.db")));
}

/// A hard link to the file: the store opened through it, and the original name then replaced.
#[test]
fn hard_link_to_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let orig = dir.path().join("orig.db");
    let hard = dir.path().join("hard.db");
    {
        let s = open(&orig);
        s.set("g", "seed", "1").unwrap();
        s.close().unwrap();
    }
    std::fs::hard_link(&orig, &hard).unwrap();
    let store = open(&hard);
    fill(&store, "g", 3000, |i| i.to_string());
    let db = Analytics::in_memory().unwrap();
    db.attach_kv(&store).unwrap();
    assert_eq!(groups(&db), vec![g("g", 3001)]);
    assert!(scan_is_chunked(&db, &store, &hard));
    std::fs::remove_file(&orig).unwrap();
    intruder(&orig);
    assert_eq!(groups(&db), vec![g("g", 3001)]);
}

/// VACUUM by another connection between scans and while a streamed scan is held: the held scan
/// still reads its one snapshot, every row once.
#[test]
fn vacuum_between_and_during_scans() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let store = open(&path);
    fill(&store, "g", 9000, |i| i.to_string());
    // gaps in the rowids
    store
        .transaction(|tx| {
            for i in (0..9000).step_by(3) {
                tx.delete("g", &format!("k{i:06}"))?;
            }
            Ok(())
        })
        .unwrap();
    let db = Analytics::in_memory().unwrap();
    db.attach_kv(&store).unwrap();
    let before = scanned(&db, "kv_entries");
    assert_eq!(before.len(), 6000);
    raw(&path).execute_batch("VACUUM").unwrap();
    assert_eq!(scanned(&db, "kv_entries"), before, "after a VACUUM between scans");

    let mut s = db
        .query_arrow("SELECT group_name, entry_key FROM kv_entries", &[])
        .unwrap();
    let mut keys: BTreeMap<String, usize> = BTreeMap::new();
    let take = |b: duckdb::arrow::record_batch::RecordBatch, keys: &mut BTreeMap<String, usize>| {
        let col = b
            .column(1)
            .as_any()
            .downcast_ref::<duckdb::arrow::array::StringArray>()
            .unwrap()
            .clone();
        for v in col.iter() {
            *keys.entry(v.unwrap().to_string()).or_insert(0) += 1;
        }
    };
    take(s.next().unwrap().unwrap(), &mut keys);
    // renumbering candidates: delete low rows, insert new ones, vacuum
    store
        .transaction(|tx| {
            for i in (1..3000).step_by(3) {
                tx.delete("g", &format!("k{i:06}"))?;
            }
            for i in 0..3000 {
                tx.set("new", &format!("n{i:06}"), "x")?;
            }
            Ok(())
        })
        .unwrap();
    let v = raw(&path).execute_batch("VACUUM");
    eprintln!("VACUUM during the held scan: {v:?}");
    for b in s {
        take(b.unwrap(), &mut keys);
    }
    let dup: Vec<_> = keys.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dup.is_empty(), "rows seen twice: {}", dup.len());
    assert_eq!(keys.len(), 6000, "rows of the snapshot");
    assert!(keys.keys().all(|k| k.starts_with('k')));
    assert_eq!(groups(&db), vec![g("g", 6000 - 1000), g("new", 3000)]);
}

/// Rows another program inserted with explicit rowids: negative, zero, i64::MIN, i64::MAX,
/// spread across chunk boundaries.
#[test]
fn explicit_extreme_rowids() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let store = open(&path);
    fill(&store, "g", 2500, |i| i.to_string());
    {
        let mut c = raw(&path);
        let tx = c.transaction().unwrap();
        {
            let mut ins = tx
                .prepare("INSERT INTO entries (rowid, group_name, entry_key, entry_value) VALUES (?1, 'f', ?2, 'v')")
                .unwrap();
            let mut ids = vec![i64::MIN, i64::MIN + 1, -1, 0, i64::MAX, i64::MAX - 1];
            ids.extend((1..=5000).map(|i| -(i * 1000)));
            ids.extend((1..=2047).map(|i| i64::MAX - 1 - i));
            for (n, id) in ids.iter().enumerate() {
                ins.execute(rusqlite::params![id, format!("f{n:06}")]).unwrap();
            }
        }
        tx.commit().unwrap();
    }
    let db = Analytics::in_memory().unwrap();
    db.attach_kv(&store).unwrap();
    assert_eq!(groups(&db), vec![g("f", 6 + 5000 + 2047), g("g", 2500)]);
    // the store's own writes with the rowid space topped out
    store.set("g", "late", "1").unwrap();
    assert_eq!(groups(&db), vec![g("f", 6 + 5000 + 2047), g("g", 2501)]);
}

/// An INTEGER PRIMARY KEY alias in another program's table, with negative ids.
#[test]
fn integer_primary_key_alias() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    {
        let c = raw(&path);
        c.execute_batch(
            "CREATE TABLE entries (id INTEGER PRIMARY KEY, group_name TEXT NOT NULL, entry_key TEXT NOT NULL,
               entry_value TEXT NOT NULL, expires_at INTEGER, version INTEGER NOT NULL DEFAULT 0,
               UNIQUE (group_name, entry_key));
             BEGIN;",
        )
        .unwrap();
        let mut ins = c
            .prepare("INSERT INTO entries (id, group_name, entry_key, entry_value) VALUES (?1, 'f', ?2, 'v')")
            .unwrap();
        for i in 0..5000i64 {
            ins.execute(rusqlite::params![
                -(i * 7919 % 5003) - 1 - i * 5003,
                format!("f{i:06}")
            ])
            .unwrap();
        }
        drop(ins);
        c.execute_batch("COMMIT").unwrap();
    }
    let store = open(&path);
    fill(&store, "g", 2100, |i| i.to_string());
    let db = Analytics::in_memory().unwrap();
    db.attach_kv(&store).unwrap();
    assert_eq!(groups(&db), vec![g("f", 5000), g("g", 2100)]);
    assert!(scan_is_chunked(&db, &store, &path));
}

fn foreign(create: &str, n: usize) -> (tempfile::TempDir, PathBuf, Store) {
    let (dir, path) = raw_built_file(create);
    {
        let mut c = raw(&path);
        let tx = c.transaction().unwrap();
        let mut ins = tx
            .prepare("INSERT INTO entries (group_name, entry_key, entry_value) VALUES ('f', ?1, 'v')")
            .unwrap();
        for i in 0..n {
            ins.execute([format!("f{i:06}")]).unwrap();
        }
        drop(ins);
        tx.commit().unwrap();
    }
    let store = open(&path);
    (dir, path, store)
}

const BASE: &str = "group_name TEXT NOT NULL, entry_key TEXT NOT NULL, entry_value TEXT NOT NULL, \
                    expires_at INTEGER, version INTEGER NOT NULL DEFAULT 0";

/// Columns named `oid` and `_rowid_` (which do not shadow `rowid`), and `rowid` / `ROWID`
/// (which do), with junk values.
#[test]
fn columns_named_like_the_rowid() {
    for extra in [
        "oid INTEGER DEFAULT 0",
        "_rowid_ INTEGER DEFAULT 0",
        "oid INTEGER DEFAULT 0, _rowid_ INTEGER DEFAULT 0",
        "rowid INTEGER DEFAULT 0",
        "ROWID TEXT DEFAULT 'x'",
        "\"RoWiD\" INTEGER DEFAULT 0, oid INTEGER DEFAULT 0, _rowid_ INTEGER DEFAULT 0",
    ] {
        let (_dir, _path, store) = foreign(
            &format!("CREATE TABLE entries ({BASE}, {extra}, PRIMARY KEY (group_name, entry_key))"),
            5000,
        );
        let db = Analytics::in_memory().unwrap();
        db.attach_kv(&store).unwrap();
        assert_eq!(groups(&db), vec![g("f", 5000)], "{extra}");
    }
}

/// A generated column named `rowid`: `pragma_table_info` hides generated columns, so the
/// shadowing check does not see it, and the chunk query's `rowid` is that column.
#[test]
fn generated_column_named_rowid() {
    let mut bad = Vec::new();
    for extra in [
        "rowid INTEGER GENERATED ALWAYS AS (0) VIRTUAL",
        "rowid INTEGER GENERATED ALWAYS AS (length(entry_value)) STORED",
        "rowid INTEGER AS (-length(entry_key))",
        "rowid TEXT AS ('x' || entry_key)",
    ] {
        let (_dir, _path, store) = foreign(
            &format!("CREATE TABLE entries ({BASE}, {extra}, PRIMARY KEY (group_name, entry_key))"),
            5000,
        );
        let db = Analytics::in_memory().unwrap();
        db.attach_kv(&store).unwrap();
        let r = db.query(
            "SELECT group_name, count(*), count(DISTINCT entry_key) FROM kv_entries GROUP BY 1 ORDER BY 1",
            &[],
        );
        let got = r.map(|r| r.rows).map_err(|e| e.to_string());
        if got != Ok(vec![g("f", 5000)]) {
            bad.push(format!("{extra}: {got:?}"));
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

/// The purge deletes the expired rows it found by row id, or by key in a table without row
/// ids: a column another program named `rowid` (plain or generated) once made it delete every
/// live row whose column matched (h178). Each schema holds 10 live rows in `f`, then one
/// entry expires and is purged.
#[test]
fn the_purge_deletes_only_expired_rows_whatever_the_columns_are_named() {
    for extra in [
        ", rowid INTEGER GENERATED ALWAYS AS (0) VIRTUAL, PRIMARY KEY (group_name, entry_key))",
        ", rowid INTEGER DEFAULT 0, PRIMARY KEY (group_name, entry_key))",
        ", rowid INTEGER DEFAULT 0, _rowid_ INTEGER DEFAULT 0, oid INTEGER DEFAULT 0, \
           PRIMARY KEY (group_name, entry_key))",
        ", PRIMARY KEY (group_name, entry_key)) WITHOUT ROWID",
    ] {
        let (_dir, path, store) = foreign(&format!("CREATE TABLE entries ({BASE}{extra}"), 10);
        drop(store);
        let clock = std::sync::Arc::new(store::ManualClock::new(1_000_000));
        let store = Store::open_with(
            StoreConfig::file(path.clone())
                .with_clock(clock.clone())
                .with_purge_interval(Duration::ZERO),
        )
        .unwrap();
        store
            .set_with_ttl("t", "x", "v", Duration::from_millis(1))
            .unwrap();
        store
            .set_with_ttl("t", "y", "v", Duration::from_secs(60))
            .unwrap();
        clock.advance(Duration::from_secs(1));
        assert_eq!(store.purge_expired().unwrap(), 1, "{extra}");
        assert_eq!(
            store.count("f").unwrap(),
            10,
            "{extra}: live rows removed by the purge"
        );
        assert_eq!(
            raw(&path)
                .query_row("SELECT count(*) FROM entries", [], |r| r.get::<_, i64>(0))
                .unwrap(),
            11,
            "{extra}"
        );
        let db = Analytics::in_memory().unwrap();
        db.attach_kv(&store).unwrap();
        assert_eq!(scalar_count(&db), 11, "{extra}");
    }
}

fn scalar_count(db: &Analytics) -> i64 {
    match db
        .query_row("SELECT count(*) FROM kv_entries", &[])
        .unwrap()
        .unwrap()
        .values[0]
    {
        Value::Int(n) => n,
        ref other => panic!("count: {other:?}"),
    }
}

/// `entries` with extra columns, and `entries` replaced by a view (by another program, while
/// the store is open).
#[test]
fn extra_columns_and_a_view() {
    let (_dir, path, store) = foreign(
        &format!(
            "CREATE TABLE entries (pre BLOB, {BASE}, post TEXT DEFAULT 'p', PRIMARY KEY (group_name, entry_key))"
        ),
        5000,
    );
    let db = Analytics::in_memory().unwrap();
    db.attach_kv(&store).unwrap();
    assert_eq!(groups(&db), vec![g("f", 5000)]);
    assert!(scan_is_chunked(&db, &store, &path));
    // replaced by a view over a copy
    let t = std::time::Instant::now();
    raw(&path)
        .execute_batch(
            "BEGIN; CREATE TABLE entries_real AS SELECT * FROM entries; DROP TABLE entries;
             CREATE VIEW entries AS SELECT * FROM entries_real; COMMIT;",
        )
        .unwrap();
    eprintln!("replace by a view took {:?}", t.elapsed());
    let t = std::time::Instant::now();
    let r = db.query(
        "SELECT group_name, count(*), count(DISTINCT entry_key) FROM kv_entries GROUP BY 1 ORDER BY 1",
        &[],
    );
    eprintln!("view scan took {:?}", t.elapsed());
    eprintln!(
        "view: {:?}",
        r.as_ref().map(|r| &r.rows).map_err(|e| e.to_string())
    );
    if let Ok(r) = r {
        assert_eq!(r.rows, vec![g("f", 5000)]);
    }
    let t = std::time::Instant::now();
    drop(db);
    let c = store.close();
    eprintln!("close took {:?}: {c:?}", t.elapsed());
}

#[test]
fn readers_zero_and_no_mmap() {
    for (readers, mmap) in [(0usize, 0u64), (0, 1 << 20), (4, 0), (1, 0)] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let mut config = StoreConfig::file(&path).with_purge_interval(Duration::ZERO);
        config.readers = readers;
        config.reader_mmap_bytes = mmap;
        let store = Store::open_with(config).unwrap();
        fill(&store, "g", 4100, |i| i.to_string());
        let db = Analytics::in_memory().unwrap();
        db.attach_kv(&store).unwrap();
        assert_eq!(groups(&db), vec![g("g", 4100)], "readers={readers} mmap={mmap}");
        assert!(
            scan_is_chunked(&db, &store, &path),
            "readers={readers} mmap={mmap}"
        );
        // a streamed scan held while the store writes on this thread and reads
        let mut s = db.query_arrow("SELECT entry_key FROM kv_entries", &[]).unwrap();
        let mut n = s.next().unwrap().unwrap().num_rows();
        store.set("g", "during", "1").unwrap();
        assert_eq!(store.get("g", "during").unwrap(), "1");
        assert_eq!(store.count("g").unwrap(), 4101);
        for b in s {
            n += b.unwrap().num_rows();
        }
        assert_eq!(n, 4100);
    }
}

fn fds_under(dir: &Path) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|p| p.starts_with(dir))
        .count()
}

/// Many stores, each attached to several handles, in one process.
#[test]
fn many_stores_many_handles() {
    let dir = tempfile::tempdir().unwrap();
    let mut stores = Vec::new();
    for s in 0..30 {
        let store = open(dir.path().join(format!("s{s}.db")));
        fill(&store, &format!("s{s:02}"), 2049 + s, |i| i.to_string());
        stores.push(store);
    }
    let mut handles = Vec::new();
    for (s, store) in stores.iter().enumerate() {
        for _ in 0..3 {
            let db = Analytics::in_memory().unwrap();
            db.attach_kv(store).unwrap();
            handles.push((s, db));
        }
    }
    let base = fds_under(dir.path());
    for round in 0..3 {
        for (s, db) in &handles {
            assert_eq!(
                groups(db),
                vec![g(&format!("s{s:02}"), (2049 + s) as i64)],
                "round {round}"
            );
        }
    }
    let after = fds_under(dir.path());
    eprintln!(
        "fds after 3 rounds of {} scans over 30 stores: base {base}, after {after}",
        handles.len()
    );
    for _ in 0..5 {
        for (_, db) in &handles {
            groups(db);
        }
    }
    let after5 = fds_under(dir.path());
    eprintln!("after 5 more rounds: {after5}");
    assert!(after5 <= after, "fds keep growing: {after} -> {after5}");
    assert!(
        after <= base + 2 * stores.len(),
        "fds grew from {base} to {after}"
    );
    let base = after;
    // all held at once
    let mut streams = Vec::new();
    for (_, db) in &handles {
        let mut st = db.query_arrow("SELECT * FROM kv_entries", &[]).unwrap();
        st.next().unwrap().unwrap();
        streams.push(st);
    }
    let held = fds_under(dir.path());
    eprintln!("fds: base {base}, with {} held scans {held}", streams.len());
    drop(streams);
    let mut trail = vec![fds_under(dir.path())];
    for _ in 0..4 {
        let mut streams = Vec::new();
        for (_, db) in &handles {
            let mut st = db.query_arrow("SELECT * FROM kv_entries", &[]).unwrap();
            st.next().unwrap().unwrap();
            streams.push(st);
        }
        drop(streams);
        trail.push(fds_under(dir.path()));
    }
    eprintln!("fds after each round of 90 held-then-dropped scans: {trail:?} (base {base})");
    assert!(
        trail.iter().all(|n| *n <= trail[0]),
        "fds keep growing: {trail:?}"
    );
    // one handle re-attached to every store in turn
    let db = Analytics::in_memory().unwrap();
    for (s, store) in stores.iter().enumerate() {
        db.attach_kv(store).unwrap();
        assert_eq!(groups(&db), vec![g(&format!("s{s:02}"), (2049 + s) as i64)]);
    }
}

/// A query failing on a row in the third chunk (and a streamed one failing there) releases the
/// scan's reader.
#[test]
fn query_failing_mid_scan_releases_the_reader() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let store = open(&path);
    fill(&store, "g", 6000, |i| i.to_string());
    store.set("g", "k005000", "not a number").unwrap();
    let db = Analytics::in_memory().unwrap();
    db.attach_kv(&store).unwrap();
    let base = fds_under(dir.path());
    for _ in 0..20 {
        let e = db
            .query("SELECT sum(CAST(entry_value AS INTEGER)) FROM kv_entries", &[])
            .unwrap_err();
        assert!(e.to_string().contains("not a number"), "{e}");
        let s = db
            .query_arrow("SELECT CAST(entry_value AS INTEGER) FROM kv_entries", &[])
            .unwrap();
        let mut failed = false;
        for b in s {
            if b.is_err() {
                failed = true;
                break;
            }
        }
        assert!(failed);
    }
    store.set("g", "tick", "1").unwrap();
    assert_eq!(
        checkpoint_busy(&path),
        0,
        "a failed scan still holds its snapshot"
    );
    let after = fds_under(dir.path());
    eprintln!("fds: base {base}, after 40 failed scans {after}");
    assert!(after <= base + 4, "fds grew from {base} to {after}");
    store.sync().unwrap();
}

/// Close racing scan opens on other threads: every scan either reads the full snapshot or
/// fails Closed; nothing panics or hangs.
#[test]
fn close_races_scan_opens() {
    for round in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path().join("state.db"));
        fill(&store, "g", 2500, |i| i.to_string());
        let threads: Vec<_> = (0..3)
            .map(|_| {
                let store = store.clone();
                std::thread::spawn(move || {
                    let db = Analytics::in_memory().unwrap();
                    db.attach_kv(&store).unwrap();
                    let mut out = Vec::new();
                    for _ in 0..20 {
                        out.push(
                            db.query("SELECT count(*) FROM kv_entries", &[])
                                .map(|r| r.rows[0][0].clone())
                                .map_err(|e| e.kind()),
                        );
                    }
                    out
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(round));
        store.close().unwrap();
        for t in threads {
            for r in within(Duration::from_secs(60), move || t.join().unwrap()) {
                match r {
                    Ok(v) => assert_eq!(v, Value::Int(2500)),
                    Err(k) => assert_eq!(k, store::ErrorKind::Closed),
                }
            }
        }
    }
}

/// The Service's `store/sql` after its home was reached through a symlink that is then
/// re-pointed.
#[test]
fn service_sql_through_a_repointed_home_symlink() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir(&a).unwrap();
    std::fs::create_dir(&b).unwrap();
    intruder(&b.join("state.db"));
    let link = dir.path().join("home");
    std::os::unix::fs::symlink(&a, &link).unwrap();
    let service = store::Service::open(store::ServiceConfig::new(&link)).unwrap();
    fill(service.store(), "g", 4000, |i| i.to_string());
    let q =
        serde_json::json!({"sql": "SELECT group_name, count(*) AS n FROM kv_entries GROUP BY 1 ORDER BY 1"});
    let r = service.call("store/sql", q.clone()).unwrap();
    assert_eq!(r["rows"], serde_json::json!([["g", 4000]]));
    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink(&b, &link).unwrap();
    let r = service.call("store/sql", q).unwrap();
    assert_eq!(r["rows"], serde_json::json!([["g", 4000]]));
    service.close().unwrap();
}
