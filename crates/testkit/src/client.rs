//! A fluent in-process client of an actix app: `app.post(path).as_role(Role::Scientist).json(body).send().await`.
//!
//! It is generic over the actix service, so it knows no liftlab crate: the caller passes in
//! `liftlab_server::app(state)` and a state whose keys are the ones [`Role::key`] names.

use actix_http::Request;
use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::header::HeaderMap;
use actix_web::http::{Method, StatusCode};
use actix_web::test::{self, TestRequest};
use actix_web::App;
use serde_json::{json, Value};

/// A role of the API, by the bearer key a test state gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Viewer,
    Router,
    Scientist,
    Admin,
}

impl Role {
    /// Every role, least privileged first.
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Router, Role::Scientist, Role::Admin];

    /// The bearer key of this role in a test state.
    pub const fn key(self) -> &'static str {
        match self {
            Role::Viewer => "viewer-key-1",
            Role::Router => "router-key-1",
            Role::Scientist => "scientist-key-1",
            Role::Admin => "admin-key-1",
        }
    }

    /// The role's name, as the keys file and the API spell it.
    pub const fn name(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Router => "router",
            Role::Scientist => "scientist",
            Role::Admin => "admin",
        }
    }
}

/// What to send.
#[derive(Clone, Debug)]
pub enum Body {
    None,
    Json(Value),
    /// A content type (none when empty) and the bytes.
    Raw(&'static str, Vec<u8>),
}

impl From<Value> for Body {
    fn from(v: Value) -> Self {
        Body::Json(v)
    }
}

impl Body {
    /// An NDJSON stream.
    pub fn ndjson(bytes: impl Into<Vec<u8>>) -> Self {
        Body::Raw("application/x-ndjson", bytes.into())
    }
}

/// An in-process app under test.
pub struct TestApp<S> {
    service: S,
}

impl TestApp<()> {
    /// Initializes `app` (an `actix_web::App`) as a service, the way `actix_web::test::init_service` does.
    pub async fn new<T, B>(
        app: App<T>,
    ) -> TestApp<impl Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>>
    where
        T: ServiceFactory<
                ServiceRequest,
                Config = (),
                Response = ServiceResponse<B>,
                Error = actix_web::Error,
                InitError = (),
            > + 'static,
        T::Future: 'static,
        B: MessageBody,
    {
        TestApp {
            service: test::init_service(app).await,
        }
    }
}

impl<S, B> TestApp<S>
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    /// Wraps a service already initialized.
    pub fn from_service(service: S) -> Self {
        TestApp { service }
    }

    /// The service, for requests the fluent client does not build.
    pub fn service(&self) -> &S {
        &self.service
    }

    /// A request with `method` to `path`, with no key and no body until given.
    pub fn request(&self, method: Method, path: &str) -> Call<'_, S> {
        Call {
            app: self,
            req: TestRequest::default().method(method).uri(path),
            body: Body::None,
        }
    }

    pub fn get(&self, path: &str) -> Call<'_, S> {
        self.request(Method::GET, path)
    }

    pub fn post(&self, path: &str) -> Call<'_, S> {
        self.request(Method::POST, path)
    }

    pub fn put(&self, path: &str) -> Call<'_, S> {
        self.request(Method::PUT, path)
    }

    pub fn patch(&self, path: &str) -> Call<'_, S> {
        self.request(Method::PATCH, path)
    }

    pub fn delete(&self, path: &str) -> Call<'_, S> {
        self.request(Method::DELETE, path)
    }
}

/// One request being built; [`Call::send`] sends it.
pub struct Call<'a, S> {
    app: &'a TestApp<S>,
    req: TestRequest,
    body: Body,
}

impl<S, B> Call<'_, S>
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    /// `Authorization: Bearer` the key of `role`.
    pub fn as_role(self, role: Role) -> Self {
        self.bearer(role.key())
    }

    /// `Authorization: Bearer KEY`.
    pub fn bearer(mut self, key: &str) -> Self {
        self.req = self
            .req
            .insert_header(("authorization", format!("Bearer {key}")));
        self
    }

    /// [`Call::bearer`] when `key` is some, no authorization otherwise.
    pub fn auth(self, key: Option<&str>) -> Self {
        match key {
            Some(key) => self.bearer(key),
            None => self,
        }
    }

    pub fn header(mut self, name: &'static str, value: &str) -> Self {
        self.req = self.req.insert_header((name, value.to_string()));
        self
    }

    /// A JSON body.
    pub fn json(self, body: Value) -> Self {
        self.body(Body::Json(body))
    }

    /// A body of content type `content_type` (none when empty).
    pub fn raw(self, content_type: &'static str, bytes: impl Into<Vec<u8>>) -> Self {
        self.body(Body::Raw(content_type, bytes.into()))
    }

    pub fn body(mut self, body: Body) -> Self {
        self.body = body;
        self
    }

    /// Sends the request and reads the answer whole; an error the service returns is rendered
    /// as the response it stands for.
    pub async fn send(self) -> Reply {
        let req = match self.body {
            Body::None => self.req,
            Body::Json(v) => self
                .req
                .insert_header(("content-type", "application/json"))
                .set_payload(serde_json::to_vec(&v).expect("serializable")),
            Body::Raw(ct, bytes) => {
                let req = if ct.is_empty() {
                    self.req
                } else {
                    self.req.insert_header(("content-type", ct))
                };
                req.set_payload(bytes)
            }
        };
        match self.app.service.call(req.to_request()).await {
            Ok(res) => {
                let status = res.status();
                let headers = res.headers().clone();
                let body = test::read_body(res).await.to_vec();
                Reply {
                    status,
                    headers,
                    body,
                }
            }
            Err(err) => {
                let res = err.error_response();
                let status = res.status();
                let headers = res.headers().clone();
                let body = actix_web::body::to_bytes(res.into_body())
                    .await
                    .map(|b| b.to_vec())
                    .unwrap_or_default();
                Reply {
                    status,
                    headers,
                    body,
                }
            }
        }
    }
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts `status` and returns `self`, so a chain can go on to the body.
    #[track_caller]
    pub fn expect(self, status: StatusCode) -> Self {
        assert_eq!(self.status, status, "{}", self.text());
        self
    }

    /// Asserts that this is a problem+json error with `status`, and returns its body.
    #[track_caller]
    pub fn problem(&self, status: u16) -> Value {
        assert_eq!(self.status.as_u16(), status, "{}", self.text());
        check_problem(self.header("content-type"), &self.json(), status)
    }

    /// The JSON pointers of a validation problem's errors.
    #[track_caller]
    pub fn pointers(&self) -> Vec<String> {
        self.problem(422)["errors"]
            .as_array()
            .expect("errors list")
            .iter()
            .map(|e| e["pointer"].as_str().expect("pointer").to_string())
            .collect()
    }
}

/// Asserts an RFC 9457 problem body with `status`: its content type, type URI, title and a clear
/// detail without a full stop. Returns the body.
#[track_caller]
pub(crate) fn check_problem(content_type: Option<&str>, body: &Value, status: u16) -> Value {
    assert_eq!(content_type, Some("application/problem+json"), "{body}");
    assert_eq!(body["status"], json!(status), "{body}");
    let kind = body["type"].as_str().expect("type is a string");
    assert!(kind.starts_with("https://liftlab.dev/problems/"), "{kind}");
    assert!(
        body["title"].as_str().is_some_and(|t| !t.is_empty()),
        "{body}"
    );
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(
        !detail.is_empty() && !detail.ends_with('.'),
        "a clear detail without a full stop: {body}"
    );
    body.clone()
}
