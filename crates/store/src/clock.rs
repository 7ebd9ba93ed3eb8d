//! Injectable time, so TTL behaviour is testable without sleeping.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
///
/// # Examples
/// ```
/// use std::{sync::Arc, time::Duration};
/// use store::{Kv, ManualClock, Store, StoreConfig, UnixMillis};
/// let store = Store::open_with(StoreConfig::memory().with_clock(Arc::new(ManualClock::new(1_000))))?;
/// store.set_with_ttl("g", "k", "v", Duration::from_secs(2))?;
/// let expires_at: Option<UnixMillis> = store.get_with_version("g", "k")?.expires_at;
/// assert_eq!(expires_at, Some(3_000));
/// # Ok::<(), store::Error>(())
/// ```
pub type UnixMillis = i64;

/// A source of the current time. The store reads it for every operation (a write again once
/// it holds the write lock, and judges by that time).
///
/// A clock must not call the store it serves: the store reads it in every call, some while
/// they hold a connection (a write once it holds the write lock, a read of several rows once
/// its snapshot is taken, so the time is never earlier than what it judges), where the
/// clock's call would recurse or wait for the very call reading the clock. Made on the thread
/// reading the clock (directly, or through other stores whose clocks call back), such a call
/// fails at once: `InvalidInput` (field `clock`) from the KV API, a query error naming the
/// clock from `kv_entries`. Made from another thread the clock waits on, it can only wait:
/// for a free reader up to 30 s (or the busy timeout, if longer), then it fails busy.
///
/// # Examples
/// ```
/// use store::{Clock, SystemClock};
/// assert!(SystemClock.now_ms() > 1_600_000_000_000);
/// ```
pub trait Clock: Send + Sync {
    /// The current time in Unix milliseconds.
    ///
    /// # Examples
    /// ```
    /// use std::{sync::Arc, time::Duration};
    /// use store::{Clock, Kv, Store, StoreConfig, UnixMillis};
    /// struct Frozen; // a clock need not implement `Debug`
    /// impl Clock for Frozen {
    ///     fn now_ms(&self) -> UnixMillis { 5_000 }
    /// }
    /// let store = Store::open_with(StoreConfig::memory().with_clock(Arc::new(Frozen)))?;
    /// store.set_with_ttl("g", "k", "v", Duration::from_secs(1))?;
    /// assert_eq!(store.get_with_version("g", "k")?.expires_at, Some(6_000));
    /// # Ok::<(), store::Error>(())
    /// ```
    fn now_ms(&self) -> UnixMillis;
}

/// The operating system's wall clock (the default).
///
/// # Examples
/// ```
/// use store::{Clock, SystemClock};
/// let a = SystemClock.now_ms();
/// assert!(SystemClock.now_ms() >= a);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> UnixMillis {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => duration_ms(d),
            // A clock set before 1970 is reported as negative time rather than a panic.
            Err(e) => duration_ms(e.duration()).saturating_neg(),
        }
    }
}

/// A clock that only moves when told to; share it with the store through an `Arc`.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use store::{Clock, ManualClock};
/// let clock = ManualClock::new(1_000);
/// clock.advance(Duration::from_secs(2));
/// assert_eq!(clock.now_ms(), 3_000);
/// clock.set(10);
/// assert_eq!(clock.now_ms(), 10);
/// ```
#[derive(Debug, Default)]
pub struct ManualClock {
    now: AtomicI64,
}

impl ManualClock {
    /// A clock that reads `start_ms` until moved.
    ///
    /// # Examples
    /// ```
    /// use store::{Clock, ManualClock};
    /// assert_eq!(ManualClock::new(42).now_ms(), 42);
    /// ```
    pub fn new(start_ms: UnixMillis) -> Self {
        ManualClock {
            now: AtomicI64::new(start_ms),
        }
    }

    /// Jumps to `ms`.
    ///
    /// # Examples
    /// ```
    /// use store::{Clock, ManualClock};
    /// let c = ManualClock::new(0);
    /// c.set(5);
    /// assert_eq!(c.now_ms(), 5);
    /// ```
    pub fn set(&self, ms: UnixMillis) {
        self.now.store(ms, Ordering::SeqCst);
    }

    /// Moves forward by `by` (saturating).
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use store::{Clock, ManualClock};
    /// let c = ManualClock::new(0);
    /// c.advance(Duration::from_millis(7));
    /// assert_eq!(c.now_ms(), 7);
    /// ```
    pub fn advance(&self, by: Duration) {
        // Summed wide, then clamped: capping `by` at i64::MAX ms first would leave a clock
        // below zero short of i64::MAX after `advance(Duration::MAX)`.
        let by = i128::try_from(by.as_millis()).unwrap_or(i128::MAX);
        let _ = self.now.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |t| {
            Some(i64::try_from(i128::from(t).saturating_add(by)).unwrap_or(i64::MAX))
        });
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> UnixMillis {
        self.now.load(Ordering::SeqCst)
    }
}

/// A duration in whole milliseconds, saturating at `i64::MAX`.
pub(crate) fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A time to live in milliseconds, rounded up: expiry has millisecond resolution, and only a
/// zero TTL means "already expired", so 1 µs still keeps the entry for a millisecond.
pub(crate) fn ttl_ms(ttl: Duration) -> i64 {
    let partial = u128::from(!ttl.subsec_nanos().is_multiple_of(1_000_000));
    i64::try_from(ttl.as_millis() + partial).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advance_saturates_at_the_top_from_any_start() {
        for start in [i64::MIN, -1, 0, i64::MAX - 1] {
            let clock = ManualClock::new(start);
            clock.advance(Duration::MAX);
            assert_eq!(clock.now_ms(), i64::MAX, "from {start}");
        }
        // A step longer than i64::MAX ms from below zero lands exactly, not short.
        let clock = ManualClock::new(-10);
        clock.advance(Duration::from_millis(i64::MAX as u64 + 5));
        assert_eq!(clock.now_ms(), i64::MAX - 5);
    }
}
