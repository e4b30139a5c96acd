//! Both managers over every store that needs no server, against the manager
//! conformance suite (`tests/manager_suite`). Redis runs the same suite in
//! `tests/redis_store.rs`.

mod conformance;
mod manager_suite;

use std::sync::Arc;

use latchkey::{
    KeyRing, ManualClock, MemoryStore, Policy, SessionManager, StoreManager, TicketKey,
    TicketManager,
};
use manager_suite::{Kind, manager_conformance};

fn memory(clock: &ManualClock) -> MemoryStore {
    MemoryStore::new().with_clock(Arc::new(clock.clone()))
}

fn server<S: latchkey::Store + 'static>(
    store: S,
    clock: &ManualClock,
    policy: Policy,
) -> (Arc<dyn SessionManager>, Kind) {
    let m = StoreManager::new(store)
        .with_policy(policy)
        .with_clock(Arc::new(clock.clone()));
    (Arc::new(m), Kind::Server)
}

fn tickets(
    revocation: Option<Box<dyn latchkey::Store>>,
    clock: &ManualClock,
    policy: Policy,
) -> (Arc<dyn SessionManager>, Kind) {
    let m = TicketManager::new("session", KeyRing::new(1, TicketKey::generate()))
        .unwrap()
        .with_policy(policy)
        .with_clock(Arc::new(clock.clone()));
    match revocation {
        Some(store) => (Arc::new(m.with_revocation(store)), Kind::RevocableTickets),
        None => (Arc::new(m), Kind::StatelessTickets),
    }
}

manager_conformance!(store_manager_memory, |clock: &ManualClock, policy| {
    server(memory(clock), clock, policy)
});

manager_conformance!(
    store_manager_boxed_dyn_memory,
    |clock: &ManualClock, policy| {
        let store: Box<dyn latchkey::Store> = Box::new(memory(clock));
        server(store, clock, policy)
    }
);

manager_conformance!(ticket_manager_stateless, |clock: &ManualClock, policy| {
    tickets(None, clock, policy)
});

manager_conformance!(
    ticket_manager_revocation_in_memory,
    |clock: &ManualClock, policy| { tickets(Some(Box::new(memory(clock))), clock, policy) }
);

#[cfg(unix)]
mod on_disk {
    use super::*;

    /// A FileStore that owns its temporary directory, deleted on drop.
    #[derive(Debug)]
    pub(crate) struct TempFileStore {
        store: latchkey::FileStore,
        _dir: tempfile::TempDir,
    }

    impl TempFileStore {
        pub(crate) fn new() -> TempFileStore {
            let dir = tempfile::tempdir().unwrap();
            TempFileStore {
                store: latchkey::FileStore::open(dir.path().join("store")).unwrap(),
                _dir: dir,
            }
        }
    }

    impl latchkey::Store for TempFileStore {
        conformance::forward_store!(store);
    }

    manager_conformance!(store_manager_file, |clock: &ManualClock, policy| {
        server(TempFileStore::new(), clock, policy)
    });

    manager_conformance!(
        ticket_manager_revocation_in_files,
        |clock: &ManualClock, policy| {
            tickets(Some(Box::new(TempFileStore::new())), clock, policy)
        }
    );
}
