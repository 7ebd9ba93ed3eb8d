//! Shared fixtures: real SQLite files in temp dirs, a manual clock.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use store::{ManualClock, Store, StoreConfig};

/// A file-backed store in a fresh temp dir, with a manual clock and no purge thread.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub clock: Arc<ManualClock>,
    pub store: Store,
}

impl Fixture {
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("state.db")
    }

    pub fn reopen(&self) -> Store {
        Store::open_with(self.config()).expect("reopen")
    }

    pub fn config(&self) -> StoreConfig {
        StoreConfig::file(self.path())
            .with_clock(self.clock.clone())
            .with_purge_interval(Duration::ZERO)
    }
}

pub fn file_store() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(1_000_000));
    let config = StoreConfig::file(dir.path().join("state.db"))
        .with_clock(clock.clone())
        .with_purge_interval(Duration::ZERO);
    let store = Store::open_with(config).expect("open");
    Fixture { dir, clock, store }
}

pub fn memory_store() -> (Store, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(1_000_000));
    let store = Store::open_with(
        StoreConfig::memory()
            .with_clock(clock.clone())
            .with_purge_interval(Duration::ZERO),
    )
    .expect("open");
    (store, clock)
}

/// Both kinds of store, for tests that must hold on each.
pub fn both() -> Vec<(&'static str, Store, Arc<ManualClock>, Option<tempfile::TempDir>)> {
    let f = file_store();
    let (m, mc) = memory_store();
    vec![("file", f.store, f.clock, Some(f.dir)), ("memory", m, mc, None)]
}
