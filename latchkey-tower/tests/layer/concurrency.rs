//! Concurrent saves on one cookie: the bounded reload loses no update.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use latchkey::{CookieConfig, StoreManager};
use latchkey_tower::{SessionHandle, SessionLayer};
use tokio::sync::Barrier;

use crate::support::*;

/// `layers` instances of the application with `/together` over one store,
/// as if in as many processes (each has its own layer): an increment that
/// first waits until `n` requests have loaded the session, so every one of
/// them starts from the same version.
fn app_together(
    blocks: bool,
    n: usize,
    attempts: u32,
    layers: usize,
) -> (Vec<Router>, Arc<Watched>) {
    let store = Arc::new(Watched::new(blocks));
    let manager = Arc::new(StoreManager::new(store.clone()));
    let barrier = Arc::new(Barrier::new(n));
    let together = move |handle: SessionHandle| {
        let barrier = barrier.clone();
        async move {
            barrier.wait().await;
            increment(handle).await
        }
    };
    let apps = (0..layers)
        .map(|_| {
            let layer = SessionLayer::new(manager.clone(), CookieConfig::default())
                .with_max_attempts(attempts);
            routes()
                .route("/together", post(together.clone()))
                .layer(layer)
        })
        .collect();
    (apps, store)
}

/// `n` increments at once, the `i`-th sent to `apps[i % apps.len()]`.
async fn all_at_once(
    apps: &[Router],
    cookie: &str,
    n: usize,
) -> Vec<(StatusCode, Vec<String>, String)> {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let app = apps[i % apps.len()].clone();
            let cookie = cookie.to_owned();
            tokio::spawn(async move {
                let res = send_post(&app, "/together", Some(&cookie)).await;
                (res.status(), set_cookies(&res), text(res).await)
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

/// The counts the increments answered, checking each answered 200 and kept
/// the cookie.
fn counts(results: &[(StatusCode, Vec<String>, String)]) -> Vec<u64> {
    let mut counts: Vec<u64> = results
        .iter()
        .map(|(status, set_cookie, body)| {
            assert_eq!(*status, StatusCode::OK, "{body}");
            assert!(set_cookie.is_empty(), "the cookie stays");
            body.parse().unwrap()
        })
        .collect();
    counts.sort_unstable();
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_layers_increments_on_one_cookie_queue_and_never_conflict() {
    // All eight loaded the same version; within one layer each write waits
    // for the one before and starts from its save, so one attempt each is
    // enough and the store sees no conflict.
    const N: usize = 8;
    for blocks in [false, true] {
        let (apps, store) = app_together(blocks, N, 1, 1);
        let cookie = login_as(&apps[0], "alice").await;
        let results = all_at_once(&apps, &cookie, N).await;
        let counts = counts(&results);
        assert_eq!(
            counts,
            (1..=N as u64).collect::<Vec<_>>(),
            "blocks={blocks}"
        );
        assert_eq!(store.conflicts.load(Ordering::SeqCst), 0);
        let res = send_get(&apps[0], "/me", Some(&cookie)).await;
        assert_eq!(text(res).await, format!("user=alice role=user count={N}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_increments_on_one_cookie_from_many_layers_all_land() {
    // Across layers (processes) writes meet as conflicts. Each conflict
    // means another request's save landed, so with as many attempts as
    // requests every one of them lands, however they interleave.
    const N: usize = 8;
    for blocks in [false, true] {
        let (apps, store) = app_together(blocks, N, N as u32, N);
        let cookie = login_as(&apps[0], "alice").await;
        let results = all_at_once(&apps, &cookie, N).await;
        assert_eq!(
            counts(&results),
            (1..=N as u64).collect::<Vec<_>>(),
            "blocks={blocks}"
        );
        assert!(
            store.conflicts.load(Ordering::SeqCst) >= N - 1,
            "the retry path ran"
        );

        let res = send_get(&apps[0], "/me", Some(&cookie)).await;
        assert_eq!(text(res).await, format!("user=alice role=user count={N}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflict_past_the_last_attempt_is_409_and_keeps_the_cookie() {
    let (apps, _) = app_together(false, 2, 1, 2);
    let cookie = login_as(&apps[0], "alice").await;
    let mut results = all_at_once(&apps, &cookie, 2).await;
    results.sort_by_key(|r| r.0);
    assert_eq!(results[0].0, StatusCode::OK);
    assert_eq!(results[1].0, StatusCode::CONFLICT);
    assert_eq!(results[1].2, "conflict");
    assert!(results[1].1.is_empty(), "a conflict keeps the cookie");
    let res = send_get(&apps[0], "/me", Some(&cookie)).await;
    assert_eq!(text(res).await, "user=alice role=user count=1");
}
