//! Directory names of a split export's values: the Hive percent-encoding, the NULL marker,
//! and the `__long__<hash>` name of a value too long for one.

use super::{HIVE_NULL, LONG_PREFIX, MAX_ESCAPED_VALUE_BYTES, MAX_NAME_BYTES};
use crate::error::{Error, Result};

/// Percent-encodes every byte outside `[A-Za-z0-9._~-]`, and the dots of `.` and `..`, so the
/// result is one safe path segment that cannot climb out of its parent or collide with another
/// value's segment. This is the Hive convention DuckDB, Spark, Trino and Polars decode.
///
/// # Examples
/// ```
/// use store::analytics::escape_segment;
/// assert_eq!(escape_segment("a/b"), "a%2Fb");
/// assert_eq!(escape_segment(".."), "%2E%2E");
/// assert_eq!(escape_segment("über"), "%C3%BCber");
/// assert_eq!(escape_segment("%41"), "%2541");
/// ```
pub fn escape_segment(text: &str) -> String {
    if text == "." || text == ".." {
        return "%2E".repeat(text.len());
    }
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b'-') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The final directory name of a value under `<column>=`, for values up to `limit` escaped
/// bytes (see [`value_limit`]).
pub(super) fn value_segment(value: Option<&str>, limit: usize) -> String {
    match value {
        None => HIVE_NULL.to_string(),
        // The NULL marker spelled as a value: encode its first character so it stays distinct.
        Some(HIVE_NULL) => format!("%5F{}", &HIVE_NULL[1..]),
        Some(text) => {
            let mut escaped = escape_segment(text);
            // Likewise a value spelled like a long value's name.
            if escaped.starts_with(LONG_PREFIX) {
                escaped.replace_range(..1, "%5F");
            }
            if escaped.len() > limit {
                format!("{LONG_PREFIX}{:016x}", fnv1a64(text.as_bytes()))
            } else {
                escaped
            }
        }
    }
}

/// Whether a value's directory name would be over `limit` bytes (it then goes to
/// `__long__<hash>`, and the files must keep the column so the value survives). Only long
/// values get such a name: one spelled like it is escaped by [`value_segment`].
pub(super) fn too_long_for_a_name(value: &str, limit: usize) -> bool {
    value_segment(Some(value), limit).starts_with(LONG_PREFIX)
}

/// The longest escaped value that goes into a directory name under `column`:
/// [`MAX_ESCAPED_VALUE_BYTES`], or less when `<column>=` itself takes more than 54 of a
/// directory name's 255 bytes. A column name that leaves no room for the fixed names (the NULL
/// marker spelled as a value, 28 bytes) is refused.
pub(super) fn value_limit(op: &'static str, column: &str) -> Result<usize> {
    let longest_fixed_name = HIVE_NULL.len() + 2;
    let column_bytes = escape_segment(column).len();
    match MAX_NAME_BYTES.checked_sub(column_bytes + 1) {
        Some(room) if room >= longest_fixed_name => Ok(room.min(MAX_ESCAPED_VALUE_BYTES)),
        _ => Err(Error::invalid(
            op,
            "column",
            format!(
                "the column name is {column_bytes} bytes once escaped, which leaves no room for its \
                 values in a {MAX_NAME_BYTES}-byte directory name (at most {} bytes); split a view \
                 or query result that renames the column",
                MAX_NAME_BYTES - 1 - longest_fixed_name
            ),
        )),
    }
}

/// 64-bit FNV-1a: stable across platforms and releases, unlike `std`'s hasher.
pub(super) fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Reverses percent-encoding (DuckDB's, when reading its staged directory names).
pub(super) fn percent_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_safe_and_distinct() {
        let limit = MAX_ESCAPED_VALUE_BYTES;
        assert_eq!(value_segment(None, limit), HIVE_NULL);
        assert_eq!(
            value_segment(Some(HIVE_NULL), limit),
            "%5F_HIVE_DEFAULT_PARTITION__"
        );
        assert_eq!(value_segment(Some(""), limit), "");
        assert_eq!(value_segment(Some("."), limit), "%2E");
        assert_eq!(value_segment(Some("x=y"), limit), "x%3Dy");
        assert!(value_segment(Some(&"a".repeat(201)), limit).starts_with("__long__"));
        assert_eq!(value_segment(Some(&"a".repeat(200)), limit), "a".repeat(200));
        let long = value_segment(Some(&"a".repeat(201)), limit);
        assert_eq!(value_segment(Some(&long), limit), format!("%5F{}", &long[1..]));
        assert!(too_long_for_a_name(&"a".repeat(201), limit));
        assert!(too_long_for_a_name(
            &format!("__long__{}", "a".repeat(191)),
            limit
        ));
        assert!(!too_long_for_a_name(
            &format!("__long__{}", "a".repeat(190)),
            limit
        ));
        assert_eq!(value_limit("t", "k").unwrap(), MAX_ESCAPED_VALUE_BYTES);
        assert_eq!(value_limit("t", &"c".repeat(100)).unwrap(), 154);
        assert_eq!(value_limit("t", &"c".repeat(226)).unwrap(), 28);
        assert!(value_limit("t", &"c".repeat(227)).is_err());
        assert_eq!(percent_decode("a%2Fb%C3%BC").unwrap(), "a/bü".as_bytes());
    }
}
