//! Opening and configuring SQLite connections, and the pool of readers.

use std::borrow::Cow;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, MutexGuard};
use rusqlite::{Connection, OpenFlags};

use crate::config::Durability;
use crate::error::{Error, Result, SqliteContext};

/// Statement-cache capacity of every connection (the spec asks for at least 64).
const STATEMENT_CACHE: usize = 128;

/// The path as SQLite must be given it to open that file. The bundled SQLite is built with
/// `SQLITE_USE_URI`, so a name starting with `file:` would be read as a URI (`file:data/x.db`
/// opening `data/x.db`, `file:x?mode=memory` a private memory database), and the name
/// `:memory:` opens a private memory database (one per connection, so the readers would not
/// see the writer's data); such a relative path gets a `./` in front and names the file.
/// Absolute paths start with `/` and are never special.
fn not_a_uri(path: &Path) -> Cow<'_, Path> {
    let name = path.as_os_str().as_encoded_bytes();
    if name.starts_with(b"file:") || name == b":memory:" {
        Cow::Owned(Path::new(".").join(path))
    } else {
        Cow::Borrowed(path)
    }
}

/// Opens the writer connection on a file, creating it; a missing parent directory is an `Io`
/// error rather than SQLite's vaguer "unable to open".
pub(crate) fn open_file_writer(
    op: &'static str,
    path: &Path,
    durability: Durability,
    busy: Duration,
) -> Result<Connection> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
        && !parent.is_dir()
    {
        return Err(Error::Io {
            op,
            path: Some(parent.to_path_buf()),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "the parent directory does not exist; create it first",
            ),
        });
    }
    crate::validate::not_a_special_file(op, path, "a database file")?;
    // SQLite would only say "unable to open database file".
    if path.is_dir() {
        return Err(Error::Io {
            op,
            path: Some(path.to_path_buf()),
            source: std::io::Error::new(
                std::io::ErrorKind::IsADirectory,
                format!(
                    "the database path is a directory; pass the path of a database file, such as {}",
                    path.join("store.db").display()
                ),
            ),
        });
    }
    let flags =
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(not_a_uri(path), flags)
        .map_err(|e| Error::sqlite(op, format!("open {}", path.display()), e))?;
    configure(op, &conn, durability, busy)?;
    // Before WAL is switched on, so that a refused file is left as it was. Reading the encoding
    // also makes SQLite read the header, which is where a file that is not a database is
    // detected.
    require_utf8(op, path, &conn)?;
    // WAL lets readers proceed while a write is in flight. Switching a new file to WAL needs an
    // exclusive lock, and SQLite answers "busy" at once instead of calling the busy handler, so
    // two processes creating the same file at the same moment retry here for up to the busy
    // timeout.
    let deadline = std::time::Instant::now() + busy;
    let mode: String = loop {
        match conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)) {
            Err(e) if is_busy(&e) && std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            other => break other.ctx(op, "enable WAL journal mode")?,
        }
    };
    if !mode.eq_ignore_ascii_case("wal") {
        log::warn!(
            "store: {} stays in journal_mode {mode}; readers may wait for writers",
            path.display()
        );
    }
    Ok(conn)
}

/// Refuses a database whose text encoding is UTF-16 (another program can create one with
/// `PRAGMA encoding`): the store matches prefixes as UTF-8 byte ranges and relies on SQLite
/// ordering text by its UTF-8 bytes (code point order), but in such a file SQLite compares
/// UTF-16 bytes, so prefix reads, prefix deletes and key order would silently go wrong. A new
/// or empty file reports UTF-8, SQLite's default, and is created so.
fn require_utf8(op: &'static str, path: &Path, conn: &Connection) -> Result<()> {
    let encoding: String = conn
        .query_row("PRAGMA encoding", [], |r| r.get(0))
        .ctx(op, "read the database's text encoding")?;
    if encoding.eq_ignore_ascii_case("UTF-8") {
        return Ok(());
    }
    Err(Error::Unsupported {
        op,
        what: format!(
            "the database {} in text encoding {encoding} (keys and prefixes are compared as UTF-8 \
             bytes; convert it to UTF-8 with `sqlite3 {} .dump | sqlite3 new.db` while no program \
             has it open, then open new.db)",
            path.display(),
            path.display(),
        ),
    })
}

pub(crate) fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// Opens a reader on an existing file database, memory-mapping up to `mmap_bytes` of it.
pub(crate) fn open_file_reader(
    op: &'static str,
    path: &Path,
    durability: Durability,
    busy: Duration,
    mmap_bytes: u64,
) -> Result<Connection> {
    let conn = open_existing(op, path, durability, busy, "reader")?;
    if mmap_bytes > 0 {
        conn.pragma_update(None, "mmap_size", crate::validate::clamp_i64(mmap_bytes))
            .ctx(op, "set mmap_size")?;
    }
    // Readers never write; this turns any accidental write into an error instead of a second
    // writer competing for the lock.
    conn.pragma_update(None, "query_only", true)
        .ctx(op, "configure reader")?;
    Ok(conn)
}

/// Opens the background checkpointer's connection on an existing file database. It runs no SQL,
/// only `sqlite3_wal_checkpoint_v2`, which needs a connection that may write the file.
pub(crate) fn open_file_checkpointer(
    op: &'static str,
    path: &Path,
    durability: Durability,
    busy: Duration,
) -> Result<Connection> {
    open_existing(op, path, durability, busy, "checkpointer")
}

fn open_existing(
    op: &'static str,
    path: &Path,
    durability: Durability,
    busy: Duration,
    role: &str,
) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(not_a_uri(path), flags)
        .map_err(|e| Error::sqlite(op, format!("open {role} on {}", path.display()), e))?;
    configure(op, &conn, durability, busy)?;
    Ok(conn)
}

/// Opens a private in-memory database.
pub(crate) fn open_memory(op: &'static str, durability: Durability) -> Result<Connection> {
    let conn = Connection::open_in_memory().ctx(op, "open in-memory database")?;
    configure(op, &conn, durability, Duration::ZERO)?;
    Ok(conn)
}

fn configure(op: &'static str, conn: &Connection, durability: Durability, busy: Duration) -> Result<()> {
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // rusqlite panics on more than i32::MAX milliseconds (`open_with` already saturates).
    let busy = busy.min(crate::config::MAX_BUSY_TIMEOUT);
    conn.busy_timeout(busy).ctx(op, "set busy_timeout")?;
    conn.pragma_update(None, "synchronous", durability.pragma_value())
        // The first statement that touches the file (and, in WAL mode, creates its `-shm`):
        // a full disk or an unwritable directory shows up here.
        .ctx(op, "first access to the database file (set synchronous)")?;
    super::usage::register_functions(conn).ctx(op, "register SQL functions")?;
    Ok(())
}

/// How long a read waiting for a reader waits on one slot before it looks at the others again.
const POOL_POLL: Duration = Duration::from_millis(2);

/// What [`ReaderPool::with`] came to.
#[derive(Debug)]
pub(crate) enum Pooled<T> {
    /// `f` ran on a reader and returned this.
    Ran(T),
    /// The pool is empty or closed.
    Closed,
    /// No reader came free within the wait.
    TimedOut,
}

/// Reader connections for a file store. Each call takes a free connection, or waits for one.
pub(crate) struct ReaderPool {
    readers: Vec<Mutex<Option<Connection>>>,
    next: AtomicUsize,
}

impl ReaderPool {
    pub fn new(readers: Vec<Connection>) -> ReaderPool {
        ReaderPool {
            readers: readers.into_iter().map(|c| Mutex::new(Some(c))).collect(),
            next: AtomicUsize::new(0),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.readers.is_empty()
    }

    /// Runs `f` on a reader, waiting at most `wait` for one to come free.
    ///
    /// Takes the first free connection rather than rotating: a single-threaded caller then
    /// always reuses one connection whose page cache is hot, and concurrent callers spread out
    /// only as far as they need to. The wait is bounded, as the writer's is, because a read
    /// can wait for a thread that waits for it: a `Clock` that calls its store from another
    /// thread is read while the read holds its reader (reads of several rows take their time
    /// inside their snapshot), and with every reader so held an unbounded wait would hang
    /// those threads for good.
    pub fn with<T>(&self, wait: Duration, f: impl FnOnce(&Connection) -> T) -> Pooled<T> {
        if self.readers.is_empty() {
            return Pooled::Closed;
        }
        match self.lock_a_reader(wait) {
            Some(guard) => guard.as_ref().map_or(Pooled::Closed, |c| Pooled::Ran(f(c))),
            None => Pooled::TimedOut,
        }
    }

    /// The first free reader, else whichever comes free first within `wait`: it waits on one
    /// slot a little at a time, looking at every slot in between.
    fn lock_a_reader(&self, wait: Duration) -> Option<MutexGuard<'_, Option<Connection>>> {
        let any_free = || self.readers.iter().find_map(|slot| slot.try_lock());
        if let Some(guard) = any_free() {
            return Some(guard);
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % self.readers.len();
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            if let Some(guard) = self.readers[start].try_lock_for(left.min(POOL_POLL)) {
                return Some(guard);
            }
            if let Some(guard) = any_free() {
                return Some(guard);
            }
        }
    }

    /// Closes every reader (waiting for in-flight reads).
    pub fn close(&self) {
        for slot in &self.readers {
            drop(slot.lock().take());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SQLite gives `:memory:` and `file:` names a meaning of their own; a store's path always
    /// names a file. (A relative path is only testable here: changing the working directory in
    /// an integration test would move every other test's relative paths too.)
    #[test]
    fn special_sqlite_names_are_opened_as_files_in_the_working_directory() {
        assert_eq!(not_a_uri(Path::new(":memory:")), Path::new("./:memory:"));
        assert_eq!(not_a_uri(Path::new("file:x.db")), Path::new("./file:x.db"));
        assert_eq!(not_a_uri(Path::new("x/:memory:")), Path::new("x/:memory:"));
        assert_eq!(not_a_uri(Path::new("/tmp/file:x")), Path::new("/tmp/file:x"));
    }
}
