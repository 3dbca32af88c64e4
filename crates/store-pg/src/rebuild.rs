//! `rebuild` on PostgreSQL: replay each experiment's outcome log through the domain's fold and compare with (or replace) the live views.
//!
//! The same derivation as the sled store's: unit rows, aggregates and counters from the
//! outcome log in log order under the current spec; assignment counts from the assignments;
//! the task index from each assignment's own task id plus the audit chain's `task_bound`
//! records. A check runs in one read-only snapshot; a replace runs per experiment with its
//! row locked `FOR UPDATE`, so no outcome of it commits meanwhile.

use std::collections::{BTreeMap, HashMap};

use liftlab_domain::record::CounterStep;
use liftlab_domain::{fold, Assignment, MetricAggregate, UnitRow};
use liftlab_store::{
    ArmCounters, AssignmentCount, AuditKind, Mismatch, RebuildMode, RebuildReport, Result,
    TaskBinding,
};
use postgres::{Client, IsolationLevel, Transaction};
use serde::Serialize;

use crate::error::{corrupt, decode, encode, io};
use crate::read;

/// The relative tolerance within which rebuilt numbers equal live ones.
const TOLERANCE: f64 = 1e-9;

fn close(a: f64, b: f64) -> bool {
    let scale = a.abs().max(b.abs()).max(1.0);
    (a - b).abs() <= TOLERANCE * scale
}

/// Are two JSON documents equal, numbers compared with [`close`]?
fn json_close(a: &serde_json::Value, b: &serde_json::Value) -> bool {
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

/// One experiment's views, each entry described as a mismatch names it.
#[derive(Default)]
struct Views {
    units: BTreeMap<String, UnitRow>,
    aggregates: BTreeMap<String, MetricAggregate>,
    counters: BTreeMap<String, ArmCounters>,
    counts: BTreeMap<String, AssignmentCount>,
    tasks: BTreeMap<String, String>,
}

fn q(
    tx: &mut Transaction<'_>,
    context: &'static str,
    sql: &str,
    params: &[&(dyn postgres::types::ToSql + Sync)],
) -> Result<Vec<postgres::Row>> {
    tx.query(sql, params).map_err(|e| io(context, e))
}

/// The task bindings the audit chain records, per experiment, in chain order.
fn task_bindings(tx: &mut Transaction<'_>) -> Result<HashMap<String, Vec<TaskBinding>>> {
    let rows = q(
        tx,
        "reading task bindings",
        "SELECT experiment, seq, payload FROM audit WHERE kind = $1 ORDER BY seq",
        &[&AuditKind::TaskBound.as_str()],
    )?;
    let mut out: HashMap<String, Vec<TaskBinding>> = HashMap::new();
    for r in &rows {
        let seq: i64 = r.get(1);
        let binding: TaskBinding = decode("audit", &seq.to_string(), r.get(2))?;
        out.entry(r.get(0)).or_default().push(binding);
    }
    Ok(out)
}

fn live(tx: &mut Transaction<'_>, exp: &str) -> Result<Views> {
    let mut v = Views::default();
    let epochs: Vec<i64> = q(
        tx,
        "reading epochs",
        "SELECT epoch FROM epochs WHERE experiment = $1 ORDER BY epoch",
        &[&exp],
    )?
    .iter()
    .map(|r| r.get(0))
    .collect();
    for epoch in epochs {
        let epoch = u64::try_from(epoch).unwrap_or(0);
        for row in read::unit_rows(tx, exp, epoch)? {
            v.units
                .insert(format!("epoch {} unit {:?}", row.epoch, row.unit_id), row);
        }
        for (key, a) in read::aggregates(tx, exp, epoch)? {
            v.aggregates.insert(describe_agg(&key), a);
        }
        for c in read::arm_counters(tx, exp, epoch)? {
            v.counters
                .insert(format!("epoch {epoch} arm {:?}", c.arm), c);
        }
        for c in read::assignment_counts(tx, exp, epoch)? {
            v.counts.insert(
                format!("epoch {epoch} period {} arm {:?}", c.period, c.arm),
                c,
            );
        }
    }
    for r in q(
        tx,
        "reading tasks",
        "SELECT task_id, unit_id FROM tasks WHERE experiment = $1",
        &[&exp],
    )? {
        v.tasks
            .insert(format!("task {:?}", r.get::<_, String>(0)), r.get(1));
    }
    Ok(v)
}

fn describe_agg(a: &liftlab_domain::AggKey) -> String {
    format!(
        "epoch {} arm {:?} metric {:?} scope {:?}",
        a.epoch, a.arm, a.metric, a.scope
    )
}

fn derive(
    tx: &mut Transaction<'_>,
    exp: &str,
    bindings: &[TaskBinding],
    report: &mut RebuildReport,
) -> Result<(Views, Vec<Assignment>)> {
    let current = read::experiment(tx, exp)?;
    let spec = &current.spec;
    let mut out = Views::default();
    let mut by_unit: HashMap<String, Assignment> = HashMap::new();
    let mut assignments = Vec::new();
    for r in q(
        tx,
        "reading assignments",
        "SELECT unit_id, body FROM assignments WHERE experiment = $1",
        &[&exp],
    )? {
        let a: Assignment = decode("assignments", r.get(0), r.get(1))?;
        report.assignments += 1;
        if a.in_experiment {
            out.counts
                .entry(format!(
                    "epoch {} period {} arm {:?}",
                    a.epoch, a.period, a.arm
                ))
                .or_insert_with(|| AssignmentCount {
                    period: a.period,
                    arm: a.arm.clone(),
                    count: 0,
                })
                .count += 1;
        }
        if a.task_id != a.unit_id {
            out.tasks
                .entry(format!("task {:?}", a.task_id))
                .or_insert_with(|| a.unit_id.clone());
        }
        by_unit.insert(a.unit_id.clone(), a.clone());
        assignments.push(a);
    }
    for b in bindings {
        out.tasks
            .entry(format!("task {:?}", b.task_id))
            .or_insert_with(|| b.unit_id.clone());
    }
    let mut rows: HashMap<(u64, String), UnitRow> = HashMap::new();
    let mut aggregates: BTreeMap<liftlab_domain::AggKey, MetricAggregate> = BTreeMap::new();
    let mut after = 0i64;
    loop {
        let page = read::outcome_page(tx, exp, after, 10_000)?;
        let Some((last, _)) = page.last() else {
            break;
        };
        after = *last;
        for (seq, outcome) in page {
            report.outcomes += 1;
            let assignment = by_unit.get(&outcome.unit_id).ok_or_else(|| {
                corrupt(
                    "outcomes",
                    &seq.to_string(),
                    format!("the outcome's unit {:?} has no assignment", outcome.unit_id),
                )
            })?;
            let key = (outcome.epoch, outcome.unit_id.clone());
            let folded = fold(spec, assignment, rows.remove(&key), &outcome);
            rows.insert(key, folded.row);
            for delta in &folded.deltas {
                aggregates
                    .entry(delta.key.clone())
                    .or_default()
                    .apply(delta);
            }
            if assignment.in_experiment {
                out.counters
                    .entry(format!("epoch {} arm {:?}", outcome.epoch, outcome.arm))
                    .or_insert_with(|| ArmCounters {
                        arm: outcome.arm.clone(),
                        ..ArmCounters::default()
                    })
                    .step(&CounterStep {
                        arm: outcome.arm.clone(),
                        new_unit: folded.new_unit,
                        handled_by: outcome.handled_by,
                    });
            }
        }
    }
    for ((epoch, unit), row) in rows {
        out.units
            .insert(format!("epoch {epoch} unit {unit:?}"), row);
    }
    for (key, a) in aggregates {
        out.aggregates.insert(describe_agg(&key), a);
    }
    Ok((out, assignments))
}

fn compare<T: Serialize>(
    exp: &str,
    table: &str,
    live: &BTreeMap<String, T>,
    rebuilt: &BTreeMap<String, T>,
    out: &mut Vec<Mismatch>,
) {
    let json = |v: &T| serde_json::to_value(v).unwrap_or(serde_json::Value::Null);
    let mut push = |entry: &str, live: String, rebuilt: String| {
        out.push(Mismatch {
            experiment: exp.to_string(),
            table: table.to_string(),
            entry: entry.to_string(),
            live,
            rebuilt,
        });
    };
    for (entry, want) in rebuilt {
        let want = json(want);
        match live.get(entry) {
            None => push(entry, "null".into(), want.to_string()),
            Some(have) => {
                let have = json(have);
                if !json_close(&have, &want) {
                    push(entry, have.to_string(), want.to_string());
                }
            }
        }
    }
    for (entry, have) in live {
        if !rebuilt.contains_key(entry) {
            push(entry, json(have).to_string(), "null".into());
        }
    }
}

/// Replaces an experiment's derived rows with the rebuilt ones (its row is locked).
fn replace(
    tx: &mut Transaction<'_>,
    exp: &str,
    v: &Views,
    assignments: &[Assignment],
) -> Result<()> {
    for table in [
        "units",
        "aggregates",
        "aggregate_deltas",
        "counters",
        "counter_deltas",
        "assignment_counts",
        "assignment_count_deltas",
        "tasks",
    ] {
        tx.execute(
            &format!("DELETE FROM {table} WHERE experiment = $1"),
            &[&exp],
        )
        .map_err(|e| io("clearing a view", e))?;
    }
    let i = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    for row in v.units.values() {
        tx.execute(
            "INSERT INTO units (experiment, epoch, unit_id, body) VALUES ($1, $2, $3, $4)",
            &[&exp, &i(row.epoch), &row.unit_id, &encode("unit row", row)?],
        )
        .map_err(|e| io("storing a unit row", e))?;
    }
    // Aggregates again by key, from the unit rows' fold (the descriptions are not keys).
    let spec = read::experiment(tx, exp)?.spec;
    let by_unit: HashMap<&str, &Assignment> = assignments
        .iter()
        .map(|a| (a.unit_id.as_str(), a))
        .collect();
    let mut aggregates: BTreeMap<liftlab_domain::AggKey, MetricAggregate> = BTreeMap::new();
    let mut rows: HashMap<(u64, String), UnitRow> = HashMap::new();
    let mut after = 0i64;
    loop {
        let page = read::outcome_page(tx, exp, after, 10_000)?;
        let Some((last, _)) = page.last() else {
            break;
        };
        after = *last;
        for (_, outcome) in page {
            let Some(a) = by_unit.get(outcome.unit_id.as_str()) else {
                continue;
            };
            let key = (outcome.epoch, outcome.unit_id.clone());
            let folded = fold(&spec, a, rows.remove(&key), &outcome);
            rows.insert(key, folded.row);
            for delta in &folded.deltas {
                aggregates
                    .entry(delta.key.clone())
                    .or_default()
                    .apply(delta);
            }
        }
    }
    for (key, a) in &aggregates {
        tx.execute(
            "INSERT INTO aggregates (experiment, epoch, key, body) VALUES ($1, $2, $3, $4)",
            &[
                &exp,
                &i(key.epoch),
                &encode("aggregate key", key)?,
                &encode("aggregate", a)?,
            ],
        )
        .map_err(|e| io("storing an aggregate", e))?;
    }
    for (entry, c) in &v.counters {
        let epoch: u64 = entry
            .strip_prefix("epoch ")
            .and_then(|s| s.split(' ').next())
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        tx.execute(
            "INSERT INTO counters (experiment, epoch, arm, units, outcomes, handled_by)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &exp,
                &i(epoch),
                &c.arm,
                &i(c.units),
                &i(c.outcomes),
                &encode("handled_by counts", &c.handled_by)?,
            ],
        )
        .map_err(|e| io("storing counters", e))?;
    }
    let mut counts: BTreeMap<(u64, u64, String), u64> = BTreeMap::new();
    for a in assignments.iter().filter(|a| a.in_experiment) {
        *counts
            .entry((a.epoch, a.period, a.arm.clone()))
            .or_insert(0) += 1;
    }
    for ((epoch, period, arm), n) in counts {
        tx.execute(
            "INSERT INTO assignment_counts (experiment, epoch, period, arm, count)
             VALUES ($1, $2, $3, $4, $5)",
            &[&exp, &i(epoch), &i(period), &arm, &i(n)],
        )
        .map_err(|e| io("storing an assignment count", e))?;
    }
    for (entry, unit) in &v.tasks {
        let task: String = entry
            .strip_prefix("task ")
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_default();
        tx.execute(
            "INSERT INTO tasks (experiment, task_id, unit_id) VALUES ($1, $2, $3)",
            &[&exp, &task, unit],
        )
        .map_err(|e| io("storing a task", e))?;
    }
    Ok(())
}

fn check_one(
    tx: &mut Transaction<'_>,
    exp: &str,
    bindings: &[TaskBinding],
    report: &mut RebuildReport,
) -> Result<(Views, Vec<Assignment>, usize)> {
    let (rebuilt, assignments) = derive(tx, exp, bindings, report)?;
    let have = live(tx, exp)?;
    let before = report.mismatches.len();
    let m = &mut report.mismatches;
    compare(exp, "units", &have.units, &rebuilt.units, m);
    compare(exp, "aggregates", &have.aggregates, &rebuilt.aggregates, m);
    compare(exp, "counters", &have.counters, &rebuilt.counters, m);
    compare(exp, "assignment_counts", &have.counts, &rebuilt.counts, m);
    compare(exp, "tasks", &have.tasks, &rebuilt.tasks, m);
    let found = report.mismatches.len() - before;
    Ok((rebuilt, assignments, found))
}

pub(crate) fn rebuild(client: &mut Client, mode: RebuildMode) -> Result<RebuildReport> {
    let mut report = RebuildReport {
        experiments: 0,
        outcomes: 0,
        assignments: 0,
        mismatches: Vec::new(),
        replaced: false,
    };
    let mut tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(mode == RebuildMode::Check)
        .start()
        .map_err(|e| io("starting a rebuild", e))?;
    let bindings = task_bindings(&mut tx)?;
    let keys: Vec<String> = read::experiments(&mut tx)?
        .into_iter()
        .map(|v| v.key)
        .collect();
    if mode == RebuildMode::Check {
        for exp in &keys {
            report.experiments += 1;
            let bound = bindings.get(exp).map_or(&[][..], Vec::as_slice);
            check_one(&mut tx, exp, bound, &mut report)?;
        }
        tx.commit().map_err(|e| io("ending a rebuild", e))?;
        return Ok(report);
    }
    tx.commit().map_err(|e| io("ending a rebuild", e))?;
    for exp in &keys {
        report.experiments += 1;
        let mut tx = client
            .transaction()
            .map_err(|e| io("starting a rebuild", e))?;
        tx.query(
            "SELECT 1 FROM experiments WHERE experiment = $1 FOR UPDATE",
            &[exp],
        )
        .map_err(|e| io("locking an experiment", e))?;
        let bound = bindings.get(exp).map_or(&[][..], Vec::as_slice);
        let (rebuilt, assignments, found) = check_one(&mut tx, exp, bound, &mut report)?;
        if found > 0 {
            replace(&mut tx, exp, &rebuilt, &assignments)?;
        }
        tx.commit().map_err(|e| io("committing a rebuild", e))?;
    }
    report.replaced = true;
    Ok(report)
}
