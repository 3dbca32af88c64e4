//! The write path as one pure step: what recording an assignment or an outcome changes, decided from views.
//!
//! A store answers the questions of [`Views`] from its committed state plus the writes of the
//! batch in progress, calls [`record_assignment`] or [`record_outcome`], and applies the
//! returned effects atomically, in the same batch as the event. Every rule lives here: the
//! checks, first write wins, the task index, the unit row and aggregate deltas, the counters,
//! the bandit step and the allocation period it opens, the drift step, and the automatic
//! actions that follow (a re-baseline on a change in a treatment's effect, a pause on harm).
//! No store and no server decides any of it, and no state outside the views is consulted, so
//! two stores (or two replicas) that hold the same views decide the same thing.

use crate::assign::id_problem;
use crate::drift::{DriftMonitor, EffectDetection};
use crate::fold::{fold, Folded};
use crate::model::{
    AggKey, AllocationPeriod, Assignment, HandledBy, MetricAggregate, Outcome, Status, UnitRow,
};
use crate::report::{self, PeriodCount};
use crate::spec::ExperimentSpec;
use crate::thompson::BanditState;
use crate::DomainError;

/// A running experiment with `analysis.auto_pause_on_harm` is checked for harm each time the
/// count of its epoch's outcomes (units in the experiment only) reaches a multiple of this.
pub const HARM_CHECK_EVERY: u64 = 200;

/// Why a write was refused: the caller's mistake, never the store's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The event does not fit the experiment (unknown arm, epoch or unit, a bad value).
    #[error("{0}")]
    Invalid(String),
    /// The event contradicts what is stored (a task id bound to another unit).
    #[error("{0}")]
    Conflict(String),
}

/// Where an experiment stands when an event arrives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Standing<'a> {
    /// Its lifecycle status.
    pub status: Status,
    /// The current analysis epoch.
    pub epoch: u64,
    /// The allocation period in force.
    pub period: u64,
    /// Its arm keys.
    pub arms: &'a [String],
}

/// What the step reads: the store's views as of the batch in progress.
pub trait Views {
    /// The store's error; refusals and domain errors become one of it.
    type Error: From<Refusal> + From<DomainError>;

    /// Whether `event_id` was recorded before for this unit of the experiment.
    ///
    /// Idempotency is per (experiment, unit, event id): a retry carries its task, so it
    /// resolves to the same unit, and the unit's own record holds the ids it has seen.
    fn seen(&self, experiment: &str, unit_id: &str, event_id: &str) -> Result<bool, Self::Error>;
    /// The stored assignment of a unit.
    fn assignment(
        &self,
        experiment: &str,
        unit_id: &str,
    ) -> Result<Option<Assignment>, Self::Error>;
    /// The unit a task id was bound to by the task index (a unit's own id as its task has no
    /// entry: the assignment names it).
    fn task_unit(&self, experiment: &str, task_id: &str) -> Result<Option<String>, Self::Error>;
    /// A unit's row in an epoch.
    fn unit_row(
        &self,
        experiment: &str,
        epoch: u64,
        unit_id: &str,
    ) -> Result<Option<UnitRow>, Self::Error>;
    /// One aggregate.
    fn aggregate(
        &self,
        experiment: &str,
        key: &AggKey,
    ) -> Result<Option<MetricAggregate>, Self::Error>;
    /// Outcomes recorded for an arm's units in an epoch.
    fn outcomes(&self, experiment: &str, epoch: u64, arm: &str) -> Result<u64, Self::Error>;
    /// Units an allocation period placed into an arm in an epoch.
    fn assigned(
        &self,
        experiment: &str,
        epoch: u64,
        period: u64,
        arm: &str,
    ) -> Result<u64, Self::Error>;
    /// The bandit state of a Thompson experiment.
    fn bandit(&self, experiment: &str) -> Result<Option<BanditState>, Self::Error>;
    /// The drift monitor of an epoch.
    fn drift(&self, experiment: &str, epoch: u64) -> Result<Option<DriftMonitor>, Self::Error>;
}

/// What recording an assignment changes.
#[derive(Clone, Debug, PartialEq)]
pub enum AssignmentEffects {
    /// The unit was assigned before (first write wins): nothing changes, unless the request
    /// brought a task id that no unit has yet, which is bound to the unit (`bind_task`: the
    /// index entry and a `task_bound` audit record).
    Existing {
        /// The stored assignment, which is the answer.
        stored: Assignment,
        /// The new task id to bind to the unit, if any.
        bind_task: Option<String>,
    },
    /// A new assignment to store and log.
    New {
        /// The assignment.
        assignment: Assignment,
        /// Whether it counts towards the (epoch, period, arm) assignment count: units in the
        /// experiment only.
        counted: bool,
        /// Whether its task id needs an index entry (a task id other than the unit's own).
        index_task: bool,
    },
}

impl AssignmentEffects {
    /// The assignment the caller gets back.
    pub fn answer(&self) -> &Assignment {
        match self {
            AssignmentEffects::Existing { stored, .. } => stored,
            AssignmentEffects::New { assignment, .. } => assignment,
        }
    }
}

/// What recording an outcome changes.
#[derive(Clone, Debug, PartialEq)]
pub enum OutcomeEffects {
    /// `(experiment, unit, event_id)` was recorded before: nothing changes.
    Duplicate,
    /// A new event: log it and apply every change, in this order.
    Accepted(Box<Accepted>),
}

/// The changes of a new outcome.
#[derive(Clone, Debug, PartialEq)]
pub struct Accepted {
    /// The unit's new row and the aggregate deltas (see [`fold`]).
    pub folded: Folded,
    /// The arm's counter step; `None` for a unit outside the experiment, whose outcome is
    /// logged and kept in its row but changes no aggregate, counter, bandit or monitor.
    pub counted: Option<CounterStep>,
    /// The bandit's new state, when the outcome fed it.
    pub bandit: Option<BanditState>,
    /// The allocation period the bandit's recomputation opened, if one was due.
    pub period: Option<AllocationPeriod>,
    /// The epoch's drift monitor after the outcome, when it watched it.
    pub drift: Option<DriftMonitor>,
    /// The automatic action the outcome triggers, taken in the same batch.
    pub action: Option<AutoAction>,
}

/// One outcome's step of its arm's counters in its epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CounterStep {
    /// The arm.
    pub arm: String,
    /// Whether the unit had no outcome in the epoch before (it now counts as a unit).
    pub new_unit: bool,
    /// Who handled the case, when the outcome said.
    pub handled_by: Option<HandledBy>,
}

/// An action liftlab takes by itself after an outcome, as the spec asks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AutoAction {
    /// `drift.auto_rebaseline`: a treatment's effect changed, so a new epoch starts.
    Rebaseline {
        /// The detection, in words (the new epoch's reason).
        reason: String,
    },
    /// `analysis.auto_pause_on_harm`: a guardrail is significantly worse in a treatment.
    Pause {
        /// The harm test's finding, in words (the pause's reason).
        reason: String,
    },
}

/// Checks a caller-supplied id by the one rule ([`id_problem`]).
pub fn check_id(what: &str, id: &str) -> Result<(), Refusal> {
    match id_problem(id) {
        None => Ok(()),
        Some(problem) => Err(Refusal::Invalid(format!("{what} {problem}"))),
    }
}

/// Decides what storing `a` changes: first write wins per (experiment, unit); a task id bound
/// to another unit is a conflict; a new assignment must name an arm, epoch and period the
/// experiment has, a propensity in (0, 1], and may enter the experiment only while it runs.
pub fn record_assignment<V: Views>(
    views: &V,
    standing: &Standing<'_>,
    a: Assignment,
) -> Result<AssignmentEffects, V::Error> {
    check_id("unit_id", &a.unit_id)?;
    check_id("task_id", &a.task_id)?;
    let exp = a.experiment.as_str();
    let stored = views.assignment(exp, &a.unit_id)?;
    let bound = if stored.as_ref().is_some_and(|s| s.task_id == a.task_id) {
        Some(a.unit_id.clone())
    } else if let Some(unit) = views.task_unit(exp, &a.task_id)? {
        Some(unit)
    } else if a.task_id == a.unit_id {
        // The unit of the task's own id was read above and does not name it.
        None
    } else {
        views
            .assignment(exp, &a.task_id)?
            .filter(|owner| owner.task_id == a.task_id)
            .map(|owner| owner.unit_id)
    };
    if bound.as_ref().is_some_and(|unit| *unit != a.unit_id) {
        // The other unit is not named: the answer goes to whoever asked for this one.
        return Err(Refusal::Conflict(format!(
            "task {:?} already belongs to another unit of experiment {exp:?}",
            a.task_id
        ))
        .into());
    }
    if let Some(stored) = stored {
        return Ok(AssignmentEffects::Existing {
            stored,
            bind_task: bound.is_none().then(|| a.task_id.clone()),
        });
    }
    let invalid = |message: String| Err(Refusal::Invalid(message).into());
    if !standing.arms.contains(&a.arm) {
        return invalid(format!("experiment {exp:?} has no arm {:?}", a.arm));
    }
    if a.epoch > standing.epoch {
        return invalid(format!(
            "experiment {exp:?} has no epoch {} (the current one is {})",
            a.epoch, standing.epoch
        ));
    }
    if a.period > standing.period {
        return invalid(format!(
            "experiment {exp:?} has no allocation period {} (the current one is {})",
            a.period, standing.period
        ));
    }
    if !(a.propensity > 0.0 && a.propensity <= 1.0) {
        return invalid(format!(
            "propensity must be in (0, 1], got {}",
            a.propensity
        ));
    }
    if a.in_experiment && standing.status != Status::Running {
        return invalid(format!(
            "experiment {exp:?} is {}, so no unit can enter it",
            standing.status
        ));
    }
    Ok(AssignmentEffects::New {
        counted: a.in_experiment,
        index_task: a.task_id != a.unit_id,
        assignment: a,
    })
}

/// Decides what recording `outcome` under `spec` changes (see [`Accepted`]).
///
/// Refused: an outcome of another experiment than the spec's, an empty or overlong event id,
/// an epoch the experiment does not have, no metric, a metric that is not finite, a unit
/// without an assignment, or an arm other than the one the unit was served.
pub fn record_outcome<V: Views>(
    views: &V,
    standing: &Standing<'_>,
    spec: &ExperimentSpec,
    outcome: &Outcome,
) -> Result<OutcomeEffects, V::Error> {
    let exp = outcome.experiment.as_str();
    let invalid = |message: String| Err(Refusal::Invalid(message).into());
    if spec.key() != exp {
        return invalid(format!(
            "outcome for experiment {exp:?} recorded with the spec of {:?}",
            spec.key()
        ));
    }
    check_id("event_id", &outcome.event_id)?;
    if views.seen(exp, &outcome.unit_id, &outcome.event_id)? {
        return Ok(OutcomeEffects::Duplicate);
    }
    if outcome.epoch > standing.epoch {
        return invalid(format!(
            "experiment {exp:?} has no epoch {} (the current one is {})",
            outcome.epoch, standing.epoch
        ));
    }
    if outcome.metrics.is_empty() {
        return invalid("an outcome needs at least one metric".to_string());
    }
    if let Some((k, v)) = outcome.metrics.iter().find(|(_, v)| !v.is_finite()) {
        return invalid(format!("metric {k:?} must be a finite number, got {v}"));
    }
    let Some(assignment) = views.assignment(exp, &outcome.unit_id)? else {
        return invalid(format!(
            "unit {:?} has no assignment in experiment {exp:?}",
            outcome.unit_id
        ));
    };
    if assignment.arm != outcome.arm {
        return invalid(format!(
            "unit {:?} was served arm {:?}, not {:?}",
            outcome.unit_id, assignment.arm, outcome.arm
        ));
    }

    let row = views.unit_row(exp, outcome.epoch, &outcome.unit_id)?;
    let folded = fold(spec, &assignment, row, outcome);
    let mut accepted = Accepted {
        counted: None,
        bandit: None,
        period: None,
        drift: None,
        action: None,
        folded,
    };
    if !assignment.in_experiment {
        return Ok(OutcomeEffects::Accepted(Box::new(accepted)));
    }
    accepted.counted = Some(CounterStep {
        arm: outcome.arm.clone(),
        new_unit: accepted.folded.new_unit,
        handled_by: outcome.handled_by,
    });
    bandit_step(views, standing, spec, outcome, &mut accepted)?;
    let detection = drift_step(views, spec, outcome, &mut accepted)?;
    let current_epoch = outcome.epoch == standing.epoch;
    accepted.action = match detection {
        Some(d) if current_epoch && spec.drift().is_some_and(|s| s.auto_rebaseline()) => {
            Some(AutoAction::Rebaseline {
                reason: rebaseline_reason(&d),
            })
        }
        _ if current_epoch
            && standing.status == Status::Running
            && spec.analysis().auto_pause_on_harm() =>
        {
            harm_step(views, standing, spec, outcome, &accepted)?
        }
        _ => None,
    };
    Ok(OutcomeEffects::Accepted(Box::new(accepted)))
}

/// Feeds a bandit's reward and, when a recomputation is due, opens the next allocation period.
fn bandit_step<V: Views>(
    views: &V,
    standing: &Standing<'_>,
    spec: &ExperimentSpec,
    outcome: &Outcome,
    accepted: &mut Accepted,
) -> Result<(), V::Error> {
    if spec.allocation().thompson().is_none() {
        return Ok(());
    }
    let Some(mut bandit) = views.bandit(spec.key())? else {
        return Ok(());
    };
    if !bandit.observe_outcome(spec, outcome)? {
        return Ok(());
    }
    if bandit.due(spec) {
        accepted.period = Some(bandit.recompute(spec, standing.period + 1, outcome.ts));
    }
    accepted.bandit = Some(bandit);
    Ok(())
}

/// Feeds the epoch's drift monitor, when the spec monitors drift or the outcome names a model
/// version (the monitor keeps each arm's first-seen time per model version, for the chart).
/// Returns the first effect detection this outcome caused.
fn drift_step<V: Views>(
    views: &V,
    spec: &ExperimentSpec,
    outcome: &Outcome,
    accepted: &mut Accepted,
) -> Result<Option<EffectDetection>, V::Error> {
    if spec.drift().is_none() && outcome.model_version.is_none() {
        return Ok(None);
    }
    let mut monitor = views.drift(spec.key(), outcome.epoch)?.unwrap_or_default();
    let before = monitor.effect_detections().len();
    // Level detections are recorded inside the monitor: workload drift, never acted on.
    let _levels = monitor.observe(spec, outcome);
    let detection = monitor.effect_detections().get(before).cloned();
    accepted.drift = Some(monitor);
    Ok(detection)
}

/// The new epoch's reason for an effect detection.
fn rebaseline_reason(d: &EffectDetection) -> String {
    format!(
        "effect drift: the lift of {} over {} on {} went from {:+.1}% to {:+.1}% at {}",
        d.arm,
        d.baseline,
        d.metric,
        d.effect_before.estimate * 100.0,
        d.effect_after.estimate * 100.0,
        report::format_ts(d.detected_at),
    )
}

/// Every [`HARM_CHECK_EVERY`] outcomes of the epoch, runs the report's harm test on the views
/// (this outcome's deltas included) and proposes a pause when a guardrail is harmed.
fn harm_step<V: Views>(
    views: &V,
    standing: &Standing<'_>,
    spec: &ExperimentSpec,
    outcome: &Outcome,
    accepted: &Accepted,
) -> Result<Option<AutoAction>, V::Error> {
    let exp = spec.key();
    let epoch = outcome.epoch;
    let mut outcomes = 1;
    for arm in standing.arms {
        outcomes += views.outcomes(exp, epoch, arm)?;
    }
    if outcomes % HARM_CHECK_EVERY != 0 {
        return Ok(None);
    }
    let mut aggregates = Vec::new();
    let mut assignments = Vec::new();
    for arm in standing.arms {
        for period in 0..=standing.period {
            let count = views.assigned(exp, epoch, period, arm)?;
            if count > 0 {
                assignments.push(PeriodCount {
                    period,
                    arm: arm.clone(),
                    count,
                });
            }
        }
        for key in report::harm_keys(spec, epoch, arm, standing.period) {
            let stored = views.aggregate(exp, &key)?;
            let mut aggregate = stored.unwrap_or_default();
            let mut touched = stored.is_some();
            for delta in accepted.folded.deltas.iter().filter(|d| d.key == key) {
                aggregate.apply(delta);
                touched = true;
            }
            if touched {
                aggregates.push((key, aggregate));
            }
        }
    }
    Ok(
        report::harm_of(spec, epoch, &aggregates, &assignments).map(|harm| AutoAction::Pause {
            reason: format!(
                "guardrail {} is significantly worse in arm {} (harm test p = {:.4}, relative lift {:+.1}% to {:+.1}%)",
                harm.metric,
                harm.arm,
                harm.p_value,
                harm.ci_low * 100.0,
                harm.ci_high * 100.0
            ),
        }),
    )
}
