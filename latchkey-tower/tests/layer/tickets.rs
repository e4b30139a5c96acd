//! Stateless tickets through the same layer.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use latchkey::{CookieConfig, KeyRing, ManualClock, MemoryStore, TicketKey, TicketManager};
use latchkey_tower::SessionLayer;

use crate::support::*;

fn tickets() -> TicketManager {
    let cookies = CookieConfig::default();
    TicketManager::new(cookies.name(), KeyRing::new(1, TicketKey::generate()))
        .unwrap()
        .with_cookie(&cookies)
}

fn app_with(manager: TicketManager) -> Router {
    routes().layer(SessionLayer::new(
        Arc::new(manager),
        CookieConfig::default(),
    ))
}

#[tokio::test]
async fn tickets_log_in_save_change_privilege_and_log_out() {
    let app = app_with(tickets());
    let cookie = login_as(&app, "alice").await;
    let res = send_get(&app, "/me", Some(&cookie)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(text(res).await, "user=alice role=user count=0");

    // A ticket carries its data: every save sends a new one.
    let res = send_post(&app, "/count", Some(&cookie)).await;
    assert_eq!(cache_control(&res), Some("no-store"));
    let cookie = cookie_pair(&res);
    let res = send_post(&app, "/count", Some(&cookie)).await;
    let cookie = cookie_pair(&res);
    assert_eq!(text(res).await, "2");

    let cookie = cookie_pair(&send_post(&app, "/admin", Some(&cookie)).await);
    let res = send_get(&app, "/me", Some(&cookie)).await;
    assert_eq!(text(res).await, "user=alice role=admin count=2");

    // Without revocation state only the cookie can go.
    let res = send_post(&app, "/logout", Some(&cookie)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(set_cookies(&res), [CLEAR]);
}

#[tokio::test]
async fn a_forged_ticket_is_refused_and_cleared() {
    let app = app_with(tickets());
    let cookie = login_as(&app, "alice").await;
    let other = app_with(tickets()); // another key
    let res = send_get(&other, "/me", Some(&cookie)).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(set_cookies(&res), [CLEAR]);
}

#[tokio::test]
async fn an_aging_ticket_is_reissued_on_load() {
    let clock = Arc::new(ManualClock::starting_now());
    let app = app_with(tickets().with_clock(clock.clone()));
    let cookie = login_as(&app, "alice").await;
    // Past the touch interval (60 s by default), inside the idle timeout.
    clock.advance(Duration::from_secs(120));
    let res = send_get(&app, "/me", Some(&cookie)).await;
    assert_eq!(res.status(), StatusCode::OK);
    let renewed = cookie_pair(&res);
    assert_ne!(renewed, cookie);
    assert_eq!(cache_control(&res), Some("no-store"));
    let res = send_get(&app, "/me", Some(&renewed)).await;
    assert!(set_cookies(&res).is_empty());
}

#[tokio::test]
async fn with_revocation_a_logged_out_ticket_is_refused_and_cleared() {
    let app = app_with(tickets().with_revocation(MemoryStore::new()));
    let cookie = login_as(&app, "alice").await;
    let res = send_post(&app, "/logout", Some(&cookie)).await;
    assert_eq!(set_cookies(&res), [CLEAR]);
    let res = send_get(&app, "/me", Some(&cookie)).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(set_cookies(&res), [CLEAR]);
}

#[tokio::test]
async fn with_tickets_a_flash_and_a_csrf_secret_travel_in_a_new_ticket() {
    let app = feature_routes().layer(SessionLayer::new(
        Arc::new(tickets()),
        CookieConfig::default(),
    ));
    let cookie = login_as(&app, "alice").await;

    // The first token creates the secret: the save issues a new ticket.
    let res = send_get(&app, "/form", Some(&cookie)).await;
    let cookie = cookie_pair(&res);
    let token = text(res).await;
    let res = send_form(&app, "/form", Some(&cookie), &format!("csrf_token={token}")).await;
    assert_eq!(res.status(), StatusCode::OK);

    let res = send_post(&app, "/flash/Saved.", Some(&cookie)).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let cookie = cookie_pair(&res);
    let res = send_get(&app, "/flashes", Some(&cookie)).await;
    let cookie = cookie_pair(&res);
    assert_eq!(text(res).await, "notice:Saved.");
    let res = send_get(&app, "/flashes", Some(&cookie)).await;
    assert!(set_cookies(&res).is_empty(), "nothing taken, nothing saved");
    assert_eq!(text(res).await, "");
}
