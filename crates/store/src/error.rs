//! The one error type of the crate.
//!
//! Every variant names the operation that failed (`op`, e.g. `"Store::get"`) and its `Display`
//! reads `{op}: {what failed}[: {cause}][; {fix}]`, so a message printed on its own tells the user
//! what to do next. Callers branch on [`Error::kind`] rather than on message text.

use std::fmt;
use std::path::PathBuf;

/// `Result` with [`Error`] as the default error type.
///
/// # Examples
/// ```
/// use store::{Kv, Store};
/// fn greeting(store: &Store) -> store::Result<String> {
///     store.get("config", "greeting")
/// }
/// let store = Store::in_memory()?;
/// assert!(greeting(&store).unwrap_err().is_not_found());
/// store.set("config", "greeting", "hi")?;
/// assert_eq!(greeting(&store)?, "hi");
/// # Ok::<(), store::Error>(())
/// ```
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Which quota limit a write would have exceeded.
///
/// # Examples
/// ```
/// assert_eq!(store::QuotaLimit::Keys.as_str(), "max_keys");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuotaLimit {
    /// `Quota::max_keys`: live keys in the namespace.
    Keys,
    /// `Quota::max_groups`: groups with at least one live key.
    Groups,
    /// `Quota::max_bytes`: UTF-8 bytes of keys plus values of live entries.
    Bytes,
}

impl QuotaLimit {
    /// The quota field's name: `max_keys`, `max_groups` or `max_bytes`.
    ///
    /// # Examples
    /// ```
    /// assert_eq!(store::QuotaLimit::Bytes.as_str(), "max_bytes");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            QuotaLimit::Keys => "max_keys",
            QuotaLimit::Groups => "max_groups",
            QuotaLimit::Bytes => "max_bytes",
        }
    }

    fn unit(self) -> &'static str {
        match self {
            QuotaLimit::Keys => "keys",
            QuotaLimit::Groups => "groups",
            QuotaLimit::Bytes => "bytes",
        }
    }
}

impl fmt::Display for QuotaLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything that can go wrong in `store`.
///
/// Variants are stable; new ones may be added (`#[non_exhaustive]`). Match on [`Error::kind`] when
/// you only need the category.
///
/// # Examples
/// ```
/// use store::{Kv, Store};
/// let store = Store::in_memory()?;
/// let err = store.get("config", "missing").unwrap_err();
/// assert!(err.is_not_found());
/// assert_eq!(err.op(), "Store::get");
/// assert!(err.to_string().starts_with("Store::get: no live entry"));
/// # Ok::<(), store::Error>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No live entry at (group, key).
    #[error(
        "{op}: no live entry for key {key:?} in group {group:?}; check the group and key, or set it first"
    )]
    NotFound {
        /// Failing operation.
        op: &'static str,
        /// Group looked up.
        group: String,
        /// Key looked up.
        key: String,
    },
    /// A compare-and-swap found a different version than expected.
    #[error("{op}: version conflict on key {key:?} in group {group:?}: expected {}, found {}; re-read the entry and retry", version_text(*expected), version_text(*actual))]
    Conflict {
        /// Failing operation.
        op: &'static str,
        /// Group written.
        group: String,
        /// Key written.
        key: String,
        /// Version the caller expected (`None` = must not exist).
        expected: Option<u64>,
        /// Version found (`None` = no live entry).
        actual: Option<u64>,
    },
    /// A scoped write would push the namespace past its quota.
    #[error("{op}: namespace {namespace:?} would hold {requested} {}, over {limit} {max}; delete keys or raise the quota", limit.unit())]
    QuotaExceeded {
        /// Failing operation.
        op: &'static str,
        /// The namespace.
        namespace: String,
        /// Which limit.
        limit: QuotaLimit,
        /// The limit's maximum.
        max: u64,
        /// Usage the write would have produced.
        requested: u64,
    },
    /// An argument broke a documented rule; nothing was read or written.
    #[error("{op}: invalid {field}: {reason}")]
    InvalidInput {
        /// Failing operation.
        op: &'static str,
        /// The offending argument or setting.
        field: &'static str,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// Input data could not be parsed.
    #[error("{op}: cannot parse {source_name}{}: {reason}", line.map(|l| format!(" line {l}")).unwrap_or_default())]
    Parse {
        /// Failing operation.
        op: &'static str,
        /// File or input name.
        source_name: String,
        /// 1-based line, when known.
        line: Option<u64>,
        /// What is wrong.
        reason: String,
    },
    /// A named thing (table, workspace, column…) does not exist.
    #[error("{op}: {kind} {name:?} does not exist; {}", missing_fix(kind, name))]
    Missing {
        /// Failing operation.
        op: &'static str,
        /// What kind of thing.
        kind: &'static str,
        /// Its name.
        name: String,
    },
    /// A named thing already exists.
    #[error("{op}: {kind} {name:?} already exists; pick another name or remove it first")]
    AlreadyExists {
        /// Failing operation.
        op: &'static str,
        /// What kind of thing.
        kind: &'static str,
        /// Its name.
        name: String,
    },
    /// The handle (store, workspace, subscription…) was closed.
    #[error("{op}: the {what} is closed; open it again to continue")]
    Closed {
        /// Failing operation.
        op: &'static str,
        /// What was closed.
        what: &'static str,
    },
    /// SQLite reported an error.
    #[error("{op}: {context}: {source}{}", sqlite_hint(source))]
    Sqlite {
        /// Failing operation.
        op: &'static str,
        /// What the store was doing.
        context: String,
        /// The driver error (keeps SQLite's error code).
        #[source]
        source: rusqlite::Error,
    },
    /// DuckDB reported an error (analytics layer).
    #[cfg(feature = "analytics")]
    #[error("{op}: {context}: {source}{}", duckdb_hint(context, source))]
    DuckDb {
        /// Failing operation.
        op: &'static str,
        /// What the store was doing.
        context: String,
        /// The driver error.
        #[source]
        source: duckdb::Error,
    },
    /// A file-system operation failed.
    #[error("{op}: I/O error{}: {source}{}", path.as_ref().map(|p| format!(" on {}", p.display())).unwrap_or_default(), io_hint(source))]
    Io {
        /// Failing operation.
        op: &'static str,
        /// The path involved, when there is one.
        path: Option<PathBuf>,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// JSON encoding or decoding failed.
    #[error("{op}: JSON error: {source}{}", json_hint(op))]
    Json {
        /// Failing operation.
        op: &'static str,
        /// The serde_json error.
        #[source]
        source: serde_json::Error,
    },
    /// A template failed to parse or render.
    #[error("{op}: template error: {source}{}", template_hint(source))]
    Template {
        /// Failing operation.
        op: &'static str,
        /// The minijinja error.
        #[source]
        source: minijinja::Error,
    },
    /// A storage medium (§7 of the spec: where a medium-backed store keeps its file) failed.
    ///
    /// ```
    /// let e = store::Error::Medium { op: "Store::close", path: "app.db".into(), reason: "upload refused".into() };
    /// assert_eq!(e.kind().as_str(), "medium");
    /// assert_eq!(e.to_string(), r#"Store::close: medium path "app.db": upload refused"#);
    /// ```
    #[error("{op}: medium path {path:?}: {reason}")]
    Medium {
        /// Failing operation.
        op: &'static str,
        /// The path inside the medium.
        path: String,
        /// What went wrong, and what to do about it.
        reason: String,
    },
    /// The operation is not available in this build or configuration.
    #[error("{op}: {what} is not supported here")]
    Unsupported {
        /// Failing operation.
        op: &'static str,
        /// What is unsupported, and what to do instead.
        what: String,
    },
}

/// The fix part of a `Missing` message: the scoring tables have a call that creates them.
fn missing_fix(kind: &str, name: &str) -> &'static str {
    // The names of `analytics::{CHECKPOINT_SCORES, PROBE_RESULTS, SCORING_RESULTS}`, spelled
    // out because this module also builds without the analytics feature.
    match (kind, name) {
        ("table", "checkpoint_scores" | "probe_results" | "scoring_results") => {
            "call ensure_scoring_tables() first"
        }
        _ => "create it first or check the name",
    }
}

fn version_text(v: Option<u64>) -> String {
    match v {
        Some(v) => format!("version {v}"),
        None => "no live entry".to_string(),
    }
}

fn sqlite_hint(err: &rusqlite::Error) -> &'static str {
    use rusqlite::ffi::ErrorCode;
    match err.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) => {
            "; the file is not a SQLite database: pass the path of a store database or a new file"
        }
        Some(ErrorCode::CannotOpen) => {
            "; check that the directory exists and is writable, and that the process may open more \
             files (ulimit -n)"
        }
        // What SQLite reports when the disk fills while it sizes its shared-memory index or
        // log, so a full disk mostly arrives as this rather than as `DiskFull`.
        Some(ErrorCode::SystemIoFailure) => {
            "; check that the disk has free space and the file and its directory are writable"
        }
        Some(ErrorCode::ReadOnly) => "; the database or its directory is read-only: open a writable location",
        // The store's own busy errors (a thread of this process, a checkpoint) say their cause
        // and fix themselves; SQLite's say only "database is locked".
        Some(ErrorCode::DatabaseBusy) | Some(ErrorCode::DatabaseLocked) if matches!(err, rusqlite::Error::SqliteFailure(_, Some(m)) if !m.contains("is locked")) => {
            ""
        }
        Some(ErrorCode::DatabaseBusy) | Some(ErrorCode::DatabaseLocked) => {
            "; another connection held a lock past the busy timeout (a writer, or a reader that a \
             checkpoint waits for): retry, or raise busy_timeout"
        }
        Some(ErrorCode::DiskFull) => "; free disk space and retry",
        Some(ErrorCode::DatabaseCorrupt) => "; the file is damaged: restore it from a backup",
        _ => "",
    }
}

/// The fix for a JSON error: decoding (`get_json`) failed on the stored text; anything else
/// failed to write a value as JSON (`set_json`'s argument, a result).
fn json_hint(op: &str) -> &'static str {
    if op.ends_with("get_json") {
        "; check that the stored value is JSON of the expected shape"
    } else {
        "; the value cannot be written as JSON: give map keys as strings and make its Serialize \
         implementation succeed"
    }
}

/// Marks a template error the store raised itself, whose detail already says its fix (the size
/// limit, a failure of the engine): no hint about minijinja's kinds is added to it.
#[derive(Debug)]
pub(crate) struct SaysItsFix;

impl std::fmt::Display for SaysItsFix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the store's own template check")
    }
}

impl std::error::Error for SaysItsFix {}

fn template_hint(err: &minijinja::Error) -> &'static str {
    let own = std::error::Error::source(err).is_some_and(|s| s.is::<SaysItsFix>());
    if own {
        return "";
    }
    match err.kind() {
        minijinja::ErrorKind::OutOfFuel => {
            "; the template does too much work (long loops or huge output): simplify it"
        }
        // minijinja's kind for a division by zero, an operation a value's type lacks, and
        // nesting past its recursion limit alike.
        minijinja::ErrorKind::InvalidOperation => {
            "; fix the operation the message names (a division by zero, an operation the value's \
             type does not support), or simplify the template if it nests too deeply"
        }
        _ => "; fix the template",
    }
}

/// The fix for a bare OS error (one the store wrapped with its own words says its fix itself).
/// The numbers are Unix errno values.
#[cfg(unix)]
fn io_hint(source: &std::io::Error) -> &'static str {
    match source.raw_os_error() {
        Some(28) => "; free disk space and retry",
        Some(13) | Some(1) => "; check the permissions of the file and its directories",
        Some(30) => "; the file system is read-only: use a writable location",
        Some(24) => "; too many open files: raise the limit (ulimit -n) and retry",
        Some(23) => "; the system's table of open files is full: close files elsewhere and retry",
        Some(122) => "; the disk quota is used up: free space and retry",
        Some(21) => "; the path is a directory: pass a file",
        Some(20) => "; a part of the path is a file, not a directory: fix the path",
        _ => "",
    }
}

#[cfg(not(unix))]
fn io_hint(_source: &std::io::Error) -> &'static str {
    ""
}

/// The Service's busy error for an empty analytics file another process may be creating.
#[cfg(feature = "analytics")]
pub(crate) const CREATING_ELSEWHERE: &str =
    "the file is empty, as while another process creates it (DuckDB writes its header right after)";

/// The refusal of an open of a database file this process already holds (DuckDB allows one
/// read-write opener or any number of read-only ones per file): busy, as another process's.
#[cfg(feature = "analytics")]
pub(crate) const OPEN_IN_THIS_PROCESS: &str = "in this process (under this name or another link to it)";

/// The busy error of a split export that waited its busy timeout for another export into the
/// same directory.
#[cfg(feature = "analytics")]
pub(crate) const SPLIT_EXPORT_RUNNING: &str = "another split export into this directory is still running";

/// DuckDB's refusal to open a file another process holds (its file lock), or the Service's
/// wait for a file another process is creating.
#[cfg(feature = "analytics")]
fn duckdb_lock_conflict(err: &duckdb::Error) -> bool {
    let text = err.to_string();
    // "File locks are not supported" also starts "Could not set lock": waiting cannot help.
    ((text.contains("Could not set lock") || text.contains("Conflicting lock"))
        && !text.contains("not supported"))
        || text.contains(CREATING_ELSEWHERE)
        || text.contains(SPLIT_EXPORT_RUNNING)
        || text.contains(OPEN_IN_THIS_PROCESS)
}

#[cfg(feature = "analytics")]
fn duckdb_hint(context: &str, err: &duckdb::Error) -> &'static str {
    let text = err.to_string();
    if text.contains(CREATING_ELSEWHERE) {
        "; retry in a moment (an empty file left longer than a second is moved aside and the \
         database created afresh)"
    } else if text.contains(SPLIT_EXPORT_RUNNING) {
        "; retry when it ends, or wait longer (a longer busy timeout)"
    } else if text.contains(OPEN_IN_THIS_PROCESS) {
        "" // the message says its fix
    } else if duckdb_lock_conflict(err) {
        "; another process has this database open (DuckDB lets one process write, or several only read, never both \
         at once): close it there and retry"
    } else if text.contains("read-only mode")
        || text.contains("read only")
        || text.contains("readonly database")
    {
        "; the database was opened read-only: open it with Analytics::open to write"
    } else if text.contains("No space left on device") {
        "; free disk space and retry"
    } else if text.contains("Permission denied") && context.starts_with("open") {
        "; check the permissions of the file and its directory (a database you may only read \
         opens with Analytics::open_read_only)"
    } else if text.contains("Permission denied") {
        "; check the permissions of the file and its directory"
    } else if text.contains("decoding Variant columns is not supported") {
        "; the result has a VARIANT column, which the driver cannot read yet: cast it in the \
         query (`column::VARCHAR`)"
    } else if text.contains("Catalog Error") {
        "; check the table and column names"
    } else if text.contains("Binder Error") && text.contains("does not have a column") {
        "; check the column name; when writing, add the column to the table (ALTER TABLE … ADD \
         COLUMN) or leave it out of the file or statement"
    } else if text.contains("Constraint Error") {
        "; the rows break a key, NOT NULL or CHECK constraint of the table: fix the rows, or the \
         table (the failed statement wrote nothing)"
    } else {
        ""
    }
}

/// The category of an [`Error`], stable across releases.
///
/// # Examples
/// ```
/// assert_eq!(store::ErrorKind::QuotaExceeded.as_str(), "quota_exceeded");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// See [`Error::NotFound`].
    NotFound,
    /// See [`Error::Conflict`].
    Conflict,
    /// See [`Error::QuotaExceeded`].
    QuotaExceeded,
    /// See [`Error::InvalidInput`].
    InvalidInput,
    /// See [`Error::Parse`].
    Parse,
    /// See [`Error::Missing`].
    Missing,
    /// See [`Error::AlreadyExists`].
    AlreadyExists,
    /// See [`Error::Closed`].
    Closed,
    /// See [`Error::Sqlite`].
    Sqlite,
    /// A DuckDB error (analytics layer).
    DuckDb,
    /// See [`Error::Io`].
    Io,
    /// See [`Error::Json`].
    Json,
    /// See [`Error::Template`].
    Template,
    /// A storage-medium error.
    Medium,
    /// See [`Error::Unsupported`].
    Unsupported,
}

impl ErrorKind {
    /// Snake-case name used in JSON output (`not_found`, `quota_exceeded`, …).
    ///
    /// # Examples
    /// ```
    /// assert_eq!(store::ErrorKind::NotFound.as_str(), "not_found");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::QuotaExceeded => "quota_exceeded",
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::Parse => "parse",
            ErrorKind::Missing => "missing",
            ErrorKind::AlreadyExists => "already_exists",
            ErrorKind::Closed => "closed",
            ErrorKind::Sqlite => "sqlite",
            ErrorKind::DuckDb => "duckdb",
            ErrorKind::Io => "io",
            ErrorKind::Json => "json",
            ErrorKind::Template => "template",
            ErrorKind::Medium => "medium",
            ErrorKind::Unsupported => "unsupported",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Error {
    /// The error's category.
    ///
    /// # Examples
    /// ```
    /// use store::{ErrorKind, Kv, Store};
    /// let store = Store::in_memory()?;
    /// assert_eq!(store.get("", "k").unwrap_err().kind(), ErrorKind::InvalidInput);
    /// # Ok::<(), store::Error>(())
    /// ```
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::Conflict { .. } => ErrorKind::Conflict,
            Error::QuotaExceeded { .. } => ErrorKind::QuotaExceeded,
            Error::InvalidInput { .. } => ErrorKind::InvalidInput,
            Error::Parse { .. } => ErrorKind::Parse,
            Error::Missing { .. } => ErrorKind::Missing,
            Error::AlreadyExists { .. } => ErrorKind::AlreadyExists,
            Error::Closed { .. } => ErrorKind::Closed,
            Error::Sqlite { .. } => ErrorKind::Sqlite,
            #[cfg(feature = "analytics")]
            Error::DuckDb { .. } => ErrorKind::DuckDb,
            Error::Io { .. } => ErrorKind::Io,
            Error::Json { .. } => ErrorKind::Json,
            Error::Template { .. } => ErrorKind::Template,
            Error::Medium { .. } => ErrorKind::Medium,
            Error::Unsupported { .. } => ErrorKind::Unsupported,
        }
    }

    /// The operation that failed, e.g. `"Store::set"`.
    ///
    /// # Examples
    /// ```
    /// use store::{Kv, Store};
    /// let store = Store::in_memory()?;
    /// assert_eq!(store.set("g", "", "v").unwrap_err().op(), "Store::set");
    /// # Ok::<(), store::Error>(())
    /// ```
    pub fn op(&self) -> &'static str {
        match self {
            Error::NotFound { op, .. }
            | Error::Conflict { op, .. }
            | Error::QuotaExceeded { op, .. }
            | Error::InvalidInput { op, .. }
            | Error::Parse { op, .. }
            | Error::Missing { op, .. }
            | Error::AlreadyExists { op, .. }
            | Error::Closed { op, .. }
            | Error::Sqlite { op, .. }
            | Error::Io { op, .. }
            | Error::Json { op, .. }
            | Error::Template { op, .. }
            | Error::Medium { op, .. }
            | Error::Unsupported { op, .. } => op,
            #[cfg(feature = "analytics")]
            Error::DuckDb { op, .. } => op,
        }
    }

    /// The argument or setting an [`Error::InvalidInput`] names.
    ///
    /// # Examples
    /// ```
    /// use store::{Kv, Store};
    /// let store = Store::in_memory()?;
    /// assert_eq!(store.set("g", "", "v").unwrap_err().field(), Some("key"));
    /// # Ok::<(), store::Error>(())
    /// ```
    pub fn field(&self) -> Option<&'static str> {
        match self {
            Error::InvalidInput { field, .. } => Some(field),
            _ => None,
        }
    }

    /// `true` for [`Error::NotFound`].
    ///
    /// # Examples
    /// ```
    /// use store::{Kv, Store};
    /// assert!(Store::in_memory()?.get("g", "k").unwrap_err().is_not_found());
    /// # Ok::<(), store::Error>(())
    /// ```
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }

    /// `true` for [`Error::QuotaExceeded`].
    ///
    /// # Examples
    /// ```
    /// use store::{Kv, Store};
    /// assert!(!Store::in_memory()?.get("g", "k").unwrap_err().is_quota_exceeded());
    /// # Ok::<(), store::Error>(())
    /// ```
    pub fn is_quota_exceeded(&self) -> bool {
        matches!(self, Error::QuotaExceeded { .. })
    }

    /// `true` for [`Error::Conflict`].
    ///
    /// # Examples
    /// ```
    /// use store::{Kv, Store};
    /// assert!(!Store::in_memory()?.get("g", "k").unwrap_err().is_conflict());
    /// # Ok::<(), store::Error>(())
    /// ```
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Conflict { .. })
    }

    /// Whether another connection or process held a lock the call needed: SQLite's
    /// "busy"/"locked" past the busy timeout, or DuckDB refusing to open a file another process
    /// has open read-write. Retrying later can succeed.
    ///
    /// # Examples
    /// ```
    /// use store::Kv;
    /// let store = store::Store::in_memory()?;
    /// assert!(!store.get("g", "k").unwrap_err().is_busy());
    /// # Ok::<(), store::Error>(())
    /// ```
    pub fn is_busy(&self) -> bool {
        match self {
            Error::Sqlite { source, .. } => crate::kv::sqlite::conn::is_busy(source),
            #[cfg(feature = "analytics")]
            Error::DuckDb { source, .. } => duckdb_lock_conflict(source),
            _ => false,
        }
    }

    /// `true` for [`Error::Closed`].
    ///
    /// # Examples
    /// ```
    /// use store::{Kv, Store};
    /// let store = Store::in_memory()?;
    /// store.close()?;
    /// assert!(store.get("g", "k").unwrap_err().is_closed());
    /// # Ok::<(), store::Error>(())
    /// ```
    pub fn is_closed(&self) -> bool {
        matches!(self, Error::Closed { .. })
    }

    pub(crate) fn invalid(op: &'static str, field: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidInput {
            op,
            field,
            reason: reason.into(),
        }
    }

    pub(crate) fn sqlite(op: &'static str, context: impl Into<String>, source: rusqlite::Error) -> Self {
        Error::Sqlite {
            op,
            context: context.into(),
            source,
        }
    }

    #[cfg(feature = "analytics")]
    pub(crate) fn duckdb(op: &'static str, context: impl Into<String>, source: duckdb::Error) -> Self {
        // A `kv_entries` scan over a closed store fails inside DuckDB; report it as what it is.
        let text = source.to_string();
        if text.contains(crate::analytics::KV_CLOSED) {
            return Error::Closed { op, what: "store" };
        }
        if text.contains(crate::analytics::KV_IN_TRANSACTION) {
            return Error::invalid(op, "transaction", crate::analytics::KV_IN_TRANSACTION);
        }
        if text.contains(crate::analytics::PROGRESS_PANICKED) {
            return Error::invalid(op, "progress", text);
        }
        if let duckdb::Error::InvalidParameterCount(given, wanted) = source {
            return Error::invalid(
                op,
                "params",
                format!(
                    "the SQL takes {wanted} parameter(s) and {given} were given; pass one value \
                     per `?` or `$n` placeholder (store sql --param JSON, once per parameter)"
                ),
            );
        }
        // duckdb-rs binds a list parameter as one DuckDB list type (as the Service's JSON lists).
        if let duckdb::Error::ToSqlConversionFailure(_) = source
            && text.contains("with mixed element types")
        {
            return Error::invalid(
                op,
                "params",
                "a list parameter binds as one DuckDB list type, and this one mixes element types \
                 (say integers and text, or integers and floats); give its elements one type",
            );
        }
        // Parquet's INTERVAL is unsigned (months, days, milliseconds), so DuckDB's writer
        // refuses a negative one; the data is at fault, not the engine.
        if text.contains("Parquet files do not support negative intervals") {
            return Error::invalid(
                op,
                "table",
                "a negative INTERVAL cannot be written to Parquet, whose INTERVAL holds only \
                 positive months, days and milliseconds; export a query that casts the column \
                 to VARCHAR (`iv::VARCHAR`) or to its length in microseconds (`epoch_us(iv)`)",
            );
        }
        Error::DuckDb {
            op,
            context: context.into(),
            source,
        }
    }

    pub(crate) fn closed(op: &'static str) -> Self {
        Error::Closed { op, what: "store" }
    }

    pub(crate) fn json(op: &'static str, source: serde_json::Error) -> Self {
        Error::Json { op, source }
    }

    pub(crate) fn not_found(op: &'static str, group: &str, key: &str) -> Self {
        Error::NotFound {
            op,
            group: group.to_string(),
            key: key.to_string(),
        }
    }
}

/// Attaches an operation name and context to driver errors: `conn.execute(..).ctx(op, "upsert")?`.
pub(crate) trait SqliteContext<T> {
    fn ctx(self, op: &'static str, context: &str) -> Result<T>;
}

impl<T> SqliteContext<T> for std::result::Result<T, rusqlite::Error> {
    #[inline]
    fn ctx(self, op: &'static str, context: &str) -> Result<T> {
        self.map_err(|e| Error::sqlite(op, context, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn busy(message: Option<&str>) -> String {
        let code = rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY);
        Error::sqlite(
            "Store::set",
            "write",
            rusqlite::Error::SqliteFailure(code, message.map(String::from)),
        )
        .to_string()
    }

    #[test]
    fn sqlites_busy_errors_get_the_busy_timeout_hint_and_the_stores_own_do_not() {
        for sqlite_says in [None, Some("database is locked")] {
            assert!(
                busy(sqlite_says).contains("raise busy_timeout"),
                "{}",
                busy(sqlite_says)
            );
        }
        let own = busy(Some(
            "another thread of this process held the store's writer; retry once it has finished",
        ));
        assert!(own.ends_with("retry once it has finished"), "{own}");
        assert!(!own.contains("busy_timeout"), "{own}");
    }

    /// h129: bare OS errors (a full disk under the split writer, a directory without
    /// permission) named no fix; the store's own worded ones keep theirs alone.
    #[test]
    fn bare_os_errors_name_their_fix() {
        let io = |source| Error::Io {
            op: "t",
            path: Some(PathBuf::from("/x")),
            source,
        };
        let full = io(std::io::Error::from_raw_os_error(28)).to_string();
        assert!(full.ends_with("; free disk space and retry"), "{full}");
        let denied = io(std::io::Error::from_raw_os_error(13)).to_string();
        assert!(denied.contains("check the permissions"), "{denied}");
        // h145: a directory where a file was wanted (stdin redirected from one, a file path
        // naming one) said only "Is a directory".
        let directory = io(std::io::Error::from_raw_os_error(21)).to_string();
        assert!(
            directory.ends_with("; the path is a directory: pass a file"),
            "{directory}"
        );
        let not_directory = io(std::io::Error::from_raw_os_error(20)).to_string();
        assert!(
            not_directory.ends_with("not a directory: fix the path"),
            "{not_directory}"
        );
        let worded = io(std::io::Error::other("no such thing; create it first")).to_string();
        assert!(worded.ends_with("create it first"), "{worded}");
    }
}
