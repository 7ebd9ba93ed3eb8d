//! End-to-end tests of the `store` binary (SPEC.md §11 home rules, §12 CLI).
//!
//! Every test runs the real binary in its own temporary `--home`, one process per command, so
//! state only travels through the data directory. Only the KV, namespace and change-feed
//! commands exist so far; analytics, workspace and journal commands are not tested here.

#[path = "cli/demo.rs"]
mod demo;
#[path = "cli/feed.rs"]
mod feed;
#[path = "cli/home.rs"]
mod home;
#[path = "cli/kv.rs"]
mod kv;
#[path = "cli/ns.rs"]
mod ns;
#[path = "cli/support.rs"]
mod support;
#[path = "cli/usage.rs"]
mod usage;
