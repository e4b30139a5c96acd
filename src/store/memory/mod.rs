//! [`MemoryStore`]: sessions in this process's memory.
//!
//! Records sit in shards, each a hash table under its own lock, so threads
//! working on different sessions rarely meet. The lock is striped by thread
//! (`store/memory/striped.rs`): a read locks this thread's stripe only, so threads
//! loading sessions write no cache line in common, and a write locks every
//! stripe. A per-user index maps users to their live keys. Expired records
//! are swept incrementally: a shard that has taken as many inserts as a
//! quarter of its size (at least 64) drops its dead records on the spot, so
//! the cost is amortized over writes and no thread of its own is needed.
//! [`Store::purge_expired`] sweeps everything at once.
//!
//! # Capacity
//!
//! The capacity limit counts live sessions (one atomic counter, reserved
//! before a record is filed). Retired records are counted apart, against
//! their own limit; each shard queues its evictable ones (those that took
//! the place of a live session: see `Slot::evictable`) oldest first, so an
//! eviction pops the queue's front, skipping entries whose record has
//! since gone. A create refused at capacity and a retirement past the
//! retired limit each sweep a slice of `SWEEP_STEP` records (shards in
//! turn, each going on from where its last slice stopped), never the whole
//! store: the work of a refusal does not grow with the store.
//!
//! # Layout
//!
//! A shard is a `Table` (`store/memory/table.rs`): records kept *in* an
//! open-addressed table beside one control byte per bucket. A lookup reads
//! one line of control bytes and then the record, with no pointer to follow
//! (a `HashMap` of boxed records reads control bytes, then a bucket, then
//! the box). The table grows by a quarter when 90% full, so it stays between
//! 72% and 90% full instead of the 44%–87% that doubling gives, which is
//! what lets ~200-byte records sit in place: about 250 bytes per session at
//! a million sessions (see BENCHMARKS.md).
//!
//! A slot is a compact form of the [`Record`], exactly three cache lines
//! (a test checks): the key, the version, the timestamps, and the user
//! name, device label and encoded data *in place* when together they fit
//! in `INLINE` (100) bytes (larger ones spill to the heap). A typical session is
//! then one slot and no other allocation, and a load reads nothing else.
//! Activity times are atomics, so [`Store::touch`] runs under the shard's
//! read lock and never stalls other readers of the shard.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use parking_lot::Mutex;

use crate::clock::{Clock, SystemClock, Timestamp};
use crate::data::SessionData;
use crate::id::{SealedId, StoreKey};
mod striped;
mod table;

use self::striped::Striped;
use self::table::{Keyed, Table};
use crate::store::{
    DataRef, EndReason, LiveRef, LiveSession, Peek, Record, RecordState, Store, StoreError,
};

const SHARDS: usize = 64;

/// How many records a bounded sweep judges: the work a create refused at
/// capacity, or a retirement past the retired limit, does to look for dead
/// records (microseconds, whatever the store's size).
const SWEEP_STEP: usize = 256;

/// How many bytes of user name, device label and encoded data a slot holds
/// in place. Chosen so a [`Slot`] is exactly three 64-byte lines (checked by
/// a test): typical web sessions (an ID or two, a CSRF token, a preference)
/// fit, and then a record is a single allocation, so a load touches the
/// slot's lines and nothing else.
const INLINE: usize = crate::data::INLINE;

/// Marks an absent user or device in [`Tail::Inline`].
const NONE: u8 = u8::MAX;

/// One record in its compact in-memory form, filed under its own key.
struct Slot {
    key: StoreKey,
    version: u64,
    /// Milliseconds; atomic so a touch can raise it under the read lock.
    expires_at: AtomicU64,
    /// Live: the last activity, in milliseconds (atomic like `expires_at`).
    last_seen: AtomicU64,
    /// Live: `created_at`. Rotated and ended: `at`.
    t1: Timestamp,
    /// Live: `absolute_deadline`. Rotated: `grace_until`.
    t2: Timestamp,
    /// Live: `auth_at`, when `has_auth`.
    auth_at: Timestamp,
    has_auth: bool,
    tail: Tail,
}

/// The variable part of a [`Slot`], which also says what state it is in.
enum Tail {
    /// Live, with user ‖ device ‖ data in place: `user` and `device` are
    /// their lengths ([`NONE`] when absent), `len` the bytes used.
    Inline {
        user: u8,
        device: u8,
        len: u8,
        buf: [u8; INLINE],
    },
    /// Live, too large to keep in place.
    Spilled {
        user: Option<Box<str>>,
        device: Option<Box<str>>,
        data: Box<str>,
    },
    Rotated {
        successor: StoreKey,
        sealed_successor: Option<SealedId>,
        privilege_change: bool,
        pending: Option<Box<Record>>,
        /// May be evicted past the retired limit (see [`Slot::evictable`]).
        evictable: bool,
    },
    Ended {
        reason: EndReason,
        /// May be evicted past the retired limit (see [`Slot::evictable`]).
        evictable: bool,
    },
}

impl Tail {
    /// A live tail holding copies of `user`, `device` and `data`: the
    /// bytes of the data's encoding, copied in place unchecked (they are
    /// checked as UTF-8 when read, as every tail in place is) and checked
    /// here only when they spill to the heap as text.
    fn live(user: Option<&str>, device: Option<&str>, data: &[u8]) -> Tail {
        let (u, d) = (user.map_or(0, str::len), device.map_or(0, str::len));
        let len = u + d + data.len();
        if len <= INLINE {
            let mut buf = [0u8; INLINE];
            let mut at = 0;
            for part in [
                user.map(str::as_bytes),
                device.map(str::as_bytes),
                Some(data),
            ]
            .into_iter()
            .flatten()
            {
                buf[at..at + part.len()].copy_from_slice(part);
                at += part.len();
            }
            // `len <= INLINE < NONE`, so every length fits a u8 and no
            // present part can be mistaken for an absent one.
            let short = |n: usize| u8::try_from(n).unwrap_or(NONE);
            Tail::Inline {
                user: user.map_or(NONE, |_| short(u)),
                device: device.map_or(NONE, |_| short(d)),
                len: short(len),
                buf,
            }
        } else {
            Tail::Spilled {
                user: user.map(Box::from),
                device: device.map(Box::from),
                // Bytes that are not UTF-8 (memory corruption of a
                // session's copy) read as empty data, as they would there.
                data: Box::from(std::str::from_utf8(data).unwrap_or_default()),
            }
        }
    }

    /// User, device and data of a live tail; `None` for any other state,
    /// or if the bytes in place are not the UTF-8 that was copied in (which
    /// cannot happen without memory corruption, and is reported as such
    /// rather than trusted).
    #[inline]
    fn parts(&self) -> Option<(Option<&str>, Option<&str>, &str)> {
        let (user, device, data) = self.live_parts()?.ok()?;
        let data = match data {
            Data::Text(text) => text,
            Data::InPlace { buf, start, len } => crate::data::in_place_text(buf, start, len)?,
        };
        Some((user, device, data))
    }

    /// As [`Tail::parts`], but data in place is left as bytes, unchecked:
    /// `None` if not live, `Some(Err(()))` if user or device is not UTF-8.
    #[inline]
    fn live_parts(&self) -> Option<Result<LiveParts<'_>, ()>> {
        match self {
            Tail::Inline {
                user,
                device,
                len,
                buf,
            } => {
                let mut at = 0usize;
                let mut take = |n: u8| -> Option<Option<&str>> {
                    if n == NONE {
                        return Some(None);
                    }
                    let end = at + usize::from(n);
                    let text = std::str::from_utf8(buf.get(at..end)?).ok()?;
                    at = end;
                    Some(Some(text))
                };
                let user = take(*user);
                let device = take(*device);
                // `at <= len <= INLINE < 256` unless corrupt.
                let start = u8::try_from(at).ok();
                Some(match (user, device, start) {
                    (Some(user), Some(device), Some(start)) if start <= *len => {
                        let len = *len - start;
                        Ok((user, device, Data::InPlace { buf, start, len }))
                    }
                    _ => Err(()),
                })
            }
            Tail::Spilled { user, device, data } => {
                Some(Ok((user.as_deref(), device.as_deref(), Data::Text(data))))
            }
            Tail::Rotated { .. } | Tail::Ended { .. } => None,
        }
    }
}

/// A live tail's user, device and data.
type LiveParts<'a> = (Option<&'a str>, Option<&'a str>, Data<'a>);

/// A live tail's data: text, or bytes in place not yet checked as UTF-8.
enum Data<'a> {
    Text(&'a str),
    InPlace {
        buf: &'a [u8; INLINE],
        start: u8,
        len: u8,
    },
}

impl Slot {
    fn new(key: StoreKey, record: &Record) -> Slot {
        let mut slot = Slot {
            key,
            version: record.version,
            expires_at: AtomicU64::new(record.expires_at.as_unix_millis()),
            last_seen: AtomicU64::new(0),
            t1: Timestamp::from_unix_millis(0),
            t2: Timestamp::from_unix_millis(0),
            auth_at: Timestamp::from_unix_millis(0),
            has_auth: false,
            tail: Tail::Ended {
                reason: EndReason::Logout,
                evictable: false,
            },
        };
        match &record.state {
            RecordState::Live(s) => {
                slot.last_seen = AtomicU64::new(s.last_seen.as_unix_millis());
                slot.t1 = s.created_at;
                slot.t2 = s.absolute_deadline;
                if let Some(at) = s.auth_at {
                    slot.auth_at = at;
                    slot.has_auth = true;
                }
                slot.tail = Tail::live(
                    s.user.as_deref(),
                    s.device.as_deref(),
                    &s.data.encoded_bytes(),
                );
            }
            RecordState::Rotated {
                successor,
                sealed_successor,
                at,
                grace_until,
                privilege_change,
                pending,
            } => {
                slot.t1 = *at;
                slot.t2 = *grace_until;
                slot.tail = Tail::Rotated {
                    successor: *successor,
                    sealed_successor: sealed_successor.clone(),
                    privilege_change: *privilege_change,
                    pending: pending.clone(),
                    evictable: false,
                };
            }
            RecordState::Ended { reason, at } => {
                slot.t1 = *at;
                slot.tail = Tail::Ended {
                    reason: *reason,
                    evictable: false,
                };
            }
        }
        slot
    }

    /// The live record in place, for [`Store::peek`]: `None` if it is
    /// not live. Data in place is handed over as bytes, checked as UTF-8
    /// only when read (see `SessionData`); user and device are checked
    /// here, as `to_record` checks them.
    #[inline]
    fn live_ref(&self) -> Result<Option<LiveRef<'_>>, StoreError> {
        let (user, device, data) = match self.tail.live_parts() {
            None => return Ok(None),
            Some(Err(())) => return Err(self.corrupt()),
            Some(Ok(parts)) => parts,
        };
        let data = match data {
            Data::Text(text) => DataRef::from(text),
            Data::InPlace { buf, start, len } => DataRef::inline(buf, start, len),
        };
        Ok(Some(LiveRef {
            version: self.version,
            created_at: self.t1,
            last_seen: Timestamp::from_unix_millis(self.last_seen.load(Ordering::Relaxed)),
            auth_at: self.has_auth.then_some(self.auth_at),
            absolute_deadline: self.t2,
            user,
            device,
            data,
        }))
    }

    fn corrupt(&self) -> StoreError {
        StoreError::Corrupt {
            key: self.key.fingerprint(),
            source: "in-memory record is not the text written".into(),
        }
    }

    fn expires_at(&self) -> Timestamp {
        Timestamp::from_unix_millis(self.expires_at.load(Ordering::Relaxed))
    }

    /// What this record counts as.
    fn class(&self) -> Class {
        if self.is_live() {
            Class::Live
        } else {
            Class::Retired {
                evictable: self.evictable(),
            }
        }
    }

    /// Whether this is a live session (as opposed to a retired record).
    fn is_live(&self) -> bool {
        matches!(self.tail, Tail::Inline { .. } | Tail::Spilled { .. })
    }

    /// Whether this retired record may be evicted past the retired limit:
    /// it took the place of a live session of this store (by rotation or
    /// logout), so without it the token reads as unknown, which refuses it
    /// as well. A retired record written as such (a ticket revocation) is
    /// never evictable: without it, the ticket it revokes would be valid
    /// again. Nor is one carrying a pending successor.
    fn evictable(&self) -> bool {
        match self.tail {
            Tail::Rotated {
                evictable,
                ref pending,
                ..
            } => evictable && pending.is_none(),
            Tail::Ended { evictable, .. } => evictable,
            _ => false,
        }
    }

    /// Marks a retired record as having replaced `before` (see
    /// [`Slot::evictable`]).
    fn retiring(mut self, before: &Slot) -> Slot {
        let from_live = before.is_live() || before.evictable();
        match &mut self.tail {
            Tail::Rotated { evictable, .. } | Tail::Ended { evictable, .. } => {
                *evictable = from_live
            }
            _ => {}
        }
        self
    }

    /// The user of a live record. The data is not read: checking it as
    /// text (as [`Tail::parts`] does) cost a save a fifth of its
    /// instructions in the memory store's own work.
    fn user(&self) -> Option<&str> {
        match self.tail.live_parts()? {
            Ok((user, _, _)) => user,
            Err(()) => None,
        }
    }

    #[inline]
    fn to_record(&self) -> Result<Record, StoreError> {
        let state = match &self.tail {
            Tail::Rotated {
                successor,
                sealed_successor,
                privilege_change,
                pending,
                ..
            } => RecordState::Rotated {
                successor: *successor,
                sealed_successor: sealed_successor.clone(),
                at: self.t1,
                grace_until: self.t2,
                privilege_change: *privilege_change,
                pending: pending.clone(),
            },
            Tail::Ended { reason, .. } => RecordState::Ended {
                reason: *reason,
                at: self.t1,
            },
            live => {
                let Some((user, device, data)) = live.parts() else {
                    return Err(self.corrupt());
                };
                RecordState::Live(LiveSession {
                    created_at: self.t1,
                    last_seen: Timestamp::from_unix_millis(self.last_seen.load(Ordering::Relaxed)),
                    auth_at: self.has_auth.then_some(self.auth_at),
                    absolute_deadline: self.t2,
                    user: user.map(String::from),
                    device: device.map(String::from),
                    data: SessionData::from_encoded(Arc::from(data)),
                })
            }
        };
        Ok(Record {
            version: self.version,
            expires_at: self.expires_at(),
            state,
        })
    }

    /// [`Record::touch`] on the compact form: raises, never lowers. Only
    /// atomics change, so a shared reference is enough.
    fn touch(&self, last_seen: Timestamp, expires_at: Timestamp) -> bool {
        match self.tail {
            Tail::Inline { .. } | Tail::Spilled { .. } => {
                self.last_seen
                    .fetch_max(last_seen.as_unix_millis(), Ordering::Relaxed);
                self.expires_at
                    .fetch_max(expires_at.as_unix_millis(), Ordering::Relaxed);
                true
            }
            _ => false,
        }
    }
}

impl Keyed for Slot {
    fn key(&self) -> &StoreKey {
        &self.key
    }
}

/// A shard: its records, and what the sweeps and the retired limit need.
#[derive(Default)]
struct Shard {
    map: Table<Slot>,
    inserts_since_sweep: usize,
    /// Keys of evictable retired records, oldest retirement first. Entries
    /// whose record has since gone or changed are skipped when met, and
    /// dropped when they come to outnumber the evictable records.
    retired: VecDeque<StoreKey>,
    /// How many records in `map` are evictable.
    evictable: usize,
    /// The bucket the next bounded sweep of this shard starts from.
    sweep_at: usize,
}

/// The store's record counts, kept by the shards as records come and go.
#[derive(Default)]
struct Counts {
    /// Live sessions. Counted when reserved ([`MemoryStore::reserve_live`]),
    /// before the record is filed, so racing inserts cannot overshoot.
    live: AtomicUsize,
    /// Retired records (rotated or ended).
    retired: AtomicUsize,
}

/// What a record counts as.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Live,
    Retired { evictable: bool },
}

impl Shard {
    /// Accounts for a record of `class` leaving the shard.
    fn gone(&mut self, class: Class, counts: &Counts) {
        match class {
            Class::Live => {
                counts.live.fetch_sub(1, Ordering::AcqRel);
            }
            Class::Retired { evictable } => {
                counts.retired.fetch_sub(1, Ordering::AcqRel);
                if evictable {
                    self.evictable -= 1;
                }
            }
        }
    }

    /// Accounts for a record of `class` joining the shard under `key`. A
    /// live one was counted when its place was reserved.
    fn came(&mut self, key: StoreKey, class: Class, counts: &Counts) {
        let Class::Retired { evictable } = class else {
            return;
        };
        counts.retired.fetch_add(1, Ordering::AcqRel);
        if evictable {
            self.evictable += 1;
            self.retired.push_back(key);
            if self.retired.len() > 2 * self.evictable + 64 {
                let map = &self.map;
                self.retired
                    .retain(|k| map.get(k).is_some_and(Slot::evictable));
            }
        }
    }

    /// Files `slot` under its key, which must be absent.
    fn add(&mut self, slot: Slot, counts: &Counts) {
        self.came(slot.key, slot.class(), counts);
        self.map.insert(slot);
    }

    /// Puts `slot` in place of the record under its key, if there is one
    /// (false if not). A retired record that replaces a live one, or an
    /// evictable one, is evictable.
    fn swap(&mut self, slot: Slot, counts: &Counts) -> bool {
        let key = slot.key;
        // One probe: the slot is replaced where it was found.
        let Some(old) = self.map.get_mut(&key) else {
            return false;
        };
        let slot = slot.retiring(old);
        let (before, after) = (old.class(), slot.class());
        drop(std::mem::replace(old, slot));
        // Unchanged in class, nothing moves: an evictable record keeps its
        // place in the queue. A record coming to life had its place
        // reserved by the caller.
        if before != after {
            self.gone(before, counts);
            self.came(key, after, counts);
        }
        true
    }

    /// Removes the record under `key`.
    fn take(&mut self, key: &StoreKey, counts: &Counts) -> Option<Slot> {
        let slot = self.map.remove(key)?;
        self.gone(slot.class(), counts);
        Some(slot)
    }

    /// Drops every dead record of the shard.
    fn sweep(&mut self, now: Timestamp, counts: &Counts) -> usize {
        let mut gone = Vec::new();
        let removed = self.map.retain(|slot| {
            let keep = slot.expires_at() > now;
            if !keep {
                gone.push(slot.class());
            }
            keep
        });
        self.inserts_since_sweep = 0;
        self.sweep_at = 0;
        for class in gone {
            self.gone(class, counts);
        }
        removed
    }

    /// Drops the dead records among at most `records` of the shard, from
    /// where the last such sweep of it stopped; returns how many it judged.
    fn sweep_some(&mut self, now: Timestamp, records: usize, counts: &Counts) -> usize {
        let mut gone = Vec::new();
        let slice = self.map.retain_some(self.sweep_at, records, |slot| {
            let keep = slot.expires_at() > now;
            if !keep {
                gone.push(slot.class());
            }
            keep
        });
        self.sweep_at = slice.next;
        for class in gone {
            self.gone(class, counts);
        }
        slice.judged
    }

    /// Evicts this shard's oldest evictable retired record other than
    /// `except`; false if there is none.
    fn evict_oldest(&mut self, except: Option<&StoreKey>, counts: &Counts) -> bool {
        while let Some(key) = self.retired.front().copied() {
            if except == Some(&key) {
                // Queued last: it is the only one left.
                return false;
            }
            self.retired.pop_front();
            if self.map.get(&key).is_some_and(Slot::evictable) {
                let _evicted = self.take(&key, counts);
                return true;
            }
        }
        false
    }
}

/// An in-memory [`Store`], fast and shared by the threads of one process.
///
/// Sessions do not survive a restart and are not shared between processes;
/// use the file or Redis store for that.
///
/// # Capacity
///
/// Without a limit the store holds what it is given until it expires. With
/// [`MemoryStore::with_capacity_limit`]:
///
/// - **Live sessions are never evicted.** The limit counts live sessions;
///   a create beyond it first sweeps a bounded slice of the store for dead
///   records (a few hundred buckets, the same work whether the store holds
///   a hundred sessions or a million), then is refused with
///   [`StoreError::Full`]. A flood of creates at capacity costs a few
///   microseconds each, never a sweep of the whole store.
/// - **Rotation and login at capacity succeed**: they retire one live
///   session as they create its successor.
/// - **Retired records do not take a live session's place.** A rotation
///   or a logout leaves a retired record behind, so that a reused or a
///   logged-out token is recognised for what it is. These have a limit of
///   their own ([`MemoryStore::with_retired_limit`], by default the same as
///   the capacity). Past it, the store first sweeps a slice for dead
///   records, then evicts the oldest retired record that took the place of
///   one of its live sessions: its token then reads as unknown, which is
///   still refused, but a reuse of it is no longer detected and is not
///   reported as such.
/// - **Revocations are never evicted.** A retired record written as such
///   (a [`TicketManager`](crate::TicketManager) writes one for each
///   rotated or logged-out ticket) is what keeps a ticket refused; when
///   writing one would pass the retired limit with nothing evictable to
///   make room, it is refused with [`StoreError::Full`] instead.
///
/// # Faults
///
/// Nothing here waits on anything but its own short locks. Should a
/// shard's lock ever be found without its shard (it cannot be: a writer
/// that panics hands the shard back first), calls on that shard fail with
/// [`StoreError::Unavailable`] rather than panic.
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
    shards: Box<[Striped<Shard>]>,
    /// User name → that user's keys, both boxed to exact size: most users
    /// hold one or two sessions, and a `String` + `Vec` (capacity 4) would
    /// cost about twice as much per user.
    users: Mutex<HashMap<Box<str>, Box<[StoreKey]>>>,
    counts: Counts,
    capacity: Option<usize>,
    retired_limit: Option<usize>,
    /// Which shard the next refused create sweeps a slice of.
    sweep_turn: AtomicUsize,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("live", &self.live_len())
            .field("retired", &self.retired_len())
            .field("capacity", &self.capacity)
            .field("retired_limit", &self.retired_limit)
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
                .map(|_| Striped::new(Shard::default()))
                .collect(),
            users: Mutex::new(HashMap::new()),
            counts: Counts::default(),
            capacity: None,
            retired_limit: None,
            sweep_turn: AtomicUsize::new(0),
            clock: Arc::new(SystemClock),
        }
    }

    /// Holds at most `capacity` live sessions: a create beyond that is
    /// refused with [`StoreError::Full`] rather than evicting a live
    /// session. Also sets the retired limit to `capacity`, unless
    /// [`MemoryStore::with_retired_limit`] sets it. See "Capacity" on
    /// [`MemoryStore`] for what is swept, evicted or refused, and in which
    /// order.
    ///
    /// # Example
    /// ```
    /// use latchkey::{Error, MemoryStore, NewSession, SessionManager, StoreError, StoreManager};
    /// let manager = StoreManager::new(MemoryStore::new().with_capacity_limit(1));
    /// let first = manager.create(NewSession::new())?;
    /// let full = manager.create(NewSession::new()).unwrap_err();
    /// assert!(matches!(full, Error::Store(StoreError::Full { capacity: 1 })));
    ///
    /// // A logout frees the place; its retired record does not take it.
    /// manager.terminate(&manager.load(first.token())?.session)?;
    /// manager.create(NewSession::new())?;
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    #[must_use]
    pub fn with_capacity_limit(mut self, capacity: usize) -> MemoryStore {
        self.capacity = Some(capacity);
        self.retired_limit = self.retired_limit.or(Some(capacity));
        self
    }

    /// Holds at most about `limit` retired records (those a rotation or a
    /// logout leaves behind, and ticket revocations): past it, the oldest
    /// evictable one makes room (see "Capacity" on [`MemoryStore`]). The
    /// bound may be passed by at most one record per shard (64), when a
    /// shard has nothing older to evict than the record just retired.
    ///
    /// # Example
    /// ```
    /// use latchkey::{MemoryStore, NewSession, SessionManager, StoreManager};
    /// let store = MemoryStore::new().with_capacity_limit(1_000).with_retired_limit(10_000);
    /// let manager = StoreManager::new(store);
    /// let issued = manager.create(NewSession::new())?;
    /// manager.terminate(&manager.load(issued.token())?.session)?;
    /// assert_eq!((manager.store().live_len(), manager.store().retired_len()), (0, 1));
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    #[must_use]
    pub fn with_retired_limit(mut self, limit: usize) -> MemoryStore {
        self.retired_limit = Some(limit);
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
        self.live_len() + self.retired_len()
    }

    /// The number of live sessions held (expired ones included until they
    /// are swept): what the capacity limit counts.
    ///
    /// # Example
    /// ```
    /// use latchkey::{MemoryStore, NewSession, SessionManager, StoreManager};
    /// let manager = StoreManager::new(MemoryStore::new());
    /// manager.create(NewSession::new())?;
    /// assert_eq!(manager.store().live_len(), 1);
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    pub fn live_len(&self) -> usize {
        self.counts.live.load(Ordering::Relaxed)
    }

    /// The number of retired records held: rotated and ended sessions,
    /// and revocations.
    ///
    /// # Example
    /// ```
    /// use latchkey::{MemoryStore, NewSession, SessionManager, StoreManager};
    /// let manager = StoreManager::new(MemoryStore::new());
    /// let issued = manager.create(NewSession::new())?;
    /// manager.rotate(&mut manager.load(issued.token())?.session)?;
    /// assert_eq!((manager.store().live_len(), manager.store().retired_len()), (1, 1));
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    pub fn retired_len(&self) -> usize {
        self.counts.retired.load(Ordering::Relaxed)
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

    fn shard(&self, key: &StoreKey) -> &Striped<Shard> {
        &self.shards[Self::shard_index(key)]
    }

    /// `f` on the shard of `key`, write-locked.
    fn write_shard<R>(
        &self,
        key: &StoreKey,
        f: impl FnOnce(&mut Shard) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        self.shard(key).write(f).unwrap_or_else(|| Err(lost()))
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

    /// Sweeps the shard whole once it has taken as many inserts as a
    /// quarter of its size (at least 64): amortized, a few records judged
    /// per insert. Index entries of dropped records are left to
    /// [`Store::sessions_of`], which prunes keys it cannot find.
    fn maybe_sweep(&self, shard: &mut Shard) {
        shard.inserts_since_sweep += 1;
        if shard.inserts_since_sweep >= (shard.map.len() / 4).max(64) {
            shard.sweep(self.clock.now(), &self.counts);
        }
    }

    /// Counts one more live session, refusing past the capacity: atomically,
    /// so racing creates cannot overshoot it. At capacity, first sweeps one
    /// bounded slice of one shard (each refusal the next shard in turn) and
    /// tries again. Called with no shard lock held (the index-order rule
    /// that `rotate` relies on). Undo with [`Self::release_live`].
    fn reserve_live(&self) -> Result<(), StoreError> {
        if self.try_reserve_live().is_ok() {
            return Ok(());
        }
        // Shards in turn, each from where its last slice stopped, until
        // SWEEP_STEP records are judged or every shard was looked at once
        // (a small store is then swept whole: that is cheap too).
        let now = self.clock.now();
        let first = self.sweep_turn.fetch_add(1, Ordering::Relaxed);
        let mut budget = SWEEP_STEP;
        for turn in first..first + SHARDS {
            let judged = self.shards[turn % SHARDS]
                .write(|shard| shard.sweep_some(now, budget, &self.counts))
                .ok_or_else(lost)?;
            budget = budget.saturating_sub(judged);
            if budget == 0 {
                self.sweep_turn.store(turn, Ordering::Relaxed);
                break;
            }
        }
        self.try_reserve_live()
    }

    /// [`Self::reserve_live`] without the sweep: for use under a shard lock.
    fn try_reserve_live(&self) -> Result<(), StoreError> {
        let prev = self.counts.live.fetch_add(1, Ordering::AcqRel);
        if let Some(capacity) = self.capacity
            && prev >= capacity
        {
            self.counts.live.fetch_sub(1, Ordering::AcqRel);
            return Err(StoreError::Full { capacity });
        }
        Ok(())
    }

    fn release_live(&self) {
        self.counts.live.fetch_sub(1, Ordering::AcqRel);
    }

    /// Whether `extra` more retired records would pass the retired limit.
    fn over_retired_limit(&self, extra: usize) -> bool {
        self.retired_limit
            .is_some_and(|limit| self.retired_len() + extra > limit)
    }

    /// Makes room within the retired limit for `extra` more retired records
    /// (0 when the one that passed it is filed already), in `shard`
    /// (locked): sweeps a slice of it for dead records, then evicts its
    /// oldest evictable retired record other than `except`. False if there
    /// was no room to make.
    fn make_retired_room(
        &self,
        shard: &mut Shard,
        except: Option<&StoreKey>,
        extra: usize,
    ) -> bool {
        if !self.over_retired_limit(extra) {
            return true;
        }
        shard.sweep_some(self.clock.now(), SWEEP_STEP, &self.counts);
        !self.over_retired_limit(extra) || shard.evict_oldest(except, &self.counts)
    }

    /// Sweeps every shard, one lock at a time, and returns how many dead
    /// records it dropped.
    fn sweep_all(&self, now: Timestamp) -> Result<usize, StoreError> {
        let mut removed = 0;
        for shard in self.shards.iter() {
            removed += shard
                .write(|shard| shard.sweep(now, &self.counts))
                .ok_or_else(lost)?;
        }
        Ok(removed)
    }

    /// The body of [`Store::rotate`] once the locks are held. `new_shard`
    /// is `None` when both keys live in `old_shard`. Returns the old
    /// record's user for reindexing.
    #[allow(clippy::too_many_arguments)]
    fn rotate_in(
        &self,
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
        let before_live = current.is_live();
        let successor = Slot::new(*new, record);
        let retired = Slot::new(*old, retired);
        {
            let target: &Shard = match new_shard {
                Some(s) => s,
                None => old_shard,
            };
            if target.map.contains(new) {
                return Err(StoreError::Exists);
            }
        }
        if successor.is_live() {
            if before_live && !retired.is_live() {
                // A rotation at capacity retires one live session as it
                // files another: the old one's place (given back by the
                // swap below) passes to its successor.
                self.counts.live.fetch_add(1, Ordering::AcqRel);
            } else {
                self.try_reserve_live()?;
            }
        }
        match new_shard {
            Some(s) => s.add(successor, &self.counts),
            None => old_shard.add(successor, &self.counts),
        }
        // Found above, under the same lock: this replaces.
        let _swapped = old_shard.swap(retired, &self.counts);
        // Past the retired limit: room is made here if it can be (the
        // rotation itself is not refused for want of it).
        let _made = self.make_retired_room(old_shard, Some(old), 0);
        Ok(before)
    }
}

impl Store for MemoryStore {
    fn insert(&self, key: &StoreKey, record: &Record) -> Result<(), StoreError> {
        let slot = Slot::new(*key, record);
        let live = slot.is_live();
        if live {
            self.reserve_live()?;
        }
        self.write_shard(key, |shard| {
            if shard.map.contains(key) {
                return Err(StoreError::Exists);
            }
            self.maybe_sweep(shard);
            // A retired record written as such is never evicted: room is
            // made for it, or it is refused.
            if !live && !self.make_retired_room(shard, None, 1) {
                return Err(StoreError::Full {
                    capacity: self.retired_limit.unwrap_or(usize::MAX),
                });
            }
            shard.add(slot, &self.counts);
            Ok(())
        })
        .inspect_err(|_| {
            if live {
                self.release_live();
            }
        })?;
        self.reindex(key, None, record.user());
        Ok(())
    }

    #[inline]
    fn get(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        let shard = self.shard(key).read().ok_or_else(lost)?;
        shard.map.get(key).map(Slot::to_record).transpose()
    }

    #[inline]
    fn peek<R>(&self, key: &StoreKey, f: impl FnOnce(Result<Peek<'_>, StoreError>) -> R) -> R {
        let shard = self.shard(key).read();
        let seen = match shard.as_ref().map(|shard| shard.map.get(key)) {
            None => Err(lost()),
            Some(None) => Ok(Peek::Missing),
            Some(Some(slot)) => slot.live_ref().map(|l| l.map_or(Peek::NotLive, Peek::Live)),
        };
        // One call, so that `f` is compiled in here: a second, for a lost
        // shard, made every load take 130–170 ns more at 100k and 1M
        // (`timing -- load`).
        f(seen)
    }

    fn replace(&self, key: &StoreKey, expected: u64, record: &Record) -> Result<(), StoreError> {
        let slot = Slot::new(*key, record);
        let after = record.user();
        let changed = self.write_shard(key, |shard| {
            let current = shard.map.get(key).ok_or(StoreError::NotFound)?;
            if current.version != expected {
                return Err(StoreError::Conflict);
            }
            // The old user's name is copied out only when the index must
            // change: a save keeps its user, and allocates nothing here.
            let before = current.user();
            let changed = (before != after).then(|| before.map(str::to_owned));
            let (was_live, retiring) = (current.is_live(), !slot.is_live());
            if !was_live && !retiring {
                // A retired record brought back to life takes a live place.
                self.try_reserve_live()?;
            }
            // Found above, under the same lock: this replaces.
            let _swapped = shard.swap(slot, &self.counts);
            if was_live && retiring {
                let _made = self.make_retired_room(shard, Some(key), 0);
            }
            Ok(changed)
        })?;
        if let Some(before) = changed {
            self.reindex(key, before.as_deref(), after);
        }
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
        let shard = self.shard(key).read().ok_or_else(lost)?;
        Ok(shard
            .map
            .get(key)
            .is_some_and(|slot| slot.touch(last_seen, expires_at)))
    }

    fn rotate(
        &self,
        old: &StoreKey,
        expected: u64,
        retired: &Record,
        new: &StoreKey,
        record: &Record,
    ) -> Result<(), StoreError> {
        let (i, j) = (Self::shard_index(old), Self::shard_index(new));
        // Two shard locks, always taken in index order, so two rotations
        // crossing the same pair of shards cannot deadlock.
        let result = if i == j {
            self.shards[i].write(|shard| {
                self.rotate_in(shard, &mut None, old, expected, retired, new, record)
            })
        } else {
            let (first, second) = if i < j { (i, j) } else { (j, i) };
            self.shards[first]
                .write(|a| {
                    self.shards[second].write(|b| {
                        let (old_shard, new_shard) = if i < j { (a, b) } else { (b, a) };
                        self.rotate_in(
                            old_shard,
                            &mut Some(new_shard),
                            old,
                            expected,
                            retired,
                            new,
                            record,
                        )
                    })
                })
                .flatten()
        };
        let before = result.unwrap_or_else(|| Err(lost()))?;
        self.reindex(old, before.as_deref(), retired.user());
        self.reindex(new, None, record.user());
        Ok(())
    }

    fn remove(&self, key: &StoreKey) -> Result<bool, StoreError> {
        let removed = self.write_shard(key, |shard| Ok(shard.take(key, &self.counts)))?;
        match removed {
            Some(slot) => {
                if let Some(u) = slot.user() {
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
            let shard = self.shard(&key).read().ok_or_else(lost)?;
            match shard.map.get(&key) {
                Some(slot) if slot.user() == Some(user) => out.push((key, slot.to_record()?)),
                // Swept or no longer this user's: prune the stale entry.
                _ => self.index_remove(user, &key),
            }
        }
        Ok(out)
    }

    /// Never: every call is in-process work under short locks.
    fn may_block(&self) -> bool {
        false
    }

    fn purge_expired(&self, now: Timestamp) -> Result<usize, StoreError> {
        let removed = self.sweep_all(now)?;
        // Drop index entries whose records are gone or retired.
        let users: Vec<Box<str>> = self.users.lock().keys().cloned().collect();
        for user in users {
            self.sessions_of(&user)?;
        }
        Ok(removed)
    }
}

/// The error for a shard's lock found without its shard (see the module
/// docs).
fn lost() -> StoreError {
    StoreError::Unavailable("a memory store shard's lock no longer holds its shard".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn live(user: Option<&str>, device: Option<&str>, data: &str) -> Record {
        let t = Timestamp::from_unix_millis(1_800_000_000_000);
        let map = match serde_json::from_str(data) {
            Ok(serde_json::Value::Object(m)) => m,
            other => panic!("test data is not an object: {other:?}"),
        };
        Record {
            version: 7,
            expires_at: t.saturating_add(Duration::from_secs(600)),
            state: RecordState::Live(LiveSession {
                created_at: t,
                last_seen: t.saturating_add(Duration::from_secs(5)),
                auth_at: user.map(|_| t),
                absolute_deadline: t.saturating_add(Duration::from_secs(3600)),
                user: user.map(String::from),
                device: device.map(String::from),
                data: SessionData::from_map(map),
            }),
        }
    }

    fn round_trip(record: &Record) -> Record {
        let key = StoreKey::from_bytes([9; 32]);
        match Slot::new(key, record).to_record() {
            Ok(r) => r,
            Err(e) => panic!("slot did not give its record back: {e}"),
        }
    }

    /// The memory goal and the load path both assume three cache lines.
    #[test]
    fn a_slot_is_three_cache_lines() {
        assert_eq!(std::mem::size_of::<Slot>(), 192);
        // The table keeps `Option<Slot>`s: the tail's tag has room for `None`.
        assert_eq!(std::mem::size_of::<Option<Slot>>(), 192);
    }

    #[test]
    fn live_records_come_back_unchanged_in_place_and_spilled() {
        // A JSON object of exactly `n` bytes.
        let data_of = |n: usize| format!(r#"{{"k":"{}"}}"#, "x".repeat(n - 8));
        for (user, device) in [
            (None, None),
            (Some("alice"), None),
            (None, Some("phone")),
            (Some(""), Some("")),
            (Some("zoë 🦀"), Some("Firefox on Linux")),
        ] {
            let fixed = user.map_or(0, str::len) + device.map_or(0, str::len);
            // Just fitting, and one byte too many.
            for n in [8, INLINE - fixed, INLINE - fixed + 1, 4000] {
                if n < 8 {
                    continue;
                }
                let record = live(user, device, &data_of(n));
                let slot = Slot::new(StoreKey::from_bytes([1; 32]), &record);
                let in_place = matches!(slot.tail, Tail::Inline { .. });
                assert_eq!(in_place, fixed + n <= INLINE, "{user:?} {device:?} {n}");
                assert_eq!(round_trip(&record), record, "{user:?} {device:?} {n}");
                assert_eq!(slot.user(), user);
            }
        }
    }

    /// `peek` shows, field for field, the record `get` returns.
    fn assert_peek_matches_get(store: &MemoryStore, key: &StoreKey) {
        let Ok(Some(Record {
            version,
            state: RecordState::Live(want),
            ..
        })) = store.get(key)
        else {
            panic!("not a live record");
        };
        let shown = store.peek(key, |seen| match seen {
            Ok(Peek::Live(live)) => (
                live.version,
                LiveSession {
                    created_at: live.created_at,
                    last_seen: live.last_seen,
                    auth_at: live.auth_at,
                    absolute_deadline: live.absolute_deadline,
                    user: live.user.map(String::from),
                    device: live.device.map(String::from),
                    data: live.data.to_data(),
                },
            ),
            other => panic!("not shown as live: {other:?}"),
        });
        assert_eq!(shown.1.data.encoded(), want.data.encoded());
        assert_eq!(shown, (version, want));
    }

    #[test]
    fn peek_shows_every_live_shape_as_get_returns_it() {
        let data_of = |n: usize| format!(r#"{{"k":"{}"}}"#, "é".repeat((n - 8) / 2));
        let store = MemoryStore::new();
        for (i, (user, device)) in [
            (None, None),
            (Some("alice"), None),
            (None, Some("phone")),
            (Some(""), Some("")),
            (Some("zoë 🦀"), Some("Firefox on Linux")),
        ]
        .into_iter()
        .enumerate()
        {
            for (j, n) in [8, 40, 80, 100, 4000].into_iter().enumerate() {
                let key = StoreKey::from_bytes([u8::try_from(i * 8 + j).unwrap_or(0); 32]);
                assert!(store.insert(&key, &live(user, device, &data_of(n))).is_ok());
                assert_peek_matches_get(&store, &key);
                let later = Timestamp::from_unix_millis(1_900_000_000_000);
                assert!(matches!(store.touch(&key, later, later), Ok(true)));
                assert_peek_matches_get(&store, &key);
            }
        }
    }

    #[test]
    fn peek_shows_nothing_of_missing_rotated_and_ended_records() {
        let t = Timestamp::from_unix_millis(1_800_000_000_000);
        let store = MemoryStore::new();
        let ended = Record {
            version: 2,
            expires_at: t,
            state: RecordState::Ended {
                reason: EndReason::Logout,
                at: t,
            },
        };
        let (old, next) = (crate::SessionId::generate(), crate::SessionId::generate());
        let rotated = Record {
            version: 3,
            expires_at: t,
            state: RecordState::Rotated {
                successor: next.store_key(),
                sealed_successor: Some(old.seal(&next)),
                at: t,
                grace_until: t,
                privilege_change: false,
                pending: None,
            },
        };
        let (k1, k2, k3) = (
            StoreKey::from_bytes([1; 32]),
            StoreKey::from_bytes([2; 32]),
            StoreKey::from_bytes([3; 32]),
        );
        assert!(store.insert(&k1, &ended).is_ok());
        assert!(store.insert(&k2, &rotated).is_ok());
        let shown = |k: &StoreKey| store.peek(k, |seen| format!("{seen:?}"));
        assert_eq!(shown(&k1), "Ok(NotLive)");
        assert_eq!(shown(&k2), "Ok(NotLive)");
        assert_eq!(shown(&k3), "Ok(Missing)");
    }

    #[test]
    fn bytes_in_place_that_are_not_utf8_are_reported_or_read_as_empty_never_trusted() {
        // Safe code cannot write such bytes (they are copied from `&str`s);
        // this checks what happens if memory is corrupted anyway.
        let record = live(Some("alice"), None, r#"{"a":1}"#);
        let mut slot = Slot::new(StoreKey::from_bytes([4; 32]), &record);
        let Tail::Inline { buf, .. } = &mut slot.tail else {
            panic!("expected the record in place");
        };
        buf[0] = 0xff; // inside the user name
        assert!(matches!(slot.live_ref(), Err(StoreError::Corrupt { .. })));
        assert!(matches!(slot.to_record(), Err(StoreError::Corrupt { .. })));
        let mut slot = Slot::new(StoreKey::from_bytes([4; 32]), &record);
        let Tail::Inline { buf, .. } = &mut slot.tail else {
            panic!("expected the record in place");
        };
        buf[8] = 0xff; // inside the data, after "alice" and `{"a":`
        let Ok(Some(live)) = slot.live_ref() else {
            panic!("data is checked when read, not here");
        };
        // Read, the data is an empty map: no panic, no bytes trusted.
        let data = live.data.to_data();
        assert_eq!(data, SessionData::default());
        assert!(matches!(slot.to_record(), Err(StoreError::Corrupt { .. })));
    }

    #[test]
    fn retired_and_ended_records_come_back_unchanged() {
        let t = Timestamp::from_unix_millis(1_800_000_000_000);
        let old = crate::SessionId::generate();
        let next = crate::SessionId::generate();
        let rotated = Record {
            version: 3,
            expires_at: t.saturating_add(Duration::from_secs(60)),
            state: RecordState::Rotated {
                successor: next.store_key(),
                sealed_successor: Some(old.seal(&next)),
                at: t,
                grace_until: t.saturating_add(Duration::from_secs(30)),
                privilege_change: true,
                pending: None,
            },
        };
        assert_eq!(round_trip(&rotated), rotated);
        let ended = Record {
            version: 4,
            expires_at: t,
            state: RecordState::Ended {
                reason: EndReason::ReuseDetected,
                at: t,
            },
        };
        assert_eq!(round_trip(&ended), ended);
        let slot = Slot::new(StoreKey::from_bytes([2; 32]), &ended);
        assert!(!slot.touch(t, t.saturating_add(Duration::from_secs(1))));
        assert_eq!(slot.user(), None);
    }

    /// The counts, the evictable tally and the eviction queue agree with
    /// what the shards hold.
    fn check_counts(store: &MemoryStore) {
        let (mut live, mut retired) = (0, 0);
        for shard in store.shards.iter() {
            let shard = shard.read().unwrap_or_else(|| panic!("shard lost"));
            let mut evictable = 0;
            for slot in shard.map.iter() {
                match slot.class() {
                    Class::Live => live += 1,
                    Class::Retired { evictable: e } => {
                        retired += 1;
                        evictable += usize::from(e);
                        if e {
                            assert!(shard.retired.contains(&slot.key), "evictable, not queued");
                        }
                    }
                }
            }
            assert_eq!(shard.evictable, evictable);
            assert!(shard.retired.len() <= 2 * shard.evictable + 65);
        }
        assert_eq!((store.live_len(), store.retired_len()), (live, retired));
    }

    fn ended(t: Timestamp, secs: u64) -> Record {
        Record {
            version: 1,
            expires_at: t.saturating_add(Duration::from_secs(secs)),
            state: RecordState::Ended {
                reason: EndReason::Logout,
                at: t,
            },
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        #[test]
        fn counts_follow_every_write(
            ops in proptest::collection::vec((0u8..7, 0u8..24, 0u8..24), 1..300),
            capacity in 1usize..12,
            retired_limit in 1usize..12,
        ) {
            let clock = Arc::new(crate::ManualClock::new(Timestamp::from_unix_millis(1_800_000_000_000)));
            let store = MemoryStore::new()
                .with_capacity_limit(capacity)
                .with_retired_limit(retired_limit)
                .with_clock(clock.clone());
            let key = |k: u8| StoreKey::from_bytes([k; 32]);
            for (op, a, b) in ops {
                let t = clock.now();
                let current = store.get(&key(a)).ok().flatten().map(|r| r.version);
                let mut fresh = live(Some("u"), None, "{}");
                fresh.expires_at = t.saturating_add(Duration::from_secs(u64::from(b) * 10));
                let _result = match op {
                    0 => store.insert(&key(a), &fresh),
                    1 => store.insert(&key(a), &ended(t, u64::from(b) * 10)),
                    2 => store.replace(&key(a), current.unwrap_or(0), &ended(t, 100)),
                    3 => store.replace(&key(a), current.unwrap_or(0), &fresh),
                    4 => {
                        let retired = Record {
                            version: 9,
                            expires_at: t.saturating_add(Duration::from_secs(100)),
                            state: RecordState::Rotated {
                                successor: key(b),
                                sealed_successor: None,
                                at: t,
                                grace_until: t,
                                privilege_change: false,
                                pending: None,
                            },
                        };
                        store.rotate(&key(a), current.unwrap_or(0), &retired, &key(b), &fresh)
                    }
                    5 => store.remove(&key(a)).map(|_| ()),
                    _ => {
                        clock.advance(Duration::from_secs(u64::from(b) * 5));
                        store.purge_expired(clock.now()).map(|_| ())
                    }
                };
                check_counts(&store);
                proptest::prop_assert!(store.live_len() <= capacity);
                proptest::prop_assert!(store.retired_len() <= retired_limit + SHARDS);
            }
        }
    }

    #[test]
    fn a_touch_raises_last_seen_and_expiry_and_never_lowers_them() {
        let record = live(Some("alice"), None, "{}");
        let slot = Slot::new(StoreKey::from_bytes([3; 32]), &record);
        let before = round_trip(&record);
        let later = before.expires_at.saturating_add(Duration::from_secs(60));
        let earlier = Timestamp::from_unix_millis(1);
        assert!(slot.touch(later, later));
        assert!(slot.touch(earlier, earlier));
        let after = match slot.to_record() {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(after.expires_at, later);
        match after.state {
            RecordState::Live(s) => assert_eq!(s.last_seen, later),
            other => panic!("not live: {other:?}"),
        }
    }
}
