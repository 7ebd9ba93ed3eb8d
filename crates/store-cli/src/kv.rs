//! `store kv …`: the key-value commands, each one Service action.

use std::io::Read;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::{Map, Value, json};
use store::Service;

use crate::output::Output;

#[derive(Debug, Args)]
pub struct KvArgs {
    #[command(subcommand)]
    command: KvCommand,
}

#[derive(Debug, Subcommand)]
enum KvCommand {
    /// Print the raw value of a key.
    Get { group: String, key: String },
    /// Set a value ("-" reads it from stdin).
    Set {
        group: String,
        key: String,
        value: String,
        /// Expire after this long (e.g. 30s, 5m, 2h, 1day).
        #[arg(long, value_parser = parse_duration)]
        ttl: Option<Duration>,
        /// Only write if the current version is N.
        #[arg(long, value_name = "N", conflicts_with_all = ["if_absent", "ttl"])]
        if_version: Option<u64>,
        /// Only write if the key does not exist.
        #[arg(long, conflicts_with = "ttl")]
        if_absent: bool,
    },
    /// Add D (default 1) to an integer value.
    Incr {
        group: String,
        key: String,
        #[arg(allow_negative_numbers = true)]
        delta: Option<i64>,
    },
    /// Delete a key.
    Del { group: String, key: String },
    /// List a group's entries in key order.
    Ls {
        group: String,
        #[arg(long, default_value_t = 0)]
        offset: u64,
        #[arg(long, default_value_t = 100)]
        limit: u64,
    },
    /// List groups (optionally only those starting with PREFIX).
    Groups { prefix: Option<String> },
    /// Count live entries in a group, under a prefix, or everywhere.
    Count {
        group: Option<String>,
        #[arg(long, conflicts_with = "group")]
        prefix: Option<String>,
    },
    /// Delete every expired entry now.
    Purge,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("{e} (examples: 30s, 5m, 2h, 1day)"))
}

fn object(pairs: Vec<(&str, Value)>) -> Value {
    let map: Map<String, Value> = pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    Value::Object(map)
}

pub fn run(service: &Service, args: KvArgs, out: &Output) -> store::Result<()> {
    match args.command {
        KvCommand::Get { group, key } => {
            let r = service.call("store/get", json!({"group": group, "key": key}))?;
            out.result(&r, |o, r| o.line(r["value"].as_str().unwrap_or_default()));
        }
        KvCommand::Set {
            group,
            key,
            value,
            ttl,
            if_version,
            if_absent,
        } => {
            let value = if value == "-" { read_stdin()? } else { value };
            let mut pairs = vec![
                ("group", json!(group)),
                ("key", json!(key)),
                ("value", json!(value)),
            ];
            if let Some(ttl) = ttl {
                pairs.push((
                    "ttl_ms",
                    json!(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX)),
                ));
            }
            if if_absent {
                pairs.push(("if_version", Value::Null));
            } else if let Some(v) = if_version {
                pairs.push(("if_version", json!(v)));
            }
            let r = service.call("store/set", object(pairs))?;
            out.result(&r, |o, r| o.line(format!("ok: version {}", r["version"])));
        }
        KvCommand::Incr { group, key, delta } => {
            let r = service.call(
                "store/increment",
                json!({"group": group, "key": key, "delta": delta.unwrap_or(1)}),
            )?;
            out.result(&r, |o, r| o.line(r["value"].to_string()));
        }
        KvCommand::Del { group, key } => {
            let r = service.call("store/delete", json!({"group": group, "key": key}))?;
            out.result(&r, |o, r| {
                o.line(if r["deleted"] == true {
                    "deleted"
                } else {
                    "no live entry; nothing deleted"
                })
            });
        }
        KvCommand::Ls { group, offset, limit } => {
            let r = service.call(
                "store/list",
                json!({"group": group, "offset": offset, "limit": limit}),
            )?;
            out.result(&r, |o, r| {
                let rows: Vec<Vec<String>> = r["entries"]
                    .as_array()
                    .map(|a| a.as_slice())
                    .unwrap_or_default()
                    .iter()
                    .map(|e| vec![text(&e["key"]), text(&e["value"])])
                    .collect();
                o.table(&["KEY", "VALUE"], &rows);
            });
        }
        KvCommand::Groups { prefix } => {
            let r = service.call("store/groups", json!({ "prefix": prefix }))?;
            out.result(&r, |o, r| {
                for g in r["groups"].as_array().map(|a| a.as_slice()).unwrap_or_default() {
                    o.line(text(g));
                }
            });
        }
        KvCommand::Count { group, prefix } => {
            let r = service.call("store/count", json!({"group": group, "prefix": prefix}))?;
            out.result(&r, |o, r| o.line(r["count"].to_string()));
        }
        KvCommand::Purge => {
            let r = service.call("store/purge", json!({}))?;
            out.result(&r, |o, r| o.line(format!("purged {}", r["purged"])));
        }
    }
    Ok(())
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn read_stdin() -> store::Result<String> {
    let mut value = String::new();
    std::io::stdin()
        .read_to_string(&mut value)
        .map_err(|source| store::Error::Io {
            op: "store kv set",
            path: None,
            source,
        })?;
    Ok(value)
}
