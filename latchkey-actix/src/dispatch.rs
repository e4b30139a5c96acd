//! Where a manager call runs, and how long to wait before retrying one.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

use actix_web::rt::{task, time};
use latchkey::{Error, SessionManager, StoreError};

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
        return catch_unwind(AssertUnwindSafe(|| f(&**manager))).unwrap_or_else(|_| {
            Err(Error::Store(StoreError::Unavailable(
                "a session manager call panicked".into(),
            )))
        });
    }
    let manager = Arc::clone(manager);
    match task::spawn_blocking(move || f(&*manager)).await {
        Ok(result) => result,
        // The join error says whether the call panicked or was cancelled.
        Err(join) => Err(Error::Store(StoreError::Unavailable(Box::new(join)))),
    }
}

/// The most a backoff waits before the `attempt`-th retry (1-based): 2 ms,
/// doubling, at most 32 ms.
pub(crate) fn backoff_ceiling(attempt: u32) -> Duration {
    Duration::from_millis(1 << attempt.clamp(1, 5))
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
        assert_eq!(ms, [2, 4, 8, 16, 32, 32, 32, 32]);
        assert_eq!(backoff_ceiling(0).as_millis(), 2);
    }

    #[test]
    fn jitter_varies_between_draws() {
        let draws: std::collections::HashSet<u64> = (0..16).map(|_| jitter()).collect();
        assert!(draws.len() > 1, "{draws:?}");
    }
}
