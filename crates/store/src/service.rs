//! [`Service`]: one entry point that owns the layers, with a JSON action table (the CLI's
//! backend, and the seam for future remote front-ends).
//!
//! # Examples
//! ```
//! use serde_json::json;
//! use store::{Kv, Service, ServiceConfig};
//! let dir = tempfile::tempdir()?;
//! let service = Service::open(ServiceConfig::new(dir.path()))?;
//! service.call("store/scoped/set", json!({"namespace": "app", "key": "k", "value": "v"}))?;
//! assert_eq!(service.store().get("app:default", "k")?, "v"); // the library call it ran
//! let err = service.call("store/nope", json!({})).unwrap_err();
//! assert_eq!(err.field(), Some("action"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod actions;
mod args;

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::config::StoreConfig;
use crate::error::{Error, Result};
use crate::kv::Store;

/// Settings of a [`Service`].
///
/// # Examples
/// ```
/// let dir = tempfile::tempdir()?;
/// let config = store::ServiceConfig::new(dir.path());
/// assert_eq!(config.home, dir.path());
/// assert!(matches!(&config.store.location, store::Location::File(p) if p.ends_with("state.db")));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// The data directory (created on open). Holds `state.db`.
    pub home: PathBuf,
    /// Settings of the KV store (by default a file store at `home/state.db`).
    pub store: StoreConfig,
    /// The analytics database (default `home/workspace.duckdb`), opened on first use.
    pub analytics_path: Option<PathBuf>,
}

impl ServiceConfig {
    /// Defaults for a service rooted at `home`.
    ///
    /// # Examples
    /// ```
    /// let config = store::ServiceConfig::new("/tmp/store-home");
    /// ```
    pub fn new(home: impl AsRef<Path>) -> ServiceConfig {
        let home = home.as_ref().to_path_buf();
        ServiceConfig {
            store: StoreConfig::file(home.join("state.db")),
            analytics_path: None,
            home,
        }
    }

    /// Defaults rooted at [`default_home`].
    ///
    /// # Errors
    /// `InvalidInput { field: "home" }` when no home directory can be determined.
    ///
    /// # Examples
    /// ```
    /// // With STORE_HOME=/srv/store this is rooted at /srv/store.
    /// if let Ok(config) = store::ServiceConfig::from_env() {
    ///     assert!(config.home.is_absolute() || std::env::var_os("STORE_HOME").is_some());
    /// }
    /// ```
    pub fn from_env() -> Result<ServiceConfig> {
        Ok(Self::new(default_home()?))
    }
}

/// The default data directory: `$STORE_HOME` if set, else the platform data directory plus
/// `store` (`$XDG_DATA_HOME/store` or `~/.local/share/store` on Linux, `~/Library/Application
/// Support/store` on macOS, `%APPDATA%\store` on Windows).
///
/// # Errors
/// `InvalidInput { field: "home" }` when neither is available.
///
/// # Examples
/// ```
/// match store::default_home() {
///     Ok(home) => println!("data lives in {}", home.display()),
///     Err(e) => eprintln!("{e}"), // no STORE_HOME and no platform data directory
/// }
/// ```
pub fn default_home() -> Result<PathBuf> {
    if let Some(home) = std::env::var_os("STORE_HOME").filter(|h| !h.is_empty()) {
        return Ok(PathBuf::from(home));
    }
    dirs::data_dir().map(|d| d.join("store")).ok_or_else(|| {
        Error::invalid(
            "default_home",
            "home",
            "no platform data directory is known here; set STORE_HOME or pass --home",
        )
    })
}

/// The `Io` error of a home directory that cannot be created. The OS says "File exists" for a
/// home that is a file, or "Not a directory" for one below a file, neither of which names the
/// culprit or the fix; so a path in the way that is not a directory is named instead.
fn home_error(home: &Path, source: std::io::Error) -> Error {
    // `symlink_metadata`: a dangling symbolic link is in the way too.
    let in_the_way = home
        .ancestors()
        .find(|p| !p.as_os_str().is_empty() && p.symlink_metadata().is_ok() && !p.is_dir());
    match in_the_way {
        Some(path) => Error::Io {
            op: "Service::open",
            path: Some(path.to_path_buf()),
            source: std::io::Error::new(
                std::io::ErrorKind::NotADirectory,
                format!(
                    "not a directory{}; pick another home (--home or STORE_HOME) or move it away",
                    if path == home {
                        String::new()
                    } else {
                        format!(", so the home {} cannot be created below it", home.display())
                    }
                ),
            ),
        },
        None => Error::Io {
            op: "Service::open",
            path: Some(home.to_path_buf()),
            source,
        },
    }
}

/// Owns the store layers and runs named actions on them.
///
/// # Examples
/// ```
/// use serde_json::json;
/// let dir = tempfile::tempdir()?;
/// let service = store::Service::open(store::ServiceConfig::new(dir.path()))?;
/// let set = service.call("store/set", json!({"group": "g", "key": "k", "value": "v"}))?;
/// let got = service.call("store/get", json!({"group": "g", "key": "k"}))?;
/// assert_eq!(got["value"], "v");
/// assert_eq!(got["version"], set["version"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Service {
    home: PathBuf,
    store: Store,
    #[cfg_attr(not(feature = "analytics"), allow(dead_code))]
    analytics_path: PathBuf,
    #[cfg(feature = "analytics")]
    analytics: std::sync::OnceLock<crate::analytics::Analytics>,
    /// Held while the analytics database opens: a file has one read-write handle per process,
    /// so a second thread must wait for the first open rather than race it.
    #[cfg(feature = "analytics")]
    analytics_opening: parking_lot::Mutex<()>,
    /// Set when `close` starts, so an `analytics()` still opening the database gives up.
    #[cfg(feature = "analytics")]
    closing: std::sync::atomic::AtomicBool,
}

/// How long an unfinished analytics file may stay so before it counts as left behind by a
/// process that died creating it (DuckDB locks a new file and writes its headers at once).
#[cfg(feature = "analytics")]
const EMPTY_FILE_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// Whether the file (`meta`: its metadata) changed within [`EMPTY_FILE_GRACE`]; `None` without
/// a modification time. An mtime ahead of this clock (skew, a copied file) counts as fresh only
/// within the grace too, or a skewed file would look "being created" until the clock caught up.
#[cfg(feature = "analytics")]
fn changed_within_grace(meta: &std::fs::Metadata) -> Option<bool> {
    let since = meta.modified().ok()?;
    Some(match since.elapsed() {
        Ok(age) => age < EMPTY_FILE_GRACE,
        Err(ahead) => ahead.duration() < EMPTY_FILE_GRACE,
    })
}

/// A busy error (`Error::is_busy`, kind `DuckDb`) for a database file another process may
/// still be creating: callers retry it like DuckDB's own lock refusal.
#[cfg(feature = "analytics")]
fn creating_elsewhere(op: &'static str, path: &Path) -> Error {
    let message = format!("{}: {}", path.display(), crate::error::CREATING_ELSEWHERE);
    Error::duckdb(
        op,
        "open the analytics database",
        duckdb::Error::DuckDBFailure(duckdb::ffi::Error::new(1), Some(message)),
    )
}

/// DuckDB's refusal of a file without a database header (an empty one included), or of one
/// whose headers stop short (see [`crate::analytics::unfinished_database_file`]).
#[cfg(feature = "analytics")]
fn is_not_a_database(e: &Error) -> bool {
    let text = e.to_string();
    text.contains("not a valid DuckDB database file") || text.contains("Could not read enough bytes")
}

/// Renames the unfinished file `checked` (its metadata, read before) at `path` aside, to
/// `.<name>.unfinished-<pid>-<nanos>-<n>` beside it, never deleting it.
///
/// Movers take turns on `.<name>.move-lock` beside it (a file of its own, opened read-write, so
/// the lock also works on NFS and cannot be held up by anyone locking the directory), never
/// waiting for it: another mover at work means try again later. Under the lock the
/// file is renamed only if it is still `checked` (same device, inode and length): another
/// waiter may have moved it first and DuckDB created a new database there meanwhile, which is
/// then left alone. Nothing else can put a file at `path` while the unfinished one is there
/// (DuckDB creates one only where none exists), so the check cannot go stale before the
/// rename. Only on Unix, where a file's identity can be compared; elsewhere nothing is moved.
#[cfg(feature = "analytics")]
fn move_aside_if_still(path: &Path, checked: &std::fs::Metadata) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        static MOVED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let beside = |suffix: &str| {
            let mut name = std::ffi::OsString::from(".");
            name.push(path.file_name().unwrap_or_default());
            name.push(suffix);
            path.with_file_name(name)
        };
        let turn = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(beside(".move-lock"))?;
        match turn.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Ok(()),
            // No file locks on this system: the identity check alone.
            Err(std::fs::TryLockError::Error(e)) if e.kind() == std::io::ErrorKind::Unsupported => {}
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
        let current = match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            other => other?,
        };
        if current.dev() != checked.dev() || current.ino() != checked.ino() || current.len() != checked.len()
        {
            return Ok(()); // moved by another waiter, or someone's new database
        }
        let n = MOVED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let aside = beside(&format!(".unfinished-{}-{nanos}-{n}", std::process::id()));
        std::fs::rename(path, &aside)?;
        drop(turn);
        log::warn!(
            "store: the analytics file {} was left unfinished by a process that died creating it; \
             moved aside to {} (it holds no data) and created afresh",
            path.display(),
            aside.display()
        );
    }
    #[cfg(not(unix))]
    let _ = (path, checked);
    Ok(())
}

impl Service {
    /// Creates the home directory if needed and opens the store in it.
    ///
    /// # Errors
    /// `Io` if the directory cannot be created (naming the path in the way if the home or a
    /// parent of it is a file); otherwise as [`Store::open_with`].
    ///
    /// # Examples
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let service = store::Service::open(store::ServiceConfig::new(dir.path().join("new")))?;
    /// assert!(dir.path().join("new/state.db").exists());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(config: ServiceConfig) -> Result<Service> {
        std::fs::create_dir_all(&config.home).map_err(|source| home_error(&config.home, source))?;
        let store = Store::open_with(config.store)?;
        Ok(Service {
            analytics_path: config
                .analytics_path
                .unwrap_or_else(|| config.home.join("workspace.duckdb")),
            home: config.home,
            store,
            #[cfg(feature = "analytics")]
            analytics: std::sync::OnceLock::new(),
            #[cfg(feature = "analytics")]
            analytics_opening: parking_lot::Mutex::new(()),
            #[cfg(feature = "analytics")]
            closing: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The data directory.
    ///
    /// # Examples
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let service = store::Service::open(store::ServiceConfig::new(dir.path()))?;
    /// assert_eq!(service.home(), dir.path());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// The KV store.
    ///
    /// # Examples
    /// ```
    /// use store::Kv;
    /// let dir = tempfile::tempdir()?;
    /// let service = store::Service::open(store::ServiceConfig::new(dir.path()))?;
    /// service.store().set("g", "k", "v")?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The analytics database, opened (read-write) on first use with the KV store attached as
    /// `kv_entries`. While another process has the file open read-write, the first use waits
    /// for it up to the store's `busy_timeout` (DuckDB itself refuses at once).
    ///
    /// # Errors
    /// A busy error ([`Error::is_busy`]) when another process still holds the file after the
    /// busy timeout, or at once when this process holds it (another `Service` on this home, or
    /// the caller's own `Analytics` handle on its `workspace.duckdb`); this method exists only
    /// with the `analytics` feature (without it the Service's analytics actions are
    /// `Unsupported`);
    /// otherwise as [`Analytics::open`](crate::analytics::Analytics::open).
    ///
    /// # Examples
    /// ```
    /// use store::Kv;
    /// let dir = tempfile::tempdir()?;
    /// let service = store::Service::open(store::ServiceConfig::new(dir.path()))?;
    /// service.store().set("g", "k", "v")?;
    /// let rows = service.analytics()?.query("SELECT count(*) FROM kv_entries", &[])?;
    /// assert_eq!(rows.rows[0][0], store::analytics::Value::Int(1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "analytics")]
    pub fn analytics(&self) -> Result<&crate::analytics::Analytics> {
        let closed = || Error::Closed {
            op: "Service::analytics",
            what: "service",
        };
        if self.is_closing() {
            return Err(closed());
        }
        if let Some(db) = self.analytics.get() {
            return Ok(db);
        }
        let _opening = self.analytics_opening.lock();
        if let Some(db) = self.analytics.get() {
            return Ok(db);
        }
        // DuckDB lets one process at a time open the file read-write, and refuses the others at
        // once. Like SQLite's busy timeout, wait for that process (another `store` command,
        // say) to let go, for up to the store's busy timeout.
        let deadline = std::time::Instant::now() + self.store.config().busy_timeout;
        let db = loop {
            match self.open_analytics_file() {
                // A holder in this process (another Service on this home, a handle of the
                // caller's, perhaps on this very thread) is not waited for: busy at once.
                Err(e) if e.is_busy() && crate::analytics::open_in_this_process(&self.analytics_path) => {
                    return Err(e);
                }
                Err(e) if e.is_busy() && std::time::Instant::now() < deadline => {
                    if self.is_closing() {
                        return Err(closed());
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                other => break other?,
            }
        };
        db.attach_kv(&self.store)?;
        // A split export waits for another one into its directory no longer than for the file.
        db.set_busy_timeout(Some(self.store.config().busy_timeout));
        // `close` sets `closing`, then takes `analytics_opening`: it either started before this
        // check, or waits for this call and then closes what it publishes.
        if self.is_closing() {
            let _ = db.close();
            return Err(closed());
        }
        Ok(self.analytics.get_or_init(|| db))
    }

    /// One attempt to open the analytics file. DuckDB creates a new file before it locks it and
    /// writes its headers, so another process can meet it empty: DuckDB then calls it "not a
    /// valid DuckDB database file", and the creator, retrying, can meet the same empty file
    /// and never write a header at all (a process killed at that moment leaves one too, and one
    /// killed between the header writes leaves a file DuckDB refuses for good). An unfinished
    /// file ([`crate::analytics::unfinished_database_file`]) is therefore busy while it is
    /// fresh, and once unchanged for [`EMPTY_FILE_GRACE`] it is moved aside (never deleted:
    /// should a stalled process still create its database there, that lands in the moved-aside
    /// file rather than being unlinked) so that the open creates the database afresh.
    #[cfg(feature = "analytics")]
    fn open_analytics_file(&self) -> Result<crate::analytics::Analytics> {
        const OP: &str = "Service::analytics";
        let path = &self.analytics_path;
        let err = match crate::analytics::Analytics::open(path) {
            Err(e) if is_not_a_database(&e) => e,
            other => return other,
        };
        // The file DuckDB refused may have changed since: moved aside by another waiter
        // (gone), or finished by its creator. Either way it is worth another try; only a file
        // still refused then, and not unfinished, is damaged (or another program's).
        let empty = match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(creating_elsewhere(OP, path)),
            Ok(m) if crate::analytics::unfinished_database_file(path, &m) => Some(m),
            Ok(m) if m.is_file() => return Self::open_finished_file(OP, path),
            _ => None,
        };
        let mut wal = path.as_os_str().to_os_string();
        wal.push(".wal");
        let wal_empty = std::fs::metadata(&wal).map_or(true, |m| m.len() == 0);
        let (Some(fresh), true) = (empty.as_ref().and_then(changed_within_grace), wal_empty) else {
            return Err(err); // a damaged database: not ours to touch
        };
        if fresh {
            return Err(creating_elsewhere(OP, path));
        }
        let (Some(checked), true) = (empty, cfg!(unix)) else {
            return Err(err); // no file identity to check a move against: leave it
        };
        move_aside_if_still(path, &checked).map_err(|source| Error::Io {
            op: OP,
            path: Some(path.clone()),
            source,
        })?;
        // Another waiter may be creating the new file right now: then it is busy like any
        // fresh one, and the caller's retry finds it complete.
        match crate::analytics::Analytics::open(path) {
            Err(e) if is_not_a_database(&e) => Err(creating_elsewhere(OP, path)),
            other => other,
        }
    }

    /// Opens a refused file that is no longer unfinished: its creator has written its headers
    /// since. DuckDB reads a file's header before it takes the file's lock, so an open that
    /// waited for the lock while the file was being created (or created afresh, after a stale
    /// one was moved aside) can still refuse it: a file changed within [`EMPTY_FILE_GRACE`]
    /// is therefore busy, for the caller to retry, rather than damaged.
    #[cfg(feature = "analytics")]
    fn open_finished_file(op: &'static str, path: &Path) -> Result<crate::analytics::Analytics> {
        match crate::analytics::Analytics::open(path) {
            Err(e)
                if is_not_a_database(&e)
                    && std::fs::metadata(path)
                        .ok()
                        .as_ref()
                        .and_then(changed_within_grace)
                        == Some(true) =>
            {
                Err(creating_elsewhere(op, path))
            }
            other => other,
        }
    }

    #[cfg(feature = "analytics")]
    fn is_closing(&self) -> bool {
        self.closing.load(std::sync::atomic::Ordering::SeqCst) || self.store.is_closed()
    }

    /// The store confined to a namespace.
    ///
    /// # Examples
    /// ```
    /// use store::Kv;
    /// let dir = tempfile::tempdir()?;
    /// let service = store::Service::open(store::ServiceConfig::new(dir.path()))?;
    /// service.scoped("tenant-a")?.set("config", "k", "v")?;
    /// assert!(service.store().exists("tenant-a:config", "k")?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn scoped(&self, namespace: &str) -> Result<crate::ScopedStore> {
        self.store.scoped(namespace)
    }

    /// Runs one action with a JSON object of arguments: `store/<name>` and
    /// `store/scoped/<name>` (with a `namespace`) for the KV operations, plus the feed and
    /// analytics actions; the error for an unknown action lists them all.
    ///
    /// # Errors
    /// `InvalidInput { field: "action" }` for an unknown action, `InvalidInput { field: <arg> }`
    /// for a missing or mistyped argument, `InvalidInput { field: "args" }` for an argument the
    /// action does not take (nothing runs), and the action's own errors.
    ///
    /// # Examples
    /// ```
    /// use serde_json::json;
    /// let dir = tempfile::tempdir()?;
    /// let service = store::Service::open(store::ServiceConfig::new(dir.path()))?;
    /// let err = service.call("store/get", json!({"group": "g"})).unwrap_err();
    /// assert_eq!(err.field(), Some("key"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn call(&self, action: &str, args: Value) -> Result<Value> {
        actions::call(self, action, args, None)
    }

    /// [`Service::call`], reporting DuckDB's progress estimate to `progress` while the
    /// long analytics actions (`store/import`, `store/export-parquet`,
    /// `store/export-split-parquet`) run; other actions ignore it. The CLI draws its progress
    /// bars from this.
    ///
    /// # Examples
    /// ```
    /// use serde_json::json;
    /// let dir = tempfile::tempdir()?;
    /// let service = store::Service::open(store::ServiceConfig::new(dir.path()))?;
    /// service.call("store/sql", json!({"sql": "CREATE TABLE t AS SELECT * FROM range(10)"}))?;
    /// let out = dir.path().join("t.parquet");
    /// let r = service.call_with_progress(
    ///     "store/export-parquet",
    ///     json!({"table": "t", "path": out}),
    ///     &|p| eprintln!("{:?}", p.percentage),
    /// )?;
    /// assert_eq!(r["rows"], 10);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "analytics")]
    pub fn call_with_progress(
        &self,
        action: &str,
        args: Value,
        progress: crate::analytics::ProgressFn<'_>,
    ) -> Result<Value> {
        actions::call(self, action, args, Some(progress))
    }

    /// Closes the store. Afterwards every action returns `Closed`.
    ///
    /// Both layers close even if one of them fails, and the first error is returned. Called
    /// where the analytics connection is held (a progress callback, `with_connection`), the
    /// analytics layer cannot close yet and the call returns `InvalidInput { field:
    /// "connection" }`: the Service is closed all the same (every later action is `Closed`),
    /// but its analytics file stays open until `close` is called again once the job has ended,
    /// or the Service is dropped.
    ///
    /// # Examples
    /// ```
    /// use serde_json::json;
    /// let dir = tempfile::tempdir()?;
    /// let service = store::Service::open(store::ServiceConfig::new(dir.path()))?;
    /// service.close()?;
    /// assert!(service.call("store/count", json!({})).unwrap_err().is_closed());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn close(&self) -> Result<()> {
        // Both layers close even if one fails (the first error is returned), so every later
        // call is refused as `Closed` whatever went wrong here.
        // An `analytics()` opening the database meanwhile gives up; under the lock it opens
        // under, whatever it published is closed here.
        #[cfg(feature = "analytics")]
        let analytics = {
            self.closing.store(true, std::sync::atomic::Ordering::SeqCst);
            let _opening = self.analytics_opening.lock();
            match self.analytics.get() {
                Some(db) => db.close(),
                None => Ok(()),
            }
        };
        #[cfg(not(feature = "analytics"))]
        let analytics = Ok(());
        let store = self.store.close();
        analytics.and(store)
    }
}

#[cfg(all(test, unix, feature = "analytics"))]
mod tests {
    use super::move_aside_if_still;

    fn asides(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .contains(".unfinished-")
            })
            .count()
    }

    #[test]
    fn an_empty_file_checked_stale_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.duckdb");
        std::fs::write(&path, "").unwrap();
        let checked = std::fs::metadata(&path).unwrap();
        move_aside_if_still(&path, &checked).unwrap();
        assert!(!path.exists());
        assert_eq!(asides(dir.path()), 1);
        // Already moved by another waiter: nothing to do.
        move_aside_if_still(&path, &checked).unwrap();
        assert_eq!(asides(dir.path()), 1);
    }

    #[test]
    fn a_file_created_after_the_check_is_left_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.duckdb");
        std::fs::write(&path, "").unwrap();
        let checked = std::fs::metadata(&path).unwrap();
        // Another waiter moved the stale file and DuckDB created a new database in its place.
        std::fs::rename(&path, dir.path().join("elsewhere")).unwrap();
        std::fs::write(&path, "new database").unwrap();
        move_aside_if_still(&path, &checked).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new database");
        assert_eq!(asides(dir.path()), 0);
    }
}
