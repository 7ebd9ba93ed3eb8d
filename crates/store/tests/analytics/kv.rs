//! `attach_kv`: the KV store's live entries as the `kv_entries` view inside DuckDB — live values
//! only (TTL by the store's clock), the spec's column types, joins with analytics tables, fresh
//! data in every statement, and an error once the store is closed.

use std::time::Duration;

use store::analytics::{Analytics, ScoringResult, Value};
use store::{ErrorKind, Kv};

use crate::common::{START_MS, memory_store};
use crate::support::{fill, in_own_process, scalar, text};

fn t(s: &str) -> Value {
    Value::Text(s.into())
}

#[test]
fn kv_entries_shows_live_values_and_hides_expired_ones() {
    let (store, clock) = memory_store();
    let v1 = store.set("models", "m1", "GPT one").unwrap();
    store.set("models", "m2", "Claude").unwrap();
    store
        .set_with_ttl("models", "temp", "short-lived", Duration::from_secs(10))
        .unwrap();
    store.set("other", "k", "v").unwrap();
    let db = Analytics::in_memory().unwrap();
    db.attach_kv(&store).unwrap();

    let rows = db
        .query(
            "SELECT group_name, entry_key, entry_value, expires_at, version FROM kv_entries ORDER BY ALL",
            &[],
        )
        .unwrap();
    assert_eq!(
        rows.columns,
        ["group_name", "entry_key", "entry_value", "expires_at", "version"]
    );
    assert_eq!(rows.len(), 4);
    assert_eq!(
        rows.rows[0],
        vec![t("models"), t("m1"), t("GPT one"), Value::Null, Value::UInt(v1)]
    );
    let temp = rows.rows.iter().find(|r| r[1] == t("temp")).unwrap();
    assert_eq!(temp[3], Value::Int(START_MS + 10_000));

    clock.advance(Duration::from_secs(11));
    let keys = db
        .query(
            "SELECT entry_key FROM kv_entries WHERE group_name = 'models' ORDER BY 1",
            &[],
        )
        .unwrap();
    assert_eq!(keys.rows, vec![vec![t("m1")], vec![t("m2")]]);
    assert_eq!(scalar(&db, "SELECT count(*) FROM kv_entries"), Value::Int(3));
}

#[test]
fn kv_entries_has_the_spec_columns_and_types() {
    let (store, _clock) = memory_store();
    let db = Analytics::in_memory().unwrap();
    db.attach_kv(&store).unwrap();
    let described = db.query("DESCRIBE kv_entries", &[]).unwrap();
    let name = described.columns.iter().position(|c| c == "column_name").unwrap();
    let ty = described.columns.iter().position(|c| c == "column_type").unwrap();
    let pairs: Vec<(String, String)> = described
        .rows
        .iter()
        .map(|r| (text(&r[name]), text(&r[ty])))
        .collect();
    let expected: Vec<(String, String)> = [
        ("group_name", "VARCHAR"),
        ("entry_key", "VARCHAR"),
        ("entry_value", "VARCHAR"),
        ("expires_at", "BIGINT"),
        ("version", "UBIGINT"),
    ]
    .iter()
    .map(|(a, b)| ((*a).to_string(), (*b).to_string()))
    .collect();
    assert_eq!(pairs, expected);
    // An empty store is an empty view, not an error.
    assert_eq!(scalar(&db, "SELECT count(*) FROM kv_entries"), Value::Int(0));
}

#[test]
fn kv_entries_joins_with_scoring_results() {
    let (store, _clock) = memory_store();
    store.set("model-names", "m1", "Model One").unwrap();
    store.set("model-names", "m2", "Model Two").unwrap();
    let db = Analytics::in_memory().unwrap();
    db.ensure_scoring_tables().unwrap();
    let score = |model: &str, s: f64| ScoringResult {
        model: model.into(),
        prompt_id: "q".into(),
        suite: "suite".into(),
        dimension: "quality".into(),
        score: s,
        scored_at: None,
    };
    db.append_scoring_results([
        score("m1", 1.0),
        score("m1", 3.0),
        score("m2", 5.0),
        score("m3", 9.0),
    ])
    .unwrap();
    db.attach_kv(&store).unwrap();

    let rows = db
        .query(
            "SELECT k.entry_value AS display_name, avg(s.score) AS mean, count(*) AS n
             FROM scoring_results s JOIN kv_entries k ON k.group_name = 'model-names' AND k.entry_key = s.model
             GROUP BY 1 ORDER BY 1",
            &[],
        )
        .unwrap();
    assert_eq!(
        rows.rows,
        vec![
            vec![t("Model One"), Value::Float(2.0), Value::Int(2)],
            vec![t("Model Two"), Value::Float(5.0), Value::Int(1)],
        ]
    );
}

#[test]
fn kv_entries_reflects_later_writes_in_a_new_query() {
    let (store, _clock) = memory_store();
    store.set("g", "a", "1").unwrap();
    let db = Analytics::in_memory().unwrap();
    db.attach_kv(&store).unwrap();
    assert_eq!(scalar(&db, "SELECT count(*) FROM kv_entries"), Value::Int(1));

    store.set("g", "b", "2").unwrap();
    store.set("g", "a", "changed").unwrap();
    let rows = db
        .query("SELECT entry_key, entry_value FROM kv_entries ORDER BY 1", &[])
        .unwrap();
    assert_eq!(rows.rows, vec![vec![t("a"), t("changed")], vec![t("b"), t("2")]]);

    store.delete("g", "a").unwrap();
    assert_eq!(
        scalar(&db, "SELECT string_agg(entry_key, ',') FROM kv_entries"),
        t("b")
    );
}

#[test]
fn kv_entries_holds_values_exactly_including_large_and_unusual_ones() {
    let (store, _clock) = memory_store();
    let big = "x".repeat(100_000);
    let odd = "'; DROP TABLE entries; -- \n\t ünï 🌍 \\ % _";
    store.set("g", "big", &big).unwrap();
    store.set("g", "odd", odd).unwrap();
    store.set("g", "empty", "").unwrap();
    for i in 0..5000 {
        store.set("many", &format!("k{i:05}"), &i.to_string()).unwrap();
    }
    let db = Analytics::in_memory().unwrap();
    db.attach_kv(&store).unwrap();
    let value_of = |key: &str| {
        db.query_row(
            "SELECT entry_value FROM kv_entries WHERE group_name = 'g' AND entry_key = ?",
            &[t(key)],
        )
        .unwrap()
        .unwrap()
        .values[0]
            .clone()
    };
    assert_eq!(value_of("big"), t(&big));
    assert_eq!(value_of("odd"), t(odd));
    assert_eq!(value_of("empty"), t(""));
    // More rows than one DuckDB vector: every one arrives.
    assert_eq!(
        scalar(&db, "SELECT count(*) FROM kv_entries WHERE group_name = 'many'"),
        Value::Int(5000)
    );
    assert_eq!(
        scalar(
            &db,
            "SELECT sum(entry_value::BIGINT) FROM kv_entries WHERE group_name = 'many'"
        ),
        Value::Int(12_497_500)
    );
}

#[test]
fn kv_entries_after_the_store_is_closed_fails_mentioning_closed() {
    let (store, _clock) = memory_store();
    store.set("g", "k", "v").unwrap();
    let db = Analytics::in_memory().unwrap();
    db.attach_kv(&store).unwrap();
    assert_eq!(scalar(&db, "SELECT count(*) FROM kv_entries"), Value::Int(1));
    store.close().unwrap();
    let err = db.query("SELECT * FROM kv_entries", &[]).unwrap_err();
    assert!(err.to_string().contains("closed"), "{err}");
    // The database itself is still usable.
    assert_eq!(scalar(&db, "SELECT 1"), Value::Int(1));
}

/// SPEC §3.3: a store call on the thread running the store's transaction is `InvalidInput`,
/// never a deadlock. The scan may run on a DuckDB worker thread, which for an in-memory store
/// would wait for the transaction's lock while the transaction waits for the query.
#[test]
fn kv_entries_inside_the_stores_own_transaction_is_invalid_input_not_a_hang() {
    let (store, _clock) = memory_store();
    for i in 0..5_000 {
        store.set("g", &format!("k{i}"), "v").unwrap();
    }
    let db = std::sync::Arc::new(Analytics::in_memory().unwrap());
    db.attach_kv(&store).unwrap();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let worker = {
        let (store, db) = (store.clone(), db.clone());
        std::thread::spawn(move || {
            for _ in 0..20 {
                let result = store.transaction(|tx| {
                    tx.set("g", "in-txn", "x")?;
                    db.query("SELECT count(*) FROM kv_entries", &[]).map(drop)
                });
                let err = result.unwrap_err();
                assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
                assert!(err.to_string().contains("transaction"), "{err}");
            }
            done_tx.send(()).unwrap();
        })
    };
    done_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("a kv_entries query inside the store's transaction hung");
    worker.join().unwrap();
    // Outside the transaction the query works, and the failed transactions wrote nothing.
    assert_eq!(scalar(&db, "SELECT count(*) FROM kv_entries"), Value::Int(5_000));
}

#[test]
fn kv_entries_after_the_store_is_dropped_fails_mentioning_closed() {
    let (store, _clock) = memory_store();
    store.set("g", "k", "v").unwrap();
    let db = Analytics::in_memory().unwrap();
    db.attach_kv(&store).unwrap();
    drop(store);
    let err = db.query("SELECT * FROM kv_entries", &[]).unwrap_err();
    assert!(err.to_string().contains("closed"), "{err}");
}

#[test]
fn kv_entries_after_the_store_is_closed_is_a_closed_error() {
    let (store, _clock) = memory_store();
    let db = Analytics::in_memory().unwrap();
    db.attach_kv(&store).unwrap();
    store.close().unwrap();
    let err = db.query("SELECT * FROM kv_entries", &[]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Closed, "{err}");
}

#[test]
fn attaching_again_replaces_the_store() {
    let (first, _c1) = memory_store();
    let (second, _c2) = memory_store();
    first.set("g", "from", "first").unwrap();
    second.set("g", "from", "second").unwrap();
    let db = Analytics::in_memory().unwrap();
    db.attach_kv(&first).unwrap();
    assert_eq!(scalar(&db, "SELECT entry_value FROM kv_entries"), t("first"));
    db.attach_kv(&second).unwrap();
    assert_eq!(scalar(&db, "SELECT entry_value FROM kv_entries"), t("second"));
}

#[test]
fn kv_entries_is_a_view_not_a_base_table() {
    let (store, _clock) = memory_store();
    store.set("g", "k", "v").unwrap();
    let db = Analytics::in_memory().unwrap();
    db.attach_kv(&store).unwrap();
    assert!(db.table_counts().unwrap().is_empty());
    assert!(db.inventory().unwrap().tables.is_empty());
    // Read-only: it cannot be written through.
    assert!(
        db.exec_batch("INSERT INTO kv_entries VALUES ('g', 'k2', 'v', NULL, 1)")
            .is_err()
    );
    assert!(!store.exists("g", "k2").unwrap());
}

#[test]
fn kv_entries_can_be_split_exported_by_group() {
    let (store, _clock) = memory_store();
    store.set("models", "m1", "a").unwrap();
    store.set("models", "m2", "b").unwrap();
    store.set("config/x", "k", "v").unwrap();
    let db = Analytics::in_memory().unwrap();
    db.attach_kv(&store).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let manifest = db
        .export_split_parquet("kv_entries", dir.path(), "group_name")
        .unwrap();
    let files: Vec<(Option<&str>, &str, u64)> = manifest
        .files
        .iter()
        .map(|f| (f.value.as_deref(), f.path.as_str(), f.rows))
        .collect();
    assert_eq!(
        files,
        [
            (Some("config/x"), "group_name=config%2Fx/data.parquet", 1),
            (Some("models"), "group_name=models/data.parquet", 2)
        ]
    );
}

#[test]
fn kv_entries_exports_to_parquet_through_a_query() {
    // Exports run in a read-only transaction; reading the attached KV state is still allowed.
    let (store, _clock) = memory_store();
    store.set("models", "m1", "one").unwrap();
    store.set("models", "m2", "two").unwrap();
    let db = Analytics::in_memory().unwrap();
    db.attach_kv(&store).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kv.parquet");
    assert_eq!(
        db.export_parquet(
            "SELECT group_name, entry_key, entry_value FROM kv_entries ORDER BY entry_key",
            &path
        )
        .unwrap(),
        2
    );
    let back = db
        .query(
            &format!(
                "SELECT entry_key, entry_value FROM read_parquet('{}') ORDER BY 1",
                path.display()
            ),
            &[],
        )
        .unwrap();
    assert_eq!(back.rows, vec![vec![t("m1"), t("one")], vec![t("m2"), t("two")]]);
}

#[test]
fn store_kv_scan_of_null_or_a_bad_id_is_an_error_not_an_abort() {
    let (store, _clock) = memory_store();
    let db = Analytics::in_memory().unwrap();
    db.attach_kv(&store).unwrap();
    // NULL used to throw a C++ exception through Rust, aborting the process.
    for sql in [
        "SELECT count(*) FROM store_kv_scan(NULL)",
        "SELECT count(*) FROM store_kv_scan(-1)",
        "SELECT count(*) FROM store_kv_scan('x')",
    ] {
        let err = db.query(sql, &[]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::DuckDb, "{sql}: {err}");
    }
    let err = db
        .query("SELECT count(*) FROM store_kv_scan(?)", &[Value::Null])
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DuckDb, "{err}");
    assert_eq!(scalar(&db, "SELECT count(*) FROM kv_entries"), Value::Int(0));
}

#[test]
fn kv_entries_scan_takes_no_argument_and_reads_the_attached_store() {
    // SPEC §8: attach_kv "registers a read-only table function kv_entries_scan()".
    let (first, _clock) = memory_store();
    let (second, _clock) = memory_store();
    first.set("g", "k", "one").unwrap();
    second.set("g", "k", "two").unwrap();
    second.set("g", "k2", "three").unwrap();
    let db = Analytics::in_memory().unwrap();
    db.attach_kv(&first).unwrap();
    let scan =
        "SELECT group_name, entry_key, entry_value, expires_at, version FROM kv_entries_scan() ORDER BY 2";
    let rows = db.query(scan, &[]).unwrap();
    assert_eq!(
        rows.columns,
        ["group_name", "entry_key", "entry_value", "expires_at", "version"]
    );
    assert_eq!(rows.rows.len(), 1);
    assert_eq!(rows.rows[0][2], t("one"));
    assert_eq!(rows.rows[0][3], Value::Null);
    assert!(
        matches!(rows.rows[0][4], Value::UInt(v) if v >= 1),
        "{:?}",
        rows.rows[0][4]
    );
    // Attaching another store moves both the function and the view to it.
    db.attach_kv(&second).unwrap();
    assert_eq!(
        scalar(&db, "SELECT count(*) FROM kv_entries_scan()"),
        Value::Int(2)
    );
    assert_eq!(scalar(&db, "SELECT count(*) FROM kv_entries"), Value::Int(2));
    drop(second);
    let err = db
        .query("SELECT count(*) FROM kv_entries_scan()", &[])
        .unwrap_err();
    assert!(err.to_string().contains("closed"), "{err}");
}

/// The registry of attached stores is process-wide, and SQL may pass any id to
/// `kv_entries_scan(store_id := N)`: with ids counted 1, 2, 3…, a query on one handle read the
/// store attached to another. Ids are unguessable now; every small one finds nothing.
#[test]
fn a_handle_cannot_read_another_handles_store_by_guessing_its_id() {
    let (mine, _clock) = memory_store();
    let (theirs, _clock) = memory_store();
    theirs.set("secret", "k", "v").unwrap();
    let (db, other) = (Analytics::in_memory().unwrap(), Analytics::in_memory().unwrap());
    db.attach_kv(&mine).unwrap();
    other.attach_kv(&theirs).unwrap();
    for id in 0..=2_000 {
        let sql = format!("SELECT count(*) FROM kv_entries_scan(store_id := {id})");
        let err = db.query(&sql, &[]).unwrap_err();
        assert!(err.to_string().contains("closed"), "{sql}: {err}");
    }
    assert_eq!(scalar(&other, "SELECT count(*) FROM kv_entries"), Value::Int(1));
    assert_eq!(scalar(&db, "SELECT count(*) FROM kv_entries"), Value::Int(0));
}

/// A memory store's reads share its writer's lock. A thread in a store transaction that
/// calls analytics waits for the analytics connection while a kv_entries scan holding that
/// connection waits for the transaction: the scan gives up after the busy timeout instead,
/// so both threads finish.
#[test]
fn a_memory_store_transaction_and_a_kv_entries_scan_never_deadlock() {
    let mut config = store::StoreConfig::memory();
    config.busy_timeout = Duration::from_millis(300);
    let store = store::Store::open_with(config).unwrap();
    store.set("g", "k", "v").unwrap();
    let db = Analytics::in_memory().unwrap();
    db.attach_kv(&store).unwrap();
    let in_transaction = std::sync::Barrier::new(2);
    std::thread::scope(|scope| {
        let writer = scope.spawn(|| {
            store.transaction(|tx| {
                tx.set("g", "k2", "v2")?;
                in_transaction.wait();
                std::thread::sleep(Duration::from_millis(100)); // the scan takes the connection
                db.query("SELECT 1", &[]).map(drop)
            })
        });
        in_transaction.wait();
        let scan = db.query("SELECT count(*) FROM kv_entries", &[]);
        if let Err(e) = &scan {
            assert!(e.is_busy() || e.to_string().contains("busy timeout"), "{e}");
        }
        writer.join().unwrap().unwrap();
    });
    assert_eq!(scalar(&db, "SELECT count(*) FROM kv_entries"), Value::Int(2));
}

/// A file store with `n` entries of `value_bytes` each in group `g` (keys `k000000`…), with
/// memory-mapped reads off so the figures below are the scan's own.
fn file_store_holding(n: usize, value_bytes: usize) -> crate::common::Fixture {
    let f = crate::common::file_store_with(|c| c.with_reader_mmap_bytes(0));
    let value = "v".repeat(value_bytes);
    fill(&f.store, "g", n, |_| value.clone());
    f
}

/// The process's peak resident memory (`VmHWM`), in bytes.
#[cfg(target_os = "linux")]
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

/// A scan of a file store reads chunks on a connection of its own rather than every
/// live entry at once: scanning 200 MB of values raises the peak memory by a small fraction of
/// that (it rose by more than the values' size when a scan loaded them all). In a child process
/// of its own, so other tests' memory does not count.
#[cfg(target_os = "linux")]
#[test]
fn a_kv_entries_scan_of_a_file_store_reads_it_in_bounded_memory() {
    if !in_own_process("kv::a_kv_entries_scan_of_a_file_store_reads_it_in_bounded_memory") {
        return;
    }
    const VALUES: usize = 50_000;
    const VALUE_BYTES: usize = 4096;
    let f = file_store_holding(VALUES, VALUE_BYTES);
    let store = &f.store;
    let db = Analytics::in_memory().unwrap();
    db.attach_kv(store).unwrap();
    // Warm DuckDB's own allocations (thread pools, the macro's binding) on a tiny scan first.
    scalar(&db, "SELECT count(*) FROM kv_entries WHERE entry_key = 'k000000'");
    let before = peak_rss();
    let row = db
        .query_row("SELECT count(*), sum(length(entry_value)) FROM kv_entries", &[])
        .unwrap()
        .unwrap();
    let grew = peak_rss().saturating_sub(before);
    assert_eq!(row.values[0], Value::Int(VALUES as i64));
    assert_eq!(row.values[1], Value::Int((VALUES * VALUE_BYTES) as i64));
    let total = (VALUES * VALUE_BYTES) as u64;
    println!(
        "peak memory grew by {} MB scanning {} MB",
        grew >> 20,
        total >> 20
    );
    assert!(
        grew < total / 3,
        "the scan raised peak memory by {grew} bytes for {total} bytes of values"
    );
}

/// A streamed scan spans many chunks, yet reads one snapshot: entries deleted and added while
/// its result is being read neither vanish from nor join it; the next query sees them.
#[test]
fn a_streamed_kv_entries_scan_keeps_its_snapshot_across_chunks() {
    const N: usize = 10_000; // about five of the scan's chunks
    let f = file_store_holding(N, 8);
    let store = &f.store;
    let db = Analytics::in_memory().unwrap();
    db.attach_kv(store).unwrap();
    let mut batches = db
        .query_arrow("SELECT entry_key, entry_value FROM kv_entries", &[])
        .unwrap();
    let mut rows = batches.next().unwrap().unwrap().num_rows();
    assert!(rows < N, "the first batch already held every row");
    assert_eq!(store.delete_group("g").unwrap(), N as u64);
    store.set("g", "late", "x").unwrap();
    store.set("h", "late", "x").unwrap();
    for batch in batches {
        rows += batch.unwrap().num_rows();
    }
    assert_eq!(rows, N);
    assert_eq!(scalar(&db, "SELECT count(*) FROM kv_entries"), Value::Int(2));
}

/// Scans on a file store hold no pooled reader: with one reader in the pool, a query reading
/// the view three times at once, and a store read in the middle of a streamed scan, all work.
#[test]
fn kv_entries_scans_of_a_file_store_wait_for_no_pooled_reader() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = store::StoreConfig::file(dir.path().join("state.db"));
    config.readers = 1;
    config.busy_timeout = Duration::from_millis(200);
    let store = store::Store::open_with(config).unwrap();
    for i in 0..5000 {
        store.set("g", &format!("k{i}"), "v").unwrap();
    }
    let db = Analytics::in_memory().unwrap();
    db.attach_kv(&store).unwrap();
    let joined = scalar(
        &db,
        "SELECT count(*) FROM kv_entries a JOIN kv_entries b USING (group_name, entry_key)
           JOIN kv_entries c USING (group_name, entry_key)",
    );
    assert_eq!(joined, Value::Int(5000));
    let mut batches = db.query_arrow("SELECT entry_key FROM kv_entries", &[]).unwrap();
    let mut rows = batches.next().unwrap().unwrap().num_rows();
    assert_eq!(store.get("g", "k1").unwrap(), "v");
    assert_eq!(store.count("g").unwrap(), 5000);
    for batch in batches {
        rows += batch.unwrap().num_rows();
    }
    assert_eq!(rows, 5000);
}

/// A scan judges every entry at one time, read after its snapshot was taken: another
/// connection's write landing between a clock read and the snapshot (`HookClock`) would
/// otherwise show an entry that had expired by the snapshot beside the one written after it.
#[test]
fn a_kv_entries_scan_judges_entries_at_a_time_read_after_its_snapshot() {
    let (_dir, store, clock, other) = crate::common::racing_pair(2_000_000);
    let db = Analytics::in_memory().unwrap();
    db.attach_kv(&store).unwrap();
    clock.arm(move || {
        other.set("g", "new", "2").unwrap();
    });
    assert_eq!(
        text(&scalar(&db, "SELECT string_agg(entry_key, ',') FROM kv_entries")),
        "old"
    );
    assert!(clock.fired());
    let both = "SELECT string_agg(entry_key, ',' ORDER BY entry_key) FROM kv_entries";
    assert_eq!(text(&scalar(&db, both)), "new,old");
}
