//! The whole story of one user: anonymous, login, privilege change,
//! rotation and reissue, logout, refused cookies, a store outage, caching.

use axum::http::StatusCode;

use crate::support::*;

#[tokio::test]
async fn an_anonymous_request_runs_logged_out_with_no_cookie_and_no_cache_header() {
    let (app, store, _) = app(false);
    let res = send_get(&app, "/", None).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(set_cookies(&res).is_empty());
    assert_eq!(cache_control(&res), None, "no session, nothing to protect");
    assert_eq!(text(res).await, "logged out");
    assert_eq!(store.calls(), 0, "no cookie, no store call");

    let res = send_get(&app, "/me", None).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(text(res).await, "not_logged_in");
}

#[tokio::test]
async fn login_sets_a_hardened_cookie_and_the_next_request_sees_the_user() {
    let (app, _, _) = app(false);
    let res = send_post(&app, "/login/alice", None).await;
    assert_eq!(res.status(), StatusCode::OK);
    let all = set_cookies(&res);
    assert_eq!(all.len(), 1, "{all:?}");
    assert!(all[0].starts_with("__Host-session="));
    assert!(all[0].ends_with("; Path=/; Secure; HttpOnly; SameSite=Lax"));
    assert_eq!(cache_control(&res), Some("no-store"));
    let cookie = cookie_pair(&res);

    let res = send_get(&app, "/me", Some(&cookie)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        set_cookies(&res).is_empty(),
        "a current cookie is left alone"
    );
    assert_eq!(cache_control(&res), Some("no-store"));
    assert_eq!(text(res).await, "user=alice role=user count=0");
}

#[tokio::test]
async fn login_over_a_refused_cookie_sends_only_the_new_token() {
    let (app, _, _) = app(false);
    let res = send_post(&app, "/login/alice", Some("__Host-session=garbage")).await;
    assert_eq!(res.status(), StatusCode::OK);
    let cookie = cookie_pair(&res);
    assert_ne!(cookie, "__Host-session=", "a token, not a clearing cookie");
    let res = send_get(&app, "/me", Some(&cookie)).await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn login_rotates_the_anonymous_token_away_so_a_planted_cookie_gains_nothing() {
    let (app, _, manager) = app(false);
    // An attacker's own session, planted in the victim's browser.
    let planted = latchkey::SessionManager::create(&*manager, latchkey::NewSession::new()).unwrap();
    let planted = format!("__Host-session={}", planted.token());
    let res = send_post(&app, "/login/alice", Some(&planted)).await;
    assert_eq!(res.status(), StatusCode::OK);
    let cookie = cookie_pair(&res);
    assert_ne!(cookie, planted);
    // The planter's copy does not reach alice's session.
    let res = send_get(&app, "/me", Some(&planted)).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = send_get(&app, "/me", Some(&cookie)).await;
    assert_eq!(text(res).await, "user=alice role=user count=0");
}

#[tokio::test]
async fn a_privilege_change_changes_the_cookie_and_refuses_the_old_one_without_clearing_it() {
    let (app, _, _) = app(false);
    let old = login_as(&app, "alice").await;

    let res = send_post(&app, "/admin", Some(&old)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(cache_control(&res), Some("no-store"));
    let new = cookie_pair(&res);
    assert_ne!(new, old);

    let res = send_get(&app, "/me", Some(&new)).await;
    assert_eq!(text(res).await, "user=alice role=admin count=0");

    // A request that left before the change arrives with the old cookie:
    // it never sees the new role, and its response must not clear the
    // cookie the change just set.
    let res = send_get(&app, "/me", Some(&old)).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(set_cookies(&res).is_empty(), "{:?}", set_cookies(&res));
    assert!(!text(res).await.contains("admin"));
}

#[tokio::test]
async fn a_token_rotated_moments_ago_is_answered_with_the_successor() {
    let (app, _, _) = app(false);
    let old = login_as(&app, "alice").await;
    let res = send_post(&app, "/rotate", Some(&old)).await;
    assert_eq!(res.status(), StatusCode::OK);
    let new = cookie_pair(&res);
    assert_ne!(new, old);

    // Within the grace window: served, and handed the successor.
    let res = send_get(&app, "/me", Some(&old)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(cookie_pair(&res), new);
    assert_eq!(cache_control(&res), Some("no-store"));
    assert_eq!(text(res).await, "user=alice role=user count=0");

    let res = send_get(&app, "/me", Some(&new)).await;
    assert!(set_cookies(&res).is_empty());
}

#[tokio::test]
async fn the_handlers_own_token_wins_over_a_reissue_hint() {
    let (app, _, _) = app(false);
    let old = login_as(&app, "alice").await;
    let successor = cookie_pair(&send_post(&app, "/rotate", Some(&old)).await);

    let res = send_post(&app, "/admin", Some(&old)).await;
    assert_eq!(res.status(), StatusCode::OK);
    let newest = cookie_pair(&res);
    assert_ne!(newest, old);
    assert_ne!(newest, successor);
    let res = send_get(&app, "/me", Some(&newest)).await;
    assert_eq!(text(res).await, "user=alice role=admin count=0");
}

#[tokio::test]
async fn a_save_after_a_reissue_hint_keeps_the_hint() {
    let (app, _, _) = app(false);
    let old = login_as(&app, "alice").await;
    let successor = cookie_pair(&send_post(&app, "/rotate", Some(&old)).await);
    let res = send_post(&app, "/count", Some(&old)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(cookie_pair(&res), successor);
    let res = send_get(&app, "/me", Some(&successor)).await;
    assert_eq!(text(res).await, "user=alice role=user count=1");
}

#[tokio::test]
async fn logout_after_a_reissue_hint_sends_only_the_clearing_cookie() {
    let (app, _, _) = app(false);
    let old = login_as(&app, "alice").await;
    let successor = cookie_pair(&send_post(&app, "/rotate", Some(&old)).await);
    let res = send_post(&app, "/logout", Some(&old)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(set_cookies(&res), [CLEAR]);
    let res = send_get(&app, "/me", Some(&successor)).await;
    assert_eq!(
        res.status(),
        StatusCode::UNAUTHORIZED,
        "the whole chain ended"
    );
}

#[tokio::test]
async fn logout_clears_the_cookie_and_the_ended_token_is_refused_and_cleared() {
    let (app, _, _) = app(false);
    let cookie = login_as(&app, "alice").await;
    let res = send_post(&app, "/logout", Some(&cookie)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(set_cookies(&res), [CLEAR]);
    assert_eq!(cache_control(&res), Some("no-store"));

    let res = send_get(&app, "/me", Some(&cookie)).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(set_cookies(&res), [CLEAR], "a terminated cookie is cleared");
    assert_eq!(cache_control(&res), Some("no-store"));
}

#[tokio::test]
async fn a_garbage_cookie_runs_logged_out_and_is_cleared() {
    let (app, _, _) = app(false);
    let res = send_get(&app, "/", Some("__Host-session=garbage")).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(set_cookies(&res), [CLEAR]);
    assert_eq!(
        cache_control(&res),
        Some("no-store"),
        "it carries a Set-Cookie"
    );
    assert_eq!(text(res).await, "logged out");

    let res = send_get(&app, "/me", Some("__Host-session=garbage")).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(set_cookies(&res), [CLEAR]);
    assert_eq!(
        text(res).await,
        "not_logged_in",
        "a reason code, never the token"
    );
}

#[tokio::test]
async fn ambiguous_cookies_are_refused_and_cleared() {
    let (app, store, _) = app(false);
    let cookie = login_as(&app, "alice").await;
    let calls = store.calls();
    let tossed = format!("__Host-session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA; {cookie}");
    let res = send_get(&app, "/me", Some(&tossed)).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(set_cookies(&res), [CLEAR]);
    assert_eq!(store.calls(), calls, "neither value was looked up");
}

#[tokio::test]
async fn other_apps_cookies_and_split_cookie_headers_still_find_the_session() {
    let (app, _, _) = app(false);
    let cookie = login_as(&app, "alice").await;
    let foreign = foreign_cookies(10 * 1024);
    let res = send_get(
        &app,
        "/me",
        Some(&format!("{foreign}; {cookie}; {foreign}")),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(set_cookies(&res).is_empty());

    // HTTP/2 may split cookies over several headers.
    let res = send(
        &app,
        "GET",
        "/me",
        Some("theme=dark"),
        &[("cookie", &cookie)],
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_cookie_header_past_the_scan_limit_runs_logged_out_and_keeps_the_cookie() {
    let (app, _, _) = app(false);
    let cookie = login_as(&app, "alice").await;
    let crowded = format!("{cookie}; {}", foreign_cookies(64 * 1024));
    let res = send_get(&app, "/", Some(&crowded)).await;
    assert_eq!(res.status(), StatusCode::OK, "a page, not a 400");
    assert!(set_cookies(&res).is_empty(), "the cookie was not read");
    assert_eq!(text(res).await, "logged out");
    let res = send_get(&app, "/me", Some(&cookie)).await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_store_outage_is_503_and_keeps_the_cookie() {
    for blocks in [false, true] {
        let (app, store, _) = app(blocks);
        let cookie = login_as(&app, "alice").await;
        store.set(Mode::Down);
        let res = send_get(&app, "/me", Some(&cookie)).await;
        assert_eq!(
            res.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "blocks={blocks}"
        );
        assert!(
            set_cookies(&res).is_empty(),
            "the session may be fine: keep it"
        );
        assert_eq!(text(res).await, "backend");

        let res = send_post(&app, "/login/bob", None).await;
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(set_cookies(&res).is_empty());

        store.set(Mode::Up);
        let res = send_get(&app, "/me", Some(&cookie)).await;
        assert_eq!(res.status(), StatusCode::OK);
    }
}

#[tokio::test]
async fn a_panicking_store_call_is_503_never_a_rejection() {
    for blocks in [false, true] {
        let (app, store, _) = app(blocks);
        let cookie = login_as(&app, "alice").await;
        store.set(Mode::Panic);
        let res = send_get(&app, "/me", Some(&cookie)).await;
        assert_eq!(
            res.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "blocks={blocks}"
        );
        assert!(set_cookies(&res).is_empty(), "not cleared");
        assert_eq!(text(res).await, "backend");
        store.set(Mode::Up);
        let res = send_get(&app, "/me", Some(&cookie)).await;
        assert_eq!(res.status(), StatusCode::OK, "blocks={blocks}");
    }
}

#[tokio::test]
async fn responses_with_a_session_are_never_cached_and_others_are_left_alone() {
    let (app, _, _) = app(false);
    let res = send_get(&app, "/cached", None).await;
    assert_eq!(cache_control(&res), Some("public, max-age=600"));

    let cookie = login_as(&app, "alice").await;
    let res = send_get(&app, "/cached", Some(&cookie)).await;
    assert_eq!(
        cache_control(&res),
        Some("no-store"),
        "the handler's caching is overridden"
    );
    assert_eq!(text(res).await, "user=alice");
}

#[tokio::test]
async fn operations_that_need_a_session_answer_401_without_one() {
    let (app, _, _) = app(false);
    let res = send_post(&app, "/count", None).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(text(res).await, "no_session");
    let res = send_post(&app, "/rotate", None).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    // Logout without a session only clears the cookie.
    let res = send_post(&app, "/logout", None).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(set_cookies(&res), [CLEAR]);
}

#[tokio::test]
async fn saves_land_and_the_count_survives_a_privilege_change() {
    let (app, _, _) = app(true);
    let cookie = login_as(&app, "alice").await;
    for want in 1..=3 {
        let res = send_post(&app, "/count", Some(&cookie)).await;
        assert!(
            set_cookies(&res).is_empty(),
            "server-side saves keep the cookie"
        );
        assert_eq!(text(res).await, want.to_string());
    }
    let cookie = cookie_pair(&send_post(&app, "/admin", Some(&cookie)).await);
    let res = send_get(&app, "/me", Some(&cookie)).await;
    assert_eq!(text(res).await, "user=alice role=admin count=3");
}

#[tokio::test]
async fn a_route_outside_the_layer_gets_500_from_the_extractor() {
    let res = send_get(&routes(), "/me", None).await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(text(res).await, "session_layer_missing");
}

#[tokio::test]
async fn debug_of_the_handle_does_not_leak_a_token() {
    let (app, _, _) = app(false);
    let old = login_as(&app, "alice").await;
    let successor = cookie_pair(&send_post(&app, "/rotate", Some(&old)).await);
    // Loaded by the old token, holding the successor as a reissue hint.
    let res = send_get(&app, "/debug", Some(&old)).await;
    assert_eq!(cookie_pair(&res), successor);
    let shown = text(res).await;
    for cookie in [&old, &successor] {
        let token = cookie.split_once('=').unwrap().1;
        assert!(!shown.contains(token), "{shown}");
    }
    assert!(shown.contains("fingerprint"), "{shown}");
    assert!(shown.contains("cookie: \"set\""), "{shown}");
}
