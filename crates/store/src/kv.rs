//! The key-value seam shared by both stores: point reads, prefix scans, and a write overlay per operation.
//!
//! Every mutation is written once, in `ops`, against [`Tx`]: reads see the operation's own
//! writes, then the writes of earlier operations in the same group-commit batch, then the
//! committed tables. An operation that fails leaves nothing behind, because its writes stay in
//! its own overlay until it returns `Ok`.

use std::any::Any;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::codec::{decode, encode};
use crate::error::{Result, StoreError};
use crate::tree::TreeId;

/// Raw (key, value) pairs from a scan.
pub(crate) type Entries<'a> = Box<dyn Iterator<Item = Result<(Vec<u8>, Vec<u8>)>> + Send + 'a>;

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

    /// The greatest key of `tree` that is at most `key` and starts with `prefix`.
    fn last_at_or_before(&self, tree: TreeId, prefix: &[u8], key: &[u8])
        -> Result<Option<Vec<u8>>>;

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
    /// The value as one element of a list, in the table's format without the tag.
    fn encode_element(&self, tree: TreeId) -> Vec<u8>;
    fn as_any(&self) -> &dyn Any;
}

impl<T: Serialize + Send + 'static> Cached for T {
    fn encode(&self, tree: TreeId) -> Vec<u8> {
        encode(tree, self)
    }

    fn encode_element(&self, tree: TreeId) -> Vec<u8> {
        let mut tagged = encode(tree, self);
        tagged.remove(0);
        tagged
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// One pending write.
enum Pending {
    /// A value kept decoded, so later operations of the batch read it without decoding.
    Value(Box<dyn Cached>),
    /// Elements appended during this batch, stored as one list (a chunk of a log).
    List(Vec<Box<dyn Cached>>),
    /// Bookkeeping that lives for the batch only and is never written.
    Transient(Box<dyn Cached>),
    /// Bytes written as they are (rebuild's repairs).
    Raw(Vec<u8>),
    /// A removal.
    Removed,
}

impl Pending {
    /// The stored bytes, or `None` for a removal; transient entries are not stored at all.
    fn encode(self, tree: TreeId) -> Option<Option<Vec<u8>>> {
        match self {
            Pending::Value(v) => Some(Some(v.encode(tree))),
            Pending::List(items) => Some(Some(encode_list(tree, &items))),
            Pending::Raw(bytes) => Some(Some(bytes)),
            Pending::Removed => Some(None),
            Pending::Transient(_) => None,
        }
    }
}

/// Encodes a list as the table's format encodes a `Vec` of its elements.
fn encode_list(tree: TreeId, items: &[Box<dyn Cached>]) -> Vec<u8> {
    let parts: Vec<Vec<u8>> = items.iter().map(|i| i.encode_element(tree)).collect();
    if tree.binary() {
        // postcard writes a sequence as its length (a varint) followed by the elements.
        let mut out = encode(tree, &parts.len());
        for part in parts {
            out.extend_from_slice(&part);
        }
        out
    } else {
        let mut out = vec![crate::codec::JSON_V1, b'['];
        for (i, part) in parts.into_iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(&part);
        }
        out.push(b']');
        out
    }
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pending::Value(_) => f.write_str("Value(..)"),
            Pending::List(items) => write!(f, "List({} elements)", items.len()),
            Pending::Transient(_) => f.write_str("Transient(..)"),
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

/// Decoded committed values that a batch read through [`Tx::get_shared`].
///
/// Committed state does not change while a batch runs (the writer commits between batches),
/// so a value read once serves every later operation of the batch.
type ReadCache = RefCell<HashMap<(TreeId, Vec<u8>), Option<Box<dyn Any>>>>;

/// Pending writes, per table.
pub(crate) struct Writes {
    trees: Vec<BTreeMap<Vec<u8>, Pending>>,
    read_cache: ReadCache,
}

impl std::fmt::Debug for Writes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writes")
            .field("trees", &self.trees)
            .finish_non_exhaustive()
    }
}

impl Default for Writes {
    fn default() -> Self {
        Writes {
            trees: (0..TreeId::ALL.len()).map(|_| BTreeMap::new()).collect(),
            read_cache: RefCell::new(HashMap::new()),
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
            Some(Pending::List(_)) => Err(StoreError::Internal(format!(
                "a list being appended to in {} was read as a value",
                tree.name()
            ))),
            Some(Pending::Value(v) | Pending::Transient(v)) => match v.as_any().downcast_ref::<T>()
            {
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

    /// Moves every write of `other` on top of these; lists of both are concatenated.
    pub(crate) fn absorb(&mut self, other: Writes) {
        for (mine, theirs) in self.trees.iter_mut().zip(other.trees) {
            if mine.is_empty() {
                *mine = theirs;
                continue;
            }
            for (key, pending) in theirs {
                match (mine.get_mut(&key), pending) {
                    (Some(Pending::List(items)), Pending::List(more)) => items.extend(more),
                    (_, pending) => {
                        mine.insert(key, pending);
                    }
                }
            }
        }
    }

    /// The tables with pending writes (transient bookkeeping aside).
    pub(crate) fn dirty_trees(&self) -> impl Iterator<Item = TreeId> + '_ {
        TreeId::ALL
            .iter()
            .zip(&self.trees)
            .filter(|(_, w)| w.values().any(|p| !matches!(p, Pending::Transient(_))))
            .map(|(t, _)| *t)
    }

    /// Encodes the writes, table by table: `None` is a removal.
    pub(crate) fn encode_per_tree(self) -> Vec<(TreeId, RawWrites)> {
        TreeId::ALL
            .into_iter()
            .zip(self.trees)
            .filter_map(|(tree, writes)| {
                let encoded: RawWrites = writes
                    .into_iter()
                    .filter_map(|(k, p)| p.encode(tree).map(|v| (k, v)))
                    .collect();
                (!encoded.is_empty()).then_some((tree, encoded))
            })
            .collect()
    }

    /// True when nothing but transient bookkeeping is pending.
    pub(crate) fn nothing_to_store(&self) -> bool {
        self.dirty_trees().next().is_none()
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

    /// [`Tx::get_as`] for keys that many operations of a batch read but rarely write.
    pub(crate) fn get_shared<T: DeserializeOwned + Clone + 'static>(
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
        let cache_key = (tree, key.to_vec());
        if let Some(cached) = self.batch.read_cache.borrow().get(&cache_key) {
            return match cached {
                None => Ok(None),
                Some(v) => v.downcast_ref::<T>().cloned().map(Some).ok_or_else(|| {
                    StoreError::Internal(format!(
                        "a cached value of {} was read as another type",
                        tree.name()
                    ))
                }),
            };
        }
        let value: Option<T> = get_as(self.base, tree, key)?;
        let boxed = value.clone().map(|v| Box::new(v) as Box<dyn Any>);
        self.batch.read_cache.borrow_mut().insert(cache_key, boxed);
        Ok(value)
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

    /// Appends `item` to the list stored at `key` by this batch (a list is written once per batch).
    pub(crate) fn append<T: Serialize + Send + 'static>(
        &mut self,
        tree: TreeId,
        key: Vec<u8>,
        item: T,
    ) {
        let pending = self.own.trees[tree.index()]
            .entry(key)
            .or_insert_with(|| Pending::List(Vec::new()));
        match pending {
            Pending::List(items) => items.push(Box::new(item)),
            other => *other = Pending::List(vec![Box::new(item)]),
        }
    }

    /// The number of entries this operation and its batch appended to the list at `key`.
    fn list_len(&self, tree: TreeId, key: &[u8]) -> usize {
        [&self.own, self.batch]
            .iter()
            .map(|o| match o.trees[tree.index()].get(key) {
                Some(Pending::List(items)) => items.len(),
                _ => 0,
            })
            .sum()
    }

    /// The key of the chunk that this batch appends to in `tree` for `experiment`.
    ///
    /// The first append of a batch starts a chunk at `(experiment, first)`; later appends of
    /// the same batch reuse it until it holds [`chunk_items`] entries, so a log costs one write
    /// per batch (or per [`chunk_items`] entries) instead of one per entry.
    pub(crate) fn chunk_key(
        &mut self,
        tree: TreeId,
        experiment: &str,
        first: u64,
    ) -> Result<Vec<u8>> {
        self.chunk(tree, experiment, || {
            crate::codec::Key::new()
                .str(experiment)
                .u64(first)
                .into_bytes()
        })
    }

    /// The key of the chunk that this batch appends to in `tree` under `scope`: the one the
    /// batch started, or `start()` for its first append and once that chunk is full.
    pub(crate) fn chunk(
        &mut self,
        tree: TreeId,
        scope: &str,
        start: impl FnOnce() -> Vec<u8>,
    ) -> Result<Vec<u8>> {
        let mut marker = vec![0xff, b'c', u8::try_from(tree.index()).unwrap_or(u8::MAX)];
        marker.extend_from_slice(scope.as_bytes());
        for overlay in [&self.own, self.batch] {
            if let Seen::Found(key) = overlay.lookup::<Vec<u8>>(TreeId::Meta, &marker)? {
                if self.list_len(tree, &key) < chunk_items(tree) {
                    return Ok(key);
                }
                break;
            }
        }
        let key = start();
        self.own.trees[TreeId::Meta.index()]
            .insert(marker, Pending::Transient(Box::new(key.clone())));
        Ok(key)
    }
}

/// The most entries one chunk of a log in `tree` holds; a batch that appends more starts another.
///
/// sled keeps values inline in its tree nodes (up to 16 entries in a leaf) and writes a node
/// bigger than a quarter of a log segment (128 KiB) as a separate blob file, on every rewrite
/// of that node. So a chunk stays under about 6 KiB: 16 audit records (their payloads are whole
/// outcomes and assignments in JSON), 32 outcomes, or 256 sequence numbers of an audit index.
pub(crate) fn chunk_items(tree: TreeId) -> usize {
    match tree {
        TreeId::Audit => 16,
        TreeId::Outcomes => 32,
        _ => 256,
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
        assert!(!batch.nothing_to_store());
        assert_eq!(batch.dirty_trees().collect::<Vec<_>>(), vec![TreeId::Meta]);
        let encoded = batch.encode_per_tree();
        assert_eq!(encoded.len(), 1);
        assert_eq!(encoded[0].1, vec![(b"a".to_vec(), None)]);
    }
}
