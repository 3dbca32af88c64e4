//! The audit log: one experiment's hash-chained records, paged, and a walk of the whole chain.

use actix_web::{web, HttpResponse};
use liftlab_store::MAX_AUDIT_PAGE;
use serde::Deserialize;

use crate::auth::Viewer;
use crate::dto::{experiment_key, AuditPage, AuditView, VerifyView};
use crate::error::ApiError;
use crate::state::AppState;

/// Records per page when the client does not say.
const DEFAULT_PAGE: usize = 100;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Only records with a sequence number above this one.
    #[serde(default)]
    after: u64,
    /// At most this many records (1 to the store's page limit).
    limit: Option<usize>,
}

/// `GET /v1/experiments/{key}/audit?after=&limit=`: the experiment's audit records in order.
pub async fn experiment_log(
    _who: Viewer,
    state: web::Data<AppState>,
    key: web::Path<String>,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    let key = experiment_key(key.into_inner())?;
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_AUDIT_PAGE).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be between 1 and {MAX_AUDIT_PAGE}, got {limit}"
        )));
    }
    let after = query.after;
    let store = state.store.clone();
    let lookup = key.clone();
    let records = web::block(move || store.audit(&lookup, after, limit)).await??;
    let next_after = (records.len() == limit)
        .then(|| records.last().map(|r| r.seq))
        .flatten();
    Ok(HttpResponse::Ok().json(AuditPage {
        experiment: key,
        records: records.into_iter().map(AuditView::from).collect(),
        next_after,
    }))
}

/// `GET /v1/audit/verify`: walks the whole chain and names the first record that fails.
pub async fn verify(_who: Viewer, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let store = state.store.clone();
    let report = web::block(move || store.verify()).await??;
    Ok(HttpResponse::Ok().json(VerifyView::from(report)))
}
