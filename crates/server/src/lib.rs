//! liftlab-server: the actix-web JSON API, HTML result pages, auth and metrics.
//!
//! [`AppState`] is built once by the binary (or a test) and [`app`] turns it into the whole
//! actix `App`: every route of [`ROUTES`], the result pages of [`results::configure`], the
//! extractor error handlers, the observability middleware and the problem+json fallbacks. This is
//! the only crate that knows HTTP.

pub mod auth;
mod dto;
pub mod error;
mod extract;
pub mod metrics;
pub mod observe;
pub mod pages;
mod process;
pub mod ratelimit;
pub mod results;
mod routes;
mod serve;
pub mod session;
mod state;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::{middleware, web, App};

pub use auth::{
    Admin, KeyEntry, KeyRing, PageViewer, Principal, Reader, Role, Router, Scientist, Viewer,
};
pub use error::{ApiError, FieldError, Problem, ProblemCode};
pub use extract::JsonBody;
pub use liftlab_store::{CachedStore, Live};
pub use metrics::Metrics;
pub use ratelimit::{Rate, RateLimit, RateLimiter};
pub use serve::{bind, serve, ServeOptions};
pub use session::SessionKey;
pub use state::AppState;

/// One mebibyte, the default JSON body limit.
pub const MIB: usize = 1024 * 1024;

/// Settings the server is started with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The largest JSON body accepted, in bytes.
    pub json_limit: usize,
    /// The largest NDJSON outcome stream accepted, in bytes.
    pub ndjson_limit: usize,
    /// Per-client request rate limit (see [`ratelimit`]); `None` serves without one.
    pub rate_limit: Option<RateLimit>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            json_limit: MIB,
            ndjson_limit: 64 * MIB,
            rate_limit: None,
        }
    }
}

/// One route of the JSON API: the method, the path pattern, and how to attach its handler.
pub struct RouteDef {
    pub method: Method,
    pub path: &'static str,
    /// Attaches the handler to a route already restricted to `method`.
    pub handler: fn(actix_web::Route) -> actix_web::Route,
}

/// Every route `app()` registers itself, in the order of DESIGN.md. The OpenAPI test checks that
/// this table, plus [`RESULTS_ROUTES`], is exactly the set of operations in `api-spec/openapi.yaml`.
pub const ROUTES: &[RouteDef] = &[
    RouteDef {
        method: Method::POST,
        path: "/v1/experiments",
        handler: |r| r.to(routes::experiments::create),
    },
    RouteDef {
        method: Method::GET,
        path: "/v1/experiments",
        handler: |r| r.to(routes::experiments::list),
    },
    RouteDef {
        method: Method::GET,
        path: "/v1/experiments/{key}",
        handler: |r| r.to(routes::experiments::get),
    },
    RouteDef {
        method: Method::PUT,
        path: "/v1/experiments/{key}",
        handler: |r| r.to(routes::experiments::update),
    },
    RouteDef {
        method: Method::GET,
        path: "/v1/experiments/{key}/versions",
        handler: |r| r.to(routes::experiments::versions),
    },
    RouteDef {
        method: Method::POST,
        path: "/v1/experiments/{key}/start",
        handler: |r| r.to(routes::experiments::start),
    },
    RouteDef {
        method: Method::POST,
        path: "/v1/experiments/{key}/pause",
        handler: |r| r.to(routes::experiments::pause),
    },
    RouteDef {
        method: Method::POST,
        path: "/v1/experiments/{key}/stop",
        handler: |r| r.to(routes::experiments::stop),
    },
    RouteDef {
        method: Method::POST,
        path: "/v1/experiments/{key}/rebaseline",
        handler: |r| r.to(routes::experiments::rebaseline),
    },
    RouteDef {
        method: Method::POST,
        path: "/v1/experiments/{key}/assign",
        handler: |r| r.to(routes::assign::assign),
    },
    RouteDef {
        method: Method::POST,
        path: "/v1/outcomes",
        handler: |r| r.to(routes::outcomes::record),
    },
    RouteDef {
        method: Method::GET,
        path: "/v1/experiments/{key}/audit",
        handler: |r| r.to(routes::audit::experiment_log),
    },
    RouteDef {
        method: Method::GET,
        path: "/v1/audit/verify",
        handler: |r| r.to(routes::audit::verify),
    },
    RouteDef {
        method: Method::GET,
        path: "/healthz",
        handler: |r| r.to(routes::ops::healthz),
    },
    RouteDef {
        method: Method::GET,
        path: "/metrics",
        handler: |r| r.to(routes::ops::metrics),
    },
];

/// The paths of [`ROUTES`] that `app()` registers before the others: the ones routers call
/// for every task.
const HOT_PATHS: &[&str] = &["/v1/experiments/{key}/assign", "/v1/outcomes"];

/// The routes [`results::configure`] registers (results JSON/CSV, the HTML pages and signing
/// in to them).
pub const RESULTS_ROUTES: &[(Method, &str)] = &[
    (Method::GET, "/v1/experiments/{key}/results"),
    (Method::GET, "/"),
    (Method::GET, "/experiments/{key}"),
    (Method::GET, "/signin"),
    (Method::POST, "/signin"),
    (Method::POST, "/signout"),
];

/// Builds the whole application over `state`: routes, error handlers, middleware.
pub fn app(
    state: AppState,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let json_limit = state.config.json_limit;
    let mut app = App::new()
        .app_data(web::Data::new(state))
        .app_data(error::json_config(json_limit))
        .app_data(error::path_config())
        .app_data(error::query_config())
        .app_data(error::form_config())
        .app_data(error::payload_config(json_limit))
        .wrap(middleware::from_fn(ratelimit::limit))
        .wrap(middleware::from_fn(observe::observe));
    // The router tries resources in order, running a regex for each one with a `{key}`, so
    // the routers' hot paths go first.
    let mut paths: Vec<&'static str> = HOT_PATHS.to_vec();
    for def in ROUTES {
        if !paths.contains(&def.path) {
            paths.push(def.path);
        }
    }
    for path in paths {
        let mut resource = web::resource(path);
        for def in ROUTES.iter().filter(|d| d.path == path) {
            resource = resource.route((def.handler)(web::route().method(def.method.clone())));
        }
        app = app.service(resource);
    }
    app.configure(results::configure)
        .default_service(web::to(routes::ops::not_found))
}
