//! The one place untrusted names and paths become SQL text.
//!
//! Identifiers are always emitted quoted (`"` doubled); paths are bound as parameters where
//! DuckDB allows it and otherwise written as string literals (`'` doubled). Neither may contain
//! NUL, which would truncate the text on its way to the C API.

use std::path::Path;

use crate::error::{Error, Result};

/// Longest accepted identifier, in bytes.
pub const MAX_IDENTIFIER_BYTES: usize = 255;

/// `name` as a quoted SQL identifier: `we"ird` → `"we""ird"`.
pub(crate) fn ident(op: &'static str, field: &'static str, name: &str) -> Result<String> {
    if name.is_empty() {
        return Err(Error::invalid(op, field, format!("the {field} name is empty")));
    }
    if name.len() > MAX_IDENTIFIER_BYTES {
        return Err(Error::invalid(
            op,
            field,
            format!(
                "the {field} name is {} bytes, over the limit of {MAX_IDENTIFIER_BYTES}",
                name.len()
            ),
        ));
    }
    if name.contains('\0') {
        return Err(Error::invalid(
            op,
            field,
            format!("the {field} name contains NUL"),
        ));
    }
    Ok(format!("\"{}\"", name.replace('"', "\"\"")))
}

/// `text` as a SQL string literal: `it's` → `'it''s'`.
pub(crate) fn literal(op: &'static str, field: &'static str, text: &str) -> Result<String> {
    if text.contains('\0') {
        return Err(Error::invalid(op, field, format!("the {field} contains NUL")));
    }
    Ok(format!("'{}'", text.replace('\'', "''")))
}

/// A path as a SQL string literal (for statements such as `COPY … TO` that take no parameters).
pub(crate) fn path_literal(op: &'static str, path: &Path) -> Result<String> {
    let text = path
        .to_str()
        .ok_or_else(|| Error::invalid(op, "path", format!("{} is not valid UTF-8", path.display())))?;
    literal(op, "path", text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted_and_validated() {
        assert_eq!(ident("t", "table", "we\"ird").unwrap(), "\"we\"\"ird\"");
        assert_eq!(
            ident("t", "table", "x\"; DROP TABLE t; --").unwrap(),
            "\"x\"\"; DROP TABLE t; --\""
        );
        assert!(ident("t", "table", "").is_err());
        assert!(ident("t", "table", "a\0b").is_err());
        assert!(ident("t", "table", &"a".repeat(256)).is_err());
        assert_eq!(literal("t", "path", "it's").unwrap(), "'it''s'");
    }
}
