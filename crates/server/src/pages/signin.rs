//! Signing in to the pages of a keyed server: `GET /signin` (the form), `POST /signin` (a key for a session cookie), `POST /signout`.
//!
//! The session itself (cookie format, signing, checks) is [`crate::session`]; this module is
//! the HTML and the three handlers. A key that is wrong is never written back into the page.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use maud::{html, Markup, PreEscaped};
use serde::Deserialize;

use super::layout;
use crate::auth::{Capability, KeyEntry};
use crate::session::{self, safe_next};
use crate::state::AppState;

/// The forms' own styles, kept beside them so that the shared stylesheet (and the pages'
/// snapshots) stay as they are.
const FORM_CSS: &str = "form.signout { display: inline; margin: 0 0 0 12px; } \
form.signin { display: grid; gap: 8px; max-width: 420px; margin: 16px 0; } \
form.signin input[type=password] { font: inherit; padding: 6px 8px; border: 1px solid var(--ink); } \
form button { font: inherit; padding: 4px 12px; border: 1px solid var(--ink); background: #fff; cursor: pointer; } \
@media print { form.signout { display: none; } }";

/// What the sign-in page shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SignInView<'a> {
    /// The server runs without keys: there is nothing to sign in to.
    pub open: bool,
    /// Where to go after signing in (a path on this site).
    pub next: &'a str,
    /// Why the last attempt failed.
    pub error: Option<&'a str>,
    /// The name of the key this browser is already signed in with.
    pub signed_in_as: Option<&'a str>,
}

/// Renders the sign-in page.
pub fn render_signin(view: &SignInView<'_>) -> Markup {
    let body = html! {
        style { (PreEscaped(FORM_CSS)) }
        @if view.open {
            h1 { "No sign-in needed" }
            p { "This liftlab server runs without API keys (on a loopback address only), so its pages are open to everyone who can reach it." }
            p { a href="/" { "Go to the experiments" } }
        } @else if let Some(name) = view.signed_in_as {
            h1 { "Signed in" }
            p { "This browser is signed in with the key " strong { (name) } "." }
            p { a href=(view.next) { "Go to the experiments" } }
            (signout_form(None))
        } @else {
            h1 { "Sign in" }
            p { "This liftlab server needs an API key to show its pages. Paste a key with the viewer role (a scientist or admin key works too)." }
            @if let Some(error) = view.error {
                p.flag role="alert" { (error) }
            }
            form.signin method="post" action="/signin" {
                label for="key" { "API key" }
                input #key type="password" name="key" autocomplete="off" required autofocus;
                input type="hidden" name="next" value=(view.next);
                button type="submit" { "Sign in" }
            }
            p.meta {
                "The browser keeps a signed session cookie, never the key, for "
                (session::LIFETIME.as_secs() / 3600)
                " hours or until you sign out. The cookie is Secure: browsers keep it over HTTPS, and on localhost."
            }
            p.meta { "No key? An administrator makes one with " code { "liftlab keys new viewer YOUR-NAME" } " and adds the line it prints to the server's keys file." }
        }
    };
    layout("Sign in", body)
}

/// The sign-out button, with the name signed in when it is known.
pub(crate) fn signout_form(name: Option<&str>) -> Markup {
    html! {
        style { (PreEscaped(FORM_CSS)) }
        form.signout method="post" action="/signout" {
            @if let Some(name) = name { span.meta { "signed in as " (name) " " } }
            button type="submit" { "Sign out" }
        }
    }
}

/// `?next=PATH` on the sign-in page.
#[derive(Debug, Default, Deserialize)]
pub struct NextQuery {
    pub next: Option<String>,
}

/// The sign-in form's fields.
#[derive(Deserialize)]
pub struct SignInForm {
    pub key: String,
    #[serde(default)]
    pub next: Option<String>,
}

impl std::fmt::Debug for SignInForm {
    // The key is a credential: it never reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignInForm")
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

fn page(status: StatusCode, markup: Markup) -> HttpResponse {
    let mut res = HttpResponse::build(status);
    res.insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header((header::CACHE_CONTROL, "no-store"));
    if status == StatusCode::UNAUTHORIZED {
        res.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
    }
    res.body(markup.into_string())
}

/// The key this request's session cookie names, if it is valid.
fn signed_in<'a>(req: &HttpRequest, state: &'a AppState) -> Option<&'a KeyEntry> {
    let value = req
        .headers()
        .get_all(header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .find_map(session::from_cookie_header)?;
    state
        .sessions
        .verify(value, &state.keys, session::now_secs())
        .filter(|e| e.role().grants(Capability::ReadResults))
}

/// `GET /signin`: the form (or, on an open server, a note that none is needed).
pub async fn form(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<NextQuery>,
) -> HttpResponse {
    let next = safe_next(query.next.as_deref());
    let view = SignInView {
        open: state.keys.is_open(),
        next,
        error: None,
        signed_in_as: signed_in(&req, &state).map(KeyEntry::name),
    };
    page(StatusCode::OK, render_signin(&view))
}

/// `POST /signin`: a key with at least the viewer role becomes a session cookie and a 303 to
/// `next`; anything else shows the form again with the reason (401 or 403).
pub async fn sign_in(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<SignInForm>,
) -> HttpResponse {
    let form = form.into_inner();
    let next = safe_next(form.next.as_deref());
    let refuse = |status, error| {
        let view = SignInView {
            next,
            error: Some(error),
            ..SignInView::default()
        };
        page(status, render_signin(&view))
    };
    // Another site's page may not sign this browser in (login CSRF).
    let cross_site = req
        .headers()
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes() == b"cross-site");
    if cross_site {
        return refuse(
            StatusCode::FORBIDDEN,
            "Sign in from this server's own sign-in page",
        );
    }
    if state.keys.is_open() {
        return HttpResponse::SeeOther()
            .insert_header((header::LOCATION, next))
            .finish();
    }
    let Some(entry) = state.keys.identify(form.key.trim()) else {
        return refuse(StatusCode::UNAUTHORIZED, "That key is not recognised");
    };
    if !entry.role().grants(Capability::ReadResults) {
        tracing::info!(key = entry.name(), role = %entry.role(), "sign-in refused: the role may not read pages");
        return refuse(
            StatusCode::FORBIDDEN,
            "That key's role may not read results; sign in with a viewer, scientist or admin key",
        );
    }
    tracing::info!(key = entry.name(), "signed in to the pages");
    let value = state.sessions.issue(entry, session::now_secs());
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, next))
        .insert_header((header::SET_COOKIE, session::set_cookie(&value)))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

/// `POST /signout`: ends the session (a copy of its cookie opens nothing either), clears the
/// cookie and goes back to the sign-in page.
pub async fn sign_out(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let cookies = req
        .headers()
        .get_all(header::COOKIE)
        .filter_map(|v| v.to_str().ok());
    for value in cookies.filter_map(session::from_cookie_header) {
        state.sessions.end(value, session::now_secs());
    }
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/signin"))
        .insert_header((header::SET_COOKIE, session::clear_cookie()))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}
