//! A Bloom filter over the keys of the `tasks` table, so that the task lookup a new unit makes
//! (a miss) costs no sled read.
//!
//! Every new unit's assign looks for an index entry of its task id. In sled 0.34 a miss walks
//! the tree like a hit. The filter answers "certainly absent" for almost all of them from
//! memory instead. (The unit's own stored assignment is looked up in the `assignments` index
//! in memory, [`crate::chunks`].)
//!
//! Keys are only ever added, so a removal leaves a false positive, never a false negative.
//! [`apply_one`](crate::sled_store) adds a key before sled gets it, so a reader that is
//! told "absent" read the filter before sled could have held the key. Until the keys already
//! in sled have all been added (at open) the filter answers "maybe" for every key.
//!
//! The filter grows in layers: when the newest layer has taken its capacity, a layer of twice
//! the capacity is added, and a lookup checks every layer. Each layer keeps its false-positive
//! rate at [`FALSE_POSITIVES`], so a store of n keys has about log2(n / 65,536) layers.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::RwLock;

use fastbloom::AtomicBloomFilter;

use crate::tree::TreeId;

/// The keys the first layer is sized for; each later layer holds twice as many as the last.
const FIRST_LAYER_ITEMS: usize = 1 << 16;

/// The false-positive rate of one layer at its capacity.
const FALSE_POSITIVES: f64 = 0.005;

/// The tables whose keys the filter holds.
pub(crate) fn filtered(tree: TreeId) -> bool {
    matches!(tree, TreeId::Tasks)
}

/// See the module docs.
pub(crate) struct KeyFilter {
    /// Each layer with the number of keys it was sized for, oldest first.
    layers: RwLock<Vec<(AtomicBloomFilter, usize)>>,
    /// Keys added to the newest layer so far.
    newest_items: AtomicUsize,
    /// Set once every key that sled held at open has been added.
    complete: AtomicBool,
    hasher: RandomState,
}

impl std::fmt::Debug for KeyFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyFilter")
            .field("layers", &self.read_layers().len())
            .field("complete", &self.complete.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

fn layer(items: usize) -> (AtomicBloomFilter, usize) {
    let filter = AtomicBloomFilter::with_false_pos(FALSE_POSITIVES).expected_items(items);
    (filter, items)
}

impl KeyFilter {
    /// An empty filter that answers "maybe" until [`KeyFilter::complete`] is called.
    pub(crate) fn new() -> KeyFilter {
        KeyFilter {
            layers: RwLock::new(vec![layer(FIRST_LAYER_ITEMS)]),
            newest_items: AtomicUsize::new(0),
            complete: AtomicBool::new(false),
            hasher: RandomState::new(),
        }
    }

    fn read_layers(&self) -> std::sync::RwLockReadGuard<'_, Vec<(AtomicBloomFilter, usize)>> {
        self.layers.read().unwrap_or_else(|p| p.into_inner())
    }

    fn hash(&self, tree: TreeId, key: &[u8]) -> u64 {
        self.hasher.hash_one((tree, key))
    }

    /// Adds `key` of `tree` (a no-op for tables the filter does not hold).
    pub(crate) fn insert(&self, tree: TreeId, key: &[u8]) {
        if !filtered(tree) {
            return;
        }
        let hash = self.hash(tree, key);
        let full = {
            let layers = self.read_layers();
            let (newest, capacity) = layers.last().expect("the filter always has a layer");
            newest.insert_hash(hash);
            self.newest_items.fetch_add(1, Ordering::Relaxed) + 1 >= *capacity
        };
        if full {
            let mut layers = self.layers.write().unwrap_or_else(|p| p.into_inner());
            let capacity = layers.last().map_or(FIRST_LAYER_ITEMS, |l| l.1);
            // Another thread may have added the layer meanwhile.
            if self.newest_items.load(Ordering::Relaxed) >= capacity {
                layers.push(layer(capacity * 2));
                self.newest_items.store(0, Ordering::Relaxed);
            }
        }
    }

    /// Marks the filter as holding every stored key: from now on "absent" answers count.
    pub(crate) fn complete(&self) {
        self.complete.store(true, Ordering::Release);
    }

    /// False only if `tree` is filtered and `key` was certainly never added to it.
    pub(crate) fn may_contain(&self, tree: TreeId, key: &[u8]) -> bool {
        if !filtered(tree) || !self.complete.load(Ordering::Acquire) {
            return true;
        }
        let hash = self.hash(tree, key);
        self.read_layers()
            .iter()
            .any(|(filter, _)| filter.contains_hash(hash))
    }

    /// The number of layers (for tests of growth).
    #[cfg(test)]
    fn layer_count(&self) -> usize {
        self.read_layers().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: usize) -> Vec<u8> {
        format!("exp\0unit-{i}").into_bytes()
    }

    #[test]
    fn says_maybe_until_complete() {
        let filter = KeyFilter::new();
        assert!(filter.may_contain(TreeId::Tasks, &key(1)));
        filter.complete();
        assert!(!filter.may_contain(TreeId::Tasks, &key(1)));
        filter.insert(TreeId::Tasks, &key(1));
        assert!(filter.may_contain(TreeId::Tasks, &key(1)));
    }

    #[test]
    fn other_tables_are_always_maybe() {
        let filter = KeyFilter::new();
        filter.complete();
        assert!(filter.may_contain(TreeId::Events, &key(1)));
        filter.insert(TreeId::Events, &key(2));
        assert!(!filter.may_contain(TreeId::Tasks, &key(2)));
    }

    #[test]
    fn grows_in_layers_without_losing_a_key_and_keeps_false_positives_rare() {
        let filter = KeyFilter::new();
        filter.complete();
        let n = FIRST_LAYER_ITEMS * 4;
        for i in 0..n {
            filter.insert(TreeId::Tasks, &key(i));
        }
        // 65,536 + 131,072 fill two layers; the rest goes into the third.
        assert_eq!(filter.layer_count(), 3);
        assert!((0..n).all(|i| filter.may_contain(TreeId::Tasks, &key(i))));
        let probes = 100_000;
        let false_positives = (n..n + probes)
            .filter(|&i| filter.may_contain(TreeId::Tasks, &key(i)))
            .count();
        // Three layers at 0.5 % each at capacity: well under 2 % together.
        assert!(
            false_positives < probes / 50,
            "{false_positives} false positives in {probes}"
        );
    }
}
