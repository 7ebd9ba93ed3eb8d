//! SPEC §3.2: schema creation and migrations from hand-built old-schema files, and
//! compatibility with the Go program's `entries` layout.

use std::time::Duration;

use store::{Error, ErrorKind, Kv, Store, StoreConfig};

use crate::common::{START_MS, open_manual, raw, raw_built_file, raw_columns, raw_has_object, raw_rows};

#[test]
fn new_file_gets_the_entries_table_with_every_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let (store, _) = open_manual(&path);
    store.set("g", "k", "v").unwrap();
    let cols = raw_columns(&path, "entries");
    for c in ["group_name", "entry_key", "entry_value", "expires_at", "version"] {
        assert!(cols.iter().any(|x| x == c), "missing column {c}: {cols:?}");
    }
    assert!(raw_has_object(&path, "entries_expires_at_idx"));
}

#[test]
fn entries_without_expires_at_gains_expiry_and_version_and_old_rows_never_expire() {
    let (_dir, path) = raw_built_file(
        "CREATE TABLE entries (group_name TEXT NOT NULL, entry_key TEXT NOT NULL,
             entry_value TEXT NOT NULL, PRIMARY KEY (group_name, entry_key));
         INSERT INTO entries VALUES ('config', 'pool', 'eu-west'), ('config', 'wallet', 'w1');",
    );
    let (store, clock) = open_manual(&path);
    let cols = raw_columns(&path, "entries");
    assert!(cols.iter().any(|c| c == "expires_at"), "{cols:?}");
    assert!(cols.iter().any(|c| c == "version"), "{cols:?}");

    let got = store.get_with_version("config", "pool").unwrap();
    assert_eq!(
        (got.value.as_str(), got.version, got.expires_at),
        ("eu-west", 0, None)
    );
    clock.advance(Duration::from_secs(10 * 365 * 24 * 3600));
    assert_eq!(store.count("config").unwrap(), 2, "old rows have no expiry");

    // New writes get real versions and TTLs.
    let v = store.set("config", "pool", "us-east").unwrap();
    assert!(v >= 1);
    store
        .set_with_ttl("config", "tmp", "x", Duration::from_secs(1))
        .unwrap();
    assert!(
        store
            .get_with_version("config", "tmp")
            .unwrap()
            .expires_at
            .is_some()
    );
    drop(store);
    // Reopening a migrated file is a no-op.
    let (again, _) = open_manual(&path);
    assert_eq!(again.get("config", "pool").unwrap(), "us-east");
}

#[test]
fn legacy_kv_table_migrates_with_no_expiry_and_is_dropped() {
    let (_dir, path) = raw_built_file(
        "CREATE TABLE kv (grp TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
             PRIMARY KEY (grp, key));
         INSERT INTO kv VALUES ('config', 'pool', 'eu-west'), ('config', 'wallet', 'w1'),
                               ('other', 'k', 'v');",
    );
    let (store, _) = open_manual(&path);
    assert!(!raw_has_object(&path, "kv"), "legacy table is dropped");
    assert_eq!(store.count_all("").unwrap(), 3);
    let got = store.get_with_version("config", "pool").unwrap();
    assert_eq!(
        (got.value.as_str(), got.version, got.expires_at),
        ("eu-west", 0, None)
    );
    assert_eq!(store.get("other", "k").unwrap(), "v");
    let expiries: i64 = raw(&path)
        .query_row(
            "SELECT count(*) FROM entries WHERE expires_at IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(expiries, 0);
}

#[test]
fn legacy_rows_merge_into_existing_entries_and_existing_rows_win() {
    let (_dir, path) = raw_built_file(
        "CREATE TABLE entries (group_name TEXT NOT NULL, entry_key TEXT NOT NULL,
             entry_value TEXT NOT NULL, expires_at INTEGER, PRIMARY KEY (group_name, entry_key));
         INSERT INTO entries VALUES ('config', 'pool', 'from-entries', NULL);
         CREATE TABLE kv (grp TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL);
         INSERT INTO kv VALUES ('config', 'pool', 'from-kv'), ('config', 'wallet', 'w-from-kv');",
    );
    let (store, _) = open_manual(&path);
    assert_eq!(
        store.get("config", "pool").unwrap(),
        "from-entries",
        "existing row wins"
    );
    assert_eq!(
        store.get("config", "wallet").unwrap(),
        "w-from-kv",
        "new legacy row merged"
    );
    assert_eq!(store.count("config").unwrap(), 2);
    assert!(!raw_has_object(&path, "kv"));
}

#[test]
fn legacy_kv_with_expires_at_keeps_its_expiry() {
    let past = START_MS - 1;
    let future = START_MS + 60_000;
    let (_dir, path) = raw_built_file(&format!(
        "CREATE TABLE kv (grp TEXT, key TEXT, value TEXT, expires_at INTEGER);
         INSERT INTO kv VALUES ('s', 'gone', 'x', {past}), ('s', 'later', 'y', {future}),
                               ('s', 'forever', 'z', NULL);"
    ));
    let (store, clock) = open_manual(&path);
    assert!(!raw_has_object(&path, "kv"));
    assert_eq!(
        store.get_with_version("s", "later").unwrap().expires_at,
        Some(future)
    );
    assert_eq!(store.get_with_version("s", "forever").unwrap().expires_at, None);
    assert!(
        !store.exists("s", "gone").unwrap(),
        "already-expired legacy row stays expired"
    );
    assert_eq!(store.count("s").unwrap(), 2);
    clock.set(future);
    assert_eq!(
        store.get_all("s").unwrap().keys().collect::<Vec<_>>(),
        ["forever"]
    );
}

#[test]
fn an_index_named_entries_fails_with_ensure_schema() {
    let (_dir, path) = raw_built_file("CREATE TABLE t(x); CREATE INDEX entries ON t(x);");
    let err = Store::open(&path).unwrap_err();
    assert!(matches!(err, Error::Sqlite { .. }), "{err:?}");
    assert_eq!(err.op(), "Store::open");
    let msg = err.to_string();
    assert!(msg.contains("ensure schema"), "{msg}");
    if let Error::Sqlite { context, .. } = &err {
        assert_eq!(context, "ensure schema");
    }
}

#[test]
fn a_failed_migration_leaves_the_file_untouched() {
    let (_dir, path) = raw_built_file(
        "CREATE TABLE kv (grp TEXT, key TEXT, value TEXT);
         INSERT INTO kv VALUES ('g', 'k', 'v');
         CREATE TABLE t(x); CREATE INDEX entries ON t(x);",
    );
    let err = Store::open(&path).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Sqlite);
    assert!(err.to_string().contains("ensure schema"), "{err}");
    assert!(raw_has_object(&path, "kv"), "the legacy table is still there");
    assert!(
        !raw_has_object(&path, "store_meta"),
        "schema work was rolled back"
    );
    let n: i64 = raw(&path)
        .query_row("SELECT count(*) FROM kv", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1);
}

/// h159: a legacy row with a NULL value was skipped by the migration's `INSERT OR IGNORE` and
/// then dropped with the table. Rows `entries` cannot take now refuse the migration, naming
/// the first and the fix, and leave the file as it was; so do rows repeating a (grp, key).
#[test]
fn legacy_rows_that_cannot_move_refuse_the_migration_and_keep_the_file() {
    let cases = [
        (
            "CREATE TABLE kv (grp TEXT, key TEXT, value TEXT);
             INSERT INTO kv VALUES ('g', 'k', 'v'), ('g', 'n', NULL);",
            "NULL grp, key or value",
            2,
        ),
        (
            "CREATE TABLE kv (grp TEXT, key TEXT, value TEXT);
             INSERT INTO kv VALUES ('g', 'k', 'old'), ('g', 'k', 'new'), ('g', 'x', 'y');",
            "2 rows for grp 'g', key 'k'",
            3,
        ),
        // h161: an integer key and its text are one key in `entries` (TEXT columns): the check
        // compares what `entries` will store, not the legacy values as they are.
        (
            "CREATE TABLE kv (grp, key, value);
             INSERT INTO kv VALUES ('g', 1, 'from-integer'), ('g', '1', 'from-text');",
            "2 rows for grp 'g', key 1",
            2,
        ),
        // A non-UTF-8 BLOB name still gets the message (shown as an SQL literal).
        (
            "CREATE TABLE kv (grp, key, value);
             INSERT INTO kv VALUES (x'ff', 'k', NULL);",
            "grp X'FF', key 'k'",
            1,
        ),
    ];
    for (sql, says, rows) in cases {
        let (_dir, path) = raw_built_file(sql);
        let err = Store::open(&path).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Sqlite, "{err}");
        assert_eq!(err.op(), "Store::open");
        let msg = err.to_string();
        assert!(msg.contains("ensure schema"), "{msg}");
        assert!(msg.contains(says), "{msg}");
        assert!(msg.contains("then open the file again"), "{msg}");
        assert!(raw_has_object(&path, "kv"), "the legacy table is kept: {msg}");
        let n: i64 = raw(&path)
            .query_row("SELECT count(*) FROM kv", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, rows, "every legacy row is still there");
        assert!(
            !raw_has_object(&path, "store_meta"),
            "schema work was rolled back"
        );
    }
}

/// A legacy column of numeric affinity compares as `entries` does: its `1` is the text `'1'`
/// there, another key than an `entries` row `'1.0'`, so it moves (it was taken for that row
/// and dropped, h163).
#[test]
fn legacy_numeric_columns_compare_as_entries_compares_them() {
    let (_dir, path) = raw_built_file(&format!(
        "{GO_SCHEMA}
         INSERT INTO entries VALUES ('g', '1.0', 'from-entries', NULL), ('1.0', 'k', 'e', NULL);
         CREATE TABLE kv (grp INTEGER, key NUMERIC, value TEXT);
         INSERT INTO kv VALUES ('g', 1, 'legacy-key'), (1, 'k', 'legacy-group');"
    ));
    let (store, _) = open_manual(&path);
    assert_eq!(store.get("g", "1").unwrap(), "legacy-key");
    assert_eq!(store.get("g", "1.0").unwrap(), "from-entries");
    assert_eq!(store.get("1", "k").unwrap(), "legacy-group");
    assert_eq!(store.get("1.0", "k").unwrap(), "e");
    assert_eq!(store.count_all("").unwrap(), 4);
}

/// h161: what decides a repeat is the key as `entries` compares it (bytewise): a legacy column
/// declared `COLLATE NOCASE` holding `A` and `a` moves both. And a repeated key that `entries`
/// already holds is no refusal: `entries` wins over both legacy rows (SPEC §3.2).
#[test]
fn legacy_keys_compare_as_entries_compares_them() {
    let (_dir, path) = raw_built_file(&format!(
        "{GO_SCHEMA}
         INSERT INTO entries VALUES ('g', 'held', 'from-entries', NULL);
         CREATE TABLE kv (grp TEXT, key TEXT COLLATE NOCASE, value TEXT);
         INSERT INTO kv VALUES ('g', 'A', 'upper'), ('g', 'a', 'lower'),
                               ('g', 'held', 'legacy-1'), ('g', 'held', 'legacy-2');"
    ));
    let (store, _) = open_manual(&path);
    assert!(!raw_has_object(&path, "kv"));
    assert_eq!(store.get("g", "A").unwrap(), "upper");
    assert_eq!(store.get("g", "a").unwrap(), "lower");
    assert_eq!(store.get("g", "held").unwrap(), "from-entries");
    assert_eq!(store.count("g").unwrap(), 3);
}

/// A `kv` that is not the legacy table (another shape, or a virtual table such as a full-text
/// index) is left alone and does not send later opens through the schema work, which takes the
/// write lock: with another connection holding it, a reopen still succeeds (h161).
#[test]
fn a_foreign_kv_table_leaves_later_opens_lock_free() {
    for sql in [
        "CREATE TABLE kv (id INTEGER PRIMARY KEY, payload TEXT);",
        "CREATE VIRTUAL TABLE kv USING fts5(grp, key, value);",
    ] {
        let (_dir, path) = raw_built_file(sql);
        drop(open_manual(&path));
        let writer = raw(&path);
        writer.execute_batch("BEGIN IMMEDIATE").unwrap();
        let config = StoreConfig {
            busy_timeout: Duration::from_millis(300),
            ..StoreConfig::file(&path)
        };
        // Through the schema work the open would wait for the writer, then fail busy.
        let store = Store::open_with(config).unwrap_or_else(|e| panic!("{sql}: {e}"));
        drop(store);
        writer.execute_batch("ROLLBACK").unwrap();
        assert!(raw_has_object(&path, "kv"), "{sql}: left alone");
    }
}

/// A table named `kv` without the legacy columns is another program's: it is neither migrated
/// nor dropped, and the store opens (every open failed on it before, h159).
#[test]
fn an_unrelated_table_named_kv_is_left_alone() {
    let (_dir, path) = raw_built_file(
        "CREATE TABLE kv (id INTEGER PRIMARY KEY, payload TEXT);
         INSERT INTO kv VALUES (1, 'theirs');",
    );
    let (store, _) = open_manual(&path);
    assert_eq!(store.count_all("").unwrap(), 0);
    store.set("g", "k", "v").unwrap();
    drop(store);
    let payload: String = raw(&path)
        .query_row("SELECT payload FROM kv WHERE id = 1", [], |r| r.get(0))
        .unwrap();
    assert_eq!(payload, "theirs");
}

/// The `entries` layout of the Go implementation: four columns, expiry in Unix ms.
const GO_SCHEMA: &str = "CREATE TABLE entries (group_name TEXT NOT NULL, entry_key TEXT NOT NULL,
    entry_value TEXT NOT NULL, expires_at INTEGER, PRIMARY KEY (group_name, entry_key));";

#[test]
fn go_layout_file_opens_and_its_rows_are_visible() {
    let (_dir, path) = raw_built_file(&format!(
        "{GO_SCHEMA}
         INSERT INTO entries VALUES ('config', 'pool', 'eu-west', NULL),
                                    ('sessions', 'abc', 'alice', {}),
                                    ('sessions', 'old', 'bob', {});",
        START_MS + 5_000,
        START_MS - 5_000
    ));
    let (store, clock) = open_manual(&path);
    assert_eq!(store.get("config", "pool").unwrap(), "eu-west");
    assert_eq!(store.get_with_version("config", "pool").unwrap().version, 0);
    assert_eq!(store.get("sessions", "abc").unwrap(), "alice");
    assert_eq!(
        store.count("sessions").unwrap(),
        1,
        "the Go program's expired row is hidden"
    );
    clock.advance(Duration::from_secs(5));
    assert!(
        !store.exists("sessions", "abc").unwrap(),
        "Go expiry is in Unix ms"
    );
}

#[test]
fn after_our_writes_the_go_program_can_still_read_and_write_entries() {
    let (_dir, path) = raw_built_file(GO_SCHEMA);
    let (store, _) = open_manual(&path);
    store.set("config", "pool", "eu-west").unwrap();
    store
        .set_with_ttl("sessions", "abc", "alice", Duration::from_secs(60))
        .unwrap();
    store.increment("stats", "hits", 3).unwrap();

    // The other program reads with exactly its own columns.
    let go = raw(&path);
    let mut rows: Vec<(String, String, String, Option<i64>)> = go
        .prepare("SELECT group_name, entry_key, entry_value, expires_at FROM entries ORDER BY 1, 2")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    rows.sort();
    let s = |x: &str| x.to_string();
    let expected = vec![
        (s("config"), s("pool"), s("eu-west"), None),
        (s("sessions"), s("abc"), s("alice"), Some(START_MS + 60_000)),
        (s("stats"), s("hits"), s("3"), None),
    ];
    assert_eq!(rows, expected);

    // And writes with only its own columns; we see the row with version 0.
    go.execute(
        "INSERT INTO entries (group_name, entry_key, entry_value, expires_at) VALUES ('go', 'k', 'from-go', NULL)",
        [],
    )
    .unwrap();
    go.execute(
        "UPDATE entries SET entry_value = 'go-updated' WHERE group_name = 'config'",
        [],
    )
    .unwrap();
    drop(go);
    let got = store.get_with_version("go", "k").unwrap();
    assert_eq!((got.value.as_str(), got.version), ("from-go", 0));
    assert_eq!(store.get("config", "pool").unwrap(), "go-updated");
    // A version-0 row can be compare-and-swapped with Some(0).
    let v = store.set_if_version("go", "k", "cas", Some(0)).unwrap();
    assert!(v >= 1);
    // Versions stay strictly increasing after the other program's commit.
    let v2 = store.set("config", "pool", "ours").unwrap();
    assert!(v2 > v);
}

#[test]
fn a_second_open_of_a_current_file_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let (store, _) = open_manual(&path);
    let v = store.set("g", "k", "v").unwrap();
    drop(store);
    let before = raw_columns(&path, "entries");
    let (store, _) = open_manual(&path);
    assert_eq!(raw_columns(&path, "entries"), before);
    assert_eq!(store.get_with_version("g", "k").unwrap().version, v);
    assert_eq!(raw_rows(&path), 1);
}

/// Other programs may write `entries` (SPEC §3.2), and not always with whole numbers: Python's
/// `time.time() * 1000 + ttl` binds a float, which SQLite keeps as REAL. Such rows read and
/// delete like any other, expiring as SQL compares them; text in `expires_at` never expires.
#[test]
fn rows_another_program_wrote_with_fractional_or_text_expiry_read_and_delete() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let (store, clock) = open_manual(&path);
    let at = START_MS as f64 + 1000.5;
    let conn = raw(&path);
    conn.execute(
        "INSERT INTO entries (group_name, entry_key, entry_value, expires_at, version) VALUES \
         ('g', 'real', 'r', ?1, 1.0), ('g', 'text', 't', 'soon', 2), ('g', 'int', 'i', ?2, 3)",
        rusqlite::params![at, START_MS + 1000],
    )
    .unwrap();
    assert_eq!(store.get("g", "real").unwrap(), "r");
    assert_eq!(
        store.get_with_version("g", "real").unwrap().expires_at,
        Some(START_MS + 1001)
    );
    assert_eq!(store.get("g", "text").unwrap(), "t");
    clock.advance(Duration::from_millis(1000));
    assert_eq!(store.get("g", "real").unwrap(), "r", "1000.5 > 1000: still live");
    assert!(store.get("g", "int").unwrap_err().is_not_found());
    clock.advance(Duration::from_millis(1));
    assert!(store.get("g", "real").unwrap_err().is_not_found());
    assert_eq!(
        store.get("g", "text").unwrap(),
        "t",
        "text sorts above every number"
    );
    assert!(store.delete("g", "text").unwrap());
    conn.execute(
        "INSERT INTO entries (group_name, entry_key, entry_value, expires_at) VALUES ('h', 'k', 'v', 1e300)",
        [],
    )
    .unwrap();
    assert_eq!(store.delete_group("h").unwrap(), 1);
    assert_eq!(raw_rows(&path), 0);
}

/// An open recognises a complete schema by one read (no write lock), but anything a foreign
/// program removed afterwards (the feed table, a column, the quota counters, a trigger) sends
/// it through the repairing path again, so writes keep working.
#[test]
fn a_reopen_repairs_what_a_foreign_program_dropped_after_the_schema_was_complete() {
    for damage in [
        "DROP TABLE changes",
        // SQLite refuses to drop a column a trigger names.
        "DROP TRIGGER entries_foreign_write_resets_version; ALTER TABLE entries DROP COLUMN version",
        "DROP TABLE scope_usage",
        "DROP TRIGGER scope_usage_insert",
        "DROP TRIGGER entries_foreign_write_resets_version",
        "DROP INDEX entries_namespace_expiry_idx",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let (store, _) = open_manual(&path);
        store.set("t:g", "k", "v").unwrap();
        store.close().unwrap();
        raw(&path).execute_batch(damage).unwrap();

        let (store, _) = open_manual(&path);
        let version = store.set("t:g", "k2", "v2").unwrap();
        assert!(version > 0, "{damage}");
        assert_eq!(store.scoped("t").unwrap().usage().unwrap().keys, 2, "{damage}");
        assert!(
            store
                .changes_since(0, 10)
                .unwrap()
                .changes
                .iter()
                .any(|c| c.seq == version),
            "{damage}: the write has its change row"
        );
        assert!(
            raw_has_object(&path, "entries_foreign_write_resets_version"),
            "{damage}"
        );
    }
}

/// A schema stamp from a newer version is left as it is, and the file opens as current.
#[test]
fn a_newer_schema_stamp_is_never_lowered() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    open_manual(&path).0.close().unwrap();
    raw(&path)
        .execute_batch("UPDATE store_meta SET value = 99 WHERE name = 'schema_version'")
        .unwrap();
    let (store, _) = open_manual(&path);
    store.set("g", "k", "v").unwrap();
    store.close().unwrap();
    let stamp: i64 = raw(&path)
        .query_row(
            "SELECT value FROM store_meta WHERE name = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(stamp, 99);
}

/// Another program may write keys and groups that are not valid UTF-8, or not text at all.
/// Reads decode them lossily instead of failing the whole group, and the chunked iterators
/// resume after each row as stored, so they visit every row once and end (resuming from the
/// decoded text restarted before such a row and returned the same chunk forever).
#[test]
fn foreign_keys_and_groups_of_any_type_are_read_and_iterated_to_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let (store, _) = open_manual(&path);
    store.set("g", "plain", "v").unwrap();
    store.close().unwrap();
    let conn = raw(&path);
    conn.execute_batch(
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 299)
         INSERT INTO entries (group_name, entry_key, entry_value)
           SELECT CAST(X'FF' AS TEXT) || printf('%04d', i), 'k', 'v' FROM n;
         WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 299)
         INSERT INTO entries (group_name, entry_key, entry_value)
           SELECT 'g', CAST(X'FF' AS TEXT) || printf('%04d', i), 'v' FROM n;
         INSERT INTO entries (group_name, entry_key, entry_value) VALUES
           ('g', X'6B6B', 'blob key'), ('g', 42, 'integer key'), ('g', 1.5, 'real key');",
    )
    .unwrap();
    let (store, _) = open_manual(&path);

    let groups: Vec<String> = store.groups_iter("").take(1_000).map(Result::unwrap).collect();
    assert_eq!(groups.len(), 301, "every group once, then the end");
    assert_eq!(store.groups("").unwrap().len(), 301);

    let keys: Vec<String> = store.iter("g").take(1_000).map(|e| e.unwrap().key).collect();
    assert_eq!(keys.len(), 304, "every key once, then the end");
    assert!(keys.contains(&"42".to_string()) && keys.contains(&"kk".to_string()));
    assert_eq!(store.get_all("g").unwrap().len(), 304);
    assert_eq!(store.get_page("g", 0, 1_000).unwrap().len(), 304);
}

/// A group name another program stored as a BLOB is a group like any other for the `""`
/// prefix: counted, listed, purged when expired and deleted by `delete_prefix("")` (an
/// empty-BLOB upper bound left its rows out of every one of them, for good). A prefix that is
/// not empty matches text only, as SQLite sorts every BLOB above every text.
#[test]
fn a_foreign_blob_group_name_is_covered_by_the_empty_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let (store, _) = open_manual(&path);
    store.set("x", "k", "v").unwrap();
    raw(&path)
        .execute_batch(
            "INSERT INTO entries (group_name, entry_key, entry_value, expires_at) VALUES
               (X'C3A961', 'k', 'blob group', NULL), (X'C3A962', 'old', 'expired', 1);",
        )
        .unwrap();
    assert_eq!(store.count_all("").unwrap(), 2);
    assert_eq!(store.groups("").unwrap(), ["x", "éa"]);
    let listed: Vec<String> = store.groups_iter("").map(Result::unwrap).collect();
    assert_eq!(listed, ["x", "éa"]);
    assert_eq!(
        store.count_all("é").unwrap(),
        0,
        "a text prefix matches text groups only"
    );
    assert_eq!(
        store.purge_expired().unwrap(),
        1,
        "the expired row of a BLOB group is purged"
    );
    assert_eq!(store.delete_prefix("").unwrap(), 2);
    let left: i64 = raw(&path)
        .query_row("SELECT count(*) FROM entries", [], |r| r.get(0))
        .unwrap();
    assert_eq!(left, 0);
}

/// A file written before the version reset existed (schema stamp 1, no trigger) gains the
/// trigger on its next open; from then on another program's upsert resets the row's version.
#[test]
fn a_file_from_before_the_version_reset_gains_it_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    open_manual(&path).0.close().unwrap();
    raw(&path)
        .execute_batch(
            "DROP TRIGGER entries_foreign_write_resets_version;
             UPDATE store_meta SET value = 1 WHERE name = 'schema_version';",
        )
        .unwrap();
    let (store, _) = open_manual(&path);
    assert!(raw_has_object(&path, "entries_foreign_write_resets_version"));
    let stamp: i64 = raw(&path)
        .query_row(
            "SELECT value FROM store_meta WHERE name = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(stamp, 2);
    store.set("g", "k", "ours").unwrap();
    raw(&path)
        .execute(
            "INSERT INTO entries (group_name, entry_key, entry_value, expires_at) VALUES ('g', 'k', 'go', NULL)
             ON CONFLICT(group_name, entry_key) DO UPDATE SET entry_value = excluded.entry_value,
               expires_at = excluded.expires_at",
            [],
        )
        .unwrap();
    assert_eq!(store.get_with_version("g", "k").unwrap().version, 0);
}

/// The store compares prefixes as UTF-8 byte ranges and lists keys in UTF-8 byte order; in a
/// database another program created as UTF-16 SQLite compares UTF-16 bytes, and both would
/// silently go wrong. Such a file is refused at open, unchanged, with the way to convert it.
#[test]
fn a_utf16_database_from_another_program_is_refused_with_how_to_convert_it() {
    for encoding in ["UTF-16le", "UTF-16be"] {
        let (_dir, path) = raw_built_file(&format!(
            "PRAGMA encoding = '{encoding}'; {GO_SCHEMA}
             INSERT INTO entries VALUES ('a', 'k', 'v', NULL), ('a\u{ff}', 'k', 'v', NULL);"
        ));
        let err = Store::open(&path).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unsupported, "{encoding}: {err}");
        assert_eq!(err.op(), "Store::open");
        let msg = err.to_string();
        for part in [encoding, "UTF-8", ".dump | sqlite3", &path.display().to_string()] {
            assert!(msg.contains(part), "{encoding}: {part:?} missing from {msg}");
        }
        // Left as it was: no schema of ours, not switched to WAL.
        assert!(!raw_has_object(&path, "store_meta"), "{encoding}");
        let mode: String = raw(&path)
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "delete", "{encoding}");
    }
    // New files are still created as UTF-8, and so are empty ones.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.db");
    std::fs::write(dir.path().join("empty.db"), b"").unwrap();
    for p in [path, dir.path().join("empty.db")] {
        let (store, _) = open_manual(&p);
        store.set("g", "k", "v").unwrap();
        let encoding: String = raw(&p).query_row("PRAGMA encoding", [], |r| r.get(0)).unwrap();
        assert_eq!(encoding, "UTF-8");
    }
}

/// An `entries` table another program created without a primary key: every write's
/// `ON CONFLICT (group_name, entry_key)` needs a unique key, so the open adds a unique index
/// (an additive change the other program keeps working with), and writes then work, including
/// legacy `kv` rows merged in the same migration (existing rows still win).
#[test]
fn an_entries_table_without_a_primary_key_gains_a_unique_index_and_takes_writes() {
    let (_dir, path) = raw_built_file(
        "CREATE TABLE entries (group_name TEXT NOT NULL, entry_key TEXT NOT NULL,
             entry_value TEXT NOT NULL, expires_at INTEGER);
         INSERT INTO entries VALUES ('g', 'k', 'v', NULL), ('g', 'n', '41', NULL);
         CREATE TABLE kv (grp TEXT, key TEXT, value TEXT);
         INSERT INTO kv VALUES ('g', 'k', 'from-kv'), ('g', 'legacy', 'l');",
    );
    let (store, _) = open_manual(&path);
    assert!(raw_has_object(&path, "entries_group_key_idx"));
    assert_eq!(
        store.get("g", "k").unwrap(),
        "v",
        "existing rows win over legacy ones"
    );
    assert_eq!(store.get("g", "legacy").unwrap(), "l");
    let v = store.set("g", "k", "v2").unwrap();
    assert_eq!(store.get("g", "k").unwrap(), "v2");
    assert!(store.set_if_version("g", "k", "v3", Some(v)).unwrap() > v);
    assert_eq!(store.increment("g", "n", 1).unwrap(), 42);
    assert_eq!(store.count("g").unwrap(), 3);
    assert_eq!(raw_rows(&path), 3);
    // The other program's own upsert works against the new index too.
    raw(&path)
        .execute(
            "INSERT INTO entries (group_name, entry_key, entry_value) VALUES ('g', 'k', 'go')
             ON CONFLICT(group_name, entry_key) DO UPDATE SET entry_value = excluded.entry_value",
            [],
        )
        .unwrap();
    assert_eq!(store.get_with_version("g", "k").unwrap().version, 0);
    drop(store);
    let (again, _) = open_manual(&path);
    assert_eq!(again.get("g", "k").unwrap(), "go");
}

/// When such a table already holds several rows for one (group_name, entry_key), no unique
/// index can be added: the open fails ("ensure schema") naming the problem and the statement
/// that fixes it, and changes nothing; after that fix the file opens.
#[test]
fn an_entries_table_without_a_primary_key_holding_duplicate_keys_is_refused_with_the_fix() {
    let (_dir, path) = raw_built_file(
        "CREATE TABLE entries (group_name TEXT NOT NULL, entry_key TEXT NOT NULL,
             entry_value TEXT NOT NULL, expires_at INTEGER);
         INSERT INTO entries VALUES ('g', 'k', 'first', NULL), ('g', 'k', 'second', NULL),
                                    ('g', 'other', 'o', NULL);",
    );
    let err = Store::open(&path).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Sqlite, "{err}");
    assert_eq!(err.op(), "Store::open");
    if let Error::Sqlite { context, .. } = &err {
        assert_eq!(context, "ensure schema");
    }
    let msg = err.to_string();
    for part in [
        "several rows with the same (group_name, entry_key)",
        "group \"g\", key \"k\"",
        "DELETE FROM entries WHERE rowid NOT IN",
    ] {
        assert!(msg.contains(part), "{part:?} missing from {msg}");
    }
    assert!(!raw_has_object(&path, "store_meta"), "the migration rolled back");
    assert!(!raw_has_object(&path, "entries_group_key_idx"));
    assert_eq!(raw_rows(&path), 3);

    raw(&path)
        .execute_batch(
            "DELETE FROM entries WHERE rowid NOT IN (SELECT max(rowid) FROM entries GROUP BY group_name, entry_key)",
        )
        .unwrap();
    let (store, _) = open_manual(&path);
    assert_eq!(store.get("g", "k").unwrap(), "second");
    store.set("g", "k", "third").unwrap();
    assert_eq!(store.count("g").unwrap(), 2);
}

/// The same refusal for a table where another program named a column `rowid`: the suggested
/// statement names the row ids `_rowid_`, since `rowid` would name that column and keep the
/// wrong rows; run as suggested, it leaves one row per key and the file opens.
#[test]
fn the_duplicate_key_fix_names_the_row_ids_a_column_called_rowid_leaves_free() {
    let (_dir, path) = raw_built_file(
        "CREATE TABLE entries (group_name TEXT NOT NULL, entry_key TEXT NOT NULL,
             entry_value TEXT NOT NULL, expires_at INTEGER, rowid INTEGER);
         INSERT INTO entries VALUES ('g', 'k', 'first', NULL, 9), ('g', 'k', 'second', NULL, 1),
                                    ('g', 'other', 'o', NULL, 5);",
    );
    let msg = Store::open(&path).unwrap_err().to_string();
    let suggested = "DELETE FROM entries WHERE _rowid_ NOT IN (SELECT max(_rowid_) FROM entries GROUP BY group_name, entry_key)";
    assert!(msg.contains(suggested), "{msg}");
    assert!(!msg.contains("max(rowid)"), "{msg}");
    raw(&path).execute_batch(suggested).unwrap();
    let (store, _) = open_manual(&path);
    assert_eq!(store.get("g", "k").unwrap(), "second");
    assert_eq!(store.get("g", "other").unwrap(), "o");
}

/// The open's one-read "schema is current" check also looks for the key constraint: a program
/// that rebuilt `entries` without its primary key but put back every trigger and index (so the
/// rest of the schema looks complete) still gets the unique index on the next open.
#[test]
fn a_stamped_file_whose_entries_lost_its_primary_key_is_repaired_on_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let (store, _) = open_manual(&path);
    store.set("g", "k", "v").unwrap();
    store.close().unwrap();
    let conn = raw(&path);
    let dependents: Vec<String> = conn
        .prepare("SELECT sql FROM sqlite_master WHERE tbl_name = 'entries' AND type IN ('index', 'trigger') AND sql IS NOT NULL")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    conn.execute_batch(
        "CREATE TABLE rebuilt (group_name TEXT NOT NULL, entry_key TEXT NOT NULL,
             entry_value TEXT NOT NULL, expires_at INTEGER, version INTEGER NOT NULL DEFAULT 0);
         INSERT INTO rebuilt SELECT group_name, entry_key, entry_value, expires_at, version FROM entries;
         DROP TABLE entries;
         ALTER TABLE rebuilt RENAME TO entries;",
    )
    .unwrap();
    for sql in &dependents {
        conn.execute_batch(sql).unwrap();
    }
    drop(conn);
    let (store, _) = open_manual(&path);
    assert!(raw_has_object(&path, "entries_group_key_idx"));
    store.set("g", "k", "v2").unwrap();
    assert_eq!(store.get("g", "k").unwrap(), "v2");
    assert_eq!(raw_rows(&path), 1);
}

/// SQLite's column names are case-insensitive: a key declared on `GROUP_NAME, ENTRY_KEY` is the
/// key (no second index is added). An index that merely has the name the store would give its
/// own key index, but is not unique, is replaced by the unique one.
#[test]
fn key_constraints_are_recognised_whatever_the_case_and_a_same_named_plain_index_is_replaced() {
    let (_dir, path) = raw_built_file(
        "CREATE TABLE entries (GROUP_NAME TEXT NOT NULL, ENTRY_KEY TEXT NOT NULL,
             entry_value TEXT NOT NULL, expires_at INTEGER, PRIMARY KEY (GROUP_NAME, ENTRY_KEY));",
    );
    let (store, _) = open_manual(&path);
    store.set("g", "k", "v").unwrap();
    drop(store);
    assert!(!raw_has_object(&path, "entries_group_key_idx"));

    let (_dir, path) = raw_built_file(
        "CREATE TABLE entries (group_name TEXT NOT NULL, entry_key TEXT NOT NULL,
             entry_value TEXT NOT NULL, expires_at INTEGER);
         CREATE INDEX entries_group_key_idx ON entries(group_name);",
    );
    let (store, _) = open_manual(&path);
    store.set("g", "k", "v").unwrap();
    store.set("g", "k", "w").unwrap();
    assert_eq!(store.get("g", "k").unwrap(), "w");
    assert_eq!(raw_rows(&path), 1);
}

/// The duplicate-key refusal for a table named `ENTRIES` (another letter case) whose columns
/// take all three row-id names: no suggested statement, but still the refusal.
#[test]
fn duplicate_keys_with_all_row_id_names_taken_suggest_no_statement() {
    let (_dir, path) = raw_built_file(
        "CREATE TABLE ENTRIES (group_name TEXT NOT NULL, entry_key TEXT NOT NULL,
             entry_value TEXT NOT NULL, expires_at INTEGER, rowid INTEGER, _ROWID_ INTEGER, Oid INTEGER);
         INSERT INTO ENTRIES VALUES ('g', 'k', 'first', NULL, 1, 1, 1), ('g', 'k', 'second', NULL, 2, 2, 2);",
    );
    let msg = Store::open(&path).unwrap_err().to_string();
    assert!(msg.contains("several rows with the same"), "{msg}");
    assert!(!msg.contains("DELETE FROM"), "{msg}");
    assert!(
        msg.contains("delete the others, then open the file again"),
        "{msg}"
    );
}

/// The same for a table named `Entries` with only `rowid` and `_rowid_` taken: `oid` suggested,
/// and running it fixes the file.
#[test]
fn duplicate_keys_in_a_differently_cased_table_suggest_oid() {
    let (_dir, path) = raw_built_file(
        "CREATE TABLE Entries (group_name TEXT NOT NULL, entry_key TEXT NOT NULL,
             entry_value TEXT NOT NULL, expires_at INTEGER, RowId INTEGER, _rowid_ INTEGER);
         INSERT INTO Entries VALUES ('g', 'k', 'first', NULL, 9, 9), ('g', 'k', 'second', NULL, 1, 1);",
    );
    let msg = Store::open(&path).unwrap_err().to_string();
    let suggested =
        "DELETE FROM entries WHERE oid NOT IN (SELECT max(oid) FROM entries GROUP BY group_name, entry_key)";
    assert!(msg.contains(suggested), "{msg}");
    raw(&path).execute_batch(suggested).unwrap();
    let (store, _) = open_manual(&path);
    assert_eq!(store.get("g", "k").unwrap(), "second");
}

/// A `WITHOUT ROWID` table keyed on more than (group_name, entry_key) can hold duplicate keys:
/// the refusal then offers no statement (there are no row ids).
#[test]
fn duplicate_keys_in_a_without_rowid_table() {
    let (_dir, path) = raw_built_file(
        "CREATE TABLE Entries (group_name TEXT NOT NULL, entry_key TEXT NOT NULL,
             entry_value TEXT NOT NULL, expires_at INTEGER,
             PRIMARY KEY (group_name, entry_key, entry_value)) WITHOUT ROWID;
         INSERT INTO Entries VALUES ('g', 'k', 'first', NULL), ('g', 'k', 'second', NULL);",
    );
    let msg = Store::open(&path).unwrap_err().to_string();
    assert!(msg.contains("no primary key on (group_name, entry_key)"), "{msg}");
    assert!(msg.contains("several rows with the same"), "{msg}");
    assert!(!msg.contains("DELETE FROM"), "{msg}");
}
