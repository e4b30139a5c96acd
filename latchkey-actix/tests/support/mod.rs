//! What the integration tests share: a store that can be watched and
//! switched down, handlers, the test application, and request helpers.

// Each test crate uses a part of this module.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, ThreadId};

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::header::{CACHE_CONTROL, COOKIE, SET_COOKIE};
use actix_web::test::{self, TestRequest};
use actix_web::{HttpResponse, web};
use latchkey::store::Record;
use latchkey::{MemoryStore, Session, Store, StoreError, StoreKey, Timestamp};
use latchkey_actix::{Authenticated, SessionError, SessionHandle};
use tokio::sync::Barrier;

/// What the store does when called.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Up,
    /// Every call fails as if the network were down.
    Down,
    /// Every call panics (a bug in a store).
    Panic,
    /// Reads work; every save panics.
    SavesPanic,
    /// Reads work; every write fails as on a read-only replica.
    WritesDown,
}

/// A memory store that records which threads call it, counts version
/// conflicts, can be switched down or made to panic, and says whether its
/// calls may block.
#[derive(Debug)]
pub struct Watched {
    inner: MemoryStore,
    blocks: bool,
    pub callers: Mutex<Vec<ThreadId>>,
    mode: Mutex<Mode>,
    pub conflicts: AtomicUsize,
}

impl Watched {
    pub fn new(blocks: bool) -> Arc<Watched> {
        Arc::new(Watched {
            inner: MemoryStore::new(),
            blocks,
            callers: Mutex::new(Vec::new()),
            mode: Mutex::new(Mode::Up),
            conflicts: AtomicUsize::new(0),
        })
    }

    pub fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    pub fn conflicts(&self) -> usize {
        self.conflicts.load(Ordering::SeqCst)
    }

    /// How many store calls were made.
    pub fn calls(&self) -> usize {
        self.callers.lock().unwrap().len()
    }

    fn enter(&self) -> Result<(), StoreError> {
        self.callers.lock().unwrap().push(thread::current().id());
        let mode = *self.mode.lock().unwrap();
        match mode {
            Mode::Up | Mode::SavesPanic | Mode::WritesDown => Ok(()),
            Mode::Down => Err(StoreError::Unavailable("connection refused".into())),
            Mode::Panic => panic!("the store panicked (on purpose, in a test)"),
        }
    }

    /// A call that writes (insert, save, rotate, remove).
    fn enter_write(&self) -> Result<(), StoreError> {
        self.enter()?;
        if *self.mode.lock().unwrap() == Mode::WritesDown {
            return Err(StoreError::Unavailable("read-only replica".into()));
        }
        Ok(())
    }

    /// A call that saves a session (replace, rotate).
    fn enter_save(&self) -> Result<(), StoreError> {
        if *self.mode.lock().unwrap() == Mode::SavesPanic {
            panic!("the store panicked on a save (on purpose, in a test)");
        }
        self.enter_write()
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
        self.enter_write()?;
        self.inner.insert(key, record)
    }
    fn get(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        self.enter()?;
        self.inner.get(key)
    }
    fn replace(&self, key: &StoreKey, expected: u64, record: &Record) -> Result<(), StoreError> {
        self.enter_save()?;
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
        self.enter_save()?;
        self.count(self.inner.rotate(old, expected, retired, new, record))
    }
    fn remove(&self, key: &StoreKey) -> Result<bool, StoreError> {
        self.enter_write()?;
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

pub fn role(s: &Session) -> String {
    s.get::<String>("role")
        .ok()
        .flatten()
        .unwrap_or_else(|| "user".into())
}

pub fn count_of(s: &Session) -> u64 {
    s.get::<u64>("count").ok().flatten().unwrap_or(0)
}

async fn home(handle: SessionHandle) -> String {
    match handle.user() {
        Some(user) => format!("user={user}"),
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

pub async fn login(
    handle: SessionHandle,
    user: web::Path<String>,
) -> Result<&'static str, SessionError> {
    handle.login(&user).await?;
    Ok("welcome")
}

pub async fn login_remembered(
    handle: SessionHandle,
    user: web::Path<String>,
) -> Result<&'static str, SessionError> {
    handle.login(&user).await?;
    handle.remember().await?;
    Ok("welcome back, always")
}

pub async fn admin(auth: Authenticated) -> Result<&'static str, SessionError> {
    auth.handle()
        .change_privilege(|s| s.insert("role", "admin"))
        .await?;
    Ok("admin")
}

pub async fn rotate(handle: SessionHandle) -> Result<&'static str, SessionError> {
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

/// An increment that first waits until every request of the test has
/// loaded the session, so all of them start from the same version.
pub async fn together(
    handle: SessionHandle,
    barrier: web::Data<Barrier>,
) -> Result<String, SessionError> {
    barrier.wait().await;
    increment(handle).await
}

pub async fn logout(handle: SessionHandle) -> Result<HttpResponse, SessionError> {
    handle.logout().await?;
    Ok(HttpResponse::Ok().body("logged out"))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(home))
        .route("/me", web::get().to(me))
        .route("/login/{user}", web::post().to(login))
        .route("/login/{user}/remember", web::post().to(login_remembered))
        .route("/admin", web::post().to(admin))
        .route("/rotate", web::post().to(rotate))
        .route("/count", web::post().to(increment))
        .route("/together", web::post().to(together))
        .route("/logout", web::post().to(logout));
}

/// The test application behind `$middleware`; `/together` waits at
/// `$barrier` (an `Arc<Barrier>` shared by every application of a test).
/// With no barrier, the application of the calling crate's `routes`.
macro_rules! app {
    // The application of the calling test crate's own `routes`.
    ($middleware:expr) => {
        actix_web::test::init_service(actix_web::App::new().wrap($middleware).configure(routes))
            .await
    };
    ($middleware:expr, $barrier:expr) => {
        actix_web::test::init_service(
            actix_web::App::new()
                .app_data(actix_web::web::Data::from(std::sync::Arc::clone($barrier)))
                .wrap($middleware)
                .configure(support::routes),
        )
        .await
    };
}

/// What a test looks at in a response.
#[derive(Debug)]
pub struct Out {
    pub status: u16,
    pub set_cookies: Vec<String>,
    pub cache_control: Option<String>,
    pub body: String,
}

impl Out {
    /// The `name=value` pair of the only `Set-Cookie`.
    pub fn cookie(&self) -> String {
        assert_eq!(self.set_cookies.len(), 1, "{:?}", self.set_cookies);
        self.set_cookies[0].split(';').next().unwrap().to_owned()
    }

    /// Whether the response may not be cached.
    pub fn no_store(&self) -> bool {
        self.cache_control.as_deref() == Some("no-store")
    }

    /// Every `Set-Cookie`, sorted.
    pub fn sorted_cookies(&self) -> Vec<String> {
        let mut all = self.set_cookies.clone();
        all.sort();
        all
    }

    /// The `name=value` pair of the only session `Set-Cookie`, beside
    /// which others may be set.
    pub fn session_cookie(&self) -> String {
        let session: Vec<&String> = self
            .set_cookies
            .iter()
            .filter(|c| c.starts_with("__Host-session="))
            .collect();
        assert_eq!(session.len(), 1, "{:?}", self.set_cookies);
        session[0].split(';').next().unwrap().to_owned()
    }
}

pub async fn send<S, R, B>(app: &S, req: R) -> Out
where
    S: Service<R, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let res = test::call_service(app, req).await;
    let set_cookies = res
        .headers()
        .get_all(SET_COOKIE)
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let cache_control = res
        .headers()
        .get(CACHE_CONTROL)
        .map(|v| v.to_str().unwrap().to_owned());
    let status = res.status().as_u16();
    let body = String::from_utf8(test::read_body(res).await.to_vec()).unwrap();
    Out {
        status,
        set_cookies,
        cache_control,
        body,
    }
}

pub fn get(path: &str, cookie: Option<&str>) -> TestRequest {
    with_cookie(TestRequest::get().uri(path), cookie)
}

pub fn post(path: &str, cookie: Option<&str>) -> TestRequest {
    // Our own page, as a current browser says so.
    with_cookie(
        TestRequest::post()
            .uri(path)
            .insert_header(("Sec-Fetch-Site", "same-origin")),
        cookie,
    )
}

fn with_cookie(req: TestRequest, cookie: Option<&str>) -> TestRequest {
    match cookie {
        Some(c) => req.insert_header((COOKIE, c)),
        None => req,
    }
}

/// Logs `$user` in on `$app`, checking the answer is `$status` (200 unless
/// given), and returns the cookie pair.
macro_rules! login_as {
    ($app:expr, $user:expr) => {
        login_as!($app, $user, 200)
    };
    ($app:expr, $user:expr, $status:expr) => {{
        let out = send($app, post(&format!("/login/{}", $user), None).to_request()).await;
        assert_eq!(out.status, $status, "{out:?}");
        out.cookie()
    }};
}
