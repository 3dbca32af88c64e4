//! `POST /v1/experiments/{key}/assign`: the routers' hot path.
//!
//! The experiment's current version and parsed spec come from memory ([`crate::CachedStore`]).
//! A running experiment stores the decision (first write wins, so a returning unit gets its
//! stored arm) and answers only after the group commit has made it durable; a non-running one
//! answers the baseline with `in_experiment: false` and stores nothing.

use std::time::Instant;

use actix_web::{web, HttpResponse};
use liftlab_domain::{decide, AssignRequest, Assignment, Status};
use serde_json::Value;

use crate::auth::Router;
use crate::dto::{experiment_key, now_millis, AssignView};
use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::AppState;

pub async fn assign(
    _who: Router,
    state: web::Data<AppState>,
    key: web::Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<HttpResponse, ApiError> {
    let key = experiment_key(key.into_inner())?;
    let request = AssignRequest::parse(&body)?;
    let worker = state.clone();
    let answer = web::block(move || assign_blocking(&worker, &key, &request)).await??;
    state
        .metrics
        .observe_assignment(&answer.experiment, &answer.arm, answer.in_experiment);
    Ok(HttpResponse::Ok().json(AssignView::from(&answer)))
}

fn assign_blocking(
    state: &AppState,
    key: &str,
    request: &AssignRequest,
) -> Result<Assignment, ApiError> {
    let live = state.cache.live(key)?;
    let current = &live.version;
    let running = current.status == Status::Running;
    if running {
        if let Some(stored) = state.store.assignment_by_task(key, request.task_id())? {
            if stored.unit_id == request.unit_id() {
                return Ok(stored);
            }
            return Err(ApiError::Conflict(format!(
                "task `{}` already belongs to another unit of experiment `{key}`",
                request.task_id()
            )));
        }
    }
    let period = state.store.current_period(key)?;
    let decision = decide(
        &current.spec,
        current.status,
        current.version,
        live.epoch,
        &period,
        request,
        new_assignment_id(),
        now_millis(),
    );
    if !running {
        return Ok(decision);
    }
    let started = Instant::now();
    let stored = state.store.record_assignment(decision)?;
    state
        .metrics
        .observe_store_write("record_assignment", 1, started.elapsed());
    Ok(stored)
}

/// A fresh random assignment id (128 bits, hex).
fn new_assignment_id() -> String {
    let bytes: [u8; 16] = rand::random();
    hex::encode(bytes)
}
