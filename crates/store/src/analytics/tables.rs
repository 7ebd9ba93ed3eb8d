//! Finding tables by name as DuckDB resolves them (ASCII case-insensitive, temporary tables and
//! the default schema first, then other schemas by their inventory names), and counting their
//! rows. The default schema is `main`, whatever a `USE` or `search_path` of the caller's says.

use std::collections::BTreeMap;

use duckdb::Connection;

use super::sql;
use crate::error::{Error, Result};

pub(crate) fn table_exists_on(op: &'static str, conn: &Connection, table: &str) -> Result<bool> {
    Ok(find_table(op, conn, table)?.is_some())
}

/// The table or view `table` names in the default schema, `main` of this database, or among
/// the temporary ones, which SQL reads first. The store's own statements use the qualified
/// name this returns (or [`main_table_sql`] for a new table), never the bare one: a `USE` or `search_path` of
/// the caller's makes SQL look up bare names elsewhere first, and the table the store checked
/// would not be the one its statement wrote to.
fn default_table(op: &'static str, conn: &Connection, table: &str) -> Result<Option<ResolvedTable>> {
    let mut stmt = conn
        .prepare(
            "SELECT table_catalog, table_name, table_type FROM information_schema.tables \
             WHERE table_catalog IN (current_database(), 'temp') AND table_schema = 'main' \
               AND lower(table_name) = lower(?) \
             ORDER BY table_catalog <> 'temp'",
        )
        .map_err(|e| Error::duckdb(op, "look up table", e))?;
    let names: Vec<(String, String, String)> = stmt
        .query_map([table], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .and_then(|rows| rows.collect())
        .map_err(|e| Error::duckdb(op, "look up table", e))?;
    Ok(names.into_iter().find_map(|(catalog, name, kind)| {
        same_name(&name, table).then(|| ResolvedTable {
            is_view: kind == "VIEW",
            sql: sql::qualified(&catalog, "main", &name),
        })
    }))
}

/// The name of the connection's default database, to name its tables past any temporary table
/// of the same name.
pub(crate) fn current_database(op: &'static str, conn: &Connection) -> Result<String> {
    conn.query_row("SELECT current_database()", [], |r| r.get(0))
        .map_err(|e| Error::duckdb(op, "read the database name", e))
}

/// The qualified SQL name of `table` in `main` of this database (whether it exists or not):
/// never a temporary table of that name, nor one a `USE` makes bare names find.
pub(crate) fn main_table_sql(op: &'static str, conn: &Connection, table: &str) -> Result<String> {
    Ok(sql::qualified(&current_database(op, conn)?, "main", table))
}

/// DuckDB's identifier rule: names match ignoring ASCII case only (`Foo` is `foo`, `Ö` is not
/// `ö`).
pub(crate) fn same_name(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// A table or view as [`require_table`] found it.
pub(crate) struct ResolvedTable {
    /// Its fully qualified name as SQL.
    pub sql: String,
    /// Whether it is a view: reading its columns binds its query.
    pub is_view: bool,
}

pub(crate) fn require_table(op: &'static str, conn: &Connection, table: &str) -> Result<ResolvedTable> {
    sql::ident(op, "table", table)?;
    find_table(op, conn, table)?.ok_or_else(|| Error::Missing {
        op,
        kind: "table",
        name: table.to_string(),
    })
}

/// The table or view the store's calls mean by `table` (exports, imports, `table_exists`
/// alike): a temporary one or `main`'s ([`default_table`]), else another schema's table by the
/// name [`Analytics::table_counts`] gives it (`s.x`), so a name copied from the inventory
/// means the table it counts in every call.
///
/// [`Analytics::table_counts`]: super::Analytics::table_counts
pub(crate) fn find_table(op: &'static str, conn: &Connection, table: &str) -> Result<Option<ResolvedTable>> {
    match default_table(op, conn, table)? {
        Some(found) => Ok(Some(found)),
        None => other_schema_table(op, conn, table),
    }
}

/// A table of another schema of this database, named as [`Analytics::table_counts`] and the
/// inventory name it, as SQL: so a name copied from the inventory exports the table it counts.
/// Only tried once no default-schema table has the name, as those come first there. A view
/// of another schema, which the inventory does not list, is found by either spelling (`s.v`
/// or `"s"."v"`).
fn other_schema_table(op: &'static str, conn: &Connection, table: &str) -> Result<Option<ResolvedTable>> {
    // By its inventory name, or fully qualified (`"db"."main"."t"`: how a default-schema table
    // hidden by a temporary one of its name is exported).
    let tables = named_tables(op, conn)?;
    // By its inventory name first: another table's SQL spelling could be that name.
    let found = tables
        .iter()
        .find(|t| same_name(&t.name, table) || t.qualified == table)
        .or_else(|| tables.iter().find(|t| same_name(&t.spelled, table)));
    if let Some(found) = found {
        return Ok(Some(ResolvedTable {
            sql: found.qualified.clone(),
            is_view: false,
        }));
    }
    if !table.contains('.') {
        return Ok(None);
    }
    let lookup = |e| Error::duckdb(op, "look up view", e);
    let mut stmt = conn
        .prepare(
            "SELECT DISTINCT table_catalog, table_schema, table_name FROM information_schema.tables \
             WHERE table_catalog = current_database() AND table_type = 'VIEW' \
               AND table_schema NOT IN ('main', 'information_schema', 'pg_catalog') \
             ORDER BY table_schema, table_name",
        )
        .map_err(lookup)?;
    let names: Vec<(String, String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .and_then(|rows| rows.collect())
        .map_err(lookup)?;
    Ok(names.into_iter().find_map(|(catalog, schema, name)| {
        let plain = format!("{schema}.{name}");
        let spelled = format!("{}.{}", sql::quote_reported(&schema), sql::quote_reported(&name));
        (same_name(&plain, table) || same_name(&spelled, table)).then(|| ResolvedTable {
            sql: sql::qualified(&catalog, &schema, &name),
            is_view: true,
        })
    }))
}

/// Every base table of this database, in inventory order, with the name the inventory gives
/// it and its SQL name. Tables of the default schema go by their name; tables of other schemas
/// of this database (`CREATE SCHEMA s`) as `s.name`, unless a name given before (or a view,
/// temporary table or temporary view) is that, ignoring ASCII case as DuckDB does: then as the
/// SQL spelling `"s"."name"`, then fully qualified, then numbered. So no two tables share a name, and a name resolves to
/// the one table it was given to. Attached databases are not this one's tables.
fn named_tables(op: &'static str, conn: &Connection) -> Result<Vec<NamedTable>> {
    // Views and temporary tables and views of the default schema are not listed, but keep
    // their names: a name resolves to them before another schema's table. A default-schema
    // base table keeps its name over a temporary one (listed first), though exporting that
    // name reads the temporary table, as SQL does; its qualified name reads the base table.
    let listed: Vec<(String, String, String, bool)> = {
        let mut stmt = conn
            .prepare(
                "SELECT DISTINCT table_catalog, table_schema, table_name, table_type <> 'BASE TABLE' \
                 FROM information_schema.tables \
                 WHERE (table_catalog = 'temp' AND table_schema = 'main' \
                        OR table_catalog = current_database() \
                           AND table_schema NOT IN ('information_schema', 'pg_catalog')) \
                   AND (table_type = 'BASE TABLE' OR table_schema = 'main') \
                 ORDER BY table_schema <> 'main', table_type <> 'BASE TABLE', table_schema, table_name",
            )
            .map_err(|e| Error::duckdb(op, "list tables", e))?;
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .map_err(|e| Error::duckdb(op, "list tables", e))?
            .collect::<duckdb::Result<_>>()
            .map_err(|e| Error::duckdb(op, "list tables", e))?
    };
    let mut taken = std::collections::HashSet::new();
    let mut named = Vec::with_capacity(listed.len());
    for (catalog, schema, table, reserved_only) in listed {
        if reserved_only {
            taken.insert(table.to_ascii_lowercase());
            continue;
        }
        // Counted and exported through their database's name: unqualified, a temporary table
        // of the same name would be read instead (DuckDB looks in `temp` first).
        let qualified = sql::qualified(&catalog, &schema, &table);
        let spelled = format!("{}.{}", sql::quote_reported(&schema), sql::quote_reported(&table));
        let preferred = if schema == "main" {
            vec![table, qualified.clone()]
        } else {
            vec![format!("{schema}.{table}"), spelled.clone(), qualified.clone()]
        };
        let name = preferred
            .into_iter()
            .chain((2..).map(|n| format!("{spelled} ({n})")))
            .find(|name| !taken.contains(&name.to_ascii_lowercase()))
            .unwrap_or_else(|| qualified.clone()); // unreachable: the numbered names never run out
        taken.insert(name.to_ascii_lowercase());
        named.push(NamedTable {
            name,
            qualified,
            spelled,
        });
    }
    Ok(named)
}

/// A base table as the inventory lists it.
struct NamedTable {
    /// Its inventory name (`t`, `s.x`, `"s"."x"` …).
    name: String,
    /// Its fully qualified SQL name.
    qualified: String,
    /// Schema and name as SQL spells them (`"s"."x"`), also accepted when the inventory name
    /// is the plain `s.x`.
    spelled: String,
}

pub(crate) fn table_counts_on(op: &'static str, conn: &Connection) -> Result<BTreeMap<String, u64>> {
    let mut counts = BTreeMap::new();
    for NamedTable { name, qualified, .. } in named_tables(op, conn)? {
        let n: i64 = conn
            .query_row(&format!("SELECT count(*) FROM {qualified}"), [], |r| r.get(0))
            .map_err(|e| Error::duckdb(op, format!("count rows of {name}"), e))?;
        counts.insert(name, n.max(0) as u64);
    }
    Ok(counts)
}
