//! liftlab-store-pg: [`PgStore`], the `liftlab_store::Store` trait on PostgreSQL, for several liftlab replicas sharing one database.
//!
//! # Design
//!
//! - **Schema** by numbered migrations (`migrations/NNNN_*.sql`), applied at [`PgStore::open`]
//!   in one transaction and recorded in `schema_migrations`; replicas starting together take
//!   turns on a table lock. Every table is keyed by experiment first, so Citus can distribute
//!   them all by `experiment`.
//! - **Writes**: one transaction per call or per batch. Inside it, [`tx::Tx`] answers the
//!   domain's `Views` (rows read once, locked where a replica could race), the domain's pure
//!   step decides, and the effects are written at the end in a few multi-row statements. A
//!   serialization failure or deadlock (SQLSTATE 40001, 40P01), or a row that another
//!   replica inserted first, reruns the whole transaction (at most [`MAX_ATTEMPTS`] times).
//!   A call returns only after `COMMIT`.
//! - **Agreement between replicas**: assignments are first-write-wins per (experiment, unit)
//!   (`INSERT ... ON CONFLICT DO NOTHING`; the loser reruns and answers the winner's row, so
//!   both replicas give the same arm and `assignment_id`); outcomes are idempotent per
//!   (experiment, unit, event_id); Thompson periods are opened under the experiment row's
//!   `FOR UPDATE` lock; the audit chain is one chain, extended under the lock of its head row
//!   at the end of each transaction.
//! - **No hot row for aggregates**: each transaction inserts one delta row per aggregate key,
//!   per arm's counters and per assignment count it changed; reads merge base + deltas in one
//!   statement; a background compactor (every [`COMPACT_EVERY`], one per experiment at a
//!   time across replicas) folds the deltas into the base rows. So a read merges at most the
//!   delta rows of the transactions committed since the last compaction, about one
//!   compaction period's worth: with batches of 500 outcomes at the measured rates, a few
//!   dozen rows per key.
//! - **Group commit for the hot path**: [`Store::record_assignment_then`] queues the
//!   assignment for a few writer threads, each of which takes every queued assignment (up to
//!   [`MAX_BATCH`]) into one transaction, so one commit (one WAL flush) acknowledges many.
//!
//! Aggregate deltas are ordered lists of the domain's `AggDelta`s `(old, new, propensity)`,
//! not merged moments: a unit whose value changes removes its old value, and `Moments` has
//! no exact subtraction. Two transactions that change the same unit take its row lock in
//! turn, so the later one's delta rows get the higher ids and are applied after.

mod audit;
mod error;
mod import;
mod read;
mod rebuild;
mod schema;
mod tx;
mod write;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use liftlab_domain::thompson::BanditState;
use liftlab_domain::{
    AggKey, AllocationPeriod, Assignment, ExperimentSpec, ExperimentVersion, MetricAggregate,
    Millis, Outcome, Transition, UnitRow,
};
use liftlab_store::{
    ArmCounters, AssignmentCount, AuditRecord, Done, DriftMonitor, Epoch, OutcomeIter, RebuildMode,
    RebuildReport, Recorded, Result, Store, StoreError, VerifyReport, MAX_AUDIT_PAGE,
};
use postgres::{Client, NoTls};

pub use crate::import::ImportReport;

use crate::error::{io, Fail};
use crate::tx::Tx;

/// How often a transaction runs before its serialization failures are reported.
pub const MAX_ATTEMPTS: u32 = 50;

/// The most assignments one group commit of the hot path takes.
pub const MAX_BATCH: usize = 256;

/// How often the compactor folds delta rows.
pub const COMPACT_EVERY: Duration = Duration::from_secs(1);

/// How long a replica's server trusts its cached copy of an experiment (current version,
/// status, epoch): a change made through another replica is seen within this time. The
/// database itself never accepts a unit into an experiment that is not running, whatever a
/// replica's cache says.
pub const LIVE_TTL: Duration = Duration::from_secs(1);

/// The most connections one store (one replica) opens; callers beyond wait for one.
pub const MAX_CONNECTIONS: usize = 16;

/// Writer threads of the hot path (each holds one connection while it writes).
const WRITERS: usize = 4;

/// Outcomes read per query of [`Store::outcomes`].
const OUTCOME_PAGE: i64 = 10_000;

/// liftlab's store on PostgreSQL (or an engine that speaks its protocol).
pub struct PgStore {
    inner: Arc<Inner>,
    hop: Mutex<Sender<HopJob>>,
    jobs: Mutex<Option<Sender<Job>>>,
    /// The hot path's writer threads, joined by `close` once they drained the queue.
    writers: Mutex<Vec<std::thread::JoinHandle<()>>>,
    stop_compactor: Mutex<Option<Sender<()>>>,
}

struct Inner {
    url: String,
    pool: Mutex<Pool>,
    /// Signalled when a connection is given back (or one fewer is open).
    freed: Condvar,
    closed: AtomicBool,
    /// The period in force per experiment, for decisions, read at most [`LIVE_TTL`] ago (and
    /// dropped when this process opens a new one).
    periods: Mutex<HashMap<String, (AllocationPeriod, Instant)>>,
    /// Stored assignments seen by this process, which never change (first write wins).
    known: Mutex<Known>,
}

/// Assignments by (experiment, unit) and by (experiment, task): facts once stored, so they
/// are kept without expiry (up to [`KNOWN_MAX`] each, then started over). What is not found
/// is never kept: another replica may store it next.
#[derive(Default)]
struct Known {
    by_unit: HashMap<(String, String), Assignment>,
    by_task: HashMap<(String, String), Assignment>,
}

/// The most assignments [`Known`] keeps per map.
const KNOWN_MAX: usize = 200_000;

impl Known {
    fn put(map: &mut HashMap<(String, String), Assignment>, key: (String, String), a: &Assignment) {
        if map.len() >= KNOWN_MAX {
            map.clear();
        }
        map.insert(key, a.clone());
    }

    /// A stored assignment: its unit, and its own task id, belong to it.
    fn stored(&mut self, a: &Assignment) {
        let exp = a.experiment.clone();
        Known::put(&mut self.by_unit, (exp.clone(), a.unit_id.clone()), a);
        Known::put(&mut self.by_task, (exp, a.task_id.clone()), a);
    }
}

/// The connections of a store: idle ones, and how many exist (idle or in use).
struct Pool {
    idle: Vec<Client>,
    open: usize,
}

/// A queued hot-path assignment and who waits for it.
struct Job {
    assignment: Assignment,
    done: Done<Assignment>,
}

/// A pooled connection, back to the pool when dropped (unless it broke).
struct Conn<'a> {
    inner: &'a Inner,
    client: Option<Client>,
}

impl Conn<'_> {
    fn get(&mut self) -> &mut Client {
        self.client.as_mut().expect("present until dropped")
    }
}

impl Drop for Conn<'_> {
    fn drop(&mut self) {
        let mut pool = self.inner.pool.lock().unwrap_or_else(|p| p.into_inner());
        match self.client.take() {
            Some(client) if !client.is_closed() => pool.idle.push(client),
            _ => pool.open -= 1,
        }
        drop(pool);
        self.inner.freed.notify_one();
    }
}

impl Inner {
    /// A connection: an idle one, a new one while fewer than [`MAX_CONNECTIONS`] are open,
    /// or the next one another thread gives back.
    fn conn(&self) -> Result<Conn<'_>> {
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(client) = pool.idle.pop() {
                return Ok(Conn {
                    inner: self,
                    client: Some(client),
                });
            }
            if pool.open < MAX_CONNECTIONS {
                pool.open += 1;
                drop(pool);
                return match connect(&self.url) {
                    Ok(client) => Ok(Conn {
                        inner: self,
                        client: Some(client),
                    }),
                    Err(e) => {
                        self.pool.lock().unwrap_or_else(|p| p.into_inner()).open -= 1;
                        self.freed.notify_one();
                        Err(e)
                    }
                };
            }
            pool = self.freed.wait(pool).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// A unit's stored assignment, from [`Known`] when this process has seen it.
    fn assignment(&self, experiment: &str, unit_id: &str) -> Result<Option<Assignment>> {
        let key = (experiment.to_string(), unit_id.to_string());
        if let Some(a) = self.known().by_unit.get(&key) {
            return Ok(Some(a.clone()));
        }
        let found = self.read(|c| read::assignment(c, experiment, unit_id))?;
        if let Some(a) = &found {
            Known::put(&mut self.known().by_unit, key, a);
        }
        Ok(found)
    }

    fn known(&self) -> std::sync::MutexGuard<'_, Known> {
        self.known.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `op` in a transaction until it commits, is refused, or fails for good.
    fn write<R>(&self, op: impl Fn(&Tx<'_>) -> Result<R, Fail>) -> Result<R> {
        if self.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        self.run(op)
    }

    /// [`Inner::write`] even after `close` (for assignments queued before it).
    fn run<R>(&self, op: impl Fn(&Tx<'_>) -> Result<R, Fail>) -> Result<R> {
        let mut last = String::new();
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 {
                // A short pause that grows, so racing replicas do not collide again at once.
                std::thread::sleep(Duration::from_millis(u64::from(attempt.min(20))));
            }
            let mut conn = self.conn()?;
            let t = conn
                .get()
                .transaction()
                .map_err(|e| io("starting a transaction", e))?;
            let tx = Tx::new(t);
            let outcome = op(&tx).and_then(|r| tx.finish().map(|opened| (r, opened)));
            match outcome {
                Ok((r, opened)) => {
                    if !opened.is_empty() {
                        let mut periods = self.periods.lock().unwrap_or_else(|p| p.into_inner());
                        for exp in opened {
                            periods.remove(&exp);
                        }
                    }
                    return Ok(r);
                }
                Err(Fail::Store(e)) => return Err(e),
                Err(Fail::Retry(why)) => {
                    tracing::debug!(attempt, %why, "retrying a transaction");
                    last = why;
                }
            }
        }
        Err(StoreError::Io {
            context: "writing",
            source: Arc::new(std::io::Error::other(format!(
                "the transaction was retried {MAX_ATTEMPTS} times: {last}"
            ))),
        })
    }

    /// One transaction for many items; a refused item is answered alone and writes nothing.
    fn write_many<T: Clone, R>(
        &self,
        items: &[T],
        prepare: impl Fn(&Tx<'_>) -> Result<(), Fail>,
        op: impl Fn(&Tx<'_>, T) -> Result<R, Fail>,
    ) -> Result<Vec<Result<R>>> {
        if self.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        self.run_many(items, prepare, op)
    }

    fn run_many<T: Clone, R>(
        &self,
        items: &[T],
        prepare: impl Fn(&Tx<'_>) -> Result<(), Fail>,
        op: impl Fn(&Tx<'_>, T) -> Result<R, Fail>,
    ) -> Result<Vec<Result<R>>> {
        self.run(|tx| {
            prepare(tx)?;
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                match op(tx, item.clone()) {
                    Ok(r) => out.push(Ok(r)),
                    Err(Fail::Store(e)) if !e.is_internal() => out.push(Err(e)),
                    Err(e) => return Err(e),
                }
            }
            Ok(out)
        })
    }

    fn read<R>(&self, f: impl FnOnce(&mut Client) -> Result<R>) -> Result<R> {
        let mut conn = self.conn()?;
        f(conn.get())
    }
}

/// A job for the hop threads.
type HopJob = Box<dyn FnOnce() + Send>;

/// Threads that run database calls for callers inside an async task, where the sync
/// `postgres` client (which drives a runtime of its own) cannot block. Only the two reads the
/// server makes from its async workers need them (`assignment_if_durable` and
/// `current_period_for_decision`, on a cache miss); every other call comes from a plain or a
/// blocking-pool thread (`web::block`), where the client may block.
const HOP_THREADS: usize = 4;

fn hop_thread(queue: &Mutex<Receiver<HopJob>>) {
    loop {
        let job = match queue.lock().unwrap_or_else(|p| p.into_inner()).recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        job();
    }
}

fn connect(url: &str) -> Result<Client> {
    Client::connect(url, NoTls).map_err(|e| io("connecting to PostgreSQL", e))
}

/// A copy of a failure of the store, for every caller of a failed group commit.
fn copy_error(e: &StoreError) -> StoreError {
    match e {
        StoreError::Io { context, source } => StoreError::Io {
            context,
            source: Arc::clone(source),
        },
        StoreError::Corrupt { tree, key, reason } => StoreError::Corrupt {
            tree,
            key: key.clone(),
            reason: reason.clone(),
        },
        StoreError::Internal(m) => StoreError::Internal(m.clone()),
        _ => StoreError::Closed,
    }
}

impl PgStore {
    /// Connects to `url` (`postgres://USER:PASSWORD@HOST:PORT/DB`), brings the schema up to
    /// date, and starts the hot path's writers and the compactor.
    pub fn open(url: &str) -> Result<PgStore> {
        let mut client = connect(url)?;
        // Replicas starting at once on a new database may race to create `schema_migrations`
        // itself (one of them then fails on the catalog's unique index): try again.
        let mut migrated = schema::migrate(&mut client);
        for _ in 0..5 {
            if migrated.is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
            migrated = schema::migrate(&mut client);
        }
        let ran = migrated.map_err(|e| match e {
            Fail::Store(e) => e,
            Fail::Retry(why) => StoreError::Io {
                context: "migrating the schema",
                source: Arc::new(std::io::Error::other(why)),
            },
        })?;
        if !ran.is_empty() {
            tracing::info!(migrations = ?ran, "schema migrated");
        }
        let inner = Arc::new(Inner {
            url: url.to_string(),
            pool: Mutex::new(Pool {
                idle: vec![client],
                open: 1,
            }),
            freed: Condvar::new(),
            closed: AtomicBool::new(false),
            periods: Mutex::new(HashMap::new()),
            known: Mutex::new(Known::default()),
        });
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        let mut writers = Vec::with_capacity(WRITERS);
        for _ in 0..WRITERS {
            let (inner, queue) = (Arc::clone(&inner), Arc::clone(&queue));
            let handle = std::thread::Builder::new()
                .name("liftlab-pg-writer".into())
                .spawn(move || writer(&inner, &queue))
                .map_err(|e| StoreError::Io {
                    context: "starting a writer thread",
                    source: Arc::new(e),
                })?;
            writers.push(handle);
        }
        let (stop, stopped) = mpsc::channel::<()>();
        let for_compactor = Arc::clone(&inner);
        std::thread::Builder::new()
            .name("liftlab-pg-compactor".into())
            .spawn(move || compactor(&for_compactor, &stopped))
            .map_err(|e| StoreError::Io {
                context: "starting the compactor",
                source: Arc::new(e),
            })?;
        let (hop, hop_queue) = mpsc::channel::<HopJob>();
        let hop_queue = Arc::new(Mutex::new(hop_queue));
        for _ in 0..HOP_THREADS {
            let queue = Arc::clone(&hop_queue);
            std::thread::Builder::new()
                .name("liftlab-pg-hop".into())
                .spawn(move || hop_thread(&queue))
                .map_err(|e| StoreError::Io {
                    context: "starting a hop thread",
                    source: Arc::new(e),
                })?;
        }
        Ok(PgStore {
            inner,
            hop: Mutex::new(hop),
            jobs: Mutex::new(Some(jobs)),
            writers: Mutex::new(writers),
            stop_compactor: Mutex::new(Some(stop)),
        })
    }

    /// Runs `f` here, or on a hop thread when this thread is inside an async runtime.
    fn off_runtime<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<R> + Send + 'static,
    ) -> Result<R> {
        if tokio::runtime::Handle::try_current().is_err() {
            return f(&self.inner);
        }
        let (tx, rx) = mpsc::sync_channel(1);
        let inner = Arc::clone(&self.inner);
        let job: HopJob = Box::new(move || {
            let _ = tx.send(f(&inner));
        });
        let sent = self.hop.lock().unwrap_or_else(|p| p.into_inner()).send(job);
        if sent.is_err() {
            return Err(StoreError::Closed);
        }
        rx.recv()
            .unwrap_or_else(|_| Err(StoreError::Internal("a database call panicked".into())))
    }

    /// Copies another store (`liftlab migrate --from DIR`) into this database, which must
    /// hold no liftlab data yet: experiments with their history, assignments, task ids,
    /// outcomes, every derived view, and the audit chain record for record (it verifies
    /// here as it did there). One transaction: all of it or nothing.
    pub fn import(&self, src: &dyn Store) -> Result<ImportReport> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        self.inner.read(|c| import::import(c, src))
    }

    /// Folds every experiment's delta rows now (the compactor does it every [`COMPACT_EVERY`]).
    pub fn compact(&self) -> Result<()> {
        let exps = self.inner.read(read::with_deltas)?;
        for exp in exps {
            self.inner.read(|c| {
                read::compact(c, &exp).map(|_| ()).map_err(|e| match e {
                    Fail::Store(e) => e,
                    Fail::Retry(why) => StoreError::Io {
                        context: "compacting",
                        source: Arc::new(std::io::Error::other(why)),
                    },
                })
            })?;
        }
        Ok(())
    }
}

/// A hot-path writer: every assignment queued so far (up to [`MAX_BATCH`]) in one transaction.
fn writer(inner: &Inner, queue: &Mutex<Receiver<Job>>) {
    loop {
        let mut batch = Vec::new();
        {
            let queue = queue.lock().unwrap_or_else(|p| p.into_inner());
            match queue.recv() {
                Ok(job) => batch.push(job),
                Err(_) => return,
            }
            while batch.len() < MAX_BATCH {
                match queue.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
        }
        let items: Vec<Assignment> = batch.iter().map(|j| j.assignment.clone()).collect();
        let answers = inner.run_many(
            &items,
            |tx| tx.prefetch_assignments(&items),
            write::record_assignment,
        );
        match answers {
            Ok(answers) => {
                let mut known = inner.known();
                for a in answers.iter().flatten() {
                    known.stored(a);
                }
                drop(known);
                for (job, answer) in batch.into_iter().zip(answers) {
                    (job.done)(answer);
                }
            }
            Err(e) => {
                for job in batch {
                    (job.done)(Err(copy_error(&e)));
                }
            }
        }
    }
}

fn compactor(inner: &Inner, stop: &Receiver<()>) {
    loop {
        match stop.recv_timeout(COMPACT_EVERY) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        let result = inner.read(read::with_deltas).and_then(|exps| {
            for exp in exps {
                inner.read(|c| match read::compact(c, &exp) {
                    Ok(_) | Err(Fail::Retry(_)) => Ok(()),
                    Err(Fail::Store(e)) => Err(e),
                })?;
            }
            Ok(())
        });
        if let Err(e) = result {
            tracing::warn!(error = %e, "compaction failed; it runs again shortly");
        }
    }
}

/// The outcome log, read a page at a time.
struct OutcomePages {
    inner: Arc<Inner>,
    exp: String,
    after: i64,
    page: VecDeque<Outcome>,
    done: bool,
}

impl Iterator for OutcomePages {
    type Item = Result<Outcome>;

    fn next(&mut self) -> Option<Result<Outcome>> {
        if self.page.is_empty() && !self.done {
            let page = self
                .inner
                .read(|c| read::outcome_page(c, &self.exp, self.after, OUTCOME_PAGE));
            match page {
                Ok(page) => {
                    self.done = page.len() < usize::try_from(OUTCOME_PAGE).unwrap_or(0);
                    if let Some((seq, _)) = page.last() {
                        self.after = *seq;
                    }
                    self.page = page.into_iter().map(|(_, o)| o).collect();
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
        self.page.pop_front().map(Ok)
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

impl Store for PgStore {
    fn create_experiment(&self, spec: ExperimentSpec, now: Millis) -> Result<ExperimentVersion> {
        self.inner
            .write(|tx| write::create_experiment(tx, spec.clone(), now))
    }

    fn update_experiment(
        &self,
        spec: ExperimentSpec,
        expected_version: Option<u64>,
        now: Millis,
    ) -> Result<ExperimentVersion> {
        self.inner
            .write(|tx| write::update_experiment(tx, spec.clone(), expected_version, now))
    }

    fn transition(
        &self,
        key: &str,
        transition: Transition,
        reason: Option<&str>,
        now: Millis,
    ) -> Result<ExperimentVersion> {
        self.inner
            .write(|tx| write::transition(tx, key, transition, reason.map(str::to_string), now))
    }

    fn experiment(&self, key: &str) -> Result<ExperimentVersion> {
        self.inner.read(|c| read::experiment(c, key))
    }

    fn experiment_version(&self, key: &str, version: u64) -> Result<ExperimentVersion> {
        self.inner
            .read(|c| read::experiment_version(c, key, version))
    }

    fn versions(&self, key: &str) -> Result<Vec<ExperimentVersion>> {
        self.inner.read(|c| read::versions(c, key))
    }

    fn experiments(&self) -> Result<Vec<ExperimentVersion>> {
        self.inner.read(read::experiments)
    }

    fn rebaseline(&self, key: &str, reason: &str, now: Millis) -> Result<Epoch> {
        self.inner
            .write(|tx| write::rebaseline(tx, key, reason.to_string(), now))
    }

    fn epochs(&self, key: &str) -> Result<Vec<Epoch>> {
        self.inner.read(|c| read::epochs(c, key))
    }

    fn assignment(&self, experiment: &str, unit_id: &str) -> Result<Option<Assignment>> {
        self.inner.assignment(experiment, unit_id)
    }

    fn assignment_by_task(&self, experiment: &str, task_id: &str) -> Result<Option<Assignment>> {
        let key = (experiment.to_string(), task_id.to_string());
        if let Some(a) = self.inner.known().by_task.get(&key) {
            return Ok(Some(a.clone()));
        }
        let found = self
            .inner
            .read(|c| read::assignment_by_task(c, experiment, task_id))?;
        if let Some(a) = &found {
            Known::put(&mut self.inner.known().by_task, key, a);
        }
        Ok(found)
    }

    fn assignment_if_durable(&self, experiment: &str, unit_id: &str) -> Result<Option<Assignment>> {
        // Every committed row is durable; nothing uncommitted is visible.
        let key = (experiment.to_string(), unit_id.to_string());
        if let Some(a) = self.inner.known().by_unit.get(&key) {
            return Ok(Some(a.clone()));
        }
        self.off_runtime(move |inner| inner.assignment(&key.0, &key.1))
    }

    /// The period read at most [`LIVE_TTL`] ago: a decision stamped with a period that
    /// another replica has just replaced still carries that period's exact weights.
    fn current_period_for_decision(&self, experiment: &str) -> Result<AllocationPeriod> {
        let cached = self
            .inner
            .periods
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(experiment)
            .filter(|(_, at)| at.elapsed() < LIVE_TTL)
            .map(|(p, _)| p.clone());
        if let Some(p) = cached {
            return Ok(p);
        }
        let exp = experiment.to_string();
        let p = self.off_runtime(move |inner| inner.read(|c| read::current_period(c, &exp)))?;
        let mut periods = self.inner.periods.lock().unwrap_or_else(|p| p.into_inner());
        if periods.len() >= 4096 {
            periods.clear();
        }
        periods.insert(experiment.to_string(), (p.clone(), Instant::now()));
        Ok(p)
    }

    fn record_assignment(&self, assignment: Assignment) -> Result<Assignment> {
        let stored = self
            .inner
            .write(|tx| write::record_assignment(tx, assignment.clone()))?;
        self.inner.known().stored(&stored);
        Ok(stored)
    }

    fn record_assignment_then(&self, assignment: Assignment, done: Done<Assignment>) {
        let jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        let queued = match (&*jobs, self.inner.closed.load(Ordering::Acquire)) {
            (Some(jobs), false) => jobs.send(Job { assignment, done }).map_err(|e| e.0.done),
            (_, _) => Err(done),
        };
        drop(jobs);
        if let Err(done) = queued {
            done(Err(StoreError::Closed));
        }
    }

    fn record_assignments(&self, assignments: Vec<Assignment>) -> Result<Vec<Result<Assignment>>> {
        let answers = self.inner.write_many(
            &assignments,
            |tx| tx.prefetch_assignments(&assignments),
            write::record_assignment,
        )?;
        let mut known = self.inner.known();
        for a in answers.iter().flatten() {
            known.stored(a);
        }
        Ok(answers)
    }

    fn current_period(&self, experiment: &str) -> Result<AllocationPeriod> {
        self.inner.read(|c| read::current_period(c, experiment))
    }

    fn periods(&self, experiment: &str) -> Result<Vec<AllocationPeriod>> {
        self.inner.read(|c| read::periods(c, experiment))
    }

    fn record_outcome(&self, spec: &ExperimentSpec, outcome: Outcome) -> Result<Recorded> {
        let mut results = self.record_outcomes(spec, vec![outcome])?;
        results.pop().unwrap_or(Err(StoreError::Closed))
    }

    fn record_outcomes(
        &self,
        spec: &ExperimentSpec,
        outcomes: Vec<Outcome>,
    ) -> Result<Vec<Result<Recorded>>> {
        let lock = write::outcome_lock(spec, &outcomes);
        let exp = spec.key();
        let mine: Vec<Outcome> = outcomes
            .iter()
            .filter(|o| o.experiment == exp)
            .cloned()
            .collect();
        self.inner.write_many(
            &outcomes,
            |tx| {
                // The experiment row first (the lock order), then the batch's rows at once.
                match tx.exp(exp, lock) {
                    Ok(_) => tx.prefetch_outcomes(exp, &mine),
                    Err(Fail::Store(StoreError::NotFound { .. })) => Ok(()),
                    Err(e) => Err(e),
                }
            },
            |tx, o| write::record_outcome(tx, spec, lock, o),
        )
    }

    fn aggregates(&self, experiment: &str, epoch: u64) -> Result<Vec<(AggKey, MetricAggregate)>> {
        self.inner.read(|c| read::aggregates(c, experiment, epoch))
    }

    fn arm_counters(&self, experiment: &str, epoch: u64) -> Result<Vec<ArmCounters>> {
        self.inner
            .read(|c| read::arm_counters(c, experiment, epoch))
    }

    fn assignment_counts(&self, experiment: &str, epoch: u64) -> Result<Vec<AssignmentCount>> {
        self.inner
            .read(|c| read::assignment_counts(c, experiment, epoch))
    }

    fn unit_rows(&self, experiment: &str, epoch: u64) -> Result<Vec<UnitRow>> {
        self.inner.read(|c| read::unit_rows(c, experiment, epoch))
    }

    fn bandit_state(&self, experiment: &str) -> Result<Option<BanditState>> {
        self.inner.read(|c| read::bandit_state(c, experiment))
    }

    fn drift_monitor(&self, experiment: &str, epoch: u64) -> Result<Option<DriftMonitor>> {
        self.inner
            .read(|c| read::drift_monitor(c, experiment, epoch))
    }

    fn outcomes(&self, experiment: &str) -> Result<OutcomeIter> {
        self.inner.read(|c| read::require(c, experiment))?;
        Ok(Box::new(OutcomePages {
            inner: Arc::clone(&self.inner),
            exp: experiment.to_string(),
            after: 0,
            page: VecDeque::new(),
            done: false,
        }))
    }

    fn audit(&self, experiment: &str, after: u64, limit: usize) -> Result<Vec<AuditRecord>> {
        let limit = limit.min(MAX_AUDIT_PAGE);
        self.inner
            .read(|c| read::audit(c, experiment, after, limit))
    }

    fn audit_log(&self, after: u64, limit: usize) -> Result<Vec<AuditRecord>> {
        let limit = limit.min(MAX_AUDIT_PAGE);
        self.inner.read(|c| read::audit_log(c, after, limit))
    }

    fn verify(&self) -> Result<VerifyReport> {
        self.inner.read(audit::verify)
    }

    fn rebuild(&self, mode: RebuildMode) -> Result<RebuildReport> {
        if mode == RebuildMode::Replace && self.inner.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        self.inner.read(|c| rebuild::rebuild(c, mode))
    }

    fn flush(&self) -> Result<()> {
        // Every acknowledged write has committed, and PostgreSQL made it durable then.
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        Ok(())
    }

    fn close(&self) -> Result<()> {
        self.inner.closed.store(true, Ordering::Release);
        // Queued assignments still commit: the writers drain the queue, then stop.
        self.jobs.lock().unwrap_or_else(|p| p.into_inner()).take();
        let writers = std::mem::take(&mut *self.writers.lock().unwrap_or_else(|p| p.into_inner()));
        for w in writers {
            if w.join().is_err() {
                tracing::error!("a writer thread panicked");
            }
        }
        self.stop_compactor
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        Ok(())
    }
}
