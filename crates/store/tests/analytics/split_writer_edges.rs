//! Edges of the split export's own writer: its per-column dictionary guess from the first rows
//! and the joining of a partition's short runs of rows (from h185's review). Every export is
//! checked for exact values (raw and as text), types, manifest counts and table order per file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use store::analytics::{Analytics, SplitManifest, Value};

use crate::split::{db, manifest_file, parquet_glob};
use crate::split_many::own_writer;
use crate::support::{ident, lit, scalar, text};

fn int(db: &Analytics, sql: &str) -> i64 {
    scalar(db, sql)
        .as_i64()
        .unwrap_or_else(|| panic!("not an int: {sql}"))
}

/// Table column names and types, in order (works for views too).
fn describe(db: &Analytics, from: &str) -> Vec<(String, String)> {
    db.query(&format!("DESCRIBE SELECT * FROM {from}"), &[])
        .unwrap()
        .rows
        .iter()
        .map(|r| (text(&r[0]), text(&r[1])))
        .collect()
}

/// Columns (path_in_schema) with a dictionary page in every file / in no file.
fn dictionary_use(db: &Analytics, dir: &Path) -> BTreeMap<String, (i64, i64)> {
    db.query(
        &format!(
            "SELECT path_in_schema, count(*) FILTER (dictionary_page_offset IS NOT NULL), count(*)
             FROM parquet_metadata({}) GROUP BY 1",
            parquet_glob(dir)
        ),
        &[],
    )
    .unwrap()
    .rows
    .iter()
    .map(|r| (text(&r[0]), (r[1].as_i64().unwrap(), r[2].as_i64().unwrap())))
    .collect()
}

/// Exports `table` split by `column` and checks: own writer, manifest counts, per-file counts,
/// exact read-back (EXCEPT ALL both ways, raw and as text), data column types, per-file order of
/// `order_col` (table order). Returns the manifest.
#[track_caller]
fn export_and_check(
    db: &Analytics,
    out: &Path,
    table: &str,
    column: &str,
    order_col: Option<&str>,
) -> SplitManifest {
    let manifest = db.export_split_parquet(table, out, column).unwrap();
    assert!(own_writer(db, out), "own writer expected");
    assert_eq!(manifest_file(out), manifest);
    let total = int(db, &format!("SELECT count(*) FROM {}", ident(table)));
    assert_eq!(manifest.total_rows as i64, total);
    assert_eq!(manifest.files.iter().map(|f| f.rows as i64).sum::<i64>(), total);
    db.exec_batch("DROP TABLE IF EXISTS __mf; CREATE TEMP TABLE __mf (path VARCHAR, v VARCHAR, rows BIGINT)")
        .unwrap();
    for f in &manifest.files {
        db.exec(
            "INSERT INTO __mf VALUES (?, ?, ?)",
            &[
                Value::Text(out.join(&f.path).to_str().unwrap().to_string()),
                f.value.clone().map_or(Value::Null, Value::Text),
                Value::Int(f.rows as i64),
            ],
        )
        .unwrap();
    }
    let bad_files = int(
        db,
        &format!(
            "SELECT count(*) FROM __mf m LEFT JOIN (SELECT filename, count(*) c FROM read_parquet({}, filename = true) GROUP BY 1) f
             ON f.filename = m.path WHERE coalesce(f.c, 0) <> m.rows",
            parquet_glob(out)
        ),
    );
    assert_eq!(bad_files, 0, "file row counts differ from the manifest");
    let bad_values = int(
        db,
        &format!(
            "SELECT count(*) FROM __mf m FULL JOIN (SELECT {}::VARCHAR v, count(*) c FROM {} GROUP BY 1) g
             ON g.v IS NOT DISTINCT FROM m.v WHERE coalesce(g.c, 0) <> coalesce(m.rows, 0)",
            ident(column),
            ident(table)
        ),
    );
    assert_eq!(bad_values, 0, "manifest rows differ from the table's per value");
    let cols = describe(db, &ident(table));
    // Types of the data columns, read without Hive columns.
    let file_types: BTreeMap<String, String> = describe(
        db,
        &format!("read_parquet({}, hive_partitioning = false)", parquet_glob(out)),
    )
    .into_iter()
    .collect();
    let data_cols: Vec<&(String, String)> = cols
        .iter()
        .filter(|(c, _)| c != column || file_types.contains_key(c.as_str()))
        .collect();
    for (c, t) in &data_cols {
        assert_eq!(file_types.get(c.as_str()), Some(t), "type of {c:?}");
    }
    // Exact read-back of data columns, plus the value via the manifest-listed files.
    let list: Vec<String> = data_cols.iter().map(|(c, _)| ident(c)).collect();
    let as_text: Vec<String> = data_cols
        .iter()
        .map(|(c, _)| format!("{}::VARCHAR", ident(c)))
        .collect();
    let back = format!(
        "(SELECT __mf.v AS __v, r.* FROM read_parquet({}, filename = true, hive_partitioning = false) r JOIN __mf ON r.filename = __mf.path)",
        parquet_glob(out)
    );
    assert_eq!(
        int(db, &format!("SELECT count(*) FROM {back}")),
        total,
        "every row joins its file"
    );
    for sel in [list.join(", "), as_text.join(", ")] {
        let mine = format!("SELECT {}::VARCHAR, {sel} FROM {}", ident(column), ident(table));
        let theirs = format!("SELECT __v, {sel} FROM {back}");
        let a = int(db, &format!("SELECT count(*) FROM ({mine} EXCEPT ALL {theirs})"));
        let b = int(db, &format!("SELECT count(*) FROM ({theirs} EXCEPT ALL {mine})"));
        assert_eq!((a, b), (0, 0), "read-back differs ({sel})");
    }
    // Hive read as the task asks: row count and data columns.
    let hive = int(
        db,
        &format!(
            "SELECT count(*) FROM read_parquet({}, hive_partitioning = true)",
            parquet_glob(out)
        ),
    );
    assert_eq!(hive, total);
    if let Some(order) = order_col {
        let bad = int(
            db,
            &format!(
                "SELECT count(*) FROM (SELECT {o} AS o, lag({o}) OVER (PARTITION BY filename ORDER BY file_row_number) AS p
                 FROM read_parquet({}, filename = true, file_row_number = true)) WHERE p >= o",
                parquet_glob(out),
                o = ident(order)
            ),
        );
        assert_eq!(bad, 0, "rows out of table order in some file");
    }
    manifest
}

/// Every supported type in a mostly distinct and a low-cardinality form, odd column names.
fn typed_table(db: &Analytics, rows: usize, values: usize) {
    db.exec_batch(&format!(
        r#"CREATE TABLE t AS SELECT
            'v' || (i % {values}) AS k,
            i AS "n",
            (i % 2 = 0) AS "b.ool",
            CASE WHEN i % 5 = 0 THEN NULL ELSE i % 3 = 0 END AS "b ool2",
            (i % 256 - 128)::TINYINT AS "ti.ny",
            (i % 7)::TINYINT AS "l.tiny",
            (i % 60000 - 30000)::SMALLINT AS "d.small",
            (i % 7)::SMALLINT AS "l.small",
            (i * 7 - 1000000)::INTEGER AS "a.b",
            (i % 7)::INTEGER AS "a",
            (i * 1000003 - 4611686018427387904)::BIGINT AS "b",
            (i % 7)::BIGINT AS "l big",
            (i % 256)::UTINYINT AS "m.utiny",
            (i % 7)::UTINYINT AS "l.utiny",
            (i % 65536)::USMALLINT AS "d.usmall",
            (i % 7)::USMALLINT AS "l.usmall",
            ((i * 65537) % 4294967296)::UINTEGER AS "d.uint",
            (i % 7)::UINTEGER AS "l.uint",
            (18446744073709551615::UBIGINT - i::UBIGINT * 7919) AS "d.ubig",
            (i % 7)::UBIGINT AS "l.ubig",
            CASE WHEN i % 97 = 0 THEN 'nan'::FLOAT WHEN i % 89 = 0 THEN '-0.0'::FLOAT
                 WHEN i % 83 = 0 THEN '-inf'::FLOAT ELSE i::FLOAT / 3 END AS "ü.float",
            CASE WHEN i % 7 = 0 THEN 'nan'::FLOAT WHEN i % 7 = 1 THEN '-0.0'::FLOAT ELSE (i % 7)::FLOAT END AS "l.float",
            CASE WHEN i % 97 = 0 THEN 'nan'::DOUBLE WHEN i % 89 = 0 THEN '-0.0'::DOUBLE
                 WHEN i % 83 = 0 THEN 'inf'::DOUBLE ELSE i::DOUBLE / 7 END AS "q""uote",
            CASE WHEN i % 7 = 0 THEN 'nan'::DOUBLE WHEN i % 7 = 1 THEN '-0.0'::DOUBLE ELSE (i % 7)::DOUBLE END AS "l.double",
            CASE WHEN i % 13 = 0 THEN NULL WHEN i % 101 = 0 THEN '' WHEN i % 997 = 0 THEN repeat('ß', 20000)
                 ELSE 'ü' || i || repeat('x', i % 50) END AS "d.varchar",
            CASE WHEN i % 7 = 0 THEN '' WHEN i % 7 = 1 THEN NULL ELSE 'low' || (i % 7) END AS "l.varchar",
            CASE WHEN i % 11 = 0 THEN ''::BLOB ELSE ('\xFF\xFE\x00'::BLOB || i::VARCHAR::BLOB) END AS "d.blob",
            CASE WHEN i % 7 = 0 THEN '\xC3'::BLOB ELSE ('\x80'::BLOB || (i % 7)::VARCHAR::BLOB) END AS "l.blob",
            CASE WHEN i % 1000 = 1 THEN DATE '0001-01-01' WHEN i % 1000 = 2 THEN DATE '9999-12-31'
                 ELSE DATE '1970-01-01' + (i::INTEGER - 100000) END AS "d.date",
            DATE '2020-01-01' + (i % 7)::INTEGER AS "l.date",
            TIMESTAMP '2000-01-01' + INTERVAL (i) SECOND + INTERVAL (i % 1000) MICROSECOND AS "d.ts",
            TIMESTAMP '2000-01-01' + INTERVAL (i % 7) DAY AS "l.ts",
            (TIMESTAMP '2000-01-01' + INTERVAL (i) MINUTE)::TIMESTAMPTZ AS "d.tstz",
            (TIMESTAMP '2000-01-01' + INTERVAL (i % 7) HOUR)::TIMESTAMPTZ AS "l.tstz",
            TIME '00:00:00' + INTERVAL (i % 86400) SECOND + INTERVAL (i % 999) MICROSECOND AS "d.time",
            TIME '12:00:00' + INTERVAL (i % 7) MINUTE AS "l.time",
            (((i % 19999) - 9999) / 10)::DECIMAL(4,1) AS "d.dec4",
            ((i % 7) / 10)::DECIMAL(4,1) AS "l.dec4",
            ('-' || i::VARCHAR || '123.456')::DECIMAL(18,3) AS "d.dec18",
            ((i % 7) + 0.5)::DECIMAL(18,3) AS "l.dec18",
            (i::VARCHAR || '123456789012.0123456789')::DECIMAL(38,10) AS "d.dec38",
            ((i % 7) - 0.25)::DECIMAL(38,10) AS "l.dec38",
            NULL::INTEGER AS "all null",
            CASE WHEN i < 3000 THEN NULL ELSE i END AS "null then distinct",
            CASE WHEN i < 3000 THEN 'same' ELSE 'x' || i END AS "same then distinct"
         FROM range({rows}) r(i)"#
    ))
    .unwrap();
}

#[test]
fn every_type_reads_back_exactly_and_only_low_cardinality_columns_keep_a_dictionary() {
    let tmp = tempfile::tempdir().unwrap();
    let db = db();
    typed_table(&db, 20_000, 1_000);
    export_and_check(&db, tmp.path(), "t", "k", Some("n"));
    // Dictionary: distinct columns none, low-cardinality ones all.
    let use_ = dictionary_use(&db, tmp.path());
    let cols: BTreeSet<String> = describe(&db, "t").into_iter().map(|(c, _)| c).collect();
    let distinct_extra = ["n", "a.b", "b", "ü.float", "q\"uote"];
    let low_extra = [
        "a",
        "ti.ny",
        "m.utiny",
        "null then distinct",
        "same then distinct",
    ];
    for c in cols.iter().filter(|c| *c != "k") {
        let (with, all) = use_
            .get(c)
            .copied()
            .unwrap_or_else(|| panic!("no metadata for {c:?}: {use_:?}"));
        if c.starts_with("d.") || distinct_extra.contains(&c.as_str()) {
            assert_eq!(with, 0, "{c:?} mostly distinct: no dictionary ({with}/{all})");
        } else if c.starts_with("l.") || c.starts_with("l ") || low_extra.contains(&c.as_str()) {
            assert_eq!(with, all, "{c:?} low cardinality keeps a dictionary");
        }
    }
}

#[test]
fn uneven_runs_are_joined_or_written_as_they_come() {
    let tmp = tempfile::tempdir().unwrap();
    let db = db();
    // A value with 1,100 rows per chunk on average but uneven runs: 2,000 rows in chunk 1 and
    // 200 in chunk 2 (avg 1,100 >= 1,024: written as runs), another with 1,000 + 1,000 (joined).
    db.exec_batch(
        "CREATE TABLE t AS SELECT
            CASE WHEN i < 2000 THEN 'uneven'
                 WHEN i >= 262144 AND i < 262344 THEN 'uneven'
                 WHEN i < 3000 OR (i >= 262344 AND i < 263344) THEN 'even'
                 ELSE 'v' || (i % 2000) END AS k,
            i AS n, CASE WHEN i % 3 = 0 THEN NULL ELSE 'x' || i END AS s
         FROM range(400000) r(i)",
    )
    .unwrap();
    let m = export_and_check(&db, tmp.path(), "t", "k", Some("n"));
    let uneven = m
        .files
        .iter()
        .find(|f| f.value.as_deref() == Some("uneven"))
        .unwrap();
    assert_eq!(uneven.rows, 2200);
}

#[test]
fn a_column_name_needing_escaping_reads_back_exactly_through_the_own_writer() {
    let tmp = tempfile::tempdir().unwrap();
    let db = db();
    db.exec_batch(
        r#"CREATE TABLE t AS SELECT
            'v' || (i % 1500) AS "my col/..", i AS "my col", 'x' || i AS "My.Col", (i % 3)::BIGINT AS "__store_split_key"
         FROM range(300000) r(i)"#,
    )
    .unwrap();
    export_and_check(&db, tmp.path(), "t", "my col/..", Some("my col"));
}

#[test]
fn long_values_retry_with_the_column_kept_and_read_back() {
    let tmp = tempfile::tempdir().unwrap();
    let db = db();
    db.exec_batch(
        "CREATE TABLE t AS SELECT
            CASE WHEN i % 1000 = 999 THEN repeat('L', 300) || (i % 3000) ELSE 'v' || (i % 1000) END AS k,
            i AS n, 'x' || i AS s, (i % 4)::SMALLINT AS low
         FROM range(300000) r(i)",
    )
    .unwrap();
    let m = export_and_check(&db, tmp.path(), "t", "k", Some("n"));
    // The files keep the split column after the retry.
    let file = tmp.path().join(&m.files[1].path);
    let names: Vec<String> = describe(&db, &format!("read_parquet({})", lit(&file)))
        .into_iter()
        .map(|(c, _)| c)
        .collect();
    assert!(names.contains(&"k".to_string()), "{names:?}");
    let k_exact = int(
        &db,
        &format!(
            "SELECT count(*) FROM (SELECT k, n FROM t EXCEPT ALL SELECT k, n FROM read_parquet({}, hive_partitioning = false))",
            parquet_glob(tmp.path())
        ),
    );
    assert_eq!(k_exact, 0);
}

#[test]
fn a_view_starting_with_a_one_row_union_reads_back_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let db = db();
    db.exec_batch(
        "CREATE TABLE big AS SELECT 'v' || (i % 1000) AS k, i + 10 AS n, 'x' || i AS s, (i % 3)::INTEGER AS low
         FROM range(50000) r(i);
         CREATE VIEW t AS SELECT * FROM (VALUES ('first', 1, 'only', 7)) v(k, n, s, low) UNION ALL SELECT * FROM big",
    )
    .unwrap();
    export_and_check(&db, tmp.path(), "t", "k", None);
}

#[test]
fn first_rows_of_nan_or_null_only_then_distinct_read_back_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let db = db();
    db.exec_batch(
        "CREATE TABLE t AS SELECT 'v' || (i % 1000) AS k, i AS n,
            CASE WHEN i < 2048 THEN 'nan'::DOUBLE ELSE i::DOUBLE END AS d,
            CASE WHEN i < 2048 THEN NULL ELSE repeat('z', 3) || i END AS s
         FROM range(10000) r(i)",
    )
    .unwrap();
    export_and_check(&db, tmp.path(), "t", "k", Some("n"));
}

#[test]
fn an_integer_split_column_of_a_one_column_table_reads_back() {
    let tmp = tempfile::tempdir().unwrap();
    let db = db();
    db.exec_batch("CREATE TABLE t AS SELECT (i % 2000)::BIGINT AS k FROM range(600000) r(i)")
        .unwrap();
    let m = export_and_check(&db, tmp.path(), "t", "k", None);
    assert_eq!(m.files.len(), 2000);
}

#[test]
fn long_values_in_the_keyed_layout_read_back_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let db = db();
    db.exec_batch(
        r#"CREATE TABLE t AS SELECT
            CASE WHEN i % 700 = 5 THEN repeat('é', 150) || (i % 2100) ELSE 'v' || (i % 1500) END AS "my col/..",
            i AS n, 'x' || i AS s
         FROM range(300000) r(i)"#,
    )
    .unwrap();
    export_and_check(&db, tmp.path(), "t", "my col/..", Some("n"));
}
