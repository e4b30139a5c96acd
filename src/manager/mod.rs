//! The [`SessionManager`] trait, and [`StoreManager`]: sessions kept in a
//! [`Store`](crate::Store). The ticket manager lives in `crate::ticket`.

use std::fmt;
use std::time::Duration;

use crate::clock::Timestamp;
use crate::error::Error;
use crate::id::Fingerprint;
use crate::session::{Issued, Loaded, NewSession, Session};

#[cfg(feature = "async")]
mod asynchronous;
pub(crate) mod engine;
mod store_manager;

#[cfg(feature = "async")]
pub use self::asynchronous::{AsyncSessionManager, AsyncStoreManager, BoxFuture};
pub use self::store_manager::StoreManager;

/// The session lifecycle, as a framework sees it.
///
/// Both [`StoreManager`] (server-side sessions) and the ticket manager
/// (stateless signed tickets) implement it, so middleware can hold an
/// `Arc<dyn SessionManager>` and not care which.
///
/// The usual request: `load` the cookie's token; on a rejection clear the
/// cookie; on login call `login` (or `create` when there was no session);
/// on privilege change `change_privilege`; before a sensitive action
/// `require_recent_auth`, and after the user re-entered their password
/// `reauthenticate`; when data changed `save`; on logout `terminate`.
/// Whenever a call returns an [`Issued`], send its token as the new cookie.
///
/// # Example
/// ```
/// use latchkey::{MemoryStore, NewSession, SessionManager, StoreManager};
///
/// let manager: Box<dyn SessionManager> = Box::new(StoreManager::new(MemoryStore::new()));
/// let anon = manager.create(NewSession::new())?;
/// let mut session = manager.load(anon.token())?.session;
/// let logged_in = manager.login(&mut session, "alice")?;
/// assert_eq!(session.user(), Some("alice"));
/// assert_ne!(logged_in.token(), anon.token());
/// manager.terminate(&session)?;
/// assert!(manager.load(logged_in.token()).unwrap_err().is_rejection());
/// # Ok::<(), latchkey::Error>(())
/// ```
pub trait SessionManager: fmt::Debug + Send + Sync {
    /// Starts a session and issues its token.
    ///
    /// # Errors
    /// [`Error::TooLarge`], [`Error::UserLimit`], store errors.
    fn create(&self, new: NewSession) -> Result<Issued, Error>;

    /// Resolves a presented token to its session, enforcing both timeouts.
    ///
    /// # Errors
    /// A rejection ([`Error::is_rejection`]) saying why, or a store error.
    fn load(&self, token: &str) -> Result<Loaded, Error>;

    /// Writes changed data. Versioned: a copy loaded before someone else's
    /// save fails with [`Error::Conflict`] instead of overwriting. Returns a
    /// token to reissue, if the manager's tokens carry the data.
    ///
    /// # Errors
    /// [`Error::Conflict`], [`Error::TooLarge`], a rejection if the session
    /// ended meanwhile, store errors.
    fn save(&self, session: &mut Session) -> Result<Option<Issued>, Error>;

    /// Gives the session a new ID and retires the old one: a routine
    /// rotation, with no change of privilege. Data (as changed on
    /// `session`), creation time and absolute deadline are kept. For the
    /// rotation grace window the old token still resolves, to the
    /// successor, and hands its client the new token ([`crate::lifecycle`]).
    ///
    /// # Errors
    /// As for [`save`](Self::save).
    fn rotate(&self, session: &mut Session) -> Result<Issued, Error>;

    /// Rotates as a change of privilege (the user became an administrator,
    /// gave up a role, changed their password): like [`rotate`](Self::rotate),
    /// but the old token never resolves to the changed session and is never
    /// handed the new token, in the grace window or after. Within the
    /// window it is refused as [`Error::Superseded`]; after it, as reuse.
    /// Change the session's data first, then call this.
    ///
    /// # Errors
    /// As for [`rotate`](Self::rotate).
    ///
    /// # Example
    /// ```
    /// use latchkey::{Error, MemoryStore, NewSession, SessionManager, StoreManager};
    /// let manager = StoreManager::new(MemoryStore::new());
    /// let before = manager.create(NewSession::new().with_user("alice"))?;
    /// let mut session = manager.load(before.token())?.session;
    /// session.insert("admin", &true)?;
    /// let after = manager.change_privilege(&mut session)?;
    /// assert!(matches!(manager.load(before.token()), Err(Error::Superseded)));
    /// assert_eq!(manager.load(after.token())?.session.get::<bool>("admin")?, Some(true));
    /// # Ok::<(), Error>(())
    /// ```
    fn change_privilege(&self, session: &mut Session) -> Result<Issued, Error>;

    /// Records a successful authentication of `user`: rotates as a change of
    /// privilege (the pre-login token is refused from now on: no session
    /// fixation), binds the user, stamps the authentication time. The
    /// absolute deadline is kept.
    /// If the session belongs to a different user, it is ended and `user`
    /// gets a fresh, empty session instead: one user's data never passes to
    /// another.
    ///
    /// # Errors
    /// As for [`rotate`](Self::rotate), and [`Error::UserLimit`].
    fn login(&self, session: &mut Session, user: &str) -> Result<Issued, Error>;

    /// Records that the session's user has just proved who they are again
    /// (a step-up, "sudo mode"): stamps the authentication time and rotates
    /// as a change of privilege, so the token from before is refused as
    /// after [`change_privilege`](Self::change_privilege) ([`Error::Superseded`]
    /// in the grace window, reuse after it). The absolute deadline is kept,
    /// unless the policy lets a re-authentication start a new absolute
    /// period ([`Policy::reauthentication_extends_absolute`](crate::Policy::reauthentication_extends_absolute)).
    /// Data changed on `session` is written with it, as by `rotate`.
    ///
    /// **The caller verifies the credential first**: this call proves
    /// nothing, it records a proof the application checked (the password
    /// typed into the re-authentication prompt, a second factor). Call it
    /// only after that check succeeded, for the session's own user.
    ///
    /// A session past its absolute deadline, ended, or rotated meanwhile is
    /// not revived: the call fails as a write would (stateless tickets:
    /// see [`crate::lifecycle`]).
    ///
    /// # Errors
    /// [`Error::NotAuthenticated`] for a session without a user (nothing is
    /// written: an anonymous session logs in instead); otherwise as for
    /// [`rotate`](Self::rotate).
    ///
    /// # Example
    /// ```
    /// use std::time::Duration;
    /// use latchkey::{Error, MemoryStore, NewSession, SessionManager, StoreManager};
    /// let manager = StoreManager::new(MemoryStore::new());
    /// let before = manager.create(NewSession::new().with_user("alice"))?;
    /// let mut session = manager.load(before.token())?.session;
    /// // ... the user typed their password again, and it checked out ...
    /// let after = manager.reauthenticate(&mut session)?;
    /// manager.require_recent_auth(&session, Duration::from_secs(300))?;
    /// assert!(matches!(manager.load(before.token()), Err(Error::Superseded)));
    /// assert_eq!(manager.load(after.token())?.session.authenticated_at(), session.authenticated_at());
    ///
    /// let anonymous = manager.create(NewSession::new())?;
    /// let mut anon = manager.load(anonymous.token())?.session;
    /// assert!(matches!(manager.reauthenticate(&mut anon), Err(Error::NotAuthenticated)));
    /// # Ok::<(), Error>(())
    /// ```
    fn reauthenticate(&self, session: &mut Session) -> Result<Issued, Error>;

    /// [`Session::require_recent_auth_at`] on the manager's clock: whether
    /// `session`'s user authenticated less than `max_age` ago. Call it
    /// before a sensitive action; on [`Error::ReauthenticationRequired`]
    /// ask for the password again, call [`reauthenticate`](Self::reauthenticate),
    /// and retry (see [`crate::framework`]).
    ///
    /// # Errors
    /// [`Error::ReauthenticationRequired`]: too long ago, or never.
    ///
    /// # Example
    /// ```
    /// use std::{sync::Arc, time::Duration};
    /// use latchkey::{Error, ManualClock, MemoryStore, NewSession, SessionManager, StoreManager};
    /// let clock = Arc::new(ManualClock::starting_now());
    /// let manager = StoreManager::new(MemoryStore::new()).with_clock(clock.clone());
    /// let issued = manager.create(NewSession::new().with_user("alice"))?;
    /// let mut session = manager.load(issued.token())?.session;
    /// let five_min = Duration::from_secs(300);
    /// assert!(manager.require_recent_auth(&session, five_min).is_ok());
    /// clock.advance(five_min);
    /// let err = manager.require_recent_auth(&session, five_min).unwrap_err();
    /// assert_eq!(err.reason(), "reauthentication_required");
    /// manager.reauthenticate(&mut session)?; // after checking the password
    /// assert!(manager.require_recent_auth(&session, five_min).is_ok());
    /// # Ok::<(), Error>(())
    /// ```
    fn require_recent_auth(&self, session: &Session, max_age: Duration) -> Result<(), Error>;

    /// Ends the session: every token of it fails on every later load,
    /// including tokens of its rotation chain, and a copy loaded before a
    /// concurrent rotation ends the rotated session too. It never returns
    /// `Ok` while a token of the session still loads.
    ///
    /// # Errors
    /// Store errors.
    fn terminate(&self, session: &Session) -> Result<(), Error>;

    /// Ends every session of `user` ("log out everywhere", a disabled
    /// account, a password change), except `except` if given (typically the
    /// current session: "log out everywhere else"). Returns how many
    /// sessions ended where the manager can count them: `Some(n)` for
    /// server-side sessions; `None` for tickets, whose per-user cutoff ends
    /// every ticket of the user authenticated until now without knowing how
    /// many there are.
    ///
    /// # Errors
    /// Store errors (sessions ended before the error stay ended). Tickets:
    /// [`Error::RevocationNotConfigured`] without a revocation store, and
    /// [`Error::Unsupported`] with `except` (a cutoff cannot spare one
    /// ticket).
    ///
    /// # Example
    /// ```
    /// use latchkey::{MemoryStore, NewSession, SessionManager, StoreManager};
    /// let manager = StoreManager::new(MemoryStore::new());
    /// let here = manager.create(NewSession::new().with_user("alice"))?;
    /// let there = manager.create(NewSession::new().with_user("alice"))?;
    /// let current = manager.load(here.token())?.session;
    /// assert_eq!(manager.terminate_all("alice", Some(&current))?, Some(1));
    /// assert!(manager.load(there.token()).is_err());
    /// assert!(manager.load(here.token()).is_ok());
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    fn terminate_all(&self, user: &str, except: Option<&Session>) -> Result<Option<usize>, Error>;

    /// Whether a call may block the calling thread on I/O: true when its
    /// store's calls may ([`Store::may_block`](crate::Store::may_block)).
    /// A `StoreManager` over a `MemoryStore`, and stateless tickets without
    /// a revocation store, never block, so async middleware can call them
    /// in place instead of on a blocking pool. Observers are called within
    /// the calls: one that blocks makes the manager block too.
    ///
    /// # Example
    /// ```
    /// use latchkey::{MemoryStore, SessionManager, StoreManager};
    /// assert!(!StoreManager::new(MemoryStore::new()).may_block());
    /// ```
    fn may_block(&self) -> bool {
        true
    }
}

/// A summary of one of a user's sessions, for a "your sessions" page.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionInfo {
    /// The session's log-safe name.
    pub fingerprint: Fingerprint,
    /// When it was created.
    pub created_at: Timestamp,
    /// Its last recorded activity.
    pub last_seen: Timestamp,
    /// When the user last authenticated in it.
    pub authenticated_at: Option<Timestamp>,
    /// When it ends if unused.
    pub idle_deadline: Timestamp,
    /// When it ends regardless.
    pub absolute_deadline: Timestamp,
    /// Its device label.
    pub device: Option<String>,
}
