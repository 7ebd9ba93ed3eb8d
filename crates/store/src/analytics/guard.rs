//! Checks on caller SQL and parameters before DuckDB sees them: NUL bytes, statement counts,
//! `ATTACH`es of files this process already has open, and nesting too deep to convert safely.

use std::path::Path;

use duckdb::Connection;

use super::{Value, claims, sql};
use crate::error::{Error, Result};

/// SQL text cannot hold a NUL: it passes to DuckDB as a C string (duckdb-rs would fail with
/// "nul byte found"). A NUL inside a value goes as a parameter instead.
pub(crate) fn refuse_nul(op: &'static str, sql: &str) -> Result<()> {
    match sql.find('\0') {
        Some(at) => Err(Error::invalid(
            op,
            "sql",
            format!("the SQL text holds a NUL character (byte {at}); pass such a value as a parameter"),
        )),
        None => Ok(()),
    }
}

/// Refuses caller SQL that would `ATTACH` a database file this process already has open
/// through an [`Analytics`] handle (under any name): a second DuckDB instance on the file
/// overwrites the first one's checkpoints, and its `DETACH` closes a descriptor of the file,
/// which drops the process's OS lock on it while the first handle still writes. The
/// `schema.sql` and `load.sql` an `IMPORT DATABASE` would run are checked too. A target the
/// store cannot read as a path (not a plain string literal) is refused, as it cannot be
/// checked.
pub(crate) fn refuse_attach_of_open_files(
    op: &'static str,
    conn: &Connection,
    sql: &sql::Statements<'_>,
) -> Result<()> {
    refuse_attaches_in(op, conn, sql, sql, true)
}

/// Checks the `ATTACH`es of `sql`: the caller's text (`caller_text`), or a script an
/// `IMPORT DATABASE` of `caller` would run.
fn refuse_attaches_in(
    op: &'static str,
    conn: &Connection,
    sql: &sql::Statements<'_>,
    caller: &sql::Statements<'_>,
    caller_text: bool,
) -> Result<()> {
    let unchecked = |what: &str| {
        Error::invalid(
            op,
            "sql",
            format!(
                "{what}, which the store cannot check against the databases this process has \
                 open; write the path as a plain string literal ('dir/file.duckdb'), and change \
                 home_directory in a call of its own"
            ),
        )
    };
    let targets = sql.attach_targets();
    let imports = if caller_text {
        sql.import_dirs()
    } else {
        Vec::new()
    };
    if targets.is_empty() && imports.is_empty() {
        return Ok(());
    }
    // DuckDB expands `~` to its `home_directory` setting, else $HOME; a batch that changes the
    // setting before it attaches or imports a `~` path could not be checked.
    let mut homes: Vec<String> = std::env::var("HOME").into_iter().collect();
    if let Ok(home) = conn.query_row("SELECT current_setting('home_directory')::VARCHAR", [], |r| {
        r.get::<_, String>(0)
    }) && !home.is_empty()
    {
        homes.push(home);
    }
    let home_changes = caller.set_home_directory();
    let readings = |target: &str| -> Result<Vec<String>> {
        let (readings, from_home) = duckdb_readings(target, &homes);
        if from_home && home_changes {
            return Err(unchecked(
                "a ~ path follows a change of home_directory in the same batch",
            ));
        }
        Ok(readings)
    };
    for target in targets {
        let sql::AttachTarget::Literal(path) = target else {
            return Err(unchecked(
                "ATTACH names its file with something other than a plain string literal",
            ));
        };
        if readings(&path)?
            .iter()
            .any(|form| !form.is_empty() && claims::is_open(Path::new(form)))
        {
            let source = if caller_text {
                ""
            } else {
                " (in a file IMPORT DATABASE runs)"
            };
            return Err(Error::invalid(
                op,
                "sql",
                format!(
                    "ATTACH {path:?}{source}: this process already has that database open \
                     through another Analytics handle, and a second DuckDB instance on one file \
                     overwrites the other's checkpoints (its DETACH would also drop the \
                     process's lock on the file); query it through the handle that has it open, \
                     or close that first"
                ),
            ));
        }
    }
    for dir in imports {
        let sql::AttachTarget::Literal(dir) = dir else {
            return Err(unchecked(
                "IMPORT DATABASE names its directory with something other than a plain string literal",
            ));
        };
        for reading in readings(&dir)? {
            for script in ["schema.sql", "load.sql"] {
                // A script that cannot be read is DuckDB's to report.
                if let Ok(text) = std::fs::read_to_string(Path::new(&reading).join(script)) {
                    refuse_attaches_in(op, conn, &sql::Statements::of(&text), caller, false)?;
                }
            }
        }
    }
    Ok(())
}

/// Every reading DuckDB may give a path it is handed: as written (resolved against the working
/// directory), past a type prefix (`duckdb:file.db`), as a `file:` URL, and with a leading `~`
/// replaced by each of `homes` (DuckDB appends the rest to the home directory as text); and
/// whether one of them came from a home directory.
fn duckdb_readings(target: &str, homes: &[String]) -> (Vec<String>, bool) {
    let mut forms = vec![target.to_string()];
    if let Some((scheme, rest)) = target.split_once(':')
        && !scheme.is_empty()
        && !scheme.eq_ignore_ascii_case("file")
        && scheme.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        forms.push(rest.to_string());
    }
    for form in forms.clone() {
        if let Some(rest) = form.strip_prefix("file:") {
            let path = ["//localhost/", "///", "//"]
                .iter()
                .find_map(|lead| rest.strip_prefix(lead))
                .map_or_else(|| rest.to_string(), |p| format!("/{p}"));
            forms.push(path);
        }
    }
    let mut from_home = false;
    for form in forms.clone() {
        if let Some(rest) = form.strip_prefix('~') {
            from_home = true;
            forms.extend(homes.iter().map(|home| format!("{home}{rest}")));
        }
    }
    (forms, from_home)
}

/// How deeply lists and structs may nest in a parameter: the conversion recurses per level,
/// and DuckDB's list statistics take seconds from a few hundred levels on.
pub(crate) const MAX_PARAM_DEPTH: usize = 64;

/// How deeply lists, structs and maps may nest in a result column the store reads: reading
/// Arrow data recurses per level (about 2 KiB of stack each), so a result nested a thousand
/// levels deep would overflow a 2 MiB thread stack, an abort rather than an error.
pub(crate) const MAX_RESULT_DEPTH: usize = 128;

/// The refusal of a parameter nested more than [`MAX_PARAM_DEPTH`] levels deep (here, and in
/// the Service's conversion of JSON parameters, which stops there too).
pub(crate) fn params_too_deep(op: &'static str) -> Error {
    Error::invalid(
        op,
        "params",
        format!(
            "a parameter nests lists or structs (JSON arrays or objects) more than \
             {MAX_PARAM_DEPTH} levels deep; flatten it, or pass it as JSON text and parse it in \
             SQL (json(?))"
        ),
    )
}

/// Refuses parameters nesting lists or structs more than [`MAX_PARAM_DEPTH`] levels deep.
pub(crate) fn refuse_deep_params(op: &'static str, params: &[Value]) -> Result<()> {
    let mut pending: Vec<(&Value, usize)> = params.iter().map(|p| (p, 0)).collect();
    while let Some((value, depth)) = pending.pop() {
        if depth > MAX_PARAM_DEPTH {
            return Err(params_too_deep(op));
        }
        match value {
            Value::List(items) => pending.extend(items.iter().map(|v| (v, depth + 1))),
            Value::Struct(fields) => pending.extend(fields.iter().map(|(_, v)| (v, depth + 1))),
            _ => {}
        }
    }
    Ok(())
}

/// Refuses a result column whose type nests more than [`MAX_RESULT_DEPTH`] levels deep.
pub(crate) fn refuse_deep_result(
    op: &'static str,
    column: &str,
    data_type: &duckdb::arrow::datatypes::DataType,
) -> Result<()> {
    use duckdb::arrow::datatypes::DataType as T;
    let mut pending = vec![(data_type, 0usize)];
    while let Some((t, depth)) = pending.pop() {
        if depth > MAX_RESULT_DEPTH {
            return Err(Error::invalid(
                op,
                "sql",
                format!(
                    "result column {column:?} nests lists, structs or maps more than \
                     {MAX_RESULT_DEPTH} levels deep, more than the store reads; cast it to \
                     VARCHAR or JSON in the query (`column::JSON`)"
                ),
            ));
        }
        match t {
            T::List(f)
            | T::LargeList(f)
            | T::ListView(f)
            | T::LargeListView(f)
            | T::FixedSizeList(f, _)
            | T::Map(f, _) => pending.push((f.data_type(), depth + 1)),
            T::Struct(fields) => pending.extend(fields.iter().map(|f| (f.data_type(), depth + 1))),
            T::Union(fields, _) => pending.extend(fields.iter().map(|(_, f)| (f.data_type(), depth + 1))),
            T::Dictionary(_, values) => pending.push((values, depth)),
            T::RunEndEncoded(_, values) => pending.push((values.data_type(), depth)),
            _ => {}
        }
    }
    Ok(())
}

/// Prepares one statement of the caller's SQL; text without one is refused up front (DuckDB
/// would only say "Unknown error code").
pub(crate) fn prepare<'c>(
    op: &'static str,
    conn: &'c Connection,
    sql: &str,
) -> Result<duckdb::Statement<'c>> {
    refuse_nul(op, sql)?;
    let statements = sql::Statements::of(sql);
    refuse_attach_of_open_files(op, conn, &statements)?;
    if sql::holds_no_statement(sql) {
        return Err(Error::invalid(
            op,
            "sql",
            "the SQL text holds no statement (only blanks, comments or `;`); pass a statement",
        ));
    }
    if statements.several() {
        return Err(Error::invalid(
            op,
            "sql",
            "the SQL text holds more than one statement; pass one (exec_batch runs several, \
             and BEGIN … COMMIT around them makes them all or nothing)",
        ));
    }
    conn.prepare(sql).map_err(|e| Error::duckdb(op, "prepare", e))
}
