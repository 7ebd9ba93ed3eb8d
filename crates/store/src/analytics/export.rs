//! Parquet export: a table or a query to one file. Exports write to a staging file beside the
//! target (`<path>.store-export-<pid>-<n>-<random>.tmp`, unique to the call, so concurrent
//! exports to one path cannot write into the same file) and rename it over the target only
//! when DuckDB has finished, so a failed export leaves the target untouched.

use std::path::Path;

use duckdb::Connection;

use super::import::lists_for_arrays;
use super::paths::{
    CreatedDirs, LiteralPath, LiveStaging, ensure_parent, export_target, refuse_dangling_link,
    refuse_database_target, remove_stale_staging, tmp_path,
};
use super::progress::{JobProgress, ProgressFn, with_progress};
use super::source::{looks_like_query, source_sql};
use super::{Analytics, Mode, sql, transaction_on};
use crate::error::{Error, Result};

impl Analytics {
    /// Writes a table — or a query starting with `SELECT`, `WITH` or `FROM` — to a zstd Parquet
    /// file; returns the rows written. Parent directories are created (and removed
    /// again, if still empty, when the export fails).
    ///
    /// # Errors
    /// `Missing { kind: "table" }` for an unknown table; `InvalidInput { field: "query" }` for
    /// text that is not exactly one read-only `SELECT` as DuckDB parses it (no second
    /// statement, no COPY or DML inside it, none of the side-effecting functions a read-only
    /// transaction lets through, at most 1,000 levels of parentheses); `DuckDb` if the query
    /// fails (the target is then untouched). A query runs with the connection's rights: never
    /// build one from untrusted input.
    ///
    /// # Examples
    /// ```
    /// use store::analytics::Analytics;
    /// let dir = tempfile::tempdir()?;
    /// let db = Analytics::in_memory()?;
    /// db.exec_batch("CREATE TABLE t AS SELECT range AS x FROM range(3)")?;
    /// assert_eq!(db.export_parquet("t", dir.path().join("out/t.parquet"))?, 3);
    /// assert_eq!(db.export_parquet("SELECT 1 AS one", dir.path().join("one.parquet"))?, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn export_parquet(&self, table_or_query: &str, path: impl AsRef<Path>) -> Result<u64> {
        self.export_parquet_with(table_or_query, path, "zstd", None)
    }

    /// [`Analytics::export_parquet`] with a compression codec (`zstd`, `snappy`, `gzip`,
    /// `lz4`, `lz4_raw`, `brotli` or `uncompressed`, in any case) and an optional progress
    /// callback.
    ///
    /// # Examples
    /// ```
    /// use store::analytics::Analytics;
    /// let dir = tempfile::tempdir()?;
    /// let db = Analytics::in_memory()?;
    /// db.exec_batch("CREATE TABLE t AS SELECT * FROM range(10)")?;
    /// assert_eq!(db.export_parquet_with("t", dir.path().join("t.parquet"), "snappy", None)?, 10);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn export_parquet_with(
        &self,
        table_or_query: &str,
        path: impl AsRef<Path>,
        compression: &str,
        progress: Option<ProgressFn<'_>>,
    ) -> Result<u64> {
        const OP: &str = "Analytics::export_parquet";
        let path = path.as_ref();
        let job = JobProgress::new(progress);
        let codec = match compression.trim().to_ascii_lowercase().as_str() {
            c @ ("zstd" | "snappy" | "gzip" | "lz4" | "lz4_raw" | "brotli" | "uncompressed") => c.to_string(),
            other => {
                return Err(Error::invalid(
                    OP,
                    "compression",
                    format!("{other:?} is not one of zstd, snappy, gzip, lz4, lz4_raw, brotli, uncompressed"),
                ));
            }
        };
        sql::require_path(OP, "path", path)?;
        let target = export_target(OP, path)?;
        if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
            refuse_dangling_link(OP, "path", parent)?;
            // Through a link, the file goes where the link says: a directory missing there is
            // the link's mistake (a shell redirection fails too), not one to create.
            if target != path && !parent.is_dir() {
                return Err(Error::invalid(
                    OP,
                    "path",
                    format!(
                        "{} is a symbolic link to {}, whose directory does not exist; create it, \
                         or export to another path",
                        path.display(),
                        target.display()
                    ),
                ));
            }
        }
        let path = target.as_path();
        if path.is_dir() {
            return Err(Error::invalid(
                OP,
                "path",
                format!(
                    "{} is a directory; name the Parquet file to write, e.g. {}",
                    path.display(),
                    path.join("export.parquet").display()
                ),
            ));
        }
        refuse_database_target(OP, path)?;
        let tmp = tmp_path(path);
        // Validate everything that can be validated before touching the file system.
        sql::path_literal(OP, &tmp)?;
        if !looks_like_query(table_or_query) {
            sql::ident(OP, "table", table_or_query)?;
        }
        let mut created_dirs = CreatedDirs::default();
        // Marks the staging file as this call's until it returns, for the clean-up of dead
        // exports' files (`remove_stale_staging`), which may share this process's pid.
        let _live = LiveStaging::register(&tmp);
        let mut staging_file = None;
        let rows = self.with_conn(OP, |conn| {
            let source = source_sql(OP, conn, table_or_query)?;
            // A base table only: reading the columns of a query or a view binds it, and a
            // second bind would read a pipe it reads (`read_csv('/dev/stdin')`) twice, losing
            // the first rows.
            let source = if source.base_table {
                lists_for_arrays(conn, &format!("({})", source.sql)).unwrap_or(source.sql)
            } else {
                source.sql
            };
            // Only with the source known to exist: a missing table creates no directories.
            created_dirs = ensure_parent(OP, path)?;
            remove_stale_staging(path);
            // `USE_TMP_FILE false`: the staging file is already the temporary file, and one
            // `create_staging_like` made exists, which would make DuckDB write a `tmp_…` file of
            // its own (with the umask's mode) and move it over ours.
            let copy = format!(
                "COPY ({source}) TO {} (FORMAT parquet, COMPRESSION {codec}, USE_TMP_FILE false)",
                sql::path_literal(OP, &tmp)?
            );
            staging_file = create_staging_like(OP, &tmp, path)?;
            // Read-only: a `SELECT` can still carry `DELETE … RETURNING` inside a `WITH`.
            transaction_on(OP, conn, Mode::ReadOnly, |conn| {
                // `execute_batch`, not a prepared `execute`: measured ~4% faster for a large
                // COPY. The row count then comes from the written file's footer.
                with_progress(conn, &job, || conn.execute_batch(&copy)).map_err(|e| {
                    // A panicking progress callback's failure quotes its message, which may
                    // say anything.
                    if !job.panicked()
                        && e.to_string()
                            .contains("transaction is launched in read-only mode")
                    {
                        Error::invalid(
                            OP,
                            "query",
                            "the query tried to change the database (e.g. DML inside a WITH, or \
                             nextval); export runs it read-only — run that change separately",
                        )
                    } else {
                        Error::duckdb(OP, format!("write {}", tmp.display()), e)
                    }
                })
            })
            .and_then(|()| parquet_rows(OP, conn, &tmp))
            .inspect_err(|_| {
                let _ = std::fs::remove_file(&tmp);
            })
        })?;
        // Again: the COPY may have run for minutes, and the target become a database (or a
        // FIFO, or a link elsewhere) meanwhile.
        let checked_again = export_target(OP, path).and_then(|now| {
            if now == path {
                refuse_database_target(OP, path)
            } else {
                Err(Error::invalid(
                    OP,
                    "path",
                    format!(
                        "{} became a link to {} while the export ran; export again",
                        path.display(),
                        now.display()
                    ),
                ))
            }
        });
        if let Err(e) = checked_again {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        // The new file takes the exact mode of the one it replaces (see
        // `create_staging_like`), set through the descriptor of the file this call created:
        // by path it would follow a link someone swapped in meanwhile.
        #[cfg(unix)]
        if let (Some(file), Ok(replaced)) = (&staging_file, std::fs::metadata(path)) {
            use std::os::unix::fs::PermissionsExt;
            let mode = replaced.permissions().mode() & 0o777;
            let _ = file.set_permissions(std::fs::Permissions::from_mode(mode));
        }
        drop(staging_file);
        std::fs::rename(&tmp, path).map_err(|source| {
            let _ = std::fs::remove_file(&tmp);
            Error::Io {
                op: OP,
                path: Some(path.to_path_buf()),
                source,
            }
        })?;
        created_dirs.keep();
        job.done(rows);
        Ok(rows)
    }
}

/// Rows in a Parquet file, from its footer (DuckDB reads it if the quick reader cannot).
pub(crate) fn parquet_rows(op: &'static str, conn: &Connection, path: &Path) -> Result<u64> {
    if let Some(rows) = super::footer::num_rows(path) {
        return Ok(rows);
    }
    let literal = LiteralPath::new(op, path)?;
    let query = format!(
        "SELECT num_rows FROM parquet_file_metadata({})",
        sql::path_literal(op, literal.path())?
    );
    conn.query_row(&query, [], |r| r.get::<_, i64>(0))
        .map(|n| n.max(0) as u64)
        .map_err(|e| Error::duckdb(op, format!("read the row count of {}", path.display()), e))
}

/// Creates the staging file `tmp` of an export over the existing file `target` with `target`'s
/// permission bits (setuid and the like dropped) plus the owner's read and write, before
/// DuckDB writes into it: created by DuckDB, it would have the umask's mode, and a private
/// (`0600`) target's data would be readable by everyone for as long as the export runs. The
/// exact mode follows before the rename (a `0444` target's staging file must stay writable for
/// DuckDB meanwhile). DuckDB truncates a file it writes and keeps its mode. The staging name
/// has a random part ([`tmp_path`]), so a file already there is someone else's and an error.
/// The owner and group are the target's where the process may set them. Nothing to do for a
/// new target, or off Unix.
fn create_staging_like(op: &'static str, tmp: &Path, target: &Path) -> Result<Option<std::fs::File>> {
    #[cfg(unix)]
    if let Ok(existing) = std::fs::metadata(target) {
        use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
        let mode = (existing.permissions().mode() & 0o777) | 0o600;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(tmp)
            .map_err(|source| Error::Io {
                op,
                path: Some(tmp.to_path_buf()),
                source,
            })?;
        // Owner and group too where the process may set them (root, or a group it is in):
        // root exporting over another user's private file must not take it from them. Set
        // through the descriptor: by path, a link swapped in would hand over another file.
        if std::os::unix::fs::fchown(&file, Some(existing.uid()), Some(existing.gid())).is_err() {
            let _ = std::os::unix::fs::fchown(&file, None, Some(existing.gid()));
        }
        return Ok(Some(file));
    }
    #[cfg(not(unix))]
    let _ = (op, tmp, target);
    Ok(None)
}
