//! The types a file appended to an existing table is read with.
//!
//! DuckDB's CSV and JSON readers guess each column's type from the file (`yes` → BOOLEAN,
//! `0x10` → 16, `01/02/2024` → a DATE), and the CSV reader takes the target table's types
//! instead only when the file has exactly the table's columns. A file naming a subset (a
//! scoring table's `scored_at` left to its default, say) had its text read with the guesses and
//! then cast into VARCHAR columns: `yes` was stored as `true`, silently. So a CSV append names
//! each file column's table type in `read_csv(…, types = {…})`: values are then read as what
//! the table holds, and one that does not fit fails with the CSV reader's own error, naming its
//! line.
//!
//! JSON is different: its reader's `columns = {…}` replaces detection entirely, dropping any
//! key it does not list, so it is only used when the file's keys are known to be all of them
//! (read from every record, see [`json_columns`]), and to read as text the keys DuckDB would
//! misread as dates ([`keys_misread_as_dates`]).

use duckdb::Connection;

/// A relation's columns as DuckDB describes them: (name, type).
pub(super) type Columns = Vec<(String, String)>;

/// The columns of a relation (what may follow `FROM`: a reader call, a quoted table name).
/// Describing a reader runs its detection, over a sample or, when it types keys from every
/// record, over the whole file: an import describes each reader once.
pub(super) fn columns(conn: &Connection, relation: &str) -> duckdb::Result<Columns> {
    let mut stmt = conn.prepare(&format!("DESCRIBE SELECT * FROM {relation}"))?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
    rows.collect()
}

/// The `types = {…}` argument for reading a CSV file whose columns are `file` into a table
/// whose columns are `target`: each file column the append fills (by name, as `INSERT … BY
/// NAME` matches, or `by_position`) mapped to that column's type, for the plain types the
/// reader can parse text into. `None` when no column qualifies (the reader's guesses then
/// stand, as before).
pub(super) fn csv_types(
    file: &[(String, String)],
    target: &[(String, String)],
    by_position: bool,
) -> Option<String> {
    let entries = file.iter().enumerate().filter_map(|(i, (name, _))| {
        let column_type = if by_position {
            &target.get(i)?.1
        } else {
            same_name(target, name)?
        };
        entry(name, column_type)
    });
    struct_literal(entries.collect())
}

/// The `columns = {…}` argument for reading a JSON file whose keys are `file` (typed from
/// *every* record, so they are all of them) into a table whose columns are `target`: every key
/// with its table column's type. `None` unless every key names a column of a plain type (a
/// key the table lacks must still fail the append, not be dropped).
pub(super) fn json_columns(file: &[(String, String)], target: &[(String, String)]) -> Option<String> {
    if renamed_keys(file) {
        return None;
    }
    let entries: Option<Vec<String>> = file
        .iter()
        .map(|(name, guessed)| entry(name, read_as(guessed, same_name(target, name)?)))
        .collect();
    struct_literal(entries?)
}

/// The type a JSON key DuckDB typed `guessed` is read as when it goes into a column of type
/// `column`: the column's, except that a key guessed TIMESTAMP WITH TIME ZONE (strings with a
/// UTC offset) going into a TIMESTAMP column keeps its guess. DuckDB's JSON reader then
/// converts each value to UTC (`10:00+02:00` → `08:00`), as the import does when it reads
/// with DuckDB's guesses; read as TIMESTAMP, the offset was dropped (`10:00`), so the stored
/// time depended on whether another key made the import read with the table's types.
fn read_as<'a>(guessed: &'a str, column: &'a str) -> &'a str {
    let column_upper = column.trim().to_ascii_uppercase();
    let naive_timestamp = column_upper.starts_with("TIMESTAMP") && !column_upper.contains("TIME ZONE");
    if naive_timestamp && guessed == "TIMESTAMP WITH TIME ZONE" {
        guessed
    } else {
        column
    }
}

/// Whether `column_type` names one of `words` as a type, alone or inside a list, struct or map.
fn names_type(column_type: &str, words: &[&str]) -> bool {
    column_type
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .any(|word| words.contains(&word))
}

/// Whether DuckDB's sampled schema `file` has a column of the `NULL` type (also inside a list,
/// struct or map): a key that was null in every sampled JSON record. DuckDB reads every later
/// value of such a column as NULL, so the file must be read with a full sample.
pub(super) fn sample_lost_a_type(file: &[(String, String)]) -> bool {
    file.iter().any(|(_, t)| names_type(t, &["NULL"]))
}

/// The keys of a JSON file whose keys are `file` that DuckDB typed as dates or times (DATE,
/// TIME or TIMESTAMP, with time zone too, alone or inside lists and structs), when any string
/// of the file (in `objects`, a `read_json_objects(…)` call over it) is spelt `infinity`,
/// `-infinity` or `epoch`. DuckDB's detection accepts those spellings as dates, and its
/// conversion then stores them as 1900-01-01, silently (DuckDB 2.0); such keys are read as text
/// instead. The file is read once more, only when it has such a guessed column. Searching
/// every string of the file, not the guessed keys' values, also covers keys DuckDB renamed
/// (`D` beside `d` becomes `D_1`), at the price of reading a key as text when the spelling
/// stands elsewhere in its file.
pub(super) fn keys_misread_as_dates(
    conn: &Connection,
    file: &[(String, String)],
    objects: &str,
) -> duckdb::Result<Vec<String>> {
    let guessed: Vec<String> = file
        .iter()
        .filter(|(_, t)| names_type(t, &["DATE", "TIME", "TIMESTAMP"]))
        .map(|(name, _)| name.clone())
        .collect();
    if guessed.is_empty() {
        return Ok(guessed);
    }
    let special: Option<bool> = conn.query_row(
        &format!(
            "SELECT bool_or(regexp_matches(json::VARCHAR, '\"\\s*-?(infinity|epoch)\\s*\"', 'i')) \
             FROM {objects}"
        ),
        [],
        |row| row.get(0),
    )?;
    Ok(if special == Some(true) {
        guessed
    } else {
        Vec::new()
    })
}

/// The keys of a JSON file whose keys are `file` that go into a text column (VARCHAR) of a
/// table whose columns are `target`, but that DuckDB typed otherwise: read with its guess, a
/// timestamp string would be reformatted (and shifted to UTC), an object written in DuckDB's
/// struct notation rather than as JSON. Such keys are read as text instead (a number as
/// DuckDB prints it: `1.50` is `1.5`).
pub(super) fn keys_into_text_columns(file: &[(String, String)], target: &[(String, String)]) -> Vec<String> {
    file.iter()
        .filter(|(name, guessed)| {
            guessed != "VARCHAR"
                && !name.contains('\0')
                && same_name(target, name).is_some_and(|t| t.eq_ignore_ascii_case("VARCHAR"))
        })
        .map(|(name, _)| name.clone())
        .collect()
}

/// The keys of a JSON file whose keys are `file` that go into an integer or DECIMAL column of
/// `target` although DuckDB typed them DOUBLE: read with that guess, an integer past 2^53
/// loses its last digits (`123456789012345678901234567890` arrived as `…677877719597056`, also
/// in a DECIMAL(38,2)), while read as the column's type it stays exact. (A fraction is a
/// DOUBLE in DuckDB's JSON reader either way.) Reading with the table's types takes every key,
/// so it costs a pass over the whole file: only for these columns.
pub(super) fn keys_into_exact_numbers(file: &[(String, String)], target: &[(String, String)]) -> Vec<String> {
    file.iter()
        .filter(|(name, guessed)| {
            matches!(guessed.as_str(), "DOUBLE" | "FLOAT")
                && same_name(target, name).is_some_and(|t| exact_number(&t.trim().to_ascii_uppercase()))
        })
        .map(|(name, _)| name.clone())
        .collect()
}

/// The keys of a JSON file whose keys are `file` that go into a JSON column (or a list of JSON),
/// or a column of MAPs of plain values, of `target` although DuckDB typed them otherwise. Read
/// with that guess, objects become one STRUCT of every key DuckDB met in any record, so cast to
/// JSON or MAP each record's object gained the other records' keys as nulls (`{"a":1}` was
/// stored as `{"a":1,"b":null}`), and a string was cast into a JSON column as JSON text
/// (`"abc"` failed the import as malformed JSON, `"[1]"` became an array). Read as the
/// column's type, each value is stored as written. Like [`keys_into_exact_numbers`], this costs
/// a pass over the whole file, only for these columns.
///
/// Left to the guess: MAPs holding structs or times, and structs holding JSON. The JSON
/// reader matches struct fields by exact case (a table field `Sub` fed `"sub"` would read
/// NULL, where the cast matches it) and reads a naive TIMESTAMP dropping a UTC offset (where
/// the guess converts to UTC), so those columns keep the other records' keys as NULLs, as
/// documented.
pub(super) fn keys_into_json_columns(file: &[(String, String)], target: &[(String, String)]) -> Vec<String> {
    file.iter()
        .filter(|(name, guessed)| {
            same_name(target, name).is_some_and(|t| {
                let t = t.trim();
                let json = t.trim_end_matches("[]").eq_ignore_ascii_case("JSON");
                let plain_map = names_type(t, &["MAP"])
                    && !names_type(t, &["STRUCT", "UNION"])
                    && !names_type(t, &TIME_WORDS);
                // Every other guess takes the pass, integers and booleans too: a guess from
                // DuckDB's sample casts later values leniently (a `1.5` after 20,480 integers
                // was stored as `2`, a `"true"` after booleans as `true`; h155).
                (json || plain_map) && guessed != t
            })
        })
        .map(|(name, _)| name.clone())
        .collect()
}

/// The `columns = {…}` argument for reading a JSON file whose keys are `file` (typed from every
/// record) with the keys in `as_table` (see [`keys_into_exact_numbers`] and
/// [`keys_into_json_columns`]) read as their table columns' types and every other key as
/// DuckDB typed it. `None` if a key cannot be written as a literal, or DuckDB renamed one.
pub(super) fn json_columns_as_table<'a>(
    file: &'a [(String, String)],
    target: &'a [(String, String)],
    as_table: &[String],
) -> Option<String> {
    json_columns_typed(file, |name, guessed| match same_name(target, name) {
        Some(t) if as_table.iter().any(|e| e == name) => t.as_str(),
        _ => guessed,
    })
}

/// The `columns = {…}` argument for reading a JSON file whose keys are `file` (typed from every
/// record) with the keys in `as_text` read as VARCHAR, the others as the columns of `target`
/// (the table's, when appending; empty for a new table: scalar types, and the nested ones of
/// the keys in `as_table`) or as DuckDB typed them. `None` if a key cannot be written as a
/// literal, or DuckDB renamed one.
pub(super) fn json_columns_with_text<'a>(
    file: &'a [(String, String)],
    target: &'a [(String, String)],
    as_text: &[String],
    as_table: &[String],
) -> Option<String> {
    // A key read with its table type first: a JSON column's date strings, read as JSON, are
    // not at risk from the `infinity` spellings that make other date keys text.
    json_columns_typed(file, |name, guessed| match same_name(target, name) {
        Some(t) if as_table.iter().any(|k| k == name) => t.as_str(),
        _ if as_text.iter().any(|t| t == name) => "VARCHAR",
        Some(t) if parsed_from_text(t) => read_as(guessed, t),
        _ => guessed,
    })
}

/// The `columns = {…}` argument giving each key of `file` (name, DuckDB's type) the type
/// `column_type` picks for it. `None` if a key cannot be written as a literal, or DuckDB renamed
/// one (`columns = {…}` names keys, see [`renamed_keys`]).
fn json_columns_typed<'a>(
    file: &'a [(String, String)],
    column_type: impl Fn(&'a str, &'a str) -> &'a str,
) -> Option<String> {
    if renamed_keys(file) {
        return None;
    }
    let entries: Option<Vec<String>> = file
        .iter()
        .map(|(name, guessed)| literal_entry(name, column_type(name, guessed)))
        .collect();
    struct_literal(entries?)
}

/// `{'name': 'TYPE', …}` from its entries; `None` for none.
fn struct_literal(entries: Vec<String>) -> Option<String> {
    (!entries.is_empty()).then(|| format!("{{{}}}", entries.join(", ")))
}

/// Whether DuckDB renamed keys that differ only in case (`d` and `D` become columns `d` and
/// `D_1`): `columns = {…}` names keys, and would read `D_1`, which no record has, as NULL.
fn renamed_keys(file: &[(String, String)]) -> bool {
    file.iter().any(|(name, _)| {
        name.rsplit_once('_').is_some_and(|(base, n)| {
            !n.is_empty()
                && n.bytes().all(|b| b.is_ascii_digit())
                && file
                    .iter()
                    .any(|(other, _)| other != name && super::same_name(other, base))
        })
    })
}

/// The type of the column of `target` named `name`, matched as DuckDB matches identifiers
/// (ignoring ASCII case).
fn same_name<'t>(target: &'t [(String, String)], name: &str) -> Option<&'t String> {
    let exact = target.iter().find(|(t, _)| t == name);
    exact
        .or_else(|| target.iter().find(|(t, _)| super::same_name(t, name)))
        .map(|(_, ty)| ty)
}

/// `'name': 'TYPE'`, if the type is read from text and neither holds NUL (which a literal
/// cannot carry; that column keeps the reader's guess).
fn entry(name: &str, column_type: &str) -> Option<String> {
    literal_entry(name, column_type).filter(|_| parsed_from_text(column_type))
}

/// `'name': 'TYPE'`, if neither holds NUL.
fn literal_entry(name: &str, column_type: &str) -> Option<String> {
    if name.contains('\0') || column_type.contains('\0') {
        return None;
    }
    Some(format!(
        "{}: {}",
        quoted_literal(name),
        quoted_literal(column_type)
    ))
}

/// Whether the readers read text straight into `column_type`: the scalar types. Nested types
/// (lists, structs, maps, unions, fixed arrays) and enums keep the reader's guess and are cast
/// on insert, as before.
fn parsed_from_text(column_type: &str) -> bool {
    const OTHER_SCALARS: [&str; 11] = [
        "BOOLEAN",
        "FLOAT",
        "DOUBLE",
        "VARCHAR",
        "BLOB",
        "TIMESTAMP WITH TIME ZONE",
        "TIME WITH TIME ZONE",
        "INTERVAL",
        "UUID",
        "BIT",
        "JSON",
    ];
    let upper = column_type.trim().to_ascii_uppercase();
    exact_number(&upper) || TIME_WORDS.contains(&upper.as_str()) || OTHER_SCALARS.contains(&upper.as_str())
}

/// The date and time types without a time zone, as DuckDB spells them (also the words that
/// name them inside a nested type).
const TIME_WORDS: [&str; 6] = [
    "DATE",
    "TIME",
    "TIMESTAMP",
    "TIMESTAMP_S",
    "TIMESTAMP_MS",
    "TIMESTAMP_NS",
];

/// Whether `upper` (a column type in upper case) holds numbers exactly: the integer types and
/// DECIMAL.
fn exact_number(upper: &str) -> bool {
    const INTEGERS: [&str; 10] = [
        "TINYINT",
        "SMALLINT",
        "INTEGER",
        "BIGINT",
        "HUGEINT",
        "UTINYINT",
        "USMALLINT",
        "UINTEGER",
        "UBIGINT",
        "UHUGEINT",
    ];
    INTEGERS.contains(&upper) || (upper.starts_with("DECIMAL(") && upper.ends_with(')'))
}

/// `text` as a SQL string literal.
fn quoted_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::parsed_from_text;

    #[test]
    fn scalar_types_are_read_from_text_and_nested_ones_are_not() {
        for t in [
            "VARCHAR",
            "integer",
            "DECIMAL(18,3)",
            "TIMESTAMP WITH TIME ZONE",
            "UUID",
        ] {
            assert!(parsed_from_text(t), "{t}");
        }
        for t in [
            "INTEGER[]",
            "STRUCT(a INTEGER)",
            "MAP(VARCHAR, INTEGER)",
            "ENUM('a', 'b')",
            "INTEGER[3]",
        ] {
            assert!(!parsed_from_text(t), "{t}");
        }
    }
}
