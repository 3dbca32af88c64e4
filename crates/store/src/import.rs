//! Import: today's audit chain (kinds and JSON payloads as the schema-7 layout wrote them) as records of the log.
//!
//! The map is one record for one record. The only change is order: the schema-7 store
//! appended the period an outcome's bandit step opened, and the pause or re-baseline it
//! triggered, *before* the outcome itself; the log keeps them after it, where the fold
//! expects them. [`in_fold_order`] moves them.

use liftlab_domain::{AllocationPeriod, Assignment, ExperimentVersion, Millis, Outcome};
use serde::de::DeserializeOwned;

use crate::body::{Body, Event, Name, Placed};
use crate::error::{Result, StoreError};
use crate::records::{AuditKind, AuditRecord, Epoch, TaskBinding};
use crate::views::Tx;

fn parse<T: DeserializeOwned>(r: &AuditRecord) -> Result<T> {
    serde_json::from_str(&r.payload).map_err(|e| StoreError::Corrupt {
        tree: "audit",
        key: r.seq.to_string(),
        reason: format!(
            "the {} record's payload is undecodable: {e}",
            r.kind.as_str()
        ),
    })
}

/// The log record for one record of today's chain, read against the views so far.
pub(crate) fn body(tx: &Tx<'_>, r: &AuditRecord) -> Result<(Millis, Body)> {
    if r.kind == AuditKind::ExperimentCreated {
        let _: ExperimentVersion = parse(r)?;
        let key = r.experiment.clone();
        return Ok((
            r.ts,
            Body::Created {
                key,
                version: r.payload.clone(),
            },
        ));
    }
    let st = tx.state(&r.experiment)?;
    let exp = st.id;
    let body = match r.kind {
        AuditKind::ExperimentCreated => unreachable!("handled above"),
        AuditKind::SpecChanged | AuditKind::StatusChanged => {
            let _: ExperimentVersion = parse(r)?;
            let version = r.payload.clone();
            if r.kind == AuditKind::SpecChanged {
                Body::SpecChanged { exp, version }
            } else {
                Body::StatusChanged { exp, version }
            }
        }
        AuditKind::Rebaselined => {
            let e: Epoch = parse(r)?;
            Body::Rebaselined {
                exp,
                epoch: e.epoch,
                version: e.version,
                reason: e.reason,
            }
        }
        AuditKind::PeriodOpened => {
            let p: AllocationPeriod = parse(r)?;
            Body::PeriodOpened {
                exp,
                period: p.period,
                weights: p
                    .weights
                    .iter()
                    .map(|(k, w)| (Name::of(&st.names, k), *w))
                    .collect(),
                rewards_seen: p.rewards_seen,
            }
        }
        AuditKind::Assigned => {
            let a: Assignment = parse(r)?;
            return Ok((
                a.assigned_at,
                Body::Assigned {
                    exp,
                    placed: Placed::of(&a, &st.names),
                },
            ));
        }
        AuditKind::OutcomeRecorded => {
            let o: Outcome = parse(r)?;
            return Ok((
                o.ts,
                Body::OutcomeRecorded {
                    exp,
                    event: Event::of(&o, &st.names),
                },
            ));
        }
        AuditKind::TaskBound => {
            let b: TaskBinding = parse(r)?;
            Body::TaskBound {
                exp,
                task: b.task_id,
                unit: b.unit_id,
            }
        }
    };
    Ok((r.ts, body))
}

/// Whether a record is one an outcome's step can cause.
fn derived(r: &AuditRecord) -> bool {
    matches!(
        r.kind,
        AuditKind::PeriodOpened | AuditKind::StatusChanged | AuditKind::Rebaselined
    )
}

/// Moves the records an outcome caused after it: a run of periods, pauses and
/// re-baselines of one experiment, immediately followed by an outcome of that experiment
/// with the same time, was written by that outcome's step.
pub(crate) fn in_fold_order(records: Vec<AuditRecord>) -> Vec<AuditRecord> {
    let mut out: Vec<AuditRecord> = Vec::with_capacity(records.len());
    let mut held: Vec<AuditRecord> = Vec::new();
    for r in records {
        if derived(&r) {
            let same = held
                .last()
                .map_or(true, |h| h.experiment == r.experiment && h.ts == r.ts);
            if !same {
                out.append(&mut held);
            }
            held.push(r);
            continue;
        }
        let caused = r.kind == AuditKind::OutcomeRecorded
            && held
                .first()
                .is_some_and(|h| h.experiment == r.experiment && h.ts == r.ts);
        if caused {
            out.push(r);
            out.append(&mut held);
        } else {
            out.append(&mut held);
            out.push(r);
        }
    }
    out.append(&mut held);
    out
}
