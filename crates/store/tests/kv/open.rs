//! SPEC §3.1–3.2: opening file and memory stores, persistence, WAL, and open failures.

use std::path::Path;
use std::time::Duration;

use store::{Durability, Error, ErrorKind, Kv, Location, Store, StoreConfig};

use crate::common::{file_store, memory_store, raw};

#[test]
fn file_data_survives_reopen() {
    let f = file_store();
    let v = f.store.set("config", "pool", "eu-west").unwrap();
    f.store
        .set_with_ttl("sessions", "abc", "alice", Duration::from_secs(3600))
        .unwrap();
    f.store.increment("stats", "hits", 41).unwrap();
    f.store.close().unwrap();

    let store = f.reopen();
    let got = store.get_with_version("config", "pool").unwrap();
    assert_eq!(
        (got.value.as_str(), got.version, got.expires_at),
        ("eu-west", v, None)
    );
    let session = store.get_with_version("sessions", "abc").unwrap();
    assert_eq!(session.value, "alice");
    assert_eq!(session.expires_at, Some(crate::common::START_MS + 3_600_000));
    assert_eq!(store.increment("stats", "hits", 1).unwrap(), 42);
    assert_eq!(store.count_all("").unwrap(), 3);
}

#[test]
fn default_open_creates_the_file_and_reopens_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    {
        let store = Store::open(&path).unwrap();
        assert_eq!(store.path(), Some(path.as_path()));
        store.set("g", "k", "v").unwrap();
    }
    assert!(path.is_file());
    let store = Store::open(&path).unwrap();
    assert_eq!(store.get("g", "k").unwrap(), "v");
}

#[test]
fn memory_stores_are_private_and_have_no_path() {
    let a = Store::in_memory().unwrap();
    let b = Store::in_memory().unwrap();
    a.set("g", "k", "a").unwrap();
    assert!(!b.exists("g", "k").unwrap());
    assert!(a.path().is_none());
    assert_eq!(a.config().location, Location::Memory);
    // A clone shares the database.
    let a2 = a.clone();
    assert_eq!(a2.get("g", "k").unwrap(), "a");
}

#[test]
fn non_sqlite_file_is_a_sqlite_error_from_store_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("garbage.db");
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&path, &garbage).unwrap();

    let err = Store::open(&path).unwrap_err();
    assert!(matches!(err, Error::Sqlite { .. }), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::Sqlite);
    assert_eq!(err.op(), "Store::open");
    assert!(
        std::error::Error::source(&err).is_some(),
        "the driver error is the source"
    );
    let msg = err.to_string();
    assert!(msg.starts_with("Store::open: "), "{msg}");

    // A text file is not a database either.
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "hello, this is not a database\n".repeat(200)).unwrap();
    let err = Store::open(&text).unwrap_err();
    assert_eq!(
        (err.kind(), err.op()),
        (ErrorKind::Sqlite, "Store::open"),
        "{err}"
    );
}

#[test]
fn missing_parent_directory_is_an_io_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no").join("such").join("state.db");
    let err = Store::open(&path).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::Io);
    assert_eq!(err.op(), "Store::open");
    assert!(!dir.path().join("no").exists(), "nothing was created");
}

#[test]
fn journal_mode_is_wal_for_file_stores() {
    for durability in [Durability::Full, Durability::Normal] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let store = Store::open_with(
            StoreConfig::file(&path)
                .with_durability(durability)
                .with_purge_interval(Duration::ZERO),
        )
        .unwrap();
        assert_eq!(store.config().durability, durability);
        store.set("g", "k", "v").unwrap();
        let mode: String = raw(&path)
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode.to_ascii_lowercase(), "wal", "{durability:?}");
        // `PRAGMA synchronous` is per connection and cannot be read from another connection;
        // both settings must at least open, write and read back.
        assert_eq!(store.get("g", "k").unwrap(), "v");
    }
}

#[test]
fn default_config_matches_the_spec() {
    let c = StoreConfig::file("x.db");
    assert_eq!(c.durability, Durability::Normal);
    assert_eq!(c.busy_timeout, Duration::from_secs(5));
    assert_eq!(c.readers, 4);
    assert_eq!(c.watch_capacity, 16);
    assert_eq!(c.purge_interval, Duration::from_secs(60));
    assert_eq!(c.max_value_bytes, store::MAX_VALUE_BYTES);
    assert_eq!(store::MAX_VALUE_BYTES, 512 * 1024 * 1024);
    assert_eq!(store::MAX_READERS, 64);
}

#[test]
fn two_handles_opened_on_one_file_see_each_others_writes() {
    let f = file_store();
    let other = f.reopen();
    f.store.set("g", "a", "1").unwrap();
    assert_eq!(other.get("g", "a").unwrap(), "1");
    other.set("g", "b", "2").unwrap();
    assert_eq!(f.store.get("g", "b").unwrap(), "2");
    assert_eq!(f.store.count("g").unwrap(), 2);
}

#[test]
fn stores_of_every_kind_are_send_sync_clone() {
    fn assert_traits<T: Send + Sync + Clone + 'static>() {}
    assert_traits::<Store>();
    let (m, _) = memory_store();
    let clone = m.clone();
    std::thread::spawn(move || clone.set("g", "k", "v").unwrap())
        .join()
        .unwrap();
    assert_eq!(m.get("g", "k").unwrap(), "v");
}

/// Whether creating a file in `dir` is actually refused (root ignores permission bits).
fn writes_refused(dir: &Path) -> bool {
    let probe = dir.join("probe");
    match std::fs::write(&probe, b"x") {
        Ok(()) => {
            let _ = std::fs::remove_file(&probe);
            false
        }
        Err(_) => true,
    }
}

#[test]
fn unwritable_location_is_a_clear_error_not_a_panic() {
    use std::os::unix::fs::PermissionsExt;

    let dir = tempfile::tempdir().unwrap();
    let ro = dir.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
    let mut targets = vec![Path::new("/proc/self/state.db").to_path_buf()];
    if writes_refused(&ro) {
        targets.push(ro.join("state.db"));
    }
    for path in targets {
        let result = std::panic::catch_unwind(|| Store::open(&path));
        let err = result.expect("open must not panic").unwrap_err();
        assert!(
            matches!(err.kind(), ErrorKind::Sqlite | ErrorKind::Io),
            "{}: unexpected {err:?}",
            path.display()
        );
        assert_eq!(err.op(), "Store::open");
        assert!(!err.to_string().is_empty());
    }
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn missing_parent_under_proc_is_a_clear_error() {
    let err = Store::open("/proc/store-test/x.db").unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Io | ErrorKind::Sqlite), "{err:?}");
    assert_eq!(err.op(), "Store::open");
}

/// h126 R2: a named pipe at the store's path made SQLite fail with "disk I/O error", and the
/// store's hint (free disk space, check permissions) was the wrong fix. It is refused as not a
/// regular file, and stays a pipe.
#[test]
fn opening_a_fifo_as_the_store_file_says_it_is_not_a_regular_file() {
    use std::os::unix::fs::FileTypeExt;
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("state.db");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let err = Store::open(&fifo).map(drop).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("not a regular file"), "{err}");
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
}
