//! Split-export directory names stay within a file system's 255-byte name limit whatever the
//! column name, and no two values share a directory, not even a value spelled like another
//! value's `__long__<hash>` name: with DuckDB's partitioned COPY (few values) and with the
//! store's own writer (many values).

use std::collections::BTreeSet;
use std::path::Path;

use store::ErrorKind;
use store::analytics::{Analytics, MAX_ESCAPED_VALUE_BYTES, SplitManifest, Value};

use crate::split::{assert_all_inside, db, manifest_file, read_back};
use crate::support::{expect_kind, ident, multiset, project};

/// Distinct filler values that send a split to the store's own writer.
const MANY: usize = 600;

/// `t(<column> VARCHAR, n BIGINT)` holding `values` (and, with `many`, filler values first).
fn table(db: &Analytics, column: &str, values: &[Option<&str>], many: bool) {
    let column = ident(column);
    db.exec_batch(&format!("CREATE TABLE t ({column} VARCHAR, n BIGINT)"))
        .unwrap();
    if many {
        db.exec_batch(&format!(
            "INSERT INTO t SELECT 'f' || i, i FROM range({MANY}) r(i)"
        ))
        .unwrap();
    }
    for (i, value) in values.iter().enumerate() {
        let value = value.map_or(Value::Null, |v| Value::Text(v.to_string()));
        db.exec("INSERT INTO t VALUES (?, ?)", &[value, Value::Int(-1 - i as i64)])
            .unwrap();
    }
}

/// Every directory and file name under `dir` is at most 255 bytes.
#[track_caller]
fn assert_names_fit(dir: &Path) {
    for entry in walk(dir) {
        let name = entry.file_name().unwrap().len();
        assert!(name <= 255, "{} is {name} bytes", entry.display());
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        }
        out.push(path);
    }
    out
}

/// The export read back holds exactly the table's rows: without Hive decoding when the files
/// keep the column (they do whenever a directory name cannot carry its value), else with it.
#[track_caller]
fn assert_rows_survive(db: &Analytics, dir: &Path, column: &str) {
    let mut plain = read_back(db, dir, false);
    if !plain.columns.iter().any(|c| c == column) {
        plain = read_back(db, dir, true);
    }
    let original = db
        .query(&format!("SELECT {}, n FROM t", ident(column)), &[])
        .unwrap();
    assert_eq!(
        multiset(&project(&plain, &[column, "n"])),
        multiset(&original.rows)
    );
}

fn paths(manifest: &SplitManifest) -> BTreeSet<String> {
    manifest.files.iter().map(|f| f.path.clone()).collect()
}

#[test]
fn a_long_column_name_shortens_the_longest_value_kept_in_a_directory_name() {
    for many in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let db = db();
        let column = "c".repeat(100);
        // `<100 bytes>=` leaves 154 bytes for a value.
        let fits = "v".repeat(154);
        let over = "w".repeat(155);
        let far_over = "x".repeat(MAX_ESCAPED_VALUE_BYTES);
        table(
            &db,
            &column,
            &[Some(&fits), Some(&over), Some(&far_over), None],
            many,
        );
        let manifest = db.export_split_parquet("t", tmp.path(), &column).unwrap();
        assert_names_fit(tmp.path());
        assert_all_inside(tmp.path());
        assert_eq!(manifest_file(tmp.path()), manifest);
        let path_of = |value: &str| {
            let file = manifest.files.iter().find(|f| f.value.as_deref() == Some(value));
            file.unwrap_or_else(|| panic!("{value} not in the manifest"))
                .path
                .clone()
        };
        assert_eq!(
            path_of(&fits),
            format!("{column}={fits}/data.parquet"),
            "many: {many}"
        );
        for value in [&over, &far_over] {
            let path = path_of(value);
            assert!(
                path.starts_with(&format!("{column}=__long__")),
                "{path}, many: {many}"
            );
        }
        assert_rows_survive(&db, tmp.path(), &column);
    }
}

#[test]
fn a_column_name_too_long_for_any_directory_name_is_invalid_input_and_writes_nothing() {
    for (column, fits) in [
        ("d".repeat(226), true),
        ("d".repeat(227), false),
        ("d".repeat(255), false),
        // 'é' escapes to six bytes: 38 of them are 228.
        ("é".repeat(37), true),
        ("é".repeat(38), false),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        let db = db();
        table(&db, &column, &[Some("a"), None], false);
        let result = db.export_split_parquet("t", &out, &column);
        if fits {
            let manifest = result.unwrap();
            assert_eq!(manifest.files.len(), 2);
            assert_names_fit(&out);
            assert_rows_survive(&db, &out, &column);
        } else {
            let err = expect_kind(result, ErrorKind::InvalidInput);
            assert!(err.to_string().contains("255"), "{err}");
            assert!(!out.exists(), "{} bytes", column.len());
        }
    }
}

#[test]
fn a_value_spelled_like_a_long_values_directory_gets_its_own_directory() {
    for many in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let db = db();
        let long = "x".repeat(5000);
        // The name the long value's directory gets, from a first export.
        table(&db, "k", &[Some(&long)], false);
        let first = db
            .export_split_parquet("t", tmp.path().join("first"), "k")
            .unwrap();
        let marker = first.files[0]
            .path
            .strip_prefix("k=")
            .unwrap()
            .strip_suffix("/data.parquet")
            .unwrap()
            .to_string();
        assert!(marker.starts_with("__long__"), "{marker}");

        db.exec_batch("DROP TABLE t").unwrap();
        table(
            &db,
            "k",
            &[Some(&long), Some(&marker), Some("__long__"), None],
            many,
        );
        let out = tmp.path().join("second");
        let manifest = db.export_split_parquet("t", &out, "k").unwrap();
        let expected = if many { MANY + 4 } else { 4 };
        assert_eq!(manifest.files.len(), expected, "many: {many}");
        assert_eq!(paths(&manifest).len(), expected, "two values share a directory");
        let path_of = |value: &str| {
            manifest
                .files
                .iter()
                .find(|f| f.value.as_deref() == Some(value))
                .unwrap()
                .path
                .clone()
        };
        assert_eq!(path_of(&long), format!("k={marker}/data.parquet"));
        assert_eq!(path_of(&marker), format!("k=%5F{}/data.parquet", &marker[1..]));
        assert_eq!(path_of("__long__"), "k=%5F_long__/data.parquet");
        assert_rows_survive(&db, &out, "k");
        // DuckDB decodes the escaped spelling back to the value.
        let hive = read_back(&db, &out, true);
        let values: BTreeSet<String> = project(&hive, &["k"]).iter().map(|r| r[0].to_string()).collect();
        assert!(
            values.contains(&marker) && values.contains("__long__"),
            "many: {many}"
        );
    }
}

/// Two long values whose 64-bit FNV-1a hashes collide (found by a search; anyone can make
/// more) would want the same `__long__<hash>` directory: the later one gets `-2`, and each
/// value still has its own file.
#[test]
fn long_values_whose_hashes_collide_still_get_a_directory_each() {
    let (a, b) = (
        "L".repeat(200) + "eedheajlijofjldf",
        "L".repeat(200) + "dkmbpclbnicpbgff",
    );
    for many in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let db = db();
        table(&db, "k", &[Some(&a), Some(&b), Some(&a)], many);
        let manifest = db.export_split_parquet("t", tmp.path(), "k").unwrap();
        let path_of = |value: &str| {
            let file = manifest
                .files
                .iter()
                .find(|f| f.value.as_deref() == Some(value))
                .unwrap();
            (file.path.clone(), file.rows)
        };
        let (path_a, rows_a) = path_of(&a);
        let (path_b, rows_b) = path_of(&b);
        // `b` sorts first, so it keeps the plain name.
        let name_b = path_b.strip_suffix("/data.parquet").unwrap();
        assert!(name_b.starts_with("k=__long__"), "{path_b}");
        assert_eq!(
            path_a,
            format!("{name_b}-2/data.parquet"),
            "the hashes collide, so the later value is numbered (many: {many})"
        );
        assert_eq!((rows_a, rows_b), (2, 1));
        assert_eq!(manifest_file(tmp.path()), manifest);
        assert_rows_survive(&db, tmp.path(), "k");
    }
}

/// DuckDB's 64-bit `hash()` is easier still to collide (each 8-byte block is xor-multiply):
/// two long values with one DuckDB hash still get a file each, with DuckDB's writer staging
/// them by value (many: false) and with the store's own writer (many: true).
#[test]
fn long_values_with_one_duckdb_hash_still_get_a_directory_each() {
    let (a, b) = (
        "L".repeat(200) + "aaaaaaaabbbbbbbb",
        "L".repeat(200) + "FoWiZUXA;nBNbp0e",
    );
    for many in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let db = db();
        let same = db
            .query_row(
                "SELECT hash(?) = hash(?)",
                &[Value::Text(a.clone()), Value::Text(b.clone())],
            )
            .unwrap()
            .unwrap();
        assert_eq!(
            same.get(0),
            Some(&Value::Bool(true)),
            "the pair collides in DuckDB"
        );
        table(&db, "k", &[Some(&a), Some(&b), Some(&b)], many);
        let manifest = db.export_split_parquet("t", tmp.path(), "k").unwrap();
        let rows = |value: &str| {
            manifest
                .files
                .iter()
                .find(|f| f.value.as_deref() == Some(value))
                .unwrap()
                .rows
        };
        assert_eq!((rows(&a), rows(&b)), (1, 2), "many: {many}");
        assert_eq!(paths(&manifest).len(), manifest.files.len());
        assert_rows_survive(&db, tmp.path(), "k");
    }
}
