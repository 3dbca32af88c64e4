//! Fuzzing the experiment-spec parser with proptest: arbitrary text, arbitrary JSON and mutated published examples never panic, and every answer is a valid spec or a located list of problems.
//!
//! The case count comes from `PROPTEST_CASES` (scripts/fuzz.sh sets it high); the default run
//! is short enough for the workspace suite. A failure found here is kept as a named regression
//! test at the bottom of this file.

use std::path::PathBuf;

use liftlab_domain::{ExperimentSpec, SpecErrors};
use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::{json, Map, Value};

/// The proptest configuration: `PROPTEST_CASES` when set, else `default_cases`.
fn config(default_cases: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(default_cases);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

fn examples() -> Vec<Value> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../api-spec/examples");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "the published examples are there");
    paths
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).expect("readable");
            serde_json::from_str(&text).expect("an example is JSON")
        })
        .collect()
}

/// The words a spec is made of, so random objects often hit real fields.
const WORDS: &[&str] = &[
    "key",
    "name",
    "hypothesis",
    "owner",
    "unit",
    "arms",
    "role",
    "baseline",
    "treatment",
    "description",
    "allocation",
    "policy",
    "fixed",
    "thompson",
    "weights",
    "reward",
    "floor",
    "warmup",
    "update_every",
    "discount",
    "coverage",
    "targeting",
    "metrics",
    "kind",
    "binary",
    "continuous",
    "duration",
    "count",
    "cost",
    "direction",
    "increase",
    "decrease",
    "primary",
    "guardrail",
    "secondary",
    "aggregate",
    "sum",
    "mean",
    "last",
    "max",
    "covariate",
    "attribute",
    "ratio",
    "numerator",
    "denominator",
    "cap",
    "max_harm",
    "analysis",
    "alpha",
    "power",
    "mde",
    "sequential",
    "planned_units",
    "correction",
    "holm",
    "bh",
    "none",
    "auto_pause_on_harm",
    "segments",
    "drift",
    "reference_window",
    "recent_window",
    "auto_rebaseline",
    "roi",
    "volume_per_month",
    "human_cost_per_hour",
    "fixed_monthly_cost",
    "cost_metric",
    "duration_metric",
    "duration_unit",
    "currency",
    "hash_seed",
    "task",
    "customer",
    "agent",
    "human",
    "ai",
];

fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(WORDS).prop_map(str::to_string),
        1 => "[a-z0-9_-]{0,8}",
        1 => any::<String>(),
    ]
}

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON numbers are finite", |x| x.is_finite())
            .prop_map(Value::from),
        proptest::sample::select(&[0.0, -0.0, 0.5, 1.0, 1e-300, 1e300, -1.0, 2.0][..])
            .prop_map(Value::from),
    ]
}

/// Arbitrary JSON, shaped like specs often enough to get past the first checks.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        word().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            proptest::collection::btree_map(word(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Every JSON pointer inside `v`, the root ("") included.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                let token = k.replace('~', "~0").replace('/', "~1");
                pointers(child, format!("{at}/{token}"), out);
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                pointers(child, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
    out.push(at);
}

/// One edit of a document.
#[derive(Clone, Debug)]
enum Mutation {
    Replace(Value),
    Remove,
    Insert(String, Value),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        json_value().prop_map(Mutation::Replace),
        Just(Mutation::Remove),
        (word(), json_value()).prop_map(|(k, v)| Mutation::Insert(k, v)),
    ]
}

/// Applies `m` at `pointer`; the root cannot be removed, so removing it replaces it by null.
fn apply(doc: &mut Value, pointer: &str, m: Mutation) {
    if let Mutation::Insert(k, v) = &m {
        match doc.pointer_mut(pointer) {
            Some(Value::Object(map)) => {
                map.insert(k.clone(), v.clone());
            }
            Some(Value::Array(items)) => items.push(v.clone()),
            Some(other) => *other = v.clone(),
            None => {}
        }
        return;
    }
    let Some((parent, last)) = pointer.rsplit_once('/') else {
        *doc = match m {
            Mutation::Replace(v) => v,
            _ => Value::Null,
        };
        return;
    };
    let last = last.replace("~1", "/").replace("~0", "~");
    match (doc.pointer_mut(parent), m) {
        (Some(Value::Object(map)), Mutation::Replace(v)) => {
            map.insert(last, v);
        }
        (Some(Value::Object(map)), _) => {
            map.remove(&last);
        }
        (Some(Value::Array(items)), m) => {
            if let Ok(i) = last.parse::<usize>() {
                if i < items.len() {
                    match m {
                        Mutation::Replace(v) => items[i] = v,
                        _ => {
                            items.remove(i);
                        }
                    }
                }
            }
        }
        _ => {}
    }
}

/// The document written as text and parsed back gives the answer the document's value gives.
///
/// It is compared with the value read back from the text, not with `doc` itself: without
/// serde_json's `float_roundtrip` feature (which this crate alone does not enable; the
/// workspace's binary gets it from liftlab-store) reading a number from text can land one
/// ulp away, e.g. `1.3349978271113511e144` reads back as `1.3349978271113513e144`.
fn same_from_text(doc: &Value) -> Result<(), TestCaseError> {
    let text = serde_json::to_string(doc).expect("serializable");
    let read_back: Value = serde_json::from_str(&text).expect("own output is JSON");
    prop_assert_eq!(
        ExperimentSpec::parse_str(&text),
        ExperimentSpec::parse(&read_back)
    );
    Ok(())
}

/// The invariants every answer of the parser keeps.
fn check(result: Result<ExperimentSpec, SpecErrors>) -> Result<(), TestCaseError> {
    check_in(result, &Value::Null)
}

/// Every string in a document, object keys included.
fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|i| strings(i, out)),
        Value::Object(m) => {
            for (k, child) in m {
                out.push(k.clone());
                strings(child, out);
            }
        }
        _ => {}
    }
}

/// [`check`] for the answer about `doc`: a message may end with a full stop only when it ends
/// with text taken from the document (an arm key of "." for example).
fn check_in(result: Result<ExperimentSpec, SpecErrors>, doc: &Value) -> Result<(), TestCaseError> {
    let mut quoted = Vec::new();
    strings(doc, &mut quoted);
    match result {
        Ok(spec) => {
            // A valid spec's normalized document is itself valid and means the same spec.
            let normalized = spec.to_json();
            let again = ExperimentSpec::parse(&normalized)
                .map_err(|e| TestCaseError::fail(format!("normalized spec is invalid: {e}")))?;
            prop_assert_eq!(&again, &spec);
            prop_assert_eq!(again.to_json(), normalized);
            prop_assert!(spec.arms().len() >= 2);
            prop_assert!(spec.arms().iter().filter(|a| a.is_baseline()).count() == 1);
            prop_assert!((0.0..=1.0).contains(&spec.coverage()));
        }
        Err(errors) => {
            prop_assert!(!errors.problems.is_empty(), "an error lists its problems");
            for p in &errors.problems {
                prop_assert!(
                    p.pointer.is_empty() || p.pointer.starts_with('/'),
                    "pointer {:?} is not an RFC 6901 pointer",
                    p.pointer
                );
                prop_assert!(
                    !p.message.trim().is_empty(),
                    "empty message at {}",
                    p.pointer
                );
                let from_document = quoted
                    .iter()
                    .any(|t| t.ends_with('.') && p.message.ends_with(t.as_str()));
                prop_assert!(
                    !p.message.ends_with('.') || from_document,
                    "message ends with a full stop: {}",
                    p.message
                );
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        check(ExperimentSpec::parse_str(&text))?;
    }

    #[test]
    fn json_looking_text_never_panics(text in r#"[\[\]{}",:0-9a-z .eE+-]{0,200}"#) {
        check(ExperimentSpec::parse_str(&text))?;
    }

    #[test]
    fn arbitrary_json_never_panics(doc in json_value()) {
        check_in(ExperimentSpec::parse(&doc), &doc)?;
    }

    #[test]
    fn mutated_examples_give_a_spec_or_located_problems(
        pick in any::<prop::sample::Index>(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), mutation()), 1..4),
    ) {
        let all = examples();
        let mut doc = all[pick.index(all.len())].clone();
        for (at, m) in edits {
            let mut ptrs = Vec::new();
            pointers(&doc, String::new(), &mut ptrs);
            let pointer = ptrs[at.index(ptrs.len())].clone();
            apply(&mut doc, &pointer, m);
        }
        check_in(ExperimentSpec::parse(&doc), &doc)?;
        same_from_text(&doc)?;
    }

    #[test]
    fn metric_values_are_finite_or_refused(value in json_value()) {
        for example in examples() {
            let spec = ExperimentSpec::parse(&example).expect("examples are valid");
            for metric in spec.metrics() {
                match spec.validate_metric_value(metric.key(), &value) {
                    Ok(x) => prop_assert!(x.is_finite(), "{} gave {x}", metric.key()),
                    Err(message) => prop_assert!(!message.is_empty() && !message.ends_with('.')),
                }
            }
        }
    }
}

#[test]
fn the_examples_survive_the_mutation_helpers_untouched() {
    // The harness itself: an Insert at a scalar replaces it, a Remove at the root nulls it.
    let mut doc = json!({"a": [1, 2], "b": {"c": 3}});
    apply(&mut doc, "/a/0", Mutation::Remove);
    apply(&mut doc, "/b/c", Mutation::Replace(json!("x")));
    apply(&mut doc, "/b", Mutation::Insert("d".into(), json!(null)));
    assert_eq!(doc, json!({"a": [2], "b": {"c": "x", "d": null}}));
    apply(&mut doc, "", Mutation::Remove);
    assert_eq!(doc, Value::Null);
    for example in examples() {
        check(ExperimentSpec::parse(&example)).expect("the examples are valid");
    }
}

#[test]
fn deeply_nested_documents_are_refused_not_overflowed() {
    // serde_json stops at 128 levels; the parser must answer with a problem, not a stack overflow.
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let errors = ExperimentSpec::parse_str(&deep).expect_err("not a spec");
    assert_eq!(errors.problems[0].pointer, "");
    let mut doc = json!(1);
    for _ in 0..100 {
        doc = json!({ "arms": [doc] });
    }
    check(ExperimentSpec::parse(&doc)).expect("a located answer");
}

#[test]
fn regression_a_huge_mde_reads_the_same_from_text_and_from_a_value() {
    // Found by scripts/fuzz.sh 20000: the examples' first spec with /analysis/mde replaced by
    // this number; text and value parsing disagreed by one ulp of the number (see
    // `same_from_text`), which the property now allows for.
    let mut doc = examples()[0].clone();
    apply(
        &mut doc,
        "/analysis/mde",
        Mutation::Insert("key".into(), json!(1.3349978271113511e144)),
    );
    assert_eq!(doc["analysis"]["mde"], json!(1.3349978271113511e144));
    check(ExperimentSpec::parse(&doc)).expect("the invariants hold");
    same_from_text(&doc).expect("text and value agree");
}

#[test]
fn regression_an_arm_key_ending_in_a_full_stop_ends_the_message() {
    // Found by scripts/fuzz.sh 20000: an arm key replaced by "." gives the message
    // `missing weights for arms .`, whose full stop is the key's, not the sentence's.
    let mut doc = examples()[0].clone();
    apply(&mut doc, "/arms/1/key", Mutation::Replace(json!(".")));
    let errors = ExperimentSpec::parse(&doc).expect_err("\".\" is not a slug");
    assert!(
        errors.problems.iter().any(|p| p.message.ends_with(" .")),
        "{errors:?}"
    );
    check_in(Err(errors), &doc).expect("the invariants hold");
}
