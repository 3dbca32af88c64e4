//! Access control of the real binary: every route × every caller (no key, wrong key, viewer, router, scientist, admin) gets the 401, 403 or 2xx that DESIGN.md promises, refusals change nothing, and no key ever reaches the log.
//!
//! Keys are made with `liftlab keys new`, as an operator would. Each cell of the table gets its
//! own experiment, prepared by the admin key in the state its route needs, so an allowed call
//! succeeds on its own merits and a refused one can be checked to have left no trace (the
//! audit chain's length is unchanged).

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::liftlab;
use liftlab_testkit::process::{keys_file, Server};
use liftlab_testkit::spec;

/// Who calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Caller {
    NoKey,
    WrongKey,
    Viewer,
    Router,
    Scientist,
    Admin,
}

const CALLERS: [Caller; 6] = [
    Caller::NoKey,
    Caller::WrongKey,
    Caller::Viewer,
    Caller::Router,
    Caller::Scientist,
    Caller::Admin,
];

/// What a route needs to exist before it is called.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Setup {
    /// Nothing: the route needs no experiment, or creates its own.
    None,
    /// A draft experiment.
    Draft,
    /// A running experiment.
    Running,
    /// A running experiment with the unit `u1` assigned.
    Assigned,
}

/// Which callers DESIGN.md lets through.
#[derive(Clone, Copy, Debug)]
enum Policy {
    /// `/healthz`: everyone, with or without a key.
    Open,
    /// Read experiments: viewer, router, scientist, admin.
    ReadExperiments,
    /// Results, pages, audit and metrics: viewer, scientist, admin.
    ReadResults,
    /// Assign and record outcomes: router, scientist, admin.
    Route,
    /// Define and control experiments: scientist, admin.
    Define,
}

impl Policy {
    fn allows(self, caller: Caller) -> bool {
        use Caller as C;
        match self {
            Policy::Open => true,
            Policy::ReadExperiments => {
                matches!(caller, C::Viewer | C::Router | C::Scientist | C::Admin)
            }
            Policy::ReadResults => matches!(caller, C::Viewer | C::Scientist | C::Admin),
            Policy::Route => matches!(caller, C::Router | C::Scientist | C::Admin),
            Policy::Define => matches!(caller, C::Scientist | C::Admin),
        }
    }
}

/// One route: method, path (`{k}` is the cell's experiment), body, setup and policy.
struct Route {
    method: &'static str,
    path: &'static str,
    body: fn(&str) -> Option<Value>,
    setup: Setup,
    policy: Policy,
}

fn no_body(_: &str) -> Option<Value> {
    None
}

/// Every route of DESIGN.md's HTTP API.
fn routes() -> Vec<Route> {
    use Policy as P;
    use Setup as S;
    let r = |method, path, body, setup, policy| Route {
        method,
        path,
        body,
        setup,
        policy,
    };
    vec![
        r(
            "POST",
            "/v1/experiments",
            |k| Some(spec::fixed(k)),
            S::None,
            P::Define,
        ),
        r(
            "GET",
            "/v1/experiments",
            no_body,
            S::None,
            P::ReadExperiments,
        ),
        r(
            "GET",
            "/v1/experiments/{k}",
            no_body,
            S::Draft,
            P::ReadExperiments,
        ),
        r(
            "PUT",
            "/v1/experiments/{k}",
            |k| {
                let mut s = spec::fixed(k);
                s["hypothesis"] = json!("changed");
                Some(s)
            },
            S::Draft,
            P::Define,
        ),
        r(
            "GET",
            "/v1/experiments/{k}/versions",
            no_body,
            S::Draft,
            P::ReadExperiments,
        ),
        r(
            "POST",
            "/v1/experiments/{k}/start",
            no_body,
            S::Draft,
            P::Define,
        ),
        r(
            "POST",
            "/v1/experiments/{k}/pause",
            no_body,
            S::Running,
            P::Define,
        ),
        r(
            "POST",
            "/v1/experiments/{k}/stop",
            no_body,
            S::Running,
            P::Define,
        ),
        r(
            "POST",
            "/v1/experiments/{k}/rebaseline",
            |_| Some(json!({"reason": "access test"})),
            S::Running,
            P::Define,
        ),
        r(
            "POST",
            "/v1/experiments/{k}/assign",
            |_| Some(json!({"unit_id": "u2"})),
            S::Running,
            P::Route,
        ),
        r(
            "POST",
            "/v1/outcomes",
            |k| {
                Some(
                    json!({"event_id": format!("{k}-e1"), "experiment": k, "task_id": "u1",
                            "metrics": {"minutes": 3.5}}),
                )
            },
            S::Assigned,
            P::Route,
        ),
        r(
            "GET",
            "/v1/experiments/{k}/results",
            no_body,
            S::Assigned,
            P::ReadResults,
        ),
        r(
            "GET",
            "/v1/experiments/{k}/results?format=csv",
            no_body,
            S::Assigned,
            P::ReadResults,
        ),
        r(
            "GET",
            "/v1/experiments/{k}/audit",
            no_body,
            S::Running,
            P::ReadResults,
        ),
        r("GET", "/v1/audit/verify", no_body, S::None, P::ReadResults),
        r("GET", "/", no_body, S::Running, P::ReadResults),
        r(
            "GET",
            "/experiments/{k}",
            no_body,
            S::Assigned,
            P::ReadResults,
        ),
        r("GET", "/metrics", no_body, S::None, P::ReadResults),
        r("GET", "/healthz", no_body, S::None, P::Open),
    ]
}

/// The audit chain's length, read with the admin key.
fn audit_records(server: &Server, admin: &str) -> u64 {
    let r = server.call("GET", "/v1/audit/verify", Some(admin), None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["ok"], json!(true), "{}", r.body);
    r.json()["records"].as_u64().expect("a count")
}

fn prepare(server: &Server, admin: &str, key: &str, setup: Setup) {
    if setup == Setup::None {
        return;
    }
    let r = server.call(
        "POST",
        "/v1/experiments",
        Some(admin),
        Some(&spec::fixed(key)),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    if setup == Setup::Draft {
        return;
    }
    let r = server.call(
        "POST",
        &format!("/v1/experiments/{key}/start"),
        Some(admin),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    if setup == Setup::Assigned {
        let r = server.call(
            "POST",
            &format!("/v1/experiments/{key}/assign"),
            Some(admin),
            Some(&json!({"unit_id": "u1"})),
        );
        assert_eq!(r.status, 200, "{}", r.body);
    }
}

#[test]
fn every_route_admits_exactly_the_roles_design_names() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut keys = BTreeMap::new();
    let mut lines = Vec::new();
    for (caller, role) in [
        (Caller::Viewer, "viewer"),
        (Caller::Router, "router"),
        (Caller::Scientist, "scientist"),
        (Caller::Admin, "admin"),
    ] {
        let (key, line) = liftlab().new_key(role, &format!("{role}-holder"));
        keys.insert(caller, key);
        lines.push(line);
    }
    // A well-formed key that is in no keys file.
    let (wrong, _) = liftlab().new_key("admin", "never-installed");
    keys.insert(Caller::WrongKey, wrong);
    let file = keys_file(dir.path(), &lines);
    let server = liftlab().serve_with_env(
        &dir.path().join("data"),
        &[
            "--keys",
            file.to_str().expect("a text path"),
            "--log-format",
            "json",
        ],
        &[("RUST_LOG", "trace")],
    );
    let admin = keys[&Caller::Admin].clone();
    let mut failures = Vec::new();
    for (row, route) in routes().iter().enumerate() {
        for caller in CALLERS {
            let key = format!("acc{row}-{}", format!("{caller:?}").to_lowercase());
            prepare(&server, &admin, &key, route.setup);
            let path = route.path.replace("{k}", &key);
            let before = audit_records(&server, &admin);
            let r = server.call(
                route.method,
                &path,
                keys.get(&caller).map(String::as_str),
                (route.body)(&key).as_ref(),
            );
            let allowed = route.policy.allows(caller);
            let expected = match (allowed, caller) {
                (true, _) => "2xx",
                (false, Caller::NoKey | Caller::WrongKey) => "401",
                (false, _) => "403",
            };
            let got_ok = match expected {
                "2xx" => (200..300).contains(&r.status),
                "401" => r.status == 401,
                _ => r.status == 403,
            };
            if !got_ok {
                failures.push(format!(
                    "{} {} as {caller:?}: expected {expected}, got {} {}",
                    route.method, route.path, r.status, r.body
                ));
                continue;
            }
            if !allowed {
                let p = r.problem(r.status);
                assert!(
                    p["type"]
                        .as_str()
                        .is_some_and(|t| t.ends_with(if r.status == 401 {
                            "/unauthorized"
                        } else {
                            "/forbidden"
                        })),
                    "{p}"
                );
                if r.status == 401 {
                    assert_eq!(
                        r.header("www-authenticate"),
                        Some("Bearer"),
                        "{} {}",
                        route.method,
                        route.path
                    );
                }
                assert_eq!(
                    audit_records(&server, &admin),
                    before,
                    "{} {} as {caller:?} was refused but left a trace",
                    route.method,
                    route.path
                );
            }
        }
    }
    assert!(
        failures.is_empty(),
        "access matrix violations:\n{}",
        failures.join("\n")
    );
    let log = server.stop();
    assert!(log.contains("\"status\":403"), "requests are logged at all");
    for (caller, key) in &keys {
        assert!(
            !log.contains(key.as_str()),
            "the {caller:?} key appears in the server log"
        );
    }
    assert!(
        !log.to_ascii_lowercase().contains("bearer "),
        "an Authorization header reached the log"
    );
}
