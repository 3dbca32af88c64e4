//! Shared helpers of the in-process API tests: a keyed app over a `MemStore`, and one `send`.

use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::header::HeaderMap;
use actix_web::http::{Method, StatusCode};
use actix_web::test;
use liftlab_server::{AppState, Config, KeyEntry, KeyRing, Role};
use liftlab_store::{MemStore, Store};
use serde_json::{json, Value};

/// The bearer key of each role in [`keyed_state`].
pub const VIEWER: &str = "viewer-key-1";
pub const ROUTER: &str = "router-key-1";
pub const SCIENTIST: &str = "scientist-key-1";
pub const ADMIN: &str = "admin-key-1";

/// A state over a fresh `MemStore` with one key per role.
pub fn keyed_state(config: Config) -> AppState {
    let keys = KeyRing::from_entries(vec![
        KeyEntry::for_key(Role::Viewer, VIEWER, "viewer"),
        KeyEntry::for_key(Role::Router, ROUTER, "router"),
        KeyEntry::for_key(Role::Scientist, SCIENTIST, "scientist"),
        KeyEntry::for_key(Role::Admin, ADMIN, "admin"),
    ]);
    let store: Arc<dyn Store> = Arc::new(MemStore::new());
    AppState::new(store, keys, config)
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts that this is a problem+json error with `status`, and returns its body.
    pub fn problem(&self, status: u16) -> Value {
        assert_eq!(self.status.as_u16(), status, "{}", self.text());
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "{}",
            self.text()
        );
        let body = self.json();
        assert_eq!(body["status"], json!(status), "{body}");
        let kind = body["type"].as_str().expect("type is a string");
        assert!(kind.starts_with("https://liftlab.dev/problems/"), "{kind}");
        assert!(body["title"].as_str().is_some_and(|t| !t.is_empty()));
        let detail = body["detail"].as_str().expect("detail is a string");
        assert!(!detail.is_empty() && !detail.ends_with('.'), "{detail}");
        body
    }

    /// The JSON pointers of a validation problem's errors.
    pub fn pointers(&self) -> Vec<String> {
        self.problem(422)["errors"]
            .as_array()
            .expect("errors list")
            .iter()
            .map(|e| e["pointer"].as_str().expect("pointer").to_string())
            .collect()
    }
}

/// What to send.
pub enum Body {
    None,
    Json(Value),
    Raw(&'static str, Vec<u8>),
}

/// Sends one request to an in-process app.
pub async fn send<S, B>(app: &S, method: Method, path: &str, key: Option<&str>, body: Body) -> Reply
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let mut req = test::TestRequest::default().method(method).uri(path);
    if let Some(key) = key {
        req = req.insert_header(("authorization", format!("Bearer {key}")));
    }
    req = match body {
        Body::None => req,
        Body::Json(v) => req
            .insert_header(("content-type", "application/json"))
            .set_payload(serde_json::to_vec(&v).expect("serializable")),
        Body::Raw(ct, bytes) => {
            let req = if ct.is_empty() {
                req
            } else {
                req.insert_header(("content-type", ct))
            };
            req.set_payload(bytes)
        }
    };
    let res = match app.call(req.to_request()).await {
        Ok(res) => res,
        Err(err) => {
            let res = err.error_response();
            let status = res.status();
            let headers = res.headers().clone();
            let body = actix_web::body::to_bytes(res.into_body())
                .await
                .map(|b| b.to_vec())
                .unwrap_or_default();
            return Reply {
                status,
                headers,
                body,
            };
        }
    };
    let status = res.status();
    let headers = res.headers().clone();
    let body = test::read_body(res).await.to_vec();
    Reply {
        status,
        headers,
        body,
    }
}

/// A small valid spec: two arms, fixed 50/50, a duration primary, a binary guardrail.
pub fn spec(key: &str) -> Value {
    json!({
        "key": key,
        "arms": [
            {"key": "human", "role": "baseline"},
            {"key": "ai", "role": "treatment"}
        ],
        "allocation": {"policy": "fixed", "weights": {"human": 0.5, "ai": 0.5}},
        "metrics": [
            {"key": "minutes", "kind": "duration", "direction": "decrease", "role": "primary"},
            {"key": "escalated", "kind": "binary", "direction": "decrease", "role": "guardrail"},
            {"key": "touches", "kind": "count", "direction": "decrease", "role": "secondary"}
        ]
    })
}

/// The same spec with a given hash seed.
pub fn seeded_spec(key: &str, seed: &str) -> Value {
    let mut s = spec(key);
    s["hash_seed"] = json!(seed);
    s
}

/// Creates `key` from `spec` and starts it, asserting both succeed.
pub async fn create_running<S, B>(app: &S, document: Value)
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let key = document["key"].as_str().expect("key").to_string();
    let r = send(
        app,
        Method::POST,
        "/v1/experiments",
        Some(SCIENTIST),
        Body::Json(document),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let r = send(
        app,
        Method::POST,
        &format!("/v1/experiments/{key}/start"),
        Some(SCIENTIST),
        Body::None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
}

/// Assigns `unit` (task id = unit id) and returns the answer.
pub async fn assign<S, B>(app: &S, key: &str, unit: &str) -> Value
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let r = send(
        app,
        Method::POST,
        &format!("/v1/experiments/{key}/assign"),
        Some(ROUTER),
        Body::Json(json!({"unit_id": unit})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    r.json()
}
