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
mod footer;
mod io;
mod jsonfile;
mod kv;
mod paths;
mod progress;
mod scoring;
mod source;
mod split;
pub(crate) mod sql;
mod stream;
mod target_types;
mod typetext;
mod value;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use duckdb::{AccessMode, Config, Connection};
use parking_lot::Mutex;

use crate::error::{Error, Result};

pub use io::CsvOptions;
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

    /// Whether a table (or view) of that name exists in the main schema.
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

fn check_path(op: &'static str, path: &Path) -> Result<()> {
    sql::require_path(op, "path", path)?; // empty or NUL
    // DuckDB derives the write-ahead log's name by cutting the path at a `?` (where URI-style
    // options would start), so every write of such a database fails to open its log.
    if path.to_string_lossy().contains('?') {
        return Err(Error::invalid(
            op,
            "path",
            format!(
                "{} contains '?', which DuckDB takes for the start of connection options in a \
                 database path (its writes would fail); use a path without '?'",
                path.display()
            ),
        ));
    }
    Ok(())
}

/// Refuses an existing file that is not a DuckDB database. DuckDB itself rejects most such
/// files, but opens a Parquet file as an empty in-memory database: every write to it would be
/// lost on close. A missing file is left to the open, which creates the database; an empty or
/// unreadable one (or a FIFO or directory) to DuckDB's own error (the Service treats an empty
/// file specially). `:memory:` is DuckDB's in-memory database, whatever file has that name.
fn refuse_foreign_file(op: &'static str, path: &Path) -> Result<()> {
    if path.as_os_str() == ":memory:" {
        return Ok(());
    }
    crate::validate::not_a_special_file(op, path, "a DuckDB database file")?;
    let Some(head) = paths::file_head(path, 12) else {
        // Locked here: a DuckDB database this process has open is the claim's to judge; any
        // other (the KV store's SQLite file, say) DuckDB must not open and close.
        if claims::is_open(path) {
            return Ok(());
        }
        return Err(open_refused(
            op,
            path,
            duckdb::ffi::ErrorCode::CannotOpen,
            format!(
                "{} is a database this process has open outside Analytics (it holds locks on \
                 the file: the KV store's SQLite file, or a file ATTACHed in SQL); open another \
                 path, or use the handle that has it open",
                path.display()
            ),
        ));
    };
    if head.is_empty() || paths::is_duckdb_header(&head) {
        return Ok(());
    }
    let kind = if head.starts_with(b"PAR1") {
        " (it is a Parquet file: read it with read_parquet or import it with import_file)"
    } else {
        ""
    };
    let message = format!(
        "{} is not a valid DuckDB database file{kind}; open a DuckDB database, or a path that does not \
         exist yet to create one",
        path.display()
    );
    Err(open_refused(
        op,
        path,
        duckdb::ffi::ErrorCode::CannotOpen,
        message,
    ))
}

/// A `DuckDb` error for an open this crate refuses before DuckDB sees it, shaped like DuckDB's
/// own refusals (`code` decides, e.g., `is_busy()`).
fn open_refused(op: &'static str, path: &Path, code: duckdb::ffi::ErrorCode, message: String) -> Error {
    let mut failure = duckdb::ffi::Error::new(duckdb::ffi::duckdb_state_DuckDBError);
    failure.code = code;
    Error::duckdb(
        op,
        format!("open {}", path.display()),
        duckdb::Error::DuckDBFailure(failure, Some(message)),
    )
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
    match f(conn) {
        Ok(v) => {
            conn.execute_batch("COMMIT")
                .map_err(|e| Error::duckdb(op, "commit", e))?;
            Ok(v)
        }
        Err(e) => {
            if let Err(rollback) = conn.execute_batch("ROLLBACK") {
                log::warn!("store: analytics rollback failed: {rollback}");
            }
            Err(e)
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

/// The engine settings every database opens with: the access mode, and `async_threads = 0`.
///
/// DuckDB 2.0 writes COPY output (Parquet, CSV) through an asynchronous write queue, and when
/// the query fails mid-write (a failed cast, say) the abort can deadlock: the failing thread
/// drains the queue's tasks while holding the lock a draining task waits for, and the process
/// hangs for good (reproduced in 1 of ~30 failing exports, every time within a few in one
/// process). Without async threads DuckDB writes synchronously from its worker threads, which
/// costs the exports nothing measurable (see the export benchmark).
fn engine_config(op: &'static str, mode: AccessMode) -> Result<Config> {
    Config::default()
        .access_mode(mode)
        .and_then(|c| c.with("async_threads", "0"))
        .map_err(|e| Error::duckdb(op, "configure", e))
}

/// What DuckDB is handed to open the database file at `path`: the path typed as a DuckDB
/// database file (see [`typed_path`]), and the engine config with DuckDB's spill directory
/// named as DuckDB names it for an untyped path, `<path>.tmp` (it derives the default from the
/// path before it strips the type, which would make it `duckdb:<path>.tmp`, a directory under
/// the current one that does not exist, and a query larger than memory would fail).
///
/// DuckDB's settings are UTF-8 text, so a file whose path is not UTF-8 cannot have its spill
/// directory named: it opens untyped, as before, with the narrow race `typed_path` describes.
fn file_engine(op: &'static str, path: &Path, mode: AccessMode) -> Result<(std::path::PathBuf, Config)> {
    let config = engine_config(op, mode)?;
    let Some(text) = path.to_str() else {
        return Ok((path.to_path_buf(), config));
    };
    let config = config
        .with("temp_directory", format!("{text}.tmp"))
        .map_err(|e| Error::duckdb(op, "configure", e))?;
    Ok((typed_path(path), config))
}

/// The path handed to DuckDB, typed as a DuckDB database file: `duckdb:<path>`.
///
/// Given an untyped path, DuckDB 2.0 reads the file's headers to detect its type *before* it
/// takes the file lock, and then serves its first header reads from those bytes. A process
/// that waited for the lock while another one wrote and checkpointed (the Service and the CLI
/// retry a busy file) then opened the checkpoint before that one: the other process's last
/// commit was silently lost, and blocks its checkpoint had freed could be reused (18 processes
/// taking turns lost 1 to 3 committed imports in most runs). Naming the type skips that early
/// read, so every header read happens under the lock. The file's type is still checked, by
/// [`refuse_foreign_file`] and by DuckDB's own magic-byte check when it opens the file.
fn typed_path(path: &Path) -> std::path::PathBuf {
    let mut typed = std::ffi::OsString::from("duckdb:");
    // `duckdb://…` would read as a URL rather than a type prefix; `/.//…` names the same file.
    if path.as_os_str().as_encoded_bytes().starts_with(b"//") {
        typed.push("/.");
    }
    typed.push(path.as_os_str());
    typed.into()
}

/// SQL text cannot hold a NUL: it passes to DuckDB as a C string (duckdb-rs would fail with
/// "nul byte found"). A NUL inside a value goes as a parameter instead.
fn refuse_nul(op: &'static str, sql: &str) -> Result<()> {
    match sql.find('\0') {
        Some(at) => Err(Error::invalid(
            op,
            "sql",
            format!("the SQL text holds a NUL character (byte {at}); pass such a value as a parameter"),
        )),
        None => Ok(()),
    }
}

/// Refuses caller SQL that would `ATTACH` a database file this process already has open
/// through an [`Analytics`] handle (under any name): a second DuckDB instance on the file
/// overwrites the first one's checkpoints, and its `DETACH` closes a descriptor of the file,
/// which drops the process's OS lock on it while the first handle still writes. The
/// `schema.sql` and `load.sql` an `IMPORT DATABASE` would run are checked too. A target the
/// store cannot read as a path (not a plain string literal) is refused, as it cannot be
/// checked.
fn refuse_attach_of_open_files(op: &'static str, conn: &Connection, sql: &sql::Statements<'_>) -> Result<()> {
    refuse_attaches_in(op, conn, sql, sql, true)
}

/// Checks the `ATTACH`es of `sql`: the caller's text (`caller_text`), or a script an
/// `IMPORT DATABASE` of `caller` would run.
fn refuse_attaches_in(
    op: &'static str,
    conn: &Connection,
    sql: &sql::Statements<'_>,
    caller: &sql::Statements<'_>,
    caller_text: bool,
) -> Result<()> {
    let unchecked = |what: &str| {
        Error::invalid(
            op,
            "sql",
            format!(
                "{what}, which the store cannot check against the databases this process has \
                 open; write the path as a plain string literal ('dir/file.duckdb'), and change \
                 home_directory in a call of its own"
            ),
        )
    };
    let targets = sql.attach_targets();
    let imports = if caller_text {
        sql.import_dirs()
    } else {
        Vec::new()
    };
    if targets.is_empty() && imports.is_empty() {
        return Ok(());
    }
    // DuckDB expands `~` to its `home_directory` setting, else $HOME; a batch that changes the
    // setting before it attaches or imports a `~` path could not be checked.
    let mut homes: Vec<String> = std::env::var("HOME").into_iter().collect();
    if let Ok(home) = conn.query_row("SELECT current_setting('home_directory')::VARCHAR", [], |r| {
        r.get::<_, String>(0)
    }) && !home.is_empty()
    {
        homes.push(home);
    }
    let home_changes = caller.set_home_directory();
    let readings = |target: &str| -> Result<Vec<String>> {
        let (readings, from_home) = duckdb_readings(target, &homes);
        if from_home && home_changes {
            return Err(unchecked(
                "a ~ path follows a change of home_directory in the same batch",
            ));
        }
        Ok(readings)
    };
    for target in targets {
        let sql::AttachTarget::Literal(path) = target else {
            return Err(unchecked(
                "ATTACH names its file with something other than a plain string literal",
            ));
        };
        if readings(&path)?
            .iter()
            .any(|form| !form.is_empty() && claims::is_open(Path::new(form)))
        {
            let source = if caller_text {
                ""
            } else {
                " (in a file IMPORT DATABASE runs)"
            };
            return Err(Error::invalid(
                op,
                "sql",
                format!(
                    "ATTACH {path:?}{source}: this process already has that database open \
                     through another Analytics handle, and a second DuckDB instance on one file \
                     overwrites the other's checkpoints (its DETACH would also drop the \
                     process's lock on the file); query it through the handle that has it open, \
                     or close that first"
                ),
            ));
        }
    }
    for dir in imports {
        let sql::AttachTarget::Literal(dir) = dir else {
            return Err(unchecked(
                "IMPORT DATABASE names its directory with something other than a plain string literal",
            ));
        };
        for reading in readings(&dir)? {
            for script in ["schema.sql", "load.sql"] {
                // A script that cannot be read is DuckDB's to report.
                if let Ok(text) = std::fs::read_to_string(Path::new(&reading).join(script)) {
                    refuse_attaches_in(op, conn, &sql::Statements::of(&text), caller, false)?;
                }
            }
        }
    }
    Ok(())
}

/// Every reading DuckDB may give a path it is handed: as written (resolved against the working
/// directory), past a type prefix (`duckdb:file.db`), as a `file:` URL, and with a leading `~`
/// replaced by each of `homes` (DuckDB appends the rest to the home directory as text); and
/// whether one of them came from a home directory.
fn duckdb_readings(target: &str, homes: &[String]) -> (Vec<String>, bool) {
    let mut forms = vec![target.to_string()];
    if let Some((scheme, rest)) = target.split_once(':')
        && !scheme.is_empty()
        && !scheme.eq_ignore_ascii_case("file")
        && scheme.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        forms.push(rest.to_string());
    }
    for form in forms.clone() {
        if let Some(rest) = form.strip_prefix("file:") {
            let path = ["//localhost/", "///", "//"]
                .iter()
                .find_map(|lead| rest.strip_prefix(lead))
                .map_or_else(|| rest.to_string(), |p| format!("/{p}"));
            forms.push(path);
        }
    }
    let mut from_home = false;
    for form in forms.clone() {
        if let Some(rest) = form.strip_prefix('~') {
            from_home = true;
            forms.extend(homes.iter().map(|home| format!("{home}{rest}")));
        }
    }
    (forms, from_home)
}

/// How deeply lists and structs may nest in a parameter: the conversion recurses per level,
/// and DuckDB's list statistics take seconds from a few hundred levels on.
pub(crate) const MAX_PARAM_DEPTH: usize = 64;

/// How deeply lists, structs and maps may nest in a result column the store reads: reading
/// Arrow data recurses per level (about 2 KiB of stack each), so a result nested a thousand
/// levels deep would overflow a 2 MiB thread stack, an abort rather than an error.
pub(crate) const MAX_RESULT_DEPTH: usize = 128;

/// The refusal of a parameter nested more than [`MAX_PARAM_DEPTH`] levels deep (here, and in
/// the Service's conversion of JSON parameters, which stops there too).
pub(crate) fn params_too_deep(op: &'static str) -> Error {
    Error::invalid(
        op,
        "params",
        format!(
            "a parameter nests lists or structs (JSON arrays or objects) more than \
             {MAX_PARAM_DEPTH} levels deep; flatten it, or pass it as JSON text and parse it in \
             SQL (json(?))"
        ),
    )
}

/// Refuses parameters nesting lists or structs more than [`MAX_PARAM_DEPTH`] levels deep.
pub(crate) fn refuse_deep_params(op: &'static str, params: &[Value]) -> Result<()> {
    let mut pending: Vec<(&Value, usize)> = params.iter().map(|p| (p, 0)).collect();
    while let Some((value, depth)) = pending.pop() {
        if depth > MAX_PARAM_DEPTH {
            return Err(params_too_deep(op));
        }
        match value {
            Value::List(items) => pending.extend(items.iter().map(|v| (v, depth + 1))),
            Value::Struct(fields) => pending.extend(fields.iter().map(|(_, v)| (v, depth + 1))),
            _ => {}
        }
    }
    Ok(())
}

/// Refuses a result column whose type nests more than [`MAX_RESULT_DEPTH`] levels deep.
pub(crate) fn refuse_deep_result(
    op: &'static str,
    column: &str,
    data_type: &duckdb::arrow::datatypes::DataType,
) -> Result<()> {
    use duckdb::arrow::datatypes::DataType as T;
    let mut pending = vec![(data_type, 0usize)];
    while let Some((t, depth)) = pending.pop() {
        if depth > MAX_RESULT_DEPTH {
            return Err(Error::invalid(
                op,
                "sql",
                format!(
                    "result column {column:?} nests lists, structs or maps more than \
                     {MAX_RESULT_DEPTH} levels deep, more than the store reads; cast it to \
                     VARCHAR or JSON in the query (`column::JSON`)"
                ),
            ));
        }
        match t {
            T::List(f)
            | T::LargeList(f)
            | T::ListView(f)
            | T::LargeListView(f)
            | T::FixedSizeList(f, _)
            | T::Map(f, _) => pending.push((f.data_type(), depth + 1)),
            T::Struct(fields) => pending.extend(fields.iter().map(|f| (f.data_type(), depth + 1))),
            T::Union(fields, _) => pending.extend(fields.iter().map(|(_, f)| (f.data_type(), depth + 1))),
            T::Dictionary(_, values) => pending.push((values, depth)),
            T::RunEndEncoded(_, values) => pending.push((values.data_type(), depth)),
            _ => {}
        }
    }
    Ok(())
}

/// Prepares one statement of the caller's SQL; text without one is refused up front (DuckDB
/// would only say "Unknown error code").
fn prepare<'c>(op: &'static str, conn: &'c Connection, sql: &str) -> Result<duckdb::Statement<'c>> {
    refuse_nul(op, sql)?;
    let statements = sql::Statements::of(sql);
    refuse_attach_of_open_files(op, conn, &statements)?;
    if sql::holds_no_statement(sql) {
        return Err(Error::invalid(
            op,
            "sql",
            "the SQL text holds no statement (only blanks, comments or `;`); pass a statement",
        ));
    }
    if statements.several() {
        return Err(Error::invalid(
            op,
            "sql",
            "the SQL text holds more than one statement; pass one (exec_batch runs several, \
             and BEGIN … COMMIT around them makes them all or nothing)",
        ));
    }
    conn.prepare(sql).map_err(|e| Error::duckdb(op, "prepare", e))
}

/// Removes what an open that was to create the database at `path` left when it failed (a full
/// disk, a write refused): a file without complete headers, which every later open would
/// refuse ("not a valid DuckDB database file") until someone deleted it. Only a file that is
/// still unfinished, and not after a lock conflict: then another process holds the file, and
/// may be creating it right now.
fn remove_failed_create(path: &Path, failure: &duckdb::Error) {
    let text = failure.to_string();
    if text.contains("Could not set lock") || text.contains("Conflicting lock") {
        return;
    }
    if let Ok(meta) = std::fs::symlink_metadata(path)
        && unfinished_database_file(path, &meta)
    {
        let _ = std::fs::remove_file(path);
        // The log DuckDB may have begun beside it, if it holds nothing.
        let mut wal = path.as_os_str().to_os_string();
        wal.push(".wal");
        if std::fs::metadata(&wal).is_ok_and(|m| m.is_file() && m.len() == 0) {
            let _ = std::fs::remove_file(&wal);
        }
    }
}

/// Bytes DuckDB writes before a new database file is complete: its main header and two
/// database headers, one 4 KiB block each; data blocks come only after them.
const CREATED_FILE_BYTES: u64 = 3 * 4096;

/// Whether the regular file at `path` (`meta`: its metadata) is a database DuckDB began to
/// create and never finished, so it holds no data: empty, or shorter than its three headers
/// and either starting with DuckDB's magic (a process killed between the header writes leaves
/// one, which DuckDB then refuses for good: "Could not read enough bytes") or all zeros (the
/// headers lost to a power cut before they reached the disk). A valid database is never
/// shorter than the headers, whatever its block size.
pub(crate) fn unfinished_database_file(path: &Path, meta: &std::fs::Metadata) -> bool {
    if !meta.is_file() || meta.len() >= CREATED_FILE_BYTES {
        return false;
    }
    let Some(head) = paths::file_head(path, CREATED_FILE_BYTES) else {
        return false;
    };
    meta.len() == 0
        || paths::is_duckdb_header(&head)
        || (head.len() as u64 == meta.len() && head.iter().all(|&b| b == 0))
}

pub(crate) fn table_exists_on(op: &'static str, conn: &Connection, table: &str) -> Result<bool> {
    Ok(table_type_on(op, conn, table)?.is_some())
}

/// The `information_schema` type (`BASE TABLE`, `VIEW`, `LOCAL TEMPORARY`) of the table or view
/// `table` names in the default schema (or the temporary one), if there is one.
pub(crate) fn table_type_on(op: &'static str, conn: &Connection, table: &str) -> Result<Option<String>> {
    let mut stmt = conn
        .prepare(
            "SELECT table_name, table_type FROM information_schema.tables \
             WHERE table_catalog IN (current_database(), 'temp') AND table_schema = 'main' \
               AND lower(table_name) = lower(?)",
        )
        .map_err(|e| Error::duckdb(op, "look up table", e))?;
    let names: Vec<(String, String)> = stmt
        .query_map([table], |r| Ok((r.get(0)?, r.get(1)?)))
        .and_then(|rows| rows.collect())
        .map_err(|e| Error::duckdb(op, "look up table", e))?;
    Ok(names
        .into_iter()
        .find_map(|(name, kind)| same_name(&name, table).then_some(kind)))
}

/// DuckDB's identifier rule: names match ignoring ASCII case only (`Foo` is `foo`, `Ö` is not
/// `ö`).
pub(crate) fn same_name(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// A table or view as [`require_table`] found it.
pub(crate) struct ResolvedTable {
    /// Its name as SQL (quoted, or qualified for another schema).
    pub sql: String,
    /// Whether it is a view: reading its columns binds its query.
    pub is_view: bool,
}

pub(crate) fn require_table(op: &'static str, conn: &Connection, table: &str) -> Result<ResolvedTable> {
    let quoted = sql::ident(op, "table", table)?;
    if let Some(kind) = table_type_on(op, conn, table)? {
        return Ok(ResolvedTable {
            sql: quoted,
            is_view: kind == "VIEW",
        });
    }
    if let Some(found) = other_schema_table(op, conn, table)? {
        return Ok(found);
    }
    Err(Error::Missing {
        op,
        kind: "table",
        name: table.to_string(),
    })
}

/// A table of another schema of this database, named as [`Analytics::table_counts`] and the
/// inventory name it, as SQL: so a name copied from the inventory exports the table it counts.
/// Only tried once no default-schema table has the name, as those come first there. A view
/// of another schema, which the inventory does not list, is found by either spelling (`s.v`
/// or `"s"."v"`).
fn other_schema_table(op: &'static str, conn: &Connection, table: &str) -> Result<Option<ResolvedTable>> {
    // By its inventory name, or fully qualified (`"db"."main"."t"`: how a default-schema table
    // hidden by a temporary one of its name is exported).
    if let Some((_, sql)) = named_tables(op, conn)?
        .into_iter()
        .find(|(name, sql)| same_name(name, table) || sql == table)
    {
        return Ok(Some(ResolvedTable { sql, is_view: false }));
    }
    if !table.contains('.') {
        return Ok(None);
    }
    let lookup = |e| Error::duckdb(op, "look up view", e);
    let mut stmt = conn
        .prepare(
            "SELECT DISTINCT table_catalog, table_schema, table_name FROM information_schema.tables \
             WHERE table_catalog = current_database() AND table_type = 'VIEW' \
               AND table_schema NOT IN ('main', 'information_schema', 'pg_catalog') \
             ORDER BY table_schema, table_name",
        )
        .map_err(lookup)?;
    let names: Vec<(String, String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .and_then(|rows| rows.collect())
        .map_err(lookup)?;
    Ok(names.into_iter().find_map(|(catalog, schema, name)| {
        let plain = format!("{schema}.{name}");
        let spelled = format!("{}.{}", sql::quote_reported(&schema), sql::quote_reported(&name));
        (same_name(&plain, table) || same_name(&spelled, table)).then(|| ResolvedTable {
            sql: sql::qualified(&catalog, &schema, &name),
            is_view: true,
        })
    }))
}

/// Every base table of this database, in inventory order, with the name the inventory gives
/// it and its SQL name. Tables of the default schema go by their name; tables of other schemas
/// of this database (`CREATE SCHEMA s`) as `s.name`, unless a name given before (or a view,
/// temporary table or temporary view) is that, ignoring ASCII case as DuckDB does: then as the
/// SQL spelling `"s"."name"`, then fully qualified, then numbered. So no two tables share a name, and a name resolves to
/// the one table it was given to. Attached databases are not this one's tables.
fn named_tables(op: &'static str, conn: &Connection) -> Result<Vec<(String, String)>> {
    // Views and temporary tables and views of the default schema are not listed, but keep
    // their names: a name resolves to them before another schema's table. A default-schema
    // base table keeps its name over a temporary one (listed first), though exporting that
    // name reads the temporary table, as SQL does; its qualified name reads the base table.
    let listed: Vec<(String, String, String, bool)> = {
        let mut stmt = conn
            .prepare(
                "SELECT DISTINCT table_catalog, table_schema, table_name, table_type <> 'BASE TABLE' \
                 FROM information_schema.tables \
                 WHERE (table_catalog = 'temp' AND table_schema = 'main' \
                        OR table_catalog = current_database() \
                           AND table_schema NOT IN ('information_schema', 'pg_catalog')) \
                   AND (table_type = 'BASE TABLE' OR table_schema = 'main') \
                 ORDER BY table_schema <> 'main', table_type <> 'BASE TABLE', table_schema, table_name",
            )
            .map_err(|e| Error::duckdb(op, "list tables", e))?;
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .map_err(|e| Error::duckdb(op, "list tables", e))?
            .collect::<duckdb::Result<_>>()
            .map_err(|e| Error::duckdb(op, "list tables", e))?
    };
    let mut taken = std::collections::HashSet::new();
    let mut named = Vec::with_capacity(listed.len());
    for (catalog, schema, table, reserved_only) in listed {
        if reserved_only {
            taken.insert(table.to_ascii_lowercase());
            continue;
        }
        // Counted and exported through their database's name: unqualified, a temporary table
        // of the same name would be read instead (DuckDB looks in `temp` first).
        let qualified = sql::qualified(&catalog, &schema, &table);
        let spelled = format!("{}.{}", sql::quote_reported(&schema), sql::quote_reported(&table));
        let preferred = if schema == "main" {
            vec![table, qualified.clone()]
        } else {
            vec![format!("{schema}.{table}"), spelled.clone(), qualified.clone()]
        };
        let name = preferred
            .into_iter()
            .chain((2..).map(|n| format!("{spelled} ({n})")))
            .find(|name| !taken.contains(&name.to_ascii_lowercase()))
            .unwrap_or_else(|| qualified.clone()); // unreachable: the numbered names never run out
        taken.insert(name.to_ascii_lowercase());
        named.push((name, qualified));
    }
    Ok(named)
}

fn table_counts_on(op: &'static str, conn: &Connection) -> Result<BTreeMap<String, u64>> {
    let mut counts = BTreeMap::new();
    for (name, qualified) in named_tables(op, conn)? {
        let n: i64 = conn
            .query_row(&format!("SELECT count(*) FROM {qualified}"), [], |r| r.get(0))
            .map_err(|e| Error::duckdb(op, format!("count rows of {name}"), e))?;
        counts.insert(name, n.max(0) as u64);
    }
    Ok(counts)
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
