//! The public surface exactly as SPEC.md §0–6, §8 and §11 write it: the crate-root re-exports and
//! the `store::kv` / `store::analytics` paths, the fields and types of the configs, error
//! variants, events, change rows and row structs, and every `Kv` method's signature on each of its
//! implementors. Most checks here are compile-level: a renamed or retyped item breaks this module's
//! build. The behaviour checks are only those no other module makes: `EventKind`'s strings, error
//! sources, the `op` that starts every message on every handle, and the Service KV actions' result
//! shapes and argument errors.
//!
//! SPEC §7 (media: `store::medium`, `Location::Medium`, `StoreConfig::medium`), §9 (workspaces) and
//! §10 (journal, cold archive, compact: `JournalEntry`, `JournalQuery`, `CompactOptions`,
//! `ArchiveFormat`, the `StoreConfig` fields `state_dir`, `archive_dir`, `journal_bucket` and
//! `scan_orphans`, their Service actions and home subdirectories) are not built, so nothing here
//! names them.

use std::any::TypeId;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use store::analytics::{
    Analytics, CHECKPOINT_SCORES, CheckpointScore, CsvOptions, Inventory, PROBE_RESULTS, ProbeResult, Row,
    Rows, SCORING_RESULTS, ScoringResult, SplitManifest, Value,
};
use store::{
    CallbackGuard, Change, ChangeBatch, ChangeFeedConfig, Clock, Durability, Entry, EntryIter, Error,
    ErrorKind, Event, EventKind, GroupIter, Kv, Location, ManualClock, Quota, QuotaLimit, Result,
    ScopedConfig, ScopedStore, ScopedTransaction, Service, ServiceConfig, Store, StoreConfig, Subscription,
    SystemClock, Transaction, UnixMillis, Usage, Versioned, WatchOptions,
};

use crate::common::drain;

// §0 handles -----------------------------------------------------------------------------------

fn send_sync<T: Send + Sync>() {}
fn clone<T: Clone>() {}

/// `<T as AmbiguousIfSend<_>>::check()` compiles only when `T` is not `Send`: for a `Send` type
/// both impls apply and the call is ambiguous.
trait AmbiguousIfSend<A> {
    fn check() {}
}
impl<T: ?Sized> AmbiguousIfSend<()> for T {}
struct IsSend;
impl<T: ?Sized + Send> AmbiguousIfSend<IsSend> for T {}

#[test]
fn store_scoped_store_analytics_and_service_are_send_sync_and_transactions_are_not_send() {
    send_sync::<Store>();
    send_sync::<ScopedStore>();
    send_sync::<Analytics>();
    send_sync::<Service>();
    clone::<Store>();
    clone::<ScopedStore>();
    <Transaction<'static> as AmbiguousIfSend<_>>::check();
    <ScopedTransaction<'static> as AmbiguousIfSend<_>>::check();
}

/// §3 is "KV store (`store::kv`)": its types are the crate root's, under the module path too.
#[test]
fn kv_module_path_names_the_crate_root_types() {
    fn same<A: 'static, B: 'static>() -> bool {
        TypeId::of::<A>() == TypeId::of::<B>()
    }
    assert!(same::<store::kv::Store, Store>());
    assert!(same::<store::kv::StoreConfig, StoreConfig>());
    assert!(same::<store::kv::Location, Location>());
    assert!(same::<store::kv::Durability, Durability>());
    assert!(same::<store::kv::ChangeFeedConfig, ChangeFeedConfig>());
    assert!(same::<store::kv::Change, Change>());
    assert!(same::<store::kv::ChangeBatch, ChangeBatch>());
    assert!(same::<store::kv::Entry, Entry>());
    assert!(same::<store::kv::Versioned, Versioned>());
    assert!(same::<store::kv::Transaction<'static>, Transaction<'static>>());
    assert!(same::<store::kv::EntryIter<'static>, EntryIter<'static>>());
    assert!(same::<store::kv::GroupIter<'static>, GroupIter<'static>>());
    fn count_through_module_trait<K: store::kv::Kv>(kv: &K) -> Result<u64> {
        kv.count_all("")
    }
    let store = Store::in_memory().unwrap();
    store.set("g", "k", "v").unwrap();
    assert_eq!(count_through_module_trait(&store).unwrap(), 1);
}

// §0 time --------------------------------------------------------------------------------------

#[test]
fn manual_clock_sets_and_advances_and_saturates_at_i64_max() {
    let clock = ManualClock::new(1_000);
    assert_eq!(clock.now_ms(), 1_000);
    clock.set(5_000);
    assert_eq!(clock.now_ms(), 5_000);
    clock.advance(Duration::from_millis(250));
    assert_eq!(clock.now_ms(), 5_250);
    clock.advance(Duration::MAX);
    assert_eq!(clock.now_ms(), i64::MAX);
    let system: Arc<dyn Clock> = Arc::new(SystemClock);
    let now: UnixMillis = system.now_ms();
    assert!(now > 1_600_000_000_000, "{now}");
}

// §1 errors ------------------------------------------------------------------------------------

#[test]
fn error_variants_carry_the_spec_fields_and_kind_names() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("e.db")).unwrap();

    match store.get("g", "missing").unwrap_err() {
        Error::NotFound { op, group, key } => {
            let _: (&'static str, String, String) = (op, group, key);
        }
        other => panic!("{other:?}"),
    }
    let v = store.set("g", "k", "v").unwrap();
    let e = store.set_if_version("g", "k", "w", None).unwrap_err();
    assert_eq!(e.kind().as_str(), "conflict");
    match e {
        Error::Conflict {
            group,
            key,
            expected,
            actual,
            ..
        } => {
            let (_, _, expected, actual): (String, String, Option<u64>, Option<u64>) =
                (group, key, expected, actual);
            assert_eq!((expected, actual), (None, Some(v)));
        }
        other => panic!("{other:?}"),
    }
    let e = store.get("", "k").unwrap_err();
    assert_eq!(e.kind().as_str(), "invalid_input");
    match e {
        Error::InvalidInput { field, reason, .. } => {
            let _: (&'static str, String) = (field, reason);
        }
        other => panic!("{other:?}"),
    }
    store.set("g", "notjson", "{").unwrap();
    let e = store.get_json::<serde_json::Value>("g", "notjson").unwrap_err();
    assert!(matches!(e, Error::Json { .. }), "{e:?}");
    assert_eq!(e.kind().as_str(), "json");
    let e = store.render("{{ pool", "g").unwrap_err();
    assert!(matches!(e, Error::Template { .. }), "{e:?}");
    assert_eq!(e.kind().as_str(), "template");
    let memory = Store::in_memory().unwrap();
    let e = memory.changes_since(0, 10).unwrap_err();
    assert_eq!(e.kind().as_str(), "unsupported");
    match e {
        Error::Unsupported { what, .. } => assert!(!what.is_empty()),
        other => panic!("{other:?}"),
    }
    store.close().unwrap();
    let e = store.get("g", "k").unwrap_err();
    assert_eq!(e.kind().as_str(), "closed");
    match e {
        Error::Closed { what, .. } => assert!(!what.is_empty()),
        other => panic!("{other:?}"),
    }
    let e = Store::open(dir.path().join("no/such/dir/x.db")).unwrap_err();
    assert_eq!(e.kind().as_str(), "io");
    match e {
        Error::Io { path, source, .. } => {
            let _: (Option<PathBuf>, std::io::Error) = (path, source);
        }
        other => panic!("expected Io, got {other:?}"),
    }
    // Variants no KV call produces are constructible with the spec's fields.
    let e = Error::Medium {
        op: "Store::close",
        path: "app.db".into(),
        reason: "refused".into(),
    };
    assert_eq!(e.kind().as_str(), "medium");
    let e = Error::Parse {
        op: "x",
        source_name: "a.jsonl".into(),
        line: Some(2u64),
        reason: "bad".into(),
    };
    assert_eq!(e.kind().as_str(), "parse");
    let e = Error::Missing {
        op: "x",
        kind: "table",
        name: "t".into(),
    };
    assert_eq!(e.kind().as_str(), "missing");
    let e = Error::AlreadyExists {
        op: "x",
        kind: "workspace",
        name: "w".into(),
    };
    assert_eq!(e.kind().as_str(), "already_exists");
    let e = Error::QuotaExceeded {
        op: "x",
        namespace: "n".into(),
        limit: QuotaLimit::Keys,
        max: 1u64,
        requested: 2u64,
    };
    assert_eq!(e.kind().as_str(), "quota_exceeded");
    assert_eq!(ErrorKind::DuckDb.as_str(), "duckdb");
    assert_eq!(ErrorKind::Sqlite.as_str(), "sqlite");
}

/// §1: "`source()` is the driver error", for a driver failure and for a decode failure.
#[test]
fn source_of_a_sqlite_error_is_the_rusqlite_error_and_of_a_json_error_the_decode_error() {
    let dir = tempfile::tempdir().unwrap();
    let bogus = dir.path().join("bogus.db");
    std::fs::write(&bogus, vec![b'x'; 8192]).unwrap();
    let e = Store::open(&bogus).unwrap_err();
    let source = std::error::Error::source(&e).expect("a driver error");
    assert!(source.downcast_ref::<rusqlite::Error>().is_some(), "{source:?}");
    match &e {
        Error::Sqlite { op, context, source } => {
            assert_eq!(*op, "Store::open");
            assert!(!context.is_empty());
            let _: &rusqlite::Error = source;
        }
        other => panic!("{other:?}"),
    }
    let store = Store::in_memory().unwrap();
    store.set("g", "k", "{").unwrap();
    let e = store.get_json::<u32>("g", "k").unwrap_err();
    let source = std::error::Error::source(&e).expect("a decode error");
    assert!(source.downcast_ref::<serde_json::Error>().is_some(), "{source:?}");
}

/// §1: `Display` is `{op}: …`, and `op` is `Type::method` of the call that failed, on every
/// handle (scoped ones included), before and after close.
#[test]
fn every_handles_errors_start_with_the_failing_calls_op() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("o.db")).unwrap();
    let scoped = store.scoped("ns").unwrap();
    let mut seen: Vec<(Error, &str)> = Vec::new();
    seen.push((store.get("g", "k").unwrap_err(), "Store::get"));
    seen.push((scoped.get("g", "k").unwrap_err(), "ScopedStore::get"));
    store
        .transaction(|tx| {
            seen.push((tx.get("g", "k").unwrap_err(), "Transaction::get"));
            let st = tx.scoped("ns")?;
            seen.push((st.get("g", "k").unwrap_err(), "ScopedTransaction::get"));
            Ok(())
        })
        .unwrap();
    seen.push((
        store.set_with_ttl("", "k", "v", Duration::ZERO).unwrap_err(),
        "Store::set_with_ttl",
    ));
    store.set("g", "n", &i64::MAX.to_string()).unwrap();
    seen.push((store.increment("g", "n", 1).unwrap_err(), "Store::increment"));
    seen.push((
        store.get_json::<u32>("g", "missing").unwrap_err(),
        "Store::get_json",
    ));
    seen.push((store.count_all("a\0").unwrap_err(), "Store::count_all"));
    seen.push((store.changes_since(0, 0).unwrap_err(), "Store::changes_since"));
    seen.push((store.scoped("a:b").unwrap_err(), "Store::scoped"));
    let db = Analytics::in_memory().unwrap();
    seen.push((
        db.query("SELECT * FROM nope", &[]).unwrap_err(),
        "Analytics::query",
    ));
    seen.push((
        db.import_csv("t", dir.path().join("missing.csv"), &CsvOptions::default())
            .unwrap_err(),
        "Analytics::import_csv",
    ));
    let jsonl = dir.path().join("bad.jsonl");
    std::fs::write(&jsonl, "{\"a\":1}\n{oops\n").unwrap();
    seen.push((
        db.import_jsonl("j", &jsonl).unwrap_err(),
        "Analytics::import_jsonl",
    ));
    let service = Service::open(ServiceConfig::new(dir.path().join("svc"))).unwrap();
    seen.push((
        service.call("store/get", json!({"group": "g"})).unwrap_err(),
        "Service::call",
    ));
    store.close().unwrap();
    seen.push((store.get("g", "k").unwrap_err(), "Store::get"));
    seen.push((store.transaction(|_| Ok(())).unwrap_err(), "Store::transaction"));
    seen.push((scoped.set("g", "k", "v").unwrap_err(), "ScopedStore::set"));
    let mut wrong = Vec::new();
    for (e, op) in &seen {
        let message = e.to_string();
        if e.op() != *op || !message.starts_with(&format!("{op}: ")) {
            wrong.push(format!("want {op}, got {}: {message}", e.op()));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

// §3 KV ----------------------------------------------------------------------------------------

/// Every field §3.1 lists (those that are built) is public with the spec's type, so a struct
/// literal can set them; §5.3's `ChangeFeedConfig` defaults.
#[test]
fn store_config_and_change_feed_config_have_the_spec_fields_and_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        location: Location::File(dir.path().join("lit.db")),
        durability: Durability::Full,
        busy_timeout: Duration::from_secs(1),
        readers: 2usize,
        watch_capacity: 8usize,
        purge_interval: Duration::ZERO,
        max_value_bytes: 4096usize,
        changes: ChangeFeedConfig {
            enabled: true,
            max_age: None,
            max_rows: Some(5u64),
            record_values: true,
        },
        clock: Arc::new(SystemClock) as Arc<dyn Clock>,
        ..StoreConfig::memory()
    };
    let store = Store::open_with(config).unwrap();
    store.set("g", "k", "v").unwrap();
    assert_eq!(store.changes_since(0, 10).unwrap().changes.len(), 1);
    assert_eq!(StoreConfig::memory().location, Location::Memory);
    assert!(matches!(
        StoreConfig::file(dir.path().join("a.db")).location,
        Location::File(_)
    ));
    let defaults = ChangeFeedConfig::default();
    assert!(defaults.enabled && defaults.record_values);
    assert_eq!(defaults.max_age, Some(Duration::from_secs(7 * 24 * 3600)));
    assert_eq!(defaults.max_rows, Some(1_000_000));
    assert!(!StoreConfig::memory().changes.enabled);
}

#[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
struct Cfg {
    a: u32,
}

/// Every §3.5 method, with the spec's argument and return types, generic over `Kv`; the view must
/// start empty and is left empty.
fn every_kv_method<K: Kv>(kv: &K) -> Result<()> {
    let v1: u64 = kv.set("alpha-g", "alpha", "1")?;
    let s: String = kv.get("alpha-g", "alpha")?;
    assert_eq!(s, "1");
    let vv: Versioned = kv.get_with_version("alpha-g", "alpha")?;
    assert_eq!((vv.value.as_str(), vv.version, vv.expires_at), ("1", v1, None));
    let _: u64 = kv.set_json("alpha-g", "json", &Cfg { a: 7 })?;
    let c: Cfg = kv.get_json::<Cfg>("alpha-g", "json")?;
    assert_eq!(c, Cfg { a: 7 });
    let present: bool = kv.exists("alpha-g", "alpha")?;
    let group_present: bool = kv.group_exists("alpha-g")?;
    assert!(present && group_present);
    let _: u64 = kv.set_with_ttl("alpha-g", "ttl", "t", Duration::from_secs(3600))?;
    let v2: u64 = kv.set_if_version("alpha-g", "alpha", "2", Some(v1))?;
    assert!(v2 > v1);
    let _: u64 = kv.set_if_version("alpha-g", "new", "n", None)?;
    let n: i64 = kv.increment("ctr", "n", 41)?;
    assert_eq!(n, 41);
    let gone: bool = kv.delete("alpha-g", "new")?;
    assert!(gone);
    let count: u64 = kv.count("alpha-g")?;
    assert_eq!(count, 3);
    let count_all: u64 = kv.count_all("alpha")?;
    assert_eq!(count_all, 3);
    let all: BTreeMap<String, String> = kv.get_all("alpha-g")?;
    assert_eq!(all.len(), 3);
    let page: Vec<Entry> = kv.get_page("alpha-g", 1, 2)?;
    let page: Vec<(&str, &str)> = page.iter().map(|e| (e.key.as_str(), e.value.as_str())).collect();
    assert_eq!(page, [("json", r#"{"a":7}"#), ("ttl", "t")]);
    let it: EntryIter<'_> = kv.iter("alpha-g");
    let keys: Vec<String> = it.map(|r| r.map(|e| e.key)).collect::<Result<_>>()?;
    assert_eq!(keys, ["alpha", "json", "ttl"]);
    let groups: Vec<String> = kv.groups("")?;
    assert_eq!(groups, ["alpha-g", "ctr"]);
    let gi: GroupIter<'_> = kv.groups_iter("a");
    assert_eq!(gi.collect::<Result<Vec<String>>>()?, ["alpha-g"]);
    kv.set("tpl", "pool", "eu")?;
    let text: String = kv.render(r#"{"pool":"{{ pool }}"}"#, "tpl")?;
    assert_eq!(text, r#"{"pool":"eu"}"#);
    kv.set("sp", "csv", "alpha,beta,gamma")?;
    let parts: Vec<String> = kv.get_split("sp", "csv", ",")?;
    assert_eq!(parts, ["alpha", "beta", "gamma"]);
    kv.set("sp", "f", " a\t b  ")?;
    let fields: Vec<String> = kv.get_fields("sp", "f")?;
    assert_eq!(fields, ["a", "b"]);
    let purged: u64 = kv.purge_expired()?;
    assert_eq!(purged, 0);
    let in_group: u64 = kv.delete_group("sp")?;
    assert_eq!(in_group, 2);
    let rest: u64 = kv.delete_prefix("")?;
    assert_eq!(rest, 5);
    Ok(())
}

/// §3.5: `Kv` is implemented by `Store`, `ScopedStore`, `Transaction<'_>` and
/// `ScopedTransaction<'_>` (from `ScopedStore::transaction` and from `Transaction::scoped`).
#[test]
fn every_kv_method_has_the_spec_signature_on_every_implementor() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("kv.db")).unwrap();
    every_kv_method(&store).unwrap();
    let scoped = store.scoped("tenant-a").unwrap();
    every_kv_method(&scoped).unwrap();
    store
        .transaction(|tx: &Transaction<'_>| every_kv_method(tx))
        .unwrap();
    scoped
        .transaction(|tx: &ScopedTransaction<'_>| every_kv_method(tx))
        .unwrap();
    store
        .transaction(|tx| {
            let st: ScopedTransaction<'_> = tx.scoped("tenant-b")?;
            every_kv_method(&st)
        })
        .unwrap();
}

/// §6: `ScopedTransaction` has the `ScopedStore` extras too (`Transaction::scoped_with`).
#[test]
fn scoped_transaction_has_namespace_quota_usage_and_default_group_key_methods() {
    let store = Store::in_memory().unwrap();
    store
        .transaction(|tx| {
            let st: ScopedTransaction<'_> = tx.scoped_with(ScopedConfig {
                namespace: "tenant-b".into(),
                quota: Quota {
                    max_keys: 4,
                    max_groups: 2,
                    max_bytes: 0,
                },
            })?;
            assert_eq!(st.namespace(), "tenant-b");
            let quota: Quota = st.quota();
            assert_eq!(quota.max_keys, 4);
            let _: u64 = st.set_key("k", "v")?;
            assert_eq!(st.get_key("k")?, "v");
            assert!(st.exists_key("k")?);
            let usage: Usage = st.usage()?;
            assert_eq!((usage.keys, usage.groups, usage.bytes), (1, 1, 2));
            assert!(st.delete_key("k")?);
            Ok(())
        })
        .unwrap();
}

// §5 events and change feed --------------------------------------------------------------------

#[test]
fn event_kinds_print_and_parse_as_set_delete_delete_group_and_expired() {
    for (kind, name) in [
        (EventKind::Set, "set"),
        (EventKind::Delete, "delete"),
        (EventKind::DeleteGroup, "delete_group"),
        (EventKind::Expired, "expired"),
    ] {
        assert_eq!(kind.as_str(), name);
        assert_eq!(kind.to_string(), name);
        assert_eq!(name.parse::<EventKind>().unwrap(), kind);
    }
    for bad in ["nope", "Set", "delete-group", ""] {
        assert!(bad.parse::<EventKind>().is_err(), "{bad:?}");
    }
}

/// §5.1 and §5.3 types: `Event`, `Subscription`, `CallbackGuard`, `WatchOptions`, `Change` and
/// `ChangeBatch` have the spec's fields and methods.
#[test]
fn events_subscriptions_guards_and_change_rows_have_the_spec_fields_and_methods() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("f.db")).unwrap();
    let sub: Subscription = store.watch("*").unwrap();
    let one: Subscription = store.watch_with("g", WatchOptions { capacity: 16usize }).unwrap();
    let default_capacity = store.watch_with("g", WatchOptions::default()).unwrap();
    let guard: CallbackGuard = store.on_change(|_: &Event| {}).unwrap();
    let version = store.set("g", "k", "v").unwrap();
    store.delete_group("g").unwrap();

    let e: Event = sub.recv_timeout(Duration::from_secs(1)).expect("the set");
    let (kind, group, key, value, event_version, seq, at_ms): (
        EventKind,
        String,
        Option<String>,
        Option<String>,
        Option<u64>,
        u64,
        UnixMillis,
    ) = (e.kind, e.group, e.key, e.value, e.version, e.seq, e.at_ms);
    assert_eq!(
        (kind, group.as_str(), key.as_deref(), value.as_deref()),
        (EventKind::Set, "g", Some("k"), Some("v"))
    );
    assert_eq!((event_version, seq), (Some(version), version));
    assert!(at_ms > 0);
    let e: Event = sub.try_recv().expect("the delete_group");
    assert_eq!((e.kind, e.key, e.version), (EventKind::DeleteGroup, None, None));
    let dropped: u64 = one.dropped();
    assert_eq!(dropped, 0);
    assert_eq!(
        one.iter().take(2).map(|e| e.kind).collect::<Vec<_>>(),
        [EventKind::Set, EventKind::DeleteGroup]
    );
    assert_eq!(drain(&default_capacity).len(), 2);
    one.unsubscribe();
    guard.unregister();
    store.on_change(|_| {}).unwrap().detach();
    let listeners: usize = store.listener_count();
    assert_eq!(listeners, 3);

    let batch: ChangeBatch = store.changes_since(0, 100).unwrap();
    let (changes, next_seq, gap): (Vec<Change>, u64, bool) = (batch.changes, batch.next_seq, batch.gap);
    assert_eq!(
        (changes.len(), next_seq, gap),
        (2, store.last_seq().unwrap(), false)
    );
    let c = &changes[0];
    let _: (
        u64,
        UnixMillis,
        EventKind,
        &String,
        &Option<String>,
        &Option<String>,
        &Option<UnixMillis>,
    ) = (c.seq, c.at_ms, c.kind, &c.group, &c.key, &c.value, &c.expires_at);
    let pruned: u64 = store.prune_changes().unwrap();
    assert_eq!(pruned, 0);
}

// §8 analytics ---------------------------------------------------------------------------------

/// Every §8 method with the spec's argument and return types, the row structs and table
/// constants, `Value`'s variants, and the fields of `Rows`, `Row`, `Inventory`, `SplitManifest`
/// and `CsvOptions`.
#[test]
fn every_analytics_method_has_the_spec_signature() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.duckdb");
    let db: Analytics = Analytics::open(&path).unwrap();
    let _: u64 = db.exec("CREATE TABLE t(k VARCHAR, n BIGINT)", &[]).unwrap();
    db.exec_batch("INSERT INTO t VALUES ('a', 1); INSERT INTO t VALUES ('b', 2);")
        .unwrap();
    let params: &[Value] = &[Value::Text("c".into()), Value::Int(3)];
    let inserted: u64 = db.exec("INSERT INTO t VALUES (?, ?)", params).unwrap();
    assert_eq!(inserted, 1);
    let rows: Rows = db.query("SELECT k, n FROM t ORDER BY n", &[]).unwrap();
    let (columns, values): (&Vec<String>, &Vec<Vec<Value>>) = (&rows.columns, &rows.rows);
    assert_eq!((columns.len(), values.len()), (2, 3));
    let _: serde_json::Value = rows.to_json();
    let _: Vec<serde_json::Map<String, serde_json::Value>> = rows.to_objects();
    let row: Option<Row> = db.query_row("SELECT 42 AS x", &[]).unwrap();
    let row = row.expect("a row");
    let (columns, values): (&Vec<String>, &Vec<Value>) = (&row.columns, &row.values);
    assert_eq!(
        (columns.as_slice(), values.as_slice()),
        (&["x".to_string()][..], &[Value::Int(42)][..])
    );
    let mut streamed = 0;
    for batch in db.query_arrow("SELECT * FROM t", &[]).unwrap() {
        streamed += batch.unwrap().num_rows();
    }
    assert_eq!(streamed, 3);
    let _every_variant = [
        Value::Null,
        Value::Bool(true),
        Value::Int(1i64),
        Value::UInt(1u64),
        Value::Float(1.0f64),
        Value::Text(String::new()),
        Value::Blob(Vec::<u8>::new()),
        Value::Timestamp(0i64),
        Value::Date(0i32),
        Value::List(Vec::<Value>::new()),
        Value::Struct(vec![(String::from("a"), Value::Null)]),
        Value::Other(String::new()),
    ];
    let exists: bool = db.table_exists("t").unwrap();
    assert!(exists);

    db.ensure_scoring_tables().unwrap();
    assert_eq!(
        [CHECKPOINT_SCORES, PROBE_RESULTS, SCORING_RESULTS],
        ["checkpoint_scores", "probe_results", "scoring_results"]
    );
    let appended: u64 = db
        .append_checkpoint_scores(vec![CheckpointScore {
            model: "m".into(),
            run_id: "r".into(),
            label: "l".into(),
            iteration: 1,
            correct: 2,
            total: 3,
            accuracy: 0.5,
            scored_at: None::<UnixMillis>,
        }])
        .unwrap();
    assert_eq!(appended, 1);
    let _: u64 = db
        .append_probe_results([ProbeResult {
            model: "m".into(),
            run_id: "r".into(),
            label: "l".into(),
            probe_id: "p".into(),
            passed: true,
            response: "ok".into(),
            iteration: 1,
            scored_at: Some(0),
        }])
        .unwrap();
    let _: u64 = db
        .append_scoring_results(std::iter::once(ScoringResult {
            model: "m".into(),
            prompt_id: "p".into(),
            suite: "s".into(),
            dimension: "d".into(),
            score: 1.0,
            scored_at: None,
        }))
        .unwrap();
    let counts: BTreeMap<String, u64> = db.table_counts().unwrap();
    assert_eq!(counts["t"], 3);
    let inventory: Inventory = db.inventory().unwrap();
    let total: u64 = inventory.total_rows;
    assert_eq!(total, 6);
    let first = &inventory.tables[0];
    let _: (&String, u64, &Vec<String>) = (&first.name, first.rows, &first.notes);
    let _: String = inventory.to_string();

    let exported: u64 = db.export_parquet("t", dir.path().join("out/t.parquet")).unwrap();
    assert_eq!(exported, 3);
    let manifest: SplitManifest = db
        .export_split_parquet("t", dir.path().join("split"), "k")
        .unwrap();
    let (table, column, total_rows): (&String, &String, u64) =
        (&manifest.table, &manifest.column, manifest.total_rows);
    assert_eq!((table.as_str(), column.as_str(), total_rows), ("t", "k", 3));
    let file = &manifest.files[0];
    let _: (&Option<String>, &String, u64) = (&file.value, &file.path, file.rows);
    let imported: u64 = db.import_parquet("t2", dir.path().join("out/t.parquet")).unwrap();
    assert_eq!(imported, 3);
    std::fs::write(dir.path().join("x.jsonl"), "{\"a\":1}\n").unwrap();
    let _: u64 = db.import_jsonl("j", dir.path().join("x.jsonl")).unwrap();
    std::fs::write(dir.path().join("x.csv"), "a;b\n1;2\n").unwrap();
    let options = CsvOptions {
        header: true,
        delimiter: Some(';'),
    };
    let _: u64 = db.import_csv("c", dir.path().join("x.csv"), &options).unwrap();
    let store = Store::in_memory().unwrap();
    db.attach_kv(&store).unwrap();
    db.close().unwrap();
    let read_only: Analytics = Analytics::open_read_only(&path).unwrap();
    assert!(read_only.table_exists("t2").unwrap());
    let _: Analytics = Analytics::in_memory().unwrap();
}

// §11 Service ----------------------------------------------------------------------------------

#[test]
fn service_config_and_service_have_the_spec_fields_and_methods() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let config: ServiceConfig = ServiceConfig::new(&home);
    let _: (&PathBuf, &StoreConfig, &Option<PathBuf>) = (&config.home, &config.store, &config.analytics_path);
    let _: fn() -> Result<ServiceConfig> = ServiceConfig::from_env;
    let _: fn() -> Result<PathBuf> = store::default_home;
    let service: Service = Service::open(config).unwrap();
    assert!(home.join("state.db").is_file());
    let store: &Store = service.store();
    store.set("g", "k", "v").unwrap();
    let scoped: ScopedStore = service.scoped("tenant-a").unwrap();
    scoped.set_key("k", "v").unwrap();
    let analytics: &Analytics = service.analytics().unwrap();
    let rows = analytics
        .query("SELECT entry_key FROM kv_entries ORDER BY 1", &[])
        .unwrap();
    assert_eq!(rows.rows.len(), 2);
    let result: serde_json::Value = service
        .call("store/get", json!({"group": "g", "key": "k"}))
        .unwrap();
    assert_eq!(result["value"], "v");
    service.close().unwrap();
    let e = service
        .call("store/get", json!({"group": "g", "key": "k"}))
        .unwrap_err();
    assert!(e.is_closed(), "{e:?}");
}

/// Every unscoped KV action of the §11 table answers with exactly the result object it lists.
#[test]
fn every_kv_action_answers_with_the_spec_result_object() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::open(ServiceConfig::new(dir.path())).unwrap();
    let call = |action: &str, args: serde_json::Value| service.call(action, args).unwrap();

    let version = call("store/set", json!({"group": "g", "key": "k", "value": "v"}))["version"]
        .as_u64()
        .expect("version");
    assert_eq!(
        call("store/get", json!({"group": "g", "key": "k"})),
        json!({"value": "v", "version": version})
    );
    call(
        "store/set",
        json!({"group": "g", "key": "n", "value": "x", "if_version": null}),
    );
    assert_eq!(
        call("store/increment", json!({"group": "c", "key": "n"})),
        json!({"value": 1})
    );
    assert_eq!(
        call("store/increment", json!({"group": "c", "key": "n", "delta": 5})),
        json!({"value": 6})
    );
    assert_eq!(
        call("store/exists", json!({"group": "g", "key": "k"})),
        json!({"exists": true})
    );
    assert_eq!(
        call("store/delete", json!({"group": "g", "key": "n"})),
        json!({"deleted": true})
    );
    call("store/set", json!({"group": "g", "key": "t", "value": "w"}));
    assert_eq!(
        call("store/get-all", json!({"group": "g"})),
        json!({"entries": [{"key": "k", "value": "v"}, {"key": "t", "value": "w"}]})
    );
    let list = call("store/list", json!({"group": "g", "offset": 1, "limit": 1}));
    assert_eq!(list, json!({"entries": [{"key": "t", "value": "w"}]}));
    let list = call("store/list", json!({"group": "g"}));
    assert_eq!(list["entries"].as_array().map(Vec::len), Some(2), "{list}");
    assert_eq!(call("store/groups", json!({})), json!({"groups": ["c", "g"]}));
    assert_eq!(
        call("store/groups", json!({"prefix": "g"})),
        json!({"groups": ["g"]})
    );
    assert_eq!(call("store/count", json!({"group": "g"})), json!({"count": 2}));
    assert_eq!(call("store/count", json!({"prefix": "c"})), json!({"count": 1}));
    assert_eq!(call("store/count", json!({})), json!({"count": 3}));
    call("store/set", json!({"group": "tpl", "key": "pool", "value": "eu"}));
    assert_eq!(
        call("store/render", json!({"template": "{{ pool }}", "group": "tpl"})),
        json!({"text": "eu"})
    );
    let changes = call("store/changes", json!({}));
    let keys: Vec<&String> = changes.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["changes", "gap", "next_seq"], "{changes}");
    let page = call("store/changes", json!({"since": 1, "limit": 2}));
    assert_eq!(page["changes"].as_array().map(Vec::len), Some(2), "{page}");
    assert_eq!(call("store/purge", json!({})), json!({"purged": 0}));
    assert_eq!(
        call("store/delete-group", json!({"group": "tpl"})),
        json!({"deleted": 1})
    );
    assert_eq!(
        call("store/delete-prefix", json!({"prefix": "c"})),
        json!({"deleted": 1})
    );
    service.close().unwrap();
}

/// `store/scoped/*` take the namespace plus the unscoped arguments (group defaulting to
/// `default`) and answer as the unscoped actions do.
#[test]
fn every_scoped_action_answers_like_its_unscoped_form() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::open(ServiceConfig::new(dir.path())).unwrap();
    let call = |action: &str, args: serde_json::Value| service.call(action, args);
    let set = call(
        "store/scoped/set",
        json!({"namespace": "ns", "key": "a", "value": "1", "quota": {"max_keys": 1}}),
    )
    .unwrap();
    assert!(set["version"].is_u64(), "{set}");
    assert_eq!(
        call("store/scoped/get", json!({"namespace": "ns", "key": "a"})).unwrap()["value"],
        "1"
    );
    assert_eq!(
        call(
            "store/scoped/get",
            json!({"namespace": "ns", "group": "default", "key": "a"})
        )
        .unwrap()["value"],
        "1"
    );
    assert_eq!(
        call("store/scoped/get-all", json!({"namespace": "ns"})).unwrap(),
        json!({"entries": [{"key": "a", "value": "1"}]})
    );
    assert_eq!(
        call("store/scoped/list", json!({"namespace": "ns", "limit": 10})).unwrap(),
        json!({"entries": [{"key": "a", "value": "1"}]})
    );
    assert_eq!(
        call("store/scoped/groups", json!({"namespace": "ns"})).unwrap(),
        json!({"groups": ["default"]})
    );
    assert_eq!(
        call("store/scoped/count", json!({"namespace": "ns"})).unwrap(),
        json!({"count": 1})
    );
    assert_eq!(
        call("store/scoped/usage", json!({"namespace": "ns"})).unwrap(),
        json!({"keys": 1, "groups": 1, "bytes": 2})
    );
    assert_eq!(
        call("store/scoped/delete", json!({"namespace": "ns", "key": "a"})).unwrap(),
        json!({"deleted": true})
    );
    assert_eq!(
        service.store().get("ns:default", "a").unwrap_err().kind(),
        ErrorKind::NotFound
    );
    service.close().unwrap();
}

/// §11: "a missing or mistyped argument gives `InvalidInput`, with `field` set to … the argument's
/// name", for every kind of argument the KV and analytics actions take.
#[test]
fn a_missing_or_mistyped_argument_is_invalid_input_naming_that_argument() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::open(ServiceConfig::new(dir.path())).unwrap();
    let cases = [
        ("store/get", json!({"group": "g"}), "key"),
        ("store/get", json!({"group": "g", "key": 5}), "key"),
        (
            "store/set",
            json!({"group": "g", "key": "k", "value": 5}),
            "value",
        ),
        (
            "store/set",
            json!({"group": "g", "key": "k", "value": "v", "ttl_ms": "10"}),
            "ttl_ms",
        ),
        (
            "store/set",
            json!({"group": "g", "key": "k", "value": "v", "if_version": "1"}),
            "if_version",
        ),
        (
            "store/increment",
            json!({"group": "g", "key": "k", "delta": "x"}),
            "delta",
        ),
        ("store/list", json!({"group": "g", "limit": -1}), "limit"),
        ("store/list", json!({"group": "g", "offset": "0"}), "offset"),
        ("store/groups", json!({"prefix": 1}), "prefix"),
        ("store/changes", json!({"since": "x"}), "since"),
        ("store/render", json!({"group": "g"}), "template"),
        ("store/delete-prefix", json!({}), "prefix"),
        ("store/scoped/get", json!({"key": "k"}), "namespace"),
        (
            "store/scoped/set",
            json!({"namespace": "ns", "key": "k", "value": "v", "quota": {"max_keys": "x"}}),
            "max_keys",
        ),
        (
            "store/scoped/set",
            json!({"namespace": "ns", "key": "k", "value": "v", "quota": 5}),
            "quota",
        ),
        ("store/sql", json!({}), "sql"),
        ("store/sql", json!({"sql": "SELECT 1", "params": "x"}), "params"),
        ("store/import", json!({"table": "t"}), "path"),
        ("store/export-parquet", json!({"table": "t"}), "path"),
        (
            "store/export-split-parquet",
            json!({"table": "t", "dir": "d"}),
            "column",
        ),
    ];
    for (action, args, field) in cases {
        let e = service.call(action, args.clone()).unwrap_err();
        assert_eq!(
            (e.kind(), e.field(), e.op()),
            (ErrorKind::InvalidInput, Some(field), "Service::call"),
            "{action} {args}: {e}"
        );
    }
    service.close().unwrap();
}
