//! Opening a DuckDB database file safely: path checks, refusing files that are not DuckDB
//! databases, the engine settings every database opens with, and cleaning up after a create
//! that failed.

use std::path::Path;

use duckdb::{AccessMode, Config};

use super::{claims, paths, sql};
use crate::error::{Error, Result};

pub(crate) fn check_path(op: &'static str, path: &Path) -> Result<()> {
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
pub(crate) fn refuse_foreign_file(op: &'static str, path: &Path) -> Result<()> {
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
pub(crate) fn open_refused(
    op: &'static str,
    path: &Path,
    code: duckdb::ffi::ErrorCode,
    message: String,
) -> Error {
    let mut failure = duckdb::ffi::Error::new(duckdb::ffi::duckdb_state_DuckDBError);
    failure.code = code;
    Error::duckdb(
        op,
        format!("open {}", path.display()),
        duckdb::Error::DuckDBFailure(failure, Some(message)),
    )
}

/// The engine settings every database opens with: the access mode, `async_threads = 0`, and
/// `autoinstall_known_extensions = false`.
///
/// DuckDB would download an extension from extensions.duckdb.org the first time a query needs
/// one (`current_setting('TimeZone')` needs `icu`): an embedded store does not fetch and load
/// code from the network behind its caller's back, nor wait on a network that drops packets.
/// Such a query fails naming the extension, with DuckDB's `INSTALL … ; LOAD …` fix; an
/// extension installed so (or by any DuckDB on the machine) still loads on its own.
///
/// DuckDB 2.0 writes COPY output (Parquet, CSV) through an asynchronous write queue, and when
/// the query fails mid-write (a failed cast, say) the abort can deadlock: the failing thread
/// drains the queue's tasks while holding the lock a draining task waits for, and the process
/// hangs for good (reproduced in 1 of ~30 failing exports, every time within a few in one
/// process). Without async threads DuckDB writes synchronously from its worker threads, which
/// costs the exports nothing measurable (see the export benchmark).
pub(crate) fn engine_config(op: &'static str, mode: AccessMode) -> Result<Config> {
    Config::default()
        .access_mode(mode)
        .and_then(|c| c.with("async_threads", "0"))
        .and_then(|c| c.with("autoinstall_known_extensions", "false"))
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
pub(crate) fn file_engine(
    op: &'static str,
    path: &Path,
    mode: AccessMode,
) -> Result<(std::path::PathBuf, Config)> {
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

/// Removes what an open that was to create the database at `path` left when it failed (a full
/// disk, a write refused): a file without complete headers, which every later open would
/// refuse ("not a valid DuckDB database file") until someone deleted it. Only a file that is
/// still unfinished, and not after a lock conflict: then another process holds the file, and
/// may be creating it right now.
pub(crate) fn remove_failed_create(path: &Path, failure: &duckdb::Error) {
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
