//! Access control of the real binary, as an operator sets it up: keys made with `liftlab keys new`, a keys file given to `serve --keys`, each role let through where it may and refused where it may not, and no key ever in the log.
//!
//! The whole route × caller matrix, and that a refusal changes nothing, is the server's and is
//! tested in process (`crates/server/tests/api/access.rs`); this test checks what only the
//! process does: reading the keys file and keeping keys out of its log.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::liftlab;
use liftlab_testkit::process::keys_file;
use liftlab_testkit::spec;

/// A call and the status it must get.
struct Check {
    who: &'static str,
    method: &'static str,
    path: &'static str,
    body: Option<Value>,
    status: u16,
}

#[test]
fn the_keys_file_admits_each_role_where_it_may_and_no_key_reaches_the_log() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut keys = BTreeMap::new();
    let mut lines = Vec::new();
    for role in ["viewer", "router", "scientist", "admin"] {
        let (key, line) = liftlab().new_key(role, &format!("{role}-holder"));
        keys.insert(role, key);
        lines.push(line);
    }
    // A well-formed key that is in no keys file.
    let (wrong, _) = liftlab().new_key("admin", "never-installed");
    keys.insert("wrong", wrong);
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
    let checks = [
        Check {
            who: "none",
            method: "GET",
            path: "/healthz",
            body: None,
            status: 200,
        },
        Check {
            who: "none",
            method: "GET",
            path: "/v1/experiments",
            body: None,
            status: 401,
        },
        Check {
            who: "wrong",
            method: "GET",
            path: "/v1/experiments",
            body: None,
            status: 401,
        },
        Check {
            who: "scientist",
            method: "POST",
            path: "/v1/experiments",
            body: Some(spec::fixed("acl")),
            status: 201,
        },
        Check {
            who: "scientist",
            method: "POST",
            path: "/v1/experiments/acl/start",
            body: None,
            status: 200,
        },
        Check {
            who: "viewer",
            method: "GET",
            path: "/v1/experiments/acl",
            body: None,
            status: 200,
        },
        Check {
            who: "viewer",
            method: "POST",
            path: "/v1/experiments/acl/pause",
            body: None,
            status: 403,
        },
        Check {
            who: "router",
            method: "POST",
            path: "/v1/experiments/acl/assign",
            body: Some(json!({"unit_id": "u1"})),
            status: 200,
        },
        Check {
            who: "router",
            method: "GET",
            path: "/v1/experiments/acl/results",
            body: None,
            status: 403,
        },
        Check {
            who: "viewer",
            method: "POST",
            path: "/v1/experiments/acl/assign",
            body: Some(json!({"unit_id": "u2"})),
            status: 403,
        },
        Check {
            who: "admin",
            method: "GET",
            path: "/v1/audit/verify",
            body: None,
            status: 200,
        },
    ];
    for c in &checks {
        let key = keys.get(c.who).map(String::as_str);
        let r = server.call(c.method, c.path, key, c.body.as_ref());
        assert_eq!(
            r.status, c.status,
            "{} {} as {}: {}",
            c.method, c.path, c.who, r.body
        );
        if r.status == 401 {
            assert_eq!(r.header("www-authenticate"), Some("Bearer"));
        }
    }
    let log = server.stop();
    assert!(log.contains("\"status\":403"), "requests are logged at all");
    for (who, key) in &keys {
        assert!(
            !log.contains(key.as_str()),
            "the {who} key appears in the server log"
        );
    }
    assert!(
        !log.to_ascii_lowercase().contains("bearer "),
        "an Authorization header reached the log"
    );
}
