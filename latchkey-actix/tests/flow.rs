//! The middleware end to end through `actix_web::test`: no network, no
//! sleeps in the tests (the library's own retry backoff waits a few ms).

#[macro_use]
mod support;

use std::rc::Rc;
use std::sync::Arc;
use std::thread;

use actix_web::http::header::{COOKIE, HOST, ORIGIN};
use actix_web::test::{self, TestRequest};
use actix_web::{App, HttpResponse, web};
use latchkey::{CookieConfig, KeyRing, SessionManager, StoreManager, TicketKey, TicketManager};
use latchkey_actix::{Authenticated, SessionError, SessionHandle, SessionMiddleware};
use tokio::sync::Barrier;

use support::*;

const CLEAR: &str = "__Host-session=; Max-Age=0; Path=/; Secure; HttpOnly; SameSite=Lax";

async fn home(handle: SessionHandle) -> String {
    match handle.user() {
        Some(user) => format!("hello, {user}"),
        None => "anonymous".into(),
    }
}

async fn me(auth: Authenticated) -> String {
    format!("user={} role={}", auth.user(), role(auth.session()))
}

async fn login(
    handle: SessionHandle,
    user: web::Path<String>,
) -> Result<HttpResponse, SessionError> {
    handle.login(&user).await?;
    Ok(HttpResponse::SeeOther()
        .insert_header(("Location", "/"))
        .finish())
}

/// Logs in after the request's session was ended behind its back (another
/// request logged out, an administrator ended it).
async fn login_after_end(
    handle: SessionHandle,
    manager: web::Data<Arc<dyn SessionManager>>,
) -> Result<String, SessionError> {
    let session = handle.session().ok_or(SessionError::NoSession)?;
    manager.terminate(&session).map_err(SessionError::from)?;
    let session = handle.login("alice").await?;
    Ok(session.user().unwrap_or_default().to_owned())
}

async fn read_count(auth: Authenticated) -> String {
    count_of(auth.session()).to_string()
}

async fn debug(handle: SessionHandle, auth: Option<Authenticated>) -> String {
    format!("{handle:?} {auth:?}")
}

fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(home))
        .route("/me", web::get().to(me))
        .route("/login/{user}", web::post().to(login))
        .route("/admin", web::post().to(admin))
        .route("/rotate", web::post().to(rotate))
        .route("/logout", web::post().to(logout))
        .route("/count", web::post().to(increment))
        .route("/count", web::get().to(read_count))
        .route("/together", web::post().to(together))
        .route("/debug", web::get().to(debug))
        .route("/login-after-end", web::post().to(login_after_end));
}

fn sessions(store: &Arc<Watched>) -> SessionMiddleware {
    let manager: Arc<dyn SessionManager> = Arc::new(StoreManager::new(Arc::clone(store)));
    SessionMiddleware::new(manager, CookieConfig::default())
}

#[actix_web::test]
async fn the_whole_story_from_anonymous_to_logout() {
    let store = Watched::new(false);
    let app = app!(sessions(&store));

    // Anonymous: a page, no cookie, nothing to keep out of caches.
    let out = send(&app, get("/", None).to_request()).await;
    assert_eq!((out.status, out.body.as_str()), (200, "anonymous"));
    assert!(out.set_cookies.is_empty());
    assert!(!out.no_store());
    assert_eq!(send(&app, get("/me", None).to_request()).await.status, 401);

    // Login sets the hardened cookie, and the response is not cached.
    let out = send(&app, post("/login/alice", None).to_request()).await;
    assert_eq!(out.status, 303);
    assert_eq!(out.set_cookies.len(), 1);
    assert!(out.set_cookies[0].starts_with("__Host-session="));
    assert!(
        out.set_cookies[0].ends_with("; Path=/; Secure; HttpOnly; SameSite=Lax"),
        "{:?}",
        out.set_cookies
    );
    assert!(out.no_store());
    let cookie = out.cookie();

    // The cookie shows the user; a current cookie is left alone.
    let out = send(&app, get("/me", Some(&cookie)).to_request()).await;
    assert_eq!(
        (out.status, out.body.as_str()),
        (200, "user=alice role=user")
    );
    assert!(out.set_cookies.is_empty());
    assert!(out.no_store(), "a page showing the user's data");

    // Logout clears the cookie, and the old token is refused and cleared.
    let out = send(&app, post("/logout", Some(&cookie)).to_request()).await;
    assert_eq!(out.status, 200);
    assert_eq!(out.set_cookies, [CLEAR]);
    assert!(out.no_store());
    let out = send(&app, get("/me", Some(&cookie)).to_request()).await;
    assert_eq!((out.status, out.body.as_str()), (401, "not_logged_in"));
    assert_eq!(out.set_cookies, [CLEAR], "a terminated cookie is cleared");
}

#[actix_web::test]
async fn a_privilege_change_changes_the_cookie_and_refuses_the_old_one_without_clearing() {
    let store = Watched::new(false);
    let app = app!(sessions(&store));
    let old = login_as!(&app, "alice", 303);

    let out = send(&app, post("/admin", Some(&old)).to_request()).await;
    assert_eq!(out.status, 200, "{out:?}");
    let new = out.cookie();
    assert_ne!(new, old);

    let out = send(&app, get("/me", Some(&new)).to_request()).await;
    assert_eq!(out.body, "user=alice role=admin");

    // A request that left before the change arrives with the old cookie:
    // it never sees the new role, and its response must not clear the
    // cookie the change set.
    let out = send(&app, get("/me", Some(&old)).to_request()).await;
    assert_eq!(out.status, 401);
    assert!(out.set_cookies.is_empty(), "{:?}", out.set_cookies);
    assert!(!out.body.contains("admin"));
}

#[actix_web::test]
async fn a_token_rotated_moments_ago_is_reissued_its_successor() {
    let store = Watched::new(false);
    let app = app!(sessions(&store));
    let old = login_as!(&app, "alice", 303);
    let out = send(&app, post("/rotate", Some(&old)).to_request()).await;
    let new = out.cookie();
    assert_ne!(new, old);

    // Within the grace window the old token still works, and the response
    // carries the successor's cookie.
    let out = send(&app, get("/me", Some(&old)).to_request()).await;
    assert_eq!(
        (out.status, out.body.as_str()),
        (200, "user=alice role=user")
    );
    assert_eq!(out.cookie(), new);
    assert!(out.no_store());
}

#[actix_web::test]
async fn the_handlers_newer_token_wins_over_a_reissue_hint() {
    let store = Watched::new(false);
    let app = app!(sessions(&store));
    let first = login_as!(&app, "alice", 303);
    let second = send(&app, post("/rotate", Some(&first)).to_request())
        .await
        .cookie();

    // The first token is reissued the second, and the handler rotates
    // again: only the third is sent.
    let out = send(&app, post("/rotate", Some(&first)).to_request()).await;
    let third = out.cookie();
    assert_ne!(third, first);
    assert_ne!(third, second);
    let out = send(&app, get("/me", Some(&third)).to_request()).await;
    assert_eq!(out.status, 200);

    // A logout after a reissue sends only the clearing cookie.
    let out = send(&app, post("/logout", Some(&second)).to_request()).await;
    assert_eq!(out.set_cookies, [CLEAR]);
}

#[actix_web::test]
async fn a_rejected_cookie_runs_logged_out_and_is_cleared() {
    let store = Watched::new(false);
    let app = app!(sessions(&store));

    // Garbage in the cookie: a page, logged out, and the cookie cleared.
    let out = send(&app, get("/", Some("__Host-session=garbage")).to_request()).await;
    assert_eq!((out.status, out.body.as_str()), (200, "anonymous"));
    assert_eq!(out.set_cookies, [CLEAR]);
    assert!(out.no_store(), "a response setting a cookie");

    // Two different session cookies (cookie tossing): refused and cleared.
    let cookie = login_as!(&app, "alice", 303);
    let tossed = format!("__Host-session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA; {cookie}");
    let out = send(&app, get("/me", Some(&tossed)).to_request()).await;
    assert_eq!(out.status, 401);
    assert_eq!(out.set_cookies, [CLEAR]);

    // Login from a refused cookie sends the new token, not the clear.
    let out = send(
        &app,
        post("/login/bob", Some("__Host-session=garbage")).to_request(),
    )
    .await;
    assert_eq!(out.status, 303);
    assert_ne!(out.cookie(), format!("__Host-session="));
    assert!(!out.set_cookies[0].contains("Max-Age=0"));
}

#[actix_web::test]
async fn a_cookie_header_crowded_past_the_scan_limit_runs_logged_out_and_keeps_the_cookie() {
    let store = Watched::new(false);
    let app = app!(sessions(&store));
    let cookie = login_as!(&app, "alice", 303);
    let mut crowded = cookie.clone();
    let mut i = 0;
    while crowded.len() <= 64 * 1024 {
        crowded.push_str(&format!("; other_app_{i}={}", "v".repeat(100)));
        i += 1;
    }
    let out = send(&app, get("/", Some(&crowded)).to_request()).await;
    assert_eq!(
        (out.status, out.body.as_str()),
        (200, "anonymous"),
        "never a 400"
    );
    assert!(out.set_cookies.is_empty(), "the cookie was not read");
    // Across several Cookie headers too (HTTP/2 splits them).
    let split = get("/me", None)
        .append_header((COOKIE, "theme=dark"))
        .append_header((COOKIE, cookie.as_str()))
        .to_request();
    let out = send(&app, split).await;
    assert_eq!(out.body, "user=alice role=user");
}

#[actix_web::test]
async fn a_store_outage_is_503_and_keeps_the_cookie() {
    let store = Watched::new(false);
    let app = app!(sessions(&store));
    let cookie = login_as!(&app, "alice", 303);

    store.set(Mode::Down);
    let out = send(&app, get("/me", Some(&cookie)).to_request()).await;
    assert_eq!((out.status, out.body.as_str()), (503, "backend"));
    assert!(
        out.set_cookies.is_empty(),
        "the session may be fine: keep it"
    );
    // The handler never ran, and no page was served logged out.
    let out = send(&app, get("/", Some(&cookie)).to_request()).await;
    assert_eq!(out.status, 503);
    assert!(out.set_cookies.is_empty());

    store.set(Mode::Up);
    let out = send(&app, get("/me", Some(&cookie)).to_request()).await;
    assert_eq!(out.status, 200);
}

#[actix_web::test]
async fn an_outage_during_an_operation_is_503_and_keeps_the_cookie() {
    let store = Watched::new(true);
    let app = app!(sessions(&store));
    let cookie = login_as!(&app, "alice", 303);
    // Reads pass, writes fail: the handler runs, its save and its logout
    // do not.
    store.set(Mode::WritesDown);
    for path in ["/count", "/logout", "/admin"] {
        let out = send(&app, post(path, Some(&cookie)).to_request()).await;
        assert_eq!((out.status, out.body.as_str()), (503, "backend"), "{path}");
        assert!(out.set_cookies.is_empty(), "{path}: {:?}", out.set_cookies);
        assert!(out.no_store(), "{path}: a session took part");
    }
    store.set(Mode::Up);
    let out = send(&app, get("/me", Some(&cookie)).to_request()).await;
    assert_eq!(
        (out.status, out.body.as_str()),
        (200, "user=alice role=user")
    );
}

#[actix_web::test]
async fn a_panicking_store_call_is_a_503_never_a_rejection() {
    for blocks in [false, true] {
        let store = Watched::new(blocks);
        let app = app!(sessions(&store));
        let cookie = login_as!(&app, "alice", 303);
        store.set(Mode::Panic);
        let out = send(&app, get("/me", Some(&cookie)).to_request()).await;
        assert_eq!(
            (out.status, out.body.as_str()),
            (503, "backend"),
            "blocks={blocks}"
        );
        assert!(out.set_cookies.is_empty(), "blocks={blocks}");
        store.set(Mode::Up);
        let out = send(&app, get("/me", Some(&cookie)).to_request()).await;
        assert_eq!(out.status, 200, "blocks={blocks}");
    }
}

#[actix_web::test]
async fn cross_site_posts_are_refused_before_the_handler_and_the_store() {
    let store = Watched::new(false);
    let app = app!(sessions(&store));
    let forged = [
        ("Sec-Fetch-Site", "cross-site", None),
        ("Sec-Fetch-Site", "same-site", None),
        ("Origin", "https://evil.example", None),
        ("Origin", "null", None),
        ("Origin", "https://evil.example", Some("app.example")),
        ("Origin", "null", Some("app.example")),
    ];
    for (name, value, host) in forged {
        let mut req = TestRequest::post()
            .uri("/login/mallory")
            .insert_header((name, value));
        if let Some(host) = host {
            req = req.insert_header((HOST, host));
        }
        let out = send(&app, req.to_request()).await;
        assert_eq!(
            (out.status, out.body.as_str()),
            (403, "cross_origin"),
            "{name}: {value}"
        );
        assert!(out.set_cookies.is_empty());
    }
    assert_eq!(store.calls(), 0, "no session was read or written");

    // A logged-in user's cookie on a forged request: refused, untouched.
    let cookie = login_as!(&app, "alice", 303);
    let before = store.calls();
    let req = TestRequest::post()
        .uri("/logout")
        .insert_header(("Sec-Fetch-Site", "cross-site"))
        .insert_header((COOKIE, cookie.as_str()));
    let out = send(&app, req.to_request()).await;
    assert_eq!(out.status, 403);
    assert!(out.set_cookies.is_empty());
    assert_eq!(store.calls(), before);
    assert_eq!(
        send(&app, get("/me", Some(&cookie)).to_request())
            .await
            .status,
        200
    );
}

#[actix_web::test]
async fn our_own_pages_may_post_including_with_origin_null() {
    let store = Watched::new(false);
    let app = app!(sessions(&store));
    let ours = [
        // Chromium posting our form under `Referrer-Policy: no-referrer`.
        vec![("Sec-Fetch-Site", "same-origin"), ("Origin", "null")],
        vec![("Sec-Fetch-Site", "none")],
        // An older browser: the Origin matches the Host.
        vec![("Origin", "https://app.example"), ("Host", "app.example")],
        // Not a browser: neither header.
        vec![],
    ];
    for headers in ours {
        let mut req = TestRequest::post().uri("/login/alice");
        for h in &headers {
            req = req.insert_header(*h);
        }
        let out = send(&app, req.to_request()).await;
        assert_eq!(out.status, 303, "{headers:?}: {out:?}");
    }
    // Safe methods are never refused.
    let req = get("/", None).insert_header(("Sec-Fetch-Site", "cross-site"));
    assert_eq!(send(&app, req.to_request()).await.status, 200);
}

#[actix_web::test]
async fn the_origin_check_can_allow_origins_or_be_disabled() {
    let store = Watched::new(false);
    let allowed = app!(sessions(&store).with_allowed_origin("https://app.example.com"));
    let from = |origin: &str| {
        TestRequest::post()
            .uri("/login/alice")
            .insert_header((ORIGIN, origin))
            .insert_header((HOST, "10.0.0.7:8080"))
            .to_request()
    };
    assert_eq!(
        send(&allowed, from("https://app.example.com")).await.status,
        303
    );
    assert_eq!(
        send(&allowed, from("https://evil.example")).await.status,
        403
    );

    let open = app!(sessions(&store).danger_without_origin_check());
    assert_eq!(send(&open, from("https://evil.example")).await.status, 303);
}

/// Runs `n` increments on one cookie at once, every request holding at the
/// barrier until all loaded the same version; returns the statuses and the
/// final count.
macro_rules! concurrent_increments {
    ($middleware:expr, $n:expr) => {{
        let n: usize = $n;
        let barrier = web::Data::new(Barrier::new(n));
        let app = Rc::new(
            test::init_service(
                App::new()
                    .app_data(barrier)
                    .wrap($middleware)
                    .configure(routes),
            )
            .await,
        );
        let cookie = login_as!(&*app, "alice", 303);
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let app = Rc::clone(&app);
                let req = post("/together", Some(&cookie)).to_request();
                actix_web::rt::spawn(async move { send(&*app, req).await })
            })
            .collect();
        let mut statuses = Vec::new();
        for task in tasks {
            statuses.push(task.await.unwrap().status);
        }
        let total = send(&*app, get("/count", Some(&cookie)).to_request()).await;
        (statuses, total.body)
    }};
}

#[actix_web::test]
async fn concurrent_saves_on_one_cookie_lose_no_update() {
    for blocks in [false, true] {
        let store = Watched::new(blocks);
        let (statuses, total) = concurrent_increments!(sessions(&store), 8);
        assert!(
            statuses.iter().all(|s| *s == 200),
            "blocks={blocks}: {statuses:?}"
        );
        assert_eq!(total, "8", "blocks={blocks}");
    }
}

#[actix_web::test]
async fn a_store_that_cannot_block_is_called_on_the_request_thread() {
    // The test runtime runs the service on this thread.
    let here = thread::current().id();
    let store = Watched::new(false);
    let app = app!(sessions(&store));
    let cookie = login_as!(&app, "alice", 303);
    let cookie = send(&app, post("/admin", Some(&cookie)).to_request())
        .await
        .cookie();
    send(&app, get("/me", Some(&cookie)).to_request()).await;
    send(&app, post("/logout", Some(&cookie)).to_request()).await;
    let callers = store.callers.lock().unwrap();
    assert!(callers.len() >= 4, "the store was used: {}", callers.len());
    assert!(callers.iter().all(|t| *t == here));
}

#[actix_web::test]
async fn a_store_that_may_block_is_never_called_on_the_request_thread() {
    let here = thread::current().id();
    let store = Watched::new(true);
    let app = app!(sessions(&store));
    let cookie = login_as!(&app, "alice", 303);
    let cookie = send(&app, post("/admin", Some(&cookie)).to_request())
        .await
        .cookie();
    send(&app, get("/me", Some(&cookie)).to_request()).await;
    send(&app, post("/count", Some(&cookie)).to_request()).await;
    send(&app, post("/logout", Some(&cookie)).to_request()).await;
    let callers = store.callers.lock().unwrap();
    assert!(callers.len() >= 5, "the store was used: {}", callers.len());
    assert!(callers.iter().all(|t| *t != here));
}

#[actix_web::test]
async fn stateless_tickets_work_through_the_same_middleware() {
    let cookies = CookieConfig::default();
    let tickets = TicketManager::new("session", KeyRing::new(1, TicketKey::generate()))
        .unwrap()
        .with_cookie(&cookies);
    let manager: Arc<dyn SessionManager> = Arc::new(tickets);
    let app = app!(SessionMiddleware::new(manager, cookies));

    let ticket = login_as!(&app, "alice", 303);
    let out = send(&app, get("/me", Some(&ticket)).to_request()).await;
    assert_eq!(
        (out.status, out.body.as_str()),
        (200, "user=alice role=user")
    );

    // Tickets carry their data: a save sends a new ticket.
    let out = send(&app, post("/count", Some(&ticket)).to_request()).await;
    assert_eq!(out.body, "1");
    let ticket = out.cookie();
    let out = send(&app, get("/count", Some(&ticket)).to_request()).await;
    assert_eq!(out.body, "1");

    // A privilege change issues a new ticket too.
    let out = send(&app, post("/admin", Some(&ticket)).to_request()).await;
    let admin = out.cookie();
    let out = send(&app, get("/me", Some(&admin)).to_request()).await;
    assert_eq!(out.body, "user=alice role=admin");

    // A forged ticket is refused and cleared.
    let out = send(&app, get("/me", Some("__Host-session=AAAA")).to_request()).await;
    assert_eq!(out.status, 401);
    assert_eq!(out.set_cookies, [CLEAR]);

    // Without revocation, logout clears the cookie (the ticket itself stays
    // valid until it expires, as documented).
    let out = send(&app, post("/logout", Some(&admin)).to_request()).await;
    assert_eq!(out.status, 200);
    assert_eq!(out.set_cookies, [CLEAR]);
}

#[actix_web::test]
async fn a_handle_outside_the_middleware_is_a_500() {
    let app = test::init_service(App::new().configure(routes)).await;
    let out = send(&app, get("/", None).to_request()).await;
    assert_eq!(
        (out.status, out.body.as_str()),
        (500, "session_middleware_missing")
    );
}

#[actix_web::test]
async fn debug_output_never_shows_the_token() {
    let store = Watched::new(false);
    let middleware = sessions(&store);
    assert!(format!("{middleware:?}").contains("__Host-session"));
    let app = app!(middleware);
    let old = login_as!(&app, "alice", 303);
    let new = send(&app, post("/rotate", Some(&old)).to_request())
        .await
        .cookie();
    // The old token loads, and the handle holds the successor's token and
    // its rendered cookie: neither may print.
    let out = send(&app, get("/debug", Some(&old)).to_request()).await;
    assert_eq!(out.cookie(), new);
    for token in [&old, &new] {
        let value = token.split_once('=').unwrap().1;
        assert!(!out.body.contains(value), "{}", out.body);
    }
    assert!(out.body.contains("fingerprint"), "{}", out.body);
    assert!(out.body.contains("Authenticated"), "{}", out.body);
}

#[actix_web::test]
async fn login_on_a_session_ended_meanwhile_starts_a_fresh_one() {
    let store = Watched::new(false);
    let manager: Arc<dyn SessionManager> = Arc::new(StoreManager::new(Arc::clone(&store)));
    let app = test::init_service(
        App::new()
            .app_data(web::Data::new(Arc::clone(&manager)))
            .wrap(SessionMiddleware::new(manager, CookieConfig::default()))
            .configure(routes),
    )
    .await;
    let old = login_as!(&app, "alice", 303);
    let out = send(&app, post("/login-after-end", Some(&old)).to_request()).await;
    assert_eq!((out.status, out.body.as_str()), (200, "alice"), "{out:?}");
    let new = out.cookie();
    assert_ne!(new, old);
    assert!(
        !out.set_cookies[0].contains("Max-Age=0"),
        "a token, not a clear"
    );
    let out = send(&app, get("/me", Some(&new)).to_request()).await;
    assert_eq!(out.body, "user=alice role=user");
    assert_eq!(
        send(&app, get("/me", Some(&old)).to_request()).await.status,
        401
    );
}
