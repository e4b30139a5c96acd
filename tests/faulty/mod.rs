//! A store wrapper that fails every write after the first few: what a
//! process that dies there (or a store that goes away) leaves behind.
//! Shared by the crash-point sweep and the interleaving check.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};

use latchkey::store::Record;
use latchkey::{Store, StoreError, StoreKey, Timestamp};

/// Fails every write after the first `limit` (counted from `arm`).
#[derive(Debug)]
pub struct Faulty<S> {
    inner: S,
    writes: AtomicUsize,
    limit: AtomicUsize,
}

impl<S: Store> Faulty<S> {
    pub fn new(inner: S) -> Faulty<S> {
        Faulty {
            inner,
            writes: AtomicUsize::new(0),
            limit: AtomicUsize::new(usize::MAX),
        }
    }
    /// From now on, the first `limit` writes land and the rest fail.
    pub fn arm(&self, limit: usize) {
        self.writes.store(0, Ordering::SeqCst);
        self.limit.store(limit, Ordering::SeqCst);
    }
    pub fn disarm(&self) -> usize {
        self.limit.store(usize::MAX, Ordering::SeqCst);
        self.writes.load(Ordering::SeqCst)
    }
    fn write(&self) -> Result<(), StoreError> {
        let n = self.writes.fetch_add(1, Ordering::SeqCst);
        if n >= self.limit.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable(
                "injected: the process died here".into(),
            ));
        }
        Ok(())
    }
}

// No `rotate`: the provided one, built on the single-key writes below, is
// what this sweeps.
impl<S: Store> Store for Faulty<S> {
    fn insert(&self, key: &StoreKey, record: &Record) -> Result<(), StoreError> {
        self.write()?;
        self.inner.insert(key, record)
    }
    fn get(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        self.inner.get(key)
    }
    fn replace(&self, key: &StoreKey, expected: u64, record: &Record) -> Result<(), StoreError> {
        self.write()?;
        self.inner.replace(key, expected, record)
    }
    fn touch(
        &self,
        key: &StoreKey,
        last_seen: Timestamp,
        expires: Timestamp,
    ) -> Result<bool, StoreError> {
        self.write()?;
        self.inner.touch(key, last_seen, expires)
    }
    fn remove(&self, key: &StoreKey) -> Result<bool, StoreError> {
        self.write()?;
        self.inner.remove(key)
    }
    fn sessions_of(&self, user: &str) -> Result<Vec<(StoreKey, Record)>, StoreError> {
        self.inner.sessions_of(user)
    }
    fn purge_expired(&self, now: Timestamp) -> Result<usize, StoreError> {
        self.write()?;
        self.inner.purge_expired(now)
    }
}
