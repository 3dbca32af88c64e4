//! How `POST /v1/outcomes` frames its events (one event, `{"events":[…]}`, or an NDJSON stream read line by line) and parses each into a [`Pending`] event before validation.

use liftlab_domain::outcome::OutcomeEvent;
use serde_json::Value;

use crate::error::{
    error_pointer, escape_pointer, json_error, strip_position, too_large, ApiError, FieldError,
};

/// How the request framed its events, for pointers into it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Framing {
    Single,
    Batch,
    Stream,
}

impl Framing {
    /// The pointer of event `index` within the request document.
    pub(super) fn base(self, index: usize) -> String {
        match self {
            Framing::Single => String::new(),
            Framing::Batch => format!("/events/{index}"),
            Framing::Stream => format!("/{index}"),
        }
    }
}

/// Whether a `Content-Type` names an NDJSON stream.
pub(super) fn is_ndjson(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    matches!(
        essence.as_str(),
        "application/x-ndjson"
            | "application/ndjson"
            | "application/jsonl"
            | "application/x-jsonlines"
    )
}

/// Splits a JSON document into its events: `{"events":[…]}` is a batch, any other object one event.
pub(super) fn split(document: Value) -> Result<(Framing, Vec<Value>), ApiError> {
    match document {
        Value::Object(mut map) if map.contains_key("events") => {
            if map.len() > 1 {
                let extra = map
                    .keys()
                    .find(|k| *k != "events")
                    .cloned()
                    .unwrap_or_default();
                return Err(ApiError::invalid(
                    format!("/{}", escape_pointer(&extra)),
                    "a batch has only the field `events`",
                ));
            }
            match map.remove("events") {
                Some(Value::Array(events)) => Ok((Framing::Batch, events)),
                _ => Err(ApiError::invalid("/events", "must be an array of events")),
            }
        }
        Value::Object(map) => Ok((Framing::Single, vec![Value::Object(map)])),
        _ => Err(ApiError::invalid(
            "",
            "must be an event object or {\"events\": [...]}",
        )),
    }
}

/// One event on its way in: parsed, or already rejected.
#[derive(Debug)]
pub(super) struct Pending {
    pub(super) index: usize,
    pub(super) event: Result<OutcomeEvent, Vec<FieldError>>,
}

impl Pending {
    pub(super) fn from_value(index: usize, value: Value) -> Pending {
        let event = match serde_path_to_error::deserialize::<_, OutcomeEvent>(value) {
            Ok(event) => Ok(event),
            Err(e) => {
                let pointer = error_pointer(&e);
                Err(vec![FieldError::new(
                    pointer,
                    strip_position(&e.inner().to_string()),
                )])
            }
        };
        Pending { index, event }
    }

    /// Parses one NDJSON line; `None` for a blank line.
    fn from_line(index: usize, line: &[u8]) -> Option<Pending> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            return None;
        }
        let mut de = serde_json::Deserializer::from_slice(line);
        let parsed = serde_path_to_error::deserialize::<_, OutcomeEvent>(&mut de)
            .map_err(|e| {
                let pointer = error_pointer(&e);
                let message = match json_error(e.inner(), &pointer) {
                    ApiError::Validation { errors, .. } => errors
                        .into_iter()
                        .next()
                        .map(|f| f.message)
                        .unwrap_or_default(),
                    other => other.to_string(),
                };
                vec![FieldError::new(pointer, message)]
            })
            .and_then(|event| {
                de.end()
                    .map(|()| event)
                    .map_err(|e| vec![FieldError::new("", format!("malformed JSON: {e}"))])
            });
        Some(Pending {
            index,
            event: parsed,
        })
    }
}

/// An NDJSON body read chunk by chunk as it arrives: complete lines become [`Pending`] events
/// (blank lines are skipped and not counted), the unfinished line is kept for the next chunk.
pub(super) struct NdjsonLines {
    /// The largest stream accepted, in bytes.
    limit: usize,
    /// The largest line accepted, in bytes.
    line_limit: usize,
    total: usize,
    line: Vec<u8>,
    index: usize,
}

impl NdjsonLines {
    pub(super) fn new(limit: usize, line_limit: usize) -> NdjsonLines {
        NdjsonLines {
            limit,
            line_limit,
            total: 0,
            line: Vec::new(),
            index: 0,
        }
    }

    /// Takes the next chunk of the body and returns the events of the lines it completes; an
    /// error when the stream has grown beyond its limit.
    pub(super) fn feed(&mut self, chunk: &[u8]) -> Result<Vec<Pending>, ApiError> {
        self.total += chunk.len();
        if self.total > self.limit {
            return Err(too_large(self.limit));
        }
        let mut events = Vec::new();
        let mut rest = chunk;
        while let Some(pos) = rest.iter().position(|b| *b == b'\n') {
            self.line.extend_from_slice(&rest[..pos]);
            rest = &rest[pos + 1..];
            if let Some(p) = Pending::from_line(self.index, &self.line) {
                events.push(p);
                self.index += 1;
            }
            self.line.clear();
        }
        self.line.extend_from_slice(rest);
        Ok(events)
    }

    /// An error when the line not yet ended already exceeds the line limit.
    pub(super) fn check_open_line(&self) -> Result<(), ApiError> {
        if self.line.len() > self.line_limit {
            return Err(ApiError::PayloadTooLarge(format!(
                "NDJSON line {} exceeds the limit of {} bytes",
                self.index + 1,
                self.line_limit
            )));
        }
        Ok(())
    }

    /// The event of a last line that has no newline after it, if there is one.
    pub(super) fn finish(self) -> Option<Pending> {
        Pending::from_line(self.index, &self.line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ndjson_media_types() {
        assert!(is_ndjson("application/x-ndjson"));
        assert!(is_ndjson("application/x-ndjson; charset=utf-8"));
        assert!(is_ndjson("application/jsonl"));
        assert!(!is_ndjson("application/json"));
    }

    #[test]
    fn documents_split_into_single_events_and_batches() {
        let (framing, events) = split(serde_json::json!({"event_id": "e"})).expect("single");
        assert_eq!((framing, events.len()), (Framing::Single, 1));
        let (framing, events) = split(serde_json::json!({"events": [{}, {}]})).expect("batch");
        assert_eq!((framing, events.len()), (Framing::Batch, 2));
        assert!(split(serde_json::json!({"events": {}})).is_err());
        assert!(split(serde_json::json!({"events": [], "x": 1})).is_err());
        assert!(split(serde_json::json!([1, 2])).is_err());
    }

    #[test]
    fn a_client_sent_arm_is_an_unknown_field() {
        let p = Pending::from_value(
            0,
            serde_json::json!({"event_id":"e","experiment":"x","task_id":"t","metrics":{},"arm":"ai"}),
        );
        let errors = p.event.expect_err("arm is rejected");
        assert!(
            errors[0].message.contains("unknown field `arm`"),
            "{errors:?}"
        );
    }

    #[test]
    fn ndjson_lines_parse_or_reject_alone() {
        assert!(Pending::from_line(0, b"   ").is_none());
        assert!(Pending::from_line(0, b"\r").is_none());
        let bad = Pending::from_line(3, b"{\"event_id\": ").expect("not blank");
        assert_eq!(bad.index, 3);
        assert!(bad.event.is_err());
        let trailing = Pending::from_line(
            0,
            br#"{"event_id":"e","experiment":"x","task_id":"t","metrics":{}} {}"#,
        )
        .expect("not blank");
        assert!(trailing.event.is_err());
        let good = Pending::from_line(
            0,
            br#"{"event_id":"e","experiment":"x","task_id":"t","metrics":{"m":1}}"#,
        )
        .expect("not blank");
        assert!(good.event.is_ok());
    }

    #[test]
    fn ndjson_lines_join_across_chunks_and_skip_blanks() {
        let mut lines = NdjsonLines::new(1024, 64);
        let first = lines.feed(b"{\"event_id\"").expect("within the limit");
        assert!(first.is_empty());
        let second = lines.feed(b": 1}\n\n  \n{").expect("within the limit");
        assert_eq!(second.iter().map(|p| p.index).collect::<Vec<_>>(), [0]);
        let last = lines.finish().expect("an unfinished last line");
        assert_eq!(last.index, 1);
    }

    #[test]
    fn ndjson_limits_bound_the_stream_and_the_open_line() {
        let mut lines = NdjsonLines::new(8, 4);
        lines.feed(b"abcde").expect("within the stream limit");
        assert!(lines.check_open_line().is_err());
        assert!(lines.feed(b"fghi").is_err());
    }
}
