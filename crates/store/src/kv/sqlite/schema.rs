//! Schema creation and additive migrations.
//!
//! The `entries` table keeps the column layout of the Go implementation of this design
//! (`group_name, entry_key, entry_value, expires_at /* unix ms */`, primary key `(group_name,
//! entry_key)`), so either program opens the other's files. Everything this crate adds is
//! additive: a `version` column with a default, and tables of its own. Old files gain them on open.

use rusqlite::{Connection, OptionalExtension};

use crate::error::{Error, Result};

const CONTEXT: &str = "ensure schema";

/// Bumped whenever [`ensure`] creates or changes something; stamped in `store_meta` once a
/// file has all of it, so later opens can see that with one read (see [`is_current`]).
const SCHEMA_VERSION: i64 = 1;
const SCHEMA_META_KEY: &str = "schema_version";

/// Whether the file already holds everything [`ensure`] would create, read without taking the
/// write lock: then an open need not wait behind another process's write (`store kv get`
/// while a long transaction runs elsewhere). Anything missing or unreadable (a new file, one
/// written by an older version or another program, a dropped table, column, trigger or
/// index) sends the open through [`ensure`] under `BEGIN IMMEDIATE`, which repairs it.
pub(crate) fn is_current(conn: &Connection) -> bool {
    let sql = format!(
        "SELECT (SELECT value FROM store_meta WHERE name = '{SCHEMA_META_KEY}') >= {SCHEMA_VERSION}
            AND (SELECT value FROM store_meta WHERE name = '{triggers_key}') = {triggers_version}
            AND (SELECT count(*) FROM sqlite_master WHERE type = 'table'
                   AND name IN ('entries', 'changes', 'scope_usage', 'store_meta')) = 4
            AND EXISTS (SELECT 1 FROM pragma_table_info('entries') WHERE name = 'version')
            AND EXISTS (SELECT 1 FROM pragma_table_info('entries') WHERE name = 'expires_at')
            AND (SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name IN ('{triggers}')) = {n}
            AND (SELECT count(*) FROM sqlite_master WHERE type = 'index'
                   AND name IN ('entries_expires_at_idx', 'entries_namespace_expiry_idx')) = 2
            AND NOT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'kv')",
        triggers_key = super::usage::META_KEY,
        triggers_version = super::usage::TRIGGER_VERSION,
        triggers = super::usage::TRIGGERS.join("', '"),
        n = super::usage::TRIGGERS.len(),
    );
    conn.query_row(&sql, [], |r| r.get::<_, Option<bool>>(0))
        .ok()
        .flatten()
        .unwrap_or(false)
}

/// Brings the schema up to date; runs inside the caller's `BEGIN IMMEDIATE`.
pub(crate) fn ensure(op: &'static str, conn: &Connection) -> Result<()> {
    let fail = |e: rusqlite::Error| Error::sqlite(op, CONTEXT, e);
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS entries (
            group_name TEXT NOT NULL,
            entry_key TEXT NOT NULL,
            entry_value TEXT NOT NULL,
            expires_at INTEGER,
            PRIMARY KEY (group_name, entry_key)
        );",
    )
    .map_err(fail)?;
    add_column(conn, "entries", "expires_at INTEGER").map_err(fail)?;
    add_column(conn, "entries", "version INTEGER NOT NULL DEFAULT 0").map_err(fail)?;
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
    super::usage::ensure(conn).map_err(fail)?;
    // Never lowered: a file a newer version stamped keeps its stamp (that version then finds
    // it current too; this one found everything it needs).
    let stamped = super::meta_get(conn, SCHEMA_META_KEY).map_err(fail)?.unwrap_or(0);
    super::meta_set(conn, SCHEMA_META_KEY, stamped.max(SCHEMA_VERSION)).map_err(fail)
}

/// `ALTER TABLE … ADD COLUMN`, ignoring "duplicate column" so it is idempotent.
fn add_column(conn: &Connection, table: &str, column_def: &str) -> rusqlite::Result<()> {
    match conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column_def}")) {
        Err(rusqlite::Error::SqliteFailure(_, Some(msg))) if msg.contains("duplicate column") => Ok(()),
        other => other,
    }
}

/// Moves rows of a legacy `kv(grp, key, value[, expires_at])` table into `entries` (existing
/// entries win) and drops it.
fn migrate_legacy_kv(conn: &Connection) -> rusqlite::Result<()> {
    let legacy: Option<String> = conn
        .query_row(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'kv'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    if legacy.is_none() {
        return Ok(());
    }
    let has_expiry: bool = conn
        .prepare("SELECT 1 FROM pragma_table_info('kv') WHERE name = 'expires_at'")?
        .exists([])?;
    let expiry = if has_expiry { "expires_at" } else { "NULL" };
    conn.execute_batch(&format!(
        "INSERT OR IGNORE INTO entries (group_name, entry_key, entry_value, expires_at, version)
             SELECT grp, key, value, {expiry}, 0 FROM kv;
         DROP TABLE kv;"
    ))
}
