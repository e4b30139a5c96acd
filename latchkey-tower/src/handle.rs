//! [`SessionHandle`]: the request's session and the operations that change
//! it.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use latchkey::{Error, Issued, Loaded, NewSession, Session, SessionManager};

use crate::dispatch;
use crate::error::SessionError;
use crate::layer::Shared;

/// What the response must do to the session cookie. At most one
/// `Set-Cookie` for it goes out, so each change replaces the previous one:
/// a newer token replaces a reissue hint, a logout replaces both.
pub(crate) enum CookieChange {
    /// Leave the client's cookie as it is.
    Keep,
    /// Send this token.
    Set(Issued),
    /// Delete the cookie.
    Clear,
}

struct State {
    session: Option<Session>,
    /// The newest token of `session` this request knows: the cookie's, a
    /// reissued one, or one an operation issued. Reloads use it.
    token: Option<String>,
    change: CookieChange,
    /// Whether the response is produced with a session (one was loaded or
    /// issued): it then gets `Cache-Control: no-store`.
    involved: bool,
}

struct Inner {
    shared: Arc<Shared>,
    state: Mutex<State>,
}

/// The current request's session, and the operations that change it.
///
/// The [`SessionLayer`](crate::SessionLayer) puts one in every request's
/// extensions. In axum, take it as an extractor; in any other tower service,
/// `request.extensions().get::<SessionHandle>()`. Clones share the same
/// session.
///
/// Reading ([`session`](Self::session), [`user`](Self::user)) is free: the
/// session was loaded by the layer. The operations are `async`: each calls
/// the session manager (in place, or on tokio's blocking pool when its
/// store may block) and records what the response must do to the cookie,
/// which the layer then does:
///
/// | operation | store | cookie |
/// |---|---|---|
/// | [`login`](Self::login) | rotates as a privilege change (no fixation), or creates a session | the new token |
/// | [`change_privilege`](Self::change_privilege) | applies your change, rotates as a privilege change | the new token; the old one is refused from now on |
/// | [`rotate`](Self::rotate) | a routine rotation | the new token; the old one works through the grace window |
/// | [`update`](Self::update) | applies your change, saves (versioned) | unchanged (a new ticket for stateless tickets) |
/// | [`logout`](Self::logout) | ends the session | cleared |
///
/// # Version conflicts
///
/// Saves are versioned: when another request saved the same session since
/// this one loaded it, the store answers [`Error::Conflict`] rather than
/// lose that write. `update`, `change_privilege`, `rotate` and `login` then
/// reload the session, apply the closure again to the fresh copy and retry,
/// up to [`SessionLayer::with_max_attempts`](crate::SessionLayer::with_max_attempts)
/// attempts in all (8 by default), before answering 409. Between attempts
/// they wait a short random time (up to 2 ms, doubling to at most 32 ms):
/// requests that conflicted were released together, and retried at once
/// they meet again. Measured on Redis, immediate retries left 60% of 64
/// concurrent requests on one session failing. Each conflict means another
/// request's write landed, so `n` concurrent changes to one session all
/// land when the attempts are at least `n`.
///
/// Closures are `FnMut` because they may run more than once: keep them to
/// changing the session they are given. They run on the calling task (only
/// the manager's call may go to the blocking pool), so they must not block. An `Err` from the closure stops the
/// operation, saves nothing and is returned as is; to abort with an error
/// of your own, return it inside `Ok` (`Ok(Err(mine))`).
///
/// Await the operations of one request one at a time: each reads the
/// handle's copy when it starts and stores its result when it ends.
///
/// `Debug` shows the session's fingerprint and data, never a token.
///
/// # Example
/// ```
/// use axum::{Router, routing::{get, post}};
/// use latchkey_tower::{SessionError, SessionHandle};
///
/// async fn cart(handle: SessionHandle) -> String {
///     match handle.session() {
///         Some(s) => format!("{} items", s.get::<Vec<String>>("cart").ok().flatten().unwrap_or_default().len()),
///         None => "empty cart".into(),
///     }
/// }
///
/// async fn add(handle: SessionHandle) -> Result<&'static str, SessionError> {
///     // 401 `no_session` if the visitor has no session yet.
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
/// let app: Router = Router::new().route("/cart", get(cart)).route("/cart/add", post(add));
/// ```
#[derive(Clone)]
pub struct SessionHandle(Arc<Inner>);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every write replaces a field whole, so a panic elsewhere cannot
    // leave the state half-written.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SessionHandle {
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

    /// Whether a session was involved, and the cookie change to send; the
    /// handle forgets the change.
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
    /// use latchkey_tower::SessionHandle;
    /// async fn home(handle: SessionHandle) -> String {
    ///     match handle.session() {
    ///         Some(s) => format!("session {}", s.fingerprint()),
    ///         None => "no session".into(),
    ///     }
    /// }
    /// let app: axum::Router = axum::Router::new().route("/", axum::routing::get(home));
    /// ```
    pub fn session(&self) -> Option<Session> {
        lock(&self.0.state).session.clone()
    }

    /// The logged-in user, if any.
    ///
    /// # Example
    /// ```
    /// use latchkey_tower::SessionHandle;
    /// async fn hello(handle: SessionHandle) -> String {
    ///     format!("hello, {}", handle.user().unwrap_or_else(|| "stranger".into()))
    /// }
    /// let app: axum::Router = axum::Router::new().route("/", axum::routing::get(hello));
    /// ```
    pub fn user(&self) -> Option<String> {
        lock(&self.0.state)
            .session
            .as_ref()
            .and_then(|s| s.user().map(str::to_owned))
    }

    /// Logs `user` in, after the application has checked their
    /// credentials. A current session is rotated as a change of privilege
    /// (the token sent before the login is refused from then on, so a
    /// planted cookie gains its planter nothing: no session fixation), and
    /// keeps its data unless it belonged to another user. Without a session,
    /// one is created. Either way the response carries the new cookie.
    ///
    /// Returns the logged-in session.
    ///
    /// # Errors
    /// As for [`SessionManager::login`] and [`SessionManager::create`]:
    /// [`Error::UserLimit`] (403), [`Error::LabelTooLong`] (400), backend
    /// failures (503); [`Error::Conflict`] (409) when the retries ran out.
    ///
    /// # Example
    /// ```
    /// use axum::{Router, extract::Path, routing::post};
    /// use latchkey_tower::{SessionError, SessionHandle};
    ///
    /// async fn login(handle: SessionHandle, Path(user): Path<String>) -> Result<String, SessionError> {
    ///     // ... check the password first ...
    ///     let session = handle.login(&user).await?;
    ///     Ok(format!("welcome, {}", session.user().unwrap_or_default()))
    /// }
    /// let app: Router = Router::new().route("/login/{user}", post(login));
    /// ```
    pub async fn login(&self, user: &str) -> Result<Session, SessionError> {
        let user = user.to_owned();
        if self.session().is_none() {
            let created = dispatch::call(self.manager(), move |m| {
                let issued = m.create(NewSession::new().with_user(user))?;
                let Loaded { session, .. } = m.load(issued.token())?;
                Ok((session, issued))
            })
            .await;
            let (session, issued) = created.map_err(|e| self.fail(e))?;
            self.commit(&session, Some(issued));
            return Ok(session);
        }
        let ((), session) = self
            .retrying(|_| Ok(()), move |m, s| m.login(s, &user).map(Some))
            .await?;
        Ok(session)
    }

    /// Applies `change` to the session and rotates it as a change of
    /// privilege (a role granted or given up, a password changed): the
    /// response carries the new cookie, and the old token never reaches the
    /// changed session, so a copy of the old cookie gains nothing. Returns
    /// what `change` returned.
    ///
    /// # Errors
    /// [`SessionError::NoSession`] without a session; `change`'s error; as
    /// for [`SessionManager::change_privilege`], with
    /// [`Error::Conflict`] (409) when the retries ran out.
    ///
    /// # Example
    /// ```
    /// use axum::{Router, routing::post};
    /// use latchkey_tower::{Authenticated, SessionError};
    ///
    /// async fn make_admin(auth: Authenticated) -> Result<&'static str, SessionError> {
    ///     // ... check that auth.user() may become an administrator ...
    ///     auth.handle().change_privilege(|s| s.insert("role", "admin")).await?;
    ///     Ok("you are an administrator now")
    /// }
    /// let app: Router = Router::new().route("/admin", post(make_admin));
    /// ```
    pub async fn change_privilege<F, R>(&self, change: F) -> Result<R, SessionError>
    where
        F: FnMut(&mut Session) -> Result<R, Error> + Send,
        R: Send,
    {
        let (r, _) = self
            .retrying(change, |m, s| m.change_privilege(s).map(Some))
            .await?;
        Ok(r)
    }

    /// Gives the session a new token, with no change of privilege (a
    /// routine rotation, e.g. on a timer). The response carries the new
    /// cookie; requests already in flight with the old one keep working
    /// through the policy's grace window and are handed the new token.
    ///
    /// # Errors
    /// [`SessionError::NoSession`] without a session; as for
    /// [`SessionManager::rotate`].
    ///
    /// # Example
    /// ```
    /// use axum::{Router, routing::post};
    /// use latchkey_tower::{SessionError, SessionHandle};
    ///
    /// async fn refresh(handle: SessionHandle) -> Result<&'static str, SessionError> {
    ///     handle.rotate().await?;
    ///     Ok("new cookie sent")
    /// }
    /// let app: Router = Router::new().route("/refresh", post(refresh));
    /// ```
    pub async fn rotate(&self) -> Result<(), SessionError> {
        self.retrying(|_| Ok(()), |m, s| m.rotate(s).map(Some))
            .await?;
        Ok(())
    }

    /// Applies `change` to the session and saves it. On a version conflict
    /// (another request saved the session meanwhile) the session is
    /// reloaded and `change` applied again, so no update is lost. Returns
    /// what `change` returned.
    ///
    /// # Errors
    /// [`SessionError::NoSession`] without a session; `change`'s error
    /// (nothing saved); as for [`SessionManager::save`], with
    /// [`Error::Conflict`] (409) when the retries ran out.
    ///
    /// # Example
    /// ```
    /// use axum::{Router, routing::post};
    /// use latchkey_tower::{SessionError, SessionHandle};
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
    /// let app: Router = Router::new().route("/visit", post(visit));
    /// ```
    pub async fn update<F, R>(&self, change: F) -> Result<R, SessionError>
    where
        F: FnMut(&mut Session) -> Result<R, Error> + Send,
        R: Send,
    {
        let (r, _) = self.retrying(change, |m, s| m.save(s)).await?;
        Ok(r)
    }

    /// Ends the session and clears the cookie. Without a session, or with
    /// one that has already ended, it only clears the cookie.
    ///
    /// With stateless tickets and no revocation store
    /// (`TicketManager::with_revocation`), the manager cannot end a ticket
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
    /// use axum::{Router, routing::post};
    /// use latchkey_tower::{SessionError, SessionHandle};
    ///
    /// async fn logout(handle: SessionHandle) -> Result<&'static str, SessionError> {
    ///     handle.logout().await?;
    ///     Ok("goodbye")
    /// }
    /// let app: Router = Router::new().route("/logout", post(logout));
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

    /// Applies `change` and runs `op` on the handle's copy of the session,
    /// reloading and re-applying on a version conflict (see the type docs).
    async fn retrying<R, F, Op>(&self, mut change: F, op: Op) -> Result<(R, Session), SessionError>
    where
        F: FnMut(&mut Session) -> Result<R, Error> + Send,
        R: Send,
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
                    self.commit(&session, issued);
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
        let mut state = lock(&self.0.state);
        state.session = Some(session.clone());
        if let Some(issued) = reissue {
            // Another request rotated the session meanwhile: this client
            // gets the successor's token too.
            state.token = Some(issued.token().to_owned());
            state.change = CookieChange::Set(issued);
        }
        Ok(session)
    }

    /// Records an operation's result: the session, and a new token if one
    /// was issued.
    fn commit(&self, session: &Session, issued: Option<Issued>) {
        let mut state = lock(&self.0.state);
        state.session = Some(session.clone());
        state.involved = true;
        if let Some(issued) = issued {
            state.token = Some(issued.token().to_owned());
            state.change = CookieChange::Set(issued);
        }
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
        // `Session`'s own Debug prints its fingerprint, never its token;
        // the token kept here is left out.
        f.debug_struct("SessionHandle")
            .field("session", &state.session)
            .field("cookie", &change)
            .finish_non_exhaustive()
    }
}
