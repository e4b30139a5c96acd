//! When each manager reads its clock: once per load, and only for a token
//! worth checking. A malformed token or a forged ticket is refused before
//! the clock is read, so hostile input costs no clock read.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use latchkey::{
    Clock, Error, KeyRing, ManualClock, MemoryStore, NewSession, SessionManager, StoreManager,
    TicketKey, TicketManager, Timestamp,
};

/// A clock that counts how often it is read.
#[derive(Debug)]
struct CountingClock {
    time: ManualClock,
    reads: AtomicUsize,
}

impl CountingClock {
    fn new() -> Arc<CountingClock> {
        Arc::new(CountingClock {
            time: ManualClock::new(Timestamp::from_unix_millis(1_800_000_000_000)),
            reads: AtomicUsize::new(0),
        })
    }

    fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }
}

impl Clock for CountingClock {
    fn now(&self) -> Timestamp {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.time.now()
    }
}

#[test]
fn a_store_load_reads_the_clock_once_and_not_for_a_malformed_token() {
    let clock = CountingClock::new();
    let m = StoreManager::new(MemoryStore::new()).with_clock(clock.clone());
    let issued = m.create(NewSession::new()).unwrap();
    let before = clock.reads();
    assert!(m.load(issued.token()).is_ok());
    assert_eq!(clock.reads(), before + 1, "a load reads the clock once");
    for bad in ["", "not a token", &issued.token()[1..]] {
        assert!(matches!(m.load(bad), Err(Error::Malformed(_))), "{bad:?}");
    }
    assert_eq!(
        clock.reads(),
        before + 1,
        "a malformed token costs no clock read"
    );
}

#[test]
fn a_ticket_load_reads_the_clock_once_and_not_for_a_forged_ticket() {
    let clock = CountingClock::new();
    let m = TicketManager::new("session", KeyRing::new(1, TicketKey::generate()))
        .unwrap()
        .with_clock(clock.clone());
    let issued = m
        .create(NewSession::new().with_value("theme", &"dark").unwrap())
        .unwrap();
    let before = clock.reads();
    let loaded = m.load(issued.token()).unwrap();
    assert_eq!(
        loaded.session.get::<String>("theme").unwrap().as_deref(),
        Some("dark")
    );
    assert_eq!(clock.reads(), before + 1, "a load reads the clock once");
    // Forged: signed, under the same key id, with a key this manager does
    // not hold.
    let other = TicketManager::new("session", KeyRing::new(1, TicketKey::generate())).unwrap();
    let forged = other.create(NewSession::new()).unwrap();
    assert!(matches!(m.load(forged.token()), Err(Error::BadSignature)));
    assert!(matches!(
        m.load("lk1.garbage"),
        Err(Error::MalformedTicket(_))
    ));
    assert_eq!(
        clock.reads(),
        before + 1,
        "a refused ticket costs no clock read"
    );
}
