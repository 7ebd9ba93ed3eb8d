//! Analytics commands: `sql`, `import`, `export`, `export-split`, `scoring ensure`, `inventory`.

use clap::{Args, Subcommand};
use serde_json::{Value, json};
use store::Service;

use crate::kv::text;
use crate::output::{Output, visible};

#[derive(Debug, Args)]
pub struct SqlArgs {
    /// The query.
    query: String,
    /// A positional parameter as JSON (repeat for each `?`).
    #[arg(long = "param", value_name = "JSON", value_parser = parse_json, allow_hyphen_values = true)]
    params: Vec<Value>,
    /// Print CSV instead of a table (`--json` wins if both are given).
    #[arg(long)]
    csv: bool,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Target table (created if missing, else appended to by column name).
    table: String,
    /// A .parquet (.pq), .csv (.txt), .tsv, .json or .jsonl (.ndjson) file; .gz or .zst text
    /// files are read decompressed. Any other name needs --format.
    file: String,
    /// Override the format the extension implies.
    #[arg(long, value_parser = ["csv", "tsv", "parquet", "json", "jsonl", "ndjson"])]
    format: Option<String>,
    /// The CSV has no header line.
    #[arg(long)]
    no_header: bool,
    /// CSV field delimiter (one character; for a tab use --format tsv).
    #[arg(long, value_name = "C", value_parser = one_character)]
    delimiter: Option<char>,
}

/// `--delimiter`: exactly one character. Typed as `'\t'` in a shell, a tab arrives as two
/// characters; the error says how to pass one.
fn one_character(text: &str) -> Result<char, String> {
    let mut chars = text.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => Ok(c),
        _ if text == "\\t" => Err(
            "'\\t' is two characters, not a tab: use --format tsv, or pass a real tab ($'\\t' in bash)"
                .into(),
        ),
        _ => Err(format!(
            "a delimiter is one character, got {} characters",
            text.chars().count()
        )),
    }
}

#[derive(Debug, Subcommand)]
pub enum ScoringCommand {
    /// Create the canonical scoring tables if missing.
    Ensure,
}

fn parse_json(text: &str) -> Result<Value, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    // serde_json reads an integer beyond i64/u64 as an f64, which keeps about 16 digits: such
    // an integer is bound as its text instead, which DuckDB casts exactly to HUGEINT or
    // DECIMAL, and refuses where a 64-bit integer is wanted. (Numbers with a fraction or an
    // exponent stay f64, which a text binding would not improve: DuckDB casts text to the
    // INTEGER an expression like `? * 2` asks for.)
    let literal = text.trim();
    let digits = literal.strip_prefix('-').unwrap_or(literal);
    if let Value::Number(n) = &value
        && n.as_i64().is_none()
        && n.as_u64().is_none()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && digits.bytes().any(|b| b != b'0')
    {
        return Ok(Value::String(literal.to_string()));
    }
    Ok(value)
}

/// Whether a statement may change the database: every statement but one that starts with a
/// keyword that only reads and calls no sequence function. A comment first, a `WITH` (which may
/// lead an `INSERT`) or an `EXPLAIN ANALYZE` of a change all count as changes, so a lost result
/// of a change always says so.
fn may_change(sql: &str) -> bool {
    const READS: [&str; 7] = [
        "SELECT",
        "FROM",
        "VALUES",
        "TABLE",
        "DESCRIBE",
        "SHOW",
        "SUMMARIZE",
    ];
    let first: String = sql
        .trim_start_matches(|c: char| c.is_whitespace() || c == '(')
        .chars()
        .take_while(char::is_ascii_alphabetic)
        .collect();
    // A read can still advance a sequence (h148: `SELECT nextval('s')`).
    let lowered = sql.to_ascii_lowercase();
    !READS.iter().any(|read| read.eq_ignore_ascii_case(&first))
        || lowered.contains("nextval")
        || lowered.contains("setval")
}

pub fn sql(service: &Service, args: SqlArgs, out: &Output) -> store::Result<()> {
    let r = service.call("store/sql", json!({"sql": args.query, "params": args.params}))?;
    if may_change(&args.query) {
        out.committed();
    }
    if out.json {
        out.line(r.to_string());
        return Ok(());
    }
    let columns: Vec<String> = r["columns"]
        .as_array()
        .map(|a| a.iter().map(text).collect())
        .unwrap_or_default();
    // `None` is SQL NULL.
    let rows: Vec<Vec<Option<String>>> = r["rows"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .map(|row| {
                    row.as_array()
                        .map(|c| c.iter().map(|v| (!v.is_null()).then(|| text(v))).collect())
                        .unwrap_or_default()
                })
                .collect()
        })
        .unwrap_or_default();
    if args.csv {
        let header: Vec<Option<String>> = columns.into_iter().map(Some).collect();
        out.line(csv_line(&header));
        for row in &rows {
            out.line(csv_line(row));
        }
    } else {
        let headers: Vec<&str> = columns.iter().map(String::as_str).collect();
        let cells: Vec<Vec<String>> = rows
            .into_iter()
            .map(|row| {
                row.into_iter()
                    .map(|c| c.unwrap_or_else(|| "NULL".into()))
                    .collect()
            })
            .collect();
        out.table(&headers, &cells);
    }
    Ok(())
}

/// One RFC 4180 line: fields with a comma, quote or line break are quoted, quotes doubled. As in
/// DuckDB's own CSV output, NULL is an empty field and the empty string a quoted `""`.
fn csv_line(fields: &[Option<String>]) -> String {
    fields
        .iter()
        .map(|f| match f {
            None => String::new(),
            Some(f) if f.is_empty() || f.contains([',', '"', '\n', '\r']) => {
                format!("\"{}\"", f.replace('"', "\"\""))
            }
            Some(f) => f.clone(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

pub fn import(service: &Service, args: ImportArgs, out: &Output) -> store::Result<()> {
    let mut request = json!({"table": args.table, "path": args.file});
    if args.no_header {
        request["header"] = json!(false);
    }
    if let Some(f) = args.format {
        request["format"] = json!(f);
    }
    if let Some(d) = args.delimiter {
        request["delimiter"] = json!(d.to_string());
    }
    let r = with_progress(
        out,
        &format!("importing {}", args.file),
        service,
        "store/import",
        request,
    )?;
    out.result(&r, |o, r| {
        o.line(format!(
            "imported {} into {}",
            counted(&r["rows"], "row"),
            args.table
        ))
    });
    Ok(())
}

pub fn export(
    service: &Service,
    table: String,
    file: String,
    compression: Option<String>,
    out: &Output,
) -> store::Result<()> {
    refuse_other_format_name(&file)?;
    let mut request = json!({"table": table, "path": file});
    if let Some(codec) = compression {
        request["compression"] = json!(codec);
    }
    let r = with_progress(
        out,
        &format!("exporting {}", visible(&table)),
        service,
        "store/export-parquet",
        request,
    )?;
    let file = visible(&file);
    out.result(&r, |o, r| {
        o.line(format!("wrote {} to {file}", counted(&r["rows"], "row")))
    });
    Ok(())
}

/// `store export` writes Parquet whatever the file is called: a name that says CSV or JSON
/// (what `store import` would read as such) is refused rather than given Parquet bytes.
fn refuse_other_format_name(file: &str) -> store::Result<()> {
    let lower = file.to_ascii_lowercase();
    let lower = lower
        .strip_suffix(".gz")
        .or_else(|| lower.strip_suffix(".zst"))
        .unwrap_or(&lower);
    let Some(ext) = ["csv", "txt", "tsv", "json", "jsonl", "ndjson"]
        .into_iter()
        .find(|ext| lower.ends_with(&format!(".{ext}")))
    else {
        return Ok(());
    };
    Err(store::Error::InvalidInput {
        op: "store export",
        field: "file",
        reason: format!(
            "{} names a .{ext} file, but export writes Parquet; name it .parquet, or print \
             the rows with `store sql \"SELECT * FROM <table>\" --csv` (or --json) instead",
            visible(file)
        ),
    })
}

pub fn export_split(
    service: &Service,
    table: String,
    column: String,
    dir: String,
    out: &Output,
) -> store::Result<()> {
    let request = json!({"table": table, "column": column, "dir": dir});
    let message = format!("splitting {} by {}", visible(&table), visible(&column));
    let r = with_progress(out, &message, service, "store/export-split-parquet", request)?;
    let dir = visible(&dir);
    out.result(&r, |o, r| {
        let files = r["files"].as_array().map(Vec::len).unwrap_or(0);
        o.line(format!(
            "wrote {} into {} under {dir} (manifest: {dir}/manifest.json)",
            counted(&r["total_rows"], "row"),
            counted(&serde_json::json!(files), "file")
        ));
    });
    Ok(())
}

pub fn scoring(service: &Service, command: ScoringCommand, out: &Output) -> store::Result<()> {
    match command {
        ScoringCommand::Ensure => {
            let r = service.call("store/scoring/ensure", json!({}))?;
            out.committed();
            out.result(&r, |o, _| {
                o.line("scoring tables ready: checkpoint_scores, probe_results, scoring_results")
            });
        }
    }
    Ok(())
}

pub fn inventory(service: &Service, out: &Output) -> store::Result<()> {
    let r = service.call("store/inventory", json!({}))?;
    out.result(&r, |o, r| o.line(r["text"].as_str().unwrap_or_default()));
    Ok(())
}

/// Runs an import or export action (see `run_with_progress`), then marks the output
/// committed: each of them changes something.
fn with_progress(
    out: &Output,
    message: &str,
    service: &Service,
    action: &str,
    request: Value,
) -> store::Result<Value> {
    let result = run_with_progress(out, message, service, action, request)?;
    out.committed();
    Ok(result)
}

/// Whether to draw progress on stderr: a terminal, and output meant for humans.
#[cfg(feature = "analytics")]
fn interactive(out: &Output) -> bool {
    use std::io::IsTerminal;
    !out.json && !out.quiet && std::io::stderr().is_terminal()
}

/// Runs `action` with a progress display on stderr when interactive: a spinner with the rows
/// done while DuckDB has no estimate of the total, a bar (percent done) once it has one.
#[cfg(feature = "analytics")]
fn run_with_progress(
    out: &Output,
    message: &str,
    service: &Service,
    action: &str,
    request: Value,
) -> store::Result<Value> {
    if !interactive(out) {
        return service.call(action, request);
    }
    use std::sync::atomic::{AtomicBool, Ordering};
    let bar = indicatif::ProgressBar::new_spinner().with_message(message.to_string());
    if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {msg} {human_pos} rows ({elapsed})")
    {
        bar.set_style(style);
    }
    bar.enable_steady_tick(std::time::Duration::from_millis(100));
    let estimated = AtomicBool::new(false);
    let report = |p: store::analytics::ImportProgress| match p.percentage {
        Some(percent) => {
            if !estimated.swap(true, Ordering::Relaxed) {
                bar.set_length(100);
                if let Ok(style) =
                    indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {pos:>3}% ({elapsed})")
                {
                    bar.set_style(style.progress_chars("=> "));
                }
            }
            bar.set_position(percent.clamp(0.0, 100.0) as u64);
        }
        None if !estimated.load(Ordering::Relaxed) => bar.set_position(p.rows_processed),
        None => {}
    };
    let result = service.call_with_progress(action, request, &report);
    bar.finish_and_clear();
    result
}

/// Without analytics the action only reports that it is unsupported: nothing to draw.
#[cfg(not(feature = "analytics"))]
fn run_with_progress(
    _: &Output,
    _: &str,
    service: &Service,
    action: &str,
    request: Value,
) -> store::Result<Value> {
    service.call(action, request)
}

/// `n` and the noun, plural unless `n` is 1: "1 row", "2 rows".
fn counted(n: &serde_json::Value, noun: &str) -> String {
    let plural = if n.as_u64() == Some(1) { "" } else { "s" };
    format!("{n} {noun}{plural}")
}
