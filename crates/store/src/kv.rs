//! The key-value seam shared by both stores: point reads, prefix scans, and a write overlay per operation.
//!
//! Every mutation is written once, in `ops`, against [`Tx`]: reads see the operation's own
//! writes, then the writes of earlier operations in the same group-commit batch, then the
//! committed tables. An operation that fails leaves nothing behind, because its writes stay in
//! its own overlay until it returns `Ok`.

use std::any::Any;
use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::codec::{decode, encode};
use crate::error::{Result, StoreError};
use crate::tree::TreeId;

/// Raw (key, value) pairs from a scan.
pub(crate) type Entries<'a> = Box<dyn Iterator<Item = Result<(Vec<u8>, Vec<u8>)>> + 'a>;

/// Encoded writes of one table: `None` is a removal.
pub(crate) type RawWrites = Vec<(Vec<u8>, Option<Vec<u8>>)>;

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

/// A decoded value waiting in an overlay: encoded once, when its batch commits.
trait Cached: Any + Send {
    fn encode(&self, tree: TreeId) -> Vec<u8>;
    fn as_any(&self) -> &dyn Any;
}

impl<T: Serialize + Send + 'static> Cached for T {
    fn encode(&self, tree: TreeId) -> Vec<u8> {
        encode(tree, self)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// One pending write.
enum Pending {
    /// A value kept decoded, so later operations of the batch read it without decoding.
    Value(Box<dyn Cached>),
    /// Bytes written as they are (rebuild's repairs).
    Raw(Vec<u8>),
    /// A removal.
    Removed,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pending::Value(_) => f.write_str("Value(..)"),
            Pending::Raw(b) => write!(f, "Raw({} bytes)", b.len()),
            Pending::Removed => f.write_str("Removed"),
        }
    }
}

/// What an overlay knows about a key.
enum Seen<T> {
    Untouched,
    Removed,
    Found(T),
}

/// Pending writes, per table.
#[derive(Debug)]
pub(crate) struct Writes {
    trees: Vec<BTreeMap<Vec<u8>, Pending>>,
}

impl Default for Writes {
    fn default() -> Self {
        Writes {
            trees: (0..TreeId::ALL.len()).map(|_| BTreeMap::new()).collect(),
        }
    }
}

impl Writes {
    /// The pending value at `key`, decoded (or cloned) as a `T`.
    fn lookup<T: DeserializeOwned + Clone + 'static>(
        &self,
        tree: TreeId,
        key: &[u8],
    ) -> Result<Seen<T>> {
        match self.trees[tree.index()].get(key) {
            None => Ok(Seen::Untouched),
            Some(Pending::Removed) => Ok(Seen::Removed),
            Some(Pending::Raw(bytes)) => decode(tree, key, bytes).map(Seen::Found),
            Some(Pending::Value(v)) => match v.as_any().downcast_ref::<T>() {
                Some(t) => Ok(Seen::Found(t.clone())),
                None => Err(StoreError::Internal(format!(
                    "a pending value in {} was read as another type",
                    tree.name()
                ))),
            },
        }
    }

    /// Whether `key` is pending as present (`Some(true)`), removed, or untouched (`None`).
    fn presence(&self, tree: TreeId, key: &[u8]) -> Option<bool> {
        self.trees[tree.index()]
            .get(key)
            .map(|p| !matches!(p, Pending::Removed))
    }

    /// Moves every write of `other` on top of these.
    pub(crate) fn absorb(&mut self, other: Writes) {
        for (mine, theirs) in self.trees.iter_mut().zip(other.trees) {
            if mine.is_empty() {
                *mine = theirs;
            } else {
                mine.extend(theirs);
            }
        }
    }

    /// True when nothing is pending.
    pub(crate) fn is_empty(&self) -> bool {
        self.trees.iter().all(BTreeMap::is_empty)
    }

    /// The tables with pending writes.
    pub(crate) fn dirty_trees(&self) -> impl Iterator<Item = TreeId> + '_ {
        TreeId::ALL
            .iter()
            .zip(&self.trees)
            .filter(|(_, w)| !w.is_empty())
            .map(|(t, _)| *t)
    }

    /// Encodes the writes, table by table: `None` is a removal.
    pub(crate) fn encode_per_tree(self) -> Vec<(TreeId, RawWrites)> {
        TreeId::ALL
            .into_iter()
            .zip(self.trees)
            .filter(|(_, w)| !w.is_empty())
            .map(|(tree, writes)| {
                let encoded = writes
                    .into_iter()
                    .map(|(k, p)| match p {
                        Pending::Value(v) => (k, Some(v.encode(tree))),
                        Pending::Raw(bytes) => (k, Some(bytes)),
                        Pending::Removed => (k, None),
                    })
                    .collect();
                (tree, encoded)
            })
            .collect()
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

    /// The current value at `key`, decoded, as this operation sees it.
    pub(crate) fn get_as<T: DeserializeOwned + Clone + 'static>(
        &self,
        tree: TreeId,
        key: &[u8],
    ) -> Result<Option<T>> {
        for overlay in [&self.own, self.batch] {
            match overlay.lookup::<T>(tree, key)? {
                Seen::Untouched => {}
                Seen::Removed => return Ok(None),
                Seen::Found(v) => return Ok(Some(v)),
            }
        }
        get_as(self.base, tree, key)
    }

    /// True when `key` holds a value.
    pub(crate) fn contains(&self, tree: TreeId, key: &[u8]) -> Result<bool> {
        for overlay in [&self.own, self.batch] {
            if let Some(present) = overlay.presence(tree, key) {
                return Ok(present);
            }
        }
        Ok(self.base.get(tree, key)?.is_some())
    }

    /// Writes raw bytes at `key`.
    pub(crate) fn put_raw(&mut self, tree: TreeId, key: Vec<u8>, value: Vec<u8>) {
        self.own.trees[tree.index()].insert(key, Pending::Raw(value));
    }

    /// Writes `value` at `key`; it is encoded when the batch commits.
    pub(crate) fn put<T: Serialize + Send + 'static>(
        &mut self,
        tree: TreeId,
        key: Vec<u8>,
        value: T,
    ) {
        self.own.trees[tree.index()].insert(key, Pending::Value(Box::new(value)));
    }

    /// Removes `key`.
    pub(crate) fn remove(&mut self, tree: TreeId, key: Vec<u8>) {
        self.own.trees[tree.index()].insert(key, Pending::Removed);
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
            tx.put(TreeId::Meta, b"a".to_vec(), 1u64);
            Ok(())
        })
        .expect("first succeeds");
        let failed: Result<()> = atomically(&Empty, &mut batch, |tx| {
            tx.put(TreeId::Meta, b"b".to_vec(), 2u64);
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
        assert_eq!(batch.dirty_trees().collect::<Vec<_>>(), vec![TreeId::Meta]);
        let encoded = batch.encode_per_tree();
        assert_eq!(encoded.len(), 1);
        assert_eq!(encoded[0].1, vec![(b"a".to_vec(), None)]);
    }
}
