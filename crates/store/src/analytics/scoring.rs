//! The canonical scoring tables and their bulk writers.
//!
//! Writers build Arrow record batches from the row structs and hand them to DuckDB's Appender
//! inside one transaction, flushing explicitly before commit.
//!
//! **Upsert on the primary key.** A row whose primary key already exists in the table
//! *replaces* that row (every column, `scored_at` included), as `INSERT OR REPLACE` would: the
//! fast path appends, and only when the table already holds one of the keys is the call redone,
//! in a fresh transaction, through a staging table and `INSERT OR REPLACE`. Two rows with the
//! same key *in one call* are ambiguous (which one wins?), so such a call fails with
//! `InvalidInput` and writes nothing. `scoring_results` has no key: every row is appended.

use std::borrow::Borrow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use duckdb::arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int32Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use duckdb::arrow::datatypes::{DataType, Field, FieldRef, Schema, TimeUnit};
use duckdb::arrow::record_batch::RecordBatch;
use duckdb::{Connection, OptionalExt};

use super::{Analytics, current_database, main_table_sql, sql};
use crate::clock::{Clock, SystemClock, UnixMillis};
use crate::error::{Error, Result};

/// Per-checkpoint accuracy: primary key `(run_id, label)`.
///
/// # Examples
/// ```
/// use store::analytics::{Analytics, CHECKPOINT_SCORES, CheckpointScore, Value};
/// let db = Analytics::in_memory()?;
/// db.ensure_scoring_tables()?;
/// db.append_checkpoint_scores([CheckpointScore { model: "m".into(), run_id: "r".into(),
///     label: "c1".into(), iteration: 1, correct: 9, total: 10, accuracy: 0.9, scored_at: None }])?;
/// let rows = db.query(&format!("SELECT label, accuracy FROM {CHECKPOINT_SCORES}"), &[])?;
/// assert_eq!(rows.rows[0], [Value::Text("c1".into()), Value::Float(0.9)]);
/// # Ok::<(), store::Error>(())
/// ```
pub const CHECKPOINT_SCORES: &str = "checkpoint_scores";
/// Per-probe outcomes: primary key `(run_id, label, probe_id)`.
///
/// # Examples
/// ```
/// use store::analytics::{Analytics, PROBE_RESULTS, ProbeResult};
/// let db = Analytics::in_memory()?;
/// db.ensure_scoring_tables()?;
/// let probe = |id: &str| ProbeResult { model: "m".into(), run_id: "r".into(), label: "c".into(),
///     probe_id: id.into(), passed: true, response: "ok".into(), iteration: 1, scored_at: None };
/// db.append_probe_results([probe("p1"), probe("p2")])?; // keys differ in probe_id
/// assert_eq!(db.table_counts()?.get(PROBE_RESULTS), Some(&2));
/// # Ok::<(), store::Error>(())
/// ```
pub const PROBE_RESULTS: &str = "probe_results";
/// Free-form scores per prompt, suite and dimension: no primary key.
///
/// # Examples
/// ```
/// use store::analytics::{Analytics, SCORING_RESULTS, ScoringResult};
/// let db = Analytics::in_memory()?;
/// db.ensure_scoring_tables()?;
/// let row = ScoringResult { model: "m".into(), prompt_id: "q".into(), suite: "s".into(),
///     dimension: "d".into(), score: 1.0, scored_at: None };
/// db.append_scoring_results([row.clone()])?;
/// db.append_scoring_results([row])?; // no key: appended again, not replaced
/// assert_eq!(db.table_counts()?.get(SCORING_RESULTS), Some(&2));
/// # Ok::<(), store::Error>(())
/// ```
pub const SCORING_RESULTS: &str = "scoring_results";

/// The tables' definitions; `{schema}` is replaced by the current database's `main` schema (as
/// SQL), so neither `USE other_schema` nor a `search_path` sends them elsewhere.
const DDL: &str = "
CREATE TABLE IF NOT EXISTS {schema}.checkpoint_scores (
    model TEXT, run_id TEXT, label TEXT, iteration INTEGER, correct INTEGER, total INTEGER,
    accuracy DOUBLE, scored_at TIMESTAMP DEFAULT current_timestamp, PRIMARY KEY (run_id, label));
CREATE TABLE IF NOT EXISTS {schema}.probe_results (
    model TEXT, run_id TEXT, label TEXT, probe_id TEXT, passed BOOLEAN, response TEXT,
    iteration INTEGER, scored_at TIMESTAMP DEFAULT current_timestamp, PRIMARY KEY (run_id, label, probe_id));
CREATE TABLE IF NOT EXISTS {schema}.scoring_results (
    model TEXT, prompt_id TEXT, suite TEXT, dimension TEXT, score DOUBLE,
    scored_at TIMESTAMP DEFAULT current_timestamp);
";

/// Rows per record batch handed to the appender: bounded memory for any input size.
const BATCH_ROWS: usize = 64 * 1024;
/// Text bytes per record batch, at most (unless one row alone holds more): bounds memory for
/// long texts (a 1 MiB `response` per row would make a full batch 64 GiB), and keeps each text
/// column under Arrow's 2 GiB per array, where its 32-bit offsets would overflow (a panic).
const BATCH_TEXT_BYTES: usize = 256 << 20;
/// Text bytes one row may hold: a single record batch of it must stay under Arrow's limit.
const MAX_ROW_TEXT_BYTES: usize = i32::MAX as usize;

/// A row of [`CHECKPOINT_SCORES`].
///
/// # Examples
/// ```
/// let row = store::analytics::CheckpointScore { model: "m".into(), run_id: "r1".into(), label: "ckpt-1".into(),
///     iteration: 1, correct: 9, total: 10, accuracy: 0.9, scored_at: None };
/// ```
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CheckpointScore {
    /// Model name.
    pub model: String,
    /// Run identifier (key part).
    pub run_id: String,
    /// Checkpoint label (key part).
    pub label: String,
    /// Training iteration.
    pub iteration: i32,
    /// Correct answers.
    pub correct: i32,
    /// Questions asked.
    pub total: i32,
    /// `correct / total`, as computed by the caller.
    pub accuracy: f64,
    /// When it was scored (Unix ms); `None` = now.
    pub scored_at: Option<UnixMillis>,
}

/// A row of [`PROBE_RESULTS`].
///
/// # Examples
/// ```
/// let row = store::analytics::ProbeResult { model: "m".into(), run_id: "r1".into(), label: "ckpt-1".into(),
///     probe_id: "p7".into(), passed: true, response: "ok".into(), iteration: 1, scored_at: None };
/// ```
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ProbeResult {
    /// Model name.
    pub model: String,
    /// Run identifier (key part).
    pub run_id: String,
    /// Checkpoint label (key part).
    pub label: String,
    /// Probe identifier (key part).
    pub probe_id: String,
    /// Whether the probe passed.
    pub passed: bool,
    /// The model's response.
    pub response: String,
    /// Training iteration.
    pub iteration: i32,
    /// When it was scored (Unix ms); `None` = now.
    pub scored_at: Option<UnixMillis>,
}

/// A row of [`SCORING_RESULTS`].
///
/// # Examples
/// ```
/// let row = store::analytics::ScoringResult { model: "m".into(), prompt_id: "q1".into(), suite: "s".into(),
///     dimension: "helpfulness".into(), score: 4.5, scored_at: None };
/// ```
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ScoringResult {
    /// Model name.
    pub model: String,
    /// Prompt identifier.
    pub prompt_id: String,
    /// Suite name.
    pub suite: String,
    /// Scored dimension.
    pub dimension: String,
    /// The score.
    pub score: f64,
    /// When it was scored (Unix ms); `None` = now.
    pub scored_at: Option<UnixMillis>,
}

/// Column builders for one table, filled row by row and cut into record batches.
trait Columns<R> {
    fn new(capacity: usize) -> Self;
    fn push(&mut self, row: &R, now_us: i64);
    /// The row's `scored_at`, checked against DuckDB's range before the row is pushed.
    fn scored_at(row: &R) -> Option<UnixMillis>;
    /// The bytes of the row's text fields together.
    fn text_bytes(row: &R) -> usize;
    /// The table's primary-key columns (none: every row is appended).
    const KEY: &'static [&'static str];
    fn finish(&mut self) -> Vec<ArrayRef>;
    fn schema() -> Vec<Field>;
}

fn text(name: &str) -> Field {
    Field::new(name, DataType::Utf8, true)
}

fn int(name: &str) -> Field {
    Field::new(name, DataType::Int32, true)
}

fn timestamp(name: &str) -> Field {
    Field::new(name, DataType::Timestamp(TimeUnit::Microsecond, None), true)
}

fn micros(at: Option<UnixMillis>, now_us: i64) -> i64 {
    // `append_rows` refused every time outside the finite range, so this cannot overflow.
    at.map_or(now_us, |ms| ms.saturating_mul(1000))
}

/// Refuses a `scored_at` DuckDB cannot store as a finite `TIMESTAMP` (about 290,000 years
/// either side of 1970): stored, it would silently become `infinity` or `-infinity`.
fn check_scored_at(op: &'static str, row: u64, at: Option<UnixMillis>) -> Result<()> {
    let Some(ms) = at else { return Ok(()) };
    match ms.checked_mul(1000) {
        Some(us) if super::value::is_finite_duckdb_micros(us) => Ok(()),
        _ => Err(Error::invalid(
            op,
            "scored_at",
            format!(
                "row {row}: scored_at {ms} is outside DuckDB's TIMESTAMP range; pass Unix \
                 milliseconds (e.g. 1700000000000 for November 2023) or None for now"
            ),
        )),
    }
}

struct CheckpointColumns {
    model: StringBuilder,
    run_id: StringBuilder,
    label: StringBuilder,
    iteration: Int32Builder,
    correct: Int32Builder,
    total: Int32Builder,
    accuracy: Float64Builder,
    scored_at: TimestampMicrosecondBuilder,
}

impl Columns<CheckpointScore> for CheckpointColumns {
    fn new(n: usize) -> Self {
        CheckpointColumns {
            model: StringBuilder::with_capacity(n, n * 8),
            run_id: StringBuilder::with_capacity(n, n * 8),
            label: StringBuilder::with_capacity(n, n * 8),
            iteration: Int32Builder::with_capacity(n),
            correct: Int32Builder::with_capacity(n),
            total: Int32Builder::with_capacity(n),
            accuracy: Float64Builder::with_capacity(n),
            scored_at: TimestampMicrosecondBuilder::with_capacity(n),
        }
    }

    const KEY: &'static [&'static str] = &["run_id", "label"];

    fn scored_at(r: &CheckpointScore) -> Option<UnixMillis> {
        r.scored_at
    }

    fn text_bytes(r: &CheckpointScore) -> usize {
        r.model.len() + r.run_id.len() + r.label.len()
    }

    fn push(&mut self, r: &CheckpointScore, now_us: i64) {
        self.model.append_value(&r.model);
        self.run_id.append_value(&r.run_id);
        self.label.append_value(&r.label);
        self.iteration.append_value(r.iteration);
        self.correct.append_value(r.correct);
        self.total.append_value(r.total);
        self.accuracy.append_value(r.accuracy);
        self.scored_at.append_value(micros(r.scored_at, now_us));
    }

    fn finish(&mut self) -> Vec<ArrayRef> {
        vec![
            Arc::new(self.model.finish()),
            Arc::new(self.run_id.finish()),
            Arc::new(self.label.finish()),
            Arc::new(self.iteration.finish()),
            Arc::new(self.correct.finish()),
            Arc::new(self.total.finish()),
            Arc::new(self.accuracy.finish()),
            Arc::new(self.scored_at.finish()),
        ]
    }

    fn schema() -> Vec<Field> {
        vec![
            text("model"),
            text("run_id"),
            text("label"),
            int("iteration"),
            int("correct"),
            int("total"),
            Field::new("accuracy", DataType::Float64, true),
            timestamp("scored_at"),
        ]
    }
}

struct ProbeColumns {
    model: StringBuilder,
    run_id: StringBuilder,
    label: StringBuilder,
    probe_id: StringBuilder,
    passed: BooleanBuilder,
    response: StringBuilder,
    iteration: Int32Builder,
    scored_at: TimestampMicrosecondBuilder,
}

impl Columns<ProbeResult> for ProbeColumns {
    fn new(n: usize) -> Self {
        ProbeColumns {
            model: StringBuilder::with_capacity(n, n * 8),
            run_id: StringBuilder::with_capacity(n, n * 8),
            label: StringBuilder::with_capacity(n, n * 8),
            probe_id: StringBuilder::with_capacity(n, n * 8),
            passed: BooleanBuilder::with_capacity(n),
            response: StringBuilder::with_capacity(n, n * 16),
            iteration: Int32Builder::with_capacity(n),
            scored_at: TimestampMicrosecondBuilder::with_capacity(n),
        }
    }

    const KEY: &'static [&'static str] = &["run_id", "label", "probe_id"];

    fn scored_at(r: &ProbeResult) -> Option<UnixMillis> {
        r.scored_at
    }

    fn text_bytes(r: &ProbeResult) -> usize {
        r.model.len() + r.run_id.len() + r.label.len() + r.probe_id.len() + r.response.len()
    }

    fn push(&mut self, r: &ProbeResult, now_us: i64) {
        self.model.append_value(&r.model);
        self.run_id.append_value(&r.run_id);
        self.label.append_value(&r.label);
        self.probe_id.append_value(&r.probe_id);
        self.passed.append_value(r.passed);
        self.response.append_value(&r.response);
        self.iteration.append_value(r.iteration);
        self.scored_at.append_value(micros(r.scored_at, now_us));
    }

    fn finish(&mut self) -> Vec<ArrayRef> {
        vec![
            Arc::new(self.model.finish()),
            Arc::new(self.run_id.finish()),
            Arc::new(self.label.finish()),
            Arc::new(self.probe_id.finish()),
            Arc::new(self.passed.finish()),
            Arc::new(self.response.finish()),
            Arc::new(self.iteration.finish()),
            Arc::new(self.scored_at.finish()),
        ]
    }

    fn schema() -> Vec<Field> {
        vec![
            text("model"),
            text("run_id"),
            text("label"),
            text("probe_id"),
            Field::new("passed", DataType::Boolean, true),
            text("response"),
            int("iteration"),
            timestamp("scored_at"),
        ]
    }
}

struct ScoringColumns {
    model: StringBuilder,
    prompt_id: StringBuilder,
    suite: StringBuilder,
    dimension: StringBuilder,
    score: Float64Builder,
    scored_at: TimestampMicrosecondBuilder,
}

impl Columns<ScoringResult> for ScoringColumns {
    fn new(n: usize) -> Self {
        ScoringColumns {
            model: StringBuilder::with_capacity(n, n * 8),
            prompt_id: StringBuilder::with_capacity(n, n * 8),
            suite: StringBuilder::with_capacity(n, n * 8),
            dimension: StringBuilder::with_capacity(n, n * 8),
            score: Float64Builder::with_capacity(n),
            scored_at: TimestampMicrosecondBuilder::with_capacity(n),
        }
    }

    const KEY: &'static [&'static str] = &[];

    fn scored_at(r: &ScoringResult) -> Option<UnixMillis> {
        r.scored_at
    }

    fn text_bytes(r: &ScoringResult) -> usize {
        r.model.len() + r.prompt_id.len() + r.suite.len() + r.dimension.len()
    }

    fn push(&mut self, r: &ScoringResult, now_us: i64) {
        self.model.append_value(&r.model);
        self.prompt_id.append_value(&r.prompt_id);
        self.suite.append_value(&r.suite);
        self.dimension.append_value(&r.dimension);
        self.score.append_value(r.score);
        self.scored_at.append_value(micros(r.scored_at, now_us));
    }

    fn finish(&mut self) -> Vec<ArrayRef> {
        vec![
            Arc::new(self.model.finish()),
            Arc::new(self.prompt_id.finish()),
            Arc::new(self.suite.finish()),
            Arc::new(self.dimension.finish()),
            Arc::new(self.score.finish()),
            Arc::new(self.scored_at.finish()),
        ]
    }

    fn schema() -> Vec<Field> {
        vec![
            text("model"),
            text("prompt_id"),
            text("suite"),
            text("dimension"),
            Field::new("score", DataType::Float64, true),
            timestamp("scored_at"),
        ]
    }
}

impl Analytics {
    /// Creates the three scoring tables if they do not exist (idempotent), all or nothing: when
    /// a table of one of these names exists with other columns, the call fails naming it and
    /// creates none of the others.
    ///
    /// # Errors
    /// `InvalidInput { field: "table" }` naming a table of one of these names whose columns,
    /// their types or its primary key differ; `InvalidInput { field: "transaction" }` inside a transaction opened with `BEGIN`
    /// on this handle (the call runs in a transaction of its own); `DuckDb` for what DuckDB
    /// refuses, e.g. on a read-only handle.
    ///
    /// # Examples
    /// ```
    /// use store::analytics::{Analytics, CHECKPOINT_SCORES};
    /// let db = Analytics::in_memory()?;
    /// db.ensure_scoring_tables()?;
    /// db.ensure_scoring_tables()?;
    /// assert!(db.table_exists(CHECKPOINT_SCORES)?);
    /// # Ok::<(), store::Error>(())
    /// ```
    pub fn ensure_scoring_tables(&self) -> Result<()> {
        const OP: &str = "Analytics::ensure_scoring_tables";
        self.in_transaction(OP, |conn| {
            let schema = format!("{}.main", sql::quote_reported(&current_database(OP, conn)?));
            conn.execute_batch(&DDL.replace("{schema}", &schema))
                .map_err(|e| Error::duckdb(OP, "create scoring tables", e))?;
            // `IF NOT EXISTS` keeps a table of the same name whatever its columns; one whose
            // columns, types or key differ is reported here rather than at the first append.
            require_shape(OP, conn, CHECKPOINT_SCORES, &CheckpointColumns::schema())?;
            require_shape(OP, conn, PROBE_RESULTS, &ProbeColumns::schema())?;
            require_shape(OP, conn, SCORING_RESULTS, &ScoringColumns::schema())
        })
    }

    /// Writes rows to [`CHECKPOINT_SCORES`], all or nothing; returns the rows written. A row
    /// whose `(run_id, label)` is already in the table replaces it (upsert; see the module
    /// docs). The rows are held in memory for the call (a `Vec` is used as it is).
    ///
    /// # Errors
    /// `Missing { kind: "table" }` before [`Analytics::ensure_scoring_tables`];
    /// `InvalidInput { field: "rows" }` when two rows of the call share a `(run_id, label)`;
    /// `InvalidInput { field: "scored_at" }` for a time outside DuckDB's `TIMESTAMP` range
    /// (about 290,000 years either side of 1970; it would be stored as `±infinity`);
    /// nothing is written then.
    ///
    /// # Examples
    /// ```
    /// use store::analytics::{Analytics, CheckpointScore, Value};
    /// let db = Analytics::in_memory()?;
    /// db.ensure_scoring_tables()?;
    /// let row = |accuracy| CheckpointScore { model: "m".into(), run_id: "r".into(), label: "c1".into(),
    ///     iteration: 1, correct: 1, total: 3, accuracy, scored_at: None };
    /// assert_eq!(db.append_checkpoint_scores([row(0.3)])?, 1);
    /// assert_eq!(db.append_checkpoint_scores([row(0.9)])?, 1); // same key: replaces the row
    /// let row = db.query_row("SELECT count(*), max(accuracy) FROM checkpoint_scores", &[])?.unwrap();
    /// assert_eq!(row.values, vec![Value::Int(1), Value::Float(0.9)]);
    /// # Ok::<(), store::Error>(())
    /// ```
    pub fn append_checkpoint_scores(&self, rows: impl IntoIterator<Item = CheckpointScore>) -> Result<u64> {
        self.append::<CheckpointScore, CheckpointColumns>(
            "Analytics::append_checkpoint_scores",
            CHECKPOINT_SCORES,
            rows,
        )
    }

    /// Writes rows to [`PROBE_RESULTS`], all or nothing; returns the rows written. A row whose
    /// `(run_id, label, probe_id)` is already in the table replaces it (upsert); two rows of
    /// one call with the same key are refused (`InvalidInput`, nothing written), as is a
    /// `scored_at` outside DuckDB's `TIMESTAMP` range (see
    /// [`Analytics::append_checkpoint_scores`]).
    ///
    /// # Examples
    /// ```
    /// use store::analytics::{Analytics, ProbeResult};
    /// let db = Analytics::in_memory()?;
    /// db.ensure_scoring_tables()?;
    /// let row = ProbeResult { model: "m".into(), run_id: "r".into(), label: "c".into(), probe_id: "p".into(),
    ///     passed: true, response: "yes".into(), iteration: 1, scored_at: Some(0) };
    /// assert_eq!(db.append_probe_results([row])?, 1);
    /// # Ok::<(), store::Error>(())
    /// ```
    pub fn append_probe_results(&self, rows: impl IntoIterator<Item = ProbeResult>) -> Result<u64> {
        self.append::<ProbeResult, ProbeColumns>("Analytics::append_probe_results", PROBE_RESULTS, rows)
    }

    /// Appends rows to [`SCORING_RESULTS`], all or nothing; returns the rows written. A
    /// `scored_at` outside DuckDB's `TIMESTAMP` range is refused (`InvalidInput`, nothing
    /// written; see [`Analytics::append_checkpoint_scores`]).
    ///
    /// # Examples
    /// ```
    /// use store::analytics::{Analytics, ScoringResult};
    /// let db = Analytics::in_memory()?;
    /// db.ensure_scoring_tables()?;
    /// let row = ScoringResult { model: "m".into(), prompt_id: "q".into(), suite: "s".into(),
    ///     dimension: "d".into(), score: 1.0, scored_at: None };
    /// assert_eq!(db.append_scoring_results(vec![row.clone(), row])?, 2); // no key: duplicates allowed
    /// # Ok::<(), store::Error>(())
    /// ```
    pub fn append_scoring_results(&self, rows: impl IntoIterator<Item = ScoringResult>) -> Result<u64> {
        self.append::<ScoringResult, ScoringColumns>(
            "Analytics::append_scoring_results",
            SCORING_RESULTS,
            rows,
        )
    }

    fn append<R, C: Columns<R>>(
        &self,
        op: &'static str,
        table: &str,
        rows: impl IntoIterator<Item = R>,
    ) -> Result<u64> {
        let now_us = SystemClock.now_ms().saturating_mul(1000);
        let schema = Arc::new(Schema::new(C::schema()));
        // Every statement names the table through its database, as the shape check reads it:
        // a temporary table of the same name would otherwise take the rows (and they would be
        // gone when the connection closes).
        if C::KEY.is_empty() {
            // No key, no upsert: the rows stream through in record batches.
            return self.in_transaction(op, |conn| {
                require_scoring_table(op, conn, table, schema.fields())?;
                let database = current_database(op, conn)?;
                append_rows::<R, C, _>(op, conn, table, &database, &schema, rows, now_us)
            });
        }
        // Owned, so that an upsert can go over the rows a second time (a `Vec` is reused as is).
        let rows: Vec<R> = rows.into_iter().collect();
        let appended = self.in_transaction(op, |conn| {
            require_scoring_table(op, conn, table, schema.fields())?;
            let database = current_database(op, conn)?;
            append_rows::<R, C, _>(op, conn, table, &database, &schema, &rows, now_us)
        });
        match appended {
            Err(e) if is_key_conflict(&e) => self.upsert::<R, C>(op, table, &schema, &rows, now_us),
            other => other,
        }
    }

    /// The upsert: the rows go to a temporary copy of the table without its key, are checked
    /// for keys repeated inside the call, and replace or join the table's rows in one
    /// statement. The staging table is created (and dropped) outside the transaction: DuckDB
    /// 2.0 loses the rows of a full row group (122,880) appended to a table created in the
    /// same transaction when that table is read back (`count(*)` still sees them), which made
    /// large upserts write nothing.
    fn upsert<R, C: Columns<R>>(
        &self,
        op: &'static str,
        table: &str,
        schema: &Arc<Schema>,
        rows: &[R],
        now_us: i64,
    ) -> Result<u64> {
        static STAGES: AtomicU64 = AtomicU64::new(0);
        // Private to this connection and unique per call, so concurrent upserts never share one.
        let stage = format!("store_scoring_upsert_{}", STAGES.fetch_add(1, Ordering::Relaxed));
        let stage_error = |e| Error::duckdb(op, "stage rows for the upsert", e);
        // One hold of the connection for all three steps, so no other call sees the stage.
        self.with_conn(op, |conn| {
            let table = main_table_sql(op, conn, table)?;
            conn.execute_batch(&format!(
                "CREATE TEMP TABLE {stage} AS SELECT * FROM {table} LIMIT 0"
            ))
            .map_err(stage_error)?;
            let result = super::transaction_on(op, conn, super::Mode::ReadWrite, |conn| {
                Self::replace_from_stage::<R, C>(op, conn, &table, &stage, schema, rows, now_us)
            });
            if let Err(e) = conn.execute_batch(&format!("DROP TABLE IF EXISTS temp.{stage}")) {
                log::warn!("store: {op}: drop the upsert's staging table: {e}");
            }
            result
        })
    }

    /// The upsert's transaction: stage the rows, refuse keys repeated in the call, replace
    /// them into `table` (qualified SQL).
    fn replace_from_stage<R, C: Columns<R>>(
        op: &'static str,
        conn: &Connection,
        table: &str,
        stage: &str,
        schema: &Arc<Schema>,
        rows: &[R],
        now_us: i64,
    ) -> Result<u64> {
        append_rows::<R, C, _>(op, conn, stage, "temp", schema, rows, now_us)?;
        let key = C::KEY.join(", ");
        let repeated: i64 = conn
            .query_row(
                &format!("SELECT count(*) - count(DISTINCT ({key})) FROM temp.{stage}"),
                [],
                |r| r.get(0),
            )
            .map_err(|e| Error::duckdb(op, "check the staged rows for repeated keys", e))?;
        if repeated > 0 {
            return Err(Error::invalid(
                op,
                "rows",
                format!(
                    "{repeated} row(s) repeat a ({key}) of an earlier row in the same call; \
                     keep one row per key (nothing was written)"
                ),
            ));
        }
        conn.execute_batch(&format!(
            "INSERT OR REPLACE INTO {table} SELECT * FROM temp.{stage}"
        ))
        .map_err(|e| Error::duckdb(op, "replace rows", e))?;
        Ok(rows.len() as u64)
    }
}

fn require_scoring_table(
    op: &'static str,
    conn: &Connection,
    table: &str,
    fields: &[FieldRef],
) -> Result<()> {
    // In `main`, where the writers write (by its qualified name), whatever a `USE` says.
    let exists = conn
        .prepare(
            "SELECT 1 FROM information_schema.tables WHERE table_catalog = current_database() \
             AND table_schema = 'main' AND table_type = 'BASE TABLE' AND lower(table_name) = lower(?)",
        )
        .and_then(|mut stmt| stmt.exists([table]))
        .map_err(|e| Error::duckdb(op, format!("look up table {table}"), e))?;
    if !exists {
        return Err(Error::Missing {
            op,
            kind: "table",
            name: table.to_string(),
        });
    }
    require_shape(op, conn, table, fields)
}

/// Checks that the existing `table` has exactly the writers' columns, in order and of their
/// types, and the scoring table's primary key.
fn require_shape<F: std::borrow::Borrow<Field>>(
    op: &'static str,
    conn: &Connection,
    table: &str,
    fields: &[F],
) -> Result<()> {
    let columns_error = |e| Error::duckdb(op, format!("read the columns of {table}"), e);
    let have_typed: Vec<(String, String)> = conn
        .prepare(
            "SELECT column_name, data_type FROM information_schema.columns \
             WHERE table_catalog = current_database() AND table_schema = 'main' \
               AND lower(table_name) = lower(?) ORDER BY ordinal_position",
        )
        .and_then(|mut stmt| stmt.query_map([table], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
        .map_err(columns_error)?;
    let have: Vec<String> = have_typed.iter().map(|(name, _)| name.clone()).collect();
    let want: Vec<&str> = fields.iter().map(|f| f.borrow().name().as_str()).collect();
    if !have
        .iter()
        .map(|c| c.to_ascii_lowercase())
        .eq(want.iter().map(|c| c.to_string()))
    {
        return Err(Error::invalid(
            op,
            "table",
            format!(
                "{table} exists with columns ({}), not the scoring columns ({}); rename or drop it, \
                 then call ensure_scoring_tables()",
                have.join(", "),
                want.join(", ")
            ),
        ));
    }
    // Same names but other types (every column VARCHAR, say) would take the rows and store
    // them as something else: a score as text.
    let retyped: Vec<String> = have_typed
        .iter()
        .zip(fields)
        .filter_map(|((name, have), field)| {
            let want = duckdb_type(field.borrow().data_type());
            (!want.is_empty() && !have.eq_ignore_ascii_case(want))
                .then(|| format!("{name} {have} (not {want})"))
        })
        .collect();
    if !retyped.is_empty() {
        return Err(Error::invalid(
            op,
            "table",
            format!(
                "{table} exists with other column types: {}; rename or drop it, then call \
                 ensure_scoring_tables()",
                retyped.join(", ")
            ),
        ));
    }
    // The writers' upserts rest on the primary key: without it a second write of a key
    // would add a row instead of replacing one.
    let have_key: Option<String> = conn
        .query_row(
            "SELECT lower(array_to_string(constraint_column_names, ', ')) FROM duckdb_constraints() \
             WHERE database_name = current_database() AND schema_name = 'main' \
               AND lower(table_name) = lower(?) AND constraint_type = 'PRIMARY KEY'",
            [table],
            |r| r.get(0),
        )
        .optional()
        .map_err(|e| Error::duckdb(op, format!("read the primary key of {table}"), e))?;
    let want_key = primary_key(table).map(|k| k.join(", "));
    if have_key == want_key {
        return Ok(());
    }
    let describe = |key: &Option<String>| match key {
        Some(columns) => format!("PRIMARY KEY ({columns})"),
        None => "no primary key".to_string(),
    };
    Err(Error::invalid(
        op,
        "table",
        format!(
            "{table} exists with {}, not the scoring table's {}, so upserts would not replace \
             rows; rename or drop it, then call ensure_scoring_tables()",
            describe(&have_key),
            describe(&want_key)
        ),
    ))
}

/// The primary key columns of a scoring table (`None`: it has none).
fn primary_key(table: &str) -> Option<&'static [&'static str]> {
    match table {
        CHECKPOINT_SCORES => Some(&["run_id", "label"]),
        PROBE_RESULTS => Some(&["run_id", "label", "probe_id"]),
        _ => None,
    }
}

/// Whether an append failed on a primary key that already exists (or repeats in the call).
fn is_key_conflict(e: &Error) -> bool {
    // DuckDB words it "Duplicate key … violates primary key constraint" for a key in the table
    // and "PRIMARY KEY or UNIQUE constraint violation: duplicate key …" for one repeated in
    // the appended rows.
    matches!(e, Error::DuckDb { .. }) && e.to_string().to_ascii_lowercase().contains("duplicate key")
}

/// Appends `rows` to `table` in schema `main` of database `catalog` in record batches of
/// [`BATCH_ROWS`] or [`BATCH_TEXT_BYTES`], whichever comes first, then flushes.
fn append_rows<R, C: Columns<R>, I>(
    op: &'static str,
    conn: &Connection,
    table: &str,
    catalog: &str,
    schema: &Arc<Schema>,
    rows: I,
    now_us: i64,
) -> Result<u64>
where
    I: IntoIterator,
    I::Item: Borrow<R>,
{
    let mut appender = conn
        .appender_to_catalog_and_db(table, catalog, "main")
        .map_err(|e| Error::duckdb(op, "open appender", e))?;
    let mut rows = rows.into_iter().peekable();
    let mut columns = C::new(BATCH_ROWS.min(rows.size_hint().0.max(1)));
    let mut written = 0u64;
    while rows.peek().is_some() {
        let (mut pending, mut text) = (0u64, 0usize);
        while let Some(next) = rows.peek() {
            let bytes = C::text_bytes(next.borrow());
            // A batch takes its first row whatever its size.
            let full = pending == BATCH_ROWS as u64 || text.saturating_add(bytes) > BATCH_TEXT_BYTES;
            if pending > 0 && full {
                break;
            }
            let Some(row) = rows.next() else { break }; // just peeked
            let row = row.borrow();
            if bytes > MAX_ROW_TEXT_BYTES {
                return Err(Error::invalid(
                    op,
                    "rows",
                    format!(
                        "row {}: its text fields hold {bytes} bytes together, over the {MAX_ROW_TEXT_BYTES} \
                         a row may hold (Arrow's limit per column); nothing was written, store such \
                         texts elsewhere and keep a reference in the row",
                        written + pending
                    ),
                ));
            }
            check_scored_at(op, written + pending, C::scored_at(row))?;
            columns.push(row, now_us);
            pending += 1;
            text += bytes;
        }
        let batch = RecordBatch::try_new(Arc::clone(schema), columns.finish())
            .map_err(|e| Error::invalid(op, "rows", format!("cannot build a record batch: {e}")))?;
        appender
            .append_record_batch(batch)
            .map_err(|e| Error::duckdb(op, "append rows", e))?;
        written += pending;
    }
    // Constraint violations surface here at the latest; the transaction then rolls back.
    appender
        .flush()
        .map_err(|e| Error::duckdb(op, "flush appended rows", e))?;
    Ok(written)
}

/// Inventory notes for the scoring tables. A table that has a scoring table's name but not
/// its columns (imported under that name, say) gets a note saying so: one odd table must not
/// cost the user the whole inventory.
pub(crate) fn notes(op: &'static str, conn: &Connection, table: &str) -> Result<Vec<String>> {
    let fields = match table {
        CHECKPOINT_SCORES => CheckpointColumns::schema(),
        PROBE_RESULTS => ProbeColumns::schema(),
        SCORING_RESULTS => ScoringColumns::schema(),
        _ => return Ok(Vec::new()),
    };
    let odd = |e: Error| {
        log::debug!("{e}");
        vec!["columns differ from the canonical scoring table".to_string()]
    };
    match require_shape(op, conn, table, &fields) {
        // The names and key match; a summary that fails now met a column of another type.
        Ok(()) => Ok(summarise(op, conn, table).unwrap_or_else(odd)),
        Err(e @ Error::InvalidInput { .. }) => Ok(odd(e)),
        Err(e) => Err(e),
    }
}

/// The DuckDB type `ensure_scoring_tables` gives a column of this Arrow type (as
/// `information_schema.columns` spells it); `""` for a type the scoring tables do not use.
fn duckdb_type(data_type: &DataType) -> &'static str {
    match data_type {
        DataType::Utf8 => "VARCHAR",
        DataType::Int32 => "INTEGER",
        DataType::Float64 => "DOUBLE",
        DataType::Boolean => "BOOLEAN",
        DataType::Timestamp(_, None) => "TIMESTAMP",
        _ => "",
    }
}

fn summarise(op: &'static str, conn: &Connection, table: &str) -> Result<Vec<String>> {
    let summary = match table {
        CHECKPOINT_SCORES => "count(DISTINCT model) || ' models', count(DISTINCT run_id) || ' runs'",
        PROBE_RESULTS => {
            "count(*) FILTER (WHERE passed) || ' passed', count(*) FILTER (WHERE NOT passed) || ' failed'"
        }
        SCORING_RESULTS => "count(DISTINCT suite) || ' suites', count(DISTINCT dimension) || ' dimensions'",
        _ => return Ok(Vec::new()),
    };
    // Through its database's name, as the shape check reads it: unqualified, a temporary
    // table of the same name would be summarised instead.
    let sql = format!("SELECT {summary} FROM {}", main_table_sql(op, conn, table)?);
    conn.query_row(&sql, [], |r| {
        Ok(vec![r.get::<_, String>(0)?, r.get::<_, String>(1)?])
    })
    .map_err(|e| Error::duckdb(op, format!("summarise {table}"), e))
}
