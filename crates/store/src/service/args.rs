//! Typed access to an action's JSON arguments; every problem names the argument.

use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// The arguments object of one call.
pub(crate) struct Args<'a> {
    op: &'static str,
    /// The field errors about unknown keys name: `args`, or the nested argument (`quota`).
    field: &'static str,
    map: &'a Map<String, Value>,
}

impl<'a> Args<'a> {
    pub fn new(op: &'static str, value: &'a Value) -> Result<Args<'a>> {
        match value {
            Value::Object(map) => Ok(Args {
                op,
                field: "args",
                map,
            }),
            other => Err(Error::invalid(
                op,
                "args",
                format!("arguments must be a JSON object, got {}", type_name(other)),
            )),
        }
    }

    /// Refuses any argument that is neither in `accepted` nor in `extras`, naming it and
    /// what `action` takes.
    pub fn only(&self, action: &str, accepted: &[&str], extras: &[&str]) -> Result<()> {
        let Some(unknown) = self
            .map
            .keys()
            .find(|k| !accepted.contains(&k.as_str()) && !extras.contains(&k.as_str()))
        else {
            return Ok(());
        };
        let takes: Vec<&str> = accepted.iter().chain(extras).copied().collect();
        let takes = if takes.is_empty() {
            "no arguments".to_string()
        } else {
            takes.join(", ")
        };
        Err(Error::invalid(
            self.op,
            self.field,
            format!(
                "unknown argument {} for {action}, which takes {takes}; check its spelling",
                quoted(unknown)
            ),
        ))
    }

    fn get(&self, name: &str) -> Option<&'a Value> {
        self.map.get(name).filter(|v| !v.is_null())
    }

    fn mistyped(&self, name: &'static str, want: &str, got: &Value) -> Error {
        Error::invalid(
            self.op,
            name,
            format!("expected {want}, got {}; pass {name:?} as {want}", type_name(got)),
        )
    }

    /// A required string.
    pub fn str(&self, name: &'static str) -> Result<&'a str> {
        self.opt_str(name)?.ok_or_else(|| {
            Error::invalid(
                self.op,
                name,
                format!("missing required argument {name:?}; add it to the arguments object"),
            )
        })
    }

    pub fn opt_str(&self, name: &'static str) -> Result<Option<&'a str>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(self.mistyped(name, "a string", other)),
        }
    }

    pub fn opt_u64(&self, name: &'static str) -> Result<Option<u64>> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v.as_u64().map(Some).ok_or_else(|| {
                Error::invalid(
                    self.op,
                    name,
                    format!(
                        "expected a non-negative integer, got {}; pass {name:?} as a whole number",
                        shown(v)
                    ),
                )
            }),
        }
    }

    pub fn opt_i64(&self, name: &'static str) -> Result<Option<i64>> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v.as_i64().map(Some).ok_or_else(|| {
                Error::invalid(
                    self.op,
                    name,
                    format!(
                        "expected a 64-bit integer, got {}; pass {name:?} as a whole number",
                        shown(v)
                    ),
                )
            }),
        }
    }

    #[cfg_attr(not(feature = "analytics"), allow(dead_code))]
    pub fn opt_bool(&self, name: &'static str) -> Result<Option<bool>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(self.mistyped(name, "a boolean", other)),
        }
    }

    #[cfg_attr(not(feature = "analytics"), allow(dead_code))]
    pub fn opt_array(&self, name: &'static str) -> Result<Option<&'a Vec<Value>>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Array(items)) => Ok(Some(items)),
            Some(other) => Err(self.mistyped(name, "an array", other)),
        }
    }

    /// An optional nested object, as arguments of its own.
    pub fn opt_object(&self, name: &'static str) -> Result<Option<Args<'a>>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Object(map)) => Ok(Some(Args {
                op: self.op,
                field: name,
                map,
            })),
            Some(other) => Err(self.mistyped(name, "an object", other)),
        }
    }

    /// Whether the argument is present at all, even as `null`.
    pub fn has(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }
}

/// The longest argument text an error quotes back; longer input (it may be megabytes) is cut.
const QUOTED_MAX: usize = 200;

/// `text` quoted as `{:?}` would, cut to [`QUOTED_MAX`] bytes with its full length said.
pub(crate) fn quoted(text: &str) -> String {
    match cut(text) {
        Some(head) => format!("{head:?}… ({} bytes)", text.len()),
        None => format!("{text:?}"),
    }
}

/// A JSON argument as an error quotes it back, cut like [`quoted`].
fn shown(v: &Value) -> String {
    let text = v.to_string();
    match cut(&text) {
        Some(head) => format!("{head}… ({} bytes)", text.len()),
        None => text,
    }
}

/// The first [`QUOTED_MAX`] bytes of `text` (at a character boundary) if it is longer.
fn cut(text: &str) -> Option<&str> {
    if text.len() <= QUOTED_MAX {
        return None;
    }
    let end = (0..=QUOTED_MAX)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    Some(&text[..end])
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
