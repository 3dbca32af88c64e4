//! liftlab-store: persistence behind the `Store` trait; the only crate that touches disk.
//!
//! One log is the truth; every table is a view folded from it. Two implementations share
//! every line of logic and one conformance suite: [`SledStore`] (the log in segment files,
//! the views in sled, on a data directory) and [`MemStore`] (the log in a `Vec`, the views in
//! a `BTreeMap`). [`CachedStore`] wraps either with each experiment's current version in
//! memory (the server's view) and passes the same suite.
//!
//! # The log (`log` module)
//!
//! Each fact is one record, written once: an experiment created, a spec or status changed, a
//! re-baseline, an allocation period opened, a unit assigned, an outcome recorded, a task
//! bound to a returning unit (the kinds of [`AuditKind`]). Records are CRC-framed and
//! SHA-256 hash-chained, so the log *is* the audit chain: [`Store::verify`] walks it and names
//! the first record that was edited, deleted or moved, and [`Store::audit`] renders records as
//! the JSON they have always been shown as.
//!
//! # The write path
//!
//! A write operation reads the views as of its batch, lets the domain's pure step decide
//! (`liftlab_domain::record`), and emits records; each record is folded into the views by
//! the same `fold` that replays the log. What the step derives as a separate decision (a
//! period the bandit opens, an automatic pause or re-baseline) is its own record, right
//! after the outcome that caused it. Outcomes are idempotent per (experiment, unit,
//! event id). The stored spec decides, not the one the caller passes (only its key is
//! checked), so that replay decides the same.
//!
//! # Durability: "a 2xx means durable"
//!
//! [`SledStore`] has one writer thread that owns every mutation. It takes up to
//! [`MAX_BATCH`] pending operations, runs each all-or-nothing, appends all their records to
//! the log with one write and one `fdatasync`, then applies their view changes and the mark
//! "applied through record N at segment S offset O, chain head H" to sled in one atomic
//! batch, and only then answers. sled therefore only ever holds durable state: reads go
//! straight to it from the caller's thread and never wait. Opening replays the log after the
//! mark (a torn last record is cut off; a damaged record before the end is
//! [`StoreError::Corrupt`] naming segment and offset); [`Store::rebuild`] folds the whole
//! log into fresh views and compares or replaces, bandit and drift state included.
//!
//! # Layout
//!
//! `log/` holds the segments, named by their first sequence number and rolled at 64 MiB;
//! `views/` is the sled database (one tree; see the `views` module for its keys). A
//! directory of the older layout (one sled database with a write-ahead log) is refused with
//! a pointer to `liftlab migrate`, which reads it and calls [`SledStore::import`].

mod body;
mod cached;
mod engine;
mod error;
mod import;
pub mod legacy;
mod log;
mod mem;
mod rebuild;
mod records;
mod sled_store;
mod views;

use liftlab_domain::thompson::BanditState;
use liftlab_domain::{
    AggKey, AllocationPeriod, Assignment, ExperimentSpec, ExperimentVersion, MetricAggregate,
    Millis, Outcome, Transition, UnitRow,
};

pub use cached::{CachedStore, Live};
pub use error::{Result, StoreError};
pub use liftlab_domain::drift::DriftMonitor;
pub use log::{hash_record, GENESIS};
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

    /// Walks the whole log (the audit chain) and names the first bad record.
    fn verify(&self) -> Result<VerifyReport>;

    /// Folds the whole log into fresh views and compares (or replaces) every live view.
    fn rebuild(&self, mode: RebuildMode) -> Result<RebuildReport>;

    /// Makes everything acknowledged so far durable (it already is; this also flushes sled's own buffers).
    fn flush(&self) -> Result<()>;

    /// Drains pending writes, flushes and stops accepting writes; reads keep working.
    fn close(&self) -> Result<()>;
}

/// Read methods of [`Store`] that answer from the views with the `views` function of the same name.
macro_rules! reads {
    ($($name:ident($($arg:ident: $ty:ty),*) -> $ret:ty;)*) => {
        $(fn $name(&self, $($arg: $ty),*) -> $crate::Result<$ret> {
            $crate::views::$name(self.core().kv(), $($arg),*)
        })*
    };
}
pub(crate) use reads;

/// Implements [`Store`] for a type with `core()`, `submit`, `submit_then`, `rebuild_now`,
/// `check_open`, `flush_now` and `shut_down`: both stores expand the same bodies.
macro_rules! impl_store {
    ($ty:ty) => {
        impl $crate::Store for $ty {
            $crate::reads! {
                experiment(key: &str) -> liftlab_domain::ExperimentVersion;
                experiment_version(key: &str, version: u64) -> liftlab_domain::ExperimentVersion;
                versions(key: &str) -> Vec<liftlab_domain::ExperimentVersion>;
                experiments() -> Vec<liftlab_domain::ExperimentVersion>;
                epochs(key: &str) -> Vec<$crate::Epoch>;
                assignment(experiment: &str, unit_id: &str) -> Option<liftlab_domain::Assignment>;
                assignment_by_task(experiment: &str, task_id: &str) -> Option<liftlab_domain::Assignment>;
                current_period(experiment: &str) -> liftlab_domain::AllocationPeriod;
                periods(experiment: &str) -> Vec<liftlab_domain::AllocationPeriod>;
                aggregates(experiment: &str, epoch: u64) -> Vec<(liftlab_domain::AggKey, liftlab_domain::MetricAggregate)>;
                arm_counters(experiment: &str, epoch: u64) -> Vec<$crate::ArmCounters>;
                assignment_counts(experiment: &str, epoch: u64) -> Vec<$crate::AssignmentCount>;
                unit_rows(experiment: &str, epoch: u64) -> Vec<liftlab_domain::UnitRow>;
                bandit_state(experiment: &str) -> Option<liftlab_domain::thompson::BanditState>;
                drift_monitor(experiment: &str, epoch: u64) -> Option<$crate::DriftMonitor>;
            }
            fn create_experiment(
                &self,
                spec: liftlab_domain::ExperimentSpec,
                now: liftlab_domain::Millis,
            ) -> $crate::Result<liftlab_domain::ExperimentVersion> {
                let op = $crate::views::Op::Create(spec, now);
                $crate::engine::as_version($crate::engine::one(self.submit(vec![op])))
            }

            fn update_experiment(
                &self,
                spec: liftlab_domain::ExperimentSpec,
                expected_version: Option<u64>,
                now: liftlab_domain::Millis,
            ) -> $crate::Result<liftlab_domain::ExperimentVersion> {
                let op = $crate::views::Op::Update(spec, expected_version, now);
                $crate::engine::as_version($crate::engine::one(self.submit(vec![op])))
            }

            fn transition(
                &self,
                key: &str,
                transition: liftlab_domain::Transition,
                reason: Option<&str>,
                now: liftlab_domain::Millis,
            ) -> $crate::Result<liftlab_domain::ExperimentVersion> {
                let op = $crate::views::Op::Transition(
                    key.to_string(),
                    transition,
                    reason.map(str::to_string),
                    now,
                );
                $crate::engine::as_version($crate::engine::one(self.submit(vec![op])))
            }

            fn rebaseline(
                &self,
                key: &str,
                reason: &str,
                now: liftlab_domain::Millis,
            ) -> $crate::Result<$crate::Epoch> {
                let op = $crate::views::Op::Rebaseline(key.to_string(), reason.to_string(), now);
                $crate::engine::as_epoch($crate::engine::one(self.submit(vec![op])))
            }

            fn assignment_if_durable(
                &self,
                experiment: &str,
                unit_id: &str,
            ) -> $crate::Result<Option<liftlab_domain::Assignment>> {
                $crate::views::assignment(self.core().kv(), experiment, unit_id)
            }

            fn current_period_for_decision(
                &self,
                experiment: &str,
            ) -> $crate::Result<liftlab_domain::AllocationPeriod> {
                self.check_open()?;
                $crate::views::current_period(self.core().kv(), experiment)
            }

            fn record_assignment(
                &self,
                assignment: liftlab_domain::Assignment,
            ) -> $crate::Result<liftlab_domain::Assignment> {
                let op = $crate::views::Op::Assign(assignment);
                $crate::engine::as_assignment($crate::engine::one(self.submit(vec![op])))
            }

            fn record_assignment_then(
                &self,
                assignment: liftlab_domain::Assignment,
                done: $crate::Done<liftlab_domain::Assignment>,
            ) {
                self.submit_then(
                    vec![$crate::views::Op::Assign(assignment)],
                    Box::new(move |answers| {
                        done($crate::engine::as_assignment($crate::engine::one(answers)))
                    }),
                );
            }

            fn record_assignments(
                &self,
                assignments: Vec<liftlab_domain::Assignment>,
            ) -> $crate::Result<Vec<$crate::Result<liftlab_domain::Assignment>>> {
                let ops = assignments
                    .into_iter()
                    .map($crate::views::Op::Assign)
                    .collect();
                Ok(self
                    .submit(ops)?
                    .into_iter()
                    .map($crate::engine::as_assignment)
                    .collect())
            }

            fn record_outcome(
                &self,
                spec: &liftlab_domain::ExperimentSpec,
                outcome: liftlab_domain::Outcome,
            ) -> $crate::Result<$crate::Recorded> {
                let op = $crate::views::Op::Outcome(spec.key().to_string(), outcome);
                $crate::engine::as_recorded($crate::engine::one(self.submit(vec![op])))
            }

            fn record_outcomes(
                &self,
                spec: &liftlab_domain::ExperimentSpec,
                outcomes: Vec<liftlab_domain::Outcome>,
            ) -> $crate::Result<Vec<$crate::Result<$crate::Recorded>>> {
                let key = spec.key().to_string();
                let ops = outcomes
                    .into_iter()
                    .map(|o| $crate::views::Op::Outcome(key.clone(), o))
                    .collect();
                Ok(self
                    .submit(ops)?
                    .into_iter()
                    .map($crate::engine::as_recorded)
                    .collect())
            }

            fn outcomes(&self, experiment: &str) -> $crate::Result<$crate::OutcomeIter> {
                self.core().outcomes(experiment)
            }

            fn audit(
                &self,
                experiment: &str,
                after: u64,
                limit: usize,
            ) -> $crate::Result<Vec<$crate::AuditRecord>> {
                self.core().audit(experiment, after, limit)
            }

            fn audit_log(
                &self,
                after: u64,
                limit: usize,
            ) -> $crate::Result<Vec<$crate::AuditRecord>> {
                self.core().audit_log(after, limit)
            }

            fn verify(&self) -> $crate::Result<$crate::VerifyReport> {
                self.core().verify()
            }

            fn rebuild(&self, mode: $crate::RebuildMode) -> $crate::Result<$crate::RebuildReport> {
                self.rebuild_now(mode)
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
