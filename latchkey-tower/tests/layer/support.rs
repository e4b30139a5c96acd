//! The test application, a store that can be watched and switched down,
//! and request helpers.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, ThreadId};

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::Path;
use axum::http::header::{CACHE_CONTROL, COOKIE, SET_COOKIE};
use axum::http::{HeaderValue, Request};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use latchkey::store::Record;
use latchkey::{
    CookieConfig, MemoryStore, Session, Store, StoreError, StoreKey, StoreManager, Timestamp,
};
use latchkey_tower::{Authenticated, SessionError, SessionHandle, SessionLayer};
use tower::ServiceExt as _;

/// What the store does when called.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Up,
    /// Every call fails as if the network were down.
    Down,
    /// Every call panics (a bug in a store).
    Panic,
}

/// A memory store that records which threads call it, counts version
/// conflicts, can be switched down, and says whether its calls may block.
#[derive(Debug)]
pub struct Watched {
    inner: MemoryStore,
    blocks: bool,
    pub callers: Mutex<Vec<ThreadId>>,
    mode: Mutex<Mode>,
    pub conflicts: AtomicUsize,
}

impl Watched {
    pub fn new(blocks: bool) -> Watched {
        Watched {
            inner: MemoryStore::new(),
            blocks,
            callers: Mutex::new(Vec::new()),
            mode: Mutex::new(Mode::Up),
            conflicts: AtomicUsize::new(0),
        }
    }

    pub fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    pub fn calls(&self) -> usize {
        self.callers.lock().unwrap().len()
    }

    fn enter(&self) -> Result<(), StoreError> {
        self.callers.lock().unwrap().push(thread::current().id());
        let mode = *self.mode.lock().unwrap();
        match mode {
            Mode::Up => Ok(()),
            Mode::Down => Err(StoreError::Unavailable("connection refused".into())),
            Mode::Panic => panic!("the store panicked (on purpose, in a test)"),
        }
    }

    fn count<T>(&self, r: Result<T, StoreError>) -> Result<T, StoreError> {
        if matches!(r, Err(StoreError::Conflict)) {
            self.conflicts.fetch_add(1, Ordering::SeqCst);
        }
        r
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
        self.count(self.inner.replace(key, expected, record))
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
        self.count(self.inner.rotate(old, expected, retired, new, record))
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
    fn may_block(&self) -> bool {
        self.blocks
    }
}

pub type Manager = StoreManager<Arc<Watched>>;

/// The clearing `Set-Cookie` of the default cookie.
pub const CLEAR: &str = "__Host-session=; Max-Age=0; Path=/; Secure; HttpOnly; SameSite=Lax";

fn role(s: &Session) -> String {
    s.get::<String>("role")
        .ok()
        .flatten()
        .unwrap_or_else(|| "user".into())
}

fn count_of(s: &Session) -> u64 {
    s.get::<u64>("count").ok().flatten().unwrap_or(0)
}

async fn home(handle: SessionHandle) -> String {
    match handle.session() {
        Some(s) => format!("user={}", s.user().unwrap_or("")),
        None => "logged out".into(),
    }
}

async fn me(auth: Authenticated) -> String {
    format!(
        "user={} role={} count={}",
        auth.user(),
        role(auth.session()),
        count_of(auth.session())
    )
}

/// A handler that asks shared caches to keep its page.
async fn cached(handle: SessionHandle) -> Response {
    let mut res = home(handle).await.into_response();
    res.headers_mut().insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=600"),
    );
    res
}

async fn login(handle: SessionHandle, Path(user): Path<String>) -> Result<String, SessionError> {
    let s = handle.login(&user).await?;
    Ok(format!("user={}", s.user().unwrap_or("")))
}

async fn admin(auth: Authenticated) -> Result<&'static str, SessionError> {
    auth.handle()
        .change_privilege(|s| s.insert("role", "admin"))
        .await?;
    Ok("admin")
}

async fn rotate(handle: SessionHandle) -> Result<&'static str, SessionError> {
    handle.rotate().await?;
    Ok("rotated")
}

pub async fn increment(handle: SessionHandle) -> Result<String, SessionError> {
    let n = handle
        .update(|s| {
            let n = count_of(s) + 1;
            s.insert("count", &n)?;
            Ok(n)
        })
        .await?;
    Ok(n.to_string())
}

async fn logout(handle: SessionHandle) -> Result<&'static str, SessionError> {
    handle.logout().await?;
    Ok("logged out")
}

async fn debug(handle: SessionHandle) -> String {
    format!("{handle:?}")
}

/// The application's routes, without the layer.
pub fn routes() -> Router {
    Router::new()
        .route("/", get(home))
        .route("/me", get(me))
        .route("/cached", get(cached))
        .route("/login/{user}", post(login))
        .route("/admin", post(admin))
        .route("/rotate", post(rotate))
        .route("/count", post(increment))
        .route("/logout", post(logout))
        .route("/debug", get(debug))
}

/// The application over a watched store.
pub fn app(blocks: bool) -> (Router, Arc<Watched>, Arc<Manager>) {
    let store = Arc::new(Watched::new(blocks));
    let manager = Arc::new(StoreManager::new(store.clone()));
    let layer = SessionLayer::new(manager.clone(), CookieConfig::default());
    (routes().layer(layer), store, manager)
}

/// Sends a request with an optional cookie and extra headers.
pub async fn send(
    app: &Router,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    headers: &[(&str, &str)],
) -> Response {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(c) = cookie {
        req = req.header(COOKIE, c);
    }
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    app.clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap()
}

pub async fn send_get(app: &Router, path: &str, cookie: Option<&str>) -> Response {
    send(app, "GET", path, cookie, &[]).await
}

pub async fn send_post(app: &Router, path: &str, cookie: Option<&str>) -> Response {
    send(app, "POST", path, cookie, &[]).await
}

pub fn set_cookies(res: &Response) -> Vec<String> {
    res.headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

/// The `name=value` pair of the only Set-Cookie.
pub fn cookie_pair(res: &Response) -> String {
    let all = set_cookies(res);
    assert_eq!(all.len(), 1, "{all:?}");
    all[0].split(';').next().unwrap().to_owned()
}

pub fn cache_control(res: &Response) -> Option<&str> {
    res.headers()
        .get(CACHE_CONTROL)
        .map(|v| v.to_str().unwrap())
}

pub async fn text(res: Response) -> String {
    String::from_utf8(to_bytes(res.into_body(), 1 << 16).await.unwrap().to_vec()).unwrap()
}

/// Logs `user` in; returns the cookie pair.
pub async fn login_as(app: &Router, user: &str) -> String {
    let res = send_post(app, &format!("/login/{user}"), None).await;
    assert_eq!(res.status(), 200);
    cookie_pair(&res)
}

/// At least `n` bytes of other applications' cookies on the same host.
pub fn foreign_cookies(n: usize) -> String {
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

// ---- The session features: CSRF tokens, flash messages, step-up,
// ---- remember-me.

/// How long a sensitive action accepts a login.
pub const SUDO: std::time::Duration = std::time::Duration::from_secs(10 * 60);

/// A field of an `application/x-www-form-urlencoded` body
/// (tokens are base64url: nothing to decode).
fn form_field<'a>(body: &'a str, name: &str) -> Option<&'a str> {
    body.split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

async fn csrf_form(handle: SessionHandle) -> Result<String, SessionError> {
    handle.csrf_token().await
}

/// A form post: the handler checks the token field itself.
async fn csrf_submit(handle: SessionHandle, body: String) -> Result<&'static str, SessionError> {
    handle.verify_csrf(form_field(&body, "csrf_token").unwrap_or(""))?;
    Ok("accepted")
}

async fn set_flash(
    handle: SessionHandle,
    Path(message): Path<String>,
) -> Result<Response, SessionError> {
    handle.flash("notice", &message).await?;
    Ok(axum::response::Redirect::to("/flashes").into_response())
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

async fn login_remembered(
    handle: SessionHandle,
    Path(user): Path<String>,
) -> Result<String, SessionError> {
    handle.login(&user).await?;
    handle.remember().await?;
    Ok(format!("user={user}"))
}

/// The application's routes and the feature routes, without the layer.
pub fn feature_routes() -> Router {
    routes()
        .route("/form", get(csrf_form).post(csrf_submit))
        .route("/api", post(|| async { "changed" }))
        .route("/flash/{message}", post(set_flash))
        .route("/flashes", get(show_flashes))
        .route("/sensitive", post(sensitive))
        .route("/reauth", post(reauthenticate))
        .route("/login/{user}/remember", post(login_remembered))
}

/// An application on a manual clock, sessions and remember-me tokens in
/// one memory store.
pub struct Features {
    pub app: Router,
    pub clock: Arc<latchkey::ManualClock>,
    pub manager: Arc<StoreManager<Arc<MemoryStore>>>,
}

/// The feature application; `configure` adds layer options.
pub fn features(configure: impl FnOnce(SessionLayer) -> SessionLayer) -> Features {
    let clock = Arc::new(latchkey::ManualClock::starting_now());
    let store = Arc::new(MemoryStore::new().with_clock(clock.clone()));
    let manager = Arc::new(StoreManager::new(store.clone()).with_clock(clock.clone()));
    let remember =
        latchkey::RememberMe::new(store, manager.policy().clone()).with_clock(clock.clone());
    let layer =
        SessionLayer::new(manager.clone(), CookieConfig::default()).with_remember_me(remember);
    Features {
        app: feature_routes().layer(configure(layer)),
        clock,
        manager,
    }
}

/// Sends a request with a body (a form post from our own page).
pub async fn send_form(app: &Router, path: &str, cookie: Option<&str>, body: &str) -> Response {
    let mut req = Request::builder()
        .method("POST")
        .uri(path)
        .header("sec-fetch-site", "same-origin")
        .header("content-type", "application/x-www-form-urlencoded");
    if let Some(c) = cookie {
        req = req.header(COOKIE, c);
    }
    app.clone()
        .oneshot(req.body(Body::from(body.to_owned())).unwrap())
        .await
        .unwrap()
}

/// A browser's cookies for the site: what `Set-Cookie` says, sent back.
#[derive(Clone, Debug, Default)]
pub struct Jar(std::collections::BTreeMap<String, String>);

impl Jar {
    /// Applies a response's `Set-Cookie` headers; returns them.
    pub fn update(&mut self, res: &Response) -> Vec<String> {
        let all = set_cookies(res);
        for line in &all {
            let pair = line.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if line.contains("Max-Age=0") {
                self.0.remove(name);
            } else {
                self.0.insert(name.to_owned(), value.to_owned());
            }
        }
        all
    }

    /// The `Cookie` header; `None` when empty.
    pub fn header(&self) -> Option<String> {
        let pairs: Vec<String> = self.0.iter().map(|(k, v)| format!("{k}={v}")).collect();
        (!pairs.is_empty()).then(|| pairs.join("; "))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    pub fn remove(&mut self, name: &str) {
        self.0.remove(name);
    }

    pub fn set(&mut self, name: &str, value: &str) {
        self.0.insert(name.to_owned(), value.to_owned());
    }

    /// Sends a request with the jar's cookies and keeps what comes back.
    pub async fn send(&mut self, app: &Router, method: &str, path: &str) -> Response {
        let cookie = self.header();
        let res = send(
            app,
            method,
            path,
            cookie.as_deref(),
            &[("sec-fetch-site", "same-origin")],
        )
        .await;
        self.update(&res);
        res
    }
}

/// The clearing `Set-Cookie` of the default remember-me cookie.
pub const CLEAR_REMEMBER: &str =
    "__Host-remember=; Max-Age=0; Path=/; Secure; HttpOnly; SameSite=Lax";
