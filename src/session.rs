//! Sessions as the application sees them, and what a manager hands back.

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::clock::Timestamp;
use crate::error::Error;
use crate::id::{Fingerprint, SessionId, StoreKey};

pub use crate::data::SessionData;

/// What to create: the optional user and device label, and initial data.
///
/// # Example
/// ```
/// use latchkey::NewSession;
/// let new = NewSession::new()
///     .with_user("alice")
///     .with_device("Firefox on Linux")
///     .with_value("theme", &"dark")?;
/// # Ok::<(), latchkey::Error>(())
/// ```
#[derive(Clone, Default)]
#[must_use]
pub struct NewSession {
    pub(crate) user: Option<String>,
    pub(crate) device: Option<String>,
    /// The data, already encoded as one JSON object ("" while empty):
    /// [`with_value`](Self::with_value) serializes each value once, as it
    /// is added, so creating the session copies text instead of walking a
    /// map, and dropping it frees one string instead of a tree of them.
    /// Entries are in the order they were first added (the order of an
    /// object's entries carries no meaning in JSON or here).
    pub(crate) data: String,
    /// When the user last proved who they are, if not at creation.
    pub(crate) auth_at: Option<Timestamp>,
}

impl fmt::Debug for NewSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // As for `SessionData`: the values may be secrets (CSRF tokens,
        // OAuth state), so only their size is shown.
        f.debug_struct("NewSession")
            .field("user", &self.user)
            .field("device", &self.device)
            .field("data_bytes", &self.data_json().len())
            .field("auth_at", &self.auth_at)
            .finish()
    }
}

impl NewSession {
    /// An anonymous session with no data.
    ///
    /// # Example
    /// ```
    /// use latchkey::NewSession;
    /// let _anonymous = NewSession::new();
    /// ```
    pub fn new() -> NewSession {
        NewSession::default()
    }

    /// Binds the session to a user who just authenticated: the session's
    /// authentication time is its creation time.
    ///
    /// # Example
    /// ```
    /// use latchkey::{MemoryStore, NewSession, SessionManager, StoreManager};
    /// let manager = StoreManager::new(MemoryStore::new());
    /// let issued = manager.create(NewSession::new().with_user("alice"))?;
    /// assert_eq!(manager.load(issued.token())?.session.user(), Some("alice"));
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    pub fn with_user(mut self, user: impl Into<String>) -> NewSession {
        self.user = Some(user.into());
        self
    }

    /// Says when the session's user last proved who they are, if that was
    /// before this session is created: a session made from a remember-me
    /// token ([`RememberMe::log_in`](crate::RememberMe::log_in) does this)
    /// carries the password login of the token's series, so a step-up check
    /// ([`Session::require_recent_auth_at`]) does not take the remember-me
    /// login for a fresh one. A time later than the creation counts as the
    /// creation; without a user the session has no authentication time.
    ///
    /// # Example
    /// ```
    /// use std::time::Duration;
    /// use latchkey::{Clock, MemoryStore, NewSession, SessionManager, StoreManager, SystemClock};
    /// let manager = StoreManager::new(MemoryStore::new());
    /// let password_login = SystemClock.now().saturating_sub(Duration::from_secs(3 * 86_400));
    /// let issued = manager.create(
    ///     NewSession::new().with_user("alice").with_authenticated_at(password_login),
    /// )?;
    /// let session = manager.load(issued.token())?.session;
    /// assert_eq!(session.authenticated_at(), Some(password_login));
    /// assert!(manager.require_recent_auth(&session, Duration::from_secs(600)).is_err());
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    pub fn with_authenticated_at(mut self, at: Timestamp) -> NewSession {
        self.auth_at = Some(at);
        self
    }

    /// The authentication time a session created from this at `now` gets.
    pub(crate) fn auth_at_for(&self, now: Timestamp) -> Option<Timestamp> {
        self.user
            .as_ref()
            .map(|_| self.auth_at.map_or(now, |at| at.min(now)))
    }

    /// Labels the device or client.
    ///
    /// # Example
    /// ```
    /// use latchkey::{MemoryStore, NewSession, SessionManager, StoreManager};
    /// let manager = StoreManager::new(MemoryStore::new());
    /// let issued = manager.create(NewSession::new().with_device("phone"))?;
    /// assert_eq!(manager.load(issued.token())?.session.device(), Some("phone"));
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    pub fn with_device(mut self, device: impl Into<String>) -> NewSession {
        self.device = Some(device.into());
        self
    }

    /// Adds an initial data value; a second value for the same key
    /// replaces the first. The value is encoded to JSON here, once, so
    /// creating the session has no serializing left to do. Entries are kept
    /// in the order first added; replacing re-encodes the object through a
    /// map, which may reorder it (the order carries no meaning).
    ///
    /// # Errors
    /// [`Error::Data`] if the value does not serialize to JSON (a map with
    /// non-string keys, a `Serialize` impl that fails), or, when the key's
    /// text already occurs in the data, if the data is nested deeper than
    /// serde_json parses (128 levels).
    ///
    /// # Example
    /// ```
    /// use latchkey::{MemoryStore, NewSession, SessionManager, StoreManager};
    /// let manager = StoreManager::new(MemoryStore::new());
    /// let issued = manager.create(NewSession::new().with_value("lang", &"fr")?)?;
    /// let s = manager.load(issued.token())?.session;
    /// assert_eq!(s.get::<String>("lang")?.as_deref(), Some("fr"));
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    pub fn with_value<T: Serialize + ?Sized>(
        mut self,
        key: &str,
        value: &T,
    ) -> Result<NewSession, Error> {
        let data_error = |source| Error::Data {
            key: key.into(),
            source,
        };
        let text = serde_json::to_string(value).map_err(data_error)?;
        let name = serde_json::to_string(key).map_err(data_error)?;
        // serde_json writes a key the same way wherever it appears, so if
        // `"key":` occurs nowhere in the text, the key is certainly not an
        // entry yet and the new one can be appended. If it occurs (the key
        // is there, or the same text sits inside a nested value), take the
        // exact path: parse, insert (replacing), encode again.
        let occurs = self
            .data
            .match_indices(name.as_str())
            .any(|(at, _)| self.data[at + name.len()..].starts_with(':'));
        if occurs {
            let mut map: Map<String, Value> =
                serde_json::from_str(&self.data).map_err(data_error)?;
            map.insert(key.into(), serde_json::to_value(value).map_err(data_error)?);
            self.data = serde_json::to_string(&map).map_err(data_error)?;
            return Ok(self);
        }
        if self.data.pop().is_some() {
            // Drops the closing brace; at least one entry precedes.
            self.data.push(',');
        } else {
            self.data.push('{');
        }
        self.data.reserve(name.len() + text.len() + 2);
        self.data.push_str(&name);
        self.data.push(':');
        self.data.push_str(&text);
        self.data.push('}');
        Ok(self)
    }

    /// The data as an encoded JSON object (`{}` when there is none).
    pub(crate) fn data_json(&self) -> &str {
        if self.data.is_empty() {
            "{}"
        } else {
            &self.data
        }
    }
}

/// A loaded session: metadata and data.
///
/// It never holds the token in readable form; `Debug` shows the fingerprint.
/// Change data with [`insert`](Self::insert) and [`remove`](Self::remove),
/// then hand it to the manager's `save`.
///
/// # Example
/// ```
/// use latchkey::{MemoryStore, NewSession, SessionManager, StoreManager};
///
/// let manager = StoreManager::new(MemoryStore::new());
/// let issued = manager.create(NewSession::new())?;
/// let mut session = manager.load(issued.token())?.session;
/// session.insert("cart", &vec![3, 5])?;
/// manager.save(&mut session)?;
///
/// let again = manager.load(issued.token())?.session;
/// assert_eq!(again.get::<Vec<u32>>("cart")?, Some(vec![3, 5]));
/// # Ok::<(), latchkey::Error>(())
/// ```
#[derive(Clone)]
pub struct Session {
    pub(crate) id: Option<SessionId>,
    pub(crate) key: StoreKey,
    pub(crate) version: u64,
    pub(crate) created_at: Timestamp,
    pub(crate) last_seen: Timestamp,
    pub(crate) auth_at: Option<Timestamp>,
    pub(crate) absolute_deadline: Timestamp,
    pub(crate) idle_deadline: Timestamp,
    pub(crate) user: Option<String>,
    pub(crate) device: Option<String>,
    pub(crate) data: SessionData,
}

impl Session {
    /// The log-safe name of this session.
    ///
    /// # Example
    /// ```
    /// use latchkey::{MemoryStore, NewSession, SessionManager, StoreManager};
    /// let manager = StoreManager::new(MemoryStore::new());
    /// let issued = manager.create(NewSession::new().with_user("alice").with_device("phone"))?;
    /// let mut session = manager.load(issued.token())?.session;
    /// assert_eq!(session.fingerprint(), issued.fingerprint());
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    pub fn fingerprint(&self) -> Fingerprint {
        self.key.fingerprint()
    }

    /// The store key (not secret).
    ///
    /// # Example
    /// ```
    /// use latchkey::{MemoryStore, NewSession, SessionManager, StoreManager};
    /// let manager = StoreManager::new(MemoryStore::new());
    /// let issued = manager.create(NewSession::new().with_user("alice").with_device("phone"))?;
    /// let mut session = manager.load(issued.token())?.session;
    /// assert!(session.store_key().to_hex().starts_with(&session.fingerprint().to_string()));
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    pub fn store_key(&self) -> &StoreKey {
        &self.key
    }

    /// The store version this copy was loaded at.
    ///
    /// # Example
    /// ```
    /// use latchkey::{MemoryStore, NewSession, SessionManager, StoreManager};
    /// let manager = StoreManager::new(MemoryStore::new());
    /// let issued = manager.create(NewSession::new().with_user("alice").with_device("phone"))?;
    /// let mut session = manager.load(issued.token())?.session;
    /// session.insert("k", &1)?;
    /// manager.save(&mut session)?;
    /// assert_eq!(session.version(), 2);
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    pub fn version(&self) -> u64 {
        self.version
    }

    /// When the session was created (rotation keeps this).
    ///
    /// # Example
    /// ```
    /// use latchkey::{MemoryStore, NewSession, SessionManager, StoreManager};
    /// let manager = StoreManager::new(MemoryStore::new());
    /// let issued = manager.create(NewSession::new().with_user("alice").with_device("phone"))?;
    /// let mut session = manager.load(issued.token())?.session;
    /// assert!(session.created_at() <= session.last_seen());
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    pub fn created_at(&self) -> Timestamp {
        self.created_at
    }

    /// The last recorded activity.
    ///
    /// # Example
    /// ```
    /// use latchkey::{MemoryStore, NewSession, SessionManager, StoreManager};
    /// let manager = StoreManager::new(MemoryStore::new());
    /// let issued = manager.create(NewSession::new().with_user("alice").with_device("phone"))?;
    /// let mut session = manager.load(issued.token())?.session;
    /// assert!(session.last_seen() < session.idle_deadline());
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    pub fn last_seen(&self) -> Timestamp {
        self.last_seen
    }

    /// When the user last authenticated in this session, for step-up checks
    /// ("re-enter your password if you logged in over 10 minutes ago").
    ///
    /// # Example
    /// ```
    /// use latchkey::{MemoryStore, NewSession, SessionManager, StoreManager};
    /// let manager = StoreManager::new(MemoryStore::new());
    /// let issued = manager.create(NewSession::new().with_user("alice").with_device("phone"))?;
    /// let mut session = manager.load(issued.token())?.session;
    /// // Created with a user: authenticated at creation.
    /// assert_eq!(session.authenticated_at(), Some(session.created_at()));
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    pub fn authenticated_at(&self) -> Option<Timestamp> {
        self.auth_at
    }

    /// Checks that the user proved who they are less than `max_age` before
    /// `now` (ASVS 5.0 7.5.1, "sudo mode"): call it before a sensitive
    /// action (changing the password or email address, a payment, deleting
    /// the account). On [`Error::ReauthenticationRequired`] ask for the
    /// password again, call
    /// [`reauthenticate`](crate::SessionManager::reauthenticate), and retry
    /// the action. The time is the
    /// [`authenticated_at`](Self::authenticated_at) a login, a session
    /// created with a user, or a re-authentication stamped; activity never
    /// refreshes it. [`SessionManager::require_recent_auth`](crate::SessionManager::require_recent_auth)
    /// is the same check on the manager's clock.
    ///
    /// # Errors
    /// [`Error::ReauthenticationRequired`] if the user authenticated
    /// `max_age` or longer ago (a `max_age` of zero always fails), or never
    /// in this session (`age: None`: an anonymous session, which should
    /// log in instead).
    ///
    /// # Example
    /// ```
    /// use std::{sync::Arc, time::Duration};
    /// use latchkey::{Error, ManualClock, MemoryStore, NewSession, SessionManager, StoreManager, Timestamp};
    /// let t0 = Timestamp::from_unix_millis(1_800_000_000_000);
    /// let manager = StoreManager::new(MemoryStore::new()).with_clock(Arc::new(ManualClock::new(t0)));
    /// let issued = manager.create_at(NewSession::new().with_user("alice"), t0)?;
    /// let session = manager.load_at(issued.token(), t0)?.session;
    /// let ten_min = Duration::from_secs(600);
    /// assert!(session.require_recent_auth_at(ten_min, t0.saturating_add(Duration::from_secs(60))).is_ok());
    /// let err = session.require_recent_auth_at(ten_min, t0.saturating_add(ten_min)).unwrap_err();
    /// assert!(matches!(err, Error::ReauthenticationRequired { age: Some(age), .. } if age == ten_min));
    /// assert!(!err.clears_cookie());
    /// # Ok::<(), Error>(())
    /// ```
    pub fn require_recent_auth_at(
        &self,
        max_age: std::time::Duration,
        now: Timestamp,
    ) -> Result<(), Error> {
        crate::lifecycle::require_recent_auth(self.auth_at, max_age, now)
    }

    /// When the session ends however active it is.
    ///
    /// # Example
    /// ```
    /// use latchkey::{MemoryStore, NewSession, SessionManager, StoreManager};
    /// let manager = StoreManager::new(MemoryStore::new());
    /// let issued = manager.create(NewSession::new().with_user("alice").with_device("phone"))?;
    /// let mut session = manager.load(issued.token())?.session;
    /// assert!(session.idle_deadline() <= session.absolute_deadline());
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    pub fn absolute_deadline(&self) -> Timestamp {
        self.absolute_deadline
    }

    /// When the session ends if unused from now on.
    ///
    /// # Example
    /// ```
    /// use latchkey::{MemoryStore, NewSession, SessionManager, StoreManager};
    /// let manager = StoreManager::new(MemoryStore::new());
    /// let issued = manager.create(NewSession::new().with_user("alice").with_device("phone"))?;
    /// let mut session = manager.load(issued.token())?.session;
    /// assert!(session.idle_deadline() > session.last_seen());
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    pub fn idle_deadline(&self) -> Timestamp {
        self.idle_deadline
    }

    /// The authenticated user, if any.
    ///
    /// # Example
    /// ```
    /// use latchkey::{MemoryStore, NewSession, SessionManager, StoreManager};
    /// let manager = StoreManager::new(MemoryStore::new());
    /// let issued = manager.create(NewSession::new().with_user("alice").with_device("phone"))?;
    /// let mut session = manager.load(issued.token())?.session;
    /// assert_eq!(session.user(), Some("alice"));
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// The device label, if any.
    ///
    /// # Example
    /// ```
    /// use latchkey::{MemoryStore, NewSession, SessionManager, StoreManager};
    /// let manager = StoreManager::new(MemoryStore::new());
    /// let issued = manager.create(NewSession::new().with_user("alice").with_device("phone"))?;
    /// let mut session = manager.load(issued.token())?.session;
    /// assert_eq!(session.device(), Some("phone"));
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    pub fn device(&self) -> Option<&str> {
        self.device.as_deref()
    }

    /// Whether the data changed since the session was loaded or saved.
    ///
    /// # Example
    /// ```
    /// use latchkey::{MemoryStore, NewSession, SessionManager, StoreManager};
    /// let manager = StoreManager::new(MemoryStore::new());
    /// let issued = manager.create(NewSession::new().with_user("alice").with_device("phone"))?;
    /// let mut session = manager.load(issued.token())?.session;
    /// assert!(!session.is_modified());
    /// session.insert("k", &1)?;
    /// assert!(session.is_modified());
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    pub fn is_modified(&self) -> bool {
        self.data.dirty
    }

    /// Reads a data value as `T`; `Ok(None)` if absent.
    ///
    /// # Errors
    /// [`Error::Data`] if the stored value does not decode as `T`.
    ///
    /// # Example
    /// ```
    /// use latchkey::{MemoryStore, NewSession, SessionManager, StoreManager};
    /// let manager = StoreManager::new(MemoryStore::new());
    /// let issued = manager.create(NewSession::new().with_user("alice").with_device("phone"))?;
    /// let mut session = manager.load(issued.token())?.session;
    /// session.insert("n", &7u32)?;
    /// assert_eq!(session.get::<u32>("n")?, Some(7));
    /// assert!(session.get::<String>("n").is_err()); // wrong type: a typed error
    /// assert_eq!(session.get::<u32>("missing")?, None);
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, Error> {
        match self.data.map().get(key) {
            None => Ok(None),
            Some(v) => T::deserialize(v).map(Some).map_err(|source| Error::Data {
                key: key.into(),
                source,
            }),
        }
    }

    /// Sets a data value.
    ///
    /// # Errors
    /// [`Error::Data`] if the value does not encode as JSON; the data is then
    /// unchanged.
    ///
    /// # Example
    /// ```
    /// use latchkey::{MemoryStore, NewSession, SessionManager, StoreManager};
    /// let manager = StoreManager::new(MemoryStore::new());
    /// let issued = manager.create(NewSession::new().with_user("alice").with_device("phone"))?;
    /// let mut session = manager.load(issued.token())?.session;
    /// session.insert("cart", &["book"])?;
    /// assert_eq!(session.get::<Vec<String>>("cart")?, Some(vec!["book".into()]));
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    pub fn insert<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) -> Result<(), Error> {
        let v = serde_json::to_value(value).map_err(|source| Error::Data {
            key: key.into(),
            source,
        })?;
        // A key already there keeps its string: only the value changes.
        let map = self.data.map_mut();
        match map.get_mut(key) {
            Some(slot) => *slot = v,
            None => {
                map.insert(key.into(), v);
            }
        }
        Ok(())
    }

    /// Removes a data value; returns whether it was there.
    ///
    /// # Example
    /// ```
    /// use latchkey::{MemoryStore, NewSession, SessionManager, StoreManager};
    /// let manager = StoreManager::new(MemoryStore::new());
    /// let issued = manager.create(NewSession::new().with_user("alice").with_device("phone"))?;
    /// let mut session = manager.load(issued.token())?.session;
    /// session.insert("k", &1)?;
    /// assert!(session.remove("k"));
    /// assert!(!session.remove("k"));
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    pub fn remove(&mut self, key: &str) -> bool {
        if !self.data.map().contains_key(key) {
            return false;
        }
        self.data.map_mut().remove(key).is_some()
    }

    /// Removes all data.
    ///
    /// # Example
    /// ```
    /// use latchkey::{MemoryStore, NewSession, SessionManager, StoreManager};
    /// let manager = StoreManager::new(MemoryStore::new());
    /// let issued = manager.create(NewSession::new().with_user("alice").with_device("phone"))?;
    /// let mut session = manager.load(issued.token())?.session;
    /// session.insert("a", &1)?;
    /// session.clear();
    /// assert_eq!(session.keys().count(), 0);
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    pub fn clear(&mut self) {
        if !self.data.is_empty() {
            self.data.map_mut().clear();
        }
    }

    /// The data keys.
    ///
    /// # Example
    /// ```
    /// use latchkey::{MemoryStore, NewSession, SessionManager, StoreManager};
    /// let manager = StoreManager::new(MemoryStore::new());
    /// let issued = manager.create(NewSession::new().with_user("alice").with_device("phone"))?;
    /// let mut session = manager.load(issued.token())?.session;
    /// session.insert("a", &1)?;
    /// session.insert("b", &2)?;
    /// assert_eq!(session.keys().collect::<Vec<_>>(), ["a", "b"]);
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.data.map().keys().map(String::as_str)
    }

    /// The data, encoded.
    ///
    /// # Example
    /// ```
    /// use latchkey::{MemoryStore, NewSession, SessionManager, StoreManager};
    /// let manager = StoreManager::new(MemoryStore::new());
    /// let issued = manager.create(NewSession::new().with_user("alice").with_device("phone"))?;
    /// let mut session = manager.load(issued.token())?.session;
    /// session.insert("a", &1)?;
    /// assert_eq!(session.data().encoded().as_ref(), r#"{"a":1}"#);
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    pub fn data(&self) -> &SessionData {
        &self.data
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("fingerprint", &self.fingerprint())
            .field("version", &self.version)
            .field("created_at", &self.created_at)
            .field("last_seen", &self.last_seen)
            .field("auth_at", &self.auth_at)
            .field("idle_deadline", &self.idle_deadline)
            .field("absolute_deadline", &self.absolute_deadline)
            .field("user", &self.user)
            .field("device", &self.device)
            .field("data", &self.data)
            .finish()
    }
}

/// A token just issued, to send to the client, with its deadlines.
///
/// `Debug` shows the fingerprint, never the token. Send
/// [`token`](Self::token) to the client as its cookie.
#[derive(Clone)]
pub struct Issued {
    pub(crate) token: String,
    pub(crate) fingerprint: Fingerprint,
    pub(crate) idle_deadline: Timestamp,
    pub(crate) absolute_deadline: Timestamp,
    pub(crate) issued_at: Timestamp,
}

impl Issued {
    /// Assembles an issued token, issued now by the system clock. For
    /// [`SessionManager`](crate::SessionManager) implementations outside
    /// this crate; one on another clock sets the instant with
    /// [`with_issued_at`](Self::with_issued_at).
    ///
    /// # Example
    /// ```
    /// use latchkey::{Fingerprint, Issued, Timestamp};
    /// let t = Timestamp::from_unix_millis(0);
    /// let issued = Issued::new("token".into(), Fingerprint::from_hex("0123456789ab").unwrap(), t, t);
    /// assert_eq!(issued.token(), "token");
    /// ```
    pub fn new(
        token: String,
        fingerprint: Fingerprint,
        idle_deadline: Timestamp,
        absolute_deadline: Timestamp,
    ) -> Issued {
        Issued {
            token,
            fingerprint,
            idle_deadline,
            absolute_deadline,
            issued_at: crate::clock::Clock::now(&crate::clock::SystemClock),
        }
    }

    /// Sets the instant the token was issued at, from which a cookie's
    /// `Max-Age` counts ([`CookieConfig::set_cookie`](crate::CookieConfig::set_cookie)).
    ///
    /// # Example
    /// ```
    /// use latchkey::{Fingerprint, Issued, Timestamp};
    /// let t = Timestamp::from_unix_millis(5_000);
    /// let issued = Issued::new("token".into(), Fingerprint::from_hex("0123456789ab").unwrap(), t, t)
    ///     .with_issued_at(t);
    /// assert_eq!(issued.issued_at(), t);
    /// ```
    #[must_use]
    pub fn with_issued_at(mut self, at: Timestamp) -> Issued {
        self.issued_at = at;
        self
    }

    /// When the token was issued: the manager's clock at the call that
    /// issued it.
    ///
    /// # Example
    /// ```
    /// use std::sync::Arc;
    /// use latchkey::{ManualClock, MemoryStore, NewSession, SessionManager, StoreManager, Timestamp};
    /// let t0 = Timestamp::from_unix_millis(1_800_000_000_000);
    /// let manager = StoreManager::new(MemoryStore::new()).with_clock(Arc::new(ManualClock::new(t0)));
    /// assert_eq!(manager.create(NewSession::new())?.issued_at(), t0);
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    pub fn issued_at(&self) -> Timestamp {
        self.issued_at
    }

    /// The secret token: the cookie value. Send it to the client and nowhere
    /// else.
    ///
    /// # Example
    /// ```
    /// use latchkey::{MemoryStore, NewSession, SessionManager, StoreManager};
    /// let manager = StoreManager::new(MemoryStore::new());
    /// let issued = manager.create(NewSession::new())?;
    /// assert_eq!(issued.token().len(), 43);
    /// assert!(!format!("{issued:?}").contains(issued.token()));
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The log-safe name of the session.
    ///
    /// # Example
    /// ```
    /// use latchkey::{MemoryStore, NewSession, SessionManager, StoreManager};
    /// let manager = StoreManager::new(MemoryStore::new());
    /// let issued = manager.create(NewSession::new())?;
    /// assert_eq!(issued.fingerprint(), manager.load(issued.token())?.session.fingerprint());
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// When the session ends if unused.
    ///
    /// # Example
    /// ```
    /// use latchkey::{MemoryStore, NewSession, SessionManager, StoreManager};
    /// let manager = StoreManager::new(MemoryStore::new());
    /// let issued = manager.create(NewSession::new())?;
    /// assert!(issued.idle_deadline() <= issued.absolute_deadline());
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    pub fn idle_deadline(&self) -> Timestamp {
        self.idle_deadline
    }

    /// When the session ends however active it is: the latest a persistent
    /// cookie should live.
    ///
    /// # Example
    /// ```
    /// use latchkey::{MemoryStore, NewSession, SessionManager, StoreManager};
    /// let manager = StoreManager::new(MemoryStore::new());
    /// let issued = manager.create(NewSession::new())?;
    /// assert_eq!(issued.absolute_deadline(), manager.load(issued.token())?.session.absolute_deadline());
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    pub fn absolute_deadline(&self) -> Timestamp {
        self.absolute_deadline
    }
}

impl fmt::Debug for Issued {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issued")
            .field("token", &"<redacted>")
            .field("fingerprint", &self.fingerprint)
            .field("idle_deadline", &self.idle_deadline)
            .field("absolute_deadline", &self.absolute_deadline)
            .field("issued_at", &self.issued_at)
            .finish()
    }
}

/// The result of a load: the session, and a token to reissue if the client's
/// cookie must change.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Loaded {
    /// The session.
    pub session: Session,
    /// `Some` when the client should be sent a new cookie with this token:
    /// it presented a token retired by a rotation within the grace window
    /// (a concurrent request rotated it), or a stateless ticket was renewed.
    pub reissue: Option<Issued>,
}

impl Loaded {
    /// Assembles a load result. For [`SessionManager`](crate::SessionManager)
    /// implementations outside this crate.
    ///
    /// # Example
    /// ```
    /// use latchkey::{MemoryStore, NewSession, SessionManager, StoreManager};
    /// let manager = StoreManager::new(MemoryStore::new());
    /// let issued = manager.create(NewSession::new())?;
    /// let loaded = manager.load(issued.token())?;
    /// let copy = latchkey::Loaded::new(loaded.session.clone(), None);
    /// assert!(copy.reissue.is_none());
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    pub fn new(session: Session, reissue: Option<Issued>) -> Loaded {
        Loaded { session, reissue }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde::{Deserialize, Deserializer};
    use std::collections::BTreeMap;

    /// The top-level entries of a JSON object in their order, duplicates
    /// kept (a `Map` would merge them and hide a bug).
    struct Entries(Vec<(String, Value)>);

    impl<'de> Deserialize<'de> for Entries {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Entries, D::Error> {
            struct V;
            impl<'de> serde::de::Visitor<'de> for V {
                type Value = Entries;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a JSON object")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut map: A,
                ) -> Result<Entries, A::Error> {
                    let mut entries = Vec::new();
                    while let Some(entry) = map.next_entry()? {
                        entries.push(entry);
                    }
                    Ok(Entries(entries))
                }
            }
            d.deserialize_map(V)
        }
    }

    /// The data of `new` as entries, checked to be an object without
    /// duplicate keys.
    fn entries(new: &NewSession) -> Vec<(String, Value)> {
        let Entries(entries) = serde_json::from_str(new.data_json()).unwrap();
        let mut keys: Vec<_> = entries.iter().map(|(k, _)| k.clone()).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(
            keys.len(),
            entries.len(),
            "duplicate keys in {}",
            new.data_json()
        );
        entries
    }

    fn as_map(new: &NewSession) -> Map<String, Value> {
        entries(new).into_iter().collect()
    }

    #[test]
    fn a_new_session_without_data_encodes_an_empty_object() {
        assert_eq!(NewSession::new().data_json(), "{}");
        assert!(as_map(&NewSession::new()).is_empty());
    }

    #[test]
    fn values_are_encoded_once_in_the_order_they_were_added() {
        let new = NewSession::new()
            .with_value("theme", &"dark")
            .unwrap()
            .with_value("cart", &[1, 2])
            .unwrap();
        assert_eq!(new.data_json(), r#"{"theme":"dark","cart":[1,2]}"#);
    }

    #[test]
    fn a_second_value_for_a_key_replaces_the_first() {
        let new = NewSession::new()
            .with_value("a", &1)
            .unwrap()
            .with_value("b", &2)
            .unwrap()
            .with_value("a", &3)
            .unwrap();
        let expected: Map<String, Value> = serde_json::from_str(r#"{"a":3,"b":2}"#).unwrap();
        assert_eq!(as_map(&new), expected);
    }

    #[test]
    fn a_key_seen_only_inside_a_nested_value_is_still_added() {
        // `"k":` occurs in the text (inside the first value), but `k` is not
        // an entry: the exact path must add it, not replace anything.
        let new = NewSession::new()
            .with_value("outer", &serde_json::json!({ "k": 1 }))
            .unwrap()
            .with_value("note", &r#"say "k": hi"#)
            .unwrap()
            .with_value("k", &2)
            .unwrap();
        let map = as_map(&new);
        assert_eq!(map.len(), 3);
        assert_eq!(map["k"], serde_json::json!(2));
        assert_eq!(map["outer"], serde_json::json!({ "k": 1 }));
        assert_eq!(map["note"], serde_json::json!(r#"say "k": hi"#));
    }

    #[test]
    fn a_value_that_does_not_serialize_is_a_data_error_naming_its_key() {
        let mut bad = BTreeMap::new();
        bad.insert((1u8, 2u8), 3u8); // JSON object keys must be strings
        let err = NewSession::new().with_value("pairs", &bad).unwrap_err();
        assert!(matches!(err, Error::Data { ref key, .. } if key == "pairs"));
    }

    /// `text` at `start` in a buffer of the memory store's size, with
    /// other bytes (a user name, then zeros) around it.
    #[test]
    fn a_session_changed_and_saved_again_keeps_every_change_in_both_managers() {
        use crate::{KeyRing, MemoryStore, SessionManager, StoreManager, TicketKey, TicketManager};
        let store = StoreManager::new(MemoryStore::new());
        let mut s = store
            .load(store.create(NewSession::new()).unwrap().token())
            .unwrap()
            .session;
        for n in 0..3u32 {
            s.insert(&format!("k{n}"), &n).unwrap();
            store.save(&mut s).unwrap();
            assert!(!s.is_modified());
            assert!(s.data.map.get().is_some(), "save dropped the parsed data");
        }
        store.rotate(&mut s).unwrap();
        s.insert("after_rotate", &true).unwrap();
        store.save(&mut s).unwrap();
        let token = s.id.as_ref().unwrap().to_token();
        let loaded = store.load(&token).unwrap().session;
        assert_eq!(loaded.keys().count(), 4);
        assert_eq!(loaded.get::<u32>("k2").unwrap(), Some(2));
        assert_eq!(loaded.get::<bool>("after_rotate").unwrap(), Some(true));

        let key = TicketKey::try_from(&[9u8; 32][..]).unwrap();
        let tickets = TicketManager::new("session", KeyRing::new(1, key)).unwrap();
        let issued = tickets.create(NewSession::new()).unwrap();
        let mut s = tickets.load(issued.token()).unwrap().session;
        for n in 0..3u32 {
            s.insert(&format!("k{n}"), &n).unwrap();
            let saved = tickets.save(&mut s).unwrap().unwrap();
            assert!(s.data.map.get().is_some(), "save dropped the parsed data");
            let loaded = tickets.load(saved.token()).unwrap().session;
            assert_eq!(loaded.keys().count(), n as usize + 1);
        }
        let issued = tickets.rotate(&mut s).unwrap();
        let loaded = tickets.load(issued.token()).unwrap().session;
        assert_eq!(loaded.keys().count(), 3);
        assert_eq!(loaded.get::<u32>("k1").unwrap(), Some(1));
    }

    #[test]
    fn debug_shows_the_size_of_the_data_not_its_values() {
        let new = NewSession::new()
            .with_user("alice")
            .with_value("csrf", &"s3cr3t-csrf-value")
            .unwrap();
        let shown = format!("{new:?}");
        assert!(shown.contains("alice"), "{shown}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("data_bytes"), "{shown}");
    }

    #[test]
    fn both_managers_store_the_encoded_text_as_built() {
        use crate::{KeyRing, MemoryStore, SessionManager, StoreManager, TicketKey, TicketManager};
        let new = NewSession::new()
            .with_value("z", &[1, 2])
            .unwrap()
            .with_value("a", &"ü\"")
            .unwrap();
        let text = new.data_json().to_owned();

        let store = StoreManager::new(MemoryStore::new());
        let issued = store.create(new.clone()).unwrap();
        let loaded = store.load(issued.token()).unwrap().session;
        assert_eq!(loaded.data().encoded().as_ref(), text);
        assert_eq!(loaded.get::<String>("a").unwrap().as_deref(), Some("ü\""));

        let key = TicketKey::try_from(&[9u8; 32][..]).unwrap();
        let tickets = TicketManager::new("session", KeyRing::new(1, key)).unwrap();
        let issued = tickets.create(new).unwrap();
        let loaded = tickets.load(issued.token()).unwrap().session;
        assert_eq!(loaded.data().encoded().as_ref(), text);
        assert_eq!(loaded.get::<Vec<u8>>("z").unwrap(), Some(vec![1, 2]));

        // No data: both store `{}`.
        let issued = store.create(NewSession::new()).unwrap();
        let loaded = store.load(issued.token()).unwrap().session;
        assert_eq!(loaded.data().encoded().as_ref(), "{}");
        let issued = tickets.create(NewSession::new()).unwrap();
        let loaded = tickets.load(issued.token()).unwrap().session;
        assert_eq!(loaded.data().encoded().as_ref(), "{}");
    }

    #[test]
    fn replacing_in_data_nested_deeper_than_serde_json_parses_is_a_data_error() {
        let mut deep = serde_json::json!(0);
        for _ in 0..200 {
            deep = serde_json::json!([deep]);
        }
        // Adding it is fine (encoding has no depth limit) ...
        let new = NewSession::new().with_value("deep", &deep).unwrap();
        // ... but replacing must parse the text, and serde_json stops at 128.
        let err = new.with_value("deep", &1).unwrap_err();
        assert!(
            matches!(err, Error::Data { ref key, .. } if key == "deep"),
            "{err:?}"
        );
    }

    /// Keys that need escaping, that are prefixes and suffixes of one
    /// another, and that look like JSON.
    fn key() -> impl Strategy<Value = String> {
        prop::sample::select(vec![
            "k", "kk", "k\"", "\"k", "k\\", "a:b", "\u{1}", "\n", "é", "😀", "", " ", "{\"k\":",
            "k\":1,\"",
        ])
        .prop_map(String::from)
    }

    /// Values, some of them objects using the same keys, and strings that
    /// contain what an entry looks like.
    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            key().prop_map(|k| Value::from(format!("\"{k}\":1"))),
            key().prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                prop::collection::vec((key(), inner), 0..4)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Whatever is added, in whatever order, the text is one JSON object
        /// without duplicate keys, equal to a map built with `insert`.
        #[test]
        fn the_encoded_data_matches_a_map_model(adds in prop::collection::vec((key(), value()), 0..12)) {
            let mut new = NewSession::new();
            let mut model = Map::new();
            for (k, v) in adds {
                new = new.with_value(&k, &v).unwrap();
                model.insert(k, v);
            }
            prop_assert_eq!(as_map(&new), model);
        }
    }
}
