//! `store demo`: a guided tour of the KV layer on the real data directory.

use std::time::Duration;

use serde_json::json;
use store::{Kv, Service};

use crate::output::Output;

/// Groups the demo owns; it clears them first so it can be run again and again. The underscore
/// makes the prefix one no namespace can have (`^[A-Za-z0-9-]+$`), so a scoped store never
/// writes there: a `demo` namespace, `demo:…` groups and every other user group are untouched.
const PREFIX: &str = "_demo:";

pub fn run(service: &Service, out: &Output) -> store::Result<()> {
    let store = service.store();
    let mut steps = Vec::new();
    let mut step = |what: String| {
        if !out.json {
            out.line(format!("- {what}"));
        }
        steps.push(what);
    };
    if !out.json {
        out.line(format!("store demo on {}", service.home().display()));
    }
    let cleared = store.delete_prefix(PREFIX)?;
    step(format!(
        "cleared {cleared} entries left by an earlier demo under {PREFIX:?}"
    ));

    let v1 = store.set("_demo:config", "pool", "eu-west")?;
    let v2 = store.set("_demo:config", "wallet", "0xabc")?;
    step(format!(
        "set _demo:config/pool (version {v1}) and _demo:config/wallet (version {v2})"
    ));

    let rendered = store.render(r#"{"pool":"{{ pool }}","wallet":"{{ wallet }}"}"#, "_demo:config")?;
    step(format!("rendered a template over _demo:config: {rendered}"));

    store.set_with_ttl("_demo:sessions", "alice", "token-1", Duration::from_secs(3600))?;
    store.set_with_ttl("_demo:sessions", "gone", "token-0", Duration::ZERO)?;
    // Lazy expiry on its own key rather than `purge_expired`, which would remove (and report)
    // every expired row of the store, the user's included.
    let expired_read = match store.get("_demo:sessions", "gone") {
        Err(e) if e.is_not_found() => "not found (and removed)",
        Err(e) => return Err(e),
        Ok(_) => "still there?",
    };
    step(format!(
        "set two sessions, one already expired: {} live; reading the expired one: {expired_read}",
        store.count("_demo:sessions")?,
    ));

    for _ in 0..3 {
        store.increment("_demo:stats", "runs", 1)?;
    }
    step(format!(
        "incremented _demo:stats/runs three times: {}",
        store.get("_demo:stats", "runs")?
    ));

    let stale = store.get_with_version("_demo:config", "pool")?.version;
    store.set_if_version("_demo:config", "pool", "us-east", Some(stale))?;
    let conflict = store.set_if_version("_demo:config", "pool", "ap-south", Some(stale));
    step(format!(
        "compare-and-swap moved pool to {:?}; a second swap from the stale version was refused: {}",
        store.get("_demo:config", "pool")?,
        conflict
            .map(|_| "no conflict?".to_string())
            .unwrap_or_else(|e| e.kind().to_string())
    ));

    // The analytics layer, when this build has it: SQL over the KV state.
    match service.call(
        "store/sql",
        json!({"sql": "SELECT group_name, count(*) AS entries FROM kv_entries \
                       WHERE starts_with(group_name, '_demo:') GROUP BY ALL ORDER BY group_name"}),
    ) {
        Ok(result) => {
            let summary: Vec<String> = result["rows"]
                .as_array()
                .map(|rows| {
                    rows.iter()
                        .map(|r| format!("{}={}", r[0].as_str().unwrap_or("?"), r[1]))
                        .collect()
                })
                .unwrap_or_default();
            step(format!(
                "queried the KV state from DuckDB (kv_entries): {}",
                summary.join(", ")
            ));
        }
        Err(e) if e.kind() == store::ErrorKind::Unsupported => {
            step("skipped SQL over kv_entries: this build has no analytics feature".to_string());
        }
        Err(e) => return Err(e),
    }

    let groups = store.groups(PREFIX)?;
    // The command to copy must reach this data directory, whichever way it was chosen.
    let home = match store::default_home() {
        Ok(default) if default == service.home() => String::new(),
        _ => format!(" --home {}", shell_quoted(&service.home().to_string_lossy())),
    };
    step(format!(
        "{} live entries in groups {groups:?}; inspect them with `store{home} kv ls _demo:config`",
        store.count_all(PREFIX)?
    ));
    if out.json {
        out.line(json!({"home": service.home(), "steps": steps}).to_string());
    }
    Ok(())
}

/// `text` as one POSIX shell word: as it is when it holds only characters no shell treats
/// specially, else in single quotes.
fn shell_quoted(text: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+:,@%=".contains(c);
    if !text.is_empty() && text.chars().all(plain) {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}
