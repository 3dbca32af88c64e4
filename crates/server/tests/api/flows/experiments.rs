//! Experiments through the API: create, read, list, version, invalid specs, and the lifecycle.

use crate::common::*;
use actix_web::http::StatusCode;
use actix_web::test;
use liftlab_server::{app, Config};
use serde_json::json;

#[actix_web::test]
async fn experiments_are_created_read_listed_and_versioned() {
    let state = keyed_state(Config::default());
    let app = TestApp::new(app(state)).await;

    let r = post_spec(&app, spec("triage")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(r.header("location"), Some("/v1/experiments/triage"));
    assert_eq!(r.header("etag"), Some("\"1\""));
    let created = r.json();
    assert_eq!(created["version"], json!(1));
    assert_eq!(created["status"], json!("draft"));
    assert_eq!(created["change"], json!("created"));
    // The normalized spec has its defaults filled in.
    assert_eq!(created["spec"]["coverage"], json!(1.0));

    let r = post_spec(&app, spec("triage")).await;
    r.problem(409);

    let r = app
        .get("/v1/experiments/triage")
        .as_role(Role::Router)
        .send()
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["spec"], created["spec"]);

    let mut v2 = spec("triage");
    v2["hypothesis"] = json!("AI halves the minutes");
    let r = app
        .put("/v1/experiments/triage")
        .as_role(Role::Scientist)
        .json(v2.clone())
        .send()
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["version"], json!(2));
    assert_eq!(r.json()["change"], json!("spec_updated"));
    assert_eq!(
        r.json()["spec"]["hypothesis"],
        json!("AI halves the minutes")
    );

    // A stale If-Match or expected_version is a conflict and changes nothing.
    let r = app
        .put("/v1/experiments/triage?expected_version=1")
        .as_role(Role::Scientist)
        .json(v2.clone())
        .send()
        .await;
    r.problem(409);
    let stale = test::TestRequest::put()
        .uri("/v1/experiments/triage")
        .insert_header(("authorization", format!("Bearer {SCIENTIST}")))
        .insert_header(("if-match", "\"1\""))
        .set_json(&v2)
        .to_request();
    let res = test::call_service(app.service(), stale).await;
    assert_eq!(res.status(), StatusCode::CONFLICT);
    let fresh = test::TestRequest::put()
        .uri("/v1/experiments/triage")
        .insert_header(("authorization", format!("Bearer {SCIENTIST}")))
        .insert_header(("if-match", "\"2\""))
        .set_json(&v2)
        .to_request();
    let res = test::call_service(app.service(), fresh).await;
    assert_eq!(res.status(), StatusCode::OK);

    // The path's key and the spec's key must agree.
    let r = app
        .put("/v1/experiments/triage")
        .as_role(Role::Scientist)
        .json(spec("other"))
        .send()
        .await;
    assert_eq!(r.pointers(), vec!["/key"]);

    let r = app
        .get("/v1/experiments/triage/versions")
        .as_role(Role::Viewer)
        .send()
        .await;
    let versions: Vec<u64> = r.json()["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .map(|v| v["version"].as_u64().expect("number"))
        .collect();
    assert_eq!(versions, vec![1, 2, 3]);

    app.post("/v1/experiments")
        .as_role(Role::Admin)
        .json(spec("billing"))
        .send()
        .await;
    let r = app
        .get("/v1/experiments")
        .as_role(Role::Viewer)
        .send()
        .await;
    let list = r.json();
    let mut keys: Vec<&str> = list["experiments"]
        .as_array()
        .expect("list")
        .iter()
        .map(|e| e["key"].as_str().expect("key"))
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, vec!["billing", "triage"]);

    let r = app
        .get("/v1/experiments/missing")
        .as_role(Role::Viewer)
        .send()
        .await;
    r.problem(404);
}

#[actix_web::test]
async fn invalid_specs_list_every_problem_with_a_pointer() {
    let app = TestApp::new(app(keyed_state(Config::default()))).await;
    let bad = json!({
        "key": "Not A Slug",
        "arms": [{"key": "a", "role": "baseline"}],
        "allocation": {"policy": "fixed", "weights": {"a": 1.0}},
        "metrics": []
    });
    let r = post_spec(&app, bad).await;
    let pointers = r.pointers();
    assert!(pointers.iter().any(|p| p == "/key"), "{pointers:?}");
    assert!(
        pointers.iter().any(|p| p.starts_with("/arms")),
        "{pointers:?}"
    );
    assert!(
        pointers.iter().any(|p| p.starts_with("/metrics")),
        "{pointers:?}"
    );
    let r = app
        .get("/v1/experiments")
        .as_role(Role::Viewer)
        .send()
        .await;
    assert_eq!(r.json()["experiments"], json!([]));
}

#[actix_web::test]
async fn lifecycle_moves_and_invalid_transitions_name_both_ends() {
    let app = TestApp::new(app(keyed_state(Config::default()))).await;
    post_spec(&app, spec("flow")).await;
    let step = |action: &'static str, body: Body| {
        let app = &app;
        async move {
            app.post(&format!("/v1/experiments/flow/{action}"))
                .as_role(Role::Scientist)
                .body(body)
                .send()
                .await
        }
    };
    let r = step("pause", Body::None).await;
    let detail = r.problem(409)["detail"]
        .as_str()
        .expect("detail")
        .to_string();
    assert!(
        detail.contains("draft") && detail.contains("paused"),
        "{detail}"
    );

    let r = step("start", Body::Json(json!({"reason": "approved"}))).await;
    assert_eq!(r.json()["status"], json!("running"));
    assert_eq!(r.json()["reason"], json!("approved"));
    assert_eq!(r.json()["change"], json!("started"));
    assert_eq!(
        step("pause", Body::None).await.json()["status"],
        json!("paused")
    );
    assert_eq!(
        step("start", Body::None).await.json()["status"],
        json!("running")
    );
    assert_eq!(
        step("stop", Body::None).await.json()["status"],
        json!("stopped")
    );
    let r = step("start", Body::None).await;
    let detail = r.problem(409)["detail"]
        .as_str()
        .expect("detail")
        .to_string();
    assert!(
        detail.contains("stopped") && detail.contains("running"),
        "{detail}"
    );

    let r = step("start", Body::Json(json!({"why": "typo"}))).await;
    assert_eq!(r.pointers(), vec!["/why"]);

    // Re-baselining needs a reason and opens the next epoch.
    let r = step("rebaseline", Body::None).await;
    r.problem(400);
    let r = step("rebaseline", Body::Json(json!({"reason": " "}))).await;
    assert_eq!(r.pointers(), vec!["/reason"]);
    let r = step("rebaseline", Body::Json(json!({"reason": "model upgrade"}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["epoch"], json!(1));
    assert_eq!(r.json()["reason"], json!("model upgrade"));
}
