//! End-to-end tests of the `store` binary (SPEC.md §11 home rules, §12 CLI).
//!
//! Every test runs the real binary in its own temporary `--home`, one process per command, so
//! state only travels through the data directory. Workspace and journal commands do not exist
//! yet.

#[cfg(feature = "analytics")]
#[path = "cli/analytics.rs"]
mod analytics;
#[cfg(feature = "analytics")]
#[path = "cli/analytics_processes.rs"]
mod analytics_processes;
#[path = "cli/demo.rs"]
mod demo;
#[path = "cli/feed.rs"]
mod feed;
#[path = "cli/help.rs"]
mod help;
#[path = "cli/home.rs"]
mod home;
#[path = "cli/issue_graders.rs"]
mod issue_graders;
#[path = "cli/kv.rs"]
mod kv;
#[path = "cli/ns.rs"]
mod ns;
#[path = "cli/service_parity.rs"]
mod service_parity;
#[path = "cli/spec_forms.rs"]
mod spec_forms;
#[path = "cli/support.rs"]
mod support;
#[path = "cli/usage.rs"]
mod usage;
