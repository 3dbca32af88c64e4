//! What both stores share: the views, the log's read side, group commit, replay, the log reads (audit, outcomes, verify), and the `Store` methods written once.

use std::sync::RwLock;

use liftlab_domain::Outcome;

use crate::body::Body;
use crate::error::{Result, StoreError};
use crate::log::{self, Mark, Sealed};
use crate::records::{AuditRecord, VerifyReport};
use crate::views::{self, Answer, Kv, Op, SpecCache, Tx};
use crate::OutcomeIter;

/// The log as the readers see it: records in order after a sequence number, up to what the
/// views have applied.
pub(crate) trait LogRead: Send + Sync {
    fn read(
        &self,
        after: u64,
        through: u64,
    ) -> Result<Box<dyn Iterator<Item = Result<Sealed>> + '_>>;
}

/// The log in memory ([`crate::MemStore`]).
#[derive(Default)]
pub(crate) struct MemLog(pub RwLock<Vec<Sealed>>);

impl LogRead for MemLog {
    fn read(
        &self,
        after: u64,
        through: u64,
    ) -> Result<Box<dyn Iterator<Item = Result<Sealed>> + '_>> {
        let records = self.0.read().unwrap_or_else(|p| p.into_inner());
        let from = usize::try_from(after)
            .unwrap_or(usize::MAX)
            .min(records.len());
        let to = usize::try_from(through)
            .unwrap_or(usize::MAX)
            .min(records.len());
        let part: Vec<Sealed> = records[from..to.max(from)].to_vec();
        Ok(Box::new(part.into_iter().map(Ok)))
    }
}

/// The log in a directory ([`crate::SledStore`]).
pub(crate) struct DirLog(pub std::path::PathBuf);

impl LogRead for DirLog {
    fn read(
        &self,
        after: u64,
        through: u64,
    ) -> Result<Box<dyn Iterator<Item = Result<Sealed>> + '_>> {
        Ok(Box::new(log::Reader::open(&self.0, after, through)?))
    }
}

/// The views, the log's read side, and the decoded-spec memo.
pub(crate) struct Core {
    pub kv: Box<dyn Kv>,
    pub log: Box<dyn LogRead>,
    pub specs: SpecCache,
}

impl Core {
    pub(crate) fn kv(&self) -> &dyn Kv {
        &*self.kv
    }

    /// Runs `ops` as one group commit: each all-or-nothing against the views, then every
    /// record appended with `append` (one write, one sync), then the views and the mark
    /// applied atomically. Answers only after all of it; `head` moves on success.
    pub(crate) fn commit(
        &self,
        head: &mut Mark,
        append: &mut dyn FnMut(&[Sealed]) -> Result<Mark>,
        ops: Vec<Op>,
    ) -> Result<Vec<Result<Answer>>> {
        let mut tx = Tx::new(&*self.kv, &self.specs, *head);
        let answers: Vec<Result<Answer>> = ops.into_iter().map(|op| tx.run(op)).collect();
        if tx.sealed.is_empty() {
            return Ok(answers);
        }
        let mark = append(&tx.sealed)?;
        let mut writes = tx.into_writes();
        views::put_mark(&mut writes, &mark)?;
        self.kv.apply(writes)?;
        *head = mark;
        Ok(answers)
    }

    /// Folds `records` (the log after the views' mark) into the views, in batches.
    pub(crate) fn replay(&self, head: &mut Mark, records: &[(Sealed, Mark)]) -> Result<()> {
        for chunk in records.chunks(4096) {
            let mut tx = Tx::new(&*self.kv, &self.specs, *head);
            let mut prev = head.hash;
            for (r, _) in chunk {
                tx.replay_checked(r, &prev)?;
                prev = r.hash;
            }
            let last = chunk.last().map_or(*head, |(_, at)| *at);
            let mut writes = tx.into_writes();
            views::put_mark(&mut writes, &last)?;
            self.kv.apply(writes)?;
            *head = last;
        }
        Ok(())
    }

    fn applied(&self) -> Result<u64> {
        Ok(views::mark(self.kv())?.seq)
    }

    /// Every record after `after`, rendered for auditors, with `prev_hash` filled in.
    fn rendered(&self, after: u64, limit: usize, only: Option<u32>) -> Result<Vec<AuditRecord>> {
        let through = self.applied()?;
        // Start one record early, for its hash.
        let start = after.saturating_sub(1);
        let mut prev = log::GENESIS;
        let mut names: std::collections::HashMap<u32, views::ExpState> = Default::default();
        let mut out = Vec::new();
        for r in self.log.read(start, through)? {
            let r = r?;
            let this_prev = prev;
            prev = r.hash;
            if r.entry.seq <= after || out.len() >= limit {
                if out.len() >= limit {
                    break;
                }
                continue;
            }
            let id = match (&r.entry.body, r.entry.body.exp()) {
                (_, Some(id)) => id,
                (crate::body::Body::Created { key, .. }, None) => views::state(self.kv(), key)?.id,
                _ => continue,
            };
            if only.is_some_and(|o| o != id) {
                continue;
            }
            let st = match names.entry(id) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(views::state_of(self.kv(), id)?)
                }
            };
            out.push(AuditRecord {
                seq: r.entry.seq,
                prev_hash: hex::encode(this_prev),
                kind: r.entry.body.kind(),
                experiment: st.key.clone(),
                payload: r.entry.body.render(&st.key, &st.names, r.entry.ts)?,
                ts: r.entry.ts,
                hash: hex::encode(r.hash),
            });
        }
        Ok(out)
    }

    pub(crate) fn audit(&self, exp: &str, after: u64, limit: usize) -> Result<Vec<AuditRecord>> {
        let st = views::state(self.kv(), exp)?;
        self.rendered(after, limit.min(crate::MAX_AUDIT_PAGE), Some(st.id))
    }

    pub(crate) fn audit_log(&self, after: u64, limit: usize) -> Result<Vec<AuditRecord>> {
        self.rendered(after, limit.min(crate::MAX_AUDIT_PAGE), None)
    }

    pub(crate) fn outcomes(&self, exp: &str) -> Result<OutcomeIter> {
        let st = views::state(self.kv(), exp)?;
        let through = self.applied()?;
        let out: Vec<Result<Outcome>> = self
            .log
            .read(0, through)?
            .filter_map(|r| match r {
                Ok(s) => views::outcome_of(&st, &s),
                Err(e) => Some(Err(e)),
            })
            .collect();
        Ok(Box::new(out.into_iter()))
    }

    pub(crate) fn verify(&self) -> Result<VerifyReport> {
        let head = views::mark(self.kv())?;
        verify_records(self.log.read(0, u64::MAX)?, Some(&head))
    }
}

/// Walks a log from its first record and names the first record that does not read, is out
/// of sequence, or does not match its hash (which also catches a broken link). Nothing the
/// live views hold is trusted: the experiment keys and names each record is rendered with are
/// followed from the log's own creation and spec records. With `head`, the log must also
/// reach the views' mark and end at its hash.
pub(crate) fn verify_records(
    records: impl Iterator<Item = Result<Sealed>>,
    head: Option<&Mark>,
) -> Result<VerifyReport> {
    let mut exps: Vec<(String, Vec<String>)> = Vec::new();
    let mut expected = 1u64;
    let mut prev = log::GENESIS;
    let bad = |seq: u64, reason: String| VerifyReport {
        ok: false,
        records: seq - 1,
        first_bad: Some(seq),
        reason: Some(reason),
    };
    for record in records {
        let r = match record {
            Ok(r) => r,
            Err(StoreError::Corrupt { key, reason, .. }) => {
                return Ok(bad(
                    expected,
                    format!("record {expected} cannot be read ({key}): {reason}"),
                ))
            }
            Err(e) => return Err(e),
        };
        let seq = r.entry.seq;
        if seq != expected {
            let reason = if seq > expected {
                format!("record {expected} is missing (record {seq} is stored in its place)")
            } else {
                format!("record {seq} appears out of order")
            };
            return Ok(bad(expected, reason));
        }
        let (ts, body) = (r.entry.ts, &r.entry.body);
        let rendered = follow(&mut exps, body).and_then(|(exp, names)| {
            let payload = body.render(&exp, &names, ts)?;
            Ok(log::hash_record(
                &prev,
                seq,
                body.kind(),
                &exp,
                &payload,
                ts,
            ))
        });
        if rendered.ok() != Some(r.hash) {
            return Ok(bad(
                expected,
                format!("record {expected} does not match its hash (its contents were changed)"),
            ));
        }
        prev = r.hash;
        expected += 1;
    }
    let records = expected - 1;
    if let Some(h) = head {
        if h.seq > records {
            return Ok(bad(
                expected,
                format!(
                    "the log ends at record {records} but its head is record {}",
                    h.seq
                ),
            ));
        }
        if h.seq == records && h.hash != prev {
            return Ok(bad(
                records.max(1),
                format!("the head (record {}) does not match the last record", h.seq),
            ));
        }
    }
    Ok(VerifyReport {
        ok: true,
        records,
        first_bad: None,
        reason: None,
    })
}

/// Follows a record's effect on the experiments' keys and names (by number, in order of
/// creation), and answers the key and names it is rendered with.
fn follow(exps: &mut Vec<(String, Vec<String>)>, body: &Body) -> Result<(String, Vec<String>)> {
    let spec = |version: &str| {
        serde_json::from_str::<liftlab_domain::ExperimentVersion>(version)
            .map(|v| v.spec)
            .map_err(|e| StoreError::Internal(e.to_string()))
    };
    let id = match body {
        Body::Created { key, version } => {
            let mut names = Vec::new();
            crate::body::extend_names(&mut names, &spec(version)?);
            exps.push((key.clone(), names));
            exps.len() - 1
        }
        _ => usize::try_from(body.exp().unwrap_or(u32::MAX)).unwrap_or(usize::MAX),
    };
    let exp = exps
        .get_mut(id)
        .ok_or_else(|| StoreError::Internal("an unknown experiment".to_string()))?;
    if let Body::SpecChanged { version, .. } = body {
        crate::body::extend_names(&mut exp.1, &spec(version)?);
    }
    Ok(exp.clone())
}

/// The answers of a group commit, one per operation, or the failure of the whole batch.
pub(crate) type Answers = Result<Vec<Result<Answer>>>;

/// Splits the answers of a group commit back into their jobs.
pub(crate) fn split(
    answers: Result<Vec<Result<Answer>>>,
    sizes: &[usize],
) -> Vec<Result<Vec<Result<Answer>>>> {
    match answers {
        Ok(all) => {
            let mut all = all.into_iter();
            sizes
                .iter()
                .map(|n| Ok(all.by_ref().take(*n).collect()))
                .collect()
        }
        Err(e) => sizes.iter().map(|_| Err(e.for_batch())).collect(),
    }
}

/// Unwraps the one answer of a one-operation job.
pub(crate) fn one(answers: Result<Vec<Result<Answer>>>) -> Result<Answer> {
    answers?
        .into_iter()
        .next()
        .unwrap_or_else(|| Err(StoreError::Internal("no answer".to_string())))
}

macro_rules! answer_as {
    ($name:ident, $variant:ident, $ty:ty) => {
        pub(crate) fn $name(a: Result<Answer>) -> Result<$ty> {
            match a? {
                Answer::$variant(x) => Ok(x),
                _ => Err(StoreError::Internal(
                    "an answer of the wrong kind".to_string(),
                )),
            }
        }
    };
}
pub(crate) fn as_version(a: Result<Answer>) -> Result<liftlab_domain::ExperimentVersion> {
    match a? {
        Answer::Version(v) => Ok(*v),
        _ => Err(StoreError::Internal(
            "an answer of the wrong kind".to_string(),
        )),
    }
}
answer_as!(as_epoch, Epoch, crate::Epoch);
answer_as!(as_assignment, Assignment, liftlab_domain::Assignment);
answer_as!(as_recorded, Recorded, crate::Recorded);
