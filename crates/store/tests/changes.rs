//! Integration tests of transactions (SPEC §4), events and subscriptions (SPEC §5.1–5.2) and the
//! durable change feed (SPEC §5.3), with the TTL and version rules they rely on (SPEC §3.4–3.6),
//! and of the KV layer shared by several OS processes, including processes killed mid-work.
//!
//! Every store is a real SQLite file in a temp dir (`common::file_store`), TTL uses `ManualClock`,
//! and the cross-process tests (`cross_process`, `multiprocess`) re-execute this test binary as the
//! other processes.

mod common;

#[path = "changes/concurrency.rs"]
mod concurrency;
#[path = "changes/cross_process.rs"]
mod cross_process;
#[path = "changes/events.rs"]
mod events;
#[path = "changes/feed.rs"]
mod feed;
#[path = "changes/multiprocess.rs"]
mod multiprocess;
#[path = "changes/support.rs"]
mod support;
#[path = "changes/transactions.rs"]
mod transactions;
