//! Outcomes through the API: recorded once and attributed to the served arm, refused from the future, batches and NDJSON streams.

use crate::common::*;
use actix_web::http::StatusCode;
use liftlab_server::{app, Config};
use serde_json::json;

#[actix_web::test]
async fn outcomes_are_recorded_once_and_attributed_to_the_served_arm() {
    let (app, store) = keyed_app().await;
    create_running(&app, seeded_spec("out", "seed")).await;
    let served = assign(&app, "out", "a").await;
    let arm = served["arm"].as_str().expect("arm").to_string();

    let one = event(
        "e1",
        "out",
        "a",
        json!({"minutes": 12.5, "escalated": true}),
    );
    let r = post_outcomes(&app, one.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({"accepted": 1, "duplicates": 0, "rejected": []})
    );
    let r = post_outcomes(&app, one).await;
    assert_eq!(
        r.json(),
        json!({"accepted": 0, "duplicates": 1, "rejected": []})
    );

    let counters = store.arm_counters("out", 0).expect("counters");
    assert_eq!(counters.len(), 1);
    assert_eq!(counters[0].arm, arm);
    assert_eq!(counters[0].outcomes, 1);

    // A batch is judged event by event; pointers are relative to the event.
    let batch = json!({"events": [
        event("e2", "out", "a", json!({"touches": 3})),
        event("e3", "out", "a", json!({"minutes": -1})),
        event("e4", "out", "a", json!({"unknown_metric": 1})),
        event("e5", "out", "never-assigned", json!({"minutes": 1})),
        event("e6", "missing", "a", json!({"minutes": 1})),
        {"event_id": "e7", "experiment": "out", "task_id": "a", "metrics": {"minutes": 1}, "ts": "yesterday"},
        {"event_id": "e8", "experiment": "out", "task_id": "a", "metrics": {"minutes": 1}, "arm": "ai"},
        event("e9", "out", "a", json!({})),
        event("e10", "out", "a", json!({"touches": 1.5})),
        event("e11", "out", "a", json!({"escalated": "yes"})),
        {"event_id": "e12", "experiment": "out", "task_id": "a", "metrics": {"minutes": 2}, "handled_by": "robot"},
        {"event_id": "e13", "experiment": "out", "task_id": "a", "metrics": {"minutes": 2}, "ts": "2999-01-01T00:00:00Z"},
        event("e1", "out", "a", json!({"minutes": 12.5, "escalated": true})),
    ]});
    let r = post_outcomes(&app, batch).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let body = r.json();
    assert_eq!(body["accepted"], json!(1));
    assert_eq!(body["duplicates"], json!(1));
    let rejected: Vec<(u64, String)> = body["rejected"]
        .as_array()
        .expect("rejected")
        .iter()
        .map(|r| {
            (
                r["index"].as_u64().expect("index"),
                r["errors"][0]["pointer"]
                    .as_str()
                    .expect("pointer")
                    .to_string(),
            )
        })
        .collect();
    let expected: Vec<(u64, String)> = [
        (1, "/metrics/minutes"),
        (2, "/metrics/unknown_metric"),
        (3, "/task_id"),
        (4, "/experiment"),
        (5, "/ts"),
        (6, "/arm"),
        (7, "/metrics"),
        (8, "/metrics/touches"),
        (9, "/metrics/escalated"),
        (10, "/handled_by"),
        (11, "/ts"),
    ]
    .into_iter()
    .map(|(i, p)| (i, p.to_string()))
    .collect();
    assert_eq!(rejected, expected);
    assert_eq!(
        store.arm_counters("out", 0).expect("counters")[0].outcomes,
        2
    );
}

#[actix_web::test]
async fn an_outcome_from_the_future_is_refused_by_the_servers_clock() {
    let (app, store) = keyed_app().await;
    create_running(&app, spec("clock")).await;
    assign(&app, "clock", "u").await;
    let at = |id: &str, ts: &str| json!({"event_id": id, "experiment": "clock", "task_id": "u", "ts": ts, "metrics": {"minutes": 3}});

    // A single event an hour ahead is a 422 pointing at its `ts`, saying by how much.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970");
    let now_ms = i64::try_from(now.as_millis()).expect("in range");
    let hour_ahead = liftlab_domain::report::format_ts(now_ms + 3_600_000);
    let r = post_outcomes(&app, at("f1", &hour_ahead)).await;
    let problem = r.problem(422);
    assert_eq!(r.pointers(), vec!["/ts"]);
    let message = problem["errors"][0]["message"].as_str().expect("message");
    assert!(
        message.contains(" minutes in the future; ") && message.contains("at most 5 minutes"),
        "{message}"
    );

    // In a batch it is rejected alone; a clock a minute fast is tolerated, and so is the past.
    let minute_ahead = liftlab_domain::report::format_ts(now_ms + 60_000);
    let batch = json!({"events": [
        at("f2", "2999-01-01T00:00:00Z"),
        at("f3", &minute_ahead),
        at("f4", "2020-01-01T00:00:00Z"),
    ]});
    let r = post_outcomes(&app, batch).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let body = r.json();
    assert_eq!(body["accepted"], json!(2), "{body}");
    assert_eq!(body["rejected"][0]["index"], json!(0), "{body}");
    assert_eq!(
        body["rejected"][0]["errors"][0]["pointer"],
        json!("/ts"),
        "{body}"
    );
    assert_eq!(
        store.arm_counters("clock", 0).expect("counters")[0].outcomes,
        2,
        "nothing of the refused events was recorded"
    );
}

#[actix_web::test]
async fn a_request_with_nothing_valid_is_a_422_pointing_into_the_request() {
    let app = TestApp::new(app(keyed_state(Config::default()))).await;
    create_running(&app, spec("bad")).await;
    assign(&app, "bad", "u").await;
    let r = post_outcomes(&app, event("x", "bad", "u", json!({"minutes": "slow"}))).await;
    assert_eq!(r.pointers(), vec!["/metrics/minutes"]);
    let batch = json!({"events": [
        event("x", "bad", "u", json!({"minutes": -3})),
        event("y", "bad", "nobody", json!({"minutes": 3})),
    ]});
    let r = post_outcomes(&app, batch).await;
    assert_eq!(
        r.pointers(),
        vec!["/events/0/metrics/minutes", "/events/1/task_id"]
    );
    let r = post_outcomes(&app, json!({"events": []})).await;
    assert_eq!(r.pointers(), vec!["/events"]);
    let r = post_outcomes(&app, json!([1])).await;
    assert_eq!(r.pointers(), vec![""]);
}

#[actix_web::test]
async fn ndjson_streams_are_recorded_across_chunks() {
    let (app, store) = keyed_app().await;
    create_running(&app, spec("stream")).await;
    let units = 40;
    for u in 0..units {
        assign(&app, "stream", &format!("u{u}")).await;
    }
    // 1,203 events (more than two chunks), one malformed line, one unknown metric, blank lines.
    let mut body = String::new();
    let mut index = 0;
    for i in 0..1203 {
        body.push_str(
            &serde_json::to_string(&event(
                &format!("s{i}"),
                "stream",
                &format!("u{}", i % units),
                json!({"touches": 1}),
            ))
            .expect("json"),
        );
        body.push('\n');
        index += 1;
        if i == 600 {
            body.push_str("\n  \n");
        }
    }
    body.push_str("{\"event_id\": \"broken\"\n");
    body.push_str("{\"event_id\":\"z\",\"experiment\":\"stream\",\"task_id\":\"u0\",\"metrics\":{\"nope\":1}}");
    let r = post_outcomes(&app, Body::ndjson(body.clone().into_bytes())).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let summary = r.json();
    assert_eq!(summary["accepted"], json!(1203));
    let rejected: Vec<u64> = summary["rejected"]
        .as_array()
        .expect("rejected")
        .iter()
        .map(|r| r["index"].as_u64().expect("index"))
        .collect();
    assert_eq!(rejected, vec![index, index + 1]);
    assert_eq!(recorded(&store, "stream"), 1203);

    // Re-sending the whole stream counts nothing twice.
    let r = post_outcomes(&app, Body::ndjson(body.into_bytes())).await;
    assert_eq!(r.json()["duplicates"], json!(1203));
    assert_eq!(r.json()["accepted"], json!(0));
    assert_eq!(recorded(&store, "stream"), 1203);

    let r = post_outcomes(&app, Body::ndjson(b"not json\n".to_vec())).await;
    assert_eq!(r.pointers(), vec!["/0"]);
}
