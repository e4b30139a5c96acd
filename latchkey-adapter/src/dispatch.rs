//! Where a manager call runs, and how long to wait before retrying one.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use latchkey::{
    AsyncSessionManager, Error, Issued, Loaded, NewSession, Session, SessionManager, StoreError,
};

/// How many attempts an adapter makes at a write that conflicts before it
/// gives up (409): 12, as the core's `update`. With [`backoff`] between
/// attempts, enough that 64 concurrent increments of one session over Redis
/// all land (the `latchkey-peers` `e2e` one-cookie test).
///
/// # Example
/// ```
/// use latchkey_adapter::DEFAULT_MAX_ATTEMPTS;
/// // An adapter's setting for the attempts starts here; at least one.
/// let max_attempts = DEFAULT_MAX_ATTEMPTS.max(1);
/// assert_eq!(max_attempts, 12);
/// ```
pub const DEFAULT_MAX_ATTEMPTS: u32 = 12;

/// An adapter's manager: a synchronous one, each call run in place or on
/// tokio's blocking pool as [`SessionManager::may_block`] says, or an
/// async one, whose calls are awaited in place.
///
/// Every method answers a panic in the manager (and a blocking task
/// cancelled by the runtime shutting down) as a backend failure,
/// [`Error::Store`] with [`StoreError::Unavailable`] (a 503, the cookie
/// kept), never as a rejection: the session itself may be fine.
///
/// Call it from within a tokio runtime: the blocking pool and
/// [`blocking`](Manager::blocking)'s runtime handle are the current
/// runtime's.
///
/// # Example
/// ```
/// use std::sync::Arc;
/// use latchkey::{MemoryStore, NewSession, StoreManager};
/// use latchkey_adapter::Manager;
///
/// #[tokio::main(flavor = "current_thread")]
/// async fn main() -> Result<(), latchkey::Error> {
///     let manager = Manager::Sync(Arc::new(StoreManager::new(MemoryStore::new())));
///     let (session, issued) = manager.create(NewSession::new()).await?;
///     let loaded = manager.load(issued.token().to_owned()).await?;
///     assert_eq!(loaded.session.store_key(), session.store_key());
///     Ok(())
/// }
/// ```
#[derive(Clone)]
pub enum Manager {
    /// A synchronous manager: called in place when it cannot block, else on
    /// tokio's blocking pool.
    Sync(Arc<dyn SessionManager>),
    /// An async manager: its calls awaited in place.
    Async(Arc<dyn AsyncSessionManager>),
}

impl fmt::Debug for Manager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Manager::Sync(m) => m.fmt(f),
            Manager::Async(m) => m.fmt(f),
        }
    }
}

/// A write an adapter retries on a conflict: what [`Manager::write`] runs.
///
/// # Example
/// ```
/// use latchkey_adapter::Write;
/// // A log-in: the retry after a conflict logs in the same user.
/// let write = Write::Login("alice".to_owned());
/// let again = write.clone();
/// assert!(matches!(again, Write::Login(user) if user == "alice"));
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Write {
    /// [`SessionManager::save`].
    Save,
    /// [`SessionManager::rotate`].
    Rotate,
    /// [`SessionManager::change_privilege`].
    ChangePrivilege,
    /// [`SessionManager::login`] of the user named.
    Login(String),
    /// [`SessionManager::reauthenticate`].
    Reauthenticate,
}

impl Write {
    fn run(&self, m: &dyn SessionManager, s: &mut Session) -> Result<Option<Issued>, Error> {
        match self {
            Write::Save => m.save(s),
            Write::Rotate => m.rotate(s).map(Some),
            Write::ChangePrivilege => m.change_privilege(s).map(Some),
            Write::Login(user) => m.login(s, user).map(Some),
            Write::Reauthenticate => m.reauthenticate(s).map(Some),
        }
    }

    async fn run_async(
        &self,
        m: &dyn AsyncSessionManager,
        s: &mut Session,
    ) -> Result<Option<Issued>, Error> {
        match self {
            Write::Save => m.save(s).await,
            Write::Rotate => m.rotate(s).await.map(Some),
            Write::ChangePrivilege => m.change_privilege(s).await.map(Some),
            Write::Login(user) => m.login(s, user).await.map(Some),
            Write::Reauthenticate => m.reauthenticate(s).await.map(Some),
        }
    }
}

impl Manager {
    /// [`SessionManager::load`].
    ///
    /// # Example
    /// ```
    /// use std::sync::Arc;
    /// use latchkey::{AsyncStoreManager, Error, MemoryStore};
    /// use latchkey::store::asynchronous::PendingOnce;
    /// use latchkey_adapter::Manager;
    ///
    /// #[tokio::main(flavor = "current_thread")]
    /// async fn main() {
    ///     // An async store (here a memory one whose calls yield once).
    ///     let store = PendingOnce::new(MemoryStore::new());
    ///     let manager = Manager::Async(Arc::new(AsyncStoreManager::new(store)));
    ///     // A token nobody issued: a rejection, not a backend failure.
    ///     let err = manager.load("not-a-token".to_owned()).await.unwrap_err();
    ///     assert!(!matches!(err, Error::Store(_)));
    /// }
    /// ```
    pub async fn load(&self, token: String) -> Result<Loaded, Error> {
        match self {
            Manager::Sync(m) => call(m, move |m| m.load(&token)).await,
            Manager::Async(m) => guarded(m.load(&token)).await,
        }
    }

    /// [`SessionManager::terminate`].
    ///
    /// # Example
    /// ```
    /// use std::sync::Arc;
    /// use latchkey::{MemoryStore, NewSession, StoreManager};
    /// use latchkey_adapter::Manager;
    ///
    /// #[tokio::main(flavor = "current_thread")]
    /// async fn main() -> Result<(), latchkey::Error> {
    ///     let manager = Manager::Sync(Arc::new(StoreManager::new(MemoryStore::new())));
    ///     let (session, issued) = manager.create(NewSession::new()).await?;
    ///     manager.terminate(session).await?;
    ///     assert!(manager.load(issued.token().to_owned()).await.is_err());
    ///     Ok(())
    /// }
    /// ```
    pub async fn terminate(&self, session: Session) -> Result<(), Error> {
        match self {
            Manager::Sync(m) => call(m, move |m| m.terminate(&session)).await,
            Manager::Async(m) => guarded(m.terminate(&session)).await,
        }
    }

    /// [`SessionManager::require_recent_auth`]. With an async manager it is
    /// called in place: it reads the session's authentication time, no I/O.
    ///
    /// # Example
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use latchkey::{Error, MemoryStore, NewSession, StoreManager};
    /// use latchkey_adapter::Manager;
    ///
    /// #[tokio::main(flavor = "current_thread")]
    /// async fn main() -> Result<(), Error> {
    ///     let manager = Manager::Sync(Arc::new(StoreManager::new(MemoryStore::new())));
    ///     let (session, _) = manager.create(NewSession::new()).await?;
    ///     // Nobody logged in to this session: no recent authentication.
    ///     let recent = manager.require_recent_auth(session, Duration::from_secs(300)).await;
    ///     assert!(recent.is_err());
    ///     Ok(())
    /// }
    /// ```
    pub async fn require_recent_auth(
        &self,
        session: Session,
        max_age: Duration,
    ) -> Result<(), Error> {
        match self {
            Manager::Sync(m) => call(m, move |m| m.require_recent_auth(&session, max_age)).await,
            // Synchronous on both traits; a panic in it is a 503 here too.
            Manager::Async(m) => catch_unwind(AssertUnwindSafe(|| {
                m.require_recent_auth(&session, max_age)
            }))
            .unwrap_or_else(|_| Err(backend_failure("a session manager call panicked"))),
        }
    }

    /// Creates a session from `new` and loads it: the session, and the token
    /// issued for it.
    ///
    /// # Example
    /// ```
    /// use std::sync::Arc;
    /// use latchkey::{AsyncStoreManager, MemoryStore, NewSession};
    /// use latchkey::store::asynchronous::PendingOnce;
    /// use latchkey_adapter::Manager;
    ///
    /// #[tokio::main(flavor = "current_thread")]
    /// async fn main() -> Result<(), latchkey::Error> {
    ///     // An async store (here a memory one whose calls yield once).
    ///     let store = PendingOnce::new(MemoryStore::new());
    ///     let manager = Manager::Async(Arc::new(AsyncStoreManager::new(store)));
    ///     let (session, issued) = manager.create(NewSession::new()).await?;
    ///     assert_eq!(session.user(), None);
    ///     assert!(!issued.token().is_empty());
    ///     Ok(())
    /// }
    /// ```
    pub async fn create(&self, new: NewSession) -> Result<(Session, Issued), Error> {
        match self {
            Manager::Sync(m) => {
                call(m, move |m| {
                    let issued = m.create(new)?;
                    let Loaded { session, .. } = m.load(issued.token())?;
                    Ok((session, issued))
                })
                .await
            }
            Manager::Async(m) => {
                guarded(async {
                    let issued = m.create(new).await?;
                    let Loaded { session, .. } = m.load(issued.token()).await?;
                    Ok((session, issued))
                })
                .await
            }
        }
    }

    /// Runs `write` on `session` and hands the copy back with its result
    /// (a conflict is an `Ok` with [`Error::Conflict`] inside: reload and
    /// retry); the outer `Err` only if the call itself failed (a panic, a
    /// cancelled task).
    ///
    /// # Example
    /// ```
    /// use std::sync::Arc;
    /// use latchkey::{MemoryStore, NewSession, StoreManager};
    /// use latchkey_adapter::{Manager, Write};
    ///
    /// #[tokio::main(flavor = "current_thread")]
    /// async fn main() -> Result<(), latchkey::Error> {
    ///     let manager = Manager::Sync(Arc::new(StoreManager::new(MemoryStore::new())));
    ///     let (session, _) = manager.create(NewSession::new()).await?;
    ///     let (session, result) = manager.write(Write::Login("alice".to_owned()), session).await?;
    ///     let issued = result?.expect("a log-in issues a new token");
    ///     assert_eq!(session.user(), Some("alice"));
    ///     assert!(manager.load(issued.token().to_owned()).await.is_ok());
    ///     Ok(())
    /// }
    /// ```
    pub async fn write(
        &self,
        write: Write,
        mut session: Session,
    ) -> Result<(Session, Result<Option<Issued>, Error>), Error> {
        match self {
            Manager::Sync(m) => {
                call(m, move |m| {
                    let result = write.run(m, &mut session);
                    Ok((session, result))
                })
                .await
            }
            Manager::Async(m) => {
                guarded(async {
                    let result = write.run_async(&**m, &mut session).await;
                    Ok((session, result))
                })
                .await
            }
        }
    }

    /// Runs `f`, which needs a synchronous manager (remember-me's log-in),
    /// where it may block: with a synchronous manager as its other calls
    /// run (in place, or on the blocking pool); with an async one on the
    /// blocking pool, the manager's futures driven there to their end by
    /// the current runtime's handle.
    ///
    /// # Example
    /// ```
    /// use std::sync::Arc;
    /// use latchkey::{AsyncStoreManager, MemoryStore, NewSession};
    /// use latchkey::store::asynchronous::PendingOnce;
    /// use latchkey_adapter::Manager;
    ///
    /// #[tokio::main(flavor = "current_thread")]
    /// async fn main() -> Result<(), latchkey::Error> {
    ///     // An async store (here a memory one whose calls yield once).
    ///     let store = PendingOnce::new(MemoryStore::new());
    ///     let manager = Manager::Async(Arc::new(AsyncStoreManager::new(store)));
    ///     // Code written against the synchronous trait, over the async manager.
    ///     let user = manager
    ///         .blocking(|m| {
    ///             let issued = m.create(NewSession::new())?;
    ///             Ok(m.load(issued.token())?.session.user().map(str::to_owned))
    ///         })
    ///         .await?;
    ///     assert_eq!(user, None);
    ///     Ok(())
    /// }
    /// ```
    pub async fn blocking<T, F>(&self, f: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&dyn SessionManager) -> Result<T, Error> + Send + 'static,
    {
        match self {
            Manager::Sync(m) => call(m, f).await,
            Manager::Async(m) => {
                let bridge = Bridge {
                    manager: Arc::clone(m),
                    runtime: tokio::runtime::Handle::current(),
                };
                off_the_executor(move || f(&bridge)).await
            }
        }
    }

    /// Runs `f`, a call of another store beside the manager's (remember-me's
    /// own store), where it may run: with a synchronous manager where that
    /// manager's calls run; with an async one in place if `may_block` is
    /// false, else on the blocking pool.
    ///
    /// # Example
    /// ```
    /// use std::sync::Arc;
    /// use latchkey::{AsyncStoreManager, MemoryStore};
    /// use latchkey::store::asynchronous::PendingOnce;
    /// use latchkey_adapter::Manager;
    ///
    /// #[tokio::main(flavor = "current_thread")]
    /// async fn main() -> Result<(), latchkey::Error> {
    ///     // An async store (here a memory one whose calls yield once).
    ///     let store = PendingOnce::new(MemoryStore::new());
    ///     let manager = Manager::Async(Arc::new(AsyncStoreManager::new(store)));
    ///     // A call that may block (a file or a socket): on the blocking pool.
    ///     let answer = manager.beside(true, || Ok(42)).await?;
    ///     assert_eq!(answer, 42);
    ///     Ok(())
    /// }
    /// ```
    pub async fn beside<T, F>(&self, may_block: bool, f: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T, Error> + Send + 'static,
    {
        match self {
            Manager::Sync(m) => call(m, move |_| f()).await,
            Manager::Async(_) if !may_block => catch_unwind(AssertUnwindSafe(f))
                .unwrap_or_else(|_| Err(backend_failure("a session manager call panicked"))),
            Manager::Async(_) => off_the_executor(f).await,
        }
    }
}

/// Runs `f` on tokio's blocking pool; a cancelled task is a backend
/// failure.
async fn off_the_executor<T, F>(f: F) -> Result<T, Error>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, Error> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(join) => Err(Error::Store(StoreError::Unavailable(Box::new(join)))),
    }
}

/// Polls a manager's future, a panic in it answered as [`call`] answers
/// one: a backend failure (503), not a rejection.
async fn guarded<T>(future: impl Future<Output = Result<T, Error>>) -> Result<T, Error> {
    let mut future = std::pin::pin!(future);
    std::future::poll_fn(move |cx: &mut Context<'_>| {
        match catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx))) {
            Ok(poll) => poll,
            Err(_) => Poll::Ready(Err(backend_failure("a session manager call panicked"))),
        }
    })
    .await
}

/// An async manager behind the synchronous trait, for remember-me's calls
/// on the blocking pool: each call driven to its end there by the
/// runtime's handle.
#[derive(Debug)]
struct Bridge {
    manager: Arc<dyn AsyncSessionManager>,
    runtime: tokio::runtime::Handle,
}

impl Bridge {
    fn run<T>(&self, future: Pin<Box<dyn Future<Output = T> + Send + '_>>) -> T {
        self.runtime.block_on(future)
    }
}

impl SessionManager for Bridge {
    fn create(&self, new: NewSession) -> Result<Issued, Error> {
        self.run(self.manager.create(new))
    }
    fn load(&self, token: &str) -> Result<Loaded, Error> {
        self.run(self.manager.load(token))
    }
    fn save(&self, session: &mut Session) -> Result<Option<Issued>, Error> {
        self.run(self.manager.save(session))
    }
    fn rotate(&self, session: &mut Session) -> Result<Issued, Error> {
        self.run(self.manager.rotate(session))
    }
    fn change_privilege(&self, session: &mut Session) -> Result<Issued, Error> {
        self.run(self.manager.change_privilege(session))
    }
    fn login(&self, session: &mut Session, user: &str) -> Result<Issued, Error> {
        self.run(self.manager.login(session, user))
    }
    fn reauthenticate(&self, session: &mut Session) -> Result<Issued, Error> {
        self.run(self.manager.reauthenticate(session))
    }
    fn require_recent_auth(&self, session: &Session, max_age: Duration) -> Result<(), Error> {
        self.manager.require_recent_auth(session, max_age)
    }
    fn terminate(&self, session: &Session) -> Result<(), Error> {
        self.run(self.manager.terminate(session))
    }
    fn terminate_all(&self, user: &str, except: Option<&Session>) -> Result<Option<usize>, Error> {
        self.run(self.manager.terminate_all(user, except))
    }
}

/// Runs `f` against `manager`: in place when the manager says its calls
/// cannot block ([`SessionManager::may_block`] is false: a memory store,
/// tickets without a revocation store), which saves a thread hop per
/// call; otherwise on tokio's blocking pool, so a disk or network round
/// trip never holds up an executor thread and the other requests on it.
///
/// A call that panics, or a blocking task that is cancelled (the runtime
/// shutting down), is a backend failure (503): the session itself may be
/// fine, and a rejection would clear the cookie. Both paths treat a panic
/// the same way, so the answer does not depend on the store.
async fn call<T, F>(manager: &Arc<dyn SessionManager>, f: F) -> Result<T, Error>
where
    T: Send + 'static,
    F: FnOnce(&dyn SessionManager) -> Result<T, Error> + Send + 'static,
{
    if !manager.may_block() {
        // The manager is shared and immutable through `&self`; a panic in
        // it is a bug there, and the blocking path below goes on using the
        // manager after one too.
        return catch_unwind(AssertUnwindSafe(|| f(&**manager)))
            .unwrap_or_else(|_| Err(backend_failure("a session manager call panicked")));
    }
    let manager = Arc::clone(manager);
    off_the_executor(move || f(&*manager)).await
}

fn backend_failure(what: &'static str) -> Error {
    Error::Store(StoreError::Unavailable(what.into()))
}

/// The most [`backoff`] waits before the `attempt`-th retry (1-based): 1 ms,
/// doubling, at most 32 ms (as the core's `update` waits). Attempt 0 counts
/// as 1.
///
/// # Example
/// ```
/// use std::time::Duration;
/// use latchkey_adapter::backoff_ceiling;
/// assert_eq!(backoff_ceiling(1), Duration::from_millis(1));
/// assert_eq!(backoff_ceiling(3), Duration::from_millis(4));
/// assert_eq!(backoff_ceiling(12), Duration::from_millis(32));
/// ```
#[must_use]
pub fn backoff_ceiling(attempt: u32) -> Duration {
    Duration::from_millis(1 << attempt.clamp(1, 6).saturating_sub(1))
}

/// Waits a random time up to [`backoff_ceiling`] ("full jitter"), before
/// the `attempt`-th retry of a write that conflicted.
///
/// Requests that conflicted on one session were released together; retried
/// at once they collide again, and the round trip to a networked store is
/// long enough that they keep doing so: immediate retries made 60% of 64
/// concurrent requests on one session fail against Redis in a measurement.
/// Spreading the retries out lets each reload see the others' writes.
///
/// # Example
/// ```
/// use latchkey_adapter::{DEFAULT_MAX_ATTEMPTS, backoff};
///
/// #[tokio::main(flavor = "current_thread")]
/// async fn main() {
///     let mut attempt = 1;
///     // A write that conflicts twice, then lands.
///     let mut conflicts = 2;
///     while conflicts > 0 && attempt < DEFAULT_MAX_ATTEMPTS {
///         conflicts -= 1;
///         backoff(attempt).await;
///         attempt += 1;
///     }
///     assert_eq!(attempt, 3);
/// }
/// ```
pub async fn backoff(attempt: u32) {
    let ceiling = u64::try_from(backoff_ceiling(attempt).as_micros()).unwrap_or(u64::MAX);
    let wait = jitter() % ceiling.saturating_add(1);
    tokio::time::sleep(Duration::from_micros(wait)).await;
}

/// A fresh pseudo-random number, from the standard library's randomly keyed
/// hasher (a new key per call). Jitter needs spread, not secrecy, so this
/// saves a dependency on `rand`.
fn jitter() -> u64 {
    RandomState::new().build_hasher().finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_ceiling_doubles_and_stays_short() {
        let ms: Vec<u128> = (1..=8).map(|a| backoff_ceiling(a).as_millis()).collect();
        assert_eq!(ms, [1, 2, 4, 8, 16, 32, 32, 32]);
        assert_eq!(backoff_ceiling(0).as_millis(), 1);
    }

    #[test]
    fn jitter_varies() {
        let draws: std::collections::HashSet<u64> = (0..16).map(|_| jitter()).collect();
        assert!(draws.len() > 1, "{draws:?}");
    }
}
