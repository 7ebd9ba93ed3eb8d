//! Which database files this process has open, and how.
//!
//! DuckDB locks a file with an OS (`fcntl`) lock, which only keeps *other processes* out: a
//! second [`Analytics::open`](super::Analytics::open) of the same file inside one process would
//! get a second, independent DuckDB instance on it, and the two overwrite each other's
//! checkpoints (one handle's tables silently vanish). So the process applies the rule DuckDB
//! applies across processes: per file, one read-write opener or any number of read-only ones.
//! Files are identified by their canonical path (symbolic links resolved; hard links are not
//! recognised). The claim covers the handles this crate opens: a connection cloned through
//! `with_connection`, or an `ATTACH` of the same file in SQL, is the caller's to keep apart.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use parking_lot::Mutex;

use crate::error::{Error, Result};

enum Holders {
    Writer,
    Readers(usize),
}

static OPEN_FILES: LazyLock<Mutex<HashMap<PathBuf, Holders>>> = LazyLock::new(|| Mutex::new(HashMap::new()));

/// This process's claim on a database file; released when dropped.
#[derive(Debug)]
pub(crate) struct FileClaim {
    key: PathBuf,
}

/// Claims `path` for a read-write (`read_only == false`) or read-only opener, or fails with a
/// `DuckDb` error (as DuckDB's own lock conflict between processes does) if the process
/// already holds it in a conflicting way.
pub(crate) fn claim(op: &'static str, path: &Path, read_only: bool) -> Result<Option<FileClaim>> {
    // DuckDB opens a fresh in-memory database for this name each time: nothing to share.
    // (`:memory:<name>` is a file name to DuckDB 2.0, and is claimed like any other.)
    if path.as_os_str() == ":memory:" {
        return Ok(None);
    }
    let key = identity(path);
    let mut open = OPEN_FILES.lock();
    match (open.get_mut(&key), read_only) {
        (None, false) => {
            open.insert(key.clone(), Holders::Writer);
        }
        (None, true) => {
            open.insert(key.clone(), Holders::Readers(1));
        }
        (Some(Holders::Readers(n)), true) => *n += 1,
        (Some(held), _) => {
            let (held, hint) = match held {
                Holders::Writer => ("read-write", "use that Analytics handle, or close it first"),
                Holders::Readers(_) => ("read-only", "close the read-only handles first"),
            };
            let message = format!(
                "{} is already open {held} in this process, and DuckDB allows one read-write \
                 opener or any number of read-only ones per file; {hint}",
                path.display()
            );
            let mut code = duckdb::ffi::Error::new(duckdb::ffi::duckdb_state_DuckDBError);
            code.code = duckdb::ffi::ErrorCode::DatabaseBusy;
            let context = format!("open {}", path.display());
            return Err(Error::duckdb(
                op,
                context,
                duckdb::Error::DuckDBFailure(code, Some(message)),
            ));
        }
    }
    Ok(Some(FileClaim { key }))
}

impl Drop for FileClaim {
    fn drop(&mut self) {
        let mut open = OPEN_FILES.lock();
        if let Some(Holders::Readers(n)) = open.get_mut(&self.key)
            && *n > 1
        {
            *n -= 1;
            return;
        }
        open.remove(&self.key);
    }
}

/// The canonical path of `path`, or of its directory joined with its name while the file does
/// not exist yet (an open about to create it); a dangling symbolic link stands for its target,
/// which the open creates.
fn identity(path: &Path) -> PathBuf {
    identity_within(path, 40)
}

fn identity_within(path: &Path, links_left: u32) -> PathBuf {
    if let Ok(canonical) = std::fs::canonicalize(path) {
        return canonical;
    }
    if links_left > 0
        && let Ok(target) = std::fs::read_link(path)
    {
        let base = path.parent().unwrap_or(Path::new("."));
        return identity_within(&base.join(target), links_left - 1);
    }
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    match (std::fs::canonicalize(parent), path.file_name()) {
        (Ok(dir), Some(name)) => dir.join(name),
        _ => path.to_path_buf(),
    }
}
