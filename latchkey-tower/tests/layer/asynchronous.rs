//! The layer over an async manager (`SessionLayer::from_async`):
//! `AsyncStoreManager` over a store that yields before every call. The
//! same answers and cookies as over a synchronous manager, every store
//! call made on the request's own task (never the blocking pool), and
//! concurrent saves on one cookie all landing.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use latchkey::store::asynchronous::PendingOnce;
use latchkey::{AsyncStoreManager, CookieConfig, MemoryStore, RememberMe};
use latchkey_tower::{SessionHandle, SessionLayer};
use tokio::sync::Barrier;

use crate::support::*;

/// The application over an async manager; `blocks`: whether the watched
/// store says its calls may block (an async manager awaits them in place
/// either way).
fn async_app(blocks: bool) -> (Router, Arc<Watched>) {
    let store = Arc::new(Watched::new(blocks));
    let manager = AsyncStoreManager::new(PendingOnce::new(store.clone()));
    let layer = SessionLayer::from_async(Arc::new(manager), CookieConfig::default());
    (routes().layer(layer), store)
}

// The default test runtime is current-thread: the executor is this
// thread, so a store call made on the request's task shows its id.
#[tokio::test]
async fn every_call_of_an_async_manager_runs_on_the_executor_thread() {
    let executor = thread::current().id();
    for blocks in [false, true] {
        let (app, store) = async_app(blocks);
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
        assert!(
            callers.iter().all(|t| *t == executor),
            "no thread hop (blocks={blocks})"
        );
    }
}

#[tokio::test]
async fn the_story_of_one_user_reads_the_same_over_an_async_manager() {
    let (app, _) = async_app(true);
    let res = send_get(&app, "/", None).await;
    assert_eq!(text(res).await, "logged out");

    let res = send_post(&app, "/login/alice", None).await;
    assert_eq!(res.status(), StatusCode::OK);
    let all = set_cookies(&res);
    assert_eq!(all.len(), 1, "{all:?}");
    assert!(all[0].starts_with("__Host-session="));
    assert_eq!(cache_control(&res), Some("no-store"));
    let user = cookie_pair(&res);
    let res = send_get(&app, "/me", Some(&user)).await;
    assert!(
        set_cookies(&res).is_empty(),
        "a current cookie is left alone"
    );
    assert_eq!(text(res).await, "user=alice role=user count=0");

    // A privilege change: a new cookie; the old one refused, not cleared.
    let res = send_post(&app, "/admin", Some(&user)).await;
    assert_eq!(res.status(), StatusCode::OK);
    let admin = cookie_pair(&res);
    assert_ne!(admin, user);
    let res = send_get(&app, "/me", Some(&user)).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(set_cookies(&res).is_empty(), "superseded: not cleared");

    // A routine rotation: the old cookie still works in the grace window,
    // and its response hands over the new token.
    let res = send_post(&app, "/rotate", Some(&admin)).await;
    let rotated = cookie_pair(&res);
    assert_ne!(rotated, admin);
    let res = send_get(&app, "/me", Some(&admin)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(cookie_pair(&res), rotated, "the reissue hint");

    let res = send_post(&app, "/count", Some(&rotated)).await;
    assert_eq!(text(res).await, "1");
    let res = send_post(&app, "/logout", Some(&rotated)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(cookie_pair(&res), "__Host-session=", "cleared");
    let res = send_get(&app, "/me", Some(&rotated)).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn an_async_store_outage_or_panic_is_503_and_keeps_the_cookie() {
    for mode in [Mode::Down, Mode::Panic] {
        let (app, store) = async_app(true);
        let cookie = login_as(&app, "alice").await;
        store.set(mode);
        let res = send_get(&app, "/me", Some(&cookie)).await;
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE, "{mode:?}");
        assert!(set_cookies(&res).is_empty(), "not cleared ({mode:?})");
        assert_eq!(text(res).await, "backend");
        store.set(Mode::Up);
        let res = send_get(&app, "/me", Some(&cookie)).await;
        assert_eq!(res.status(), StatusCode::OK, "the session survived");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_increments_on_one_cookie_all_land_over_an_async_manager() {
    const N: usize = 8;
    let store = Arc::new(Watched::new(true));
    let manager = AsyncStoreManager::new(PendingOnce::new(store.clone()));
    let barrier = Arc::new(Barrier::new(N));
    let together = move |handle: SessionHandle| {
        let barrier = barrier.clone();
        async move {
            barrier.wait().await;
            increment(handle).await
        }
    };
    // One layer per request, as if in as many processes: within one layer
    // the writes would queue instead of conflicting.
    let manager = Arc::new(manager);
    let apps: Vec<Router> = (0..N)
        .map(|_| {
            let layer = SessionLayer::from_async(manager.clone(), CookieConfig::default())
                .with_max_attempts(N as u32);
            routes()
                .route("/together", post(together.clone()))
                .layer(layer)
        })
        .collect();
    let app = apps[0].clone();
    let cookie = login_as(&app, "alice").await;
    let tasks: Vec<_> = (0..N)
        .map(|i| {
            let (app, cookie) = (apps[i].clone(), cookie.clone());
            tokio::spawn(async move {
                let res = send_post(&app, "/together", Some(&cookie)).await;
                assert_eq!(res.status(), StatusCode::OK);
                text(res).await.parse::<u64>().unwrap()
            })
        })
        .collect();
    let mut counts = Vec::new();
    for t in tasks {
        counts.push(t.await.unwrap());
    }
    counts.sort_unstable();
    assert_eq!(counts, (1..=N as u64).collect::<Vec<_>>());
    assert!(
        store.conflicts.load(Ordering::SeqCst) >= N - 1,
        "the retry path ran"
    );
    let res = send_get(&app, "/me", Some(&cookie)).await;
    assert_eq!(text(res).await, format!("user=alice role=user count={N}"));
}

/// Remember-me speaks to a synchronous manager: over an async one its
/// log-in runs on the blocking pool, driving the async manager there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remember_me_logs_in_over_an_async_manager() {
    let clock = Arc::new(latchkey::ManualClock::starting_now());
    let store = Arc::new(MemoryStore::new().with_clock(clock.clone()));
    let manager = AsyncStoreManager::new(PendingOnce::new(store.clone())).with_clock(clock.clone());
    let remember = RememberMe::new(store, manager.policy().clone()).with_clock(clock.clone());
    let layer = SessionLayer::from_async(Arc::new(manager), CookieConfig::default())
        .with_remember_me(remember);
    let app = feature_routes().layer(layer);

    let mut jar = Jar::default();
    let res = jar.send(&app, "POST", "/login/alice/remember").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(set_cookies(&res).len(), 2, "{:?}", set_cookies(&res));
    let old_session = jar.get("__Host-session").unwrap().to_owned();

    // The browser was closed: the session cookie is gone.
    jar.remove("__Host-session");
    clock.advance(Duration::from_secs(60));
    let res = jar.send(&app, "GET", "/me").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(set_cookies(&res).len(), 2, "both cookies rotate");
    assert_eq!(text(res).await, "user=alice role=user count=0");
    assert_ne!(jar.get("__Host-session"), Some(old_session.as_str()));

    // Logout forgets the token and ends the session.
    let res = jar.send(&app, "POST", "/logout").await;
    assert_eq!(res.status(), StatusCode::OK);
    jar.remove("__Host-session");
    let res = jar.send(&app, "GET", "/me").await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}
