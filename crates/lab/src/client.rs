//! A small blocking client of liftlab's HTTP API (ureq), turning problem+json answers into readable errors.

use std::fmt;
use std::time::Duration;

use serde_json::Value;

/// The server address used when `--server` is not given.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

/// A client bound to one server; cheap to clone and safe to share between threads.
#[derive(Clone, Debug)]
pub struct Client {
    base: String,
    key: Option<String>,
    agent: ureq::Agent,
}

/// Why a request failed.
#[derive(Debug)]
pub enum ApiError {
    /// The server answered with a problem+json document.
    Problem {
        status: u16,
        title: String,
        detail: String,
        /// (pointer, message) of every validation problem.
        errors: Vec<(String, String)>,
    },
    /// The server answered with an error status and no problem document.
    Status { status: u16, body: String },
    /// The server answered 401: it needs an API key, or does not accept the one sent.
    Unauthenticated {
        /// Whether this client sent a key.
        key_sent: bool,
        /// The server's explanation.
        detail: String,
    },
    /// The server could not be reached.
    Transport { base: String, reason: String },
    /// The server answered 2xx with something that is not the expected JSON.
    BadResponse(String),
}

impl ApiError {
    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Problem { status, .. } | ApiError::Status { status, .. } => Some(*status),
            ApiError::Unauthenticated { .. } => Some(401),
            ApiError::Transport { .. } | ApiError::BadResponse(_) => None,
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::Problem {
                status,
                title,
                detail,
                errors,
            } => {
                write!(f, "the server answered {status} {title}")?;
                let detail = detail_without_problems(detail, errors);
                if !detail.is_empty() && detail != title {
                    write!(f, ": {detail}")?;
                }
                for (pointer, message) in errors {
                    write!(f, "\n  {}: {message}", at(pointer))?;
                }
                Ok(())
            }
            ApiError::Status { status, body } => {
                write!(f, "the server answered {status}")?;
                let body = body.trim();
                if !body.is_empty() {
                    let short: String = body.chars().take(300).collect();
                    write!(f, ": {short}")?;
                }
                Ok(())
            }
            // The server's own detail speaks HTTP (an Authorization header); a CLI user needs
            // the flag or the variable that sends one.
            ApiError::Unauthenticated { key_sent: false, .. } => write!(
                f,
                "the server answered 401: it needs an API key; pass --key or set LIFTLAB_KEY"
            ),
            ApiError::Unauthenticated {
                key_sent: true,
                detail,
            } => {
                write!(f, "the server answered 401")?;
                if !detail.is_empty() {
                    write!(f, ": {detail}")?;
                }
                write!(
                    f,
                    "; check the key given by --key or LIFTLAB_KEY (`liftlab keys new` makes one)"
                )
            }
            ApiError::Transport { base, reason } => write!(
                f,
                "cannot reach the liftlab server at {base}: {reason} (is `liftlab serve` running there? pass --server URL)"
            ),
            ApiError::BadResponse(why) => write!(f, "unexpected answer from the server: {why}"),
        }
    }
}

impl std::error::Error for ApiError {}

/// Where a problem is, for people: its JSON pointer, or `(document)` for the whole document.
fn at(pointer: &str) -> &str {
    if pointer.is_empty() {
        "(document)"
    } else {
        pointer
    }
}

/// The detail up to where it starts repeating the listed problems: the server spells them out
/// in the detail for readers of the raw JSON, and the CLI prints them one a line below it.
fn detail_without_problems<'a>(detail: &'a str, errors: &[(String, String)]) -> &'a str {
    let Some((pointer, message)) = errors.first() else {
        return detail;
    };
    match detail.find(&format!("{}: {message}", at(pointer))) {
        Some(start) => detail[..start].trim_end_matches([' ', ':', ';']),
        None => detail,
    }
}

impl Client {
    /// A client of the server at `base` (`http://host:port`), sending `key` as a bearer token.
    pub fn new(base: &str, key: Option<String>) -> anyhow::Result<Client> {
        let base = base.trim_end_matches('/').to_string();
        if base.starts_with("https://") {
            anyhow::bail!("{base}: this build of liftlab speaks plain http only; put a TLS proxy in front or use http://");
        }
        if !base.starts_with("http://") || base.len() <= "http://".len() {
            anyhow::bail!("{base} is not a server URL; use the form http://HOST:PORT");
        }
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(5))
            .timeout(Duration::from_secs(120))
            .max_idle_connections_per_host(64)
            .build();
        Ok(Client {
            base,
            key: key.filter(|k| !k.is_empty()),
            agent,
        })
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn request(&self, method: &str, path: &str) -> ureq::Request {
        let request = self.agent.request(method, &format!("{}{path}", self.base));
        match &self.key {
            Some(key) => request.set("Authorization", &format!("Bearer {key}")),
            None => request,
        }
    }

    /// `GET path`, parsed as JSON.
    pub fn get_json(&self, path: &str) -> Result<Value, ApiError> {
        self.json(self.request("GET", path).call())
    }

    /// `GET path`, as text (CSV, metrics).
    pub fn get_text(&self, path: &str) -> Result<String, ApiError> {
        let response = self
            .request("GET", path)
            .call()
            .map_err(|e| self.failure(e))?;
        response
            .into_string()
            .map_err(|e| ApiError::BadResponse(format!("cannot read the body: {e}")))
    }

    /// `POST path` with a JSON body, parsed as JSON.
    pub fn post_json(&self, path: &str, body: &Value) -> Result<Value, ApiError> {
        self.json(self.request("POST", path).send_json(body))
    }

    /// `PUT path` with a JSON body, parsed as JSON.
    pub fn put_json(&self, path: &str, body: &Value) -> Result<Value, ApiError> {
        self.json(self.request("PUT", path).send_json(body))
    }

    /// Whether `GET path` finds something (200) rather than nothing (404).
    pub fn exists(&self, path: &str) -> Result<bool, ApiError> {
        match self.get_json(path) {
            Ok(_) => Ok(true),
            Err(e) if e.status() == Some(404) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn json(&self, result: Result<ureq::Response, ureq::Error>) -> Result<Value, ApiError> {
        let response = result.map_err(|e| self.failure(e))?;
        let text = response
            .into_string()
            .map_err(|e| ApiError::BadResponse(format!("cannot read the body: {e}")))?;
        serde_json::from_str(&text).map_err(|e| ApiError::BadResponse(format!("not JSON ({e})")))
    }

    fn failure(&self, error: ureq::Error) -> ApiError {
        match error {
            ureq::Error::Status(status, response) => {
                let body = response.into_string().unwrap_or_default();
                let answer = problem(status, &body).unwrap_or(ApiError::Status { status, body });
                if status != 401 {
                    return answer;
                }
                ApiError::Unauthenticated {
                    key_sent: self.key.is_some(),
                    detail: match answer {
                        ApiError::Problem { detail, .. } => detail,
                        _ => String::new(),
                    },
                }
            }
            ureq::Error::Transport(t) => ApiError::Transport {
                base: self.base.clone(),
                reason: t.to_string(),
            },
        }
    }
}

/// Reads a problem+json body (RFC 9457) with liftlab's `errors` list.
fn problem(status: u16, body: &str) -> Option<ApiError> {
    let doc: Value = serde_json::from_str(body).ok()?;
    let object = doc.as_object()?;
    let text = |k: &str| {
        object
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    if !object.contains_key("title") && !object.contains_key("detail") {
        return None;
    }
    let errors = object
        .get("errors")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .map(|e| {
                    let field = |k: &str| {
                        e.get(k)
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string()
                    };
                    (field("pointer"), field("message"))
                })
                .collect()
        })
        .unwrap_or_default();
    Some(ApiError::Problem {
        status,
        title: text("title"),
        detail: text("detail"),
        errors,
    })
}

/// Percent-encodes a path segment (experiment keys are slugs, but user input may not be).
pub fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_print_every_pointer() {
        let body = r#"{"type":"https://liftlab.dev/problems/validation","title":"Invalid request","status":422,
            "detail":"the experiment spec has 2 problems",
            "errors":[{"pointer":"/arms/1/role","message":"must be baseline or treatment"},{"pointer":"","message":"bad"}]}"#;
        let text = problem(422, body).expect("a problem").to_string();
        assert!(text.starts_with(
            "the server answered 422 Invalid request: the experiment spec has 2 problems"
        ));
        assert!(text.contains("\n  /arms/1/role: must be baseline or treatment"));
        assert!(text.contains("\n  (document): bad"));
    }

    #[test]
    fn each_problem_is_printed_once_when_the_detail_spells_them_out() {
        let body = r#"{"title":"Invalid request content","status":422,
            "detail":"the document is invalid: 2 problems: /arms/1/role: unknown value \"champion\"; (document): bad",
            "errors":[{"pointer":"/arms/1/role","message":"unknown value \"champion\""},{"pointer":"","message":"bad"}]}"#;
        let text = problem(422, body).expect("a problem").to_string();
        assert_eq!(
            text,
            "the server answered 422 Invalid request content: the document is invalid: 2 problems\n  /arms/1/role: unknown value \"champion\"\n  (document): bad"
        );
    }

    #[test]
    fn non_problem_bodies_are_not_problems() {
        assert!(problem(500, "oops").is_none());
        assert!(problem(500, "[1]").is_none());
    }

    #[test]
    fn urls_must_be_plain_http() {
        assert!(Client::new("http://127.0.0.1:8080/", None).is_ok());
        assert!(Client::new("https://example.com", None).is_err());
        assert!(Client::new("127.0.0.1:8080", None).is_err());
    }

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(segment("triage-ai_2"), "triage-ai_2");
        assert_eq!(segment("a b/c"), "a%20b%2Fc");
    }
}
