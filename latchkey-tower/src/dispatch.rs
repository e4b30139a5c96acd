//! Where a manager call runs, and how long to wait before retrying one.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

use latchkey::{Error, SessionManager, StoreError};

/// Runs `f` against `manager`: in place when the manager says its calls
/// cannot block ([`SessionManager::may_block`] is false: a memory store,
/// tickets without a revocation store), which saves a thread hop per
/// request; otherwise on tokio's blocking pool, so a disk or network round
/// trip never holds up an executor thread and the other requests on it.
///
/// A call that panics, or a blocking task that is cancelled (the runtime
/// shutting down), is a backend failure (503): the session itself may be
/// fine, and a rejection would clear the cookie. Both paths treat a panic
/// the same way, so the answer does not depend on the store.
pub(crate) async fn call<T, F>(manager: &Arc<dyn SessionManager>, f: F) -> Result<T, Error>
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
    match tokio::task::spawn_blocking(move || f(&*manager)).await {
        Ok(result) => result,
        Err(join) => Err(Error::Store(StoreError::Unavailable(Box::new(join)))),
    }
}

fn backend_failure(what: &'static str) -> Error {
    Error::Store(StoreError::Unavailable(what.into()))
}

/// The most a backoff waits before the `attempt`-th retry (1-based): 2 ms,
/// doubling, at most 32 ms.
pub(crate) fn backoff_ceiling(attempt: u32) -> Duration {
    Duration::from_millis(1 << attempt.clamp(1, 5))
}

/// Waits a random time up to [`backoff_ceiling`] ("full jitter"). Requests
/// that conflicted on one session were released together; retried at once
/// they collide again, and the round trip to a networked store is long
/// enough that they keep doing so. Spreading them out lets each reload see
/// the others' writes.
pub(crate) async fn backoff(attempt: u32) {
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
        assert_eq!(ms, [2, 4, 8, 16, 32, 32, 32, 32]);
        assert_eq!(backoff_ceiling(0).as_millis(), 2);
    }

    #[test]
    fn jitter_varies() {
        let draws: std::collections::HashSet<u64> = (0..16).map(|_| jitter()).collect();
        assert!(draws.len() > 1, "{draws:?}");
    }
}
