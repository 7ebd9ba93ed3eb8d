//! Integration tests of scoped namespaces and quotas (SPEC §6), with the namespace rule of SPEC §2
//! and the scoped transaction scenarios of SPEC §4.
//!
//! Every store is a real SQLite file in a temp dir (`common::file_store`), TTL uses `ManualClock`
//! (no sleeping; only the child processes of `processes` run on the system clock), and usage
//! counters are checked against a ground truth computed with raw SQL over the `entries` table.

mod common;

#[path = "scope/concurrency.rs"]
mod concurrency;
#[path = "scope/counters.rs"]
mod counters;
#[path = "scope/events.rs"]
mod events;
#[path = "scope/isolation.rs"]
mod isolation;
#[path = "scope/model.rs"]
mod model;
#[path = "scope/namespaces.rs"]
mod namespaces;
#[path = "scope/processes.rs"]
mod processes;
#[path = "scope/quota_bytes.rs"]
mod quota_bytes;
#[path = "scope/quota_groups.rs"]
mod quota_groups;
#[path = "scope/quota_keys.rs"]
mod quota_keys;
#[path = "scope/read_invariants.rs"]
mod read_invariants;
#[path = "scope/support.rs"]
mod support;
#[path = "scope/transactions.rs"]
mod transactions;
#[path = "scope/usage.rs"]
mod usage;
