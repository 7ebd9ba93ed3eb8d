//! What an export reads: a table name, or the text of exactly one read-only `SELECT`, checked
//! by DuckDB's own parser before it is embedded in a `COPY (…)`.

use duckdb::Connection;

use super::{require_table, table_exists_on};
use crate::error::{Error, Result};

/// What an export reads, as the inside of its `COPY (…)`.
pub(crate) struct Source {
    /// `SELECT * FROM "table"`, or the query itself.
    pub sql: String,
    /// Whether that reads a base table (not a query, not a view): only then can its columns be
    /// read without binding a query a second time.
    pub base_table: bool,
}

/// `SELECT * FROM "table"`, or the query itself when it reads like one (see [`single_select`])
/// and no table has that name (a table named `values` is a table).
pub(crate) fn source_sql(op: &'static str, conn: &Connection, table_or_query: &str) -> Result<Source> {
    if looks_like_query(table_or_query) && !table_exists_on(op, conn, table_or_query)? {
        return Ok(Source {
            sql: single_select(op, conn, table_or_query)?,
            base_table: false,
        });
    }
    let table = require_table(op, conn, table_or_query)?;
    Ok(Source {
        sql: format!("SELECT * FROM {}", table.sql),
        base_table: !table.is_view,
    })
}

/// Whether `text` is a query rather than a table name: its first word, after blanks and SQL
/// comments, is a keyword that starts a query (so a table named `selection` stays a table), or
/// it opens with a parenthesis.
pub(super) fn looks_like_query(text: &str) -> bool {
    let mut rest = text;
    loop {
        rest = rest.trim_start();
        if let Some(comment) = rest.strip_prefix("--") {
            rest = comment.split_once('\n').map_or("", |(_, after)| after);
        } else if let Some(comment) = rest.strip_prefix("/*") {
            rest = comment.split_once("*/").map_or("", |(_, after)| after);
        } else {
            break;
        }
    }
    if rest.starts_with('(') {
        return true;
    }
    let word: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect::<String>()
        .to_ascii_uppercase();
    let ends_word = rest[word.len()..]
        .chars()
        .next()
        .is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
    ends_word
        && [
            "SELECT",
            "WITH",
            "FROM",
            "VALUES",
            "TABLE",
            "DESCRIBE",
            "SUMMARIZE",
            "PIVOT",
            "UNPIVOT",
        ]
        .contains(&word.as_str())
}

/// The query as the inside of `COPY (…)`, once DuckDB's own parser has confirmed that it is
/// exactly one `SELECT` statement: text that closes the parenthesis and appends statements of
/// its own (`SELECT 1) TO '…'; DROP TABLE t; COPY (SELECT 1`) is refused, never run.
/// `json_serialize_sql` parses without executing and serialises only `SELECT` statements. The
/// body actually embedded ([`query_body`], trailing `;` and comments cut) must parse to the
/// very same statement, so nothing of it can reach outside the parentheses.
fn single_select(op: &'static str, conn: &Connection, query: &str) -> Result<String> {
    let refuse = |why: String| Error::invalid(op, "query", why);
    let (body, depth) = scan_query(query);
    // DuckDB's serialiser recurses once per nesting level, deep enough to overflow the stack
    // (a crash, not an error) on tens of thousands of nested subqueries.
    if depth > MAX_QUERY_DEPTH {
        return Err(refuse(format!(
            "the query nests parentheses {depth} levels deep, over {MAX_QUERY_DEPTH}; \
             materialise part of it first"
        )));
    }
    let whole = parse_query(op, conn, query)?;
    if whole.error {
        return Err(refuse(format!(
            "export takes a table name or one SELECT statement ({}); \
             materialise anything else first, e.g. CREATE TABLE p AS PIVOT …",
            whole.message
        )));
    }
    if whole.statements != 1 {
        return Err(refuse(format!(
            "export takes one SELECT statement, this text holds {}",
            whole.statements
        )));
    }
    if let Some(node) = whole.writing_nodes.first() {
        return Err(refuse(format!(
            "export runs a query that only reads; this one holds a {node} (e.g. a COPY or a \
             DELETE … RETURNING inside WITH); run that statement separately"
        )));
    }
    if let Some(function) = whole.side_effect_functions.first() {
        return Err(refuse(format!(
            "export runs a query that only reads; {function}() changes the session or runs SQL \
             of its own; call it separately"
        )));
    }
    if parse_query(op, conn, &body)?.tree != whole.tree {
        return Err(refuse(
            "could not isolate the statement from its trailing comments; remove them".to_string(),
        ));
    }
    Ok(body)
}

/// Deepest parenthesis nesting accepted in an exported query.
const MAX_QUERY_DEPTH: usize = 1000;

/// Functions a read-only transaction does not stop: `json_execute_serialized_sql` runs its SQL
/// on a connection of its own, the others change settings, logs, the seed or a temporary
/// sequence. Export queries may not call them.
const SIDE_EFFECT_FUNCTIONS: [&str; 11] = [
    "json_execute_serialized_sql",
    "enable_logging",
    "disable_logging",
    "truncate_duckdb_logs",
    "enable_profiling",
    "disable_profiling",
    "checkpoint",
    "force_checkpoint",
    "setseed",
    "nextval",
    "setvariable",
];

/// What DuckDB's parser says about a query, extracted by DuckDB itself (its JSON reader has no
/// nesting limit, unlike a recursive parse of the tree here).
struct ParsedQuery {
    error: bool,
    message: String,
    statements: i64,
    /// Query nodes other than plain reads (COPY, INSERT, DELETE, UPDATE, …).
    writing_nodes: Vec<String>,
    side_effect_functions: Vec<String>,
    /// The serialised statements, to compare two texts.
    tree: String,
}

/// `json_serialize_sql` parses without executing and serialises only SELECT statements. DuckDB
/// 2.0 also parses `WITH c AS (COPY … TO 'file') SELECT …` and `WITH d AS (DELETE …
/// RETURNING *) …` as one SELECT, and a read-only transaction stops neither a file write nor a
/// change to a temporary table: query nodes are the objects whose `type` ends in `_NODE`, and
/// only plain ones pass.
fn parse_query(op: &'static str, conn: &Connection, text: &str) -> Result<ParsedQuery> {
    let denied = SIDE_EFFECT_FUNCTIONS
        .iter()
        .map(|f| format!("'{f}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "WITH p AS (SELECT json_serialize_sql(?) AS j)
         SELECT coalesce(json_extract_string(j, '$.error') = 'true', true),
                coalesce(json_extract_string(j, '$.error_message'), 'unknown parser error'),
                coalesce(json_array_length(j, '$.statements'), 0),
                array_to_string(list_filter(
                    regexp_extract_all(j, '\"type\":\"([A-Z_]+_NODE)\"', 1),
                    lambda x: x NOT IN ('SELECT_NODE', 'SET_OPERATION_NODE', 'RECURSIVE_CTE_NODE', 'CTE_NODE')), ','),
                array_to_string(list_filter(
                    regexp_extract_all(j, '\"function_name\":\"([A-Za-z_]+)\"', 1),
                    lambda x: lower(x) IN ({denied})), ','),
                coalesce(CAST(json_extract(j, '$.statements') AS VARCHAR), '')
         FROM p"
    );
    let split = |list: String| -> Vec<String> {
        list.split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    };
    conn.query_row(&sql, [text], |r| {
        Ok(ParsedQuery {
            error: r.get(0)?,
            message: r.get(1)?,
            statements: r.get(2)?,
            writing_nodes: split(r.get(3)?),
            side_effect_functions: split(r.get(4)?),
            tree: r.get(5)?,
        })
    })
    .map_err(|e| Error::duckdb(op, "parse the query", e))
}

/// A query as the inside of `COPY (…)`: cut after its last token that is not a `;`, a comment
/// or a blank (so `SELECT 1; -- done` works), and ending on a new line so a comment inside
/// cannot swallow the closing parenthesis. Quoted strings and identifiers are skipped whole.
#[cfg(test)]
fn query_body(query: &str) -> String {
    scan_query(query).0
}

/// [`query_body`]'s text, and the deepest nesting of parentheses outside strings and comments.
fn scan_query(query: &str) -> (String, usize) {
    let bytes = query.as_bytes();
    let (mut i, mut end) = (0, 0);
    let (mut depth, mut max_depth) = (0usize, 0usize);
    while i < bytes.len() {
        let word_before = i > 0 && (bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        match bytes[i] {
            // E'…': backslash escapes, so `\'` does not close it.
            b'E' | b'e' if !word_before && bytes.get(i + 1) == Some(&b'\'') => {
                i += 2;
                // To the closing quote: `\x` and a doubled `''` are escapes inside.
                while i < bytes.len() {
                    match bytes[i] {
                        b'\\' => i += 2,
                        b'\'' if bytes.get(i + 1) == Some(&b'\'') => i += 2,
                        b'\'' => break,
                        _ => i += 1,
                    }
                }
                i += 1;
                end = i.min(bytes.len());
                continue;
            }
            // $$…$$ and $tag$…$tag$ (a `$1` parameter has no closing `$`).
            b'$' if !word_before && dollar_tag(&bytes[i..]).is_some() => {
                let tag_len = dollar_tag(&bytes[i..]).unwrap_or(1);
                let tag = &bytes[i..i + tag_len];
                i += tag_len;
                while i < bytes.len() && !bytes[i..].starts_with(tag) {
                    i += 1;
                }
                i = (i + tag_len).min(bytes.len());
                end = i;
                continue;
            }
            quote @ (b'\'' | b'"') => {
                // To the closing quote (a doubled quote is an escaped one and simply reopens).
                i += 1;
                while i < bytes.len() && bytes[i] != quote {
                    i += 1;
                }
                i += 1;
                end = i.min(bytes.len());
                continue;
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' && bytes[i] != b'\r' {
                    i += 1;
                }
                continue;
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i < bytes.len() && !(bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/')) {
                    i += 1;
                }
                i = (i + 2).min(bytes.len());
                continue;
            }
            b';' => {}
            b if b.is_ascii_whitespace() => {}
            b'(' => {
                depth += 1;
                max_depth = max_depth.max(depth);
                end = i + 1;
            }
            b')' => {
                depth = depth.saturating_sub(1);
                end = i + 1;
            }
            _ => end = i + 1,
        }
        i += 1;
    }
    // `end` is just past an ASCII byte or a closing quote, or at the end: a char boundary.
    (format!("{}\n", query.get(..end).unwrap_or(query)), max_depth)
}

/// The length of the dollar-quote opener at the start of `text` (`$$`, `$tag$`), if it is one.
fn dollar_tag(text: &[u8]) -> Option<usize> {
    let body = text.get(1..)?;
    let tag = body
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
        .count();
    let starts_like_a_tag = body.first().is_some_and(|b| !b.is_ascii_digit());
    (starts_like_a_tag && body.get(tag) == Some(&b'$')).then_some(tag + 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_told_from_table_names_by_their_first_word() {
        for query in [
            "SELECT 1",
            "  select * from t",
            "WITH x AS (SELECT 1) SELECT * FROM x",
            "FROM t",
            "(SELECT 1)",
            "VALUES (1)",
            "TABLE t",
            "DESCRIBE t",
            "SUMMARIZE t",
            "-- note\nSELECT 1",
            "/* note */ SELECT 1",
        ] {
            assert!(looks_like_query(query), "{query:?}");
        }
        for table in [
            "selection",
            "withdrawals",
            "from_x",
            "values_2024",
            "t",
            "Select1",
            "-- SELECT",
        ] {
            assert!(!looks_like_query(table), "{table:?}");
        }
    }

    #[test]
    fn query_bodies_lose_trailing_semicolons_and_end_on_a_new_line() {
        assert_eq!(query_body("SELECT 1;  "), "SELECT 1\n");
        assert_eq!(query_body("SELECT 1 -- tail"), "SELECT 1\n");
        assert_eq!(query_body("SELECT 1; -- done"), "SELECT 1\n");
        assert_eq!(query_body("SELECT 1; ;\n/* end */"), "SELECT 1\n");
        assert_eq!(query_body("SELECT ';' AS s; "), "SELECT ';' AS s\n");
        assert_eq!(query_body("SELECT 'it''s' -- c"), "SELECT 'it''s'\n");
        assert_eq!(query_body("SELECT \"a;b\" FROM t;"), "SELECT \"a;b\" FROM t\n");
        assert_eq!(query_body("SELECT 'é'"), "SELECT 'é'\n");
        assert_eq!(query_body("SELECT 'open"), "SELECT 'open\n");
        assert_eq!(query_body("SELECT $$--$$ AS a; -- c"), "SELECT $$--$$ AS a\n");
        assert_eq!(query_body("SELECT $t$;$$--$t$;"), "SELECT $t$;$$--$t$\n");
        assert_eq!(query_body("SELECT E'\\'--' AS a; -- c"), "SELECT E'\\'--' AS a\n");
        assert_eq!(query_body("SELECT 'a\\' -- c"), "SELECT 'a\\'\n");
        assert_eq!(query_body("SELECT $1, x$y; --"), "SELECT $1, x$y\n");
        assert_eq!(
            query_body("SELECT E'it''s \\' -- x' AS a; -- c"),
            "SELECT E'it''s \\' -- x' AS a\n"
        );
    }
}
