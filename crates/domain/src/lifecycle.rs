//! The experiment lifecycle: draft → running ⇄ paused → stopped, and the immutable version records every change makes.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{DomainError, LifecycleError};
use crate::model::{Millis, Status};
use crate::spec::ExperimentSpec;

/// A requested status change. Re-baselining is not one: it opens a new analysis epoch and
/// leaves the status as it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transition {
    /// draft → running, or paused → running.
    Start,
    /// running → paused.
    Pause,
    /// running or paused → stopped (final).
    Stop,
}

impl Transition {
    /// The status this transition leads to.
    pub fn target(self) -> Status {
        match self {
            Transition::Start => Status::Running,
            Transition::Pause => Status::Paused,
            Transition::Stop => Status::Stopped,
        }
    }

    /// The transition's name as used in the API paths (`start`, `pause`, `stop`).
    pub fn as_str(self) -> &'static str {
        match self {
            Transition::Start => "start",
            Transition::Pause => "pause",
            Transition::Stop => "stop",
        }
    }
}

impl fmt::Display for Transition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Applies a transition to a status: draft→running (start), running→paused (pause),
/// paused→running (start), running|paused→stopped (stop). Anything else is
/// [`DomainError::Transition`] naming both ends.
pub fn transition(from: Status, t: Transition) -> Result<Status, LifecycleError> {
    use Status::*;
    let allowed = matches!(
        (from, t),
        (Draft, Transition::Start)
            | (Running, Transition::Pause)
            | (Paused, Transition::Start)
            | (Running | Paused, Transition::Stop)
    );
    if allowed {
        Ok(t.target())
    } else {
        Err(DomainError::Transition {
            from,
            transition: t,
            to: t.target(),
        })
    }
}

/// What made a new version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// The first version (a draft).
    Created,
    /// The spec was replaced.
    SpecUpdated,
    /// The status changed.
    Status(Transition),
    /// A new analysis epoch was opened (the status and spec are unchanged).
    Rebaselined {
        /// The epoch that was opened.
        epoch: u64,
    },
}

/// One immutable version of an experiment: its spec and status after a change.
///
/// Versions are numbered from 1 and never edited; the store keeps every one of them, and
/// results name the version they cover.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExperimentVersion {
    /// The experiment key (the spec's key).
    pub key: String,
    /// 1 for the created draft, then one more per accepted change.
    pub version: u64,
    /// The status in force from this version on.
    pub status: Status,
    /// The spec in force from this version on.
    pub spec: ExperimentSpec,
    /// When the change was accepted.
    pub created_at: Millis,
    /// What changed.
    pub change: Change,
    /// Why, when the caller said (for example an automatic pause on harm).
    pub reason: Option<String>,
}

impl ExperimentVersion {
    /// Version 1 of a new experiment: a draft holding `spec`.
    pub fn created(spec: ExperimentSpec, now: Millis) -> Self {
        Self {
            key: spec.key().to_string(),
            version: 1,
            status: Status::Draft,
            spec,
            created_at: now,
            change: Change::Created,
            reason: None,
        }
    }

    /// The next version after a status transition, or the lifecycle error.
    pub fn transitioned(
        &self,
        t: Transition,
        reason: Option<String>,
        now: Millis,
    ) -> Result<Self, LifecycleError> {
        let status = transition(self.status, t)?;
        Ok(self.next(status, self.spec.clone(), Change::Status(t), reason, now))
    }

    /// The next version with a replaced spec.
    ///
    /// The key must stay the same. A stopped experiment is frozen. Once an experiment has
    /// started (running or paused), its arms (keys and roles), unit, hash seed and policy may
    /// not change, because that would move units already served; weights, coverage,
    /// targeting, metrics and analysis settings may. A started experiment's metrics keep
    /// their covariate and ratio, and no ratio metric is added: a unit's pair enters the
    /// aggregates with its first value, so a pair defined later would have to remove values
    /// that were never added (see [`crate::fold::fold`]).
    pub fn updated(
        &self,
        spec: ExperimentSpec,
        reason: Option<String>,
        now: Millis,
    ) -> Result<Self, DomainError> {
        if spec.key() != self.key {
            return Err(DomainError::KeyMismatch {
                expected: self.key.clone(),
                found: spec.key().to_string(),
            });
        }
        let frozen = |what| DomainError::FrozenField {
            what,
            status: self.status,
        };
        match self.status {
            Status::Draft => {}
            Status::Stopped => return Err(frozen("the spec")),
            Status::Running | Status::Paused => {
                let arms = |s: &ExperimentSpec| {
                    s.arms()
                        .iter()
                        .map(|a| (a.key().to_string(), a.role()))
                        .collect::<Vec<_>>()
                };
                if arms(&spec) != arms(&self.spec) {
                    return Err(frozen("the arms"));
                }
                if spec.unit() != self.spec.unit() {
                    return Err(frozen("the unit"));
                }
                if spec.hash_seed() != self.spec.hash_seed() {
                    return Err(frozen("the hash seed"));
                }
                if spec.allocation().policy() != self.spec.allocation().policy() {
                    return Err(frozen("the allocation policy"));
                }
                let pairing = |m: &crate::spec::Metric| {
                    (
                        m.covariate().map(str::to_string),
                        m.ratio()
                            .map(|r| (r.numerator().to_string(), r.denominator().to_string())),
                    )
                };
                let changed = spec
                    .metrics()
                    .iter()
                    .any(|m| match self.spec.metric(m.key()) {
                        Some(before) => pairing(before) != pairing(m),
                        None => m.ratio().is_some(),
                    });
                if changed {
                    return Err(frozen("the covariates and ratios of the metrics"));
                }
            }
        }
        Ok(self.next(self.status, spec, Change::SpecUpdated, reason, now))
    }

    /// The next version recording that analysis epoch `epoch` was opened.
    pub fn rebaselined(&self, epoch: u64, reason: Option<String>, now: Millis) -> Self {
        self.next(
            self.status,
            self.spec.clone(),
            Change::Rebaselined { epoch },
            reason,
            now,
        )
    }

    fn next(
        &self,
        status: Status,
        spec: ExperimentSpec,
        change: Change,
        reason: Option<String>,
        now: Millis,
    ) -> Self {
        Self {
            key: self.key.clone(),
            version: self.version + 1,
            status,
            spec,
            created_at: now,
            change,
            reason,
        }
    }
}

#[cfg(test)]
mod tests;
