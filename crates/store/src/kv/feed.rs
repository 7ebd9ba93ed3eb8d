//! Watching a store: in-process subscriptions and callbacks, and the durable change feed.

use std::sync::Arc;

use crate::clock::{UnixMillis, duration_ms};
use crate::error::{Error, Result, SqliteContext};
use crate::events::{CallbackGuard, Event, EventKind, Filter, Subscription, WatchOptions};
use crate::kv::Store;
use crate::kv::access::{Statements, sealed::Sealed};
use crate::kv::sqlite;
use crate::validate;

/// Most rows one [`Store::changes_since`] call returns.
///
/// # Examples
/// ```
/// use store::{Store, StoreConfig, kv::MAX_CHANGES_PER_CALL};
/// let store = Store::open_with(StoreConfig::memory().with_change_feed(true))?;
/// assert!(store.changes_since(0, MAX_CHANGES_PER_CALL)?.changes.is_empty());
/// let err = store.changes_since(0, MAX_CHANGES_PER_CALL + 1).unwrap_err();
/// assert_eq!(err.field(), Some("limit"));
/// # Ok::<(), store::Error>(())
/// ```
pub const MAX_CHANGES_PER_CALL: usize = 10_000;

/// One row of the durable change feed (table `changes`).
///
/// # Examples
/// ```
/// use store::{Kv, Store, StoreConfig};
/// let store = Store::open_with(StoreConfig::memory().with_change_feed(true))?;
/// store.set("g", "k", "v")?;
/// let change = &store.changes_since(0, 10)?.changes[0];
/// assert_eq!((change.group.as_str(), change.value.as_deref()), ("g", Some("v")));
/// # Ok::<(), store::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Change {
    /// Sequence number: unique, increasing in commit order (equals the version of a `Set`).
    pub seq: u64,
    /// When the mutation happened (Unix ms).
    pub at_ms: UnixMillis,
    /// What happened.
    pub kind: EventKind,
    /// The full group name.
    pub group: String,
    /// The key (`None` for `DeleteGroup`).
    pub key: Option<String>,
    /// The written value, for `Set` when `record_values` is on.
    pub value: Option<String>,
    /// The written entry's expiry, for `Set`.
    pub expires_at: Option<UnixMillis>,
}

/// A page of the change feed.
///
/// # Examples
/// ```
/// use store::{Kv, Store, StoreConfig};
/// let store = Store::open_with(StoreConfig::memory().with_change_feed(true))?;
/// store.set("g", "a", "1")?;
/// let batch = store.changes_since(0, 100)?;
/// assert_eq!(batch.next_seq, batch.changes[0].seq);
/// assert!(!batch.gap);
/// # Ok::<(), store::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChangeBatch {
    /// Changes with `seq` greater than the requested one, ascending.
    pub changes: Vec<Change>,
    /// Pass this to the next call: the last `seq` returned, or the requested one.
    pub next_seq: u64,
    /// `true` when rows after the requested `seq` were already pruned (the reader missed some).
    pub gap: bool,
}

impl Store {
    /// Subscribes to events of one group, or of every group with `"*"`, with the store's default
    /// buffer (`watch_capacity`, 16).
    ///
    /// A subscription misses nothing that commits after it is registered, also from a write
    /// already running when nobody listened (such writes stage no events): with the change
    /// feed on (the default for file stores), their events are read back from the feed at
    /// commit; with it off, registering waits for such a write to end, so a read after it
    /// sees the write.
    ///
    /// # Errors
    /// `Closed` after close; `InvalidInput` for a bad group name, and `InvalidInput { field:
    /// "transaction" }` when called from inside a transaction closure of this store (register
    /// before the transaction begins); with the change feed off, a busy `Sqlite` error if a
    /// write that began before any listener still runs after the busy timeout (nothing is
    /// registered then).
    ///
    /// # Examples
    /// ```
    /// use store::{EventKind, Kv, Store};
    /// let store = Store::in_memory()?;
    /// let all = store.watch("*")?;
    /// store.set("a", "k", "v")?;
    /// store.delete("a", "k")?;
    /// let kinds: Vec<EventKind> = std::iter::from_fn(|| all.try_recv()).map(|e| e.kind).collect();
    /// assert_eq!(kinds, [EventKind::Set, EventKind::Delete]);
    /// # Ok::<(), store::Error>(())
    /// ```
    pub fn watch(&self, group: &str) -> Result<Subscription> {
        self.watch_with(group, WatchOptions::default())
    }

    /// [`Store::watch`] with explicit options.
    ///
    /// # Examples
    /// ```
    /// use store::{Store, WatchOptions};
    /// let store = Store::in_memory()?;
    /// let sub = store.watch_with("config", WatchOptions { capacity: 256 })?;
    /// # Ok::<(), store::Error>(())
    /// ```
    pub fn watch_with(&self, group: &str, options: WatchOptions) -> Result<Subscription> {
        const OP: &str = "Store::watch";
        self.watch_filtered(OP, "", group, options)
    }

    pub(crate) fn watch_filtered(
        &self,
        op: &'static str,
        prefix: &str,
        group: &str,
        options: WatchOptions,
    ) -> Result<Subscription> {
        if group != "*" {
            validate::name(op, "group", group)?;
        }
        self.inner().check_usable(op)?;
        let subscription = self.inner().events().watch(
            op,
            Filter::new(prefix, group),
            options.resolve(self.inner().config().watch_capacity),
        )?;
        self.inner().settle_unrecorded_write(op)?;
        Ok(subscription)
    }

    /// Registers a callback run after every committed mutation, on the committing thread, after
    /// the write lock is released. It may call the store (its writes dispatch their own events).
    /// A panicking callback is logged and does not affect the write. Registration misses no
    /// write in flight, as for [`Store::watch`] (errors likewise).
    ///
    /// # Examples
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// use store::{Kv, Store};
    /// let store = Store::in_memory()?;
    /// let count = Arc::new(AtomicUsize::new(0));
    /// let c = count.clone();
    /// let _guard = store.on_change(move |_| { c.fetch_add(1, Ordering::SeqCst); })?;
    /// store.set("g", "k", "v")?;
    /// assert_eq!(count.load(Ordering::SeqCst), 1);
    /// # Ok::<(), store::Error>(())
    /// ```
    pub fn on_change(&self, f: impl Fn(&Event) + Send + Sync + 'static) -> Result<CallbackGuard> {
        const OP: &str = "Store::on_change";
        self.inner().check_usable(OP)?;
        let guard = self.inner().events().on_change(OP, Arc::new(f))?;
        self.inner().settle_unrecorded_write(OP)?;
        Ok(guard)
    }

    pub(crate) fn on_change_filtered(
        &self,
        op: &'static str,
        filter: Filter,
        f: impl Fn(&Event) + Send + Sync + 'static,
    ) -> Result<CallbackGuard> {
        self.inner().check_usable(op)?;
        let guard = self.inner().events().on_change(
            op,
            Arc::new(move |event: &Event| {
                if let Some(local) = filter.apply(event) {
                    f(&local);
                }
            }),
        )?;
        self.inner().settle_unrecorded_write(op)?;
        Ok(guard)
    }

    /// Live subscriptions plus registered callbacks.
    ///
    /// # Examples
    /// ```
    /// let store = store::Store::in_memory()?;
    /// let sub = store.watch("*")?;
    /// assert_eq!(store.listener_count(), 1);
    /// drop(sub);
    /// assert_eq!(store.listener_count(), 0);
    /// # Ok::<(), store::Error>(())
    /// ```
    pub fn listener_count(&self) -> usize {
        self.inner().events().listener_count()
    }

    /// Committed changes with `seq > after`, oldest first, at most `limit` (1 to 10,000).
    /// Readable from any process that opens the file.
    ///
    /// # Errors
    /// `Unsupported` when the change feed is disabled; `InvalidInput { field: "limit" }`.
    ///
    /// # Examples
    /// ```
    /// use store::{Kv, Store};
    /// let dir = tempfile::tempdir()?;
    /// let writer = Store::open(dir.path().join("s.db"))?;
    /// writer.set("g", "k", "v")?;
    /// let reader = Store::open(dir.path().join("s.db"))?; // e.g. in another process
    /// let batch = reader.changes_since(0, 100)?;
    /// assert_eq!(batch.changes.len(), 1);
    /// assert!(reader.changes_since(batch.next_seq, 100)?.changes.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn changes_since(&self, after: u64, limit: usize) -> Result<ChangeBatch> {
        const OP: &str = "Store::changes_since";
        self.require_feed(OP)?;
        if limit == 0 || limit > MAX_CHANGES_PER_CALL {
            return Err(Error::invalid(
                OP,
                "limit",
                format!("{limit} is out of range; pass 1 to {MAX_CHANGES_PER_CALL}"),
            ));
        }
        // One snapshot: a prune between the two reads would report a gap that is not there.
        let (rows, pruned_through) = self.read(OP, |c| {
            sqlite::snapshot(c, |c| {
                let rows = sqlite::changes_after(c, after, limit as i64)?;
                let pruned = sqlite::meta_get(c, sqlite::PRUNED_THROUGH)?.unwrap_or(0);
                Ok((rows, pruned))
            })
        })?;
        let mut changes = Vec::with_capacity(rows.len());
        for (seq, at_ms, kind, group, key, value, expires_at) in rows {
            changes.push(Change {
                seq,
                at_ms,
                kind: kind.parse()?,
                group,
                key,
                value,
                expires_at,
            });
        }
        Ok(ChangeBatch {
            next_seq: changes.last().map_or(after, |c| c.seq),
            gap: (after as i128) < pruned_through as i128,
            changes,
        })
    }

    /// The highest committed `seq` in the feed (0 if none), for starting to follow it.
    ///
    /// # Examples
    /// ```
    /// use store::{Kv, Store};
    /// let dir = tempfile::tempdir()?;
    /// let store = Store::open(dir.path().join("s.db"))?;
    /// let v = store.set("g", "k", "v")?;
    /// assert_eq!(store.last_seq()?, v);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn last_seq(&self) -> Result<u64> {
        const OP: &str = "Store::last_seq";
        self.require_feed(OP)?;
        self.read(OP, sqlite::last_change_seq)
    }

    /// Applies the feed's retention now (`max_age`, `max_rows`); returns the rows removed. The
    /// purge thread does this every `purge_interval`.
    ///
    /// # Examples
    /// ```
    /// use store::{ChangeFeedConfig, Kv, Store, StoreConfig};
    /// let mut config = StoreConfig::memory().with_change_feed(true);
    /// config.changes.max_rows = Some(5);
    /// let store = Store::open_with(config)?;
    /// for i in 0..10 { store.set("g", &i.to_string(), "v")?; }
    /// assert_eq!(store.prune_changes()?, 5);
    /// assert!(store.changes_since(0, 100)?.gap);
    /// # Ok::<(), store::Error>(())
    /// ```
    pub fn prune_changes(&self) -> Result<u64> {
        const OP: &str = "Store::prune_changes";
        self.require_feed(OP)?;
        prune(self.inner(), OP, Statements::Many)
    }

    fn require_feed(&self, op: &'static str) -> Result<()> {
        // A closed store (or a call from inside its transaction) says so first, whatever its
        // feed setting (SPEC §3.8: every call after close is `Closed`).
        self.inner().check_usable(op)?;
        if self.inner().config().changes.enabled {
            Ok(())
        } else {
            Err(Error::Unsupported {
                op,
                what: "the change feed (it is disabled in this store's config; set changes.enabled)".into(),
            })
        }
    }
}

/// Retention of the change feed, shared with the purge thread.
pub(crate) fn prune(
    inner: &crate::kv::store::Inner,
    op: &'static str,
    statements: Statements,
) -> Result<u64> {
    let feed = &inner.config().changes;
    let now = inner.now();
    let before = feed.max_age.map(|age| now.saturating_sub(duration_ms(age)));
    let keep = feed.max_rows;
    if before.is_none() && keep.is_none() {
        return Ok(0);
    }
    inner.write(op, now, statements, |w| {
        sqlite::prune_changes(w.conn, before, keep).ctx(op, "prune change feed")
    })
}
