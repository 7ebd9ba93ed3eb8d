//! `export_split_parquet`: one Hive-style `<column>=<escaped value>/data.parquet` per distinct
//! value (NULL included), every path inside `out_dir`, a manifest in value order, long values
//! under `__long__<hash>`, and a layout DuckDB reads back as one partitioned dataset.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use store::ErrorKind;
use store::analytics::{Analytics, SplitManifest, Value};

use crate::support::{
    all_rows, count, expect_kind, expect_missing, files_under, lit, multiset, names_in, project,
};

/// The spec's acceptance values (NULL added separately).
const VALUES: [&str; 10] = ["m1", "m2", "a/b", "../x", "A", "a", "", "x=y", "%41", "über"];

pub(crate) fn db() -> Analytics {
    Analytics::in_memory().unwrap()
}

/// A table `t(k VARCHAR, n INTEGER)` with rows for each value (several for some) plus NULLs.
fn table_of(db: &Analytics, values: &[Option<&str>]) {
    db.exec_batch("CREATE TABLE t (k VARCHAR, n INTEGER)").unwrap();
    let mut n = 0;
    for (i, v) in values.iter().enumerate() {
        for _ in 0..=(i % 3) {
            let value = v.map_or(Value::Null, |s| Value::Text(s.into()));
            db.exec("INSERT INTO t VALUES (?, ?)", &[value, Value::Int(n)])
                .unwrap();
            n += 1;
        }
    }
}

fn acceptance_values() -> Vec<Option<&'static str>> {
    VALUES.iter().map(|v| Some(*v)).chain([None]).collect()
}

/// The glob of every Parquet file under `dir`, as an SQL literal.
pub(crate) fn parquet_glob(dir: &Path) -> String {
    lit(&dir.join("**").join("*.parquet"))
}

/// `read_parquet` over every Parquet file under `dir`.
pub(crate) fn read_back(db: &Analytics, dir: &Path, hive: bool) -> store::analytics::Rows {
    db.query(
        &format!(
            "SELECT * FROM read_parquet({}, hive_partitioning = {hive})",
            parquet_glob(dir)
        ),
        &[],
    )
    .unwrap()
}

fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    files_under(dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect()
}

/// Asserts every file under `dir` (canonicalized) lies inside it.
#[track_caller]
pub(crate) fn assert_all_inside(dir: &Path) {
    let root = dir.canonicalize().unwrap();
    for file in files_under(dir) {
        let real = file.canonicalize().unwrap();
        assert!(
            real.starts_with(&root),
            "{} escaped {}",
            real.display(),
            root.display()
        );
    }
}

pub(crate) fn manifest_file(dir: &Path) -> SplitManifest {
    serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap()
}

#[test]
fn acceptance_values_give_eleven_files_all_inside_out_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("split");
    let db = db();
    table_of(&db, &acceptance_values());

    let manifest = db.export_split_parquet("t", &out, "k").unwrap();
    assert_eq!(manifest.files.len(), 11);
    assert_eq!(parquet_files(&out).len(), 11, "{:?}", files_under(&out));
    assert_all_inside(&out);
    assert_all_inside(tmp.path());
    // Nothing was written next to out_dir (`../x` must not climb out).
    assert_eq!(names_in(tmp.path()), ["split"]);

    let dirs: BTreeSet<String> = names_in(&out)
        .into_iter()
        .filter(|n| n != "manifest.json")
        .collect();
    for expected in [
        "k=A",
        "k=a",
        "k=",
        "k=a%2Fb",
        "k=..%2Fx",
        "k=x%3Dy",
        "k=%2541",
        "k=%C3%BCber",
        "k=__HIVE_DEFAULT_PARTITION__",
    ] {
        assert!(dirs.contains(expected), "no directory {expected:?} in {dirs:?}");
    }
    assert_eq!(dirs.len(), 11, "{dirs:?}");
    // No staging directory is left behind.
    assert!(dirs.iter().all(|d| d.starts_with("k=")), "{dirs:?}");
}

#[test]
fn each_value_gets_exactly_one_data_parquet() {
    let tmp = tempfile::tempdir().unwrap();
    let db = db();
    table_of(&db, &acceptance_values());
    let manifest = db.export_split_parquet("t", tmp.path(), "k").unwrap();
    for file in &manifest.files {
        assert!(file.path.ends_with("/data.parquet"), "{}", file.path);
        let dir = tmp.path().join(&file.path);
        let dir = dir.parent().unwrap();
        assert_eq!(names_in(dir), ["data.parquet"], "in {}", dir.display());
    }
}

/// DuckDB's partitioned COPY closes files beyond `partitioned_write_max_open_files` and starts
/// a new file when the value comes back; the pieces must end up as the value's one file, with
/// every row, and the manifest's counts must be those of the files.
#[test]
fn a_partition_duckdb_wrote_in_pieces_becomes_one_file() {
    let tmp = tempfile::tempdir().unwrap();
    let db = db();
    // 150 values (below the own writer's threshold), interleaved, 40 rows each.
    db.exec_batch("CREATE TABLE t AS SELECT 'v' || (i % 150) AS k, i AS n FROM range(6000) r(i)")
        .unwrap();
    db.with_connection(|c| {
        c.execute_batch(
            "SET partitioned_write_max_open_files = 4; SET partitioned_write_flush_threshold = 500",
        )
    })
    .unwrap();
    // Glob characters in the output path must not turn the pieces' paths into patterns.
    let out = tmp.path().join("run[1]*");
    let manifest = db.export_split_parquet("t", &out, "k").unwrap();
    assert_eq!(manifest.files.len(), 150);
    assert_eq!(manifest.total_rows, 6000);
    for file in &manifest.files {
        let path = out.join(&file.path);
        assert_eq!(
            names_in(path.parent().unwrap()),
            ["data.parquet"],
            "{}",
            file.path
        );
        let rows = footer_rows(&path);
        assert_eq!(rows, file.rows, "{}", file.path);
        assert_eq!(file.rows, 40, "{}", file.path);
    }
    let back = read_back(&db, &plain_link(tmp.path(), &out), true);
    assert_eq!(
        multiset(&project(&back, &["k", "n"])),
        multiset(&all_rows(&db, "t"))
    );
}

#[test]
fn upper_and_lower_case_values_get_separate_files() {
    let tmp = tempfile::tempdir().unwrap();
    let db = db();
    table_of(&db, &[Some("A"), Some("a"), Some("a")]);
    let manifest = db.export_split_parquet("t", tmp.path(), "k").unwrap();
    let by_value: Vec<(Option<&str>, &str, u64)> = manifest
        .files
        .iter()
        .map(|f| (f.value.as_deref(), f.path.as_str(), f.rows))
        .collect();
    assert_eq!(
        by_value,
        vec![
            (Some("A"), "k=A/data.parquet", 1),
            (Some("a"), "k=a/data.parquet", 5)
        ]
    );
}

#[test]
fn null_goes_to_the_hive_default_partition_and_its_spelling_stays_distinct() {
    let tmp = tempfile::tempdir().unwrap();
    let db = db();
    table_of(&db, &[None, Some("__HIVE_DEFAULT_PARTITION__"), Some("x")]);
    let manifest = db.export_split_parquet("t", tmp.path(), "k").unwrap();
    assert_eq!(manifest.files.len(), 3);
    let null = manifest
        .files
        .iter()
        .find(|f| f.value.is_none())
        .expect("a NULL entry");
    assert_eq!(null.path, "k=__HIVE_DEFAULT_PARTITION__/data.parquet");
    assert_eq!(null.rows, 1);
    let spelled = manifest
        .files
        .iter()
        .find(|f| f.value.as_deref() == Some("__HIVE_DEFAULT_PARTITION__"))
        .expect("an entry for the spelled-out value");
    assert_ne!(spelled.path, null.path);
    assert_eq!(spelled.rows, 2);
    assert!(tmp.path().join(&spelled.path).is_file());

    // Read back as a Hive dataset, the spelled value is text and NULL is NULL.
    let rows = read_back(&db, tmp.path(), true);
    let got = multiset(&project(&rows, &["k", "n"]));
    let want = multiset(&db.query("SELECT k, n FROM t", &[]).unwrap().rows);
    assert_eq!(got, want);
}

#[test]
fn dot_and_dot_dot_values_stay_inside_out_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let db = db();
    table_of(
        &db,
        &[Some("."), Some(".."), Some("../.."), Some("/abs"), Some("\\win")],
    );
    let manifest = db.export_split_parquet("t", &out, "k").unwrap();
    assert_eq!(manifest.files.len(), 5);
    assert_eq!(parquet_files(&out).len(), 5);
    assert_all_inside(&out);
    assert_eq!(names_in(tmp.path()), ["out"]);
    for file in &manifest.files {
        let segment = file.path.split('/').next().unwrap();
        assert!(segment.starts_with("k="), "{}", file.path);
        let value = &segment[2..];
        assert!(
            value != "." && value != ".." && !value.contains('/') && !value.contains('\\'),
            "{}",
            file.path
        );
    }
    let rows = read_back(&db, &out, true);
    assert_eq!(
        multiset(&project(&rows, &["k", "n"])),
        multiset(&db.query("SELECT k, n FROM t", &[]).unwrap().rows)
    );
}

#[test]
fn duckdb_hive_read_back_returns_exactly_the_original_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let db = db();
    table_of(&db, &acceptance_values());
    db.export_split_parquet("t", tmp.path(), "k").unwrap();

    let rows = read_back(&db, tmp.path(), true);
    let original = db.query("SELECT k, n FROM t", &[]).unwrap();
    assert_eq!(rows.len(), original.len());
    assert_eq!(multiset(&project(&rows, &["k", "n"])), multiset(&original.rows));

    // Every value, NULL included, comes back (with its own row count).
    let per_value = |sql: &str| {
        let mut v: Vec<String> = db
            .query(sql, &[])
            .unwrap()
            .rows
            .iter()
            .map(|r| format!("{r:?}"))
            .collect();
        v.sort();
        v
    };
    let glob = lit(&tmp.path().join("**").join("*.parquet"));
    assert_eq!(
        per_value(&format!(
            "SELECT k, count(*) FROM read_parquet({glob}, hive_partitioning = true) GROUP BY k"
        )),
        per_value("SELECT k, count(*) FROM t GROUP BY k")
    );
}

#[test]
fn manifest_json_matches_the_returned_manifest_and_sums_to_the_table() {
    let tmp = tempfile::tempdir().unwrap();
    let db = db();
    table_of(&db, &acceptance_values());
    let manifest = db.export_split_parquet("t", tmp.path(), "k").unwrap();

    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("manifest.json")).unwrap()).unwrap();
    let keys: Vec<&String> = json.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["column", "files", "table", "total_rows"]);
    for file in json["files"].as_array().unwrap() {
        let keys: Vec<&String> = file.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["path", "rows", "value"]);
    }
    assert_eq!(manifest_file(tmp.path()), manifest);
    assert_eq!(manifest.table, "t");
    assert_eq!(manifest.column, "k");

    let total = count(&db, "t") as u64;
    assert_eq!(manifest.total_rows, total);
    assert_eq!(manifest.files.iter().map(|f| f.rows).sum::<u64>(), total);

    // One entry per distinct value, in value order (NULL first, then by value).
    let values: Vec<Option<&str>> = manifest.files.iter().map(|f| f.value.as_deref()).collect();
    let mut sorted = acceptance_values();
    sorted.sort();
    assert_eq!(values, sorted);

    // Each entry's row count is the number of rows with that value, and its path exists.
    for file in &manifest.files {
        let n = match &file.value {
            None => db.query("SELECT count(*) FROM t WHERE k IS NULL", &[]).unwrap(),
            Some(v) => db
                .query("SELECT count(*) FROM t WHERE k = ?", &[Value::Text(v.clone())])
                .unwrap(),
        };
        assert_eq!(n.rows[0][0], Value::Int(file.rows as i64), "{file:?}");
        let path = tmp.path().join(&file.path);
        let in_file = db
            .query(&format!("SELECT count(*) FROM read_parquet({})", lit(&path)), &[])
            .unwrap();
        assert_eq!(in_file.rows[0][0], Value::Int(file.rows as i64), "{file:?}");
    }
}

#[test]
fn a_10000_character_value_goes_to_a_long_directory_listed_with_its_true_value() {
    let tmp = tempfile::tempdir().unwrap();
    let db = db();
    let long = "é".repeat(5000) + &"z".repeat(5000);
    assert_eq!(long.chars().count(), 10_000);
    table_of(&db, &[Some(&long), Some("short")]);
    let manifest = db.export_split_parquet("t", tmp.path(), "k").unwrap();
    assert_eq!(manifest.files.len(), 2);

    let entry = manifest
        .files
        .iter()
        .find(|f| f.value.as_deref() == Some(long.as_str()))
        .expect("long value listed");
    let segment = entry.path.strip_suffix("/data.parquet").expect("data.parquet");
    let hash = segment
        .strip_prefix("k=__long__")
        .unwrap_or_else(|| panic!("not a __long__ path: {segment}"));
    assert_eq!(hash.len(), 16, "{segment}");
    assert!(hash.bytes().all(|b| b.is_ascii_hexdigit()), "{segment}");
    assert!(tmp.path().join(&entry.path).is_file());
    assert_eq!(entry.rows, 1);
    assert_eq!(manifest_file(tmp.path()), manifest);

    // The file itself holds the original value …
    let plain = read_back(&db, tmp.path(), false);
    assert_eq!(
        multiset(&project(&plain, &["k", "n"])),
        multiset(&db.query("SELECT k, n FROM t", &[]).unwrap().rows)
    );
    // … while a Hive read takes the directory name, as Hive readers do.
    let hive = read_back(&db, tmp.path(), true);
    let hive_values: BTreeSet<String> = project(&hive, &["k"]).iter().map(|r| r[0].to_string()).collect();
    assert!(hive_values.contains("short"));
    assert!(
        hive_values.contains(&format!("__long__{hash}")),
        "{hive_values:?}"
    );
}

#[test]
fn a_value_just_under_the_limit_keeps_its_escaped_name() {
    let tmp = tempfile::tempdir().unwrap();
    let db = db();
    let edge = "a".repeat(200);
    let over = "a".repeat(201);
    let escaped_over = "/".repeat(67); // 201 bytes once escaped
    table_of(&db, &[Some(&edge), Some(&over), Some(&escaped_over)]);
    let manifest = db.export_split_parquet("t", tmp.path(), "k").unwrap();
    let path_of = |v: &str| {
        manifest
            .files
            .iter()
            .find(|f| f.value.as_deref() == Some(v))
            .unwrap()
            .path
            .clone()
    };
    assert_eq!(path_of(&edge), format!("k={edge}/data.parquet"));
    assert!(path_of(&over).starts_with("k=__long__"));
    assert!(path_of(&escaped_over).starts_with("k=__long__"));
    assert_eq!(parquet_files(tmp.path()).len(), 3);
}

#[test]
fn a_column_name_with_odd_characters_is_encoded_and_stays_inside() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let db = db();
    db.exec_batch("CREATE TABLE t (\"my col/x\" VARCHAR, n INTEGER); INSERT INTO t VALUES ('a', 1), ('b', 2), (NULL, 3)")
        .unwrap();
    let manifest = db.export_split_parquet("t", &out, "my col/x").unwrap();
    assert_eq!(manifest.column, "my col/x");
    assert_eq!(manifest.files.len(), 3);
    assert_all_inside(&out);
    assert_eq!(names_in(tmp.path()), ["out"]);
    let dirs: Vec<String> = names_in(&out)
        .into_iter()
        .filter(|n| n != "manifest.json")
        .collect();
    assert_eq!(
        dirs,
        [
            "my%20col%2Fx=__HIVE_DEFAULT_PARTITION__",
            "my%20col%2Fx=a",
            "my%20col%2Fx=b"
        ]
    );
    let rows = read_back(&db, &out, false);
    assert_eq!(
        multiset(&project(&rows, &["my col/x", "n"])),
        multiset(&db.query("SELECT * FROM t", &[]).unwrap().rows)
    );
}

#[test]
fn column_names_that_are_dots_stay_inside() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let db = db();
    db.exec_batch("CREATE TABLE t (\"..\" VARCHAR, \".\" VARCHAR); INSERT INTO t VALUES ('v', 'w')")
        .unwrap();
    for column in ["..", "."] {
        let manifest = db.export_split_parquet("t", &out, column).unwrap();
        assert_eq!(manifest.files.len(), 1);
        assert!(
            !manifest.files[0].path.starts_with(&format!("{column}=")),
            "{}",
            manifest.files[0].path
        );
        assert_all_inside(&out);
        assert_eq!(names_in(tmp.path()), ["out"]);
    }
}

#[test]
fn splitting_on_an_integer_column_works() {
    let tmp = tempfile::tempdir().unwrap();
    let db = db();
    db.exec_batch("CREATE TABLE t AS SELECT (range % 4)::INTEGER AS bucket, range AS n FROM range(100)")
        .unwrap();
    db.exec_batch("INSERT INTO t VALUES (NULL, 1000), (-7, 1001)")
        .unwrap();
    let manifest = db.export_split_parquet("t", tmp.path(), "bucket").unwrap();
    let values: BTreeSet<Option<String>> = manifest.files.iter().map(|f| f.value.clone()).collect();
    let expected: BTreeSet<Option<String>> = [None, Some("-7"), Some("0"), Some("1"), Some("2"), Some("3")]
        .into_iter()
        .map(|v| v.map(String::from))
        .collect();
    assert_eq!(values, expected);
    assert_eq!(manifest.total_rows, 102);
    assert!(tmp.path().join("bucket=0/data.parquet").is_file());
    assert!(tmp.path().join("bucket=-7/data.parquet").is_file());

    let rows = read_back(&db, tmp.path(), true);
    let as_ints = |rows: Vec<Vec<Value>>| {
        let mut v: Vec<(Option<i64>, i64)> = rows
            .iter()
            .map(|r| (r[0].as_i64(), r[1].as_i64().unwrap()))
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        as_ints(project(&rows, &["bucket", "n"])),
        as_ints(db.query("SELECT bucket, n FROM t", &[]).unwrap().rows)
    );
}

#[test]
fn missing_table_or_column_is_missing_and_leaves_no_files() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let db = db();
    db.exec_batch("CREATE TABLE t (k VARCHAR)").unwrap();
    expect_missing(db.export_split_parquet("nope", &out, "k"), "table");
    expect_missing(db.export_split_parquet("t", &out, "nope"), "column");
    assert!(
        !out.exists() || files_under(&out).is_empty(),
        "{:?}",
        files_under(&out)
    );
    if out.exists() {
        assert!(names_in(&out).is_empty(), "left behind: {:?}", names_in(&out));
    }
}

#[test]
fn empty_or_nul_table_and_column_names_are_invalid_input() {
    let tmp = tempfile::tempdir().unwrap();
    let db = db();
    db.exec_batch("CREATE TABLE t (k VARCHAR)").unwrap();
    for (table, column, field) in [
        ("", "k", "table"),
        ("t\0x", "k", "table"),
        ("t", "", "column"),
        ("t", "k\0", "column"),
    ] {
        let err = expect_kind(
            db.export_split_parquet(table, tmp.path().join("o"), column),
            ErrorKind::InvalidInput,
        );
        assert_eq!(err.field(), Some(field), "{err}");
    }
}

#[test]
fn an_empty_table_gives_an_empty_manifest() {
    let tmp = tempfile::tempdir().unwrap();
    let db = db();
    db.exec_batch("CREATE TABLE t (k VARCHAR, n INTEGER)").unwrap();
    let manifest = db.export_split_parquet("t", tmp.path(), "k").unwrap();
    assert!(manifest.files.is_empty());
    assert_eq!(manifest.total_rows, 0);
    assert_eq!(manifest_file(tmp.path()), manifest);
}

#[test]
fn re_exporting_into_the_same_directory_replaces_the_output() {
    let tmp = tempfile::tempdir().unwrap();
    let db = db();
    table_of(&db, &[Some("a"), Some("b")]);
    db.export_split_parquet("t", tmp.path(), "k").unwrap();
    db.exec_batch("INSERT INTO t VALUES ('a', 100), ('a', 101)")
        .unwrap();
    let manifest = db.export_split_parquet("t", tmp.path(), "k").unwrap();
    assert_eq!(manifest.total_rows, 5);
    assert_eq!(parquet_files(tmp.path()).len(), 2);
    let rows = read_back(&db, tmp.path(), true);
    assert_eq!(
        multiset(&project(&rows, &["k", "n"])),
        multiset(&db.query("SELECT k, n FROM t", &[]).unwrap().rows)
    );
}

#[test]
fn re_exporting_after_a_value_disappears_removes_its_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let db = db();
    table_of(&db, &[Some("a"), Some("b")]);
    db.export_split_parquet("t", tmp.path(), "k").unwrap();
    db.exec_batch("DELETE FROM t WHERE k = 'b'; INSERT INTO t VALUES ('c', 9)")
        .unwrap();
    let manifest = db.export_split_parquet("t", tmp.path(), "k").unwrap();
    assert_eq!(manifest.files.len(), 2);
    assert_eq!(names_in(tmp.path()), ["k=a", "k=c", "manifest.json"]);
    let rows = read_back(&db, tmp.path(), true);
    assert_eq!(
        multiset(&project(&rows, &["k", "n"])),
        multiset(&db.query("SELECT k, n FROM t", &[]).unwrap().rows)
    );
}

#[test]
fn partition_directories_holding_the_users_files_stop_the_export_and_keep_them() {
    let tmp = tempfile::tempdir().unwrap();
    let db = db();
    table_of(&db, &[Some("a"), Some("b")]);
    let first = db.export_split_parquet("t", tmp.path(), "k").unwrap();
    // The user's notes inside a partition of the export, and a directory of their own that
    // only looks like one: before, both were deleted by the next export.
    std::fs::write(tmp.path().join("k=a").join("notes.txt"), "precious").unwrap();
    std::fs::create_dir_all(tmp.path().join("k=z").join("sub")).unwrap();
    std::fs::write(tmp.path().join("k=z").join("sub").join("deep.txt"), "mine").unwrap();
    let refused = || {
        let err = expect_kind(
            db.export_split_parquet("t", tmp.path(), "k"),
            ErrorKind::InvalidInput,
        );
        assert!(err.to_string().contains("k="), "{err}");
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("k=z/sub/deep.txt")).unwrap(),
            "mine"
        );
        assert_eq!(manifest_file(tmp.path()), first);
        assert_eq!(names_in(tmp.path()), ["k=a", "k=b", "k=z", "manifest.json"]);
    };
    refused();
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("k=a/notes.txt")).unwrap(),
        "precious"
    );
    // A directory no value of the new export needs is the user's all the same.
    std::fs::remove_file(tmp.path().join("k=a/notes.txt")).unwrap();
    refused();
    std::fs::remove_dir_all(tmp.path().join("k=z")).unwrap();
    // A partition DuckDB wrote as several files is the export's own and is replaced.
    std::fs::copy(
        tmp.path().join("k=b/data.parquet"),
        tmp.path().join("k=b/data-1.parquet"),
    )
    .unwrap();
    db.exec_batch("DELETE FROM t WHERE k = 'b'").unwrap();
    db.export_split_parquet("t", tmp.path(), "k").unwrap();
    assert_eq!(names_in(tmp.path()), ["k=a", "manifest.json"]);
}

#[test]
fn an_empty_out_dir_or_path_is_invalid_input() {
    let db = db();
    table_of(&db, &[Some("a")]);
    expect_kind(db.export_split_parquet("t", "", "k"), ErrorKind::InvalidInput);
    expect_kind(db.export_parquet("t", ""), ErrorKind::InvalidInput);
}

#[test]
fn files_hold_the_other_columns_and_the_directory_holds_the_value() {
    let tmp = tempfile::tempdir().unwrap();
    let db = db();
    table_of(&db, &acceptance_values());
    db.export_split_parquet("t", tmp.path(), "k").unwrap();
    // The Hive convention (DuckDB's and Spark's default): the split column is not repeated
    // inside every file …
    let plain = read_back(&db, tmp.path(), false);
    assert_eq!(plain.columns, ["n"]);
    // … and a Hive read restores it from the directory names.
    let hive = read_back(&db, tmp.path(), true);
    assert_eq!(
        multiset(&project(&hive, &["k", "n"])),
        multiset(&db.query("SELECT k, n FROM t", &[]).unwrap().rows)
    );
}

#[test]
fn a_single_column_table_keeps_its_column_in_the_files() {
    let tmp = tempfile::tempdir().unwrap();
    let db = db();
    db.exec_batch("CREATE TABLE t (k VARCHAR); INSERT INTO t VALUES ('a'), ('a'), ('b'), (NULL)")
        .unwrap();
    let manifest = db.export_split_parquet("t", tmp.path(), "k").unwrap();
    assert_eq!(manifest.files.len(), 3);
    assert_eq!(manifest.total_rows, 4);
    let plain = read_back(&db, tmp.path(), false);
    assert_eq!(
        multiset(&project(&plain, &["k"])),
        multiset(&db.query("SELECT k FROM t", &[]).unwrap().rows)
    );
}

#[test]
fn timestamp_values_with_colons_and_spaces_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let db = db();
    db.exec_batch(
        "CREATE TABLE t AS SELECT TIMESTAMP '2024-01-01 10:00:00' + INTERVAL (range % 3) HOUR AS ts,
            range AS n FROM range(12)",
    )
    .unwrap();
    let manifest = db.export_split_parquet("t", tmp.path(), "ts").unwrap();
    assert_eq!(manifest.files.len(), 3);
    assert_eq!(manifest.files[0].value.as_deref(), Some("2024-01-01 10:00:00"));
    assert_eq!(
        manifest.files[0].path,
        "ts=2024-01-01%2010%3A00%3A00/data.parquet"
    );
    assert!(manifest.files.iter().all(|f| f.rows == 4));
    let glob = tmp.path().join("**").join("*.parquet");
    let back = db
        .query(
            &format!(
                "SELECT CAST(ts AS VARCHAR), n FROM read_parquet({}, hive_partitioning = true)",
                lit(&glob)
            ),
            &[],
        )
        .unwrap();
    assert_eq!(
        multiset(&back.rows),
        multiset(
            &db.query("SELECT CAST(ts AS VARCHAR), n FROM t", &[])
                .unwrap()
                .rows
        )
    );
}

#[test]
fn a_value_over_the_name_limit_but_short_enough_for_the_os_is_listed_with_its_true_value() {
    let tmp = tempfile::tempdir().unwrap();
    let db = db();
    // 230 bytes: over the 200-byte rule, under the OS's 255-byte name limit.
    let value = "v".repeat(230);
    table_of(&db, &[Some(&value), Some("x")]);
    let manifest = db.export_split_parquet("t", tmp.path(), "k").unwrap();
    let entry = manifest
        .files
        .iter()
        .find(|f| f.value.as_deref() == Some(value.as_str()))
        .expect("the true value is in the manifest");
    assert!(entry.path.starts_with("k=__long__"), "{}", entry.path);
    assert!(tmp.path().join(&entry.path).is_file());
    assert_eq!(manifest.total_rows, 3);
    // The directory cannot carry the value, so the files keep the column (as for longer values).
    let rows = read_back(&db, tmp.path(), false);
    let mut values: Vec<Option<String>> = project(&rows, &["k"])
        .into_iter()
        .map(|r| r[0].as_str().map(String::from))
        .collect();
    values.sort();
    assert_eq!(
        values,
        [Some("v".repeat(230)), Some("x".into()), Some("x".into())]
    );
}

#[test]
fn a_failed_split_leaves_no_out_dir_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let db = db();
    db.exec_batch("CREATE TABLE t (k VARCHAR, n INTEGER)").unwrap();
    let out = tmp.path().join("never").join("made");
    expect_missing(db.export_split_parquet("nope", &out, "k"), "table");
    expect_missing(db.export_split_parquet("t", &out, "nope"), "column");
    assert!(!tmp.path().join("never").exists(), "{:?}", names_in(tmp.path()));
}

#[test]
fn the_manifest_lists_numbers_in_numeric_order() {
    let tmp = tempfile::tempdir().unwrap();
    let db = db();
    db.exec_batch(
        "CREATE TABLE t AS SELECT * FROM (VALUES (10, 1), (9, 2), (-1, 3), (2, 4), (NULL, 5), (-20, 6)) v(k, n)",
    )
    .unwrap();
    let manifest = db.export_split_parquet("t", tmp.path(), "k").unwrap();
    let values: Vec<Option<&str>> = manifest.files.iter().map(|f| f.value.as_deref()).collect();
    assert_eq!(
        values,
        [None, Some("-20"), Some("-1"), Some("2"), Some("9"), Some("10")]
    );
}

#[test]
fn table_and_column_names_resolve_case_insensitively_like_duckdb() {
    let tmp = tempfile::tempdir().unwrap();
    let db = db();
    db.exec_batch("CREATE TABLE Scores AS SELECT 'm' || (range % 2) AS Model, range AS n FROM range(6)")
        .unwrap();
    let manifest = db.export_split_parquet("scores", tmp.path(), "MODEL").unwrap();
    assert_eq!(manifest.files.len(), 2);
    assert_eq!(manifest.total_rows, 6);
    // The directories use the column's own spelling, as DuckDB writes it.
    assert!(
        tmp.path().join("Model=m0/data.parquet").is_file(),
        "{:?}",
        names_in(tmp.path())
    );
}

#[test]
fn a_split_that_fails_while_publishing_leaves_the_previous_export_in_place() {
    let tmp = tempfile::tempdir().unwrap();
    let db = db();
    table_of(&db, &[Some("a"), Some("b")]);
    db.export_split_parquet("t", tmp.path(), "k").unwrap();
    // A directory where the manifest goes makes the last publishing step fail.
    std::fs::remove_file(tmp.path().join("manifest.json")).unwrap();
    std::fs::create_dir(tmp.path().join("manifest.json")).unwrap();
    std::fs::write(tmp.path().join("manifest.json").join("keep"), "x").unwrap();
    db.exec_batch("DELETE FROM t; INSERT INTO t VALUES ('c', 1)")
        .unwrap();
    expect_kind(db.export_split_parquet("t", tmp.path(), "k"), ErrorKind::Io);
    let mut names = names_in(tmp.path());
    names.sort();
    assert_eq!(names, ["k=a", "k=b", "manifest.json"]);
    assert!(tmp.path().join("k=a/data.parquet").is_file());
    assert!(tmp.path().join("k=b/data.parquet").is_file());
}

#[test]
fn column_names_match_ignoring_ascii_case_only_as_in_duckdb() {
    let tmp = tempfile::tempdir().unwrap();
    let db = db();
    db.exec_batch(r#"CREATE TABLE u ("Ä" INTEGER, "ä" VARCHAR, n INTEGER); INSERT INTO u VALUES (1, 'x', 1), (2, 'y', 2)"#)
        .unwrap();
    let manifest = db.export_split_parquet("u", tmp.path(), "ä").unwrap();
    assert_eq!(manifest.column, "ä");
    let values: Vec<Option<&str>> = manifest.files.iter().map(|f| f.value.as_deref()).collect();
    assert_eq!(values, [Some("x"), Some("y")]);
    db.exec_batch(r#"CREATE TABLE "Ö" (a INTEGER)"#).unwrap();
    assert!(db.table_exists("Ö").unwrap());
    assert!(!db.table_exists("ö").unwrap());
}

#[test]
fn a_column_named_like_the_internal_key_column_splits_like_any_other() {
    // The keyed layout adds a key column of its own; its name must never shadow the table's.
    let dir = tempfile::tempdir().unwrap();
    let db = db();
    db.exec_batch(
        "CREATE TABLE t AS SELECT range % 2 AS __store_split_key, range AS x,
                'long ' || repeat('y', 300 * (range = 5)::INTEGER) AS \"needs escaping\"
         FROM range(6)",
    )
    .unwrap();
    // The column itself (native layout), and another column that needs the keyed layout
    // (its name needs escaping and one value is over the 200-byte rule).
    for (column, files) in [("__store_split_key", 2), ("needs escaping", 2)] {
        let out = dir.path().join(column.replace(' ', "_"));
        let manifest = db.export_split_parquet("t", &out, column).unwrap();
        assert_eq!(manifest.total_rows, 6, "{column}");
        assert_eq!(manifest.files.len(), files, "{column}");
        assert_eq!(parquet_files(&out).len(), files, "{column}");
        let rows = db
            .query(
                &format!(
                    "SELECT count(*), sum(x) FROM read_parquet({}, hive_partitioning = false)",
                    lit(&out.join("**").join("*.parquet"))
                ),
                &[],
            )
            .unwrap();
        assert_eq!(rows.rows, vec![vec![Value::Int(6), Value::Int(15)]], "{column}");
    }
}

#[test]
fn splitting_by_another_column_into_the_same_directory_replaces_the_earlier_split() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let db = db();
    db.exec_batch("CREATE TABLE t AS SELECT range % 3 AS p, range % 2 AS q, range AS x FROM range(12)")
        .unwrap();
    let first = db.export_split_parquet("t", &out, "p").unwrap();
    // Something of the user's own in the directory, named like a partition but not listed.
    std::fs::create_dir(out.join("mine=1")).unwrap();
    std::fs::write(out.join("mine=1").join("notes.txt"), "keep").unwrap();

    let manifest = db.export_split_parquet("t", &out, "q").unwrap();
    assert_eq!(manifest.files.len(), 2);
    let dirs = names_in(&out);
    assert!(!dirs.iter().any(|d| d.starts_with("p=")), "{dirs:?}");
    assert!(out.join("mine=1").join("notes.txt").exists(), "{dirs:?}");
    // Without the user's extras, the directory reads back as one Hive dataset.
    std::fs::remove_dir_all(out.join("mine=1")).unwrap();
    assert_eq!(
        multiset(&read_back(&db, &out, true).rows),
        multiset(&db.query("SELECT p, x, q FROM t", &[]).unwrap().rows)
    );
    assert_eq!(first.files.len(), 3);
}

/// A partition of the previous export (of another column) that the user added files to can be
/// neither removed (their files) nor left beside the new partitions (its Parquet file would
/// make the directory unreadable as one dataset): the export is refused and changes nothing.
#[test]
fn a_previous_partition_of_another_column_holding_the_users_files_stops_the_export() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let db = db();
    db.exec_batch("CREATE TABLE t AS SELECT range % 3 AS p, range % 2 AS q, range AS x FROM range(12)")
        .unwrap();
    db.export_split_parquet("t", &out, "p").unwrap();
    std::fs::write(out.join("p=2").join("notes.txt"), "keep").unwrap();
    let before = names_in(&out);
    let manifest_before = std::fs::read(out.join("manifest.json")).unwrap();

    let err = db.export_split_parquet("t", &out, "q").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("p=2"), "{err}");
    assert!(err.to_string().contains("nothing was changed"), "{err}");
    assert_eq!(names_in(&out), before);
    assert_eq!(std::fs::read(out.join("manifest.json")).unwrap(), manifest_before);
    assert!(out.join("p=2").join("notes.txt").exists());
    assert!(out.join("p=2").join("data.parquet").exists());

    // Once the user's file is moved out, the export goes through and the old partitions go.
    std::fs::remove_file(out.join("p=2").join("notes.txt")).unwrap();
    db.export_split_parquet("t", &out, "q").unwrap();
    assert!(!names_in(&out).iter().any(|d| d.starts_with("p=")));
    assert_eq!(
        multiset(&read_back(&db, &out, true).rows),
        multiset(&db.query("SELECT p, x, q FROM t", &[]).unwrap().rows)
    );
}

/// The row count in a Parquet file's footer, read with the `parquet` crate (DuckDB would take
/// glob characters in the path as a pattern).
fn footer_rows(path: &Path) -> u64 {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let reader = SerializedFileReader::new(std::fs::File::open(path).unwrap()).unwrap();
    reader.metadata().file_metadata().num_rows() as u64
}

/// A plainly named symlink (inside `dir`) to `target`, for DuckDB to read it by.
fn plain_link(dir: &Path, target: &Path) -> PathBuf {
    let link = dir.join("plain");
    std::os::unix::fs::symlink(target, &link).unwrap();
    link
}

/// A split export killed mid-way leaves its staging directory behind (a dead process cannot
/// clean up), and DuckDB's `**` glob reads hidden directories too: the next export into the
/// directory removes what dead exports left, so the dataset reads back exactly.
#[test]
fn leftovers_of_a_killed_export_are_cleared_by_the_next_one() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let db = db();
    table_of(&db, &[Some("a"), Some("b")]);
    db.export_split_parquet("t", &out, "k").unwrap();
    // What a killed export (process id above any pid_max) leaves: complete-looking files in a
    // staging directory inside `out` (older versions staged there) and beside it.
    let dead = u32::MAX - 1;
    for staging in [
        out.join(format!(".staging-{dead}-0/k=zz")),
        tmp.path().join(format!(".out.staging-{dead}-1/k=zz")),
    ] {
        std::fs::create_dir_all(&staging).unwrap();
        std::fs::copy(out.join("k=a/data.parquet"), staging.join("data_0.parquet")).unwrap();
    }
    db.export_split_parquet("t", &out, "k").unwrap();
    let mut names = names_in(&out);
    names.sort();
    assert_eq!(names, ["k=a", "k=b", "manifest.json"]);
    assert_eq!(names_in(tmp.path()), ["out"]);
    let back = read_back(&db, &out, true);
    assert_eq!(
        multiset(&project(&back, &["k", "n"])),
        multiset(&all_rows(&db, "t"))
    );
}

/// DuckDB's partitioned writer takes `\` for a path separator; an output directory whose name
/// holds one still gets every file, for a column with few values (DuckDB's writer) as for one
/// with many (the store's own).
#[test]
fn an_out_dir_whose_name_holds_a_backslash_gets_the_files() {
    let tmp = tempfile::tempdir().unwrap();
    let db = Analytics::in_memory().unwrap();
    db.exec_batch(
        "CREATE TABLE few AS SELECT * FROM (VALUES ('x', 1), ('y', 2)) v(b, n);
         CREATE TABLE many AS SELECT 'v' || (range % 3000) AS b, range AS n FROM range(6000);
         CREATE TABLE long AS SELECT * FROM (VALUES (repeat('a', 300), 1), ('b', 2)) v(b, n)",
    )
    .unwrap();
    // `long`: DuckDB's writer fails on the 300-byte name, and the export is redone (keyed) into a
    // staging directory made afresh.
    for (table, values) in [("few", 2), ("many", 3000), ("long", 2)] {
        let out = tmp.path().join(format!("sp\\lit-{table}"));
        let manifest = db.export_split_parquet(table, &out, "b").unwrap();
        assert_eq!(manifest.files.len(), values);
        assert_eq!(
            files_under(&out).len(),
            values + 1,
            "the files and the manifest, in {out:?}"
        );
        let mut names = names_in(tmp.path());
        names.retain(|n| n.contains(table));
        assert_eq!(names, [format!("sp\\lit-{table}")], "nothing else beside it");
    }
}

/// DuckDB's partitioning takes `1 month` and `30 days` (and `1 day` and `24 hours`) for one
/// value, although they add to dates differently: each keeps a partition and reads back as
/// itself.
#[test]
fn interval_keys_that_duckdb_compares_equal_keep_partitions_of_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let db = db();
    db.exec_batch(
        "CREATE TABLE t AS SELECT * FROM (VALUES (INTERVAL '1 month', 1), (INTERVAL '30 days', 2),
           (INTERVAL '1 day', 3), (INTERVAL '24 hours', 4), (NULL, 5)) v(k, id)",
    )
    .unwrap();
    let out = dir.path().join("iv");
    let manifest = db.export_split_parquet("t", &out, "k").unwrap();
    assert_eq!(manifest.files.len(), 5, "{manifest:?}");
    let shifted = "(DATE '2024-02-01' + k)::VARCHAR";
    let back = db
        .query(
            &format!(
                "SELECT id, {shifted} FROM read_parquet({}, hive_partitioning = true, \
                 hive_types = {{'k': 'INTERVAL'}}) ORDER BY id",
                lit(&out.join("**").join("*.parquet"))
            ),
            &[],
        )
        .unwrap();
    let original = db
        .query(&format!("SELECT id, {shifted} FROM t ORDER BY id"), &[])
        .unwrap();
    assert_eq!(back.rows, original.rows);
}

/// DuckDB's partitioning takes `-0.0` for `0.0`: each keeps its partition and sign.
#[test]
fn float_keys_minus_zero_and_zero_keep_partitions_of_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let db = db();
    db.exec_batch(
        "CREATE TABLE dz AS SELECT * FROM (VALUES (-0.0::DOUBLE, 1), (0.0::DOUBLE, 2), (1.5::DOUBLE, 3),
           ('nan'::DOUBLE, 4), (NULL, 5)) v(k, id)",
    )
    .unwrap();
    let out = dir.path().join("dz");
    let manifest = db.export_split_parquet("dz", &out, "k").unwrap();
    assert_eq!(manifest.files.len(), 5, "{manifest:?}");
    let back = db
        .query(
            &format!(
                "SELECT id, CAST(k AS VARCHAR) FROM read_parquet({}, hive_partitioning = true, \
                 hive_types = {{'k': 'DOUBLE'}}) ORDER BY id",
                lit(&out.join("**").join("*.parquet"))
            ),
            &[],
        )
        .unwrap();
    let original = db
        .query("SELECT id, CAST(k AS VARCHAR) FROM dz ORDER BY id", &[])
        .unwrap();
    assert_eq!(back.rows, original.rows);
}

/// DuckDB compares every NaN equal, but prints a computed one (`0.0 / 0.0` on x86) as `-nan` and
/// a parsed one as `nan`: all of them share one partition, named `nan`, for FLOAT and DOUBLE.
#[test]
fn every_float_nan_shares_one_partition_whatever_its_sign_bit() {
    for float in ["DOUBLE", "FLOAT"] {
        let dir = tempfile::tempdir().unwrap();
        let db = db();
        db.exec_batch(&format!(
            "CREATE TABLE n AS SELECT k::{float} AS k, id FROM (VALUES ('nan'::DOUBLE, 1),
               (0.0::DOUBLE / 0.0::DOUBLE, 2), ('inf'::DOUBLE - 'inf'::DOUBLE, 3), (1.5, 4),
               (-('nan'::DOUBLE), 5)) v(k, id)"
        ))
        .unwrap();
        let distinct = db
            .query_row("SELECT count(DISTINCT k) FROM n", &[])
            .unwrap()
            .unwrap()
            .values[0]
            .as_i64()
            .unwrap();
        assert_eq!(distinct, 2, "{float}: DuckDB holds every NaN equal");
        let out = dir.path().join("n");
        let manifest = db.export_split_parquet("n", &out, "k").unwrap();
        let shape: Vec<(Option<&str>, u64)> = manifest
            .files
            .iter()
            .map(|f| (f.value.as_deref(), f.rows))
            .collect();
        assert_eq!(shape, [(Some("1.5"), 1), (Some("nan"), 4)], "{float}");
        assert!(out.join("k=nan").is_dir(), "{float}");
        assert_eq!(parquet_files(&out).len(), 2, "{float}");
        assert_eq!(count_parquet_rows(&db, &out), 5, "{float}");
    }
}

/// A list of floats keeps its NaNs together too, also where the split is keyed by the value's
/// text (a column name that needs escaping): `[nan]` and `[-nan]` are one value to DuckDB.
#[test]
fn nans_inside_a_list_of_floats_share_one_partition_in_the_keyed_layout() {
    for (column, data_type) in [("k k", "DOUBLE[]"), ("k k", "FLOAT[2]"), ("k", "DOUBLE[][]")] {
        let dir = tempfile::tempdir().unwrap();
        let db = db();
        let wrap = if data_type == "DOUBLE[][]" {
            "[[x, 1]]"
        } else {
            "[x, 1]"
        };
        db.exec_batch(&format!(
            "CREATE TABLE n AS SELECT CAST({wrap} AS {data_type}) AS \"{column}\", id
               FROM (VALUES ('nan'::DOUBLE, 1), (0.0::DOUBLE / 0.0::DOUBLE, 2), (1.5, 3)) v(x, id)"
        ))
        .unwrap();
        let out = dir.path().join("n");
        let manifest = db.export_split_parquet("n", &out, column).unwrap();
        assert_nans_share_one_of_two_partitions(&manifest, data_type);
    }
}

/// The manifest of the three rows (two NaNs of either sign, one ordinary value) these tests
/// split: two partitions, none named after `-nan`.
#[track_caller]
fn assert_nans_share_one_of_two_partitions(manifest: &SplitManifest, what: &str) {
    let rows: Vec<u64> = manifest.files.iter().map(|f| f.rows).collect();
    assert_eq!(rows.len(), 2, "{what}: {manifest:?}");
    assert_eq!(rows.iter().sum::<u64>(), 3, "{what}");
    assert!(
        manifest
            .files
            .iter()
            .all(|f| !f.value.as_deref().unwrap_or("").contains("-nan")),
        "{what}: {manifest:?}"
    );
}

/// `[0.0, 1.0, …, 59.0, x]` for x a parsed NaN (id 1) and a computed one (id 2, `-nan` on x86),
/// plus one ordinary value: the list's text is well over the 200-byte directory-name rule, so
/// the split keys it by a hash of its text.
#[test]
fn a_long_list_of_floats_holding_nans_of_both_signs_splits_into_one_partition() {
    for (column, nan_first) in [("k", true), ("k", false), ("k k", true)] {
        let dir = tempfile::tempdir().unwrap();
        let db = db();
        let order = if nan_first { "id" } else { "-id" };
        db.exec_batch(&format!(
            "CREATE TABLE n AS SELECT list_concat(CAST(range(60) AS DOUBLE[]), [x]) AS \"{column}\", id
               FROM (VALUES ('nan'::DOUBLE, 1), (0.0::DOUBLE / 0.0::DOUBLE, 2), (1.5, 3)) v(x, id)
               ORDER BY {order}"
        ))
        .unwrap();
        let texts = db
            .query(
                &format!("SELECT DISTINCT CAST(\"{column}\" AS VARCHAR)[-12:] FROM n ORDER BY 1"),
                &[],
            )
            .unwrap();
        let out = dir.path().join("n");
        let manifest = db
            .export_split_parquet("n", &out, column)
            .unwrap_or_else(|e| panic!("{column:?} nan_first={nan_first} (texts {texts:?}): {e}"));
        assert_nans_share_one_of_two_partitions(&manifest, column);
    }
}

/// Short lists in the native layout (a plain column name): the computed NaN first, so DuckDB's
/// partitioning meets `-nan` before `nan`.
#[test]
fn a_short_list_with_the_computed_nan_first_is_listed_as_nan() {
    for data_type in ["DOUBLE[]", "FLOAT[]", "DOUBLE[2]"] {
        let dir = tempfile::tempdir().unwrap();
        let db = db();
        db.exec_batch(&format!(
            "CREATE TABLE n AS SELECT CAST([x, 1] AS {data_type}) AS k, id
               FROM (VALUES (0.0::DOUBLE / 0.0::DOUBLE, 1), ('nan'::DOUBLE, 2), (1.5, 3)) v(x, id) ORDER BY id"
        ))
        .unwrap();
        let manifest = db.export_split_parquet("n", dir.path().join("n"), "k").unwrap();
        assert_nans_share_one_of_two_partitions(&manifest, data_type);
        for f in &manifest.files {
            assert!(!f.path.contains("-nan"), "{data_type}: {manifest:?}");
        }
    }
}

/// A list of floats is split the same way whatever the column's name: `[-0.0]` and `[0.0]`
/// (and the NaNs) land in the same number of partitions in the native and the keyed layout.
#[test]
fn a_list_of_floats_splits_alike_in_both_layouts() {
    let mut counts = Vec::new();
    for column in ["k", "k k"] {
        let dir = tempfile::tempdir().unwrap();
        let db = db();
        db.exec_batch(&format!(
            "CREATE TABLE n AS SELECT [x] AS \"{column}\", id
               FROM (VALUES (-0.0::DOUBLE, 1), (0.0::DOUBLE, 2), (1.5, 3)) v(x, id)"
        ))
        .unwrap();
        let manifest = db
            .export_split_parquet("n", dir.path().join("n"), column)
            .unwrap();
        let mut values: Vec<_> = manifest.files.iter().map(|f| f.value.clone()).collect();
        values.sort();
        counts.push((column, values));
    }
    assert_eq!(counts[0].1, counts[1].1, "{counts:?}");
}

/// The manifest lists dates and timestamps in time order, as `ORDER BY` does: BC years count
/// backwards and a five-digit year comes after every four-digit one.
#[test]
fn the_manifest_lists_dates_and_timestamps_in_time_order() {
    let dates = "('2024-01-01'::DATE), ('10000-01-01'), ('0044-03-15 (BC)'), ('1000-01-01 (BC)'),
                 ('0001-01-01'), ('infinity'), ('-infinity'), ('0044-01-01 (BC)'), (NULL)";
    for (data_type, expression) in [
        ("DATE", "d"),
        ("TIMESTAMP", "d + INTERVAL 90 MINUTE"),
        ("TIMESTAMPTZ", "(d + INTERVAL 90 MINUTE)::TIMESTAMPTZ"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let db = db();
        db.exec_batch(&format!(
            "CREATE TABLE t AS SELECT CAST({expression} AS {data_type}) AS k, 1 AS id
               FROM (VALUES {dates}) v(d)"
        ))
        .unwrap();
        let manifest = db.export_split_parquet("t", dir.path().join("out"), "k").unwrap();
        let listed: Vec<Value> = manifest
            .files
            .iter()
            .map(|f| f.value.clone().map_or(Value::Null, Value::Text))
            .collect();
        let in_time_order: Vec<Value> = db
            .query("SELECT CAST(k AS VARCHAR) FROM t ORDER BY k NULLS FIRST", &[])
            .unwrap()
            .rows
            .into_iter()
            .map(|mut row| row.remove(0))
            .collect();
        assert_eq!(listed, in_time_order, "{data_type}");
    }
}

/// A split that fails into a fresh directory removes what it made while it still holds the
/// lock; a second split waiting for that lock makes the directories again and succeeds.
#[test]
fn a_failed_split_cleaning_up_never_breaks_the_split_waiting_for_its_lock() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("fresh").join("parts");
    let a = db();
    a.exec_batch("CREATE TABLE big AS SELECT range % 7 AS k, md5(range::VARCHAR) AS s FROM range(3000000)")
        .unwrap();
    let b = db();
    b.exec_batch("CREATE TABLE big AS SELECT range % 3 AS k, 'b' AS s FROM range(30)")
        .unwrap();
    let started = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let failing = scope.spawn(|| {
            let progress = |_: store::analytics::ImportProgress| {
                if !started.swap(true, Ordering::SeqCst) {
                    // Gives the other export time to reach the lock.
                    std::thread::sleep(std::time::Duration::from_millis(1500));
                    panic!("stop this export");
                }
            };
            a.export_split_parquet_with("big", &out, "k", Some(&progress))
        });
        while !started.load(Ordering::SeqCst) && !failing.is_finished() {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(
            started.load(Ordering::SeqCst),
            "the first export never reported progress"
        );
        let second = b.export_split_parquet("big", &out, "k");
        assert!(failing.join().unwrap().is_err());
        assert_eq!(second.expect("the waiting export succeeds").total_rows, 30);
    });
    assert_eq!(count_parquet_rows(&b, &out), 30);
}

fn count_parquet_rows(db: &Analytics, out: &Path) -> i64 {
    db.query_row(
        &format!(
            "SELECT count(*) FROM read_parquet({}, hive_partitioning = true)",
            lit(&out.join("**").join("*.parquet"))
        ),
        &[],
    )
    .unwrap()
    .unwrap()
    .values[0]
        .as_i64()
        .unwrap()
}

/// A split export can run several statements (here a native COPY, then a keyed one for a value
/// over the `__long__` limit), each estimated by DuckDB from zero. Its in-flight reports
/// stepped back from the first COPY's 99.99% to the second's 26% (h160); one job now spans
/// both.
#[test]
fn split_export_progress_never_steps_back_across_its_statements() {
    let dir = tempfile::tempdir().unwrap();
    let db = Analytics::in_memory().unwrap();
    // DuckDB waits 2 s before its first estimate; this makes it report from the start.
    db.exec_batch("SET progress_bar_time = 0").unwrap();
    let rows = 12_000_000u64;
    db.exec_batch(&format!(
        "CREATE TABLE t AS SELECT CASE WHEN i = {last} THEN repeat('x', 220) ELSE (i % 5)::VARCHAR END AS k,
                i AS n, 'text ' || i AS s FROM range({rows}) r(i)",
        last = rows - 1
    ))
    .unwrap();
    let seen = std::sync::Mutex::new(Vec::new());
    let report = |p: store::analytics::ImportProgress| seen.lock().unwrap().push(p);
    let manifest = db
        .export_split_parquet_with("t", dir.path().join("out"), "k", Some(&report))
        .unwrap();
    assert!(manifest.files.iter().any(|f| f.path.contains("__long__")));
    let seen = seen.into_inner().unwrap();
    assert!(seen.len() > 2, "too few reports to judge: {seen:?}");
    // The final report is exact (documented: it may have fewer rows than an estimate), so
    // rows are compared in flight; the percentage all the way to its 100.
    let in_flight = &seen[..seen.len() - 1];
    for pair in in_flight.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        assert!(b.rows_processed >= a.rows_processed, "{a:?} then {b:?}");
    }
    for pair in seen.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        assert!(
            b.percentage.unwrap_or(0.0) >= a.percentage.unwrap_or(0.0),
            "{a:?} then {b:?}"
        );
    }
    assert_eq!(seen.last().unwrap().percentage, Some(100.0));
}
