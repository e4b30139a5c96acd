//! The asynchronous store trait (feature `async`): the same contract as
//! [`Store`](crate::Store), method for method, with futures. No runtime is
//! named: the futures are plain `Future + Send`, so the core's `async`
//! feature adds no dependency.
//!
//! An [`AsyncStoreManager`](crate::AsyncStoreManager) runs the lifecycle
//! of [`crate::lifecycle`] over it: the same code as
//! [`StoreManager`](crate::StoreManager)'s, awaited (see the crate docs,
//! "Sync or async").
//!
//! # Implementing an async store
//!
//! A store over a network client awaits its client in each method. This
//! one keeps records in memory behind a lock, which is all a test needs
//! (and all [`PendingOnce`], behind `test-util`, adds to a
//! [`Store`](crate::Store) is a yield):
//!
//! ```
//! use std::collections::HashMap;
//! use std::future::Future;
//! use parking_lot::Mutex;
//! use latchkey::{AsyncStore, StoreError, StoreKey, Timestamp};
//! use latchkey::store::Record;
//!
//! #[derive(Debug, Default)]
//! struct Simple(Mutex<HashMap<StoreKey, Record>>);
//!
//! impl AsyncStore for Simple {
//!     async fn insert(&self, key: &StoreKey, record: &Record) -> Result<(), StoreError> {
//!         let mut m = self.0.lock();
//!         if m.contains_key(key) {
//!             return Err(StoreError::Exists);
//!         }
//!         m.insert(*key, record.clone());
//!         Ok(())
//!     }
//!     async fn get(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
//!         Ok(self.0.lock().get(key).cloned())
//!     }
//!     async fn replace(&self, key: &StoreKey, expected: u64, record: &Record) -> Result<(), StoreError> {
//!         match self.0.lock().get_mut(key) {
//!             None => Err(StoreError::NotFound),
//!             Some(r) if r.version != expected => Err(StoreError::Conflict),
//!             Some(r) => { *r = record.clone(); Ok(()) }
//!         }
//!     }
//!     async fn touch(&self, key: &StoreKey, last_seen: Timestamp, expires_at: Timestamp) -> Result<bool, StoreError> {
//!         Ok(self.0.lock().get_mut(key).is_some_and(|r| r.touch(last_seen, expires_at)))
//!     }
//!     async fn remove(&self, key: &StoreKey) -> Result<bool, StoreError> {
//!         Ok(self.0.lock().remove(key).is_some())
//!     }
//!     async fn sessions_of(&self, user: &str) -> Result<Vec<(StoreKey, Record)>, StoreError> {
//!         Ok(self.0.lock().iter()
//!             .filter(|(_, r)| r.user() == Some(user))
//!             .map(|(k, r)| (*k, r.clone()))
//!             .collect())
//!     }
//!     async fn purge_expired(&self, now: Timestamp) -> Result<usize, StoreError> {
//!         let mut m = self.0.lock();
//!         let before = m.len();
//!         m.retain(|_, r| r.expires_at > now);
//!         Ok(before - m.len())
//!     }
//!     // `rotate` is provided: single-key writes, crash-safe (see `Store::rotate`).
//! }
//!
//! # use latchkey::{AsyncStoreManager, NewSession};
//! # fn block_on<F: Future>(f: F) -> F::Output {
//! #     let mut f = std::pin::pin!(f);
//! #     let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
//! #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; } }
//! # }
//! block_on(async {
//!     let manager = AsyncStoreManager::new(Simple::default());
//!     let issued = manager.create(NewSession::new()).await?;
//!     assert!(manager.load(issued.token()).await.is_ok());
//!     Ok::<(), latchkey::Error>(())
//! })?;
//! # Ok::<(), latchkey::Error>(())
//! ```
//!
//! An `async fn` in the impl satisfies the trait when its future is
//! `Send`: hold no lock guard across an `.await` (the ones above are
//! dropped before the function returns, and nothing is awaited).

use std::fmt;
use std::future::Future;
use std::time::Duration;

use crate::clock::Timestamp;
use crate::id::StoreKey;
use crate::store::driver::{self, Driver};
use crate::store::{Record, StoreError};

/// A session store whose calls are futures: the contract of
/// [`Store`](crate::Store) (read its "Contract" section; it holds here
/// word for word), for stores whose client is asynchronous.
///
/// The trait is not object-safe (its methods return `impl Future`); a
/// framework holds the manager instead, as an
/// `Arc<dyn AsyncSessionManager>` ([`crate::AsyncSessionManager`]).
///
/// # Example
/// ```
/// use latchkey::{AsyncStore, AsyncStoreManager, MemoryStore, NewSession};
/// use latchkey::store::asynchronous::PendingOnce;
/// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     let mut f = std::pin::pin!(f);
/// #     let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
/// #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; } }
/// # }
/// // Any async store; here a memory store whose every call yields once.
/// let store = PendingOnce::new(MemoryStore::new());
/// let manager = AsyncStoreManager::new(store);
/// block_on(async {
///     let issued = manager.create(NewSession::new().with_user("alice")).await?;
///     assert_eq!(manager.store().sessions_of("alice").await?.len(), 1);
///     Ok::<(), latchkey::Error>(())
/// })?;
/// # Ok::<(), latchkey::Error>(())
/// ```
pub trait AsyncStore: fmt::Debug + Send + Sync {
    /// Adds a record under a new key.
    ///
    /// # Errors
    /// [`StoreError::Exists`] if the key has a record; [`StoreError::Full`]
    /// at capacity; backend errors.
    fn insert(
        &self,
        key: &StoreKey,
        record: &Record,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The record under `key`, if any.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] if it cannot be decoded; backend errors.
    fn get(
        &self,
        key: &StoreKey,
    ) -> impl Future<Output = Result<Option<Record>, StoreError>> + Send;

    /// Replaces the record under `key` if its version is `expected`.
    ///
    /// # Errors
    /// [`StoreError::Conflict`], [`StoreError::NotFound`], backend errors.
    fn replace(
        &self,
        key: &StoreKey,
        expected: u64,
        record: &Record,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

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
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Provided: the same single-key protocol as `Store::rotate`'s default
    /// (replace old with the retired record carrying `pending`, insert new,
    /// check old still stands); atomic stores override it.
    ///
    /// The protocol and its crash argument are [`Store::rotate`](crate::Store::rotate)'s,
    /// and the code is the same: both run one async implementation.
    ///
    /// # Errors
    /// As for [`Store::rotate`](crate::Store::rotate).
    fn rotate(
        &self,
        old: &StoreKey,
        expected: u64,
        retired: &Record,
        new: &StoreKey,
        record: &Record,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        async move {
            driver::rotate_by_single_writes(
                &Awaited::new(self),
                old,
                expected,
                retired,
                new,
                record,
            )
            .await
        }
    }

    /// Deletes the record under `key`; returns whether there was one.
    ///
    /// # Errors
    /// Backend errors.
    fn remove(&self, key: &StoreKey) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The live records bound to `user`.
    ///
    /// # Errors
    /// Backend errors.
    fn sessions_of(
        &self,
        user: &str,
    ) -> impl Future<Output = Result<Vec<(StoreKey, Record)>, StoreError>> + Send;

    /// Deletes every record with `expires_at <= now`; returns how many.
    ///
    /// # Errors
    /// Backend errors.
    fn purge_expired(
        &self,
        now: Timestamp,
    ) -> impl Future<Output = Result<usize, StoreError>> + Send;
}

/// The waits between retries of a conflicting `update`: a function from
/// a duration to a future that completes after it (`tokio::time::sleep`).
pub(crate) type Sleep =
    std::sync::Arc<dyn Fn(Duration) -> crate::manager::BoxFuture<'static, ()> + Send + Sync>;

/// An [`AsyncStore`] as a [`Driver`]: every call awaited; the pause
/// between retries is the caller's sleep, or a yield without one.
pub(crate) struct Awaited<S> {
    pub(crate) store: S,
    pub(crate) sleep: Option<Sleep>,
}

impl<S> Awaited<S> {
    pub(crate) fn new(store: S) -> Awaited<S> {
        Awaited { store, sleep: None }
    }
}

impl<S: fmt::Debug> fmt::Debug for Awaited<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Awaited")
            .field("store", &self.store)
            .field("sleep", &self.sleep.as_ref().map(|_| "caller's"))
            .finish()
    }
}

impl<S: AsyncStore + ?Sized> AsyncStore for &S {
    fn insert(
        &self,
        key: &StoreKey,
        record: &Record,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).insert(key, record)
    }
    fn get(
        &self,
        key: &StoreKey,
    ) -> impl Future<Output = Result<Option<Record>, StoreError>> + Send {
        (**self).get(key)
    }
    fn replace(
        &self,
        key: &StoreKey,
        expected: u64,
        record: &Record,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).replace(key, expected, record)
    }
    fn touch(
        &self,
        key: &StoreKey,
        last_seen: Timestamp,
        expires_at: Timestamp,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        (**self).touch(key, last_seen, expires_at)
    }
    fn rotate(
        &self,
        old: &StoreKey,
        expected: u64,
        retired: &Record,
        new: &StoreKey,
        record: &Record,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).rotate(old, expected, retired, new, record)
    }
    fn remove(&self, key: &StoreKey) -> impl Future<Output = Result<bool, StoreError>> + Send {
        (**self).remove(key)
    }
    fn sessions_of(
        &self,
        user: &str,
    ) -> impl Future<Output = Result<Vec<(StoreKey, Record)>, StoreError>> + Send {
        (**self).sessions_of(user)
    }
    fn purge_expired(
        &self,
        now: Timestamp,
    ) -> impl Future<Output = Result<usize, StoreError>> + Send {
        (**self).purge_expired(now)
    }
}

impl<S: AsyncStore> Driver for Awaited<S> {
    fn insert(
        &self,
        key: &StoreKey,
        record: &Record,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.store.insert(key, record)
    }
    fn get(
        &self,
        key: &StoreKey,
    ) -> impl Future<Output = Result<Option<Record>, StoreError>> + Send {
        self.store.get(key)
    }
    fn replace(
        &self,
        key: &StoreKey,
        expected: u64,
        record: &Record,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.store.replace(key, expected, record)
    }
    fn touch(
        &self,
        key: &StoreKey,
        last_seen: Timestamp,
        expires_at: Timestamp,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        self.store.touch(key, last_seen, expires_at)
    }
    fn rotate(
        &self,
        old: &StoreKey,
        expected: u64,
        retired: &Record,
        new: &StoreKey,
        record: &Record,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.store.rotate(old, expected, retired, new, record)
    }
    fn remove(&self, key: &StoreKey) -> impl Future<Output = Result<bool, StoreError>> + Send {
        self.store.remove(key)
    }
    fn sessions_of(
        &self,
        user: &str,
    ) -> impl Future<Output = Result<Vec<(StoreKey, Record)>, StoreError>> + Send {
        self.store.sessions_of(user)
    }
    fn purge_expired(
        &self,
        now: Timestamp,
    ) -> impl Future<Output = Result<usize, StoreError>> + Send {
        self.store.purge_expired(now)
    }

    /// The caller's sleep; without one, a yield to the executor, as many
    /// times as a millisecond of the delay asks (at least once): other
    /// tasks run, and the retry sees their writes, with no timer in the
    /// core.
    fn pause(&self, delay: Duration) -> impl Future<Output = ()> + Send {
        let sleep = self.sleep.as_ref().map(|sleep| sleep(delay));
        async move {
            match sleep {
                Some(sleep) => sleep.await,
                None => {
                    let yields = delay.as_millis().clamp(1, 32);
                    for _ in 0..yields {
                        YieldNow(false).await;
                    }
                }
            }
        }
    }
}

/// Returns `Pending` once, waking its task at once: lets the executor run
/// others first.
struct YieldNow(bool);

impl Future for YieldNow {
    type Output = ();
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if self.0 {
            return std::task::Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    }
}

#[cfg(feature = "test-util")]
pub use self::testing::{PendingOnce, block_on};

#[cfg(feature = "test-util")]
mod testing {
    use super::*;
    use crate::store::Store;

    /// Test support (feature `test-util`): an [`AsyncStore`] over any
    /// synchronous [`Store`] whose every call returns `Pending` once (and
    /// wakes its task) before it runs, so the manager's awaits really
    /// suspend and concurrent operations interleave between store calls,
    /// as over a network store.
    ///
    /// # Example
    /// ```
    /// use latchkey::{AsyncStore, MemoryStore, NewSession, StoreManager, SessionManager};
    /// use latchkey::store::asynchronous::{PendingOnce, block_on};
    /// let store = PendingOnce::new(MemoryStore::new());
    /// let key = latchkey::SessionId::generate().store_key();
    /// assert!(block_on(store.get(&key))?.is_none());
    /// # Ok::<(), latchkey::StoreError>(())
    /// ```
    #[derive(Debug)]
    pub struct PendingOnce<S> {
        inner: S,
    }

    impl<S: Store> PendingOnce<S> {
        /// Wraps `store`.
        ///
        /// # Example
        /// ```
        /// use latchkey::MemoryStore;
        /// use latchkey::store::asynchronous::PendingOnce;
        /// let store = PendingOnce::new(MemoryStore::new());
        /// assert!(store.inner().is_empty());
        /// ```
        pub fn new(inner: S) -> PendingOnce<S> {
            PendingOnce { inner }
        }

        /// The wrapped store.
        ///
        /// # Example
        /// ```
        /// use latchkey::MemoryStore;
        /// use latchkey::store::asynchronous::PendingOnce;
        /// assert!(PendingOnce::new(MemoryStore::new()).inner().is_empty());
        /// ```
        pub fn inner(&self) -> &S {
            &self.inner
        }
    }

    impl<S: Store> AsyncStore for PendingOnce<S> {
        async fn insert(&self, key: &StoreKey, record: &Record) -> Result<(), StoreError> {
            YieldNow(false).await;
            self.inner.insert(key, record)
        }
        async fn get(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
            YieldNow(false).await;
            self.inner.get(key)
        }
        async fn replace(
            &self,
            key: &StoreKey,
            expected: u64,
            record: &Record,
        ) -> Result<(), StoreError> {
            YieldNow(false).await;
            self.inner.replace(key, expected, record)
        }
        async fn touch(
            &self,
            key: &StoreKey,
            last_seen: Timestamp,
            expires_at: Timestamp,
        ) -> Result<bool, StoreError> {
            YieldNow(false).await;
            self.inner.touch(key, last_seen, expires_at)
        }
        /// The inner store's own `rotate` (atomic for a memory store),
        /// after the yield.
        async fn rotate(
            &self,
            old: &StoreKey,
            expected: u64,
            retired: &Record,
            new: &StoreKey,
            record: &Record,
        ) -> Result<(), StoreError> {
            YieldNow(false).await;
            self.inner.rotate(old, expected, retired, new, record)
        }
        async fn remove(&self, key: &StoreKey) -> Result<bool, StoreError> {
            YieldNow(false).await;
            self.inner.remove(key)
        }
        async fn sessions_of(&self, user: &str) -> Result<Vec<(StoreKey, Record)>, StoreError> {
            YieldNow(false).await;
            self.inner.sessions_of(user)
        }
        async fn purge_expired(&self, now: Timestamp) -> Result<usize, StoreError> {
            YieldNow(false).await;
            self.inner.purge_expired(now)
        }
    }

    /// Test support (feature `test-util`): runs `future` to completion on
    /// the calling thread, parking it while the future is pending (a
    /// minimal executor; no runtime).
    ///
    /// # Example
    /// ```
    /// use latchkey::store::asynchronous::block_on;
    /// assert_eq!(block_on(async { 1 + 1 }), 2);
    /// ```
    pub fn block_on<F: Future>(future: F) -> F::Output {
        use std::sync::Arc;
        use std::task::{Context, Poll, Wake, Waker};

        struct Unpark(std::thread::Thread);
        impl Wake for Unpark {
            fn wake(self: Arc<Self>) {
                self.0.unpark();
            }
            fn wake_by_ref(self: &Arc<Self>) {
                self.0.unpark();
            }
        }

        let mut future = std::pin::pin!(future);
        let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
        let mut cx = Context::from_waker(&waker);
        loop {
            if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
                return out;
            }
            std::thread::park();
        }
    }
}
