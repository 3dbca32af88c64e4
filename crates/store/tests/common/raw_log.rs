//! The log as stored, for the tests that tamper with it (this crate's and the black-box ones in `tests/tamper.rs`).
//!
//! Segments in `log/` of the data directory, named by their first sequence number; each
//! record framed as `u32 LE length | u32 LE crc32 | payload`, the payload being a format tag
//! byte (1), the postcard encoding of `{ seq, ts, body }` and the 32-byte chain hash, as
//! `liftlab-store` documents in its `log` module.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// One record's frame.
#[derive(Clone, Debug)]
pub struct RawFrame {
    /// Its payload (without length and CRC).
    pub payload: Vec<u8>,
}

impl RawFrame {
    /// The record's sequence number (the first field after the format tag, a varint).
    pub fn seq(&self) -> u64 {
        let mut seq = 0u64;
        for (i, b) in self.payload[1..].iter().enumerate() {
            seq |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                break;
            }
        }
        seq
    }

    /// The frame's bytes with a CRC that matches its payload.
    pub fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(
            &u32::try_from(self.payload.len())
                .expect("short")
                .to_le_bytes(),
        );
        out.extend_from_slice(&crc32fast::hash(&self.payload).to_le_bytes());
        out.extend_from_slice(&self.payload);
        out
    }
}

/// The log's segment files, in order.
pub fn segments(data: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(data.join("log"))
        .expect("the log directory")
        .map(|e| e.expect("an entry").path())
        .collect();
    files.sort();
    files
}

/// The frames of one segment.
pub fn frames(segment: &Path) -> Vec<RawFrame> {
    let bytes = std::fs::read(segment).expect("the segment reads");
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 8 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().expect("4 bytes")) as usize;
        out.push(RawFrame {
            payload: bytes[pos + 8..pos + 8 + len].to_vec(),
        });
        pos += 8 + len;
    }
    out
}

/// Rewrites the (only) segment of a data directory's log after `edit` changed its frames;
/// every CRC is made to match again.
pub fn edit_log(data: &Path, edit: impl FnOnce(&mut Vec<RawFrame>)) {
    let segs = segments(data);
    assert_eq!(segs.len(), 1, "one segment");
    let mut list = frames(&segs[0]);
    edit(&mut list);
    let bytes: Vec<u8> = list.iter().flat_map(RawFrame::bytes).collect();
    std::fs::write(&segs[0], bytes).expect("the segment writes");
}

/// The byte offset of record `seq`'s frame in the (only) segment, and the frame.
pub fn locate(data: &Path, seq: u64) -> (usize, RawFrame) {
    let segs = segments(data);
    let mut offset = 0;
    for f in frames(&segs[0]) {
        if f.seq() == seq {
            return (offset, f);
        }
        offset += 8 + f.payload.len();
    }
    panic!("record {seq} is in the log");
}

/// Flips one bit in the middle of record `seq`'s payload, leaving its CRC alone.
pub fn flip_bit(data: &Path, seq: u64) {
    let segs = segments(data);
    let (offset, frame) = locate(data, seq);
    let mut bytes = std::fs::read(&segs[0]).expect("reads");
    bytes[offset + 8 + frame.payload.len() / 2] ^= 0x10;
    std::fs::write(&segs[0], bytes).expect("writes");
}

/// Replaces the first occurrence of `from` in record `seq`'s payload by `to` (same length)
/// and fixes its CRC up, as a careful forger would.
pub fn forge(data: &Path, seq: u64, from: &[u8], to: &[u8]) {
    assert_eq!(from.len(), to.len(), "a same-length edit");
    edit_log(data, |list| {
        let f = list
            .iter_mut()
            .find(|f| f.seq() == seq)
            .expect("the record");
        let at = f
            .payload
            .windows(from.len())
            .position(|w| w == from)
            .expect("the text to replace");
        f.payload[at..at + to.len()].copy_from_slice(to);
    });
}
