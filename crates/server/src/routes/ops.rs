//! Operational endpoints: `/healthz` (open), `/metrics` (Prometheus text) and the 404 fallback.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;

use crate::auth::Viewer;
use crate::error::ApiError;
use crate::metrics::EXPOSITION_CONTENT_TYPE;
use crate::state::AppState;

#[derive(Serialize)]
struct Health {
    status: &'static str,
    version: &'static str,
}

/// `GET /healthz`: the process is up and serving. Open to everyone.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
    })
}

/// `GET /metrics`: every metric in the Prometheus text exposition format.
pub async fn metrics(_who: Viewer, state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(EXPOSITION_CONTENT_TYPE)
        .body(state.metrics.render())
}

/// Any path no route matches.
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound(format!(
        "no route for {} {}",
        req.method(),
        req.path()
    )))
}
