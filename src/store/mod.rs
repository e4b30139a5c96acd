//! Where sessions live: the [`Store`] trait, its records, and the backends.
//!
//! A store is a small, synchronous, object-safe key-value contract. It knows
//! nothing of tokens, policies or clocks beyond a record's `expires_at`: the
//! manager decides, the store keeps. Keys are [`StoreKey`]s, SHA-256 hashes
//! of session IDs, so nothing a store holds can be replayed as a cookie.
//!
//! # Implementing a store
//!
//! ```
//! use std::collections::HashMap;
//! use parking_lot::Mutex;
//! use latchkey::{Store, StoreError, StoreKey, Timestamp};
//! use latchkey::store::{Record};
//!
//! /// One lock around one map: correct, simple, slow under contention.
//! #[derive(Debug, Default)]
//! struct Simple(Mutex<HashMap<StoreKey, Record>>);
//!
//! impl Store for Simple {
//!     fn insert(&self, key: &StoreKey, record: &Record) -> Result<(), StoreError> {
//!         let mut m = self.0.lock();
//!         if m.contains_key(key) {
//!             return Err(StoreError::Exists);
//!         }
//!         m.insert(*key, record.clone());
//!         Ok(())
//!     }
//!     fn get(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
//!         Ok(self.0.lock().get(key).cloned())
//!     }
//!     fn replace(&self, key: &StoreKey, expected: u64, record: &Record) -> Result<(), StoreError> {
//!         let mut m = self.0.lock();
//!         match m.get_mut(key) {
//!             None => Err(StoreError::NotFound),
//!             Some(r) if r.version != expected => Err(StoreError::Conflict),
//!             Some(r) => { *r = record.clone(); Ok(()) }
//!         }
//!     }
//!     fn touch(&self, key: &StoreKey, last_seen: Timestamp, expires_at: Timestamp) -> Result<bool, StoreError> {
//!         Ok(self.0.lock().get_mut(key).is_some_and(|r| r.touch(last_seen, expires_at)))
//!     }
//!     fn remove(&self, key: &StoreKey) -> Result<bool, StoreError> {
//!         Ok(self.0.lock().remove(key).is_some())
//!     }
//!     fn sessions_of(&self, user: &str) -> Result<Vec<(StoreKey, Record)>, StoreError> {
//!         Ok(self.0.lock().iter()
//!             .filter(|(_, r)| r.user() == Some(user))
//!             .map(|(k, r)| (*k, r.clone()))
//!             .collect())
//!     }
//!     fn purge_expired(&self, now: Timestamp) -> Result<usize, StoreError> {
//!         let mut m = self.0.lock();
//!         let before = m.len();
//!         m.retain(|_, r| r.expires_at > now);
//!         Ok(before - m.len())
//!     }
//! }
//!
//! # use latchkey::{NewSession, SessionManager, StoreManager};
//! let manager = StoreManager::new(Simple::default());
//! let issued = manager.create(NewSession::new())?;
//! assert!(manager.load(issued.token()).is_ok());
//! # Ok::<(), latchkey::Error>(())
//! ```
//!
//! Two methods are provided. [`Store::rotate`] is built from the
//! single-key writes (crash-safe through the manager's roll-forward, see
//! [`crate::lifecycle`]); a store that can write two keys atomically may
//! override it. [`Store::peek`] shows a record to the manager without
//! copying it out; its default calls `get`, which is all a store needs, and
//! a store that keeps records in memory can override it to save the copy,
//! as [`MemoryStore`](crate::MemoryStore) does.
//!
//! Run the conformance suite against your store: `store::conformance` and
//! `latchkey::store_conformance!`, behind the `test-util` feature.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::data::SessionData;
pub use crate::id::SealedId;
use crate::id::{Fingerprint, StoreKey};

#[cfg(feature = "async")]
#[cfg_attr(docsrs, doc(cfg(feature = "async")))]
pub use self::asynchronous::AsyncStore;

#[cfg(feature = "async")]
mod asynchronous;
#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub mod conformance;
#[cfg(unix)]
pub mod file;
pub mod memory;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "redis")]
pub mod redis;

/// Why a session was ended on purpose.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum EndReason {
    /// The user logged out of this session.
    Logout,
    /// The user (or an administrator) ended all of the user's sessions.
    LogoutAll,
    /// The per-user session limit made room for a newer session.
    Evicted,
    /// A rotated predecessor of this session was reused after its grace
    /// window, so this session was revoked as possibly stolen.
    ReuseDetected,
    /// Another user logged in on this session; the new login got a fresh one.
    Replaced,
    /// Legacy: how revocation entries written by earlier versions marked a
    /// rotated ticket. Still read (refused as reuse once in force), never
    /// written: a rotation is now a [`RecordState::Rotated`] entry, the
    /// same for tickets as for server-side sessions.
    Rotated,
}

impl fmt::Display for EndReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EndReason::Logout => "logged out",
            EndReason::LogoutAll => "logged out everywhere",
            EndReason::Evicted => "evicted by the per-user session limit",
            EndReason::ReuseDetected => "revoked after a rotated token was reused",
            EndReason::Replaced => "replaced by another user's login",
            EndReason::Rotated => "retired by rotation",
        })
    }
}

/// The metadata and data of a live session, as a store keeps it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LiveSession {
    /// When the session was created; rotation keeps it.
    pub created_at: Timestamp,
    /// The last recorded activity.
    pub last_seen: Timestamp,
    /// When the user last authenticated, if ever.
    pub auth_at: Option<Timestamp>,
    /// created_at + absolute timeout: no activity moves it.
    pub absolute_deadline: Timestamp,
    /// The user bound by login, if any.
    pub user: Option<String>,
    /// A label for the device or client, e.g. a browser name.
    pub device: Option<String>,
    /// Application data.
    pub data: SessionData,
}

/// A live record as [`Store::peek`] shows it: its fields borrowed from the
/// store for the length of the call, so a load copies out only what it
/// keeps.
///
/// It mirrors [`LiveSession`] field for field, plus the record's version,
/// and like it is built with a struct literal: a store that keeps its
/// records in some other form (text, say) shows them without building a
/// `LiveSession` first; [`LiveRef::new`] borrows a `LiveSession` it keeps.
///
/// # Example
/// ```
/// use latchkey::{Timestamp};
/// use latchkey::store::{LiveRef};
/// use latchkey::store::DataRef;
/// // Parts as a store might keep them, borrowed for the call.
/// let t = Timestamp::from_unix_millis(1_800_000_000_000);
/// let (user, data) = ("alice", r#"{"theme":"dark"}"#);
/// let seen = LiveRef {
///     version: 3,
///     created_at: t,
///     last_seen: t,
///     auth_at: None,
///     absolute_deadline: t,
///     user: Some(user),
///     device: None,
///     data: DataRef::from(data),
/// };
/// assert_eq!(seen.data.to_data().encoded().as_ref(), data);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct LiveRef<'a> {
    /// The record's version.
    pub version: u64,
    /// As [`LiveSession::created_at`].
    pub created_at: Timestamp,
    /// As [`LiveSession::last_seen`].
    pub last_seen: Timestamp,
    /// As [`LiveSession::auth_at`].
    pub auth_at: Option<Timestamp>,
    /// As [`LiveSession::absolute_deadline`].
    pub absolute_deadline: Timestamp,
    /// As [`LiveSession::user`].
    pub user: Option<&'a str>,
    /// As [`LiveSession::device`].
    pub device: Option<&'a str>,
    /// As [`LiveSession::data`], copied out by [`DataRef::to_data`].
    pub data: DataRef<'a>,
}

impl<'a> LiveRef<'a> {
    /// A view of a live record at `version`: what a store that keeps
    /// [`LiveSession`]s shows from [`Store::peek`].
    ///
    /// # Example
    /// ```
    /// use latchkey::{SessionData, Timestamp};
    /// use latchkey::store::{LiveRef, LiveSession};
    /// let t = Timestamp::from_unix_millis(0);
    /// let live = LiveSession { created_at: t, last_seen: t, auth_at: Some(t), absolute_deadline: t,
    ///     user: None, device: Some("phone".into()), data: SessionData::default() };
    /// assert_eq!(LiveRef::new(1, &live).device, Some("phone"));
    /// ```
    pub fn new(version: u64, live: &'a LiveSession) -> LiveRef<'a> {
        LiveRef {
            version,
            created_at: live.created_at,
            last_seen: live.last_seen,
            auth_at: live.auth_at,
            absolute_deadline: live.absolute_deadline,
            user: live.user.as_deref(),
            device: live.device.as_deref(),
            data: DataRef::from(&live.data),
        }
    }
}

/// A session's data as a store holds it, borrowed (see [`LiveRef`]).
///
/// # Example
/// ```
/// use latchkey::store::DataRef;
/// let data = DataRef::from(r#"{"theme":"dark"}"#).to_data();
/// assert_eq!(data.encoded().as_ref(), r#"{"theme":"dark"}"#);
/// ```
#[derive(Clone, Copy)]
pub struct DataRef<'a>(DataInner<'a>);

#[derive(Clone, Copy)]
enum DataInner<'a> {
    Data(&'a SessionData),
    Text(&'a str),
    /// A memory store's bytes in place: see `SessionData::from_inline`.
    Inline {
        buf: &'a [u8; crate::data::INLINE],
        start: u8,
        len: u8,
    },
}

impl<'a> DataRef<'a> {
    /// A memory store's bytes in place, `buf[start..start + len]`: copied
    /// whole and checked as UTF-8 only when the data is read.
    pub(crate) fn inline(buf: &'a [u8; crate::data::INLINE], start: u8, len: u8) -> Self {
        DataRef(DataInner::Inline { buf, start, len })
    }

    /// An owned copy, as a [`Session`](crate::Session) keeps it.
    ///
    /// # Example
    /// ```
    /// use latchkey::{SessionData};
    /// use latchkey::store::{DataRef};
    /// let data = SessionData::from_map(serde_json::json!({"n": 1}).as_object().unwrap().clone());
    /// assert_eq!(DataRef::from(&data).to_data(), data);
    /// ```
    #[inline]
    pub fn to_data(&self) -> SessionData {
        match self.0 {
            DataInner::Data(d) => d.clone(),
            DataInner::Text(t) => SessionData::from_encoded(Arc::from(t)),
            DataInner::Inline { buf, start, len } => SessionData::from_inline(*buf, start, len),
        }
    }
}

impl<'a> From<&'a SessionData> for DataRef<'a> {
    fn from(data: &'a SessionData) -> Self {
        DataRef(DataInner::Data(data))
    }
}

/// Encoded data: a JSON object's text, which the store vouches for (it
/// hands back only what it was given).
impl<'a> From<&'a str> for DataRef<'a> {
    fn from(text: &'a str) -> Self {
        DataRef(DataInner::Text(text))
    }
}

impl fmt::Debug for DataRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Data may hold secrets: its size only, as `SessionData` shows.
        let bytes = match self.0 {
            DataInner::Data(d) => d.encoded_text().len(),
            DataInner::Text(t) => t.len(),
            DataInner::Inline { len, .. } => usize::from(len),
        };
        f.debug_struct("DataRef").field("bytes", &bytes).finish()
    }
}

/// What [`Store::peek`] shows of a key.
///
/// # Example
/// ```
/// use latchkey::{MemoryStore, Store, StoreKey};
/// use latchkey::store::{Peek};
/// let key = StoreKey::from_hex(&"00".repeat(32)).unwrap();
/// assert!(MemoryStore::new().peek(&key, |seen| matches!(seen, Ok(Peek::Missing))));
/// ```
#[derive(Clone, Copy, Debug)]
pub enum Peek<'a> {
    /// No record.
    Missing,
    /// A live record, in place.
    Live(LiveRef<'a>),
    /// A rotated or ended record, not shown: [`Store::get`] returns it.
    NotLive,
}

/// What a record says about its key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RecordState {
    /// A live session.
    Live(LiveSession),
    /// The key was retired by rotation; kept to resolve in-flight requests
    /// during the grace window and to detect reuse after it. The lifecycle
    /// rules for it are in [`crate::lifecycle`].
    Rotated {
        /// The successor's store key.
        successor: StoreKey,
        /// The successor's ID, sealed with the retired ID, so that the old
        /// token can be handed its successor within the grace window. Only a
        /// routine rotation keeps it: after a privilege change (login, a
        /// declared change) it is `None`, and no store dump plus old token
        /// yields the new one. Tickets never have it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sealed_successor: Option<SealedId>,
        /// When the rotation happened.
        at: Timestamp,
        /// The end of the grace window: until then a routine rotation's old
        /// token still resolves (to the successor), and a privilege change's
        /// is refused as superseded without alarm; after it, any use of the
        /// old token is reuse.
        grace_until: Timestamp,
        /// Whether the rotation changed privilege: a login, another user, or
        /// a change the caller declared
        /// ([`SessionManager::change_privilege`](crate::SessionManager::change_privilege)).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        privilege_change: bool,
        /// The successor's record while it may not be written yet: the
        /// write-ahead intent of a rotation made from single-key writes
        /// (the default [`Store::rotate`]). A later load rolls the rotation
        /// forward from it if the process died before the successor was
        /// written; see [`crate::lifecycle`].
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pending: Option<Box<Record>>,
    },
    /// The session was ended; kept so later loads can say why.
    Ended {
        /// Why it ended.
        reason: EndReason,
        /// When.
        at: Timestamp,
    },
}

/// A store's unit: one key's versioned state and when it may be forgotten.
///
/// Stores encode it with serde (JSON in the file store and Redis).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Bumped on every change the manager makes; the basis of versioned saves.
    pub version: u64,
    /// After this instant the record is dead and the store may delete it.
    pub expires_at: Timestamp,
    /// The state.
    pub state: RecordState,
}

impl Record {
    /// The user a live record is bound to; `None` for anonymous or non-live
    /// records. A store's per-user index holds exactly the keys for which
    /// this is `Some`.
    ///
    /// # Example
    /// ```
    /// use std::time::Duration;
    /// use latchkey::{EndReason, SessionData, Timestamp};
    /// use latchkey::store::{LiveSession, Record, RecordState};
    /// let t = Timestamp::from_unix_millis(1_000);
    /// let live = Record {
    ///     version: 1,
    ///     expires_at: t.saturating_add(Duration::from_secs(600)),
    ///     state: RecordState::Live(LiveSession {
    ///         created_at: t, last_seen: t, auth_at: Some(t),
    ///         absolute_deadline: t.saturating_add(Duration::from_secs(3600)),
    ///         user: Some("alice".into()), device: None, data: SessionData::default(),
    ///     }),
    /// };
    /// let ended = Record { version: 2, expires_at: t, state: RecordState::Ended { reason: EndReason::Logout, at: t } };
    /// assert_eq!(live.user(), Some("alice"));
    /// assert_eq!(ended.user(), None);
    /// ```
    pub fn user(&self) -> Option<&str> {
        match &self.state {
            RecordState::Live(s) => s.user.as_deref(),
            _ => None,
        }
    }

    /// Whether this is a live session.
    ///
    /// # Example
    /// ```
    /// use std::time::Duration;
    /// use latchkey::{EndReason, SessionData, Timestamp};
    /// use latchkey::store::{LiveSession, Record, RecordState};
    /// let t = Timestamp::from_unix_millis(1_000);
    /// let live = Record {
    ///     version: 1,
    ///     expires_at: t.saturating_add(Duration::from_secs(600)),
    ///     state: RecordState::Live(LiveSession {
    ///         created_at: t, last_seen: t, auth_at: Some(t),
    ///         absolute_deadline: t.saturating_add(Duration::from_secs(3600)),
    ///         user: Some("alice".into()), device: None, data: SessionData::default(),
    ///     }),
    /// };
    /// let ended = Record { version: 2, expires_at: t, state: RecordState::Ended { reason: EndReason::Logout, at: t } };
    /// assert!(live.is_live() && !ended.is_live());
    /// ```
    pub fn is_live(&self) -> bool {
        matches!(self.state, RecordState::Live(_))
    }

    /// Applies a touch: for a live record whose `last_seen` is older, sets
    /// `last_seen` and raises `expires_at` (never lowers either). Returns
    /// whether the record is live. Stores call this to implement
    /// [`Store::touch`].
    ///
    /// # Example
    /// ```
    /// use std::time::Duration;
    /// use latchkey::{EndReason, SessionData, Timestamp};
    /// use latchkey::store::{LiveSession, Record, RecordState};
    /// let t = Timestamp::from_unix_millis(1_000);
    /// let live = Record {
    ///     version: 1,
    ///     expires_at: t.saturating_add(Duration::from_secs(600)),
    ///     state: RecordState::Live(LiveSession {
    ///         created_at: t, last_seen: t, auth_at: Some(t),
    ///         absolute_deadline: t.saturating_add(Duration::from_secs(3600)),
    ///         user: Some("alice".into()), device: None, data: SessionData::default(),
    ///     }),
    /// };
    /// let ended = Record { version: 2, expires_at: t, state: RecordState::Ended { reason: EndReason::Logout, at: t } };
    /// let mut r = live.clone();
    /// assert!(r.touch(t.saturating_add(Duration::from_secs(5)), t));
    /// assert_eq!(r.expires_at, live.expires_at); // never lowered
    /// let mut e = ended.clone();
    /// assert!(!e.touch(t, t));
    /// ```
    pub fn touch(&mut self, last_seen: Timestamp, expires_at: Timestamp) -> bool {
        match &mut self.state {
            RecordState::Live(s) => {
                if last_seen > s.last_seen {
                    s.last_seen = last_seen;
                }
                if expires_at > self.expires_at {
                    self.expires_at = expires_at;
                }
                true
            }
            _ => false,
        }
    }
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// `insert` found the key already present.
    #[error("a record with this key already exists")]
    Exists,
    /// A versioned write found another version.
    #[error("the record changed since it was read")]
    Conflict,
    /// The key has no record.
    #[error("no record has this key")]
    NotFound,
    /// The store is at its configured capacity and refuses new sessions
    /// rather than silently evicting live ones.
    #[error("the store is at its capacity of {capacity} records")]
    Full {
        /// The configured capacity.
        capacity: usize,
    },
    /// One record could not be decoded. Only that session is affected.
    #[error("the record of session {key} is corrupt")]
    Corrupt {
        /// The affected session.
        key: Fingerprint,
        /// What was wrong with it.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// An I/O operation failed.
    #[error("I/O error")]
    Io(#[source] std::io::Error),
    /// A lock the operation needs was held by someone else (another
    /// process, or another thread of this one) for longer than the store's
    /// lock timeout, so the operation gave up rather than wait without end.
    ///
    /// The usual cause is a holder that is stopped (`SIGSTOP`, a debugger)
    /// or stuck in I/O; `fuser -v LOCK` names it. Like any backend error it
    /// means "try again later", not "the session is bad". Which locks a
    /// store has, and what a timed-out write may already have changed, are
    /// the store's to document (see
    /// [`FileStore::with_lock_timeout`](crate::FileStore::with_lock_timeout)).
    ///
    /// # Example
    /// ```
    /// use latchkey::{Error, StoreError};
    /// use std::time::Duration;
    ///
    /// let e = StoreError::LockTimeout {
    ///     lock: "/srv/sessions/locks/s-26".into(),
    ///     waited: Duration::from_secs(5),
    /// };
    /// assert_eq!(e.to_string(), "gave up after 5s waiting for the lock /srv/sessions/locks/s-26");
    /// assert!(Error::Store(e).is_backend_failure());
    /// ```
    #[error("gave up after {waited:?} waiting for the lock {}", lock.display())]
    LockTimeout {
        /// The lock file: a path of the store, never a key or a token.
        lock: std::path::PathBuf,
        /// How long the operation waited.
        waited: std::time::Duration,
    },
    /// A store directory is unsafe to use: anyone else who can write to it
    /// could forge or swap sessions.
    #[error("refusing to use {}: {reason}", path.display())]
    InsecureDirectory {
        /// The directory.
        path: std::path::PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The record is larger than this store reads back, so it is refused
    /// at write time rather than stored and then unreadable.
    #[error("the record is {size} bytes, more than this store reads back ({limit})")]
    RecordTooLarge {
        /// The encoded size.
        size: usize,
        /// The most the store reads back.
        limit: usize,
    },
    /// The backend cannot be reached or refused to serve. A store that
    /// cannot tell whether a write took effect reports
    /// [`StoreError::OutcomeUnknown`] instead.
    #[error("the store is unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A write was sent, but its answer was lost (the connection dropped or
    /// timed out after the request left, and a retry could not settle
    /// it): the write may or may not have taken effect, once. A backend
    /// failure like [`StoreError::Unavailable`]; unlike it, the caller
    /// must allow for both states, and must not take the next
    /// [`StoreError::Conflict`] on that record as someone else's write.
    ///
    /// # Example
    /// ```
    /// use latchkey::{Error, StoreError};
    /// let lost = Error::Store(StoreError::OutcomeUnknown("connection reset".into()));
    /// assert!(lost.is_backend_failure());
    /// assert!(!lost.is_rejection());
    /// ```
    #[error("the store did not confirm the write; it may or may not have taken effect")]
    OutcomeUnknown(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl From<std::io::Error> for StoreError {
    fn from(e: std::io::Error) -> StoreError {
        StoreError::Io(e)
    }
}

impl StoreError {
    /// Whether this is a corrupt record (a rejection of that one session,
    /// not a failure of the store).
    ///
    /// # Example
    /// ```
    /// use latchkey::{Fingerprint, StoreError};
    /// let e = StoreError::Corrupt { key: Fingerprint::from_hex("0123456789ab").unwrap(), source: "bad magic".into() };
    /// assert!(e.is_corrupt());
    /// assert!(!StoreError::Conflict.is_corrupt());
    /// ```
    pub fn is_corrupt(&self) -> bool {
        matches!(self, StoreError::Corrupt { .. })
    }
}

/// A session store: synchronous, object-safe, shareable across threads.
///
/// # Contract
/// - **Keys come from untrusted input.** A key is a hash of whatever token a
///   client presented; a store must not assume it exists, and must never
///   build anything but its own fixed-format names from it (hex for files).
/// - **`insert` fails on an existing key** ([`StoreError::Exists`]), whatever
///   state the existing record is in.
/// - **Writes are versioned**: `replace` and `rotate` succeed only when the
///   stored version equals `expected` and fail with
///   [`StoreError::Conflict`] otherwise, [`StoreError::NotFound`] when the
///   key is missing. No write from a stale copy lands.
/// - **`touch` records activity without changing the version**, so a busy
///   session's loads do not make its saves conflict.
/// - **`rotate` retires `old` before `new` exists or atomically**: the
///   provided method writes the retired record (carrying the successor as
///   `pending`) and then inserts the successor, two single-key writes whose
///   every crash point the manager recovers from; a store that can write
///   both keys atomically (memory, Redis) overrides it, and then readers see
///   either the old record and no new one, or the retired record and the
///   new one. Never may the successor exist beside a still-live `old`.
/// - **`remove` really deletes**; a later `get` returns `None`.
/// - **`sessions_of(user)` lists the live records bound to `user`** (those
///   whose [`Record::user`] is `Some(user)`), possibly including expired
///   ones not yet purged; the manager filters by time.
/// - **`purge_expired(now)` deletes every record with `expires_at <= now`**.
///   Stores may also delete such records at any other time.
/// - **Failures are errors, never panics**, and a corrupt record is
///   [`StoreError::Corrupt`] for that key only.
pub trait Store: fmt::Debug + Send + Sync {
    /// Adds a record under a new key.
    ///
    /// # Errors
    /// [`StoreError::Exists`] if the key has a record; [`StoreError::Full`]
    /// at capacity; backend errors.
    fn insert(&self, key: &StoreKey, record: &Record) -> Result<(), StoreError>;

    /// The record under `key`, if any.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] if it cannot be decoded; backend errors.
    fn get(&self, key: &StoreKey) -> Result<Option<Record>, StoreError>;

    /// Shows the record under `key` to `f` where it lies and returns what
    /// `f` makes of it, so that a load copies out only what it keeps. A
    /// live record is shown in full ([`Peek::Live`]), the same record
    /// [`get`](Self::get) would have returned; for the others `f` learns
    /// only that there is none or that it is not live. `f` runs exactly
    /// once, with the error if the store failed, and must not call into the
    /// store (it may run under the store's lock).
    ///
    /// The default gets the record and shows that copy: a store overrides
    /// this only to save the copy ([`MemoryStore`](crate::MemoryStore)
    /// does). It is generic, so that a caller's `f` is compiled into the
    /// store's lookup; a store behind a `Box`, an `Arc` or `dyn Store` is
    /// peeked through the default.
    ///
    /// # Example
    /// ```
    /// use latchkey::{MemoryStore, NewSession, SessionManager, Store, StoreManager};
    /// use latchkey::store::{Peek};
    /// let manager = StoreManager::new(MemoryStore::new());
    /// let issued = manager.create(NewSession::new().with_user("alice"))?;
    /// let key = latchkey::SessionId::parse(issued.token())?.store_key();
    /// let user = manager.store().peek(&key, |seen| match seen {
    ///     Ok(Peek::Live(live)) => live.user.map(str::to_owned),
    ///     _ => None,
    /// });
    /// assert_eq!(user.as_deref(), Some("alice"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    fn peek<R>(&self, key: &StoreKey, f: impl FnOnce(Result<Peek<'_>, StoreError>) -> R) -> R
    where
        Self: Sized,
    {
        let record = match self.get(key) {
            Ok(record) => record,
            Err(e) => return f(Err(e)),
        };
        f(Ok(match &record {
            None => Peek::Missing,
            Some(Record {
                version,
                state: RecordState::Live(live),
                ..
            }) => Peek::Live(LiveRef::new(*version, live)),
            Some(_) => Peek::NotLive,
        }))
    }

    /// Replaces the record under `key` if its version is `expected`.
    ///
    /// # Errors
    /// [`StoreError::Conflict`], [`StoreError::NotFound`], backend errors.
    fn replace(&self, key: &StoreKey, expected: u64, record: &Record) -> Result<(), StoreError>;

    /// Records activity on a live record as [`Record::touch`] does, without
    /// changing its version. Returns `false` if the key is missing or not
    /// live.
    ///
    /// # Errors
    /// Backend errors.
    fn touch(
        &self,
        key: &StoreKey,
        last_seen: Timestamp,
        expires_at: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Replaces `old` (at version `expected`) with `retired` and inserts
    /// `record` under `new`.
    ///
    /// The provided method needs only the single-key operations: it writes
    /// `retired` first, carrying `record` as its
    /// [`pending`](RecordState::Rotated::pending) successor when `retired`
    /// is a [`RecordState::Rotated`], then inserts `record`, then checks
    /// that `old` is still the record it wrote (a logout that ended it in
    /// between wins, and the successor is removed again). If the process
    /// dies between the writes, `old` is retired and the successor missing;
    /// the manager rolls that forward on the next load of the old token
    /// ([`crate::lifecycle`]). Override it only with a store that writes
    /// both keys atomically.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] or [`StoreError::NotFound`] for `old`,
    /// [`StoreError::Exists`] for `new`, backend errors. An atomic store
    /// changes neither key on any error. The provided method changes
    /// nothing on an error from its first write; after it, `old` stays
    /// retired with the successor pending, exactly as after a crash, and the
    /// manager resolves it.
    fn rotate(
        &self,
        old: &StoreKey,
        expected: u64,
        retired: &Record,
        new: &StoreKey,
        record: &Record,
    ) -> Result<(), StoreError> {
        // The checks an atomic store makes, in its order, before anything
        // is written: `old` at `expected`, then `new` free (a successor key
        // that exists already is a broken RNG). `replace` checks `old`
        // again, atomically.
        match self.get(old)? {
            None => return Err(StoreError::NotFound),
            Some(r) if r.version != expected => return Err(StoreError::Conflict),
            Some(_) => {}
        }
        if self.get(new)?.is_some() {
            return Err(StoreError::Exists);
        }
        let mut intent = retired.clone();
        if let RecordState::Rotated { pending, .. } = &mut intent.state {
            *pending = Some(Box::new(record.clone()));
        }
        self.replace(old, expected, &intent)?;
        // On an error from here on `old` stays retired with its successor
        // pending, as after a crash: putting `old` back live could race a
        // load that rolled the rotation forward and leave two live records.
        if complete_rotation(self, old, intent.version, new, record)? {
            Ok(())
        } else {
            Err(StoreError::Conflict)
        }
    }

    /// Deletes the record under `key`; returns whether there was one.
    ///
    /// # Errors
    /// Backend errors.
    fn remove(&self, key: &StoreKey) -> Result<bool, StoreError>;

    /// The live records bound to `user`.
    ///
    /// # Errors
    /// Backend errors.
    fn sessions_of(&self, user: &str) -> Result<Vec<(StoreKey, Record)>, StoreError>;

    /// Deletes every record with `expires_at <= now`; returns how many.
    ///
    /// # Errors
    /// Backend errors.
    fn purge_expired(&self, now: Timestamp) -> Result<usize, StoreError>;

    /// Whether a call may block the calling thread on I/O or on another
    /// process (a file, a network round trip, a lock another process
    /// holds). `true` unless the store says otherwise: an async framework
    /// runs the calls of a store that may block off its executor threads
    /// (`spawn_blocking`), and calls one that cannot block in place, which
    /// saves a thread hop per request. A store answers `false` only if
    /// every call completes in bounded time without I/O, waiting at most on
    /// short in-process locks ([`MemoryStore`](crate::MemoryStore) does).
    ///
    /// # Example
    /// ```
    /// use latchkey::{MemoryStore, Store};
    /// assert!(!MemoryStore::new().may_block());
    /// ```
    fn may_block(&self) -> bool {
        true
    }
}

/// The second half of a rotation made from single-key writes: inserts the
/// successor `record` under `new`, then checks that `old` is still the
/// retired record written at `retired_version`. Returns whether the
/// rotation stands.
///
/// The check closes the race with a logout that follows the chain: the
/// logout writes the end of `old` and then reads `new`; this writes `new`
/// and then reads `old`. One of the two sees the other's write, so either
/// the logout ends the successor or this removes it again, and no session
/// outlives a logout that returned. An `Exists` on insert means the
/// successor was already written (a load rolled the rotation forward), and
/// counts as written.
pub(crate) fn complete_rotation<S: Store + ?Sized>(
    store: &S,
    old: &StoreKey,
    retired_version: u64,
    new: &StoreKey,
    record: &Record,
) -> Result<bool, StoreError> {
    match store.insert(new, record) {
        Ok(()) | Err(StoreError::Exists) => {}
        Err(e) => return Err(e),
    }
    let stands = store
        .get(old)?
        .is_some_and(|r| r.version == retired_version);
    if !stands {
        store.remove(new)?;
    }
    Ok(stands)
}

macro_rules! forward_store {
    ($($ptr:ty),*) => {$(
        impl<S: Store + ?Sized> Store for $ptr {
            fn insert(&self, key: &StoreKey, record: &Record) -> Result<(), StoreError> {
                (**self).insert(key, record)
            }
            fn get(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
                (**self).get(key)
            }
            fn replace(&self, key: &StoreKey, expected: u64, record: &Record) -> Result<(), StoreError> {
                (**self).replace(key, expected, record)
            }
            fn touch(&self, key: &StoreKey, last_seen: Timestamp, expires_at: Timestamp) -> Result<bool, StoreError> {
                (**self).touch(key, last_seen, expires_at)
            }
            fn rotate(&self, old: &StoreKey, expected: u64, retired: &Record, new: &StoreKey, record: &Record) -> Result<(), StoreError> {
                (**self).rotate(old, expected, retired, new, record)
            }
            fn remove(&self, key: &StoreKey) -> Result<bool, StoreError> {
                (**self).remove(key)
            }
            fn sessions_of(&self, user: &str) -> Result<Vec<(StoreKey, Record)>, StoreError> {
                (**self).sessions_of(user)
            }
            fn purge_expired(&self, now: Timestamp) -> Result<usize, StoreError> {
                (**self).purge_expired(now)
            }
            fn may_block(&self) -> bool {
                (**self).may_block()
            }
        }
    )*};
}

// `peek` is generic, so these keep its default (which calls `get`): a
// store reached through a box or an `Arc` is read by copy.
forward_store!(Box<S>, Arc<S>);
