//! Comparison harness: the store against raw rusqlite doing the same work, in one process.
//!
//! Run with `cargo run --release -p store --example kv_vs_rusqlite` (add `-- --quick` for a
//! short run). Both sides use the same schema (the raw side opens a file the store created),
//! the same pragmas (WAL, synchronous NORMAL, busy timeout, statement cache) and the same SQL
//! statements; the raw side skips only what the store adds (validation, versions, locking,
//! liveness handling). Store and raw runs alternate for several rounds and the median
//! throughput of each is compared, so machine noise hits both sides alike.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension, params};
use store::{Kv, Store, StoreConfig};

const GROUP: &str = "bench";
const VALUE: &str = "a-typical-value-of-some-thirty-two-bytes";

struct Scale {
    rounds: usize,
    mem_sets: usize,
    file_sets: usize,
    gets: usize,
    get_all_keys: usize,
    get_all_reps: usize,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let quick = std::env::args().any(|a| a == "--quick");
    let scale = if quick {
        Scale {
            rounds: 3,
            mem_sets: 20_000,
            file_sets: 3_000,
            gets: 20_000,
            get_all_keys: 10_000,
            get_all_reps: 5,
        }
    } else {
        Scale {
            rounds: 7,
            mem_sets: 100_000,
            file_sets: 20_000,
            gets: 200_000,
            get_all_keys: 10_000,
            get_all_reps: 30,
        }
    };
    let dir = tempfile::tempdir()?;
    println!(
        "store vs raw rusqlite (same schema, pragmas and statements); median of {} rounds",
        scale.rounds
    );
    println!(
        "{:<34} {:>14} {:>14} {:>7} {:>7}",
        "workload", "store ops/s", "raw ops/s", "ratio", "target"
    );
    let mut failures = 0;
    let mut report = |name: &str, target: f64, (store, raw): (f64, f64)| {
        let ratio = store / raw;
        let verdict = if ratio >= target { "" } else { "  BELOW TARGET" };
        if ratio < target {
            failures += 1;
        }
        println!("{name:<34} {store:>14.0} {raw:>14.0} {ratio:>7.2} {target:>7.2}{verdict}");
    };

    report(
        "set, in memory (autocommit)",
        0.9,
        rounds(scale.rounds, |round| {
            let store = memory_store()?;
            let raw = raw_memory()?;
            let n = scale.mem_sets;
            pair(
                round,
                || {
                    time_ops(n, || {
                        for i in 0..n {
                            store.set(GROUP, &key(round, i), VALUE)?;
                        }
                        Ok(())
                    })
                },
                || time_ops(n, || raw_sets(&raw, round, n)),
            )
        })?,
    );

    report(
        "set, file WAL NORMAL (autocommit)",
        0.9,
        rounds(scale.rounds, |round| {
            let store_path = dir.path().join(format!("store-{round}.db"));
            let raw_path = dir.path().join(format!("raw-{round}.db"));
            let store = file_store(&store_path)?;
            let raw = raw_file(&raw_path)?;
            let n = scale.file_sets;
            pair(
                round,
                || {
                    time_ops(n, || {
                        for i in 0..n {
                            store.set(GROUP, &key(round, i), VALUE)?;
                        }
                        Ok(())
                    })
                },
                || time_ops(n, || raw_sets(&raw, round, n)),
            )
        })?,
    );

    for (label, file) in [("get, in memory", false), ("get, file WAL", true)] {
        report(
            label,
            0.9,
            rounds(scale.rounds, |round| {
                let (store, raw) = loaded_pair(dir.path(), file, round, scale.get_all_keys)?;
                let n = scale.gets;
                let keys = scale.get_all_keys;
                pair(
                    round,
                    || {
                        time_ops(n, || {
                            for i in 0..n {
                                let v = store.get(GROUP, &key(0, (i * 7919) % keys))?;
                                std::hint::black_box(v);
                            }
                            Ok(())
                        })
                    },
                    || {
                        time_ops(n, || {
                            let now = now_ms();
                            for i in 0..n {
                                let v = raw_get(&raw, &key(0, (i * 7919) % keys), now)?;
                                std::hint::black_box(v);
                            }
                            Ok(())
                        })
                    },
                )
            })?,
        );
    }

    for (label, file) in [
        ("get_all 10k keys, in memory", false),
        ("get_all 10k keys, file WAL", true),
    ] {
        report(
            label,
            0.8,
            rounds(scale.rounds, |round| {
                let (store, raw) = loaded_pair(dir.path(), file, round + 100, scale.get_all_keys)?;
                let reps = scale.get_all_reps;
                pair(
                    round,
                    || {
                        time_ops(reps, || {
                            for _ in 0..reps {
                                std::hint::black_box(store.get_all(GROUP)?);
                            }
                            Ok(())
                        })
                    },
                    || {
                        time_ops(reps, || {
                            for _ in 0..reps {
                                std::hint::black_box(raw_get_all(&raw, now_ms())?);
                            }
                            Ok(())
                        })
                    },
                )
            })?,
        );
    }

    if failures > 0 {
        println!("{failures} workload(s) below target");
    }
    Ok(())
}

type AnyResult<T> = Result<T, Box<dyn std::error::Error>>;

fn key(round: usize, i: usize) -> String {
    format!("key-{round}-{i:08}")
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Runs `round` several times and returns the median (store, raw) throughput.
///
/// Each round builds fresh state for both sides; `round` decides the order (see [`pair`]).
fn rounds(n: usize, mut round: impl FnMut(usize) -> AnyResult<(f64, f64)>) -> AnyResult<(f64, f64)> {
    let mut store = Vec::new();
    let mut raw = Vec::new();
    for r in 0..n {
        let (s, w) = round(r)?;
        store.push(s);
        raw.push(w);
    }
    Ok((median(store), median(raw)))
}

/// Measures both sides, alternating which goes first so warm-up effects cancel out.
fn pair(
    round: usize,
    store: impl FnOnce() -> AnyResult<f64>,
    raw: impl FnOnce() -> AnyResult<f64>,
) -> AnyResult<(f64, f64)> {
    if round % 2 == 0 {
        let s = store()?;
        Ok((s, raw()?))
    } else {
        let r = raw()?;
        Ok((store()?, r))
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn time_ops(ops: usize, f: impl FnOnce() -> AnyResult<()>) -> AnyResult<f64> {
    let start = Instant::now();
    f()?;
    let elapsed = start.elapsed().max(Duration::from_nanos(1));
    Ok(ops as f64 / elapsed.as_secs_f64())
}

fn quiet(config: StoreConfig) -> StoreConfig {
    config.with_purge_interval(Duration::ZERO)
}

fn memory_store() -> AnyResult<Store> {
    Ok(Store::open_with(quiet(StoreConfig::memory()))?)
}

fn file_store(path: &Path) -> AnyResult<Store> {
    let mut config = quiet(StoreConfig::file(path));
    if let Some(n) = std::env::var("READERS").ok().and_then(|v| v.parse().ok()) {
        config.readers = n;
    }
    Ok(Store::open_with(config)?)
}

/// The store's schema, as the store creates it: open a store on the file, then close it.
fn schema_sql(conn: &Connection) -> AnyResult<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("schema.db");
    Store::open_with(quiet(StoreConfig::file(&path)))?.close()?;
    let source = Connection::open(&path)?;
    let mut stmt =
        source.prepare("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%'")?;
    let ddl: Vec<String> = stmt.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
    for sql in ddl {
        conn.execute_batch(&sql)?;
    }
    Ok(())
}

fn raw_memory() -> AnyResult<Connection> {
    let conn = Connection::open_in_memory()?;
    conn.set_prepared_statement_cache_capacity(128);
    conn.pragma_update(None, "synchronous", 1)?;
    schema_sql(&conn)?;
    Ok(conn)
}

fn raw_file(path: &Path) -> AnyResult<Connection> {
    // Let the store create the file so the schema is byte-for-byte the store's.
    Store::open_with(quiet(StoreConfig::file(path)))?.close()?;
    let conn = Connection::open(path)?;
    conn.set_prepared_statement_cache_capacity(128);
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
    conn.pragma_update(None, "synchronous", 1)?;
    Ok(conn)
}

fn raw_sets(conn: &Connection, round: usize, n: usize) -> AnyResult<()> {
    for i in 0..n {
        conn.prepare_cached(store::kv::UPSERT_SQL)?.execute(params![
            GROUP,
            key(round, i),
            VALUE,
            None::<i64>,
            i as i64 + 1
        ])?;
    }
    Ok(())
}

fn raw_get(conn: &Connection, key: &str, now: i64) -> AnyResult<Option<String>> {
    let row: Option<(String, i64, Option<i64>)> = conn
        .prepare_cached(
            "SELECT entry_value, version, expires_at FROM entries WHERE group_name = ?1 AND entry_key = ?2",
        )?
        .query_row(params![GROUP, key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    Ok(row
        .filter(|(_, _, exp)| exp.is_none_or(|e| e > now))
        .map(|(v, _, _)| v))
}

fn raw_get_all(conn: &Connection, now: i64) -> AnyResult<BTreeMap<String, String>> {
    let mut stmt = conn.prepare_cached(
        "SELECT entry_key, entry_value FROM entries WHERE group_name = ?1 \
         AND (expires_at IS NULL OR expires_at > ?2)",
    )?;
    let mut rows = stmt.query(params![GROUP, now])?;
    let mut out = BTreeMap::new();
    while let Some(row) = rows.next()? {
        out.insert(row.get(0)?, row.get(1)?);
    }
    Ok(out)
}

/// A store and a raw connection over identical data (`keys` entries in one group).
fn loaded_pair(dir: &Path, file: bool, round: usize, keys: usize) -> AnyResult<(Store, Connection)> {
    let (store, raw) = if file {
        let store = file_store(&dir.join(format!("get-store-{round}.db")))?;
        let raw = raw_file(&dir.join(format!("get-raw-{round}.db")))?;
        (store, raw)
    } else {
        (memory_store()?, raw_memory()?)
    };
    raw.execute_batch("BEGIN")?;
    raw_sets(&raw, 0, keys)?;
    raw.execute_batch("COMMIT")?;
    for i in 0..keys {
        store.set(GROUP, &key(0, i), VALUE)?;
    }
    // Both sides read from a checkpointed database file, not from a long write-ahead log.
    store.sync()?;
    raw.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    Ok((store, raw))
}
