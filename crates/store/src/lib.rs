//! # store
//!
//! An embedded state + analytics store: durable, grouped key-value state on SQLite (TTL,
//! versions, atomic prefix operations, templates) behind one handle and one error type.
//!
//! # Example: state that survives a restart
//! ```
//! use std::time::Duration;
//! use store::{Kv, Store};
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("state.db");
//! let store = Store::open(&path)?;
//! store.set("config", "pool", "eu-west")?;
//! store.set_with_ttl("sessions", "abc", "alice", Duration::from_secs(3600))?;
//! assert_eq!(store.render("pool={{ pool }}", "config")?, "pool=eu-west");
//! drop(store);
//!
//! let store = Store::open(&path)?;
//! assert_eq!(store.get("config", "pool")?, "eu-west");
//! assert_eq!(store.count_all("")?, 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Crate features
//! - `analytics` (default): the DuckDB analytics layer. Without it the crate is SQLite-only.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

#[cfg(feature = "analytics")]
pub mod analytics;
mod clock;
mod config;
mod error;
pub mod events;
pub mod kv;
pub mod scope;
pub mod text;
mod validate;

pub use clock::{Clock, ManualClock, SystemClock, UnixMillis};
pub use config::{
    ChangeFeedConfig, DEFAULT_READER_MMAP_BYTES, DEFAULT_WATCH_CAPACITY, Durability, Location, MAX_READERS,
    MAX_VALUE_BYTES, MAX_WATCH_CAPACITY, StoreConfig,
};
pub use error::{Error, ErrorKind, QuotaLimit, Result};
pub use events::{CallbackGuard, Event, EventKind, Subscription, WatchOptions};
pub use kv::{Change, ChangeBatch, Entry, EntryIter, GroupIter, Kv, Store, Transaction, Versioned};
pub use scope::{DEFAULT_GROUP, Quota, ScopedConfig, ScopedStore, ScopedTransaction, Usage};
pub use validate::{MAX_NAME_BYTES, MAX_NAMESPACE_BYTES};
pub mod service;
pub use service::{Service, ServiceConfig, default_home};
