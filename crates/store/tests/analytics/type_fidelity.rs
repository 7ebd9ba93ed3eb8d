//! Type fidelity of imports and exports (QA pass h150): a table holding every DuckDB type the
//! analytics layer meets, exported (`export_parquet`, DuckDB's own `COPY … TO` through `exec`
//! for CSV, a JSON array and JSON Lines, which the library does not write, and the library's
//! `Rows::to_objects` written as JSON Lines), then imported into a new table and appended into
//! an existing table of the same schema. Values are compared with the original in SQL, column
//! by column, and every difference that docs/guarantees.md does not document fails the matrix test.
//! (The JSON-column, MAP and offset-timestamp cases of JSON appends are in `import_content`.)

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use store::analytics::{Analytics, CsvOptions, Value};

use crate::support::{lit, scalar, write};

fn db() -> Analytics {
    Analytics::in_memory().unwrap()
}

/// The source table: one column per type, rows with extreme values, a row of NULLs, special
/// floats, unicode/quotes/line breaks, empty and nested-NULL values. (A negative INTERVAL is
/// left out: Parquet cannot hold one and docs/guarantees.md says the export refuses it.)
const SOURCE: &str = r#"
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE src(
  id INTEGER, b BOOLEAN, ti TINYINT, si SMALLINT, i INTEGER, bi BIGINT, hi HUGEINT,
  uti UTINYINT, usi USMALLINT, ui UINTEGER, ubi UBIGINT, f FLOAT, d DOUBLE,
  dec18 DECIMAL(18,3), dec38 DECIMAL(38,10), s VARCHAR, bl BLOB, dt DATE, tm TIME,
  ts TIMESTAMP, tstz TIMESTAMPTZ, iv INTERVAL, u UUID, j JSON, e mood,
  l INTEGER[], arr INTEGER[3], st STRUCT(a INTEGER, b VARCHAR), m MAP(VARCHAR, INTEGER),
  ls STRUCT(x INTEGER[], y STRUCT(z VARCHAR))[], ml MAP(VARCHAR, INTEGER[])
);
INSERT INTO src VALUES
 (1, true, -128, -32768, -2147483648, -9223372036854775808, -170141183460469231731687303715884105727,
  0, 0, 0, 0, -3.4e38, -1.7976931348623157e308,
  -999999999999999.999, -9999999999999999999999999999.9999999999, 'plain', '\x00\xFF'::BLOB,
  '0001-01-01', '00:00:00', '1970-01-01 00:00:00', '1970-01-01 00:00:00+00', INTERVAL 1 DAY,
  '00000000-0000-0000-0000-000000000000', '{"a":1}', 'sad',
  [1,2,3], [1,2,3], {'a': 1, 'b': 'x'}, MAP {'k': 1}, [{'x': [1], 'y': {'z': 'q'}}], MAP {'a': [1,2]}),
 (2, false, 127, 32767, 2147483647, 9223372036854775807, 170141183460469231731687303715884105727,
  255, 65535, 4294967295, 18446744073709551615, 1.5, 0.1,
  999999999999999.999, 9999999999999999999999999999.9999999999,
  'ünï©ødé ✓ 😀 "quoted" ''single'' a,b;c' || chr(10) || 'second line' || chr(13) || chr(10) || 'crlf' || chr(9) || 'tab \\ back',
  'bytes,"q"\x0A'::BLOB, '9999-12-31', '23:59:59.999999',
  '2024-02-29 12:34:56.789012', '2024-02-29 12:34:56.789012+00', INTERVAL '1 month 2 days 03:04:05.678901',
  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '[1,"two",null,{"b":[true]}]', 'happy',
  [], [NULL, 2, NULL], {'a': NULL, 'b': NULL}, MAP {}, [], MAP {'x': []}),
 (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (4, true, 0, 0, 0, 0, 0, 1, 1, 1, 1, 'nan', 'inf', 0, 0, '', ''::BLOB, '2000-01-01', '12:00:00',
  '2000-01-01 00:00:00', '2000-01-01 00:00:00+00', INTERVAL 0 DAY,
  'ffffffff-ffff-ffff-ffff-ffffffffffff', '"just a string"', 'ok',
  [NULL], NULL, NULL, NULL, [NULL], MAP {'n': NULL}),
 (5, false, 1, 1, 1, 1, 1, 2, 2, 2, 2, '-inf', 1e-300, 0.001, 0.0000000001, 'NULL', 'NULL'::BLOB,
  '1999-12-31', '01:02:03', '1999-12-31 23:59:59', '1999-12-31 23:59:59+00', INTERVAL 3 HOURS,
  '12345678-1234-5678-1234-567812345678', '42', 'sad',
  [1, NULL], [0,0,0], {'a': 5, 'b': ''}, MAP {'': 0, 'z': NULL}, [{'x': NULL, 'y': NULL}], NULL),
 (6, true, 2, 2, 2, 2, 2, 3, 3, 3, 3, 0.0, -0.0, 1, 1, '  padded  ', '\x0A'::BLOB, '2024-01-01',
  '00:00:00.000001', '2024-01-01 00:00:00.000001', '2024-01-01 00:00:00.000001+00',
  INTERVAL '25 hours 0.000007 seconds', 'abcdef01-2345-6789-abcd-ef0123456789', '{"b":2}', 'happy',
  [1], [7,8,9], {'a': 1, 'b': 'null'}, MAP {'a': 1, 'b': 2}, NULL, MAP {});
"#;

/// `(column, type)` of a table, as `duckdb_columns()` names the types (usable in a cast).
fn typed_columns(db: &Analytics, table: &str) -> Vec<(String, String)> {
    db.query(
        "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = ? ORDER BY column_index",
        &[Value::Text(table.into())],
    )
    .unwrap()
    .rows
    .into_iter()
    .map(|r| (text(&r[0]), text(&r[1])))
    .collect()
}

fn text(v: &Value) -> String {
    match v {
        Value::Text(s) => s.clone(),
        Value::Null => "NULL".into(),
        other => format!("{other:?}"),
    }
}

fn q(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// One column of an imported table that differs from the source.
#[derive(Debug)]
struct ColumnDiff {
    column: String,
    source_type: String,
    /// The imported table's type, when it is not the source's.
    new_type: Option<String>,
    /// `(id, source value, imported value)` as VARCHAR, for the rows whose values differ
    /// (the imported value cast back to the source's type before the comparison).
    rows: Vec<(String, String, String)>,
}

/// The columns of `table` whose type or values differ from `source`'s (rows matched by `id`).
fn diff_against(db: &Analytics, source: &str, table: &str) -> Vec<ColumnDiff> {
    let source_columns = typed_columns(db, source);
    let imported = typed_columns(db, table);
    let mut out = Vec::new();
    for (column, source_type) in &source_columns {
        let Some((_, new_type)) = imported.iter().find(|(c, _)| c == column) else {
            out.push(ColumnDiff {
                column: column.clone(),
                source_type: source_type.clone(),
                new_type: Some("(missing)".into()),
                rows: Vec::new(),
            });
            continue;
        };
        let c = q(column);
        let sql = format!(
            "SELECT COALESCE(s.id, TRY_CAST(d.id AS INTEGER))::VARCHAR, s.{c}::VARCHAR, d.{c}::VARCHAR \
             FROM {s} s FULL OUTER JOIN {t} d ON s.id = TRY_CAST(d.id AS INTEGER) \
             WHERE s.{c} IS DISTINCT FROM TRY_CAST(d.{c} AS {source_type}) ORDER BY 1",
            s = q(source),
            t = q(table)
        );
        // A type DuckDB cannot cast back (a STRUCT into a MAP) is compared as text.
        let rows = db
            .query(&sql, &[])
            .or_else(|_| {
                db.query(
                    &format!(
                        "SELECT COALESCE(s.id, TRY_CAST(d.id AS INTEGER))::VARCHAR, s.{c}::VARCHAR, \
                         d.{c}::VARCHAR FROM {s} s FULL OUTER JOIN {t} d ON s.id = TRY_CAST(d.id AS INTEGER) \
                         WHERE s.{c}::VARCHAR IS DISTINCT FROM d.{c}::VARCHAR ORDER BY 1",
                        s = q(source),
                        t = q(table)
                    ),
                    &[],
                )
            })
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .rows
            .iter()
            .map(|r| (text(&r[0]), text(&r[1]), text(&r[2])))
            .collect::<Vec<_>>();
        let new_type = (new_type != source_type).then(|| new_type.clone());
        if new_type.is_some() || !rows.is_empty() {
            out.push(ColumnDiff {
                column: column.clone(),
                source_type: source_type.clone(),
                new_type,
                rows,
            });
        }
    }
    out
}

/// Table `source` exported in each format into `dir`: `(format, path)`.
fn export_everything(db: &Analytics, source: &str, dir: &Path) -> Vec<(&'static str, PathBuf)> {
    let rows = scalar(db, &format!("SELECT count(*) FROM {}", q(source)));
    let parquet = dir.join(format!("{source}.parquet"));
    let exported = db.export_parquet(source, &parquet).unwrap();
    assert_eq!(Value::Int(exported as i64), rows);
    let csv = dir.join(format!("{source}.csv"));
    db.exec(&format!("COPY {} TO {} (HEADER)", q(source), lit(&csv)), &[])
        .unwrap();
    let json = dir.join(format!("{source}.json"));
    db.exec(
        &format!("COPY {} TO {} (FORMAT json, ARRAY true)", q(source), lit(&json)),
        &[],
    )
    .unwrap();
    let jsonl = dir.join(format!("{source}.jsonl"));
    db.exec(
        &format!("COPY {} TO {} (FORMAT json)", q(source), lit(&jsonl)),
        &[],
    )
    .unwrap();
    // The library's own JSON: `Rows::to_objects`, one object per line.
    let objects = dir.join(format!("{source}.rows.jsonl"));
    let body: String = db
        .query(&format!("SELECT * FROM {}", q(source)), &[])
        .unwrap()
        .to_objects()
        .iter()
        .map(|o| serde_json::to_string(o).unwrap() + "\n")
        .collect();
    std::fs::write(&objects, body).unwrap();
    vec![
        ("parquet", parquet),
        ("csv", csv),
        ("json", json),
        ("jsonl", jsonl),
        ("rows", objects),
    ]
}

fn import(db: &Analytics, format: &str, table: &str, path: &Path) -> store::Result<u64> {
    match format {
        "parquet" => db.import_parquet(table, path),
        "csv" => db.import_csv(table, path, &CsvOptions::default()),
        "json" => db.import_json(table, path),
        "jsonl" | "rows" => db.import_jsonl(table, path),
        other => unreachable!("{other}"),
    }
}

/// The differences docs/guarantees.md documents (format `rows` is `Rows::to_objects` written as JSON
/// Lines: the spec's JSON rendering of values, read back by `import_jsonl`), as `(format, target, column, what)` where `target` is
/// `new` or `append` and `what` is `type` (the column's type changes), `values` (values differ
/// once cast back to the source's type) or `fails` (the import fails with an error). `*`
/// matches anything.
///
/// docs/guarantees.md, "Parquet has no home for some DuckDB types": HUGEINT → DOUBLE (digits beyond 2^53
/// lost), ENUM → VARCHAR, `INTEGER[3]` → `INTEGER[]`, INTERVAL microseconds cut and hours beyond
/// a day as days. docs/guarantees.md, "Imports": a new table's column types are DuckDB's guess (so every
/// type change of a new CSV/JSON table is documented); JSON numbers with a fraction are held as
/// DOUBLE (about 16 digits) whatever the column.
const DOCUMENTED: &[(&str, &str, &str, &str)] = &[
    // Parquet (docs/guarantees.md "Parquet has no home for some DuckDB types").
    ("parquet", "*", "hi", "values"),
    // An append of that DOUBLE into HUGEINT overflows at ±(2^127 − 1): a clear error.
    ("parquet", "append", "hi", "fails"),
    ("parquet", "new", "hi", "type"),
    ("parquet", "new", "e", "type"),
    ("parquet", "new", "arr", "type"),
    ("parquet", "*", "iv", "values"),
    // New CSV/JSON tables take DuckDB's guessed types (docs/guarantees.md "Imports"), and a value of a
    // wider type is rounded to fit the guess: a 38-digit DECIMAL read as DOUBLE from CSV or
    // JSON, a HUGEINT beyond 64 bits read as DOUBLE from JSON ("create the table first";
    // "integers appended to an integer or DECIMAL column stay exact" says only appends).
    ("csv", "new", "*", "type"),
    ("json", "new", "*", "type"),
    ("jsonl", "new", "*", "type"),
    ("rows", "new", "*", "type"),
    ("csv", "new", "dec18", "values"),
    ("csv", "new", "dec38", "values"),
    ("json", "new", "hi", "values"),
    ("jsonl", "new", "hi", "values"),
    // JSON fractions pass through DOUBLE (docs/guarantees.md: "DuckDB's JSON reader holds every number with
    // a fraction as a DOUBLE (about 16 significant digits) whatever the column"); rounded up
    // to 10^15 or 10^28, the extreme decimals no longer fit their columns.
    ("json", "*", "dec18", "values"),
    ("jsonl", "*", "dec18", "values"),
    ("json", "*", "dec38", "values"),
    ("jsonl", "*", "dec38", "values"),
    ("json", "append", "dec18", "fails"),
    ("jsonl", "append", "dec18", "fails"),
    ("json", "append", "dec38", "fails"),
    ("jsonl", "append", "dec38", "fails"),
    // A new table from JSON: an object key becomes a STRUCT of every key met in the file
    // (docs/guarantees.md "Imports": a new table's types are DuckDB's guesses, objects included).
    ("json", "new", "ml", "values"),
    ("jsonl", "new", "ml", "values"),
    ("rows", "new", "ml", "values"),
    // `to_objects` writes a BLOB as base64 text and a JSON column's value as a string; read
    // back, the BLOB holds that text's bytes and the JSON column that string, as written
    // (docs/guarantees.md "Imports").
    ("rows", "*", "bl", "values"),
    ("rows", "append", "j", "values"),
];

fn documented(format: &str, target: &str, column: &str, what: &str) -> bool {
    DOCUMENTED.iter().any(|&(f, t, c, w)| {
        (f == "*" || f == format) && (t == "*" || t == target) && (c == "*" || c == column) && w == what
    })
}

/// Every format, into a new table and appended into a copy of `source`'s schema; the report
/// goes into `report`, the undocumented differences into `undocumented`; returns the
/// `(format, target)` cells whose import failed.
fn run_matrix(
    db: &Analytics,
    source: &str,
    dir: &Path,
    report: &mut String,
    undocumented: &mut Vec<String>,
) -> Vec<(String, String)> {
    let mut failed = Vec::new();
    let columns: Vec<String> = typed_columns(db, source)
        .into_iter()
        .map(|(c, _)| c)
        .filter(|c| c != "id")
        .collect();
    let column = if columns.len() == 1 {
        columns[0].clone()
    } else {
        "all".to_string()
    };
    for (format, path) in export_everything(db, source, dir) {
        for target in ["new", "append"] {
            let table = format!("{source}_{format}_{target}");
            if target == "append" {
                db.exec_batch(&format!(
                    "CREATE TABLE {} AS SELECT * FROM {} LIMIT 0",
                    q(&table),
                    q(source)
                ))
                .unwrap();
            }
            let cell = format!("{format:7} {target:6} [{column}]");
            match import(db, format, &table, &path) {
                Err(e) => {
                    let message = e.to_string().replace('\n', " ");
                    report.push_str(&format!("{cell}: FAILS ({:?}): {message}\n", e.kind()));
                    failed.push((format.to_string(), target.to_string()));
                    if !columns.iter().all(|c| documented(format, target, c, "fails")) {
                        undocumented.push(format!("{cell}: import failed: {message}"));
                    }
                }
                Ok(_) => {
                    let diffs = diff_against(db, source, &table);
                    if diffs.is_empty() {
                        report.push_str(&format!("{cell}: same types, same values\n"));
                    }
                    for d in diffs {
                        if let Some(new_type) = &d.new_type {
                            report.push_str(&format!(
                                "{cell}: {}: type {} → {}\n",
                                d.column, d.source_type, new_type
                            ));
                            if !documented(format, target, &d.column, "type") {
                                undocumented.push(format!(
                                    "{cell}: {} type {} → {new_type}",
                                    d.column, d.source_type
                                ));
                            }
                        }
                        for (id, was, now) in &d.rows {
                            report.push_str(&format!("{cell}: {} id {id}: {was:?} → {now:?}\n", d.column));
                        }
                        if !d.rows.is_empty() && !documented(format, target, &d.column, "values") {
                            undocumented.push(format!(
                                "{cell}: {} ({}) values changed: {:?}",
                                d.column, d.source_type, d.rows
                            ));
                        }
                    }
                }
            }
        }
    }
    failed
}

/// The matrix one column at a time (each column beside `id` in a table of its own, so one
/// column's failure hides no other's), then all the columns at once, less those whose own
/// import failed in that cell (to see what the columns do to each other). Prints every
/// difference (run with `--nocapture`), and fails on those docs/guarantees.md does not document.
#[test]
fn type_fidelity_matrix() {
    let dir = tempfile::tempdir().unwrap();
    let db = db();
    db.exec_batch(SOURCE).unwrap();
    let mut report = String::new();
    let mut undocumented = Vec::new();
    let columns: Vec<String> = typed_columns(&db, "src")
        .into_iter()
        .map(|(c, _)| c)
        .filter(|c| c != "id")
        .collect();
    let mut failing = BTreeSet::new();
    for column in &columns {
        let source = format!("src_{column}");
        db.exec_batch(&format!(
            "CREATE TABLE {} AS SELECT id, {} FROM src",
            q(&source),
            q(column)
        ))
        .unwrap();
        if !run_matrix(&db, &source, dir.path(), &mut report, &mut undocumented).is_empty() {
            failing.insert(column.clone());
        }
    }
    // All columns at once, without those that failed alone anywhere.
    let kept: Vec<String> = columns
        .iter()
        .filter(|c| !failing.contains(*c))
        .map(|c| q(c))
        .collect();
    report.push_str(&format!(
        "\n-- all columns at once, less {:?}\n",
        failing.iter().collect::<Vec<_>>()
    ));
    db.exec_batch(&format!(
        "CREATE TABLE src_all AS SELECT id, {} FROM src",
        kept.join(", ")
    ))
    .unwrap();
    run_matrix(&db, "src_all", dir.path(), &mut report, &mut undocumented);
    println!("{report}");
    assert!(
        undocumented.is_empty(),
        "undocumented differences:\n{}\n\nfull report:\n{report}",
        undocumented.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// JSON columns: JSON and JSON Lines appended into an existing table with a JSON column.

/// `-0.0` in a DOUBLE column keeps its sign through every format (DuckDB compares it equal to
/// `0.0`, so the matrix cannot see it).
#[test]
fn negative_zero_keeps_its_sign_through_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let db = db();
    db.exec_batch("CREATE TABLE z AS SELECT 1 AS id, '-0.0'::DOUBLE AS d, '-0.0'::FLOAT AS f")
        .unwrap();
    let mut lost = Vec::new();
    for (format, path) in export_everything(&db, "z", dir.path()) {
        for target in ["new", "append"] {
            let table = format!("z_{format}_{target}");
            if target == "append" {
                db.exec_batch(&format!("CREATE TABLE {table} AS FROM z LIMIT 0"))
                    .unwrap();
            }
            import(&db, format, &table, &path).unwrap();
            for column in ["d", "f"] {
                let sign = scalar(
                    &db,
                    &format!("SELECT signbit(TRY_CAST({column} AS DOUBLE))::VARCHAR FROM {table}"),
                );
                if sign != Value::Text("true".into()) {
                    lost.push(format!("{format} {target} {column}: signbit {sign:?}"));
                }
            }
        }
    }
    assert!(lost.is_empty(), "-0.0 lost its sign:\n{}", lost.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// Timestamps with UTC offsets into TIMESTAMP and TIMESTAMPTZ columns.

/// `ts` (TIMESTAMP) and `tz` (TIMESTAMPTZ) of table `t`, as VARCHAR.
fn stamps(db: &Analytics) -> (String, String) {
    let row = db
        .query("SELECT ts::VARCHAR, tz::VARCHAR FROM t", &[])
        .unwrap()
        .rows
        .remove(0);
    (text(&row[0]), text(&row[1]))
}

/// The same offset timestamp appended from CSV and from JSON Lines, as docs/guarantees.md documents:
/// a TIMESTAMP column gets the time with its offset dropped from CSV (as an SQL cast does) and
/// shifted to UTC from JSON; a TIMESTAMPTZ column gets the same instant from both.
#[test]
fn an_offset_timestamp_appends_from_csv_and_json_as_documented() {
    let dir = tempfile::tempdir().unwrap();
    let db = db();
    db.exec_batch("CREATE TABLE t(ts TIMESTAMP, tz TIMESTAMPTZ)")
        .unwrap();
    let csv = write(
        dir.path(),
        "t.csv",
        "ts,tz\n2024-01-01T10:00:00+02:00,2024-01-01T10:00:00+02:00\n",
    );
    db.import_csv("t", &csv, &CsvOptions::default()).unwrap();
    let from_csv = stamps(&db);
    db.exec_batch("DELETE FROM t").unwrap();
    let jsonl = write(
        dir.path(),
        "t.jsonl",
        "{\"ts\":\"2024-01-01T10:00:00+02:00\",\"tz\":\"2024-01-01T10:00:00+02:00\"}\n",
    );
    db.import_jsonl("t", &jsonl).unwrap();
    let from_json = stamps(&db);
    let cast = scalar(&db, "SELECT ('2024-01-01T10:00:00+02:00'::TIMESTAMP)::VARCHAR");
    assert_eq!(cast, Value::Text("2024-01-01 10:00:00".into()));
    assert_eq!(from_csv.0, "2024-01-01 10:00:00", "csv {from_csv:?}");
    assert_eq!(from_json.0, "2024-01-01 08:00:00", "jsonl {from_json:?}");
    assert_eq!(from_csv.1, from_json.1, "TIMESTAMPTZ");
}
