//! The published spec examples and the JSON Schema agree with the domain parser: examples pass both, each invalid spec fails both (where a schema can state the rule).
//!
//! Why one file of about 900 lines: most of it is one table, `invalid_cases`, a case per rule of
//! the spec in the order of the schema, so that the case of a rule is found by searching one list;
//! splitting the table would divide that list without separating any responsibility.

use std::path::PathBuf;

use liftlab_domain::ExperimentSpec;
use serde_json::{json, Value};

fn api_spec_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../api-spec")
}

fn read_json(path: &std::path::Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// The experiment-spec schema, compiled once per test.
struct Schema {
    schemas: boon::Schemas,
    index: boon::SchemaIndex,
}

impl Schema {
    fn load() -> Self {
        let doc = read_json(&api_spec_dir().join("experiment-spec.schema.json"));
        let id = doc["$id"]
            .as_str()
            .expect("the schema has an $id")
            .to_string();
        let mut schemas = boon::Schemas::new();
        let mut compiler = boon::Compiler::new();
        compiler
            .add_resource(&id, doc)
            .expect("schema resource is accepted");
        let index = compiler
            .compile(&id, &mut schemas)
            .unwrap_or_else(|e| panic!("the schema compiles: {e}"));
        Self { schemas, index }
    }

    fn check(&self, doc: &Value) -> Result<(), String> {
        self.schemas
            .validate(doc, self.index)
            .map_err(|e| format!("{e:#}"))
    }
}

fn examples() -> Vec<(String, Value)> {
    let dir = api_spec_dir().join("examples");
    let mut out: Vec<(String, Value)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                read_json(&p),
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn every_example_passes_the_parser_and_the_schema() {
    let schema = Schema::load();
    let found = examples();
    let names: Vec<&str> = found.iter().map(|(n, _)| n.as_str()).collect();
    for expected in [
        "claims-review.json",
        "model-bandit.json",
        "support-triage.json",
    ] {
        assert!(
            names.contains(&expected),
            "missing example {expected}; found {names:?}"
        );
    }
    for (name, doc) in &found {
        let spec = ExperimentSpec::parse(doc).unwrap_or_else(|e| panic!("{name}: {e}"));
        schema
            .check(doc)
            .unwrap_or_else(|e| panic!("{name} fails the schema: {e}"));
        // The normalized document (defaults filled in) is itself a valid spec and parses to the same spec.
        let normalized = spec.to_json();
        schema
            .check(&normalized)
            .unwrap_or_else(|e| panic!("{name}'s normalized form fails the schema: {e}"));
        assert_eq!(
            ExperimentSpec::parse(&normalized).as_ref(),
            Ok(&spec),
            "{name}"
        );
    }
}

#[test]
fn examples_say_what_their_names_promise() {
    let by_name = |n: &str| {
        let (_, doc) = examples()
            .into_iter()
            .find(|(name, _)| name == n)
            .expect("example");
        ExperimentSpec::parse(&doc).expect("valid")
    };
    let triage = by_name("support-triage.json");
    assert_eq!(
        triage.primary().kind(),
        liftlab_domain::spec::MetricKind::Duration
    );
    assert!(triage.analysis().sequential());
    assert!(triage.roi().is_some() && triage.drift().is_some());
    assert_eq!(triage.segments(), ["channel", "priority"]);
    assert_eq!(triage.primary().covariate(), Some("estimated_minutes"));
    assert!(triage.roi().is_some_and(|r| r.fixed_monthly_cost() > 0.0));

    let bandit = by_name("model-bandit.json");
    assert_eq!(bandit.arms().len(), 3);
    let thompson = bandit.allocation().thompson().expect("a Thompson policy");
    assert_eq!(thompson.reward(), "resolved");
    assert_eq!(
        bandit.metric("resolved").map(|m| m.kind()),
        Some(liftlab_domain::spec::MetricKind::Binary)
    );

    let claims = by_name("claims-review.json");
    assert!(claims.analysis().auto_pause_on_harm());
    let guardrails = claims
        .metrics()
        .iter()
        .filter(|m| m.role() == liftlab_domain::spec::MetricRole::Guardrail)
        .count();
    assert!(
        guardrails >= 3,
        "claims review is guardrail-heavy, has {guardrails}"
    );
    let ratio = claims
        .metrics()
        .iter()
        .find_map(|m| m.ratio())
        .expect("claims review has a ratio metric");
    assert_eq!(
        (ratio.numerator(), ratio.denominator()),
        ("handling_cost", "resolved")
    );
    assert!(claims
        .metric("handling_cost")
        .and_then(|m| m.cap())
        .is_some());
}

/// A small valid spec that each invalid case breaks in exactly one way.
fn base() -> Value {
    json!({
        "key": "exp",
        "arms": [
            {"key": "a", "role": "baseline"},
            {"key": "b", "role": "treatment"}
        ],
        "allocation": {"policy": "fixed", "weights": {"a": 0.5, "b": 0.5}},
        "metrics": [
            {"key": "m", "kind": "binary", "direction": "increase", "role": "primary"},
            {"key": "c", "kind": "cost", "direction": "decrease", "role": "secondary"}
        ]
    })
}

fn thompson_base() -> Value {
    let mut doc = base();
    doc["allocation"] = json!({"policy": "thompson", "reward": "m"});
    doc
}

/// Sets the value at `pointer` (creating the last object member, or appending to an array at
/// its length, if needed); `None` removes it.
fn with(mut doc: Value, pointer: &str, value: Option<Value>) -> Value {
    let (parent, last) = pointer.rsplit_once('/').expect("a pointer with a parent");
    let target = doc
        .pointer_mut(parent)
        .unwrap_or_else(|| panic!("no parent at {parent}"));
    let last = last.replace("~1", "/").replace("~0", "~");
    match (target, value) {
        (Value::Object(map), Some(v)) => {
            map.insert(last, v);
        }
        (Value::Object(map), None) => {
            map.remove(&last);
        }
        (Value::Array(items), Some(v)) => {
            let i = last.parse::<usize>().expect("index");
            if i == items.len() {
                items.push(v);
            } else {
                items[i] = v;
            }
        }
        (Value::Array(items), None) => {
            items.remove(last.parse::<usize>().expect("index"));
        }
        (other, _) => panic!("cannot set {pointer} in {other}"),
    }
    doc
}

/// An invalid spec, the one pointer the parser must report, and whether the schema can state the rule.
struct Case {
    rule: &'static str,
    doc: Value,
    pointer: &'static str,
    schema_catches: bool,
}

fn case(rule: &'static str, doc: Value, pointer: &'static str, schema_catches: bool) -> Case {
    Case {
        rule,
        doc,
        pointer,
        schema_catches,
    }
}

fn invalid_cases() -> Vec<Case> {
    let b = base;
    let t = thompson_base;
    let drift = |d: Value| with(b(), "/drift", Some(d));
    let roi = |r: Value| with(b(), "/roi", Some(r));
    vec![
        case(
            "key is not a slug",
            with(b(), "/key", Some(json!("Bad Key"))),
            "/key",
            true,
        ),
        case(
            "key too long",
            with(b(), "/key", Some(json!("k".repeat(65)))),
            "/key",
            true,
        ),
        case(
            "key has the wrong type",
            with(b(), "/key", Some(json!(5))),
            "/key",
            true,
        ),
        case("key is missing", with(b(), "/key", None), "/key", true),
        case(
            "fewer than two arms",
            with(
                with(b(), "/arms/1", None),
                "/allocation/weights",
                Some(json!({"a": 1.0})),
            ),
            "/arms",
            true,
        ),
        case(
            "no baseline",
            with(b(), "/arms/0/role", Some(json!("treatment"))),
            "/arms",
            true,
        ),
        case(
            "two baselines",
            with(b(), "/arms/1/role", Some(json!("baseline"))),
            "/arms",
            true,
        ),
        case(
            "duplicate arm keys",
            with(
                with(b(), "/arms/1/key", Some(json!("a"))),
                "/allocation/weights",
                Some(json!({"a": 1.0})),
            ),
            "/arms/1/key",
            false,
        ),
        case(
            "arm key is not a slug",
            with(
                with(b(), "/arms/1/key", Some(json!("B!"))),
                "/allocation/weights",
                Some(json!({"a": 0.5, "B!": 0.5})),
            ),
            "/arms/1/key",
            true,
        ),
        case(
            "unknown arm role",
            with(b(), "/arms/1/role", Some(json!("control"))),
            "/arms/1/role",
            true,
        ),
        case(
            "arm is not an object",
            with(
                with(b(), "/arms/1", Some(json!("b"))),
                "/allocation/weights",
                Some(json!({"a": 1.0})),
            ),
            "/arms/1",
            true,
        ),
        case(
            "arms is not an array",
            with(
                with(b(), "/arms", Some(json!({"a": "baseline"}))),
                "/allocation/weights",
                None,
            ),
            "/arms",
            true,
        ),
        case(
            "negative weight",
            with(
                b(),
                "/allocation/weights",
                Some(json!({"a": 1.5, "b": -0.5})),
            ),
            "/allocation/weights/b",
            true,
        ),
        case(
            "weights do not sum to 1",
            with(
                b(),
                "/allocation/weights",
                Some(json!({"a": 0.5, "b": 0.6})),
            ),
            "/allocation/weights",
            false,
        ),
        case(
            "weight for an unknown arm",
            with(b(), "/allocation/weights/c", Some(json!(0.0))),
            "/allocation/weights/c",
            false,
        ),
        case(
            "weights miss an arm",
            with(b(), "/allocation/weights", Some(json!({"a": 1.0}))),
            "/allocation/weights",
            false,
        ),
        case(
            "unknown policy",
            with(b(), "/allocation/policy", Some(json!("epsilon"))),
            "/allocation/policy",
            true,
        ),
        case(
            "policy is missing",
            with(b(), "/allocation/policy", None),
            "/allocation/policy",
            true,
        ),
        case(
            "allocation is missing",
            with(b(), "/allocation", None),
            "/allocation",
            true,
        ),
        case(
            "a fixed policy with a Thompson field",
            with(b(), "/allocation/floor", Some(json!(0.1))),
            "/allocation/floor",
            true,
        ),
        case(
            "coverage above 1",
            with(b(), "/coverage", Some(json!(1.5))),
            "/coverage",
            true,
        ),
        case(
            "coverage below 0",
            with(b(), "/coverage", Some(json!(-0.1))),
            "/coverage",
            true,
        ),
        case(
            "coverage is a string",
            with(b(), "/coverage", Some(json!("1"))),
            "/coverage",
            true,
        ),
        case(
            "unknown metric kind",
            with(b(), "/metrics/1/kind", Some(json!("ratio"))),
            "/metrics/1/kind",
            true,
        ),
        case(
            "unknown metric direction",
            with(b(), "/metrics/1/direction", Some(json!("up"))),
            "/metrics/1/direction",
            true,
        ),
        case(
            "unknown metric role",
            with(b(), "/metrics/1/role", Some(json!("kpi"))),
            "/metrics/1/role",
            true,
        ),
        case(
            "unknown metric aggregate",
            with(b(), "/metrics/1/aggregate", Some(json!("median"))),
            "/metrics/1/aggregate",
            true,
        ),
        case(
            "no primary metric",
            with(b(), "/metrics/0/role", Some(json!("secondary"))),
            "/metrics",
            true,
        ),
        case(
            "two primary metrics",
            with(b(), "/metrics/1/role", Some(json!("primary"))),
            "/metrics/1/role",
            true,
        ),
        case(
            "duplicate metric keys",
            with(b(), "/metrics/1/key", Some(json!("m"))),
            "/metrics/1/key",
            false,
        ),
        case(
            "no metrics",
            with(b(), "/metrics", Some(json!([]))),
            "/metrics",
            true,
        ),
        case(
            "metrics are missing",
            with(b(), "/metrics", None),
            "/metrics",
            true,
        ),
        case(
            "Thompson reward is not a declared metric",
            with(t(), "/allocation/reward", Some(json!("revenue"))),
            "/allocation/reward",
            false,
        ),
        case(
            "Thompson reward is missing",
            with(t(), "/allocation/reward", None),
            "/allocation/reward",
            true,
        ),
        case(
            "floor above 1/arms",
            with(t(), "/allocation/floor", Some(json!(0.6))),
            "/allocation/floor",
            true,
        ),
        case(
            "negative floor",
            with(t(), "/allocation/floor", Some(json!(-0.01))),
            "/allocation/floor",
            true,
        ),
        case(
            "negative warmup",
            with(t(), "/allocation/warmup", Some(json!(-1))),
            "/allocation/warmup",
            true,
        ),
        case(
            "fractional warmup",
            with(t(), "/allocation/warmup", Some(json!(2.5))),
            "/allocation/warmup",
            true,
        ),
        case(
            "update_every of 0",
            with(t(), "/allocation/update_every", Some(json!(0))),
            "/allocation/update_every",
            true,
        ),
        case(
            "discount of 0",
            with(t(), "/allocation/discount", Some(json!(0))),
            "/allocation/discount",
            true,
        ),
        case(
            "discount above 1",
            with(t(), "/allocation/discount", Some(json!(1.5))),
            "/allocation/discount",
            true,
        ),
        case(
            "a Thompson policy with weights",
            with(
                t(),
                "/allocation/weights",
                Some(json!({"a": 0.5, "b": 0.5})),
            ),
            "/allocation/weights",
            true,
        ),
        case(
            "alpha of 1",
            with(b(), "/analysis", Some(json!({"alpha": 1}))),
            "/analysis/alpha",
            true,
        ),
        case(
            "alpha of 0",
            with(b(), "/analysis", Some(json!({"alpha": 0}))),
            "/analysis/alpha",
            true,
        ),
        case(
            "power of 0",
            with(b(), "/analysis", Some(json!({"power": 0}))),
            "/analysis/power",
            true,
        ),
        case(
            "power of 1.2",
            with(b(), "/analysis", Some(json!({"power": 1.2}))),
            "/analysis/power",
            true,
        ),
        case(
            "mde of 0",
            with(b(), "/analysis", Some(json!({"mde": 0}))),
            "/analysis/mde",
            true,
        ),
        case(
            "negative mde",
            with(b(), "/analysis", Some(json!({"mde": -0.1}))),
            "/analysis/mde",
            true,
        ),
        case(
            "unknown correction",
            with(b(), "/analysis", Some(json!({"correction": "bonferroni"}))),
            "/analysis/correction",
            true,
        ),
        case(
            "sequential is not a boolean",
            with(b(), "/analysis", Some(json!({"sequential": "yes"}))),
            "/analysis/sequential",
            true,
        ),
        case(
            "unknown analysis field",
            with(b(), "/analysis", Some(json!({"confidence": 0.95}))),
            "/analysis/confidence",
            true,
        ),
        case(
            "segments are not strings",
            with(b(), "/segments", Some(json!([1]))),
            "/segments/0",
            true,
        ),
        case(
            "duplicate segment",
            with(b(), "/segments", Some(json!(["channel", "channel"]))),
            "/segments/1",
            true,
        ),
        case(
            "empty segment name",
            with(b(), "/segments", Some(json!([""]))),
            "/segments/0",
            true,
        ),
        case(
            "drift names an unknown metric",
            drift(json!({"metrics": ["latency"]})),
            "/drift/metrics/0",
            false,
        ),
        case(
            "drift names no metric",
            drift(json!({"metrics": []})),
            "/drift/metrics",
            true,
        ),
        case(
            "drift metrics are missing",
            drift(json!({})),
            "/drift/metrics",
            true,
        ),
        case(
            "drift reference window out of range",
            drift(json!({"metrics": ["m"], "reference_window": 0})),
            "/drift/reference_window",
            true,
        ),
        case(
            "drift window alpha out of range",
            drift(json!({"metrics": ["m"], "window_alpha": 1})),
            "/drift/window_alpha",
            true,
        ),
        case(
            "CUSUM threshold of 0",
            drift(json!({"metrics": ["m"], "cusum": {"threshold": 0}})),
            "/drift/cusum/threshold",
            true,
        ),
        case(
            "negative Page–Hinkley delta",
            drift(json!({"metrics": ["m"], "page_hinkley": {"delta": -1}})),
            "/drift/page_hinkley/delta",
            true,
        ),
        case(
            "unknown drift field",
            drift(json!({"metrics": ["m"], "threshold": 3})),
            "/drift/threshold",
            true,
        ),
        case(
            "negative volume",
            roi(json!({"volume_per_month": -1, "human_cost_per_hour": 40})),
            "/roi/volume_per_month",
            true,
        ),
        case(
            "negative hourly cost",
            roi(json!({"volume_per_month": 100, "human_cost_per_hour": -40})),
            "/roi/human_cost_per_hour",
            true,
        ),
        case(
            "volume is missing",
            roi(json!({"human_cost_per_hour": 40})),
            "/roi/volume_per_month",
            true,
        ),
        case(
            "ROI cost metric is not a cost",
            roi(json!({"volume_per_month": 100, "human_cost_per_hour": 40, "cost_metric": "m"})),
            "/roi/cost_metric",
            false,
        ),
        case(
            "bad currency",
            roi(json!({"volume_per_month": 100, "human_cost_per_hour": 40, "currency": "dollars"})),
            "/roi/currency",
            true,
        ),
        case(
            "empty targeting list",
            with(b(), "/targeting", Some(json!({"region": []}))),
            "/targeting/region",
            true,
        ),
        case(
            "targeting value is not a string",
            with(b(), "/targeting", Some(json!({"region": [7]}))),
            "/targeting/region/0",
            true,
        ),
        case(
            "targeting attribute with a slash is escaped in the pointer",
            with(b(), "/targeting", Some(json!({"a/b": "x"}))),
            "/targeting/a~1b",
            true,
        ),
        case(
            "empty hash seed",
            with(b(), "/hash_seed", Some(json!(""))),
            "/hash_seed",
            true,
        ),
        case(
            "unknown unit",
            with(b(), "/unit", Some(json!("team"))),
            "/unit",
            true,
        ),
        case(
            "empty name",
            with(b(), "/name", Some(json!(""))),
            "/name",
            true,
        ),
        case(
            "unknown top-level field",
            with(b(), "/colour", Some(json!("red"))),
            "/colour",
            true,
        ),
        case(
            "unknown arm field",
            with(b(), "/arms/0/weight", Some(json!(0.5))),
            "/arms/0/weight",
            true,
        ),
        case(
            "unknown metric field",
            with(b(), "/metrics/0/unit", Some(json!("s"))),
            "/metrics/0/unit",
            true,
        ),
        case("document is not an object", json!([1, 2]), "", true),
        case(
            "covariate is not an object",
            with(
                b(),
                "/metrics/1/covariate",
                Some(json!("estimated_minutes")),
            ),
            "/metrics/1/covariate",
            true,
        ),
        case(
            "covariate with an empty attribute name",
            with(b(), "/metrics/1/covariate", Some(json!({"attribute": ""}))),
            "/metrics/1/covariate/attribute",
            true,
        ),
        case(
            "ratio names a missing metric",
            ratio(json!({"numerator": "c", "denominator": "resolved"})),
            "/metrics/2/ratio/denominator",
            false,
        ),
        case(
            "ratio names another ratio",
            with(
                ratio(json!({"numerator": "c", "denominator": "m"})),
                "/metrics/3",
                Some(
                    json!({"key": "per2", "kind": "cost", "direction": "decrease",
                            "role": "secondary", "ratio": {"numerator": "per", "denominator": "m"}}),
                ),
            ),
            "/metrics/3/ratio/numerator",
            false,
        ),
        case(
            "ratio without a denominator",
            ratio(json!({"numerator": "c"})),
            "/metrics/2/ratio/denominator",
            true,
        ),
        case(
            "ratio with a covariate",
            with(
                ratio(json!({"numerator": "c", "denominator": "m"})),
                "/metrics/2/covariate",
                Some(json!({"attribute": "x"})),
            ),
            "/metrics/2/covariate",
            true,
        ),
        case(
            "binary ratio",
            with(
                ratio(json!({"numerator": "c", "denominator": "m"})),
                "/metrics/2/kind",
                Some(json!("binary")),
            ),
            "/metrics/2/kind",
            true,
        ),
        case(
            "ratio as the Thompson reward",
            with(
                with(
                    ratio(json!({"numerator": "c", "denominator": "m"})),
                    "/allocation",
                    Some(json!({"policy": "thompson", "reward": "per"})),
                ),
                "/allocation/reward",
                Some(json!("per")),
            ),
            "/allocation/reward",
            false,
        ),
        case(
            "negative cap",
            with(b(), "/metrics/1/cap", Some(json!({"max": -10}))),
            "/metrics/1/cap/max",
            true,
        ),
        case(
            "zero cap",
            with(b(), "/metrics/1/cap", Some(json!({"max": 0}))),
            "/metrics/1/cap/max",
            true,
        ),
        case(
            "cap on a binary metric",
            with(b(), "/metrics/0/cap", Some(json!({"max": 1}))),
            "/metrics/0/cap",
            true,
        ),
        case(
            "harm tolerance on a secondary metric",
            with(b(), "/metrics/1/max_harm", Some(json!(0.05))),
            "/metrics/1/max_harm",
            true,
        ),
        case(
            "harm tolerance of 1",
            with(
                with(b(), "/metrics/1/role", Some(json!("guardrail"))),
                "/metrics/1/max_harm",
                Some(json!(1)),
            ),
            "/metrics/1/max_harm",
            true,
        ),
        case(
            "fixed horizon without planned units",
            with(b(), "/analysis", Some(json!({"sequential": false}))),
            "/analysis/planned_units",
            true,
        ),
        case(
            "planned units of 0",
            with(b(), "/analysis", Some(json!({"planned_units": 0}))),
            "/analysis/planned_units",
            true,
        ),
        case(
            "negative fixed monthly cost",
            roi(
                json!({"volume_per_month": 100, "human_cost_per_hour": 40, "fixed_monthly_cost": -1}),
            ),
            "/roi/fixed_monthly_cost",
            true,
        ),
    ]
}

/// The base spec with a third metric, `per`, a cost ratio with these parts.
fn ratio(parts: Value) -> Value {
    let mut doc = base();
    doc["metrics"].as_array_mut().expect("metrics").push(json!({
        "key": "per", "kind": "cost", "direction": "decrease", "role": "secondary", "ratio": parts
    }));
    doc
}

#[test]
fn each_invalid_spec_fails_with_its_pointer() {
    let schema = Schema::load();
    schema
        .check(&base())
        .expect("the base spec passes the schema");
    schema
        .check(&thompson_base())
        .expect("the Thompson base spec passes the schema");
    ExperimentSpec::parse(&base()).expect("the base spec parses");
    ExperimentSpec::parse(&thompson_base()).expect("the Thompson base spec parses");
    let mut failures = Vec::new();
    for c in invalid_cases() {
        match ExperimentSpec::parse(&c.doc) {
            Ok(_) => failures.push(format!("{}: the parser accepted it", c.rule)),
            Err(e) if e.pointers() != [c.pointer] => failures.push(format!(
                "{}: expected exactly [{:?}], got {:?}",
                c.rule, c.pointer, e.problems
            )),
            Err(_) => {}
        }
        let schema_result = schema.check(&c.doc);
        if c.schema_catches && schema_result.is_ok() {
            failures.push(format!("{}: the schema accepted it", c.rule));
        }
        if !c.schema_catches && schema_result.is_err() {
            // Keep the flag honest: a rule marked server-only must really pass the schema.
            failures.push(format!(
                "{}: marked server-only but the schema rejects it",
                c.rule
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_problem_is_reported_at_once() {
    let doc = json!({
        "key": "Not A Slug",
        "arms": [{"key": "a", "role": "treatment"}, {"key": "b", "role": "treatment"}],
        "allocation": {"policy": "thompson", "reward": "nope", "discount": 2},
        "coverage": 3,
        "metrics": [{"key": "m", "kind": "binary", "direction": "sideways", "role": "primary"}],
        "analysis": {"alpha": 2, "mde": 0},
        "colour": "red"
    });
    let errors = ExperimentSpec::parse(&doc).expect_err("invalid");
    let mut pointers = errors.pointers();
    pointers.sort_unstable();
    assert_eq!(
        pointers,
        [
            "/allocation/discount",
            "/allocation/reward",
            "/analysis/alpha",
            "/analysis/mde",
            "/arms",
            "/colour",
            "/coverage",
            "/key",
            "/metrics/0/direction",
        ]
    );
    assert!(Schema::load().check(&doc).is_err());
}
