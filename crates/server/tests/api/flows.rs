//! Full request flows of every JSON API route: experiments, lifecycle, assignment, outcomes, audit, metrics.

use crate::common::*;
use actix_web::http::StatusCode;
use actix_web::test;
use liftlab_server::{app, Config};
use serde_json::{json, Value};

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

/// GrowthBook's published hash-v2 vectors: hash("seed", "a") = 0.0505 and
/// hash("90850943850283058242805", "123") = 0.7516, so under 50/50 weights the first unit lands
/// in the first arm and the second in the second.
#[actix_web::test]
async fn fixed_assignment_matches_growthbook_vectors_and_is_sticky() {
    let state = keyed_state(Config::default());
    let store = state.store.clone();
    let app = TestApp::new(app(state)).await;
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
    let state = keyed_state(Config::default());
    let store = state.store.clone();
    let app = TestApp::new(app(state)).await;
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
    let state = keyed_state(Config::default());
    let store = state.store.clone();
    let app = TestApp::new(app(state)).await;
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

fn event(id: &str, experiment: &str, task: &str, metrics: Value) -> Value {
    json!({"event_id": id, "experiment": experiment, "task_id": task, "metrics": metrics})
}

#[actix_web::test]
async fn outcomes_are_recorded_once_and_attributed_to_the_served_arm() {
    let state = keyed_state(Config::default());
    let store = state.store.clone();
    let app = TestApp::new(app(state)).await;
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
    let state = keyed_state(Config::default());
    let store = state.store.clone();
    let app = TestApp::new(app(state)).await;
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
    let state = keyed_state(Config::default());
    let store = state.store.clone();
    let app = TestApp::new(app(state)).await;
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
    let total: u64 = store
        .arm_counters("stream", 0)
        .expect("counters")
        .iter()
        .map(|c| c.outcomes)
        .sum();
    assert_eq!(total, 1203);

    // Re-sending the whole stream counts nothing twice.
    let r = post_outcomes(&app, Body::ndjson(body.into_bytes())).await;
    assert_eq!(r.json()["duplicates"], json!(1203));
    assert_eq!(r.json()["accepted"], json!(0));
    let total: u64 = store
        .arm_counters("stream", 0)
        .expect("counters")
        .iter()
        .map(|c| c.outcomes)
        .sum();
    assert_eq!(total, 1203);

    let r = post_outcomes(&app, Body::ndjson(b"not json\n".to_vec())).await;
    assert_eq!(r.pointers(), vec!["/0"]);
}

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
    let state = keyed_state(Config::default());
    let store = state.store.clone();
    let app = TestApp::new(app(state)).await;
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
