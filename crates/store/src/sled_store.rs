//! `SledStore`: the log in `log/` and the views in a sled tree in `views/`, with one writer thread doing group commit.
//!
//! Callers of write operations send a job to the writer and block on its answer (or leave a
//! callback). The writer takes up to [`MAX_BATCH`] pending operations, runs each one against
//! the views overlaid with the batch so far (an `Err` drops that operation alone), appends
//! all their records to the log with one write and one sync, applies their view changes and
//! the mark to sled in one atomic batch, and only then answers. sled therefore holds durable
//! state only, and reads run on the caller's thread without ever waiting.

use std::any::Any;
use std::panic::catch_unwind;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::engine::{self, Core, DirLog};
use crate::error::{Result, StoreError};
use crate::log::{Mark, Writer};
use crate::records::{AuditRecord, RebuildMode, RebuildReport, VerifyReport};
use crate::views::{self, Op, SledKv, SpecCache};

/// The most operations one group commit takes.
pub const MAX_BATCH: usize = 256;

/// sled's page cache unless the caller asks for another size: 256 MiB (sled's default is 1 GiB).
pub const DEFAULT_CACHE_BYTES: u64 = 256 << 20;

/// sled's segment size: smaller than its default of 512 KiB, which keeps the views about
/// 15 % smaller on disk (see `examples/disk_per_unit.rs`). sled refuses to open a database
/// with another segment size than it was created with, so this never changes.
const SLED_SEGMENT_BYTES: usize = 128 << 10;

use crate::engine::Answers;

/// One message to the writer.
enum Job {
    /// Operations committed together; `done` gets one answer per operation.
    Ops(Vec<Op>, Box<dyn FnOnce(Answers) + Send>),
    /// Rebuild the views from the log, between batches.
    Rebuild(RebuildMode, Box<dyn FnOnce(Result<RebuildReport>) + Send>),
}

/// The writer's own state.
struct Writing {
    log: Writer,
    head: Mark,
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
                .segment_size(SLED_SEGMENT_BYTES)
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

/// The store on a data directory: see the module documentation.
pub struct SledStore {
    core: Arc<Core>,
    db: sled::Db,
    sender: RwLock<Option<Sender<Job>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    failure: Arc<Mutex<Option<StoreError>>>,
    path: PathBuf,
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SledStore {
    /// Opens (or creates) the store in the directory `path`, with a page cache of
    /// [`DEFAULT_CACHE_BYTES`].
    ///
    /// Errors: [`StoreError::Locked`] if another process or store holds the directory,
    /// [`StoreError::Open`] if it cannot be created or read, or holds the layout of an older
    /// liftlab (run `liftlab migrate --data DIR`), [`StoreError::Corrupt`] if the log does not
    /// read before its end.
    pub fn open(path: impl AsRef<Path>) -> Result<SledStore> {
        SledStore::open_with_cache(path, DEFAULT_CACHE_BYTES)
    }

    /// [`SledStore::open`] with sled's page cache bounded to `cache_bytes`.
    pub fn open_with_cache(path: impl AsRef<Path>, cache_bytes: u64) -> Result<SledStore> {
        SledStore::open_with(path, cache_bytes, crate::log::SEGMENT_BYTES)
    }

    /// [`SledStore::open_with_cache`], starting a new log segment whenever the current one
    /// passes `segment_bytes` (tests use a small size to exercise many segments).
    pub fn open_with(
        path: impl AsRef<Path>,
        cache_bytes: u64,
        segment_bytes: u64,
    ) -> Result<SledStore> {
        let path = path.as_ref().to_path_buf();
        if path.exists() && !path.is_dir() {
            return Err(StoreError::Open {
                path,
                reason: "it exists and is not a directory".to_string(),
            });
        }
        if path.join("db").exists() || path.join("conf").exists() {
            return Err(StoreError::Open {
                path: path.clone(),
                reason: format!(
                    "it holds the data of an older liftlab (one sled database with a write-ahead \
                     log); convert it once with `liftlab migrate --data {}`",
                    path.display()
                ),
            });
        }
        std::fs::create_dir_all(&path).map_err(|e| StoreError::Open {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let db = open_db(&path.join("views"), cache_bytes).map_err(|e| match e {
            StoreError::Locked { .. } => StoreError::Locked { path: path.clone() },
            other => other,
        })?;
        let tree = db.open_tree("views").map_err(|e| open_error(&path, e))?;
        let core = Arc::new(Core {
            kv: Box::new(SledKv(tree)),
            log: Box::new(DirLog(path.join("log"))),
            specs: SpecCache::default(),
        });
        let mut head = views::mark(core.kv())?;
        let (mut log, tail) = Writer::open(&path.join("log"), &head)?;
        log.roll_at = segment_bytes;
        core.replay(&mut head, &tail)?;
        let mut writing = Writing { log, head };
        let (sender, receiver) = mpsc::channel();
        let failure = Arc::new(Mutex::new(None));
        let for_writer = Arc::clone(&core);
        let failed = Arc::clone(&failure);
        let writer = std::thread::Builder::new()
            .name("liftlab-store-writer".to_string())
            .spawn(move || run_writer(&for_writer, &mut writing, &receiver, &failed))
            .map_err(|e| StoreError::Io {
                context: "starting the store's writer",
                source: Arc::new(e),
            })?;
        Ok(SledStore {
            core,
            db,
            sender: RwLock::new(Some(sender)),
            writer: Mutex::new(Some(writer)),
            failure,
            path,
        })
    }

    /// Walks the log of the data directory `path` without opening the store (so also when
    /// the store refuses to open, or another process holds it), folding it into fresh
    /// views in memory, and names the first bad record.
    ///
    /// The views' mark, when they can be read, must be reached by the log (a log cut short
    /// behind it lost acknowledged records).
    pub fn verify_dir(path: impl AsRef<Path>) -> Result<VerifyReport> {
        let path = path.as_ref();
        let views = path.join("views");
        let head = if views.is_dir() {
            open_db(&views, 16 << 20)
                .and_then(|db| {
                    let tree = db.open_tree("views").map_err(|e| open_error(path, e))?;
                    views::mark(&SledKv(tree))
                })
                .ok()
        } else {
            None
        };
        let records = crate::log::Reader::open(&path.join("log"), 0, u64::MAX)?;
        engine::verify_records(records, head.as_ref())
    }

    /// The data directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn core(&self) -> &Core {
        &self.core
    }

    fn failure(&self) -> Option<StoreError> {
        self.failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(StoreError::for_batch)
    }

    fn send(&self, job: Job) {
        let sender = self.sender.read().unwrap_or_else(|p| p.into_inner());
        if let Some(sender) = sender.as_ref() {
            // A failed send drops the job, and with it its callback: the caller sees "closed".
            let _ = sender.send(job);
        }
    }

    pub(crate) fn submit_then(&self, ops: Vec<Op>, done: Box<dyn FnOnce(Answers) + Send>) {
        self.send(Job::Ops(ops, done));
    }

    pub(crate) fn submit(&self, ops: Vec<Op>) -> Answers {
        let (tx, rx) = mpsc::sync_channel(1);
        self.submit_then(
            ops,
            Box::new(move |a| {
                let _ = tx.send(a);
            }),
        );
        rx.recv().map_err(|_| StoreError::Closed)?
    }

    pub(crate) fn rebuild_now(&self, mode: RebuildMode) -> Result<RebuildReport> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.send(Job::Rebuild(
            mode,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        ));
        rx.recv().map_err(|_| StoreError::Closed)?
    }

    /// Imports the records of an older layout's audit chain into this (new, empty) store.
    pub fn import(&self, records: Vec<AuditRecord>) -> Result<u64> {
        let n = records.len() as u64;
        for chunk in crate::import::in_fold_order(records).chunks(1024) {
            engine::one(self.submit(vec![Op::Import(chunk.to_vec())]))?;
        }
        Ok(n)
    }

    pub(crate) fn check_open(&self) -> Result<()> {
        match self.failure() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    pub(crate) fn flush_now(&self) -> Result<()> {
        // An empty job is answered after everything queued before it.
        engine::one(self.submit(vec![Op::Import(Vec::new())])).map(|_| ())?;
        self.db
            .flush()
            .map(|_| ())
            .map_err(|e| StoreError::sled("flushing", e))
    }

    pub(crate) fn shut_down(&self) -> Result<()> {
        drop(
            self.sender
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .take(),
        );
        let writer = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(handle) = writer {
            if handle.join().is_err() {
                return Err(StoreError::Internal(
                    "the store's writer panicked".to_string(),
                ));
            }
        }
        if let Some(e) = self.failure() {
            return Err(e);
        }
        self.db
            .flush()
            .map(|_| ())
            .map_err(|e| StoreError::sled("flushing on close", e))
    }
}

/// The writer: group commit until every sender is gone.
fn run_writer(
    core: &Core,
    w: &mut Writing,
    jobs: &Receiver<Job>,
    failure: &Mutex<Option<StoreError>>,
) {
    let mut next: Option<Job> = None;
    loop {
        let first = match next.take() {
            Some(j) => j,
            None => match jobs.recv() {
                Ok(j) => j,
                Err(_) => return,
            },
        };
        let failed = failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(StoreError::for_batch);
        match first {
            Job::Rebuild(mode, done) => {
                done(match failed {
                    Some(e) => Err(e),
                    None => crate::rebuild::rebuild(core, &w.head, mode),
                });
            }
            Job::Ops(ops, done) => {
                let mut batch = vec![(ops, done)];
                let mut count = batch[0].0.len();
                while count < MAX_BATCH {
                    match jobs.try_recv() {
                        Ok(Job::Ops(ops, done)) => {
                            count += ops.len();
                            batch.push((ops, done));
                        }
                        Ok(other) => {
                            next = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                let sizes: Vec<usize> = batch.iter().map(|(o, _)| o.len()).collect();
                let (ops, dones): (Vec<Vec<Op>>, Vec<_>) = batch.into_iter().unzip();
                let answers = match failed {
                    Some(e) => Err(e),
                    None => {
                        let log = &mut w.log;
                        let result = core.commit(
                            &mut w.head,
                            &mut |records| log.append(records),
                            ops.into_iter().flatten().collect(),
                        );
                        if let Err(e) = &result {
                            // A failed append changed nothing; a failed apply left the views
                            // behind the log, so nothing more is accepted until reopened.
                            if !matches!(
                                e,
                                StoreError::Io {
                                    context: "appending to the log",
                                    ..
                                }
                            ) {
                                *failure.lock().unwrap_or_else(|p| p.into_inner()) =
                                    Some(e.for_batch());
                            }
                        }
                        result
                    }
                };
                for (answer, done) in engine::split(answers, &sizes).into_iter().zip(dones) {
                    done(answer);
                }
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
