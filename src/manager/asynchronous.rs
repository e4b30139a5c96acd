//! [`AsyncStoreManager`]: the store manager's lifecycle awaited on an
//! [`AsyncStore`], and [`AsyncSessionManager`], its object-safe face for
//! frameworks (feature `async`).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, Timestamp};
use crate::error::Error;
use crate::event::Observer;
use crate::id::Fingerprint;
use crate::lifecycle::{Core, Rotation};
use crate::manager::SessionInfo;
use crate::manager::engine::Engine;
use crate::policy::Policy;
use crate::session::{Issued, Loaded, NewSession, Session};
use crate::store::AsyncStore;
use crate::store::asynchronous::Awaited;

/// A boxed future that can move between threads: what
/// [`AsyncSessionManager`]'s methods return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Server-side sessions in an [`AsyncStore`]: the operations of
/// [`StoreManager`](crate::StoreManager), as `async fn`s.
///
/// Not a second implementation: both managers run one lifecycle (every
/// store call and every decision between them), which the synchronous
/// manager completes in one poll and this one awaits. So the rules of
/// [`crate::lifecycle`] hold here word for word, and the manager
/// conformance suite runs against both. No runtime is named: the futures
/// are plain `Send` futures, for tokio or any other executor.
///
/// # Example
/// ```
/// use latchkey::{AsyncStoreManager, MemoryStore, NewSession, Policy};
/// use latchkey::store::asynchronous::PendingOnce;
/// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     let mut f = std::pin::pin!(f);
/// #     let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
/// #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; } }
/// # }
/// let manager = AsyncStoreManager::new(PendingOnce::new(MemoryStore::new()))
///     .with_policy(Policy::nist_aal2());
/// block_on(async {
///     let issued = manager.create(NewSession::new().with_user("alice")).await?;
///     let loaded = manager.load(issued.token()).await?;
///     assert_eq!(loaded.session.user(), Some("alice"));
///     assert_eq!(manager.sessions_of("alice").await?.len(), 1);
///     Ok::<(), latchkey::Error>(())
/// })?;
/// # Ok::<(), latchkey::Error>(())
/// ```
pub struct AsyncStoreManager<S> {
    engine: Engine<Awaited<S>>,
}

impl<S: fmt::Debug> fmt::Debug for AsyncStoreManager<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncStoreManager")
            .field("engine", &self.engine)
            .finish()
    }
}

impl<S: AsyncStore> AsyncStoreManager<S> {
    /// A manager over `store` with [`Policy::default`] and the system clock.
    ///
    /// # Example
    /// ```
    /// use latchkey::{AsyncStoreManager, MemoryStore, Policy};
    /// use latchkey::store::asynchronous::PendingOnce;
    /// let manager = AsyncStoreManager::new(PendingOnce::new(MemoryStore::new()));
    /// assert_eq!(manager.policy(), &Policy::default());
    /// ```
    pub fn new(store: S) -> AsyncStoreManager<S> {
        AsyncStoreManager {
            engine: Engine {
                store: Awaited::new(store),
                core: Core::new(Policy::default()),
            },
        }
    }

    /// Uses `policy`.
    ///
    /// # Example
    /// ```
    /// use latchkey::{AsyncStoreManager, MemoryStore, Policy};
    /// use latchkey::store::asynchronous::PendingOnce;
    /// let manager = AsyncStoreManager::new(PendingOnce::new(MemoryStore::new()))
    ///     .with_policy(Policy::nist_aal3());
    /// assert_eq!(manager.policy(), &Policy::nist_aal3());
    /// ```
    #[must_use]
    pub fn with_policy(mut self, policy: Policy) -> AsyncStoreManager<S> {
        self.engine.core.policy = policy;
        self
    }

    /// Takes time from `clock`.
    ///
    /// # Example
    /// ```
    /// use std::sync::Arc;
    /// use latchkey::{AsyncStoreManager, ManualClock, MemoryStore, NewSession, Timestamp};
    /// use latchkey::store::asynchronous::{PendingOnce, block_on};
    /// let t0 = Timestamp::from_unix_millis(1_800_000_000_000);
    /// let manager = AsyncStoreManager::new(PendingOnce::new(MemoryStore::new()))
    ///     .with_clock(Arc::new(ManualClock::new(t0)));
    /// let issued = block_on(manager.create(NewSession::new()))?;
    /// assert_eq!(issued.issued_at(), t0);
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> AsyncStoreManager<S> {
        self.engine.core.clock = clock;
        self
    }

    /// Reports lifecycle events to `observer` (called within the
    /// operations: it must not block).
    ///
    /// # Example
    /// ```
    /// use std::sync::Arc;
    /// use latchkey::{AsyncStoreManager, Event, MemoryStore, NewSession, Observer};
    /// use latchkey::store::asynchronous::{PendingOnce, block_on};
    /// #[derive(Debug)]
    /// struct Log;
    /// impl Observer for Log {
    ///     fn on_event(&self, event: &Event) { println!("{event}"); }
    /// }
    /// let manager = AsyncStoreManager::new(PendingOnce::new(MemoryStore::new()))
    ///     .with_observer(Arc::new(Log));
    /// block_on(manager.create(NewSession::new()))?; // prints "session created: <fingerprint>"
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    #[must_use]
    pub fn with_observer(mut self, observer: Arc<dyn Observer>) -> AsyncStoreManager<S> {
        self.engine.core.observer = Some(observer);
        self
    }

    /// Waits between the retries of [`update`](Self::update) with `sleep`,
    /// your runtime's timer (`tokio::time::sleep`). Without one, a retry
    /// yields to the executor instead (once per millisecond of the
    /// backoff, see [`StoreManager::update`](crate::StoreManager::update)),
    /// which spreads retries out on a busy executor but waits no real
    /// time: give a timer when the store is across a network.
    ///
    /// # Example
    /// ```
    /// use std::time::Duration;
    /// use latchkey::{AsyncStoreManager, MemoryStore};
    /// use latchkey::store::asynchronous::PendingOnce;
    /// // With tokio: `.with_sleep(tokio::time::sleep)`. Any function from a
    /// // duration to a `Send` future will do:
    /// async fn sleep(_: Duration) {}
    /// let manager = AsyncStoreManager::new(PendingOnce::new(MemoryStore::new())).with_sleep(sleep);
    /// # let _ = manager;
    /// ```
    #[must_use]
    pub fn with_sleep<F, Fut>(mut self, sleep: F) -> AsyncStoreManager<S>
    where
        F: Fn(Duration) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.engine.store.sleep = Some(Arc::new(move |d| {
            Box::pin(sleep(d)) as BoxFuture<'static, ()>
        }));
        self
    }

    /// The store.
    ///
    /// # Example
    /// ```
    /// use latchkey::{AsyncStoreManager, MemoryStore, NewSession};
    /// use latchkey::store::asynchronous::{PendingOnce, block_on};
    /// let manager = AsyncStoreManager::new(PendingOnce::new(MemoryStore::new()));
    /// block_on(manager.create(NewSession::new()))?;
    /// assert_eq!(manager.store().inner().len(), 1);
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    pub fn store(&self) -> &S {
        &self.engine.store.store
    }

    /// The policy.
    ///
    /// # Example
    /// ```
    /// use latchkey::{AsyncStoreManager, MemoryStore, Policy};
    /// use latchkey::store::asynchronous::PendingOnce;
    /// assert_eq!(AsyncStoreManager::new(PendingOnce::new(MemoryStore::new())).policy(), &Policy::default());
    /// ```
    pub fn policy(&self) -> &Policy {
        &self.engine.core.policy
    }

    /// The time on the manager's clock.
    fn now(&self) -> Timestamp {
        self.engine.core.now()
    }

    /// As [`SessionManager::create`](crate::SessionManager::create).
    ///
    /// # Errors
    /// [`Error::TooLarge`], [`Error::UserLimit`], store errors.
    ///
    /// # Example
    /// ```
    /// use latchkey::{AsyncStoreManager, MemoryStore, NewSession};
    /// use latchkey::store::asynchronous::{PendingOnce, block_on};
    /// let manager = AsyncStoreManager::new(PendingOnce::new(MemoryStore::new()));
    /// let issued = block_on(manager.create(NewSession::new().with_user("alice")))?;
    /// assert!(!issued.token().is_empty());
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    pub async fn create(&self, new: NewSession) -> Result<Issued, Error> {
        self.engine.create_at(new, self.now()).await
    }

    /// [`create`](Self::create) at an explicit instant.
    ///
    /// # Errors
    /// As for [`create`](Self::create).
    ///
    /// # Example
    /// ```
    /// use latchkey::{AsyncStoreManager, MemoryStore, NewSession, Timestamp};
    /// use latchkey::store::asynchronous::{PendingOnce, block_on};
    /// let manager = AsyncStoreManager::new(PendingOnce::new(MemoryStore::new()));
    /// let t0 = Timestamp::from_unix_millis(1_800_000_000_000);
    /// assert_eq!(block_on(manager.create_at(NewSession::new(), t0))?.issued_at(), t0);
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    pub async fn create_at(&self, new: NewSession, now: Timestamp) -> Result<Issued, Error> {
        self.engine.create_at(new, now).await
    }

    /// As [`SessionManager::load`](crate::SessionManager::load).
    ///
    /// # Errors
    /// A rejection ([`Error::is_rejection`]) saying why, or a store error.
    ///
    /// # Example
    /// ```
    /// use latchkey::{AsyncStoreManager, Error, MemoryStore, NewSession};
    /// use latchkey::store::asynchronous::{PendingOnce, block_on};
    /// let manager = AsyncStoreManager::new(PendingOnce::new(MemoryStore::new()));
    /// block_on(async {
    ///     let issued = manager.create(NewSession::new()).await?;
    ///     assert!(manager.load(issued.token()).await.is_ok());
    ///     assert!(manager.load("not a token").await.unwrap_err().is_rejection());
    ///     Ok::<(), Error>(())
    /// })?;
    /// # Ok::<(), Error>(())
    /// ```
    pub async fn load(&self, token: &str) -> Result<Loaded, Error> {
        self.engine.load_when(token, || self.now()).await
    }

    /// [`load`](Self::load) at an explicit instant.
    ///
    /// # Errors
    /// As for [`load`](Self::load).
    ///
    /// # Example
    /// ```
    /// use std::time::Duration;
    /// use latchkey::{AsyncStoreManager, Error, MemoryStore, NewSession, Timestamp};
    /// use latchkey::store::asynchronous::{PendingOnce, block_on};
    /// let manager = AsyncStoreManager::new(PendingOnce::new(MemoryStore::new()));
    /// let t0 = Timestamp::from_unix_millis(1_800_000_000_000);
    /// let issued = block_on(manager.create_at(NewSession::new(), t0))?;
    /// let later = t0.saturating_add(Duration::from_secs(21 * 60));
    /// assert!(matches!(block_on(manager.load_at(issued.token(), later)), Err(Error::IdleExpired { .. })));
    /// # Ok::<(), Error>(())
    /// ```
    pub async fn load_at(&self, token: &str, now: Timestamp) -> Result<Loaded, Error> {
        self.engine.load_when(token, || now).await
    }

    /// As [`SessionManager::save`](crate::SessionManager::save).
    ///
    /// # Errors
    /// [`Error::Conflict`], [`Error::TooLarge`], a rejection if the session
    /// ended meanwhile, store errors.
    ///
    /// # Example
    /// ```
    /// use latchkey::{AsyncStoreManager, MemoryStore, NewSession};
    /// use latchkey::store::asynchronous::{PendingOnce, block_on};
    /// let manager = AsyncStoreManager::new(PendingOnce::new(MemoryStore::new()));
    /// block_on(async {
    ///     let issued = manager.create(NewSession::new()).await?;
    ///     let mut s = manager.load(issued.token()).await?.session;
    ///     s.insert("theme", &"dark")?;
    ///     manager.save(&mut s).await?;
    ///     assert_eq!(s.version(), 2);
    ///     Ok::<(), latchkey::Error>(())
    /// })?;
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    pub async fn save(&self, session: &mut Session) -> Result<Option<Issued>, Error> {
        self.engine.save_at(session, self.now()).await
    }

    /// As [`SessionManager::rotate`](crate::SessionManager::rotate).
    ///
    /// # Errors
    /// As for [`save`](Self::save).
    ///
    /// # Example
    /// ```
    /// use latchkey::{AsyncStoreManager, MemoryStore, NewSession};
    /// use latchkey::store::asynchronous::{PendingOnce, block_on};
    /// let manager = AsyncStoreManager::new(PendingOnce::new(MemoryStore::new()));
    /// block_on(async {
    ///     let issued = manager.create(NewSession::new()).await?;
    ///     let mut s = manager.load(issued.token()).await?.session;
    ///     let fresh = manager.rotate(&mut s).await?;
    ///     // In the grace window the old token resolves, and hands back the new one.
    ///     let old = manager.load(issued.token()).await?;
    ///     assert_eq!(old.reissue.map(|i| i.fingerprint()), Some(fresh.fingerprint()));
    ///     Ok::<(), latchkey::Error>(())
    /// })?;
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    pub async fn rotate(&self, session: &mut Session) -> Result<Issued, Error> {
        self.engine
            .rotate_and_report(session, self.now(), Rotation::Routine)
            .await
    }

    /// As [`SessionManager::change_privilege`](crate::SessionManager::change_privilege).
    ///
    /// # Errors
    /// As for [`rotate`](Self::rotate).
    ///
    /// # Example
    /// ```
    /// use latchkey::{AsyncStoreManager, Error, MemoryStore, NewSession};
    /// use latchkey::store::asynchronous::{PendingOnce, block_on};
    /// let manager = AsyncStoreManager::new(PendingOnce::new(MemoryStore::new()));
    /// block_on(async {
    ///     let before = manager.create(NewSession::new().with_user("alice")).await?;
    ///     let mut s = manager.load(before.token()).await?.session;
    ///     s.insert("admin", &true)?;
    ///     manager.change_privilege(&mut s).await?;
    ///     assert!(matches!(manager.load(before.token()).await, Err(Error::Superseded)));
    ///     Ok::<(), Error>(())
    /// })?;
    /// # Ok::<(), Error>(())
    /// ```
    pub async fn change_privilege(&self, session: &mut Session) -> Result<Issued, Error> {
        self.engine
            .rotate_and_report(session, self.now(), Rotation::Privilege)
            .await
    }

    /// As [`SessionManager::login`](crate::SessionManager::login).
    ///
    /// # Errors
    /// As for [`rotate`](Self::rotate), and [`Error::UserLimit`].
    ///
    /// # Example
    /// ```
    /// use latchkey::{AsyncStoreManager, Error, MemoryStore, NewSession};
    /// use latchkey::store::asynchronous::{PendingOnce, block_on};
    /// let manager = AsyncStoreManager::new(PendingOnce::new(MemoryStore::new()));
    /// block_on(async {
    ///     let planted = manager.create(NewSession::new()).await?;
    ///     let mut s = manager.load(planted.token()).await?.session;
    ///     let mine = manager.login(&mut s, "alice").await?;
    ///     assert!(matches!(manager.load(planted.token()).await, Err(Error::Superseded)));
    ///     assert_eq!(manager.load(mine.token()).await?.session.user(), Some("alice"));
    ///     Ok::<(), Error>(())
    /// })?;
    /// # Ok::<(), Error>(())
    /// ```
    pub async fn login(&self, session: &mut Session, user: &str) -> Result<Issued, Error> {
        self.engine.login_at(session, user, self.now()).await
    }

    /// As [`SessionManager::reauthenticate`](crate::SessionManager::reauthenticate):
    /// **the caller verifies the credential first**.
    ///
    /// # Errors
    /// [`Error::NotAuthenticated`] for a session without a user; otherwise
    /// as for [`rotate`](Self::rotate).
    ///
    /// # Example
    /// ```
    /// use std::time::Duration;
    /// use latchkey::{AsyncStoreManager, Error, MemoryStore, NewSession};
    /// use latchkey::store::asynchronous::{PendingOnce, block_on};
    /// let manager = AsyncStoreManager::new(PendingOnce::new(MemoryStore::new()));
    /// block_on(async {
    ///     let before = manager.create(NewSession::new().with_user("alice")).await?;
    ///     let mut s = manager.load(before.token()).await?.session;
    ///     // ... the user typed their password again, and it checked out ...
    ///     manager.reauthenticate(&mut s).await?;
    ///     manager.require_recent_auth(&s, Duration::from_secs(300))?;
    ///     assert!(matches!(manager.load(before.token()).await, Err(Error::Superseded)));
    ///     Ok::<(), Error>(())
    /// })?;
    /// # Ok::<(), Error>(())
    /// ```
    pub async fn reauthenticate(&self, session: &mut Session) -> Result<Issued, Error> {
        self.engine.reauthenticate_at(session, self.now()).await
    }

    /// As [`SessionManager::require_recent_auth`](crate::SessionManager::require_recent_auth):
    /// reads only the session copy, so it is not `async`.
    ///
    /// # Errors
    /// [`Error::ReauthenticationRequired`]: too long ago, or never.
    ///
    /// # Example
    /// ```
    /// use std::time::Duration;
    /// use latchkey::{AsyncStoreManager, MemoryStore, NewSession};
    /// use latchkey::store::asynchronous::{PendingOnce, block_on};
    /// let manager = AsyncStoreManager::new(PendingOnce::new(MemoryStore::new()));
    /// let anon = block_on(manager.create(NewSession::new()))?;
    /// let s = block_on(manager.load(anon.token()))?.session;
    /// assert!(manager.require_recent_auth(&s, Duration::from_secs(300)).is_err());
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    pub fn require_recent_auth(&self, session: &Session, max_age: Duration) -> Result<(), Error> {
        session.require_recent_auth_at(max_age, self.now())
    }

    /// As [`SessionManager::terminate`](crate::SessionManager::terminate).
    ///
    /// # Errors
    /// Store errors.
    ///
    /// # Example
    /// ```
    /// use latchkey::{AsyncStoreManager, Error, MemoryStore, NewSession};
    /// use latchkey::store::asynchronous::{PendingOnce, block_on};
    /// let manager = AsyncStoreManager::new(PendingOnce::new(MemoryStore::new()));
    /// block_on(async {
    ///     let issued = manager.create(NewSession::new()).await?;
    ///     let s = manager.load(issued.token()).await?.session;
    ///     manager.terminate(&s).await?;
    ///     assert!(matches!(manager.load(issued.token()).await, Err(Error::Terminated { .. })));
    ///     Ok::<(), Error>(())
    /// })?;
    /// # Ok::<(), Error>(())
    /// ```
    pub async fn terminate(&self, session: &Session) -> Result<(), Error> {
        self.engine.terminate_at(session, self.now()).await
    }

    /// As [`SessionManager::terminate_all`](crate::SessionManager::terminate_all):
    /// always `Some(n)`.
    ///
    /// # Errors
    /// Store errors (sessions ended before the error stay ended).
    ///
    /// # Example
    /// ```
    /// use latchkey::{AsyncStoreManager, MemoryStore, NewSession};
    /// use latchkey::store::asynchronous::{PendingOnce, block_on};
    /// let manager = AsyncStoreManager::new(PendingOnce::new(MemoryStore::new()));
    /// block_on(async {
    ///     let here = manager.create(NewSession::new().with_user("alice")).await?;
    ///     manager.create(NewSession::new().with_user("alice")).await?;
    ///     let current = manager.load(here.token()).await?.session;
    ///     assert_eq!(manager.terminate_all("alice", Some(&current)).await?, Some(1));
    ///     Ok::<(), latchkey::Error>(())
    /// })?;
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    pub async fn terminate_all(
        &self,
        user: &str,
        except: Option<&Session>,
    ) -> Result<Option<usize>, Error> {
        self.engine.terminate_all_at(user, except, self.now()).await
    }

    /// As [`StoreManager::update`](crate::StoreManager::update): loads,
    /// applies `f`, saves, and on a conflict waits a jittered backoff
    /// ([`with_sleep`](Self::with_sleep)) and tries again, up to 12
    /// attempts.
    ///
    /// # Errors
    /// As for load and save; [`Error::Conflict`] if every attempt conflicted.
    ///
    /// # Example
    /// ```
    /// use latchkey::{AsyncStoreManager, MemoryStore, NewSession};
    /// use latchkey::store::asynchronous::{PendingOnce, block_on};
    /// let manager = AsyncStoreManager::new(PendingOnce::new(MemoryStore::new()));
    /// block_on(async {
    ///     let issued = manager.create(NewSession::new()).await?;
    ///     let (count, _, _) = manager.update(issued.token(), |s| {
    ///         let n = s.get::<u64>("visits")?.unwrap_or(0) + 1;
    ///         s.insert("visits", &n)?;
    ///         Ok::<_, latchkey::Error>(n)
    ///     }).await?;
    ///     assert_eq!(count?, 1);
    ///     Ok::<(), latchkey::Error>(())
    /// })?;
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    pub async fn update<F, R>(
        &self,
        token: &str,
        f: F,
    ) -> Result<(R, Session, Option<Issued>), Error>
    where
        F: FnMut(&mut Session) -> R,
    {
        self.engine.update(token, f).await
    }

    /// The user's live sessions, oldest first.
    ///
    /// # Errors
    /// Store errors.
    ///
    /// # Example
    /// ```
    /// use latchkey::{AsyncStoreManager, MemoryStore, NewSession};
    /// use latchkey::store::asynchronous::{PendingOnce, block_on};
    /// let manager = AsyncStoreManager::new(PendingOnce::new(MemoryStore::new()));
    /// block_on(manager.create(NewSession::new().with_user("alice").with_device("phone")))?;
    /// let list = block_on(manager.sessions_of("alice"))?;
    /// assert_eq!(list[0].device.as_deref(), Some("phone"));
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    pub async fn sessions_of(&self, user: &str) -> Result<Vec<SessionInfo>, Error> {
        self.engine.sessions_of(user).await
    }

    /// As [`StoreManager::terminate_by_fingerprint`](crate::StoreManager::terminate_by_fingerprint).
    ///
    /// # Errors
    /// Store errors.
    ///
    /// # Example
    /// ```
    /// use latchkey::{AsyncStoreManager, MemoryStore, NewSession};
    /// use latchkey::store::asynchronous::{PendingOnce, block_on};
    /// let manager = AsyncStoreManager::new(PendingOnce::new(MemoryStore::new()));
    /// block_on(async {
    ///     let phone = manager.create(NewSession::new().with_user("alice")).await?;
    ///     assert!(!manager.terminate_by_fingerprint("mallory", phone.fingerprint()).await?);
    ///     assert!(manager.terminate_by_fingerprint("alice", phone.fingerprint()).await?);
    ///     Ok::<(), latchkey::Error>(())
    /// })?;
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    pub async fn terminate_by_fingerprint(
        &self,
        user: &str,
        fingerprint: Fingerprint,
    ) -> Result<bool, Error> {
        self.engine
            .terminate_by_fingerprint(user, fingerprint)
            .await
    }

    /// Deletes every record whose retention has passed; returns how many.
    ///
    /// # Errors
    /// Store errors.
    ///
    /// # Example
    /// ```
    /// use latchkey::{AsyncStoreManager, MemoryStore, NewSession};
    /// use latchkey::store::asynchronous::{PendingOnce, block_on};
    /// let manager = AsyncStoreManager::new(PendingOnce::new(MemoryStore::new()));
    /// block_on(manager.create(NewSession::new()))?;
    /// assert_eq!(block_on(manager.purge_expired())?, 0);
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    pub async fn purge_expired(&self) -> Result<usize, Error> {
        self.engine.purge_expired().await
    }
}

/// The session lifecycle, as an async framework sees it: the methods of
/// [`SessionManager`](crate::SessionManager), returning boxed futures, so
/// that middleware can hold an `Arc<dyn AsyncSessionManager>` and await
/// every call in place (no blocking pool).
/// [`AsyncStoreManager`] implements it.
///
/// # Example
/// ```
/// use std::sync::Arc;
/// use latchkey::{AsyncSessionManager, AsyncStoreManager, MemoryStore, NewSession};
/// use latchkey::store::asynchronous::{PendingOnce, block_on};
/// let manager: Arc<dyn AsyncSessionManager> =
///     Arc::new(AsyncStoreManager::new(PendingOnce::new(MemoryStore::new())));
/// block_on(async {
///     let anon = manager.create(NewSession::new()).await?;
///     let mut session = manager.load(anon.token()).await?.session;
///     let logged_in = manager.login(&mut session, "alice").await?;
///     manager.terminate(&session).await?;
///     assert!(manager.load(logged_in.token()).await.unwrap_err().is_rejection());
///     Ok::<(), latchkey::Error>(())
/// })?;
/// # Ok::<(), latchkey::Error>(())
/// ```
pub trait AsyncSessionManager: fmt::Debug + Send + Sync {
    /// As [`SessionManager::create`](crate::SessionManager::create).
    ///
    /// # Errors
    /// As there.
    fn create(&self, new: NewSession) -> BoxFuture<'_, Result<Issued, Error>>;

    /// As [`SessionManager::load`](crate::SessionManager::load).
    ///
    /// # Errors
    /// As there.
    fn load<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Loaded, Error>>;

    /// As [`SessionManager::save`](crate::SessionManager::save).
    ///
    /// # Errors
    /// As there.
    fn save<'a>(&'a self, session: &'a mut Session)
    -> BoxFuture<'a, Result<Option<Issued>, Error>>;

    /// As [`SessionManager::rotate`](crate::SessionManager::rotate).
    ///
    /// # Errors
    /// As there.
    fn rotate<'a>(&'a self, session: &'a mut Session) -> BoxFuture<'a, Result<Issued, Error>>;

    /// As [`SessionManager::change_privilege`](crate::SessionManager::change_privilege).
    ///
    /// # Errors
    /// As there.
    fn change_privilege<'a>(
        &'a self,
        session: &'a mut Session,
    ) -> BoxFuture<'a, Result<Issued, Error>>;

    /// As [`SessionManager::login`](crate::SessionManager::login).
    ///
    /// # Errors
    /// As there.
    fn login<'a>(
        &'a self,
        session: &'a mut Session,
        user: &'a str,
    ) -> BoxFuture<'a, Result<Issued, Error>>;

    /// As [`SessionManager::reauthenticate`](crate::SessionManager::reauthenticate).
    ///
    /// # Errors
    /// As there.
    fn reauthenticate<'a>(
        &'a self,
        session: &'a mut Session,
    ) -> BoxFuture<'a, Result<Issued, Error>>;

    /// As [`SessionManager::require_recent_auth`](crate::SessionManager::require_recent_auth)
    /// (no I/O, so not a future).
    ///
    /// # Errors
    /// As there.
    fn require_recent_auth(&self, session: &Session, max_age: Duration) -> Result<(), Error>;

    /// As [`SessionManager::terminate`](crate::SessionManager::terminate).
    ///
    /// # Errors
    /// As there.
    fn terminate<'a>(&'a self, session: &'a Session) -> BoxFuture<'a, Result<(), Error>>;

    /// As [`SessionManager::terminate_all`](crate::SessionManager::terminate_all).
    ///
    /// # Errors
    /// As there.
    fn terminate_all<'a>(
        &'a self,
        user: &'a str,
        except: Option<&'a Session>,
    ) -> BoxFuture<'a, Result<Option<usize>, Error>>;
}

impl<S: AsyncStore> AsyncSessionManager for AsyncStoreManager<S> {
    fn create(&self, new: NewSession) -> BoxFuture<'_, Result<Issued, Error>> {
        Box::pin(AsyncStoreManager::create(self, new))
    }
    fn load<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Loaded, Error>> {
        Box::pin(AsyncStoreManager::load(self, token))
    }
    fn save<'a>(
        &'a self,
        session: &'a mut Session,
    ) -> BoxFuture<'a, Result<Option<Issued>, Error>> {
        Box::pin(AsyncStoreManager::save(self, session))
    }
    fn rotate<'a>(&'a self, session: &'a mut Session) -> BoxFuture<'a, Result<Issued, Error>> {
        Box::pin(AsyncStoreManager::rotate(self, session))
    }
    fn change_privilege<'a>(
        &'a self,
        session: &'a mut Session,
    ) -> BoxFuture<'a, Result<Issued, Error>> {
        Box::pin(AsyncStoreManager::change_privilege(self, session))
    }
    fn login<'a>(
        &'a self,
        session: &'a mut Session,
        user: &'a str,
    ) -> BoxFuture<'a, Result<Issued, Error>> {
        Box::pin(AsyncStoreManager::login(self, session, user))
    }
    fn reauthenticate<'a>(
        &'a self,
        session: &'a mut Session,
    ) -> BoxFuture<'a, Result<Issued, Error>> {
        Box::pin(AsyncStoreManager::reauthenticate(self, session))
    }
    fn require_recent_auth(&self, session: &Session, max_age: Duration) -> Result<(), Error> {
        AsyncStoreManager::require_recent_auth(self, session, max_age)
    }
    fn terminate<'a>(&'a self, session: &'a Session) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(AsyncStoreManager::terminate(self, session))
    }
    fn terminate_all<'a>(
        &'a self,
        user: &'a str,
        except: Option<&'a Session>,
    ) -> BoxFuture<'a, Result<Option<usize>, Error>> {
        Box::pin(AsyncStoreManager::terminate_all(self, user, except))
    }
}
