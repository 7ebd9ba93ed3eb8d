//! Typed opens (Unix): the store hands DuckDB a database file as `duckdb:<path>` (so DuckDB
//! reads its headers only under its lock), and whatever form the path takes, the file DuckDB
//! opens is the one `std::fs` names (the one the claims and the foreign-file check look at),
//! queries larger than memory spill into `<path>.tmp` beside it, and neither DuckDB's catalog
//! nor an error shows the typed form.
//!
//! The tests came from the review of that change (h23): their doc comments describe the defect
//! each was written against (past behaviour); the test name states the behaviour it pins now.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use store::analytics::{Analytics, Value};

use crate::common::child_test_command;
use crate::support::{lit, scalar, text};

/// Set by [`a_relative_non_utf8_path_starting_file_colon_opens_the_file_std_fs_names`] for its
/// child: the (relative, maybe not UTF-8) path to open.
const CHILD_PATH_ENV: &str = "TYPED_OPEN_CHILD_PATH";

/// `text(scalar(db, sql))`.
fn scalar_text(db: &Analytics, sql: &str) -> String {
    text(&scalar(db, sql))
}

/// DuckDB derives a file database's default temporary directory (where a query larger than
/// memory spills) from the path it was given: `<path>.tmp`. Given `duckdb:<path>`, it derived
/// `duckdb:<path>.tmp` before the type prefix was stripped (`DatabaseInstance::Configure` →
/// `SetDefaultTempDirectory` runs before `ResolveDatabaseType`): a relative path under the
/// process's current directory, whose parent `duckdb:` does not exist.
#[test]
fn a_file_databases_temp_directory_is_its_path_dot_tmp() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.duckdb");
    let db = Analytics::open(&path).unwrap();
    assert_eq!(
        scalar_text(&db, "SELECT current_setting('temp_directory')"),
        format!("{}.tmp", path.display())
    );
    db.close().unwrap();
    let ro = Analytics::open_read_only(&path).unwrap();
    assert_eq!(
        scalar_text(&ro, "SELECT current_setting('temp_directory')"),
        format!("{}.tmp", path.display())
    );
}

/// The user-visible effect of the derived `duckdb:<path>.tmp`: a query that must spill
/// (`memory_limit` below its working set) failed, DuckDB being unable to create that directory
/// relative to the current one. It succeeds, spilling into `<path>.tmp` beside the file.
#[test]
fn a_query_larger_than_memory_spills_into_path_dot_tmp_instead_of_failing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.duckdb");
    let spill = dir.path().join("a.duckdb.tmp");
    let db = Analytics::open(&path).unwrap();
    db.exec_batch(
        "SET threads = 1; SET memory_limit = '48MB'; SET preserve_insertion_order = false;
         CREATE TABLE big AS SELECT range AS i, md5(range::VARCHAR) || md5((range + 1)::VARCHAR) AS s
         FROM range(1500000);",
    )
    .unwrap();
    let sql = "SELECT count(*), max(s) FROM (SELECT s, i FROM big ORDER BY s DESC, i)";
    let row = db
        .query_row(sql, &[])
        .unwrap_or_else(|e| panic!("a query that must spill failed: {e}"))
        .expect("one row");
    assert_eq!(row.values[0].as_i64(), Some(1_500_000));
    // DuckDB creates its temporary directory when it first spills, and keeps it while open.
    assert!(spill.is_dir(), "the query did not spill into {}", spill.display());
    assert!(
        !Path::new("duckdb:").exists(),
        "a `duckdb:` directory was created in the current directory"
    );
}

/// Not a test of its own: the child half of
/// [`a_relative_non_utf8_path_starting_file_colon_opens_the_file_std_fs_names`]. It returns at
/// once unless `TYPED_OPEN_CHILD_PATH` names a path, which it opens from its current directory
/// and writes a table to.
#[test]
#[ignore = "child of typed_open tests: run by them in another current directory"]
fn child_opens_the_path_it_is_given() {
    let Some(path) = std::env::var_os(CHILD_PATH_ENV) else {
        return;
    };
    let db = Analytics::open(&path).expect("child: open");
    db.exec_batch("CREATE TABLE marker AS SELECT 42 AS x")
        .expect("child: write");
    db.close().expect("child: close");
}

/// A relative, non-UTF-8 path whose first component is `file:` was not made absolute (the
/// reinterpretation check worked on `to_str`), and DuckDB stripped `file:` as a file URL:
/// `file:/<abs>/x\xff.duckdb` opened `/<abs>/x\xff.duckdb`, not `./file:/<abs>/x\xff.duckdb`,
/// the file `std::fs` (and with it the claims and the foreign-file check) names. Run in a child
/// process, whose current directory can be a temp dir.
#[test]
fn a_relative_non_utf8_path_starting_file_colon_opens_the_file_std_fs_names() {
    let cwd = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    // Relative path: file:<elsewhere>/x\xff.duckdb (so file:/… after `file:`).
    let mut rel = b"file:".to_vec();
    rel.extend_from_slice(elsewhere.path().as_os_str().as_bytes());
    rel.extend_from_slice(b"/x\xff.duckdb");
    let rel = OsStr::from_bytes(&rel);
    let right = cwd.path().join(rel);
    // std::fs sees ./file:<elsewhere>/x\xff.duckdb: make its parent so the open may create it.
    std::fs::create_dir_all(right.parent().unwrap()).unwrap();
    let mut child = child_test_command("typed_open::child_opens_the_path_it_is_given");
    let run = child
        .env(CHILD_PATH_ENV, rel)
        .current_dir(cwd.path())
        .output()
        .expect("run the child");
    let wrong = elsewhere.path().join(OsStr::from_bytes(b"x\xff.duckdb"));
    assert!(
        !wrong.exists(),
        "the open created {} instead of {}",
        wrong.display(),
        right.display()
    );
    assert!(
        run.status.success(),
        "the child failed to open {} ({}):\n{}",
        right.display(),
        run.status,
        String::from_utf8_lossy(&run.stdout)
    );
    let db = Analytics::open_read_only(&right).unwrap();
    assert_eq!(scalar(&db, "SELECT x FROM marker").as_i64(), Some(42));
}

/// Path forms DuckDB might read as something else (a `:` in the name, a type or scheme-like
/// prefix, spaces, non-ASCII, long components, `//`, a non-UTF-8 name) each open, create and
/// reopen the file `std::fs` names, and DuckDB's catalog never shows the typed `duckdb:` form.
#[test]
fn every_path_form_opens_and_reopens_the_file_std_fs_names() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path();
    std::fs::create_dir(base.join("sub dir")).unwrap();
    let long_dir = base.join("l".repeat(200)).join("m".repeat(200));
    std::fs::create_dir_all(&long_dir).unwrap();
    let cases: Vec<PathBuf> = vec![
        base.join("plain.duckdb"),
        base.join("a:b.duckdb"),
        base.join("sqlite:x.duckdb"),
        base.join("sub dir").join("space y.duckdb"),
        base.join("ünï cødé.duckdb"),
        base.join("md:x"),
        base.join("x.csv"),
        base.join("x.parquet"),
        long_dir.join("n".repeat(200) + ".duckdb"),
        // `//` prefix: the same file as one slash.
        PathBuf::from(format!("/{}", base.join("slashes.duckdb").display())),
        PathBuf::from(OsStr::from_bytes(
            &[base.as_os_str().as_bytes(), b"/bad\xffutf8.duckdb"].concat(),
        )),
    ];
    for path in &cases {
        let shown = path.display();
        let db = Analytics::open(path).unwrap_or_else(|e| panic!("{shown}: {e}"));
        db.exec_batch("CREATE TABLE m AS SELECT 7 AS x").unwrap();
        // (A non-UTF-8 file name makes DuckDB's catalog functions raise an INTERNAL error, with
        // or without the type prefix: not asked there.)
        if path.to_str().is_some() {
            let rows = db
                .query(
                    "SELECT database_name, path FROM duckdb_databases() WHERE NOT internal",
                    &[],
                )
                .unwrap()
                .rows;
            for value in rows.iter().flatten() {
                if let Value::Text(s) = value {
                    assert!(!s.starts_with("duckdb:"), "{shown}: duckdb_databases() shows {s}");
                }
            }
            let name = scalar_text(&db, "SELECT current_database()");
            assert!(!name.contains("duckdb:"), "{shown}: current_database() is {name}");
        }
        db.close().unwrap();
        let meta = std::fs::metadata(path).unwrap_or_else(|e| panic!("{shown}: not created: {e}"));
        assert!(meta.is_file(), "{shown}");
        assert_eq!(&std::fs::read(path).unwrap()[8..12], b"DUCK", "{shown}");
        let db = Analytics::open_read_only(path).unwrap();
        assert_eq!(scalar(&db, "SELECT x FROM m").as_i64(), Some(7), "{shown}");
        db.close().unwrap();
    }
    assert!(
        !Path::new("duckdb:").exists(),
        "a `duckdb:` directory was created in the current directory"
    );
}

#[test]
fn the_catalog_is_named_after_the_file_stem_and_lists_the_path_untyped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("warehouse.duckdb");
    let db = Analytics::open(&path).unwrap();
    assert_eq!(scalar_text(&db, "SELECT current_database()"), "warehouse");
    let listed = scalar_text(
        &db,
        "SELECT path FROM duckdb_databases() WHERE database_name = 'warehouse'",
    );
    assert_eq!(listed, path.to_str().unwrap());
}

/// A symlink and its target are one database: opening both in one process is refused (claims),
/// and the link opens the target's file and stays a link.
#[test]
fn a_symlink_and_its_target_are_one_database() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("t.duckdb");
    let link = dir.path().join("l.duckdb");
    Analytics::open(&target).unwrap().close().unwrap();
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let a = Analytics::open(&link).unwrap();
    a.exec_batch("CREATE TABLE z AS SELECT 1 AS x").unwrap();
    assert!(Analytics::open(&target).is_err());
    assert!(Analytics::open_read_only(&target).is_err());
    a.close().unwrap();
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    let b = Analytics::open_read_only(&target).unwrap();
    assert_eq!(scalar(&b, "SELECT x FROM z").as_i64(), Some(1));
}

/// Every way an open fails (a directory, a missing parent or file, foreign files, an unreadable
/// header, a file held by another handle) names the path as given, never the typed form.
#[test]
fn open_errors_name_the_path_as_given_never_the_typed_form() {
    let dir = tempfile::tempdir().unwrap();
    let mut messages = Vec::new();
    let sub = dir.path().join("adir");
    std::fs::create_dir(&sub).unwrap();
    messages.push(Analytics::open(&sub).unwrap_err().to_string());
    messages.push(Analytics::open_read_only(&sub).unwrap_err().to_string());
    messages.push(
        Analytics::open(dir.path().join("no/x.duckdb"))
            .unwrap_err()
            .to_string(),
    );
    messages.push(
        Analytics::open_read_only(dir.path().join("none.duckdb"))
            .unwrap_err()
            .to_string(),
    );
    // Foreign files: a SQLite database, text, Parquet.
    let sqlite = dir.path().join("s.db");
    rusqlite::Connection::open(&sqlite)
        .unwrap()
        .execute_batch("CREATE TABLE a(x); INSERT INTO a VALUES (1);")
        .unwrap();
    let txt = dir.path().join("t.txt");
    std::fs::write(&txt, "hello world, not a database\n").unwrap();
    let pq = dir.path().join("p.parquet");
    Analytics::in_memory()
        .unwrap()
        .exec_batch(&format!("COPY (SELECT 1 AS x) TO {} (FORMAT parquet)", lit(&pq)))
        .unwrap();
    for f in [&sqlite, &txt, &pq] {
        for e in [
            Analytics::open(f).unwrap_err(),
            Analytics::open_read_only(f).unwrap_err(),
        ] {
            let e = e.to_string();
            assert!(e.contains("not a valid DuckDB database file"), "{e}");
            messages.push(e);
        }
    }
    // Zeros: no DUCK magic where DuckDB looks for it.
    let junk = dir.path().join("j.duckdb");
    std::fs::write(&junk, vec![0u8; 8192]).unwrap();
    messages.push(Analytics::open(&junk).unwrap_err().to_string());
    // Held read-write by another handle.
    let held = dir.path().join("h.duckdb");
    let _holder = Analytics::open(&held).unwrap();
    messages.push(Analytics::open(&held).unwrap_err().to_string());
    for m in &messages {
        assert!(
            !m.contains(&format!("duckdb:{}", dir.path().display())) && !m.contains("duckdb:/."),
            "an error shows the typed path: {m}"
        );
    }
}

/// An empty existing file is refused by both opens (DuckDB's own error), names the path as
/// given, and stays empty.
#[test]
fn an_empty_file_is_refused_by_both_opens_and_stays_empty() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("e.duckdb");
    std::fs::write(&path, b"").unwrap();
    let ro = Analytics::open_read_only(&path).unwrap_err().to_string();
    let rw = Analytics::open(&path).unwrap_err().to_string();
    for m in [&ro, &rw] {
        assert!(m.contains("not a valid DuckDB database file"), "{m}");
        assert!(!m.contains("duckdb:/"), "{m}");
    }
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
}

/// `:memory:` given to `open` keeps DuckDB's meaning: an in-memory database, and no file (nor a
/// spill directory) of that name appears.
#[test]
fn open_of_colon_memory_is_in_memory_and_creates_no_file() {
    let db = Analytics::open(":memory:").unwrap();
    db.exec_batch("CREATE TABLE q AS SELECT 1 AS x").unwrap();
    db.close().unwrap();
    assert!(!Path::new(":memory:").exists());
    assert!(!Path::new("duckdb::memory:.tmp").exists());
    assert!(!Path::new("duckdb:").exists());
}
