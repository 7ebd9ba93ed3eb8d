//! Finding the first malformed record of a CSV file, for an error that names its line.
//!
//! DuckDB's CSV sniffer reports a short file with a ragged row only as "Error when sniffing
//! file", with no line. After such a failure the file is scanned once here, as RFC 4180 reads
//! it (quoted fields may hold delimiters, newlines and doubled quotes), streaming with bounded
//! memory, for the first record whose field count differs from the first record's, a quote
//! that never closes, text after a closing quote, lines that mix `\r\n` and `\n` ends, or a
//! UTF-16 file. DuckDB's own message for most of these suggests `read_csv` options an import
//! does not take.

use std::io::{BufRead, Read};
use std::path::Path;

use super::jsonfile::{Defect, open};

/// How a CSV file starts, past a byte order mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Start {
    /// gzip or zstd: not read here (DuckDB decompresses by extension).
    Compressed,
    /// This many blank lines come before the first line with content.
    Blank(u64),
    /// Nothing but blank lines (or nothing at all): no header, no row. DuckDB would read such
    /// a file as one column named `column0`.
    OnlyBlank,
}

/// How the CSV file at `path` starts. A blank line is empty, or holds only the whitespace in
/// `spaces` (spaces, tabs, form feeds), and ends with `\n`, `\r\n` or a lone `\r` (DuckDB's
/// `skip` counts each of those as one line). An import skips the blank lines: told to skip
/// none, DuckDB takes a blank first line for the header and reads the real header as a row.
/// Reads up to the first byte of content, so a long first line is never held in memory.
pub(crate) fn start(path: &Path, spaces: &[u8]) -> std::io::Result<Start> {
    let Some(mut reader) = open(path)? else {
        return Ok(Start::Compressed);
    };
    // `after_cr`: the previous byte was a `\r`, which ends a line unless a `\n` follows.
    let (mut blank, mut after_cr) = (0, false);
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok(Start::OnlyBlank);
        }
        let mut used = 0;
        for &byte in buf {
            match byte {
                b'\n' => {
                    blank += 1;
                    after_cr = false;
                }
                b'\r' => {
                    if after_cr {
                        blank += 1;
                    }
                    after_cr = true;
                }
                b' ' | b'\t' | b'\x0c' if spaces.contains(&byte) => {
                    if after_cr {
                        blank += 1;
                        after_cr = false;
                    }
                }
                _ => return Ok(Start::Blank(blank + u64::from(after_cr))),
            }
            used += 1;
        }
        reader.consume(used);
    }
}

/// Whether the first line with content of the file at `path` is a JSON object or array (read up
/// to 1 MiB): a JSON Lines file named `.csv`, which DuckDB reads as a CSV whose header is the
/// first record (0 rows, one column named `{"a":1}`).
pub(crate) fn starts_with_json(path: &Path) -> std::io::Result<bool> {
    const MAX: u64 = 1 << 20;
    let Some(reader) = open(path)? else {
        return Ok(false);
    };
    let mut line = Vec::new();
    std::io::Read::take(reader, MAX).read_until(b'\n', &mut line)?;
    let text = line.trim_ascii();
    if !matches!(text.first(), Some(b'{' | b'[')) {
        return Ok(false);
    }
    let text = text.strip_suffix(b",").unwrap_or(text);
    Ok(serde_json::from_slice::<serde_json::Value>(text).is_ok_and(|v| v.is_object() || v.is_array()))
}

/// The longest line a CSV import reads (DuckDB's `max_line_size`; its default is 2 MB).
pub(crate) const MAX_LINE_BYTES: u64 = 64 << 20;

/// The first physical line of the file at `path` longer than `limit` bytes (without its line
/// end), if any: DuckDB's error for one names the wrong line.
pub(crate) fn first_long_line(path: &Path, limit: u64) -> std::io::Result<Option<u64>> {
    let Some(mut reader) = open(path)? else {
        return Ok(None);
    };
    let (mut line, mut length) = (1u64, 0u64);
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            return Ok(None);
        }
        let n = chunk.len();
        for &byte in chunk {
            if byte == b'\n' {
                (line, length) = (line + 1, 0);
            } else if byte != b'\r' {
                length += 1;
                if length > limit {
                    return Ok(Some(line));
                }
            }
        }
        reader.consume(n);
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    FieldStart,
    Unquoted,
    Quoted,
    /// A quote inside a quoted field: the field's end, or the first half of `""`.
    QuoteInQuoted,
}

/// The first defect of the CSV file at `path` (see the module docs), if any. Compressed
/// files, and delimiters that are not ASCII, are not scanned (`None`).
pub(crate) fn csv_defect(path: &Path, delimiter: char) -> std::io::Result<Option<Defect>> {
    let delimiter = match u8::try_from(delimiter) {
        Ok(d) if d.is_ascii() => d,
        _ => return Ok(None),
    };
    let Some(mut reader) = open(path)? else {
        return Ok(None);
    };
    if reader.fill_buf()?.starts_with(&[0xFF, 0xFE]) || reader.fill_buf()?.starts_with(&[0xFE, 0xFF]) {
        return Ok(Some(Defect {
            line: 1,
            reason: "the file is UTF-16 (it starts with a UTF-16 byte order mark); save it as \
                     UTF-8"
                .into(),
        }));
    }
    // The line that first ended with `\r\n` and the one that first ended with a bare `\n`
    // (outside quotes): DuckDB refuses a file that mixes them.
    let (mut first_crlf, mut first_lf): (Option<u64>, Option<u64>) = (None, None);
    let mut state = State::FieldStart;
    // Physical line being read, the line its record started on, fields so far, whether the
    // record holds any byte (blank lines are skipped, as DuckDB does), and the first record's
    // field count.
    let (mut line, mut record_line, mut fields, mut any) = (1u64, 1u64, 1usize, false);
    let mut expected: Option<usize> = None;
    let mut after_cr = false;
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            break;
        }
        let n = chunk.len();
        for &byte in chunk {
            // A lone `\r` ends a line for some readers and not for others: name no line.
            if after_cr && byte != b'\n' && state != State::Quoted {
                return Ok(None);
            }
            let previous_cr = after_cr;
            after_cr = byte == b'\r';
            if byte == b'\n' && state != State::Quoted {
                // `previous_cr`: this line ends with `\r\n`.
                let (this, other) = if previous_cr {
                    (&mut first_crlf, first_lf)
                } else {
                    (&mut first_lf, first_crlf)
                };
                this.get_or_insert(line);
                if let Some(earlier) = other {
                    return Ok(Some(mixed_line_ends(line, earlier, previous_cr)));
                }
                if any {
                    match expected {
                        None => expected = Some(fields),
                        Some(want) if want != fields => {
                            return Ok(Some(ragged(record_line, fields, want)));
                        }
                        Some(_) => {}
                    }
                }
                line += 1;
                (record_line, fields, any, state) = (line, 1, false, State::FieldStart);
                continue;
            }
            if byte == b'\n' {
                line += 1;
                continue;
            }
            if byte == b'\r' {
                continue;
            }
            any = true;
            state = match (state, byte) {
                (State::Quoted, b'"') => State::QuoteInQuoted,
                (State::Quoted, _) => State::Quoted,
                (State::QuoteInQuoted, b'"') => State::Quoted,
                (_, d) if d == delimiter => {
                    fields += 1;
                    State::FieldStart
                }
                (State::FieldStart, b'"') => State::Quoted,
                // DuckDB allows blanks before an opening quote.
                (State::FieldStart, b' ' | b'\t') => State::FieldStart,
                // DuckDB reads a quote inside an unquoted field (`a"b`) as text, so a defect
                // after it is still found; other readers refuse it, so it is named nowhere.
                (State::Unquoted, b'"') => State::Unquoted,
                // Text after a closing quote DuckDB refuses: RFC 4180 quotes a field as a
                // whole, doubling the quotes inside it.
                (State::QuoteInQuoted, _) => {
                    return Ok(Some(misplaced_quote(line, "followed by more text in its field")));
                }
                _ => State::Unquoted,
            };
        }
        reader.consume(n);
    }
    if state == State::Quoted {
        return Ok(Some(Defect {
            line: record_line,
            reason: format!("a quoted field opened on line {record_line} never closes"),
        }));
    }
    match expected {
        Some(want) if any && want != fields => Ok(Some(ragged(record_line, fields, want))),
        _ => Ok(None),
    }
}

/// Longest header record [`header_fields`] reads; a longer one is left to DuckDB alone.
const MAX_HEADER_BYTES: usize = 1 << 20;

/// The fields of the first record of the CSV file at `path` after `skip` lines, as RFC 4180
/// reads them (quotes removed, `""` undoubled, blanks before an opening quote dropped as
/// DuckDB drops them, every other byte kept, spaces included). `None` for a compressed file,
/// a delimiter that is not ASCII, a header over [`MAX_HEADER_BYTES`] or not UTF-8, a quote
/// that never closes, or text after a closing quote: the caller then keeps DuckDB's names.
pub(crate) fn header_fields(path: &Path, delimiter: char, skip: u64) -> std::io::Result<Option<Vec<String>>> {
    let delimiter = match u8::try_from(delimiter) {
        Ok(d) if d.is_ascii() => d,
        _ => return Ok(None),
    };
    let Some(reader) = open(path)? else {
        return Ok(None);
    };
    let mut bytes = reader.bytes();
    // `skip` counts lines ending with `\n`, `\r\n` or a lone `\r`, blank ones only.
    let mut skipped = 0;
    let mut pending = None;
    while skipped < skip {
        match bytes.next().transpose()? {
            None => return Ok(None),
            Some(b'\n') => skipped += 1,
            Some(b'\r') => {
                skipped += 1;
                match bytes.next().transpose()? {
                    Some(b'\n') | None => {}
                    other => pending = other,
                }
            }
            Some(_) => {}
        }
    }
    let (mut fields, mut field, mut state) = (Vec::new(), Vec::new(), State::FieldStart);
    let mut read = 0;
    for byte in pending.map(Ok).into_iter().chain(bytes) {
        let byte = byte?;
        read += 1;
        if read > MAX_HEADER_BYTES {
            return Ok(None);
        }
        if state != State::Quoted && (byte == b'\n' || byte == b'\r') {
            break;
        }
        state = match (state, byte) {
            (State::Quoted, b'"') => State::QuoteInQuoted,
            (State::Quoted, b) => {
                field.push(b);
                State::Quoted
            }
            (State::QuoteInQuoted, b'"') => {
                field.push(b'"');
                State::Quoted
            }
            (_, d) if d == delimiter => {
                fields.push(std::mem::take(&mut field));
                State::FieldStart
            }
            (State::FieldStart, b'"') => {
                field.clear();
                State::Quoted
            }
            // Blanks before an opening quote are dropped with it; kept if no quote comes.
            (State::FieldStart, b @ (b' ' | b'\t')) => {
                field.push(b);
                State::FieldStart
            }
            (State::QuoteInQuoted, _) => return Ok(None),
            (State::FieldStart | State::Unquoted, b) => {
                field.push(b);
                State::Unquoted
            }
        };
    }
    if state == State::Quoted {
        return Ok(None);
    }
    fields.push(field);
    Ok(fields
        .into_iter()
        .map(String::from_utf8)
        .collect::<Result<_, _>>()
        .ok())
}

fn mixed_line_ends(line: u64, earlier: u64, crlf: bool) -> Defect {
    let (this, that) = if crlf {
        ("\\r\\n", "\\n")
    } else {
        ("\\n", "\\r\\n")
    };
    Defect {
        line,
        reason: format!(
            "line {line} ends with {this} but line {earlier} with {that}: the file mixes line \
             ends, which DuckDB's CSV reader refuses; convert it to one kind (for example with \
             dos2unix) and import again"
        ),
    }
}

fn misplaced_quote(line: u64, where_: &str) -> Defect {
    Defect {
        line,
        reason: format!(
            "line {line} has a quote {where_}; quote the whole field and double each quote \
             inside it (RFC 4180: \"a \"\"b\"\" c\")"
        ),
    }
}

fn ragged(line: u64, fields: usize, want: usize) -> Defect {
    Defect {
        line,
        reason: format!("line {line} has {fields} field(s) where the first line has {want}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defect(text: &str) -> Option<(u64, String)> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        std::fs::write(&path, text).unwrap();
        csv_defect(&path, ',').unwrap().map(|d| (d.line, d.reason))
    }

    #[test]
    fn finds_the_first_ragged_record_and_unclosed_quotes_by_line() {
        assert_eq!(defect("x,s\n1,a\n2\n3,c\n").map(|d| d.0), Some(3));
        assert_eq!(defect("x,s\r\n1,a\r\n2,b,c\r\n").map(|d| d.0), Some(3));
        // Quoted delimiters, newlines and doubled quotes are one field; blank lines are skipped.
        assert_eq!(defect("x,s\n1,\"a,\nb\"\"c\"\n\n2,d\n3\n").map(|d| d.0), Some(6));
        assert_eq!(defect("x,s\n1,a\n2,b"), None);
        assert_eq!(
            defect("x,s\n1,a\n2,b,c"),
            Some((3, "line 3 has 3 field(s) where the first line has 2".into()))
        );
        assert_eq!(defect("x,s\n1,\"a\n2,b\n").map(|d| d.0), Some(2));
        // Blanks before an opening quote are allowed, as DuckDB allows them.
        assert_eq!(defect("x,s\n1, \"Smith, J\"\n2,b\n"), None);
        // A lone `\r` ends a line for some readers only: no line is named rather than a wrong one.
        assert_eq!(defect("x,s\r1,a\r2\r"), None);
    }

    #[test]
    fn header_fields_keep_their_blanks_and_read_quotes_as_rfc_4180_does() {
        let fields = |text: &str, skip: u64| {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("h.csv");
            std::fs::write(&path, text).unwrap();
            header_fields(&path, ',', skip).unwrap()
        };
        let owned = |v: &[&str]| Some(v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(
            fields(" lead,trail ,\" q \",x\n1,2,3,4\n", 0),
            owned(&[" lead", "trail ", " q ", "x"])
        );
        assert_eq!(
            fields("\u{feff}a,\"b\"\"c\",  \"d,e\"\r\n1,2,3\r\n", 0),
            owned(&["a", "b\"c", "d,e"])
        );
        assert_eq!(fields("\n \r\n\ra, b\n", 3), owned(&["a", " b"]));
        assert_eq!(fields("\"multi\nline\",z", 0), owned(&["multi\nline", "z"]));
        assert_eq!(fields("\"open,z\n", 0), None);
        assert_eq!(fields("\"a\"b,z\n", 0), None);
        assert_eq!(fields("only", 0), owned(&["only"]));
    }

    #[test]
    fn names_misplaced_quotes_mixed_line_ends_and_utf16() {
        // DuckDB takes `a"b` for text: the ragged row after it is the defect.
        assert_eq!(defect("x,s\n1,a\"b\n2\n").map(|d| d.0), Some(3));
        let (line, reason) = defect("x,s\n\"a\"b,1\n").unwrap();
        assert_eq!(line, 2);
        assert!(reason.contains("followed by more text"), "{reason}");
        let (line, reason) = defect("a,b\r\n1,2\n3,4\r\n").unwrap();
        assert_eq!(line, 2);
        assert!(reason.contains("mixes line ends"), "{reason}");
        // Line ends inside a quoted field are data.
        assert_eq!(defect("a,b\r\n1,\"x\ny\"\r\n3,4\r\n"), None);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("u16.csv");
        let mut bytes = vec![0xFF, 0xFE];
        bytes.extend("a,b\n".encode_utf16().flat_map(u16::to_le_bytes));
        std::fs::write(&path, bytes).unwrap();
        let found = csv_defect(&path, ',').unwrap().unwrap();
        assert!(found.reason.contains("UTF-16"), "{}", found.reason);
    }
}
