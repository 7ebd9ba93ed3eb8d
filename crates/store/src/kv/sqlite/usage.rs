//! Per-namespace usage counters for quotas, kept exact by SQLite triggers.
//!
//! `scope_usage` holds one row per namespaced group (`ns:group`) and one totals row per
//! namespace (`group_name = ''`, which also counts groups). Triggers on `entries` update them in
//! the same transaction as every insert, delete and update — whoever writes (this crate, raw
//! `Store` calls into `ns:` groups, or another program using the table) — so a quota check reads
//! one row instead of counting. The counters include expired rows that were not purged yet;
//! the live figures subtract those (see [`live_usage`]).

use rusqlite::{Connection, OptionalExtension, params};

use super::GroupRange;

/// Bumped whenever the trigger definitions change; older triggers are replaced on open.
const TRIGGER_VERSION: i64 = 1;
const META_KEY: &str = "scope_usage_triggers";

/// `WHEN`-clause: the row's group is `<namespace>:<group>` with a valid namespace.
fn namespaced(row: &str) -> String {
    format!(
        "(instr({row}.group_name, ':') BETWEEN 2 AND 65 \
         AND substr({row}.group_name, 1, instr({row}.group_name, ':') - 1) NOT GLOB '*[^A-Za-z0-9-]*')"
    )
}

fn ns(row: &str) -> String {
    format!("substr({row}.group_name, 1, instr({row}.group_name, ':') - 1)")
}

fn bytes(row: &str) -> String {
    format!("(length(CAST({row}.entry_key AS BLOB)) + length(CAST({row}.entry_value AS BLOB)))")
}

fn ttl(row: &str) -> String {
    format!("({row}.expires_at IS NOT NULL)")
}

/// Statements adding `row` (NEW) to the counters, guarded by `guard`.
fn add(row: &str) -> String {
    let (ns, bytes, ttl, guard) = (ns(row), bytes(row), ttl(row), namespaced(row));
    format!(
        "INSERT INTO scope_usage (namespace, group_name, keys, bytes, ttl_keys, groups)
           SELECT {ns}, {row}.group_name, 1, {bytes}, {ttl}, 0 WHERE {guard}
           ON CONFLICT (namespace, group_name) DO UPDATE SET keys = keys + 1,
             bytes = bytes + excluded.bytes, ttl_keys = ttl_keys + excluded.ttl_keys;
         INSERT INTO scope_usage (namespace, group_name, keys, bytes, ttl_keys, groups)
           SELECT {ns}, '', 1, {bytes}, {ttl}, coalesce((SELECT keys = 1 FROM scope_usage
             WHERE namespace = {ns} AND group_name = {row}.group_name), 0) WHERE {guard}
           ON CONFLICT (namespace, group_name) DO UPDATE SET keys = keys + 1,
             bytes = bytes + excluded.bytes, ttl_keys = ttl_keys + excluded.ttl_keys,
             groups = groups + excluded.groups;"
    )
}

/// Statements removing `row` (OLD) from the counters.
fn remove(row: &str) -> String {
    let (ns, bytes, ttl, guard) = (ns(row), bytes(row), ttl(row), namespaced(row));
    format!(
        "UPDATE scope_usage SET keys = keys - 1, bytes = bytes - {bytes}, ttl_keys = ttl_keys - {ttl}
           WHERE {guard} AND namespace = {ns} AND group_name = {row}.group_name;
         UPDATE scope_usage SET keys = keys - 1, bytes = bytes - {bytes}, ttl_keys = ttl_keys - {ttl},
           groups = groups - coalesce((SELECT keys <= 0 FROM scope_usage
             WHERE namespace = {ns} AND group_name = {row}.group_name), 0)
           WHERE {guard} AND namespace = {ns} AND group_name = '';
         DELETE FROM scope_usage WHERE {guard} AND namespace = {ns} AND group_name = {row}.group_name
           AND keys <= 0;"
    )
}

fn trigger_sql() -> String {
    let (new_ns, new_bytes, old_bytes, new_ttl, old_ttl) =
        (ns("NEW"), bytes("NEW"), bytes("OLD"), ttl("NEW"), ttl("OLD"));
    let new_guard = namespaced("NEW");
    format!(
        "DROP TRIGGER IF EXISTS scope_usage_insert;
         DROP TRIGGER IF EXISTS scope_usage_delete;
         DROP TRIGGER IF EXISTS scope_usage_update;
         DROP TRIGGER IF EXISTS scope_usage_rename;
         CREATE TRIGGER scope_usage_insert AFTER INSERT ON entries WHEN {new_guard} BEGIN {add_new} END;
         CREATE TRIGGER scope_usage_delete AFTER DELETE ON entries WHEN {old_guard} BEGIN {remove_old} END;
         CREATE TRIGGER scope_usage_update AFTER UPDATE OF entry_value, expires_at ON entries
           WHEN NEW.group_name = OLD.group_name AND NEW.entry_key = OLD.entry_key AND {new_guard} BEGIN
             UPDATE scope_usage SET bytes = bytes + {new_bytes} - {old_bytes},
               ttl_keys = ttl_keys + {new_ttl} - {old_ttl}
               WHERE namespace = {new_ns} AND group_name IN (NEW.group_name, '');
           END;
         CREATE TRIGGER scope_usage_rename AFTER UPDATE OF group_name, entry_key ON entries
           WHEN NEW.group_name <> OLD.group_name OR NEW.entry_key <> OLD.entry_key BEGIN
             {remove_old} {add_new}
           END;",
        add_new = add("NEW"),
        remove_old = remove("OLD"),
        old_guard = namespaced("OLD"),
    )
}

/// Creates the counters and triggers if missing or outdated, rebuilding the counters from
/// `entries` (a file written without them, or by an older version). Runs inside the schema
/// transaction.
pub(crate) fn ensure(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS scope_usage (
            namespace TEXT NOT NULL,
            group_name TEXT NOT NULL,
            keys INTEGER NOT NULL DEFAULT 0,
            bytes INTEGER NOT NULL DEFAULT 0,
            ttl_keys INTEGER NOT NULL DEFAULT 0,
            groups INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (namespace, group_name)
         ) WITHOUT ROWID;",
    )?;
    let installed: Option<i64> = super::meta_get(conn, META_KEY)?;
    let triggers_present: bool = conn
        .prepare("SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND name = 'scope_usage_insert'")?
        .exists([])?;
    if installed == Some(TRIGGER_VERSION) && triggers_present {
        return Ok(());
    }
    conn.execute_batch(&trigger_sql())?;
    let guard = namespaced("e");
    let (ns, bytes, ttl) = (ns("e"), bytes("e"), ttl("e"));
    conn.execute_batch(&format!(
        "DELETE FROM scope_usage;
         INSERT INTO scope_usage (namespace, group_name, keys, bytes, ttl_keys, groups)
           SELECT {ns}, e.group_name, count(*), sum({bytes}), sum({ttl}), 0 FROM entries AS e
           WHERE {guard} GROUP BY e.group_name;
         INSERT INTO scope_usage (namespace, group_name, keys, bytes, ttl_keys, groups)
           SELECT namespace, '', sum(keys), sum(bytes), sum(ttl_keys), count(*) FROM scope_usage
           WHERE group_name <> '' GROUP BY namespace;"
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
pub(crate) fn live_usage(conn: &Connection, namespace: &str, now: i64) -> rusqlite::Result<LiveUsage> {
    let totals: Option<(i64, i64, i64, i64)> = conn
        .prepare_cached(
            "SELECT keys, bytes, ttl_keys, groups FROM scope_usage WHERE namespace = ?1 AND group_name = ''",
        )?
        .query_row([namespace], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .optional()?;
    let Some((mut keys, mut bytes, ttl_keys, mut groups)) = totals else {
        return Ok(LiveUsage::default());
    };
    if ttl_keys > 0 {
        let prefix = format!("{namespace}:");
        let range = GroupRange::new(&prefix);
        let (lo, hi) = range.bounds();
        let mut stmt = conn.prepare_cached(
            "SELECT e.group_name, count(*), sum(length(CAST(e.entry_key AS BLOB)) + length(CAST(e.entry_value AS BLOB))),
                    (SELECT u.keys FROM scope_usage AS u WHERE u.namespace = ?4 AND u.group_name = e.group_name)
             FROM entries AS e INDEXED BY entries_expires_at_idx
             WHERE e.expires_at IS NOT NULL AND e.expires_at <= ?3
               AND e.group_name >= ?1 AND e.group_name < ?2
             GROUP BY e.group_name",
        )?;
        let mut rows = stmt.query(params![lo, hi, now, namespace])?;
        while let Some(row) = rows.next()? {
            let expired: i64 = row.get(1)?;
            let expired_bytes: i64 = row.get::<_, Option<i64>>(2)?.unwrap_or(0);
            let group_keys: i64 = row.get::<_, Option<i64>>(3)?.unwrap_or(0);
            keys -= expired;
            bytes -= expired_bytes;
            if expired >= group_keys {
                groups -= 1;
            }
        }
    }
    Ok(LiveUsage {
        keys: keys.max(0) as u64,
        groups: groups.max(0) as u64,
        bytes: bytes.max(0) as u64,
    })
}
