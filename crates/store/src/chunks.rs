//! The `assignments` table on sled: entries appended in chunks, found through an index in memory.
//!
//! A new unit's assignment is the store's most frequent write. sled 0.34 pays for an insert at
//! a random key with a copy of its leaf, and often a split (its leaves hold 16 keys), and it
//! walks the tree for a miss as for a hit. So `SledStore` keeps this table differently from
//! the others: each group commit appends its assignment writes as chunks of up to
//! [`CHUNK_ENTRIES`] entries under sequential keys of the `assignment_chunks` tree (sled then
//! only ever appends at its rightmost leaf), and an index in memory maps a hash of every key
//! to the place of its latest entry. A new unit's lookups miss in the index without touching
//! sled; a returning unit's read is one sled read of its chunk.
//!
//! Entries are never rewritten in place: a later entry for the same key (a replayed batch, or
//! a removal, written as an entry without a value) supersedes the earlier one, in the index
//! and in scans alike. The index is rebuilt at open by reading every chunk in order. It holds
//! about 20–40 bytes per key: the 64-bit hash (random per process) and the place. Two keys
//! with one hash are told apart by reading the key stored at each place. It is split into
//! [`SHARDS`] maps by hash, each behind its own lock, so that growing one (a copy of its
//! entries) holds the writer up for a sixty-fourth of what growing one map of every key would.
//!
//! The chunks are sled writes like any other: the write-ahead log in front of sled makes them
//! durable, and replaying it appends any batch sled had not flushed again (an entry written
//! twice reads the same).

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::{Mutex, RwLock};

use crate::error::{Result, StoreError};
use crate::kv::{Entries, RawWrites};

/// The sled tree that holds the chunks.
const TREE_NAME: &str = "assignment_chunks";

/// The most entries one chunk holds (a chunk of new units' assignments is about 6 KiB, well
/// below the size at which sled moves a value out of its leaf).
const CHUNK_ENTRIES: usize = 32;

/// The keys the index has room for at open (it holds about 1.8 million before it first grows).
const INITIAL_ROOM: usize = 1 << 20;

/// The number of maps the index is split into, by bits 32–37 of the hash. (A map finds its
/// slot by the hash's lowest bits and tags it with the highest seven, so a shard chosen by
/// either would crowd one map's slots or tags.)
const SHARDS: usize = 64;

/// The shard of hash `h`.
fn shard_of(h: u64) -> usize {
    (h >> 32) as usize % SHARDS
}

/// The first byte of every chunk: its format.
const FORMAT: u8 = 1;

/// Where an entry lies: its chunk's sequence number shifted left by 8 bits, plus its position.
type Place = u64;

fn place(seq: u64, pos: usize) -> Place {
    (seq << 8) | pos as u64
}

/// The chunk's sequence number and the entry's position of a [`Place`].
fn unplace(at: Place) -> (u64, usize) {
    (at >> 8, (at & 0xff) as usize)
}

/// A hasher for keys that are already hashes.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used; fold anything else in, so the hasher stays correct.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type ByHash<V> = HashMap<u64, V, BuildHasherDefault<Prehashed>>;

/// One shard of the index: hash → place. A hash is in `one` while a single live key has it,
/// in `many` once two do.
#[derive(Default)]
struct Index {
    one: ByHash<Place>,
    many: ByHash<Vec<Place>>,
}

impl Index {
    /// The places of the live keys with hash `h`.
    fn places(&self, h: u64) -> Vec<Place> {
        match self.one.get(&h) {
            Some(p) => vec![*p],
            None if self.many.is_empty() => Vec::new(),
            None => self.many.get(&h).cloned().unwrap_or_default(),
        }
    }

    /// Points `key` (hash `h`) at `at`, or forgets it if `at` is `None`. `key_at` reads the key
    /// stored at a place, to tell apart keys that share a hash.
    fn set(
        &mut self,
        h: u64,
        key: &[u8],
        at: Option<Place>,
        key_at: impl Fn(Place) -> Result<Vec<u8>>,
    ) -> Result<()> {
        let places = self.places(h);
        if places.is_empty() {
            // No live key has this hash: the usual case, a new unit.
            if let Some(at) = at {
                self.one.insert(h, at);
            }
            return Ok(());
        }
        let mut kept = Vec::with_capacity(places.len() + 1);
        for p in places {
            if key_at(p)? != key {
                kept.push(p);
            }
        }
        kept.extend(at);
        self.one.remove(&h);
        self.many.remove(&h);
        match kept[..] {
            [] => {}
            [only] => {
                self.one.insert(h, only);
            }
            _ => {
                self.many.insert(h, kept);
            }
        }
        Ok(())
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.one.len() + self.many.values().map(Vec::len).sum::<usize>()
    }
}

/// One entry of a chunk: a key and its value, or no value for a removal.
type Entry<'a> = (&'a [u8], Option<&'a [u8]>);

/// See the module docs.
pub(crate) struct ChunkedTable {
    tree: sled::Tree,
    /// The index's [`SHARDS`] shards; the shard of hash `h` is `shard_of(h)`.
    index: Vec<RwLock<Index>>,
    /// The next chunk's sequence number; held while appending, so appends never interleave.
    next: Mutex<u64>,
    hasher: RandomState,
}

impl std::fmt::Debug for ChunkedTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkedTable").finish_non_exhaustive()
    }
}

fn sled_error(context: &'static str) -> impl Fn(sled::Error) -> StoreError {
    move |e| StoreError::sled(context, e)
}

impl ChunkedTable {
    /// Opens the table in `db` and builds its index from every stored chunk.
    ///
    /// Errors: [`StoreError::Corrupt`] if a chunk does not parse.
    pub(crate) fn open(db: &sled::Db) -> Result<ChunkedTable> {
        ChunkedTable::open_with_room(db, INITIAL_ROOM)
    }

    /// [`ChunkedTable::open`] with room for `room` keys before the index first grows.
    fn open_with_room(db: &sled::Db, room: usize) -> Result<ChunkedTable> {
        let tree = db
            .open_tree(TREE_NAME)
            .map_err(sled_error("opening the assignment chunks"))?;
        let next = match tree
            .last()
            .map_err(sled_error("reading the assignment chunks"))?
        {
            Some((k, _)) => seq_of(&k)? + 1,
            None => 0,
        };
        let table = ChunkedTable {
            tree,
            index: (0..SHARDS)
                .map(|_| {
                    let mut shard = Index::default();
                    shard.one.reserve(room.div_ceil(SHARDS));
                    RwLock::new(shard)
                })
                .collect(),
            next: Mutex::new(next),
            hasher: RandomState::new(),
        };
        for chunk in table.tree.iter() {
            let (k, bytes) = chunk.map_err(sled_error("reading the assignment chunks"))?;
            let seq = seq_of(&k)?;
            let placed = parse(seq, &bytes)?
                .into_iter()
                .enumerate()
                .map(|(pos, (key, value))| (table.hash(key), key, value.map(|_| place(seq, pos))))
                .collect();
            table.point(placed)?;
        }
        Ok(table)
    }

    /// The number of keys with a value.
    #[cfg(test)]
    fn len(&self) -> usize {
        (0..SHARDS).map(|s| self.read_shard(s).len()).sum()
    }

    /// The shard with number `shard`, for reading.
    fn read_shard(&self, shard: usize) -> std::sync::RwLockReadGuard<'_, Index> {
        self.index[shard].read().unwrap_or_else(|p| p.into_inner())
    }

    /// The shard of hash `h`, for writing.
    fn write_shard(&self, h: u64) -> std::sync::RwLockWriteGuard<'_, Index> {
        self.index[shard_of(h)]
            .write()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    /// The chunk with sequence number `seq`.
    fn chunk(&self, seq: u64) -> Result<sled::IVec> {
        self.tree
            .get(seq.to_be_bytes())
            .map_err(sled_error("reading an assignment chunk"))?
            .ok_or_else(|| {
                StoreError::corrupt(
                    TREE_NAME,
                    &seq.to_be_bytes(),
                    "the chunk the assignment index points at is missing",
                )
            })
    }

    /// The key stored at `at`.
    fn key_at(&self, at: Place) -> Result<Vec<u8>> {
        let (seq, pos) = unplace(at);
        let bytes = self.chunk(seq)?;
        let entries = parse(seq, &bytes)?;
        let (key, _) = entries.get(pos).ok_or_else(|| missing_entry(seq))?;
        Ok(key.to_vec())
    }

    /// The value at `key`, if the table holds one.
    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let h = self.hash(key);
        let places = self.read_shard(shard_of(h)).places(h);
        for at in places {
            let (seq, pos) = unplace(at);
            let bytes = self.chunk(seq)?;
            let entries = parse(seq, &bytes)?;
            match entries.get(pos) {
                Some((k, value)) if *k == key => return Ok(value.map(<[u8]>::to_vec)),
                Some(_) => {}
                None => return Err(missing_entry(seq)),
            }
        }
        Ok(None)
    }

    /// Appends `writes` (one batch's, in order) as new chunks, then points the index at them.
    ///
    /// Readers find a key only once its chunk is in sled. Errors leave the index as it was.
    pub(crate) fn append(&self, writes: &RawWrites) -> Result<()> {
        if writes.is_empty() {
            return Ok(());
        }
        let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
        let mut placed = Vec::with_capacity(writes.len());
        for chunk in writes.chunks(CHUNK_ENTRIES) {
            let seq = *next;
            self.tree
                .insert(seq.to_be_bytes(), encode(chunk))
                .map_err(sled_error("appending an assignment chunk"))?;
            *next += 1;
            for (pos, (key, value)) in chunk.iter().enumerate() {
                let at = value.as_ref().map(|_| place(seq, pos));
                placed.push((self.hash(key), key.as_slice(), at));
            }
        }
        self.point(placed)
    }

    /// Points the index at each `(hash, key, place)` in order (no place: the key was removed),
    /// growing the shards they go to first.
    fn point(&self, placed: Vec<(u64, &[u8], Option<Place>)>) -> Result<()> {
        self.make_room(placed.iter().map(|(h, _, _)| *h));
        for (h, key, at) in placed {
            self.write_shard(h).set(h, key, at, |p| self.key_at(p))?;
        }
        Ok(())
    }

    /// Grows each shard that the keys with hashes `coming` might not fit in, without holding
    /// readers up.
    ///
    /// A growing `HashMap` rehashes every entry where it stands (tens of milliseconds per
    /// million keys, with readers locked out). Instead the bigger copy is built under the
    /// shard's read lock, which readers share, and swapped in under its write lock. Only the
    /// writer changes the index (in [`ChunkedTable::append`], under the `next` lock, or in
    /// `open`), so nothing is added meanwhile.
    fn make_room(&self, coming: impl Iterator<Item = u64>) {
        let mut more = [0usize; SHARDS];
        for h in coming {
            more[shard_of(h)] += 1;
        }
        for (shard, more) in more.into_iter().enumerate().filter(|(_, n)| *n > 0) {
            let index = self.read_shard(shard);
            let wanted = index.one.len() + more;
            if wanted <= index.one.capacity() {
                continue;
            }
            let mut bigger = ByHash::with_capacity_and_hasher(wanted * 2, Default::default());
            bigger.extend(index.one.iter().map(|(h, at)| (*h, *at)));
            drop(index);
            self.index[shard]
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .one = bigger;
        }
    }

    /// Every live entry whose key starts with `prefix` and is at least `start`, in key order.
    ///
    /// Reads every chunk: scans serve rare whole-experiment reads (`rebuild`).
    pub(crate) fn scan_from(&self, prefix: &[u8], start: &[u8]) -> Entries<'_> {
        match self.live(|k| k.starts_with(prefix) && k >= start) {
            Ok(live) => Box::new(live.into_iter().map(Ok)),
            Err(e) => Box::new(std::iter::once(Err(e))),
        }
    }

    /// The greatest live key that is at most `key` and starts with `prefix`.
    pub(crate) fn last_at_or_before(&self, prefix: &[u8], key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self
            .live(|k| k.starts_with(prefix) && k <= key)?
            .into_iter()
            .next_back()
            .map(|(k, _)| k))
    }

    /// The live entries whose keys pass `wanted`, by key.
    fn live(&self, wanted: impl Fn(&[u8]) -> bool) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut latest: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
        for chunk in self.tree.iter() {
            let (k, bytes) = chunk.map_err(sled_error("scanning the assignment chunks"))?;
            let seq = seq_of(&k)?;
            for (key, value) in parse(seq, &bytes)? {
                if wanted(key) {
                    latest.insert(key.to_vec(), value.map(<[u8]>::to_vec));
                }
            }
        }
        Ok(latest
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect())
    }
}

fn seq_of(key: &[u8]) -> Result<u64> {
    <[u8; 8]>::try_from(key)
        .map(u64::from_be_bytes)
        .map_err(|_| StoreError::corrupt(TREE_NAME, key, "a chunk key is not 8 bytes"))
}

fn missing_entry(seq: u64) -> StoreError {
    StoreError::corrupt(
        TREE_NAME,
        &seq.to_be_bytes(),
        "the entry the assignment index points at is missing from its chunk",
    )
}

/// A chunk: the format byte, the entry count (`u16` LE), then each entry in the write-ahead
/// log's layout ([`crate::wal::put_entry`]): a presence byte, the key and, if present, the
/// value, both after their `u32` LE length.
fn encode(entries: &[(Vec<u8>, Option<Vec<u8>>)]) -> Vec<u8> {
    let size: usize = entries
        .iter()
        .map(|(k, v)| 9 + k.len() + v.as_ref().map_or(0, Vec::len))
        .sum();
    let mut out = Vec::with_capacity(3 + size);
    out.push(FORMAT);
    let count = u16::try_from(entries.len()).expect("a chunk holds at most CHUNK_ENTRIES");
    out.extend_from_slice(&count.to_le_bytes());
    for (key, value) in entries {
        crate::wal::put_entry(&mut out, key, value.as_deref());
    }
    out
}

/// The entries of chunk `seq`, or `Corrupt` if its bytes are not a whole chunk.
fn parse(seq: u64, chunk: &[u8]) -> Result<Vec<Entry<'_>>> {
    use crate::wal::{take, take_entry};
    let entries = (|| {
        let mut rest = chunk;
        if take(&mut rest, 1)? != [FORMAT] {
            return None;
        }
        let count = usize::from(u16::from_le_bytes(take(&mut rest, 2)?.try_into().ok()?));
        if count == 0 || count > CHUNK_ENTRIES {
            return None;
        }
        let entries = (0..count)
            .map(|_| take_entry(&mut rest))
            .collect::<Option<Vec<_>>>()?;
        rest.is_empty().then_some(entries)
    })();
    entries.ok_or_else(|| {
        StoreError::corrupt(
            TREE_NAME,
            &seq.to_be_bytes(),
            "the chunk is damaged (it does not parse as whole entries)",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Opens sled in `dir` as the store does: a directory closed a moment ago may still be
    /// locked by sled's I/O threads, and the store waits for that.
    fn sled_in(dir: &std::path::Path) -> sled::Db {
        crate::sled_store::open_db(dir, 64 << 20).expect("sled opens")
    }

    fn table() -> (tempfile::TempDir, sled::Db, ChunkedTable) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let db = sled_in(dir.path());
        let table = ChunkedTable::open(&db).expect("the table opens");
        (dir, db, table)
    }

    fn put(k: &str, v: &str) -> (Vec<u8>, Option<Vec<u8>>) {
        (k.as_bytes().to_vec(), Some(v.as_bytes().to_vec()))
    }

    #[test]
    fn entries_round_trip_and_damage_is_corrupt() {
        let entries = vec![put("a", "1"), (b"b".to_vec(), None), put("c", "")];
        let bytes = encode(&entries);
        let parsed = parse(0, &bytes).expect("parses");
        assert_eq!(
            parsed,
            vec![
                (&b"a"[..], Some(&b"1"[..])),
                (&b"b"[..], None),
                (&b"c"[..], Some(&b""[..]))
            ]
        );
        // Cut anywhere, or with a byte too many, a chunk no longer parses.
        for cut in 0..bytes.len() {
            assert!(parse(0, &bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(parse(0, &longer).is_err());
    }

    #[test]
    fn later_entries_supersede_earlier_ones_and_survive_reopening() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        {
            let db = sled_in(dir.path());
            let table = ChunkedTable::open(&db).expect("opens");
            let many: RawWrites = (0..70).map(|i| put(&format!("k{i:03}"), "v1")).collect();
            table.append(&many).expect("appends three chunks");
            table
                .append(&vec![put("k005", "v2"), (b"k006".to_vec(), None)])
                .expect("appends");
            assert_eq!(table.get(b"k005").unwrap().as_deref(), Some(&b"v2"[..]));
            assert_eq!(table.get(b"k006").unwrap(), None);
            assert_eq!(table.get(b"k069").unwrap().as_deref(), Some(&b"v1"[..]));
            assert_eq!(table.get(b"k070").unwrap(), None);
            assert_eq!(table.len(), 69);
            db.flush().expect("flushes");
        }
        let db = sled_in(dir.path());
        let table = ChunkedTable::open(&db).expect("reopens");
        assert_eq!(table.len(), 69);
        assert_eq!(table.get(b"k005").unwrap().as_deref(), Some(&b"v2"[..]));
        assert_eq!(table.get(b"k006").unwrap(), None);
        let scanned: Vec<_> = table
            .scan_from(b"k00", b"k004")
            .map(|e| e.expect("reads").0)
            .collect();
        let expected: Vec<Vec<u8>> = ["k004", "k005", "k007", "k008", "k009"]
            .iter()
            .map(|k| k.as_bytes().to_vec())
            .collect();
        assert_eq!(scanned, expected);
        assert_eq!(
            table.last_at_or_before(b"k00", b"k006").unwrap().as_deref(),
            Some(&b"k005"[..])
        );
        // New chunks continue after the stored ones.
        table.append(&vec![put("k006", "v3")]).expect("appends");
        assert_eq!(table.get(b"k006").unwrap().as_deref(), Some(&b"v3"[..]));
    }

    #[test]
    fn the_index_grows_by_copy_and_keeps_every_key() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let db = sled_in(dir.path());
        let table = ChunkedTable::open_with_room(&db, 8).expect("opens");
        let room = |t: &ChunkedTable| -> usize {
            (0..SHARDS).map(|s| t.read_shard(s).one.capacity()).sum()
        };
        let before = room(&table);
        for batch in 0..10 {
            let writes: RawWrites = (0..40)
                .map(|i| put(&format!("b{batch}-k{i}"), &format!("{batch}/{i}")))
                .collect();
            table.append(&writes).expect("appends");
        }
        assert!(
            room(&table) >= 400 && before < 400,
            "{before} then {}",
            room(&table)
        );
        assert_eq!(table.len(), 400);
        for batch in 0..10 {
            for i in 0..40 {
                let got = table.get(format!("b{batch}-k{i}").as_bytes()).unwrap();
                assert_eq!(got, Some(format!("{batch}/{i}").into_bytes()));
            }
        }
    }

    #[test]
    fn keys_spread_over_the_shards_and_a_shard_grows_alone() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let db = sled_in(dir.path());
        let table = ChunkedTable::open_with_room(&db, SHARDS * 4).expect("opens");
        let capacities = |t: &ChunkedTable| -> Vec<usize> {
            (0..SHARDS)
                .map(|s| t.read_shard(s).one.capacity())
                .collect()
        };
        let mut grown = None;
        for i in 0..2_000 {
            let before = capacities(&table);
            table
                .append(&vec![put(&format!("k{i}"), "v")])
                .expect("appends");
            let changed = before
                .iter()
                .zip(capacities(&table))
                .filter(|(a, b)| **a != *b)
                .count();
            assert!(changed <= 1, "one key grew {changed} shards");
            if changed == 1 && grown.is_none() {
                grown = Some(i);
            }
        }
        assert!(grown.is_some(), "no shard grew");
        let sizes: Vec<usize> = (0..SHARDS).map(|s| table.read_shard(s).len()).collect();
        assert!(
            sizes.iter().all(|n| *n > 0),
            "a shard got no key: {sizes:?}"
        );
        assert_eq!(sizes.iter().sum::<usize>(), 2_000);
    }

    #[test]
    fn keys_that_share_a_hash_are_told_apart() {
        let (_dir, _db, table) = table();
        table
            .append(&vec![put("x", "1"), put("y", "2")])
            .expect("appends");
        // Force a shared hash: point the index at both places under one made-up hash.
        {
            let (hx, hy) = (table.hash(b"x"), table.hash(b"y"));
            let px = table.write_shard(hx).one.remove(&hx).unwrap();
            let py = table.write_shard(hy).one.remove(&hy).unwrap();
            let mut index = table.write_shard(7);
            index.many.insert(7, vec![px, py]);
            index.set(7, b"x", Some(px), |p| table.key_at(p)).unwrap();
            assert_eq!(index.places(7), vec![py, px]);
            index.set(7, b"y", None, |p| table.key_at(p)).unwrap();
            assert_eq!(index.places(7), vec![px]);
            assert!(index.many.is_empty());
        }
    }
}
