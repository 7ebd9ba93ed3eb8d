//! Integration tests of the KV store (SPEC §2 input validation and §3 KV store), run against real
//! SQLite files in temp dirs and in-memory stores. TTL behaviour uses `ManualClock`.

mod common;

#[path = "kv/checkpoint.rs"]
mod checkpoint;
#[path = "kv/clock_calls.rs"]
mod clock_calls;
#[path = "kv/close.rs"]
mod close;
#[path = "kv/concurrency.rs"]
mod concurrency;
#[path = "kv/faults.rs"]
mod faults;
#[path = "kv/open.rs"]
mod open;
#[path = "kv/ops.rs"]
mod ops;
#[path = "kv/purge_foreign_tables.rs"]
mod purge_foreign_tables;
#[path = "kv/read_time.rs"]
mod read_time;
#[path = "kv/render.rs"]
mod render;
#[path = "kv/schema.rs"]
mod schema;
#[path = "kv/service.rs"]
mod service;
#[path = "kv/service_parity.rs"]
mod service_parity;
#[path = "kv/ttl.rs"]
mod ttl;
#[path = "kv/validation.rs"]
mod validation;
#[path = "kv/versions.rs"]
mod versions;
