//! Access control, owned by the server: every route × every caller (no key, an unknown key, each role) gets the 401, 403 or 2xx DESIGN.md promises, and a refusal changes nothing.

use actix_web::http::{Method, StatusCode};
use actix_web::test;
use liftlab_server::{app, Config};
use serde_json::{json, Value};

use crate::common::*;

/// Who calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Caller {
    NoKey,
    WrongKey,
    As(Role),
}

const CALLERS: [Caller; 6] = [
    Caller::NoKey,
    Caller::WrongKey,
    Caller::As(Role::Viewer),
    Caller::As(Role::Router),
    Caller::As(Role::Scientist),
    Caller::As(Role::Admin),
];

impl Caller {
    fn key(self) -> Option<&'static str> {
        match self {
            Caller::NoKey => None,
            Caller::WrongKey => Some("not-a-key"),
            Caller::As(role) => Some(role.key()),
        }
    }
}

/// What a route needs to exist before it is called.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Setup {
    /// Nothing: the route needs no experiment, or creates its own.
    None,
    /// A draft experiment.
    Draft,
    /// A running experiment.
    Running,
    /// A running experiment with the unit `u1` assigned.
    Assigned,
}

/// Which callers DESIGN.md lets through.
#[derive(Clone, Copy, Debug)]
enum Policy {
    /// `/healthz`: everyone, with or without a key.
    Open,
    /// Read experiments: viewer, router, scientist, admin.
    ReadExperiments,
    /// Results, pages, audit and metrics: viewer, scientist, admin.
    ReadResults,
    /// Assign and record outcomes: router, scientist, admin.
    Route,
    /// Define and control experiments: scientist, admin.
    Define,
}

impl Policy {
    fn allows(self, caller: Caller) -> bool {
        let Caller::As(role) = caller else {
            return matches!(self, Policy::Open);
        };
        match self {
            Policy::Open | Policy::ReadExperiments => true,
            Policy::ReadResults => role != Role::Router,
            Policy::Route => role != Role::Viewer,
            Policy::Define => matches!(role, Role::Scientist | Role::Admin),
        }
    }
}

/// One route: method, path (`{k}` is the cell's experiment), body, setup and policy.
struct Route {
    method: Method,
    path: &'static str,
    body: fn(&str) -> Option<Value>,
    setup: Setup,
    policy: Policy,
}

fn no_body(_: &str) -> Option<Value> {
    None
}

/// Every route of DESIGN.md's HTTP API, pages included.
fn routes() -> Vec<Route> {
    use Policy as P;
    use Setup as S;
    let r = |method, path, body, setup, policy| Route {
        method,
        path,
        body,
        setup,
        policy,
    };
    let outcome = |k: &str| {
        Some(
            json!({"event_id": format!("{k}-e1"), "experiment": k, "task_id": "u1",
                    "metrics": {"minutes": 3.5}}),
        )
    };
    let changed = |k: &str| {
        let mut s = spec(k);
        s["hypothesis"] = json!("changed");
        Some(s)
    };
    vec![
        r(
            Method::POST,
            "/v1/experiments",
            |k| Some(spec(k)),
            S::None,
            P::Define,
        ),
        r(
            Method::GET,
            "/v1/experiments",
            no_body,
            S::None,
            P::ReadExperiments,
        ),
        r(
            Method::GET,
            "/v1/experiments/{k}",
            no_body,
            S::Draft,
            P::ReadExperiments,
        ),
        r(
            Method::PUT,
            "/v1/experiments/{k}",
            changed,
            S::Draft,
            P::Define,
        ),
        r(
            Method::GET,
            "/v1/experiments/{k}/versions",
            no_body,
            S::Draft,
            P::ReadExperiments,
        ),
        r(
            Method::POST,
            "/v1/experiments/{k}/start",
            no_body,
            S::Draft,
            P::Define,
        ),
        r(
            Method::POST,
            "/v1/experiments/{k}/pause",
            no_body,
            S::Running,
            P::Define,
        ),
        r(
            Method::POST,
            "/v1/experiments/{k}/stop",
            no_body,
            S::Running,
            P::Define,
        ),
        r(
            Method::POST,
            "/v1/experiments/{k}/rebaseline",
            |_| Some(json!({"reason": "access test"})),
            S::Running,
            P::Define,
        ),
        r(
            Method::POST,
            "/v1/experiments/{k}/assign",
            |_| Some(json!({"unit_id": "u2"})),
            S::Running,
            P::Route,
        ),
        r(Method::POST, "/v1/outcomes", outcome, S::Assigned, P::Route),
        r(
            Method::GET,
            "/v1/experiments/{k}/results",
            no_body,
            S::Assigned,
            P::ReadResults,
        ),
        r(
            Method::GET,
            "/v1/experiments/{k}/results?format=csv",
            no_body,
            S::Assigned,
            P::ReadResults,
        ),
        r(
            Method::GET,
            "/v1/experiments/{k}/audit",
            no_body,
            S::Running,
            P::ReadResults,
        ),
        r(
            Method::GET,
            "/v1/audit/verify",
            no_body,
            S::None,
            P::ReadResults,
        ),
        r(Method::GET, "/", no_body, S::Running, P::ReadResults),
        r(
            Method::GET,
            "/experiments/{k}",
            no_body,
            S::Assigned,
            P::ReadResults,
        ),
        r(Method::GET, "/metrics", no_body, S::None, P::ReadResults),
        r(Method::GET, "/healthz", no_body, S::None, P::Open),
    ]
}

/// Every route × every caller gets the 401, 403 or 2xx that DESIGN.md promises; each cell has
/// its own experiment in the state its route needs, so an allowed call succeeds on its own
/// merits, and a refused one leaves the audit chain as it was.
#[actix_web::test]
async fn every_route_admits_exactly_the_roles_the_design_names() {
    let (app, store) = keyed_app().await;
    let records = || store.verify().expect("the chain verifies").records;
    let mut failures = Vec::new();
    for (row, route) in routes().iter().enumerate() {
        for (column, caller) in CALLERS.into_iter().enumerate() {
            let key = format!("acc{row}-{column}");
            if route.setup != Setup::None {
                app.post("/v1/experiments")
                    .as_role(Role::Admin)
                    .json(spec(&key))
                    .send()
                    .await
                    .expect(StatusCode::CREATED);
            }
            if matches!(route.setup, Setup::Running | Setup::Assigned) {
                app.post(&format!("/v1/experiments/{key}/start"))
                    .as_role(Role::Admin)
                    .send()
                    .await
                    .expect(StatusCode::OK);
            }
            if route.setup == Setup::Assigned {
                app.post(&format!("/v1/experiments/{key}/assign"))
                    .as_role(Role::Admin)
                    .json(json!({"unit_id": "u1"}))
                    .send()
                    .await
                    .expect(StatusCode::OK);
            }
            let path = route.path.replace("{k}", &key);
            let before = records();
            let mut call = app.request(route.method.clone(), &path).auth(caller.key());
            if let Some(body) = (route.body)(&key) {
                call = call.json(body);
            }
            let r = call.send().await;
            let allowed = route.policy.allows(caller);
            let expected = match (allowed, caller) {
                (true, _) => r.status.is_success(),
                (false, Caller::NoKey | Caller::WrongKey) => r.status == StatusCode::UNAUTHORIZED,
                (false, Caller::As(_)) => r.status == StatusCode::FORBIDDEN,
            };
            if !expected {
                failures.push(format!(
                    "{} {} as {caller:?}: got {} {}",
                    route.method,
                    route.path,
                    r.status,
                    r.text()
                ));
                continue;
            }
            if allowed {
                continue;
            }
            let p = r.problem(r.status.as_u16());
            let detail = p["detail"].as_str().unwrap_or_default();
            assert!(
                caller.key().map_or(true, |k| !detail.contains(k)),
                "the key leaks into {detail}"
            );
            if r.status == StatusCode::UNAUTHORIZED {
                assert_eq!(
                    r.header("www-authenticate"),
                    Some("Bearer"),
                    "{} {}",
                    route.method,
                    path
                );
            }
            assert_eq!(
                records(),
                before,
                "{} {} as {caller:?} was refused but left a trace",
                route.method,
                route.path
            );
        }
    }
    assert!(
        failures.is_empty(),
        "access matrix violations:\n{}",
        failures.join("\n")
    );
}

#[actix_web::test]
async fn healthz_is_open_and_malformed_credentials_are_401() {
    let app = TestApp::new(app(keyed_state(Config::default()))).await;
    let r = app.get("/healthz").send().await;
    assert_eq!(r.status, StatusCode::OK);
    for value in [
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "Bearer ",
        "viewer-key-1",
        "Token viewer-key-1",
    ] {
        let req = test::TestRequest::get()
            .uri("/v1/experiments")
            .insert_header(("authorization", value))
            .to_request();
        let res = test::call_service(app.service(), req).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{value}");
    }
    let req = test::TestRequest::get()
        .uri("/v1/experiments")
        .insert_header((
            "authorization",
            actix_web::http::header::HeaderValue::from_bytes(b"Bearer \xff\xfe")
                .expect("opaque bytes"),
        ))
        .to_request();
    let res = test::call_service(app.service(), req).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[actix_web::test]
async fn an_open_server_lets_every_request_through() {
    let store: std::sync::Arc<dyn liftlab_store::Store> =
        std::sync::Arc::new(liftlab_store::MemStore::new());
    let state =
        liftlab_server::AppState::new(store, liftlab_server::KeyRing::open(), Config::default());
    let app = TestApp::new(app(state)).await;
    let r = app.post("/v1/experiments").json(spec("open")).send().await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let r = app.get("/v1/audit/verify").send().await;
    assert_eq!(r.status, StatusCode::OK);
}
