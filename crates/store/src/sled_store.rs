//! `SledStore`: the store on sled 0.34, with one writer thread doing group commit.
//!
//! Callers of write operations send a job to the writer and block on its answer. The writer
//! takes up to [`MAX_BATCH`] pending jobs, runs each one against an overlay of the batch so
//! far (an `Err` drops that job's writes only), appends the batch's writes to the
//! write-ahead log and syncs it once ([`crate::wal`]), applies them to sled, and only then
//! answers. sled therefore holds durable writes only, and reads run on the caller's thread
//! without ever waiting for a flush.

use std::any::Any;
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::chunks::ChunkedTable;
use crate::error::{Result, StoreError};
use crate::filter::KeyFilter;
use crate::kv::{atomically, get_as, Entries, RawWrites, Scan, Source, Tx, Writes};
use crate::ops;
use crate::tree::TreeId;
use crate::wal::Wal;
use crate::OutcomeIter;

/// The most jobs one group commit takes (a batch call such as `record_outcomes` is one job).
pub const MAX_BATCH: usize = 256;

/// sled's page cache unless the caller asks for another size: 256 MiB (sled's default is 1 GiB).
pub const DEFAULT_CACHE_BYTES: u64 = 256 << 20;

/// The schema version this build writes and reads.
///
/// 2: the audit chain is stored in blocks of one batch's records (1 stored one per key).
/// 3: writes go through the write-ahead log in `wal/`, and a unit's own id as its task has no
///    `tasks` entry. A version-2 directory is upgraded at open (its data reads the same); the
///    number changes so that an older build, which would neither replay the log nor find
///    those tasks, refuses the directory instead of serving it wrong.
/// 4: the `assignments` table is kept in chunks ([`ChunkedTable`]), no longer one sled key per
///    unit. Versions 2 and 3 are upgraded at open; an older build would find no assignment.
/// 5: aggregates may have the scopes `Paired`, `PairSum` (covariate and ratio metrics) and
///    `Hour` (the primary metric by the hour). Older directories read the same and are upgraded
///    at open; an older build would fail on the new scopes' key tags, so it refuses instead.
/// 6: aggregates may have the scope `Period` (per-unit values by allocation period, for
///    estimates stratified by period). Older directories read the same (their reports pool
///    periods until the aggregates are rebuilt) and are upgraded at open; an older build would
///    fail on the new scope's key tag, so it refuses instead.
/// 7: aggregates may have the scopes `PeriodPaired` and `PeriodPairSum` (a ratio metric's
///    pairs by allocation period). Older directories read the same (their ratio metrics are
///    pooled until the aggregates are rebuilt) and are upgraded at open; an older build would
///    fail on the new scopes' key tags, so it refuses instead.
const SCHEMA_VERSION: u64 = 7;

/// The oldest schema version this build upgrades at open.
const UPGRADES_FROM: u64 = 2;

/// The meta key of the schema version.
const SCHEMA_KEY: &[u8] = b"schema";

/// The store's sled trees, indexed by [`TreeId`].
struct Trees {
    db: sled::Db,
    /// One sled tree per table; the `assignments` one is only read to upgrade old directories.
    trees: Vec<sled::Tree>,
    /// The `assignments` table: see [`ChunkedTable`].
    assignments: ChunkedTable,
    /// The keys of the `tasks` table, which new units miss in; see [`KeyFilter`].
    filter: KeyFilter,
}

impl Trees {
    fn tree(&self, id: TreeId) -> &sled::Tree {
        &self.trees[id.index()]
    }
}

impl Source for Trees {
    fn get(&self, tree: TreeId, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if tree == TreeId::Assignments {
            return self.assignments.get(key);
        }
        if !self.filter.may_contain(tree, key) {
            return Ok(None);
        }
        self.tree(tree)
            .get(key)
            .map(|v| v.map(|v| v.to_vec()))
            .map_err(|e| StoreError::sled("reading a record", e))
    }
}

impl Scan for Trees {
    fn scan_from(&self, tree: TreeId, prefix: &[u8], start: &[u8]) -> Entries<'_> {
        if tree == TreeId::Assignments {
            return self.assignments.scan_from(prefix, start);
        }
        let prefix = prefix.to_vec();
        Box::new(
            self.tree(tree)
                .range(start.to_vec()..)
                .take_while(move |entry| match entry {
                    Ok((k, _)) => k.starts_with(&prefix),
                    Err(_) => true,
                })
                .map(|entry| {
                    entry
                        .map(|(k, v)| (k.to_vec(), v.to_vec()))
                        .map_err(|e| StoreError::sled("scanning records", e))
                }),
        )
    }

    fn last_at_or_before(
        &self,
        tree: TreeId,
        prefix: &[u8],
        key: &[u8],
    ) -> Result<Option<Vec<u8>>> {
        if tree == TreeId::Assignments {
            return self.assignments.last_at_or_before(prefix, key);
        }
        match self.tree(tree).range(..=key.to_vec()).next_back() {
            None => Ok(None),
            Some(Ok((k, _))) => Ok(Some(k.to_vec()).filter(|k| k.starts_with(prefix))),
            Some(Err(e)) => Err(StoreError::sled("scanning an index", e)),
        }
    }

    fn as_source(&self) -> &dyn Source {
        self
    }
}

/// Called once the job's batch is durable (or failed), to answer the caller.
type Reply = Box<dyn FnOnce(std::result::Result<(), &StoreError>) + Send>;

/// A write operation as the writer runs it.
type JobFn = Box<dyn FnOnce(&Trees, &mut Writes) -> Reply + Send>;

struct Job {
    run: JobFn,
    /// Runs in a batch of its own (rebuild), seeing only committed state.
    exclusive: bool,
}

/// The allocation period in force per experiment, as the assign hot path reads it.
///
/// Only the writer changes what it is derived from (the `state` and `periods` tables), and it
/// clears the cache after applying such a batch. A reader fills an entry only if no clearing
/// happened since it started reading sled, so it never puts back a period older than sled's.
#[derive(Default)]
struct PeriodCache {
    /// The number of clearings so far, and the cached periods.
    inner: RwLock<(u64, HashMap<String, liftlab_domain::AllocationPeriod>)>,
}

impl PeriodCache {
    fn get_or_read(
        &self,
        experiment: &str,
        read: impl FnOnce() -> Result<liftlab_domain::AllocationPeriod>,
    ) -> Result<liftlab_domain::AllocationPeriod> {
        let generation = {
            let inner = self.inner.read().unwrap_or_else(|p| p.into_inner());
            if let Some(period) = inner.1.get(experiment) {
                return Ok(period.clone());
            }
            inner.0
        };
        let period = read()?;
        let mut inner = self.inner.write().unwrap_or_else(|p| p.into_inner());
        if inner.0 == generation {
            inner.1.insert(experiment.to_string(), period.clone());
        }
        Ok(period)
    }

    fn clear(&self) {
        let mut inner = self.inner.write().unwrap_or_else(|p| p.into_inner());
        inner.0 += 1;
        inner.1.clear();
    }
}

/// What the writer and the readers share.
struct Shared {
    /// See [`PeriodCache`].
    periods: PeriodCache,
    /// The data directory, where the writer keeps the audit watermark and the log.
    dir: PathBuf,
    trees: Trees,
    /// Set when a commit or flush failed: the writer refuses everything after it.
    failure: Mutex<Option<StoreError>>,
}

impl Shared {
    fn failure(&self) -> Option<StoreError> {
        self.failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(StoreError::for_batch)
    }

    /// Records a failure of the store itself: every later write is refused.
    fn fail(&self, e: &StoreError) {
        tracing::error!(error = %e, "a group commit failed; the store refuses further writes");
        *self.failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.for_batch());
    }
}

/// The store on a sled data directory. See the crate docs for durability and open errors.
pub struct SledStore {
    shared: std::sync::Arc<Shared>,
    sender: RwLock<Option<Sender<Job>>>,
    /// The writer, then the checkpointer: joined in that order on close.
    threads: Mutex<Vec<JoinHandle<()>>>,
    path: PathBuf,
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore")
            .field("path", &self.path)
            .finish()
    }
}

fn open_error(path: &Path, e: sled::Error) -> StoreError {
    match e {
        sled::Error::Io(io) if io.to_string().contains("could not acquire lock") => {
            StoreError::Locked {
                path: path.to_path_buf(),
            }
        }
        sled::Error::Io(io) => StoreError::Open {
            path: path.to_path_buf(),
            reason: io.to_string(),
        },
        sled::Error::Corruption { .. } => StoreError::Open {
            path: path.to_path_buf(),
            reason: "the database is corrupt".to_string(),
        },
        other => StoreError::Open {
            path: path.to_path_buf(),
            reason: other.to_string(),
        },
    }
}

/// How long `open` keeps retrying a locked directory.
///
/// sled's I/O threads drop their handle on the lock file a moment after a closed store has
/// flushed, so reopening in the same process can find it still locked for a few milliseconds.
const LOCK_PATIENCE: Duration = Duration::from_secs(2);

/// Opens sled with a page cache of `cache_bytes` (sled's own default is 1 GiB).
///
/// sled counts the cache in on-disk bytes of the pages it keeps; the process also holds
/// per-page bookkeeping outside it, so resident memory is larger than the cache alone.
pub(crate) fn open_db(path: &Path, cache_bytes: u64) -> Result<sled::Db> {
    let started = Instant::now();
    loop {
        let opened = catch_unwind(|| {
            sled::Config::new()
                .path(path)
                .cache_capacity(cache_bytes)
                .open()
        })
        .map_err(|p| StoreError::Open {
            path: path.to_path_buf(),
            reason: format!(
                "sled cannot read its files, which are likely damaged (restore from a backup; \
                 sled stopped with: {})",
                panic_message(&*p)
            ),
        })?
        .map_err(|e| open_error(path, e));
        match opened {
            Err(StoreError::Locked { .. }) if started.elapsed() < LOCK_PATIENCE => {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a store operation panicked".to_string())
}

impl SledStore {
    /// Opens (or creates) the store in the directory `path`, with a page cache of
    /// [`DEFAULT_CACHE_BYTES`].
    ///
    /// Errors: [`StoreError::Locked`] if another process or store holds the directory,
    /// [`StoreError::Open`] if it cannot be created or read, [`StoreError::Corrupt`] if it
    /// was written by an unknown schema version.
    pub fn open(path: impl AsRef<Path>) -> Result<SledStore> {
        SledStore::open_with_cache(path, DEFAULT_CACHE_BYTES)
    }

    /// [`SledStore::open`] with sled's page cache bounded to `cache_bytes`.
    pub fn open_with_cache(path: impl AsRef<Path>, cache_bytes: u64) -> Result<SledStore> {
        SledStore::open_with(path, cache_bytes, crate::wal::CHECKPOINT_BYTES)
    }

    /// [`SledStore::open_with_cache`], checkpointing the write-ahead log whenever it passes
    /// `checkpoint_bytes` (tests use a small size to exercise checkpoints).
    pub fn open_with(
        path: impl AsRef<Path>,
        cache_bytes: u64,
        checkpoint_bytes: u64,
    ) -> Result<SledStore> {
        let path = path.as_ref().to_path_buf();
        if path.exists() && !path.is_dir() {
            return Err(StoreError::Open {
                path,
                reason: "it exists and is not a directory".to_string(),
            });
        }
        let db = open_db(&path, cache_bytes)?;
        let trees = TreeId::ALL
            .iter()
            .map(|t| db.open_tree(t.name()))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| open_error(&path, e))?;
        let assignments = ChunkedTable::open(&db)?;
        let trees = Trees {
            db,
            trees,
            assignments,
            filter: KeyFilter::new(),
        };
        check_schema(&trees)?;
        upgrade_assignments(&trees)?;
        let wal = recover(&path, &trees)?;
        fill_filter(&trees)?;
        // An unreadable head is left to `verify()`, which names it.
        if let Ok(head) = audit_head(&trees) {
            crate::watermark::check(&path, head.as_ref())?;
        }
        let shared = std::sync::Arc::new(Shared {
            dir: path.clone(),
            trees,
            failure: Mutex::new(None),
            periods: PeriodCache::default(),
        });
        let (sender, receiver) = mpsc::channel();
        let (to_checkpointer, checkpoints) = mpsc::channel();
        let spawn_error = |e| StoreError::Io {
            context: "starting the store's threads",
            source: std::sync::Arc::new(e),
        };
        let for_checkpointer = std::sync::Arc::clone(&shared);
        let checkpointer = std::thread::Builder::new()
            .name("liftlab-store-checkpoint".to_string())
            .spawn(move || run_checkpointer(&for_checkpointer, &checkpoints))
            .map_err(spawn_error)?;
        let for_writer = std::sync::Arc::clone(&shared);
        let writer = std::thread::Builder::new()
            .name("liftlab-store-writer".to_string())
            .spawn(move || {
                run_writer(
                    &for_writer,
                    &receiver,
                    wal,
                    checkpoint_bytes,
                    &to_checkpointer,
                );
            })
            .map_err(spawn_error)?;
        Ok(SledStore {
            shared,
            sender: RwLock::new(Some(sender)),
            threads: Mutex::new(vec![writer, checkpointer]),
            path,
        })
    }

    /// The data directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queues `work` for the writer; `deliver` gets its answer once the batch is durable.
    ///
    /// If the store has closed, `deliver` is dropped without being called.
    fn submit_then<R: Send + 'static>(
        &self,
        exclusive: bool,
        work: impl FnOnce(&Trees, &mut Writes) -> Result<R> + Send + 'static,
        deliver: impl FnOnce(Result<R>) + Send + 'static,
    ) {
        let run: JobFn = Box::new(move |trees, batch| {
            let out = catch_unwind(AssertUnwindSafe(|| work(trees, batch)))
                .unwrap_or_else(|p| Err(StoreError::Internal(panic_message(&*p))));
            Box::new(move |flushed| {
                deliver(match (out, flushed) {
                    (Err(e), _) => Err(e),
                    (Ok(v), Ok(())) => Ok(v),
                    (Ok(_), Err(e)) => Err(e.for_batch()),
                });
            })
        });
        let sender = self.sender.read().unwrap_or_else(|p| p.into_inner());
        if let Some(sender) = sender.as_ref() {
            // A failed send drops the job, and with it `deliver`: the caller sees it as closed.
            let _ = sender.send(Job { run, exclusive });
        }
    }

    fn submit<R: Send + 'static>(
        &self,
        exclusive: bool,
        work: impl FnOnce(&Trees, &mut Writes) -> Result<R> + Send + 'static,
    ) -> Result<R> {
        let (tx, rx) = mpsc::sync_channel::<Result<R>>(1);
        self.submit_then(exclusive, work, move |answer| {
            // The caller may have gone away; then nobody needs the answer.
            let _ = tx.send(answer);
        });
        rx.recv().map_err(|_| StoreError::Closed)?
    }

    pub(crate) fn write_one<R: Send + 'static>(
        &self,
        op: impl FnOnce(&mut Tx<'_>) -> Result<R> + Send + 'static,
    ) -> Result<R> {
        self.submit(false, move |trees, batch| atomically(trees, batch, op))
    }

    pub(crate) fn write_many<T: Send + 'static, R: Send + 'static>(
        &self,
        items: Vec<T>,
        op: impl Fn(&mut Tx<'_>, T) -> Result<R> + Send + 'static,
    ) -> Result<Vec<Result<R>>> {
        self.submit(false, move |trees, batch| {
            Ok(items
                .into_iter()
                .map(|item| atomically(trees, batch, |tx| op(tx, item)))
                .collect())
        })
    }

    pub(crate) fn write_one_then<R: Send + 'static>(
        &self,
        op: impl FnOnce(&mut Tx<'_>) -> Result<R> + Send + 'static,
        done: crate::Done<R>,
    ) {
        self.submit_then(
            false,
            move |trees, batch| atomically(trees, batch, op),
            done,
        );
    }

    pub(crate) fn exclusive<R: Send + 'static>(
        &self,
        work: impl FnOnce(&dyn Scan, &mut Writes) -> Result<R> + Send + 'static,
    ) -> Result<R> {
        self.submit(true, move |trees, batch| work(trees, batch))
    }

    /// A read of committed state: sled holds durable writes only, so it never waits.
    pub(crate) fn read<R>(&self, f: impl FnOnce(&dyn Scan) -> Result<R>) -> Result<R> {
        f(&self.shared.trees)
    }

    /// `Store::current_period_for_decision`: from memory once read, and only while the store
    /// has not failed.
    pub(crate) fn period_for_decision(
        &self,
        experiment: &str,
    ) -> Result<liftlab_domain::AllocationPeriod> {
        if let Some(e) = self.shared.failure() {
            return Err(e);
        }
        self.shared.periods.get_or_read(experiment, || {
            ops::current_period(&self.shared.trees, experiment)
        })
    }

    pub(crate) fn outcome_iter(&self, experiment: &str) -> Result<OutcomeIter> {
        let trees = &self.shared.trees;
        ops::require_experiment(trees, experiment)?;
        let chunks = trees
            .tree(TreeId::Outcomes)
            .scan_prefix(ops::keys::exp(experiment))
            .map(|entry| {
                entry
                    .map(|(k, v)| (k.to_vec(), v.to_vec()))
                    .map_err(|e| StoreError::sled("scanning the outcome log", e))
            });
        Ok(Box::new(ops::flatten_outcomes(chunks)))
    }

    pub(crate) fn flush_now(&self) -> Result<()> {
        // An empty job still makes the writer flush, after everything queued before it.
        self.submit(false, |_, _| Ok(()))
    }

    pub(crate) fn shut_down(&self) -> Result<()> {
        let sender = self
            .sender
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        drop(sender);
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        // The writer stops once the queue is drained; dropping its end of the checkpointer's
        // channel then stops the checkpointer after the last checkpoint.
        for handle in threads {
            if handle.join().is_err() {
                return Err(StoreError::Internal("a store thread panicked".to_string()));
            }
        }
        match self.shared.failure() {
            Some(e) => Err(e),
            None => {
                // sled now holds every logged write durably, so the log can go.
                self.shared
                    .trees
                    .db
                    .flush()
                    .map_err(|e| StoreError::sled("flushing on close", e))?;
                crate::wal::remove_through(&self.path, u64::MAX)
            }
        }
    }
}

impl Drop for SledStore {
    fn drop(&mut self) {
        if let Err(e) = self.shut_down() {
            tracing::error!(error = %e, path = %self.path.display(), "closing the store failed");
        }
    }
}

crate::impl_store!(SledStore);

/// The audit chain's stored head, if the chain has any record.
fn audit_head(trees: &Trees) -> Result<Option<crate::records::AuditHead>> {
    get_as(trees, TreeId::Meta, crate::audit::HEAD_KEY)
}

/// Writes the schema version into a new database, or checks the one found.
fn check_schema(trees: &Trees) -> Result<()> {
    let found: Option<u64> = get_as(trees, TreeId::Meta, SCHEMA_KEY)?;
    match found {
        Some(SCHEMA_VERSION) => Ok(()),
        Some(other) if !(UPGRADES_FROM..SCHEMA_VERSION).contains(&other) => {
            Err(StoreError::corrupt(
                TreeId::Meta.name(),
                SCHEMA_KEY,
                format!(
                    "schema version {other} is not supported (this build reads \
                     {UPGRADES_FROM} to {SCHEMA_VERSION})"
                ),
            ))
        }
        Some(_) | None => {
            if let Some(old) = found {
                tracing::info!(
                    from = old,
                    to = SCHEMA_VERSION,
                    "upgrading the data directory"
                );
            }
            trees
                .tree(TreeId::Meta)
                .insert(
                    SCHEMA_KEY,
                    crate::codec::encode(TreeId::Meta, &SCHEMA_VERSION),
                )
                .map_err(|e| StoreError::sled("writing the schema version", e))?;
            trees
                .db
                .flush()
                .map(|_| ())
                .map_err(|e| StoreError::sled("flushing the schema version", e))
        }
    }
}

/// Replays the write-ahead log into sled, makes the result durable, and starts a new log.
fn recover(path: &Path, trees: &Trees) -> Result<Wal> {
    // Replayed assignments are appended as chunks once the whole log has been read.
    let mut assignments = RawWrites::new();
    let recovered = crate::wal::recover(path, |w| {
        if w.tree == TreeId::Assignments {
            assignments.push((w.key.to_vec(), w.value.map(<[u8]>::to_vec)));
            Ok(())
        } else {
            apply_one(trees, w.tree, w.key, w.value)
        }
    })?;
    trees.assignments.append(&assignments)?;
    if recovered.batches > 0 {
        tracing::info!(
            batches = recovered.batches,
            "replayed the write-ahead log into the database"
        );
    }
    let wal = Wal::create(path, recovered.next_generation())?;
    if let Some(&last) = recovered.generations.last() {
        trees
            .db
            .flush()
            .map_err(|e| StoreError::sled("flushing the replayed log", e))?;
        crate::wal::remove_through(path, last)?;
    }
    Ok(wal)
}

/// Adds the keys sled holds to the key filter, which then starts answering "absent".
fn fill_filter(trees: &Trees) -> Result<()> {
    for id in TreeId::ALL
        .into_iter()
        .filter(|t| crate::filter::filtered(*t))
    {
        for key in trees.tree(id).iter().keys() {
            let key = key.map_err(|e| StoreError::sled("reading the keys of a table", e))?;
            trees.filter.insert(id, &key);
        }
    }
    trees.filter.complete();
    Ok(())
}

/// Moves the `assignments` tree of a schema 2 or 3 directory, which held one sled key per
/// unit, into chunks ([`ChunkedTable`]). The tree is emptied only once the chunks are durable,
/// and this runs at every open, so an upgrade cut short is finished by the next one.
fn upgrade_assignments(trees: &Trees) -> Result<()> {
    let old = trees.tree(TreeId::Assignments);
    if old.is_empty() {
        return Ok(());
    }
    let entries = old
        .iter()
        .map(|e| e.map(|(k, v)| (k.to_vec(), Some(v.to_vec()))))
        .collect::<std::result::Result<RawWrites, _>>()
        .map_err(|e| StoreError::sled("reading the assignments to upgrade", e))?;
    trees.assignments.append(&entries)?;
    trees
        .db
        .flush()
        .map_err(|e| StoreError::sled("flushing the upgraded assignments", e))?;
    old.clear()
        .map_err(|e| StoreError::sled("clearing the upgraded assignments", e))?;
    trees
        .db
        .flush()
        .map_err(|e| StoreError::sled("flushing the upgraded assignments", e))?;
    tracing::info!(
        units = entries.len(),
        "moved the stored assignments into chunks"
    );
    Ok(())
}

/// Applies one logged write to sled; a key goes into the key filter before sled has it.
/// (Assignment writes go to [`ChunkedTable::append`] instead, a batch at a time.)
fn apply_one(trees: &Trees, id: TreeId, key: &[u8], value: Option<&[u8]>) -> Result<()> {
    debug_assert!(
        id != TreeId::Assignments,
        "assignments are appended as chunks"
    );
    let tree = trees.tree(id);
    match value {
        Some(v) => {
            trees.filter.insert(id, key);
            tree.insert(key, v).map(|_| ())
        }
        None => tree.remove(key).map(|_| ()),
    }
    .map_err(|e| StoreError::sled("applying a batch", e))
}

/// The writer loop: take a batch, run its jobs, log it durably, apply it, answer.
///
/// Jobs that arrive while a batch is being synced form the next batch: that is the group
/// commit. When the log passes `checkpoint_bytes` the writer starts a new file and hands
/// the old generation to the checkpointer.
fn run_writer(
    shared: &Shared,
    receiver: &Receiver<Job>,
    mut wal: Wal,
    checkpoint_bytes: u64,
    checkpoints: &Sender<u64>,
) {
    let mut carried: Option<Job> = None;
    let mut mark: Option<crate::watermark::Mark> = None;
    loop {
        let first = match carried.take() {
            Some(job) => job,
            None => match receiver.recv() {
                Ok(job) => job,
                Err(_) => return,
            },
        };
        let exclusive = first.exclusive;
        let mut jobs = vec![first];
        while !exclusive && jobs.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(job) if job.exclusive => {
                    carried = Some(job);
                    break;
                }
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        if let Some(e) = shared.failure() {
            for job in jobs {
                // The store stopped after a failed commit: run the job against a throwaway
                // overlay (nothing is written) and answer with the failure.
                let reply = (job.run)(&shared.trees, &mut Writes::default());
                reply(Err(&e));
            }
            continue;
        }
        let mut writes = Writes::default();
        let replies: Vec<Reply> = jobs
            .into_iter()
            .map(|job| (job.run)(&shared.trees, &mut writes))
            .collect();
        let committed = commit(shared, &mut wal, writes);
        match &committed {
            Ok(true) => write_watermark(shared, &mut mark),
            Ok(false) => {}
            Err(e) => shared.fail(e),
        }
        for reply in replies {
            reply(committed.as_ref().map(|_| ()));
        }
        if committed.is_ok() && wal.len() >= checkpoint_bytes {
            match wal.next() {
                Ok(next) => {
                    let _ = checkpoints.send(wal.generation());
                    wal = next;
                }
                // The old file stays in use; the next batch tries again.
                Err(e) => tracing::warn!(error = %e, "cannot start a new write-ahead log file"),
            }
        }
    }
}

/// Logs one batch's writes durably, then applies them to sled; `Ok(false)` if the batch
/// wrote nothing (so nothing was logged).
fn commit(shared: &Shared, wal: &mut Wal, writes: Writes) -> Result<bool> {
    if writes.nothing_to_store() {
        return Ok(false);
    }
    let per_tree: Vec<(TreeId, RawWrites)> = writes.encode_per_tree();
    wal.append(&per_tree)?;
    // A failure from here on leaves a logged batch half applied: the store stops, and the
    // next open replays the whole batch from the log.
    for (tree, entries) in &per_tree {
        if *tree == TreeId::Assignments {
            shared.trees.assignments.append(entries)?;
            continue;
        }
        for (key, value) in entries {
            apply_one(&shared.trees, *tree, key, value.as_deref())?;
        }
    }
    if per_tree
        .iter()
        .any(|(tree, _)| matches!(tree, TreeId::State | TreeId::Periods))
    {
        shared.periods.clear();
    }
    Ok(true)
}

/// Writes the audit chain's head, now durable in the log, as the watermark.
fn write_watermark(shared: &Shared, mark: &mut Option<crate::watermark::Mark>) {
    if let Ok(Some(head)) = audit_head(&shared.trees) {
        if let Err(e) = crate::watermark::Mark::write_kept(mark, &shared.dir, &head) {
            tracing::warn!(error = %e, "cannot write the audit watermark");
        }
    }
}

/// The checkpointer loop: for each finished log generation, flush sled (which then holds
/// every write of that file durably) and delete the file.
fn run_checkpointer(shared: &Shared, generations: &Receiver<u64>) {
    while let Ok(mut generation) = generations.recv() {
        while let Ok(newer) = generations.try_recv() {
            generation = newer;
        }
        let checkpointed = shared
            .trees
            .db
            .flush()
            .map_err(|e| StoreError::sled("flushing a checkpoint", e))
            .and_then(|_| crate::wal::remove_through(&shared.dir, generation));
        if let Err(e) = checkpointed {
            // The log files stay, so nothing is lost; they are replayed at the next open.
            tracing::warn!(error = %e, "a checkpoint failed; the write-ahead log keeps growing");
        }
    }
}
