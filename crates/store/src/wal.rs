//! The write-ahead log: each group commit's writes, made durable by one append and one
//! `fdatasync` before sled sees any of them.
//!
//! sled makes writes to several trees atomic only inside a transaction, and every sled
//! transaction seals its in-memory log buffer and hands it to an I/O thread, while holding a
//! lock that every reader of the database then waits on. At thousands of small group commits
//! a second, most of the store's CPU went to those threads, that lock and `db.flush()`. So the
//! store keeps its own log, and sled is the materialised state behind it:
//!
//! 1. The writer appends a batch's encoded writes to the log and syncs it: from here the
//!    batch is durable, and it is acknowledged after step 2.
//! 2. The writer applies the writes to sled with plain inserts (no transaction, no flush), so
//!    sled only ever holds durable writes and a reader never waits for one.
//! 3. When the log passes [`CHECKPOINT_BYTES`] the writer starts a new generation file, and
//!    the checkpointer flushes sled and deletes the older files.
//! 4. At open, every remaining file is replayed into sled in order. Each write is a whole
//!    value (a put or a removal), so replaying a batch sled already holds changes nothing, and
//!    sled — which recovers a prefix of what it was given — is brought up to the last
//!    acknowledged batch. A bad record with nothing whole after it, at the end of the newest
//!    file, was being written when the process died (so never acknowledged) and is dropped;
//!    damage anywhere else refuses the open.
//!
//! Files: `wal/<generation>.log` in the data directory. A record is a little-endian `u32`
//! payload length, the payload's CRC-32, and the payload: for each write a table number
//! (`u8`), `1` for a put or `0` for a removal, the key (`u32` length, bytes) and, for a put,
//! the value (`u32` length, bytes).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Result, StoreError};
use crate::kv::RawWrites;
use crate::tree::TreeId;

/// The log's size at which the writer starts a new file and sled is checkpointed.
pub(crate) const CHECKPOINT_BYTES: u64 = 64 << 20;

/// The directory of the log files, inside the data directory.
const DIR: &str = "wal";

/// A record's header: payload length and CRC-32.
const HEADER: usize = 8;

/// The largest payload a record may declare (a batch is far smaller; anything larger is damage).
const MAX_PAYLOAD: usize = 1 << 30;

fn io(context: &'static str) -> impl FnOnce(std::io::Error) -> StoreError {
    move |e| StoreError::Io {
        context,
        source: Arc::new(e),
    }
}

fn dir(data: &Path) -> PathBuf {
    data.join(DIR)
}

fn file(data: &Path, generation: u64) -> PathBuf {
    dir(data).join(format!("{generation:020}.log"))
}

/// The generations present, oldest first.
fn generations(data: &Path) -> Result<Vec<u64>> {
    let entries = match std::fs::read_dir(dir(data)) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io("listing the write-ahead log")(e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let name = entry
            .map_err(io("listing the write-ahead log"))?
            .file_name();
        let generation = name
            .to_str()
            .and_then(|n| n.strip_suffix(".log"))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(generation) = generation {
            found.push(generation);
        }
    }
    found.sort_unstable();
    Ok(found)
}

fn sync_dir(data: &Path) -> Result<()> {
    File::open(dir(data))
        .and_then(|d| d.sync_all())
        .map_err(io("syncing the write-ahead log's directory"))
}

/// The open log file that batches are appended to.
pub(crate) struct Wal {
    data: PathBuf,
    generation: u64,
    file: File,
    len: u64,
    /// The record being built, kept to reuse its allocation.
    buf: Vec<u8>,
}

impl Wal {
    /// Creates the (empty) file of `generation` and makes its existence durable.
    pub(crate) fn create(data: &Path, generation: u64) -> Result<Wal> {
        std::fs::create_dir_all(dir(data)).map_err(io("creating the write-ahead log"))?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(file(data, generation))
            .map_err(io("creating a write-ahead log file"))?;
        file.sync_all()
            .map_err(io("syncing a new write-ahead log file"))?;
        sync_dir(data)?;
        Ok(Wal {
            data: data.to_path_buf(),
            generation,
            file,
            len: 0,
            buf: Vec::new(),
        })
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// Bytes appended to this generation's file.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Starts the next generation; the returned log replaces this one.
    pub(crate) fn next(&self) -> Result<Wal> {
        Wal::create(&self.data, self.generation + 1)
    }

    /// Appends one batch's writes and syncs them to disk: once this returns `Ok`, the batch
    /// survives a crash.
    pub(crate) fn append(&mut self, writes: &[(TreeId, RawWrites)]) -> Result<()> {
        self.buf.clear();
        self.buf.extend_from_slice(&[0; HEADER]);
        for (tree, entries) in writes {
            for (key, value) in entries {
                self.buf.push(tree_byte(*tree));
                put_entry(&mut self.buf, key, value.as_deref());
            }
        }
        let payload_len = u32::try_from(self.buf.len() - HEADER)
            .map_err(|_| StoreError::Invalid("a batch too large for one log record".to_string()))?;
        let crc = crc32fast::hash(&self.buf[HEADER..]);
        self.buf[..4].copy_from_slice(&payload_len.to_le_bytes());
        self.buf[4..HEADER].copy_from_slice(&crc.to_le_bytes());
        self.file
            .write_all(&self.buf)
            .map_err(io("appending to the write-ahead log"))?;
        self.file
            .sync_data()
            .map_err(io("syncing the write-ahead log"))?;
        self.len += self.buf.len() as u64;
        // A huge batch (a rebuild) should not keep its buffer for the life of the store.
        if self.buf.capacity() > 1 << 20 {
            self.buf = Vec::new();
        }
        Ok(())
    }
}

fn tree_byte(tree: TreeId) -> u8 {
    u8::try_from(tree.index()).expect("fewer than 256 tables")
}

/// Appends one write: `1` for a put or `0` for a removal, the key (`u32` LE length, bytes)
/// and, for a put, the value (the same). The assignment chunks use this layout too.
pub(crate) fn put_entry(buf: &mut Vec<u8>, key: &[u8], value: Option<&[u8]>) {
    buf.push(u8::from(value.is_some()));
    put_bytes(buf, key);
    if let Some(value) = value {
        put_bytes(buf, value);
    }
}

fn put_bytes(buf: &mut Vec<u8>, bytes: &[u8]) {
    let len = u32::try_from(bytes.len()).expect("keys and values are far below 4 GiB");
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(bytes);
}

/// Takes the first `n` bytes off `rest`, if it has them.
pub(crate) fn take<'a>(rest: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    let (head, tail) = (rest.get(..n)?, rest.get(n..)?);
    *rest = tail;
    Some(head)
}

/// Takes one write written by [`put_entry`] off `rest`: the key, and the value of a put.
pub(crate) fn take_entry<'a>(rest: &mut &'a [u8]) -> Option<(&'a [u8], Option<&'a [u8]>)> {
    fn bytes<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
        let len = u32::from_le_bytes(take(rest, 4)?.try_into().ok()?) as usize;
        take(rest, len)
    }
    let present = take(rest, 1)?[0];
    let key = bytes(rest)?;
    match present {
        0 => Some((key, None)),
        1 => Some((key, Some(bytes(rest)?))),
        _ => None,
    }
}

/// What [`recover`] found.
#[derive(Debug, Default)]
pub(crate) struct Recovered {
    /// The generations replayed, oldest first (to be deleted once sled is flushed).
    pub(crate) generations: Vec<u64>,
    /// Batches replayed.
    pub(crate) batches: u64,
    /// Bytes of an unacknowledged record cut short at the end of the newest file.
    pub(crate) torn_bytes: u64,
}

impl Recovered {
    /// The generation a new log file should take.
    pub(crate) fn next_generation(&self) -> u64 {
        self.generations.last().map_or(1, |g| g + 1)
    }
}

/// One write as read back from the log.
pub(crate) struct Replayed<'a> {
    pub(crate) tree: TreeId,
    pub(crate) key: &'a [u8],
    /// `None` for a removal.
    pub(crate) value: Option<&'a [u8]>,
}

/// Replays every log file of the data directory `data` through `apply`, oldest first.
pub(crate) fn recover(
    data: &Path,
    mut apply: impl FnMut(Replayed<'_>) -> Result<()>,
) -> Result<Recovered> {
    let mut recovered = Recovered {
        generations: generations(data)?,
        ..Recovered::default()
    };
    let newest = recovered.generations.last().copied();
    for &generation in &recovered.generations {
        let path = file(data, generation);
        let bytes = std::fs::read(&path).map_err(io("reading the write-ahead log"))?;
        let mut at = 0;
        while at < bytes.len() {
            match record_at(&bytes, at) {
                Record::Whole(payload) => {
                    for write in parse(payload).ok_or_else(|| damaged(data, generation, at))? {
                        apply(write)?;
                    }
                    recovered.batches += 1;
                    at += HEADER + payload.len();
                }
                Record::Bad => {
                    // Only a record that was being written when the process died may be
                    // incomplete, and nothing whole follows it, in the newest file.
                    let torn = Some(generation) == newest
                        && !(at + 1..bytes.len())
                            .any(|o| matches!(record_at(&bytes, o), Record::Whole(_)));
                    if !torn {
                        return Err(damaged(data, generation, at));
                    }
                    recovered.torn_bytes = (bytes.len() - at) as u64;
                    tracing::warn!(
                        file = %path.display(),
                        offset = at,
                        bytes = recovered.torn_bytes,
                        "dropping an unacknowledged record cut short at the end of the write-ahead log"
                    );
                    break;
                }
            }
        }
    }
    Ok(recovered)
}

fn damaged(data: &Path, generation: u64, at: usize) -> StoreError {
    StoreError::Open {
        path: data.to_path_buf(),
        reason: format!(
            "its write-ahead log {DIR}/{generation:020}.log is damaged at byte {at}, before its \
             end, so acknowledged writes would be lost (restore the data directory from a backup)"
        ),
    }
}

enum Record<'a> {
    Whole(&'a [u8]),
    /// Cut short, failing its checksum, or empty (zeroed space).
    Bad,
}

fn record_at(bytes: &[u8], at: usize) -> Record<'_> {
    let Some(header) = bytes.get(at..at + HEADER) else {
        return Record::Bad;
    };
    let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
    if len == 0 || len > MAX_PAYLOAD {
        return Record::Bad;
    }
    match bytes.get(at + HEADER..at + HEADER + len) {
        Some(payload) if crc32fast::hash(payload) == crc => Record::Whole(payload),
        _ => Record::Bad,
    }
}

/// The writes of one record's payload, or `None` if it does not parse.
fn parse(mut payload: &[u8]) -> Option<Vec<Replayed<'_>>> {
    let mut writes = Vec::new();
    while !payload.is_empty() {
        let tree = *TreeId::ALL.get(usize::from(take(&mut payload, 1)?[0]))?;
        let (key, value) = take_entry(&mut payload)?;
        writes.push(Replayed { tree, key, value });
    }
    Some(writes)
}

/// Deletes the log files of every generation up to `through`, oldest first, once sled holds
/// their writes durably. Stops at the first failure, so a remaining file is never newer than
/// a deleted one.
pub(crate) fn remove_through(data: &Path, through: u64) -> Result<()> {
    for generation in generations(data)? {
        if generation > through {
            break;
        }
        std::fs::remove_file(file(data, generation))
            .map_err(io("deleting a checkpointed write-ahead log file"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(n: u8) -> Vec<(TreeId, RawWrites)> {
        vec![
            (
                TreeId::Assignments,
                vec![(vec![n, 1], Some(vec![n; 40])), (vec![n, 2], None)],
            ),
            (TreeId::Meta, vec![(b"head".to_vec(), Some(vec![n]))]),
        ]
    }

    type Seen = Vec<(TreeId, Vec<u8>, Option<Vec<u8>>)>;

    fn replay(data: &Path) -> Result<(Recovered, Seen)> {
        let mut seen = Vec::new();
        let recovered = recover(data, |w| {
            seen.push((w.tree, w.key.to_vec(), w.value.map(<[u8]>::to_vec)));
            Ok(())
        })?;
        Ok((recovered, seen))
    }

    fn flat(batches: &[Vec<(TreeId, RawWrites)>]) -> Seen {
        batches
            .iter()
            .flatten()
            .flat_map(|(t, entries)| entries.iter().map(|(k, v)| (*t, k.clone(), v.clone())))
            .collect()
    }

    #[test]
    fn batches_come_back_in_order_across_generations() {
        let dir = tempfile::tempdir().expect("dir");
        let mut wal = Wal::create(dir.path(), 1).expect("creates");
        wal.append(&batch(1)).expect("appends");
        let mut wal = wal.next().expect("rotates");
        wal.append(&batch(2)).expect("appends");
        wal.append(&batch(3)).expect("appends");
        let (recovered, seen) = replay(dir.path()).expect("replays");
        assert_eq!(recovered.generations, vec![1, 2]);
        assert_eq!(recovered.batches, 3);
        assert_eq!(recovered.next_generation(), 3);
        assert_eq!(seen, flat(&[batch(1), batch(2), batch(3)]));
    }

    #[test]
    fn a_record_cut_short_at_the_end_is_dropped_and_nothing_before_it() {
        let dir = tempfile::tempdir().expect("dir");
        let mut wal = Wal::create(dir.path(), 7).expect("creates");
        wal.append(&batch(1)).expect("appends");
        let whole = wal.len();
        wal.append(&batch(2)).expect("appends");
        let path = file(dir.path(), 7);
        for cut in [whole + 3, whole + 8, wal.len() - 1] {
            let f = OpenOptions::new().write(true).open(&path).expect("opens");
            f.set_len(cut).expect("cuts");
            let (recovered, seen) = replay(dir.path()).expect("replays");
            assert_eq!(recovered.batches, 1, "cut at {cut}");
            assert_eq!(recovered.torn_bytes, cut - whole);
            assert_eq!(seen, flat(&[batch(1)]));
        }
    }

    #[test]
    fn damage_before_the_end_refuses_to_open() {
        let dir = tempfile::tempdir().expect("dir");
        let mut wal = Wal::create(dir.path(), 1).expect("creates");
        for n in 1..=3 {
            wal.append(&batch(n)).expect("appends");
        }
        let path = file(dir.path(), 1);
        let mut bytes = std::fs::read(&path).expect("reads");
        bytes[HEADER + 5] ^= 0x40; // inside the first record's payload
        std::fs::write(&path, &bytes).expect("writes");
        let err = replay(dir.path()).expect_err("refused");
        assert!(
            err.to_string()
                .contains("00000000000000000001.log is damaged at byte 0"),
            "{err}"
        );
    }

    #[test]
    fn damage_in_an_older_generation_refuses_to_open_even_at_its_end() {
        let dir = tempfile::tempdir().expect("dir");
        let mut wal = Wal::create(dir.path(), 1).expect("creates");
        wal.append(&batch(1)).expect("appends");
        let newer = wal.next().expect("rotates");
        drop(newer);
        let f = OpenOptions::new()
            .write(true)
            .open(file(dir.path(), 1))
            .expect("opens");
        f.set_len(wal.len() - 2).expect("cuts");
        assert!(replay(dir.path()).is_err());
    }

    #[test]
    fn removal_keeps_newer_generations() {
        let dir = tempfile::tempdir().expect("dir");
        let wal = Wal::create(dir.path(), 4).expect("creates");
        let wal = wal.next().expect("rotates").next().expect("rotates");
        assert_eq!(wal.generation(), 6);
        remove_through(dir.path(), 5).expect("removes");
        assert_eq!(generations(dir.path()).expect("lists"), vec![6]);
        assert_eq!(replay(dir.path()).expect("replays").0.batches, 0);
    }
}
