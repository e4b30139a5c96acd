//! A store's operations as futures: one interface over a synchronous
//! [`Store`], whose futures are ready when they are made, and (feature
//! `async`) over an [`AsyncStore`](crate::AsyncStore), whose futures are
//! awaited. The manager's lifecycle (`manager::engine`) and the single-key
//! rotation protocol are written once against it: the synchronous
//! [`StoreManager`](crate::StoreManager) polls them once, the asynchronous
//! manager awaits them.

use std::future::{Future, ready};
use std::pin::{Pin, pin};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crate::clock::Timestamp;
use crate::id::StoreKey;
use crate::store::{LiveRef, Peek, Record, RecordState, Store, StoreError};

/// The store operations the manager's lifecycle needs, as futures, plus the
/// pause between retries of a conflict.
pub(crate) trait Driver: Send + Sync {
    fn insert(
        &self,
        key: &StoreKey,
        record: &Record,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn get(
        &self,
        key: &StoreKey,
    ) -> impl Future<Output = Result<Option<Record>, StoreError>> + Send;

    fn replace(
        &self,
        key: &StoreKey,
        expected: u64,
        record: &Record,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn touch(
        &self,
        key: &StoreKey,
        last_seen: Timestamp,
        expires_at: Timestamp,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    fn rotate(
        &self,
        old: &StoreKey,
        expected: u64,
        retired: &Record,
        new: &StoreKey,
        record: &Record,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn remove(&self, key: &StoreKey) -> impl Future<Output = Result<bool, StoreError>> + Send;

    fn sessions_of(
        &self,
        user: &str,
    ) -> impl Future<Output = Result<Vec<(StoreKey, Record)>, StoreError>> + Send;

    fn purge_expired(
        &self,
        now: Timestamp,
    ) -> impl Future<Output = Result<usize, StoreError>> + Send;

    /// [`Store::peek`]: shows the record under `key` to `f`. The default
    /// gets a copy and shows that.
    fn peek<R, F>(&self, key: &StoreKey, f: F) -> impl Future<Output = R> + Send
    where
        R: Send,
        F: FnOnce(Result<Peek<'_>, StoreError>) -> R + Send,
    {
        async move {
            match self.get(key).await {
                Ok(record) => f(Ok(shown(record.as_ref()))),
                Err(e) => f(Err(e)),
            }
        }
    }

    /// Waits `delay` before a retry (a backoff): the sync driver sleeps
    /// the thread, the async one awaits its timer.
    fn pause(&self, delay: Duration) -> impl Future<Output = ()> + Send;
}

/// What [`Store::peek`] shows of a copied-out record.
#[inline]
pub(crate) fn shown(record: Option<&Record>) -> Peek<'_> {
    match record {
        None => Peek::Missing,
        Some(Record {
            version,
            state: RecordState::Live(live),
            ..
        }) => Peek::Live(LiveRef::new(*version, live)),
        Some(_) => Peek::NotLive,
    }
}

/// A synchronous [`Store`] as a [`Driver`]: each call runs when it is
/// made, and its future is ready.
#[derive(Debug)]
pub(crate) struct Ready<S>(pub(crate) S);

impl<S: Store> Driver for Ready<S> {
    #[inline]
    fn insert(
        &self,
        key: &StoreKey,
        record: &Record,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        ready(self.0.insert(key, record))
    }

    #[inline]
    fn get(
        &self,
        key: &StoreKey,
    ) -> impl Future<Output = Result<Option<Record>, StoreError>> + Send {
        ready(self.0.get(key))
    }

    #[inline]
    fn replace(
        &self,
        key: &StoreKey,
        expected: u64,
        record: &Record,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        ready(self.0.replace(key, expected, record))
    }

    #[inline]
    fn touch(
        &self,
        key: &StoreKey,
        last_seen: Timestamp,
        expires_at: Timestamp,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        ready(self.0.touch(key, last_seen, expires_at))
    }

    #[inline]
    fn rotate(
        &self,
        old: &StoreKey,
        expected: u64,
        retired: &Record,
        new: &StoreKey,
        record: &Record,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        ready(self.0.rotate(old, expected, retired, new, record))
    }

    #[inline]
    fn remove(&self, key: &StoreKey) -> impl Future<Output = Result<bool, StoreError>> + Send {
        ready(self.0.remove(key))
    }

    #[inline]
    fn sessions_of(
        &self,
        user: &str,
    ) -> impl Future<Output = Result<Vec<(StoreKey, Record)>, StoreError>> + Send {
        ready(self.0.sessions_of(user))
    }

    #[inline]
    fn purge_expired(
        &self,
        now: Timestamp,
    ) -> impl Future<Output = Result<usize, StoreError>> + Send {
        ready(self.0.purge_expired(now))
    }

    /// The store's own `peek`: a memory store shows the record in place.
    #[inline]
    fn peek<R, F>(&self, key: &StoreKey, f: F) -> impl Future<Output = R> + Send
    where
        R: Send,
        F: FnOnce(Result<Peek<'_>, StoreError>) -> R + Send,
    {
        ready(self.0.peek(key, f))
    }

    fn pause(&self, delay: Duration) -> impl Future<Output = ()> + Send {
        std::thread::sleep(delay);
        ready(())
    }
}

/// Runs a future made of a synchronous driver's calls: one poll, which
/// completes it, as every future it awaits is ready. `None` if it did not
/// complete (a driver that is not synchronous): the caller turns that into
/// a typed error, never a panic.
#[inline]
pub(crate) fn now_or_never<F: Future>(future: F) -> Option<F::Output> {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(out) => Some(out),
        Poll::Pending => None,
    }
}

/// [`now_or_never`] for a future pinned where it was made (`pin!` at the
/// call): a future of the lifecycle is large (a kilobyte or two, for the
/// rare paths it may take), and a move into a function argument copies
/// all of it.
#[inline]
pub(crate) fn poll_once<F: Future + ?Sized>(future: Pin<&mut F>) -> Option<F::Output> {
    match future.poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => Some(out),
        Poll::Pending => None,
    }
}

/// The error for a synchronous run that did not complete in one poll.
pub(crate) fn not_ready() -> StoreError {
    StoreError::Unavailable("a synchronous store call did not complete when made".into())
}

/// [`Store::rotate`]'s provided protocol, made of single-key writes, for
/// both kinds of store (the rules are in [`crate::lifecycle`]).
pub(crate) async fn rotate_by_single_writes<D: Driver + ?Sized>(
    store: &D,
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
    match store.get(old).await? {
        None => return Err(StoreError::NotFound),
        Some(r) if r.version != expected => return Err(StoreError::Conflict),
        Some(_) => {}
    }
    if store.get(new).await?.is_some() {
        return Err(StoreError::Exists);
    }
    let mut intent = retired.clone();
    if let RecordState::Rotated { pending, .. } = &mut intent.state {
        *pending = Some(Box::new(record.clone()));
    }
    store.replace(old, expected, &intent).await?;
    // On an error from here on `old` stays retired with its successor
    // pending, as after a crash: putting `old` back live could race a
    // load that rolled the rotation forward and leave two live records.
    if complete_rotation(store, old, intent.version, new, record).await? {
        Ok(())
    } else {
        Err(StoreError::Conflict)
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
pub(crate) async fn complete_rotation<D: Driver + ?Sized>(
    store: &D,
    old: &StoreKey,
    retired_version: u64,
    new: &StoreKey,
    record: &Record,
) -> Result<bool, StoreError> {
    match store.insert(new, record).await {
        Ok(()) | Err(StoreError::Exists) => {}
        Err(e) => return Err(e),
    }
    let stands = store
        .get(old)
        .await?
        .is_some_and(|r| r.version == retired_version);
    if !stands {
        store.remove(new).await?;
    }
    Ok(stands)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Poll;

    #[test]
    fn a_future_that_never_completes_is_none_not_a_hang() {
        assert_eq!(now_or_never(std::future::pending::<u8>()), None);
        assert_eq!(now_or_never(async { 7 }), Some(7));
        // Pending once: the sync run does not poll again.
        let mut once = false;
        let f = std::future::poll_fn(move |_| {
            if once {
                Poll::Ready(1)
            } else {
                once = true;
                Poll::Pending
            }
        });
        assert_eq!(now_or_never(f), None);
    }
}
