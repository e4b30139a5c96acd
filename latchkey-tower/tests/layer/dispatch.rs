//! Where store calls run: in place when the store cannot block, on the
//! blocking pool when it can.

use std::thread;

use latchkey::SessionManager as _;

use crate::support::*;

/// Drives every operation once; returns the threads the store was called on.
async fn every_operation(blocks: bool) -> Vec<thread::ThreadId> {
    let (app, store, manager) = app(blocks);
    assert_eq!(manager.may_block(), blocks, "the manager asks its store");
    let cookie = login_as(&app, "alice").await;
    let cookie = cookie_pair(&send_post(&app, "/admin", Some(&cookie)).await);
    let cookie = cookie_pair(&send_post(&app, "/rotate", Some(&cookie)).await);
    assert_eq!(send_post(&app, "/count", Some(&cookie)).await.status(), 200);
    assert_eq!(send_get(&app, "/me", Some(&cookie)).await.status(), 200);
    assert_eq!(
        send_post(&app, "/logout", Some(&cookie)).await.status(),
        200
    );
    let callers = store.callers.lock().unwrap().clone();
    assert!(callers.len() >= 6, "the store was used: {}", callers.len());
    callers
}

// The default test runtime is current-thread: the executor is this
// thread, so a store call made in place shows its id.

#[tokio::test]
async fn a_store_that_cannot_block_is_called_on_the_executor_thread() {
    let executor = thread::current().id();
    let callers = every_operation(false).await;
    assert!(callers.iter().all(|t| *t == executor), "no thread hop");
}

#[tokio::test]
async fn a_store_that_may_block_is_never_called_on_the_executor_thread() {
    let executor = thread::current().id();
    let callers = every_operation(true).await;
    assert!(callers.iter().all(|t| *t != executor));
}

#[tokio::test]
async fn tickets_follow_their_revocation_store() {
    use std::sync::Arc;

    use latchkey::{CookieConfig, KeyRing, TicketKey, TicketManager};
    use latchkey_tower::SessionLayer;

    let executor = thread::current().id();
    for blocks in [false, true] {
        let store = Arc::new(Watched::new(blocks));
        let tickets = TicketManager::new("__Host-session", KeyRing::new(1, TicketKey::generate()))
            .unwrap()
            .with_revocation(store.clone());
        assert_eq!(tickets.may_block(), blocks);
        let app = routes().layer(SessionLayer::new(
            Arc::new(tickets),
            CookieConfig::default(),
        ));
        let cookie = login_as(&app, "alice").await;
        assert_eq!(send_get(&app, "/me", Some(&cookie)).await.status(), 200);
        assert_eq!(
            send_post(&app, "/logout", Some(&cookie)).await.status(),
            200
        );
        let callers = store.callers.lock().unwrap();
        assert!(!callers.is_empty(), "revocation state was read");
        assert!(
            callers.iter().all(|t| (*t == executor) != blocks),
            "blocks={blocks}"
        );
    }
}
