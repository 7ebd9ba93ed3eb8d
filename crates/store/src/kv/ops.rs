//! The KV operations, written once for every handle that implements [`Access`].

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::clock::ttl_ms;
use crate::error::{Error, Result, SqliteContext};
use crate::events::EventKind;
use crate::kv::access::{Access, Mutation, Statements, WriteCtx, sealed::Sealed};
use crate::kv::iter::{CHUNK_ROWS, EntryIter, GroupIter};
use crate::kv::{Entry, Kv, Versioned, render, sqlite};
use crate::scope::Scope;
use crate::validate::{self, clamp_i64};

/// Rows a single purge transaction removes at most, so a huge backlog never holds the write lock
/// for long.
pub(crate) const PURGE_BATCH: i64 = 10_000;

impl<A: Access> Kv for A {
    fn get(&self, group: &str, key: &str) -> Result<String> {
        live(self, self.ops().get, group, key).map(|v| v.value)
    }

    fn get_with_version(&self, group: &str, key: &str) -> Result<Versioned> {
        live(self, self.ops().get_with_version, group, key)
    }

    fn get_json<T: DeserializeOwned>(&self, group: &str, key: &str) -> Result<T> {
        let op = self.ops().get_json;
        let v = live(self, op, group, key)?;
        serde_json::from_str(&v.value).map_err(|e| Error::json(op, e))
    }

    fn exists(&self, group: &str, key: &str) -> Result<bool> {
        let op = self.ops().exists;
        validate::group_key(op, group, key)?;
        let group = self.scope().full(group);
        let now = self.now();
        self.read(op, |c| sqlite::exists(c, &group, key, now))
    }

    fn group_exists(&self, group: &str) -> Result<bool> {
        let op = self.ops().group_exists;
        validate::name(op, "group", group)?;
        let group = self.scope().full(group);
        let now = self.now();
        self.read(op, |c| sqlite::group_exists(c, &group, now))
    }

    fn set(&self, group: &str, key: &str, value: &str) -> Result<u64> {
        put(self, self.ops().set, group, key, value, None)
    }

    fn set_with_ttl(&self, group: &str, key: &str, value: &str, ttl: Duration) -> Result<u64> {
        put(self, self.ops().set_with_ttl, group, key, value, Some(ttl))
    }

    fn set_json<T: Serialize + ?Sized>(&self, group: &str, key: &str, value: &T) -> Result<u64> {
        let op = self.ops().set_json;
        // Through `Value`, whose maps are sorted: stored JSON is compact with sorted keys,
        // whatever map type the caller used.
        let text = serde_json::to_value(value)
            .map(|v| v.to_string())
            .map_err(|e| Error::json(op, e))?;
        put(self, op, group, key, &text, None)
    }

    fn set_if_version(&self, group: &str, key: &str, value: &str, expected: Option<u64>) -> Result<u64> {
        put_if_version(self, group, key, value, expected, None)
    }

    fn increment(&self, group: &str, key: &str, delta: i64) -> Result<i64> {
        let op = self.ops().increment;
        validate::group_key(op, group, key)?;
        let scope = self.scope();
        let group = scope.group(op, group)?;
        let group = group.as_ref();
        let now = self.now();
        quota_checked_write(self, op, now, Statements::Many, |w, counted_expired| {
            let current = sqlite::get(w.conn, group, key)
                .ctx(op, "read current value")?
                .filter(|r| r.is_live(w.now));
            let (base, expires_at) = match &current {
                Some(row) => (parse_integer(op, &row.value)?, row.expires_at),
                None => (0, None),
            };
            let result = base.checked_add(delta).ok_or_else(|| {
                Error::invalid(
                    op,
                    "value",
                    format!("{base} + {delta} overflows a 64-bit integer; the value is unchanged, pass a smaller delta"),
                )
            })?;
            let text = result.to_string();
            // A configured limit under 20 bytes can be outgrown by the sum alone.
            validate::value(op, &text, self.max_value_bytes())?;
            scope.check_write(w, group, key, &text, counted_expired)?;
            let seq = w.next_seq()?;
            if current.is_some() {
                sqlite::update_value(w.conn, group, key, &text, seq).ctx(op, "update value")?;
            } else {
                sqlite::upsert(w.conn, group, key, &text, expires_at, seq).ctx(op, "insert value")?;
            }
            w.record(
                Mutation {
                    kind: EventKind::Set,
                    group,
                    key: Some(key),
                    value: Some(&text),
                    expires_at,
                },
                seq,
            )?;
            Ok(result)
        })
    }

    fn delete(&self, group: &str, key: &str) -> Result<bool> {
        let op = self.ops().delete;
        validate::group_key(op, group, key)?;
        let group = self.scope().full(group);
        let now = self.now();
        self.write(op, now, Statements::Many, |w| {
            match sqlite::delete(w.conn, &group, key).ctx(op, "delete entry")? {
                None => Ok(false),
                Some(expires_at) => {
                    let was_live = sqlite::is_live(expires_at, w.now);
                    let kind = if was_live {
                        EventKind::Delete
                    } else {
                        EventKind::Expired
                    };
                    w.record_removal(kind, &group, Some(key))?;
                    Ok(was_live)
                }
            }
        })
    }

    fn delete_group(&self, group: &str) -> Result<u64> {
        let op = self.ops().delete_group;
        validate::name(op, "group", group)?;
        let group = self.scope().full(group);
        let now = self.now();
        self.write(op, now, Statements::Many, |w| {
            remove_group(w, &group.as_ref(), &group)
        })
    }

    fn delete_prefix(&self, prefix: &str) -> Result<u64> {
        let op = self.ops().delete_prefix;
        validate::prefix(op, prefix)?;
        let prefix = self.scope().full(prefix);
        let now = self.now();
        self.write(op, now, Statements::Many, |w| {
            let groups = sqlite::all_groups(w.conn, &prefix).ctx(op, "list groups")?;
            let mut removed = 0;
            for (stored, name) in groups {
                removed += remove_group(w, &stored, &name)?;
            }
            Ok(removed)
        })
    }

    fn count(&self, group: &str) -> Result<u64> {
        let op = self.ops().count;
        validate::name(op, "group", group)?;
        let group = self.scope().full(group);
        self.read_at_snapshot(op, |c, now| sqlite::count(c, &group, now))
    }

    fn count_all(&self, prefix: &str) -> Result<u64> {
        let op = self.ops().count_all;
        validate::prefix(op, prefix)?;
        let prefix = self.scope().full(prefix);
        self.read_at_snapshot(op, |c, now| sqlite::count_prefix(c, &prefix, now))
    }

    fn get_all(&self, group: &str) -> Result<BTreeMap<String, String>> {
        let op = self.ops().get_all;
        validate::name(op, "group", group)?;
        let group = self.scope().full(group);
        self.read_at_snapshot(op, |c, now| sqlite::get_all(c, &group, now))
    }

    fn get_page(&self, group: &str, offset: u64, limit: u64) -> Result<Vec<Entry>> {
        let op = self.ops().get_page;
        validate::name(op, "group", group)?;
        if limit == 0 {
            // Nothing to read, but a closed store still says so.
            return self.read(op, |_| Ok(Vec::new()));
        }
        let group = self.scope().full(group);
        self.read_at_snapshot(op, |c, now| {
            sqlite::page(c, &group, now, clamp_i64(offset), clamp_i64(limit))
        })
    }

    fn iter(&self, group: &str) -> EntryIter<'_> {
        let op = self.ops().iter;
        if let Err(e) = validate::name(op, "group", group) {
            return EntryIter::failed(e);
        }
        let group = self.scope().full(group).into_owned();
        EntryIter::new(Box::new(move |after: Option<&sqlite::Cursor>| {
            self.read_at_snapshot(op, |c, now| sqlite::page_after(c, &group, after, now, CHUNK_ROWS))
        }))
    }

    fn groups(&self, prefix: &str) -> Result<Vec<String>> {
        let op = self.ops().groups;
        validate::prefix(op, prefix)?;
        let scope = self.scope();
        let prefix = scope.full(prefix);
        let start = past_the_bare_prefix(scope);
        let (groups, _) = self.read_at_snapshot(op, |c, now| {
            sqlite::groups_after(c, &prefix, start.as_ref(), now, i64::MAX)
        })?;
        Ok(localize_groups(scope, groups))
    }

    fn groups_iter(&self, prefix: &str) -> GroupIter<'_> {
        let op = self.ops().groups_iter;
        if let Err(e) = validate::prefix(op, prefix) {
            return GroupIter::failed(e);
        }
        let scope = self.scope();
        let prefix = scope.full(prefix).into_owned();
        let start = past_the_bare_prefix(scope);
        GroupIter::new(Box::new(move |after: Option<&sqlite::Cursor>| {
            // The cursor is the last stored (full) group name, as stored.
            let after = after.or(start.as_ref());
            let (groups, cursor) = self.read_at_snapshot(op, |c, now| {
                sqlite::groups_after(c, &prefix, after, now, CHUNK_ROWS)
            })?;
            Ok((localize_groups(scope, groups), cursor))
        }))
    }

    fn render(&self, template: &str, group: &str) -> Result<String> {
        let op = self.ops().render;
        validate::name(op, "group", group)?;
        let full = self.scope().full(group);
        let entries = self.read_at_snapshot(op, |c, now| sqlite::get_all(c, &full, now))?;
        render::render(op, template, group, &entries)
    }

    fn get_split(&self, group: &str, key: &str, sep: &str) -> Result<Vec<String>> {
        live(self, self.ops().get_split, group, key).map(|v| render::split(&v.value, sep))
    }

    fn get_fields(&self, group: &str, key: &str) -> Result<Vec<String>> {
        live(self, self.ops().get_fields, group, key).map(|v| render::fields(&v.value))
    }

    fn purge_expired(&self) -> Result<u64> {
        let op = self.ops().purge_expired;
        let now = self.now();
        purge_scope(self, op, Statements::Many, self.scope().prefix(), now)
    }
}

/// Where a namespace's group listing starts: past the group named exactly `ns:`, whose local
/// name would be empty, a name every scoped call refuses (only a raw write makes such a group;
/// its rows still count in the namespace's usage and go with `delete_prefix("")`).
fn past_the_bare_prefix(scope: &Scope) -> Option<sqlite::Cursor> {
    (!scope.prefix().is_empty()).then(|| sqlite::Cursor::Text(scope.prefix().as_bytes().to_vec()))
}

fn localize_groups(scope: &Scope, groups: Vec<String>) -> Vec<String> {
    if scope.prefix().is_empty() {
        return groups;
    }
    groups.into_iter().map(|g| scope.local(&g).to_string()).collect()
}

/// The live entry, deleting it (and recording `Expired`) if it has expired.
fn live<A: Access>(a: &A, op: &'static str, group: &str, key: &str) -> Result<Versioned> {
    validate::group_key(op, group, key)?;
    let full = a.scope().full(group);
    let now = a.now();
    match a.read(op, |c| sqlite::get(c, &full, key))? {
        Some(row) if row.is_live(now) => Ok(Versioned {
            value: row.value,
            version: row.version,
            expires_at: row.expires_at,
        }),
        Some(_) => {
            // Best effort: a read never waits for a writer (SPEC §3.3). If one is busy, the
            // purge thread, or a later read, removes the entry and reports it `Expired`. A
            // delete that fails otherwise (read-only file, full disk) does not turn the read
            // into an error either: the answer, not found, is right all the same, and the
            // failed delete rolled back on its own. Inside a transaction it did not: the row
            // may be gone without its change row, so the error goes to the caller, whose `?`
            // rolls the transaction back.
            let deleted = a.write(op, now, Statements::IfFree, |w| {
                if sqlite::delete_if_expired(w.conn, &full, key, w.now).ctx(op, "delete expired entry")? {
                    w.record_removal(EventKind::Expired, &full, Some(key))?;
                }
                Ok(())
            });
            match deleted {
                Err(e) if a.in_transaction() => Err(e),
                Err(e) if !e.is_busy() => {
                    log::warn!("store: an expired entry stays until the purge removes it: {e}");
                    Err(Error::not_found(op, group, key))
                }
                _ => Err(Error::not_found(op, group, key)),
            }
        }
        None => Err(Error::not_found(op, group, key)),
    }
}

/// [`Kv::set_if_version`], and with a `ttl` the compare-and-swap that `store/set` runs when
/// given both `if_version` and `ttl_ms` (`store kv set --if-version/--if-absent --ttl`): the
/// entry written expires after `ttl`, as with `set_with_ttl`.
pub(crate) fn put_if_version<A: Access>(
    a: &A,
    group: &str,
    key: &str,
    value: &str,
    expected: Option<u64>,
    ttl: Option<Duration>,
) -> Result<u64> {
    let op = a.ops().set_if_version;
    validate::group_key(op, group, key)?;
    validate::value(op, value, a.max_value_bytes())?;
    let scope = a.scope();
    let local = group;
    let group = scope.group(op, group)?;
    let now = a.now();
    quota_checked_write(a, op, now, Statements::Many, |w, counted_expired| {
        let actual = sqlite::get(w.conn, &group, key)
            .ctx(op, "read current version")?
            .filter(|r| r.is_live(w.now))
            .map(|r| r.version);
        if actual != expected {
            return Err(Error::Conflict {
                op,
                group: local.to_string(),
                key: key.to_string(),
                expected,
                actual,
            });
        }
        scope.check_write(w, &group, key, value, counted_expired)?;
        let expires_at = ttl.map(|ttl| w.now.saturating_add(ttl_ms(ttl)));
        write_value(w, &group, key, value, expires_at)
    })
}

/// Validates and performs a plain or TTL write.
fn put<A: Access>(
    a: &A,
    op: &'static str,
    group: &str,
    key: &str,
    value: &str,
    ttl: Option<Duration>,
) -> Result<u64> {
    validate::group_key(op, group, key)?;
    validate::value(op, value, a.max_value_bytes())?;
    let scope = a.scope();
    let group = scope.group(op, group)?;
    let now = a.now();
    // One statement writes: the exact quota check only reads, and a write the one-statement
    // check refuses has written nothing.
    quota_checked_write(a, op, now, Statements::One, |w, counted_expired| {
        let expires_at = ttl.map(|ttl| w.now.saturating_add(ttl_ms(ttl)));
        let Some((namespace, room)) = scope.recorded_room(key, value) else {
            scope.check_write(w, &group, key, value, counted_expired)?;
            return write_value(w, &group, key, value, expires_at);
        };
        // Most writes fit what the counters record with room to spare: they are checked and
        // written by one statement. The others (near a limit, or beside expired rows the
        // counters still hold) get the exact check, with the same version.
        let seq = w.next_seq()?;
        let written = (|| {
            let written =
                sqlite::usage::upsert_if_room(w.conn, namespace, &group, key, value, expires_at, seq, room)
                    .ctx(op, "write entry")?;
            if !written {
                scope.check_write(w, &group, key, value, counted_expired)?;
                sqlite::upsert(w.conn, &group, key, value, expires_at, seq).ctx(op, "write entry")?;
            }
            Ok(())
        })();
        if let Err(e) = written {
            // A refused or failed write inside a transaction that goes on must not use up a
            // version.
            w.give_back_seq(seq);
            return Err(e);
        }
        record_set(w, &group, key, value, expires_at, seq)
    })
}

/// A write whose `body` checks the scope's quota. The counters include expired rows until
/// they are purged, so near its limit a namespace holding such rows has each check count them
/// (see `Scope::check_write`): O(expired rows) per write until the purge thread comes by. An
/// autocommit write whose check counted many (`PURGE_AFTER_COUNTING` or more) therefore
/// purges up to [`PURGE_BATCH`] of them after its commit (whether the write passed or was
/// refused), recording `Expired` as the purge thread does, so the next checks are cheap again.
///
/// Best effort, like lazy expiry: the purge never waits (it is skipped if another writer holds
/// the lock, or, on a memory store or a file store without readers, if any call holds the
/// writer mutex, reads included) and a failure is logged, never returned; the write's own result is
/// returned either way. Inside a transaction nothing is purged: a refused write there leaves
/// nothing behind, and the transaction's own writes stay all that it commits.
fn quota_checked_write<A: Access, T>(
    a: &A,
    op: &'static str,
    now: i64,
    statements: Statements,
    body: impl FnOnce(&mut WriteCtx<'_>, &mut bool) -> Result<T>,
) -> Result<T> {
    let mut counted_expired = false;
    let result = a.write(op, now, statements, |w| body(w, &mut counted_expired));
    if counted_expired && !a.in_transaction() {
        let purged = purge_batch(a, op, now, Statements::NeverWait, a.scope().prefix());
        if let Err(e) = purged
            && !e.is_busy()
            && !e.is_closed()
        {
            log::warn!("store: expired entries stay until the purge thread removes them: {e}");
        }
    }
    result
}

/// Writes a value with a fresh version and records the `Set`.
pub(crate) fn write_value(
    w: &mut WriteCtx<'_>,
    group: &str,
    key: &str,
    value: &str,
    expires_at: Option<i64>,
) -> Result<u64> {
    let seq = w.next_seq()?;
    if let Err(e) = sqlite::upsert(w.conn, group, key, value, expires_at, seq) {
        // Refused by a trigger or a constraint of another program's, say: a transaction that
        // goes on must not have used up a version.
        w.give_back_seq(seq);
        return Err(e).ctx(w.op, "write entry");
    }
    record_set(w, group, key, value, expires_at, seq)
}

/// Records the `Set` of a value written with version `seq`; returns `seq`.
fn record_set(
    w: &mut WriteCtx<'_>,
    group: &str,
    key: &str,
    value: &str,
    expires_at: Option<i64>,
    seq: u64,
) -> Result<u64> {
    w.record(
        Mutation {
            kind: EventKind::Set,
            group,
            key: Some(key),
            value: Some(value),
            expires_at,
        },
        seq,
    )?;
    Ok(seq)
}

/// Deletes a whole group inside a write (`stored`: its name as stored, `name`: as text): an
/// `Expired` for each expired row, by key (SPEC §14: every removal of an expired row emits
/// `Expired`), then one `DeleteGroup` if the group had any row. In that order a reader
/// replaying the feed removes each key, then the rest of the group; a watcher whose buffer
/// fills on the `Expired` events loses the `DeleteGroup`, and counts it as dropped, like any
/// other overflow. Returns the live rows removed.
fn remove_group(w: &mut WriteCtx<'_>, stored: &dyn rusqlite::ToSql, name: &str) -> Result<u64> {
    let (op, conn, now) = (w.op, w.conn, w.now);
    let expired = sqlite::each_expired_key(
        conn,
        stored,
        now,
        |key| w.record_removal(EventKind::Expired, name, Some(key)),
        |e| Error::sqlite(op, "read expired entries of group", e),
    )?;
    let all = sqlite::delete_group(conn, stored).ctx(op, "delete group")?;
    if all > 0 {
        w.record_removal(EventKind::DeleteGroup, name, None)?;
    }
    Ok(all.saturating_sub(expired))
}

/// Removes every expired row of the scope whose group prefix is `scope_prefix` (`""`: the
/// root, every group; `"<namespace>:"`: one namespace), in batches of [`PURGE_BATCH`] per
/// transaction.
pub(crate) fn purge_scope<A: Sealed>(
    a: &A,
    op: &'static str,
    statements: Statements,
    scope_prefix: &str,
    now: i64,
) -> Result<u64> {
    let mut total: u64 = 0;
    loop {
        let removed = purge_batch(a, op, now, statements, scope_prefix)?;
        total += removed;
        if (removed as i64) < PURGE_BATCH {
            return Ok(total);
        }
    }
}

/// One write removing up to [`PURGE_BATCH`] expired rows of the scope whose group prefix is
/// `scope_prefix` (see [`purge_scope`]), recording `Expired` for each; returns how many went.
fn purge_batch<A: Sealed>(
    a: &A,
    op: &'static str,
    now: i64,
    statements: Statements,
    scope_prefix: &str,
) -> Result<u64> {
    a.write(op, now, statements, |w| {
        let rows = sqlite::purge_expired(w.conn, scope_prefix, w.now, PURGE_BATCH)
            .ctx(op, "purge expired entries")?;
        for (group, key) in &rows {
            w.record_removal(EventKind::Expired, group, Some(key))?;
        }
        Ok(rows.len() as u64)
    })
}

fn parse_integer(op: &'static str, text: &str) -> Result<i64> {
    let well_formed = {
        let digits = text.strip_prefix('-').unwrap_or(text);
        !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
    };
    if !well_formed {
        return Err(Error::invalid(
            op,
            "value",
            format!(
                "stored value {:?} is not a decimal integer; increment only integer values",
                truncate(text)
            ),
        ));
    }
    text.parse::<i64>().map_err(|_| {
        Error::invalid(
            op,
            "value",
            format!(
                "stored value {:?} does not fit in a 64-bit integer",
                truncate(text)
            ),
        )
    })
}

fn truncate(text: &str) -> &str {
    match text.char_indices().nth(64) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}
