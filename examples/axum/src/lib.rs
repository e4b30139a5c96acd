//! latchkey as axum middleware: what a framework author copies.
//!
//! [`session_layer`] runs on every request. It finds the session cookie with
//! [`CookieConfig::find_token_in`], loads the session through an
//! `Arc<dyn SessionManager>` on tokio's blocking pool, and puts a
//! [`SessionHandle`] in the request's extensions. Handlers take the handle
//! (or [`Authenticated`], which answers 401 when there is no session) and
//! call `login`, `rotate_with`, `save_with`, `logout`; the layer turns
//! whatever they did into the response's `Set-Cookie`:
//!
//! | what happened | response |
//! |---|---|
//! | a token was issued (login, rotation, a reissue hint on load) | `Set-Cookie` with the new token |
//! | the cookie was rejected (expired, ended, reused, malformed, ambiguous) | the request runs logged out; `Set-Cookie` clears the cookie |
//! | the store failed | 503 at once; the cookie is kept (the session may be fine) |
//! | the `Cookie` header is crowded past the 64 KiB scanned (other applications' cookies) | the request runs logged out; the cookie is kept (it was not read) |
//! | a session was involved at all | `Cache-Control: no-store` |
//!
//! **Store calls block** (a file store does I/O, a Redis store a network
//! round trip), so every manager call runs in
//! [`tokio::task::spawn_blocking`]: an executor thread is never held up by
//! the store.
//!
//! Whether the manager is a `StoreManager` or stateless tickets makes no
//! difference here: the layer only sees `dyn SessionManager`.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::{CACHE_CONTROL, COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use latchkey::{
    CookieConfig, Error, Issued, Loaded, NewSession, Session, SessionManager, StoreError,
};
use subtle::ConstantTimeEq as _;

/// What the layer needs: the manager and the cookie rules. Cheap to clone.
#[derive(Clone)]
pub struct Sessions {
    manager: Arc<dyn SessionManager>,
    cookies: Arc<CookieConfig>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("cookies", &self.cookies)
            .finish_non_exhaustive()
    }
}

impl Sessions {
    /// Sessions from `manager`, carried in cookies shaped by `cookies`.
    pub fn new(manager: Arc<dyn SessionManager>, cookies: CookieConfig) -> Sessions {
        Sessions {
            manager,
            cookies: Arc::new(cookies),
        }
    }
}

/// Runs a manager call on the blocking pool. A call that panicked or was
/// cancelled counts as a backend failure: the session itself may be fine.
async fn blocking<T, F>(f: F) -> Result<T, Error>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, Error> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(join) => Err(Error::Store(StoreError::Unavailable(Box::new(join)))),
    }
}

/// What the response must do to the cookie.
enum CookieChange {
    Keep,
    Set(Issued),
    Clear,
}

struct HandleInner {
    manager: Arc<dyn SessionManager>,
    session: Mutex<Option<Session>>,
    change: Mutex<CookieChange>,
}

/// The current request's session, and the operations that change it.
///
/// Taken as an extractor. The operations run the manager on the blocking
/// pool and record the cookie to send; the layer sends it.
#[derive(Clone)]
pub struct SessionHandle(Arc<HandleInner>);

impl std::fmt::Debug for SessionHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SessionHandle")
            .field(&self.session())
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded values are replaced whole, so a panic elsewhere cannot
    // leave them half-written.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SessionHandle {
    /// A copy of the session, if the request has one.
    pub fn session(&self) -> Option<Session> {
        lock(&self.0.session).clone()
    }

    fn set(&self, session: Option<Session>, change: CookieChange) {
        *lock(&self.0.session) = session;
        *lock(&self.0.change) = change;
    }

    /// A failure on a loaded session: if it is a rejection, the session is
    /// gone (ended elsewhere meanwhile), so the cookie goes too.
    fn fail(&self, e: Error) -> SessionError {
        if e.clears_cookie() {
            self.set(None, CookieChange::Clear);
        }
        SessionError(e)
    }

    /// Logs `user` in: rotates the current session (no fixation) or
    /// creates one.
    ///
    /// # Errors
    /// As for [`SessionManager::login`] and [`SessionManager::create`].
    pub async fn login(&self, user: &str) -> Result<Session, SessionError> {
        let manager = self.0.manager.clone();
        let current = self.session();
        let user = user.to_owned();
        let (session, issued) = blocking(move || match current {
            Some(mut s) => {
                let issued = manager.login(&mut s, &user)?;
                Ok((s, issued))
            }
            None => {
                let issued = manager.create(NewSession::new().with_user(user))?;
                let Loaded { session, .. } = manager.load(issued.token())?;
                Ok((session, issued))
            }
        })
        .await
        .map_err(|e| self.fail(e))?;
        self.set(Some(session.clone()), CookieChange::Set(issued));
        Ok(session)
    }

    /// Applies `change` and gives the session a new ID as a privilege
    /// change: the old cookie is refused from now on.
    ///
    /// # Errors
    /// 401 without a session; as for [`SessionManager::change_privilege`].
    pub async fn rotate_with<F>(&self, change: F) -> Result<Session, SessionError>
    where
        F: FnOnce(&mut Session) -> Result<(), Error> + Send + 'static,
    {
        let mut session = self.session().ok_or(SessionError(Error::Unknown))?;
        let manager = self.0.manager.clone();
        let (session, issued) = blocking(move || {
            change(&mut session)?;
            let issued = manager.change_privilege(&mut session)?;
            Ok((session, issued))
        })
        .await
        .map_err(|e| self.fail(e))?;
        self.set(Some(session.clone()), CookieChange::Set(issued));
        Ok(session)
    }

    /// Applies `change` and saves (versioned).
    ///
    /// # Errors
    /// 401 without a session; 409 on a version conflict; as for
    /// [`SessionManager::save`].
    pub async fn save_with<F>(&self, change: F) -> Result<Session, SessionError>
    where
        F: FnOnce(&mut Session) -> Result<(), Error> + Send + 'static,
    {
        let mut session = self.session().ok_or(SessionError(Error::Unknown))?;
        let manager = self.0.manager.clone();
        let (session, issued) = blocking(move || {
            change(&mut session)?;
            let issued = manager.save(&mut session)?;
            Ok((session, issued))
        })
        .await
        .map_err(|e| self.fail(e))?;
        let change = match issued {
            // Stateless tickets carry the data: a save issues a new one.
            Some(i) => CookieChange::Set(i),
            None => std::mem::replace(&mut *lock(&self.0.change), CookieChange::Keep),
        };
        self.set(Some(session.clone()), change);
        Ok(session)
    }

    /// Ends the session and clears the cookie. Without a session, only
    /// clears the cookie.
    ///
    /// # Errors
    /// As for [`SessionManager::terminate`].
    pub async fn logout(&self) -> Result<(), SessionError> {
        if let Some(session) = self.session() {
            let manager = self.0.manager.clone();
            blocking(move || manager.terminate(&session))
                .await
                .map_err(SessionError)?;
        }
        self.set(None, CookieChange::Clear);
        Ok(())
    }
}

/// A latchkey error as a response: rejections are 401, backend failures
/// 503, a version conflict 409, anything else 500. The body is the stable
/// reason code; the layer clears the cookie on rejections.
#[derive(Debug)]
pub struct SessionError(pub Error);

impl From<Error> for SessionError {
    fn from(e: Error) -> SessionError {
        SessionError(e)
    }
}

impl IntoResponse for SessionError {
    fn into_response(self) -> Response {
        let status = if self.0.is_rejection() {
            StatusCode::UNAUTHORIZED
        } else if self.0.is_backend_failure() {
            StatusCode::SERVICE_UNAVAILABLE
        } else if matches!(self.0, Error::Conflict) {
            StatusCode::CONFLICT
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        };
        (status, format!("{}\n", self.0.reason())).into_response()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for SessionHandle {
    type Rejection = (StatusCode, &'static str);

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<SessionHandle>()
            .cloned()
            .ok_or((StatusCode::INTERNAL_SERVER_ERROR, "session layer missing\n"))
    }
}

/// A logged-in session, or 401.
#[derive(Debug)]
pub struct Authenticated(pub Session);

impl<S: Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let handle = SessionHandle::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        match handle.session() {
            Some(s) if s.user().is_some() => Ok(Authenticated(s)),
            _ => Err((StatusCode::UNAUTHORIZED, "log in first\n").into_response()),
        }
    }
}

/// The middleware. Install with
/// `axum::middleware::from_fn_with_state(sessions, session_layer)`.
pub async fn session_layer(
    State(sessions): State<Sessions>,
    mut req: Request,
    next: Next,
) -> Response {
    let mut change = CookieChange::Keep;
    let found = sessions
        .cookies
        .find_token_in(
            req.headers()
                .get_all(COOKIE)
                .iter()
                .map(HeaderValue::as_bytes),
        )
        .map(|t| t.map(str::to_owned));
    let token = match found {
        Ok(t) => t,
        // No usable session cookie: the request runs logged out, never a
        // 400 (other applications' cookies are not this request's fault).
        // Two different session cookies or a broken value are cleared; a
        // header crowded past the scan limit was not read, so ours is kept.
        Err(e) => {
            if e.clears_cookie() {
                change = CookieChange::Clear;
            }
            None
        }
    };
    let mut session = None;
    if let Some(token) = token {
        let manager = sessions.manager.clone();
        match blocking(move || manager.load(&token)).await {
            Ok(Loaded {
                session: s,
                reissue,
                ..
            }) => {
                session = Some(s);
                if let Some(issued) = reissue {
                    change = CookieChange::Set(issued);
                }
            }
            // A superseded token's client already has (or is being sent)
            // the successor's cookie: carry on anonymously, clear nothing.
            Err(e) if e.is_rejection() && !e.clears_cookie() => {}
            Err(e) if e.is_rejection() => change = CookieChange::Clear,
            // Keep the cookie: the store is down, not the session.
            Err(e) => return SessionError(e).into_response(),
        }
    }
    let had_session = session.is_some();
    let handle = SessionHandle(Arc::new(HandleInner {
        manager: sessions.manager.clone(),
        session: Mutex::new(session),
        change: Mutex::new(change),
    }));
    req.extensions_mut().insert(handle.clone());

    let mut res = next.run(req).await;

    let change = std::mem::replace(&mut *lock(&handle.0.change), CookieChange::Keep);
    let set_cookie = match &change {
        CookieChange::Keep => None,
        CookieChange::Set(issued) => sessions.cookies.set_cookie(issued).ok(),
        CookieChange::Clear => Some(sessions.cookies.clear_cookie()),
    };
    if let Some(v) = set_cookie.and_then(|v| HeaderValue::from_str(&v).ok()) {
        res.headers_mut().append(SET_COOKIE, v);
    }
    if had_session || matches!(change, CookieChange::Set(_)) {
        // A response about a session must not be kept by any cache.
        res.headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

/// The demo password (any user name works).
pub const DEMO_PASSWORD: &str = "latchkey";

/// The login form's fields.
#[derive(Debug, serde::Deserialize)]
pub struct LoginForm {
    /// Any name.
    pub username: String,
    /// [`DEMO_PASSWORD`].
    pub password: String,
}

/// A tiny app behind the layer: `GET /` and `GET /me` show the session,
/// `POST /login` (form: username, password), `POST /admin` (a privilege
/// change: rotates), `POST /logout`.
pub fn router(sessions: Sessions) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/me", get(me))
        .route("/login", post(login))
        .route("/admin", post(admin))
        .route("/logout", post(logout))
        .layer(axum::middleware::from_fn_with_state(
            sessions,
            session_layer,
        ))
}

fn role(s: &Session) -> String {
    s.get::<String>("role")
        .ok()
        .flatten()
        .unwrap_or_else(|| "user".into())
}

async fn home(handle: SessionHandle) -> Html<String> {
    Html(match handle.session() {
        Some(s) => format!(
            "<p>Session <code>{}</code> ({}). <form method=post action=/admin><button>Become admin</button></form> \
             <form method=post action=/logout><button>Log out</button></form></p>",
            s.fingerprint(),
            role(&s)
        ),
        None => format!(
            "<form method=post action=/login><input name=username placeholder=name> \
             <input name=password type=password placeholder=password> <button>Log in</button></form> \
             <p>Any name; the password is <code>{DEMO_PASSWORD}</code>.</p>"
        ),
    })
}

async fn me(Authenticated(s): Authenticated) -> String {
    format!(
        "user={}\nrole={}\nfingerprint={}\n",
        s.user().unwrap_or(""),
        role(&s),
        s.fingerprint()
    )
}

async fn login(
    handle: SessionHandle,
    Form(form): Form<LoginForm>,
) -> Result<Response, SessionError> {
    let name = form.username.trim();
    let password_ok: bool = form
        .password
        .as_bytes()
        .ct_eq(DEMO_PASSWORD.as_bytes())
        .into();
    if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) || !password_ok {
        return Ok((StatusCode::UNAUTHORIZED, "wrong user name or password\n").into_response());
    }
    handle.login(name).await?;
    Ok(Redirect::to("/").into_response())
}

async fn admin(handle: SessionHandle) -> Result<Redirect, SessionError> {
    // A privilege change: new ID, so a copied cookie gains no admin rights.
    handle.rotate_with(|s| s.insert("role", "admin")).await?;
    Ok(Redirect::to("/"))
}

async fn logout(handle: SessionHandle) -> Result<Redirect, SessionError> {
    handle.logout().await?;
    Ok(Redirect::to("/"))
}
