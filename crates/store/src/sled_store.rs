//! `SledStore`: the store on sled 0.34, with one writer thread doing group commit.
//!
//! Callers of write operations send a job to the writer and block on its answer. The writer
//! takes up to [`MAX_BATCH`] pending jobs, runs each one against an overlay of the batch so
//! far (an `Err` drops that job's writes only), applies the batch's writes in one multi-tree
//! sled transaction, flushes once, and only then answers. Reads run on the caller's thread;
//! if a table they read has writes from a batch that is not flushed yet, they wait for the
//! flush, so an unflushed write is never served.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Condvar, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use crate::error::{Result, StoreError};
use crate::kv::{atomically, get_as, Entries, Scan, Source, Tx, Writes};
use crate::ops;
use crate::tree::TreeId;
use crate::OutcomeIter;

/// The most jobs one group commit takes (a batch call such as `record_outcomes` is one job).
pub const MAX_BATCH: usize = 256;

/// sled's page cache unless the caller asks for another size: 256 MiB (sled's default is 1 GiB).
pub const DEFAULT_CACHE_BYTES: u64 = 256 << 20;

/// The schema version this build writes and reads.
///
/// 2: the audit chain is stored in blocks of one batch's records (1 stored one per key).
const SCHEMA_VERSION: u64 = 2;

/// The meta key of the schema version.
const SCHEMA_KEY: &[u8] = b"schema";

/// The store's sled trees, indexed by [`TreeId`].
struct Trees {
    db: sled::Db,
    trees: Vec<sled::Tree>,
}

impl Trees {
    fn tree(&self, id: TreeId) -> &sled::Tree {
        &self.trees[id.index()]
    }
}

impl Source for Trees {
    fn get(&self, tree: TreeId, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.tree(tree)
            .get(key)
            .map(|v| v.map(|v| v.to_vec()))
            .map_err(|e| StoreError::sled("reading a record", e))
    }
}

impl Scan for Trees {
    fn scan_from(&self, tree: TreeId, prefix: &[u8], start: &[u8]) -> Entries<'_> {
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

/// What the writer and the readers share.
struct Shared {
    /// The data directory, where the flusher keeps the audit watermark.
    dir: PathBuf,
    trees: Trees,
    /// Per table, the number of the last batch that wrote to it (set before the batch commits).
    applied: Vec<AtomicU64>,
    /// The number of the last batch that was flushed.
    flushed: AtomicU64,
    flush_lock: Mutex<()>,
    flushed_cv: Condvar,
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

    /// Records a failure of the store itself and wakes every waiting reader.
    fn fail(&self, e: &StoreError) {
        tracing::error!(error = %e, "a group commit failed; the store refuses further writes");
        *self.failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.for_batch());
        let _guard = self.flush_lock.lock().unwrap_or_else(|p| p.into_inner());
        self.flushed_cv.notify_all();
    }

    /// The number of the last batch that wrote to one of `trees` (0 if none did).
    fn last_write(&self, trees: &[TreeId]) -> u64 {
        trees
            .iter()
            .map(|t| self.applied[t.index()].load(Ordering::SeqCst))
            .max()
            .unwrap_or(0)
    }

    /// Whether every batch that wrote to one of `trees` is flushed (an error once the store failed).
    fn is_durable(&self, trees: &[TreeId]) -> Result<bool> {
        if let Some(e) = self.failure() {
            return Err(e);
        }
        Ok(self.flushed.load(Ordering::SeqCst) >= self.last_write(trees))
    }

    /// Blocks until every batch that wrote to one of `trees` is flushed.
    fn wait_durable(&self, trees: &[TreeId]) -> Result<()> {
        let needed = self.last_write(trees);
        if self.flushed.load(Ordering::SeqCst) >= needed {
            return Ok(());
        }
        let mut guard = self.flush_lock.lock().unwrap_or_else(|p| p.into_inner());
        while self.flushed.load(Ordering::SeqCst) < needed {
            if let Some(e) = self.failure() {
                return Err(e);
            }
            guard = self
                .flushed_cv
                .wait(guard)
                .unwrap_or_else(|p| p.into_inner());
        }
        Ok(())
    }
}

/// The store on a sled data directory. See the crate docs for durability and open errors.
pub struct SledStore {
    shared: std::sync::Arc<Shared>,
    sender: RwLock<Option<Sender<Job>>>,
    /// The writer, then the flusher: joined in that order on close.
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
fn open_db(path: &Path, cache_bytes: u64) -> Result<sled::Db> {
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
        let trees = Trees { db, trees };
        check_schema(&trees)?;
        // An unreadable head is left to `verify()`, which names it.
        if let Ok(head) = audit_head(&trees) {
            crate::watermark::check(&path, head.as_ref())?;
        }
        let shared = std::sync::Arc::new(Shared {
            dir: path.clone(),
            trees,
            applied: TreeId::ALL.iter().map(|_| AtomicU64::new(0)).collect(),
            flushed: AtomicU64::new(0),
            flush_lock: Mutex::new(()),
            flushed_cv: Condvar::new(),
            failure: Mutex::new(None),
        });
        let (sender, receiver) = mpsc::channel();
        let (to_flusher, flusher_inbox) = mpsc::channel();
        let spawn_error = |e| StoreError::Io {
            context: "starting the store's threads",
            source: std::sync::Arc::new(e),
        };
        let for_flusher = std::sync::Arc::clone(&shared);
        let flusher = std::thread::Builder::new()
            .name("liftlab-store-flusher".to_string())
            .spawn(move || run_flusher(&for_flusher, &flusher_inbox))
            .map_err(spawn_error)?;
        let for_writer = std::sync::Arc::clone(&shared);
        let writer = std::thread::Builder::new()
            .name("liftlab-store-writer".to_string())
            .spawn(move || run_writer(&for_writer, &receiver, &to_flusher))
            .map_err(spawn_error)?;
        Ok(SledStore {
            shared,
            sender: RwLock::new(Some(sender)),
            threads: Mutex::new(vec![writer, flusher]),
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

    pub(crate) fn read<R>(
        &self,
        trees: &[TreeId],
        f: impl FnOnce(&dyn Scan) -> Result<R>,
    ) -> Result<R> {
        let out = f(&self.shared.trees)?;
        self.shared.wait_durable(trees)?;
        Ok(out)
    }

    /// A read that never waits: a value some unflushed batch wrote reads as `None`.
    pub(crate) fn read_if_durable<R>(
        &self,
        trees: &[TreeId],
        f: impl FnOnce(&dyn Scan) -> Result<Option<R>>,
    ) -> Result<Option<R>> {
        let out = f(&self.shared.trees)?;
        if out.is_some() && !self.shared.is_durable(trees)? {
            return Ok(None);
        }
        Ok(out)
    }

    /// A read that neither waits nor checks durability (see `Store::current_period_for_decision`).
    pub(crate) fn peek<R>(&self, f: impl FnOnce(&dyn Scan) -> Result<R>) -> Result<R> {
        if let Some(e) = self.shared.failure() {
            return Err(e);
        }
        f(&self.shared.trees)
    }

    /// A read whose `None` needs no durability wait (nothing was served).
    pub(crate) fn read_opt<R>(
        &self,
        trees: &[TreeId],
        f: impl FnOnce(&dyn Scan) -> Result<Option<R>>,
    ) -> Result<Option<R>> {
        let out = f(&self.shared.trees)?;
        if out.is_some() {
            self.shared.wait_durable(trees)?;
        }
        Ok(out)
    }

    pub(crate) fn outcome_iter(&self, experiment: &str) -> Result<OutcomeIter> {
        let trees = &self.shared.trees;
        ops::require_experiment(trees, experiment)?;
        self.shared.wait_durable(&[TreeId::Outcomes])?;
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
        // The writer stops once the queue is drained; dropping its end of the flusher's
        // channel then stops the flusher after the last flush.
        for handle in threads {
            if handle.join().is_err() {
                return Err(StoreError::Internal("a store thread panicked".to_string()));
            }
        }
        match self.shared.failure() {
            Some(e) => Err(e),
            None => self
                .shared
                .trees
                .db
                .flush()
                .map(|_| ())
                .map_err(|e| StoreError::sled("flushing on close", e)),
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
        Some(other) => Err(StoreError::corrupt(
            TreeId::Meta.name(),
            SCHEMA_KEY,
            format!("schema version {other} is not supported (this build reads {SCHEMA_VERSION})"),
        )),
        None => {
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

/// One committed batch on its way to the flusher.
struct Committed {
    batch_no: u64,
    /// Whether the batch's transaction applied (a failed one is answered with the error).
    applied: std::result::Result<(), StoreError>,
    replies: Vec<Reply>,
}

/// The writer loop: take a batch, run its jobs, commit it in one transaction, pass it on.
///
/// The flush and the answers happen on the flusher thread, so the writer prepares and
/// commits the next batch while the disk syncs the previous one.
fn run_writer(shared: &Shared, receiver: &Receiver<Job>, flusher: &Sender<Committed>) {
    let mut carried: Option<Job> = None;
    let mut batch_no = 0u64;
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
                // The store stopped after a failed commit or flush: run the job against a
                // throwaway overlay (nothing is written) and answer with the failure.
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
        batch_no += 1;
        let applied = commit(shared, batch_no, writes);
        if let Err(e) = &applied {
            shared.fail(e);
        }
        let committed = Committed {
            batch_no,
            applied,
            replies,
        };
        if let Err(mpsc::SendError(lost)) = flusher.send(committed) {
            // The flusher is gone (it only stops after the writer); answer here.
            for reply in lost.replies {
                reply(Err(&StoreError::Closed));
            }
        }
    }
}

/// The flusher loop: one flush for every batch committed since the last one, then the answers.
fn run_flusher(shared: &Shared, receiver: &Receiver<Committed>) {
    let mut mark: Option<crate::watermark::Mark> = None;
    while let Ok(first) = receiver.recv() {
        let mut group = vec![first];
        while let Ok(more) = receiver.try_recv() {
            group.push(more);
        }
        let last = group.last().map_or(0, |c| c.batch_no);
        // The head as of now is covered by the flush below, so the watermark never leads the data.
        let head = audit_head(&shared.trees);
        let flushed = match shared.failure() {
            Some(e) => Err(e),
            None => shared
                .trees
                .db
                .flush()
                .map(|_| ())
                .map_err(|e| StoreError::sled("flushing a batch", e)),
        };
        match &flushed {
            Ok(()) => {
                if let Ok(Some(head)) = head {
                    if let Err(e) =
                        crate::watermark::Mark::write_kept(&mut mark, &shared.dir, &head)
                    {
                        tracing::warn!(error = %e, "cannot write the audit watermark");
                    }
                }
                let _guard = shared.flush_lock.lock().unwrap_or_else(|p| p.into_inner());
                shared.flushed.store(last, Ordering::SeqCst);
                shared.flushed_cv.notify_all();
            }
            Err(e) => shared.fail(e),
        }
        for committed in group {
            let status = match (&committed.applied, &flushed) {
                (Err(e), _) | (Ok(()), Err(e)) => Err(e),
                (Ok(()), Ok(())) => Ok(()),
            };
            for reply in committed.replies {
                reply(status);
            }
        }
    }
}

/// Applies one batch's writes in one multi-tree transaction.
fn commit(shared: &Shared, batch_no: u64, writes: Writes) -> Result<()> {
    if !writes.nothing_to_store() {
        for tree in writes.dirty_trees() {
            shared.applied[tree.index()].store(batch_no, Ordering::SeqCst);
        }
        let (ids, per_tree): (Vec<TreeId>, Vec<_>) = writes.encode_per_tree().into_iter().unzip();
        let trees: Vec<sled::Tree> = ids
            .iter()
            .map(|id| shared.trees.tree(*id).clone())
            .collect();
        let applied: std::result::Result<(), TransactionError<()>> =
            trees.as_slice().transaction(|views| {
                for (view, entries) in views.iter().zip(&per_tree) {
                    for (key, value) in entries {
                        match value {
                            Some(v) => view.insert(key.as_slice(), v.as_slice())?,
                            None => view.remove(key.as_slice())?,
                        };
                    }
                }
                Ok::<(), ConflictableTransactionError<()>>(())
            });
        applied.map_err(|e| match e {
            TransactionError::Storage(e) => StoreError::sled("committing a batch", e),
            TransactionError::Abort(()) => {
                StoreError::Internal("a batch transaction aborted".to_string())
            }
        })?;
    }
    Ok(())
}
