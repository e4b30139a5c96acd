//! CSRF tokens: the layer's opt-in header check, and a form field checked
//! in the handler.

use axum::http::StatusCode;

use crate::support::*;

const SAME_ORIGIN: (&str, &str) = ("sec-fetch-site", "same-origin");

/// A token for the session behind `cookie`, from the page that renders it.
async fn token_for(app: &axum::Router, cookie: &str) -> String {
    let res = send_get(app, "/form", Some(cookie)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        set_cookies(&res).is_empty(),
        "a server-side session keeps its cookie"
    );
    text(res).await
}

#[tokio::test]
async fn the_header_check_is_off_by_default() {
    let f = features(|l| l);
    let cookie = login_as(&f.app, "alice").await;
    let res = send(&f.app, "POST", "/api", Some(&cookie), &[SAME_ORIGIN]).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(text(res).await, "changed");
}

#[tokio::test]
async fn with_the_header_check_a_post_with_a_session_needs_its_token() {
    let f = features(|l| l.with_csrf_header("X-CSRF-Token"));
    let cookie = login_as(&f.app, "alice").await;
    let token = token_for(&f.app, &cookie).await;

    // Missing: refused before the handler, the cookie kept, nothing saved.
    let res = send(&f.app, "POST", "/count", Some(&cookie), &[SAME_ORIGIN]).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(set_cookies(&res).is_empty(), "the cookie is kept");
    assert_eq!(cache_control(&res), Some("no-store"));
    assert_eq!(text(res).await, "csrf_missing");
    let res = send(
        &f.app,
        "POST",
        "/count",
        Some(&cookie),
        &[SAME_ORIGIN, ("x-csrf-token", "forged")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(text(res).await, "csrf_malformed");
    let res = send_get(&f.app, "/me", Some(&cookie)).await;
    assert_eq!(
        text(res).await,
        "user=alice role=user count=0",
        "the handler never ran"
    );

    // The session's token passes.
    let res = send(
        &f.app,
        "POST",
        "/count",
        Some(&cookie),
        &[SAME_ORIGIN, ("x-csrf-token", &token)],
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(text(res).await, "1");

    // Safe methods and requests without a session are not checked.
    assert_eq!(
        send_get(&f.app, "/me", Some(&cookie)).await.status(),
        StatusCode::OK
    );
    let res = send(&f.app, "POST", "/api", None, &[SAME_ORIGIN]).await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_token_from_another_session_is_refused() {
    let f = features(|l| l.with_csrf_header("x-csrf-token"));
    let alice = login_as(&f.app, "alice").await;
    let bob = login_as(&f.app, "bob").await;
    let _ = token_for(&f.app, &alice).await;
    let bobs = token_for(&f.app, &bob).await;

    let res = send(
        &f.app,
        "POST",
        "/api",
        Some(&alice),
        &[SAME_ORIGIN, ("x-csrf-token", &bobs)],
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(text(res).await, "csrf_mismatch");

    // The same in a form field, checked by the handler (on a layer without
    // the header check, which a form could not pass).
    let f = features(|l| l);
    let alice = login_as(&f.app, "alice").await;
    let bob = login_as(&f.app, "bob").await;
    let _ = token_for(&f.app, &alice).await;
    let bobs = token_for(&f.app, &bob).await;
    let res = send_form(&f.app, "/form", Some(&alice), &format!("csrf_token={bobs}")).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(set_cookies(&res).is_empty());
    assert_eq!(text(res).await, "csrf_mismatch");
}

#[tokio::test]
async fn a_form_post_is_verified_in_the_handler_and_a_visitor_gets_a_session_for_it() {
    let f = features(|l| l);
    // A visitor without a session renders the form: an anonymous session
    // is created to hold the secret, and its cookie set.
    let res = send_get(&f.app, "/form", None).await;
    assert_eq!(res.status(), StatusCode::OK);
    let cookie = cookie_pair(&res);
    let token = text(res).await;
    assert_eq!(token.len(), latchkey::CSRF_TOKEN_LEN);

    let res = send_form(
        &f.app,
        "/form",
        Some(&cookie),
        &format!("csrf_token={token}&x=1"),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(text(res).await, "accepted");

    let res = send_form(&f.app, "/form", Some(&cookie), "x=1").await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(
        set_cookies(&res).is_empty(),
        "a refusal never clears the cookie"
    );
    assert_eq!(text(res).await, "csrf_missing");

    // Without a session there is no secret to match.
    let res = send_form(&f.app, "/form", None, &format!("csrf_token={token}")).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(text(res).await, "csrf_no_secret");
}

#[tokio::test]
async fn a_token_from_before_the_login_does_not_verify_after_it() {
    let f = features(|l| l);
    let res = send_get(&f.app, "/form", None).await;
    let anonymous = cookie_pair(&res);
    let token = text(res).await;
    let res = send_post(&f.app, "/login/alice", Some(&anonymous)).await;
    let cookie = cookie_pair(&res);
    let res = send_form(
        &f.app,
        "/form",
        Some(&cookie),
        &format!("csrf_token={token}"),
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(text(res).await, "csrf_no_secret");
    // A token rendered after the login works.
    let token = token_for(&f.app, &cookie).await;
    let res = send_form(
        &f.app,
        "/form",
        Some(&cookie),
        &format!("csrf_token={token}"),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_post_logged_in_by_remember_me_is_refused_but_still_gets_its_new_cookies() {
    let f = features(|l| l.with_csrf_header("x-csrf-token"));
    let mut jar = Jar::default();
    assert_eq!(
        jar.send(&f.app, "POST", "/login/alice/remember")
            .await
            .status(),
        StatusCode::OK
    );
    let used = jar.get("__Host-remember").unwrap().to_owned();
    jar.remove("__Host-session");

    // The new session has no secret yet: a state-changing request cannot
    // carry a token of it. Refused, but the token was spent, so both new
    // cookies must reach the browser.
    let res = jar.send(&f.app, "POST", "/api").await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(set_cookies(&res).len(), 2, "{:?}", set_cookies(&res));
    assert_eq!(text(res).await, "csrf_missing");
    assert_ne!(jar.get("__Host-remember"), Some(used.as_str()));
    let res = jar.send(&f.app, "GET", "/me").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(set_cookies(&res).is_empty());
}
