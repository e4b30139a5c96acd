//! [`MemoryStore`]: sessions in this process's memory.
//!
//! Records sit in shards, each a hash table under its own `parking_lot`
//! lock, so threads working on different sessions rarely meet. A per-user
//! index maps users to their live keys. Expired records are swept
//! incrementally: a shard that has taken as many inserts as a quarter of its
//! size (at least 64) drops its dead records on the spot, so the cost is
//! amortized over writes and no thread of its own is needed.
//! [`Store::purge_expired`] sweeps everything at once.
//!
//! # Layout
//!
//! A shard is a hash *set* of boxed slots, each holding its own key, rather
//! than a map from key to [`Record`]. A bucket is then one pointer (8 bytes
//! instead of the ~200 of a key and a `Record`). Hash tables grow by
//! doubling, so they are between 44% and 87% full; with small buckets the
//! empty half costs 8 bytes a session, not 200 (243 bytes per session in
//! all at a million sessions, see BENCHMARKS.md). The price is one pointer
//! hop per lookup. The slot is a compact form of the record (boxed strings,
//! data shared as `Arc<str>`), converted to a [`Record`] on the way out. Activity times are atomics, so
//! [`Store::touch`] runs under the shard's read lock and never stalls
//! other readers of the shard.

use std::borrow::Borrow;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use parking_lot::{Mutex, RwLock};

use crate::clock::{Clock, SystemClock, Timestamp};
use crate::id::{SealedId, StoreKey};
use crate::session::SessionData;
use crate::store::{EndReason, LiveSession, Record, RecordState, Store, StoreError};

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

/// One record in its compact in-memory form, filed under its own key.
struct Slot {
    key: StoreKey,
    version: u64,
    /// Milliseconds; atomic so a touch can raise it under the read lock.
    expires_at: AtomicU64,
    state: Compact,
}

/// [`RecordState`] with boxed strings and shared data: about half the size,
/// and converting back to a `Record` allocates only for a user or device.
enum Compact {
    Live {
        created_at: Timestamp,
        /// Milliseconds; atomic so a touch can raise it under the read lock.
        last_seen: AtomicU64,
        auth_at: Option<Timestamp>,
        absolute_deadline: Timestamp,
        user: Option<Box<str>>,
        device: Option<Box<str>>,
        data: Arc<str>,
    },
    Rotated {
        successor: StoreKey,
        sealed_successor: SealedId,
        at: Timestamp,
        grace_until: Timestamp,
    },
    Ended {
        reason: EndReason,
        at: Timestamp,
    },
}

impl Slot {
    fn new(key: StoreKey, record: &Record) -> Slot {
        let state = match &record.state {
            RecordState::Live(s) => Compact::Live {
                created_at: s.created_at,
                last_seen: AtomicU64::new(s.last_seen.as_unix_millis()),
                auth_at: s.auth_at,
                absolute_deadline: s.absolute_deadline,
                user: s.user.as_deref().map(Box::from),
                device: s.device.as_deref().map(Box::from),
                // `encoded` shares the data's buffer: no copy.
                data: s.data.encoded(),
            },
            RecordState::Rotated {
                successor,
                sealed_successor,
                at,
                grace_until,
            } => Compact::Rotated {
                successor: *successor,
                sealed_successor: sealed_successor.clone(),
                at: *at,
                grace_until: *grace_until,
            },
            RecordState::Ended { reason, at } => Compact::Ended {
                reason: *reason,
                at: *at,
            },
        };
        Slot {
            key,
            version: record.version,
            expires_at: AtomicU64::new(record.expires_at.as_unix_millis()),
            state,
        }
    }

    fn expires_at(&self) -> Timestamp {
        Timestamp::from_unix_millis(self.expires_at.load(Ordering::Relaxed))
    }

    fn user(&self) -> Option<&str> {
        match &self.state {
            Compact::Live { user, .. } => user.as_deref(),
            _ => None,
        }
    }

    #[inline]
    fn to_record(&self) -> Record {
        let state = match &self.state {
            Compact::Live {
                created_at,
                last_seen,
                auth_at,
                absolute_deadline,
                user,
                device,
                data,
            } => RecordState::Live(LiveSession {
                created_at: *created_at,
                last_seen: Timestamp::from_unix_millis(last_seen.load(Ordering::Relaxed)),
                auth_at: *auth_at,
                absolute_deadline: *absolute_deadline,
                user: user.as_deref().map(String::from),
                device: device.as_deref().map(String::from),
                data: SessionData::from_encoded(data.clone()),
            }),
            Compact::Rotated {
                successor,
                sealed_successor,
                at,
                grace_until,
            } => RecordState::Rotated {
                successor: *successor,
                sealed_successor: sealed_successor.clone(),
                at: *at,
                grace_until: *grace_until,
            },
            Compact::Ended { reason, at } => RecordState::Ended {
                reason: *reason,
                at: *at,
            },
        };
        Record {
            version: self.version,
            expires_at: self.expires_at(),
            state,
        }
    }

    /// [`Record::touch`] on the compact form: raises, never lowers. Only
    /// atomics change, so a shared reference is enough.
    fn touch(&self, last_seen: Timestamp, expires_at: Timestamp) -> bool {
        match &self.state {
            Compact::Live { last_seen: ls, .. } => {
                ls.fetch_max(last_seen.as_unix_millis(), Ordering::Relaxed);
                self.expires_at
                    .fetch_max(expires_at.as_unix_millis(), Ordering::Relaxed);
                true
            }
            _ => false,
        }
    }
}

/// A boxed slot, hashed and compared by its key alone so the set can be
/// searched with a bare [`StoreKey`].
struct Entry(Box<Slot>);

impl Borrow<StoreKey> for Entry {
    fn borrow(&self) -> &StoreKey {
        &self.0.key
    }
}

impl Hash for Entry {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Must hash exactly as `StoreKey` does, for `Borrow` lookups.
        self.0.key.hash(state);
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Entry) -> bool {
        self.0.key == other.0.key
    }
}

impl Eq for Entry {}

type Map = HashSet<Entry, BuildHasherDefault<KeyHasher>>;

fn entry(key: StoreKey, record: &Record) -> Entry {
    Entry(Box::new(Slot::new(key, record)))
}

/// A shard on cache lines of its own. Every load writes its shard's lock
/// word; unpadded, neighbouring shards share a line, so two threads reading
/// *different* sessions would still bounce that line between their cores.
/// 128 bytes covers CPUs that fetch lines in adjacent pairs.
#[repr(align(128))]
struct Padded(RwLock<Shard>);

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
    shards: Box<[Padded]>,
    /// User name → that user's keys, both boxed to exact size: most users
    /// hold one or two sessions, and a `String` + `Vec` (capacity 4) would
    /// cost about twice as much per user.
    users: Mutex<HashMap<Box<str>, Box<[StoreKey]>>>,
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
    ///
    /// # Example
    /// ```
    /// use latchkey::MemoryStore;
    /// assert!(MemoryStore::new().is_empty());
    /// ```
    pub fn new() -> MemoryStore {
        MemoryStore {
            shards: (0..SHARDS)
                .map(|_| Padded(RwLock::new(Shard::default())))
                .collect(),
            users: Mutex::new(HashMap::new()),
            len: AtomicUsize::new(0),
            capacity: None,
            clock: Arc::new(SystemClock),
        }
    }

    /// Refuses inserts beyond `capacity` records with [`StoreError::Full`]
    /// rather than evicting live sessions. Dead records are swept before
    /// refusing.
    ///
    /// # Example
    /// ```
    /// use latchkey::{Error, MemoryStore, NewSession, SessionManager, StoreError, StoreManager};
    /// let manager = StoreManager::new(MemoryStore::new().with_capacity_limit(1));
    /// manager.create(NewSession::new())?;
    /// let full = manager.create(NewSession::new()).unwrap_err();
    /// assert!(matches!(full, Error::Store(StoreError::Full { capacity: 1 })));
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    #[must_use]
    pub fn with_capacity_limit(mut self, capacity: usize) -> MemoryStore {
        self.capacity = Some(capacity);
        self
    }

    /// Sweeps by `clock`: give it the manager's clock in tests.
    ///
    /// # Example
    /// ```
    /// use std::sync::Arc;
    /// use latchkey::{ManualClock, MemoryStore};
    /// let clock = Arc::new(ManualClock::starting_now());
    /// let store = MemoryStore::new().with_clock(clock.clone());
    /// assert!(store.is_empty());
    /// ```
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> MemoryStore {
        self.clock = clock;
        self
    }

    /// The number of records held, live or retired.
    ///
    /// # Example
    /// ```
    /// use latchkey::{MemoryStore, NewSession, SessionManager, StoreManager};
    /// let manager = StoreManager::new(MemoryStore::new());
    /// manager.create(NewSession::new())?;
    /// assert_eq!(manager.store().len(), 1);
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// Whether the store holds no records.
    ///
    /// # Example
    /// ```
    /// use latchkey::MemoryStore;
    /// assert!(MemoryStore::default().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn shard_index(key: &StoreKey) -> usize {
        usize::from(key.as_bytes()[0]) % SHARDS
    }

    fn shard(&self, key: &StoreKey) -> &RwLock<Shard> {
        &self.shards[Self::shard_index(key)].0
    }

    fn index_add(&self, user: &str, key: StoreKey) {
        let mut users = self.users.lock();
        match users.get_mut(user) {
            Some(keys) if keys.contains(&key) => {}
            Some(keys) => *keys = keys.iter().copied().chain([key]).collect(),
            None => {
                users.insert(user.into(), Box::new([key]));
            }
        }
    }

    fn index_remove(&self, user: &str, key: &StoreKey) {
        let mut users = self.users.lock();
        if let Some(keys) = users.get_mut(user)
            && keys.contains(key)
        {
            *keys = keys.iter().filter(|k| *k != key).copied().collect();
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
        shard.map.retain(|e| e.0.expires_at() > now);
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
            for Padded(shard) in self.shards.iter() {
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
            if shard.map.contains(key) {
                self.release();
                return Err(StoreError::Exists);
            }
            self.maybe_sweep(&mut shard);
            shard.map.insert(entry(*key, record));
        }
        self.reindex(key, None, record.user());
        Ok(())
    }

    #[inline]
    fn get(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        Ok(self.shard(key).read().map.get(key).map(|e| e.0.to_record()))
    }

    fn replace(&self, key: &StoreKey, expected: u64, record: &Record) -> Result<(), StoreError> {
        let before = {
            let mut shard = self.shard(key).write();
            let slot = shard.map.get(key).ok_or(StoreError::NotFound)?;
            if slot.0.version != expected {
                return Err(StoreError::Conflict);
            }
            let before = slot.0.user().map(str::to_owned);
            shard.map.replace(entry(*key, record));
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
        // The read lock suffices: a touch only raises two atomics, and
        // every writer that replaces the slot holds the write lock.
        let shard = self.shard(key).read();
        Ok(shard
            .map
            .get(key)
            .is_some_and(|e| e.0.touch(last_seen, expires_at)))
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
            let mut shard = self.shards[i].0.write();
            rotate_in(&mut shard, &mut None, old, expected, retired, new, record)
        } else {
            let (first, second) = if i < j { (i, j) } else { (j, i) };
            let mut a = self.shards[first].0.write();
            let mut b = self.shards[second].0.write();
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
        let removed = self.shard(key).write().map.take(key);
        match removed {
            Some(e) => {
                self.len.fetch_sub(1, Ordering::Relaxed);
                if let Some(u) = e.0.user() {
                    self.index_remove(u, key);
                }
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn sessions_of(&self, user: &str) -> Result<Vec<(StoreKey, Record)>, StoreError> {
        let keys = self.users.lock().get(user).cloned().unwrap_or_default();
        let keys = keys.into_vec();
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            match self.shard(&key).read().map.get(&key) {
                Some(e) if e.0.user() == Some(user) => out.push((key, e.0.to_record())),
                // Swept or no longer this user's: prune the stale entry.
                _ => self.index_remove(user, &key),
            }
        }
        Ok(out)
    }

    fn purge_expired(&self, now: Timestamp) -> Result<usize, StoreError> {
        let mut removed = 0;
        for Padded(shard) in self.shards.iter() {
            removed += self.sweep(&mut shard.write(), now);
        }
        // Drop index entries whose records are gone or retired.
        let users: Vec<Box<str>> = self.users.lock().keys().cloned().collect();
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
    if current.0.version != expected {
        return Err(StoreError::Conflict);
    }
    let before = current.0.user().map(str::to_owned);
    let target: &mut Shard = match new_shard {
        Some(s) => s,
        None => old_shard,
    };
    if target.map.contains(new) {
        return Err(StoreError::Exists);
    }
    target.map.insert(entry(*new, record));
    old_shard.map.replace(entry(*old, retired));
    Ok(before)
}
