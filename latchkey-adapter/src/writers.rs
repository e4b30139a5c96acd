//! One writer per session at a time, within one adapter (a layer, a
//! middleware: every worker that shares it): the requests of this process
//! that change the same session queue for it instead of racing each other
//! to the store.
//!
//! Versioned saves already keep concurrent writes from being lost: the
//! loser conflicts, reloads and tries again. But each conflict costs a
//! store round trip and a backoff, and 64 requests on one cookie can run
//! out of attempts. Within one process that race is avoidable: a write
//! waits for the session's current writer, then starts from the copy the
//! last writer saved (when it is newer than the one the request loaded), so
//! it does not conflict at all. That copy is kept while any request that
//! loaded the session is in flight. Writers in other processes still meet
//! as conflicts and are retried as before.
//!
//! The queue is a tokio mutex: it works across separate runtimes (actix-web
//! runs one per worker), and a request dropped while it waits leaves the
//! queue.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use latchkey::{Session, StoreKey};
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

/// The latest copy of a session that a writer of this adapter saved, if
/// any: what the next writer in line starts from.
type Slot = AsyncMutex<Option<Session>>;

/// Hashes a [`StoreKey`] by its last eight bytes: it is a SHA-256 digest,
/// already uniform, so hashing it again would only cost time.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        // A key hashes as its length, then its 32 bytes: the last write
        // wins.
        if let Some(last) = bytes.last_chunk::<8>() {
            self.0 = u64::from_le_bytes(*last);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type SlotMap = HashMap<StoreKey, (Option<Arc<Slot>>, usize), BuildHasherDefault<KeyHasher>>;

/// The sessions an adapter's requests hold: each one's queue of writers
/// (made by the first writer), and how many requests hold it, loaded or
/// writing. An entry lives while that count is above zero.
///
/// One per adapter instance, shared (in an [`Arc`]) by all its requests: a
/// request [`watch`](Writers::watch)es the session it loaded, and takes a
/// [`turn`](Writers::turn) around each write, retries included. Its `Debug`
/// shows no session keys.
///
/// # Example
/// ```
/// use std::sync::Arc;
/// use latchkey::{MemoryStore, NewSession, SessionManager, StoreManager};
/// use latchkey_adapter::Writers;
///
/// #[tokio::main(flavor = "current_thread")]
/// async fn main() -> Result<(), latchkey::Error> {
///     let manager = StoreManager::new(MemoryStore::new());
///     let issued = manager.create(NewSession::new())?;
///     let writers = Arc::new(Writers::default());
///
///     // A request loads the session, and is counted while it runs.
///     let loaded = manager.load(issued.token())?.session;
///     let watch = writers.watch(*loaded.store_key());
///
///     // Its write: wait for the session's other writers of this adapter,
///     // start from the newest copy, save, and leave that copy behind.
///     let mut turn = writers.turn(*loaded.store_key(), Some(&watch)).await;
///     let mut session = turn.newest(loaded);
///     session.insert("theme", "dark")?;
///     manager.save(&mut session)?;
///     turn.saved(&session);
///     drop(turn);
///     drop(watch);
///     Ok(())
/// }
/// ```
#[derive(Default)]
pub struct Writers {
    slots: Mutex<SlotMap>,
}

impl fmt::Debug for Writers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The keys identify sessions: only how many there are.
        f.debug_struct("Writers")
            .field("sessions", &self.slots().len())
            .finish()
    }
}

impl Writers {
    fn slots(&self) -> MutexGuard<'_, SlotMap> {
        // The map is consistent at every unlock: a panic elsewhere leaves
        // nothing half-done.
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts a request that loaded the session stored under `key` until
    /// the returned place is dropped: while any does, the copy the last
    /// writer saved is kept, so a request that loaded before that save
    /// and writes after it starts from the saved copy, not its own stale
    /// one.
    ///
    /// # Example
    /// ```
    /// use std::sync::Arc;
    /// use latchkey::SessionId;
    /// use latchkey_adapter::Writers;
    /// let writers = Arc::new(Writers::default());
    /// let key = SessionId::generate().store_key();
    /// // Held for as long as the request runs.
    /// let place = writers.watch(key);
    /// drop(place);
    /// ```
    #[must_use = "the request is counted only while the place lives"]
    pub fn watch(self: &Arc<Self>, key: StoreKey) -> Place {
        self.slots().entry(key).or_default().1 += 1;
        self.place(key)
    }

    /// Waits until no other request of this adapter is writing the session
    /// stored under `key`, and returns the turn, which ends when dropped.
    /// A request dropped while it waits leaves the queue as well. `watched`
    /// is the request's own [`watch`](Self::watch) of `key`, if it has one:
    /// the request is then counted once.
    ///
    /// # Example
    /// ```
    /// use std::sync::Arc;
    /// use latchkey::SessionId;
    /// use latchkey_adapter::Writers;
    ///
    /// #[tokio::main(flavor = "current_thread")]
    /// async fn main() {
    ///     let writers = Arc::new(Writers::default());
    ///     let (a, b) = (SessionId::generate().store_key(), SessionId::generate().store_key());
    ///     let first = writers.turn(a, None).await;
    ///     // Another session's writer does not wait for it.
    ///     let other = writers.turn(b, None).await;
    ///     drop((first, other));
    ///     // The first session's next writer gets its turn once it ended.
    ///     let _next = writers.turn(a, None).await;
    /// }
    /// ```
    pub async fn turn(self: &Arc<Self>, key: StoreKey, watched: Option<&Place>) -> Turn {
        let counted = watched.is_some_and(|p| p.key == key);
        let slot = {
            let mut slots = self.slots();
            let (slot, users) = slots.entry(key).or_default();
            if !counted {
                *users += 1;
            }
            Arc::clone(slot.get_or_insert_default())
        };
        let place = (!counted).then(|| self.place(key));
        let guard = slot.lock_owned().await;
        Turn {
            guard,
            key,
            writers: Arc::clone(self),
            _place: place,
        }
    }

    /// The place of a request just counted under `key`.
    fn place(self: &Arc<Self>, key: StoreKey) -> Place {
        Place {
            writers: Arc::clone(self),
            key,
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.slots().len()
    }
}

/// A request counted in a session's entry until dropped (see
/// [`Writers::watch`]). Its `Debug` shows no session key.
///
/// # Example
/// ```
/// use std::sync::Arc;
/// use latchkey::SessionId;
/// use latchkey_adapter::{Place, Writers};
/// let writers = Arc::new(Writers::default());
/// let place: Place = writers.watch(SessionId::generate().store_key());
/// assert_eq!(format!("{place:?}"), "Place { .. }");
/// ```
pub struct Place {
    writers: Arc<Writers>,
    key: StoreKey,
}

impl fmt::Debug for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Place").finish_non_exhaustive()
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut slots = self.writers.slots();
        if let Some((_, users)) = slots.get_mut(&self.key) {
            *users -= 1;
            if *users == 0 {
                slots.remove(&self.key);
            }
        }
    }
}

/// One request's turn at writing a session (see [`Writers::turn`]); the
/// next writer of the session gets its turn when this one is dropped. Its
/// `Debug` shows neither the key nor the session.
///
/// # Example
/// ```
/// use std::sync::Arc;
/// use latchkey::SessionId;
/// use latchkey_adapter::{Turn, Writers};
///
/// #[tokio::main(flavor = "current_thread")]
/// async fn main() {
///     let writers = Arc::new(Writers::default());
///     let turn: Turn = writers.turn(SessionId::generate().store_key(), None).await;
///     assert_eq!(format!("{turn:?}"), "Turn { .. }");
/// }
/// ```
pub struct Turn {
    // Dropped first: the next writer is let in before the place goes.
    guard: OwnedMutexGuard<Option<Session>>,
    key: StoreKey,
    writers: Arc<Writers>,
    /// The request's count in the entry, unless its watch is.
    _place: Option<Place>,
}

impl fmt::Debug for Turn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Turn").finish_non_exhaustive()
    }
}

impl Turn {
    /// The copy to start from: the last one a writer of this adapter saved,
    /// if it is newer than `own` (the same record, a later version), else
    /// `own`.
    ///
    /// # Example
    /// ```
    /// use std::sync::Arc;
    /// use latchkey::{MemoryStore, NewSession, SessionManager, StoreManager};
    /// use latchkey_adapter::Writers;
    ///
    /// #[tokio::main(flavor = "current_thread")]
    /// async fn main() -> Result<(), latchkey::Error> {
    ///     let manager = StoreManager::new(MemoryStore::new());
    ///     let issued = manager.create(NewSession::new())?;
    ///     let writers = Arc::new(Writers::default());
    ///     // Two requests loaded the same copy.
    ///     let stale = manager.load(issued.token())?.session;
    ///     let key = *stale.store_key();
    ///     let (a, b) = (writers.watch(key), writers.watch(key));
    ///
    ///     let mut turn = writers.turn(key, Some(&a)).await;
    ///     let mut session = turn.newest(stale.clone());
    ///     session.insert("n", &1)?;
    ///     manager.save(&mut session)?;
    ///     turn.saved(&session);
    ///     drop(turn);
    ///
    ///     // The second starts from the first one's save, not its stale copy.
    ///     let turn = writers.turn(key, Some(&b)).await;
    ///     assert_eq!(turn.newest(stale).get::<i32>("n")?, Some(1));
    ///     Ok(())
    /// }
    /// ```
    #[must_use]
    pub fn newest(&self, own: Session) -> Session {
        match &*self.guard {
            Some(saved)
                if saved.store_key() == own.store_key() && saved.version() > own.version() =>
            {
                saved.clone()
            }
            _ => own,
        }
    }

    /// Records what this writer leaves behind for the next: `session` if it
    /// is still stored under the turn's key, else nothing (after a rotation
    /// the record under the key is retired, and the next writer learns that
    /// from the store). Nothing either when no other request of the adapter
    /// holds the session: one that loads it later reads this save from the
    /// store, so the copy is not worth its clone.
    ///
    /// # Example
    /// ```
    /// use std::sync::Arc;
    /// use latchkey::{MemoryStore, NewSession, SessionManager, StoreManager};
    /// use latchkey_adapter::Writers;
    ///
    /// #[tokio::main(flavor = "current_thread")]
    /// async fn main() -> Result<(), latchkey::Error> {
    ///     let manager = StoreManager::new(MemoryStore::new());
    ///     let issued = manager.create(NewSession::new())?;
    ///     let mut session = manager.load(issued.token())?.session;
    ///     let writers = Arc::new(Writers::default());
    ///     let mut turn = writers.turn(*session.store_key(), None).await;
    ///     session.insert("n", &1)?;
    ///     manager.save(&mut session)?;
    ///     // After every successful write of the turn, retries included.
    ///     turn.saved(&session);
    ///     Ok(())
    /// }
    /// ```
    pub fn saved(&mut self, session: &Session) {
        let keep = *session.store_key() == self.key
            && self
                .writers
                .slots()
                .get(&self.key)
                .is_some_and(|(_, users)| *users > 1);
        *self.guard = keep.then(|| session.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> StoreKey {
        StoreKey::from_hex(&format!("{b:02x}").repeat(32)).unwrap()
    }

    #[tokio::test]
    async fn a_second_writer_of_one_session_waits_for_the_first() {
        let writers = Arc::new(Writers::default());
        let first = writers.turn(key(1), None).await;
        let w = Arc::clone(&writers);
        let second = tokio::spawn(async move { w.turn(key(1), None).await });
        tokio::task::yield_now().await;
        assert!(!second.is_finished());
        // Another session is not held up.
        drop(writers.turn(key(2), None).await);
        drop(first);
        drop(second.await.unwrap());
        assert_eq!(writers.len(), 0);
    }

    #[tokio::test]
    async fn a_writer_dropped_while_it_waits_leaves_no_entry() {
        let writers = Arc::new(Writers::default());
        let first = writers.turn(key(1), None).await;
        let w = Arc::clone(&writers);
        let waiting = tokio::spawn(async move { w.turn(key(1), None).await });
        tokio::task::yield_now().await;
        waiting.abort();
        assert!(waiting.await.unwrap_err().is_cancelled());
        drop(first);
        assert_eq!(writers.len(), 0);
    }

    #[tokio::test]
    async fn a_saved_copy_is_kept_while_a_request_watches() {
        let writers = Arc::new(Writers::default());
        let watching = writers.watch(key(1));
        drop(writers.turn(key(1), None).await);
        assert_eq!(writers.len(), 1);
        drop(watching);
        assert_eq!(writers.len(), 0);
    }

    /// A session saved once: the copy loaded before the save, and the one
    /// after it.
    fn before_and_after() -> (Session, Session) {
        use latchkey::{MemoryStore, NewSession, SessionManager, StoreManager};
        let manager = StoreManager::new(MemoryStore::new());
        let issued = manager.create(NewSession::new()).unwrap();
        let before = manager.load(issued.token()).unwrap().session;
        let mut after = before.clone();
        after.insert("n", &1).unwrap();
        manager.save(&mut after).unwrap();
        (before, after)
    }

    #[tokio::test]
    async fn the_next_writer_starts_from_the_last_save_while_others_hold_the_session() {
        let (before, after) = before_and_after();
        let key = *before.store_key();
        let writers = Arc::new(Writers::default());
        // Another request loaded the session too.
        let other = writers.watch(key);
        let mut turn = writers.turn(key, None).await;
        assert_eq!(turn.newest(before.clone()).version(), before.version());
        turn.saved(&after);
        drop(turn);
        let turn = writers.turn(key, None).await;
        assert_eq!(turn.newest(before.clone()).version(), after.version());
        drop((turn, other));
        assert_eq!(writers.len(), 0);
    }

    #[tokio::test]
    async fn a_lone_writer_keeps_no_copy() {
        let (before, after) = before_and_after();
        let key = *before.store_key();
        let writers = Arc::new(Writers::default());
        let mut turn = writers.turn(key, None).await;
        turn.saved(&after);
        assert!(turn.guard.is_none());
        drop(turn);
        // Its own watch of the session counts it once, not twice.
        let mine = writers.watch(key);
        let mut turn = writers.turn(key, Some(&mine)).await;
        turn.saved(&after);
        assert!(turn.guard.is_none());
        drop((turn, mine));
        assert_eq!(writers.len(), 0);
    }

    #[tokio::test]
    async fn entries_go_when_the_last_turn_ends() {
        let writers = Arc::new(Writers::default());
        let a = writers.turn(key(1), None).await;
        assert_eq!(writers.len(), 1);
        drop(a);
        assert_eq!(writers.len(), 0);
    }

    #[test]
    fn debug_shows_no_keys() {
        let writers = Arc::new(Writers::default());
        let place = writers.watch(key(0xab));
        let shown = format!("{writers:?} {place:?}");
        assert_eq!(shown, "Writers { sessions: 1 } Place { .. }");
    }
}
