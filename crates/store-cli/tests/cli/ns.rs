//! `store kv --ns NS …` and `store ns usage NS` (SPEC §6, §11 `store/scoped/*`, §12).

use serde_json::json;

use crate::support::Home;

#[test]
fn scoped_set_over_max_keys_exits_1_with_a_quota_error_naming_max_keys() {
    let home = Home::new();
    home.ok(&[
        "kv",
        "--ns",
        "tenant-a",
        "set",
        "config",
        "k",
        "v",
        "--max-keys",
        "1",
    ]);
    let out = home
        .run(&[
            "kv",
            "--ns",
            "tenant-a",
            "set",
            "config",
            "k2",
            "v",
            "--max-keys",
            "1",
        ])
        .library_error();
    assert!(out.stderr.contains("max_keys"), "{}", out.stderr);
    assert!(out.stderr.contains("\"tenant-a\""), "{}", out.stderr);
    let error = home.json_fail(&[
        "kv",
        "--ns",
        "tenant-a",
        "set",
        "other",
        "k3",
        "v",
        "--max-keys",
        "1",
    ]);
    assert_eq!(error["kind"], "quota_exceeded");
    assert_eq!(home.json(&["ns", "usage", "tenant-a"])["keys"], 1);
}

/// SPEC §6: "concurrent threads or processes never overshoot".
#[test]
fn concurrent_processes_never_overshoot_max_keys() {
    let home = Home::new();
    home.ok(&["ns", "usage", "t"]); // create the database first: see home::concurrent_first_opens…
    let codes: Vec<Option<i32>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..10)
            .map(|i| {
                let home = &home;
                s.spawn(move || {
                    let key = format!("k{i}");
                    home.run(&["kv", "--ns", "t", "set", "g", &key, "v", "--max-keys", "5"])
                        .code
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("thread")).collect()
    });
    assert_eq!(codes.iter().filter(|c| **c == Some(0)).count(), 5, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| **c == Some(1)).count(), 5, "{codes:?}");
    assert_eq!(home.json(&["ns", "usage", "t"])["keys"], 5);
}

#[test]
fn expired_entries_do_not_count_towards_quota_or_usage() {
    let home = Home::new();
    home.ok(&[
        "kv",
        "--ns",
        "t",
        "set",
        "g",
        "old",
        "v",
        "--ttl",
        "0s",
        "--max-keys",
        "1",
    ]);
    home.ok(&["kv", "--ns", "t", "set", "g", "new", "v", "--max-keys", "1"]);
    assert_eq!(
        home.json(&["ns", "usage", "t"]),
        json!({"bytes": 4, "groups": 1, "keys": 1})
    );
}

#[test]
fn zero_quota_means_unlimited() {
    let home = Home::new();
    for key in ["a", "b", "c"] {
        home.ok(&["kv", "--ns", "t", "set", "g", key, "v", "--max-keys", "0"]);
    }
    // `--prefix ""`: the whole namespace (a bare `count` under `--ns` counts `default`).
    assert_eq!(home.ok(&["kv", "--ns", "t", "count", "--prefix", ""]), "3\n");
}

#[test]
fn scoped_upsert_at_the_key_limit_is_allowed() {
    let home = Home::new();
    home.ok(&[
        "kv",
        "--ns",
        "tenant-a",
        "set",
        "config",
        "k",
        "v1",
        "--max-keys",
        "1",
    ]);
    home.ok(&[
        "kv",
        "--ns",
        "tenant-a",
        "set",
        "config",
        "k",
        "v2",
        "--max-keys",
        "1",
    ]);
    assert_eq!(home.ok(&["kv", "--ns", "tenant-a", "get", "config", "k"]), "v2\n");
}

#[test]
fn scoped_delete_frees_a_key_slot() {
    let home = Home::new();
    let set = |key: &str| home.run(&["kv", "--ns", "t", "set", "g", key, "v", "--max-keys", "1"]);
    set("a").success();
    set("b").library_error();
    home.ok(&["kv", "--ns", "t", "del", "g", "a"]);
    set("b").success();
}

#[test]
fn scoped_set_over_max_groups_names_max_groups() {
    let home = Home::new();
    home.ok(&["kv", "--ns", "t", "set", "one", "k", "v", "--max-groups", "1"]);
    home.ok(&["kv", "--ns", "t", "set", "one", "k2", "v", "--max-groups", "1"]);
    let out = home
        .run(&["kv", "--ns", "t", "set", "two", "k", "v", "--max-groups", "1"])
        .library_error();
    assert!(out.stderr.contains("max_groups"), "{}", out.stderr);
}

#[test]
fn scoped_set_over_max_bytes_names_max_bytes() {
    let home = Home::new();
    // key "k" + 9-byte value = 10 bytes: exactly at the limit.
    home.ok(&[
        "kv",
        "--ns",
        "t",
        "set",
        "g",
        "k",
        "123456789",
        "--max-bytes",
        "10",
    ]);
    let out = home
        .run(&["kv", "--ns", "t", "set", "g", "x", "", "--max-bytes", "10"])
        .library_error();
    assert!(out.stderr.contains("max_bytes"), "{}", out.stderr);
    // Shrinking is always fine.
    home.ok(&["kv", "--ns", "t", "set", "g", "k", "1", "--max-bytes", "10"]);
}

#[test]
fn ns_usage_prints_keys_groups_and_bytes() {
    let home = Home::new();
    home.ok(&["kv", "--ns", "tenant-a", "set", "config", "k", "vv"]);
    home.ok(&["kv", "--ns", "tenant-a", "set", "prefs", "key", "value"]);
    let out = home.ok(&["ns", "usage", "tenant-a"]);
    let rows: Vec<Vec<&str>> = out.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows[0], ["namespace", "tenant-a"], "{out}");
    assert_eq!(rows[1], ["USED", "LIMIT"], "{out}");
    assert_eq!(rows[2], ["keys", "2", "unlimited"], "{out}");
    assert_eq!(rows[3], ["groups", "2", "unlimited"], "{out}");
    // bytes = len("k") + len("vv") + len("key") + len("value") = 11
    assert_eq!(rows[4], ["bytes", "11", "unlimited"], "{out}");
    assert_eq!(rows.len(), 5, "{out}");
}

/// SPEC §12: "`--json` prints the action result", here `store/scoped/usage`'s.
#[test]
fn ns_usage_json_is_the_usage_action_result() {
    let home = Home::new();
    home.ok(&["kv", "--ns", "tenant-a", "set", "config", "k", "vv"]);
    assert_eq!(
        home.json(&["ns", "usage", "tenant-a"]),
        json!({"bytes": 3, "groups": 1, "keys": 1})
    );
}

#[test]
fn ns_usage_of_an_empty_namespace_is_zero() {
    let home = Home::new();
    assert_eq!(
        home.json(&["ns", "usage", "nobody"]),
        json!({"bytes": 0, "groups": 0, "keys": 0})
    );
}

#[test]
fn ns_usage_with_quota_flags_shows_the_limits() {
    let home = Home::new();
    home.ok(&["kv", "--ns", "t", "set", "g", "k", "v"]);
    let out = home.ok(&["ns", "usage", "t", "--max-keys", "4"]);
    let keys_row = out.lines().find(|l| l.starts_with("keys")).expect("keys row");
    assert_eq!(
        keys_row.split_whitespace().collect::<Vec<_>>(),
        ["keys", "1", "4", "(25%", "used)"]
    );
    // `--json` prints the action result only (SPEC §12); the quota shapes the table.
    let v = home.json(&["ns", "usage", "t", "--max-keys", "4"]);
    assert_eq!(v, json!({"bytes": 2, "groups": 1, "keys": 1}));
}

#[test]
fn ns_usage_percentages_round_down_so_100_means_the_limit_is_reached() {
    let home = Home::new();
    home.ok(&["kv", "--ns", "t", "set", "g", "k", &"v".repeat(998)]);
    let used = |max: &str| {
        let out = home.ok(&["ns", "usage", "t", "--max-bytes", max]);
        let row = out
            .lines()
            .find(|l| l.starts_with("bytes"))
            .expect("bytes row")
            .to_string();
        row.split_whitespace().skip(3).collect::<Vec<_>>().join(" ")
    };
    assert_eq!(used("1000"), "(99% used)");
    assert_eq!(used("999"), "(100% used)");
}

#[test]
fn raw_writes_into_the_namespace_count_towards_usage() {
    let home = Home::new();
    home.set("tenant-a:config", "k", "v");
    assert_eq!(home.json(&["ns", "usage", "tenant-a"])["keys"], 1);
    home.run(&[
        "kv",
        "--ns",
        "tenant-a",
        "set",
        "config",
        "k2",
        "v",
        "--max-keys",
        "1",
    ])
    .library_error();
}

#[test]
fn namespaces_are_isolated() {
    let home = Home::new();
    home.ok(&["kv", "--ns", "a", "set", "config", "k", "from-a"]);
    home.ok(&["kv", "--ns", "b", "set", "config", "k", "from-b"]);
    home.ok(&["kv", "--ns", "b", "set", "config", "only-b", "x"]);
    assert_eq!(home.ok(&["kv", "--ns", "a", "get", "config", "k"]), "from-a\n");
    assert_eq!(home.ok(&["kv", "--ns", "b", "get", "config", "k"]), "from-b\n");
    home.run(&["kv", "--ns", "a", "get", "config", "only-b"])
        .library_error();
    assert_eq!(home.ok(&["kv", "--ns", "a", "count", "--prefix", ""]), "1\n");
    assert_eq!(home.ok(&["kv", "--ns", "b", "count", "--prefix", ""]), "2\n");
    assert_eq!(home.ok(&["kv", "--ns", "b", "count", "config"]), "2\n");
    home.ok(&["kv", "--ns", "a", "del", "config", "k"]);
    assert_eq!(home.ok(&["kv", "--ns", "b", "get", "config", "k"]), "from-b\n");
}

#[test]
fn unscoped_reads_see_scoped_writes_under_ns_colon_group() {
    let home = Home::new();
    home.ok(&["kv", "--ns", "tenant-a", "set", "config", "k", "scoped"]);
    assert_eq!(home.ok(&["kv", "get", "tenant-a:config", "k"]), "scoped\n");
    // …and the unscoped group "config" is a different group.
    home.run(&["kv", "get", "config", "k"]).library_error();
}

#[test]
fn scoped_listing_commands_use_local_group_names() {
    let home = Home::new();
    for group in ["config", "cache"] {
        home.ok(&["kv", "--ns", "tenant-a", "set", group, "k", "v"]);
    }
    home.ok(&["kv", "--ns", "tenant-b", "set", "config", "k", "v"]);
    assert_eq!(
        home.json(&["kv", "--ns", "tenant-a", "groups"]),
        json!({"groups": ["cache", "config"]})
    );
    assert_eq!(home.ok(&["kv", "--ns", "tenant-a", "groups", "con"]), "config\n");
    assert_eq!(
        home.json(&["kv", "--ns", "tenant-a", "ls", "config"]),
        json!({"entries": [{"key": "k", "value": "v"}]})
    );
    assert_eq!(
        home.ok(&["kv", "--ns", "tenant-a", "count", "--prefix", "c"]),
        "2\n"
    );
    assert_eq!(
        home.ok(&["kv", "--ns", "tenant-a", "incr", "stats", "n", "7"]),
        "7\n"
    );
    assert_eq!(home.ok(&["kv", "get", "tenant-a:stats", "n"]), "7\n");
}

#[test]
fn ns_flag_is_accepted_after_the_kv_subcommand() {
    let home = Home::new();
    home.ok(&["kv", "set", "config", "k", "v", "--ns", "tenant-a"]);
    assert_eq!(home.ok(&["kv", "get", "--ns", "tenant-a", "config", "k"]), "v\n");
}

/// SPEC §6: "results, events and errors use local names".
#[test]
fn scoped_not_found_names_the_local_group() {
    let home = Home::new();
    let out = home
        .run(&["kv", "--ns", "tenant-a", "get", "config", "missing"])
        .library_error();
    assert!(out.stderr.contains("group \"config\""), "{}", out.stderr);
    assert!(!out.stderr.contains("tenant-a:config"), "{}", out.stderr);
}

#[test]
fn invalid_namespace_exits_1() {
    let home = Home::new();
    for ns in ["a:b", "foo bar", "foo_bar", "tenant!"] {
        let error = home.json_fail(&["kv", "--ns", ns, "set", "config", "k", "v"]);
        assert_eq!(error["kind"], "invalid_input", "namespace {ns:?}");
    }
    home.run(&["kv", "--ns", "a:b", "get", "config", "k"])
        .library_error();
    home.run(&["ns", "usage", "a:b"]).library_error();
    assert_eq!(home.ok(&["kv", "count"]), "0\n");
}

#[test]
fn valid_namespaces_are_accepted() {
    let home = Home::new();
    for ns in ["abc", "ABC", "123", "a-b-c", "tenant-42", "A1-B2"] {
        home.ok(&["kv", "--ns", ns, "set", "g", "k", ns]);
        assert_eq!(home.ok(&["kv", "--ns", ns, "get", "g", "k"]), format!("{ns}\n"));
    }
}

#[test]
fn purge_and_conditional_sets_with_ns_stay_inside_the_namespace() {
    let home = Home::new();
    for ns in ["a", "b"] {
        home.ok(&["kv", "--ns", ns, "set", "g", "short", "v", "--ttl", "1ms"]);
    }
    home.ok(&["kv", "set", "plain", "short", "v", "--ttl", "1ms"]);
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert_eq!(
        home.json(&["kv", "--ns", "a", "purge"]),
        json!({"purged": 1}),
        "only namespace a's expired row"
    );
    // b's and the unscoped expired rows are still stored: an unscoped purge removes both.
    assert_eq!(home.json(&["kv", "purge"]), json!({"purged": 2}));

    home.ok(&["kv", "--ns", "a", "set", "g", "k", "1"]);
    // The same key in namespace b does not exist yet: --if-absent writes it.
    home.ok(&["kv", "--ns", "b", "set", "g", "k", "2", "--if-absent"]);
    home.run(&["kv", "--ns", "b", "set", "g", "k", "3", "--if-absent"])
        .library_error();
    let version = home.json(&["kv", "--ns", "b", "get", "g", "k"])["version"]
        .as_u64()
        .expect("version");
    home.ok(&[
        "kv",
        "--ns",
        "b",
        "set",
        "g",
        "k",
        "4",
        "--if-version",
        &version.to_string(),
    ]);
    assert_eq!(home.ok(&["kv", "--ns", "a", "get", "g", "k"]), "1\n");
    assert_eq!(home.ok(&["kv", "--ns", "b", "get", "g", "k"]), "4\n");
}
