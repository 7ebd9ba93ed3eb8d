//! [`Store`]: the handle to one open KV database.

use std::cell::{Cell, RefCell};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::ThreadId;
use std::time::Duration;

use parking_lot::Mutex;
use rusqlite::Connection;

use crate::config::{Location, StoreConfig};
use crate::error::{Error, Result, SqliteContext};
use crate::events::{Event, EventKind, Registry};
use crate::kv::access::{Access, OpNames, Recording, Staged, Statements, WriteCtx, op_names, sealed::Sealed};
use crate::kv::checkpoint::Checkpointer;
use crate::kv::purge::PurgeThread;
use crate::kv::sqlite::conn::Pooled;
use crate::kv::sqlite::{self, conn, schema};
use crate::kv::versions::Versions;

op_names!(STORE_OPS, "Store");

const OPEN: u8 = 0;
const CLOSING: u8 = 1;
const CLOSED: u8 = 2;

/// A handle to one open key-value database.
///
/// `Store` is a cheap `Clone` (all clones share one database) and is `Send + Sync`. The database
/// closes when [`Store::close`] is called or the last clone is dropped.
///
/// # Concurrency and consistency
/// File stores use one writer connection (behind a mutex) and a pool of reader connections in
/// WAL mode, so reads never wait for writes and writes never wait for reads. Every write runs in
/// `BEGIN IMMEDIATE … COMMIT`, which serialises writers in this process and, through the busy
/// timeout, across processes. A write that returned `Ok` is visible to every read that starts
/// after it; each call reads one consistent snapshot. Memory stores use a single connection.
///
/// # Durability
/// With [`Durability::Normal`](crate::Durability) (the default) a committed write survives a
/// crash of the process; [`Durability::Full`](crate::Durability) also survives power loss.
///
/// # Examples
/// ```
/// use store::{Kv, Store};
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("state.db");
/// {
///     let store = Store::open(&path)?;
///     store.set("config", "colour", "blue")?;
/// }
/// let store = Store::open(&path)?;
/// assert_eq!(store.get("config", "colour")?, "blue");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Store {
    handle: Arc<Handle>,
}

/// Owned by the user-facing clones only; dropping the last one closes the database. Background
/// threads hold `Arc<Inner>` instead, so they never keep a store open.
struct Handle {
    inner: Arc<Inner>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        if let Err(e) = self.inner.close() {
            log::warn!("store: closing on drop failed: {e}");
        }
    }
}

pub(crate) struct Inner {
    config: StoreConfig,
    state: AtomicU8,
    writer: Mutex<Option<Writer>>,
    readers: conn::ReaderPool,
    purge: Mutex<Option<PurgeThread>>,
    checkpointer: Mutex<Option<Checkpointer>>,
    /// Thread token of the thread running a transaction closure (0 = none).
    txn_owner: AtomicUsize,
    /// Held for the whole of `close`, so a concurrent `close` returns only once it is closed
    /// (except on the purge thread: see `Inner::close`).
    closing: Mutex<()>,
    /// The purge thread, once started: a close called on it (from an `on_change` callback)
    /// while another close waits to join it must not wait for that close in turn.
    purge_thread: OnceLock<ThreadId>,
    events: Arc<Registry>,
    /// Set while a write that stages no events (nobody was listening when it began) and
    /// cannot replay them from the change feed (it is off, or keeps no values) is in flight,
    /// so a listener registering meanwhile can wait for it: see
    /// [`Inner::settle_unrecorded_write`].
    unrecorded_write: AtomicBool,
    /// The file the writer opened, for [`Inner::open_long_reader`]; `None` for memory stores.
    #[cfg(feature = "analytics")]
    opened_file: Option<OpenedFile>,
}

/// A store's file as its writer opened it: SQLite's absolute name for it (a relative path
/// would follow the process's working directory) and its identity, so that a reader opened
/// later can tell that the name still leads to the same file. Unix only: elsewhere long reads
/// go through the store's own connections.
#[cfg(feature = "analytics")]
struct OpenedFile {
    path: std::path::PathBuf,
    identity: (u64, u64),
}

#[cfg(feature = "analytics")]
impl OpenedFile {
    /// `configured` is the path the store was opened with: its canonical form stands in for
    /// SQLite's name when that is not UTF-8 (rusqlite returns no name then); the identity
    /// check guards both.
    fn of(conn: &Connection, configured: &Path) -> Option<OpenedFile> {
        let path = match conn.path().filter(|p| !p.is_empty()) {
            Some(name) => std::path::PathBuf::from(name),
            None => std::fs::canonicalize(configured).ok()?,
        };
        let identity = file_identity(&path)?;
        Some(OpenedFile { path, identity })
    }

    fn is_still_at_its_path(&self) -> bool {
        file_identity(&self.path) == Some(self.identity)
    }
}

/// Device and inode of the file at `path`.
#[cfg(feature = "analytics")]
fn file_identity(path: &Path) -> Option<(u64, u64)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// Clears [`Inner::unrecorded_write`] when the write ends, on every path out of it.
struct UnrecordedMark<'a>(Option<&'a AtomicBool>);

impl Drop for UnrecordedMark<'_> {
    fn drop(&mut self) {
        if let Some(flag) = self.0 {
            flag.store(false, Ordering::SeqCst);
        }
    }
}

struct Writer {
    conn: Connection,
    versions: Versions,
    staged: Staged,
}

/// The least time a thread waits for its store's writer while another thread holds it (see
/// `Inner::lock_writer`): long enough for any reasonable transaction, short enough that a lock
/// cycle through the analytics layer ends.
pub(crate) const THREAD_WAIT_FLOOR: Duration = Duration::from_secs(30);

thread_local! {
    static THREAD_TOKEN: Cell<u8> = const { Cell::new(0) };
    /// The stores (their `Inner`s' addresses) whose clocks this thread is reading, innermost
    /// last: a stack, since one store's clock may call another store (whose clock may call
    /// back into the first). See `Inner::now`.
    static READING_CLOCK_OF: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

/// A non-zero number unique among live threads: the address of a thread-local.
pub(crate) fn thread_token() -> usize {
    THREAD_TOKEN.with(|t| t as *const Cell<u8> as usize)
}

impl Store {
    /// Opens (creating if needed) a file-backed store with default settings.
    ///
    /// # Errors
    /// `InvalidInput` (field `path`) for an empty path or one holding NUL; `Io` if the parent
    /// directory is missing or the path is a directory; `Sqlite` if the file is not a SQLite
    /// database or cannot be opened; `Unsupported` for a database in a UTF-16 encoding;
    /// `Sqlite` with context "ensure schema" if the schema cannot be migrated.
    ///
    /// # Examples
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let store = store::Store::open(dir.path().join("state.db"))?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(path: impl AsRef<Path>) -> Result<Store> {
        Self::open_with(StoreConfig::file(path))
    }

    /// Opens a private in-memory store.
    ///
    /// # Examples
    /// ```
    /// let store = store::Store::in_memory()?;
    /// # Ok::<(), store::Error>(())
    /// ```
    pub fn in_memory() -> Result<Store> {
        Self::open_with(StoreConfig::memory())
    }

    /// Opens a store with explicit settings.
    ///
    /// # Errors
    /// `InvalidInput` for out-of-range settings (e.g. more than 64 readers), otherwise as
    /// [`Store::open`].
    ///
    /// # Examples
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use store::{Kv, ManualClock, Store, StoreConfig};
    /// let clock = Arc::new(ManualClock::new(0));
    /// let store = Store::open_with(StoreConfig::memory().with_clock(clock.clone()))?;
    /// store.set_with_ttl("g", "k", "v", Duration::from_secs(1))?;
    /// clock.advance(Duration::from_secs(1));
    /// assert!(!store.exists("g", "k")?);
    /// # Ok::<(), store::Error>(())
    /// ```
    pub fn open_with(mut config: StoreConfig) -> Result<Store> {
        const OP: &str = "Store::open";
        config.validate(OP)?;
        // SQLite's busy handler takes an int of milliseconds; longer waits saturate (§0).
        config.busy_timeout = config.busy_timeout.min(crate::config::MAX_BUSY_TIMEOUT);
        crate::kv::checkpoint::validate(OP, &config)?;
        let (writer_conn, readers, persistent, checkpointer) = match &config.location {
            Location::File(path) => {
                let mut writer = conn::open_file_writer(OP, path, config.durability, config.busy_timeout)?;
                ensure_schema(OP, &writer)?;
                let readers = (0..config.readers)
                    .map(|_| {
                        let (durability, busy) = (config.durability, config.busy_timeout);
                        conn::open_file_reader(OP, path, durability, busy, config.reader_mmap_bytes)
                    })
                    .collect::<Result<Vec<_>>>()?;
                let checkpointer = Checkpointer::start(OP, path, &config, &mut writer)?;
                (writer, readers, true, checkpointer)
            }
            Location::Memory => {
                let writer = conn::open_memory(OP, config.durability)?;
                ensure_schema(OP, &writer)?;
                (writer, Vec::new(), false, None)
            }
        };
        #[cfg(feature = "analytics")]
        let opened_file = match &config.location {
            Location::File(path) => OpenedFile::of(&writer_conn, path),
            Location::Memory => None,
        };
        let inner = Arc::new(Inner {
            state: AtomicU8::new(OPEN),
            writer: Mutex::new(Some(Writer {
                conn: writer_conn,
                versions: Versions::new(persistent),
                staged: Staged::default(),
            })),
            readers: conn::ReaderPool::new(readers),
            purge: Mutex::new(None),
            checkpointer: Mutex::new(checkpointer),
            txn_owner: AtomicUsize::new(0),
            closing: Mutex::new(()),
            purge_thread: OnceLock::new(),
            events: Arc::new(Registry::default()),
            unrecorded_write: AtomicBool::new(false),
            #[cfg(feature = "analytics")]
            opened_file,
            config,
        });
        let purge = PurgeThread::start(&inner)?;
        if let Some(thread) = purge.as_ref().and_then(PurgeThread::thread_id) {
            let _ = inner.purge_thread.set(thread);
        }
        *inner.purge.lock() = purge;
        Ok(Store {
            handle: Arc::new(Handle { inner }),
        })
    }

    /// Whether [`Store::close`] has completed.
    ///
    /// # Examples
    /// ```
    /// let store = store::Store::in_memory()?;
    /// assert!(!store.is_closed());
    /// store.close()?;
    /// assert!(store.is_closed());
    /// # Ok::<(), store::Error>(())
    /// ```
    pub fn is_closed(&self) -> bool {
        self.inner().state.load(Ordering::Acquire) == CLOSED
    }

    /// The database file, or `None` for a memory store.
    ///
    /// # Examples
    /// ```
    /// assert!(store::Store::in_memory()?.path().is_none());
    /// # Ok::<(), store::Error>(())
    /// ```
    pub fn path(&self) -> Option<&Path> {
        match &self.inner().config.location {
            Location::File(p) => Some(p),
            Location::Memory => None,
        }
    }

    /// The settings this store was opened with.
    ///
    /// # Examples
    /// ```
    /// assert_eq!(store::Store::in_memory()?.config().readers, 4);
    /// # Ok::<(), store::Error>(())
    /// ```
    pub fn config(&self) -> &StoreConfig {
        &self.inner().config
    }

    /// Flushes the write-ahead log into the database file (a full checkpoint), then truncates
    /// the log unless a reader still has it open.
    ///
    /// A reader on an older snapshot, in this or another process, keeps part of the log from
    /// being copied; `sync` waits for it up to the busy timeout, then fails with a busy error
    /// ([`Error::is_busy`]) rather than report a flush that did not happen. Memory stores have
    /// no log: `sync` does nothing there.
    ///
    /// # Examples
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let store = store::Store::open(dir.path().join("s.db"))?;
    /// store.sync()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn sync(&self) -> Result<()> {
        const OP: &str = "Store::sync";
        let inner = self.inner();
        inner.check_usable(OP)?;
        let guard = inner.lock_writer(OP, "checkpoint write-ahead log")?;
        let writer = guard.as_ref().ok_or_else(|| Error::closed(OP))?;
        if !inner.is_file() {
            return Ok(());
        }
        // Another checkpointer (another process's sync or close, the background checkpointer)
        // makes SQLite return at once: wait for it like for a lock, up to the busy timeout.
        let deadline = std::time::Instant::now() + inner.config().busy_timeout;
        loop {
            match checkpoint(&writer.conn).ctx(OP, "checkpoint write-ahead log")? {
                Checkpoint::Complete => return Ok(()),
                Checkpoint::OtherCheckpointer if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Checkpoint::OtherCheckpointer => {
                    return Err(busy(
                        OP,
                        "checkpoint write-ahead log",
                        "another connection (possibly another process) kept checkpointing past \
                         the busy timeout; retry, or raise StoreConfig::busy_timeout"
                            .to_string(),
                    ));
                }
                Checkpoint::BlockedByReader => {
                    return Err(busy(
                        OP,
                        "checkpoint write-ahead log",
                        "part of the write-ahead log could not be copied into the database file: \
                         another connection (possibly another process) holds a read transaction \
                         on an older snapshot; retry once that reader finishes, or raise \
                         StoreConfig::busy_timeout"
                            .to_string(),
                    ));
                }
            }
        }
    }

    /// Closes the store: stops the purge thread, checkpoints and closes every connection.
    /// Idempotent; afterwards every data call returns `Closed`. Dropping the last clone does the
    /// same, logging errors instead of returning them. A `close` running on another thread
    /// makes this one wait until the store is closed, with one exception: called from an
    /// `on_change` callback on the purge thread, which that close waits for, it returns at once
    /// (the store finishes closing when the callback returns).
    ///
    /// # Errors
    /// `InvalidInput` (field `transaction`) when called inside one of this store's transaction
    /// closures, which hold the writer the close needs (the store stays open); errors of the
    /// final checkpoint.
    ///
    /// # Examples
    /// ```
    /// use store::{Kv, Store};
    /// let store = Store::in_memory()?;
    /// store.close()?;
    /// store.close()?;
    /// assert!(store.set("g", "k", "v").unwrap_err().is_closed());
    /// # Ok::<(), store::Error>(())
    /// ```
    pub fn close(&self) -> Result<()> {
        self.inner().close()
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.handle.inner
    }

    /// A reference that does not keep the store open (for the analytics `kv_entries` view).
    #[cfg(feature = "analytics")]
    pub(crate) fn inner_weak(&self) -> std::sync::Weak<Inner> {
        Arc::downgrade(&self.handle.inner)
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("location", &self.inner().config.location)
            .field("closed", &self.is_closed())
            .finish()
    }
}

fn ensure_schema(op: &'static str, conn: &Connection) -> Result<()> {
    if schema::is_current(conn) {
        return Ok(());
    }
    sqlite::begin_immediate(conn).ctx(op, "ensure schema")?;
    match schema::ensure(op, conn) {
        Ok(()) => sqlite::commit(conn).ctx(op, "ensure schema"),
        Err(e) => {
            sqlite::rollback(conn);
            Err(e)
        }
    }
}

/// A busy error (`Error::is_busy`) for a wait on this process's own locks that gave up, worded
/// as SQLite's own: callers handle both the same way.
fn busy(op: &'static str, context: &'static str, message: String) -> Error {
    let code = rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY);
    Error::sqlite(op, context, rusqlite::Error::SqliteFailure(code, Some(message)))
}

/// What a full checkpoint achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Checkpoint {
    /// Every frame of the log is in the database file (the log is also truncated unless a
    /// reader still has it open), or the database has no log.
    Complete,
    /// A reader on an older snapshot (any connection, any process) kept frames from being
    /// copied within the busy timeout.
    BlockedByReader,
    /// Another connection was checkpointing; SQLite does not wait for it.
    OtherCheckpointer,
}

/// A full checkpoint. SQLite reports its outcome in the result row `(busy, log, checkpointed)`,
/// not as an error: `log` is -1 when the database has no log (`busy` 0) or when another
/// connection holds the checkpoint lock (`busy` 1).
fn checkpoint(conn: &Connection) -> rusqlite::Result<Checkpoint> {
    let (busy, log, checkpointed): (i64, i64, i64) =
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })?;
    Ok(match (busy, log) {
        (0, _) => Checkpoint::Complete,
        (_, -1) => Checkpoint::OtherCheckpointer,
        _ if checkpointed >= log => Checkpoint::Complete,
        _ => Checkpoint::BlockedByReader,
    })
}

impl Inner {
    pub(crate) fn config(&self) -> &StoreConfig {
        &self.config
    }

    fn is_file(&self) -> bool {
        matches!(self.config.location, Location::File(_))
    }

    pub(crate) fn is_open(&self) -> bool {
        self.state.load(Ordering::Acquire) == OPEN
    }

    /// Whether this thread is inside this store's clock (see `Inner::now`).
    pub(crate) fn in_own_clock(&self) -> bool {
        let me = self as *const Inner as usize;
        // `try_with`: a store called from another thread-local's destructor, after this one
        // was destroyed, is not inside its clock (`with` would panic there).
        READING_CLOCK_OF
            .try_with(|marks| marks.borrow().contains(&me))
            .unwrap_or(false)
    }

    /// Open, and not called from inside this store's transaction closure (which would deadlock
    /// on the writer) or from its clock (see `Inner::now`).
    #[inline]
    pub(crate) fn check_usable(&self, op: &'static str) -> Result<()> {
        if self.state.load(Ordering::Acquire) != OPEN {
            return Err(Error::closed(op));
        }
        if self.in_own_clock() {
            return Err(Error::invalid(
                op,
                "clock",
                "this store's Clock called the store it serves; the store reads its clock in \
                 every call, some while they hold a connection, so the clock's call would \
                 recurse or wait for the call reading it: keep the clock's reads off the \
                 store it serves",
            ));
        }
        if self.txn_owner.load(Ordering::Relaxed) == thread_token() {
            // Point to the transaction handle only for calls it has: the KV surface. The
            // others (subscriptions, the change feed, sync) exist on the store alone.
            let fix = match op.rsplit("::").next() {
                Some("watch" | "on_change") => {
                    "this thread is inside a transaction on this store, and subscriptions \
                     cannot be made inside one; subscribe before the transaction starts or \
                     after it ends"
                }
                Some("transaction") => {
                    "this thread is inside a transaction on this store, and transactions do \
                     not nest; do this work through the transaction handle"
                }
                Some("changes_since" | "last_seq" | "prune_changes" | "sync") => {
                    "this thread is inside a transaction on this store, and the transaction \
                     handle has no such call; call it before the transaction starts or after \
                     it ends"
                }
                _ => "this thread is inside a transaction on this store; use the transaction handle",
            };
            return Err(Error::invalid(op, "transaction", fix));
        }
        Ok(())
    }

    pub(crate) fn events(&self) -> &Arc<Registry> {
        &self.events
    }

    /// Runs `body` as one write transaction on the writer connection and publishes its events.
    ///
    /// `single` marks a body of exactly one statement: on a private memory database it runs in
    /// autocommit mode, skipping `BEGIN`/`COMMIT`. Everything else runs in `BEGIN IMMEDIATE …
    /// COMMIT`. On `Err` or panic the transaction rolls back, the version allocator is restored
    /// and no event is published; a panic then resumes with the writer lock released (no lock is
    /// ever poisoned). On success, subscriptions get the events before the lock is released (so
    /// they see commit order) and callbacks run after it is released.
    pub(crate) fn run_write<T>(
        &self,
        op: &'static str,
        single: bool,
        body: impl FnOnce(&Connection, &mut Versions, &mut Staged, Recording) -> Result<T>,
    ) -> Result<T> {
        self.run_write_waiting(op, single, Wait::ALWAYS, body)
    }

    /// The writer mutex, waiting while another thread of this process holds it: queued, as
    /// SPEC §3.3 serialises writers in-process, but at most [`THREAD_WAIT_FLOOR`] (or the
    /// busy timeout, if longer). Unbounded, a transaction waiting (for an analytics connection,
    /// or for a job whose progress callback runs here) on the thread that waits here hung both
    /// for good; bounded, such a cycle ends with this call failing busy.
    fn lock_writer(
        &self,
        op: &'static str,
        context: &'static str,
    ) -> Result<parking_lot::MutexGuard<'_, Option<Writer>>> {
        let wait = self.config.busy_timeout.max(THREAD_WAIT_FLOOR);
        self.writer.try_lock_for(wait).ok_or_else(|| {
            busy(
                op,
                context,
                format!(
                    "another thread of this process held the store's writer for {wait:?}: a very \
                     long transaction, or one waiting for this thread (for an analytics \
                     connection or a job it holds); retry once it has finished"
                ),
            )
        })
    }

    /// [`Inner::run_write`]; a write that cannot start at once because of what it is told not
    /// to wait for (the writer mutex, held by another thread; SQLite's write lock, held by
    /// another connection or process) fails with a busy `Sqlite` error instead of waiting.
    fn run_write_waiting<T>(
        &self,
        op: &'static str,
        single: bool,
        wait: Wait,
        body: impl FnOnce(&Connection, &mut Versions, &mut Staged, Recording) -> Result<T>,
    ) -> Result<T> {
        self.check_usable(op)?;
        let mut guard = if wait.for_thread {
            self.lock_writer(op, "begin write transaction")?
        } else {
            self.writer.try_lock().ok_or_else(|| {
                busy(
                    op,
                    "begin write transaction",
                    "another thread of this process is writing; retry once it has finished".into(),
                )
            })?
        };
        let writer = guard.as_mut().ok_or_else(|| Error::closed(op))?;
        let explicit = !single || writer.versions.is_persistent() || !wait.for_lock;
        if explicit && wait.for_lock {
            sqlite::begin_immediate(&writer.conn).ctx(op, "begin write transaction")?;
        } else if explicit {
            // Clamped to SQLite's limit at open.
            let timeout = self.config.busy_timeout;
            writer
                .conn
                .busy_timeout(Duration::ZERO)
                .ctx(op, "set busy_timeout")?;
            let began = sqlite::begin_immediate(&writer.conn);
            if let Err(e) = writer.conn.busy_timeout(timeout) {
                if began.is_ok() {
                    sqlite::rollback(&writer.conn);
                }
                return Err(e).ctx(op, "set busy_timeout");
            }
            began.ctx(op, "begin write transaction")?;
        }
        let snapshot = writer.versions.begin();
        // Nobody listening: no events are staged. A listener registering before the commit
        // still gets them, read back from the change feed (see `Staged::unrecorded`). Without
        // a feed holding values that is impossible, so the write raises a mark first (before
        // reading the listener count, both sequentially consistent against the registration's
        // increment-then-read): a listener registering now is either seen here, or sees the
        // mark and waits for this write to end (`settle_unrecorded_write`).
        let (feed, feed_values) = (self.config.changes.enabled, self.config.changes.record_values);
        let replayable = feed && feed_values;
        if !replayable {
            self.unrecorded_write.store(true, Ordering::SeqCst);
        }
        let events = self.events.has_listeners();
        if events && !replayable {
            self.unrecorded_write.store(false, Ordering::SeqCst);
        }
        let mark = UnrecordedMark((!events && !replayable).then_some(&self.unrecorded_write));
        let recording = Recording {
            feed,
            feed_values,
            events,
        };
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            body(&writer.conn, &mut writer.versions, &mut writer.staged, recording)
        }));
        let result = match outcome {
            Ok(Ok(value)) if explicit => {
                // A listener registered while this unwatched write ran: its events are read
                // back now, inside the transaction, where no other connection can prune the
                // rows (after the commit only for one registering in the last instant).
                if !writer.staged.unrecorded.is_empty() && self.events.has_listeners() {
                    writer.staged.events = replay_from_feed(&writer.conn, &writer.staged.unrecorded);
                    writer.staged.unrecorded.clear();
                }
                if writer.conn.is_autocommit() {
                    // SQLite rolled back on an error the body caught; every later statement
                    // was refused (`Transaction::check_active`), so nothing of it is written.
                    Err(super::txn::rolled_back(op))
                } else {
                    sqlite::commit(&writer.conn).ctx(op, "commit").map(|()| value)
                }
            }
            Ok(result) => result,
            Err(panic) => {
                sqlite::rollback(&writer.conn);
                writer.versions.restore(snapshot);
                writer.staged.clear();
                drop(mark);
                drop(guard);
                resume_unwind(panic);
            }
        };
        if result.is_err() {
            sqlite::rollback(&writer.conn);
            writer.versions.restore(snapshot);
            writer.staged.clear();
            return result;
        }
        if !writer.staged.unrecorded.is_empty() {
            if self.events.has_listeners() {
                writer.staged.events = replay_from_feed(&writer.conn, &writer.staged.unrecorded);
            }
            writer.staged.unrecorded.clear();
        }
        if writer.staged.events.is_empty() {
            return result;
        }
        let events = std::mem::take(&mut writer.staged.events);
        self.events.send(&events);
        drop(mark);
        drop(guard);
        self.events.call(&events);
        result
    }

    /// A read that waits at most the busy timeout for a memory store's writer lock (file
    /// stores' reads never wait). For callers that hold another lock meanwhile, such as the
    /// analytics connection during a `kv_entries` scan: a thread in a memory store's
    /// transaction that calls analytics would otherwise wait for that lock while the scan
    /// waits for the transaction, forever.
    #[cfg(feature = "analytics")]
    pub(crate) fn read_bounded<T>(
        &self,
        op: &'static str,
        f: impl FnOnce(&Connection, i64) -> rusqlite::Result<T>,
    ) -> Result<T> {
        if !self.readers.is_empty() {
            return Sealed::read_at_snapshot(self, op, f);
        }
        self.check_usable(op)?;
        let timeout = self.config.busy_timeout;
        let Some(guard) = self.writer.try_lock_for(timeout) else {
            return Err(busy(
                op,
                "read",
                format!(
                    "a transaction on this in-memory store held it past the busy timeout \
                     ({timeout:?}); retry once it has finished"
                ),
            ));
        };
        let Some(writer) = guard.as_ref() else {
            return Err(Error::closed(op));
        };
        self.judged_read(&writer.conn, f).ctx(op, "read")
    }

    /// Runs `f` on `conn` with the time to judge expiry by: on a file, read inside a read
    /// transaction whose snapshot is already taken, since another process can write the file
    /// between any clock read and a statement's first step; on a memory store, whose one
    /// connection the caller holds and nothing else can write, simply read.
    fn judged_read<T>(
        &self,
        conn: &Connection,
        f: impl FnOnce(&Connection, i64) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        if !self.is_file() {
            return f(conn, self.now());
        }
        sqlite::snapshot(conn, |c| {
            sqlite::take_snapshot(c)?;
            f(c, self.now())
        })
    }

    /// Called by a listener just registered: if a write that stages no events, and cannot
    /// replay them from the change feed (it is off, or keeps no values), is in flight (it
    /// began while nobody listened), waits for it to end, so a read after the registration
    /// sees that write's result: every change is either visible to such a read or delivered.
    /// The wait is bounded by the busy timeout (a transaction closure may run for long, or
    /// wait for the registering thread); past it the registration fails as busy rather than
    /// hand back a listener that would miss that write. Registration from inside a
    /// transaction closure is refused before this, and callbacks run after the writer lock is
    /// released, so no thread waits for its own write.
    pub(crate) fn settle_unrecorded_write(&self, op: &'static str) -> Result<()> {
        if !self.unrecorded_write.load(Ordering::SeqCst) {
            return Ok(());
        }
        // Waits for the mark to drop or the writer to come free, whichever comes first: once
        // this listener counts, no write starting later goes unrecorded, so either means the
        // write in flight at registration has ended (queued writers may get the lock first).
        let timeout = self.config.busy_timeout;
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if !self.unrecorded_write.load(Ordering::SeqCst) {
                return Ok(());
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            if self
                .writer
                .try_lock_for(left.min(Duration::from_millis(10)))
                .is_some()
            {
                return Ok(());
            }
        }
        Err(busy(
            op,
            "wait for a write that began before any listener",
            format!(
                "a write that stages no events was still running after the busy timeout \
                 ({timeout:?}); with the change feed off its changes could not reach this \
                 listener. Retry, or turn the change feed on (its events are then replayed)"
            ),
        ))
    }

    /// Marks the calling thread as running a transaction closure (see `check_usable`).
    pub(crate) fn enter_transaction(&self) {
        self.txn_owner.store(thread_token(), Ordering::Relaxed);
    }

    /// Whether the calling thread is running a transaction of this store.
    #[cfg(feature = "analytics")]
    pub(crate) fn in_transaction_here(&self) -> bool {
        self.txn_owner.load(Ordering::Relaxed) == thread_token()
    }

    /// A reader of its own for a read that lasts as long as its consumer takes (the analytics
    /// `kv_entries` scan, which holds one snapshot while DuckDB pulls its rows): it holds
    /// neither the writer nor a pooled reader meanwhile, so several scans in one query, or a
    /// scan beside the store's own calls, never wait for each other. `None` when no such reader
    /// can be opened on the very file this store has open: a memory store, a file renamed,
    /// replaced or deleted since the store opened it, or a system where that cannot be checked;
    /// the caller then reads through the store's own connections.
    #[cfg(feature = "analytics")]
    pub(crate) fn open_long_reader(&self, op: &'static str) -> Option<Connection> {
        let file = self.opened_file.as_ref()?;
        let (durability, busy) = (self.config.durability, self.config.busy_timeout);
        let conn = conn::open_file_reader(op, &file.path, durability, busy, self.config.reader_mmap_bytes);
        // Checked after the open (which has read the file): a file replaced before it fails the
        // check, and so does one replaced just after it, which errs on the safe side.
        conn.ok().filter(|_| file.is_still_at_its_path())
    }

    pub(crate) fn leave_transaction(&self) {
        self.txn_owner.store(0, Ordering::Relaxed);
    }

    fn close(&self) -> Result<()> {
        if self.txn_owner.load(Ordering::Relaxed) == thread_token() {
            return Err(Error::invalid(
                "Store::close",
                "transaction",
                "cannot close the store from inside its own transaction; close it after the closure returns",
            ));
        }
        let _closing = match self.closing.try_lock() {
            Some(guard) => guard,
            // Another close holds the lock and may be joining this very thread: waiting for it
            // could deadlock. That close completes once the callback on this thread returns.
            None if self.purge_thread.get() == Some(&std::thread::current().id()) => return Ok(()),
            None => self.closing.lock(),
        };
        if self
            .state
            .compare_exchange(OPEN, CLOSING, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Ok(()); // already closed (an earlier close held the lock until it finished)
        }
        if let Some(purge) = self.purge.lock().take() {
            purge.stop();
        }
        if let Some(checkpointer) = self.checkpointer.lock().take() {
            checkpointer.stop();
        }
        // The writer first: a write already past its checks (in a transaction, or waiting for
        // the lock) commits, and sends its events, before subscriptions are disconnected; the
        // writes after it find no writer and return `Closed`.
        let writer = self.writer.lock().take();
        self.events.close();
        self.readers.close();
        let mut result = Ok(());
        if let Some(mut writer) = writer {
            // Both are housekeeping: closing never waits for another process's write lock
            // (a one-shot `store kv get` would otherwise linger for the busy timeout). Skipped,
            // the unused numbers are never handed out and the log is checkpointed later.
            let _ = writer.conn.busy_timeout(Duration::ZERO);
            let skipped = |e: &rusqlite::Error| conn::is_busy(e);
            if let Err(e) = writer.versions.release(&writer.conn)
                && !skipped(&e)
            {
                log::warn!("store: releasing unused version numbers on close failed: {e}");
            }
            if self.is_file()
                && let Err(e) = checkpoint(&writer.conn)
                && !skipped(&e)
            {
                log::warn!("store: checkpoint on close failed: {e}");
            }
            if let Err((_, e)) = writer.conn.close() {
                result = Err(Error::sqlite("Store::close", "close writer connection", e));
            }
        }
        self.state.store(CLOSED, Ordering::Release);
        result
    }
}

impl Sealed for Inner {
    fn ops(&self) -> &'static OpNames {
        &STORE_OPS
    }

    /// Marks the thread as reading this store's clock meanwhile: a call the clock makes into
    /// this store on this thread, directly or through other stores whose clocks call back,
    /// fails at once in `check_usable`. The store reads its clock before every
    /// operation (where such a call would recurse until the stack overflows) and while it
    /// holds a connection (a write's lock, a read's snapshot, where it would wait for the
    /// very call reading the clock).
    ///
    /// Called again from inside the clock, it does not call the clock (that would recurse):
    /// it returns `i64::MIN`, which no call uses, as each then fails in `check_usable`.
    #[inline]
    fn now(&self) -> i64 {
        /// Takes the mark off again, also when the clock panics.
        struct Restore;
        impl Drop for Restore {
            fn drop(&mut self) {
                let _ = READING_CLOCK_OF.try_with(|marks| marks.borrow_mut().pop());
            }
        }
        if self.in_own_clock() {
            return i64::MIN;
        }
        let me = self as *const Inner as usize;
        // Unmarked only during thread teardown (see `in_own_clock`).
        let marked = READING_CLOCK_OF.try_with(|marks| marks.borrow_mut().push(me));
        let _restore = marked.is_ok().then_some(Restore);
        self.config.clock.now_ms()
    }

    fn max_value_bytes(&self) -> usize {
        self.config.max_value_bytes
    }

    #[inline]
    fn read<T>(&self, op: &'static str, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        self.check_usable(op)?;
        let result = if self.readers.is_empty() {
            let guard = self.lock_writer(op, "read")?;
            guard.as_ref().map(|w| f(&w.conn))
        } else {
            let wait = self.config.busy_timeout.max(THREAD_WAIT_FLOOR);
            match self.readers.with(wait, f) {
                Pooled::Ran(r) => Some(r),
                Pooled::Closed => None,
                Pooled::TimedOut => {
                    return Err(busy(
                        op,
                        "read",
                        format!(
                            "no reader connection of this store came free within {wait:?}: \
                             as many reads as the store has readers ran all that time (or a \
                             `Clock` that calls this store from another thread waited for \
                             the read reading it); retry, or open the store with more \
                             `readers`"
                        ),
                    ));
                }
            }
        };
        match result {
            Some(r) => r.ctx(op, "read"),
            None => Err(Error::closed(op)),
        }
    }

    /// See [`Inner::judged_read`].
    fn read_at_snapshot<T>(
        &self,
        op: &'static str,
        f: impl FnOnce(&Connection, i64) -> rusqlite::Result<T>,
    ) -> Result<T> {
        self.read(op, |c| self.judged_read(c, f))
    }

    /// The write runs at the time read once it holds the write lock, not at `_now` (read
    /// before waiting for it): judged at an earlier time, a quota check could count an entry
    /// that expired while the write waited as live, and let the write overshoot the quota
    /// next to one its expiry allowed.
    fn write<T>(
        &self,
        op: &'static str,
        _now: i64,
        statements: Statements,
        f: impl FnOnce(&mut WriteCtx<'_>) -> Result<T>,
    ) -> Result<T> {
        let single = statements == Statements::One && !self.config.changes.enabled;
        // A memory store's reads take the writer mutex too: there a taken mutex means a read
        // as often as a write, and a read already waits for it anyway. Another process's write
        // lock is never waited for by optional work.
        let wait = match statements {
            Statements::NeverWait => Wait::NEVER,
            Statements::IfFree => Wait {
                for_thread: self.readers.is_empty(),
                for_lock: false,
            },
            Statements::Background => Wait {
                for_thread: true,
                for_lock: false,
            },
            Statements::One | Statements::Many => Wait::ALWAYS,
        };
        self.run_write_waiting(op, single, wait, |conn, versions, staged, recording| {
            f(&mut WriteCtx::new(
                conn,
                self.now(),
                op,
                versions,
                staged,
                recording,
            ))
        })
    }
}

/// What a write waits for before it starts.
#[derive(Debug, Clone, Copy)]
struct Wait {
    /// The writer mutex, when another thread of this process holds it.
    for_thread: bool,
    /// SQLite's write lock, when another connection or process holds it (up to the busy
    /// timeout).
    for_lock: bool,
}

impl Wait {
    const ALWAYS: Wait = Wait {
        for_thread: true,
        for_lock: true,
    };
    const NEVER: Wait = Wait {
        for_thread: false,
        for_lock: false,
    };
}

impl Access for Inner {}

impl Sealed for Store {
    fn ops(&self) -> &'static OpNames {
        &STORE_OPS
    }

    #[inline]
    fn now(&self) -> i64 {
        self.inner().now()
    }

    fn max_value_bytes(&self) -> usize {
        self.inner().max_value_bytes()
    }

    #[inline]
    fn read<T>(&self, op: &'static str, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        self.inner().read(op, f)
    }

    fn read_at_snapshot<T>(
        &self,
        op: &'static str,
        f: impl FnOnce(&Connection, i64) -> rusqlite::Result<T>,
    ) -> Result<T> {
        self.inner().read_at_snapshot(op, f)
    }

    #[inline]
    fn write<T>(
        &self,
        op: &'static str,
        now: i64,
        statements: Statements,
        f: impl FnOnce(&mut WriteCtx<'_>) -> Result<T>,
    ) -> Result<T> {
        self.inner().write(op, now, statements, f)
    }
}

impl Access for Store {}

/// The events of committed mutations that were recorded without one (see
/// [`Staged::unrecorded`]), read back from their change rows; a listener registered while
/// their write ran gets them all the same. Called after the commit, under the writer lock.
/// Should the read fail, the events are lost for this dispatch only (logged): the data and
/// the feed are committed either way.
fn replay_from_feed(conn: &Connection, ranges: &[(u64, u64)]) -> Vec<Event> {
    let mut events = Vec::new();
    for &(first, last) in ranges {
        match sqlite::changes_between(conn, first, last) {
            Ok(rows) => {
                let expected = last.saturating_sub(first).saturating_add(1);
                if (rows.len() as u64) < expected {
                    log::warn!(
                        "store: {} of the events of changes {first}..={last} were not delivered: \
                         their change rows were pruned first",
                        expected - rows.len() as u64
                    );
                }
                for (seq, at_ms, kind, group, key, value, _) in rows {
                    match kind.parse::<EventKind>() {
                        Ok(kind) => events.push(Event {
                            kind,
                            group,
                            key,
                            value,
                            version: (kind == EventKind::Set).then_some(seq),
                            seq,
                            at_ms,
                        }),
                        Err(e) => log::warn!("store: change {seq} cannot become an event: {e}"),
                    }
                }
            }
            Err(e) => log::warn!("store: events of changes {first}..={last} were not delivered: {e}"),
        }
    }
    events
}
