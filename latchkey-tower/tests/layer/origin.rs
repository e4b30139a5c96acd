//! The origin check: login CSRF refused before the handler and the store.

use std::sync::Arc;

use axum::http::StatusCode;
use latchkey::{CookieConfig, MemoryStore, StoreManager};
use latchkey_tower::SessionLayer;

use crate::support::*;

const HOST: (&str, &str) = ("host", "app.example");

#[tokio::test]
async fn cross_site_posts_are_refused_before_the_handler_and_the_store() {
    let refused: [&[(&str, &str)]; 5] = [
        &[HOST, ("sec-fetch-site", "cross-site")],
        &[
            HOST,
            ("sec-fetch-site", "same-site"),
            ("origin", "https://app.example"),
        ],
        // An older browser: no Sec-Fetch-Site, an Origin that is not ours.
        &[HOST, ("origin", "https://evil.example")],
        // An opaque origin with nothing to vouch for it.
        &[HOST, ("origin", "null")],
        // Not UTF-8: matches nothing.
        &[HOST, ("sec-fetch-site", "cross-site\u{e9}")],
    ];
    for headers in refused {
        let (app, store, _) = app(true);
        let res = send(&app, "POST", "/login/mallory", None, headers).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{headers:?}");
        assert!(set_cookies(&res).is_empty(), "{headers:?}");
        assert_eq!(text(res).await, "cross_origin");
        assert_eq!(
            store.calls(),
            0,
            "no session was read or written: {headers:?}"
        );
    }
}

#[tokio::test]
async fn a_cross_site_post_cannot_touch_a_logged_in_session() {
    let (app, _, _) = app(false);
    let cookie = login_as(&app, "alice").await;
    let res = send(
        &app,
        "POST",
        "/logout",
        Some(&cookie),
        &[("sec-fetch-site", "cross-site")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(set_cookies(&res).is_empty());
    let res = send_get(&app, "/me", Some(&cookie)).await;
    assert_eq!(res.status(), StatusCode::OK, "still logged in");
}

#[tokio::test]
async fn our_own_pages_pass() {
    let accepted: [&[(&str, &str)]; 5] = [
        &[HOST, ("sec-fetch-site", "same-origin")],
        // Chromium's same-origin form post under `Referrer-Policy: no-referrer`.
        &[HOST, ("sec-fetch-site", "same-origin"), ("origin", "null")],
        // Typed or bookmarked.
        &[HOST, ("sec-fetch-site", "none")],
        // An older browser on our own origin.
        &[HOST, ("origin", "https://app.example")],
        // A non-browser client: no victim's cookie to abuse.
        &[HOST],
    ];
    for headers in accepted {
        let (app, _, _) = app(false);
        let res = send(&app, "POST", "/login/alice", None, headers).await;
        assert_eq!(res.status(), StatusCode::OK, "{headers:?}");
        assert_eq!(set_cookies(&res).len(), 1, "{headers:?}");
    }
}

#[tokio::test]
async fn safe_methods_are_never_refused() {
    let (app, _, _) = app(false);
    let cookie = login_as(&app, "alice").await;
    let res = send(
        &app,
        "GET",
        "/me",
        Some(&cookie),
        &[HOST, ("sec-fetch-site", "cross-site"), ("origin", "null")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_authority_of_an_http2_request_stands_in_for_host() {
    let (app, _, _) = app(false);
    let res = send(
        &app,
        "POST",
        "https://app.example/login/alice",
        None,
        &[("origin", "https://app.example")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let res = send(
        &app,
        "POST",
        "https://app.example/login/alice",
        None,
        &[("origin", "https://evil.example")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
}

fn layer() -> SessionLayer {
    SessionLayer::new(
        Arc::new(StoreManager::new(MemoryStore::new())),
        CookieConfig::default(),
    )
}

#[tokio::test]
async fn allowed_origins_pass_behind_a_proxy_that_rewrites_host() {
    let behind_proxy: &[(&str, &str)] =
        &[("host", "10.0.0.7:8080"), ("origin", "https://app.example")];
    let app = routes().layer(layer());
    let res = send(&app, "POST", "/login/alice", None, behind_proxy).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);

    let app = routes().layer(layer().with_allowed_origin("https://APP.example"));
    let res = send(&app, "POST", "/login/alice", None, behind_proxy).await;
    assert_eq!(res.status(), StatusCode::OK);
    // Still not any origin.
    let res = send(
        &app,
        "POST",
        "/login/alice",
        None,
        &[
            ("host", "10.0.0.7:8080"),
            ("origin", "https://evil.example"),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_check_can_be_turned_off_by_name() {
    let app = routes().layer(layer().danger_without_origin_check());
    let res = send(
        &app,
        "POST",
        "/login/alice",
        None,
        &[HOST, ("sec-fetch-site", "cross-site")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
}
