//! The key-value layer: grouped string entries with TTL and versions, on SQLite.
//!
//! [`Kv`] is the one surface every handle offers ([`Store`] today; transactions and scoped
//! namespaces implement the same trait). See [`Store`] for opening, concurrency and durability.
//!
//! # Examples
//! ```
//! use store::kv::{Kv, Store};
//! // One function serves every handle: the store, a transaction, a namespace.
//! fn hit(kv: &impl Kv) -> store::Result<i64> {
//!     kv.increment("stats", "hits", 1)
//! }
//! let store = Store::in_memory()?;
//! hit(&store)?;
//! store.transaction(|tx| hit(tx))?;
//! hit(&store.scoped("app")?)?;
//! assert_eq!(store.get("stats", "hits")?, "2");
//! assert_eq!(store.get("app:stats", "hits")?, "1");
//! # Ok::<(), store::Error>(())
//! ```

pub(crate) mod access;
mod checkpoint;
mod feed;
mod iter;
pub(crate) mod ops;
mod purge;
mod render;
pub(crate) mod sqlite;
pub(crate) mod store;
mod txn;
mod versions;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::clock::UnixMillis;
use crate::error::Result;

// The spec's §3 puts the store's settings in `store::kv`; they also sit at the crate root.
pub use crate::config::{ChangeFeedConfig, Durability, Location, StoreConfig};
pub use feed::{Change, ChangeBatch, MAX_CHANGES_PER_CALL};
pub use iter::{EntryIter, GroupIter};
pub use render::MAX_TEMPLATE_BYTES;
pub use sqlite::{INSERT_CHANGE_SQL, UPSERT_SQL};
pub use store::Store;
pub use txn::Transaction;

/// A key and its value, as returned by pages and iterators.
///
/// # Examples
/// ```
/// use store::{Kv, Store};
/// let store = Store::in_memory()?;
/// store.set("g", "k", "v")?;
/// let page = store.get_page("g", 0, 10)?;
/// assert_eq!(page[0], store::Entry { key: "k".into(), value: "v".into() });
/// # Ok::<(), store::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize)]
pub struct Entry {
    /// The key.
    pub key: String,
    /// The value.
    pub value: String,
}

/// A value with its version and expiry.
///
/// # Examples
/// ```
/// use store::{Kv, Store};
/// let store = Store::in_memory()?;
/// let version = store.set("g", "k", "v")?;
/// let got = store.get_with_version("g", "k")?;
/// assert_eq!((got.value.as_str(), got.version, got.expires_at), ("v", version, None));
/// # Ok::<(), store::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Versioned {
    /// The value.
    pub value: String,
    /// Version of the write that produced the value (≥ 1; 0 for rows written by other programs).
    pub version: u64,
    /// When the entry expires (Unix ms), if it has a TTL.
    pub expires_at: Option<UnixMillis>,
}

/// Every key-value operation of the store.
///
/// Groups and keys are non-empty strings of at most 4096 bytes without NUL; prefixes are `""`
/// (everything) or follow the same rule and match group names literally and case-sensitively
/// (`%`, `_` and `^` are ordinary characters). Only live entries are ever visible: an entry with a
/// TTL disappears at `expires_at`, and reading it then deletes it.
///
/// # Examples
/// ```
/// use store::{Kv, Store};
/// let store = Store::in_memory()?;
/// store.set("config", "colour", "blue")?;
/// assert_eq!(store.get("config", "colour")?, "blue");
/// assert_eq!(store.count("config")?, 1);
/// # Ok::<(), store::Error>(())
/// ```
pub trait Kv {
    /// The live value at (group, key).
    ///
    /// # Errors
    /// `NotFound` if there is no live entry (an expired one is deleted on the way).
    ///
    /// # Examples
    /// ```
    /// use store::{Kv, Store};
    /// let store = Store::in_memory()?;
    /// store.set("g", "k", "v")?;
    /// assert_eq!(store.get("g", "k")?, "v");
    /// assert!(store.get("g", "other").unwrap_err().is_not_found());
    /// # Ok::<(), store::Error>(())
    /// ```
    fn get(&self, group: &str, key: &str) -> Result<String>;

    /// The live value with its version and expiry.
    ///
    /// # Errors
    /// `NotFound` as for [`Kv::get`].
    ///
    /// # Examples
    /// ```
    /// use store::{Kv, Store};
    /// let store = Store::in_memory()?;
    /// let v1 = store.set("g", "k", "a")?;
    /// let v2 = store.set("g", "k", "b")?;
    /// assert!(v2 > v1);
    /// assert_eq!(store.get_with_version("g", "k")?.version, v2);
    /// # Ok::<(), store::Error>(())
    /// ```
    fn get_with_version(&self, group: &str, key: &str) -> Result<Versioned>;

    /// The live value decoded from JSON.
    ///
    /// # Errors
    /// `NotFound`, or `Json` if the value does not decode as `T`.
    ///
    /// # Examples
    /// ```
    /// use store::{Kv, Store};
    /// let store = Store::in_memory()?;
    /// store.set_json("g", "list", &vec![1, 2, 3])?;
    /// assert_eq!(store.get_json::<Vec<i32>>("g", "list")?, vec![1, 2, 3]);
    /// # Ok::<(), store::Error>(())
    /// ```
    fn get_json<T: DeserializeOwned>(&self, group: &str, key: &str) -> Result<T>;

    /// Whether a live entry exists. Never deletes.
    ///
    /// # Examples
    /// ```
    /// use store::{Kv, Store};
    /// let store = Store::in_memory()?;
    /// store.set("g", "k", "v")?;
    /// assert!(store.exists("g", "k")?);
    /// assert!(!store.exists("g", "x")?);
    /// # Ok::<(), store::Error>(())
    /// ```
    fn exists(&self, group: &str, key: &str) -> Result<bool>;

    /// Whether the group has at least one live entry.
    ///
    /// # Examples
    /// ```
    /// use store::{Kv, Store};
    /// let store = Store::in_memory()?;
    /// store.set("g", "k", "v")?;
    /// assert!(store.group_exists("g")?);
    /// assert!(!store.group_exists("h")?);
    /// # Ok::<(), store::Error>(())
    /// ```
    fn group_exists(&self, group: &str) -> Result<bool>;

    /// Inserts or replaces the value, clearing any TTL; returns the new version.
    ///
    /// # Errors
    /// `InvalidInput` for a bad group, key or an over-long value.
    ///
    /// # Examples
    /// ```
    /// use store::{Kv, Store};
    /// let store = Store::in_memory()?;
    /// let version = store.set("g", "k", "v")?;
    /// assert!(version >= 1);
    /// # Ok::<(), store::Error>(())
    /// ```
    fn set(&self, group: &str, key: &str, value: &str) -> Result<u64>;

    /// Like [`Kv::set`], but the entry expires `ttl` from now (`Duration::ZERO` = never visible).
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use store::{Kv, Store};
    /// let store = Store::in_memory()?;
    /// store.set_with_ttl("session", "token", "abc", Duration::from_secs(60))?;
    /// assert!(store.get_with_version("session", "token")?.expires_at.is_some());
    /// # Ok::<(), store::Error>(())
    /// ```
    fn set_with_ttl(&self, group: &str, key: &str, value: &str, ttl: Duration) -> Result<u64>;

    /// Stores `value` encoded as JSON (clears any TTL): compact, with map keys sorted.
    ///
    /// Encoded as serde_json encodes a `serde_json::Value`: a NaN or infinite float is stored
    /// as `null` (JSON has no such numbers), and an integer wider than 64 bits is a `Json`
    /// error.
    ///
    /// # Examples
    /// ```
    /// use store::{Kv, Store};
    /// let store = Store::in_memory()?;
    /// store.set_json("g", "point", &(1, 2))?;
    /// assert_eq!(store.get("g", "point")?, "[1,2]");
    /// # Ok::<(), store::Error>(())
    /// ```
    fn set_json<T: Serialize + ?Sized>(&self, group: &str, key: &str, value: &T) -> Result<u64>;

    /// Compare-and-swap: writes only if the live version is `expected` (`None` = no live entry may
    /// exist). Clears any TTL.
    ///
    /// # Errors
    /// `Conflict { expected, actual }` when the version differs; nothing is written.
    ///
    /// # Examples
    /// ```
    /// use store::{Kv, Store};
    /// let store = Store::in_memory()?;
    /// let v1 = store.set_if_version("g", "k", "first", None)?;
    /// let v2 = store.set_if_version("g", "k", "second", Some(v1))?;
    /// assert!(store.set_if_version("g", "k", "third", Some(v1)).unwrap_err().is_conflict());
    /// assert_eq!(store.get_with_version("g", "k")?.version, v2);
    /// # Ok::<(), store::Error>(())
    /// ```
    fn set_if_version(&self, group: &str, key: &str, value: &str, expected: Option<u64>) -> Result<u64>;

    /// Atomically adds `delta` to a decimal integer value (absent or expired = 0) and returns the
    /// result. Keeps the TTL.
    ///
    /// # Errors
    /// `InvalidInput { field: "value" }` if the stored value is not an `i64`, the sum
    /// overflows, or its decimal text is longer than `max_value_bytes`; nothing is written.
    ///
    /// # Examples
    /// ```
    /// use store::{Kv, Store};
    /// let store = Store::in_memory()?;
    /// assert_eq!(store.increment("stats", "hits", 1)?, 1);
    /// assert_eq!(store.increment("stats", "hits", 41)?, 42);
    /// # Ok::<(), store::Error>(())
    /// ```
    fn increment(&self, group: &str, key: &str, delta: i64) -> Result<i64>;

    /// Deletes (group, key); `true` iff a live entry was removed.
    ///
    /// # Examples
    /// ```
    /// use store::{Kv, Store};
    /// let store = Store::in_memory()?;
    /// store.set("g", "k", "v")?;
    /// assert!(store.delete("g", "k")?);
    /// assert!(!store.delete("g", "k")?);
    /// # Ok::<(), store::Error>(())
    /// ```
    fn delete(&self, group: &str, key: &str) -> Result<bool>;

    /// Deletes every entry of a group; returns how many live entries went.
    ///
    /// Events (and feed rows): an `Expired` for each expired entry that went, in key order,
    /// then one `DeleteGroup`; nothing for a group without entries.
    ///
    /// # Examples
    /// ```
    /// use store::{Kv, Store};
    /// let store = Store::in_memory()?;
    /// store.set("g", "a", "1")?;
    /// store.set("g", "b", "2")?;
    /// assert_eq!(store.delete_group("g")?, 2);
    /// # Ok::<(), store::Error>(())
    /// ```
    fn delete_group(&self, group: &str) -> Result<u64>;

    /// Deletes every group whose name starts with `prefix` (`""` = all), atomically; returns how
    /// many live entries went. Events are [`Kv::delete_group`]'s, group by group in ascending
    /// order.
    ///
    /// # Examples
    /// ```
    /// use store::{Kv, Store};
    /// let store = Store::in_memory()?;
    /// store.set("tenant-a:config", "k", "v")?;
    /// store.set("tenant-b:config", "k", "v")?;
    /// assert_eq!(store.delete_prefix("tenant-a:")?, 1);
    /// assert!(store.exists("tenant-b:config", "k")?);
    /// # Ok::<(), store::Error>(())
    /// ```
    fn delete_prefix(&self, prefix: &str) -> Result<u64>;

    /// Live entries in a group.
    ///
    /// # Examples
    /// ```
    /// use store::{Kv, Store};
    /// let store = Store::in_memory()?;
    /// store.set("g", "k", "v")?;
    /// store.set("g", "k", "v2")?;
    /// assert_eq!(store.count("g")?, 1);
    /// # Ok::<(), store::Error>(())
    /// ```
    fn count(&self, group: &str) -> Result<u64>;

    /// Live entries in every group starting with `prefix` (`""` = all).
    ///
    /// # Examples
    /// ```
    /// use store::{Kv, Store};
    /// let store = Store::in_memory()?;
    /// store.set("user_1", "k", "v")?;
    /// store.set("userX", "k", "v")?;
    /// assert_eq!(store.count_all("user_")?, 1); // `_` is literal
    /// assert_eq!(store.count_all("")?, 2);
    /// # Ok::<(), store::Error>(())
    /// ```
    fn count_all(&self, prefix: &str) -> Result<u64>;

    /// Every live entry of a group, by key.
    ///
    /// # Examples
    /// ```
    /// use store::{Kv, Store};
    /// let store = Store::in_memory()?;
    /// store.set("g", "b", "2")?;
    /// store.set("g", "a", "1")?;
    /// let all = store.get_all("g")?;
    /// assert_eq!(all.keys().collect::<Vec<_>>(), ["a", "b"]);
    /// # Ok::<(), store::Error>(())
    /// ```
    fn get_all(&self, group: &str) -> Result<BTreeMap<String, String>>;

    /// Live entries in key order, skipping `offset` and returning at most `limit` (0 = none).
    ///
    /// # Examples
    /// ```
    /// use store::{Kv, Store};
    /// let store = Store::in_memory()?;
    /// for k in ["alpha", "bravo", "charlie"] { store.set("g", k, k)?; }
    /// let keys: Vec<_> = store.get_page("g", 1, 2)?.into_iter().map(|e| e.key).collect();
    /// assert_eq!(keys, ["bravo", "charlie"]);
    /// # Ok::<(), store::Error>(())
    /// ```
    fn get_page(&self, group: &str, offset: u64, limit: u64) -> Result<Vec<Entry>>;

    /// A lazy iterator over a group's live entries in key order, fetched in 256-row chunks.
    ///
    /// # Examples
    /// ```
    /// use store::{Kv, Store};
    /// let store = Store::in_memory()?;
    /// store.set("g", "a", "1")?;
    /// let keys: Vec<String> = store.iter("g").map(|e| e.map(|e| e.key)).collect::<Result<_, _>>()?;
    /// assert_eq!(keys, ["a"]);
    /// # Ok::<(), store::Error>(())
    /// ```
    fn iter(&self, group: &str) -> EntryIter<'_>;

    /// Distinct groups with a live entry, ascending, starting with `prefix` (`""` = all).
    ///
    /// # Examples
    /// ```
    /// use store::{Kv, Store};
    /// let store = Store::in_memory()?;
    /// store.set("b", "k", "v")?;
    /// store.set("a", "k", "v")?;
    /// assert_eq!(store.groups("")?, ["a", "b"]);
    /// # Ok::<(), store::Error>(())
    /// ```
    fn groups(&self, prefix: &str) -> Result<Vec<String>>;

    /// A lazy iterator over [`Kv::groups`].
    ///
    /// # Examples
    /// ```
    /// use store::{Kv, Store};
    /// let store = Store::in_memory()?;
    /// store.set("a", "k", "v")?;
    /// assert_eq!(store.groups_iter("").count(), 1);
    /// # Ok::<(), store::Error>(())
    /// ```
    fn groups_iter(&self, prefix: &str) -> GroupIter<'_>;

    /// Renders a minijinja template with the group's live entries as variables (`{{ key }}`, or
    /// `{{ entries["odd-key"] }}`) and `group`. Undefined variables render as `""`.
    ///
    /// # Errors
    /// `Template` for syntax errors, runtime errors, more than 100,000 instructions, a
    /// template over [`MAX_TEMPLATE_BYTES`](crate::kv::MAX_TEMPLATE_BYTES) (64 KiB), or a call
    /// of `namespace()`, which templates cannot use (a namespace holding itself would crash
    /// the template engine; see docs/guarantees.md).
    ///
    /// # Examples
    /// ```
    /// use store::{Kv, Store};
    /// let store = Store::in_memory()?;
    /// store.set("user", "name", "Alice")?;
    /// assert_eq!(store.render("Hello {{ name }}{{ missing }}", "user")?, "Hello Alice");
    /// # Ok::<(), store::Error>(())
    /// ```
    fn render(&self, template: &str, group: &str) -> Result<String>;

    /// The value split on `sep` (`""` = one item per character).
    ///
    /// # Examples
    /// ```
    /// use store::{Kv, Store};
    /// let store = Store::in_memory()?;
    /// store.set("g", "k", "alpha,beta,gamma")?;
    /// assert_eq!(store.get_split("g", "k", ",")?, ["alpha", "beta", "gamma"]);
    /// # Ok::<(), store::Error>(())
    /// ```
    fn get_split(&self, group: &str, key: &str, sep: &str) -> Result<Vec<String>>;

    /// The value split on whitespace.
    ///
    /// # Examples
    /// ```
    /// use store::{Kv, Store};
    /// let store = Store::in_memory()?;
    /// store.set("g", "k", " a\t b  ")?;
    /// assert_eq!(store.get_fields("g", "k")?, ["a", "b"]);
    /// # Ok::<(), store::Error>(())
    /// ```
    fn get_fields(&self, group: &str, key: &str) -> Result<Vec<String>>;

    /// Deletes every expired entry in this handle's scope now; returns how many went.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use store::{Kv, Store};
    /// let store = Store::in_memory()?;
    /// store.set_with_ttl("g", "k", "v", Duration::ZERO)?;
    /// assert_eq!(store.purge_expired()?, 1);
    /// # Ok::<(), store::Error>(())
    /// ```
    fn purge_expired(&self) -> Result<u64>;
}
