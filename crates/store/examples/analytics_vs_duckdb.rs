//! Comparison harness for the analytics layer against DuckDB doing the same work, in one process.
//!
//! Build it with `cargo build --workspace --examples --config 'profile.dev.package.store.opt-level=3'`
//! and run `$CARGO_TARGET_DIR/debug/examples/analytics_vs_duckdb [--quick]` (the README's
//! command: the dev profile already builds DuckDB with -O3, and `cargo run -p store` would
//! build the engine a second time under other features). Each workload alternates store and baseline over several rounds and compares
//! medians:
//! - `export_parquet` of a table vs DuckDB's own `COPY … TO … (FORMAT parquet)`;
//! - split export into 10 / 1,000 / 10,000 values vs `COPY … (PARTITION_BY …)` and vs a plain COPY,
//!   with each side's user and kernel CPU time;
//! - scoring-table ingestion from row structs vs a raw duckdb-rs Arrow appender of prepared
//!   record batches into the same table (primary key included);
//! - a large JSONL import, reporting the process's peak RSS (`--jsonl-gb N`, default 0.2);
//! - the per-file cost of a split: 10,000 one-row values, against creating the same directories
//!   and files with nothing in them (`files`, info only).
//!
//! `--only export|split|files|ingest|jsonl` runs one workload; `--only jsonl --jsonl-gb 2` measures the
//! import's peak RSS in a process that did nothing else first.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use duckdb::arrow::array::{ArrayRef, Float64Array, Int32Array, StringArray, TimestampMicrosecondArray};
use duckdb::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use duckdb::arrow::record_batch::RecordBatch;
use store::analytics::{Analytics, CHECKPOINT_SCORES, CheckpointScore};

#[path = "harness/checkpoint_rows.rs"]
mod checkpoint_rows;
#[path = "harness/rounds.rs"]
mod rounds;
use checkpoint_rows::checkpoint_rows;
use rounds::{measure, pair};

type AnyResult<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> AnyResult<()> {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let jsonl_gb: f64 = args
        .iter()
        .position(|a| a == "--jsonl-gb")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 0.05 } else { 0.2 });
    let (rounds, export_rows, ingest_rows): (usize, u64, usize) = if quick {
        (3, 500_000, 200_000)
    } else {
        (5, 5_000_000, 1_000_000)
    };
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let wanted = |section: &str| only.as_deref().is_none_or(|o| o == section);
    let dir = tempfile::tempdir()?;
    let db = Analytics::open(dir.path().join("bench.duckdb"))?;
    println!(
        "store vs DuckDB baseline, median of {rounds} rounds (ratio = store time / baseline time; lower is better)"
    );
    println!(
        "{:<58} {:>10} {:>10} {:>7} {:>8}",
        "workload", "store s", "base s", "ratio", "target"
    );

    if wanted("export") || wanted("split") {
        db.exec_batch(&format!(
            "CREATE OR REPLACE TABLE big AS SELECT range AS id, 'model-' || (range % 1000) AS m1000,
            'model-' || (range % 10) AS m10, 'model-' || (range % 10000) AS m10000,
            random() AS score, 'some text payload ' || range AS payload FROM range({export_rows})"
        ))?;
    }
    if wanted("export") {
        export(&db, dir.path(), rounds, export_rows)?;
    }
    if wanted("split") {
        split(&db, dir.path(), rounds)?;
    }
    if wanted("files") {
        files(&db, dir.path(), rounds)?;
    }
    if wanted("ingest") {
        ingest(&db, rounds, ingest_rows)?;
    }
    if wanted("jsonl") {
        jsonl(&db, dir.path(), jsonl_gb)?;
    }
    Ok(())
}

fn export(db: &Analytics, dir: &Path, rounds: usize, export_rows: u64) -> AnyResult<()> {
    let (s, b) = measure(rounds, |round| {
        let store = || {
            time(|| {
                db.export_parquet("big", dir.join(format!("s{round}.parquet")))
                    .map(drop)
            })
        };
        let base = || {
            time(|| {
                let path = dir.join(format!("b{round}.parquet"));
                db.exec_batch(&format!(
                    "COPY big TO '{}' (FORMAT parquet, COMPRESSION zstd)",
                    path.display()
                ))
            })
        };
        pair(round, store, base)
    })?;
    report(
        &format!("export_parquet of {export_rows} rows vs COPY TO parquet"),
        s,
        b,
        "<= 1.10",
    );
    Ok(())
}

fn split(db: &Analytics, dir: &Path, rounds: usize) -> AnyResult<()> {
    let mut plain = 0.0;
    for (label, column) in [("10", "m10"), ("1,000", "m1000"), ("10,000", "m10000")] {
        let (mut store_cpu, mut base_cpu) = (Vec::new(), Vec::new());
        let (s, b) = measure(rounds, |round| {
            let out = dir.join(format!("split-{column}-{round}"));
            let base_out = dir.join(format!("part-{column}-{round}"));
            let store = || {
                cpu_time(&mut store_cpu, || {
                    time(|| db.export_split_parquet("big", &out, column).map(drop))
                })
            };
            let base = || {
                cpu_time(&mut base_cpu, || {
                    time(|| {
                        db.exec_batch(&format!(
                            "COPY big TO '{}' (FORMAT parquet, COMPRESSION zstd, PARTITION_BY ({column}))",
                            base_out.display()
                        ))
                    })
                })
            };
            // Every round's output stays until the program ends (the temporary directory goes
            // then): on ext4 without a journal, each new inode skips every inode freed in the
            // last minutes, one block lookup each, so deleting a round's 10,000 files made the
            // next round's file creation cost seconds of kernel time on both sides.
            pair(round, store, base)
        })?;
        report(
            &format!("split export into {label} values vs COPY PARTITION_BY"),
            s,
            b,
            "<= 1.00",
        );
        for (side, cpu) in [("store", &store_cpu), ("PARTITION_BY", &base_cpu)] {
            if let Some(range) = cpu_range(cpu) {
                println!("  (info) {label} values, {side}: {range}");
            }
        }
        if plain == 0.0 {
            let (_, p) = measure(rounds, |round| {
                let path = dir.join(format!("plain{round}.parquet"));
                let t = time(|| {
                    db.exec_batch(&format!(
                        "COPY big TO '{}' (FORMAT parquet, COMPRESSION zstd)",
                        path.display()
                    ))
                })?;
                Ok((t, t))
            })?;
            plain = p;
        }
        report(
            &format!("  split export into {label} values vs plain COPY"),
            s,
            plain,
            "~1.5",
        );
    }

    Ok(())
}

/// What a split pays per value beyond the file system: 10,000 one-row values, so the data is
/// negligible, against making the same 10,000 directories with a one-byte file in each.
fn files(db: &Analytics, dir: &Path, rounds: usize) -> AnyResult<()> {
    const VALUES: usize = 10_000;
    db.exec_batch(&format!(
        "CREATE OR REPLACE TABLE one_row_values AS SELECT range AS id, 'model-' || range AS m,
         random() AS score, 'some text payload ' || range AS payload FROM range({VALUES})"
    ))?;
    let (s, b) = measure(rounds, |round| {
        let store = || {
            let out = dir.join(format!("files-split-{round}"));
            time(|| db.export_split_parquet("one_row_values", &out, "m").map(drop))
        };
        let bare = || {
            let out = dir.join(format!("files-bare-{round}"));
            time(|| -> std::io::Result<()> {
                for i in 0..VALUES {
                    let partition = out.join(format!("m=model-{i}"));
                    std::fs::create_dir_all(&partition)?;
                    std::fs::write(partition.join("data.parquet"), b"x")?;
                }
                Ok(())
            })
        };
        pair(round, store, bare)
    })?;
    report(
        &format!("split of {VALUES} one-row values vs bare mkdir + file"),
        s,
        b,
        "info",
    );
    println!(
        "  (info) per value: split {:.0} µs, bare directory and file {:.0} µs",
        s / VALUES as f64 * 1e6,
        b / VALUES as f64 * 1e6
    );
    Ok(())
}

fn ingest(db: &Analytics, rounds: usize, ingest_rows: usize) -> AnyResult<()> {
    db.ensure_scoring_tables()?;
    let rows = checkpoint_rows(ingest_rows);
    let batch = raw_batch(&rows)?;
    let clear = || db.exec_batch(&format!("DELETE FROM {CHECKPOINT_SCORES}"));
    let (s, b) = measure(rounds, |round| {
        let store = || {
            clear()?;
            let owned = rows.clone(); // the API takes rows by value; cloning is not part of ingestion
            time(|| db.append_checkpoint_scores(owned).map(drop))
        };
        let base = || {
            clear()?;
            time(|| raw_append(db, batch.clone()))
        };
        pair(round, store, base)
    })?;
    report(
        &format!(
            "ingest {ingest_rows} checkpoint rows vs raw Arrow appender ({:.2} M rows/s)",
            ingest_rows as f64 / s / 1e6
        ),
        s,
        b,
        "<= 1.11",
    );
    Ok(())
}

fn jsonl(db: &Analytics, dir: &Path, jsonl_gb: f64) -> AnyResult<()> {
    let jsonl = dir.join("big.jsonl");
    let bytes = write_jsonl(&jsonl, (jsonl_gb * 1e9) as u64)?;
    let rss_before = peak_rss_mb();
    let mut rows = 0;
    let t = time(|| db.import_jsonl("imported", &jsonl).map(|n| rows = n))?;
    println!(
        "import of a {:.2} GB JSONL file ({rows} rows): {t:.1} s, peak RSS {} MB (before: {} MB; target < 1500 MB)",
        bytes as f64 / 1e9,
        peak_rss_mb(),
        rss_before
    );
    Ok(())
}

fn report(name: &str, store: f64, base: f64, target: &str) {
    println!(
        "{name:<58} {store:>10.3} {base:>10.3} {:>7.2} {target:>8}",
        store / base
    );
}

fn time<E: Into<Box<dyn std::error::Error>>>(f: impl FnOnce() -> Result<(), E>) -> AnyResult<f64> {
    let start = Instant::now();
    f().map_err(Into::into)?;
    Ok(start.elapsed().as_secs_f64())
}

/// (user, kernel) CPU seconds this process has used so far, from `/proc/self/stat` (Linux);
/// `None` elsewhere.
fn process_cpu() -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i)?.parse::<f64>().ok();
    // Linux reports these in USER_HZ, which is 100 on every architecture it supports.
    Some((ticks(11)? / 100.0, ticks(12)? / 100.0))
}

/// Runs `f`, recording the (user, kernel) CPU seconds it used into `into`.
fn cpu_time(into: &mut Vec<(f64, f64)>, f: impl FnOnce() -> AnyResult<f64>) -> AnyResult<f64> {
    let before = process_cpu();
    let wall = f()?;
    if let (Some(b), Some(a)) = (before, process_cpu()) {
        into.push((a.0 - b.0, a.1 - b.1));
    }
    Ok(wall)
}

/// "user a–b s, kernel c–d s" over the recorded rounds.
fn cpu_range(cpu: &[(f64, f64)]) -> Option<String> {
    let span = |pick: fn(&(f64, f64)) -> f64| {
        let lo = cpu.iter().map(pick).fold(f64::INFINITY, f64::min);
        let hi = cpu.iter().map(pick).fold(f64::NEG_INFINITY, f64::max);
        format!("{lo:.2}–{hi:.2} s")
    };
    (!cpu.is_empty()).then(|| format!("CPU user {}, kernel {}", span(|c| c.0), span(|c| c.1)))
}

/// The raw baseline's input: the same rows, already columnar.
fn raw_batch(rows: &[CheckpointScore]) -> AnyResult<RecordBatch> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_micros() as i64;
    let schema = Arc::new(Schema::new(vec![
        Field::new("model", DataType::Utf8, true),
        Field::new("run_id", DataType::Utf8, true),
        Field::new("label", DataType::Utf8, true),
        Field::new("iteration", DataType::Int32, true),
        Field::new("correct", DataType::Int32, true),
        Field::new("total", DataType::Int32, true),
        Field::new("accuracy", DataType::Float64, true),
        Field::new(
            "scored_at",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            true,
        ),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.model.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.run_id.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.label.as_str()),
        )),
        Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.iteration))),
        Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.correct))),
        Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.total))),
        Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.accuracy))),
        Arc::new(TimestampMicrosecondArray::from_iter_values(
            rows.iter().map(|_| now),
        )),
    ];
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// A raw duckdb-rs Arrow appender writing the batch into the table in one transaction.
fn raw_append(db: &Analytics, batch: RecordBatch) -> AnyResult<()> {
    db.exec_batch("BEGIN TRANSACTION")?;
    let result = db.with_connection(|conn| {
        let mut appender = conn.appender(CHECKPOINT_SCORES)?;
        appender.append_record_batch(batch)?;
        appender.flush()
    });
    db.exec_batch(if result.is_ok() { "COMMIT" } else { "ROLLBACK" })?;
    Ok(result?)
}

fn write_jsonl(path: &std::path::Path, target_bytes: u64) -> AnyResult<u64> {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut written = 0u64;
    let mut i = 0u64;
    while written < target_bytes {
        let line = format!(
            "{{\"id\":{i},\"model\":\"model-{}\",\"score\":{},\"text\":\"payload number {i} with some filler text to make rows realistic\"}}\n",
            i % 100,
            (i % 1000) as f64 / 7.0
        );
        out.write_all(line.as_bytes())?;
        written += line.len() as u64;
        i += 1;
    }
    out.flush()?;
    Ok(written)
}

/// Peak resident set size of this process, in MB (Linux `VmHWM`; 0 elsewhere).
fn peak_rss_mb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb / 1024)
}
