//! Optional background WAL checkpoints for file stores (`StoreConfig::checkpoint_pages > 0`).
//!
//! By default SQLite checkpoints a WAL database from inside the commit that pushes the log past
//! 1,000 pages: that one write copies the log into the database file and fsyncs both before it
//! returns, a multi-millisecond stall every few hundred writes. With a threshold set, the
//! writer's WAL hook only wakes a thread that runs a `PASSIVE` checkpoint on its own
//! connection, which never blocks writers or readers. Measured on 50,000 autocommit sets
//! (`kv_vs_rusqlite --only wal`), p99.9 latency fell from ~2.5 ms to ~0.25 ms while the median
//! rose from 9 to 12 µs (the checkpoint now overlaps writes) and throughput stayed the same,
//! hence opt-in.
//!
//! A checkpoint running beside a writer that never pauses cannot finish: the writer appends
//! frames while it copies, so the log is never wholly copied back, SQLite never restarts it
//! from its start, and it grows without bound (h147: 80 MB after 6,000 sets at a threshold of
//! 100 pages). So once the log holds [`SAFETY_FACTOR`] times the threshold, the committing
//! writer checkpoints inline, as SQLite would have: it first waits for a background checkpoint
//! in progress (SQLite refuses a second checkpointer at once, without a busy handler), and
//! appends nothing while it copies, so the copy completes and the next write restarts the log.
//! Those inline checkpoints copy only what the thread had not, so they stay short.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use rusqlite::Connection;
use rusqlite::hooks::Wal;
use rusqlite::wal::CheckpointMode;

use crate::config::StoreConfig;
use crate::error::{Error, Result};
use crate::kv::sqlite::conn;

/// The writer checkpoints inline once the log holds this many times the threshold.
const SAFETY_FACTOR: i64 = 8;

/// The largest threshold: SQLite counts the log's frames in an `i32`, so past this many pages
/// `SAFETY_FACTOR` times the threshold could never be reached and no write would checkpoint.
const MAX_PAGES: u32 = 1 << 28;

/// A running checkpoint thread; [`Checkpointer::stop`] ends it.
pub(crate) struct Checkpointer {
    stop: Arc<AtomicBool>,
    wake: SyncSender<()>,
    thread: Option<JoinHandle<()>>,
}

/// Refuses a threshold past [`MAX_PAGES`], before the open creates or changes anything.
pub(crate) fn validate(op: &'static str, config: &StoreConfig) -> Result<()> {
    if config.checkpoint_pages > MAX_PAGES {
        return Err(Error::invalid(
            op,
            "checkpoint_pages",
            format!(
                "{} pages is past the largest threshold, {MAX_PAGES} (SQLite counts the log's \
                 pages in 32 bits, so no checkpoint would ever run); pass at most {MAX_PAGES}, \
                 or 0 for SQLite's own checkpoints",
                config.checkpoint_pages
            ),
        ));
    }
    Ok(())
}

impl Checkpointer {
    /// Installs the WAL hook on `writer` and starts the thread, unless `config.checkpoint_pages`
    /// is zero (SQLite's inline checkpoints stay in charge then).
    pub fn start(
        op: &'static str,
        path: &Path,
        config: &StoreConfig,
        writer: &mut Connection,
    ) -> Result<Option<Checkpointer>> {
        let pages = i64::from(config.checkpoint_pages);
        if pages == 0 {
            return Ok(None);
        }
        let conn = conn::open_file_checkpointer(op, path, config.durability, config.busy_timeout)?;
        let (wake, wakes) = std::sync::mpsc::sync_channel::<()>(1);
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = Arc::clone(&stop);
        // Held by whichever checkpoint runs, the thread's or the writer's inline one.
        let turn = Arc::new(Mutex::new(()));
        let thread_turn = Arc::clone(&turn);
        let thread = std::thread::Builder::new()
            .name("store-checkpoint".into())
            .spawn(move || run(&conn, &wakes, &thread_stop, &thread_turn))
            .map_err(|e| Error::Io {
                op,
                path: None,
                source: e,
            })?;
        let hook_wake = wake.clone();
        let installed = writer.wal_hook(Some(move |wal: &mut Wal, frames: i32| {
            let frames = i64::from(frames);
            if frames >= pages.saturating_mul(SAFETY_FACTOR) {
                // Never blocks on the thread for long: its PASSIVE checkpoint waits for no lock.
                let _turn = turn.lock().unwrap_or_else(PoisonError::into_inner);
                return inline(wal);
            }
            if frames >= pages {
                // A full channel means a checkpoint is already due; nothing to add.
                if let Err(TrySendError::Disconnected(())) = hook_wake.try_send(()) {
                    return inline(wal);
                }
            }
            Ok(())
        }));
        let checkpointer = Checkpointer {
            stop,
            wake,
            thread: Some(thread),
        };
        if let Err(e) = installed {
            checkpointer.stop();
            return Err(Error::sqlite(op, "install the WAL hook", e));
        }
        Ok(Some(checkpointer))
    }

    /// Ends the thread and waits for it (a checkpoint in progress completes first).
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Release);
        let _ = self.wake.try_send(());
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            log::warn!("store: checkpoint thread panicked");
        }
    }
}

/// An inline PASSIVE checkpoint from the writer's hook. Its errors are ignored: the commit
/// already happened, and an error returned from the hook would be reported as the write's.
fn inline(wal: &mut Wal) -> rusqlite::Result<()> {
    if let Err(e) = wal.checkpoint_v2(CheckpointMode::PASSIVE) {
        log::debug!("store: inline checkpoint skipped: {e}");
    }
    Ok(())
}

fn run(conn: &Connection, wakes: &Receiver<()>, stop: &AtomicBool, turn: &Mutex<()>) {
    while wakes.recv().is_ok() {
        if stop.load(Ordering::Acquire) {
            return;
        }
        let checkpointed = {
            let _turn = turn.lock().unwrap_or_else(PoisonError::into_inner);
            conn.wal_checkpoint_v2(None::<&str>, CheckpointMode::PASSIVE)
        };
        if let Err(e) = checkpointed {
            // Busy means another checkpoint (another process, or close) is running: fine.
            if !conn::is_busy(&e) {
                log::warn!("store: background checkpoint failed (will retry on the next wake): {e}");
            }
        }
    }
}
