//! Analytics commands (SPEC §12): `sql`, `import`, `export`, `export-split`, `scoring ensure`,
//! `inventory`, each as its own process over one home.

use serde_json::json;

use crate::support::{Home, Outcome, TestCommand, names_in};

#[test]
fn sql_prints_a_table_json_and_csv() {
    let home = Home::new();
    let query = "SELECT 1 AS n, 'a,b' AS s UNION ALL SELECT 2, NULL ORDER BY n";
    let table = home.ok(&["sql", query]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines, ["n  s", "1  a,b", "2  NULL"]);

    let v = home.json(&["sql", query]);
    assert_eq!(v["columns"], json!(["n", "s"]));
    assert_eq!(v["rows"], json!([[1, "a,b"], [2, null]]));

    // As in DuckDB's CSV output: NULL is an empty field, the empty string `""`.
    let csv = home.ok(&["sql", "--csv", query]);
    assert_eq!(csv, "n,s\n1,\"a,b\"\n2,\n");
    let csv = home.ok(&["sql", "--csv", "SELECT '' AS e, NULL AS n, 'NULL' AS t"]);
    assert_eq!(csv, "e,n,t\n\"\",,NULL\n");
}

#[test]
fn table_output_shows_control_characters_escaped_and_keeps_one_line_per_row() {
    let home = Home::new();
    let query = "SELECT 1 AS n, 'two' || chr(10) || 'lines' AS s, 'esc' || chr(27) || '[31m' AS e";
    let table = home.ok(&["sql", query]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines, ["n  s           e", "1  two\\nlines  esc\\u{1b}[31m"]);
    assert!(
        !table.contains('\u{1b}'),
        "an escape sequence reached the terminal"
    );
    // Column names come from the data too.
    let header = home.ok(&["sql", "SELECT 1 AS \"a\u{1b}[2Jb\""]);
    assert_eq!(header.lines().next(), Some("a\\u{1b}[2Jb"));
    // The JSON and CSV forms keep the exact text.
    let v = home.json(&["sql", query]);
    assert_eq!(v["rows"], json!([[1, "two\nlines", "esc\u{1b}[31m"]]));

    home.ok(&["kv", "set", "g", "k", "a\tb"]);
    assert_eq!(home.ok(&["kv", "ls", "g"]).lines().nth(1), Some("k    a\\tb"));
    assert_eq!(home.ok(&["kv", "get", "g", "k"]), "a\tb\n");
}

#[test]
fn sql_parameters_are_bound_not_spliced() {
    let home = Home::new();
    let v = home.json(&[
        "sql",
        "SELECT ? AS x, ? AS y",
        "--param",
        "\"'; DROP TABLE t; --\"",
        "--param",
        "7",
    ]);
    assert_eq!(v["rows"], json!([["'; DROP TABLE t; --", 7]]));
}

#[test]
fn a_cell_wider_than_any_format_width_prints_without_panicking() {
    let home = Home::new();
    let out = home.ok(&["sql", "SELECT repeat('x', 70000) AS wide, 1 AS n"]);
    let row = out.lines().nth(1).expect("a data row");
    assert!(row.starts_with(&"x".repeat(70_000)), "row of {} bytes", row.len());
    assert!(row.ends_with("  1"));
}

#[test]
fn sql_over_untyped_nulls_nested_in_lists_and_structs_prints_them() {
    let home = Home::new();
    let v = home.json(&["sql", "SELECT [NULL] AS l, {'a': NULL, 'b': 1} AS s"]);
    assert_eq!(v["rows"], json!([[[null], {"a": null, "b": 1}]]));
    home.ok(&["sql", "SELECT list(NULL) AS l FROM range(3)"]);
}

#[test]
fn sql_error_exits_1_with_a_duckdb_error() {
    let home = Home::new();
    let error = home.json_fail(&["sql", "SELEC nonsense"]);
    assert_eq!(error["kind"], "duckdb");
    home.run(&["sql", "SELECT * FROM no_such_table"]).library_error();
}

#[test]
fn sql_joins_kv_entries_written_by_another_process() {
    let home = Home::new();
    home.ok(&["kv", "set", "models", "m1", "alpha"]);
    home.ok(&["kv", "set", "models", "m2", "beta"]);
    home.ok(&["sql", "CREATE TABLE scores AS SELECT * FROM (VALUES ('m1', 0.5::DOUBLE), ('m2', 0.9::DOUBLE)) v(model, score)"]);
    let v = home.json(&[
        "sql",
        "SELECT e.entry_value, s.score FROM kv_entries e JOIN scores s ON s.model = e.entry_key \
         WHERE e.group_name = 'models' ORDER BY s.score",
    ]);
    assert_eq!(v["rows"], json!([["alpha", 0.5], ["beta", 0.9]]));
}

#[test]
fn import_then_export_round_trips_and_a_malformed_csv_changes_nothing() {
    let home = Home::new();
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.csv");
    std::fs::write(&good, "id,name\n1,a\n2,b\n").unwrap();
    let v = home.json(&["import", "people", good.to_str().unwrap()]);
    assert_eq!(v["rows"], 2);
    assert!(
        home.ok(&["import", "people", good.to_str().unwrap()])
            .contains("imported 2 rows")
    );

    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "id,name\n3,c\nnot-a-number,d,extra,fields\n").unwrap();
    let error = home.json_fail(&["import", "people", bad.to_str().unwrap()]);
    assert!(error["message"].as_str().unwrap().contains("bad.csv"), "{error}");
    assert_eq!(
        home.json(&["sql", "SELECT count(*) AS n FROM people"])["rows"],
        json!([[4]])
    );

    let parquet = dir.path().join("out").join("people.parquet");
    let v = home.json(&["export", "people", parquet.to_str().unwrap()]);
    assert_eq!(v["rows"], 4);
    let query = format!(
        "SELECT count(*), sum(id) FROM read_parquet('{}')",
        parquet.display()
    );
    assert_eq!(home.json(&["sql", &query])["rows"], json!([[4, 6]]));
}

#[test]
fn export_split_writes_a_hive_layout_and_manifest() {
    let home = Home::new();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("by-model");
    home.ok(&[
        "sql",
        "CREATE TABLE s AS SELECT * FROM (VALUES ('a/b', 1), ('a/b', 2), ('c', 3), (NULL, 4)) v(model, n)",
    ]);
    let text = home.ok(&["export-split", "s", "model", out.to_str().unwrap()]);
    assert!(text.contains("wrote 4 rows into 3 files"), "{text}");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["total_rows"], 4);
    assert_eq!(manifest["files"].as_array().unwrap().len(), 3);
    assert!(out.join("model=a%2Fb/data.parquet").is_file());
    assert!(
        out.join("model=__HIVE_DEFAULT_PARTITION__/data.parquet")
            .is_file()
    );

    let json_out = dir.path().join("again");
    let v = home.json(&["export-split", "s", "model", json_out.to_str().unwrap()]);
    assert_eq!(v["total_rows"], 4);
    let missing = home.json_fail(&["export-split", "s", "nope", json_out.to_str().unwrap()]);
    assert_eq!(missing["kind"], "missing");
}

#[test]
fn scoring_ensure_then_inventory_lists_the_tables() {
    let home = Home::new();
    assert!(home.ok(&["scoring", "ensure"]).contains("scoring tables ready"));
    home.ok(&["scoring", "ensure"]);
    let text = home.ok(&["inventory"]);
    for needle in [
        "Analytics inventory",
        "checkpoint_scores",
        "probe_results",
        "scoring_results",
        "TOTAL",
    ] {
        assert!(text.contains(needle), "{needle} missing from\n{text}");
    }
    let v = home.json(&["inventory"]);
    assert_eq!(v["total_rows"], 0, "{v}");
}

#[test]
fn import_with_an_explicit_format_ignores_the_extension() {
    let home = Home::new();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("export.dat");
    std::fs::write(&file, "a\tb\n1\tx\n2\ty\n").unwrap();
    let v = home.json(&["import", "t", file.to_str().unwrap(), "--format", "tsv"]);
    assert_eq!(v["rows"], 2);
    assert_eq!(
        home.json(&["sql", "SELECT b FROM t ORDER BY a"])["rows"],
        json!([["x"], ["y"]])
    );
    // Without --format the extension decides, and .dat says nothing.
    let error = home.json_fail(&["import", "t", file.to_str().unwrap()]);
    assert_eq!(error["kind"], "invalid_input");
}

#[test]
fn import_takes_no_header_and_delimiter_flags() {
    let home = Home::new();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rows.csv");
    std::fs::write(&file, "1;alpha\n2;beta\n").unwrap();
    let v = home.json(&[
        "import",
        "t",
        file.to_str().unwrap(),
        "--no-header",
        "--delimiter",
        ";",
    ]);
    assert_eq!(v["rows"], 2, "the first line is data, not a header");
    let rows = home.json(&["sql", "SELECT * FROM t ORDER BY ALL"]);
    assert_eq!(rows["rows"], json!([[1, "alpha"], [2, "beta"]]));
    // CSV settings on a file read as JSON would be ignored: they are refused instead.
    let jsonl = dir.path().join("rows.jsonl");
    std::fs::write(&jsonl, "{\"a\": 1}\n").unwrap();
    for flags in [&["--no-header"][..], &["--delimiter", ";"][..]] {
        let mut args = vec!["import", "j", jsonl.to_str().unwrap()];
        args.extend_from_slice(flags);
        let err = home.json_fail(&args);
        assert_eq!(err["kind"], "invalid_input", "{flags:?}: {err}");
    }
    assert_eq!(home.json(&["import", "j", jsonl.to_str().unwrap()])["rows"], 1);
}

/// `--delimiter '\t'` reaches the tool as a backslash and a `t`: the usage error says how to
/// pass a tab rather than only that the value is too long.
#[test]
fn a_backslash_t_delimiter_is_a_usage_error_pointing_at_tsv() {
    let home = Home::new();
    let out = home
        .cmd(["import", "t", "rows.csv", "--delimiter", "\\t"])
        .run()
        .code(2);
    assert!(out.stderr.contains("--format tsv"), "{}", out.stderr);
    let out = home
        .cmd(["import", "t", "rows.csv", "--delimiter", ";;"])
        .run()
        .code(2);
    assert!(out.stderr.contains("one character"), "{}", out.stderr);
}

#[test]
fn table_columns_line_up_in_terminal_columns_with_wide_characters() {
    let home = Home::new();
    let table = home.ok(&[
        "sql",
        "SELECT '漢字漢字' AS a, 1 AS b UNION ALL SELECT 'ab', 2 ORDER BY b",
    ]);
    // "漢字漢字" takes eight terminal columns, so "ab" is padded to eight as well.
    assert_eq!(
        table.lines().collect::<Vec<_>>(),
        ["a         b", "漢字漢字  1", "ab        2"]
    );
}

#[test]
fn an_export_path_starting_with_a_tilde_is_relative_like_every_other_path() {
    let home = Home::new();
    let cwd = tempfile::tempdir().unwrap();
    let fake_home = tempfile::tempdir().unwrap();
    home.ok(&["sql", "CREATE TABLE t AS SELECT range AS n FROM range(3)"]);
    let run = |args: &[&str]| {
        home.cmd(args)
            .current_dir(cwd.path())
            .env("HOME", fake_home.path())
            .run()
            .success()
    };
    // DuckDB expands a leading `~`; the file system does not. Before, the export wrote to
    // $HOME/out.parquet.tmp and then failed to rename `./~/out.parquet.tmp`.
    run(&["export", "t", "~/out.parquet"]);
    assert!(cwd.path().join("~").join("out.parquet").is_file());
    run(&["export-split", "t", "n", "~/split"]);
    assert!(cwd.path().join("~").join("split").join("manifest.json").is_file());
    // And an import reads the file just exported, not one under $HOME.
    run(&["import", "back", "~/out.parquet"]);
    assert_eq!(
        home.json(&["sql", "SELECT count(*) AS n FROM back"])["rows"],
        json!([[3]])
    );
    let stray: Vec<_> = std::fs::read_dir(fake_home.path()).unwrap().collect();
    assert!(stray.is_empty(), "files written to $HOME: {stray:?}");
}

#[test]
fn a_home_starting_with_a_tilde_keeps_its_analytics_database_there() {
    let cwd = tempfile::tempdir().unwrap();
    let fake_home = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        TestCommand::new()
            .args([
                "--home",
                "~h",
                "sql",
                "CREATE TABLE IF NOT EXISTS t AS SELECT 1 AS n",
            ])
            .current_dir(cwd.path())
            .env("HOME", fake_home.path())
            .run()
            .success();
    }
    // Before, DuckDB opened $HOME/h/workspace.duckdb while the KV store lived in ./~h.
    assert!(cwd.path().join("~h").join("workspace.duckdb").is_file());
    let stray: Vec<_> = std::fs::read_dir(fake_home.path()).unwrap().collect();
    assert!(stray.is_empty(), "files written to $HOME: {stray:?}");
}

#[test]
fn export_to_an_empty_path_is_invalid_input_with_a_fix() {
    let home = Home::new();
    home.ok(&["sql", "CREATE TABLE t AS SELECT 1 AS n"]);
    for args in [&["export", "t", ""][..], &["export-split", "t", "n", ""][..]] {
        let err = home.json_fail(args);
        assert_eq!(err["kind"], "invalid_input", "{args:?}: {err}");
        assert!(err["message"].as_str().unwrap().contains("empty"), "{err}");
    }
}

/// `store export --compression` picks the Parquet codec (zstd without it); an unknown codec is
/// invalid input naming the choices, and writes nothing.
#[test]
fn export_takes_a_compression_codec_and_refuses_an_unknown_one() {
    let home = Home::new();
    home.ok(&["sql", "CREATE TABLE t AS SELECT range AS n FROM range(100)"]);
    let dir = tempfile::tempdir().unwrap();
    let codec_of = |file: &std::path::Path| {
        let query = format!(
            "SELECT DISTINCT compression FROM parquet_metadata('{}')",
            file.display()
        );
        home.json(&["sql", &query])["rows"].clone()
    };
    let plain = dir.path().join("plain.parquet");
    home.ok(&["export", "t", plain.to_str().unwrap()]);
    assert_eq!(codec_of(&plain), json!([["ZSTD"]]));
    for (codec, written) in [
        ("snappy", "SNAPPY"),
        ("GZIP", "GZIP"),
        ("uncompressed", "UNCOMPRESSED"),
    ] {
        let file = dir.path().join(format!("{codec}.parquet"));
        let v = home.json(&["export", "t", file.to_str().unwrap(), "--compression", codec]);
        assert_eq!(v["rows"], 100, "{codec}");
        assert_eq!(codec_of(&file), json!([[written]]), "{codec}");
    }
    let refused = dir.path().join("lzo.parquet");
    let err = home.json_fail(&["export", "t", refused.to_str().unwrap(), "--compression", "lzo"]);
    assert_eq!(err["kind"], "invalid_input", "{err}");
    assert!(err["message"].as_str().unwrap().contains("zstd"), "{err}");
    assert!(!refused.exists());
}

/// `store export` writes Parquet: a file named as CSV or JSON (what `store import` would read as
/// such, compressed or not, in any case) is refused and nothing is written; other names get
/// the Parquet file.
#[test]
fn export_to_a_csv_or_json_name_is_refused_instead_of_writing_parquet_under_it() {
    let home = Home::new();
    home.ok(&["sql", "CREATE TABLE t AS SELECT 1 AS n"]);
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "out.csv",
        "out.TSV",
        "out.json",
        "out.jsonl",
        "out.ndjson",
        "out.txt",
        "out.csv.gz",
        "out.json.zst",
    ] {
        let target = dir.path().join(name);
        let err = home.json_fail(&["export", "t", target.to_str().unwrap()]);
        assert_eq!(err["kind"], "invalid_input", "{name}: {err}");
        let message = err["message"].as_str().unwrap();
        assert!(
            message.contains("export writes Parquet") && message.contains("--csv"),
            "{message}"
        );
        assert!(!target.exists(), "{name} was written");
    }
    for name in ["out.parquet", "out.pq", "out", "out.csv.parquet"] {
        let target = dir.path().join(name);
        home.ok(&["export", "t", target.to_str().unwrap()]);
        assert_eq!(&std::fs::read(&target).unwrap()[..4], b"PAR1", "{name}");
    }
}

/// DuckDB reads a relative `md:…` as a MotherDuck database and `:memory:` as no file at all;
/// homes so named still hold their analytics database as a file.
#[test]
fn homes_named_like_duckdb_prefixes_hold_their_database_as_a_file() {
    let cwd = tempfile::tempdir().unwrap();
    for name in ["md:data", ":memory:"] {
        let run = |args: &[&str]| {
            TestCommand::new()
                .env("HOME", cwd.path())
                .current_dir(cwd.path())
                .args(["--home", name])
                .args(args)
                .run()
                .success()
        };
        run(&["sql", "CREATE TABLE t AS SELECT 42 AS answer"]);
        assert!(cwd.path().join(name).join("workspace.duckdb").is_file(), "{name}");
        let out = run(&["sql", "--csv", "SELECT answer FROM t"]);
        assert_eq!(out.stdout, "answer\n42\n", "{name}");
    }
}

/// A negative number is valid JSON for `--param`, not a flag.
#[test]
fn sql_takes_negative_numbers_as_parameters() {
    let home = Home::new();
    let v = home.json(&["sql", "SELECT ? AS a, ? AS b", "--param", "-7", "--param", "-1.5"]);
    assert_eq!(v["rows"], json!([[-7, -1.5]]));
}

/// An integer beyond 64 bits is bound as its text, which DuckDB casts exactly: it was rounded
/// (`18446744073709551617` stored as `…616`). Numbers with a fraction stay numbers.
#[test]
fn sql_keeps_every_digit_of_a_long_integer_parameter() {
    let home = Home::new();
    let v = home.json(&[
        "sql",
        "SELECT ?::HUGEINT::VARCHAR AS h, ?::DECIMAL(38,0)::VARCHAR AS d, ? * 2 AS small, ? AS big, ? + 1 AS zero",
        "--param",
        "18446744073709551617",
        "--param",
        "100000000000000000000000",
        "--param",
        "1.2500000000000000001",
        "--param",
        "-9223372036854775808",
        "--param",
        "-0",
    ]);
    assert_eq!(
        v["rows"],
        json!([[
            "18446744073709551617",
            "100000000000000000000000",
            2.5,
            -9223372036854775808i64,
            1.0
        ]])
    );
}

#[test]
fn concurrent_sql_commands_on_one_home_wait_for_each_other_instead_of_failing() {
    let home = Home::new();
    home.ok(&["kv", "set", "g", "k", "v"]);
    // DuckDB lets one process at a time hold the file: each command waits its turn (up to the
    // busy timeout, a minute here so that a loaded machine cannot run it out) rather than
    // failing on the lock.
    let outcomes = run_at_once(
        &home,
        4,
        &[
            "--busy-timeout",
            "1m",
            "--json",
            "sql",
            "SELECT (SELECT count(*) FROM range(30000000)) + (SELECT count(*) FROM kv_entries) AS n",
        ],
    );
    for out in outcomes {
        let out = out.success();
        assert_eq!(out.json()["rows"][0][0], json!(30_000_001), "{}", out.stdout);
    }
}

/// `n` runs of `store args` on `home` started at once; their outcomes, in order.
fn run_at_once(home: &Home, n: usize, args: &[&str]) -> Vec<Outcome> {
    std::thread::scope(|s| {
        let runs: Vec<_> = (0..n).map(|_| s.spawn(|| home.run(args))).collect();
        runs.into_iter().map(|r| r.join().unwrap()).collect()
    })
}

#[test]
fn processes_using_analytics_for_the_first_time_at_once_all_succeed() {
    // DuckDB creates a new file before locking it: a second process opening it meanwhile
    // found an empty file ("not a valid DuckDB database file") and could leave it empty.
    for round in 0..3 {
        let home = Home::new();
        home.ok(&["kv", "set", "g", "k", "v"]);
        let outcomes = run_at_once(
            &home,
            8,
            &[
                "--busy-timeout",
                "1m",
                "--json",
                "sql",
                "SELECT count(*) AS n FROM kv_entries",
            ],
        );
        for out in outcomes {
            let out = out.success();
            assert_eq!(
                out.json()["rows"][0][0],
                json!(1),
                "round {round}: {}",
                out.stdout
            );
        }
    }
}

#[test]
fn an_empty_analytics_file_left_by_a_killed_first_open_is_created_afresh() {
    let home = Home::new();
    home.ok(&["kv", "set", "g", "k", "v"]);
    std::fs::write(home.path().join("workspace.duckdb"), "").unwrap();
    let out = home.json(&["sql", "SELECT count(*) AS n FROM kv_entries"]);
    assert_eq!(out["rows"][0][0], json!(1));
}

#[test]
fn a_json_error_still_exits_1_when_stdout_is_already_closed() {
    let home = Home::new();
    let script = format!(
        "'{}' --home '{}' --json kv get g missing | true; exit ${{PIPESTATUS[0]}}",
        crate::support::BIN,
        home.path().display()
    );
    for _ in 0..5 {
        let status = std::process::Command::new("bash")
            .args(["-c", &script])
            .status()
            .unwrap();
        assert_eq!(status.code(), Some(1));
    }
}

/// `store export` of a view that reads stdin writes every row: the export binds the view once
/// (reading its column types first, to write fixed-size arrays as lists, bound it twice, and
/// the first bind drained the pipe: "wrote 0 rows").
#[test]
fn exporting_a_view_over_stdin_writes_every_row() {
    let home = Home::new();
    home.ok(&[
        "sql",
        "CREATE VIEW piped AS SELECT a FROM read_csv('/dev/stdin', header = true, columns = {'a': 'INTEGER'})",
    ]);
    let csv: String = std::iter::once("a\n".to_string())
        .chain((0..50_000).map(|i| format!("{i}\n")))
        .collect();
    let out = home.path().join("piped.parquet");
    let result = home
        .cmd(["--json", "export", "piped", out.to_str().unwrap()])
        .stdin(csv)
        .run()
        .success();
    let v: serde_json::Value = serde_json::from_str(result.stdout.trim()).unwrap();
    assert_eq!(v["rows"], 50_000, "{v}");
}

/// The partition directories a split's `manifest.json` lists, or `None` without a manifest.
fn manifest_partitions(out: &std::path::Path) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(out.join("manifest.json")).ok()?;
    let manifest: serde_json::Value = serde_json::from_str(&text).expect("manifest is JSON");
    let mut listed: Vec<String> = manifest["files"]
        .as_array()
        .expect("manifest files")
        .iter()
        .map(|f| {
            f["path"]
                .as_str()
                .expect("file path")
                .split('/')
                .next()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    listed.sort();
    Some(listed)
}

/// The entries of `out` other than `manifest.json`, sorted.
fn present_partitions(out: &std::path::Path) -> Vec<String> {
    let mut present = names_in(out);
    present.retain(|n| n != "manifest.json");
    present
}

/// SPEC §8: split files move into place only when complete. A split export SIGKILLed while it
/// publishes over an earlier export (of another table, so the partitions differ) leaves either
/// no `manifest.json` or one listing exactly the partitions beside it, never the earlier
/// manifest over a mix of partitions; the next export rolls the dead publish back and writes a
/// whole one.
#[test]
fn a_split_export_killed_while_publishing_never_leaves_a_manifest_that_disagrees_with_its_files() {
    use std::time::{Duration, Instant};
    let home = Home::new();
    home.ok(&[
        "sql",
        "CREATE TABLE big AS SELECT range AS id, range % 2000 AS k FROM range(400000)",
    ]);
    home.ok(&[
        "sql",
        "CREATE TABLE small AS SELECT range AS id, 100000 + range AS k FROM range(400)",
    ]);
    let parent = tempfile::tempdir().unwrap();
    let out = parent.path().join("out");
    let out_arg = out.to_str().unwrap();
    let mut killed_publishing = 0;
    for round in 0..4u64 {
        home.ok(&["export-split", "small", "k", out_arg]);
        assert_eq!(manifest_partitions(&out).map(|m| m.len()), Some(400));
        let mut export = home.spawn(&["export-split", "big", "k", out_arg]);
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline && export.wait_exit(Duration::ZERO).is_none() {
            let publishing = std::fs::read_dir(parent.path())
                .unwrap()
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with(".out.replaced-"));
            if publishing {
                std::thread::sleep(Duration::from_millis(2 * round));
                killed_publishing += 1;
                break;
            }
        }
        drop(export); // SIGKILL, if still running
        if let Some(listed) = manifest_partitions(&out) {
            assert_eq!(
                listed,
                present_partitions(&out),
                "round {round}: a manifest disagrees with the partitions beside it"
            );
        }
        home.ok(&["export-split", "big", "k", out_arg]);
        let listed = manifest_partitions(&out).expect("the rerun wrote a manifest");
        assert_eq!(listed.len(), 2000);
        assert_eq!(listed, present_partitions(&out), "round {round}: after the rerun");
    }
    assert!(
        killed_publishing > 0,
        "no round caught the export while it published"
    );
}

/// A lost result says the change is committed for every analytics command that changes
/// something, and not for a query that only reads (h146: `sql SELECT` said so too).
#[cfg(target_os = "linux")]
#[test]
fn a_lost_result_says_committed_for_changes_and_not_for_reads() {
    let home = Home::new();
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("rows.csv");
    std::fs::write(&csv, "a\n1\n").unwrap();
    let stderr_into_full = |args: &[&str]| crate::support::stderr_with_stdout_full(&home, args);
    let parquet = dir.path().join("t.parquet");
    let split = dir.path().join("split");
    let changes: [&[&str]; 5] = [
        &["import", "t", csv.to_str().unwrap()],
        &["sql", "CREATE TABLE u AS SELECT 1 AS b"],
        &["export", "t", parquet.to_str().unwrap()],
        &["export-split", "t", "a", split.to_str().unwrap()],
        &["scoring", "ensure"],
    ];
    for args in changes {
        let stderr = stderr_into_full(args);
        assert!(stderr.contains("is committed"), "{args:?}: {stderr}");
    }
    home.ok(&["sql", "CREATE SEQUENCE s"]);
    let stderr = stderr_into_full(&["sql", "SELECT nextval('s')"]);
    assert!(stderr.contains("is committed"), "a sequence advanced: {stderr}");
    for query in [
        "SELECT count(*) FROM t",
        " (select 1)",
        "FROM t",
        "DESCRIBE t",
        "SHOW TABLES",
    ] {
        let stderr = stderr_into_full(&["sql", query]);
        assert!(
            stderr.contains("cannot write to standard output"),
            "{query}: {stderr}"
        );
        assert!(!stderr.contains("committed"), "{query}: {stderr}");
    }
    assert_eq!(
        home.json(&["sql", "SELECT count(*) AS n FROM t"])["rows"],
        json!([[1]])
    );
}
