//! Input rules, checked before any I/O (SPEC §2).

use crate::error::{Error, Result};

/// Longest accepted group, key or prefix, in bytes.
///
/// # Examples
/// ```
/// use store::{Kv, MAX_NAME_BYTES, Store};
/// let store = Store::in_memory()?;
/// store.set(&"g".repeat(MAX_NAME_BYTES), "k", "v")?;
/// let err = store.set(&"g".repeat(MAX_NAME_BYTES + 1), "k", "v").unwrap_err();
/// assert_eq!(err.field(), Some("group"));
/// # Ok::<(), store::Error>(())
/// ```
pub const MAX_NAME_BYTES: usize = 4096;

/// Longest accepted namespace, in bytes.
///
/// # Examples
/// ```
/// use store::{MAX_NAMESPACE_BYTES, Store};
/// let store = Store::in_memory()?;
/// assert!(store.scoped(&"n".repeat(MAX_NAMESPACE_BYTES)).is_ok());
/// assert!(store.scoped(&"n".repeat(MAX_NAMESPACE_BYTES + 1)).is_err());
/// # Ok::<(), store::Error>(())
/// ```
pub const MAX_NAMESPACE_BYTES: usize = 64;

/// A group or key: non-empty, at most 4096 bytes, no NUL.
#[inline]
pub(crate) fn name(op: &'static str, field: &'static str, value: &str) -> Result<()> {
    if value.is_empty() {
        return Err(Error::invalid(
            op,
            field,
            format!("the {field} is empty; pass a non-empty {field}"),
        ));
    }
    if value.len() > MAX_NAME_BYTES {
        return Err(Error::invalid(
            op,
            field,
            format!(
                "the {field} is {} bytes, over the limit of {MAX_NAME_BYTES}; shorten it (a long \
                 identifier can be hashed into a key, with the original kept in the value)",
                value.len()
            ),
        ));
    }
    if value.as_bytes().contains(&0) {
        return Err(Error::invalid(
            op,
            field,
            format!("the {field} contains a NUL byte; remove it"),
        ));
    }
    Ok(())
}

/// Group and key together.
#[inline]
pub(crate) fn group_key(op: &'static str, group: &str, key: &str) -> Result<()> {
    name(op, "group", group)?;
    name(op, "key", key)
}

/// A group prefix: `""` means all groups; otherwise the rules of [`name`].
#[inline]
pub(crate) fn prefix(op: &'static str, prefix: &str) -> Result<()> {
    if prefix.is_empty() {
        return Ok(());
    }
    name(op, "prefix", prefix)
}

/// A value: at most `max` bytes.
#[inline]
pub(crate) fn value(op: &'static str, value: &str, max: usize) -> Result<()> {
    if value.len() > max {
        return Err(Error::invalid(
            op,
            "value",
            format!(
                "the value is {} bytes, over max_value_bytes {max}; store a smaller value or raise max_value_bytes",
                value.len()
            ),
        ));
    }
    Ok(())
}

/// A namespace: `^[A-Za-z0-9-]+$`, at most 64 bytes.
pub(crate) fn namespace(op: &'static str, ns: &str) -> Result<()> {
    if ns.len() > MAX_NAMESPACE_BYTES {
        // Not quoted back: the input may be megabytes long.
        return Err(Error::invalid(
            op,
            "namespace",
            format!(
                "the namespace is {} bytes; it must be 1 to {MAX_NAMESPACE_BYTES} bytes of [A-Za-z0-9-]",
                ns.len()
            ),
        ));
    }
    if ns.is_empty() {
        return Err(Error::invalid(
            op,
            "namespace",
            format!("the namespace is empty; it must be 1 to {MAX_NAMESPACE_BYTES} bytes of [A-Za-z0-9-]"),
        ));
    }
    if !ns.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(Error::invalid(
            op,
            "namespace",
            format!("{ns:?} may only contain ASCII letters, digits and '-'"),
        ));
    }
    Ok(())
}

/// `u64` offsets and limits clamp to `i64::MAX` for SQLite.
#[inline]
pub(crate) fn clamp_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Refuses a database path naming a pipe, socket or device: the engines would fail on it with
/// a misleading I/O error ("disk I/O error", "PipeFileSystem: Write … is not implemented").
/// `kind` names the database ("a DuckDB database file"). A missing path (to be created) and a
/// directory (the engines' own errors say so) pass.
pub(crate) fn not_a_special_file(op: &'static str, path: &std::path::Path, kind: &str) -> Result<()> {
    match std::fs::metadata(path) {
        Ok(meta) if !meta.is_file() && !meta.is_dir() => Err(Error::invalid(
            op,
            "path",
            format!(
                "{} is not a regular file (a pipe, socket or device); open {kind}, or a path \
                 that does not exist yet to create one",
                path.display()
            ),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_follow_the_pattern() {
        for ok in ["abc", "ABC", "123", "a-b-c", "tenant-42", "A1-B2"] {
            assert!(namespace("t", ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "foo.bar", "foo:bar", "foo bar", "foo/bar", "foo_bar", "tenant!", "@ns", "é",
        ] {
            assert!(namespace("t", bad).is_err(), "{bad}");
        }
        assert!(namespace("t", &"a".repeat(64)).is_ok());
        assert!(namespace("t", &"a".repeat(65)).is_err());
        let huge = namespace("t", &"x".repeat(1_000_000)).unwrap_err().to_string();
        assert!(huge.len() < 200 && huge.contains("1000000 bytes"), "{huge}");
    }

    #[test]
    fn names_reject_empty_long_and_nul() {
        assert!(name("t", "key", &"k".repeat(4096)).is_ok());
        assert!(name("t", "key", &"k".repeat(4097)).is_err());
        assert!(name("t", "key", "a\0b").is_err());
        assert!(name("t", "key", "").is_err());
        assert!(prefix("t", "").is_ok());
    }
}
