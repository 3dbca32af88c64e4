//! Copying another store (a sled data directory) into an empty PostgreSQL database, in one transaction.
//!
//! Everything is read through the `Store` trait: experiments with their versions, epochs,
//! periods, bandit state and drift monitors; assignments and task bindings from the audit
//! chain (every new assignment and every returning unit's new task is a record of it); the
//! outcome log; the unit rows, aggregates, counters and assignment counts of every epoch (as
//! compacted base rows, so the numbers are the source's to the bit); and the audit chain
//! itself, record for record with its hashes, so it verifies here as it did there.

use std::collections::BTreeMap;

use liftlab_domain::Assignment;
use liftlab_store::{AuditKind, Result, Store, StoreError, TaskBinding, MAX_AUDIT_PAGE};
use postgres::{Client, Transaction};

use crate::error::{encode, io};
use crate::tx::{agg_key_text, State};

/// What an import copied.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Experiments copied.
    pub experiments: u64,
    /// Assignments copied.
    pub assignments: u64,
    /// Outcomes copied.
    pub outcomes: u64,
    /// Audit records copied.
    pub audit_records: u64,
}

fn i(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn exec(
    tx: &mut Transaction<'_>,
    context: &'static str,
    sql: &str,
    params: &[&(dyn postgres::types::ToSql + Sync)],
) -> Result<()> {
    tx.execute(sql, params)
        .map(|_| ())
        .map_err(|e| io(context, e))
}

fn hash(hex_text: &str, seq: u64) -> Result<Vec<u8>> {
    hex::decode(hex_text).map_err(|e| StoreError::Corrupt {
        tree: "audit",
        key: seq.to_string(),
        reason: format!("a hash is not hex: {e}"),
    })
}

fn enc<T: serde::Serialize>(what: &str, v: &T) -> Result<String> {
    encode(what, v)
}

/// Copies `src` into the database of `client`, which must hold no experiment and no audit
/// record; refuses a source whose chain does not verify.
pub(crate) fn import(client: &mut Client, src: &dyn Store) -> Result<ImportReport> {
    let verified = src.verify()?;
    if !verified.ok {
        return Err(StoreError::Invalid(format!(
            "the source's audit chain does not verify (record {:?}: {}); nothing was copied",
            verified.first_bad,
            verified.reason.unwrap_or_default()
        )));
    }
    let mut tx = client
        .transaction()
        .map_err(|e| io("starting the import", e))?;
    let head = tx
        .query_one("SELECT seq FROM audit_head WHERE id = 1 FOR UPDATE", &[])
        .map_err(|e| io("locking the audit head", e))?;
    let used = tx
        .query_one("SELECT count(*) FROM experiments", &[])
        .map_err(|e| io("counting experiments", e))?;
    if head.get::<_, i64>(0) != 0 || used.get::<_, i64>(0) != 0 {
        return Err(StoreError::Conflict(
            "the database already holds liftlab data; import into an empty one".to_string(),
        ));
    }
    let mut report = ImportReport::default();

    // The chain, record for record; assignments and task bindings come from it.
    let mut assignments: Vec<Assignment> = Vec::new();
    let mut bindings: Vec<(String, TaskBinding)> = Vec::new();
    let (mut after, mut last_hash) = (0u64, vec![0u8; 32]);
    loop {
        let page = src.audit_log(after, MAX_AUDIT_PAGE)?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for r in &page {
            report.audit_records += 1;
            let corrupt = |e: serde_json::Error| StoreError::Corrupt {
                tree: "audit",
                key: r.seq.to_string(),
                reason: format!("the payload cannot be read: {e}"),
            };
            match r.kind {
                AuditKind::Assigned => {
                    assignments.push(serde_json::from_str(&r.payload).map_err(corrupt)?)
                }
                AuditKind::TaskBound => bindings.push((
                    r.experiment.clone(),
                    serde_json::from_str(&r.payload).map_err(corrupt)?,
                )),
                _ => {}
            }
            let (prev, this) = (hash(&r.prev_hash, r.seq)?, hash(&r.hash, r.seq)?);
            exec(
                &mut tx,
                "copying the audit chain",
                "INSERT INTO audit (experiment, seq, prev_hash, kind, payload, ts, hash)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[
                    &r.experiment,
                    &i(r.seq),
                    &prev,
                    &r.kind.as_str(),
                    &r.payload,
                    &r.ts,
                    &this,
                ],
            )?;
            last_hash = this;
        }
    }
    exec(
        &mut tx,
        "moving the audit head",
        "UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1",
        &[&i(after), &last_hash],
    )?;

    for current in src.experiments()? {
        let exp = current.key.as_str();
        report.experiments += 1;
        let epochs = src.epochs(exp)?;
        let periods = src.periods(exp)?;
        let state = State {
            version: current.version,
            epoch: epochs.last().map_or(0, |e| e.epoch),
            period: periods.last().map_or(0, |p| p.period),
            status: current.status,
            arms: current
                .spec
                .arms()
                .iter()
                .map(|a| a.key().to_string())
                .collect(),
        };
        exec(
            &mut tx,
            "copying an experiment",
            "INSERT INTO experiments (experiment, state, current) VALUES ($1, $2, $3)",
            &[&exp, &enc("state", &state)?, &enc("version", &current)?],
        )?;
        for v in src.versions(exp)? {
            exec(
                &mut tx,
                "copying a version",
                "INSERT INTO versions (experiment, version, body) VALUES ($1, $2, $3)",
                &[&exp, &i(v.version), &enc("version", &v)?],
            )?;
        }
        for p in &periods {
            exec(
                &mut tx,
                "copying a period",
                "INSERT INTO periods (experiment, period, body) VALUES ($1, $2, $3)",
                &[&exp, &i(p.period), &enc("period", p)?],
            )?;
        }
        if let Some(b) = src.bandit_state(exp)? {
            exec(
                &mut tx,
                "copying a bandit",
                "INSERT INTO bandits (experiment, body) VALUES ($1, $2)",
                &[&exp, &enc("bandit state", &b)?],
            )?;
        }
        for e in &epochs {
            let epoch = e.epoch;
            exec(
                &mut tx,
                "copying an epoch",
                "INSERT INTO epochs (experiment, epoch, body) VALUES ($1, $2, $3)",
                &[&exp, &i(epoch), &enc("epoch", e)?],
            )?;
            if let Some(m) = src.drift_monitor(exp, epoch)? {
                exec(
                    &mut tx,
                    "copying a drift monitor",
                    "INSERT INTO drift (experiment, epoch, body) VALUES ($1, $2, $3)",
                    &[&exp, &i(epoch), &enc("drift monitor", &m)?],
                )?;
            }
            for row in src.unit_rows(exp, epoch)? {
                exec(
                    &mut tx,
                    "copying a unit row",
                    "INSERT INTO units (experiment, epoch, unit_id, body) VALUES ($1, $2, $3, $4)",
                    &[&exp, &i(epoch), &row.unit_id, &enc("unit row", &row)?],
                )?;
            }
            for (key, a) in src.aggregates(exp, epoch)? {
                let text = agg_key_text(&key).map_err(|e| match e {
                    crate::error::Fail::Store(e) => e,
                    crate::error::Fail::Retry(m) => StoreError::Internal(m),
                })?;
                exec(
                    &mut tx,
                    "copying an aggregate",
                    "INSERT INTO aggregates (experiment, epoch, key, body) VALUES ($1, $2, $3, $4)",
                    &[&exp, &i(epoch), &text, &enc("aggregate", &a)?],
                )?;
            }
            for c in src.arm_counters(exp, epoch)? {
                exec(
                    &mut tx,
                    "copying counters",
                    "INSERT INTO counters (experiment, epoch, arm, units, outcomes, handled_by)
                     VALUES ($1, $2, $3, $4, $5, $6)",
                    &[
                        &exp,
                        &i(epoch),
                        &c.arm,
                        &i(c.units),
                        &i(c.outcomes),
                        &enc("handled_by counts", &c.handled_by)?,
                    ],
                )?;
            }
            for c in src.assignment_counts(exp, epoch)? {
                exec(
                    &mut tx,
                    "copying an assignment count",
                    "INSERT INTO assignment_counts (experiment, epoch, period, arm, count)
                     VALUES ($1, $2, $3, $4, $5)",
                    &[&exp, &i(epoch), &i(c.period), &c.arm, &i(c.count)],
                )?;
            }
        }
        for outcome in src.outcomes(exp)? {
            let o = outcome?;
            report.outcomes += 1;
            exec(
                &mut tx,
                "copying an outcome",
                "INSERT INTO outcomes (experiment, body) VALUES ($1, $2)",
                &[&exp, &enc("outcome", &o)?],
            )?;
            exec(
                &mut tx,
                "copying an event id",
                "INSERT INTO events (experiment, event_id, unit_id) VALUES ($1, $2, $3)
                 ON CONFLICT DO NOTHING",
                &[&exp, &o.event_id, &o.unit_id],
            )?;
        }
    }
    // Task ids: each assignment's own (unless it is the unit's id), then the bindings.
    let mut tasks: BTreeMap<(String, String), String> = BTreeMap::new();
    for a in &assignments {
        report.assignments += 1;
        exec(
            &mut tx,
            "copying an assignment",
            "INSERT INTO assignments (experiment, unit_id, body) VALUES ($1, $2, $3)",
            &[&a.experiment, &a.unit_id, &enc("assignment", a)?],
        )?;
        if a.task_id != a.unit_id {
            tasks
                .entry((a.experiment.clone(), a.task_id.clone()))
                .or_insert_with(|| a.unit_id.clone());
        }
    }
    for (exp, b) in bindings {
        tasks.entry((exp, b.task_id)).or_insert(b.unit_id);
    }
    for ((exp, task), unit) in tasks {
        exec(
            &mut tx,
            "copying a task id",
            "INSERT INTO tasks (experiment, task_id, unit_id) VALUES ($1, $2, $3)",
            &[&exp, &task, &unit],
        )?;
    }
    tx.commit().map_err(|e| io("committing the import", e))?;
    Ok(report)
}
