//! `MemStore`: the same log and fold as `SledStore`, with the log in a `Vec` and the views in a `BTreeMap`.
//!
//! Every write runs as its own group commit under one lock, so it is durable (for the
//! process's life) before it answers; reads take the views' read lock only.

use std::sync::Mutex;

use crate::engine::{Core, MemLog};
use crate::error::{Result, StoreError};
use crate::log::Mark;
use crate::records::{AuditRecord, RebuildMode, RebuildReport};
use crate::views::{Answer, MemKv, Op, SpecCache};

/// The store in memory, for tests and demos.
pub struct MemStore {
    core: Core,
    log: std::sync::Arc<MemLog>,
    /// The chain head, or `None` once closed.
    head: Mutex<Option<Mark>>,
}

impl std::fmt::Debug for MemStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemStore").finish_non_exhaustive()
    }
}

impl Default for MemStore {
    fn default() -> Self {
        MemStore::new()
    }
}

/// The log shared between the store's reader side and its appender.
struct Shared(std::sync::Arc<MemLog>);

impl crate::engine::LogRead for Shared {
    fn read(
        &self,
        after: u64,
        through: u64,
    ) -> Result<Box<dyn Iterator<Item = Result<crate::log::Sealed>> + '_>> {
        self.0.read(after, through)
    }
}

impl MemStore {
    /// An empty store.
    pub fn new() -> MemStore {
        let log = std::sync::Arc::new(MemLog::default());
        MemStore {
            core: Core {
                kv: Box::new(MemKv::default()),
                log: Box::new(Shared(std::sync::Arc::clone(&log))),
                specs: SpecCache::default(),
            },
            log,
            head: Mutex::new(Some(Mark::default())),
        }
    }

    pub(crate) fn core(&self) -> &Core {
        &self.core
    }

    pub(crate) fn submit(&self, ops: Vec<Op>) -> Result<Vec<Result<Answer>>> {
        let mut head = self.head.lock().unwrap_or_else(|p| p.into_inner());
        let Some(h) = head.as_mut() else {
            return Err(StoreError::Closed);
        };
        let log = &self.log;
        self.core.commit(
            h,
            &mut |records| {
                let mut all = log.0.write().unwrap_or_else(|p| p.into_inner());
                all.extend_from_slice(records);
                let last = &records[records.len() - 1];
                Ok(Mark {
                    seq: last.entry.seq,
                    segment: 1,
                    offset: last.entry.seq,
                    hash: last.hash,
                })
            },
            ops,
        )
    }

    pub(crate) fn submit_then(
        &self,
        ops: Vec<Op>,
        done: Box<dyn FnOnce(crate::engine::Answers) + Send>,
    ) {
        done(self.submit(ops));
    }

    pub(crate) fn rebuild_now(&self, mode: RebuildMode) -> Result<RebuildReport> {
        let head = self.head.lock().unwrap_or_else(|p| p.into_inner());
        let h = head.unwrap_or_default();
        crate::rebuild::rebuild(&self.core, &h, mode)
    }

    /// Imports the records of an older layout's audit chain (see `SledStore::import`).
    pub fn import(&self, records: Vec<AuditRecord>) -> Result<u64> {
        let n = records.len() as u64;
        for chunk in crate::import::in_fold_order(records).chunks(1024) {
            crate::engine::one(self.submit(vec![Op::Import(chunk.to_vec())]))?;
        }
        Ok(n)
    }

    pub(crate) fn check_open(&self) -> Result<()> {
        Ok(())
    }

    pub(crate) fn flush_now(&self) -> Result<()> {
        match *self.head.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(_) => Ok(()),
            None => Err(StoreError::Closed),
        }
    }

    pub(crate) fn shut_down(&self) -> Result<()> {
        self.head.lock().unwrap_or_else(|p| p.into_inner()).take();
        Ok(())
    }
}

crate::impl_store!(MemStore);
