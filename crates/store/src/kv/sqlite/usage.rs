//! Per-namespace usage counters for quotas, kept exact by SQLite triggers.
//!
//! `scope_usage` holds one row of totals per namespace (keys, bytes, TTL keys, groups). Triggers on `entries` update them in
//! the same transaction as every insert, delete and update — whoever writes (this crate, raw
//! `Store` calls into `ns:` groups, or another program using the table) — so a quota check reads
//! one row instead of counting. The counters include expired rows that were not purged yet;
//! the live figures subtract those (see [`live_usage`]).
//!
//! Known limit: SQLite does not fire delete triggers for rows that `INSERT OR REPLACE` removes
//! (unless the writing connection turned on `recursive_triggers`), so a foreign program that
//! replaces namespaced rows that way over-counts them. Upserts (`ON CONFLICT … DO UPDATE`, what
//! this crate and the Go implementation use), plain inserts, updates and deletes are exact.
//! Catching a replace would take a `BEFORE INSERT` trigger, which measured 70–230 ns on every
//! write of this crate (3–6%) to serve a foreign program's choice of statement; docs/guarantees.md gives
//! the repair instead. If any trigger, the table or the [`META_KEY`] stamp is missing on open,
//! all of them are recreated and the counters rebuilt.

use rusqlite::functions::FunctionFlags;
use rusqlite::{Connection, OptionalExtension, params};

/// Bumped whenever the trigger definitions change; older triggers are replaced on open.
pub(super) const TRIGGER_VERSION: i64 = 7;
pub(super) const TRIGGERS: [&str; 5] = [
    "scope_usage_insert",
    "scope_usage_delete",
    "scope_usage_update",
    "scope_usage_rekey",
    "scope_usage_move",
];
pub(super) const META_KEY: &str = "scope_usage_triggers";

/// `WHEN`-clause: the row's group is `<prefix>:<group>` with a prefix of namespace length.
/// The prefix's characters are not checked (a `GLOB` was ~3% of a scoped write): a group such
/// as `a b:c` only gets a counter row under `a b`, which no scope can ever name.
fn namespaced(row: &str) -> String {
    format!("(instr({row}.group_name, ':') BETWEEN 2 AND 65)")
}

fn ns(row: &str) -> String {
    format!("substr({row}.group_name, 1, instr({row}.group_name, ':') - 1)")
}

fn bytes(row: &str) -> String {
    // `ifnull`: a foreign table may allow NULL keys or values, which count as empty (a NULL
    // total would fail the counters' NOT NULL, and with it the open and every such write).
    format!(
        "(ifnull(length(CAST({row}.entry_key AS BLOB)), 0) + ifnull(length(CAST({row}.entry_value AS BLOB)), 0))"
    )
}

fn ttl(row: &str) -> String {
    format!("({row}.expires_at IS NOT NULL)")
}

/// Statement adding `row` (NEW) to its namespace's totals, for rows that pass `guard`. The
/// group count goes up when the row is its group's first, that is its only one now: no second
/// row (an index probe on the primary key reading at most two rows). Not compared by key: a
/// foreign table may hold NULL keys, several of them in one group, which no key comparison
/// tells apart.
fn add(row: &str, guard: &str) -> String {
    let (ns, bytes, ttl) = (ns(row), bytes(row), ttl(row));
    format!(
        "INSERT INTO scope_usage (namespace, keys, bytes, ttl_keys, groups)
           SELECT {ns}, 1, {bytes}, {ttl},
             NOT EXISTS (SELECT 1 FROM entries WHERE group_name = {row}.group_name LIMIT 1 OFFSET 1)
           WHERE {guard}
           ON CONFLICT (namespace) DO UPDATE SET keys = keys + 1, bytes = bytes + excluded.bytes,
             ttl_keys = ttl_keys + excluded.ttl_keys, groups = groups + excluded.groups;"
    )
}

/// Statement removing `row` (OLD) from its namespace's totals, for rows that pass `guard`; the
/// group count goes down when it was the group's last row.
fn remove(row: &str, guard: &str) -> String {
    let (ns, bytes, ttl) = (ns(row), bytes(row), ttl(row));
    format!(
        "UPDATE scope_usage SET keys = keys - 1, bytes = bytes - {bytes}, ttl_keys = ttl_keys - {ttl},
           groups = groups - NOT EXISTS (SELECT 1 FROM entries WHERE group_name = {row}.group_name)
           WHERE {guard} AND namespace = {ns};"
    )
}

fn trigger_sql() -> String {
    let (new_ns, new_bytes, old_bytes, new_ttl, old_ttl) =
        (ns("NEW"), bytes("NEW"), bytes("OLD"), ttl("NEW"), ttl("OLD"));
    let new_guard = namespaced("NEW");
    // A row changed within its group (value, expiry or key): its key count stays, its bytes
    // and TTL move by the difference.
    let shift = format!(
        "UPDATE scope_usage SET bytes = bytes + {new_bytes} - {old_bytes},
               ttl_keys = ttl_keys + {new_ttl} - {old_ttl}
               WHERE namespace = {new_ns};"
    );
    format!(
        "DROP TRIGGER IF EXISTS scope_usage_insert;
         DROP TRIGGER IF EXISTS scope_usage_delete;
         DROP TRIGGER IF EXISTS scope_usage_update;
         DROP TRIGGER IF EXISTS scope_usage_rename;
         DROP TRIGGER IF EXISTS scope_usage_rekey;
         DROP TRIGGER IF EXISTS scope_usage_move;
         CREATE TRIGGER scope_usage_insert AFTER INSERT ON entries WHEN {new_guard} BEGIN {add_new_checked} END;
         CREATE TRIGGER scope_usage_delete AFTER DELETE ON entries WHEN {old_guard} BEGIN {remove_old_checked} END;
         CREATE TRIGGER scope_usage_update AFTER UPDATE OF entry_value, expires_at ON entries
           WHEN NEW.group_name IS OLD.group_name AND NEW.entry_key IS OLD.entry_key AND {new_guard} BEGIN
             {shift}
           END;
         CREATE TRIGGER scope_usage_rekey AFTER UPDATE OF entry_key ON entries
           WHEN NEW.group_name IS OLD.group_name AND NEW.entry_key IS NOT OLD.entry_key AND {new_guard} BEGIN
             {shift}
           END;
         CREATE TRIGGER scope_usage_move AFTER UPDATE OF group_name ON entries
           WHEN NEW.group_name IS NOT OLD.group_name BEGIN
             {remove_old} {add_new}
           END;",
        // The insert and delete triggers' WHEN clauses already checked the row.
        add_new_checked = add("NEW", "1"),
        remove_old_checked = remove("OLD", "1"),
        add_new = add("NEW", &new_guard),
        remove_old = remove("OLD", &namespaced("OLD")),
        old_guard = namespaced("OLD"),
    )
}

/// Creates the counters and triggers if missing or outdated, rebuilding the counters from
/// `entries` (a file written without them, or by an older version). Runs inside the schema
/// transaction.
pub(crate) fn ensure(conn: &Connection) -> rusqlite::Result<()> {
    let installed: Option<i64> = super::meta_get(conn, META_KEY)?;
    let present: i64 = conn.query_row(
        &format!(
            "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name IN ('{}')",
            TRIGGERS.join("', '")
        ),
        [],
        |r| r.get(0),
    )?;
    let triggers_present = present == TRIGGERS.len() as i64;
    // The triggers write into `scope_usage`: without the table every namespaced write fails.
    let table_present = conn
        .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'scope_usage'")?
        .exists([])?;
    if installed == Some(TRIGGER_VERSION) && triggers_present && table_present {
        return Ok(());
    }
    let guard = namespaced("e");
    let (ns, bytes, ttl) = (ns("e"), bytes("e"), ttl("e"));
    conn.execute_batch(&format!(
        "DROP TABLE IF EXISTS scope_usage;
         CREATE TABLE scope_usage (
            namespace TEXT PRIMARY KEY,
            keys INTEGER NOT NULL DEFAULT 0,
            bytes INTEGER NOT NULL DEFAULT 0,
            ttl_keys INTEGER NOT NULL DEFAULT 0,
            groups INTEGER NOT NULL DEFAULT 0
         ) WITHOUT ROWID;
         INSERT INTO scope_usage (namespace, keys, bytes, ttl_keys, groups)
           SELECT {ns}, count(*), sum({bytes}), sum({ttl}), count(DISTINCT e.group_name) FROM entries AS e
           WHERE {guard} GROUP BY 1;
         {triggers}",
        triggers = trigger_sql()
    ))?;
    super::meta_set(conn, META_KEY, TRIGGER_VERSION)
}

/// Live usage of a namespace: the counters minus expired rows not yet purged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct LiveUsage {
    pub keys: u64,
    pub groups: u64,
    pub bytes: u64,
}

/// O(1) when the namespace holds no TTL entries; otherwise it also visits the namespace's
/// expired-but-unpurged rows (through the expiry index), which the purge thread keeps few.
///
/// `now` must be read after the read's snapshot is taken (`read_at_snapshot`): a clock read
/// before it could judge rows by an earlier time than the snapshot's, counting an entry that
/// had expired by then together with one written because it had (more keys than the quota
/// allows, a state that never existed).
pub(crate) fn live_usage(conn: &Connection, namespace: &str, now: i64) -> rusqlite::Result<LiveUsage> {
    let totals: Option<Totals> = conn
        .prepare_cached("SELECT keys, bytes, ttl_keys, groups FROM scope_usage WHERE namespace = ?1")?
        .query_row([namespace], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .optional()?;
    subtract_expired(conn, namespace, now, totals)
}

/// A namespace's usage as its counters record it: expired rows the purge has not removed yet
/// still count, so it is an upper bound of the live usage, exact when no row of the namespace
/// has a TTL. A quota check passes on it without looking further (O(1) whatever expired);
/// only a write it would refuse asks for [`RecordedUsage::live`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecordedUsage {
    totals: Option<Totals>,
}

impl RecordedUsage {
    /// The recorded figures (an upper bound of the live ones).
    pub(crate) fn upper_bound(&self) -> LiveUsage {
        let Some((keys, bytes, _, groups)) = self.totals else {
            return LiveUsage::default();
        };
        LiveUsage {
            keys: keys.max(0) as u64,
            groups: groups.max(0) as u64,
            bytes: bytes.max(0) as u64,
        }
    }

    /// Whether [`RecordedUsage::upper_bound`] may count expired rows.
    pub(crate) fn may_count_expired(&self) -> bool {
        self.totals.is_some_and(|(_, _, ttl_keys, _)| ttl_keys > 0)
    }

    /// The exact live usage (see [`live_usage`]).
    pub(crate) fn live(&self, conn: &Connection, namespace: &str, now: i64) -> rusqlite::Result<LiveUsage> {
        subtract_expired(conn, namespace, now, self.totals)
    }
}

/// What a quota check needs, read by one statement (a scoped set's check was two statements,
/// ~5% of its time in memory): the byte size (key + value) of the live
/// entry at (`group`, `key`), if there is one (computed in SQL so a large old value is never
/// copied out), and the namespace's recorded usage.
pub(crate) fn quota_state(
    conn: &Connection,
    namespace: &str,
    group: &str,
    key: &str,
    now: i64,
) -> rusqlite::Result<(Option<u64>, RecordedUsage)> {
    let state: Option<(Option<i64>, Totals)> = conn
        .prepare_cached(
            "SELECT (SELECT ifnull(length(CAST(entry_key AS BLOB)), 0) + ifnull(length(CAST(entry_value AS BLOB)), 0)
                     FROM entries WHERE group_name = ?2 AND entry_key = ?3
                       AND (expires_at IS NULL OR expires_at > ?4)),
                    keys, bytes, ttl_keys, groups
             FROM scope_usage WHERE namespace = ?1",
        )?
        .query_row(params![namespace, group, key, now], |r| {
            Ok((r.get(0)?, (r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
        })
        .optional()?;
    let Some((existing, totals)) = state else {
        // No counter row: the triggers have never seen a row of this namespace, unless someone
        // deleted the counters by hand; the entry itself is still looked up.
        let existing = live_entry_bytes(conn, group, key, now)?;
        return Ok((existing, RecordedUsage { totals: None }));
    };
    let recorded = RecordedUsage { totals: Some(totals) };
    Ok((existing.map(|b| b.max(0) as u64), recorded))
}

/// The byte size (key + value) of the live entry at (group, key), if there is one; computed
/// in SQL so a large old value is never copied out.
fn live_entry_bytes(conn: &Connection, group: &str, key: &str, now: i64) -> rusqlite::Result<Option<u64>> {
    let bytes: Option<i64> = conn
        .prepare_cached(
            "SELECT ifnull(length(CAST(entry_key AS BLOB)), 0) + ifnull(length(CAST(entry_value AS BLOB)), 0) FROM entries
             WHERE group_name = ?1 AND entry_key = ?2 AND (expires_at IS NULL OR expires_at > ?3)",
        )?
        .query_row(params![group, key, now], |r| r.get(0))
        .optional()?;
    Ok(bytes.map(|b| b.max(0) as u64))
}

/// Whether (`group`, `key`) holds an expired row (one a write there replaces).
pub(crate) fn expired_entry_exists(
    conn: &Connection,
    group: &str,
    key: &str,
    now: i64,
) -> rusqlite::Result<bool> {
    conn.prepare_cached(
        "SELECT 1 FROM entries WHERE group_name = ?1 AND entry_key = ?2
           AND expires_at IS NOT NULL AND expires_at <= ?3",
    )?
    .exists(params![group, key, now])
}

/// What a write of a namespace with a quota may add to the usage its counters record and
/// still pass the quota check, whatever the write replaces: [`upsert_if_room`] checks and
/// writes in one statement within these bounds.
///
/// The bounds take the write as a new key in a new group and judge it on the recorded usage,
/// which counts expired rows the purge has not removed yet. Both overestimate what the write
/// adds, so a write within them passes the exact check too; a write outside them is not
/// refused for it, only sent through the exact check (`Scope::check_write`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Room {
    /// The write fits if the recorded keys are below this (the key limit, `i64::MAX` for none).
    pub keys_below: i64,
    /// ... and the recorded bytes at most this (the byte limit minus the write's bytes).
    pub bytes_at_most: i64,
    /// ... and the recorded groups below this (the group limit).
    pub groups_below: i64,
}

/// The SQL function [`UPSERT_IF_ROOM_SQL`] calls to refuse a write that does not fit its
/// [`Room`]; registered on every connection by [`register_functions`].
const NO_ROOM_FN: &str = "store_no_recorded_room";
/// The error [`NO_ROOM_FN`] raises, which [`upsert_if_room`] recognises.
const NO_ROOM: &str = "store: the namespace's recorded usage leaves no room for this write as a new key";

/// [`super::UPSERT_SQL`] whose value is the write's only while the namespace's counters
/// (`?6`) are within the [`Room`] (`?7`–`?9`). Outside it the value expression calls
/// [`NO_ROOM_FN`], which fails the statement before it writes anything (a `NULL` would do
/// that only where `entry_value` is `NOT NULL`, which a foreign table need not be). An
/// `INSERT … SELECT … WHERE` skipping the row instead measured slower than a separate check
/// statement: SQLite buffers such an insert's rows when the table has triggers. A namespace
/// with no counter row has no rows the triggers saw, and fits.
const UPSERT_IF_ROOM_SQL: &str =
    "INSERT INTO entries (group_name, entry_key, entry_value, expires_at, version)
     VALUES (?1, ?2,
       CASE WHEN NOT EXISTS (SELECT 1 FROM scope_usage WHERE namespace = ?6
                               AND (keys >= ?7 OR bytes > ?8 OR groups >= ?9))
            THEN ?3 ELSE store_no_recorded_room() END,
       ?4, ?5)
     ON CONFLICT (group_name, entry_key) DO UPDATE SET
       entry_value = excluded.entry_value, expires_at = excluded.expires_at, version = excluded.version";

/// Registers the SQL functions this module's statements call. Every connection gets them
/// (`conn::configure`); they are direct-only, so no trigger or view in the file can call them.
pub(crate) fn register_functions(conn: &Connection) -> rusqlite::Result<()> {
    conn.create_scalar_function(
        NO_ROOM_FN,
        0,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DIRECTONLY,
        |_| Err::<bool, _>(rusqlite::Error::UserFunctionError(NO_ROOM.into())),
    )
}

/// The quota check and the write of a namespaced set in one statement: writes `value` at
/// (`group`, `key`) with `version` and returns `true` if the `namespace`'s recorded usage is
/// within `room`; otherwise writes nothing and returns `false`, for the exact check to decide.
/// Saves a scoped set the separate check statement (about a sixth of its time in memory).
#[allow(clippy::too_many_arguments)]
pub(crate) fn upsert_if_room(
    conn: &Connection,
    namespace: &str,
    group: &str,
    key: &str,
    value: &str,
    expires_at: Option<i64>,
    version: u64,
    room: Room,
) -> rusqlite::Result<bool> {
    let written = conn.prepare_cached(UPSERT_IF_ROOM_SQL)?.execute(params![
        group,
        key,
        value,
        expires_at,
        version as i64,
        namespace,
        room.keys_below,
        room.bytes_at_most,
        room.groups_below
    ]);
    match written {
        Ok(_) => Ok(true),
        Err(rusqlite::Error::SqliteFailure(_, Some(message))) if message == NO_ROOM => Ok(false),
        Err(e) => Err(e),
    }
}

/// (keys, bytes, ttl_keys, groups) as stored.
type Totals = (i64, i64, i64, i64);

fn subtract_expired(
    conn: &Connection,
    namespace: &str,
    now: i64,
    totals: Option<Totals>,
) -> rusqlite::Result<LiveUsage> {
    let Some((mut keys, mut bytes, ttl_keys, mut groups)) = totals else {
        return Ok(LiveUsage::default());
    };
    if ttl_keys > 0 {
        // The namespace's expired rows only, through their own index (the expression must be
        // the index's, word for word): rows expired elsewhere are never visited. A group is
        // gone when no live row is left in it: the probe stops at its first live row, so it
        // passes over expired rows only (counting the group would visit all of it).
        let mut stmt = conn.prepare_cached(
            "SELECT count(*),
                    sum(ifnull(length(CAST(e.entry_key AS BLOB)), 0) + ifnull(length(CAST(e.entry_value AS BLOB)), 0)),
                    NOT EXISTS (SELECT 1 FROM entries AS g WHERE g.group_name = e.group_name
                                  AND (g.expires_at IS NULL OR g.expires_at > ?2))
             FROM entries AS e INDEXED BY entries_namespace_expiry_idx
             WHERE substr(e.group_name, 1, instr(e.group_name, ':')) = ?1
               AND e.expires_at IS NOT NULL AND e.expires_at <= ?2
             GROUP BY e.group_name",
        )?;
        let mut rows = stmt.query(params![format!("{namespace}:"), now])?;
        while let Some(row) = rows.next()? {
            let expired: i64 = row.get(0)?;
            // Saturating: the counters are another program's to damage (a row set to
            // i64::MIN), and the figures are clamped at 0 below anyway.
            keys = keys.saturating_sub(expired);
            bytes = bytes.saturating_sub(row.get::<_, Option<i64>>(1)?.unwrap_or(0));
            if row.get::<_, bool>(2)? {
                groups = groups.saturating_sub(1); // every row of this group has expired
            }
        }
    }
    Ok(LiveUsage {
        keys: keys.max(0) as u64,
        groups: groups.max(0) as u64,
        bytes: bytes.max(0) as u64,
    })
}
