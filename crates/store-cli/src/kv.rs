//! `store kv …`: the key-value commands, each one Service action.

use std::io::Read;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::{Map, Value, json};
use store::Service;

use crate::output::{Output, visible};

#[derive(Debug, Args)]
pub struct KvArgs {
    /// Work inside this namespace (groups are stored as NS:group).
    #[arg(long, global = true, value_name = "NS")]
    ns: Option<String>,
    #[command(subcommand)]
    command: KvCommand,
}

/// Quota flags of `kv --ns NS set` (and the quota `ns usage` compares against).
#[derive(Debug, Args, Default)]
pub struct QuotaArgs {
    /// Quota: at most N live keys (writes past it are refused; `ns usage` shows use against it).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub max_keys: Option<u64>,
    /// Quota: at most N groups with a live key.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub max_groups: Option<u64>,
    /// Quota: at most N bytes of live keys plus values.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub max_bytes: Option<u64>,
}

impl QuotaArgs {
    pub fn to_json(&self) -> Option<Value> {
        if self.max_keys.is_none() && self.max_groups.is_none() && self.max_bytes.is_none() {
            return None;
        }
        Some(json!({
            "max_keys": self.max_keys.unwrap_or(0),
            "max_groups": self.max_groups.unwrap_or(0),
            "max_bytes": self.max_bytes.unwrap_or(0),
        }))
    }
}

#[derive(Debug, Subcommand)]
enum KvCommand {
    /// Print the raw value of a key, followed by a newline.
    Get {
        /// The group (inside the namespace with --ns).
        group: String,
        /// The key within the group.
        key: String,
    },
    /// Set a value ("-" reads it from stdin, exactly: a trailing newline is kept).
    Set {
        /// The group (inside the namespace with --ns).
        group: String,
        /// The key within the group.
        key: String,
        /// The value; a negative number such as -5 is taken as the value, not as a flag.
        #[arg(allow_negative_numbers = true)]
        value: String,
        /// Expire after this long (e.g. 30s, 5m, 2h, 1day; 0 stores it already expired).
        #[arg(long, value_parser = parse_duration, allow_hyphen_values = true)]
        ttl: Option<Duration>,
        /// Only write if the current version is N (with --ttl, the new entry expires).
        #[arg(
            long,
            value_name = "N",
            conflicts_with = "if_absent",
            allow_negative_numbers = true
        )]
        if_version: Option<u64>,
        /// Only write if the key does not exist (with --ttl, the new entry expires).
        #[arg(long)]
        if_absent: bool,
        #[command(flatten)]
        quota: QuotaArgs,
    },
    /// Add DELTA (default 1) to an integer value; a missing key counts as 0.
    Incr {
        /// The group (inside the namespace with --ns).
        group: String,
        /// The key within the group.
        key: String,
        /// How much to add (default 1; may be negative, e.g. -3).
        #[arg(allow_negative_numbers = true)]
        delta: Option<i64>,
    },
    /// Delete a key.
    Del {
        /// The group (inside the namespace with --ns).
        group: String,
        /// The key within the group.
        key: String,
    },
    /// List a group's entries in key order.
    Ls {
        /// The group to list (inside the namespace with --ns).
        group: String,
        /// Skip this many entries first (to page through a large group).
        #[arg(long, default_value_t = 0, value_name = "N", allow_negative_numbers = true)]
        offset: u64,
        /// Print at most this many entries (0 for none).
        #[arg(long, default_value_t = 100, value_name = "N", allow_negative_numbers = true)]
        limit: u64,
    },
    /// List groups (optionally only those starting with PREFIX).
    Groups {
        /// Only groups whose names start with this (local names with --ns).
        prefix: Option<String>,
    },
    /// Count live entries in a group, under a prefix, or everywhere (with --ns and no GROUP:
    /// the group "default"; --prefix "" counts the whole namespace).
    Count {
        /// Count only this group.
        group: Option<String>,
        /// Count only the groups whose names start with this.
        #[arg(long, conflicts_with = "group")]
        prefix: Option<String>,
    },
    /// Delete every expired entry now.
    Purge,
    /// Print changes to GROUP (or every group: "*") as they are committed, by any process,
    /// until Ctrl-C.
    Watch {
        /// The group to follow; "*" (the default) follows every group (of the namespace with
        /// --ns).
        #[arg(default_value = "*")]
        group: String,
        /// Start after this sequence number instead of at the newest change.
        #[arg(long, value_name = "N", allow_negative_numbers = true)]
        since: Option<u64>,
        /// Keep following (the default; accepted for symmetry with `store changes`).
        #[arg(long)]
        follow: bool,
    },
}

pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("{e} (examples: 30s, 5m, 2h, 1day)"))
}

fn object(pairs: Vec<(&str, Value)>) -> Value {
    let map: Map<String, Value> = pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    Value::Object(map)
}

/// Adds `namespace` to the arguments and picks the scoped action when `--ns` is given.
struct Target<'a> {
    ns: Option<&'a str>,
}

impl Target<'_> {
    fn call(&self, service: &Service, name: &str, mut args: Value) -> store::Result<Value> {
        match self.ns {
            None => service.call(&format!("store/{name}"), args),
            Some(ns) => {
                if let Value::Object(map) = &mut args {
                    map.insert("namespace".into(), json!(ns));
                }
                service.call(&format!("store/scoped/{name}"), args)
            }
        }
    }

    /// [`Target::call`] of an action that changes the store: marks the output committed.
    fn change(&self, service: &Service, name: &str, args: Value, out: &Output) -> store::Result<Value> {
        let result = self.call(service, name, args)?;
        out.committed();
        Ok(result)
    }
}

/// A combination of arguments clap cannot express, checked before anything opens: the
/// message of the usage error (exit code 2) it makes.
pub fn usage_problem(args: &KvArgs) -> Option<&'static str> {
    match &args.command {
        KvCommand::Set { quota, .. } if args.ns.is_none() && quota.to_json().is_some() => {
            Some("--max-keys/--max-groups/--max-bytes need --ns NS (a quota belongs to a namespace)")
        }
        _ => None,
    }
}

impl KvArgs {
    /// Whether the command follows the change feed until Ctrl-C (`kv watch`).
    pub fn follows(&self) -> bool {
        matches!(self.command, KvCommand::Watch { .. })
    }
}

pub fn run(service: &Service, args: KvArgs, out: &Output) -> store::Result<()> {
    let target = Target {
        ns: args.ns.as_deref(),
    };
    match args.command {
        KvCommand::Get { group, key } => {
            let r = target.call(service, "get", json!({"group": group, "key": key}))?;
            out.result(&r, |o, r| o.line(r["value"].as_str().unwrap_or_default()));
        }
        KvCommand::Set {
            group,
            key,
            value,
            ttl,
            if_version,
            if_absent,
            quota,
        } => {
            let value = if value == "-" {
                read_stdin(service.store().config().max_value_bytes)?
            } else {
                value
            };
            let mut pairs = vec![
                ("group", json!(group)),
                ("key", json!(key)),
                ("value", json!(value)),
            ];
            if let Some(ttl) = ttl {
                // Rounded up: a sub-millisecond TTL keeps the entry for a millisecond rather
                // than storing it already expired (only `0s` means that).
                let partial = u128::from(!ttl.subsec_nanos().is_multiple_of(1_000_000));
                let ms = u64::try_from(ttl.as_millis() + partial).unwrap_or(u64::MAX);
                pairs.push(("ttl_ms", json!(ms)));
            }
            if if_absent {
                pairs.push(("if_version", Value::Null));
            } else if let Some(v) = if_version {
                pairs.push(("if_version", json!(v)));
            }
            // `usage_problem` has already refused a quota without --ns.
            if let Some(q) = quota.to_json() {
                pairs.push(("quota", q));
            }
            let r = target.change(service, "set", object(pairs), out)?;
            out.result(&r, |o, r| o.line(format!("ok: version {}", r["version"])));
        }
        KvCommand::Incr { group, key, delta } => {
            let r = target.change(
                service,
                "increment",
                json!({"group": group, "key": key, "delta": delta.unwrap_or(1)}),
                out,
            )?;
            out.result(&r, |o, r| o.line(r["value"].to_string()));
        }
        KvCommand::Del { group, key } => {
            let r = target.change(service, "delete", json!({"group": group, "key": key}), out)?;
            out.result(&r, |o, r| {
                o.line(if r["deleted"] == true {
                    "deleted"
                } else {
                    "no live entry; nothing deleted"
                })
            });
        }
        KvCommand::Ls { group, offset, limit } => {
            let r = target.call(
                service,
                "list",
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
                if !o.quiet && limit > 0 && rows.len() as u64 >= limit {
                    // A full page: the default of 100 rows would otherwise end silently.
                    o.note(format!(
                        "more entries may follow: continue with --offset {}",
                        offset.saturating_add(limit)
                    ));
                }
            });
        }
        KvCommand::Groups { prefix } => {
            let r = target.call(service, "groups", json!({ "prefix": prefix }))?;
            out.result(&r, |o, r| {
                for g in r["groups"].as_array().map(|a| a.as_slice()).unwrap_or_default() {
                    o.line(visible(&text(g)));
                }
            });
        }
        KvCommand::Count { group, prefix } => {
            let r = target.call(service, "count", json!({"group": group, "prefix": prefix}))?;
            out.result(&r, |o, r| o.line(r["count"].to_string()));
        }
        KvCommand::Purge => {
            let r = target.change(service, "purge", json!({}), out)?;
            out.result(&r, |o, r| o.line(format!("purged {}", r["purged"])));
        }
        KvCommand::Watch {
            group,
            since,
            follow: _,
        } => {
            // Refuse a bad namespace or group before following, as every other kv command
            // does: a subscription validates both and is dropped at once.
            match target.ns {
                Some(ns) => drop(service.scoped(ns)?.watch(&group)?),
                None => drop(service.store().watch(&group)?),
            }
            let filter = crate::feed::GroupFilter::new(target.ns, &group);
            crate::feed::follow(service, since, crate::feed::DEFAULT_LIMIT, &filter, out)?;
        }
    }
    Ok(())
}

pub fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The value on standard input, read up to one byte past `max` bytes: an endless or oversized
/// input is refused once it passes the limit instead of being buffered whole.
fn read_stdin(max: usize) -> store::Result<String> {
    const OP: &str = "store kv set";
    let mut value = Vec::new();
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    std::io::stdin()
        .lock()
        .take(limit)
        .read_to_end(&mut value)
        .map_err(|source| match source.raw_os_error() {
            // EISDIR: `< dir`. The I/O error's generic fix ("pass a file") is not how to.
            Some(21) => store::Error::InvalidInput {
                op: OP,
                field: "value",
                reason: "standard input is a directory; redirect a file into it, or pass the value \
                         as an argument"
                    .into(),
            },
            _ => store::Error::Io {
                op: OP,
                path: Some("<standard input>".into()),
                source,
            },
        })?;
    if value.len() > max {
        return Err(store::Error::InvalidInput {
            op: OP,
            field: "value",
            reason: format!(
                "the value on standard input is over max_value_bytes {max}; store a smaller value \
                 (reading stopped at the limit)"
            ),
        });
    }
    String::from_utf8(value).map_err(|e| store::Error::InvalidInput {
        op: OP,
        field: "value",
        reason: format!(
            "the value on standard input is not UTF-8 text (invalid byte at offset {}); values \
             are text: encode binary data first (for example with base64)",
            e.utf8_error().valid_up_to()
        ),
    })
}
