//! Re-authentication for sensitive actions, on a manual clock.

use std::time::Duration;

use axum::http::StatusCode;

use crate::support::*;

#[tokio::test]
async fn a_fresh_login_passes_and_a_stale_one_is_401_with_the_cookie_kept() {
    let f = features(|l| l);
    let cookie = login_as(&f.app, "alice").await;
    let res = send_post(&f.app, "/sensitive", Some(&cookie)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(text(res).await, "done");

    // Still logged in (idle 20 minutes), no longer fresh (10).
    f.clock.advance(Duration::from_secs(15 * 60));
    let res = send_post(&f.app, "/sensitive", Some(&cookie)).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(
        set_cookies(&res).is_empty(),
        "not a rejection: the cookie stays"
    );
    assert_eq!(text(res).await, "reauthentication_required");
    let res = send_get(&f.app, "/me", Some(&cookie)).await;
    assert_eq!(res.status(), StatusCode::OK, "still logged in for the rest");
}

#[tokio::test]
async fn reauthenticating_sets_a_new_cookie_and_the_old_one_is_refused() {
    let f = features(|l| l);
    let old = login_as(&f.app, "alice").await;
    f.clock.advance(Duration::from_secs(15 * 60));

    let res = send_post(&f.app, "/reauth", Some(&old)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(cache_control(&res), Some("no-store"));
    let new = cookie_pair(&res);
    assert_ne!(new, old);

    let res = send_post(&f.app, "/sensitive", Some(&new)).await;
    assert_eq!(res.status(), StatusCode::OK);
    // The old token is refused (superseded), and not cleared: the
    // response above set its successor.
    let res = send_get(&f.app, "/me", Some(&old)).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(set_cookies(&res).is_empty());
    let res = send_post(&f.app, "/sensitive", Some(&old)).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(text(res).await, "no_session");
}

#[tokio::test]
async fn an_anonymous_session_is_sent_to_log_in_not_to_reauthenticate() {
    let f = features(|l| l);
    let anonymous = cookie_pair(&send_post(&f.app, "/flash/hi", None).await);
    let res = send_post(&f.app, "/reauth", Some(&anonymous)).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(set_cookies(&res).is_empty());
    assert_eq!(text(res).await, "not_authenticated");
    let res = send_post(&f.app, "/sensitive", Some(&anonymous)).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(text(res).await, "reauthentication_required");

    let res = send_post(&f.app, "/sensitive", None).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(text(res).await, "no_session");
}
