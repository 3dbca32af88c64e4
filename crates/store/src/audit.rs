//! The audit chain: appending hash-linked records inside an operation, and verifying the whole chain.
//!
//! The records are stored in blocks: every group commit writes the records its batch appended
//! as one list under the sequence number of the first (`audit` table, big-endian `u64` keys),
//! so the chain costs one sled insert per batch rather than one per record. A record is found
//! through the block whose first sequence number is the greatest at or before its own.

use liftlab_domain::Millis;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::codec::{decode, trailing_u64, Key};
use crate::error::{Result, StoreError};
use crate::kv::{Scan, Tx};
use crate::records::{AuditHead, AuditKind, StoredAudit, VerifyReport};
use crate::tree::TreeId;

/// The `prev_hash` of the first record.
pub(crate) const GENESIS: [u8; 32] = [0; 32];

/// The meta key of the chain's head.
pub(crate) const HEAD_KEY: &[u8] = b"audit_head";

/// The key of the block whose first record is `first`.
pub(crate) fn block_key(first: u64) -> Vec<u8> {
    Key::new().u64(first).into_bytes()
}

/// The block of records that starts at `first`, keyed by its sequence number.
pub(crate) type Block = Vec<StoredAudit>;

/// Reads audit records by sequence number, decoding each block once for consecutive reads.
pub(crate) struct Reader<'a> {
    src: &'a dyn Scan,
    block: Option<(u64, Block)>,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(src: &'a dyn Scan) -> Self {
        Reader { src, block: None }
    }

    /// Record `seq`, if the chain has it.
    pub(crate) fn record(&mut self, seq: u64) -> Result<Option<&StoredAudit>> {
        let cached = matches!(&self.block, Some((first, b))
            if *first <= seq && seq - *first < b.len() as u64);
        if !cached {
            let Some(key) = self
                .src
                .last_at_or_before(TreeId::Audit, &[], &block_key(seq))?
            else {
                return Ok(None);
            };
            let first = trailing_u64(TreeId::Audit, &key)?;
            let block: Option<Block> =
                crate::kv::get_as(self.src.as_source(), TreeId::Audit, &key)?;
            self.block = block.map(|b| (first, b));
        }
        Ok(self.block.as_ref().and_then(|(first, b)| {
            let i = usize::try_from(seq.checked_sub(*first)?).ok()?;
            b.get(i).filter(|r| r.seq == seq)
        }))
    }
}

/// The hash of a record with these fields, linked to `prev_hash`.
pub(crate) fn hash_record(
    prev_hash: &[u8; 32],
    seq: u64,
    kind: AuditKind,
    experiment: &str,
    payload: &str,
    ts: Millis,
) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prev_hash);
    h.update(seq.to_be_bytes());
    for part in [kind.as_str(), experiment, payload] {
        let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
        h.update(len.to_be_bytes());
        h.update(part.as_bytes());
    }
    h.update(ts.to_be_bytes());
    h.finalize().into()
}

/// Appends a record about `experiment` to the chain, inside the operation `tx`.
pub(crate) fn append<P: Serialize + ?Sized>(
    tx: &mut Tx<'_>,
    kind: AuditKind,
    experiment: &str,
    payload: &P,
    ts: Millis,
) -> Result<u64> {
    let head: Option<AuditHead> = tx.get_as(TreeId::Meta, HEAD_KEY)?;
    let (seq, prev_hash) = match head {
        Some(h) => (h.seq + 1, h.hash),
        None => (1, GENESIS),
    };
    // A record that cannot be written as it is fails the whole operation, never a blank.
    let payload = serde_json::to_string(payload).map_err(|e| {
        StoreError::Internal(format!(
            "a {} audit record cannot be written: {e}",
            kind.as_str()
        ))
    })?;
    let hash = hash_record(&prev_hash, seq, kind, experiment, &payload, ts);
    let record = StoredAudit {
        seq,
        prev_hash,
        kind,
        experiment: experiment.to_string(),
        payload,
        ts,
        hash,
    };
    let block = tx.chunk(TreeId::Audit, "", || block_key(seq))?;
    tx.append(TreeId::Audit, block, record);
    let chunk = tx.chunk_key(TreeId::AuditIndex, experiment, seq)?;
    tx.append(TreeId::AuditIndex, chunk, seq);
    tx.put(TreeId::Meta, HEAD_KEY.to_vec(), AuditHead { seq, hash });
    Ok(seq)
}

/// Walks the chain from the first record and names the first one that does not verify.
pub(crate) fn verify(src: &dyn Scan) -> Result<VerifyReport> {
    let mut expected = 1u64;
    let mut prev_hash = GENESIS;
    let bad = |records: u64, seq: u64, reason: String| VerifyReport {
        ok: false,
        records,
        first_bad: Some(seq),
        reason: Some(reason),
    };
    for entry in src.scan_prefix(TreeId::Audit, &[]) {
        let (key, value) = entry?;
        let verified = expected - 1;
        if key.len() != 8 {
            return Ok(bad(
                verified,
                expected,
                "a block of records has a malformed key".into(),
            ));
        }
        let first = trailing_u64(TreeId::Audit, &key)?;
        if first != expected {
            let reason = if first > expected {
                format!(
                    "record {expected} is missing (the next stored block starts at record {first})"
                )
            } else {
                format!("record {first} appears out of order")
            };
            return Ok(bad(verified, expected, reason));
        }
        let block: Block = match decode(TreeId::Audit, &key, &value) {
            Ok(b) => b,
            Err(e) => {
                return Ok(bad(
                    verified,
                    first,
                    format!("the block of records from {first} cannot be read: {e}"),
                ))
            }
        };
        if block.is_empty() {
            return Ok(bad(
                verified,
                first,
                format!("the block at record {first} holds no records"),
            ));
        }
        for record in block {
            let at = expected;
            let verified = expected - 1;
            if record.seq != at {
                return Ok(bad(
                    verified,
                    at,
                    format!(
                        "record {at} is missing or out of order (record {} is stored in its place)",
                        record.seq
                    ),
                ));
            }
            if record.prev_hash != prev_hash {
                return Ok(bad(
                    verified,
                    at,
                    format!("record {at} does not link to the hash of record {}", at - 1),
                ));
            }
            let recomputed = hash_record(
                &record.prev_hash,
                record.seq,
                record.kind,
                &record.experiment,
                &record.payload,
                record.ts,
            );
            if recomputed != record.hash {
                return Ok(bad(
                    verified,
                    at,
                    format!("record {at} does not match its hash (its contents were changed)"),
                ));
            }
            prev_hash = record.hash;
            expected += 1;
        }
    }
    let records = expected - 1;
    let head: Option<AuditHead> = match src.get(TreeId::Meta, HEAD_KEY)? {
        Some(bytes) => match decode(TreeId::Meta, HEAD_KEY, &bytes) {
            Ok(h) => Some(h),
            Err(e) => {
                return Ok(bad(
                    records,
                    expected,
                    format!("the chain head cannot be read: {e}"),
                ))
            }
        },
        None => None,
    };
    match head {
        None if records == 0 => {}
        None => {
            return Ok(bad(
                records,
                records,
                "the chain has records but no stored head".into(),
            ))
        }
        Some(h) if h.seq == records && h.hash == prev_hash => {}
        Some(h) if h.seq > records => {
            return Ok(bad(
                records,
                expected,
                format!(
                    "the chain ends at record {records} but its head is record {}",
                    h.seq
                ),
            ))
        }
        Some(h) => {
            return Ok(bad(
                records,
                h.seq.max(1),
                format!(
                    "the stored head (record {}) does not match the last record",
                    h.seq
                ),
            ))
        }
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
    fn the_hash_covers_every_field() {
        let base = hash_record(&GENESIS, 1, AuditKind::Assigned, "exp", "{}", 5);
        let variants = [
            hash_record(&[1; 32], 1, AuditKind::Assigned, "exp", "{}", 5),
            hash_record(&GENESIS, 2, AuditKind::Assigned, "exp", "{}", 5),
            hash_record(&GENESIS, 1, AuditKind::OutcomeRecorded, "exp", "{}", 5),
            hash_record(&GENESIS, 1, AuditKind::Assigned, "exq", "{}", 5),
            hash_record(&GENESIS, 1, AuditKind::Assigned, "exp", "[]", 5),
            hash_record(&GENESIS, 1, AuditKind::Assigned, "exp", "{}", 6),
            // Moving bytes between fields changes the hash: lengths are part of it.
            hash_record(&GENESIS, 1, AuditKind::Assigned, "exp{", "}", 5),
        ];
        for v in variants {
            assert_ne!(v, base);
        }
    }

    #[test]
    fn the_hash_is_sha256_of_the_documented_layout() {
        let mut bytes = vec![0u8; 32];
        bytes.extend_from_slice(&7u64.to_be_bytes());
        for part in ["assigned", "e", "{}"] {
            bytes.extend_from_slice(&u32::try_from(part.len()).expect("short").to_be_bytes());
            bytes.extend_from_slice(part.as_bytes());
        }
        bytes.extend_from_slice(&(-3i64).to_be_bytes());
        let expected: [u8; 32] = Sha256::digest(&bytes).into();
        assert_eq!(
            hash_record(&GENESIS, 7, AuditKind::Assigned, "e", "{}", -3),
            expected
        );
    }
}
