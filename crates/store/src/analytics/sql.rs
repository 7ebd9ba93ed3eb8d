//! The one place untrusted names and paths become SQL text.
//!
//! Identifiers are always emitted quoted (`"` doubled); paths are bound as parameters where
//! DuckDB allows it and otherwise written as string literals (`'` doubled). Neither may contain
//! NUL, which would truncate the text on its way to the C API.

use std::path::Path;

use crate::error::{Error, Result};

/// Longest accepted identifier, in bytes.
///
/// # Examples
/// ```
/// use store::analytics::{Analytics, MAX_IDENTIFIER_BYTES};
/// let db = Analytics::in_memory()?;
/// assert!(!db.table_exists(&"t".repeat(MAX_IDENTIFIER_BYTES))?);
/// let err = db.table_exists(&"t".repeat(MAX_IDENTIFIER_BYTES + 1)).unwrap_err();
/// assert_eq!(err.field(), Some("table"));
/// # Ok::<(), store::Error>(())
/// ```
pub const MAX_IDENTIFIER_BYTES: usize = 255;

/// `name` as a quoted SQL identifier: `we"ird` → `"we""ird"`.
pub(crate) fn ident(op: &'static str, field: &'static str, name: &str) -> Result<String> {
    if name.is_empty() {
        return Err(Error::invalid(
            op,
            field,
            format!("the {field} name is empty; pass a name"),
        ));
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
            format!("the {field} name contains NUL; remove it"),
        ));
    }
    Ok(format!("\"{}\"", name.replace('"', "\"\"")))
}

/// A name DuckDB itself reported (a column it created), quoted as an identifier whatever its
/// length: [`ident`]'s limits are for names a caller gives.
pub(crate) fn quote_reported(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `"catalog"."schema"."table"`, each part a name DuckDB reported: the one table of that
/// name, never a temporary table that shadows it.
pub(crate) fn qualified(catalog: &str, schema: &str, table: &str) -> String {
    format!(
        "{}.{}.{}",
        quote_reported(catalog),
        quote_reported(schema),
        quote_reported(table)
    )
}

/// `text` as a SQL string literal: `it's` → `'it''s'`.
pub(crate) fn literal(op: &'static str, field: &'static str, text: &str) -> Result<String> {
    if text.contains('\0') {
        return Err(Error::invalid(
            op,
            field,
            format!("the {field} contains NUL; remove it"),
        ));
    }
    Ok(format!("'{}'", text.replace('\'', "''")))
}

/// A path as a SQL string literal (for statements such as `COPY … TO` that take no parameters).
pub(crate) fn path_literal(op: &'static str, path: &Path) -> Result<String> {
    let text = path
        .to_str()
        .ok_or_else(|| Error::invalid(op, "path", format!("{} is not valid UTF-8, which DuckDB needs to name a file; rename it or use a link with a UTF-8 name", path.display())))?;
    if duckdb_reinterprets(path) {
        return path_literal(op, &as_duckdb_reads_it(op, path)?);
    }
    literal(op, "path", text)
}

/// Whether DuckDB would take this path for something other than the file `std::fs` opens: a
/// leading `~` (DuckDB expands it to the home directory), or a relative path whose first
/// component holds a `:` (`md:db` for MotherDuck, `s3://…`, `http://…`). The exact name
/// `:memory:` keeps DuckDB's meaning, a private in-memory database.
/// Judged on the path's bytes: DuckDB reads a name that is not UTF-8 the same way.
fn duckdb_reinterprets(path: &Path) -> bool {
    let bytes = path.as_os_str().as_encoded_bytes();
    if bytes == b":memory:" {
        return false;
    }
    let first_has_colon = path
        .components()
        .next()
        .is_some_and(|c| c.as_os_str().as_encoded_bytes().contains(&b':'));
    bytes.starts_with(b"~") || (path.is_relative() && first_has_colon)
}

/// `path` in a form DuckDB reads as the same file every `std::fs` call does. A path DuckDB
/// would reinterpret (a leading `~`, which it expands to the home directory; a relative
/// `:memory:` or `scheme:…`) becomes absolute (a `./` prefix is not enough: DuckDB drops it
/// before creating partition directories). Other paths are returned as they are.
pub(crate) fn as_duckdb_reads_it(op: &'static str, path: &Path) -> Result<std::path::PathBuf> {
    if !duckdb_reinterprets(path) {
        return Ok(path.to_path_buf());
    }
    std::path::absolute(path).map_err(|e| {
        Error::invalid(
            op,
            "path",
            format!(
                "cannot resolve {} against the current directory: {e}",
                path.display()
            ),
        )
    })
}

/// Whether SQL text holds no statement: only blanks, `;`, `--` comments and closed `/* */`
/// comments (DuckDB answers those with "Unknown error code").
pub(crate) fn holds_no_statement(sql: &str) -> bool {
    let mut rest = sql;
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_ascii_whitespace() || c == ';');
        if rest.is_empty() {
            return true;
        }
        if let Some(after) = rest.strip_prefix("--") {
            match after.find(['\n', '\r']) {
                Some(end) => rest = &after[end..],
                None => return true,
            }
        } else if rest.starts_with("/*") {
            match block_comment_end(rest) {
                Some(end) => rest = &rest[end..],
                // Unterminated: DuckDB's own error says so.
                None => return false,
            }
        } else {
            return false;
        }
    }
}

/// The top-level statements of SQL text, split once (outside string literals, quoted names,
/// dollar-quoted strings and comments, as DuckDB splits them) for every question below.
pub(crate) struct Statements<'a> {
    sql: &'a str,
    starts: Vec<usize>,
}

impl<'a> Statements<'a> {
    pub(crate) fn of(sql: &'a str) -> Statements<'a> {
        Statements {
            sql,
            starts: statement_starts(sql),
        }
    }

    /// The text of each statement, from its first word to the end of the text.
    fn each(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.starts.iter().map(|&start| &self.sql[start..])
    }

    /// Whether the text holds another statement after its first top-level `;`. duckdb-rs runs
    /// every statement but the last while preparing, so a later one that fails to bind would
    /// leave the earlier ones applied by a call that reports an error.
    pub(crate) fn several(&self) -> bool {
        self.starts.len() > 1
    }

    /// Whether a statement sets or resets DuckDB's `home_directory` (`SET`, `RESET`,
    /// `PRAGMA`, with or without a scope).
    pub(crate) fn set_home_directory(&self) -> bool {
        self.each().any(|statement| {
            let (first, rest) = next_word(statement);
            one_of(first, &["SET", "RESET", "PRAGMA"])
                && next_word(past_words(rest, &["GLOBAL", "SESSION", "LOCAL"]))
                    .0
                    .eq_ignore_ascii_case("home_directory")
        })
    }

    /// The targets of the `ATTACH` statements, in order.
    pub(crate) fn attach_targets(&self) -> Vec<AttachTarget> {
        self.each().filter_map(attach_target).collect()
    }

    /// The directories of the `IMPORT DATABASE 'dir'` and `PRAGMA import_database('dir')`
    /// statements: DuckDB runs the `schema.sql` and `load.sql` there as they stand, so their
    /// `ATTACH`es are the caller's too.
    pub(crate) fn import_dirs(&self) -> Vec<AttachTarget> {
        self.each()
            .filter_map(|statement| {
                let (first, rest) = next_word(statement);
                let (second, rest) = next_word(skip_blanks(rest));
                let rest = skip_blanks(rest);
                if first.eq_ignore_ascii_case("IMPORT") && second.eq_ignore_ascii_case("DATABASE") {
                    Some(literal_target(rest))
                } else if first.eq_ignore_ascii_case("PRAGMA")
                    && second.eq_ignore_ascii_case("import_database")
                {
                    Some(match rest.strip_prefix('(') {
                        Some(args) => literal_target(skip_blanks(args)),
                        None => AttachTarget::NotALiteral,
                    })
                } else {
                    None
                }
            })
            .collect()
    }
}

/// What an `ATTACH` statement of the caller's SQL opens.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum AttachTarget {
    /// A path written as a plain string literal (quotes undone).
    Literal(String),
    /// Anything else: an `E'…'` string, a parameter, an expression.
    NotALiteral,
}

/// The target of `statement` if it is an `ATTACH [DATABASE] [OR REPLACE] [IF NOT EXISTS] …`.
fn attach_target(statement: &str) -> Option<AttachTarget> {
    let (first, rest) = next_word(statement);
    if !first.eq_ignore_ascii_case("ATTACH") {
        return None;
    }
    Some(literal_target(past_words(
        rest,
        &["DATABASE", "OR", "REPLACE", "IF", "NOT", "EXISTS"],
    )))
}

/// Whether `word` is one of `words`, ignoring ASCII case as SQL keywords do.
fn one_of(word: &str, words: &[&str]) -> bool {
    words.iter().any(|w| w.eq_ignore_ascii_case(word))
}

/// `text` past its blanks, comments and any run of `words` (in any order and case): where
/// the first other word starts.
fn past_words<'t>(mut text: &'t str, words: &[&str]) -> &'t str {
    loop {
        text = skip_blanks(text);
        let (word, after) = next_word(text);
        if word.is_empty() || !one_of(word, words) {
            return text;
        }
        text = after;
    }
}

/// The plain string literal `rest` starts with, when it is the whole target (what follows it is
/// nothing, `;`, `(`, `)`, `,` or `AS`); otherwise [`AttachTarget::NotALiteral`].
fn literal_target(rest: &str) -> AttachTarget {
    if !rest.starts_with('\'') {
        return AttachTarget::NotALiteral;
    }
    let mut body = String::new();
    let mut chars = rest[1..].chars();
    loop {
        match chars.next() {
            // Unterminated: DuckDB's own error says so.
            None => return AttachTarget::NotALiteral,
            Some('\'') if chars.as_str().starts_with('\'') => {
                body.push('\'');
                chars.next();
            }
            // The literal must be the whole target: DuckDB takes an expression there too
            // (`'x' || '.db'`).
            Some('\'') => {
                let after = skip_blanks(chars.as_str());
                let (word, _) = next_word(after);
                let whole = after.is_empty()
                    || after.starts_with([';', '(', ')', ','])
                    || word.eq_ignore_ascii_case("AS");
                return if whole {
                    AttachTarget::Literal(body)
                } else {
                    AttachTarget::NotALiteral
                };
            }
            Some(c) => body.push(c),
        }
    }
}

/// The leading run of ASCII letters, digits and `_` of `text`, and what follows it.
fn next_word(text: &str) -> (&str, &str) {
    let end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    text.split_at(end)
}

/// `text` without its leading blanks and comments.
fn skip_blanks(mut text: &str) -> &str {
    loop {
        text = text.trim_start_matches(duckdb_blank);
        if let Some(after) = text.strip_prefix("--") {
            text = after.find(['\n', '\r']).map_or("", |end| &after[end..]);
        } else if text.starts_with("/*") {
            match block_comment_end(text) {
                Some(end) => text = &text[end..],
                None => return "",
            }
        } else {
            return text;
        }
    }
}

/// The byte offsets where the top-level statements of `sql` begin (past blanks and comments).
fn statement_starts(sql: &str) -> Vec<usize> {
    let b = sql.as_bytes();
    let mut starts = Vec::new();
    let mut in_statement = false;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b';' => {
                in_statement = false;
                i += 1;
                continue;
            }
            b' ' | b'\t' | b'\n' | b'\r' | b'\x0b' | b'\x0c' => {
                i += 1;
                continue;
            }
            0x80.. if sql.is_char_boundary(i) && sql[i..].starts_with(duckdb_blank) => {
                i += sql[i..].chars().next().map_or(1, char::len_utf8);
                continue;
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                i = sql[i..].find(['\n', '\r']).map_or(b.len(), |end| i + end);
                continue;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                match block_comment_end(&sql[i..]) {
                    Some(end) => i += end,
                    None => {
                        // Unterminated: text of its own for DuckDB to refuse, not nothing.
                        if !in_statement {
                            starts.push(i);
                        }
                        break;
                    }
                }
                continue;
            }
            _ => {}
        }
        if !in_statement {
            starts.push(i);
            in_statement = true;
        }
        match b[i] {
            b'\'' => {
                let escapes = i > 0
                    && matches!(b[i - 1], b'E' | b'e')
                    && (i < 2 || !(b[i - 2].is_ascii_alphanumeric() || b[i - 2] == b'_' || b[i - 2] >= 0x80));
                i = past_quoted(b, i, b'\'', escapes);
            }
            b'"' => i = past_quoted(b, i, b'"', false),
            // DuckDB 2.0 quotes identifiers in backticks too.
            b'`' => i = past_quoted(b, i, b'`', false),
            b'$' if i > 0
                && (b[i - 1].is_ascii_alphanumeric()
                    || matches!(b[i - 1], b'_' | b'$')
                    || b[i - 1] >= 0x80) =>
            {
                i += 1
            }
            b'$' => i = past_dollar_quoted(sql, i),
            _ => i += 1,
        }
    }
    starts
}

/// Whether DuckDB reads `c` as a blank: ASCII whitespace, the vertical tab, and the Unicode
/// spaces its parser turns into spaces first (no-break, en/em and other typographic spaces,
/// zero-width spaces, the ideographic space, the byte-order mark).
fn duckdb_blank(c: char) -> bool {
    c.is_ascii_whitespace()
        || matches!(
            c,
            '\x0b' | '\u{a0}' | '\u{2000}'
                ..='\u{200b}' | '\u{202f}' | '\u{205f}' | '\u{2060}' | '\u{3000}' | '\u{feff}'
        )
}

/// The index just past the quoted run opening at `start` (a doubled quote stays inside; with
/// `escapes`, so does a backslash-escaped character); the end of the text if it never closes.
fn past_quoted(b: &[u8], start: usize, quote: u8, escapes: bool) -> usize {
    let mut i = start + 1;
    while i < b.len() {
        if escapes && b[i] == b'\\' {
            i += 2;
        } else if b[i] == quote {
            if b.get(i + 1) == Some(&quote) {
                i += 2;
            } else {
                return i + 1;
            }
        } else {
            i += 1;
        }
    }
    b.len()
}

/// The index just past a dollar-quoted string (`$$…$$`, `$tag$…$tag$`) opening at `start`, or
/// just past the `$` when it opens none (a `$1` parameter).
fn past_dollar_quoted(sql: &str, start: usize) -> usize {
    let rest = &sql[start + 1..];
    let tag_len = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || !c.is_ascii()))
        .unwrap_or(rest.len());
    let tag = &rest[..tag_len];
    if !rest[tag_len..].starts_with('$') || tag.starts_with(|c: char| c.is_ascii_digit()) {
        return start + 1;
    }
    let delimiter = format!("${tag}$");
    let body = start + delimiter.len();
    match sql[body..].find(&delimiter) {
        Some(end) => body + end + delimiter.len(),
        None => sql.len(),
    }
}

/// The byte just past the block comment `text` starts with; DuckDB nests them.
fn block_comment_end(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let (mut depth, mut i) = (0usize, 0);
    while i + 1 < bytes.len() {
        match &bytes[i..i + 2] {
            b"/*" => {
                depth += 1;
                i += 2;
            }
            b"*/" => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => i += 1,
        }
    }
    None
}

/// Refuses an empty path (the file system would only say "No such file or directory").
pub(crate) fn require_path(op: &'static str, field: &'static str, path: &Path) -> Result<()> {
    if path.as_os_str().is_empty() {
        return Err(Error::invalid(
            op,
            field,
            "the path is empty; name a file or directory",
        ));
    }
    // SPEC §2: checked before any I/O (the OS would refuse it, as a missing file at best).
    if path.as_os_str().as_encoded_bytes().contains(&0) {
        return Err(Error::invalid(
            op,
            field,
            "the path contains a NUL byte; remove it",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_statements_are_told_from_one_with_semicolons_inside_it() {
        for one in [
            "SELECT 1",
            "SELECT 1;",
            "SELECT 1; -- done",
            "SELECT 1; /* done */ ;",
            "SELECT 'a;b', \"c;d\"",
            "SELECT 'it''s; fine'",
            "SELECT E'it\\'s; fine'",
            "SELECT $$a;b$$, $tag$x;y$tag$",
            "SELECT $1, ?",
            "SELECT 1 -- ; SELECT 2",
            "SELECT /* ; */ 1",
            "SELECT 'unterminated; SELECT 2",
            "; SELECT 1",
            "/* hdr */ ; SELECT 1",
            "-- x\n;\nSELECT 1",
            "SELECT a$$ AS x, 'y$$;z'",
            "SELECT $é$a;b$é$",
            "SELECT type'x;y'",
        ] {
            assert!(!Statements::of(one).several(), "{one}");
        }
        for several in [
            "SELECT 1; SELECT 2",
            "INSERT INTO t VALUES (1);INSERT INTO u VALUES (2)",
            "SELECT 'a;b'; DROP TABLE t",
            "SELECT $$x$$; SELECT 2",
            "SELECT 1; -- note\nSELECT 2",
            "CREATE TABLE t (a$$ INT); DROP TABLE u",
            "; SELECT 1; SELECT 2",
        ] {
            assert!(Statements::of(several).several(), "{several}");
        }
    }

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
        let home_like = path_literal("t", Path::new("~/x")).unwrap();
        assert!(
            home_like.starts_with("'/") && home_like.ends_with("/~/x'"),
            "{home_like}"
        );
        assert_eq!(path_literal("t", Path::new("/a/~b")).unwrap(), "'/a/~b'");
        assert!(require_path("t", "path", Path::new("")).is_err());
        let nul = require_path("t", "path", Path::new("a\0b")).unwrap_err();
        assert_eq!(
            (nul.kind(), nul.field()),
            (crate::ErrorKind::InvalidInput, Some("path"))
        );
        for empty in [
            "",
            " ;\n;",
            "-- c",
            "/* a */ -- b\n ;",
            "\r\n",
            "/* a /* b */ c */",
        ] {
            assert!(holds_no_statement(empty), "{empty:?}");
        }
        for some in [
            "SELECT 1",
            "-- c\nSELECT 1",
            "/* a */ x",
            "/* open",
            "/* a /* b */ x",
            "\u{a0}",
        ] {
            assert!(!holds_no_statement(some), "{some:?}");
        }
    }

    #[test]
    fn attach_targets_are_found_in_every_statement_and_only_there() {
        use AttachTarget::{Literal, NotALiteral};
        let lit = |p: &str| Literal(p.to_string());
        for (sql, expected) in [
            ("ATTACH 'a.db'", vec![lit("a.db")]),
            ("attach 'a.db' as x", vec![lit("a.db")]),
            (
                "ATTACH DATABASE IF NOT EXISTS 'a.db' AS x (READ_ONLY)",
                vec![lit("a.db")],
            ),
            ("ATTACH OR REPLACE 'a.db' AS x", vec![lit("a.db")]),
            ("ATTACH 'it''s.db';", vec![lit("it's.db")]),
            ("ATTACH 'a.db'(TYPE duckdb)", vec![lit("a.db")]),
            ("/* c */ -- d\n ATTACH /* e */ 'a.db'", vec![lit("a.db")]),
            (
                "SELECT 1; ATTACH 'a.db'; ATTACH 'b.db'",
                vec![lit("a.db"), lit("b.db")],
            ),
            ("ATTACH 'x' || '.db' AS y", vec![NotALiteral]),
            ("ATTACH getenv('P') AS y", vec![NotALiteral]),
            ("ATTACH E'a.db'", vec![NotALiteral]),
            ("ATTACH 'unterminated", vec![NotALiteral]),
            ("SELECT 'ATTACH ''a.db'''", vec![]),
            ("SELECT 1 -- ; ATTACH 'a.db'", vec![]),
            ("SELECT '; ATTACH ''a.db'''", vec![]),
            ("SELECT $$; ATTACH 'a.db'$$", vec![]),
            ("CREATE TABLE attach_log (x INT)", vec![]),
            ("DETACH x", vec![]),
            ("\u{feff}ATTACH 'a.db'", vec![lit("a.db")]),
            (
                "SELECT 1;\u{a0}\u{3000}ATTACH\u{2003}'a.db'\u{feff}AS x",
                vec![lit("a.db")],
            ),
            ("\x0bATTACH 'a.db'", vec![lit("a.db")]),
            ("SELECT 1 AS `'`; ATTACH 'a.db'; SELECT `'`", vec![lit("a.db")]),
            ("SELECT Ä'x'; ATTACH 'a.db'", vec![lit("a.db")]),
        ] {
            assert_eq!(Statements::of(sql).attach_targets(), expected, "{sql}");
        }
    }

    #[test]
    fn import_dirs_are_found_for_import_database_and_its_pragma() {
        use AttachTarget::{Literal, NotALiteral};
        assert_eq!(
            Statements::of("IMPORT DATABASE 'd'").import_dirs(),
            vec![Literal("d".into())]
        );
        assert_eq!(
            Statements::of("pragma import_database ( 'd' )").import_dirs(),
            vec![Literal("d".into())]
        );
        assert_eq!(
            Statements::of("IMPORT DATABASE getenv('D')").import_dirs(),
            vec![NotALiteral]
        );
        assert_eq!(
            Statements::of("SELECT 'IMPORT DATABASE ''d'''").import_dirs(),
            vec![]
        );
        assert!(!Statements::of("SELECT 1 AS `a;b`").several());
        assert!(!Statements::of("SELECT 1;\u{feff}\u{a0}").several());
        assert!(Statements::of("SELECT 1;\u{feff}SELECT 2").several());
    }
}
