//! Schema creation and additive migrations.
//!
//! The `entries` table keeps the column layout of the Go implementation of this design
//! (`group_name, entry_key, entry_value, expires_at /* unix ms */`, primary key `(group_name,
//! entry_key)`), so either program opens the other's files. Everything this crate adds is
//! additive: a `version` column with a default, a trigger, and tables of its own. Old files
//! gain them on open.

use rusqlite::{Connection, OptionalExtension};

use crate::error::{Error, Result};

const CONTEXT: &str = "ensure schema";

/// The Go implementation's `entries` columns and key (a legacy `kv` table's rows are staged in
/// a TEMP table of the same shape, so they are converted and compared as `entries` will).
const ENTRIES_COLUMNS: &str = "group_name TEXT NOT NULL, entry_key TEXT NOT NULL,
    entry_value TEXT NOT NULL, expires_at INTEGER, PRIMARY KEY (group_name, entry_key)";

/// Bumped whenever [`ensure`] creates or changes something; stamped in `store_meta` once a
/// file has all of it, so later opens can see that with one read (see [`is_current`]).
const SCHEMA_VERSION: i64 = 2;
const SCHEMA_META_KEY: &str = "schema_version";

/// Resets the version of a row another program overwrote (SPEC §3.2: their rows have version
/// 0). The Go implementation's upsert sets only `entry_value` and `expires_at`, so without this
/// the row kept the version of our last write, and a `set_if_version(Some(that version))` read
/// before the foreign write still matched and overwrote it (a lost update).
///
/// Every write of this crate that touches the value or expiry also assigns a fresh version
/// (versions are unique across the file, so it never equals the old one): for those the `WHEN`
/// is false and only that comparison runs. The body's update sets `version` alone, which fires
/// neither this trigger again nor the quota counters' triggers.
///
/// Created only when absent: should the definition ever change, the new one gets a new name, so
/// that an older and a newer version of this crate opening the same file never replace each
/// other's trigger back and forth.
const VERSION_RESET_TRIGGER: &str = "entries_foreign_write_resets_version";

fn version_reset_trigger_sql() -> String {
    format!(
        "CREATE TRIGGER IF NOT EXISTS {VERSION_RESET_TRIGGER}
           AFTER UPDATE OF entry_value, expires_at ON entries
           WHEN NEW.version = OLD.version AND NEW.version <> 0 BEGIN
             UPDATE entries SET version = 0
               WHERE group_name = NEW.group_name AND entry_key = NEW.entry_key;
           END;"
    )
}

/// The unique index [`ensure`] adds when `entries` has no key constraint of its own.
const KEY_INDEX: &str = "entries_group_key_idx";

/// SQL condition: `entries` has a primary key or unique index on exactly (group_name,
/// entry_key), in either order and not partial, which every write's `ON CONFLICT (group_name,
/// entry_key)` needs. Another program may have created the table without one; it reads from
/// the schema SQLite already holds in memory, so the open's fast path can afford it.
const HAS_KEY_CONSTRAINT: &str = "EXISTS (SELECT 1 FROM pragma_index_list('entries') AS i
     WHERE i.\"unique\" = 1 AND i.partial = 0
       AND (SELECT count(*) FROM pragma_index_info(i.name)) = 2
       AND (SELECT count(DISTINCT lower(name)) FROM pragma_index_info(i.name)
              WHERE lower(name) IN ('group_name', 'entry_key')) = 2)";

/// Whether the file already holds everything [`ensure`] would create, read without taking the
/// write lock: then an open need not wait behind another process's write (`store kv get`
/// while a long transaction runs elsewhere). Anything missing or unreadable (a new file, one
/// written by an older version or another program, a dropped table, column, trigger or
/// index) sends the open through [`ensure`] under `BEGIN IMMEDIATE`, which repairs it.
///
/// The key constraint is checked here too although a stamped file always had one: only a
/// program that rebuilt `entries` without it could remove it, and then every write would fail
/// ("ON CONFLICT clause does not match") until [`ensure`] added the index; the check reads the
/// in-memory schema only.
pub(crate) fn is_current(conn: &Connection) -> bool {
    let sql = format!(
        "SELECT (SELECT value FROM store_meta WHERE name = '{SCHEMA_META_KEY}') >= {SCHEMA_VERSION}
            AND (SELECT value FROM store_meta WHERE name = '{triggers_key}') = {triggers_version}
            AND (SELECT value FROM store_meta WHERE name = '{versions_key}')
                  >= coalesce((SELECT max(seq) FROM changes), 0)
            AND (SELECT count(*) FROM sqlite_master WHERE type = 'table'
                   AND name IN ('entries', 'changes', 'scope_usage', 'store_meta')) = 4
            AND EXISTS (SELECT 1 FROM pragma_table_info('entries') WHERE name = 'version')
            AND EXISTS (SELECT 1 FROM pragma_table_info('entries') WHERE name = 'expires_at')
            AND (SELECT count(*) FROM sqlite_master WHERE type = 'trigger'
                   AND name IN ('{triggers}', '{VERSION_RESET_TRIGGER}')) = {n}
            AND {HAS_KEY_CONSTRAINT}
            AND (SELECT count(*) FROM sqlite_master WHERE type = 'index'
                   AND name IN ('entries_expires_at_idx', 'entries_namespace_expiry_idx')) = 2
            AND NOT {LEGACY_KV_TABLE}",
        triggers_key = super::usage::META_KEY,
        versions_key = crate::kv::versions::META_KEY,
        triggers_version = super::usage::TRIGGER_VERSION,
        triggers = super::usage::TRIGGERS.join("', '"),
        n = super::usage::TRIGGERS.len() + 1,
    );
    conn.query_row(&sql, [], |r| r.get::<_, Option<bool>>(0))
        .ok()
        .flatten()
        .unwrap_or(false)
}

/// Brings the schema up to date; runs inside the caller's `BEGIN IMMEDIATE`.
pub(crate) fn ensure(op: &'static str, conn: &Connection) -> Result<()> {
    let fail = |e: rusqlite::Error| Error::sqlite(op, CONTEXT, e);
    conn.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS entries ({ENTRIES_COLUMNS});"
    ))
    .map_err(fail)?;
    add_column(conn, "entries", "expires_at INTEGER").map_err(fail)?;
    add_column(conn, "entries", "version INTEGER NOT NULL DEFAULT 0").map_err(fail)?;
    // Before the legacy rows are merged: moving them relies on the key constraint.
    ensure_key_constraint(conn).map_err(fail)?;
    conn.execute_batch(&version_reset_trigger_sql()).map_err(fail)?;
    conn.execute_batch(
        "CREATE INDEX IF NOT EXISTS entries_expires_at_idx ON entries(expires_at) WHERE expires_at IS NOT NULL;
         -- A namespace's expired rows, for its live usage (see usage.rs): the namespace prefix
         -- `ns:` of the group, then the expiry.
         CREATE INDEX IF NOT EXISTS entries_namespace_expiry_idx
            ON entries(substr(group_name, 1, instr(group_name, ':')), expires_at) WHERE expires_at IS NOT NULL;
         CREATE TABLE IF NOT EXISTS store_meta (name TEXT PRIMARY KEY, value INTEGER);
         CREATE TABLE IF NOT EXISTS changes (
            seq INTEGER PRIMARY KEY,
            at_ms INTEGER NOT NULL,
            kind TEXT NOT NULL,
            group_name TEXT NOT NULL,
            entry_key TEXT,
            entry_value TEXT,
            expires_at INTEGER
         );",
    )
    .map_err(fail)?;
    migrate_legacy_kv(conn).map_err(fail)?;
    reserve_above_stored_versions(conn).map_err(fail)?;
    super::usage::ensure(conn).map_err(fail)?;
    // Never lowered: a file a newer version stamped keeps its stamp (that version then finds
    // it current too; this one found everything it needs).
    let stamped = super::meta_get(conn, SCHEMA_META_KEY).map_err(fail)?.unwrap_or(0);
    super::meta_set(conn, SCHEMA_META_KEY, stamped.max(SCHEMA_VERSION)).map_err(fail)
}

/// Moves the version allocator's reservation above every version already in `entries` and
/// every sequence number in `changes`, creating the reservation row if it is missing. Our own
/// versions are always below it, but rows copied in from another file, or written with an
/// explicit version by another program, may not be: a fresh version equal to the row's would
/// make the foreign-write trigger take our own write for a foreign one. And a file whose
/// reservation row was lost (deleted by hand, `store_meta` dropped) would start again at 1,
/// where the feed's numbers are taken: every write would fail on `changes.seq` for good (the
/// rollback puts the allocator back each time). [`is_current`] sends such a file here, and
/// one whose reservation is NULL or below the feed's last number (set back by hand): ours
/// never is, as every number is taken from a reservation stored before it. Runs on
/// the open's slow path only, so the scan of `entries` is paid once.
fn reserve_above_stored_versions(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO store_meta (name, value)
           SELECT ?1, max(coalesce((SELECT max(version) FROM entries), 0),
                          coalesce((SELECT max(seq) FROM changes), 0), 0)
           ON CONFLICT (name) DO UPDATE SET value = max(coalesce(value, 0), excluded.value)",
        [crate::kv::versions::META_KEY],
    )
    .map(drop)
}

/// Adds a unique index on (group_name, entry_key) when `entries` has no key constraint on them
/// (a table another program created without one): an additive change that makes the writes'
/// upserts valid. Duplicate keys already in the table make that impossible; the error then
/// names one such key and shows how to remove the extra rows, but deletes nothing itself: only
/// the owner of the data knows which row of a key is the right one.
fn ensure_key_constraint(conn: &Connection) -> rusqlite::Result<()> {
    let has_key: bool = conn.query_row(&format!("SELECT {HAS_KEY_CONSTRAINT}"), [], |r| r.get(0))?;
    if has_key {
        return Ok(());
    }
    // An index of that name that is not a valid key (not unique, or partial) would keep the
    // table without one: it holds no data, so it is replaced.
    let created = conn.execute_batch(&format!(
        "DROP INDEX IF EXISTS {KEY_INDEX}; CREATE UNIQUE INDEX {KEY_INDEX} ON entries(group_name, entry_key)"
    ));
    match created {
        Err(rusqlite::Error::SqliteFailure(code, cause))
            if code.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE =>
        {
            // Only to name a key in the message: if even this read fails, the message goes
            // without one.
            let example: Option<(String, String)> = conn
                .query_row(
                    "SELECT CAST(group_name AS TEXT), CAST(entry_key AS TEXT) FROM entries
                     GROUP BY group_name, entry_key HAVING count(*) > 1 LIMIT 1",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .ok()
                .flatten();
            let example = example
                .map(|(g, k)| format!(" (e.g. group {g:?}, key {k:?})"))
                .unwrap_or_default();
            // The suggested statement names the row ids as this table can (another program
            // may have a column called `rowid`, which would make `rowid` name it instead);
            // without any row id to name, the message suggests none.
            let suggestion = match super::row_id_name(conn) {
                Ok(Some(id)) => format!(
                    ", e.g. `DELETE FROM entries WHERE {id} NOT IN (SELECT max({id}) FROM entries \
                     GROUP BY group_name, entry_key)` keeps the one with the highest {id}"
                ),
                _ => String::new(),
            };
            let message = format!(
                "table entries has no primary key on (group_name, entry_key), and it holds \
                 several rows with the same (group_name, entry_key){example}, so the unique \
                 index {KEY_INDEX} that writes need cannot be added ({cause}); decide which \
                 row of each key to keep and delete the others{suggestion}, then open the file \
                 again",
                cause = cause.as_deref().unwrap_or("UNIQUE constraint failed"),
            );
            Err(rusqlite::Error::SqliteFailure(code, Some(message)))
        }
        other => other,
    }
}

/// `ALTER TABLE … ADD COLUMN`, ignoring "duplicate column" so it is idempotent.
fn add_column(conn: &Connection, table: &str, column_def: &str) -> rusqlite::Result<()> {
    match conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column_def}")) {
        Err(rusqlite::Error::SqliteFailure(_, Some(msg))) if msg.contains("duplicate column") => Ok(()),
        other => other,
    }
}

/// SQL condition: the file holds a legacy `kv` table, one with `grp`, `key` and `value`
/// columns (any letter case). A table named `kv` of another shape, a view, or a virtual table
/// (a full-text index, say, whose module this SQLite may not even have) is someone else's, and
/// [`ensure`] leaves it alone; [`is_current`] uses the same test, so such a table costs later
/// opens nothing.
const LEGACY_KV_TABLE: &str = "EXISTS (SELECT 1 FROM sqlite_master
       WHERE type = 'table' AND name = 'kv' AND sql NOT LIKE 'CREATE VIRTUAL%'
         AND (SELECT count(*) FROM pragma_table_info('kv')
                WHERE lower(name) IN ('grp', 'key', 'value')) = 3)";

/// A legacy column's value as `entries` stores and compares it: numbers become their text
/// (TEXT columns), BLOBs stay BLOBs, and keys compare bytewise. Compared as they are instead,
/// a column of numeric affinity would make `1` equal `'1.0'` (h163).
fn as_stored(column: &str) -> String {
    format!(
        "(CASE WHEN typeof({column}) IN ('integer', 'real') THEN CAST({column} AS TEXT) \
         ELSE {column} END) COLLATE BINARY"
    )
}

/// SQL condition on a legacy row `k`: `entries` does not hold its key yet (else `entries`
/// wins, SPEC §3.2), compared as `entries` compares keys.
fn not_in_entries() -> String {
    format!(
        "NOT EXISTS (SELECT 1 FROM entries AS e WHERE e.group_name = {} AND e.entry_key = {})",
        as_stored("k.grp"),
        as_stored("k.key")
    )
}

/// Moves rows of a legacy `kv(grp, key, value[, expires_at])` table into `entries` (existing
/// entries win) and drops it.
///
/// The rows go through a TEMP table shaped like `entries` first (TEXT NOT NULL columns, binary
/// key), so they are converted and compared exactly as `entries` will hold them (an integer
/// key `1` becomes the text `'1'`; a `COLLATE NOCASE` legacy column no longer makes `'A'` and
/// `'a'` one key). Rows whose key `entries` already holds are left out (it wins, SPEC §3.2).
/// Any other row `entries` cannot take refuses the migration rather than being dropped with
/// the table: a NULL `grp`, `key` or `value`, or two rows that are one key in `entries`. The
/// caller rolls back, so the data stays as it was.
fn migrate_legacy_kv(conn: &Connection) -> rusqlite::Result<()> {
    let legacy: bool = conn.query_row(&format!("SELECT {LEGACY_KV_TABLE}"), [], |r| r.get(0))?;
    if !legacy {
        return Ok(());
    }
    let has_expiry: bool = conn
        .prepare("SELECT 1 FROM pragma_table_info('kv') WHERE lower(name) = 'expires_at'")?
        .exists([])?;
    let expiry = if has_expiry { "expires_at" } else { "NULL" };
    conn.execute_batch(&format!(
        "DROP TABLE IF EXISTS temp.store_legacy_kv;
         CREATE TEMP TABLE store_legacy_kv ({ENTRIES_COLUMNS});"
    ))?;
    let staged = conn.execute_batch(&format!(
        "INSERT INTO temp.store_legacy_kv (group_name, entry_key, entry_value, expires_at)
             SELECT grp, key, value, {expiry} FROM kv AS k WHERE {};",
        not_in_entries()
    ));
    if let Err(e) = staged {
        let refusal = match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::ConstraintViolation) => unmovable_legacy_rows(conn)?,
            _ => None,
        };
        return Err(match refusal {
            Some(refusal) => rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT),
                Some(refusal),
            ),
            None => e,
        });
    }
    conn.execute_batch(
        // A plain INSERT: staging left out every key `entries` holds, so a conflict here (an
        // `entries` another program made with a case-blind key, say) fails rather than drops.
        "INSERT INTO entries (group_name, entry_key, entry_value, expires_at, version)
             SELECT group_name, entry_key, entry_value, expires_at, 0 FROM temp.store_legacy_kv;
         DROP TABLE temp.store_legacy_kv;
         DROP TABLE kv;",
    )
}

/// Why the legacy `kv` rows cannot all move (the first such row named, and the fix), for the
/// refusal's message; `None` if no such row is found (the caller then keeps SQLite's error).
/// Names are shown as SQL literals (`quote`), so a BLOB name or a NULL reads plainly.
fn unmovable_legacy_rows(conn: &Connection) -> rusqlite::Result<Option<String>> {
    // As `migrate_legacy_kv` stages them: rows whose key `entries` holds are not moved.
    let moving = format!("SELECT grp, key, value FROM kv AS k WHERE {}", not_in_entries());
    let first_null: Option<(String, String, i64)> = conn
        .query_row(
            &format!(
                "SELECT quote(grp), quote(key), count(*) OVER () FROM ({moving})
                 WHERE grp IS NULL OR key IS NULL OR value IS NULL LIMIT 1"
            ),
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    if let Some((group, key, rows)) = first_null {
        return Ok(Some(format!(
            "the legacy table kv holds {rows} row(s) with a NULL grp, key or value (the first: \
             grp {group}, key {key}), which entries cannot hold; give them values (e.g. \
             UPDATE kv SET value = '' WHERE value IS NULL) or delete them, then open the file \
             again (nothing was migrated)"
        )));
    }
    let first_repeat: Option<(String, String, i64)> = conn
        .query_row(
            &format!(
                "SELECT quote(min(grp)), quote(min(key)), count(*) FROM ({moving})
                 GROUP BY {}, {} HAVING count(*) > 1 LIMIT 1",
                as_stored("grp"),
                as_stored("key")
            ),
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    Ok(first_repeat.map(|(group, key, rows)| {
        format!(
            "the legacy table kv holds {rows} rows for grp {group}, key {key} (as entries \
             stores them), and entries keeps one row per key; delete all but the one to keep, \
             then open the file again (nothing was migrated)"
        )
    }))
}
