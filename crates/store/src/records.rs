//! The store's own record types: what it returns beside the domain's records, and its bookkeeping.

use std::collections::BTreeMap;

use liftlab_domain::record::CounterStep;
use liftlab_domain::{HandledBy, Millis};
use serde::{Deserialize, Serialize};

/// An analysis epoch: results are computed per epoch, and re-baselining starts a new one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Epoch {
    /// The experiment key.
    pub experiment: String,
    /// 0 for the epoch opened at creation; increases by one per re-baseline.
    pub epoch: u64,
    /// Why the epoch was started (`created` for epoch 0).
    pub reason: String,
    /// When the epoch started.
    pub started_at: Millis,
    /// The spec version in force when it started.
    pub version: u64,
}

/// What happened to one outcome event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Recorded {
    /// The event was new: it is in the log and folded into the aggregates.
    Accepted,
    /// An event with the same `(experiment, event_id)` was recorded before; nothing changed.
    Duplicate,
}

/// Per-arm counters of one epoch, kept beside the aggregates.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArmCounters {
    /// The arm key.
    pub arm: String,
    /// Units with at least one outcome in the epoch.
    pub units: u64,
    /// Outcomes recorded in the epoch.
    pub outcomes: u64,
    /// Outcomes by who handled them (outcomes without `handled_by` are not counted here).
    pub handled_by: BTreeMap<HandledBy, u64>,
}

impl ArmCounters {
    /// Counts one outcome of the arm, as the domain's step says.
    pub fn step(&mut self, step: &CounterStep) {
        self.outcomes += 1;
        if step.new_unit {
            self.units += 1;
        }
        if let Some(by) = step.handled_by {
            *self.handled_by.entry(by).or_insert(0) += 1;
        }
    }
}

/// How many units one allocation period placed into one arm (units in the experiment only).
///
/// Under a bandit, the expected count of arm `a` over an epoch is
/// Σ over periods of (Σ over arms of `count`) · weight(period, a).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssignmentCount {
    /// The allocation period.
    pub period: u64,
    /// The arm key.
    pub arm: String,
    /// Units assigned.
    pub count: u64,
}

/// What kind of event an audit record describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditKind {
    /// A new experiment; the payload is its first version.
    ExperimentCreated,
    /// A new spec version; the payload is the version.
    SpecChanged,
    /// A lifecycle change; the payload is the new version.
    StatusChanged,
    /// A new analysis epoch; the payload is the [`Epoch`].
    Rebaselined,
    /// A new allocation period; the payload is the period.
    PeriodOpened,
    /// A unit's first assignment; the payload is the assignment.
    Assigned,
    /// A recorded outcome; the payload is the outcome.
    OutcomeRecorded,
    /// A returning unit's new task id, now bound to it; the payload is a [`TaskBinding`].
    ///
    /// Stored kinds are numbered by position, so new kinds go at the end.
    TaskBound,
}

impl AuditKind {
    /// The kind's name as it is hashed and serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditKind::ExperimentCreated => "experiment_created",
            AuditKind::SpecChanged => "spec_changed",
            AuditKind::StatusChanged => "status_changed",
            AuditKind::Rebaselined => "rebaselined",
            AuditKind::PeriodOpened => "period_opened",
            AuditKind::Assigned => "assigned",
            AuditKind::OutcomeRecorded => "outcome_recorded",
            AuditKind::TaskBound => "task_bound",
        }
    }
}

/// The payload of a [`AuditKind::TaskBound`] record: a task id that now belongs to a unit
/// which was assigned before, under another task id.
///
/// With each assignment's own task id, these records are what the `tasks` index is derived
/// from, so [`crate::Store::rebuild`] can check and restore it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskBinding {
    /// The new task id.
    pub task_id: String,
    /// The unit it belongs to (the unit's assignment is unchanged).
    pub unit_id: String,
}

/// One link of the tamper-evident audit chain.
///
/// A record of the log as auditors see it: `hash` is the hex SHA-256 of `prev_hash`'s 32
/// bytes followed by the record's encoding in the log (see the `log` module); the payload is
/// rendered from the record when it is read. The first record's `prev_hash` is 64 zeros.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Position in the chain, from 1, without gaps.
    pub seq: u64,
    /// The previous record's hash (hex).
    pub prev_hash: String,
    /// What happened.
    pub kind: AuditKind,
    /// The experiment concerned.
    pub experiment: String,
    /// The event as JSON text, hashed byte for byte.
    pub payload: String,
    /// When it was recorded (the caller's clock).
    pub ts: Millis,
    /// This record's hash (hex).
    pub hash: String,
}

/// The outcome of walking the audit chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyReport {
    /// True when every record links and hashes correctly and the chain ends at the stored head.
    pub ok: bool,
    /// Records that verified before the first bad one (all of them when `ok`).
    pub records: u64,
    /// The sequence number of the first record that does not verify (a missing one included).
    pub first_bad: Option<u64>,
    /// Why it does not verify.
    pub reason: Option<String>,
}

/// Whether [`crate::Store::rebuild`] only compares or also replaces the live state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RebuildMode {
    /// Recompute and report differences; change nothing.
    Check,
    /// Recompute, report differences, and replace the live unit rows, aggregates, counters,
    /// assignment counts and task index.
    Replace,
}

/// One difference between the live state and the state rebuilt from the logs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Mismatch {
    /// The experiment.
    pub experiment: String,
    /// Which table differs (`units`, `aggregates`, `counters`, `assignment_counts`, `tasks`).
    pub table: String,
    /// The entry, described (e.g. `epoch 0 arm ai metric cost Overall`, `task "t7"`).
    pub entry: String,
    /// The live value as JSON (`null` when the live entry is missing).
    pub live: String,
    /// The rebuilt value as JSON (`null` when the rebuilt entry is missing).
    pub rebuilt: String,
}

/// What [`crate::Store::rebuild`] found.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RebuildReport {
    /// Experiments rebuilt.
    pub experiments: u64,
    /// Outcomes replayed from the log.
    pub outcomes: u64,
    /// Assignments recounted.
    pub assignments: u64,
    /// Every difference, aggregates compared within a relative tolerance of 1e-9.
    pub mismatches: Vec<Mismatch>,
    /// True when the live state was replaced by the rebuilt one.
    pub replaced: bool,
}
