//! Reads the audit chain of a data directory in the layout liftlab wrote up to schema 7, for migration.
//!
//! This is a reader of just what migration needs, kept apart from the store that wrote the
//! layout: it knows the layout from its description below, not from that store's code.
//!
//! # The layout (schemas 2 to 7)
//!
//! A sled 0.34 database in the data directory (sled's `conf` and `db` files), one sled tree
//! per table. Of those, migration reads three things:
//!
//! - Tree `meta`, key `schema`: the schema version, a tag byte `2` then the `u64` in postcard.
//!   Versions 2 to 7 keep the audit chain alike; 7 is the last this layout had.
//! - Tree `audit`: the hash chain in blocks. Each key is the big-endian `u64` sequence number
//!   of the block's first record; each value is a tag byte `2` then, in postcard, the list of
//!   the block's records, each `{seq: u64, prev_hash: [u8; 32], kind, experiment: String,
//!   payload: String, ts: i64, hash: [u8; 32]}` with `kind` the variant index in the order of
//!   the table of payloads below (`experiment_created` = 0 … `task_bound` = 7). Records
//!   are numbered from 1 without gaps; the first one's `prev_hash` is 32 zero bytes.
//! - Tree `meta`, key `audit_head`: tag `2` then `{seq: u64, hash: [u8; 32]}` in postcard, the
//!   last record's.
//!
//! A record's `hash` is SHA-256 over `prev_hash`, `seq` (u64 BE), then `kind`'s name,
//! `experiment` and `payload` each as a u32 BE length and the UTF-8 bytes, then `ts` (i64 BE).
//!
//! Beside sled, schema 3 and later keep a write-ahead log in `wal/<generation>.log` (20
//! digits). Every group commit was appended there and synced before sled saw it, so sled may
//! lack the last acknowledged commits (after a crash, or any stop without a clean close, the
//! log still holds them). A log record is a u32 LE payload length, the payload's CRC-32, and
//! the payload: writes, each a table number (`u8`, `audit` = 15, `meta` = 17), `1` for a put
//! or `0` for a removal, the key (u32 LE length, bytes) and, for a put, the value (the same).
//! Each write carries a whole value, so this reader replays the log's `audit` and
//! `audit_head` writes over sled's, in memory, oldest generation first, exactly as opening
//! the old store did: a record that is cut short or fails its checksum is dropped only at the
//! end of the newest file with nothing whole after it (it was being written when the process
//! died, so it was never acknowledged); anywhere else it refuses the directory.
//!
//! Last, the file `audit-head` holds the head of the chain as last acknowledged (a 20-digit
//! sequence number, a space, 64 hex digits): a chain that ends before it, or whose record at
//! that number has another hash, lost acknowledged records and is refused.
//!
//! # The payloads (what the importer maps 1:1)
//!
//! Each record's `payload` is JSON text of one value; `ts` and the payload's times agree:
//!
//! | kind | payload | `ts` |
//! |---|---|---|
//! | `experiment_created` | the `ExperimentVersion` of version 1: `{key, version, status: "draft", spec, created_at, change: "created", reason: null}` | `created_at` |
//! | `spec_changed` | the new `ExperimentVersion` (`change: "spec_updated"`, `reason: null`) | `created_at` |
//! | `status_changed` | the new `ExperimentVersion` (`change: {"status": "start" \| "pause" \| "stop"}`, the caller's `reason`); a resume is `start` | `created_at` |
//! | `rebaselined` | the new `Epoch` `{experiment, epoch, reason, started_at, version}`, not a version | `started_at` |
//! | `period_opened` | the `AllocationPeriod` `{experiment, period, weights: [[arm, w], ..], opened_at, rewards_seen}` | `opened_at` |
//! | `assigned` | the `Assignment` as stored (a unit's first): `{experiment, unit_id, task_id, arm, in_experiment, version, assignment_id, propensity, period, epoch, segments, assigned_at}` | `assigned_at` |
//! | `outcome_recorded` | the `Outcome` `{event_id, experiment, task_id, unit_id, arm, epoch, ts, metrics, handled_by, model_version, attributes}` | the outcome's `ts` |
//! | `task_bound` | `{task_id, unit_id}`: a returning unit's new task id | the request's `assigned_at` |
//!
//! Order within one operation: `experiment_created` is followed by `period_opened` (period 0);
//! `spec_changed` by `period_opened` when a fixed policy's weights or the policy changed, or a
//! bandit's arms or reward changed. An outcome writes its automatic records BEFORE its own
//! `outcome_recorded`, all at the outcome's `ts`: a bandit's `period_opened`, then an automatic
//! `rebaselined` (drift, its reason from the detection) or an automatic `status_changed` to
//! paused (harm test, its reason from the report). A duplicate outcome writes nothing.
//!
//! # What the chain does not hold
//!
//! - The version a re-baseline made: `rebaselined` carries the `Epoch` only. The version is
//!   the previous one with `version + 1`, the same status and spec, `created_at =
//!   started_at`, `change: {"rebaselined": {"epoch": n}}` and `reason` the epoch's reason.
//! - Which spec an outcome was recorded with: the old store folded each outcome with the spec
//!   its caller passed (the server passed the current version's); the chain has the versions
//!   and their order, so folding with the version in force at the record is what it did.
//! - The views, none of which is stored in the chain: unit rows, aggregates, counters,
//!   assignment counts, the task index, the idempotency set (`event_id`s of
//!   `outcome_recorded`), bandit state and drift monitors. Each is a fold of the records
//!   above through the domain's write path; the old store's `rebuild` could re-derive the
//!   first five but not bandit or drift state. A directory upgraded from schema 6 or older
//!   kept aggregates without the per-period scopes until rebuilt, so a fold gives those
//!   scopes where the old store had pooled values.
//! - The outcome log and the assignments tables hold nothing the chain does not: every
//!   accepted outcome and every stored assignment has its record.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::{AuditKind, AuditRecord, Result, StoreError};

/// The stored kinds, by the index the layout stores.
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

/// The names the hash covers, by the same index.
const KIND_NAMES: [&str; 8] = [
    "experiment_created",
    "spec_changed",
    "status_changed",
    "rebaselined",
    "period_opened",
    "assigned",
    "outcome_recorded",
    "task_bound",
];

/// The schema versions whose audit chain this reads.
const SCHEMAS: std::ops::RangeInclusive<u64> = 2..=7;

/// The tag byte of a postcard value.
const BINARY: u8 = 2;
/// Table numbers in the write-ahead log.
const AUDIT_TABLE: u8 = 15;
const META_TABLE: u8 = 17;
const HEAD_KEY: &[u8] = b"audit_head";
const SCHEMA_KEY: &[u8] = b"schema";

#[derive(Deserialize)]
struct StoredRecord {
    seq: u64,
    prev_hash: [u8; 32],
    kind: u32,
    experiment: String,
    payload: String,
    ts: i64,
    hash: [u8; 32],
}

#[derive(Deserialize)]
struct Head {
    seq: u64,
    hash: [u8; 32],
}

/// True when `dir` holds a data directory of the schema 2–7 layout: sled's `conf` and `db`
/// files, and a `meta` tree whose `schema` is 2 to 7.
///
/// It opens the database to look, so it answers `false` for a directory another process
/// holds (as for one sled cannot read).
pub fn is_legacy(dir: &Path) -> bool {
    if !dir.join("conf").is_file() || !dir.join("db").is_file() {
        return false;
    }
    open(dir)
        .and_then(|db| schema(dir, &db))
        .is_ok_and(|s| s.is_some_and(|s| SCHEMAS.contains(&s)))
}

/// The whole audit chain of a schema 2–7 data directory, verified, with the write-ahead
/// log's acknowledged records included (see the module docs).
///
/// Errors: [`StoreError::Locked`] while another process holds the directory;
/// [`StoreError::Open`] when `dir` is not such a directory, its log is damaged before
/// its end, or its chain is shorter than the acknowledged head; [`StoreError::Corrupt`]
/// naming the first record (by sequence number) that is missing, out of order, unlinked,
/// undecodable or edited, or a head that does not match the last record.
pub fn read_chain(dir: &Path) -> Result<Vec<AuditRecord>> {
    let db = open(dir)?;
    match schema(dir, &db)? {
        Some(s) if SCHEMAS.contains(&s) => {}
        Some(s) => {
            return Err(refused(
                dir,
                format!("its schema version {s} is not 2 to 7"),
            ))
        }
        None => return Err(refused(dir, "it has no schema version".into())),
    }
    let audit = db.open_tree("audit").map_err(|e| sled_error(dir, &e))?;
    let mut blocks = BTreeMap::new();
    for entry in audit.iter() {
        let (key, value) = entry.map_err(|e| sled_error(dir, &e))?;
        blocks.insert(key.to_vec(), value.to_vec());
    }
    let meta = db.open_tree("meta").map_err(|e| sled_error(dir, &e))?;
    let mut head = meta
        .get(HEAD_KEY)
        .map_err(|e| sled_error(dir, &e))?
        .map(|v| v.to_vec());
    replay_log(dir, |w| match (w.table, w.value) {
        (AUDIT_TABLE, Some(v)) => {
            blocks.insert(w.key.to_vec(), v.to_vec());
        }
        (AUDIT_TABLE, None) => {
            blocks.remove(w.key);
        }
        (META_TABLE, value) if w.key == HEAD_KEY => head = value.map(<[u8]>::to_vec),
        _ => {}
    })?;
    let chain = verify(&blocks, head.as_deref())?;
    check_watermark(dir, &chain)?;
    Ok(chain)
}

/// What [`migrate`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Migrated {
    /// Records of the old chain, each now a record of the new log.
    pub records: u64,
    /// Where the old directory now is, untouched; delete it once the new one serves.
    pub backup: PathBuf,
}

/// Moves a data directory of the schema 2–7 layout to the log-and-views layout in place.
///
/// The old chain is read and verified ([`read_chain`]), imported into a new store built beside
/// `dir` (`<dir>.migrating`), which is verified and closed; then `dir` is renamed to
/// `<dir>.schema7` (kept as it was) and the new store takes its name. Each step is a rename,
/// so a crash leaves either the old directory in place or both copies beside each other; a
/// leftover `<dir>.migrating` or `<dir>.schema7` is refused rather than overwritten.
pub fn migrate(dir: &Path) -> Result<Migrated> {
    if !dir.join("db").is_file() {
        return Err(refused(
            dir,
            "it is not a data directory of the older layout (nothing to migrate)".into(),
        ));
    }
    // Refuses, with the reason, a directory another process holds or of another schema.
    let chain = read_chain(dir)?;
    let sibling = |suffix: &str| {
        let mut name = dir.file_name().unwrap_or_default().to_os_string();
        name.push(suffix);
        dir.with_file_name(name)
    };
    let (staging, backup) = (sibling(".migrating"), sibling(".schema7"));
    for taken in [&staging, &backup] {
        if taken.exists() {
            return Err(refused(
                dir,
                format!(
                    "{} exists (left by an earlier migration?); move it away first",
                    taken.display()
                ),
            ));
        }
    }
    let store = crate::SledStore::open(&staging)?;
    let records = store.import(chain)?;
    let report = crate::Store::verify(&store)?;
    crate::Store::close(&store)?;
    drop(store);
    if !report.ok {
        return Err(refused(
            dir,
            format!(
                "the migrated log in {} does not verify: {}",
                staging.display(),
                report.reason.unwrap_or_default()
            ),
        ));
    }
    let io = |context: &'static str| {
        move |e: std::io::Error| StoreError::Io {
            context,
            source: std::sync::Arc::new(e),
        }
    };
    std::fs::rename(dir, &backup).map_err(io("moving the old data directory aside"))?;
    std::fs::rename(&staging, dir).map_err(io("moving the migrated directory in place"))?;
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::File::open(parent)
            .and_then(|f| f.sync_all())
            .map_err(io("syncing the renames"))?;
    }
    Ok(Migrated { records, backup })
}

fn refused(dir: &Path, reason: String) -> StoreError {
    StoreError::Open {
        path: dir.to_path_buf(),
        reason,
    }
}

fn sled_error(dir: &Path, e: &sled::Error) -> StoreError {
    refused(dir, format!("sled cannot read it: {e}"))
}

fn corrupt_at(tree: &'static str, key: &[u8], reason: String) -> StoreError {
    StoreError::Corrupt {
        tree,
        key: hex::encode(key),
        reason,
    }
}

fn corrupt(block: u64, reason: String) -> StoreError {
    corrupt_at("audit", &block.to_be_bytes(), reason)
}

/// Opens the sled database of `dir`, waiting a moment for a lock a closing store still holds.
fn open(dir: &Path) -> Result<sled::Db> {
    if !dir.join("db").is_file() {
        return Err(refused(dir, "it holds no sled database".into()));
    }
    let started = Instant::now();
    loop {
        let opened =
            std::panic::catch_unwind(|| sled::Config::new().path(dir).open()).map_err(|_| {
                refused(
                    dir,
                    "sled cannot read its files, which are likely damaged".into(),
                )
            })?;
        match opened {
            Ok(db) => return Ok(db),
            Err(sled::Error::Io(e)) if e.to_string().contains("could not acquire lock") => {
                if started.elapsed() >= Duration::from_secs(2) {
                    return Err(StoreError::Locked {
                        path: dir.to_path_buf(),
                    });
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(sled_error(dir, &e)),
        }
    }
}

/// The stored schema version, if the database has one.
fn schema(dir: &Path, db: &sled::Db) -> Result<Option<u64>> {
    if !db.tree_names().iter().any(|n| n.as_ref() == b"meta") {
        return Ok(None);
    }
    let meta = db.open_tree("meta").map_err(|e| sled_error(dir, &e))?;
    let Some(bytes) = meta.get(SCHEMA_KEY).map_err(|e| sled_error(dir, &e))? else {
        return Ok(None);
    };
    match bytes.split_first() {
        Some((&BINARY, body)) => postcard::from_bytes(body)
            .map(Some)
            .map_err(|e| refused(dir, format!("its schema version cannot be read: {e}"))),
        _ => Err(refused(dir, "its schema version cannot be read".into())),
    }
}

/// Walks the blocks in order and checks every record and the head.
fn verify(blocks: &BTreeMap<Vec<u8>, Vec<u8>>, head: Option<&[u8]>) -> Result<Vec<AuditRecord>> {
    let mut chain: Vec<AuditRecord> = Vec::new();
    let mut prev_hash = [0u8; 32];
    // The sequence number of the next record.
    let mut expected = 1u64;
    for (key, value) in blocks {
        let first = <[u8; 8]>::try_from(key.as_slice())
            .map(u64::from_be_bytes)
            .map_err(|_| {
                corrupt_at(
                    "audit",
                    key,
                    format!("record {expected}: a block of records has a malformed key"),
                )
            })?;
        if first != expected {
            let reason = if first > expected {
                format!("record {expected} is missing (the next block starts at record {first})")
            } else {
                format!("record {first} appears out of order")
            };
            return Err(corrupt(first, reason));
        }
        let records: Vec<StoredRecord> = match value.split_first() {
            Some((&BINARY, body)) => postcard::from_bytes(body).map_err(|e| e.to_string()),
            _ => Err("no binary tag".to_string()),
        }
        .map_err(|e| {
            corrupt(
                first,
                format!("record {first}: its block cannot be read: {e}"),
            )
        })?;
        if records.is_empty() {
            return Err(corrupt(
                first,
                format!("record {first}: its block is empty"),
            ));
        }
        for r in records {
            let at = expected;
            let bad = |reason: &str| corrupt(first, format!("record {at} {reason}"));
            if r.seq != at {
                return Err(bad(&format!(
                    "is missing or out of order (record {} is stored in its place)",
                    r.seq
                )));
            }
            if r.prev_hash != prev_hash {
                return Err(bad(&format!(
                    "does not link to the hash of record {}",
                    at - 1
                )));
            }
            let Some(index) = usize::try_from(r.kind).ok().filter(|i| *i < KINDS.len()) else {
                return Err(bad(&format!("has an unknown kind {}", r.kind)));
            };
            if hash(&r, KIND_NAMES[index]) != r.hash {
                return Err(bad("does not match its hash (its contents were changed)"));
            }
            prev_hash = r.hash;
            expected += 1;
            chain.push(AuditRecord {
                seq: r.seq,
                prev_hash: hex::encode(r.prev_hash),
                kind: KINDS[index],
                experiment: r.experiment,
                payload: r.payload,
                ts: r.ts,
                hash: hex::encode(r.hash),
            });
        }
    }
    let last = expected - 1;
    let head: Option<Head> = match head {
        None => None,
        Some(bytes) => Some(
            match bytes.split_first() {
                Some((&BINARY, body)) => postcard::from_bytes(body).map_err(|e| e.to_string()),
                _ => Err("no binary tag".to_string()),
            }
            .map_err(|e| {
                corrupt_at(
                    "meta",
                    HEAD_KEY,
                    format!("the chain's head cannot be read: {e}"),
                )
            })?,
        ),
    };
    match head {
        None if last == 0 => Ok(chain),
        Some(h) if h.seq == last && h.hash == prev_hash => Ok(chain),
        None => Err(corrupt_at(
            "meta",
            HEAD_KEY,
            format!("the chain ends at record {last} but has no stored head"),
        )),
        Some(h) if h.seq > last => Err(corrupt_at(
            "meta",
            HEAD_KEY,
            format!(
                "record {} is missing: the chain ends at record {last}, but its stored head is \
                 record {}",
                last + 1,
                h.seq
            ),
        )),
        Some(h) => Err(corrupt_at(
            "meta",
            HEAD_KEY,
            format!(
                "the stored head (record {}) does not match the chain's last record, {last}",
                h.seq
            ),
        )),
    }
}

fn hash(r: &StoredRecord, kind: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(r.prev_hash);
    h.update(r.seq.to_be_bytes());
    for part in [kind, &r.experiment, &r.payload] {
        h.update(u32::try_from(part.len()).unwrap_or(u32::MAX).to_be_bytes());
        h.update(part.as_bytes());
    }
    h.update(r.ts.to_be_bytes());
    h.finalize().into()
}

/// Refuses a chain that ends before, or disagrees with, the head last acknowledged.
fn check_watermark(dir: &Path, chain: &[AuditRecord]) -> Result<()> {
    let text = match std::fs::read_to_string(dir.join("audit-head")) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(refused(
                dir,
                format!("its audit-head file cannot be read: {e}"),
            ))
        }
    };
    if text.is_empty() {
        return Ok(());
    }
    let garbled = || {
        refused(
            dir,
            format!("its audit-head file is garbled: {:?}", text.trim()),
        )
    };
    let (seq, hash) = text.trim().split_once(' ').ok_or_else(garbled)?;
    let seq: u64 = seq.parse().map_err(|_| garbled())?;
    if seq == 0 {
        return Ok(());
    }
    match usize::try_from(seq - 1).ok().and_then(|i| chain.get(i)) {
        None => Err(refused(
            dir,
            format!(
                "its audit chain ends at record {}, but records up to {seq} were acknowledged: \
                 acknowledged records were lost",
                chain.len()
            ),
        )),
        Some(r) if r.hash != hash => Err(refused(
            dir,
            format!("its audit record {seq} does not match the one acknowledged"),
        )),
        Some(_) => Ok(()),
    }
}

/// Replays every write of the write-ahead log of `dir` through `apply`, oldest first.
fn replay_log(dir: &Path, mut apply: impl FnMut(Write<'_>)) -> Result<()> {
    let mut files: Vec<(u64, PathBuf)> = match std::fs::read_dir(dir.join("wal")) {
        Ok(entries) => entries
            .filter_map(|e| {
                let path = e.ok()?.path();
                let generation = path
                    .file_name()?
                    .to_str()?
                    .strip_suffix(".log")?
                    .parse()
                    .ok()?;
                Some((generation, path))
            })
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            return Err(refused(
                dir,
                format!("its write-ahead log cannot be listed: {e}"),
            ))
        }
    };
    files.sort();
    let newest = files.last().map(|(g, _)| *g);
    for (generation, path) in &files {
        let bytes = std::fs::read(path)
            .map_err(|e| refused(dir, format!("{} cannot be read: {e}", path.display())))?;
        let damaged = |at: usize| {
            refused(
                dir,
                format!(
                    "its write-ahead log {} is damaged at byte {at}, before its end, so \
                     acknowledged records would be lost",
                    path.display()
                ),
            )
        };
        let mut at = 0;
        while at < bytes.len() {
            let Some(payload) = whole_record(&bytes, at) else {
                let torn = Some(*generation) == newest
                    && !(at + 1..bytes.len()).any(|o| whole_record(&bytes, o).is_some());
                if torn {
                    break;
                }
                return Err(damaged(at));
            };
            let mut rest = payload;
            while !rest.is_empty() {
                apply(take_write(&mut rest).ok_or_else(|| damaged(at))?);
            }
            at += 8 + payload.len();
        }
    }
    Ok(())
}

/// The payload of the log record at `at`, if it is whole and passes its checksum.
fn whole_record(bytes: &[u8], at: usize) -> Option<&[u8]> {
    let header = bytes.get(at..at.checked_add(8)?)?;
    let len = usize::try_from(u32::from_le_bytes(header[..4].try_into().ok()?)).ok()?;
    let crc = u32::from_le_bytes(header[4..].try_into().ok()?);
    let payload = bytes.get(at + 8..(at + 8).checked_add(len)?)?;
    (len > 0 && crc32fast::hash(payload) == crc).then_some(payload)
}

/// One write of a log record.
struct Write<'a> {
    table: u8,
    key: &'a [u8],
    /// `None` for a removal.
    value: Option<&'a [u8]>,
}

/// Takes one write off a log record's payload.
fn take_write<'a>(rest: &mut &'a [u8]) -> Option<Write<'a>> {
    fn take<'a>(rest: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        let (head, tail) = (rest.get(..n)?, rest.get(n..)?);
        *rest = tail;
        Some(head)
    }
    fn bytes<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
        let len = usize::try_from(u32::from_le_bytes(take(rest, 4)?.try_into().ok()?)).ok()?;
        take(rest, len)
    }
    let table = take(rest, 1)?[0];
    let present = take(rest, 1)?[0];
    let key = bytes(rest)?;
    let value = match present {
        0 => None,
        1 => Some(bytes(rest)?),
        _ => return None,
    };
    Some(Write { table, key, value })
}
