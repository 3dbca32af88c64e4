//! Fuzzing the store's record decoding: random damage to one stored record (bytes replaced, bits flipped, truncated, re-tagged, or swapped for well-formed JSON of the wrong shape) never panics, and is reported as `StoreError::Corrupt`, by `verify()` or by `rebuild()` wherever the store promises to notice it.
//!
//! A golden data directory is built once per run; each case copies it, damages one record
//! with the raw sled API, reopens it as a `SledStore` and runs every read, a write, `verify()`
//! and `rebuild(Check)`. `PROPTEST_CASES` sets the case count (scripts/fuzz.sh sets it high).
//! Set `LIFTLAB_FUZZ_REPORT=1` to print, per tree, how many damaging edits were detected.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use common::*;
use liftlab_domain::Transition;
use liftlab_store::{RebuildMode, SledStore, Store, StoreError};
use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::{json, Value};

const T0: i64 = 1_700_000_000_000;

/// The derived tables: `rebuild()` recomputes them from the logs, so a change to what they
/// read as (beyond rebuild's relative tolerance of 1e-9) must show up as a mismatch.
const DERIVED: &[&str] = &["units", "aggregates", "counters", "assignment_counts"];

/// The relative tolerance of `rebuild()`'s comparison (and of ours).
const TOLERANCE: f64 = 1e-9;

/// The task index: `rebuild()` derives it from the assignments and the chain's `task_bound`
/// records, so any change to a stored entry must be a mismatch (or `Corrupt`).
const TASKS: &str = "tasks";

/// The hash-linked audit chain: a change to what it reads as must fail `verify()`. Other
/// tables (specs, assignments, the outcome log, the other indexes) are checked only for
/// decodability: a well-formed but different value there can go unseen, and is only counted.
const AUDIT: &str = "audit";

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

/// The golden directory and the (tree, key, value) of every record in it.
struct Golden {
    _dir: tempfile::TempDir,
    path: PathBuf,
    records: Vec<(String, Vec<u8>, Vec<u8>)>,
    derived: Value,
    audit: Value,
}

fn golden() -> &'static Golden {
    static GOLDEN: OnceLock<Golden> = OnceLock::new();
    GOLDEN.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("golden");
        let (derived, audit) = {
            let store = SledStore::open(&path).expect("opens");
            workload(&store);
            let views = (
                derived_view(&store).expect("readable"),
                audit_view(&store).expect("readable"),
            );
            store.close().expect("closes");
            views
        };
        let mut records = Vec::new();
        {
            let db = open_raw(&path);
            let mut names: Vec<Vec<u8>> = db.tree_names().into_iter().map(|n| n.to_vec()).collect();
            names.sort();
            for name in names {
                let name = String::from_utf8(name).expect("tree names are text");
                if name.starts_with("__sled") {
                    continue;
                }
                let tree = db.open_tree(&name).expect("tree");
                for entry in tree.iter() {
                    let (k, v) = entry.expect("reads");
                    records.push((name.clone(), k.to_vec(), v.to_vec()));
                }
            }
        }
        assert!(
            records.len() > 50,
            "the workload wrote records: {}",
            records.len()
        );
        Golden {
            _dir: dir,
            path,
            records,
            derived,
            audit,
        }
    })
}

/// Two experiments (fixed and Thompson) with assignments, outcomes, a returning unit's new
/// task, a new period and a rebaseline.
fn workload(store: &dyn Store) {
    store
        .create_experiment(fixed_spec("alpha"), T0)
        .expect("created");
    store
        .transition("alpha", Transition::Start, None, T0 + 1)
        .expect("started");
    store
        .create_experiment(thompson_spec("bandit", 4, 4), T0)
        .expect("created");
    store
        .transition("bandit", Transition::Start, None, T0 + 1)
        .expect("started");
    let alpha = fixed_spec("alpha");
    let bandit = thompson_spec("bandit", 4, 4);
    for i in 0..8u32 {
        let unit = format!("u{i}");
        let arm = if i % 2 == 0 { "ai" } else { "human" };
        store
            .record_assignment(assignment("alpha", &unit, arm, 0.5))
            .expect("assigned");
        let metrics = [
            ("resolved", f64::from(i % 2)),
            ("minutes", f64::from(i) + 0.25),
        ];
        store
            .record_outcome(
                &alpha,
                outcome("alpha", &format!("e{i}"), &unit, arm, &metrics),
            )
            .expect("recorded");
        let barm = ["human", "ai", "hybrid"][usize::try_from(i % 3).expect("small")];
        store
            .record_assignment(assignment("bandit", &unit, barm, 1.0 / 3.0))
            .expect("assigned");
        store
            .record_outcome(
                &bandit,
                outcome(
                    "bandit",
                    &format!("b{i}"),
                    &unit,
                    barm,
                    &[("resolved", 1.0)],
                ),
            )
            .expect("recorded");
    }
    // A returning unit with a new task: a `task_bound` record and its index entry.
    let mut back = assignment("alpha", "u3", "ai", 0.5);
    back.task_id = "t-back".into();
    store.record_assignment(back).expect("answered");
    store
        .rebaseline("alpha", "fuzz", T0 + 50)
        .expect("rebaselined");
}

/// What the derived tables read as, through the public API.
fn derived_view(store: &SledStore) -> Result<Value, StoreError> {
    let mut out = Vec::new();
    for key in ["alpha", "bandit"] {
        for epoch in [0, 1] {
            out.push(json!({
                "aggregates": to_json(&store.aggregates(key, epoch)?),
                "units": to_json(&store.unit_rows(key, epoch)?),
                "counters": to_json(&store.arm_counters(key, epoch)?),
                "counts": to_json(&store.assignment_counts(key, epoch)?),
            }));
        }
    }
    Ok(Value::Array(out))
}

/// What the audit chain reads as, through the public API.
fn audit_view(store: &SledStore) -> Result<Value, StoreError> {
    let mut out = Vec::new();
    for key in ["alpha", "bandit"] {
        out.push(to_json(&store.audit(key, 0, 1000)?));
    }
    Ok(Value::Array(out))
}

fn to_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).expect("serializable")
}

/// JSON equality with numbers compared within [`TOLERANCE`] (relative, scale at least 1).
fn close(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => (x - y).abs() <= TOLERANCE * x.abs().max(y.abs()).max(1.0),
            _ => x == y,
        },
        (Value::Array(xs), Value::Array(ys)) => {
            xs.len() == ys.len() && xs.iter().zip(ys).all(|(x, y)| close(x, y))
        }
        (Value::Object(xs), Value::Object(ys)) => {
            xs.len() == ys.len()
                && xs
                    .iter()
                    .all(|(k, x)| ys.get(k).is_some_and(|y| close(x, y)))
        }
        _ => a == b,
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("readable") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copied");
        }
    }
}

/// How one record is damaged.
#[derive(Clone, Debug)]
enum Damage {
    /// The whole value becomes these bytes.
    Replace(Vec<u8>),
    /// These bits (index into the value's bits, modulo its length) are flipped.
    FlipBits(Vec<usize>),
    /// The value is cut to this many bytes (modulo its length).
    Truncate(usize),
    /// The version byte becomes this.
    Retag(u8),
    /// The JSON body becomes this well-formed but arbitrary JSON.
    Reshape(Value),
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-1e9f64..1e9).prop_map(Value::from),
        "[a-z_]{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map("[a-z_]{1,10}", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(Damage::Replace),
        proptest::collection::vec(any::<usize>(), 1..4).prop_map(Damage::FlipBits),
        any::<usize>().prop_map(Damage::Truncate),
        any::<u8>().prop_map(Damage::Retag),
        json_value().prop_map(Damage::Reshape),
    ]
}

fn damaged(value: &[u8], how: &Damage) -> Vec<u8> {
    match how {
        Damage::Replace(bytes) => bytes.clone(),
        Damage::FlipBits(bits) => {
            let mut out = value.to_vec();
            if !out.is_empty() {
                for b in bits {
                    let bit = b % (out.len() * 8);
                    out[bit / 8] ^= 1 << (bit % 8);
                }
            }
            out
        }
        Damage::Truncate(keep) => value[..keep % value.len().max(1)].to_vec(),
        Damage::Retag(tag) => {
            let mut out = value.to_vec();
            if let Some(first) = out.first_mut() {
                *first = *tag;
            }
            out
        }
        Damage::Reshape(v) => {
            let mut out = vec![1u8];
            out.extend(serde_json::to_vec(v).expect("serializable"));
            out
        }
    }
}

/// The meaning of a stored value, for telling real damage from a re-spelling: tag and JSON.
fn meaning(bytes: &[u8]) -> Option<(u8, Value)> {
    let (tag, body) = bytes.split_first()?;
    Some((*tag, serde_json::from_slice(body).ok()?))
}

/// What the store said about a damaged directory.
#[derive(Debug, Default)]
struct Seen {
    corrupt: Vec<String>,
    verify_failed: bool,
    mismatches: usize,
    /// Errors that are neither `Corrupt` nor an ordinary answer about the request.
    unexpected: Vec<String>,
}

impl Seen {
    fn note<T>(&mut self, what: &str, r: Result<T, StoreError>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e @ StoreError::Corrupt { .. }) => {
                self.corrupt.push(format!("{what}: {e}"));
                None
            }
            // A damaged index can point at nothing, or make a request conflict; those are
            // answers, and the damage shows up elsewhere.
            Err(StoreError::NotFound { .. } | StoreError::Conflict(_) | StoreError::Invalid(_))
            | Err(StoreError::Domain(_)) => None,
            Err(e) => {
                self.unexpected.push(format!("{what}: {e:?}"));
                None
            }
        }
    }

    fn detected(&self) -> bool {
        !self.corrupt.is_empty() || self.verify_failed || self.mismatches > 0
    }
}

/// Runs every read, one write of each kind, `verify()` and `rebuild(Check)`.
fn exercise(store: &SledStore) -> Seen {
    let mut seen = Seen::default();
    for key in ["alpha", "bandit"] {
        seen.note("experiment", store.experiment(key));
        seen.note("versions", store.versions(key));
        seen.note("experiment_version", store.experiment_version(key, 1));
        seen.note("epochs", store.epochs(key));
        seen.note("periods", store.periods(key));
        seen.note("current_period", store.current_period(key));
        seen.note("bandit_state", store.bandit_state(key));
        for unit in ["u0", "u1", "u5"] {
            seen.note("assignment", store.assignment(key, unit));
            seen.note("assignment_by_task", store.assignment_by_task(key, unit));
        }
        for epoch in [0, 1] {
            seen.note("aggregates", store.aggregates(key, epoch));
            seen.note("arm_counters", store.arm_counters(key, epoch));
            seen.note("assignment_counts", store.assignment_counts(key, epoch));
            seen.note("unit_rows", store.unit_rows(key, epoch));
            seen.note("drift_monitor", store.drift_monitor(key, epoch));
        }
        if let Some(log) = seen.note("outcomes", store.outcomes(key)) {
            for o in log {
                seen.note("outcome", o);
            }
        }
        seen.note("audit", store.audit(key, 0, 1000));
    }
    seen.note("experiments", store.experiments());
    // Writes decode the state they build on; they must fail cleanly, never half-apply.
    seen.note(
        "record_assignment",
        store.record_assignment(assignment("alpha", "late", "ai", 0.5)),
    );
    let alpha = fixed_spec("alpha");
    let mut late = outcome("alpha", "late-e", "late", "ai", &[("resolved", 1.0)]);
    late.epoch = 1;
    seen.note("record_outcome", store.record_outcome(&alpha, late));
    if let Some(report) = seen.note("verify", store.verify()) {
        seen.verify_failed = !report.ok;
    }
    if let Some(report) = seen.note("rebuild", store.rebuild(RebuildMode::Check)) {
        seen.mismatches = report.mismatches.len();
    }
    seen
}

/// Damage tallies per tree: (damaging edits, detected).
fn tally() -> &'static Mutex<BTreeMap<String, (u64, u64)>> {
    static TALLY: OnceLock<Mutex<BTreeMap<String, (u64, u64)>>> = OnceLock::new();
    TALLY.get_or_init(Mutex::default)
}

/// Damages record `index` of the golden directory with `how`, reopens and checks the store.
fn check_damage(index: usize, how: &Damage) -> Result<(), TestCaseError> {
    let g = golden();
    let (tree, key, value) = &g.records[index % g.records.len()];
    let bytes = damaged(value, how);
    let changed =
        meaning(&bytes) != meaning(value) || (meaning(value).is_none() && &bytes != value);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("data");
    copy_dir(&g.path, &path);
    {
        let db = open_raw(&path);
        db.open_tree(tree)
            .expect("tree")
            .insert(key.as_slice(), bytes.as_slice())
            .expect("writes");
        db.flush().expect("flushes");
    }
    // Whether the damage changed what the guarded tables read as (unreadable counts as changed).
    let mut derived_changed = true;
    let mut audit_changed = true;
    let seen = match SledStore::open(&path) {
        Ok(store) => {
            if let Ok(v) = derived_view(&store) {
                derived_changed = !close(&v, &g.derived);
            }
            if let Ok(v) = audit_view(&store) {
                audit_changed = v != g.audit;
            }
            let seen = exercise(&store);
            store
                .close()
                .map_err(|e| TestCaseError::fail(format!("close: {e}")))?;
            seen
        }
        Err(e @ (StoreError::Corrupt { .. } | StoreError::Open { .. })) => Seen {
            corrupt: vec![format!("open: {e}")],
            ..Seen::default()
        },
        Err(e) => Seen {
            unexpected: vec![format!("open: {e:?}")],
            ..Seen::default()
        },
    };
    prop_assert!(
        seen.unexpected.is_empty(),
        "tree {tree} key {} damaged by {how:?}: {:?}",
        hex::encode(key),
        seen.unexpected
    );
    let (changed, guarded) = if DERIVED.contains(&tree.as_str()) {
        (derived_changed, true)
    } else if tree == AUDIT {
        (audit_changed, true)
    } else if tree == TASKS {
        (changed, true)
    } else {
        (changed, false)
    };
    if changed {
        let mut t = tally().lock().expect("tally");
        let entry = t.entry(tree.clone()).or_default();
        entry.0 += 1;
        entry.1 += u64::from(seen.detected());
        prop_assert!(
            !guarded || seen.detected(),
            "damage to tree {tree} key {} went unnoticed ({how:?}): {seen:?}",
            hex::encode(key)
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(48))]

    #[test]
    fn damaged_records_are_reported_never_panics(
        index in any::<usize>(),
        how in damage(),
    ) {
        check_damage(index, &how)?;
    }
}

#[test]
fn every_tree_survives_each_kind_of_damage() {
    // A deterministic sweep: the first record of every tree, each kind of damage.
    let g = golden();
    let mut firsts: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, (tree, _, _)) in g.records.iter().enumerate() {
        firsts.entry(tree.as_str()).or_insert(i);
    }
    assert!(
        firsts.len() >= 15,
        "the workload fills most trees: {firsts:?}"
    );
    let kinds = [
        Damage::Replace(Vec::new()),
        Damage::FlipBits(vec![13]),
        Damage::Truncate(7),
        Damage::Retag(2),
        Damage::Reshape(Value::Array(Vec::new())),
    ];
    for index in firsts.values() {
        for how in &kinds {
            check_damage(*index, how).unwrap_or_else(|e| panic!("{e}"));
        }
    }
    if std::env::var_os("LIFTLAB_FUZZ_REPORT").is_some() {
        eprintln!("tree: damaging edits / detected");
        for (tree, (n, d)) in tally().lock().expect("tally").iter() {
            eprintln!("{tree}: {n} / {d}");
        }
    }
}

/// Opens the raw sled database of a closed store, waiting while sled still holds its lock
/// file for a moment after the store closed.
fn open_raw(path: &std::path::Path) -> sled::Db {
    let mut tries = 0;
    loop {
        match sled::open(path) {
            Ok(db) => return db,
            Err(sled::Error::Io(e)) if e.to_string().contains("lock") && tries < 100 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(e) => panic!("the raw database opens: {e:?}"),
        }
    }
}
