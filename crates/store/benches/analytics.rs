//! Criterion benchmarks of the analytics layer: scoring-table appends and split export.
//!
//! `cargo bench --workspace --profile dev --bench analytics`: the dev profile already builds
//! DuckDB optimised, and using it avoids a second (release) build of the engine. The ratios
//! against DuckDB's own COPY live in the comparison harness (`examples/analytics_vs_duckdb.rs`).

use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_main};
use store::analytics::{Analytics, CHECKPOINT_SCORES};

#[path = "../examples/harness/checkpoint_rows.rs"]
mod checkpoint_rows;
use checkpoint_rows::checkpoint_rows;

fn analytics(c: &mut Criterion) {
    let mut group = c.benchmark_group("analytics");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5))
        .warm_up_time(Duration::from_millis(500));

    let db = Analytics::in_memory().expect("open");
    db.ensure_scoring_tables().expect("scoring tables");
    let batch = checkpoint_rows(10_000);
    group.bench_function("append_checkpoint_scores/10k", |b| {
        b.iter_batched(
            || {
                db.exec_batch(&format!("DELETE FROM {CHECKPOINT_SCORES}"))
                    .expect("clear");
                batch.clone()
            },
            |rows| db.append_checkpoint_scores(rows).expect("append"),
            BatchSize::LargeInput,
        )
    });

    db.exec_batch(
        "CREATE TABLE big AS SELECT range AS id, 'model-' || (range % 100) AS model, random() AS score
         FROM range(200000)",
    )
    .expect("table");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut round = 0u64;
    group.bench_function("export_split_parquet/200k rows, 100 values", |b| {
        b.iter(|| {
            round += 1;
            let out = dir.path().join(format!("split-{round}"));
            let manifest = db.export_split_parquet("big", &out, "model").expect("split");
            let _ = std::fs::remove_dir_all(&out);
            manifest.total_rows
        })
    });
    group.finish();
}

#[allow(missing_docs)] // the macro defines an undocumented function
mod harness {
    criterion::criterion_group!(benches, super::analytics);
}
use harness::benches;
criterion_main!(benches);
