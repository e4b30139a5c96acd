//! [`SessionMiddleware`]: the cookie in, the session loaded, the cookie out.

use std::fmt;
use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;

use actix_web::HttpMessage as _;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::Method;
use actix_web::http::header::{
    CACHE_CONTROL, COOKIE, HOST, HeaderMap, HeaderName, HeaderValue, ORIGIN, SET_COOKIE,
};
use latchkey::{
    AsyncSessionManager, CookieConfig, CrossSiteRequest, FetchHeaders, Loaded, RememberMe,
    SessionManager,
};
use latchkey_adapter::{DEFAULT_MAX_ATTEMPTS, Manager, Writers};

use crate::error::SessionError;
use crate::handle::{CookieChange, Outcome, SessionHandle, Start};

/// What every request of one application shares.
#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) manager: Manager,
    pub(crate) cookies: CookieConfig,
    /// Origins accepted besides the request's own `Host`.
    allowed_origins: Vec<String>,
    check_origin: bool,
    pub(crate) max_attempts: u32,
    /// The header state-changing requests with a session must carry a
    /// CSRF token in ([`SessionMiddleware::with_csrf_header`]); `None`: off.
    csrf_header: Option<HeaderName>,
    /// Remember-me ([`SessionMiddleware::with_remember_me`]).
    pub(crate) remember: Option<Arc<RememberMe>>,
    /// The sessions this middleware's requests are writing, one writer
    /// each: shared by every clone, so by all the server's workers.
    pub(crate) writers: Arc<Writers>,
}

impl Shared {
    /// The cross-site check ([`latchkey::check_origin`]) on the request's
    /// method, `Sec-Fetch-Site`, `Origin` and `Host`.
    fn check_origin(&self, req: &ServiceRequest) -> Result<(), CrossSiteRequest> {
        if !self.check_origin {
            return Ok(());
        }
        let headers = req.headers();
        // A value that is not UTF-8 matches nothing (`Some("")`): the check
        // then refuses rather than skips it.
        let text = |name| {
            headers
                .get(name)
                .map(|v: &HeaderValue| v.to_str().unwrap_or(""))
        };
        // `Host` (HTTP/1.1), else the URI's authority (HTTP/2 `:authority`).
        // Never `Forwarded`/`X-Forwarded-Host`: any client can send those,
        // and one naming the attacker's origin would pass. Behind a proxy
        // that rewrites `Host`, name the public origin with
        // `with_allowed_origin`.
        let host = text(HOST.as_str()).or_else(|| req.uri().authority().map(|a| a.as_str()));
        let fetch = FetchHeaders {
            method: req.method().as_str(),
            sec_fetch_site: text("sec-fetch-site"),
            origin: text(ORIGIN.as_str()),
            host,
        };
        if self.allowed_origins.is_empty() {
            return latchkey::check_origin(&fetch, &[]);
        }
        let allowed: Vec<&str> = self.allowed_origins.iter().map(String::as_str).collect();
        latchkey::check_origin(&fetch, &allowed)
    }

    /// Finds and loads the request's session, and with remember-me logs a
    /// request without one in: the handle for the handler, or the error
    /// that answers the request at once (the store failed).
    async fn start(self: &Arc<Self>, req: &ServiceRequest) -> Result<SessionHandle, SessionError> {
        let (remember_token, remember_cookie) = self.find_remember_token(req.headers());
        let mut start = Start {
            loaded: None,
            change: CookieChange::Keep,
            protect_cookie: false,
            remember_token,
            remember_cookie,
        };
        let found = self
            .cookies
            .find_token_in(req.headers().get_all(COOKIE).map(HeaderValue::as_bytes))
            .map(|t| t.map(str::to_owned));
        match found {
            Ok(Some(token)) => self.load(token, &mut start).await?,
            Ok(None) => {}
            // No usable session cookie: the request runs logged out, never
            // a 400 (other applications' cookies crowding the header are
            // not this request's fault). Two different session cookies
            // (cookie tossing) or a broken value are cleared; a header over
            // the scan limit was not read, so ours is kept, and no new
            // session may take its place.
            Err(e) => {
                if e.clears_cookie() {
                    start.change = CookieChange::Clear;
                } else {
                    start.protect_cookie = true;
                }
            }
        }
        let handle = SessionHandle::new(Arc::clone(self), start);
        // No usable session: the remember-me cookie, if any. A store
        // failure there is a 503 that keeps both cookies.
        handle.resume_remembered().await?;
        Ok(handle)
    }

    /// Loads the session of the cookie's `token` into `start`.
    async fn load(&self, token: String, start: &mut Start) -> Result<(), SessionError> {
        let presented = token.clone();
        match self.manager.load(presented).await {
            Ok(Loaded {
                session, reissue, ..
            }) => {
                // The reissue hint: the client presented a token rotated
                // moments ago (or a ticket due for renewal), so it gets the
                // current one. A reload later in the request uses it too.
                let token = match reissue {
                    Some(issued) => match self.cookies.set_cookie(&issued) {
                        Ok(cookie) => {
                            start.change = CookieChange::Set(cookie);
                            issued.token().to_owned()
                        }
                        // Not renderable (a ticket too long for its cookie):
                        // the presented token still works; keep it.
                        Err(_) => token,
                    },
                    None => token,
                };
                start.loaded = Some((session, token));
                Ok(())
            }
            // A rejection: the request runs logged out. The cookie is
            // cleared, except for a token superseded by a login or privilege
            // change moments ago, whose client is being sent the successor:
            // a clearing cookie racing that one would log the user out, and
            // so would a new session's.
            Err(e) if e.is_rejection() => {
                if e.clears_cookie() {
                    start.change = CookieChange::Clear;
                } else {
                    start.protect_cookie = true;
                }
                Ok(())
            }
            // The store failed (503), or something else did: answer now,
            // and keep the cookie: the session is probably fine, and
            // clearing it would log everyone out during an outage.
            Err(e) => Err(SessionError::Latchkey(e)),
        }
    }

    /// The remember-me cookie's token, and its `Set-Cookie` when the
    /// cookie cannot be used (two different values, a bad value): cleared,
    /// as the session cookie is. Nothing without remember-me.
    fn find_remember_token(&self, headers: &HeaderMap) -> (Option<String>, Option<String>) {
        let Some(remember) = &self.remember else {
            return (None, None);
        };
        let cookies = headers.get_all(COOKIE).map(HeaderValue::as_bytes);
        match remember.cookie().find_token_in(cookies) {
            Ok(token) => (token.map(str::to_owned), None),
            Err(e) => (
                None,
                e.clears_cookie().then(|| remember.cookie().clear_cookie()),
            ),
        }
    }

    /// The CSRF header check, when on, for a state-changing request.
    fn check_csrf(&self, req: &ServiceRequest, handle: &SessionHandle) -> Result<(), SessionError> {
        match &self.csrf_header {
            Some(name) if !is_safe(req.method()) => {
                handle.check_csrf_header(req.headers().get(name).map(HeaderValue::as_bytes))
            }
            _ => Ok(()),
        }
    }
}

/// The methods that must not change state, which no CSRF check guards
/// (the same list as [`latchkey::check_origin`]'s).
fn is_safe(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// Applies what the request did to the session to the response: at most one
/// `Set-Cookie` for the session cookie, and `Cache-Control: no-store` when a
/// session took part or a cookie is sent.
fn finish(handle: &SessionHandle, cookies: &CookieConfig, headers: &mut HeaderMap) {
    let Outcome {
        involved,
        change,
        remember_cookie,
    } = handle.take_outcome();
    let set_cookie = match change {
        CookieChange::Keep => None,
        CookieChange::Set(cookie) => Some(cookie),
        CookieChange::Clear => Some(cookies.clear_cookie()),
    };
    // A rendered cookie holds only cookie octets and attribute text, so it
    // is always a valid header value.
    let values = [set_cookie, remember_cookie]
        .into_iter()
        .flatten()
        .filter_map(|v| HeaderValue::try_from(v).ok());
    let mut sends_cookie = false;
    for value in values {
        headers.append(SET_COOKIE, value);
        sends_cookie = true;
    }
    if involved || sends_cookie {
        // A page about a session, or a fresh cookie, kept by a shared cache
        // would be served to the next user; on a shared computer the back
        // button would show the previous user's pages after logout.
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}

/// The session middleware: wrap an `App` (or a scope) in it.
///
/// On every request it
///
/// 0. refuses a state-changing request (any method but GET, HEAD, OPTIONS,
///    TRACE) that another site made the browser send, with 403 and the
///    body `cross_origin`, before the handler runs and before any session
///    is read or written ([`latchkey::check_origin`]; this stops login
///    CSRF, which `SameSite` cannot). `Origin: null` passes only with
///    `Sec-Fetch-Site: same-origin`;
/// 1. finds the session token in the `Cookie` headers
///    ([`CookieConfig::find_token_in`]); a missing, malformed, ambiguous
///    or crowded-out cookie means the request runs logged out, never a
///    400;
/// 2. loads the session, in place or on the blocking pool as
///    [`SessionManager::may_block`] says (an async manager's awaited in
///    place, [`from_async`](Self::from_async)), and gives handlers a
///    [`SessionHandle`] (request extensions) and the
///    [`Authenticated`](crate::Authenticated) extractor;
/// 3. with [`with_remember_me`](Self::with_remember_me), logs a request
///    without a usable session in with its remember-me cookie;
/// 4. with [`with_csrf_header`](Self::with_csrf_header), refuses a
///    state-changing request with a session whose header does not carry a
///    token of that session: 403 `csrf_*` before the handler, the cookie
///    kept;
/// 5. turns what happened into the response's cookie and caching headers:
///
/// | what happened | response |
/// |---|---|
/// | a token was issued (login, rotation, a ticket's save, a reissue hint on load) | `Set-Cookie` with the newest token |
/// | the handler logged out | `Set-Cookie` clearing the cookie |
/// | the cookie was refused (expired, ended, reused, malformed, ambiguous) | the request runs logged out; `Set-Cookie` clears the cookie |
/// | the cookie's token was superseded by a login or privilege change moments ago | the request runs logged out; the cookie is left alone (the response that made the change sets the new one) |
/// | the `Cookie` headers are over the bytes scanned (other applications' cookies) | the request runs logged out; the cookie is kept (it was not read) |
/// | the store failed while loading | 503 (`backend`) at once, the handler does not run; the cookie is kept |
/// | remember-me logged the request in | both new cookies: the session's and the remember-me replacement |
/// | the remember-me cookie was refused | the request runs logged out; the remember-me cookie is cleared, and after a theft the session cookie too |
/// | a session took part, or a `Set-Cookie` is sent | `Cache-Control: no-store` |
///
/// A response never carries two session cookies: the newest token wins,
/// and a new token and a clearing cookie never travel together. Handlers
/// that fail (a [`SessionError`] or any other `ResponseError`) still get
/// the cookie their operations set: actix turns their errors into
/// responses inside the middleware. Only an `Err` from a middleware
/// inside this one (registered with `wrap` before it; the last `wrap` is
/// the outermost) passes through untouched, without `Set-Cookie`.
///
/// # Example
/// ```
/// use std::sync::Arc;
/// use actix_web::{App, web};
/// use latchkey::{CookieConfig, MemoryStore, StoreManager};
/// use latchkey_actix::{SessionHandle, SessionMiddleware};
///
/// async fn home(handle: SessionHandle) -> String {
///     format!("hello, {}", handle.user().unwrap_or_else(|| "stranger".into()))
/// }
///
/// let manager = Arc::new(StoreManager::new(MemoryStore::new()));
/// let sessions = SessionMiddleware::new(manager, CookieConfig::default())
///     // Pages served at another origin than the Host the server sees
///     // (behind a proxy that rewrites it) may still post to us.
///     .with_allowed_origin("https://app.example.com");
/// let app = App::new()
///     .wrap(sessions.clone())
///     .route("/", web::get().to(home));
/// ```
#[derive(Clone)]
#[must_use]
pub struct SessionMiddleware {
    shared: Shared,
}

impl SessionMiddleware {
    /// Sessions from `manager` (server-side sessions with a
    /// [`StoreManager`](latchkey::StoreManager), or stateless
    /// [`TicketManager`](latchkey::TicketManager) tickets), carried in
    /// cookies shaped by `cookies`. The origin check is on; a write that
    /// keeps conflicting is tried 12 times.
    ///
    /// Build it once and clone it into the `HttpServer` factory: clones
    /// share the manager, and the queue that lets one request at a time
    /// write a session (see
    /// [Version conflicts](SessionHandle#version-conflicts)), so the
    /// server's workers take turns too.
    ///
    /// # Example
    /// ```no_run
    /// use std::sync::Arc;
    /// use actix_web::{App, HttpServer, web};
    /// use latchkey::{CookieConfig, MemoryStore, StoreManager};
    /// use latchkey_actix::{SessionHandle, SessionMiddleware};
    ///
    /// async fn home(handle: SessionHandle) -> String {
    ///     format!("hello, {}", handle.user().unwrap_or_else(|| "stranger".into()))
    /// }
    ///
    /// # fn main() -> std::io::Result<()> {
    /// # actix_web::rt::System::new().block_on(async {
    /// let sessions = SessionMiddleware::new(
    ///     Arc::new(StoreManager::new(MemoryStore::new())),
    ///     CookieConfig::default(),
    /// );
    /// HttpServer::new(move || App::new().wrap(sessions.clone()).route("/", web::get().to(home)))
    ///     .bind(("127.0.0.1", 8080))?
    ///     .run()
    ///     .await
    /// # })
    /// # }
    /// ```
    pub fn new(manager: Arc<dyn SessionManager>, cookies: CookieConfig) -> SessionMiddleware {
        SessionMiddleware::with_manager(Manager::Sync(manager), cookies)
    }

    /// Sessions from an async `manager` ([`latchkey::AsyncStoreManager`]
    /// over an async store), otherwise as [`new`](Self::new): the same
    /// steps, answers and cookies. Every manager call is awaited in place,
    /// on the actix worker that serves the request: no thread hop to the
    /// blocking pool, whatever the store. A call that panics is a backend
    /// failure (503), as with a synchronous manager.
    ///
    /// Remember-me's calls are the exception: [`RememberMe`] speaks to a
    /// synchronous manager, so logging a request in with a remember-me
    /// cookie runs on the blocking pool, driving the async manager there;
    /// issuing and forgetting tokens run where its own store says
    /// ([`RememberMe::may_block`]).
    ///
    /// # Example
    /// ```
    /// use std::sync::Arc;
    /// use actix_web::{App, web};
    /// use latchkey::store::asynchronous::PendingOnce;
    /// use latchkey::{AsyncStoreManager, CookieConfig, MemoryStore};
    /// use latchkey_actix::{SessionError, SessionHandle, SessionMiddleware};
    ///
    /// async fn visits(handle: SessionHandle) -> Result<String, SessionError> {
    ///     let n = handle
    ///         .update(|s| {
    ///             let n = s.get::<u64>("visits")?.unwrap_or(0) + 1;
    ///             s.insert("visits", &n)?;
    ///             Ok(n)
    ///         })
    ///         .await?;
    ///     Ok(format!("visit {n}"))
    /// }
    ///
    /// // Any `AsyncStore`: an async Redis store (latchkey's `redis-async`),
    /// // or this test wrapper of the memory store.
    /// let store = PendingOnce::new(MemoryStore::new());
    /// let manager = AsyncStoreManager::new(store);
    /// let sessions = SessionMiddleware::from_async(Arc::new(manager), CookieConfig::default());
    /// let app = App::new()
    ///     .wrap(sessions)
    ///     .route("/", web::post().to(visits));
    /// ```
    pub fn from_async(
        manager: Arc<dyn AsyncSessionManager>,
        cookies: CookieConfig,
    ) -> SessionMiddleware {
        SessionMiddleware::with_manager(Manager::Async(manager), cookies)
    }

    fn with_manager(manager: Manager, cookies: CookieConfig) -> SessionMiddleware {
        SessionMiddleware {
            shared: Shared {
                manager,
                cookies,
                allowed_origins: Vec::new(),
                check_origin: true,
                max_attempts: DEFAULT_MAX_ATTEMPTS,
                csrf_header: None,
                remember: None,
                writers: Arc::default(),
            },
        }
    }

    /// Accepts state-changing requests whose `Origin` is `origin` (scheme,
    /// host and port, e.g. `"https://app.example.com"`; compared exactly,
    /// ASCII case-insensitive), besides those from the request's own
    /// `Host`. Needed behind a proxy that rewrites `Host`, or for a front
    /// end served from another origin. Only consulted when the browser
    /// sends no `Sec-Fetch-Site`; with it, only `same-origin` and `none`
    /// pass.
    ///
    /// # Example
    /// ```
    /// use std::sync::Arc;
    /// use latchkey::{CookieConfig, MemoryStore, StoreManager};
    /// use latchkey_actix::SessionMiddleware;
    ///
    /// let sessions = SessionMiddleware::new(
    ///     Arc::new(StoreManager::new(MemoryStore::new())),
    ///     CookieConfig::default(),
    /// )
    /// .with_allowed_origin("https://app.example.com")
    /// .with_allowed_origin("https://admin.example.com");
    /// ```
    pub fn with_allowed_origin(mut self, origin: impl Into<String>) -> SessionMiddleware {
        self.shared.allowed_origins.push(origin.into());
        self
    }

    /// Turns the cross-site check off: state-changing requests from other
    /// sites reach the handlers.
    ///
    /// **Risky**: without it a page elsewhere can post to your login form
    /// and log the visitor's browser into the attacker's account (login
    /// CSRF), which `SameSite` cookies do not stop. Only for an application
    /// that does the check itself (e.g. CSRF tokens on every form), or that
    /// serves no browsers.
    ///
    /// # Example
    /// ```
    /// use std::sync::Arc;
    /// use latchkey::{CookieConfig, MemoryStore, StoreManager};
    /// use latchkey_actix::SessionMiddleware;
    ///
    /// // This application checks a CSRF token on every form itself.
    /// let sessions = SessionMiddleware::new(
    ///     Arc::new(StoreManager::new(MemoryStore::new())),
    ///     CookieConfig::default(),
    /// )
    /// .danger_without_origin_check();
    /// ```
    pub fn danger_without_origin_check(mut self) -> SessionMiddleware {
        self.shared.check_origin = false;
        self
    }

    /// How many times an operation that writes the session is tried when
    /// it keeps meeting a version conflict (another request saved the
    /// session in between): each retry reloads the session and applies the
    /// handler's closure again, after a random wait of up to 1 ms, then 2,
    /// 4, 8, 16 and 32 ms. Then it fails with [`latchkey::Error::Conflict`]
    /// (409). At least 1 (no retry); 12 by default. Requests of this
    /// middleware on one session take turns instead of conflicting; see
    /// [Version conflicts](SessionHandle#version-conflicts).
    ///
    /// The wait matters: requests that conflicted were released together,
    /// and retried at once they collide again; against Redis, immediate
    /// retries made 60% of 64 concurrent requests on one session fail in a
    /// measurement.
    ///
    /// # Example
    /// ```
    /// use std::sync::Arc;
    /// use latchkey::{CookieConfig, MemoryStore, StoreManager};
    /// use latchkey_actix::SessionMiddleware;
    ///
    /// let sessions = SessionMiddleware::new(
    ///     Arc::new(StoreManager::new(MemoryStore::new())),
    ///     CookieConfig::default(),
    /// )
    /// .with_max_attempts(4);
    /// ```
    pub fn with_max_attempts(mut self, attempts: u32) -> SessionMiddleware {
        self.shared.max_attempts = attempts.max(1);
        self
    }

    /// Requires a CSRF token in the header `name` (e.g. `"x-csrf-token"`;
    /// any case) on every state-changing request (any method but GET,
    /// HEAD, OPTIONS, TRACE) that carries a session: the token must be one
    /// [`SessionHandle::csrf_token`] handed out in this session. Missing or
    /// wrong, the request is answered 403 with the reason (`csrf_missing`,
    /// `csrf_malformed`, `csrf_no_secret`, `csrf_mismatch`) before the
    /// handler runs; the session and its cookie are left alone. Requests
    /// without a session pass (nothing rides on them; the origin check
    /// covers login CSRF). A session logged in by remember-me on this very
    /// request counts as carried: it has no secret yet, so a state-changing
    /// request that arrives that way is refused (its new cookies are still
    /// sent) until a page of the new session supplies a token.
    ///
    /// Off by default: `SameSite=Lax` and the origin check (on by default)
    /// suffice in current browsers. Turn it on as latchkey's guide says
    /// ([CSRF tokens](latchkey::framework#csrf-tokens)): a cookie that is
    /// not `SameSite=Lax` or `Strict`, browsers that send neither
    /// `Sec-Fetch-Site` nor `Origin`, or a same-site subdomain you do not
    /// control. A header suits scripts (`fetch` with the token from a
    /// `<meta>` element); an HTML form cannot send one, so with this on
    /// every form post of a visitor with a session needs script, and
    /// without it forms carry the token in a field that the handler checks
    /// with [`SessionHandle::verify_csrf`].
    ///
    /// # Panics
    /// If `name` is not a valid header name: a programming error, caught
    /// when the middleware is built at startup.
    ///
    /// # Example
    /// ```
    /// use std::sync::Arc;
    /// use latchkey::{CookieConfig, MemoryStore, SameSite, StoreManager};
    /// use latchkey_actix::SessionMiddleware;
    ///
    /// // Embedded in other sites: the cookie must be SameSite=None, so the
    /// // browser sends it on cross-site posts, and only a token stops them.
    /// let cookies = CookieConfig::builder().with_same_site(SameSite::None).build()?;
    /// let sessions = SessionMiddleware::new(Arc::new(StoreManager::new(MemoryStore::new())), cookies)
    ///     .with_csrf_header("X-CSRF-Token");
    /// # Ok::<(), latchkey::CookieError>(())
    /// ```
    pub fn with_csrf_header(mut self, name: &str) -> SessionMiddleware {
        // `from_bytes` lowercases, as header names are compared.
        let header = HeaderName::from_bytes(name.as_bytes())
            .unwrap_or_else(|_| panic!("`{name}` is not a valid header name"));
        self.shared.csrf_header = Some(header);
        self
    }

    /// Remember-me ("keep me signed in"), with `remember` over the
    /// manager's store (server-side sessions) or its revocation store
    /// (tickets). Then:
    ///
    /// - a request with no usable session (no session cookie, or a refused
    ///   one) but a remember-me cookie is logged in through
    ///   [`RememberMe::log_in`]: a new session, both new cookies on the
    ///   response, and the handler sees the user;
    /// - a refused remember-me token (unknown, expired, revoked) is
    ///   cleared and the request runs logged out; a **stolen** one (a used
    ///   token presented again after the grace window) has ended every
    ///   session and token of its user, so both cookies are cleared;
    /// - a token another tab used moments ago logs nobody in, and the
    ///   response hands on that tab's replacement; a store failure is 503
    ///   with both cookies kept;
    /// - [`SessionHandle::remember`] issues a token for the logged-in user,
    ///   [`SessionHandle::forget_remembered`] forgets it, and
    ///   [`SessionHandle::logout`] forgets it and clears both cookies.
    ///
    /// Not over a session cookie superseded moments ago (the login that
    /// superseded it is sending the successor), nor over a `Cookie` header
    /// too crowded to read. With a synchronous manager its calls run where
    /// the manager's do: in place when [`SessionManager::may_block`] is
    /// false, else on the blocking pool. With an async manager
    /// ([`from_async`](Self::from_async)) the log-in runs on the blocking
    /// pool, driving the manager there, and issuing and forgetting tokens
    /// run where [`RememberMe::may_block`] says.
    /// The whole design is in latchkey's guide,
    /// [Remember-me](latchkey::framework#remember-me).
    ///
    /// # Example
    /// ```
    /// use std::sync::Arc;
    /// use latchkey::{CookieConfig, MemoryStore, RememberMe, StoreManager};
    /// use latchkey_actix::SessionMiddleware;
    ///
    /// let store = Arc::new(MemoryStore::new());
    /// let manager = StoreManager::new(store.clone());
    /// let remember = RememberMe::new(store, manager.policy().clone());
    /// let sessions = SessionMiddleware::new(Arc::new(manager), CookieConfig::default())
    ///     .with_remember_me(remember);
    /// ```
    pub fn with_remember_me(mut self, remember: RememberMe) -> SessionMiddleware {
        self.shared.remember = Some(Arc::new(remember));
        self
    }
}

impl fmt::Debug for SessionMiddleware {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionMiddleware")
            .field("manager", &self.shared.manager)
            .field("cookies", &self.shared.cookies)
            .field("check_origin", &self.shared.check_origin)
            .field("allowed_origins", &self.shared.allowed_origins)
            .field("max_attempts", &self.shared.max_attempts)
            .field("csrf_header", &self.shared.csrf_header)
            .field("remember", &self.shared.remember)
            .finish_non_exhaustive()
    }
}

impl<S, B> Transform<S, ServiceRequest> for SessionMiddleware
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Transform = SessionService<S>;
    type InitError = ();
    type Future = Ready<Result<SessionService<S>, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(SessionService {
            service: Rc::new(service),
            shared: Arc::new(self.shared.clone()),
        }))
    }
}

/// The service [`SessionMiddleware`] wraps around an application's: what
/// `App::wrap` builds. Not used directly.
///
/// # Example
/// ```
/// use std::sync::Arc;
/// use actix_web::dev::Transform as _;
/// use actix_web::{App, test, web};
/// use latchkey::{CookieConfig, MemoryStore, StoreManager};
/// use latchkey_actix::SessionMiddleware;
///
/// let sessions = SessionMiddleware::new(
///     Arc::new(StoreManager::new(MemoryStore::new())),
///     CookieConfig::default(),
/// );
/// // `App::new().wrap(sessions)` does this for every worker.
/// let _service = sessions.new_transform(test::ok_service());
/// ```
pub struct SessionService<S> {
    service: Rc<S>,
    shared: Arc<Shared>,
}

impl<S> fmt::Debug for SessionService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionService")
            .field("cookies", &self.shared.cookies)
            .finish_non_exhaustive()
    }
}

type LocalBoxFuture<T> = Pin<Box<dyn Future<Output = T>>>;

impl<S, B> Service<ServiceRequest> for SessionService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<Result<ServiceResponse<EitherBody<B>>, actix_web::Error>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let service = Rc::clone(&self.service);
        let shared = Arc::clone(&self.shared);
        Box::pin(async move {
            // Before anything else: a forged request must not reach the
            // handler, nor touch a session.
            if let Err(refused) = shared.check_origin(&req) {
                let refused = SessionError::CrossOrigin(refused);
                return Ok(req.error_response(refused).map_into_right_body());
            }
            let handle = match shared.start(&req).await {
                Ok(handle) => handle,
                Err(e) => return Ok(req.error_response(e).map_into_right_body()),
            };
            if let Err(refused) = shared.check_csrf(&req, &handle) {
                // Refused before the handler, the session unchanged; the
                // cookies this request earned (a reissue hint, a
                // remember-me login's) still go out.
                let mut res = req.error_response(refused);
                finish(&handle, &shared.cookies, res.headers_mut());
                return Ok(res.map_into_right_body());
            }
            req.extensions_mut().insert(handle.clone());
            // actix turns a handler's error into its response, so an `Err`
            // here comes from a middleware wrapped inside this one, and
            // passes through as it is: without the request, no response
            // can be built around it.
            let mut res = service.call(req).await?.map_into_left_body();
            finish(&handle, &shared.cookies, res.headers_mut());
            Ok(res)
        })
    }
}
