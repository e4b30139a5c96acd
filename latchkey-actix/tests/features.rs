//! CSRF tokens, flash messages, re-authentication and remember-me through
//! the middleware, end to end with `actix_web::test`, on a manual clock: no
//! network, no sleeps.

#[macro_use]
mod support;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use actix_web::test::TestRequest;
use actix_web::{HttpResponse, web};
use latchkey::{
    CSRF_TOKEN_LEN, CookieConfig, KeyRing, MAX_FLASH_MESSAGE_LEN, MAX_FLASHES, ManualClock,
    MemoryStore, Policy, RememberMe, SessionManager, StoreManager, TicketKey, TicketManager,
};
use latchkey_actix::{Authenticated, SessionError, SessionHandle, SessionMiddleware};

use support::*;

const CLEAR: &str = "__Host-session=; Max-Age=0; Path=/; Secure; HttpOnly; SameSite=Lax";
const CLEAR_REMEMBER: &str = "__Host-remember=; Max-Age=0; Path=/; Secure; HttpOnly; SameSite=Lax";
const SESSION: &str = "__Host-session";
const REMEMBER: &str = "__Host-remember";
/// How long a sensitive action accepts a login.
const SUDO: Duration = Duration::from_secs(10 * 60);

// ---- The application.

async fn me(auth: Authenticated) -> String {
    format!("user={} n={}", auth.user(), count_of(auth.session()))
}

async fn home(handle: SessionHandle) -> String {
    handle.user().unwrap_or_else(|| "anonymous".into())
}

async fn csrf_form(handle: SessionHandle) -> Result<String, SessionError> {
    handle.csrf_token().await
}

/// A form post: the handler checks the token field itself.
async fn csrf_submit(
    handle: SessionHandle,
    form: web::Form<HashMap<String, String>>,
) -> Result<&'static str, SessionError> {
    handle.verify_csrf(form.get("csrf_token").map_or("", String::as_str))?;
    Ok("accepted")
}

async fn set_flash(
    handle: SessionHandle,
    message: web::Path<String>,
) -> Result<HttpResponse, SessionError> {
    handle.flash("notice", &message).await?;
    Ok(HttpResponse::SeeOther()
        .insert_header(("Location", "/flashes"))
        .finish())
}

async fn show_flashes(handle: SessionHandle) -> Result<String, SessionError> {
    let shown: Vec<String> = handle
        .take_flashes()
        .await?
        .iter()
        .map(|f| format!("{}:{}", f.kind(), f.message()))
        .collect();
    Ok(shown.join(","))
}

async fn sensitive(handle: SessionHandle) -> Result<&'static str, SessionError> {
    handle.require_recent_auth(SUDO).await?;
    Ok("done")
}

async fn reauthenticate(handle: SessionHandle) -> Result<&'static str, SessionError> {
    // ... the password of handle.user() checked out ...
    handle.reauthenticate().await?;
    Ok("confirmed")
}

fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(home))
        .route("/me", web::get().to(me))
        .route("/login/{user}", web::post().to(login))
        .route("/login/{user}/remember", web::post().to(login_remembered))
        .route("/admin", web::post().to(admin))
        .route("/count", web::post().to(increment))
        .route("/logout", web::post().to(logout))
        .route("/api", web::post().to(|| async { "changed" }))
        .route("/form", web::get().to(csrf_form))
        .route("/form", web::post().to(csrf_submit))
        .route("/flash/{message}", web::post().to(set_flash))
        .route("/flashes", web::get().to(show_flashes))
        .route("/sensitive", web::post().to(sensitive))
        .route("/reauth", web::post().to(reauthenticate))
        .route("/debug", web::get().to(debug));
}

async fn debug(handle: SessionHandle) -> String {
    format!("{handle:?}")
}

/// A manual clock, and a middleware over one memory store for sessions and
/// remember-me tokens (remember-me on).
fn setup() -> (Arc<ManualClock>, SessionMiddleware, Arc<dyn SessionManager>) {
    let clock = Arc::new(ManualClock::starting_now());
    let store = Arc::new(MemoryStore::new().with_clock(clock.clone()));
    let manager = StoreManager::new(store.clone()).with_clock(clock.clone());
    let remember = RememberMe::new(store, manager.policy().clone()).with_clock(clock.clone());
    let manager: Arc<dyn SessionManager> = Arc::new(manager);
    let sessions =
        SessionMiddleware::new(manager.clone(), CookieConfig::default()).with_remember_me(remember);
    (clock, sessions, manager)
}

// ---- Requests.

/// A form post from our own page.
fn post_form(path: &str, cookie: Option<&str>, body: &str) -> TestRequest {
    post(path, cookie)
        .insert_header(("Content-Type", "application/x-www-form-urlencoded"))
        .set_payload(body.to_owned())
}

/// A token for the session behind `cookie`, from the page that renders it.
macro_rules! token_for {
    ($app:expr, $cookie:expr) => {{
        let out = send($app, get("/form", Some($cookie)).to_request()).await;
        assert_eq!(out.status, 200, "{out:?}");
        assert!(
            out.set_cookies.is_empty(),
            "a server-side session keeps its cookie"
        );
        out.body
    }};
}

/// A browser's cookies for the site.
#[derive(Clone, Debug, Default)]
struct Jar(BTreeMap<String, String>);

impl Jar {
    fn update(&mut self, out: &Out) {
        for line in &out.set_cookies {
            let pair = line.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if line.contains("Max-Age=0") {
                self.0.remove(name);
            } else {
                self.0.insert(name.to_owned(), value.to_owned());
            }
        }
    }

    fn header(&self) -> Option<String> {
        let pairs: Vec<String> = self.0.iter().map(|(k, v)| format!("{k}={v}")).collect();
        (!pairs.is_empty()).then(|| pairs.join("; "))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    fn remove(&mut self, name: &str) {
        self.0.remove(name);
    }

    fn set(&mut self, name: &str, value: &str) {
        self.0.insert(name.to_owned(), value.to_owned());
    }
}

/// Sends `$req(path, cookie)` with the jar's cookies, and keeps what comes
/// back.
macro_rules! browse {
    ($app:expr, $jar:expr, $req:ident, $path:expr) => {{
        let cookie = $jar.header();
        let out = send($app, $req($path, cookie.as_deref()).to_request()).await;
        $jar.update(&out);
        out
    }};
}

/// Logs alice in with "keep me signed in"; the jar holds both cookies.
macro_rules! remembered {
    ($app:expr) => {{
        let mut jar = Jar::default();
        let out = browse!($app, jar, post, "/login/alice/remember");
        assert_eq!(out.status, 200, "{out:?}");
        assert_eq!(out.set_cookies.len(), 2, "{out:?}");
        assert!(
            out.set_cookies[0].starts_with("__Host-session=")
                && !out.set_cookies[0].contains("Max-Age")
        );
        assert!(
            out.set_cookies[1].starts_with("__Host-remember=rm1.")
                && out.set_cookies[1].contains("; Max-Age=2592000;")
        );
        jar
    }};
}

// ---- CSRF.

#[actix_web::test]
async fn the_header_check_is_off_by_default() {
    let (_, sessions, _) = setup();
    let app = app!(sessions);
    let cookie = login_as!(&app, "alice");
    let out = send(&app, post("/api", Some(&cookie)).to_request()).await;
    assert_eq!((out.status, out.body.as_str()), (200, "changed"));
}

#[actix_web::test]
async fn with_the_header_check_a_post_with_a_session_needs_its_token() {
    let (_, sessions, _) = setup();
    let app = app!(sessions.with_csrf_header("X-CSRF-Token"));
    let cookie = login_as!(&app, "alice");
    let token = token_for!(&app, &cookie);

    // Missing: refused before the handler, the cookie kept, nothing saved.
    let out = send(&app, post("/count", Some(&cookie)).to_request()).await;
    assert_eq!((out.status, out.body.as_str()), (403, "csrf_missing"));
    assert!(out.set_cookies.is_empty(), "the cookie is kept");
    assert_eq!(out.cache_control.as_deref(), Some("no-store"));
    let forged = post("/count", Some(&cookie)).insert_header(("x-csrf-token", "forged"));
    let out = send(&app, forged.to_request()).await;
    assert_eq!((out.status, out.body.as_str()), (403, "csrf_malformed"));
    let out = send(&app, get("/me", Some(&cookie)).to_request()).await;
    assert_eq!(out.body, "user=alice n=0", "the handler never ran");

    // The session's token passes.
    let good = post("/count", Some(&cookie)).insert_header(("x-csrf-token", token.as_str()));
    let out = send(&app, good.to_request()).await;
    assert_eq!((out.status, out.body.as_str()), (200, "1"));

    // Safe methods and requests without a session are not checked.
    assert_eq!(
        send(&app, get("/me", Some(&cookie)).to_request())
            .await
            .status,
        200
    );
    assert_eq!(
        send(&app, post("/api", None).to_request()).await.status,
        200
    );
}

#[actix_web::test]
async fn a_token_from_another_session_is_refused() {
    let (_, sessions, _) = setup();
    let app = app!(sessions.with_csrf_header("x-csrf-token"));
    let alice = login_as!(&app, "alice");
    let bob = login_as!(&app, "bob");
    let _ = token_for!(&app, &alice);
    let bobs = token_for!(&app, &bob);
    let req = post("/api", Some(&alice)).insert_header(("x-csrf-token", bobs.as_str()));
    let out = send(&app, req.to_request()).await;
    assert_eq!((out.status, out.body.as_str()), (403, "csrf_mismatch"));

    // The same in a form field, checked by the handler (on a middleware
    // without the header check, which a form could not pass).
    let (_, sessions, _) = setup();
    let app = app!(sessions);
    let alice = login_as!(&app, "alice");
    let bob = login_as!(&app, "bob");
    let _ = token_for!(&app, &alice);
    let bobs = token_for!(&app, &bob);
    let out = send(
        &app,
        post_form("/form", Some(&alice), &format!("csrf_token={bobs}")).to_request(),
    )
    .await;
    assert_eq!((out.status, out.body.as_str()), (403, "csrf_mismatch"));
    assert!(out.set_cookies.is_empty());
}

#[actix_web::test]
async fn a_form_post_is_verified_in_the_handler_and_a_visitor_gets_a_session_for_it() {
    let (_, sessions, _) = setup();
    let app = app!(sessions);
    // A visitor without a session renders the form: an anonymous session
    // is created to hold the secret, and its cookie set.
    let out = send(&app, get("/form", None).to_request()).await;
    assert_eq!(out.status, 200);
    let cookie = out.cookie();
    let token = out.body;
    assert_eq!(token.len(), CSRF_TOKEN_LEN);

    let body = format!("csrf_token={token}&x=1");
    let out = send(&app, post_form("/form", Some(&cookie), &body).to_request()).await;
    assert_eq!((out.status, out.body.as_str()), (200, "accepted"));

    let out = send(&app, post_form("/form", Some(&cookie), "x=1").to_request()).await;
    assert_eq!((out.status, out.body.as_str()), (403, "csrf_missing"));
    assert!(
        out.set_cookies.is_empty(),
        "a refusal never clears the cookie"
    );

    // Without a session there is no secret to match.
    let out = send(
        &app,
        post_form("/form", None, &format!("csrf_token={token}")).to_request(),
    )
    .await;
    assert_eq!((out.status, out.body.as_str()), (403, "csrf_no_secret"));
}

#[actix_web::test]
async fn a_token_from_before_the_login_does_not_verify_after_it() {
    let (_, sessions, _) = setup();
    let app = app!(sessions);
    let out = send(&app, get("/form", None).to_request()).await;
    let anonymous = out.cookie();
    let token = out.body;
    let cookie = send(&app, post("/login/alice", Some(&anonymous)).to_request())
        .await
        .cookie();
    let out = send(
        &app,
        post_form("/form", Some(&cookie), &format!("csrf_token={token}")).to_request(),
    )
    .await;
    assert_eq!((out.status, out.body.as_str()), (403, "csrf_no_secret"));
    // A token rendered after the login works.
    let token = token_for!(&app, &cookie);
    let out = send(
        &app,
        post_form("/form", Some(&cookie), &format!("csrf_token={token}")).to_request(),
    )
    .await;
    assert_eq!(out.status, 200);
}

#[actix_web::test]
async fn a_post_logged_in_by_remember_me_is_refused_but_still_gets_its_new_cookies() {
    let (_, sessions, _) = setup();
    let app = app!(sessions.with_csrf_header("x-csrf-token"));
    let mut jar = remembered!(&app);
    let used = jar.get(REMEMBER).unwrap().to_owned();
    jar.remove(SESSION);

    // The new session has no secret yet: a state-changing request cannot
    // carry a token of it. Refused, but the token was spent, so both new
    // cookies must reach the browser.
    let out = browse!(&app, jar, post, "/api");
    assert_eq!((out.status, out.body.as_str()), (403, "csrf_missing"));
    assert_eq!(out.set_cookies.len(), 2, "{out:?}");
    assert_ne!(jar.get(REMEMBER), Some(used.as_str()));
    let out = browse!(&app, jar, get, "/me");
    assert_eq!(out.status, 200);
    assert!(out.set_cookies.is_empty());
}

// ---- Flash messages.

#[actix_web::test]
async fn a_flash_survives_the_redirect_and_shows_once() {
    let (_, sessions, _) = setup();
    let app = app!(sessions);
    let cookie = login_as!(&app, "alice");
    let out = send(&app, post("/flash/Saved.", Some(&cookie)).to_request()).await;
    assert_eq!(out.status, 303);
    assert!(out.set_cookies.is_empty(), "the session's cookie stays");

    let out = send(&app, get("/flashes", Some(&cookie)).to_request()).await;
    assert_eq!((out.status, out.body.as_str()), (200, "notice:Saved."));
    let out = send(&app, get("/flashes", Some(&cookie)).to_request()).await;
    assert_eq!(out.body, "", "gone once taken");
}

#[actix_web::test]
async fn a_visitors_flash_creates_an_anonymous_session_that_carries_it() {
    let (_, sessions, _) = setup();
    let app = app!(sessions);
    let out = send(&app, post("/flash/Hello", None).to_request()).await;
    assert_eq!(out.status, 303);
    assert_eq!(out.cache_control.as_deref(), Some("no-store"));
    let cookie = out.cookie();
    let out = send(&app, get("/flashes", Some(&cookie)).to_request()).await;
    assert_eq!(out.body, "notice:Hello");
    let out = send(&app, get("/me", Some(&cookie)).to_request()).await;
    assert_eq!(out.status, 401, "anonymous, not logged in");
}

#[actix_web::test]
async fn a_flash_survives_the_login_that_follows() {
    let (_, sessions, _) = setup();
    let app = app!(sessions);
    let anonymous = send(&app, post("/flash/Welcome", None).to_request())
        .await
        .cookie();
    let out = send(&app, post("/flash/back", Some(&anonymous)).to_request()).await;
    assert!(out.set_cookies.is_empty());

    let cookie = send(&app, post("/login/alice", Some(&anonymous)).to_request())
        .await
        .cookie();
    assert_ne!(cookie, anonymous);
    let out = send(&app, get("/flashes", Some(&cookie)).to_request()).await;
    assert_eq!(out.body, "notice:Welcome,notice:back");
    let out = send(&app, get("/flashes", Some(&cookie)).to_request()).await;
    assert_eq!(out.body, "");
}

#[actix_web::test]
async fn taking_flashes_without_a_session_creates_none() {
    let (_, sessions, _) = setup();
    let app = app!(sessions);
    let out = send(&app, get("/flashes", None).to_request()).await;
    assert_eq!((out.status, out.body.as_str()), (200, ""));
    assert!(out.set_cookies.is_empty());
    assert_eq!(out.cache_control, None);
}

#[actix_web::test]
async fn a_flash_over_the_limit_is_413_and_saves_nothing() {
    let (_, sessions, _) = setup();
    let app = app!(sessions);
    let cookie = login_as!(&app, "alice");
    let long = "x".repeat(MAX_FLASH_MESSAGE_LEN + 1);
    let out = send(
        &app,
        post(&format!("/flash/{long}"), Some(&cookie)).to_request(),
    )
    .await;
    assert_eq!((out.status, out.body.as_str()), (413, "flash_too_long"));
    assert!(out.set_cookies.is_empty());
    for n in 0..MAX_FLASHES {
        let out = send(
            &app,
            post(&format!("/flash/{n}"), Some(&cookie)).to_request(),
        )
        .await;
        assert_eq!(out.status, 303);
    }
    let out = send(
        &app,
        post("/flash/one-too-many", Some(&cookie)).to_request(),
    )
    .await;
    assert_eq!((out.status, out.body.as_str()), (413, "flash_too_many"));
    let out = send(&app, get("/flashes", Some(&cookie)).to_request()).await;
    assert_eq!(out.body.split(',').count(), MAX_FLASHES);
}

#[actix_web::test]
async fn no_session_is_created_over_a_cookie_superseded_moments_ago() {
    let (_, sessions, _) = setup();
    let app = app!(sessions);
    let old = login_as!(&app, "alice");
    let new = send(&app, post("/admin", Some(&old)).to_request())
        .await
        .cookie();
    assert_ne!(new, old);
    // A request that left before the privilege change: a new anonymous
    // session's cookie would overwrite the successor and log alice out.
    let out = send(&app, post("/flash/lost", Some(&old)).to_request()).await;
    assert_eq!((out.status, out.body.as_str()), (401, "no_session"));
    assert!(out.set_cookies.is_empty(), "{out:?}");
    assert_eq!(
        send(&app, get("/me", Some(&new)).to_request()).await.status,
        200
    );
}

// ---- Re-authentication.

#[actix_web::test]
async fn a_fresh_login_passes_and_a_stale_one_is_401_with_the_cookie_kept() {
    let (clock, sessions, _) = setup();
    let app = app!(sessions);
    let cookie = login_as!(&app, "alice");
    let out = send(&app, post("/sensitive", Some(&cookie)).to_request()).await;
    assert_eq!((out.status, out.body.as_str()), (200, "done"));

    // Still logged in (idle 20 minutes), no longer fresh (10).
    clock.advance(Duration::from_secs(15 * 60));
    let out = send(&app, post("/sensitive", Some(&cookie)).to_request()).await;
    assert_eq!(
        (out.status, out.body.as_str()),
        (401, "reauthentication_required")
    );
    assert!(
        out.set_cookies.is_empty(),
        "not a rejection: the cookie stays"
    );
    let out = send(&app, get("/me", Some(&cookie)).to_request()).await;
    assert_eq!(out.status, 200, "still logged in for the rest");
}

#[actix_web::test]
async fn reauthenticating_sets_a_new_cookie_and_the_old_one_is_refused() {
    let (clock, sessions, _) = setup();
    let app = app!(sessions);
    let old = login_as!(&app, "alice");
    clock.advance(Duration::from_secs(15 * 60));

    let out = send(&app, post("/reauth", Some(&old)).to_request()).await;
    assert_eq!(out.status, 200);
    assert_eq!(out.cache_control.as_deref(), Some("no-store"));
    let new = out.cookie();
    assert_ne!(new, old);

    assert_eq!(
        send(&app, post("/sensitive", Some(&new)).to_request())
            .await
            .status,
        200
    );
    // The old token is refused (superseded), and not cleared: the response
    // above set its successor.
    let out = send(&app, get("/me", Some(&old)).to_request()).await;
    assert_eq!(out.status, 401);
    assert!(out.set_cookies.is_empty());
    let out = send(&app, post("/sensitive", Some(&old)).to_request()).await;
    assert_eq!((out.status, out.body.as_str()), (401, "no_session"));
}

#[actix_web::test]
async fn an_anonymous_session_is_sent_to_log_in_not_to_reauthenticate() {
    let (_, sessions, _) = setup();
    let app = app!(sessions);
    let anonymous = send(&app, post("/flash/hi", None).to_request())
        .await
        .cookie();
    let out = send(&app, post("/reauth", Some(&anonymous)).to_request()).await;
    assert_eq!((out.status, out.body.as_str()), (401, "not_authenticated"));
    assert!(out.set_cookies.is_empty());
    let out = send(&app, post("/sensitive", Some(&anonymous)).to_request()).await;
    assert_eq!(
        (out.status, out.body.as_str()),
        (401, "reauthentication_required")
    );
    let out = send(&app, post("/sensitive", None).to_request()).await;
    assert_eq!((out.status, out.body.as_str()), (401, "no_session"));
}

// ---- Remember-me.

#[actix_web::test]
async fn without_a_session_the_remember_cookie_logs_in_and_both_cookies_rotate() {
    let (_, sessions, _) = setup();
    let app = app!(sessions);
    let mut jar = remembered!(&app);
    let first = jar.get(REMEMBER).unwrap().to_owned();
    let old_session = jar.get(SESSION).unwrap().to_owned();

    // The browser was closed: the session cookie is gone.
    jar.remove(SESSION);
    let out = browse!(&app, jar, get, "/me");
    assert_eq!((out.status, out.body.as_str()), (200, "user=alice n=0"));
    assert_eq!(out.set_cookies.len(), 2, "{out:?}");
    assert_eq!(out.cache_control.as_deref(), Some("no-store"));
    assert_ne!(jar.get(REMEMBER), Some(first.as_str()));
    assert_ne!(jar.get(SESSION), Some(old_session.as_str()));

    // The new session cookie is used from now on; nothing changes.
    let out = browse!(&app, jar, get, "/me");
    assert_eq!(out.status, 200);
    assert!(out.set_cookies.is_empty());
}

#[actix_web::test]
async fn a_used_token_presented_after_the_grace_window_is_theft_and_clears_both_cookies() {
    let (clock, sessions, _) = setup();
    let app = app!(sessions);
    let mut jar = remembered!(&app);
    jar.remove(SESSION);
    let mut thief = jar.clone();
    assert_eq!(browse!(&app, jar, get, "/me").status, 200);

    clock.advance(Duration::from_secs(31));
    let out = browse!(&app, thief, get, "/me");
    assert_eq!((out.status, out.body.as_str()), (401, "not_logged_in"));
    assert_eq!(out.sorted_cookies(), [CLEAR_REMEMBER, CLEAR]);

    // Every session and token of alice ended: the legitimate browser is
    // logged out too, and its remember-me cookie is refused and cleared.
    let out = browse!(&app, jar, get, "/me");
    assert_eq!(out.status, 401);
    assert_eq!(out.sorted_cookies(), [CLEAR_REMEMBER, CLEAR]);
    assert_eq!(jar.header(), None);
}

#[actix_web::test]
async fn within_the_grace_window_a_second_tab_is_handed_the_replacement_not_a_login() {
    let (_, sessions, _) = setup();
    let app = app!(sessions);
    let mut jar = remembered!(&app);
    jar.remove(SESSION);
    let mut other_tab = jar.clone();
    assert_eq!(browse!(&app, jar, get, "/me").status, 200);
    let replacement = jar.get(REMEMBER).unwrap().to_owned();

    let out = browse!(&app, other_tab, get, "/me");
    assert_eq!(out.status, 401, "no second login");
    assert_eq!(out.set_cookies.len(), 1, "{out:?}");
    assert!(out.set_cookies[0].starts_with(&format!("{REMEMBER}={replacement};")));
    // Its next request logs in with the replacement.
    assert_eq!(browse!(&app, other_tab, get, "/me").status, 200);
}

#[actix_web::test]
async fn logout_forgets_the_remember_token_and_clears_both_cookies() {
    let (_, sessions, _) = setup();
    let app = app!(sessions);
    let mut jar = remembered!(&app);
    let token = jar.get(REMEMBER).unwrap().to_owned();
    let out = browse!(&app, jar, post, "/logout");
    assert_eq!(out.status, 200);
    assert_eq!(out.sorted_cookies(), [CLEAR_REMEMBER, CLEAR]);

    // A copy of the token no longer logs in, and is cleared.
    let mut copy = Jar::default();
    copy.set(REMEMBER, &token);
    let out = browse!(&app, copy, get, "/me");
    assert_eq!(out.status, 401);
    assert_eq!(out.set_cookies, [CLEAR_REMEMBER]);
}

#[actix_web::test]
async fn a_remember_cookie_beside_a_live_session_is_not_spent() {
    let (_, sessions, _) = setup();
    let app = app!(sessions);
    let mut jar = remembered!(&app);
    let token = jar.get(REMEMBER).unwrap().to_owned();
    for _ in 0..2 {
        let out = browse!(&app, jar, get, "/me");
        assert_eq!(out.status, 200);
        assert!(out.set_cookies.is_empty());
    }
    assert_eq!(jar.get(REMEMBER), Some(token.as_str()));
}

#[actix_web::test]
async fn a_garbage_remember_cookie_is_cleared_and_the_request_runs_logged_out() {
    let (_, sessions, _) = setup();
    let app = app!(sessions);
    let mut jar = Jar::default();
    jar.set(REMEMBER, "rm1.garbage");
    let out = browse!(&app, jar, get, "/");
    assert_eq!((out.status, out.body.as_str()), (200, "anonymous"));
    assert_eq!(out.set_cookies, [CLEAR_REMEMBER]);
}

#[actix_web::test]
async fn remember_without_the_middleware_option_is_a_500() {
    let (_, _, manager) = setup();
    let app = app!(SessionMiddleware::new(manager, CookieConfig::default()));
    let out = send(&app, post("/login/alice/remember", None).to_request()).await;
    assert_eq!(
        (out.status, out.body.as_str()),
        (500, "remember_me_not_configured")
    );
}

#[actix_web::test]
async fn debug_output_never_shows_a_remember_me_token() {
    let (_, sessions, _) = setup();
    let debug = format!("{sessions:?}");
    let app = app!(sessions);
    let mut jar = remembered!(&app);
    jar.remove(SESSION);
    let used = jar.get(REMEMBER).unwrap().to_owned();
    let out = browse!(&app, jar, get, "/debug");
    assert!(out.body.contains("remembered: true"), "{}", out.body);
    for secret in [
        used.as_str(),
        jar.get(REMEMBER).unwrap(),
        jar.get(SESSION).unwrap(),
    ] {
        assert!(!out.body.contains(secret), "{}", out.body);
    }
    assert!(debug.contains("remember: Some("), "{debug}");
}

#[actix_web::test]
async fn with_tickets_a_flash_and_a_csrf_secret_travel_in_a_new_ticket() {
    let cookies = CookieConfig::default();
    let tickets = TicketManager::new(cookies.name(), KeyRing::new(1, TicketKey::generate()))
        .unwrap()
        .with_cookie(&cookies);
    let app = app!(SessionMiddleware::new(Arc::new(tickets), cookies));
    let cookie = login_as!(&app, "alice");

    // The first token creates the secret: the save issues a new ticket.
    let out = send(&app, get("/form", Some(&cookie)).to_request()).await;
    let cookie = out.cookie();
    let body = format!("csrf_token={}", out.body);
    let out = send(&app, post_form("/form", Some(&cookie), &body).to_request()).await;
    assert_eq!(out.status, 200);

    let out = send(&app, post("/flash/Saved.", Some(&cookie)).to_request()).await;
    assert_eq!(out.status, 303);
    let cookie = out.cookie();
    let out = send(&app, get("/flashes", Some(&cookie)).to_request()).await;
    assert_eq!(out.body, "notice:Saved.");
    let cookie = out.cookie();
    let out = send(&app, get("/flashes", Some(&cookie)).to_request()).await;
    assert!(out.set_cookies.is_empty(), "nothing taken, nothing saved");
    assert_eq!(out.body, "");
}

#[actix_web::test]
async fn on_a_store_that_may_block_an_outage_is_503_and_keeps_both_cookies() {
    let store = Watched::new(true);
    let manager = Arc::new(StoreManager::new(store.clone()));
    let remember = RememberMe::new(store.clone(), Policy::default());
    let app =
        app!(SessionMiddleware::new(manager, CookieConfig::default()).with_remember_me(remember));
    let mut jar = remembered!(&app);
    jar.remove(SESSION);

    store.set(Mode::Down);
    let out = browse!(&app, jar, get, "/me");
    assert_eq!((out.status, out.body.as_str()), (503, "backend"));
    assert!(out.set_cookies.is_empty(), "{out:?}");

    // Back up: the same token still logs in.
    store.set(Mode::Up);
    let out = browse!(&app, jar, get, "/me");
    assert_eq!(out.status, 200);
    assert_eq!(out.set_cookies.len(), 2);
}
