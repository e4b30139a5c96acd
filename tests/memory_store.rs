//! MemoryStore against the shared store conformance suite, plus its own
//! behaviours: capacity limit and incremental sweeping.

mod conformance;

use std::sync::Arc;
use std::time::Duration;

use conformance::store_conformance;
use latchkey::{
    Clock, Error, KeyRing, ManualClock, MemoryStore, NewSession, Policy, SessionManager, Store,
    StoreError, StoreManager, TicketKey, TicketManager,
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

fn manager_at(clock: &ManualClock, store: MemoryStore) -> StoreManager<MemoryStore> {
    StoreManager::new(store.with_clock(Arc::new(clock.clone()))).with_clock(Arc::new(clock.clone()))
}

#[test]
fn logouts_give_their_places_back_at_capacity() {
    let clock = ManualClock::new(conformance::START);
    let m = manager_at(&clock, MemoryStore::new().with_capacity_limit(3));
    for _ in 0..3 {
        let issued = m.create(NewSession::new().with_user("alice")).unwrap();
        m.terminate(&m.load(issued.token()).unwrap().session)
            .unwrap();
    }
    // Three ended sessions are held (a later load says "terminated"), and
    // three new ones still fit.
    assert_eq!((m.store().live_len(), m.store().retired_len()), (0, 3));
    let live: Vec<_> = (0..3)
        .map(|_| m.create(NewSession::new()).unwrap())
        .collect();
    assert!(matches!(
        m.create(NewSession::new()),
        Err(Error::Store(StoreError::Full { capacity: 3 }))
    ));
    for t in &live {
        assert!(m.load(t.token()).is_ok(), "a live session was evicted");
    }
}

#[test]
fn login_and_rotation_succeed_at_capacity() {
    let clock = ManualClock::new(conformance::START);
    let m = manager_at(&clock, MemoryStore::new().with_capacity_limit(2));
    let a = m.create(NewSession::new()).unwrap();
    let b = m.create(NewSession::new()).unwrap();
    let mut session = m.load(a.token()).unwrap().session;
    let logged_in = m.login(&mut session, "alice").unwrap();
    let mut other = m.load(b.token()).unwrap().session;
    let rotated = m.rotate(&mut other).unwrap();
    assert_eq!(m.store().live_len(), 2);
    assert!(m.load(logged_in.token()).is_ok());
    assert!(m.load(rotated.token()).is_ok());
    // The old tokens' records are kept: the pre-login one is refused as
    // superseded, not as unknown.
    assert!(matches!(m.load(a.token()), Err(Error::Superseded)));
}

#[test]
fn a_refused_create_sweeps_a_slice_never_the_whole_store() {
    let clock = ManualClock::new(conformance::START);
    let n = 20_000;
    let m = manager_at(&clock, MemoryStore::new().with_capacity_limit(n));
    for _ in 0..n {
        m.create(NewSession::new()).unwrap();
    }
    clock.advance(Duration::from_secs(9 * 3600));
    // Every session is dead. A create at capacity makes room by sweeping
    // one bounded slice (a few hundred records), not all 20,000: a flood of
    // refused creates costs each the same small amount.
    m.create(NewSession::new()).unwrap();
    let left = m.store().len();
    assert!(
        left > n - 1_000,
        "{left} of {n} records left: the whole store was swept"
    );
    // purge_expired still sweeps everything at once.
    let purged = m.store().purge_expired(clock.now()).unwrap();
    assert_eq!((purged, m.store().len()), (left - 1, 1));
}

#[test]
fn retired_records_past_their_limit_are_evicted_oldest_first() {
    let clock = ManualClock::new(conformance::START);
    let m = manager_at(
        &clock,
        MemoryStore::new()
            .with_capacity_limit(10)
            .with_retired_limit(10),
    );
    let issued = m.create(NewSession::new().with_user("alice")).unwrap();
    let mut session = m.load(issued.token()).unwrap().session;
    let mut tokens = vec![issued.token().to_owned()];
    for _ in 0..2_000 {
        clock.advance(Duration::from_secs(1));
        tokens.push(m.rotate(&mut session).unwrap().token().to_owned());
    }
    // Bounded: within the limit but for at most one record per shard.
    let retired = m.store().retired_len();
    assert!(retired <= 10 + 64, "{retired} retired records held");
    assert_eq!(m.store().live_len(), 1);
    // The live session is untouched; the last retired token still follows
    // it within the grace window.
    let last = tokens.len() - 1;
    assert!(m.load(&tokens[last]).is_ok());
    assert!(m.load(&tokens[last - 1]).is_ok());
    // The first tokens' records were evicted: refused as unknown, no longer
    // as reused (so their reuse ends nothing).
    clock.advance(Duration::from_secs(60));
    assert!(matches!(m.load(&tokens[0]), Err(Error::Unknown)));
    assert!(m.load(&tokens[last]).is_ok());
}

#[test]
fn ticket_revocations_are_never_evicted_and_refused_past_the_limit() {
    let clock = ManualClock::new(conformance::START);
    let m = TicketManager::new("__Host-session", KeyRing::new(1, TicketKey::generate()))
        .unwrap()
        .with_policy(Policy::default().without_user_cap())
        .with_clock(Arc::new(clock.clone()))
        .with_revocation(
            MemoryStore::new()
                .with_capacity_limit(3)
                .with_clock(Arc::new(clock.clone())),
        );
    let tickets: Vec<_> = (0..4)
        .map(|_| m.create(NewSession::new()).unwrap())
        .collect();
    for t in &tickets[..3] {
        m.terminate(&m.load(t.token()).unwrap().session).unwrap();
    }
    // A fourth revocation would evict one of the first three and let its
    // ticket in again: it is refused instead.
    let last = m.load(tickets[3].token()).unwrap().session;
    let err = m.terminate(&last).unwrap_err();
    assert!(
        matches!(err, Error::Store(StoreError::Full { capacity: 3 })),
        "{err:?}"
    );
    for t in &tickets[..3] {
        assert!(
            matches!(m.load(t.token()), Err(Error::Terminated { .. })),
            "a revoked ticket is valid again"
        );
    }
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
