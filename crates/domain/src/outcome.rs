//! Outcome events as clients send them, validated once: [`OutcomeEvent`] and [`Outcome::parse`].
//!
//! `POST /v1/outcomes` deserializes each event into an [`OutcomeEvent`] (unknown fields and
//! wrong types are refused there), then [`Outcome::parse`] checks everything else against the
//! experiment's spec and joins the event to the unit's stored assignment, listing every
//! problem with its JSON pointer. Ids follow the one rule of [`crate::assign::id_problem`],
//! the same for unit, task, event and model-version ids.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use crate::assign::id_problem;
use crate::error::SpecErrors;
use crate::model::{check_outcome_ts, Assignment, HandledBy, Millis, Outcome};
use crate::spec::walker::pointer;
use crate::spec::ExperimentSpec;

/// One outcome event as the client sends it, before validation.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutcomeEvent {
    /// The client's idempotency key.
    pub event_id: String,
    /// The experiment key.
    pub experiment: String,
    /// The task the outcome is about (its assignment says the unit and arm).
    pub task_id: String,
    /// When it happened (RFC 3339); the time of receipt when absent.
    #[serde(default)]
    pub ts: Option<String>,
    /// Metric values by key.
    pub metrics: BTreeMap<String, Value>,
    /// Who handled the case.
    #[serde(default)]
    pub handled_by: Option<HandledBy>,
    /// The AI model version that handled it.
    #[serde(default)]
    pub model_version: Option<String>,
    /// Free-form attributes, kept with the event.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

/// Parses an RFC 3339 timestamp (`2025-01-31T12:00:00Z`, with an optional fraction of a
/// second and a `Z` or `±HH:MM` offset) into Unix milliseconds; digits past the millisecond
/// are dropped.
pub fn parse_rfc3339(text: &str) -> Result<Millis, String> {
    rfc3339_millis(text.as_bytes()).ok_or_else(|| {
        format!(
            "must be an RFC 3339 timestamp like 2025-01-31T12:00:00Z, got `{}`",
            shorten(text)
        )
    })
}

fn rfc3339_millis(b: &[u8]) -> Option<Millis> {
    let num = |from: usize, len: usize| -> Option<i64> {
        let digits = b.get(from..from + len)?;
        digits.iter().try_fold(0i64, |n, d| {
            d.is_ascii_digit().then(|| n * 10 + i64::from(d - b'0'))
        })
    };
    let at = |i: usize, c: u8| b.get(i).is_some_and(|x| x.eq_ignore_ascii_case(&c));
    if !(at(4, b'-') && at(7, b'-') && at(10, b'T') && at(13, b':') && at(16, b':')) {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days_in_month = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        1..=12 => 31,
        _ => return None,
    };
    if day < 1 || day > days_in_month || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut i = 19;
    let mut millis = 0;
    if at(i, b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            if i - start < 3 {
                millis = millis * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        if i == start {
            return None;
        }
        for _ in (i - start)..3 {
            millis *= 10;
        }
    }
    let offset_minutes = if at(i, b'Z') && b.len() == i + 1 {
        0
    } else if matches!(b.get(i), Some(b'+' | b'-')) && at(i + 3, b':') && b.len() == i + 6 {
        let (h, m) = (num(i + 1, 2)?, num(i + 4, 2)?);
        if h > 23 || m > 59 {
            return None;
        }
        let sign = if b[i] == b'-' { -1 } else { 1 };
        sign * (h * 60 + m)
    } else {
        return None;
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    Some(seconds * 1000 + millis)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

impl OutcomeEvent {
    /// The checks that need no experiment: the ids and the time. Returns the event's time
    /// (`received` when it gave none or a bad one) and adds each problem to `errors`.
    pub fn check(&self, received: Millis, errors: &mut SpecErrors) -> Millis {
        let mut id = |at: &str, value: &str| {
            if let Some(message) = id_problem(value) {
                errors.push(at, message);
            }
        };
        id("/event_id", &self.event_id);
        id("/task_id", &self.task_id);
        if let Some(m) = &self.model_version {
            id("/model_version", m);
        }
        match self.ts.as_deref() {
            None => received,
            Some(text) => parse_rfc3339(text)
                .and_then(|ts| check_outcome_ts(ts, received).map(|()| ts))
                .unwrap_or_else(|message| {
                    errors.push("/ts", message);
                    received
                }),
        }
    }
}

impl Outcome {
    /// Validates `event` against its experiment's `spec` and joins it to `assignment`, the
    /// stored assignment of its task (`None` when the task has none), as an outcome of
    /// analysis epoch `epoch`: every problem is listed with its pointer.
    ///
    /// Beyond [`OutcomeEvent::check`]: at least one metric, each value valid for its metric
    /// ([`ExperimentSpec::validate_metric_value`]), and an assignment for the task. The unit
    /// and arm come from the assignment, never from the client.
    pub fn parse(
        event: OutcomeEvent,
        spec: &ExperimentSpec,
        epoch: u64,
        assignment: Option<&Assignment>,
        received: Millis,
    ) -> Result<Outcome, SpecErrors> {
        let mut errors = SpecErrors::default();
        let ts = event.check(received, &mut errors);
        if event.metrics.is_empty() {
            errors.push("/metrics", "must hold at least one metric");
        }
        let mut metrics = BTreeMap::new();
        for (name, value) in &event.metrics {
            match spec.validate_metric_value(name, value) {
                Ok(x) => {
                    metrics.insert(name.clone(), x);
                }
                Err(message) => errors.push(pointer("/metrics", name), message),
            }
        }
        if assignment.is_none() && !event.task_id.is_empty() {
            errors.push(
                "/task_id",
                format!(
                    "task `{}` has no assignment in experiment `{}`",
                    shorten(&event.task_id),
                    event.experiment
                ),
            );
        }
        let Some(assignment) = assignment.filter(|_| errors.is_empty()) else {
            return Err(errors);
        };
        Ok(Outcome {
            event_id: event.event_id,
            experiment: event.experiment,
            task_id: event.task_id,
            unit_id: assignment.unit_id.clone(),
            arm: assignment.arm.clone(),
            epoch,
            ts,
            metrics,
            handled_by: event.handled_by,
            model_version: event.model_version,
            attributes: event.attributes,
        })
    }
}

/// At most 80 characters of a client's text, for messages.
pub fn shorten(text: &str) -> String {
    let mut out: String = text.chars().take(80).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn spec() -> ExperimentSpec {
        ExperimentSpec::parse(&json!({
            "key": "triage",
            "arms": [{"key": "human", "role": "baseline"}, {"key": "ai", "role": "treatment"}],
            "allocation": {"policy": "fixed", "weights": {"human": 0.5, "ai": 0.5}},
            "metrics": [
                {"key": "minutes", "kind": "duration", "direction": "decrease", "role": "primary"},
                {"key": "resolved", "kind": "binary", "direction": "increase", "role": "secondary"}
            ]
        }))
        .expect("valid")
    }

    fn assignment() -> Assignment {
        Assignment {
            experiment: "triage".into(),
            unit_id: "u1".into(),
            task_id: "t1".into(),
            arm: "ai".into(),
            in_experiment: true,
            version: 2,
            assignment_id: "a".into(),
            propensity: 0.5,
            period: 0,
            epoch: 0,
            segments: BTreeMap::new(),
            assigned_at: 0,
        }
    }

    fn event(doc: Value) -> OutcomeEvent {
        serde_json::from_value(doc).expect("the event's shape")
    }

    const NOW: Millis = 1_767_225_600_000; // 2026-01-01T00:00:00Z

    #[test]
    fn a_valid_event_takes_its_unit_and_arm_from_the_assignment() {
        let e = event(
            json!({"event_id": "e1", "experiment": "triage", "task_id": "t1",
            "ts": "2025-12-31T23:00:00Z", "metrics": {"minutes": 12.5, "resolved": true},
            "handled_by": "ai", "model_version": "v2"}),
        );
        let o = Outcome::parse(e, &spec(), 3, Some(&assignment()), NOW).expect("valid");
        assert_eq!(
            (o.unit_id.as_str(), o.arm.as_str(), o.epoch),
            ("u1", "ai", 3)
        );
        assert_eq!(o.ts, NOW - 3_600_000);
        assert_eq!(o.metrics["resolved"], 1.0);
        let e = event(
            json!({"event_id": "e1", "experiment": "triage", "task_id": "t1",
            "metrics": {"minutes": 1}}),
        );
        let o = Outcome::parse(e, &spec(), 0, Some(&assignment()), NOW).expect("valid");
        assert_eq!(o.ts, NOW, "no ts: the time of receipt");
    }

    #[test]
    fn every_problem_is_listed_with_its_pointer() {
        let long = "x".repeat(257);
        let e = event(
            json!({"event_id": "", "experiment": "triage", "task_id": long,
            "ts": "yesterday", "model_version": "", "metrics": {"minutes": -1, "a/b": 1}}),
        );
        let errors = Outcome::parse(e, &spec(), 0, None, NOW).expect_err("invalid");
        assert_eq!(
            errors.pointers(),
            [
                "/event_id",
                "/task_id",
                "/model_version",
                "/ts",
                "/metrics/a~1b",
                "/metrics/minutes",
                "/task_id"
            ]
        );
        let e = event(
            json!({"event_id": "e", "experiment": "triage", "task_id": "t",
            "ts": "2026-01-01T02:00:00Z", "metrics": {}}),
        );
        let errors = Outcome::parse(e, &spec(), 0, Some(&assignment()), NOW).expect_err("bad");
        assert_eq!(errors.pointers(), ["/ts", "/metrics"]);
        assert!(
            errors.problems[0]
                .message
                .contains("120 minutes in the future"),
            "{errors}"
        );
    }

    #[test]
    fn unknown_fields_and_a_client_sent_arm_are_refused_by_shape() {
        let doc =
            json!({"event_id": "e", "experiment": "x", "task_id": "t", "metrics": {}, "arm": "ai"});
        let err = serde_json::from_value::<OutcomeEvent>(doc).expect_err("arm is not accepted");
        assert!(err.to_string().contains("unknown field `arm`"), "{err}");
    }

    #[test]
    fn rfc3339_offsets_and_fractions() {
        // Epoch milliseconds from Python's datetime.fromisoformat(...).timestamp() * 1000.
        let cases = [
            ("1970-01-01T00:00:00Z", 0),
            ("2025-01-31T12:00:00.250Z", 1_738_324_800_250),
            ("2025-01-31T13:00:00.250+01:00", 1_738_324_800_250),
            ("2024-02-29T23:59:59.9999-05:30", 1_709_270_999_999),
            ("1969-12-31T23:59:59.5z", -500),
            ("2000-03-01t00:00:00Z", 951_868_800_000),
        ];
        for (text, ms) in cases {
            assert_eq!(parse_rfc3339(text), Ok(ms), "{text}");
        }
        for bad in [
            "",
            "2025-01-31",
            "2025-13-01T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2025-01-31T24:00:00Z",
            "2025-01-31T12:00:00",
            "2025-01-31T12:00:00.Z",
            "2025-01-31T12:00:00+0100",
            "2025-01-31T12:00:00Z ",
            "noon",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn every_formatted_time_parses_back(ms in -62_135_596_800_000i64..253_402_300_800_000) {
            let text = crate::report::format_ts(ms);
            proptest::prop_assert_eq!(parse_rfc3339(&text), Ok(ms), "{}", text);
        }
    }
}
