//! The manifest's order of a split column's values: NULL first, numbers by number, dates and
//! timestamps by time.

use std::cmp::Ordering;

/// How a split column's values (as text) sort in the manifest.
#[derive(Debug, Clone, Copy)]
pub(super) enum SortAs {
    Integer,
    /// DECIMAL(p, s): exactly, as integers scaled by 10^s.
    Decimal(usize),
    Float,
    /// DATE and the TIMESTAMP types, by time (BC years and years past 9999 included).
    Temporal,
    Text,
}

impl SortAs {
    pub(super) fn of(data_type: &str) -> SortAs {
        let upper = data_type.to_ascii_uppercase();
        let integer = ["TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT"]
            .iter()
            .any(|t| upper == *t || upper.strip_prefix('U') == Some(t));
        let decimal_scale = upper
            .strip_prefix("DECIMAL(")
            .and_then(|rest| rest.strip_suffix(')'))
            .and_then(|args| args.split_once(','))
            .and_then(|(_, scale)| scale.trim().parse::<usize>().ok());
        match (integer, decimal_scale) {
            (true, _) => SortAs::Integer,
            (false, Some(scale)) => SortAs::Decimal(scale),
            _ if upper == "FLOAT" || upper == "DOUBLE" => SortAs::Float,
            _ if upper == "DATE" || upper.starts_with("TIMESTAMP") => SortAs::Temporal,
            _ => SortAs::Text,
        }
    }
}

/// Manifest order: NULL first, then numbers (of a numeric column) by number, dates and
/// timestamps by time, other values by their text. Text that does not parse as the column's
/// type sorts after all that does.
pub(super) fn value_order(sort: SortAs, a: Option<&str>, b: Option<&str>) -> Ordering {
    let (a, b) = match (a, b) {
        (Some(a), Some(b)) => (a, b),
        (a, b) => return a.cmp(&b),
    };
    match sort {
        SortAs::Integer => by_parsed(a, b, |v| v.parse::<i128>().ok(), Ord::cmp),
        SortAs::Decimal(scale) => by_parsed(a, b, |v| scaled_decimal(v, scale), Ord::cmp),
        SortAs::Float => by_parsed(a, b, |v| v.parse::<f64>().ok(), f64::total_cmp),
        SortAs::Temporal => by_parsed(a, b, moment, Ord::cmp),
        SortAs::Text => a.cmp(b),
    }
}

/// Compares `a` and `b` as parsed values (text breaks ties), parsed ones first.
fn by_parsed<T>(
    a: &str,
    b: &str,
    parse: impl Fn(&str) -> Option<T>,
    cmp: impl Fn(&T, &T) -> Ordering,
) -> Ordering {
    match (parse(a), parse(b)) {
        (Some(x), Some(y)) => cmp(&x, &y).then_with(|| a.cmp(b)),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

/// A point in time as DuckDB writes a DATE or TIMESTAMP, comparable by time: `-infinity`
/// first, then (astronomical year, the rest of the text), then `infinity`. The year is parsed
/// because its width varies (`10000-01-01`) and a BC year (`0044-03-15 (BC)`, year -43; a
/// timestamp reads `0044-03-15 (BC) 10:00:00`) counts backwards; within a year the rest
/// (`-MM-DD HH:MM:SS[.fraction][+zone]`) has fixed widths up to the fraction, whose digits
/// compare as text, and runs forward in BC years too. Timestamps with a time zone are always
/// written in UTC here (`+00`).
fn moment(text: &str) -> Option<(u8, i64, String)> {
    match text {
        "-infinity" => return Some((0, 0, String::new())),
        "infinity" => return Some((2, 0, String::new())),
        _ => {}
    }
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (year, rest) = text.split_at(digits);
    if !rest.starts_with('-') {
        return None;
    }
    let year: i64 = year.parse().ok()?;
    let bc = rest.contains(" (BC)");
    Some((1, if bc { 1 - year } else { year }, rest.replacen(" (BC)", "", 1)))
}

/// `-12.5` with scale 3 → `-12500`; `None` if the text is not a plain decimal that fits.
fn scaled_decimal(text: &str, scale: usize) -> Option<i128> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() && fraction.is_empty()
        || fraction.len() > scale
        || !whole.bytes().chain(fraction.bytes()).all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let padded = format!("{whole}{fraction:0<scale$}");
    let magnitude: i128 = if padded.is_empty() {
        0
    } else {
        padded.parse().ok()?
    };
    Some(if negative { -magnitude } else { magnitude })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_order_is_numeric_for_numeric_columns() {
        fn sorted<'a>(data_type: &str, values: &[Option<&'a str>]) -> Vec<Option<&'a str>> {
            let mut v = values.to_vec();
            v.sort_by(|a, b| value_order(SortAs::of(data_type), *a, *b));
            v
        }
        let ints = [Some("10"), Some("9"), None, Some("-1"), Some("2")];
        assert_eq!(
            sorted("INTEGER", &ints),
            [None, Some("-1"), Some("2"), Some("9"), Some("10")]
        );
        assert_eq!(
            sorted("VARCHAR", &ints),
            [None, Some("-1"), Some("10"), Some("2"), Some("9")]
        );
        let floats = [
            Some("nan"),
            Some("1e+300"),
            Some("-inf"),
            Some("0.5"),
            Some("-0.0"),
        ];
        assert_eq!(
            sorted("DOUBLE", &floats),
            [
                Some("-inf"),
                Some("-0.0"),
                Some("0.5"),
                Some("1e+300"),
                Some("nan")
            ]
        );
        let dates = [
            Some("2024-01-01"),
            Some("10000-01-01"),
            Some("infinity"),
            Some("1000-01-01 (BC)"),
            Some("0001-01-01"),
            Some("-infinity"),
            Some("0044-03-15 (BC)"),
            Some("0044-01-01 (BC)"),
        ];
        assert_eq!(
            sorted("DATE", &dates),
            [
                Some("-infinity"),
                Some("1000-01-01 (BC)"),
                Some("0044-01-01 (BC)"),
                Some("0044-03-15 (BC)"),
                Some("0001-01-01"),
                Some("2024-01-01"),
                Some("10000-01-01"),
                Some("infinity")
            ]
        );
        let stamps = [
            Some("2024-01-01 10:00:00.25+00"),
            Some("2024-01-01 10:00:00+00"),
            Some("2024-01-01 10:00:00.5+00"),
            Some("0001-12-31 (BC) 23:59:59+00"),
            Some("0001-01-01 (BC) 23:59:59.5+00"),
        ];
        assert_eq!(
            sorted("TIMESTAMP WITH TIME ZONE", &stamps),
            [
                Some("0001-01-01 (BC) 23:59:59.5+00"),
                Some("0001-12-31 (BC) 23:59:59+00"),
                Some("2024-01-01 10:00:00+00"),
                Some("2024-01-01 10:00:00.25+00"),
                Some("2024-01-01 10:00:00.5+00")
            ]
        );
        assert_eq!(
            sorted("DECIMAL(18,3)", &[Some("10.5"), Some("9.25")]),
            [Some("9.25"), Some("10.5")]
        );
        assert_eq!(
            sorted(
                "DECIMAL(38,3)",
                &[
                    Some("100000000000000000000.000"),
                    Some("99999999999999999999.999"),
                    Some("-0.500")
                ]
            ),
            [
                Some("-0.500"),
                Some("99999999999999999999.999"),
                Some("100000000000000000000.000")
            ]
        );
        assert_eq!(
            sorted("UBIGINT", &[Some("18446744073709551615"), Some("7")]),
            [Some("7"), Some("18446744073709551615")]
        );
    }
}
