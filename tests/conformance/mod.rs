//! The store conformance suite ships in the library
//! (`latchkey::store::conformance`, feature `test-util`, which these tests
//! enable); this module hands it to the test files, with a helper for
//! test wrappers.
#![allow(dead_code)]

#[allow(unused_imports)]
pub use latchkey::store::conformance::START;
#[allow(unused_imports)]
pub(crate) use latchkey::store_conformance;

/// The body of an `impl Store` that hands every required method to the
/// store in field `$inner`: for test wrappers that change one thing (where
/// a store lives, or how it peeks) and nothing else.
#[allow(unused_macros)]
macro_rules! forward_store {
    ($inner:tt) => {
        fn insert(
            &self,
            key: &latchkey::StoreKey,
            record: &latchkey::store::Record,
        ) -> Result<(), latchkey::StoreError> {
            self.$inner.insert(key, record)
        }
        fn get(
            &self,
            key: &latchkey::StoreKey,
        ) -> Result<Option<latchkey::store::Record>, latchkey::StoreError> {
            self.$inner.get(key)
        }
        fn replace(
            &self,
            key: &latchkey::StoreKey,
            expected: u64,
            record: &latchkey::store::Record,
        ) -> Result<(), latchkey::StoreError> {
            self.$inner.replace(key, expected, record)
        }
        fn touch(
            &self,
            key: &latchkey::StoreKey,
            last_seen: latchkey::Timestamp,
            expires_at: latchkey::Timestamp,
        ) -> Result<bool, latchkey::StoreError> {
            self.$inner.touch(key, last_seen, expires_at)
        }
        fn rotate(
            &self,
            old: &latchkey::StoreKey,
            expected: u64,
            retired: &latchkey::store::Record,
            new: &latchkey::StoreKey,
            record: &latchkey::store::Record,
        ) -> Result<(), latchkey::StoreError> {
            self.$inner.rotate(old, expected, retired, new, record)
        }
        fn remove(&self, key: &latchkey::StoreKey) -> Result<bool, latchkey::StoreError> {
            self.$inner.remove(key)
        }
        fn sessions_of(
            &self,
            user: &str,
        ) -> Result<Vec<(latchkey::StoreKey, latchkey::store::Record)>, latchkey::StoreError> {
            self.$inner.sessions_of(user)
        }
        fn purge_expired(&self, now: latchkey::Timestamp) -> Result<usize, latchkey::StoreError> {
            self.$inner.purge_expired(now)
        }
    };
}
#[allow(unused_imports)]
pub(crate) use forward_store;
