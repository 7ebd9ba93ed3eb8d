//! How a [`Store`](crate::Store) is opened: location, durability, pool size, TTL purge, clock.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};

/// Largest value the store accepts, and the ceiling of [`StoreConfig::max_value_bytes`] (512 MiB;
/// SQLite's default 10^9-byte row limit rules out 1 GiB).
///
/// # Examples
/// ```
/// use store::{MAX_VALUE_BYTES, Store, StoreConfig};
/// assert_eq!(StoreConfig::memory().max_value_bytes, MAX_VALUE_BYTES);
/// let over = StoreConfig::memory().with_max_value_bytes(MAX_VALUE_BYTES + 1);
/// assert_eq!(Store::open_with(over).unwrap_err().field(), Some("max_value_bytes"));
/// ```
pub const MAX_VALUE_BYTES: usize = 512 * 1024 * 1024;

/// Default [`StoreConfig::reader_mmap_bytes`]: 64 MiB of the database file per reader.
///
/// # Examples
/// ```
/// use store::{DEFAULT_READER_MMAP_BYTES, StoreConfig};
/// assert_eq!(DEFAULT_READER_MMAP_BYTES, 64 << 20);
/// assert_eq!(StoreConfig::file("state.db").reader_mmap_bytes, DEFAULT_READER_MMAP_BYTES);
/// ```
pub const DEFAULT_READER_MMAP_BYTES: u64 = 64 << 20;

/// Largest number of reader connections a store may pool.
///
/// # Examples
/// ```
/// use store::{MAX_READERS, Store, StoreConfig};
/// let dir = tempfile::tempdir()?;
/// let config = StoreConfig { readers: MAX_READERS + 1, ..StoreConfig::file(dir.path().join("s.db")) };
/// assert_eq!(Store::open_with(config).unwrap_err().field(), Some("readers"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub const MAX_READERS: usize = 64;

/// Default buffer of a watch subscription (`StoreConfig::watch_capacity`): events beyond it
/// that a subscriber has not taken yet are dropped and counted.
///
/// # Examples
/// ```
/// use store::{DEFAULT_WATCH_CAPACITY, StoreConfig};
/// assert_eq!(StoreConfig::memory().watch_capacity, DEFAULT_WATCH_CAPACITY);
/// ```
pub const DEFAULT_WATCH_CAPACITY: usize = 16;

/// Longest busy timeout SQLite takes (`i32::MAX` milliseconds, about 24.8 days); longer ones
/// are cut to it.
pub(crate) const MAX_BUSY_TIMEOUT: Duration = Duration::from_millis(i32::MAX as u64);

/// Largest buffer a watch subscription may have (1,048,576 events, ~150 MiB). A subscription's
/// buffer is allocated whole when it is created, so an unbounded capacity would be an
/// allocation the process cannot survive; a watcher that needs more must drain faster (or read
/// the durable change feed, which keeps everything).
///
/// # Examples
/// ```
/// use store::{MAX_WATCH_CAPACITY, Store, StoreConfig, WatchOptions};
/// let store = Store::in_memory()?;
/// assert!(store.watch_with("*", WatchOptions { capacity: MAX_WATCH_CAPACITY + 1 }).is_err());
/// let config = StoreConfig { watch_capacity: MAX_WATCH_CAPACITY + 1, ..StoreConfig::memory() };
/// assert_eq!(Store::open_with(config).unwrap_err().field(), Some("watch_capacity"));
/// # Ok::<(), store::Error>(())
/// ```
pub const MAX_WATCH_CAPACITY: usize = 1 << 20;

/// Where the database lives.
///
/// # Examples
/// ```
/// use store::Location;
/// let loc = Location::File("state.db".into());
/// assert!(matches!(loc, Location::File(_)));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Location {
    /// A SQLite file (created if missing; its parent directory must exist).
    File(PathBuf),
    /// A private in-memory database, gone when the last handle drops.
    Memory,
}

/// How hard a commit pushes data to stable storage (`PRAGMA synchronous`).
///
/// # Examples
/// ```
/// use store::Durability;
/// assert_eq!(Durability::default(), Durability::Normal);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// `synchronous = FULL`: a committed write survives power loss.
    Full,
    /// `synchronous = NORMAL` (default): in WAL mode a committed write survives a process crash; the
    /// last commits before a power loss may roll back, but the file is never corrupted.
    #[default]
    Normal,
}

impl Durability {
    pub(crate) fn pragma_value(self) -> i64 {
        match self {
            Durability::Full => 2,
            Durability::Normal => 1,
        }
    }
}

/// The durable change feed: every committed mutation as a row of the `changes` table, readable
/// by any process with [`Store::changes_since`](crate::Store::changes_since).
///
/// # Examples
/// ```
/// use store::{ChangeFeedConfig, StoreConfig};
/// let mut config = StoreConfig::file("state.db");
/// assert!(config.changes.enabled);
/// config.changes = ChangeFeedConfig { max_rows: Some(10_000), ..ChangeFeedConfig::default() };
/// assert!(!StoreConfig::memory().changes.enabled);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeFeedConfig {
    /// Write change rows (default: on for file stores, off for memory stores, whose feed no
    /// other process could read). Versions work either way.
    pub enabled: bool,
    /// Prune rows older than this (default 7 days; `None` = keep by age).
    pub max_age: Option<Duration>,
    /// Keep at most this many newest rows (default 1,000,000; `None` = no limit).
    pub max_rows: Option<u64>,
    /// Store the new value in `Set` rows (default true).
    pub record_values: bool,
}

impl Default for ChangeFeedConfig {
    fn default() -> Self {
        ChangeFeedConfig {
            enabled: true,
            max_age: Some(Duration::from_secs(7 * 24 * 3600)),
            max_rows: Some(1_000_000),
            record_values: true,
        }
    }
}

/// Settings of a store. Build one with [`StoreConfig::file`] or [`StoreConfig::memory`], then
/// adjust fields.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use store::{Durability, Store, StoreConfig};
/// let dir = tempfile::tempdir()?;
/// let mut config = StoreConfig::file(dir.path().join("state.db"));
/// config.durability = Durability::Full;
/// config.purge_interval = Duration::ZERO; // no background purge thread
/// let store = Store::open_with(config)?;
/// // Struct-update syntax works too:
/// let memory = StoreConfig { watch_capacity: 64, ..StoreConfig::memory() };
/// assert_eq!(Store::open_with(memory)?.listener_count(), 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct StoreConfig {
    /// Where the database lives.
    pub location: Location,
    /// `PRAGMA synchronous` (default `Normal`).
    pub durability: Durability,
    /// How long a write waits for another process's write lock (default 5 s; SQLite takes at
    /// most `i32::MAX` milliseconds, about 24.8 days, and longer waits are cut to that).
    /// Threads of this process queue for the store's writer at least 30 s (this long, if
    /// longer), then fail busy: a bound that ends lock cycles through the analytics layer.
    pub busy_timeout: Duration,
    /// Reader connections for file stores (default 4, at most 64; memory stores use one
    /// connection). With 0, reads go through the writer's connection and so wait for its
    /// transactions, as in a memory store; an analytics `kv_entries` scan opens a reader of its
    /// own either way.
    pub readers: usize,
    /// Default buffer of a watch subscription (default 16, at least 1, at most
    /// [`MAX_WATCH_CAPACITY`]).
    pub watch_capacity: usize,
    /// How often the background thread deletes expired rows (default 60 s; `ZERO` = no thread).
    pub purge_interval: Duration,
    /// Largest accepted value in bytes (default and ceiling [`MAX_VALUE_BYTES`]).
    pub max_value_bytes: usize,
    /// The durable change feed (see [`ChangeFeedConfig`]).
    pub changes: ChangeFeedConfig,
    /// File stores: `0` (default) leaves WAL checkpoints to SQLite, which runs one inline in
    /// the write that takes the log past 1,000 pages (that write stalls for a copy and two
    /// fsyncs). `N > 0` hands them to a background thread that checkpoints once the log holds
    /// `N` pages; past `8 × N` pages (a writer that never pauses, which leaves the thread's
    /// checkpoint no moment to finish) the writer checkpoints inline after it, so the log stays
    /// within `8 × N` pages. At most 2^28 (268,435,456): a larger value fails the open with
    /// `InvalidInput`. Measured on 50,000 autocommit sets at `N = 1000`: p99.9 latency
    /// 2.5 ms → 0.25 ms, median 9 → 12 µs, same throughput, largest log 4 MB → 33 MB; choose
    /// it when write stalls matter more than the median.
    pub checkpoint_pages: u32,
    /// File stores: how much of the database file each reader connection memory-maps
    /// (`PRAGMA mmap_size`; default [`DEFAULT_READER_MMAP_BYTES`], 64 MiB; `0` = off, SQLite's
    /// own default). Every commit empties each reader's page cache; with the file mapped,
    /// re-reading a page needs no system call. With one writer committing 1,000 sets/s, gets
    /// ran at 0.86–0.88× their no-writer rate with a mapping and 0.60–0.79× without (over
    /// runs); under a writer committing flat out, 0.15–0.19× vs 0.24–0.26× (the growing file
    /// is remapped). Trade-offs: an I/O
    /// error on a mapped page arrives as `SIGBUS` instead of an error, and mapped pages count in
    /// the process's RSS (they are the OS's file cache, not extra memory).
    pub reader_mmap_bytes: u64,
    /// The time source (default [`SystemClock`]); tests use [`ManualClock`](crate::ManualClock).
    pub clock: Arc<dyn Clock>,
}

// By hand rather than derived so that a `Clock` need not implement `Debug`.
impl std::fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreConfig")
            .field("location", &self.location)
            .field("durability", &self.durability)
            .field("busy_timeout", &self.busy_timeout)
            .field("readers", &self.readers)
            .field("watch_capacity", &self.watch_capacity)
            .field("purge_interval", &self.purge_interval)
            .field("max_value_bytes", &self.max_value_bytes)
            .field("changes", &self.changes)
            .field("checkpoint_pages", &self.checkpoint_pages)
            .field("reader_mmap_bytes", &self.reader_mmap_bytes)
            .finish_non_exhaustive()
    }
}

impl StoreConfig {
    /// Defaults for a file-backed store at `path`.
    ///
    /// # Examples
    /// ```
    /// let config = store::StoreConfig::file("state.db");
    /// assert_eq!(config.readers, 4);
    /// ```
    pub fn file(path: impl AsRef<Path>) -> Self {
        Self::with_location(Location::File(path.as_ref().to_path_buf()))
    }

    /// Defaults for a private in-memory store.
    ///
    /// # Examples
    /// ```
    /// let config = store::StoreConfig::memory();
    /// assert_eq!(config.location, store::Location::Memory);
    /// ```
    pub fn memory() -> Self {
        Self::with_location(Location::Memory)
    }

    fn with_location(location: Location) -> Self {
        let changes = ChangeFeedConfig {
            enabled: !matches!(location, Location::Memory),
            ..ChangeFeedConfig::default()
        };
        StoreConfig {
            changes,
            location,
            durability: Durability::Normal,
            busy_timeout: Duration::from_secs(5),
            readers: 4,
            watch_capacity: DEFAULT_WATCH_CAPACITY,
            purge_interval: Duration::from_secs(60),
            max_value_bytes: MAX_VALUE_BYTES,
            checkpoint_pages: 0,
            reader_mmap_bytes: DEFAULT_READER_MMAP_BYTES,
            clock: Arc::new(SystemClock),
        }
    }

    /// Sets the clock (builder style).
    ///
    /// # Examples
    /// ```
    /// use std::sync::Arc;
    /// use store::{ManualClock, StoreConfig};
    /// let config = StoreConfig::memory().with_clock(Arc::new(ManualClock::new(0)));
    /// ```
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Sets the purge interval (builder style; `ZERO` disables the purge thread).
    ///
    /// # Examples
    /// ```
    /// let config = store::StoreConfig::memory().with_purge_interval(std::time::Duration::ZERO);
    /// ```
    pub fn with_purge_interval(mut self, interval: Duration) -> Self {
        self.purge_interval = interval;
        self
    }

    /// Sets the durability (builder style).
    ///
    /// # Examples
    /// ```
    /// let config = store::StoreConfig::file("x.db").with_durability(store::Durability::Full);
    /// ```
    pub fn with_durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Turns the durable change feed on or off (builder style).
    ///
    /// # Examples
    /// ```
    /// let config = store::StoreConfig::file("x.db").with_change_feed(false);
    /// assert!(!config.changes.enabled);
    /// ```
    pub fn with_change_feed(mut self, enabled: bool) -> Self {
        self.changes.enabled = enabled;
        self
    }

    /// Sets the background checkpoint threshold in WAL pages (builder style; `0`, the default,
    /// = SQLite's inline checkpoints). See [`StoreConfig::checkpoint_pages`].
    ///
    /// # Examples
    /// ```
    /// let config = store::StoreConfig::file("x.db").with_checkpoint_pages(4000);
    /// assert_eq!(config.checkpoint_pages, 4000);
    /// ```
    pub fn with_checkpoint_pages(mut self, pages: u32) -> Self {
        self.checkpoint_pages = pages;
        self
    }

    /// Sets how much of the file each reader memory-maps (builder style; `0` = off). See
    /// [`StoreConfig::reader_mmap_bytes`].
    ///
    /// # Examples
    /// ```
    /// let config = store::StoreConfig::file("x.db").with_reader_mmap_bytes(256 << 20);
    /// assert_eq!(config.reader_mmap_bytes, 256 << 20);
    /// ```
    pub fn with_reader_mmap_bytes(mut self, bytes: u64) -> Self {
        self.reader_mmap_bytes = bytes;
        self
    }

    /// Sets the largest accepted value (builder style).
    ///
    /// # Examples
    /// ```
    /// let config = store::StoreConfig::memory().with_max_value_bytes(1024);
    /// ```
    pub fn with_max_value_bytes(mut self, max: usize) -> Self {
        self.max_value_bytes = max;
        self
    }

    pub(crate) fn validate(&self, op: &'static str) -> Result<()> {
        if self.readers > MAX_READERS {
            return Err(Error::invalid(
                op,
                "readers",
                format!(
                    "{} readers requested, at most {MAX_READERS} allowed; ask for fewer",
                    self.readers
                ),
            ));
        }
        if !(1..=MAX_WATCH_CAPACITY).contains(&self.watch_capacity) {
            return Err(Error::invalid(
                op,
                "watch_capacity",
                format!(
                    "{} is out of range: a subscription buffers 1 to {MAX_WATCH_CAPACITY} events",
                    self.watch_capacity
                ),
            ));
        }
        if self.max_value_bytes > MAX_VALUE_BYTES {
            return Err(Error::invalid(
                op,
                "max_value_bytes",
                format!(
                    "{} exceeds the ceiling of {MAX_VALUE_BYTES} bytes; pass at most that",
                    self.max_value_bytes
                ),
            ));
        }
        if let Location::File(path) = &self.location {
            if path.as_os_str().is_empty() {
                return Err(Error::invalid(
                    op,
                    "path",
                    "the database path is empty; name the database file",
                ));
            }
            if path.to_string_lossy().contains('\0') {
                return Err(Error::invalid(
                    op,
                    "path",
                    "the database path contains NUL; remove it",
                ));
            }
        }
        Ok(())
    }
}
