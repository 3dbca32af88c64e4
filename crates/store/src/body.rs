//! The log's record bodies: one variant per audit kind, in a compact form, and their JSON rendering for auditors.
//!
//! Experiments are named by a small number (their order of creation), arms and metrics by
//! their index in the experiment's list of names (every arm and metric key its specs ever
//! had, in order of first appearance, see [`extend_names`]), assignment ids of 32 hex digits
//! as their 16 bytes, and a task id equal to its unit id is left out. Specs and versions are
//! kept as the JSON text they are rendered as (they are rare).

use std::collections::BTreeMap;

use liftlab_domain::{AllocationPeriod, Assignment, ExperimentSpec, HandledBy, Millis, Outcome};
use serde::{Deserialize, Serialize};

use crate::error::{Result, StoreError};
use crate::records::{AuditKind, Epoch, TaskBinding};

/// The version tag of the record encoding; bumped whenever [`Body`] changes shape.
pub(crate) const FORMAT: u8 = 1;

/// An arm or metric key: its index in the experiment's names, or the key itself when the
/// names do not hold it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Name {
    Idx(u32),
    Text(String),
}

impl Name {
    pub(crate) fn of(names: &[String], key: &str) -> Name {
        match names.iter().position(|n| n == key) {
            Some(i) => Name::Idx(u32::try_from(i).unwrap_or(u32::MAX)),
            None => Name::Text(key.to_string()),
        }
    }

    pub(crate) fn resolve(&self, names: &[String]) -> Result<String> {
        match self {
            Name::Text(t) => Ok(t.clone()),
            Name::Idx(i) => names
                .get(*i as usize)
                .cloned()
                .ok_or_else(|| StoreError::Corrupt {
                    tree: "log",
                    key: String::new(),
                    reason: format!("a record names arm or metric {i}, which is unknown"),
                }),
        }
    }
}

/// An assignment id: 16 bytes when it was 32 lowercase hex digits, else its text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Id {
    Bytes([u8; 16]),
    Text(String),
}

impl Id {
    pub(crate) fn of(s: &str) -> Id {
        let mut bytes = [0u8; 16];
        match hex::decode_to_slice(s, &mut bytes) {
            Ok(()) if hex::encode(bytes) == s => Id::Bytes(bytes),
            _ => Id::Text(s.to_string()),
        }
    }

    pub(crate) fn text(&self) -> String {
        match self {
            Id::Bytes(b) => hex::encode(b),
            Id::Text(t) => t.clone(),
        }
    }
}

/// A unit's assignment without what its key and its record already say.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Placed {
    pub unit: String,
    /// `None` when the task id is the unit id.
    pub task: Option<String>,
    pub arm: Name,
    pub in_experiment: bool,
    pub version: u64,
    pub id: Id,
    pub propensity: f64,
    pub period: u64,
    pub epoch: u64,
    pub segments: Vec<(String, String)>,
}

impl Placed {
    pub(crate) fn of(a: &Assignment, names: &[String]) -> Placed {
        Placed {
            unit: a.unit_id.clone(),
            task: (a.task_id != a.unit_id).then(|| a.task_id.clone()),
            arm: Name::of(names, &a.arm),
            in_experiment: a.in_experiment,
            version: a.version,
            id: Id::of(&a.assignment_id),
            propensity: a.propensity,
            period: a.period,
            epoch: a.epoch,
            segments: a.segments.clone().into_iter().collect(),
        }
    }

    pub(crate) fn assignment(&self, exp: &str, names: &[String], at: Millis) -> Result<Assignment> {
        Ok(Assignment {
            experiment: exp.to_string(),
            unit_id: self.unit.clone(),
            task_id: self.task.clone().unwrap_or_else(|| self.unit.clone()),
            arm: self.arm.resolve(names)?,
            in_experiment: self.in_experiment,
            version: self.version,
            assignment_id: self.id.text(),
            propensity: self.propensity,
            period: self.period,
            epoch: self.epoch,
            segments: self.segments.iter().cloned().collect(),
            assigned_at: at,
        })
    }
}

/// An outcome without what its record already says (its experiment and time).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Event {
    pub event_id: String,
    pub unit: String,
    /// `None` when the task id is the unit id.
    pub task: Option<String>,
    pub arm: Name,
    pub epoch: u64,
    pub metrics: Vec<(Name, f64)>,
    pub handled_by: Option<HandledBy>,
    pub model_version: Option<String>,
    pub attributes: Vec<(String, String)>,
}

impl Event {
    pub(crate) fn of(o: &Outcome, names: &[String]) -> Event {
        Event {
            event_id: o.event_id.clone(),
            unit: o.unit_id.clone(),
            task: (o.task_id != o.unit_id).then(|| o.task_id.clone()),
            arm: Name::of(names, &o.arm),
            epoch: o.epoch,
            metrics: o
                .metrics
                .iter()
                .map(|(k, v)| (Name::of(names, k), *v))
                .collect(),
            handled_by: o.handled_by,
            model_version: o.model_version.clone(),
            attributes: o.attributes.clone().into_iter().collect(),
        }
    }

    pub(crate) fn outcome(&self, exp: &str, names: &[String], ts: Millis) -> Result<Outcome> {
        let metrics = self
            .metrics
            .iter()
            .map(|(k, v)| Ok((k.resolve(names)?, *v)))
            .collect::<Result<BTreeMap<_, _>>>()?;
        Ok(Outcome {
            event_id: self.event_id.clone(),
            experiment: exp.to_string(),
            task_id: self.task.clone().unwrap_or_else(|| self.unit.clone()),
            unit_id: self.unit.clone(),
            arm: self.arm.resolve(names)?,
            epoch: self.epoch,
            ts,
            metrics,
            handled_by: self.handled_by,
            model_version: self.model_version.clone(),
            attributes: self.attributes.iter().cloned().collect(),
        })
    }
}

/// One fact. The variants are in [`AuditKind`] order, and postcard numbers them by position:
/// new ones go at the end.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) enum Body {
    /// Version 1 of a new experiment (JSON of its `ExperimentVersion`); it gets the next number.
    Created { key: String, version: String },
    /// A new spec version (JSON of the `ExperimentVersion`).
    SpecChanged { exp: u32, version: String },
    /// A lifecycle change (JSON of the new `ExperimentVersion`).
    StatusChanged { exp: u32, version: String },
    /// A new analysis epoch, noted by a new version.
    Rebaselined {
        exp: u32,
        epoch: u64,
        version: u64,
        reason: String,
    },
    /// A new allocation period.
    PeriodOpened {
        exp: u32,
        period: u64,
        weights: Vec<(Name, f64)>,
        rewards_seen: u64,
    },
    /// A unit's first assignment.
    Assigned { exp: u32, placed: Placed },
    /// A recorded outcome.
    OutcomeRecorded { exp: u32, event: Event },
    /// A returning unit's new task id.
    TaskBound {
        exp: u32,
        task: String,
        unit: String,
    },
}

impl Body {
    pub(crate) fn kind(&self) -> AuditKind {
        match self {
            Body::Created { .. } => AuditKind::ExperimentCreated,
            Body::SpecChanged { .. } => AuditKind::SpecChanged,
            Body::StatusChanged { .. } => AuditKind::StatusChanged,
            Body::Rebaselined { .. } => AuditKind::Rebaselined,
            Body::PeriodOpened { .. } => AuditKind::PeriodOpened,
            Body::Assigned { .. } => AuditKind::Assigned,
            Body::OutcomeRecorded { .. } => AuditKind::OutcomeRecorded,
            Body::TaskBound { .. } => AuditKind::TaskBound,
        }
    }

    /// The experiment's number; `None` for a creation, which names the experiment by key.
    pub(crate) fn exp(&self) -> Option<u32> {
        match self {
            Body::Created { .. } => None,
            Body::SpecChanged { exp, .. }
            | Body::StatusChanged { exp, .. }
            | Body::Rebaselined { exp, .. }
            | Body::PeriodOpened { exp, .. }
            | Body::Assigned { exp, .. }
            | Body::OutcomeRecorded { exp, .. }
            | Body::TaskBound { exp, .. } => Some(*exp),
        }
    }

    /// The record as JSON, exactly as the audit chain has always shown it.
    pub(crate) fn render(&self, exp: &str, names: &[String], ts: Millis) -> Result<String> {
        let json = |r: serde_json::Result<String>| {
            r.map_err(|e| StoreError::Internal(format!("a record cannot be rendered: {e}")))
        };
        match self {
            Body::Created { version, .. }
            | Body::SpecChanged { version, .. }
            | Body::StatusChanged { version, .. } => Ok(version.clone()),
            Body::Rebaselined {
                epoch,
                version,
                reason,
                ..
            } => json(serde_json::to_string(&Epoch {
                experiment: exp.to_string(),
                epoch: *epoch,
                reason: reason.clone(),
                started_at: ts,
                version: *version,
            })),
            Body::PeriodOpened { .. } => json(serde_json::to_string(&self.period(exp, names, ts)?)),
            Body::Assigned { placed, .. } => {
                json(serde_json::to_string(&placed.assignment(exp, names, ts)?))
            }
            Body::OutcomeRecorded { event, .. } => {
                json(serde_json::to_string(&event.outcome(exp, names, ts)?))
            }
            Body::TaskBound { task, unit, .. } => json(serde_json::to_string(&TaskBinding {
                task_id: task.clone(),
                unit_id: unit.clone(),
            })),
        }
    }

    /// The allocation period of a `PeriodOpened` record.
    pub(crate) fn period(
        &self,
        exp: &str,
        names: &[String],
        ts: Millis,
    ) -> Result<AllocationPeriod> {
        let Body::PeriodOpened {
            period,
            weights,
            rewards_seen,
            ..
        } = self
        else {
            return Err(StoreError::Internal("not a period record".to_string()));
        };
        Ok(AllocationPeriod {
            experiment: exp.to_string(),
            period: *period,
            weights: weights
                .iter()
                .map(|(k, w)| Ok((k.resolve(names)?, *w)))
                .collect::<Result<_>>()?,
            opened_at: ts,
            rewards_seen: *rewards_seen,
        })
    }
}

/// Adds the arm and metric keys of `spec` that `names` lacks, in the spec's order.
pub(crate) fn extend_names(names: &mut Vec<String>, spec: &ExperimentSpec) {
    let keys = spec
        .arms()
        .iter()
        .map(|a| a.key().to_string())
        .chain(spec.metrics().iter().map(|m| m.key().to_string()));
    for key in keys {
        if !names.contains(&key) {
            names.push(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignment_ids_of_32_lowercase_hex_digits_are_kept_as_bytes() {
        let hexed = "00ff10aa00ff10aa00ff10aa00ff10aa";
        assert!(matches!(Id::of(hexed), Id::Bytes(_)));
        assert_eq!(Id::of(hexed).text(), hexed);
        for other in ["00FF10AA00FF10AA00FF10AA00FF10AA", "abc", ""] {
            assert_eq!(Id::of(other), Id::Text(other.to_string()));
            assert_eq!(Id::of(other).text(), other);
        }
    }

    #[test]
    fn names_fall_back_to_text() {
        let names = vec!["a".to_string(), "b".to_string()];
        assert_eq!(Name::of(&names, "b"), Name::Idx(1));
        assert_eq!(Name::of(&names, "c").resolve(&names).expect("text"), "c");
        assert!(Name::Idx(5).resolve(&names).is_err());
    }
}
