//! JSON values after DuckDB's sample appended to a JSON column are stored as written, JSONL
//! misfits name their line in odd files, and a Service waits for another process's hold on its
//! analytics file but not for its own process's (QA h155).

use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use store::analytics::Analytics;
use store::{Error, Service, ServiceConfig};

use crate::support::{json_records, texts, write};

const SAMPLE: usize = 20_480;

/// A key typed from the sample as BIGINT (or BOOLEAN) into a JSON column whose later values are
/// of other kinds: each must be stored as written, or the import refused as a whole.
fn late_value_case(
    ty: &str,
    early: &dyn Fn(usize) -> String,
    late: &str,
    _want: Option<&str>,
) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let mut bad = Vec::new();
    // What the typed (JSON) read stores: a first string makes the guess JSON.
    let baseline = {
        let db = Analytics::in_memory().unwrap();
        db.exec_batch(&format!("CREATE TABLE t(j {ty})")).unwrap();
        let records = vec![r#"{"j":"s"}"#.to_string(), format!(r#"{{"j":{late}}}"#)];
        let path = write(dir.path(), "b.jsonl", &json_records("b.jsonl", &records));
        db.import_file("t", &path, None, None).unwrap();
        texts(&db, "SELECT j::VARCHAR FROM t LIMIT 1 OFFSET 1")[0].clone()
    };
    let want = baseline.as_deref();
    for name in ["t.jsonl", "t.json"] {
        let db = Analytics::in_memory().unwrap();
        db.exec_batch(&format!("CREATE TABLE t(j {ty})")).unwrap();
        let mut records: Vec<String> = (0..SAMPLE + 100)
            .map(|i| format!(r#"{{"j":{}}}"#, early(i)))
            .collect();
        records.push(format!(r#"{{"j":{late}}}"#));
        let path = write(dir.path(), name, &json_records(name, &records));
        let r = db.import_file("t", &path, None, None);
        let n = texts(&db, "SELECT count(*)::VARCHAR FROM t")[0].clone().unwrap();
        match r {
            Ok(rows) => {
                let last = texts(
                    &db,
                    &format!("SELECT j::VARCHAR FROM t LIMIT 1 OFFSET {}", SAMPLE + 100),
                );
                let got = last[0].as_deref();
                let ok_rows = rows as usize == records.len() && n == records.len().to_string();
                println!("{ty} {name} late {late}: stored {got:?} rows {rows}");
                if got != want || !ok_rows {
                    bad.push(format!(
                        "{ty} {name}: late {late} stored as {got:?} (want {want:?}); rows {rows}/{n}"
                    ));
                }
            }
            Err(e) => {
                println!("{ty} {name} late {late}: refused: {e}");
                if n != "0" {
                    bad.push(format!(
                        "{ty} {name}: late {late} refused but table holds {n} rows"
                    ));
                }
                bad.push(format!("{ty} {name}: late {late} refused: {e}"));
            }
        }
    }
    bad
}

#[test]
fn bigint_guess_then_later_values_into_json() {
    let ints = |i: usize| i.to_string();
    let mut bad = Vec::new();
    for (late, want) in [
        ("1.5", "1.5"),
        ("2.0", "2.0"),
        ("1e3", "1e3"),
        (r#""12""#, r#""12""#),
        (r#""abc""#, r#""abc""#),
        (r#"{"a":1}"#, r#"{"a":1}"#),
        ("[1,2]", "[1,2]"),
        ("123456789012345678901234567890", "123456789012345678901234567890"),
        ("18446744073709551615", "18446744073709551615"),
        ("true", "true"),
    ] {
        bad.extend(late_value_case("JSON", &ints, late, Some(want)));
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

#[test]
fn boolean_guess_then_later_values_into_json() {
    let bools = |i: usize| {
        if i.is_multiple_of(3) {
            "null".to_string()
        } else {
            i.is_multiple_of(2).to_string()
        }
    };
    let mut bad = Vec::new();
    for (late, want) in [
        (r#""true""#, r#""true""#),
        ("1", "1"),
        ("0", "0"),
        (r#""yes""#, r#""yes""#),
        (r#"{"a":true}"#, r#"{"a":true}"#),
    ] {
        bad.extend(late_value_case("JSON", &bools, late, Some(want)));
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

/// Small files (the guess covers every record): integers and booleans with nulls, into JSON,
/// compared with the same values read as JSON (a first record that is a string makes the
/// guess JSON, so the typed read runs).
#[test]
fn integers_and_booleans_small_file_same_text_as_the_json_read() {
    let dir = tempfile::tempdir().unwrap();
    let mut bad = Vec::new();
    let values = [
        "0",
        "1",
        "-1",
        "9223372036854775807",
        "-9223372036854775808",
        "18446744073709551615",
        "null",
        "true",
        "false",
    ];
    for name in ["t.jsonl", "t.json"] {
        for v in values {
            // alone (guess = the value's type) and behind a string (guess JSON: the typed read).
            let mut got = Vec::new();
            for lead in [None, Some(r#""s""#)] {
                let db = Analytics::in_memory().unwrap();
                db.exec_batch("CREATE TABLE t(i INTEGER, j JSON)").unwrap();
                let mut records = Vec::new();
                if let Some(lead) = lead {
                    records.push(format!(r#"{{"i":0,"j":{lead}}}"#));
                }
                records.push(format!(r#"{{"i":1,"j":{v}}}"#));
                records.push(r#"{"i":2,"j":null}"#.to_string());
                records.push(r#"{"i":3}"#.to_string());
                let path = write(dir.path(), name, &json_records(name, &records));
                db.import_file("t", &path, None, None).unwrap();
                got.push(texts(
                    &db,
                    "SELECT coalesce(j::VARCHAR, '<SQL NULL>') FROM t WHERE i > 0 ORDER BY i",
                ));
            }
            println!("{name} {v}: guessed {:?} / json read {:?}", got[0], got[1]);
            let want_first = if v == "null" {
                "<SQL NULL>".to_string()
            } else {
                v.to_string()
            };
            if got[0] != got[1] || got[0][0].as_deref() != Some(want_first.as_str()) {
                bad.push(format!(
                    "{name} {v}: guessed read {:?}, JSON read {:?}",
                    got[0], got[1]
                ));
            }
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

/// JSON[] and MAP(VARCHAR, JSON) with integer/boolean guesses: stored as written.
#[test]
fn json_list_and_map_of_json_with_integer_guesses() {
    let dir = tempfile::tempdir().unwrap();
    let mut bad = Vec::new();
    for (ty, records, want) in [
        (
            "JSON[]",
            vec![r#"{"j":[1,2]}"#, r#"{"j":[true]}"#],
            vec!["[1, 2]", "[true]"],
        ),
        (
            "MAP(VARCHAR, JSON)",
            vec![r#"{"j":{"a":1}}"#, r#"{"j":{"b":2}}"#],
            vec!["{a=1}", "{b=2}"],
        ),
    ] {
        let db = Analytics::in_memory().unwrap();
        db.exec_batch(&format!("CREATE TABLE t(j {ty})")).unwrap();
        let records: Vec<String> = records.iter().map(|s| s.to_string()).collect();
        let path = write(dir.path(), "t.jsonl", &json_records("t.jsonl", &records));
        match db.import_file("t", &path, None, None) {
            Ok(_) => {
                let got = texts(&db, "SELECT j::VARCHAR FROM t");
                let want: Vec<Option<String>> = want.iter().map(|s| Some(s.to_string())).collect();
                println!("{ty}: {got:?}");
                if got != want {
                    bad.push(format!("{ty}: {got:?} want {want:?}"));
                }
            }
            Err(e) => bad.push(format!("{ty}: refused {e}")),
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

/// The line a JSONL misfit is reported on.
fn misfit_line(dir: &Path, name: &str, text: &str) -> Result<u64, String> {
    let db = Analytics::in_memory().unwrap();
    db.exec_batch("CREATE TABLE t(v INTEGER, s VARCHAR)").unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    match db.import_file("t", &path, None, None) {
        Err(Error::Parse {
            line: Some(l),
            reason,
            ..
        }) => {
            println!("  {reason}");
            println!(
                "  display: {}",
                Error::Parse {
                    op: "x",
                    source_name: String::new(),
                    line: Some(l),
                    reason: reason.clone()
                }
            );
            Ok(l)
        }
        other => Err(format!("{other:?}")),
    }
}

const OK: &str = r#"{"v":1,"s":5}"#;
const BAD: &str = r#"{"v":"x","s":6}"#;

#[test]
fn jsonl_misfit_lines_in_odd_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut bad = Vec::new();
    let long = format!(r#"{{"v":1,"s":"{}"}}"#, "y".repeat(3 << 20));
    let cases: Vec<(&str, String, u64)> = vec![
        ("first line", format!("{BAD}\n{OK}\n"), 1),
        ("blank lines", format!("\n\n{OK}\n\n{BAD}\n"), 5),
        ("whitespace lines", format!("{OK}\n \t \n   \n{BAD}\n"), 4),
        ("crlf blank", format!("{OK}\r\n\r\n{OK}\r\n\r\n{BAD}\r\n"), 5),
        // DuckDB refuses a BOM (the library names line 1): fine.
        ("bom", format!("\u{feff}{OK}\n\n{BAD}\n"), 1),
        ("bom then blank", format!("\u{feff}\n{OK}\n{BAD}\n"), 1),
        ("no final newline", format!("{OK}\n\n{BAD}"), 3),
        ("long line before", format!("{long}\n\n{OK}\n{BAD}\n"), 4),
        (
            "long misfit",
            format!("{OK}\n\n{}\n", long.replace(r#""v":1"#, r#""v":"x""#)),
            3,
        ),
        ("blank only lines at end", format!("{OK}\n{BAD}\n\n\n\n"), 2),
    ];
    for (what, text, want) in cases {
        let got = misfit_line(dir.path(), "t.jsonl", &text);
        println!("{what}: {got:?} (want {want})");
        if got != Ok(want) {
            bad.push(format!("{what}: got {got:?}, want {want}"));
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

/// A large file (DuckDB reads it in several buffers, maybe threads) with a blank line after every
/// record, the misfit near the end and one in the middle.
#[test]
fn jsonl_misfit_line_in_a_large_file_with_blank_lines() {
    let dir = tempfile::tempdir().unwrap();
    let mut bad = Vec::new();
    let pad = "p".repeat(300);
    let n = 120_000usize;
    for at in [n - 1, 30_000, 70_001] {
        let mut text = String::with_capacity(n * 330);
        for i in 0..n {
            if i == at {
                text.push_str(&format!(r#"{{"v":"x","s":"{pad}"}}"#));
            } else {
                text.push_str(&format!(r#"{{"v":{i},"s":"{pad}"}}"#));
            }
            text.push_str("\n\n");
        }
        let want = (2 * at + 1) as u64;
        let got = misfit_line(dir.path(), "big.jsonl", &text);
        println!("misfit record {}: {got:?} (want line {want})", at + 1);
        if got != Ok(want) {
            bad.push(format!("record {}: got {got:?}, want {want}", at + 1));
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

/// DuckDB's own JSON read stores -0 as 0, in both paths (not this commit's doing).
#[test]
fn minus_zero_is_zero_either_way() {
    let dir = tempfile::tempdir().unwrap();
    let db = Analytics::in_memory().unwrap();
    db.exec_batch("CREATE TABLE t(j JSON)").unwrap();
    let path = write(dir.path(), "t.jsonl", "{\"j\":\"s\"}\n{\"j\":-0}\n");
    db.import_file("t", &path, None, None).unwrap();
    assert_eq!(
        texts(&db, "SELECT j::VARCHAR FROM t LIMIT 1 OFFSET 1"),
        vec![Some("0".to_string())]
    );
}

// ---- 1e4c078: Service::analytics busy at once only for a holder in this process ----

const CHILD_ENV: &str = "H155_HOLD";

/// Not a test of its own: the child half of the service tests below. Opens `H155_HOLD`
/// (read-write, or read-only with `H155_RO`), says `ready`, and holds it until stdin ends.
#[test]
fn child_helper_holds_the_file() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let db = if std::env::var_os("H155_RO").is_some() {
        Analytics::open_read_only(&path).expect("child: open read-only")
    } else {
        Analytics::open(&path).expect("child: open")
    };
    println!("ready");
    let _ = std::io::stdin().read_line(&mut String::new());
    db.close().expect("child: close");
}

struct Child(std::process::Child);

impl Child {
    fn hold(path: &Path, read_only: bool) -> Child {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args([
            "--exact",
            "late_json_values_and_holders::child_helper_holds_the_file",
            "--nocapture",
        ])
        .env(CHILD_ENV, path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
        if read_only {
            cmd.env("H155_RO", "1");
        }
        let mut child = cmd.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.contains("ready") {
                    let _ = tx.send(());
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(60)).expect("child ready");
        Child(child)
    }
    fn release(&mut self) {
        drop(self.0.stdin.take());
        let _ = self.0.wait();
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        drop(self.0.stdin.take());
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn service(home: &Path, timeout: Duration) -> Service {
    let mut config = ServiceConfig::new(home);
    config.store.busy_timeout = timeout;
    Service::open(config).unwrap()
}

fn create_file(home: &Path) {
    let s = service(home, Duration::from_secs(5));
    s.call("store/sql", json!({"sql": "SELECT 1"})).unwrap();
    s.close().unwrap();
}

/// Another process holds it read-write, then lets go after 3 s: the Service waits and opens.
#[test]
fn another_process_holder_is_still_waited_for() {
    for read_only in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        create_file(dir.path());
        let mut child = Child::hold(&dir.path().join("workspace.duckdb"), read_only);
        let s = service(dir.path(), Duration::from_secs(30));
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(3));
            child.release();
        });
        let started = Instant::now();
        let r = s.call("store/sql", json!({"sql": "SELECT 1"}));
        let took = started.elapsed();
        releaser.join().unwrap();
        println!(
            "read_only child {read_only}: {:?} after {took:?}",
            r.as_ref().map(|_| ())
        );
        assert!(r.is_ok(), "read_only child {read_only}: {r:?} after {took:?}");
        assert!(took >= Duration::from_secs(2), "{took:?}");
        s.close().unwrap();
    }
}

/// Another process holds it past the busy timeout: busy after the timeout, not at once.
#[test]
fn another_process_holder_busy_after_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    create_file(dir.path());
    let _child = Child::hold(&dir.path().join("workspace.duckdb"), false);
    let s = service(dir.path(), Duration::from_secs(2));
    let started = Instant::now();
    let err = s.call("store/sql", json!({"sql": "SELECT 1"})).unwrap_err();
    let took = started.elapsed();
    println!("{err} after {took:?}");
    assert!(err.is_busy(), "{err}");
    assert!(took >= Duration::from_millis(1900), "{took:?}");
}

/// The same with a home whose path holds the in-process marker text: does DuckDB's lock error
/// (which names the file) make the Service give up at once?
#[test]
fn another_process_holder_with_the_marker_text_in_the_path() {
    let root = tempfile::tempdir().unwrap();
    let home = root
        .path()
        .join("x in this process (under this name or another link to it)");
    std::fs::create_dir(&home).unwrap();
    create_file(&home);
    let _child = Child::hold(&home.join("workspace.duckdb"), false);
    let s = service(&home, Duration::from_secs(2));
    let started = Instant::now();
    let err = s.call("store/sql", json!({"sql": "SELECT 1"})).unwrap_err();
    let took = started.elapsed();
    println!("{err} after {took:?}");
    assert!(err.is_busy(), "{err}");
    assert!(
        took >= Duration::from_millis(1900),
        "gave up at once: {took:?}: {err}"
    );
}

/// A read-only handle of this process: busy at once (documented), with a message naming
/// read-only handles; the Service opens once it is closed.
#[test]
fn read_only_handle_in_this_process() {
    let dir = tempfile::tempdir().unwrap();
    create_file(dir.path());
    let ro = Analytics::open_read_only(dir.path().join("workspace.duckdb")).unwrap();
    let s = service(dir.path(), Duration::from_secs(20));
    let started = Instant::now();
    let err = s.call("store/sql", json!({"sql": "SELECT 1"})).unwrap_err();
    let took = started.elapsed();
    println!("{err} after {took:?}");
    assert!(err.is_busy(), "{err}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(err.to_string().contains("read-only"), "{err}");
    // released on another thread while a second call waits? It does not wait: still busy.
    ro.close().unwrap();
    s.call("store/sql", json!({"sql": "SELECT 1"})).unwrap();
    s.close().unwrap();
}

/// Held through a symlinked home (another link to the same file): busy at once too.
#[cfg(unix)]
#[test]
fn holder_through_a_symlink_in_this_process() {
    let dir = tempfile::tempdir().unwrap();
    create_file(dir.path());
    let link = tempfile::tempdir().unwrap();
    let linked = link.path().join("home");
    std::os::unix::fs::symlink(dir.path(), &linked).unwrap();
    let first = service(&linked, Duration::from_secs(5));
    first.call("store/sql", json!({"sql": "SELECT 1"})).unwrap();
    let s = service(dir.path(), Duration::from_secs(20));
    let started = Instant::now();
    let err = s.call("store/sql", json!({"sql": "SELECT 1"})).unwrap_err();
    println!("{err} after {:?}", started.elapsed());
    assert!(
        err.is_busy() && started.elapsed() < Duration::from_secs(5),
        "{err}"
    );
    first.close().unwrap();
    s.call("store/sql", json!({"sql": "SELECT 1"})).unwrap();
}
