//! `export_split_parquet` into directories that are mount points, and through symbolic links
//! that lead nowhere. A bind mount (a container volume, `-v host:/data`) has its source's
//! device number, yet rename(2) between two mounts fails with `EXDEV`: staging beside such a
//! directory made every publish fail with "Invalid cross-device link".
//!
//! Tests that need `mount` (root) print a note and return when it is not permitted.

use std::path::{Path, PathBuf};
use std::process::Command;

use store::ErrorKind;
use store::analytics::Analytics;

use crate::split::read_back;
use crate::support::{all_rows, expect_kind, multiset, names_in, project};

/// A bind mount, unmounted on drop.
struct Bind(PathBuf);

impl Bind {
    /// Binds `src` at `dst` (read-only with `read_only`), or `None` (with a note) when
    /// mounting is not permitted here.
    fn new(src: &Path, dst: &Path, read_only: bool) -> Option<Bind> {
        let run = |args: &[&std::ffi::OsStr]| {
            Command::new("mount")
                .args(args)
                .output()
                .is_ok_and(|o| o.status.success())
        };
        if !run(&["--bind".as_ref(), src.as_os_str(), dst.as_os_str()]) {
            eprintln!("note: skipped, cannot bind-mount (needs root)");
            return None;
        }
        let bind = Bind(dst.to_path_buf());
        if read_only && !run(&["-o".as_ref(), "remount,bind,ro".as_ref(), dst.as_os_str()]) {
            eprintln!("note: skipped, cannot remount read-only");
            return None;
        }
        Some(bind)
    }
}

impl Drop for Bind {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// `t`: 300 rows over 3 values of `k` (DuckDB's partitioned COPY); `many`: 6,000 rows over
/// 600 values (the store's own writer).
fn tables() -> Analytics {
    let db = Analytics::in_memory().unwrap();
    db.exec_batch(
        "CREATE TABLE t AS SELECT 'v' || (i % 3) AS k, i AS n FROM range(300) r(i);
         CREATE TABLE many AS SELECT 'v' || (i % 600) AS k, i AS n FROM range(6000) r(i);",
    )
    .unwrap();
    db
}

/// Exports into a bind-mount point work with either writer, re-exports replace the previous
/// export (set aside and discarded within the mount), and nothing is left beside the mount
/// point or hidden inside it.
#[test]
fn a_bind_mount_point_takes_split_exports_with_both_writers() {
    let src = tempfile::tempdir().unwrap();
    let holder = tempfile::tempdir().unwrap();
    let dst = holder.path().join("data");
    std::fs::create_dir(&dst).unwrap();
    let Some(_bind) = Bind::new(src.path(), &dst, false) else {
        return;
    };
    let db = tables();
    for (table, values) in [("t", 3), ("many", 600), ("t", 3)] {
        let manifest = db
            .export_split_parquet(table, &dst, "k")
            .unwrap_or_else(|e| panic!("split export of {table} into a bind-mount point: {e}"));
        assert_eq!(manifest.files.len(), values);
        assert_eq!(
            names_in(holder.path()),
            ["data"],
            "leftovers beside the mount point"
        );
        let names = names_in(&dst);
        assert_eq!(names.len(), values + 1, "{names:?}");
        assert!(
            names.iter().all(|n| n.starts_with("k=") || n == "manifest.json"),
            "{names:?}"
        );
        let back = read_back(&db, &dst, true);
        assert_eq!(
            multiset(&project(&back, &["k", "n"])),
            multiset(&all_rows(&db, table))
        );
    }
    // Written through the mount: the source directory holds the same export.
    assert_eq!(names_in(src.path()), names_in(&dst));
}

/// A read-only mount point (over a previous export) says the file system is read-only and
/// names the directory, rather than "Invalid cross-device link"; nothing changes.
#[test]
fn a_read_only_mount_point_says_read_only_and_keeps_the_previous_export() {
    let src = tempfile::tempdir().unwrap();
    let holder = tempfile::tempdir().unwrap();
    let dst = holder.path().join("ro");
    std::fs::create_dir(&dst).unwrap();
    let db = tables();
    db.export_split_parquet("t", src.path(), "k").unwrap();
    let before = names_in(src.path());
    let manifest = std::fs::read(src.path().join("manifest.json")).unwrap();
    let Some(_bind) = Bind::new(src.path(), &dst, true) else {
        return;
    };
    for table in ["t", "many"] {
        let e = expect_kind(db.export_split_parquet(table, &dst, "k"), ErrorKind::Io);
        let msg = e.to_string();
        assert!(msg.contains("Read-only file system"), "{msg}");
        assert!(!msg.contains("cross-device"), "{msg}");
        assert!(msg.contains(&format!("on {}:", dst.display())), "{msg}");
    }
    assert_eq!(names_in(src.path()), before);
    assert_eq!(std::fs::read(src.path().join("manifest.json")).unwrap(), manifest);
    assert_eq!(
        names_in(holder.path()),
        ["ro"],
        "leftovers beside the mount point"
    );
}

/// An `out_dir` that is (or lies under) a symbolic link to a missing directory is refused as
/// such, naming the link and its target, instead of a bare "File exists"; nothing is created.
#[test]
fn a_dangling_symlink_out_dir_is_refused_naming_the_link() {
    let tmp = tempfile::tempdir().unwrap();
    let link = tmp.path().join("out");
    let target = tmp.path().join("nowhere");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let db = tables();
    for out_dir in [link.clone(), link.join("sub"), link.join("sub/deeper")] {
        let e = expect_kind(
            db.export_split_parquet("t", &out_dir, "k"),
            ErrorKind::InvalidInput,
        );
        let msg = e.to_string();
        assert!(
            msg.contains(&format!(
                "{} is a symbolic link to {}, which does not exist",
                link.display(),
                target.display()
            )),
            "{msg}"
        );
        assert!(!msg.contains("File exists"), "{msg}");
        assert_eq!(names_in(tmp.path()), ["out"]);
    }
    // Once the directory it names exists, the link works as an out_dir.
    std::fs::create_dir(&target).unwrap();
    assert_eq!(db.export_split_parquet("t", &link, "k").unwrap().total_rows, 300);
    assert_eq!(names_in(tmp.path()), ["nowhere", "out"]);
}
