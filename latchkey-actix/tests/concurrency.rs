//! Concurrent saves on one cookie: within one middleware the writers take
//! turns and never conflict; across middlewares (as across processes) the
//! bounded reload loses no update.

#[macro_use]
mod support;

use std::rc::Rc;
use std::sync::Arc;

use latchkey::{CookieConfig, SessionManager, StoreManager};
use latchkey_actix::SessionMiddleware;
use tokio::sync::Barrier;

use support::*;

/// A middleware over `store` with up to `attempts` attempts per write.
fn sessions(store: &Arc<Watched>, attempts: u32) -> SessionMiddleware {
    let manager: Arc<dyn SessionManager> = Arc::new(StoreManager::new(Arc::clone(store)));
    SessionMiddleware::new(manager, CookieConfig::default()).with_max_attempts(attempts)
}

/// Sends `n` increments of `/together` at once, the `i`-th to
/// `apps[i % apps.len()]`, and returns what each answered.
macro_rules! all_at_once {
    ($apps:expr, $cookie:expr, $n:expr) => {{
        let tasks: Vec<_> = (0..$n)
            .map(|i| {
                let app = Rc::clone(&$apps[i % $apps.len()]);
                let req = post("/together", Some($cookie)).to_request();
                actix_web::rt::spawn(async move { send(&*app, req).await })
            })
            .collect();
        let mut out = Vec::new();
        for task in tasks {
            out.push(task.await.unwrap());
        }
        out
    }};
}

/// The counts the increments answered, sorted, checking each answered 200
/// and kept the cookie.
fn counts(results: &[Out]) -> Vec<u64> {
    let mut counts: Vec<u64> = results
        .iter()
        .map(|out| {
            assert_eq!(out.status, 200, "{out:?}");
            assert!(out.set_cookies.is_empty(), "the cookie stays: {out:?}");
            out.body.parse().unwrap()
        })
        .collect();
    counts.sort_unstable();
    counts
}

#[actix_web::test]
async fn one_middlewares_increments_on_one_cookie_queue_and_never_conflict() {
    // All eight loaded the same version; within one middleware each write
    // waits for the one before and starts from its save, so one attempt
    // each is enough and the store sees no conflict.
    const N: usize = 8;
    for blocks in [false, true] {
        let store = Watched::new(blocks);
        let barrier = Arc::new(Barrier::new(N));
        let apps = [Rc::new(app!(sessions(&store, 1), &barrier))];
        let cookie = login_as!(&*apps[0], "alice");
        let results = all_at_once!(apps, &cookie, N);
        assert_eq!(
            counts(&results),
            (1..=N as u64).collect::<Vec<_>>(),
            "blocks={blocks}"
        );
        assert_eq!(store.conflicts(), 0, "blocks={blocks}");
        let out = send(&*apps[0], get("/me", Some(&cookie)).to_request()).await;
        assert_eq!(out.body, format!("user=alice role=user count={N}"));
    }
}

#[actix_web::test]
async fn one_middleware_shared_by_several_apps_still_queues() {
    // The server clones the middleware into every worker's `App`: the
    // clones share one queue, so requests on different workers take turns
    // as well.
    const N: usize = 8;
    let store = Watched::new(true);
    let barrier = Arc::new(Barrier::new(N));
    let middleware = sessions(&store, 1);
    let mut apps = Vec::new();
    for _ in 0..4 {
        apps.push(Rc::new(app!(middleware.clone(), &barrier)));
    }
    let cookie = login_as!(&*apps[0], "alice");
    let results = all_at_once!(apps, &cookie, N);
    assert_eq!(counts(&results), (1..=N as u64).collect::<Vec<_>>());
    assert_eq!(store.conflicts(), 0);
}

#[actix_web::test]
async fn concurrent_increments_on_one_cookie_from_many_middlewares_all_land() {
    // Across middlewares (processes) writes meet as conflicts. Each
    // conflict means another request's save landed, so with as many
    // attempts as requests every one of them lands, however they
    // interleave.
    const N: usize = 8;
    for blocks in [false, true] {
        let store = Watched::new(blocks);
        let barrier = Arc::new(Barrier::new(N));
        let mut apps = Vec::new();
        for _ in 0..N {
            apps.push(Rc::new(app!(sessions(&store, N as u32), &barrier)));
        }
        let cookie = login_as!(&*apps[0], "alice");
        let results = all_at_once!(apps, &cookie, N);
        assert_eq!(
            counts(&results),
            (1..=N as u64).collect::<Vec<_>>(),
            "blocks={blocks}"
        );
        assert!(
            store.conflicts() >= N - 1,
            "the retry path ran (blocks={blocks}): {}",
            store.conflicts()
        );
        let out = send(&*apps[0], get("/me", Some(&cookie)).to_request()).await;
        assert_eq!(out.body, format!("user=alice role=user count={N}"));
    }
}

#[actix_web::test]
async fn a_conflict_past_the_last_attempt_is_409_and_keeps_the_cookie() {
    let store = Watched::new(false);
    let barrier = Arc::new(Barrier::new(2));
    let mut apps = Vec::new();
    for _ in 0..2 {
        apps.push(Rc::new(app!(sessions(&store, 1), &barrier)));
    }
    let cookie = login_as!(&*apps[0], "alice");
    let mut results = all_at_once!(apps, &cookie, 2);
    results.sort_by_key(|out| out.status);
    assert_eq!(results[0].status, 200, "{results:?}");
    assert_eq!(results[1].status, 409, "{results:?}");
    assert_eq!(results[1].body, "conflict");
    assert!(
        results[1].set_cookies.is_empty(),
        "a conflict keeps the cookie"
    );
    assert_eq!(store.conflicts(), 1);
    let out = send(&*apps[0], get("/me", Some(&cookie)).to_request()).await;
    assert_eq!(out.body, "user=alice role=user count=1");
}
