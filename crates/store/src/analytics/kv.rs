//! SQL over the KV store: `kv_entries`, a live view of the store's entries inside DuckDB.
//!
//! [`Analytics::attach_kv`] makes `kv_entries_scan()` (a temporary table macro over the
//! registered table function `store_kv_scan(id)`) and the temporary view
//! `kv_entries(group_name, entry_key, entry_value, expires_at, version)` read the attached store. Each scan reads the
//! store's live entries from one SQLite snapshot, so a single statement can join KV state with
//! analytical tables: on a file store it holds a read transaction on a connection of its own
//! and reads rowid chunks of 2,048 rows as DuckDB pulls them (memory bounded by a chunk,
//! whatever the store holds). A scan reads every live entry at once where it cannot: a memory
//! store, a file that no longer answers to its name, a table without row ids (see
//! `Source::Loaded`). The function finds its store
//! through a process-wide registry of weak references keyed by `id`, which keeps the binding free
//! of raw pointers; once the store is closed or dropped a scan fails with "closed".

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Weak};

use duckdb::core::{DataChunkHandle, Inserter, LogicalTypeHandle, LogicalTypeId};
use duckdb::vtab::{BindInfo, InitInfo, TableFunctionInfo, VTab};
use parking_lot::Mutex;

use super::Analytics;
use crate::error::{Error, Result};
use crate::kv::Store;
use crate::kv::access::sealed::Sealed;
use crate::kv::sqlite;
use crate::kv::store::Inner;

type BoxError = Box<dyn std::error::Error>;

static STORES: LazyLock<Mutex<HashMap<u64, Weak<Inner>>>> = LazyLock::new(|| Mutex::new(HashMap::new()));
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Rows DuckDB asks for per call (its standard vector size).
const CHUNK: usize = 2048;

struct KvScan;

struct ScanBind {
    id: u64,
}

/// Filled by the first `func` call of a scan (bind data is only reachable safely there);
/// DuckDB runs the scan on one thread at a time (`set_max_threads(1)`), the mutex makes that
/// safe to rely on.
struct ScanState {
    source: Mutex<Option<std::result::Result<Source, String>>>,
}

/// Where a scan's rows come from.
enum Source {
    /// A file store: a reader of the scan's own, in one read transaction (one snapshot) for
    /// the scan's life, read a rowid chunk per call, so memory stays bounded by a chunk
    /// whatever the store holds. Dropped with the scan state at the query's end (or when a
    /// streamed result is dropped), which ends the transaction.
    Chunked {
        conn: rusqlite::Connection,
        /// The table's name for its row ids (`rowid`, unless another program took that name).
        id: &'static str,
        now: i64,
        after: Option<i64>,
        done: bool,
    },
    /// Every live entry, read at once: a memory store (holding its one connection for the
    /// scan's life would block the store's own calls), a file no reader of the scan's own can
    /// be opened on (see `Inner::open_long_reader`), or a table without rowids.
    Loaded(std::vec::IntoIter<sqlite::KvRow>),
}

const OP: &str = "Analytics::kv_entries";

/// A scan the store's own clock started: the clock is read for the scan, so it would wait
/// for itself or recurse (see `Inner::now`).
const OWN_CLOCK: &str = "Analytics::kv_entries: the store's Clock queried the store it serves; \
    keep the clock's reads off the store it serves";

fn open_source(id: u64) -> std::result::Result<Source, String> {
    const CLOSED: &str = super::KV_CLOSED;
    let inner = STORES.lock().get(&id).and_then(Weak::upgrade).ok_or(CLOSED)?;
    if !inner.is_open() {
        return Err(CLOSED.into());
    }
    // A query the store's own clock runs: it could not read the time (see `Inner::now`).
    if inner.in_own_clock() {
        return Err(OWN_CLOCK.into());
    }
    if let Some(conn) = inner.open_long_reader(OP) {
        // Again: a close may have finished while the reader was opening.
        if !inner.is_open() {
            return Err(CLOSED.into());
        }
        let fail = |what: &'static str| move |e| Error::sqlite(OP, what, e).to_string();
        conn.execute_batch("BEGIN")
            .map_err(fail("begin the scan's read transaction"))?;
        sqlite::take_snapshot(&conn).map_err(fail("begin the scan's read transaction"))?;
        // The scan's one time, read after its snapshot was taken (see `read_at_snapshot`).
        let now = inner.now();
        if let Some(id) = sqlite::row_id_name(&conn).map_err(fail("read the entries table's layout"))? {
            return Ok(Source::Chunked {
                conn,
                id,
                now,
                after: None,
                done: false,
            });
        }
        let rows = sqlite::live_entries(&conn, now).map_err(fail("read kv_entries"))?;
        return Ok(Source::Loaded(rows.into_iter()));
    }
    let rows = inner
        .read_bounded(OP, sqlite::live_entries)
        .map_err(|e| e.to_string())?;
    Ok(Source::Loaded(rows.into_iter()))
}

impl Source {
    /// The next rows for DuckDB, at most [`CHUNK`]; empty at the end.
    fn next_rows(&mut self) -> std::result::Result<Vec<sqlite::KvRow>, String> {
        match self {
            Source::Chunked {
                conn,
                id,
                now,
                after,
                done,
            } => {
                if *done {
                    return Ok(Vec::new());
                }
                let (rows, last) = sqlite::live_entries_after(conn, id, *after, *now, CHUNK as i64)
                    .map_err(|e| Error::sqlite(OP, "read kv_entries", e).to_string())?;
                *done = rows.len() < CHUNK;
                *after = last;
                Ok(rows)
            }
            Source::Loaded(rows) => Ok(rows.by_ref().take(CHUNK).collect()),
        }
    }
}

impl VTab for KvScan {
    type BindData = ScanBind;
    type InitData = ScanState;

    fn bind(bind: &BindInfo) -> std::result::Result<ScanBind, BoxError> {
        for name in ["group_name", "entry_key", "entry_value", "expires_at", "version"] {
            bind.add_result_column(name, LogicalTypeHandle::from(LogicalTypeId::Varchar));
        }
        let id = bind.get_parameter(0);
        // Checked first: DuckDB's text conversion of a NULL parameter throws a C++ exception
        // that would abort the process on its way through Rust.
        if id.is_null() {
            return Err(
                "store_kv_scan(id) takes the id attach_kv gave the kv_entries view, not NULL; \
                        query kv_entries or kv_entries_scan() instead"
                    .into(),
            );
        }
        let id =
            u64::try_from(id.to_int64()).map_err(|_| "store_kv_scan(id) takes a non-negative store id")?;
        // Bind runs on the thread that issued the query; the scan may run on a DuckDB worker,
        // where the store's "not inside your own transaction" check cannot see the caller.
        // Creating the view binds its query too, which reads nothing (see `attach_kv`).
        // So is the check that the store's own clock is not the caller (see `Inner::now`).
        if !ATTACHING.with(Cell::get)
            && let Some(inner) = STORES.lock().get(&id).and_then(Weak::upgrade)
        {
            if inner.in_transaction_here() {
                return Err(super::KV_IN_TRANSACTION.into());
            }
            if inner.in_own_clock() {
                return Err(OWN_CLOCK.into());
            }
        }
        Ok(ScanBind { id })
    }

    fn init(init: &InitInfo) -> std::result::Result<ScanState, BoxError> {
        init.set_max_threads(1);
        Ok(ScanState {
            source: Mutex::new(None),
        })
    }

    fn func(
        info: &TableFunctionInfo<Self>,
        output: &mut DataChunkHandle,
    ) -> std::result::Result<(), BoxError> {
        let mut source = info.get_init_data().source.lock();
        let source = source
            .get_or_insert_with(|| open_source(info.get_bind_data().id))
            .as_mut()
            .map_err(|e| e.clone())?;
        let rows = source.next_rows()?;
        let (group, key, value, mut expires, version) = (
            output.flat_vector(0),
            output.flat_vector(1),
            output.flat_vector(2),
            output.flat_vector(3),
            output.flat_vector(4),
        );
        for (i, row) in rows.iter().enumerate() {
            group.insert(i, row.group.as_str());
            key.insert(i, row.key.as_str());
            value.insert(i, row.value.as_str());
            match row.expires_at {
                Some(at) => expires.insert(i, at.to_string().as_str()),
                None => expires.set_null(i),
            }
            version.insert(i, row.version.to_string().as_str());
        }
        output.set_len(rows.len());
        Ok(())
    }

    fn parameters() -> Option<Vec<LogicalTypeHandle>> {
        Some(vec![LogicalTypeHandle::from(LogicalTypeId::Bigint)])
    }
}

/// A new registry key. SQL can pass any id to `kv_entries_scan(store_id := N)` (a macro's
/// default can be overridden), and the registry is process-wide: with ids counted 1, 2, 3…
/// a query on one handle could read the store attached to another. Keys are therefore
/// unguessable: SipHash of a counter under the process's random keys, cut to 63 bits so they
/// pass through DuckDB's BIGINT.
fn fresh_id(stores: &HashMap<u64, Weak<Inner>>) -> u64 {
    use std::hash::{BuildHasher, RandomState};
    static KEYS: LazyLock<RandomState> = LazyLock::new(RandomState::new);
    loop {
        let id = KEYS.hash_one(NEXT_ID.fetch_add(1, Ordering::Relaxed)) & (i64::MAX as u64);
        if id != 0 && !stores.contains_key(&id) {
            return id;
        }
    }
}

thread_local! {
    /// Set while `attach_kv` creates the view on this thread: binding its query reads no row.
    static ATTACHING: Cell<bool> = const { Cell::new(false) };
}

impl Analytics {
    /// Makes the store's live entries queryable as `kv_entries(group_name, entry_key,
    /// entry_value VARCHAR, expires_at BIGINT, version UBIGINT)` on this connection, so one
    /// statement can join KV state with analytical tables; the table function
    /// `kv_entries_scan()` returns the same rows. Attaching again replaces the store.
    ///
    /// # Examples
    /// ```
    /// use store::{Kv, Store};
    /// use store::analytics::{Analytics, Value};
    /// let store = Store::in_memory()?;
    /// store.set("models", "m1", "gpt")?;
    /// let db = Analytics::in_memory()?;
    /// db.attach_kv(&store)?;
    /// let row = db.query_row("SELECT entry_value FROM kv_entries WHERE group_name = 'models'", &[])?.unwrap();
    /// assert_eq!(row.values[0], Value::Text("gpt".into()));
    /// # Ok::<(), store::Error>(())
    /// ```
    pub fn attach_kv(&self, store: &Store) -> Result<()> {
        const OP: &str = "Analytics::attach_kv";
        let id = {
            let mut stores = STORES.lock();
            stores.retain(|_, weak| weak.strong_count() > 0);
            let id = fresh_id(&stores);
            stores.insert(id, store.inner_weak());
            id
        };
        self.with_conn(OP, |conn| {
            // Registering twice on one connection fails; the first registration serves all ids.
            let _ = conn.register_table_function::<KvScan>("store_kv_scan");
            // The store's id lives in the temporary macro, so `kv_entries_scan()` takes no
            // argument and reads the store attached to this connection (a DuckDB table function
            // cannot hold per-connection state without unsafe code).
            let typed = "SELECT group_name, entry_key, entry_value, CAST(expires_at AS BIGINT) AS expires_at,
                    CAST(version AS UBIGINT) AS version FROM store_kv_scan";
            // Attaching inside a transaction of the store is fine (`Service::analytics` may
            // open the database there): only a query of the view must not run in one.
            ATTACHING.with(|a| a.set(true));
            let created = conn.execute_batch(&format!(
                "CREATE OR REPLACE TEMP MACRO kv_entries_scan(store_id := {id}) AS TABLE {typed}(store_id);
                 CREATE OR REPLACE TEMP VIEW kv_entries AS SELECT * FROM kv_entries_scan();"
            ));
            ATTACHING.with(|a| a.set(false));
            created.map_err(|e| Error::duckdb(OP, "create the kv_entries view", e))
        })
    }
}
