//! Flash messages across redirects and logins.

use axum::http::StatusCode;

use crate::support::*;

#[tokio::test]
async fn a_flash_survives_the_redirect_and_shows_once() {
    let f = features(|l| l);
    let cookie = login_as(&f.app, "alice").await;
    let res = send_post(&f.app, "/flash/Saved.", Some(&cookie)).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(set_cookies(&res).is_empty(), "the session's cookie stays");

    let res = send_get(&f.app, "/flashes", Some(&cookie)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(text(res).await, "notice:Saved.");
    let res = send_get(&f.app, "/flashes", Some(&cookie)).await;
    assert_eq!(text(res).await, "", "gone once taken");
}

#[tokio::test]
async fn a_visitors_flash_creates_an_anonymous_session_that_carries_it() {
    let f = features(|l| l);
    let res = send_post(&f.app, "/flash/Hello", None).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(cache_control(&res), Some("no-store"));
    let cookie = cookie_pair(&res);

    let res = send_get(&f.app, "/flashes", Some(&cookie)).await;
    assert_eq!(text(res).await, "notice:Hello");
    let res = send_get(&f.app, "/me", Some(&cookie)).await;
    assert_eq!(
        res.status(),
        StatusCode::UNAUTHORIZED,
        "anonymous, not logged in"
    );
}

#[tokio::test]
async fn a_flash_survives_the_login_that_follows() {
    let f = features(|l| l);
    let res = send_post(&f.app, "/flash/Welcome", None).await;
    let anonymous = cookie_pair(&res);
    let res = send_post(&f.app, "/flash/back", Some(&anonymous)).await;
    assert!(set_cookies(&res).is_empty());

    let res = send_post(&f.app, "/login/alice", Some(&anonymous)).await;
    let cookie = cookie_pair(&res);
    assert_ne!(cookie, anonymous);
    let res = send_get(&f.app, "/flashes", Some(&cookie)).await;
    assert_eq!(text(res).await, "notice:Welcome,notice:back");
    let res = send_get(&f.app, "/flashes", Some(&cookie)).await;
    assert_eq!(text(res).await, "");
}

#[tokio::test]
async fn taking_flashes_without_a_session_creates_none() {
    let f = features(|l| l);
    let res = send_get(&f.app, "/flashes", None).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(set_cookies(&res).is_empty());
    assert_eq!(cache_control(&res), None);
    assert_eq!(text(res).await, "");
}

#[tokio::test]
async fn a_flash_over_the_limit_is_413_and_saves_nothing() {
    let f = features(|l| l);
    let cookie = login_as(&f.app, "alice").await;
    let long = "x".repeat(latchkey::MAX_FLASH_MESSAGE_LEN + 1);
    let res = send_post(&f.app, &format!("/flash/{long}"), Some(&cookie)).await;
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(set_cookies(&res).is_empty());
    assert_eq!(text(res).await, "flash_too_long");
    for n in 0..latchkey::MAX_FLASHES {
        let res = send_post(&f.app, &format!("/flash/{n}"), Some(&cookie)).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
    }
    let res = send_post(&f.app, "/flash/one-too-many", Some(&cookie)).await;
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(text(res).await, "flash_too_many");
    let res = send_get(&f.app, "/flashes", Some(&cookie)).await;
    assert_eq!(text(res).await.split(',').count(), latchkey::MAX_FLASHES);
}

#[tokio::test]
async fn no_session_is_created_over_a_cookie_superseded_moments_ago() {
    let f = features(|l| l);
    let old = login_as(&f.app, "alice").await;
    let new = cookie_pair(&send_post(&f.app, "/admin", Some(&old)).await);
    assert_ne!(new, old);
    // A request that left before the privilege change: a new anonymous
    // session's cookie would overwrite the successor and log alice out.
    let res = send_post(&f.app, "/flash/lost", Some(&old)).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(set_cookies(&res).is_empty(), "{:?}", set_cookies(&res));
    assert_eq!(text(res).await, "no_session");
    let res = send_get(&f.app, "/me", Some(&new)).await;
    assert_eq!(res.status(), StatusCode::OK);
}
