//! A store's Clock that queries `kv_entries` of the store it serves (h183, adopted). The
//! refusal is checked in the table function's `bind`, on the thread that issued the query:
//! its `func` may run on a DuckDB worker, where the mark of the thread reading the clock is
//! not visible. The nesting is bounded so a missed refusal shows as depth, not a hang.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::Duration;

use store::analytics::Analytics;
use store::{Clock, Kv, Store, StoreConfig, UnixMillis};

const T: i64 = 2_000_000;

struct ScanClock {
    db: OnceLock<Arc<Analytics>>,
    depth: AtomicUsize,
    max: AtomicUsize,
    results: Mutex<Vec<String>>,
}

impl ScanClock {
    fn new() -> Arc<ScanClock> {
        Arc::new(ScanClock {
            db: OnceLock::new(),
            depth: AtomicUsize::new(0),
            max: AtomicUsize::new(0),
            results: Mutex::new(Vec::new()),
        })
    }
}

impl Clock for ScanClock {
    fn now_ms(&self) -> UnixMillis {
        let Some(db) = self.db.get() else {
            return T;
        };
        let depth = self.depth.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(depth, Ordering::SeqCst);
        if depth <= 4 {
            let r = db.query_row("SELECT count(*) FROM kv_entries", &[]);
            self.results.lock().unwrap().push(format!(
                "{:?}",
                r.map(|r| r.map(|r| r.values)).map_err(|e| e.to_string())
            ));
        }
        self.depth.fetch_sub(1, Ordering::SeqCst);
        T
    }
}

/// A store on `config` holding `g/k`, whose clock scans it through an analytics connection
/// of its own, attached to the store it serves.
fn store_with_scanning_clock(config: StoreConfig) -> (Store, Arc<ScanClock>) {
    let clock = ScanClock::new();
    let store = Store::open_with(
        config
            .with_clock(clock.clone())
            .with_purge_interval(Duration::ZERO),
    )
    .unwrap();
    store.set("g", "k", "v").unwrap();
    let db = Arc::new(Analytics::in_memory().unwrap());
    db.attach_kv(&store).unwrap();
    let _ = clock.db.set(db);
    (store, clock)
}

#[test]
fn a_clock_that_scans_its_own_store_fails_at_once() {
    for (name, file) in [("file", true), ("memory", false)] {
        let dir = tempfile::tempdir().unwrap();
        let config = if file {
            StoreConfig::file(dir.path().join("s.db"))
        } else {
            StoreConfig::memory()
        };
        let (store, clock) = store_with_scanning_clock(config);
        let (tx, rx) = mpsc::channel();
        let s2 = store.clone();
        std::thread::spawn(move || {
            let _ = tx.send(s2.get("g", "k").map_err(|e| e.to_string()));
        });
        let outer = rx.recv_timeout(Duration::from_secs(60));
        let results = clock.results.lock().unwrap().clone();
        let max = clock.max.load(Ordering::SeqCst);
        eprintln!("{name}: outer {outer:?}, clock nesting {max}, scans: {results:?}");
        assert!(outer.is_ok(), "{name}: hung");
        assert!(
            max <= 1,
            "{name}: the clock's scan read the clock again ({max} deep)"
        );
        // The clock's first scan (from the thread reading the clock) must have been refused.
        assert!(
            results.first().is_some_and(|r| r.contains("Clock")),
            "{name}: {results:?}"
        );
    }
}

/// Same, with the scan issued by the clock from a query the *store's user* started: a
/// `kv_entries` scan whose `open_source` reads the clock, which scans again.
#[test]
fn a_scan_whose_clock_scans_again() {
    let dir = tempfile::tempdir().unwrap();
    let (store, clock) = store_with_scanning_clock(StoreConfig::file(dir.path().join("s.db")));
    let user_db = Analytics::in_memory().unwrap();
    user_db.attach_kv(&store).unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let r = user_db
            .query_row("SELECT count(*) FROM kv_entries", &[])
            .map(|r| r.map(|r| r.values))
            .map_err(|e| e.to_string());
        let _ = tx.send(format!("{r:?}"));
    });
    let outer = rx.recv_timeout(Duration::from_secs(60));
    let results = clock.results.lock().unwrap().clone();
    let max = clock.max.load(Ordering::SeqCst);
    eprintln!("outer {outer:?}, clock nesting {max}, scans: {results:?}");
    assert!(outer.is_ok(), "hung");
    assert!(max <= 1, "nesting {max}");
}

/// A Clock that panics during a `kv_entries` scan (read in DuckDB's table function callback):
/// the query fails (the panic does not unwind through DuckDB) and the store stays usable.
#[test]
fn a_panicking_clock_during_a_scan() {
    use std::sync::atomic::AtomicBool;
    struct P(AtomicBool);
    impl Clock for P {
        fn now_ms(&self) -> UnixMillis {
            if self.0.load(Ordering::SeqCst) {
                panic!("clock failure during a scan");
            }
            T
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(P(AtomicBool::new(false)));
    let store = Store::open_with(
        StoreConfig::file(dir.path().join("s.db"))
            .with_clock(clock.clone())
            .with_purge_interval(Duration::ZERO),
    )
    .unwrap();
    store.set("g", "k", "v").unwrap();
    let db = Analytics::in_memory().unwrap();
    db.attach_kv(&store).unwrap();
    clock.0.store(true, Ordering::SeqCst);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        db.query_row("SELECT count(*) FROM kv_entries", &[]).map(drop)
    }));
    assert!(
        matches!(r, Ok(Err(_))),
        "the query fails, no panic unwinds: {r:?}"
    );
    let after = db
        .query_row("SELECT count(*) FROM kv_entries", &[])
        .map(|r| r.map(|r| r.values));
    eprintln!("after: {after:?}");
    clock.0.store(false, Ordering::SeqCst);
    assert_eq!(store.count("g").unwrap(), 1);
}
