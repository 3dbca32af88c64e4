//! Every write operation against a [`Tx`]: experiment changes here, assignments and outcomes as the domain's step decides.
//!
//! The experiment operations follow the sled store's (`liftlab_store`'s `ops` module) line for
//! line, so the two stores agree on versions, epochs, periods and the bandit reset; the
//! conformance suite holds them to it.

use liftlab_domain::record::{self, AssignmentEffects, AutoAction, OutcomeEffects, Standing};
use liftlab_domain::thompson::BanditState;
use liftlab_domain::{
    initial_period, AllocationPeriod, Assignment, ExperimentSpec, ExperimentVersion, Millis,
    Outcome, Transition,
};
use liftlab_store::{AuditKind, Epoch, Recorded, StoreError, TaskBinding};

use crate::error::Fail;
use crate::tx::{Lock, State, Tx};

fn arm_keys(spec: &ExperimentSpec) -> Vec<String> {
    spec.arms().iter().map(|a| a.key().to_string()).collect()
}

fn standing(st: &State) -> Standing<'_> {
    Standing {
        status: st.status,
        epoch: st.epoch,
        period: st.period,
        arms: &st.arms,
    }
}

/// Opens allocation period `period.period` and makes it current.
fn open_period(tx: &Tx<'_>, st: &mut State, period: &AllocationPeriod) -> Result<(), Fail> {
    st.period = period.period;
    tx.put_period(period.clone());
    tx.audit(
        AuditKind::PeriodOpened,
        &period.experiment,
        period,
        period.opened_at,
    )
}

pub(crate) fn create_experiment(
    tx: &Tx<'_>,
    spec: ExperimentSpec,
    now: Millis,
) -> Result<ExperimentVersion, Fail> {
    let key = spec.key().to_string();
    if tx.exists(&key)? {
        return Err(StoreError::Conflict(format!("experiment {key:?} already exists")).into());
    }
    let period = initial_period(&spec, now);
    let bandit = BanditState::new(&spec);
    let v = ExperimentVersion::created(spec, now);
    let mut st = State {
        version: v.version,
        epoch: 0,
        period: 0,
        status: v.status,
        arms: arm_keys(&v.spec),
    };
    tx.audit(AuditKind::ExperimentCreated, &key, &v, now)?;
    tx.put_epoch(Epoch {
        experiment: key.clone(),
        epoch: 0,
        reason: "created".to_string(),
        started_at: now,
        version: v.version,
    });
    open_period(tx, &mut st, &period)?;
    if let Some(b) = bandit {
        tx.put_bandit(&key, Some(b));
    }
    tx.create_exp(st, v.clone());
    Ok(v)
}

pub(crate) fn update_experiment(
    tx: &Tx<'_>,
    spec: ExperimentSpec,
    expected_version: Option<u64>,
    now: Millis,
) -> Result<ExperimentVersion, Fail> {
    use liftlab_domain::record::Views as _;
    let key = spec.key().to_string();
    let (mut st, cur) = tx.exp(&key, Lock::Update)?;
    if let Some(expected) = expected_version {
        if expected != cur.version {
            return Err(StoreError::Conflict(format!(
                "experiment {key:?} is at version {}, not {expected}",
                cur.version
            ))
            .into());
        }
    }
    let next = cur.updated(spec, None, now)?;
    let old_bandit = tx.bandit(&key)?;
    let new_bandit = BanditState::new(&next.spec);
    let arms_changed = arm_keys(&next.spec) != st.arms;
    let reset_bandit = match (&old_bandit, &new_bandit) {
        (Some(old), Some(new)) => arms_changed || old.reward() != new.reward(),
        (None, Some(_)) => true,
        (Some(_), None) | (None, None) => false,
    };
    let fresh = initial_period(&next.spec, now);
    let cur_period = tx.period(&key, st.period)?;
    let weights_changed = cur_period.map(|p| p.weights) != Some(fresh.weights.clone());
    let policy_changed = next.spec.allocation().policy() != cur.spec.allocation().policy();
    let new_period = if new_bandit.is_some() {
        reset_bandit || policy_changed
    } else {
        weights_changed || policy_changed
    };
    match (reset_bandit, new_bandit) {
        (true, Some(b)) => tx.put_bandit(&key, Some(b)),
        (_, None) if old_bandit.is_some() => tx.put_bandit(&key, None),
        _ => {}
    }
    st.version = next.version;
    st.status = next.status;
    st.arms = arm_keys(&next.spec);
    tx.audit(AuditKind::SpecChanged, &key, &next, now)?;
    if new_period {
        let period = AllocationPeriod {
            period: st.period + 1,
            ..fresh
        };
        open_period(tx, &mut st, &period)?;
    }
    tx.put_exp(st, next.clone());
    Ok(next)
}

pub(crate) fn transition(
    tx: &Tx<'_>,
    key: &str,
    t: Transition,
    reason: Option<String>,
    now: Millis,
) -> Result<ExperimentVersion, Fail> {
    let (mut st, cur) = tx.exp(key, Lock::Update)?;
    let next = cur.transitioned(t, reason, now)?;
    st.version = next.version;
    st.status = next.status;
    tx.audit(AuditKind::StatusChanged, key, &next, now)?;
    tx.put_exp(st, next.clone());
    Ok(next)
}

pub(crate) fn rebaseline(
    tx: &Tx<'_>,
    key: &str,
    reason: String,
    now: Millis,
) -> Result<Epoch, Fail> {
    if reason.trim().is_empty() {
        return Err(StoreError::Invalid("a re-baseline needs a reason".to_string()).into());
    }
    let (mut st, cur) = tx.exp(key, Lock::Update)?;
    let epoch_no = st.epoch + 1;
    let next = cur.rebaselined(epoch_no, Some(reason.clone()), now);
    let epoch = Epoch {
        experiment: key.to_string(),
        epoch: epoch_no,
        reason,
        started_at: now,
        version: next.version,
    };
    st.version = next.version;
    st.epoch = epoch_no;
    tx.put_epoch(epoch.clone());
    tx.audit(AuditKind::Rebaselined, key, &epoch, now)?;
    tx.put_exp(st, next);
    Ok(epoch)
}

/// Stores an assignment as [`record::record_assignment`] decides.
pub(crate) fn record_assignment(tx: &Tx<'_>, a: Assignment) -> Result<Assignment, Fail> {
    let exp = a.experiment.clone();
    let at = a.assigned_at;
    let (st, _) = tx.exp(&exp, Lock::Share)?;
    match record::record_assignment(tx, &standing(&st), a)? {
        AssignmentEffects::Existing { stored, bind_task } => {
            if let Some(task_id) = bind_task {
                let binding = TaskBinding {
                    task_id,
                    unit_id: stored.unit_id.clone(),
                };
                tx.audit(AuditKind::TaskBound, &exp, &binding, at)?;
                tx.put_task(&exp, &binding.task_id, &binding.unit_id);
            }
            Ok(stored)
        }
        AssignmentEffects::New {
            assignment: a,
            counted,
            index_task,
        } => {
            if counted {
                tx.count_assignment(&a);
            }
            if index_task {
                tx.put_task(&exp, &a.task_id, &a.unit_id);
            }
            tx.audit(AuditKind::Assigned, &exp, &a, a.assigned_at)?;
            tx.put_assignment(a.clone());
            Ok(a)
        }
    }
}

/// How the outcomes of `spec` lock their experiment row: `FOR UPDATE` when one may change
/// the experiment or a per-experiment row (a bandit's period and state, a drift monitor, an
/// automatic pause or re-baseline), `FOR SHARE` otherwise, so plain outcomes of one
/// experiment commit side by side.
pub(crate) fn outcome_lock(spec: &ExperimentSpec, outcomes: &[Outcome]) -> Lock {
    let exclusive = spec.allocation().thompson().is_some()
        || spec.drift().is_some()
        || spec.analysis().auto_pause_on_harm()
        || outcomes.iter().any(|o| o.model_version.is_some());
    if exclusive {
        Lock::Update
    } else {
        Lock::Share
    }
}

pub(crate) fn record_outcome(
    tx: &Tx<'_>,
    spec: &ExperimentSpec,
    lock: Lock,
    outcome: Outcome,
) -> Result<Recorded, Fail> {
    let exp = outcome.experiment.clone();
    let st = match tx.exp(&exp, lock) {
        Ok((st, _)) => st,
        Err(e) if spec.key() == exp => return Err(e),
        Err(_) => {
            return Err(StoreError::Invalid(format!(
                "outcome for experiment {exp:?} recorded with the spec of {:?}",
                spec.key()
            ))
            .into())
        }
    };
    let effects = record::record_outcome(tx, &standing(&st), spec, &outcome)?;
    let OutcomeEffects::Accepted(effects) = effects else {
        return Ok(Recorded::Duplicate);
    };
    apply_outcome(tx, st, &outcome, *effects)?;
    tx.put_event(&outcome);
    tx.audit(AuditKind::OutcomeRecorded, &exp, &outcome, outcome.ts)?;
    Ok(Recorded::Accepted)
}

/// Applies an accepted outcome's effects, as the sled store does, in the same transaction.
fn apply_outcome(
    tx: &Tx<'_>,
    mut st: State,
    outcome: &Outcome,
    effects: record::Accepted,
) -> Result<(), Fail> {
    let exp = outcome.experiment.as_str();
    let record::Accepted {
        folded,
        counted,
        bandit,
        period,
        drift,
        action,
    } = effects;
    tx.put_unit_row(folded.row);
    for delta in &folded.deltas {
        tx.apply_delta(exp, delta);
    }
    if let Some(step) = counted {
        tx.step_counter(exp, outcome.epoch, &step);
    }
    if let Some(period) = period {
        open_period(tx, &mut st, &period)?;
        let (_, current) = tx.exp(exp, Lock::Update)?;
        tx.put_exp_state(exp, st, current);
    }
    if let Some(bandit) = bandit {
        tx.put_bandit(exp, Some(bandit));
    }
    if let Some(monitor) = drift {
        tx.put_drift(exp, outcome.epoch, monitor);
    }
    match action {
        Some(AutoAction::Rebaseline { reason }) => {
            rebaseline(tx, exp, reason, outcome.ts)?;
        }
        Some(AutoAction::Pause { reason }) => {
            transition(tx, exp, Transition::Pause, Some(reason), outcome.ts)?;
        }
        None => {}
    }
    Ok(())
}
