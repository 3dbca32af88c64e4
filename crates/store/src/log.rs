//! The log: the store's only source of truth and its audit chain, as CRC-framed, hash-chained segment files.
//!
//! A record is framed as `u32 LE length | u32 LE crc32 | payload`, where the payload is the
//! postcard encoding of its [`Entry`] (`seq`, `ts`, body) followed by its 32-byte chain hash,
//! SHA-256(previous hash || encoded entry); the first record links to 32 zero bytes. The
//! files live in `log/` in the data directory, each named by the sequence number of its first
//! record, and a new one is started once the current one passes [`SEGMENT_BYTES`].

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::body::Body;
use crate::error::{Result, StoreError};
use crate::records::AuditKind;

/// The `prev_hash` of the first record.
pub const GENESIS: [u8; 32] = [0; 32];

/// A segment is closed and the next one started once it holds this many bytes.
pub(crate) const SEGMENT_BYTES: u64 = 64 << 20;

/// The largest frame payload accepted when reading (a spec is the largest record).
const MAX_FRAME: u32 = 16 << 20;

/// One fact, as it is encoded and hashed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Entry {
    pub seq: u64,
    pub ts: i64,
    pub body: Body,
}

/// An entry with its encoding and its chain hash.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Sealed {
    pub entry: Entry,
    pub bytes: Vec<u8>,
    pub prev_hash: [u8; 32],
    pub hash: [u8; 32],
}

impl Sealed {
    /// Encodes `entry`, linked to `prev_hash` by `hash` (see [`hash_record`]).
    pub(crate) fn seal(entry: Entry, prev_hash: [u8; 32], hash: [u8; 32]) -> Result<Sealed> {
        let mut bytes = vec![crate::body::FORMAT];
        bytes = postcard::to_extend(&entry, bytes).map_err(|e| {
            StoreError::Internal(format!("record {} cannot be encoded: {e}", entry.seq))
        })?;
        Ok(Sealed {
            entry,
            bytes,
            prev_hash,
            hash,
        })
    }

    /// The record's frame: length, CRC and payload (entry bytes, then hash).
    pub(crate) fn frame(&self, out: &mut Vec<u8>) {
        let len = self.bytes.len() + 32;
        let mut crc = crc32fast::Hasher::new();
        crc.update(&self.bytes);
        crc.update(&self.hash);
        out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_le_bytes());
        out.extend_from_slice(&crc.finalize().to_le_bytes());
        out.extend_from_slice(&self.bytes);
        out.extend_from_slice(&self.hash);
    }
}

/// The chain hash of a record, over what auditors see of it: SHA-256 of the previous hash's
/// 32 bytes, `seq` (u64 BE), `kind`, `experiment` and `payload` (the record rendered as JSON;
/// each as a u32 BE length and UTF-8 bytes) and `ts` (i64 BE). So a JSON Lines export of the
/// log re-verifies from its lines alone, and the hash does not depend on the compact encoding.
pub fn hash_record(
    prev_hash: &[u8; 32],
    seq: u64,
    kind: AuditKind,
    experiment: &str,
    payload: &str,
    ts: i64,
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

/// Decodes a frame payload into its entry and stored hash.
pub(crate) fn decode_payload(payload: &[u8]) -> std::result::Result<(Entry, [u8; 32]), String> {
    let split = payload
        .len()
        .checked_sub(32)
        .ok_or_else(|| "the record is shorter than its hash".to_string())?;
    let (bytes, hash) = payload.split_at(split);
    let bytes = match bytes.split_first() {
        Some((&crate::body::FORMAT, rest)) => rest,
        Some((tag, _)) => return Err(format!("unknown record format {tag}")),
        None => return Err("an empty record".to_string()),
    };
    let (entry, rest) =
        postcard::take_from_bytes::<Entry>(bytes).map_err(|e| format!("undecodable: {e}"))?;
    if !rest.is_empty() {
        return Err(format!("{} stray bytes after the record", rest.len()));
    }
    let mut h = [0u8; 32];
    h.copy_from_slice(hash);
    Ok((entry, h))
}

/// Where the views stand in the log: applied through `seq`, which ends at `offset` of the
/// segment starting at `segment`, with chain head `hash`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Mark {
    pub seq: u64,
    pub segment: u64,
    pub offset: u64,
    pub hash: [u8; 32],
}

/// What reading one frame at an offset found.
#[derive(Debug)]
pub(crate) enum Frame {
    /// A frame whose CRC matches: its payload and total length.
    Good(Vec<u8>, u64),
    /// The bytes end before the frame does (a torn write).
    Short,
    /// A CRC mismatch or an impossible length; the frame claims `len` bytes in all.
    Bad(String, Option<u64>),
}

/// Reads the frame at the start of `buf`.
pub(crate) fn read_frame(buf: &[u8]) -> Frame {
    if buf.len() < 8 {
        return Frame::Short;
    }
    let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]);
    let crc = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
    if !(33..=MAX_FRAME).contains(&len) {
        return Frame::Bad(format!("impossible record length {len}"), None);
    }
    let total = 8 + len as usize;
    if buf.len() < total {
        return Frame::Short;
    }
    let payload = &buf[8..total];
    if crc32fast::hash(payload) != crc {
        return Frame::Bad("its CRC does not match".to_string(), Some(total as u64));
    }
    Frame::Good(payload.to_vec(), total as u64)
}

/// The segment files of a log directory, by first sequence number.
pub(crate) fn segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| io("listing the log", e))?;
    for entry in entries {
        let entry = entry.map_err(|e| io("listing the log", e))?;
        let name = entry.file_name();
        let Some(first) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".log"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        out.push((first, entry.path()));
    }
    out.sort();
    Ok(out)
}

pub(crate) fn segment_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("{first:020}.log"))
}

pub(crate) fn io(context: &'static str, e: std::io::Error) -> StoreError {
    StoreError::Io {
        context,
        source: Arc::new(e),
    }
}

fn corrupt(path: &Path, offset: u64, reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        tree: "log",
        key: format!("{} offset {offset}", path.display()),
        reason: reason.into(),
    }
}

/// A segment's whole content.
fn read_all(path: &Path) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut buf))
        .map_err(|e| io("reading the log", e))?;
    Ok(buf)
}

/// Reads every record after `after` in order, up to `through`, checking CRCs, sequence
/// numbers and hashes only as far as the caller asks (see [`Walk`]).
pub(crate) struct Reader {
    segments: Vec<(u64, PathBuf)>,
    next_segment: usize,
    buf: Vec<u8>,
    pos: usize,
    path: PathBuf,
    after: u64,
    through: u64,
    /// Set after an error: a damaged log is not read past it.
    failed: bool,
}

impl Reader {
    /// Records with `after < seq <= through` of the log in `dir`.
    pub(crate) fn open(dir: &Path, after: u64, through: u64) -> Result<Reader> {
        let segments = segments(dir)?;
        // The segment that holds `after + 1` starts at or before it.
        let start = segments
            .iter()
            .rposition(|(first, _)| *first <= after.saturating_add(1))
            .unwrap_or(0);
        Ok(Reader {
            segments,
            next_segment: start,
            buf: Vec::new(),
            pos: 0,
            path: PathBuf::new(),
            after,
            through,
            failed: false,
        })
    }

    fn fail(&mut self, e: StoreError) -> Option<Result<Sealed>> {
        self.failed = true;
        Some(Err(e))
    }
}

impl Iterator for Reader {
    type Item = Result<Sealed>;

    fn next(&mut self) -> Option<Result<Sealed>> {
        if self.failed {
            return None;
        }
        loop {
            if self.pos >= self.buf.len() {
                let (_, path) = self.segments.get(self.next_segment)?;
                self.path = path.clone();
                self.next_segment += 1;
                self.pos = 0;
                match read_all(path) {
                    Ok(b) => self.buf = b,
                    Err(e) => return self.fail(e),
                }
                continue;
            }
            let at = self.pos as u64;
            let last = self.next_segment >= self.segments.len();
            let rest = &self.buf[self.pos..];
            let (payload, len) = match read_frame(rest) {
                Frame::Good(p, len) => (p, len),
                // Past the durable end a batch may be half written: stop there.
                Frame::Short if last => return None,
                Frame::Bad(_, _) if last && !good_frame_follows(rest, &read_frame(rest)) => {
                    return None
                }
                Frame::Short => {
                    let e = corrupt(&self.path, at, "the record is cut short");
                    return self.fail(e);
                }
                Frame::Bad(reason, _) => {
                    let e = corrupt(&self.path, at, reason);
                    return self.fail(e);
                }
            };
            self.pos += len as usize;
            let (entry, hash) = match decode_payload(&payload) {
                Ok(x) => x,
                Err(reason) => {
                    let e = corrupt(&self.path, at, reason);
                    return self.fail(e);
                }
            };
            if entry.seq <= self.after {
                continue;
            }
            if entry.seq > self.through {
                return None;
            }
            let bytes = payload[..payload.len() - 32].to_vec();
            return Some(Ok(Sealed {
                entry,
                bytes,
                prev_hash: GENESIS,
                hash,
            }));
        }
    }
}

/// The log's append side: the open segment and the chain head.
pub(crate) struct Writer {
    dir: PathBuf,
    file: File,
    segment: u64,
    len: u64,
    /// The size at which a new segment is started.
    pub roll_at: u64,
}

impl Writer {
    /// Opens the log of `dir` for appending after `head`, first reading the records the
    /// views have not applied yet: a torn last frame is cut off; anything else that does
    /// not read, or is out of sequence, is `Corrupt`. Returns the records after the mark,
    /// each with the mark after it, for the caller to fold (which checks their hashes).
    pub(crate) fn open(dir: &Path, mark: &Mark) -> Result<(Writer, Vec<(Sealed, Mark)>)> {
        std::fs::create_dir_all(dir).map_err(|e| io("creating the log directory", e))?;
        let segs = segments(dir)?;
        if segs.is_empty() {
            if mark.seq > 0 {
                return Err(corrupt(
                    dir,
                    0,
                    format!(
                        "the log is missing, but the views were applied through record {}: \
                         acknowledged data was lost (restore from a backup)",
                        mark.seq
                    ),
                ));
            }
            let path = segment_path(dir, 1);
            let file = create(&path)?;
            sync_dir(dir)?;
            return Ok((
                Writer {
                    dir: dir.to_path_buf(),
                    file,
                    segment: 1,
                    len: 0,
                    roll_at: SEGMENT_BYTES,
                },
                Vec::new(),
            ));
        }
        let start = match segs.iter().position(|(first, _)| *first == mark.segment) {
            Some(i) => i,
            None if mark.seq == 0 => 0,
            None => {
                return Err(corrupt(
                    &segment_path(dir, mark.segment),
                    0,
                    format!(
                        "the segment holding record {} is missing: acknowledged data was lost \
                         (restore from a backup)",
                        mark.seq
                    ),
                ))
            }
        };
        let mut tail = Vec::new();
        let mut expected = mark.seq + 1;
        let mut prev = mark.hash;
        let last = segs.len() - 1;
        let mut end = 0;
        for (i, (first, path)) in segs.iter().enumerate().skip(start) {
            let buf = read_all(path)?;
            let mut pos = if i == start && *first == mark.segment {
                mark.offset
            } else {
                0
            };
            if pos > buf.len() as u64 {
                return Err(corrupt(
                    path,
                    pos,
                    format!(
                        "the log ends before record {}, which the views already applied: \
                         acknowledged data was lost (restore from a backup)",
                        mark.seq
                    ),
                ));
            }
            while (pos as usize) < buf.len() {
                let rest = &buf[pos as usize..];
                match read_frame(rest) {
                    Frame::Good(payload, len) => {
                        let (entry, hash) =
                            decode_payload(&payload).map_err(|r| corrupt(path, pos, r))?;
                        if entry.seq < expected {
                            pos += len;
                            continue;
                        }
                        if entry.seq != expected {
                            return Err(corrupt(
                                path,
                                pos,
                                format!("record {} found where {expected} belongs", entry.seq),
                            ));
                        }
                        let bytes = payload[..payload.len() - 32].to_vec();
                        pos += len;
                        let at = Mark {
                            seq: entry.seq,
                            segment: *first,
                            offset: pos,
                            hash,
                        };
                        tail.push((
                            Sealed {
                                entry,
                                bytes,
                                prev_hash: prev,
                                hash,
                            },
                            at,
                        ));
                        prev = hash;
                        expected += 1;
                    }
                    other => {
                        let torn = i == last && !good_frame_follows(rest, &other);
                        if !torn {
                            let reason = match other {
                                Frame::Bad(r, _) => r,
                                _ => "the record is cut short".to_string(),
                            };
                            return Err(corrupt(
                                path,
                                pos,
                                format!("{reason}, and records follow it"),
                            ));
                        }
                        tracing::warn!(
                            segment = %path.display(),
                            offset = pos,
                            "cutting off a torn record at the end of the log"
                        );
                        truncate(path, pos)?;
                        break;
                    }
                }
            }
            end = pos;
        }
        let (segment, path) = segs[last].clone();
        if last == start && mark.segment == segment && mark.offset > end {
            return Err(corrupt(
                &path,
                end,
                "the log is shorter than the views' mark",
            ));
        }
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|e| io("opening the log", e))?;
        let len = file.metadata().map_err(|e| io("opening the log", e))?.len();
        Ok((
            Writer {
                dir: dir.to_path_buf(),
                file,
                segment,
                len,
                roll_at: SEGMENT_BYTES,
            },
            tail,
        ))
    }

    /// Appends `records` with one write and one sync; returns the mark after the last.
    pub(crate) fn append(&mut self, records: &[Sealed]) -> Result<Mark> {
        let Some(last) = records.last() else {
            return Err(StoreError::Internal("an empty append".to_string()));
        };
        if self.len >= self.roll_at {
            let first = records[0].entry.seq;
            let path = segment_path(&self.dir, first);
            self.file
                .sync_all()
                .map_err(|e| io("closing a log segment", e))?;
            self.file = create(&path)?;
            sync_dir(&self.dir)?;
            self.segment = first;
            self.len = 0;
        }
        let mut buf = Vec::with_capacity(records.iter().map(|r| r.bytes.len() + 40).sum());
        for r in records {
            r.frame(&mut buf);
        }
        let written = self
            .file
            .write_all(&buf)
            .and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            // Cut off whatever part of the batch reached the file, so that the next batch
            // starts on a frame boundary; the batch is answered with the error.
            let _ = self.file.set_len(self.len);
            return Err(io("appending to the log", e));
        }
        self.len += buf.len() as u64;
        Ok(Mark {
            seq: last.entry.seq,
            segment: self.segment,
            offset: self.len,
            hash: last.hash,
        })
    }
}

/// After a frame that does not read, whether the next one (where its length says) does.
fn good_frame_follows(rest: &[u8], bad: &Frame) -> bool {
    match bad {
        Frame::Bad(_, Some(len)) => {
            let next = *len as usize;
            next < rest.len() && matches!(read_frame(&rest[next..]), Frame::Good(..))
        }
        _ => false,
    }
}

fn create(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| io("creating a log segment", e))
}

fn truncate(path: &Path, len: u64) -> Result<()> {
    let f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| io("cutting off a torn record", e))?;
    f.set_len(len)
        .and_then(|()| f.sync_all())
        .map_err(|e| io("cutting off a torn record", e))?;
    let mut f = f;
    f.seek(SeekFrom::End(0))
        .map_err(|e| io("cutting off a torn record", e))?;
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io("syncing the log directory", e))
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn frames_read_back_and_damage_is_told_apart_from_a_torn_end() {
        let entry = Entry {
            seq: 1,
            ts: 5,
            body: crate::body::Body::TaskBound {
                exp: 0,
                task: "t".into(),
                unit: "u".into(),
            },
        };
        let sealed = Sealed::seal(entry.clone(), GENESIS, [7; 32]).expect("encodes");
        let mut buf = Vec::new();
        sealed.frame(&mut buf);
        let Frame::Good(payload, len) = read_frame(&buf) else {
            panic!("a good frame")
        };
        assert_eq!(len as usize, buf.len());
        assert_eq!(decode_payload(&payload).expect("decodes"), (entry, [7; 32]));
        assert!(matches!(read_frame(&buf[..buf.len() - 1]), Frame::Short));
        let mut flipped = buf.clone();
        flipped[10] ^= 1;
        assert!(matches!(read_frame(&flipped), Frame::Bad(..)));
    }
}
