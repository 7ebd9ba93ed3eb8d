//! Where a split export works, one export per directory at a time, and recovering from one
//! whose process died.
//!
//! The staging directory (files being written) and the set-aside directory (the previous
//! export, while the new one moves in) live *beside* `out_dir`, as `.<name>.staging-<pid>-<n>`
//! and `.<name>.replaced-<pid>-<n>`: DuckDB's `<out_dir>/**/*.parquet` glob descends into
//! hidden directories, so anything left inside `out_dir` by a killed export would join the
//! dataset (or break reading it). They go inside `out_dir` (`.staging-…`) only when beside it
//! is impossible: no parent (`.`, `/`), a name that is not UTF-8 or too long for the work
//! names, or a parent from which a directory cannot be renamed into `out_dir` — one that
//! cannot be written, or another file system *or another mount of the same one*. That last
//! test is an actual rename (see [`moves_in`]), not a comparison of device numbers: a bind
//! mount (a container volume, `-v host:/data`) has its source's device number, yet
//! rename(2) between two mounts fails with `EXDEV`, so publishing would fail.
//!
//! An export holds an exclusive lock (`.<name>.split.lock`, or `.split.lock` inside; removed
//! when released) from its recovery step to the end of its publish, so exports into one
//! directory take turns, and every work directory found while holding it belongs to an export
//! that died.
//!
//! Publishing marks its progress in the set-aside directory: [`MOVING_IN`] (holding the
//! column's directory prefix) once every earlier partition is aside and new ones start moving
//! in, [`COMMITTED`] once the new manifest is in place. Recovery removes dead staging, and
//! finishes (committed) or rolls back (otherwise) a dead publish. Every step keeps the markers
//! meaningful if it is itself cut short: rolling back removes the new partitions and then the
//! marker before the previous export comes back, and discarding removes the markers last.
//! The previous `manifest.json` is the first thing set aside and comes back last, and the new
//! one is written last: a manifest in `out_dir` always lists the partitions beside it.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{MANIFEST, holds_only_split_files};
use crate::analytics::paths::unique_name;
use crate::error::{Error, Result};

/// Marker: every earlier partition is aside; new ones are moving in (content: `<column>=`).
pub(super) const MOVING_IN: &str = ".moving-in";
/// Marker: the new manifest is in place; the export is complete.
pub(super) const COMMITTED: &str = ".committed";
/// The previous manifest while an earlier version of this crate copied it aside (that version
/// left the manifest in place during a publish); recovery drops such a partial copy, never
/// putting it back over the intact one.
pub(super) const MANIFEST_COPY: &str = ".manifest-copy";

/// Longest suffix `unique_name` adds to a work directory's kind: `-<u32>-<u64>`.
const UNIQUE_SUFFIX_BYTES: usize = 1 + 10 + 1 + 20;

/// A split export's private directories, and its hold on the directory's export lock.
pub(super) struct WorkDirs {
    /// Where the files are written (created by [`WorkDirs::acquire`]).
    pub staging: PathBuf,
    /// Where the previous export is set aside while the new one moves in (created later).
    pub aside: PathBuf,
    /// Released (and its file removed) on drop, after the caller removed `staging`.
    lock: Option<(File, PathBuf)>,
}

impl Drop for WorkDirs {
    fn drop(&mut self) {
        // Removed while still held: a waiter then finds its file unlinked and starts over on
        // a new one (see `lock_file`), so the lock leaves nothing behind.
        if let Some((file, path)) = self.lock.take() {
            let _ = std::fs::remove_file(&path);
            drop(file);
        }
    }
}

impl WorkDirs {
    /// Removes the lock's file while keeping the lock (released on drop): a waiter then finds
    /// it gone and starts over on a new file, making its directory again if it went too.
    pub(super) fn unlink_lock(&self) {
        if let Some((_, path)) = &self.lock {
            let _ = std::fs::remove_file(path);
        }
    }

    /// Takes `out_dir`'s export lock (waiting while another export into it runs), puts right
    /// what dead exports left, and creates the staging directory.
    pub(super) fn acquire(op: &'static str, out_dir: &Path, wait: Option<Duration>) -> Result<WorkDirs> {
        let io = |source, path: &Path| Error::Io {
            op,
            path: Some(path.to_path_buf()),
            source,
        };
        let (place, prefix) = placement(out_dir);
        let lock_path = place.join(format!("{prefix}split.lock"));
        let lock = lock_file(&lock_path, wait).map_err(|e| {
            if e.kind() == std::io::ErrorKind::WouldBlock {
                return running_elsewhere(op, out_dir, &lock_path, wait);
            }
            if prefix == "." {
                // Inside `out_dir` (beside it was not possible): the lock is the first thing
                // written there, so its failure (a read-only mount, no permission) is really
                // "cannot write into out_dir"; name the directory, not the lock file.
                let reason = format!("{e}; a split export cannot write its lock file into this directory");
                io(std::io::Error::new(e.kind(), reason), &place)
            } else {
                io(e, &lock_path)
            }
        })?;
        let mut work = WorkDirs {
            staging: place.join(unique_name(&format!("{prefix}staging"))),
            aside: place.join(unique_name(&format!("{prefix}replaced"))),
            lock: Some((lock, lock_path)),
        };
        recover(op, out_dir, &place, &prefix)?;
        if let Err(e) = std::fs::create_dir(&work.staging) {
            return Err(io(e, &std::mem::take(&mut work.staging)));
        }
        Ok(work)
    }
}

/// Where `out_dir`'s lock and work directories go, and their names' prefix: beside it, or
/// inside it when that is impossible. They go by where the directory really is, so exports
/// naming it through a symlink or a `..` detour take turns with the others too.
fn placement(out_dir: &Path) -> (PathBuf, String) {
    let out_dir = resolved(out_dir);
    beside(&out_dir).unwrap_or_else(|| (out_dir, ".".into()))
}

/// `out_dir` with symlinks and `..` resolved: the directory itself if it exists, else its
/// parent's resolved path joined with its name; as given when neither exists.
fn resolved(out_dir: &Path) -> PathBuf {
    if let Ok(real) = std::fs::canonicalize(out_dir) {
        return real;
    }
    let parent = match out_dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    match (std::fs::canonicalize(parent), out_dir.file_name()) {
        (Ok(real), Some(name)) => real.join(name),
        _ => out_dir.to_path_buf(),
    }
}

fn open_lock(path: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
}

/// The busy error of an export that waited `wait` for another export into `out_dir`.
fn running_elsewhere(op: &'static str, out_dir: &Path, lock_path: &Path, wait: Option<Duration>) -> Error {
    let waited = wait.map_or_else(String::new, |w| format!(" after {} ms", w.as_millis()));
    let mut failure = duckdb::ffi::Error::new(duckdb::ffi::duckdb_state_DuckDBError);
    failure.code = duckdb::ffi::ErrorCode::DatabaseBusy;
    let message = format!(
        "{}{waited} ({} holds its lock: {})",
        crate::error::SPLIT_EXPORT_RUNNING,
        out_dir.display(),
        lock_path.display()
    );
    Error::duckdb(
        op,
        "wait for the export directory",
        duckdb::Error::DuckDBFailure(failure, Some(message)),
    )
}

/// Creates and locks the file at `path`, waiting while another export holds it: as long as it
/// takes (`wait` `None`), or up to `wait`, then `WouldBlock`. A holder removes the file before
/// releasing it, so a lock taken on a file no longer at `path` is dropped and taken again on
/// the current one.
fn lock_file(path: &Path, wait: Option<Duration>) -> std::io::Result<File> {
    let deadline = wait.map(|w| std::time::Instant::now() + w);
    let mut waited = false;
    loop {
        let file = match open_lock(path) {
            // The export that held the lock failed and removed the directory it had made
            // (see `WorkDirs::unlink_lock`): make it again.
            Err(e) if waited && e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                open_lock(path)?
            }
            other => other?,
        };
        match deadline {
            None => file.lock()?,
            Some(deadline) => loop {
                match file.try_lock() {
                    Ok(()) => break,
                    Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    Err(std::fs::TryLockError::WouldBlock) => {
                        return Err(std::io::ErrorKind::WouldBlock.into());
                    }
                    Err(std::fs::TryLockError::Error(e)) => return Err(e),
                }
            },
        }
        if still_at(&file, path) {
            return Ok(file);
        }
        waited = true;
    }
}

#[cfg(unix)]
fn still_at(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(held), Ok(current)) => held.dev() == current.dev() && held.ino() == current.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn still_at(_: &File, path: &Path) -> bool {
    path.exists()
}

/// `out_dir`'s parent and the work names' prefix there, when work directories can live beside
/// `out_dir` (see the module docs).
fn beside(out_dir: &Path) -> Option<(PathBuf, String)> {
    let name = out_dir.file_name()?.to_str()?;
    let prefix = format!(".{name}.");
    if prefix.len() + "replaced".len() + UNIQUE_SUFFIX_BYTES > 255 {
        return None;
    }
    let parent = match out_dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !moves_in(&parent, &prefix, out_dir) {
        return None;
    }
    Some((parent, prefix))
}

/// Whether a directory created in `dir` can be renamed into `out_dir`, which is what staging
/// and setting aside beside `out_dir` need (publishing renames both ways between the two).
/// Tried, because nothing else tells: permission bits do not for root, and device numbers do
/// not for a bind mount (same `st_dev`, yet `EXDEV`). The probe is created as
/// `<prefix>probe-<pid>-<n>` in `dir`, renamed to `.probe-<pid>-<n>` in `out_dir` and removed;
/// recovery removes either name, empty, should a kill leave it (and an empty directory adds
/// nothing to the dataset meanwhile).
///
/// A probe name already taken (left by a killed process that had the same pid, as in a
/// container), or a probe removed under us by a concurrent export's recovery, is no answer:
/// the next name is tried, so a leftover or a race never moves the export lock inside
/// `out_dir` while other exports lock beside it.
fn moves_in(dir: &Path, prefix: &str, out_dir: &Path) -> bool {
    use std::io::ErrorKind;
    for _ in 0..16 {
        let probe = dir.join(unique_name(&format!("{prefix}probe")));
        match std::fs::create_dir(&probe) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(_) => return false,
        }
        let inside = out_dir.join(unique_name(".probe"));
        match std::fs::rename(&probe, &inside) {
            Ok(()) => {
                let _ = std::fs::remove_dir(&inside);
                return true;
            }
            Err(e) => {
                let _ = std::fs::remove_dir(&probe);
                match e.kind() {
                    // A leftover of that name inside holding something: try another.
                    ErrorKind::AlreadyExists | ErrorKind::DirectoryNotEmpty => {}
                    // The probe vanished (a concurrent recovery took it): try again, unless
                    // it is `out_dir` that is missing.
                    ErrorKind::NotFound if out_dir.is_dir() => {}
                    // `EXDEV` (another file system or mount), `EROFS`, `EACCES`, …
                    _ => return false,
                }
            }
        }
    }
    false
}

/// Puts right what dead split exports into `out_dir` left in `place` (and, from versions that
/// staged there, inside `out_dir`). Runs under the export lock, so nothing found is in use.
fn recover(op: &'static str, out_dir: &Path, place: &Path, prefix: &str) -> Result<()> {
    let mut places = vec![(place.to_path_buf(), prefix.to_string())];
    if place != out_dir {
        places.push((out_dir.to_path_buf(), ".".to_string()));
    }
    for (dir, prefix) in places {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(kind) = name.to_str().and_then(|n| n.strip_prefix(prefix.as_str())) else {
                continue;
            };
            let path = entry.path();
            if work_name(kind, "staging") {
                // Leftover files cannot join the dataset from beside it; log and go on.
                if let Err(e) = std::fs::remove_dir_all(&path) {
                    log::warn!(
                        "store: {op}: remove a dead export's staging {}: {e}",
                        path.display()
                    );
                }
            } else if work_name(kind, "probe") {
                // Empty, from a write test cut short; one that is not empty is not ours.
                let _ = std::fs::remove_dir(&path);
            } else if work_name(kind, "replaced") {
                restore(out_dir, &path).map_err(|source| Error::Io {
                    op,
                    path: Some(path.clone()),
                    source,
                })?;
            }
        }
    }
    Ok(())
}

/// Whether `name` is exactly `<kind>-<u32>-<u64>`, as `unique_name` makes them.
fn work_name(name: &str, kind: &str) -> bool {
    let Some(rest) = name.strip_prefix(kind).and_then(|r| r.strip_prefix('-')) else {
        return false;
    };
    let Some((pid, n)) = rest.split_once('-') else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(pid) && digits(n) && pid.parse::<u32>().is_ok() && n.parse::<u64>().is_ok()
}

/// Finishes (committed) or rolls back the dead publish whose set-aside directory is `aside`.
fn restore(out_dir: &Path, aside: &Path) -> std::io::Result<()> {
    if aside.join(COMMITTED).exists() {
        return discard(aside);
    }
    let moving_in = aside.join(MOVING_IN);
    if let Ok(prefix) = std::fs::read_to_string(&moving_in) {
        // Every earlier partition of the column had been set aside, and so had the previous
        // manifest (or, from an earlier version of this crate, a copy of it): a manifest in
        // `out_dir` is the new one or a duplicate, and it goes first, so that no manifest lists
        // partitions that are leaving. Then each partition of the column in `out_dir` (a new
        // one), then the marker, so a restore cut short is redone the same way.
        remove_manifest_file(&out_dir.join(MANIFEST))?;
        for entry in std::fs::read_dir(out_dir)?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !prefix.is_empty()
                && name.starts_with(&prefix)
                && holds_only_split_files(&entry.path()).unwrap_or(false)
            {
                std::fs::remove_dir_all(entry.path())?;
            }
        }
        std::fs::remove_file(&moving_in)?;
    }
    remove_if_present(&out_dir.join(format!("{MANIFEST}.tmp")))?;
    remove_if_present(&aside.join(MANIFEST_COPY))?;
    // The manifest last, so that, present, it lists the files beside it.
    for entry in std::fs::read_dir(aside)?.flatten() {
        if entry.file_name() != MANIFEST {
            std::fs::rename(entry.path(), out_dir.join(entry.file_name()))?;
        }
    }
    // The rename itself tells whether one is there: `exists()` would follow a symlinked
    // manifest and leave a dangling one behind (and the directory with it).
    match std::fs::rename(aside.join(MANIFEST), out_dir.join(MANIFEST)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    std::fs::remove_dir(aside)
}

/// Deletes a committed publish's set-aside directory, markers last ([`MOVING_IN`] before
/// [`COMMITTED`]), so that if this is cut short the rest still reads as committed.
pub(super) fn discard(aside: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(aside)?.flatten() {
        let name = entry.file_name();
        if name == MOVING_IN || name == COMMITTED {
            continue;
        }
        if entry.file_type()?.is_dir() {
            std::fs::remove_dir_all(entry.path())?;
        } else {
            std::fs::remove_file(entry.path())?;
        }
    }
    remove_if_present(&aside.join(MOVING_IN))?;
    remove_if_present(&aside.join(COMMITTED))?;
    std::fs::remove_dir(aside)
}

/// Removes the manifest at `path` if it is a file or a link; a directory of that name is not
/// the store's and stays.
pub(super) fn remove_manifest_file(path: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if !meta.is_dir() => remove_if_present(path),
        _ => Ok(()),
    }
}

fn remove_if_present(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn only_exact_work_names_count() {
        assert!(work_name("staging-12-0", "staging"));
        assert!(work_name("replaced-4294967295-18446744073709551615", "replaced"));
        assert!(!work_name("staging-backup-2023-12", "staging"));
        assert!(!work_name("staging-12", "staging"));
        assert!(!work_name("staging-1-2-3", "staging"));
        assert!(!work_name("staging-99999999999-0", "staging"));
    }

    /// A publish that died while new partitions moved in is rolled back: the new ones and the
    /// new manifest go, the previous export comes back.
    #[test]
    fn a_publish_that_died_moving_in_is_rolled_back() {
        let root = tempfile::tempdir().unwrap();
        let out = root.path().join("out");
        let aside = root.path().join(".out.replaced-7-0");
        write(&aside.join("k=a/data.parquet"), "old a");
        write(&aside.join(MANIFEST), "old manifest");
        write(&aside.join(MOVING_IN), "k=");
        write(&out.join("k=c/data.parquet"), "new c");
        write(&out.join(MANIFEST), "new manifest");
        write(&out.join("user.txt"), "the user's");
        restore(&out, &aside).unwrap();
        assert_eq!(names(&out), ["k=a", MANIFEST, "user.txt"]);
        assert_eq!(
            std::fs::read_to_string(out.join(MANIFEST)).unwrap(),
            "old manifest"
        );
        assert_eq!(names(root.path()), ["out"]);
    }

    /// Dying while the previous export was being set aside (or after a rollback had removed
    /// the new partitions and the marker): everything aside goes back.
    #[test]
    fn a_publish_that_died_setting_aside_is_put_back() {
        let root = tempfile::tempdir().unwrap();
        let out = root.path().join("out");
        let aside = root.path().join(".out.replaced-7-0");
        write(&aside.join("k=a/data.parquet"), "old a");
        write(&out.join("k=b/data.parquet"), "old b");
        write(&out.join(MANIFEST), "old manifest");
        restore(&out, &aside).unwrap();
        assert_eq!(names(&out), ["k=a", "k=b", MANIFEST]);
        assert_eq!(names(root.path()), ["out"]);
    }

    #[cfg(unix)]
    /// A previous manifest that is a dangling symlink, set aside by a publish that died, comes
    /// back as that link (the rename moves the link, whatever it points at).
    #[test]
    fn a_dangling_symlinked_manifest_set_aside_comes_back() {
        let root = tempfile::tempdir().unwrap();
        let out = root.path().join("out");
        let aside = root.path().join(".out.replaced-7-0");
        write(&aside.join("k=a/data.parquet"), "old a");
        std::os::unix::fs::symlink(root.path().join("gone.json"), aside.join(MANIFEST)).unwrap();
        std::fs::create_dir_all(&out).unwrap();
        restore(&out, &aside).unwrap();
        assert_eq!(names(&out), ["k=a", MANIFEST]);
        let link = std::fs::symlink_metadata(out.join(MANIFEST)).unwrap();
        assert!(link.file_type().is_symlink());
        assert_eq!(names(root.path()), ["out"]);
    }

    /// Dying while the previous manifest was being copied aside: the partial copy is dropped,
    /// and the intact manifest stays (it was put back over it, empty, before).
    #[test]
    fn a_publish_that_died_copying_the_manifest_keeps_the_intact_one() {
        let root = tempfile::tempdir().unwrap();
        let out = root.path().join("out");
        let aside = root.path().join(".out.replaced-7-0");
        write(&aside.join("k=a/data.parquet"), "old a");
        write(&aside.join(MANIFEST_COPY), "");
        write(&out.join(MANIFEST), "old manifest");
        restore(&out, &aside).unwrap();
        assert_eq!(names(&out), ["k=a", MANIFEST]);
        assert_eq!(
            std::fs::read_to_string(out.join(MANIFEST)).unwrap(),
            "old manifest"
        );
        assert_eq!(names(root.path()), ["out"]);
    }

    /// A probe left by a killed process with this process's pid does not make the directory
    /// look unwritable (which would move the lock inside `out_dir`).
    #[test]
    fn a_leftover_probe_of_the_same_name_is_stepped_over() {
        let root = tempfile::tempdir().unwrap();
        // The next names this process will use, as a killed process with its pid left them.
        let next = unique_name(".out.probe");
        let n: u64 = next.rsplit('-').next().unwrap().parse().unwrap();
        for n in n + 1..n + 4 {
            let name = format!(".out.probe-{}-{n}", std::process::id());
            std::fs::create_dir(root.path().join(name)).unwrap();
        }
        let out = root.path().join("out");
        std::fs::create_dir(&out).unwrap();
        // The same for the names of the probe inside `out_dir`, one of them holding something.
        let next = unique_name(".probe");
        let n: u64 = next.rsplit('-').next().unwrap().parse().unwrap();
        for n in n + 1..n + 6 {
            write(&out.join(format!(".probe-{}-{n}/kept", std::process::id())), "x");
        }
        assert!(moves_in(root.path(), ".out.", &out));
        assert!(!moves_in(&root.path().join("missing"), ".out.", &out));
        assert!(!moves_in(root.path(), ".out.", &root.path().join("missing")));
        // Nothing of the probes is left: only the leftovers, as they were.
        assert_eq!(names(&out).len(), 5);
    }

    /// A write test cut short leaves an empty probe directory beside `out_dir`; recovery
    /// removes it (and leaves a directory of that name that holds something).
    #[test]
    fn recovery_removes_an_empty_probe_left_beside() {
        let root = tempfile::tempdir().unwrap();
        let out = root.path().join("out");
        std::fs::create_dir_all(&out).unwrap();
        std::fs::create_dir(root.path().join(".out.probe-7-0")).unwrap();
        write(&root.path().join(".out.probe-7-1/kept"), "not ours");
        recover("test", &out, root.path(), ".out.").unwrap();
        assert_eq!(names(root.path()), [".out.probe-7-1", "out"]);
    }

    /// After the new manifest was in place the export is complete: only the set-aside copy
    /// goes, also when its removal had been cut short (markers go last).
    #[test]
    fn a_committed_publish_keeps_the_new_export() {
        let root = tempfile::tempdir().unwrap();
        let out = root.path().join("out");
        let aside = root.path().join(".out.replaced-7-0");
        write(&aside.join("k=a/data.parquet"), "old a");
        write(&aside.join(MOVING_IN), "k=");
        write(&aside.join(COMMITTED), "");
        write(&out.join("k=c/data.parquet"), "new c");
        write(&out.join(MANIFEST), "new manifest");
        restore(&out, &aside).unwrap();
        assert_eq!(names(&out), ["k=c", MANIFEST]);
        assert_eq!(
            std::fs::read_to_string(out.join(MANIFEST)).unwrap(),
            "new manifest"
        );
        assert_eq!(names(root.path()), ["out"]);
    }

    /// Work directories go beside `out_dir`; taking them clears dead staging (exact names
    /// only: a user's `.staging-backup-2023-12` stays); a second export into the directory
    /// waits for the first.
    #[test]
    fn acquiring_recovers_and_exports_into_one_directory_take_turns() {
        let root = tempfile::tempdir().unwrap();
        let out = root.path().join("out");
        write(
            &root.path().join(".out.staging-7-1/k=x/data_0.parquet"),
            "partial",
        );
        write(&out.join(".staging-7-2/p0/data.parquet"), "partial");
        write(&out.join(".staging-backup-2023-12/keep"), "the user's");
        let work = WorkDirs::acquire("t", &out, None).unwrap();
        assert_eq!(work.staging.parent(), Some(root.path()));
        assert!(
            work.staging
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(".out.staging-")
        );
        assert!(
            work.aside
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(".out.replaced-")
        );
        assert!(work.staging.is_dir() && !work.aside.exists());
        assert_eq!(names(&out), [".staging-backup-2023-12"]);

        let second = {
            let out = out.clone();
            std::thread::spawn(move || WorkDirs::acquire("t", &out, None).map(|w| w.staging.clone()))
        };
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(!second.is_finished(), "a second export must wait for the first");
        std::fs::remove_dir(&work.staging).unwrap();
        drop(work);
        let staging = second.join().unwrap().unwrap();
        assert!(staging.is_dir());
        // Released, the lock leaves no file behind.
        std::fs::remove_dir(&staging).unwrap();
        assert_eq!(names(root.path()), ["out"]);
    }

    /// h129 D2: a split export waited for another one into its directory without bound, so a
    /// stalled export hung the next (and its home's analytics) whatever `--busy-timeout` said.
    /// With a wait set it gives up after it, with a busy error naming the directory.
    #[test]
    fn a_bounded_wait_for_another_export_ends_in_a_busy_error() {
        let root = tempfile::tempdir().unwrap();
        let out = root.path().join("out");
        std::fs::create_dir(&out).unwrap();
        let first = WorkDirs::acquire("t", &out, None).unwrap();
        let started = std::time::Instant::now();
        let Err(err) = WorkDirs::acquire("t", &out, Some(Duration::from_millis(300))) else {
            panic!("a second export took the lock the first holds");
        };
        let waited = started.elapsed();
        assert!(err.is_busy(), "{err}");
        assert!(
            err.to_string()
                .contains("another split export into this directory"),
            "{err}"
        );
        assert!(err.to_string().contains("retry when it ends"), "{err}");
        assert!(
            waited >= Duration::from_millis(300) && waited < Duration::from_secs(10),
            "{waited:?}"
        );
        std::fs::remove_dir(&first.staging).unwrap();
        drop(first);
        let again = WorkDirs::acquire("t", &out, Some(Duration::from_millis(300))).unwrap();
        std::fs::remove_dir(&again.staging).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn exports_naming_one_directory_two_ways_take_turns() {
        let root = tempfile::tempdir().unwrap();
        let out = root.path().join("real").join("out");
        std::fs::create_dir_all(&out).unwrap();
        std::os::unix::fs::symlink(&out, root.path().join("link")).unwrap();
        let via_link = root.path().join("link");
        let via_dots = root.path().join("real/../real/out");
        assert_eq!(placement(&via_link), placement(&out));
        assert_eq!(placement(&via_dots), placement(&out));

        let work = WorkDirs::acquire("t", &out, None).unwrap();
        let second =
            std::thread::spawn(move || WorkDirs::acquire("t", &via_link, None).map(|w| w.staging.clone()));
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(
            !second.is_finished(),
            "an export through the symlink must wait for the first"
        );
        std::fs::remove_dir(&work.staging).unwrap();
        drop(work);
        let staging = second.join().unwrap().unwrap();
        assert_eq!(staging.parent(), out.canonicalize().unwrap().parent());
    }
}
