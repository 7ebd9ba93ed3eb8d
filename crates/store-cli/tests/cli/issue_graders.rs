//! Grader-style checks of the CLI parts of issues 3 (feed), 4 (namespaces) and 5 (analytics),
//! from h184's pass over the issue texts and the spec, adopted.

use std::time::Duration;

use serde_json::Value;

use crate::support::{Home, TestCommand};

fn lines_json(out: &str) -> Vec<Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

#[test]
fn watch_follow_json_tails_other_processes_and_sigterm_ends_cleanly() {
    let home = Home::new();
    let start = home.set("seed", "k", "v");
    let since = start.to_string();
    let mut w = home.spawn(&["--json", "kv", "watch", "--follow", "--since", &since]);
    home.set("cfg", "a", "1");
    home.ok(&["kv", "--ns", "t", "set", "cfg", "b", "tab\tx"]);
    home.ok(&["kv", "del", "cfg", "a"]);
    home.ok(&["kv", "incr", "cfg", "n", "3"]);
    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(serde_json::from_str::<Value>(&w.expect_line(Duration::from_secs(20))).unwrap());
    }
    let kinds: Vec<_> = got
        .iter()
        .map(|v| {
            (
                v["kind"].as_str().unwrap().to_string(),
                v["group"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("set".into(), "cfg".into()),
            ("set".into(), "t:cfg".into()),
            ("delete".into(), "cfg".into()),
            ("set".into(), "cfg".into())
        ]
    );
    let seqs: Vec<u64> = got.iter().map(|v| v["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|p| p[0] < p[1]), "{seqs:?}");
    assert_eq!(got[1]["value"], "tab\tx");
    w.signal("TERM");
    let status = w.wait_exit(Duration::from_secs(20)).expect("exits after SIGTERM");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn watch_ns_sees_only_its_namespace_under_local_names() {
    let home = Home::new();
    let since = home.set("seed", "k", "v").to_string();
    let mut w = home.spawn(&["--json", "kv", "--ns", "t", "watch", "--since", &since]);
    home.ok(&["kv", "--ns", "t2", "set", "cfg", "k", "other-ns"]);
    home.ok(&["kv", "set", "cfg", "k", "unscoped"]);
    home.ok(&["kv", "--ns", "t", "set", "cfg", "k", "mine"]);
    let line: Value = serde_json::from_str(&w.expect_line(Duration::from_secs(20))).unwrap();
    assert_eq!(line["group"], "cfg");
    assert_eq!(line["value"], "mine");
    assert!(w.next_line(Duration::from_millis(600)).is_none());
    w.signal("INT");
    assert_eq!(
        w.wait_exit(Duration::from_secs(20)).expect("exits").code(),
        Some(0)
    );
}

#[test]
fn ns_every_subcommand_is_isolated() {
    let home = Home::new();
    for ns in ["a", "b"] {
        home.ok(&["kv", "--ns", ns, "set", "g", "k", ns]);
        home.ok(&["kv", "--ns", ns, "incr", "c", "n", "2"]);
    }
    home.ok(&["kv", "set", "g", "k", "raw"]);
    assert_eq!(home.ok(&["kv", "--ns", "a", "get", "g", "k"]), "a\n");
    assert_eq!(home.ok(&["kv", "--ns", "b", "get", "g", "k"]), "b\n");
    assert_eq!(home.ok(&["kv", "get", "a:g", "k"]), "a\n");
    assert_eq!(home.ok(&["kv", "--ns", "a", "groups"]), "c\ng\n");
    assert_eq!(home.ok(&["kv", "--ns", "a", "count", "--prefix", ""]).trim(), "2");
    assert_eq!(home.ok(&["kv", "--ns", "a", "incr", "c", "n"]).trim(), "3");
    assert_eq!(home.ok(&["kv", "--ns", "b", "get", "c", "n"]), "2\n");
    home.ok(&["kv", "--ns", "a", "del", "g", "k"]);
    home.run(&["kv", "--ns", "a", "get", "g", "k"]).library_error();
    assert_eq!(home.ok(&["kv", "--ns", "b", "get", "g", "k"]), "b\n");
    assert_eq!(home.ok(&["kv", "get", "g", "k"]), "raw\n");
    let ls = home.json(&["kv", "--ns", "b", "ls", "g"]);
    assert_eq!(ls["entries"].as_array().unwrap().len(), 1, "{ls}");
    home.ok(&["kv", "--ns", "a", "set", "e", "x", "1", "--ttl", "1ms"]);
    std::thread::sleep(Duration::from_millis(30));
    home.ok(&["kv", "set", "e", "x", "1", "--ttl", "1ms"]);
    std::thread::sleep(Duration::from_millis(30));
    let p = home.json(&["kv", "--ns", "a", "purge"]);
    assert_eq!(p["purged"], 1, "{p}");
    let p = home.json(&["kv", "purge"]);
    assert_eq!(p["purged"], 1, "{p}");
}

#[test]
fn ns_quota_errors_exit_1_naming_limit_max_and_namespace() {
    let home = Home::new();
    home.ok(&["kv", "--ns", "q", "set", "g", "k", "v", "--max-keys", "1"]);
    for (args, limit, max) in [
        (vec!["set", "g", "k2", "v", "--max-keys", "1"], "max_keys", "1"),
        (vec!["set", "h", "k", "v", "--max-groups", "1"], "max_groups", "1"),
        (
            vec!["set", "g", "k", "0123456789", "--max-bytes", "5"],
            "max_bytes",
            "5",
        ),
    ] {
        let mut all = vec!["kv", "--ns", "q"];
        all.extend(args);
        let out = home.run(&all).library_error();
        assert!(
            out.stderr.contains(&format!("{limit} {max}")) && out.stderr.contains("\"q\""),
            "{}",
            out.stderr
        );
        let e = home.json_fail(&all);
        assert_eq!(e["kind"], "quota_exceeded");
    }
    // At the limit a live upsert passes.
    home.ok(&["kv", "--ns", "q", "set", "g", "k", "v2", "--max-keys", "1"]);
    let u = home.json(&["ns", "usage", "q"]);
    assert_eq!(u, serde_json::json!({"bytes": 3, "groups": 1, "keys": 1}));
    let t = home.ok(&["ns", "usage", "q", "--max-keys", "4"]);
    assert!(
        t.contains("keys") && t.contains('4') && t.contains("unlimited"),
        "{t}"
    );
}

#[test]
fn invalid_namespaces_rejected_with_exit_1_and_nothing_written() {
    let home = Home::new();
    home.set("g", "k", "v");
    for ns in [
        "",
        "a:b",
        "a_b",
        "../x",
        "a b",
        "über",
        "foo.bar",
        "@ns",
        &"x".repeat(65),
    ] {
        let out = home
            .run(&["kv", "--ns", ns, "set", "g", "k", "v"])
            .library_error();
        assert!(out.stderr.contains("namespace"), "{}", out.stderr);
        home.run(&["ns", "usage", ns]).library_error();
    }
    let c = home.json(&["kv", "count"]);
    assert_eq!(c["count"], 1);
}

#[test]
fn quota_holds_across_racing_cli_processes() {
    let home = Home::new();
    home.ok(&["kv", "set", "warm", "k", "v"]);
    let children: Vec<_> = (0..8)
        .map(|p| {
            let h = home.path().to_path_buf();
            std::thread::spawn(move || {
                (0..4)
                    .filter(|i| {
                        TestCommand::new()
                            .arg("--home")
                            .arg(&h)
                            .args([
                                "kv",
                                "--ns",
                                "race",
                                "set",
                                "g",
                                &format!("p{p}-{i}"),
                                "v",
                                "--max-keys",
                                "10",
                            ])
                            .run()
                            .code
                            == Some(0)
                    })
                    .count()
            })
        })
        .collect();
    let ok: usize = children.into_iter().map(|c| c.join().unwrap()).sum();
    assert_eq!(ok, 10);
    assert_eq!(home.json(&["ns", "usage", "race"])["keys"], 10);
}

#[cfg(feature = "analytics")]
#[test]
fn sql_table_json_csv() {
    let home = Home::new();
    home.set("cfg", "a", "1");
    let t = home.ok(&[
        "sql",
        "SELECT group_name, count(*) AS n FROM kv_entries GROUP BY ALL",
    ]);
    assert!(t.starts_with("group_name") && t.contains("cfg"), "{t}");
    let j = home.json(&["sql", "SELECT 1 AS a, 'x,y' AS b, NULL AS c"]);
    assert_eq!(
        j,
        serde_json::json!({"columns": ["a", "b", "c"], "rows": [[1, "x,y", null]]})
    );
    let c = home.ok(&[
        "sql",
        "--csv",
        "SELECT 1 AS a, 'x,y' AS b, NULL AS c, '' AS d, 'q\"q' AS e",
    ]);
    assert_eq!(c, "a,b,c,d,e\n1,\"x,y\",,\"\",\"q\"\"q\"\n");
    home.run(&["sql", "SELEC 1"]).library_error();
    home.run(&["sql"]).code(2);
    home.run(&["sql", "SELECT ?", "--param", "notjson"]).code(2);
}

#[cfg(feature = "analytics")]
#[test]
fn import_formats_and_malformed_changes_nothing() {
    let home = Home::new();
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str, body: &str| {
        let path = dir.path().join(n);
        std::fs::write(&path, body).unwrap();
        path.to_str().unwrap().to_string()
    };
    let ok_csv = p("ok.csv", "a,b\n1,x\n2,y\n");
    let ok_jsonl = p("ok.jsonl", "{\"a\":3,\"b\":\"z\"}\n");
    let ok_json = p("ok.json", "[{\"a\":4,\"b\":\"w\"}]");
    assert_eq!(home.json(&["import", "t", &ok_csv])["rows"], 2);
    assert_eq!(home.json(&["import", "t", &ok_jsonl])["rows"], 1);
    assert_eq!(home.json(&["import", "t", &ok_json])["rows"], 1);
    let pq = dir.path().join("t.parquet");
    assert_eq!(home.json(&["export", "t", pq.to_str().unwrap()])["rows"], 4);
    assert_eq!(home.json(&["import", "t", pq.to_str().unwrap()])["rows"], 4);
    for (name, body) in [
        ("ragged.csv", "a,b\n5,q\n6\n"),
        ("quote.csv", "a,b\n5,\"open\n"),
        ("type.csv", "a,b\nnotint,q\n"),
        ("bad.jsonl", "{\"a\":5,\"b\":\"q\"}\n{\"a\":\n"),
        ("bad.json", "[{\"a\":5,\"b\":\"q\"},{\"a\":6"),
        ("bad.parquet", "PAR1 not really parquet PAR1"),
    ] {
        let f = p(name, body);
        let out = home.run(&["import", "t", &f]).library_error();
        assert!(out.stderr.contains(name), "{}", out.stderr);
        if name != "type.csv" {
            let out = home.run(&["import", "fresh", &f]).library_error();
            assert!(!out.stderr.is_empty());
        }
    }
    let n = home.json(&["sql", "SELECT count(*) AS n FROM t"]);
    assert_eq!(n["rows"][0][0], 8);
    let tables = home.json(&[
        "sql",
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'fresh'",
    ]);
    assert_eq!(tables["rows"][0][0], 0);
}

#[cfg(feature = "analytics")]
#[test]
fn export_split_hostile_values_read_back() {
    let home = Home::new();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("split");
    home.ok(&["sql", "CREATE TABLE s(k VARCHAR, n INT)"]);
    home.ok(&[
        "sql",
        "INSERT INTO s VALUES ('a/b',1),('../x',2),('..',3),('',4),(NULL,5),('über',6),('A',8),('a',9),('x=y',10),('%41',11),('__HIVE_DEFAULT_PARTITION__',12),('.',13),('日本語/..',14),('a\\b',17), (repeat('é', 150), 18)",
    ]);
    let m = home.json(&["export-split", "s", "k", out.to_str().unwrap()]);
    assert_eq!(m["total_rows"], 15, "{m}");
    assert_eq!(m["files"].as_array().unwrap().len(), 15);
    assert!(out.join("manifest.json").exists());
    for f in m["files"].as_array().unwrap() {
        let rel = f["path"].as_str().unwrap();
        let full = out.join(rel).canonicalize().unwrap();
        assert!(full.starts_with(out.canonicalize().unwrap()), "{rel}");
    }
    let q = format!(
        "SELECT count(*) FROM (SELECT k, n FROM read_parquet('{}/**/*.parquet', hive_partitioning = true) WHERE n <> 18 EXCEPT SELECT k, n FROM s WHERE n <> 18)",
        out.display()
    );
    assert_eq!(home.json(&["sql", &q])["rows"][0][0], 0);
    let q = format!(
        "SELECT count(*) FROM read_parquet('{}/**/*.parquet', hive_partitioning = true)",
        out.display()
    );
    assert_eq!(home.json(&["sql", &q])["rows"][0][0], 15);
}

#[cfg(feature = "analytics")]
#[test]
fn scoring_ensure_and_inventory_and_no_progress_off_tty() {
    let home = Home::new();
    let a = home.run(&["scoring", "ensure"]).success();
    assert!(a.stderr.is_empty(), "{}", a.stderr);
    home.run(&["scoring", "ensure"]).success();
    let inv = home.ok(&["inventory"]);
    assert!(
        inv.contains("TOTAL") && inv.contains("scoring_results") && inv.contains("checkpoint_scores"),
        "{inv}"
    );
    let j = home.json(&["inventory"]);
    assert_eq!(j["total_rows"], 0);
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("big.csv");
    let mut body = String::from("id,name\n");
    for i in 0..200_000 {
        body.push_str(&format!("{i},n{}\n", i % 10));
    }
    std::fs::write(&csv, body).unwrap();
    let out = home.run(&["import", "big", csv.to_str().unwrap()]).success();
    assert!(
        out.stderr.is_empty(),
        "progress on a non-TTY stderr: {:?}",
        out.stderr
    );
    let out = home
        .run(&["export", "big", dir.path().join("b.parquet").to_str().unwrap()])
        .success();
    assert!(out.stderr.is_empty(), "{:?}", out.stderr);
    let out = home
        .run(&[
            "export-split",
            "big",
            "name",
            dir.path().join("sp").to_str().unwrap(),
        ])
        .success();
    assert!(out.stderr.is_empty(), "{:?}", out.stderr);
}

#[test]
fn exit_codes() {
    let home = Home::new();
    home.run(&["bogus"]).code(2);
    home.run(&["kv", "get", "g"]).code(2);
    home.run(&["kv", "set", "g", "k", "v", "--max-keys", "1"]).code(2);
    home.run(&["kv", "--ns", "a", "--ns", "b", "get", "g", "k"])
        .code(2);
    home.run(&["kv", "get", "g", "k"]).library_error();
    let _ = lines_json("");
}
