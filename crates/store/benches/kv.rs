//! Criterion benchmarks of the KV layer: set, get, get_all, file-backed set, render.
//!
//! `cargo bench -p store --no-default-features --bench kv` (SQLite-only: no release build of
//! DuckDB). The ratios against raw rusqlite live in the comparison
//! harness (`cargo run --release -p store --no-default-features --example kv_vs_rusqlite`).

use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_main};
use store::{Kv, Store, StoreConfig};

fn quiet(config: StoreConfig) -> StoreConfig {
    config.with_purge_interval(Duration::ZERO)
}

fn loaded(store: &Store, keys: usize) {
    for i in 0..keys {
        store.set("bench", &format!("key-{i:06}"), "value").expect("set");
    }
}

fn kv(c: &mut Criterion) {
    let mut group = c.benchmark_group("kv");
    group
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_millis(500));

    let memory = Store::open_with(quiet(StoreConfig::memory())).expect("open");
    let mut i = 0u64;
    group.bench_function("set/memory", |b| {
        b.iter(|| {
            i += 1;
            memory
                .set("bench", &format!("k{}", i % 10_000), "value")
                .expect("set")
        })
    });

    let dir = tempfile::tempdir().expect("tempdir");
    let file = Store::open_with(quiet(StoreConfig::file(dir.path().join("bench.db")))).expect("open");
    group.bench_function("set/file", |b| {
        b.iter(|| {
            i += 1;
            file.set("bench", &format!("k{}", i % 10_000), "value")
                .expect("set")
        })
    });

    loaded(&memory, 10_000);
    group.bench_function("get/memory", |b| {
        b.iter(|| {
            i += 1;
            memory
                .get("bench", &format!("key-{:06}", i % 10_000))
                .expect("get")
        })
    });
    group.bench_function("get_all/10k", |b| {
        b.iter(|| memory.get_all("bench").expect("get_all"))
    });

    let small = Store::open_with(quiet(StoreConfig::memory())).expect("open");
    small.set("cfg", "pool", "eu-west").expect("set");
    small.set("cfg", "wallet", "0xabc").expect("set");
    group.bench_function("render", |b| {
        b.iter(|| {
            small
                .render(r#"{"pool":"{{ pool }}","wallet":"{{ wallet }}"}"#, "cfg")
                .expect("render")
        })
    });

    group.bench_function("set_with_ttl+purge/memory", |b| {
        b.iter_batched(
            || (),
            |()| {
                small.set_with_ttl("ttl", "k", "v", Duration::ZERO).expect("set");
                small.purge_expired().expect("purge")
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

#[allow(missing_docs)] // the macro defines an undocumented function
mod harness {
    criterion::criterion_group!(benches, super::kv);
}
use harness::benches;
criterion_main!(benches);
