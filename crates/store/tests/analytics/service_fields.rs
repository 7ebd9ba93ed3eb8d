//! h153 parity audit, SPEC §11: an analytics action's `InvalidInput` names the argument the
//! caller wrote. The Service renames the library's own parameter names where they differ
//! (`csv` → `header`/`delimiter`, `out_dir` → `dir`); these tests check every such case.

use serde_json::{Value, json};
use store::{ErrorKind, Service, ServiceConfig};

fn field_of(service: &Service, action: &str, args: Value) -> (ErrorKind, Option<&'static str>, String) {
    let e = service.call(action, args).unwrap_err();
    (e.kind(), e.field(), e.to_string())
}

/// BORDERLINE: `store/export-parquet` takes a table name or one SELECT in its `table` argument
/// (docs/guarantees.md "export_parquet of a query"); a refused query names `field: "query"`, a name the
/// caller never wrote (analytics/source.rs `single_select`, analytics/export.rs read-only
/// refusal), where the Service renames `out_dir` and `csv` for the other actions.
#[test]
fn export_parquet_refusing_its_table_argument_names_table() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::open(ServiceConfig::new(dir.path())).unwrap();
    service
        .call("store/sql", json!({"sql": "CREATE TABLE t AS SELECT 1 AS a"}))
        .unwrap();
    let out = dir.path().join("o.parquet");
    service
        .call("store/sql", json!({"sql": "CREATE SEQUENCE s"}))
        .unwrap();
    let mut wrong = Vec::new();
    for table in [
        "SELECT 1; DROP TABLE t",
        "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
        "SELECT nextval('s')",
    ] {
        let (kind, field, message) = field_of(
            &service,
            "store/export-parquet",
            json!({"table": table, "path": out}),
        );
        assert_eq!(kind, ErrorKind::InvalidInput, "{table}: {message}");
        if field != Some("table") {
            wrong.push(format!("{table:?} -> field {field:?}: {message}"));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// OK: the renamed fields of `store/import` and `store/export-split-parquet`, and the library
/// fields that already match the argument names.
#[test]
fn import_and_split_errors_name_the_arguments_written() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::open(ServiceConfig::new(dir.path())).unwrap();
    let json_file = dir.path().join("a.json");
    std::fs::write(&json_file, r#"[{"a":1}]"#).unwrap();
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "store/import",
            json!({"table": "t", "path": json_file, "header": false}),
            "header",
        ),
        (
            "store/import",
            json!({"table": "t", "path": json_file, "delimiter": ";"}),
            "delimiter",
        ),
        (
            "store/import",
            json!({"table": "t", "path": json_file, "delimiter": ";;"}),
            "delimiter",
        ),
        (
            "store/import",
            json!({"table": "t", "path": json_file, "format": "xml"}),
            "format",
        ),
        ("store/import", json!({"table": "", "path": json_file}), "table"),
        ("store/import", json!({"table": "t", "path": ""}), "path"),
        (
            "store/export-split-parquet",
            json!({"table": "t", "column": "a", "dir": "a\u{0}b"}),
            "dir",
        ),
        (
            "store/export-split-parquet",
            json!({"table": "t", "column": "", "dir": "d"}),
            "column",
        ),
        (
            "store/export-split-parquet",
            json!({"table": "", "column": "a", "dir": "d"}),
            "table",
        ),
        (
            "store/export-parquet",
            json!({"table": "", "path": "x.parquet"}),
            "table",
        ),
        (
            "store/export-parquet",
            json!({"table": "t", "path": "x.parquet", "compression": "zip"}),
            "compression",
        ),
        (
            "store/sql",
            json!({"sql": "SELECT ?", "params": [[1, "a"]]}),
            "params",
        ),
    ];
    for (action, args, field) in cases {
        let (kind, got, message) = field_of(&service, action, args.clone());
        assert_eq!(
            (kind, got),
            (ErrorKind::InvalidInput, Some(field)),
            "{action} {args}: {message}"
        );
    }
}
