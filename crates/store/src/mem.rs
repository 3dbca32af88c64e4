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
        for (tree, entries) in writes.encode_per_tree() {
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

    fn last_at_or_before(
        &self,
        tree: TreeId,
        prefix: &[u8],
        key: &[u8],
    ) -> Result<Option<Vec<u8>>> {
        Ok(self.trees[tree.index()]
            .range::<[u8], _>((Bound::Unbounded, Bound::Included(key)))
            .next_back()
            .map(|(k, _)| k.clone())
            .filter(|k| k.starts_with(prefix)))
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

    pub(crate) fn write_one_then<R>(
        &self,
        op: impl FnOnce(&mut Tx<'_>) -> Result<R>,
        done: crate::Done<R>,
    ) {
        done(self.write_one(op));
    }

    /// `Store::current_period_for_decision`: a plain read, everything being in memory.
    pub(crate) fn period_for_decision(
        &self,
        experiment: &str,
    ) -> Result<liftlab_domain::AllocationPeriod> {
        self.read(|src| crate::ops::current_period(src, experiment))
    }

    /// A read of the tables: every write is visible and final at once.
    pub(crate) fn read<R>(&self, f: impl FnOnce(&dyn Scan) -> Result<R>) -> Result<R> {
        let tables = self.tables.read().unwrap_or_else(|p| p.into_inner());
        f(&*tables)
    }

    pub(crate) fn outcome_iter(&self, experiment: &str) -> Result<OutcomeIter> {
        let outcomes = self.read(|src| {
            ops::require_experiment(src, experiment)?;
            let chunks: Vec<_> = src
                .scan_prefix(TreeId::Outcomes, &ops::keys::exp(experiment))
                .collect();
            Ok(ops::flatten_outcomes(chunks.into_iter()).collect::<Vec<_>>())
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
}

crate::impl_store!(MemStore);

#[cfg(test)]
mod tests {
    use liftlab_domain::ExperimentSpec;
    use serde_json::json;

    use super::*;
    use crate::{Store, StoreError};

    fn spec(key: &str) -> ExperimentSpec {
        ExperimentSpec::parse(&json!({
            "key": key,
            "arms": [{"key": "a", "role": "baseline"}, {"key": "b", "role": "treatment"}],
            "allocation": {"policy": "fixed", "weights": {"a": 0.5, "b": 0.5}},
            "metrics": [{"key": "m", "kind": "binary", "direction": "increase", "role": "primary"}]
        }))
        .expect("valid")
    }

    #[test]
    fn verify_and_reads_see_tampered_bytes() {
        let store = MemStore::new();
        store.create_experiment(spec("x"), 1).expect("created");
        store.create_experiment(spec("y"), 2).expect("created");
        assert!(store.verify().expect("runs").ok);
        {
            let mut tables = store.tables.write().expect("not poisoned");
            // Change record 2 inside the block that holds it.
            let key = tables
                .last_at_or_before(TreeId::Audit, &[], &crate::audit::block_key(2))
                .expect("reads")
                .expect("a block");
            let bytes = tables
                .get(TreeId::Audit, &key)
                .expect("reads")
                .expect("exists");
            let mut block: crate::audit::Block =
                crate::codec::decode(TreeId::Audit, &key, &bytes).expect("decodes");
            let first = block[0].seq;
            block[usize::try_from(2 - first).expect("small")]
                .payload
                .push(' ');
            let bytes = crate::codec::encode(TreeId::Audit, &block);
            tables.raw_put(TreeId::Audit, key, Some(bytes));
            tables.raw_put(
                TreeId::Experiments,
                crate::ops::keys::exp("y"),
                Some(vec![9, 9]),
            );
        }
        let report = store.verify().expect("runs");
        assert_eq!((report.ok, report.first_bad), (false, Some(2)));
        let err = store.experiment("y").expect_err("corrupt");
        assert!(
            matches!(
                err,
                StoreError::Corrupt {
                    tree: "experiments",
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(store.experiment("x").expect("intact").key, "x");
    }
}
