//! Schema creation and additive migrations.
//!
//! The `entries` table keeps the column layout of the Go implementation of this design
//! (`group_name, entry_key, entry_value, expires_at /* unix ms */`, primary key `(group_name,
//! entry_key)`), so either program opens the other's files. Everything this crate adds is
//! additive: a `version` column with a default, and tables of its own. Old files gain them on open.

use rusqlite::{Connection, OptionalExtension};

use crate::error::{Error, Result};

const CONTEXT: &str = "ensure schema";

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
    Ok(())
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
