//! WAL checkpoints of file stores: SQLite's inline checkpoints by default; with
//! `checkpoint_pages` set, a background thread copies the log into the database file once it
//! reaches that size, so the log stays bounded while the store stays open and no write has to
//! do it inline.

use std::path::Path;
use std::time::{Duration, Instant};

use store::{Kv, Store, StoreConfig};

const VALUE_BYTES: usize = 2048;

fn config(path: &Path, pages: u32) -> StoreConfig {
    StoreConfig::file(path)
        .with_purge_interval(Duration::ZERO)
        .with_change_feed(false)
        .with_checkpoint_pages(pages)
}

/// Autocommit writes of ~2 KB values: at least one new WAL page each.
fn write_many(store: &Store, n: usize) {
    let value = "v".repeat(VALUE_BYTES);
    for i in 0..n {
        store.set("bulk", &format!("key-{i:05}"), &value).unwrap();
    }
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// Waits up to 10 s for the database file (not the WAL) to reach `bytes`.
fn main_file_reaches(path: &Path, bytes: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if file_len(path) >= bytes {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn the_log_is_checkpointed_into_the_database_file_while_the_store_stays_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let store = Store::open_with(config(&path, 200)).unwrap();
    write_many(&store, 1500);
    // 1,500 × 2 KB of data: about 3 MB must have reached the main file, with the store open.
    assert!(
        main_file_reaches(&path, 2 << 20),
        "main file {} bytes, WAL {} bytes",
        file_len(&path),
        file_len(&path.with_extension("db-wal"))
    );
    assert_eq!(store.count("bulk").unwrap(), 1500);
}

/// A writer that never pauses left the background checkpoint no moment to finish, so SQLite
/// never restarted the log and it grew without bound (h147: 54–82 MB after 6,000 small sets
/// at 100 pages). Past 8 × the threshold the writer checkpoints inline after the thread, and
/// the log restarts: it stays within about 8 × 100 pages of 4 KiB, with the feed on and off.
#[test]
fn the_log_stays_bounded_under_a_writer_that_never_pauses() {
    for feed in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let store = Store::open_with(config(&path, 100).with_change_feed(feed)).unwrap();
        let wal = path.with_extension("db-wal");
        let value = "v".repeat(100);
        let mut largest = 0;
        for i in 0..6000 {
            store.set("g", &format!("key-{i:05}"), &value).unwrap();
            if i % 250 == 0 {
                largest = largest.max(file_len(&wal));
            }
        }
        largest = largest.max(file_len(&wal));
        // 8 × 100 pages of 4 KiB is 3.3 MB; one commit and SQLite's headers add little.
        assert!(largest < 4 << 20, "feed {feed}: the WAL reached {largest} bytes");
        assert_eq!(store.count("g").unwrap(), 6000);
    }
}

/// A threshold past 2^28 pages could never be reached (SQLite counts the log's frames in 32
/// bits), so nothing would ever be checkpointed until `sync` or `close` (h148): the open
/// refuses it, naming the field, before it creates the file.
#[test]
fn a_threshold_past_2_pow_28_pages_is_refused_before_the_file_is_made() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    for pages in [(1 << 28) + 1, u32::MAX] {
        let err = Store::open_with(config(&path, pages)).unwrap_err();
        assert_eq!(err.kind(), store::ErrorKind::InvalidInput, "{err}");
        assert_eq!(err.field(), Some("checkpoint_pages"), "{err}");
        assert!(!path.exists());
    }
    let store = Store::open_with(config(&path, 1 << 28)).unwrap();
    store.set("g", "k", "v").unwrap();
}

#[test]
fn nothing_is_checkpointed_below_the_threshold() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    // Far above what the test writes: SQLite's own 1,000-page auto-checkpoint must be off too.
    let store = Store::open_with(config(&path, 1_000_000)).unwrap();
    write_many(&store, 1500);
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        file_len(&path) < 1 << 20,
        "main file already {} bytes",
        file_len(&path)
    );
    assert!(file_len(&path.with_extension("db-wal")) > 3 << 20);
    // Closing checkpoints everything.
    store.close().unwrap();
    assert!(file_len(&path) > 3 << 20);
    let reopened = Store::open_with(config(&path, 0)).unwrap();
    assert_eq!(reopened.count("bulk").unwrap(), 1500);
}

#[test]
fn by_default_sqlite_checkpoints_inline() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let defaults = StoreConfig::file(&path);
    assert_eq!(defaults.checkpoint_pages, 0);
    let store = Store::open_with(
        defaults
            .with_purge_interval(Duration::ZERO)
            .with_change_feed(false),
    )
    .unwrap();
    write_many(&store, 1500);
    // SQLite checkpoints inline every 1,000 pages: done by the time the writes return.
    assert!(file_len(&path) >= 1 << 20, "main file {} bytes", file_len(&path));
}

#[test]
fn readers_and_writers_keep_working_during_background_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let store = Store::open_with(config(&path, 50)).unwrap();
    let reader = {
        let store = store.clone();
        std::thread::spawn(move || {
            let mut seen = 0;
            for _ in 0..2000 {
                seen = seen.max(store.count("bulk").unwrap());
            }
            seen
        })
    };
    write_many(&store, 1000);
    assert!(reader.join().unwrap() <= 1000);
    assert_eq!(store.count("bulk").unwrap(), 1000);
    store.close().unwrap();
}

#[test]
fn readers_see_every_commit_with_and_without_a_memory_map() {
    for mmap in [0, store::DEFAULT_READER_MMAP_BYTES, 4096] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let store = Store::open_with(config(&path, 0).with_reader_mmap_bytes(mmap)).unwrap();
        assert_eq!(store.config().reader_mmap_bytes, mmap);
        // Grow the file past a small mapping, then overwrite: every read sees the last commit.
        write_many(&store, 300);
        store.sync().unwrap();
        for round in 0..50 {
            store.set("bulk", "key-00007", &format!("round {round}")).unwrap();
            assert_eq!(store.get("bulk", "key-00007").unwrap(), format!("round {round}"));
        }
        assert_eq!(store.count("bulk").unwrap(), 300, "mmap {mmap}");
    }
}

/// A store with `busy_timeout`, whose database file holds one row, and another connection (as
/// another process would) reading on that snapshot while the store wrote 200 more rows.
fn store_with_a_reader_on_an_old_snapshot(
    busy_timeout: Duration,
) -> (tempfile::TempDir, Store, rusqlite::Connection) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let mut short_wait = config(&path, 0);
    short_wait.busy_timeout = busy_timeout;
    let store = Store::open_with(short_wait).unwrap();
    store.set("bulk", "first", "1").unwrap();
    store.sync().unwrap();
    let reader = rusqlite::Connection::open(&path).unwrap();
    reader.execute_batch("BEGIN").unwrap();
    let seen: i64 = reader
        .query_row("SELECT count(*) FROM entries", [], |r| r.get(0))
        .unwrap();
    assert_eq!(seen, 1);
    write_many(&store, 200);
    (dir, store, reader)
}

#[test]
fn sync_flushes_the_whole_log_or_fails_busy_while_an_old_snapshot_is_read() {
    let (dir, store, reader) = store_with_a_reader_on_an_old_snapshot(Duration::from_millis(100));
    let path = dir.path().join("state.db");

    let err = store.sync().unwrap_err();
    assert!(err.is_busy(), "{err}");
    assert!(err.to_string().contains("older snapshot"), "{err}");

    reader.execute_batch("COMMIT").unwrap();
    // A reader on the newest snapshot keeps the log from being truncated, not from being
    // copied: that sync succeeds.
    write_many(&store, 100);
    reader.execute_batch("BEGIN").unwrap();
    let seen: i64 = reader
        .query_row("SELECT count(*) FROM entries", [], |r| r.get(0))
        .unwrap();
    assert_eq!(seen, 201);
    store.sync().unwrap();
    assert_eq!(rows_in_database_file_alone(&path), 201);
    reader.execute_batch("COMMIT").unwrap();
    store.sync().unwrap();
    assert_eq!(file_len(&path.with_extension("db-wal")), 0);
}

/// Rows in a copy of the database file without its log.
fn rows_in_database_file_alone(path: &Path) -> i64 {
    let copy = path.with_extension("copy");
    std::fs::copy(path, &copy).unwrap();
    let rows = rusqlite::Connection::open(&copy)
        .unwrap()
        .query_row("SELECT count(*) FROM entries", [], |r| r.get(0))
        .unwrap();
    std::fs::remove_file(&copy).unwrap();
    rows
}

#[test]
fn sync_waits_for_another_checkpointer_and_never_reports_its_unfinished_flush() {
    let (dir, store, reader) = store_with_a_reader_on_an_old_snapshot(Duration::from_millis(200));
    let path = dir.path().join("state.db");
    // Another connection checkpoints, waiting for the reader; SQLite answers a second
    // checkpointer at once, without waiting and without an error.
    let other = rusqlite::Connection::open(&path).unwrap();
    other.busy_timeout(Duration::from_secs(2)).unwrap();
    std::thread::scope(|s| {
        let checkpointer = s.spawn(move || {
            other
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get::<_, i64>(0))
                .unwrap()
        });
        std::thread::sleep(Duration::from_millis(100));
        let err = store.sync().unwrap_err();
        assert!(err.is_busy(), "{err}");
        reader.execute_batch("COMMIT").unwrap();
        checkpointer.join().unwrap();
    });
    store.sync().unwrap();
    assert_eq!(rows_in_database_file_alone(&path), 201);
}
