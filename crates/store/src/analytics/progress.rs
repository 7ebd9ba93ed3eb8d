//! Progress reports of imports and exports: DuckDB's estimates, polled on a helper thread
//! while a statement runs, and one final report when the job is done.

use std::time::Duration;

use duckdb::Connection;

/// How often import progress is reported while DuckDB works.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// Progress of a running import or export, as DuckDB estimates it.
///
/// While the job runs, `rows_processed` and `percentage` never go down from one report to the
/// next (DuckDB's own figures can). They are estimates: for CSV and JSON DuckDB counts from the
/// bytes it has read, and its `rows_processed` can pass the file's real row count (h158 saw
/// 3.4M for a 2M-row CSV). The final report gives the exact count, so it can be lower than the
/// last estimate; draw a bar from `percentage`, which ends at 100.
///
/// # Examples
/// ```
/// let p = store::analytics::ImportProgress { rows_processed: 10, total_rows: 100, percentage: Some(10.0) };
/// assert_eq!(p.percentage, Some(10.0));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ImportProgress {
    /// Rows DuckDB has processed so far: its estimate while the job runs (which can pass the
    /// file's real count, see above), exact in the final report.
    pub rows_processed: u64,
    /// DuckDB's estimate of the total (0 when unknown).
    pub total_rows: u64,
    /// Percent done, when DuckDB can estimate it.
    pub percentage: Option<f64>,
}

/// A progress callback: called from a helper thread with DuckDB's estimates (every 100 ms) while
/// the statement runs, then once more on the calling thread when the job has finished, with
/// every row done and `percentage` 100.
///
/// The job holds its handle's connection while the callback runs during the job (and the
/// calling thread may hold others: inside `with_connection`, or reading a `query_arrow`
/// result), so the callback must not call those handles: such calls fail at once with
/// `InvalidInput { field: "connection" }`. Other handles are fine; a write to a KV store whose
/// transaction the calling thread is running waits for it 30 s (see
/// `StoreConfig::busy_timeout`), then fails busy. The final report comes after the job has let the connection go.
///
/// A callback that panics while the job runs is not called again and fails the job with
/// `InvalidInput { field: "progress" }`, keeping nothing; a panic in the final report, when the
/// job has already succeeded, is logged and the job's result returned.
///
/// # Examples
/// ```
/// use std::sync::Mutex;
/// use store::analytics::{Analytics, ImportProgress, ProgressFn};
/// let dir = tempfile::tempdir()?;
/// let file = dir.path().join("t.csv");
/// std::fs::write(&file, "x\n1\n2\n3\n")?;
/// let last = Mutex::new(None);
/// let progress: ProgressFn<'_> = &|p: ImportProgress| *last.lock().unwrap() = Some(p);
/// assert_eq!(Analytics::in_memory()?.import_file("t", &file, None, Some(progress))?, 3);
/// let done = last.into_inner().unwrap().expect("the final report");
/// assert_eq!((done.rows_processed, done.percentage), (3, Some(100.0)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub type ProgressFn<'a> = &'a (dyn Fn(ImportProgress) + Sync);

/// One import or export job's progress: the caller's callback, and what it has been shown.
///
/// A job may run several statements, each of which DuckDB estimates from zero (an import read
/// a second way after the first failed; a split export's own writer, then DuckDB's COPY, then a
/// keyed COPY): one `JobProgress` spans them all, so its reports never step back.
pub(crate) struct JobProgress<'a> {
    report: Option<ProgressFn<'a>>,
    shown: parking_lot::Mutex<Monotone>,
    /// The callback panicked: it is not called again in this job, and the job fails.
    panicked: std::sync::atomic::AtomicBool,
}

impl<'a> JobProgress<'a> {
    pub(crate) fn new(report: Option<ProgressFn<'a>>) -> JobProgress<'a> {
        JobProgress {
            report,
            shown: parking_lot::Mutex::new(Monotone::default()),
            panicked: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Whether the callback panicked during this job (whose failure then says so; a job must
    /// not read that failure's text as a reason to run again).
    pub(crate) fn panicked(&self) -> bool {
        self.panicked.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The last report of a finished job: every row done, 100%. DuckDB's estimates come every
    /// 100 ms while it works, so a quick job would otherwise report nothing at all.
    pub(crate) fn done(&self, rows: u64) {
        if let Some(report) = self.report {
            let done = ImportProgress {
                rows_processed: rows,
                total_rows: rows,
                percentage: Some(100.0),
            };
            // The job has finished and kept its result; a panic now can only lose this report.
            let call = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| report(done)));
            if let Err(payload) = call {
                log::warn!(
                    "store: {} on the final report ({}); the job itself succeeded",
                    super::PROGRESS_PANICKED,
                    panic_message(payload.as_ref())
                );
            }
        }
    }
}

/// Runs `work` while a helper thread reports DuckDB's progress estimate to `job`'s callback.
///
/// A callback that panics is not called again: its panic is caught on the helper thread, the
/// running statement is interrupted, and the job fails with an error naming the panic, so the
/// caller's usual failure path runs (the import's transaction rolls back, the export's staged
/// files go). Left to unwind, the panic would surface only after `work` and skip that path.
pub(crate) fn with_progress<T>(
    conn: &Connection,
    job: &JobProgress<'_>,
    work: impl FnOnce() -> duckdb::Result<T>,
) -> duckdb::Result<T> {
    use std::sync::atomic::{AtomicBool, Ordering};
    let Some(report) = job.report.filter(|_| !job.panicked()) else {
        return work();
    };
    if conn.set_query_progress_tracking(true).is_err() {
        return work();
    }
    let (handle, interrupt) = (conn.progress_handle(), conn.interrupt_handle());
    let waiting = super::threads_waiting_for_helper();
    let done = AtomicBool::new(false);
    let panicked = parking_lot::Mutex::new(None::<String>);
    let result = std::thread::scope(|scope| {
        scope.spawn(|| {
            // Those threads wait for this one: the callback's calls on handles they hold are
            // refused rather than left waiting for them.
            super::mark_progress_thread(waiting);
            while !done.load(Ordering::Acquire) {
                std::thread::sleep(PROGRESS_EVERY);
                let p = handle.query_progress();
                if !p.is_available() {
                    continue;
                }
                let update = job.shown.lock().next(ImportProgress {
                    rows_processed: p.rows_processed(),
                    total_rows: p.total_rows_to_process(),
                    percentage: p.percentage(),
                });
                let call = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| report(update)));
                if let Err(payload) = call {
                    *panicked.lock() = Some(panic_message(payload.as_ref()));
                    job.panicked.store(true, Ordering::Release);
                    interrupt.interrupt();
                    return;
                }
            }
        });
        let result = work();
        done.store(true, Ordering::Release);
        result
    });
    let _ = conn.set_query_progress_tracking(false);
    match panicked.into_inner() {
        Some(message) => Err(duckdb::Error::ToSqlConversionFailure(
            format!("{} ({message}); nothing was kept", super::PROGRESS_PANICKED).into(),
        )),
        None => result,
    }
}

/// What the in-flight reports have shown so far: DuckDB's estimates can step back (a new
/// pipeline, a re-estimated total), and a progress bar should not.
#[derive(Default)]
struct Monotone {
    rows: u64,
    percentage: Option<f64>,
}

impl Monotone {
    /// `estimate`, with its rows and percentage raised to the highest shown before; the
    /// percentage kept within 0–100.
    fn next(&mut self, estimate: ImportProgress) -> ImportProgress {
        self.rows = self.rows.max(estimate.rows_processed);
        if let Some(pct) = estimate.percentage.filter(|p| p.is_finite()) {
            let pct = pct.clamp(0.0, 100.0);
            self.percentage = Some(self.percentage.map_or(pct, |shown| shown.max(pct)));
        }
        ImportProgress {
            rows_processed: self.rows,
            total_rows: estimate.total_rows,
            percentage: self.percentage,
        }
    }
}

/// The text of a panic payload (`panic!` with a literal or a formatted message).
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-text panic payload".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn estimate(rows: u64, percentage: Option<f64>) -> ImportProgress {
        ImportProgress {
            rows_processed: rows,
            total_rows: 1_000,
            percentage,
        }
    }

    #[test]
    fn in_flight_reports_never_step_back() {
        let mut shown = Monotone::default();
        let seen: Vec<_> = [
            estimate(10, None),
            estimate(500, Some(50.0)),
            estimate(300, Some(40.0)),
            estimate(700, Some(f64::NAN)),
            estimate(600, Some(120.0)),
            estimate(900, Some(-1.0)),
        ]
        .into_iter()
        .map(|e| shown.next(e))
        .map(|p| (p.rows_processed, p.percentage))
        .collect();
        assert_eq!(
            seen,
            [
                (10, None),
                (500, Some(50.0)),
                (500, Some(50.0)),
                (700, Some(50.0)),
                (700, Some(100.0)),
                (900, Some(100.0)),
            ]
        );
    }
}
