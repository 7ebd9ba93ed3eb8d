//! Integration tests of the analytics layer (SPEC §8, with §2's SQL-identifier and path rules and
//! the analytics actions of §11), run against real DuckDB files in temp dirs and in-memory
//! databases. No mocks: every test talks to DuckDB, and KV tests to a real SQLite store.

mod common;

#[cfg(unix)]
#[path = "analytics/environment.rs"]
mod environment;
#[path = "analytics/export.rs"]
mod export;
#[path = "analytics/find_table_names.rs"]
mod find_table_names;
#[path = "analytics/identifiers.rs"]
mod identifiers;
#[path = "analytics/import.rs"]
mod import;
#[path = "analytics/import_content.rs"]
mod import_content;
#[path = "analytics/json_map_columns.rs"]
mod json_map_columns;
#[path = "analytics/kv.rs"]
mod kv;
#[cfg(target_os = "linux")]
#[path = "analytics/kv_clock_calls.rs"]
mod kv_clock_calls;
#[path = "analytics/kv_scan_edges.rs"]
mod kv_scan_edges;
#[cfg(target_os = "linux")]
#[path = "analytics/kv_scan_paths.rs"]
mod kv_scan_paths;
#[path = "analytics/kv_scan_quota.rs"]
mod kv_scan_quota;
#[path = "analytics/late_json_values_and_holders.rs"]
mod late_json_values_and_holders;
#[path = "analytics/lock_cycles.rs"]
mod lock_cycles;
#[cfg(unix)]
#[path = "analytics/locks_and_targets.rs"]
mod locks_and_targets;
#[path = "analytics/open.rs"]
mod open;
#[cfg(target_os = "linux")]
#[path = "analytics/process_locks.rs"]
mod process_locks;
#[path = "analytics/processes_taking_turns.rs"]
mod processes_taking_turns;
#[path = "analytics/query.rs"]
mod query;
#[path = "analytics/scoring.rs"]
mod scoring;
#[path = "analytics/service.rs"]
mod service;
#[path = "analytics/service_fields.rs"]
mod service_fields;
#[path = "analytics/spec_surface.rs"]
mod spec_surface;
#[path = "analytics/split.rs"]
mod split;
#[cfg(target_os = "linux")]
#[path = "analytics/split_kill_points.rs"]
mod split_kill_points;
#[path = "analytics/split_many.rs"]
mod split_many;
#[cfg(unix)]
#[path = "analytics/split_mounts.rs"]
mod split_mounts;
#[path = "analytics/split_names.rs"]
mod split_names;
#[path = "analytics/split_writer_edges.rs"]
mod split_writer_edges;
#[cfg(target_os = "linux")]
#[path = "analytics/staging.rs"]
mod staging;
#[path = "analytics/support.rs"]
mod support;
#[path = "analytics/type_fidelity.rs"]
mod type_fidelity;
#[cfg(unix)]
#[path = "analytics/typed_open.rs"]
mod typed_open;
