//! Split export of columns with hundreds or thousands of distinct values, which takes the store's own
//! partitioned writer (arrow-rs Parquet) instead of DuckDB's `PARTITION_BY`, whose drain grows
//! with the square of the number of values. The layout, the manifest and what DuckDB reads back
//! must be exactly what the DuckDB path gives; the files' `created_by` tells the writers apart.

use std::collections::BTreeSet;
use std::path::Path;

use store::analytics::{Analytics, Value};

use crate::split::{assert_all_inside, db, manifest_file, parquet_glob, read_back};
use crate::support::{count, files_under, lit, multiset, project, scalar, text, texts};

/// Distinct filler values: comfortably above the threshold at which the own writer is used.
const FILLER: usize = 2_500;

/// The spec's hostile values, all of which must survive the own writer too.
const HOSTILE: [&str; 11] = [
    "a/b",
    "../x",
    "..",
    ".",
    "",
    "A",
    "a",
    "x=y",
    "%41",
    "über",
    "__HIVE_DEFAULT_PARTITION__",
];

/// `t(k VARCHAR, n BIGINT)`: `FILLER` filler values with 1–3 rows each, the hostile values,
/// and NULLs, interleaved so every value shows up in the first rows.
fn many_valued_table(db: &Analytics, extra: &[&str]) {
    db.exec_batch(&format!(
        "CREATE TABLE t AS SELECT 'v' || (i % {FILLER}) AS k, i AS n FROM range({}) r(i)",
        FILLER * 2
    ))
    .unwrap();
    for (i, value) in HOSTILE.iter().chain(extra).enumerate() {
        db.exec(
            "INSERT INTO t VALUES (?, ?)",
            &[Value::Text(value.to_string()), Value::Int(100_000 + i as i64)],
        )
        .unwrap();
    }
    db.exec_batch("INSERT INTO t VALUES (NULL, -1), (NULL, -2)")
        .unwrap();
}

/// The distinct texts `select` (a `SELECT … FROM {files}` with `{files}` for the glob of every
/// Parquet file under `dir`) returns, NULLs left out.
fn over_files(db: &Analytics, dir: &Path, select: &str) -> BTreeSet<String> {
    texts(db, &select.replace("{files}", &parquet_glob(dir)))
        .into_iter()
        .flatten()
        .collect()
}

/// The writers that produced the files under `dir` (Parquet footers' `created_by`).
fn writers(db: &Analytics, dir: &Path) -> BTreeSet<String> {
    over_files(
        db,
        dir,
        "SELECT DISTINCT split_part(created_by, ' ', 1) FROM parquet_file_metadata({files})",
    )
}

pub(crate) fn own_writer(db: &Analytics, dir: &Path) -> bool {
    let names = writers(db, dir);
    assert_eq!(names.len(), 1, "one writer wrote every file: {names:?}");
    names.iter().all(|n| n.starts_with("parquet-rs"))
}

#[test]
fn thousands_of_values_take_the_own_writer_and_read_back_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("split");
    let db = db();
    many_valued_table(&db, &[]);
    let manifest = db.export_split_parquet("t", &out, "k").unwrap();

    assert!(own_writer(&db, &out));
    let total = FILLER + HOSTILE.len() + 1;
    assert_eq!(manifest.files.len(), total);
    assert_eq!(manifest.total_rows as i64, count(&db, "t"));
    assert_eq!(manifest_file(&out), manifest);
    // Exactly one data.parquet per value, every path inside out_dir.
    assert_eq!(files_under(&out).len(), total + 1, "files plus the manifest");
    assert_all_inside(&out);
    assert_eq!(
        tmp.path().read_dir().unwrap().count(),
        1,
        "nothing written beside out_dir"
    );
    for (value, dir) in [
        ("a/b", "k=a%2Fb"),
        ("../x", "k=..%2Fx"),
        ("..", "k=%2E%2E"),
        ("", "k="),
        ("über", "k=%C3%BCber"),
    ] {
        let entry = manifest
            .files
            .iter()
            .find(|f| f.value.as_deref() == Some(value))
            .unwrap();
        assert_eq!(entry.path, format!("{dir}/data.parquet"));
        assert!(out.join(&entry.path).is_file());
    }
    assert_eq!(manifest.files[0].value, None, "NULL first");
    assert_eq!(
        manifest.files[0].path,
        "k=__HIVE_DEFAULT_PARTITION__/data.parquet"
    );
    assert_eq!(manifest.files[0].rows, 2);

    // The files hold the other columns; a Hive read restores the value from the directory.
    assert_eq!(read_back(&db, &out, false).columns, ["n"]);
    let hive = read_back(&db, &out, true);
    assert_eq!(
        multiset(&project(&hive, &["k", "n"])),
        multiset(&db.query("SELECT k, n FROM t", &[]).unwrap().rows)
    );
}

#[test]
fn a_thousand_values_take_the_own_writer_and_fifty_do_not() {
    for (values, own) in [(1_000, true), (50, false)] {
        let tmp = tempfile::tempdir().unwrap();
        let db = db();
        db.exec_batch(&format!(
            "CREATE TABLE t AS SELECT 'v' || (i % {values}) AS k, i AS n FROM range(20000) r(i)"
        ))
        .unwrap();
        let manifest = db.export_split_parquet("t", tmp.path(), "k").unwrap();
        assert_eq!(manifest.files.len(), values);
        assert_eq!(own_writer(&db, tmp.path()), own, "{values} values");
    }
}

/// Which columns of the files under `dir` have a dictionary page in any file.
fn dictionary_columns(db: &Analytics, dir: &Path) -> BTreeSet<String> {
    over_files(
        db,
        dir,
        "SELECT DISTINCT path_in_schema FROM parquet_metadata({files}) WHERE dictionary_page_offset IS NOT NULL",
    )
}

#[test]
fn columns_of_mostly_distinct_values_are_written_without_a_dictionary() {
    let tmp = tempfile::tempdir().unwrap();
    let db = db();
    // Per partition: `id` and `payload` unique, `score` unique doubles, `kind` three values.
    db.exec_batch(
        "CREATE TABLE t AS SELECT 'v' || (i % 1000) AS k, i AS id, 'payload ' || i AS payload,
         i / 7.0 AS score, 'kind-' || (i % 3) AS kind FROM range(30000) r(i)",
    )
    .unwrap();
    let manifest = db.export_split_parquet("t", tmp.path(), "k").unwrap();
    assert!(own_writer(&db, tmp.path()));
    assert_eq!(manifest.files.len(), 1_000);
    assert_eq!(
        dictionary_columns(&db, tmp.path()),
        BTreeSet::from(["kind".to_string()]),
        "only the low-cardinality column keeps a dictionary"
    );
    let hive = read_back(&db, tmp.path(), true);
    assert_eq!(
        multiset(&project(&hive, &["k", "id", "payload", "score", "kind"])),
        multiset(
            &db.query("SELECT k, id, payload, score, kind FROM t", &[])
                .unwrap()
                .rows
        )
    );
}

#[test]
fn a_column_distinct_only_after_the_first_rows_keeps_its_dictionary_and_reads_back() {
    let tmp = tempfile::tempdir().unwrap();
    let db = db();
    // `late` repeats one value through the sampled first rows, then turns unique.
    db.exec_batch(
        "CREATE TABLE t AS SELECT 'v' || (i % 1000) AS k,
         CASE WHEN i < 5000 THEN 'same' ELSE 'late ' || i END AS late FROM range(30000) r(i)",
    )
    .unwrap();
    db.export_split_parquet("t", tmp.path(), "k").unwrap();
    assert!(own_writer(&db, tmp.path()));
    assert_eq!(
        dictionary_columns(&db, tmp.path()),
        BTreeSet::from(["late".to_string()])
    );
    let hive = read_back(&db, tmp.path(), true);
    assert_eq!(
        multiset(&project(&hive, &["k", "late"])),
        multiset(&db.query("SELECT k, late FROM t", &[]).unwrap().rows)
    );
}

#[test]
fn partitions_spanning_several_scan_chunks_read_back_whole_and_in_table_order() {
    let tmp = tempfile::tempdir().unwrap();
    let db = db();
    // 700,000 rows, read in chunks of 2^18: half of them in one value (runs of ~130,000 rows per
    // chunk, written as they come), the other half over 1,000 values (runs of ~130 rows per
    // chunk, joined before they are written).
    db.exec_batch(
        "CREATE TABLE t AS SELECT CASE WHEN i % 2 = 0 THEN 'big' ELSE 'v' || (i % 2000) END AS k,
         i AS n, 'payload ' || i AS p FROM range(700000) r(i)",
    )
    .unwrap();
    let manifest = db.export_split_parquet("t", tmp.path(), "k").unwrap();
    assert!(own_writer(&db, tmp.path()));
    assert_eq!(manifest.files.len(), 1_001);
    assert_eq!(manifest.total_rows, 700_000);
    let glob = parquet_glob(tmp.path());
    let differences = scalar(
        &db,
        &format!(
            "SELECT count(*) FROM (
                (SELECT n, p, k FROM t EXCEPT ALL SELECT n, p, k FROM read_parquet({glob}, hive_partitioning = true))
                UNION ALL
                (SELECT n, p, k FROM read_parquet({glob}, hive_partitioning = true) EXCEPT ALL SELECT n, p, k FROM t))"
        ),
    );
    assert_eq!(differences.as_i64(), Some(0));
    for value in ["big", "v1", "v1999"] {
        let entry = manifest
            .files
            .iter()
            .find(|f| f.value.as_deref() == Some(value))
            .unwrap();
        let file = lit(&tmp.path().join(&entry.path));
        let out_of_order = scalar(
            &db,
            &format!(
                "SELECT count(*) FROM (SELECT file_row_number, row_number() OVER (ORDER BY n) - 1 AS rank
                 FROM read_parquet({file}, file_row_number = true)) WHERE rank <> file_row_number"
            ),
        );
        assert_eq!(out_of_order.as_i64(), Some(0), "{value}: rows in table order");
        assert_eq!(entry.rows, if value == "big" { 350_000 } else { 350 });
    }
}

#[test]
fn few_values_keep_duckdbs_own_partitioned_writer() {
    let tmp = tempfile::tempdir().unwrap();
    let db = db();
    db.exec_batch("CREATE TABLE t AS SELECT 'v' || (i % 50) AS k, i AS n FROM range(10000) r(i)")
        .unwrap();
    db.export_split_parquet("t", tmp.path(), "k").unwrap();
    assert!(!own_writer(&db, tmp.path()));
}

#[test]
fn every_supported_column_type_reads_back_with_its_type_and_values() {
    let tmp = tempfile::tempdir().unwrap();
    let db = db();
    db.exec_batch(&format!(
        "CREATE TABLE t AS SELECT
            i % {FILLER} AS k,
            (i % 3 = 0) AS b, (i % 100)::TINYINT AS i8, (i % 30000)::SMALLINT AS i16,
            i::INTEGER AS i32, (i * 1000003)::BIGINT AS i64,
            (i % 200)::UTINYINT AS u8, (i % 60000)::USMALLINT AS u16, i::UINTEGER AS u32,
            (i * 7919)::UBIGINT AS u64, (i / 7)::FLOAT AS f32, (i / 3)::DOUBLE AS f64,
            'text ' || i AS s, ('blob' || i)::BLOB AS bl, DATE '2024-02-29' + (i % 400)::INTEGER AS d,
            TIMESTAMP '2024-01-01 00:00:00.123456' + to_microseconds(i * 1234567) AS ts,
            (TIMESTAMP '2024-01-01 12:00:00' + to_seconds(i))::TIMESTAMPTZ AS tz,
            TIME '01:02:03.456789' + to_seconds(i % 3600) AS tm,
            (i / 1000)::DECIMAL(4, 1) AS d4, (i * 1.001)::DECIMAL(18, 3) AS d18,
            (i * 12345678901.123)::DECIMAL(38, 10) AS d38,
            CASE WHEN i % 11 = 0 THEN NULL ELSE 'maybe' END AS nullable
         FROM range({}) r(i)",
        FILLER * 3
    ))
    .unwrap();
    db.export_split_parquet("t", tmp.path(), "k").unwrap();
    assert!(own_writer(&db, tmp.path()));

    let glob = lit(&tmp.path().join("**").join("*.parquet"));
    let types = |sql: &str| -> Vec<Vec<Value>> { db.query(sql, &[]).unwrap().rows };
    assert_eq!(
        types(&format!(
            "SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM read_parquet({glob}, hive_partitioning = false))"
        )),
        types("SELECT column_name, column_type FROM (DESCRIBE SELECT * EXCLUDE (k) FROM t)")
    );
    let differences = scalar(
        &db,
        &format!(
            "SELECT count(*) FROM (
                (SELECT * EXCLUDE (k), k FROM t
                 EXCEPT ALL SELECT * FROM read_parquet({glob}, hive_partitioning = true))
                UNION ALL
                (SELECT * FROM read_parquet({glob}, hive_partitioning = true)
                 EXCEPT ALL SELECT * EXCLUDE (k), k FROM t))"
        ),
    )
    .as_i64()
    .unwrap();
    assert_eq!(differences, 0);
}

#[test]
fn a_value_too_long_for_a_directory_keeps_the_column_in_every_file() {
    let tmp = tempfile::tempdir().unwrap();
    let db = db();
    let long = "é".repeat(3000);
    many_valued_table(&db, &[&long]);
    let manifest = db.export_split_parquet("t", tmp.path(), "k").unwrap();
    assert!(own_writer(&db, tmp.path()));

    let entry = manifest
        .files
        .iter()
        .find(|f| f.value.as_deref() == Some(long.as_str()))
        .unwrap();
    assert!(entry.path.starts_with("k=__long__"), "{}", entry.path);
    // The files keep the column, so the long value survives in the data.
    let plain = read_back(&db, tmp.path(), false);
    assert_eq!(
        multiset(&project(&plain, &["k", "n"])),
        multiset(&db.query("SELECT k, n FROM t", &[]).unwrap().rows)
    );
}

#[test]
fn a_column_name_that_needs_escaping_is_encoded_and_kept_in_the_files() {
    let tmp = tempfile::tempdir().unwrap();
    let db = db();
    db.exec_batch(&format!(
        r#"CREATE TABLE t AS SELECT 'v' || (i % {FILLER}) AS "my col/..", i AS n FROM range({}) r(i)"#,
        FILLER * 2
    ))
    .unwrap();
    let manifest = db.export_split_parquet("t", tmp.path(), "my col/..").unwrap();
    assert!(own_writer(&db, tmp.path()));
    assert_eq!(manifest.files.len(), FILLER);
    assert!(
        manifest
            .files
            .iter()
            .all(|f| f.path.starts_with("my%20col%2F..=")),
        "{:?}",
        manifest.files[0]
    );
    let plain = read_back(&db, tmp.path(), false);
    assert_eq!(
        multiset(&project(&plain, &["my col/..", "n"])),
        multiset(&db.query(r#"SELECT "my col/..", n FROM t"#, &[]).unwrap().rows)
    );
    // Distinct in the table, one value per file: the kept column keeps its dictionary; `n`,
    // distinct everywhere, is written plain.
    assert_eq!(
        dictionary_columns(&db, tmp.path()),
        BTreeSet::from(["my col/..".to_string()])
    );
}

#[test]
fn a_single_column_table_with_many_values_keeps_its_column() {
    let tmp = tempfile::tempdir().unwrap();
    let db = db();
    db.exec_batch(&format!(
        "CREATE TABLE t AS SELECT i % {FILLER} AS k FROM range({}) r(i)",
        FILLER * 2
    ))
    .unwrap();
    let manifest = db.export_split_parquet("t", tmp.path(), "k").unwrap();
    assert!(own_writer(&db, tmp.path()));
    // Integer values are listed in numeric order.
    let values: Vec<i64> = manifest
        .files
        .iter()
        .map(|f| f.value.as_deref().unwrap().parse().unwrap())
        .collect();
    assert_eq!(values, (0..FILLER as i64).collect::<Vec<_>>());
    assert!(manifest.files.iter().all(|f| f.rows == 2));
    let plain = read_back(&db, tmp.path(), false);
    assert_eq!(
        multiset(&plain.rows),
        multiset(&db.query("SELECT k FROM t", &[]).unwrap().rows)
    );
}

#[test]
fn a_column_of_an_unsupported_type_falls_back_to_duckdbs_writer() {
    let tmp = tempfile::tempdir().unwrap();
    let db = db();
    db.exec_batch(&format!(
        "CREATE TABLE t AS SELECT 'v' || (i % {FILLER}) AS k,
            ('00000000-0000-0000-0000-' || lpad(i::VARCHAR, 12, '0'))::UUID AS u, INTERVAL (i) SECOND AS iv
         FROM range({}) r(i)",
        FILLER * 2
    ))
    .unwrap();
    let manifest = db.export_split_parquet("t", tmp.path(), "k").unwrap();
    assert!(!own_writer(&db, tmp.path()));
    assert_eq!(manifest.files.len(), FILLER);
    let glob = lit(&tmp.path().join("**").join("*.parquet"));
    assert_eq!(
        db.query(&format!("DESCRIBE SELECT u, iv FROM read_parquet({glob})"), &[])
            .unwrap()
            .rows
            .iter()
            .map(|r| text(&r[1]))
            .collect::<Vec<_>>(),
        ["UUID", "INTERVAL"]
    );
}

#[test]
fn re_exporting_many_values_replaces_the_previous_export() {
    let tmp = tempfile::tempdir().unwrap();
    let db = db();
    many_valued_table(&db, &["only-first-time"]);
    db.export_split_parquet("t", tmp.path(), "k").unwrap();
    assert!(tmp.path().join("k=only-first-time").is_dir());
    db.exec_batch("DELETE FROM t WHERE k = 'only-first-time'")
        .unwrap();
    let manifest = db.export_split_parquet("t", tmp.path(), "k").unwrap();
    assert!(!tmp.path().join("k=only-first-time").exists());
    assert_eq!(manifest.files.len(), FILLER + HOSTILE.len() + 1);
    let hive = read_back(&db, tmp.path(), true);
    assert_eq!(hive.len() as i64, count(&db, "t"));
}

#[test]
fn a_float_column_keeps_duckdbs_writer_and_splits_minus_zero_from_zero() {
    let tmp = tempfile::tempdir().unwrap();
    let db = db();
    db.exec_batch(&format!(
        "CREATE TABLE t AS SELECT CASE WHEN i = 0 THEN '-0.0'::DOUBLE ELSE i::DOUBLE END AS k, i AS n
         FROM range({FILLER}) r(i);
         INSERT INTO t VALUES (0.0, -1)"
    ))
    .unwrap();
    let manifest = db.export_split_parquet("t", tmp.path(), "k").unwrap();
    assert!(!own_writer(&db, tmp.path()));
    // By text: DuckDB compares -0.0 equal to 0.0, but they are two values.
    assert_eq!(
        manifest.files.len() as i64,
        scalar(&db, "SELECT count(DISTINCT k::VARCHAR) FROM t")
            .as_i64()
            .unwrap()
    );
    assert_eq!(
        manifest.files.len() as i64,
        scalar(&db, "SELECT count(DISTINCT k) FROM t").as_i64().unwrap() + 1
    );
}

#[test]
fn a_temporary_table_shadowing_a_persistent_one_is_the_one_exported() {
    let tmp = tempfile::tempdir().unwrap();
    let db = db();
    db.exec_batch(&format!(
        "CREATE TABLE t (k BIGINT, n BIGINT);
         CREATE TEMP TABLE t AS SELECT i AS k FROM range({FILLER}) r(i)"
    ))
    .unwrap();
    let manifest = db.export_split_parquet("t", tmp.path(), "k").unwrap();
    assert!(own_writer(&db, tmp.path()));
    assert_eq!(manifest.files.len(), FILLER);
    assert_eq!(manifest.total_rows, FILLER as u64);
    // The temporary table has one column, so the files keep it.
    assert_eq!(read_back(&db, tmp.path(), false).columns, ["k"]);
}

#[test]
fn lossless_arrow_export_settings_keep_duckdbs_writer_and_the_types() {
    let tmp = tempfile::tempdir().unwrap();
    let db = db();
    db.exec_batch(&format!(
        "SET arrow_lossless_conversion = true;
         CREATE TABLE t AS SELECT i % {FILLER} AS k, i % 2 = 0 AS b FROM range({}) r(i)",
        FILLER * 2
    ))
    .unwrap();
    db.export_split_parquet("t", tmp.path(), "k").unwrap();
    assert!(!own_writer(&db, tmp.path()));
    let glob = lit(&tmp.path().join("**").join("*.parquet"));
    assert_eq!(
        text(&scalar(
            &db,
            &format!("SELECT column_type FROM (DESCRIBE SELECT b FROM read_parquet({glob}))")
        )),
        "BOOLEAN"
    );
}
