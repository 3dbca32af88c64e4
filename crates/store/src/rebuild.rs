//! Rebuilding unit rows, aggregates, counters and the task index from the primary records.
//!
//! Everything derived is a fold of the logs: replaying each experiment's outcomes in log order
//! through `liftlab_domain::fold` (with its current spec) must give the live unit rows,
//! aggregates and counters, and counting its assignments must give the live assignment
//! counts. The `tasks` index (task id → unit id) is each assignment's own task id (unless it
//! is the unit's own id, which needs no entry) plus every task a returning unit brought
//! later, which the audit chain records as `task_bound`; so
//! rebuild reads the chain's records (without verifying it: that is `verify()`'s job, and a
//! chain that lost a `task_bound` record makes its task show up here as an extra entry).
//! Bandit states and drift monitors are not rebuilt: they depend on when each recomputation
//! happened, which the audit chain records.

use std::collections::{BTreeMap, HashMap, HashSet};

use liftlab_domain::record::CounterStep;
use liftlab_domain::{fold, Assignment, MetricAggregate, UnitRow};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::codec::{decode, KeyReader};
use crate::error::{Result, StoreError};
use crate::kv::{atomically, scan_as, RawWrites, Scan, Writes};
use crate::ops::{self, keys};
use crate::records::{
    ArmCounters, AssignmentCount, AuditKind, Mismatch, RebuildMode, RebuildReport, TaskBinding,
};
use crate::tree::TreeId;

/// The relative tolerance within which rebuilt numbers equal live ones.
pub(crate) const TOLERANCE: f64 = 1e-9;

/// Is `a` equal to `b` within [`TOLERANCE`], relative to the larger magnitude (at least 1)?
fn close(a: f64, b: f64) -> bool {
    let scale = a.abs().max(b.abs()).max(1.0);
    (a - b).abs() <= TOLERANCE * scale
}

/// Are two JSON documents equal, numbers compared with [`close`]?
pub(crate) fn json_close(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => close(x, y),
            _ => x == y,
        },
        (Value::Array(xs), Value::Array(ys)) => {
            xs.len() == ys.len() && xs.iter().zip(ys).all(|(x, y)| json_close(x, y))
        }
        (Value::Object(xs), Value::Object(ys)) => {
            xs.len() == ys.len()
                && xs
                    .iter()
                    .all(|(k, x)| ys.get(k).is_some_and(|y| json_close(x, y)))
        }
        _ => a == b,
    }
}

/// What one experiment's logs fold into.
#[derive(Default)]
struct Derived {
    rows: BTreeMap<Vec<u8>, UnitRow>,
    aggregates: BTreeMap<Vec<u8>, MetricAggregate>,
    counters: BTreeMap<Vec<u8>, ArmCounters>,
    counts: BTreeMap<Vec<u8>, AssignmentCount>,
    /// `tasks` key → unit id.
    tasks: BTreeMap<Vec<u8>, String>,
}

/// The task bindings of returning units that the audit chain records, per experiment, in
/// chain order. An unreadable record is `Corrupt`: repairing the index without it could
/// drop a binding that is really there.
fn task_bindings(src: &dyn Scan) -> Result<HashMap<String, Vec<TaskBinding>>> {
    let mut out: HashMap<String, Vec<TaskBinding>> = HashMap::new();
    for entry in src.scan_prefix(TreeId::Audit, &[]) {
        let (key, value) = entry?;
        let block: crate::audit::Block = decode(TreeId::Audit, &key, &value)?;
        for record in block {
            if record.kind != AuditKind::TaskBound {
                continue;
            }
            let binding: TaskBinding = serde_json::from_str(&record.payload).map_err(|e| {
                StoreError::corrupt(
                    TreeId::Audit.name(),
                    &key,
                    format!(
                        "the task_bound payload of record {} cannot be read: {e}",
                        record.seq
                    ),
                )
            })?;
            out.entry(record.experiment).or_default().push(binding);
        }
    }
    Ok(out)
}

/// The task id in a `tasks` key, for a mismatch's description.
fn describe_task(key: &[u8]) -> String {
    let mut r = KeyReader::new(TreeId::Tasks, key);
    match r.str().and_then(|_experiment| r.str()) {
        Ok(task) => format!("task {task:?}"),
        Err(_) => format!("key {}", hex::encode(key)),
    }
}

fn derive(
    src: &dyn Scan,
    exp: &str,
    bindings: &[TaskBinding],
    report: &mut RebuildReport,
) -> Result<Derived> {
    let current = ops::experiment(src, exp)?;
    let spec = &current.spec;
    let mut out = Derived::default();
    let assignments: Vec<Assignment> = scan_as(src, TreeId::Assignments, &keys::exp(exp))?;
    // The live index's keys, read once: an older build's entry for a unit's own id is kept.
    let mut live_tasks = HashSet::new();
    for entry in src.scan_prefix(TreeId::Tasks, &keys::exp(exp)) {
        live_tasks.insert(entry?.0);
    }
    let mut by_unit = HashMap::with_capacity(assignments.len());
    for a in assignments {
        report.assignments += 1;
        if a.in_experiment {
            out.counts
                .entry(keys::assignment_count(exp, a.epoch, a.period, &a.arm))
                .or_insert_with(|| AssignmentCount {
                    period: a.period,
                    arm: a.arm.clone(),
                    count: 0,
                })
                .count += 1;
        }
        // A task id is bound once (a second claim is a conflict), so first come is the owner.
        // A unit's own id as its task needs no entry; one written by an older build is
        // expected to be right, not reported as extra.
        let key = keys::exp_id(exp, &a.task_id);
        if a.task_id != a.unit_id || live_tasks.contains(&key) {
            out.tasks.entry(key).or_insert_with(|| a.unit_id.clone());
        }
        by_unit.insert(a.unit_id.clone(), a);
    }
    for b in bindings {
        out.tasks
            .entry(keys::exp_id(exp, &b.task_id))
            .or_insert_with(|| b.unit_id.clone());
    }
    for entry in src.scan_prefix(TreeId::Outcomes, &keys::exp(exp)) {
        let (key, value) = entry?;
        for outcome in ops::decode_outcomes(&key, &value)? {
            report.outcomes += 1;
            let assignment = by_unit.get(&outcome.unit_id).ok_or_else(|| {
                StoreError::corrupt(
                    TreeId::Outcomes.name(),
                    &key,
                    format!("the outcome's unit {:?} has no assignment", outcome.unit_id),
                )
            })?;
            let row_key = keys::unit_row(exp, outcome.epoch, &outcome.unit_id);
            let row = out.rows.remove(&row_key);
            let folded = fold(spec, assignment, row, &outcome);
            out.rows.insert(row_key, folded.row);
            for delta in &folded.deltas {
                out.aggregates
                    .entry(keys::aggregate(exp, &delta.key))
                    .or_default()
                    .apply(delta);
            }
            if assignment.in_experiment {
                let counters = out
                    .counters
                    .entry(keys::counter(exp, outcome.epoch, &outcome.arm))
                    .or_insert_with(|| ArmCounters {
                        arm: outcome.arm.clone(),
                        ..ArmCounters::default()
                    });
                counters.step(&CounterStep {
                    arm: outcome.arm.clone(),
                    new_unit: folded.new_unit,
                    handled_by: outcome.handled_by,
                });
            }
        }
    }
    Ok(out)
}

/// Compares one table of one experiment with its rebuilt entries; returns the keys to rewrite.
fn compare<T: Serialize + DeserializeOwned>(
    src: &dyn Scan,
    exp: &str,
    table: TreeId,
    rebuilt: &BTreeMap<Vec<u8>, T>,
    describe: impl Fn(&[u8], &T) -> String,
    mismatches: &mut Vec<Mismatch>,
) -> Result<RawWrites> {
    let mut live = BTreeMap::new();
    for entry in src.scan_prefix(table, &keys::exp(exp)) {
        let (k, v) = entry?;
        live.insert(k, v);
    }
    let mut fixes = Vec::new();
    let mut record = |entry: String, live: String, rebuilt: String| {
        mismatches.push(Mismatch {
            experiment: exp.to_string(),
            table: table.name().to_string(),
            entry,
            live,
            rebuilt,
        });
    };
    for (key, value) in rebuilt {
        let want = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
        let encoded = crate::codec::encode(table, value);
        match live.remove(key) {
            None => {
                record(describe(key, value), "null".to_string(), want.to_string());
                fixes.push((key.clone(), Some(encoded)));
            }
            Some(bytes) => match decode::<T>(table, key, &bytes) {
                Ok(have) => {
                    let have = serde_json::to_value(&have).unwrap_or(serde_json::Value::Null);
                    if !json_close(&have, &want) {
                        record(describe(key, value), have.to_string(), want.to_string());
                        fixes.push((key.clone(), Some(encoded)));
                    }
                }
                Err(e) => {
                    record(
                        describe(key, value),
                        format!("{:?}", e.to_string()),
                        want.to_string(),
                    );
                    fixes.push((key.clone(), Some(encoded)));
                }
            },
        }
    }
    for (key, bytes) in live {
        let (entry, shown) = match decode::<T>(table, &key, &bytes) {
            Ok(have) => (
                describe(&key, &have),
                serde_json::to_value(&have)
                    .unwrap_or(serde_json::Value::Null)
                    .to_string(),
            ),
            Err(e) => (
                format!("key {}", hex::encode(&key)),
                format!("{:?}", e.to_string()),
            ),
        };
        record(entry, shown, "null".to_string());
        fixes.push((key, None));
    }
    Ok(fixes)
}

/// Rebuilds every experiment; in [`RebuildMode::Replace`] the fixes join `batch`.
pub(crate) fn rebuild(
    src: &dyn Scan,
    batch: &mut Writes,
    mode: RebuildMode,
) -> Result<RebuildReport> {
    let mut report = RebuildReport {
        experiments: 0,
        outcomes: 0,
        assignments: 0,
        mismatches: Vec::new(),
        replaced: false,
    };
    let mut fixes: Vec<(TreeId, RawWrites)> = Vec::new();
    let bindings = task_bindings(src)?;
    for current in ops::experiments(src)? {
        let exp = current.key.as_str();
        report.experiments += 1;
        let bound = bindings.get(exp).map_or(&[][..], Vec::as_slice);
        let derived = derive(src, exp, bound, &mut report)?;
        let m = &mut report.mismatches;
        fixes.push((
            TreeId::Units,
            compare(
                src,
                exp,
                TreeId::Units,
                &derived.rows,
                |_, r| format!("epoch {} unit {:?}", r.epoch, r.unit_id),
                m,
            )?,
        ));
        fixes.push((
            TreeId::Aggregates,
            compare(
                src,
                exp,
                TreeId::Aggregates,
                &derived.aggregates,
                |k, _| match keys::parse_aggregate(k) {
                    Ok(a) => format!(
                        "epoch {} arm {:?} metric {:?} scope {:?}",
                        a.epoch, a.arm, a.metric, a.scope
                    ),
                    Err(_) => format!("key {}", hex::encode(k)),
                },
                m,
            )?,
        ));
        fixes.push((
            TreeId::Counters,
            compare(
                src,
                exp,
                TreeId::Counters,
                &derived.counters,
                |_, c| format!("arm {:?}", c.arm),
                m,
            )?,
        ));
        fixes.push((
            TreeId::AssignmentCounts,
            compare(
                src,
                exp,
                TreeId::AssignmentCounts,
                &derived.counts,
                |_, c| format!("period {} arm {:?}", c.period, c.arm),
                m,
            )?,
        ));
        fixes.push((
            TreeId::Tasks,
            compare(
                src,
                exp,
                TreeId::Tasks,
                &derived.tasks,
                |k, _| describe_task(k),
                m,
            )?,
        ));
    }
    if mode == RebuildMode::Replace {
        atomically(src.as_source(), batch, |tx| {
            for (tree, entries) in fixes {
                for (key, value) in entries {
                    match value {
                        Some(v) => tx.put_raw(tree, key, v),
                        None => tx.remove(tree, key),
                    }
                }
            }
            Ok(())
        })?;
        report.replaced = true;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_close_tolerates_rounding_but_not_differences() {
        assert!(json_close(
            &json!({"a": [1.0, 2.0]}),
            &json!({"a": [1.0 + 1e-12, 2.0]})
        ));
        assert!(!json_close(
            &json!({"a": [1.0, 2.0]}),
            &json!({"a": [1.0 + 1e-6, 2.0]})
        ));
        assert!(!json_close(&json!({"a": 1}), &json!({"a": 1, "b": 2})));
        assert!(!json_close(&json!({"a": "x"}), &json!({"a": "y"})));
        assert!(json_close(&json!(1e12), &json!(1e12 + 1e-1)));
    }
}
