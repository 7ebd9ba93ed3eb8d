//! The split export's partitioned writer: one streamed scan of the table through Arrow, rows
//! routed by value into per-partition buffers, and each partition written as one zstd Parquet
//! file by a pool of writer threads (arrow-rs `parquet`), with a dictionary only for columns whose
//! first rows repeat.
//!
//! Why not only DuckDB's `COPY … (PARTITION_BY …)`: DuckDB holds partitions smaller than its
//! flush threshold until the end of the scan, then drains them by picking, each time, the
//! smallest pending one with a scan over all of them, so its drain grows with the square of the
//! number of distinct values (on the bench table: ~1.3 s for 10 values, ~11 s for 10,000).
//! Here each row costs one hash lookup and each partition one file, whatever their number; the
//! scan's Arrow conversion (this thread) and the routing (a thread of its own) overlap with each
//! other and with the writers. For a few values DuckDB's writer is as fast or faster (it skips
//! the Arrow hand-over), so `split.rs` only calls this one for columns with hundreds of values.
//!
//! The buffers hold the scanned table in Arrow form until the end of the scan, so this path
//! takes tables up to [`BUFFER_BYTES`] of Arrow data, and only column types that survive Arrow →
//! Parquet → DuckDB exactly (see [`supported_type`]). Peak memory is about that budget, plus
//! the encoded bytes of partitions that filled a row group (handed to their writers early and
//! kept until complete), plus one chunk being regrouped, plus, while a small partition is
//! written, its rows joined into one batch ([`SMALL_SLICE_ROWS`]): a partition's rows are slices
//! of shared chunks, so its Arrow memory is freed only when the whole export is. Before the scan,
//! each column's first rows (at most [`DICTIONARY_SAMPLE_BYTES`] of values) are compared once
//! to choose its encoding ([`mostly_distinct`]). A table found to be over
//! the budget stops the scan, and DuckDB's partitioned COPY (which spills to disk) runs instead;
//! the scan so far is lost.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};
use duckdb::Connection;
use duckdb::arrow::array::{Array, AsArray, RecordBatch};
use duckdb::arrow::compute::{cast, concat_batches, interleave_record_batch};
use duckdb::arrow::datatypes::{DataType, SchemaRef};
use duckdb::arrow::row::{RowConverter, SortField};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_writer::ArrowWriterOptions;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use super::{DATA_FILE, Staged, too_long_for_a_name, worker_threads};
use crate::analytics::progress::{JobProgress, with_progress};
use crate::error::{Error, Result};

/// Largest scanned table (Arrow bytes) this path buffers; larger tables use DuckDB's COPY.
pub(super) const BUFFER_BYTES: usize = 1 << 30;

/// The Arrow budget: [`BUFFER_BYTES`], or a test's smaller one.
fn budget() -> usize {
    #[cfg(test)]
    if let Some(budget) = TEST_BUDGET.with(std::cell::Cell::get) {
        return budget;
    }
    BUFFER_BYTES
}

#[cfg(test)]
thread_local! {
    /// Overrides the budget for exports run on this thread (unit tests of the fallback).
    pub(super) static TEST_BUDGET: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

/// Rows per Parquet row group: DuckDB's default, so files look like its own.
const ROW_GROUP_ROWS: usize = 122_880;

/// Rows gathered from the scan before they are routed: large enough that each partition gets
/// a run of rows per chunk rather than single rows, small enough to stay in cache-friendly sizes.
const CHUNK_ROWS: usize = 1 << 18;

/// Partitions whose writers may be live at once (each holds its encoders and its encoded bytes
/// until the partition is complete); the rest wait for the end of the scan. A partition goes
/// live when it fills a row group, which overlaps encoding with the scan. (Handing partitions
/// over earlier, at a few thousand rows, measured slower: more live writers, smaller writes.)
const MAX_LIVE_WRITERS: usize = 2_048;

/// A partition's runs of rows shorter than this on average are joined into one batch before
/// they are written: copying a few thousand rows costs less than a `write` per run (at 10,000
/// values on the bench table, 20 runs of ~25 rows per partition; joined, the export took 7%
/// less time, and 8% less at 1,000 values). Longer runs are written as they are.
const SMALL_SLICE_ROWS: usize = 1_024;

/// DuckDB's default zstd level, so the comparison with its writer is like for like.
const ZSTD_LEVEL: i32 = 3;

/// Whether a column of this DuckDB type (as `duckdb_columns()` spells it) is written with the
/// same type DuckDB reads back. Others (HUGEINT, UUID, ENUM, INTERVAL, nested types, …) change
/// type through Arrow, so a table holding one takes DuckDB's own writer.
pub(super) fn supported_type(data_type: &str) -> bool {
    const EXACT: [&str; 17] = [
        "BOOLEAN",
        "TINYINT",
        "SMALLINT",
        "INTEGER",
        "BIGINT",
        "UTINYINT",
        "USMALLINT",
        "UINTEGER",
        "UBIGINT",
        "FLOAT",
        "DOUBLE",
        "VARCHAR",
        "BLOB",
        "DATE",
        "TIMESTAMP",
        "TIMESTAMP WITH TIME ZONE",
        "TIME",
    ];
    let upper = data_type.to_ascii_uppercase();
    EXACT.contains(&upper.as_str()) || upper.starts_with("DECIMAL(")
}

/// Whether this connection exports Arrow as the type check assumes. `SET
/// arrow_lossless_conversion = true` tags some types with Arrow extensions (BOOLEAN becomes an
/// `arrow.bool8` Int8) that arrow-rs would write as their storage type; a setting that cannot
/// be read counts as changed.
pub(super) fn arrow_export_is_plain(conn: &Connection) -> bool {
    conn.query_row(
        "SELECT NOT current_setting('arrow_lossless_conversion')::BOOLEAN \
           AND current_setting('arrow_output_version')::VARCHAR = '1.0'",
        [],
        |r| r.get::<_, bool>(0),
    )
    .unwrap_or(false)
}

/// Rows sampled from the start of the scan to judge each column's cardinality.
const DICTIONARY_SAMPLE_ROWS: usize = 2_048;

/// Value bytes of a text or binary column the sample takes at most: the comparison copies
/// them, and the first rows could be a few thousand values of megabytes each.
const DICTIONARY_SAMPLE_BYTES: usize = 4 << 20;

/// Which columns hold mostly distinct values (more than half of a sample of the first rows).
///
/// arrow-rs dictionary-encodes every column until its dictionary page passes 1 MiB, which a
/// partition of a few thousand rows never reaches, so a column of unique ids or payloads
/// would be hashed value by value and written twice over (the dictionary, then the indices).
/// Such columns are written plain instead (as DuckDB's writer does with a dictionary that does
/// not pay off), which on the bench table made the files a third smaller and the export into
/// 1,000 values ~10% faster. The first rows stand in for a partition's: a partition is a subset
/// of the table, so a column mostly distinct in the table's first rows is very likely mostly
/// distinct in each partition. Only speed and size depend on the guess, never the values. A
/// column whose rows cannot be compared (no supported type) keeps its dictionary.
fn mostly_distinct(first_rows: &RecordBatch) -> Vec<bool> {
    first_rows
        .columns()
        .iter()
        .map(|column| {
            let sample = sample_rows(column.as_ref());
            if sample < 2 {
                return false;
            }
            let Ok(converter) = RowConverter::new(vec![SortField::new(column.data_type().clone())]) else {
                return false;
            };
            let Ok(rows) = converter.convert_columns(&[column.slice(0, sample)]) else {
                return false;
            };
            let distinct: HashSet<_> = rows.iter().collect();
            distinct.len() * 2 > sample
        })
        .collect()
}

/// How many of a column's first rows [`mostly_distinct`] compares: up to
/// [`DICTIONARY_SAMPLE_ROWS`], fewer where text or binary values pass
/// [`DICTIONARY_SAMPLE_BYTES`].
fn sample_rows(column: &dyn Array) -> usize {
    let rows = column.len().min(DICTIONARY_SAMPLE_ROWS);
    let offsets = match column.data_type() {
        DataType::Utf8 => column.as_string::<i32>().value_offsets(),
        DataType::Binary => column.as_binary::<i32>().value_offsets(),
        _ => return rows,
    };
    let Some(&first) = offsets.first() else {
        return 0;
    };
    // Offsets never decrease: the first `k` offsets within the budget end `k - 1` whole values.
    let within = offsets[..=rows].partition_point(|&end| (end - first) as usize <= DICTIONARY_SAMPLE_BYTES);
    within.saturating_sub(1)
}

/// What a scan produced.
pub(super) enum Outcome {
    /// Every partition is written under the staging directory.
    Written(Vec<Staged>),
    /// A value's directory name cannot carry it and the files were written without the column:
    /// redo with the column kept.
    NeedsColumn,
    /// The table is larger than [`BUFFER_BYTES`]: use DuckDB's partitioned COPY.
    TooLarge,
}

/// One partition's buffered rows.
struct Partition {
    value: Option<String>,
    batches: Vec<RecordBatch>,
    buffered: usize,
    rows: u64,
    /// Handed to its writer at least once (its writer is live).
    open: bool,
}

/// Work for a writer thread: append `batches` to partition `id`'s writer (creating it first),
/// and write its file at `path` when `last`.
struct Job {
    id: usize,
    path: PathBuf,
    batches: Vec<RecordBatch>,
    last: bool,
}

/// What one scan reads and keeps: the table and split column (as SQL), whether the files keep
/// the column, and the longest escaped value a directory name can carry.
#[derive(Clone, Copy)]
pub(super) struct Scan<'a> {
    pub table_sql: &'a str,
    pub column_sql: &'a str,
    /// The split column as the catalog spells it (the Arrow field's name).
    pub column_name: &'a str,
    pub keep_column: bool,
    pub value_limit: usize,
}

/// Scans the table once and writes one file per distinct value of the column under `staging`
/// (`p<n>/data.parquet`). With `keep_column` the files hold the column too.
pub(super) fn write(
    op: &'static str,
    conn: &Connection,
    scan_of: &Scan<'_>,
    staging: &Path,
    progress: &JobProgress<'_>,
) -> Result<Outcome> {
    let Scan {
        table_sql,
        column_sql,
        keep_column,
        ..
    } = *scan_of;
    let columns = if keep_column {
        "*".to_string()
    } else {
        format!("* EXCLUDE ({column_sql})")
    };
    let query = format!("SELECT {columns}, CAST({column_sql} AS VARCHAR) FROM {table_sql}");
    std::fs::create_dir_all(staging).map_err(|e| io(op, e, staging))?;
    with_progress(conn, progress, || Ok(scan(op, conn, &query, scan_of, staging)))
        .map_err(|e| Error::duckdb(op, "scan the table", e))?
}

fn scan(
    op: &'static str,
    conn: &Connection,
    query: &str,
    scan_of: &Scan<'_>,
    staging: &Path,
) -> Result<Outcome> {
    let (keep_column, value_limit) = (scan_of.keep_column, scan_of.value_limit);
    let scan_error = |e| Error::duckdb(op, "scan the table", e);
    let mut stmt = conn.prepare(query).map_err(scan_error)?;
    let stream = stmt.stream_arrow([]).map_err(scan_error)?;
    let schema = stream.get_schema();
    let key_index = schema.fields().len() - 1;
    let data_columns: Vec<usize> = (0..key_index).collect();
    let data_schema: SchemaRef = Arc::new(schema.project(&data_columns).map_err(|e| arrow(op, e))?);
    let mut stream = stream.peekable();
    let first_rows = match stream.peek() {
        Some(Ok(batch)) => Some(batch.project(&data_columns).map_err(|e| arrow(op, e))?),
        _ => None,
    };
    let mut props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(ZSTD_LEVEL).map_err(|e| parquet(op, e, staging))?,
        ))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        // Column-chunk statistics, as DuckDB writes them; no page index.
        .set_statistics_enabled(EnabledStatistics::Chunk);
    if let Some(first_rows) = &first_rows {
        for (field, mostly_distinct) in data_schema.fields().iter().zip(mostly_distinct(first_rows)) {
            // A kept split column holds one value per file, whatever it holds in the table.
            let split_column = scan_of.keep_column && field.name() == scan_of.column_name;
            if mostly_distinct && !split_column {
                props =
                    props.set_column_dictionary_enabled(ColumnPath::new(vec![field.name().clone()]), false);
            }
        }
    }
    let props = props.build();
    let workers = worker_threads();
    std::thread::scope(|scope| {
        let mut senders: Vec<Sender<Job>> = Vec::with_capacity(workers);
        let mut handles = Vec::with_capacity(workers);
        for _ in 0..workers {
            let (tx, rx) = crossbeam_channel::bounded::<Job>(8);
            senders.push(tx);
            let (schema, props) = (data_schema.clone(), props.clone());
            handles.push(scope.spawn(move || write_jobs(op, rx, schema, props)));
        }
        // Fetching (DuckDB's Arrow conversion, on this thread) and routing (on its own thread)
        // overlap; `None` tells the router to stop without writing anything more.
        let (chunks, chunk_rx) = crossbeam_channel::bounded::<Option<Vec<RecordBatch>>>(2);
        let router = Router {
            op,
            staging,
            keep_column,
            value_limit,
            key_index,
            data_columns,
            partitions: Vec::new(),
            ids: HashMap::default(),
            null_id: None,
            senders,
            live: 0,
        };
        let router = scope.spawn(move || router.run(chunk_rx));
        let fetched = fetch(op, stream, &chunks);
        if !matches!(fetched, Ok(None)) {
            // Over the budget or a scan error: the router stops without writing anything more.
            let _ = chunks.send(None);
        }
        drop(chunks);
        // The router only panics if arrow-rs or the standard library does.
        let routed = router
            .join()
            .unwrap_or_else(|_| Err(Error::invalid(op, "table", "the thread routing rows panicked")));
        let mut failure = None;
        for handle in handles {
            // A writer thread only panics if arrow-rs or the standard library does.
            let result = handle
                .join()
                .unwrap_or_else(|_| Err(Error::invalid(op, "out_dir", "a Parquet writer thread panicked")));
            if let Err(e) = result {
                failure.get_or_insert(e);
            }
        }
        let routed = match fetched {
            Err(e) => Err(e),
            Ok(Some(early)) => Ok(early),
            Ok(None) => routed,
        };
        match (routed, failure) {
            (Err(e), _) => Err(e),
            // The attempt is being abandoned anyway; a writer's error does not matter.
            (Ok(retry @ (Outcome::NeedsColumn | Outcome::TooLarge)), _) => Ok(retry),
            (Ok(_), Some(e)) => Err(e),
            (Ok(outcome), None) => Ok(outcome),
        }
    })
}

/// Reads the scan into chunks of about [`CHUNK_ROWS`] rows for the router. `Some` stops the
/// scan early: the table is over the budget. Ends when the router stops taking chunks.
fn fetch(
    op: &'static str,
    stream: impl Iterator<Item = duckdb::Result<RecordBatch>>,
    chunks: &Sender<Option<Vec<RecordBatch>>>,
) -> Result<Option<Outcome>> {
    let mut pending: Vec<RecordBatch> = Vec::new();
    let mut pending_rows = 0;
    let mut scanned_bytes = 0usize;
    for batch in stream {
        let batch = batch.map_err(|e| Error::duckdb(op, "scan the table", e))?;
        scanned_bytes += batch.get_array_memory_size();
        if scanned_bytes > budget() {
            return Ok(Some(Outcome::TooLarge));
        }
        pending_rows += batch.num_rows();
        pending.push(batch);
        if pending_rows >= CHUNK_ROWS {
            if chunks.send(Some(std::mem::take(&mut pending))).is_err() {
                // The router stopped early (a long value); its outcome says why.
                return Ok(None);
            }
            pending_rows = 0;
        }
    }
    if pending_rows > 0 {
        let _ = chunks.send(Some(pending));
    }
    Ok(None)
}

struct Router<'a> {
    op: &'static str,
    staging: &'a Path,
    keep_column: bool,
    value_limit: usize,
    key_index: usize,
    data_columns: Vec<usize>,
    partitions: Vec<Partition>,
    ids: HashMap<String, usize, foldhash::fast::RandomState>,
    null_id: Option<usize>,
    senders: Vec<Sender<Job>>,
    live: usize,
}

impl Router<'_> {
    /// Routes every chunk until the fetcher is done (the channel closes: write everything) or
    /// abandons the scan (`None`: write nothing more). A long value that needs the column ends
    /// routing early.
    fn run(mut self, chunks: Receiver<Option<Vec<RecordBatch>>>) -> Result<Outcome> {
        for chunk in chunks.iter() {
            let Some(batches) = chunk else {
                return Ok(Outcome::TooLarge);
            };
            if let Some(outcome) = self.route(&batches)? {
                return Ok(outcome);
            }
        }
        Ok(Outcome::Written(self.finish()))
    }

    /// Sorts a chunk of batches by partition (a counting sort and one interleave), then hands
    /// each partition its run of rows.
    fn route(&mut self, batches: &[RecordBatch]) -> Result<Option<Outcome>> {
        let mut ids: Vec<usize> = Vec::new();
        let mut positions: Vec<(usize, usize)> = Vec::new(); // (batch, row)
        for (b, batch) in batches.iter().enumerate() {
            let keys = cast(batch.column(self.key_index), &DataType::Utf8).map_err(|e| arrow(self.op, e))?;
            let keys = keys.as_string::<i32>();
            for row in 0..keys.len() {
                let key = keys.is_valid(row).then(|| keys.value(row));
                let Some(id) = self.partition_of(key) else {
                    return Ok(Some(Outcome::NeedsColumn));
                };
                ids.push(id);
                positions.push((b, row));
            }
        }
        if ids.is_empty() {
            return Ok(None);
        }
        // Counting sort of the rows by partition: `starts[id]..starts[id + 1]` is its run.
        let mut starts = vec![0usize; self.partitions.len() + 1];
        for &id in &ids {
            starts[id + 1] += 1;
        }
        for i in 1..starts.len() {
            starts[i] += starts[i - 1];
        }
        let mut next = starts.clone();
        let mut indices = vec![(0, 0); ids.len()];
        for (&id, &position) in ids.iter().zip(&positions) {
            indices[next[id]] = position;
            next[id] += 1;
        }
        let data: Vec<RecordBatch> = batches
            .iter()
            .map(|b| b.project(&self.data_columns))
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| arrow(self.op, e))?;
        let refs: Vec<&RecordBatch> = data.iter().collect();
        let sorted = interleave_record_batch(&refs, &indices).map_err(|e| arrow(self.op, e))?;
        for id in 0..self.partitions.len() {
            let (start, end) = (starts[id], starts[id + 1]);
            if start == end {
                continue;
            }
            let part = &mut self.partitions[id];
            part.batches.push(sorted.slice(start, end - start));
            part.buffered += end - start;
            part.rows += (end - start) as u64;
            if part.buffered >= ROW_GROUP_ROWS && (part.open || self.live < MAX_LIVE_WRITERS) {
                if !part.open {
                    self.live += 1;
                }
                self.send(id, false);
            }
        }
        Ok(None)
    }

    /// The partition of a row's key (`None` = NULL), created on first sight. `None` when the
    /// key is a value no directory name can carry while the files leave the column out.
    fn partition_of(&mut self, key: Option<&str>) -> Option<usize> {
        let known = match key {
            None => self.null_id,
            Some(key) => self.ids.get(key).copied(),
        };
        if known.is_some() {
            return known;
        }
        if !self.keep_column && key.is_some_and(|k| too_long_for_a_name(k, self.value_limit)) {
            return None;
        }
        let id = self.partitions.len();
        self.partitions.push(Partition {
            value: key.map(str::to_string),
            batches: Vec::new(),
            buffered: 0,
            rows: 0,
            open: false,
        });
        match key {
            None => self.null_id = Some(id),
            Some(key) => {
                self.ids.insert(key.to_string(), id);
            }
        }
        Some(id)
    }

    fn dir(&self, id: usize) -> PathBuf {
        self.staging.join(format!("p{id}"))
    }

    /// Hands partition `id`'s buffered rows to its writer thread.
    fn send(&mut self, id: usize, last: bool) {
        let path = self.dir(id).join(DATA_FILE);
        let part = &mut self.partitions[id];
        let job = Job {
            id,
            path,
            batches: std::mem::take(&mut part.batches),
            last,
        };
        part.buffered = 0;
        part.open = true;
        let worker = &self.senders[id % self.senders.len()];
        // A closed channel means the writer stopped on an error, which its join reports.
        let _ = worker.send(job);
    }

    /// Writes every partition's remaining rows and describes the staged result.
    fn finish(&mut self) -> Vec<Staged> {
        for id in 0..self.partitions.len() {
            self.send(id, true);
        }
        (0..self.partitions.len())
            .map(|id| {
                let dir = self.dir(id);
                let part = &self.partitions[id];
                Staged {
                    key: part.value.clone(),
                    files: vec![dir.join(DATA_FILE)],
                    dir,
                    rows: part.rows,
                    value: part.value.clone(),
                }
            })
            .collect()
    }
}

/// A writer thread. A partition's writer encodes into memory as its rows arrive, and its file
/// is created and written in one go when the partition is complete, so no file stays open.
fn write_jobs(
    op: &'static str,
    jobs: Receiver<Job>,
    schema: SchemaRef,
    props: WriterProperties,
) -> Result<()> {
    let mut live: HashMap<usize, ArrowWriter<Vec<u8>>> = HashMap::new();
    for job in jobs {
        let mut writer = match live.remove(&job.id) {
            Some(writer) => writer,
            None => {
                // DuckDB (and other engines) read the Parquet types; the embedded Arrow IPC schema
                // would only add encoding work to every file.
                let options = ArrowWriterOptions::new()
                    .with_properties(props.clone())
                    .with_skip_arrow_metadata(true);
                ArrowWriter::try_new_with_options(Vec::new(), schema.clone(), options)
                    .map_err(|e| parquet(op, e, &job.path))?
            }
        };
        let rows: usize = job.batches.iter().map(RecordBatch::num_rows).sum();
        if job.batches.len() > 1 && rows < job.batches.len() * SMALL_SLICE_ROWS {
            // Each scanned chunk gave this partition a run of rows; with thousands of values the
            // runs are tens of rows, and every `write` costs a pass over each column's encoder.
            let whole = concat_batches(&schema, &job.batches).map_err(|e| arrow(op, e))?;
            writer.write(&whole).map_err(|e| parquet(op, e, &job.path))?;
        } else {
            for batch in &job.batches {
                writer.write(batch).map_err(|e| parquet(op, e, &job.path))?;
            }
        }
        if job.last {
            let bytes = writer.into_inner().map_err(|e| parquet(op, e, &job.path))?;
            if let Some(dir) = job.path.parent() {
                // The staging directory exists; each partition's directory is new.
                std::fs::create_dir(dir).map_err(|e| io(op, e, dir))?;
            }
            std::fs::write(&job.path, bytes).map_err(|e| io(op, e, &job.path))?;
        } else {
            live.insert(job.id, writer);
        }
    }
    Ok(())
}

fn io(op: &'static str, source: std::io::Error, path: &Path) -> Error {
    Error::Io {
        op,
        path: Some(path.to_path_buf()),
        source,
    }
}

fn parquet(op: &'static str, e: parquet::errors::ParquetError, path: &Path) -> Error {
    io(op, std::io::Error::other(format!("writing Parquet: {e}")), path)
}

fn arrow(op: &'static str, e: duckdb::arrow::error::ArrowError) -> Error {
    Error::invalid(op, "table", format!("could not regroup the scanned rows: {e}"))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use duckdb::arrow::array::{ArrayRef, BinaryArray, Int64Array, StringArray};

    use super::*;

    #[test]
    fn the_sample_takes_whole_values_within_its_byte_budget() {
        let mib = "x".repeat(1 << 20);
        let big = StringArray::from(vec![mib.as_str(); 10]);
        assert_eq!(sample_rows(&big), 4, "4 MiB of 1 MiB values");
        // A slice starts at its own first offset.
        assert_eq!(sample_rows(&big.slice(7, 3)), 3);
        let one_too_big = BinaryArray::from(vec![vec![0u8; (4 << 20) + 1].as_slice(), b"a"]);
        assert_eq!(
            sample_rows(&one_too_big),
            0,
            "a first value over the budget: no sample"
        );
        assert_eq!(sample_rows(&StringArray::from(Vec::<&str>::new())), 0);
        let small: Vec<String> = (0..5000).map(|i| format!("v{i}")).collect();
        assert_eq!(sample_rows(&StringArray::from(small)), DICTIONARY_SAMPLE_ROWS);
        assert_eq!(
            sample_rows(&Int64Array::from_iter_values(0..5000)),
            DICTIONARY_SAMPLE_ROWS
        );
    }

    #[test]
    fn wide_distinct_values_are_judged_on_the_rows_that_fit_the_budget() {
        let pad = "x".repeat(200_000);
        let wide: Vec<String> = (0..100).map(|i| format!("{i}{pad}")).collect();
        let repeated: Vec<String> = (0..100).map(|i| format!("{}{pad}", i % 2)).collect();
        let batch = RecordBatch::try_from_iter([
            ("wide", Arc::new(StringArray::from(wide)) as ArrayRef),
            ("repeated", Arc::new(StringArray::from(repeated)) as ArrayRef),
        ])
        .unwrap();
        assert_eq!(sample_rows(batch.column(0).as_ref()), 20);
        assert_eq!(mostly_distinct(&batch), [true, false]);
    }
}
