//! Helpers shared by the analytics tests: SQL quoting for test queries, row and schema
//! inspection, error-kind assertions and directory walks.

use std::path::{Path, PathBuf};

use store::analytics::{Analytics, Rows, Value};
use store::{Error, ErrorKind};

/// `name` as a quoted SQL identifier (for test queries; the library has its own).
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `path` as a SQL string literal.
pub fn lit(path: &Path) -> String {
    format!("'{}'", path.to_str().expect("utf-8 path").replace('\'', "''"))
}

/// Rows of `table` (all columns), ordered by every column.
pub fn all_rows(db: &Analytics, table: &str) -> Vec<Vec<Value>> {
    db.query(&format!("SELECT * FROM {} ORDER BY ALL", ident(table)), &[])
        .expect("read table")
        .rows
}

/// `count(*)` of `table`.
pub fn count(db: &Analytics, table: &str) -> i64 {
    scalar(db, &format!("SELECT count(*) FROM {}", ident(table)))
        .as_i64()
        .expect("integer count")
}

/// The single value of a one-row, one-column query.
pub fn scalar(db: &Analytics, sql: &str) -> Value {
    let row = db.query_row(sql, &[]).expect("query").expect("one row");
    assert_eq!(row.values.len(), 1, "{sql} returned several columns");
    row.values.into_iter().next().expect("one value")
}

/// `(column_name, data_type)` of a base table, in column order.
pub fn columns(db: &Analytics, table: &str) -> Vec<(String, String)> {
    let rows = db
        .query(
            "SELECT column_name, data_type FROM information_schema.columns \
             WHERE table_schema = 'main' AND table_name = ? ORDER BY ordinal_position",
            &[Value::Text(table.into())],
        )
        .expect("information_schema.columns");
    rows.rows
        .into_iter()
        .map(|r| (text(&r[0]), text(&r[1])))
        .collect()
}

/// The text of a `Value::Text`, panicking on anything else.
#[track_caller]
pub fn text(v: &Value) -> String {
    match v {
        Value::Text(s) => s.clone(),
        other => panic!("expected text, got {other:?}"),
    }
}

/// Rows rendered as sortable strings: a multiset of rows that compares without `Ord` on `Value`.
pub fn multiset(rows: &[Vec<Value>]) -> Vec<String> {
    let mut out: Vec<String> = rows.iter().map(|r| format!("{r:?}")).collect();
    out.sort();
    out
}

/// Only the named columns of `rows`, in the given order.
pub fn project(rows: &Rows, names: &[&str]) -> Vec<Vec<Value>> {
    let idx: Vec<usize> = names
        .iter()
        .map(|n| {
            rows.columns
                .iter()
                .position(|c| c == n)
                .unwrap_or_else(|| panic!("no column {n:?} in {:?}", rows.columns))
        })
        .collect();
    rows.rows
        .iter()
        .map(|r| idx.iter().map(|&i| r[i].clone()).collect())
        .collect()
}

/// Asserts `result` failed with `kind`, and returns the error.
#[track_caller]
pub fn expect_kind<T: std::fmt::Debug>(result: store::Result<T>, kind: ErrorKind) -> Error {
    match result {
        Ok(v) => panic!("expected a {kind} error, got Ok({v:?})"),
        Err(e) => {
            assert_eq!(e.kind(), kind, "expected {kind}, got {e}");
            e
        }
    }
}

/// Asserts `result` is `Missing { kind }`, and returns the missing thing's name.
#[track_caller]
pub fn expect_missing<T: std::fmt::Debug>(result: store::Result<T>, kind: &str) -> String {
    match result {
        Err(Error::Missing { kind: k, name, .. }) => {
            assert_eq!(k, kind, "Missing names the wrong kind of thing ({name})");
            name
        }
        Ok(v) => panic!("expected Missing({kind}), got Ok({v:?})"),
        Err(e) => panic!("expected Missing({kind}), got {e}"),
    }
}

/// Every file under `dir`, recursively, sorted.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read_dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Entry names directly inside `dir`, sorted.
pub fn names_in(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("dir entry").file_name().to_string_lossy().into_owned())
        .collect();
    out.sort();
    out
}

/// Writes `contents` to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).expect("write fixture");
    path
}

/// Sets a file's modification time (to date it as older, or newer, than it is).
pub fn set_mtime(path: &Path, time: std::time::SystemTime) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(time)
        .unwrap();
}

/// Creates files in `dir` until one gets inode number `ino` (tmpfs numbers each mount's inodes
/// from the same counter start), and returns it; `None` once the numbers pass `ino`.
#[cfg(unix)]
pub fn file_with_inode(dir: &Path, ino: u64) -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    for i in 0..10_000 {
        let p = dir.join(format!("f{i}"));
        std::fs::write(&p, b"").unwrap();
        let got = std::fs::metadata(&p).unwrap().ino();
        if got == ino {
            return Some(p);
        }
        if got > ino {
            return None;
        }
    }
    None
}

/// The first column of `sql`'s rows as text (`None` for NULL; other kinds as their debug form).
pub fn texts(db: &Analytics, sql: &str) -> Vec<Option<String>> {
    db.query(sql, &[])
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .rows
        .into_iter()
        .map(|mut r| match r.remove(0) {
            Value::Null => None,
            Value::Text(s) => Some(s),
            other => Some(format!("{other:?}")),
        })
        .collect()
}

/// JSON object texts as a file `name` holds them: one per line for `.jsonl`, else an array.
pub fn json_records(name: &str, records: &[String]) -> String {
    if name.ends_with(".jsonl") {
        records.iter().map(|r| format!("{r}\n")).collect()
    } else {
        format!("[\n{}\n]\n", records.join(",\n"))
    }
}

/// Whether this is the child process [`in_own_process`] started for the test `name` (its path
/// in the binary, e.g. `kv::some_test`): in the parent, runs the test again in a child of its
/// own, asserts that it passed and returns `false`; in the child returns `true`, and the test
/// goes on with its body. For tests that change the working directory or read process-wide
/// figures (peak memory) that other tests running beside them would disturb.
pub fn in_own_process(name: &str) -> bool {
    const CHILD: &str = "STORE_TEST_OWN_PROCESS";
    if std::env::var_os(CHILD).is_some() {
        return true;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child failed:\n{stdout}\n{stderr}"
    );
    false
}

/// Writes `n` entries `group`/`k000000`… with `value(i)` into a KV store, in one transaction.
pub fn fill(store: &store::Store, group: &str, n: usize, value: impl Fn(usize) -> String) {
    use store::Kv;
    store
        .transaction(|tx| {
            for i in 0..n {
                tx.set(group, &format!("k{i:06}"), &value(i))?;
            }
            Ok(())
        })
        .unwrap();
}
