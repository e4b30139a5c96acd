//! Remember-me: logging in again with the remember-me cookie, rotation,
//! theft, logout. On a manual clock.

use std::time::Duration;

use axum::http::StatusCode;

use crate::support::*;

const SESSION: &str = "__Host-session";
const REMEMBER: &str = "__Host-remember";

/// Logs alice in with "keep me signed in"; the jar holds both cookies.
async fn remembered(f: &Features) -> Jar {
    let mut jar = Jar::default();
    let res = jar.send(&f.app, "POST", "/login/alice/remember").await;
    assert_eq!(res.status(), StatusCode::OK);
    let all = set_cookies(&res);
    assert_eq!(all.len(), 2, "{all:?}");
    assert!(all[0].starts_with("__Host-session=") && !all[0].contains("Max-Age"));
    assert!(all[1].starts_with("__Host-remember=rm1.") && all[1].contains("; Max-Age=2592000;"));
    jar
}

#[tokio::test]
async fn without_a_session_the_remember_cookie_logs_in_and_both_cookies_rotate() {
    let f = features(|l| l);
    let mut jar = remembered(&f).await;
    let first = jar.get(REMEMBER).unwrap().to_owned();
    let old_session = jar.get(SESSION).unwrap().to_owned();

    // The browser was closed: the session cookie is gone.
    jar.remove(SESSION);
    let res = jar.send(&f.app, "GET", "/me").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(set_cookies(&res).len(), 2, "{:?}", set_cookies(&res));
    assert_eq!(cache_control(&res), Some("no-store"));
    assert_eq!(text(res).await, "user=alice role=user count=0");
    assert_ne!(jar.get(REMEMBER), Some(first.as_str()));
    assert_ne!(jar.get(SESSION), Some(old_session.as_str()));

    // The new session cookie is used from now on; nothing changes.
    let res = jar.send(&f.app, "GET", "/me").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(set_cookies(&res).is_empty());
}

#[tokio::test]
async fn a_used_token_presented_after_the_grace_window_is_theft_and_clears_both_cookies() {
    let f = features(|l| l);
    let mut jar = remembered(&f).await;
    let mut thief = jar.clone();
    thief.remove(SESSION);
    jar.remove(SESSION);
    assert_eq!(
        jar.send(&f.app, "GET", "/me").await.status(),
        StatusCode::OK
    );

    f.clock.advance(Duration::from_secs(31));
    let res = thief.send(&f.app, "GET", "/me").await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let mut cleared = set_cookies(&res);
    cleared.sort();
    assert_eq!(cleared, [CLEAR_REMEMBER, CLEAR]);
    assert_eq!(text(res).await, "not_logged_in");

    // Every session and token of alice ended: the legitimate browser is
    // logged out too, and its remember-me cookie is refused and cleared.
    let res = jar.send(&f.app, "GET", "/me").await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let mut cleared = set_cookies(&res);
    cleared.sort();
    assert_eq!(cleared, [CLEAR_REMEMBER, CLEAR]);
    assert_eq!(jar.header(), None);
}

#[tokio::test]
async fn within_the_grace_window_a_second_tab_is_handed_the_replacement_not_a_login() {
    let f = features(|l| l);
    let mut jar = remembered(&f).await;
    jar.remove(SESSION);
    let mut other_tab = jar.clone();
    assert_eq!(
        jar.send(&f.app, "GET", "/me").await.status(),
        StatusCode::OK
    );
    let replacement = jar.get(REMEMBER).unwrap().to_owned();

    let res = other_tab.send(&f.app, "GET", "/me").await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "no second login");
    let all = set_cookies(&res);
    assert_eq!(all.len(), 1, "{all:?}");
    assert!(
        all[0].starts_with(&format!("{REMEMBER}={replacement};")),
        "{all:?}"
    );
    // Its next request logs in with the replacement.
    let res = other_tab.send(&f.app, "GET", "/me").await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn logout_forgets_the_remember_token_and_clears_both_cookies() {
    let f = features(|l| l);
    let mut jar = remembered(&f).await;
    let token = jar.get(REMEMBER).unwrap().to_owned();
    let res = jar.send(&f.app, "POST", "/logout").await;
    assert_eq!(res.status(), StatusCode::OK);
    let mut cleared = set_cookies(&res);
    cleared.sort();
    assert_eq!(cleared, [CLEAR_REMEMBER, CLEAR]);

    // A copy of the token no longer logs in, and is cleared.
    let mut copy = Jar::default();
    copy.set(REMEMBER, &token);
    let res = copy.send(&f.app, "GET", "/me").await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(set_cookies(&res), [CLEAR_REMEMBER]);
}

#[tokio::test]
async fn a_remember_cookie_beside_a_live_session_is_not_spent() {
    let f = features(|l| l);
    let mut jar = remembered(&f).await;
    let token = jar.get(REMEMBER).unwrap().to_owned();
    for _ in 0..2 {
        let res = jar.send(&f.app, "GET", "/me").await;
        assert_eq!(res.status(), StatusCode::OK);
        assert!(set_cookies(&res).is_empty());
    }
    assert_eq!(jar.get(REMEMBER), Some(token.as_str()));
}

#[tokio::test]
async fn a_garbage_remember_cookie_is_cleared_and_the_request_runs_logged_out() {
    let f = features(|l| l);
    let mut jar = Jar::default();
    jar.set(REMEMBER, "rm1.garbage");
    let res = jar.send(&f.app, "GET", "/").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(set_cookies(&res), [CLEAR_REMEMBER]);
    assert_eq!(text(res).await, "logged out");
}

#[tokio::test]
async fn remember_without_the_layer_option_is_a_500() {
    let f = features(|l| l);
    // A layer built without `with_remember_me`.
    let app = feature_routes().layer(latchkey_tower::SessionLayer::new(
        f.manager.clone(),
        latchkey::CookieConfig::default(),
    ));
    let res = send_post(&app, "/login/alice/remember", None).await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(text(res).await, "remember_me_not_configured");
}

#[tokio::test]
async fn on_a_store_that_may_block_an_outage_is_503_and_keeps_both_cookies() {
    use std::sync::Arc;
    // A store that may block: remember-me runs on the blocking pool, as the
    // manager's calls do.
    let store = Arc::new(Watched::new(true));
    let manager = Arc::new(latchkey::StoreManager::new(store.clone()));
    let remember = latchkey::RememberMe::new(store.clone(), latchkey::Policy::default());
    let app = feature_routes().layer(
        latchkey_tower::SessionLayer::new(manager, latchkey::CookieConfig::default())
            .with_remember_me(remember),
    );
    let mut jar = Jar::default();
    assert_eq!(
        jar.send(&app, "POST", "/login/alice/remember")
            .await
            .status(),
        StatusCode::OK
    );
    jar.remove(SESSION);

    store.set(Mode::Down);
    let res = jar.send(&app, "GET", "/me").await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(set_cookies(&res).is_empty(), "{:?}", set_cookies(&res));
    assert_eq!(text(res).await, "backend");

    // Back up: the same token still logs in.
    store.set(Mode::Up);
    let res = jar.send(&app, "GET", "/me").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(set_cookies(&res).len(), 2);
    let callers = store.callers.lock().unwrap();
    assert!(callers.iter().all(|t| *t != std::thread::current().id()));
}

#[tokio::test]
async fn debug_output_never_shows_a_remember_me_token() {
    let f = features(|l| l);
    let mut jar = remembered(&f).await;
    jar.remove(SESSION);
    let used = jar.get(REMEMBER).unwrap().to_owned();
    let res = jar.send(&f.app, "GET", "/debug").await;
    let body = text(res).await;
    assert!(body.contains("remembered: true"), "{body}");
    for secret in [
        used.as_str(),
        jar.get(REMEMBER).unwrap(),
        jar.get(SESSION).unwrap(),
    ] {
        assert!(!body.contains(secret), "{body}");
    }
    // Nor does the layer's.
    let layer =
        latchkey_tower::SessionLayer::new(f.manager.clone(), latchkey::CookieConfig::default());
    assert!(!format!("{layer:?}").contains(&used));
}
