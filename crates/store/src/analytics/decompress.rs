//! Compressed CSV and JSON imports: what the store checks before DuckDB reads them.
//!
//! DuckDB decompresses a `.gz` or `.zst` CSV or JSON file, choosing by its name; the store's
//! own checks of the text (see `csvfile`, `jsonfile`) leave such files to it. Two checks hold
//! for them anyway:
//! - a file whose name and content disagree about compression is refused naming both
//!   ([`Compression::mismatch`]); DuckDB would fail on it with "not utf-8" or a gzip error;
//! - a zstd file is read to its end first ([`zstd_defect`]): DuckDB's zstd reader takes a file
//!   cut off inside a frame for a complete one and imports the rows before the cut, where its
//!   gzip reader refuses such a file itself. The pass costs one decompression of the file, a
//!   fraction of the import's time.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// How a file is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// By content: the format's magic number at the start of the file.
    pub(crate) fn of_content(path: &Path) -> io::Result<Compression> {
        let mut head = Vec::with_capacity(4);
        File::open(path)?.take(4).read_to_end(&mut head)?;
        Ok(Compression::of_head(&head))
    }

    /// By the first bytes of a file: gzip's magic number, a zstd frame's, or a zstd skippable
    /// frame's (`0x184D2A5?` little-endian), which `pzstd` and seekable-format writers put first.
    pub(crate) fn of_head(head: &[u8]) -> Compression {
        match head {
            [0x1F, 0x8B, ..] => Compression::Gzip,
            [0x28, 0xB5, 0x2F, 0xFD, ..] => Compression::Zstd,
            [low, 0x2A, 0x4D, 0x18, ..] if low & 0xF0 == 0x50 => Compression::Zstd,
            _ => Compression::None,
        }
    }

    /// By name, as DuckDB's `compression = 'auto'` chooses: the last extension, in any case.
    pub(crate) fn of_name(path: &Path) -> Compression {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("gz") => Compression::Gzip,
            Some("zst") => Compression::Zstd,
            _ => Compression::None,
        }
    }

    /// What the file's name and content say when they disagree (`None` when they agree), as a
    /// sentence for an error.
    pub(crate) fn mismatch(path: &Path) -> io::Result<Option<String>> {
        let (named, content) = (Compression::of_name(path), Compression::of_content(path)?);
        // Fewer bytes than the smallest zstd frame (a gzip member takes 18).
        const TOO_SHORT: u64 = 9;
        Ok(match (named, content) {
            _ if named == content => None,
            (Compression::None, c) => Some(format!(
                "the file is {} but its name does not end in {}, and DuckDB decompresses by \
                 name; rename it to end in {}",
                c.described(),
                c.suffix(),
                c.suffix()
            )),
            (n, c) => {
                // Only an uncompressed file under a compressed name is measured: no stat on
                // every import.
                let size = match c {
                    Compression::None => Some(std::fs::metadata(path)?.len()),
                    _ => None,
                };
                Some(match size {
                    Some(len) if len < TOO_SHORT => format!(
                        "the file's name ends in {} but it holds only {len} bytes, too few for \
                         compressed data: it is empty or was cut short",
                        n.suffix()
                    ),
                    _ => format!(
                        "the file's name ends in {} but it is {}; rename it to match its content",
                        n.suffix(),
                        c.described()
                    ),
                })
            }
        })
    }

    fn suffix(self) -> &'static str {
        match self {
            Compression::None => "no compression suffix",
            Compression::Gzip => ".gz",
            Compression::Zstd => ".zst",
        }
    }

    fn described(self) -> &'static str {
        match self {
            Compression::None => "not compressed",
            Compression::Gzip => "gzip-compressed",
            Compression::Zstd => "zstd-compressed",
        }
    }
}

/// Why a zstd file cannot be read to its end (cut short, or damaged), read through once; `None`
/// for a complete file, or one that is not zstd. An error reading the file itself is `Err`.
pub(crate) fn zstd_defect(path: &Path) -> io::Result<Option<String>> {
    if Compression::of_content(path)? != Compression::Zstd {
        return Ok(None);
    }
    let mut decoder = zstd::stream::read::Decoder::new(File::open(path)?)?;
    match io::copy(&mut decoder, &mut io::sink()) {
        Ok(_) => Ok(None),
        // The file system's own errors carry an OS code; the decoder's do not.
        Err(e) if e.raw_os_error().is_some() => Err(e),
        Err(e) => Ok(Some(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complete_zstd_and_other_files_have_no_defect_and_no_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        let text = b"a,b\n1,2\n".repeat(1000);
        let two_frames = [
            zstd::encode_all(&text[..8], 3).unwrap(),
            zstd::encode_all(&text[8..], 3).unwrap(),
        ];
        let gzip_header = [0x1F, 0x8B, 0x08, 0, 0, 0, 0, 0, 0, 0xFF];
        let cases = [
            ("t.csv", text.clone()),
            ("t.csv.zst", two_frames.concat()),
            ("t.csv.GZ", gzip_header.to_vec()),
            // A skippable frame first, as pzstd writes (magic 0x184D2A50, 4 bytes of payload).
            (
                "p.csv.zst",
                [
                    &[0x50, 0x2A, 0x4D, 0x18, 4, 0, 0, 0, 1, 2, 3, 4][..],
                    &zstd::encode_all(&text[..], 3).unwrap(),
                ]
                .concat(),
            ),
        ];
        for (name, bytes) in cases {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            assert_eq!(Compression::mismatch(&path).unwrap(), None, "{name}");
            assert_eq!(zstd_defect(&path).unwrap(), None, "{name}");
        }
    }

    #[test]
    fn a_zstd_file_cut_short_has_a_defect() {
        let dir = tempfile::tempdir().unwrap();
        let text: Vec<u8> = (0..20_000)
            .flat_map(|i| format!("{i},abcdefghij{i}\n").into_bytes())
            .collect();
        let whole = zstd::encode_all(&text[..], 3).unwrap();
        let path = dir.path().join("t.csv.zst");
        std::fs::write(&path, &whole[..whole.len() * 2 / 3]).unwrap();
        let reason = zstd_defect(&path).unwrap().expect("a cut-off frame is a defect");
        assert!(reason.contains("incomplete frame"), "{reason}");
    }

    #[test]
    fn a_name_and_content_that_disagree_about_compression_are_a_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        let plain_named_gz = dir.path().join("t.csv.gz");
        std::fs::write(&plain_named_gz, "a,b\n1,2\n3,4\n").unwrap();
        let gzip_named_csv = dir.path().join("t.csv");
        std::fs::write(&gzip_named_csv, [0x1F, 0x8B, 0x08, 0, 0, 0, 0, 0, 0, 0xFF]).unwrap();
        let said = Compression::mismatch(&plain_named_gz).unwrap().unwrap();
        assert!(said.contains(".gz") && said.contains("not compressed"), "{said}");
        let said = Compression::mismatch(&gzip_named_csv).unwrap().unwrap();
        assert!(
            said.contains("gzip-compressed") && said.contains("rename it to end in .gz"),
            "{said}"
        );
        let empty_gz = dir.path().join("e.csv.gz");
        std::fs::write(&empty_gz, "").unwrap();
        let said = Compression::mismatch(&empty_gz).unwrap().unwrap();
        assert!(
            said.contains("holds only 0 bytes") && said.contains("empty or was cut short"),
            "{said}"
        );
    }
}
