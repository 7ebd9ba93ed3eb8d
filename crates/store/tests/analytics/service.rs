//! The Service's analytics actions (SPEC §11): `store/sql` over `kv_entries`, imports, exports,
//! split exports with their manifest, scoring tables, table counts and the inventory, each
//! called with JSON arguments against a temp home directory.

use serde_json::{Value as Json, json};
use store::{ErrorKind, Kv, Service, ServiceConfig};

use crate::support::write;

fn service() -> (Service, tempfile::TempDir) {
    let home = tempfile::tempdir().unwrap();
    let service = Service::open(ServiceConfig::new(home.path())).unwrap();
    (service, home)
}

#[test]
fn store_sql_over_kv_entries_returns_columns_and_rows() {
    let (service, home) = service();
    service
        .call(
            "store/set",
            json!({"group": "models", "key": "m1", "value": "Model One"}),
        )
        .unwrap();
    service.store().set("models", "m2", "Model Two").unwrap();
    let result = service
        .call(
            "store/sql",
            json!({"sql": "SELECT entry_key, entry_value FROM kv_entries WHERE group_name = ? ORDER BY 1",
                   "params": ["models"]}),
        )
        .unwrap();
    assert_eq!(
        result,
        json!({"columns": ["entry_key", "entry_value"], "rows": [["m1", "Model One"], ["m2", "Model Two"]]})
    );
    assert!(home.path().join("workspace.duckdb").is_file());

    let plain = service
        .call("store/sql", json!({"sql": "SELECT 42 AS answer"}))
        .unwrap();
    assert_eq!(plain, json!({"columns": ["answer"], "rows": [[42]]}));
    service.close().unwrap();
}

#[test]
fn store_sql_errors_are_typed() {
    let (service, _home) = service();
    let err = service.call("store/sql", json!({})).unwrap_err();
    assert_eq!(err.field(), Some("sql"));
    let err = service.call("store/sql", json!({"sql": "SELEKT"})).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DuckDb);
    service.close().unwrap();
}

/// Parameters nested deeper than 64 levels are refused naming `params`: converting one 3,000
/// deep overflowed the thread's stack (an abort), and a few hundred levels took DuckDB seconds.
#[test]
fn sql_parameters_nested_too_deeply_are_refused_not_a_stack_overflow() {
    let (service, _home) = service();
    // Built by moving, not through `json!`, whose serialising copy would recurse as deep.
    let nested = |depth: usize| (0..depth).fold(json!(1), |inner, _| Json::Array(vec![inner]));
    // Shallower: dropping a serde_json object recurses too, several frames per level.
    let deep_object = (0..200).fold(json!(1), |inner, _| {
        Json::Object(serde_json::Map::from_iter([("a".to_string(), inner)]))
    });
    for param in [nested(65), nested(3000), deep_object] {
        let args = serde_json::Map::from_iter([
            ("sql".to_string(), json!("SELECT ? AS p")),
            ("params".to_string(), Json::Array(vec![param])),
        ]);
        let err = service.call("store/sql", Json::Object(args)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        assert_eq!(err.field(), Some("params"), "{err}");
        assert!(err.to_string().contains("64 levels"), "{err}");
    }
    let ok = service
        .call(
            "store/sql",
            json!({"sql": "SELECT ? AS p", "params": [nested(64)]}),
        )
        .unwrap();
    assert_eq!(ok["rows"][0][0], nested(64));
}

/// The driver cannot read VARIANT results yet: the error says how to cast them, and the cast
/// works.
#[test]
fn a_variant_column_fails_with_a_hint_to_cast_it() {
    let (service, _home) = service();
    let err = service
        .call("store/sql", json!({"sql": "SELECT 1::VARIANT AS v"}))
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("cast it in the query (`column::VARCHAR`)"),
        "{err}"
    );
    let ok = service
        .call("store/sql", json!({"sql": "SELECT (1::VARIANT)::VARCHAR AS v"}))
        .unwrap();
    assert_eq!(ok["rows"], json!([["1"]]));
}

#[test]
fn store_import_then_table_counts() {
    let (service, home) = service();
    let csv = write(home.path(), "scores.csv", "name,score\na,1\nb,2\nc,3\n");
    let result = service
        .call(
            "store/import",
            json!({"table": "scores", "path": csv.to_str().unwrap()}),
        )
        .unwrap();
    assert_eq!(result, json!({"rows": 3}));
    let semi = write(home.path(), "more.txt", "d;4\n");
    let result = service
        .call(
            "store/import",
            json!({"table": "more", "path": semi.to_str().unwrap(), "format": "csv", "header": false, "delimiter": ";"}),
        )
        .unwrap();
    assert_eq!(result, json!({"rows": 1}));
    let counts = service.call("store/table-counts", json!({})).unwrap();
    assert_eq!(counts, json!({"tables": {"more": 1, "scores": 3}}));

    let err = service
        .call(
            "store/import",
            json!({"table": "x", "path": csv.to_str().unwrap(), "format": "xlsx"}),
        )
        .unwrap_err();
    assert_eq!(err.field(), Some("format"));
    let err = service
        .call(
            "store/import",
            json!({"table": "x", "path": home.path().join("absent.csv").to_str().unwrap()}),
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Missing);
    service.close().unwrap();
}

#[test]
fn store_export_parquet_and_export_split_parquet_write_files_and_manifest() {
    let (service, home) = service();
    let csv = write(home.path(), "t.csv", "model,score\nm1,1\nm2,2\nm1,3\n");
    service
        .call(
            "store/import",
            json!({"table": "t", "path": csv.to_str().unwrap()}),
        )
        .unwrap();

    let parquet = home.path().join("exports/t.parquet");
    let result = service
        .call(
            "store/export-parquet",
            json!({"table": "t", "path": parquet.to_str().unwrap()}),
        )
        .unwrap();
    assert_eq!(result, json!({"rows": 3}));
    assert!(parquet.is_file());

    let dir = home.path().join("split");
    let manifest = service
        .call(
            "store/export-split-parquet",
            json!({"table": "t", "column": "model", "dir": dir.to_str().unwrap()}),
        )
        .unwrap();
    assert_eq!(manifest["table"], "t");
    assert_eq!(manifest["column"], "model");
    assert_eq!(manifest["total_rows"], 3);
    assert_eq!(
        manifest["files"],
        json!([
            {"value": "m1", "path": "model=m1/data.parquet", "rows": 2},
            {"value": "m2", "path": "model=m2/data.parquet", "rows": 1},
        ])
    );
    let on_disk: Json = serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(on_disk, manifest);
    assert!(dir.join("model=m1/data.parquet").is_file());
    service.close().unwrap();
}

/// A bad `dir` of `store/export-split-parquet` is reported under the action's own argument
/// name, `dir`, not the library's parameter name `out_dir`.
#[test]
fn a_bad_split_dir_is_invalid_input_naming_the_dir_argument() {
    let (service, home) = service();
    service
        .call("store/sql", json!({"sql": "CREATE TABLE t AS SELECT 1 AS b"}))
        .unwrap();
    // The path holds the library's parameter name: only the field is renamed, not the text.
    let dangling = home.path().join("my_out_dir");
    std::os::unix::fs::symlink(home.path().join("out_dir_target"), &dangling).unwrap();
    for dir in ["", "/tmp/x/a\u{0}b", dangling.to_str().unwrap()] {
        let err = service
            .call(
                "store/export-split-parquet",
                json!({"table": "t", "column": "b", "dir": dir}),
            )
            .unwrap_err();
        assert_eq!(err.field(), Some("dir"), "{dir:?}: {err:?}");
        let message = err.to_string();
        assert!(message.contains("invalid dir:"), "{dir:?}: {message}");
        if dir == dangling.to_str().unwrap() {
            assert!(message.contains(dir), "the path is kept: {message}");
            assert!(
                message.contains("out_dir_target"),
                "the link target is kept: {message}"
            );
        }
    }
    service.close().unwrap();
}

/// A CSV setting given for a file read as another format names the argument the caller
/// wrote (`header`, `delimiter`), not the library's parameter `csv` (h144).
#[test]
fn a_csv_setting_for_another_format_is_invalid_input_naming_that_argument() {
    let (service, home) = service();
    let file = write(home.path(), "rows.jsonl", "{\"a\":1}\n");
    let path = file.to_str().unwrap();
    for (setting, value) in [("header", json!(false)), ("delimiter", json!(";"))] {
        for format in [None, Some("json")] {
            let mut args = json!({"table": "t", "path": path});
            args[setting] = value.clone();
            if let Some(format) = format {
                args["format"] = json!(format);
            }
            let err = service.call("store/import", args).unwrap_err();
            assert_eq!(err.field(), Some(setting), "{format:?}: {err}");
            assert!(err.to_string().contains(&format!("invalid {setting}:")), "{err}");
        }
    }
    service.close().unwrap();
}

#[test]
fn store_scoring_ensure_and_inventory() {
    let (service, home) = service();
    assert_eq!(
        service.call("store/scoring/ensure", json!({})).unwrap(),
        json!({})
    );
    assert_eq!(
        service.call("store/scoring/ensure", json!({})).unwrap(),
        json!({})
    );
    let csv = write(home.path(), "extra.csv", "x\n1\n2\n");
    service
        .call(
            "store/import",
            json!({"table": "extra", "path": csv.to_str().unwrap()}),
        )
        .unwrap();

    let inventory = service.call("store/inventory", json!({})).unwrap();
    let keys: Vec<&String> = inventory.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["tables", "text", "total_rows"]);
    assert_eq!(inventory["total_rows"], 2);
    let names: Vec<&str> = inventory["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["checkpoint_scores", "extra", "probe_results", "scoring_results"]
    );
    let scoring = &inventory["tables"][3];
    assert_eq!(scoring["rows"], 0);
    assert_eq!(scoring["notes"], json!(["0 suites", "0 dimensions"]));
    let text = inventory["text"].as_str().unwrap();
    assert!(text.starts_with("Analytics inventory\n"), "{text}");
    assert!(
        text.contains("TOTAL") && text.contains("scoring_results"),
        "{text}"
    );

    let counts = service.call("store/table-counts", json!({})).unwrap();
    assert_eq!(counts["tables"]["extra"], 2);
    assert_eq!(counts["tables"]["checkpoint_scores"], 0);
    service.close().unwrap();
}

#[test]
fn analytics_actions_after_close_are_closed() {
    let (service, _home) = service();
    service.call("store/sql", json!({"sql": "SELECT 1"})).unwrap();
    service.close().unwrap();
    let err = service.call("store/sql", json!({"sql": "SELECT 1"})).unwrap_err();
    assert!(err.is_closed(), "{err}");
    let err = service.call("store/table-counts", json!({})).unwrap_err();
    assert!(err.is_closed(), "{err}");
}

#[test]
fn analytics_actions_after_close_are_closed_even_if_analytics_was_never_opened() {
    let (service, home) = service();
    service.close().unwrap();
    let err = service.call("store/sql", json!({"sql": "SELECT 1"})).unwrap_err();
    assert!(err.is_closed(), "{err}");
    assert!(
        !home.path().join("workspace.duckdb").exists(),
        "a closed service opened its database"
    );
}

#[test]
fn call_with_progress_runs_import_with_a_forced_format_and_export() {
    let (service, dir) = service();
    let file = write(dir.path(), "rows.data", "a\tb\n1\tx\n2\ty\n");
    let calls = std::sync::atomic::AtomicUsize::new(0);
    let progress = |p: store::analytics::ImportProgress| {
        calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        assert!(
            p.percentage.is_none_or(|pct| (0.0..=100.0).contains(&pct)),
            "{p:?}"
        );
    };
    let r = service
        .call_with_progress(
            "store/import",
            json!({"table": "t", "path": file, "format": "tsv"}),
            &progress,
        )
        .unwrap();
    assert_eq!(r["rows"], 2);
    let rows = service
        .call("store/sql", json!({"sql": "SELECT a, b FROM t ORDER BY a"}))
        .unwrap();
    assert_eq!(rows["rows"], json!([[1, "x"], [2, "y"]]));

    let out = dir.path().join("t.parquet");
    let r = service
        .call_with_progress(
            "store/export-parquet",
            json!({"table": "t", "path": out}),
            &progress,
        )
        .unwrap();
    assert_eq!(r["rows"], 2);
    assert!(out.is_file());

    let split = dir.path().join("by-b");
    let r = service
        .call_with_progress(
            "store/export-split-parquet",
            json!({"table": "t", "column": "b", "dir": split}),
            &progress,
        )
        .unwrap();
    assert_eq!(r["total_rows"], 2);
    assert!(split.join("b=x").join("data.parquet").is_file());

    let err = service
        .call_with_progress(
            "store/import",
            json!({"table": "t", "path": file, "format": "xml"}),
            &progress,
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(err.field(), Some("format"));
}

#[test]
fn threads_racing_to_the_first_analytics_call_share_one_database() {
    // One read-write handle per file and process: the threads must not race to open it.
    for _ in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        let service = Service::open(ServiceConfig::new(dir.path())).unwrap();
        let barrier = std::sync::Barrier::new(4);
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    barrier.wait();
                    service
                        .call("store/sql", json!({"sql": "SELECT 1 AS x"}))
                        .unwrap()
                });
            }
        });
        assert!(std::ptr::eq(
            service.analytics().unwrap(),
            service.analytics().unwrap()
        ));
    }
}

/// A layer that cannot close (here: analytics, with a result still streaming on this thread)
/// does not keep the other open: the error is returned and every later call is `Closed`.
#[test]
fn close_closes_the_store_even_when_analytics_refuses_to_close() {
    let (service, _home) = service();
    service
        .call("store/set", json!({"group": "g", "key": "k", "value": "v"}))
        .unwrap();
    let db = service.analytics().unwrap();
    let batches = db.query_arrow("SELECT * FROM range(10)", &[]).unwrap();
    let err = service.close().unwrap_err();
    assert_eq!(err.field(), Some("connection"), "{err}");
    drop(batches);
    assert!(service.call("store/count", json!({})).unwrap_err().is_closed());
    assert!(service.store().get("g", "k").unwrap_err().is_closed());
}

/// An argument the action does not take is refused before anything runs: a misspelt `ttl`
/// would store the entry without its expiry, a `namespace` on an unscoped action would
/// write outside the namespace meant.
#[test]
fn an_argument_the_action_does_not_take_is_refused_and_nothing_runs() {
    let (service, _home) = service();
    for (action, args) in [
        (
            "store/set",
            json!({"group": "g", "key": "k", "value": "v", "ttl": 1}),
        ),
        (
            "store/set",
            json!({"namespace": "t", "group": "g", "key": "k", "value": "v"}),
        ),
        (
            "store/scoped/get",
            json!({"namespace": "t", "group": "g", "key": "k", "value": "v"}),
        ),
        ("store/last-seq", json!({"since": 1})),
    ] {
        let err = service.call(action, args).unwrap_err();
        assert_eq!(
            (err.kind(), err.field()),
            (ErrorKind::InvalidInput, Some("args")),
            "{err}"
        );
        assert!(err.to_string().contains("unknown argument"), "{err}");
    }
    assert!(!service.store().exists("g", "k").unwrap());
    // The scoped extras are accepted where they belong.
    service
        .call(
            "store/scoped/set",
            json!({"namespace": "t", "group": "g", "key": "k", "value": "v", "quota": {"max_keys": 5}}),
        )
        .unwrap();
    assert!(service.store().exists("t:g", "k").unwrap());
}

/// A misspelt action is reported as such, scoped or not, with or without a namespace, and
/// the message lists the actions there are.
/// An error quotes a huge input back cut short, saying its size: a 1 MB action name, argument
/// name or mistyped argument made a 1 MB message.
#[test]
fn errors_quote_huge_inputs_back_cut_short() {
    let (service, _home) = service();
    let huge = "x".repeat(1_000_000);
    let mut args = serde_json::Map::new();
    args.insert(huge.clone(), json!(1));
    let errors = [
        service.call(&huge, json!({})).unwrap_err(),
        service.call("store/get", Json::Object(args)).unwrap_err(),
        service
            .call(
                "store/set",
                json!({"group": "g", "key": "k", "value": "v", "ttl_ms": huge}),
            )
            .unwrap_err(),
    ];
    for err in errors {
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        let message = err.to_string();
        assert!(message.len() < 2_000, "{} bytes", message.len());
        assert!(message.contains("bytes)"), "{message}");
    }
}

#[test]
fn an_unknown_action_names_the_action_field_and_lists_the_actions() {
    let (service, _home) = service();
    for (action, args) in [
        ("store/nope", json!({})),
        ("store/scoped/nope", json!({})),
        ("store/scoped/nope", json!({"namespace": "bad name"})),
        ("nope", json!({})),
    ] {
        let err = service.call(action, args).unwrap_err();
        assert_eq!(
            (err.kind(), err.field()),
            (ErrorKind::InvalidInput, Some("action")),
            "{err}"
        );
        assert!(err.to_string().contains("store/scoped/<name>"), "{err}");
    }
}

/// The quota object is checked the same way: a misspelt limit would leave it unlimited.
#[test]
fn a_misspelt_quota_limit_is_refused() {
    let (service, _home) = service();
    let err = service
        .call(
            "store/scoped/set",
            json!({"namespace": "t", "group": "g", "key": "k", "value": "v", "quota": {"max_key": 1}}),
        )
        .unwrap_err();
    assert_eq!(err.field(), Some("quota"), "{err}");
    assert!(err.to_string().contains("\"max_key\""), "{err}");
    assert!(!service.store().exists("t:g", "k").unwrap());
}

/// A Service on `home` that waits `wait` for a busy analytics file.
fn service_waiting(home: &std::path::Path, wait: std::time::Duration) -> Service {
    let mut config = ServiceConfig::new(home);
    config.store.busy_timeout = wait;
    Service::open(config).unwrap()
}

/// Dates `file` as just created: slightly ahead, which still counts as fresh, so a slow
/// machine cannot age it past the grace meanwhile.
fn date_just_created(file: &std::path::Path) {
    crate::support::set_mtime(
        file,
        std::time::SystemTime::now() + std::time::Duration::from_millis(900),
    );
}

/// Dates `file` an hour back: unchanged for longer than a creation takes.
fn date_an_hour_ago(file: &std::path::Path) {
    crate::support::set_mtime(
        file,
        std::time::SystemTime::now() - std::time::Duration::from_secs(3600),
    );
}

/// How many unfinished analytics files were moved aside in `home`.
fn unfinished_asides(home: &std::path::Path) -> usize {
    std::fs::read_dir(home)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(".workspace.duckdb.unfinished-")
        })
        .count()
}

#[test]
fn an_empty_analytics_file_is_waited_for_while_fresh_then_moved_aside_never_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("workspace.duckdb");
    let open_with = |wait| service_waiting(dir.path(), wait);
    // Just created: another process may be about to write its header.
    std::fs::write(&file, "").unwrap();
    date_just_created(&file);
    let err = open_with(std::time::Duration::from_millis(200))
        .analytics()
        .unwrap_err();
    assert!(err.is_busy(), "{err}");
    assert!(err.to_string().contains("another process creates it"), "{err}");
    assert_eq!(std::fs::metadata(&file).unwrap().len(), 0, "left as it was");
    // Dated far ahead (clock skew, a copied file): not "being created" until the clock catches up.
    let next_day = std::time::SystemTime::now() + std::time::Duration::from_secs(86_400);
    crate::support::set_mtime(&file, next_day);
    open_with(std::time::Duration::from_millis(200))
        .analytics()
        .unwrap()
        .close()
        .unwrap();
    std::fs::write(&file, "").unwrap();
    // Empty for longer than a creation takes: left behind by a process that died creating it.
    date_an_hour_ago(&file);
    let service = open_with(std::time::Duration::from_millis(200));
    service.store().set("g", "k", "v").unwrap();
    let rows = service
        .analytics()
        .unwrap()
        .query("SELECT count(*) FROM kv_entries", &[])
        .unwrap();
    assert_eq!(rows.rows[0][0], store::analytics::Value::Int(1));
    assert_eq!(unfinished_asides(dir.path()), 2, "moved aside, not deleted");
}

/// A process killed between DuckDB's header writes leaves a file of one or two 4 KiB blocks,
/// which DuckDB refuses for good ("Could not read enough bytes"): like an empty file, it is
/// busy while fresh, then moved aside and the database created afresh.
#[test]
fn an_analytics_file_cut_short_in_its_headers_is_moved_aside_once_stale() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("workspace.duckdb");
    let open_with = |wait| service_waiting(dir.path(), wait);
    // A real database's first blocks, as a killed creator leaves them.
    store::analytics::Analytics::open(&file).unwrap().close().unwrap();
    let whole = std::fs::read(&file).unwrap();
    assert!(whole.len() >= 3 * 4096, "{}", whole.len());
    for blocks in [1, 2] {
        std::fs::write(&file, &whole[..blocks * 4096]).unwrap();
        date_just_created(&file);
        let err = open_with(std::time::Duration::from_millis(200))
            .analytics()
            .unwrap_err();
        assert!(err.is_busy(), "{blocks} blocks: {err}");
        assert_eq!(
            std::fs::metadata(&file).unwrap().len(),
            blocks as u64 * 4096,
            "left as it was"
        );
        date_an_hour_ago(&file);
        let service = open_with(std::time::Duration::from_millis(200));
        service
            .analytics()
            .unwrap()
            .exec_batch("CREATE TABLE works AS SELECT 1 AS x")
            .unwrap();
        service.close().unwrap();
    }
    assert_eq!(unfinished_asides(dir.path()), 2, "moved aside, not deleted");
    // Headers lost to a power cut (the length reached the disk, the bytes did not): zeros.
    std::fs::remove_file(&file).unwrap();
    std::fs::write(&file, vec![0u8; 8192]).unwrap();
    date_an_hour_ago(&file);
    let service = open_with(std::time::Duration::from_millis(200));
    service.analytics().unwrap();
    service.close().unwrap();
    assert_eq!(unfinished_asides(dir.path()), 3);
    // A short file that DuckDB never began (no header) is another program's: left alone.
    std::fs::remove_file(&file).unwrap();
    std::fs::write(&file, "not a database").unwrap();
    date_an_hour_ago(&file);
    assert!(
        open_with(std::time::Duration::from_millis(200))
            .analytics()
            .is_err()
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "not a database");
}

/// DuckDB reads a file's header before it takes the file's lock, so an open that waited for
/// the lock while another process created the file can refuse the finished file (CI saw one of
/// several processes using analytics for the first time at once fail so, on a loaded machine).
/// A refused file of full length is therefore busy while it changed within the grace, and opens
/// once it is valid; an old one is damaged (or another program's) and left alone.
#[test]
fn a_refused_full_length_file_is_busy_while_fresh_and_opens_once_valid() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("workspace.duckdb");
    let open_with = |wait| service_waiting(dir.path(), wait);
    let garbage = vec![b'x'; 3 * 4096];
    std::fs::write(&file, &garbage).unwrap();
    date_just_created(&file);
    let err = open_with(std::time::Duration::from_millis(200))
        .analytics()
        .unwrap_err();
    assert!(err.is_busy(), "fresh: busy, not damaged: {err}");
    // The creator finishes while the open waits: it opens the finished database.
    let valid = dir.path().join("valid.duckdb");
    store::analytics::Analytics::open(&valid)
        .unwrap()
        .exec_batch("CREATE TABLE made_by_the_creator AS SELECT 1 AS x")
        .unwrap();
    date_just_created(&file);
    let finisher = {
        let (valid, file) = (valid.clone(), file.clone());
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            std::fs::rename(valid, file).unwrap();
        })
    };
    let service = open_with(std::time::Duration::from_secs(30));
    let rows = service
        .analytics()
        .unwrap()
        .query("SELECT x FROM made_by_the_creator", &[])
        .unwrap();
    assert_eq!(rows.rows[0][0], store::analytics::Value::Int(1));
    finisher.join().unwrap();
    service.close().unwrap();
    // Refused and unchanged for longer than a creation takes: damaged, reported, untouched.
    std::fs::write(&file, &garbage).unwrap();
    date_an_hour_ago(&file);
    let err = open_with(std::time::Duration::from_millis(200))
        .analytics()
        .unwrap_err();
    assert!(!err.is_busy(), "{err}");
    assert!(
        err.to_string().contains("not a valid DuckDB database file"),
        "{err}"
    );
    assert_eq!(std::fs::read(&file).unwrap(), garbage);
    assert_eq!(unfinished_asides(dir.path()), 0);
}

/// Moving an unfinished file aside never waits on another mover's lock (a lock file beside
/// it): while one holds it the open is busy, like any file being created, and goes through
/// once it is released. (Locking the home directory itself made a `flock <home> store …`
/// wrapper hang forever.)
#[test]
fn a_mover_holding_the_move_lock_makes_the_open_busy_never_hang() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("workspace.duckdb");
    std::fs::write(&file, "").unwrap();
    date_an_hour_ago(&file);
    let held = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.path().join(".workspace.duckdb.move-lock"))
        .unwrap();
    held.lock().unwrap();
    // The home directory locked too, as a cron wrapper would: no longer in the way.
    let home = std::fs::File::open(dir.path()).unwrap();
    home.lock().unwrap();
    let started = std::time::Instant::now();
    let err = service_waiting(dir.path(), std::time::Duration::from_millis(300))
        .analytics()
        .unwrap_err();
    assert!(err.is_busy(), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert_eq!(unfinished_asides(dir.path()), 0);
    held.unlock().unwrap();
    let service = service_waiting(dir.path(), std::time::Duration::from_millis(300));
    service.analytics().unwrap();
    service.close().unwrap();
    assert_eq!(unfinished_asides(dir.path()), 1);
    drop(home);
}

/// A list parameter binds as one list type: integers mixed with fractions become floats, and
/// any other mix is refused as InvalidInput naming `params` (DuckDB's own error was a bind
/// failure).
#[test]
fn store_sql_list_params_of_mixed_numbers_bind_as_floats_and_other_mixes_are_refused() {
    let (service, _home) = service();
    let result = service
        .call(
            "store/sql",
            json!({"sql": "SELECT list_sum(?) AS total, typeof(?) AS t", "params": [[1.5, 2], [1, 2.5]]}),
        )
        .unwrap();
    assert_eq!(result["rows"][0][0], json!(3.5), "{result}");
    assert_eq!(result["rows"][0][1], json!("DOUBLE[]"), "{result}");
    let ints = service
        .call(
            "store/sql",
            json!({"sql": "SELECT typeof(?)", "params": [[1, 2, null]]}),
        )
        .unwrap();
    assert_eq!(ints["rows"][0][0], json!("BIGINT[]"), "{ints}");
    for mixed in [json!([1, "a"]), json!([true, 1]), json!([[1], 1])] {
        let err = service
            .call("store/sql", json!({"sql": "SELECT ?", "params": [mixed]}))
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        assert_eq!(err.field(), Some("params"), "{err}");
    }
    service.close().unwrap();
}

/// A Service whose analytics file this process already holds (a second Service on the home,
/// or the caller's own handle) is refused busy at once: nothing here can let go while it waits,
/// perhaps on the very thread (h154: it waited its whole busy timeout, each waiting thread
/// anew). Once the holder closes, the Service opens the file.
#[test]
fn a_holder_in_this_process_makes_the_service_busy_at_once() {
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let first = Service::open(ServiceConfig::new(dir.path())).unwrap();
    first.call("store/sql", json!({"sql": "SELECT 1"})).unwrap();
    let mut config = ServiceConfig::new(dir.path());
    config.store.busy_timeout = Duration::from_secs(20);
    let second = Service::open(config).unwrap();
    let started = Instant::now();
    let err = second.call("store/sql", json!({"sql": "SELECT 1"})).unwrap_err();
    assert!(err.is_busy(), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    first.close().unwrap();
    second.call("store/sql", json!({"sql": "SELECT 1"})).unwrap();
}
