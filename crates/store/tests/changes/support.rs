//! Helpers local to the `changes` test binary: draining subscriptions, summarising events and
//! change rows, and capturing `log` records (the store reports panicking callbacks via `log`).

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

pub use crate::common::{all_changes_since, change_summary, drain, ev, summary};

/// How long a test waits for something that should happen at once before calling it a hang.
pub const HANG: Duration = Duration::from_secs(30);

/// Asserts the numbers are strictly increasing.
#[track_caller]
pub fn assert_strictly_increasing(seqs: &[u64]) {
    for pair in seqs.windows(2) {
        assert!(
            pair[0] < pair[1],
            "not strictly increasing: {} then {}",
            pair[0],
            pair[1]
        );
    }
}

static RECORDS: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct CaptureLogger;

impl log::Log for CaptureLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Warn
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            RECORDS
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(format!("{}", record.args()));
        }
    }

    fn flush(&self) {}
}

/// Installs (once per process) a logger that keeps every warning in memory.
pub fn capture_logs() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        static LOGGER: CaptureLogger = CaptureLogger;
        log::set_logger(&LOGGER).expect("no other logger in this test binary");
        log::set_max_level(log::LevelFilter::Warn);
    });
}

/// Warnings captured so far that contain `needle`.
pub fn logged(needle: &str) -> Vec<String> {
    RECORDS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|r| r.contains(needle))
        .cloned()
        .collect()
}
