//! The canonical scoring tables: their exact schema and keys, all-or-nothing appends through
//! DuckDB's appender, `scored_at` handling, `table_counts` and the inventory report.

use std::time::{SystemTime, UNIX_EPOCH};

use store::ErrorKind;
use store::analytics::{
    Analytics, CHECKPOINT_SCORES, CheckpointScore, PROBE_RESULTS, ProbeResult, SCORING_RESULTS,
    ScoringResult, Value,
};

use crate::support::{all_rows, columns, count, expect_kind, expect_missing, scalar};

fn db() -> Analytics {
    let db = Analytics::in_memory().unwrap();
    db.ensure_scoring_tables().unwrap();
    db
}

pub(crate) fn checkpoint(model: &str, run: &str, label: &str, i: i32) -> CheckpointScore {
    CheckpointScore {
        model: model.into(),
        run_id: run.into(),
        label: label.into(),
        iteration: i,
        correct: i % 10,
        total: 10,
        accuracy: f64::from(i % 10) / 10.0,
        scored_at: Some(1_700_000_000_000),
    }
}

fn probe(run: &str, label: &str, probe_id: &str, passed: bool) -> ProbeResult {
    ProbeResult {
        model: "m".into(),
        run_id: run.into(),
        label: label.into(),
        probe_id: probe_id.into(),
        passed,
        response: format!("réponse {probe_id} ✓"),
        iteration: 3,
        scored_at: Some(1_700_000_000_000),
    }
}

fn scoring(model: &str, suite: &str, dimension: &str, score: f64) -> ScoringResult {
    ScoringResult {
        model: model.into(),
        prompt_id: "q1".into(),
        suite: suite.into(),
        dimension: dimension.into(),
        score,
        scored_at: None,
    }
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| ((*a).to_string(), (*b).to_string()))
        .collect()
}

fn primary_key(db: &Analytics, table: &str) -> Vec<Vec<Value>> {
    db.query(
        "SELECT constraint_column_names FROM duckdb_constraints() \
         WHERE table_name = ? AND constraint_type = 'PRIMARY KEY'",
        &[Value::Text(table.into())],
    )
    .unwrap()
    .rows
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

#[test]
fn table_name_constants_are_the_spec_names() {
    assert_eq!(CHECKPOINT_SCORES, "checkpoint_scores");
    assert_eq!(PROBE_RESULTS, "probe_results");
    assert_eq!(SCORING_RESULTS, "scoring_results");
}

#[test]
fn ensure_scoring_tables_creates_exactly_the_spec_columns_in_order() {
    let db = db();
    assert_eq!(
        columns(&db, CHECKPOINT_SCORES),
        pairs(&[
            ("model", "VARCHAR"),
            ("run_id", "VARCHAR"),
            ("label", "VARCHAR"),
            ("iteration", "INTEGER"),
            ("correct", "INTEGER"),
            ("total", "INTEGER"),
            ("accuracy", "DOUBLE"),
            ("scored_at", "TIMESTAMP"),
        ])
    );
    assert_eq!(
        columns(&db, PROBE_RESULTS),
        pairs(&[
            ("model", "VARCHAR"),
            ("run_id", "VARCHAR"),
            ("label", "VARCHAR"),
            ("probe_id", "VARCHAR"),
            ("passed", "BOOLEAN"),
            ("response", "VARCHAR"),
            ("iteration", "INTEGER"),
            ("scored_at", "TIMESTAMP"),
        ])
    );
    assert_eq!(
        columns(&db, SCORING_RESULTS),
        pairs(&[
            ("model", "VARCHAR"),
            ("prompt_id", "VARCHAR"),
            ("suite", "VARCHAR"),
            ("dimension", "VARCHAR"),
            ("score", "DOUBLE"),
            ("scored_at", "TIMESTAMP"),
        ])
    );
}

#[test]
fn scored_at_defaults_to_current_timestamp_in_every_table() {
    let db = db();
    for table in [CHECKPOINT_SCORES, PROBE_RESULTS, SCORING_RESULTS] {
        let default = db
            .query_row(
                "SELECT column_default FROM information_schema.columns \
                 WHERE table_name = ? AND column_name = 'scored_at'",
                &[Value::Text(table.into())],
            )
            .unwrap()
            .unwrap();
        let text = default.values[0].to_string().to_lowercase();
        assert!(
            text.contains("current_timestamp"),
            "{table}.scored_at default is {text}"
        );
    }
    db.exec_batch("INSERT INTO scoring_results (model, prompt_id, suite, dimension, score) VALUES ('m', 'q', 's', 'd', 1)")
        .unwrap();
    assert_eq!(
        scalar(
            &db,
            "SELECT count(*) FROM scoring_results WHERE scored_at IS NOT NULL"
        ),
        Value::Int(1)
    );
}

#[test]
fn ensure_scoring_tables_creates_the_spec_primary_keys() {
    let db = db();
    let key = |names: &[&str]| {
        vec![vec![Value::List(
            names.iter().map(|n| Value::Text((*n).into())).collect(),
        )]]
    };
    assert_eq!(primary_key(&db, CHECKPOINT_SCORES), key(&["run_id", "label"]));
    assert_eq!(
        primary_key(&db, PROBE_RESULTS),
        key(&["run_id", "label", "probe_id"])
    );
    assert!(
        primary_key(&db, SCORING_RESULTS).is_empty(),
        "scoring_results has no key"
    );
}

#[test]
fn ensure_scoring_tables_twice_is_ok_and_keeps_rows() {
    let db = db();
    db.append_checkpoint_scores([checkpoint("m", "r", "c1", 1)])
        .unwrap();
    db.ensure_scoring_tables().unwrap();
    assert_eq!(count(&db, CHECKPOINT_SCORES), 1);
    let counts = db.table_counts().unwrap();
    assert_eq!(counts.len(), 3);
}

#[test]
fn ensure_scoring_tables_creates_nothing_when_one_name_holds_another_table() {
    let db = Analytics::in_memory().unwrap();
    db.exec_batch("CREATE TABLE probe_results (x INTEGER)").unwrap();
    let err = db.ensure_scoring_tables().unwrap_err();
    assert!(err.to_string().contains(PROBE_RESULTS), "{err}");
    assert!(!db.table_exists(CHECKPOINT_SCORES).unwrap());
    assert!(!db.table_exists(SCORING_RESULTS).unwrap());
    assert_eq!(db.table_counts().unwrap().len(), 1);
}

#[test]
fn appending_100000_checkpoint_rows_counts_100000() {
    let db = db();
    let rows = (0..100_000).map(|i| {
        checkpoint(
            &format!("m{}", i % 7),
            &format!("run-{}", i / 1000),
            &format!("c{i}"),
            i,
        )
    });
    assert_eq!(db.append_checkpoint_scores(rows).unwrap(), 100_000);
    assert_eq!(count(&db, CHECKPOINT_SCORES), 100_000);
    assert_eq!(db.table_counts().unwrap()[CHECKPOINT_SCORES], 100_000);
    assert_eq!(
        scalar(&db, "SELECT count(DISTINCT run_id) FROM checkpoint_scores"),
        Value::Int(100)
    );
}

#[test]
fn appended_checkpoint_rows_read_back_field_for_field() {
    let db = db();
    let row = CheckpointScore {
        model: "modèle".into(),
        run_id: "r'1".into(),
        label: "ckpt \"7\"".into(),
        iteration: -3,
        correct: 7,
        total: 9,
        accuracy: 7.0 / 9.0,
        scored_at: Some(1_700_000_000_123),
    };
    assert_eq!(db.append_checkpoint_scores([row]).unwrap(), 1);
    assert_eq!(
        all_rows(&db, CHECKPOINT_SCORES),
        vec![vec![
            Value::Text("modèle".into()),
            Value::Text("r'1".into()),
            Value::Text("ckpt \"7\"".into()),
            Value::Int(-3),
            Value::Int(7),
            Value::Int(9),
            Value::Float(7.0 / 9.0),
            Value::Timestamp(1_700_000_000_123_000),
        ]]
    );
}

#[test]
fn a_key_repeated_inside_one_call_writes_nothing_and_is_invalid_input() {
    let db = db();
    let batch = vec![
        checkpoint("m", "r1", "a", 1),
        checkpoint("m", "r1", "b", 2),
        checkpoint("m", "r1", "a", 3),
    ];
    let err = expect_kind(db.append_checkpoint_scores(batch), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("run_id, label"), "{err}");
    assert_eq!(count(&db, CHECKPOINT_SCORES), 0);

    // A table that already has rows keeps exactly those rows, also when the repeated key is
    // one the table holds (the call goes the upsert way and is refused there).
    db.append_checkpoint_scores([checkpoint("m", "r0", "x", 0)])
        .unwrap();
    let before = all_rows(&db, CHECKPOINT_SCORES);
    let batch = vec![checkpoint("m", "r2", "a", 1), checkpoint("m", "r2", "a", 2)];
    expect_kind(db.append_checkpoint_scores(batch), ErrorKind::InvalidInput);
    let batch = vec![checkpoint("m", "r0", "x", 1), checkpoint("m", "r0", "x", 2)];
    expect_kind(db.append_checkpoint_scores(batch), ErrorKind::InvalidInput);
    assert_eq!(all_rows(&db, CHECKPOINT_SCORES), before);

    // The same holds for probe_results' three-part key.
    let probes = vec![probe("r", "c", "p1", true), probe("r", "c", "p1", false)];
    expect_kind(db.append_probe_results(probes), ErrorKind::InvalidInput);
    assert_eq!(count(&db, PROBE_RESULTS), 0);
}

#[test]
fn a_key_already_in_the_table_is_replaced_by_the_new_row() {
    let db = db();
    db.append_checkpoint_scores([checkpoint("m", "r1", "a", 1), checkpoint("m", "r1", "b", 2)])
        .unwrap();
    let mut newer = checkpoint("m2", "r1", "a", 9);
    newer.scored_at = Some(1_800_000_000_000);
    let batch = vec![checkpoint("m", "r1", "new", 3), newer];
    assert_eq!(db.append_checkpoint_scores(batch).unwrap(), 2);
    assert_eq!(
        db.query(
            "SELECT label, model, iteration, epoch_ms(scored_at) FROM checkpoint_scores ORDER BY label",
            &[]
        )
        .unwrap()
        .rows,
        vec![
            vec![
                Value::Text("a".into()),
                Value::Text("m2".into()),
                Value::Int(9),
                Value::Int(1_800_000_000_000)
            ],
            vec![
                Value::Text("b".into()),
                Value::Text("m".into()),
                Value::Int(2),
                Value::Int(1_700_000_000_000)
            ],
            vec![
                Value::Text("new".into()),
                Value::Text("m".into()),
                Value::Int(3),
                Value::Int(1_700_000_000_000)
            ],
        ]
    );

    db.append_probe_results([probe("r", "c", "p1", true), probe("r", "c", "p2", true)])
        .unwrap();
    assert_eq!(
        db.append_probe_results([probe("r", "c", "p1", false)]).unwrap(),
        1
    );
    assert_eq!(count(&db, PROBE_RESULTS), 2);
    assert_eq!(
        scalar(&db, "SELECT passed FROM probe_results WHERE probe_id = 'p1'"),
        Value::Bool(false)
    );

    // scoring_results has no key: the same row twice is two rows.
    let row = scoring("m", "s", "d", 1.0);
    db.append_scoring_results([row.clone()]).unwrap();
    db.append_scoring_results([row]).unwrap();
    assert_eq!(count(&db, SCORING_RESULTS), 2);
}

#[test]
fn an_upsert_spanning_several_record_batches_and_row_groups_writes_every_row_once() {
    // 130,000 rows: two of the writer's record batches, and more than one DuckDB row group
    // (122,880 rows), where DuckDB writes appended data to storage optimistically.
    let db = db();
    db.append_checkpoint_scores([checkpoint("m", "r", "c129999", 0)])
        .unwrap();
    let rows: Vec<_> = (0..130_000)
        .map(|i| checkpoint("m", "r", &format!("c{i}"), i))
        .collect();
    assert_eq!(db.append_checkpoint_scores(rows).unwrap(), 130_000);
    assert_eq!(count(&db, CHECKPOINT_SCORES), 130_000);
    assert_eq!(
        scalar(
            &db,
            "SELECT iteration FROM checkpoint_scores WHERE label = 'c129999'"
        ),
        Value::Int(129_999)
    );
    // Every row replaced: the same keys again, with new values.
    let rows: Vec<_> = (0..130_000)
        .map(|i| checkpoint("m2", "r", &format!("c{i}"), i))
        .collect();
    assert_eq!(db.append_checkpoint_scores(rows).unwrap(), 130_000);
    assert_eq!(
        scalar(&db, "SELECT count(*) FROM checkpoint_scores WHERE model = 'm2'"),
        Value::Int(130_000)
    );
    // The staging table is gone: a second upsert works the same way.
    assert_eq!(
        db.append_checkpoint_scores([checkpoint("m", "r", "c0", 42)])
            .unwrap(),
        1
    );
    assert_eq!(count(&db, CHECKPOINT_SCORES), 130_000);
}

#[test]
fn a_key_repeated_in_a_later_chunk_of_a_large_append_writes_nothing() {
    let db = db();
    for n in [70_000, 130_000] {
        let mut rows: Vec<_> = (0..n)
            .map(|i| checkpoint("m", "r", &format!("c{i}"), i))
            .collect();
        rows.push(checkpoint("m", "r", "c5", 5));
        expect_kind(db.append_checkpoint_scores(rows), ErrorKind::InvalidInput);
        assert_eq!(count(&db, CHECKPOINT_SCORES), 0, "{n} rows");
    }
}

#[test]
fn appending_before_ensure_scoring_tables_is_missing_table() {
    let db = Analytics::in_memory().unwrap();
    let name = expect_missing(
        db.append_checkpoint_scores([checkpoint("m", "r", "c", 1)]),
        "table",
    );
    assert_eq!(
        name, CHECKPOINT_SCORES,
        "the name alone; the hint is in the message"
    );
    let err = db.append_probe_results([probe("r", "c", "p", true)]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Missing);
    assert!(
        err.to_string().contains("ensure_scoring_tables"),
        "no hint in {err}"
    );
    expect_missing(db.append_scoring_results([scoring("m", "s", "d", 1.0)]), "table");
    assert!(!db.table_exists(CHECKPOINT_SCORES).unwrap());
}

#[test]
fn scored_at_none_is_now_and_some_is_stored_exactly() {
    let db = db();
    let before_us = now_ms() * 1000;
    let mut exact = scoring("m", "s", "exact", 1.0);
    exact.scored_at = Some(1_234_567_890_123);
    db.append_scoring_results([scoring("m", "s", "now", 1.0), exact])
        .unwrap();
    let after_us = (now_ms() + 1) * 1000;

    let at = |dimension: &str| {
        db.query_row(
            "SELECT scored_at FROM scoring_results WHERE dimension = ?",
            &[Value::Text(dimension.into())],
        )
        .unwrap()
        .unwrap()
        .values[0]
            .clone()
    };
    assert_eq!(at("exact"), Value::Timestamp(1_234_567_890_123_000));
    match at("now") {
        Value::Timestamp(us) => assert!(
            (before_us..=after_us).contains(&us),
            "scored_at {us} is not between {before_us} and {after_us}"
        ),
        other => panic!("scored_at is {other:?}"),
    }

    let mut p = probe("r", "c", "p", true);
    p.scored_at = None;
    let mut c = checkpoint("m", "r", "c", 1);
    c.scored_at = Some(0);
    db.append_probe_results([p]).unwrap();
    db.append_checkpoint_scores([c]).unwrap();
    assert_eq!(
        scalar(&db, "SELECT scored_at FROM checkpoint_scores"),
        Value::Timestamp(0)
    );
    let Value::Timestamp(us) = scalar(&db, "SELECT scored_at FROM probe_results") else {
        panic!("probe scored_at is not a timestamp");
    };
    assert!(us >= before_us);
}

#[test]
fn scored_at_outside_duckdbs_timestamp_range_is_refused_and_writes_nothing() {
    // DuckDB's finite TIMESTAMP range in microseconds: from its first whole day (-106,751,991
    // days) to i64::MAX - 1 (i64::MAX itself is `infinity`).
    let first_ms = -106_751_991 * 86_400_000;
    let last_ms = (i64::MAX - 1) / 1000;
    let db = db();
    for (i, at) in [first_ms, last_ms].into_iter().enumerate() {
        let mut row = scoring("m", "s", &format!("edge{i}"), 1.0);
        row.scored_at = Some(at);
        db.append_scoring_results([row]).unwrap();
        let stored = db
            .query_row(
                "SELECT scored_at FROM scoring_results WHERE dimension = ?",
                &[Value::Text(format!("edge{i}"))],
            )
            .unwrap()
            .unwrap()
            .values[0]
            .clone();
        assert_eq!(stored, Value::Timestamp(at * 1000), "edge {at} ms");
    }
    for at in [first_ms - 1, last_ms + 1, i64::MIN, i64::MAX] {
        let fine = scoring("m", "s", "fine", 1.0);
        let mut bad = scoring("m", "s", "bad", 1.0);
        bad.scored_at = Some(at);
        let e = expect_kind(db.append_scoring_results([fine, bad]), ErrorKind::InvalidInput);
        let message = e.to_string();
        assert!(
            message.contains("scored_at") && message.contains("row 1"),
            "{message}"
        );
        let mut c = checkpoint("m", "r", "c", 1);
        c.scored_at = Some(at);
        expect_kind(db.append_checkpoint_scores([c]), ErrorKind::InvalidInput);
        let mut p = probe("r", "c", "p", true);
        p.scored_at = Some(at);
        expect_kind(db.append_probe_results([p]), ErrorKind::InvalidInput);
    }
    // All or nothing: only the two edge rows were ever written, and the database still works.
    assert_eq!(count(&db, SCORING_RESULTS), 2);
    assert_eq!(count(&db, CHECKPOINT_SCORES), 0);
    assert_eq!(count(&db, PROBE_RESULTS), 0);
    assert_eq!(
        db.append_checkpoint_scores([checkpoint("m", "r", "c", 1)])
            .unwrap(),
        1
    );
}

#[test]
fn probe_and_scoring_appends_store_their_rows() {
    let db = db();
    let probes = vec![
        probe("r1", "c1", "p1", true),
        probe("r1", "c1", "p2", false),
        probe("r1", "c2", "p1", true),
    ];
    assert_eq!(db.append_probe_results(probes).unwrap(), 3);
    assert_eq!(
        db.query("SELECT probe_id, passed, response, iteration FROM probe_results WHERE label = 'c1' ORDER BY probe_id", &[])
            .unwrap()
            .rows,
        vec![
            vec![Value::Text("p1".into()), Value::Bool(true), Value::Text("réponse p1 ✓".into()), Value::Int(3)],
            vec![Value::Text("p2".into()), Value::Bool(false), Value::Text("réponse p2 ✓".into()), Value::Int(3)],
        ]
    );

    // scoring_results has no key: identical rows are all kept.
    let same = scoring("m", "s", "d", 0.5);
    assert_eq!(
        db.append_scoring_results(vec![same.clone(), same.clone(), same])
            .unwrap(),
        3
    );
    assert_eq!(count(&db, SCORING_RESULTS), 3);
    assert_eq!(db.append_scoring_results(Vec::new()).unwrap(), 0);
    assert_eq!(count(&db, SCORING_RESULTS), 3);
}

#[test]
fn table_counts_lists_every_base_table_but_not_views() {
    let db = db();
    db.exec_batch("CREATE TABLE extra AS SELECT * FROM range(4); CREATE VIEW v AS SELECT * FROM extra")
        .unwrap();
    db.append_scoring_results([scoring("m", "s", "d", 1.0)]).unwrap();
    let counts = db.table_counts().unwrap();
    let expected: Vec<(&str, u64)> = vec![
        (CHECKPOINT_SCORES, 0),
        ("extra", 4),
        (PROBE_RESULTS, 0),
        (SCORING_RESULTS, 1),
    ];
    assert_eq!(
        counts.iter().map(|(k, v)| (k.as_str(), *v)).collect::<Vec<_>>(),
        expected
    );
}

#[test]
fn inventory_counts_rows_and_adds_notes_for_the_scoring_tables() {
    let db = db();
    db.exec_batch("CREATE TABLE extra AS SELECT * FROM range(5)")
        .unwrap();
    db.append_checkpoint_scores([
        checkpoint("m1", "r1", "a", 1),
        checkpoint("m1", "r2", "a", 1),
        checkpoint("m2", "r3", "a", 1),
    ])
    .unwrap();
    db.append_probe_results([
        probe("r", "c", "p1", true),
        probe("r", "c", "p2", true),
        probe("r", "c", "p3", false),
    ])
    .unwrap();
    db.append_scoring_results([
        scoring("m", "s1", "d1", 1.0),
        scoring("m", "s1", "d2", 1.0),
        scoring("m", "s2", "d3", 1.0),
        scoring("m", "s2", "d3", 2.0),
    ])
    .unwrap();

    let inventory = db.inventory().unwrap();
    let summary: Vec<(&str, u64, Vec<&str>)> = inventory
        .tables
        .iter()
        .map(|t| {
            (
                t.name.as_str(),
                t.rows,
                t.notes.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (CHECKPOINT_SCORES, 3, vec!["2 models", "3 runs"]),
            ("extra", 5, vec![]),
            (PROBE_RESULTS, 3, vec!["2 passed", "1 failed"]),
            (SCORING_RESULTS, 4, vec!["2 suites", "3 dimensions"]),
        ]
    );
    assert_eq!(inventory.total_rows, 15);

    let text = inventory.to_string();
    let lines: Vec<&str> = text.lines().collect();
    let rule = "-".repeat(52);
    assert_eq!(lines[0], "Analytics inventory");
    assert_eq!(lines[1], rule);
    assert_eq!(lines[lines.len() - 2], rule);
    assert!(lines[lines.len() - 1].contains("TOTAL"), "{text}");
    assert!(lines[lines.len() - 1].contains("15"), "{text}");
    let line_of = |name: &str| {
        *lines
            .iter()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("{name} missing: {text}"))
    };
    assert!(
        line_of(SCORING_RESULTS).starts_with(&format!("  {:<24} {:>8} rows  (", SCORING_RESULTS, 4)),
        "{text}"
    );
    for note in [
        "2 models",
        "3 runs",
        "2 passed",
        "1 failed",
        "2 suites",
        "3 dimensions",
    ] {
        assert!(text.contains(note), "inventory lacks {note:?}:\n{text}");
    }
    assert_eq!(line_of("extra"), format!("  {:<24} {:>8} rows", "extra", 5));
}

#[test]
fn inventory_of_empty_scoring_tables_notes_zeroes() {
    let inventory = db().inventory().unwrap();
    assert_eq!(inventory.total_rows, 0);
    let text = inventory.to_string();
    for note in [
        "0 models",
        "0 runs",
        "0 passed",
        "0 failed",
        "0 suites",
        "0 dimensions",
    ] {
        assert!(text.contains(note), "inventory lacks {note:?}:\n{text}");
    }
    assert!(
        Analytics::in_memory()
            .unwrap()
            .inventory()
            .unwrap()
            .tables
            .is_empty()
    );
}

/// A user table that only borrows a scoring table's name gets a note saying so, and the rest
/// of the inventory is still reported (the notes' summary query would fail on its columns).
#[test]
fn inventory_notes_a_same_named_table_of_another_shape_instead_of_failing() {
    let db = Analytics::in_memory().unwrap();
    db.exec_batch(
        "CREATE TABLE probe_results (a INTEGER, b INTEGER); INSERT INTO probe_results VALUES (1, 2);
         CREATE TABLE other AS SELECT * FROM range(3)",
    )
    .unwrap();
    let inventory = db.inventory().unwrap();
    assert_eq!(inventory.total_rows, 4);
    let probe = inventory
        .tables
        .iter()
        .find(|t| t.name == "probe_results")
        .unwrap();
    assert_eq!(
        probe.notes,
        ["columns differ from the canonical scoring table"],
        "{inventory}"
    );
    assert!(inventory.tables.iter().any(|t| t.name == "other" && t.rows == 3));

    // The canonical names and key, but `passed` holds text: the summary cannot count it.
    db.exec_batch(
        "DROP TABLE probe_results;
         CREATE TABLE probe_results (model TEXT, run_id TEXT, label TEXT, probe_id TEXT, passed TEXT,
             response TEXT, iteration INTEGER, scored_at TIMESTAMP, PRIMARY KEY (run_id, label, probe_id));
         INSERT INTO probe_results VALUES ('m', 'r', 'l', 'p', 'pass', '', 1, NULL)",
    )
    .unwrap();
    let inventory = db.inventory().unwrap();
    let probe = inventory
        .tables
        .iter()
        .find(|t| t.name == "probe_results")
        .unwrap();
    assert_eq!(probe.notes, ["columns differ from the canonical scoring table"]);
}

/// `CREATE TABLE IF NOT EXISTS` keeps any table of the same name; one the writers cannot fill
/// is reported by `ensure_scoring_tables` and by the writers, naming its columns and the fix,
/// instead of failing deep inside DuckDB's appender.
#[test]
fn a_same_named_table_of_another_shape_is_reported_with_a_fix() {
    let db = Analytics::in_memory().unwrap();
    db.exec_batch("CREATE TABLE checkpoint_scores (x INTEGER)")
        .unwrap();
    let err = expect_kind(db.ensure_scoring_tables(), ErrorKind::InvalidInput);
    assert_eq!(err.field(), Some("table"), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("checkpoint_scores exists with columns (x)"),
        "{text}"
    );
    assert!(text.contains("rename or drop it"), "{text}");
    let row = checkpoint("m", "r", "l", 1);
    let err = expect_kind(
        db.append_checkpoint_scores([row.clone()]),
        ErrorKind::InvalidInput,
    );
    assert!(err.to_string().contains("exists with columns (x)"), "{err}");
    assert_eq!(count(&db, CHECKPOINT_SCORES), 0);

    db.exec_batch("DROP TABLE checkpoint_scores").unwrap();
    db.ensure_scoring_tables().unwrap();
    assert_eq!(db.append_checkpoint_scores([row]).unwrap(), 1);
}

/// The upserts rest on the primary key: a same-named table with the right columns but another
/// key (or none) would take a second write of a key as a new row, so it is reported too.
#[test]
fn a_same_named_table_without_the_primary_key_is_reported() {
    let db = Analytics::in_memory().unwrap();
    db.exec_batch(
        "CREATE TABLE checkpoint_scores (model TEXT, run_id TEXT, label TEXT, iteration INTEGER,
             correct INTEGER, total INTEGER, accuracy DOUBLE, scored_at TIMESTAMP)",
    )
    .unwrap();
    let err = expect_kind(db.ensure_scoring_tables(), ErrorKind::InvalidInput);
    assert_eq!(err.field(), Some("table"), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("checkpoint_scores exists with no primary key")
            && text.contains("PRIMARY KEY (run_id, label)"),
        "{text}"
    );
    let row = checkpoint("m", "r", "l", 1);
    expect_kind(
        db.append_checkpoint_scores([row.clone()]),
        ErrorKind::InvalidInput,
    );
    assert_eq!(count(&db, CHECKPOINT_SCORES), 0);

    // A key on other columns is refused as well; the canonical table works.
    db.exec_batch(
        "DROP TABLE checkpoint_scores;
         CREATE TABLE checkpoint_scores (model TEXT, run_id TEXT, label TEXT, iteration INTEGER,
             correct INTEGER, total INTEGER, accuracy DOUBLE, scored_at TIMESTAMP, PRIMARY KEY (run_id))",
    )
    .unwrap();
    let err = expect_kind(db.ensure_scoring_tables(), ErrorKind::InvalidInput);
    assert!(
        err.to_string().contains("exists with PRIMARY KEY (run_id),"),
        "{err}"
    );
    db.exec_batch("DROP TABLE checkpoint_scores").unwrap();
    db.ensure_scoring_tables().unwrap();
    assert_eq!(db.append_checkpoint_scores([row.clone()]).unwrap(), 1);
    assert_eq!(db.append_checkpoint_scores([row]).unwrap(), 1);
    assert_eq!(count(&db, CHECKPOINT_SCORES), 1);
}

/// A temporary table named like a scoring table (made before or after `ensure_scoring_tables`)
/// does not take the writers' rows: they go to the database's table, upserted on its key, and
/// survive a reopen (they were appended to the temporary copy, without its key, and lost).
#[test]
fn a_temporary_table_of_the_same_name_does_not_take_the_writers_rows() {
    for temp_first in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.duckdb");
        {
            let db = Analytics::open(&path).unwrap();
            let shadow = "CREATE TEMP TABLE checkpoint_scores AS \
                          SELECT 'x' AS model, 'x' AS run_id, 'x' AS label, 0 AS iteration, 0 AS correct, \
                          0 AS total, 0.0::DOUBLE AS accuracy, now()::TIMESTAMP AS scored_at LIMIT 0";
            if temp_first {
                db.exec_batch(shadow).unwrap();
                db.ensure_scoring_tables().unwrap();
            } else {
                db.ensure_scoring_tables().unwrap();
                db.exec_batch(shadow).unwrap();
            }
            // The second call meets the key and goes through the upsert.
            for accuracy in [0.25, 0.75] {
                let row = CheckpointScore {
                    accuracy,
                    ..checkpoint("m", "r", "a", 1)
                };
                assert_eq!(db.append_checkpoint_scores([row]).unwrap(), 1);
            }
            assert_eq!(db.table_counts().unwrap().get(CHECKPOINT_SCORES), Some(&1));
            assert_eq!(
                scalar(&db, "SELECT count(*) FROM temp.checkpoint_scores"),
                Value::Int(0),
                "temp first: {temp_first}"
            );
            db.close().unwrap();
        }
        let db = Analytics::open(&path).unwrap();
        assert_eq!(
            scalar(&db, "SELECT accuracy FROM checkpoint_scores"),
            Value::Float(0.75),
            "temp first: {temp_first}"
        );
    }
}

/// A same-named table with the scoring columns and key but other types would take the rows and
/// store them as something else (a score as text): refused by `ensure_scoring_tables` and the
/// writers, naming the columns, and nothing is written.
#[test]
fn a_same_named_table_with_other_column_types_is_refused() {
    let db = Analytics::in_memory().unwrap();
    db.exec_batch(
        "CREATE TABLE checkpoint_scores (model TEXT, run_id TEXT, label TEXT, iteration TEXT, \
         correct INTEGER, total INTEGER, accuracy TEXT, scored_at TIMESTAMP, PRIMARY KEY (run_id, label))",
    )
    .unwrap();
    let err = expect_kind(db.ensure_scoring_tables(), ErrorKind::InvalidInput);
    assert!(
        err.to_string()
            .contains("iteration VARCHAR (not INTEGER), accuracy VARCHAR (not DOUBLE)"),
        "{err}"
    );
    expect_kind(
        db.append_checkpoint_scores([checkpoint("m", "r", "a", 1)]),
        ErrorKind::InvalidInput,
    );
    assert_eq!(count(&db, CHECKPOINT_SCORES), 0);
}

/// h124 D4: the tables' DDL was unqualified, so after `USE other` it failed with "exists with
/// columns ()", and with another `search_path` it created empty copies in that schema (which
/// the inventory then listed). They are created, and checked, in `main` whatever the session's
/// schema; the writers then find them there.
#[test]
fn ensure_scoring_tables_creates_them_in_main_whatever_the_current_schema() {
    for switch in ["USE other", "SET search_path = 'other'"] {
        for ensured_before in [false, true] {
            let db = Analytics::in_memory().unwrap();
            if ensured_before {
                db.ensure_scoring_tables().unwrap();
            }
            db.exec_batch(&format!("CREATE SCHEMA other; {switch}")).unwrap();
            db.ensure_scoring_tables().unwrap();
            let schemas = db
                .query("SELECT DISTINCT schema_name FROM duckdb_tables()", &[])
                .unwrap()
                .rows;
            assert_eq!(schemas, vec![vec![Value::Text("main".into())]], "{switch}");
            assert_eq!(db.table_counts().unwrap().len(), 3, "{switch}");
            db.append_checkpoint_scores([checkpoint("m", "r", "c1", 1)])
                .unwrap();
            assert_eq!(
                scalar(&db, "SELECT count(*) FROM main.checkpoint_scores"),
                Value::Int(1)
            );
        }
    }
}

/// h124: on a read-only handle the scoring writers said only DuckDB's "Cannot append to a
/// readonly database", without the hint every other refused write gives.
#[test]
fn scoring_writers_on_a_read_only_handle_say_how_to_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.duckdb");
    let db = Analytics::open(&path).unwrap();
    db.ensure_scoring_tables().unwrap();
    db.close().unwrap();
    let ro = Analytics::open_read_only(&path).unwrap();
    for err in [
        ro.append_checkpoint_scores([checkpoint("m", "r", "c1", 1)])
            .unwrap_err(),
        ro.append_scoring_results([scoring("m", "s", "d", 1.0)])
            .unwrap_err(),
    ] {
        assert_eq!(err.kind(), ErrorKind::DuckDb);
        assert!(err.to_string().contains("open it with Analytics::open"), "{err}");
    }
}

/// The appender streams a key-less table's rows from the caller's iterator inside the
/// write's transaction: a panic there must roll it back, not leave it open on the handle,
/// where later writes would run inside it and be lost when the handle closes.
#[test]
fn a_panicking_row_iterator_rolls_back_and_later_writes_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.duckdb");
    let db = Analytics::open(&path).unwrap();
    db.ensure_scoring_tables().unwrap();
    db.exec_batch("CREATE TABLE t (x INTEGER)").unwrap();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        db.append_scoring_results((0..5000).map(|i| {
            assert!(i != 3000, "the caller's iterator panics");
            scoring(&format!("m{i}"), "s", "d", 1.0)
        }))
    }));
    assert!(caught.is_err());
    assert_eq!(count(&db, SCORING_RESULTS), 0, "nothing of the failed call");
    db.append_scoring_results(vec![scoring("after", "s", "d", 1.0)])
        .unwrap();
    assert_eq!(db.exec("INSERT INTO t VALUES (1)", &[]).unwrap(), 1);
    db.close().unwrap();
    let db = Analytics::open(&path).unwrap();
    assert_eq!((count(&db, "t"), count(&db, SCORING_RESULTS)), (1, 1));
}

/// The scoring tables live in `main`: a `USE` of another schema changes where unqualified
/// SQL looks, not where the writers write or look for them.
#[test]
fn scoring_writers_use_main_whatever_schema_is_in_use() {
    let db = Analytics::in_memory().unwrap();
    db.exec_batch("CREATE SCHEMA s2; USE s2").unwrap();
    db.ensure_scoring_tables().unwrap();
    assert_eq!(
        db.append_scoring_results(vec![scoring("m", "s", "d", 0.5)])
            .unwrap(),
        1
    );
    assert_eq!(
        db.append_checkpoint_scores(vec![checkpoint("m", "r", "l", 1)])
            .unwrap(),
        1
    );
    assert_eq!(
        scalar(&db, &format!("SELECT count(*) FROM main.{SCORING_RESULTS}")),
        Value::Int(1)
    );
    assert_eq!(db.table_counts().unwrap().get(CHECKPOINT_SCORES), Some(&1));
    let inventory = db.inventory().unwrap();
    let notes = inventory
        .tables
        .iter()
        .find(|t| t.name == CHECKPOINT_SCORES)
        .map(|t| t.notes.clone());
    assert_eq!(
        notes,
        Some(vec!["1 models".to_string(), "1 runs".to_string()]),
        "{inventory:?}"
    );
}

/// Arrow's text arrays hold at most 2 GiB per record batch: rows holding more than that
/// together (2,100 rows of 1 MiB here) are cut into several batches instead of overflowing
/// the offsets (a panic inside arrow-rs), and every row arrives.
#[test]
#[ignore = "holds 2 GiB of text: ~6.5 GB of memory and 20 s; run with --ignored"]
fn rows_holding_over_2_gib_of_text_are_appended_in_several_batches() {
    let dir = tempfile::tempdir().unwrap();
    let db = Analytics::open(dir.path().join("big.duckdb")).unwrap();
    db.ensure_scoring_tables().unwrap();
    let long = "x".repeat(1 << 20);
    let rows = (0..2_100).map(|i| ScoringResult {
        model: long.clone(),
        prompt_id: format!("p{i}"),
        suite: "s".into(),
        dimension: "d".into(),
        score: 1.0,
        scored_at: None,
    });
    assert_eq!(db.append_scoring_results(rows).unwrap(), 2_100);
    assert_eq!(count(&db, SCORING_RESULTS), 2_100);
    assert_eq!(
        scalar(&db, &format!("SELECT min(length(model)) FROM {SCORING_RESULTS}")),
        Value::Int(1 << 20)
    );
}
