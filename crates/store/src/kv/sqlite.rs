//! Every SQL statement of the KV layer, behind a narrow set of functions.
//!
//! The rest of the crate never writes SQL for the KV tables: it calls these functions with a
//! connection that is either a pooled reader (one implicit read transaction per statement) or the
//! writer inside `BEGIN IMMEDIATE`. A PostgreSQL backend is the same function set over another
//! connection type; nothing above this module needs to change for it.
//!
//! Liveness is always `expires_at IS NULL OR expires_at > now`. Group prefixes are matched as a
//! byte range `[prefix, successor(prefix))` on the primary-key index, which is exact, literal (no
//! `%`/`_`/escape characters) and case-sensitive, and lets SQLite seek instead of scanning.

pub(crate) mod conn;
pub(crate) mod schema;
pub(crate) mod usage;

use std::collections::BTreeMap;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OptionalExtension, ToSql, params};

use crate::kv::Entry;

/// A stored row as the KV layer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredRow {
    pub value: String,
    pub version: u64,
    pub expires_at: Option<i64>,
}

impl StoredRow {
    pub fn is_live(&self, now: i64) -> bool {
        is_live(self.expires_at, now)
    }
}

/// The store's liveness rule, in Rust.
#[inline]
pub(crate) fn is_live(expires_at: Option<i64>, now: i64) -> bool {
    expires_at.is_none_or(|at| at > now)
}

/// Raw UTF-8 (or, for a range bound, not-quite-UTF-8) bytes bound as SQLite TEXT.
pub(crate) struct TextBytes<'a>(&'a [u8]);

impl ToSql for TextBytes<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(ValueRef::Text(self.0)))
    }
}

/// The exclusive upper bound of a group range, bound as `?2` of a statement chosen by
/// `in_range!`. `Unbounded` binds NULL for the statement's `?2 IS NULL`: no value sorts
/// above every BLOB, and a group name another program stored as a BLOB is still a group of
/// the `""` prefix (an empty-BLOB bound, `group_name < X''`, left such rows out of
/// `count_all("")`, `groups("")` and `delete_prefix("")`).
pub(crate) enum UpperBound<'a> {
    Below(&'a [u8]),
    Unbounded,
}

impl ToSql for UpperBound<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            UpperBound::Below(b) => ValueRef::Text(b),
            UpperBound::Unbounded => ValueRef::Null,
        }))
    }
}

/// One of two spellings of a statement over a [`GroupRange`] (`?1` its lower bound, `?2` its
/// upper one): `group_name < ?2` when the range is bounded, so the index scan stops there, and
/// `?2 IS NULL` when it is not (an `OR` of the two would keep SQLite from using the bound).
/// `$head` ends just before the upper-bound condition, `$tail` starts after it.
macro_rules! in_range {
    ($range:expr, $head:literal, $tail:literal) => {
        if $range.is_bounded() {
            concat!($head, "group_name < ?2", $tail)
        } else {
            concat!($head, "?2 IS NULL", $tail)
        }
    };
}

/// The half-open byte range of group names starting with a prefix (`""` = every group).
pub(crate) struct GroupRange {
    lo: Vec<u8>,
    hi: Option<Vec<u8>>,
}

impl GroupRange {
    pub fn new(prefix: &str) -> GroupRange {
        let lo = prefix.as_bytes().to_vec();
        let mut hi = lo.clone();
        // The successor of a prefix: drop trailing 0xFF bytes, then increment the last byte. The
        // last byte of valid UTF-8 is at most 0xBF, so this always succeeds for a non-empty prefix.
        while let Some(last) = hi.pop() {
            if last < 0xFF {
                hi.push(last + 1);
                return GroupRange { lo, hi: Some(hi) };
            }
        }
        GroupRange { lo, hi: None }
    }

    /// Whether the range has an upper bound (every prefix but `""`).
    pub(crate) fn is_bounded(&self) -> bool {
        self.hi.is_some()
    }

    pub(crate) fn bounds(&self) -> (TextBytes<'_>, UpperBound<'_>) {
        let hi = match &self.hi {
            Some(hi) => UpperBound::Below(hi),
            None => UpperBound::Unbounded,
        };
        (TextBytes(&self.lo), hi)
    }
}

/// Reads an `entry_value` written by any program: TEXT as is, numbers as their decimal text.
fn text_column(row: &rusqlite::Row<'_>, idx: usize) -> rusqlite::Result<String> {
    Ok(match row.get_ref(idx)? {
        ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(r) => r.to_string(),
        ValueRef::Blob(b) => String::from_utf8_lossy(b).into_owned(),
        ValueRef::Null => String::new(),
    })
}

/// Where a keyset scan resumes: the last row's key (or group) exactly as stored, of whatever
/// type and bytes another program wrote, so the next chunk starts right after it. Resuming
/// from the decoded (lossy) text instead would restart before a key holding invalid UTF-8,
/// or one stored as a BLOB or a number, and return the same chunk forever. For the same reason
/// it names a group to delete as stored ([`all_groups`]).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cursor {
    Integer(i64),
    Real(f64),
    Text(Vec<u8>),
    Blob(Vec<u8>),
}

impl Cursor {
    /// Points `cursor` at column `idx` of `row`, reusing its buffer: a chunk sets it for every
    /// row and keeps the last.
    fn set(cursor: &mut Option<Cursor>, row: &rusqlite::Row<'_>, idx: usize) -> rusqlite::Result<()> {
        match (cursor.as_mut(), row.get_ref(idx)?) {
            (Some(Cursor::Text(buf)), ValueRef::Text(t)) => {
                buf.clear();
                buf.extend_from_slice(t);
            }
            _ => *cursor = Some(Cursor::of(row, idx)?),
        }
        Ok(())
    }

    fn of(row: &rusqlite::Row<'_>, idx: usize) -> rusqlite::Result<Cursor> {
        Ok(match row.get_ref(idx)? {
            ValueRef::Integer(i) => Cursor::Integer(i),
            ValueRef::Real(r) => Cursor::Real(r),
            ValueRef::Text(t) => Cursor::Text(t.to_vec()),
            ValueRef::Blob(b) => Cursor::Blob(b.to_vec()),
            // Key and group columns are NOT NULL; an empty text sorts first among texts.
            ValueRef::Null => Cursor::Text(Vec::new()),
        })
    }
}

impl ToSql for Cursor {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            Cursor::Integer(i) => ValueRef::Integer(*i),
            Cursor::Real(r) => ValueRef::Real(*r),
            Cursor::Text(t) => ValueRef::Text(t),
            Cursor::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

/// Reads an `expires_at` written by any program the way SQL compares it with `now`: NULL never
/// expires; a fractional number counts as the next whole millisecond (`1000.5 > now` exactly
/// when `1001 > now`, `now` being whole); text and blobs sort above every number in SQLite,
/// so like NULL they never expire.
fn expiry_column(row: &rusqlite::Row<'_>, idx: usize) -> rusqlite::Result<Option<i64>> {
    Ok(match row.get_ref(idx)? {
        ValueRef::Integer(i) => Some(i),
        // `as` saturates, and SQLite stores no NaN (it becomes NULL).
        ValueRef::Real(r) => Some(r.ceil() as i64),
        ValueRef::Null | ValueRef::Text(_) | ValueRef::Blob(_) => None,
    })
}

/// Reads a `version` written by any program: a whole number of at least 0 (anything else is 0).
fn version_column(row: &rusqlite::Row<'_>, idx: usize) -> rusqlite::Result<u64> {
    Ok(match row.get_ref(idx)? {
        ValueRef::Integer(i) => u64::try_from(i).unwrap_or(0),
        // `as` saturates: negative numbers become 0.
        ValueRef::Real(r) => r as u64,
        ValueRef::Null | ValueRef::Text(_) | ValueRef::Blob(_) => 0,
    })
}

// ---------------------------------------------------------------------------------------------
// Reads

/// The row at (group, key), live or not.
pub(crate) fn get(conn: &Connection, group: &str, key: &str) -> rusqlite::Result<Option<StoredRow>> {
    conn.prepare_cached(
        "SELECT entry_value, version, expires_at FROM entries WHERE group_name = ?1 AND entry_key = ?2",
    )?
    .query_row(params![group, key], |row| {
        Ok(StoredRow {
            value: text_column(row, 0)?,
            version: version_column(row, 1)?,
            expires_at: expiry_column(row, 2)?,
        })
    })
    .optional()
}

pub(crate) fn exists(conn: &Connection, group: &str, key: &str, now: i64) -> rusqlite::Result<bool> {
    conn.prepare_cached(
        "SELECT 1 FROM entries WHERE group_name = ?1 AND entry_key = ?2 \
         AND (expires_at IS NULL OR expires_at > ?3)",
    )?
    .exists(params![group, key, now])
}

pub(crate) fn group_exists(conn: &Connection, group: &str, now: i64) -> rusqlite::Result<bool> {
    conn.prepare_cached(
        "SELECT 1 FROM entries WHERE group_name = ?1 AND (expires_at IS NULL OR expires_at > ?2) LIMIT 1",
    )?
    .exists(params![group, now])
}

pub(crate) fn count(conn: &Connection, group: &str, now: i64) -> rusqlite::Result<u64> {
    let n: i64 = conn
        .prepare_cached(
            "SELECT count(*) FROM entries WHERE group_name = ?1 AND (expires_at IS NULL OR expires_at > ?2)",
        )?
        .query_row(params![group, now], |r| r.get(0))?;
    Ok(n.max(0) as u64)
}

pub(crate) fn count_prefix(conn: &Connection, prefix: &str, now: i64) -> rusqlite::Result<u64> {
    let range = GroupRange::new(prefix);
    let (lo, hi) = range.bounds();
    let n: i64 = conn
        .prepare_cached(in_range!(
            range,
            "SELECT count(*) FROM entries WHERE group_name >= ?1 AND ",
            " AND (expires_at IS NULL OR expires_at > ?3)"
        ))?
        .query_row(params![lo, hi, now], |r| r.get(0))?;
    Ok(n.max(0) as u64)
}

pub(crate) fn get_all(
    conn: &Connection,
    group: &str,
    now: i64,
) -> rusqlite::Result<BTreeMap<String, String>> {
    let mut stmt = conn.prepare_cached(
        "SELECT entry_key, entry_value FROM entries WHERE group_name = ?1 \
         AND (expires_at IS NULL OR expires_at > ?2)",
    )?;
    let mut rows = stmt.query(params![group, now])?;
    let mut out = BTreeMap::new();
    while let Some(row) = rows.next()? {
        out.insert(text_column(row, 0)?, text_column(row, 1)?);
    }
    Ok(out)
}

/// Live entries in key order, `offset`/`limit` already clamped.
pub(crate) fn page(
    conn: &Connection,
    group: &str,
    now: i64,
    offset: i64,
    limit: i64,
) -> rusqlite::Result<Vec<Entry>> {
    let mut stmt = conn.prepare_cached(
        "SELECT entry_key, entry_value FROM entries WHERE group_name = ?1 \
         AND (expires_at IS NULL OR expires_at > ?2) ORDER BY entry_key LIMIT ?4 OFFSET ?3",
    )?;
    let rows = stmt.query_map(params![group, now, offset, limit], |row| {
        Ok(Entry {
            key: text_column(row, 0)?,
            value: text_column(row, 1)?,
        })
    })?;
    rows.collect()
}

/// The next keyset chunk of live entries after `after` (exclusive), and where the next one
/// resumes (the last row's stored key).
pub(crate) fn page_after(
    conn: &Connection,
    group: &str,
    after: Option<&Cursor>,
    now: i64,
    limit: i64,
) -> rusqlite::Result<(Vec<Entry>, Option<Cursor>)> {
    let mut stmt = match after {
        None => conn.prepare_cached(
            "SELECT entry_key, entry_value FROM entries WHERE group_name = ?1 \
             AND (expires_at IS NULL OR expires_at > ?2) AND ?4 IS NULL ORDER BY entry_key LIMIT ?3",
        )?,
        Some(_) => conn.prepare_cached(
            "SELECT entry_key, entry_value FROM entries WHERE group_name = ?1 AND entry_key > ?4 \
             AND (expires_at IS NULL OR expires_at > ?2) ORDER BY entry_key LIMIT ?3",
        )?,
    };
    let mut rows = stmt.query(params![group, now, limit, after])?;
    let (mut entries, mut cursor) = (Vec::new(), None);
    while let Some(row) = rows.next()? {
        entries.push(Entry {
            key: text_column(row, 0)?,
            value: text_column(row, 1)?,
        });
        Cursor::set(&mut cursor, row, 0)?;
    }
    Ok((entries, cursor))
}

/// Distinct groups with a live entry, ascending, after `after` (exclusive), at most `limit`,
/// and where the next chunk resumes (the last group as stored).
pub(crate) fn groups_after(
    conn: &Connection,
    prefix: &str,
    after: Option<&Cursor>,
    now: i64,
    limit: i64,
) -> rusqlite::Result<(Vec<String>, Option<Cursor>)> {
    let range = GroupRange::new(prefix);
    let (lo, hi) = range.bounds();
    let start = Cursor::Text(Vec::new());
    let mut stmt = conn.prepare_cached(in_range!(
        range,
        "SELECT DISTINCT group_name FROM entries WHERE group_name >= ?1 AND ",
        " AND group_name > ?3 AND (expires_at IS NULL OR expires_at > ?4) ORDER BY group_name LIMIT ?5"
    ))?;
    let mut rows = stmt.query(params![lo, hi, after.unwrap_or(&start), now, limit])?;
    let (mut groups, mut cursor) = (Vec::new(), None);
    while let Some(row) = rows.next()? {
        groups.push(text_column(row, 0)?);
        Cursor::set(&mut cursor, row, 0)?;
    }
    Ok((groups, cursor))
}

// ---------------------------------------------------------------------------------------------
// Writes: called on the writer connection, inside the caller's transaction where one is needed.

/// Inserts or replaces (group, key), setting value, expiry and version.
#[inline]
pub(crate) fn upsert(
    conn: &Connection,
    group: &str,
    key: &str,
    value: &str,
    expires_at: Option<i64>,
    version: u64,
) -> rusqlite::Result<()> {
    conn.prepare_cached(UPSERT_SQL)?
        .execute(params![group, key, value, expires_at, version as i64])?;
    Ok(())
}

/// The upsert statement, shared with the benchmark's raw-rusqlite baseline.
///
/// Bind a version other than the row's current one (this crate binds a fresh one): an update
/// of the value or expiry that leaves the version as it was is taken for another program's
/// write, and a trigger resets the row's version to 0. A program writing versions of its own
/// must take them above `store_meta.version_reserved`, where this crate's next ones start.
///
/// # Examples
/// ```
/// use store::{Kv, Store};
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("state.db");
/// drop(Store::open(&path)?); // creates the schema
/// let conn = rusqlite::Connection::open(&path)?;
/// conn.execute(store::kv::UPSERT_SQL, rusqlite::params!["g", "k", "raw", None::<i64>, 7])?;
/// let got = Store::open(&path)?.get_with_version("g", "k")?;
/// assert_eq!((got.value.as_str(), got.version), ("raw", 7));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub const UPSERT_SQL: &str = "INSERT INTO entries (group_name, entry_key, entry_value, expires_at, version) \
     VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (group_name, entry_key) DO UPDATE SET \
     entry_value = excluded.entry_value, expires_at = excluded.expires_at, version = excluded.version";

/// Keeps value and expiry, replaces the value and version (increment).
pub(crate) fn update_value(
    conn: &Connection,
    group: &str,
    key: &str,
    value: &str,
    version: u64,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE entries SET entry_value = ?3, version = ?4 WHERE group_name = ?1 AND entry_key = ?2",
    )?
    .execute(params![group, key, value, version as i64])?;
    Ok(())
}

/// Deletes (group, key); `Some(expires_at)` of the removed row, `None` if there was none.
pub(crate) fn delete(conn: &Connection, group: &str, key: &str) -> rusqlite::Result<Option<Option<i64>>> {
    conn.prepare_cached("DELETE FROM entries WHERE group_name = ?1 AND entry_key = ?2 RETURNING expires_at")?
        .query_row(params![group, key], |r| expiry_column(r, 0))
        .optional()
}

/// Deletes (group, key) only if it has expired by `now`; true if it did.
pub(crate) fn delete_if_expired(
    conn: &Connection,
    group: &str,
    key: &str,
    now: i64,
) -> rusqlite::Result<bool> {
    let n = conn
        .prepare_cached(
            "DELETE FROM entries WHERE group_name = ?1 AND entry_key = ?2 \
             AND expires_at IS NOT NULL AND expires_at <= ?3",
        )?
        .execute(params![group, key, now])?;
    Ok(n > 0)
}

/// Calls `each` with the key of every row of `group` that expired by `now`, in the table's key
/// order, reading them one at a time (a group may hold millions); returns how many there were.
/// `fail` gives a read error its context.
pub(crate) fn each_expired_key(
    conn: &Connection,
    group: &dyn ToSql,
    now: i64,
    mut each: impl FnMut(&str) -> crate::Result<()>,
    fail: impl Fn(rusqlite::Error) -> crate::Error,
) -> crate::Result<u64> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT entry_key FROM entries WHERE group_name = ?1 AND expires_at IS NOT NULL AND expires_at <= ?2
             ORDER BY entry_key",
        )
        .map_err(&fail)?;
    let mut rows = stmt.query(params![group, now]).map_err(&fail)?;
    let mut count = 0;
    while let Some(row) = rows.next().map_err(&fail)? {
        each(&text_column(row, 0).map_err(&fail)?)?;
        count += 1;
    }
    Ok(count)
}

/// Deletes every row of `group`; returns how many went.
pub(crate) fn delete_group(conn: &Connection, group: &dyn ToSql) -> rusqlite::Result<u64> {
    conn.prepare_cached("DELETE FROM entries WHERE group_name = ?1")?
        .execute(params![group])
        .map(|n| n as u64)
}

/// Every group (live or not) starting with `prefix`, ascending: each exactly as stored (to bind
/// back: a name another program wrote as invalid UTF-8 would not match its decoded text) and
/// as text.
pub(crate) fn all_groups(conn: &Connection, prefix: &str) -> rusqlite::Result<Vec<(Cursor, String)>> {
    let range = GroupRange::new(prefix);
    let (lo, hi) = range.bounds();
    conn.prepare_cached(in_range!(
        range,
        "SELECT DISTINCT group_name FROM entries WHERE group_name >= ?1 AND ",
        " ORDER BY group_name"
    ))?
    .query_map(params![lo, hi], |row| {
        Ok((Cursor::of(row, 0)?, text_column(row, 0)?))
    })?
    .collect()
}

/// Deletes up to `limit` rows that expired by `now` in the scope whose group prefix is
/// `scope_prefix` (`""`: every group; `"<namespace>:"`: one namespace); returns their (group,
/// key) in ascending order. A namespace's rows are found through its expiry index (the
/// expression must be the index's, word for word), so only rows with a TTL are visited, however
/// many live ones the namespace holds. The rows found are deleted by row id (see
/// [`row_id_name`]: a column another program named `rowid` must not decide which rows go), or
/// by key in a table without row ids ([`purge_expired_by_key`]).
pub(crate) fn purge_expired(
    conn: &Connection,
    scope_prefix: &str,
    now: i64,
    limit: i64,
) -> rusqlite::Result<Vec<(String, String)>> {
    let Some(id) = row_id_name(conn)? else {
        return purge_expired_by_key(conn, scope_prefix, now, limit);
    };
    let mut removed: Vec<(String, String)> = conn
        .prepare_cached(&format!(
            "DELETE FROM entries WHERE {id} IN ({}) RETURNING group_name, entry_key",
            expired_rows(id, scope_prefix)
        ))?
        .query_map(params![now, limit, scope_prefix], |row| {
            Ok((text_column(row, 0)?, text_column(row, 1)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    removed.sort_unstable();
    Ok(removed)
}

/// A `SELECT` of `columns` from up to `?2` rows that expired by `?1` in the scope whose group
/// prefix is `?3` ([`purge_expired`]'s `scope_prefix`): the whole store for `""` (then `?3`
/// is only compared with itself), else one namespace through its expiry index.
fn expired_rows(columns: &str, scope_prefix: &str) -> String {
    if scope_prefix.is_empty() {
        format!(
            "SELECT {columns} FROM entries \
             WHERE expires_at IS NOT NULL AND expires_at <= ?1 AND ?3 = '' LIMIT ?2"
        )
    } else {
        format!(
            "SELECT {columns} FROM entries INDEXED BY entries_namespace_expiry_idx \
             WHERE substr(group_name, 1, instr(group_name, ':')) = ?3 \
               AND expires_at IS NOT NULL AND expires_at <= ?1 LIMIT ?2"
        )
    }
}

/// [`purge_expired`] for a table without row ids: the expired rows found are deleted one by
/// one by their key exactly as stored (`IS`, so NULL keys another program allowed go too, and
/// bytewise, so a key column collated `NOCASE` cannot take a live `K` along with an expired
/// `k`), each delete checking the expiry again.
fn purge_expired_by_key(
    conn: &Connection,
    scope_prefix: &str,
    now: i64,
    limit: i64,
) -> rusqlite::Result<Vec<(String, String)>> {
    use rusqlite::types::Value as Stored;
    let found: Vec<(Stored, Stored)> = conn
        .prepare_cached(&expired_rows("group_name, entry_key", scope_prefix))?
        .query_map(params![now, limit, scope_prefix], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    // The key compared twice: in the columns' own collation, which their key index serves
    // (compared in BINARY only, a NOCASE key index could not, and every delete would scan the
    // expired rows: h180 measured 48 s for 20,000), and bytewise, which decides.
    let mut delete = conn.prepare_cached(
        "DELETE FROM entries WHERE group_name IS ?1 AND entry_key IS ?2 \
           AND group_name IS ?1 COLLATE BINARY AND entry_key IS ?2 COLLATE BINARY \
           AND expires_at IS NOT NULL AND expires_at <= ?3 RETURNING group_name, entry_key",
    )?;
    let mut removed = Vec::with_capacity(found.len());
    for (group, key) in found {
        // A key several rows share (NULL keys can) takes all of its expired rows at once; the
        // batch ends once it removed its share.
        if removed.len() as i64 >= limit {
            break;
        }
        let mut rows = delete.query(params![group, key, now])?;
        while let Some(row) = rows.next()? {
            removed.push((text_column(row, 0)?, text_column(row, 1)?));
        }
    }
    removed.sort_unstable();
    Ok(removed)
}

/// The name that reads `entries`' row ids: `rowid`, else `_rowid_` or `oid` when another
/// program gave the table a column of that name (a column shadows the alias, a generated or
/// hidden one too, which `pragma_table_info` leaves out); `None` for a table without row ids
/// (`WITHOUT ROWID`, or all three names taken).
pub(crate) fn row_id_name(conn: &Connection) -> rusqlite::Result<Option<&'static str>> {
    let taken = conn
        .prepare_cached("SELECT lower(name) FROM pragma_table_xinfo('entries')")?
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let Some(name) = ["rowid", "_rowid_", "oid"]
        .into_iter()
        .find(|alias| !taken.iter().any(|column| column == alias))
    else {
        return Ok(None);
    };
    // A `WITHOUT ROWID` table has no row ids under any name. Asked of the schema rather than
    // read from a failed `SELECT rowid`, which would take any failure (a busy schema read, say)
    // for "no row ids".
    let without_rowid: Option<bool> = conn
        .prepare_cached("SELECT wr FROM pragma_table_list('entries') WHERE schema = 'main'")?
        .query_row([], |r| r.get(0))
        .optional()?;
    Ok((without_rowid != Some(true)).then_some(name))
}

// ---------------------------------------------------------------------------------------------
// Metadata

/// Runs a read of several statements in one read transaction, so it sees one snapshot (in
/// autocommit each statement would see its own, and a write committed in between could show
/// half). Inside a transaction already, `f` simply runs in it.
pub(crate) fn snapshot<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    if !conn.is_autocommit() {
        return f(conn);
    }
    // Cached statements: parsed again on every call, `BEGIN` and `COMMIT` were a visible part
    // of a short read's time (h183 measured `count` 31% slower with the snapshot).
    conn.prepare_cached("BEGIN")?.execute([])?;
    // Whatever happens, the read transaction ends here: left open on a pooled connection, it
    // would pin an old snapshot for every later read.
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(conn)));
    match result {
        Ok(Ok(value)) => match conn.prepare_cached("COMMIT").and_then(|mut s| s.execute([])) {
            Ok(_) => Ok(value),
            Err(e) => {
                rollback(conn);
                Err(e)
            }
        },
        Ok(Err(e)) => {
            rollback(conn);
            Err(e)
        }
        Err(panic) => {
            rollback(conn);
            std::panic::resume_unwind(panic)
        }
    }
}

/// Starts the read transaction's snapshot, which a deferred `BEGIN` leaves to the first
/// statement that reads the database: its time is then no later than anything read after.
pub(crate) fn take_snapshot(conn: &Connection) -> rusqlite::Result<()> {
    conn.prepare_cached("PRAGMA schema_version")?
        .query_row([], |_| Ok(()))
}

pub(crate) fn meta_get(conn: &Connection, name: &str) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached("SELECT value FROM store_meta WHERE name = ?1")?
        .query_row([name], |r| r.get(0))
        .optional()
}

pub(crate) fn meta_set(conn: &Connection, name: &str, value: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO store_meta (name, value) VALUES (?1, ?2) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
    )?
    .execute(params![name, value])?;
    Ok(())
}

/// Changes when another connection commits (`PRAGMA data_version`).
pub(crate) fn data_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.prepare_cached("PRAGMA data_version")?
        .query_row([], |r| r.get(0))
}

pub(crate) fn begin_immediate(conn: &Connection) -> rusqlite::Result<()> {
    conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
    Ok(())
}

pub(crate) fn commit(conn: &Connection) -> rusqlite::Result<()> {
    conn.prepare_cached("COMMIT")?.execute([])?;
    Ok(())
}

/// Rolls back if a transaction is open; harmless otherwise.
pub(crate) fn rollback(conn: &Connection) {
    if !conn.is_autocommit()
        && let Err(e) = conn.execute_batch("ROLLBACK")
    {
        log::warn!("store: rollback failed: {e}");
    }
}

// ---------------------------------------------------------------------------------------------
// Change feed. `seq` is assigned by the version allocator (see `versions.rs`), which never
// reuses a number, so the table needs no AUTOINCREMENT bookkeeping.

/// Name of the `store_meta` row holding the highest pruned `seq`.
pub(crate) const PRUNED_THROUGH: &str = "changes_pruned_through";

#[allow(clippy::too_many_arguments)]
pub(crate) fn insert_change(
    conn: &Connection,
    seq: u64,
    at_ms: i64,
    kind: &str,
    group: &str,
    key: Option<&str>,
    value: Option<&str>,
    expires_at: Option<i64>,
) -> rusqlite::Result<()> {
    conn.prepare_cached(INSERT_CHANGE_SQL)?
        .execute(params![seq as i64, at_ms, kind, group, key, value, expires_at])?;
    Ok(())
}

/// The change-row insert, shared with the benchmark's raw-rusqlite baseline.
///
/// # Examples
/// ```
/// use store::{Clock, EventKind, Store, SystemClock};
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("state.db");
/// drop(Store::open(&path)?); // creates the schema
/// let conn = rusqlite::Connection::open(&path)?;
/// let row = rusqlite::params![1, SystemClock.now_ms(), "set", "g", "k", "v", None::<i64>];
/// conn.execute(store::kv::INSERT_CHANGE_SQL, row)?;
/// let change = &Store::open(&path)?.changes_since(0, 10)?.changes[0];
/// assert_eq!((change.kind, change.value.as_deref()), (EventKind::Set, Some("v")));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub const INSERT_CHANGE_SQL: &str = "INSERT INTO changes (seq, at_ms, kind, group_name, entry_key, entry_value, expires_at) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

/// A change row: (seq, at_ms, kind, group, key, value, expires_at).
pub(crate) type ChangeRow = (
    u64,
    i64,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<i64>,
);

/// One row of `SELECT seq, at_ms, kind, group_name, entry_key, entry_value, expires_at`.
fn change_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ChangeRow> {
    Ok((
        version_column(r, 0)?,
        r.get(1)?,
        text_column(r, 2)?,
        text_column(r, 3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
    ))
}

pub(crate) fn changes_after(conn: &Connection, seq: u64, limit: i64) -> rusqlite::Result<Vec<ChangeRow>> {
    conn.prepare_cached(
        "SELECT seq, at_ms, kind, group_name, entry_key, entry_value, expires_at FROM changes \
         WHERE seq > ?1 ORDER BY seq LIMIT ?2",
    )?
    .query_map(params![clamp(seq), limit], change_row)?
    .collect()
}

/// The change rows with `first <= seq <= last`, in order.
pub(crate) fn changes_between(conn: &Connection, first: u64, last: u64) -> rusqlite::Result<Vec<ChangeRow>> {
    conn.prepare_cached(
        "SELECT seq, at_ms, kind, group_name, entry_key, entry_value, expires_at FROM changes \
         WHERE seq BETWEEN ?1 AND ?2 ORDER BY seq",
    )?
    .query_map(params![clamp(first), clamp(last)], change_row)?
    .collect()
}

pub(crate) fn last_change_seq(conn: &Connection) -> rusqlite::Result<u64> {
    let max: Option<i64> = conn
        .prepare_cached("SELECT max(seq) FROM changes")?
        .query_row([], |r| r.get(0))?;
    let pruned = meta_get(conn, PRUNED_THROUGH)?;
    Ok(max.unwrap_or(0).max(pruned.unwrap_or(0)).max(0) as u64)
}

/// Deletes rows older than `before_ms` and beyond the newest `keep_rows`; records the highest
/// deleted seq in `store_meta` (readers that had not got that far see a gap). Returns the number
/// of rows deleted. The age rule scans the table rather than trusting seq order, so rows written
/// under a clock that stepped back are pruned too; it runs on the purge thread, not per write.
pub(crate) fn prune_changes(
    conn: &Connection,
    before_ms: Option<i64>,
    keep_rows: Option<u64>,
) -> rusqlite::Result<u64> {
    let mut deleted = 0u64;
    let mut highest: Option<i64> = None;
    let mut drain = |stmt: &mut rusqlite::CachedStatement<'_>, param: i64| -> rusqlite::Result<()> {
        let mut rows = stmt.query([param])?;
        while let Some(row) = rows.next()? {
            let seq: i64 = row.get(0)?;
            deleted += 1;
            highest = highest.max(Some(seq));
        }
        Ok(())
    };
    if let Some(before) = before_ms {
        drain(
            &mut conn.prepare_cached("DELETE FROM changes WHERE at_ms < ?1 RETURNING seq")?,
            before,
        )?;
    }
    if let Some(keep) = keep_rows {
        let boundary: Option<i64> = conn
            .prepare_cached("SELECT seq FROM changes ORDER BY seq DESC LIMIT 1 OFFSET ?1")?
            .query_row([clamp(keep)], |r| r.get(0))
            .optional()?;
        if let Some(boundary) = boundary {
            drain(
                &mut conn.prepare_cached("DELETE FROM changes WHERE seq <= ?1 RETURNING seq")?,
                boundary,
            )?;
        }
    }
    if let Some(highest) = highest
        && meta_get(conn, PRUNED_THROUGH)?.unwrap_or(0) < highest
    {
        meta_set(conn, PRUNED_THROUGH, highest)?;
    }
    Ok(deleted)
}

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// One live entry with everything the analytics view exposes.
#[cfg(feature = "analytics")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KvRow {
    pub group: String,
    pub key: String,
    pub value: String,
    pub expires_at: Option<i64>,
    pub version: u64,
}

#[cfg(feature = "analytics")]
fn live_entry(r: &rusqlite::Row<'_>) -> rusqlite::Result<KvRow> {
    Ok(KvRow {
        group: text_column(r, 0)?,
        key: text_column(r, 1)?,
        value: text_column(r, 2)?,
        expires_at: expiry_column(r, 3)?,
        version: version_column(r, 4)?,
    })
}

/// Every live entry, in (group, key) order, read in one statement (one snapshot).
#[cfg(feature = "analytics")]
pub(crate) fn live_entries(conn: &Connection, now: i64) -> rusqlite::Result<Vec<KvRow>> {
    conn.prepare_cached(
        "SELECT group_name, entry_key, entry_value, expires_at, version FROM entries \
         WHERE expires_at IS NULL OR expires_at > ?1 ORDER BY group_name, entry_key",
    )?
    .query_map([now], live_entry)?
    .collect()
}

/// Live entries in row id order after the row id `after` (exclusive; `None` from the start),
/// at most `limit` of them, and the last row's id; `id` is the table's name for its row ids
/// ([`row_id_name`]). Each chunk seeks on the row id, so a scan costs the same whatever key
/// index or collation another program gave the table; run inside one read transaction,
/// successive chunks read one snapshot.
#[cfg(feature = "analytics")]
pub(crate) fn live_entries_after(
    conn: &Connection,
    id: &str,
    after: Option<i64>,
    now: i64,
    limit: i64,
) -> rusqlite::Result<(Vec<KvRow>, Option<i64>)> {
    const COLUMNS: &str = "SELECT group_name, entry_key, entry_value, expires_at, version";
    let mut stmt = match after {
        None => conn.prepare_cached(&format!(
            "{COLUMNS}, {id} FROM entries WHERE (expires_at IS NULL OR expires_at > ?1) AND ?3 IS NULL \
             ORDER BY {id} LIMIT ?2"
        ))?,
        Some(_) => conn.prepare_cached(&format!(
            "{COLUMNS}, {id} FROM entries WHERE {id} > ?3 AND (expires_at IS NULL OR expires_at > ?1) \
             ORDER BY {id} LIMIT ?2"
        ))?,
    };
    let mut rows = stmt.query(params![now, limit, after])?;
    let (mut entries, mut last) = (Vec::new(), None);
    while let Some(r) = rows.next()? {
        entries.push(live_entry(r)?);
        last = Some(r.get(5)?);
    }
    Ok((entries, last))
}
