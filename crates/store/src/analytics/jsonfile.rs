//! Well-formedness of JSON and JSONL files, checked by streaming them through serde_json in
//! bounded memory.
//!
//! DuckDB's JSON reader is lenient where an import must not be: it imports the records of an
//! array cut off after a comma (`[{"a":1},` and nothing more), and it numbers JSONL lines one
//! too high. So a JSON file is checked for a cut-off end before it is imported, and when
//! DuckDB refuses a JSONL file as malformed the first line that is not one JSON object is
//! found here, to name it exactly. Where DuckDB is lenient on purpose (`NaN`, `Infinity`,
//! trailing commas, deep nesting) these checks are too: they never refuse what DuckDB reads.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use serde::de::IgnoredAny;

/// Where and why a file is not well-formed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Defect {
    /// 1-based line.
    pub line: u64,
    pub reason: String,
}

/// Whether the file holds nothing but whitespace, or one empty array (small files only).
pub(crate) fn holds_no_records(path: &Path) -> bool {
    const SMALL: u64 = 4096;
    if std::fs::metadata(path).map_or(true, |m| m.len() > SMALL) {
        return false;
    }
    let Ok(bytes) = std::fs::read(path) else {
        return false;
    };
    let text = String::from_utf8_lossy(&bytes);
    let text = text.trim_start_matches('\u{feff}').trim();
    text.is_empty()
        || text
            .strip_prefix('[')
            .and_then(|rest| rest.strip_suffix(']'))
            .is_some_and(|inside| inside.trim().is_empty())
}

/// Whether the file at `path` starts with a UTF-8 byte order mark.
pub(crate) fn starts_with_bom(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 3];
    std::fs::File::open(path).is_ok_and(|mut f| f.read_exact(&mut head).is_ok() && head == *b"\xEF\xBB\xBF")
}

/// Where a JSON file (one or more top-level values, usually one array) ends before its last
/// value does. Other syntax is left to DuckDB, which accepts more than serde_json (`NaN`,
/// trailing commas, any depth): the scan stops at the first thing serde_json does not take.
/// Compressed files are left to DuckDB.
pub(crate) fn json_defect(path: &Path) -> std::io::Result<Option<Defect>> {
    let Some(reader) = open(path)? else {
        return Ok(None);
    };
    for value in serde_json::Deserializer::from_reader(reader).into_iter::<IgnoredAny>() {
        match value {
            Ok(_) => {}
            Err(e) if e.is_io() => return Err(e.into()),
            Err(e) if e.is_eof() => {
                return Ok(Some(Defect {
                    line: e.line() as u64, // usize → u64 never truncates
                    reason: reason(&e),
                }));
            }
            Err(_) => return Ok(None),
        }
    }
    Ok(None)
}

/// The longest JSONL line judged here (DuckDB's default `maximum_object_size`); longer lines
/// are skipped, so the scan's memory stays bounded.
const MAX_LINE_BYTES: usize = 16 << 20;

/// The first line of a JSONL file that is not exactly one JSON object (blank lines are fine,
/// and so is what DuckDB accepts beyond the standard, see [`as_strict_json`]). Reads at most
/// [`MAX_LINE_BYTES`] of a line. Compressed files are left to DuckDB.
pub(crate) fn jsonl_defect(path: &Path) -> std::io::Result<Option<Defect>> {
    find_line(path, |number, line, fits| {
        if !fits {
            return None; // too long to judge here in bounded memory; DuckDB read it or said so
        }
        let text = line.trim_ascii();
        if text.is_empty() {
            return None;
        }
        let defect = if text.first() == Some(&b'{') {
            let strict = as_strict_json(text);
            // Into a `Value`, not `IgnoredAny`: skipping a string does not check it, so a lone
            // surrogate escape or invalid UTF-8 in one passed here while DuckDB refused it.
            match serde_json::from_slice::<serde_json::Value>(&strict) {
                Err(e) => Some(reason(&e)),
                // DuckDB refuses such a record as "non-record JSON".
                Ok(serde_json::Value::Object(record)) if record.contains_key("") => Some(
                    "a key is empty (\"\"), which DuckDB's JSON reader cannot make a column of; \
                     rename the key"
                        .to_string(),
                ),
                Ok(_) => None,
            }
        } else {
            Some("not a JSON object (each line of a JSONL file is one record)".to_string())
        };
        defect.map(|reason| Defect { line: number, reason })
    })
}

/// The line number of the `record`-th record (1-based) of a JSONL file: DuckDB numbers the
/// records it could not convert by counting records, skipping blank lines, so its number is
/// the line only in a file without them. `None` past the end, or for a compressed file.
pub(crate) fn line_of_record(path: &Path, record: u64) -> std::io::Result<Option<u64>> {
    let mut records = 0;
    find_line(path, |number, line, _| {
        if line.trim_ascii().is_empty() {
            return None;
        }
        records += 1;
        (records == record).then_some(number)
    })
}

/// Walks the lines of an uncompressed JSONL file, calling `visit` with each line's number
/// (1-based), its text (at most [`MAX_LINE_BYTES`] of it) and whether it fitted, until `visit`
/// returns something. `None` at the end, or for a compressed file (left to DuckDB).
fn find_line<T>(
    path: &Path,
    mut visit: impl FnMut(u64, &[u8], bool) -> Option<T>,
) -> std::io::Result<Option<T>> {
    let Some(mut reader) = open(path)? else {
        return Ok(None);
    };
    let (mut line, mut number) = (Vec::new(), 0);
    loop {
        line.clear();
        let (read, fits) = read_line(&mut reader, &mut line)?;
        if read == 0 {
            return Ok(None);
        }
        number += 1;
        if let Some(found) = visit(number, &line, fits) {
            return Ok(Some(found));
        }
    }
}

/// Reads one line (without its `\n`) into `line`, keeping at most [`MAX_LINE_BYTES`] of it:
/// (bytes read, whether the line fitted).
fn read_line(reader: &mut impl BufRead, line: &mut Vec<u8>) -> std::io::Result<(usize, bool)> {
    let (mut read, mut fits) = (0, true);
    loop {
        let buffer = reader.fill_buf()?;
        if buffer.is_empty() {
            return Ok((read, fits));
        }
        let (chunk, ends) = match buffer.iter().position(|b| *b == b'\n') {
            Some(end) => (&buffer[..end], true),
            None => (buffer, false),
        };
        if line.len() + chunk.len() > MAX_LINE_BYTES {
            fits = false;
        } else if fits {
            line.extend_from_slice(chunk);
        }
        let used = chunk.len() + usize::from(ends);
        reader.consume(used);
        read += used;
        if ends {
            return Ok((read, fits));
        }
    }
}

/// A JSON text with what DuckDB accepts beyond the standard made standard, so that serde_json
/// judges the rest: `NaN`, `Infinity` and `-Infinity` outside strings become `0`, and a comma
/// right before `]` or `}` goes.
fn as_strict_json(text: &[u8]) -> Vec<u8> {
    const NON_FINITE: [&[u8]; 3] = [b"-Infinity", b"Infinity", b"NaN"];
    let mut out = Vec::with_capacity(text.len());
    let (mut in_string, mut escaped) = (false, false);
    let mut i = 0;
    while i < text.len() {
        let b = text[i];
        let rest = &text[i..];
        i += 1;
        if in_string {
            out.push(b);
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
        } else if let Some(token) = NON_FINITE.iter().find(|t| rest.starts_with(t)) {
            out.push(b'0');
            i += token.len() - 1;
        } else if b == b','
            && matches!(
                rest[1..].iter().find(|c| !c.is_ascii_whitespace()),
                Some(b']' | b'}')
            )
        {
            // dropped
        } else {
            in_string = b == b'"';
            out.push(b);
        }
    }
    out
}

/// The file, past a UTF-8 byte-order mark; `None` if it is gzip or zstd compressed (DuckDB
/// decompresses those by extension).
pub(crate) fn open(path: &Path) -> std::io::Result<Option<BufReader<File>>> {
    let mut reader = BufReader::new(File::open(path)?);
    let head = reader.fill_buf()?;
    if super::decompress::Compression::of_head(head) != super::decompress::Compression::None {
        return Ok(None);
    }
    if head.starts_with(b"\xEF\xBB\xBF") {
        reader.consume(3);
    }
    Ok(Some(reader))
}

/// serde_json's message without its position (the defect carries the line).
fn reason(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let position = format!(" at line {} column {}", e.line(), e.column());
    match text.strip_suffix(&position) {
        Some(message) => format!("{message} (column {})", e.column()),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, lines: bool) -> Option<(u64, String)> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, text).unwrap();
        let defect = if lines {
            jsonl_defect(&path)
        } else {
            json_defect(&path)
        };
        defect.unwrap().map(|d| (d.line, d.reason))
    }

    #[test]
    fn json_files_cut_off_before_their_end_are_defects_and_other_syntax_is_left_to_duckdb() {
        assert_eq!(check("[\n{\"a\":1},\n{\"a\":2}\n]\n", false), None);
        assert_eq!(check("\u{feff}{\"a\":1} {\"a\":2}", false), None);
        assert_eq!(check("", false), None);
        let (line, reason) = check("[\n{\"a\":1},\n{\"a\":2}\n,\n", false).unwrap();
        assert_eq!(line, 5);
        assert!(reason.contains("EOF") && reason.contains("column"), "{reason}");
        assert_eq!(check("[{\"a\": 1}, {\"a\": ", false).unwrap().0, 1);
        // DuckDB reads these (or reports them itself): no defect here.
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        for lenient in [
            "[{\"a\": NaN}, {\"a\": -Infinity}]",
            "[{\"a\": 1},]",
            "[\n{\"a\": x}\n]",
            &deep,
        ] {
            assert_eq!(check(lenient, false), None, "{lenient}");
        }
    }

    #[test]
    fn jsonl_defects_are_the_first_line_that_is_not_one_object() {
        assert_eq!(check("{\"a\":1}\n\n{\"a\":2}\r\n", true), None);
        assert_eq!(check("\u{feff}{\"a\":1}\n", true), None);
        assert_eq!(check("{\"a\":1}\nnot json\n{\"a\":3}\n", true).unwrap().0, 2);
        assert_eq!(check("{\"a\":1}\n{\"a\":2} trailing\n", true).unwrap().0, 2);
        assert_eq!(check("{\"a\":1}{\"a\":2}\n", true).unwrap().0, 1);
        assert_eq!(check("{\"a\":1}\n{\"a\":", true).unwrap().0, 2);
        let (line, reason) = check("{\"a\":1}\n{\"b\":{\"\":1}}\n{\"\":1,\"b\":2}\n", true).unwrap();
        assert_eq!(
            line, 3,
            "an empty key inside a value is fine; at the top it is not"
        );
        assert!(reason.contains("a key is empty"), "{reason}");
        let (line, reason) = check("{\"a\":1}\n\n[1, 2]\n", true).unwrap();
        assert_eq!(line, 3);
        assert!(reason.contains("not a JSON object"), "{reason}");
        // NaN and trailing commas are DuckDB's JSON: the defect is the third line.
        assert_eq!(
            check("{\"a\": NaN}\n{\"a\": [1,],}\n{\"a\": x}\n", true)
                .unwrap()
                .0,
            3
        );
        // A line too long to judge is skipped; the defect after it is found.
        let long = format!("{{\"a\": \"{}\"}}\n{{}}\n{{bad}}\n", "x".repeat(MAX_LINE_BYTES));
        assert_eq!(check(&long, true).unwrap().0, 3);
    }

    #[test]
    fn duckdbs_extensions_are_made_strict_json_outside_strings_only() {
        let strict = |t: &str| String::from_utf8(as_strict_json(t.as_bytes())).unwrap();
        assert_eq!(
            strict(r#"{"a": NaN, "b": [Infinity, -Infinity,], }"#),
            r#"{"a": 0, "b": [0, 0] }"#
        );
        let quoted = r#"{"s": "NaN, ]", "t": "q\"NaN,}"}"#;
        assert_eq!(strict(quoted), quoted);
    }
}
