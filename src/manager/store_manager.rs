//! [`StoreManager`]: sessions kept in a [`Store`].

use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, Timestamp};
use crate::error::Error;
use crate::event::Observer;
use crate::id::Fingerprint;
use crate::lifecycle::{Core, Rotation};
use crate::manager::engine::Engine;
use crate::manager::{SessionInfo, SessionManager};
use crate::policy::Policy;
use crate::session::{Issued, Loaded, NewSession, Session};
use crate::store::Store;
use crate::store::driver::{self, Ready};

/// Runs one operation of the lifecycle (`manager::engine`) over a
/// synchronous store: every store call's future is ready, so one poll
/// completes it. One that did not complete would be a bug in the driver;
/// it is a typed error, never a panic or a hang. A macro, so that the
/// operation's future is pinned where it is made, not moved (it is large).
macro_rules! run {
    ($operation:expr) => {
        driver::poll_once(std::pin::pin!($operation))
            .unwrap_or_else(|| Err(driver::not_ready().into()))
    };
}

/// Server-side sessions: the token is a random ID, the state lives in a
/// [`Store`].
///
/// Its operations are the lifecycle of [`crate::lifecycle`], run over a
/// synchronous store; `AsyncStoreManager` (feature `async`) runs the same
/// code over an async store.
///
/// # Example
/// ```
/// use latchkey::{MemoryStore, NewSession, Policy, SessionManager, StoreManager};
///
/// let manager = StoreManager::new(MemoryStore::new()).with_policy(Policy::nist_aal2());
/// let issued = manager.create(NewSession::new().with_user("alice"))?;
/// let loaded = manager.load(issued.token())?;
/// assert_eq!(loaded.session.user(), Some("alice"));
/// assert_eq!(manager.sessions_of("alice")?.len(), 1);
/// # Ok::<(), latchkey::Error>(())
/// ```
#[derive(Debug)]
pub struct StoreManager<S> {
    /// The store, and the policy, clock and observer.
    engine: Engine<Ready<S>>,
}

impl<S: Store> StoreManager<S> {
    /// A manager over `store` with [`Policy::default`] and the system clock.
    ///
    /// # Example
    /// ```
    /// use latchkey::{MemoryStore, NewSession, SessionManager, StoreManager};
    /// let manager = StoreManager::new(MemoryStore::new());
    /// assert!(manager.store().is_empty());
    /// ```
    pub fn new(store: S) -> StoreManager<S> {
        StoreManager {
            engine: Engine {
                store: Ready(store),
                core: Core::new(Policy::default()),
            },
        }
    }

    /// Uses `policy`.
    ///
    /// # Example
    /// ```
    /// use latchkey::{MemoryStore, Policy, StoreManager};
    /// let manager = StoreManager::new(MemoryStore::new()).with_policy(Policy::nist_aal3());
    /// assert_eq!(manager.policy(), &Policy::nist_aal3());
    /// ```
    #[must_use]
    pub fn with_policy(mut self, policy: Policy) -> StoreManager<S> {
        self.engine.core.policy = policy;
        self
    }

    /// Takes time from `clock` (share it with the store if the store sweeps).
    ///
    /// # Example
    /// ```
    /// use std::sync::Arc;
    /// use latchkey::{ManualClock, MemoryStore, NewSession, SessionManager, StoreManager, Timestamp};
    /// let clock = Arc::new(ManualClock::new(Timestamp::from_unix_millis(1_800_000_000_000)));
    /// let manager = StoreManager::new(MemoryStore::new()).with_clock(clock);
    /// let issued = manager.create(NewSession::new())?;
    /// assert_eq!(manager.load(issued.token())?.session.created_at().as_unix_millis(), 1_800_000_000_000);
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> StoreManager<S> {
        self.engine.core.clock = clock;
        self
    }

    /// Reports lifecycle events to `observer`.
    ///
    /// # Example
    /// ```
    /// use std::sync::Arc;
    /// use latchkey::{Event, MemoryStore, NewSession, Observer, SessionManager, StoreManager};
    /// #[derive(Debug)]
    /// struct Log;
    /// impl Observer for Log {
    ///     fn on_event(&self, event: &Event) { println!("{event}"); }
    /// }
    /// let manager = StoreManager::new(MemoryStore::new()).with_observer(Arc::new(Log));
    /// manager.create(NewSession::new())?; // prints "session created: <fingerprint>"
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    #[must_use]
    pub fn with_observer(mut self, observer: Arc<dyn Observer>) -> StoreManager<S> {
        self.engine.core.observer = Some(observer);
        self
    }

    /// The store.
    ///
    /// # Example
    /// ```
    /// use latchkey::{MemoryStore, NewSession, SessionManager, StoreManager};
    /// let manager = StoreManager::new(MemoryStore::new());
    /// manager.create(NewSession::new())?;
    /// assert_eq!(manager.store().len(), 1);
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    pub fn store(&self) -> &S {
        &self.engine.store.0
    }

    /// The policy.
    ///
    /// # Example
    /// ```
    /// use latchkey::{MemoryStore, Policy, StoreManager};
    /// assert_eq!(StoreManager::new(MemoryStore::new()).policy(), &Policy::default());
    /// ```
    pub fn policy(&self) -> &Policy {
        &self.engine.core.policy
    }

    /// [`SessionManager::create`] at an explicit instant.
    ///
    /// # Errors
    /// As for [`SessionManager::create`].
    ///
    /// # Example
    /// ```
    /// use std::{sync::Arc, time::Duration};
    /// use latchkey::{Error, ManualClock, MemoryStore, NewSession, StoreManager, Timestamp};
    /// let t0 = Timestamp::from_unix_millis(1_800_000_000_000);
    /// let clock = Arc::new(ManualClock::new(t0));
    /// let manager = StoreManager::new(MemoryStore::new().with_clock(clock.clone())).with_clock(clock);
    /// let issued = manager.create_at(NewSession::new(), t0)?;
    /// assert_eq!(issued.absolute_deadline(), t0.saturating_add(Duration::from_secs(8 * 3600)));
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    pub fn create_at(&self, new: NewSession, now: Timestamp) -> Result<Issued, Error> {
        run!(self.engine.create_at(new, now))
    }

    /// [`SessionManager::load`] at an explicit instant.
    ///
    /// # Errors
    /// As for [`SessionManager::load`].
    ///
    /// # Example
    /// ```
    /// use std::{sync::Arc, time::Duration};
    /// use latchkey::{Error, ManualClock, MemoryStore, NewSession, StoreManager, Timestamp};
    /// let t0 = Timestamp::from_unix_millis(1_800_000_000_000);
    /// let clock = Arc::new(ManualClock::new(t0));
    /// let manager = StoreManager::new(MemoryStore::new().with_clock(clock.clone())).with_clock(clock);
    /// let issued = manager.create_at(NewSession::new(), t0)?;
    /// // Unused for longer than the idle timeout (20 min by default):
    /// let later = t0.saturating_add(Duration::from_secs(21 * 60));
    /// assert!(matches!(manager.load_at(issued.token(), later), Err(Error::IdleExpired { .. })));
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    #[inline]
    pub fn load_at(&self, token: &str, now: Timestamp) -> Result<Loaded, Error> {
        self.load_when(token, || now)
    }

    /// The engine's `load_when`, its steps composed around the store's own
    /// `peek`: the common case (a live session needing no touch) is built
    /// where the store keeps it and returned without a future; the rest
    /// runs the engine's resolve.
    #[inline]
    fn load_when(&self, token: &str, now: impl FnOnce() -> Timestamp) -> Result<Loaded, Error> {
        let engine = &self.engine;
        let id = engine.parse(token)?;
        let key = id.store_key();
        let now = now();
        let shown = engine
            .store
            .0
            .peek(&key, |seen| engine.shown(&id, key, now, seen));
        // Taken apart by value: the common case's `Loaded` (352 bytes) then
        // moves once, into the result. Bound to a name first and returned
        // after the error check, it took one more copy, which cost a load
        // at 100k live sessions about 80 ns (BENCHMARKS.md, "The result's
        // moves").
        match shown {
            None => run!(engine.load_resolved(id, key, now)),
            Some(Err(err)) => Err(engine.refused(&key, err)),
            Some(Ok(loaded)) => Ok(loaded),
        }
    }

    /// [`SessionManager::save`] at an explicit instant.
    ///
    /// # Errors
    /// As for [`SessionManager::save`].
    ///
    /// # Example
    /// ```
    /// use std::{sync::Arc, time::Duration};
    /// use latchkey::{Error, ManualClock, MemoryStore, NewSession, StoreManager, Timestamp};
    /// let t0 = Timestamp::from_unix_millis(1_800_000_000_000);
    /// let clock = Arc::new(ManualClock::new(t0));
    /// let manager = StoreManager::new(MemoryStore::new().with_clock(clock.clone())).with_clock(clock);
    /// let issued = manager.create_at(NewSession::new(), t0)?;
    /// let mut s = manager.load_at(issued.token(), t0)?.session;
    /// s.insert("theme", &"dark")?;
    /// manager.save_at(&mut s, t0)?;
    /// assert_eq!(s.version(), 2);
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    pub fn save_at(&self, session: &mut Session, now: Timestamp) -> Result<Option<Issued>, Error> {
        run!(self.engine.save_at(session, now))
    }

    /// [`SessionManager::rotate`] at an explicit instant.
    ///
    /// # Errors
    /// As for [`SessionManager::rotate`].
    ///
    /// # Example
    /// ```
    /// use std::{sync::Arc, time::Duration};
    /// use latchkey::{Error, ManualClock, MemoryStore, NewSession, StoreManager, Timestamp};
    /// let t0 = Timestamp::from_unix_millis(1_800_000_000_000);
    /// let clock = Arc::new(ManualClock::new(t0));
    /// let manager = StoreManager::new(MemoryStore::new().with_clock(clock.clone())).with_clock(clock);
    /// let issued = manager.create_at(NewSession::new(), t0)?;
    /// let mut s = manager.load_at(issued.token(), t0)?.session;
    /// let fresh = manager.rotate_at(&mut s, t0)?;
    /// // Within the grace window the old token still works and hands back the new one.
    /// let l = manager.load_at(issued.token(), t0.saturating_add(Duration::from_secs(5)))?;
    /// assert_eq!(l.reissue.map(|i| i.fingerprint()), Some(fresh.fingerprint()));
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    pub fn rotate_at(&self, session: &mut Session, now: Timestamp) -> Result<Issued, Error> {
        run!(
            self.engine
                .rotate_and_report(session, now, Rotation::Routine)
        )
    }

    /// [`SessionManager::change_privilege`] at an explicit instant.
    ///
    /// # Errors
    /// As for [`SessionManager::rotate`].
    ///
    /// # Example
    /// ```
    /// use std::sync::Arc;
    /// use latchkey::{Error, ManualClock, MemoryStore, NewSession, StoreManager, Timestamp};
    /// let t0 = Timestamp::from_unix_millis(1_800_000_000_000);
    /// let manager = StoreManager::new(MemoryStore::new()).with_clock(Arc::new(ManualClock::new(t0)));
    /// let before = manager.create_at(NewSession::new().with_user("alice"), t0)?;
    /// let mut s = manager.load_at(before.token(), t0)?.session;
    /// s.insert("role", &"admin")?;
    /// let admin = manager.change_privilege_at(&mut s, t0)?;
    /// // The old token never sees the new privileges, even within the grace window.
    /// assert!(matches!(manager.load_at(before.token(), t0), Err(Error::Superseded)));
    /// assert_eq!(manager.load_at(admin.token(), t0)?.session.get::<String>("role")?.as_deref(), Some("admin"));
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    pub fn change_privilege_at(
        &self,
        session: &mut Session,
        now: Timestamp,
    ) -> Result<Issued, Error> {
        run!(
            self.engine
                .rotate_and_report(session, now, Rotation::Privilege)
        )
    }

    /// [`SessionManager::login`] at an explicit instant.
    ///
    /// # Errors
    /// As for [`SessionManager::login`].
    ///
    /// # Example
    /// ```
    /// use std::{sync::Arc, time::Duration};
    /// use latchkey::{Error, ManualClock, MemoryStore, NewSession, StoreManager, Timestamp};
    /// let t0 = Timestamp::from_unix_millis(1_800_000_000_000);
    /// let clock = Arc::new(ManualClock::new(t0));
    /// let manager = StoreManager::new(MemoryStore::new().with_clock(clock.clone())).with_clock(clock);
    /// let issued = manager.create_at(NewSession::new(), t0)?;
    /// let mut s = manager.load_at(issued.token(), t0)?.session;
    /// let later = t0.saturating_add(Duration::from_secs(60));
    /// manager.login_at(&mut s, "alice", later)?;
    /// assert_eq!(s.authenticated_at(), Some(later));
    /// assert_eq!(s.created_at(), t0); // the absolute deadline does not move
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    pub fn login_at(
        &self,
        session: &mut Session,
        user: &str,
        now: Timestamp,
    ) -> Result<Issued, Error> {
        run!(self.engine.login_at(session, user, now))
    }

    /// [`SessionManager::reauthenticate`] at an explicit instant: the
    /// caller has verified the user's credential; `session` is now
    /// authenticated at `now`, under a new ID, and its old token is refused
    /// as after a privilege change.
    ///
    /// # Errors
    /// As for [`SessionManager::reauthenticate`]. On any error `session` is
    /// as it was.
    ///
    /// # Example
    /// ```
    /// use std::{sync::Arc, time::Duration};
    /// use latchkey::{Error, ManualClock, MemoryStore, NewSession, StoreManager, Timestamp};
    /// let t0 = Timestamp::from_unix_millis(1_800_000_000_000);
    /// let clock = Arc::new(ManualClock::new(t0));
    /// let manager = StoreManager::new(MemoryStore::new().with_clock(clock.clone())).with_clock(clock);
    /// let before = manager.create_at(NewSession::new().with_user("alice"), t0)?;
    /// // 15 minutes on: still live (idle timeout 20 minutes), no longer fresh.
    /// let later = t0.saturating_add(Duration::from_secs(15 * 60));
    /// let mut s = manager.load_at(before.token(), later)?.session;
    /// assert!(s.require_recent_auth_at(Duration::from_secs(600), later).is_err());
    /// // The user typed their password again, and it checked out:
    /// let after = manager.reauthenticate_at(&mut s, later)?;
    /// assert_eq!(s.authenticated_at(), Some(later));
    /// assert!(s.require_recent_auth_at(Duration::from_secs(600), later).is_ok());
    /// // The absolute deadline stays (by default), and the old token is refused.
    /// assert_eq!(after.absolute_deadline(), before.absolute_deadline());
    /// assert!(matches!(manager.load_at(before.token(), later), Err(Error::Superseded)));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn reauthenticate_at(
        &self,
        session: &mut Session,
        now: Timestamp,
    ) -> Result<Issued, Error> {
        run!(self.engine.reauthenticate_at(session, now))
    }

    /// [`SessionManager::terminate`] at an explicit instant.
    ///
    /// # Errors
    /// As for [`SessionManager::terminate`].
    ///
    /// # Example
    /// ```
    /// use std::{sync::Arc, time::Duration};
    /// use latchkey::{Error, ManualClock, MemoryStore, NewSession, StoreManager, Timestamp};
    /// let t0 = Timestamp::from_unix_millis(1_800_000_000_000);
    /// let clock = Arc::new(ManualClock::new(t0));
    /// let manager = StoreManager::new(MemoryStore::new().with_clock(clock.clone())).with_clock(clock);
    /// let issued = manager.create_at(NewSession::new(), t0)?;
    /// let s = manager.load_at(issued.token(), t0)?.session;
    /// manager.terminate_at(&s, t0)?;
    /// assert!(matches!(manager.load_at(issued.token(), t0), Err(Error::Terminated { .. })));
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    pub fn terminate_at(&self, session: &Session, now: Timestamp) -> Result<(), Error> {
        run!(self.engine.terminate_at(session, now))
    }

    /// Loads, applies `f`, saves; on a version conflict, waits, loads again
    /// and re-applies `f`, up to 12 attempts in all. Returns `f`'s result,
    /// the session as saved, and any token to reissue.
    ///
    /// The wait before the n-th retry is random, up to 1 ms doubling to at
    /// most 32 ms ("full jitter", at most about a quarter of a second in
    /// all), slept on the calling thread: requests that conflicted on one
    /// session were released together, and retried at once they would
    /// collide again. With it, 64 threads updating one session all get
    /// through (`tests/update_contention.rs`).
    ///
    /// # Errors
    /// As for load and save; [`Error::Conflict`] if every attempt conflicted.
    ///
    /// # Example
    /// ```
    /// use latchkey::{MemoryStore, NewSession, SessionManager, StoreManager};
    ///
    /// let manager = StoreManager::new(MemoryStore::new());
    /// let issued = manager.create(NewSession::new())?;
    /// let (count, _, _) = manager.update(issued.token(), |s| {
    ///     let n = s.get::<u64>("visits")?.unwrap_or(0) + 1;
    ///     s.insert("visits", &n)?;
    ///     Ok::<_, latchkey::Error>(n)
    /// })?;
    /// assert_eq!(count?, 1);
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    pub fn update<F, R>(&self, token: &str, f: F) -> Result<(R, Session, Option<Issued>), Error>
    where
        F: FnMut(&mut Session) -> R,
    {
        run!(self.engine.update(token, f))
    }

    /// The user's live sessions, oldest first.
    ///
    /// # Errors
    /// Store errors.
    ///
    /// # Example
    /// ```
    /// use latchkey::{MemoryStore, NewSession, SessionManager, StoreManager};
    /// let manager = StoreManager::new(MemoryStore::new());
    /// manager.create(NewSession::new().with_user("alice").with_device("phone"))?;
    /// let list = manager.sessions_of("alice")?;
    /// assert_eq!(list[0].device.as_deref(), Some("phone"));
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    pub fn sessions_of(&self, user: &str) -> Result<Vec<SessionInfo>, Error> {
        run!(self.engine.sessions_of(user))
    }

    /// Ends one of the user's sessions named by fingerprint (a "log out that
    /// device" button). Only sessions bound to `user` are considered, so a
    /// fingerprint from another account ends nothing. Returns whether one
    /// ended.
    ///
    /// # Errors
    /// Store errors.
    ///
    /// # Example
    /// ```
    /// use latchkey::{MemoryStore, NewSession, SessionManager, StoreManager};
    /// let manager = StoreManager::new(MemoryStore::new());
    /// let phone = manager.create(NewSession::new().with_user("alice"))?;
    /// assert!(!manager.terminate_by_fingerprint("mallory", phone.fingerprint())?);
    /// assert!(manager.terminate_by_fingerprint("alice", phone.fingerprint())?);
    /// assert!(manager.load(phone.token()).is_err());
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    pub fn terminate_by_fingerprint(
        &self,
        user: &str,
        fingerprint: Fingerprint,
    ) -> Result<bool, Error> {
        run!(self.engine.terminate_by_fingerprint(user, fingerprint))
    }

    /// Deletes every record whose retention has passed; returns how many.
    ///
    /// # Errors
    /// Store errors.
    ///
    /// # Example
    /// ```
    /// use latchkey::{MemoryStore, NewSession, SessionManager, StoreManager};
    /// let manager = StoreManager::new(MemoryStore::new());
    /// manager.create(NewSession::new())?;
    /// assert_eq!(manager.purge_expired()?, 0); // nothing has expired yet
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    pub fn purge_expired(&self) -> Result<usize, Error> {
        run!(self.engine.purge_expired())
    }
}

impl<S: Store> SessionManager for StoreManager<S> {
    fn create(&self, new: NewSession) -> Result<Issued, Error> {
        self.create_at(new, self.engine.core.now())
    }

    #[inline]
    fn load(&self, token: &str) -> Result<Loaded, Error> {
        self.load_when(token, || self.engine.core.now())
    }

    fn save(&self, session: &mut Session) -> Result<Option<Issued>, Error> {
        self.save_at(session, self.engine.core.now())
    }

    fn rotate(&self, session: &mut Session) -> Result<Issued, Error> {
        self.rotate_at(session, self.engine.core.now())
    }

    fn change_privilege(&self, session: &mut Session) -> Result<Issued, Error> {
        self.change_privilege_at(session, self.engine.core.now())
    }

    fn login(&self, session: &mut Session, user: &str) -> Result<Issued, Error> {
        self.login_at(session, user, self.engine.core.now())
    }

    fn reauthenticate(&self, session: &mut Session) -> Result<Issued, Error> {
        self.reauthenticate_at(session, self.engine.core.now())
    }

    fn require_recent_auth(&self, session: &Session, max_age: Duration) -> Result<(), Error> {
        session.require_recent_auth_at(max_age, self.engine.core.now())
    }

    fn terminate(&self, session: &Session) -> Result<(), Error> {
        self.terminate_at(session, self.engine.core.now())
    }

    fn terminate_all(&self, user: &str, except: Option<&Session>) -> Result<Option<usize>, Error> {
        run!(
            self.engine
                .terminate_all_at(user, except, self.engine.core.now())
        )
    }

    fn may_block(&self) -> bool {
        self.engine.store.0.may_block()
    }
}
