//! The hash table behind each [`MemoryStore`](super::memory::MemoryStore)
//! shard: records by store key, laid out so a lookup costs two dependent
//! memory reads, where a general-purpose map of boxed records costs three.
//!
//! Two arrays:
//! - the *index*, open-addressed with linear probing, one `u64` per bucket:
//!   32 bits of the key (the tag) and the position of the record in the
//!   slab. A probe compares tags inside the index, so it reads one cache
//!   line of it (eight buckets) and then the one record whose tag matched.
//! - the *slab*, the records themselves, packed densely in fixed-size
//!   chunks: growth never moves a record and never leaves more than one
//!   chunk's worth of unused room. Removal moves the last record into the
//!   hole, so the slab has no holes either.
//!
//! The tag doubles as the hash: store keys are SHA-256 outputs, uniform
//! already, and only server-generated keys are ever inserted, so a client
//! cannot choose keys that collide (it can choose which key it looks up,
//! not which keys the table holds).
//!
//! Safe Rust throughout; the invariants below are checked against a
//! `HashMap` model by the tests at the end of this file.
//! - Every record in the slab has exactly one index bucket pointing at it,
//!   holding its tag, and that bucket is reachable by linear probing from
//!   the tag's home bucket without crossing an empty one.
//! - The index is at most 7/8 full, so probing always ends.

use crate::id::StoreKey;

/// Records per slab chunk: 256 records of ~192 bytes is 48 KiB, so at a
/// million sessions (about 15,600 per shard) the unused tail of the last
/// chunk is under 2% of the slab.
const CHUNK_BITS: u32 = 8;
const CHUNK: usize = 1 << CHUNK_BITS;

/// An empty index bucket.
const EMPTY: u64 = 0;

/// A value that knows the key it is filed under.
pub(crate) trait Keyed {
    /// The key.
    fn key(&self) -> &StoreKey;
}

/// Records by key; see the module documentation.
pub(crate) struct Table<V> {
    /// `EMPTY`, or `tag << 32 | (slab position + 1)`. Length is zero or a
    /// power of two.
    index: Vec<u64>,
    /// Full chunks of `CHUNK` records, then one partly filled chunk.
    slab: Vec<Vec<V>>,
    len: usize,
}

impl<V> Default for Table<V> {
    fn default() -> Table<V> {
        Table {
            index: Vec::new(),
            slab: Vec::new(),
            len: 0,
        }
    }
}

/// 32 bits of the key: its tag, and (masked) its home bucket. Bytes 0..8
/// pick the shard, so these come from bytes 8..12.
#[inline]
fn tag_of(key: &StoreKey) -> u32 {
    let b = key.as_bytes();
    u32::from_le_bytes([b[8], b[9], b[10], b[11]])
}

#[inline]
fn tag_in(bucket: u64) -> u32 {
    (bucket >> 32) as u32
}

#[inline]
fn position_in(bucket: u64) -> usize {
    // `bucket != EMPTY`, so the low half is at least 1.
    (bucket as u32 as usize).wrapping_sub(1)
}

impl<V: Keyed> Table<V> {
    /// The number of records.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    fn mask(&self) -> usize {
        self.index.len().wrapping_sub(1)
    }

    #[inline]
    fn at(&self, pos: usize) -> Option<&V> {
        self.slab.get(pos >> CHUNK_BITS)?.get(pos & (CHUNK - 1))
    }

    fn at_mut(&mut self, pos: usize) -> Option<&mut V> {
        self.slab
            .get_mut(pos >> CHUNK_BITS)?
            .get_mut(pos & (CHUNK - 1))
    }

    /// The index bucket holding `key`'s record, if it is here.
    #[inline]
    fn bucket_of(&self, key: &StoreKey) -> Option<usize> {
        if self.index.is_empty() {
            return None;
        }
        let tag = tag_of(key);
        let mask = self.mask();
        let mut b = tag as usize & mask;
        loop {
            let bucket = self.index[b];
            if bucket == EMPTY {
                return None;
            }
            if tag_in(bucket) == tag && self.at(position_in(bucket)).is_some_and(|v| v.key() == key)
            {
                return Some(b);
            }
            b = (b + 1) & mask;
        }
    }

    /// The record filed under `key`.
    #[inline]
    pub(crate) fn get(&self, key: &StoreKey) -> Option<&V> {
        let b = self.bucket_of(key)?;
        self.at(position_in(self.index[b]))
    }

    /// Whether a record is filed under `key`.
    pub(crate) fn contains(&self, key: &StoreKey) -> bool {
        self.bucket_of(key).is_some()
    }

    /// Puts `value` in place of the record with the same key, returning the
    /// old one; if there is none, gives `value` back.
    pub(crate) fn replace(&mut self, value: V) -> Result<V, V> {
        let Some(b) = self.bucket_of(value.key()) else {
            return Err(value);
        };
        let pos = position_in(self.index[b]);
        match self.at_mut(pos) {
            Some(slot) => Ok(std::mem::replace(slot, value)),
            None => Err(value),
        }
    }

    /// Files `value` under its key, which must not be present (check with
    /// [`Table::contains`]). Gives `value` back if the table cannot address
    /// another record (more than `u32::MAX - 1` in one table).
    pub(crate) fn insert(&mut self, value: V) -> Result<(), V> {
        let pos = self.len;
        let Ok(stored) = u32::try_from(pos + 1) else {
            return Err(value);
        };
        self.grow_index_for(self.len + 1);
        let tag = tag_of(value.key());
        // The slab: start a chunk when the last is full; within the
        // chunk, grow by doubling up to `CHUNK`, so small tables stay small.
        match self.slab.last_mut() {
            Some(chunk) if chunk.len() < CHUNK => {
                if chunk.len() == chunk.capacity() {
                    let want = (chunk.capacity() * 2).clamp(4, CHUNK);
                    chunk.reserve_exact(want - chunk.len());
                }
                chunk.push(value);
            }
            _ => {
                let mut chunk = Vec::with_capacity(if self.slab.is_empty() { 4 } else { CHUNK });
                chunk.push(value);
                self.slab.push(chunk);
            }
        }
        self.len += 1;
        self.place(u64::from(tag) << 32 | u64::from(stored));
        Ok(())
    }

    /// Writes `bucket` into the first empty bucket from its home.
    fn place(&mut self, bucket: u64) {
        let mask = self.mask();
        let mut b = tag_in(bucket) as usize & mask;
        while self.index[b] != EMPTY {
            b = (b + 1) & mask;
        }
        self.index[b] = bucket;
    }

    /// Keeps the index at most 7/8 full with `len` records, doubling it
    /// (and re-placing every bucket by its tag) when it would not be.
    fn grow_index_for(&mut self, len: usize) {
        let cap = self.index.len();
        if len.saturating_mul(8) <= cap.saturating_mul(7) {
            return;
        }
        let new_cap = (cap * 2).max(8);
        let old = std::mem::replace(&mut self.index, vec![EMPTY; new_cap]);
        for bucket in old.into_iter().filter(|&b| b != EMPTY) {
            self.place(bucket);
        }
    }

    /// Removes and returns the record filed under `key`.
    pub(crate) fn remove(&mut self, key: &StoreKey) -> Option<V> {
        let b = self.bucket_of(key)?;
        self.remove_bucket(b)
    }

    /// Removes the record that index bucket `b` points at. `None` only if
    /// the slab were empty, which a bucket pointing into it rules out.
    fn remove_bucket(&mut self, b: usize) -> Option<V> {
        let pos = position_in(self.index[b]);
        let moved = self.pop_last()?;
        self.unplace(b);
        // Move the slab's last record into the hole, and repoint its bucket.
        let last = self.len - 1;
        self.len = last;
        let removed = if pos == last {
            moved
        } else {
            if let Some(mb) = self.bucket_of_position(last, moved.key()) {
                let tag = tag_in(self.index[mb]);
                // `pos < last <= u32::MAX - 2`, as insert checked.
                self.index[mb] = u64::from(tag) << 32 | (pos as u64 + 1);
            }
            match self.at_mut(pos) {
                Some(slot) => std::mem::replace(slot, moved),
                // Unreachable: `pos < last` is inside the slab.
                None => moved,
            }
        };
        if self.len == 0 {
            // Give the memory back once the table is empty again.
            *self = Table::default();
        }
        Some(removed)
    }

    /// The index bucket that points at slab position `pos`, holding `key`.
    fn bucket_of_position(&self, pos: usize, key: &StoreKey) -> Option<usize> {
        let mask = self.mask();
        let mut b = tag_of(key) as usize & mask;
        loop {
            let bucket = self.index[b];
            if bucket == EMPTY {
                return None;
            }
            if position_in(bucket) == pos {
                return Some(b);
            }
            b = (b + 1) & mask;
        }
    }

    /// Takes the slab's last record, dropping its chunk if that empties it.
    fn pop_last(&mut self) -> Option<V> {
        let chunk = self.slab.last_mut()?;
        let v = chunk.pop()?;
        if chunk.is_empty() {
            self.slab.pop();
        }
        Some(v)
    }

    /// Empties index bucket `b` and shifts later buckets of the same probe
    /// run back, so no lookup meets an empty bucket before its record
    /// (deletion without tombstones).
    fn unplace(&mut self, mut b: usize) {
        let mask = self.mask();
        let mut next = (b + 1) & mask;
        loop {
            let bucket = self.index[next];
            if bucket == EMPTY {
                break;
            }
            let home = tag_in(bucket) as usize & mask;
            // Move `bucket` back to `b` unless its home lies cyclically in
            // (b, next]: then it would sit before its home.
            let stays = if b <= next {
                b < home && home <= next
            } else {
                b < home || home <= next
            };
            if !stays {
                self.index[b] = bucket;
                b = next;
            }
            next = (next + 1) & mask;
        }
        self.index[b] = EMPTY;
    }

    /// Keeps only the records for which `keep` is true; returns how many
    /// were removed.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&V) -> bool) -> usize {
        let mut removed = 0;
        // From the end, so the record moved into a hole has been judged.
        let mut pos = self.len;
        while pos > 0 {
            pos -= 1;
            let Some(v) = self.at(pos) else { break };
            if keep(v) {
                continue;
            }
            let key = *v.key();
            if let Some(b) = self.bucket_of_position(pos, &key)
                && self.remove_bucket(b).is_some()
            {
                removed += 1;
            }
        }
        removed
    }

    /// Every record, in no particular order.
    #[cfg(test)]
    pub(crate) fn iter(&self) -> impl Iterator<Item = &V> {
        self.slab.iter().flatten()
    }

    /// Bytes held by the index and the slab's chunks (capacity, not use).
    #[cfg(test)]
    pub(crate) fn heap_bytes(&self) -> usize {
        self.index.capacity() * 8
            + self.slab.capacity() * std::mem::size_of::<Vec<V>>()
            + self
                .slab
                .iter()
                .map(|c| c.capacity() * std::mem::size_of::<V>())
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    use proptest::prelude::*;

    #[derive(Debug, Clone, PartialEq)]
    struct Item(StoreKey, u64);

    impl Keyed for Item {
        fn key(&self) -> &StoreKey {
            &self.0
        }
    }

    fn key(n: u64, collide: bool) -> StoreKey {
        let mut b = [0u8; 32];
        b[24..].copy_from_slice(&n.to_le_bytes());
        // Colliding keys share the tag bytes, so they probe the same run.
        if !collide {
            b[8..16].copy_from_slice(&n.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes());
        }
        StoreKey::from_bytes(b)
    }

    /// Checks every invariant in the module documentation.
    fn check(t: &Table<Item>, model: &HashMap<StoreKey, u64>) {
        assert_eq!(t.len(), model.len());
        assert_eq!(t.iter().count(), model.len());
        assert!(t.len() * 8 <= t.index.len() * 7 || t.index.is_empty());
        let mut pointed = vec![0u32; t.len()];
        for &bucket in &t.index {
            if bucket != EMPTY {
                let pos = position_in(bucket);
                assert!(pos < t.len(), "bucket points past the slab");
                pointed[pos] += 1;
                let item = t.at(pos).unwrap();
                assert_eq!(tag_in(bucket), tag_of(&item.0));
            }
        }
        assert!(
            pointed.iter().all(|&n| n == 1),
            "a record is not pointed at exactly once"
        );
        for (k, v) in model {
            assert_eq!(t.get(k).map(|i| i.1), Some(*v));
        }
        // No more than one partly filled chunk, always the last.
        if let Some((_, full)) = t.slab.split_last() {
            assert!(full.iter().all(|c| c.len() == CHUNK));
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u64, u64),
        Replace(u64, u64),
        Remove(u64),
        RetainOdd,
    }

    fn op(keys: u64) -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0..keys, any::<u64>()).prop_map(|(k, v)| Op::Insert(k, v)),
            2 => (0..keys, any::<u64>()).prop_map(|(k, v)| Op::Replace(k, v)),
            4 => (0..keys).prop_map(Op::Remove),
            1 => Just(Op::RetainOdd),
        ]
    }

    fn run(ops: &[Op], collide: bool) {
        let mut t = Table::default();
        let mut model = HashMap::new();
        for op in ops {
            match *op {
                Op::Insert(k, v) => {
                    let k = key(k, collide);
                    if t.contains(&k) {
                        assert!(model.contains_key(&k));
                    } else {
                        assert!(t.insert(Item(k, v)).is_ok());
                        model.insert(k, v);
                    }
                }
                Op::Replace(k, v) => {
                    let k = key(k, collide);
                    let old = t.replace(Item(k, v)).ok().map(|i| i.1);
                    assert_eq!(old, model.get(&k).copied());
                    if old.is_some() {
                        model.insert(k, v);
                    }
                }
                Op::Remove(k) => {
                    let k = key(k, collide);
                    assert_eq!(t.remove(&k).map(|i| i.1), model.remove(&k));
                    assert!(t.get(&k).is_none());
                }
                Op::RetainOdd => {
                    let before = t.len();
                    let removed = t.retain(|i| i.1 % 2 == 1);
                    model.retain(|_, v| *v % 2 == 1);
                    assert_eq!(removed, before - model.len());
                }
            }
            check(&t, &model);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn table_matches_a_hashmap(ops in proptest::collection::vec(op(600), 1..1500)) {
            run(&ops, false);
        }

        #[test]
        fn table_matches_a_hashmap_when_every_key_collides(ops in proptest::collection::vec(op(40), 1..300)) {
            run(&ops, true);
        }
    }

    #[test]
    fn a_thousand_chunks_worth_then_empty_again_frees_everything() {
        let mut t = Table::default();
        let n = (CHUNK * 3 + 17) as u64;
        for i in 0..n {
            assert!(t.insert(Item(key(i, false), i)).is_ok());
        }
        assert_eq!(t.slab.len(), 4);
        for i in 0..n {
            assert_eq!(t.remove(&key(i, false)).map(|x| x.1), Some(i));
        }
        assert_eq!(t.len(), 0);
        assert_eq!(t.heap_bytes(), 0);
    }

    #[test]
    fn a_small_table_stays_small() {
        let mut t = Table::default();
        assert!(t.insert(Item(key(1, false), 1)).is_ok());
        // One record: an 8-bucket index and room for 4 records, not a chunk.
        assert!(t.heap_bytes() <= 8 * 8 + 4 * 24 + 4 * std::mem::size_of::<Item>());
    }

    #[test]
    fn a_missing_key_is_not_found_in_a_full_probe_run() {
        let mut t = Table::default();
        for i in 0..7 {
            assert!(t.insert(Item(key(i, true), i)).is_ok());
        }
        assert!(t.get(&key(99, true)).is_none());
        assert!(t.replace(Item(key(99, true), 0)).is_err());
    }
}
