//! A battery of bad requests: each is a 4xx problem (never a 5xx or a panic), and afterwards the
//! stored data is exactly what it was before.

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::{Method, StatusCode};
use liftlab_server::{app, Config};
use liftlab_store::Store;
use serde_json::{json, Value};

use crate::common::*;

/// Everything a bad request could have changed.
async fn snapshot<S, B>(app: &TestApp<S>, store: &dyn Store) -> Value
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let experiments = app
        .get("/v1/experiments")
        .as_role(Role::Admin)
        .send()
        .await
        .json();
    let versions = app
        .get("/v1/experiments/bat/versions")
        .as_role(Role::Admin)
        .send()
        .await
        .json();
    let audit = app
        .get("/v1/experiments/bat/audit?limit=1000")
        .as_role(Role::Admin)
        .send()
        .await
        .json();
    let verify = app
        .get("/v1/audit/verify")
        .as_role(Role::Admin)
        .send()
        .await
        .json();
    let counters = store.arm_counters("bat", 0).expect("counters");
    let assigned = store
        .assignment_counts("bat", 0)
        .expect("assignment counts");
    let aggregates = store.aggregates("bat", 0).expect("aggregates");
    json!({
        "experiments": experiments,
        "versions": versions,
        "audit": audit,
        "verify": verify,
        "counters": format!("{counters:?}"),
        "assigned": format!("{assigned:?}"),
        "aggregates": format!("{aggregates:?}"),
    })
}

struct Case {
    name: &'static str,
    method: Method,
    path: String,
    key: Option<&'static str>,
    body: Body,
    /// The exact status expected, when one is; otherwise any 4xx.
    status: Option<u16>,
}

fn case(name: &'static str, method: Method, path: &str, body: Body, status: u16) -> Case {
    Case {
        name,
        method,
        path: path.to_string(),
        key: Some(ADMIN),
        body,
        status: Some(status),
    }
}

fn raw(ct: &'static str, bytes: &[u8]) -> Body {
    Body::Raw(ct, bytes.to_vec())
}

fn battery() -> Vec<Case> {
    let json_ct = "application/json";
    let nd = "application/x-ndjson";
    let deep = format!("{}{}", "[".repeat(30_000), "]".repeat(30_000));
    let deep_object = format!("{}1{}", "{\"a\":".repeat(10_000), "}".repeat(10_000));
    let big = format!("{{\"unit_id\": \"{}\"}}", "x".repeat(70 * 1024));
    let big_stream = "{}\n".repeat(100 * 1024);
    let mut changed_arms = spec("bat");
    changed_arms["arms"][1]["key"] = json!("robot");
    changed_arms["allocation"]["weights"] = json!({"human": 0.5, "robot": 0.5});
    let assign = "/v1/experiments/bat/assign";
    let mut cases = vec![
        case("malformed JSON", Method::POST, "/v1/experiments", raw(json_ct, b"{\"key\": "), 400),
        case("trailing garbage", Method::POST, assign, raw(json_ct, b"{\"unit_id\":\"u\"} x"), 400),
        case("empty body", Method::POST, "/v1/experiments", raw(json_ct, b""), 400),
        case("text/plain", Method::POST, assign, raw("text/plain", b"{\"unit_id\":\"u\"}"), 415),
        case("no content type", Method::POST, assign, raw("", b"{\"unit_id\":\"u\"}"), 415),
        case("form body to outcomes", Method::POST, "/v1/outcomes", raw("application/x-www-form-urlencoded", b"a=b"), 415),
        case("JSON over the limit", Method::POST, assign, Body::Raw(json_ct, big.into_bytes()), 413),
        case("NDJSON over the limit", Method::POST, "/v1/outcomes", Body::Raw(nd, big_stream.into_bytes()), 413),
        case("deeply nested array", Method::POST, "/v1/experiments", Body::Raw(json_ct, deep.clone().into_bytes()), 400),
        case("deeply nested object", Method::POST, "/v1/outcomes", Body::Raw(json_ct, deep_object.into_bytes()), 400),
        case("deep NDJSON line", Method::POST, "/v1/outcomes", Body::Raw(nd, deep.into_bytes()), 422),
        case("invalid UTF-8", Method::POST, assign, raw(json_ct, b"{\"unit_id\": \"\xff\xfe\"}"), 400),
        case("invalid UTF-8 NDJSON", Method::POST, "/v1/outcomes", raw(nd, b"{\"event_id\": \"\xff\"}\n"), 422),
        case("a JSON array as a spec", Method::POST, "/v1/experiments", Body::Json(json!([1, 2])), 422),
        case("null as a spec", Method::POST, "/v1/experiments", Body::Json(Value::Null), 422),
        case("an invalid spec", Method::POST, "/v1/experiments", Body::Json(json!({"key": "x"})), 422),
        case("a duplicate key", Method::POST, "/v1/experiments", Body::Json(spec("bat")), 409),
        case("upper-case key", Method::GET, "/v1/experiments/BAT", Body::None, 400),
        case("percent-encoded junk key", Method::GET, "/v1/experiments/%FF%FE", Body::None, 400),
        case("overlong key", Method::POST, &format!("/v1/experiments/{}/assign", "k".repeat(300)), Body::Json(json!({"unit_id": "u"})), 400),
        case("unknown route", Method::GET, "/v2/experiments", Body::None, 404),
        case("wrong method", Method::DELETE, "/v1/experiments/bat", Body::None, 405),
        case("PATCH", Method::PATCH, "/v1/outcomes", Body::Json(json!({})), 405),
        case("bad query number", Method::GET, "/v1/experiments/bat/audit?after=-1", Body::None, 400),
        case("unknown query field", Method::GET, "/v1/experiments/bat/audit?sort=desc", Body::None, 400),
        case("bad expected_version", Method::PUT, "/v1/experiments/bat?expected_version=latest", Body::Json(spec("bat")), 400),
        case("stale expected_version", Method::PUT, "/v1/experiments/bat?expected_version=1", Body::Json(spec("bat")), 409),
        case("arms of a running experiment", Method::PUT, "/v1/experiments/bat", Body::Json(changed_arms), 409),
        case("start a running experiment", Method::POST, "/v1/experiments/bat/start", Body::None, 409),
        case("pause with a bad body", Method::POST, "/v1/experiments/bat/pause", Body::Json(json!({"reason": 5})), 422),
        case("stop with unknown fields", Method::POST, "/v1/experiments/bat/stop", Body::Json(json!({"now": true})), 422),
        case("rebaseline without a reason", Method::POST, "/v1/experiments/bat/rebaseline", Body::Json(json!({})), 422),
        case("assign an unknown experiment", Method::POST, "/v1/experiments/nope/assign", Body::Json(json!({"unit_id": "u"})), 404),
        case("assign without unit", Method::POST, assign, Body::Json(json!({"task_id": "t"})), 422),
        case("too many attributes", Method::POST, assign, Body::Json(json!({"unit_id": "u", "attributes": (0..100).map(|i| (format!("a{i}"), json!("v"))).collect::<serde_json::Map<_, _>>()})), 422),
        case("an outcome naming its arm", Method::POST, "/v1/outcomes", Body::Json(json!({"event_id": "n1", "experiment": "bat", "task_id": "u0", "arm": "ai", "metrics": {"minutes": 1}})), 422),
        case("an outcome with a negative duration", Method::POST, "/v1/outcomes", Body::Json(json!({"event_id": "n2", "experiment": "bat", "task_id": "u0", "metrics": {"minutes": -5}})), 422),
        case("an outcome with a huge number", Method::POST, "/v1/outcomes", raw(json_ct, b"{\"event_id\":\"n3\",\"experiment\":\"bat\",\"task_id\":\"u0\",\"metrics\":{\"minutes\":1e999}}"), 400),
        case("an all-invalid batch", Method::POST, "/v1/outcomes", Body::Json(json!({"events": [{"event_id": "n4"}, 7, null]})), 422),
        case("an unassigned task", Method::POST, "/v1/outcomes", Body::Json(json!({"event_id": "n5", "experiment": "bat", "task_id": "ghost", "metrics": {"minutes": 1}})), 422),
        case("a bad timestamp", Method::POST, "/v1/outcomes", Body::Json(json!({"event_id": "n6", "experiment": "bat", "task_id": "u0", "ts": "2025-02-30T00:00:00Z", "metrics": {"minutes": 1}})), 422),
        case("a timestamp from the future", Method::POST, "/v1/outcomes", Body::Json(json!({"event_id": "n7", "experiment": "bat", "task_id": "u0", "ts": "2999-01-01T00:00:00Z", "metrics": {"minutes": 1}})), 422),
        case("an empty NDJSON stream", Method::POST, "/v1/outcomes", raw(nd, b"\n\n"), 422),
        case("an audit page too large", Method::GET, "/v1/experiments/bat/audit?limit=100000", Body::None, 400),
    ];
    for (name, key) in [("no key", None), ("wrong role", Some(VIEWER))] {
        cases.push(Case {
            name,
            method: Method::POST,
            path: "/v1/experiments/bat/pause".to_string(),
            key,
            body: Body::None,
            status: None,
        });
    }
    cases
}

#[actix_web::test]
async fn bad_requests_are_4xx_problems_and_change_nothing() {
    // Config gains settings over time; the struct update keeps this test about the two limits.
    #[allow(clippy::needless_update)]
    let config = Config {
        json_limit: 64 * 1024,
        ndjson_limit: 256 * 1024,
        ..Config::default()
    };
    let state = keyed_state(config);
    let store = state.store.clone();
    let app = TestApp::new(app(state)).await;
    create_running(&app, spec("bat")).await;
    for u in 0..5 {
        assign(&app, "bat", &format!("u{u}")).await;
    }
    let r = post_outcomes(
        &app,
        json!({"event_id": "ok", "experiment": "bat", "task_id": "u0", "metrics": {"minutes": 3}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());

    let before = snapshot(&app, store.as_ref()).await;
    for c in battery() {
        let r = app
            .request(c.method.clone(), &c.path)
            .auth(c.key)
            .body(c.body)
            .send()
            .await;
        assert!(
            r.status.is_client_error(),
            "{}: {} {}",
            c.name,
            r.status,
            r.text()
        );
        let status = c.status.unwrap_or(r.status.as_u16());
        let problem = r.problem(status);
        assert!(problem["detail"].is_string(), "{}", c.name);
    }
    let after = snapshot(&app, store.as_ref()).await;
    assert_eq!(before, after);
}

/// A required field left out is located at the field itself, whatever else the event gets right.
#[actix_web::test]
async fn a_missing_required_field_has_its_own_pointer() {
    let app = TestApp::new(app(keyed_state(Config::default()))).await;
    create_running(&app, spec("bat")).await;
    assign(&app, "bat", "u0").await;
    let full =
        json!({"event_id": "m1", "experiment": "bat", "task_id": "u0", "metrics": {"minutes": 3}});
    for field in ["event_id", "experiment", "task_id", "metrics"] {
        let mut event = full.clone();
        event.as_object_mut().expect("object").remove(field);
        let r = post_outcomes(&app, event.clone()).await;
        assert_eq!(
            r.pointers(),
            [format!("/{field}")],
            "single event without {field}"
        );
        let batch = json!({"events": [full.clone(), event.clone()]});
        let r = post_outcomes(&app, batch).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        let rejected = &r.json()["rejected"][0];
        assert_eq!(rejected["index"], json!(1), "{rejected}");
        // A batch's rejected events carry pointers relative to the event, beside its index.
        assert_eq!(
            rejected["errors"][0]["pointer"],
            json!(format!("/{field}")),
            "{rejected}"
        );
        let stream = format!("{event}\n").into_bytes();
        let r = post_outcomes(&app, Body::ndjson(stream)).await;
        let problem = r.problem(422);
        assert_eq!(
            problem["errors"][0]["pointer"],
            json!(format!("/0/{field}")),
            "{problem}"
        );
    }
    let r = app
        .post("/v1/experiments/bat/assign")
        .as_role(Role::Router)
        .json(json!({}))
        .send()
        .await;
    assert_eq!(r.pointers(), ["/unit_id"]);
}
