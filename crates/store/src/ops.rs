//! Every operation of the store, written once against the key-value seam and shared by both stores.
//!
//! Write operations take a [`Tx`] and are all-or-nothing: they validate before they write,
//! and an `Err` anywhere drops their writes (see [`crate::kv::atomically`]). Read operations
//! take a [`Scan`] over committed state.

use liftlab_domain::drift::DriftMonitor;
use liftlab_domain::record::{
    self, AssignmentEffects, AutoAction, OutcomeEffects, Standing, Views,
};
use liftlab_domain::thompson::BanditState;
use liftlab_domain::{
    initial_period, AggKey, AllocationPeriod, Assignment, ExperimentSpec, ExperimentVersion,
    MetricAggregate, Millis, Outcome, Transition, UnitRow,
};

use crate::audit;
use crate::codec::decode;
use crate::error::{Result, StoreError};
use crate::kv::{get_as, scan_as, Scan, Tx};
use crate::records::{
    ArmCounters, AssignmentCount, AuditKind, AuditRecord, Epoch, ExpState, Recorded,
};
use crate::tree::TreeId;

/// The meta key of the last outcome log sequence number.
const OUTCOME_SEQ_KEY: &[u8] = b"outcome_seq";

/// Keys of every table, in one place.
pub(crate) mod keys {
    use liftlab_domain::{AggKey, AggScope};

    use crate::codec::{Key, KeyReader};
    use crate::error::{Result, StoreError};
    use crate::tree::TreeId;

    pub(crate) fn exp(exp: &str) -> Vec<u8> {
        Key::new().str(exp).into_bytes()
    }

    pub(crate) fn exp_n(exp: &str, n: u64) -> Vec<u8> {
        Key::new().str(exp).u64(n).into_bytes()
    }

    pub(crate) fn exp_id(exp: &str, id: &str) -> Vec<u8> {
        Key::new().str(exp).str(id).into_bytes()
    }

    pub(crate) fn unit_row(exp: &str, epoch: u64, unit: &str) -> Vec<u8> {
        Key::new().str(exp).u64(epoch).str(unit).into_bytes()
    }

    pub(crate) fn counter(exp: &str, epoch: u64, arm: &str) -> Vec<u8> {
        Key::new().str(exp).u64(epoch).str(arm).into_bytes()
    }

    pub(crate) fn assignment_count(exp: &str, epoch: u64, period: u64, arm: &str) -> Vec<u8> {
        Key::new()
            .str(exp)
            .u64(epoch)
            .u64(period)
            .str(arm)
            .into_bytes()
    }

    /// Reads an aggregate's key back (the experiment is dropped).
    pub(crate) fn parse_aggregate(key: &[u8]) -> Result<AggKey> {
        let mut r = KeyReader::new(TreeId::Aggregates, key);
        let _experiment = r.str()?;
        let epoch = r.u64()?;
        let arm = r.str()?;
        let metric = r.str()?;
        let scope = match r.tag()? {
            0 => AggScope::Overall,
            1 => AggScope::Segment {
                attribute: r.str()?,
                value: r.str()?,
            },
            2 => AggScope::Day(r.i64()?),
            3 => AggScope::Paired,
            4 => AggScope::PairSum,
            5 => AggScope::Hour(r.i64()?),
            6 => AggScope::Period(r.u64()?),
            7 => AggScope::PeriodPaired(r.u64()?),
            8 => AggScope::PeriodPairSum(r.u64()?),
            t => {
                return Err(StoreError::corrupt(
                    TreeId::Aggregates.name(),
                    key,
                    format!("unknown aggregate scope tag {t}"),
                ))
            }
        };
        r.end()?;
        Ok(AggKey {
            epoch,
            arm,
            metric,
            scope,
        })
    }

    pub(crate) fn aggregate(exp: &str, key: &AggKey) -> Vec<u8> {
        let k = Key::new()
            .str(exp)
            .u64(key.epoch)
            .str(&key.arm)
            .str(&key.metric);
        match &key.scope {
            AggScope::Overall => k.tag(0),
            AggScope::Segment { attribute, value } => k.tag(1).str(attribute).str(value),
            AggScope::Day(day) => k.tag(2).i64(*day),
            AggScope::Paired => k.tag(3),
            AggScope::PairSum => k.tag(4),
            AggScope::Hour(hour) => k.tag(5).i64(*hour),
            AggScope::Period(period) => k.tag(6).u64(*period),
            AggScope::PeriodPaired(period) => k.tag(7).u64(*period),
            AggScope::PeriodPairSum(period) => k.tag(8).u64(*period),
        }
        .into_bytes()
    }
}

fn state(tx: &Tx<'_>, exp: &str) -> Result<ExpState> {
    tx.get_shared(TreeId::State, &keys::exp(exp))?
        .ok_or_else(|| StoreError::no_experiment(exp))
}

fn current(tx: &Tx<'_>, exp: &str) -> Result<ExperimentVersion> {
    tx.get_as(TreeId::Experiments, &keys::exp(exp))?
        .ok_or_else(|| StoreError::no_experiment(exp))
}

fn arm_keys(spec: &ExperimentSpec) -> Vec<String> {
    spec.arms().iter().map(|a| a.key().to_string()).collect()
}

/// Stores a new current version and its copy in the version history.
fn put_version(tx: &mut Tx<'_>, v: &ExperimentVersion) {
    tx.put(TreeId::Experiments, keys::exp(&v.key), v.clone());
    tx.put(TreeId::Versions, keys::exp_n(&v.key, v.version), v.clone());
}

/// Opens allocation period `period.period` and makes it current.
fn open_period(tx: &mut Tx<'_>, st: &mut ExpState, period: &AllocationPeriod) -> Result<()> {
    st.period = period.period;
    tx.put(
        TreeId::Periods,
        keys::exp_n(&period.experiment, period.period),
        period.clone(),
    );
    audit::append(
        tx,
        AuditKind::PeriodOpened,
        &period.experiment,
        period,
        period.opened_at,
    )?;
    Ok(())
}

pub(crate) fn create_experiment(
    tx: &mut Tx<'_>,
    spec: ExperimentSpec,
    now: Millis,
) -> Result<ExperimentVersion> {
    let key = spec.key().to_string();
    if tx.contains(TreeId::State, &keys::exp(&key))? {
        return Err(StoreError::Conflict(format!(
            "experiment {key:?} already exists"
        )));
    }
    let period = initial_period(&spec, now);
    let bandit = BanditState::new(&spec);
    let v = ExperimentVersion::created(spec, now);
    let mut st = ExpState {
        version: v.version,
        epoch: 0,
        period: 0,
        status: v.status,
        arms: arm_keys(&v.spec),
    };
    put_version(tx, &v);
    audit::append(tx, AuditKind::ExperimentCreated, &key, &v, now)?;
    let epoch = Epoch {
        experiment: key.clone(),
        epoch: 0,
        reason: "created".to_string(),
        started_at: now,
        version: v.version,
    };
    tx.put(TreeId::Epochs, keys::exp_n(&key, 0), epoch);
    open_period(tx, &mut st, &period)?;
    if let Some(b) = bandit {
        tx.put(TreeId::Bandits, keys::exp(&key), b);
    }
    tx.put(TreeId::State, keys::exp(&key), st);
    Ok(v)
}

pub(crate) fn update_experiment(
    tx: &mut Tx<'_>,
    spec: ExperimentSpec,
    expected_version: Option<u64>,
    now: Millis,
) -> Result<ExperimentVersion> {
    let key = spec.key().to_string();
    let mut st = state(tx, &key)?;
    let cur = current(tx, &key)?;
    if let Some(expected) = expected_version {
        if expected != cur.version {
            return Err(StoreError::Conflict(format!(
                "experiment {key:?} is at version {}, not {expected}",
                cur.version
            )));
        }
    }
    let next = cur.updated(spec, None, now)?;

    // Keep the allocation exact: a bandit whose arms or reward changed starts over, and a
    // change of weights (or of policy) opens a new period, so every later assignment's
    // propensity is the weight it was really drawn with.
    let old_bandit: Option<BanditState> = tx.get_as(TreeId::Bandits, &keys::exp(&key))?;
    let new_bandit = BanditState::new(&next.spec);
    let arms_changed = arm_keys(&next.spec) != st.arms;
    let reset_bandit = match (&old_bandit, &new_bandit) {
        (Some(old), Some(new)) => arms_changed || old.reward() != new.reward(),
        (None, Some(_)) => true,
        (Some(_), None) | (None, None) => false,
    };
    let fresh = initial_period(&next.spec, now);
    let cur_period: Option<AllocationPeriod> =
        tx.get_as(TreeId::Periods, &keys::exp_n(&key, st.period))?;
    let weights_changed = cur_period.map(|p| p.weights) != Some(fresh.weights.clone());
    let policy_changed = next.spec.allocation().policy() != cur.spec.allocation().policy();
    let new_period = if new_bandit.is_some() {
        reset_bandit || policy_changed
    } else {
        weights_changed || policy_changed
    };
    match (reset_bandit, new_bandit) {
        (true, Some(b)) => tx.put(TreeId::Bandits, keys::exp(&key), b),
        (_, None) if old_bandit.is_some() => tx.remove(TreeId::Bandits, keys::exp(&key)),
        _ => {}
    }
    st.version = next.version;
    st.status = next.status;
    st.arms = arm_keys(&next.spec);
    put_version(tx, &next);
    audit::append(tx, AuditKind::SpecChanged, &key, &next, now)?;
    if new_period {
        let period = AllocationPeriod {
            period: st.period + 1,
            ..fresh
        };
        open_period(tx, &mut st, &period)?;
    }
    tx.put(TreeId::State, keys::exp(&key), st);
    Ok(next)
}

pub(crate) fn transition(
    tx: &mut Tx<'_>,
    key: &str,
    t: Transition,
    reason: Option<String>,
    now: Millis,
) -> Result<ExperimentVersion> {
    let mut st = state(tx, key)?;
    let cur = current(tx, key)?;
    let next = cur.transitioned(t, reason, now)?;
    st.version = next.version;
    st.status = next.status;
    put_version(tx, &next);
    audit::append(tx, AuditKind::StatusChanged, key, &next, now)?;
    tx.put(TreeId::State, keys::exp(key), st);
    Ok(next)
}

pub(crate) fn rebaseline(tx: &mut Tx<'_>, key: &str, reason: String, now: Millis) -> Result<Epoch> {
    if reason.trim().is_empty() {
        return Err(StoreError::Invalid(
            "a re-baseline needs a reason".to_string(),
        ));
    }
    let mut st = state(tx, key)?;
    let cur = current(tx, key)?;
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
    put_version(tx, &next);
    tx.put(TreeId::Epochs, keys::exp_n(key, epoch_no), epoch.clone());
    audit::append(tx, AuditKind::Rebaselined, key, &epoch, now)?;
    tx.put(TreeId::State, keys::exp(key), st);
    Ok(epoch)
}

/// The store's views as one operation sees them (this batch's earlier writes included).
struct TxViews<'t, 'a>(&'t Tx<'a>);

impl Views for TxViews<'_, '_> {
    type Error = StoreError;

    fn seen(&self, exp: &str, event_id: &str) -> Result<bool> {
        self.0
            .contains(TreeId::Events, &keys::exp_id(exp, event_id))
    }

    fn assignment(&self, exp: &str, unit_id: &str) -> Result<Option<Assignment>> {
        self.0
            .get_as(TreeId::Assignments, &keys::exp_id(exp, unit_id))
    }

    fn task_unit(&self, exp: &str, task_id: &str) -> Result<Option<String>> {
        self.0.get_as(TreeId::Tasks, &keys::exp_id(exp, task_id))
    }

    fn unit_row(&self, exp: &str, epoch: u64, unit_id: &str) -> Result<Option<UnitRow>> {
        self.0
            .get_as(TreeId::Units, &keys::unit_row(exp, epoch, unit_id))
    }

    fn aggregate(&self, exp: &str, key: &AggKey) -> Result<Option<MetricAggregate>> {
        self.0
            .get_as(TreeId::Aggregates, &keys::aggregate(exp, key))
    }

    fn outcomes(&self, exp: &str, epoch: u64, arm: &str) -> Result<u64> {
        let counters: Option<ArmCounters> = self
            .0
            .get_as(TreeId::Counters, &keys::counter(exp, epoch, arm))?;
        Ok(counters.map_or(0, |c| c.outcomes))
    }

    fn assigned(&self, exp: &str, epoch: u64, period: u64, arm: &str) -> Result<u64> {
        let key = keys::assignment_count(exp, epoch, period, arm);
        let count: Option<AssignmentCount> = self.0.get_as(TreeId::AssignmentCounts, &key)?;
        Ok(count.map_or(0, |c| c.count))
    }

    fn bandit(&self, exp: &str) -> Result<Option<BanditState>> {
        self.0.get_shared(TreeId::Bandits, &keys::exp(exp))
    }

    fn drift(&self, exp: &str, epoch: u64) -> Result<Option<DriftMonitor>> {
        self.0.get_as(TreeId::Drift, &keys::exp_n(exp, epoch))
    }
}

fn standing(st: &ExpState) -> Standing<'_> {
    Standing {
        status: st.status,
        epoch: st.epoch,
        period: st.period,
        arms: &st.arms,
    }
}

/// Stores an assignment as [`record::record_assignment`] decides.
pub(crate) fn record_assignment(tx: &mut Tx<'_>, a: Assignment) -> Result<Assignment> {
    let exp = a.experiment.clone();
    let at = a.assigned_at;
    let st = state(tx, &exp)?;
    let effects = record::record_assignment(&TxViews(tx), &standing(&st), a)?;
    match effects {
        AssignmentEffects::Existing { stored, bind_task } => {
            // The binding goes into the audit chain too: it is the primary record the
            // `tasks` index is rebuilt from, beside each assignment's own task id.
            if let Some(task_id) = bind_task {
                let binding = crate::records::TaskBinding {
                    task_id,
                    unit_id: stored.unit_id.clone(),
                };
                audit::append(tx, AuditKind::TaskBound, &exp, &binding, at)?;
                tx.put(
                    TreeId::Tasks,
                    keys::exp_id(&exp, &binding.task_id),
                    binding.unit_id,
                );
            }
            Ok(stored)
        }
        AssignmentEffects::New {
            assignment: a,
            counted,
            index_task,
        } => {
            if counted {
                count_assignment(tx, &a)?;
            }
            if index_task {
                tx.put(
                    TreeId::Tasks,
                    keys::exp_id(&exp, &a.task_id),
                    a.unit_id.clone(),
                );
            }
            tx.put(
                TreeId::Assignments,
                keys::exp_id(&exp, &a.unit_id),
                a.clone(),
            );
            audit::append(tx, AuditKind::Assigned, &exp, &a, a.assigned_at)?;
            Ok(a)
        }
    }
}

/// Adds a unit in the experiment to its (epoch, period, arm) assignment count.
pub(crate) fn count_assignment(tx: &mut Tx<'_>, a: &Assignment) -> Result<()> {
    let count_key = keys::assignment_count(&a.experiment, a.epoch, a.period, &a.arm);
    let mut count = tx
        .get_as::<AssignmentCount>(TreeId::AssignmentCounts, &count_key)?
        .unwrap_or(AssignmentCount {
            period: a.period,
            arm: a.arm.clone(),
            count: 0,
        });
    count.count += 1;
    tx.put(TreeId::AssignmentCounts, count_key, count);
    Ok(())
}

pub(crate) fn record_outcome(
    tx: &mut Tx<'_>,
    spec: &ExperimentSpec,
    outcome: Outcome,
) -> Result<Recorded> {
    let exp = outcome.experiment.clone();
    let st = match state(tx, &exp) {
        Ok(st) => st,
        // The spec's key is checked first, so a mismatch is named as such.
        Err(e) if spec.key() == exp => return Err(e),
        Err(_) => {
            return Err(StoreError::Invalid(format!(
                "outcome for experiment {exp:?} recorded with the spec of {:?}",
                spec.key()
            )))
        }
    };
    let effects = record::record_outcome(&TxViews(tx), &standing(&st), spec, &outcome)?;
    let OutcomeEffects::Accepted(effects) = effects else {
        return Ok(Recorded::Duplicate);
    };
    apply_outcome(tx, st, &outcome, *effects)?;
    let seq = tx
        .get_as::<u64>(TreeId::Meta, OUTCOME_SEQ_KEY)?
        .unwrap_or(0)
        + 1;
    tx.put(TreeId::Meta, OUTCOME_SEQ_KEY.to_vec(), seq);
    tx.put(TreeId::Events, keys::exp_id(&exp, &outcome.event_id), seq);
    audit::append(tx, AuditKind::OutcomeRecorded, &exp, &outcome, outcome.ts)?;
    let chunk = tx.chunk_key(TreeId::Outcomes, &exp, seq)?;
    tx.append(TreeId::Outcomes, chunk, outcome);
    Ok(Recorded::Accepted)
}

/// Applies an accepted outcome's effects to the views: its unit row, the aggregate deltas, the
/// arm's counters, the bandit and the period it opened, the drift monitor, and the automatic
/// action (taken at the outcome's time, in the same batch).
pub(crate) fn apply_outcome(
    tx: &mut Tx<'_>,
    mut st: ExpState,
    outcome: &Outcome,
    effects: record::Accepted,
) -> Result<()> {
    let exp = outcome.experiment.as_str();
    let record::Accepted {
        folded,
        counted,
        bandit,
        period,
        drift,
        action,
    } = effects;
    tx.put(
        TreeId::Units,
        keys::unit_row(exp, outcome.epoch, &outcome.unit_id),
        folded.row,
    );
    for delta in &folded.deltas {
        let agg_key = keys::aggregate(exp, &delta.key);
        let mut aggregate = tx
            .get_as::<MetricAggregate>(TreeId::Aggregates, &agg_key)?
            .unwrap_or_default();
        aggregate.apply(delta);
        tx.put(TreeId::Aggregates, agg_key, aggregate);
    }
    if let Some(step) = counted {
        let counter_key = keys::counter(exp, outcome.epoch, &step.arm);
        let mut counters = tx
            .get_as::<ArmCounters>(TreeId::Counters, &counter_key)?
            .unwrap_or_else(|| ArmCounters {
                arm: step.arm.clone(),
                ..ArmCounters::default()
            });
        counters.step(&step);
        tx.put(TreeId::Counters, counter_key, counters);
    }
    if let Some(period) = period {
        open_period(tx, &mut st, &period)?;
        tx.put(TreeId::State, keys::exp(exp), st);
    }
    if let Some(bandit) = bandit {
        tx.put(TreeId::Bandits, keys::exp(exp), bandit);
    }
    if let Some(monitor) = drift {
        tx.put(TreeId::Drift, keys::exp_n(exp, outcome.epoch), monitor);
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

// ---- Reads -------------------------------------------------------------------------------

pub(crate) fn require_experiment(src: &dyn Scan, exp: &str) -> Result<ExpState> {
    get_as(src.as_source(), TreeId::State, &keys::exp(exp))?
        .ok_or_else(|| StoreError::no_experiment(exp))
}

pub(crate) fn experiment(src: &dyn Scan, key: &str) -> Result<ExperimentVersion> {
    get_as(src.as_source(), TreeId::Experiments, &keys::exp(key))?
        .ok_or_else(|| StoreError::no_experiment(key))
}

pub(crate) fn experiment_version(
    src: &dyn Scan,
    key: &str,
    version: u64,
) -> Result<ExperimentVersion> {
    get_as(
        src.as_source(),
        TreeId::Versions,
        &keys::exp_n(key, version),
    )?
    .ok_or_else(|| StoreError::NotFound {
        what: format!("version {version} of experiment {key:?}"),
    })
}

pub(crate) fn versions(src: &dyn Scan, key: &str) -> Result<Vec<ExperimentVersion>> {
    require_experiment(src, key)?;
    scan_as(src, TreeId::Versions, &keys::exp(key))
}

pub(crate) fn experiments(src: &dyn Scan) -> Result<Vec<ExperimentVersion>> {
    // Keys are length-prefixed, so the table's order is by length first; callers want by key.
    let mut all: Vec<ExperimentVersion> = scan_as(src, TreeId::Experiments, &[])?;
    all.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(all)
}

pub(crate) fn epochs(src: &dyn Scan, key: &str) -> Result<Vec<Epoch>> {
    require_experiment(src, key)?;
    scan_as(src, TreeId::Epochs, &keys::exp(key))
}

pub(crate) fn assignment(src: &dyn Scan, exp: &str, unit_id: &str) -> Result<Option<Assignment>> {
    get_as(
        src.as_source(),
        TreeId::Assignments,
        &keys::exp_id(exp, unit_id),
    )
}

pub(crate) fn assignment_by_task(
    src: &dyn Scan,
    exp: &str,
    task_id: &str,
) -> Result<Option<Assignment>> {
    // Most tasks are their unit's own id (the default), which has no `tasks` entry.
    if let Some(own) = assignment(src, exp, task_id)?.filter(|a| a.task_id == task_id) {
        return Ok(Some(own));
    }
    let Some(unit) = get_as::<String>(src.as_source(), TreeId::Tasks, &keys::exp_id(exp, task_id))?
    else {
        return Ok(None);
    };
    let found = assignment(src, exp, &unit)?;
    match found {
        Some(a) => Ok(Some(a)),
        None => Err(StoreError::corrupt(
            TreeId::Tasks.name(),
            &keys::exp_id(exp, task_id),
            format!("task points at unit {unit:?}, which has no assignment"),
        )),
    }
}

pub(crate) fn current_period(src: &dyn Scan, exp: &str) -> Result<AllocationPeriod> {
    let st = require_experiment(src, exp)?;
    let key = keys::exp_n(exp, st.period);
    get_as(src.as_source(), TreeId::Periods, &key)?.ok_or_else(|| {
        StoreError::corrupt(
            TreeId::Periods.name(),
            &key,
            "the current allocation period is missing",
        )
    })
}

pub(crate) fn periods(src: &dyn Scan, exp: &str) -> Result<Vec<AllocationPeriod>> {
    require_experiment(src, exp)?;
    scan_as(src, TreeId::Periods, &keys::exp(exp))
}

pub(crate) fn aggregates(
    src: &dyn Scan,
    exp: &str,
    epoch: u64,
) -> Result<Vec<(AggKey, MetricAggregate)>> {
    require_experiment(src, exp)?;
    src.scan_prefix(TreeId::Aggregates, &keys::exp_n(exp, epoch))
        .map(|entry| {
            let (k, v) = entry?;
            Ok((
                keys::parse_aggregate(&k)?,
                decode(TreeId::Aggregates, &k, &v)?,
            ))
        })
        .collect()
}

pub(crate) fn arm_counters(src: &dyn Scan, exp: &str, epoch: u64) -> Result<Vec<ArmCounters>> {
    require_experiment(src, exp)?;
    scan_as(src, TreeId::Counters, &keys::exp_n(exp, epoch))
}

pub(crate) fn assignment_counts(
    src: &dyn Scan,
    exp: &str,
    epoch: u64,
) -> Result<Vec<AssignmentCount>> {
    require_experiment(src, exp)?;
    scan_as(src, TreeId::AssignmentCounts, &keys::exp_n(exp, epoch))
}

pub(crate) fn unit_rows(src: &dyn Scan, exp: &str, epoch: u64) -> Result<Vec<UnitRow>> {
    require_experiment(src, exp)?;
    scan_as(src, TreeId::Units, &keys::exp_n(exp, epoch))
}

pub(crate) fn bandit_state(src: &dyn Scan, exp: &str) -> Result<Option<BanditState>> {
    require_experiment(src, exp)?;
    get_as(src.as_source(), TreeId::Bandits, &keys::exp(exp))
}

pub(crate) fn audit(
    src: &dyn Scan,
    exp: &str,
    after: u64,
    limit: usize,
) -> Result<Vec<AuditRecord>> {
    require_experiment(src, exp)?;
    let prefix = keys::exp(exp);
    // The chunk that holds `after + 1` starts at or before it.
    let wanted = keys::exp_n(exp, after.saturating_add(1));
    let start = match src.last_at_or_before(TreeId::AuditIndex, &prefix, &wanted)? {
        Some(key) => key,
        None => prefix.clone(),
    };
    let mut out = Vec::new();
    let mut records = audit::Reader::new(src);
    for entry in src.scan_from(TreeId::AuditIndex, &prefix, &start) {
        let (key, value) = entry?;
        let seqs: Vec<u64> = decode(TreeId::AuditIndex, &key, &value)?;
        for seq in seqs.into_iter().filter(|s| *s > after) {
            if out.len() == limit {
                return Ok(out);
            }
            let record = records.record(seq)?.ok_or_else(|| {
                StoreError::corrupt(
                    TreeId::AuditIndex.name(),
                    &key,
                    format!("indexes audit record {seq}, which is missing"),
                )
            })?;
            out.push(record.to_public());
        }
    }
    Ok(out)
}

/// Up to `limit` records of the whole chain after `after`, in order.
pub(crate) fn audit_log(src: &dyn Scan, after: u64, limit: usize) -> Result<Vec<AuditRecord>> {
    let mut out = Vec::new();
    let mut records = audit::Reader::new(src);
    let mut seq = after;
    while out.len() < limit {
        seq += 1;
        let Some(record) = records.record(seq)? else {
            break;
        };
        out.push(record.to_public());
    }
    Ok(out)
}

/// Decodes one chunk of an experiment's outcome log (the outcomes one batch recorded).
pub(crate) fn decode_outcomes(key: &[u8], value: &[u8]) -> Result<Vec<Outcome>> {
    decode(TreeId::Outcomes, key, value)
}

/// Flattens the chunks of an outcome log into outcomes, keeping the first error.
pub(crate) fn flatten_outcomes<'a>(
    chunks: impl Iterator<Item = Result<(Vec<u8>, Vec<u8>)>> + Send + 'a,
) -> impl Iterator<Item = Result<Outcome>> + Send + 'a {
    chunks.flat_map(|entry| {
        let decoded = entry.and_then(|(k, v)| decode_outcomes(&k, &v));
        let items: Box<dyn Iterator<Item = Result<Outcome>> + Send> = match decoded {
            Ok(outcomes) => Box::new(outcomes.into_iter().map(Ok)),
            Err(e) => Box::new(std::iter::once(Err(e))),
        };
        items
    })
}
