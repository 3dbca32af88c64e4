//! Property test: random operations, including close-and-reopen, applied to `SledStore` (and to `PgStore`) and to a `BTreeMap` model must agree.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use liftlab_domain::{Status, Transition};
use liftlab_store::{AuditKind, RebuildMode, Recorded, SledStore, Store, StoreError};
use proptest::prelude::*;

const EXPS: [&str; 2] = ["p0", "p1"];
const ARMS: [&str; 3] = ["human", "ai", "robot"];

#[derive(Clone, Debug)]
enum Op {
    Create(usize),
    Transition(usize, Transition),
    Rebaseline(usize),
    /// (experiment, unit, arm, in experiment, task: `None` = the unit id)
    Assign(usize, u8, usize, bool, Option<u8>),
    /// (experiment, event, unit, value); the arm comes from the model's assignment, or `robot`.
    Outcome(usize, u8, u8, u16),
    Outcomes(usize, Vec<(u8, u8, u16)>),
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    let exp = 0..EXPS.len();
    prop_oneof![
        2 => exp.clone().prop_map(Op::Create),
        2 => (exp.clone(), prop_oneof![Just(Transition::Start), Just(Transition::Pause), Just(Transition::Stop)])
            .prop_map(|(e, t)| Op::Transition(e, t)),
        1 => exp.clone().prop_map(Op::Rebaseline),
        6 => (exp.clone(), 0u8..8, 0..ARMS.len(), any::<bool>(), proptest::option::of(0u8..4))
            .prop_map(|(e, u, a, i, t)| Op::Assign(e, u, a, i, t)),
        6 => (exp.clone(), 0u8..12, 0u8..8, 0u16..500).prop_map(|(e, ev, u, v)| Op::Outcome(e, ev, u, v)),
        2 => (exp, proptest::collection::vec((0u8..12, 0u8..8, 0u16..500), 1..6))
            .prop_map(|(e, items)| Op::Outcomes(e, items)),
        1 => Just(Op::Reopen),
    ]
}

/// What an operation answered, reduced to what the model predicts.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Answer {
    Version(u64, Status),
    Epoch(u64),
    Assigned(String, String),
    Recorded(Recorded),
    NotFound,
    Conflict,
    Invalid,
    Domain,
    Other(String),
}

fn answer_err(e: &StoreError) -> Answer {
    match e {
        StoreError::NotFound { .. } => Answer::NotFound,
        StoreError::Conflict(_) => Answer::Conflict,
        StoreError::Invalid(_) => Answer::Invalid,
        StoreError::Domain(_) => Answer::Domain,
        other => Answer::Other(other.to_string()),
    }
}

#[derive(Debug, Default)]
struct ModelExp {
    status: Option<Status>,
    version: u64,
    epoch: u64,
    /// unit → (arm, in experiment)
    assignments: BTreeMap<String, (String, bool)>,
    tasks: BTreeMap<String, String>,
    /// (unit, event id): idempotency is per unit (a retry carries its task, so its unit).
    events: BTreeSet<(String, String)>,
    log: Vec<String>,
    /// (epoch, arm) → (units with an outcome, outcomes)
    counters: BTreeMap<(u64, String), (BTreeSet<String>, u64)>,
    /// (epoch, arm) → units assigned into the experiment
    counts: BTreeMap<(u64, String), u64>,
}

#[derive(Debug, Default)]
struct Model {
    exps: BTreeMap<String, ModelExp>,
    audit: u64,
}

/// The lifecycle, written out independently of liftlab-domain.
fn next_status(from: Status, t: Transition) -> Option<Status> {
    match (from, t) {
        (Status::Draft, Transition::Start) | (Status::Paused, Transition::Start) => {
            Some(Status::Running)
        }
        (Status::Running, Transition::Pause) => Some(Status::Paused),
        (Status::Running, Transition::Stop) | (Status::Paused, Transition::Stop) => {
            Some(Status::Stopped)
        }
        _ => None,
    }
}

impl Model {
    fn create(&mut self, exp: &str) -> Answer {
        if self.exps.contains_key(exp) {
            return Answer::Conflict;
        }
        self.exps.insert(
            exp.to_string(),
            ModelExp {
                status: Some(Status::Draft),
                version: 1,
                ..ModelExp::default()
            },
        );
        self.audit += 2;
        Answer::Version(1, Status::Draft)
    }

    fn transition(&mut self, exp: &str, t: Transition) -> Answer {
        let Some(m) = self.exps.get_mut(exp) else {
            return Answer::NotFound;
        };
        let from = m.status.expect("set at creation");
        match next_status(from, t) {
            Some(to) => {
                m.status = Some(to);
                m.version += 1;
                self.audit += 1;
                Answer::Version(m.version, to)
            }
            None => Answer::Domain,
        }
    }

    fn rebaseline(&mut self, exp: &str) -> Answer {
        let Some(m) = self.exps.get_mut(exp) else {
            return Answer::NotFound;
        };
        m.epoch += 1;
        m.version += 1;
        self.audit += 1;
        Answer::Epoch(m.epoch)
    }

    fn assign(&mut self, exp: &str, unit: &str, arm: &str, in_exp: bool, task: &str) -> Answer {
        let Some(m) = self.exps.get_mut(exp) else {
            return Answer::NotFound;
        };
        if let Some(owner) = m.tasks.get(task) {
            if owner != unit {
                return Answer::Conflict;
            }
        }
        if let Some((stored_arm, _)) = m.assignments.get(unit) {
            // A new task of a returning unit is bound to it, with an audit record.
            if m.tasks.insert(task.to_string(), unit.to_string()).is_none() {
                self.audit += 1;
            }
            return Answer::Assigned(unit.to_string(), stored_arm.clone());
        }
        if arm == "robot" || (in_exp && m.status != Some(Status::Running)) {
            return Answer::Invalid;
        }
        m.tasks.insert(task.to_string(), unit.to_string());
        m.assignments
            .insert(unit.to_string(), (arm.to_string(), in_exp));
        if in_exp {
            *m.counts.entry((m.epoch, arm.to_string())).or_insert(0) += 1;
        }
        self.audit += 1;
        Answer::Assigned(unit.to_string(), arm.to_string())
    }

    /// The arm the server would look up for a unit (`robot` when it has none).
    fn arm_of(&self, exp: &str, unit: &str) -> String {
        self.exps
            .get(exp)
            .and_then(|m| m.assignments.get(unit))
            .map_or_else(|| "robot".to_string(), |(a, _)| a.clone())
    }

    fn outcome(&mut self, exp: &str, event: &str, unit: &str) -> Answer {
        let Some(m) = self.exps.get_mut(exp) else {
            return Answer::NotFound;
        };
        if m.events.contains(&(unit.to_string(), event.to_string())) {
            return Answer::Recorded(Recorded::Duplicate);
        }
        let Some((arm, in_exp)) = m.assignments.get(unit).cloned() else {
            return Answer::Invalid;
        };
        m.events.insert((unit.to_string(), event.to_string()));
        m.log.push(event.to_string());
        if in_exp {
            let c = m.counters.entry((m.epoch, arm)).or_default();
            c.0.insert(unit.to_string());
            c.1 += 1;
        }
        self.audit += 1;
        Answer::Recorded(Recorded::Accepted)
    }
}

fn apply(store: &dyn Store, model: &mut Model, op: &Op) -> Vec<(Answer, Answer)> {
    let now = 1_000;
    match op {
        Op::Create(e) => {
            let got = match store.create_experiment(fixed_spec(EXPS[*e]), now) {
                Ok(v) => Answer::Version(v.version, v.status),
                Err(e) => answer_err(&e),
            };
            vec![(got, model.create(EXPS[*e]))]
        }
        Op::Transition(e, t) => {
            let got = match store.transition(EXPS[*e], *t, None, now) {
                Ok(v) => Answer::Version(v.version, v.status),
                Err(e) => answer_err(&e),
            };
            vec![(got, model.transition(EXPS[*e], *t))]
        }
        Op::Rebaseline(e) => {
            let got = match store.rebaseline(EXPS[*e], "property test", now) {
                Ok(ep) => Answer::Epoch(ep.epoch),
                Err(e) => answer_err(&e),
            };
            vec![(got, model.rebaseline(EXPS[*e]))]
        }
        Op::Assign(e, u, a, in_exp, task) => {
            let exp = EXPS[*e];
            let unit = format!("u{u}");
            let task = task.map_or_else(|| unit.clone(), |t| format!("t{t}"));
            let epoch = model.exps.get(exp).map_or(0, |m| m.epoch);
            let mut asg = assignment(exp, &unit, ARMS[*a], if *in_exp { 0.5 } else { 1.0 });
            asg.in_experiment = *in_exp;
            asg.task_id = task.clone();
            asg.epoch = epoch;
            let got = match store.record_assignment(asg) {
                Ok(a) => Answer::Assigned(a.unit_id, a.arm),
                Err(e) => answer_err(&e),
            };
            vec![(got, model.assign(exp, &unit, ARMS[*a], *in_exp, &task))]
        }
        Op::Outcome(e, ev, u, v) => {
            let exp = EXPS[*e];
            let o = model_outcome(model, exp, *ev, *u, *v);
            let got = match store.record_outcome(&fixed_spec(exp), o.clone()) {
                Ok(r) => Answer::Recorded(r),
                Err(e) => answer_err(&e),
            };
            vec![(got, model.outcome(exp, &o.event_id, &o.unit_id))]
        }
        Op::Outcomes(e, items) => {
            let exp = EXPS[*e];
            let batch: Vec<_> = items
                .iter()
                .map(|(ev, u, v)| model_outcome(model, exp, *ev, *u, *v))
                .collect();
            let got: Vec<Answer> = match store.record_outcomes(&fixed_spec(exp), batch.clone()) {
                Ok(rs) => rs
                    .into_iter()
                    .map(|r| match r {
                        Ok(r) => Answer::Recorded(r),
                        Err(e) => answer_err(&e),
                    })
                    .collect(),
                Err(e) => vec![answer_err(&e); batch.len()],
            };
            got.into_iter()
                .zip(&batch)
                .map(|(g, o)| (g, model.outcome(exp, &o.event_id, &o.unit_id)))
                .collect()
        }
        Op::Reopen => vec![],
    }
}

fn model_outcome(model: &Model, exp: &str, ev: u8, u: u8, v: u16) -> liftlab_domain::Outcome {
    let unit = format!("u{u}");
    let arm = model.arm_of(exp, &unit);
    let mut o = outcome(
        exp,
        &format!("e{ev}"),
        &unit,
        &arm,
        &[("minutes", f64::from(v) / 8.0)],
    );
    o.epoch = model.exps.get(exp).map_or(0, |m| m.epoch);
    o
}

/// Compares everything readable with the model.
fn compare(store: &dyn Store, model: &Model) -> Result<(), TestCaseError> {
    let listed: Vec<(String, u64, Status)> = store
        .experiments()
        .expect("lists")
        .into_iter()
        .map(|v| (v.key, v.version, v.status))
        .collect();
    let expected: Vec<(String, u64, Status)> = model
        .exps
        .iter()
        .map(|(k, m)| (k.clone(), m.version, m.status.expect("set")))
        .collect();
    prop_assert_eq!(listed, expected);
    for (exp, m) in &model.exps {
        prop_assert_eq!(
            store.versions(exp).expect("found").len(),
            usize::try_from(m.version).expect("small")
        );
        prop_assert_eq!(
            store.epochs(exp).expect("found").len(),
            usize::try_from(m.epoch + 1).expect("small")
        );
        for u in 0..8 {
            let unit = format!("u{u}");
            let got = store
                .assignment(exp, &unit)
                .expect("reads")
                .map(|a| (a.arm, a.in_experiment));
            prop_assert_eq!(got, m.assignments.get(&unit).cloned(), "unit {}", unit);
        }
        for (task, unit) in &m.tasks {
            let got = store
                .assignment_by_task(exp, task)
                .expect("reads")
                .map(|a| a.unit_id);
            prop_assert_eq!(got.as_ref(), Some(unit), "task {}", task);
        }
        let log: Vec<String> = store
            .outcomes(exp)
            .expect("found")
            .map(|o| o.expect("decodes").event_id)
            .collect();
        prop_assert_eq!(&log, &m.log);
        for epoch in 0..=m.epoch {
            let counters: BTreeMap<String, (u64, u64)> = store
                .arm_counters(exp, epoch)
                .expect("found")
                .into_iter()
                .map(|c| (c.arm.clone(), (c.units, c.outcomes)))
                .collect();
            let want: BTreeMap<String, (u64, u64)> = m
                .counters
                .iter()
                .filter(|((e, _), _)| *e == epoch)
                .map(|((_, arm), (units, n))| {
                    (
                        arm.clone(),
                        (u64::try_from(units.len()).expect("small"), *n),
                    )
                })
                .collect();
            prop_assert_eq!(counters, want, "counters of epoch {}", epoch);
            let counts: BTreeMap<String, u64> = store
                .assignment_counts(exp, epoch)
                .expect("found")
                .into_iter()
                .map(|c| (c.arm, c.count))
                .collect();
            let want: BTreeMap<String, u64> = m
                .counts
                .iter()
                .filter(|((e, _), _)| *e == epoch)
                .map(|((_, arm), n)| (arm.clone(), *n))
                .collect();
            prop_assert_eq!(counts, want, "assignment counts of epoch {}", epoch);
        }
        let outcomes_audited = store
            .audit(exp, 0, 10_000)
            .expect("found")
            .iter()
            .filter(|r| r.kind == AuditKind::OutcomeRecorded)
            .count();
        prop_assert_eq!(outcomes_audited, m.log.len());
    }
    let report = store.verify().expect("verifies");
    prop_assert!(report.ok, "{:?}", report);
    prop_assert_eq!(report.records, model.audit);
    // Everything derived, the task index of returning units included, agrees with a rebuild.
    let rebuilt = store.rebuild(RebuildMode::Check).expect("rebuilds");
    prop_assert!(rebuilt.mismatches.is_empty(), "{:#?}", rebuilt.mismatches);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, .. ProptestConfig::default() })]

    #[test]
    fn sled_store_agrees_with_the_model(ops in proptest::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut store = SledStore::open(dir.path()).expect("opens");
        let mut model = Model::default();
        for op in &ops {
            if let Op::Reopen = op {
                store.close().expect("closes");
                drop(store);
                store = SledStore::open(dir.path()).expect("reopens");
                compare(&store, &model)?;
                continue;
            }
            for (got, want) in apply(&store, &mut model, op) {
                prop_assert_eq!(got, want, "after {:?}", op);
            }
        }
        compare(&store, &model)?;
        store.close().expect("closes");
        drop(store);
        let store = SledStore::open(dir.path()).expect("reopens");
        compare(&store, &model)?;
    }
}

proptest! {
    // Each case makes a database; fewer cases keep the suite's time reasonable.
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    /// The same model on PostgreSQL; `Reopen` also folds the delta rows first (compaction),
    /// so the model checks that a compacted store reads as the uncompacted one did.
    #[test]
    fn pg_store_agrees_with_the_model(ops in proptest::collection::vec(op(), 1..40)) {
        let url = liftlab_testkit::postgres::fresh_database();
        let mut store = liftlab_store_pg::PgStore::open(&url).expect("opens");
        let mut model = Model::default();
        for op in &ops {
            if let Op::Reopen = op {
                store.compact().expect("compacts");
                store.close().expect("closes");
                drop(store);
                store = liftlab_store_pg::PgStore::open(&url).expect("reopens");
                compare(&store, &model)?;
                continue;
            }
            for (got, want) in apply(&store, &mut model, op) {
                prop_assert_eq!(got, want, "after {:?}", op);
            }
        }
        compare(&store, &model)?;
        store.compact().expect("compacts");
        compare(&store, &model)?;
    }
}
