//! Fuzzing the HTTP input paths in process with proptest: outcome bodies (single, batch, NDJSON), assignment requests and spec documents never yield a 5xx, and every answer keeps its promises.
//!
//! The event parser is private to the server, so it is driven through `liftlab_server::app`
//! with actix test requests over a `MemStore`, exactly as a router would reach it. The case
//! count comes from `PROPTEST_CASES` (scripts/fuzz.sh sets it high); a failure found here is
//! kept as a named regression test at the bottom of this file.

use std::collections::BTreeSet;
use std::sync::Arc;

use actix_web::dev::Service;
use actix_web::test::{self, TestRequest};
use liftlab_server::{app, AppState, Config, KeyRing};
use liftlab_store::{MemStore, Store};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use serde_json::{json, Map, Value};

fn config(default_cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(default_cases);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Units assigned before fuzzing, so that some fuzzed events resolve to a real arm.
const UNITS: usize = 20;

/// One answer: status, content type and body.
#[derive(Debug)]
struct Answer {
    status: u16,
    content_type: String,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Result<Value, TestCaseError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            TestCaseError::fail(format!(
                "{} body is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            ))
        })
    }

    /// The promises every answer keeps: no 5xx, and every error is a problem document.
    fn check_common(&self) -> Result<(), TestCaseError> {
        prop_assert!(
            self.status < 500,
            "server error {}: {}",
            self.status,
            String::from_utf8_lossy(&self.body)
        );
        if self.status >= 400 {
            prop_assert_eq!(&self.content_type, "application/problem+json");
            let p = self.json()?;
            prop_assert_eq!(p["status"].as_u64(), Some(u64::from(self.status)));
            let detail = p["detail"].as_str().unwrap_or_default();
            prop_assert!(
                !detail.is_empty() && !detail.ends_with('.'),
                "detail {:?}",
                detail
            );
        }
        Ok(())
    }
}

/// Runs `body` with an in-process app over a fresh `MemStore` holding the running experiment
/// `fz` (units `t0`…`t19` assigned) and a function sending one request to it.
fn with_app(body: impl FnOnce(&dyn Fn(TestRequest) -> Answer)) {
    let rt = actix_web::rt::System::new();
    let store: Arc<dyn Store> = Arc::new(MemStore::new());
    let state = AppState::new(store, KeyRing::open(), Config::default());
    let service = rt.block_on(test::init_service(app(state)));
    let send = |req: TestRequest| -> Answer {
        rt.block_on(async {
            let res = match service.call(req.to_request()).await {
                Ok(res) => res.into_parts().1.map_into_boxed_body(),
                Err(e) => e.error_response(),
            };
            let status = res.status().as_u16();
            let content_type = res
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let body = actix_web::body::to_bytes(res.into_body())
                .await
                .map(|b| b.to_vec())
                .unwrap_or_default();
            Answer {
                status,
                content_type,
                body,
            }
        })
    };
    let spec = json!({
        "key": "fz",
        "arms": [{"key": "human", "role": "baseline"}, {"key": "ai", "role": "treatment"}],
        "allocation": {"policy": "fixed", "weights": {"human": 0.5, "ai": 0.5}},
        "metrics": [
            {"key": "minutes", "kind": "duration", "direction": "decrease", "role": "primary",
             "covariate": {"attribute": "estimate"}},
            {"key": "escalated", "kind": "binary", "direction": "decrease", "role": "guardrail"},
            {"key": "touches", "kind": "count", "direction": "decrease", "role": "secondary",
             "cap": {"max": 50}},
            {"key": "score", "kind": "continuous", "direction": "increase", "role": "secondary"},
            {"key": "minutes_per_touch", "kind": "duration", "direction": "decrease",
             "role": "secondary", "ratio": {"numerator": "minutes", "denominator": "touches"}}
        ],
        "segments": ["region"]
    });
    let a = send(TestRequest::post().uri("/v1/experiments").set_json(&spec));
    assert_eq!(a.status, 201, "{}", String::from_utf8_lossy(&a.body));
    let a = send(TestRequest::post().uri("/v1/experiments/fz/start"));
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    for i in 0..UNITS {
        let a = send(
            TestRequest::post()
                .uri("/v1/experiments/fz/assign")
                .set_json(json!({"unit_id": format!("t{i}"), "attributes": {"region": "eu", "estimate": i}})),
        );
        assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    }
    body(&send);
}

fn outcomes(content_type: &str, body: Vec<u8>) -> TestRequest {
    TestRequest::post()
        .uri("/v1/outcomes")
        .insert_header(("content-type", content_type.to_string()))
        .set_payload(body)
}

fn short_string() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9_-]{0,12}",
        any::<String>(),
        Just(String::new()),
        Just("x".repeat(300)),
    ]
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON numbers are finite", |x| x.is_finite())
            .prop_map(Value::from),
        proptest::sample::select(&[0.0, 1.0, -1.0, 0.5, 2.0, 1e308, -0.0][..])
            .prop_map(Value::from),
        short_string().prop_map(Value::String),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(short_string(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A field value: usually plausible, sometimes anything.
fn plausible(good: impl Strategy<Value = Value> + 'static) -> BoxedStrategy<Option<Value>> {
    prop_oneof![
        6 => good.prop_map(Some),
        1 => json_value().prop_map(Some),
        1 => Just(None),
    ]
    .boxed()
}

/// An outcome event: mostly well-formed, with every field sometimes wrong or missing.
fn event() -> impl Strategy<Value = Value> {
    let event_id = plausible("e[0-9]{1,3}".prop_map(Value::String));
    let experiment = plausible(prop_oneof![
        4 => Just(Value::String("fz".into())),
        1 => "[a-z]{1,4}".prop_map(Value::String),
    ]);
    let task_id = plausible(prop_oneof![
        4 => (0..UNITS).prop_map(|i| Value::String(format!("t{i}"))),
        1 => short_string().prop_map(Value::String),
    ]);
    let ts = plausible(prop_oneof![
        Just(Value::String("2025-01-02T03:04:05Z".into())),
        Just(Value::String("2025-01-02T03:04:05.123+02:00".into())),
        Just(Value::String("2999-01-02T03:04:05Z".into())),
        short_string().prop_map(Value::String),
    ]);
    let metric_value = prop_oneof![scalar(), (0.0f64..1e4).prop_map(Value::from)];
    let metric_name = prop_oneof![
        4 => proptest::sample::select(&["minutes", "escalated", "touches", "score", "minutes_per_touch"][..])
            .prop_map(str::to_string),
        1 => short_string(),
    ];
    let metrics = plausible(
        proptest::collection::btree_map(metric_name, metric_value, 0..4)
            .prop_map(|m| Value::Object(m.into_iter().collect())),
    );
    let handled_by = plausible(
        proptest::sample::select(&["ai", "human", "hybrid", "robot"][..])
            .prop_map(|s| Value::String(s.into())),
    );
    let extra = proptest::option::weighted(0.1, (short_string(), json_value()));
    (
        event_id, experiment, task_id, ts, metrics, handled_by, extra,
    )
        .prop_map(
            |(event_id, experiment, task_id, ts, metrics, handled_by, extra)| {
                let mut m = Map::new();
                for (k, v) in [
                    ("event_id", event_id),
                    ("experiment", experiment),
                    ("task_id", task_id),
                    ("ts", ts),
                    ("metrics", metrics),
                    ("handled_by", handled_by),
                ] {
                    if let Some(v) = v {
                        m.insert(k.to_string(), v);
                    }
                }
                if let Some((k, v)) = extra {
                    m.insert(k, v);
                }
                Value::Object(m)
            },
        )
}

/// How a list of events travels.
#[derive(Clone, Copy, Debug)]
enum Framing {
    Single,
    Batch,
    Ndjson { crlf: bool, blank_lines: bool },
}

fn framing() -> impl Strategy<Value = Framing> {
    prop_oneof![
        Just(Framing::Single),
        Just(Framing::Batch),
        (any::<bool>(), any::<bool>())
            .prop_map(|(crlf, blank_lines)| Framing::Ndjson { crlf, blank_lines }),
    ]
}

/// The request for `events` framed as `how`, and how many events it holds.
fn frame(events: &[Value], how: Framing) -> (TestRequest, usize) {
    match how {
        Framing::Single => (
            outcomes(
                "application/json",
                serde_json::to_vec(&events[0]).expect("json"),
            ),
            1,
        ),
        Framing::Batch => (
            outcomes(
                "application/json",
                serde_json::to_vec(&json!({ "events": events })).expect("json"),
            ),
            events.len(),
        ),
        Framing::Ndjson { crlf, blank_lines } => {
            let eol = if crlf { "\r\n" } else { "\n" };
            let mut text = String::new();
            for e in events {
                if blank_lines {
                    text.push_str(eol);
                }
                text.push_str(&e.to_string());
                text.push_str(eol);
            }
            (
                outcomes("application/x-ndjson", text.into_bytes()),
                events.len(),
            )
        }
    }
}

/// Checks an outcome answer against the number of events sent (when known).
fn check_outcome_answer(a: &Answer, sent: Option<usize>) -> Result<(u64, u64), TestCaseError> {
    a.check_common()?;
    match a.status {
        200 => {
            let s = a.json()?;
            let accepted = s["accepted"].as_u64().expect("accepted");
            let duplicates = s["duplicates"].as_u64().expect("duplicates");
            let rejected = s["rejected"].as_array().expect("rejected");
            let indices: BTreeSet<u64> = rejected
                .iter()
                .filter_map(|r| r["index"].as_u64())
                .collect();
            prop_assert_eq!(
                indices.len(),
                rejected.len(),
                "one rejection per index: {}",
                s
            );
            for r in rejected {
                prop_assert!(!r["errors"].as_array().expect("errors").is_empty(), "{}", s);
            }
            prop_assert!(
                accepted + duplicates >= 1,
                "a 200 recorded something: {}",
                s
            );
            if let Some(sent) = sent {
                prop_assert!(
                    indices
                        .iter()
                        .all(|i| usize::try_from(*i).is_ok_and(|i| i < sent)),
                    "{}",
                    s
                );
                prop_assert_eq!(
                    accepted + duplicates + u64::try_from(rejected.len()).expect("small"),
                    u64::try_from(sent).expect("small"),
                    "every event is accounted for: {}",
                    s
                );
            }
            Ok((accepted, duplicates))
        }
        400 | 413 | 415 | 422 => Ok((0, 0)),
        other => Err(TestCaseError::fail(format!(
            "unexpected status {other}: {}",
            String::from_utf8_lossy(&a.body)
        ))),
    }
}

#[test]
fn outcome_bodies_of_arbitrary_bytes_are_answered_without_5xx() {
    with_app(|send| {
        let mut runner = TestRunner::new(config(256));
        let strategy = (
            proptest::sample::select(
                &["application/json", "application/x-ndjson", "text/plain", ""][..],
            ),
            prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..512),
                r#"[\[\]{}",:\n\r0-9a-z_ .eE+-]{0,300}"#.prop_map(String::into_bytes),
            ],
        );
        runner
            .run(&strategy, |(ct, body)| {
                let req = if ct.is_empty() {
                    TestRequest::post().uri("/v1/outcomes").set_payload(body)
                } else {
                    outcomes(ct, body)
                };
                let a = send(req);
                check_outcome_answer(&a, None)?;
                Ok(())
            })
            .unwrap_or_else(|e| panic!("{e}"));
    });
}

#[test]
fn outcome_events_are_accounted_for_and_idempotent() {
    with_app(|send| {
        let mut runner = TestRunner::new(config(256));
        let strategy = (proptest::collection::vec(event(), 1..12), framing());
        let recorded = std::cell::Cell::new(0u64);
        runner
            .run(&strategy, |(events, how)| {
                let (req, sent) = frame(&events, how);
                let (accepted, duplicates) = check_outcome_answer(&send(req), Some(sent))?;
                recorded.set(recorded.get() + accepted);
                // Sending the very same request again records nothing new.
                let (req, _) = frame(&events, how);
                let (again_accepted, again_duplicates) =
                    check_outcome_answer(&send(req), Some(sent))?;
                prop_assert_eq!(again_accepted, 0, "a retry is never counted twice");
                prop_assert_eq!(again_duplicates, accepted + duplicates);
                Ok(())
            })
            .unwrap_or_else(|e| panic!("{e}"));
        // The generator reaches the recording path, not only the rejections.
        assert!(recorded.get() > 0, "no fuzzed event was ever accepted");
        // Whatever went in, the results still compute.
        let a = send(TestRequest::get().uri("/v1/experiments/fz/results"));
        assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
        let a = send(TestRequest::get().uri("/v1/experiments/fz/results?format=csv"));
        assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    });
}

#[test]
fn assignment_requests_are_answered_without_5xx() {
    with_app(|send| {
        let mut runner = TestRunner::new(config(256));
        let request = prop_oneof![
            json_value(),
            (
                plausible(short_string().prop_map(Value::String)),
                plausible(short_string().prop_map(Value::String)),
                plausible(
                    proptest::collection::btree_map(
                        prop_oneof![3 => short_string(), 1 => Just("estimate".to_string())],
                        prop_oneof![3 => short_string().prop_map(Value::String), 1 => scalar()],
                        0..3
                    )
                    .prop_map(|m| Value::Object(m.into_iter().collect()))
                ),
            )
                .prop_map(|(unit, task, attrs)| {
                    let mut m = Map::new();
                    for (k, v) in [("unit_id", unit), ("task_id", task), ("attributes", attrs)] {
                        if let Some(v) = v {
                            m.insert(k.to_string(), v);
                        }
                    }
                    Value::Object(m)
                }),
        ];
        let strategy = (
            proptest::sample::select(&["fz", "nope", "FZ", "fz%2F..", ""][..]),
            request,
        );
        runner
            .run(&strategy, |(key, body)| {
                let a = send(
                    TestRequest::post()
                        .uri(&format!("/v1/experiments/{key}/assign"))
                        .set_json(&body),
                );
                a.check_common()?;
                if a.status == 200 {
                    let r = a.json()?;
                    prop_assert_eq!(&r["experiment"], &json!("fz"));
                    prop_assert!(
                        ["human", "ai"].contains(&r["arm"].as_str().unwrap_or_default()),
                        "{}",
                        r
                    );
                    let p = r["propensity"].as_f64().expect("propensity");
                    prop_assert!(0.0 < p && p <= 1.0, "{}", r);
                }
                Ok(())
            })
            .unwrap_or_else(|e| panic!("{e}"));
    });
}

#[test]
fn spec_documents_are_answered_without_5xx() {
    with_app(|send| {
        let mut runner = TestRunner::new(config(128));
        let strategy = (json_value(), proptest::sample::select(&["POST", "PUT"][..]));
        runner
            .run(&strategy, |(doc, method)| {
                let req = if method == "POST" {
                    TestRequest::post().uri("/v1/experiments")
                } else {
                    TestRequest::put().uri("/v1/experiments/fz")
                };
                let a = send(req.set_json(&doc));
                a.check_common()?;
                prop_assert!(
                    matches!(a.status, 200 | 201 | 400 | 409 | 413 | 415 | 422),
                    "status {}",
                    a.status
                );
                Ok(())
            })
            .unwrap_or_else(|e| panic!("{e}"));
    });
}
