//! The action table: each action parses its arguments and calls one library method.
//!
//! KV actions exist twice: `store/<name>` on the whole store and `store/scoped/<name>` inside
//! the namespace given by the `namespace` argument (the group defaults to `default` there, and
//! `set` also takes a `quota`). Both run the same code over the [`Kv`] trait.

use std::time::Duration;

use serde_json::{Value, json};

use super::Service;
use super::args::Args;
use crate::error::{Error, Result};
use crate::kv::Kv;
use crate::kv::access::Access;
use crate::scope::{DEFAULT_GROUP, Quota, ScopedConfig};

const OP: &str = "Service::call";

/// Progress reporting for the long analytics actions (`import`, `export-parquet`,
/// `export-split-parquet`).
#[cfg(feature = "analytics")]
pub(crate) type Progress<'a> = Option<crate::analytics::ProgressFn<'a>>;
/// Without analytics there is nothing to report progress on.
#[cfg(not(feature = "analytics"))]
pub(crate) type Progress<'a> = Option<&'a std::convert::Infallible>;

/// The arguments each action takes (a scoped KV action also takes `namespace` and `quota`).
/// Anything else is refused before the action runs: a misspelt `ttl` for `ttl_ms` would
/// otherwise store an entry without its expiry, a `namespace` on an unscoped action write
/// outside the namespace meant.
fn accepted_args(action: &str) -> Option<&'static [&'static str]> {
    let (scoped, name) = match action.strip_prefix("store/scoped/") {
        Some(name) => (true, name),
        None => (false, action.strip_prefix("store/")?),
    };
    let kv: Option<&'static [&'static str]> = match name {
        "get" | "delete" | "exists" => Some(&["group", "key"]),
        "set" => Some(&["group", "key", "value", "ttl_ms", "if_version"]),
        "increment" => Some(&["group", "key", "delta"]),
        "get-all" | "delete-group" => Some(&["group"]),
        "list" => Some(&["group", "offset", "limit"]),
        "groups" | "delete-prefix" => Some(&["prefix"]),
        "count" => Some(&["group", "prefix"]),
        "purge" => Some(&[]),
        "render" => Some(&["template", "group"]),
        "usage" if scoped => Some(&[]),
        _ => None,
    };
    if scoped {
        return kv;
    }
    kv.or(match name {
        "changes" => Some(&["since", "limit"]),
        "last-seq" | "scoring/ensure" | "table-counts" | "inventory" => Some(&[]),
        "sql" => Some(&["sql", "params"]),
        "import" => Some(&["table", "path", "format", "header", "delimiter"]),
        "export-parquet" => Some(&["table", "path", "compression"]),
        "export-split-parquet" => Some(&["table", "dir", "column"]),
        _ => None,
    })
}

pub(crate) fn call(service: &Service, action: &str, args: Value, progress: Progress<'_>) -> Result<Value> {
    // The action first: an unknown one is reported as such whatever `args` holds.
    let Some(accepted) = accepted_args(action) else {
        return Err(unknown(action));
    };
    let a = Args::new(OP, &args)?;
    // Only a scoped set checks a quota, so only it lists one among the arguments it takes.
    let scoped_extras: &[&str] = match action.strip_prefix("store/scoped/") {
        Some("set") => &["namespace", "quota"],
        Some(_) => &["namespace"],
        None => &[],
    };
    a.only(action, accepted, scoped_extras)?;
    if let Some(name) = action.strip_prefix("store/scoped/") {
        let namespace = a.str("namespace")?;
        let quota = match a.opt_object("quota")? {
            Some(q) if name == "set" => quota_from(&q)?,
            Some(_) => {
                return Err(Error::invalid(
                    OP,
                    "quota",
                    "quota is only accepted by store/scoped/set",
                ));
            }
            None => Quota::default(),
        };
        let scoped = service
            .store()
            .scoped_with(ScopedConfig::new(namespace).with_quota(quota))?;
        if name == "usage" {
            return serde_json::to_value(scoped.usage()?).map_err(|e| Error::json(OP, e));
        }
        return kv_action(&scoped, name, &a, Some(DEFAULT_GROUP))?.ok_or_else(|| unknown(action));
    }
    if let Some(name) = action.strip_prefix("store/") {
        if let Some(result) = kv_action(service.store(), name, &a, None)? {
            return Ok(result);
        }
        if name == "changes" {
            let since = a.opt_u64("since")?.unwrap_or(0);
            let limit = a.opt_u64("limit")?.unwrap_or(1000);
            let limit = usize::try_from(limit).unwrap_or(usize::MAX);
            let batch = service.store().changes_since(since, limit)?;
            return serde_json::to_value(batch).map_err(|e| Error::json(OP, e));
        }
        if name == "last-seq" {
            return Ok(json!({"seq": service.store().last_seq()?}));
        }
        if let Some(result) = analytics_action(service, name, &a, progress)? {
            return Ok(result);
        }
    }
    Err(unknown(action))
}

const ANALYTICS_ACTIONS: &[&str] = &[
    "sql",
    "import",
    "export-parquet",
    "export-split-parquet",
    "scoring/ensure",
    "table-counts",
    "inventory",
];

#[cfg(not(feature = "analytics"))]
fn analytics_action(_: &Service, name: &str, _: &Args<'_>, _: Progress<'_>) -> Result<Option<Value>> {
    if ANALYTICS_ACTIONS.contains(&name) {
        return Err(Error::Unsupported {
            op: OP,
            what: format!(
                "store/{name} (this build has no analytics feature; rebuild with --features analytics)"
            ),
        });
    }
    Ok(None)
}

#[cfg(feature = "analytics")]
fn analytics_action(
    service: &Service,
    name: &str,
    a: &Args<'_>,
    progress: Progress<'_>,
) -> Result<Option<Value>> {
    use crate::analytics::{CsvOptions, Value as V};
    if !ANALYTICS_ACTIONS.contains(&name) {
        return Ok(None);
    }
    let db = service.analytics()?;
    Ok(Some(match name {
        "sql" => {
            let params: Vec<V> = match a.opt_array("params")? {
                None => Vec::new(),
                Some(items) => items.iter().map(json_to_value).collect::<Result<_>>()?,
            };
            db.query(a.str("sql")?, &params)?.to_json()
        }
        "import" => {
            let path = a.str("path")?;
            let csv = CsvOptions {
                header: a.opt_bool("header")?.unwrap_or(true),
                delimiter: match a.opt_str("delimiter")? {
                    None => None,
                    Some(d) => {
                        let mut chars = d.chars();
                        match (chars.next(), chars.next()) {
                            (Some(c), None) => Some(c),
                            _ => {
                                return Err(Error::invalid(
                                    OP,
                                    "delimiter",
                                    "the delimiter must be one character (`,`, `;`, `\\t`, `|`…); pass one",
                                ));
                            }
                        }
                    }
                },
            };
            // The library names its CSV settings `csv`; the caller wrote one of these.
            let setting = if csv.delimiter.is_some() {
                "delimiter"
            } else {
                "header"
            };
            let rows = match a.opt_str("format")? {
                None => db.import_file(a.str("table")?, path, Some(&csv), progress),
                Some(format) => db.import_as(a.str("table")?, path, format, Some(&csv), progress),
            }
            .map_err(|e| argument_named(e, "csv", setting))?;
            json!({ "rows": rows })
        }
        "export-parquet" => {
            let compression = a.opt_str("compression")?.unwrap_or("zstd");
            // The library names a refused query `query`; here it is the `table` argument.
            let rows = db
                .export_parquet_with(a.str("table")?, a.str("path")?, compression, progress)
                .map_err(|e| argument_named(e, "query", "table"))?;
            json!({ "rows": rows })
        }
        "export-split-parquet" => {
            let (table, dir, column) = (a.str("table")?, a.str("dir")?, a.str("column")?);
            let manifest = db
                .export_split_parquet_with(table, dir, column, progress)
                .map_err(|e| argument_named(e, "out_dir", "dir"))?;
            serde_json::to_value(manifest).map_err(|e| Error::json(OP, e))?
        }
        "scoring/ensure" => {
            db.ensure_scoring_tables()?;
            json!({})
        }
        "table-counts" => json!({ "tables": db.table_counts()? }),
        "inventory" => {
            let inventory = db.inventory()?;
            let text = inventory.to_string();
            let mut value = serde_json::to_value(&inventory).map_err(|e| Error::json(OP, e))?;
            value["text"] = json!(text);
            value
        }
        _ => return Ok(None),
    }))
}

/// A JSON parameter as an analytics value. A list binds as one DuckDB list type, so its
/// elements must agree: numbers that mix integers and fractions become floats (`[1.5, 2]`), and
/// any other mix (`[1, "a"]`) is refused here, naming the argument, rather than by DuckDB.
#[cfg(feature = "analytics")]
fn json_to_value(v: &Value) -> Result<crate::analytics::Value> {
    nested_value(v, 0)
}

/// How deeply lists and objects may nest in a SQL parameter (the library's own limit, checked
/// here while converting, as the JSON conversion recurses too; JSON parsers stop at 128).
#[cfg(feature = "analytics")]
use crate::analytics::MAX_PARAM_DEPTH;

#[cfg(feature = "analytics")]
fn nested_value(v: &Value, depth: usize) -> Result<crate::analytics::Value> {
    use crate::analytics::Value as V;
    if depth > MAX_PARAM_DEPTH {
        return Err(crate::analytics::params_too_deep(OP));
    }
    Ok(match v {
        Value::Null => V::Null,
        Value::Bool(b) => V::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => V::Int(i),
            (None, Some(u), _) => V::UInt(u),
            (_, _, Some(f)) => V::Float(f),
            _ => V::Other(n.to_string()),
        },
        Value::String(s) => V::Text(s.clone()),
        Value::Array(items) => V::List(list_items(items, depth + 1)?),
        Value::Object(map) => V::Struct(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), nested_value(v, depth + 1)?)))
                .collect::<Result<_>>()?,
        ),
    })
}

/// The elements of a JSON list parameter, of one kind (NULLs aside).
#[cfg(feature = "analytics")]
fn list_items(items: &[Value], depth: usize) -> Result<Vec<crate::analytics::Value>> {
    use crate::analytics::Value as V;
    let kind = |v: &Value| match v {
        Value::Null => None,
        Value::Bool(_) => Some("boolean"),
        Value::Number(_) => Some("number"),
        Value::String(_) => Some("string"),
        Value::Array(_) => Some("list"),
        Value::Object(_) => Some("object"),
    };
    let mut kinds: Vec<&str> = items.iter().filter_map(kind).collect();
    kinds.sort_unstable();
    kinds.dedup();
    if kinds.len() > 1 {
        return Err(Error::invalid(
            OP,
            "params",
            format!(
                "a list parameter binds as one list type, and this one mixes {}; give its elements one type",
                kinds.join(" and ")
            ),
        ));
    }
    let values: Vec<V> = items
        .iter()
        .map(|v| nested_value(v, depth))
        .collect::<Result<_>>()?;
    let fractional = values.iter().any(|v| matches!(v, V::Float(_)));
    if !fractional {
        return Ok(values);
    }
    Ok(values
        .into_iter()
        .map(|v| match v {
            V::Int(i) => V::Float(i as f64),
            V::UInt(u) => V::Float(u as f64),
            other => other,
        })
        .collect())
}

fn unknown(action: &str) -> Error {
    Error::invalid(
        OP,
        "action",
        format!(
            "unknown action {}; the actions are store/<name> and store/scoped/<name> for \
             the KV names get, set, increment, delete, exists, get-all, list, groups, count, \
             delete-group, delete-prefix, purge, render (scoped also usage), and store/changes, \
             store/last-seq, store/sql, store/import, store/export-parquet, \
             store/export-split-parquet, store/scoring/ensure, store/table-counts, store/inventory",
            super::args::quoted(action)
        ),
    )
}

fn quota_from(q: &Args<'_>) -> Result<Quota> {
    q.only("quota", &["max_keys", "max_groups", "max_bytes"], &[])?;
    Ok(Quota {
        max_keys: q.opt_u64("max_keys")?.unwrap_or(0),
        max_groups: q.opt_u64("max_groups")?.unwrap_or(0),
        max_bytes: q.opt_u64("max_bytes")?.unwrap_or(0),
    })
}

/// Runs the KV action `name` on `kv`; `None` if there is no such KV action. `default_group`
/// is used when `group` is absent (scoped calls).
fn kv_action(
    kv: &(impl Kv + Access),
    name: &str,
    a: &Args<'_>,
    default_group: Option<&'static str>,
) -> Result<Option<Value>> {
    let group = || match default_group {
        Some(default) => Ok(a.opt_str("group")?.unwrap_or(default)),
        None => a.str("group"),
    };
    Ok(Some(match name {
        "get" => {
            let v = kv.get_with_version(group()?, a.str("key")?)?;
            json!({"value": v.value, "version": v.version})
        }
        "set" => {
            let (group, key, value) = (group()?, a.str("key")?, a.str("value")?);
            let ttl = a.opt_u64("ttl_ms")?.map(Duration::from_millis);
            let version = if a.has("if_version") {
                let expected = a.opt_u64("if_version")?;
                crate::kv::ops::put_if_version(kv, group, key, value, expected, ttl)?
            } else {
                match ttl {
                    Some(ttl) => kv.set_with_ttl(group, key, value, ttl)?,
                    None => kv.set(group, key, value)?,
                }
            };
            json!({ "version": version })
        }
        "increment" => {
            let delta = a.opt_i64("delta")?.unwrap_or(1);
            json!({"value": kv.increment(group()?, a.str("key")?, delta)?})
        }
        "delete" => json!({"deleted": kv.delete(group()?, a.str("key")?)?}),
        "exists" => json!({"exists": kv.exists(group()?, a.str("key")?)?}),
        "get-all" => {
            let all = kv.get_all(group()?)?;
            let entries: Vec<Value> = all
                .into_iter()
                .map(|(k, v)| json!({"key": k, "value": v}))
                .collect();
            json!({ "entries": entries })
        }
        "list" => {
            let offset = a.opt_u64("offset")?.unwrap_or(0);
            let limit = a.opt_u64("limit")?.unwrap_or(100);
            json!({ "entries": kv.get_page(group()?, offset, limit)? })
        }
        "groups" => json!({"groups": kv.groups(a.opt_str("prefix")?.unwrap_or(""))?}),
        "count" => {
            let count = match (a.opt_str("group")?, a.opt_str("prefix")?) {
                (Some(_), Some(_)) => {
                    return Err(Error::invalid(
                        OP,
                        "prefix",
                        "pass either group or prefix, not both",
                    ));
                }
                (Some(group), None) => kv.count(group)?,
                // Scoped, no group and no prefix: the `default` group, as every scoped action
                // takes it (SPEC §11); `prefix: ""` counts the whole namespace.
                (None, None) if default_group.is_some() => kv.count(group()?)?,
                (None, prefix) => kv.count_all(prefix.unwrap_or(""))?,
            };
            json!({ "count": count })
        }
        "delete-group" => json!({"deleted": kv.delete_group(group()?)?}),
        "delete-prefix" => json!({"deleted": kv.delete_prefix(a.str("prefix")?)?}),
        "purge" => json!({"purged": kv.purge_expired()?}),
        "render" => json!({"text": kv.render(a.str("template")?, group()?)?}),
        _ => return Ok(None),
    }))
}

/// A library `InvalidInput` about its parameter `library` as the Service's caller knows it:
/// the action's argument `argument` (the caller never wrote the library's name). The reason is
/// kept as it is: it names paths (which may hold any text), never the parameter.
#[cfg(feature = "analytics")]
fn argument_named(e: Error, library: &'static str, argument: &'static str) -> Error {
    match e {
        Error::InvalidInput { op, field, reason } if field == library => Error::InvalidInput {
            op,
            field: argument,
            reason,
        },
        other => other,
    }
}
