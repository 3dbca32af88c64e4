//! The audit chain on PostgreSQL: the record hash (the layout `AuditRecord` documents) and `verify`.

use liftlab_domain::Millis;
use liftlab_store::{AuditKind, AuditRecord, StoreError, VerifyReport};
use postgres::Client;

use crate::error::io;

/// Records read per query while walking the chain.
const PAGE: i64 = 10_000;

/// The chain hash is the sled store's own ([`liftlab_store::hash_record`]), so a chain copied
/// from sled verifies here and the other way round.
pub(crate) use liftlab_store::{hash_record, GENESIS};

/// Every kind, to read stored names back.
const KINDS: [AuditKind; 8] = [
    AuditKind::ExperimentCreated,
    AuditKind::SpecChanged,
    AuditKind::StatusChanged,
    AuditKind::Rebaselined,
    AuditKind::PeriodOpened,
    AuditKind::Assigned,
    AuditKind::OutcomeRecorded,
    AuditKind::TaskBound,
];

pub(crate) fn kind_of(name: &str) -> Option<AuditKind> {
    KINDS.into_iter().find(|k| k.as_str() == name)
}

/// One stored record, with raw hashes; `None` fields did not decode.
pub(crate) struct Stored {
    pub seq: u64,
    pub prev_hash: Option<[u8; 32]>,
    pub kind: Option<AuditKind>,
    pub kind_name: String,
    pub experiment: String,
    pub payload: String,
    pub ts: Millis,
    pub hash: Option<[u8; 32]>,
}

impl Stored {
    pub(crate) fn from_row(row: &postgres::Row) -> Stored {
        let bytes32 = |v: Vec<u8>| <[u8; 32]>::try_from(v.as_slice()).ok();
        let kind_name: String = row.get("kind");
        Stored {
            seq: u64::try_from(row.get::<_, i64>("seq")).unwrap_or(0),
            prev_hash: bytes32(row.get("prev_hash")),
            kind: kind_of(&kind_name),
            kind_name,
            experiment: row.get("experiment"),
            payload: row.get("payload"),
            ts: row.get("ts"),
            hash: bytes32(row.get("hash")),
        }
    }

    pub(crate) fn to_public(&self) -> Result<AuditRecord, StoreError> {
        let bad = || crate::error::corrupt("audit", &self.seq.to_string(), "malformed record");
        Ok(AuditRecord {
            seq: self.seq,
            prev_hash: hex::encode(self.prev_hash.ok_or_else(bad)?),
            kind: self.kind.ok_or_else(bad)?,
            experiment: self.experiment.clone(),
            payload: self.payload.clone(),
            ts: self.ts,
            hash: hex::encode(self.hash.ok_or_else(bad)?),
        })
    }
}

pub(crate) const COLUMNS: &str = "experiment, seq, prev_hash, kind, payload, ts, hash";

/// Walks the whole chain in `seq` order and names the first record that does not verify,
/// then checks that the chain ends at the head row.
pub(crate) fn verify(client: &mut Client) -> Result<VerifyReport, StoreError> {
    let mut expected = 1u64;
    let mut prev_hash = GENESIS;
    let bad = |records: u64, seq: u64, reason: String| VerifyReport {
        ok: false,
        records,
        first_bad: Some(seq),
        reason: Some(reason),
    };
    // One snapshot for the walk and the head, so writers running meanwhile do not matter.
    let mut tx = client
        .build_transaction()
        .isolation_level(postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .map_err(|e| io("starting the audit walk", e))?;
    let mut after = 0i64;
    loop {
        let rows = tx
            .query(
                &format!("SELECT {COLUMNS} FROM audit WHERE seq > $1 ORDER BY seq LIMIT $2"),
                &[&after, &PAGE],
            )
            .map_err(|e| io("reading the audit chain", e))?;
        if rows.is_empty() {
            break;
        }
        for row in &rows {
            let r = Stored::from_row(row);
            let at = expected;
            let verified = expected - 1;
            if r.seq != at {
                let reason = if r.seq > at {
                    format!(
                        "record {at} is missing (the next stored record is {})",
                        r.seq
                    )
                } else {
                    format!("record {} appears twice", r.seq)
                };
                return Ok(bad(verified, at, reason));
            }
            let (Some(prev), Some(hash), Some(kind)) = (r.prev_hash, r.hash, r.kind) else {
                return Ok(bad(
                    verified,
                    at,
                    format!("record {at} cannot be read (kind {:?})", r.kind_name),
                ));
            };
            if prev != prev_hash {
                return Ok(bad(
                    verified,
                    at,
                    format!("record {at} does not link to the hash of record {}", at - 1),
                ));
            }
            if hash_record(&prev, r.seq, kind, &r.experiment, &r.payload, r.ts) != hash {
                return Ok(bad(
                    verified,
                    at,
                    format!("record {at} does not match its hash (its contents were changed)"),
                ));
            }
            prev_hash = hash;
            expected += 1;
        }
        after = rows.last().map_or(after, |r| r.get("seq"));
    }
    let records = expected - 1;
    let head = tx
        .query_opt("SELECT seq, hash FROM audit_head WHERE id = 1", &[])
        .map_err(|e| io("reading the audit head", e))?;
    let Some(head) = head else {
        return Ok(bad(
            records,
            expected,
            "the chain head row is missing".into(),
        ));
    };
    let head_seq = u64::try_from(head.get::<_, i64>(0)).unwrap_or(0);
    let head_hash: Vec<u8> = head.get(1);
    if head_seq > records {
        return Ok(bad(
            records,
            expected,
            format!("the chain ends at record {records} but its head is record {head_seq}"),
        ));
    }
    if head_seq != records || head_hash.as_slice() != prev_hash.as_slice() {
        return Ok(bad(
            records,
            head_seq.max(1),
            format!("the stored head (record {head_seq}) does not match the last record"),
        ));
    }
    Ok(VerifyReport {
        ok: true,
        records,
        first_bad: None,
        reason: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_reads_back_by_name() {
        for k in KINDS {
            assert_eq!(kind_of(k.as_str()), Some(k));
        }
        assert_eq!(kind_of("nope"), None);
    }
}
