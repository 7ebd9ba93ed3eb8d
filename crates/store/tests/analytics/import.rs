//! Imports from CSV, JSON, JSONL and Parquet: tables created from the file or appended to by
//! column name, all or nothing, with clear errors for malformed or missing files and a format
//! picked from the extension.

use std::sync::atomic::{AtomicUsize, Ordering};

use store::analytics::{Analytics, CsvOptions, Value};
use store::{Error, ErrorKind};

use crate::support::{all_rows, columns, count, expect_kind, expect_missing, names_in, scalar, write};

fn db() -> Analytics {
    Analytics::in_memory().unwrap()
}

fn t(s: &str) -> Value {
    Value::Text(s.into())
}

/// Asserts a failed import is `Parse` or `DuckDb` and names the file.
#[track_caller]
fn assert_names_file(err: &Error, file: &str) {
    assert!(
        matches!(err.kind(), ErrorKind::Parse | ErrorKind::DuckDb),
        "expected Parse or DuckDb, got {err}"
    );
    assert!(
        err.to_string().contains(file),
        "the error does not name {file}: {err}"
    );
}

#[test]
fn csv_with_a_header_creates_a_typed_table() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "scores.csv",
        "name,score,ok\nalpha,1,true\nbeta,2,false\n",
    );
    let db = db();
    assert_eq!(db.import_csv("scores", &file, &CsvOptions::default()).unwrap(), 2);
    let cols: Vec<String> = columns(&db, "scores").into_iter().map(|c| c.0).collect();
    assert_eq!(cols, ["name", "score", "ok"]);
    assert_eq!(
        all_rows(&db, "scores"),
        vec![
            vec![t("alpha"), Value::Int(1), Value::Bool(true)],
            vec![t("beta"), Value::Int(2), Value::Bool(false)]
        ]
    );
}

#[test]
fn csv_without_a_header_keeps_the_first_line_as_data() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "raw.csv", "alpha,1\nbeta,2\ngamma,3\n");
    let db = db();
    let options = CsvOptions {
        header: false,
        delimiter: None,
    };
    assert_eq!(db.import_csv("raw", &file, &options).unwrap(), 3);
    assert_eq!(columns(&db, "raw").len(), 2);
    assert_eq!(
        db.query("SELECT * FROM raw ORDER BY ALL LIMIT 1", &[])
            .unwrap()
            .rows,
        vec![vec![t("alpha"), Value::Int(1)]]
    );
}

#[test]
fn csv_with_a_custom_delimiter() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "semi.csv", "a;b\n1,5;x\n2,5;y\n");
    let db = db();
    let options = CsvOptions {
        header: true,
        delimiter: Some(';'),
    };
    assert_eq!(db.import_csv("semicolons", &file, &options).unwrap(), 2);
    let cols: Vec<String> = columns(&db, "semicolons").into_iter().map(|c| c.0).collect();
    assert_eq!(cols, ["a", "b"]);
    assert_eq!(
        db.query("SELECT a, b FROM semicolons ORDER BY b", &[])
            .unwrap()
            .rows,
        vec![vec![t("1,5"), t("x")], vec![t("2,5"), t("y")]]
    );

    let tab = write(dir.path(), "tabs.tsv", "a\tb\n1\tx y\n");
    assert_eq!(db.import_file("tabs", &tab, None, None).unwrap(), 1);
    assert_eq!(all_rows(&db, "tabs"), vec![vec![Value::Int(1), t("x y")]]);
}

#[test]
fn csv_with_a_quoted_multi_line_field() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "notes.csv",
        "id,note\n1,\"line one\nline two, with comma\"\n2,\"say \"\"hi\"\"\"\n3,plain\n",
    );
    let db = db();
    assert_eq!(db.import_csv("notes", &file, &CsvOptions::default()).unwrap(), 3);
    assert_eq!(
        db.query("SELECT note FROM notes ORDER BY id", &[]).unwrap().rows,
        vec![
            vec![t("line one\nline two, with comma")],
            vec![t("say \"hi\"")],
            vec![t("plain")]
        ]
    );
}

#[test]
fn json_array_and_jsonl_files_import() {
    let dir = tempfile::tempdir().unwrap();
    let db = db();
    let array = write(
        dir.path(),
        "people.json",
        r#"[{"name": "ann", "age": 31, "tags": ["a", "b"]}, {"name": "bob", "age": null, "tags": []}]"#,
    );
    assert_eq!(db.import_json("people", &array).unwrap(), 2);
    assert_eq!(
        db.query("SELECT name, age, tags FROM people ORDER BY name", &[])
            .unwrap()
            .rows,
        vec![
            vec![t("ann"), Value::Int(31), Value::List(vec![t("a"), t("b")])],
            vec![t("bob"), Value::Null, Value::List(vec![])],
        ]
    );

    let lines = write(
        dir.path(),
        "events.jsonl",
        "{\"id\": 1, \"kind\": \"x\"}\n{\"id\": 2, \"kind\": \"y\"}\n{\"id\": 3, \"kind\": \"é\"}\n",
    );
    assert_eq!(db.import_jsonl("events", &lines).unwrap(), 3);
    assert_eq!(
        db.query("SELECT kind FROM events ORDER BY id", &[]).unwrap().rows,
        vec![vec![t("x")], vec![t("y")], vec![t("é")]]
    );
}

#[test]
fn parquet_files_import() {
    let dir = tempfile::tempdir().unwrap();
    let db = db();
    db.exec_batch("CREATE TABLE src AS SELECT range AS n, 'v' || range AS s FROM range(1000)")
        .unwrap();
    let file = dir.path().join("src.parquet");
    db.export_parquet("src", &file).unwrap();
    assert_eq!(db.import_parquet("dst", &file).unwrap(), 1000);
    assert_eq!(all_rows(&db, "dst"), all_rows(&db, "src"));
}

#[test]
fn a_second_import_appends_by_column_name() {
    let dir = tempfile::tempdir().unwrap();
    let db = db();
    let first = write(dir.path(), "a.csv", "name,score\na,1\nb,2\n");
    let second = write(dir.path(), "b.csv", "score,name\n3,c\n");
    assert_eq!(db.import_csv("t", &first, &CsvOptions::default()).unwrap(), 2);
    assert_eq!(db.import_csv("t", &second, &CsvOptions::default()).unwrap(), 1);
    assert_eq!(
        all_rows(&db, "t"),
        vec![
            vec![t("a"), Value::Int(1)],
            vec![t("b"), Value::Int(2)],
            vec![t("c"), Value::Int(3)]
        ]
    );

    // JSONL and Parquet append the same way.
    let jsonl = write(dir.path(), "c.jsonl", "{\"score\": 4, \"name\": \"d\"}\n");
    assert_eq!(db.import_jsonl("t", &jsonl).unwrap(), 1);
    let parquet = dir.path().join("t.parquet");
    db.export_parquet("SELECT 5 AS score, 'e' AS name", &parquet)
        .unwrap();
    assert_eq!(db.import_parquet("t", &parquet).unwrap(), 1);
    assert_eq!(count(&db, "t"), 5);
    assert_eq!(
        db.query("SELECT name FROM t WHERE score >= 4 ORDER BY score", &[])
            .unwrap()
            .rows,
        vec![vec![t("d")], vec![t("e")]]
    );
}

#[test]
fn a_csv_value_that_does_not_fit_an_existing_column_leaves_the_table_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let db = db();
    db.exec_batch("CREATE TABLE t (x INTEGER, label VARCHAR); INSERT INTO t VALUES (1, 'kept')")
        .unwrap();
    let mut csv = String::from("x,label\n");
    for i in 0..5000 {
        csv.push_str(&format!("{i},row\n"));
    }
    csv.push_str("not-a-number,bad\n");
    let file = write(dir.path(), "bad values.csv", &csv);
    let before = all_rows(&db, "t");
    let err = db.import_csv("t", &file, &CsvOptions::default()).unwrap_err();
    assert_names_file(&err, "bad values.csv");
    assert_eq!(all_rows(&db, "t"), before, "a failed import changed the table");
}

#[test]
fn a_csv_with_an_unterminated_quote_fails_and_creates_no_table() {
    let dir = tempfile::tempdir().unwrap();
    let db = db();
    // Quoted fields hold the delimiter; the last quote never closes.
    let file = write(
        dir.path(),
        "broken.csv",
        "a,b\n\"x,y\",1\n\"p,q\",2\n\"r,s\",3\n\"open, never closed,4\n5,6\n",
    );
    let comma = CsvOptions {
        header: true,
        delimiter: Some(','),
    };
    let err = db.import_csv("t", &file, &comma).unwrap_err();
    assert_names_file(&err, "broken.csv");
    assert!(!db.table_exists("t").unwrap());

    // Into an existing table, the table keeps its rows.
    db.exec_batch("CREATE TABLE t (a VARCHAR, b INTEGER); INSERT INTO t VALUES ('kept', 8)")
        .unwrap();
    let err = db.import_csv("t", &file, &comma).unwrap_err();
    assert_names_file(&err, "broken.csv");
    assert_eq!(all_rows(&db, "t"), vec![vec![t("kept"), Value::Int(8)]]);
}

/// DuckDB's sniffer would read these with another dialect (no quote, the whole line as one
/// column) and succeed; imports use the comma and `"` unless told otherwise, so they fail.
#[test]
fn broken_quoting_or_ragged_rows_fail_with_default_options() {
    let dir = tempfile::tempdir().unwrap();
    let db = db();
    // Each error names the line at fault, which DuckDB's sniffer does not.
    for (name, text, line) in [
        ("broken.csv", "a,b\n\"x,y\",1\n\"open,2\n", 3),
        ("unterminated.csv", "a,b\n1,\"x\n2,y\n", 2),
        ("ragged.csv", "a,b\n1,x\n2,y,z,w\n3\n", 3),
        ("short.csv", "x,s\n1,a\n2\n3,c\n", 3),
        // A ragged last row: the sniffer, left to choose, took it for the header and
        // imported 0 rows into columns `3`, `4`, `5`.
        ("ragged-last.csv", "a,b\n1,2\n3,4,5\n", 3),
        ("ragged-fifth.csv", "a,b\n1,2\n3,4\n5,6\n7,8,9\n", 5),
        ("ragged-first.csv", "a,b\n1,2,3\n4,5\n", 2),
    ] {
        let file = write(dir.path(), name, text);
        let err = db.import_csv("t", &file, &CsvOptions::default()).unwrap_err();
        assert_names_file(&err, name);
        assert!(
            matches!(err, Error::Parse { line: Some(l), .. } if l == line),
            "{name}: {err}"
        );
        assert!(!db.table_exists("t").unwrap(), "{name} created a table");
    }
    db.exec_batch("CREATE TABLE t (a INTEGER, b VARCHAR); INSERT INTO t VALUES (7, 'kept')")
        .unwrap();
    for text in ["a,b\n1,x\n2,y,z,w\n3\n", "a,b\n1,x\n3,4,5\n"] {
        let file = write(dir.path(), "ragged.csv", text);
        let err = db.import_csv("t", &file, &CsvOptions::default()).unwrap_err();
        assert!(matches!(err, Error::Parse { .. }), "{err}");
        assert_eq!(all_rows(&db, "t"), vec![vec![Value::Int(7), t("kept")]]);
    }
}

#[test]
fn quoted_fields_may_hold_the_delimiter_doubled_quotes_and_newlines() {
    let dir = tempfile::tempdir().unwrap();
    let db = db();
    let file = write(
        dir.path(),
        "q.csv",
        "a,b\n\"x,y\",\"say \"\"hi\"\"\"\n\"two\nlines\",z\n",
    );
    assert_eq!(db.import_csv("t", &file, &CsvOptions::default()).unwrap(), 2);
    assert_eq!(
        all_rows(&db, "t"),
        vec![vec![t("two\nlines"), t("z")], vec![t("x,y"), t("say \"hi\"")]]
    );
}

#[test]
fn a_csv_row_with_too_many_fields_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let db = db();
    let mut csv = String::from("a,b\n");
    for i in 0..3000 {
        csv.push_str(&format!("{i},{i}\n"));
    }
    csv.push_str("1,2,3,4\n");
    let file = write(dir.path(), "ragged.csv", &csv);
    let err = db.import_csv("t", &file, &CsvOptions::default()).unwrap_err();
    assert_names_file(&err, "ragged.csv");
    assert!(!db.table_exists("t").unwrap());
}

#[test]
fn a_truncated_json_file_fails_and_leaves_the_table_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let db = db();
    let file = write(dir.path(), "cut.json", r#"[{"a": 1}, {"a": 2}, {"a":"#);
    let err = db.import_json("t", &file).unwrap_err();
    assert_names_file(&err, "cut.json");
    assert!(!db.table_exists("t").unwrap());

    db.exec_batch("CREATE TABLE t (a INTEGER); INSERT INTO t VALUES (1)")
        .unwrap();
    let err = db.import_json("t", &file).unwrap_err();
    assert_names_file(&err, "cut.json");
    assert_eq!(count(&db, "t"), 1);

    let lines = write(dir.path(), "cut.jsonl", "{\"a\": 5}\n{\"a\": 6}\n{\"a\": ");
    let err = db.import_jsonl("t", &lines).unwrap_err();
    assert_names_file(&err, "cut.jsonl");
    assert_eq!(count(&db, "t"), 1);
}

#[test]
fn a_file_that_is_not_parquet_fails_and_creates_no_table() {
    let dir = tempfile::tempdir().unwrap();
    let db = db();
    let file = write(dir.path(), "fake.parquet", "definitely not parquet");
    let err = db.import_parquet("t", &file).unwrap_err();
    assert_names_file(&err, "fake.parquet");
    assert!(!db.table_exists("t").unwrap());
}

#[test]
fn importing_a_missing_file_is_missing_file_and_creates_no_table() {
    let dir = tempfile::tempdir().unwrap();
    let db = db();
    let path = dir.path().join("absent.csv");
    let name = expect_missing(db.import_csv("t", &path, &CsvOptions::default()), "file");
    assert!(name.contains("absent.csv"), "{name}");
    expect_missing(db.import_parquet("t", dir.path().join("absent.parquet")), "file");
    expect_missing(db.import_json("t", dir.path().join("absent.json")), "file");
    expect_missing(db.import_jsonl("t", dir.path().join("absent.jsonl")), "file");
    expect_missing(
        db.import_file("t", dir.path().join("absent.csv"), None, None),
        "file",
    );
    // A directory exists but is not a file to import: said so, not "does not exist".
    let err = expect_kind(
        db.import_csv("t", dir.path(), &CsvOptions::default()),
        ErrorKind::InvalidInput,
    );
    assert!(err.to_string().contains("is not a regular file"), "{err}");
    assert!(!db.table_exists("t").unwrap());
}

#[test]
fn import_file_picks_the_format_from_the_extension() {
    let dir = tempfile::tempdir().unwrap();
    let db = db();
    let csv = write(dir.path(), "a.CSV", "x\n1\n2\n");
    let json = write(dir.path(), "b.json", r#"[{"x": 3}]"#);
    let jsonl = write(dir.path(), "c.jsonl", "{\"x\": 4}\n");
    let ndjson = write(dir.path(), "d.ndjson", "{\"x\": 5}\n");
    let parquet = dir.path().join("e.parquet");
    db.export_parquet("SELECT 6 AS x", &parquet).unwrap();
    assert_eq!(db.import_file("t", &csv, None, None).unwrap(), 2);
    assert_eq!(db.import_file("t", &json, None, None).unwrap(), 1);
    assert_eq!(db.import_file("t", &jsonl, None, None).unwrap(), 1);
    assert_eq!(db.import_file("t", &ndjson, None, None).unwrap(), 1);
    assert_eq!(db.import_file("t", &parquet, None, None).unwrap(), 1);
    assert_eq!(
        db.query("SELECT x FROM t ORDER BY x", &[]).unwrap().rows,
        (1..=6).map(|x| vec![Value::Int(x)]).collect::<Vec<_>>()
    );

    // CSV options pass through.
    let semi = write(dir.path(), "semi.csv", "1;2\n3;4\n");
    let options = CsvOptions {
        header: false,
        delimiter: Some(';'),
    };
    assert_eq!(db.import_file("pairs", &semi, Some(&options), None).unwrap(), 2);
    assert_eq!(columns(&db, "pairs").len(), 2);
}

#[test]
fn import_file_rejects_unknown_extensions() {
    let dir = tempfile::tempdir().unwrap();
    let db = db();
    for (name, said) in [
        ("data.xlsx", "a .xlsx file"),
        ("noextension", "a file without an extension"),
    ] {
        let file = write(dir.path(), name, "x\n1\n");
        let err = expect_kind(db.import_file("t", &file, None, None), ErrorKind::InvalidInput);
        assert_eq!(err.field(), Some("format"), "{err}");
        assert!(err.to_string().contains(said), "{err}");
    }
    assert!(!db.table_exists("t").unwrap());
}

/// What is wrong with the path comes before its name: a directory (`.`) is not a regular file,
/// a missing file is missing, and a path through a file says so (not "Not a directory").
#[test]
fn import_file_of_a_directory_or_an_impossible_path_says_so_before_the_format() {
    let dir = tempfile::tempdir().unwrap();
    let db = db();
    let err = expect_kind(
        db.import_file("t", dir.path(), None, None),
        ErrorKind::InvalidInput,
    );
    assert!(err.to_string().contains("not a regular file"), "{err}");
    expect_missing(db.import_file("t", dir.path().join("gone"), None, None), "file");
    let file = write(dir.path(), "afile", "x\n");
    let err = expect_kind(
        db.import_file("t", file.join("x.csv"), None, None),
        ErrorKind::InvalidInput,
    );
    assert!(
        err.to_string().contains("a directory in its path is a file"),
        "{err}"
    );
    assert!(!db.table_exists("t").unwrap());
}

/// A named format is read in any case and without stray blanks, as extensions are; an unknown
/// one is refused naming the `format` field.
#[test]
fn import_as_takes_the_format_name_in_any_case() {
    let dir = tempfile::tempdir().unwrap();
    let db = db();
    let file = write(dir.path(), "rows.data", "x\n1\n2\n");
    assert_eq!(db.import_as("t", &file, "CSV", None, None).unwrap(), 2);
    assert_eq!(db.import_as("t", &file, " Csv ", None, None).unwrap(), 2);
    assert_eq!(count(&db, "t"), 4);
    let err = expect_kind(
        db.import_as("t", &file, "XML", None, None),
        ErrorKind::InvalidInput,
    );
    assert_eq!(err.field(), Some("format"), "{err}");
}

#[test]
fn import_file_accepts_a_progress_callback() {
    let dir = tempfile::tempdir().unwrap();
    let db = db();
    let mut csv = String::from("id,name,score\n");
    for i in 0..200_000 {
        csv.push_str(&format!("{i},name-{i},{}\n", i % 97));
    }
    let file = write(dir.path(), "big.csv", &csv);
    let reports = std::sync::Mutex::new(Vec::new());
    let progress = |p: store::analytics::ImportProgress| reports.lock().unwrap().push(p);
    assert_eq!(
        db.import_file("big", &file, None, Some(&progress)).unwrap(),
        200_000
    );
    assert_eq!(count(&db, "big"), 200_000);
    // DuckDB's estimates (every 100 ms while it works; a fast machine may finish first), then
    // always one last report of the finished import.
    let reports = reports.into_inner().unwrap();
    let last = reports.last().expect("at least the final report");
    assert_eq!(
        (last.rows_processed, last.total_rows, last.percentage),
        (200_000, 200_000, Some(100.0))
    );
    for p in &reports {
        if let Some(pct) = p.percentage {
            assert!((0.0..=100.0).contains(&pct), "{p:?}");
        }
    }

    // A tiny import, done long before the first estimate, still reports its end; so do
    // exports and split exports.
    let calls = AtomicUsize::new(0);
    let count_calls = |_: store::analytics::ImportProgress| {
        calls.fetch_add(1, Ordering::Relaxed);
    };
    let small = write(dir.path(), "small.csv", "x\n1\n2\n");
    db.import_file("small", &small, None, Some(&count_calls)).unwrap();
    assert_eq!(calls.swap(0, Ordering::Relaxed), 1);
    db.export_parquet_with("small", dir.path().join("s.parquet"), "zstd", Some(&count_calls))
        .unwrap();
    assert_eq!(calls.swap(0, Ordering::Relaxed), 1);
    db.export_split_parquet_with("small", dir.path().join("split"), "x", Some(&count_calls))
        .unwrap();
    assert_eq!(calls.swap(0, Ordering::Relaxed), 1);
}

/// SPEC §2: a DuckDB path with a NUL is `InvalidInput`, checked before any I/O (it was
/// `Missing { kind: "file" }`, from the failed lookup).
#[test]
fn an_import_path_with_a_nul_is_invalid_input() {
    let db = db();
    let path = std::path::Path::new("/tmp/a\0b.csv");
    let results = [
        db.import_csv("t", path, &CsvOptions::default()),
        db.import_parquet("t", path),
        db.import_json("t", path),
        db.import_jsonl("t", path),
        db.import_file("t", path, None, None),
    ];
    for result in results {
        let err = expect_kind(result, ErrorKind::InvalidInput);
        assert_eq!(err.field(), Some("path"), "{err}");
    }
    // A NUL in the extension leaves no format to recognise: still the path's fault, not an
    // I/O error from looking the file up (h133 D2).
    for path in ["/tmp/t.csv\0x", "/tmp/t\0", "/tmp/dir\0/t"] {
        let err = expect_kind(db.import_file("t", path, None, None), ErrorKind::InvalidInput);
        assert_eq!(err.field(), Some("path"), "{path:?}: {err}");
    }
}

/// A table whose columns have blanks around their names takes its own CSV back by name
/// (h132 D1): DuckDB's reader trims header names, so `" lead"` was looked for as `lead`. The
/// header's names as written are used where they are the table's columns; everywhere else
/// DuckDB's trimmed names stand, so the common hand-written `id, name` still appends into
/// `(id, name)` and a new table gets `name` (h134 D4).
#[test]
fn csv_header_names_with_blanks_append_into_the_table_that_has_them() {
    let dir = tempfile::tempdir().unwrap();
    let db = db();
    db.exec_batch(r#"CREATE TABLE t (" lead" INTEGER, "trail " VARCHAR, "in side" INTEGER)"#)
        .unwrap();
    let file = write(dir.path(), "t.csv", "\" lead\",trail ,in side\n1,a,2\n3,b,4\n");
    assert_eq!(db.import_csv("t", &file, &CsvOptions::default()).unwrap(), 2);
    assert_eq!(count(&db, "t"), 2);

    // Names differing only by blanks: DuckDB alone calls the second one `a_1`.
    db.exec_batch(r#"CREATE TABLE d (a INTEGER, " a" INTEGER)"#)
        .unwrap();
    let file = write(dir.path(), "d.csv", "a, a\n1,2\n");
    assert_eq!(db.import_csv("d", &file, &CsvOptions::default()).unwrap(), 1);
    assert_eq!(all_rows(&db, "d"), [[Value::Int(1), Value::Int(2)]]);

    // A line over DuckDB's default 2 MB is read again with a larger limit, names kept.
    db.exec_batch(r#"CREATE TABLE long (" a" INTEGER, "b " VARCHAR)"#)
        .unwrap();
    let file = write(
        dir.path(),
        "long.csv",
        &format!("\" a\",\"b \"\n1,{}\n", "x".repeat(3 << 20)),
    );
    assert_eq!(db.import_csv("long", &file, &CsvOptions::default()).unwrap(), 1);

    // The hand-written kind: blanks after the commas, trimmed columns.
    db.exec_batch("CREATE TABLE p (id INTEGER, name VARCHAR)")
        .unwrap();
    let file = write(dir.path(), "p.csv", "id, name\n1, ann\n");
    assert_eq!(db.import_csv("p", &file, &CsvOptions::default()).unwrap(), 1);
    assert_eq!(db.import_file("fresh", &file, None, None).unwrap(), 1);
    let names: Vec<String> = columns(&db, "fresh").into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["id", "name"], "a new table takes DuckDB's trimmed names");
    // A NUL in another header name leaves the header to DuckDB, as before (h134 D3).
    db.exec_batch(r#"CREATE TABLE n ("x\0y" INTEGER, " b" INTEGER)"#)
        .unwrap();
    let file = write(dir.path(), "n.csv", "x\0y, b\n1,2\n");
    if let Err(err) = db.import_csv("n", &file, &CsvOptions::default()) {
        assert_ne!(err.field(), Some("header"), "{err}");
    }
}

#[test]
fn import_into_an_empty_or_nul_table_name_is_invalid_input() {
    let dir = tempfile::tempdir().unwrap();
    let db = db();
    let file = write(dir.path(), "a.csv", "x\n1\n");
    for name in ["", "a\0b"] {
        let err = expect_kind(
            db.import_csv(name, &file, &CsvOptions::default()),
            ErrorKind::InvalidInput,
        );
        assert_eq!(err.field(), Some("table"));
    }
    let long = "t".repeat(256);
    expect_kind(
        db.import_csv(&long, &file, &CsvOptions::default()),
        ErrorKind::InvalidInput,
    );
    db.import_csv(&"t".repeat(255), &file, &CsvOptions::default())
        .unwrap();
}

#[test]
fn a_file_name_with_glob_characters_imports_exactly_that_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = db();
    write(dir.path(), "g[1].csv", "a\n1\n");
    write(dir.path(), "g1.csv", "a\n100\n200\n");
    write(dir.path(), "s*.csv", "a\n5\n");
    write(dir.path(), "sX.csv", "a\n6\n7\n");
    write(dir.path(), "what?.csv", "a\n8\n");
    write(dir.path(), "whatX.csv", "a\n9\n10\n");
    let options = CsvOptions::default();
    assert_eq!(
        db.import_csv("g", dir.path().join("g[1].csv"), &options).unwrap(),
        1
    );
    assert_eq!(all_rows(&db, "g"), vec![vec![Value::Int(1)]]);
    assert_eq!(
        db.import_csv("s", dir.path().join("s*.csv"), &options).unwrap(),
        1
    );
    assert_eq!(
        db.import_csv("w", dir.path().join("what?.csv"), &options)
            .unwrap(),
        1
    );
    // A glob that names no file literally is a missing file, not a pattern.
    expect_missing(db.import_csv("x", dir.path().join("g*.csv"), &options), "file");
}

#[test]
fn importing_into_a_table_named_in_another_case_appends() {
    let dir = tempfile::tempdir().unwrap();
    let db = db();
    db.exec_batch("CREATE TABLE Foo (x INTEGER); INSERT INTO Foo VALUES (1)")
        .unwrap();
    let file = write(dir.path(), "a.csv", "x\n5\n");
    assert_eq!(db.import_csv("foo", &file, &CsvOptions::default()).unwrap(), 1);
    assert_eq!(
        all_rows(&db, "Foo"),
        vec![vec![Value::Int(1)], vec![Value::Int(5)]]
    );
    assert!(db.table_exists("FOO").unwrap());
}

#[test]
fn json_rows_must_be_objects() {
    let dir = tempfile::tempdir().unwrap();
    let db = db();
    let array = write(dir.path(), "arr.json", r#"[{"a":1,"b":"x"},{"a":2,"b":"y"}]"#);
    let scalars = write(dir.path(), "scalars.json", "[1, 2, 3]");
    let lines = write(
        dir.path(),
        "l.jsonl",
        "{\"a\":3,\"b\":\"z\"}\n{\"a\":4,\"b\":\"w\"}\n",
    );
    assert_eq!(db.import_json("j", &array).unwrap(), 2);
    assert_eq!(db.import_jsonl("j", &lines).unwrap(), 2);
    assert_eq!(count(&db, "j"), 4);
    // An array read as JSON Lines, or an array of scalars, is not a set of rows.
    assert!(db.import_jsonl("k", &array).is_err());
    assert!(db.import_json("k", &scalars).is_err());
    assert!(!db.table_exists("k").unwrap());
    assert_eq!(count(&db, "j"), 4);
}

#[test]
fn a_compressed_file_with_glob_characters_keeps_its_extensions() {
    let dir = tempfile::tempdir().unwrap();
    let db = db();
    for (i, name) in ["x.[1].csv.gz", "v1.2[a].csv.gz", "y[1].csv.gz"]
        .into_iter()
        .enumerate()
    {
        // DuckDB gzips by extension (COPY … TO does not expand globs).
        let path = dir.path().join(name);
        db.exec_batch(&format!(
            "COPY (SELECT {i} AS a) TO '{}' (FORMAT csv, HEADER)",
            path.display()
        ))
        .unwrap();
        assert_ne!(
            std::fs::read(&path).unwrap()[..2],
            *b"a\n",
            "{name} is not compressed"
        );
        let table = format!("t{i}");
        assert_eq!(
            db.import_csv(&table, dir.path().join(name), &CsvOptions::default())
                .unwrap(),
            1,
            "{name}"
        );
        assert_eq!(all_rows(&db, &table), vec![vec![Value::Int(i as i64)]]);
    }
}

#[test]
fn an_empty_json_or_jsonl_file_imports_zero_rows_into_an_existing_table() {
    let dir = tempfile::tempdir().unwrap();
    let db = db();
    db.exec_batch("CREATE TABLE t (a INTEGER); INSERT INTO t VALUES (1)")
        .unwrap();
    for (name, content) in [
        ("empty.jsonl", ""),
        ("blank.jsonl", "\n\n  \n"),
        ("empty.json", "[]"),
        ("spaced.json", " [ \n ] \n"),
    ] {
        let file = write(dir.path(), name, content);
        let rows = if name.ends_with(".jsonl") {
            db.import_jsonl("t", &file)
        } else {
            db.import_json("t", &file)
        };
        assert_eq!(rows.unwrap(), 0, "{name}");
        // No table to add to: a clear parse error, and nothing is created.
        let err = expect_kind(
            if name.ends_with(".jsonl") {
                db.import_jsonl("fresh", &file)
            } else {
                db.import_json("fresh", &file)
            },
            ErrorKind::Parse,
        );
        assert!(err.to_string().contains("no JSON records"), "{err}");
        assert!(!db.table_exists("fresh").unwrap());
    }
    assert_eq!(count(&db, "t"), 1);
}

#[test]
fn key_value_directories_in_the_path_add_no_columns() {
    let dir = tempfile::tempdir().unwrap();
    let hive = dir.path().join("year=2024").join("month=07");
    std::fs::create_dir_all(&hive).unwrap();
    let db = db();
    let csv = write(&hive, "t.csv", "a,b\n1,x\n");
    let jsonl = write(&hive, "t.jsonl", "{\"a\":2,\"b\":\"y\"}\n");
    let json = write(&hive, "t.json", "[{\"a\":3,\"b\":\"z\"}]");
    let parquet = hive.join("t.parquet");
    db.exec_batch(&format!(
        "COPY (SELECT 4 AS a, 'w' AS b) TO '{}' (FORMAT parquet)",
        parquet.display()
    ))
    .unwrap();
    // Before: DuckDB's Hive detection added `year` and `month` columns from the path.
    assert_eq!(db.import_csv("c", &csv, &CsvOptions::default()).unwrap(), 1);
    assert_eq!(columns(&db, "c").len(), 2, "{:?}", columns(&db, "c"));
    db.exec_batch("CREATE TABLE e (a BIGINT, b VARCHAR)").unwrap();
    db.import_csv("e", &csv, &CsvOptions::default()).unwrap();
    db.import_jsonl("e", &jsonl).unwrap();
    db.import_json("e", &json).unwrap();
    db.import_parquet("e", &parquet).unwrap();
    assert_eq!(
        all_rows(&db, "e"),
        vec![
            vec![Value::Int(1), t("x")],
            vec![Value::Int(2), t("y")],
            vec![Value::Int(3), t("z")],
            vec![Value::Int(4), t("w")],
        ]
    );
}

#[test]
fn json_that_duckdb_reads_beyond_the_standard_still_imports() {
    let dir = tempfile::tempdir().unwrap();
    let db = db();
    // Python's json.dump writes NaN and Infinity; DuckDB reads them (serde_json does not).
    let json = write(
        dir.path(),
        "nan.json",
        "[{\"a\": NaN, \"b\": 1}, {\"a\": 2.5, \"b\": 2}]",
    );
    assert_eq!(db.import_json("j", &json).unwrap(), 2);
    let jsonl = write(
        dir.path(),
        "nan.jsonl",
        "{\"a\": Infinity, \"b\": 3}\n{\"a\": -Infinity, \"b\": 4}\n",
    );
    assert_eq!(db.import_jsonl("j", &jsonl).unwrap(), 2);
    assert_eq!(count(&db, "j"), 4);
}

#[test]
fn json_defects_are_parse_errors_naming_the_right_line_and_import_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = db();
    db.exec_batch("CREATE TABLE t (a INTEGER); INSERT INTO t VALUES (1)")
        .unwrap();
    for (name, text, line) in [
        // DuckDB imported the two records of this cut-off array (which ends on line 5).
        ("cut.json", "[\n{\"a\":1},\n{\"a\":2}\n,\n", Some(5)),
        // Other JSON syntax errors are DuckDB's to find; it names no line.
        ("bad.json", "[\n{\"a\":1},\n{\"a\": x}\n]\n", None),
        // DuckDB numbers JSONL lines one too high.
        ("bad.jsonl", "{\"a\":1}\nnot json\n{\"a\":3}\n", Some(2)),
        ("trailing.jsonl", "{\"a\":1}\n\n{\"a\":2} x\n", Some(3)),
        ("scalar.jsonl", "{\"a\":1}\n[1, 2]\n", Some(2)),
        ("nan-then-bad.jsonl", "{\"a\": NaN}\n{\"a\": x}\n", Some(2)),
    ] {
        let file = write(dir.path(), name, text);
        let result = if name.ends_with(".jsonl") {
            db.import_jsonl("t", &file)
        } else {
            db.import_json("t", &file)
        };
        match result {
            Err(Error::Parse { line: got, .. }) => assert_eq!(got, line, "{name}"),
            other => panic!("{name}: {other:?}"),
        }
        assert_eq!(count(&db, "t"), 1, "{name}");
        assert!(db.import_json("fresh", &file).is_err(), "{name}");
        assert!(!db.table_exists("fresh").unwrap(), "{name}");
    }
}

/// A panicking callback is not called again, even when its panic message reads like a
/// reason to run a JSON import a second way (a misfit's "failed to cast"): the failure's text
/// quotes the panic, and the rerun decision used to read it (h161). The file itself is fine.
#[test]
fn a_panicking_callback_never_makes_an_import_run_again() {
    // The callback must panic while the import runs: a file DuckDB imports before its first
    // progress estimate only meets the final report (whose panic is logged, and the import
    // kept), so a quick run goes again with a larger file.
    for rows in [1_000_000, 3_000_000] {
        let dir = tempfile::tempdir().unwrap();
        let mut jsonl = String::new();
        for i in 0..rows {
            jsonl.push_str(&format!("{{\"a\": {i}, \"b\": \"text {i}\"}}\n"));
        }
        let file = write(dir.path(), "late.jsonl", &jsonl);
        let db = Analytics::in_memory().unwrap();
        db.exec_batch("SET progress_bar_time = 0").unwrap();
        let calls = AtomicUsize::new(0);
        let report = |_: store::analytics::ImportProgress| {
            calls.fetch_add(1, Ordering::SeqCst);
            panic!("failed to cast the value");
        };
        let Err(err) = db.import_file("t", &file, None, Some(&report)) else {
            continue; // finished before any estimate
        };
        assert_eq!(
            (err.kind(), err.field()),
            (ErrorKind::InvalidInput, Some("progress")),
            "{err}"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1, "called again after it panicked");
        assert!(!db.table_exists("t").unwrap());
        return;
    }
    panic!("no progress report while 3,000,000 records were imported");
}

/// The same for exports: a split export redid its COPY another way when the failure said
/// "File name too long", and an export blamed the query when it said "read-only mode"; a
/// callback's panic quoting either made the split succeed without it, and the export name the
/// wrong field (h163). Both now fail as the callback's panic.
#[test]
fn a_panicking_callback_fails_an_export_whatever_its_message_says() {
    let dir = tempfile::tempdir().unwrap();
    let db = Analytics::in_memory().unwrap();
    db.exec_batch(
        "SET progress_bar_time = 0;
         CREATE TABLE big AS SELECT i, i % 10 AS k, 'text ' || i AS s FROM range(3000000) r(i)",
    )
    .unwrap();
    for message in ["File name too long", "transaction is launched in read-only mode"] {
        let calls = AtomicUsize::new(0);
        let boom = |p: store::analytics::ImportProgress| {
            if p.percentage != Some(100.0) {
                calls.fetch_add(1, Ordering::SeqCst);
                panic!("{message}");
            }
        };
        let out = dir.path().join("out");
        let split = db.export_split_parquet_with("big", &out, "k", Some(&boom));
        let err = split.map(|m| m.total_rows).unwrap_err();
        assert_eq!(
            (err.kind(), err.field()),
            (ErrorKind::InvalidInput, Some("progress")),
            "{err}"
        );
        assert!(!out.exists(), "{message}: nothing published");
        let file = dir.path().join("big.parquet");
        let err = db
            .export_parquet_with("big", &file, "zstd", Some(&boom))
            .unwrap_err();
        assert_eq!(
            (err.kind(), err.field()),
            (ErrorKind::InvalidInput, Some("progress")),
            "{err}"
        );
        assert!(!file.exists(), "{message}: no file");
        assert_eq!(calls.load(Ordering::SeqCst), 2, "{message}: once per job");
    }
}

/// A progress callback that panics (on DuckDB's helper thread, mid-job) fails the job through
/// its normal failure path: the import's transaction rolls back and the handle stays usable,
/// an export leaves no staged file, a split export no staging directory.
#[test]
fn a_progress_callback_that_panics_fails_the_job_and_keeps_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.duckdb");
    let db = Analytics::open(&path).unwrap();
    db.exec_batch("CREATE TABLE t (x BIGINT, s VARCHAR); INSERT INTO t VALUES (1, 'one'), (2, 'two')")
        .unwrap();
    let mut csv = String::from("x,s\n");
    for i in 0..2_000_000 {
        csv.push_str(&format!("{i},name{i}\n"));
    }
    let file = write(dir.path(), "big.csv", &csv);
    let calls = AtomicUsize::new(0);
    let boom = |p: store::analytics::ImportProgress| {
        if p.percentage != Some(100.0) {
            calls.fetch_add(1, Ordering::SeqCst);
            panic!("callback boom");
        }
    };
    let assert_failed = |result: store::Result<u64>, what: &str| {
        let err = result.expect_err(what);
        assert_eq!(
            (err.kind(), err.field()),
            (ErrorKind::InvalidInput, Some("progress")),
            "{what}: {err}"
        );
        assert!(err.to_string().contains("callback boom"), "{what}: {err}");
    };

    assert_failed(db.import_file("t", &file, None, Some(&boom)), "import");
    assert!(
        calls.load(Ordering::SeqCst) > 0,
        "no estimate arrived; make the file bigger"
    );
    assert_eq!(count(&db, "t"), 2);
    assert_eq!(db.exec("INSERT INTO t VALUES (3, 'three')", &[]).unwrap(), 1);
    db.import_file("t", write(dir.path(), "small.csv", "x,s\n4,four\n"), None, None)
        .unwrap();

    db.exec_batch("CREATE TABLE big AS SELECT i, i % 10 AS k, 'text ' || i AS s FROM range(6000000) r(i)")
        .unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    calls.store(0, Ordering::SeqCst);
    assert_failed(
        db.export_parquet_with("big", out.join("big.parquet"), "zstd", Some(&boom)),
        "export",
    );
    assert!(
        calls.load(Ordering::SeqCst) > 0,
        "no estimate arrived; make the table bigger"
    );
    assert_eq!(names_in(&out), Vec::<String>::new(), "nothing staged is left");
    calls.store(0, Ordering::SeqCst);
    let split = db
        .export_split_parquet_with("big", out.join("split"), "k", Some(&boom))
        .map(|m| m.total_rows);
    assert!(
        calls.load(Ordering::SeqCst) > 0,
        "no estimate arrived; make the table bigger"
    );
    assert_failed(split, "split");
    assert_eq!(names_in(&out), Vec::<String>::new(), "nothing staged is left");

    // A panic in the final report, once the job has succeeded, loses only that report.
    let always = |_: store::analytics::ImportProgress| panic!("callback boom at the end");
    let small = write(dir.path(), "five.csv", "x,s\n5,five\n");
    assert_eq!(db.import_file("t", &small, None, Some(&always)).unwrap(), 1);
    assert_eq!(count(&db, "t"), 5);

    db.close().unwrap();
    let db = Analytics::open(&path).unwrap();
    assert_eq!(count(&db, "t"), 5, "the writes after the failed import were kept");
}

/// RFC 4180 has no NULL: `""` is an empty string. An empty unquoted field is NULL, which is how
/// `store sql --csv` writes the two, so its output imports back unchanged.
#[test]
fn a_quoted_empty_csv_field_is_the_empty_string_and_an_unquoted_one_null() {
    let dir = tempfile::tempdir().unwrap();
    let db = db();
    let file = write(dir.path(), "e.csv", "n,s\n1,\"\"\n2,\n3,x\n");
    assert_eq!(db.import_file("t", &file, None, None).unwrap(), 3);
    assert_eq!(
        all_rows(&db, "t"),
        vec![
            vec![Value::Int(1), t("")],
            vec![Value::Int(2), Value::Null],
            vec![Value::Int(3), t("x")]
        ]
    );
}

/// Without a header the file's columns only have DuckDB's names (`column0`, …), so they go
/// into an existing table by position; a file of another width is refused, table unchanged.
#[test]
fn csv_without_a_header_appends_by_position_into_an_existing_table() {
    let dir = tempfile::tempdir().unwrap();
    let db = db();
    db.exec_batch("CREATE TABLE people (id INTEGER, name VARCHAR); INSERT INTO people VALUES (0, 'zero')")
        .unwrap();
    let options = CsvOptions {
        header: false,
        delimiter: None,
    };
    let file = write(dir.path(), "more.csv", "1,one\n2,two\n");
    assert_eq!(db.import_csv("people", &file, &options).unwrap(), 2);
    assert_eq!(
        db.query("SELECT id, name FROM people ORDER BY id", &[])
            .unwrap()
            .rows,
        vec![
            vec![Value::Int(0), t("zero")],
            vec![Value::Int(1), t("one")],
            vec![Value::Int(2), t("two")]
        ]
    );
    let wide = write(dir.path(), "wide.csv", "3,three,extra\n");
    expect_kind(db.import_csv("people", &wide, &options), ErrorKind::DuckDb);
    assert_eq!(count(&db, "people"), 3);
}

/// An empty CSV file (nothing, blanks, or only a byte order mark) is empty: nothing to append
/// to an existing table, and no columns to create a new one from (DuckDB would invent one
/// named `column0`).
#[test]
fn an_empty_csv_file_appends_nothing_and_creates_no_table() {
    let dir = tempfile::tempdir().unwrap();
    let db = db();
    db.exec_batch("CREATE TABLE t (a INTEGER, b VARCHAR)").unwrap();
    for (name, contents) in [
        ("empty.csv", ""),
        ("blank.csv", "\n\r\n  \n"),
        ("bom.csv", "\u{feff}"),
    ] {
        let file = write(dir.path(), name, contents);
        for header in [true, false] {
            let options = CsvOptions {
                header,
                delimiter: None,
            };
            assert_eq!(db.import_csv("t", &file, &options).unwrap(), 0, "{name}");
            let err = expect_kind(db.import_csv("fresh", &file, &options), ErrorKind::Parse);
            assert!(err.to_string().contains("no header and no rows"), "{err}");
            assert!(!db.table_exists("fresh").unwrap(), "{name}");
        }
    }
    assert_eq!(columns(&db, "t").len(), 2);
}

/// DuckDB's JSON reader refuses a byte order mark ("at byte 1 in line 2"); the error names
/// line 1 and says what to do.
#[test]
fn a_json_file_with_a_byte_order_mark_is_refused_naming_line_1() {
    let dir = tempfile::tempdir().unwrap();
    let db = db();
    for name in ["bom.jsonl", "bom.json"] {
        let file = write(dir.path(), name, "\u{feff}{\"a\": 1}\n{\"a\": 2}\n");
        let err = expect_kind(db.import_file("t", &file, None, None), ErrorKind::Parse);
        match &err {
            Error::Parse { line, reason, .. } => {
                assert_eq!(*line, Some(1), "{err}");
                assert!(reason.contains("byte order mark"), "{err}");
            }
            other => panic!("{other:?}"),
        }
        assert!(!db.table_exists("t").unwrap());
    }
}

/// CSV has no comments: DuckDB's sniffer, left to guess, took `#` for a comment marker after
/// seeing one such line, dropped every row starting with it and cut fields at it.
#[test]
fn csv_rows_and_fields_holding_a_hash_are_kept_whole() {
    let dir = tempfile::tempdir().unwrap();
    let db = db();
    let file = write(
        dir.path(),
        "hash.csv",
        "tag,url\n#a,http://x/#frag\nb,C# rocks\n#d,issue #42\n",
    );
    assert_eq!(db.import_csv("t", &file, &CsvOptions::default()).unwrap(), 3);
    assert_eq!(
        all_rows(&db, "t"),
        vec![
            vec![t("#a"), t("http://x/#frag")],
            vec![t("#d"), t("issue #42")],
            vec![t("b"), t("C# rocks")],
        ]
    );
    // A line such as `# exported …` is a ragged row, not a comment: refused, nothing created
    // (DuckDB imported 3 rows with every field cut at its `#`, or dropped the `#` rows).
    for (name, text, line) in [
        (
            "note.csv",
            "tag,url\n# exported 2024-01-01\na,http://x/#frag\nb,C# rocks\n",
            2,
        ),
        ("short.csv", "tag,n\n#a,1\n#b\nc,3\n#d,4\n", 3),
    ] {
        let file = write(dir.path(), name, text);
        let err = db.import_csv("u", &file, &CsvOptions::default()).unwrap_err();
        assert!(
            matches!(err, Error::Parse { line: Some(l), .. } if l == line),
            "{name}: {err}"
        );
        assert!(!db.table_exists("u").unwrap(), "{name}");
    }
}

/// Blank lines before the header are skipped, not taken for the header (which would make the
/// real header a data row).
#[test]
fn csv_blank_lines_before_the_header_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let db = db();
    for (name, text) in [
        ("lf.csv", "\nname,city\nbob,paris\n"),
        ("crlf.csv", "\r\n\r\nname,city\r\nbob,paris\r\n"),
        ("bom.csv", "\u{feff}\nname,city\nbob,paris\n"),
        ("cr.csv", "\r\rname,city\rbob,paris\r"),
        ("spaces.csv", "   \n\t\nname,city\nbob,paris\n"),
    ] {
        let file = write(dir.path(), name, text);
        db.exec_batch("DROP TABLE IF EXISTS t").unwrap();
        assert_eq!(
            db.import_csv("t", &file, &CsvOptions::default()).unwrap(),
            1,
            "{name}"
        );
        let names: Vec<String> = columns(&db, "t").into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["name", "city"], "{name}");
        assert_eq!(all_rows(&db, "t"), vec![vec![t("bob"), t("paris")]], "{name}");
        // Appending reads the file the same way.
        assert_eq!(
            db.import_csv("t", &file, &CsvOptions::default()).unwrap(),
            1,
            "{name}"
        );
        assert_eq!(count(&db, "t"), 2, "{name}");
    }
}

/// A JSON key that is null in every sampled record (DuckDB samples the first 20,480) keeps its
/// later values: the sample gave it DuckDB's NULL type, which read every later value as NULL,
/// into a new table and into an existing one alike.
#[test]
fn json_values_after_a_sample_of_nulls_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let db = db();
    let mut jsonl = String::new();
    for i in 0..25_000 {
        jsonl.push_str(&format!("{{\"a\":{i},\"b\":null}}\n"));
    }
    jsonl.push_str("{\"a\":25000,\"b\":\"late\"}\n");
    let file = write(dir.path(), "late.jsonl", &jsonl);
    assert_eq!(db.import_jsonl("fresh", &file).unwrap(), 25_001);
    let late = "SELECT b FROM {} WHERE a = 25000";
    assert_eq!(
        scalar(&db, &late.replace("{}", "fresh")),
        t("late"),
        "{:?}",
        columns(&db, "fresh")
    );
    db.exec_batch("CREATE TABLE kept (a BIGINT, b VARCHAR)").unwrap();
    assert_eq!(db.import_jsonl("kept", &file).unwrap(), 25_001);
    assert_eq!(scalar(&db, &late.replace("{}", "kept")), t("late"));
}

/// Records whose keys all differ stay records: DuckDB guessed such a file to be one MAP and
/// then refused it as "non-record JSON".
#[test]
fn json_records_with_all_different_keys_become_columns() {
    let dir = tempfile::tempdir().unwrap();
    let db = db();
    let jsonl: String = (0..300)
        .map(|i| format!("{{\"id\":{i},\"k{i}\":{i}}}\n"))
        .collect();
    let file = write(dir.path(), "wide.jsonl", &jsonl);
    assert_eq!(db.import_jsonl("t", &file).unwrap(), 300);
    assert_eq!(columns(&db, "t").len(), 301);
}

/// A value that does not fit the type guessed from the first rows is named in the error, with
/// its column and what to do (DuckDB's first line only said "CSV Error on Line: N").
#[test]
fn a_late_value_that_does_not_fit_the_guessed_type_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let db = db();
    let mut csv = String::from("n\n");
    for i in 0..25_000 {
        csv.push_str(&format!("{i}\n"));
    }
    csv.push_str("oops\n");
    let file = write(dir.path(), "late.csv", &csv);
    let err = db.import_csv("t", &file, &CsvOptions::default()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Parse {
                line: Some(25_002),
                ..
            }
        ),
        "{err}"
    );
    let message = err.to_string();
    assert!(message.contains("oops"), "{message}");
    assert!(message.contains("create the table first"), "{message}");
    assert!(!message.contains("LINE 1"), "{message}");
    assert!(!db.table_exists("t").unwrap());
}

/// `import_file` reads the format inside a `.gz` or `.zst` name, as DuckDB decompresses them.
#[test]
fn import_file_takes_the_format_inside_a_compressed_name() {
    let dir = tempfile::tempdir().unwrap();
    let db = db();
    for (name, options) in [
        ("rows.csv.gz", "FORMAT csv, COMPRESSION gzip"),
        ("rows.jsonl.zst", "FORMAT json, COMPRESSION zstd"),
    ] {
        let path = dir.path().join(name);
        db.exec_batch(&format!(
            "COPY (SELECT range AS n, 'v' || range AS s FROM range(3)) TO '{}' ({options})",
            path.display()
        ))
        .unwrap();
        let table = name.replace('.', "_");
        assert_eq!(db.import_file(&table, &path, None, None).unwrap(), 3, "{name}");
        assert_eq!(count(&db, &table), 3, "{name}");
    }
    let parquet_gz = write(dir.path(), "rows.parquet.gz", "not read");
    let err = db.import_file("t", parquet_gz, None, None).unwrap_err();
    assert_eq!(err.field(), Some("format"), "{err}");
}

/// DuckDB's zstd reader stops quietly where a file is cut off inside a frame; the import reads
/// the file to its end first, so a cut-off file imports nothing, into a new table or an existing
/// one, for CSV and JSON Lines alike.
#[test]
fn a_zstd_file_cut_short_is_refused_and_imports_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = db();
    db.exec_batch("CREATE TABLE kept (n BIGINT, s VARCHAR); INSERT INTO kept VALUES (-1, 'before')")
        .unwrap();
    for (name, options) in [
        ("rows.csv.zst", "FORMAT csv, COMPRESSION zstd"),
        ("rows.jsonl.zst", "FORMAT json, COMPRESSION zstd"),
    ] {
        let path = dir.path().join(name);
        db.exec_batch(&format!(
            "COPY (SELECT range AS n, 'abcdefghij' || range AS s FROM range(20000)) TO '{}' ({options})",
            path.display()
        ))
        .unwrap();
        let whole = std::fs::read(&path).unwrap();
        std::fs::write(&path, &whole[..whole.len() * 2 / 3]).unwrap();
        for table in ["fresh", "kept"] {
            let err = db.import_file(table, &path, None, None).unwrap_err();
            assert!(matches!(err, Error::Parse { .. }), "{name} into {table}: {err}");
            let message = err.to_string();
            assert!(message.contains("cut short"), "{message}");
            assert!(message.contains(name), "{message}");
        }
        assert!(!db.table_exists("fresh").unwrap(), "{name}");
        assert_eq!(count(&db, "kept"), 1, "{name}");
        // The whole file imports.
        std::fs::write(&path, &whole).unwrap();
        assert_eq!(
            db.import_file("fresh", &path, None, None).unwrap(),
            20_000,
            "{name}"
        );
        db.exec_batch("DROP TABLE fresh").unwrap();
    }
}

/// `pzstd` and seekable-format writers start a zstd file with a skippable frame: still zstd, so
/// it imports (CSV, and JSON Lines through `import_as`), and cut short it is refused.
#[test]
fn a_zstd_file_starting_with_a_skippable_frame_imports() {
    let dir = tempfile::tempdir().unwrap();
    let db = db();
    for (name, options, format) in [
        ("rows.csv.zst", "FORMAT csv, COMPRESSION zstd", "csv"),
        ("rows.jsonl.zst", "FORMAT json, COMPRESSION zstd", "jsonl"),
    ] {
        let path = dir.path().join(name);
        db.exec_batch(&format!(
            "COPY (SELECT range AS n FROM range(1000)) TO '{}' ({options})",
            path.display()
        ))
        .unwrap();
        let skippable = [0x5A, 0x2A, 0x4D, 0x18, 3, 0, 0, 0, b'p', b'z', b's'];
        let whole = [&skippable[..], &std::fs::read(&path).unwrap()].concat();
        std::fs::write(&path, &whole).unwrap();
        let table = format!("t_{format}");
        assert_eq!(
            db.import_as(&table, &path, format, None, None).unwrap(),
            1000,
            "{name}"
        );
        assert_eq!(count(&db, &table), 1000, "{name}");
        std::fs::write(&path, &whole[..whole.len() - 3]).unwrap();
        let err = db.import_as(&table, &path, format, None, None).unwrap_err();
        assert!(err.to_string().contains("cut short"), "{err}");
        assert_eq!(count(&db, &table), 1000, "{name}");
    }
}

/// DuckDB decompresses by name: a file whose name and content disagree is refused naming the
/// fix, whichever way round, and creates nothing.
#[test]
fn a_file_whose_name_and_content_disagree_about_compression_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = db();
    let gzip_named_csv = dir.path().join("data.csv");
    std::fs::write(&gzip_named_csv, gzip_stored(b"a,b\n1,2\n")).unwrap();
    let plain_named_gz = write(dir.path(), "data.jsonl.gz", "{\"a\": 1}\n");
    let plain_named_zst = write(dir.path(), "data.csv.zst", "a\n1\n2\n3\n4\n5\n");
    for (path, says) in [
        (&gzip_named_csv, "rename it to end in .gz"),
        (&plain_named_gz, "ends in .gz but it is not compressed"),
        (&plain_named_zst, "ends in .zst but it is not compressed"),
    ] {
        let err = db.import_file("t", path, None, None).unwrap_err();
        assert!(matches!(err, Error::Parse { .. }), "{}: {err}", path.display());
        assert!(err.to_string().contains(says), "{err}");
        assert!(!db.table_exists("t").unwrap());
    }
    // Named for what it is, the same gzip file imports.
    let renamed = dir.path().join("data.csv.gz");
    std::fs::rename(&gzip_named_csv, &renamed).unwrap();
    assert_eq!(db.import_file("t", &renamed, None, None).unwrap(), 1);
}

/// A gzip file of `text` in one stored (uncompressed) deflate block, so the test needs no
/// compression crate.
fn gzip_stored(text: &[u8]) -> Vec<u8> {
    let crc = !text.iter().fold(!0u32, |crc, &byte| {
        (0..8).fold(crc ^ u32::from(byte), |c, _| {
            if c & 1 == 1 {
                (c >> 1) ^ 0xEDB8_8320
            } else {
                c >> 1
            }
        })
    });
    let len = u16::try_from(text.len()).expect("small test file");
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255, 1];
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&(!len).to_le_bytes());
    out.extend_from_slice(text);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&(text.len() as u32).to_le_bytes());
    out
}

/// A compressed CSV is not read ahead, and its skip stays pinned: a ragged last row is an
/// error, as uncompressed (left to DuckDB's sniffer, it became the header of a 0-row table).
#[test]
fn a_compressed_csv_with_a_ragged_last_row_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = db();
    let path = dir.path().join("ragged.csv.gz");
    std::fs::write(&path, gzip_stored(b"a,b\n1,2\n3,4,5\n")).unwrap();
    let err = db.import_file("t", &path, None, None).unwrap_err();
    assert!(matches!(err, Error::Parse { .. }), "{err}");
    assert!(!db.table_exists("t").unwrap());
    let fine = dir.path().join("fine.csv.gz");
    std::fs::write(&fine, gzip_stored(b"a,b\n1,2\n3,4\n")).unwrap();
    assert_eq!(db.import_file("t", &fine, None, None).unwrap(), 2);
}

/// Without a header, or with a whitespace delimiter, a line of spaces or tabs may be a row of
/// empty fields: only empty lines are skipped then.
#[test]
fn whitespace_lines_are_rows_without_a_header_or_with_a_whitespace_delimiter() {
    let dir = tempfile::tempdir().unwrap();
    let db = db();
    let tabs = write(dir.path(), "tabs.tsv", "\t\t\na\tb\tc\n");
    let options = CsvOptions {
        header: false,
        delimiter: Some('\t'),
    };
    assert_eq!(db.import_csv("t", &tabs, &options).unwrap(), 2);
    let with_header = CsvOptions {
        header: true,
        delimiter: Some('\t'),
    };
    let headed = write(dir.path(), "headed.tsv", "x\ty\tz\n\t\t\na\tb\tc\n");
    assert_eq!(db.import_csv("u", &headed, &with_header).unwrap(), 2);
    // Under a header, whitespace that is not the delimiter is a blank line.
    let spaced = write(dir.path(), "spaced.tsv", "   \na\tb\n1\tx\n");
    assert_eq!(db.import_csv("w", &spaced, &with_header).unwrap(), 1);
    assert_eq!(all_rows(&db, "w"), vec![vec![Value::Int(1), t("x")]]);
    let spaces = write(dir.path(), "one.csv", "  \n1\n2\n");
    let no_header = CsvOptions {
        header: false,
        ..CsvOptions::default()
    };
    assert_eq!(db.import_csv("v", &spaces, &no_header).unwrap(), 3);
}

/// A file of nothing but blank lines has nothing to import, however long it is.
#[test]
fn a_long_csv_of_blank_lines_creates_no_table() {
    let dir = tempfile::tempdir().unwrap();
    let db = db();
    let file = write(dir.path(), "blank.csv", &"\n".repeat(5_000));
    let err = db.import_csv("t", &file, &CsvOptions::default()).unwrap_err();
    assert!(matches!(err, Error::Parse { .. }), "{err}");
    assert!(!db.table_exists("t").unwrap());
}

/// The error keeps the failed value and column wherever DuckDB puts them, never its list of
/// read_csv options, and hints at creating the table only when the types were guessed.
#[test]
fn import_errors_keep_the_telling_lines_only() {
    let dir = tempfile::tempdir().unwrap();
    let db = db();
    let mut csv = String::from("n,s\n");
    for i in 0..25_000 {
        csv.push_str(&format!("{i},x\n"));
    }
    // A blank line inside the bad row's quoted field once cut the message short.
    csv.push_str("oops,\"a\n\nb\"\n");
    let file = write(dir.path(), "late.csv", &csv);
    let message = db
        .import_csv("t", &file, &CsvOptions::default())
        .unwrap_err()
        .to_string();
    assert!(message.contains("Could not convert string \"oops\""), "{message}");
    assert!(message.contains("create the table first"), "{message}");
    let ragged = write(
        dir.path(),
        "ragged.csv",
        &format!("{csv}1,2,3\n").replace("oops", "7"),
    );
    let message = db
        .import_csv("t", &ragged, &CsvOptions::default())
        .unwrap_err()
        .to_string();
    assert!(!message.contains("Possible fixes"), "{message}");
    assert!(!message.contains("null_padding"), "{message}");
    // DuckDB's reason stands after a blank line for some errors; it is kept.
    let bad_utf8 = dir.path().join("utf8.csv");
    std::fs::write(&bad_utf8, b"a,b\n\xff\xfe,1\n").unwrap();
    let message = db
        .import_csv("t", &bad_utf8, &CsvOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        message.to_ascii_lowercase().contains("invalid unicode"),
        "{message}"
    );
    let open_quote = write(dir.path(), "quote.csv", "a,b\n1,\"abc\n");
    let message = db
        .import_csv("t", &open_quote, &CsvOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("never closes") || message.contains("unterminated quote"),
        "{message}"
    );
    // Into an existing table the types are the table's: no hint.
    db.exec_batch("CREATE TABLE e (n INTEGER, s VARCHAR)").unwrap();
    let bad = write(dir.path(), "bad.csv", "n,s\n1,x\nabc,y\n");
    let message = db
        .import_csv("e", &bad, &CsvOptions::default())
        .unwrap_err()
        .to_string();
    assert!(message.contains("abc"), "{message}");
    assert!(!message.contains("create the table first"), "{message}");
}

/// A JSON key null in every record makes a VARCHAR column, which later imports can fill
/// (DuckDB's NULL type could never take a value).
#[test]
fn a_json_key_null_throughout_makes_a_column_later_imports_can_fill() {
    let dir = tempfile::tempdir().unwrap();
    let db = db();
    let nulls = write(
        dir.path(),
        "nulls.jsonl",
        "{\"a\":1,\"b\":null}\n{\"a\":2,\"b\":null}\n",
    );
    assert_eq!(db.import_jsonl("t", &nulls).unwrap(), 2);
    assert_eq!(
        columns(&db, "t"),
        [
            ("a".to_string(), "BIGINT".to_string()),
            ("b".to_string(), "VARCHAR".to_string())
        ]
    );
    let values = write(dir.path(), "values.jsonl", "{\"a\":3,\"b\":\"x\"}\n");
    assert_eq!(db.import_jsonl("t", &values).unwrap(), 1);
    assert_eq!(scalar(&db, "SELECT b FROM t WHERE a = 3"), t("x"));
    // A list of nulls and a struct field of nulls become VARCHAR[] and STRUCT(x VARCHAR); a
    // field named NULL keeps its name and values (a rewrite of the type's text renamed it).
    let nested = write(
        dir.path(),
        "nested.jsonl",
        "{\"a\":1,\"l\":[null],\"s\":{\"NULL\":1,\"x\":null}}\n",
    );
    assert_eq!(db.import_jsonl("n", &nested).unwrap(), 1);
    let later = write(
        dir.path(),
        "later.jsonl",
        "{\"a\":2,\"l\":[\"v\"],\"s\":{\"NULL\":2,\"x\":\"w\"}}\n",
    );
    assert_eq!(db.import_jsonl("n", &later).unwrap(), 1);
    assert_eq!(scalar(&db, "SELECT l[1] || s.x FROM n WHERE a = 2"), t("vw"));
    assert_eq!(scalar(&db, "SELECT s['NULL'] FROM n WHERE a = 1"), Value::Int(1));
    // A key longer than a caller's column name may be, and a same-named table in an attached
    // database, do not get in the way.
    db.exec_batch(&format!(
        "ATTACH '{}' AS other; CREATE TABLE other.w AS SELECT 1 AS a, NULL AS zz",
        dir.path().join("other.duckdb").display()
    ))
    .unwrap();
    // A NUL in a field name cannot pass through duckdb-rs: that column keeps its type, and the
    // import still succeeds (it failed with a raw NulError).
    let nul = write(dir.path(), "nul.jsonl", "{\"s\":{\"a\\u0000b\":1,\"n\":null}}\n");
    assert_eq!(db.import_jsonl("z", &nul).unwrap(), 1);
    let long = "k".repeat(300);
    let file = write(
        dir.path(),
        "long.jsonl",
        &format!("{{\"a\":1,\"{long}\":null}}\n"),
    );
    assert_eq!(db.import_jsonl("w", &file).unwrap(), 1);
    assert_eq!(
        scalar(&db, &format!("SELECT typeof(\"{long}\") FROM w")),
        t("VARCHAR")
    );
}

/// Polars and pyarrow write a column of Nones as Arrow's `null` type; DuckDB reads that as its
/// NULL type, which no later value can be cast to, so the new table could never take another
/// import. Like a JSON key null throughout, it becomes VARCHAR (also as a list's element).
#[test]
fn a_parquet_column_of_the_null_type_makes_a_column_later_imports_can_fill() {
    use duckdb::arrow::array::{ArrayRef, Int64Array, ListArray, NullArray};
    use duckdb::arrow::datatypes::{DataType, Field, Int32Type};
    use duckdb::arrow::record_batch::RecordBatch;
    use std::sync::Arc;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nones.parquet");
    let null_list = ListArray::from_iter_primitive::<Int32Type, _, _>(vec![Some(vec![None]), None]);
    let (_, offsets, _, nulls) = null_list.into_parts();
    let element = Arc::new(Field::new("item", DataType::Null, true));
    let null_list = ListArray::new(element, offsets, Arc::new(NullArray::new(1)), nulls);
    let batch = RecordBatch::try_from_iter_with_nullable([
        ("a", Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef, true),
        ("n", Arc::new(NullArray::new(2)) as ArrayRef, true),
        ("l", Arc::new(null_list) as ArrayRef, true),
    ])
    .unwrap();
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(std::fs::File::create(&path).unwrap(), batch.schema(), None)
            .unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();

    let db = db();
    assert_eq!(db.import_parquet("t", &path).unwrap(), 2);
    assert_eq!(
        columns(&db, "t"),
        [
            ("a".to_string(), "BIGINT".to_string()),
            ("n".to_string(), "VARCHAR".to_string()),
            ("l".to_string(), "VARCHAR[]".to_string())
        ]
    );
    let filled = write(
        dir.path(),
        "filled.jsonl",
        "{\"a\":3,\"n\":\"x\",\"l\":[\"y\"]}\n",
    );
    assert_eq!(db.import_jsonl("t", &filled).unwrap(), 1);
    assert_eq!(scalar(&db, "SELECT n || l[1] FROM t WHERE a = 3"), t("xy"));
    assert_eq!(count(&db, "t"), 3);
}

#[test]
fn a_progress_callback_calling_a_handle_its_job_holds_is_refused_instead_of_deadlocking() {
    // A deadlock fails the test instead of hanging it.
    crate::common::within(std::time::Duration::from_secs(300), || {
        let dir = tempfile::tempdir().unwrap();
        let db = Analytics::in_memory().unwrap();
        let outer = Analytics::in_memory().unwrap();
        let streamed = Analytics::in_memory().unwrap();
        let other = Analytics::in_memory().unwrap();
        // Estimates arrive every 100 ms on a helper thread while the job holds `db`'s connection:
        // each job grows until at least one arrived during it, however fast the machine.
        let mut rows = 1_000_000u64;
        let (own, held, free) = loop {
            let own = std::sync::Mutex::new(Vec::new());
            let held = std::sync::Mutex::new(Vec::new());
            let free = AtomicUsize::new(0);
            let callback = |p: store::analytics::ImportProgress| {
                if p.percentage != Some(100.0) {
                    own.lock()
                        .unwrap()
                        .push(db.query_row("SELECT 1", &[]).map(|_| ()));
                    own.lock().unwrap().push(db.close());
                    held.lock()
                        .unwrap()
                        .push(outer.query_row("SELECT 1", &[]).map(|_| ()));
                    held.lock()
                        .unwrap()
                        .push(streamed.query_row("SELECT 1", &[]).map(|_| ()));
                    if other.query_row("SELECT 1", &[]).is_ok() {
                        free.fetch_add(1, Ordering::SeqCst);
                    }
                }
            };
            let mut csv = String::from("x,s\n");
            for i in 0..rows {
                csv.push_str(&format!("{i},name{i}\n"));
            }
            let file = write(dir.path(), "big.csv", &csv);
            db.exec_batch("DROP TABLE IF EXISTS t").unwrap();
            // The thread starting the job also holds `outer` (inside its with_connection) and
            // `streamed` (reading a query_arrow result).
            let imported = outer
                .with_connection(|_| {
                    let mut stream = streamed.query_arrow("SELECT * FROM range(100000)", &[]).unwrap();
                    assert!(stream.next().is_some());
                    let imported = db.import_file("t", &file, None, Some(&callback));
                    drop(stream);
                    Ok(imported)
                })
                .unwrap();
            assert_eq!(imported.unwrap(), rows);
            let seen = own.lock().unwrap().len();
            if seen > 0 || rows >= 64_000_000 {
                break (
                    own.into_inner().unwrap(),
                    held.into_inner().unwrap(),
                    free.into_inner(),
                );
            }
            rows *= 2;
        };
        assert!(!own.is_empty(), "no estimate arrived even for {rows} rows");
        for result in own.into_iter().chain(held) {
            let err = result.expect_err("a call on a handle the running job holds");
            assert_eq!(
                (err.kind(), err.field()),
                (ErrorKind::InvalidInput, Some("connection")),
                "{err}"
            );
            assert!(err.to_string().contains("progress callback"), "{err}");
        }
        assert!(free > 0, "a handle the job does not hold stays callable");
        // The refused close closed nothing; outside the callback both handles work.
        assert_eq!(count(&db, "t"), rows as i64);
        assert_eq!(scalar(&outer, "SELECT 7"), Value::Int(7));
        assert_eq!(scalar(&streamed, "SELECT 8"), Value::Int(8));
    });
}

/// A line break as the delimiter used to import one column per line; like `"`, it is refused.
#[test]
fn a_line_break_delimiter_is_invalid_input_and_imports_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "t.csv", "a,b\n1,2\n");
    let db = db();
    for delimiter in ['\n', '\r', '"'] {
        let options = CsvOptions {
            header: true,
            delimiter: Some(delimiter),
        };
        let err = expect_kind(db.import_csv("t", &file, &options), ErrorKind::InvalidInput);
        assert_eq!(err.field(), Some("delimiter"));
    }
    assert!(db.table_counts().unwrap().is_empty());
}

/// An append the table cannot take says how to fix it and leaves the table as it was (h144,
/// h151: DuckDB's binder and constraint errors came without a fix): a file column the table
/// lacks, and rows breaking the table's key.
#[test]
fn an_append_the_table_refuses_names_its_fix_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = db();
    db.exec_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, name VARCHAR); INSERT INTO t VALUES (1, 'a')")
        .unwrap();
    let extra = write(dir.path(), "extra.csv", "id,name,z\n2,b,9\n");
    let err = expect_kind(
        db.import_csv("t", &extra, &CsvOptions::default()),
        ErrorKind::DuckDb,
    );
    assert!(err.to_string().contains("ADD COLUMN"), "{err}");
    let duplicate = write(
        dir.path(),
        "dup.jsonl",
        "{\"id\":3,\"name\":\"c\"}\n{\"id\":1,\"name\":\"d\"}\n",
    );
    let err = expect_kind(db.import_jsonl("t", &duplicate), ErrorKind::DuckDb);
    assert!(err.to_string().contains("constraint of the table"), "{err}");
    assert_eq!(all_rows(&db, "t"), vec![vec![Value::Int(1), t("a")]]);
}

/// A `USE` or `search_path` changes where bare names in SQL are looked up first, not what the
/// store's calls mean by a table name: `main`'s table (or a temporary one). The import checks
/// and writes that one table.
#[test]
fn after_use_of_another_schema_imports_create_and_append_in_main() {
    let dir = tempfile::tempdir().unwrap();
    let db = Analytics::open(dir.path().join("m.duckdb")).unwrap();
    db.exec_batch("CREATE SCHEMA s2; USE s2").unwrap();
    let csv = write(dir.path(), "x.csv", "a\n1\n");
    assert_eq!(db.import_csv("imp", &csv, &CsvOptions::default()).unwrap(), 1);
    assert_eq!(
        db.import_csv("imp", &csv, &CsvOptions::default()).unwrap(),
        1,
        "appends"
    );
    assert!(db.table_exists("imp").unwrap());
    assert_eq!(scalar(&db, "SELECT count(*) FROM main.imp"), Value::Int(2));
    assert_eq!(db.table_counts().unwrap().get("imp"), Some(&2));
    assert_eq!(db.export_parquet("imp", dir.path().join("o.parquet")).unwrap(), 2);
}

/// With `imp` in both `main` (VARCHAR) and `s2` (BIGINT) and `s2` in use, the import types
/// the file by `main.imp` and appends there; counts and exports name the same tables.
#[test]
fn after_use_an_import_reads_the_types_of_the_table_it_appends_to() {
    let dir = tempfile::tempdir().unwrap();
    let db = Analytics::open(dir.path().join("m.duckdb")).unwrap();
    db.exec_batch(
        "CREATE SCHEMA s2; CREATE TABLE main.imp (a VARCHAR); CREATE TABLE s2.imp (a BIGINT); USE s2",
    )
    .unwrap();
    let csv = write(dir.path(), "x.csv", "a\n007\n");
    assert_eq!(db.import_csv("imp", &csv, &CsvOptions::default()).unwrap(), 1);
    assert_eq!(scalar(&db, "SELECT a FROM main.imp"), t("007"));
    assert_eq!(scalar(&db, "SELECT count(*) FROM s2.imp"), Value::Int(0));
    let counts = db.table_counts().unwrap();
    assert_eq!((counts.get("imp"), counts.get("s2.imp")), (Some(&1), Some(&0)));
    assert_eq!(db.export_parquet("imp", dir.path().join("o.parquet")).unwrap(), 1);
    assert_eq!(
        db.export_parquet("s2.imp", dir.path().join("s.parquet")).unwrap(),
        0
    );
}

/// A table only `main` holds is still found by the store's calls after a `USE` or a
/// `search_path` naming other schemas, and an import appends to it instead of creating a
/// twin that bare names in SQL would then find first.
#[test]
fn a_main_table_stays_the_target_under_use_and_search_path() {
    for switch in ["USE s2", "SET search_path = 's2,s3'"] {
        let dir = tempfile::tempdir().unwrap();
        let db = Analytics::open(dir.path().join("m.duckdb")).unwrap();
        db.exec_batch("CREATE SCHEMA s2; CREATE SCHEMA s3; CREATE TABLE only_main (a BIGINT); INSERT INTO only_main VALUES (1)")
            .unwrap();
        db.exec_batch(switch).unwrap();
        assert!(db.table_exists("only_main").unwrap(), "{switch}");
        assert_eq!(
            db.export_parquet("only_main", dir.path().join("o.parquet"))
                .unwrap(),
            1
        );
        let csv = write(dir.path(), "x.csv", "a\n2\n");
        assert_eq!(
            db.import_csv("only_main", &csv, &CsvOptions::default()).unwrap(),
            1
        );
        assert_eq!(
            scalar(&db, "SELECT count(*) FROM main.only_main"),
            Value::Int(2),
            "{switch}"
        );
        let twins = scalar(
            &db,
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'only_main'",
        );
        assert_eq!(twins, Value::Int(1), "{switch}: no second table");
    }
}

/// A name as `table_counts` gives another schema's table (`s.x`) means that table to imports
/// as it does to exports and `table_exists` (h177): the rows are appended to it, not to a new
/// `main` table literally named `s.x`. A name no table has still creates one in `main`.
#[test]
fn an_inventory_name_of_another_schemas_table_imports_into_that_table() {
    let dir = tempfile::tempdir().unwrap();
    let db = Analytics::open(dir.path().join("m.duckdb")).unwrap();
    db.exec_batch("CREATE SCHEMA s; CREATE TABLE s.x AS SELECT 1 AS a UNION ALL SELECT 2")
        .unwrap();
    assert!(db.table_exists("s.x").unwrap());
    let csv = write(dir.path(), "x.csv", "a\n7\n");
    assert_eq!(db.import_csv("s.x", &csv, &CsvOptions::default()).unwrap(), 1);
    let jsonl = write(dir.path(), "x.jsonl", "{\"a\": 8}\n");
    assert_eq!(db.import_jsonl("s.x", &jsonl).unwrap(), 1);
    assert_eq!(scalar(&db, "SELECT sum(a) FROM s.x"), Value::Int(18));
    let counts = db.table_counts().unwrap();
    assert_eq!(counts.into_iter().collect::<Vec<_>>(), [("s.x".to_string(), 4)]);
    assert_eq!(db.export_parquet("s.x", dir.path().join("o.parquet")).unwrap(), 4);

    assert_eq!(db.import_csv("s.y", &csv, &CsvOptions::default()).unwrap(), 1);
    assert_eq!(scalar(&db, "SELECT count(*) FROM main.\"s.y\""), Value::Int(1));
}
