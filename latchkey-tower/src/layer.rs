//! [`SessionLayer`] and the service it wraps around yours.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::{CACHE_CONTROL, COOKIE, HOST, HeaderName, HeaderValue, ORIGIN, SET_COOKIE};
use http::{Request, Response};
use latchkey::{
    CookieConfig, CrossSiteRequest, FetchHeaders, Loaded, SessionManager, check_origin,
};
use tower_layer::Layer;
use tower_service::Service;

use crate::dispatch;
use crate::error::SessionError;
use crate::handle::{CookieChange, SessionHandle};

/// `Sec-Fetch-Site` (not among `http`'s named headers).
const SEC_FETCH_SITE: HeaderName = HeaderName::from_static("sec-fetch-site");

/// The default of [`SessionLayer::with_max_attempts`].
const DEFAULT_MAX_ATTEMPTS: u32 = 8;

/// What every request of one layer shares.
#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) manager: Arc<dyn SessionManager>,
    pub(crate) cookies: CookieConfig,
    pub(crate) max_attempts: u32,
    /// `None`: the origin check is off
    /// ([`SessionLayer::danger_without_origin_check`]).
    allowed_origins: Option<Vec<String>>,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionLayer")
            .field("manager", &self.manager)
            .field("cookies", &self.cookies)
            .field("max_attempts", &self.max_attempts)
            .field("origin_check", &self.allowed_origins.is_some())
            .field("allowed_origins", &self.allowed_origins)
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
/// 4. **Handler.** Sees a [`SessionHandle`] in the request's extensions.
/// 5. **Response.** At most one `Set-Cookie` for the session: the newest
///    token (the handler's, else a reissue hint from the load), or a
///    clearing cookie, never both. `Cache-Control: no-store` on every
///    response produced with a session or carrying a `Set-Cookie`.
///
/// Manager calls run in place when [`SessionManager::may_block`] is false
/// and on tokio's blocking pool otherwise, so the layer needs a tokio
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
    /// describes, with the origin check on and up to 8 attempts for a
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
        SessionLayer {
            shared: Arc::new(Shared {
                manager,
                cookies,
                max_attempts: DEFAULT_MAX_ATTEMPTS,
                allowed_origins: Some(Vec::new()),
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
    /// between) before it answers 409. At least 1 (no retry); 8 by
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
                }
                None
            }
        };

        ResponseFuture {
            inner: Box::pin(async move {
                let mut loaded = None;
                if let Some(token) = token {
                    let presented = token.clone();
                    match dispatch::call(&shared.manager, move |m| m.load(&token)).await {
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
                            }
                        }
                        // The store failed, not the session: 503, and keep
                        // the cookie (clearing it would log everyone out
                        // for the length of an outage).
                        Err(e) => return Ok(SessionError::Latchkey(e).to_response()),
                    }
                }
                let handle = SessionHandle::new(Arc::clone(&shared), loaded, change);
                req.extensions_mut().insert(handle.clone());
                let response = inner.call(req).await?;
                Ok(shared.finish(response, &handle))
            }),
        }
    }
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

    /// Writes the session's `Set-Cookie` and `Cache-Control` into the
    /// handler's response.
    fn finish<B: From<&'static str>>(
        &self,
        mut response: Response<B>,
        handle: &SessionHandle,
    ) -> Response<B> {
        let (involved, change) = handle.take_outcome();
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
        let set_cookie = set_cookie.and_then(|v| HeaderValue::try_from(v).ok());
        let carries_cookie = set_cookie.is_some();
        if let Some(v) = set_cookie {
            response.headers_mut().append(SET_COOKIE, v);
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
