//! `AsyncStoreManager` (feature `async`) against the manager conformance
//! suite, and async stores against the store conformance suite, each run
//! through a blocking bridge (`block_on`, a minimal executor: no runtime).
//!
//! The stores yield (return `Pending` once) before every call, so each
//! operation really suspends between its store calls. Two stores: one
//! forwarding to a memory store's atomic `rotate`, and one that leaves
//! `rotate` to `AsyncStore`'s provided single-key protocol.
//!
//! Needs feature `async` (`required-features` in Cargo.toml):
//! `cargo test -p latchkey --features async --test async_manager`.

mod conformance;
mod manager_suite;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use latchkey::store::Record;
use latchkey::store::asynchronous::{PendingOnce, block_on};
use latchkey::{
    AsyncSessionManager, AsyncStore, AsyncStoreManager, Error, Issued, Loaded, ManualClock,
    MemoryStore, NewSession, Policy, Session, SessionManager, Store, StoreError, StoreKey,
    Timestamp,
};
use manager_suite::{Kind, manager_conformance};

/// An async manager behind the synchronous trait the suite drives, each
/// call run to completion by `block_on`. Through `dyn AsyncSessionManager`,
/// so the object-safe face is what is tested.
#[derive(Debug)]
struct Blocking(Arc<dyn AsyncSessionManager>);

impl SessionManager for Blocking {
    fn create(&self, new: NewSession) -> Result<Issued, Error> {
        block_on(self.0.create(new))
    }
    fn load(&self, token: &str) -> Result<Loaded, Error> {
        block_on(self.0.load(token))
    }
    fn save(&self, session: &mut Session) -> Result<Option<Issued>, Error> {
        block_on(self.0.save(session))
    }
    fn rotate(&self, session: &mut Session) -> Result<Issued, Error> {
        block_on(self.0.rotate(session))
    }
    fn change_privilege(&self, session: &mut Session) -> Result<Issued, Error> {
        block_on(self.0.change_privilege(session))
    }
    fn login(&self, session: &mut Session, user: &str) -> Result<Issued, Error> {
        block_on(self.0.login(session, user))
    }
    fn reauthenticate(&self, session: &mut Session) -> Result<Issued, Error> {
        block_on(self.0.reauthenticate(session))
    }
    fn require_recent_auth(&self, session: &Session, max_age: Duration) -> Result<(), Error> {
        self.0.require_recent_auth(session, max_age)
    }
    fn terminate(&self, session: &Session) -> Result<(), Error> {
        block_on(self.0.terminate(session))
    }
    fn terminate_all(&self, user: &str, except: Option<&Session>) -> Result<Option<usize>, Error> {
        block_on(self.0.terminate_all(user, except))
    }
}

/// An async store that implements only the required methods, so its
/// `rotate` is `AsyncStore`'s provided single-key protocol.
#[derive(Debug)]
struct SingleKeyWrites(PendingOnce<MemoryStore>);

impl AsyncStore for SingleKeyWrites {
    fn insert(
        &self,
        key: &StoreKey,
        record: &Record,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.0.insert(key, record)
    }
    fn get(
        &self,
        key: &StoreKey,
    ) -> impl Future<Output = Result<Option<Record>, StoreError>> + Send {
        self.0.get(key)
    }
    fn replace(
        &self,
        key: &StoreKey,
        expected: u64,
        record: &Record,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.0.replace(key, expected, record)
    }
    fn touch(
        &self,
        key: &StoreKey,
        last_seen: Timestamp,
        expires_at: Timestamp,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        self.0.touch(key, last_seen, expires_at)
    }
    fn remove(&self, key: &StoreKey) -> impl Future<Output = Result<bool, StoreError>> + Send {
        self.0.remove(key)
    }
    fn sessions_of(
        &self,
        user: &str,
    ) -> impl Future<Output = Result<Vec<(StoreKey, Record)>, StoreError>> + Send {
        self.0.sessions_of(user)
    }
    fn purge_expired(
        &self,
        now: Timestamp,
    ) -> impl Future<Output = Result<usize, StoreError>> + Send {
        self.0.purge_expired(now)
    }
}

/// An async store behind the synchronous `Store` trait, for the store
/// conformance suite: each call run to completion by `block_on`.
#[derive(Debug)]
struct BlockOn<S>(S);

impl<S: AsyncStore> Store for BlockOn<S> {
    fn insert(&self, key: &StoreKey, record: &Record) -> Result<(), StoreError> {
        block_on(self.0.insert(key, record))
    }
    fn get(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        block_on(self.0.get(key))
    }
    fn replace(&self, key: &StoreKey, expected: u64, record: &Record) -> Result<(), StoreError> {
        block_on(self.0.replace(key, expected, record))
    }
    fn touch(
        &self,
        key: &StoreKey,
        last_seen: Timestamp,
        expires_at: Timestamp,
    ) -> Result<bool, StoreError> {
        block_on(self.0.touch(key, last_seen, expires_at))
    }
    fn rotate(
        &self,
        old: &StoreKey,
        expected: u64,
        retired: &Record,
        new: &StoreKey,
        record: &Record,
    ) -> Result<(), StoreError> {
        block_on(self.0.rotate(old, expected, retired, new, record))
    }
    fn remove(&self, key: &StoreKey) -> Result<bool, StoreError> {
        block_on(self.0.remove(key))
    }
    fn sessions_of(&self, user: &str) -> Result<Vec<(StoreKey, Record)>, StoreError> {
        block_on(self.0.sessions_of(user))
    }
    fn purge_expired(&self, now: Timestamp) -> Result<usize, StoreError> {
        block_on(self.0.purge_expired(now))
    }
}

fn memory(clock: &ManualClock) -> PendingOnce<MemoryStore> {
    PendingOnce::new(MemoryStore::new().with_clock(Arc::new(clock.clone())))
}

fn server<S: AsyncStore + 'static>(
    store: S,
    clock: &ManualClock,
    policy: Policy,
) -> (Arc<dyn SessionManager>, Kind) {
    let m = AsyncStoreManager::new(store)
        .with_policy(policy)
        .with_clock(Arc::new(clock.clone()));
    (Arc::new(Blocking(Arc::new(m))), Kind::Server)
}

manager_conformance!(
    async_manager_pending_memory,
    |clock: &ManualClock, policy| { server(memory(clock), clock, policy) }
);

manager_conformance!(
    async_manager_single_key_writes,
    |clock: &ManualClock, policy| { server(SingleKeyWrites(memory(clock)), clock, policy) }
);

latchkey::store_conformance!(async_store_pending_memory, |clock: &ManualClock| {
    BlockOn(memory(clock))
});

latchkey::store_conformance!(async_store_single_key_writes, |clock: &ManualClock| {
    BlockOn(SingleKeyWrites(memory(clock)))
});

/// Every operation's future can move between threads (what a
/// multi-threaded executor needs), over any `AsyncStore`.
#[test]
fn the_async_managers_futures_are_send() {
    fn send<T: Send>(_: &T) {}
    let m = AsyncStoreManager::new(SingleKeyWrites(memory(&ManualClock::starting_now())));
    let mut session = block_on(async {
        let issued = m.create(NewSession::new()).await.unwrap();
        m.load(issued.token()).await.unwrap().session
    });
    send(&m.create(NewSession::new()));
    send(&m.load("token"));
    send(&m.update("token", |_| ()));
    send(&m.sessions_of("alice"));
    send(&m.terminate_all("alice", None));
    send(&m.purge_expired());
    send(&m.save(&mut session));
    send(&m.login(&mut session, "alice"));
}

/// 32 threads, each driving its own executor over one shared manager,
/// increment one session's counter through `update`: the store's yields
/// interleave them between load and save, and no increment is lost. How
/// many calls exhausted their retries is printed, not asserted.
#[test]
fn concurrent_async_updates_lose_no_increment() {
    let manager = AsyncStoreManager::new(PendingOnce::new(MemoryStore::new()))
        .with_sleep(|d| async move { std::thread::sleep(d) });
    updates_from_threads(manager, "with a sleep");
}

/// As above, without a sleep: the backoff only yields.
#[test]
fn concurrent_async_updates_without_a_sleep_lose_no_increment() {
    updates_from_threads(
        AsyncStoreManager::new(PendingOnce::new(MemoryStore::new())),
        "yielding only",
    );
}

fn updates_from_threads(manager: AsyncStoreManager<PendingOnce<MemoryStore>>, label: &str) {
    const THREADS: usize = 32;
    const EACH: u64 = 20;
    let manager = Arc::new(manager);
    let token = block_on(manager.create(NewSession::new()))
        .unwrap()
        .token()
        .to_owned();
    let mut exhausted = 0;
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                let (manager, token) = (&manager, &token);
                s.spawn(move || {
                    let mut done = 0u64;
                    let mut gave_up = 0;
                    while done < EACH {
                        match block_on(manager.update(token, |s| {
                            let n = s.get::<u64>("n").unwrap().unwrap_or(0);
                            s.insert("n", &(n + 1)).unwrap();
                        })) {
                            Ok(_) => done += 1,
                            Err(Error::Conflict) => gave_up += 1,
                            Err(e) => panic!("update failed: {e}"),
                        }
                    }
                    gave_up
                })
            })
            .collect();
        for h in handles {
            exhausted += h.join().unwrap();
        }
    });
    let n: u64 = block_on(manager.load(&token))
        .unwrap()
        .session
        .get("n")
        .unwrap()
        .unwrap();
    assert_eq!(n, THREADS as u64 * EACH, "lost increments");
    eprintln!(
        "async update contention ({label}): {THREADS} threads, {} updates, \
         {exhausted} calls exhausted their retries",
        THREADS as u64 * EACH
    );
}
