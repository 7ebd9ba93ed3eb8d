//! Which database files this process has open, and how.
//!
//! DuckDB locks a file with an OS (`fcntl`) lock, which only keeps *other processes* out: a
//! second [`Analytics::open`](super::Analytics::open) of the same file inside one process would
//! get a second, independent DuckDB instance on it, and the two overwrite each other's
//! checkpoints (one handle's tables silently vanish). So the process applies the rule DuckDB
//! applies across processes: per file, one read-write opener or any number of read-only ones.
//! A file is known by its canonical path (symbolic links resolved) and, on Unix, once it exists,
//! by its device, inode and birth time, so a hard link to an open file is the same file. The
//! birth time matters: a database closed after its directory was deleted frees its inode a
//! moment before its claim is released, and file systems such as ext4 hand the freed number to
//! the next file created, which must not pass for the database meanwhile. The claim covers the
//! handles this crate opens, and the caller SQL they run refuses an `ATTACH` of a claimed file
//! (see `refuse_attach_of_open_files`); a connection cloned through `with_connection` is the
//! caller's to keep apart.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use parking_lot::Mutex;

use crate::error::{Error, Result};

enum Holders {
    Writer,
    Readers(usize),
}

/// One name of a file: a claim holds every name it knows, and conflicts with a claim holding any.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum FileKey {
    Path(PathBuf),
    /// Device, inode and birth time (Unix; the birth time `None` where the file system keeps
    /// none, and then an inode number reused at once can pass for the claimed file).
    Inode(u64, u64, Option<std::time::SystemTime>),
}

static OPEN_FILES: LazyLock<Mutex<HashMap<FileKey, Holders>>> = LazyLock::new(|| Mutex::new(HashMap::new()));

/// This process's claim on a database file; released when dropped.
#[derive(Debug)]
pub(crate) struct FileClaim {
    keys: Vec<FileKey>,
    read_only: bool,
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
    let keys: Vec<FileKey> = std::iter::once(FileKey::Path(identity(path)))
        .chain(inode(path))
        .collect();
    let mut open = OPEN_FILES.lock();
    if let Some(held) = keys.iter().find_map(|key| conflict(&open, key, read_only)) {
        return Err(already_open(op, path, held));
    }
    for key in &keys {
        hold(&mut open, key.clone(), read_only);
    }
    Ok(Some(FileClaim { keys, read_only }))
}

impl FileClaim {
    /// Adds the file's inode to the claim once the open has created the file, so a hard link
    /// made afterwards is recognised too. Should another claim have taken the new file through
    /// a link in the moment between, this open gives way (its connection is dropped).
    pub(crate) fn cover_created_file(&mut self, op: &'static str, path: &Path) -> Result<()> {
        let Some(key) = inode(path) else { return Ok(()) };
        if self.keys.contains(&key) {
            return Ok(());
        }
        let mut open = OPEN_FILES.lock();
        if let Some(held) = conflict(&open, &key, self.read_only) {
            return Err(already_open(op, path, held));
        }
        hold(&mut open, key.clone(), self.read_only);
        self.keys.push(key);
        Ok(())
    }
}

/// How `key` is held, if that conflicts with a new opener (`read_only` or not).
fn conflict(open: &HashMap<FileKey, Holders>, key: &FileKey, read_only: bool) -> Option<&'static str> {
    match (open.get(key)?, read_only) {
        (Holders::Readers(_), true) => None,
        (Holders::Readers(_), false) => Some("read-only"),
        (Holders::Writer, _) => Some("read-write"),
    }
}

fn hold(open: &mut HashMap<FileKey, Holders>, key: FileKey, read_only: bool) {
    match open.get_mut(&key) {
        Some(Holders::Readers(n)) => *n += 1,
        _ => {
            open.insert(
                key,
                if read_only {
                    Holders::Readers(1)
                } else {
                    Holders::Writer
                },
            );
        }
    }
}

fn already_open(op: &'static str, path: &Path, held: &str) -> Error {
    let hint = if held == "read-write" {
        "use that Analytics handle, or close it first"
    } else {
        "close the read-only handles first"
    };
    let message = format!(
        "{} is already open {held} {}, and DuckDB allows one read-write opener or any number of \
         read-only ones per file; {hint}",
        path.display(),
        crate::error::OPEN_IN_THIS_PROCESS
    );
    super::open_refused(op, path, duckdb::ffi::ErrorCode::DatabaseBusy, message)
}

/// Whether `path` is a database file this process has open (under any name).
pub(crate) fn is_open(path: &Path) -> bool {
    let (by_path, by_inode) = (FileKey::Path(identity(path)), inode(path));
    let open = OPEN_FILES.lock();
    open.contains_key(&by_path) || by_inode.is_some_and(|key| open.contains_key(&key))
}

#[cfg(unix)]
fn inode(path: &Path) -> Option<FileKey> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path)
        .ok()
        .map(|m| FileKey::Inode(m.dev(), m.ino(), m.created().ok()))
}

#[cfg(not(unix))]
fn inode(_path: &Path) -> Option<FileKey> {
    None
}

impl Drop for FileClaim {
    fn drop(&mut self) {
        let mut open = OPEN_FILES.lock();
        for key in &self.keys {
            if let Some(Holders::Readers(n)) = open.get_mut(key)
                && *n > 1
            {
                *n -= 1;
                continue;
            }
            open.remove(key);
        }
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

#[cfg(all(test, unix))]
mod tests {
    use super::{claim, is_open};

    /// A claim whose file is gone (its inode freed while the claim is still held, as when a
    /// database is closed after its directory was deleted) does not make the next file given
    /// that inode number pass for an open database, nor refuse opening it.
    #[test]
    fn a_new_file_reusing_the_inode_number_of_a_claimed_gone_file_is_not_open() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("gone.duckdb");
        std::fs::write(&gone, b"x").unwrap();
        let meta = std::fs::metadata(&gone).unwrap();
        if meta.created().is_err() {
            eprintln!("skipped: this file system records no birth times");
            return;
        }
        let held = claim("test", &gone, false).unwrap();
        // Birth times may be as coarse as a scheduler tick: the new file is born a tick later,
        // as any real database is born long before a file that reuses its inode.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::remove_file(&gone).unwrap();
        // ext4 gives a freed inode number to the next file created beside it; tmpfs never
        // reuses numbers this soon, and then there is nothing to check.
        let reused = (0..1_000).find_map(|i| {
            let path = dir.path().join(format!("new{i}.csv"));
            std::fs::write(&path, b"a\n1\n").unwrap();
            (std::fs::metadata(&path).unwrap().ino() == meta.ino()).then_some(path)
        });
        let Some(reused) = reused else {
            eprintln!("skipped: the file system did not reuse inode {}", meta.ino());
            return;
        };
        assert!(!is_open(&reused), "a new file is not the claimed database");
        let fresh = claim("test", &reused, false).unwrap();
        drop(held);
        // The stale claim's release leaves the new claim in force.
        assert!(is_open(&reused));
        drop(fresh);
        assert!(!is_open(&reused));
    }

    #[test]
    fn a_hard_link_to_a_claimed_file_is_open() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("db.duckdb");
        std::fs::write(&file, b"x").unwrap();
        let _held = claim("test", &file, false).unwrap();
        let link = dir.path().join("link.duckdb");
        std::fs::hard_link(&file, &link).unwrap();
        assert!(is_open(&link));
        assert!(claim("test", &link, true).is_err());
    }
}
