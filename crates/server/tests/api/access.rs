//! API-key roles: 401 without or with an unknown key, 403 for a role that may not, else through.

use actix_web::http::{Method, StatusCode};
use actix_web::test;
use liftlab_server::{app, Config};
use serde_json::json;

use crate::common::*;

/// Each route with the roles DESIGN.md lets through (viewer, router, scientist, admin).
fn matrix() -> Vec<(Method, &'static str, [bool; 4])> {
    let any = [true, true, true, true];
    let viewer = [true, false, true, true];
    let router = [false, true, true, true];
    let scientist = [false, false, true, true];
    vec![
        (Method::POST, "/v1/experiments", scientist),
        (Method::GET, "/v1/experiments", any),
        (Method::GET, "/v1/experiments/acl", any),
        (Method::PUT, "/v1/experiments/acl", scientist),
        (Method::GET, "/v1/experiments/acl/versions", any),
        (Method::POST, "/v1/experiments/acl/start", scientist),
        (Method::POST, "/v1/experiments/acl/pause", scientist),
        (Method::POST, "/v1/experiments/acl/stop", scientist),
        (Method::POST, "/v1/experiments/acl/rebaseline", scientist),
        (Method::POST, "/v1/experiments/acl/assign", router),
        (Method::POST, "/v1/outcomes", router),
        (Method::GET, "/v1/experiments/acl/audit", viewer),
        (Method::GET, "/v1/audit/verify", viewer),
        (Method::GET, "/metrics", viewer),
    ]
}

#[actix_web::test]
async fn every_route_admits_exactly_the_roles_the_design_names() {
    let app = TestApp::new(app(keyed_state(Config::default()))).await;
    let r = app
        .post("/v1/experiments")
        .as_role(Role::Admin)
        .json(spec("acl"))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let keys = [VIEWER, ROUTER, SCIENTIST, ADMIN];
    for (method, path, allowed) in matrix() {
        for who in [None, Some("not-a-key")] {
            let r = app
                .request(method.clone(), path)
                .auth(who)
                .json(json!({}))
                .send()
                .await;
            r.problem(401);
            assert_eq!(
                r.header("www-authenticate"),
                Some("Bearer"),
                "{method} {path}"
            );
        }
        for (key, allowed) in keys.iter().zip(allowed) {
            let r = app
                .request(method.clone(), path)
                .bearer(key)
                .json(json!({}))
                .send()
                .await;
            if allowed {
                assert!(
                    r.status != StatusCode::UNAUTHORIZED && r.status != StatusCode::FORBIDDEN,
                    "{key} on {method} {path}: {}",
                    r.text()
                );
            } else {
                let problem = r.problem(403);
                let detail = problem["detail"].as_str().expect("detail");
                assert!(!detail.contains(key), "the key leaks into {detail}");
            }
        }
    }
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
