//! Helpers local to the `scope` test binary: building scoped handles with quotas, asserting
//! `QuotaExceeded`, draining subscriptions, and the raw-SQL ground truth that usage counters are
//! compared against.

use std::fmt::Debug;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use store::{
    Error, Kv, ManualClock, Quota, QuotaLimit, ScopedConfig, ScopedStore, Store, StoreConfig, UnixMillis,
    Usage,
};

use crate::common::{Fixture, START_MS, raw};
pub use crate::common::{all_changes_since as changes_since, drain, ev, quota, summary, truth};

/// The namespace most tests write into.
pub const NS_A: &str = "tenant-a";
/// A second namespace with the same group and key names.
pub const NS_B: &str = "tenant-b";

/// `store` confined to `namespace` with `quota`.
pub fn scoped(store: &Store, namespace: &str, quota: Quota) -> ScopedStore {
    store
        .scoped_with(ScopedConfig::new(namespace).with_quota(quota))
        .expect("scoped_with")
}

/// A `Usage` from its three figures.
pub fn usage(keys: u64, groups: u64, bytes: u64) -> Usage {
    Usage { keys, groups, bytes }
}

/// Asserts the result is `QuotaExceeded` with exactly these fields.
#[track_caller]
pub fn expect_quota<T: Debug>(
    result: store::Result<T>,
    namespace: &str,
    limit: QuotaLimit,
    max: u64,
    requested: u64,
) {
    match result {
        Err(Error::QuotaExceeded {
            namespace: n,
            limit: l,
            max: m,
            requested: r,
            ..
        }) => assert_eq!(
            (n.as_str(), l, m, r),
            (namespace, limit, max, requested),
            "QuotaExceeded has the wrong fields"
        ),
        other => panic!(
            "expected QuotaExceeded({namespace}, {limit:?}, max {max}, requested {requested}), got {other:?}"
        ),
    }
}

/// Asserts `ns.usage()` equals the raw-SQL truth of its namespace in the file at `path`.
#[track_caller]
pub fn assert_usage_exact(ns: &ScopedStore, path: &Path, now: UnixMillis, context: &str) {
    let expected = truth(path, ns.namespace(), now);
    assert_eq!(
        ns.usage().expect("usage"),
        expected,
        "usage of {:?} disagrees with the rows in `entries` after {context}",
        ns.namespace()
    );
}

/// A value of `n` ASCII bytes.
pub fn bytes_value(n: usize) -> String {
    "x".repeat(n)
}

/// A fixture whose database file was first written by `prepare` through a raw rusqlite
/// connection (as another program would), then opened as a store with the fixture's settings
/// (manual clock at `START_MS`, no purge thread).
pub fn prepared_file(prepare: impl FnOnce(&rusqlite::Connection)) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state.db");
    {
        let conn = raw(&path);
        prepare(&conn);
    }
    let clock = Arc::new(ManualClock::new(START_MS));
    let config = StoreConfig::file(&path)
        .with_clock(clock.clone())
        .with_purge_interval(Duration::ZERO);
    let store = Store::open_with(config).expect("open prepared file");
    Fixture { store, clock, dir }
}

/// A clock that, on a thread that asked for it, pauses right after being read, so a test can
/// run a write between a call's clock reading and the rest of the call.
#[derive(Debug)]
struct PausingClock {
    now: std::sync::atomic::AtomicI64,
    gate: std::sync::Mutex<Option<(std::sync::mpsc::Sender<()>, std::sync::mpsc::Receiver<()>)>>,
}

thread_local! {
    static PAUSE_HERE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

impl store::Clock for PausingClock {
    fn now_ms(&self) -> i64 {
        let now = self.now.load(std::sync::atomic::Ordering::SeqCst);
        if PAUSE_HERE.with(|p| p.replace(false))
            && let Some((paused, resume)) = self.gate.lock().unwrap().take()
        {
            paused.send(()).unwrap();
            resume.recv().unwrap();
        }
        now
    }
}

/// Runs `late` across an expiry: on a file store whose namespace [`NS_A`] has max_keys 1
/// and one key, "a", expiring at 10, `late` runs on another thread, reads the clock (5) and
/// pauses; meanwhile the clock moves to 10 and "b" is written (allowed: "a" has expired);
/// then `late` resumes. Returns its result, the namespace and the temp dir of the store.
pub fn run_across_an_expiry<T: Send + 'static>(
    late: impl FnOnce(&ScopedStore) -> T + Send + 'static,
) -> (T, ScopedStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(PausingClock {
        now: std::sync::atomic::AtomicI64::new(5),
        gate: std::sync::Mutex::new(None),
    });
    let store = Store::open_with(
        StoreConfig::file(dir.path().join("state.db"))
            .with_clock(clock.clone())
            .with_purge_interval(Duration::ZERO),
    )
    .unwrap();
    let ns = scoped(&store, NS_A, quota(1, 0, 0));
    ns.set_with_ttl("g", "a", "v", Duration::from_millis(5)).unwrap(); // expires at 10
    let (paused_tx, paused_rx) = std::sync::mpsc::channel();
    let (resume_tx, resume_rx) = std::sync::mpsc::channel();
    *clock.gate.lock().unwrap() = Some((paused_tx, resume_rx));
    let thread = {
        let ns = ns.clone();
        std::thread::spawn(move || {
            PAUSE_HERE.with(|p| p.set(true));
            late(&ns)
        })
    };
    paused_rx.recv().unwrap(); // `late` has read the clock: 5
    clock.now.store(10, std::sync::atomic::Ordering::SeqCst); // "a" has expired
    ns.set("g", "b", "v").unwrap(); // allowed: no live key
    resume_tx.send(()).unwrap();
    (thread.join().unwrap(), ns, dir)
}
