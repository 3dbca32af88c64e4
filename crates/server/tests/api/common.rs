//! What the in-process API tests share beyond the test kit: a keyed state over a `MemStore`, the app over it, and the steps most flows take (create and start, assign, post a spec or outcomes, count what was recorded).

use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::StatusCode;
use liftlab_server::{AppState, Config, KeyEntry, KeyRing};
use liftlab_store::{MemStore, Store};
pub use liftlab_testkit::spec::{fixed_with_touches as spec, seeded};
pub use liftlab_testkit::{Body, Reply, Role, TestApp};
use serde_json::{json, Value};

/// The bearer key of each role in [`keyed_state`].
pub const VIEWER: &str = Role::Viewer.key();
pub const ROUTER: &str = Role::Router.key();
pub const SCIENTIST: &str = Role::Scientist.key();
pub const ADMIN: &str = Role::Admin.key();

/// A state over a fresh `MemStore` with one key per role, the key [`Role::key`] names.
pub fn keyed_state(config: Config) -> AppState {
    let keys = KeyRing::from_entries(vec![
        KeyEntry::for_key(liftlab_server::Role::Viewer, VIEWER, "viewer"),
        KeyEntry::for_key(liftlab_server::Role::Router, ROUTER, "router"),
        KeyEntry::for_key(liftlab_server::Role::Scientist, SCIENTIST, "scientist"),
        KeyEntry::for_key(liftlab_server::Role::Admin, ADMIN, "admin"),
    ]);
    let store: Arc<dyn Store> = Arc::new(MemStore::new());
    AppState::new(store, keys, config)
}

/// The app over a fresh [`keyed_state`] with the default config, and its store, for the tests
/// that look into what a request stored.
pub async fn keyed_app() -> (
    TestApp<
        impl Service<
            actix_http::Request,
            Response = ServiceResponse<impl MessageBody>,
            Error = actix_web::Error,
        >,
    >,
    Arc<dyn Store>,
) {
    let state = keyed_state(Config::default());
    let store = state.store.clone();
    (TestApp::new(liftlab_server::app(state)).await, store)
}

/// The small spec with a given hash seed.
pub fn seeded_spec(key: &str, seed: &str) -> Value {
    seeded(spec(key), seed)
}

/// Creates `key` from `spec` and starts it, asserting both succeed.
pub async fn create_running<S, B>(app: &TestApp<S>, document: Value)
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let key = document["key"].as_str().expect("key").to_string();
    post_spec(app, document).await.expect(StatusCode::CREATED);
    app.post(&format!("/v1/experiments/{key}/start"))
        .as_role(Role::Scientist)
        .send()
        .await
        .expect(StatusCode::OK);
}

/// Assigns `unit` (task id = unit id) and returns the answer.
pub async fn assign<S, B>(app: &TestApp<S>, key: &str, unit: &str) -> Value
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    app.post(&format!("/v1/experiments/{key}/assign"))
        .as_role(Role::Router)
        .json(json!({"unit_id": unit}))
        .send()
        .await
        .expect(StatusCode::OK)
        .json()
}

/// Posts a spec document to `/v1/experiments` as a scientist.
pub async fn post_spec<S, B>(app: &TestApp<S>, document: Value) -> Reply
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    app.post("/v1/experiments")
        .as_role(Role::Scientist)
        .json(document)
        .send()
        .await
}

/// Posts to `/v1/outcomes` as the router: one event or `{"events": [...]}` as JSON, or an
/// NDJSON stream (`Body::ndjson`).
pub async fn post_outcomes<S, B>(app: &TestApp<S>, body: impl Into<Body>) -> Reply
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    app.post("/v1/outcomes")
        .as_role(Role::Router)
        .body(body.into())
        .send()
        .await
}

/// An outcome event of `task` in `experiment` with the given metric values.
pub fn event(id: &str, experiment: &str, task: &str, metrics: Value) -> Value {
    json!({"event_id": id, "experiment": experiment, "task_id": task, "metrics": metrics})
}

/// The outcomes the store has counted in `key`'s first epoch, over all arms.
pub fn recorded(store: &Arc<dyn Store>, key: &str) -> u64 {
    store
        .arm_counters(key, 0)
        .expect("counters")
        .iter()
        .map(|c| c.outcomes)
        .sum()
}
