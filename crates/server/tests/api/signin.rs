//! Signing in to the pages of a keyed server: the form, the session cookie, what it opens (pages) and what it does not (the API), sign-out and revocation.

use std::sync::Arc;

use actix_web::dev::Service;
use actix_web::http::{Method, StatusCode};
use actix_web::test::{self, TestRequest};
use liftlab_server::{app, AppState, Config, KeyEntry, KeyRing, RESULTS_ROUTES, ROUTES};
use liftlab_store::{MemStore, Store};
use serde_json::json;

use crate::common::*;

/// A browser's request: it accepts HTML, and sends `cookie` when given.
fn browser(method: Method, path: &str, cookie: Option<&str>) -> TestRequest {
    let mut req = TestRequest::default()
        .method(method)
        .uri(path)
        .insert_header(("accept", "text/html,application/xhtml+xml,*/*;q=0.8"));
    if let Some(cookie) = cookie {
        req = req.insert_header(("cookie", format!("theme=dark; {cookie}")));
    }
    req
}

/// The pages and signing in to them: everything else is the API.
fn is_page(path: &str) -> bool {
    ["/", "/experiments/{key}", "/signin", "/signout"].contains(&path)
}

/// The sign-in form posted with `key` (and `next`).
fn sign_in_form(key: &str, next: Option<&str>) -> TestRequest {
    let mut body = format!("key={key}");
    if let Some(next) = next {
        body.push_str(&format!("&next={}", next.replace('/', "%2F")));
    }
    browser(Method::POST, "/signin", None)
        .insert_header(("content-type", "application/x-www-form-urlencoded"))
        .set_payload(body)
}

/// Status, the headers asked for, and the body as text.
async fn call<S, B>(
    app: &TestApp<S>,
    req: TestRequest,
) -> (StatusCode, actix_web::http::header::HeaderMap, String)
where
    S: Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<B>,
        Error = actix_web::Error,
    >,
    B: actix_web::body::MessageBody,
{
    let res = test::call_service(app.service(), req.to_request()).await;
    let status = res.status();
    let headers = res.headers().clone();
    let body = String::from_utf8(test::read_body(res).await.to_vec()).expect("UTF-8");
    (status, headers, body)
}

fn header<'a>(headers: &'a actix_web::http::header::HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// The `name=value` part of a `Set-Cookie` header.
fn cookie_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().expect("a pair").to_string()
}

#[actix_web::test]
async fn a_viewer_signs_in_reads_the_pages_and_signs_out() {
    let state = keyed_state(Config::default());
    let app = TestApp::new(app(state)).await;
    create_running(&app, spec("acl")).await;

    // A browser with no credentials is sent to sign in, and comes back where it was going.
    let (status, headers, _) =
        call(&app, browser(Method::GET, "/experiments/acl?epoch=0", None)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        header(&headers, "location"),
        "/signin?next=/experiments/acl%3Fepoch%3D0"
    );
    let (status, headers, _) = call(&app, browser(Method::GET, "/", None)).await;
    assert_eq!(
        (status, header(&headers, "location")),
        (StatusCode::SEE_OTHER, "/signin")
    );
    // An API client still gets a 401 problem.
    let r = app.get("/experiments/acl").send().await;
    let problem = r.problem(401);
    assert!(
        problem["detail"]
            .as_str()
            .expect("detail")
            .contains("/signin"),
        "{problem}"
    );

    let (status, _, page) = call(
        &app,
        browser(Method::GET, "/signin?next=/experiments/acl", None),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("name=\"key\"") && page.contains("type=\"password\""),
        "{page}"
    );
    assert!(page.contains("value=\"/experiments/acl\""), "{page}");

    // A wrong key shows the form again with the reason, never the key.
    let (status, headers, page) = call(
        &app,
        sign_in_form("wrong-key-123", Some("/experiments/acl")),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(header(&headers, "set-cookie").is_empty());
    assert!(page.contains("That key is not recognised"), "{page}");
    assert!(!page.contains("wrong-key-123"), "the key is echoed: {page}");
    // A router key may not read results.
    let (status, _, page) = call(&app, sign_in_form(ROUTER, None)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(!page.contains(ROUTER), "{page}");

    let (status, headers, _) = call(&app, sign_in_form(VIEWER, Some("/experiments/acl"))).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(header(&headers, "location"), "/experiments/acl");
    let set = header(&headers, "set-cookie");
    for attribute in [
        "HttpOnly",
        "Secure",
        "SameSite=Strict",
        "Path=/",
        "Max-Age=43200",
    ] {
        assert!(set.contains(attribute), "{attribute} in {set}");
    }
    assert!(!set.contains(VIEWER), "the cookie holds no key: {set}");
    let cookie = cookie_pair(set);

    for path in ["/", "/experiments/acl"] {
        let (status, _, page) = call(&app, browser(Method::GET, path, Some(&cookie))).await;
        assert_eq!(status, StatusCode::OK, "{path}: {page}");
        assert!(
            page.contains("signed in as viewer") && page.contains("action=\"/signout\""),
            "{page}"
        );
    }
    let (_, _, page) = call(&app, browser(Method::GET, "/signin", Some(&cookie))).await;
    assert!(page.contains("Signed in"), "{page}");

    // The cookie opens the pages only: every API route takes Bearer keys alone.
    let mut checked = 0;
    let api = ROUTES
        .iter()
        .map(|r| (r.method.clone(), r.path))
        .chain(RESULTS_ROUTES.iter().cloned())
        .filter(|(_, path)| *path != "/healthz" && !is_page(path));
    for (method, pattern) in api {
        let path = pattern.replace("{key}", "acl");
        let req = browser(method.clone(), &path, Some(&cookie))
            .insert_header(("accept", "application/json"));
        let (status, _, body) = call(&app, req).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}: {body}");
        checked += 1;
    }

    assert!(checked >= 15, "{checked} API routes");

    let (status, headers, _) = call(&app, browser(Method::POST, "/signout", Some(&cookie))).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(header(&headers, "location"), "/signin");
    let cleared = header(&headers, "set-cookie");
    assert!(
        cleared.starts_with("liftlab_session=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    let (status, _, _) = call(&app, browser(Method::GET, "/", Some(&cookie_pair(cleared)))).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    // A copy of the signed-out cookie opens nothing either.
    let (status, _, _) = call(&app, browser(Method::GET, "/", Some(&cookie))).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
}

#[actix_web::test]
async fn a_bearer_key_still_opens_the_pages() {
    let app = TestApp::new(app(keyed_state(Config::default()))).await;
    let r = app.get("/").as_role(Role::Viewer).send().await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = app.get("/").as_role(Role::Router).send().await;
    r.problem(403);
}

#[actix_web::test]
async fn tampered_foreign_and_revoked_sessions_open_nothing() {
    let state = keyed_state(Config::default());
    let app1 = TestApp::new(app(state.clone())).await;
    let (_, headers, _) = call(&app1, sign_in_form(VIEWER, None)).await;
    let cookie = cookie_pair(header(&headers, "set-cookie"));
    assert!(cookie.starts_with("liftlab_session=1."), "{cookie}");

    let mut tampered = cookie.clone();
    let last = tampered.pop().expect("a character");
    tampered.push(if last == '0' { '1' } else { '0' });
    let (status, headers, _) = call(&app1, browser(Method::GET, "/", Some(&tampered))).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(
        header(&headers, "set-cookie").contains("Max-Age=0"),
        "a stale cookie is cleared"
    );

    // The same keys in another process (another signing secret): the cookie is not honoured.
    let other = keyed_state(Config::default());
    let app2 = TestApp::new(app(other)).await;
    let (status, _, _) = call(&app2, browser(Method::GET, "/", Some(&cookie))).await;
    assert_eq!(status, StatusCode::SEE_OTHER);

    // The key left the keys file: same secret, but the cookie names a key no longer loaded.
    let mut revoked = state.clone();
    revoked.keys = Arc::new(KeyRing::from_entries(vec![KeyEntry::for_key(
        liftlab_server::Role::Admin,
        ADMIN,
        "admin",
    )]));
    let app3 = TestApp::new(app(revoked)).await;
    let (status, _, _) = call(&app3, browser(Method::GET, "/", Some(&cookie))).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    // ...and one whose role no longer reads results is refused.
    let mut demoted = state.clone();
    demoted.keys = Arc::new(KeyRing::from_entries(vec![KeyEntry::for_key(
        liftlab_server::Role::Router,
        VIEWER,
        "viewer",
    )]));
    let app4 = TestApp::new(app(demoted)).await;
    let (status, _, _) = call(&app4, browser(Method::GET, "/", Some(&cookie))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // The original server still honours it.
    let (status, _, _) = call(&app1, browser(Method::GET, "/", Some(&cookie))).await;
    assert_eq!(status, StatusCode::OK);
}

#[actix_web::test]
async fn sign_in_refuses_bad_forms_foreign_pages_and_open_redirects() {
    let app = TestApp::new(app(keyed_state(Config::default()))).await;
    let r = app
        .post("/signin")
        .json(json!({"key": VIEWER}))
        .send()
        .await;
    r.problem(415);
    let r = app
        .post("/signin")
        .raw("application/x-www-form-urlencoded", b"next=%2F".to_vec())
        .send()
        .await;
    r.problem(400);
    let (status, headers, _) = call(
        &app,
        sign_in_form(VIEWER, None).insert_header(("sec-fetch-site", "cross-site")),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(header(&headers, "set-cookie").is_empty());
    for next in [
        "//evil.example/x",
        "https://evil.example/",
        "/\\evil.example",
    ] {
        let (status, headers, _) = call(&app, sign_in_form(VIEWER, Some(next))).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_eq!(header(&headers, "location"), "/", "{next}");
    }
}

#[actix_web::test]
async fn an_open_server_needs_no_sign_in() {
    let store: Arc<dyn Store> = Arc::new(MemStore::new());
    let app = TestApp::new(app(AppState::new(
        store,
        KeyRing::open(),
        Config::default(),
    )))
    .await;
    let (status, _, page) = call(&app, browser(Method::GET, "/signin", None)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("No sign-in needed") && !page.contains("name=\"key\""),
        "{page}"
    );
    let (status, _, page) = call(&app, browser(Method::GET, "/", None)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!page.contains("/signout"), "{page}");
}
