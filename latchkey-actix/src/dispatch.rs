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

use actix_web::rt::{task, time};
use latchkey::{
    AsyncSessionManager, Error, Issued, Loaded, NewSession, Session, SessionManager, StoreError,
};

/// The middleware's manager: a synchronous one, called in place or on the
/// blocking pool ([`call`]), or an async one, whose calls are awaited in
/// place on the worker.
#[derive(Clone)]
pub(crate) enum Manager {
    Sync(Arc<dyn SessionManager>),
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

/// A write the handle retries on a conflict ([`Manager::write`]).
#[derive(Clone, Debug)]
pub(crate) enum Write {
    Save,
    Rotate,
    ChangePrivilege,
    Login(String),
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
    pub(crate) async fn load(&self, token: String) -> Result<Loaded, Error> {
        match self {
            Manager::Sync(m) => call(m, move |m| m.load(&token)).await,
            Manager::Async(m) => guarded(m.load(&token)).await,
        }
    }

    /// [`SessionManager::terminate`].
    pub(crate) async fn terminate(&self, session: Session) -> Result<(), Error> {
        match self {
            Manager::Sync(m) => call(m, move |m| m.terminate(&session)).await,
            Manager::Async(m) => guarded(m.terminate(&session)).await,
        }
    }

    /// [`SessionManager::require_recent_auth`].
    pub(crate) async fn require_recent_auth(
        &self,
        session: Session,
        max_age: Duration,
    ) -> Result<(), Error> {
        match self {
            Manager::Sync(m) => call(m, move |m| m.require_recent_auth(&session, max_age)).await,
            // No I/O: it reads the session's authentication time.
            Manager::Async(m) => catch_unwind(AssertUnwindSafe(|| {
                m.require_recent_auth(&session, max_age)
            }))
            .unwrap_or_else(|_| Err(backend_failure("a session manager call panicked"))),
        }
    }

    /// Creates a session from `new` and loads it.
    pub(crate) async fn create(&self, new: NewSession) -> Result<(Session, Issued), Error> {
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

    /// Runs `write` on `session` and hands the copy back with its result;
    /// `Err` only if the call itself failed (a panic, a cancelled task).
    pub(crate) async fn write(
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
    /// where it may block: with a synchronous manager as [`call`] does;
    /// with an async one on the blocking pool, the manager's futures
    /// driven there by the worker's runtime handle.
    pub(crate) async fn blocking<T, F>(&self, f: F) -> Result<T, Error>
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
                off_the_worker(move || f(&bridge)).await
            }
        }
    }

    /// Runs `f`, a call of remember-me's own store, beside the manager's:
    /// with a synchronous manager where its calls run ([`call`]); with an
    /// async one in place if `may_block` is false, else on the blocking
    /// pool.
    pub(crate) async fn beside<T, F>(&self, may_block: bool, f: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T, Error> + Send + 'static,
    {
        match self {
            Manager::Sync(m) => call(m, move |_| f()).await,
            Manager::Async(_) if !may_block => catch_unwind(AssertUnwindSafe(f))
                .unwrap_or_else(|_| Err(backend_failure("a session manager call panicked"))),
            Manager::Async(_) => off_the_worker(f).await,
        }
    }
}

/// Runs `f` on the blocking pool; a panic or a cancelled task is a backend
/// failure (the join error says which).
async fn off_the_worker<T, F>(f: F) -> Result<T, Error>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, Error> + Send + 'static,
{
    match task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(join) => Err(Error::Store(StoreError::Unavailable(Box::new(join)))),
    }
}

/// Polls a manager's future on the worker, a panic in it answered as
/// [`call`] answers one: a backend failure (503), not a rejection.
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

/// An async manager behind the synchronous trait, for remember-me's log-in
/// on the blocking pool: each call driven to its end there by the worker's
/// runtime handle (the worker thread drives the runtime's I/O meanwhile).
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
/// tickets without a revocation store), which saves a thread hop per call;
/// otherwise on the blocking pool, so a disk or network round trip never
/// holds up the worker thread and every other request it serves.
///
/// A call that panics, or a blocking task that is cancelled (the runtime
/// shutting down), is a backend failure (503): the session itself may be
/// fine, and a rejection would clear the cookie. Both paths treat a panic
/// alike, so the answer does not depend on the store.
pub(crate) async fn call<T, F>(manager: &Arc<dyn SessionManager>, f: F) -> Result<T, Error>
where
    T: Send + 'static,
    F: FnOnce(&dyn SessionManager) -> Result<T, Error> + Send + 'static,
{
    if !manager.may_block() {
        // The manager is shared and used through `&self` only; a panic in
        // it is its bug, and the blocking path goes on using it after one
        // too.
        return catch_unwind(AssertUnwindSafe(|| f(&**manager)))
            .unwrap_or_else(|_| Err(backend_failure("a session manager call panicked")));
    }
    let manager = Arc::clone(manager);
    off_the_worker(move || f(&*manager)).await
}

fn backend_failure(what: &'static str) -> Error {
    Error::Store(StoreError::Unavailable(what.into()))
}

/// The most a backoff waits before the `attempt`-th retry (1-based): 1 ms,
/// doubling, at most 32 ms (as the core's `update` waits).
pub(crate) fn backoff_ceiling(attempt: u32) -> Duration {
    Duration::from_millis(1 << attempt.clamp(1, 6).saturating_sub(1))
}

/// Waits a random time up to [`backoff_ceiling`] ("full jitter").
///
/// Requests that conflicted on one session were released together; retried
/// at once they collide again, and the round trip to a networked store is
/// long enough that they keep doing so: immediate retries made 60% of 64
/// concurrent requests on one session fail against Redis in a measurement.
/// Spreading the retries out lets each reload see the others' writes.
pub(crate) async fn backoff(attempt: u32) {
    let ceiling = u64::try_from(backoff_ceiling(attempt).as_micros()).unwrap_or(u64::MAX);
    let wait = jitter() % ceiling.saturating_add(1);
    time::sleep(Duration::from_micros(wait)).await;
}

/// A fresh pseudo-random number from the standard library's randomly keyed
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
    fn jitter_varies_between_draws() {
        let draws: std::collections::HashSet<u64> = (0..16).map(|_| jitter()).collect();
        assert!(draws.len() > 1, "{draws:?}");
    }
}
