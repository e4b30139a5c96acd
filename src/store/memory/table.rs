//! The hash table behind each [`MemoryStore`](super::MemoryStore)
//! shard: records by store key, kept *in* the table so a lookup reads one
//! line of control bytes and then the record, with no pointer to follow.
//!
//! Two arrays of equal length:
//! - `ctrl`, one byte per bucket: 0 for empty, else 7 bits of the key with
//!   the high bit set (the tag). A probe scans these, 64 to a cache line,
//!   and only reads a record whose tag matches (1 in 128 by chance).
//! - `slots`, the records themselves.
//!
//! Linear probing from a home bucket; deletion shifts later records of the
//! probe run back (no tombstones). At 90% full a miss scans about 50
//! control bytes on average (under a cache line), and a deletion reads the
//! home of about as many records after it (microseconds when they are not
//! cached); runs much longer than the average exist, so the occasional
//! deletion costs more. Lookups of present keys probe about 5 buckets. Growth
//! moves every record of the table once (about four moves per record while
//! a table grows from empty), under the shard's write lock. Capacity is not a power of two: the home
//! bucket is the key's hash scaled to the capacity, so the table can grow
//! by a quarter when 90% full and is always between 72% and 90% full once
//! it has grown, which is what keeps records of ~200 bytes in place without
//! the half-empty tables that doubling leaves.
//!
//! The hash is 8 bytes of the key: store keys are SHA-256 outputs, uniform
//! already, and only server-generated keys are ever inserted, so a client
//! cannot choose keys that collide (it can choose which key it looks up,
//! not which keys the table holds).
//!
//! Safe Rust throughout; the invariants below are checked against a
//! `HashMap` model by the tests at the end of this file.
//! - A bucket's control byte is the tag of its record, or 0 with no record.
//! - Every record sits in the probe run of its home bucket: no empty bucket
//!   lies between its home and itself.
//! - At least one bucket is empty, so every probe ends.

use crate::id::StoreKey;

/// An empty bucket's control byte.
const EMPTY: u8 = 0;

/// Grow when a table this many tenths full would take another record.
const MAX_LOAD_TENTHS: usize = 9;

/// The smallest table that holds anything.
const MIN_CAPACITY: usize = 8;

/// What a bounded sweep ([`Table::retain_some`]) did.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Slice {
    /// Records judged.
    pub(crate) judged: usize,
    /// Records removed (of those judged).
    pub(crate) removed: usize,
    /// The bucket to start from next time.
    pub(crate) next: usize,
}

/// A value that knows the key it is filed under.
pub(crate) trait Keyed {
    /// The key.
    fn key(&self) -> &StoreKey;
}

/// Records by key; see the module documentation.
pub(crate) struct Table<V> {
    ctrl: Vec<u8>,
    slots: Vec<Option<V>>,
    len: usize,
}

impl<V> Default for Table<V> {
    fn default() -> Table<V> {
        Table {
            ctrl: Vec::new(),
            slots: Vec::new(),
            len: 0,
        }
    }
}

/// The key's hash: bytes 8..16 (bytes 0..8 pick the shard).
#[inline]
fn hash_of(key: &StoreKey) -> u64 {
    let b = key.as_bytes();
    u64::from_le_bytes([b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]])
}

/// The key's tag: 7 bits the hash did not use, high bit set.
#[inline]
fn tag_of(key: &StoreKey) -> u8 {
    key.as_bytes()[16] | 0x80
}

/// Whether `x` lies in the cyclic interval `(from, to]`.
#[inline]
fn cyclically_within(from: usize, x: usize, to: usize) -> bool {
    if from <= to {
        from < x && x <= to
    } else {
        from < x || x <= to
    }
}

impl<V: Keyed> Table<V> {
    /// The number of records.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The home bucket of `key` in a table of `capacity` (> 0) buckets.
    #[inline]
    fn home(key: &StoreKey, capacity: usize) -> usize {
        ((u128::from(hash_of(key)) * capacity as u128) >> 64) as usize
    }

    #[inline]
    fn next(&self, i: usize) -> usize {
        if i + 1 == self.ctrl.len() { 0 } else { i + 1 }
    }

    /// The bucket holding `key`'s record, if it is here.
    #[inline]
    fn bucket_of(&self, key: &StoreKey) -> Option<usize> {
        if self.ctrl.is_empty() {
            return None;
        }
        let tag = tag_of(key);
        let mut i = Self::home(key, self.ctrl.len());
        loop {
            let c = *self.ctrl.get(i)?;
            if c == EMPTY {
                return None;
            }
            if c == tag
                && self
                    .slots
                    .get(i)
                    .and_then(Option::as_ref)
                    .is_some_and(|v| v.key() == key)
            {
                return Some(i);
            }
            i = self.next(i);
        }
    }

    /// The record filed under `key`.
    #[inline]
    pub(crate) fn get(&self, key: &StoreKey) -> Option<&V> {
        let i = self.bucket_of(key)?;
        self.slots.get(i)?.as_ref()
    }

    /// The value filed under `key`, to change in place (its key must not
    /// change).
    pub(crate) fn get_mut(&mut self, key: &StoreKey) -> Option<&mut V> {
        let i = self.bucket_of(key)?;
        self.slots.get_mut(i)?.as_mut()
    }

    /// Whether a record is filed under `key`.
    pub(crate) fn contains(&self, key: &StoreKey) -> bool {
        self.bucket_of(key).is_some()
    }

    /// Files `value` under its key, which must not be present (check with
    /// [`Table::contains`]).
    pub(crate) fn insert(&mut self, value: V) {
        self.reserve_one();
        self.place(value);
        self.len += 1;
    }

    /// Puts `value` in the first empty bucket of its probe run. The table
    /// has one (at most 90% full).
    fn place(&mut self, value: V) {
        let mut i = Self::home(value.key(), self.ctrl.len());
        while self.ctrl.get(i).is_some_and(|&c| c != EMPTY) {
            i = self.next(i);
        }
        if let (Some(c), Some(s)) = (self.ctrl.get_mut(i), self.slots.get_mut(i)) {
            *c = tag_of(value.key());
            *s = Some(value);
        }
    }

    /// Makes room for one more record: grows by a quarter (re-placing every
    /// record) when the table would be more than 90% full.
    fn reserve_one(&mut self) {
        let cap = self.ctrl.len();
        if (self.len + 1) * 10 <= cap * MAX_LOAD_TENTHS {
            return;
        }
        self.rebuild((cap + cap / 4).max(MIN_CAPACITY));
    }

    /// Re-places every record in a table of `capacity` buckets.
    fn rebuild(&mut self, capacity: usize) {
        let old = std::mem::replace(
            &mut self.slots,
            std::iter::repeat_with(|| None).take(capacity).collect(),
        );
        self.ctrl = vec![EMPTY; capacity];
        for v in old.into_iter().flatten() {
            self.place(v);
        }
    }

    /// Removes and returns the record filed under `key`.
    pub(crate) fn remove(&mut self, key: &StoreKey) -> Option<V> {
        let i = self.bucket_of(key)?;
        let removed = self.remove_at(i);
        if self.len == 0 {
            // Give the memory back once the table is empty again.
            *self = Table::default();
        }
        removed
    }

    /// Takes the record in bucket `i` and shifts later records of its probe
    /// run back into the hole, so no lookup meets an empty bucket before
    /// its record (deletion without tombstones).
    fn remove_at(&mut self, i: usize) -> Option<V> {
        let removed = self.slots.get_mut(i)?.take()?;
        self.len -= 1;
        let cap = self.ctrl.len();
        let mut hole = i;
        let mut j = self.next(i);
        while let Some(v) = self.slots.get(j).and_then(Option::as_ref) {
            // A record may move back to the hole unless its home lies
            // cyclically in (hole, j]: then it would sit before its home.
            if !cyclically_within(hole, Self::home(v.key(), cap), j) {
                self.slots.swap(hole, j);
                self.ctrl.swap(hole, j);
                hole = j;
            }
            j = self.next(j);
        }
        if let Some(c) = self.ctrl.get_mut(hole) {
            *c = EMPTY;
        }
        Some(removed)
    }

    /// Keeps only the records for which `keep` is true; returns how many
    /// were removed. Shrinks the table when it ends up under a third full.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&V) -> bool) -> usize {
        let before = self.len;
        let mut i = 0;
        while i < self.slots.len() {
            // Removing shifts a later record into `i`: judge it too.
            match self.slots.get(i).and_then(Option::as_ref) {
                Some(v) if !keep(v) => {
                    let _removed = self.remove_at(i);
                }
                _ => i += 1,
            }
        }
        if self.len == 0 {
            *self = Table::default();
        } else if self.len * 3 < self.ctrl.len() && self.ctrl.len() > MIN_CAPACITY {
            // Back to 72% full, as just after a growth.
            self.rebuild((self.len * 10 / 7).max(MIN_CAPACITY));
        }
        before - self.len
    }

    /// Judges at most `records` records, from bucket `start` on (wrapping,
    /// at most once round), removing those for which `keep` is false: a
    /// bounded slice of [`Table::retain`], for sweeping a little at a time.
    /// Returns how many were judged and removed, and the bucket to start
    /// from next time. Never shrinks the table (a later full sweep does),
    /// so `start` stays meaningful between calls unless the table grows or
    /// empties.
    pub(crate) fn retain_some(
        &mut self,
        start: usize,
        records: usize,
        mut keep: impl FnMut(&V) -> bool,
    ) -> Slice {
        let cap = self.ctrl.len();
        if cap == 0 {
            return Slice::default();
        }
        let before = self.len;
        let mut i = start % cap;
        let (mut judged, mut passed) = (0, 0);
        while judged < records && passed < cap {
            // Removing shifts a later record into `i`: judge it too (each
            // removal shrinks the table, so this ends).
            match self.slots.get(i).and_then(Option::as_ref) {
                Some(v) if !keep(v) => {
                    judged += 1;
                    let _removed = self.remove_at(i);
                }
                occupied => {
                    judged += usize::from(occupied.is_some());
                    passed += 1;
                    i = self.next(i);
                }
            }
        }
        let removed = before - self.len;
        if self.len == 0 {
            *self = Table::default();
            i = 0;
        }
        Slice {
            judged,
            removed,
            next: i,
        }
    }

    /// Every record, in no particular order.
    #[cfg(test)]
    pub(crate) fn iter(&self) -> impl Iterator<Item = &V> {
        self.slots.iter().flatten()
    }

    /// Bytes held by the two arrays (capacity, not use).
    #[cfg(test)]
    pub(crate) fn heap_bytes(&self) -> usize {
        self.ctrl.capacity() + self.slots.capacity() * std::mem::size_of::<Option<V>>()
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
            b[16] = (n >> 3) as u8;
        }
        StoreKey::from_bytes(b)
    }

    /// Checks every invariant in the module documentation.
    fn check(t: &Table<Item>, model: &HashMap<StoreKey, u64>) {
        assert_eq!(t.len(), model.len());
        assert_eq!(t.iter().count(), model.len());
        assert_eq!(t.ctrl.len(), t.slots.len());
        if t.ctrl.is_empty() {
            assert!(model.is_empty());
            return;
        }
        let cap = t.ctrl.len();
        assert!(t.len() * 10 <= cap * MAX_LOAD_TENTHS, "over 90% full");
        for (i, (c, slot)) in t.ctrl.iter().zip(&t.slots).enumerate() {
            match slot {
                None => assert_eq!(*c, EMPTY),
                Some(item) => {
                    assert_eq!(*c, tag_of(&item.0));
                    // No empty bucket between home and the record.
                    let mut j = Table::<Item>::home(&item.0, cap);
                    while j != i {
                        assert_ne!(t.ctrl[j], EMPTY, "record {i} is cut off from its home");
                        j = (j + 1) % cap;
                    }
                }
            }
        }
        for (k, v) in model {
            assert_eq!(t.get(k).map(|i| i.1), Some(*v));
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
                        t.insert(Item(k, v));
                        model.insert(k, v);
                    }
                }
                Op::Replace(k, v) => {
                    let k = key(k, collide);
                    let old = t
                        .get_mut(&k)
                        .map(|slot| std::mem::replace(slot, Item(k, v)).1);
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
    fn growing_then_emptying_frees_everything() {
        let mut t = Table::default();
        let n = 5_000;
        for i in 0..n {
            t.insert(Item(key(i, false), i));
        }
        let cap = t.ctrl.len();
        // Growth by a quarter keeps it between 72% and 90% full.
        assert!(
            n as usize * 100 >= cap * 72 && n as usize * 10 <= cap * 9,
            "{n} in {cap}"
        );
        for i in 0..n {
            assert_eq!(t.remove(&key(i, false)).map(|x| x.1), Some(i));
        }
        assert_eq!(t.len(), 0);
        assert_eq!(t.heap_bytes(), 0);
    }

    #[test]
    fn a_sweep_that_leaves_few_shrinks_the_table() {
        let mut t = Table::default();
        for i in 0..1_000 {
            t.insert(Item(key(i, false), i));
        }
        assert_eq!(t.retain(|item| item.1 < 100), 900);
        let mut model = HashMap::new();
        for i in 0..100 {
            model.insert(key(i, false), i);
        }
        check(&t, &model);
        assert!(
            t.ctrl.len() < 200,
            "{} buckets for 100 records",
            t.ctrl.len()
        );
    }

    #[test]
    fn a_bounded_sweep_judges_at_most_its_slice_and_goes_on_from_there() {
        let mut t = Table::default();
        let mut model = HashMap::new();
        for i in 0..1_000 {
            t.insert(Item(key(i, false), i));
            model.insert(key(i, false), i);
        }
        // Remove the odd ones, 64 records at a time: each call judges at
        // most 64, and the calls together cover the table.
        let (mut at, mut removed) = (0, 0);
        for _ in 0..1_000 / 64 + 1 {
            let mut judged = 0;
            let slice = t.retain_some(at, 64, |item| {
                judged += 1;
                item.1 % 2 == 0
            });
            assert!(
                judged <= 64 && slice.judged == judged,
                "{slice:?}, {judged}"
            );
            removed += slice.removed;
            at = slice.next;
        }
        model.retain(|_, v| *v % 2 == 0);
        assert_eq!(removed, 500);
        check(&t, &model);
        // One call goes round at most once.
        let slice = t.retain_some(at, usize::MAX, |_| true);
        assert_eq!((slice.judged, slice.removed), (500, 0));
        // Emptied by slices, it gives its memory back.
        let slice = t.retain_some(0, usize::MAX, |_| false);
        assert_eq!(slice.removed, 500);
        assert_eq!(t.heap_bytes(), 0);
        assert_eq!(t.retain_some(7, 64, |_| false), Slice::default());
    }

    #[test]
    fn a_small_table_stays_small() {
        let mut t = Table::default();
        t.insert(Item(key(1, false), 1));
        assert_eq!(t.ctrl.len(), MIN_CAPACITY);
    }

    #[test]
    fn a_missing_key_is_not_found_in_a_full_probe_run() {
        let mut t = Table::default();
        for i in 0..7 {
            t.insert(Item(key(i, true), i));
        }
        assert!(t.get(&key(99, true)).is_none());
        assert!(t.get_mut(&key(99, true)).is_none());
    }
}
