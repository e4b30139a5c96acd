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

/// The application with `/together`: an increment that first waits until
/// `n` requests have loaded the session, so every one of them starts from
/// the same version and all but one must conflict.
fn app_together(blocks: bool, n: usize, attempts: u32) -> (Router, Arc<Watched>) {
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
    let layer = SessionLayer::new(manager, CookieConfig::default()).with_max_attempts(attempts);
    let app = routes().route("/together", post(together)).layer(layer);
    (app, store)
}

async fn all_at_once(
    app: &Router,
    cookie: &str,
    n: usize,
) -> Vec<(StatusCode, Vec<String>, String)> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let app = app.clone();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_increments_on_one_cookie_all_land() {
    // Each conflict means another request's save landed, so with as many
    // attempts as requests every one of them lands, however they interleave.
    const N: usize = 8;
    for blocks in [false, true] {
        let (app, store) = app_together(blocks, N, N as u32);
        let cookie = login_as(&app, "alice").await;
        let results = all_at_once(&app, &cookie, N).await;
        let mut counts: Vec<u64> = results
            .iter()
            .map(|(status, set_cookie, body)| {
                assert_eq!(*status, StatusCode::OK, "{body}");
                assert!(set_cookie.is_empty(), "the cookie stays");
                body.parse().unwrap()
            })
            .collect();
        counts.sort_unstable();
        assert_eq!(
            counts,
            (1..=N as u64).collect::<Vec<_>>(),
            "blocks={blocks}"
        );
        assert!(
            store.conflicts.load(Ordering::SeqCst) >= N - 1,
            "the retry path ran"
        );

        let res = send_get(&app, "/me", Some(&cookie)).await;
        assert_eq!(text(res).await, format!("user=alice role=user count={N}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflict_past_the_last_attempt_is_409_and_keeps_the_cookie() {
    let (app, _) = app_together(false, 2, 1);
    let cookie = login_as(&app, "alice").await;
    let mut results = all_at_once(&app, &cookie, 2).await;
    results.sort_by_key(|r| r.0);
    assert_eq!(results[0].0, StatusCode::OK);
    assert_eq!(results[1].0, StatusCode::CONFLICT);
    assert_eq!(results[1].2, "conflict");
    assert!(results[1].1.is_empty(), "a conflict keeps the cookie");
    let res = send_get(&app, "/me", Some(&cookie)).await;
    assert_eq!(text(res).await, "user=alice role=user count=1");
}
