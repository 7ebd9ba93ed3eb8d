//! The files an import reads and an export writes: a path DuckDB reads literally (no glob
//! expansion), the export's parent directory, and the staging file an export renames over its
//! target when it is complete (with the clean-up of staging files a killed process left).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};

/// A path DuckDB reads (or writes) as exactly that file. DuckDB expands glob patterns (`*`, `?`,
/// `[…]`) in the paths it reads, so a file whose name holds them is read through a symlink
/// with a plain name in a private temporary directory (removed on drop; see also
/// [`LiteralPath::partitioned_write_dir`]). A leading `~` needs
/// no link: [`super::sql::path_literal`] hands DuckDB such a path in absolute form.
pub(crate) struct LiteralPath {
    path: PathBuf,
    link_dir: Option<PathBuf>,
}

/// The characters DuckDB treats as a glob pattern in a path it reads.
const GLOB_CHARS: [char; 4] = ['*', '?', '[', ']'];

/// A name unique to this call: process id plus a per-process counter.
pub(crate) fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

impl LiteralPath {
    pub(crate) fn new(op: &'static str, path: &Path) -> Result<LiteralPath> {
        let text = path.to_string_lossy();
        if !text.contains(GLOB_CHARS) {
            return Ok(LiteralPath {
                path: path.to_path_buf(),
                link_dir: None,
            });
        }
        // Keep the extensions after the last glob character (`x[1].csv.gz` → `.csv.gz`):
        // DuckDB picks the compression from them.
        let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
        let plain_tail = name.rfind(GLOB_CHARS).map_or(&name[..], |i| &name[i + 1..]);
        let extension = plain_tail.find('.').map_or("", |i| &plain_tail[i..]);
        Self::linked(op, path, &format!("data{extension}"))
    }

    /// A directory DuckDB's partitioned `COPY` writes into as exactly that directory. On Unix
    /// its writer takes `\` for a path separator when it creates the partition directories (a
    /// split into `out\x` failed: "Failed to create directory out/x/k=1"), so a directory whose
    /// path holds one is written through a link with a plain name.
    pub(crate) fn partitioned_write_dir(op: &'static str, dir: &Path) -> Result<LiteralPath> {
        if cfg!(unix) && dir.to_string_lossy().contains('\\') {
            // A retry removes the staging directory before it writes again, and the link needs
            // its target to exist (DuckDB would create it).
            std::fs::create_dir_all(dir).map_err(|source| Error::Io {
                op,
                path: Some(dir.to_path_buf()),
                source,
            })?;
            return Self::linked(op, dir, "write");
        }
        Ok(LiteralPath {
            path: dir.to_path_buf(),
            link_dir: None,
        })
    }

    #[cfg(unix)]
    fn linked(op: &'static str, path: &Path, link_name: &str) -> Result<LiteralPath> {
        let io = |source, at: &Path| Error::Io {
            op,
            path: Some(at.to_path_buf()),
            source,
        };
        let target = std::fs::canonicalize(path).map_err(|e| io(e, path))?;
        // The random part: a dead process that had this pid (pid 1 of a restarted container
        // keeping its /tmp) may have left the same pid and counter behind.
        let dir = std::env::temp_dir().join(format!("{}-{}", unique_name(".store-read"), random_hex()));
        std::fs::create_dir(&dir).map_err(|e| io(e, &dir))?;
        let link = dir.join(link_name);
        let guard = LiteralPath {
            path: link.clone(),
            link_dir: Some(dir),
        };
        std::os::unix::fs::symlink(&target, &link).map_err(|e| io(e, &link))?;
        Ok(guard)
    }

    #[cfg(not(unix))]
    fn linked(op: &'static str, path: &Path, _link_name: &str) -> Result<LiteralPath> {
        Err(Error::invalid(
            op,
            "path",
            format!(
                "{} holds glob characters (* ? [ ]) or starts with ~, which DuckDB would expand; rename the file",
                path.display()
            ),
        ))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for LiteralPath {
    fn drop(&mut self) {
        if let Some(dir) = &self.link_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Creates `path`'s missing parent directories. The directories it created are removed again
/// (deepest first, each only while empty) when the returned guard drops, unless
/// [`CreatedDirs::keep`] is called: an export that fails leaves no empty folders behind.
pub(crate) fn ensure_parent(op: &'static str, path: &Path) -> Result<CreatedDirs> {
    let mut created = CreatedDirs::default();
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        // Only ancestors that name a directory of their own (`a/..` names `a`'s parent).
        created.0 = parent
            .ancestors()
            .filter(|a| !a.as_os_str().is_empty())
            .take_while(|a| std::fs::symlink_metadata(a).is_err())
            .filter(|a| a.file_name().is_some())
            .map(Path::to_path_buf)
            .collect();
        std::fs::create_dir_all(parent).map_err(|source| {
            // "File exists" / "Not a directory" alone leave the user guessing which file.
            let in_the_way = parent
                .ancestors()
                .find(|a| !a.as_os_str().is_empty() && a.exists() && !a.is_dir());
            match in_the_way {
                Some(file) => Error::Io {
                    op,
                    path: Some(file.to_path_buf()),
                    source: std::io::Error::new(
                        source.kind(),
                        "this is a file where the path needs a directory; choose another path \
                         or move the file",
                    ),
                },
                None => Error::Io {
                    op,
                    path: Some(parent.to_path_buf()),
                    source,
                },
            }
        })?;
    }
    Ok(created)
}

/// The directories [`ensure_parent`] created, deepest first; removed on drop unless kept.
#[derive(Default)]
pub(crate) struct CreatedDirs(Vec<PathBuf>);

impl CreatedDirs {
    /// The work succeeded: the directories stay.
    pub(crate) fn keep(mut self) {
        self.0.clear();
    }
}

impl Drop for CreatedDirs {
    fn drop(&mut self) {
        // `remove_dir` refuses a directory that is not empty: whatever someone else put there
        // meanwhile stays, and so do the directories above it. Other failures (one that was
        // never created, a name too long) leave the rest to try.
        for dir in &self.0 {
            if let Err(e) = std::fs::remove_dir(dir)
                && e.kind() == std::io::ErrorKind::DirectoryNotEmpty
            {
                break;
            }
        }
    }
}

/// Marks an export's staging file: `<name>.store-export-<pid>-<n>-<random>.tmp`.
const STAGING_MARK: &str = "store-export-";

/// How long a dead process's staging file must have been left untouched before an export
/// removes it (a live writer in another PID namespace keeps its file's mtime fresh).
const STALE_STAGING_AGE: Duration = Duration::from_secs(600);

/// The staging file of one export to `path`: `<path>.store-export-<pid>-<n>-<random>.tmp` (or
/// `.store-export-…` for a name near the length limit), unique to this call, so exports to
/// the same path at once (threads, handles or processes) never write into one file: each
/// renames its own complete file over `path`, and the last rename wins. The random part keeps
/// processes apart that share a pid, as the first process of two containers writing to one
/// volume do (both pid 1). (An export killed midway leaves its staging file; on Linux a later
/// export into the directory removes it once it is stale: see [`remove_stale_staging`].)
pub(super) fn tmp_path(path: &Path) -> std::path::PathBuf {
    static EXPORTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = EXPORTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let unique = format!("{STAGING_MARK}{}-{n}-{}.tmp", std::process::id(), random_hex());
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".");
    name.push(&unique);
    // A target name near the file system's 255-byte limit leaves no room for the suffix.
    if name.len() > 255 {
        name = format!(".{unique}").into();
    }
    path.with_file_name(name)
}

/// The staging files of exports running in this process. A staging file named with this
/// process's pid that is not among them was left by a dead process that had the same pid
/// (pid 1 of a container that restarted), and may be cleaned up like any other.
static LIVE_STAGING: std::sync::LazyLock<parking_lot::Mutex<std::collections::HashSet<std::ffi::OsString>>> =
    std::sync::LazyLock::new(Default::default);

/// An export's staging file, registered as live until dropped.
pub(super) struct LiveStaging(std::ffi::OsString);

impl LiveStaging {
    pub(super) fn register(tmp: &Path) -> LiveStaging {
        let name = tmp.file_name().unwrap_or_default().to_os_string();
        LIVE_STAGING.lock().insert(name.clone());
        LiveStaging(name)
    }
}

impl Drop for LiveStaging {
    fn drop(&mut self) {
        LIVE_STAGING.lock().remove(&self.0);
    }
}

/// 16 random hex digits for names that must not meet a dead process's that had this pid:
/// std's randomly keyed hasher (fresh keys per call), mixed with the time.
fn random_hex() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut random = std::hash::RandomState::new().build_hasher();
    random.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    format!("{:016x}", random.finish())
}

/// The part of a staging name after `<pid>-`: `<n>-<16 hex digits>`, or `<n>` as names were
/// before the random part.
fn is_staging_suffix(rest: &str) -> bool {
    let (n, random) = rest.split_once('-').unwrap_or((rest, "0000000000000000"));
    !n.is_empty()
        && n.bytes().all(|b| b.is_ascii_digit())
        && random.len() == 16
        && random.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Removes the staging files that exports into `path`'s directory left when their process died
/// (killed midway): files named by [`tmp_path`] for `path` (or with the short name), whose
/// process no longer runs and which nobody has written for [`STALE_STAGING_AGE`]. Linux only
/// (it asks `/proc`); elsewhere they stay for the user to delete.
pub(super) fn remove_stale_staging(path: &Path) {
    if !cfg!(target_os = "linux") || !Path::new("/proc/self").exists() {
        return;
    }
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return;
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let ours = format!("{name}.{STAGING_MARK}");
    let short = format!(".{STAGING_MARK}");
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(staged) = file_name.to_str() else {
            continue;
        };
        let Some(pid) = staged
            .strip_prefix(ours.as_str())
            .or_else(|| staged.strip_prefix(short.as_str()))
            .and_then(|rest| rest.strip_suffix(".tmp"))
            .and_then(|rest| rest.split_once('-'))
            .filter(|(_, rest)| is_staging_suffix(rest))
            .and_then(|(pid, _)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        let untouched = entry
            .metadata()
            .ok()
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age >= STALE_STAGING_AGE);
        // A file with this process's pid is dead unless one of its exports is writing it (the
        // pid is another, earlier process's); any other pid is dead once it no longer runs.
        let dead = if pid == std::process::id() {
            !LIVE_STAGING.lock().contains(&file_name)
        } else {
            !Path::new("/proc").join(pid.to_string()).exists()
        };
        if untouched && dead {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Checks that `path` is a regular file this process may read, before DuckDB is handed it:
/// `Missing` only when nothing is there, `Io` with the operating system's reason when it
/// cannot be looked at or read (permission denied, a loop of symbolic links), and
/// `InvalidInput` for a directory, pipe or device. DuckDB's own errors for these quote the SQL
/// the store built, and `Path::is_file` would call all of them missing.
pub(crate) fn require_readable_file(op: &'static str, path: &Path) -> Result<()> {
    let io = |source| Error::Io {
        op,
        path: Some(path.to_path_buf()),
        source,
    };
    match std::fs::metadata(path) {
        // A file this process has open is not opened again to check it: closing that
        // descriptor would drop the process's locks on it (see `held_open_here`).
        Ok(meta) if meta.is_file() && held_open_here(path) => Ok(()),
        Ok(meta) if meta.is_file() => std::fs::File::open(path).map(drop).map_err(io),
        Ok(_) => Err(Error::invalid(
            op,
            "path",
            format!(
                "{} is not a regular file (a directory, pipe or device); name the file to read",
                path.display()
            ),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::Missing {
            op,
            kind: "file",
            name: path.display().to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => Err(Error::invalid(
            op,
            "path",
            format!(
                "{} cannot exist: a directory in its path is a file; check the path",
                path.display()
            ),
        )),
        Err(e) => Err(io(e)),
    }
}

/// Refuses a directory `dir` (an export's parent, a split export's `out_dir`) that is, or lies
/// under, a symbolic link to a directory that does not exist. Creating it would otherwise fail
/// with a bare "File exists" (the link is there, the directory it names is not), which tells
/// the user nothing; the link's target is not created either, as `mkdir -p` does not create it.
pub(crate) fn refuse_dangling_link(op: &'static str, field: &'static str, dir: &Path) -> Result<()> {
    for path in dir.ancestors().filter(|p| !p.as_os_str().is_empty()) {
        let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
        let dangling = matches!(std::fs::metadata(path), Err(e) if e.kind() == std::io::ErrorKind::NotFound);
        if is_link && dangling {
            let target = std::fs::read_link(path).unwrap_or_default();
            return Err(Error::invalid(
                op,
                field,
                format!(
                    "{} is a symbolic link to {}, which does not exist; create that directory, \
                     point the link at an existing one, or pass another path (nothing was written)",
                    path.display(),
                    target.display()
                ),
            ));
        }
    }
    Ok(())
}

/// The file an export to `path` replaces: `path` itself, or, when `path` is a symbolic link,
/// the file the chain of links ends at (which may not exist yet), so the export writes through
/// the link as a shell redirection would and the link stays. An existing target that is not a
/// regular file (a device such as `/dev/null`, a FIFO, a socket) is refused: the export
/// renames a finished file into place, which would replace the node itself (as root, a
/// `/dev/null` replaced by a Parquet file breaks the whole machine).
pub(super) fn export_target(op: &'static str, path: &Path) -> Result<PathBuf> {
    use std::io::ErrorKind;
    // Linux's own limit on links followed while resolving one path.
    const MAX_LINKS: usize = 40;
    let mut target = path.to_path_buf();
    for _ in 0..=MAX_LINKS {
        let meta = match std::fs::symlink_metadata(&target) {
            Ok(meta) => meta,
            // Nothing there (yet): the export creates it, or says which part of the path is
            // a file where a directory must be.
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
                return Ok(target);
            }
            Err(source) => {
                return Err(Error::Io {
                    op,
                    path: Some(target),
                    source,
                });
            }
        };
        let kind = meta.file_type();
        if kind.is_symlink() {
            if is_descriptor_link(&target) {
                return Err(Error::invalid(
                    op,
                    "path",
                    format!(
                        "{} leads to an open file descriptor ({}), such as /dev/stdout: an \
                         export writes a new file and renames it into place, which would replace \
                         the file behind the descriptor or fail; export to a file path",
                        path.display(),
                        target.display()
                    ),
                ));
            }
            let link = std::fs::read_link(&target).map_err(|source| Error::Io {
                op,
                path: Some(target.clone()),
                source,
            })?;
            // A relative link is relative to the directory holding it.
            target = match target.parent() {
                Some(dir) if link.is_relative() => dir.join(link),
                _ => link,
            };
            continue;
        }
        if kind.is_file() || kind.is_dir() {
            // A directory is refused by the caller, with the file name to use instead.
            return Ok(target);
        }
        let what = special_file_kind(&kind);
        let through = if target == path {
            String::new()
        } else {
            format!(" (the link {} leads there)", path.display())
        };
        return Err(Error::invalid(
            op,
            "path",
            format!(
                "{} is {what}{through}, not a regular file: an export writes a new file and \
                 renames it into place, which would replace it; export to a file path",
                target.display()
            ),
        ));
    }
    Err(Error::invalid(
        op,
        "path",
        format!(
            "{} is a chain of more than {MAX_LINKS} symbolic links (a loop?); export to a file path",
            path.display()
        ),
    ))
}

/// Whether `link` is one of the kernel's links to an open descriptor (`/proc/<pid>/fd/<n>`,
/// `/dev/fd/<n>`, which `/dev/stdout` and the like lead to), however the path to it is spelt
/// (its directory is resolved: through another link, or relative). Their text names the file
/// behind the descriptor (or `pipe:[…]`), and renaming over that name would replace a file
/// someone is appending to, such as the log a job's output is redirected to.
fn is_descriptor_link(link: &Path) -> bool {
    let dir = match link.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::canonicalize(dir)
        .is_ok_and(|dir| dir.starts_with("/proc") && dir.file_name().is_some_and(|n| n == "fd"))
}

fn special_file_kind(kind: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_char_device() {
            return "a character device";
        }
        if kind.is_block_device() {
            return "a block device";
        }
        if kind.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if kind.is_socket() {
            return "a socket";
        }
    }
    let _ = kind;
    "a special file"
}

/// Refuses to export over a database: a file this process has open as one (a Parquet file
/// renamed over it would destroy it, and every later write to the open handle would be lost),
/// any DuckDB or SQLite database file, which no export means to replace, or the write-ahead log
/// or journal beside one (replacing it corrupts the database).
pub(super) fn refuse_database_target(op: &'static str, path: &Path) -> Result<()> {
    const LOG_SUFFIXES: [&str; 4] = [".wal", "-wal", "-shm", "-journal"];
    let refuse = |what: &str| {
        Err(Error::invalid(
            op,
            "path",
            format!(
                "{} is {what}, which the Parquet file would replace; export to another path",
                path.display()
            ),
        ))
    };
    if let Some(what) = database_kind(path) {
        return refuse(what);
    }
    let name = path.as_os_str().to_string_lossy();
    for suffix in LOG_SUFFIXES {
        if let Some(database) = name.strip_suffix(suffix)
            && let Some(what) = database_kind(Path::new(database))
        {
            return refuse(&format!("the {suffix} file of {what} at {database}"));
        }
    }
    Ok(())
}

/// What database `path` is, if it is one: open in this process, or a DuckDB or SQLite file.
fn database_kind(path: &Path) -> Option<&'static str> {
    if super::claims::is_open(path) {
        return Some("a DuckDB database open in this process");
    }
    let Some(head) = file_head(path, 16) else {
        // Locked here, so not read: a database open in this process (the KV store's file).
        return Some("a database open in this process (it holds locks on the file)");
    };
    if is_duckdb_header(&head) {
        Some("a DuckDB database")
    } else if head.starts_with(b"SQLite format 3\0") {
        Some("a SQLite database")
    } else {
        None
    }
}

/// The first `len` bytes of a regular file (all of a shorter one); empty for anything else, or
/// a file that cannot be read. Only regular files: opening a FIFO to look would block. `None`
/// for a file this process holds locks on ([`held_open_here`]), which is not read.
pub(super) fn file_head(path: &Path, len: u64) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut head = Vec::new();
    if !path.is_file() {
        return Some(head);
    }
    if held_open_here(path) {
        return None;
    }
    if let Ok(file) = std::fs::File::open(path)
        && file.take(len).read_to_end(&mut head).is_err()
    {
        head.clear();
    }
    Some(head)
}

/// Whether this process holds POSIX (`fcntl`) locks on the file at `path`: a DuckDB database
/// it opened, or (on Linux, read from `/proc/locks`) any file on which a lock of this process
/// is listed, such as a SQLite database a connection of this process has open. Such a file
/// must not be opened and closed to look at it: closing *any* descriptor of a file drops every
/// POSIX lock the process holds on it, and those locks are what keep other processes out of a
/// DuckDB database and what SQLite relies on. A file the process merely has open (a
/// `NamedTempFile` the caller holds) has no such locks, and is read as any other.
pub(crate) fn held_open_here(path: &Path) -> bool {
    if super::claims::is_open(path) {
        return true;
    }
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::MetadataExt;
        let Ok(target) = std::fs::metadata(path) else {
            return false;
        };
        // A cheap first look: some process's POSIX lock on an inode of this number
        // (`1: POSIX  ADVISORY  READ 4154 fe:00:1835061 128 128`; a waiter's line has `->`).
        let inode = target.ino().to_string();
        // Unreadable (a restricted sandbox), the look is skipped and the exact answer decides.
        let any_lock = std::fs::read_to_string("/proc/locks").map_or(true, |locks| {
            locks.lines().any(|line| {
                let fields: Vec<&str> = line.split_whitespace().filter(|f| *f != "->").collect();
                matches!(fields.as_slice(), [_, "POSIX", _, _, _, file, ..]
                    if file.rsplit(':').next() == Some(inode.as_str()))
            })
        });
        if !any_lock {
            return false;
        }
        // Then the exact answer: a descriptor of this process on this very file (device and
        // inode) whose `fdinfo` lists a POSIX lock, which the kernel shows only for locks of
        // this process on that file. Pids and device numbers need no translating this way.
        // Unreadable, the answer is "locked": reopening a locked file is the harm.
        let Ok(fds) = std::fs::read_dir("/proc/self/fd") else {
            return true;
        };
        fds.flatten().any(|fd| {
            std::fs::metadata(fd.path()).is_ok_and(|m| m.dev() == target.dev() && m.ino() == target.ino())
                && std::fs::read_to_string(Path::new("/proc/self/fdinfo").join(fd.file_name())).is_ok_and(
                    |info| {
                        info.lines()
                            .any(|l| l.starts_with("lock:") && l.contains(" POSIX "))
                    },
                )
        })
    }
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}

/// What database this process has open at `path`, if any: a DuckDB database it opened, or a
/// file it holds locks on (a SQLite database open here, the KV store's for one).
pub(super) fn held_database(path: &Path) -> Option<&'static str> {
    if super::claims::is_open(path) {
        Some("a DuckDB database open in this process")
    } else if held_open_here(path) {
        Some("a file this process holds locks on (a database open in this process)")
    } else {
        None
    }
}

/// Whether a file's first bytes are a DuckDB database header (its magic follows an 8-byte
/// checksum).
pub(super) fn is_duckdb_header(head: &[u8]) -> bool {
    head.get(8..12) == Some(b"DUCK".as_slice())
}
