//! The key-value seam shared by both stores: point reads, prefix scans, and a write overlay per operation.
//!
//! Every mutation is written once, in `ops`, against [`Tx`]: reads see the operation's own
//! writes, then the writes of earlier operations in the same group-commit batch, then the
//! committed tables. An operation that fails leaves nothing behind, because its writes stay in
//! its own overlay until it returns `Ok`.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::codec::{decode, encode};
use crate::error::Result;
use crate::tree::TreeId;

/// Raw (key, value) pairs from a scan.
pub(crate) type Entries<'a> = Box<dyn Iterator<Item = Result<(Vec<u8>, Vec<u8>)>> + 'a>;

/// Committed tables, read by key.
pub(crate) trait Source {
    /// The committed value at `key` in `tree`.
    fn get(&self, tree: TreeId, key: &[u8]) -> Result<Option<Vec<u8>>>;
}

/// Committed tables, read by key or by key prefix (in key order).
pub(crate) trait Scan: Source {
    /// Every entry of `tree` whose key starts with `prefix` and is at least `start`, in key order.
    fn scan_from(&self, tree: TreeId, prefix: &[u8], start: &[u8]) -> Entries<'_>;

    /// Every entry of `tree` whose key starts with `prefix`, in key order.
    fn scan_prefix(&self, tree: TreeId, prefix: &[u8]) -> Entries<'_> {
        self.scan_from(tree, prefix, prefix)
    }

    /// The same tables, as a point-read source.
    fn as_source(&self) -> &dyn Source;
}

/// Decodes the value at `key` in `tree`, if any.
pub(crate) fn get_as<T: DeserializeOwned>(
    src: &dyn Source,
    tree: TreeId,
    key: &[u8],
) -> Result<Option<T>> {
    match src.get(tree, key)? {
        Some(bytes) => decode(tree, key, &bytes).map(Some),
        None => Ok(None),
    }
}

/// Decodes every value under `prefix` in `tree`, in key order.
pub(crate) fn scan_as<T: DeserializeOwned>(
    src: &dyn Scan,
    tree: TreeId,
    prefix: &[u8],
) -> Result<Vec<T>> {
    src.scan_prefix(tree, prefix)
        .map(|entry| entry.and_then(|(k, v)| decode(tree, &k, &v)))
        .collect()
}

/// Pending writes, per table, in key order: `None` is a removal.
#[derive(Debug)]
pub(crate) struct Writes {
    trees: Vec<BTreeMap<Vec<u8>, Option<Vec<u8>>>>,
}

impl Default for Writes {
    fn default() -> Self {
        Writes {
            trees: vec![BTreeMap::new(); TreeId::ALL.len()],
        }
    }
}

impl Writes {
    /// The pending write at `key`: `Some(None)` is a pending removal, `None` means untouched.
    fn lookup(&self, tree: TreeId, key: &[u8]) -> Option<Option<&Vec<u8>>> {
        self.trees[tree.index()].get(key).map(Option::as_ref)
    }

    /// Moves every write of `other` on top of these.
    pub(crate) fn absorb(&mut self, other: Writes) {
        for (mine, theirs) in self.trees.iter_mut().zip(other.trees) {
            mine.extend(theirs);
        }
    }

    /// True when nothing is pending.
    pub(crate) fn is_empty(&self) -> bool {
        self.trees.iter().all(BTreeMap::is_empty)
    }

    /// The pending writes of each table that has any, in [`TreeId::ALL`] order.
    pub(crate) fn per_tree(
        &self,
    ) -> impl Iterator<Item = (TreeId, &BTreeMap<Vec<u8>, Option<Vec<u8>>>)> {
        TreeId::ALL
            .iter()
            .zip(&self.trees)
            .filter(|(_, w)| !w.is_empty())
            .map(|(t, w)| (*t, w))
    }

    /// Consumes the writes, table by table.
    pub(crate) fn into_per_tree(
        self,
    ) -> impl Iterator<Item = (TreeId, BTreeMap<Vec<u8>, Option<Vec<u8>>>)> {
        TreeId::ALL
            .into_iter()
            .zip(self.trees)
            .filter(|(_, w)| !w.is_empty())
    }
}

/// One operation's view: its own writes over the batch's writes over the committed tables.
pub(crate) struct Tx<'a> {
    base: &'a dyn Source,
    batch: &'a Writes,
    own: Writes,
}

impl<'a> Tx<'a> {
    /// A fresh operation over `batch` (earlier operations of the same commit) and `base`.
    pub(crate) fn new(base: &'a dyn Source, batch: &'a Writes) -> Self {
        Tx {
            base,
            batch,
            own: Writes::default(),
        }
    }

    /// The operation's writes, to be absorbed into the batch once it succeeded.
    pub(crate) fn into_writes(self) -> Writes {
        self.own
    }

    /// The current value at `key`, as this operation sees it.
    pub(crate) fn get(&self, tree: TreeId, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(pending) = self.own.lookup(tree, key) {
            return Ok(pending.cloned());
        }
        if let Some(pending) = self.batch.lookup(tree, key) {
            return Ok(pending.cloned());
        }
        self.base.get(tree, key)
    }

    /// Decodes the current value at `key`, if any.
    pub(crate) fn get_as<T: DeserializeOwned>(
        &self,
        tree: TreeId,
        key: &[u8],
    ) -> Result<Option<T>> {
        match self.get(tree, key)? {
            Some(bytes) => decode(tree, key, &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// True when `key` holds a value.
    pub(crate) fn contains(&self, tree: TreeId, key: &[u8]) -> Result<bool> {
        Ok(self.get(tree, key)?.is_some())
    }

    /// Writes raw bytes at `key`.
    pub(crate) fn put_raw(&mut self, tree: TreeId, key: Vec<u8>, value: Vec<u8>) {
        self.own.trees[tree.index()].insert(key, Some(value));
    }

    /// Encodes and writes `value` at `key`.
    pub(crate) fn put<T: Serialize + ?Sized>(&mut self, tree: TreeId, key: Vec<u8>, value: &T) {
        self.put_raw(tree, key, encode(value));
    }

    /// Removes `key`.
    pub(crate) fn remove(&mut self, tree: TreeId, key: Vec<u8>) {
        self.own.trees[tree.index()].insert(key, None);
    }
}

/// Runs one operation over `batch` and `base`: on `Ok` its writes join the batch, on `Err` they are dropped.
pub(crate) fn atomically<R>(
    base: &dyn Source,
    batch: &mut Writes,
    op: impl FnOnce(&mut Tx<'_>) -> Result<R>,
) -> Result<R> {
    let mut tx = Tx::new(base, batch);
    let out = op(&mut tx)?;
    let writes = tx.into_writes();
    batch.absorb(writes);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::StoreError;

    struct Empty;

    impl Source for Empty {
        fn get(&self, _: TreeId, _: &[u8]) -> Result<Option<Vec<u8>>> {
            Ok(None)
        }
    }

    #[test]
    fn a_failed_operation_leaves_nothing_and_a_later_one_sees_earlier_writes() {
        let mut batch = Writes::default();
        atomically(&Empty, &mut batch, |tx| {
            tx.put(TreeId::Meta, b"a".to_vec(), &1u64);
            Ok(())
        })
        .expect("first succeeds");
        let failed: Result<()> = atomically(&Empty, &mut batch, |tx| {
            tx.put(TreeId::Meta, b"b".to_vec(), &2u64);
            Err(StoreError::Invalid("refused".into()))
        });
        assert!(failed.is_err());
        let seen = atomically(&Empty, &mut batch, |tx| {
            let a: Option<u64> = tx.get_as(TreeId::Meta, b"a")?;
            let b: Option<u64> = tx.get_as(TreeId::Meta, b"b")?;
            tx.remove(TreeId::Meta, b"a".to_vec());
            let gone: Option<u64> = tx.get_as(TreeId::Meta, b"a")?;
            Ok((a, b, gone))
        })
        .expect("third succeeds");
        assert_eq!(seen, (Some(1), None, None));
        assert!(!batch.is_empty());
        assert_eq!(batch.per_tree().count(), 1);
    }
}
