//! The one place where errors become HTTP: `ApiError` → the problem table → `application/problem+json`.
//!
//! Every failure a client can see goes through [`ApiError`]. Its [`ApiError::code`] picks a row of
//! [`ProblemCode::describe`] (status, stable problem `type` URI, title), and the single
//! [`ResponseError`] impl renders an RFC 9457 body. The extractor error handlers registered by
//! `app()` ([`json_config`], [`path_config`], [`query_config`], [`payload_config`]) convert
//! actix's own errors into `ApiError` too, so a malformed body and a failed lookup read alike.

use actix_web::error::{JsonPayloadError, PathError, PayloadError, QueryPayloadError};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use liftlab_domain::spec::SpecErrors;
use liftlab_domain::DomainError;
use liftlab_store::StoreError;
use serde::Serialize;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The prefix of every problem `type` URI; the code's slug follows it.
pub const PROBLEM_BASE: &str = "https://liftlab.dev/problems/";

/// One invalid input, located by a JSON pointer into the request (RFC 6901).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct FieldError {
    pub pointer: String,
    pub message: String,
}

impl FieldError {
    pub fn new(pointer: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            pointer: pointer.into(),
            message: message.into(),
        }
    }
}

/// Every error the API reports; each variant's text is the problem's `detail`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request could not be read at all: malformed JSON, a bad path or query parameter.
    #[error("{0}")]
    BadRequest(String),
    /// The request was well-formed but its content is invalid; `errors` locates each problem.
    #[error("{detail}")]
    Validation {
        detail: String,
        errors: Vec<FieldError>,
    },
    /// No credentials, or credentials that match no key.
    #[error("{0}")]
    Unauthorized(String),
    /// Valid credentials whose role may not do this.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    /// The request conflicts with the current state: a stale version, an invalid transition,
    /// an existing key.
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The client is over its rate limit (the rate-limit middleware adds `Retry-After`).
    #[error("{0}")]
    RateLimited(String),
    /// The store cannot serve right now (IO failure or corruption); retrying later may work.
    #[error("{0}")]
    Unavailable(String),
    /// A bug or an unexpected failure inside the server.
    #[error("{0}")]
    Internal(String),
}

/// The stable identity of an error kind: one row of the problem table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProblemCode {
    BadRequest,
    Validation,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    Conflict,
    PayloadTooLarge,
    UnsupportedMediaType,
    RateLimited,
    Unavailable,
    Internal,
}

/// A row of the problem table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProblemKind {
    pub status: StatusCode,
    /// Appended to [`PROBLEM_BASE`] to form the problem `type`.
    pub slug: &'static str,
    pub title: &'static str,
}

impl ProblemCode {
    /// Every code, in table order; the OpenAPI test checks that each one is documented.
    pub const ALL: [ProblemCode; 12] = [
        ProblemCode::BadRequest,
        ProblemCode::Validation,
        ProblemCode::Unauthorized,
        ProblemCode::Forbidden,
        ProblemCode::NotFound,
        ProblemCode::MethodNotAllowed,
        ProblemCode::Conflict,
        ProblemCode::PayloadTooLarge,
        ProblemCode::UnsupportedMediaType,
        ProblemCode::RateLimited,
        ProblemCode::Unavailable,
        ProblemCode::Internal,
    ];

    /// The problem table: code → status → type → title.
    pub const fn describe(self) -> ProblemKind {
        use ProblemCode as C;
        let (status, slug, title) = match self {
            C::BadRequest => (StatusCode::BAD_REQUEST, "bad-request", "Malformed request"),
            C::Validation => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation",
                "Invalid request content",
            ),
            C::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Authentication required",
            ),
            C::Forbidden => (
                StatusCode::FORBIDDEN,
                "forbidden",
                "Not allowed for this role",
            ),
            C::NotFound => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            C::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
            ),
            C::Conflict => (
                StatusCode::CONFLICT,
                "conflict",
                "Conflict with current state",
            ),
            C::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Request body too large",
            ),
            C::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported content type",
            ),
            C::RateLimited => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                "Too many requests",
            ),
            C::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Storage unavailable",
            ),
            C::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal server error",
            ),
        };
        ProblemKind {
            status,
            slug,
            title,
        }
    }

    /// The code whose status is `status`, for responses that actix produced without a body.
    pub fn for_status(status: StatusCode) -> ProblemCode {
        Self::ALL
            .into_iter()
            .find(|c| c.describe().status == status)
            .unwrap_or(if status.is_server_error() {
                ProblemCode::Internal
            } else {
                ProblemCode::BadRequest
            })
    }

    /// The full problem `type` URI.
    pub fn type_uri(self) -> String {
        format!("{PROBLEM_BASE}{}", self.describe().slug)
    }
}

/// The RFC 9457 body every error response carries.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

impl Problem {
    pub fn new(code: ProblemCode, detail: impl Into<String>, errors: Vec<FieldError>) -> Self {
        let kind = code.describe();
        Problem {
            kind: code.type_uri(),
            title: kind.title.to_string(),
            status: kind.status.as_u16(),
            detail: detail.into(),
            errors,
        }
    }

    /// Renders the problem as a response with the problem media type.
    pub fn response(&self) -> HttpResponse {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut res = HttpResponse::build(status);
        res.insert_header((header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON)));
        if status == StatusCode::UNAUTHORIZED {
            res.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
        }
        let body = serde_json::to_vec(self).unwrap_or_else(|_| b"{}".to_vec());
        res.body(body)
    }
}

impl ApiError {
    /// The row of the problem table this error belongs to.
    pub fn code(&self) -> ProblemCode {
        match self {
            ApiError::BadRequest(_) => ProblemCode::BadRequest,
            ApiError::Validation { .. } => ProblemCode::Validation,
            ApiError::Unauthorized(_) => ProblemCode::Unauthorized,
            ApiError::Forbidden(_) => ProblemCode::Forbidden,
            ApiError::NotFound(_) => ProblemCode::NotFound,
            ApiError::MethodNotAllowed(_) => ProblemCode::MethodNotAllowed,
            ApiError::Conflict(_) => ProblemCode::Conflict,
            ApiError::PayloadTooLarge(_) => ProblemCode::PayloadTooLarge,
            ApiError::UnsupportedMediaType(_) => ProblemCode::UnsupportedMediaType,
            ApiError::RateLimited(_) => ProblemCode::RateLimited,
            ApiError::Unavailable(_) => ProblemCode::Unavailable,
            ApiError::Internal(_) => ProblemCode::Internal,
        }
    }

    /// A validation error with a single located problem.
    pub fn invalid(pointer: impl Into<String>, message: impl Into<String>) -> Self {
        let error = FieldError::new(pointer, message);
        ApiError::Validation {
            detail: format!("{}: {}", display_pointer(&error.pointer), error.message),
            errors: vec![error],
        }
    }

    /// A validation error listing several located problems.
    pub fn invalid_all(detail: impl Into<String>, errors: Vec<FieldError>) -> Self {
        ApiError::Validation {
            detail: detail.into(),
            errors,
        }
    }

    /// The problem body for this error.
    pub fn problem(&self) -> Problem {
        let errors = match self {
            ApiError::Validation { errors, .. } => errors.clone(),
            _ => Vec::new(),
        };
        Problem::new(self.code(), self.to_string(), errors)
    }
}

fn display_pointer(pointer: &str) -> &str {
    if pointer.is_empty() {
        "body"
    } else {
        pointer
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code().describe().status
    }

    fn error_response(&self) -> HttpResponse {
        if self.code() == ProblemCode::Internal {
            tracing::error!(error = %self, "internal error");
        }
        self.problem().response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { .. } => ApiError::NotFound(e.to_string()),
            StoreError::Conflict(what) => ApiError::Conflict(what),
            StoreError::Invalid(what) => ApiError::invalid("", what),
            StoreError::Domain(domain) => domain.into(),
            other => {
                tracing::error!(error = %other, "store failure");
                ApiError::Unavailable(format!("the store cannot serve this request: {other}"))
            }
        }
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::Invalid(errors) => errors.into(),
            DomainError::KeyMismatch { .. } => ApiError::invalid("/key", e.to_string()),
            DomainError::Transition { .. } | DomainError::FrozenField { .. } => {
                ApiError::Conflict(e.to_string())
            }
            DomainError::UnknownArm(_) | DomainError::InvalidReward { .. } => {
                ApiError::invalid("", e.to_string())
            }
            DomainError::RemoveFromEmpty { .. } => ApiError::Internal(e.to_string()),
        }
    }
}

impl From<SpecErrors> for ApiError {
    fn from(errors: SpecErrors) -> Self {
        let detail = format!("the document is invalid: {errors}");
        let errors = errors
            .problems
            .into_iter()
            .map(|p| FieldError::new(p.pointer, p.message))
            .collect();
        ApiError::Validation { detail, errors }
    }
}

impl From<actix_web::error::BlockingError> for ApiError {
    fn from(_: actix_web::error::BlockingError) -> Self {
        ApiError::Internal("the blocking worker pool is gone".to_string())
    }
}

/// Maps a serde_json error to 400 (unreadable JSON) or 422 (readable but wrong shape).
pub fn json_error(e: &serde_json::Error, pointer: &str) -> ApiError {
    use serde_json::error::Category;
    match e.classify() {
        Category::Data => ApiError::invalid(pointer, strip_position(&e.to_string())),
        Category::Syntax | Category::Eof | Category::Io => {
            ApiError::BadRequest(format!("malformed JSON: {e}"))
        }
    }
}

/// serde_json appends " at line L column C" to data errors; a pointer locates them better.
pub(crate) fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

/// Parses a JSON body into `T`: unreadable JSON is a 400, a value of the wrong shape a 422 whose
/// error carries the JSON pointer of the offending value.
pub fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| json_error(&e, ""))?;
    from_value(value)
}

/// Converts a parsed JSON value into `T`, locating a mismatch with a JSON pointer.
pub fn from_value<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let pointer = error_pointer(&e);
        json_error(e.inner(), &pointer)
    })
}

/// The RFC 6901 pointer of a deserialization error: the path serde reached, and for a missing
/// required field the field itself (serde reports it at the object that lacks it).
pub(crate) fn error_pointer(e: &serde_path_to_error::Error<serde_json::Error>) -> String {
    let mut pointer = path_to_pointer(e.path());
    let message = e.inner().to_string();
    if let Some(field) = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split_once('`'))
        .map(|(field, _)| field)
    {
        pointer.push('/');
        pointer.push_str(&escape_pointer(field));
    }
    pointer
}

/// Renders serde_path_to_error's path as an RFC 6901 pointer.
pub(crate) fn path_to_pointer(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for seg in path.iter() {
        match seg {
            Segment::Seq { index } => {
                out.push('/');
                out.push_str(&index.to_string());
            }
            Segment::Map { key } => {
                out.push('/');
                out.push_str(&escape_pointer(key));
            }
            Segment::Enum { variant } => {
                out.push('/');
                out.push_str(&escape_pointer(variant));
            }
            Segment::Unknown => {}
        }
    }
    out
}

/// Escapes one reference token of a JSON pointer.
pub fn escape_pointer(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

fn payload_error(e: &PayloadError, limit: usize) -> ApiError {
    match e {
        PayloadError::Overflow => too_large(limit),
        other => ApiError::BadRequest(format!("the request body could not be read: {other}")),
    }
}

pub(crate) fn too_large(limit: usize) -> ApiError {
    ApiError::PayloadTooLarge(format!(
        "the request body exceeds the limit of {limit} bytes"
    ))
}

/// The `web::Json` configuration: size limit and errors routed into the problem table.
pub fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .error_handler(move |e, _req: &HttpRequest| {
            let api = match &e {
                JsonPayloadError::OverflowKnownLength { .. }
                | JsonPayloadError::Overflow { .. } => too_large(limit),
                JsonPayloadError::ContentType => ApiError::UnsupportedMediaType(
                    "the request body must be application/json".to_string(),
                ),
                JsonPayloadError::Deserialize(inner) | JsonPayloadError::Serialize(inner) => {
                    json_error(inner, "")
                }
                JsonPayloadError::Payload(p) => payload_error(p, limit),
                other => ApiError::BadRequest(other.to_string()),
            };
            api.into()
        })
}

/// The `web::Path` configuration: a path segment that does not parse is a 400 problem.
pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|e, _req| {
        let detail = match &e {
            PathError::Deserialize(inner) => format!("invalid path parameter: {inner}"),
            other => format!("invalid path parameter: {other}"),
        };
        ApiError::BadRequest(detail).into()
    })
}

/// The `web::Query` configuration: a query string that does not parse is a 400 problem.
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|e, _req| {
        let detail = match &e {
            QueryPayloadError::Deserialize(inner) => format!("invalid query string: {inner}"),
            other => format!("invalid query string: {other}"),
        };
        ApiError::BadRequest(detail).into()
    })
}

/// The `web::Form` configuration (the sign-in form): a small urlencoded body, else a problem.
pub fn form_config() -> web::FormConfig {
    web::FormConfig::default()
        .limit(8 * 1024)
        .error_handler(|e, _req| {
            use actix_web::error::UrlencodedError as E;
            match &e {
                E::ContentType => ApiError::UnsupportedMediaType(
                    "the form must be application/x-www-form-urlencoded".to_string(),
                ),
                E::Overflow { limit, .. } => {
                    ApiError::PayloadTooLarge(format!("the form is larger than {limit} bytes"))
                }
                E::Parse(inner) => ApiError::BadRequest(format!("invalid form: {inner}")),
                other => ApiError::BadRequest(format!(
                    "the form could not be read: {}",
                    other.to_string().trim_end_matches('.')
                )),
            }
            .into()
        })
}

/// The `web::Bytes`/`String` payload configuration: the size limit for raw bodies.
pub fn payload_config(limit: usize) -> web::PayloadConfig {
    web::PayloadConfig::new(limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_a_distinct_status_and_slug() {
        let mut statuses: Vec<u16> = ProblemCode::ALL
            .iter()
            .map(|c| c.describe().status.as_u16())
            .collect();
        let mut slugs: Vec<&str> = ProblemCode::ALL.iter().map(|c| c.describe().slug).collect();
        statuses.sort_unstable();
        statuses.dedup();
        slugs.sort_unstable();
        slugs.dedup();
        assert_eq!(statuses.len(), ProblemCode::ALL.len());
        assert_eq!(slugs.len(), ProblemCode::ALL.len());
    }

    #[test]
    fn every_code_round_trips_through_its_status() {
        for code in ProblemCode::ALL {
            assert_eq!(ProblemCode::for_status(code.describe().status), code);
        }
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Sample {
        items: Vec<Item>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Item {
        n: u32,
    }

    fn check(body: &str, code: ProblemCode, pointer: Option<&str>) {
        let err = parse_json::<Sample>(body.as_bytes()).expect_err("the body is rejected");
        assert_eq!(err.code(), code, "{body}: {err}");
        let problem = err.problem();
        assert_eq!(
            problem.errors.first().map(|e| e.pointer.as_str()),
            pointer,
            "{body}"
        );
    }

    #[test]
    fn json_errors_are_classified_and_located() {
        check("{", ProblemCode::BadRequest, None);
        check("{\"items\": [}", ProblemCode::BadRequest, None);
        check("{} trailing", ProblemCode::BadRequest, None);
        check(
            "{\"items\": [{\"n\": 1}, {\"n\": -1}]}",
            ProblemCode::Validation,
            Some("/items/1/n"),
        );
        check(
            "{\"items\": [{\"n\": 1, \"arm\": \"x\"}]}",
            ProblemCode::Validation,
            Some("/items/0/arm"),
        );
        check("{\"items\": 3}", ProblemCode::Validation, Some("/items"));
    }

    #[test]
    fn deep_nesting_is_a_client_error_not_a_crash() {
        let body = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let err = parse_json::<serde_json::Value>(body.as_bytes()).expect_err("too deep");
        assert_eq!(err.code(), ProblemCode::BadRequest);
    }

    #[test]
    fn invalid_utf8_is_a_client_error() {
        let err = parse_json::<serde_json::Value>(b"{\"a\": \"\xff\"}").expect_err("bad utf-8");
        assert_eq!(err.code(), ProblemCode::BadRequest);
    }

    #[test]
    fn pointers_escape_tilde_and_slash() {
        assert_eq!(escape_pointer("a/b~c"), "a~1b~0c");
    }
}
