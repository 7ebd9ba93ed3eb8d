//! What an export, import or open must not do to files this process or others hold: drop
//! DuckDB's lock on a database this process has open (closing any descriptor of a file drops
//! every POSIX lock the process holds on it), replace the file behind an open descriptor
//! (`/dev/stdout`, `/dev/fd/N`), expose a private target's data while it is written, or carry
//! setuid bits over; plus dangling links, the edges of `scored_at`, and invisible characters.

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use store::analytics::{Analytics, CsvOptions};

/// Whether another process can take a write lock on `path` right now (python's `lockf`, which
/// is `fcntl(F_SETLK)`, the lock DuckDB takes on a database it opens read-write).
fn another_process_can_lock(path: &Path) -> bool {
    let script = "import fcntl,sys\n\
                  f=open(sys.argv[1],'r+b')\n\
                  try:\n    fcntl.lockf(f, fcntl.LOCK_EX|fcntl.LOCK_NB)\n    print('locked')\n\
                  except OSError as e:\n    print('held', e)\n";
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(path)
        .output()
        .expect("python3");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.starts_with("locked")
}

fn writer(dir: &Path) -> (Analytics, std::path::PathBuf) {
    let path = dir.join("w.duckdb");
    let db = Analytics::open(&path).unwrap();
    db.exec_batch("CREATE TABLE t AS SELECT range AS x FROM range(10)")
        .unwrap();
    assert!(
        !another_process_can_lock(&path),
        "DuckDB's lock on a read-write database is not an fcntl lock?"
    );
    (db, path)
}

/// A refused `open_read_only` of a file this process holds read-write must leave DuckDB's
/// lock in place: `require_readable_file` (daa5850) opens and closes the file before the claim
/// check, and closing any descriptor of a file drops every POSIX lock the process holds on it,
/// so another process could then open the database read-write too (two writers, one file).
#[test]
fn a_refused_open_read_only_keeps_the_writers_lock() {
    let dir = tempfile::tempdir().unwrap();
    let (db, path) = writer(dir.path());
    assert!(Analytics::open_read_only(&path).is_err());
    assert!(
        !another_process_can_lock(&path),
        "the lock DuckDB holds for this process's writer is gone after a refused open_read_only"
    );
    drop(db);
}

/// The same through a second `Analytics::open` (refuse_foreign_file reads the header first).
#[test]
fn a_refused_second_open_keeps_the_writers_lock() {
    let dir = tempfile::tempdir().unwrap();
    let (db, path) = writer(dir.path());
    assert!(Analytics::open(&path).is_err());
    assert!(
        !another_process_can_lock(&path),
        "the lock DuckDB holds for this process's writer is gone after a refused second open"
    );
    drop(db);
}

/// The same through an import that names the database file (require_readable_file, daa5850).
#[test]
fn an_import_of_the_open_database_file_keeps_its_lock() {
    let dir = tempfile::tempdir().unwrap();
    let (db, path) = writer(dir.path());
    let _ = db.import_csv("c", &path, &CsvOptions::default());
    assert!(
        !another_process_can_lock(&path),
        "the lock DuckDB holds for this process's writer is gone after an import read the file"
    );
    drop(db);
}

/// The same through an export refused because its target is the open database.
#[test]
fn an_export_refused_over_the_open_database_keeps_its_lock() {
    let dir = tempfile::tempdir().unwrap();
    let (db, path) = writer(dir.path());
    assert!(db.export_parquet("t", &path).is_err());
    assert!(
        !another_process_can_lock(&path),
        "the lock DuckDB holds for this process's writer is gone after a refused export onto it"
    );
    drop(db);
}

/// daa5850: "a target kept private (0600) must not come back readable by everyone". The new
/// file only gets the mode after the COPY; while the COPY writes it (the whole export), the
/// staging file beside the target has the umask's mode (0644), so anyone can open it then and
/// keep reading the data after the chmod.
#[test]
fn an_export_over_a_private_file_is_never_readable_by_others() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("private.parquet");
    std::fs::write(&target, b"old").unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
    let db = Analytics::in_memory().unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (done, dir, target) = (Arc::clone(&done), dir.path().to_path_buf(), target.clone());
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            while !done.load(Ordering::SeqCst) {
                for entry in std::fs::read_dir(&dir).unwrap().flatten() {
                    if entry.path() == target {
                        continue;
                    }
                    if let Ok(meta) = entry.metadata() {
                        let mode = meta.permissions().mode() & 0o777;
                        if mode & 0o077 != 0 {
                            seen.push((entry.file_name(), mode));
                        }
                    }
                }
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            seen
        })
    };
    db.export_parquet(
        "SELECT range AS x, md5(range::VARCHAR) AS h FROM range(3000000)",
        &target,
    )
    .unwrap();
    done.store(true, Ordering::SeqCst);
    let seen = watcher.join().unwrap();
    assert_eq!(
        std::fs::metadata(&target).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(
        seen.is_empty(),
        "while the export ran, its data sat in files readable by others: {:?}",
        &seen[..seen.len().min(3)]
    );
}

/// An export into a directory that is a symbolic link to a missing directory says "File
/// exists", the message c2f21e6 replaced for split exports (refuse_dangling_link).
#[test]
fn an_export_under_a_dangling_directory_link_names_the_link() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("out");
    symlink(dir.path().join("nowhere"), &link).unwrap();
    let db = Analytics::in_memory().unwrap();
    db.exec_batch("CREATE TABLE t AS SELECT 1 AS x").unwrap();
    let e = db.export_parquet("t", link.join("t.parquet")).unwrap_err();
    let message = e.to_string();
    assert!(
        !message.contains("File exists") && message.contains("nowhere"),
        "{message}"
    );
}

/// An export through a file link to a missing directory creates that directory (a shell
/// redirection fails, and the split export refuses the same kind of link, saying `mkdir -p`
/// would not create it either).
#[test]
fn an_export_through_a_link_into_a_missing_directory_does_not_create_it() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("latest.parquet");
    let far = dir.path().join("typo-dir/deeper/t.parquet");
    symlink(&far, &link).unwrap();
    let db = Analytics::in_memory().unwrap();
    db.exec_batch("CREATE TABLE t AS SELECT 1 AS x").unwrap();
    let result = db.export_parquet("t", &link);
    assert!(
        !dir.path().join("typo-dir").exists(),
        "the export created the link's missing directories: {result:?}"
    );
}

/// The mode carried over is the whole permission word, setuid/setgid included: a new file
/// written by this process (as root, owned by root) comes out setuid.
#[test]
fn an_export_does_not_carry_setuid_onto_its_new_file() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("t.parquet");
    std::fs::write(&target, b"old").unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o6755)).unwrap();
    let db = Analytics::in_memory().unwrap();
    db.exec_batch("CREATE TABLE t AS SELECT 1 AS x").unwrap();
    db.export_parquet("t", &target).unwrap();
    let mode = std::fs::metadata(&target).unwrap().permissions().mode();
    assert_eq!(mode & 0o7000, 0, "mode {mode:o}");
}

/// /dev/stdout as a target when stdout is a pipe: /proc/self/fd/1 is a "magic" link whose text
/// is `pipe:[N]`, resolved as a relative name in /proc/self/fd.
#[test]
fn an_export_to_dev_stdout_on_a_pipe_is_refused_clearly() {
    // Only meaningful in a process whose stdout is a pipe (cargo's harness captures it).
    let fd1 = std::fs::read_link("/proc/self/fd/1").unwrap_or_default();
    if !fd1.to_string_lossy().starts_with("pipe:") {
        eprintln!("SKIP: stdout is not a pipe ({})", fd1.display());
        return;
    }
    let db = Analytics::in_memory().unwrap();
    db.exec_batch("CREATE TABLE t AS SELECT 1 AS x").unwrap();
    let e = db.export_parquet("t", "/dev/stdout").unwrap_err();
    let message = e.to_string();
    assert!(!message.contains("/proc/self/fd/pipe:"), "{message}");
}

/// The consequence of the dropped lock: a second process (the CLI) opens the database
/// read-write while this process still writes it. Before the refused open it is kept out.
#[test]
fn after_a_refused_open_read_only_a_second_process_writes_the_same_database() {
    let cli =
        std::path::PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/store/target/debug/store");
    if !cli.exists() {
        eprintln!("SKIP: no CLI binary at {}", cli.display());
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let path = home.path().join("workspace.duckdb");
    let db = Analytics::open(&path).unwrap();
    // Checkpointed: no log file is left, whose own lock would stop the intruder at commit.
    db.exec_batch("CREATE TABLE mine AS SELECT 1 AS x; CHECKPOINT")
        .unwrap();
    let cli_write = || {
        Command::new(&cli)
            .arg("--home")
            .arg(home.path())
            .args(["--quiet", "sql", "CREATE TABLE intruder AS SELECT 2 AS y"])
            .output()
            .unwrap()
    };
    let before = cli_write();
    assert!(!before.status.success(), "the CLI wrote while the lock was held");
    assert!(Analytics::open_read_only(&path).is_err());
    let after = cli_write();
    // Both go on writing: this handle checkpoints over what the intruder wrote.
    db.exec_batch("CREATE TABLE mine2 AS SELECT 3 AS z; CHECKPOINT")
        .unwrap();
    db.close().unwrap();
    drop(db);
    let tables = Analytics::open_read_only(&path)
        .and_then(|db| db.query("SELECT table_name FROM information_schema.tables ORDER BY 1", &[]))
        .map(|rows| format!("{:?}", rows.rows))
        .unwrap_or_else(|e| format!("reopen failed: {e}"));
    assert!(
        !after.status.success(),
        "a second process wrote the database this process had open read-write ({}); \
         afterwards the file holds: {tables}",
        String::from_utf8_lossy(&after.stdout).trim()
    );
}

/// `/dev/stdout`, `/dev/stderr`, `/dev/fd/N` and `/proc/self/fd/N` are links to an open file
/// description. A shell redirection to them writes into that open file (appending, for a log
/// opened with `>>`); the export resolves the link's text and renames a new file over the path
/// it names, so a job whose output goes to a log (`job >> job.log 2>&1`) that exports to
/// /dev/stdout replaces the whole log with the Parquet file, and everything the job writes
/// afterwards goes to the unlinked old inode. README: "written through ... as with a shell
/// redirection".
#[test]
fn an_export_to_an_open_descriptor_does_not_replace_the_file_behind_it() {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("job.log");
    std::fs::write(&log_path, "earlier lines of the log\n").unwrap();
    let mut log = std::fs::OpenOptions::new().append(true).open(&log_path).unwrap();
    let db = Analytics::in_memory().unwrap();
    db.exec_batch("CREATE TABLE t AS SELECT 1 AS x").unwrap();
    let fd_link = format!("/dev/fd/{}", log.as_raw_fd());
    let result = db.export_parquet("t", &fd_link);
    writeln!(log, "a line written after the export").unwrap();
    drop(log);
    let now = std::fs::read(&log_path).unwrap();
    assert!(
        now.starts_with(b"earlier lines of the log\n")
            && now
                .windows(b"a line written after the export".len())
                .any(|w| w == b"a line written after the export"),
        "the export to {fd_link} ({result:?}) replaced the log behind the descriptor: it now \
         holds {} bytes starting {:?}",
        now.len(),
        String::from_utf8_lossy(&now[..now.len().min(8)])
    );
}

/// de3c118: the edges of the accepted range go through the checkpoint upsert (a staging table
/// and INSERT OR REPLACE, not the plain appender) unchanged too, first insert and replace.
#[test]
fn checkpoint_upserts_store_the_edges_of_the_scored_at_range_exactly() {
    use store::analytics::{CheckpointScore, Value};
    let first_ms = -106_751_991 * 86_400_000;
    let last_ms = (i64::MAX - 1) / 1000;
    let db = Analytics::in_memory().unwrap();
    db.ensure_scoring_tables().unwrap();
    for round in 0..2 {
        for (i, at) in [first_ms, last_ms].into_iter().enumerate() {
            let row = CheckpointScore {
                model: "m".into(),
                run_id: "r".into(),
                label: format!("edge{i}"),
                iteration: round,
                correct: 1,
                total: 2,
                accuracy: 0.5,
                scored_at: Some(at),
            };
            db.append_checkpoint_scores([row]).unwrap();
            let stored = db
                .query_row(
                    "SELECT scored_at, iteration FROM checkpoint_scores WHERE label = ?",
                    &[Value::Text(format!("edge{i}"))],
                )
                .unwrap()
                .unwrap()
                .values;
            assert_eq!(stored[0], Value::Timestamp(at * 1000), "round {round}, {at} ms");
            assert_eq!(stored[1], Value::Int(round.into()));
        }
    }
}

/// f26b47a: "two names differing only by an invisible character no longer print alike". Other
/// default-ignorable characters that print as nothing remain: the soft hyphen (U+00AD, Cf),
/// the combining grapheme joiner (U+034F), the Mongolian vowel separator (U+180E, Cf), the
/// deprecated format characters U+206A–U+206F (Cf), the Hangul fillers (U+115F, U+3164) and
/// the tag characters U+E0001–U+E007F (Cf, used to smuggle invisible ASCII).
#[test]
fn other_invisible_characters_are_escaped_too() {
    let printed_alike: Vec<String> = [
        '\u{ad}',
        '\u{34f}',
        '\u{180e}',
        '\u{206a}',
        '\u{206f}',
        '\u{115f}',
        '\u{3164}',
        '\u{e0001}',
        '\u{e0041}',
    ]
    .into_iter()
    .filter(|&c| store::text::visible(&format!("name{c}")) == format!("name{c}"))
    .map(|c| format!("U+{:04X}", c as u32))
    .collect();
    assert!(printed_alike.is_empty(), "printed raw: {printed_alike:?}");
}

/// c2f21e6: an out_dir that is a symbolic link to a directory on another file system: the
/// probe goes through the link (EXDEV), so staging goes inside, and the export works.
#[test]
fn a_split_export_through_a_link_to_another_file_system_works() {
    let holder = tempfile::tempdir().unwrap();
    let mnt = holder.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=8m", "tmpfs"])
        .arg(&mnt)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("SKIP: cannot mount");
        return;
    }
    struct Umount(std::path::PathBuf);
    impl Drop for Umount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _umount = Umount(mnt.clone());
    std::fs::create_dir(mnt.join("data")).unwrap();
    let here = tempfile::tempdir().unwrap();
    let link = here.path().join("out");
    symlink(mnt.join("data"), &link).unwrap();
    let db = Analytics::in_memory().unwrap();
    db.exec_batch("CREATE TABLE t AS SELECT range % 3 AS k, range AS v FROM range(30)")
        .unwrap();
    for _ in 0..2 {
        let manifest = db.export_split_parquet("t", &link, "k").unwrap();
        assert_eq!(manifest.total_rows, 30);
    }
    let mut beside: Vec<_> = std::fs::read_dir(here.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    beside.sort();
    assert_eq!(beside, ["out"]);
    let mut inside: Vec<_> = std::fs::read_dir(mnt.join("data"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    inside.sort();
    assert_eq!(inside, ["k=0", "k=1", "k=2", "manifest.json"]);
}
