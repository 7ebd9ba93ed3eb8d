//! Version (and change sequence) numbers: unique and strictly increasing across one database file,
//! across every handle and process, in commit order.
//!
//! Writing a counter row on every mutation would add a page to every commit. Instead the writer
//! reserves blocks of numbers in `store_meta.version_reserved` and hands them out from memory.
//! Another connection may commit in between (another `Store` on the file, another process); that
//! is detected with `PRAGMA data_version` under the write lock, and then a fresh block is reserved
//! above everything anyone has reserved. So versions grow in commit order even with several
//! writers; the price is a jump in numbering when writers interleave. A rolled-back transaction
//! restores the allocator, so it publishes no numbers.
//!
//! A memory database is private to its one connection, so its counter lives in memory only.

use rusqlite::Connection;

use crate::kv::sqlite;

pub(crate) const META_KEY: &str = "version_reserved";
const BLOCK: u64 = 1024;

#[derive(Debug, Clone, Copy)]
pub(crate) struct Versions {
    /// Next number to hand out.
    next: u64,
    /// Last number of the reserved block (inclusive).
    end: u64,
    /// `data_version` seen when this connection last synchronised with the file.
    data_version: Option<i64>,
    /// Whether `data_version` has been checked in the current transaction.
    checked: bool,
    persistent: bool,
}

impl Versions {
    pub fn new(persistent: bool) -> Versions {
        Versions {
            next: 1,
            end: if persistent { 0 } else { u64::MAX },
            data_version: None,
            checked: false,
            persistent,
        }
    }

    /// Whether allocation must happen inside an explicit write transaction.
    pub fn is_persistent(&self) -> bool {
        self.persistent
    }

    /// Call at the start of each write transaction.
    pub fn begin(&mut self) -> Versions {
        self.checked = false;
        *self
    }

    /// Call when the transaction rolled back, with the value `begin` returned.
    pub fn restore(&mut self, snapshot: Versions) {
        *self = snapshot;
    }

    /// The next number. For persistent allocators the caller holds the write lock (inside
    /// `BEGIN IMMEDIATE`), so nothing can commit between the check and the use.
    pub fn allocate(&mut self, conn: &Connection) -> rusqlite::Result<u64> {
        if self.persistent {
            if !self.checked {
                let current = sqlite::data_version(conn)?;
                if self.data_version != Some(current) {
                    // Someone else committed. If they reserved numbers after our block, theirs
                    // are higher than ours: jump above them. Otherwise our block is still the
                    // newest and stays valid.
                    let stored = stored_reservation(conn)?;
                    if stored > self.end {
                        self.reserve_above(conn, stored)?;
                    }
                    self.data_version = Some(current);
                }
                self.checked = true;
            }
            if self.next > self.end {
                let stored = stored_reservation(conn)?;
                self.reserve_above(conn, stored)?;
            }
        }
        let n = self.next;
        if n > i64::MAX as u64 {
            // SQLite stores integers as i64: a larger version would wrap negative. Reachable
            // only when a foreign row or reservation holds a version near i64::MAX.
            return Err(versions_exhausted());
        }
        self.next = self.next.saturating_add(1);
        Ok(n)
    }

    /// Takes back `n` if it is the last number [`Versions::allocate`] handed out (it went
    /// unused), so numbering stays consecutive.
    pub fn give_back(&mut self, n: u64) {
        if self.next == n.saturating_add(1) {
            self.next = n;
        }
    }

    /// Gives back the unused tail of our block if nobody reserved after it, so the next writer
    /// (often the next short-lived process) continues the numbering without a jump. Runs in
    /// its own write transaction at close.
    pub fn release(&mut self, conn: &Connection) -> rusqlite::Result<()> {
        if !self.persistent || self.end == 0 || self.next > self.end {
            return Ok(());
        }
        sqlite::begin_immediate(conn)?;
        let result = (|| {
            if stored_reservation(conn)? == self.end {
                sqlite::meta_set(conn, META_KEY, self.next.saturating_sub(1) as i64)?;
                self.end = self.next.saturating_sub(1);
            }
            sqlite::commit(conn)
        })();
        if result.is_err() {
            sqlite::rollback(conn);
        }
        result
    }

    fn reserve_above(&mut self, conn: &Connection, stored: u64) -> rusqlite::Result<()> {
        let base = stored.max(self.next.saturating_sub(1));
        self.next = base + 1;
        self.end = base.saturating_add(BLOCK).min(i64::MAX as u64);
        sqlite::meta_set(conn, META_KEY, self.end as i64)
    }
}

fn versions_exhausted() -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
        Some(format!(
            "the file's version numbers are used up: a row or `store_meta.{META_KEY}` holds a \
             version at i64::MAX (written by another program?); copy the data into a new store file"
        )),
    )
}

fn stored_reservation(conn: &Connection) -> rusqlite::Result<u64> {
    Ok(sqlite::meta_get(conn, META_KEY)?.unwrap_or(0).max(0) as u64)
}
