//! `api-spec/openapi.yaml` against the app: the same operations, every problem type documented,
//! and every request example accepted when replayed in order.

use std::collections::BTreeSet;

use actix_web::http::{Method, StatusCode};

use liftlab_server::{app, Config, ProblemCode, RESULTS_ROUTES, ROUTES};
use serde_json::Value;

use crate::common::*;

const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

fn spec_document() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../api-spec/openapi.yaml");
    let text = std::fs::read_to_string(path).expect("the OpenAPI document is readable");
    serde_norway::from_str(&text).expect("the OpenAPI document is valid YAML")
}

fn spec_operations(doc: &Value) -> BTreeSet<(String, String)> {
    let paths = doc["paths"].as_object().expect("paths");
    let mut ops = BTreeSet::new();
    for (path, item) in paths {
        for method in METHODS {
            if item.get(method).is_some() {
                ops.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    ops
}

fn app_operations() -> BTreeSet<(String, String)> {
    ROUTES
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_string()))
        .chain(
            RESULTS_ROUTES
                .iter()
                .map(|(m, p)| (m.to_string(), p.to_string())),
        )
        .collect()
}

#[test]
fn the_spec_documents_exactly_the_registered_routes() {
    let doc = spec_document();
    assert_eq!(doc["openapi"].as_str().map(|v| &v[..3]), Some("3.1"));
    assert_eq!(spec_operations(&doc), app_operations());
}

#[test]
fn every_problem_type_and_the_security_scheme_are_documented() {
    let doc = spec_document();
    let types: Vec<&str> = doc["components"]["schemas"]["Problem"]["properties"]["type"]["enum"]
        .as_array()
        .expect("problem type enum")
        .iter()
        .map(|v| v.as_str().expect("string"))
        .collect();
    for code in ProblemCode::ALL {
        assert!(types.contains(&code.type_uri().as_str()), "{code:?}");
    }
    assert_eq!(types.len(), ProblemCode::ALL.len());
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
}

/// A route is registered when an unauthenticated call is refused by auth (401) rather than by
/// routing (404 or 405); `/healthz` is open and answers 200.
#[actix_web::test]
async fn every_documented_operation_is_routed_and_other_methods_are_405() {
    let doc = spec_document();
    let app = TestApp::new(app(keyed_state(Config::default()))).await;
    let ops = spec_operations(&doc);
    for (method, path) in &ops {
        let concrete = path.replace("{key}", "probe");
        let method = Method::from_bytes(method.as_bytes()).expect("method");
        let r = app.request(method.clone(), &concrete).send().await;
        // Open: the health check, the sign-in form, sign-out (303), and posting the sign-in
        // form, which without a form body is a 415.
        let expected = match (method.as_str(), path.as_str()) {
            ("GET", "/healthz") | ("GET", "/signin") => 200,
            ("POST", "/signout") => 303,
            ("POST", "/signin") => 415,
            _ => 401,
        };
        assert_eq!(r.status.as_u16(), expected, "{method} {path}: {}", r.text());
    }
    let paths: BTreeSet<&String> = ops.iter().map(|(_, p)| p).collect();
    for path in paths {
        let concrete = path.replace("{key}", "probe");
        for method in METHODS {
            let upper = method.to_uppercase();
            if ops.contains(&(upper.clone(), path.clone())) {
                continue;
            }
            let method = Method::from_bytes(upper.as_bytes()).expect("method");
            let r = app
                .request(method.clone(), &concrete)
                .as_role(Role::Admin)
                .send()
                .await;
            r.problem(405);
        }
    }
}

/// Resolves a `$ref` to `#/components/...` (other values are returned as they are).
fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(reference) if reference.starts_with("#/") => {
            let pointer = &reference[1..];
            doc.pointer(pointer)
                .unwrap_or_else(|| panic!("dangling $ref {reference}"))
        }
        _ => value,
    }
}

/// The request examples of one operation, per media type.
fn examples(doc: &Value, method: &str, path: &str) -> Vec<(String, Value)> {
    let op = &doc["paths"][path][method];
    let body = resolve(doc, &op["requestBody"]);
    let mut out = Vec::new();
    if let Some(content) = body["content"].as_object() {
        for (media, entry) in content {
            if let Some(examples) = entry["examples"].as_object() {
                for example in examples.values() {
                    let example = resolve(doc, example);
                    out.push((media.clone(), example["value"].clone()));
                }
            }
        }
    }
    out
}

#[actix_web::test]
async fn the_request_examples_are_accepted_in_order() {
    let doc = spec_document();
    let state = keyed_state(Config::default());
    let app = TestApp::new(app(state)).await;
    let key = "support-triage-ai-assist";
    let steps: Vec<(&str, &str, String)> = vec![
        ("post", "/v1/experiments", "/v1/experiments".to_string()),
        (
            "put",
            "/v1/experiments/{key}",
            format!("/v1/experiments/{key}"),
        ),
        (
            "post",
            "/v1/experiments/{key}/start",
            format!("/v1/experiments/{key}/start"),
        ),
        (
            "post",
            "/v1/experiments/{key}/assign",
            format!("/v1/experiments/{key}/assign"),
        ),
        ("post", "/v1/outcomes", "/v1/outcomes".to_string()),
        (
            "post",
            "/v1/experiments/{key}/rebaseline",
            format!("/v1/experiments/{key}/rebaseline"),
        ),
        (
            "post",
            "/v1/experiments/{key}/pause",
            format!("/v1/experiments/{key}/pause"),
        ),
        (
            "post",
            "/v1/experiments/{key}/stop",
            format!("/v1/experiments/{key}/stop"),
        ),
    ];
    let mut replayed = 0;
    for (method, template, path) in steps {
        let examples = examples(&doc, method, template);
        assert!(
            !examples.is_empty(),
            "{method} {template} has request examples"
        );
        for (i, (media, value)) in examples.into_iter().enumerate() {
            // Lifecycle examples share one body; apply each transition once.
            if i > 0 && template.ends_with("/pause") {
                continue;
            }
            let body = match (media.as_str(), &value) {
                ("application/json", v) => Body::Json(v.clone()),
                (m, Value::String(text)) => Body::Raw(
                    if m == "application/x-ndjson" {
                        "application/x-ndjson"
                    } else {
                        "text/plain"
                    },
                    text.clone().into_bytes(),
                ),
                (m, other) => panic!("{m} example is not text: {other}"),
            };
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let r = app
                .request(m, &path)
                .as_role(Role::Admin)
                .body(body)
                .send()
                .await;
            assert!(
                r.status.is_success(),
                "{method} {template} ({media}): {}",
                r.text()
            );
            if template.ends_with("/assign") {
                assert_eq!(r.json()["in_experiment"], Value::Bool(true), "{}", r.text());
            }
            if template == "/v1/outcomes" {
                let accepted = r.json()["accepted"].as_u64().unwrap_or(0)
                    + r.json()["duplicates"].as_u64().unwrap_or(0);
                assert!(accepted > 0, "{}", r.text());
                assert_eq!(r.json()["rejected"], serde_json::json!([]), "{}", r.text());
            }
            replayed += 1;
        }
    }
    assert!(replayed >= 9);
    let r = app
        .get(&format!("/v1/experiments/{key}"))
        .as_role(Role::Admin)
        .send()
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["status"], "stopped");
}
