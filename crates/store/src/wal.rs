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
//! 4. Files are preallocated: halfway through a file, a helper thread writes the next one
//!    full of zeros and syncs it (as `wal/next.prep`). Overwriting blocks that are already
//!    allocated lets `fdatasync` write the data alone, without the inode, which measured
//!    about a third less CPU and 40 % less time per sync than appending. The writer switches
//!    to a prepared file as soon as one is ready, even before the current one is full.
//! 5. At open, every remaining file is replayed into sled in order. Each write is a whole
//!    value (a put or a removal), so replaying a batch sled already holds changes nothing, and
//!    sled — which recovers a prefix of what it was given — is brought up to the last
//!    acknowledged batch. A bad record with nothing whole after it, at the end of the newest
//!    file, was being written when the process died (so never acknowledged) and is dropped;
//!    damage anywhere else refuses the open.
//!
//! Files: `wal/<generation>.log` in the data directory. A record is a little-endian `u32`
//! payload length, the payload's CRC-32, and the payload: for each write a table number
//! (`u8`), `1` for a put or `0` for a removal, the key (`u32` length, bytes) and, for a put,
//! the value (`u32` length, bytes). After the records, a file may hold zeros to its end (the
//! unused part of a preallocated file). Every file but the first one of a store's life starts
//! with a link record (payload `0xff`, the previous generation and the length of its records,
//! both `u64`), so that the open can tell records lost from the end of an older file from its
//! zero padding: they must reach exactly that length.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

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

/// The first payload byte of a link record (no table has this number).
const LINK: u8 = 0xff;

/// A link record's payload length: the marker, then two `u64`s.
const LINK_PAYLOAD: usize = 17;

/// The file the next generation is prepared in, before it takes its number.
const PREPARED: &str = "next.prep";

/// The file a next generation that was not prepared is started in, before it takes its number.
const STAGED: &str = "next.new";

/// The zeros a prepared file is written in, each chunk synced before the next.
const PREPARE_CHUNK: usize = 256 << 10;

/// Preparing starts once the current file holds this much (or half its size, if smaller), so
/// that a store that writes little never writes a whole file of zeros.
const PREPARE_AFTER: u64 = 1 << 20;

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

/// The zero-filled file being written for the next generation.
struct Preparing {
    thread: JoinHandle<std::io::Result<()>>,
    cancel: Arc<AtomicBool>,
}

impl Preparing {
    fn start(data: &Path, size: u64) -> Option<Preparing> {
        let path = dir(data).join(PREPARED);
        let cancel = Arc::new(AtomicBool::new(false));
        let stop = Arc::clone(&cancel);
        let thread = std::thread::Builder::new()
            .name("liftlab-store-prepare".to_string())
            .spawn(move || zero_filled(&path, size, &stop));
        match thread {
            Ok(thread) => Some(Preparing { thread, cancel }),
            Err(e) => {
                tracing::warn!(error = %e, "cannot start preparing a write-ahead log file");
                None
            }
        }
    }

    /// Waits for the file; `false` if it could not be written.
    fn finish(self) -> bool {
        match self.thread.join() {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "preparing a write-ahead log file failed");
                false
            }
            Err(_) => false,
        }
    }
}

/// Writes `size` zero bytes to a new file at `path`, syncing every [`PREPARE_CHUNK`] bytes.
///
/// Syncing as it goes keeps at most one chunk of zeros queued at the disk: a whole file's
/// worth queued at once made the writer's own syncs wait behind it (p99 over 100 ms).
fn zero_filled(path: &Path, size: u64, cancel: &AtomicBool) -> std::io::Result<()> {
    let written = write_zeros(path, size, cancel);
    if written.is_err() {
        // A partial file would only hold on to disk space (it may be what filled the disk).
        let _ = std::fs::remove_file(path);
    }
    written
}

fn write_zeros(path: &Path, size: u64, cancel: &AtomicBool) -> std::io::Result<()> {
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(path)?;
    let zeros = vec![0u8; PREPARE_CHUNK];
    let mut left = size;
    while left > 0 {
        if cancel.load(Ordering::Relaxed) {
            return Err(std::io::Error::other("the store closed"));
        }
        let n = usize::try_from(left.min(zeros.len() as u64)).unwrap_or(zeros.len());
        file.write_all(&zeros[..n])?;
        file.sync_data()?;
        left -= n as u64;
    }
    file.sync_all()
}

/// The open log file that batches are appended to.
pub(crate) struct Wal {
    data: PathBuf,
    generation: u64,
    file: File,
    len: u64,
    /// The record being built, kept to reuse its allocation.
    buf: Vec<u8>,
    /// The size at which a new file is started, and that files are prepared at (up to
    /// [`CHECKPOINT_BYTES`]).
    capacity: u64,
    /// Whether this file was prepared (zero-filled).
    prepared: bool,
    preparing: Option<Preparing>,
    /// The length of this file at which preparing the next one starts.
    prepare_from: u64,
    /// False after a new file's name could not be synced into the directory: the next
    /// append syncs it before it counts as durable.
    dir_synced: bool,
}

impl Drop for Wal {
    fn drop(&mut self) {
        if let Some(preparing) = self.preparing.take() {
            preparing.cancel.store(true, Ordering::Relaxed);
            let _ = preparing.thread.join();
        }
        let _ = std::fs::remove_file(dir(&self.data).join(PREPARED));
    }
}

impl Wal {
    /// Creates the (empty) file of `generation` and makes its existence durable. The log
    /// moves to a new file whenever it passes `capacity` bytes.
    pub(crate) fn create(data: &Path, generation: u64, capacity: u64) -> Result<Wal> {
        std::fs::create_dir_all(dir(data)).map_err(io("creating the write-ahead log"))?;
        // A file left half prepared or half started by an earlier run is of no use.
        for stale in [PREPARED, STAGED] {
            let _ = std::fs::remove_file(dir(data).join(stale));
        }
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
            capacity,
            prepared: false,
            preparing: None,
            prepare_from: PREPARE_AFTER.min(capacity / 2),
            dir_synced: true,
        })
    }

    #[cfg(test)]
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// Bytes appended to this generation's file.
    #[cfg(test)]
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Whether the log should move to a new file: this one is full, or it was not prepared
    /// and a preparation has finished (see [`Wal::rotate`]).
    pub(crate) fn due(&self) -> bool {
        self.len >= self.capacity
            || (!self.prepared
                && self
                    .preparing
                    .as_ref()
                    .is_some_and(|p| p.thread.is_finished()))
    }

    /// Moves to the next generation, in a prepared file if one is ready; returns the
    /// generation just finished, or `None` (staying put) if a preparation has just failed and
    /// this file is not full.
    ///
    /// The new file is complete — its link to this one written and synced — before it takes
    /// its name, so a failure (or a crash) at any step leaves the log as it was. On an error
    /// the log stays in this file.
    pub(crate) fn rotate(&mut self) -> Result<Option<u64>> {
        let prepared = match self.preparing.take() {
            Some(p) if p.thread.is_finished() => Some(p.finish()),
            not_yet => {
                self.preparing = not_yet;
                None
            }
        };
        if prepared == Some(false) && self.len < self.capacity {
            // The preparation failed (a full disk, say): try again further on.
            self.prepare_from = self.len + self.prepare_threshold();
            return Ok(None);
        }
        let ready = prepared == Some(true);
        let link = link_record(self.generation, self.len);
        let next = self.generation + 1;
        let staged = dir(&self.data).join(if ready { PREPARED } else { STAGED });
        let mut open = OpenOptions::new();
        if ready {
            open.write(true);
        } else {
            open.create(true).truncate(true).write(true);
        }
        let file = open
            .open(&staged)
            .and_then(|mut f| f.write_all(&link).map(|()| f))
            .and_then(|f| f.sync_all().map(|()| f))
            .and_then(|f| std::fs::rename(&staged, file(&self.data, next)).map(|()| f));
        let file = match file {
            Ok(file) => file,
            Err(e) => {
                let _ = std::fs::remove_file(&staged);
                return Err(io("starting a new write-ahead log file")(e));
            }
        };
        // The new file has its name: from here on the log is in it. Its name is made durable
        // before the next append is acknowledged.
        let finished = self.generation;
        self.file = file;
        self.generation = next;
        self.len = link.len() as u64;
        self.prepared = ready;
        self.prepare_from = self.prepare_threshold();
        self.dir_synced = sync_dir(&self.data).is_ok();
        Ok(Some(finished))
    }

    /// Bytes into a file at which the next one starts being prepared.
    fn prepare_threshold(&self) -> u64 {
        PREPARE_AFTER.min(self.capacity / 2)
    }

    /// Starts preparing the next file once this one is far enough along.
    fn prepare_ahead(&mut self) {
        if self.preparing.is_none() && self.len >= self.prepare_from {
            // A larger file than the default would only cost more zeros up front; a batch
            // past the prepared end simply extends the file.
            let size = self.capacity.min(CHECKPOINT_BYTES);
            self.preparing = Preparing::start(&self.data, size);
        }
    }

    /// Appends one batch's writes and syncs them to disk: once this returns `Ok`, the batch
    /// survives a crash.
    pub(crate) fn append(&mut self, writes: &[(TreeId, RawWrites)]) -> Result<()> {
        self.buf.clear();
        self.buf.extend_from_slice(&[0; HEADER]);
        for (tree, entries) in writes {
            for (key, value) in entries {
                self.buf.push(tree_byte(*tree));
                self.buf.push(u8::from(value.is_some()));
                put_bytes(&mut self.buf, key);
                if let Some(value) = value {
                    put_bytes(&mut self.buf, value);
                }
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
        if !self.dir_synced {
            sync_dir(&self.data)?;
            self.dir_synced = true;
        }
        self.len += self.buf.len() as u64;
        // A huge batch (a rebuild) should not keep its buffer for the life of the store.
        if self.buf.capacity() > 1 << 20 {
            self.buf = Vec::new();
        }
        self.prepare_ahead();
        Ok(())
    }
}

/// The record that starts a generation: the previous generation and its length in bytes.
fn link_record(previous: u64, len: u64) -> Vec<u8> {
    let mut payload = vec![LINK];
    payload.extend_from_slice(&previous.to_le_bytes());
    payload.extend_from_slice(&len.to_le_bytes());
    let mut record = Vec::with_capacity(HEADER + payload.len());
    let payload_len = u32::try_from(payload.len()).expect("a short payload");
    record.extend_from_slice(&payload_len.to_le_bytes());
    record.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    record.extend_from_slice(&payload);
    record
}

/// The (previous generation, its length) of a link record's payload.
fn link_of(payload: &[u8]) -> Option<(u64, u64)> {
    if payload.len() != LINK_PAYLOAD || payload[0] != LINK {
        return None;
    }
    let previous = u64::from_le_bytes(payload[1..9].try_into().ok()?);
    let len = u64::from_le_bytes(payload[9..17].try_into().ok()?);
    Some((previous, len))
}

fn tree_byte(tree: TreeId) -> u8 {
    u8::try_from(tree.index()).expect("fewer than 256 tables")
}

fn put_bytes(buf: &mut Vec<u8>, bytes: &[u8]) {
    let len = u32::try_from(bytes.len()).expect("keys and values are far below 4 GiB");
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(bytes);
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
    let files = recovered
        .generations
        .iter()
        .map(|&g| std::fs::read(file(data, g)).map_err(io("reading the write-ahead log")))
        .collect::<Result<Vec<_>>>()?;
    for (i, (&generation, bytes)) in recovered.generations.iter().zip(&files).enumerate() {
        // The length of this file's records, as the next file's link gives it.
        let end = match files.get(i + 1).map(|next| record_at(next, 0)) {
            Some(Record::Whole(payload)) => match link_of(payload) {
                Some((previous, len)) if previous == generation => {
                    Some(usize::try_from(len).unwrap_or(usize::MAX))
                }
                Some(_) => return Err(damaged(data, recovered.generations[i + 1], 0)),
                // A file written before links existed: its records reach its end.
                None => None,
            },
            _ => None,
        };
        let newest = i + 1 == files.len();
        let mut at = 0;
        while at < bytes.len() {
            if bytes[at..].iter().all(|&b| b == 0) {
                // The zero padding of a prepared file: its records end here.
                break;
            }
            match record_at(bytes, at) {
                Record::Whole(payload) => {
                    if link_of(payload).is_none() {
                        let writes = parse(payload).ok_or_else(|| damaged(data, generation, at))?;
                        for write in writes {
                            apply(write)?;
                        }
                        recovered.batches += 1;
                    }
                    at += HEADER + payload.len();
                }
                Record::Bad => {
                    // Only a record that was being written when the process died may be
                    // incomplete, and nothing whole follows it, in the newest file.
                    let torn = newest
                        && !(at + 1..bytes.len())
                            .any(|o| matches!(record_at(bytes, o), Record::Whole(_)));
                    if !torn {
                        return Err(damaged(data, generation, at));
                    }
                    recovered.torn_bytes = (bytes.len() - at) as u64;
                    tracing::warn!(
                        file = %file(data, generation).display(),
                        offset = at,
                        bytes = recovered.torn_bytes,
                        "dropping an unacknowledged record cut short at the end of the write-ahead log"
                    );
                    break;
                }
            }
        }
        // An older file's records reach exactly the length its successor recorded.
        if end.is_some_and(|end| end != at) {
            return Err(damaged(data, generation, at));
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
    fn take<'a>(payload: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (payload.get(..n)?, payload.get(n..)?);
        *payload = rest;
        Some(head)
    }
    fn bytes<'a>(payload: &mut &'a [u8]) -> Option<&'a [u8]> {
        let len = u32::from_le_bytes(take(payload, 4)?.try_into().ok()?) as usize;
        take(payload, len)
    }
    let mut writes = Vec::new();
    while !payload.is_empty() {
        let head = take(&mut payload, 2)?;
        let tree = *TreeId::ALL.get(usize::from(head[0]))?;
        let key = bytes(&mut payload)?;
        let value = match head[1] {
            0 => None,
            1 => Some(bytes(&mut payload)?),
            _ => return None,
        };
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

    /// A file size no test reaches, so nothing is prepared unless a test asks for it.
    const BIG: u64 = 1 << 40;

    fn batch(n: u8) -> Vec<(TreeId, RawWrites)> {
        vec![
            (
                TreeId::Assignments,
                vec![(vec![n, 1], Some(vec![n; 400])), (vec![n, 2], None)],
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
        let mut wal = Wal::create(dir.path(), 1, BIG).expect("creates");
        wal.append(&batch(1)).expect("appends");
        wal.rotate().expect("rotates").expect("moved on");
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
        let mut wal = Wal::create(dir.path(), 7, BIG).expect("creates");
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
        let mut wal = Wal::create(dir.path(), 1, BIG).expect("creates");
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
        let mut wal = Wal::create(dir.path(), 1, BIG).expect("creates");
        wal.append(&batch(1)).expect("appends");
        let len = wal.len();
        wal.rotate().expect("rotates").expect("moved on");
        let f = OpenOptions::new()
            .write(true)
            .open(file(dir.path(), 1))
            .expect("opens");
        f.set_len(len - 2).expect("cuts");
        assert!(replay(dir.path()).is_err());
    }

    #[test]
    fn removal_keeps_newer_generations() {
        let dir = tempfile::tempdir().expect("dir");
        let mut wal = Wal::create(dir.path(), 4, BIG).expect("creates");
        wal.rotate().expect("rotates").expect("moved on");
        wal.rotate().expect("rotates").expect("moved on");
        assert_eq!(wal.generation(), 6);
        remove_through(dir.path(), 5).expect("removes");
        assert_eq!(generations(dir.path()).expect("lists"), vec![6]);
        assert_eq!(replay(dir.path()).expect("replays").0.batches, 0);
    }

    /// Appends batches until the helper has prepared the next file, then rotates into it.
    fn into_prepared(wal: &mut Wal, first: u8) -> u8 {
        let mut n = first;
        while !wal.due() {
            wal.append(&batch(n)).expect("appends");
            n += 1;
            if wal.len() < wal.capacity {
                // Give the helper time; `due` turns true once the prepared file is ready.
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
        wal.rotate().expect("rotates").expect("moved on");
        assert!(wal.prepared, "the new file is the prepared one");
        n
    }

    #[test]
    fn a_prepared_file_is_used_early_and_its_zero_padding_read_as_its_end() {
        let dir = tempfile::tempdir().expect("dir");
        let capacity = 16 << 10;
        let mut wal = Wal::create(dir.path(), 1, capacity).expect("creates");
        let next = into_prepared(&mut wal, 1);
        assert_eq!(wal.generation(), 2);
        // Switched as soon as the prepared file was ready, long before the first was full.
        assert!(
            std::fs::metadata(file(dir.path(), 1))
                .expect("exists")
                .len()
                < capacity
        );
        assert_eq!(
            std::fs::metadata(file(dir.path(), 2))
                .expect("exists")
                .len(),
            capacity
        );
        for n in next..next + 3 {
            wal.append(&batch(n)).expect("appends");
        }
        let (recovered, seen) = replay(dir.path()).expect("replays");
        assert_eq!(recovered.generations, vec![1, 2]);
        assert_eq!(u64::from(next + 2), recovered.batches);
        let all: Vec<_> = (1..next + 3).map(batch).collect();
        assert_eq!(seen, flat(&all));
        assert_eq!(recovered.torn_bytes, 0);
    }

    #[test]
    fn a_record_cut_short_in_a_prepared_file_is_dropped() {
        let dir = tempfile::tempdir().expect("dir");
        let mut wal = Wal::create(dir.path(), 1, 16 << 10).expect("creates");
        let next = into_prepared(&mut wal, 1);
        wal.append(&batch(next)).expect("appends");
        let whole = wal.len();
        wal.append(&batch(next + 1)).expect("appends");
        // The second record's last bytes never reached the disk: zeros, as prepared.
        let path = file(dir.path(), 2);
        let mut bytes = std::fs::read(&path).expect("reads");
        let end = usize::try_from(wal.len()).expect("small");
        bytes[end - 3..end].fill(0);
        std::fs::write(&path, &bytes).expect("writes");
        let (recovered, seen) = replay(dir.path()).expect("replays");
        assert_eq!(u64::from(next), recovered.batches);
        assert_eq!(recovered.torn_bytes, bytes.len() as u64 - whole);
        let all: Vec<_> = (1..=next).map(batch).collect();
        assert_eq!(seen, flat(&all));
    }

    #[test]
    fn records_lost_from_the_end_of_an_older_prepared_file_refuse_to_open() {
        let dir = tempfile::tempdir().expect("dir");
        let mut wal = Wal::create(dir.path(), 1, 16 << 10).expect("creates");
        let next = into_prepared(&mut wal, 1);
        wal.append(&batch(next)).expect("appends");
        let older_len = wal.len();
        into_prepared(&mut wal, next + 1);
        assert_eq!(wal.generation(), 3);
        // Generation 2 is padded; zero its last record, which then looks like padding.
        let path = file(dir.path(), 2);
        let mut bytes = std::fs::read(&path).expect("reads");
        let last = batch(next + 1);
        let last_len = usize::try_from(older_len).expect("small");
        let start = last_len - record_len(&last);
        bytes[start..].fill(0);
        std::fs::write(&path, &bytes).expect("writes");
        let err = replay(dir.path()).expect_err("refused");
        assert!(
            err.to_string()
                .contains("00000000000000000002.log is damaged"),
            "{err}"
        );
    }

    fn record_len(writes: &[(TreeId, RawWrites)]) -> usize {
        let dir = tempfile::tempdir().expect("dir");
        let mut wal = Wal::create(dir.path(), 1, BIG).expect("creates");
        wal.append(writes).expect("appends");
        usize::try_from(wal.len()).expect("small")
    }

    #[test]
    fn a_link_to_a_missing_generation_refuses_to_open() {
        let dir = tempfile::tempdir().expect("dir");
        let mut wal = Wal::create(dir.path(), 1, BIG).expect("creates");
        wal.append(&batch(1)).expect("appends");
        wal.rotate().expect("rotates").expect("moved on");
        wal.rotate().expect("rotates").expect("moved on");
        std::fs::remove_file(file(dir.path(), 2)).expect("removes");
        let err = replay(dir.path()).expect_err("refused");
        assert!(
            err.to_string()
                .contains("00000000000000000003.log is damaged"),
            "{err}"
        );
    }

    #[test]
    fn a_half_prepared_file_is_ignored_and_removed() {
        let dir = tempfile::tempdir().expect("dir");
        let mut wal = Wal::create(dir.path(), 1, BIG).expect("creates");
        wal.append(&batch(1)).expect("appends");
        std::fs::write(dir.path().join(DIR).join(PREPARED), [7u8; 100]).expect("writes");
        let (recovered, _) = replay(dir.path()).expect("replays");
        assert_eq!(recovered.batches, 1);
        drop(wal);
        Wal::create(dir.path(), 2, BIG).expect("creates");
        assert!(!dir.path().join(DIR).join(PREPARED).exists());
    }

    #[test]
    fn a_failed_preparation_leaves_the_log_in_its_file_and_frees_its_space() {
        let dir = tempfile::tempdir().expect("dir");
        let mut wal = Wal::create(dir.path(), 1, 16 << 10).expect("creates");
        // A directory where the prepared file would go: preparing it fails.
        std::fs::create_dir(dir.path().join(DIR).join(PREPARED)).expect("blocks");
        let mut n = 1;
        while !wal.due() {
            wal.append(&batch(n)).expect("appends");
            n += 1;
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(
            wal.len() < wal.capacity,
            "due because the preparation ended"
        );
        assert_eq!(wal.rotate().expect("no error"), None);
        assert_eq!(wal.generation(), 1);
        assert!(!wal.due(), "not due again until it is full");
        wal.append(&batch(n)).expect("appends");
        assert_eq!(generations(dir.path()).expect("lists"), vec![1]);
        let (recovered, seen) = replay(dir.path()).expect("replays");
        assert_eq!(recovered.batches, u64::from(n));
        let all: Vec<_> = (1..=n).map(batch).collect();
        assert_eq!(seen, flat(&all));
    }

    #[test]
    fn a_failed_start_of_a_new_file_leaves_no_generation_behind() {
        let dir = tempfile::tempdir().expect("dir");
        let mut wal = Wal::create(dir.path(), 1, BIG).expect("creates");
        wal.append(&batch(1)).expect("appends");
        // Generation 2's name is taken by a directory: the rename fails.
        std::fs::create_dir(file(dir.path(), 2)).expect("blocks");
        assert!(wal.rotate().is_err());
        std::fs::remove_dir(file(dir.path(), 2)).expect("unblocks");
        assert!(!dir.path().join(DIR).join(STAGED).exists());
        wal.append(&batch(2)).expect("appends in the same file");
        assert_eq!(wal.generation(), 1);
        let (recovered, seen) = replay(dir.path()).expect("replays");
        assert_eq!(recovered.generations, vec![1]);
        assert_eq!(seen, flat(&[batch(1), batch(2)]));
    }
}
