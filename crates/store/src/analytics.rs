//! The analytics layer on DuckDB: ad-hoc SQL, canonical scoring tables, fast ingestion,
//! Parquet/CSV/JSON in and out, split export, and SQL over the KV store.
//!
//! # Concurrency
//! An [`Analytics`] owns one DuckDB connection behind a mutex, so it is `Send + Sync` and calls
//! run one at a time; DuckDB parallelises each statement internally. Within one process any
//! number of threads may share it. Across processes DuckDB allows **one** read-write opener
//! *or* any number of read-only openers of a file, never both: while one process holds a file
//! read-write, [`Analytics::open_read_only`] (and a second `open`) fails with a `DuckDb` error
//! saying the file is locked. The same rule holds between handles inside one process (DuckDB's
//! OS lock alone would let two instances of one file overwrite each other's data): open a file
//! once and share the handle.
//!
//! # Examples
//! ```
//! use store::analytics::{Analytics, Value};
//! let db = Analytics::in_memory()?;
//! db.exec_batch("CREATE TABLE t (name TEXT, score DOUBLE)")?;
//! db.exec("INSERT INTO t VALUES (?, ?)", &[Value::Text("a".into()), Value::Float(0.5)])?;
//! let rows = db.query("SELECT name, score * 2 AS doubled FROM t", &[])?;
//! assert_eq!(rows.rows[0][1], Value::Float(1.0));
//! # Ok::<(), store::Error>(())
//! ```

mod claims;
mod csvfile;
mod decompress;
mod export;
mod footer;
mod guard;
mod import;
mod jsonfile;
mod kv;
mod open;
mod paths;
mod progress;
mod scoring;
mod source;
mod split;
pub(crate) mod sql;
mod stream;
mod tables;
mod target_types;
mod typetext;
mod value;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use duckdb::{AccessMode, Connection};
use parking_lot::Mutex;

use crate::error::{Error, Result};
// The Service does not wait for a holder of its analytics file in this process.
pub(crate) use claims::is_open as open_in_this_process;
pub(crate) use guard::{MAX_PARAM_DEPTH, params_too_deep, refuse_deep_params, refuse_deep_result};
use guard::{prepare, refuse_attach_of_open_files, refuse_nul};
use open::{check_path, engine_config, file_engine, remove_failed_create};
pub(crate) use open::{open_refused, refuse_foreign_file, unfinished_database_file};
use tables::table_counts_on;
pub(crate) use tables::{
    current_database, find_table, main_table_sql, require_table, same_name, table_exists_on,
};

pub use import::CsvOptions;
pub use progress::{ImportProgress, ProgressFn};
pub use scoring::{
    CHECKPOINT_SCORES, CheckpointScore, PROBE_RESULTS, ProbeResult, SCORING_RESULTS, ScoringResult,
};
pub use split::{HIVE_NULL, MAX_ESCAPED_VALUE_BYTES, SplitFile, SplitManifest, escape_segment};
pub use sql::MAX_IDENTIFIER_BYTES;
pub use stream::ArrowBatches;
pub use value::{ColumnIndex, Row, Rows, Value};

/// Message of a `kv_entries` scan whose store is closed (mapped to `Error::Closed`).
pub(crate) const KV_CLOSED: &str = "kv_entries: the KV store is closed; attach an open store again";

/// How a job whose progress callback panicked fails (mapped to `InvalidInput { field: "progress" }`).
pub(crate) const PROGRESS_PANICKED: &str = "the progress callback panicked";

/// Message of a `kv_entries` query issued inside a transaction of its store, on the thread
/// running that transaction (mapped to `Error::InvalidInput { field: "transaction" }`).
pub(crate) const KV_IN_TRANSACTION: &str = "kv_entries: queried inside a transaction of its KV store, on the \
     transaction's thread; the scan cannot see the transaction's writes (and an in-memory store's \
     scan would wait for it forever): query after the transaction, or read through the transaction";

/// A DuckDB database: a file (read-write or read-only) or in memory.
///
/// # Examples
/// ```
/// let dir = tempfile::tempdir()?;
/// let db = store::analytics::Analytics::open(dir.path().join("warehouse.duckdb"))?;
/// db.exec_batch("CREATE TABLE t AS SELECT * FROM range(10)")?;
/// assert_eq!(db.table_counts()?["t"], 10);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Analytics {
    conn: Mutex<Option<Connection>>,
    /// The thread reading a [`stream::ArrowBatches`] (which holds `conn`), or 0.
    reader: std::sync::atomic::AtomicUsize,
    /// The thread inside any call holding `conn` (`with_conn`, so also a
    /// [`Analytics::with_connection`] closure), or 0: neither that thread nor a progress
    /// callback it waits for may wait for the lock.
    locked_by: std::sync::atomic::AtomicUsize,
    /// Released after the connection closes (fields drop in order, and `close` takes both).
    claim: Mutex<Option<claims::FileClaim>>,
    path: Option<PathBuf>,
    read_only: bool,
    /// How long a split export waits for another one into the same directory, in ms
    /// (`u64::MAX`: as long as it takes); see [`Analytics::set_busy_timeout`].
    busy_timeout_ms: std::sync::atomic::AtomicU64,
}

impl fmt::Debug for Analytics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Analytics")
            .field("path", &self.path)
            .field("read_only", &self.read_only)
            .finish()
    }
}

/// Tables, their row counts and a few notes, from [`Analytics::inventory`].
///
/// # Examples
/// ```
/// let db = store::analytics::Analytics::in_memory()?;
/// db.ensure_scoring_tables()?;
/// let inventory = db.inventory()?;
/// assert!(inventory.to_string().contains("TOTAL"));
/// # Ok::<(), store::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Inventory {
    /// Every base table, by name.
    pub tables: Vec<TableInfo>,
    /// Sum of the tables' rows.
    pub total_rows: u64,
}

/// One table of an [`Inventory`].
///
/// # Examples
/// ```
/// let info = store::analytics::TableInfo { name: "t".into(), rows: 3, notes: vec![] };
/// assert_eq!(info.rows, 3);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct TableInfo {
    /// Table name.
    pub name: String,
    /// Row count.
    pub rows: u64,
    /// Facts about known tables (`"3 models"`, `"10 passed"`…).
    pub notes: Vec<String>,
}

impl fmt::Display for Inventory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rule = "-".repeat(52);
        writeln!(f, "Analytics inventory")?;
        writeln!(f, "{rule}")?;
        for t in &self.tables {
            // A table name may hold any character; those that would break the report's one
            // line per table (a newline, a terminal escape, a bidi override) are shown escaped.
            let name = crate::text::visible(&t.name);
            write!(f, "  {name:<24} {:>8} rows", t.rows)?;
            if !t.notes.is_empty() {
                write!(f, "  ({})", t.notes.join(", "))?;
            }
            writeln!(f)?;
        }
        writeln!(f, "{rule}")?;
        write!(f, "  {:<24} {:>8} rows", "TOTAL", self.total_rows)
    }
}

impl Analytics {
    /// Opens (creating if needed) a database file read-write.
    ///
    /// # Errors
    /// `Io` if the parent directory is missing (nothing is created); `DuckDb` if the file is
    /// not a DuckDB database, another process holds it, or another handle in this process has
    /// it open (share that handle instead).
    ///
    /// # Examples
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let db = store::analytics::Analytics::open(dir.path().join("a b.duckdb"))?; // spaces are fine
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(path: impl AsRef<Path>) -> Result<Analytics> {
        const OP: &str = "Analytics::open";
        let path = &sql::as_duckdb_reads_it(OP, path.as_ref())?;
        check_path(OP, path)?;
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
            && !parent.is_dir()
        {
            return Err(Error::Io {
                op: OP,
                path: Some(parent.to_path_buf()),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "the parent directory does not exist; create it first",
                ),
            });
        }
        refuse_foreign_file(OP, path)?;
        let mut claim = claims::claim(OP, path, false)?;
        let (target, config) = file_engine(OP, path, AccessMode::ReadWrite)?;
        let existed = std::fs::symlink_metadata(path).is_ok();
        let conn = match Connection::open_with_flags(target, config) {
            Ok(conn) => conn,
            Err(e) => {
                // Released first: the file left behind is nobody's database in this process.
                drop(claim);
                if !existed {
                    remove_failed_create(path, &e);
                }
                return Err(Error::duckdb(OP, format!("open {}", path.display()), e));
            }
        };
        if let Some(claim) = &mut claim {
            claim.cover_created_file(OP, path)?;
        }
        Ok(Self::wrap(conn, claim, Some(path.to_path_buf()), false))
    }

    /// Opens an existing database file read-only; every write fails with `DuckDb`.
    ///
    /// # Errors
    /// `Missing { kind: "file" }` if nothing is at the path; `Io` if it cannot be read (the
    /// operating system's reason: permission denied, a loop of links); `InvalidInput` for a
    /// directory or device; `DuckDb` if another process, or another handle in this one, holds
    /// it read-write.
    ///
    /// # Examples
    /// ```
    /// use store::analytics::Analytics;
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("w.duckdb");
    /// Analytics::open(&path)?.close()?;
    /// let db = Analytics::open_read_only(&path)?;
    /// assert!(db.exec_batch("CREATE TABLE t (x INT)").is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Analytics> {
        const OP: &str = "Analytics::open_read_only";
        let path = &sql::as_duckdb_reads_it(OP, path.as_ref())?;
        check_path(OP, path)?;
        paths::require_readable_file(OP, path)?;
        refuse_foreign_file(OP, path)?;
        let claim = claims::claim(OP, path, true)?;
        let (target, config) = file_engine(OP, path, AccessMode::ReadOnly)?;
        let conn = Connection::open_with_flags(target, config)
            .map_err(|e| Error::duckdb(OP, format!("open {} read-only", path.display()), e))?;
        Ok(Self::wrap(conn, claim, Some(path.to_path_buf()), true))
    }

    /// A private in-memory database.
    ///
    /// # Examples
    /// ```
    /// let db = store::analytics::Analytics::in_memory()?;
    /// # Ok::<(), store::Error>(())
    /// ```
    pub fn in_memory() -> Result<Analytics> {
        const OP: &str = "Analytics::in_memory";
        let config = engine_config(OP, AccessMode::Automatic)?;
        let conn = Connection::open_in_memory_with_flags(config).map_err(|e| Error::duckdb(OP, "open", e))?;
        Ok(Self::wrap(conn, None, None, false))
    }

    fn wrap(
        conn: Connection,
        claim: Option<claims::FileClaim>,
        path: Option<PathBuf>,
        read_only: bool,
    ) -> Analytics {
        Analytics {
            conn: Mutex::new(Some(conn)),
            reader: std::sync::atomic::AtomicUsize::new(0),
            locked_by: std::sync::atomic::AtomicUsize::new(0),
            claim: Mutex::new(claim),
            path,
            read_only,
            busy_timeout_ms: std::sync::atomic::AtomicU64::new(u64::MAX),
        }
    }

    /// The database file, or `None` in memory.
    ///
    /// # Examples
    /// ```
    /// assert!(store::analytics::Analytics::in_memory()?.path().is_none());
    /// # Ok::<(), store::Error>(())
    /// ```
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Whether the database was opened read-only.
    ///
    /// # Examples
    /// ```
    /// assert!(!store::analytics::Analytics::in_memory()?.is_read_only());
    /// # Ok::<(), store::Error>(())
    /// ```
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// Checkpoints and closes the database. Later calls return `Closed`.
    ///
    /// # Examples
    /// ```
    /// let db = store::analytics::Analytics::in_memory()?;
    /// db.close()?;
    /// assert!(db.query("SELECT 1", &[]).unwrap_err().is_closed());
    /// # Ok::<(), store::Error>(())
    /// ```
    pub fn close(&self) -> Result<()> {
        self.check_free("Analytics::close")?;
        let mut conn = self.conn.lock();
        let closed = match conn.take() {
            // A connection that fails to close is dropped here all the same.
            Some(c) => c
                .close()
                .map_err(|(_, e)| Error::duckdb("Analytics::close", "close connection", e)),
            None => Ok(()),
        };
        // The file is free for another opener in this process once its instance is gone.
        self.claim.lock().take();
        closed
    }

    /// Runs `f` with the underlying duckdb-rs connection, for what this API does not wrap
    /// (custom appenders, extensions, pragmas). The connection is locked for the call, so
    /// `f` must use the connection it is given: this handle's own methods called from inside
    /// `f` are refused.
    ///
    /// # Errors
    /// `Closed` after [`Analytics::close`]; `InvalidInput { field: "connection" }` when called
    /// from inside another `with_connection` or while this thread reads a `query_arrow`
    /// result; `f`'s error as `DuckDb`.
    ///
    /// # Examples
    /// ```
    /// let db = store::analytics::Analytics::in_memory()?;
    /// let version: String = db.with_connection(|c| c.query_row("SELECT version()", [], |r| r.get(0)))?;
    /// assert!(version.starts_with('v'));
    /// # Ok::<(), store::Error>(())
    /// ```
    pub fn with_connection<T>(&self, f: impl FnOnce(&Connection) -> duckdb::Result<T>) -> Result<T> {
        const OP: &str = "Analytics::with_connection";
        // While `f` holds the connection, a call of this handle from inside it would wait for
        // the lock forever; `with_conn`'s `locked_by` mark makes it an error instead.
        self.with_conn(OP, |conn| f(conn).map_err(|e| Error::duckdb(OP, "run", e)))
    }

    /// Refuses a call on a thread that already holds the connection (reading a `query_arrow`
    /// result, or inside `with_connection`), or that runs the progress callback of a job
    /// holding it: waiting for the lock there would never end.
    pub(crate) fn check_free(&self, op: &'static str) -> Result<()> {
        self.check_not_streaming(op)?;
        if self.held_by_a_waiting_thread() {
            return Err(Error::invalid(
                op,
                "connection",
                "called from a progress callback while a running job holds this handle's \
                 connection until the callback returns; pass the figures to another thread and \
                 call the handle from there once the job has finished",
            ));
        }
        // Only `with_connection` runs caller code while this thread holds the connection.
        if self.locked_by.load(std::sync::atomic::Ordering::Relaxed) == crate::kv::store::thread_token() {
            return Err(Error::invalid(
                op,
                "connection",
                "called from inside with_connection on this thread, which holds the connection; \
                 use the connection it passes instead",
            ));
        }
        Ok(())
    }

    /// Whether this handle's connection is held (inside a call, or by a `query_arrow` result)
    /// by a thread that waits for the calling thread: one that started a job whose progress
    /// callback runs here, directly or through nested jobs.
    fn held_by_a_waiting_thread(&self) -> bool {
        use std::sync::atomic::Ordering;
        let holders = [
            self.locked_by.load(Ordering::Relaxed),
            self.reader.load(Ordering::Relaxed),
        ];
        WAITING_FOR_US
            .try_with(|waiting| {
                let waiting = waiting.borrow();
                holders.iter().any(|h| *h != 0 && waiting.contains(h))
            })
            .unwrap_or(false)
    }

    /// Runs `f` on the connection.
    pub(crate) fn with_conn<T>(
        &self,
        op: &'static str,
        f: impl FnOnce(&Connection) -> Result<T>,
    ) -> Result<T> {
        self.check_free(op)?;
        let guard = self.conn.lock();
        let conn = guard.as_ref().ok_or(Error::Closed {
            op,
            what: "analytics database",
        })?;
        let _locked = LockedBy::mark(&self.locked_by);
        f(conn)
    }

    /// Runs `f` inside one DuckDB transaction: committed on `Ok`, rolled back on `Err`.
    pub(crate) fn in_transaction<T>(
        &self,
        op: &'static str,
        f: impl FnOnce(&Connection) -> Result<T>,
    ) -> Result<T> {
        self.with_conn(op, |conn| transaction_on(op, conn, Mode::ReadWrite, f))
    }

    /// Sets how long a call of this handle waits for another process's hold on something it
    /// needs besides the database itself: a split export's wait for another export into the
    /// same directory (which holds that directory's lock). `None`, the default, waits as long
    /// as that export takes; after the timeout the call fails with a busy error
    /// ([`Error::is_busy`]), having changed nothing. The [`Service`](crate::Service) sets its
    /// store's `busy_timeout` here.
    ///
    /// # Examples
    /// ```
    /// let db = store::analytics::Analytics::in_memory()?;
    /// db.set_busy_timeout(Some(std::time::Duration::from_secs(5)));
    /// # Ok::<(), store::Error>(())
    /// ```
    pub fn set_busy_timeout(&self, timeout: Option<std::time::Duration>) {
        let ms = timeout.map_or(u64::MAX, |t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX));
        self.busy_timeout_ms
            .store(ms, std::sync::atomic::Ordering::Relaxed);
    }

    /// The wait [`Analytics::set_busy_timeout`] set.
    pub(crate) fn busy_timeout(&self) -> Option<std::time::Duration> {
        match self.busy_timeout_ms.load(std::sync::atomic::Ordering::Relaxed) {
            u64::MAX => None,
            ms => Some(std::time::Duration::from_millis(ms)),
        }
    }

    /// Runs one statement with positional parameters; returns the rows it changed.
    ///
    /// # Errors
    /// `InvalidInput { field: "sql" }` for text holding more than one statement (nothing runs;
    /// see [`Analytics::exec_batch`]); `DuckDb` for what DuckDB refuses.
    ///
    /// # Examples
    /// ```
    /// use store::analytics::{Analytics, Value};
    /// let db = Analytics::in_memory()?;
    /// db.exec_batch("CREATE TABLE t (x INT)")?;
    /// assert_eq!(db.exec("INSERT INTO t VALUES (?), (?)", &[Value::Int(1), Value::Int(2)])?, 2);
    /// # Ok::<(), store::Error>(())
    /// ```
    pub fn exec(&self, sql: &str, params: &[Value]) -> Result<u64> {
        const OP: &str = "Analytics::exec";
        refuse_deep_params(OP, params)?;
        self.with_conn(OP, |conn| {
            let mut stmt = prepare(OP, conn, sql)?;
            let n = stmt
                .execute(duckdb::params_from_iter(params.iter()))
                .map_err(|e| Error::duckdb(OP, "execute", e))?;
            Ok(n as u64)
        })
    }

    /// Runs one or more statements without parameters, in order; each commits as it runs
    /// unless the text wraps them in `BEGIN … COMMIT`, so a failing one leaves the earlier
    /// ones applied. Inside `BEGIN … COMMIT` a failure leaves the transaction open and
    /// failed: run `ROLLBACK` before anything else.
    ///
    /// # Examples
    /// ```
    /// let db = store::analytics::Analytics::in_memory()?;
    /// db.exec_batch("CREATE TABLE a (x INT); CREATE TABLE b (y INT);")?;
    /// assert!(db.table_exists("b")?);
    /// # Ok::<(), store::Error>(())
    /// ```
    pub fn exec_batch(&self, sql: &str) -> Result<()> {
        const OP: &str = "Analytics::exec_batch";
        refuse_nul(OP, sql)?;
        self.with_conn(OP, |conn| {
            refuse_attach_of_open_files(OP, conn, &sql::Statements::of(sql))?;
            conn.execute_batch(sql)
                .map_err(|e| Error::duckdb(OP, "execute", e))
        })
    }

    /// Runs a query and collects its rows.
    ///
    /// # Errors
    /// `InvalidInput { field: "sql" }` for text holding no statement or more than one (nothing
    /// runs); `DuckDb` for what DuckDB refuses.
    ///
    /// # Examples
    /// ```
    /// use store::analytics::{Analytics, Value};
    /// let db = Analytics::in_memory()?;
    /// let rows = db.query("SELECT ? + 1 AS n", &[Value::Int(41)])?;
    /// assert_eq!(rows.rows, vec![vec![Value::Int(42)]]);
    /// # Ok::<(), store::Error>(())
    /// ```
    pub fn query(&self, sql: &str, params: &[Value]) -> Result<Rows> {
        const OP: &str = "Analytics::query";
        self.with_conn(OP, |conn| query_on(OP, conn, sql, params, usize::MAX))
    }

    /// The first row of a query, if any.
    ///
    /// # Errors
    /// As [`Analytics::query`].
    ///
    /// # Examples
    /// ```
    /// use store::analytics::{Analytics, Value};
    /// let db = Analytics::in_memory()?;
    /// assert_eq!(db.query_row("SELECT 42", &[])?.unwrap().values, vec![Value::Int(42)]);
    /// assert!(db.query_row("SELECT 1 WHERE false", &[])?.is_none());
    /// # Ok::<(), store::Error>(())
    /// ```
    pub fn query_row(&self, sql: &str, params: &[Value]) -> Result<Option<Row>> {
        const OP: &str = "Analytics::query_row";
        let rows = self.with_conn(OP, |conn| query_on(OP, conn, sql, params, 1))?;
        Ok(rows.rows.into_iter().next().map(|values| Row {
            columns: rows.columns,
            values,
        }))
    }

    /// Whether a table (or view) of that name exists as the store's calls (imports, exports)
    /// find names: a temporary one, else `main`'s, whatever a `USE` or `search_path` on this
    /// handle says, else another schema's table by the name [`Analytics::table_counts`] gives
    /// it (`schema.table`).
    ///
    /// # Examples
    /// ```
    /// let db = store::analytics::Analytics::in_memory()?;
    /// assert!(!db.table_exists("nope")?);
    /// # Ok::<(), store::Error>(())
    /// ```
    pub fn table_exists(&self, table: &str) -> Result<bool> {
        const OP: &str = "Analytics::table_exists";
        sql::ident(OP, "table", table)?;
        self.with_conn(OP, |conn| table_exists_on(OP, conn, table))
    }

    /// Row counts of every base table of this database (not temporary tables, not attached
    /// databases' tables), by name; a table of a schema other than the default one is named
    /// `schema.table`.
    ///
    /// # Examples
    /// ```
    /// let db = store::analytics::Analytics::in_memory()?;
    /// db.exec_batch("CREATE TABLE t AS SELECT 1 AS x; CREATE SCHEMA s; CREATE TABLE s.u AS SELECT 1 AS y")?;
    /// assert_eq!(db.table_counts()?.get("t"), Some(&1));
    /// assert_eq!(db.table_counts()?.get("s.u"), Some(&1));
    /// # Ok::<(), store::Error>(())
    /// ```
    pub fn table_counts(&self) -> Result<BTreeMap<String, u64>> {
        const OP: &str = "Analytics::table_counts";
        self.with_conn(OP, |conn| table_counts_on(OP, conn))
    }

    /// Tables with row counts and notes on the scoring tables.
    ///
    /// # Examples
    /// ```
    /// let db = store::analytics::Analytics::in_memory()?;
    /// db.exec_batch("CREATE TABLE t AS SELECT * FROM range(3)")?;
    /// let inv = db.inventory()?;
    /// assert_eq!((inv.tables[0].name.as_str(), inv.total_rows), ("t", 3));
    /// # Ok::<(), store::Error>(())
    /// ```
    pub fn inventory(&self) -> Result<Inventory> {
        const OP: &str = "Analytics::inventory";
        self.with_conn(OP, |conn| {
            let counts = table_counts_on(OP, conn)?;
            let mut tables = Vec::with_capacity(counts.len());
            for (name, rows) in counts {
                let notes = scoring::notes(OP, conn, &name)?;
                tables.push(TableInfo { name, rows, notes });
            }
            let total_rows = tables.iter().map(|t| t.rows).sum();
            Ok(Inventory { tables, total_rows })
        })
    }
}

thread_local! {
    /// On a progress helper thread: the threads waiting for it to finish (the one that started
    /// its job, and those that one is a helper of in turn), by `thread_token`.
    static WAITING_FOR_US: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

/// Marks `locked_by` with the calling thread while it holds the connection; cleared on drop
/// (also on unwind), before the lock is released.
struct LockedBy<'a>(&'a std::sync::atomic::AtomicUsize);

impl<'a> LockedBy<'a> {
    fn mark(locked_by: &'a std::sync::atomic::AtomicUsize) -> LockedBy<'a> {
        locked_by.store(
            crate::kv::store::thread_token(),
            std::sync::atomic::Ordering::Relaxed,
        );
        LockedBy(locked_by)
    }
}

impl Drop for LockedBy<'_> {
    fn drop(&mut self) {
        self.0.store(0, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The threads a progress helper started from this thread must not wait for: this one, and
/// those waiting for this one.
pub(crate) fn threads_waiting_for_helper() -> Vec<usize> {
    let mut waiting = WAITING_FOR_US
        .try_with(|w| w.borrow().clone())
        .unwrap_or_default();
    waiting.push(crate::kv::store::thread_token());
    waiting
}

/// Records on a progress helper thread which threads wait for it.
pub(crate) fn mark_progress_thread(waiting: Vec<usize>) {
    let _ = WAITING_FOR_US.try_with(|w| *w.borrow_mut() = waiting);
}

/// How a transaction opens: read-write, or read-only (DuckDB then refuses any change to the
/// database, while `COPY … TO` a file is still allowed).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Mode {
    ReadWrite,
    ReadOnly,
}

/// Runs `f` in one transaction on a connection the caller already holds: committed if it
/// returns `Ok`, rolled back otherwise.
pub(crate) fn transaction_on<T>(
    op: &'static str,
    conn: &Connection,
    mode: Mode,
    f: impl FnOnce(&Connection) -> Result<T>,
) -> Result<T> {
    // A BEGIN inside the caller's own transaction would fail, and DuckDB then aborts that
    // transaction: the caller's writes would be lost and its COMMIT would still succeed.
    if in_explicit_transaction(conn) {
        return Err(Error::invalid(
            op,
            "transaction",
            "a transaction opened with BEGIN on this handle is still open (or failed and \
             awaits its ROLLBACK); COMMIT or ROLLBACK it first (this call runs in a transaction \
             of its own)",
        ));
    }
    let begin = match mode {
        Mode::ReadWrite => "BEGIN TRANSACTION",
        Mode::ReadOnly => "BEGIN TRANSACTION READ ONLY",
    };
    conn.execute_batch(begin)
        .map_err(|e| Error::duckdb(op, "begin transaction", e))?;
    let rollback = || {
        if let Err(rollback) = conn.execute_batch("ROLLBACK") {
            log::warn!("store: analytics rollback failed: {rollback}");
        }
    };
    // `f` may run the caller's code (an append streams rows from the caller's iterator): if
    // it panics, the transaction must not stay open on a handle that outlives the panic,
    // where later statements would run inside it and vanish when the handle closes.
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(conn))) {
        Ok(Ok(v)) => {
            conn.execute_batch("COMMIT")
                .map_err(|e| Error::duckdb(op, "commit", e))?;
            Ok(v)
        }
        Ok(Err(e)) => {
            rollback();
            Err(e)
        }
        Err(panic) => {
            rollback();
            std::panic::resume_unwind(panic)
        }
    }
}

/// Whether the caller opened a transaction on `conn` (BEGIN without COMMIT or ROLLBACK yet).
/// duckdb-rs' `is_autocommit` always answers true; in autocommit mode every statement runs
/// in a transaction of its own, so two statements asking for the transaction id get two ids,
/// and one id only inside an open transaction.
fn in_explicit_transaction(conn: &Connection) -> bool {
    let id = || conn.query_row("SELECT txid_current()", [], |r| r.get::<_, i64>(0));
    match (id(), id()) {
        (Ok(a), Ok(b)) => a == b,
        // The caller's transaction failed and awaits its ROLLBACK: every statement errs.
        _ => true,
    }
}

pub(crate) fn query_on(
    op: &'static str,
    conn: &Connection,
    sql: &str,
    params: &[Value],
    limit: usize,
) -> Result<Rows> {
    refuse_deep_params(op, params)?;
    let mut stmt = prepare(op, conn, sql)?;
    let mut rows = stmt
        .query(duckdb::params_from_iter(params.iter()))
        .map_err(|e| Error::duckdb(op, "execute", e))?;
    let columns = rows.as_ref().map(|s| s.column_names()).unwrap_or_default();
    // duckdb-rs panics on a value of a NULL-typed column (`SELECT NULL`), one with an untyped
    // NULL nested inside (`SELECT [NULL]`) or a type it does not know (`TIME_NS`): the first
    // are answered without asking it, the others are read from their Arrow arrays.
    let types: Vec<_> = (0..columns.len())
        .map(|i| rows.as_ref().map(|s| s.column_type(i)))
        .collect();
    for (name, t) in columns.iter().zip(&types) {
        if let Some(t) = t {
            refuse_deep_result(op, name, t)?;
        }
    }
    let null_typed: Vec<bool> = types
        .iter()
        .map(|t| {
            t.as_ref()
                .is_some_and(|t| *t == duckdb::arrow::datatypes::DataType::Null)
        })
        .collect();
    // What the Arrow types cannot tell (UHUGEINT vs HUGEINT, BIT and BIGNUM bytes), at every
    // nesting level; `column_logical_type` is defined for every index below the column count.
    let carriers: Vec<value::Carrier> = (0..columns.len())
        .map(|i| {
            rows.as_ref().map_or_else(Default::default, |s| {
                value::Carrier::of(&s.column_logical_type(i))
            })
        })
        .collect();
    let via_arrow: Vec<bool> = types
        .iter()
        .zip(&carriers)
        .map(|(t, c)| t.as_ref().is_some_and(value::needs_arrow) || *c != value::Carrier::Plain)
        .collect();
    let mut out = Vec::new();
    // duckdb-rs cannot even borrow a top-level value of a type it does not know: read the
    // result's Arrow chunks directly (every column through `from_arrow`).
    if types
        .iter()
        .any(|t| t.as_ref().is_some_and(|t| !value::borrowable(t)))
    {
        let stmt = rows.as_ref().ok_or_else(|| {
            Error::invalid(op, "sql", "the statement has no result to read; run it with exec")
        })?;
        while out.len() < limit {
            let Some(chunk) = stmt.step().map_err(|e| Error::duckdb(op, "read rows", e))? else {
                break;
            };
            for row in 0..duckdb::arrow::array::Array::len(&chunk) {
                if out.len() >= limit {
                    break;
                }
                let values = (chunk.columns().iter().zip(&carriers))
                    .map(|(c, carrier)| value::from_arrow(c.as_ref(), row, carrier));
                out.push(values.collect());
            }
        }
        return Ok(Rows { columns, rows: out });
    }
    while out.len() < limit {
        let Some(row) = rows.next().map_err(|e| Error::duckdb(op, "read row", e))? else {
            break;
        };
        let mut values = Vec::with_capacity(columns.len());
        for (i, null) in null_typed.iter().enumerate() {
            if *null {
                values.push(Value::Null);
                continue;
            }
            let v = row.get_ref(i).map_err(|e| Error::duckdb(op, "read value", e))?;
            values.push(if via_arrow[i] {
                value::from_value_ref(v, &carriers[i])
            } else {
                Value::from(v.to_owned())
            });
        }
        out.push(values);
    }
    Ok(Rows { columns, rows: out })
}

impl duckdb::ToSql for Value {
    fn to_sql(&self) -> duckdb::Result<duckdb::types::ToSqlOutput<'_>> {
        use duckdb::types::{TimeUnit, ToSqlOutput, Value as D};
        fn owned(v: &Value) -> D {
            match v {
                Value::Null => D::Null,
                Value::Bool(b) => D::Boolean(*b),
                Value::Int(i) => D::BigInt(*i),
                Value::UInt(u) => D::UBigInt(*u),
                Value::Float(f) => D::Double(*f),
                Value::Text(s) | Value::Other(s) => D::Text(s.clone()),
                Value::Blob(b) => D::Blob(b.clone()),
                Value::Timestamp(us) => D::Timestamp(TimeUnit::Microsecond, value::duckdb_micros(*us)),
                Value::Date(d) => D::Date32(value::duckdb_days(*d)),
                Value::List(items) => D::List(items.iter().map(owned).collect()),
                Value::Struct(fields) => D::Struct(
                    fields
                        .iter()
                        .map(|(k, v)| (k.clone(), owned(v)))
                        .collect::<Vec<_>>()
                        .into(),
                ),
            }
        }
        Ok(ToSqlOutput::Owned(owned(self)))
    }
}
