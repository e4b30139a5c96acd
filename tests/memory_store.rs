//! MemoryStore against the shared store conformance suite, plus its own
//! behaviours: capacity limit and incremental sweeping.

mod conformance;

use std::sync::Arc;
use std::time::Duration;

use conformance::store_conformance;
use latchkey::{
    Error, ManualClock, MemoryStore, NewSession, SessionManager, Store, StoreError, StoreManager,
};

store_conformance!(memory, |clock: &ManualClock| MemoryStore::new()
    .with_clock(Arc::new(clock.clone())));

store_conformance!(memory_boxed_dyn, |clock: &ManualClock| -> Box<dyn Store> {
    Box::new(MemoryStore::new().with_clock(Arc::new(clock.clone())))
});

#[test]
fn capacity_limit_refuses_new_sessions_instead_of_evicting() {
    let clock = ManualClock::new(conformance::START);
    let store = MemoryStore::new()
        .with_capacity_limit(3)
        .with_clock(Arc::new(clock.clone()));
    let m = StoreManager::new(store).with_clock(Arc::new(clock.clone()));
    let live: Vec<_> = (0..3)
        .map(|_| m.create(NewSession::new()).unwrap())
        .collect();
    let err = m.create(NewSession::new()).unwrap_err();
    assert!(
        matches!(err, Error::Store(StoreError::Full { capacity: 3 })),
        "{err:?}"
    );
    assert!(err.is_backend_failure());
    for t in &live {
        assert!(m.load(t.token()).is_ok(), "a live session was evicted");
    }
    // Once the others expire, their slots are reclaimed.
    clock.advance(Duration::from_secs(8 * 3600));
    m.create(NewSession::new()).unwrap();
}

#[test]
fn expired_records_are_swept_incrementally_without_a_purge() {
    let clock = ManualClock::new(conformance::START);
    let store = MemoryStore::new().with_clock(Arc::new(clock.clone()));
    let m = StoreManager::new(store).with_clock(Arc::new(clock.clone()));
    for _ in 0..2_000 {
        m.create(NewSession::new()).unwrap();
    }
    assert_eq!(m.store().len(), 2_000);
    clock.advance(Duration::from_secs(9 * 3600));
    // New activity alone reclaims the dead records' memory.
    for _ in 0..10_000 {
        m.create(NewSession::new()).unwrap();
    }
    assert!(
        m.store().len() < 10_000 + 500,
        "len {} after sweeping",
        m.store().len()
    );
}

#[test]
fn loads_touch_once_per_touch_interval_and_report_expiry_on_the_in_place_path() {
    // `StoreManager<MemoryStore>` loads through `MemoryStore::peek`; this
    // drives that path (the conformance suite drives it as well, and the
    // invariants drive the default through a wrapped store).
    let clock = ManualClock::new(conformance::START);
    let store = MemoryStore::new().with_clock(Arc::new(clock.clone()));
    let m = StoreManager::new(store).with_clock(Arc::new(clock.clone()));
    let issued = m
        .create(NewSession::new().with_value("n", &1).unwrap())
        .unwrap();
    let touch = m.policy().touch_interval();
    let last_seen = |m: &StoreManager<MemoryStore>| {
        let key = latchkey::SessionId::parse(issued.token())
            .unwrap()
            .store_key();
        match m.store().get(&key).unwrap().unwrap().state {
            latchkey::store::RecordState::Live(l) => l.last_seen,
            other => panic!("{other:?}"),
        }
    };
    clock.advance(touch - Duration::from_millis(1));
    let s = m.load(issued.token()).unwrap().session;
    assert_eq!(s.last_seen(), conformance::START);
    assert_eq!(last_seen(&m), conformance::START);
    clock.advance(Duration::from_millis(1));
    let s = m.load(issued.token()).unwrap().session;
    let now = conformance::START.saturating_add(touch);
    assert_eq!((s.last_seen(), last_seen(&m)), (now, now));
    assert_eq!(s.get::<i32>("n").unwrap(), Some(1));
    clock.advance(m.policy().idle_timeout());
    assert!(matches!(
        m.load(issued.token()),
        Err(Error::IdleExpired { .. })
    ));
}
