//! Following the durable change feed: `store kv watch` and `store changes --follow`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde_json::{Value, json};
use store::Service;

use crate::kv::text;
use crate::output::{Output, visible};

/// How often the feed is polled when it has nothing new.
const POLL: Duration = Duration::from_millis(200);
/// How long Ctrl-C waits for the loop to stop on its own before it ends the process. The loop
/// notices the request within one poll step, unless a write to stdout blocks (a pipe nobody
/// reads, a paused terminal) or a read waits for a lock; it only reads the store, so ending
/// the process there loses nothing.
const STOP_GRACE: Duration = Duration::from_secs(1);
/// Changes read per call unless `--limit` says otherwise: `store/changes`'s own default.
pub const DEFAULT_LIMIT: u64 = 1000;

/// Which changes to print, and how to name their groups.
pub struct GroupFilter {
    /// `"ns:"` under `--ns`, else empty; stripped from printed group names.
    prefix: String,
    /// `None` = every group under the prefix.
    exact: Option<String>,
}

impl GroupFilter {
    pub fn new(ns: Option<&str>, group: &str) -> GroupFilter {
        let prefix = ns.map(|ns| format!("{ns}:")).unwrap_or_default();
        GroupFilter {
            exact: (group != "*").then(|| format!("{prefix}{group}")),
            prefix,
        }
    }

    /// The change with a local group name, if it matches.
    fn apply(&self, mut change: Value) -> Option<Value> {
        let group = change["group"].as_str()?.to_string();
        let matches = match &self.exact {
            Some(g) => group == *g,
            None => group.starts_with(&self.prefix),
        };
        if !matches {
            return None;
        }
        change["group"] = json!(&group[self.prefix.len()..]);
        Some(change)
    }
}

/// Prints matching changes after `since` (default: the newest, `last_seq` as SPEC §12 has it)
/// until Ctrl-C, then returns Ok, reading at most `batch_limit` changes per call.
pub fn follow(
    service: &Service,
    since: Option<u64>,
    batch_limit: u64,
    filter: &GroupFilter,
    out: &Output,
) -> store::Result<()> {
    let interrupt = arm_interrupt();
    // However `follow` returns, a Ctrl-C from now on must not end the process: the caller
    // closes the service (or reports an error) next.
    let _left = LeaveOnDrop(&interrupt);
    let stop = &interrupt.stop;
    let newest = service.call("store/last-seq", json!({}))?["seq"]
        .as_u64()
        .unwrap_or(0);
    let mut since = match since {
        // Past the newest change, the next ones could carry lower numbers and never show.
        Some(s) if s > newest => {
            return Err(store::Error::InvalidInput {
                op: "store follow",
                field: "since",
                reason: format!(
                    "--since {s} is past the newest change (seq {newest}): changes committed from \
                     now on may be numbered below {s} and would never show; pass at most {newest}, \
                     or leave --since out to follow new changes"
                ),
            });
        }
        Some(s) => s,
        None => newest,
    };
    if !out.json {
        out.note(format!(
            "following changes after seq {since} (SEQ, KIND, GROUP, KEY, VALUE, tab-separated); Ctrl-C to stop"
        ));
    }
    // While nothing new arrives, `since` stays put and every poll reports the same gap.
    let mut warned_for = None;
    while !stop.load(Ordering::SeqCst) {
        let batch = service.call("store/changes", json!({"since": since, "limit": batch_limit}))?;
        let changes = batch["changes"].as_array().cloned().unwrap_or_default();
        for change in changes.iter().cloned().filter_map(|c| filter.apply(c)) {
            print_change(out, &change);
        }
        if batch["gap"] == true && warned_for != Some(since) {
            // On stderr in both modes; with --json as a JSON object, so a consumer reading
            // changes on stdout can still learn that some were lost.
            let warning = format!("changes after seq {since} were pruned before they could be read");
            if out.json {
                out.note(
                    json!({"warning": {"kind": "gap", "after_seq": since, "message": warning}}).to_string(),
                );
            } else {
                out.note(format!("warning: {warning}"));
            }
            warned_for = Some(since);
        }
        since = batch["next_seq"].as_u64().unwrap_or(since);
        if (changes.len() as u64) < batch_limit {
            sleep_unless(stop, POLL);
        }
    }
    Ok(())
}

/// Installs the Ctrl-C handler of a following command (once per process; later calls return
/// the same one). `main` calls it before the service opens, which can wait for another
/// process's lock for the whole busy timeout: a Ctrl-C then still ends the command with exit 0
/// (SPEC §12) rather than by the signal. Without a handler Ctrl-C would kill the process; if
/// one cannot be installed that default stays.
pub fn arm_interrupt() -> Arc<Interrupt> {
    static INTERRUPT: OnceLock<Arc<Interrupt>> = OnceLock::new();
    Arc::clone(INTERRUPT.get_or_init(|| {
        let interrupt = Arc::new(Interrupt::default());
        let handler = Arc::clone(&interrupt);
        let _ = ctrlc::set_handler(move || handler.requested());
        interrupt
    }))
}

/// What the Ctrl-C handler and the following loop share.
#[derive(Default)]
pub struct Interrupt {
    /// Set by Ctrl-C: the loop ends at its next check.
    stop: AtomicBool,
    /// Set once `follow` has returned, so the handler leaves the rest (closing) to `main`.
    left: AtomicBool,
}

impl Interrupt {
    /// Runs on ctrlc's own thread for each SIGINT. Asks the loop to stop and, if it has not
    /// left `follow` within [`STOP_GRACE`], ends the process with exit 0 (SPEC §12: "until
    /// Ctrl-C (exit 0)"): the loop is then stuck in a write or a read, and since the handler
    /// replaced SIGINT's default action, nothing else would end it. Nothing is printed here:
    /// stderr may be blocked too.
    fn requested(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let step = Duration::from_millis(10);
        let mut waited = Duration::ZERO;
        while waited < STOP_GRACE {
            if self.left.load(Ordering::SeqCst) {
                return;
            }
            std::thread::sleep(step);
            waited += step;
        }
        if !self.left.load(Ordering::SeqCst) {
            // The main thread may hold stdout's lock in a blocked write: `exit` flushes stdout
            // only if it can take that lock without waiting, so this cannot hang there.
            std::process::exit(0);
        }
    }
}

/// Marks the loop as left when dropped, on every way out of `follow`.
struct LeaveOnDrop<'a>(&'a Interrupt);

impl Drop for LeaveOnDrop<'_> {
    fn drop(&mut self) {
        self.0.left.store(true, Ordering::SeqCst);
    }
}

/// Prints one batch of changes (no following).
pub fn print_batch(service: &Service, since: u64, limit: u64, out: &Output) -> store::Result<()> {
    let batch = service.call("store/changes", json!({"since": since, "limit": limit}))?;
    if out.json {
        out.line(batch.to_string());
        return Ok(());
    }
    let rows: Vec<Vec<String>> = batch["changes"]
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
        .iter()
        .map(row)
        .collect();
    out.table(&["SEQ", "KIND", "GROUP", "KEY", "VALUE"], &rows);
    if batch["gap"] == true {
        out.note(format!("warning: changes after seq {since} were already pruned"));
    }
    // The table has no cursor of its own: say where a full page continues, and that a
    // cursor past the newest change would miss later ones (they may be numbered below it).
    let next = batch["next_seq"].as_u64().unwrap_or(since);
    if out.quiet {
        return Ok(());
    }
    if rows.len() as u64 >= limit && limit > 0 {
        out.note(format!("more changes may follow: continue with --since {next}"));
    } else if rows.is_empty() {
        let newest = service.call("store/last-seq", json!({}))?["seq"]
            .as_u64()
            .unwrap_or(0);
        if since > newest {
            out.note(format!(
                "warning: --since {since} is past the newest change (seq {newest}); changes \
                 committed from now on may be numbered below it"
            ));
        }
    }
    Ok(())
}

fn row(change: &Value) -> Vec<String> {
    let opt = |v: &Value| if v.is_null() { String::new() } else { text(v) };
    vec![
        change["seq"].to_string(),
        text(&change["kind"]),
        text(&change["group"]),
        opt(&change["key"]),
        opt(&change["value"]),
    ]
}

fn print_change(out: &Output, change: &Value) {
    if out.json {
        out.line(change.to_string());
    } else {
        // Escaped like a table's cells: a newline or tab in the data cannot break the line
        // or its fields, and an escape sequence cannot reach the terminal.
        let fields: Vec<String> = row(change).iter().map(|f| visible(f)).collect();
        out.line(fields.join("\t"));
    }
}

fn sleep_unless(stop: &AtomicBool, total: Duration) {
    let step = Duration::from_millis(20);
    let mut slept = Duration::ZERO;
    while slept < total && !stop.load(Ordering::SeqCst) {
        std::thread::sleep(step);
        slept += step;
    }
}
