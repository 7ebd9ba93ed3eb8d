//! Where a split export works, and recovering from one whose process died.
//!
//! The staging directory (files being written) and the set-aside directory (the previous
//! export, while the new one moves in) live *beside* `out_dir`, as `.<name>.staging-<pid>-<n>`
//! and `.<name>.replaced-<pid>-<n>`: DuckDB's `<out_dir>/**/*.parquet` glob descends into
//! hidden directories, so anything left inside `out_dir` by a killed export would join the
//! dataset (or break reading it). Only when `out_dir`'s parent is another file system (a
//! rename could not move the files) or cannot be written do they go inside `out_dir`.
//!
//! Publishing marks its progress in the set-aside directory: [`MOVING_IN`] (holding the
//! column's directory prefix) once every earlier partition is aside and new ones start moving
//! in, [`COMMITTED`] once the new manifest is in place. The next split export into `out_dir`
//! finds what a dead process left and puts things right: staging is removed; a committed
//! publish only loses its set-aside copy; any other is rolled back to the previous export.

use std::path::{Path, PathBuf};

use super::{MANIFEST, holds_only_split_files};
use crate::analytics::io::unique_name;
use crate::error::{Error, Result};

/// Marker: every earlier partition is aside; new ones are moving in (content: `<column>=`).
pub(super) const MOVING_IN: &str = ".moving-in";
/// Marker: the new manifest is in place; the export is complete.
pub(super) const COMMITTED: &str = ".committed";

/// A split export's private directories.
pub(super) struct WorkDirs {
    /// Where the files are written (created by [`WorkDirs::beside`]).
    pub staging: PathBuf,
    /// Where the previous export is set aside while the new one moves in (created later).
    pub aside: PathBuf,
}

impl WorkDirs {
    /// Work directories for an export into the existing `out_dir`: beside it if possible.
    pub(super) fn beside(op: &'static str, out_dir: &Path) -> Result<WorkDirs> {
        if let Some((dir, prefix)) = sibling_place(out_dir) {
            let staging = dir.join(unique_name(&format!("{prefix}staging")));
            if std::fs::create_dir(&staging).is_ok() {
                let aside = dir.join(unique_name(&format!("{prefix}replaced")));
                return Ok(WorkDirs { staging, aside });
            }
        }
        let staging = out_dir.join(unique_name(".staging"));
        std::fs::create_dir(&staging).map_err(|source| Error::Io {
            op,
            path: Some(staging.clone()),
            source,
        })?;
        let aside = out_dir.join(unique_name(".replaced"));
        Ok(WorkDirs { staging, aside })
    }
}

/// `out_dir`'s parent and the name prefix of work directories there, if the parent is on the
/// same file system.
fn sibling_place(out_dir: &Path) -> Option<(PathBuf, String)> {
    let name = out_dir.file_name()?.to_string_lossy().into_owned();
    let parent = match out_dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    same_device(&parent, out_dir).then(|| (parent, format!(".{name}.")))
}

#[cfg(unix)]
fn same_device(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_device(_: &Path, _: &Path) -> bool {
    false
}

/// Puts right what split exports into `out_dir` left behind when their process died (see the
/// module docs). Work directories of live processes are left alone; where it cannot be told
/// whether a process lives (no `/proc`), nothing is touched.
pub(super) fn recover(op: &'static str, out_dir: &Path) -> Result<()> {
    if !Path::new("/proc/self").exists() {
        return Ok(());
    }
    let mut places = vec![(out_dir.to_path_buf(), ".".to_string())];
    places.extend(sibling_place(out_dir));
    for (dir, prefix) in places {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(kind) = name.strip_prefix(prefix.as_str()) else {
                continue;
            };
            let path = entry.path();
            let io = |source| Error::Io {
                op,
                path: Some(path.clone()),
                source,
            };
            if kind.starts_with("staging-") && owner_is_dead(kind) {
                std::fs::remove_dir_all(&path).map_err(io)?;
            } else if kind.starts_with("replaced-") && owner_is_dead(kind) {
                restore(out_dir, &path).map_err(io)?;
            }
        }
    }
    Ok(())
}

/// Whether the process named in a work directory's `<kind>-<pid>-<n>` suffix has ended.
fn owner_is_dead(name: &str) -> bool {
    let mut parts = name.rsplitn(3, '-');
    let (Some(_), Some(pid)) = (parts.next(), parts.next()) else {
        return false;
    };
    match pid.parse::<u32>() {
        Ok(pid) if pid != std::process::id() => !Path::new("/proc").join(pid.to_string()).exists(),
        _ => false,
    }
}

/// Finishes or rolls back the publish whose set-aside directory is `aside`.
fn restore(out_dir: &Path, aside: &Path) -> std::io::Result<()> {
    if aside.join(COMMITTED).exists() {
        return std::fs::remove_dir_all(aside);
    }
    if let Ok(prefix) = std::fs::read_to_string(aside.join(MOVING_IN)) {
        // Every earlier partition of the column had been set aside, so each one in `out_dir`
        // is a new one, and so is a manifest the previous export's is not aside for.
        for entry in std::fs::read_dir(out_dir)?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !prefix.is_empty() && name.starts_with(&prefix) && holds_only_split_files(&entry.path()) {
                std::fs::remove_dir_all(entry.path())?;
            }
        }
        if !aside.join(MANIFEST).exists() {
            remove_if_present(&out_dir.join(MANIFEST))?;
        }
    }
    remove_if_present(&out_dir.join(format!("{MANIFEST}.tmp")))?;
    for entry in std::fs::read_dir(aside)?.flatten() {
        let name = entry.file_name();
        if name != MOVING_IN && name != COMMITTED {
            std::fs::rename(entry.path(), out_dir.join(&name))?;
        }
    }
    std::fs::remove_dir_all(aside)
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

    /// A process id no process has (above any `pid_max`).
    const DEAD: u32 = u32::MAX - 1;

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
    fn only_work_directories_of_ended_processes_count_as_dead() {
        assert!(owner_is_dead(&format!("staging-{DEAD}-3")));
        assert!(!owner_is_dead(&format!("staging-{}-3", std::process::id())));
        assert!(!owner_is_dead("staging-1-0"), "pid 1 always runs");
        assert!(!owner_is_dead("staging-x-0"));
    }

    /// A publish that died while new partitions moved in is rolled back: the new ones and the
    /// new manifest go, the previous export comes back.
    #[test]
    fn a_publish_that_died_moving_in_is_rolled_back() {
        let root = tempfile::tempdir().unwrap();
        let out = root.path().join("out");
        let aside = root.path().join(format!(".out.replaced-{DEAD}-0"));
        write(&aside.join("k=a/data.parquet"), "old a");
        write(&aside.join(MANIFEST), "old manifest");
        write(&aside.join(MOVING_IN), "k=");
        write(&out.join("k=c/data.parquet"), "new c");
        write(&out.join(MANIFEST), "new manifest");
        write(&out.join("user.txt"), "the user's");
        recover("t", &out).unwrap();
        assert_eq!(names(&out), ["k=a", MANIFEST, "user.txt"]);
        assert_eq!(
            std::fs::read_to_string(out.join(MANIFEST)).unwrap(),
            "old manifest"
        );
        assert_eq!(names(root.path()), ["out"]);
    }

    /// Dying while the previous export was being set aside: everything aside goes back.
    #[test]
    fn a_publish_that_died_setting_aside_is_put_back() {
        let root = tempfile::tempdir().unwrap();
        let out = root.path().join("out");
        let aside = root.path().join(format!(".out.replaced-{DEAD}-0"));
        write(&aside.join("k=a/data.parquet"), "old a");
        write(&out.join("k=b/data.parquet"), "old b");
        write(&out.join(MANIFEST), "old manifest");
        recover("t", &out).unwrap();
        assert_eq!(names(&out), ["k=a", "k=b", MANIFEST]);
        assert_eq!(names(root.path()), ["out"]);
    }

    /// Dying after the new manifest was in place: the export is complete; only the copy of the
    /// previous one goes. Dead staging goes; live processes' directories stay.
    #[test]
    fn a_committed_publish_keeps_the_new_export_and_dead_staging_goes() {
        let root = tempfile::tempdir().unwrap();
        let out = root.path().join("out");
        let aside = root.path().join(format!(".out.replaced-{DEAD}-0"));
        write(&aside.join("k=a/data.parquet"), "old a");
        write(&aside.join(MOVING_IN), "k=");
        write(&aside.join(COMMITTED), "");
        write(&out.join("k=c/data.parquet"), "new c");
        write(&out.join(MANIFEST), "new manifest");
        let dead_staging = root
            .path()
            .join(format!(".out.staging-{DEAD}-1/k=x/data_0.parquet"));
        write(&dead_staging, "partial");
        write(&out.join(format!(".staging-{DEAD}-2/p0/data.parquet")), "partial");
        let live = root.path().join(format!(".out.staging-{}-9", std::process::id()));
        std::fs::create_dir(&live).unwrap();
        recover("t", &out).unwrap();
        assert_eq!(names(&out), ["k=c", MANIFEST]);
        assert_eq!(
            std::fs::read_to_string(out.join(MANIFEST)).unwrap(),
            "new manifest"
        );
        assert_eq!(
            names(root.path()),
            [
                live.file_name().unwrap().to_string_lossy().into_owned(),
                "out".into()
            ]
        );
    }

    #[test]
    fn work_directories_go_beside_out_dir() {
        let root = tempfile::tempdir().unwrap();
        let out = root.path().join("out");
        std::fs::create_dir(&out).unwrap();
        let work = WorkDirs::beside("t", &out).unwrap();
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
    }
}
