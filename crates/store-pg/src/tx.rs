//! One write transaction: rows read through a cache (locked where a replica could race), the writes
//! kept in memory, and all of them sent at the end in a few multi-row statements.
//!
//! An operation (or a batch of them) reads the database's views through [`Tx`], which is also
//! the domain's [`Views`]: every read lands in the cache, so later items of a batch see the
//! earlier items' writes, exactly like the sled store's overlay. [`Tx::finish`] then writes
//! everything: rows that must be new (experiments, assignments, task ids, unit rows, event ids)
//! with `INSERT ... ON CONFLICT DO NOTHING`, and if any was taken by another transaction in the
//! meantime the whole transaction is retried, so the loser sees the winner's row; aggregates,
//! counters and assignment counts as delta rows (no hot row); the audit records last, under
//! the lock of the chain's head row, which is therefore held only for the end of the
//! transaction and its commit.
//!
//! Lock order, the same in every transaction: the experiment row (`FOR SHARE` to assign or
//! record outcomes, `FOR UPDATE` to change the experiment, or to record outcomes that may
//! open a period, feed a drift monitor or take an automatic action), then unit rows
//! (`FOR UPDATE`, in key order), then the head row.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use liftlab_domain::drift::DriftMonitor;
use liftlab_domain::record::Views;
use liftlab_domain::thompson::BanditState;
use liftlab_domain::{
    AggDelta, AggKey, AllocationPeriod, Assignment, ExperimentVersion, MetricAggregate, Millis,
    Outcome, Status, UnitRow,
};
use liftlab_store::{ArmCounters, AuditKind, Epoch};
use postgres::Transaction;
use serde::{Deserialize, Serialize};

use crate::audit::hash_record;
use crate::error::{decode, encode, no_experiment, pg, Fail};

/// The per-experiment numbers every write needs, stored beside the current version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct State {
    pub version: u64,
    pub epoch: u64,
    pub period: u64,
    pub status: Status,
    pub arms: Vec<String>,
}

/// How an experiment row is locked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Lock {
    Share,
    Update,
}

struct Exp {
    state: State,
    current: ExperimentVersion,
    lock: Lock,
    dirty: bool,
    new: bool,
}

/// One change of an aggregate as stored in a delta row: (old, new, propensity).
pub(crate) type Change = (Option<f64>, f64, f64);

type UnitKey = (String, u64, String);

#[derive(Default)]
struct Cache {
    exps: HashMap<String, Option<Exp>>,
    versions: Vec<ExperimentVersion>,
    epochs: Vec<Epoch>,
    periods: HashMap<(String, u64), Option<AllocationPeriod>>,
    new_periods: Vec<AllocationPeriod>,
    bandits: HashMap<String, Option<BanditState>>,
    bandits_dirty: BTreeSet<String>,
    drift: HashMap<(String, u64), Option<DriftMonitor>>,
    drift_dirty: BTreeSet<(String, u64)>,
    assignments: HashMap<(String, String), Option<Assignment>>,
    new_assignments: Vec<Assignment>,
    tasks: HashMap<(String, String), Option<String>>,
    new_tasks: Vec<(String, String, String)>,
    units: HashMap<UnitKey, Option<UnitRow>>,
    units_new: BTreeSet<UnitKey>,
    units_dirty: BTreeSet<UnitKey>,
    events: HashMap<(String, String, String), bool>,
    new_events: Vec<(String, String, String)>,
    outcomes: Vec<Outcome>,
    aggregates: HashMap<(String, AggKey), Option<MetricAggregate>>,
    agg_changes: BTreeMap<(String, AggKey), Vec<Change>>,
    counters: HashMap<(String, u64, String), ArmCounters>,
    counter_deltas: BTreeMap<(String, u64, String), ArmCounters>,
    counts: HashMap<(String, u64, u64, String), u64>,
    count_deltas: BTreeMap<(String, u64, u64, String), u64>,
    audit: Vec<(AuditKind, String, String, Millis)>,
}

type UnitColumns<'k> = (Vec<&'k str>, Vec<i64>, Vec<&'k str>, Vec<String>);

/// The columns of the unit rows `keys` names, for one multi-row statement.
fn unit_rows<'k>(c: &'k Cache, keys: &'k BTreeSet<UnitKey>) -> Result<UnitColumns<'k>, Fail> {
    let (mut exps, mut epochs, mut units, mut bodies) = (vec![], vec![], vec![], vec![]);
    for key in keys {
        if let Some(Some(row)) = c.units.get(key) {
            exps.push(key.0.as_str());
            epochs.push(i64_of(key.1));
            units.push(key.2.as_str());
            bodies.push(encode("unit row", row)?);
        }
    }
    Ok((exps, epochs, units, bodies))
}

/// A write transaction in progress.
pub(crate) struct Tx<'c> {
    db: RefCell<Transaction<'c>>,
    c: RefCell<Cache>,
}

fn i64_of(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn u64_of(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// The text of an aggregate key as stored (its JSON).
pub(crate) fn agg_key_text(key: &AggKey) -> Result<String, Fail> {
    Ok(encode("aggregate key", key)?)
}

impl<'c> Tx<'c> {
    pub(crate) fn new(db: Transaction<'c>) -> Tx<'c> {
        Tx {
            db: RefCell::new(db),
            c: RefCell::new(Cache::default()),
        }
    }

    fn query(
        &self,
        context: &'static str,
        sql: &str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<Vec<postgres::Row>, Fail> {
        self.db.borrow_mut().query(sql, params).map_err(pg(context))
    }

    fn execute(
        &self,
        context: &'static str,
        sql: &str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<u64, Fail> {
        self.db
            .borrow_mut()
            .execute(sql, params)
            .map_err(pg(context))
    }

    // ---- Experiments -----------------------------------------------------------------------

    /// Whether the experiment exists (no lock: a create that races finds the row at `finish`).
    pub(crate) fn exists(&self, exp: &str) -> Result<bool, Fail> {
        if let Some(e) = self.c.borrow().exps.get(exp) {
            return Ok(e.is_some());
        }
        Ok(!self
            .query(
                "reading an experiment",
                "SELECT 1 FROM experiments WHERE experiment = $1",
                &[&exp],
            )?
            .is_empty())
    }

    /// The experiment's state and current version, its row locked at least as `lock` asks.
    pub(crate) fn exp(&self, exp: &str, lock: Lock) -> Result<(State, ExperimentVersion), Fail> {
        if let Some(Some(e)) = self.c.borrow().exps.get(exp) {
            if e.lock >= lock {
                return Ok((e.state.clone(), e.current.clone()));
            }
        }
        let sql = match lock {
            Lock::Share => "SELECT state, current FROM experiments WHERE experiment = $1 FOR SHARE",
            Lock::Update => {
                "SELECT state, current FROM experiments WHERE experiment = $1 FOR UPDATE"
            }
        };
        let rows = self.query("locking an experiment", sql, &[&exp])?;
        let Some(row) = rows.first() else {
            self.c.borrow_mut().exps.insert(exp.to_string(), None);
            return Err(no_experiment(exp).into());
        };
        let state: State = decode("experiments", exp, row.get(0))?;
        let current: ExperimentVersion = decode("experiments", exp, row.get(1))?;
        self.c.borrow_mut().exps.insert(
            exp.to_string(),
            Some(Exp {
                state: state.clone(),
                current: current.clone(),
                lock,
                dirty: false,
                new: false,
            }),
        );
        Ok((state, current))
    }

    /// Stores an experiment's new state and current version (locked `FOR UPDATE` before).
    pub(crate) fn put_exp(&self, state: State, current: ExperimentVersion) {
        let mut c = self.c.borrow_mut();
        let exp = current.key.clone();
        let entry = c.exps.entry(exp).or_insert(None);
        let new = entry.as_ref().map_or(true, |e| e.new);
        *entry = Some(Exp {
            state,
            current: current.clone(),
            lock: Lock::Update,
            dirty: true,
            new,
        });
        c.versions.push(current);
    }

    /// Stores an experiment's new state under its unchanged current version (a period opened
    /// by an outcome).
    pub(crate) fn put_exp_state(&self, exp: &str, state: State, current: ExperimentVersion) {
        let mut c = self.c.borrow_mut();
        let entry = c.exps.entry(exp.to_string()).or_insert(None);
        let new = entry.as_ref().is_some_and(|e| e.new);
        *entry = Some(Exp {
            state,
            current,
            lock: Lock::Update,
            dirty: true,
            new,
        });
    }

    pub(crate) fn put_epoch(&self, epoch: Epoch) {
        self.c.borrow_mut().epochs.push(epoch);
    }

    pub(crate) fn period(&self, exp: &str, n: u64) -> Result<Option<AllocationPeriod>, Fail> {
        let key = (exp.to_string(), n);
        if let Some(p) = self.c.borrow().periods.get(&key) {
            return Ok(p.clone());
        }
        let rows = self.query(
            "reading a period",
            "SELECT body FROM periods WHERE experiment = $1 AND period = $2",
            &[&exp, &i64_of(n)],
        )?;
        let p = match rows.first() {
            Some(r) => Some(decode("periods", exp, r.get(0))?),
            None => None,
        };
        self.c.borrow_mut().periods.insert(key, p.clone());
        Ok(p)
    }

    pub(crate) fn put_period(&self, p: AllocationPeriod) {
        let mut c = self.c.borrow_mut();
        c.periods
            .insert((p.experiment.clone(), p.period), Some(p.clone()));
        c.new_periods.push(p);
    }

    pub(crate) fn put_bandit(&self, exp: &str, b: Option<BanditState>) {
        let mut c = self.c.borrow_mut();
        c.bandits.insert(exp.to_string(), b);
        c.bandits_dirty.insert(exp.to_string());
    }

    pub(crate) fn put_drift(&self, exp: &str, epoch: u64, m: DriftMonitor) {
        let mut c = self.c.borrow_mut();
        c.drift.insert((exp.to_string(), epoch), Some(m));
        c.drift_dirty.insert((exp.to_string(), epoch));
    }

    // ---- Assignments and outcomes ----------------------------------------------------------

    pub(crate) fn put_assignment(&self, a: Assignment) {
        let mut c = self.c.borrow_mut();
        c.assignments
            .insert((a.experiment.clone(), a.unit_id.clone()), Some(a.clone()));
        c.new_assignments.push(a);
    }

    pub(crate) fn put_task(&self, exp: &str, task: &str, unit: &str) {
        let mut c = self.c.borrow_mut();
        c.tasks
            .insert((exp.to_string(), task.to_string()), Some(unit.to_string()));
        c.new_tasks
            .push((exp.to_string(), task.to_string(), unit.to_string()));
    }

    pub(crate) fn count_assignment(&self, a: &Assignment) {
        let key = (a.experiment.clone(), a.epoch, a.period, a.arm.clone());
        *self.c.borrow_mut().count_deltas.entry(key).or_insert(0) += 1;
    }

    pub(crate) fn put_unit_row(&self, row: UnitRow) {
        let key = (row.experiment.clone(), row.epoch, row.unit_id.clone());
        let mut c = self.c.borrow_mut();
        if c.units_new.contains(&key) || c.units_dirty.contains(&key) {
            // Written earlier in this transaction: the last row wins.
        } else if matches!(c.units.get(&key), Some(Some(_))) {
            c.units_dirty.insert(key.clone());
        } else {
            c.units_new.insert(key.clone());
        }
        c.units.insert(key, Some(row));
    }

    pub(crate) fn put_event(&self, o: &Outcome) {
        let mut c = self.c.borrow_mut();
        c.events.insert(
            (o.experiment.clone(), o.unit_id.clone(), o.event_id.clone()),
            true,
        );
        c.new_events
            .push((o.experiment.clone(), o.event_id.clone(), o.unit_id.clone()));
        c.outcomes.push(o.clone());
    }

    pub(crate) fn apply_delta(&self, exp: &str, d: &AggDelta) {
        self.c
            .borrow_mut()
            .agg_changes
            .entry((exp.to_string(), d.key.clone()))
            .or_default()
            .push((d.old, d.new, d.propensity));
    }

    pub(crate) fn step_counter(
        &self,
        exp: &str,
        epoch: u64,
        step: &liftlab_domain::record::CounterStep,
    ) {
        self.c
            .borrow_mut()
            .counter_deltas
            .entry((exp.to_string(), epoch, step.arm.clone()))
            .or_insert_with(|| ArmCounters {
                arm: step.arm.clone(),
                ..ArmCounters::default()
            })
            .step(step);
    }

    /// Appends an audit record; its sequence number and hashes are given at [`Tx::finish`].
    pub(crate) fn audit<P: Serialize + ?Sized>(
        &self,
        kind: AuditKind,
        exp: &str,
        payload: &P,
        ts: Millis,
    ) -> Result<(), Fail> {
        let payload = encode(&format!("{} audit record", kind.as_str()), payload)?;
        self.c
            .borrow_mut()
            .audit
            .push((kind, exp.to_string(), payload, ts));
        Ok(())
    }

    /// Reads, in two statements per experiment, what a batch of assignments will ask: the
    /// assignments of its units (and of units named like its task ids) and its task ids'
    /// index entries. No lock: a row another replica inserts meanwhile is found at `finish`,
    /// which then runs the transaction again.
    pub(crate) fn prefetch_assignments(&self, batch: &[Assignment]) -> Result<(), Fail> {
        let mut by_exp: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for a in batch {
            let ids = by_exp.entry(a.experiment.as_str()).or_default();
            ids.insert(a.unit_id.as_str());
            ids.insert(a.task_id.as_str());
        }
        for (exp, ids) in by_exp {
            let ids: Vec<&str> = ids.into_iter().collect();
            let assigned = self.query(
                "reading assignments",
                "SELECT unit_id, body FROM assignments WHERE experiment = $1 AND unit_id = ANY($2)",
                &[&exp, &ids],
            )?;
            let tasks = self.query(
                "reading tasks",
                "SELECT task_id, unit_id FROM tasks WHERE experiment = $1 AND task_id = ANY($2)",
                &[&exp, &ids],
            )?;
            let mut c = self.c.borrow_mut();
            for id in &ids {
                c.assignments
                    .entry((exp.to_string(), id.to_string()))
                    .or_insert(None);
                c.tasks
                    .entry((exp.to_string(), id.to_string()))
                    .or_insert(None);
            }
            for r in &assigned {
                let unit: String = r.get(0);
                let a: Assignment = decode("assignments", &unit, r.get(1))?;
                c.assignments.insert((exp.to_string(), unit), Some(a));
            }
            for r in &tasks {
                c.tasks.insert((exp.to_string(), r.get(0)), Some(r.get(1)));
            }
        }
        Ok(())
    }

    /// Reads, in three statements, what a batch of outcomes will ask: which event ids were
    /// seen, the units' assignments, and their rows (locked `FOR UPDATE`, in key order).
    pub(crate) fn prefetch_outcomes(&self, exp: &str, outcomes: &[Outcome]) -> Result<(), Fail> {
        let events: Vec<&str> = outcomes.iter().map(|o| o.event_id.as_str()).collect();
        let units: BTreeSet<&str> = outcomes.iter().map(|o| o.unit_id.as_str()).collect();
        let units: Vec<&str> = units.into_iter().collect();
        let pairs: BTreeSet<(i64, &str)> = outcomes
            .iter()
            .map(|o| (i64_of(o.epoch), o.unit_id.as_str()))
            .collect();
        let (epochs, unit_of_pair): (Vec<i64>, Vec<&str>) = pairs.into_iter().unzip();
        let event_units: Vec<&str> = outcomes.iter().map(|o| o.unit_id.as_str()).collect();
        let seen = self.query(
            "reading event ids",
            "SELECT e.unit_id, e.event_id FROM events e
               JOIN unnest($2::text[], $3::text[]) AS k(unit_id, event_id)
                 ON e.unit_id = k.unit_id AND e.event_id = k.event_id
              WHERE e.experiment = $1",
            &[&exp, &event_units, &events],
        )?;
        let assigned = self.query(
            "reading assignments",
            "SELECT unit_id, body FROM assignments WHERE experiment = $1 AND unit_id = ANY($2)",
            &[&exp, &units],
        )?;
        let rows = self.query(
            "locking unit rows",
            "SELECT u.epoch, u.unit_id, u.body FROM units u
               JOIN unnest($2::bigint[], $3::text[]) AS k(epoch, unit_id)
                 ON u.epoch = k.epoch AND u.unit_id = k.unit_id
              WHERE u.experiment = $1
              ORDER BY u.epoch, u.unit_id
              FOR UPDATE OF u",
            &[&exp, &epochs, &unit_of_pair],
        )?;
        let mut c = self.c.borrow_mut();
        for (u, e) in event_units.iter().zip(&events) {
            c.events
                .entry((exp.to_string(), u.to_string(), e.to_string()))
                .or_insert(false);
        }
        for r in &seen {
            c.events.insert((exp.to_string(), r.get(0), r.get(1)), true);
        }
        for u in &units {
            c.assignments
                .entry((exp.to_string(), u.to_string()))
                .or_insert(None);
        }
        for r in &assigned {
            let unit: String = r.get(0);
            let a: Assignment = decode("assignments", &unit, r.get(1))?;
            c.assignments.insert((exp.to_string(), unit), Some(a));
        }
        for (e, u) in epochs.iter().zip(&unit_of_pair) {
            c.units
                .entry((exp.to_string(), u64_of(*e), u.to_string()))
                .or_insert(None);
        }
        for r in &rows {
            let unit: String = r.get(1);
            let row: UnitRow = decode("units", &unit, r.get(2))?;
            c.units
                .insert((exp.to_string(), u64_of(r.get(0)), unit), Some(row));
        }
        Ok(())
    }

    // ---- The end ---------------------------------------------------------------------------

    /// Writes everything and commits; answers the experiments whose allocation period
    /// changed. `Retry` when a row that had to be new was taken.
    pub(crate) fn finish(self) -> Result<Vec<String>, Fail> {
        let c = std::mem::take(&mut *self.c.borrow_mut());
        self.write_experiments(&c)?;
        self.write_rows(&c)?;
        self.write_views(&c)?;
        self.write_audit(&c)?;
        self.db.into_inner().commit().map_err(pg("committing"))?;
        Ok(c.new_periods.into_iter().map(|p| p.experiment).collect())
    }

    fn write_experiments(&self, c: &Cache) -> Result<(), Fail> {
        for (key, e) in &c.exps {
            let Some(e) = e.as_ref().filter(|e| e.dirty) else {
                continue;
            };
            let state = encode("experiment state", &e.state)?;
            let current = encode("experiment version", &e.current)?;
            if e.new {
                let n = self.execute(
                    "creating an experiment",
                    "INSERT INTO experiments (experiment, state, current) VALUES ($1, $2, $3)
                     ON CONFLICT DO NOTHING",
                    &[key, &state, &current],
                )?;
                if n == 0 {
                    return Err(Fail::Retry(format!(
                        "experiment {key:?} was created meanwhile"
                    )));
                }
            } else {
                self.execute(
                    "updating an experiment",
                    "UPDATE experiments SET state = $2, current = $3 WHERE experiment = $1",
                    &[key, &state, &current],
                )?;
            }
        }
        for v in &c.versions {
            self.execute(
                "storing a version",
                "INSERT INTO versions (experiment, version, body) VALUES ($1, $2, $3)",
                &[&v.key, &i64_of(v.version), &encode("version", v)?],
            )?;
        }
        for e in &c.epochs {
            self.execute(
                "storing an epoch",
                "INSERT INTO epochs (experiment, epoch, body) VALUES ($1, $2, $3)",
                &[&e.experiment, &i64_of(e.epoch), &encode("epoch", e)?],
            )?;
        }
        for p in &c.new_periods {
            self.execute(
                "storing a period",
                "INSERT INTO periods (experiment, period, body) VALUES ($1, $2, $3)",
                &[&p.experiment, &i64_of(p.period), &encode("period", p)?],
            )?;
        }
        for exp in &c.bandits_dirty {
            match c.bandits.get(exp).cloned().flatten() {
                Some(b) => self.execute(
                    "storing a bandit",
                    "INSERT INTO bandits (experiment, body) VALUES ($1, $2)
                     ON CONFLICT (experiment) DO UPDATE SET body = excluded.body",
                    &[exp, &encode("bandit state", &b)?],
                )?,
                None => self.execute(
                    "removing a bandit",
                    "DELETE FROM bandits WHERE experiment = $1",
                    &[exp],
                )?,
            };
        }
        for (exp, epoch) in &c.drift_dirty {
            if let Some(Some(m)) = c.drift.get(&(exp.clone(), *epoch)) {
                self.execute(
                    "storing a drift monitor",
                    "INSERT INTO drift (experiment, epoch, body) VALUES ($1, $2, $3)
                     ON CONFLICT (experiment, epoch) DO UPDATE SET body = excluded.body",
                    &[exp, &i64_of(*epoch), &encode("drift monitor", m)?],
                )?;
            }
        }
        Ok(())
    }

    /// Rows that must be new, each kind in one statement; a shortfall means another
    /// transaction got there first.
    fn write_rows(&self, c: &Cache) -> Result<(), Fail> {
        let inserted = |what: &str, n: u64, want: usize| -> Result<(), Fail> {
            if usize::try_from(n).ok() == Some(want) {
                Ok(())
            } else {
                Err(Fail::Retry(format!(
                    "{what} was written by another transaction"
                )))
            }
        };
        if !c.new_assignments.is_empty() {
            let (mut exps, mut units, mut bodies) = (vec![], vec![], vec![]);
            for a in &c.new_assignments {
                exps.push(a.experiment.as_str());
                units.push(a.unit_id.as_str());
                bodies.push(encode("assignment", a)?);
            }
            let n = self.execute(
                "storing assignments",
                "INSERT INTO assignments (experiment, unit_id, body)
                 SELECT * FROM unnest($1::text[], $2::text[], $3::text[])
                 ON CONFLICT DO NOTHING",
                &[&exps, &units, &bodies],
            )?;
            inserted("an assignment", n, c.new_assignments.len())?;
        }
        if !c.new_tasks.is_empty() {
            let exps: Vec<&str> = c.new_tasks.iter().map(|t| t.0.as_str()).collect();
            let tasks: Vec<&str> = c.new_tasks.iter().map(|t| t.1.as_str()).collect();
            let units: Vec<&str> = c.new_tasks.iter().map(|t| t.2.as_str()).collect();
            let n = self.execute(
                "indexing tasks",
                "INSERT INTO tasks (experiment, task_id, unit_id)
                 SELECT * FROM unnest($1::text[], $2::text[], $3::text[])
                 ON CONFLICT DO NOTHING",
                &[&exps, &tasks, &units],
            )?;
            inserted("a task id", n, c.new_tasks.len())?;
        }
        if !c.new_events.is_empty() {
            let exps: Vec<&str> = c.new_events.iter().map(|t| t.0.as_str()).collect();
            let events: Vec<&str> = c.new_events.iter().map(|t| t.1.as_str()).collect();
            let units: Vec<&str> = c.new_events.iter().map(|t| t.2.as_str()).collect();
            let n = self.execute(
                "storing event ids",
                "INSERT INTO events (experiment, event_id, unit_id)
                 SELECT * FROM unnest($1::text[], $2::text[], $3::text[])
                 ON CONFLICT DO NOTHING",
                &[&exps, &events, &units],
            )?;
            inserted("an event id", n, c.new_events.len())?;
            let exps: Vec<&str> = c.outcomes.iter().map(|o| o.experiment.as_str()).collect();
            let bodies = c
                .outcomes
                .iter()
                .map(|o| encode("outcome", o))
                .collect::<Result<Vec<_>, _>>()?;
            self.execute(
                "logging outcomes",
                "INSERT INTO outcomes (experiment, body)
                 SELECT e, b FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS t(e, b, n)
                 ORDER BY n",
                &[&exps, &bodies],
            )?;
        }
        if !c.units_new.is_empty() {
            let (exps, epochs, units, bodies) = unit_rows(c, &c.units_new)?;
            let n = self.execute(
                "storing unit rows",
                "INSERT INTO units (experiment, epoch, unit_id, body)
                 SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[])
                 ON CONFLICT DO NOTHING",
                &[&exps, &epochs, &units, &bodies],
            )?;
            inserted("a unit row", n, exps.len())?;
        }
        if !c.units_dirty.is_empty() {
            let (exps, epochs, units, bodies) = unit_rows(c, &c.units_dirty)?;
            self.execute(
                "updating unit rows",
                "UPDATE units u SET body = k.body
                   FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[])
                        AS k(experiment, epoch, unit_id, body)
                  WHERE u.experiment = k.experiment AND u.epoch = k.epoch
                    AND u.unit_id = k.unit_id",
                &[&exps, &epochs, &units, &bodies],
            )?;
        }
        Ok(())
    }

    /// Aggregates, counters and assignment counts as delta rows: one per key per transaction.
    fn write_views(&self, c: &Cache) -> Result<(), Fail> {
        if !c.agg_changes.is_empty() {
            let (mut exps, mut epochs, mut keys, mut changes) = (vec![], vec![], vec![], vec![]);
            for ((exp, key), list) in &c.agg_changes {
                exps.push(exp.as_str());
                epochs.push(i64_of(key.epoch));
                keys.push(agg_key_text(key)?);
                changes.push(encode("aggregate changes", list)?);
            }
            self.execute(
                "storing aggregate deltas",
                "INSERT INTO aggregate_deltas (experiment, epoch, key, changes)
                 SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[])",
                &[&exps, &epochs, &keys, &changes],
            )?;
        }
        if !c.counter_deltas.is_empty() {
            let (mut exps, mut epochs, mut arms, mut units, mut outcomes, mut by) =
                (vec![], vec![], vec![], vec![], vec![], vec![]);
            for ((exp, epoch, arm), d) in &c.counter_deltas {
                exps.push(exp.as_str());
                epochs.push(i64_of(*epoch));
                arms.push(arm.as_str());
                units.push(i64_of(d.units));
                outcomes.push(i64_of(d.outcomes));
                by.push(encode("handled_by counts", &d.handled_by)?);
            }
            self.execute(
                "storing counter deltas",
                "INSERT INTO counter_deltas (experiment, epoch, arm, units, outcomes, handled_by)
                 SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bigint[],
                                      $5::bigint[], $6::text[])",
                &[&exps, &epochs, &arms, &units, &outcomes, &by],
            )?;
        }
        if !c.count_deltas.is_empty() {
            let (mut exps, mut epochs, mut periods, mut arms, mut counts) =
                (vec![], vec![], vec![], vec![], vec![]);
            for ((exp, epoch, period, arm), n) in &c.count_deltas {
                exps.push(exp.as_str());
                epochs.push(i64_of(*epoch));
                periods.push(i64_of(*period));
                arms.push(arm.as_str());
                counts.push(i64_of(*n));
            }
            self.execute(
                "storing assignment count deltas",
                "INSERT INTO assignment_count_deltas (experiment, epoch, period, arm, count)
                 SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[],
                                      $5::bigint[])",
                &[&exps, &epochs, &periods, &arms, &counts],
            )?;
        }
        Ok(())
    }

    /// Extends the chain under the head row's lock, the last lock a transaction takes.
    fn write_audit(&self, c: &Cache) -> Result<(), Fail> {
        if c.audit.is_empty() {
            return Ok(());
        }
        let rows = self.query(
            "locking the audit head",
            "SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE",
            &[],
        )?;
        let row = rows.first().ok_or_else(|| {
            Fail::Store(crate::error::corrupt(
                "audit_head",
                "1",
                "the chain head row is missing",
            ))
        })?;
        let mut seq = u64_of(row.get(0));
        let head: Vec<u8> = row.get(1);
        let mut prev = <[u8; 32]>::try_from(head.as_slice()).map_err(|_| {
            Fail::Store(crate::error::corrupt(
                "audit_head",
                "1",
                "the head hash is not 32 bytes",
            ))
        })?;
        let (mut exps, mut seqs, mut prevs, mut kinds, mut payloads, mut tss, mut hashes) =
            (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
        for (kind, exp, payload, ts) in &c.audit {
            seq += 1;
            let hash = hash_record(&prev, seq, *kind, exp, payload, *ts);
            exps.push(exp.as_str());
            seqs.push(i64_of(seq));
            prevs.push(prev.to_vec());
            kinds.push(kind.as_str());
            payloads.push(payload.as_str());
            tss.push(*ts);
            hashes.push(hash.to_vec());
            prev = hash;
        }
        self.execute(
            "appending audit records",
            "INSERT INTO audit (experiment, seq, prev_hash, kind, payload, ts, hash)
             SELECT * FROM unnest($1::text[], $2::bigint[], $3::bytea[], $4::text[], $5::text[],
                                  $6::bigint[], $7::bytea[])",
            &[&exps, &seqs, &prevs, &kinds, &payloads, &tss, &hashes],
        )?;
        self.execute(
            "moving the audit head",
            "UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1",
            &[&i64_of(seq), &prev.to_vec()],
        )?;
        Ok(())
    }

    /// Registers a new experiment (its row is inserted at `finish`).
    pub(crate) fn create_exp(&self, state: State, v: ExperimentVersion) {
        let mut c = self.c.borrow_mut();
        c.exps.insert(
            v.key.clone(),
            Some(Exp {
                state,
                current: v.clone(),
                lock: Lock::Update,
                dirty: true,
                new: true,
            }),
        );
        c.versions.push(v);
    }
}

/// The domain reads the views through the transaction: the cache first, the database on a miss.
impl Views for Tx<'_> {
    type Error = Fail;

    fn seen(&self, exp: &str, unit_id: &str, event_id: &str) -> Result<bool, Fail> {
        let key = (exp.to_string(), unit_id.to_string(), event_id.to_string());
        if let Some(seen) = self.c.borrow().events.get(&key) {
            return Ok(*seen);
        }
        let seen = !self
            .query(
                "reading an event id",
                "SELECT 1 FROM events WHERE experiment = $1 AND unit_id = $2 AND event_id = $3",
                &[&exp, &unit_id, &event_id],
            )?
            .is_empty();
        self.c.borrow_mut().events.insert(key, seen);
        Ok(seen)
    }

    fn assignment(&self, exp: &str, unit_id: &str) -> Result<Option<Assignment>, Fail> {
        let key = (exp.to_string(), unit_id.to_string());
        if let Some(a) = self.c.borrow().assignments.get(&key) {
            return Ok(a.clone());
        }
        let rows = self.query(
            "reading an assignment",
            "SELECT body FROM assignments WHERE experiment = $1 AND unit_id = $2",
            &[&exp, &unit_id],
        )?;
        let a: Option<Assignment> = match rows.first() {
            Some(r) => Some(decode("assignments", unit_id, r.get(0))?),
            None => None,
        };
        self.c.borrow_mut().assignments.insert(key, a.clone());
        Ok(a)
    }

    fn task_unit(&self, exp: &str, task_id: &str) -> Result<Option<String>, Fail> {
        let key = (exp.to_string(), task_id.to_string());
        if let Some(u) = self.c.borrow().tasks.get(&key) {
            return Ok(u.clone());
        }
        let rows = self.query(
            "reading a task",
            "SELECT unit_id FROM tasks WHERE experiment = $1 AND task_id = $2",
            &[&exp, &task_id],
        )?;
        let u: Option<String> = rows.first().map(|r| r.get(0));
        self.c.borrow_mut().tasks.insert(key, u.clone());
        Ok(u)
    }

    fn unit_row(&self, exp: &str, epoch: u64, unit_id: &str) -> Result<Option<UnitRow>, Fail> {
        let key = (exp.to_string(), epoch, unit_id.to_string());
        if let Some(r) = self.c.borrow().units.get(&key) {
            return Ok(r.clone());
        }
        let rows = self.query(
            "locking a unit row",
            "SELECT body FROM units WHERE experiment = $1 AND epoch = $2 AND unit_id = $3
             FOR UPDATE",
            &[&exp, &i64_of(epoch), &unit_id],
        )?;
        let row: Option<UnitRow> = match rows.first() {
            Some(r) => Some(decode("units", unit_id, r.get(0))?),
            None => None,
        };
        self.c.borrow_mut().units.insert(key, row.clone());
        Ok(row)
    }

    fn aggregate(&self, exp: &str, key: &AggKey) -> Result<Option<MetricAggregate>, Fail> {
        let ck = (exp.to_string(), key.clone());
        let cached = self.c.borrow().aggregates.get(&ck).cloned();
        let committed = match cached {
            Some(a) => a,
            None => {
                let text = agg_key_text(key)?;
                let rows = self.query(
                    "reading an aggregate",
                    "SELECT body, NULL::text, 0::bigint FROM aggregates
                      WHERE experiment = $1 AND epoch = $2 AND key = $3
                     UNION ALL
                     SELECT NULL::text, changes, id FROM aggregate_deltas
                      WHERE experiment = $1 AND epoch = $2 AND key = $3
                     ORDER BY 3",
                    &[&exp, &i64_of(key.epoch), &text],
                )?;
                let a = crate::read::fold_aggregate(&text, &rows)?;
                self.c.borrow_mut().aggregates.insert(ck.clone(), a);
                a
            }
        };
        let c = self.c.borrow();
        let Some(changes) = c.agg_changes.get(&ck) else {
            return Ok(committed);
        };
        let mut a = committed.unwrap_or_default();
        for (old, new, propensity) in changes {
            a.apply(&AggDelta {
                key: key.clone(),
                old: *old,
                new: *new,
                propensity: *propensity,
            });
        }
        Ok(Some(a))
    }

    fn outcomes(&self, exp: &str, epoch: u64, arm: &str) -> Result<u64, Fail> {
        let key = (exp.to_string(), epoch, arm.to_string());
        let cached = self.c.borrow().counters.get(&key).cloned();
        let committed = match cached {
            Some(c) => c,
            None => {
                let rows = self.query(
                    "reading counters",
                    "SELECT coalesce(sum(outcomes), 0)::bigint FROM (
                        SELECT outcomes FROM counters
                         WHERE experiment = $1 AND epoch = $2 AND arm = $3
                        UNION ALL
                        SELECT outcomes FROM counter_deltas
                         WHERE experiment = $1 AND epoch = $2 AND arm = $3) t",
                    &[&exp, &i64_of(epoch), &arm],
                )?;
                let c = ArmCounters {
                    arm: arm.to_string(),
                    outcomes: rows.first().map_or(0, |r| u64_of(r.get(0))),
                    ..ArmCounters::default()
                };
                self.c.borrow_mut().counters.insert(key.clone(), c.clone());
                c
            }
        };
        let pending = self
            .c
            .borrow()
            .counter_deltas
            .get(&key)
            .map_or(0, |d| d.outcomes);
        Ok(committed.outcomes + pending)
    }

    fn assigned(&self, exp: &str, epoch: u64, period: u64, arm: &str) -> Result<u64, Fail> {
        let key = (exp.to_string(), epoch, period, arm.to_string());
        let cached = self.c.borrow().counts.get(&key).copied();
        let committed = match cached {
            Some(n) => n,
            None => {
                let rows = self.query(
                    "reading assignment counts",
                    "SELECT coalesce(sum(count), 0)::bigint FROM (
                        SELECT count FROM assignment_counts
                         WHERE experiment = $1 AND epoch = $2 AND period = $3 AND arm = $4
                        UNION ALL
                        SELECT count FROM assignment_count_deltas
                         WHERE experiment = $1 AND epoch = $2 AND period = $3 AND arm = $4) t",
                    &[&exp, &i64_of(epoch), &i64_of(period), &arm],
                )?;
                let n = rows.first().map_or(0, |r| u64_of(r.get(0)));
                self.c.borrow_mut().counts.insert(key.clone(), n);
                n
            }
        };
        let pending = self.c.borrow().count_deltas.get(&key).copied().unwrap_or(0);
        Ok(committed + pending)
    }

    fn bandit(&self, exp: &str) -> Result<Option<BanditState>, Fail> {
        if let Some(b) = self.c.borrow().bandits.get(exp) {
            return Ok(b.clone());
        }
        let rows = self.query(
            "reading a bandit",
            "SELECT body FROM bandits WHERE experiment = $1",
            &[&exp],
        )?;
        let b: Option<BanditState> = match rows.first() {
            Some(r) => Some(decode("bandits", exp, r.get(0))?),
            None => None,
        };
        self.c
            .borrow_mut()
            .bandits
            .insert(exp.to_string(), b.clone());
        Ok(b)
    }

    fn drift(&self, exp: &str, epoch: u64) -> Result<Option<DriftMonitor>, Fail> {
        let key = (exp.to_string(), epoch);
        if let Some(m) = self.c.borrow().drift.get(&key) {
            return Ok(m.clone());
        }
        let rows = self.query(
            "reading a drift monitor",
            "SELECT body FROM drift WHERE experiment = $1 AND epoch = $2",
            &[&exp, &i64_of(epoch)],
        )?;
        let m: Option<DriftMonitor> = match rows.first() {
            Some(r) => Some(decode("drift", exp, r.get(0))?),
            None => None,
        };
        self.c.borrow_mut().drift.insert(key, m.clone());
        Ok(m)
    }
}
