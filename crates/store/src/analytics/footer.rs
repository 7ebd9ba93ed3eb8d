//! Row counts straight from Parquet footers, for the split export's manifest.
//!
//! A split export into N values writes N files, and asking DuckDB for their metadata
//! (`parquet_file_metadata`) parses every footer in full, one file after another: tens of
//! milliseconds per thousand files, a visible share of the export. The row count is the third
//! field of the footer's `FileMetaData` (Thrift compact protocol), so this reads only the footer
//! bytes, skips the schema field generically and stops at `num_rows`. Any file it cannot read
//! this way makes the caller fall back to DuckDB.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// Footers above this size are left to DuckDB (ours hold a handful of columns).
const MAX_FOOTER_BYTES: u64 = 64 << 20;
/// Nesting limit when skipping Thrift values, so a corrupt footer cannot recurse deeply.
const MAX_DEPTH: u32 = 32;

/// `FileMetaData.num_rows` of one Parquet file.
pub(crate) fn num_rows(path: &Path) -> Option<u64> {
    let mut file = File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    if len < 12 {
        return None;
    }
    let mut tail = [0u8; 8];
    file.seek(SeekFrom::Start(len - 8)).ok()?;
    file.read_exact(&mut tail).ok()?;
    if &tail[4..] != b"PAR1" {
        return None;
    }
    let footer_len = u64::from(u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]));
    if footer_len > MAX_FOOTER_BYTES || footer_len + 12 > len {
        return None;
    }
    let mut footer = vec![0u8; usize::try_from(footer_len).ok()?];
    file.seek(SeekFrom::Start(len - 8 - footer_len)).ok()?;
    file.read_exact(&mut footer).ok()?;
    let rows = Compact {
        bytes: &footer,
        at: 0,
    }
    .file_num_rows()?;
    u64::try_from(rows).ok()
}

/// A reader over Thrift compact-protocol bytes; every read is bounds-checked.
struct Compact<'a> {
    bytes: &'a [u8],
    at: usize,
}

// Compact-protocol type ids.
const STOP: u8 = 0;
const BOOL_TRUE: u8 = 1;
const BOOL_FALSE: u8 = 2;
const BYTE: u8 = 3;
const I16: u8 = 4;
const I32: u8 = 5;
const I64: u8 = 6;
const DOUBLE: u8 = 7;
const BINARY: u8 = 8;
const LIST: u8 = 9;
const SET: u8 = 10;
const MAP: u8 = 11;
const STRUCT: u8 = 12;

impl Compact<'_> {
    /// Walks the top-level `FileMetaData` struct to field 3 (`num_rows`, an i64).
    fn file_num_rows(&mut self) -> Option<i64> {
        let mut field = 0i16;
        loop {
            let (id, kind) = self.field_header(field)?;
            if kind == STOP {
                return None;
            }
            if id == 3 && kind == I64 {
                return self.zigzag();
            }
            self.skip(kind, 0)?;
            field = id;
        }
    }

    fn byte(&mut self) -> Option<u8> {
        let b = *self.bytes.get(self.at)?;
        self.at += 1;
        Some(b)
    }

    fn advance(&mut self, n: u64) -> Option<()> {
        let end = self.at.checked_add(usize::try_from(n).ok()?)?;
        if end > self.bytes.len() {
            return None;
        }
        self.at = end;
        Some(())
    }

    fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..70).step_by(7) {
            let b = self.byte()?;
            value |= u64::from(b & 0x7f).checked_shl(shift)?;
            if b & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    fn zigzag(&mut self) -> Option<i64> {
        let v = self.varint()?;
        Some((v >> 1) as i64 ^ -((v & 1) as i64))
    }

    /// A field header after field `last`: (field id, type), or (0, STOP).
    fn field_header(&mut self, last: i16) -> Option<(i16, u8)> {
        let b = self.byte()?;
        let kind = b & 0x0f;
        if kind == STOP {
            return Some((0, STOP));
        }
        let delta = i16::from(b >> 4);
        let id = if delta == 0 {
            i16::try_from(self.zigzag()?).ok()?
        } else {
            last.checked_add(delta)?
        };
        Some((id, kind))
    }

    fn skip(&mut self, kind: u8, depth: u32) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        match kind {
            BOOL_TRUE | BOOL_FALSE => Some(()),
            BYTE => self.advance(1),
            I16 | I32 | I64 => self.varint().map(drop),
            DOUBLE => self.advance(8),
            BINARY => {
                let n = self.varint()?;
                self.advance(n)
            }
            LIST | SET => {
                let header = self.byte()?;
                let elem = header & 0x0f;
                let size = match header >> 4 {
                    15 => self.varint()?,
                    n => u64::from(n),
                };
                for _ in 0..size {
                    self.skip_element(elem, depth + 1)?;
                }
                Some(())
            }
            MAP => {
                let size = self.varint()?;
                if size == 0 {
                    return Some(());
                }
                let types = self.byte()?;
                for _ in 0..size {
                    self.skip_element(types >> 4, depth + 1)?;
                    self.skip_element(types & 0x0f, depth + 1)?;
                }
                Some(())
            }
            STRUCT => {
                let mut field = 0i16;
                loop {
                    let (id, kind) = self.field_header(field)?;
                    if kind == STOP {
                        return Some(());
                    }
                    self.skip(kind, depth + 1)?;
                    field = id;
                }
            }
            _ => None,
        }
    }

    /// A list, set or map element: booleans there take one byte each.
    fn skip_element(&mut self, kind: u8, depth: u32) -> Option<()> {
        if kind == BOOL_TRUE || kind == BOOL_FALSE {
            self.advance(1)
        } else {
            self.skip(kind, depth)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_or_foreign_bytes_give_none_not_a_panic() {
        for bytes in [&[][..], &[0x15], &[0x19, 0xfc], &[0xff; 40], &[0x16, 0x80, 0x80]] {
            assert_eq!(Compact { bytes, at: 0 }.file_num_rows(), None, "{bytes:?}");
        }
    }

    #[test]
    fn matches_duckdb_on_files_duckdb_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::analytics::Analytics::in_memory().unwrap();
        for (i, rows) in [0u64, 1, 2_500, 300_000].into_iter().enumerate() {
            let path = dir.path().join(format!("f{i}.parquet"));
            db.exec_batch(&format!(
                "COPY (SELECT range AS id, 'v' || range AS s, range % 2 = 0 AS b, [range, 1] AS l,
                       {{'k': range}} AS st, MAP {{'a': range}} AS m, range / 3.0 AS d, NULL AS n
                       FROM range({rows})) TO '{}' (FORMAT parquet)",
                path.display()
            ))
            .unwrap();
            assert_eq!(num_rows(&path), Some(rows), "{rows} rows");
        }
        let not_parquet = dir.path().join("x.parquet");
        std::fs::write(&not_parquet, b"definitely not parquet").unwrap();
        assert_eq!(num_rows(&not_parquet), None);
    }

    #[test]
    fn reads_num_rows_after_version_and_a_schema_list() {
        // version: i32 1; schema: list of one struct {name: "x"}; num_rows: i64 300.
        let bytes = [
            0x15, 0x02, // field 1, i32, zigzag(1)
            0x19, 0x1c, // field 2, list: 1 element of struct
            0x48, 0x01, b'x', 0x00, // struct field 4 binary "x", stop
            0x16, 0xd8, 0x04, // field 3, i64, zigzag(300) = 600
            0x00,
        ];
        assert_eq!(Compact { bytes: &bytes, at: 0 }.file_num_rows(), Some(300));
    }
}
