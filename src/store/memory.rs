//! [`MemoryStore`]: sessions in this process's memory.
//!
//! Records sit in shards, each a `HashMap` under its own `parking_lot`
//! lock, so threads working on different sessions rarely meet. A per-user
//! index maps users to their live keys. Expired records are swept
//! incrementally: a shard that has taken as many inserts as a quarter of its
//! size (at least 64) drops its dead records on the spot, so the cost is
//! amortized over writes and no thread of its own is needed.
//! [`Store::purge_expired`] sweeps everything at once.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::{Mutex, RwLock};

use crate::clock::{Clock, SystemClock, Timestamp};
use crate::id::StoreKey;
use crate::store::{Record, Store, StoreError};

const SHARDS: usize = 64;

/// Store keys are SHA-256 outputs, already uniform, so the map uses 8 of
/// their bytes as the hash instead of hashing again. This is safe against
/// hash flooding because only server-generated keys are ever inserted: a
/// client can choose the key it looks up, not the keys the table holds.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // StoreKey hashes as its 32-byte array: a length prefix, then the
        // bytes. Keep bytes 8..16 of the key (bytes 0..8 pick the shard).
        if bytes.len() >= 16 {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[8..16]);
            self.0 = u64::from_le_bytes(b);
        }
    }

    fn write_usize(&mut self, _: usize) {}
}

type Map = HashMap<StoreKey, Record, BuildHasherDefault<KeyHasher>>;

#[derive(Default)]
struct Shard {
    map: Map,
    inserts_since_sweep: usize,
}

/// An in-memory [`Store`], fast and shared by the threads of one process.
///
/// Sessions do not survive a restart and are not shared between processes;
/// use the file or Redis store for that.
///
/// # Example
/// ```
/// use latchkey::{MemoryStore, NewSession, SessionManager, StoreManager};
///
/// let store = MemoryStore::new().with_capacity_limit(100_000);
/// let manager = StoreManager::new(store);
/// let issued = manager.create(NewSession::new())?;
/// assert_eq!(manager.store().len(), 1);
/// # Ok::<(), latchkey::Error>(())
/// ```
pub struct MemoryStore {
    shards: Box<[RwLock<Shard>]>,
    users: Mutex<HashMap<String, Vec<StoreKey>>>,
    len: AtomicUsize,
    capacity: Option<usize>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("len", &self.len())
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl Default for MemoryStore {
    fn default() -> MemoryStore {
        MemoryStore::new()
    }
}

impl MemoryStore {
    /// An empty store with no capacity limit, sweeping by the system clock.
    pub fn new() -> MemoryStore {
        MemoryStore {
            shards: (0..SHARDS).map(|_| RwLock::new(Shard::default())).collect(),
            users: Mutex::new(HashMap::new()),
            len: AtomicUsize::new(0),
            capacity: None,
            clock: Arc::new(SystemClock),
        }
    }

    /// Refuses inserts beyond `capacity` records with [`StoreError::Full`]
    /// rather than evicting live sessions. Dead records are swept before
    /// refusing.
    #[must_use]
    pub fn with_capacity_limit(mut self, capacity: usize) -> MemoryStore {
        self.capacity = Some(capacity);
        self
    }

    /// Sweeps by `clock`: give it the manager's clock in tests.
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> MemoryStore {
        self.clock = clock;
        self
    }

    /// The number of records held, live or retired.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// Whether the store holds no records.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn shard_index(key: &StoreKey) -> usize {
        usize::from(key.as_bytes()[0]) % SHARDS
    }

    fn shard(&self, key: &StoreKey) -> &RwLock<Shard> {
        &self.shards[Self::shard_index(key)]
    }

    fn index_add(&self, user: &str, key: StoreKey) {
        let mut users = self.users.lock();
        let keys = users.entry(user.to_owned()).or_default();
        if !keys.contains(&key) {
            keys.push(key);
        }
    }

    fn index_remove(&self, user: &str, key: &StoreKey) {
        let mut users = self.users.lock();
        if let Some(keys) = users.get_mut(user) {
            keys.retain(|k| k != key);
            if keys.is_empty() {
                users.remove(user);
            }
        }
    }

    /// Keeps the user index in step with a record changing from `before` to
    /// `after` under `key`.
    fn reindex(&self, key: &StoreKey, before: Option<&str>, after: Option<&str>) {
        if before == after {
            return;
        }
        if let Some(u) = before {
            self.index_remove(u, key);
        }
        if let Some(u) = after {
            self.index_add(u, *key);
        }
    }

    /// Drops the shard's dead records. Index entries for them are left to
    /// [`Store::sessions_of`], which prunes keys it cannot find.
    fn sweep(&self, shard: &mut Shard, now: Timestamp) -> usize {
        let before = shard.map.len();
        shard.map.retain(|_, r| r.expires_at > now);
        shard.inserts_since_sweep = 0;
        let removed = before - shard.map.len();
        self.len.fetch_sub(removed, Ordering::Relaxed);
        removed
    }

    fn maybe_sweep(&self, shard: &mut Shard) {
        shard.inserts_since_sweep += 1;
        if shard.inserts_since_sweep >= (shard.map.len() / 4).max(64) {
            self.sweep(shard, self.clock.now());
        }
    }

    /// At capacity, sweeps every shard for dead records before refusing.
    /// Called with no shard lock held: taking shard locks one at a time here
    /// keeps the index-order rule that `rotate` relies on.
    fn make_room(&self) -> Result<(), StoreError> {
        if let Some(capacity) = self.capacity
            && self.len() >= capacity
        {
            let now = self.clock.now();
            for shard in self.shards.iter() {
                self.sweep(&mut shard.write(), now);
            }
        }
        Ok(())
    }

    /// Counts one more record, atomically refusing past the capacity so
    /// racing inserts cannot overshoot it. Undo with [`Self::release`].
    fn reserve(&self) -> Result<(), StoreError> {
        let prev = self.len.fetch_add(1, Ordering::AcqRel);
        if let Some(capacity) = self.capacity
            && prev >= capacity
        {
            self.len.fetch_sub(1, Ordering::AcqRel);
            return Err(StoreError::Full { capacity });
        }
        Ok(())
    }

    fn release(&self) {
        self.len.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Store for MemoryStore {
    fn insert(&self, key: &StoreKey, record: &Record) -> Result<(), StoreError> {
        self.make_room()?;
        self.reserve()?;
        {
            let mut shard = self.shard(key).write();
            if shard.map.contains_key(key) {
                self.release();
                return Err(StoreError::Exists);
            }
            self.maybe_sweep(&mut shard);
            shard.map.insert(*key, record.clone());
        }
        self.reindex(key, None, record.user());
        Ok(())
    }

    fn get(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        Ok(self.shard(key).read().map.get(key).cloned())
    }

    fn replace(&self, key: &StoreKey, expected: u64, record: &Record) -> Result<(), StoreError> {
        let before = {
            let mut shard = self.shard(key).write();
            let slot = shard.map.get_mut(key).ok_or(StoreError::NotFound)?;
            if slot.version != expected {
                return Err(StoreError::Conflict);
            }
            let before = slot.user().map(str::to_owned);
            *slot = record.clone();
            before
        };
        self.reindex(key, before.as_deref(), record.user());
        Ok(())
    }

    fn touch(
        &self,
        key: &StoreKey,
        last_seen: Timestamp,
        expires_at: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut shard = self.shard(key).write();
        Ok(shard
            .map
            .get_mut(key)
            .is_some_and(|r| r.touch(last_seen, expires_at)))
    }

    fn rotate(
        &self,
        old: &StoreKey,
        expected: u64,
        retired: &Record,
        new: &StoreKey,
        record: &Record,
    ) -> Result<(), StoreError> {
        self.make_room()?;
        self.reserve()?;
        let (i, j) = (Self::shard_index(old), Self::shard_index(new));
        // Two shard locks, always taken in index order, so two rotations
        // crossing the same pair of shards cannot deadlock.
        let result = if i == j {
            let mut shard = self.shards[i].write();
            rotate_in(&mut shard, &mut None, old, expected, retired, new, record)
        } else {
            let (first, second) = if i < j { (i, j) } else { (j, i) };
            let mut a = self.shards[first].write();
            let mut b = self.shards[second].write();
            let (old_shard, new_shard) = if i < j {
                (&mut *a, &mut *b)
            } else {
                (&mut *b, &mut *a)
            };
            rotate_in(
                old_shard,
                &mut Some(new_shard),
                old,
                expected,
                retired,
                new,
                record,
            )
        };
        let before = result.inspect_err(|_| self.release())?;
        self.reindex(old, before.as_deref(), retired.user());
        self.reindex(new, None, record.user());
        Ok(())
    }

    fn remove(&self, key: &StoreKey) -> Result<bool, StoreError> {
        let removed = self.shard(key).write().map.remove(key);
        match removed {
            Some(r) => {
                self.len.fetch_sub(1, Ordering::Relaxed);
                if let Some(u) = r.user() {
                    self.index_remove(u, key);
                }
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn sessions_of(&self, user: &str) -> Result<Vec<(StoreKey, Record)>, StoreError> {
        let keys = self.users.lock().get(user).cloned().unwrap_or_default();
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            match self.shard(&key).read().map.get(&key) {
                Some(r) if r.user() == Some(user) => out.push((key, r.clone())),
                // Swept or no longer this user's: prune the stale entry.
                _ => self.index_remove(user, &key),
            }
        }
        Ok(out)
    }

    fn purge_expired(&self, now: Timestamp) -> Result<usize, StoreError> {
        let mut removed = 0;
        for shard in self.shards.iter() {
            removed += self.sweep(&mut shard.write(), now);
        }
        // Drop index entries whose records are gone or retired.
        let users: Vec<String> = self.users.lock().keys().cloned().collect();
        for user in users {
            self.sessions_of(&user)?;
        }
        Ok(removed)
    }
}

/// The body of [`MemoryStore::rotate`] once the locks are held. `new_shard`
/// is `None` when both keys live in `old_shard`. Returns the old record's
/// user for reindexing.
fn rotate_in(
    old_shard: &mut Shard,
    new_shard: &mut Option<&mut Shard>,
    old: &StoreKey,
    expected: u64,
    retired: &Record,
    new: &StoreKey,
    record: &Record,
) -> Result<Option<String>, StoreError> {
    let current = old_shard.map.get(old).ok_or(StoreError::NotFound)?;
    if current.version != expected {
        return Err(StoreError::Conflict);
    }
    let before = current.user().map(str::to_owned);
    let target: &mut Shard = match new_shard {
        Some(s) => s,
        None => old_shard,
    };
    if target.map.contains_key(new) {
        return Err(StoreError::Exists);
    }
    target.map.insert(*new, record.clone());
    old_shard.map.insert(*old, retired.clone());
    Ok(before)
}
