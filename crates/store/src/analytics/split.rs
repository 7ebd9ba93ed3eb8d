//! Split export: one Parquet file per distinct value of a column, in a Hive-style layout, from
//! one scan of the table.
//!
//! DuckDB's own partitioned writer already produces the spec's encoding (every byte outside
//! `[A-Za-z0-9._~-]` percent-encoded, NULL as `__HIVE_DEFAULT_PARTITION__`, a value spelled like
//! that marker with its first character encoded), so the common case is exactly one
//! `COPY … (PARTITION_BY (column))` into a staging directory beside `out_dir`, the same work as
//! DuckDB's own partitioned export. As in every Hive dataset, the files then hold the other
//! columns and the value lives in the directory name. Publishing renames the few directories
//! whose final name differs (`.`/`..`, and names over [`MAX_ESCAPED_VALUE_BYTES`] — fewer when
//! the column's own name is long, see [`value_limit`] — which become `__long__<hash>` with the
//! true value in the manifest).
//!
//! Two cases cannot use the column directly, and take the keyed path: a column name that is not
//! itself a plain path segment (DuckDB would use it raw in the directory name), and a value too
//! long for a directory name at all (the first COPY fails with "File name too long" and is
//! redone). There the partition key is a prefixed text form of the value (`v<text>`), or a short
//! marker (`s<hash>` for long values, `shive` for the NULL marker's spelling), and the files also
//! keep the column itself, so a value the directory name cannot carry survives in the data.
//!
//! Columns with many values (≥ 500 in a sample) take the store's own writer instead ([`writer`]): DuckDB's
//! partitioned COPY drains its small partitions in time that grows with the square of their
//! number (~11 s for 10,000 values on the bench table against ~1.3 s for 10), while the own
//! writer streams the table once through Arrow and writes each partition with arrow-rs. The
//! choice is made on a sample (distinct values among the first rows), and the own writer is
//! only used when every column type survives Arrow and Parquet exactly; otherwise, and for
//! tables too large to buffer, DuckDB's COPY runs as before. Both produce the same layout.
//!
//! Either way the table is read once per COPY, never once per value; staged directories move to
//! their final names only when everything is written, and a failure removes the staging
//! directory and leaves nothing partial behind: a previous export of the same column into the
//! same directory is only set aside while the new one moves in, and put back if that fails.
//! What an export killed mid-way leaves is put right by the next one ([`workdirs`]).
//! Row counts come from the files' Parquet footers, not from a second scan of the table.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use duckdb::Connection;

mod naming;
mod order;
mod workdirs;
mod writer;

use super::export::parquet_rows;
use super::footer;
use super::paths::{CreatedDirs, LiteralPath, ensure_parent};
use super::progress::{JobProgress, ProgressFn, with_progress};
use super::{Analytics, require_table, same_name, sql};
use crate::error::{Error, Result};
pub use naming::escape_segment;
use naming::{percent_decode, too_long_for_a_name, value_limit, value_segment};
use order::{SortAs, value_order};

/// Longest escaped value used as a directory name; longer ones use `__long__<hash>`. A column
/// whose escaped name is over 54 bytes lowers it, so that `<column>=<value>` stays within the
/// 255-byte limit file systems put on a directory name.
///
/// # Examples
/// ```
/// use store::analytics::{Analytics, MAX_ESCAPED_VALUE_BYTES};
/// let (dir, db) = (tempfile::tempdir()?, Analytics::in_memory()?);
/// let max = MAX_ESCAPED_VALUE_BYTES;
/// let sql = format!("CREATE TABLE t AS SELECT repeat('a', {max} + range::INT) AS k, 1 AS n FROM range(2)");
/// db.exec_batch(&sql)?;
/// let manifest = db.export_split_parquet("t", dir.path(), "k")?;
/// assert_eq!(manifest.files[0].path, format!("k={}/data.parquet", "a".repeat(max)));
/// assert!(manifest.files[1].path.starts_with("k=__long__"));
/// assert_eq!(manifest.files[1].value, Some("a".repeat(max + 1))); // the true value
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub const MAX_ESCAPED_VALUE_BYTES: usize = 200;

/// The longest directory name common file systems allow (`NAME_MAX`).
const MAX_NAME_BYTES: usize = 255;

/// How a value too long for a directory name is named instead: `__long__<16 hex digits>`.
const LONG_PREFIX: &str = "__long__";

/// The directory name DuckDB (and Spark, Trino, Polars) use for NULL.
///
/// # Examples
/// ```
/// use store::analytics::{Analytics, HIVE_NULL};
/// let (dir, db) = (tempfile::tempdir()?, Analytics::in_memory()?);
/// db.exec_batch("CREATE TABLE t AS SELECT * FROM (VALUES (NULL, 1), ('a', 2)) v(k, n)")?;
/// let manifest = db.export_split_parquet("t", dir.path(), "k")?;
/// assert_eq!(manifest.files[0].value, None); // NULL first
/// assert_eq!(manifest.files[0].path, format!("k={HIVE_NULL}/data.parquet"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub const HIVE_NULL: &str = "__HIVE_DEFAULT_PARTITION__";

const MANIFEST: &str = "manifest.json";

/// A partition's file (`data-1.parquet`, … follow if DuckDB wrote several).
const DATA_FILE: &str = "data.parquet";

/// One file of a split export.
///
/// # Examples
/// ```
/// let f = store::analytics::SplitFile { value: Some("a".into()), path: "model=a/data.parquet".into(), rows: 3 };
/// assert_eq!(f.rows, 3);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SplitFile {
    /// The column value as text (`None` for NULL).
    pub value: Option<String>,
    /// The file, relative to the output directory, `/`-separated.
    pub path: String,
    /// Rows in the file.
    pub rows: u64,
}

/// What [`Analytics::export_split_parquet`] wrote; also saved as `manifest.json`.
///
/// # Examples
/// ```
/// use store::analytics::Analytics;
/// let dir = tempfile::tempdir()?;
/// let db = Analytics::in_memory()?;
/// db.exec_batch("CREATE TABLE t AS SELECT * FROM (VALUES ('a', 1), ('a', 2), ('b/c', 3), (NULL, 4)) v(k, n)")?;
/// let manifest = db.export_split_parquet("t", dir.path(), "k")?;
/// assert_eq!(manifest.files.len(), 3);
/// assert_eq!(manifest.total_rows, 4);
/// assert!(dir.path().join("k=b%2Fc/data.parquet").is_file());
/// assert!(dir.path().join("k=__HIVE_DEFAULT_PARTITION__/data.parquet").is_file());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SplitManifest {
    /// The exported table.
    pub table: String,
    /// The split column.
    pub column: String,
    /// One entry per distinct value, NULL first, then by value.
    pub files: Vec<SplitFile>,
    /// Rows over all files (= the table's rows).
    pub total_rows: u64,
}

impl Analytics {
    /// Writes one zstd Parquet file per distinct value of `column` (NULL included) under
    /// `out_dir/<column>=<escaped value>/data.parquet`, plus `out_dir/manifest.json`, reading the
    /// table once. Read the result back as one dataset with
    /// `read_parquet('<out_dir>/**/*.parquet', hive_partitioning = true)`.
    ///
    /// As in any Hive dataset, the value is carried by the directory name and the files hold
    /// the other columns. When the directory name cannot carry it (a column name that needs
    /// escaping, or a value too long for a directory name) the files keep the column as well;
    /// see the [module docs](self).
    ///
    /// # Errors
    /// `Missing` for an unknown table or column; `InvalidInput` for an empty `out_dir`, one that
    /// is (or lies under) a symbolic link to a missing directory, a column name too long for
    /// any directory name, or a `<column>=…` directory in `out_dir` holding files a split does
    /// not write; `DuckDb`/`Io` on write failures, after which no partial output remains:
    /// the previous export (if any) is back in place, and `out_dir` and the parent
    /// directories this call created are removed again (each only while empty).
    ///
    /// # Examples
    /// ```
    /// use store::analytics::Analytics;
    /// let dir = tempfile::tempdir()?;
    /// let db = Analytics::in_memory()?;
    /// db.exec_batch("CREATE TABLE scores AS SELECT 'm' || (range % 3) AS model, range AS n FROM range(30)")?;
    /// let manifest = db.export_split_parquet("scores", dir.path().join("by-model"), "model")?;
    /// assert_eq!(manifest.files.iter().map(|f| f.rows).sum::<u64>(), 30);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn export_split_parquet(
        &self,
        table: &str,
        out_dir: impl AsRef<Path>,
        column: &str,
    ) -> Result<SplitManifest> {
        self.export_split_parquet_with(table, out_dir, column, None)
    }

    /// [`Analytics::export_split_parquet`], reporting DuckDB's progress estimate for the
    /// partitioned COPY to `progress` (from a helper thread) while it runs.
    ///
    /// # Examples
    /// ```
    /// use store::analytics::Analytics;
    /// let dir = tempfile::tempdir()?;
    /// let db = Analytics::in_memory()?;
    /// db.exec_batch("CREATE TABLE t AS SELECT range % 4 AS k, range AS n FROM range(100)")?;
    /// let manifest = db.export_split_parquet_with("t", dir.path(), "k", Some(&|p| eprintln!("{p:?}")))?;
    /// assert_eq!(manifest.files.len(), 4);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn export_split_parquet_with(
        &self,
        table: &str,
        out_dir: impl AsRef<Path>,
        column: &str,
        progress: Option<ProgressFn<'_>>,
    ) -> Result<SplitManifest> {
        const OP: &str = "Analytics::export_split_parquet";
        let out_dir = out_dir.as_ref();
        sql::require_path(OP, "out_dir", out_dir)?;
        sql::ident(OP, "column", column)?;
        sql::ident(OP, "table", table)?;
        sql::path_literal(OP, out_dir)?;
        // Everything below runs under the connection's lock, so two exports from this handle
        // never interleave their file work.
        let job = JobProgress::new(progress);
        self.with_conn(OP, |conn| {
            let mut made = Made::default();
            let wait = self.busy_timeout();
            let result = export_split(OP, conn, table, column, out_dir, &mut made, &job, wait);
            let work = made.work.inspect(|work| {
                let _ = std::fs::remove_dir_all(&work.staging);
                // Unlinked but still held: the directories below can go before another export
                // takes the lock (it then makes them again, see `WorkDirs::acquire`).
                work.unlink_lock();
            });
            // An export that gave up waiting for another one into `out_dir` keeps the
            // directories it made: that export may be about to publish into them.
            let gave_up_waiting = work.is_none() && result.as_ref().is_err_and(Error::is_busy);
            match made.dirs {
                Some(created) if result.is_ok() || gave_up_waiting => created.keep(),
                // A failure removes `out_dir` and the parents this call made, each only while
                // empty (deepest first), as a failed `export_parquet` does.
                created => drop(created),
            }
            drop(work); // releases the lock
            result
        })
        .inspect(|manifest| job.done(manifest.total_rows))
    }
}

/// What a split export made that its caller cleans up when it ends, whatever the result.
#[derive(Default)]
struct Made {
    /// `out_dir` and the parents it lacked: kept after a success, removed after a failure.
    dirs: Option<CreatedDirs>,
    /// The staging directory (always removed) and the export lock (released after it).
    work: Option<workdirs::WorkDirs>,
}

/// Stages, collects and publishes one split export (`wait`: how long to wait for another
/// export into `out_dir`, see [`Analytics::set_busy_timeout`]).
#[allow(clippy::too_many_arguments)] // the export's inputs, each used once; a struct would only rename them
fn export_split(
    op: &'static str,
    conn: &Connection,
    table: &str,
    column: &str,
    out_dir: &Path,
    made: &mut Made,
    progress: &JobProgress<'_>,
    wait: Option<std::time::Duration>,
) -> Result<SplitManifest> {
    // A view is read several times anyway (its columns, a sample, the scan), so its columns
    // are read here too.
    let table_sql = require_table(op, conn, table)?.sql;
    // Fixed-size arrays go out as lists: DuckDB's writer makes a NULL array unreadable to others.
    let table_sql = match super::import::lists_for_arrays(conn, &table_sql) {
        Some(query) => format!("({query})"),
        None => table_sql,
    };
    let column = require_column(op, conn, &table_sql, table, column)?;
    let limit = value_limit(op, &column.name)?;
    let previous = previous_partitions(&out_dir.join(MANIFEST), &column.name);
    refuse_foreign_files(op, out_dir, &column.name, &previous)?;
    // Only now, with the table and column known to exist, touch the file system.
    super::paths::refuse_dangling_link(op, "out_dir", out_dir)?;
    // Kept or removed by the caller once the lock and staging beside `out_dir` are gone.
    made.dirs = Some(ensure_parent(op, &out_dir.join("x"))?);
    let work: &workdirs::WorkDirs = made.work.insert(workdirs::WorkDirs::acquire(op, out_dir, wait)?);
    // An export that held the lock before this one and failed removed the directories it had
    // made, `out_dir` among them, while this one waited.
    std::fs::create_dir_all(out_dir).map_err(|source| Error::Io {
        op,
        path: Some(out_dir.to_path_buf()),
        source,
    })?;
    let (staging, aside) = (work.staging.as_path(), work.aside.as_path());
    let column_sql = sql::ident(op, "column", &column.name)?;
    let first = Layout::for_column(&column.name, &column.data_type, column.table_columns);
    if column.own_writer
        && writer::arrow_export_is_plain(conn)
        && many_values(op, conn, &table_sql, &column_sql)?
    {
        let keep_column = match first {
            Layout::Native { keep_column } => keep_column,
            Layout::Keyed => true,
        };
        let scan = writer::Scan {
            table_sql: &table_sql,
            column_sql: &column_sql,
            column_name: &column.name,
            keep_column,
            value_limit: limit,
        };
        let mut outcome = writer::write(op, conn, &scan, staging, progress)?;
        if matches!(outcome, writer::Outcome::NeedsColumn) {
            remove_staging(op, staging)?;
            let scan = writer::Scan {
                keep_column: true,
                ..scan
            };
            outcome = writer::write(op, conn, &scan, staging, progress)?;
        }
        if let writer::Outcome::Written(staged) = outcome {
            return publish(op, out_dir, aside, table, &column, limit, staged);
        }
        // Too large to buffer: DuckDB's partitioned COPY below.
        remove_staging(op, staging)?;
    }
    let source = Source {
        table: &table_sql,
        column: &column_sql,
        data_type: &column.data_type,
        key_column: &column.key_column,
        value_limit: limit,
    };
    let staged = match stage(op, conn, &source, staging, first, progress) {
        // A value too long for a directory name: redo the COPY with computed keys. (Not after
        // a progress callback panicked: that failure quotes its message, which may say anything.)
        Err(e) if first != Layout::Keyed && !progress.panicked() && e.to_string().contains(NAME_TOO_LONG) => {
            None
        }
        other => {
            other?;
            Some(collect(op, conn, staging, &column, &column_sql, first)?)
        }
    };
    // A value that fits a directory name but is over the `__long__` limit must also survive in
    // the files, as with the keyed layout.
    let long = |s: &Staged| s.value.as_deref().is_some_and(|v| too_long_for_a_name(v, limit));
    let staged = match staged {
        Some(staged) if first == Layout::Keyed || !staged.iter().any(long) => staged,
        _ => {
            remove_staging(op, staging)?;
            stage(op, conn, &source, staging, Layout::Keyed, progress)?;
            collect(op, conn, staging, &column, &column_sql, Layout::Keyed)?
        }
    };
    publish(op, out_dir, aside, table, &column, limit, staged)
}

/// Distinct values among the table's first [`SAMPLE_ROWS`] rows from which the split uses its
/// own writer. Below it DuckDB's partitioned COPY is as fast or faster (measured on 5M rows:
/// parity at 300 values, the own writer 0.85–0.93× at 1,000 and ~0.35× at 10,000).
const OWN_WRITER_MIN_VALUES: i64 = 500;

/// Rows sampled (the first ones, in storage order) to count distinct values.
const SAMPLE_ROWS: u32 = 65_536;

/// Whether the column shows at least [`OWN_WRITER_MIN_VALUES`] values in a sample of the table's
/// first rows: a read of one column of a few blocks, not a scan of the table.
fn many_values(op: &'static str, conn: &Connection, table_sql: &str, column_sql: &str) -> Result<bool> {
    let query = format!(
        "SELECT count(DISTINCT {column_sql}) FROM (SELECT {column_sql} FROM {table_sql} LIMIT {SAMPLE_ROWS})"
    );
    let distinct: i64 = conn
        .query_row(&query, [], |r| r.get(0))
        .map_err(|e| Error::duckdb(op, "sample the split column", e))?;
    Ok(distinct >= OWN_WRITER_MIN_VALUES)
}

/// The split column as the catalog spells it, with its type and the table's column count.
struct SplitColumn {
    name: String,
    data_type: String,
    table_columns: i64,
    /// Every column of the table has a type the split's own writer keeps exactly.
    own_writer: bool,
    /// The keyed layout's key column: a name no column of the table has.
    key_column: String,
}

/// Checks that `table` has `column` (names matched as DuckDB resolves them: ignoring ASCII case),
/// reading the columns of exactly the relation `SELECT * FROM table` binds to (a temporary
/// table shadows a persistent one of the same name, as in the COPY).
fn require_column(
    op: &'static str,
    conn: &Connection,
    table_sql: &str,
    table: &str,
    column: &str,
) -> Result<SplitColumn> {
    let lookup = |e| Error::duckdb(op, "look up column", e);
    let mut stmt = conn
        .prepare(&format!(
            "SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM {table_sql})"
        ))
        .map_err(lookup)?;
    let columns: Vec<(String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .and_then(|rows| rows.collect())
        .map_err(lookup)?;
    let found = columns
        .iter()
        .find(|(c, _)| c == column)
        .or_else(|| columns.iter().find(|(c, _)| same_name(c, column)));
    match found {
        Some((name, data_type)) => Ok(SplitColumn {
            name: name.clone(),
            data_type: data_type.clone(),
            table_columns: columns.len() as i64,
            // Float values are partitioned by their text (`-0.0` is not `0.0`), which the
            // keyed layout of DuckDB's writer does (see `Layout::for_column`).
            own_writer: !matches!(data_type.as_str(), "FLOAT" | "DOUBLE")
                && columns.iter().all(|(_, t)| writer::supported_type(t)),
            key_column: free_key_column(&columns),
        }),
        None => Err(Error::Missing {
            op,
            kind: "column",
            name: format!("{table}.{column}"),
        }),
    }
}

/// How rows are partitioned into the staging directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// By the column itself: DuckDB names the directories `<column>=<encoded value>`.
    Native {
        /// The column is the table's only one, so the files keep it (a Parquet file needs one).
        keep_column: bool,
    },
    /// By a computed key column, for names DuckDB cannot write as they are.
    Keyed,
}

/// The key column of the keyed layout, lengthened with `_` until no column of the table has
/// the name (a table may well have a column called `__store_split_key`).
const KEY_COLUMN: &str = "__store_split_key";

fn free_key_column(columns: &[(String, String)]) -> String {
    let mut name = KEY_COLUMN.to_string();
    while columns.iter().any(|(c, _)| same_name(c, &name)) {
        name.push('_');
    }
    name
}

/// How the OS reports a directory name over its limit (`ENAMETOOLONG`), inside DuckDB's error.
const NAME_TOO_LONG: &str = "File name too long";

impl Layout {
    /// `data_type`: the column's. DuckDB's partitioning groups values it compares equal:
    /// INTERVALs (`1 month` with `30 days`, `1 day` with `24 hours`, which add to dates
    /// differently) and floats, alone or in lists (`-0.0` with `0.0`, named after whichever
    /// it met first). Keyed by their text, each keeps its own partition (see [`value_text`]).
    fn for_column(column: &str, data_type: &str, table_columns: i64) -> Layout {
        let grouped_by_equality = data_type == "INTERVAL" || float_element(data_type).is_some();
        if escape_segment(column) == column && !grouped_by_equality {
            Layout::Native {
                keep_column: table_columns <= 1,
            }
        } else {
            Layout::Keyed
        }
    }

    /// The staged directories' name prefix.
    fn dir_prefix(self, column: &SplitColumn) -> String {
        match self {
            Layout::Native { .. } => format!("{}=", column.name),
            Layout::Keyed => format!("{}=", column.key_column),
        }
    }
}

fn remove_staging(op: &'static str, staging: &Path) -> Result<()> {
    match std::fs::remove_dir_all(staging) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::Io {
            op,
            path: Some(staging.to_path_buf()),
            source: e,
        }),
        _ => Ok(()),
    }
}

/// What a partitioned COPY reads: the table and split column as SQL, the keyed layout's key
/// column name, and the longest value that goes into a directory name.
struct Source<'a> {
    table: &'a str,
    column: &'a str,
    /// The column's type, as `DESCRIBE` names it.
    data_type: &'a str,
    key_column: &'a str,
    value_limit: usize,
}

/// The one partitioned COPY: every row goes to the staged directory of its value or key.
fn stage(
    op: &'static str,
    conn: &Connection,
    source: &Source<'_>,
    staging: &Path,
    layout: Layout,
    progress: &JobProgress<'_>,
) -> Result<()> {
    let Source {
        table,
        column,
        data_type,
        key_column,
        value_limit,
    } = *source;
    let staging = LiteralPath::partitioned_write_dir(op, staging)?;
    let target = sql::path_literal(op, staging.path())?;
    let options = "FORMAT parquet, COMPRESSION zstd, OVERWRITE_OR_IGNORE true";
    let copy = match layout {
        Layout::Native { keep_column } => format!(
            "COPY {table} TO {target} ({options}, PARTITION_BY ({column}), WRITE_PARTITION_COLUMNS {keep_column})"
        ),
        Layout::Keyed => format!(
            "COPY (SELECT *, {key} AS {key_column} FROM {table}) TO {target} \
             ({options}, PARTITION_BY ({key_column}))",
            key = split_key(column, data_type, value_limit)
        ),
    };
    // `execute_batch`, not a prepared `execute`: measured ~4% faster for a large COPY.
    with_progress(conn, progress, || conn.execute_batch(&copy))
        .map_err(|e| Error::duckdb(op, "write partitioned files", e))
}

/// The keyed layout's partition key: `v<text>`, or a marker for values that need one (the NULL
/// marker's spelling, and values over `limit` bytes escaped, see [`too_long_for_a_name`]). A
/// long value's marker is its SHA-256: DuckDB's own 64-bit `hash()` can be made to collide in
/// milliseconds, and two values in one staged partition fail the export.
fn split_key(column: &str, data_type: &str, limit: usize) -> String {
    let text = value_text(column, data_type);
    // Escaped length of the value, computed exactly as `escape_segment` does: characters outside
    // the unreserved set cost three bytes per byte.
    let kept = format!("strlen(regexp_replace({text}, '[^A-Za-z0-9._~-]', '', 'g'))");
    let escaped_len = format!(
        "({kept} + 3 * (strlen({text}) - {kept}) + 2 * starts_with({text}, '{LONG_PREFIX}')::INTEGER)"
    );
    // Escaping at most triples a value, so short values skip the exact length computation.
    let short = limit.saturating_sub(2) / 3;
    format!(
        "CASE WHEN {column} IS NULL THEN NULL \
              WHEN strlen({text}) <= {short} AND {text} <> '{HIVE_NULL}' THEN 'v' || {text} \
              WHEN {text} = '{HIVE_NULL}' THEN 'shive' \
              WHEN {escaped_len} > {limit} THEN 's' || sha256({text}) \
              ELSE 'v' || {text} END"
    )
}

/// The SQL text of a value of `column` (of type `data_type`) that names its partition: its
/// `VARCHAR` cast, except that every float NaN is `nan`. DuckDB compares all NaNs equal, but
/// the cast keeps the sign bit, so a NaN computed on x86 (`0.0 / 0.0`) reads `-nan` and a
/// parsed one `nan`: keyed by the cast, one value would get two partitions. In a list (or
/// array) of floats every `-nan` in the text is such a NaN, as nothing else in it is text.
/// (A struct's text also holds its field names, so a struct holding floats keeps its cast.)
fn value_text(column: &str, data_type: &str) -> String {
    match float_element(data_type) {
        Some(false) => format!("CASE WHEN isnan({column}) THEN 'nan' ELSE CAST({column} AS VARCHAR) END"),
        Some(true) => format!("replace(CAST({column} AS VARCHAR), '-nan', 'nan')"),
        None => format!("CAST({column} AS VARCHAR)"),
    }
}

/// Whether `data_type` is FLOAT or DOUBLE (`Some(false)`), or a list or array of them at any
/// depth (`Some(true)`: `DOUBLE[]`, `FLOAT[3][]`).
fn float_element(data_type: &str) -> Option<bool> {
    let mut element = data_type;
    let mut nested = false;
    while let Some(inner) = element.strip_suffix(']') {
        let open = inner.rfind('[')?;
        if !inner[open + 1..].bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        element = &inner[..open];
        nested = true;
    }
    matches!(element, "FLOAT" | "DOUBLE").then_some(nested)
}

/// A staged partition: its key (`None` = NULL), files and row count.
struct Staged {
    key: Option<String>,
    dir: PathBuf,
    files: Vec<PathBuf>,
    rows: u64,
    value: Option<String>,
}

/// Reads the staged layout back: keys from directory names, row counts from Parquet footers,
/// and the true values of hashed (long) keys from their own files.
fn collect(
    op: &'static str,
    conn: &Connection,
    staging: &Path,
    column: &SplitColumn,
    column_sql: &str,
    layout: Layout,
) -> Result<Vec<Staged>> {
    let prefix = layout.dir_prefix(column);
    let mut staged = Vec::new();
    let io = |source, path: &Path| Error::Io {
        op,
        path: Some(path.to_path_buf()),
        source,
    };
    for entry in std::fs::read_dir(staging).map_err(|e| io(e, staging))? {
        let entry = entry.map_err(|e| io(e, staging))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(encoded) = name.strip_prefix(prefix.as_str()) else {
            continue;
        };
        let key = if encoded == HIVE_NULL {
            None
        } else {
            let bytes = percent_decode(encoded).ok_or_else(|| {
                Error::invalid(op, "column", format!("unexpected staged directory {name:?}"))
            })?;
            Some(String::from_utf8_lossy(&bytes).into_owned())
        };
        let value = match layout {
            Layout::Native { .. } => key.clone(),
            Layout::Keyed => key
                .as_deref()
                .and_then(|k| k.strip_prefix('v'))
                .map(str::to_string),
        };
        staged.push(Staged {
            value,
            key,
            dir: entry.path(),
            files: Vec::new(),
            rows: 0,
        });
    }
    // Directories with a footer the quick reader could not parse are counted by DuckDB.
    for i in prepare_dirs(op, &mut staged)? {
        let s = &mut staged[i];
        s.rows = s
            .files
            .iter()
            .map(|f| parquet_rows(op, conn, f))
            .sum::<Result<u64>>()?;
    }
    for s in staged.iter_mut().filter(|s| s.files.len() > 1) {
        s.files = vec![merge_files(op, conn, &s.dir, &s.files)?];
    }
    // Marker keys stand for values we must read back: the NULL marker's spelling and long ones.
    let keyed = layout == Layout::Keyed;
    for s in staged
        .iter_mut()
        .filter(|s| keyed && s.key.as_deref().is_some_and(|k| k.starts_with('s')))
    {
        if s.key.as_deref() == Some("shive") {
            s.value = Some(HIVE_NULL.to_string());
            continue;
        }
        let (_link, files) = read_files_sql(op, &s.dir, &s.files)?;
        let query = format!(
            "SELECT count(DISTINCT {text}), any_value({text}) FROM {files}",
            text = value_text(column_sql, &column.data_type)
        );
        let (distinct, value): (i64, Option<String>) = conn
            .query_row(&query, [], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(|e| Error::duckdb(op, "read back a long value", e))?;
        if distinct != 1 {
            return Err(Error::invalid(
                op,
                "column",
                "two long values share a SHA-256 hash; split on another column or shorten the values",
            ));
        }
        s.value = value;
    }
    Ok(staged)
}

/// Moves staged partitions to their final names and writes the manifest.
fn publish(
    op: &'static str,
    out_dir: &Path,
    aside: &Path,
    table: &str,
    split: &SplitColumn,
    limit: usize,
    mut staged: Vec<Staged>,
) -> Result<SplitManifest> {
    let column = split.name.as_str();
    let sort = SortAs::of(&split.data_type);
    staged.sort_by(|a, b| value_order(sort, a.value.as_deref(), b.value.as_deref()));
    let column_segment = escape_segment(column);
    let io = |source, path: &Path| Error::Io {
        op,
        path: Some(path.to_path_buf()),
        source,
    };
    // `out_dir` was made before the lock was taken; should a failing export have removed it
    // meanwhile, it is made again (empty, it holds nothing of anyone's).
    std::fs::create_dir_all(out_dir).map_err(|e| io(e, out_dir))?;
    // Every file already has its final name inside its staged directory: move whole directories.
    let mut files = Vec::with_capacity(staged.len());
    let mut moves = Vec::with_capacity(staged.len());
    let mut taken = std::collections::HashSet::with_capacity(staged.len());
    for s in &staged {
        let mut name = value_segment(s.value.as_deref(), limit);
        // Escaping is one-to-one, so only two long values' `__long__<hash>` names can meet:
        // 64-bit FNV-1a is no defence against values chosen to collide. The later value in
        // sort order takes the first free `-2`, `-3`… (no escaped value starts with
        // `__long__`: those are escaped to `%5F_long__…`).
        let base = name.clone();
        let mut n = 1;
        while !taken.insert(name.clone()) {
            n += 1;
            name = format!("{base}-{n}");
        }
        let segment = format!("{column_segment}={name}");
        moves.push((s.dir.clone(), out_dir.join(&segment)));
        files.push(SplitFile {
            value: s.value.clone(),
            path: format!("{segment}/{DATA_FILE}"),
            rows: s.rows,
        });
    }
    let manifest = SplitManifest {
        table: table.to_string(),
        column: column.to_string(),
        total_rows: files.iter().map(|f| f.rows).sum(),
        files,
    };
    // Compact, keys sorted (through `Value`), like all JSON the store writes.
    let json = serde_json::to_value(&manifest)
        .map_err(|e| Error::json(op, e))?
        .to_string();
    // The previous export of this column (which may hold values that are gone now) is set aside
    // by renames, the new directories move in, the manifest is replaced; if any step fails,
    // everything moves back, so the previous export survives a failed one.
    let own_prefix = format!("{column_segment}=");
    // A previous export of *another* column into this directory goes too: its partitions next to
    // these would make the directory unreadable as one Hive dataset. Only directories its
    // manifest lists are touched, so anything else the user keeps here stays.
    let previous = previous_partitions(&out_dir.join(MANIFEST), column);
    // Checked before the scan as well; again here, right before anything moves.
    refuse_foreign_files(op, out_dir, column, &previous)?;
    std::fs::create_dir(aside).map_err(|e| io(e, aside))?;
    let mut renamed: Vec<(PathBuf, PathBuf)> = Vec::new();
    // How many of `renamed` set the previous export aside (the rest moved new ones in).
    let mut set_aside = 0;
    let mut replace = || -> Result<()> {
        // The previous manifest goes aside first and the new one comes last, so a manifest in
        // `out_dir` always lists the files beside it: a publish cut short (a killed process)
        // leaves none until the next export into the directory rolls it back. Only a file: a
        // directory of that name is not the store's. A rename, so it is whole or not moved.
        let previous_manifest = out_dir.join(MANIFEST);
        if previous_manifest.is_file() {
            let copy = aside.join(MANIFEST);
            std::fs::rename(&previous_manifest, &copy).map_err(|e| io(e, &previous_manifest))?;
        }
        for entry in std::fs::read_dir(out_dir).map_err(|e| io(e, out_dir))?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            // Own-column directories were checked above; a previous export's are checked
            // again, so files the user adds meanwhile are never set aside with them.
            let earlier = name.starts_with(&own_prefix)
                || (previous.contains(&name) && holds_only_split_files(&entry.path()).unwrap_or(false));
            if earlier && entry.path().is_dir() {
                let to = aside.join(entry.file_name());
                std::fs::rename(entry.path(), &to).map_err(|e| io(e, &entry.path()))?;
                renamed.push((entry.path(), to));
                set_aside = renamed.len();
            }
        }
        // From here on, a crash leaves a state `workdirs::recover` rolls back (see there).
        let moving_in = aside.join(workdirs::MOVING_IN);
        std::fs::write(&moving_in, &own_prefix).map_err(|e| io(e, &moving_in))?;
        set_aside = renamed.len();
        for (from, to) in &moves {
            std::fs::rename(from, to).map_err(|e| io(e, to))?;
            renamed.push((from.clone(), to.clone()));
        }
        let path = out_dir.join(MANIFEST);
        let tmp = out_dir.join(format!("{MANIFEST}.tmp"));
        std::fs::write(&tmp, &json).map_err(|e| io(e, &tmp))?;
        std::fs::rename(&tmp, &path).map_err(|e| io(e, &path))?;
        let committed = aside.join(workdirs::COMMITTED);
        std::fs::write(&committed, "").map_err(|e| io(e, &committed))
    };
    let result = replace();
    if result.is_err() {
        // In the order recovery expects if this is cut short: the new manifest leaves first (so
        // no manifest lists partitions that are leaving), then the new partitions, then the
        // marker, and only then does the previous export come back, its manifest last.
        let moving_in = aside.join(workdirs::MOVING_IN);
        let moving_in_started = moving_in.exists();
        if moving_in_started {
            // The manifest in `out_dir` may be the new one; the previous one is aside.
            let _ = workdirs::remove_manifest_file(&out_dir.join(MANIFEST));
        }
        for (from, to) in renamed[set_aside..].iter().rev() {
            let _ = std::fs::rename(to, from);
        }
        if moving_in_started {
            let _ = std::fs::remove_file(&moving_in);
        }
        for (from, to) in renamed[..set_aside].iter().rev() {
            let _ = std::fs::rename(to, from);
        }
        let _ = std::fs::rename(aside.join(MANIFEST), out_dir.join(MANIFEST));
        let _ = std::fs::remove_file(out_dir.join(format!("{MANIFEST}.tmp")));
        // Non-recursive: if a directory could not be put back, it stays there, not deleted.
        let _ = std::fs::remove_dir(aside);
        return result.map(|()| manifest);
    }
    if let Err(e) = workdirs::discard(aside) {
        log::warn!(
            "store: {op}: remove the previous export set aside in {}: {e}",
            aside.display()
        );
    }
    Ok(manifest)
}

/// A `<column>=…` directory in `out_dir` holding anything a split does not write is the user's:
/// it is neither replaced (that would delete their files) nor left beside the new partitions
/// (a stale Parquet file in it would join the dataset), so the export stops, changing nothing.
/// The same holds for a partition of a previous export of another column into `out_dir`
/// (`previous`, from its manifest): left there, its Parquet file would make the directory
/// unreadable as one Hive dataset.
fn refuse_foreign_files(
    op: &'static str,
    out_dir: &Path,
    column: &str,
    previous: &BTreeSet<String>,
) -> Result<()> {
    let own_prefix = format!("{}=", escape_segment(column));
    let Ok(entries) = std::fs::read_dir(out_dir) else {
        return Ok(()); // not created yet: nothing of the user's in it
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let replaced = name.starts_with(&own_prefix) || previous.contains(&name);
        if !(replaced && path.is_dir()) {
            continue;
        }
        let only_split_files = holds_only_split_files(&path).map_err(|e| Error::Io {
            op,
            path: Some(path.clone()),
            source: std::io::Error::new(
                e.kind(),
                format!(
                    "{e}; a split export reads each directory it would replace to check that it \
                     holds only its own files: make it readable, or export to another directory \
                     (nothing was changed)"
                ),
            ),
        })?;
        if !only_split_files {
            return Err(Error::invalid(
                op,
                "out_dir",
                format!(
                    "{} holds files a split export does not write, and this export would replace \
                     the directory; move those files elsewhere or export to another directory \
                     (nothing was changed)",
                    path.display()
                ),
            ));
        }
    }
    Ok(())
}

/// The partition directories (`<column>=<value>`) listed by an earlier manifest in `out_dir`
/// if it was an export of another column; nothing if there is none or it cannot be read.
fn previous_partitions(manifest: &Path, column: &str) -> BTreeSet<String> {
    let Ok(text) = std::fs::read(manifest) else {
        return BTreeSet::new();
    };
    match serde_json::from_slice::<SplitManifest>(&text) {
        Ok(old) if old.column != column => old
            .files
            .iter()
            .filter_map(|f| f.path.split_once('/').map(|(dir, _)| dir.to_string()))
            .filter(|dir| dir.contains('=') && !dir.starts_with('.'))
            .collect(),
        _ => BTreeSet::new(),
    }
}

/// Whether a partition directory holds only what a split writes there (`data.parquet`, and
/// `data-<n>.parquet` when DuckDB wrote several files): only such a directory is replaced. An
/// error reading it (no permission, no file descriptors left) is not an answer.
fn holds_only_split_files(dir: &Path) -> std::io::Result<bool> {
    let is_split_file = |name: &str| {
        name == DATA_FILE
            || name
                .strip_prefix("data-")
                .and_then(|rest| rest.strip_suffix(".parquet"))
                // As `name_files` writes them: 1, 2, … without leading zeros.
                .is_some_and(|n| {
                    !n.starts_with('0') && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())
                })
    };
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if !(entry.file_name().to_str().is_some_and(is_split_file) && entry.path().is_file()) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Threads for the split's own file work (preparing staged directories, writing partitions).
fn worker_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8)
}

/// Names and counts the files of every staged directory, on a few threads: with thousands of
/// values, this per-directory file work is most of what the export adds to DuckDB's own COPY.
/// Returns the positions of the directories with a footer the quick reader could not parse
/// (their `rows` are left for the caller to count).
fn prepare_dirs(op: &'static str, staged: &mut [Staged]) -> Result<Vec<usize>> {
    let chunk = staged.len().div_ceil(worker_threads()).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = staged
            .chunks_mut(chunk)
            .enumerate()
            .map(|(c, part)| {
                scope.spawn(move || {
                    let mut uncounted = Vec::new();
                    for (i, s) in part.iter_mut().enumerate() {
                        s.files = name_files(op, &s.dir)?;
                        match s.files.iter().map(|f| footer::num_rows(f)).sum::<Option<u64>>() {
                            Some(rows) => s.rows = rows,
                            None => uncounted.push(c * chunk + i),
                        }
                    }
                    Ok(uncounted)
                })
            })
            .collect();
        let mut uncounted = Vec::new();
        for worker in workers {
            // A worker only panics if the standard library does; report it as an error.
            let result = worker
                .join()
                .map_err(|_| Error::invalid(op, "out_dir", "a thread preparing the staged files panicked"))?;
            uncounted.extend(result?);
        }
        Ok(uncounted)
    })
}

/// DuckDB writes one file per partition in the common case; it becomes `data.parquet`. If it
/// wrote several, they become `data.parquet`, `data-1.parquet`, … for [`merge_files`] to join.
fn name_files(op: &'static str, dir: &Path) -> Result<Vec<PathBuf>> {
    let io = |source, path: &Path| Error::Io {
        op,
        path: Some(path.to_path_buf()),
        source,
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| io(e, dir))?
        .filter_map(|f| f.ok().map(|f| f.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    // DuckDB numbers a partition's files `data_0`, `data_1`, …: shorter names first keeps
    // `data_10` after `data_9`.
    files.sort_by_key(|p| (p.as_os_str().len(), p.clone()));
    let mut named = Vec::with_capacity(files.len());
    for (i, file) in files.iter().enumerate() {
        let name = if i == 0 {
            dir.join(DATA_FILE)
        } else {
            dir.join(format!("data-{i}.parquet"))
        };
        std::fs::rename(file, &name).map_err(|e| io(e, &name))?;
        named.push(name);
    }
    Ok(named)
}

/// `read_parquet([…], hive_partitioning = false)` over `files` in the staged directory `dir`,
/// read through a plainly named link to `dir` (DuckDB would take glob characters in `out_dir`,
/// `run[1]/…`, as a pattern); the link lasts as long as the returned guard.
fn read_files_sql(op: &'static str, dir: &Path, files: &[PathBuf]) -> Result<(LiteralPath, String)> {
    let link = LiteralPath::new(op, dir)?;
    let paths = files
        .iter()
        .map(|f| sql::path_literal(op, &link.path().join(f.file_name().unwrap_or_default())))
        .collect::<Result<Vec<_>>>()?;
    let sql = format!("read_parquet([{}], hive_partitioning = false)", paths.join(", "));
    Ok((link, sql))
}

/// Joins a partition's several files into its one `data.parquet`.
///
/// DuckDB's partitioned COPY keeps at most `partitioned_write_max_open_files` (100) files open;
/// with more partitions it closes one and later starts a new file for the same value, so a
/// partition can arrive in pieces. The spec promises one file per value, and the manifest names
/// one, so the pieces are rewritten as one file; only such partitions pay for this.
fn merge_files(op: &'static str, conn: &Connection, dir: &Path, files: &[PathBuf]) -> Result<PathBuf> {
    let (_link, sources) = read_files_sql(op, dir, files)?;
    let merged = dir.join("data.parquet.merged");
    let copy = format!(
        "COPY (SELECT * FROM {sources}) TO {} (FORMAT parquet, COMPRESSION zstd)",
        sql::path_literal(op, &merged)?
    );
    conn.execute_batch(&copy)
        .map_err(|e| Error::duckdb(op, "join the files of one partition", e))?;
    let io = |source, path: &Path| Error::Io {
        op,
        path: Some(path.to_path_buf()),
        source,
    };
    for file in files {
        std::fs::remove_file(file).map_err(|e| io(e, file))?;
    }
    let target = dir.join(DATA_FILE);
    std::fs::rename(&merged, &target).map_err(|e| io(e, &target))?;
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table over the own writer's Arrow budget is abandoned mid-scan, leaves nothing staged,
    /// and is exported by DuckDB's partitioned COPY instead, with the same result.
    #[test]
    fn a_table_over_the_budget_falls_back_to_duckdbs_writer() {
        let tmp = tempfile::tempdir().unwrap();
        let db = Analytics::in_memory().unwrap();
        db.exec_batch("CREATE TABLE t AS SELECT 'v' || (i % 1000) AS k, i AS n FROM range(600000) r(i)")
            .unwrap();
        let created_by = |dir: &Path| -> Vec<String> {
            let glob = sql::path_literal("test", &dir.join("**").join("*.parquet")).unwrap();
            db.query(
                &format!("SELECT DISTINCT split_part(created_by, ' ', 1) FROM parquet_file_metadata({glob})"),
                &[],
            )
            .unwrap()
            .rows
            .iter()
            .map(|r| r[0].to_string())
            .collect()
        };
        let own = db.export_split_parquet("t", tmp.path().join("own"), "k").unwrap();
        assert_eq!(created_by(&tmp.path().join("own")), ["parquet-rs"]);

        writer::TEST_BUDGET.with(|b| b.set(Some(1 << 20)));
        let fallback = db.export_split_parquet("t", tmp.path().join("fallback"), "k");
        writer::TEST_BUDGET.with(|b| b.set(None));
        let fallback = fallback.unwrap();
        assert_eq!(created_by(&tmp.path().join("fallback")), ["DuckDB"]);
        assert_eq!(fallback.files.len(), 1000);
        assert_eq!(fallback.total_rows, 600_000);
        assert_eq!(fallback.files, own.files);
        // Only the published directories and the manifest: nothing staged is left.
        let names: Vec<String> = std::fs::read_dir(tmp.path().join("fallback"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with("k="))
            .collect();
        assert_eq!(names, ["manifest.json"]);
    }
}
