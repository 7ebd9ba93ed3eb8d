//! Scoped namespaces: a view of the store confined to groups `<namespace>:<group>`, with quotas.
//!
//! A [`ScopedStore`] can never read or write outside its namespace: every group and prefix it is
//! given is local and gets `namespace:` prepended, and every group it returns (in results, events
//! and errors) has it stripped. Writes that add data are checked against the [`Quota`] inside the
//! write's own `BEGIN IMMEDIATE`, so concurrent writers — threads or processes — never overshoot.
//! Usage comes from counters that SQLite triggers keep exact in the same transaction as every
//! write (see `kv/sqlite/usage.rs`), so a check is O(1) however large the namespace. Expired
//! rows stay in the counters until purged; a check that had to count 128 or more of them
//! purges them after its write, so subscribers may see `Expired` events follow a scoped write
//! (see `quota_checked_write` in `kv/ops.rs`).
//!
//! # Examples
//! ```
//! use store::{Kv, Quota, ScopedConfig, Store};
//! let store = Store::in_memory()?;
//! let a = store.scoped("tenant-a")?;
//! let quota = Quota { max_keys: 1, ..Default::default() };
//! let b = store.scoped_with(ScopedConfig::new("tenant-b").with_quota(quota))?;
//! a.set("config", "k", "a")?;
//! b.set("config", "k", "b")?;
//! assert_eq!(a.get("config", "k")?, "a"); // same local names, separate data
//! assert!(b.set("config", "k2", "x").unwrap_err().is_quota_exceeded());
//! assert_eq!(b.usage()?.keys, 1);
//! assert_eq!(store.groups("")?, ["tenant-a:config", "tenant-b:config"]);
//! # Ok::<(), store::Error>(())
//! ```

use std::borrow::Cow;
use std::sync::Arc;

use rusqlite::Connection;

use crate::error::{Error, QuotaLimit, Result, SqliteContext};
use crate::events::{CallbackGuard, Event, Filter, Subscription, WatchOptions};
use crate::kv::access::{Access, OpNames, Statements, WriteCtx, op_names, sealed::Sealed};
use crate::kv::sqlite::{self, usage};
use crate::kv::{Kv, Store, Transaction};
use crate::validate;

/// How many expired rows (besides the one a write replaces) a quota check must have counted
/// before its write purges them. Below it the count is cheap (a few hundred index entries at
/// most) and expired rows are removed only as SPEC §3.4 lists: a namespace with a few expired
/// entries near its limit behaves exactly as the spec's examples (rewriting an expired key
/// gives one `Set`, other expired rows stay until a read or a purge). At or above it, a
/// namespace would pay a growing count on every write near its limit until the purge thread
/// ran, so the write purges them (issue 4's "quota checks are O(1)").
pub(crate) const PURGE_AFTER_COUNTING: u64 = 128;

op_names!(SCOPED_OPS, "ScopedStore");
op_names!(SCOPED_TXN_OPS, "ScopedTransaction");

/// The group key-only calls use: `set_key`, `get_key`, `exists_key`, `delete_key`.
///
/// # Examples
/// ```
/// use store::{DEFAULT_GROUP, Kv, Store};
/// let ns = Store::in_memory()?.scoped("app")?;
/// ns.set_key("theme", "dark")?;
/// assert_eq!(ns.get(DEFAULT_GROUP, "theme")?, "dark");
/// assert_eq!(ns.groups("")?, [DEFAULT_GROUP]);
/// # Ok::<(), store::Error>(())
/// ```
pub const DEFAULT_GROUP: &str = "default";

/// Per-namespace limits; 0 means unlimited.
///
/// # Examples
/// ```
/// let quota = store::Quota { max_keys: 1000, max_bytes: 1 << 20, ..Default::default() };
/// assert!(!quota.is_unlimited());
/// assert!(store::Quota::default().is_unlimited());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Quota {
    /// Live keys across the namespace's groups.
    pub max_keys: u64,
    /// Groups holding at least one live key.
    pub max_groups: u64,
    /// UTF-8 bytes of keys plus values of live entries (group names excluded).
    pub max_bytes: u64,
}

impl Quota {
    /// `true` when all three limits are 0.
    ///
    /// # Examples
    /// ```
    /// assert!(store::Quota::default().is_unlimited());
    /// ```
    pub fn is_unlimited(&self) -> bool {
        self.max_keys == 0 && self.max_groups == 0 && self.max_bytes == 0
    }
}

/// A namespace and its quota, for [`Store::scoped_with`].
///
/// # Examples
/// ```
/// use store::{Quota, ScopedConfig};
/// let config = ScopedConfig::new("tenant-42").with_quota(Quota { max_keys: 10, ..Default::default() });
/// assert_eq!(config.namespace, "tenant-42");
/// // Or as a literal, as the issue writes it:
/// let literal = ScopedConfig {
///     namespace: "tenant-42".into(),
///     quota: Quota { max_keys: 10, max_groups: 0, max_bytes: 0 },
/// };
/// assert_eq!(literal, config);
/// let ns = store::Store::in_memory()?.scoped_with(literal)?;
/// assert_eq!(ns.quota().max_keys, 10);
/// # Ok::<(), store::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopedConfig {
    /// `^[A-Za-z0-9-]+$`, at most 64 bytes.
    pub namespace: String,
    /// Limits checked on every write that adds data.
    pub quota: Quota,
}

impl ScopedConfig {
    /// A namespace with no limits.
    ///
    /// # Examples
    /// ```
    /// assert!(store::ScopedConfig::new("app").quota.is_unlimited());
    /// ```
    pub fn new(namespace: impl Into<String>) -> Self {
        ScopedConfig {
            namespace: namespace.into(),
            quota: Quota::default(),
        }
    }

    /// Sets the quota (builder style).
    ///
    /// # Examples
    /// ```
    /// let c = store::ScopedConfig::new("app").with_quota(store::Quota { max_groups: 3, ..Default::default() });
    /// assert_eq!(c.quota.max_groups, 3);
    /// ```
    pub fn with_quota(mut self, quota: Quota) -> Self {
        self.quota = quota;
        self
    }
}

/// Live usage of a namespace.
///
/// # Examples
/// ```
/// use store::{Kv, Store};
/// let store = Store::in_memory()?;
/// let ns = store.scoped("app")?;
/// ns.set("config", "k", "vv")?;
/// assert_eq!(ns.usage()?, store::Usage { keys: 1, groups: 1, bytes: 3 });
/// # Ok::<(), store::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Usage {
    /// Live keys.
    pub keys: u64,
    /// Groups with a live key.
    pub groups: u64,
    /// UTF-8 bytes of live keys plus values.
    pub bytes: u64,
}

/// A write a quota check weighs: its stored group, the byte size of the live entry it
/// replaces (if any) and its own byte size (key + value).
struct QuotaWrite<'a> {
    group: &'a str,
    existing: Option<u64>,
    new_bytes: u64,
}

/// The scope of unscoped handles.
pub(crate) static ROOT_SCOPE: Scope = Scope::ROOT;

/// Where a handle's names live: the root (names as given) or one namespace.
///
/// Every handle holds one; it has no public constructor or methods. Choose a namespace with
/// [`Store::scoped`] or [`Store::scoped_with`].
///
/// # Examples
/// ```
/// use store::{Kv, Store};
/// let store = Store::in_memory()?; // the root scope: names as given
/// let app = store.scoped("app")?; // the scope of namespace "app"
/// app.set("config", "k", "v")?;
/// assert_eq!(store.get("app:config", "k")?, "v");
/// assert_eq!(app.groups("")?, ["config"]);
/// # Ok::<(), store::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Scope {
    namespace: Option<String>,
    /// `"<namespace>:"`, or `""` at the root.
    prefix: String,
    quota: Quota,
}

impl Scope {
    pub(crate) const ROOT: Scope = Scope {
        namespace: None,
        prefix: String::new(),
        quota: Quota {
            max_keys: 0,
            max_groups: 0,
            max_bytes: 0,
        },
    };

    fn new(op: &'static str, config: ScopedConfig) -> Result<Scope> {
        validate::namespace(op, &config.namespace)?;
        Ok(Scope {
            prefix: format!("{}:", config.namespace),
            namespace: Some(config.namespace),
            quota: config.quota,
        })
    }

    /// The stored name of a local group or prefix.
    #[inline]
    pub(crate) fn full<'a>(&self, local: &'a str) -> Cow<'a, str> {
        if self.prefix.is_empty() {
            Cow::Borrowed(local)
        } else {
            Cow::Owned(format!("{}{local}", self.prefix))
        }
    }

    /// The stored name of a local group a write creates, checked against the group length
    /// limit: the namespace prefix counts, so a written local group may be up to `prefix` bytes
    /// shorter than an unscoped one (otherwise the store would hold a name its own unscoped
    /// calls refuse). Reads and deletes use [`Scope::full`] unchecked, so rows written before
    /// this rule stay reachable.
    #[inline]
    pub(crate) fn group<'a>(&self, op: &'static str, local: &'a str) -> Result<Cow<'a, str>> {
        let full = self.full(local);
        if full.len() > validate::MAX_NAME_BYTES {
            return Err(Error::invalid(
                op,
                "group",
                format!(
                    "the group is {} bytes and is stored as {:?} + group, {} bytes, over the limit of {}; \
                     shorten it to at most {} bytes",
                    local.len(),
                    self.prefix,
                    full.len(),
                    validate::MAX_NAME_BYTES,
                    validate::MAX_NAME_BYTES - self.prefix.len()
                ),
            ));
        }
        Ok(full)
    }

    /// The local name of a stored group of this scope.
    #[inline]
    pub(crate) fn local<'a>(&self, full: &'a str) -> &'a str {
        full.strip_prefix(self.prefix.as_str()).unwrap_or(full)
    }

    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The namespace, and the [`usage::Room`] within which writing `key` = `value` passes its
    /// quota whatever the write replaces, for [`usage::upsert_if_room`]. `None` when there is
    /// no quota to check, or when the write alone is over the byte limit: then only the exact
    /// check ([`Scope::check_write`]) can tell, from the size of the entry it replaces.
    pub(crate) fn recorded_room(&self, key: &str, value: &str) -> Option<(&str, usage::Room)> {
        let namespace = self.namespace.as_deref()?;
        let quota = self.quota;
        if quota.is_unlimited() {
            return None;
        }
        let limit = |max: u64| {
            if max == 0 {
                i64::MAX
            } else {
                validate::clamp_i64(max)
            }
        };
        let new_bytes = (key.len() + value.len()) as u64;
        let bytes_at_most = match quota.max_bytes {
            0 => i64::MAX,
            max => validate::clamp_i64(max.checked_sub(new_bytes)?),
        };
        Some((
            namespace,
            usage::Room {
                keys_below: limit(quota.max_keys),
                bytes_at_most,
                groups_below: limit(quota.max_groups),
            },
        ))
    }

    /// Enforces the quota for writing `value` at (`group`, `key`) (stored names), inside the
    /// write's transaction, after its earlier writes. A scope without a quota passes at once.
    ///
    /// The check runs first on the usage the counters record, an upper bound of the live usage
    /// (expired rows not purged yet still count), so a write that fits is let through in O(1)
    /// however many rows have expired; only a write it would refuse is checked again against
    /// the exact live usage, which visits the namespace's expired rows. When it finds at least
    /// [`PURGE_AFTER_COUNTING`] besides the one this write replaces, `counted_expired` is set,
    /// and the caller purges them (see `quota_checked_write` in `kv/ops.rs`), so no check
    /// visits more than that many expired rows for long.
    pub(crate) fn check_write(
        &self,
        w: &WriteCtx<'_>,
        group: &str,
        key: &str,
        value: &str,
        counted_expired: &mut bool,
    ) -> Result<()> {
        let (Some(namespace), false) = (&self.namespace, self.quota.is_unlimited()) else {
            return Ok(());
        };
        let op = w.op;
        let (existing, recorded) = usage::quota_state(w.conn, namespace, group, key, w.now)
            .ctx(op, "read entry and namespace usage for quota check")?;
        let write = QuotaWrite {
            group,
            existing,
            new_bytes: (key.len() + value.len()) as u64,
        };
        let mut over = self.first_exceeded(w, &write, recorded.upper_bound())?;
        if over.is_some() && recorded.may_count_expired() {
            let live = recorded
                .live(w.conn, namespace, w.now)
                .ctx(op, "read live namespace usage for quota check")?;
            let expired = recorded.upper_bound().keys.saturating_sub(live.keys);
            if expired >= PURGE_AFTER_COUNTING {
                let own = usage::expired_entry_exists(w.conn, group, key, w.now)
                    .ctx(op, "read entry for quota check")?;
                *counted_expired |= expired - u64::from(own) >= PURGE_AFTER_COUNTING;
            }
            over = self.first_exceeded(w, &write, live)?;
        }
        match over {
            None => Ok(()),
            Some((limit, max, requested)) => Err(Error::QuotaExceeded {
                op,
                namespace: namespace.clone(),
                limit,
                max,
                requested,
            }),
        }
    }

    /// The first limit `write` would exceed given `usage`: (limit, its maximum, the usage the
    /// write asks for).
    fn first_exceeded(
        &self,
        w: &WriteCtx<'_>,
        write: &QuotaWrite<'_>,
        usage: usage::LiveUsage,
    ) -> Result<Option<(QuotaLimit, u64, u64)>> {
        let quota = self.quota;
        if write.existing.is_none() {
            if quota.max_keys > 0 && usage.keys + 1 > quota.max_keys {
                return Ok(Some((QuotaLimit::Keys, quota.max_keys, usage.keys + 1)));
            }
            if quota.max_groups > 0
                && usage.groups + 1 > quota.max_groups
                && !sqlite::group_exists(w.conn, write.group, w.now)
                    .ctx(w.op, "read group for quota check")?
            {
                return Ok(Some((QuotaLimit::Groups, quota.max_groups, usage.groups + 1)));
            }
        }
        let old_bytes = write.existing.unwrap_or(0);
        if quota.max_bytes > 0 && write.new_bytes > old_bytes {
            let requested = usage.bytes.saturating_add(write.new_bytes - old_bytes);
            if requested > quota.max_bytes {
                return Ok(Some((QuotaLimit::Bytes, quota.max_bytes, requested)));
            }
        }
        Ok(None)
    }

    /// The namespace's live usage at `now`, which must be read once the read's snapshot is
    /// taken (see `read_at_snapshot`).
    fn usage(&self, conn: &Connection, now: i64) -> rusqlite::Result<Usage> {
        let namespace = self.namespace.as_deref().unwrap_or_default();
        let u = usage::live_usage(conn, namespace, now)?;
        Ok(Usage {
            keys: u.keys,
            groups: u.groups,
            bytes: u.bytes,
        })
    }
}

/// A [`Store`] confined to one namespace, with an optional [`Quota`]. A cheap `Clone`.
///
/// # Examples
/// ```
/// use store::{Kv, Quota, ScopedConfig, Store};
/// let store = Store::in_memory()?;
/// let tenant = store.scoped_with(ScopedConfig::new("tenant-a")
///     .with_quota(Quota { max_keys: 2, ..Default::default() }))?;
/// tenant.set("config", "colour", "blue")?;
/// tenant.set_key("greeting", "hi")?; // group "default"
/// assert!(tenant.set("config", "size", "xl").unwrap_err().is_quota_exceeded());
/// assert_eq!(tenant.groups("")?, ["config", "default"]);
/// assert_eq!(store.get("tenant-a:config", "colour")?, "blue"); // stored name
/// # Ok::<(), store::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct ScopedStore {
    store: Store,
    scope: Arc<Scope>,
}

impl Store {
    /// This store confined to `namespace`, without limits.
    ///
    /// # Errors
    /// `InvalidInput { field: "namespace" }` unless it matches `^[A-Za-z0-9-]+$` (≤ 64 bytes).
    ///
    /// # Examples
    /// ```
    /// let store = store::Store::in_memory()?;
    /// assert!(store.scoped("tenant-1").is_ok());
    /// assert!(store.scoped("a:b").is_err());
    /// # Ok::<(), store::Error>(())
    /// ```
    pub fn scoped(&self, namespace: &str) -> Result<ScopedStore> {
        self.scoped_with(ScopedConfig::new(namespace))
    }

    /// This store confined to a namespace, with a quota.
    ///
    /// # Examples
    /// ```
    /// use store::{Quota, ScopedConfig, Store};
    /// let store = Store::in_memory()?;
    /// let ns = store.scoped_with(ScopedConfig::new("uploads").with_quota(Quota { max_bytes: 1024, ..Default::default() }))?;
    /// assert_eq!(ns.quota().max_bytes, 1024);
    /// # Ok::<(), store::Error>(())
    /// ```
    pub fn scoped_with(&self, config: ScopedConfig) -> Result<ScopedStore> {
        Ok(ScopedStore {
            store: self.clone(),
            scope: Arc::new(Scope::new("Store::scoped", config)?),
        })
    }
}

impl ScopedStore {
    /// The namespace.
    ///
    /// # Examples
    /// ```
    /// assert_eq!(store::Store::in_memory()?.scoped("app")?.namespace(), "app");
    /// # Ok::<(), store::Error>(())
    /// ```
    pub fn namespace(&self) -> &str {
        self.scope.namespace.as_deref().unwrap_or_default()
    }

    /// The quota.
    ///
    /// # Examples
    /// ```
    /// assert!(store::Store::in_memory()?.scoped("app")?.quota().is_unlimited());
    /// # Ok::<(), store::Error>(())
    /// ```
    pub fn quota(&self) -> Quota {
        self.scope.quota
    }

    /// The underlying store.
    ///
    /// # Examples
    /// ```
    /// let store = store::Store::in_memory()?;
    /// assert!(!store.scoped("app")?.store().is_closed());
    /// # Ok::<(), store::Error>(())
    /// ```
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Live keys, groups and bytes of the namespace.
    ///
    /// # Examples
    /// ```
    /// use store::Kv;
    /// let ns = store::Store::in_memory()?.scoped("app")?;
    /// ns.set("g", "ab", "cd")?;
    /// assert_eq!(ns.usage()?.bytes, 4);
    /// # Ok::<(), store::Error>(())
    /// ```
    pub fn usage(&self) -> Result<Usage> {
        const OP: &str = "ScopedStore::usage";
        // Counters and expired rows from one snapshot (or a purge in between counts twice),
        // judged at a time read after it was taken.
        self.store.read_at_snapshot(OP, |c, now| self.scope.usage(c, now))
    }

    /// [`Kv::set`] on the group [`DEFAULT_GROUP`].
    ///
    /// # Examples
    /// ```
    /// use store::Kv;
    /// let ns = store::Store::in_memory()?.scoped("app")?;
    /// ns.set_key("k", "v")?;
    /// assert_eq!(ns.get("default", "k")?, "v");
    /// # Ok::<(), store::Error>(())
    /// ```
    pub fn set_key(&self, key: &str, value: &str) -> Result<u64> {
        self.set(DEFAULT_GROUP, key, value)
    }

    /// [`Kv::get`] on the group [`DEFAULT_GROUP`].
    ///
    /// # Examples
    /// ```
    /// let ns = store::Store::in_memory()?.scoped("app")?;
    /// ns.set_key("k", "v")?;
    /// assert_eq!(ns.get_key("k")?, "v");
    /// # Ok::<(), store::Error>(())
    /// ```
    pub fn get_key(&self, key: &str) -> Result<String> {
        self.get(DEFAULT_GROUP, key)
    }

    /// [`Kv::exists`] on the group [`DEFAULT_GROUP`].
    ///
    /// # Examples
    /// ```
    /// let ns = store::Store::in_memory()?.scoped("app")?;
    /// assert!(!ns.exists_key("k")?);
    /// # Ok::<(), store::Error>(())
    /// ```
    pub fn exists_key(&self, key: &str) -> Result<bool> {
        self.exists(DEFAULT_GROUP, key)
    }

    /// [`Kv::delete`] on the group [`DEFAULT_GROUP`].
    ///
    /// # Examples
    /// ```
    /// let ns = store::Store::in_memory()?.scoped("app")?;
    /// ns.set_key("k", "v")?;
    /// assert!(ns.delete_key("k")?);
    /// # Ok::<(), store::Error>(())
    /// ```
    pub fn delete_key(&self, key: &str) -> Result<bool> {
        self.delete(DEFAULT_GROUP, key)
    }

    /// Watches a local group, or `"*"` for every group of this namespace; events carry local
    /// group names.
    ///
    /// # Examples
    /// ```
    /// use store::Kv;
    /// let store = store::Store::in_memory()?;
    /// let ns = store.scoped("app")?;
    /// let sub = ns.watch("*")?;
    /// store.set("other:g", "k", "v")?; // another namespace: not seen
    /// ns.set("g", "k", "v")?;
    /// assert_eq!(sub.try_recv().map(|e| e.group), Some("g".to_string()));
    /// assert!(sub.try_recv().is_none());
    /// # Ok::<(), store::Error>(())
    /// ```
    pub fn watch(&self, group: &str) -> Result<Subscription> {
        self.watch_with(group, WatchOptions::default())
    }

    /// [`ScopedStore::watch`] with explicit options.
    ///
    /// # Examples
    /// ```
    /// let ns = store::Store::in_memory()?.scoped("app")?;
    /// let sub = ns.watch_with("g", store::WatchOptions { capacity: 64 })?;
    /// # Ok::<(), store::Error>(())
    /// ```
    pub fn watch_with(&self, group: &str, options: WatchOptions) -> Result<Subscription> {
        self.store
            .watch_filtered("ScopedStore::watch", self.scope.prefix(), group, options)
    }

    /// A callback for this namespace's events only, with local group names.
    ///
    /// # Examples
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use store::Kv;
    /// let ns = store::Store::in_memory()?.scoped("app")?;
    /// let groups = Arc::new(Mutex::new(Vec::new()));
    /// let g = groups.clone();
    /// let _guard = ns.on_change(move |e| g.lock().unwrap().push(e.group.clone()))?;
    /// ns.set("config", "k", "v")?;
    /// assert_eq!(*groups.lock().unwrap(), ["config"]);
    /// # Ok::<(), store::Error>(())
    /// ```
    pub fn on_change(&self, f: impl Fn(&Event) + Send + Sync + 'static) -> Result<CallbackGuard> {
        self.store
            .on_change_filtered("ScopedStore::on_change", Filter::new(self.scope.prefix(), "*"), f)
    }

    /// A transaction confined to this namespace, with the same guarantees as
    /// [`Store::transaction`]; quota checks count the transaction's pending writes.
    ///
    /// # Examples
    /// ```
    /// use store::Kv;
    /// let ns = store::Store::in_memory()?.scoped("app")?;
    /// ns.transaction(|tx| {
    ///     tx.set("a", "k", "1")?;
    ///     tx.set("b", "k", "2")?;
    ///     Ok(())
    /// })?;
    /// assert_eq!(ns.count_all("")?, 2);
    /// # Ok::<(), store::Error>(())
    /// ```
    pub fn transaction<T>(&self, f: impl FnOnce(&ScopedTransaction<'_>) -> Result<T>) -> Result<T> {
        let scope = Arc::clone(&self.scope);
        self.store.transaction_as("ScopedStore::transaction", move |tx| {
            f(&ScopedTransaction { tx, scope })
        })
    }
}

/// A transaction seen through a namespace; from [`ScopedStore::transaction`] or
/// [`Transaction::scoped`].
///
/// # Examples
/// ```
/// use store::Kv;
/// let store = store::Store::in_memory()?;
/// store.transaction(|tx| {
///     tx.set("global", "k", "v")?;
///     tx.scoped("tenant-a")?.set("config", "k", "v")?;
///     Ok(())
/// })?;
/// assert!(store.exists("tenant-a:config", "k")?);
/// # Ok::<(), store::Error>(())
/// ```
pub struct ScopedTransaction<'a> {
    tx: &'a Transaction<'a>,
    scope: Arc<Scope>,
}

impl<'a> Transaction<'a> {
    /// This transaction confined to a namespace, without limits.
    ///
    /// # Examples
    /// ```
    /// use store::Kv;
    /// let store = store::Store::in_memory()?;
    /// store.transaction(|tx| tx.scoped("app")?.set("g", "k", "v").map(drop))?;
    /// # Ok::<(), store::Error>(())
    /// ```
    pub fn scoped(&'a self, namespace: &str) -> Result<ScopedTransaction<'a>> {
        self.scoped_with(ScopedConfig::new(namespace))
    }

    /// This transaction confined to a namespace, with a quota.
    ///
    /// # Examples
    /// ```
    /// use store::{Kv, Quota, ScopedConfig};
    /// let store = store::Store::in_memory()?;
    /// let result = store.transaction(|tx| {
    ///     let ns = tx.scoped_with(ScopedConfig::new("app").with_quota(Quota { max_keys: 1, ..Default::default() }))?;
    ///     ns.set("g", "a", "1")?;
    ///     ns.set("g", "b", "2") // over the quota: the error rolls everything back
    /// });
    /// assert!(result.unwrap_err().is_quota_exceeded());
    /// assert_eq!(store.count_all("")?, 0);
    /// # Ok::<(), store::Error>(())
    /// ```
    pub fn scoped_with(&'a self, config: ScopedConfig) -> Result<ScopedTransaction<'a>> {
        Ok(ScopedTransaction {
            tx: self,
            scope: Arc::new(Scope::new("Transaction::scoped", config)?),
        })
    }
}

impl ScopedTransaction<'_> {
    /// The namespace.
    ///
    /// # Examples
    /// ```
    /// let store = store::Store::in_memory()?;
    /// store.transaction(|tx| { assert_eq!(tx.scoped("app")?.namespace(), "app"); Ok(()) })?;
    /// # Ok::<(), store::Error>(())
    /// ```
    pub fn namespace(&self) -> &str {
        self.scope.namespace.as_deref().unwrap_or_default()
    }

    /// The quota.
    ///
    /// # Examples
    /// ```
    /// use store::{Quota, ScopedConfig};
    /// let store = store::Store::in_memory()?;
    /// store.transaction(|tx| {
    ///     let ns = tx.scoped_with(ScopedConfig::new("app").with_quota(Quota { max_keys: 5, ..Default::default() }))?;
    ///     assert_eq!(ns.quota().max_keys, 5);
    ///     Ok(())
    /// })?;
    /// # Ok::<(), store::Error>(())
    /// ```
    pub fn quota(&self) -> Quota {
        self.scope.quota
    }

    /// Live usage, including this transaction's pending writes.
    ///
    /// # Examples
    /// ```
    /// use store::Kv;
    /// let store = store::Store::in_memory()?;
    /// store.transaction(|tx| {
    ///     let ns = tx.scoped("app")?;
    ///     ns.set("g", "k", "v")?;
    ///     assert_eq!(ns.usage()?.keys, 1);
    ///     Ok(())
    /// })?;
    /// # Ok::<(), store::Error>(())
    /// ```
    pub fn usage(&self) -> Result<Usage> {
        const OP: &str = "ScopedTransaction::usage";
        self.tx.read_at_snapshot(OP, |c, now| self.scope.usage(c, now))
    }

    /// [`Kv::set`] on the group [`DEFAULT_GROUP`].
    ///
    /// # Examples
    /// ```
    /// let store = store::Store::in_memory()?;
    /// store.transaction(|tx| tx.scoped("app")?.set_key("k", "v").map(drop))?;
    /// # Ok::<(), store::Error>(())
    /// ```
    pub fn set_key(&self, key: &str, value: &str) -> Result<u64> {
        self.set(DEFAULT_GROUP, key, value)
    }

    /// [`Kv::get`] on the group [`DEFAULT_GROUP`].
    ///
    /// # Examples
    /// ```
    /// let store = store::Store::in_memory()?;
    /// store.transaction(|tx| {
    ///     let ns = tx.scoped("app")?;
    ///     ns.set_key("k", "v")?;
    ///     assert_eq!(ns.get_key("k")?, "v");
    ///     Ok(())
    /// })?;
    /// # Ok::<(), store::Error>(())
    /// ```
    pub fn get_key(&self, key: &str) -> Result<String> {
        self.get(DEFAULT_GROUP, key)
    }

    /// [`Kv::exists`] on the group [`DEFAULT_GROUP`].
    ///
    /// # Examples
    /// ```
    /// let store = store::Store::in_memory()?;
    /// store.transaction(|tx| { assert!(!tx.scoped("app")?.exists_key("k")?); Ok(()) })?;
    /// # Ok::<(), store::Error>(())
    /// ```
    pub fn exists_key(&self, key: &str) -> Result<bool> {
        self.exists(DEFAULT_GROUP, key)
    }

    /// [`Kv::delete`] on the group [`DEFAULT_GROUP`].
    ///
    /// # Examples
    /// ```
    /// let store = store::Store::in_memory()?;
    /// store.transaction(|tx| { assert!(!tx.scoped("app")?.delete_key("k")?); Ok(()) })?;
    /// # Ok::<(), store::Error>(())
    /// ```
    pub fn delete_key(&self, key: &str) -> Result<bool> {
        self.delete(DEFAULT_GROUP, key)
    }
}

impl std::fmt::Debug for ScopedTransaction<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScopedTransaction")
            .field("namespace", &self.namespace())
            .finish()
    }
}

impl Sealed for ScopedStore {
    fn ops(&self) -> &'static OpNames {
        &SCOPED_OPS
    }

    fn scope(&self) -> &Scope {
        &self.scope
    }

    fn now(&self) -> i64 {
        self.store.now()
    }

    fn max_value_bytes(&self) -> usize {
        self.store.max_value_bytes()
    }

    fn read<T>(&self, op: &'static str, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        self.store.read(op, f)
    }

    fn read_at_snapshot<T>(
        &self,
        op: &'static str,
        f: impl FnOnce(&Connection, i64) -> rusqlite::Result<T>,
    ) -> Result<T> {
        self.store.read_at_snapshot(op, f)
    }

    fn write<T>(
        &self,
        op: &'static str,
        now: i64,
        statements: Statements,
        f: impl FnOnce(&mut WriteCtx<'_>) -> Result<T>,
    ) -> Result<T> {
        self.store.write(op, now, statements, f)
    }
}

impl Access for ScopedStore {}

impl Sealed for ScopedTransaction<'_> {
    fn ops(&self) -> &'static OpNames {
        &SCOPED_TXN_OPS
    }

    fn scope(&self) -> &Scope {
        &self.scope
    }

    fn now(&self) -> i64 {
        self.tx.now()
    }

    fn in_transaction(&self) -> bool {
        true
    }

    fn max_value_bytes(&self) -> usize {
        self.tx.max_value_bytes()
    }

    fn read<T>(&self, op: &'static str, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        self.tx.read(op, f)
    }

    fn write<T>(
        &self,
        op: &'static str,
        now: i64,
        statements: Statements,
        f: impl FnOnce(&mut WriteCtx<'_>) -> Result<T>,
    ) -> Result<T> {
        self.tx.write(op, now, statements, f)
    }
}

impl Access for ScopedTransaction<'_> {}
