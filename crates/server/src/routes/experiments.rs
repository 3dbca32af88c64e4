//! Experiments: create, list, read, replace the spec (a new version), versions, and lifecycle.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use liftlab_domain::{ExperimentSpec, ExperimentVersion, Transition};
use serde::Deserialize;
use serde_json::Value;

use crate::auth::{Reader, Scientist};
use crate::dto::{
    etag, experiment_key, if_match_version, now_millis, EpochView, ExperimentList,
    ExperimentSummary, ExperimentView, VersionList,
};
use crate::error::ApiError;
use crate::extract::{JsonBody, OptionalJsonBody};
use crate::state::AppState;

fn view(status: actix_web::http::StatusCode, v: &ExperimentVersion) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::ETAG, etag(v.version)))
        .json(ExperimentView::from(v))
}

/// `POST /v1/experiments`: validates a spec and stores it as version 1, a draft.
pub async fn create(
    _who: Scientist,
    state: web::Data<AppState>,
    JsonBody(document): JsonBody<Value>,
) -> Result<HttpResponse, ApiError> {
    let spec = ExperimentSpec::parse(&document)?;
    let store = state.store.clone();
    let v = web::block(move || store.create_experiment(spec, now_millis())).await??;
    let mut res = view(actix_web::http::StatusCode::CREATED, &v);
    if let Ok(location) = header::HeaderValue::from_str(&format!("/v1/experiments/{}", v.key)) {
        res.headers_mut().insert(header::LOCATION, location);
    }
    Ok(res)
}

/// `GET /v1/experiments`: the current version of every experiment.
pub async fn list(_who: Reader, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let store = state.store.clone();
    let all = web::block(move || store.experiments()).await??;
    Ok(HttpResponse::Ok().json(ExperimentList {
        experiments: all.iter().map(ExperimentSummary::from).collect(),
    }))
}

/// `GET /v1/experiments/{key}`: the current version, with status and spec.
pub async fn get(
    _who: Reader,
    state: web::Data<AppState>,
    key: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let key = experiment_key(key.into_inner())?;
    let cache = state.cache.clone();
    let live = web::block(move || cache.live(&key)).await??;
    Ok(view(actix_web::http::StatusCode::OK, &live.version))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateQuery {
    expected_version: Option<u64>,
}

/// `PUT /v1/experiments/{key}`: replaces the spec as a new version.
///
/// `If-Match: "N"` or `?expected_version=N` makes the write conditional: a stale version is a
/// 409 and nothing changes.
pub async fn update(
    _who: Scientist,
    state: web::Data<AppState>,
    req: HttpRequest,
    key: web::Path<String>,
    query: web::Query<UpdateQuery>,
    JsonBody(document): JsonBody<Value>,
) -> Result<HttpResponse, ApiError> {
    let key = experiment_key(key.into_inner())?;
    let expected = match (if_match_version(req.headers())?, query.expected_version) {
        (Some(a), Some(b)) if a != b => {
            return Err(ApiError::BadRequest(format!(
                "If-Match names version {a} but expected_version is {b}"
            )))
        }
        (a, b) => a.or(b),
    };
    let spec = ExperimentSpec::parse(&document)?;
    if spec.key() != key {
        return Err(ApiError::invalid(
            "/key",
            format!(
                "the spec's key `{}` does not match the experiment `{key}` in the path",
                spec.key()
            ),
        ));
    }
    let store = state.store.clone();
    let v = web::block(move || store.update_experiment(spec, expected, now_millis())).await??;
    Ok(view(actix_web::http::StatusCode::OK, &v))
}

/// `GET /v1/experiments/{key}/versions`: every version, oldest first.
pub async fn versions(
    _who: Reader,
    state: web::Data<AppState>,
    key: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let key = experiment_key(key.into_inner())?;
    let store = state.store.clone();
    let lookup = key.clone();
    let all = web::block(move || store.versions(&lookup)).await??;
    Ok(HttpResponse::Ok().json(VersionList {
        experiment: key,
        versions: all.iter().map(ExperimentView::from).collect(),
    }))
}

/// The optional body of a lifecycle request.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LifecycleBody {
    reason: Option<String>,
}

/// The body of a re-baseline request: the reason is required.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RebaselineBody {
    reason: String,
}

const MAX_REASON_CHARS: usize = 1000;

fn check_reason(reason: &str) -> Result<(), ApiError> {
    if reason.trim().is_empty() {
        return Err(ApiError::invalid("/reason", "must not be blank"));
    }
    let n = reason.chars().count();
    if n > MAX_REASON_CHARS {
        return Err(ApiError::invalid(
            "/reason",
            format!("must be at most {MAX_REASON_CHARS} characters, got {n}"),
        ));
    }
    Ok(())
}

async fn apply(
    state: web::Data<AppState>,
    key: String,
    transition: Transition,
    body: Option<LifecycleBody>,
) -> Result<HttpResponse, ApiError> {
    let key = experiment_key(key)?;
    let reason = body.unwrap_or_default().reason;
    if let Some(r) = &reason {
        check_reason(r)?;
    }
    let store = state.store.clone();
    let v = web::block(move || store.transition(&key, transition, reason.as_deref(), now_millis()))
        .await??;
    Ok(view(actix_web::http::StatusCode::OK, &v))
}

/// `POST /v1/experiments/{key}/start`: draft or paused → running.
pub async fn start(
    _who: Scientist,
    state: web::Data<AppState>,
    key: web::Path<String>,
    OptionalJsonBody(body): OptionalJsonBody<LifecycleBody>,
) -> Result<HttpResponse, ApiError> {
    apply(state, key.into_inner(), Transition::Start, body).await
}

/// `POST /v1/experiments/{key}/pause`: running → paused.
pub async fn pause(
    _who: Scientist,
    state: web::Data<AppState>,
    key: web::Path<String>,
    OptionalJsonBody(body): OptionalJsonBody<LifecycleBody>,
) -> Result<HttpResponse, ApiError> {
    apply(state, key.into_inner(), Transition::Pause, body).await
}

/// `POST /v1/experiments/{key}/stop`: running or paused → stopped (final).
pub async fn stop(
    _who: Scientist,
    state: web::Data<AppState>,
    key: web::Path<String>,
    OptionalJsonBody(body): OptionalJsonBody<LifecycleBody>,
) -> Result<HttpResponse, ApiError> {
    apply(state, key.into_inner(), Transition::Stop, body).await
}

/// `POST /v1/experiments/{key}/rebaseline`: opens a new analysis epoch.
pub async fn rebaseline(
    _who: Scientist,
    state: web::Data<AppState>,
    key: web::Path<String>,
    JsonBody(body): JsonBody<RebaselineBody>,
) -> Result<HttpResponse, ApiError> {
    let key = experiment_key(key.into_inner())?;
    check_reason(&body.reason)?;
    let store = state.store.clone();
    let epoch = web::block(move || store.rebaseline(&key, &body.reason, now_millis())).await??;
    Ok(HttpResponse::Ok().json(EpochView::from(&epoch)))
}
