//! The layer end to end through `tower::ServiceExt::oneshot`: no network.

use std::sync::{Arc, Mutex};
use std::thread::{self, ThreadId};

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use axum::http::{Request, StatusCode};
use axum::response::Response;
use latchkey::store::Record;
use latchkey::{CookieConfig, MemoryStore, Store, StoreError, StoreKey, StoreManager, Timestamp};
use latchkey_axum_example::router;
use tower::ServiceExt as _;

/// A store that remembers which threads called it, to prove that store
/// calls stay off the async executor.
#[derive(Debug, Default)]
struct Watched {
    inner: MemoryStore,
    callers: Mutex<Vec<ThreadId>>,
    down: Mutex<bool>,
}

impl Watched {
    fn enter(&self) -> Result<(), StoreError> {
        self.callers.lock().unwrap().push(thread::current().id());
        if *self.down.lock().unwrap() {
            return Err(StoreError::Unavailable("connection refused".into()));
        }
        Ok(())
    }
}

impl Store for Watched {
    fn insert(&self, key: &StoreKey, record: &Record) -> Result<(), StoreError> {
        self.enter()?;
        self.inner.insert(key, record)
    }
    fn get(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        self.enter()?;
        self.inner.get(key)
    }
    fn replace(&self, key: &StoreKey, expected: u64, record: &Record) -> Result<(), StoreError> {
        self.enter()?;
        self.inner.replace(key, expected, record)
    }
    fn touch(&self, key: &StoreKey, seen: Timestamp, exp: Timestamp) -> Result<bool, StoreError> {
        self.enter()?;
        self.inner.touch(key, seen, exp)
    }
    fn rotate(
        &self,
        old: &StoreKey,
        expected: u64,
        retired: &Record,
        new: &StoreKey,
        record: &Record,
    ) -> Result<(), StoreError> {
        self.enter()?;
        self.inner.rotate(old, expected, retired, new, record)
    }
    fn remove(&self, key: &StoreKey) -> Result<bool, StoreError> {
        self.enter()?;
        self.inner.remove(key)
    }
    fn sessions_of(&self, user: &str) -> Result<Vec<(StoreKey, Record)>, StoreError> {
        self.enter()?;
        self.inner.sessions_of(user)
    }
    fn purge_expired(&self, now: Timestamp) -> Result<usize, StoreError> {
        self.enter()?;
        self.inner.purge_expired(now)
    }
}

fn app() -> (Router, Arc<Watched>) {
    let store = Arc::new(Watched::default());
    let manager = Arc::new(StoreManager::new(store.clone()));
    (router(manager, CookieConfig::default()), store)
}

async fn send(
    app: &Router,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    body: &str,
) -> Response {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(c) = cookie {
        req = req.header(COOKIE, c);
    }
    if !body.is_empty() {
        req = req.header(CONTENT_TYPE, "application/x-www-form-urlencoded");
    }
    app.clone()
        .oneshot(req.body(Body::from(body.to_owned())).unwrap())
        .await
        .unwrap()
}

fn set_cookies(res: &Response) -> Vec<String> {
    res.headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

/// The `name=value` pair of the only Set-Cookie.
fn cookie_pair(res: &Response) -> String {
    let all = set_cookies(res);
    assert_eq!(all.len(), 1, "{all:?}");
    all[0].split(';').next().unwrap().to_owned()
}

async fn text(res: Response) -> String {
    String::from_utf8(to_bytes(res.into_body(), 1 << 16).await.unwrap().to_vec()).unwrap()
}

async fn login(app: &Router, user: &str) -> String {
    let res = send(
        app,
        "POST",
        "/login",
        None,
        &format!("username={user}&password=latchkey"),
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[LOCATION], "/");
    cookie_pair(&res)
}

#[tokio::test]
async fn becoming_admin_refuses_the_old_cookie_without_clearing_it() {
    let (app, _) = app();
    let old = login(&app, "alice").await;
    assert!(old.starts_with("__Host-session="));

    let res = send(&app, "POST", "/admin", Some(&old), "").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let new = cookie_pair(&res);
    assert_ne!(new, old);

    let res = send(&app, "GET", "/me", Some(&new), "").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[CACHE_CONTROL], "no-store");
    assert!(
        set_cookies(&res).is_empty(),
        "a current cookie is left alone"
    );
    assert!(text(res).await.contains("role=admin"));

    // A request that left before the privilege change arrives with the old
    // cookie: it never sees the new role (no fixation through the grace
    // window), and its response must not clear the cookie the change set.
    let res = send(&app, "GET", "/me", Some(&old), "").await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(set_cookies(&res).is_empty(), "{:?}", set_cookies(&res));
    assert!(!text(res).await.contains("role=admin"));
}

#[tokio::test]
async fn logout_clears_the_cookie_and_the_old_token_gets_401_and_a_clear() {
    let (app, _) = app();
    let cookie = login(&app, "alice").await;
    let res = send(&app, "POST", "/logout", Some(&cookie), "").await;
    assert_eq!(
        set_cookies(&res),
        ["__Host-session=; Max-Age=0; Path=/; Secure; HttpOnly; SameSite=Lax"]
    );
    let res = send(&app, "GET", "/me", Some(&cookie), "").await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        set_cookies(&res),
        ["__Host-session=; Max-Age=0; Path=/; Secure; HttpOnly; SameSite=Lax"],
        "a rejected cookie is cleared"
    );
}

#[tokio::test]
async fn a_store_outage_is_503_and_keeps_the_cookie() {
    let (app, store) = app();
    let cookie = login(&app, "alice").await;
    *store.down.lock().unwrap() = true;
    let res = send(&app, "GET", "/me", Some(&cookie), "").await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        set_cookies(&res).is_empty(),
        "the session may be fine: keep it"
    );
    *store.down.lock().unwrap() = false;
    assert_eq!(
        send(&app, "GET", "/me", Some(&cookie), "").await.status(),
        StatusCode::OK
    );
}

/// At least `n` bytes of other applications' cookies on the same host.
fn foreign_cookies(n: usize) -> String {
    let mut out = String::new();
    let mut i = 0;
    while out.len() < n {
        if !out.is_empty() {
            out.push_str("; ");
        }
        out.push_str(&format!("other_app_{i}={}", "v".repeat(100)));
        i += 1;
    }
    out
}

#[tokio::test]
async fn ambiguous_cookies_are_refused_and_cleared() {
    let (app, _) = app();
    let cookie = login(&app, "alice").await;
    let tossed = format!("__Host-session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA; {cookie}");
    let res = send(&app, "GET", "/me", Some(&tossed), "").await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        set_cookies(&res),
        ["__Host-session=; Max-Age=0; Path=/; Secure; HttpOnly; SameSite=Lax"]
    );
}

#[tokio::test]
async fn other_apps_cookies_leave_pages_served_and_sessions_logged_in() {
    let (app, _) = app();
    let foreign = foreign_cookies(10 * 1024);
    let res = send(&app, "GET", "/", Some(&foreign), "").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(set_cookies(&res).is_empty());
    assert!(text(res).await.contains("action=/login"), "logged out");

    let cookie = login(&app, "alice").await;
    for header in [
        format!("{cookie}; {foreign}"),
        format!("{foreign}; {cookie}; {foreign}"),
    ] {
        let res = send(&app, "GET", "/me", Some(&header), "").await;
        assert_eq!(res.status(), StatusCode::OK);
        assert!(set_cookies(&res).is_empty());
        assert!(text(res).await.contains("user=alice"));
    }
}

#[tokio::test]
async fn a_cookie_header_past_the_scan_limit_runs_logged_out_and_keeps_the_cookie() {
    let (app, _) = app();
    let cookie = login(&app, "alice").await;
    let crowded = format!("{cookie}; {}", foreign_cookies(64 * 1024));
    let res = send(&app, "GET", "/", Some(&crowded), "").await;
    assert_eq!(res.status(), StatusCode::OK, "a page, not a 400");
    assert!(set_cookies(&res).is_empty(), "the cookie was not read");
    assert!(text(res).await.contains("action=/login"), "logged out");
    let res = send(&app, "GET", "/me", Some(&crowded), "").await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(set_cookies(&res).is_empty());
    // Without the crowd, the session is there again.
    let res = send(&app, "GET", "/me", Some(&cookie), "").await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn store_calls_never_run_on_the_executor_thread() {
    // The default test runtime is current-thread: the executor is this
    // thread, so any store call made here would show its id.
    let executor = thread::current().id();
    let (app, store) = app();
    let cookie = login(&app, "alice").await;
    let cookie = cookie_pair(&send(&app, "POST", "/admin", Some(&cookie), "").await);
    send(&app, "GET", "/me", Some(&cookie), "").await;
    send(&app, "POST", "/logout", Some(&cookie), "").await;
    let callers = store.callers.lock().unwrap();
    assert!(callers.len() >= 4, "the store was used: {}", callers.len());
    assert!(callers.iter().all(|t| *t != executor));
}

#[tokio::test]
async fn a_login_form_posted_from_another_site_is_refused() {
    let (app, _) = app();
    for (header, value) in [
        ("sec-fetch-site", "cross-site"),
        ("origin", "https://evil.example"),
        ("origin", "null"),
    ] {
        let req = Request::builder()
            .method("POST")
            .uri("/login")
            .header("host", "127.0.0.1:3000")
            .header(header, value)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from("username=mallory&password=latchkey"))
            .unwrap();
        let res = app.clone().oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{header}: {value}");
        assert!(set_cookies(&res).is_empty(), "{header}: {value}");
    }
    // Chromium posting our own form under Referrer-Policy: no-referrer.
    let req = Request::builder()
        .method("POST")
        .uri("/login")
        .header("sec-fetch-site", "same-origin")
        .header("origin", "null")
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from("username=alice&password=latchkey"))
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(set_cookies(&res).len(), 1);
}
