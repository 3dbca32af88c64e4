//! `MemStore`: the same tables and the same operations as `SledStore`, held in memory.
//!
//! Writes run under one lock, each operation all-or-nothing, so there is nothing to flush:
//! an acknowledged write is as durable as the process. Used by tests and `liftlab demo`.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::RwLock;

use crate::error::{Result, StoreError};
use crate::kv::{atomically, Entries, Scan, Source, Tx, Writes};
use crate::ops;
use crate::tree::TreeId;
use crate::OutcomeIter;

/// The tables, one ordered map each.
#[derive(Debug)]
pub(crate) struct Tables {
    trees: Vec<BTreeMap<Vec<u8>, Vec<u8>>>,
}

impl Default for Tables {
    fn default() -> Self {
        Tables {
            trees: vec![BTreeMap::new(); TreeId::ALL.len()],
        }
    }
}

impl Tables {
    fn apply(&mut self, writes: Writes) {
        for (tree, entries) in writes.into_per_tree() {
            let table = &mut self.trees[tree.index()];
            for (key, value) in entries {
                match value {
                    Some(v) => {
                        table.insert(key, v);
                    }
                    None => {
                        table.remove(&key);
                    }
                }
            }
        }
    }

    /// Overwrites (or with `None` removes) one raw entry: for tests that tamper with the store.
    #[cfg(test)]
    pub(crate) fn raw_put(&mut self, tree: TreeId, key: Vec<u8>, value: Option<Vec<u8>>) {
        let table = &mut self.trees[tree.index()];
        match value {
            Some(v) => table.insert(key, v),
            None => table.remove(&key),
        };
    }
}

impl Source for Tables {
    fn get(&self, tree: TreeId, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.trees[tree.index()].get(key).cloned())
    }
}

impl Scan for Tables {
    fn scan_from(&self, tree: TreeId, prefix: &[u8], start: &[u8]) -> Entries<'_> {
        let prefix = prefix.to_vec();
        Box::new(
            self.trees[tree.index()]
                .range::<[u8], _>((Bound::Included(start), Bound::Unbounded))
                .take_while(move |(k, _)| k.starts_with(&prefix))
                .map(|(k, v)| Ok((k.clone(), v.clone()))),
        )
    }

    fn as_source(&self) -> &dyn Source {
        self
    }
}

/// The store in memory, with the semantics of [`crate::SledStore`].
#[derive(Debug, Default)]
pub struct MemStore {
    tables: RwLock<Tables>,
    closed: AtomicBool,
}

impl MemStore {
    /// An empty store.
    pub fn new() -> MemStore {
        MemStore::default()
    }

    fn guard_open(&self) -> Result<()> {
        if self.closed.load(Ordering::SeqCst) {
            Err(StoreError::Closed)
        } else {
            Ok(())
        }
    }

    fn with_tables<R>(&self, f: impl FnOnce(&mut Tables) -> Result<R>) -> Result<R> {
        self.guard_open()?;
        let mut tables = self.tables.write().unwrap_or_else(|p| p.into_inner());
        f(&mut tables)
    }

    pub(crate) fn write_one<R>(&self, op: impl FnOnce(&mut Tx<'_>) -> Result<R>) -> Result<R> {
        self.with_tables(|tables| {
            let mut writes = Writes::default();
            let out = atomically(&*tables, &mut writes, op);
            tables.apply(writes);
            out
        })
    }

    pub(crate) fn write_many<T, R>(
        &self,
        items: Vec<T>,
        op: impl Fn(&mut Tx<'_>, T) -> Result<R>,
    ) -> Result<Vec<Result<R>>> {
        self.with_tables(|tables| {
            let mut writes = Writes::default();
            let out = items
                .into_iter()
                .map(|item| atomically(&*tables, &mut writes, |tx| op(tx, item)))
                .collect();
            tables.apply(writes);
            Ok(out)
        })
    }

    pub(crate) fn exclusive<R>(
        &self,
        work: impl FnOnce(&dyn Scan, &mut Writes) -> Result<R>,
    ) -> Result<R> {
        self.with_tables(|tables| {
            let mut writes = Writes::default();
            let out = work(&*tables, &mut writes)?;
            tables.apply(writes);
            Ok(out)
        })
    }

    pub(crate) fn read<R>(
        &self,
        _trees: &[TreeId],
        f: impl FnOnce(&dyn Scan) -> Result<R>,
    ) -> Result<R> {
        let tables = self.tables.read().unwrap_or_else(|p| p.into_inner());
        f(&*tables)
    }

    pub(crate) fn read_opt<R>(
        &self,
        trees: &[TreeId],
        f: impl FnOnce(&dyn Scan) -> Result<Option<R>>,
    ) -> Result<Option<R>> {
        self.read(trees, f)
    }

    pub(crate) fn outcome_iter(&self, experiment: &str) -> Result<OutcomeIter> {
        let outcomes = self.read(&[TreeId::Outcomes], |src| {
            ops::require_experiment(src, experiment)?;
            let all: Vec<Result<_>> = src
                .scan_prefix(TreeId::Outcomes, &ops::keys::exp(experiment))
                .map(|entry| entry.and_then(|(k, v)| ops::decode_outcome(&k, &v)))
                .collect();
            Ok(all)
        })?;
        Ok(Box::new(outcomes.into_iter()))
    }

    pub(crate) fn flush_now(&self) -> Result<()> {
        self.guard_open()
    }

    pub(crate) fn shut_down(&self) -> Result<()> {
        self.closed.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Runs `f` on the raw tables: for tests that tamper with stored bytes.
    #[cfg(test)]
    pub(crate) fn tamper(&self, f: impl FnOnce(&mut Tables)) {
        let mut tables = self.tables.write().unwrap_or_else(|p| p.into_inner());
        f(&mut tables);
    }
}

crate::impl_store!(MemStore);
