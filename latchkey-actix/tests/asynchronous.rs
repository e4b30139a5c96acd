//! The middleware over an async manager (`SessionMiddleware::from_async`):
//! `AsyncStoreManager` over a store that yields before every call. The
//! same answers and cookies as over a synchronous manager, every store
//! call made on the request's worker (never the blocking pool), a
//! panicking store a 503, and concurrent saves on one cookie all landing.

#[macro_use]
mod support;

use std::rc::Rc;
use std::sync::Arc;
use std::thread;

use latchkey::store::asynchronous::PendingOnce;
use latchkey::{AsyncStoreManager, CookieConfig, RememberMe};
use latchkey_actix::SessionMiddleware;
use tokio::sync::Barrier;

use support::*;

/// A middleware over an async manager over `store`, with up to
/// `attempts` attempts per write.
fn async_sessions(store: &Arc<Watched>, attempts: u32) -> SessionMiddleware {
    let manager = AsyncStoreManager::new(PendingOnce::new(Arc::clone(store)));
    SessionMiddleware::from_async(Arc::new(manager), CookieConfig::default())
        .with_max_attempts(attempts)
}

/// A barrier for tests that do not use `/together`.
fn no_barrier() -> Arc<Barrier> {
    Arc::new(Barrier::new(1))
}

// The actix test runtime runs the service on this thread: a store call
// made on the request's worker shows its id, one on the blocking pool
// another.
#[actix_web::test]
async fn every_call_of_an_async_manager_runs_on_the_worker_thread() {
    let worker = thread::current().id();
    for blocks in [false, true] {
        let store = Watched::new(blocks);
        let app = app!(async_sessions(&store, 12), &no_barrier());
        let cookie = login_as!(&app, "alice");
        let out = send(&app, post("/admin", Some(&cookie)).to_request()).await;
        let cookie = out.cookie();
        let out = send(&app, post("/rotate", Some(&cookie)).to_request()).await;
        let cookie = out.cookie();
        let out = send(&app, post("/count", Some(&cookie)).to_request()).await;
        assert_eq!((out.status, out.body.as_str()), (200, "1"));
        let out = send(&app, get("/me", Some(&cookie)).to_request()).await;
        assert_eq!(out.status, 200);
        let out = send(&app, post("/logout", Some(&cookie)).to_request()).await;
        assert_eq!(out.status, 200);
        let callers = store.callers.lock().unwrap().clone();
        assert!(callers.len() >= 6, "the store was used: {}", callers.len());
        assert!(
            callers.iter().all(|t| *t == worker),
            "no thread hop (blocks={blocks})"
        );
    }
}

#[actix_web::test]
async fn the_story_of_one_user_reads_the_same_over_an_async_manager() {
    let store = Watched::new(true);
    let app = app!(async_sessions(&store, 12), &no_barrier());
    let out = send(&app, get("/", None).to_request()).await;
    assert_eq!(out.body, "logged out");

    let out = send(&app, post("/login/alice", None).to_request()).await;
    assert_eq!(out.status, 200);
    assert_eq!(out.set_cookies.len(), 1, "{out:?}");
    let user = out.cookie();
    let out = send(&app, get("/me", Some(&user)).to_request()).await;
    assert!(out.set_cookies.is_empty(), "a current cookie is left alone");
    assert_eq!(out.body, "user=alice role=user count=0");

    // A privilege change: a new cookie; the old one refused, not cleared.
    let out = send(&app, post("/admin", Some(&user)).to_request()).await;
    assert_eq!(out.status, 200);
    let admin = out.cookie();
    assert_ne!(admin, user);
    let out = send(&app, get("/me", Some(&user)).to_request()).await;
    assert_eq!(out.status, 401);
    assert!(out.set_cookies.is_empty(), "superseded: not cleared");

    // A routine rotation: the old cookie still works in the grace window,
    // and its response hands over the new token.
    let out = send(&app, post("/rotate", Some(&admin)).to_request()).await;
    let rotated = out.cookie();
    assert_ne!(rotated, admin);
    let out = send(&app, get("/me", Some(&admin)).to_request()).await;
    assert_eq!(out.status, 200);
    assert_eq!(out.cookie(), rotated, "the reissue hint");

    let out = send(&app, post("/count", Some(&rotated)).to_request()).await;
    assert_eq!(out.body, "1");
    let out = send(&app, post("/logout", Some(&rotated)).to_request()).await;
    assert_eq!(out.status, 200);
    assert_eq!(out.cookie(), "__Host-session=", "cleared");
    let out = send(&app, get("/me", Some(&rotated)).to_request()).await;
    assert_eq!(out.status, 401);
}

#[actix_web::test]
async fn an_async_store_outage_or_panic_is_503_and_keeps_the_cookie() {
    for mode in [Mode::Down, Mode::Panic] {
        let store = Watched::new(true);
        let app = app!(async_sessions(&store, 12), &no_barrier());
        let cookie = login_as!(&app, "alice");
        store.set(mode);
        let out = send(&app, get("/me", Some(&cookie)).to_request()).await;
        assert_eq!(out.status, 503, "{mode:?}");
        assert!(out.set_cookies.is_empty(), "not cleared ({mode:?})");
        assert_eq!(out.body, "backend");
        store.set(Mode::Up);
        let out = send(&app, get("/me", Some(&cookie)).to_request()).await;
        assert_eq!(out.status, 200, "the session survived ({mode:?})");
    }
}

#[actix_web::test]
async fn a_panic_in_an_async_save_is_503_and_keeps_the_cookie() {
    let store = Watched::new(false);
    let app = app!(async_sessions(&store, 12), &no_barrier());
    let cookie = login_as!(&app, "alice");
    // The session loads; the save panics inside the manager's future,
    // which is polled on the worker: a backend failure, not a rejection.
    store.set(Mode::SavesPanic);
    let out = send(&app, post("/count", Some(&cookie)).to_request()).await;
    assert_eq!((out.status, out.body.as_str()), (503, "backend"));
    assert!(out.set_cookies.is_empty(), "not cleared: {out:?}");
    store.set(Mode::Up);
    let out = send(&app, get("/me", Some(&cookie)).to_request()).await;
    assert_eq!(out.body, "user=alice role=user count=0");
    // The panicking save's turn was given back: the next save goes through.
    let out = send(&app, post("/count", Some(&cookie)).to_request()).await;
    assert_eq!((out.status, out.body.as_str()), (200, "1"));
}

#[actix_web::test]
async fn one_middlewares_increments_over_an_async_manager_queue_and_never_conflict() {
    const N: usize = 8;
    let store = Watched::new(true);
    let barrier = Arc::new(Barrier::new(N));
    let app = Rc::new(app!(async_sessions(&store, 1), &barrier));
    let cookie = login_as!(&*app, "alice");
    let tasks: Vec<_> = (0..N)
        .map(|_| {
            let app = Rc::clone(&app);
            let req = post("/together", Some(&cookie)).to_request();
            actix_web::rt::spawn(async move { send(&*app, req).await })
        })
        .collect();
    let mut counts = Vec::new();
    for task in tasks {
        let out = task.await.unwrap();
        assert_eq!(out.status, 200, "{out:?}");
        counts.push(out.body.parse::<u64>().unwrap());
    }
    counts.sort_unstable();
    assert_eq!(counts, (1..=N as u64).collect::<Vec<_>>());
    assert_eq!(store.conflicts(), 0);
}

#[actix_web::test]
async fn concurrent_increments_on_one_cookie_all_land_over_an_async_manager() {
    // One middleware per request, as if in as many processes: within one
    // middleware the writes would queue instead of conflicting.
    const N: usize = 8;
    let store = Watched::new(true);
    let manager = Arc::new(AsyncStoreManager::new(PendingOnce::new(Arc::clone(&store))));
    let barrier = Arc::new(Barrier::new(N));
    let mut apps = Vec::new();
    for _ in 0..N {
        let middleware = SessionMiddleware::from_async(manager.clone(), CookieConfig::default())
            .with_max_attempts(N as u32);
        apps.push(Rc::new(app!(middleware, &barrier)));
    }
    let cookie = login_as!(&*apps[0], "alice");
    let tasks: Vec<_> = (0..N)
        .map(|i| {
            let app = Rc::clone(&apps[i]);
            let req = post("/together", Some(&cookie)).to_request();
            actix_web::rt::spawn(async move { send(&*app, req).await })
        })
        .collect();
    let mut counts = Vec::new();
    for task in tasks {
        let out = task.await.unwrap();
        assert_eq!(out.status, 200, "{out:?}");
        assert!(out.set_cookies.is_empty(), "the cookie stays: {out:?}");
        counts.push(out.body.parse::<u64>().unwrap());
    }
    counts.sort_unstable();
    assert_eq!(counts, (1..=N as u64).collect::<Vec<_>>());
    assert!(
        store.conflicts() >= N - 1,
        "the retry path ran: {}",
        store.conflicts()
    );
    let out = send(&*apps[0], get("/me", Some(&cookie)).to_request()).await;
    assert_eq!(out.body, format!("user=alice role=user count={N}"));
}

/// Remember-me speaks to a synchronous manager: over an async one its
/// log-in runs on the blocking pool, driving the async manager there.
#[actix_web::test]
async fn remember_me_logs_in_over_an_async_manager() {
    let store = Watched::new(false);
    let manager = AsyncStoreManager::new(PendingOnce::new(Arc::clone(&store)));
    let remember = RememberMe::new(store.clone(), manager.policy().clone());
    let middleware = SessionMiddleware::from_async(Arc::new(manager), CookieConfig::default())
        .with_remember_me(remember);
    let app = app!(middleware, &no_barrier());

    let out = send(&app, post("/login/alice/remember", None).to_request()).await;
    assert_eq!(out.status, 200, "{out:?}");
    assert_eq!(out.set_cookies.len(), 2, "{out:?}");
    let old_session = out.session_cookie();
    let remembered = out
        .set_cookies
        .iter()
        .find(|c| c.starts_with("__Host-remember="))
        .and_then(|c| c.split(';').next())
        .unwrap()
        .to_owned();

    // The browser was closed: only the remember-me cookie is left.
    let out = send(&app, get("/me", Some(&remembered)).to_request()).await;
    assert_eq!(out.status, 200, "{out:?}");
    assert_eq!(out.set_cookies.len(), 2, "both cookies rotate: {out:?}");
    assert_eq!(out.body, "user=alice role=user count=0");
    let session = out.session_cookie();
    assert_ne!(session, old_session);

    // Logout forgets the token and ends the session.
    let out = send(&app, post("/logout", Some(&session)).to_request()).await;
    assert_eq!(out.status, 200);
    let out = send(&app, get("/me", Some(&session)).to_request()).await;
    assert_eq!(out.status, 401);
}
