//! `JsonBody<T>`: a JSON request body, size-limited and parsed with JSON-pointer error locations.
//!
//! It differs from `web::Json` in what it reports: a field of the wrong type or an unknown field
//! becomes a 422 problem whose `errors` entry points at the offending value, while unreadable
//! JSON (syntax, truncation, invalid UTF-8, nesting past serde_json's recursion limit) is a 400.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;

use crate::error::{parse_json, too_large, ApiError};
use crate::state::AppState;

/// A parsed JSON body of type `T`.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

/// A JSON body that may be left out: an empty body is `None`, anything else must be valid JSON.
#[derive(Debug)]
pub struct OptionalJsonBody<T>(pub Option<T>);

/// Whether a `Content-Type` is JSON (`application/json` or any `+json` suffix type).
pub(crate) fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// The request's content type, or "" when absent or unreadable.
pub(crate) fn content_type(req: &HttpRequest) -> String {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

/// The configured JSON body limit (the default when no state is registered).
pub(crate) fn json_limit(req: &HttpRequest) -> usize {
    req.app_data::<web::Data<AppState>>()
        .map_or(crate::MIB, |s| s.config.json_limit)
}

/// Reads the whole body, failing with 413 as soon as it passes `limit` bytes.
pub(crate) async fn read_body(
    mut payload: Payload,
    limit: usize,
) -> Result<web::BytesMut, ApiError> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::BadRequest(format!("the request body could not be read: {e}"))
        })?;
        if body.len() + chunk.len() > limit {
            return Err(too_large(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

impl<T: DeserializeOwned + 'static> FromRequest for JsonBody<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = read_json(req, payload);
        Box::pin(async move {
            match body.await? {
                Some(value) => Ok(JsonBody(value)),
                None => Err(ApiError::BadRequest(
                    "the request needs a JSON body".to_string(),
                )),
            }
        })
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for OptionalJsonBody<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = read_json(req, payload);
        Box::pin(async move { body.await.map(OptionalJsonBody) })
    }
}

/// Reads and parses a JSON body; `None` when the body is empty.
fn read_json<T: DeserializeOwned + 'static>(
    req: &HttpRequest,
    payload: &mut Payload,
) -> impl Future<Output = Result<Option<T>, ApiError>> {
    let ct = content_type(req);
    let limit = json_limit(req);
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let payload = payload.take();
    async move {
        if declared.is_some_and(|n| n > limit) {
            return Err(too_large(limit));
        }
        let body = read_body(payload, limit).await?;
        if body.is_empty() {
            return Ok(None);
        }
        if !is_json(&ct) {
            return Err(ApiError::UnsupportedMediaType(format!(
                "the request body must be application/json, not `{}`",
                if ct.is_empty() { "(none)" } else { ct.as_str() }
            )));
        }
        parse_json(&body).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_content_types() {
        assert!(is_json("application/json"));
        assert!(is_json("Application/JSON; charset=utf-8"));
        assert!(is_json("application/merge-patch+json"));
        assert!(!is_json("text/plain"));
        assert!(!is_json("application/x-ndjson"));
        assert!(!is_json(""));
    }
}
