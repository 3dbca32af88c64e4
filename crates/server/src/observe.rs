//! Per-request observability: request ids, a tracing span, one log line, metrics, and problem bodies.
//!
//! The [`observe`] middleware wraps the whole app. It takes the request id from an incoming
//! W3C `traceparent` (its trace id) or `x-request-id`, or makes one, runs the request inside a
//! `request` span carrying it, echoes it in the `x-request-id` response header, logs one line
//! per request (method, route, status, latency — never headers, so never credentials) and feeds
//! the request metrics. An error response that actix produced without a body (a 405 from a
//! resource, say) is given the same problem+json body as every other error.

use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage};
use tracing::Instrument;

use crate::error::{Problem, ProblemCode};
use crate::state::AppState;

/// The header carrying the request id in both directions.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The id of the request being served, stored in the request's extensions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestId(pub String);

/// Picks the request id: a valid `traceparent`'s trace id, else a sane `x-request-id`, else new.
pub fn request_id(traceparent: Option<&str>, x_request_id: Option<&str>) -> String {
    if let Some(trace_id) = traceparent.and_then(trace_id_of) {
        return trace_id.to_string();
    }
    if let Some(id) = x_request_id.filter(|id| is_sane_id(id)) {
        return id.to_string();
    }
    let bytes: [u8; 16] = rand::random();
    hex::encode(bytes)
}

/// The trace id of a W3C `traceparent` header (`00-<32 hex>-<16 hex>-<2 hex>`), if valid.
fn trace_id_of(traceparent: &str) -> Option<&str> {
    let mut parts = traceparent.trim().split('-');
    let (version, trace, parent, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex_of = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    let ok = hex_of(version, 2)
        && version != "ff"
        && hex_of(trace, 32)
        && trace.bytes().any(|b| b != b'0')
        && hex_of(parent, 16)
        && parent.bytes().any(|b| b != b'0')
        && hex_of(flags, 2)
        && (version != "00" || parts.next().is_none());
    ok.then_some(trace)
}

fn is_sane_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// The middleware; registered once in `app()` with `actix_web::middleware::from_fn`.
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let started = Instant::now();
    let header_text = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let id = request_id(header_text("traceparent"), header_text("x-request-id"));
    req.extensions_mut().insert(RequestId(id.clone()));
    let route = req
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_string());
    let method = req.method().as_str().to_string();
    let metrics = req
        .app_data::<web::Data<AppState>>()
        .map(|s| std::sync::Arc::clone(&s.metrics));
    let span = tracing::info_span!("request", id = %id, method = %method, route = %route);

    let result = next.call(req).instrument(span.clone()).await;
    let (outcome, status) = match result {
        Ok(res) => {
            let mut res = with_problem_body(res.map_into_boxed_body());
            if let Ok(value) = HeaderValue::from_str(&id) {
                res.headers_mut().insert(REQUEST_ID, value);
            }
            let status = res.status();
            (Ok(res), status)
        }
        Err(err) => {
            // An error that escaped the handlers still gets a problem body and the id header.
            let mut response = err.error_response();
            let status = response.status();
            if !is_problem(response.headers()) {
                response =
                    Problem::new(ProblemCode::for_status(status), err.to_string(), Vec::new())
                        .response();
            }
            let response = with_id(response, &id);
            let err = actix_web::error::InternalError::from_response(err.to_string(), response);
            (Err(err.into()), status)
        }
    };
    let elapsed = started.elapsed();
    if let Some(metrics) = metrics {
        metrics.observe_request(&route, &method, status.as_u16(), elapsed);
    }
    span.in_scope(|| {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), micros, "request failed");
        } else {
            tracing::info!(status = status.as_u16(), micros, "request");
        }
    });
    outcome
}

fn with_id(mut res: actix_web::HttpResponse, id: &str) -> actix_web::HttpResponse {
    if let Ok(value) = HeaderValue::from_str(id) {
        res.headers_mut().insert(REQUEST_ID, value);
    }
    res
}

fn is_problem(headers: &header::HeaderMap) -> bool {
    headers.contains_key(header::CONTENT_TYPE)
}

/// Gives a bodiless 4xx/5xx response (one actix made itself) the standard problem body.
fn with_problem_body(res: ServiceResponse<BoxBody>) -> ServiceResponse<BoxBody> {
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) || is_problem(res.headers()) {
        return res;
    }
    let code = ProblemCode::for_status(status);
    let detail = match code {
        ProblemCode::MethodNotAllowed => format!(
            "{} is not allowed on {}",
            res.request().method(),
            res.request().path()
        ),
        ProblemCode::NotFound => format!("no route for {}", res.request().path()),
        _ => status
            .canonical_reason()
            .unwrap_or("request failed")
            .to_lowercase(),
    };
    let allow = res.headers().get(header::ALLOW).cloned();
    let (req, _) = res.into_parts();
    let mut problem = Problem::new(code, detail, Vec::new()).response();
    *problem.status_mut() = status;
    if let Some(allow) = allow {
        problem.headers_mut().insert(header::ALLOW, allow);
    }
    ServiceResponse::new(req, problem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_wins_over_x_request_id() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(
            request_id(Some(tp), Some("abc")),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
    }

    #[test]
    fn invalid_traceparents_are_ignored() {
        for tp in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "garbage",
        ] {
            assert_eq!(
                request_id(Some(tp), Some("fallback-1")),
                "fallback-1",
                "{tp}"
            );
        }
    }

    #[test]
    fn unsafe_request_ids_are_replaced() {
        let long = "x".repeat(129);
        for bad in ["", "has space", "line\nbreak", long.as_str()] {
            let id = request_id(None, Some(bad));
            assert_ne!(id, bad);
            assert_eq!(id.len(), 32);
        }
        assert_ne!(request_id(None, None), request_id(None, None));
    }
}
