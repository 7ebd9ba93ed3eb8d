//! Table names as imports, exports and `table_exists` all find them (h179's attacks): another
//! schema's table by its inventory name (`s.x`) or SQL spelling (`"s"."x"`), never a view or
//! an attached database's table, main's literal `s.x` first; and the kv_entries scan through
//! row id names other programs' columns took.

use std::path::Path;

use serde_json::json;
use store::analytics::{Analytics, CsvOptions, Value};
use store::{ErrorKind, Service, ServiceConfig};

use crate::support::{scalar, write};

fn db_in(dir: &Path) -> Analytics {
    Analytics::open(dir.join("m.duckdb")).unwrap()
}

fn int(db: &Analytics, sql: &str) -> i64 {
    scalar(db, sql)
        .as_i64()
        .unwrap_or_else(|| panic!("{sql}: not an integer"))
}

fn main_literal_exists(db: &Analytics, name: &str) -> bool {
    int(
        db,
        &format!(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'main' AND table_name = '{}'",
            name.replace('\'', "''")
        ),
    ) > 0
}

/// `s.x` a view of schema s: imports are refused cleanly, with rows or without, and no main
/// table literally named `s.x` appears.
#[test]
fn import_into_another_schemas_view_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_in(dir.path());
    db.exec_batch(
        "CREATE SCHEMA s; CREATE TABLE s.base (a INTEGER); CREATE VIEW s.x AS SELECT * FROM s.base",
    )
    .unwrap();
    let csv = write(dir.path(), "x.csv", "a\n7\n");
    let empty_csv = write(dir.path(), "e.csv", "");
    let jsonl = write(dir.path(), "x.jsonl", "{\"a\": 8}\n");
    let empty_jsonl = write(dir.path(), "e.jsonl", "");
    let mut bad = Vec::new();
    for name in ["s.x", "S.X", "\"s\".\"x\""] {
        for (label, r) in [
            ("csv", db.import_csv(name, &csv, &CsvOptions::default())),
            (
                "empty csv",
                db.import_csv(name, &empty_csv, &CsvOptions::default()),
            ),
            ("jsonl", db.import_jsonl(name, &jsonl)),
            ("empty jsonl", db.import_jsonl(name, &empty_jsonl)),
        ] {
            match r {
                Err(e) if e.kind() == ErrorKind::InvalidInput && e.to_string().contains("view") => {}
                other => bad.push(format!("{name} {label}: {other:?}")),
            }
        }
        if !db.table_exists(name).unwrap() {
            bad.push(format!("{name}: table_exists false for the view"));
        }
    }
    assert_eq!(int(&db, "SELECT count(*) FROM s.base"), 0);
    assert!(!main_literal_exists(&db, "s.x"), "main \"s.x\" created");
    assert!(bad.is_empty(), "{bad:#?}");
}

/// A main table literally named `s.x` and schema s's table x: `s.x` is main's for imports as
/// for exports, `"s"."x"` (the inventory's name for the other) is s's, in both directions.
#[test]
fn main_table_named_like_an_inventory_name_wins_consistently() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_in(dir.path());
    db.exec_batch(
        "CREATE TABLE main.\"s.x\" (a INTEGER); INSERT INTO main.\"s.x\" VALUES (100);
         CREATE SCHEMA s; CREATE TABLE s.x (a INTEGER); INSERT INTO s.x VALUES (1), (2);",
    )
    .unwrap();
    let counts = db.table_counts().unwrap();
    assert_eq!(
        counts.clone().into_iter().collect::<Vec<_>>(),
        [("\"s\".\"x\"".to_string(), 2), ("s.x".to_string(), 1)],
        "{counts:?}"
    );
    let csv = write(dir.path(), "x.csv", "a\n7\n");
    assert_eq!(db.import_csv("s.x", &csv, &CsvOptions::default()).unwrap(), 1);
    assert_eq!(int(&db, "SELECT count(*) FROM main.\"s.x\""), 2);
    assert_eq!(int(&db, "SELECT count(*) FROM s.x"), 2);
    assert_eq!(
        db.import_csv("\"s\".\"x\"", &csv, &CsvOptions::default())
            .unwrap(),
        1
    );
    assert_eq!(int(&db, "SELECT count(*) FROM main.\"s.x\""), 2);
    assert_eq!(int(&db, "SELECT count(*) FROM s.x"), 3);
    // Exports of the same names read the same tables.
    assert_eq!(db.export_parquet("s.x", dir.path().join("a.parquet")).unwrap(), 2);
    assert_eq!(
        db.export_parquet("\"s\".\"x\"", dir.path().join("b.parquet"))
            .unwrap(),
        3
    );
    let m = db
        .export_split_parquet("\"s\".\"x\"", dir.path().join("split"), "a")
        .unwrap();
    assert_eq!(m.files.iter().map(|f| f.rows).sum::<u64>(), 3);
    // Round trip: the export of s's table imported back by its name doubles it.
    assert_eq!(
        db.import_parquet("\"s\".\"x\"", dir.path().join("b.parquet"))
            .unwrap(),
        3
    );
    assert_eq!(int(&db, "SELECT count(*) FROM s.x"), 6);
    assert_eq!(db.table_counts().unwrap().len(), 2, "no third table");
}

/// `"s"."x"` when unambiguous (the inventory calls it `s.x`): exports and imports should agree
/// on what that name means, whatever it is.
#[test]
fn quoted_spelling_of_an_unambiguous_name() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_in(dir.path());
    db.exec_batch("CREATE SCHEMA s; CREATE TABLE s.x (a INTEGER); INSERT INTO s.x VALUES (1)")
        .unwrap();
    let exported = db
        .export_parquet("\"s\".\"x\"", dir.path().join("q.parquet"))
        .map_err(|e| e.kind());
    let exists = db.table_exists("\"s\".\"x\"").unwrap();
    let csv = write(dir.path(), "x.csv", "a\n7\n");
    let imported = db.import_csv("\"s\".\"x\"", &csv, &CsvOptions::default());
    let sx = int(&db, "SELECT count(*) FROM s.x");
    let literal = main_literal_exists(&db, "\"s\".\"x\"");
    assert!(
        exported.is_ok() && exists && sx == 2 && !literal,
        "export {exported:?}, table_exists {exists}, import {imported:?}, s.x rows {sx}, \
         main literal table created {literal}, counts {:?}",
        db.table_counts().unwrap()
    );
}

/// Case differences, schemas with dots and quotes in their names.
#[test]
fn case_dots_and_quotes_in_schema_names() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_in(dir.path());
    db.exec_batch(
        "CREATE SCHEMA \"a.b\"; CREATE TABLE \"a.b\".c (v INTEGER);
         CREATE SCHEMA a; CREATE TABLE a.\"b.c\" (v INTEGER);
         CREATE SCHEMA \"q\"\"s\"; CREATE TABLE \"q\"\"s\".t (v INTEGER);
         CREATE SCHEMA Up; CREATE TABLE Up.Tab (v INTEGER);",
    )
    .unwrap();
    let counts: Vec<String> = db.table_counts().unwrap().into_keys().collect();
    let csv = write(dir.path(), "v.csv", "v\n5\n");
    let mut bad = Vec::new();
    for (i, name) in counts.iter().enumerate() {
        for _ in 0..=i {
            if let Err(e) = db.import_csv(name, &csv, &CsvOptions::default()) {
                bad.push(format!("{name}: {e}"));
            }
        }
    }
    // Every table got exactly its own rows (i + 1), no new tables.
    let after = db.table_counts().unwrap();
    if after.keys().cloned().collect::<Vec<_>>() != counts {
        bad.push(format!("tables changed: {counts:?} -> {after:?}"));
    }
    for (i, name) in counts.iter().enumerate() {
        if after.get(name) != Some(&(i as u64 + 1)) {
            bad.push(format!("{name}: {:?} rows, want {}", after.get(name), i + 1));
        }
        let out = dir.path().join(format!("e{i}.parquet"));
        match db.export_parquet(name, &out) {
            Ok(n) if n == i as u64 + 1 => {}
            other => bad.push(format!("export {name}: {other:?}")),
        }
    }
    // Case variants of the names.
    for name in ["UP.TAB", "up.tab", "Q\"S.T"] {
        let before = db.table_counts().unwrap();
        let r = db.import_csv(name, &csv, &CsvOptions::default());
        let after = db.table_counts().unwrap();
        if r.is_err() || before.len() != after.len() {
            bad.push(format!("{name}: {r:?}, {before:?} -> {after:?}"));
        }
    }
    assert!(bad.is_empty(), "{counts:?}\n{bad:#?}");
}

/// An attached database's table is not this database's: an import by its name must not write
/// into the attached file.
#[test]
fn attached_database_tables_are_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_in(dir.path());
    let other = dir.path().join("o.duckdb");
    db.exec_batch(&format!(
        "ATTACH '{}' AS o; CREATE TABLE o.t (a INTEGER); INSERT INTO o.t VALUES (1);
         CREATE SCHEMA o.s2; CREATE TABLE o.s2.u (a INTEGER);",
        other.display()
    ))
    .unwrap();
    let csv = write(dir.path(), "x.csv", "a\n7\n");
    let mut bad = Vec::new();
    for name in ["o.t", "\"o\".\"main\".\"t\"", "o.main.t", "s2.u", "o.s2.u"] {
        if db.table_exists(name).unwrap() {
            bad.push(format!("{name}: table_exists"));
        }
        let _ = db.import_csv(name, &csv, &CsvOptions::default());
    }
    if int(&db, "SELECT count(*) FROM o.t") != 1 || int(&db, "SELECT count(*) FROM o.s2.u") != 0 {
        bad.push("attached tables written".into());
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

/// Temporary tables first, as exports; the fully qualified name reaches main's hidden table.
#[test]
fn temp_table_and_fully_qualified_names() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_in(dir.path());
    db.exec_batch(
        "CREATE TABLE t (a INTEGER); INSERT INTO t VALUES (1);
         CREATE TEMP TABLE t (a INTEGER); INSERT INTO temp.t VALUES (10), (11);
         CREATE SCHEMA s; CREATE TABLE s.x (a INTEGER);
         CREATE TEMP TABLE \"s.x\" (a INTEGER);",
    )
    .unwrap();
    let csv = write(dir.path(), "x.csv", "a\n7\n");
    db.import_csv("t", &csv, &CsvOptions::default()).unwrap();
    assert_eq!(int(&db, "SELECT count(*) FROM temp.t"), 3);
    assert_eq!(db.export_parquet("t", dir.path().join("t.parquet")).unwrap(), 3);
    db.import_csv("\"m\".\"main\".\"t\"", &csv, &CsvOptions::default())
        .unwrap();
    assert_eq!(
        int(&db, "SELECT count(*) FROM m.main.t"),
        2,
        "fully qualified import"
    );
    assert_eq!(
        db.export_parquet("\"m\".\"main\".\"t\"", dir.path().join("u.parquet"))
            .unwrap(),
        2
    );
    // temp "s.x" hides s's x for the bare name, in both directions.
    db.import_csv("s.x", &csv, &CsvOptions::default()).unwrap();
    assert_eq!(int(&db, "SELECT count(*) FROM temp.main.\"s.x\""), 1);
    assert_eq!(int(&db, "SELECT count(*) FROM s.x"), 0);
    assert_eq!(db.export_parquet("s.x", dir.path().join("v.parquet")).unwrap(), 1);
}

/// A failed import into another schema's table leaves it unchanged (all or nothing), and
/// creates no main table by that name.
#[test]
fn failed_imports_into_another_schema_leave_it_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_in(dir.path());
    db.exec_batch(
        "CREATE SCHEMA s; CREATE TABLE s.x (a INTEGER NOT NULL, b VARCHAR, CHECK (a < 100));
         INSERT INTO s.x VALUES (1, 'one');",
    )
    .unwrap();
    let many: String = (0..5000).map(|i| format!("{i},v\n")).collect();
    let mut bad = Vec::new();
    for (label, file, kind) in [
        (
            "csv bad int",
            write(dir.path(), "a.csv", "a,b\n2,x\nzz,y\n"),
            "csv",
        ),
        (
            "csv check",
            write(dir.path(), "b.csv", &format!("a,b\n{many}")),
            "csv",
        ),
        ("csv null", write(dir.path(), "c.csv", "a,b\n3,x\n,y\n"), "csv"),
        (
            "jsonl bad",
            write(dir.path(), "d.jsonl", "{\"a\": 4}\n{\"a\": \"q\"}\n"),
            "jsonl",
        ),
        (
            "jsonl check",
            write(dir.path(), "e.jsonl", "{\"a\": 5}\n{\"a\": 500}\n"),
            "jsonl",
        ),
    ] {
        let r = match kind {
            "csv" => db.import_csv("s.x", &file, &CsvOptions::default()),
            _ => db.import_jsonl("s.x", &file),
        };
        let n = int(&db, "SELECT count(*) FROM s.x");
        if r.is_ok() || n != 1 {
            bad.push(format!("{label}: {r:?}, rows {n}"));
        }
    }
    assert!(!main_literal_exists(&db, "s.x"));
    assert!(bad.is_empty(), "{bad:#?}");
}

fn rows_of(db: &Analytics, sql: &str) -> Vec<Vec<Value>> {
    db.query(sql, &[]).unwrap().rows
}

/// CSV header mapping and JSON typing into another schema's table give what the same import
/// into a main table of the same definition gives.
#[test]
fn header_mapping_and_json_types_match_a_main_table() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_in(dir.path());
    let def = "(\" a\" VARCHAR, a INTEGER, \"B c\" VARCHAR, d DECIMAL(18,3), j JSON, t VARCHAR, ts TIMESTAMP, m MAP(VARCHAR, INTEGER))";
    db.exec_batch(&format!(
        "CREATE SCHEMA s; CREATE TABLE s.x {def}; CREATE TABLE ref {def};"
    ))
    .unwrap();
    let csv = write(
        dir.path(),
        "h.csv",
        "b C, a,a,D,t\nhello,sp,1,1.10,0012\nworld,sp2,2,2.125,1e3\n",
    );
    let jsonl = write(
        dir.path(),
        "j.jsonl",
        "{\"a\": 3, \"d\": 0.1, \"j\": {\"k\": [1, 2]}, \"t\": 123, \"ts\": \"2024-01-01T10:00:00\", \"m\": {\"x\": 1}}\n\
         {\"a\": 4, \"d\": 12345678901234.5, \"j\": \"str\", \"t\": true, \"ts\": \"infinity\", \"m\": {}}\n\
         {\"A\": 5, \"j\": null, \"t\": \"x\", \"B c\": \"bc\"}\n",
    );
    let mut bad = Vec::new();
    for table in ["ref", "s.x"] {
        let c = db
            .import_csv(table, &csv, &CsvOptions::default())
            .map_err(|e| e.to_string());
        let j = db.import_jsonl(table, &jsonl).map_err(|e| e.to_string());
        bad.push(format!("{table}: csv {c:?}, jsonl {j:?}"));
    }
    let a = rows_of(&db, "SELECT * FROM ref ORDER BY a");
    let b = rows_of(&db, "SELECT * FROM s.x ORDER BY a");
    assert_eq!(bad[0].replace("ref", "T"), bad[1].replace("s.x", "T"), "{bad:#?}");
    assert_eq!(a, b);
    assert!(!a.is_empty(), "{bad:#?}");
}

/// Service `store/import` and `table_exists`-style flows with another schema's table by its
/// inventory name, and `store/table-counts` after.
#[test]
fn service_import_into_another_schemas_table() {
    let home = tempfile::tempdir().unwrap();
    {
        let db = Analytics::open(home.path().join("workspace.duckdb")).unwrap();
        db.exec_batch("CREATE SCHEMA s; CREATE TABLE s.x (a INTEGER); CREATE VIEW s.v AS SELECT 1 AS a;")
            .unwrap();
        db.close().unwrap();
    }
    let service = Service::open(ServiceConfig::new(home.path())).unwrap();
    let csv = write(home.path(), "x.csv", "a\n7\n8\n");
    let r = service
        .call(
            "store/import",
            json!({"table": "s.x", "path": csv.to_str().unwrap()}),
        )
        .unwrap();
    assert_eq!(r, json!({"rows": 2}));
    let err = service
        .call(
            "store/import",
            json!({"table": "s.v", "path": csv.to_str().unwrap()}),
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    let counts = service.call("store/table-counts", json!({})).unwrap();
    assert_eq!(counts, json!({"tables": {"s.x": 2}}));
    let out = home.path().join("x.parquet");
    let r = service
        .call(
            "store/export-parquet",
            json!({"table": "s.x", "path": out.to_str().unwrap()}),
        )
        .unwrap();
    assert_eq!(r, json!({"rows": 2}));
    service.close().unwrap();
}

/// The kv_entries scan over foreign tables whose columns take row id names in odd spellings
/// (generated, quoted, cased), and WITHOUT ROWID with expired rows and BLOB keys: every live
/// row once, no expired row.
#[test]
fn kv_entries_scan_with_row_id_names_taken() {
    use store::{Kv, Store, StoreConfig};
    const BASE: &str = "group_name TEXT NOT NULL, entry_key TEXT NOT NULL, entry_value TEXT NOT NULL, \
                        expires_at INTEGER, version INTEGER NOT NULL DEFAULT 0";
    let mut bad = Vec::new();
    for extra in [
        ", \"RowId\" INTEGER DEFAULT 3, PRIMARY KEY (group_name, entry_key))",
        ", rowid INTEGER DEFAULT 3, \"_ROWID_\" AS (length(entry_key) % 2), PRIMARY KEY (group_name, entry_key))",
        ", ROWID INT DEFAULT 0, _rowid_ INT DEFAULT 0, \"Oid\" AS (1) STORED, PRIMARY KEY (group_name, entry_key))",
        ", \"row id\" INTEGER DEFAULT 3, \"oid \" INT, PRIMARY KEY (group_name, entry_key))",
        ", PRIMARY KEY (group_name, entry_key)) WITHOUT ROWID",
        ", oid INT DEFAULT 5, PRIMARY KEY (entry_key, group_name)) WITHOUT ROWID",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        {
            let c = crate::common::raw(&path);
            c.execute_batch(&format!("CREATE TABLE entries ({BASE}{extra}"))
                .unwrap();
            c.execute_batch(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 6000)
                 INSERT INTO entries (group_name, entry_key, entry_value, expires_at)
                   SELECT 'f', printf('k%06d', i), 'v',
                          CASE WHEN i % 10 = 0 THEN 1000 WHEN i % 10 = 1 THEN 99999999999999 END FROM n;
                 INSERT INTO entries (group_name, entry_key, entry_value, expires_at)
                   VALUES ('b', CAST('blob' AS BLOB), 'v', NULL), ('b', CAST('old' AS BLOB), 'v', 1000);",
            )
            .unwrap();
        }
        let store = Store::open_with(StoreConfig::file(&path).with_purge_interval(std::time::Duration::ZERO))
            .unwrap();
        let db = Analytics::in_memory().unwrap();
        db.attach_kv(&store).unwrap();
        let got = db
            .query(
                "SELECT group_name, count(*), count(DISTINCT entry_key) FROM kv_entries GROUP BY 1 ORDER BY 1",
                &[],
            )
            .map(|r| r.rows)
            .map_err(|e| e.to_string());
        let want = Ok(vec![
            vec![Value::Text("b".into()), Value::Int(1), Value::Int(1)],
            vec![Value::Text("f".into()), Value::Int(5400), Value::Int(5400)],
        ]);
        if got != want {
            bad.push(format!("{extra}: {got:?}"));
        }
        // The purge then leaves exactly the live rows.
        let purged = store.purge_expired();
        let left: i64 = crate::common::raw(&path)
            .query_row("SELECT count(*) FROM entries", [], |r| r.get(0))
            .unwrap();
        if purged.as_ref().ok() != Some(&601) || left != 5401 {
            bad.push(format!("{extra}: purge {purged:?}, left {left}"));
        }
        let _ = store.count("f");
    }
    assert!(bad.is_empty(), "{bad:#?}");
}
