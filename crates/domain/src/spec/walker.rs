//! The JSON walker the parsers share: it reads typed values out of a document and collects every problem at its JSON pointer.

use serde_json::{Map, Value};

use super::is_slug;
use crate::error::SpecErrors;

/// Longest accepted attribute name.
const MAX_ATTRIBUTE: usize = 64;

/// Appends one reference token to a JSON pointer, escaping `~` and `/` as RFC 6901 says.
pub(crate) fn pointer(base: &str, token: &str) -> String {
    let mut out = String::with_capacity(base.len() + token.len() + 1);
    out.push_str(base);
    out.push('/');
    for c in token.chars() {
        match c {
            '~' => out.push_str("~0"),
            '/' => out.push_str("~1"),
            c => out.push(c),
        }
    }
    out
}

/// The JSON type name of a value, for messages.
pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Collects problems while walking the document.
#[derive(Default)]
pub(crate) struct Walker {
    pub(crate) errors: SpecErrors,
}

impl Walker {
    pub(crate) fn problem(&mut self, at: &str, message: impl Into<String>) {
        self.errors.push(at, message);
    }

    /// The value as an object whose fields are all in `allowed`; unknown fields are problems.
    pub(crate) fn object<'a>(
        &mut self,
        at: &str,
        v: &'a Value,
        allowed: &[&str],
    ) -> Option<&'a Map<String, Value>> {
        let Some(map) = v.as_object() else {
            self.problem(at, format!("must be an object, not {}", type_name(v)));
            return None;
        };
        for key in map.keys() {
            if !allowed.contains(&key.as_str()) {
                self.problem(
                    &pointer(at, key),
                    format!(
                        "unknown field {key:?}; allowed fields are {}",
                        allowed.join(", ")
                    ),
                );
            }
        }
        Some(map)
    }

    /// A required field: a problem when missing.
    pub(crate) fn required<'a>(
        &mut self,
        map: &'a Map<String, Value>,
        at: &str,
        key: &str,
    ) -> Option<&'a Value> {
        let v = map.get(key);
        if v.is_none() {
            self.problem(&pointer(at, key), "is required");
        }
        v
    }

    pub(crate) fn string(&mut self, at: &str, v: &Value, min: usize, max: usize) -> Option<String> {
        let Some(s) = v.as_str() else {
            self.problem(at, format!("must be a string, not {}", type_name(v)));
            return None;
        };
        let len = s.chars().count();
        if len < min {
            self.problem(at, "must not be empty");
            return None;
        }
        if len > max {
            self.problem(at, format!("must be at most {max} characters, got {len}"));
            return None;
        }
        Some(s.to_string())
    }

    pub(crate) fn slug(&mut self, at: &str, v: &Value, what: &str) -> Option<String> {
        let Some(s) = v.as_str() else {
            self.problem(at, format!("must be a string, not {}", type_name(v)));
            return None;
        };
        if !is_slug(s) {
            self.problem(
                at,
                format!("{what} {s:?} is not a slug: use 1–64 of a-z, 0-9, _ and -, starting with a letter or digit"),
            );
            return None;
        }
        Some(s.to_string())
    }

    /// An attribute name: 1–64 characters without control characters.
    pub(crate) fn attribute(&mut self, at: &str, name: &str) -> bool {
        let len = name.chars().count();
        if len == 0 || len > MAX_ATTRIBUTE || name.chars().any(char::is_control) {
            self.problem(
                at,
                format!("attribute name {name:?} must be 1–{MAX_ATTRIBUTE} characters without control characters"),
            );
            return false;
        }
        true
    }

    pub(crate) fn number(&mut self, at: &str, v: &Value) -> Option<f64> {
        match v.as_f64() {
            Some(x) if x.is_finite() => Some(x),
            Some(_) => {
                self.problem(at, "must be a finite number");
                None
            }
            None => {
                self.problem(at, format!("must be a number, not {}", type_name(v)));
                None
            }
        }
    }

    /// A number checked by `ok`, whose failure is described by `range`.
    pub(crate) fn number_in(
        &mut self,
        at: &str,
        v: &Value,
        range: &str,
        ok: impl Fn(f64) -> bool,
    ) -> Option<f64> {
        let x = self.number(at, v)?;
        if ok(x) {
            Some(x)
        } else {
            self.problem(at, format!("must be {range}, got {x}"));
            None
        }
    }

    pub(crate) fn integer(&mut self, at: &str, v: &Value, lo: u64, hi: u64) -> Option<u64> {
        let x = self.number(at, v)?;
        let whole = v.as_u64().or_else(|| {
            // JSON like `100.0` is a whole number too; the range check below bounds it.
            (x.fract() == 0.0 && (0.0..=1e15).contains(&x))
                .then(|| format!("{x:.0}").parse().ok())?
        });
        match whole {
            Some(n) if lo <= n && n <= hi => Some(n),
            _ => {
                self.problem(
                    at,
                    format!("must be a whole number from {lo} to {hi}, got {x}"),
                );
                None
            }
        }
    }

    pub(crate) fn boolean(&mut self, at: &str, v: &Value) -> Option<bool> {
        let b = v.as_bool();
        if b.is_none() {
            self.problem(at, format!("must be true or false, not {}", type_name(v)));
        }
        b
    }

    pub(crate) fn array<'a>(&mut self, at: &str, v: &'a Value) -> Option<&'a Vec<Value>> {
        let a = v.as_array();
        if a.is_none() {
            self.problem(at, format!("must be an array, not {}", type_name(v)));
        }
        a
    }

    /// One of a closed set of strings.
    pub(crate) fn choice<T: Copy>(
        &mut self,
        at: &str,
        v: &Value,
        options: &[(&str, T)],
    ) -> Option<T> {
        let names = || {
            options
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let Some(s) = v.as_str() else {
            self.problem(
                at,
                format!("must be one of {}, not {}", names(), type_name(v)),
            );
            return None;
        };
        match options.iter().find(|(n, _)| *n == s) {
            Some((_, t)) => Some(*t),
            None => {
                self.problem(
                    at,
                    format!("unknown value {s:?}; expected one of {}", names()),
                );
                None
            }
        }
    }
}
