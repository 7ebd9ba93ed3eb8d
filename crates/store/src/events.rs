//! Change events: what a committed mutation tells subscribers.
//!
//! # Examples
//! ```
//! use store::{EventKind, Kv, Store};
//! let store = Store::in_memory()?;
//! let sub = store.watch("config")?;
//! store.set("config", "pool", "eu")?;
//! store.set("other", "k", "v")?; // another group: not delivered
//! store.delete("config", "pool")?;
//! let kinds: Vec<EventKind> = std::iter::from_fn(|| sub.try_recv()).map(|e| e.kind).collect();
//! assert_eq!(kinds, [EventKind::Set, EventKind::Delete]);
//! # Ok::<(), store::Error>(())
//! ```

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;

use crate::clock::UnixMillis;
use crate::error::Error;

/// What happened to an entry or group.
///
/// # Examples
/// ```
/// use store::EventKind;
/// assert_eq!(EventKind::DeleteGroup.as_str(), "delete_group");
/// assert_eq!("expired".parse::<EventKind>()?, EventKind::Expired);
/// # Ok::<(), store::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A value was written.
    Set,
    /// A live entry was deleted.
    Delete,
    /// A group was deleted (`key` is `None`); its expired entries are reported first.
    DeleteGroup,
    /// An expired entry was removed (lazily, by a purge, by `delete`, or with its group).
    Expired,
}

impl EventKind {
    /// `set`, `delete`, `delete_group` or `expired`.
    ///
    /// # Examples
    /// ```
    /// assert_eq!(store::EventKind::Set.as_str(), "set");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Set => "set",
            EventKind::Delete => "delete",
            EventKind::DeleteGroup => "delete_group",
            EventKind::Expired => "expired",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Ok(match s {
            "set" => EventKind::Set,
            "delete" => EventKind::Delete,
            "delete_group" => EventKind::DeleteGroup,
            "expired" => EventKind::Expired,
            other => {
                return Err(Error::invalid(
                    "EventKind::from_str",
                    "kind",
                    format!("{other:?} is not one of set, delete, delete_group, expired"),
                ));
            }
        })
    }
}

/// One committed mutation.
///
/// # Examples
/// ```
/// use store::{Event, EventKind};
/// let e = Event { kind: EventKind::Set, group: "g".into(), key: Some("k".into()),
///                 value: Some("v".into()), version: Some(1), seq: 1, at_ms: 0 };
/// assert_eq!(e.kind.as_str(), "set");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Event {
    /// What happened.
    pub kind: EventKind,
    /// The group (full name for raw handles, local name for scoped ones).
    pub group: String,
    /// The key; `None` for [`EventKind::DeleteGroup`].
    pub key: Option<String>,
    /// The new value, for [`EventKind::Set`].
    pub value: Option<String>,
    /// The new version, for [`EventKind::Set`].
    pub version: Option<u64>,
    /// Sequence number of the mutation: unique and increasing in commit order.
    pub seq: u64,
    /// When it happened (the store clock, Unix ms).
    pub at_ms: UnixMillis,
}

/// Options of one watch subscription.
///
/// # Examples
/// ```
/// use store::{Kv, Store, WatchOptions};
/// let store = Store::in_memory()?;
/// let sub = store.watch_with("*", WatchOptions { capacity: 1024 })?;
/// store.set("g", "k", "v")?;
/// assert_eq!(sub.try_recv().map(|e| e.key), Some(Some("k".to_string())));
/// # Ok::<(), store::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchOptions {
    /// Events buffered before new ones are dropped: 1 to
    /// [`MAX_WATCH_CAPACITY`](crate::MAX_WATCH_CAPACITY), or
    /// [`WatchOptions::STORE_CAPACITY`] (the default) for the store's configured
    /// [`watch_capacity`](crate::StoreConfig::watch_capacity).
    pub capacity: usize,
}

impl WatchOptions {
    /// The `capacity` that stands for the store's configured
    /// [`watch_capacity`](crate::StoreConfig::watch_capacity); what [`WatchOptions::default`]
    /// holds. (Not 0, which stays an error like every other capacity out of range.)
    ///
    /// # Examples
    /// ```
    /// use store::{Kv, Store, StoreConfig, WatchOptions};
    /// let store = Store::open_with(StoreConfig { watch_capacity: 1, ..StoreConfig::memory() })?;
    /// let sub = store.watch_with("g", WatchOptions { capacity: WatchOptions::STORE_CAPACITY })?;
    /// store.set("g", "a", "1")?;
    /// store.set("g", "b", "2")?;
    /// assert_eq!(sub.dropped(), 1); // the store's one slot
    /// assert!(store.watch_with("g", WatchOptions { capacity: 0 }).is_err());
    /// # Ok::<(), store::Error>(())
    /// ```
    pub const STORE_CAPACITY: usize = usize::MAX;

    /// The capacity a subscription of a store configured with `configured` gets.
    pub(crate) fn resolve(self, configured: usize) -> usize {
        if self.capacity == Self::STORE_CAPACITY {
            configured
        } else {
            self.capacity
        }
    }
}

/// The store's configured [`watch_capacity`](crate::StoreConfig::watch_capacity) (16 unless
/// configured otherwise), as the spec's `default: config.watch_capacity` says; so
/// `watch_with(g, WatchOptions::default())` is `watch(g)`.
///
/// # Examples
/// ```
/// use store::{Kv, Store, StoreConfig, WatchOptions};
/// let store = Store::open_with(StoreConfig { watch_capacity: 2, ..StoreConfig::memory() })?;
/// let sub = store.watch_with("*", WatchOptions::default())?;
/// for k in ["a", "b", "c"] {
///     store.set("g", k, "v")?;
/// }
/// assert_eq!(sub.dropped(), 1); // the store's 2 slots, not 16
/// # Ok::<(), store::Error>(())
/// ```
impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            capacity: Self::STORE_CAPACITY,
        }
    }
}

/// Which events a subscription or callback sees, and how it names their groups.
#[derive(Debug, Clone)]
pub(crate) struct Filter {
    /// `None` = every group; `Some(g)` = exactly the group `g`.
    exact: Option<String>,
    /// Only groups starting with this (a namespace's `ns:`); stripped from delivered names.
    prefix: String,
}

impl Filter {
    /// `"*"` = all groups, else one group; both confined to (and named relative to) `prefix`.
    pub fn new(prefix: &str, group: &str) -> Filter {
        Filter {
            exact: (group != "*").then(|| format!("{prefix}{group}")),
            prefix: prefix.to_string(),
        }
    }

    /// The event as this filter's owner should see it, or `None` if it does not match.
    pub fn apply(&self, event: &Event) -> Option<Event> {
        let matches = match &self.exact {
            Some(g) => event.group == *g,
            None => event.group.starts_with(&self.prefix),
        };
        if !matches {
            return None;
        }
        let mut event = event.clone();
        if !self.prefix.is_empty() {
            event.group = event.group[self.prefix.len()..].to_string();
        }
        Some(event)
    }
}

type Callback = Arc<dyn Fn(&Event) + Send + Sync>;

struct Watcher {
    id: u64,
    filter: Filter,
    sender: Sender<Event>,
    dropped: Arc<AtomicU64>,
}

/// The subscriptions and callbacks of one store.
#[derive(Default)]
pub(crate) struct Registry {
    watchers: Mutex<Vec<Watcher>>,
    /// Copy-on-write, so dispatch iterates a snapshot without holding the lock and callbacks may
    /// register or unregister (even themselves) while running.
    callbacks: Mutex<Arc<Vec<(u64, Callback)>>>,
    listeners: AtomicUsize,
    next_id: AtomicU64,
    closed: AtomicBool,
}

impl Registry {
    /// Whether anything would receive an event (cheap; checked before staging any).
    #[inline]
    pub fn has_listeners(&self) -> bool {
        // Sequentially consistent: paired with the writers' "unrecorded write" mark.
        self.listeners.load(Ordering::SeqCst) > 0
    }

    pub fn listener_count(&self) -> usize {
        self.listeners.load(Ordering::Acquire)
    }

    pub fn watch(
        self: &Arc<Self>,
        op: &'static str,
        filter: Filter,
        capacity: usize,
    ) -> Result<Subscription, Error> {
        if !(1..=crate::config::MAX_WATCH_CAPACITY).contains(&capacity) {
            return Err(Error::invalid(
                op,
                "capacity",
                format!(
                    "{capacity} is out of range: a subscription buffers 1 to {} events",
                    crate::config::MAX_WATCH_CAPACITY
                ),
            ));
        }
        let (sender, receiver) = crossbeam_channel::bounded(capacity);
        let dropped = Arc::new(AtomicU64::new(0));
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        {
            let mut watchers = self.watchers.lock();
            if self.closed.load(Ordering::Acquire) {
                return Err(Error::Closed { op, what: "store" });
            }
            watchers.push(Watcher {
                id,
                filter,
                sender,
                dropped: Arc::clone(&dropped),
            });
            self.listeners.fetch_add(1, Ordering::SeqCst);
        }
        Ok(Subscription {
            id,
            receiver,
            dropped,
            registry: Arc::downgrade(self),
        })
    }

    pub fn on_change(self: &Arc<Self>, op: &'static str, callback: Callback) -> Result<CallbackGuard, Error> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        {
            let mut callbacks = self.callbacks.lock();
            if self.closed.load(Ordering::Acquire) {
                return Err(Error::Closed { op, what: "store" });
            }
            let mut next = Vec::clone(&callbacks);
            next.push((id, callback));
            *callbacks = Arc::new(next);
            self.listeners.fetch_add(1, Ordering::SeqCst);
        }
        Ok(CallbackGuard {
            id,
            registry: Some(Arc::downgrade(self)),
        })
    }

    fn remove_watcher(&self, id: u64) {
        let mut watchers = self.watchers.lock();
        if let Some(pos) = watchers.iter().position(|w| w.id == id) {
            watchers.remove(pos);
            self.listeners.fetch_sub(1, Ordering::AcqRel);
        }
    }

    fn remove_callback(&self, id: u64) {
        let removed = {
            let mut callbacks = self.callbacks.lock();
            if !callbacks.iter().any(|(cid, _)| *cid == id) {
                return;
            }
            let next: Vec<_> = callbacks.iter().filter(|(cid, _)| *cid != id).cloned().collect();
            self.listeners.fetch_sub(1, Ordering::AcqRel);
            std::mem::replace(&mut *callbacks, Arc::new(next))
        };
        // Dropped only now, outside the lock: the callback may hold the last handle of the
        // store, whose close takes this lock again.
        drop(removed);
    }

    /// Sends committed events to subscriptions without blocking (full buffers drop and count).
    /// Called while the writer lock is still held, so every subscription sees commit order.
    pub fn send(&self, events: &[Event]) {
        let watchers = self.watchers.lock();
        for watcher in watchers.iter() {
            for event in events {
                if let Some(e) = watcher.filter.apply(event)
                    && watcher.sender.try_send(e).is_err()
                {
                    watcher.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// Runs callbacks on the calling thread after the writer lock is released, in registration
    /// order. Each event sees the registry as it is when that event is dispatched: a callback
    /// registered while an event is in flight misses that event only, and one unregistered
    /// (even by another callback) is never called again. A panicking callback is logged; the
    /// write still succeeded.
    pub fn call(&self, events: &[Event]) {
        for event in events {
            let snapshot = Arc::clone(&self.callbacks.lock());
            for (id, callback) in snapshot.iter() {
                if !self.callbacks.lock().iter().any(|(live, _)| live == id) {
                    continue; // unregistered by an earlier callback for this same event
                }
                if catch_unwind(AssertUnwindSafe(|| callback(event))).is_err() {
                    log::warn!("store: an on_change callback panicked on a {} event", event.kind);
                }
            }
        }
    }

    /// Disconnects every subscription and drops every callback; later registrations fail.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let watchers = std::mem::take(&mut *self.watchers.lock());
        let callbacks = std::mem::take(&mut *self.callbacks.lock());
        self.listeners.store(0, Ordering::Release);
        drop(watchers);
        drop(callbacks);
    }
}

/// A live feed of events for one group (or `"*"`), from [`Store::watch`](crate::Store::watch).
///
/// Sends never block writers: when the buffer is full the event is dropped for this subscription
/// and counted in [`Subscription::dropped`]. Dropping the subscription unsubscribes; closing the
/// store disconnects it (`recv` then returns `None`).
///
/// # Examples
/// ```
/// use store::{EventKind, Kv, Store};
/// let store = Store::in_memory()?;
/// let sub = store.watch("config")?;
/// store.set("config", "colour", "blue")?;
/// store.set("other", "k", "v")?;
/// let event = sub.recv().unwrap();
/// assert_eq!((event.kind, event.value.as_deref()), (EventKind::Set, Some("blue")));
/// assert!(sub.try_recv().is_none());
/// # Ok::<(), store::Error>(())
/// ```
pub struct Subscription {
    id: u64,
    receiver: Receiver<Event>,
    dropped: Arc<AtomicU64>,
    registry: Weak<Registry>,
}

impl Subscription {
    /// Waits for the next event; `None` once the store is closed and the buffer is drained.
    ///
    /// # Examples
    /// ```
    /// use store::{Kv, Store};
    /// let store = Store::in_memory()?;
    /// let sub = store.watch("*")?;
    /// store.set("g", "k", "v")?;
    /// assert!(sub.recv().is_some());
    /// store.close()?;
    /// assert!(sub.recv().is_none());
    /// # Ok::<(), store::Error>(())
    /// ```
    pub fn recv(&self) -> Option<Event> {
        self.receiver.recv().ok()
    }

    /// The next event if one is buffered.
    ///
    /// # Examples
    /// ```
    /// let store = store::Store::in_memory()?;
    /// assert!(store.watch("*")?.try_recv().is_none());
    /// # Ok::<(), store::Error>(())
    /// ```
    pub fn try_recv(&self) -> Option<Event> {
        self.receiver.try_recv().ok()
    }

    /// Waits up to `timeout` for the next event.
    ///
    /// # Examples
    /// ```
    /// let store = store::Store::in_memory()?;
    /// let sub = store.watch("*")?;
    /// assert!(sub.recv_timeout(std::time::Duration::from_millis(1)).is_none());
    /// # Ok::<(), store::Error>(())
    /// ```
    pub fn recv_timeout(&self, timeout: Duration) -> Option<Event> {
        self.receiver.recv_timeout(timeout).ok()
    }

    /// A blocking iterator that ends when the store closes.
    ///
    /// # Examples
    /// ```
    /// use store::{Kv, Store};
    /// let store = Store::in_memory()?;
    /// let sub = store.watch("*")?;
    /// store.set("g", "a", "1")?;
    /// store.set("g", "b", "2")?;
    /// store.close()?;
    /// assert_eq!(sub.iter().count(), 2);
    /// # Ok::<(), store::Error>(())
    /// ```
    pub fn iter(&self) -> impl Iterator<Item = Event> + '_ {
        self.receiver.iter()
    }

    /// Events dropped because the buffer was full.
    ///
    /// # Examples
    /// ```
    /// use store::{Kv, Store, WatchOptions};
    /// let store = Store::in_memory()?;
    /// let sub = store.watch_with("*", WatchOptions { capacity: 1 })?;
    /// store.set("g", "a", "1")?;
    /// store.set("g", "b", "2")?;
    /// assert_eq!(sub.dropped(), 1);
    /// # Ok::<(), store::Error>(())
    /// ```
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Stops the subscription (same as dropping it).
    ///
    /// # Examples
    /// ```
    /// let store = store::Store::in_memory()?;
    /// let sub = store.watch("*")?;
    /// assert_eq!(store.listener_count(), 1);
    /// sub.unsubscribe();
    /// assert_eq!(store.listener_count(), 0);
    /// # Ok::<(), store::Error>(())
    /// ```
    pub fn unsubscribe(self) {}
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(registry) = self.registry.upgrade() {
            registry.remove_watcher(self.id);
        }
    }
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("buffered", &self.receiver.len())
            .field("dropped", &self.dropped())
            .finish()
    }
}

/// Keeps an [`on_change`](crate::Store::on_change) callback registered; dropping it unregisters.
///
/// # Examples
/// ```
/// use std::sync::{Arc, Mutex};
/// use store::{Kv, Store};
/// let store = Store::in_memory()?;
/// let seen = Arc::new(Mutex::new(Vec::new()));
/// let log = seen.clone();
/// let guard = store.on_change(move |e| log.lock().unwrap().push(e.kind))?;
/// store.set("g", "k", "v")?;
/// guard.unregister();
/// store.set("g", "k", "w")?;
/// assert_eq!(seen.lock().unwrap().len(), 1);
/// # Ok::<(), store::Error>(())
/// ```
pub struct CallbackGuard {
    id: u64,
    registry: Option<Weak<Registry>>,
}

impl CallbackGuard {
    /// Unregisters the callback (same as dropping the guard).
    ///
    /// # Examples
    /// ```
    /// let store = store::Store::in_memory()?;
    /// store.on_change(|_| {})?.unregister();
    /// assert_eq!(store.listener_count(), 0);
    /// # Ok::<(), store::Error>(())
    /// ```
    pub fn unregister(self) {}

    /// Keeps the callback registered until the store closes, and drops the guard. A detached
    /// callback that holds a handle of the store keeps the store open when every other handle
    /// is gone (each holds the other); close it with `Store::close`.
    ///
    /// # Examples
    /// ```
    /// let store = store::Store::in_memory()?;
    /// store.on_change(|_| {})?.detach();
    /// assert_eq!(store.listener_count(), 1);
    /// # Ok::<(), store::Error>(())
    /// ```
    pub fn detach(mut self) {
        self.registry = None;
    }
}

impl Drop for CallbackGuard {
    fn drop(&mut self) {
        if let Some(registry) = self.registry.take().and_then(|r| r.upgrade()) {
            registry.remove_callback(self.id);
        }
    }
}

impl fmt::Debug for CallbackGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallbackGuard").field("id", &self.id).finish()
    }
}
