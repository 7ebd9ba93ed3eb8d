//! The background thread that deletes expired entries every `purge_interval`.

use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::error::{Error, Result};
use crate::kv::access::Statements;
use crate::kv::access::sealed::Sealed;
use crate::kv::feed::prune;
use crate::kv::ops::purge_scope;
use crate::kv::store::Inner;

const OP: &str = "Store::purge_thread";

#[derive(Default)]
struct Signal {
    stop: Mutex<bool>,
    wake: Condvar,
}

/// A running purge thread; [`PurgeThread::stop`] ends it promptly.
pub(crate) struct PurgeThread {
    signal: Arc<Signal>,
    thread: Option<JoinHandle<()>>,
}

impl PurgeThread {
    /// Starts the thread unless the interval is zero. It holds only a `Weak` reference, so it
    /// never keeps the store alive.
    pub fn start(inner: &Arc<Inner>) -> Result<Option<PurgeThread>> {
        let interval = inner.config().purge_interval;
        if interval.is_zero() {
            return Ok(None);
        }
        let signal = Arc::new(Signal::default());
        let weak = Arc::downgrade(inner);
        let thread_signal = Arc::clone(&signal);
        let thread = std::thread::Builder::new()
            .name("store-purge".into())
            .spawn(move || run(weak, thread_signal, interval))
            .map_err(|e| Error::Io {
                op: "Store::open",
                path: None,
                source: e,
            })?;
        Ok(Some(PurgeThread {
            signal,
            thread: Some(thread),
        }))
    }

    /// The thread's id (`None` once stopped).
    pub fn thread_id(&self) -> Option<std::thread::ThreadId> {
        self.thread.as_ref().map(|t| t.thread().id())
    }

    /// Signals the thread and waits for it, unless called from the thread itself (a callback
    /// running on it may close the store), where waiting would deadlock.
    pub fn stop(mut self) {
        *self.signal.stop.lock() = true;
        self.signal.wake.notify_all();
        if let Some(thread) = self.thread.take()
            && thread.thread().id() != std::thread::current().id()
            && thread.join().is_err()
        {
            log::warn!("store: purge thread panicked");
        }
    }
}

fn run(inner: Weak<Inner>, signal: Arc<Signal>, interval: Duration) {
    loop {
        {
            let mut stop = signal.stop.lock();
            if !*stop {
                let _ = signal.wake.wait_for(&mut stop, interval);
            }
            if *stop {
                return;
            }
        }
        let Some(inner) = inner.upgrade() else { return };
        if !inner.is_open() {
            return;
        }
        // Each step runs even if the other failed: a purge that keeps failing must not stop
        // the feed from being pruned, nor the other way round. Neither waits inside SQLite for
        // another process's write lock (`close` would wait for that wait): a busy step is
        // retried here, where a stop request ends it at once.
        let deadline = Instant::now() + inner.config().busy_timeout;
        let purged = retrying(&signal, deadline, || {
            purge_scope(&*inner, OP, Statements::Background, "", inner.now()).map(drop)
        });
        let pruned = if inner.config().changes.enabled {
            retrying(&signal, deadline, || {
                prune(&inner, OP, Statements::Background).map(drop)
            })
        } else {
            Ok(())
        };
        if *signal.stop.lock() {
            return;
        }
        for (what, result) in [("purge", purged), ("change-feed prune", pruned)] {
            match result {
                Err(e) if e.is_closed() => {}
                // Another connection kept the write lock past the busy timeout: routine under
                // load, and the next round tries again.
                Err(e) if e.is_busy() => log::debug!("store: background {what} postponed: {e}"),
                Err(e) => log::warn!("store: background {what} failed (will retry): {e}"),
                Ok(()) => {}
            }
        }
    }
}

/// How often a busy purge-thread step is tried again, until the busy timeout.
const RETRY_EVERY: Duration = Duration::from_millis(50);

/// Runs `step` until it is not busy, the `deadline` passes, or the thread is asked to stop.
fn retrying(signal: &Signal, deadline: Instant, mut step: impl FnMut() -> Result<()>) -> Result<()> {
    loop {
        if *signal.stop.lock() {
            return Ok(());
        }
        match step() {
            Err(e) if e.is_busy() && Instant::now() < deadline => {
                let mut stop = signal.stop.lock();
                if !*stop {
                    let _ = signal.wake.wait_for(&mut stop, RETRY_EVERY);
                }
                if *stop {
                    return Err(e);
                }
            }
            other => return other,
        }
    }
}
