//! `store kv …` without namespaces: values, errors, `--json` shapes, TTL, CAS, increment,
//! listing, groups, counting and purging (SPEC §3, §11 action table, §12).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;

use crate::support::{Home, fails_after_a_300ms_busy_timeout, keys, parse_json_line, piped, timed};

/// The expiry (Unix ms, or null) of the newest write of (`group`, `key`), from the change
/// feed: `kv get --json` prints the `store/get` result, `{value, version}` only.
fn expires_at(home: &Home, group: &str, key: &str) -> serde_json::Value {
    let feed = home.json(&["changes", "--since", "0", "--limit", "10000"]);
    let changes = feed["changes"].as_array().expect("changes").clone();
    changes
        .into_iter()
        .rev()
        .find(|c| c["group"] == group && c["key"] == key && c["kind"] == "set")
        .map(|c| c["expires_at"].clone())
        .expect("a set of the key in the feed")
}

fn now_ms() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970");
    i64::try_from(since.as_millis()).expect("fits")
}

// ---- set / get -------------------------------------------------------------------------------

#[test]
fn set_then_get_in_separate_processes_prints_the_raw_value() {
    let home = Home::new();
    home.ok(&["kv", "set", "config", "pool", "eu-west"]);
    assert_eq!(home.ok(&["kv", "get", "config", "pool"]), "eu-west\n");
}

#[test]
fn set_prints_ok_with_the_new_version() {
    let home = Home::new();
    let out = home.ok(&["kv", "set", "g", "k", "v"]);
    assert_eq!(out, "ok: version 1\n");
    assert_eq!(home.ok(&["kv", "set", "g", "k", "w"]), "ok: version 2\n");
}

#[test]
fn values_with_spaces_newlines_and_unicode_round_trip_exactly() {
    let home = Home::new();
    let values = [
        "",
        "  padded  ",
        "two words",
        "line one\nline two\n",
        "\ttab\r\n",
        "héllo wörld",
        "🦀 emoji",
        "日本語のテキスト",
        "مرحبا بالعالم",
        "'; DROP TABLE entries; --",
        r#"back\slash "quotes" 100% under_score ^caret"#,
        "{\"json\": [1, 2]}",
    ];
    for (i, value) in values.iter().enumerate() {
        let key = format!("k{i}");
        home.ok(&["kv", "set", "g", &key, value]);
        assert_eq!(&home.get("g", &key), value, "--json get of {value:?}");
        // Human output is the raw value plus one newline.
        assert_eq!(
            home.ok(&["kv", "get", "g", &key]),
            format!("{value}\n"),
            "get of {value:?}"
        );
    }
}

#[test]
fn value_dash_reads_the_value_from_stdin_exactly() {
    let home = Home::new();
    let input = "first line\n  second line with spaces  \n🦀 ünïcödé\n\n";
    home.cmd(["kv", "set", "g", "k", "-"])
        .stdin(input)
        .run()
        .success();
    assert_eq!(home.get("g", "k"), input);
}

#[test]
fn value_dash_with_empty_stdin_stores_an_empty_value() {
    let home = Home::new();
    home.cmd(["kv", "set", "g", "k", "-"]).stdin("").run().success();
    assert_eq!(home.get("g", "k"), "");
    assert_eq!(home.ok(&["kv", "get", "g", "k"]), "\n");
}

#[test]
fn a_value_starting_with_a_dash_can_follow_double_dash() {
    let home = Home::new();
    home.ok(&["kv", "set", "g", "k", "--", "--not-a-flag"]);
    assert_eq!(home.get("g", "k"), "--not-a-flag");
}

#[test]
fn global_flags_are_accepted_after_the_subcommand() {
    let home = Home::new();
    home.ok(&["kv", "set", "g", "k", "v", "--quiet"]);
    let v = home.run(&["kv", "get", "g", "k", "--json"]).success().json();
    assert_eq!(v["value"], "v");
}

#[test]
fn a_large_value_from_stdin_round_trips() {
    let home = Home::new();
    let value: String = "0123456789abcdef\n".repeat(64 * 1024); // 1 MiB
    home.cmd(["kv", "set", "g", "big", "-"])
        .stdin(value.clone())
        .run()
        .success();
    assert_eq!(home.get("g", "big"), value);
}

#[test]
fn concurrent_incr_from_many_processes_loses_no_update() {
    let home = Home::new();
    home.ok(&["kv", "count"]); // create the database first: see home::concurrent_first_opens…
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..10 {
                    home.ok(&["kv", "incr", "g", "n"]);
                }
            });
        }
    });
    assert_eq!(home.get("g", "n"), "40");
    // Each increment made a new, unique version (SPEC §3.6): 40 change rows, strictly increasing.
    let batch = home.json(&["changes"]);
    let seqs: Vec<u64> = batch["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| c["seq"].as_u64().expect("seq"))
        .collect();
    assert_eq!(seqs.len(), 40);
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
}

// ---- errors ----------------------------------------------------------------------------------

#[test]
fn missing_key_exits_1_and_names_the_group_and_key() {
    let home = Home::new();
    home.set("some-group", "other-key", "v");
    let out = home
        .run(&["kv", "get", "some-group", "missing-key"])
        .library_error();
    assert!(out.stdout.is_empty(), "stdout: {:?}", out.stdout);
    assert!(out.stderr.contains("\"missing-key\""), "{}", out.stderr);
    assert!(out.stderr.contains("\"some-group\""), "{}", out.stderr);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
}

#[test]
fn missing_group_exits_1_and_names_the_group_and_key() {
    let home = Home::new();
    let out = home.run(&["kv", "get", "no-such-group", "k1"]).library_error();
    assert!(
        out.stderr.contains("\"no-such-group\"") && out.stderr.contains("\"k1\""),
        "{}",
        out.stderr
    );
}

#[test]
fn missing_key_with_json_prints_an_error_object_on_stdout() {
    let home = Home::new();
    let out = home
        .cmd(["--json", "kv", "get", "grp", "nope"])
        .run()
        .library_error();
    let error = out.json_error();
    assert_eq!(error["kind"], "not_found");
    let op = error["op"].as_str().expect("op is a string");
    assert!(!op.is_empty());
    let message = error["message"].as_str().expect("message is a string");
    // Display is `{op}: {what failed}…` (SPEC §1); stderr carries the same text.
    assert!(message.starts_with(&format!("{op}: ")), "{message}");
    assert!(
        message.contains("\"grp\"") && message.contains("\"nope\""),
        "{message}"
    );
    assert_eq!(out.stderr.trim_end(), format!("error: {message}"));
}

#[test]
fn key_length_limit_is_4096_bytes() {
    let home = Home::new();
    let ok = "k".repeat(4096);
    let too_long = "k".repeat(4097);
    home.ok(&["kv", "set", "g", &ok, "v"]);
    assert_eq!(home.get("g", &ok), "v");
    let error = home.json_fail(&["kv", "set", "g", &too_long, "v"]);
    assert_eq!(error["kind"], "invalid_input");
    assert_eq!(home.ok(&["kv", "count", "g"]), "1\n");
}

#[test]
fn empty_group_or_key_exits_1() {
    let home = Home::new();
    assert_eq!(
        home.json_fail(&["kv", "set", "", "k", "v"])["kind"],
        "invalid_input"
    );
    assert_eq!(
        home.json_fail(&["kv", "set", "g", "", "v"])["kind"],
        "invalid_input"
    );
    assert_eq!(home.json_fail(&["kv", "get", "", "k"])["kind"], "invalid_input");
}

#[test]
fn non_utf8_stdin_value_exits_1_without_writing() {
    let home = Home::new();
    let out = home
        .cmd(["kv", "set", "g", "k", "-"])
        .stdin(vec![b'a', 0xff, 0xfe])
        .run()
        .library_error();
    // Says what is wrong with the value and what to do, not a bare I/O error.
    assert!(
        out.stderr.contains("not UTF-8 text (invalid byte at offset 1)"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("base64"), "{}", out.stderr);
    home.run(&["kv", "get", "g", "k"]).library_error();
}

/// An endless standard input is refused once it passes the 512 MiB value limit, not read (and
/// buffered) until memory runs out.
#[test]
fn stdin_value_reading_stops_one_byte_past_the_value_limit() {
    use std::io::Write;
    const LIMIT: u64 = 512 * 1024 * 1024;
    const OFFER: u64 = LIMIT + 64 * 1024 * 1024;
    let home = Home::new();
    let home_arg = home.path().to_str().expect("UTF-8 path").to_string();
    let mut child = piped(["--home", &home_arg, "--json", "kv", "set", "g", "k", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("spawn store");
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || {
        let chunk = vec![b'a'; 1 << 20];
        let mut written = 0u64;
        while written < OFFER && stdin.write_all(&chunk).is_ok() {
            written += chunk.len() as u64;
        }
        written
    });
    let out = child.wait_with_output().expect("wait for store");
    let written = writer.join().expect("writer thread");
    assert_eq!(out.status.code(), Some(1));
    let error = parse_json_line(String::from_utf8_lossy(&out.stdout).trim());
    assert_eq!(error["error"]["kind"], "invalid_input", "{error}");
    let message = error["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("max_value_bytes"), "{error}");
    assert!(
        written < OFFER,
        "read all {written} bytes offered, past the {LIMIT}-byte limit"
    );
    home.run(&["kv", "get", "g", "k"]).library_error();
}

#[test]
fn huge_offset_and_limit_are_clamped_not_errors() {
    let home = Home::new();
    home.set("g", "k", "v");
    let max = u64::MAX.to_string();
    assert_eq!(
        home.json(&["kv", "ls", "g", "--offset", &max, "--limit", &max]),
        json!({"entries": []})
    );
    assert_eq!(
        home.json(&["kv", "ls", "g", "--offset", "0", "--limit", &max]),
        json!({"entries": [{"key": "k", "value": "v"}]})
    );
}

#[test]
fn a_very_long_ttl_saturates_instead_of_failing() {
    let home = Home::new();
    home.ok(&["kv", "set", "g", "k", "v", "--ttl", "100000000years"]);
    assert_eq!(home.json(&["kv", "get", "g", "k"])["value"], "v");
    assert!(expires_at(&home, "g", "k").as_i64().expect("expires_at") > now_ms());
}

#[test]
fn deleting_a_key_makes_get_fail() {
    let home = Home::new();
    home.set("g", "k", "v");
    assert_eq!(home.ok(&["kv", "del", "g", "k"]), "deleted\n");
    home.run(&["kv", "get", "g", "k"]).library_error();
    assert_eq!(
        home.ok(&["kv", "del", "g", "k"]),
        "no live entry; nothing deleted\n"
    );
}

#[test]
fn keys_in_different_groups_are_independent() {
    let home = Home::new();
    home.set("a", "k", "in-a");
    home.set("b", "k", "in-b");
    home.ok(&["kv", "del", "a", "k"]);
    assert_eq!(home.get("b", "k"), "in-b");
}

// ---- --json shapes (SPEC §11 action table) ---------------------------------------------------

#[test]
fn json_set_prints_the_version() {
    let home = Home::new();
    let first = home.json(&["kv", "set", "g", "k", "v"]);
    assert_eq!(keys(&first), ["version"]);
    let second = home.json(&["kv", "set", "g", "other", "v"]);
    assert!(
        second["version"].as_u64() > first["version"].as_u64(),
        "{first} then {second}"
    );
}

/// SPEC §11 `store/get` → `{value, version}`, which §12's `--json` prints.
#[test]
fn json_get_prints_exactly_value_and_version() {
    let home = Home::new();
    let version = home.set("g", "k", "hello world");
    home.ok(&["kv", "set", "g", "t", "v", "--ttl", "1h"]);
    let got = home.json(&["kv", "get", "g", "k"]);
    assert_eq!(got, json!({"value": "hello world", "version": version}));
    assert_eq!(keys(&home.json(&["kv", "get", "g", "t"])), ["value", "version"]);
}

#[test]
fn a_ttl_entry_expires_at_now_plus_ttl_in_unix_ms() {
    let home = Home::new();
    let before = now_ms();
    home.ok(&["kv", "set", "g", "k", "v", "--ttl", "1h"]);
    let after = now_ms();
    let at = expires_at(&home, "g", "k").as_i64().expect("expires_at");
    assert!(
        at >= before + 3_600_000 && at <= after + 3_600_000,
        "expires_at {at}"
    );
}

#[test]
fn plain_set_clears_an_earlier_ttl() {
    let home = Home::new();
    home.ok(&["kv", "set", "g", "k", "v", "--ttl", "1h"]);
    home.set("g", "k", "w");
    assert_eq!(expires_at(&home, "g", "k"), json!(null));
}

#[test]
fn json_del_prints_deleted() {
    let home = Home::new();
    home.set("g", "k", "v");
    assert_eq!(home.json(&["kv", "del", "g", "k"]), json!({"deleted": true}));
    assert_eq!(home.json(&["kv", "del", "g", "k"]), json!({"deleted": false}));
}

#[test]
fn json_ls_prints_entries_in_key_order() {
    let home = Home::new();
    for key in ["charlie", "alpha", "bravo"] {
        home.set("g", key, &key.to_uppercase());
    }
    let ls = home.json(&["kv", "ls", "g"]);
    assert_eq!(
        ls,
        json!({"entries": [
            {"key": "alpha", "value": "ALPHA"},
            {"key": "bravo", "value": "BRAVO"},
            {"key": "charlie", "value": "CHARLIE"},
        ]})
    );
}

#[test]
fn json_groups_prints_groups() {
    let home = Home::new();
    home.set("zeta", "k", "v");
    home.set("alpha", "k", "v");
    assert_eq!(home.json(&["kv", "groups"]), json!({"groups": ["alpha", "zeta"]}));
}

#[test]
fn json_count_prints_count() {
    let home = Home::new();
    home.set("g", "a", "1");
    home.set("g", "b", "2");
    assert_eq!(home.json(&["kv", "count", "g"]), json!({"count": 2}));
}

#[test]
fn json_incr_prints_the_value_as_a_number() {
    let home = Home::new();
    assert_eq!(home.json(&["kv", "incr", "g", "n"]), json!({"value": 1}));
    assert_eq!(home.json(&["kv", "incr", "g", "n", "41"]), json!({"value": 42}));
}

#[test]
fn json_purge_prints_purged() {
    let home = Home::new();
    assert_eq!(home.json(&["kv", "purge"]), json!({"purged": 0}));
}

// ---- TTL -------------------------------------------------------------------------------------

#[test]
fn ttl_entry_is_gone_after_it_expires() {
    let home = Home::new();
    // Five seconds, so two process runs on a loaded machine fit in before it expires; a get
    // that returns within them read it before its expiry, which is no earlier than the set's
    // start, and no later than the set's end, plus five seconds.
    let set_started = std::time::Instant::now();
    home.ok(&["kv", "set", "g", "k", "v", "--ttl", "5s"]);
    let set_ended = std::time::Instant::now();
    let value = home.get("g", "k");
    if set_started.elapsed() < Duration::from_secs(5) {
        assert_eq!(value, "v");
    }
    std::thread::sleep(Duration::from_millis(5200).saturating_sub(set_ended.elapsed()));
    let error = home.json_fail(&["kv", "get", "g", "k"]);
    assert_eq!(error["kind"], "not_found");
    home.run(&["kv", "get", "g", "k"]).library_error();
}

#[test]
fn zero_ttl_is_never_visible() {
    let home = Home::new();
    home.ok(&["kv", "set", "g", "k", "v", "--ttl", "0s"]);
    home.run(&["kv", "get", "g", "k"]).library_error();
    assert_eq!(home.ok(&["kv", "count", "g"]), "0\n");
}

#[test]
fn purge_removes_expired_entries_and_reports_how_many() {
    let home = Home::new();
    home.ok(&["kv", "set", "g", "gone-1", "v", "--ttl", "0s"]);
    home.ok(&["kv", "set", "g", "gone-2", "v", "--ttl", "0s"]);
    home.set("g", "live", "v");
    assert_eq!(home.json(&["kv", "purge"]), json!({"purged": 2}));
    assert_eq!(home.ok(&["kv", "purge"]), "purged 0\n");
    assert_eq!(home.get("g", "live"), "v");
}

// ---- compare-and-swap ------------------------------------------------------------------------

#[test]
fn if_absent_on_an_existing_key_is_a_conflict() {
    let home = Home::new();
    home.set("g", "k", "first");
    let out = home
        .run(&["kv", "set", "g", "k", "second", "--if-absent"])
        .library_error();
    assert!(out.stderr.contains("conflict"), "{}", out.stderr);
    let error = home.json_fail(&["kv", "set", "g", "k", "second", "--if-absent"]);
    assert_eq!(error["kind"], "conflict");
    assert_eq!(home.get("g", "k"), "first");
}

#[test]
fn if_absent_on_a_new_key_writes_it() {
    let home = Home::new();
    home.ok(&["kv", "set", "g", "k", "v", "--if-absent"]);
    assert_eq!(home.get("g", "k"), "v");
}

#[test]
fn if_version_with_the_current_version_succeeds_and_a_stale_one_fails() {
    let home = Home::new();
    let v1 = home.set("g", "k", "one").to_string();
    let v2 = home.json(&["kv", "set", "g", "k", "two", "--if-version", &v1])["version"]
        .as_u64()
        .expect("version");
    assert!(v2 > v1.parse().expect("u64"));
    let error = home.json_fail(&["kv", "set", "g", "k", "three", "--if-version", &v1]);
    assert_eq!(error["kind"], "conflict");
    assert_eq!(home.get("g", "k"), "two");
    assert_eq!(home.json(&["kv", "get", "g", "k"])["version"], v2);
}

#[test]
fn if_version_on_a_missing_key_is_a_conflict() {
    let home = Home::new();
    let error = home.json_fail(&["kv", "set", "g", "k", "v", "--if-version", "1"]);
    assert_eq!(error["kind"], "conflict");
    home.run(&["kv", "get", "g", "k"]).library_error();
}

// ---- increment -------------------------------------------------------------------------------

#[test]
fn incr_three_times_gives_3_and_a_negative_delta_subtracts() {
    let home = Home::new();
    let outputs: Vec<String> = (0..3).map(|_| home.ok(&["kv", "incr", "g", "n"])).collect();
    assert_eq!(outputs, ["1\n", "2\n", "3\n"]);
    assert_eq!(home.ok(&["kv", "incr", "g", "n", "-5"]), "-2\n");
    assert_eq!(home.ok(&["kv", "get", "g", "n"]), "-2\n");
}

#[test]
fn incr_of_a_non_integer_exits_1_and_keeps_the_value() {
    let home = Home::new();
    home.set("g", "n", "abc");
    let error = home.json_fail(&["kv", "incr", "g", "n"]);
    assert_eq!(error["kind"], "invalid_input");
    home.run(&["kv", "incr", "g", "n"]).library_error();
    assert_eq!(home.get("g", "n"), "abc");
}

#[test]
fn incr_overflow_exits_1() {
    let home = Home::new();
    home.set("g", "n", &i64::MAX.to_string());
    home.run(&["kv", "incr", "g", "n"]).library_error();
    assert_eq!(home.get("g", "n"), i64::MAX.to_string());
}

// ---- ls / groups / count ---------------------------------------------------------------------

fn table(stdout: &str) -> Vec<Vec<&str>> {
    stdout.lines().map(|l| l.split_whitespace().collect()).collect()
}

#[test]
fn ls_prints_a_table_with_a_key_value_header() {
    let home = Home::new();
    home.set("g", "bravo", "2");
    home.set("g", "alpha", "one");
    let out = home.ok(&["kv", "ls", "g"]);
    assert_eq!(
        table(&out),
        [vec!["KEY", "VALUE"], vec!["alpha", "one"], vec!["bravo", "2"]]
    );
    // Columns line up: every value starts at the same column as the VALUE header.
    let column = out.lines().next().expect("header").find("VALUE").expect("VALUE");
    for line in out.lines().skip(1) {
        assert!(
            line[..column].ends_with("  ") && !line[column..].starts_with(' '),
            "{out}"
        );
    }
}

#[test]
fn ls_of_an_empty_group_prints_only_the_header() {
    let home = Home::new();
    assert_eq!(table(&home.ok(&["kv", "ls", "nothing"])), [vec!["KEY", "VALUE"]]);
}

#[test]
fn ls_offset_and_limit_page_in_key_order() {
    let home = Home::new();
    for key in ["delta", "alpha", "charlie", "bravo", "echo"] {
        home.set("g", key, "v");
    }
    let page = |offset: &str, limit: &str| -> Vec<String> {
        let v = home.json(&["kv", "ls", "g", "--offset", offset, "--limit", limit]);
        v["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .map(|e| e["key"].to_string())
            .collect()
    };
    assert_eq!(page("1", "2"), ["\"bravo\"", "\"charlie\""]);
    assert_eq!(page("3", "10"), ["\"delta\"", "\"echo\""]);
    assert!(page("5", "10").is_empty());
    assert!(page("0", "0").is_empty());
    let human = home.ok(&["kv", "ls", "g", "--offset", "4", "--limit", "1"]);
    assert_eq!(table(&human), [vec!["KEY", "VALUE"], vec!["echo", "v"]]);
}

#[test]
fn groups_with_a_prefix_lists_only_matching_groups() {
    let home = Home::new();
    for group in ["app:two", "app:one", "other", "App:upper"] {
        home.set(group, "k", "v");
    }
    assert_eq!(home.ok(&["kv", "groups", "app:"]), "app:one\napp:two\n");
    assert_eq!(home.ok(&["kv", "groups"]), "App:upper\napp:one\napp:two\nother\n");
    assert_eq!(home.ok(&["kv", "groups", "zzz"]), "");
}

#[test]
fn groups_prefix_matches_underscore_and_percent_literally() {
    let home = Home::new();
    for group in ["user_1", "userX", "user%1", "user%2"] {
        home.set(group, "k", "v");
    }
    assert_eq!(
        home.json(&["kv", "groups", "user_"]),
        json!({"groups": ["user_1"]})
    );
    assert_eq!(
        home.json(&["kv", "groups", "user%"]),
        json!({"groups": ["user%1", "user%2"]})
    );
}

#[test]
fn count_counts_everything_a_group_or_a_prefix() {
    let home = Home::new();
    home.set("tenant-a:config", "a", "1");
    home.set("tenant-a:config", "b", "2");
    home.set("tenant-a:cache", "c", "3");
    home.set("tenant-b:config", "d", "4");
    assert_eq!(home.ok(&["kv", "count"]), "4\n");
    assert_eq!(home.ok(&["kv", "count", "tenant-a:config"]), "2\n");
    assert_eq!(home.ok(&["kv", "count", "--prefix", "tenant-a:"]), "3\n");
    assert_eq!(home.ok(&["kv", "count", "--prefix", "Tenant-A:"]), "0\n");
    assert_eq!(home.ok(&["kv", "count", "missing"]), "0\n");
    assert_eq!(
        home.json(&["kv", "count", "--prefix", "tenant-"]),
        json!({"count": 4})
    );
}

#[test]
fn a_negative_number_is_a_value_not_a_flag() {
    let home = Home::new();
    home.ok(&["kv", "set", "g", "k", "-5"]);
    assert_eq!(home.get("g", "k"), "-5");
    home.ok(&["kv", "set", "g", "k", "-0.25"]);
    assert_eq!(home.get("g", "k"), "-0.25");
    assert_eq!(home.ok(&["kv", "incr", "g", "n", "-3"]), "-3\n");
    // Anything else that starts with a dash still needs `--`, as with any command-line tool.
    home.run(&["kv", "set", "g", "k", "-x"]).code(2);
    home.ok(&["kv", "set", "g", "k", "--", "-x"]);
    assert_eq!(home.get("g", "k"), "-x");
}

#[test]
fn groups_show_control_characters_escaped_one_group_per_line() {
    let home = Home::new();
    home.set("evil\ngroup\u{1b}[2J", "k", "v");
    home.set("plain", "k", "v");
    let out = home.ok(&["kv", "groups"]);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["evil\\ngroup\\u{1b}[2J", "plain"]
    );
    assert_eq!(home.json(&["kv", "groups"])["groups"][0], "evil\ngroup\u{1b}[2J");
}

#[test]
fn groups_show_line_separators_and_bidi_overrides_escaped() {
    // Neither is a control character, but U+2028 breaks the line in many terminals and
    // editors, and U+202E prints the rest of the line right to left.
    let home = Home::new();
    home.set("a\u{2028}b", "k", "v");
    home.set("txt.\u{202e}exe", "k", "v");
    let out = home.ok(&["kv", "groups"]);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["a\\u{2028}b", "txt.\\u{202e}exe"]
    );
    assert_eq!(home.json(&["kv", "groups"])["groups"][1], "txt.\u{202e}exe");
}

/// `--busy-timeout` sets how long a command waits for another process's lock: a write behind a
/// held write lock fails busy once it has passed, not after the default 5 s, and writes
/// nothing; a bad duration is a usage error.
#[test]
fn busy_timeout_sets_how_long_a_write_waits_for_another_processs_lock() {
    let home = Home::new();
    home.set("g", "k", "v");
    while_the_write_lock_is_held(&home, || {
        let out = fails_after_a_300ms_busy_timeout(&home, &["kv", "set", "g", "k", "w"]);
        assert!(out.stderr.contains("busy"), "{}", out.stderr);
        assert!(
            out.stderr.contains("hint: `store --busy-timeout"),
            "{}",
            out.stderr
        );
    });
    assert_eq!(home.get("g", "k"), "pending");
    home.run(&["--busy-timeout", "5x", "kv", "get", "g", "k"]).code(2);
    // Given generously, the same write waits for its turn and succeeds.
    home.ok(&["kv", "set", "g", "k", "w", "--busy-timeout", "1m"]);
    assert_eq!(home.get("g", "k"), "w");
}

/// A one-shot read never waits for a writer (SPEC §3.3), not even while opening: a file whose
/// schema is already complete is recognised by a read, without the write lock that another
/// process holds here for the whole command.
#[test]
fn a_read_command_answers_while_another_process_holds_the_write_lock() {
    let home = Home::new();
    home.set("g", "k", "v");
    while_the_write_lock_is_held(&home, || {
        // Nor does it wait at exit (its close-time checkpoint is skipped): well inside the 5 s
        // busy timeout it would otherwise sit out. Each timed on its own: one that waited
        // would take the whole 5 s.
        let (value, get_took) = timed(|| home.get("g", "k"));
        assert_eq!(value, "v");
        let (count, count_took) = timed(|| home.json(&["kv", "count", "g"]));
        assert_eq!(count["count"], 1);
        for (read, took) in [("get", get_took), ("count", count_took)] {
            assert!(took < Duration::from_millis(4500), "{read} took {took:?}");
        }
    });
    assert_eq!(home.get("g", "k"), "pending");
}

/// Runs `f` while this test process holds the home's KV write lock, as another process would:
/// inside a transaction that has set g/k to "pending", committed once `f` returns.
fn while_the_write_lock_is_held(home: &Home, f: impl FnOnce()) {
    use store::Kv;
    let store = store::Store::open(home.path().join("state.db")).unwrap();
    store
        .transaction(|tx| {
            tx.set("g", "k", "pending")?;
            f();
            Ok(())
        })
        .unwrap();
}

/// Output that cannot be written is a failure: `kv get` into a full device said nothing and
/// exited 0.
#[cfg(target_os = "linux")]
#[test]
fn output_that_cannot_be_written_fails_with_exit_code_1() {
    let home = Home::new();
    home.ok(&["kv", "set", "g", "k", "v"]);
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_store"))
        .args(["--home", home.path().to_str().unwrap(), "kv", "get", "g", "k"])
        .stdout(full)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot write"),
        "{out:?}"
    );
}

/// A write whose result cannot be printed exits 1 like any lost output, but says that its
/// change is committed: a script retrying on exit 1 would count an `incr` twice (h145). A
/// read's failure does not claim a change.
#[cfg(target_os = "linux")]
#[test]
fn a_write_whose_result_cannot_be_printed_says_its_change_is_committed() {
    let home = Home::new();
    let run_into_full = |args: &[&str]| crate::support::stderr_with_stdout_full(&home, args);
    for write in [
        &["kv", "incr", "g", "n"][..],
        &["kv", "set", "g", "k", "v"],
        &["kv", "--ns", "t", "set", "g", "k", "v"],
        &["kv", "del", "g", "k"],
        &["kv", "purge"],
    ] {
        let stderr = run_into_full(write);
        assert!(
            stderr.contains("cannot write to standard output") && stderr.contains("is committed"),
            "{write:?}: {stderr}"
        );
    }
    assert_eq!(home.get("g", "n"), "1", "the increment was committed once");
    let stderr = run_into_full(&["kv", "get", "g", "n"]);
    assert!(!stderr.contains("committed"), "{stderr}");
}

/// A standard input redirected from a directory names the fix for standard input (h146: the
/// generic one said "pass a file"), and writes nothing.
#[test]
fn a_value_read_from_a_directory_on_stdin_says_to_redirect_a_file() {
    let home = Home::new();
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_store"))
        .arg("--home")
        .arg(home.path())
        .args(["kv", "set", "g", "k", "-"])
        .stdin(std::fs::File::open(dir.path()).unwrap())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("standard input is a directory; redirect a file"),
        "{stderr}"
    );
    assert_eq!(home.ok(&["kv", "count"]), "0\n");
}

/// A full page of `kv ls` says where to continue on stderr (the default of 100 rows ended
/// silently); a page with room to spare says nothing.
#[test]
fn kv_ls_says_where_a_full_page_continues() {
    let home = Home::new();
    for key in ["a", "b", "c"] {
        home.ok(&["kv", "set", "g", key, "v"]);
    }
    let page = home.run(&["kv", "ls", "g", "--limit", "2"]).success();
    assert!(page.stderr.contains("--offset 2"), "{}", page.stderr);
    let all = home.run(&["kv", "ls", "g"]).success();
    assert!(all.stderr.is_empty(), "{}", all.stderr);
}

/// SPEC §12 `set G K VALUE|- [--ttl DUR] [--if-version N|--if-absent]`: `--ttl` combines with
/// either condition, and the entry written expires.
#[test]
fn a_conditional_set_can_take_a_ttl() {
    let home = Home::new();
    let before = now_ms();
    let v1 = home.json(&["kv", "set", "g", "k", "a", "--ttl", "1h", "--if-absent"])["version"]
        .as_u64()
        .expect("version");
    let at = expires_at(&home, "g", "k").as_i64().expect("expires_at");
    assert!(at >= before + 3_600_000, "expires_at {at}");
    home.run(&["kv", "set", "g", "k", "b", "--ttl", "1h", "--if-absent"])
        .library_error();
    let v1s = v1.to_string();
    home.ok(&["kv", "set", "g", "k", "b", "--ttl", "2h", "--if-version", &v1s]);
    let at2 = expires_at(&home, "g", "k").as_i64().expect("expires_at");
    assert!(at2 >= before + 7_200_000, "expires_at {at2}");
    assert_eq!(home.get("g", "k"), "b");
    home.run(&["kv", "set", "g", "k", "c", "--ttl", "1h", "--if-version", &v1s])
        .library_error();
    // Without --ttl a conditional set clears the expiry, as set_if_version does.
    let v2 = home.json(&["kv", "get", "g", "k"])["version"].to_string();
    home.ok(&["kv", "set", "g", "k", "d", "--if-version", &v2]);
    assert_eq!(expires_at(&home, "g", "k"), json!(null));
}
