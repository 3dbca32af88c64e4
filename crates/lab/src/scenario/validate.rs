//! The scenario format's validation helpers: problems collected at JSON pointers, and the readers of numbers, shares and names that report them.

use super::*;

/// Problems found in a scenario document, each at a JSON pointer.
#[derive(Debug, Default)]
pub(super) struct Problems(pub(super) Vec<(String, String)>);

impl Problems {
    pub(super) fn push(&mut self, pointer: impl Into<String>, message: impl Into<String>) {
        self.0.push((pointer.into(), message.into()));
    }
}

pub(super) fn report(problems: Problems) -> anyhow::Error {
    let lines: Vec<String> = problems
        .0
        .iter()
        .map(|(pointer, message)| {
            let at = if pointer.is_empty() {
                "(document)"
            } else {
                pointer
            };
            format!("  {at}: {message}")
        })
        .collect();
    anyhow::anyhow!(
        "{} problem{}:\n{}",
        lines.len(),
        if lines.len() == 1 { "" } else { "s" },
        lines.join("\n")
    )
}

pub(super) fn pointer(base: &str, token: &str) -> String {
    format!("{base}/{}", token.replace('~', "~0").replace('/', "~1"))
}

pub(super) fn unknown_fields(
    object: &Map<String, Value>,
    at: &str,
    allowed: &[&str],
    problems: &mut Problems,
) {
    for key in object.keys() {
        if !allowed.contains(&key.as_str()) {
            problems.push(
                pointer(at, key),
                format!("unknown field; expected one of {}", allowed.join(", ")),
            );
        }
    }
}

pub(super) fn opt_string(
    object: &Map<String, Value>,
    at: &str,
    field: &str,
    problems: &mut Problems,
) -> Option<String> {
    match object.get(field) {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            problems.push(pointer(at, field), "must be a string");
            None
        }
    }
}

pub(super) fn whole(v: &Value, at: &str, min: u64, max: u64, problems: &mut Problems) -> usize {
    match v
        .as_u64()
        .filter(|n| min <= *n && *n <= max)
        .and_then(|n| usize::try_from(n).ok())
    {
        Some(n) => n,
        None => {
            problems.push(at, format!("must be a whole number from {min} to {max}"));
            0
        }
    }
}

pub(super) fn number(v: &Value, at: &str, problems: &mut Problems) -> Option<f64> {
    match v.as_f64().filter(|x| x.is_finite()) {
        Some(x) => Some(x),
        None => {
            problems.push(at, "must be a finite number");
            None
        }
    }
}

pub(super) fn non_negative(v: &Value, at: &str, problems: &mut Problems) -> f64 {
    match number(v, at, problems) {
        Some(x) if x >= 0.0 => x,
        Some(_) => {
            problems.push(at, "must be ≥ 0");
            0.0
        }
        None => 0.0,
    }
}

pub(super) fn positive_number(
    v: Option<&Value>,
    at: &str,
    default: f64,
    problems: &mut Problems,
) -> f64 {
    let Some(v) = v else {
        return default;
    };
    match number(v, at, problems) {
        Some(x) if x > 0.0 => x,
        Some(_) => {
            problems.push(at, "must be > 0");
            default
        }
        None => default,
    }
}

pub(super) fn probability_value(v: &Value, at: &str, problems: &mut Problems) -> f64 {
    match number(v, at, problems) {
        Some(x) if (0.0..=1.0).contains(&x) => x,
        Some(_) => {
            problems.push(at, "must be a probability in [0, 1]");
            0.0
        }
        None => 0.0,
    }
}
