//! [`SessionHandle`] and [`Authenticated`]: the extractors handlers take.

use std::fmt;
use std::future::{Ready, ready};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage as _, HttpRequest};
use latchkey::{Error, Issued, Loaded, NewSession, Session, SessionManager};

use crate::dispatch;
use crate::error::SessionError;
use crate::middleware::Shared;

/// What the response must do to the session cookie. A new token replaces a
/// clearing cookie and the other way round, so a response never carries
/// both, and the newest token always wins.
pub(crate) enum CookieChange {
    /// Leave the client's cookie as it is.
    Keep,
    /// Send this rendered `Set-Cookie` value (it holds a token: never
    /// printed).
    Set(String),
    /// Send the clearing cookie.
    Clear,
}

/// The handle's view of the request's session.
struct State {
    /// The session as this request last saw it.
    session: Option<Session>,
    /// The newest token this request knows for it: what a reload after a
    /// conflict presents. Secret: never printed.
    token: Option<String>,
    /// The cookie to send.
    change: CookieChange,
    /// Whether a session took part in the request (loaded, or created by
    /// an operation): the response is then never cached.
    involved: bool,
}

struct Inner {
    shared: Arc<Shared>,
    state: Mutex<State>,
}

/// The current request's session, and the operations that change it.
///
/// An extractor: take it as a handler argument on any route behind the
/// [`SessionMiddleware`](crate::SessionMiddleware) (without the middleware
/// it fails with [`SessionError::MiddlewareMissing`], a 500). It holds the
/// session the middleware loaded, or none (no cookie, or a refused one:
/// the request runs logged out). Clones share one state.
///
/// The operations are `async`: each runs the manager in place or on the
/// blocking pool ([`SessionManager::may_block`]) and records the cookie the
/// middleware then sends. An operation that issues a token (login,
/// rotation, a ticket's save) sets the new cookie; [`logout`](Self::logout)
/// clears it; an operation that finds the session ended clears it too
/// (unless [`Error::clears_cookie`] says not to). Changes made after the
/// response has left (from a spawned task) reach the store, not the
/// client.
///
/// Operations that write ([`update`](Self::update),
/// [`change_privilege`](Self::change_privilege),
/// [`rotate`](Self::rotate), [`login`](Self::login)) are versioned: when
/// another request saved the session in between, the session is reloaded
/// and the closure applied again, a few times with a short random wait
/// (see [`SessionMiddleware::with_max_attempts`](crate::SessionMiddleware::with_max_attempts)),
/// so concurrent requests lose no update; only then is it
/// [`Error::Conflict`] (409). Closures may therefore run more than once.
///
/// # Example
/// ```
/// use actix_web::{App, web};
/// use latchkey_actix::{SessionError, SessionHandle};
///
/// async fn cart(handle: SessionHandle) -> String {
///     match handle.session() {
///         Some(s) => {
///             let items = s.get::<Vec<String>>("cart").ok().flatten().unwrap_or_default();
///             format!("{} items", items.len())
///         }
///         None => "empty cart".into(),
///     }
/// }
///
/// async fn add(handle: SessionHandle) -> Result<&'static str, SessionError> {
///     handle
///         .update(|s| {
///             let mut cart = s.get::<Vec<String>>("cart")?.unwrap_or_default();
///             cart.push("book".into());
///             s.insert("cart", &cart)
///         })
///         .await?;
///     Ok("added")
/// }
///
/// let app = App::new()
///     .route("/cart", web::get().to(cart))
///     .route("/cart/add", web::post().to(add));
/// ```
#[derive(Clone)]
pub struct SessionHandle(Arc<Inner>);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every write replaces a field whole, so a panic elsewhere cannot leave
    // the state half-written.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SessionHandle {
    /// A handle for a request whose cookie resolved to `loaded` (with the
    /// token that found it), or to nothing.
    pub(crate) fn new(
        shared: Arc<Shared>,
        loaded: Option<(Session, String)>,
        change: CookieChange,
    ) -> SessionHandle {
        let involved = loaded.is_some();
        let (session, token) = loaded.unzip();
        SessionHandle(Arc::new(Inner {
            shared,
            state: Mutex::new(State {
                session,
                token,
                change,
                involved,
            }),
        }))
    }

    /// Whether a session took part, and the cookie change to send; the
    /// handle forgets the change, so it is sent once.
    pub(crate) fn take_outcome(&self) -> (bool, CookieChange) {
        let mut state = lock(&self.0.state);
        let change = std::mem::replace(&mut state.change, CookieChange::Keep);
        (state.involved, change)
    }

    fn manager(&self) -> &Arc<dyn SessionManager> {
        &self.0.shared.manager
    }

    /// A copy of the session, if the request has one (anonymous sessions
    /// included). It reflects every operation of this request so far.
    ///
    /// # Example
    /// ```
    /// use actix_web::{App, web};
    /// use latchkey_actix::SessionHandle;
    ///
    /// async fn home(handle: SessionHandle) -> String {
    ///     match handle.session() {
    ///         Some(s) => format!("session {}", s.fingerprint()),
    ///         None => "no session".into(),
    ///     }
    /// }
    /// let app = App::new().route("/", web::get().to(home));
    /// ```
    pub fn session(&self) -> Option<Session> {
        lock(&self.0.state).session.clone()
    }

    /// The logged-in user, if any.
    ///
    /// # Example
    /// ```
    /// use actix_web::{App, web};
    /// use latchkey_actix::SessionHandle;
    ///
    /// async fn hello(handle: SessionHandle) -> String {
    ///     format!("hello, {}", handle.user().unwrap_or_else(|| "stranger".into()))
    /// }
    /// let app = App::new().route("/", web::get().to(hello));
    /// ```
    pub fn user(&self) -> Option<String> {
        lock(&self.0.state)
            .session
            .as_ref()
            .and_then(|s| s.user().map(str::to_owned))
    }

    /// Logs `user` in, after the application has checked their
    /// credentials. A current session is rotated as a change of privilege:
    /// the token sent before the login is refused from then on, so a
    /// planted cookie gains its planter nothing (no session fixation); it
    /// keeps its data unless it belonged to another user. Without a
    /// session, or when it ended since the request began, one is created.
    /// Either way the response carries the new cookie.
    ///
    /// Returns the logged-in session.
    ///
    /// # Errors
    /// As for [`SessionManager::login`] and [`SessionManager::create`]:
    /// [`Error::UserLimit`] (403), [`Error::LabelTooLong`] (400), backend
    /// failures (503); [`Error::Conflict`] (409) when the retries ran out;
    /// [`SessionError::SetCookie`] if the new token does not fit its cookie.
    ///
    /// # Example
    /// ```
    /// use actix_web::{App, web};
    /// use latchkey_actix::{SessionError, SessionHandle};
    ///
    /// async fn login(handle: SessionHandle, user: web::Path<String>) -> Result<String, SessionError> {
    ///     // ... check the password first ...
    ///     let session = handle.login(&user).await?;
    ///     Ok(format!("welcome, {}", session.user().unwrap_or_default()))
    /// }
    /// let app = App::new().route("/login/{user}", web::post().to(login));
    /// ```
    pub async fn login(&self, user: &str) -> Result<Session, SessionError> {
        if self.session().is_some() {
            let user = user.to_owned();
            let rotated = self
                .retrying(|_| Ok(()), move |m, s| m.login(s, &user).map(Some))
                .await;
            match rotated {
                Ok(((), session)) => return Ok(session),
                // The session ended since the request loaded it (expired,
                // ended elsewhere, superseded): the credentials were still
                // good, so the user gets a fresh session instead of a 401.
                Err(SessionError::Latchkey(e)) if e.is_rejection() => {}
                Err(e) => return Err(e),
            }
        }
        let user = user.to_owned();
        let created = dispatch::call(self.manager(), move |m| {
            let issued = m.create(NewSession::new().with_user(user))?;
            let Loaded { session, .. } = m.load(issued.token())?;
            Ok((session, issued))
        })
        .await;
        let (session, issued) = created.map_err(|e| self.fail(e))?;
        self.commit(&session, Some(issued))?;
        Ok(session)
    }

    /// Applies `change` to the session and rotates it as a change of
    /// privilege (a role granted or given up, a password changed): the
    /// response carries the new cookie, and the old token never reaches the
    /// changed session, so a copy of the old cookie gains nothing. Returns
    /// what `change` returned.
    ///
    /// # Errors
    /// [`SessionError::NoSession`] without a session; `change`'s error
    /// (nothing written); as for [`SessionManager::change_privilege`], with
    /// [`Error::Conflict`] (409) when the retries ran out.
    ///
    /// # Example
    /// ```
    /// use actix_web::{App, web};
    /// use latchkey_actix::{Authenticated, SessionError};
    ///
    /// async fn make_admin(auth: Authenticated) -> Result<&'static str, SessionError> {
    ///     // ... check that auth.user() may become an administrator ...
    ///     auth.handle().change_privilege(|s| s.insert("role", "admin")).await?;
    ///     Ok("you are an administrator now")
    /// }
    /// let app = App::new().route("/admin", web::post().to(make_admin));
    /// ```
    pub async fn change_privilege<F, R>(&self, change: F) -> Result<R, SessionError>
    where
        F: FnMut(&mut Session) -> Result<R, Error>,
    {
        let (r, _) = self
            .retrying(change, |m, s| m.change_privilege(s).map(Some))
            .await?;
        Ok(r)
    }

    /// Gives the session a new token with no change of privilege (a
    /// routine rotation, e.g. on a timer). The response carries the new
    /// cookie; requests already in flight with the old one keep working
    /// through the policy's grace window, and are handed the new token.
    ///
    /// # Errors
    /// [`SessionError::NoSession`] without a session; as for
    /// [`SessionManager::rotate`].
    ///
    /// # Example
    /// ```
    /// use actix_web::{App, web};
    /// use latchkey_actix::{SessionError, SessionHandle};
    ///
    /// async fn refresh(handle: SessionHandle) -> Result<&'static str, SessionError> {
    ///     handle.rotate().await?;
    ///     Ok("new cookie sent")
    /// }
    /// let app = App::new().route("/refresh", web::post().to(refresh));
    /// ```
    pub async fn rotate(&self) -> Result<(), SessionError> {
        self.retrying(|_| Ok(()), |m, s| m.rotate(s).map(Some))
            .await?;
        Ok(())
    }

    /// Applies `change` to the session and saves it. On a version conflict
    /// (another request saved the session meanwhile) the session is
    /// reloaded and `change` applied again, so no update is lost. Returns
    /// what `change` returned. With stateless tickets the data travels in
    /// the cookie, so the response carries a new one.
    ///
    /// # Errors
    /// [`SessionError::NoSession`] without a session; `change`'s error
    /// (nothing saved); as for [`SessionManager::save`], with
    /// [`Error::Conflict`] (409) when the retries ran out.
    ///
    /// # Example
    /// ```
    /// use actix_web::{App, web};
    /// use latchkey_actix::{SessionError, SessionHandle};
    ///
    /// async fn visit(handle: SessionHandle) -> Result<String, SessionError> {
    ///     let visits = handle
    ///         .update(|s| {
    ///             let n = s.get::<u64>("visits")?.unwrap_or(0) + 1;
    ///             s.insert("visits", &n)?;
    ///             Ok(n)
    ///         })
    ///         .await?;
    ///     Ok(format!("visit number {visits}"))
    /// }
    /// let app = App::new().route("/visit", web::post().to(visit));
    /// ```
    pub async fn update<F, R>(&self, change: F) -> Result<R, SessionError>
    where
        F: FnMut(&mut Session) -> Result<R, Error>,
    {
        let (r, _) = self.retrying(change, |m, s| m.save(s)).await?;
        Ok(r)
    }

    /// Ends the session and clears the cookie. Without a session, or with
    /// one that has already ended, it only clears the cookie.
    ///
    /// With stateless tickets and no revocation store
    /// (`TicketManager::with_revocation`) the manager cannot end a ticket
    /// ([`Error::RevocationNotConfigured`]): logout then clears the cookie
    /// and returns `Ok`, and a copy of the ticket stays valid until its
    /// idle deadline. Configure revocation if that matters.
    ///
    /// # Errors
    /// A backend failure (503): the session was not ended, and the cookie
    /// is kept so the user can try again.
    ///
    /// # Example
    /// ```
    /// use actix_web::{App, web};
    /// use latchkey_actix::{SessionError, SessionHandle};
    ///
    /// async fn logout(handle: SessionHandle) -> Result<&'static str, SessionError> {
    ///     handle.logout().await?;
    ///     Ok("goodbye")
    /// }
    /// let app = App::new().route("/logout", web::post().to(logout));
    /// ```
    pub async fn logout(&self) -> Result<(), SessionError> {
        if let Some(session) = self.session() {
            let ended = dispatch::call(self.manager(), move |m| m.terminate(&session)).await;
            match ended {
                Ok(()) => {}
                // Ended already (elsewhere, or expired): the goal is reached.
                Err(e) if e.is_rejection() => {}
                // A ticket without revocation state: the cookie is all
                // there is to end (documented above).
                Err(Error::RevocationNotConfigured) => {}
                Err(e) => return Err(SessionError::Latchkey(e)),
            }
        }
        let mut state = lock(&self.0.state);
        state.session = None;
        state.token = None;
        state.change = CookieChange::Clear;
        Ok(())
    }

    /// Applies `change` and runs `op` on a copy of the session, reloading
    /// and re-applying after a version conflict (see the type docs). The
    /// closure runs here, on the request's thread; only `op` (the manager
    /// call) may go to the blocking pool.
    async fn retrying<R, F, Op>(&self, mut change: F, op: Op) -> Result<(R, Session), SessionError>
    where
        F: FnMut(&mut Session) -> Result<R, Error>,
        Op: Fn(&dyn SessionManager, &mut Session) -> Result<Option<Issued>, Error>
            + Clone
            + Send
            + 'static,
    {
        let mut session = self.session().ok_or(SessionError::NoSession)?;
        let attempts = self.0.shared.max_attempts;
        let mut attempt = 1;
        loop {
            let r = change(&mut session)?;
            let op = op.clone();
            let ran = dispatch::call(self.manager(), move |m| {
                let result = op(m, &mut session);
                Ok((session, result))
            })
            .await;
            let (back, result) = ran.map_err(|e| self.fail(e))?;
            session = back;
            match result {
                Ok(issued) => {
                    self.commit(&session, issued)?;
                    return Ok((r, session));
                }
                Err(Error::Conflict) if attempt < attempts => {
                    dispatch::backoff(attempt).await;
                    attempt += 1;
                    session = self.reload().await?;
                }
                Err(e) => return Err(self.fail(e)),
            }
        }
    }

    /// Loads the session again by the newest token this request knows.
    async fn reload(&self) -> Result<Session, SessionError> {
        let token = lock(&self.0.state)
            .token
            .clone()
            .ok_or(SessionError::NoSession)?;
        let loaded = dispatch::call(self.manager(), move |m| m.load(&token)).await;
        let Loaded {
            session, reissue, ..
        } = loaded.map_err(|e| self.fail(e))?;
        let rendered = reissue.map(|i| {
            let cookie = self.0.shared.cookies.set_cookie(&i);
            (i, cookie)
        });
        let mut state = lock(&self.0.state);
        state.session = Some(session.clone());
        // Another request rotated the session meanwhile: this client gets
        // the successor's token too.
        if let Some((issued, Ok(cookie))) = rendered {
            state.token = Some(issued.token().to_owned());
            state.change = CookieChange::Set(cookie);
        }
        Ok(session)
    }

    /// Records an operation's result: the session, and the cookie for a
    /// new token if one was issued.
    fn commit(&self, session: &Session, issued: Option<Issued>) -> Result<(), SessionError> {
        let cookie = match &issued {
            Some(i) => Some(
                self.0
                    .shared
                    .cookies
                    .set_cookie(i)
                    .map_err(SessionError::SetCookie)?,
            ),
            None => None,
        };
        let mut state = lock(&self.0.state);
        state.session = Some(session.clone());
        state.involved = true;
        if let (Some(issued), Some(cookie)) = (issued, cookie) {
            state.token = Some(issued.token().to_owned());
            state.change = CookieChange::Set(cookie);
        }
        Ok(())
    }

    /// Records a failed operation. A rejection means the session ended
    /// meanwhile: the request carries on without it, and the cookie is
    /// cleared unless the token was superseded by a privilege change. Then
    /// the response that made the change carries the successor's cookie,
    /// and neither a clearing cookie nor a token of ours may overwrite it.
    fn fail(&self, e: Error) -> SessionError {
        if e.is_rejection() {
            let mut state = lock(&self.0.state);
            state.session = None;
            state.token = None;
            state.change = if e.clears_cookie() {
                CookieChange::Clear
            } else {
                CookieChange::Keep
            };
        }
        SessionError::Latchkey(e)
    }
}

impl fmt::Debug for SessionHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = lock(&self.0.state);
        let change = match &state.change {
            CookieChange::Keep => "keep",
            CookieChange::Set(_) => "set",
            CookieChange::Clear => "clear",
        };
        // `Session`'s own Debug shows its fingerprint, never its token; the
        // token and the rendered cookie kept here are left out.
        f.debug_struct("SessionHandle")
            .field("session", &state.session)
            .field("cookie", &change)
            .finish_non_exhaustive()
    }
}

/// The handle the middleware put in the request's extensions.
fn handle_of(req: &HttpRequest) -> Result<SessionHandle, SessionError> {
    req.extensions()
        .get::<SessionHandle>()
        .cloned()
        .ok_or(SessionError::MiddlewareMissing)
}

impl FromRequest for SessionHandle {
    type Error = SessionError;
    type Future = Ready<Result<SessionHandle, SessionError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(handle_of(req))
    }
}

/// A logged-in session, or 401: the extractor for pages that need a user.
///
/// Extracting it fails with [`SessionError::NotLoggedIn`] (401) when the
/// request has no session or an anonymous one. It carries a copy of the
/// session as it was when extracted, and the [`SessionHandle`] for
/// operations.
///
/// # Example
/// ```
/// use actix_web::{App, web};
/// use latchkey_actix::Authenticated;
///
/// async fn me(auth: Authenticated) -> String {
///     format!("user={} session={}", auth.user(), auth.session().fingerprint())
/// }
/// let app = App::new().route("/me", web::get().to(me));
/// ```
pub struct Authenticated {
    handle: SessionHandle,
    session: Session,
}

impl Authenticated {
    /// The logged-in user.
    ///
    /// # Example
    /// ```
    /// use actix_web::{App, web};
    /// use latchkey_actix::Authenticated;
    /// async fn hello(auth: Authenticated) -> String {
    ///     format!("hello, {}", auth.user())
    /// }
    /// let app = App::new().route("/hello", web::get().to(hello));
    /// ```
    pub fn user(&self) -> &str {
        // Never empty: extraction requires a user.
        self.session.user().unwrap_or_default()
    }

    /// The session, as it was when extracted.
    ///
    /// # Example
    /// ```
    /// use actix_web::{App, web};
    /// use latchkey_actix::Authenticated;
    /// async fn theme(auth: Authenticated) -> String {
    ///     auth.session().get::<String>("theme").ok().flatten().unwrap_or_else(|| "light".into())
    /// }
    /// let app = App::new().route("/theme", web::get().to(theme));
    /// ```
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The request's [`SessionHandle`], for operations (logout, update,
    /// change of privilege).
    ///
    /// # Example
    /// ```
    /// use actix_web::{App, web};
    /// use latchkey_actix::{Authenticated, SessionError};
    /// async fn logout(auth: Authenticated) -> Result<&'static str, SessionError> {
    ///     auth.handle().logout().await?;
    ///     Ok("goodbye")
    /// }
    /// let app = App::new().route("/logout", web::post().to(logout));
    /// ```
    pub fn handle(&self) -> &SessionHandle {
        &self.handle
    }

    /// The session, by value.
    ///
    /// # Example
    /// ```
    /// use actix_web::{App, web};
    /// use latchkey_actix::Authenticated;
    /// async fn device(auth: Authenticated) -> String {
    ///     let session = auth.into_session();
    ///     session.device().unwrap_or("unknown device").to_owned()
    /// }
    /// let app = App::new().route("/device", web::get().to(device));
    /// ```
    pub fn into_session(self) -> Session {
        self.session
    }
}

impl fmt::Debug for Authenticated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticated")
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

impl FromRequest for Authenticated {
    type Error = SessionError;
    type Future = Ready<Result<Authenticated, SessionError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(handle_of(req).and_then(|handle| match handle.session() {
            Some(session) if session.user().is_some() => Ok(Authenticated { handle, session }),
            _ => Err(SessionError::NotLoggedIn),
        }))
    }
}
