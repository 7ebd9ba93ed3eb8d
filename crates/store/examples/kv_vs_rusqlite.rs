//! Comparison harness: the store against raw rusqlite doing the same work, in one process.
//!
//! Run with `cargo run --release -p store --no-default-features --example kv_vs_rusqlite` (add `-- --quick` for a
//! short run; `--only core|feed|scoped|wal` for one section). Both sides use the same schema (the raw side opens a file the store created),
//! the same pragmas (WAL, synchronous NORMAL, busy timeout, statement cache) and the same SQL
//! statements; the raw side skips only what the store adds (validation, versions, locking,
//! liveness, events, quota checks). Store and raw runs alternate in order over several rounds
//! and the median throughput of each side is compared, so machine noise hits both alike.
//! Workloads whose baseline is the store itself (concurrent reads, scoped sets) say so.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension, params};
use store::{Kv, Quota, ScopedConfig, Store, StoreConfig};

#[path = "harness/rounds.rs"]
mod rounds;
use rounds::{measure, pair};

const GROUP: &str = "bench";
const VALUE: &str = "a-typical-value-of-some-thirty-two-bytes";

type AnyResult<T> = Result<T, Box<dyn std::error::Error>>;

struct Scale {
    rounds: usize,
    mem_sets: usize,
    file_sets: usize,
    gets: usize,
    keys: usize,
    get_all_reps: usize,
    txn_sets: usize,
    read_window: Duration,
    big_namespace: usize,
}

struct Harness {
    scale: Scale,
    dir: tempfile::TempDir,
    failures: usize,
    files: usize,
}

fn main() -> AnyResult<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let scale = if quick {
        Scale {
            rounds: 3,
            mem_sets: 20_000,
            file_sets: 3_000,
            gets: 20_000,
            keys: 10_000,
            get_all_reps: 5,
            txn_sets: 20_000,
            read_window: Duration::from_millis(200),
            big_namespace: 20_000,
        }
    } else {
        Scale {
            rounds: 7,
            mem_sets: 100_000,
            file_sets: 20_000,
            gets: 200_000,
            keys: 10_000,
            get_all_reps: 30,
            txn_sets: 100_000,
            read_window: Duration::from_millis(500),
            big_namespace: 100_000,
        }
    };
    let mut h = Harness {
        scale,
        dir: tempfile::tempdir()?,
        failures: 0,
        files: 0,
    };
    println!(
        "store vs baseline, median of {} rounds (ratio = store / baseline)",
        h.scale.rounds
    );
    println!(
        "{:<58} {:>12} {:>12} {:>6} {:>7}",
        "workload", "store op/s", "base op/s", "ratio", "target"
    );

    // `--only core|feed|scoped|wal` runs one section.
    let only = std::env::args().skip_while(|a| a != "--only").nth(1);
    let wanted = |section: &str| only.as_deref().is_none_or(|o| o == section);
    if wanted("core") {
        println!("-- KV core (change feed off) vs raw rusqlite");
        h.kv_core()?;
    }
    if wanted("feed") {
        println!("-- transactions and change feed vs raw rusqlite");
        h.feed()?;
    }
    if wanted("scoped") {
        println!("-- scoped namespaces with quotas (baseline: the unscoped store)");
        h.scoped()?;
    }

    if wanted("wal") {
        println!(
            "-- write latency of autocommit sets on a file: SQLite's inline checkpoints (the default) \
             vs a background thread (checkpoint_pages = 1000)"
        );
        h.checkpoint_latency(if quick { 10_000 } else { 50_000 })?;
    }

    if h.failures > 0 {
        println!("{} workload(s) below target", h.failures);
    }
    Ok(())
}

impl Harness {
    fn report(&mut self, name: &str, target: f64, (store, base): (f64, f64)) {
        let ratio = store / base;
        let verdict = if ratio >= target { "" } else { "  BELOW TARGET" };
        if ratio < target {
            self.failures += 1;
        }
        println!("{name:<58} {store:>12.0} {base:>12.0} {ratio:>6.2} {target:>7.2}{verdict}");
    }

    fn path(&mut self, label: &str) -> PathBuf {
        self.files += 1;
        self.dir.path().join(format!("{label}-{}.db", self.files))
    }

    /// One store per setting, `n` autocommit sets each: the latency distribution, the
    /// throughput and the largest write-ahead log seen (sampled every 1,000 sets). Not a ratio
    /// with a target: the checkpoint paragraph of docs/guarantees.md quotes these figures.
    fn checkpoint_latency(&mut self, n: usize) -> AnyResult<()> {
        for (label, pages) in [
            ("inline checkpoints (default)", 0),
            ("checkpoint_pages = 1000", 1000),
        ] {
            let path = self.path("wal");
            let store = Store::open_with(
                StoreConfig::file(&path)
                    .with_purge_interval(Duration::ZERO)
                    .with_checkpoint_pages(pages),
            )?;
            let wal = path.with_extension("db-wal");
            let wal_len = || std::fs::metadata(&wal).map_or(0, |m| m.len());
            let mut latencies = Vec::with_capacity(n);
            let mut largest_wal = 0;
            let started = Instant::now();
            for i in 0..n {
                let one = Instant::now();
                store.set(GROUP, &format!("key-{i}"), VALUE)?;
                latencies.push(one.elapsed());
                if i % 1000 == 0 {
                    largest_wal = largest_wal.max(wal_len());
                }
            }
            let elapsed = started.elapsed();
            largest_wal = largest_wal.max(wal_len());
            store.close()?;
            latencies.sort();
            let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
            println!(
                "{label:<30} {:>8.0} op/s  median {:>9.1?}  p99 {:>9.1?}  p99.9 {:>9.1?}  max {:>9.1?}  largest WAL {:.1} MB",
                n as f64 / elapsed.as_secs_f64(),
                at(0.5),
                at(0.99),
                at(0.999),
                latencies[latencies.len() - 1],
                largest_wal as f64 / 1e6,
            );
        }
        Ok(())
    }

    fn kv_core(&mut self) -> AnyResult<()> {
        let (rounds, n) = (self.scale.rounds, self.scale.mem_sets);
        let r = measure(rounds, |round| {
            let (store, raw) = (memory_store(false)?, raw_memory()?);
            pair(
                round,
                || time_ops(n, || store_sets(&store, round, n)),
                || time_ops(n, || raw_sets(&raw, round, n, false)),
            )
        })?;
        self.report("set, in memory (autocommit)", 0.9, r);

        let n = self.scale.file_sets;
        let r = measure(rounds, |round| {
            let (store, raw) = (
                file_store(&self.path("set"), false)?,
                raw_file(&self.path("raw"))?,
            );
            pair(
                round,
                || time_ops(n, || store_sets(&store, round, n)),
                || time_ops(n, || raw_sets(&raw, round, n, false)),
            )
        })?;
        self.report("set, file WAL NORMAL (autocommit)", 0.9, r);

        for (label, file) in [("get, in memory", false), ("get, file WAL", true)] {
            let (n, keys) = (self.scale.gets, self.scale.keys);
            let r = measure(rounds, |round| {
                let (store, raw) = self.loaded_pair(file, keys)?;
                pair(
                    round,
                    || {
                        time_ops(n, || {
                            for i in 0..n {
                                std::hint::black_box(store.get(GROUP, &key(0, (i * 7919) % keys))?);
                            }
                            Ok(())
                        })
                    },
                    || {
                        time_ops(n, || {
                            let now = now_ms();
                            for i in 0..n {
                                std::hint::black_box(raw_get(&raw, &key(0, (i * 7919) % keys), now)?);
                            }
                            Ok(())
                        })
                    },
                )
            })?;
            self.report(label, 0.9, r);
        }

        for (label, file) in [
            ("get_all of 10k keys, in memory", false),
            ("get_all of 10k keys, file WAL", true),
        ] {
            let (reps, keys) = (self.scale.get_all_reps, self.scale.keys);
            let r = measure(rounds, |round| {
                let (store, raw) = self.loaded_pair(file, keys)?;
                pair(
                    round,
                    || {
                        time_ops(reps, || {
                            (0..reps).try_for_each(|_| store.get_all(GROUP).map(drop).map_err(Into::into))
                        })
                    },
                    || {
                        time_ops(reps, || {
                            (0..reps).try_for_each(|_| raw_get_all(&raw, now_ms()).map(drop))
                        })
                    },
                )
            })?;
            self.report(label, 0.8, r);
        }
        Ok(())
    }

    fn feed(&mut self) -> AnyResult<()> {
        let (rounds, n) = (self.scale.rounds, self.scale.txn_sets);
        let r = measure(rounds, |round| {
            let (store, raw) = (file_store(&self.path("txn"), true)?, raw_file(&self.path("raw"))?);
            pair(
                round,
                || time_ops(n, || store_txn_sets(&store, round, n)),
                || time_ops(n, || raw_txn_sets(&raw, round, n, true)),
            )
        })?;
        self.report("sets in one transaction, feed on vs raw upsert+append", 0.9, r);

        let r = measure(rounds, |round| {
            let (store, raw) = (
                file_store(&self.path("txn"), false)?,
                raw_file(&self.path("raw"))?,
            );
            pair(
                round,
                || time_ops(n, || store_txn_sets(&store, round, n)),
                || time_ops(n, || raw_txn_sets(&raw, round, n, false)),
            )
        })?;
        self.report("sets in one transaction, feed off vs raw bare upsert", 0.85, r);

        let n = self.scale.file_sets;
        let r = measure(rounds, |round| {
            let (store, raw) = (
                file_store(&self.path("auto"), true)?,
                raw_file(&self.path("raw"))?,
            );
            // Events are always on; this measures them with no subscriber registered.
            pair(
                round,
                || time_ops(n, || store_sets(&store, round, n)),
                || time_ops(n, || raw_sets(&raw, round, n, false)),
            )
        })?;
        self.report("set, file autocommit, feed on vs raw bare upsert", 0.8, r);
        if std::env::var_os("EXPLAIN").is_some() {
            let r = measure(rounds, |round| {
                let (a, b) = (raw_file(&self.path("rawfeed"))?, raw_file(&self.path("raw"))?);
                pair(
                    round,
                    || {
                        time_ops(n, || {
                            for i in 0..n {
                                a.execute_batch("BEGIN IMMEDIATE")?;
                                raw_set(&a, round, i, true)?;
                                a.execute_batch("COMMIT")?;
                            }
                            Ok(())
                        })
                    },
                    || time_ops(n, || raw_sets(&b, round, n, false)),
                )
            })?;
            self.report("  (info) raw upsert+append per commit vs raw bare upsert", 0.0, r);
        }

        let (window, keys) = (self.scale.read_window, self.scale.keys);
        // Writer rate (sets/s, `None` = flat out) and how much each reader memory-maps
        // (`None` = the default, `DEFAULT_READER_MMAP_BYTES`).
        let cases: [(&str, Option<u32>, Option<u64>, f64); 5] = [
            (
                "get with a writer at 1,000 sets/s vs without (file)",
                Some(1_000),
                None,
                0.7,
            ),
            ("  (info) same, readers without mmap", Some(1_000), Some(0), 0.0),
            ("  (info) writer at 10,000 sets/s", Some(10_000), None, 0.0),
            ("  (info) writer flat out", None, None, 0.0),
            (
                "  (info) writer flat out, readers without mmap",
                None,
                Some(0),
                0.0,
            ),
        ];
        for (label, rate, mmap, target) in cases {
            let r = measure(rounds, |round| {
                let mut config = StoreConfig::file(self.path("concurrent"))
                    .with_purge_interval(Duration::ZERO)
                    .with_change_feed(false);
                if let Some(bytes) = mmap {
                    config = config.with_reader_mmap_bytes(bytes);
                }
                let store = Store::open_with(config)?;
                store_txn_sets(&store, 0, keys)?;
                // Reads come from a checkpointed database file, not from a long write-ahead log.
                store.sync()?;
                let with_writer = || -> AnyResult<f64> {
                    let stop = Arc::new(AtomicBool::new(false));
                    let writer = {
                        let (store, stop) = (store.clone(), Arc::clone(&stop));
                        std::thread::spawn(move || write_until(&store, &stop, rate))
                    };
                    let reads = reads_for(&store, window, keys);
                    stop.store(true, Ordering::Relaxed);
                    writer.join().map_err(|_| "writer thread panicked")??;
                    reads
                };
                pair(round, with_writer, || reads_for(&store, window, keys))
            })?;
            self.report(label, target, r);
        }
        Ok(())
    }

    fn scoped(&mut self) -> AnyResult<()> {
        let quota = Quota {
            max_keys: u64::MAX / 2,
            max_groups: u64::MAX / 2,
            max_bytes: u64::MAX / 2,
        };
        let rounds = self.scale.rounds;
        for (label, file) in [
            ("scoped set, 3 quotas vs unscoped set, in memory", false),
            ("scoped set, 3 quotas vs unscoped set, file", true),
        ] {
            let n = if file {
                self.scale.file_sets
            } else {
                self.scale.mem_sets
            };
            let r = measure(rounds, |round| {
                let store = if file {
                    file_store(&self.path("scoped"), true)?
                } else {
                    memory_store(false)?
                };
                let scoped = store.scoped_with(ScopedConfig::new("tenant").with_quota(quota))?;
                pair(
                    round,
                    || time_ops(n, || store_sets(&scoped, round, n)),
                    || time_ops(n, || store_sets(&store, round, n)),
                )
            })?;
            self.report(label, 0.8, r);
        }

        if std::env::var_os("EXPLAIN").is_some() {
            let n = self.scale.mem_sets;
            let r = measure(rounds, |round| {
                let store = memory_store(false)?;
                let scoped = store.scoped("tenant")?;
                pair(
                    round,
                    || time_ops(n, || store_sets(&scoped, round, n)),
                    || time_ops(n, || store_sets(&store, round, n)),
                )
            })?;
            self.report("  (info) scoped set without quota vs unscoped, in memory", 0.0, r);
        }
        let (n, big) = (self.scale.mem_sets, self.scale.big_namespace);
        let r = measure(rounds, |round| {
            let store = memory_store(false)?;
            let small_ns = store.scoped_with(ScopedConfig::new("small").with_quota(quota))?;
            let big_ns = store.scoped_with(ScopedConfig::new("big").with_quota(quota))?;
            fill(&small_ns, 1_000)?;
            fill(&big_ns, big)?;
            pair(
                round,
                || time_ops(n, || store_sets(&big_ns, round + 1, n)),
                || time_ops(n, || store_sets(&small_ns, round + 1, n)),
            )
        })?;
        self.report(
            &format!("scoped set into a {big}-key namespace vs a 1k-key one"),
            0.9,
            r,
        );

        // Expired rows the purge has not removed yet must not make checks count the namespace:
        // both namespaces hold `big` live keys; one also holds 1,000 expired ones in the same
        // group (the purge thread is off).
        let r = measure(rounds, |round| {
            let store = memory_store(false)?;
            let aged = store.scoped_with(ScopedConfig::new("aged").with_quota(quota))?;
            let fresh = store.scoped_with(ScopedConfig::new("fresh").with_quota(quota))?;
            fill(&aged, big)?;
            fill(&fresh, big)?;
            for i in 0..1_000 {
                aged.set_with_ttl("fill", &format!("t{i:08}"), VALUE, Duration::from_millis(1))?;
            }
            std::thread::sleep(Duration::from_millis(5));
            pair(
                round,
                || time_ops(n, || store_sets(&aged, round + 1, n)),
                || time_ops(n, || store_sets(&fresh, round + 1, n)),
            )
        })?;
        self.report("scoped set beside 1k expired unpurged keys vs none", 0.9, r);
        Ok(())
    }

    /// A store and a raw connection over identical data (`keys` entries in one group).
    fn loaded_pair(&mut self, file: bool, keys: usize) -> AnyResult<(Store, Connection)> {
        let (store, raw) = if file {
            (
                file_store(&self.path("get"), false)?,
                raw_file(&self.path("raw"))?,
            )
        } else {
            (memory_store(false)?, raw_memory()?)
        };
        raw_txn_sets(&raw, 0, keys, false)?;
        store_txn_sets(&store, 0, keys)?;
        // Both sides read from a checkpointed database file, not from a long write-ahead log.
        store.sync()?;
        raw.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok((store, raw))
    }
}

fn key(round: usize, i: usize) -> String {
    format!("key-{round}-{i:08}")
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn time_ops(ops: usize, f: impl FnOnce() -> AnyResult<()>) -> AnyResult<f64> {
    let start = Instant::now();
    f()?;
    Ok(ops as f64 / start.elapsed().max(Duration::from_nanos(1)).as_secs_f64())
}

/// Autocommit sets until `stop`, paced to `rate` sets per second (`None`: flat out).
fn write_until(store: &Store, stop: &AtomicBool, rate: Option<u32>) -> store::Result<u64> {
    let start = Instant::now();
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        store.set("writes", &format!("w{}", i % 1000), VALUE)?;
        i += 1;
        if let Some(rate) = rate {
            let due = start + Duration::from_secs_f64(i as f64 / f64::from(rate));
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
    }
    Ok(i)
}

fn reads_for(store: &Store, window: Duration, keys: usize) -> AnyResult<f64> {
    let start = Instant::now();
    let mut n = 0usize;
    while start.elapsed() < window {
        for _ in 0..100 {
            std::hint::black_box(store.get(GROUP, &key(0, (n * 7919) % keys))?);
            n += 1;
        }
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

fn memory_store(feed: bool) -> AnyResult<Store> {
    Ok(Store::open_with(
        StoreConfig::memory()
            .with_purge_interval(Duration::ZERO)
            .with_change_feed(feed),
    )?)
}

fn file_store(path: &Path, feed: bool) -> AnyResult<Store> {
    Ok(Store::open_with(
        StoreConfig::file(path)
            .with_purge_interval(Duration::ZERO)
            .with_change_feed(feed),
    )?)
}

fn store_sets(kv: &impl Kv, round: usize, n: usize) -> AnyResult<()> {
    for i in 0..n {
        kv.set(GROUP, &key(round, i), VALUE)?;
    }
    Ok(())
}

fn store_txn_sets(store: &Store, round: usize, n: usize) -> AnyResult<()> {
    store.transaction(|tx| {
        for i in 0..n {
            tx.set(GROUP, &key(round, i), VALUE)?;
        }
        Ok(())
    })?;
    Ok(())
}

fn fill(kv: &impl Kv, n: usize) -> AnyResult<()> {
    for i in 0..n {
        kv.set("fill", &format!("f{i:08}"), VALUE)?;
    }
    Ok(())
}

/// The store's schema, as the store creates it: open a store on a file, then copy its DDL.
fn copy_schema(conn: &Connection) -> AnyResult<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("schema.db");
    Store::open_with(StoreConfig::file(&path).with_purge_interval(Duration::ZERO))?.close()?;
    let source = Connection::open(&path)?;
    let mut stmt = source.prepare(
        "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' ORDER BY type = 'trigger'",
    )?;
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
    copy_schema(&conn)?;
    Ok(conn)
}

fn raw_file(path: &Path) -> AnyResult<Connection> {
    // Let the store create the file so the schema is byte-for-byte the store's.
    Store::open_with(StoreConfig::file(path).with_purge_interval(Duration::ZERO))?.close()?;
    let conn = Connection::open(path)?;
    conn.set_prepared_statement_cache_capacity(128);
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
    conn.pragma_update(None, "synchronous", 1)?;
    Ok(conn)
}

/// Autocommit upserts (plus a change-row append each when `feed`).
fn raw_sets(conn: &Connection, round: usize, n: usize, feed: bool) -> AnyResult<()> {
    for i in 0..n {
        raw_set(conn, round, i, feed)?;
    }
    Ok(())
}

fn raw_set(conn: &Connection, round: usize, i: usize, feed: bool) -> AnyResult<()> {
    let seq = i as i64 + 1;
    let key = key(round, i);
    conn.prepare_cached(store::kv::UPSERT_SQL)?
        .execute(params![GROUP, key, VALUE, None::<i64>, seq])?;
    if feed {
        conn.prepare_cached(store::kv::INSERT_CHANGE_SQL)?
            .execute(params![
                seq + (round as i64) * 1_000_000_000,
                now_ms(),
                "set",
                GROUP,
                key,
                VALUE,
                None::<i64>
            ])?;
    }
    Ok(())
}

fn raw_txn_sets(conn: &Connection, round: usize, n: usize, feed: bool) -> AnyResult<()> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    for i in 0..n {
        raw_set(conn, round, i, feed)?;
    }
    conn.execute_batch("COMMIT")?;
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
