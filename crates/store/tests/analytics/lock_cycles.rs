//! One process using the KV store and the analytics layer from several threads: waits that
//! form a cycle between a KV transaction and an analytics connection end with a busy error
//! after 30 s (the least a thread waits for its store's writer), never in a hang. Each test
//! was a permanent deadlock in an earlier version (the QA pass h17), and runs under a watchdog.
//! Threads with a small `busy_timeout` still queue for the writer rather than fail (h18).

use std::sync::Arc;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use store::analytics::ImportProgress;
use store::{Kv, Service, ServiceConfig};

/// Short: threads of one handle must still queue for its writer (30 s at least).
const BUSY_TIMEOUT: Duration = Duration::from_millis(1);

fn service(dir: &std::path::Path) -> Arc<Service> {
    let mut config = ServiceConfig::new(dir);
    config.store.busy_timeout = BUSY_TIMEOUT;
    Arc::new(Service::open(config).unwrap())
}

/// Runs `scenario` on a thread of its own and fails if it has not finished within 120 s.
fn within_2_minutes(name: &str, scenario: impl FnOnce() + Send + 'static) {
    let (done, finished) = mpsc::channel();
    thread::spawn(move || {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(scenario));
        let _ = done.send(outcome);
    });
    match finished.recv_timeout(Duration::from_secs(120)) {
        Ok(Ok(())) => {}
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => panic!("HANG: {name} did not finish within 120 s"),
    }
}

/// A transaction closure queries analytics while another thread, holding a `query_arrow`
/// result (and so the connection), writes to the store: the writer gives up after 30 s, drops
/// its result, and the transaction goes on.
#[test]
fn a_transaction_waiting_for_a_connection_whose_holder_writes_kv_ends_in_busy_not_a_hang() {
    within_2_minutes("transaction vs held query_arrow", || {
        let dir = tempfile::tempdir().unwrap();
        let svc = service(dir.path());
        let db = svc.analytics().unwrap();
        db.exec_batch("CREATE TABLE big AS SELECT range AS n FROM range(100000)")
            .unwrap();
        let (in_transaction, wait_for_transaction) = mpsc::channel();
        let (holding, wait_for_holder) = mpsc::channel();
        let transaction = {
            let svc = svc.clone();
            thread::spawn(move || {
                svc.store().transaction(|tx| {
                    tx.set("a", "k", "v")?;
                    in_transaction.send(()).unwrap();
                    wait_for_holder.recv().unwrap();
                    svc.analytics()?.query("SELECT count(*) FROM big", &[])?;
                    Ok(())
                })
            })
        };
        let holder = {
            let svc = svc.clone();
            thread::spawn(move || {
                wait_for_transaction.recv().unwrap();
                let db = svc.analytics().unwrap();
                let mut batches = db.query_arrow("SELECT * FROM big", &[]).unwrap();
                let _ = batches.next();
                holding.send(()).unwrap();
                thread::sleep(Duration::from_millis(100));
                let written = svc.store().set("c", "k", "v");
                drop(batches);
                written
            })
        };
        let written = holder.join().unwrap();
        let err = written.expect_err("the writer cannot get the store while the transaction runs");
        assert!(err.is_busy(), "{err}");
        transaction.join().unwrap().expect("the transaction commits");
        assert!(svc.store().exists("a", "k").unwrap());
    });
}

/// An export started inside a transaction closure, whose progress callback (on a helper
/// thread) writes to the same store: the callback's write gives up after 30 s and the export
/// and transaction finish.
#[test]
fn a_progress_callback_writing_the_store_its_callers_transaction_holds_ends_in_busy() {
    within_2_minutes("progress write inside transaction", || {
        let dir = tempfile::tempdir().unwrap();
        let svc = service(dir.path());
        let db = svc.analytics().unwrap();
        // Large enough that the export outlasts DuckDB's wait before it reports progress (about
        // 2 s): on a fast machine 4M rows finished before any report reached the helper.
        db.exec_batch("CREATE TABLE big AS SELECT range AS n, repeat('z', 30) AS pad FROM range(12000000)")
            .unwrap();
        let caller = thread::current().id();
        let busy_writes = std::sync::atomic::AtomicUsize::new(0);
        let progress = |_: ImportProgress| {
            if thread::current().id() != caller
                && svc.store().set("progress", "k", "v").is_err_and(|e| e.is_busy())
            {
                busy_writes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        };
        let path = dir.path().join("big.parquet");
        let rows = svc
            .store()
            .transaction(|tx| {
                tx.set("g", "k", "v")?;
                db.export_parquet_with("big", &path, "zstd", Some(&progress))
            })
            .expect("the export and its transaction finish");
        assert_eq!(rows, 12_000_000);
        assert!(svc.store().exists("g", "k").unwrap());
        // The scenario ran: the helper's writes waited for the transaction and gave up.
        assert!(
            busy_writes.into_inner() > 0,
            "no progress report reached the helper"
        );
    });
}

/// `Service::analytics` first used inside a KV transaction opens the database (attaching the
/// store binds the `kv_entries` view, which read nothing); querying `kv_entries` there is
/// still refused.
#[test]
fn the_service_opens_analytics_inside_a_transaction_but_kv_entries_stays_refused_there() {
    let dir = tempfile::tempdir().unwrap();
    let svc = service(dir.path());
    svc.store()
        .transaction(|tx| {
            tx.set("g", "first", "1")?;
            svc.analytics()?
                .exec_batch("CREATE TABLE first_use AS SELECT 1 AS x")
        })
        .expect("analytics opens inside a transaction");
    let err = svc
        .store()
        .transaction(|tx| {
            tx.set("g", "inside", "1")?;
            svc.analytics()?
                .query("SELECT count(*) FROM kv_entries", &[])
                .map(drop)
        })
        .unwrap_err();
    assert_eq!(err.field(), Some("transaction"), "{err}");
    assert!(!svc.store().exists("g", "inside").unwrap());
    assert!(svc.store().exists("g", "first").unwrap());
}

/// With a `busy_timeout` of 1 ms (meant for other processes), threads of one handle still
/// queue for its writer: none of 4 × 300 increments fails.
#[test]
fn threads_of_one_handle_queue_for_the_writer_whatever_the_busy_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let svc = service(dir.path());
    thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for _ in 0..300 {
                    svc.store().increment("g", "n", 1).unwrap();
                }
            });
        }
    });
    assert_eq!(svc.store().get("g", "n").unwrap(), "1200");
}
