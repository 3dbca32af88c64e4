//! The views folded from the log: their keys and values, the fold of each record, the write operations that emit records, and the reads.
//!
//! Every view lives in one ordered key-value map ([`Kv`]: a sled tree, or a `BTreeMap` in
//! memory), so a group commit changes them and the "applied through" [`Mark`] in one atomic
//! step. A key starts with a table tag and the experiment's number (big-endian `u32`); see
//! [`table`]. Values are postcard, except specs, versions, epochs, periods, bandit and drift
//! state, which are JSON.
//!
//! A write operation reads the views through a [`Tx`] (the batch's earlier writes included),
//! decides with the domain's pure step, and *emits* records; emitting a record folds it into
//! the `Tx` with [`fold`], the very function that replays the log at open and in `rebuild`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};

use liftlab_domain::drift::DriftMonitor;
use liftlab_domain::record::{
    self, Accepted, AssignmentEffects, AutoAction, OutcomeEffects, Standing, Views,
};
use liftlab_domain::thompson::BanditState;
use liftlab_domain::{
    initial_period, AggKey, AllocationPeriod, Assignment, ExperimentSpec, ExperimentVersion,
    HandledBy, MetricAggregate, MetricCell, Millis, Outcome, Status, Transition, UnitRow,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::body::{extend_names, Body, Event, Name, Placed};
use crate::error::{Result, StoreError};
use crate::log::{Entry, Mark, Sealed};
use crate::records::{ArmCounters, AssignmentCount, Epoch, Recorded};

/// Pending writes: `None` is a removal.
pub(crate) type Writes = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// An ordered key-value map holding the views.
pub(crate) trait Kv: Send + Sync {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Every entry whose key starts with `prefix`, in key order.
    fn scan(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>>;
    /// Applies `writes` atomically.
    fn apply(&self, writes: Writes) -> Result<()>;
}

/// The views in memory.
#[derive(Default)]
pub(crate) struct MemKv(RwLock<BTreeMap<Vec<u8>, Vec<u8>>>);

impl Kv for MemKv {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self
            .0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned())
    }

    fn scan(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let map = self.0.read().unwrap_or_else(|p| p.into_inner());
        Ok(map
            .range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn apply(&self, writes: Writes) -> Result<()> {
        let mut map = self.0.write().unwrap_or_else(|p| p.into_inner());
        for (k, v) in writes {
            match v {
                Some(v) => map.insert(k, v),
                None => map.remove(&k),
            };
        }
        Ok(())
    }
}

/// The views in a sled tree.
pub(crate) struct SledKv(pub sled::Tree);

impl Kv for SledKv {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.0
            .get(key)
            .map(|v| v.map(|v| v.to_vec()))
            .map_err(|e| StoreError::sled("reading a view", e))
    }

    fn scan(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.0
            .scan_prefix(prefix)
            .map(|r| {
                r.map(|(k, v)| (k.to_vec(), v.to_vec()))
                    .map_err(|e| StoreError::sled("scanning a view", e))
            })
            .collect()
    }

    fn apply(&self, writes: Writes) -> Result<()> {
        let mut batch = sled::Batch::default();
        for (k, v) in writes {
            match v {
                Some(v) => batch.insert(k, v),
                None => batch.remove(k),
            }
        }
        self.0
            .apply_batch(batch)
            .map_err(|e| StoreError::sled("applying a batch", e))
    }
}

/// The table tags that start every key.
pub(crate) mod table {
    pub const MARK: &[u8] = b"M";
    pub const NEXT_EXP: &[u8] = b"N";
    /// experiment key -> state
    pub const STATE: u8 = b'E';
    /// number -> experiment key
    pub const KEYS: u8 = b'I';
    pub const VERSIONS: u8 = b'V';
    pub const EPOCHS: u8 = b'H';
    pub const PERIODS: u8 = b'R';
    pub const UNITS: u8 = b'U';
    pub const TASKS: u8 = b'T';
    pub const ASSIGNMENT_COUNTS: u8 = b'C';
    pub const COUNTERS: u8 = b'K';
    pub const AGGREGATES: u8 = b'A';
    pub const BANDITS: u8 = b'B';
    pub const DRIFT: u8 = b'D';

    /// The table's name in messages and rebuild reports.
    pub fn name(tag: u8) -> &'static str {
        match tag {
            STATE => "state",
            KEYS => "experiments",
            VERSIONS => "versions",
            EPOCHS => "epochs",
            PERIODS => "periods",
            UNITS => "units",
            TASKS => "tasks",
            ASSIGNMENT_COUNTS => "assignment_counts",
            COUNTERS => "counters",
            AGGREGATES => "aggregates",
            BANDITS => "bandits",
            DRIFT => "drift",
            b'M' => "mark",
            _ => "meta",
        }
    }

    /// Whether the table's values are JSON (else postcard).
    pub fn json(tag: u8) -> bool {
        matches!(tag, VERSIONS | EPOCHS | PERIODS | BANDITS | DRIFT)
    }
}

/// A key: tag, experiment number, then parts.
pub(crate) fn key(tag: u8, exp: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(24);
    k.push(tag);
    k.extend_from_slice(&exp.to_be_bytes());
    k
}

fn key_n(tag: u8, exp: u32, n: u64) -> Vec<u8> {
    let mut k = key(tag, exp);
    k.extend_from_slice(&n.to_be_bytes());
    k
}

fn key_s(tag: u8, exp: u32, s: &str) -> Vec<u8> {
    let mut k = key(tag, exp);
    k.extend_from_slice(s.as_bytes());
    k
}

fn state_key(exp: &str) -> Vec<u8> {
    let mut k = vec![table::STATE];
    k.extend_from_slice(exp.as_bytes());
    k
}

fn agg_key(exp: u32, a: &AggKey) -> Vec<u8> {
    let mut k = key_n(table::AGGREGATES, exp, a.epoch);
    // postcard of an AggKey cannot fail (strings, numbers and a plain enum).
    k.extend_from_slice(&postcard::to_allocvec(a).unwrap_or_default());
    k
}

fn corrupt(key: &[u8], reason: impl Into<String>) -> StoreError {
    let tag = key.first().copied().unwrap_or(0);
    StoreError::corrupt(table::name(tag), key, reason)
}

pub(crate) fn decode<T: DeserializeOwned>(key: &[u8], value: &[u8]) -> Result<T> {
    let tag = key.first().copied().unwrap_or(0);
    if table::json(tag) {
        serde_json::from_slice(value).map_err(|e| corrupt(key, format!("undecodable: {e}")))
    } else {
        postcard::from_bytes(value).map_err(|e| corrupt(key, format!("undecodable: {e}")))
    }
}

pub(crate) fn encode<T: Serialize>(key: &[u8], value: &T) -> Result<Vec<u8>> {
    let tag = key.first().copied().unwrap_or(0);
    let encoded = if table::json(tag) {
        serde_json::to_vec(value).map_err(|e| e.to_string())
    } else {
        postcard::to_allocvec(value).map_err(|e| e.to_string())
    };
    encoded.map_err(|e| StoreError::Internal(format!("a view cannot be encoded: {e}")))
}

/// Point reads, over committed views or a batch in progress.
pub(crate) trait Get {
    fn get_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;

    fn get_as<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>>
    where
        Self: Sized,
    {
        match self.get_raw(key)? {
            Some(v) => decode(key, &v).map(Some),
            None => Ok(None),
        }
    }
}

fn get_as<T: DeserializeOwned>(g: &dyn Kv, key: &[u8]) -> Result<Option<T>> {
    match g.get(key)? {
        Some(v) => decode(key, &v).map(Some),
        None => Ok(None),
    }
}

/// What every operation on an experiment needs, kept apart from its spec.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ExpState {
    pub id: u32,
    pub key: String,
    pub version: u64,
    pub epoch: u64,
    pub period: u64,
    pub status: Status,
    /// The arm keys of the current spec, in its order.
    pub arms: Vec<String>,
    /// Every arm and metric key the experiment's specs ever had (see [`Name`]).
    pub names: Vec<String>,
}

impl ExpState {
    fn standing(&self) -> Standing<'_> {
        Standing {
            status: self.status,
            epoch: self.epoch,
            period: self.period,
            arms: &self.arms,
        }
    }

    fn arm_index(&self, arm: &str) -> Result<u32> {
        match Name::of(&self.names, arm) {
            Name::Idx(i) => Ok(i),
            Name::Text(t) => Err(StoreError::Internal(format!("arm {t:?} is not interned"))),
        }
    }
}

/// A unit's one entry: its assignment, its rows per epoch and the ids of its outcomes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct UnitView {
    pub at: Millis,
    pub placed: Placed,
    pub rows: Vec<Row>,
    pub events: Vec<String>,
}

/// A unit row without what the assignment says.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Row {
    pub epoch: u64,
    pub metrics: Vec<(Name, MetricCell)>,
    pub handled_by: Vec<(HandledBy, u64)>,
    pub outcomes: u64,
    pub first_ts: Millis,
    pub last_ts: Millis,
}

impl Row {
    fn of(r: &UnitRow, names: &[String]) -> Row {
        Row {
            epoch: r.epoch,
            metrics: r
                .metrics
                .iter()
                .map(|(k, c)| (Name::of(names, k), *c))
                .collect(),
            handled_by: r.handled_by.iter().map(|(k, n)| (*k, *n)).collect(),
            outcomes: r.outcomes,
            first_ts: r.first_ts,
            last_ts: r.last_ts,
        }
    }

    fn unit_row(&self, a: &Assignment, names: &[String]) -> Result<UnitRow> {
        Ok(UnitRow {
            experiment: a.experiment.clone(),
            epoch: self.epoch,
            unit_id: a.unit_id.clone(),
            arm: a.arm.clone(),
            propensity: a.propensity,
            segments: a.segments.clone(),
            metrics: self
                .metrics
                .iter()
                .map(|(k, c)| Ok((k.resolve(names)?, *c)))
                .collect::<Result<_>>()?,
            handled_by: self.handled_by.iter().copied().collect(),
            outcomes: self.outcomes,
            first_ts: self.first_ts,
            last_ts: self.last_ts,
        })
    }
}

/// Decoded versions read from committed views, by (experiment number, version): a version
/// never changes once written, so this is a memo, never stale.
#[derive(Default)]
pub(crate) struct SpecCache(Mutex<HashMap<(u32, u64), Arc<ExperimentVersion>>>);

impl SpecCache {
    pub(crate) fn clear(&self) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

/// The views as one operation of a group commit sees them: its own writes, then the batch's
/// earlier ones, then the committed views.
pub(crate) struct Tx<'a> {
    base: &'a dyn Kv,
    specs: &'a SpecCache,
    batch: Writes,
    op: Writes,
    pending: Vec<(Millis, Body)>,
    /// The records of the batch's committed operations, sealed in order.
    pub sealed: Vec<Sealed>,
    /// The chain's head after `sealed`.
    pub head: Mark,
}

impl Get for Tx<'_> {
    fn get_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(v) = self.op.get(key).or_else(|| self.batch.get(key)) {
            return Ok(v.clone());
        }
        self.base.get(key)
    }
}

impl<'a> Tx<'a> {
    pub(crate) fn new(base: &'a dyn Kv, specs: &'a SpecCache, head: Mark) -> Tx<'a> {
        Tx {
            base,
            specs,
            batch: Writes::new(),
            op: Writes::new(),
            pending: Vec::new(),
            sealed: Vec::new(),
            head,
        }
    }

    fn put<T: Serialize>(&mut self, key: Vec<u8>, value: &T) -> Result<()> {
        let bytes = encode(&key, value)?;
        self.op.insert(key, Some(bytes));
        Ok(())
    }

    fn remove(&mut self, key: Vec<u8>) {
        self.op.insert(key, None);
    }

    /// Folds `body` into the operation's views and queues it for the log.
    fn emit(&mut self, ts: Millis, body: Body, effects: Option<Accepted>) -> Result<()> {
        fold(self, ts, &body, effects)?;
        self.pending.push((ts, body));
        Ok(())
    }

    /// Runs one operation all-or-nothing: its writes and records join the batch on `Ok`.
    pub(crate) fn run(&mut self, op: Op) -> Result<Answer> {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(self, op)))
            .unwrap_or_else(|_| Err(StoreError::Internal("a store operation panicked".into())));
        let sealed = result.and_then(|answer| {
            let mut sealed = Vec::with_capacity(self.pending.len());
            let mut head = self.head;
            for (ts, body) in std::mem::take(&mut self.pending) {
                let entry = Entry {
                    seq: head.seq + 1,
                    ts,
                    body,
                };
                let (exp, names) = self.names_for(&entry.body)?;
                let payload = entry.body.render(&exp, &names, ts)?;
                let hash = crate::log::hash_record(
                    &head.hash,
                    entry.seq,
                    entry.body.kind(),
                    &exp,
                    &payload,
                    ts,
                );
                let s = Sealed::seal(entry, head.hash, hash)?;
                head.seq = s.entry.seq;
                head.hash = s.hash;
                sealed.push(s);
            }
            Ok((answer, sealed, head))
        });
        self.pending.clear();
        let op = std::mem::take(&mut self.op);
        let (answer, sealed, head) = sealed?;
        self.batch.extend(op);
        self.sealed.extend(sealed);
        self.head = head;
        Ok(answer)
    }

    /// Folds a record read from the log (replay, rebuild, import).
    pub(crate) fn replay(&mut self, ts: Millis, body: &Body) -> Result<()> {
        fold(self, ts, body, None)?;
        let op = std::mem::take(&mut self.op);
        self.batch.extend(op);
        Ok(())
    }

    /// The batch's writes, to apply with its mark.
    pub(crate) fn into_writes(self) -> Writes {
        self.batch
    }

    /// The experiment key and names a record is rendered with.
    pub(crate) fn names_for(&self, body: &Body) -> Result<(String, Vec<String>)> {
        let st = match body {
            Body::Created { key, .. } => self.state(key)?,
            _ => self.state_of(body.exp().unwrap_or_default())?,
        };
        Ok((st.key, st.names))
    }

    /// Folds a record read from the log and checks that it links to `prev` and matches its
    /// hash (rendered with the views it was just folded into).
    pub(crate) fn replay_checked(&mut self, s: &Sealed, prev: &[u8; 32]) -> Result<()> {
        self.replay(s.entry.ts, &s.entry.body)?;
        let (exp, names) = self.names_for(&s.entry.body)?;
        let payload = s.entry.body.render(&exp, &names, s.entry.ts)?;
        let kind = s.entry.body.kind();
        if crate::log::hash_record(prev, s.entry.seq, kind, &exp, &payload, s.entry.ts) != s.hash {
            return Err(StoreError::Corrupt {
                tree: "log",
                key: format!("record {}", s.entry.seq),
                reason: "the record does not match its chain hash".to_string(),
            });
        }
        Ok(())
    }

    pub(crate) fn state(&self, exp: &str) -> Result<ExpState> {
        self.get_as(&state_key(exp))?
            .ok_or_else(|| StoreError::no_experiment(exp))
    }

    fn state_of(&self, id: u32) -> Result<ExpState> {
        let k = key(table::KEYS, id);
        let exp: String = self
            .get_as(&k)?
            .ok_or_else(|| corrupt(&k, "a record names an unknown experiment"))?;
        self.state(&exp)
    }

    fn current(&self, st: &ExpState) -> Result<Arc<ExperimentVersion>> {
        let k = key_n(table::VERSIONS, st.id, st.version);
        let pending = self.op.get(&k).or_else(|| self.batch.get(&k));
        if pending.is_none() {
            let cache = self.specs.0.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(v) = cache.get(&(st.id, st.version)) {
                return Ok(Arc::clone(v));
            }
        }
        let v: ExperimentVersion = self
            .get_as(&k)?
            .ok_or_else(|| corrupt(&k, "the current version is missing"))?;
        let v = Arc::new(v);
        if pending.is_none() {
            let mut cache = self.specs.0.lock().unwrap_or_else(|p| p.into_inner());
            cache.insert((st.id, st.version), Arc::clone(&v));
        }
        Ok(v)
    }

    fn unit(&self, id: u32, unit: &str) -> Result<Option<UnitView>> {
        self.get_as(&key_s(table::UNITS, id, unit))
    }

    fn put_state(&mut self, st: &ExpState) -> Result<()> {
        self.put(state_key(&st.key), st)
    }

    fn put_version(&mut self, id: u32, v: &ExperimentVersion) -> Result<()> {
        self.put(key_n(table::VERSIONS, id, v.version), v)
    }
}

/// The domain's questions, answered from the batch's view of the tables.
impl Views for Tx<'_> {
    type Error = StoreError;

    fn seen(&self, exp: &str, unit_id: &str, event_id: &str) -> Result<bool> {
        let id = self.state(exp)?.id;
        Ok(self
            .unit(id, unit_id)?
            .is_some_and(|u| u.events.iter().any(|e| e == event_id)))
    }

    fn assignment(&self, exp: &str, unit_id: &str) -> Result<Option<Assignment>> {
        let st = self.state(exp)?;
        self.unit(st.id, unit_id)?
            .map(|u| u.placed.assignment(exp, &st.names, u.at))
            .transpose()
    }

    fn task_unit(&self, exp: &str, task_id: &str) -> Result<Option<String>> {
        let id = self.state(exp)?.id;
        self.get_as(&key_s(table::TASKS, id, task_id))
    }

    fn unit_row(&self, exp: &str, epoch: u64, unit_id: &str) -> Result<Option<UnitRow>> {
        let st = self.state(exp)?;
        let Some(u) = self.unit(st.id, unit_id)? else {
            return Ok(None);
        };
        let Some(row) = u.rows.iter().find(|r| r.epoch == epoch) else {
            return Ok(None);
        };
        let a = u.placed.assignment(exp, &st.names, u.at)?;
        row.unit_row(&a, &st.names).map(Some)
    }

    fn aggregate(&self, exp: &str, k: &AggKey) -> Result<Option<MetricAggregate>> {
        let id = self.state(exp)?.id;
        self.get_as(&agg_key(id, k))
    }

    fn outcomes(&self, exp: &str, epoch: u64, arm: &str) -> Result<u64> {
        let st = self.state(exp)?;
        let k = counter_key(&st, epoch, arm)?;
        Ok(self.get_as::<ArmCounters>(&k)?.map_or(0, |c| c.outcomes))
    }

    fn assigned(&self, exp: &str, epoch: u64, period: u64, arm: &str) -> Result<u64> {
        let st = self.state(exp)?;
        let k = count_key(&st, epoch, period, arm)?;
        Ok(self.get_as::<AssignmentCount>(&k)?.map_or(0, |c| c.count))
    }

    fn bandit(&self, exp: &str) -> Result<Option<BanditState>> {
        let id = self.state(exp)?.id;
        self.get_as(&key(table::BANDITS, id))
    }

    fn drift(&self, exp: &str, epoch: u64) -> Result<Option<DriftMonitor>> {
        let id = self.state(exp)?.id;
        self.get_as(&key_n(table::DRIFT, id, epoch))
    }
}

fn counter_key(st: &ExpState, epoch: u64, arm: &str) -> Result<Vec<u8>> {
    let mut k = key_n(table::COUNTERS, st.id, epoch);
    k.extend_from_slice(&st.arm_index(arm)?.to_be_bytes());
    Ok(k)
}

fn count_key(st: &ExpState, epoch: u64, period: u64, arm: &str) -> Result<Vec<u8>> {
    let mut k = key_n(table::ASSIGNMENT_COUNTS, st.id, epoch);
    k.extend_from_slice(&period.to_be_bytes());
    k.extend_from_slice(&st.arm_index(arm)?.to_be_bytes());
    Ok(k)
}

fn json<T: Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v)
        .map_err(|e| StoreError::Internal(format!("a record cannot be written: {e}")))
}

fn parse_version(v: &str) -> Result<ExperimentVersion> {
    serde_json::from_str(v).map_err(|e| StoreError::Corrupt {
        tree: "log",
        key: String::new(),
        reason: format!("a version record is undecodable: {e}"),
    })
}

/// Applies one record to the views. `effects`, when given, are the domain's decision for an
/// outcome, already taken against these same views (the live path); replay decides again.
pub(crate) fn fold(
    tx: &mut Tx<'_>,
    ts: Millis,
    body: &Body,
    effects: Option<Accepted>,
) -> Result<()> {
    if let Body::Created { key: exp, version } = body {
        let v = parse_version(version)?;
        let id: u32 = tx.get_as(table::NEXT_EXP)?.unwrap_or(0);
        let mut names = Vec::new();
        extend_names(&mut names, &v.spec);
        let st = ExpState {
            id,
            key: exp.clone(),
            version: v.version,
            epoch: 0,
            period: 0,
            status: v.status,
            arms: v.spec.arms().iter().map(|a| a.key().to_string()).collect(),
            names,
        };
        tx.put(table::NEXT_EXP.to_vec(), &(id + 1))?;
        tx.put(key(table::KEYS, id), exp)?;
        tx.put_version(id, &v)?;
        let epoch = Epoch {
            experiment: exp.clone(),
            epoch: 0,
            reason: "created".to_string(),
            started_at: ts,
            version: v.version,
        };
        tx.put(key_n(table::EPOCHS, id, 0), &epoch)?;
        if let Some(b) = BanditState::new(&v.spec) {
            tx.put(key(table::BANDITS, id), &b)?;
        }
        return tx.put_state(&st);
    }
    let id = body.exp().unwrap_or_default();
    let mut st = tx.state_of(id)?;
    match body {
        Body::Created { .. } => {}
        Body::SpecChanged { version, .. } => {
            let v = parse_version(version)?;
            let bk = key(table::BANDITS, id);
            let old: Option<BanditState> = tx.get_as(&bk)?;
            let new = BanditState::new(&v.spec);
            let arms: Vec<String> = v.spec.arms().iter().map(|a| a.key().to_string()).collect();
            let reset = match (&old, &new) {
                (Some(old), Some(new)) => arms != st.arms || old.reward() != new.reward(),
                (None, Some(_)) => true,
                (Some(_), None) | (None, None) => false,
            };
            match (reset, new) {
                (true, Some(b)) => tx.put(bk, &b)?,
                (_, None) if old.is_some() => tx.remove(bk),
                _ => {}
            }
            st.version = v.version;
            st.status = v.status;
            st.arms = arms;
            extend_names(&mut st.names, &v.spec);
            tx.put_version(id, &v)?;
        }
        Body::StatusChanged { version, .. } => {
            let v = parse_version(version)?;
            st.version = v.version;
            st.status = v.status;
            tx.put_version(id, &v)?;
        }
        Body::Rebaselined {
            epoch,
            version,
            reason,
            ..
        } => {
            let next = tx
                .current(&st)?
                .rebaselined(*epoch, Some(reason.clone()), ts);
            if next.version != *version {
                return Err(StoreError::Corrupt {
                    tree: "log",
                    key: String::new(),
                    reason: format!(
                        "a re-baseline names version {version}, not {}",
                        next.version
                    ),
                });
            }
            tx.put_version(id, &next)?;
            let e = Epoch {
                experiment: st.key.clone(),
                epoch: *epoch,
                reason: reason.clone(),
                started_at: ts,
                version: *version,
            };
            tx.put(key_n(table::EPOCHS, id, *epoch), &e)?;
            st.version = *version;
            st.epoch = *epoch;
        }
        Body::PeriodOpened { .. } => {
            let p = body.period(&st.key, &st.names, ts)?;
            st.period = p.period;
            tx.put(key_n(table::PERIODS, id, p.period), &p)?;
        }
        Body::Assigned { placed, .. } => {
            let a = placed.assignment(&st.key, &st.names, ts)?;
            if a.in_experiment {
                let k = count_key(&st, a.epoch, a.period, &a.arm)?;
                let mut count = tx
                    .get_as::<AssignmentCount>(&k)?
                    .unwrap_or(AssignmentCount {
                        period: a.period,
                        arm: a.arm.clone(),
                        count: 0,
                    });
                count.count += 1;
                tx.put(k, &count)?;
            }
            if let Some(task) = &placed.task {
                tx.put(key_s(table::TASKS, id, task), &placed.unit)?;
            }
            let view = UnitView {
                at: ts,
                placed: placed.clone(),
                rows: Vec::new(),
                events: Vec::new(),
            };
            return tx.put(key_s(table::UNITS, id, &placed.unit), &view);
        }
        Body::TaskBound { task, unit, .. } => {
            return tx.put(key_s(table::TASKS, id, task), unit);
        }
        Body::OutcomeRecorded { event, .. } => {
            let outcome = event.outcome(&st.key, &st.names, ts)?;
            let effects = match effects {
                Some(e) => e,
                None => {
                    let spec = tx.current(&st)?;
                    match record::record_outcome(&*tx, &st.standing(), &spec.spec, &outcome)? {
                        OutcomeEffects::Accepted(e) => *e,
                        OutcomeEffects::Duplicate => {
                            return Err(StoreError::Corrupt {
                                tree: "log",
                                key: String::new(),
                                reason: format!(
                                    "outcome {:?} is logged twice for unit {:?}",
                                    outcome.event_id, outcome.unit_id
                                ),
                            })
                        }
                    }
                }
            };
            return apply_outcome(tx, &st, &outcome, effects);
        }
    }
    tx.put_state(&st)
}

/// Applies an accepted outcome: its unit row and event id, the aggregate deltas, the arm's
/// counters, the bandit and the drift monitor. The period it opens and the action it
/// triggers are records of their own.
fn apply_outcome(tx: &mut Tx<'_>, st: &ExpState, o: &Outcome, effects: Accepted) -> Result<()> {
    let id = st.id;
    let uk = key_s(table::UNITS, id, &o.unit_id);
    let mut unit: UnitView = tx
        .get_as(&uk)?
        .ok_or_else(|| corrupt(&uk, "an outcome's unit has no assignment"))?;
    let row = Row::of(&effects.folded.row, &st.names);
    match unit.rows.iter_mut().find(|r| r.epoch == o.epoch) {
        Some(r) => *r = row,
        None => unit.rows.push(row),
    }
    unit.events.push(o.event_id.clone());
    tx.put(uk, &unit)?;
    for delta in &effects.folded.deltas {
        let k = agg_key(id, &delta.key);
        let mut agg = tx.get_as::<MetricAggregate>(&k)?.unwrap_or_default();
        agg.apply(delta);
        tx.put(k, &agg)?;
    }
    if let Some(step) = &effects.counted {
        let k = counter_key(st, o.epoch, &step.arm)?;
        let mut c = tx
            .get_as::<ArmCounters>(&k)?
            .unwrap_or_else(|| ArmCounters {
                arm: step.arm.clone(),
                ..ArmCounters::default()
            });
        c.step(step);
        tx.put(k, &c)?;
    }
    if let Some(b) = &effects.bandit {
        tx.put(key(table::BANDITS, id), b)?;
    }
    if let Some(m) = &effects.drift {
        tx.put(key_n(table::DRIFT, id, o.epoch), m)?;
    }
    Ok(())
}

/// A write operation.
pub(crate) enum Op {
    Create(ExperimentSpec, Millis),
    Update(ExperimentSpec, Option<u64>, Millis),
    Transition(String, Transition, Option<String>, Millis),
    Rebaseline(String, String, Millis),
    Assign(Assignment),
    Outcome(String, Outcome),
    /// Records of an older layout's audit chain, converted and emitted in order (import);
    /// an empty list commits nothing and answers once everything before it is durable.
    Import(Vec<crate::records::AuditRecord>),
}

/// What a write operation answers.
pub(crate) enum Answer {
    Version(Box<ExperimentVersion>),
    Epoch(Epoch),
    Assignment(Assignment),
    Recorded(Recorded),
    Done,
}

fn run(tx: &mut Tx<'_>, op: Op) -> Result<Answer> {
    match op {
        Op::Create(spec, now) => {
            let exp = spec.key().to_string();
            if tx.get_raw(&state_key(&exp))?.is_some() {
                return Err(StoreError::Conflict(format!(
                    "experiment {exp:?} already exists"
                )));
            }
            let period = initial_period(&spec, now);
            let v = ExperimentVersion::created(spec, now);
            let version = json(&v)?;
            tx.emit(
                now,
                Body::Created {
                    key: exp.clone(),
                    version,
                },
                None,
            )?;
            emit_period(tx, &exp, &period)?;
            Ok(Answer::Version(Box::new(v)))
        }
        Op::Update(spec, expected, now) => {
            let exp = spec.key().to_string();
            let st = tx.state(&exp)?;
            let cur = tx.current(&st)?;
            if let Some(expected) = expected {
                if expected != cur.version {
                    return Err(StoreError::Conflict(format!(
                        "experiment {exp:?} is at version {}, not {expected}",
                        cur.version
                    )));
                }
            }
            let next = cur.updated(spec, None, now)?;
            // Keep the allocation exact: a bandit whose arms or reward changed starts over,
            // and a change of weights (or of policy) opens a new period.
            let old_bandit: Option<BanditState> = tx.get_as(&key(table::BANDITS, st.id))?;
            let new_bandit = BanditState::new(&next.spec);
            let arms: Vec<String> = next
                .spec
                .arms()
                .iter()
                .map(|a| a.key().to_string())
                .collect();
            let reset = match (&old_bandit, &new_bandit) {
                (Some(old), Some(new)) => arms != st.arms || old.reward() != new.reward(),
                (None, Some(_)) => true,
                _ => false,
            };
            let fresh = initial_period(&next.spec, now);
            let cur_period: Option<AllocationPeriod> =
                tx.get_as(&key_n(table::PERIODS, st.id, st.period))?;
            let weights_changed = cur_period.map(|p| p.weights) != Some(fresh.weights.clone());
            let policy_changed = next.spec.allocation().policy() != cur.spec.allocation().policy();
            let new_period = if new_bandit.is_some() {
                reset || policy_changed
            } else {
                weights_changed || policy_changed
            };
            tx.emit(
                now,
                Body::SpecChanged {
                    exp: st.id,
                    version: json(&next)?,
                },
                None,
            )?;
            if new_period {
                let period = AllocationPeriod {
                    period: st.period + 1,
                    ..fresh
                };
                emit_period(tx, &exp, &period)?;
            }
            Ok(Answer::Version(Box::new(next)))
        }
        Op::Transition(exp, t, reason, now) => {
            transition(tx, &exp, t, reason, now).map(|v| Answer::Version(Box::new(v)))
        }
        Op::Rebaseline(exp, reason, now) => rebaseline(tx, &exp, reason, now).map(Answer::Epoch),
        Op::Assign(a) => {
            let st = tx.state(&a.experiment)?;
            let at = a.assigned_at;
            match record::record_assignment(&*tx, &st.standing(), a)? {
                AssignmentEffects::Existing { stored, bind_task } => {
                    if let Some(task) = bind_task {
                        let unit = stored.unit_id.clone();
                        tx.emit(
                            at,
                            Body::TaskBound {
                                exp: st.id,
                                task,
                                unit,
                            },
                            None,
                        )?;
                    }
                    Ok(Answer::Assignment(stored))
                }
                AssignmentEffects::New { assignment, .. } => {
                    let placed = Placed::of(&assignment, &st.names);
                    tx.emit(
                        assignment.assigned_at,
                        Body::Assigned { exp: st.id, placed },
                        None,
                    )?;
                    Ok(Answer::Assignment(assignment))
                }
            }
        }
        Op::Outcome(spec_key, o) => record_outcome(tx, &spec_key, o).map(Answer::Recorded),
        Op::Import(records) => {
            for r in &records {
                let (ts, body) = crate::import::body(tx, r)?;
                tx.emit(ts, body, None)?;
            }
            Ok(Answer::Done)
        }
    }
}

fn emit_period(tx: &mut Tx<'_>, exp: &str, p: &AllocationPeriod) -> Result<()> {
    let st = tx.state(exp)?;
    let body = Body::PeriodOpened {
        exp: st.id,
        period: p.period,
        weights: p
            .weights
            .iter()
            .map(|(k, w)| (Name::of(&st.names, k), *w))
            .collect(),
        rewards_seen: p.rewards_seen,
    };
    tx.emit(p.opened_at, body, None)
}

fn transition(
    tx: &mut Tx<'_>,
    exp: &str,
    t: Transition,
    reason: Option<String>,
    now: Millis,
) -> Result<ExperimentVersion> {
    let st = tx.state(exp)?;
    let next = tx.current(&st)?.transitioned(t, reason, now)?;
    tx.emit(
        now,
        Body::StatusChanged {
            exp: st.id,
            version: json(&next)?,
        },
        None,
    )?;
    Ok(next)
}

fn rebaseline(tx: &mut Tx<'_>, exp: &str, reason: String, now: Millis) -> Result<Epoch> {
    if reason.trim().is_empty() {
        return Err(StoreError::Invalid(
            "a re-baseline needs a reason".to_string(),
        ));
    }
    let st = tx.state(exp)?;
    let epoch = st.epoch + 1;
    let version = st.version + 1;
    let body = Body::Rebaselined {
        exp: st.id,
        epoch,
        version,
        reason: reason.clone(),
    };
    tx.emit(now, body, None)?;
    Ok(Epoch {
        experiment: exp.to_string(),
        epoch,
        reason,
        started_at: now,
        version,
    })
}

fn record_outcome(tx: &mut Tx<'_>, spec_key: &str, o: Outcome) -> Result<Recorded> {
    let exp = o.experiment.clone();
    if spec_key != exp {
        return Err(StoreError::Invalid(format!(
            "outcome for experiment {exp:?} recorded with the spec of {spec_key:?}"
        )));
    }
    let st = tx.state(&exp)?;
    // The stored spec decides, so that replaying the log decides the same.
    let spec = tx.current(&st)?;
    let effects = record::record_outcome(&*tx, &st.standing(), &spec.spec, &o)?;
    let OutcomeEffects::Accepted(effects) = effects else {
        return Ok(Recorded::Duplicate);
    };
    let Accepted { period, action, .. } = (*effects).clone();
    let event = Event::of(&o, &st.names);
    tx.emit(
        o.ts,
        Body::OutcomeRecorded { exp: st.id, event },
        Some(*effects),
    )?;
    if let Some(p) = period {
        emit_period(tx, &exp, &p)?;
    }
    match action {
        Some(AutoAction::Rebaseline { reason }) => {
            rebaseline(tx, &exp, reason, o.ts)?;
        }
        Some(AutoAction::Pause { reason }) => {
            transition(tx, &exp, Transition::Pause, Some(reason), o.ts)?;
        }
        None => {}
    }
    Ok(Recorded::Accepted)
}

// ---- Reads of committed views -------------------------------------------------------------

pub(crate) fn state(kv: &dyn Kv, exp: &str) -> Result<ExpState> {
    get_as(kv, &state_key(exp))?.ok_or_else(|| StoreError::no_experiment(exp))
}

/// The key and names of experiment number `id`.
pub(crate) fn state_of(kv: &dyn Kv, id: u32) -> Result<ExpState> {
    let k = key(table::KEYS, id);
    let exp: String = get_as(kv, &k)?.ok_or_else(|| corrupt(&k, "unknown experiment number"))?;
    state(kv, &exp)
}

fn scan_as<T: DeserializeOwned>(kv: &dyn Kv, prefix: &[u8]) -> Result<Vec<T>> {
    kv.scan(prefix)?
        .into_iter()
        .map(|(k, v)| decode(&k, &v))
        .collect()
}

pub(crate) fn experiment(kv: &dyn Kv, exp: &str) -> Result<ExperimentVersion> {
    let st = state(kv, exp)?;
    let k = key_n(table::VERSIONS, st.id, st.version);
    get_as(kv, &k)?.ok_or_else(|| corrupt(&k, "the current version is missing"))
}

pub(crate) fn experiment_version(
    kv: &dyn Kv,
    exp: &str,
    version: u64,
) -> Result<ExperimentVersion> {
    let not_found = || StoreError::NotFound {
        what: format!("version {version} of experiment {exp:?}"),
    };
    let st = state(kv, exp).map_err(|_| not_found())?;
    get_as(kv, &key_n(table::VERSIONS, st.id, version))?.ok_or_else(not_found)
}

pub(crate) fn versions(kv: &dyn Kv, exp: &str) -> Result<Vec<ExperimentVersion>> {
    scan_as(kv, &key(table::VERSIONS, state(kv, exp)?.id))
}

pub(crate) fn experiments(kv: &dyn Kv) -> Result<Vec<ExperimentVersion>> {
    let states: Vec<ExpState> = scan_as(kv, &[table::STATE])?;
    let mut all = states
        .iter()
        .map(|st| experiment(kv, &st.key))
        .collect::<Result<Vec<_>>>()?;
    all.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(all)
}

pub(crate) fn epochs(kv: &dyn Kv, exp: &str) -> Result<Vec<Epoch>> {
    scan_as(kv, &key(table::EPOCHS, state(kv, exp)?.id))
}

pub(crate) fn periods(kv: &dyn Kv, exp: &str) -> Result<Vec<AllocationPeriod>> {
    scan_as(kv, &key(table::PERIODS, state(kv, exp)?.id))
}

pub(crate) fn current_period(kv: &dyn Kv, exp: &str) -> Result<AllocationPeriod> {
    let st = state(kv, exp)?;
    let k = key_n(table::PERIODS, st.id, st.period);
    get_as(kv, &k)?.ok_or_else(|| corrupt(&k, "the current allocation period is missing"))
}

pub(crate) fn assignment(kv: &dyn Kv, exp: &str, unit: &str) -> Result<Option<Assignment>> {
    let Some(st) = get_as::<ExpState>(kv, &state_key(exp))? else {
        return Ok(None);
    };
    let u: Option<UnitView> = get_as(kv, &key_s(table::UNITS, st.id, unit))?;
    u.map(|u| u.placed.assignment(exp, &st.names, u.at))
        .transpose()
}

pub(crate) fn assignment_by_task(kv: &dyn Kv, exp: &str, task: &str) -> Result<Option<Assignment>> {
    // Most tasks are their unit's own id (the default), which has no task entry.
    if let Some(own) = assignment(kv, exp, task)?.filter(|a| a.task_id == task) {
        return Ok(Some(own));
    }
    let Some(st) = get_as::<ExpState>(kv, &state_key(exp))? else {
        return Ok(None);
    };
    let k = key_s(table::TASKS, st.id, task);
    let Some(unit) = get_as::<String>(kv, &k)? else {
        return Ok(None);
    };
    match assignment(kv, exp, &unit)? {
        Some(a) => Ok(Some(a)),
        None => Err(corrupt(
            &k,
            format!("task points at unit {unit:?}, which has no assignment"),
        )),
    }
}

pub(crate) fn aggregates(
    kv: &dyn Kv,
    exp: &str,
    epoch: u64,
) -> Result<Vec<(AggKey, MetricAggregate)>> {
    let prefix = key_n(table::AGGREGATES, state(kv, exp)?.id, epoch);
    let mut out = kv
        .scan(&prefix)?
        .into_iter()
        .map(|(k, v)| {
            let agg: AggKey = postcard::from_bytes(&k[prefix.len()..])
                .map_err(|e| corrupt(&k, format!("undecodable key: {e}")))?;
            Ok((agg, decode(&k, &v)?))
        })
        .collect::<Result<Vec<_>>>()?;
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Per-arm counters, by arm key.
pub(crate) fn arm_counters(kv: &dyn Kv, exp: &str, epoch: u64) -> Result<Vec<ArmCounters>> {
    let mut out: Vec<ArmCounters> =
        scan_as(kv, &key_n(table::COUNTERS, state(kv, exp)?.id, epoch))?;
    out.sort_by(|a, b| a.arm.cmp(&b.arm));
    Ok(out)
}

/// Assignment counts, by period and arm key.
pub(crate) fn assignment_counts(
    kv: &dyn Kv,
    exp: &str,
    epoch: u64,
) -> Result<Vec<AssignmentCount>> {
    let prefix = key_n(table::ASSIGNMENT_COUNTS, state(kv, exp)?.id, epoch);
    let mut out: Vec<AssignmentCount> = scan_as(kv, &prefix)?;
    out.sort_by(|a, b| (a.period, &a.arm).cmp(&(b.period, &b.arm)));
    Ok(out)
}

pub(crate) fn unit_rows(kv: &dyn Kv, exp: &str, epoch: u64) -> Result<Vec<UnitRow>> {
    let st = state(kv, exp)?;
    let units: Vec<UnitView> = scan_as(kv, &key(table::UNITS, st.id))?;
    let mut out = Vec::new();
    for u in units {
        if let Some(row) = u.rows.iter().find(|r| r.epoch == epoch) {
            let a = u.placed.assignment(exp, &st.names, u.at)?;
            out.push(row.unit_row(&a, &st.names)?);
        }
    }
    Ok(out)
}

pub(crate) fn bandit_state(kv: &dyn Kv, exp: &str) -> Result<Option<BanditState>> {
    get_as(kv, &key(table::BANDITS, state(kv, exp)?.id))
}

pub(crate) fn drift_monitor(kv: &dyn Kv, exp: &str, epoch: u64) -> Result<Option<DriftMonitor>> {
    get_as(kv, &key_n(table::DRIFT, state(kv, exp)?.id, epoch))
}

pub(crate) fn mark(kv: &dyn Kv) -> Result<Mark> {
    Ok(get_as(kv, table::MARK)?.unwrap_or_default())
}

pub(crate) fn put_mark(writes: &mut Writes, mark: &Mark) -> Result<()> {
    writes.insert(table::MARK.to_vec(), Some(encode(table::MARK, mark)?));
    Ok(())
}

/// A view entry as JSON, for rebuild reports.
pub(crate) fn describe(k: &[u8], v: &[u8]) -> String {
    let tag = k.first().copied().unwrap_or(0);
    if table::json(tag) {
        return String::from_utf8_lossy(v).into_owned();
    }
    let shown = match tag {
        table::STATE => decode::<ExpState>(k, v).and_then(|x| json(&x)),
        table::UNITS => decode::<UnitView>(k, v).and_then(|x| json(&x)),
        table::COUNTERS => decode::<ArmCounters>(k, v).and_then(|x| json(&x)),
        table::ASSIGNMENT_COUNTS => decode::<AssignmentCount>(k, v).and_then(|x| json(&x)),
        table::AGGREGATES => decode::<MetricAggregate>(k, v).and_then(|x| json(&x)),
        table::TASKS | table::KEYS => decode::<String>(k, v).and_then(|x| json(&x)),
        _ => Err(StoreError::Internal(String::new())),
    };
    shown.unwrap_or_else(|_| json(&hex::encode(v)).unwrap_or_default())
}

/// The experiment number of a view key, when it has one.
pub(crate) fn key_exp(k: &[u8]) -> Option<u32> {
    match k.first().copied()? {
        table::STATE | b'M' | b'N' => None,
        _ => k
            .get(1..5)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]])),
    }
}

/// The outcome log of experiment `id` among `records`, as outcomes.
pub(crate) fn outcome_of(st: &ExpState, s: &Sealed) -> Option<Result<Outcome>> {
    match &s.entry.body {
        Body::OutcomeRecorded { exp, event } if *exp == st.id => {
            Some(event.outcome(&st.key, &st.names, s.entry.ts))
        }
        _ => None,
    }
}
