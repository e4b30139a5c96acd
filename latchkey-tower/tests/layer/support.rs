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
