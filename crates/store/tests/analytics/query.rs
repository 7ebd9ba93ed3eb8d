//! Running SQL: `exec`, `exec_batch`, `query`, `query_row` and `query_arrow`, parameters of every
//! `Value` kind, the typed values results come back as, their JSON rendering, and the `Closed`
//! error after `close`.

use serde_json::json;
use store::ErrorKind;
use store::analytics::{Analytics, Value};

use crate::support::{count, expect_kind, scalar};

/// 2024-01-02 as days since the Unix epoch.
const JAN_2_2024: i32 = 19_724;
/// 2024-01-02 03:04:05.123456 UTC as microseconds since the Unix epoch.
const JAN_2_2024_030405_US: i64 = 19_724 * 86_400_000_000 + (3 * 3600 + 4 * 60 + 5) * 1_000_000 + 123_456;

fn db() -> Analytics {
    Analytics::in_memory().unwrap()
}

#[test]
fn query_row_select_42_is_int_42() {
    let row = db().query_row("SELECT 42", &[]).unwrap().unwrap();
    assert_eq!(row.values, vec![Value::Int(42)]);
    assert_eq!(row.columns.len(), 1);
}

#[test]
fn query_row_of_an_empty_result_is_none_and_takes_the_first_row() {
    let db = db();
    assert!(db.query_row("SELECT 1 WHERE false", &[]).unwrap().is_none());
    let row = db
        .query_row("SELECT range AS n FROM range(10) ORDER BY n DESC", &[])
        .unwrap()
        .unwrap();
    assert_eq!(row.get("n"), Some(&Value::Int(9)));
    assert_eq!(row.get("missing"), None);
}

#[test]
fn parameters_of_every_value_kind_round_trip() {
    let db = db();
    let cases = [
        Value::Bool(true),
        Value::Bool(false),
        Value::Int(i64::MIN),
        Value::Int(-1),
        Value::Int(i64::MAX),
        Value::UInt(u64::MAX),
        Value::Float(0.1),
        Value::Float(-1.5e300),
        Value::Text(String::new()),
        Value::Text("héllo 🌍 '; DROP TABLE t; --".into()),
        Value::Blob(vec![0, 1, 2, 255]),
        Value::Blob(Vec::new()),
        Value::Timestamp(JAN_2_2024_030405_US),
        Value::Timestamp(-1),
        Value::Date(JAN_2_2024),
        Value::Date(-1),
        Value::List(vec![Value::Int(1), Value::Int(2), Value::Int(3)]),
        Value::List(vec![Value::Text("a".into()), Value::Text("b".into())]),
    ];
    for value in cases {
        let row = db
            .query_row("SELECT ? AS v", std::slice::from_ref(&value))
            .unwrap()
            .unwrap();
        assert_eq!(
            row.values,
            vec![value.clone()],
            "parameter {value:?} did not round-trip"
        );
    }
    // NULL in a typed context (an untyped NULL result is covered by its own test).
    let row = db.query_row(
        "SELECT CAST(? AS INTEGER) AS v, ? IS NULL AS is_null",
        &[Value::Null, Value::Null],
    );
    assert_eq!(row.unwrap().unwrap().values, vec![Value::Null, Value::Bool(true)]);
    db.exec_batch("CREATE TABLE n (x VARCHAR)").unwrap();
    db.exec("INSERT INTO n VALUES (?)", &[Value::Null]).unwrap();
    assert_eq!(scalar(&db, "SELECT x FROM n"), Value::Null);
}

/// A library list parameter mixing element types is `InvalidInput` naming `params`, as the
/// Service's JSON lists are (h147: it was a `DuckDb` conversion error); one of one type binds.
#[test]
fn a_list_parameter_mixing_element_types_is_invalid_input_naming_params() {
    let db = db();
    let mixes = [
        vec![Value::Int(1), Value::Text("a".into())],
        vec![Value::Int(1), Value::Float(2.5)],
        vec![Value::Bool(true), Value::Int(1)],
    ];
    for items in mixes {
        let err = expect_kind(
            db.query("SELECT ?", &[Value::List(items.clone())]),
            ErrorKind::InvalidInput,
        );
        assert_eq!(err.field(), Some("params"), "{items:?}: {err}");
        assert!(err.to_string().contains("give its elements one type"), "{err}");
        let err = expect_kind(
            db.exec("SELECT ?", &[Value::List(items.clone())]),
            ErrorKind::InvalidInput,
        );
        assert_eq!(err.field(), Some("params"), "{items:?}: {err}");
    }
    let one_type = Value::List(vec![Value::Int(1), Value::Null, Value::Int(3)]);
    assert_eq!(
        db.query("SELECT len(?) AS n", &[one_type]).unwrap().rows,
        [[Value::Int(3)]]
    );
}

#[test]
fn an_untyped_null_result_is_value_null_not_a_panic() {
    let db = db();
    let rows = db.query("SELECT NULL AS nothing", &[]).unwrap();
    assert_eq!(rows.rows, vec![vec![Value::Null]]);
    let row = db.query_row("SELECT ? AS v", &[Value::Null]).unwrap().unwrap();
    assert_eq!(row.values, vec![Value::Null]);
}

#[test]
fn untyped_nulls_nested_in_lists_structs_and_maps_are_values_not_a_panic() {
    let db = db();
    let row = db
        .query_row(
            "SELECT [NULL] AS l, {'a': NULL, 'b': 2, 'c': 'x'} AS s, MAP {'k': NULL} AS m, \
             [[NULL, NULL]] AS ll, [NULL]::INTEGER[] AS typed",
            &[],
        )
        .unwrap()
        .unwrap();
    assert_eq!(
        row.values,
        vec![
            Value::List(vec![Value::Null]),
            Value::Struct(vec![
                ("a".into(), Value::Null),
                ("b".into(), Value::Int(2)),
                ("c".into(), Value::Text("x".into())),
            ]),
            Value::Struct(vec![("k".into(), Value::Null)]),
            Value::List(vec![Value::List(vec![Value::Null, Value::Null])]),
            Value::List(vec![Value::Null]),
        ]
    );
    let rows = db.query("SELECT list(NULL) AS l FROM range(2)", &[]).unwrap();
    assert_eq!(rows.rows, vec![vec![Value::List(vec![Value::Null, Value::Null])]]);
}

#[test]
fn parameters_bind_positionally_in_exec_and_query() {
    let db = db();
    db.exec_batch("CREATE TABLE t (name VARCHAR, score DOUBLE, ok BOOLEAN)")
        .unwrap();
    let n = db
        .exec(
            "INSERT INTO t VALUES (?, ?, ?), (?, ?, ?)",
            &[
                Value::Text("a".into()),
                Value::Float(0.5),
                Value::Bool(true),
                Value::Text("b".into()),
                Value::Float(1.5),
                Value::Bool(false),
            ],
        )
        .unwrap();
    assert_eq!(n, 2);
    let rows = db
        .query(
            "SELECT name FROM t WHERE score > ? AND ok = ?",
            &[Value::Float(0.1), Value::Bool(false)],
        )
        .unwrap();
    assert_eq!(rows.rows, vec![vec![Value::Text("b".into())]]);
    assert_eq!(
        db.exec("DELETE FROM t WHERE name = ?", &[Value::Text("a".into())])
            .unwrap(),
        1
    );
    assert_eq!(count(&db, "t"), 1);
}

/// Bad SQL is the engine's error; a wrong parameter count is the caller's input (see
/// `a_wrong_number_of_parameters_is_invalid_input_naming_params`).
#[test]
fn bad_sql_is_a_duckdb_error() {
    let db = db();
    expect_kind(db.query("SELECT ?, ?", &[Value::Int(1)]), ErrorKind::InvalidInput);
    expect_kind(db.query("SELEKT 1", &[]), ErrorKind::DuckDb);
    expect_kind(db.exec_batch("CREATE TABLE"), ErrorKind::DuckDb);
    expect_kind(db.query("SELECT * FROM no_such_table", &[]), ErrorKind::DuckDb);
}

#[test]
fn exec_batch_runs_several_statements() {
    let db = db();
    db.exec_batch("CREATE TABLE a (x INTEGER); CREATE TABLE b (y INTEGER); INSERT INTO a VALUES (1), (2);")
        .unwrap();
    assert!(db.table_exists("a").unwrap());
    assert!(db.table_exists("b").unwrap());
    assert_eq!(count(&db, "a"), 2);
}

#[test]
fn results_arrive_as_typed_values() {
    let rows = db()
        .query(
            "SELECT 1::BIGINT AS big, 2::INTEGER AS int, 1.5::DOUBLE AS dbl, 'x'::VARCHAR AS txt,
                    true AS flag, '\\x01\\x02'::BLOB AS bin, DATE '2024-01-02' AS day,
                    TIMESTAMP '2024-01-02 03:04:05.123456' AS ts, 12.34::DECIMAL(10, 2) AS dec,
                    [1, 2, 3] AS list, {'a': 1, 'b': 'x'} AS rec, NULL::INTEGER AS nothing,
                    7::UBIGINT AS ubig, 3::TINYINT AS tiny, 2.5::FLOAT AS flt",
            &[],
        )
        .unwrap();
    assert_eq!(
        rows.columns,
        [
            "big", "int", "dbl", "txt", "flag", "bin", "day", "ts", "dec", "list", "rec", "nothing", "ubig",
            "tiny", "flt"
        ]
    );
    let v = &rows.rows[0];
    assert_eq!(v[0], Value::Int(1));
    assert_eq!(v[1], Value::Int(2));
    assert_eq!(v[2], Value::Float(1.5));
    assert_eq!(v[3], Value::Text("x".into()));
    assert_eq!(v[4], Value::Bool(true));
    assert_eq!(v[5], Value::Blob(vec![1, 2]));
    assert_eq!(v[6], Value::Date(JAN_2_2024));
    assert_eq!(v[7], Value::Timestamp(JAN_2_2024_030405_US));
    assert_eq!(
        v[8],
        Value::Other("12.34".into()),
        "DECIMAL is Other, as DuckDB renders it"
    );
    assert_eq!(
        v[9],
        Value::List(vec![Value::Int(1), Value::Int(2), Value::Int(3)])
    );
    assert_eq!(
        v[10],
        Value::Struct(vec![
            ("a".into(), Value::Int(1)),
            ("b".into(), Value::Text("x".into()))
        ])
    );
    assert_eq!(v[11], Value::Null);
    assert_eq!(v[12], Value::UInt(7));
    assert_eq!(v[13], Value::Int(3));
    assert_eq!(v[14], Value::Float(2.5));
}

#[test]
fn to_json_renders_special_values_as_the_spec_says() {
    assert_eq!(Value::Float(f64::NAN).to_json(), json!("NaN"));
    assert_eq!(Value::Float(f64::INFINITY).to_json(), json!("inf"));
    assert_eq!(Value::Float(f64::NEG_INFINITY).to_json(), json!("-inf"));
    assert_eq!(Value::Float(0.25).to_json(), json!(0.25));
    assert_eq!(Value::Blob(vec![1, 2]).to_json(), json!("AQI="));
    assert_eq!(Value::Blob(b"hello".to_vec()).to_json(), json!("aGVsbG8="));
    assert_eq!(
        Value::Timestamp(0).to_json(),
        json!("1970-01-01T00:00:00.000000Z")
    );
    assert_eq!(
        Value::Timestamp(JAN_2_2024_030405_US).to_json(),
        json!("2024-01-02T03:04:05.123456Z")
    );
    assert_eq!(
        Value::Timestamp(-1).to_json(),
        json!("1969-12-31T23:59:59.999999Z")
    );
    assert_eq!(Value::Date(JAN_2_2024).to_json(), json!("2024-01-02"));
    assert_eq!(Value::Date(-1).to_json(), json!("1969-12-31"));
    assert_eq!(Value::Other("12.34".into()).to_json(), json!("12.34"));
    assert_eq!(Value::Null.to_json(), json!(null));
    assert_eq!(Value::UInt(u64::MAX).to_json(), json!(u64::MAX));
    assert_eq!(
        Value::List(vec![Value::Int(1), Value::Float(f64::NAN)]).to_json(),
        json!([1, "NaN"])
    );
    assert_eq!(
        Value::Struct(vec![("k".into(), Value::Date(0))]).to_json(),
        json!({"k": "1970-01-01"})
    );
}

#[test]
fn rows_to_json_renders_query_results_with_the_same_rules() {
    let rows = db()
        .query(
            "SELECT 'NaN'::DOUBLE AS nan, 'inf'::DOUBLE AS pinf, '-inf'::DOUBLE AS ninf,
                    '\\x01\\x02'::BLOB AS bin, TIMESTAMP '2024-01-02 03:04:05.123456' AS ts,
                    DATE '2024-01-02' AS day, 12.34::DECIMAL(10, 2) AS dec",
            &[],
        )
        .unwrap();
    assert_eq!(
        rows.to_json(),
        json!({
            "columns": ["nan", "pinf", "ninf", "bin", "ts", "day", "dec"],
            "rows": [["NaN", "inf", "-inf", "AQI=", "2024-01-02T03:04:05.123456Z", "2024-01-02", "12.34"]],
        })
    );
}

#[test]
fn rows_to_objects_keys_each_row_by_column_name() {
    let rows = db()
        .query(
            "SELECT * FROM (VALUES (1, 'a', NULL), (2, 'b', 1.5::DOUBLE)) v(n, s, f) ORDER BY n",
            &[],
        )
        .unwrap();
    let objects = rows.to_objects();
    assert_eq!(objects.len(), 2);
    assert_eq!(
        serde_json::Value::Object(objects[0].clone()),
        json!({"n": 1, "s": "a", "f": null})
    );
    assert_eq!(
        serde_json::Value::Object(objects[1].clone()),
        json!({"n": 2, "s": "b", "f": 1.5})
    );
    assert_eq!(rows.len(), 2);
    assert!(!rows.is_empty());
}

#[test]
fn query_arrow_over_10000_rows_yields_10000_rows() {
    let db = db();
    db.exec_batch("CREATE TABLE t AS SELECT range AS n, 'row ' || range AS label FROM range(10000)")
        .unwrap();
    let batches: Vec<_> = db
        .query_arrow("SELECT * FROM t", &[])
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(!batches.is_empty());
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 10_000);
    assert!(batches.iter().all(|b| b.num_columns() == 2));

    let filtered: usize = db
        .query_arrow("SELECT * FROM t WHERE n < ?", &[Value::Int(1234)])
        .unwrap()
        .map(|b| b.map(|b| b.num_rows()))
        .sum::<Result<_, _>>()
        .unwrap();
    assert_eq!(filtered, 1234);
}

#[test]
fn every_call_after_close_is_a_closed_error() {
    let dir = tempfile::tempdir().unwrap();
    let db = Analytics::in_memory().unwrap();
    db.exec_batch("CREATE TABLE t AS SELECT 1 AS x").unwrap();
    db.close().unwrap();
    db.close().unwrap(); // closing twice is harmless

    assert!(db.query("SELECT 1", &[]).unwrap_err().is_closed());
    assert!(db.query_row("SELECT 1", &[]).unwrap_err().is_closed());
    assert!(db.exec("SELECT 1", &[]).unwrap_err().is_closed());
    assert!(db.exec_batch("SELECT 1").unwrap_err().is_closed());
    assert!(db.query_arrow("SELECT 1", &[]).unwrap_err().is_closed());
    assert!(db.table_exists("t").unwrap_err().is_closed());
    assert!(db.table_counts().unwrap_err().is_closed());
    assert!(db.inventory().unwrap_err().is_closed());
    assert!(db.ensure_scoring_tables().unwrap_err().is_closed());
    assert!(
        db.export_parquet("t", dir.path().join("t.parquet"))
            .unwrap_err()
            .is_closed()
    );
    assert!(
        db.export_split_parquet("t", dir.path().join("split"), "x")
            .unwrap_err()
            .is_closed()
    );
    let err = db.query("SELECT 1", &[]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Closed);
}

#[test]
fn a_file_database_closes_cleanly_and_keeps_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.duckdb");
    let db = Analytics::open(&path).unwrap();
    db.exec_batch("CREATE TABLE t AS SELECT * FROM range(3)").unwrap();
    db.close().unwrap();
    assert!(db.query("SELECT 1", &[]).unwrap_err().is_closed());
    assert_eq!(
        scalar(&Analytics::open(&path).unwrap(), "SELECT count(*) FROM t"),
        Value::Int(3)
    );
}

#[test]
fn times_and_intervals_print_as_duckdb_prints_them() {
    let db = db();
    for expr in [
        "TIME '10:11:12'",
        "TIME '10:11:12.5'",
        "TIME '00:00:00.000001'",
        "INTERVAL 1 DAY",
        "INTERVAL '1 year 2 months 3 days 04:05:06.25'",
        "INTERVAL 14 MONTH",
        "INTERVAL 0 SECOND",
        "INTERVAL '-2 hours'",
        "INTERVAL '-1 day 3 hours'",
    ] {
        let row = db
            .query_row(&format!("SELECT {expr}, CAST({expr} AS VARCHAR)"), &[])
            .unwrap()
            .unwrap();
        let duck = row.values[1].as_str().unwrap().to_string();
        assert_eq!(row.values[0], Value::Other(duck), "{expr}");
    }
}

#[test]
fn time_ns_values_read_without_a_panic() {
    let db = db();
    let row = db
        .query_row(
            "SELECT '10:11:12.123456789'::TIME_NS AS t, ['10:11:12'::TIME_NS] AS l, 1 AS n",
            &[],
        )
        .unwrap()
        .unwrap();
    assert_eq!(
        row.values,
        vec![
            Value::Other("10:11:12.123456789".into()),
            Value::List(vec![Value::Other("10:11:12".into())]),
            Value::Int(1),
        ]
    );
}

#[test]
fn values_beside_an_untyped_null_convert_as_they_do_alone() {
    let db = db();
    db.exec_batch("CREATE TYPE mood AS ENUM ('happy', 'sad')")
        .unwrap();
    for expr in [
        "TIME '10:11:12.5'",
        "INTERVAL 1 DAY",
        "5::HUGEINT",
        "'happy'::mood",
        "TIMESTAMP_S '2020-01-01 00:00:01'",
        "TIMESTAMP_MS '2020-01-01 00:00:01.5'",
        "TIMESTAMP_NS '2020-01-01 00:00:01.5'",
        "union_value(k := 1)",
        "1.50::DECIMAL(5,2)",
        "'x'",
    ] {
        let alone = db
            .query_row(&format!("SELECT {{'x': {expr}}}"), &[])
            .unwrap()
            .unwrap();
        let beside = db
            .query_row(&format!("SELECT {{'n': NULL, 'x': {expr}}}"), &[])
            .unwrap()
            .unwrap();
        let Value::Struct(fields) = &beside.values[0] else {
            panic!("not a struct: {beside:?}")
        };
        assert_eq!(Value::Struct(vec![fields[1].clone()]), alone.values[0], "{expr}");
    }
}

#[test]
fn table_counts_inventory_and_imports_see_only_this_database_with_another_attached() {
    let dir = tempfile::tempdir().unwrap();
    let db = db();
    db.exec_batch("CREATE TABLE mine AS SELECT 1 AS x; CREATE TEMP TABLE scratch AS SELECT 2 AS y")
        .unwrap();
    let other = dir.path().join("other.duckdb");
    db.exec_batch(&format!(
        "ATTACH '{}' AS other; CREATE TABLE other.theirs AS SELECT 1 AS y",
        other.display()
    ))
    .unwrap();
    db.exec_batch(
        "CREATE SCHEMA \"odd schema\"; CREATE TABLE \"odd schema\".t AS SELECT * FROM range(3);
         CREATE TABLE \"s.u\" AS SELECT 1 AS x; CREATE SCHEMA s; CREATE TABLE s.u AS SELECT * FROM range(2)",
    )
    .unwrap();
    let counts = db.table_counts().unwrap();
    // Base tables of this database, of every schema (a temporary table is not a base table).
    // A default-schema table named like another schema's table keeps its name; the other is
    // named in SQL spelling.
    assert_eq!(
        counts.into_iter().collect::<Vec<_>>(),
        [
            ("\"s\".\"u\"".to_string(), 2),
            ("mine".to_string(), 1),
            ("odd schema.t".to_string(), 3),
            ("s.u".to_string(), 1)
        ]
    );
    assert_eq!(db.inventory().unwrap().total_rows, 7);
    assert!(db.table_exists("scratch").unwrap());
    assert!(!db.table_exists("theirs").unwrap());
    // An import into a name only the other database has creates the table here.
    let csv = dir.path().join("t.csv");
    std::fs::write(&csv, "z\n7\n").unwrap();
    assert_eq!(db.import_csv("theirs", &csv, &Default::default()).unwrap(), 1);
    assert_eq!(scalar(&db, "SELECT z FROM memory.main.theirs"), Value::Int(7));
    assert_eq!(scalar(&db, "SELECT count(*) FROM other.theirs"), Value::Int(1));
}

/// Asserts `expr` reads as `want` three ways: as a top-level column and nested in a list
/// (duckdb-rs's borrowed values), and beside a `TIME_NS` column, which sends the whole result
/// through Arrow.
#[track_caller]
fn assert_reads_as(db: &Analytics, expr: &str, want: &Value) {
    let row = db
        .query_row(&format!("SELECT {expr}, [{expr}]"), &[])
        .unwrap()
        .unwrap();
    let Value::List(nested) = &row.values[1] else {
        panic!("not a list: {row:?}")
    };
    let beside = db
        .query_row(&format!("SELECT '00:00:01'::TIME_NS, {expr}"), &[])
        .unwrap()
        .unwrap();
    let ways = [
        ("top level", &row.values[0]),
        ("in a list", &nested[0]),
        ("beside TIME_NS", &beside.values[1]),
    ];
    for (way, got) in ways {
        assert_eq!(got, want, "{expr} read {way}");
    }
}

#[test]
fn hugeint_uhugeint_and_integral_decimals_keep_their_sign_and_kind_at_every_nesting_level() {
    let db = db();
    let u128_max = "340282366920938463463374607431768211455";
    let i128_min = "-170141183460469231731687303715884105728";
    for (expr, want) in [
        (format!("{u128_max}::UHUGEINT"), Value::Other(u128_max.into())),
        // 2^127: the first UHUGEINT whose bits read as a negative HUGEINT.
        (
            "170141183460469231731687303715884105728::UHUGEINT".into(),
            Value::Other("170141183460469231731687303715884105728".into()),
        ),
        ("18446744073709551615::UHUGEINT".into(), Value::UInt(u64::MAX)),
        (format!("({i128_min})::HUGEINT"), Value::Other(i128_min.into())),
        ("-5::HUGEINT".into(), Value::Int(-5)),
        ("12::DECIMAL(10,0)".into(), Value::Other("12".into())),
        ("-7::DECIMAL(38,0)".into(), Value::Other("-7".into())),
        ("1.50::DECIMAL(5,2)".into(), Value::Other("1.50".into())),
    ] {
        assert_reads_as(&db, &expr, &want);
    }
}

#[test]
fn bit_and_bignum_values_read_as_duckdb_prints_them_not_as_their_internal_bytes() {
    let db = db();
    let long_bits = "1".repeat(37) + &"0".repeat(40) + "1";
    let huge = "1234567890123456789012345678901234567890123456789012345678901234567890";
    let nines = "9".repeat(500);
    let power = format!("1{}", "0".repeat(499));
    let mut exprs: Vec<String> = ["0", "1", "10101010", "101010101", "0000000000000000"]
        .iter()
        .chain([long_bits.as_str()].iter())
        .map(|bits| format!("'{bits}'::BIT"))
        .collect();
    for n in [
        "0",
        "1",
        "-1",
        "255",
        "256",
        "-256",
        "999999999",
        "1000000000",
        "-1000000000",
        "18446744073709551616",
        "10000000000000000000",
        "9999999999999999999",
        huge,
        &nines,
        &power,
    ] {
        exprs.push(format!("'{n}'::VARINT"));
        exprs.push(format!("'-{}'::VARINT", n.trim_start_matches('-')));
    }
    for expr in exprs {
        let duck = db
            .query_row(&format!("SELECT CAST({expr} AS VARCHAR)"), &[])
            .unwrap()
            .unwrap();
        let want = Value::Other(duck.values[0].as_str().unwrap().to_string());
        assert_reads_as(&db, &expr, &want);
    }
}

#[test]
fn empty_sql_is_invalid_input() {
    let db = db();
    for sql in ["", "  \n\t", ";", "-- only a comment", "/* c */ ;"] {
        expect_kind(db.query(sql, &[]), ErrorKind::InvalidInput);
        expect_kind(db.query_row(sql, &[]), ErrorKind::InvalidInput);
        expect_kind(db.exec(sql, &[]), ErrorKind::InvalidInput);
        assert_eq!(
            db.query_arrow(sql, &[]).err().map(|e| e.kind()),
            Some(ErrorKind::InvalidInput)
        );
    }
}

#[test]
fn infinite_and_before_common_era_dates_and_timestamps_render_as_text_duckdb_would_accept() {
    let db = db();
    let row = db
        .query_row(
            "SELECT 'infinity'::TIMESTAMP, '-infinity'::TIMESTAMP, 'infinity'::TIMESTAMP_NS,
                    '-infinity'::TIMESTAMP_MS, 'infinity'::DATE, '-infinity'::DATE,
                    DATE '0044-03-15 (BC)', TIMESTAMP '0001-01-01 00:00:00' - INTERVAL 1 DAY",
            &[],
        )
        .unwrap()
        .unwrap();
    let json: Vec<serde_json::Value> = row.values.iter().map(Value::to_json).collect();
    assert_eq!(
        json,
        [
            json!("infinity"),
            json!("-infinity"),
            json!("infinity"),
            json!("-infinity"),
            json!("infinity"),
            json!("-infinity"),
            // Astronomical years (1 BC is year 0), in ISO 8601's expanded form.
            json!("-0043-03-15"),
            json!("0000-12-31T00:00:00.000000Z"),
        ]
    );
}

#[test]
fn repeated_column_names_keep_every_value_in_json_objects() {
    let db = db();
    let rows = db.query("SELECT 1 AS a, 2 AS a, 3 AS a_1", &[]).unwrap();
    let object = &rows.to_objects()[0];
    assert_eq!(object.len(), 3, "{object:?}");
    assert_eq!(
        (&object["a"], &object["a_1"], &object["a_2"]),
        (&json!(1), &json!(3), &json!(2))
    );
    let row = db.query_row("SELECT 1 AS a, 2 AS a", &[]).unwrap().unwrap();
    assert_eq!(serde_json::to_value(&row).unwrap(), json!({"a": 1, "a_1": 2}));
    assert_eq!(row.get("a"), Some(&Value::Int(1)));
}

/// DuckDB's finite timestamps start at its first whole day (-106,751,991 days); a value before
/// that, bound as a parameter or written by a scoring writer, used to be stored and then, when
/// read, invalidate the whole database ("must be restarted"). A parameter saturates to
/// `-infinity`, as `i64::MAX` already means `infinity`; a scoring writer refuses the row.
#[test]
fn timestamps_before_duckdbs_range_saturate_instead_of_breaking_the_database() {
    let db = db();
    db.exec_batch("CREATE TABLE t (ts TIMESTAMP, d DATE)").unwrap();
    for (ts, d) in [
        (i64::MIN, i32::MIN),
        (-9_223_372_036_854_775_000, i32::MIN + 1),
        (-106_751_991 * 86_400_000_000 - 1, 0),
    ] {
        db.exec(
            "INSERT INTO t VALUES (?, ?)",
            &[Value::Timestamp(ts), Value::Date(d)],
        )
        .unwrap();
    }
    db.exec(
        "INSERT INTO t VALUES (?, NULL)",
        &[Value::Timestamp(-106_751_991 * 86_400_000_000)],
    )
    .unwrap();
    let text = db
        .query("SELECT ts::VARCHAR AS ts, d::VARCHAR AS d FROM t", &[])
        .unwrap();
    let rows: Vec<(String, String)> = text
        .rows
        .iter()
        .map(|r| (r[0].to_json().to_string(), r[1].to_json().to_string()))
        .collect();
    assert_eq!(rows[0], ("\"-infinity\"".into(), "\"-infinity\"".into()));
    assert_eq!(rows[1], ("\"-infinity\"".into(), "\"-infinity\"".into()));
    assert_eq!(rows[2], ("\"-infinity\"".into(), "\"1970-01-01\"".into()));
    assert_eq!(rows[3].0, "\"290309-12-22 (BC) 00:00:00\"");
    assert_eq!(
        scalar(&db, "SELECT 1"),
        Value::Int(1),
        "the database is still usable"
    );

    db.ensure_scoring_tables().unwrap();
    let row = store::analytics::CheckpointScore {
        scored_at: Some(i64::MIN),
        ..crate::scoring::checkpoint("m", "r", "l", 1)
    };
    // A row's time is refused rather than stored as -infinity (the scoring tests pin the range).
    expect_kind(db.append_checkpoint_scores([row]), ErrorKind::InvalidInput);
    assert_eq!(
        scalar(&db, "SELECT count(*) FROM checkpoint_scores"),
        Value::Int(0)
    );
}

/// `query_arrow` streams: the first batch of a result far too large to hold (16 GB) arrives
/// at once, and dropping the iterator stops the query.
#[test]
fn query_arrow_streams_a_result_too_large_to_hold() {
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let db = db();
        let mut batches = db
            .query_arrow("SELECT i, i * 2 AS j FROM range(1000000000) t(i)", &[])
            .unwrap();
        let first = batches.next().unwrap().unwrap();
        assert!(first.num_rows() > 0);
        drop(batches);
        assert_eq!(scalar(&db, "SELECT 1"), Value::Int(1));
        done.send(()).unwrap();
    });
    finished
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("the first batch of a huge result did not arrive: is the result materialised?");
}

/// While a `query_arrow` result is being read it holds the connection: another call from the
/// same thread is refused (it would wait forever), one from another thread waits for it.
#[test]
fn query_arrow_holds_the_connection_until_read_or_dropped() {
    let db = std::sync::Arc::new(db());
    let mut batches = db.query_arrow("SELECT * FROM range(100000)", &[]).unwrap();
    assert!(batches.next().unwrap().is_ok());
    let err = expect_kind(db.query("SELECT 1", &[]), ErrorKind::InvalidInput);
    assert_eq!(err.field(), Some("connection"), "{err}");
    expect_kind(db.exec_batch("SELECT 1"), ErrorKind::InvalidInput);
    expect_kind(db.close(), ErrorKind::InvalidInput);

    let other = {
        let db = db.clone();
        std::thread::spawn(move || scalar(&db, "SELECT 42"))
    };
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(
        !other.is_finished(),
        "another thread's call must wait for the reader"
    );
    let rows: usize = batches.map(|b| b.unwrap().num_rows()).sum();
    assert!(rows > 0);
    assert_eq!(other.join().unwrap(), Value::Int(42));
    // Read to its end, the result no longer holds the connection.
    let mut done = db.query_arrow("SELECT 1", &[]).unwrap();
    assert_eq!(done.next().unwrap().unwrap().num_rows(), 1);
    assert!(done.next().is_none());
    assert_eq!(scalar(&db, "SELECT 2"), Value::Int(2));
}

/// An error while fetching (here a failed cast met mid-result) is an `Err` item, not a panic,
/// and ends the iteration with the connection free again.
#[test]
fn query_arrow_reports_a_fetch_error_as_an_item() {
    let db = db();
    let batches = db
        .query_arrow(
            "SELECT CAST(CASE WHEN i = 150000 THEN 'x' ELSE i::VARCHAR END AS INTEGER) AS n \
             FROM range(300000) t(i)",
            &[],
        )
        .map(|b| b.collect::<Vec<_>>());
    match batches {
        Ok(items) => {
            let err = items
                .iter()
                .find_map(|b| b.as_ref().err())
                .expect("an error item");
            assert_eq!(err.kind(), ErrorKind::DuckDb, "{err}");
            assert!(items.last().unwrap().is_err(), "the error ends the iteration");
        }
        // DuckDB may also meet the error before the first batch.
        Err(err) => assert_eq!(err.kind(), ErrorKind::DuckDb, "{err}"),
    }
    assert_eq!(scalar(&db, "SELECT 1"), Value::Int(1));
}

/// duckdb-rs runs every statement but the last while preparing, so a later one that fails
/// would leave the earlier ones applied by a call that reports an error: text holding more
/// than one statement is refused before anything runs (exec_batch takes several).
#[test]
fn text_with_several_statements_is_refused_before_anything_runs() {
    let db = db();
    db.exec_batch("CREATE TABLE t AS SELECT 1 AS x").unwrap();
    let several = [
        "INSERT INTO t VALUES (2); INSERT INTO no_such_table VALUES (3)",
        "DELETE FROM t; SELECT * FROM no_such_table",
        "DROP TABLE t; SELECT 1",
    ];
    for sql in several {
        let err = expect_kind(db.exec(sql, &[]), ErrorKind::InvalidInput);
        assert_eq!(err.field(), Some("sql"), "{err}");
        expect_kind(db.query(sql, &[]), ErrorKind::InvalidInput);
        expect_kind(db.query_row(sql, &[]), ErrorKind::InvalidInput);
        expect_kind(db.query_arrow(sql, &[]).map(drop), ErrorKind::InvalidInput);
    }
    assert_eq!(count(&db, "t"), 1);
    // One statement with semicolons inside strings and comments, or a trailing one, runs.
    assert_eq!(
        db.query_row("SELECT 'a;b' AS s; -- done", &[])
            .unwrap()
            .unwrap()
            .values,
        vec![Value::Text("a;b".into())]
    );
}

/// A call that runs in a transaction of its own refuses to start inside one the caller
/// opened with BEGIN: DuckDB would abort the caller's transaction, losing its writes while
/// the caller's COMMIT still succeeded.
#[test]
fn a_call_needing_its_own_transaction_leaves_the_callers_open_transaction_alone() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("more.csv");
    std::fs::write(&csv, "x\n2\n").unwrap();
    let db = db();
    db.exec_batch("CREATE TABLE t (x INTEGER)").unwrap();
    db.exec("BEGIN TRANSACTION", &[]).unwrap();
    db.exec("INSERT INTO t VALUES (1)", &[]).unwrap();
    let err = expect_kind(
        db.import_csv("t", &csv, &Default::default()),
        ErrorKind::InvalidInput,
    );
    assert_eq!(err.field(), Some("transaction"), "{err}");
    assert!(err.to_string().contains("COMMIT or ROLLBACK"), "{err}");
    db.exec("COMMIT", &[]).unwrap();
    assert_eq!(count(&db, "t"), 1, "the caller's write survived");
    assert_eq!(db.import_csv("t", &csv, &Default::default()).unwrap(), 1);

    // A failed BEGIN … COMMIT batch leaves its transaction open and failed: the same answer,
    // and ROLLBACK recovers.
    db.exec_batch("BEGIN; INSERT INTO t VALUES (5); SELECT * FROM no_such_table; COMMIT")
        .unwrap_err();
    let err = expect_kind(
        db.import_csv("t", &csv, &Default::default()),
        ErrorKind::InvalidInput,
    );
    assert_eq!(err.field(), Some("transaction"), "{err}");
    db.exec("ROLLBACK", &[]).unwrap();
    assert_eq!(db.import_csv("t", &csv, &Default::default()).unwrap(), 1);
    assert_eq!(count(&db, "t"), 3);
}

/// Inside `with_connection` the closure holds the connection: a call of the same handle from
/// there is refused instead of waiting for the lock forever.
#[test]
fn a_call_from_inside_with_connection_is_refused_not_a_hang() {
    let db = db();
    let nested = db
        .with_connection(|_| {
            Ok((
                db.query("SELECT 1", &[]).map(drop),
                db.query_arrow("SELECT 1", &[]).map(drop),
                db.close(),
            ))
        })
        .unwrap();
    for err in [
        nested.0.unwrap_err(),
        nested.1.unwrap_err(),
        nested.2.unwrap_err(),
    ] {
        assert_eq!(err.field(), Some("connection"), "{err}");
    }
    assert_eq!(
        db.query_row("SELECT 2", &[]).unwrap().unwrap().values,
        vec![Value::Int(2)]
    );
}

#[test]
fn nanosecond_timestamps_before_1970_keep_their_leading_digits() {
    let db = db();
    let rows = db
        .query(
            "SELECT TIMESTAMP_NS '1969-12-31 23:59:59.999999999' AS a,
                    TIMESTAMP_NS '1960-01-01 00:00:00.0000001' AS b,
                    TIMESTAMP_NS '2024-05-06 07:08:09.123456789' AS c",
            &[],
        )
        .unwrap();
    assert_eq!(
        rows.to_json(),
        json!({
            "columns": ["a", "b", "c"],
            "rows": [[
                "1969-12-31T23:59:59.999999Z",
                "1960-01-01T00:00:00.000000Z",
                "2024-05-06T07:08:09.123456Z"
            ]]
        })
    );
}

#[test]
fn table_counts_count_the_base_table_not_a_temporary_one_of_the_same_name() {
    let db = db();
    db.exec_batch("CREATE TABLE t AS SELECT * FROM range(5); CREATE TEMP TABLE t AS SELECT * FROM range(2)")
        .unwrap();
    assert_eq!(db.table_counts().unwrap().get("t"), Some(&5));
    assert_eq!(db.inventory().unwrap().total_rows, 5);
}

#[test]
fn a_map_whose_keys_print_alike_keeps_every_entry_in_json() {
    let db = db();
    let row = db
        .query_row(
            "SELECT MAP {TIMESTAMP_NS '2024-01-01 00:00:00.000000001': 1,
                         TIMESTAMP_NS '2024-01-01 00:00:00.000000002': 2} AS m,
                    MAP {'a': 1, 'b': 2} AS plain",
            &[],
        )
        .unwrap()
        .unwrap();
    assert_eq!(
        row.values[0].to_json(),
        json!([
            {"key": "2024-01-01T00:00:00.000000Z", "value": 1},
            {"key": "2024-01-01T00:00:00.000000Z", "value": 2}
        ])
    );
    assert_eq!(row.values[1].to_json(), json!({"a": 1, "b": 2}));
}

#[test]
fn inventory_notes_read_the_scoring_table_not_a_temporary_one_of_the_same_name() {
    let db = db();
    db.ensure_scoring_tables().unwrap();
    db.exec_batch("CREATE TEMP TABLE checkpoint_scores AS SELECT 1 AS z")
        .unwrap();
    let inventory = db.inventory().unwrap();
    let table = inventory
        .tables
        .iter()
        .find(|t| t.name == "checkpoint_scores")
        .expect("listed");
    assert_eq!(table.notes, ["0 models", "0 runs"]);
}

/// Every name `table_counts` and the inventory give can be exported and split: a table of
/// another schema is `s.u` (or `"s"."u"` when a default-schema table is named `s.u`, which the
/// plain name keeps meaning).
#[test]
fn names_from_the_inventory_can_be_exported_and_split() {
    let dir = tempfile::tempdir().unwrap();
    let db = db();
    db.exec_batch(
        "CREATE SCHEMA \"odd schema\"; CREATE TABLE \"odd schema\".t AS SELECT range AS n, range % 2 AS k FROM range(3);
         CREATE TABLE \"s.u\" AS SELECT 1 AS x; CREATE SCHEMA s; CREATE TABLE s.u AS SELECT range AS x FROM range(2)",
    )
    .unwrap();
    let expected = [("odd schema.t", 3), ("s.u", 1), ("\"s\".\"u\"", 2)];
    for (name, rows) in expected {
        assert_eq!(db.table_counts().unwrap().get(name), Some(&rows), "{name}");
        let path = dir.path().join(format!("{}.parquet", rows));
        assert_eq!(db.export_parquet(name, &path).unwrap(), rows, "{name}");
    }
    let manifest = db
        .export_split_parquet("ODD SCHEMA.t", dir.path().join("split"), "k")
        .unwrap();
    assert_eq!(manifest.total_rows, 3);
    assert_eq!(manifest.files.len(), 2);
    let err = db
        .export_parquet("nope.t", dir.path().join("x.parquet"))
        .unwrap_err();
    assert_eq!(err.kind(), store::ErrorKind::Missing, "{err}");
}

/// h124 D3: the inventory named two tables alike, or dropped one, when their plain names
/// coincided (schema `a.b` table `c` and schema `a` table `b.c` were both `a.b.c`, exporting
/// the wrong one; a default-schema table literally named `"s"."u"` took the name of schema
/// `s`'s table `u`). Every base table is now counted once, under a name no other has (ignoring
/// case, as DuckDB does), and exporting that name exports that table.
#[test]
fn every_table_is_counted_under_its_own_name_which_exports_it() {
    let cases: [(&str, &[u64]); 5] = [
        (
            // h127: a temporary view named like another schema's table takes that name.
            r#"CREATE TEMP VIEW "s.u" AS SELECT 1 AS x;
               CREATE SCHEMA s; CREATE TABLE s.u AS SELECT * FROM range(4);"#,
            &[4],
        ),
        (
            r#"CREATE SCHEMA "a.b"; CREATE TABLE "a.b"."c" AS SELECT * FROM range(2);
               CREATE SCHEMA "a"; CREATE TABLE "a"."b.c" AS SELECT * FROM range(5);"#,
            &[2, 5],
        ),
        (
            r#"CREATE TABLE "s.u" AS SELECT * FROM range(1);
               CREATE TABLE """s"".""u""" AS SELECT * FROM range(2);
               CREATE SCHEMA s; CREATE TABLE s.u AS SELECT * FROM range(4);"#,
            &[1, 2, 4],
        ),
        (
            r#"CREATE TABLE "A.B" AS SELECT * FROM range(1);
               CREATE SCHEMA a; CREATE TABLE a.b AS SELECT * FROM range(3);"#,
            &[1, 3],
        ),
        (
            // A view named like another schema's table keeps the name: it is what DuckDB reads.
            r#"CREATE VIEW "v.w" AS SELECT 1 AS x;
               CREATE SCHEMA v; CREATE TABLE v.w AS SELECT * FROM range(4);"#,
            &[4],
        ),
    ];
    for (setup, rows) in cases {
        let dir = tempfile::tempdir().unwrap();
        let db = db();
        db.exec_batch(setup).unwrap();
        let counts = db.table_counts().unwrap();
        let lowered: std::collections::BTreeSet<String> =
            counts.keys().map(|k| k.to_ascii_lowercase()).collect();
        assert_eq!(
            lowered.len(),
            counts.len(),
            "two names differ only in case: {counts:?}"
        );
        let mut counted: Vec<u64> = counts.values().copied().collect();
        counted.sort();
        assert_eq!(counted, rows, "{setup}: {counts:?}");
        assert_eq!(db.inventory().unwrap().total_rows, rows.iter().sum::<u64>());
        for (i, (name, n)) in counts.iter().enumerate() {
            let path = dir.path().join(format!("{i}.parquet"));
            let exported = db
                .export_parquet(name, &path)
                .unwrap_or_else(|e| panic!("{setup}: export {name:?}: {e}"));
            assert_eq!(exported, *n, "{setup}: {name:?} exported another table");
        }
    }
}

/// h127: a temporary table hiding the default-schema table of its name: the inventory counts
/// the base table under the name, and exporting the name reads the temporary table, as SQL
/// does; the base table's fully qualified name exports it.
#[test]
fn a_base_table_hidden_by_a_temporary_one_exports_by_its_qualified_name() {
    let dir = tempfile::tempdir().unwrap();
    let db = db();
    db.exec_batch("CREATE TABLE t AS SELECT * FROM range(3); CREATE TEMP TABLE t AS SELECT * FROM range(5)")
        .unwrap();
    assert_eq!(db.table_counts().unwrap().get("t"), Some(&3));
    assert_eq!(db.export_parquet("t", dir.path().join("a.parquet")).unwrap(), 5);
    let qualified = r#""memory"."main"."t""#;
    assert_eq!(
        db.export_parquet(qualified, dir.path().join("b.parquet"))
            .unwrap(),
        3
    );
}

/// h126 R1: a list nested a thousand levels deep, as a parameter or as a result, overflowed the
/// thread's stack while it was converted or read: the process aborted. Parameters nested more
/// than 64 levels and result columns nested more than 128 are refused (`InvalidInput`) on a
/// default 2 MiB thread, and nesting within the limits still works.
#[test]
fn values_nested_too_deeply_are_refused_not_a_stack_overflow() {
    fn nested(depth: usize) -> Value {
        (0..depth).fold(Value::Int(1), |inner, _| Value::List(vec![inner]))
    }
    let worker = std::thread::Builder::new().stack_size(2 << 20);
    worker
        .spawn(|| {
            let db = db();
            for depth in [65, 1_000, 10_000] {
                for result in [
                    db.query("SELECT ? AS p", &[nested(depth)]).map(drop),
                    db.exec("SELECT ?", &[nested(depth)]).map(drop),
                    db.query_arrow("SELECT ? AS p", &[nested(depth)]).map(drop),
                ] {
                    let err = expect_kind(result, ErrorKind::InvalidInput);
                    assert!(err.to_string().contains("64 levels"), "{err}");
                }
            }
            let deep_literal = format!("SELECT {}1{} AS p", "[".repeat(200), "]".repeat(200));
            for result in [
                db.query(&deep_literal, &[]).map(drop),
                db.query_arrow(&deep_literal, &[]).map(drop),
            ] {
                let err = expect_kind(result, ErrorKind::InvalidInput);
                assert!(
                    err.to_string().contains("128 levels") && err.to_string().contains("\"p\""),
                    "{err}"
                );
            }
            let rows = db.query("SELECT ? AS p", &[nested(64)]).unwrap();
            assert_eq!(rows.rows[0][0], nested(64));
            let ok_literal = format!("SELECT {}1{} AS p", "[".repeat(128), "]".repeat(128));
            assert_eq!(db.query(&ok_literal, &[]).unwrap().rows[0][0], nested(128));
        })
        .unwrap()
        .join()
        .unwrap();
}

/// A FLOAT arrives as the decimal DuckDB prints for it (`0.1`), not as its exact binary value
/// widened to a double (`0.10000000149011612`), alone and inside lists, and in JSON.
#[test]
fn float_values_arrive_as_the_decimal_duckdb_prints() {
    let db = db();
    let rows = db
        .query(
            "SELECT 0.1::FLOAT AS a, [0.3::FLOAT] AS l, 'inf'::FLOAT AS i, 16777217::FLOAT AS big",
            &[],
        )
        .unwrap();
    let v = &rows.rows[0];
    assert_eq!(v[0], Value::Float(0.1));
    assert_eq!(v[0].to_json(), serde_json::json!(0.1));
    assert_eq!(v[1].to_json(), serde_json::json!([0.3]));
    assert_eq!(v[2], Value::Float(f64::INFINITY));
    // 16,777,217 is not a FLOAT: the stored value is 16,777,216.
    assert_eq!(v[3], Value::Float(16_777_216.0));
}

/// Too few or too many parameters is the caller's input, named as `params` with the fix, not
/// an engine error (h133).
#[test]
fn a_wrong_number_of_parameters_is_invalid_input_naming_params() {
    let db = db();
    let one = [Value::Int(1)];
    let two = [Value::Int(1), Value::Int(2)];
    let results = [
        db.query("SELECT $1::INT + 1", &[]).map(drop),
        db.query("SELECT ?", &two).map(drop),
        db.query("SELECT 1", &one).map(drop),
        db.exec("SELECT ?", &[]).map(drop),
    ];
    for result in results {
        let err = expect_kind(result, ErrorKind::InvalidInput);
        assert_eq!(err.field(), Some("params"), "{err}");
        assert!(err.to_string().contains("parameter(s)"), "{err}");
    }
    assert_eq!(
        db.query("SELECT ?::INT + 1", &one).unwrap().rows[0][0],
        Value::Int(2)
    );
}
