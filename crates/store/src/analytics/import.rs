//! Parquet/CSV/JSON import.
//!
//! Imports stream through DuckDB's readers inside one transaction: a missing table is created
//! from the file (`CREATE TABLE … AS SELECT`), an existing one is appended to by column name
//! (`INSERT INTO … BY NAME`), and any failure — a malformed line, a type mismatch — rolls the
//! whole import back, leaving the table as it was (or absent).

use std::path::Path;

use duckdb::Connection;

use super::paths::{LiteralPath, held_database, require_readable_file};
use super::progress::{JobProgress, ProgressFn, with_progress};
use super::{Analytics, csvfile, find_table, jsonfile, main_table_sql, sql, typetext};
use super::{decompress, target_types};
use crate::error::{Error, Result};

/// Options of a CSV import.
///
/// Imports read RFC 4180 CSV: fields separated by `delimiter` (`,` unless set), quoted with
/// `"` (a quote inside a quoted field doubled). An empty field is NULL, a quoted empty field
/// (`""`) the empty string, as `store sql --csv` writes them (so `""` in a numeric column is a
/// parse error, not NULL). A row with more or fewer fields than the header,
/// or a quote that never closes, fails the import and changes nothing. DuckDB's dialect sniffer
/// is deliberately not asked to guess the delimiter: on a malformed file it "succeeds" with
/// another dialect (e.g. the whole line as one column) instead of reporting the error.
///
/// # Examples
/// ```
/// let options = store::analytics::CsvOptions { header: false, delimiter: Some(';') };
/// assert!(store::analytics::CsvOptions::default().header);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CsvOptions {
    /// The first line names the columns (default true).
    pub header: bool,
    /// Field separator; `None` = `,` (`\t` for the `tsv` format).
    pub delimiter: Option<char>,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            header: true,
            delimiter: None,
        }
    }
}

/// The file formats [`Analytics::import`] understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Parquet,
    Csv(CsvOptions),
    /// A JSON array of objects, or newline-delimited objects (detected).
    Json,
    /// Newline-delimited JSON objects.
    Jsonl,
}

impl Analytics {
    /// Imports a Parquet file into `table` (created if missing, else appended by column name);
    /// returns the rows inserted. All or nothing.
    ///
    /// # Examples
    /// ```
    /// use store::analytics::Analytics;
    /// let dir = tempfile::tempdir()?;
    /// let db = Analytics::in_memory()?;
    /// db.exec_batch("CREATE TABLE t AS SELECT * FROM range(4)")?;
    /// db.export_parquet("t", dir.path().join("t.parquet"))?;
    /// assert_eq!(db.import_parquet("copy", dir.path().join("t.parquet"))?, 4);
    /// assert_eq!(db.import_parquet("copy", dir.path().join("t.parquet"))?, 4); // appends
    /// assert_eq!(db.table_counts()?["copy"], 8);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn import_parquet(&self, table: &str, path: impl AsRef<Path>) -> Result<u64> {
        self.import(
            "Analytics::import_parquet",
            table,
            path.as_ref(),
            Format::Parquet,
            None,
        )
    }

    /// Imports newline-delimited JSON objects (JSONL) into `table`; all or nothing.
    ///
    /// # Examples
    /// ```
    /// use store::analytics::Analytics;
    /// let dir = tempfile::tempdir()?;
    /// let file = dir.path().join("people.jsonl");
    /// std::fs::write(&file, "{\"name\":\"a\",\"age\":1}\n{\"name\":\"b\",\"age\":2}\n")?;
    /// let db = Analytics::in_memory()?;
    /// assert_eq!(db.import_jsonl("people", &file)?, 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn import_jsonl(&self, table: &str, path: impl AsRef<Path>) -> Result<u64> {
        self.import(
            "Analytics::import_jsonl",
            table,
            path.as_ref(),
            Format::Jsonl,
            None,
        )
    }

    /// Imports a JSON file (an array of objects, or newline-delimited objects) into `table`.
    ///
    /// # Examples
    /// ```
    /// use store::analytics::Analytics;
    /// let dir = tempfile::tempdir()?;
    /// let file = dir.path().join("people.json");
    /// std::fs::write(&file, r#"[{"name":"a"},{"name":"b"}]"#)?;
    /// let db = Analytics::in_memory()?;
    /// assert_eq!(db.import_json("people", &file)?, 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn import_json(&self, table: &str, path: impl AsRef<Path>) -> Result<u64> {
        self.import("Analytics::import_json", table, path.as_ref(), Format::Json, None)
    }

    /// Imports a CSV file into `table`; all or nothing.
    ///
    /// # Errors
    /// `Parse` for a malformed file (the table is unchanged); `Missing { kind: "file" }` when
    /// nothing is at the path; `Io` when it cannot be read (permission denied).
    ///
    /// # Examples
    /// ```
    /// use store::analytics::{Analytics, CsvOptions};
    /// let dir = tempfile::tempdir()?;
    /// let file = dir.path().join("scores.csv");
    /// std::fs::write(&file, "name;score\na;1\nb;2\n")?;
    /// let db = Analytics::in_memory()?;
    /// let rows = db.import_csv("scores", &file, &CsvOptions { header: true, delimiter: Some(';') })?;
    /// assert_eq!(rows, 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn import_csv(&self, table: &str, path: impl AsRef<Path>, options: &CsvOptions) -> Result<u64> {
        self.import(
            "Analytics::import_csv",
            table,
            path.as_ref(),
            Format::Csv(*options),
            None,
        )
    }

    /// Imports a file whose format follows its extension (`.parquet`, `.csv`, `.tsv`, `.json`,
    /// `.jsonl`/`.ndjson`), reporting progress to `progress` while DuckDB works. `csv`
    /// settings other than the defaults are `InvalidInput` for a file that is not CSV or TSV
    /// (they would be ignored).
    ///
    /// # Examples
    /// ```
    /// use store::analytics::Analytics;
    /// let dir = tempfile::tempdir()?;
    /// let file = dir.path().join("t.csv");
    /// std::fs::write(&file, "x\n1\n2\n")?;
    /// let db = Analytics::in_memory()?;
    /// assert_eq!(db.import_file("t", &file, None, Some(&|p| println!("{p:?}")))?, 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn import_file(
        &self,
        table: &str,
        path: impl AsRef<Path>,
        csv: Option<&CsvOptions>,
        progress: Option<ProgressFn<'_>>,
    ) -> Result<u64> {
        const OP: &str = "Analytics::import_file";
        let path = path.as_ref();
        // Before the extension is read: a NUL anywhere (`t.csv\0x`) is the path's fault, not a
        // format to guess or a file to look up.
        sql::require_path(OP, "path", path)?;
        let ext_of = |p: &Path| {
            p.extension()
                .and_then(|e| e.to_str())
                .map(str::to_ascii_lowercase)
                .unwrap_or_default()
        };
        let mut ext = ext_of(path);
        // DuckDB reads `.gz` and `.zst` text files decompressed: the format is the inner one.
        if matches!(ext.as_str(), "gz" | "zst")
            && let Some(stem) = path.file_stem()
            && let inner @ ("csv" | "txt" | "tsv" | "json" | "jsonl" | "ndjson") =
                ext_of(Path::new(stem)).as_str()
        {
            ext = inner.to_string();
        }
        let format = match ext.as_str() {
            "parquet" | "pq" => "parquet",
            "csv" | "txt" => "csv",
            "tsv" => "tsv",
            "json" => "json",
            "jsonl" | "ndjson" => "jsonl",
            other => {
                // A directory or a missing file is that first, whatever its name.
                require_readable_file(OP, path)?;
                return Err(Error::invalid(
                    OP,
                    "format",
                    format!(
                        "cannot tell the format of {}; use .parquet (.pq), .csv (.txt), .tsv, \
                         .json or .jsonl (.ndjson), or .csv.gz and the like, or name the format \
                         (Analytics::import_as, store import --format)",
                        if other.is_empty() {
                            "a file without an extension".to_string()
                        } else {
                            format!("a .{other} file")
                        }
                    ),
                ));
            }
        };
        self.import_named(OP, table, path, format, csv, progress)
    }

    /// Imports a file in the named format, whatever its extension: `parquet`, `csv`, `tsv` (CSV
    /// with a tab delimiter unless `csv` sets one), `json` or `jsonl`/`ndjson`; reports
    /// progress to `progress` while DuckDB works. As with [`Analytics::import_file`], `csv`
    /// settings need a CSV or TSV format. The format's name may be in any case (`CSV`).
    ///
    /// # Examples
    /// ```
    /// use store::analytics::Analytics;
    /// let dir = tempfile::tempdir()?;
    /// let file = dir.path().join("export.data");
    /// std::fs::write(&file, "{\"x\": 1}\n{\"x\": 2}\n")?;
    /// let db = Analytics::in_memory()?;
    /// assert_eq!(db.import_as("t", &file, "jsonl", None, None)?, 2);
    /// assert!(db.import_as("t", &file, "xml", None, None).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn import_as(
        &self,
        table: &str,
        path: impl AsRef<Path>,
        format: &str,
        csv: Option<&CsvOptions>,
        progress: Option<ProgressFn<'_>>,
    ) -> Result<u64> {
        self.import_named(
            "Analytics::import_as",
            table,
            path.as_ref(),
            format,
            csv,
            progress,
        )
    }

    fn import_named(
        &self,
        op: &'static str,
        table: &str,
        path: &Path,
        format: &str,
        csv: Option<&CsvOptions>,
        progress: Option<ProgressFn<'_>>,
    ) -> Result<u64> {
        // Named in any case and with stray blanks (`CSV`, ` jsonl`), as the extensions are.
        let lowered = format.trim().to_ascii_lowercase();
        let name = lowered.as_str();
        let format = match name {
            "parquet" => Format::Parquet,
            "csv" | "tsv" => {
                let mut options = csv.copied().unwrap_or_default();
                if name == "tsv" && options.delimiter.is_none() {
                    options.delimiter = Some('\t');
                }
                Format::Csv(options)
            }
            "json" => Format::Json,
            "jsonl" | "ndjson" => Format::Jsonl,
            _ => {
                return Err(Error::invalid(
                    op,
                    "format",
                    format!(
                        "{:?} is not one of parquet, csv, tsv, json, jsonl (ndjson)",
                        format.chars().take(100).collect::<String>()
                    ),
                ));
            }
        };
        let csv_settings = csv.is_some_and(|o| *o != CsvOptions::default());
        if csv_settings && !matches!(format, Format::Csv(_)) {
            return Err(Error::invalid(
                op,
                "csv",
                format!(
                    "a header or delimiter setting applies to CSV and TSV files only, and {} \
                     is read as {name}; drop the setting or name the format",
                    path.display()
                ),
            ));
        }
        self.import(op, table, path, format, progress)
    }

    fn import(
        &self,
        op: &'static str,
        table: &str,
        path: &Path,
        format: Format,
        progress: Option<ProgressFn<'_>>,
    ) -> Result<u64> {
        // One job across both runs an import may make (see `again` below).
        let job = JobProgress::new(progress);
        sql::require_path(op, "path", path)?;
        sql::ident(op, "table", table)?;
        if let Some(what) = held_database(path) {
            // Reading it would open and close the file, which drops this process's locks on
            // the database (see `paths::held_open_here`).
            return Err(Error::invalid(
                op,
                "path",
                format!(
                    "{} is {what}; import reads data files (CSV, JSON, Parquet): query the \
                     database's tables instead",
                    path.display()
                ),
            ));
        }
        require_readable_file(op, path)?;
        if format != Format::Parquet {
            check_compression(op, path)?;
        }
        // For a CSV: how it starts, with lines of whitespace counted as blank (a file of
        // nothing else is empty, header or not), and the blank lines to skip before the first
        // line with content.
        let (csv_empty, csv_start) = match format {
            Format::Csv(o) => {
                let io = |source| Error::Io {
                    op,
                    path: Some(path.to_path_buf()),
                    source,
                };
                const WHITESPACE: &[u8] = b" \t\x0c";
                let loose = csvfile::start(path, WHITESPACE).map_err(io)?;
                // Under a header, whitespace other than the delimiter is blank; a delimiter in
                // the line makes it a row of empty fields. Without a header, a line of spaces
                // may be a value of a one-column file: only empty lines are skipped.
                let spaces: Vec<u8> = if o.header {
                    let delimiter = o.delimiter.unwrap_or(',');
                    WHITESPACE
                        .iter()
                        .copied()
                        .filter(|&b| char::from(b) != delimiter)
                        .collect()
                } else {
                    Vec::new()
                };
                // The common case (a header, a comma) reads the file's start only once.
                let start = if spaces == WHITESPACE {
                    loose
                } else {
                    csvfile::start(path, &spaces).map_err(io)?
                };
                if start == csvfile::Start::Blank(0) && csvfile::starts_with_json(path).map_err(io)? {
                    return Err(parse_error(
                        op,
                        path,
                        Some(1),
                        "the file holds JSON, not CSV (its first line is a JSON object or array); \
                         import it as JSON Lines or JSON (format jsonl or json, `--format jsonl`)",
                    ));
                }
                (loose == csvfile::Start::OnlyBlank, Some(start))
            }
            _ => (false, None),
        };
        // DuckDB's JSON reader calls a file without records "non-record JSON", and its CSV
        // reader makes an empty file one column named `column0`; such a file is just empty.
        let empty = match format {
            Format::Json | Format::Jsonl => jsonfile::holds_no_records(path).then_some("no JSON records"),
            Format::Csv(_) => csv_empty.then_some("no header and no rows"),
            Format::Parquet => None,
        };
        if let Some(what) = empty {
            let found = self.with_conn(op, |conn| find_table(op, conn, table))?;
            if found.as_ref().is_some_and(|t| t.is_view) {
                // As for a file with rows: a view cannot take rows, even none.
                return Err(view_takes_no_rows(op, table));
            }
            if found.is_none() {
                return Err(Error::Parse {
                    op,
                    source_name: path.display().to_string(),
                    line: None,
                    reason: format!(
                        "the file holds {what}, so there are no columns to create table \
                         {table:?} from; create the table first to import an empty file"
                    ),
                });
            }
            job.done(0);
            return Ok(0);
        }
        if matches!(format, Format::Json | Format::Jsonl) && jsonfile::starts_with_bom(path) {
            return Err(parse_error(
                op,
                path,
                Some(1),
                "the file starts with a UTF-8 byte order mark, which DuckDB's JSON reader does \
                 not accept; save the file without one (UTF-8 without BOM)",
            ));
        }
        if format == Format::Json {
            // DuckDB would import the records before a defect at the end of the file.
            let defect = jsonfile::json_defect(path).map_err(|source| Error::Io {
                op,
                path: Some(path.to_path_buf()),
                source,
            })?;
            if let Some(defect) = defect {
                return Err(parse_error(op, path, Some(defect.line), &defect.reason));
            }
        }
        let literal = LiteralPath::new(op, path)?;
        let file = sql::path_literal(op, literal.path())?;
        // `hive_partitioning = false`: DuckDB would otherwise add a column for every `key=value`
        // directory in the file's path (`…/year=2024/t.csv` gains `year`); an import loads the
        // file's contents only.
        // `types`: the CSV reader's `types` or the JSON reader's `columns` (see `target_types`).
        // `csv_names`: `, names = [...]` when the header's own names must replace DuckDB's
        // (see `header_names` below), else empty.
        let csv_names = std::cell::RefCell::new(String::new());
        let reader = |reading: Reading, types: Option<&str>| -> Result<String> {
            let columns = types.map(|t| format!(", columns = {t}")).unwrap_or_default();
            // `sample_size = -1` makes DuckDB infer the column types from every record rather
            // than the first 20,480, at the cost of reading the file twice (about 5 times
            // slower for JSONL), so it is used only when the sample left a column without a
            // type (see `target_types::sample_lost_a_type`) or a later value did not fit it (see `Reading`).
            let sample = if reading.every_record {
                "sample_size = -1, "
            } else {
                ""
            };
            // DuckDB's default (2 MB) unless a line was longer: a larger limit changes its
            // buffering, and with it the progress estimates of every import.
            let max_line = if reading.long_lines {
                format!(", max_line_size = {}", csvfile::MAX_LINE_BYTES)
            } else {
                String::new()
            };
            Ok(match format {
                Format::Parquet => format!("read_parquet({file}, hive_partitioning = false)"),
                // Rows are objects: without `records = true` DuckDB would turn a JSONL file
                // holding an array, or an array of scalars, into one opaque `json` column.
                // `map_inference_threshold = -1`: records whose keys all differ stay records
                // (columns) instead of being guessed to be one MAP and then refused.
                Format::Json => format!(
                    "read_json({file}, records = true, {sample}map_inference_threshold = -1, \
                     hive_partitioning = false{columns})"
                ),
                Format::Jsonl => format!(
                    "read_json({file}, format = 'newline_delimited', records = true, {sample}\
                     map_inference_threshold = -1, hive_partitioning = false{columns})"
                ),
                Format::Csv(o) => {
                    let delimiter = o.delimiter.unwrap_or(',');
                    if delimiter == '"' {
                        return Err(Error::invalid(
                            op,
                            "delimiter",
                            "'\"' is the quote character; pick another",
                        ));
                    }
                    // A line break ends records: as the delimiter it silently gave one column
                    // per line.
                    if delimiter == '\n' || delimiter == '\r' {
                        return Err(Error::invalid(
                            op,
                            "delimiter",
                            "a line break separates records, not fields; pick another delimiter",
                        ));
                    }
                    // `allow_quoted_nulls = false`: `""` is the empty string, as in RFC 4180 and
                    // as `store sql --csv` writes it; only an empty unquoted field is NULL.
                    // `skip`: the file starts at its first line that is not blank. Left to
                    // guess, DuckDB's sniffer skips the rows before a ragged one and takes that
                    // one for the header (`a,b\n1,2\n3,4,5` imported 0 rows into columns `3`,
                    // `4`, `5`); pinned, a ragged row is an error. `comment = ''`: CSV has no
                    // comments; left to guess, one line starting with `#` made DuckDB drop every
                    // such row and cut every field at its `#`.
                    let skip = match csv_start {
                        Some(csvfile::Start::Blank(lines)) => lines,
                        _ => 0,
                    };
                    let types = types.map(|t| format!(", types = {t}")).unwrap_or_default();
                    format!(
                        "read_csv({file}, header = {}, delim = {}, quote = '\"', escape = '\"', \
                         allow_quoted_nulls = false, skip = {skip}, comment = '', \
                         hive_partitioning = false{max_line}{types}{names})",
                        o.header,
                        sql::literal(op, "delimiter", &delimiter.to_string())?,
                        names = csv_names.borrow(),
                    )
                }
            })
        };
        // The file's records as JSON, for checks DuckDB's typed reader cannot make.
        let objects = match format {
            Format::Json => Some(format!("read_json_objects({file}, hive_partitioning = false)")),
            Format::Jsonl => Some(format!(
                "read_json_objects({file}, format = 'newline_delimited', hive_partitioning = false)"
            )),
            _ => None,
        };
        let first = Reading::default();
        // Refuses bad CSV options (a quote or line break as the delimiter) before any work.
        reader(first, None)?;
        if let (Format::Csv(o), Some(csvfile::Start::Blank(skip))) = (format, csv_start)
            && o.header
        {
            let fields =
                csvfile::header_fields(path, o.delimiter.unwrap_or(','), skip).map_err(|source| {
                    Error::Io {
                        op,
                        path: Some(path.to_path_buf()),
                        source,
                    }
                })?;
            if let Some(fields) = fields.filter(|f| f.iter().any(|name| name.trim() != name)) {
                // Described as the import will read it; a file DuckDB cannot describe either
                // way fails the same in the import below, which reports it.
                let relations = [
                    reader(first, None)?,
                    reader(
                        Reading {
                            long_lines: true,
                            ..first
                        },
                        None,
                    )?,
                ];
                let names = self.with_conn(op, |conn| {
                    let Some(target) = find_table(op, conn, table)?.filter(|t| !t.is_view) else {
                        return Ok(None);
                    };
                    let detected = relations
                        .iter()
                        .find_map(|relation| target_types::columns(conn, relation).ok());
                    let table_columns = target_types::columns(conn, &target.sql).ok();
                    match (detected, table_columns) {
                        (Some(detected), Some(table_columns)) => {
                            header_names(op, &fields, &detected, &table_columns)
                        }
                        _ => Ok(None),
                    }
                })?;
                if let Some(names) = names {
                    *csv_names.borrow_mut() = names;
                }
            }
        }
        // A CSV file without a header has only DuckDB's names (`column0`, …): its columns go
        // into an existing table by position instead of by name.
        let by_position = matches!(format, Format::Csv(o) if !o.header);
        let json = matches!(format, Format::Json | Format::Jsonl);
        // An import DuckDB's defaults fail runs once more, read another way: set when the
        // first run fails for one of those reasons (see `Reading`).
        let again: std::cell::Cell<Option<Reading>> = std::cell::Cell::new(None);
        // Marks the failure `e` of a run read as `reading` for one more run read another way.
        let rerun_after = |e: &duckdb::Error, reading: Reading| {
            // Its message quotes the panic, which may say anything.
            if job.panicked() {
                return;
            }
            let message = e.to_string().to_ascii_lowercase();
            if json && !reading.every_record && message.contains("failed to cast") {
                again.set(Some(Reading {
                    every_record: true,
                    ..reading
                }));
            }
            if !json && !reading.long_lines && message.contains("maximum line size of") {
                again.set(Some(Reading {
                    long_lines: true,
                    ..reading
                }));
            }
        };
        let attempt = |reading: Reading| {
            self.in_transaction(op, |conn| {
                let found = find_table(op, conn, table)?;
                if found.as_ref().is_some_and(|t| t.is_view) {
                    return Err(view_takes_no_rows(op, table));
                }
                let exists = found.is_some();
                // Qualified: a bare name could resolve elsewhere (see `find_table`).
                let quoted = match found {
                    Some(t) => t.sql,
                    None => main_table_sql(op, conn, table)?,
                };
                let failed = |e| import_error(op, path, format, !exists, e);
                let csv_append = exists && matches!(format, Format::Csv(_));
                // The file's columns as read with `reading`, and the table's (see
                // `target_types`): each described once per run.
                let describe = |reading: Reading| -> Result<target_types::Columns> {
                    target_types::columns(conn, &reader(reading, None)?).map_err(|e| {
                        rerun_after(&e, reading);
                        failed(e)
                    })
                };
                let target = if exists && (json || csv_append) {
                    target_types::columns(conn, &quoted).map_err(failed)?
                } else {
                    Vec::new()
                };
                let mut reading = reading;
                let mut file = if json || csv_append {
                    describe(reading)?
                } else {
                    Vec::new()
                };
                if json && !reading.every_record && target_types::sample_lost_a_type(&file) {
                    reading.every_record = true;
                    file = describe(reading)?;
                }
                let mut as_text = match objects.as_deref() {
                    Some(objects) => {
                        target_types::keys_misread_as_dates(conn, &file, objects).map_err(failed)?
                    }
                    None => Vec::new(),
                };
                if json && exists {
                    for key in target_types::keys_into_text_columns(&file, &target) {
                        if !as_text.contains(&key) {
                            as_text.push(key);
                        }
                    }
                }
                // Reading keys as text, or as the table's types, takes a list of every key.
                let as_table = if json && exists {
                    let mut keys = target_types::keys_into_exact_numbers(&file, &target);
                    keys.extend(target_types::keys_into_json_columns(&file, &target));
                    keys
                } else {
                    Vec::new()
                };
                // Only these keys take their table types when no other reason read every
                // record: the others keep DuckDB's guesses and are cast on insert as before (read
                // straight into TIMESTAMP, a string's UTC offset was dropped).
                let only_as_table = !as_table.is_empty() && !reading.every_record && as_text.is_empty();
                if (!as_text.is_empty() || !as_table.is_empty()) && !reading.every_record {
                    reading.every_record = true;
                    file = describe(reading)?;
                }
                let reading = reading;
                // Read with the table's types where they are known, not DuckDB's guesses (see
                // `target_types`).
                let reader = if reading.every_record {
                    let columns = if !as_text.is_empty() {
                        target_types::json_columns_with_text(&file, &target, &as_text, &as_table)
                    } else if only_as_table {
                        target_types::json_columns_as_table(&file, &target, &as_table)
                    } else if exists {
                        // Every key with its table type if all are plain; else at least the
                        // keys whose guesses would alter their values.
                        target_types::json_columns(&file, &target).or_else(|| {
                            (!as_table.is_empty())
                                .then(|| target_types::json_columns_as_table(&file, &target, &as_table))
                                .flatten()
                        })
                    } else {
                        None
                    };
                    match columns {
                        Some(columns) => reader(reading, Some(&columns))?,
                        None if !as_text.is_empty() => {
                            return Err(parse_error(
                                op,
                                path,
                                None,
                                "the file has keys that differ only in case and dates spelt \
                                 infinity, -infinity or epoch, which DuckDB's JSON reader would \
                                 store as 1900-01-01; give the keys distinct names",
                            ));
                        }
                        None => reader(reading, None)?,
                    }
                } else {
                    let types = if csv_append {
                        target_types::csv_types(&file, &target, by_position)
                    } else {
                        None
                    };
                    reader(reading, types.as_deref())?
                };
                let statement = if exists {
                    if by_position {
                        format!("INSERT INTO {quoted} SELECT * FROM {reader}")
                    } else {
                        format!("INSERT INTO {quoted} BY NAME SELECT * FROM {reader}")
                    }
                } else {
                    format!("CREATE TABLE {quoted} AS SELECT * FROM {reader}")
                };
                let rows = with_progress(conn, &job, || conn.execute(&statement, [])).map_err(|e| {
                    rerun_after(&e, reading);
                    failed(e)
                })?;
                if !exists {
                    // A JSON key null in every record, or a Parquet column of Arrow's `null` type
                    // (what Polars and pyarrow write for a column of Nones), gets DuckDB's NULL
                    // type, which no later value could ever be cast to: such a column becomes
                    // VARCHAR.
                    untype_null_columns(op, conn, table, &quoted)?;
                }
                Ok(rows as u64)
            })
        };
        match attempt(first) {
            Err(first_error) => match again.take() {
                Some(reading) => attempt(reading),
                None => Err(first_error),
            },
            first => first,
        }
        .inspect(|rows| job.done(*rows))
    }
}

/// How an import's reader reads the file. The first run takes DuckDB's defaults; one that
/// fails for a reason below runs again with it changed.
#[derive(Debug, Clone, Copy, Default)]
struct Reading {
    /// JSON: type the keys from every record, not the first 20,480. A value of another type
    /// after the sample fails the import with "Failed to cast", even into a VARCHAR column;
    /// typing from every record reads the whole file once more, about 5 times slower for JSONL.
    every_record: bool,
    /// CSV: read lines up to [`csvfile::MAX_LINE_BYTES`], not DuckDB's default 2 MB.
    long_lines: bool,
}

fn view_takes_no_rows(op: &'static str, table: &str) -> Error {
    Error::invalid(
        op,
        "table",
        format!("{table:?} is a view, which cannot take rows; import into a table"),
    )
}

/// A query over `relation` (what may follow `FROM`) with its fixed-size array columns cast to
/// lists, for a Parquet writer (see [`typetext`]); `None` when it has none, or when its columns
/// cannot be read (the export then reports that error itself). A column whose name holds a NUL
/// cannot be named through duckdb-rs and keeps its type.
pub(super) fn lists_for_arrays(conn: &Connection, relation: &str) -> Option<String> {
    let columns: Vec<(String, String)> = conn
        .prepare(&format!(
            "SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM {relation})"
        ))
        .and_then(|mut stmt| stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
        .ok()?;
    let casts: Vec<String> = columns
        .iter()
        .filter(|(name, _)| !name.contains('\0'))
        .filter_map(|(name, column_type)| {
            let list = typetext::with_lists_for_arrays(column_type)?;
            let name = sql::quote_reported(name);
            Some(format!("CAST({name} AS {list}) AS {name}"))
        })
        .collect();
    (!casts.is_empty()).then(|| format!("SELECT * REPLACE ({}) FROM {relation}", casts.join(", ")))
}

/// Gives the columns of the new `table` whose type holds DuckDB's `NULL` type (all their values
/// are NULL: `"NULL"`, `"NULL"[]`, `STRUCT(x "NULL")`) `VARCHAR` in its place (see
/// [`typetext`]), so later imports can fill them.
fn untype_null_columns(op: &'static str, conn: &Connection, table: &str, quoted: &str) -> Result<()> {
    let fail = |e| Error::duckdb(op, format!("retype the all-null columns of {table:?}"), e);
    let columns: Vec<(String, String)> = conn
        .prepare(
            "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = ? \
             AND database_name = current_database() AND schema_name = 'main' \
             AND contains(data_type, '\"NULL\"') AND NOT internal",
        )
        .and_then(|mut stmt| stmt.query_map([table], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
        .map_err(fail)?;
    for (column, data_type) in columns {
        // A NUL in a name cannot pass through duckdb-rs's C strings: such a column keeps its type.
        if column.contains('\0') || data_type.contains('\0') {
            continue;
        }
        if let Some(retyped) = typetext::without_null_type(&data_type) {
            let column_sql = sql::quote_reported(&column);
            conn.execute_batch(&format!("ALTER TABLE {quoted} ALTER {column_sql} TYPE {retyped}"))
                .map_err(fail)?;
        }
    }
    Ok(())
}

/// `, names = [...]` for a CSV header appended into an existing table whose columns it names
/// with blanks around them. DuckDB's reader trims header names (` lead` becomes `lead`, and a
/// second `a` after ` a` becomes `a_1`), so a table with such a column could not take its own
/// CSV back (`store sql --csv`). Each header field as written that is a column of the table
/// (ignoring case, as `INSERT … BY NAME` does) and is not DuckDB's name replaces DuckDB's;
/// every other column keeps DuckDB's name, so `id, name` still appends into `(id, name)`.
/// `None` when nothing changes, when the names would clash, or when one holds a NUL (DuckDB
/// alone reads such a header).
fn header_names(
    op: &'static str,
    fields: &[String],
    detected: &[(String, String)],
    table_columns: &[(String, String)],
) -> Result<Option<String>> {
    if detected.iter().any(|(name, _)| name.contains('\0')) {
        return Ok(None);
    }
    let in_table = |name: &str| table_columns.iter().any(|(c, _)| c.eq_ignore_ascii_case(name));
    let mut used = std::collections::HashSet::new();
    let mut names = Vec::with_capacity(detected.len());
    let mut changed = false;
    for (i, (duck, _)) in detected.iter().enumerate() {
        let written = fields
            .get(i)
            .filter(|f| f.as_str() != duck && !f.trim().is_empty() && in_table(f))
            .filter(|f| !used.contains(&f.to_ascii_lowercase()));
        let name = written.unwrap_or(duck);
        changed |= written.is_some();
        if !used.insert(name.to_ascii_lowercase()) {
            return Ok(None);
        }
        names.push(sql::literal(op, "header", name)?);
    }
    Ok(changed.then(|| format!(", names = [{}]", names.join(", "))))
}

/// A malformed input is a `Parse` error naming the file (and line, when known); anything else
/// stays a `DuckDb` error.
/// The error of a failed import; `guessed_types`: the file's column types were DuckDB's guess
/// (a new table), so a conversion error gets a hint to create the table first.
fn import_error(
    op: &'static str,
    path: &Path,
    format: Format,
    guessed_types: bool,
    e: duckdb::Error,
) -> Error {
    let message = e.to_string();
    let lower = message.to_ascii_lowercase();
    let malformed = [
        "csv error",
        "malformed json",
        "json error",
        "invalid input error",
        "could not convert",
        "conversion error",
        "non-record json",
    ]
    .iter()
    .any(|m| lower.contains(m));
    // DuckDB words a write to a read-only database as an "Invalid Input Error" too; that is
    // not the file's fault, nor is a progress callback's panic (whatever its message says).
    if !malformed || lower.contains("read-only mode") || message.contains(super::PROGRESS_PANICKED) {
        return Error::duckdb(op, format!("import {}", path.display()), e);
    }
    // Only a syntax error is looked for line by line (a conversion error has nothing to find).
    let syntax = lower.contains("malformed json") || lower.contains("non-record json");
    if format == Format::Jsonl && syntax {
        // DuckDB numbers JSONL lines one too high: find the line here.
        if let Ok(Some(defect)) = jsonfile::jsonl_defect(path) {
            return parse_error(op, path, Some(defect.line), &defect.reason);
        }
    }
    // DuckDB's error for an overlong line names another one, and suggests an option an import
    // does not take.
    if matches!(format, Format::Csv(_)) && lower.contains("maximum line size of") {
        let limit = csvfile::MAX_LINE_BYTES;
        let reason = |what: &str| {
            format!(
                "{what} is longer than {} MiB, the longest a CSV import reads; shorten it, or \
                 import the data as Parquet",
                limit >> 20
            )
        };
        return match csvfile::first_long_line(path, limit) {
            Ok(Some(line)) => parse_error(op, path, Some(line), &reason(&format!("line {line}"))),
            // A quoted field spanning lines: DuckDB's line number is not the record's.
            _ => parse_error(
                op,
                path,
                None,
                &reason("a record (a quoted field over several lines?)"),
            ),
        };
    }
    // Only DuckDB's CSV errors number lines reliably ("CSV Error on Line: 3"); later lines of
    // the message may quote the SQL ("LINE 1: …"), so only the first one is read.
    let first = first_line(&message);
    let line = match format {
        Format::Csv(_) => first.to_ascii_lowercase().split("line").nth(1).and_then(|rest| {
            let digits: String = rest
                .trim_start_matches([':', ' '])
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            digits.parse().ok()
        }),
        _ => None,
    };
    // A JSON record DuckDB could not convert is named by its number ("JSON transform error in
    // file …, in line 30001"): the line, in a JSON array file; in JSONL DuckDB counts records,
    // skipping blank lines, so the record is mapped to its line here.
    let record: Option<u64> = match (line, format) {
        (None, Format::Json | Format::Jsonl) if lower.contains("json transform error") => first
            .split("in line ")
            .nth(1)
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|digits| digits.parse().ok()),
        _ => None,
    };
    let line = match (record, format) {
        (Some(record), Format::Jsonl) => Some(
            jsonfile::line_of_record(path, record)
                .ok()
                .flatten()
                .unwrap_or(record),
        ),
        (Some(record), _) => Some(record),
        (None, _) => line,
    };
    // DuckDB's sniffer says only "Error when sniffing file" about a short file with a ragged
    // row: find the record here.
    if let (None, Format::Csv(o)) = (line, format)
        && lower.contains("error when sniffing")
        && let Ok(Some(defect)) = csvfile::csv_defect(path, o.delimiter.unwrap_or(','))
    {
        return parse_error(op, path, Some(defect.line), &defect.reason);
    }
    // DuckDB's own "in line N" is that record number: where the line differs, say record.
    let message = match (record, line) {
        (Some(record), Some(line)) if record != line => message.replacen("in line ", "in record ", 1),
        _ => message,
    };
    let mut reason = duckdb_reason(&message, guessed_types);
    if lower.contains("non-record json") {
        // What it means, as DuckDB says "non-record" also of a record with an empty key.
        reason.push_str(
            "; each record must be a JSON object (one per line in JSONL, or the elements of an \
             array), and none of its keys empty (\"\")",
        );
    }
    parse_error(op, path, line, &reason)
}

/// The informative lines of a DuckDB import error: its first line, and wherever they stand, the
/// lines saying which row could not be read and which value, column and type failed (each cut
/// to 200 bytes). The SQL echo and DuckDB's "possible fixes" (`read_csv` options an import does
/// not take) are left out. With `guessed_types`, a failed conversion gets a hint to create the
/// table first.
fn duckdb_reason(message: &str, guessed_types: bool) -> String {
    const MAX_LINE: usize = 200;
    const TELLING: [&str; 10] = [
        "original line:",
        "error when converting column",
        "could not convert",
        "expected number of columns",
        "failed to cast",
        "unimplemented type",
        "invalid unicode",
        "unterminated quote",
        "maximum line size",
        "invalid state",
    ];
    let mut lines = message.lines().map(str::trim).filter(|l| !l.is_empty());
    let mut parts: Vec<String> = lines.next().map(str::to_string).into_iter().collect();
    parts.extend(
        lines
            // DuckDB's "Possible fixes" bullets name `read_csv` options an import does not take.
            .filter(|line| !line.starts_with("* "))
            .filter(|line| {
                let line = line.to_ascii_lowercase();
                TELLING.iter().any(|t| line.contains(t))
            })
            .map(str::to_string),
    );
    parts.dedup();
    for part in &mut parts {
        if part.len() > MAX_LINE {
            let mut end = MAX_LINE;
            while !part.is_char_boundary(end) {
                end -= 1;
            }
            part.truncate(end);
            part.push('…');
        }
    }
    let mut reason = parts.join("; ");
    if guessed_types && message.contains("auto-detected") {
        reason.push_str(
            "; the column's type was guessed from the file's first rows: create the table first \
             with the types you want, then import into it",
        );
    }
    reason
}

/// Refuses a gzip or zstd text file that DuckDB and the store's checks would read differently
/// (its name and content disagree), or that is cut short (see [`decompress`]).
fn check_compression(op: &'static str, path: &Path) -> Result<()> {
    let io = |source| Error::Io {
        op,
        path: Some(path.to_path_buf()),
        source,
    };
    // These reasons end in their own fix, so not through `parse_error`.
    let refuse = |reason: String| Error::Parse {
        op,
        source_name: path.display().to_string(),
        line: None,
        reason: format!("{reason} (nothing was imported)"),
    };
    if let Some(mismatch) = decompress::Compression::mismatch(path).map_err(io)? {
        return Err(refuse(mismatch));
    }
    if let Some(defect) = decompress::zstd_defect(path).map_err(io)? {
        return Err(refuse(format!(
            "the zstd-compressed file cannot be read to its end ({defect}): it was cut short or \
             damaged, or needs what a plain zstd reader lacks (a dictionary, a --long window); \
             compress the data again with plain `zstd`"
        )));
    }
    Ok(())
}

fn parse_error(op: &'static str, path: &Path, line: Option<u64>, reason: &str) -> Error {
    Error::Parse {
        op,
        source_name: path.display().to_string(),
        line,
        reason: format!("{reason}; fix the file and import again (nothing was imported)"),
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text)
}
