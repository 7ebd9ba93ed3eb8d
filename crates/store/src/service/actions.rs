//! The action table: each action parses its arguments and calls one library method.

use std::time::Duration;

use serde_json::{Value, json};

use super::Service;
use super::args::Args;
use crate::error::{Error, Result};
use crate::kv::Kv;

pub(crate) fn call(service: &Service, action: &str, args: Value) -> Result<Value> {
    const OP: &str = "Service::call";
    let a = Args::new(OP, &args)?;
    let store = service.store();
    match action {
        "store/get" => {
            let v = store.get_with_version(a.str("group")?, a.str("key")?)?;
            Ok(json!({"value": v.value, "version": v.version, "expires_at": v.expires_at}))
        }
        "store/set" => {
            let (group, key, value) = (a.str("group")?, a.str("key")?, a.str("value")?);
            let ttl = a.opt_u64("ttl_ms")?.map(Duration::from_millis);
            let version = if a.has("if_version") {
                if ttl.is_some() {
                    return Err(Error::invalid(
                        OP,
                        "ttl_ms",
                        "ttl_ms cannot be combined with if_version",
                    ));
                }
                store.set_if_version(group, key, value, a.opt_u64("if_version")?)?
            } else {
                match ttl {
                    Some(ttl) => store.set_with_ttl(group, key, value, ttl)?,
                    None => store.set(group, key, value)?,
                }
            };
            Ok(json!({ "version": version }))
        }
        "store/increment" => {
            let delta = a.opt_i64("delta")?.unwrap_or(1);
            Ok(json!({"value": store.increment(a.str("group")?, a.str("key")?, delta)?}))
        }
        "store/delete" => Ok(json!({"deleted": store.delete(a.str("group")?, a.str("key")?)?})),
        "store/exists" => Ok(json!({"exists": store.exists(a.str("group")?, a.str("key")?)?})),
        "store/get-all" => {
            let all = store.get_all(a.str("group")?)?;
            let entries: Vec<Value> = all
                .into_iter()
                .map(|(k, v)| json!({"key": k, "value": v}))
                .collect();
            Ok(json!({ "entries": entries }))
        }
        "store/list" => {
            let offset = a.opt_u64("offset")?.unwrap_or(0);
            let limit = a.opt_u64("limit")?.unwrap_or(100);
            let page = store.get_page(a.str("group")?, offset, limit)?;
            Ok(json!({ "entries": page }))
        }
        "store/groups" => Ok(json!({"groups": store.groups(a.opt_str("prefix")?.unwrap_or(""))?})),
        "store/count" => {
            let count = match (a.opt_str("group")?, a.opt_str("prefix")?) {
                (Some(_), Some(_)) => {
                    return Err(Error::invalid(
                        OP,
                        "prefix",
                        "pass either group or prefix, not both",
                    ));
                }
                (Some(group), None) => store.count(group)?,
                (None, prefix) => store.count_all(prefix.unwrap_or(""))?,
            };
            Ok(json!({ "count": count }))
        }
        "store/delete-group" => Ok(json!({"deleted": store.delete_group(a.str("group")?)?})),
        "store/delete-prefix" => Ok(json!({"deleted": store.delete_prefix(a.str("prefix")?)?})),
        "store/purge" => Ok(json!({"purged": store.purge_expired()?})),
        "store/render" => Ok(json!({"text": store.render(a.str("template")?, a.str("group")?)?})),
        other => Err(Error::invalid(
            OP,
            "action",
            format!("unknown action {other:?}; see the README's action table"),
        )),
    }
}
