//! Opening databases: read-write files (created on demand), read-only files, in-memory
//! databases, the failures that must create nothing, and what DuckDB allows across processes
//! (one read-write opener or any number of read-only openers, never both).

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::Duration;

use store::ErrorKind;
use store::analytics::{Analytics, Value};

use crate::support::{count, expect_kind, expect_missing, scalar};

/// Set by the cross-process test for the child it spawns: the database file to hold.
const CHILD_ENV: &str = "ANALYTICS_CHILD";
/// Well beyond any wait here, for the services that must outlast the child's hold.
const CHILD_HOLD: Duration = Duration::from_secs(3);

#[test]
fn open_creates_a_file_at_a_path_with_spaces_and_reopens_it() {
    let dir = tempfile::tempdir().unwrap();
    let parent = dir.path().join("my data");
    std::fs::create_dir(&parent).unwrap();
    let path = parent.join("ware house.duckdb");

    let db = Analytics::open(&path).unwrap();
    assert!(path.is_file());
    assert_eq!(db.path(), Some(path.as_path()));
    assert!(!db.is_read_only());
    db.exec_batch("CREATE TABLE t AS SELECT * FROM range(5)").unwrap();
    db.close().unwrap();

    let again = Analytics::open(&path).unwrap();
    assert_eq!(count(&again, "t"), 5);
    again.close().unwrap();

    let ro = Analytics::open_read_only(&path).unwrap();
    assert!(ro.is_read_only());
    assert_eq!(count(&ro, "t"), 5);
}

#[test]
fn open_with_a_missing_parent_directory_is_io_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no such dir");
    let err = expect_kind(Analytics::open(missing.join("w.duckdb")), ErrorKind::Io);
    assert_eq!(err.op(), "Analytics::open");
    assert!(!missing.exists(), "open created the missing parent directory");
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "open left something behind"
    );
}

#[test]
fn open_read_only_of_a_missing_file_is_missing_file_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.duckdb");
    let name = expect_missing(Analytics::open_read_only(&path), "file");
    assert!(name.contains("absent.duckdb"), "Missing names {name:?}");
    assert!(!path.exists());
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
}

#[test]
fn open_of_a_path_containing_nul_is_invalid_input() {
    let err = expect_kind(Analytics::open("bad\0name.duckdb"), ErrorKind::InvalidInput);
    assert_eq!(err.field(), Some("path"));
    let err = expect_kind(
        Analytics::open_read_only("bad\0name.duckdb"),
        ErrorKind::InvalidInput,
    );
    assert_eq!(err.field(), Some("path"));
}

#[test]
fn open_of_a_file_that_is_not_a_duckdb_database_is_a_duckdb_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("text.duckdb");
    std::fs::write(
        &path,
        "this is not a database, just some text that is long enough",
    )
    .unwrap();
    expect_kind(Analytics::open(&path), ErrorKind::DuckDb);
    expect_kind(Analytics::open_read_only(&path), ErrorKind::DuckDb);
}

#[test]
fn read_only_database_refuses_create_and_insert_with_duckdb_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.duckdb");
    let db = Analytics::open(&path).unwrap();
    db.exec_batch("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1)")
        .unwrap();
    db.close().unwrap();

    let ro = Analytics::open_read_only(&path).unwrap();
    let errors = [
        expect_kind(ro.exec_batch("CREATE TABLE u (x INTEGER)"), ErrorKind::DuckDb),
        expect_kind(
            ro.exec("INSERT INTO t VALUES (?)", &[Value::Int(2)]),
            ErrorKind::DuckDb,
        ),
        expect_kind(ro.exec_batch("INSERT INTO t VALUES (3)"), ErrorKind::DuckDb),
        expect_kind(ro.ensure_scoring_tables(), ErrorKind::DuckDb),
    ];
    for err in errors {
        // Clear: it says why and what to do.
        let text = err.to_string();
        assert!(
            text.contains("read-only") && text.contains("Analytics::open"),
            "{text}"
        );
    }
    assert!(!ro.table_exists("u").unwrap());
    assert_eq!(count(&ro, "t"), 1);

    // An import is refused the same way: the database is read-only, the file is fine.
    let csv = dir.path().join("good.csv");
    std::fs::write(&csv, "x\n4\n").unwrap();
    for table in ["t", "new_table"] {
        let err = expect_kind(ro.import_csv(table, &csv, &Default::default()), ErrorKind::DuckDb);
        assert!(err.to_string().contains("read-only"), "{err}");
    }
    assert!(!ro.table_exists("new_table").unwrap());
    assert_eq!(count(&ro, "t"), 1);

    // Reading is what a read-only handle is for: exports of tables and queries work.
    let out = dir.path().join("t.parquet");
    assert_eq!(ro.export_parquet("SELECT x * 2 AS y FROM t", &out).unwrap(), 1);
    assert_eq!(ro.export_parquet("t", &out).unwrap(), 1);
}

#[test]
fn two_read_only_openers_in_one_process_both_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.duckdb");
    let db = Analytics::open(&path).unwrap();
    db.exec_batch("CREATE TABLE t AS SELECT * FROM range(7)").unwrap();
    db.close().unwrap();

    let a = Analytics::open_read_only(&path).unwrap();
    let b = Analytics::open_read_only(&path).unwrap();
    assert_eq!(count(&a, "t"), 7);
    assert_eq!(count(&b, "t"), 7);
    a.close().unwrap();
    assert_eq!(count(&b, "t"), 7);
}

#[test]
fn in_memory_databases_are_private_and_have_no_path() {
    let a = Analytics::in_memory().unwrap();
    let b = Analytics::in_memory().unwrap();
    assert!(a.path().is_none());
    a.exec_batch("CREATE TABLE t (x INTEGER)").unwrap();
    assert!(a.table_exists("t").unwrap());
    assert!(!b.table_exists("t").unwrap());
    assert_eq!(scalar(&b, "SELECT 1"), Value::Int(1));
}

#[test]
fn analytics_is_send_and_sync_and_shared_by_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Analytics>();

    let db = std::sync::Arc::new(Analytics::in_memory().unwrap());
    db.exec_batch("CREATE TABLE t (x BIGINT)").unwrap();
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let db = db.clone();
            std::thread::spawn(move || {
                for j in 0..25 {
                    db.exec("INSERT INTO t VALUES (?)", &[Value::Int(i * 100 + j)])
                        .unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(count(&db, "t"), 100);
}

/// Not a test of its own: the child half of
/// [`another_process_holding_the_file_read_write_locks_out_both_kinds_of_open`]. It returns at
/// once unless `ANALYTICS_CHILD` names a database file, which it then opens read-write, reports
/// `ready`, and holds until its standard input ends (the parent lets go of it), so a loaded
/// machine cannot end the hold before the parent has seen it.
#[test]
fn child_process_helper_holds_a_file_read_write_when_asked() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let db = Analytics::open(&path).expect("child: open read-write");
    db.exec_batch("CREATE TABLE IF NOT EXISTS held AS SELECT 1 AS x")
        .expect("child: write");
    println!("ready");
    let _ = std::io::stdin().read_line(&mut String::new());
    db.close().expect("child: close");
}

#[test]
fn another_process_holding_the_file_read_write_locks_out_both_kinds_of_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.duckdb");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "open::child_process_helper_holds_a_file_read_write_when_asked",
            "--include-ignored",
            "--nocapture",
        ])
        .env(CHILD_ENV, &path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child test process");

    // Wait (bounded) for the child's "ready" line; keep draining its output afterwards.
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.contains("ready") {
                let _ = tx.send(());
            }
        }
    });
    if rx.recv_timeout(Duration::from_secs(60)).is_err() {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the child process never reported ready");
    }

    // While the child holds the file read-write, neither kind of open works here: both fail at
    // once with a busy error.
    let read_only = Analytics::open_read_only(&path);
    let read_write = Analytics::open(&path);
    for (what, result) in [("open_read_only", read_only), ("open", read_write)] {
        let err = expect_kind(result, ErrorKind::DuckDb);
        assert!(
            err.to_string().to_lowercase().contains("lock"),
            "{what} failed without mentioning the lock: {err}"
        );
        assert!(err.is_busy(), "{what}: {err}");
        // The hint holds whichever way the other process opened it.
        assert!(
            err.to_string()
                .contains("another process has this database open (DuckDB lets one process write"),
            "{what}: {err}"
        );
    }
    // A Service waits for the file up to its store's busy timeout: a short one gives up busy...
    let service_with = |name: &str, wait: Duration| {
        let home = dir.path().join(name);
        let mut config = store::ServiceConfig::new(&home);
        config.analytics_path = Some(path.clone());
        config.store.busy_timeout = wait;
        store::Service::open(config).unwrap()
    };
    // Closing the service ends a wait for the file; nothing is left open in this process.
    let closing = service_with("closing", CHILD_HOLD * 10);
    std::thread::scope(|s| {
        let waiting = s.spawn(|| closing.analytics().map(|_| ()));
        std::thread::sleep(Duration::from_millis(100));
        closing.close().unwrap();
        let err = waiting.join().unwrap().unwrap_err();
        assert!(err.is_closed(), "{err}");
    });
    let impatient = service_with("impatient", Duration::from_millis(300));
    let started = std::time::Instant::now();
    let err = impatient.analytics().unwrap_err();
    assert!(err.is_busy(), "{err}");
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "gave up after {:?}",
        started.elapsed()
    );
    // ...and a patient one opens the file once the child lets go.
    let patient = service_with("patient", CHILD_HOLD * 10);
    let child_stdin = child.stdin.take();
    std::thread::scope(|s| {
        let waiting = s.spawn(|| patient.analytics().map(|db| count(db, "held")));
        std::thread::sleep(Duration::from_millis(200));
        drop(child_stdin);
        assert_eq!(waiting.join().unwrap().unwrap(), 1);
    });
    patient.close().unwrap();

    let status = child.wait().unwrap();
    reader.join().unwrap();
    assert!(status.success(), "child process failed: {status}");

    // Once the child has exited, both kinds of open work and see its write.
    let ro = Analytics::open_read_only(&path).unwrap();
    assert_eq!(count(&ro, "held"), 1);
    ro.close().unwrap();
    let rw = Analytics::open(&path).unwrap();
    assert_eq!(count(&rw, "held"), 1);
}

#[test]
fn one_process_gets_one_read_write_handle_or_any_number_of_read_only_ones_per_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.duckdb");
    let link = dir.path().join("link.duckdb");
    let writer = Analytics::open(&path).unwrap();
    writer
        .exec_batch("CREATE TABLE from_writer AS SELECT 1 AS x")
        .unwrap();
    // Before: a second handle opened and the two overwrote each other's checkpoints.
    let err = expect_kind(Analytics::open(&path), ErrorKind::DuckDb);
    assert!(err.to_string().contains("already open read-write"), "{err}");
    // Busy, as a refusal for another process's handle is (h151: it was not).
    assert!(err.is_busy(), "{err}");
    assert!(!err.to_string().contains("another process"), "{err}");
    let err = expect_kind(Analytics::open_read_only(&path), ErrorKind::DuckDb);
    assert!(err.is_busy(), "{err}");
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(&path, &link).unwrap();
        expect_kind(Analytics::open(&link), ErrorKind::DuckDb);
    }

    writer.close().unwrap();
    let second = if cfg!(unix) { &link } else { &path };
    let readers = [
        Analytics::open_read_only(&path).unwrap(),
        Analytics::open_read_only(second).unwrap(),
    ];
    assert_eq!(count(&readers[1], "from_writer"), 1);
    expect_kind(Analytics::open(&path), ErrorKind::DuckDb);
    drop(readers);

    let again = Analytics::open(&path).unwrap();
    again
        .exec_batch("CREATE TABLE from_again AS SELECT 2 AS x")
        .unwrap();
    drop(again);
    let counts = Analytics::open(&path).unwrap().table_counts().unwrap();
    assert_eq!(counts.keys().collect::<Vec<_>>(), ["from_again", "from_writer"]);
}

#[test]
fn memory_databases_opened_by_name_are_independent_and_never_conflict() {
    let a = Analytics::open(":memory:").unwrap();
    let b = Analytics::open(":memory:").unwrap();
    a.exec_batch("CREATE TABLE only_in_a AS SELECT 1 AS x").unwrap();
    assert!(!b.table_exists("only_in_a").unwrap());
}

#[cfg(unix)]
#[test]
fn a_dangling_symlink_claims_the_file_the_open_creates_through_it() {
    let dir = tempfile::tempdir().unwrap();
    let (real, link) = (dir.path().join("real.duckdb"), dir.path().join("link.duckdb"));
    std::os::unix::fs::symlink("real.duckdb", &link).unwrap();
    let through_link = Analytics::open(&link).unwrap();
    assert!(real.is_file());
    expect_kind(Analytics::open(&real), ErrorKind::DuckDb);
    drop(through_link);
    Analytics::open(&real).unwrap();
}

#[test]
fn a_failed_open_leaves_the_file_free_for_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("not-a-database");
    std::fs::write(&path, b"plain text, not DuckDB").unwrap();
    expect_kind(Analytics::open(&path), ErrorKind::DuckDb);
    std::fs::remove_file(&path).unwrap();
    Analytics::open(&path).unwrap().close().unwrap();
}

#[test]
fn a_call_from_a_thread_local_destructor_works_instead_of_aborting() {
    struct QueryOnExit(std::sync::Arc<Analytics>, std::sync::mpsc::Sender<bool>);
    impl Drop for QueryOnExit {
        fn drop(&mut self) {
            let _ = self.1.send(self.0.query_row("SELECT 1", &[]).is_ok());
        }
    }
    thread_local! {
        static SLOT: std::cell::RefCell<Option<QueryOnExit>> = const { std::cell::RefCell::new(None) };
    }
    let db = std::sync::Arc::new(Analytics::in_memory().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || SLOT.with(|slot| *slot.borrow_mut() = Some(QueryOnExit(db, tx))))
        .join()
        .unwrap();
    assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok(true));
}

#[test]
fn a_database_path_with_a_question_mark_is_refused_before_duckdb_misreads_it() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("q?x");
    std::fs::create_dir(&home).unwrap();
    for result in [
        Analytics::open(home.join("w.duckdb")),
        Analytics::open_read_only(home.join("w.duckdb")),
    ] {
        let err = expect_kind(result, ErrorKind::InvalidInput);
        assert_eq!(err.field(), Some("path"), "{err}");
        assert!(err.to_string().contains('?'), "{err}");
    }
}

/// A hard link is another name for the same file: a second read-write handle through it would
/// be a second DuckDB instance overwriting the first one's checkpoints. Refused both ways, for
/// a file the first open created as well as one that existed.
#[test]
fn a_hard_link_to_an_open_database_is_the_same_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.duckdb");
    let link = dir.path().join("b.duckdb");
    let db = Analytics::open(&path).unwrap(); // creates the file
    db.exec_batch("CREATE TABLE from_first AS SELECT 1 AS x").unwrap();
    std::fs::hard_link(&path, &link).unwrap();
    let err = expect_kind(Analytics::open(&link), ErrorKind::DuckDb);
    assert!(err.to_string().contains("already open"), "{err}");
    expect_kind(Analytics::open_read_only(&link), ErrorKind::DuckDb);
    db.close().unwrap();

    let ro = Analytics::open_read_only(&link).unwrap();
    expect_kind(Analytics::open(&path), ErrorKind::DuckDb);
    let ro_too = Analytics::open_read_only(&path).unwrap();
    drop((ro, ro_too));
    let db = Analytics::open(&link).unwrap();
    assert_eq!(count(&db, "from_first"), 1);
}

/// DuckDB opens a Parquet file as an empty in-memory database, where every write would vanish
/// on close; the store refuses it like any other file that is not a database, and leaves it
/// byte for byte.
#[test]
fn a_parquet_file_is_not_opened_as_a_database_and_stays_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let parquet = dir.path().join("p.parquet");
    Analytics::in_memory()
        .unwrap()
        .export_parquet("SELECT 1 AS a", &parquet)
        .unwrap();
    let before = std::fs::read(&parquet).unwrap();
    let err = expect_kind(Analytics::open(&parquet), ErrorKind::DuckDb);
    assert!(err.to_string().contains("Parquet file"), "{err}");
    expect_kind(Analytics::open_read_only(&parquet), ErrorKind::DuckDb);
    assert_eq!(std::fs::read(&parquet).unwrap(), before);
}

/// No handle downloads DuckDB extensions on its own: a query that needs one an embedded store
/// has not installed fails naming `INSTALL`, instead of fetching code from the network (or
/// waiting on one that drops packets). Extensions already installed still load on demand.
#[test]
fn no_handle_installs_extensions_from_the_network_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.duckdb");
    drop(Analytics::open(&path).unwrap());
    let handles = [
        Analytics::in_memory().unwrap(),
        Analytics::open_read_only(&path).unwrap(),
    ];
    for db in &handles {
        let settings = "SELECT current_setting('autoinstall_known_extensions')::VARCHAR, \
                        current_setting('autoload_known_extensions')::VARCHAR";
        let row = db.query_row(settings, &[]).unwrap().unwrap().values;
        assert_eq!(row, [Value::Text("false".into()), Value::Text("true".into())]);
        // `icu` is not built in: unless this machine's DuckDB installed it, the query fails.
        if let Err(e) = db.query("SELECT current_setting('TimeZone')", &[]) {
            let message = e.to_string();
            assert!(message.contains("INSTALL icu"), "{message}");
            assert!(!message.contains("download"), "{message}");
        }
    }
    drop(handles);
    let db = Analytics::open(&path).unwrap();
    assert_eq!(
        scalar(
            &db,
            "SELECT current_setting('autoinstall_known_extensions')::VARCHAR"
        ),
        Value::Text("false".into())
    );
}
