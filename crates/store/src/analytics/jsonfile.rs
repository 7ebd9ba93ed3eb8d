//! Well-formedness of JSON and JSONL files, checked by streaming them through serde_json in
//! bounded memory.
//!
//! DuckDB's JSON reader is lenient where an import must not be: it imports the records of an
//! array cut off after a comma (`[{"a":1},` and nothing more), and it numbers JSONL lines one
//! too high. So a JSON file is checked before it is imported, and when DuckDB refuses a JSONL
//! file the first line that is not one JSON object is found here, to name it exactly.

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

/// The first defect of a JSON file: one or more top-level values (usually one array).
/// Compressed files are left to DuckDB.
pub(crate) fn json_defect(path: &Path) -> std::io::Result<Option<Defect>> {
    let Some(reader) = open(path)? else {
        return Ok(None);
    };
    for value in serde_json::Deserializer::from_reader(reader).into_iter::<IgnoredAny>() {
        match value {
            Ok(_) => {}
            Err(e) if e.is_io() => return Err(e.into()),
            Err(e) => {
                return Ok(Some(Defect {
                    line: e.line() as u64, // usize → u64 never truncates
                    reason: reason(&e),
                }));
            }
        }
    }
    Ok(None)
}

/// The first line of a JSONL file that is not exactly one JSON object (blank lines are fine).
/// Compressed files are left to DuckDB.
pub(crate) fn jsonl_defect(path: &Path) -> std::io::Result<Option<Defect>> {
    let Some(mut reader) = open(path)? else {
        return Ok(None);
    };
    let mut line = Vec::new();
    let mut number = 0;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(None);
        }
        number += 1;
        let text = line.trim_ascii();
        if text.is_empty() {
            continue;
        }
        let defect = if text.first() == Some(&b'{') {
            serde_json::from_slice::<IgnoredAny>(text)
                .err()
                .map(|e| reason(&e))
        } else {
            Some("not a JSON object (each line of a JSONL file is one record)".to_string())
        };
        if let Some(reason) = defect {
            return Ok(Some(Defect { line: number, reason }));
        }
    }
}

/// The file, past a UTF-8 byte-order mark; `None` if it is gzip or zstd compressed (DuckDB
/// decompresses those by extension).
fn open(path: &Path) -> std::io::Result<Option<BufReader<File>>> {
    let mut reader = BufReader::new(File::open(path)?);
    let head = reader.fill_buf()?;
    if head.starts_with(&[0x1F, 0x8B]) || head.starts_with(&[0x28, 0xB5, 0x2F, 0xFD]) {
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
    fn json_defects_name_their_line_and_well_formed_files_have_none() {
        assert_eq!(check("[\n{\"a\":1},\n{\"a\":2}\n]\n", false), None);
        assert_eq!(check("\u{feff}{\"a\":1} {\"a\":2}", false), None);
        assert_eq!(check("", false), None);
        assert_eq!(check("[\n{\"a\":1},\n{\"a\":2}\n,\n", false).unwrap().0, 5);
        assert_eq!(check("[\n{\"a\":1},\n{\"a\": x}\n]", false).unwrap().0, 3);
        let (line, reason) = check("[{\"a\":1}, {\"a\":2}] garbage", false).unwrap();
        assert_eq!(line, 1);
        assert!(reason.contains("column"), "{reason}");
    }

    #[test]
    fn jsonl_defects_are_the_first_line_that_is_not_one_object() {
        assert_eq!(check("{\"a\":1}\n\n{\"a\":2}\r\n", true), None);
        assert_eq!(check("\u{feff}{\"a\":1}\n", true), None);
        assert_eq!(check("{\"a\":1}\nnot json\n{\"a\":3}\n", true).unwrap().0, 2);
        assert_eq!(check("{\"a\":1}\n{\"a\":2} trailing\n", true).unwrap().0, 2);
        assert_eq!(check("{\"a\":1}{\"a\":2}\n", true).unwrap().0, 1);
        assert_eq!(check("{\"a\":1}\n{\"a\":", true).unwrap().0, 2);
        let (line, reason) = check("{\"a\":1}\n\n[1, 2]\n", true).unwrap();
        assert_eq!(line, 3);
        assert!(reason.contains("not a JSON object"), "{reason}");
    }
}
