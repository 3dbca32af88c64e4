//! The audit log, health, metrics and request ids, and a store that cannot write.

use crate::common::*;
use actix_web::http::StatusCode;
use actix_web::test;
use liftlab_server::{app, Config};
use serde_json::json;

#[actix_web::test]
async fn audit_pages_and_verifies() {
    let app = TestApp::new(app(keyed_state(Config::default()))).await;
    create_running(&app, spec("aud")).await;
    assign(&app, "aud", "u1").await;
    let r = app
        .get("/v1/experiments/aud/audit")
        .as_role(Role::Viewer)
        .send()
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let records = r.json()["records"].as_array().expect("records").clone();
    let kinds: Vec<&str> = records
        .iter()
        .map(|r| r["kind"].as_str().expect("kind"))
        .collect();
    assert!(kinds.contains(&"experiment_created"), "{kinds:?}");
    assert!(kinds.contains(&"status_changed"), "{kinds:?}");
    assert!(kinds.contains(&"assigned"), "{kinds:?}");
    for pair in records.windows(2) {
        assert_eq!(pair[1]["prev_hash"], pair[0]["hash"]);
    }
    let r = app
        .get("/v1/experiments/aud/audit?limit=1")
        .as_role(Role::Viewer)
        .send()
        .await;
    let page = r.json();
    assert_eq!(page["records"].as_array().map(Vec::len), Some(1));
    let after = page["next_after"].as_u64().expect("a next page");
    let r = app
        .get(&format!(
            "/v1/experiments/aud/audit?after={after}&limit=1000"
        ))
        .as_role(Role::Viewer)
        .send()
        .await;
    assert_eq!(
        r.json()["records"].as_array().map(Vec::len),
        Some(records.len() - 1)
    );
    assert!(r.json().get("next_after").is_none());

    let r = app
        .get("/v1/audit/verify")
        .as_role(Role::Viewer)
        .send()
        .await;
    assert_eq!(r.json()["ok"], json!(true));
    assert_eq!(r.json()["records"], json!(records.len()));

    app.get("/v1/experiments/aud/audit?limit=0")
        .as_role(Role::Viewer)
        .send()
        .await
        .problem(400);
    app.get("/v1/experiments/aud/audit?limit=abc")
        .as_role(Role::Viewer)
        .send()
        .await
        .problem(400);
    app.get("/v1/experiments/nope/audit")
        .as_role(Role::Viewer)
        .send()
        .await
        .problem(404);
}

#[actix_web::test]
async fn healthz_metrics_and_request_ids() {
    let app = TestApp::new(app(keyed_state(Config::default()))).await;
    let r = app.get("/healthz").send().await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["status"], json!("ok"));
    let generated = r.header("x-request-id").expect("an id").to_string();
    assert_eq!(generated.len(), 32);

    let req = test::TestRequest::get()
        .uri("/healthz")
        .insert_header((
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ))
        .to_request();
    let res = test::call_service(app.service(), req).await;
    assert_eq!(
        res.headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("0af7651916cd43dd8448eb211c80319c")
    );
    let req = test::TestRequest::get()
        .uri("/nowhere")
        .insert_header(("x-request-id", "router-42"))
        .to_request();
    let res = test::call_service(app.service(), req).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        res.headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("router-42")
    );

    create_running(&app, spec("m")).await;
    assign(&app, "m", "u1").await;
    let r = app.get("/metrics").as_role(Role::Viewer).send().await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r
        .header("content-type")
        .is_some_and(|c| c.starts_with("text/plain")));
    let text = r.text();
    assert!(text.contains("liftlab_http_requests_total{route=\"/v1/experiments/{key}/assign\",method=\"POST\",status=\"200\"} 1"), "{text}");
    assert!(
        text.contains(
            "liftlab_http_requests_total{route=\"unmatched\",method=\"GET\",status=\"404\"} 1"
        ),
        "{text}"
    );
    assert!(
        text.contains("liftlab_assignments_total{experiment=\"m\""),
        "{text}"
    );
    assert!(
        text.contains("liftlab_store_write_seconds_count{operation=\"record_assignment\"} 1"),
        "{text}"
    );
    assert!(!text.contains(VIEWER) && !text.contains(SCIENTIST));
    let build_info = format!(
        "liftlab_build_info{{version=\"{}\"}} 1\n",
        env!("CARGO_PKG_VERSION")
    );
    assert!(text.contains(&build_info), "{text}");
    if cfg!(target_os = "linux") {
        for name in [
            "process_resident_memory_bytes",
            "process_open_fds",
            "process_start_time_seconds",
        ] {
            assert!(text.contains(&format!("\n{name} ")), "{name} in {text}");
        }
    }
}

#[actix_web::test]
async fn a_store_that_cannot_write_is_a_503_problem() {
    let (app, store) = keyed_app().await;
    create_running(&app, spec("closed")).await;
    assign(&app, "closed", "early").await;
    store.close().expect("the store closes");
    // A valid event the store cannot take fails the request; it is not reported as invalid.
    let r = post_outcomes(
        &app,
        event("late-1", "closed", "early", json!({"minutes": 1})),
    )
    .await;
    r.problem(503);
    let r = post_spec(&app, spec("after")).await;
    r.problem(503);
    let r = app
        .post("/v1/experiments/closed/assign")
        .as_role(Role::Router)
        .json(json!({"unit_id": "late"}))
        .send()
        .await;
    r.problem(503);
}
