//! `POST /v1/experiments/{key}/assign`: the routers' hot path.
//!
//! The experiment's current version and parsed spec come from memory ([`crate::CachedStore`]).
//! A running experiment stores the decision (first write wins, so a returning unit gets its
//! stored arm) and answers only after the group commit has made it durable; a non-running one
//! answers the baseline with `in_experiment: false` and stores nothing. An answer outside the
//! experiment carries its `reason` ([`liftlab_domain::out_reason`]), and `/metrics` counts
//! answers by experiment and reason.
//!
//! The handler never blocks its worker: the one read it makes here — the unit's stored
//! assignment — does not wait for a group commit, and the write hands its answer to a channel
//! the handler awaits. A returning unit with the same task is answered from that read; every
//! other case (a new unit, a new task, a task another unit holds, an assignment not durable
//! yet) goes to the store's writer, whose first-write-wins answer is the stored assignment or a
//! conflict. Only an experiment missing from the cache is loaded on the blocking pool. (On
//! PostgreSQL the two reads are a database round trip each, made from the worker; the period
//! is cached by the store for up to its bound.) A decision the store refuses as invalid is
//! made once more on fresh experiment state, as a replica's cache may lag a change made
//! through another replica.

use std::time::Instant;

use actix_web::{web, HttpResponse};
use liftlab_domain::{decide, out_reason, AssignRequest, Assignment, Status};
use liftlab_store::StoreError;
use serde_json::Value;

use crate::auth::Router;
use crate::dto::{experiment_key, now_millis, AssignView};
use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::state::AppState;

pub async fn assign(
    _who: Router,
    state: web::Data<AppState>,
    key: web::Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<HttpResponse, ApiError> {
    let key = experiment_key(key.into_inner())?;
    let request = AssignRequest::parse(&body)?;
    let mut refreshed = false;
    loop {
        let live = match state.cache.cached_live(&key) {
            Some(live) => live,
            None => {
                let (worker, key) = (state.clone(), key.clone());
                web::block(move || worker.cache.live(&key)).await??
            }
        };
        let current = &live.version;
        request.check_covariates(&current.spec)?;
        let running = current.status == Status::Running;
        let stored = if running {
            state.store.assignment_if_durable(&key, request.unit_id())?
        } else {
            None
        };
        let answer = match stored {
            Some(stored) if stored.task_id == request.task_id() => stored,
            _ => {
                let period = state.store.current_period_for_decision(&key)?;
                let decision = decide(
                    &current.spec,
                    current.status,
                    current.version,
                    live.epoch,
                    &period,
                    &request,
                    new_assignment_id(),
                    now_millis(),
                );
                if !running {
                    decision
                } else {
                    match record(&state, decision).await {
                        // On a database that replicas share, the cached experiment may be up
                        // to its bound behind (a stop made through another replica); the store
                        // then refuses to let the unit in. Decide again, once, on fresh state.
                        Err(StoreError::Invalid(_)) if !refreshed => {
                            refreshed = true;
                            state.cache.forget(&key);
                            continue;
                        }
                        answer => answer?,
                    }
                }
            }
        };
        let reason = out_reason(&current.spec, current.status, &answer, &request);
        state
            .metrics
            .observe_assignment(&answer.experiment, &answer.arm, reason);
        return Ok(HttpResponse::Ok().json(AssignView::new(&answer, reason)));
    }
}

/// Records a decision and waits, without blocking the worker, for it to be durable.
async fn record(state: &AppState, decision: Assignment) -> Result<Assignment, StoreError> {
    let started = Instant::now();
    let (tx, rx) = tokio::sync::oneshot::channel();
    state.store.record_assignment_then(
        decision,
        Box::new(move |answer| {
            // The request may have been dropped; then nobody needs the answer.
            let _ = tx.send(answer);
        }),
    );
    let stored = rx.await.map_err(|_| StoreError::Closed)??;
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
