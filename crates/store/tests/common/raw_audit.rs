//! The audit chain as stored, for the tests that tamper with it (this crate's and the black-box ones in `tests/tamper.rs`).
//!
//! Blocks of records, each under the big-endian sequence number of its first record, holding a
//! tag byte (2, binary) and the postcard list of its records, as `liftlab-store` documents in
//! `audit` and `codec`.

#![allow(dead_code)]

/// The stored layout of an audit record.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct RawAudit {
    pub seq: u64,
    pub prev_hash: [u8; 32],
    pub kind: liftlab_store::AuditKind,
    pub experiment: String,
    pub payload: String,
    pub ts: i64,
    pub hash: [u8; 32],
}

/// Decodes a stored binary value (tag 2, postcard).
pub fn binary<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> T {
    assert_eq!(bytes[0], 2, "the binary tag");
    postcard::from_bytes(&bytes[1..]).expect("a postcard body")
}

/// Encodes a value as stored binary (tag 2, postcard).
pub fn binary_encoded<T: serde::Serialize>(v: &T) -> Vec<u8> {
    let mut out = vec![2u8];
    out.extend(postcard::to_allocvec(v).expect("serializes"));
    out
}

/// The stored blocks in key order: each block's first sequence number and its bytes.
pub fn blocks(audit: &sled::Tree) -> Vec<(u64, Vec<u8>)> {
    audit
        .iter()
        .map(|entry| {
            let (k, v) = entry.expect("reads");
            let first = u64::from_be_bytes(k.as_ref().try_into().expect("an 8-byte key"));
            (first, v.to_vec())
        })
        .collect()
}

/// The records of a stored block.
pub fn records(block: &[u8]) -> Vec<RawAudit> {
    binary(block)
}

/// The first sequence number of the block holding record `seq`, and the record's index in it.
pub fn locate(audit: &sled::Tree, seq: u64) -> (u64, usize) {
    let (first, bytes) = blocks(audit)
        .into_iter()
        .rev()
        .find(|(first, _)| *first <= seq)
        .expect("a block at or before the record");
    let i = usize::try_from(seq - first).expect("small");
    assert_eq!(records(&bytes)[i].seq, seq, "the block holds the record");
    (first, i)
}

/// Applies `change` to the records of the block holding record `seq` (and its index there);
/// a block left empty is removed.
pub fn edit_block(audit: &sled::Tree, seq: u64, change: impl FnOnce(&mut Vec<RawAudit>, usize)) {
    let (first, i) = locate(audit, seq);
    let key = first.to_be_bytes();
    let mut list = records(&audit.get(key).expect("reads").expect("exists"));
    change(&mut list, i);
    if list.is_empty() {
        audit.remove(key).expect("removes");
    } else {
        audit.insert(key, binary_encoded(&list)).expect("writes");
    }
}
