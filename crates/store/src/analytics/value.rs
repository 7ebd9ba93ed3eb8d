//! Typed analytical values and result sets, convertible to JSON.

use std::fmt;

use base64::Engine;
use serde_json::{Map, Value as Json};

/// One value of an analytical result.
///
/// # Examples
/// ```
/// use store::analytics::Value;
/// assert_eq!(Value::Int(42).to_json(), serde_json::json!(42));
/// assert_eq!(Value::Float(f64::NAN).to_json(), serde_json::json!("NaN"));
/// assert_eq!(Value::Date(0).to_json(), serde_json::json!("1970-01-01"));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// BOOLEAN.
    Bool(bool),
    /// Any signed integer type up to 64 bits.
    Int(i64),
    /// Unsigned 64-bit integers (smaller unsigned types arrive as `Int`).
    UInt(u64),
    /// FLOAT and DOUBLE.
    Float(f64),
    /// VARCHAR and ENUM.
    Text(String),
    /// BLOB.
    Blob(Vec<u8>),
    /// TIMESTAMP, as microseconds since the Unix epoch (UTC).
    Timestamp(i64),
    /// DATE, as days since the Unix epoch.
    Date(i32),
    /// LIST and ARRAY.
    List(Vec<Value>),
    /// STRUCT (and MAP, as key/value pairs named by the key's text).
    Struct(Vec<(String, Value)>),
    /// Anything else, as DuckDB renders it: DECIMAL, HUGEINT beyond `i64`, UHUGEINT beyond
    /// `u64`, TIME, INTERVAL, BIT, BIGNUM (VARINT)… Two exceptions, both from DuckDB's Arrow
    /// export, which results are read through: a TIMETZ loses its offset (it carries only the
    /// local time), and an INTERVAL's time part beyond ±2,562,047 hours overflows its 64-bit
    /// nanoseconds (cast such a column to VARCHAR in SQL).
    Other(String),
}

impl Value {
    /// The value as JSON: non-finite floats become `"NaN"`/`"inf"`/`"-inf"`, blobs base64,
    /// timestamps RFC 3339 UTC, dates `YYYY-MM-DD`.
    ///
    /// # Examples
    /// ```
    /// use store::analytics::Value;
    /// assert_eq!(Value::Timestamp(1_500_000).to_json(), serde_json::json!("1970-01-01T00:00:01.500000Z"));
    /// assert_eq!(Value::Blob(vec![1, 2]).to_json(), serde_json::json!("AQI="));
    /// ```
    pub fn to_json(&self) -> Json {
        match self {
            Value::Null => Json::Null,
            Value::Bool(b) => Json::Bool(*b),
            Value::Int(i) => Json::from(*i),
            Value::UInt(u) => Json::from(*u),
            Value::Float(f) if f.is_nan() => Json::from("NaN"),
            Value::Float(f) if f.is_infinite() => Json::from(if *f > 0.0 { "inf" } else { "-inf" }),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
            Value::Text(s) | Value::Other(s) => Json::from(s.as_str()),
            Value::Blob(b) => Json::from(base64::engine::general_purpose::STANDARD.encode(b)),
            Value::Timestamp(us) => Json::from(rfc3339_micros(*us)),
            Value::Date(days) => Json::from(date_text(*days)),
            Value::List(items) => Json::Array(items.iter().map(Value::to_json).collect()),
            Value::Struct(fields) => {
                // A STRUCT's field names are unique; a MAP's keys, printed, may not be (two
                // TIMESTAMP_NS keys a nanosecond apart): an object would keep only the last
                // entry, so such a map is a list of `{"key", "value"}` entries instead.
                let mut seen = std::collections::HashSet::new();
                if fields.iter().all(|(k, _)| seen.insert(k.as_str())) {
                    Json::Object(fields.iter().map(|(k, v)| (k.clone(), v.to_json())).collect())
                } else {
                    Json::Array(
                        fields
                            .iter()
                            .map(|(k, v)| serde_json::json!({"key": k, "value": v.to_json()}))
                            .collect(),
                    )
                }
            }
        }
    }

    /// `Some(i)` for integer values that fit in an `i64`.
    ///
    /// # Examples
    /// ```
    /// assert_eq!(store::analytics::Value::UInt(7).as_i64(), Some(7));
    /// ```
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::UInt(u) => i64::try_from(*u).ok(),
            _ => None,
        }
    }

    /// `Some(text)` for text values.
    ///
    /// # Examples
    /// ```
    /// assert_eq!(store::analytics::Value::Text("a".into()).as_str(), Some("a"));
    /// ```
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("NULL"),
            Value::Text(s) | Value::Other(s) => f.write_str(s),
            other => match other.to_json() {
                Json::String(s) => f.write_str(&s),
                json => write!(f, "{json}"),
            },
        }
    }
}

impl From<duckdb::types::Value> for Value {
    fn from(v: duckdb::types::Value) -> Self {
        use duckdb::types::Value as D;
        match v {
            D::Null => Value::Null,
            D::Boolean(b) => Value::Bool(b),
            D::TinyInt(i) => Value::Int(i.into()),
            D::SmallInt(i) => Value::Int(i.into()),
            D::Int(i) => Value::Int(i.into()),
            D::BigInt(i) => Value::Int(i),
            D::UTinyInt(u) => Value::Int(u.into()),
            D::USmallInt(u) => Value::Int(u.into()),
            D::UInt(u) => Value::Int(u.into()),
            D::UBigInt(u) => Value::UInt(u),
            D::HugeInt(i) => i64::try_from(i).map_or_else(|_| Value::Other(i.to_string()), Value::Int),
            D::UHugeInt(u) => u64::try_from(u).map_or_else(|_| Value::Other(u.to_string()), Value::UInt),
            D::Float(x) => Value::Float(widen(x)),
            D::Double(x) => Value::Float(x),
            D::Decimal(d) => Value::Other(d.to_string()),
            D::Timestamp(unit, t) => Value::Timestamp(to_micros(unit, t)),
            D::Text(s) | D::Enum(s) => Value::Text(s),
            D::Blob(b) | D::Geometry(b) => Value::Blob(b),
            D::Date32(d) => Value::Date(d),
            D::Time64(unit, t) => Value::Other(time_of_day(to_micros(unit, t).saturating_mul(1_000))),
            D::Interval { months, days, nanos } => Value::Other(interval(months, days, nanos)),
            D::List(items) | D::Array(items) => Value::List(items.into_iter().map(Value::from).collect()),
            D::Struct(fields) => Value::Struct(
                fields
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::from(v.clone())))
                    .collect(),
            ),
            D::Map(entries) => Value::Struct(
                entries
                    .iter()
                    .map(|(k, v)| (Value::from(k.clone()).to_string(), Value::from(v.clone())))
                    .collect(),
            ),
            D::Union(inner) => Value::from(*inner),
            other => Value::Other(format!("{other:?}")),
        }
    }
}

/// DuckDB's `infinity` and `-infinity` timestamps, in every unit; they stay infinite in micros.
const INFINITE_TIMESTAMP: i64 = i64::MAX;
/// DuckDB's `infinity` and `-infinity` dates.
const INFINITE_DATE: i32 = i32::MAX;

fn to_micros(unit: duckdb::types::TimeUnit, t: i64) -> i64 {
    use duckdb::types::TimeUnit;
    if t == INFINITE_TIMESTAMP || t == -INFINITE_TIMESTAMP {
        return t;
    }
    match unit {
        TimeUnit::Second => t.saturating_mul(1_000_000),
        TimeUnit::Millisecond => t.saturating_mul(1_000),
        TimeUnit::Microsecond => t,
        // Floor, so an instant before 1970 keeps its leading digits (`/` rounded it toward
        // zero: `1969-12-31 23:59:59.999999999` read as `1970-01-01 00:00:00`). The spec's
        // `Timestamp` is in microseconds, so the nanosecond digits go.
        TimeUnit::Nanosecond => t.div_euclid(1_000),
    }
}

/// `HH:MM:SS[.fffffffff]` (trailing zeros of the fraction dropped), as DuckDB prints a TIME.
fn time_of_day(nanos: i64) -> String {
    let (secs, frac) = (nanos.div_euclid(1_000_000_000), nanos.rem_euclid(1_000_000_000));
    let text = format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
    if frac == 0 {
        text
    } else {
        format!("{text}.{}", format!("{frac:09}").trim_end_matches('0'))
    }
}

/// An INTERVAL as DuckDB prints it: `1 year 2 months 3 days 04:05:06.5`, `00:00:00` when zero.
fn interval(months: i32, days: i32, nanos: i64) -> String {
    let plural = |n: i64, unit: &str| format!("{n} {unit}{}", if n.abs() == 1 { "" } else { "s" });
    let mut parts = Vec::new();
    let (years, months) = (i64::from(months) / 12, i64::from(months) % 12);
    if years != 0 {
        parts.push(plural(years, "year"));
    }
    if months != 0 {
        parts.push(plural(months, "month"));
    }
    if days != 0 {
        parts.push(plural(days.into(), "day"));
    }
    // DuckDB intervals hold microseconds.
    let nanos = nanos / 1_000 * 1_000;
    if nanos != 0 || parts.is_empty() {
        let sign = if nanos < 0 { "-" } else { "" };
        parts.push(format!("{sign}{}", time_of_day(nanos.saturating_abs())));
    }
    parts.join(" ")
}

/// A result set: column names and rows of values.
///
/// # Examples
/// ```
/// let db = store::analytics::Analytics::in_memory()?;
/// let rows = db.query("SELECT 1 AS a, 'x' AS b", &[])?;
/// assert_eq!(rows.columns, ["a", "b"]);
/// assert_eq!(rows.to_objects()[0]["b"], "x");
/// # Ok::<(), store::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rows {
    /// Column names, in order.
    pub columns: Vec<String>,
    /// Rows, each with one value per column.
    pub rows: Vec<Vec<Value>>,
}

impl Rows {
    /// `{"columns": [...], "rows": [[...], ...]}`.
    ///
    /// # Examples
    /// ```
    /// let db = store::analytics::Analytics::in_memory()?;
    /// let json = db.query("SELECT 1 AS a", &[])?.to_json();
    /// assert_eq!(json, serde_json::json!({"columns": ["a"], "rows": [[1]]}));
    /// # Ok::<(), store::Error>(())
    /// ```
    pub fn to_json(&self) -> Json {
        let rows: Vec<Json> = self
            .rows
            .iter()
            .map(|r| Json::Array(r.iter().map(Value::to_json).collect()))
            .collect();
        serde_json::json!({ "columns": self.columns, "rows": rows })
    }

    /// One JSON object per row, keyed by column name; a repeated name's later columns become
    /// `name_1`, `name_2`… so no value is dropped.
    ///
    /// # Examples
    /// ```
    /// let db = store::analytics::Analytics::in_memory()?;
    /// assert_eq!(db.query("SELECT 2 AS n", &[])?.to_objects()[0]["n"], 2);
    /// # Ok::<(), store::Error>(())
    /// ```
    pub fn to_objects(&self) -> Vec<Map<String, Json>> {
        self.rows.iter().map(|row| object(&self.columns, row)).collect()
    }

    /// Number of rows.
    ///
    /// # Examples
    /// ```
    /// let db = store::analytics::Analytics::in_memory()?;
    /// assert_eq!(db.query("SELECT * FROM range(3)", &[])?.len(), 3);
    /// # Ok::<(), store::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there are no rows.
    ///
    /// # Examples
    /// ```
    /// let db = store::analytics::Analytics::in_memory()?;
    /// assert!(db.query("SELECT 1 WHERE false", &[])?.is_empty());
    /// # Ok::<(), store::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// One row with its column names, from [`Analytics::query_row`](super::Analytics::query_row).
///
/// # Examples
/// ```
/// use store::analytics::{Analytics, Value};
/// let db = Analytics::in_memory()?;
/// let row = db.query_row("SELECT 42 AS answer", &[])?.unwrap();
/// assert_eq!(row.get("answer"), Some(&Value::Int(42)));
/// # Ok::<(), store::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Column names.
    pub columns: Vec<String>,
    /// Values, one per column.
    pub values: Vec<Value>,
}

impl Row {
    /// The value of a column, named by position (`usize`, from 0) or by name (`&str`); `None`
    /// when there is no such column. With a repeated name, the first column of that name.
    ///
    /// # Examples
    /// ```
    /// use store::analytics::{Analytics, Value};
    /// let db = Analytics::in_memory()?;
    /// let row = db.query_row("SELECT 1 AS a, 'x' AS b", &[])?.unwrap();
    /// assert_eq!(row.get(1), Some(&Value::Text("x".into())));
    /// assert_eq!(row.get("a"), row.get(0));
    /// assert!(row.get("missing").is_none() && row.get(2).is_none());
    /// # Ok::<(), store::Error>(())
    /// ```
    pub fn get<C: ColumnIndex>(&self, column: C) -> Option<&Value> {
        column.position(&self.columns).and_then(|i| self.values.get(i))
    }

    /// The number of columns.
    ///
    /// # Examples
    /// ```
    /// let db = store::analytics::Analytics::in_memory()?;
    /// assert_eq!(db.query_row("SELECT 1, 2", &[])?.unwrap().len(), 2);
    /// # Ok::<(), store::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether the row has no columns (a query's rows always have at least one).
    ///
    /// # Examples
    /// ```
    /// let db = store::analytics::Analytics::in_memory()?;
    /// assert!(!db.query_row("SELECT 1", &[])?.unwrap().is_empty());
    /// # Ok::<(), store::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

/// How [`Row::get`] names a column: by position (`usize`) or by name (`&str`, `&String`, and
/// references to those). Sealed: implemented for those types only.
///
/// # Examples
/// ```
/// use store::analytics::{Analytics, ColumnIndex};
/// fn has<C: ColumnIndex>(row: &store::analytics::Row, c: C) -> bool {
///     row.get(c).is_some()
/// }
/// let row = Analytics::in_memory()?.query_row("SELECT 1 AS a", &[])?.unwrap();
/// assert!(has(&row, 0usize) && has(&row, "a") && !has(&row, 1usize));
/// for name in ["a", "b"].iter() {
///     assert_eq!(row.get(name).is_some(), *name == "a"); // a `&&str`
/// }
/// # Ok::<(), store::Error>(())
/// ```
pub trait ColumnIndex: sealed::Sealed {
    /// The column's position among `columns`, if it has one.
    ///
    /// # Examples
    /// ```
    /// use store::analytics::ColumnIndex;
    /// let columns = vec!["a".to_string(), "b".to_string()];
    /// assert_eq!("b".position(&columns), Some(1));
    /// assert_eq!(5usize.position(&columns), None);
    /// ```
    fn position(&self, columns: &[String]) -> Option<usize>;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for usize {}
    impl Sealed for str {}
    impl Sealed for String {}
    impl<T: Sealed + ?Sized> Sealed for &T {}
}

impl ColumnIndex for usize {
    fn position(&self, columns: &[String]) -> Option<usize> {
        (*self < columns.len()).then_some(*self)
    }
}

impl ColumnIndex for str {
    fn position(&self, columns: &[String]) -> Option<usize> {
        columns.iter().position(|c| c == self)
    }
}

impl ColumnIndex for String {
    fn position(&self, columns: &[String]) -> Option<usize> {
        self.as_str().position(columns)
    }
}

/// `&"name"`, `&&str` from iterating a slice of names, `&0`…
impl<T: ColumnIndex + ?Sized> ColumnIndex for &T {
    fn position(&self, columns: &[String]) -> Option<usize> {
        (**self).position(columns)
    }
}

/// One row as a JSON object keyed by column name. A repeated name (`SELECT * FROM a JOIN b`
/// with an `id` on both sides) would drop a value, so later ones are renamed `id_1`, `id_2`…
/// (skipping names the result already has), as DuckDB names them in `CREATE TABLE AS`.
fn object(columns: &[String], values: &[Value]) -> Map<String, Json> {
    let mut object = Map::new();
    for (name, value) in columns.iter().zip(values) {
        let mut key = name.clone();
        let mut n = 0;
        while object.contains_key(&key) || (n > 0 && columns.contains(&key)) {
            n += 1;
            key = format!("{name}_{n}");
        }
        object.insert(key, value.to_json());
    }
    object
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `YYYY-MM-DD`; years before 1 (astronomical numbering, 0 = 1 BC) in ISO 8601's expanded
/// form, `-0044-03-15`.
pub(crate) fn iso_date(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    let sign = if y < 0 { "-" } else { "" };
    format!("{sign}{:04}-{m:02}-{d:02}", y.unsigned_abs())
}

/// A DATE as JSON text: [`iso_date`], or `infinity`/`-infinity` as DuckDB prints them.
fn date_text(days: i32) -> String {
    match days {
        INFINITE_DATE => "infinity".into(),
        d if d == -INFINITE_DATE => "-infinity".into(),
        d => iso_date(i64::from(d)),
    }
}

/// RFC 3339 UTC with microseconds, or `infinity`/`-infinity` as DuckDB prints them.
pub(crate) fn rfc3339_micros(us: i64) -> String {
    if us == INFINITE_TIMESTAMP {
        return "infinity".into();
    }
    if us <= -INFINITE_TIMESTAMP {
        return "-infinity".into();
    }
    let secs = us.div_euclid(1_000_000);
    let micros = us.rem_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    format!(
        "{}T{:02}:{:02}:{:02}.{micros:06}Z",
        iso_date(days),
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Whether duckdb-rs cannot convert values of this type itself (its converter panics on
/// them): an untyped NULL nested in a LIST, STRUCT, MAP or ARRAY (`SELECT [NULL]`), `TIME_NS`,
/// and any Arrow type its converter does not list. Such columns are read through
/// [`from_arrow`] instead.
pub(crate) fn needs_arrow(data_type: &duckdb::arrow::datatypes::DataType) -> bool {
    use duckdb::arrow::datatypes::{DataType as T, IntervalUnit, TimeUnit};
    match data_type {
        T::Utf8
        | T::LargeUtf8
        | T::Binary
        | T::LargeBinary
        | T::FixedSizeBinary(_)
        | T::Boolean
        | T::Int8
        | T::Int16
        | T::Int32
        | T::Int64
        | T::UInt8
        | T::UInt16
        | T::UInt32
        | T::UInt64
        | T::Float16
        | T::Float32
        | T::Float64
        | T::Decimal32(..)
        | T::Decimal64(..)
        | T::Decimal128(..)
        | T::Timestamp(..)
        | T::Date32
        | T::Time64(TimeUnit::Microsecond)
        | T::Interval(IntervalUnit::MonthDayNano) => false,
        T::List(f) | T::LargeList(f) | T::FixedSizeList(f, _) | T::Map(f, _) => needs_arrow(f.data_type()),
        T::Struct(fields) => fields.iter().any(|f| needs_arrow(f.data_type())),
        T::Union(fields, _) => fields.iter().any(|(_, f)| needs_arrow(f.data_type())),
        T::Dictionary(k, v) => !matches!(**k, T::UInt8 | T::UInt16 | T::UInt32) || needs_arrow(v),
        _ => true,
    }
}

/// Whether duckdb-rs can borrow a top-level value of this type (`Row::get_ref`), possibly to
/// hand its nested parts to [`from_arrow`].
pub(crate) fn borrowable(data_type: &duckdb::arrow::datatypes::DataType) -> bool {
    use duckdb::arrow::datatypes::DataType as T;
    match data_type {
        T::Null
        | T::List(_)
        | T::LargeList(_)
        | T::FixedSizeList(..)
        | T::Struct(_)
        | T::Map(..)
        | T::Union(..) => true,
        T::Dictionary(k, _) => matches!(**k, T::UInt8 | T::UInt16 | T::UInt32),
        other => !needs_arrow(other),
    }
}

/// What an Arrow array cannot say about its values: the DuckDB types that share an Arrow
/// carrier with another type, recovered from the result's logical types at every nesting
/// level. HUGEINT, UHUGEINT and DECIMAL(p, 0) all arrive as `Decimal128(p, 0)`, and BIT and
/// BIGNUM (VARINT) as binary holding DuckDB's internal encoding.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) enum Carrier {
    /// The Arrow type says it all.
    #[default]
    Plain,
    /// UHUGEINT: the `Decimal128` bits are unsigned.
    UHugeint,
    /// DECIMAL: rendered as text even at scale 0 (as duckdb-rs's own path does).
    Decimal,
    /// BIT: a padding byte, then the bits.
    Bit,
    /// BIGNUM: a 3-byte sign-and-length header, then the big-endian magnitude.
    Bignum,
    /// LIST/ARRAY (one child), STRUCT (its fields), MAP (key, value), UNION (its members),
    /// when some child is not `Plain`.
    Nested(Vec<Carrier>),
}

static PLAIN: Carrier = Carrier::Plain;

impl Carrier {
    /// The carrier of a result column of this logical type.
    pub(crate) fn of(logical: &duckdb::core::LogicalTypeHandle) -> Carrier {
        use duckdb::core::LogicalTypeId as Id;
        match logical.id() {
            Id::UHugeint => Carrier::UHugeint,
            Id::Decimal => Carrier::Decimal,
            Id::Bit => Carrier::Bit,
            Id::Bignum => Carrier::Bignum,
            Id::List | Id::Array | Id::Struct | Id::Map | Id::Union => {
                // `child(i)` is defined for every i below `num_children()`.
                let children: Vec<Carrier> = (0..logical.num_children())
                    .map(|i| Carrier::of(&logical.child(i)))
                    .collect();
                if children.iter().all(|c| *c == Carrier::Plain) {
                    Carrier::Plain
                } else {
                    Carrier::Nested(children)
                }
            }
            _ => Carrier::Plain,
        }
    }

    fn child(&self, i: usize) -> &Carrier {
        match self {
            Carrier::Nested(children) => children.get(i).unwrap_or(&PLAIN),
            _ => &PLAIN,
        }
    }
}

/// A value read through duckdb-rs's borrowed form, going through [`from_arrow`] for nested
/// values (which may hold untyped NULLs) and decoding the binary carriers of BIT and BIGNUM.
pub(crate) fn from_value_ref(v: duckdb::types::ValueRef<'_>, carrier: &Carrier) -> Value {
    use duckdb::types::{ListType, ValueRef as R};
    match v {
        R::List(ListType::Regular(a), row) => from_arrow(a, row, carrier),
        R::List(ListType::Large(a), row) => from_arrow(a, row, carrier),
        R::Struct(a, row) => from_arrow(a, row, carrier),
        R::Map(a, row) => from_arrow(a, row, carrier),
        R::Array(a, row) => from_arrow(a, row, carrier),
        R::Union(a, row) => from_arrow(a.as_ref(), row, carrier),
        R::Blob(bytes) => from_bytes(bytes, carrier),
        other => Value::from(other.to_owned()),
    }
}

/// A binary value: BIT and BIGNUM rendered as DuckDB renders them, anything else a blob.
fn from_bytes(bytes: &[u8], carrier: &Carrier) -> Value {
    let text = match carrier {
        Carrier::Bit => bit_text(bytes),
        Carrier::Bignum => bignum_text(bytes),
        _ => None,
    };
    text.map_or_else(|| Value::Blob(bytes.to_vec()), Value::Other)
}

/// A DECIMAL(p, 0), HUGEINT or UHUGEINT from its `Decimal128` bits.
fn from_i128(bits: i128, carrier: &Carrier) -> Value {
    match carrier {
        Carrier::UHugeint => {
            let unsigned = bits as u128; // UHUGEINT's bits, reinterpreted as DuckDB exported them
            u64::try_from(unsigned).map_or_else(|_| Value::Other(unsigned.to_string()), Value::UInt)
        }
        Carrier::Decimal => Value::Other(bits.to_string()),
        _ => i64::try_from(bits).map_or_else(|_| Value::Other(bits.to_string()), Value::Int),
    }
}

/// DuckDB's text for a BIT value (`bitstring_t`): byte 0 counts the padding bits that open
/// byte 1, the bits follow most significant first. `None` for bytes that are not a bit string.
fn bit_text(bytes: &[u8]) -> Option<String> {
    let (&padding, data) = bytes.split_first()?;
    if data.is_empty() || padding > 7 {
        return None;
    }
    let bits = data
        .iter()
        .flat_map(|byte| (0..8).rev().map(move |i| byte >> i & 1 == 1));
    Some(
        bits.skip(usize::from(padding))
            .map(|bit| if bit { '1' } else { '0' })
            .collect(),
    )
}

/// DuckDB's text for a BIGNUM (VARINT) value: a 3-byte header whose top bit is set for
/// positive numbers, then the big-endian magnitude; a negative number has every byte
/// inverted. `None` for bytes that are not a bignum.
fn bignum_text(bytes: &[u8]) -> Option<String> {
    if bytes.len() < 4 {
        return None;
    }
    let negative = bytes[0] & 0x80 == 0;
    let magnitude = bytes[3..].iter().map(|b| if negative { !b } else { *b });
    // Big-endian base-2^64 limbs, the first padded on the left: 8 bytes per division step.
    let padding = (8 - (bytes.len() - 3) % 8) % 8;
    let padded: Vec<u8> = std::iter::repeat_n(0, padding).chain(magnitude).collect();
    let mut limbs: Vec<u64> = padded
        .chunks(8)
        .map(|chunk| chunk.iter().fold(0u64, |acc, b| acc << 8 | u64::from(*b)))
        .collect();
    // Repeated division by 10^19 (the largest power of ten under 2^64) yields the decimal
    // digits, 19 at a time, least significant first.
    const CHUNK: u128 = 10_000_000_000_000_000_000;
    let mut chunks = Vec::new();
    while limbs.iter().any(|l| *l != 0) {
        let mut remainder = 0u128;
        for limb in limbs.iter_mut() {
            let acc = remainder << 64 | u128::from(*limb);
            *limb = (acc / CHUNK) as u64; // acc < CHUNK * 2^64, so the quotient fits
            remainder = acc % CHUNK;
        }
        chunks.push(remainder);
        let leading_zeros = limbs.iter().take_while(|l| **l == 0).count();
        limbs.drain(..leading_zeros);
    }
    let mut text = String::from(if negative { "-" } else { "" });
    match chunks.split_last() {
        None => text = "0".into(),
        Some((first, rest)) => {
            text.push_str(&first.to_string());
            for chunk in rest.iter().rev() {
                text.push_str(&format!("{chunk:019}"));
            }
        }
    }
    Some(text)
}

/// Converts row `idx` of an Arrow array. Covers the types DuckDB exports; anything else is
/// rendered as text (`Other`). `carrier` says what the Arrow type cannot.
pub(crate) fn from_arrow(array: &dyn duckdb::arrow::array::Array, idx: usize, carrier: &Carrier) -> Value {
    use duckdb::arrow::array::{Array, AsArray};
    use duckdb::arrow::datatypes::{self as t, DataType as T, TimeUnit};
    let nested = |child: &dyn Array, carrier: &Carrier| {
        (0..child.len()).map(|i| from_arrow(child, i, carrier)).collect()
    };
    if idx >= array.len() || array.logical_nulls().is_some_and(|n| n.is_null(idx)) {
        return Value::Null;
    }
    match array.data_type() {
        T::Null => Value::Null,
        T::Boolean => Value::Bool(array.as_boolean().value(idx)),
        T::Int8 => Value::Int(array.as_primitive::<t::Int8Type>().value(idx).into()),
        T::Int16 => Value::Int(array.as_primitive::<t::Int16Type>().value(idx).into()),
        T::Int32 => Value::Int(array.as_primitive::<t::Int32Type>().value(idx).into()),
        T::Int64 => Value::Int(array.as_primitive::<t::Int64Type>().value(idx)),
        T::UInt8 => Value::Int(array.as_primitive::<t::UInt8Type>().value(idx).into()),
        T::UInt16 => Value::Int(array.as_primitive::<t::UInt16Type>().value(idx).into()),
        T::UInt32 => Value::Int(array.as_primitive::<t::UInt32Type>().value(idx).into()),
        T::UInt64 => Value::UInt(array.as_primitive::<t::UInt64Type>().value(idx)),
        T::Float32 => Value::Float(widen(array.as_primitive::<t::Float32Type>().value(idx))),
        T::Float64 => Value::Float(array.as_primitive::<t::Float64Type>().value(idx)),
        T::Utf8 => Value::Text(array.as_string::<i32>().value(idx).to_string()),
        T::LargeUtf8 => Value::Text(array.as_string::<i64>().value(idx).to_string()),
        T::Utf8View => Value::Text(array.as_string_view().value(idx).to_string()),
        T::Float16 => Value::Float(array.as_primitive::<t::Float16Type>().value(idx).to_f64()),
        T::FixedSizeBinary(_) => from_bytes(array.as_fixed_size_binary().value(idx), carrier),
        T::Binary => from_bytes(array.as_binary::<i32>().value(idx), carrier),
        T::LargeBinary => from_bytes(array.as_binary::<i64>().value(idx), carrier),
        T::BinaryView => from_bytes(array.as_binary_view().value(idx), carrier),
        T::Date32 => Value::Date(array.as_primitive::<t::Date32Type>().value(idx)),
        T::Timestamp(unit, _) => {
            use duckdb::types::TimeUnit as Unit;
            let (unit, raw) = match unit {
                TimeUnit::Second => (
                    Unit::Second,
                    array.as_primitive::<t::TimestampSecondType>().value(idx),
                ),
                TimeUnit::Millisecond => (
                    Unit::Millisecond,
                    array.as_primitive::<t::TimestampMillisecondType>().value(idx),
                ),
                TimeUnit::Microsecond => (
                    Unit::Microsecond,
                    array.as_primitive::<t::TimestampMicrosecondType>().value(idx),
                ),
                TimeUnit::Nanosecond => (
                    Unit::Nanosecond,
                    array.as_primitive::<t::TimestampNanosecondType>().value(idx),
                ),
            };
            Value::Timestamp(to_micros(unit, raw))
        }
        T::Time64(TimeUnit::Microsecond) => Value::Other(time_of_day(
            array
                .as_primitive::<t::Time64MicrosecondType>()
                .value(idx)
                .saturating_mul(1_000),
        )),
        T::Time64(TimeUnit::Nanosecond) => Value::Other(time_of_day(
            array.as_primitive::<t::Time64NanosecondType>().value(idx),
        )),
        T::Interval(t::IntervalUnit::MonthDayNano) => {
            let v = array.as_primitive::<t::IntervalMonthDayNanoType>().value(idx);
            Value::Other(interval(v.months, v.days, v.nanoseconds))
        }
        T::Decimal128(_, 0) => from_i128(array.as_primitive::<t::Decimal128Type>().value(idx), carrier),
        T::Dictionary(..) => match from_arrow_formatted(array, idx) {
            Value::Other(text) => Value::Text(text),
            other => other,
        },
        T::Union(..) => {
            let union = array.as_union();
            let id = union.type_id(idx);
            let member = usize::try_from(id).map_or(&PLAIN, |i| carrier.child(i));
            from_arrow(union.child(id).as_ref(), union.value_offset(idx), member)
        }
        T::List(_) => Value::List(nested(
            array.as_list::<i32>().value(idx).as_ref(),
            carrier.child(0),
        )),
        T::LargeList(_) => Value::List(nested(
            array.as_list::<i64>().value(idx).as_ref(),
            carrier.child(0),
        )),
        T::FixedSizeList(..) => Value::List(nested(
            array.as_fixed_size_list().value(idx).as_ref(),
            carrier.child(0),
        )),
        T::Struct(fields) => {
            let s = array.as_struct();
            Value::Struct(
                fields
                    .iter()
                    .zip(s.columns())
                    .enumerate()
                    .map(|(i, (f, c))| (f.name().clone(), from_arrow(c.as_ref(), idx, carrier.child(i))))
                    .collect(),
            )
        }
        T::Map(..) => {
            let entries = array.as_map().value(idx);
            let (keys, values) = (entries.column(0), entries.column(1));
            Value::Struct(
                (0..entries.len())
                    .map(|i| {
                        (
                            from_arrow(keys.as_ref(), i, carrier.child(0)).to_string(),
                            from_arrow(values.as_ref(), i, carrier.child(1)),
                        )
                    })
                    .collect(),
            )
        }
        _ => from_arrow_formatted(array, idx),
    }
}

/// Arrow's own text rendering of a value, for types without a closer [`Value`].
fn from_arrow_formatted(array: &dyn duckdb::arrow::array::Array, idx: usize) -> Value {
    let options = duckdb::arrow::util::display::FormatOptions::default();
    match duckdb::arrow::util::display::ArrayFormatter::try_new(array, &options) {
        Ok(formatter) => Value::Other(formatter.value(idx).to_string()),
        Err(e) => Value::Other(format!("<{}: {e}>", array.data_type())),
    }
}

/// [`Value::to_json`], as a conversion.
///
/// # Examples
/// ```
/// use store::analytics::Value;
/// let json: serde_json::Value = Value::Text("x".into()).into();
/// assert_eq!(json, serde_json::json!("x"));
/// assert_eq!(serde_json::Value::from(&Value::Int(7)), serde_json::json!(7));
/// ```
impl From<Value> for Json {
    fn from(value: Value) -> Json {
        value.to_json()
    }
}

impl From<&Value> for Json {
    fn from(value: &Value) -> Json {
        value.to_json()
    }
}

/// [`Rows::to_json`], as a conversion.
///
/// # Examples
/// ```
/// let db = store::analytics::Analytics::in_memory()?;
/// let json = serde_json::Value::from(db.query("SELECT 1 AS a", &[])?);
/// assert_eq!(json, serde_json::json!({"columns": ["a"], "rows": [[1]]}));
/// # Ok::<(), store::Error>(())
/// ```
impl From<Rows> for Json {
    fn from(rows: Rows) -> Json {
        rows.to_json()
    }
}

/// Serialises as [`Value::to_json`] does.
///
/// # Examples
/// ```
/// use store::analytics::Value;
/// assert_eq!(serde_json::to_string(&Value::Float(f64::INFINITY))?, "\"inf\"");
/// # Ok::<(), serde_json::Error>(())
/// ```
impl serde::Serialize for Value {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        self.to_json().serialize(serializer)
    }
}

/// Serialises as [`Rows::to_json`] does: `{"columns": [...], "rows": [[...], ...]}`.
///
/// # Examples
/// ```
/// let db = store::analytics::Analytics::in_memory()?;
/// let rows = db.query("SELECT 1 AS a", &[])?;
/// assert_eq!(serde_json::to_value(&rows).unwrap(), rows.to_json());
/// # Ok::<(), store::Error>(())
/// ```
impl serde::Serialize for Rows {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        self.to_json().serialize(serializer)
    }
}

/// Serialises as one object keyed by column name; when names repeat (`SELECT * FROM a JOIN b
/// …` with an `id` on both sides) later ones become `id_1`, `id_2`… (as in
/// [`Rows::to_objects`]), so no value is dropped.
///
/// # Examples
/// ```
/// let db = store::analytics::Analytics::in_memory()?;
/// let row = db.query_row("SELECT 1 AS a, 'x' AS b", &[])?.unwrap();
/// assert_eq!(serde_json::to_value(&row).unwrap(), serde_json::json!({"a": 1, "b": "x"}));
/// # Ok::<(), store::Error>(())
/// ```
impl serde::Serialize for Row {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        object(&self.columns, &self.values).serialize(serializer)
    }
}

/// The earliest finite `TIMESTAMP` DuckDB can handle, in microseconds: its first whole day
/// (-106,751,991 days). Below it, turning the value into a date overflows inside DuckDB, which
/// then invalidates the whole database ("must be restarted").
const MIN_FINITE_MICROS: i64 = -106_751_991 * 86_400_000_000;

/// A timestamp in microseconds as DuckDB may store it: values before its range saturate to
/// `-infinity` (`-i64::MAX`), as `i64::MAX` already means `infinity`.
pub(crate) fn duckdb_micros(us: i64) -> i64 {
    if us < MIN_FINITE_MICROS { -i64::MAX } else { us }
}

/// Whether DuckDB stores these microseconds as a finite `TIMESTAMP` (`i64::MAX` is `infinity`).
pub(crate) fn is_finite_duckdb_micros(us: i64) -> bool {
    (MIN_FINITE_MICROS..i64::MAX).contains(&us)
}

/// A date in days as DuckDB may store it: `i32::MIN` (outside its range) saturates to
/// `-infinity` (`-i32::MAX`).
pub(crate) fn duckdb_days(days: i32) -> i32 {
    days.max(-i32::MAX)
}

/// A FLOAT as the `f64` nearest the decimal it prints as: `0.1f32` is `0.1`, as DuckDB shows
/// it, not `0.10000000149011612` (its exact binary value). Rust prints the shortest decimal
/// that reads back as the same `f32`, so the result narrows back to the stored value.
fn widen(x: f32) -> f64 {
    if !x.is_finite() {
        return f64::from(x);
    }
    x.to_string().parse().unwrap_or(f64::from(x))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_timestamps_format_like_rfc3339() {
        assert_eq!(iso_date(0), "1970-01-01");
        assert_eq!(iso_date(-1), "1969-12-31");
        assert_eq!(iso_date(19_723), "2024-01-01");
        assert_eq!(rfc3339_micros(-1), "1969-12-31T23:59:59.999999Z");
        assert_eq!(rfc3339_micros(951_782_400_000_000), "2000-02-29T00:00:00.000000Z");
        assert_eq!(iso_date(-719_528), "0000-01-01");
        assert_eq!(iso_date(-719_529), "-0001-12-31");
        assert_eq!(rfc3339_micros(i64::MAX), "infinity");
        assert_eq!(rfc3339_micros(-i64::MAX), "-infinity");
        assert_eq!(date_text(i32::MAX), "infinity");
        assert_eq!(date_text(-i32::MAX), "-infinity");
    }

    #[test]
    fn repeated_column_names_keep_every_value_in_json_objects() {
        let columns = ["a", "a", "a_1", "b", "a"].map(String::from);
        let values = [1, 2, 3, 4, 5].map(Value::Int);
        let object = object(&columns, &values);
        let keys: Vec<&str> = object.keys().map(String::as_str).collect();
        assert_eq!(object.len(), 5, "{keys:?}");
        assert_eq!(object["a"], 1);
        assert_eq!(object["a_1"], 3);
        assert_eq!(object["b"], 4);
        assert_eq!(object["a_2"], 2);
        assert_eq!(object["a_3"], 5);
    }
}
