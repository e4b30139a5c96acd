//! AsyncRedisStore against a real `redis-server`: the store and manager
//! conformance suites through a blocking bridge (each call runs to
//! completion on a Tokio runtime the test owns), and interop with the
//! blocking RedisStore on one Redis: each reads, updates, rotates and
//! lists what the other wrote.
//!
//! Like `redis_store.rs`, the tests need a server and are `#[ignore]`d
//! unless asked for:
//!
//! ```text
//! LATCHKEY_REDIS_URL=redis://127.0.0.1:6379/ cargo test --features redis-async,test-util --test redis_async -- --include-ignored
//! ```
#![cfg(feature = "redis-async")]

mod conformance;
mod manager_suite;

use std::sync::Arc;
use std::time::Duration;

use conformance::store_conformance;
use latchkey::store::{LiveSession, Record, RecordState};
use latchkey::{
    AsyncRedisStore, AsyncSessionManager, AsyncStore, AsyncStoreManager, Clock, EndReason, Error,
    Issued, Loaded, ManualClock, NewSession, RedisStore, Session, SessionData, SessionId,
    SessionManager, Store, StoreError, StoreKey, StoreManager, Timestamp,
};
use manager_suite::{Kind, manager_conformance};

const URL_VAR: &str = "LATCHKEY_REDIS_URL";

fn redis_url() -> String {
    match std::env::var(URL_VAR) {
        Ok(url) if !url.is_empty() => url,
        _ => {
            panic!("{URL_VAR} is unset: the Redis tests need a Redis server (see this file's docs)")
        }
    }
}

fn unique_prefix() -> String {
    format!("latchkey-test:{}:", SessionId::generate().fingerprint())
}

/// An [`AsyncRedisStore`] driven to completion call by call on a runtime
/// of its own: a blocking [`Store`], so the blocking suites run against
/// the async store's code.
struct Bridge {
    rt: tokio::runtime::Runtime,
    store: AsyncRedisStore,
}

impl std::fmt::Debug for Bridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.store.fmt(f)
    }
}

impl Bridge {
    fn new(store: AsyncRedisStore) -> Bridge {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        Bridge { rt, store }
    }
}

impl Store for Bridge {
    fn insert(&self, key: &StoreKey, record: &Record) -> Result<(), StoreError> {
        self.rt.block_on(self.store.insert(key, record))
    }
    fn get(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        self.rt.block_on(self.store.get(key))
    }
    fn replace(&self, key: &StoreKey, expected: u64, record: &Record) -> Result<(), StoreError> {
        self.rt.block_on(self.store.replace(key, expected, record))
    }
    fn touch(
        &self,
        key: &StoreKey,
        last_seen: Timestamp,
        expires_at: Timestamp,
    ) -> Result<bool, StoreError> {
        self.rt
            .block_on(self.store.touch(key, last_seen, expires_at))
    }
    fn rotate(
        &self,
        old: &StoreKey,
        expected: u64,
        retired: &Record,
        new: &StoreKey,
        record: &Record,
    ) -> Result<(), StoreError> {
        self.rt
            .block_on(self.store.rotate(old, expected, retired, new, record))
    }
    fn remove(&self, key: &StoreKey) -> Result<bool, StoreError> {
        self.rt.block_on(self.store.remove(key))
    }
    fn sessions_of(&self, user: &str) -> Result<Vec<(StoreKey, Record)>, StoreError> {
        self.rt.block_on(self.store.sessions_of(user))
    }
    fn purge_expired(&self, now: Timestamp) -> Result<usize, StoreError> {
        self.rt.block_on(self.store.purge_expired(now))
    }
}

/// An [`AsyncStoreManager`] behind the synchronous trait the manager suite
/// drives, through `dyn AsyncSessionManager`: each call runs to completion
/// on a runtime of its own, so the async driver's lifecycle is what runs
/// against Redis.
struct AsyncManagerBridge {
    rt: tokio::runtime::Runtime,
    manager: Arc<dyn AsyncSessionManager>,
}

impl std::fmt::Debug for AsyncManagerBridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.manager.fmt(f)
    }
}

impl SessionManager for AsyncManagerBridge {
    fn create(&self, new: NewSession) -> Result<Issued, Error> {
        self.rt.block_on(self.manager.create(new))
    }
    fn load(&self, token: &str) -> Result<Loaded, Error> {
        self.rt.block_on(self.manager.load(token))
    }
    fn save(&self, session: &mut Session) -> Result<Option<Issued>, Error> {
        self.rt.block_on(self.manager.save(session))
    }
    fn rotate(&self, session: &mut Session) -> Result<Issued, Error> {
        self.rt.block_on(self.manager.rotate(session))
    }
    fn change_privilege(&self, session: &mut Session) -> Result<Issued, Error> {
        self.rt.block_on(self.manager.change_privilege(session))
    }
    fn login(&self, session: &mut Session, user: &str) -> Result<Issued, Error> {
        self.rt.block_on(self.manager.login(session, user))
    }
    fn reauthenticate(&self, session: &mut Session) -> Result<Issued, Error> {
        self.rt.block_on(self.manager.reauthenticate(session))
    }
    fn require_recent_auth(&self, session: &Session, max_age: Duration) -> Result<(), Error> {
        self.manager.require_recent_auth(session, max_age)
    }
    fn terminate(&self, session: &Session) -> Result<(), Error> {
        self.rt.block_on(self.manager.terminate(session))
    }
    fn terminate_all(&self, user: &str, except: Option<&Session>) -> Result<Option<usize>, Error> {
        self.rt.block_on(self.manager.terminate_all(user, except))
    }
}

fn async_store(url: &str, prefix: &str, clock: &ManualClock) -> AsyncRedisStore {
    AsyncRedisStore::open(url)
        .unwrap()
        .with_prefix(prefix)
        .with_clock(Arc::new(clock.clone()))
}

fn sync_store(url: &str, prefix: &str, clock: &ManualClock) -> RedisStore {
    RedisStore::open(url)
        .unwrap()
        .with_prefix(prefix)
        .with_clock(Arc::new(clock.clone()))
}

store_conformance!(
    #[ignore = "needs a Redis server: set LATCHKEY_REDIS_URL and pass --include-ignored (.ci/run does)"]
    async_redis_server,
    |clock: &ManualClock| Bridge::new(async_store(&redis_url(), &unique_prefix(), clock))
);

manager_conformance!(
    #[ignore = "needs a Redis server: set LATCHKEY_REDIS_URL and pass --include-ignored (.ci/run does)"]
    store_manager_async_redis_bridged,
    |clock: &ManualClock, policy: latchkey::Policy| {
        let store = Bridge::new(async_store(&redis_url(), &unique_prefix(), clock));
        let m = StoreManager::new(store)
            .with_policy(policy)
            .with_clock(Arc::new(clock.clone()));
        (Arc::new(m) as Arc<dyn SessionManager>, Kind::Server)
    }
);

fn live(user: Option<&str>, version: u64, now: Timestamp) -> Record {
    let mut data = serde_json::Map::new();
    data.insert("big".into(), serde_json::json!(u64::MAX));
    data.insert("text".into(), serde_json::json!("\"quoted\" ☃ \n"));
    Record {
        version,
        expires_at: now.saturating_add(Duration::from_secs(600)),
        state: RecordState::Live(LiveSession {
            created_at: now,
            last_seen: now,
            auth_at: Some(now),
            absolute_deadline: now.saturating_add(Duration::from_secs(3600)),
            user: user.map(str::to_owned),
            device: Some("phone".into()),
            data: SessionData::from_map(data),
        }),
    }
}

fn key() -> StoreKey {
    SessionId::generate().store_key()
}

#[test]
#[ignore = "needs a Redis server: set LATCHKEY_REDIS_URL and pass --include-ignored (.ci/run does)"]
fn a_blocking_and_an_async_store_share_one_session_space() {
    let url = redis_url();
    let (prefix, clock) = (unique_prefix(), ManualClock::starting_now());
    let sync = sync_store(&url, &prefix, &clock);
    let bridge = Bridge::new(async_store(&url, &prefix, &clock));
    let now = clock.now();

    // Written by the blocking store, read and updated by the async one.
    let a = key();
    sync.insert(&a, &live(Some("alice"), 1, now)).unwrap();
    assert_eq!(bridge.get(&a).unwrap(), Some(live(Some("alice"), 1, now)));
    bridge.replace(&a, 1, &live(Some("alice"), 2, now)).unwrap();
    assert_eq!(sync.get(&a).unwrap().map(|r| r.version), Some(2));
    // A stale write from either side is refused.
    assert!(matches!(
        sync.replace(&a, 1, &live(Some("alice"), 3, now)),
        Err(StoreError::Conflict)
    ));

    // Written by the async store, read, touched and rotated by the
    // blocking one.
    let b = key();
    bridge.insert(&b, &live(Some("alice"), 1, now)).unwrap();
    assert!(matches!(
        sync.insert(&b, &live(None, 1, now)),
        Err(StoreError::Exists)
    ));
    let later = now.saturating_add(Duration::from_secs(30));
    assert!(
        sync.touch(&b, later, later.saturating_add(Duration::from_secs(600)))
            .unwrap()
    );
    let mut touched = live(Some("alice"), 1, now);
    touched.touch(later, later.saturating_add(Duration::from_secs(600)));
    assert_eq!(bridge.get(&b).unwrap(), Some(touched));
    let c = key();
    let retired = Record {
        version: 2,
        expires_at: now.saturating_add(Duration::from_secs(30)),
        state: RecordState::Ended {
            reason: EndReason::Replaced,
            at: now,
        },
    };
    sync.rotate(&b, 1, &retired, &c, &live(Some("alice"), 1, now))
        .unwrap();
    assert_eq!(bridge.get(&b).unwrap(), Some(retired));

    // One per-user index: each lists what the other wrote.
    let mut from_sync: Vec<StoreKey> = sync
        .sessions_of("alice")
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    let mut from_async: Vec<StoreKey> = bridge
        .sessions_of("alice")
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    from_sync.sort();
    from_async.sort();
    let mut expected = vec![a, c];
    expected.sort();
    assert_eq!(from_sync, expected);
    assert_eq!(from_async, expected);

    // Removed by one, gone for the other.
    assert!(bridge.remove(&a).unwrap());
    assert_eq!(sync.get(&a).unwrap(), None);
    assert!(!sync.remove(&a).unwrap());
}

#[test]
#[ignore = "needs a Redis server: set LATCHKEY_REDIS_URL and pass --include-ignored (.ci/run does)"]
fn many_tasks_write_at_once_through_one_store() {
    let url = redis_url();
    let (prefix, clock) = (unique_prefix(), ManualClock::starting_now());
    let store = Arc::new(async_store(&url, &prefix, &clock));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let now = clock.now();
    let keys: Vec<StoreKey> = (0..64).map(|_| key()).collect();
    rt.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for k in keys.clone() {
            let store = store.clone();
            tasks.spawn(async move {
                store.insert(&k, &live(Some("bob"), 1, now)).await?;
                store.replace(&k, 1, &live(Some("bob"), 2, now)).await?;
                store.get(&k).await
            });
        }
        while let Some(done) = tasks.join_next().await {
            assert_eq!(done.unwrap().unwrap().map(|r| r.version), Some(2));
        }
    });
    assert_eq!(rt.block_on(store.sessions_of("bob")).unwrap().len(), 64);
}

#[test]
fn an_unreachable_redis_is_unavailable_and_nothing_panics() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = AsyncRedisStore::open("redis://127.0.0.1:1/")
        .unwrap()
        .with_connect_timeout(Duration::from_millis(300));
    let now = Timestamp::from_unix_millis(1_800_000_000_000);
    let k = key();
    assert!(matches!(
        rt.block_on(store.get(&k)),
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(
        rt.block_on(store.insert(&k, &live(None, 1, now))),
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(
        rt.block_on(store.ping()),
        Err(StoreError::Unavailable(_))
    ));
}

manager_conformance!(
    #[ignore = "needs a Redis server: set LATCHKEY_REDIS_URL and pass --include-ignored (.ci/run does)"]
    async_manager_async_redis,
    |clock: &ManualClock, policy: latchkey::Policy| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let store = async_store(&redis_url(), &unique_prefix(), clock);
        let manager = AsyncStoreManager::new(store)
            .with_policy(policy)
            .with_clock(Arc::new(clock.clone()))
            .with_sleep(tokio::time::sleep);
        let bridge = AsyncManagerBridge {
            rt,
            manager: Arc::new(manager),
        };
        (Arc::new(bridge) as Arc<dyn SessionManager>, Kind::Server)
    }
);
