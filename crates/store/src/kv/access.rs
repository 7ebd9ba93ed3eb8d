//! How a handle reaches the database: reads on some connection, writes inside a transaction.
//!
//! [`Access`] is implemented by the store (pooled readers; one `BEGIN IMMEDIATE` per write) and by
//! transactions (everything on the open transaction). The KV operations in `ops.rs` are written
//! once against it.

use rusqlite::Connection;

use crate::error::{Result, SqliteContext};
use crate::events::{Event, EventKind};
use crate::kv::sqlite;
use crate::kv::versions::Versions;

/// Operation names (`"Store::get"`) per handle type, for error messages.
#[derive(Debug)]
pub struct OpNames {
    pub get: &'static str,
    pub get_with_version: &'static str,
    pub get_json: &'static str,
    pub exists: &'static str,
    pub group_exists: &'static str,
    pub set: &'static str,
    pub set_with_ttl: &'static str,
    pub set_json: &'static str,
    pub set_if_version: &'static str,
    pub increment: &'static str,
    pub delete: &'static str,
    pub delete_group: &'static str,
    pub delete_prefix: &'static str,
    pub count: &'static str,
    pub count_all: &'static str,
    pub get_all: &'static str,
    pub get_page: &'static str,
    pub iter: &'static str,
    pub groups: &'static str,
    pub groups_iter: &'static str,
    pub render: &'static str,
    pub get_split: &'static str,
    pub get_fields: &'static str,
    pub purge_expired: &'static str,
}

macro_rules! op_names {
    ($name:ident, $ty:literal) => {
        pub(crate) static $name: $crate::kv::access::OpNames = $crate::kv::access::OpNames {
            get: concat!($ty, "::get"),
            get_with_version: concat!($ty, "::get_with_version"),
            get_json: concat!($ty, "::get_json"),
            exists: concat!($ty, "::exists"),
            group_exists: concat!($ty, "::group_exists"),
            set: concat!($ty, "::set"),
            set_with_ttl: concat!($ty, "::set_with_ttl"),
            set_json: concat!($ty, "::set_json"),
            set_if_version: concat!($ty, "::set_if_version"),
            increment: concat!($ty, "::increment"),
            delete: concat!($ty, "::delete"),
            delete_group: concat!($ty, "::delete_group"),
            delete_prefix: concat!($ty, "::delete_prefix"),
            count: concat!($ty, "::count"),
            count_all: concat!($ty, "::count_all"),
            get_all: concat!($ty, "::get_all"),
            get_page: concat!($ty, "::get_page"),
            iter: concat!($ty, "::iter"),
            groups: concat!($ty, "::groups"),
            groups_iter: concat!($ty, "::groups_iter"),
            render: concat!($ty, "::render"),
            get_split: concat!($ty, "::get_split"),
            get_fields: concat!($ty, "::get_fields"),
            purge_expired: concat!($ty, "::purge_expired"),
        };
    };
}
pub(crate) use op_names;

/// Whether a write needs an explicit transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Statements {
    /// One writing SQL statement, preceded at most by reads whose outcome it depends on: on a
    /// private memory database, where the writer mutex already excludes every other access,
    /// it can run in autocommit mode.
    One,
    /// Several statements: always inside `BEGIN IMMEDIATE … COMMIT`.
    Many,
    /// Several statements, worth running only if the write can start at once (a lazy expiry's
    /// delete, which a read must not wait for): when another thread or connection is writing,
    /// the write fails at once with a busy [`Error::Sqlite`](crate::Error::Sqlite) instead of
    /// waiting. Inside a transaction, which already holds the lock, it simply runs; on a memory
    /// store or a file store without reader connections, whose reads share the writer mutex, it
    /// waits for that mutex like them, but never for another connection's write lock.
    IfFree,
    /// Several statements of background work (a purge-thread batch): they wait for this
    /// process's other writes (the writer mutex), as any write does, but never inside SQLite
    /// for another connection's write lock, which `close` could not interrupt; the caller
    /// retries a busy attempt where a stop request can end it.
    Background,
    /// Like [`Statements::IfFree`], but never waits, on any store: optional work after a write
    /// has committed (the purge a quota check asks for), which must not hold up the call that
    /// already did its job. On a memory store (or a file store without reader connections) a
    /// writer mutex held by another thread, even for a read, fails it busy at once.
    NeverWait,
}

/// A handle's way into the database. Sealed: implemented only inside the crate.
pub trait Access: sealed::Sealed {}

pub(crate) mod sealed {
    use super::*;

    pub trait Sealed {
        /// Error-message names of this handle's operations.
        fn ops(&self) -> &'static OpNames;
        /// Where this handle's names live (the root, or a namespace with its quota).
        fn scope(&self) -> &crate::scope::Scope {
            &crate::scope::ROOT_SCOPE
        }
        /// The current time, read once per operation.
        fn now(&self) -> i64;
        /// Whether writes join a transaction the caller commits (a failed write must then
        /// reach the caller, whose `?` rolls the transaction back).
        fn in_transaction(&self) -> bool {
            false
        }
        /// Largest accepted value in bytes.
        fn max_value_bytes(&self) -> usize;
        /// Runs a read.
        fn read<T>(&self, op: &'static str, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T>;
        /// Runs a read of several rows, all judged live or expired at one time `f` receives,
        /// read once the read's snapshot is taken. A time read before it could judge the rows
        /// by an earlier time than the snapshot's: an entry that had expired by then would
        /// count together with one another writer put in because it had (two keys in a
        /// namespace whose quota allows one, a state that never existed). Here, where nothing
        /// else can write between the two (inside a transaction, or holding a memory store's
        /// one connection), the clock is simply read inside the read; a file store overrides
        /// it to take the snapshot first.
        fn read_at_snapshot<T>(
            &self,
            op: &'static str,
            f: impl FnOnce(&Connection, i64) -> rusqlite::Result<T>,
        ) -> Result<T> {
            self.read(op, |c| f(c, self.now()))
        }
        /// Runs a write at time `now`.
        fn write<T>(
            &self,
            op: &'static str,
            now: i64,
            statements: Statements,
            f: impl FnOnce(&mut WriteCtx<'_>) -> Result<T>,
        ) -> Result<T>;
    }
}

/// What a write records besides the data: the durable change row and the in-process event.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Recording {
    /// Append a row to `changes` for each mutation.
    pub feed: bool,
    /// Keep values in `Set` change rows.
    pub feed_values: bool,
    /// Stage events for subscribers and callbacks.
    pub events: bool,
}

/// What writes leave for dispatch after their commit.
#[derive(Debug, Default)]
pub(crate) struct Staged {
    /// Events for listeners, in call order.
    pub events: Vec<Event>,
    /// Sequence numbers (inclusive ranges) of mutations recorded without an event because
    /// nobody listened when their write began. If a listener has registered by the commit,
    /// their events are read back from the change feed, so it misses nothing. Ranges, not a
    /// list: a write allocates consecutive numbers, so a bulk transaction needs one or two.
    pub unrecorded: Vec<(u64, u64)>,
}

impl Staged {
    pub fn clear(&mut self) {
        self.events.clear();
        self.unrecorded.clear();
    }

    fn note_unrecorded(&mut self, seq: u64) {
        match self.unrecorded.last_mut() {
            Some((_, end)) if end.checked_add(1) == Some(seq) => *end = seq,
            _ => self.unrecorded.push((seq, seq)),
        }
    }
}

/// State of one write: the connection inside its transaction, the operation's time, the version
/// allocator and the events to publish after commit.
pub struct WriteCtx<'w> {
    pub(crate) conn: &'w Connection,
    pub(crate) now: i64,
    pub(crate) op: &'static str,
    versions: &'w mut Versions,
    staged: &'w mut Staged,
    recording: Recording,
}

impl<'w> WriteCtx<'w> {
    pub(crate) fn new(
        conn: &'w Connection,
        now: i64,
        op: &'static str,
        versions: &'w mut Versions,
        staged: &'w mut Staged,
        recording: Recording,
    ) -> Self {
        WriteCtx {
            conn,
            now,
            op,
            versions,
            staged,
            recording,
        }
    }

    /// Allocates the next sequence number (used as the version of value writes).
    pub(crate) fn next_seq(&mut self) -> Result<u64> {
        self.versions.allocate(self.conn).ctx(self.op, "allocate version")
    }

    /// Returns `seq`, the last number [`WriteCtx::next_seq`] gave, unused: the next write
    /// gets it again. A no-op for any other number.
    pub(crate) fn give_back_seq(&mut self, seq: u64) {
        self.versions.give_back(seq);
    }

    /// Records one mutation with an already allocated `seq`: appends its change row (when the
    /// feed is on) and stages its event for dispatch after commit (when anyone listens).
    pub(crate) fn record(&mut self, change: Mutation<'_>, seq: u64) -> Result<()> {
        let Mutation {
            kind,
            group,
            key,
            value,
            expires_at,
        } = change;
        if self.recording.feed {
            let stored_value = if self.recording.feed_values { value } else { None };
            sqlite::insert_change(
                self.conn,
                seq,
                self.now,
                kind.as_str(),
                group,
                key,
                stored_value,
                expires_at,
            )
            .ctx(self.op, "append to change feed")?;
        }
        if !self.recording.events {
            if self.recording.feed && self.recording.feed_values {
                self.staged.note_unrecorded(seq);
            }
        } else {
            self.staged.events.push(Event {
                kind,
                group: group.to_string(),
                key: key.map(str::to_string),
                value: value.map(str::to_string),
                version: (kind == EventKind::Set).then_some(seq),
                seq,
                at_ms: self.now,
            });
        }
        Ok(())
    }

    /// Allocates a sequence number and records a removal (delete, expiry, group delete).
    pub(crate) fn record_removal(&mut self, kind: EventKind, group: &str, key: Option<&str>) -> Result<()> {
        let seq = self.next_seq()?;
        self.record(
            Mutation {
                kind,
                group,
                key,
                value: None,
                expires_at: None,
            },
            seq,
        )
    }
}

/// One mutation as the feed and the events describe it.
pub(crate) struct Mutation<'a> {
    pub kind: EventKind,
    pub group: &'a str,
    pub key: Option<&'a str>,
    pub value: Option<&'a str>,
    pub expires_at: Option<i64>,
}
