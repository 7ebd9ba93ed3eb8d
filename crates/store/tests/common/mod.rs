//! Shared fixtures: real SQLite files in temp dirs, a manual clock, raw SQLite access.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use store::{
    Change, Error, ErrorKind, Event, EventKind, Kv, ManualClock, Quota, Store, StoreConfig, Subscription,
    UnixMillis, Usage,
};

/// Start time of every manual clock in the fixtures (Unix ms).
pub const START_MS: i64 = 1_000_000;

/// `config` with a busy timeout of a minute. SQLite's busy handler is not fair, so under load a
/// process in a tight write loop can miss every turn for the default 5 s; where waiting for the
/// lock is not what a test is about, its processes wait as long as it takes.
pub fn patient(mut config: StoreConfig) -> StoreConfig {
    config.busy_timeout = Duration::from_secs(60);
    config
}

/// A file-backed store in a fresh temp dir, with a manual clock and no purge thread.
///
/// Fields drop in declaration order: the store closes before its directory is removed.
pub struct Fixture {
    pub store: Store,
    pub clock: Arc<ManualClock>,
    pub dir: tempfile::TempDir,
}

impl Fixture {
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("state.db")
    }

    pub fn reopen(&self) -> Store {
        Store::open_with(self.config()).expect("reopen")
    }

    pub fn config(&self) -> StoreConfig {
        fixture_config(&self.path(), &self.clock)
    }

    /// A raw rusqlite connection on the store's file (for checks the API cannot make).
    pub fn raw(&self) -> rusqlite::Connection {
        raw(&self.path())
    }

    /// Physical rows in `entries`, live or expired.
    pub fn raw_rows(&self) -> i64 {
        raw_rows(&self.path())
    }
}

pub fn file_store() -> Fixture {
    file_store_with(|c| c)
}

/// A file store whose default fixture config (manual clock, no purge thread) is adjusted by `f`.
pub fn file_store_with(f: impl FnOnce(StoreConfig) -> StoreConfig) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(START_MS));
    let store = Store::open_with(f(fixture_config(&dir.path().join("state.db"), &clock))).expect("open");
    Fixture { store, clock, dir }
}

/// The fixtures' file store config: `path`, the manual `clock`, no purge thread.
fn fixture_config(path: &Path, clock: &Arc<ManualClock>) -> StoreConfig {
    StoreConfig::file(path)
        .with_clock(clock.clone())
        .with_purge_interval(Duration::ZERO)
}

/// Opens the file at `path` (one [`raw_built_file`] made, say) as the fixtures do: a manual
/// clock at [`START_MS`], no purge thread.
pub fn open_manual(path: &Path) -> (Store, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(START_MS));
    let store = Store::open_with(fixture_config(path, &clock)).expect("open");
    (store, clock)
}

/// A temp dir holding `state.db` built by `sql` through a raw connection: a file another
/// program (or an older version) made.
pub fn raw_built_file(sql: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state.db");
    raw(&path).execute_batch(sql).expect("build the file");
    (dir, path)
}

pub fn memory_store() -> (Store, Arc<ManualClock>) {
    memory_store_with(|c| c)
}

/// A memory store whose default fixture config is adjusted by `f`.
pub fn memory_store_with(f: impl FnOnce(StoreConfig) -> StoreConfig) -> (Store, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(START_MS));
    let store = Store::open_with(f(StoreConfig::memory()
        .with_clock(clock.clone())
        .with_purge_interval(Duration::ZERO)))
    .expect("open");
    (store, clock)
}

/// Both kinds of store, for tests that must hold on each.
pub fn both() -> Vec<(&'static str, Store, Arc<ManualClock>, Option<tempfile::TempDir>)> {
    let f = file_store();
    let (m, mc) = memory_store();
    vec![("file", f.store, f.clock, Some(f.dir)), ("memory", m, mc, None)]
}

/// A command that re-executes this test binary as a child process running only the ignored helper
/// test `test` (`module::name`), with `--nocapture` so the helper's stdout lines reach the parent
/// through a pipe (stdin is null unless the caller changes it; stderr is inherited).
pub fn child_test_command(test: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new(std::env::current_exe().expect("current_exe"));
    cmd.args(["--exact", test, "--nocapture", "--ignored", "--test-threads=1"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit());
    cmd
}

/// A child process started from a [`child_test_command`]: the stdout lines containing `marker`
/// arrive (from after the marker) through a channel, since libtest may print before them.
pub struct ChildProcess {
    pub process: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    /// Every line read so far.
    pub seen: Vec<String>,
}

impl ChildProcess {
    pub fn spawn(mut cmd: std::process::Command, marker: &'static str) -> ChildProcess {
        use std::io::BufRead;
        let mut process = cmd.spawn().expect("spawn child process");
        let stdout = std::io::BufReader::new(process.stdout.take().expect("piped stdout"));
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if let Some(at) = line.find(marker) {
                    let _ = tx.send(line[at + marker.len()..].to_string());
                }
            }
        });
        let seen = Vec::new();
        ChildProcess { process, lines, seen }
    }

    /// Reads lines until the child has printed `n` (`usize::MAX`: until its stdout closes);
    /// a child silent for 60 s, or ending before `n`, fails the test.
    pub fn read_until(&mut self, n: usize) {
        use std::sync::mpsc::RecvTimeoutError;
        while self.seen.len() < n {
            match self.lines.recv_timeout(Duration::from_secs(60)) {
                Ok(line) => self.seen.push(line),
                Err(RecvTimeoutError::Disconnected) if n == usize::MAX => return,
                Err(e) => panic!("child stopped ({e:?}) after {:?}", self.seen),
            }
        }
    }

    /// Reads the next line, which must be `expected`.
    pub fn wait_for(&mut self, expected: &str) {
        self.read_until(self.seen.len() + 1);
        assert_eq!(
            self.seen.last().unwrap(),
            expected,
            "child lines: {:?}",
            self.seen
        );
    }

    /// Kills the child (SIGKILL on Unix), which must still be running; returns every line it
    /// printed.
    pub fn kill(mut self) -> Vec<String> {
        let running = self.process.try_wait().expect("try_wait").is_none();
        self.process.kill().expect("kill");
        self.process.wait().expect("wait");
        self.read_until(usize::MAX);
        assert!(running, "child ended before it was killed: {:?}", self.seen);
        std::mem::take(&mut self.seen)
    }

    /// Waits for the child to succeed; returns every line it printed.
    pub fn finish(mut self) -> Vec<String> {
        self.read_until(usize::MAX);
        let status = self.process.wait().expect("wait");
        assert!(status.success(), "child failed ({status}): {:?}", self.seen);
        std::mem::take(&mut self.seen)
    }
}

/// A test failing part-way leaves no child running.
impl Drop for ChildProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.process.try_wait() {
            let _ = self.process.kill();
            let _ = self.process.wait();
        }
    }
}

/// A raw rusqlite connection on `path`.
pub fn raw(path: &Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(path).expect("raw open");
    conn.busy_timeout(Duration::from_secs(5)).expect("busy timeout");
    conn
}

/// Physical rows in `entries` of the file at `path`.
pub fn raw_rows(path: &Path) -> i64 {
    raw(path)
        .query_row("SELECT count(*) FROM entries", [], |r| r.get(0))
        .expect("count rows")
}

/// Column names of `table` in the file at `path`.
pub fn raw_columns(path: &Path, table: &str) -> Vec<String> {
    let conn = raw(path);
    let mut stmt = conn
        .prepare("SELECT name FROM pragma_table_info(?1) ORDER BY cid")
        .expect("table_info");
    let rows = stmt
        .query_map([table], |r| r.get::<_, String>(0))
        .expect("query table_info");
    rows.collect::<Result<Vec<_>, _>>().expect("read table_info")
}

/// Whether the file at `path` has an object (table, index, view) named `name`.
pub fn raw_has_object(path: &Path, name: &str) -> bool {
    raw(path)
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = ?1",
            [name],
            |r| r.get::<_, i64>(0),
        )
        .expect("sqlite_master")
        > 0
}

/// A quota from its three limits (0 = unlimited).
pub fn quota(max_keys: u64, max_groups: u64, max_bytes: u64) -> Quota {
    Quota {
        max_keys,
        max_groups,
        max_bytes,
    }
}

/// The usage of `namespace` in the file at `path` at time `now`, computed independently of the
/// store's counters: every row of `entries` is read with raw SQL and the live rows of groups
/// `<namespace>:…` are counted in Rust (keys, distinct groups, UTF-8 bytes of key + value).
pub fn truth(path: &Path, namespace: &str, now: UnixMillis) -> Usage {
    let conn = raw(path);
    let mut stmt = conn
        .prepare("SELECT group_name, entry_key, entry_value, expires_at FROM entries")
        .expect("prepare truth");
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<i64>>(3)?,
            ))
        })
        .expect("query truth")
        .collect::<Result<Vec<_>, _>>()
        .expect("read truth");
    let prefix = format!("{namespace}:");
    let mut groups = std::collections::BTreeSet::new();
    let mut result = Usage::default();
    for (group, key, value, expires_at) in rows {
        let live = expires_at.is_none_or(|at| at > now);
        if live && group.starts_with(&prefix) {
            result.keys += 1;
            result.bytes += (key.len() + value.len()) as u64;
            groups.insert(group);
        }
    }
    result.groups = groups.len() as u64;
    result
}

/// The `scope_usage` counters of the file at `path` equal a recount of every row of `entries`,
/// expired ones included.
pub fn assert_counters_equal_a_recount(path: &Path) {
    let conn = raw(path);
    let read = |sql: &str| -> BTreeMap<String, [i64; 4]> {
        let mut stmt = conn.prepare(sql).unwrap();
        let rows = stmt.query_map([], |r| {
            Ok((r.get(0)?, [r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?]))
        });
        let rows = rows.unwrap().collect::<Result<BTreeMap<_, _>, _>>().unwrap();
        rows.into_iter().filter(|(_, v)| *v != [0; 4]).collect()
    };
    let counters = read("SELECT namespace, keys, bytes, ttl_keys, groups FROM scope_usage");
    let recount = read(
        "SELECT substr(group_name, 1, instr(group_name, ':') - 1), count(*),
                sum(length(CAST(entry_key AS BLOB)) + length(CAST(entry_value AS BLOB))),
                sum(expires_at IS NOT NULL), count(DISTINCT group_name)
         FROM entries WHERE instr(group_name, ':') BETWEEN 2 AND 65 GROUP BY 1",
    );
    assert_eq!(counters, recount, "scope_usage counters vs a recount of entries");
}

/// Replaying `feed` from an empty file gives exactly the rows of `entries` of the file at `path`,
/// versions included; a removal of a row the replay does not hold fails.
pub fn assert_feed_replays_to_entries(path: &Path, feed: &[Change]) {
    type Rows = BTreeMap<(String, String), (String, Option<i64>, i64)>;
    let mut replay = Rows::new();
    for c in feed {
        let key = (c.group.clone(), c.key.clone().unwrap_or_default());
        match c.kind {
            EventKind::Set => {
                replay.insert(key, (c.value.clone().unwrap(), c.expires_at, c.seq as i64));
            }
            EventKind::Delete | EventKind::Expired => {
                assert!(replay.remove(&key).is_some(), "{c:?} removes a row never set")
            }
            EventKind::DeleteGroup => replay.retain(|(g, _), _| *g != c.group),
        }
    }
    let conn = raw(path);
    let mut stmt = conn
        .prepare("SELECT group_name, entry_key, entry_value, expires_at, version FROM entries")
        .unwrap();
    let rows = stmt.query_map([], |r| {
        Ok(((r.get(0)?, r.get(1)?), (r.get(2)?, r.get(3)?, r.get(4)?)))
    });
    let rows = rows.unwrap().collect::<Result<Rows, _>>().unwrap();
    assert_eq!(rows, replay, "entries vs the replayed feed");
}

/// Asserts `err` is `InvalidInput` naming `field`.
#[track_caller]
pub fn assert_invalid(err: &Error, field: &str) {
    assert_eq!(
        err.kind(),
        ErrorKind::InvalidInput,
        "expected InvalidInput({field}), got {err}"
    );
    assert_eq!(err.field(), Some(field), "wrong field in {err}");
}

/// Asserts the result is `InvalidInput` naming `field`.
#[track_caller]
pub fn expect_invalid<T: std::fmt::Debug>(result: store::Result<T>, field: &str) {
    match result {
        Ok(v) => panic!("expected InvalidInput({field}), got Ok({v:?})"),
        Err(e) => assert_invalid(&e, field),
    }
}

/// Asserts the result is `NotFound` for exactly (group, key).
#[track_caller]
pub fn expect_not_found<T: std::fmt::Debug>(result: store::Result<T>, group: &str, key: &str) {
    match result {
        Err(Error::NotFound { group: g, key: k, .. }) => {
            assert_eq!(
                (g.as_str(), k.as_str()),
                (group, key),
                "NotFound names the wrong entry"
            );
        }
        other => panic!("expected NotFound({group}, {key}), got {other:?}"),
    }
}

/// Another thread's transaction that has set `group`/`key` = `value` and holds the store's writer
/// until [`HeldTransaction::release`] (a minute at most, should a failing test never release
/// it), then commits. Held on demand rather than for a fixed time, so a loaded machine cannot
/// end it before the test has looked.
pub struct HeldTransaction {
    release: std::sync::mpsc::Sender<()>,
    writer: std::thread::JoinHandle<()>,
}

impl HeldTransaction {
    /// Starts the transaction; returns once its write is made.
    pub fn start(store: &Store, group: &str, key: &str, value: &str) -> HeldTransaction {
        let (started_tx, started) = std::sync::mpsc::channel();
        let (release, release_rx) = std::sync::mpsc::channel::<()>();
        let (store, group, key, value) = (store.clone(), group.to_owned(), key.to_owned(), value.to_owned());
        let writer = std::thread::spawn(move || {
            store
                .transaction(|tx| {
                    tx.set(&group, &key, &value)?;
                    started_tx.send(()).unwrap();
                    let _ = release_rx.recv_timeout(Duration::from_secs(60));
                    Ok(())
                })
                .unwrap();
        });
        started.recv().unwrap();
        HeldTransaction { release, writer }
    }

    /// Whether the transaction has ended (committed, or failed).
    pub fn is_finished(&self) -> bool {
        self.writer.is_finished()
    }

    /// Lets the transaction commit and waits for it.
    pub fn release(self) {
        drop(self.release);
        self.writer.join().unwrap();
    }
}

/// Runs `f` on another thread and fails the test if it has not finished within `limit` (a hang
/// or deadlock becomes a failure instead of a stuck test run).
pub fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(v) => {
            handle.join().expect("worker thread");
            v
        }
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => panic!("did not finish within {limit:?}"),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => match handle.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => panic!("worker ended without a result"),
        },
    }
}

/// Every event buffered in `sub` right now (never blocks).
pub fn drain(sub: &Subscription) -> Vec<Event> {
    std::iter::from_fn(|| sub.try_recv()).collect()
}

/// `(kind, group, key)` of each event, for compact comparisons.
pub fn summary(events: &[Event]) -> Vec<(EventKind, String, Option<String>)> {
    events
        .iter()
        .map(|e| (e.kind, e.group.clone(), e.key.clone()))
        .collect()
}

/// `(kind, group, key)` of each change row.
pub fn change_summary(changes: &[Change]) -> Vec<(EventKind, String, Option<String>)> {
    changes
        .iter()
        .map(|c| (c.kind, c.group.clone(), c.key.clone()))
        .collect()
}

/// Shorthand for an expected `(kind, group, key)` triple.
pub fn ev(kind: EventKind, group: &str, key: Option<&str>) -> (EventKind, String, Option<String>) {
    (kind, group.to_string(), key.map(str::to_string))
}

/// The whole change feed after `after`, paging with the largest allowed limit.
pub fn all_changes_since(store: &Store, after: u64) -> Vec<Change> {
    let mut out = Vec::new();
    let mut seq = after;
    loop {
        let batch = store.changes_since(seq, 10_000).expect("changes_since");
        if batch.changes.is_empty() {
            return out;
        }
        seq = batch.next_seq;
        out.extend(batch.changes);
    }
}

/// xorshift64*: a tiny deterministic generator, so a failure replays identically from its
/// seed. `Rng(state)` takes a state as is (never 0); [`Rng::new`] mixes a seed into one.
pub struct Rng(pub u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A small tmpfs for disk-full tests, unmounted on drop; `None` (the test skips, saying so)
/// where mounting is not permitted.
pub struct Tmpfs {
    dir: PathBuf,
    _holder: tempfile::TempDir,
}

impl Tmpfs {
    pub fn mount(size: &str) -> Option<Tmpfs> {
        let holder = tempfile::tempdir().unwrap();
        let dir = holder.path().join("mnt");
        std::fs::create_dir(&dir).unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .output()
            .is_ok_and(|o| o.status.success());
        if !mounted {
            eprintln!("SKIP: cannot mount a tmpfs here (not root?)");
            return None;
        }
        Some(Tmpfs { dir, _holder: holder })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Fills the file system to the last byte with a file named `filler`.
    pub fn fill(&self) {
        use std::io::Write;
        let mut file = std::fs::File::create(self.dir.join("filler")).unwrap();
        let block = vec![b'x'; 64 * 1024];
        while file.write_all(&block).is_ok() {}
        while file.write_all(b"x").is_ok() {}
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.dir)
            .status();
    }
}

/// A clock that runs a hook once, the next time it is read after [`HookClock::arm`], and
/// returns the time it read *before* the hook ran: the hook stands for what another process
/// did between the caller's reading the clock and its next step.
pub struct HookClock {
    now: std::sync::atomic::AtomicI64,
    hook: std::sync::Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

impl HookClock {
    pub fn new(now: UnixMillis) -> Arc<HookClock> {
        Arc::new(HookClock {
            now: std::sync::atomic::AtomicI64::new(now),
            hook: std::sync::Mutex::new(None),
        })
    }

    pub fn set(&self, now: UnixMillis) {
        self.now.store(now, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn arm(&self, hook: impl FnOnce() + Send + 'static) {
        *self.hook.lock().unwrap() = Some(Box::new(hook));
    }

    /// Whether the armed hook has run.
    pub fn fired(&self) -> bool {
        self.hook.lock().unwrap().is_none()
    }
}

impl store::Clock for HookClock {
    fn now_ms(&self) -> UnixMillis {
        let now = self.now.load(std::sync::atomic::Ordering::SeqCst);
        let hook = self.hook.lock().unwrap().take();
        if let Some(hook) = hook {
            hook();
        }
        now
    }
}

/// A file store on a [`HookClock`] holding `g/old`, which expires at `expiry`, and a second
/// handle on the same file (another connection, as another process would hold); the clock
/// reads `expiry - 1`.
pub fn racing_pair(expiry: UnixMillis) -> (tempfile::TempDir, Store, Arc<HookClock>, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, clock, other) = racing_pair_in(dir.path(), 4, expiry);
    (dir, store, clock, other)
}

/// [`racing_pair`] in `dir` (`state.db`), the first handle with `readers` pooled readers.
pub fn racing_pair_in(dir: &Path, readers: usize, expiry: UnixMillis) -> (Store, Arc<HookClock>, Store) {
    let path = dir.join("state.db");
    let (store, clock) = holding_old(
        StoreConfig {
            readers,
            ..StoreConfig::file(&path)
        },
        expiry,
    );
    let other = Store::open_with(StoreConfig::file(&path).with_purge_interval(Duration::ZERO)).expect("open");
    (store, clock, other)
}

/// A store opened with `config` on a [`HookClock`] (no purge thread), holding `g/old`, which
/// expires at `expiry`; the clock reads `expiry - 1`.
pub fn holding_old(config: StoreConfig, expiry: UnixMillis) -> (Store, Arc<HookClock>) {
    let clock = HookClock::new(expiry - 1_000);
    let store = Store::open_with(
        config
            .with_clock(clock.clone())
            .with_purge_interval(Duration::ZERO),
    )
    .expect("open");
    store
        .set_with_ttl("g", "old", "1", Duration::from_millis(1_000))
        .expect("set");
    clock.set(expiry - 1);
    (store, clock)
}
