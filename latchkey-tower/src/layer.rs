//! [`SessionLayer`] and the service it wraps around yours.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::{
    CACHE_CONTROL, COOKIE, HOST, HeaderMap, HeaderName, HeaderValue, ORIGIN, SET_COOKIE,
};
use http::{Method, Request, Response};
use latchkey::{
    AsyncSessionManager, CookieConfig, CrossSiteRequest, FetchHeaders, Loaded, RememberMe,
    SessionManager, check_origin,
};
use latchkey_adapter::{DEFAULT_MAX_ATTEMPTS, Manager, Writers};
use tower_layer::Layer;
use tower_service::Service;

use crate::error::SessionError;
use crate::handle::{CookieChange, Outcome, SessionHandle, Start};

/// `Sec-Fetch-Site` (not among `http`'s named headers).
const SEC_FETCH_SITE: HeaderName = HeaderName::from_static("sec-fetch-site");

/// What every request of one layer shares.
#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) manager: Manager,
    pub(crate) cookies: CookieConfig,
    pub(crate) max_attempts: u32,
    /// `None`: the origin check is off
    /// ([`SessionLayer::danger_without_origin_check`]).
    allowed_origins: Option<Vec<String>>,
    /// The header state-changing requests with a session must carry a
    /// CSRF token in ([`SessionLayer::with_csrf_header`]); `None`: off.
    csrf_header: Option<HeaderName>,
    /// Remember-me ([`SessionLayer::with_remember_me`]).
    pub(crate) remember: Option<Arc<RememberMe>>,
    /// The sessions this layer's requests are writing, one writer each.
    pub(crate) writers: Arc<Writers>,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionLayer")
            .field("manager", &self.manager)
            .field("cookies", &self.cookies)
            .field("max_attempts", &self.max_attempts)
            .field("origin_check", &self.allowed_origins.is_some())
            .field("allowed_origins", &self.allowed_origins)
            .field("csrf_header", &self.csrf_header)
            .field("remember", &self.remember)
            .finish()
    }
}

/// Sessions for every request of a tower service: the cookie read, the
/// session loaded, a [`SessionHandle`] for the handler, and the response's
/// `Set-Cookie` and `Cache-Control` written.
///
/// On each request, in order:
///
/// 1. **Origin check.** A state-changing request (any method but GET, HEAD,
///    OPTIONS, TRACE) that another site made the browser send is answered
///    403 `cross_origin`, before the handler runs and before the session is
///    read or written ([`latchkey::check_origin`]: `Sec-Fetch-Site` when
///    present, else `Origin` against `Host`; `Origin: null` passes only
///    with `Sec-Fetch-Site: same-origin`). This stops login CSRF, which
///    `SameSite` cookies cannot. Add origins with
///    [`with_allowed_origin`](Self::with_allowed_origin).
/// 2. **Cookie.** The token is found with
///    [`CookieConfig::find_token_in`] over all `Cookie` headers. No cookie,
///    or one that cannot be used (two different values, a bad value, a
///    header crowded past the bytes scanned) means the request runs
///    logged out; never a 400.
/// 3. **Load.** [`SessionManager::load`]; a rejection runs the request
///    logged out (and clears the cookie unless the token was superseded
///    moments ago); a backend failure is answered 503 at once, keeping the
///    cookie.
/// 4. **Remember-me** (opt-in, [`with_remember_me`](Self::with_remember_me)).
///    A request with no usable session but a remember-me cookie is logged
///    in with it; a refused one is cleared (see the builder).
/// 5. **CSRF token** (opt-in, [`with_csrf_header`](Self::with_csrf_header)).
///    A state-changing request with a session whose header does not carry
///    a token of that session is answered 403 `csrf_*`, before the
///    handler; the cookie is kept.
/// 6. **Handler.** Sees a [`SessionHandle`] in the request's extensions.
/// 7. **Response.** At most one `Set-Cookie` for the session: the newest
///    token (the handler's, else a reissue hint from the load), or a
///    clearing cookie, never both; and at most one for the remember-me
///    cookie. `Cache-Control: no-store` on every response produced with a
///    session or carrying a `Set-Cookie`.
///
/// Manager calls run in place when [`SessionManager::may_block`] is false
/// and on tokio's blocking pool otherwise (an async manager's, given to
/// [`from_async`](Self::from_async), are awaited in place), so the layer needs a tokio
/// runtime (axum's), with the time driver on for the backoff between
/// retries of a conflicting save (`#[tokio::main]` enables it).
///
/// # Example
/// ```
/// use std::sync::Arc;
/// use axum::{Router, routing::get};
/// use latchkey::{CookieConfig, MemoryStore, StoreManager};
/// use latchkey_tower::{Authenticated, SessionLayer};
///
/// async fn me(auth: Authenticated) -> String {
///     format!("hello, {}", auth.user())
/// }
///
/// let manager = Arc::new(StoreManager::new(MemoryStore::new()));
/// let sessions = SessionLayer::new(manager, CookieConfig::default())
///     .with_allowed_origin("https://www.example.com");
/// let app: Router = Router::new().route("/me", get(me)).layer(sessions);
/// ```
#[derive(Clone)]
pub struct SessionLayer {
    shared: Arc<Shared>,
}

impl fmt::Debug for SessionLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.shared.fmt(f)
    }
}

impl SessionLayer {
    /// A layer for sessions from `manager`, carried in the cookie `cookies`
    /// describes, with the origin check on and up to 12 attempts for a
    /// conflicting save.
    ///
    /// With stateless tickets, give the `TicketManager` the same config
    /// (`TicketManager::with_cookie`), so every ticket it issues fits the
    /// cookie.
    ///
    /// # Example
    /// ```
    /// use std::sync::Arc;
    /// use latchkey::{CookieConfig, KeyRing, TicketKey, TicketManager};
    /// use latchkey_tower::SessionLayer;
    ///
    /// let cookies = CookieConfig::default();
    /// let tickets = TicketManager::new(cookies.name(), KeyRing::new(1, TicketKey::generate()))?
    ///     .with_cookie(&cookies);
    /// let layer = SessionLayer::new(Arc::new(tickets), cookies);
    /// # let _ = layer;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(manager: Arc<dyn SessionManager>, cookies: CookieConfig) -> SessionLayer {
        SessionLayer::with_manager(Manager::Sync(manager), cookies)
    }

    /// A layer for sessions from an async `manager`
    /// ([`latchkey::AsyncStoreManager`] over an async store), otherwise as
    /// [`new`](Self::new): the same steps, answers and cookies. Every
    /// manager call is awaited in place, on the request's task: no thread
    /// hop to the blocking pool, whatever the store.
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
    /// use axum::{Router, routing::get};
    /// use latchkey::{AsyncStoreManager, CookieConfig, MemoryStore};
    /// use latchkey::store::asynchronous::PendingOnce;
    /// use latchkey_tower::{SessionHandle, SessionLayer};
    ///
    /// async fn visits(handle: SessionHandle) -> String {
    ///     let n = handle.update(|s| {
    ///         let n = s.get::<u64>("visits")?.unwrap_or(0) + 1;
    ///         s.insert("visits", &n)?;
    ///         Ok::<_, latchkey::Error>(n)
    ///     }).await;
    ///     format!("{n:?}")
    /// }
    ///
    /// // Any `AsyncStore`: an async Redis store, or this test wrapper.
    /// let store = PendingOnce::new(MemoryStore::new());
    /// let manager = AsyncStoreManager::new(store);
    /// let sessions = SessionLayer::from_async(Arc::new(manager), CookieConfig::default());
    /// let app: Router = Router::new().route("/", get(visits)).layer(sessions);
    /// ```
    pub fn from_async(
        manager: Arc<dyn AsyncSessionManager>,
        cookies: CookieConfig,
    ) -> SessionLayer {
        SessionLayer::with_manager(Manager::Async(manager), cookies)
    }

    fn with_manager(manager: Manager, cookies: CookieConfig) -> SessionLayer {
        SessionLayer {
            shared: Arc::new(Shared {
                manager,
                cookies,
                max_attempts: DEFAULT_MAX_ATTEMPTS,
                allowed_origins: Some(Vec::new()),
                csrf_header: None,
                remember: None,
                writers: Arc::default(),
            }),
        }
    }

    fn shared_mut(&mut self) -> &mut Shared {
        // Builders run before the layer is cloned into services; a clone
        // made earlier keeps the settings it had.
        Arc::make_mut(&mut self.shared)
    }

    /// Also accepts state-changing requests whose `Origin` is `origin`
    /// (e.g. `"https://app.example.com"`, compared exactly, ASCII
    /// case-insensitively), besides those whose `Origin` matches their own
    /// `Host`. Needed behind a proxy that rewrites `Host`, or for a
    /// front end on another origin. Only consulted for requests without
    /// `Sec-Fetch-Site`: a browser that sends it is trusted to say
    /// `same-origin`.
    ///
    /// # Example
    /// ```
    /// use std::sync::Arc;
    /// use latchkey::{CookieConfig, MemoryStore, StoreManager};
    /// use latchkey_tower::SessionLayer;
    /// let layer = SessionLayer::new(Arc::new(StoreManager::new(MemoryStore::new())), CookieConfig::default())
    ///     .with_allowed_origin("https://app.example.com")
    ///     .with_allowed_origin("https://admin.example.com");
    /// # let _ = layer;
    /// ```
    #[must_use]
    pub fn with_allowed_origin(mut self, origin: impl Into<String>) -> SessionLayer {
        let origin = origin.into();
        if let Some(list) = &mut self.shared_mut().allowed_origins {
            list.push(origin);
        }
        self
    }

    /// Turns the origin check off: state-changing requests from other
    /// sites reach the handlers.
    ///
    /// **Risky.** `SameSite=Lax` keeps the session cookie off cross-site
    /// POSTs, but nothing then stops another site from posting to your
    /// login form and logging the victim's browser into the attacker's
    /// account (login CSRF), nor protects a cookie configured
    /// `SameSite=None`. Use it only when every state-changing route has a
    /// CSRF defence of its own.
    ///
    /// # Example
    /// ```
    /// use std::sync::Arc;
    /// use latchkey::{CookieConfig, MemoryStore, StoreManager};
    /// use latchkey_tower::SessionLayer;
    /// // This API is for non-browser clients only, each with a CSRF token.
    /// let layer = SessionLayer::new(Arc::new(StoreManager::new(MemoryStore::new())), CookieConfig::default())
    ///     .danger_without_origin_check();
    /// # let _ = layer;
    /// ```
    #[must_use]
    pub fn danger_without_origin_check(mut self) -> SessionLayer {
        self.shared_mut().allowed_origins = None;
        self
    }

    /// How many times an operation that hits a version conflict is tried
    /// in all (reloading the session and applying the change again in
    /// between) before it answers 409. At least 1 (no retry); 12 by
    /// default. See [`SessionHandle`] on conflicts.
    ///
    /// # Example
    /// ```
    /// use std::sync::Arc;
    /// use latchkey::{CookieConfig, MemoryStore, StoreManager};
    /// use latchkey_tower::SessionLayer;
    /// // Many tabs of one user saving at once: more attempts.
    /// let layer = SessionLayer::new(Arc::new(StoreManager::new(MemoryStore::new())), CookieConfig::default())
    ///     .with_max_attempts(16);
    /// # let _ = layer;
    /// ```
    #[must_use]
    pub fn with_max_attempts(mut self, attempts: u32) -> SessionLayer {
        self.shared_mut().max_attempts = attempts.max(1);
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
    /// when the layer is built at startup.
    ///
    /// # Example
    /// ```
    /// use std::sync::Arc;
    /// use latchkey::{CookieConfig, MemoryStore, SameSite, StoreManager};
    /// use latchkey_tower::SessionLayer;
    /// // Embedded in other sites: the cookie must be SameSite=None, so the
    /// // browser sends it on cross-site posts, and only a token stops them.
    /// let cookies = CookieConfig::builder().with_same_site(SameSite::None).build()?;
    /// let layer = SessionLayer::new(Arc::new(StoreManager::new(MemoryStore::new())), cookies)
    ///     .with_csrf_header("X-CSRF-Token");
    /// # let _ = layer;
    /// # Ok::<(), latchkey::CookieError>(())
    /// ```
    #[must_use]
    pub fn with_csrf_header(mut self, name: &str) -> SessionLayer {
        // `from_bytes` lowercases, as header names are compared.
        let header = HeaderName::from_bytes(name.as_bytes())
            .unwrap_or_else(|_| panic!("`{name}` is not a valid header name"));
        self.shared_mut().csrf_header = Some(header);
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
    /// too crowded to read. Its calls run where the manager's do: in place
    /// when [`SessionManager::may_block`] is false, else on the blocking
    /// pool (`RememberMe` does not say on its own; hence the same store).
    /// The whole design is in latchkey's guide,
    /// [Remember-me](latchkey::framework#remember-me).
    ///
    /// # Example
    /// ```
    /// use std::sync::Arc;
    /// use latchkey::{CookieConfig, MemoryStore, RememberMe, StoreManager};
    /// use latchkey_tower::SessionLayer;
    /// let store = Arc::new(MemoryStore::new());
    /// let manager = StoreManager::new(store.clone());
    /// let remember = RememberMe::new(store, manager.policy().clone());
    /// let layer = SessionLayer::new(Arc::new(manager), CookieConfig::default())
    ///     .with_remember_me(remember);
    /// # let _ = layer;
    /// ```
    #[must_use]
    pub fn with_remember_me(mut self, remember: RememberMe) -> SessionLayer {
        self.shared_mut().remember = Some(Arc::new(remember));
        self
    }
}

impl<S> Layer<S> for SessionLayer {
    type Service = SessionService<S>;

    fn layer(&self, inner: S) -> SessionService<S> {
        SessionService {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}

/// The service [`SessionLayer`] wraps around `S`: see the layer for what it
/// does.
///
/// # Example
/// ```
/// use std::convert::Infallible;
/// use std::sync::Arc;
/// use http::{Request, Response};
/// use latchkey::{CookieConfig, MemoryStore, StoreManager};
/// use latchkey_tower::{SessionHandle, SessionLayer, SessionService};
/// use tower::{Layer, service_fn};
///
/// // A plain tower service, no axum: the handle is in the extensions.
/// let inner = service_fn(|req: Request<String>| async move {
///     let handle = req.extensions().get::<SessionHandle>().cloned();
///     let user = handle.and_then(|h| h.user()).unwrap_or_default();
///     Ok::<_, Infallible>(Response::new(format!("user: {user}")))
/// });
/// let manager = Arc::new(StoreManager::new(MemoryStore::new()));
/// let service: SessionService<_> = SessionLayer::new(manager, CookieConfig::default()).layer(inner);
/// # let _ = service;
/// ```
#[derive(Clone)]
pub struct SessionService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S: fmt::Debug> fmt::Debug for SessionService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionService")
            .field("inner", &self.inner)
            .field("layer", &self.shared)
            .finish()
    }
}

/// The future of a [`SessionService`] response.
///
/// # Example
/// ```
/// use latchkey_tower::ResponseFuture;
/// // What `SessionService<S>::call` returns for a service with axum's types.
/// type AxumFuture = ResponseFuture<axum::body::Body, std::convert::Infallible>;
/// ```
pub struct ResponseFuture<B, E> {
    inner: Pin<Box<dyn Future<Output = Result<Response<B>, E>> + Send + 'static>>,
}

impl<B, E> fmt::Debug for ResponseFuture<B, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<B, E> Future for ResponseFuture<B, E> {
    type Output = Result<Response<B>, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for SessionService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: 'static,
    ReqBody: Send + 'static,
    ResBody: From<&'static str> + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let shared = Arc::clone(&self.shared);
        // The service that was polled ready is the one to call; leave a
        // fresh clone in its place for the next request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);

        if let Err(refused) = shared.check_origin(&req) {
            let response = SessionError::CrossOrigin(refused).to_response();
            return ResponseFuture {
                inner: Box::pin(async move { Ok(response) }),
            };
        }

        let mut change = CookieChange::Keep;
        // A cookie the client holds but this request cannot use, and whose
        // place no new session may take (see `SessionHandle`).
        let mut protect_cookie = false;
        let found = shared.cookies.find_token_in(
            req.headers()
                .get_all(COOKIE)
                .iter()
                .map(HeaderValue::as_bytes),
        );
        let token = match found {
            Ok(token) => token.map(str::to_owned),
            // No usable session cookie: the request runs logged out, never
            // a 400 (the header carries every application's cookies for
            // the host). Two different session cookies or a broken value
            // are cleared; a header crowded past the scan limit was not
            // read, so ours is kept.
            Err(e) => {
                if e.clears_cookie() {
                    change = CookieChange::Clear;
                } else {
                    protect_cookie = true;
                }
                None
            }
        };
        let (remember_token, remember_cookie) = shared.find_remember_token(req.headers());

        ResponseFuture {
            inner: Box::pin(async move {
                let mut loaded = None;
                if let Some(token) = token {
                    let presented = token.clone();
                    match shared.manager.load(token).await {
                        Ok(Loaded {
                            session, reissue, ..
                        }) => {
                            // A reissue hint: the client holds a token
                            // rotated moments ago (or an aging ticket);
                            // send the newer one, unless the handler
                            // issues a newer still.
                            let current = match reissue {
                                Some(issued) => {
                                    let t = issued.token().to_owned();
                                    change = CookieChange::Set(issued);
                                    t
                                }
                                None => presented,
                            };
                            loaded = Some((session, current));
                        }
                        // Expired, ended, reused, malformed, forged: logged
                        // out, and the cookie cleared. Except `Superseded`:
                        // the login or privilege change that retired the
                        // token moments ago is sending the successor, and a
                        // clearing cookie racing it would log the user out.
                        Err(e) if e.is_rejection() => {
                            if e.clears_cookie() {
                                change = CookieChange::Clear;
                            } else {
                                protect_cookie = true;
                            }
                        }
                        // The store failed, not the session: 503, and keep
                        // the cookie (clearing it would log everyone out
                        // for the length of an outage).
                        Err(e) => return Ok(SessionError::Latchkey(e).to_response()),
                    }
                }
                let handle = SessionHandle::new(
                    Arc::clone(&shared),
                    Start {
                        loaded,
                        change,
                        protect_cookie,
                        remember_token,
                        remember_cookie,
                    },
                );
                // No usable session: the remember-me cookie, if any. A
                // store failure there is a 503 that keeps both cookies.
                if let Err(e) = handle.resume_remembered().await {
                    return Ok(e.to_response());
                }
                if let Some(name) = &shared.csrf_header
                    && !is_safe(req.method())
                {
                    let value = req.headers().get(name).map(HeaderValue::as_bytes);
                    if let Err(refused) = handle.check_csrf_header(value) {
                        // Refused before the handler, the session unchanged;
                        // the cookies this request earned (a reissue hint, a
                        // remember-me login's) still go out.
                        return Ok(shared.finish(refused.to_response(), &handle));
                    }
                }
                req.extensions_mut().insert(handle.clone());
                let response = inner.call(req).await?;
                Ok(shared.finish(response, &handle))
            }),
        }
    }
}

/// The methods that must not change state, which no CSRF check guards
/// (the same list as [`check_origin`]'s).
fn is_safe(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

impl Shared {
    /// Runs [`check_origin`] on the request, unless the check is off.
    fn check_origin<B>(&self, req: &Request<B>) -> Result<(), CrossSiteRequest> {
        let Some(allowed) = &self.allowed_origins else {
            return Ok(());
        };
        let headers = req.headers();
        // A value that is not UTF-8 matches nothing (as `FetchHeaders`
        // asks): `Some("")` is refused where it would decide.
        let text = |name| {
            headers
                .get(name)
                .map(|v: &HeaderValue| v.to_str().unwrap_or(""))
        };
        let fetch = FetchHeaders {
            method: req.method().as_str(),
            sec_fetch_site: text(SEC_FETCH_SITE),
            origin: text(ORIGIN),
            // HTTP/1.1 `Host`, or HTTP/2 `:authority` (in the URI).
            host: text(HOST).or_else(|| req.uri().authority().map(|a| a.as_str())),
        };
        let allowed: Vec<&str> = allowed.iter().map(String::as_str).collect();
        check_origin(&fetch, &allowed)
    }

    /// The remember-me cookie's token, and its `Set-Cookie` when the
    /// cookie cannot be used (two different values, a bad value): cleared,
    /// as the session cookie is. Nothing without remember-me.
    fn find_remember_token(&self, headers: &HeaderMap) -> (Option<String>, Option<String>) {
        let Some(remember) = &self.remember else {
            return (None, None);
        };
        let cookies = headers.get_all(COOKIE).iter().map(HeaderValue::as_bytes);
        match remember.cookie().find_token_in(cookies) {
            Ok(token) => (token.map(str::to_owned), None),
            Err(e) => (
                None,
                e.clears_cookie().then(|| remember.cookie().clear_cookie()),
            ),
        }
    }

    /// Writes the session's `Set-Cookie` and `Cache-Control` into the
    /// handler's response.
    fn finish<B: From<&'static str>>(
        &self,
        mut response: Response<B>,
        handle: &SessionHandle,
    ) -> Response<B> {
        let Outcome {
            involved,
            change,
            remember_cookie,
        } = handle.take_outcome();
        let set_cookie = match &change {
            CookieChange::Keep => None,
            CookieChange::Clear => Some(self.cookies.clear_cookie()),
            CookieChange::Set(issued) => match self.cookies.set_cookie(issued) {
                Ok(v) => Some(v),
                // A token was issued and cannot reach the client (a ticket
                // longer than this cookie carries): the handler's success
                // would be a lie, so answer 500 instead.
                Err(e) => {
                    let mut failed = SessionError::SetCookie(e).to_response();
                    no_store(&mut failed);
                    return failed;
                }
            },
        };
        // A rendered cookie holds only cookie octets and attribute text,
        // so it is always a valid header value.
        let values = [set_cookie, remember_cookie]
            .into_iter()
            .flatten()
            .filter_map(|v| HeaderValue::try_from(v).ok());
        let mut carries_cookie = false;
        for v in values {
            response.headers_mut().append(SET_COOKIE, v);
            carries_cookie = true;
        }
        if involved || carries_cookie {
            no_store(&mut response);
        }
        response
    }
}

/// `Cache-Control: no-store`, replacing what the handler set: a page about
/// a session, or a fresh cookie, kept by a shared cache would be served to
/// the next user (RFC 9111 §5.2.2.5).
fn no_store<B>(response: &mut Response<B>) {
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
}
