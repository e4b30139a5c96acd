//! The asynchronous store trait (feature `async`): the same contract as
//! [`Store`](crate::Store), method for method, with futures. No runtime is
//! named: the futures are plain `Future + Send`, so the core's `async`
//! feature adds no dependency.

use std::fmt;
use std::future::Future;

use crate::clock::Timestamp;
use crate::id::StoreKey;
use crate::store::{Record, RecordState, StoreError};

/// A session store with asynchronous calls: the [`Store`](crate::Store)
/// contract, method for method, each returning a `Send` future. Every
/// rule of that contract (versioned writes, `insert` failing on an
/// existing key, a rotation never leaving the successor beside a live
/// `old`, errors and never panics) holds here unchanged.
///
/// # Example
/// ```
/// use latchkey::AsyncStore;
///
/// // Generic code over any async store.
/// async fn is_there(store: &impl AsyncStore, key: &latchkey::StoreKey) -> bool {
///     matches!(store.get(key).await, Ok(Some(_)))
/// }
/// ```
pub trait AsyncStore: fmt::Debug + Send + Sync {
    /// As [`Store::insert`](crate::Store::insert).
    fn insert(
        &self,
        key: &StoreKey,
        record: &Record,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// As [`Store::get`](crate::Store::get).
    fn get(
        &self,
        key: &StoreKey,
    ) -> impl Future<Output = Result<Option<Record>, StoreError>> + Send;
    /// As [`Store::replace`](crate::Store::replace).
    fn replace(
        &self,
        key: &StoreKey,
        expected: u64,
        record: &Record,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// As [`Store::touch`](crate::Store::touch).
    fn touch(
        &self,
        key: &StoreKey,
        last_seen: Timestamp,
        expires_at: Timestamp,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Provided: the same single-key protocol as `Store::rotate`'s default
    /// (replace old with the retired record carrying `pending`, insert new,
    /// check old still stands); atomic stores override it.
    fn rotate(
        &self,
        old: &StoreKey,
        expected: u64,
        retired: &Record,
        new: &StoreKey,
        record: &Record,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        async move {
            match self.get(old).await? {
                None => return Err(StoreError::NotFound),
                Some(r) if r.version != expected => return Err(StoreError::Conflict),
                Some(_) => {}
            }
            if self.get(new).await?.is_some() {
                return Err(StoreError::Exists);
            }
            let mut intent = retired.clone();
            if let RecordState::Rotated { pending, .. } = &mut intent.state {
                *pending = Some(Box::new(record.clone()));
            }
            self.replace(old, expected, &intent).await?;
            // From here on `old` stays retired with its successor pending,
            // as after a crash (see `Store::rotate`).
            match self.insert(new, record).await {
                Ok(()) | Err(StoreError::Exists) => {}
                Err(e) => return Err(e),
            }
            let stands = self
                .get(old)
                .await?
                .is_some_and(|r| r.version == intent.version);
            if stands {
                Ok(())
            } else {
                self.remove(new).await?;
                Err(StoreError::Conflict)
            }
        }
    }
    /// As [`Store::remove`](crate::Store::remove).
    fn remove(&self, key: &StoreKey) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// As [`Store::sessions_of`](crate::Store::sessions_of).
    fn sessions_of(
        &self,
        user: &str,
    ) -> impl Future<Output = Result<Vec<(StoreKey, Record)>, StoreError>> + Send;
    /// As [`Store::purge_expired`](crate::Store::purge_expired).
    fn purge_expired(
        &self,
        now: Timestamp,
    ) -> impl Future<Output = Result<usize, StoreError>> + Send;
}
