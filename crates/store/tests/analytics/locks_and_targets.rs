//! What an export, import or open must not do to files this process or others hold: drop
//! DuckDB's lock on a database this process has open (closing any descriptor of a file drops
//! every POSIX lock the process holds on it), replace the file behind an open descriptor
//! (`/dev/stdout`, `/dev/fd/N`), expose a private target's data while it is written, or carry
//! setuid bits over; plus dangling links, the edges of `scored_at`, and invisible characters.
//!
//! Many tests came from reviews of the fixes: their doc comments describe the defect each was
//! written against (past behaviour); the test name states the behaviour it pins now.

use std::io::Write;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use store::analytics::{Analytics, CsvOptions};
use store::{Kv, Store, StoreConfig};

use crate::support::{expect_kind, names_in};

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

/// A refused `open_read_only` or second `open` of a file this process holds read-write, an
/// import naming it and an export refused over it must all leave DuckDB's lock in place:
/// closing any descriptor of a file drops every POSIX lock the process holds on it, so a check
/// that opened and closed the file let another process open the database read-write too (two
/// writers, one file).
#[test]
fn refused_opens_imports_and_exports_keep_the_writers_lock() {
    type Attempt = fn(&Analytics, &Path) -> bool;
    let attempts: [(&str, Attempt); 4] = [
        ("open_read_only", |_, path| {
            Analytics::open_read_only(path).is_err()
        }),
        ("a second open", |_, path| Analytics::open(path).is_err()),
        ("import_csv", |db, path| {
            db.import_csv("c", path, &CsvOptions::default()).is_err()
        }),
        ("export_parquet", |db, path| db.export_parquet("t", path).is_err()),
    ];
    for (what, attempt) in attempts {
        let dir = tempfile::tempdir().unwrap();
        let (db, path) = writer(dir.path());
        assert!(attempt(&db, &path), "{what} was not refused");
        assert!(
            !another_process_can_lock(&path),
            "the lock DuckDB holds for this process's writer is gone after a refused {what}"
        );
    }
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
/// afterwards goes to the unlinked old inode. docs/guarantees.md: "written through ... as with a shell
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

// ---------------------------------------------------------------------------------------------
// From the second review (h7): leftovers of a process with this pid, read-only targets for an
// ordinary user, databases held by other handles of this process, descriptor links spelt
// differently, and the parent-directory guard.

fn db_with_table() -> Analytics {
    let db = Analytics::in_memory().unwrap();
    db.exec_batch("CREATE TABLE t AS SELECT range AS x FROM range(10)")
        .unwrap();
    db
}

// ---------------------------------------------------------------------------------------------
// D1: `create_staging_like` uses `create_new`; a staging file left by a killed export of an
// earlier process that had this same pid (containers: the CLI is pid 1 every run) makes every
// export over an existing target fail with "File exists". `remove_stale_staging` never
// removes it (it skips files carrying this process's own pid). Before d2d908c DuckDB simply
// overwrote the leftover.
#[test]
fn d1_a_leftover_staging_file_with_this_pid_does_not_block_exports_over_an_existing_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_with_table();
    let target = dir.path().join("t.parquet");
    db.export_parquet("t", &target).unwrap();
    // What a killed export of an earlier process with this pid left (any counter value this
    // process could still use).
    let pid = std::process::id();
    for n in 0..300 {
        std::fs::write(
            dir.path().join(format!("t.parquet.store-export-{pid}-{n}.tmp")),
            b"partial",
        )
        .unwrap();
    }
    let result = db.export_parquet("t", &target);
    assert!(
        result.is_ok(),
        "export refused by a dead process's leftover: {result:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// D2: the staging file is created with the target's mode before DuckDB writes it. For a
// read-only target (0444/0400), DuckDB then cannot open its own staging file for writing:
// re-exporting over a read-only file fails with "Permission denied" for any non-root user
// (before d2d908c the export replaced it, keeping 0444). For a write-only target (0200) the
// footer read-back (`parquet_rows`) cannot read the staging file. Reproduced as root with
// CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH dropped (setpriv), i.e. what an ordinary user sees.

const CHILD_ENV: &str = "QA_H7_CHILD_TARGET";

#[test]
#[ignore = "child of d2_*: run by the parent with capabilities dropped"]
fn d2_child_export() {
    let Ok(target) = std::env::var(CHILD_ENV) else {
        return;
    };
    let db = db_with_table();
    match db.export_parquet("t", &target) {
        Ok(rows) => println!("CHILD-OK {rows}"),
        Err(e) => {
            println!("CHILD-ERR {e}");
            std::process::exit(3);
        }
    }
}

fn export_without_dac_override(target: &Path) -> (bool, String) {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("setpriv")
        .args(["--bounding-set=-dac_override,-dac_read_search", "--"])
        .arg(exe)
        .args([
            "--exact",
            "locks_and_targets::d2_child_export",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, target)
        .output()
        .expect("setpriv");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success() && text.contains("CHILD-OK"), text)
}

fn can_drop_caps() -> bool {
    let ok = Command::new("setpriv")
        .args(["--bounding-set=-dac_override", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("SKIP: setpriv unavailable");
    }
    ok
}

#[test]
fn d2_an_export_over_a_read_only_file_replaces_it_for_an_ordinary_user() {
    if !can_drop_caps() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("t.parquet");
    // Control: a writable target works without the capabilities.
    std::fs::write(&target, b"old").unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (ok, text) = export_without_dac_override(&target);
    assert!(ok, "control failed: {text}");
    // A read-only target.
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o444)).unwrap();
    let (ok, text) = export_without_dac_override(&target);
    assert!(ok, "export over a 0444 file failed: {text}");
    let mode = std::fs::metadata(&target).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o444);
    assert!(
        !names_in(dir.path()).iter().any(|n| n.contains("store-export")),
        "{:?}",
        names_in(dir.path())
    );
}

#[test]
fn d2b_an_export_over_a_write_only_file_works_for_an_ordinary_user() {
    if !can_drop_caps() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("t.parquet");
    std::fs::write(&target, b"old").unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o200)).unwrap();
    let (ok, text) = export_without_dac_override(&target);
    assert!(ok, "export over a 0200 file failed: {text}");
}

// ---------------------------------------------------------------------------------------------
// D3: a SQLite database this process holds open in rollback-journal mode (no `-shm`), e.g.
// through the application's own rusqlite connection: `file_head` returns None for a held
// file and `sqlite_in_use` only knows WAL, so the export renames a Parquet file over the live
// database. docs/guarantees.md: "A target the rename would destroy is refused: a database (open in this
// process, or any DuckDB or SQLite file)". Before d2d908c the header was read and it was
// refused.
#[test]
fn d3_an_export_over_a_sqlite_database_this_process_holds_in_rollback_mode_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("CREATE TABLE a(x); INSERT INTO a VALUES (1), (2);")
        .unwrap();
    let db = db_with_table();
    let result = db.export_parquet("t", &path);
    let head = std::fs::read(&path).unwrap();
    assert!(
        head.starts_with(b"SQLite format 3\0"),
        "the open SQLite database was replaced by the export (result {result:?})"
    );
    assert!(result.is_err());
    drop(conn);
}

/// D3b: the same for a DuckDB database file this process holds by a plain descriptor (a
/// backup job reading it, say) but has not opened with Analytics.
#[test]
fn d3b_an_export_over_a_duckdb_file_held_by_a_plain_handle_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keep.duckdb");
    {
        let a = Analytics::open(&path).unwrap();
        a.exec_batch("CREATE TABLE k AS SELECT 1 AS x").unwrap();
        a.close().unwrap();
    }
    let held = std::fs::File::open(&path).unwrap();
    let db = db_with_table();
    let result = db.export_parquet("t", &path);
    let head = std::fs::read(&path).unwrap();
    assert_eq!(
        head.get(8..12),
        Some(b"DUCK".as_slice()),
        "the DuckDB database was replaced by the export (result {result:?})"
    );
    drop(held);
}

/// D3c: the lock hazard d2d908c set out to close, for a SQLite database in rollback-journal
/// mode: an import of it (held_database only recognises WAL) opens and closes the file, which
/// drops the RESERVED lock this process's connection holds, so another process can start a
/// write transaction on the same database at the same time.
#[test]
fn d3c_an_import_of_a_rollback_mode_sqlite_db_held_here_keeps_its_lock() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("CREATE TABLE a(x); BEGIN IMMEDIATE; INSERT INTO a VALUES (1);")
        .unwrap();
    let other_can_write = || another_process_can_begin_writing(&path);
    assert!(!other_can_write(), "precondition: the lock is held");
    let db = Analytics::in_memory().unwrap();
    let result = db.import_csv("x", &path, &CsvOptions::default());
    assert!(
        !other_can_write(),
        "after import_csv ({result:?}) another process can write the database this process is writing"
    );
    conn.execute_batch("COMMIT").unwrap();
}

// ---------------------------------------------------------------------------------------------
// D4: `is_descriptor_link` only recognises the literal spellings /proc/.../fd/N and /dev/fd/N.
// Through any symbolic link to the fd directory the check misses, and the export replaces the
// file behind the descriptor (here: the log this process appends to).
#[test]
fn d4_an_export_to_a_descriptor_through_a_linked_fd_directory_is_refused() {
    use std::os::fd::AsRawFd;
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("job.log");
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .unwrap();
    writeln!(log, "line 1").unwrap();
    let fds = dir.path().join("fds");
    symlink("/proc/self/fd", &fds).unwrap();
    let target = fds.join(log.as_raw_fd().to_string());
    let db = db_with_table();
    let result = db.export_parquet("t", &target);
    let text = std::fs::read(&log_path).unwrap();
    assert!(
        text.starts_with(b"line 1"),
        "the log behind the descriptor was replaced (result {result:?})"
    );
    assert!(result.is_err());
}

// ---------------------------------------------------------------------------------------------
// D5: CreatedDirs stops at the first directory it cannot remove, including one that was never
// created because create_dir_all failed below it: the upper directories it did create stay.
#[test]
fn d5_a_failed_parent_creation_removes_the_directories_it_did_create() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_with_table();
    let long = "a".repeat(300); // ENAMETOOLONG after `new` was created
    let target = dir.path().join("new").join(&long).join("t.parquet");
    let result = db.export_parquet("t", &target);
    assert!(result.is_err());
    assert!(
        names_in(dir.path()).is_empty(),
        "left behind: {:?} ({result:?})",
        names_in(dir.path())
    );
}

/// D5b (nitpick): a parent spelled with `..` ("new/../out.parquet" where `new` is missing):
/// the failed export leaves `new` (remove_dir of "new/.." fails first and stops the loop).
#[test]
fn d5b_a_failed_export_through_dotdot_removes_what_it_created() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_with_table();
    let failing = "SELECT CAST('not a number ' || x AS INTEGER) AS x FROM t";
    let target = dir.path().join("new/../out.parquet");
    assert!(db.export_parquet(failing, &target).is_err());
    assert!(
        names_in(dir.path()).is_empty(),
        "left behind: {:?}",
        names_in(dir.path())
    );
}

// ---------------------------------------------------------------------------------------------
// Held: exporting over a NamedTempFile the caller holds open works (file_head None, not a
// database), the staging file is gone, the holder's path now has the Parquet file.
#[test]
fn held_an_export_over_a_named_temp_file_the_caller_holds_works() {
    let dir = tempfile::tempdir().unwrap();
    let tmp = tempfile::Builder::new()
        .suffix(".parquet")
        .tempfile_in(dir.path())
        .unwrap();
    let db = db_with_table();
    assert_eq!(db.export_parquet("t", tmp.path()).unwrap(), 10);
    assert_eq!(db.import_parquet("back", tmp.path()).unwrap(), 10);
    assert_eq!(names_in(dir.path()).len(), 1, "{:?}", names_in(dir.path()));
}

/// Held: a panicking progress callback during an export over an existing file leaves no
/// staging file (USE_TMP_FILE false: the staging file is DuckDB's only file).
#[test]
fn held_a_panicking_progress_callback_leaves_no_staging_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = Analytics::in_memory().unwrap();
    db.exec_batch("CREATE TABLE big AS SELECT range AS x, md5(range::VARCHAR) AS y FROM range(6000000)")
        .unwrap();
    let target = dir.path().join("big.parquet");
    std::fs::write(&target, b"old").unwrap();
    let cb = |_p: store::analytics::ImportProgress| panic!("stop");
    let result = db.export_parquet_with("SELECT * FROM big ORDER BY y", &target, "zstd", Some(&cb));
    eprintln!("result: {result:?}");
    assert_eq!(names_in(dir.path()), vec!["big.parquet".to_string()]);
    if result.is_err() {
        assert_eq!(std::fs::read(&target).unwrap(), b"old");
    }
}

/// Held: SQLite's own rollback, then a closure that returns its own error: that error comes
/// back unchanged, nothing is written, versions stay monotonic afterwards; a scoped
/// transaction behaves the same.
#[test]
fn held_a_closure_error_after_sqlites_own_rollback_is_returned() {
    let Some(fs) = crate::common::Tmpfs::mount("3m") else {
        return;
    };
    let path: PathBuf = fs.path().join("state.db");
    std::fs::write(fs.path().join("filler"), vec![0u8; 1 << 20]).unwrap();
    let store = Store::open_with(StoreConfig::file(&path).with_purge_interval(Duration::ZERO)).unwrap();
    let before = store.set("pre", "k", "v").unwrap();
    let big = "z".repeat(100_000);
    let ns = store.scoped("app").unwrap();
    for scoped in [false, true] {
        let body = |set: &dyn Fn(&str) -> store::Result<u64>| -> store::Result<()> {
            let mut rolled = false;
            for i in 0..60 {
                if let Err(e) = set(&format!("big{i}"))
                    && e.field() == Some("transaction")
                {
                    rolled = true;
                    break;
                }
            }
            assert!(rolled, "SQLite never rolled back");
            Err(store::Error::NotFound {
                op: "mine",
                group: "g".into(),
                key: "k".into(),
            })
        };
        let result = if scoped {
            ns.transaction(|tx| body(&|k: &str| tx.set("tx", k, &big)))
        } else {
            store.transaction(|tx| body(&|k: &str| tx.set("tx", k, &big)))
        };
        let err = result.unwrap_err();
        assert_eq!(err.op(), "mine", "{err}");
    }
    assert!(store.get_all("tx").unwrap().is_empty());
    std::fs::remove_file(fs.path().join("filler")).unwrap();
    let mut last = before;
    for i in 0..10 {
        let v = store.set("after", &format!("k{i}"), "v").unwrap();
        assert!(v > last);
        last = v;
    }
    store.close().unwrap();
}

/// D3d: the same through `Analytics::open` (a mistyped path): refuse_foreign_file lets a held
/// file through unread unless it is WAL-mode SQLite, so DuckDB opens and closes the
/// rollback-mode SQLite database, dropping this process's RESERVED lock on it.
#[test]
fn d3d_a_refused_analytics_open_of_a_rollback_mode_sqlite_db_held_here_keeps_its_lock() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("CREATE TABLE a(x); BEGIN IMMEDIATE; INSERT INTO a VALUES (1);")
        .unwrap();
    let other_can_write = || another_process_can_begin_writing(&path);
    assert!(!other_can_write(), "precondition: the lock is held");
    let result = Analytics::open(&path).map(drop);
    assert!(result.is_err(), "DuckDB opened a SQLite file");
    assert!(
        !other_can_write(),
        "after Analytics::open ({result:?}) another process can write the database this process is writing"
    );
    conn.execute_batch("COMMIT").unwrap();
}

/// Whether another process can start a write transaction on the SQLite database at `path` now.
fn another_process_can_begin_writing(path: &Path) -> bool {
    let script = "import sqlite3,sys\n\
                  c=sqlite3.connect(sys.argv[1], timeout=0, isolation_level=None)\n\
                  try:\n    c.execute('BEGIN IMMEDIATE'); print('writer')\n\
                  except Exception as e:\n    print('locked', e)\n";
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).starts_with("writer")
}

/// h124 D1/D2: an `ATTACH` in the caller's SQL of a file another handle of this process holds
/// was a second DuckDB instance on it: a write through it returned Ok and was then lost to the
/// first handle's checkpoint, and its `DETACH` dropped the process's lock, so another process
/// wrote too and the file ended corrupt. Every spelling of such an `ATTACH` is refused before
/// anything runs, through every call that runs caller SQL; the lock stays and nothing is lost.
#[test]
fn attach_of_a_file_another_handle_holds_is_refused_and_keeps_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let (db, path) = writer(dir.path());
    let link = dir.path().join("link.duckdb");
    symlink(&path, &link).unwrap();
    let other = Analytics::in_memory().unwrap();
    let p = path.display().to_string().replace('\'', "''");
    let l = link.display().to_string().replace('\'', "''");
    let attempts = [
        format!("ATTACH '{p}' AS x"),
        format!("attach database if not exists '{p}' as x (READ_ONLY)"),
        format!("ATTACH OR REPLACE '{l}'"),
        format!("/* why */ ATTACH 'duckdb:{p}' AS x"),
        format!("SELECT 1; ATTACH '{p}' AS x; INSERT INTO x.t VALUES (99); DETACH x"),
        format!("ATTACH '{p}' || '' AS x"),
        // DuckDB reads these as blanks (h127): a byte-order mark, a no-break space, an
        // ideographic space, a vertical tab; and backticks quote names.
        format!("\u{feff}ATTACH '{p}' AS x"),
        format!("SELECT 1;\u{a0}ATTACH '{p}' AS x"),
        format!("SELECT 1;\u{3000}ATTACH '{p}' AS x"),
        format!("\x0bATTACH '{p}' AS x"),
        format!("SELECT 1 AS `'`; ATTACH '{p}' AS x; SELECT 1 AS `'`"),
        // Every reading DuckDB gives a path (h127).
        format!("ATTACH 'file://localhost{p}' AS x"),
        format!("ATTACH 'file://{p}' AS x"),
        format!("ATTACH 'duckdb:file:{p}' AS x"),
    ];
    for sql in &attempts {
        for (call, result) in [
            ("exec", other.exec(sql, &[]).map(drop)),
            ("exec_batch", other.exec_batch(sql)),
            ("query", other.query(sql, &[]).map(drop)),
            ("query_arrow", other.query_arrow(sql, &[]).map(drop)),
            // The handle holding the file is refused too: DuckDB would attach it again.
            ("exec on the holder", db.exec_batch(sql)),
        ] {
            let err = result.expect_err(&format!("{call} ran {sql}"));
            assert_eq!(err.kind(), store::ErrorKind::InvalidInput, "{call} {sql}: {err}");
            assert!(err.to_string().contains("ATTACH"), "{call} {sql}: {err}");
        }
    }
    // `~` is DuckDB's home_directory setting (else $HOME), followed by the rest as text.
    let home = dir.path().display().to_string().replace('\'', "''");
    other
        .exec(&format!("SET home_directory = '{home}'"), &[])
        .unwrap();
    for sql in [
        "ATTACH '~/w.duckdb' AS x",
        "ATTACH '~//w.duckdb' AS x",
        "ATTACH 'duckdb:~/w.duckdb' AS x",
    ] {
        let err = expect_kind(other.exec(sql, &[]), store::ErrorKind::InvalidInput);
        assert!(
            err.to_string().contains("already has that database open"),
            "{sql}: {err}"
        );
    }
    // A batch changing home_directory before its ATTACH of a `~` path cannot be checked.
    let err = expect_kind(
        other.exec_batch(&format!(
            "SET home_directory = '{home}'; ATTACH '~/w.duckdb' AS x"
        )),
        store::ErrorKind::InvalidInput,
    );
    assert!(err.to_string().contains("home_directory"), "{err}");
    // IMPORT DATABASE runs the schema.sql and load.sql of its directory as they stand.
    let import = dir.path().join("import");
    std::fs::create_dir(&import).unwrap();
    std::fs::write(import.join("schema.sql"), format!("ATTACH '{p}' AS x;\n")).unwrap();
    std::fs::write(import.join("load.sql"), "").unwrap();
    let i = import.display().to_string().replace('\'', "''");
    for sql in [
        format!("IMPORT DATABASE '{i}'"),
        format!("PRAGMA import_database('{i}')"),
        // The directory read as DuckDB reads it (h130): from the home directory, as a URL.
        "IMPORT DATABASE '~/import'".to_string(),
        format!("IMPORT DATABASE 'file://{i}'"),
    ] {
        let err = expect_kind(other.exec_batch(&sql), store::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("IMPORT DATABASE runs"), "{sql}: {err}");
    }
    // A script attaching a `~` path after the caller's batch changed home_directory (h130).
    let tilde = dir.path().join("tilde");
    std::fs::create_dir(&tilde).unwrap();
    std::fs::write(tilde.join("schema.sql"), "ATTACH '~/w.duckdb' AS x;\n").unwrap();
    std::fs::write(tilde.join("load.sql"), "").unwrap();
    let t = tilde.display().to_string().replace('\'', "''");
    let err = expect_kind(
        other.exec_batch(&format!("SET home_directory = '{home}'; IMPORT DATABASE '{t}'")),
        store::ErrorKind::InvalidInput,
    );
    assert!(err.to_string().contains("home_directory"), "{err}");
    // Mentioning home_directory, or a `~` inside a path, is no reason to refuse (h130).
    let backup = dir
        .path()
        .join("backup~1.duckdb")
        .display()
        .to_string()
        .replace('\'', "''");
    other
        .exec_batch(&format!(
            "SELECT current_setting('home_directory') AS h; ATTACH '{backup}' AS y; DETACH y"
        ))
        .unwrap();
    assert!(!another_process_can_lock(&path), "the writer's lock is gone");
    let attached = crate::support::scalar(
        &other,
        "SELECT count(*) FROM duckdb_databases() WHERE NOT internal",
    )
    .as_i64()
    .unwrap();
    assert_eq!(attached, 1, "only the in-memory database itself");
    db.exec("INSERT INTO t VALUES (10)", &[]).unwrap();
    db.close().unwrap();
    let reopened = Analytics::open_read_only(&path).unwrap();
    assert_eq!(crate::support::count(&reopened, "t"), 11);
    drop(reopened);
    // Once no handle holds it, the same ATTACH runs (the check refuses only held files), and
    // text that merely mentions ATTACH never was refused.
    other.exec(&attempts[0], &[]).unwrap();
    other.exec("DETACH x", &[]).unwrap();
    assert!(other.query("SELECT 'ATTACH ''a.db''' AS s", &[]).is_ok());
    // Nor are a backtick name holding `;` and a trailing byte-order mark more statements.
    assert!(other.query("SELECT 1 AS `a;b`", &[]).is_ok());
    assert!(other.query("SELECT 1;\u{feff}", &[]).is_ok());
}
