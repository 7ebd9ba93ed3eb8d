//! Hostile table and column names (SPEC §2: identifiers are always emitted quoted with `"`
//! doubled; empty or NUL-containing names are `InvalidInput`): they work end to end as literal
//! names and never run as SQL.

use store::ErrorKind;
use store::analytics::{Analytics, CsvOptions, Value};

use crate::support::{count, expect_kind, files_under, ident, lit, multiset, project, write};

const WEIRD: &str = "we\"ird";
const INJECTION: &str = "x\"; DROP TABLE t; --";

/// An in-memory database with a table `t` that must survive every test.
fn db_with_victim() -> Analytics {
    let db = Analytics::in_memory().unwrap();
    db.exec_batch("CREATE TABLE t AS SELECT * FROM range(3)").unwrap();
    db
}

#[track_caller]
fn assert_victim_intact(db: &Analytics) {
    assert!(db.table_exists("t").unwrap(), "table t was dropped");
    assert_eq!(count(db, "t"), 3);
}

/// Import, count, export, split and re-import a table called `name`.
fn round_trip(db: &Analytics, name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let csv = write(dir.path(), "in.csv", "k,n\na,1\nb,2\na,3\n");
    assert_eq!(db.import_csv(name, &csv, &CsvOptions::default()).unwrap(), 3);
    assert!(db.table_exists(name).unwrap());
    assert_eq!(db.table_counts().unwrap().get(name), Some(&3));
    assert!(
        db.inventory()
            .unwrap()
            .tables
            .iter()
            .any(|t| t.name == name && t.rows == 3)
    );
    assert_eq!(count(db, name), 3);

    let parquet = dir.path().join("out.parquet");
    assert_eq!(db.export_parquet(name, &parquet).unwrap(), 3);
    let back = db
        .query(
            &format!("SELECT k, n FROM read_parquet({}) ORDER BY n", lit(&parquet)),
            &[],
        )
        .unwrap();
    assert_eq!(back.len(), 3);

    let split = dir.path().join("split");
    let manifest = db.export_split_parquet(name, &split, "k").unwrap();
    assert_eq!(manifest.table, name);
    assert_eq!(manifest.total_rows, 3);
    assert_eq!(manifest.files.len(), 2);

    assert_eq!(db.import_parquet(name, &parquet).unwrap(), 3);
    assert_eq!(db.table_counts().unwrap().get(name), Some(&6));
}

#[test]
fn a_table_named_we_quote_ird_works_end_to_end() {
    let db = db_with_victim();
    round_trip(&db, WEIRD);
    assert_victim_intact(&db);
    let names: Vec<String> = db.table_counts().unwrap().into_keys().collect();
    assert_eq!(names, ["t", WEIRD]);
}

#[test]
fn a_table_named_like_an_injection_drops_nothing_and_is_a_literal_name() {
    let db = db_with_victim();
    round_trip(&db, INJECTION);
    assert_victim_intact(&db);
    assert_eq!(count(&db, INJECTION), 6);
    assert!(db.table_exists(INJECTION).unwrap());
}

#[test]
fn injection_names_in_every_table_argument_drop_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_with_victim();
    let hostile = [
        "t\"; DROP TABLE t; --",
        "t'; DROP TABLE t; --",
        "t; DROP TABLE t",
        "\"t\"",
    ];
    for name in hostile {
        assert!(!db.table_exists(name).unwrap());
        let _ = db.export_parquet(name, dir.path().join("x.parquet"));
        let _ = db.export_split_parquet(name, dir.path().join("split"), "range");
        let _ = db.export_split_parquet("t", dir.path().join("split"), name);
        assert_victim_intact(&db);
    }
    // A missing hostile table is reported as missing, by its literal name.
    let err = db
        .export_parquet("t\"; DROP TABLE t; --", dir.path().join("x.parquet"))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Missing);
}

#[test]
fn hostile_column_names_work_in_split_export() {
    let tmp = tempfile::tempdir().unwrap();
    let db = db_with_victim();
    let columns = [
        "a\"b",
        "c; DROP TABLE t; --",
        "with space",
        "it's",
        "über/ü",
        "x=y",
    ];
    let create = format!(
        "CREATE TABLE h ({}, n INTEGER)",
        columns
            .iter()
            .map(|c| format!("{} VARCHAR", ident(c)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    db.exec_batch(&create).unwrap();
    for (i, value) in ["p", "q", "p"].iter().enumerate() {
        let mut params: Vec<Value> = columns.iter().map(|_| Value::Text((*value).into())).collect();
        params.push(Value::Int(i as i64));
        let marks = vec!["?"; params.len()].join(", ");
        db.exec(&format!("INSERT INTO h VALUES ({marks})"), &params)
            .unwrap();
    }
    for (i, column) in columns.iter().enumerate() {
        let out = tmp.path().join(format!("out{i}"));
        let manifest = db.export_split_parquet("h", &out, column).unwrap();
        assert_eq!(manifest.column, *column);
        assert_eq!(manifest.files.len(), 2, "split on {column:?}");
        assert_eq!(manifest.total_rows, 3);
        let root = out.canonicalize().unwrap();
        for file in files_under(&out) {
            assert!(
                file.canonicalize().unwrap().starts_with(&root),
                "{}",
                file.display()
            );
        }
        let glob = out.join("**").join("*.parquet");
        let rows = db
            .query(
                &format!(
                    "SELECT * FROM read_parquet({}, hive_partitioning = false)",
                    lit(&glob)
                ),
                &[],
            )
            .unwrap();
        assert_eq!(
            multiset(&project(&rows, &[column, "n"])),
            multiset(
                &db.query(&format!("SELECT {}, n FROM h", ident(column)), &[])
                    .unwrap()
                    .rows
            )
        );
    }
    assert_victim_intact(&db);
}

#[test]
fn empty_or_nul_names_are_invalid_input_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_with_victim();
    let csv = write(dir.path(), "a.csv", "x\n1\n");
    for name in ["", "t\0", "\0"] {
        let checks = [
            db.import_csv(name, &csv, &CsvOptions::default()).map(drop),
            db.import_file(name, &csv, None, None).map(drop),
            db.import_jsonl(name, write(dir.path(), "a.jsonl", "{\"x\": 1}\n"))
                .map(drop),
            db.export_parquet(name, dir.path().join("o.parquet")).map(drop),
            db.export_split_parquet(name, dir.path().join("s"), "range")
                .map(drop),
            db.export_split_parquet("t", dir.path().join("s"), name).map(drop),
        ];
        for result in checks {
            // Each message says what to do too (h145: "the table name is empty" did not).
            let message = expect_kind(result, ErrorKind::InvalidInput).to_string();
            assert!(message.contains("; "), "{message}");
        }
    }
    assert_victim_intact(&db);
    assert_eq!(db.table_counts().unwrap().len(), 1);
}

/// SQL text cannot carry a NUL to DuckDB (a C string): every entry point says so as
/// InvalidInput naming `sql`, and the value goes as a parameter instead.
#[test]
fn a_nul_in_sql_text_is_invalid_input_and_one_in_a_parameter_works() {
    let db = db_with_victim();
    let text = "SELECT 'a\0b' AS v";
    let checks = [
        db.exec(text, &[]).map(drop),
        db.exec_batch(text).map(drop),
        db.query(text, &[]).map(drop),
        db.query_row(text, &[]).map(drop),
        db.query_arrow(text, &[]).map(drop),
    ];
    for result in checks {
        let err = expect_kind(result, ErrorKind::InvalidInput);
        assert_eq!(err.field(), Some("sql"), "{err}");
        assert!(err.to_string().contains("as a parameter"), "{err}");
    }
    let rows = db.query("SELECT ? AS v", &[Value::Text("a\0b".into())]).unwrap();
    assert_eq!(rows.rows[0][0], Value::Text("a\0b".into()));
    assert_victim_intact(&db);
}

#[test]
fn paths_with_quotes_are_literals_not_sql() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_with_victim();
    let sub = dir.path().join("it's'); DROP TABLE t; --");
    std::fs::create_dir(&sub).unwrap();
    let csv = write(&sub, "a'b.csv", "x\n1\n");
    assert_eq!(
        db.import_csv("imported", &csv, &CsvOptions::default()).unwrap(),
        1
    );
    assert_eq!(db.export_parquet("t", sub.join("o'ut.parquet")).unwrap(), 3);
    assert_eq!(
        db.export_split_parquet("t", sub.join("sp'lit"), "range")
            .unwrap()
            .files
            .len(),
        3
    );
    let err = expect_kind(
        db.export_parquet("t", dir.path().join("nul\0.parquet")),
        ErrorKind::InvalidInput,
    );
    assert_eq!(err.field(), Some("path"));
    assert_victim_intact(&db);
}

#[test]
fn nul_in_an_export_directory_path_is_invalid_input() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_with_victim();
    let bad_dir = dir.path().join("bad\0dir");
    let err = expect_kind(
        db.export_parquet("t", bad_dir.join("x.parquet")),
        ErrorKind::InvalidInput,
    );
    assert_eq!(err.field(), Some("path"));
    let err = expect_kind(
        db.export_split_parquet("t", &bad_dir, "range"),
        ErrorKind::InvalidInput,
    );
    assert_eq!(err.field(), Some("out_dir"), "the parameter's name");
}

#[test]
fn invalid_names_are_rejected_before_any_directory_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_with_victim();
    let out = dir.path().join("never");
    expect_kind(
        db.export_parquet("", out.join("x.parquet")),
        ErrorKind::InvalidInput,
    );
    expect_kind(
        db.export_split_parquet("", &out, "range"),
        ErrorKind::InvalidInput,
    );
    expect_kind(db.export_split_parquet("t", &out, ""), ErrorKind::InvalidInput);
    assert!(
        !out.exists(),
        "validation happened after creating {}",
        out.display()
    );
}

#[test]
fn table_exists_validates_the_name_like_every_other_call() {
    let db = Analytics::in_memory().unwrap();
    for name in [
        "",
        "a\0b",
        &"x".repeat(store::analytics::MAX_IDENTIFIER_BYTES + 1),
    ] {
        expect_kind(db.table_exists(name), ErrorKind::InvalidInput);
    }
    assert!(!db.table_exists("we\"ird; DROP TABLE x").unwrap());
}

/// The inventory report is one line per table whatever the names hold: control characters (a
/// newline, a terminal escape) and the line separators and bidi overrides are shown escaped,
/// the name itself stays as it is.
#[test]
fn the_inventory_report_escapes_control_and_bidi_characters_in_table_names() {
    let db = Analytics::in_memory().unwrap();
    db.exec_batch(
        "CREATE TABLE \"two\nlines\" (x INT); CREATE TABLE \"esc\x1b[31m\" (x INT); \
         CREATE TABLE \"sep\u{2028}rtl\u{202e}\" (x INT)",
    )
    .unwrap();
    let inventory = db.inventory().unwrap();
    assert!(inventory.tables.iter().any(|t| t.name == "two\nlines"));
    let text = inventory.to_string();
    assert!(text.contains("two\\nlines"), "{text}");
    assert!(text.contains("esc\\u{1b}[31m"), "{text}");
    assert!(!text.contains('\x1b'));
    // A line separator and a bidi override are not control characters, but they break the
    // line or reorder it just as well.
    assert!(text.contains("sep\\u{2028}rtl\\u{202e}"), "{text}");
    assert_eq!(
        text.lines().count(),
        2 + 2 + 3,
        "title, rules, three tables and the total: {text}"
    );
}
