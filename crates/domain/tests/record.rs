//! The pure write step (`liftlab_domain::record`) over views held in maps: its checks, effects and automatic actions.

use std::collections::BTreeMap;

use liftlab_domain::drift::DriftMonitor;
use liftlab_domain::record::{
    record_assignment, record_outcome, AssignmentEffects, AutoAction, OutcomeEffects, Refusal,
    Standing, Views, HARM_CHECK_EVERY,
};
use liftlab_domain::thompson::BanditState;
use liftlab_domain::{
    AggKey, Assignment, DomainError, ExperimentSpec, MetricAggregate, Outcome, Status, UnitRow,
};
use serde_json::json;

#[derive(Debug, PartialEq)]
enum Error {
    Refused(Refusal),
    Domain(DomainError),
}

impl From<Refusal> for Error {
    fn from(r: Refusal) -> Self {
        Error::Refused(r)
    }
}

impl From<DomainError> for Error {
    fn from(e: DomainError) -> Self {
        Error::Domain(e)
    }
}

/// One experiment's views, applied to as a store applies effects.
#[derive(Default)]
struct Maps {
    seen: Vec<String>,
    assignments: BTreeMap<String, Assignment>,
    tasks: BTreeMap<String, String>,
    rows: BTreeMap<(u64, String), UnitRow>,
    aggregates: BTreeMap<AggKey, MetricAggregate>,
    outcomes: BTreeMap<(u64, String), u64>,
    assigned: BTreeMap<(u64, u64, String), u64>,
    drift: BTreeMap<u64, DriftMonitor>,
}

impl Views for Maps {
    type Error = Error;

    fn seen(&self, _: &str, _: &str, event_id: &str) -> Result<bool, Error> {
        Ok(self.seen.iter().any(|e| e == event_id))
    }
    fn assignment(&self, _: &str, unit_id: &str) -> Result<Option<Assignment>, Error> {
        Ok(self.assignments.get(unit_id).cloned())
    }
    fn task_unit(&self, _: &str, task_id: &str) -> Result<Option<String>, Error> {
        Ok(self.tasks.get(task_id).cloned())
    }
    fn unit_row(&self, _: &str, epoch: u64, unit_id: &str) -> Result<Option<UnitRow>, Error> {
        Ok(self.rows.get(&(epoch, unit_id.to_string())).cloned())
    }
    fn aggregate(&self, _: &str, key: &AggKey) -> Result<Option<MetricAggregate>, Error> {
        Ok(self.aggregates.get(key).copied())
    }
    fn outcomes(&self, _: &str, epoch: u64, arm: &str) -> Result<u64, Error> {
        Ok(self
            .outcomes
            .get(&(epoch, arm.to_string()))
            .copied()
            .unwrap_or(0))
    }
    fn assigned(&self, _: &str, epoch: u64, period: u64, arm: &str) -> Result<u64, Error> {
        Ok(self
            .assigned
            .get(&(epoch, period, arm.to_string()))
            .copied()
            .unwrap_or(0))
    }
    fn bandit(&self, _: &str) -> Result<Option<BanditState>, Error> {
        Ok(None)
    }
    fn drift(&self, _: &str, epoch: u64) -> Result<Option<DriftMonitor>, Error> {
        Ok(self.drift.get(&epoch).cloned())
    }
}

impl Maps {
    fn assign(&mut self, standing: &Standing<'_>, a: Assignment) -> Result<Assignment, Error> {
        let effects = record_assignment(self, standing, a)?;
        let answer = effects.answer().clone();
        match effects {
            AssignmentEffects::Existing { bind_task, .. } => {
                if let Some(task) = bind_task {
                    self.tasks.insert(task, answer.unit_id.clone());
                }
            }
            AssignmentEffects::New {
                assignment,
                counted,
                index_task,
            } => {
                if counted {
                    *self
                        .assigned
                        .entry((assignment.epoch, assignment.period, assignment.arm.clone()))
                        .or_default() += 1;
                }
                if index_task {
                    self.tasks
                        .insert(assignment.task_id.clone(), assignment.unit_id.clone());
                }
                self.assignments
                    .insert(assignment.unit_id.clone(), assignment);
            }
        }
        Ok(answer)
    }

    /// Records an outcome; returns the automatic action it triggered, if any.
    fn record(
        &mut self,
        standing: &Standing<'_>,
        spec: &ExperimentSpec,
        o: &Outcome,
    ) -> Result<Option<AutoAction>, Error> {
        let OutcomeEffects::Accepted(effects) = record_outcome(self, standing, spec, o)? else {
            return Ok(None);
        };
        self.seen.push(o.event_id.clone());
        self.rows
            .insert((o.epoch, o.unit_id.clone()), effects.folded.row.clone());
        for d in &effects.folded.deltas {
            self.aggregates.entry(d.key.clone()).or_default().apply(d);
        }
        if let Some(step) = &effects.counted {
            *self
                .outcomes
                .entry((o.epoch, step.arm.clone()))
                .or_default() += 1;
        }
        if let Some(m) = &effects.drift {
            self.drift.insert(o.epoch, m.clone());
        }
        Ok(effects.action.clone())
    }
}

fn spec(extra: serde_json::Value) -> ExperimentSpec {
    let mut doc = json!({
        "key": "triage",
        "arms": [{"key": "human", "role": "baseline"}, {"key": "ai", "role": "treatment"}],
        "allocation": {"policy": "fixed", "weights": {"human": 0.5, "ai": 0.5}},
        "metrics": [
            {"key": "cycle_time", "kind": "duration", "direction": "decrease", "role": "primary"},
            {"key": "escalated", "kind": "binary", "direction": "decrease", "role": "guardrail"}
        ]
    });
    for (k, v) in extra.as_object().expect("object") {
        doc[k] = v.clone();
    }
    ExperimentSpec::parse(&doc).expect("valid spec")
}

fn assignment(unit: &str, task: &str, arm: &str, in_experiment: bool) -> Assignment {
    Assignment {
        experiment: "triage".to_string(),
        unit_id: unit.to_string(),
        task_id: task.to_string(),
        arm: arm.to_string(),
        in_experiment,
        version: 2,
        assignment_id: format!("id-{unit}"),
        propensity: if in_experiment { 0.5 } else { 1.0 },
        period: 0,
        epoch: 0,
        segments: BTreeMap::new(),
        assigned_at: 1_000,
    }
}

fn outcome(event: &str, unit: &str, arm: &str, metrics: &[(&str, f64)]) -> Outcome {
    Outcome {
        event_id: event.to_string(),
        experiment: "triage".to_string(),
        task_id: unit.to_string(),
        unit_id: unit.to_string(),
        arm: arm.to_string(),
        epoch: 0,
        ts: 2_000,
        metrics: metrics.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        handled_by: None,
        model_version: None,
        attributes: BTreeMap::new(),
    }
}

fn arms() -> Vec<String> {
    vec!["human".to_string(), "ai".to_string()]
}

fn running(arms: &[String]) -> Standing<'_> {
    Standing {
        status: Status::Running,
        epoch: 0,
        period: 0,
        arms,
    }
}

fn invalid(e: Result<impl std::fmt::Debug, Error>) -> String {
    match e {
        Err(Error::Refused(Refusal::Invalid(m))) => m,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn first_write_wins_and_a_task_binds_to_one_unit() {
    let arms = arms();
    let standing = running(&arms);
    let mut views = Maps::default();
    let first = views
        .assign(&standing, assignment("u1", "t1", "ai", true))
        .expect("new");
    assert_eq!(first.arm, "ai");
    // A returning unit keeps its arm, and its new task id is bound to it.
    let again = views
        .assign(&standing, assignment("u1", "t2", "human", true))
        .expect("returning");
    assert_eq!(again, first);
    assert_eq!(views.tasks.get("t2").map(String::as_str), Some("u1"));
    // Another unit cannot take either task; the stored unit is not named.
    for task in ["t1", "t2"] {
        match views.assign(&standing, assignment("u2", task, "human", true)) {
            Err(Error::Refused(Refusal::Conflict(m))) => assert!(!m.contains("u1"), "{m}"),
            other => panic!("{task}: {other:?}"),
        }
    }
    assert_eq!(views.assigned.values().sum::<u64>(), 1, "one unit counted");
}

#[test]
fn an_assignment_must_fit_the_experiment() {
    let arms = arms();
    let standing = running(&arms);
    let mut views = Maps::default();
    let cases = [
        (assignment("", "t", "ai", true), "unit_id must not be empty"),
        (assignment("u", "t", "robot", true), "has no arm \"robot\""),
        (
            Assignment {
                epoch: 1,
                ..assignment("u", "t", "ai", true)
            },
            "has no epoch 1",
        ),
        (
            Assignment {
                period: 3,
                ..assignment("u", "t", "ai", true)
            },
            "has no allocation period 3",
        ),
        (
            Assignment {
                propensity: 0.0,
                ..assignment("u", "t", "ai", true)
            },
            "propensity must be in (0, 1]",
        ),
    ];
    for (a, expected) in cases {
        let m = invalid(views.assign(&standing, a));
        assert!(m.contains(expected), "{m}");
    }
    let paused = Standing {
        status: Status::Paused,
        ..standing
    };
    let m = invalid(views.assign(&paused, assignment("u", "u", "ai", true)));
    assert!(m.contains("is paused, so no unit can enter it"), "{m}");
    // Outside the experiment is fine while paused, and is not counted.
    views
        .assign(&paused, assignment("u", "u", "human", false))
        .expect("outside");
    assert!(views.assigned.is_empty());
}

#[test]
fn an_outcome_is_checked_then_folded_and_counted_once() {
    let spec = spec(json!({}));
    let arms = arms();
    let standing = running(&arms);
    let mut views = Maps::default();
    views
        .assign(&standing, assignment("u1", "u1", "ai", true))
        .expect("assigned");
    views
        .assign(&standing, assignment("out", "out", "human", false))
        .expect("assigned");

    let m = invalid(views.record(
        &standing,
        &spec,
        &outcome("e", "nobody", "ai", &[("cycle_time", 1.0)]),
    ));
    assert!(m.contains("unit \"nobody\" has no assignment"), "{m}");
    let m = invalid(views.record(
        &standing,
        &spec,
        &outcome("e", "u1", "human", &[("cycle_time", 1.0)]),
    ));
    assert!(m.contains("was served arm \"ai\", not \"human\""), "{m}");
    let m = invalid(views.record(&standing, &spec, &outcome("e", "u1", "ai", &[])));
    assert!(m.contains("at least one metric"), "{m}");
    let m = invalid(views.record(
        &standing,
        &spec,
        &outcome("e", "u1", "ai", &[("cycle_time", f64::NAN)]),
    ));
    assert!(m.contains("must be a finite number"), "{m}");
    let m = invalid(views.record(
        &standing,
        &spec,
        &outcome(&"x".repeat(300), "u1", "ai", &[("cycle_time", 1.0)]),
    ));
    assert!(m.contains("event_id must be at most"), "{m}");

    let first = outcome("e1", "u1", "ai", &[("cycle_time", 12.0)]);
    views.record(&standing, &spec, &first).expect("accepted");
    assert!(matches!(
        record_outcome(&views, &standing, &spec, &first),
        Ok(OutcomeEffects::Duplicate)
    ));
    views
        .record(
            &standing,
            &spec,
            &outcome("e2", "u1", "ai", &[("cycle_time", 20.0)]),
        )
        .expect("accepted");
    // The unit's value is the mean of its events: one unit with 16 minutes.
    let overall = views
        .aggregates
        .iter()
        .find(|(k, _)| k.metric == "cycle_time" && k.scope == liftlab_domain::AggScope::Overall)
        .map(|(_, a)| *a)
        .expect("aggregate");
    assert_eq!(overall.moments.n(), 1);
    assert_eq!(overall.moments.mean(), 16.0);
    assert_eq!(views.outcomes.get(&(0, "ai".to_string())), Some(&2));

    // A unit outside the experiment: kept in its row, no aggregate or counter moves.
    let before = views.aggregates.clone();
    views
        .record(
            &standing,
            &spec,
            &outcome("e3", "out", "human", &[("cycle_time", 5.0)]),
        )
        .expect("accepted");
    assert_eq!(views.aggregates, before);
    assert_eq!(views.outcomes.get(&(0, "human".to_string())), None);
    assert!(views.rows.contains_key(&(0, "out".to_string())));
}

/// Units alternate between the arms (assigned while the experiment runs, recorded as
/// `standing` says); the AI arm escalates in `ai_rate` of cases.
fn feed(
    views: &mut Maps,
    standing: &Standing<'_>,
    spec: &ExperimentSpec,
    units: u64,
    ai_rate: f64,
) -> Vec<(u64, AutoAction)> {
    let current = running(standing.arms);
    let mut actions = Vec::new();
    for i in 0..units {
        let arm = if i % 2 == 0 { "human" } else { "ai" };
        let unit = format!("u{i}");
        views
            .assign(&current, assignment(&unit, &unit, arm, true))
            .expect("assigned");
        // A fixed pattern per arm: the baseline escalates in 10% of cases.
        let rate = if arm == "ai" { ai_rate } else { 0.10 };
        let k = i / 2;
        let escalated = ((k * 37) % 100) as f64 / 100.0 < rate;
        let o = outcome(
            &format!("e{i}"),
            &unit,
            arm,
            &[
                ("cycle_time", 20.0 + (k % 7) as f64),
                ("escalated", if escalated { 1.0 } else { 0.0 }),
            ],
        );
        if let Some(action) = views.record(standing, spec, &o).expect("accepted") {
            actions.push((i + 1, action));
        }
    }
    actions
}

#[test]
fn harm_pauses_at_a_check_and_only_when_asked() {
    let arms = arms();
    let standing = running(&arms);
    let asked = spec(json!({"analysis": {"auto_pause_on_harm": true}}));
    let actions = feed(&mut Maps::default(), &standing, &asked, 2000, 0.40);
    let (at, action) = actions.first().expect("harm found");
    assert_eq!(at % HARM_CHECK_EVERY, 0, "checked every {HARM_CHECK_EVERY}");
    match action {
        AutoAction::Pause { reason } => assert!(
            reason.starts_with("guardrail escalated is significantly worse in arm ai"),
            "{reason}"
        ),
        other => panic!("{other:?}"),
    }
    // The same data without the setting, or without harm, or once paused: nothing is done.
    assert!(feed(
        &mut Maps::default(),
        &standing,
        &spec(json!({})),
        2000,
        0.40
    )
    .is_empty());
    assert!(feed(&mut Maps::default(), &standing, &asked, 2000, 0.10).is_empty());
    let paused = Standing {
        status: Status::Paused,
        ..standing
    };
    // Units of a paused experiment were assigned while it ran; their outcomes still count,
    // and pause nothing more.
    assert!(feed(&mut Maps::default(), &paused, &asked, 2000, 0.40).is_empty());
}

/// A uniform number in [0, 1) from an index (SplitMix64), the same on every run.
fn uniform(i: u64) -> f64 {
    let mut z = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) as f64 / u64::MAX as f64
}

/// Cycle times whose AI advantage (24 + 4U against 30 + 4U) halves after unit 4600.
fn drifting(
    views: &mut Maps,
    standing: &Standing<'_>,
    spec: &ExperimentSpec,
) -> Vec<(u64, AutoAction)> {
    let current = running(standing.arms);
    let mut actions = Vec::new();
    for i in 0..5200u64 {
        let arm = if i % 2 == 0 { "human" } else { "ai" };
        let unit = format!("u{i}");
        views
            .assign(&current, assignment(&unit, &unit, arm, true))
            .expect("assigned");
        let base = match (arm, i >= 4600) {
            ("ai", false) => 24.0,
            ("ai", true) => 27.0,
            _ => 30.0,
        };
        let o = outcome(
            &format!("e{i}"),
            &unit,
            arm,
            &[("cycle_time", base + 4.0 * uniform(i))],
        );
        if let Some(action) = views.record(standing, spec, &o).expect("accepted") {
            actions.push((i, action));
        }
    }
    actions
}

#[test]
fn a_change_in_the_effect_rebaselines_the_current_epoch_only_when_asked() {
    let arms = arms();
    let standing = running(&arms);
    let asked = spec(json!({"drift": {"metrics": ["cycle_time"], "auto_rebaseline": true}}));
    let actions = drifting(&mut Maps::default(), &standing, &asked);
    let (at, action) = actions.first().expect("effect drift found");
    assert!(*at >= 4600, "found at {at}, before the change");
    match action {
        AutoAction::Rebaseline { reason } => assert!(
            reason.starts_with("effect drift: the lift of ai over human on cycle_time"),
            "{reason}"
        ),
        other => panic!("{other:?}"),
    }
    // Watching without acting; or outcomes of an epoch that is no longer the current one.
    let watched = spec(json!({"drift": {"metrics": ["cycle_time"]}}));
    let mut views = Maps::default();
    assert!(drifting(&mut views, &standing, &watched).is_empty());
    assert!(
        !views.drift[&0].effect_detections().is_empty(),
        "detected all the same"
    );
    let later = Standing {
        epoch: 1,
        ..standing
    };
    assert!(drifting(&mut Maps::default(), &later, &asked).is_empty());
}
