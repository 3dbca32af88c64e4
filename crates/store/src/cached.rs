//! `CachedStore`: the store as the server sees it, with each experiment's current version and
//! parsed spec kept in memory so the assignment hot path neither reads nor re-parses the spec.
//!
//! It wraps the real store and implements [`Store`] itself (and passes the store's conformance
//! suite like every other implementation), so every caller (the server's handlers, its results
//! module) goes through it and every experiment-level write (create, update,
//! transition, rebaseline, and outcomes of a spec whose outcomes can re-baseline or pause it)
//! drops the experiment's entry. The sled store holds its data directory
//! exclusively, so no other process can change an experiment behind the cache's back; on a
//! database that replicas share, [`CachedStore::with_ttl`] also drops entries by age. A
//! generation counter keeps a slow read that raced with a write from caching the old version.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::{
    ArmCounters, AssignmentCount, AuditRecord, Done, DriftMonitor, Epoch, OutcomeIter, RebuildMode,
    RebuildReport, Recorded, Result, Store, VerifyReport,
};
use liftlab_domain::thompson::BanditState;
use liftlab_domain::{
    AggKey, AllocationPeriod, Assignment, ExperimentSpec, ExperimentVersion, MetricAggregate,
    Millis, Outcome, Transition, UnitRow,
};

/// What the hot paths need about an experiment: its current version and analysis epoch.
#[derive(Clone, Debug, PartialEq)]
pub struct Live {
    /// The current version (status and parsed spec included).
    pub version: ExperimentVersion,
    /// The current analysis epoch.
    pub epoch: u64,
}

/// The most experiments kept; past it the cache starts over (entries reload on demand).
const CAPACITY: usize = 4096;

/// A [`Store`] that caches each experiment's [`Live`] state in memory.
pub struct CachedStore {
    inner: Arc<dyn Store>,
    live: RwLock<HashMap<String, (Arc<Live>, Instant)>>,
    /// Bumped (under the write lock) by every invalidation.
    generation: AtomicU64,
    /// How long an entry is trusted; `None`: until this cache changes the experiment.
    ttl: Option<Duration>,
}

impl CachedStore {
    pub fn new(inner: Arc<dyn Store>) -> CachedStore {
        CachedStore {
            inner,
            live: RwLock::new(HashMap::new()),
            generation: AtomicU64::new(0),
            ttl: None,
        }
    }

    /// A cache whose entries are reloaded once they are `ttl` old: for a store that other
    /// processes change too (replicas on one database), so that each replica sees another's
    /// change of an experiment within `ttl`.
    pub fn with_ttl(inner: Arc<dyn Store>, ttl: Duration) -> CachedStore {
        CachedStore {
            ttl: Some(ttl),
            ..CachedStore::new(inner)
        }
    }

    /// Outcomes of a spec that re-baselines on effect drift or pauses on harm may have changed
    /// the experiment (the domain's write step takes those actions in the outcome's batch).
    fn after_outcomes(&self, spec: &ExperimentSpec) {
        let analysis = spec.analysis();
        if analysis.auto_pause_on_harm() || spec.drift().is_some_and(|d| d.auto_rebaseline()) {
            self.forget(spec.key());
        }
    }

    /// The experiment's current version and epoch, from memory when possible.
    pub fn live(&self, key: &str) -> Result<Arc<Live>> {
        if let Some(found) = self.cached_live(key) {
            return Ok(found);
        }
        let generation = self.generation.load(Ordering::Acquire);
        let version = self.inner.experiment(key)?;
        let epoch = self.inner.epochs(key)?.last().map_or(0, |e| e.epoch);
        let live = Arc::new(Live { version, epoch });
        let mut entries = self.live.write().unwrap_or_else(|p| p.into_inner());
        if self.generation.load(Ordering::Acquire) == generation {
            if entries.len() >= CAPACITY {
                entries.clear();
            }
            entries.insert(key.to_string(), (Arc::clone(&live), Instant::now()));
        }
        Ok(live)
    }

    /// The experiment's cached state, if it is cached (never touches the store).
    pub fn cached_live(&self, key: &str) -> Option<Arc<Live>> {
        self.live
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .filter(|(_, at)| self.ttl.map_or(true, |ttl| at.elapsed() < ttl))
            .map(|(live, _)| Arc::clone(live))
    }

    /// Drops the cached state of `key`; the next read loads it from the store.
    pub fn forget(&self, key: &str) {
        let mut entries = self.live.write().unwrap_or_else(|p| p.into_inner());
        self.generation.fetch_add(1, Ordering::AcqRel);
        entries.remove(key);
    }

    /// The number of experiments cached.
    pub fn cached(&self) -> usize {
        self.live.read().unwrap_or_else(|p| p.into_inner()).len()
    }
}

impl Store for CachedStore {
    fn create_experiment(&self, spec: ExperimentSpec, now: Millis) -> Result<ExperimentVersion> {
        let key = spec.key().to_string();
        let result = self.inner.create_experiment(spec, now);
        self.forget(&key);
        result
    }

    fn update_experiment(
        &self,
        spec: ExperimentSpec,
        expected_version: Option<u64>,
        now: Millis,
    ) -> Result<ExperimentVersion> {
        let key = spec.key().to_string();
        let result = self.inner.update_experiment(spec, expected_version, now);
        self.forget(&key);
        result
    }

    fn transition(
        &self,
        key: &str,
        transition: Transition,
        reason: Option<&str>,
        now: Millis,
    ) -> Result<ExperimentVersion> {
        let result = self.inner.transition(key, transition, reason, now);
        self.forget(key);
        result
    }

    fn experiment(&self, key: &str) -> Result<ExperimentVersion> {
        self.live(key).map(|l| l.version.clone())
    }

    fn experiment_version(&self, key: &str, version: u64) -> Result<ExperimentVersion> {
        self.inner.experiment_version(key, version)
    }

    fn versions(&self, key: &str) -> Result<Vec<ExperimentVersion>> {
        self.inner.versions(key)
    }

    fn experiments(&self) -> Result<Vec<ExperimentVersion>> {
        self.inner.experiments()
    }

    fn rebaseline(&self, key: &str, reason: &str, now: Millis) -> Result<Epoch> {
        let result = self.inner.rebaseline(key, reason, now);
        self.forget(key);
        result
    }

    fn epochs(&self, key: &str) -> Result<Vec<Epoch>> {
        self.inner.epochs(key)
    }

    fn assignment(&self, experiment: &str, unit_id: &str) -> Result<Option<Assignment>> {
        self.inner.assignment(experiment, unit_id)
    }

    fn assignment_by_task(&self, experiment: &str, task_id: &str) -> Result<Option<Assignment>> {
        self.inner.assignment_by_task(experiment, task_id)
    }

    fn record_assignment(&self, assignment: Assignment) -> Result<Assignment> {
        self.inner.record_assignment(assignment)
    }

    fn assignment_if_durable(&self, experiment: &str, unit_id: &str) -> Result<Option<Assignment>> {
        self.inner.assignment_if_durable(experiment, unit_id)
    }

    fn current_period_for_decision(&self, experiment: &str) -> Result<AllocationPeriod> {
        self.inner.current_period_for_decision(experiment)
    }

    fn record_assignment_then(&self, assignment: Assignment, done: Done<Assignment>) {
        self.inner.record_assignment_then(assignment, done);
    }

    fn record_assignments(&self, assignments: Vec<Assignment>) -> Result<Vec<Result<Assignment>>> {
        self.inner.record_assignments(assignments)
    }

    fn current_period(&self, experiment: &str) -> Result<AllocationPeriod> {
        self.inner.current_period(experiment)
    }

    fn periods(&self, experiment: &str) -> Result<Vec<AllocationPeriod>> {
        self.inner.periods(experiment)
    }

    fn record_outcome(&self, spec: &ExperimentSpec, outcome: Outcome) -> Result<Recorded> {
        let recorded = self.inner.record_outcome(spec, outcome);
        self.after_outcomes(spec);
        recorded
    }

    fn record_outcomes(
        &self,
        spec: &ExperimentSpec,
        outcomes: Vec<Outcome>,
    ) -> Result<Vec<Result<Recorded>>> {
        let recorded = self.inner.record_outcomes(spec, outcomes);
        self.after_outcomes(spec);
        recorded
    }

    fn aggregates(&self, experiment: &str, epoch: u64) -> Result<Vec<(AggKey, MetricAggregate)>> {
        self.inner.aggregates(experiment, epoch)
    }

    fn arm_counters(&self, experiment: &str, epoch: u64) -> Result<Vec<ArmCounters>> {
        self.inner.arm_counters(experiment, epoch)
    }

    fn assignment_counts(&self, experiment: &str, epoch: u64) -> Result<Vec<AssignmentCount>> {
        self.inner.assignment_counts(experiment, epoch)
    }

    fn unit_rows(&self, experiment: &str, epoch: u64) -> Result<Vec<UnitRow>> {
        self.inner.unit_rows(experiment, epoch)
    }

    fn bandit_state(&self, experiment: &str) -> Result<Option<BanditState>> {
        self.inner.bandit_state(experiment)
    }

    fn drift_monitor(&self, experiment: &str, epoch: u64) -> Result<Option<DriftMonitor>> {
        self.inner.drift_monitor(experiment, epoch)
    }

    fn outcomes(&self, experiment: &str) -> Result<OutcomeIter> {
        self.inner.outcomes(experiment)
    }

    fn audit(&self, experiment: &str, after: u64, limit: usize) -> Result<Vec<AuditRecord>> {
        self.inner.audit(experiment, after, limit)
    }

    fn audit_log(&self, after: u64, limit: usize) -> Result<Vec<AuditRecord>> {
        self.inner.audit_log(after, limit)
    }

    fn verify(&self) -> Result<VerifyReport> {
        self.inner.verify()
    }

    fn rebuild(&self, mode: RebuildMode) -> Result<RebuildReport> {
        self.inner.rebuild(mode)
    }

    fn flush(&self) -> Result<()> {
        self.inner.flush()
    }

    fn close(&self) -> Result<()> {
        self.inner.close()
    }
}
