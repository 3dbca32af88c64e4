//! Assignment through the API: GrowthBook's hash vectors, stickiness, answers outside the experiment, validation and covariates.

use crate::common::*;
use actix_web::http::StatusCode;
use liftlab_server::{app, Config};
use serde_json::{json, Value};

/// GrowthBook's published hash-v2 vectors: hash("seed", "a") = 0.0505 and
/// hash("90850943850283058242805", "123") = 0.7516, so under 50/50 weights the first unit lands
/// in the first arm and the second in the second.
#[actix_web::test]
async fn fixed_assignment_matches_growthbook_vectors_and_is_sticky() {
    let (app, store) = keyed_app().await;
    create_running(&app, seeded_spec("gb-low", "seed")).await;
    create_running(&app, seeded_spec("gb-high", "90850943850283058242805")).await;

    let low = assign(&app, "gb-low", "a").await;
    assert_eq!(low["arm"], json!("human"));
    assert_eq!(low["in_experiment"], json!(true));
    assert_eq!(low["propensity"], json!(0.5));
    assert_eq!(low["experiment"], json!("gb-low"));
    assert_eq!(low["version"], json!(2));
    let high = assign(&app, "gb-high", "123").await;
    assert_eq!(high["arm"], json!("ai"));

    // A returning unit gets its stored assignment back, id and all.
    let again = assign(&app, "gb-low", "a").await;
    assert_eq!(again, low);
    let stored = store
        .assignment("gb-low", "a")
        .expect("store readable")
        .expect("the assignment is stored");
    assert_eq!(json!(stored.assignment_id), low["assignment_id"]);
}

#[actix_web::test]
async fn non_running_experiments_answer_the_baseline_and_store_nothing() {
    let (app, store) = keyed_app().await;
    post_spec(&app, seeded_spec("idle", "90850943850283058242805")).await;
    let answer = assign(&app, "idle", "123").await;
    assert_eq!(answer["arm"], json!("human"));
    assert_eq!(answer["in_experiment"], json!(false));
    assert_eq!(answer["propensity"], json!(1.0));
    assert!(store.assignment("idle", "123").expect("readable").is_none());

    let r = app
        .post("/v1/experiments/nope/assign")
        .as_role(Role::Router)
        .json(json!({"unit_id": "u"}))
        .send()
        .await;
    r.problem(404);
}

/// Every answer outside the experiment says why, and `/metrics` counts answers by reason, so an
/// experiment that only ever answers `not_running` shows up on a dashboard.
#[actix_web::test]
async fn answers_outside_the_experiment_carry_their_reason_and_are_counted() {
    let app = TestApp::new(app(keyed_state(Config::default()))).await;
    let mut document = seeded_spec("why", "seed");
    document["targeting"] = json!({"region": ["emea"]});
    document["coverage"] = json!(0.5);
    let r = post_spec(&app, document).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let ask = |unit: &'static str, region: &'static str| {
        let app = &app;
        async move {
            let r = app
                .post("/v1/experiments/why/assign")
                .as_role(Role::Router)
                .json(json!({"unit_id": unit, "attributes": {"region": region}}))
                .send()
                .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text());
            r.json()
        }
    };
    // A draft: the router that forgot `start` is told so.
    let draft = ask("a", "emea").await;
    assert_eq!(
        (draft["in_experiment"].clone(), draft["reason"].clone()),
        (json!(false), json!("not_running"))
    );
    let r = app
        .post("/v1/experiments/why/start")
        .as_role(Role::Scientist)
        .send()
        .await;
    assert_eq!(r.status, StatusCode::OK);
    // hash_v2("seed", "a") = 0.0505 lies in the first arm's covered range [0, 0.25);
    // hash_v2("seed", "b") = 0.2696 in the gap [0.25, 0.5) that coverage 0.5 leaves out.
    let inside = ask("a", "emea").await;
    assert_eq!(inside["in_experiment"], json!(true));
    assert!(inside.get("reason").is_none(), "{inside}");
    assert_eq!(ask("c", "apac").await["reason"], json!("not_targeted"));
    let outside = ask("b", "emea").await;
    assert_eq!(outside["reason"], json!("outside_coverage"), "{outside}");
    // A returning unit keeps its stored answer, and its reason.
    assert_eq!(ask("b", "emea").await, outside);
    let r = app.get("/metrics").as_role(Role::Viewer).send().await;
    let text = r.text();
    for (reason, n) in [
        ("not_running", 1),
        ("in_experiment", 1),
        ("not_targeted", 1),
        ("outside_coverage", 2),
    ] {
        let line =
            format!("liftlab_assign_answers_total{{experiment=\"why\",reason=\"{reason}\"}} {n}\n");
        assert!(text.contains(&line), "{line} in {text}");
    }
}

#[actix_web::test]
async fn assignment_requests_are_validated() {
    let app = TestApp::new(app(keyed_state(Config::default()))).await;
    create_running(&app, spec("v")).await;
    let path = "/v1/experiments/v/assign";
    let check = |body: Value, pointer: &'static str| {
        let app = &app;
        async move {
            let r = app
                .post(path)
                .as_role(Role::Router)
                .json(body.clone())
                .send()
                .await;
            assert!(
                r.pointers().iter().any(|p| p == pointer),
                "{body}: {}",
                r.text()
            );
        }
    };
    check(json!({}), "/unit_id").await;
    check(json!({"unit_id": ""}), "/unit_id").await;
    check(json!({"unit_id": "x".repeat(257)}), "/unit_id").await;
    check(json!({"unit_id": 7}), "/unit_id").await;
    check(json!({"unit_id": "u", "task_id": ""}), "/task_id").await;
    check(
        json!({"unit_id": "u", "attributes": {"region": true}}),
        "/attributes/region",
    )
    .await;
    check(json!({"unit_id": "u", "arm": "ai"}), "/arm").await;

    // A task id belongs to one unit.
    let r = app
        .post(path)
        .as_role(Role::Router)
        .json(json!({"unit_id": "u1", "task_id": "t1"}))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = app
        .post(path)
        .as_role(Role::Router)
        .json(json!({"unit_id": "u2", "task_id": "t1"}))
        .send()
        .await;
    let detail = r.problem(409)["detail"]
        .as_str()
        .expect("a detail")
        .to_string();
    assert!(detail.contains("another unit"), "{detail}");
    assert!(!detail.contains("u1"), "the holder is not named: {detail}");
}

/// The small spec with a covariate on minutes, a cap on touches and a ratio of minutes per touch.
fn featured_spec(key: &str) -> Value {
    let mut s = spec(key);
    s["metrics"][0]["covariate"] = json!({"attribute": "estimated_minutes"});
    s["metrics"][2]["cap"] = json!({"max": 20});
    s["metrics"].as_array_mut().expect("metrics").push(json!({
        "key": "minutes_per_touch", "kind": "duration", "direction": "decrease",
        "role": "secondary", "ratio": {"numerator": "minutes", "denominator": "touches"}
    }));
    s
}

#[actix_web::test]
async fn bad_covariates_ratios_and_caps_are_422s_with_pointers() {
    let app = TestApp::new(app(keyed_state(Config::default()))).await;
    // What is wrong, where it is set (parent, field), the value, the pointer, the message.
    let cases: [(&str, &str, &str, Value, &str, &str); 5] = [
        (
            "a covariate that is not an object",
            "/metrics/0",
            "covariate",
            json!("estimated_minutes"),
            "/metrics/0/covariate",
            "must be an object",
        ),
        (
            "a covariate with an empty name",
            "/metrics/0",
            "covariate",
            json!({"attribute": ""}),
            "/metrics/0/covariate/attribute",
            "attribute name",
        ),
        (
            "a ratio naming a missing metric",
            "/metrics/3",
            "ratio",
            json!({"numerator": "minutes", "denominator": "resolved"}),
            "/metrics/3/ratio/denominator",
            "\"resolved\" is not a declared metric",
        ),
        (
            "a negative cap",
            "/metrics/2",
            "cap",
            json!({"max": -5}),
            "/metrics/2/cap/max",
            "must be > 0",
        ),
        (
            "a fixed horizon without planned units",
            "",
            "analysis",
            json!({"sequential": false}),
            "/analysis/planned_units",
            "is required when sequential is false",
        ),
    ];
    for (i, (what, parent, field, value, pointer, fragment)) in cases.into_iter().enumerate() {
        let mut doc = featured_spec(&format!("bad{i}"));
        doc.pointer_mut(parent).expect("the parent exists")[field] = value;
        let r = post_spec(&app, doc).await;
        let body = r.problem(422);
        assert_eq!(r.pointers(), vec![pointer.to_string()], "{what}");
        let message = body["errors"][0]["message"].as_str().expect("a message");
        assert!(message.contains(fragment), "{what}: {message}");
    }
    // The valid spec is accepted and returned normalized.
    let r = post_spec(&app, featured_spec("good")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let normalized = r.json()["spec"].clone();
    assert_eq!(normalized["metrics"][2]["cap"], json!({"max": 20.0}));
    assert_eq!(normalized["analysis"]["sequential"], json!(true));
}

#[actix_web::test]
async fn covariates_are_numbers_kept_with_the_assignment() {
    let (app, store) = keyed_app().await;
    create_running(&app, featured_spec("cov")).await;
    let path = "/v1/experiments/cov/assign";
    let post = |body: Value| {
        let app = &app;
        async move { app.post(path).as_role(Role::Router).json(body).send().await }
    };
    let r =
        post(json!({"unit_id": "u1", "attributes": {"estimated_minutes": "about an hour"}})).await;
    assert_eq!(r.pointers(), vec!["/attributes/estimated_minutes"]);
    assert!(r.text().contains("must be a number"), "{}", r.text());
    assert!(store.assignment("cov", "u1").expect("readable").is_none());

    let r =
        post(json!({"unit_id": "u1", "attributes": {"estimated_minutes": 42.5, "other": 7}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let kept = store
        .assignment("cov", "u1")
        .expect("readable")
        .expect("stored")
        .segments;
    assert_eq!(
        kept.get("estimated_minutes").map(String::as_str),
        Some("42.5")
    );
    assert!(!kept.contains_key("other"), "{kept:?}");
    // A unit without the covariate is assigned; it counts with covariate 0.
    let r = post(json!({"unit_id": "u2"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());

    // Outcomes send a ratio's parts, never the ratio itself.
    let r = post_outcomes(
        &app,
        event("r1", "cov", "u1", json!({"minutes_per_touch": 3.0})),
    )
    .await;
    assert_eq!(r.pointers(), vec!["/metrics/minutes_per_touch"]);
    assert!(r.text().contains("numerator"), "{}", r.text());
    // A value above a cap is accepted as sent and folded at the cap.
    let r = post_outcomes(
        &app,
        event("r2", "cov", "u1", json!({"touches": 500, "minutes": 30})),
    )
    .await;
    assert_eq!(r.json()["accepted"], json!(1), "{}", r.text());
    let rows = store.unit_rows("cov", 0).expect("rows");
    assert_eq!(rows[0].metrics["touches"].value, 20.0);
}
