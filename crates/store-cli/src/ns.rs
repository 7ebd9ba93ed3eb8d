//! `store ns usage NS`: a namespace's live keys, groups and bytes, against a quota if given.

use clap::{Args, Subcommand};
use serde_json::json;
use store::Service;

use crate::kv::QuotaArgs;
use crate::output::Output;

#[derive(Debug, Args)]
pub struct NsArgs {
    #[command(subcommand)]
    command: NsCommand,
}

#[derive(Debug, Subcommand)]
enum NsCommand {
    /// Print live keys, groups and bytes of a namespace. Quota flags fill the LIMIT column
    /// (`unlimited` without them); --json prints the store/scoped/usage result alone.
    Usage {
        /// The namespace (letters, digits and '-').
        namespace: String,
        #[command(flatten)]
        quota: QuotaArgs,
    },
}

pub fn run(service: &Service, args: NsArgs, out: &Output) -> store::Result<()> {
    match args.command {
        NsCommand::Usage { namespace, quota } => {
            let usage = service.call("store/scoped/usage", json!({ "namespace": namespace }))?;
            let quota = quota.to_json();
            // `--json` prints the action's own result (§12); the quota only shapes the table.
            out.result(&usage, |o, _| {
                o.line(format!("namespace {namespace}"));
                let rows: Vec<Vec<String>> = ["keys", "groups", "bytes"]
                    .iter()
                    .map(|field| {
                        let used = usage[*field].as_u64().unwrap_or(0);
                        let max = quota
                            .as_ref()
                            .and_then(|q| q[format!("max_{field}")].as_u64())
                            .unwrap_or(0);
                        vec![field.to_string(), used.to_string(), limit_text(used, max)]
                    })
                    .collect();
                o.table(&["", "USED", "LIMIT"], &rows);
            });
        }
    }
    Ok(())
}

fn limit_text(used: u64, max: u64) -> String {
    if max == 0 {
        return "unlimited".into();
    }
    // Rounded down: 999 of 1000 is 99%, so "100%" only ever means the limit is reached.
    let pct = u128::from(used) * 100 / u128::from(max);
    format!("{max} ({pct}% used)")
}
