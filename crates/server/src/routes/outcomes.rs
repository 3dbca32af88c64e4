//! `POST /v1/outcomes`: one event, `{"events":[…]}`, or an NDJSON stream, judged event by event.
//!
//! Each event is parsed into a [`OutcomeEvent`] (unknown fields, an `arm` included, are rejected),
//! checked by [`Outcome::parse`] against its experiment's spec and its `ts` against the server's clock at receipt
//! (at most [`liftlab_domain::MAX_OUTCOME_LEAD`] ahead), resolved to the arm its task was
//! really served, and recorded through the store's batch API in chunks of [`CHUNK`], so a
//! stream of any length is never held in memory whole. Every chunk is durable before the next
//! is read; the answer comes after the last. Rejected events come back by index (their
//! position in the batch or stream, from 0; blank NDJSON lines are not counted).

use std::collections::BTreeMap;
use std::time::Instant;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use liftlab_domain::outcome::{shorten, OutcomeEvent};
use liftlab_domain::{Outcome, SpecErrors};
use liftlab_store::Recorded;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::auth::Router;
use crate::dto::now_millis;
use crate::error::{too_large, ApiError, FieldError};
use crate::extract::{content_type, is_json, read_body};
use crate::metrics::OutcomeResult;
use crate::state::AppState;

mod framing;

use framing::{is_ndjson, split, Framing, NdjsonLines, Pending};

/// Events validated and recorded per store call.
pub const CHUNK: usize = 500;

/// The label used in metrics for events naming no known experiment.
const UNKNOWN_EXPERIMENT: &str = "(unknown)";

/// The per-event answer.
#[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct OutcomeSummary {
    pub accepted: u64,
    pub duplicates: u64,
    pub rejected: Vec<Rejected>,
}

/// An event that was not recorded, with every problem found in it.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct Rejected {
    pub index: usize,
    pub errors: Vec<FieldError>,
}

pub async fn record(
    _who: Router,
    state: web::Data<AppState>,
    req: HttpRequest,
    mut payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let ct = content_type(&req);
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let mut summary = OutcomeSummary::default();
    let framing = if is_ndjson(&ct) {
        let limit = state.config.ndjson_limit;
        if declared.is_some_and(|n| n > limit) {
            return Err(too_large(limit));
        }
        stream(&state, &mut payload, limit, &mut summary).await?;
        Framing::Stream
    } else if is_json(&ct) {
        let limit = state.config.json_limit;
        if declared.is_some_and(|n| n > limit) {
            return Err(too_large(limit));
        }
        let body = read_body(payload_of(payload), limit).await?;
        let document: Value = crate::error::parse_json(&body)?;
        let (framing, events) = split(document)?;
        let mut pending = Vec::new();
        for (index, event) in events.into_iter().enumerate() {
            pending.push(Pending::from_value(index, event));
            if pending.len() == CHUNK {
                process(&state, std::mem::take(&mut pending), &mut summary).await?;
            }
        }
        process(&state, pending, &mut summary).await?;
        framing
    } else {
        return Err(ApiError::UnsupportedMediaType(format!(
            "outcomes must be application/json or application/x-ndjson, not `{}`",
            if ct.is_empty() { "(none)" } else { ct.as_str() }
        )));
    };
    if summary.accepted + summary.duplicates == 0 {
        return Err(nothing_valid(framing, summary));
    }
    Ok(HttpResponse::Ok().json(summary))
}

fn payload_of(payload: web::Payload) -> Payload {
    payload.into_inner()
}

/// Reads an NDJSON stream line by line, recording every [`CHUNK`] events as they arrive.
async fn stream(
    state: &web::Data<AppState>,
    payload: &mut web::Payload,
    limit: usize,
    summary: &mut OutcomeSummary,
) -> Result<(), ApiError> {
    let mut lines = NdjsonLines::new(limit, state.config.json_limit);
    let mut pending = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::BadRequest(format!("the request body could not be read: {e}"))
        })?;
        for event in lines.feed(&chunk).map_err(|e| partial(e, summary))? {
            pending.push(event);
            if pending.len() == CHUNK {
                let batch = std::mem::take(&mut pending);
                process(state, batch, summary)
                    .await
                    .map_err(|e| partial(e, summary))?;
            }
        }
        lines.check_open_line().map_err(|e| partial(e, summary))?;
    }
    pending.extend(lines.finish());
    process(state, pending, summary)
        .await
        .map_err(|e| partial(e, summary))
}

/// Notes in an error that ends a stream how many events were already recorded durably.
fn partial(error: ApiError, summary: &OutcomeSummary) -> ApiError {
    let done = summary.accepted + summary.duplicates;
    if done == 0 {
        return error;
    }
    let note = format!(
        " ({} events before this point were recorded and {} were duplicates; re-sending them is safe)",
        summary.accepted, summary.duplicates
    );
    match error {
        ApiError::PayloadTooLarge(d) => ApiError::PayloadTooLarge(d + &note),
        ApiError::Unavailable(d) => ApiError::Unavailable(d + &note),
        ApiError::BadRequest(d) => ApiError::BadRequest(d + &note),
        other => other,
    }
}

/// The 422 for a request in which no event was valid: every error, pointed into the request.
fn nothing_valid(framing: Framing, summary: OutcomeSummary) -> ApiError {
    if summary.rejected.is_empty() {
        return ApiError::invalid(
            if framing == Framing::Batch {
                "/events"
            } else {
                ""
            },
            "the request holds no events",
        );
    }
    let n = summary.rejected.len();
    let mut errors = Vec::new();
    for r in summary.rejected {
        let base = framing.base(r.index);
        errors.extend(
            r.errors
                .into_iter()
                .map(|e| FieldError::new(format!("{base}{}", e.pointer), e.message)),
        );
    }
    let detail = match (framing, errors.first()) {
        (Framing::Single, Some(first)) if errors.len() == 1 => {
            format!(
                "the event was rejected: {}: {}",
                pointer_text(&first.pointer),
                first.message
            )
        }
        (Framing::Single, _) => "the event was rejected".to_string(),
        _ => format!("all {n} events were rejected"),
    };
    ApiError::invalid_all(detail, errors)
}

fn pointer_text(pointer: &str) -> &str {
    if pointer.is_empty() {
        "event"
    } else {
        pointer
    }
}

/// Validates, resolves and records one chunk of events on the blocking pool.
async fn process(
    state: &web::Data<AppState>,
    chunk: Vec<Pending>,
    summary: &mut OutcomeSummary,
) -> Result<(), ApiError> {
    if chunk.is_empty() {
        return Ok(());
    }
    let worker = state.clone();
    let received = now_millis();
    let result = web::block(move || process_blocking(&worker, chunk, received)).await??;
    summary.accepted += result.accepted;
    summary.duplicates += result.duplicates;
    summary.rejected.extend(result.rejected);
    Ok(())
}

/// A validated event, ready for the store.
struct Ready {
    index: usize,
    outcome: Outcome,
}

fn process_blocking(
    state: &AppState,
    chunk: Vec<Pending>,
    received: liftlab_domain::Millis,
) -> Result<OutcomeSummary, ApiError> {
    let mut summary = OutcomeSummary::default();
    let mut by_experiment: BTreeMap<String, Vec<Ready>> = BTreeMap::new();
    let mut rejected_per_experiment: BTreeMap<String, u64> = BTreeMap::new();
    for pending in chunk {
        let event = match pending.event {
            Ok(event) => event,
            Err(errors) => {
                *rejected_per_experiment
                    .entry(UNKNOWN_EXPERIMENT.to_string())
                    .or_default() += 1;
                summary.rejected.push(Rejected {
                    index: pending.index,
                    errors,
                });
                continue;
            }
        };
        match resolve(state, event, received)? {
            Ok(outcome) => by_experiment
                .entry(outcome.experiment.clone())
                .or_default()
                .push(Ready {
                    index: pending.index,
                    outcome,
                }),
            Err((label, errors)) => {
                *rejected_per_experiment.entry(label).or_default() += 1;
                summary.rejected.push(Rejected {
                    index: pending.index,
                    errors,
                });
            }
        }
    }
    for (experiment, ready) in by_experiment {
        let live = state.cache.live(&experiment)?;
        let (indices, outcomes): (Vec<usize>, Vec<Outcome>) =
            ready.into_iter().map(|r| (r.index, r.outcome)).unzip();
        let n = outcomes.len();
        let started = Instant::now();
        let results = state.store.record_outcomes(&live.version.spec, outcomes)?;
        state
            .metrics
            .observe_store_write("record_outcomes", n, started.elapsed());
        let (mut accepted, mut duplicates, mut rejected) = (0u64, 0u64, 0u64);
        for (index, result) in indices.into_iter().zip(results) {
            match result {
                Ok(Recorded::Accepted) => accepted += 1,
                Ok(Recorded::Duplicate) => duplicates += 1,
                Err(e) if e.is_internal() => return Err(e.into()),
                Err(e) => {
                    rejected += 1;
                    let api: ApiError = e.into();
                    let errors = match api {
                        ApiError::Validation { errors, .. } => errors,
                        other => vec![FieldError::new("", other.to_string())],
                    };
                    summary.rejected.push(Rejected { index, errors });
                }
            }
        }
        state
            .metrics
            .observe_outcomes(&experiment, OutcomeResult::Accepted, accepted);
        state
            .metrics
            .observe_outcomes(&experiment, OutcomeResult::Duplicate, duplicates);
        *rejected_per_experiment
            .entry(experiment.clone())
            .or_default() += rejected;
        summary.accepted += accepted;
        summary.duplicates += duplicates;
    }
    for (experiment, n) in rejected_per_experiment {
        state
            .metrics
            .observe_outcomes(&experiment, OutcomeResult::Rejected, n);
    }
    summary.rejected.sort_by_key(|r| r.index);
    Ok(summary)
}

/// A rejected event: the metrics label to count it under and every problem found in it.
type Rejection = (String, Vec<FieldError>);

fn field_errors(errors: SpecErrors) -> Vec<FieldError> {
    errors
        .problems
        .into_iter()
        .map(|p| FieldError::new(p.pointer, p.message))
        .collect()
}

/// Checks an event against its experiment ([`Outcome::parse`]) and resolves its unit and arm
/// from the assignment of its task.
///
/// The outer `Err` is a failure of the store, which fails the whole request (503) rather than
/// rejecting a valid event.
fn resolve(
    state: &AppState,
    event: OutcomeEvent,
    received: liftlab_domain::Millis,
) -> Result<Result<Outcome, Rejection>, ApiError> {
    let live = match state.cache.live(&event.experiment) {
        Ok(live) => live,
        Err(e) if e.is_internal() => return Err(e.into()),
        Err(_) => {
            let mut errors = SpecErrors::default();
            event.check(received, &mut errors);
            errors.push(
                "/experiment",
                format!("unknown experiment `{}`", shorten(&event.experiment)),
            );
            return Ok(Err((UNKNOWN_EXPERIMENT.to_string(), field_errors(errors))));
        }
    };
    let label = event.experiment.clone();
    let assignment = if event.task_id.is_empty() {
        None
    } else {
        match state
            .store
            .assignment_by_task(&event.experiment, &event.task_id)
        {
            Ok(found) => found,
            Err(e) if e.is_internal() => return Err(e.into()),
            Err(e) => {
                let mut errors = SpecErrors::default();
                event.check(received, &mut errors);
                errors.push("/task_id", format!("the assignment could not be read: {e}"));
                return Ok(Err((label, field_errors(errors))));
            }
        }
    };
    Ok(Outcome::parse(
        event,
        &live.version.spec,
        live.epoch,
        assignment.as_ref(),
        received,
    )
    .map_err(|errors| (label, field_errors(errors))))
}
