//! liftlab-store: persistence behind the `Store` trait; the only crate that touches disk.
//!
//! Two implementations share every line of logic and one conformance suite:
//! [`SledStore`] (sled 0.34 on a data directory) and [`MemStore`] (in memory, for tests and
//! demos; durable by definition within its process). [`CachedStore`] wraps either with each
//! experiment's current version in memory (the server's view) and passes the same suite.
//!
//! # Operations
//!
//! Experiments and their history:
//! - [`Store::create_experiment`]`(spec, now)`: version 1 in `draft`, epoch 0, allocation
//!   period 0 (`initial_period`), and a bandit state for a Thompson policy. `Conflict` if the
//!   key exists.
//! - [`Store::update_experiment`]`(spec, expected_version, now)`: a new version with the new
//!   spec (`Conflict` when `expected_version` is given and stale, `NotFound`, and `Domain` for
//!   changes the lifecycle forbids). A change of fixed weights, of policy, or of a bandit's
//!   arms or reward opens a new allocation period.
//! - [`Store::transition`]`(key, transition, reason, now)`: a new version with the new status;
//!   a transition the lifecycle forbids is `Domain(DomainError::Transition)`.
//! - [`Store::rebaseline`]`(key, reason, now)`: a new analysis epoch (and a new version);
//!   [`Store::epochs`] lists them with reason and start time, from 0.
//! - [`Store::experiment`] (current version), [`Store::experiment_version`],
//!   [`Store::versions`], [`Store::experiments`].
//!
//! Assignments and allocation:
//! - [`Store::record_assignment`] / [`Store::record_assignments`]: first write wins per
//!   (experiment, unit); the stored assignment is returned. The task id is indexed (a returning
//!   unit's new task id is indexed too, and recorded in the audit chain as `task_bound`); a
//!   task id bound to another unit is a `Conflict`. Units entering the experiment count
//!   towards [`Store::assignment_counts`] per (epoch, period, arm); `in_experiment: true` is
//!   refused unless the experiment is running. Call it whenever [`Store::assignment_by_task`]
//!   finds nothing for the request's task.
//! - [`Store::assignment`], [`Store::assignment_by_task`], [`Store::current_period`],
//!   [`Store::periods`].
//!
//! Outcomes, in one atomic step per event:
//! - [`Store::record_outcome`] / [`Store::record_outcomes`]: `Duplicate` if `(experiment,
//!   event_id)` was seen (also earlier in the same batch); otherwise the event is appended to
//!   the outcome log, folded into its unit row (`liftlab_domain::fold`), its deltas applied to
//!   the aggregates, the arm's counters updated, the bandit fed (opening a new period when a
//!   recomputation is due), the drift monitor updated, and the audit chain extended. The
//!   outcome's `unit_id` and `arm` must match the stored assignment. Outcomes of units outside
//!   the experiment are logged and kept in their unit row but change no aggregate or counter.
//!   The audit record and any period opened take the outcome's `ts` as their time.
//!
//! Reads for reports: [`Store::aggregates`], [`Store::arm_counters`],
//! [`Store::assignment_counts`], [`Store::unit_rows`], [`Store::bandit_state`],
//! [`Store::drift_monitor`], [`Store::outcomes`] (the log, in order), [`Store::audit`] (one
//! experiment's audit records, paged by sequence number).
//!
//! Integrity: [`Store::verify`] walks the SHA-256 audit chain and names the first record
//! that was edited, deleted or moved; [`Store::rebuild`] replays the outcome log into fresh
//! unit rows, aggregates and counters, recounts assignments, derives the task index from the
//! assignments and the chain's `task_bound` records, and reports (or repairs) every difference.
//!
//! # Durability: "a 2xx means durable"
//!
//! [`SledStore`] has one writer thread that owns every mutation. A caller sends its operation
//! and blocks (or, with [`Store::record_assignment_then`], leaves a callback for the answer);
//! the writer takes up to [`MAX_BATCH`] pending operations, runs each one all-or-nothing,
//! appends all their writes as ONE record to the store's write-ahead log (`wal/` in the data
//! directory), syncs it once, applies the writes to sled, and only then answers their callers.
//! Operations that arrive during the sync form the next batch. At open the log is replayed
//! into sled, so a crash leaves whole batches and the audit chain in order; every 64 MiB the
//! log is checkpointed (sled flushed, old files deleted). sled therefore only ever holds
//! durable writes: reads go straight to the sled trees from the caller's thread and never
//! wait. [`Store::flush`] waits for everything queued before it; [`Store::close`] (and `Drop`)
//! drains the writer, flushes sled, deletes the log and stops.
//!
//! # Opening
//!
//! [`SledStore::open`] fails with [`StoreError::Locked`] when another process (or another
//! open store in this one) holds the directory, [`StoreError::Open`] when the path cannot be
//! used (not a directory, no permission, a database sled cannot read), and
//! [`StoreError::Corrupt`] when the stored schema version is unknown.
//!
//! # Layout
//!
//! One sled tree per entity (see the `tree` module), composite keys of length-prefixed
//! strings and big-endian numbers, and a tag byte in front of every stored value naming its
//! version and format (JSON for specs, periods, epochs, bandit and drift state; postcard for
//! the records written on every assignment and outcome); a value with an unknown tag or
//! garbled bytes is [`StoreError::Corrupt`] naming tree and key. The audit chain, the outcome
//! log and the per-experiment audit index are stored in chunks: each group commit appends its
//! entries as lists of at most 16, 32 and 256 entries, each keyed by its first sequence number
//! (small enough that sled never stores a leaf of them as a blob file).

mod audit;
mod cached;
mod chunks;
mod codec;
mod drift;
mod error;
mod filter;
mod kv;
pub mod legacy;
mod mem;
mod ops;
mod rebuild;
mod records;
mod sled_store;
mod tree;
mod wal;
mod watermark;

use liftlab_domain::thompson::BanditState;
use liftlab_domain::{
    AggKey, AllocationPeriod, Assignment, ExperimentSpec, ExperimentVersion, MetricAggregate,
    Millis, Outcome, Transition, UnitRow,
};

pub use cached::{CachedStore, Live};
pub use drift::DriftMonitor;
pub use error::{Result, StoreError};
pub use mem::MemStore;
pub use records::{
    ArmCounters, AssignmentCount, AuditKind, AuditRecord, Epoch, Mismatch, RebuildMode,
    RebuildReport, Recorded, TaskBinding, VerifyReport,
};
pub use sled_store::{SledStore, DEFAULT_CACHE_BYTES, MAX_BATCH};

/// The most audit records one [`Store::audit`] call returns.
pub const MAX_AUDIT_PAGE: usize = 10_000;

/// The outcome log of one experiment, in the order events were recorded.
pub type OutcomeIter = Box<dyn Iterator<Item = Result<Outcome>> + Send>;

/// Receives the answer of a write started with [`Store::record_assignment_then`].
///
/// It is called once the write is durable (or failed), on whichever thread finished it — the
/// writer thread for [`SledStore`]. If the store closes first, it is dropped without being
/// called; a caller waiting on a channel inside it then sees the channel closed.
pub type Done<R> = Box<dyn FnOnce(Result<R>) + Send>;

/// liftlab's persistence. Every method may block (on disk, or on the group commit), except
/// that [`Store::record_assignment_then`] hands its answer to a callback instead of waiting.
pub trait Store: Send + Sync {
    /// Stores a new experiment as version 1 (`draft`), with epoch 0 and allocation period 0.
    fn create_experiment(&self, spec: ExperimentSpec, now: Millis) -> Result<ExperimentVersion>;

    /// Stores a new spec version; `expected_version` guards against lost updates.
    fn update_experiment(
        &self,
        spec: ExperimentSpec,
        expected_version: Option<u64>,
        now: Millis,
    ) -> Result<ExperimentVersion>;

    /// Applies a lifecycle transition as a new version.
    fn transition(
        &self,
        key: &str,
        transition: Transition,
        reason: Option<&str>,
        now: Millis,
    ) -> Result<ExperimentVersion>;

    /// The current version of an experiment.
    fn experiment(&self, key: &str) -> Result<ExperimentVersion>;

    /// One version of an experiment.
    fn experiment_version(&self, key: &str, version: u64) -> Result<ExperimentVersion>;

    /// Every version of an experiment, oldest first.
    fn versions(&self, key: &str) -> Result<Vec<ExperimentVersion>>;

    /// The current version of every experiment, by key.
    fn experiments(&self) -> Result<Vec<ExperimentVersion>>;

    /// Starts a new analysis epoch (and a new version noting it); the reason must not be blank.
    fn rebaseline(&self, key: &str, reason: &str, now: Millis) -> Result<Epoch>;

    /// Every analysis epoch of an experiment, from 0.
    fn epochs(&self, key: &str) -> Result<Vec<Epoch>>;

    /// The stored assignment of a unit, if any.
    fn assignment(&self, experiment: &str, unit_id: &str) -> Result<Option<Assignment>>;

    /// The stored assignment of the unit a task belongs to, if any.
    fn assignment_by_task(&self, experiment: &str, task_id: &str) -> Result<Option<Assignment>>;

    /// [`Store::assignment`] without ever waiting: an assignment whose group commit is not
    /// durable yet reads as `None` (on [`SledStore`] no read waits, so this is the same).
    ///
    /// For a hot path that records a decision when it finds none: recording answers the stored
    /// assignment (first write wins), and only once it is durable.
    fn assignment_if_durable(&self, experiment: &str, unit_id: &str) -> Result<Option<Assignment>>;

    /// The allocation period in force, without waiting for the group commit that opened it.
    ///
    /// Only for making a decision that is then recorded: the record's batch comes after the
    /// period's, so its acknowledgement implies the period is durable too.
    fn current_period_for_decision(&self, experiment: &str) -> Result<AllocationPeriod>;

    /// Stores a unit's assignment unless it has one; returns the one that is stored.
    fn record_assignment(&self, assignment: Assignment) -> Result<Assignment>;

    /// [`Store::record_assignment`] without blocking: `done` gets the answer once durable.
    fn record_assignment_then(&self, assignment: Assignment, done: Done<Assignment>);

    /// [`Store::record_assignment`] for many, in one group commit; one result per input, in order.
    fn record_assignments(&self, assignments: Vec<Assignment>) -> Result<Vec<Result<Assignment>>>;

    /// The allocation period in force.
    fn current_period(&self, experiment: &str) -> Result<AllocationPeriod>;

    /// Every allocation period, from 0.
    fn periods(&self, experiment: &str) -> Result<Vec<AllocationPeriod>>;

    /// Records one outcome atomically (see the crate docs), or reports it as a duplicate.
    fn record_outcome(&self, spec: &ExperimentSpec, outcome: Outcome) -> Result<Recorded>;

    /// [`Store::record_outcome`] for many, in one group commit; one result per input, in order.
    ///
    /// The outer `Err` is a failure of the store (nothing acknowledged); an inner `Err`
    /// rejects that event alone.
    fn record_outcomes(
        &self,
        spec: &ExperimentSpec,
        outcomes: Vec<Outcome>,
    ) -> Result<Vec<Result<Recorded>>>;

    /// Every aggregate of an epoch, in key order.
    fn aggregates(&self, experiment: &str, epoch: u64) -> Result<Vec<(AggKey, MetricAggregate)>>;

    /// Per-arm counters of an epoch (arms without outcomes are absent).
    fn arm_counters(&self, experiment: &str, epoch: u64) -> Result<Vec<ArmCounters>>;

    /// Units assigned into the experiment in an epoch, per (period, arm).
    fn assignment_counts(&self, experiment: &str, epoch: u64) -> Result<Vec<AssignmentCount>>;

    /// Every unit row of an epoch (for rebuild checks and exports, not for reports).
    fn unit_rows(&self, experiment: &str, epoch: u64) -> Result<Vec<UnitRow>>;

    /// The bandit state of a Thompson experiment (`None` under a fixed policy).
    fn bandit_state(&self, experiment: &str) -> Result<Option<BanditState>>;

    /// The drift monitor of an epoch, once an outcome has fed it.
    fn drift_monitor(&self, experiment: &str, epoch: u64) -> Result<Option<DriftMonitor>>;

    /// The outcome log of an experiment, in the order events were recorded.
    fn outcomes(&self, experiment: &str) -> Result<OutcomeIter>;

    /// Up to `limit` (at most [`MAX_AUDIT_PAGE`]) audit records of an experiment with `seq > after`.
    fn audit(&self, experiment: &str, after: u64, limit: usize) -> Result<Vec<AuditRecord>>;

    /// Up to `limit` (at most [`MAX_AUDIT_PAGE`]) records of the whole audit chain with
    /// `seq > after`, in chain order (for exports; `audit` pages one experiment's).
    fn audit_log(&self, after: u64, limit: usize) -> Result<Vec<AuditRecord>>;

    /// Walks the whole audit chain.
    fn verify(&self) -> Result<VerifyReport>;

    /// Replays every outcome log and compares (or replaces) unit rows, aggregates, counters,
    /// assignment counts and the task index.
    fn rebuild(&self, mode: RebuildMode) -> Result<RebuildReport>;

    /// Makes everything acknowledged so far durable (it already is; this also flushes sled's own buffers).
    fn flush(&self) -> Result<()>;

    /// Drains pending writes, flushes and stops accepting writes; reads keep working.
    fn close(&self) -> Result<()>;
}

/// Implements [`Store`] for a type with the inherent `write`, `read` and `flush_now` methods.
///
/// Both stores expand the same bodies, so their semantics cannot drift apart.
macro_rules! impl_store {
    ($ty:ty) => {
        impl $crate::Store for $ty {
            fn create_experiment(
                &self,
                spec: liftlab_domain::ExperimentSpec,
                now: liftlab_domain::Millis,
            ) -> $crate::Result<liftlab_domain::ExperimentVersion> {
                self.write_one(move |tx| $crate::ops::create_experiment(tx, spec, now))
            }

            fn update_experiment(
                &self,
                spec: liftlab_domain::ExperimentSpec,
                expected_version: Option<u64>,
                now: liftlab_domain::Millis,
            ) -> $crate::Result<liftlab_domain::ExperimentVersion> {
                self.write_one(move |tx| {
                    $crate::ops::update_experiment(tx, spec, expected_version, now)
                })
            }

            fn transition(
                &self,
                key: &str,
                transition: liftlab_domain::Transition,
                reason: Option<&str>,
                now: liftlab_domain::Millis,
            ) -> $crate::Result<liftlab_domain::ExperimentVersion> {
                let key = key.to_string();
                let reason = reason.map(str::to_string);
                self.write_one(move |tx| $crate::ops::transition(tx, &key, transition, reason, now))
            }

            fn experiment(&self, key: &str) -> $crate::Result<liftlab_domain::ExperimentVersion> {
                self.read(|src| $crate::ops::experiment(src, key))
            }

            fn experiment_version(
                &self,
                key: &str,
                version: u64,
            ) -> $crate::Result<liftlab_domain::ExperimentVersion> {
                self.read(|src| $crate::ops::experiment_version(src, key, version))
            }

            fn versions(
                &self,
                key: &str,
            ) -> $crate::Result<Vec<liftlab_domain::ExperimentVersion>> {
                self.read(|src| $crate::ops::versions(src, key))
            }

            fn experiments(&self) -> $crate::Result<Vec<liftlab_domain::ExperimentVersion>> {
                self.read(|src| $crate::ops::experiments(src))
            }

            fn rebaseline(
                &self,
                key: &str,
                reason: &str,
                now: liftlab_domain::Millis,
            ) -> $crate::Result<$crate::Epoch> {
                let key = key.to_string();
                let reason = reason.to_string();
                self.write_one(move |tx| $crate::ops::rebaseline(tx, &key, reason, now))
            }

            fn epochs(&self, key: &str) -> $crate::Result<Vec<$crate::Epoch>> {
                self.read(|src| $crate::ops::epochs(src, key))
            }

            fn assignment(
                &self,
                experiment: &str,
                unit_id: &str,
            ) -> $crate::Result<Option<liftlab_domain::Assignment>> {
                self.read(|src| $crate::ops::assignment(src, experiment, unit_id))
            }

            fn assignment_by_task(
                &self,
                experiment: &str,
                task_id: &str,
            ) -> $crate::Result<Option<liftlab_domain::Assignment>> {
                self.read(|src| $crate::ops::assignment_by_task(src, experiment, task_id))
            }

            fn record_assignment(
                &self,
                assignment: liftlab_domain::Assignment,
            ) -> $crate::Result<liftlab_domain::Assignment> {
                self.write_one(move |tx| $crate::ops::record_assignment(tx, assignment))
            }

            fn assignment_if_durable(
                &self,
                experiment: &str,
                unit_id: &str,
            ) -> $crate::Result<Option<liftlab_domain::Assignment>> {
                self.read(|src| $crate::ops::assignment(src, experiment, unit_id))
            }

            fn current_period_for_decision(
                &self,
                experiment: &str,
            ) -> $crate::Result<liftlab_domain::AllocationPeriod> {
                self.period_for_decision(experiment)
            }

            fn record_assignment_then(
                &self,
                assignment: liftlab_domain::Assignment,
                done: $crate::Done<liftlab_domain::Assignment>,
            ) {
                self.write_one_then(
                    move |tx| $crate::ops::record_assignment(tx, assignment),
                    done,
                );
            }

            fn record_assignments(
                &self,
                assignments: Vec<liftlab_domain::Assignment>,
            ) -> $crate::Result<Vec<$crate::Result<liftlab_domain::Assignment>>> {
                self.write_many(assignments, |tx, a| $crate::ops::record_assignment(tx, a))
            }

            fn current_period(
                &self,
                experiment: &str,
            ) -> $crate::Result<liftlab_domain::AllocationPeriod> {
                self.read(|src| $crate::ops::current_period(src, experiment))
            }

            fn periods(
                &self,
                experiment: &str,
            ) -> $crate::Result<Vec<liftlab_domain::AllocationPeriod>> {
                self.read(|src| $crate::ops::periods(src, experiment))
            }

            fn record_outcome(
                &self,
                spec: &liftlab_domain::ExperimentSpec,
                outcome: liftlab_domain::Outcome,
            ) -> $crate::Result<$crate::Recorded> {
                let spec = spec.clone();
                self.write_one(move |tx| $crate::ops::record_outcome(tx, &spec, outcome))
            }

            fn record_outcomes(
                &self,
                spec: &liftlab_domain::ExperimentSpec,
                outcomes: Vec<liftlab_domain::Outcome>,
            ) -> $crate::Result<Vec<$crate::Result<$crate::Recorded>>> {
                let spec = spec.clone();
                self.write_many(outcomes, move |tx, o| {
                    $crate::ops::record_outcome(tx, &spec, o)
                })
            }

            fn aggregates(
                &self,
                experiment: &str,
                epoch: u64,
            ) -> $crate::Result<Vec<(liftlab_domain::AggKey, liftlab_domain::MetricAggregate)>>
            {
                self.read(|src| $crate::ops::aggregates(src, experiment, epoch))
            }

            fn arm_counters(
                &self,
                experiment: &str,
                epoch: u64,
            ) -> $crate::Result<Vec<$crate::ArmCounters>> {
                self.read(|src| $crate::ops::arm_counters(src, experiment, epoch))
            }

            fn assignment_counts(
                &self,
                experiment: &str,
                epoch: u64,
            ) -> $crate::Result<Vec<$crate::AssignmentCount>> {
                self.read(|src| $crate::ops::assignment_counts(src, experiment, epoch))
            }

            fn unit_rows(
                &self,
                experiment: &str,
                epoch: u64,
            ) -> $crate::Result<Vec<liftlab_domain::UnitRow>> {
                self.read(|src| $crate::ops::unit_rows(src, experiment, epoch))
            }

            fn bandit_state(
                &self,
                experiment: &str,
            ) -> $crate::Result<Option<liftlab_domain::thompson::BanditState>> {
                self.read(|src| $crate::ops::bandit_state(src, experiment))
            }

            fn drift_monitor(
                &self,
                experiment: &str,
                epoch: u64,
            ) -> $crate::Result<Option<$crate::DriftMonitor>> {
                self.read(|src| $crate::drift::monitor(src, experiment, epoch))
            }

            fn outcomes(&self, experiment: &str) -> $crate::Result<$crate::OutcomeIter> {
                self.outcome_iter(experiment)
            }

            fn audit(
                &self,
                experiment: &str,
                after: u64,
                limit: usize,
            ) -> $crate::Result<Vec<$crate::AuditRecord>> {
                let limit = limit.min($crate::MAX_AUDIT_PAGE);
                self.read(|src| $crate::ops::audit(src, experiment, after, limit))
            }

            fn audit_log(
                &self,
                after: u64,
                limit: usize,
            ) -> $crate::Result<Vec<$crate::AuditRecord>> {
                let limit = limit.min($crate::MAX_AUDIT_PAGE);
                self.read(|src| $crate::ops::audit_log(src, after, limit))
            }

            fn verify(&self) -> $crate::Result<$crate::VerifyReport> {
                self.read(|src| $crate::audit::verify(src))
            }

            fn rebuild(&self, mode: $crate::RebuildMode) -> $crate::Result<$crate::RebuildReport> {
                self.exclusive(move |src, batch| $crate::rebuild::rebuild(src, batch, mode))
            }

            fn flush(&self) -> $crate::Result<()> {
                self.flush_now()
            }

            fn close(&self) -> $crate::Result<()> {
                self.shut_down()
            }
        }
    };
}
pub(crate) use impl_store;
