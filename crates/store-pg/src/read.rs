//! Reads over committed rows, each view in one statement (so a compaction running meanwhile is seen whole or not at all), and the compaction itself.
//!
//! Views kept as base + delta rows (aggregates, counters, assignment counts) are read as one
//! `UNION ALL` and merged here. The compactor folds an experiment's delta rows into its base
//! rows in one transaction; one compactor per experiment runs at a time (a row of
//! `compactions` held `FOR UPDATE SKIP LOCKED`).
//!
//! Results come in the sled store's key order: numbers numerically, strings by length, then
//! bytes (its keys are length-prefixed).

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};

use liftlab_domain::drift::DriftMonitor;
use liftlab_domain::thompson::BanditState;
use liftlab_domain::{
    AggDelta, AggKey, AggScope, AllocationPeriod, Assignment, ExperimentVersion, HandledBy,
    MetricAggregate, Outcome, UnitRow,
};
use liftlab_store::{ArmCounters, AssignmentCount, AuditRecord, Epoch, StoreError};
use postgres::{GenericClient, Row};

use crate::audit::{Stored, COLUMNS};
use crate::error::{corrupt, decode, io, no_experiment, pg, Fail};
use crate::tx::Change;

type Result<T, E = StoreError> = std::result::Result<T, E>;

fn i64_of(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn u64_of(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// Strings in the sled store's key order: by length, then bytes.
pub(crate) fn key_cmp(a: &str, b: &str) -> Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

fn scope_rank(s: &AggScope) -> u8 {
    match s {
        AggScope::Overall => 0,
        AggScope::Segment { .. } => 1,
        AggScope::Day(_) => 2,
        AggScope::Paired => 3,
        AggScope::PairSum => 4,
        AggScope::Hour(_) => 5,
        AggScope::Period(_) => 6,
        AggScope::PeriodPaired(_) => 7,
        AggScope::PeriodPairSum(_) => 8,
    }
}

/// Aggregate keys in the sled store's order.
pub(crate) fn agg_cmp(a: &AggKey, b: &AggKey) -> Ordering {
    a.epoch
        .cmp(&b.epoch)
        .then_with(|| key_cmp(&a.arm, &b.arm))
        .then_with(|| key_cmp(&a.metric, &b.metric))
        .then_with(|| scope_rank(&a.scope).cmp(&scope_rank(&b.scope)))
        .then_with(|| match (&a.scope, &b.scope) {
            (
                AggScope::Segment {
                    attribute: x,
                    value: v,
                },
                AggScope::Segment {
                    attribute: y,
                    value: w,
                },
            ) => key_cmp(x, y).then_with(|| key_cmp(v, w)),
            _ => a.scope.cmp(&b.scope),
        })
}

fn q(
    client: &mut impl GenericClient,
    context: &'static str,
    sql: &str,
    params: &[&(dyn postgres::types::ToSql + Sync)],
) -> Result<Vec<Row>> {
    client.query(sql, params).map_err(|e| io(context, e))
}

pub(crate) fn require(client: &mut impl GenericClient, exp: &str) -> Result<()> {
    let rows = q(
        client,
        "reading an experiment",
        "SELECT 1 FROM experiments WHERE experiment = $1",
        &[&exp],
    )?;
    if rows.is_empty() {
        return Err(no_experiment(exp));
    }
    Ok(())
}

pub(crate) fn experiment(client: &mut impl GenericClient, key: &str) -> Result<ExperimentVersion> {
    let rows = q(
        client,
        "reading an experiment",
        "SELECT current FROM experiments WHERE experiment = $1",
        &[&key],
    )?;
    match rows.first() {
        Some(r) => decode("experiments", key, r.get(0)),
        None => Err(no_experiment(key)),
    }
}

pub(crate) fn experiment_version(
    client: &mut impl GenericClient,
    key: &str,
    version: u64,
) -> Result<ExperimentVersion> {
    let rows = q(
        client,
        "reading a version",
        "SELECT body FROM versions WHERE experiment = $1 AND version = $2",
        &[&key, &i64_of(version)],
    )?;
    match rows.first() {
        Some(r) => decode("versions", key, r.get(0)),
        None => Err(StoreError::NotFound {
            what: format!("version {version} of experiment {key:?}"),
        }),
    }
}

/// Every row's JSON `body` of an experiment's table, in `order`, after checking it exists.
fn bodies<T: serde::de::DeserializeOwned>(
    client: &mut impl GenericClient,
    table: &'static str,
    exp: &str,
    order: &str,
) -> Result<Vec<T>> {
    require(client, exp)?;
    let rows = q(
        client,
        "reading rows",
        &format!("SELECT body FROM {table} WHERE experiment = $1 ORDER BY {order}"),
        &[&exp],
    )?;
    rows.iter().map(|r| decode(table, exp, r.get(0))).collect()
}

pub(crate) fn versions(
    client: &mut impl GenericClient,
    key: &str,
) -> Result<Vec<ExperimentVersion>> {
    bodies(client, "versions", key, "version")
}

pub(crate) fn epochs(client: &mut impl GenericClient, key: &str) -> Result<Vec<Epoch>> {
    bodies(client, "epochs", key, "epoch")
}

pub(crate) fn periods(client: &mut impl GenericClient, key: &str) -> Result<Vec<AllocationPeriod>> {
    bodies(client, "periods", key, "period")
}

pub(crate) fn experiments(client: &mut impl GenericClient) -> Result<Vec<ExperimentVersion>> {
    let rows = q(
        client,
        "listing experiments",
        "SELECT experiment, current FROM experiments",
        &[],
    )?;
    let mut all: Vec<ExperimentVersion> = rows
        .iter()
        .map(|r| decode("experiments", r.get(0), r.get(1)))
        .collect::<Result<_>>()?;
    all.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(all)
}

pub(crate) fn assignment(
    client: &mut impl GenericClient,
    exp: &str,
    unit: &str,
) -> Result<Option<Assignment>> {
    let rows = q(
        client,
        "reading an assignment",
        "SELECT body FROM assignments WHERE experiment = $1 AND unit_id = $2",
        &[&exp, &unit],
    )?;
    rows.first()
        .map(|r| decode("assignments", unit, r.get(0)))
        .transpose()
}

pub(crate) fn assignment_by_task(
    client: &mut impl GenericClient,
    exp: &str,
    task: &str,
) -> Result<Option<Assignment>> {
    // One statement: the unit of the task's own id, or the unit the index names.
    let rows = q(
        client,
        "reading an assignment by task",
        "SELECT a.body, 0 AS pref FROM assignments a
          WHERE a.experiment = $1 AND a.unit_id = $2
         UNION ALL
         SELECT coalesce(a.body, ''), 1 FROM tasks t
           LEFT JOIN assignments a ON a.experiment = t.experiment AND a.unit_id = t.unit_id
          WHERE t.experiment = $1 AND t.task_id = $2
         ORDER BY 2",
        &[&exp, &task],
    )?;
    for r in &rows {
        let body: String = r.get(0);
        let pref: i32 = r.get(1);
        if pref == 1 && body.is_empty() {
            return Err(corrupt(
                "tasks",
                task,
                "the task points at a unit which has no assignment",
            ));
        }
        let a: Assignment = decode("assignments", task, &body)?;
        if pref == 1 || a.task_id == task {
            return Ok(Some(a));
        }
    }
    Ok(None)
}

pub(crate) fn current_period(
    client: &mut impl GenericClient,
    exp: &str,
) -> Result<AllocationPeriod> {
    let rows = q(
        client,
        "reading the current period",
        "SELECT p.body FROM experiments e
           LEFT JOIN periods p ON p.experiment = e.experiment
                AND p.period = (e.state::json->>'period')::bigint
          WHERE e.experiment = $1",
        &[&exp],
    )?;
    let Some(row) = rows.first() else {
        return Err(no_experiment(exp));
    };
    match row.get::<_, Option<String>>(0) {
        Some(body) => decode("periods", exp, &body),
        None => Err(corrupt(
            "periods",
            exp,
            "the current allocation period is missing",
        )),
    }
}

/// Applies stored changes `(old, new, propensity)` to an aggregate.
fn apply_changes(a: &mut MetricAggregate, key: &AggKey, changes: &[Change]) {
    for (old, new, propensity) in changes {
        a.apply(&AggDelta {
            key: key.clone(),
            old: *old,
            new: *new,
            propensity: *propensity,
        });
    }
}

/// One key's base row (`body`, id 0) and delta rows (`changes`, by id), folded.
pub(crate) fn fold_aggregate(
    key_text: &str,
    rows: &[Row],
) -> Result<Option<MetricAggregate>, Fail> {
    if rows.is_empty() {
        return Ok(None);
    }
    let key: AggKey = decode("aggregates", key_text, key_text)?;
    let mut a = MetricAggregate::default();
    for r in rows {
        if let Some(body) = r.get::<_, Option<String>>(0) {
            a = decode("aggregates", key_text, &body)?;
        }
        if let Some(changes) = r.get::<_, Option<String>>(1) {
            let changes: Vec<Change> = decode("aggregate_deltas", key_text, &changes)?;
            apply_changes(&mut a, &key, &changes);
        }
    }
    Ok(Some(a))
}

pub(crate) fn aggregates(
    client: &mut impl GenericClient,
    exp: &str,
    epoch: u64,
) -> Result<Vec<(AggKey, MetricAggregate)>> {
    require(client, exp)?;
    let rows = q(
        client,
        "reading aggregates",
        "SELECT key, body, NULL::text AS changes, 0::bigint AS id FROM aggregates
          WHERE experiment = $1 AND epoch = $2
         UNION ALL
         SELECT key, NULL::text, changes, id FROM aggregate_deltas
          WHERE experiment = $1 AND epoch = $2
         ORDER BY 1, 4",
        &[&exp, &i64_of(epoch)],
    )?;
    let mut out: BTreeMap<String, (AggKey, MetricAggregate)> = BTreeMap::new();
    for r in &rows {
        let text: String = r.get(0);
        if !out.contains_key(&text) {
            let key: AggKey = decode("aggregates", &text, &text)?;
            out.insert(text.clone(), (key, MetricAggregate::default()));
        }
        let (key, a) = out.get_mut(&text).expect("inserted above");
        if let Some(body) = r.get::<_, Option<String>>(1) {
            *a = decode("aggregates", &text, &body)?;
        }
        if let Some(changes) = r.get::<_, Option<String>>(2) {
            let changes: Vec<Change> = decode("aggregate_deltas", &text, &changes)?;
            apply_changes(a, key, &changes);
        }
    }
    let mut all: Vec<(AggKey, MetricAggregate)> = out.into_values().collect();
    all.sort_by(|a, b| agg_cmp(&a.0, &b.0));
    Ok(all)
}

pub(crate) fn arm_counters(
    client: &mut impl GenericClient,
    exp: &str,
    epoch: u64,
) -> Result<Vec<ArmCounters>> {
    require(client, exp)?;
    let rows = q(
        client,
        "reading counters",
        "SELECT arm, units, outcomes, handled_by FROM counters
          WHERE experiment = $1 AND epoch = $2
         UNION ALL
         SELECT arm, units, outcomes, handled_by FROM counter_deltas
          WHERE experiment = $1 AND epoch = $2",
        &[&exp, &i64_of(epoch)],
    )?;
    let mut by_arm: HashMap<String, ArmCounters> = HashMap::new();
    for r in &rows {
        let arm: String = r.get(0);
        let by: BTreeMap<HandledBy, u64> = decode("counters", &arm, r.get(3))?;
        let c = by_arm.entry(arm.clone()).or_insert_with(|| ArmCounters {
            arm,
            ..ArmCounters::default()
        });
        c.units += u64_of(r.get(1));
        c.outcomes += u64_of(r.get(2));
        for (k, n) in by {
            *c.handled_by.entry(k).or_insert(0) += n;
        }
    }
    let mut all: Vec<ArmCounters> = by_arm.into_values().collect();
    all.sort_by(|a, b| key_cmp(&a.arm, &b.arm));
    Ok(all)
}

pub(crate) fn assignment_counts(
    client: &mut impl GenericClient,
    exp: &str,
    epoch: u64,
) -> Result<Vec<AssignmentCount>> {
    require(client, exp)?;
    let rows = q(
        client,
        "reading assignment counts",
        "SELECT period, arm, sum(count)::bigint FROM (
            SELECT period, arm, count FROM assignment_counts
             WHERE experiment = $1 AND epoch = $2
            UNION ALL
            SELECT period, arm, count FROM assignment_count_deltas
             WHERE experiment = $1 AND epoch = $2) t
          GROUP BY period, arm",
        &[&exp, &i64_of(epoch)],
    )?;
    let mut all: Vec<AssignmentCount> = rows
        .iter()
        .map(|r| AssignmentCount {
            period: u64_of(r.get(0)),
            arm: r.get(1),
            count: u64_of(r.get(2)),
        })
        .collect();
    all.sort_by(|a, b| {
        a.period
            .cmp(&b.period)
            .then_with(|| key_cmp(&a.arm, &b.arm))
    });
    Ok(all)
}

pub(crate) fn unit_rows(
    client: &mut impl GenericClient,
    exp: &str,
    epoch: u64,
) -> Result<Vec<UnitRow>> {
    require(client, exp)?;
    let rows = q(
        client,
        "reading unit rows",
        "SELECT unit_id, body FROM units WHERE experiment = $1 AND epoch = $2",
        &[&exp, &i64_of(epoch)],
    )?;
    let mut all: Vec<UnitRow> = rows
        .iter()
        .map(|r| decode("units", r.get(0), r.get(1)))
        .collect::<Result<_>>()?;
    all.sort_by(|a, b| key_cmp(&a.unit_id, &b.unit_id));
    Ok(all)
}

pub(crate) fn bandit_state(
    client: &mut impl GenericClient,
    exp: &str,
) -> Result<Option<BanditState>> {
    require(client, exp)?;
    let rows = q(
        client,
        "reading a bandit",
        "SELECT body FROM bandits WHERE experiment = $1",
        &[&exp],
    )?;
    rows.first()
        .map(|r| decode("bandits", exp, r.get(0)))
        .transpose()
}

pub(crate) fn drift_monitor(
    client: &mut impl GenericClient,
    exp: &str,
    epoch: u64,
) -> Result<Option<DriftMonitor>> {
    require(client, exp)?;
    let rows = q(
        client,
        "reading a drift monitor",
        "SELECT body FROM drift WHERE experiment = $1 AND epoch = $2",
        &[&exp, &i64_of(epoch)],
    )?;
    rows.first()
        .map(|r| decode("drift", exp, r.get(0)))
        .transpose()
}

pub(crate) fn audit(
    client: &mut impl GenericClient,
    exp: &str,
    after: u64,
    limit: usize,
) -> Result<Vec<AuditRecord>> {
    require(client, exp)?;
    let rows = q(
        client,
        "reading audit records",
        &format!(
            "SELECT {COLUMNS} FROM audit WHERE experiment = $1 AND seq > $2 ORDER BY seq LIMIT $3"
        ),
        &[
            &exp,
            &i64_of(after),
            &i64::try_from(limit).unwrap_or(i64::MAX),
        ],
    )?;
    rows.iter()
        .map(|r| Stored::from_row(r).to_public())
        .collect()
}

/// Records of the whole chain after `after`, stopping at the first gap.
pub(crate) fn audit_log(
    client: &mut impl GenericClient,
    after: u64,
    limit: usize,
) -> Result<Vec<AuditRecord>> {
    let rows = q(
        client,
        "reading the audit chain",
        &format!("SELECT {COLUMNS} FROM audit WHERE seq > $1 ORDER BY seq LIMIT $2"),
        &[&i64_of(after), &i64::try_from(limit).unwrap_or(i64::MAX)],
    )?;
    let mut out = Vec::new();
    for (next, r) in (after + 1..).zip(rows.iter()) {
        let record = Stored::from_row(r).to_public()?;
        if record.seq != next {
            break;
        }
        out.push(record);
    }
    Ok(out)
}

/// Up to `limit` outcomes of an experiment's log after log position `after`: (seq, outcome).
pub(crate) fn outcome_page(
    client: &mut impl GenericClient,
    exp: &str,
    after: i64,
    limit: i64,
) -> Result<Vec<(i64, Outcome)>> {
    let rows = q(
        client,
        "reading the outcome log",
        "SELECT seq, body FROM outcomes WHERE experiment = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        &[&exp, &after, &limit],
    )?;
    rows.iter()
        .map(|r| Ok((r.get(0), decode("outcomes", exp, r.get(1))?)))
        .collect()
}

/// Experiments with delta rows waiting to be folded.
pub(crate) fn with_deltas(client: &mut impl GenericClient) -> Result<Vec<String>> {
    let rows = q(
        client,
        "finding delta rows",
        "SELECT experiment FROM aggregate_deltas
         UNION SELECT experiment FROM counter_deltas
         UNION SELECT experiment FROM assignment_count_deltas",
        &[],
    )?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Folds an experiment's delta rows into its base rows; false when another compactor holds it.
pub(crate) fn compact(client: &mut impl GenericClient, exp: &str) -> Result<bool, Fail> {
    client
        .execute(
            "INSERT INTO compactions (experiment) VALUES ($1) ON CONFLICT DO NOTHING",
            &[&exp],
        )
        .map_err(pg("registering a compaction"))?;
    let mut tx = client.transaction().map_err(pg("starting a compaction"))?;
    let held = tx
        .query(
            "SELECT 1 FROM compactions WHERE experiment = $1 FOR UPDATE SKIP LOCKED",
            &[&exp],
        )
        .map_err(pg("locking a compaction"))?;
    if held.is_empty() {
        return Ok(false);
    }
    // Aggregates: the deltas in id order onto the base.
    let deltas = tx
        .query(
            "DELETE FROM aggregate_deltas WHERE experiment = $1 RETURNING epoch, key, id, changes",
            &[&exp],
        )
        .map_err(pg("taking aggregate deltas"))?;
    let mut by_key: BTreeMap<(i64, String), Vec<(i64, String)>> = BTreeMap::new();
    for r in &deltas {
        by_key
            .entry((r.get(0), r.get(1)))
            .or_default()
            .push((r.get(2), r.get(3)));
    }
    if !by_key.is_empty() {
        let epochs: Vec<i64> = by_key.keys().map(|k| k.0).collect();
        let keys: Vec<&str> = by_key.keys().map(|k| k.1.as_str()).collect();
        let bases = tx
            .query(
                "SELECT a.epoch, a.key, a.body FROM aggregates a
                   JOIN unnest($2::bigint[], $3::text[]) AS k(epoch, key)
                     ON a.epoch = k.epoch AND a.key = k.key
                  WHERE a.experiment = $1
                  FOR UPDATE OF a",
                &[&exp, &epochs, &keys],
            )
            .map_err(pg("locking aggregates"))?;
        let mut base: HashMap<(i64, String), String> = bases
            .iter()
            .map(|r| ((r.get(0), r.get(1)), r.get(2)))
            .collect();
        let (mut out_epochs, mut out_keys, mut out_bodies) = (vec![], vec![], vec![]);
        for ((epoch, text), mut list) in by_key {
            list.sort_by_key(|d| d.0);
            let key: AggKey = decode("aggregate_deltas", &text, &text)?;
            let mut a: MetricAggregate = match base.remove(&(epoch, text.clone())) {
                Some(body) => decode("aggregates", &text, &body)?,
                None => MetricAggregate::default(),
            };
            for (_, changes) in &list {
                let changes: Vec<Change> = decode("aggregate_deltas", &text, changes)?;
                apply_changes(&mut a, &key, &changes);
            }
            out_epochs.push(epoch);
            out_bodies.push(crate::error::encode("aggregate", &a)?);
            out_keys.push(text);
        }
        tx.execute(
            "INSERT INTO aggregates (experiment, epoch, key, body)
             SELECT $1, * FROM unnest($2::bigint[], $3::text[], $4::text[])
             ON CONFLICT (experiment, epoch, key) DO UPDATE SET body = excluded.body",
            &[&exp, &out_epochs, &out_keys, &out_bodies],
        )
        .map_err(pg("storing aggregates"))?;
    }
    // Counters: sums, with the handled_by maps merged here.
    let deltas = tx
        .query(
            "DELETE FROM counter_deltas WHERE experiment = $1
             RETURNING epoch, arm, units, outcomes, handled_by",
            &[&exp],
        )
        .map_err(pg("taking counter deltas"))?;
    if !deltas.is_empty() {
        let mut sums: BTreeMap<(i64, String), ArmCounters> = BTreeMap::new();
        let bases = tx
            .query(
                "SELECT epoch, arm, units, outcomes, handled_by FROM counters
                  WHERE experiment = $1 FOR UPDATE",
                &[&exp],
            )
            .map_err(pg("locking counters"))?;
        for r in bases.iter().chain(&deltas) {
            let arm: String = r.get(1);
            let by: BTreeMap<HandledBy, u64> = decode("counters", &arm, r.get(4))?;
            let c = sums
                .entry((r.get(0), arm.clone()))
                .or_insert_with(|| ArmCounters {
                    arm,
                    ..ArmCounters::default()
                });
            c.units += u64_of(r.get(2));
            c.outcomes += u64_of(r.get(3));
            for (k, n) in by {
                *c.handled_by.entry(k).or_insert(0) += n;
            }
        }
        for ((epoch, arm), c) in sums {
            tx.execute(
                "INSERT INTO counters (experiment, epoch, arm, units, outcomes, handled_by)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (experiment, epoch, arm) DO UPDATE
                 SET units = excluded.units, outcomes = excluded.outcomes,
                     handled_by = excluded.handled_by",
                &[
                    &exp,
                    &epoch,
                    &arm,
                    &i64_of(c.units),
                    &i64_of(c.outcomes),
                    &crate::error::encode("handled_by counts", &c.handled_by)?,
                ],
            )
            .map_err(pg("storing counters"))?;
        }
    }
    tx.execute(
        "WITH d AS (DELETE FROM assignment_count_deltas WHERE experiment = $1
                    RETURNING epoch, period, arm, count)
         INSERT INTO assignment_counts (experiment, epoch, period, arm, count)
         SELECT $1, epoch, period, arm, sum(count) FROM d GROUP BY epoch, period, arm
         ON CONFLICT (experiment, epoch, period, arm) DO UPDATE
         SET count = assignment_counts.count + excluded.count",
        &[&exp],
    )
    .map_err(pg("folding assignment counts"))?;
    tx.commit().map_err(pg("committing a compaction"))?;
    Ok(true)
}
