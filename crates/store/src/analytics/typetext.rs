//! Rewriting a column type's text as DuckDB prints it.
//!
//! Two rewrites, each for a type DuckDB cannot carry through a file:
//! - **DuckDB's `NULL` type → `VARCHAR`.** A JSON key null in every record, or a Parquet column
//!   of Arrow's `null` type, gets DuckDB's `NULL` type (spelled `"NULL"`), also deep inside a
//!   list or struct (`STRUCT(x "NULL")[]`), and no later value can ever be cast to it.
//! - **Fixed-size arrays → lists.** DuckDB writes a NULL `INTEGER[3]` into Parquet with
//!   repetition levels for the three slots it does not hold, which other readers (pyarrow)
//!   refuse as corrupt (duckdb/duckdb#24731). Parquet has no fixed-size list anyway: the file
//!   reads back as `INTEGER[]` either way.
//!
//! The type text is parsed, not searched: a struct field may itself be named `NULL`, which
//! DuckDB spells the same way, so only a `"NULL"` in a type's position is rewritten.
//!
//! The grammar is what `duckdb_columns().data_type` prints: a type is a `"NULL"`, a quoted
//! name, or words (`TIMESTAMP WITH TIME ZONE`), then arguments in parentheses and any number of
//! `[]`/`[n]` suffixes. `STRUCT(…)` and `UNION(…)` hold `name type` fields; `MAP(…)` holds two
//! types; any other arguments (`DECIMAL(18,3)`) are copied as they are.

/// The type with every `NULL` type replaced by `VARCHAR`; `None` when it holds none, or when
/// the text is not understood (it is then left alone).
pub(crate) fn without_null_type(data_type: &str) -> Option<String> {
    rewrite(data_type, Rewrite::NullToVarchar)
}

/// The type with every fixed-size array (`[n]`) made a list (`[]`), however deep; `None` when
/// it holds none, or when the text is not understood.
pub(crate) fn with_lists_for_arrays(data_type: &str) -> Option<String> {
    if !data_type.contains('[') {
        return None;
    }
    rewrite(data_type, Rewrite::ArraysToLists)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Rewrite {
    NullToVarchar,
    ArraysToLists,
}

fn rewrite(data_type: &str, rewrite: Rewrite) -> Option<String> {
    let mut parser = Parser {
        text: data_type,
        at: 0,
        rewrite,
        changed: false,
    };
    let rewritten = parser.ty()?;
    (parser.at == data_type.len() && parser.changed).then_some(rewritten)
}

/// Where the arguments at the start of `text` end: the `)` that closes them, past `'…'`
/// strings (an ENUM's labels, `''` for a quote) and nested parentheses.
fn closing_paren(text: &str) -> Option<usize> {
    let (mut depth, mut quoted) = (0usize, false);
    for (i, c) in text.char_indices() {
        match c {
            // A doubled quote closes and reopens: the state comes back as it was.
            '\'' => quoted = !quoted,
            _ if quoted => {}
            '(' => depth += 1,
            ')' if depth == 0 => return Some(i),
            ')' => depth -= 1,
            _ => {}
        }
    }
    None
}

struct Parser<'a> {
    text: &'a str,
    at: usize,
    rewrite: Rewrite,
    changed: bool,
}

impl<'a> Parser<'a> {
    fn rest(&self) -> &'a str {
        &self.text[self.at..]
    }

    fn eat(&mut self, token: &str) -> bool {
        if self.rest().starts_with(token) {
            self.at += token.len();
            true
        } else {
            false
        }
    }

    /// A `"quoted"` name (with `""` for a quote), as written.
    fn quoted(&mut self) -> Option<String> {
        let rest = self.rest();
        if !rest.starts_with('"') {
            return None;
        }
        let mut end = 1;
        loop {
            let next = rest[end..].find('"')? + end;
            if rest[next + 1..].starts_with('"') {
                end = next + 2;
            } else {
                self.at += next + 1;
                return Some(rest[..next + 1].to_string());
            }
        }
    }

    /// A bare word: letters, digits and `_`.
    fn word(&mut self) -> Option<String> {
        let rest = self.rest();
        let len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        (len > 0).then(|| {
            self.at += len;
            rest[..len].to_string()
        })
    }

    fn ty(&mut self) -> Option<String> {
        let mut out = if self.rewrite == Rewrite::NullToVarchar && self.rest().starts_with("\"NULL\"") {
            self.at += "\"NULL\"".len();
            self.changed = true;
            "VARCHAR".to_string()
        } else if self.rest().starts_with('"') {
            self.quoted()?
        } else {
            let first = self.word()?;
            let kind = first.to_ascii_uppercase();
            let mut name = first;
            // More words of the same type (`TIMESTAMP WITH TIME ZONE`), up to what ends it.
            while self.rest().starts_with(' ')
                && self.rest()[1..].starts_with(|c: char| c.is_ascii_alphabetic())
            {
                self.at += 1;
                name.push(' ');
                name.push_str(&self.word()?);
            }
            if self.eat("(") {
                let args = match kind.as_str() {
                    "STRUCT" | "UNION" => self.fields()?,
                    "MAP" => {
                        let key = self.ty()?;
                        if !self.eat(", ") {
                            return None;
                        }
                        format!("{key}, {}", self.ty()?)
                    }
                    _ => {
                        let close = closing_paren(self.rest())?;
                        let args = self.rest()[..close].to_string();
                        self.at += close;
                        args
                    }
                };
                if !self.eat(")") {
                    return None;
                }
                name = format!("{name}({args})");
            }
            name
        };
        while self.rest().starts_with('[') {
            let close = self.rest().find(']')?;
            if self.rewrite == Rewrite::ArraysToLists && close > 1 {
                out.push_str("[]");
                self.changed = true;
            } else {
                out.push_str(&self.rest()[..=close]);
            }
            self.at += close + 1;
        }
        Some(out)
    }

    /// `name type, name type, …` of a STRUCT or UNION, up to its `)`.
    fn fields(&mut self) -> Option<String> {
        let mut out = Vec::new();
        loop {
            let name = if self.rest().starts_with('"') {
                self.quoted()?
            } else {
                self.word()?
            };
            if !self.eat(" ") {
                return None;
            }
            out.push(format!("{name} {}", self.ty()?));
            if !self.eat(", ") {
                return Some(out.join(", "));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{with_lists_for_arrays, without_null_type};

    #[test]
    fn null_types_become_varchar_wherever_they_stand() {
        for (from, to) in [
            ("\"NULL\"", "VARCHAR"),
            ("\"NULL\"[]", "VARCHAR[]"),
            ("\"NULL\"[][]", "VARCHAR[][]"),
            ("STRUCT(x \"NULL\")", "STRUCT(x VARCHAR)"),
            ("STRUCT(x \"NULL\")[]", "STRUCT(x VARCHAR)[]"),
            (
                "STRUCT(\"NULL\" \"NULL\", y BIGINT)",
                "STRUCT(\"NULL\" VARCHAR, y BIGINT)",
            ),
            (
                "STRUCT(\"we\"\"ird\" \"NULL\"[], t TIMESTAMP WITH TIME ZONE, d DECIMAL(18,3))",
                "STRUCT(\"we\"\"ird\" VARCHAR[], t TIMESTAMP WITH TIME ZONE, d DECIMAL(18,3))",
            ),
            ("MAP(VARCHAR, \"NULL\")", "MAP(VARCHAR, VARCHAR)"),
            (
                "STRUCT(a STRUCT(b \"NULL\"[3]))",
                "STRUCT(a STRUCT(b VARCHAR[3]))",
            ),
        ] {
            assert_eq!(without_null_type(from).as_deref(), Some(to), "{from}");
        }
    }

    #[test]
    fn a_field_named_null_is_not_a_null_type() {
        assert_eq!(without_null_type("STRUCT(\"NULL\" BIGINT)"), None);
        assert_eq!(without_null_type("STRUCT(\"x\"\"NULL\"\"y\" BIGINT)"), None);
        assert_eq!(without_null_type("BIGINT"), None);
        assert_eq!(without_null_type("VARCHAR[]"), None);
    }

    #[test]
    fn text_it_does_not_understand_is_left_alone() {
        for odd in [
            "",
            "STRUCT(",
            "STRUCT(x \"NULL\"",
            "\"NULL\" junk",
            "MAP(\"NULL\")",
        ] {
            assert_eq!(without_null_type(odd), None, "{odd}");
        }
    }

    #[test]
    fn fixed_size_arrays_become_lists_wherever_they_stand() {
        for (from, to) in [
            ("INTEGER[3]", "INTEGER[]"),
            ("INTEGER[3][2]", "INTEGER[][]"),
            ("INTEGER[][2]", "INTEGER[][]"),
            ("STRUCT(a DOUBLE[4], b VARCHAR)", "STRUCT(a DOUBLE[], b VARCHAR)"),
            ("MAP(VARCHAR, BIGINT[2])[]", "MAP(VARCHAR, BIGINT[])[]"),
            ("STRUCT(\"x[3]\" INTEGER[3])", "STRUCT(\"x[3]\" INTEGER[])"),
            ("DECIMAL(18,3)[2]", "DECIMAL(18,3)[]"),
            ("ENUM('x)y', 'b')[2]", "ENUM('x)y', 'b')[]"),
            ("ENUM('it''s', '(')[2]", "ENUM('it''s', '(')[]"),
        ] {
            assert_eq!(with_lists_for_arrays(from).as_deref(), Some(to), "{from}");
        }
        for unchanged in ["INTEGER", "INTEGER[]", "STRUCT(\"a[2]\" INTEGER)", "\"NULL\"[3]x"] {
            assert_eq!(with_lists_for_arrays(unchanged), None, "{unchanged}");
        }
        // Each rewrite leaves the other's types alone.
        assert_eq!(
            with_lists_for_arrays("\"NULL\"[3]").as_deref(),
            Some("\"NULL\"[]")
        );
        assert_eq!(without_null_type("\"NULL\"[3]").as_deref(), Some("VARCHAR[3]"));
    }
}
