//! SPEC §6 with §3.2: usage counters stay right whoever writes `entries`. A file written without
//! counters (another program, an older version, a legacy `kv` table) is counted on open; a file
//! whose counter trigger was dropped and whose counters were tampered with is rebuilt on reopen;
//! foreign programs' raw `INSERT`/`UPDATE`/`DELETE` statements are counted, including updates that
//! move rows between namespaces. "Right" means equal to the live rows in `entries`, and quotas
//! enforced exactly on that usage.

use std::time::Duration;

use rusqlite::{Connection, params};
use store::{Clock, Kv, QuotaLimit, ScopedStore};

use crate::common::{START_MS, file_store, raw_has_object};
use crate::support::{NS_A, NS_B, assert_usage_exact, expect_quota, prepared_file, quota, scoped, usage};

const ENTRIES_ONLY: &str = "CREATE TABLE entries (group_name TEXT NOT NULL, entry_key TEXT NOT NULL, \
     entry_value TEXT NOT NULL, expires_at INTEGER, PRIMARY KEY (group_name, entry_key));";

fn insert(conn: &Connection, group: &str, key: &str, value: &str, expires_at: Option<i64>) {
    conn.execute(
        "INSERT INTO entries (group_name, entry_key, entry_value, expires_at) VALUES (?1, ?2, ?3, ?4)",
        params![group, key, value, expires_at],
    )
    .expect("raw insert");
}

fn exec(conn: &Connection, sql: &str) -> usize {
    conn.execute(sql, []).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Asserts a `max_keys` quota of `usage + 1` admits exactly one more key, proving the quota sees
/// the same usage.
#[track_caller]
fn assert_key_quota_exact(ns: &ScopedStore, store: &store::Store) {
    let keys = ns.usage().unwrap().keys;
    let limited = scoped(store, ns.namespace(), quota(keys + 1, 0, 0));
    let probe = format!("probe-{keys}");
    limited.set("quota-probe", &probe, "v").unwrap();
    expect_quota(
        limited.set("quota-probe", "over", "v"),
        ns.namespace(),
        QuotaLimit::Keys,
        keys + 1,
        keys + 2,
    );
    assert!(limited.delete("quota-probe", &probe).unwrap());
}

#[test]
fn counters_are_built_for_a_file_written_without_them() {
    let f = prepared_file(|conn| {
        conn.execute_batch(ENTRIES_ONLY).unwrap();
        insert(conn, "tenant-a:config", "colour", "blue", None);
        insert(conn, "tenant-a:config", "size", "xl", None);
        insert(conn, "tenant-a:default", "k", "é", None);
        insert(conn, "tenant-a:sessions", "s1", "tok", Some(START_MS - 1));
        insert(conn, "tenant-a:sessions", "s2", "tok", Some(START_MS + 10_000));
        insert(conn, "tenant-a:old", "x", "y", Some(START_MS)); // expires exactly now
        insert(conn, "tenant-b:config", "colour", "red", None);
        for g in [
            "tenant-a",
            "tenant_a:x",
            ":x",
            "config",
            "Tenant-A:config",
            "tenant-ab:x",
        ] {
            insert(conn, g, "k", "v", None);
        }
    });
    let a = f.store.scoped(NS_A).unwrap();
    let b = f.store.scoped(NS_B).unwrap();
    assert_eq!(a.usage().unwrap(), usage(4, 3, 10 + 6 + 3 + 5));
    assert_eq!(b.usage().unwrap(), usage(1, 1, 9));
    assert_usage_exact(&a, &f.path(), START_MS, "open");

    // Quotas are enforced exactly on those figures.
    let limited = scoped(&f.store, NS_A, quota(5, 4, 0));
    limited.set("new", "k", "v").unwrap();
    expect_quota(limited.set("config", "k2", "v"), NS_A, QuotaLimit::Keys, 5, 6);
    let groups = scoped(&f.store, NS_A, quota(0, 4, 0));
    expect_quota(groups.set("other", "k", "v"), NS_A, QuotaLimit::Groups, 4, 5);
    let bytes = scoped(&f.store, NS_A, quota(0, 0, 30));
    bytes.set("config", "size", "xl!").unwrap(); // 24 + 2 (the new key) + 1 = 27
    expect_quota(
        bytes.set("config", "size", "xl!!!!!"),
        NS_A,
        QuotaLimit::Bytes,
        30,
        31,
    );

    // The live TTL row expires later and is subtracted then.
    f.clock.advance(Duration::from_secs(10));
    assert_eq!(a.usage().unwrap(), usage(4, 3, 10 + 7 + 3 + 2));
    assert_usage_exact(&a, &f.path(), f.clock.now_ms(), "expiry after open");
    assert_key_quota_exact(&a, &f.store);
}

/// A foreign `entries` table may allow NULL keys and values: such a namespaced row counts as a
/// key whose NULL part is empty, both when the counters are built at open and when another
/// program inserts one later (the counters' NOT NULL once failed the open, and that insert).
#[test]
fn namespaced_rows_with_a_null_key_or_value_are_counted_as_empty_parts() {
    let f = prepared_file(|conn| {
        conn.execute_batch(
            "CREATE TABLE entries (group_name TEXT, entry_key TEXT, entry_value TEXT,
               expires_at INTEGER, PRIMARY KEY (group_name, entry_key));
             INSERT INTO entries VALUES ('tenant-a:g', 'n', NULL, NULL), ('tenant-a:g', NULL, 'xyz', NULL),
               ('tenant-a:g', 'k', 'v', NULL);",
        )
        .unwrap();
    });
    let a = f.store.scoped(NS_A).unwrap();
    assert_eq!(a.usage().unwrap(), usage(3, 1, 1 + 3 + 2));

    let foreign = rusqlite::Connection::open(f.path()).unwrap();
    exec(
        &foreign,
        "INSERT INTO entries (group_name, entry_key, entry_value) VALUES ('tenant-a:h', 'm', NULL)",
    );
    exec(
        &foreign,
        "UPDATE entries SET entry_value = NULL WHERE entry_key = 'k'",
    );
    assert_eq!(a.usage().unwrap(), usage(4, 2, 1 + 3 + 1 + 1));
    exec(&foreign, "DELETE FROM entries WHERE entry_key IS NULL");
    assert_eq!(a.usage().unwrap(), usage(3, 2, 1 + 1 + 1));
    let limited = scoped(&f.store, NS_A, quota(4, 0, 0));
    limited.set("g", "new", "v").unwrap();
    expect_quota(limited.set("g", "newer", "v"), NS_A, QuotaLimit::Keys, 4, 5);
}

/// Rows with NULL keys (a foreign table may allow several per group) count one group per
/// group, and their updates and re-keyings count their bytes: the triggers compare keys with
/// `IS`, and a group's first row is found by counting its rows.
#[test]
fn null_keys_count_their_group_once_and_their_updates_count_bytes() {
    let f = prepared_file(|conn| {
        conn.execute_batch(
            "CREATE TABLE entries (group_name TEXT, entry_key TEXT, entry_value TEXT,
               expires_at INTEGER, PRIMARY KEY (group_name, entry_key));",
        )
        .unwrap();
    });
    let a = f.store.scoped(NS_A).unwrap();
    let foreign = rusqlite::Connection::open(f.path()).unwrap();
    for sql in [
        "INSERT INTO entries (group_name, entry_key, entry_value) VALUES ('tenant-a:g', NULL, 'x')",
        "INSERT INTO entries (group_name, entry_key, entry_value) VALUES ('tenant-a:g', NULL, 'y')",
        "INSERT INTO entries (group_name, entry_key, entry_value) VALUES ('tenant-a:g', 'k', 'v')",
    ] {
        exec(&foreign, sql);
    }
    assert_eq!(a.usage().unwrap(), usage(3, 1, 1 + 1 + 2));
    exec(
        &foreign,
        "UPDATE entries SET entry_value = 'longer' WHERE entry_value = 'x'",
    );
    assert_eq!(a.usage().unwrap(), usage(3, 1, 6 + 1 + 2));
    exec(
        &foreign,
        "UPDATE entries SET entry_key = 'named' WHERE entry_value = 'y'",
    );
    assert_eq!(a.usage().unwrap(), usage(3, 1, 6 + 6 + 2));
    exec(
        &foreign,
        "UPDATE entries SET entry_key = NULL WHERE entry_key = 'k'",
    );
    assert_eq!(a.usage().unwrap(), usage(3, 1, 6 + 6 + 1));
    exec(&foreign, "DELETE FROM entries");
    assert_eq!(a.usage().unwrap(), usage(0, 0, 0));
    let one_group = scoped(&f.store, NS_A, quota(0, 1, 0));
    one_group.set("real", "k", "v").unwrap();
}

#[test]
fn legacy_kv_rows_migrated_on_open_are_counted() {
    let f = prepared_file(|conn| {
        conn.execute_batch(
            "CREATE TABLE kv (grp TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (grp, key));
             INSERT INTO kv VALUES ('tenant-a:g', 'k1', 'v1'), ('tenant-a:h', 'k2', 'v22'), ('other', 'k', 'v');",
        )
        .unwrap();
    });
    let a = f.store.scoped(NS_A).unwrap();
    assert_eq!(a.usage().unwrap(), usage(2, 2, 4 + 5));
    assert_key_quota_exact(&a, &f.store);
    f.store.close().unwrap();

    // A legacy table appearing in a file that already has counters is counted when it migrates.
    crate::common::raw(&f.path())
        .execute_batch(
            "CREATE TABLE kv (grp TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (grp, key));
             INSERT INTO kv VALUES ('tenant-a:g', 'k1', 'ignored'), ('tenant-a:g', 'k3', 'v3');",
        )
        .unwrap();
    let reopened = f.reopen();
    let a = reopened.scoped(NS_A).unwrap();
    assert_eq!(a.get("g", "k1").unwrap(), "v1", "existing entries win");
    assert_eq!(a.usage().unwrap(), usage(3, 2, 4 + 5 + 4));
    assert_usage_exact(&a, &f.path(), START_MS, "second migration");
}

#[test]
fn counters_are_rebuilt_on_reopen_after_the_insert_trigger_was_dropped_and_they_were_tampered_with() {
    let f = file_store();
    let a = f.store.scoped(NS_A).unwrap();
    a.set("config", "colour", "blue").unwrap();
    a.set_with_ttl("sessions", "s", "tok", Duration::from_secs(5))
        .unwrap();
    f.store.set("tenant-b:config", "k", "v").unwrap();
    drop(a);
    f.store.close().unwrap();

    {
        let conn = f.raw();
        exec(&conn, "DROP TRIGGER scope_usage_insert");
        // Uncounted inserts, and nonsense totals.
        insert(&conn, "tenant-a:config", "raw", "abc", None);
        insert(&conn, "tenant-a:foreign", "k", "v", None);
        insert(&conn, "tenant-c:g", "k", "v", None);
        exec(
            &conn,
            "UPDATE scope_usage SET keys = keys + 100, bytes = 7, groups = 0, ttl_keys = 0",
        );
    }

    let reopened = f.reopen();
    assert!(
        raw_has_object(&f.path(), "scope_usage_insert"),
        "the trigger is back"
    );
    let a = reopened.scoped(NS_A).unwrap();
    let b = reopened.scoped(NS_B).unwrap();
    let c = reopened.scoped("tenant-c").unwrap();
    assert_eq!(a.usage().unwrap(), usage(4, 3, 10 + 4 + 6 + 2));
    assert_eq!(b.usage().unwrap(), usage(1, 1, 2));
    assert_eq!(c.usage().unwrap(), usage(1, 1, 2));
    f.clock.advance(Duration::from_secs(5));
    assert_eq!(a.usage().unwrap(), usage(3, 2, 18), "TTL rows are known again");
    for ns in [&a, &b, &c] {
        assert_usage_exact(ns, &f.path(), f.clock.now_ms(), "rebuild");
        assert_key_quota_exact(ns, &reopened);
    }
    // Inserts are counted again.
    insert(&f.raw(), "tenant-a:config", "later", "x", None);
    assert_usage_exact(&a, &f.path(), f.clock.now_ms(), "insert after rebuild");
}

#[test]
fn foreign_insert_update_and_delete_keep_the_counters_right() {
    let f = file_store();
    let a = f.store.scoped(NS_A).unwrap();
    a.set("config", "colour", "blue").unwrap();
    let conn = f.raw();
    let now = || f.clock.now_ms();
    let check = |what: &str| assert_usage_exact(&a, &f.path(), now(), what);

    insert(&conn, "tenant-a:config", "foreign", "abc", None);
    check("INSERT");
    insert(&conn, "tenant-a:new", "k", "v", Some(START_MS + 1000));
    check("INSERT with a TTL");
    exec(
        &conn,
        "UPDATE entries SET entry_value = 'a much longer value' WHERE entry_key = 'foreign'",
    );
    check("UPDATE growing a value");
    assert_eq!(a.usage().unwrap(), usage(3, 2, 10 + 26 + 2));
    exec(
        &conn,
        "UPDATE entries SET entry_value = '' WHERE entry_key = 'foreign'",
    );
    check("UPDATE shrinking a value");
    exec(
        &conn,
        &format!(
            "UPDATE entries SET expires_at = {} WHERE entry_key = 'colour'",
            START_MS - 1
        ),
    );
    check("UPDATE setting a past expiry");
    assert_eq!(a.usage().unwrap(), usage(2, 2, 7 + 2));
    exec(
        &conn,
        "UPDATE entries SET expires_at = NULL WHERE entry_key = 'colour'",
    );
    check("UPDATE clearing the expiry");
    exec(
        &conn,
        "UPDATE entries SET expires_at = NULL, entry_value = 'vvv' WHERE group_name = 'tenant-a:new'",
    );
    f.clock.advance(Duration::from_secs(1));
    check("UPDATE clearing a TTL, then time passing");
    assert_eq!(a.usage().unwrap(), usage(3, 2, 10 + 7 + 4));
    assert_key_quota_exact(&a, &f.store);

    exec(&conn, "DELETE FROM entries WHERE entry_key = 'foreign'");
    check("DELETE one row");
    exec(&conn, "DELETE FROM entries WHERE group_name = 'tenant-a:new'");
    check("DELETE a group");
    assert_eq!(a.usage().unwrap(), usage(1, 1, 10));
    // A foreign upsert (INSERT … ON CONFLICT DO UPDATE).
    exec(
        &conn,
        "INSERT INTO entries (group_name, entry_key, entry_value) VALUES ('tenant-a:config', 'colour', 'green') \
         ON CONFLICT (group_name, entry_key) DO UPDATE SET entry_value = excluded.entry_value",
    );
    check("foreign upsert");
    assert_eq!(a.usage().unwrap(), usage(1, 1, 11));
    exec(&conn, "DELETE FROM entries");
    check("DELETE everything");
    assert_eq!(a.usage().unwrap(), usage(0, 0, 0));
}

#[test]
fn foreign_updates_moving_rows_between_namespaces_keep_both_counters_right() {
    let f = file_store();
    let a = f.store.scoped(NS_A).unwrap();
    let b = f.store.scoped(NS_B).unwrap();
    a.set("config", "k1", "v1").unwrap();
    a.set("config", "k2", "v2").unwrap();
    a.set("solo", "k", "v").unwrap();
    a.set_with_ttl("ttl", "t", "v", Duration::from_secs(5)).unwrap();
    b.set("config", "k9", "v").unwrap();
    let conn = f.raw();
    let now = || f.clock.now_ms();
    let check = |what: &str| {
        assert_usage_exact(&a, &f.path(), now(), what);
        assert_usage_exact(&b, &f.path(), now(), what);
    };

    exec(
        &conn,
        "UPDATE entries SET group_name = 'tenant-b:config' WHERE group_name = 'tenant-a:solo'",
    );
    check("moving a group's only row into an existing group of another namespace");
    assert_eq!((a.usage().unwrap().groups, b.usage().unwrap().keys), (2, 2));

    exec(
        &conn,
        "UPDATE entries SET group_name = 'tenant-b:new' WHERE group_name = 'tenant-a:config' AND entry_key = 'k1'",
    );
    check("moving one row of a group into a new group of another namespace");
    assert_eq!(b.usage().unwrap(), usage(3, 2, 3 + 2 + 4));

    exec(
        &conn,
        "UPDATE entries SET group_name = 'plain' WHERE group_name = 'tenant-a:config'",
    );
    check("moving a row out of every namespace");
    exec(
        &conn,
        "UPDATE entries SET group_name = 'tenant-a:back' WHERE group_name = 'plain'",
    );
    check("moving a row into a namespace");
    exec(
        &conn,
        "UPDATE entries SET group_name = 'tenant-a:moved', entry_value = 'a longer value' \
         WHERE group_name = 'tenant-b:new'",
    );
    check("moving a row and changing its value at once");
    exec(
        &conn,
        "UPDATE entries SET group_name = 'tenant-b:ttl' WHERE group_name = 'tenant-a:ttl'",
    );
    check("moving a TTL row");
    f.clock.advance(Duration::from_secs(5));
    check("the moved TTL row expiring");
    exec(
        &conn,
        "UPDATE entries SET group_name = 'tenant_x:odd' WHERE group_name = 'tenant-a:back'",
    );
    check("moving a row into an invalid namespace");
    assert_eq!(a.usage().unwrap(), usage(1, 1, 16));
    assert_eq!(b.usage().unwrap(), usage(2, 1, 3 + 2));
    assert_key_quota_exact(&a, &f.store);
    assert_key_quota_exact(&b, &f.store);
}

#[test]
fn foreign_update_renaming_the_only_key_of_a_group_keeps_the_group_count() {
    let f = file_store();
    let a = f.store.scoped(NS_A).unwrap();
    a.set("solo", "k", "v").unwrap();
    a.set("pair", "k1", "v").unwrap();
    a.set("pair", "k2", "v").unwrap();
    let conn = f.raw();
    exec(
        &conn,
        "UPDATE entries SET entry_key = 'renamed' WHERE group_name = 'tenant-a:solo'",
    );
    assert_usage_exact(&a, &f.path(), START_MS, "renaming a group's only key");
    exec(
        &conn,
        "UPDATE entries SET entry_key = 'k3' WHERE group_name = 'tenant-a:pair' AND entry_key = 'k1'",
    );
    assert_usage_exact(&a, &f.path(), START_MS, "renaming one of two keys");
    assert_eq!(a.usage().unwrap(), usage(3, 2, 8 + 3 + 3));
    let limited = scoped(&f.store, NS_A, quota(0, 3, 0));
    limited.set("third", "k", "v").unwrap();
    expect_quota(limited.set("fourth", "k", "v"), NS_A, QuotaLimit::Groups, 3, 4);
}

#[test]
#[ignore = "known limit: SQLite fires no delete trigger for rows INSERT OR REPLACE removes (see kv/sqlite/usage.rs)"]
fn foreign_insert_or_replace_keeps_the_counters_right() {
    let f = file_store();
    let a = f.store.scoped(NS_A).unwrap();
    a.set("config", "colour", "blue").unwrap();
    let conn = f.raw();
    exec(
        &conn,
        "INSERT OR REPLACE INTO entries (group_name, entry_key, entry_value, expires_at) \
         VALUES ('tenant-a:config', 'colour', 'red', NULL)",
    );
    assert_usage_exact(&a, &f.path(), START_MS, "INSERT OR REPLACE of an existing key");
    exec(
        &conn,
        "REPLACE INTO entries (group_name, entry_key, entry_value, expires_at) \
         VALUES ('tenant-a:config', 'colour', 'green', NULL)",
    );
    assert_usage_exact(&a, &f.path(), START_MS, "REPLACE of an existing key");
    assert_eq!(a.usage().unwrap(), usage(1, 1, 11));
    assert_key_quota_exact(&a, &f.store);
}

/// The repair docs/guarantees.md gives for counters another program's `INSERT OR REPLACE` left too
/// high: delete the counters' stamp while no store has the file open, and the next open
/// recounts.
#[test]
fn deleting_the_counters_stamp_recounts_after_a_foreign_insert_or_replace() {
    let f = file_store();
    let a = f.store.scoped(NS_A).unwrap();
    a.set("config", "colour", "blue").unwrap();
    exec(
        &f.raw(),
        "INSERT OR REPLACE INTO entries (group_name, entry_key, entry_value, expires_at) \
         VALUES ('tenant-a:config', 'colour', 'red', NULL)",
    );
    assert_ne!(
        a.usage().unwrap(),
        usage(1, 1, 9),
        "the known limit this repair is for: the replaced row is still counted"
    );
    drop(a);
    f.store.close().unwrap();
    exec(
        &f.raw(),
        "DELETE FROM store_meta WHERE name = 'scope_usage_triggers'",
    );
    let reopened = f.reopen();
    let a = reopened.scoped(NS_A).unwrap();
    assert_eq!(a.usage().unwrap(), usage(1, 1, 9));
    assert_usage_exact(&a, &f.path(), START_MS, "after the recount");
    assert_key_quota_exact(&a, &reopened);
}

#[test]
fn counters_are_rebuilt_on_reopen_after_any_counter_trigger_was_dropped() {
    for trigger in [
        "scope_usage_delete",
        "scope_usage_update",
        "scope_usage_rekey",
        "scope_usage_move",
    ] {
        let f = file_store();
        let a = f.store.scoped(NS_A).unwrap();
        a.set("config", "colour", "blue").unwrap();
        a.set("config", "size", "xl").unwrap();
        drop(a);
        f.store.close().unwrap();
        {
            let conn = f.raw();
            exec(&conn, &format!("DROP TRIGGER {trigger}"));
            exec(&conn, "DELETE FROM entries WHERE entry_key = 'size'");
            exec(
                &conn,
                "UPDATE entries SET entry_value = 'much longer' WHERE entry_key = 'colour'",
            );
            exec(
                &conn,
                "UPDATE entries SET group_name = 'tenant-b:x' WHERE entry_key = 'colour'",
            );
        }
        let reopened = f.reopen();
        assert!(
            raw_has_object(&f.path(), trigger),
            "{trigger} is recreated on open"
        );
        for ns in [NS_A, NS_B] {
            assert_usage_exact(&reopened.scoped(ns).unwrap(), &f.path(), START_MS, trigger);
        }
    }
}

/// Counters another program set to extremes are garbage, but reading them must not panic:
/// the live figures subtract the namespace's expired rows from them (saturating), and a
/// quota check near them answers with a result, not an overflow.
#[test]
fn counters_tampered_to_extremes_read_and_check_without_panicking() {
    for (column, value) in [
        ("keys", i64::MIN),
        ("bytes", i64::MIN),
        ("groups", i64::MIN),
        ("keys", i64::MAX),
    ] {
        let f = file_store();
        let ns = f.store.scoped(NS_A).unwrap();
        ns.set_with_ttl("g", "k", "v", Duration::from_millis(1)).unwrap();
        f.clock.advance(Duration::from_secs(1)); // expired, not purged
        let raw = Connection::open(f.path()).unwrap();
        raw.execute(&format!("UPDATE scope_usage SET {column} = ?1"), [value])
            .unwrap();
        drop(raw);
        let usage = ns.usage().unwrap();
        // i64::MAX keys less the one expired row; anything below zero reads as zero.
        let keys = if value == i64::MAX {
            (i64::MAX - 1) as u64
        } else {
            0
        };
        assert_eq!(
            (usage.keys, usage.groups, usage.bytes),
            (keys, 0, 0),
            "{column} = {value}"
        );
        let limited = scoped(&f.store, NS_A, quota(1, 1, 1_000));
        let written = limited.set("g", "k2", "v");
        assert!(
            written.is_ok() || written.unwrap_err().is_quota_exceeded(),
            "{column} = {value}"
        );
    }
}
