//! [`SessionHandle`]: the request's session and the operations that change
//! it.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

#[cfg(doc)]
use latchkey::SessionManager;
use latchkey::{CsrfError, Error, Flash, Issued, Loaded, NewSession, RememberError, Session};
use latchkey_adapter::{Manager, Place, Write, backoff};

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

/// How the layer found the request: what the handle starts from.
pub(crate) struct Start {
    /// The session the cookie resolved to, with the newest token for it.
    pub(crate) loaded: Option<(Session, String)>,
    /// The session cookie's change so far (a reissue hint, a clear).
    pub(crate) change: CookieChange,
    /// See [`State::protect_cookie`].
    pub(crate) protect_cookie: bool,
    /// The remember-me cookie's token, if the layer has remember-me and
    /// the request carries one.
    pub(crate) remember_token: Option<String>,
    /// The remember-me cookie's `Set-Cookie` so far (a clear, for a
    /// cookie that cannot be used).
    pub(crate) remember_cookie: Option<String>,
}

/// What the layer writes into the response.
pub(crate) struct Outcome {
    /// A session took part: `Cache-Control: no-store`.
    pub(crate) involved: bool,
    /// The session cookie.
    pub(crate) change: CookieChange,
    /// The remember-me cookie's `Set-Cookie`, rendered; `None`: leave it.
    pub(crate) remember_cookie: Option<String>,
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
    /// The client holds a session cookie this request could not use and
    /// must not overwrite: one superseded moments ago (the response that
    /// superseded it carries the successor) or one not read (a `Cookie`
    /// header crowded past the bytes scanned). No session is created
    /// implicitly over it (`flash`, `csrf_token`), and remember-me does
    /// not log in: either would set a cookie that logs the user out.
    protect_cookie: bool,
    /// The newest remember-me token this request knows: the cookie's, a
    /// replacement, or one issued now. Secret: never printed.
    remember_token: Option<String>,
    /// The remember-me cookie's `Set-Cookie` to send (a token, or the
    /// clearing cookie), rendered; `None` leaves the client's as it is.
    /// Secret: never printed.
    remember_cookie: Option<String>,
}

struct Inner {
    shared: Arc<Shared>,
    state: Mutex<State>,
    /// The loaded session counted among the layer's writers' sessions, so
    /// a write of this request starts from another's newer save (see
    /// [`Writers`](latchkey_adapter::Writers)).
    watch: Option<Place>,
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
/// | [`logout`](Self::logout) | ends the session; forgets the remember-me token | both cleared |
/// | [`csrf_token`](Self::csrf_token) | creates the CSRF secret the first time, saves | unchanged (see [Implicit sessions](#implicit-sessions)) |
/// | [`verify_csrf`](Self::verify_csrf) | nothing (reads the secret) | unchanged |
/// | [`flash`](Self::flash), [`take_flashes`](Self::take_flashes) | adds or removes flash messages, saves | unchanged (see [Implicit sessions](#implicit-sessions)) |
/// | [`require_recent_auth`](Self::require_recent_auth) | nothing (reads the authentication time) | unchanged |
/// | [`reauthenticate`](Self::reauthenticate) | stamps the authentication time, rotates as a privilege change | the new token; the old one is refused from now on |
/// | [`remember`](Self::remember) | issues a remember-me token for the user | the remember-me cookie set |
/// | [`forget_remembered`](Self::forget_remembered) | forgets the remember-me token | the remember-me cookie cleared |
///
/// Saves of what `csrf_token`, `flash` and `take_flashes` change go through
/// the same versioned path as [`update`](Self::update), reloads and retries
/// included. How the four features fit together (when to use CSRF tokens,
/// the step-up flow, remember-me) is in latchkey's guide for framework
/// authors, [`latchkey::framework`].
///
/// # Implicit sessions
///
/// A flash message or a CSRF secret lives in a session. When the request
/// has none, [`flash`](Self::flash) and [`csrf_token`](Self::csrf_token)
/// create an anonymous one (no user) and the response sets its cookie, so
/// a message set before a redirect survives it, and a form rendered for a
/// visitor verifies when it comes back. Each such visitor costs a session
/// in the store: call `csrf_token` on pages with forms, not on every page.
/// They refuse with [`SessionError::NoSession`] instead when the client
/// holds a session cookie the request could not use but must keep (one a
/// login in another tab superseded moments ago, or a `Cookie` header too
/// crowded to read): a new cookie would log the user out.
/// [`take_flashes`](Self::take_flashes) and
/// [`verify_csrf`](Self::verify_csrf) never create one.
///
/// # Version conflicts
///
/// Saves are versioned: when another request saved the same session since
/// this one loaded it, the store answers [`Error::Conflict`] rather than
/// lose that write.
///
/// Within one layer (one process), writes to one session take turns
/// instead: `update`, `change_privilege`, `rotate`, `login`, `flash`,
/// `csrf_token`, `take_flashes` and `reauthenticate` wait until the
/// session's previous writer in this layer is done, and start from the copy
/// it saved when that is newer than the one the request loaded. So
/// requests of one server on one cookie neither lose an update nor
/// conflict; reads never wait.
///
/// Writers in other processes (or other layers) still meet as conflicts.
/// `update`, `change_privilege`, `rotate` and `login` then
/// reload the session, apply the closure again to the fresh copy and retry,
/// up to [`SessionLayer::with_max_attempts`](crate::SessionLayer::with_max_attempts)
/// attempts in all (12 by default), before answering 409. Between attempts
/// they wait a short random time (up to 1 ms, doubling to at most 32 ms):
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

/// The change of an operation that changes nothing but what the manager
/// call does.
fn unchanged(_: &mut Session) -> Result<(), Error> {
    Ok(())
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every write replaces a field whole, so a panic elsewhere cannot
    // leave the state half-written.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SessionHandle {
    pub(crate) fn new(shared: Arc<Shared>, start: Start) -> SessionHandle {
        let involved = start.loaded.is_some();
        let (session, token) = start.loaded.unzip();
        let watch = session
            .as_ref()
            .map(|s| shared.writers.watch(*s.store_key()));
        SessionHandle(Arc::new(Inner {
            watch,
            shared,
            state: Mutex::new(State {
                session,
                token,
                change: start.change,
                involved,
                protect_cookie: start.protect_cookie,
                remember_token: start.remember_token,
                remember_cookie: start.remember_cookie,
            }),
        }))
    }

    /// Whether a session was involved, and the cookie changes to send; the
    /// handle forgets the changes, so each is sent once.
    pub(crate) fn take_outcome(&self) -> Outcome {
        let mut state = lock(&self.0.state);
        Outcome {
            involved: state.involved,
            change: std::mem::replace(&mut state.change, CookieChange::Keep),
            remember_cookie: state.remember_cookie.take(),
        }
    }

    /// Logs the request in with its remember-me cookie when it has no
    /// usable session (latchkey's guide, "Remember-me", step 2). Never when
    /// the session loaded: each use spends the token. `Err` only for a
    /// backend failure, which answers 503 and keeps both cookies.
    pub(crate) async fn resume_remembered(&self) -> Result<(), SessionError> {
        let Some(remember) = self.0.shared.remember.clone() else {
            return Ok(());
        };
        let token = {
            let state = lock(&self.0.state);
            if state.session.is_some() || state.protect_cookie {
                return Ok(());
            }
            match &state.remember_token {
                Some(token) => token.clone(),
                None => return Ok(()),
            }
        };
        let r = Arc::clone(&remember);
        let resumed = self
            .manager()
            .blocking(move |m| {
                let (issued, replacement) = r.log_in(m, &token)?;
                // The token is spent: whatever the load says, both new cookies
                // must reach the client, or its next visit presents a used
                // token (a theft alarm once the grace window has passed).
                let loaded = m.load(issued.token());
                Ok((issued, replacement, loaded))
            })
            .await;
        match resumed {
            Ok((issued, replacement, loaded)) => {
                // A remember-me token always renders (68 cookie octets).
                let cookie = remember.set_cookie(&replacement).ok();
                let mut state = lock(&self.0.state);
                state.remember_token = Some(replacement.token().to_owned());
                state.remember_cookie = cookie;
                if let Ok(Loaded { session, .. }) = loaded {
                    state.session = Some(session);
                    state.involved = true;
                }
                state.token = Some(issued.token().to_owned());
                state.change = CookieChange::Set(issued);
                Ok(())
            }
            // Another tab used the token a moment ago: no login and no
            // alarm. Hand its replacement on (the browser usually has it
            // already) and answer as anonymous; clear nothing.
            Err(Error::RememberMe(RememberError::Superseded { replacement })) => {
                if let Some(t) = replacement
                    && let Ok(cookie) = remember.set_cookie(&t)
                {
                    let mut state = lock(&self.0.state);
                    state.remember_token = Some(t.token().to_owned());
                    state.remember_cookie = Some(cookie);
                }
                Ok(())
            }
            // Refused (unknown, expired, revoked, stolen): anonymous, and
            // the remember-me cookie cleared. A theft has ended every
            // session of the user, so the session cookie goes too.
            Err(Error::RememberMe(e)) => {
                let mut state = lock(&self.0.state);
                state.remember_token = None;
                state.remember_cookie = Some(remember.cookie().clear_cookie());
                if matches!(e, RememberError::Theft { .. }) {
                    state.token = None;
                    state.change = CookieChange::Clear;
                }
                Ok(())
            }
            Err(e) if e.is_backend_failure() => Err(SessionError::Latchkey(e)),
            // The manager refused the session (a per-user limit) or the
            // token kept changing: it was put back and still works. The
            // request runs logged out; both cookies stay.
            Err(_) => Ok(()),
        }
    }

    /// The layer's CSRF header check on a state-changing request:
    /// `value` is the header's, `None` when absent. Requests without a
    /// session pass: there is nothing for a forged request to ride on.
    pub(crate) fn check_csrf_header(&self, value: Option<&[u8]>) -> Result<(), SessionError> {
        let state = lock(&self.0.state);
        let Some(session) = &state.session else {
            return Ok(());
        };
        // Bytes that are not UTF-8 become U+FFFD, which no token holds:
        // refused as malformed, never skipped.
        let token = value.map(String::from_utf8_lossy).unwrap_or_default();
        session.verify_csrf(&token).map_err(SessionError::Csrf)
    }

    fn manager(&self) -> &Manager {
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
            return self.create(NewSession::new().with_user(user)).await;
        }
        let ((), session) = self.retrying(unchanged, Write::Login(user)).await?;
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
        let (r, _) = self.retrying(change, Write::ChangePrivilege).await?;
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
        self.retrying(unchanged, Write::Rotate).await?;
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
        let (r, _) = self.retrying(change, Write::Save).await?;
        Ok(r)
    }

    /// Ends the session and clears the cookie. Without a session, or with
    /// one that has already ended, it only clears the cookie.
    ///
    /// On a layer with [remember-me](crate::SessionLayer::with_remember_me)
    /// it also forgets the request's remember-me token (first: a store
    /// failure then leaves everything as it was) and clears that cookie, so
    /// the next visit is not logged in again. Other devices keep theirs:
    /// "log out everywhere" is `SessionManager::terminate_all` and
    /// `RememberMe::forget_all`.
    ///
    /// With stateless tickets and no revocation store
    /// (`TicketManager::with_revocation`), the manager cannot end a ticket
    /// ([`Error::RevocationNotConfigured`]): logout then clears the cookie
    /// and returns `Ok`, and a copy of the ticket stays valid until its
    /// idle deadline. Configure revocation if that matters.
    ///
    /// # Errors
    /// A backend failure (503): the session was not ended, and the cookies
    /// are kept so the user can try again.
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
        if self.0.shared.remember.is_some() {
            self.forget_remember_token().await?;
        }
        if let Some(session) = self.session() {
            let ended = self.manager().terminate(session).await;
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

    /// A CSRF token for the page this response carries: put it in a hidden
    /// form field (checked with [`verify_csrf`](Self::verify_csrf) in the
    /// handler the form posts to), or in a `<meta>` element for scripts to
    /// send back in the header the layer checks
    /// ([`with_csrf_header`](crate::SessionLayer::with_csrf_header)).
    ///
    /// Each call returns a different string (masked against BREACH) and all
    /// of them verify while the session's secret lasts: until the next
    /// login or [`reauthenticate`](Self::reauthenticate), after which pages
    /// are rendered with fresh tokens. The first call creates the secret
    /// and saves the session (versioned, retried on a conflict); later
    /// calls cost no write. Without a session one is created (see
    /// [Implicit sessions](Self#implicit-sessions)). When tokens are needed
    /// at all: latchkey's guide, [CSRF tokens](latchkey::framework#csrf-tokens).
    ///
    /// # Errors
    /// [`SessionError::NoSession`] when the client's session cookie must be
    /// kept (see above); as for [`update`](Self::update).
    ///
    /// # Example
    /// ```
    /// use axum::{Router, response::Html, routing::get};
    /// use latchkey_tower::{SessionError, SessionHandle};
    ///
    /// async fn form(handle: SessionHandle) -> Result<Html<String>, SessionError> {
    ///     let token = handle.csrf_token().await?;
    ///     Ok(Html(format!(
    ///         r#"<form method="post" action="/email">
    ///              <input type="hidden" name="csrf_token" value="{token}">
    ///              <input name="email"> <button>Save</button>
    ///            </form>"#
    ///     )))
    /// }
    /// let app: Router = Router::new().route("/email", get(form));
    /// ```
    pub async fn csrf_token(&self) -> Result<String, SessionError> {
        self.ensure_session().await?;
        // The secret exists already (every call after the first): no write.
        if let Some(mut copy) = self.session() {
            let token = copy.csrf_token();
            if !copy.is_modified() {
                return Ok(token);
            }
        }
        let (token, _) = self
            .retrying(|s| Ok::<_, Error>(s.csrf_token()), Write::Save)
            .await?;
        Ok(token)
    }

    /// Checks a CSRF token the request carried (a form field; `""` when it
    /// carried none) against the session's secret: call it in every
    /// handler of a state-changing form post, before changing anything.
    /// The session is not changed and nothing is written.
    ///
    /// # Errors
    /// [`SessionError::Csrf`] (403, `csrf_missing`, `csrf_malformed`,
    /// `csrf_no_secret`, `csrf_mismatch`): answer it as it is, which keeps
    /// the cookie (clearing it would let any site log users out). A request
    /// without a session has no secret: `csrf_no_secret` (`csrf_missing`
    /// for an empty token).
    ///
    /// # Example
    /// ```
    /// use axum::{Router, routing::post};
    /// use latchkey_tower::{SessionError, SessionHandle};
    ///
    /// // The handler parses its form itself (here `csrf_token=…&email=…`).
    /// async fn save_email(handle: SessionHandle, body: String) -> Result<&'static str, SessionError> {
    ///     let field = |name: &str| {
    ///         body.split('&')
    ///             .filter_map(|pair| pair.split_once('='))
    ///             .find(|(k, _)| *k == name)
    ///             .map(|(_, v)| v.to_owned())
    ///     };
    ///     handle.verify_csrf(&field("csrf_token").unwrap_or_default())?;
    ///     // ... change the email address ...
    ///     Ok("saved")
    /// }
    /// let app: Router = Router::new().route("/email", post(save_email));
    /// ```
    pub fn verify_csrf(&self, token: &str) -> Result<(), SessionError> {
        match &lock(&self.0.state).session {
            Some(session) => session.verify_csrf(token).map_err(SessionError::Csrf),
            // No session, no secret: refused as latchkey refuses a session
            // that holds none.
            None if token.is_empty() => Err(SessionError::Csrf(CsrfError::Missing)),
            None => Err(SessionError::Csrf(CsrfError::NoSecret)),
        }
    }

    /// Adds a flash message (`kind` is yours: `"notice"`, `"error"`, ...)
    /// for a later page, typically the one the redirect after a form post
    /// leads to, and saves the session. Messages survive rotation and the
    /// login of an anonymous session; a login as another user starts
    /// empty. Without a session one is created (see
    /// [Implicit sessions](Self#implicit-sessions)), so a visitor's message
    /// survives the redirect too. Escape messages when rendering them.
    ///
    /// # Errors
    /// [`SessionError::Flash`] (413) for a message or kind over latchkey's
    /// limits, or too many pending; [`SessionError::NoSession`] when the
    /// client's session cookie must be kept; as for [`update`](Self::update).
    ///
    /// # Example
    /// ```
    /// use axum::{Router, response::Redirect, routing::post};
    /// use latchkey_tower::{SessionError, SessionHandle};
    ///
    /// async fn save(handle: SessionHandle) -> Result<Redirect, SessionError> {
    ///     // ... save the settings ...
    ///     handle.flash("notice", "Settings saved.").await?;
    ///     Ok(Redirect::to("/settings"))
    /// }
    /// let app: Router = Router::new().route("/settings", post(save));
    /// ```
    pub async fn flash(&self, kind: &str, message: &str) -> Result<(), SessionError> {
        self.ensure_session().await?;
        let (kind, message) = (kind.to_owned(), message.to_owned());
        self.retrying(move |s| s.flash(&kind, &message), Write::Save)
            .await?;
        Ok(())
    }

    /// Returns the pending flash messages, oldest first, and removes them
    /// (saving the session), so they show once. With none pending, or no
    /// session, it returns an empty list and writes nothing.
    ///
    /// # Errors
    /// As for [`update`](Self::update).
    ///
    /// # Example
    /// ```
    /// use axum::{Router, routing::get};
    /// use latchkey_tower::{SessionError, SessionHandle};
    ///
    /// async fn settings(handle: SessionHandle) -> Result<String, SessionError> {
    ///     let mut page = String::new();
    ///     for flash in handle.take_flashes().await? {
    ///         // Escape `flash.message()` in a real page.
    ///         page.push_str(&format!("[{}] {}\n", flash.kind(), flash.message()));
    ///     }
    ///     Ok(page + "... the settings form ...")
    /// }
    /// let app: Router = Router::new().route("/settings", get(settings));
    /// ```
    pub async fn take_flashes(&self) -> Result<Vec<Flash>, SessionError> {
        match self.session() {
            Some(s) if !s.peek_flashes().is_empty() => {}
            _ => return Ok(Vec::new()),
        }
        let (shown, _) = self
            .retrying(|s| Ok::<_, Error>(s.take_flashes()), Write::Save)
            .await?;
        Ok(shown)
    }

    /// Checks that the session's user authenticated less than `max_age`
    /// ago: call it in a sensitive action's handler (changing the password
    /// or email address, a payment) before changing anything. Activity
    /// does not count; only a login, a remember-me login's original
    /// password login, or [`reauthenticate`](Self::reauthenticate).
    ///
    /// # Errors
    /// [`Error::ReauthenticationRequired`] (401 `reauthentication_required`;
    /// the cookie is kept): ask for the password again, then call
    /// `reauthenticate` and let the user retry. With `age: None` the session
    /// never authenticated: send it to log in instead. A page matches on the
    /// error and redirects; an API returns it.
    /// [`SessionError::NoSession`] without a session.
    ///
    /// # Example
    /// ```
    /// use std::time::Duration;
    /// use axum::{Router, routing::post};
    /// use latchkey_tower::{Authenticated, SessionError};
    ///
    /// async fn change_email(auth: Authenticated) -> Result<&'static str, SessionError> {
    ///     auth.handle().require_recent_auth(Duration::from_secs(10 * 60)).await?;
    ///     // ... change it ...
    ///     Ok("changed")
    /// }
    /// let app: Router = Router::new().route("/email", post(change_email));
    /// ```
    pub async fn require_recent_auth(&self, max_age: Duration) -> Result<(), SessionError> {
        let session = self.session().ok_or(SessionError::NoSession)?;
        self.manager()
            .require_recent_auth(session, max_age)
            .await
            .map_err(|e| self.fail(e))
    }

    /// Records that the user has just proved who they are again, **after
    /// the handler verified** the password (and second factor) of
    /// [`user`](Self::user), never of a name from the form. The session is
    /// rotated as a privilege change: the response carries the new cookie,
    /// and the old token is refused from now on. CSRF tokens rendered
    /// before it no longer verify: redirect back to the action's page.
    ///
    /// # Errors
    /// [`Error::NotAuthenticated`] (401 `not_authenticated`) for an
    /// anonymous session: send it to log in. [`SessionError::NoSession`]
    /// without a session; as for [`change_privilege`](Self::change_privilege).
    ///
    /// # Example
    /// ```
    /// use axum::{Router, response::Redirect, routing::post};
    /// use latchkey_tower::{Authenticated, SessionError};
    ///
    /// async fn confirm_password(auth: Authenticated) -> Result<Redirect, SessionError> {
    ///     // ... check the password typed into the prompt, for auth.user() ...
    ///     auth.handle().reauthenticate().await?;
    ///     Ok(Redirect::to("/settings/email")) // a path on this site only
    /// }
    /// let app: Router = Router::new().route("/confirm-password", post(confirm_password));
    /// ```
    pub async fn reauthenticate(&self) -> Result<(), SessionError> {
        self.retrying(unchanged, Write::Reauthenticate).await?;
        Ok(())
    }

    /// "Keep me signed in": issues a remember-me token for the logged-in
    /// user and sets the remember-me cookie, so that a later visit without
    /// a session is logged in again by the layer. Call it after
    /// [`login`](Self::login), when the user ticked the box. A remember-me
    /// token the request carried is forgotten first (best effort): the
    /// device holds one token at a time.
    ///
    /// # Errors
    /// [`SessionError::RememberMeNotConfigured`] (500) without
    /// [`with_remember_me`](crate::SessionLayer::with_remember_me);
    /// [`SessionError::NotLoggedIn`] (401) without a logged-in session;
    /// backend failures (503).
    ///
    /// # Example
    /// ```
    /// use axum::{Router, extract::Path, routing::post};
    /// use latchkey_tower::{SessionError, SessionHandle};
    ///
    /// async fn login(handle: SessionHandle, Path((user, keep)): Path<(String, bool)>) -> Result<&'static str, SessionError> {
    ///     // ... check the password first ...
    ///     handle.login(&user).await?;
    ///     if keep {
    ///         handle.remember().await?;
    ///     } else {
    ///         handle.forget_remembered().await?;
    ///     }
    ///     Ok("welcome")
    /// }
    /// let app: Router = Router::new().route("/login/{user}/{keep}", post(login));
    /// ```
    pub async fn remember(&self) -> Result<(), SessionError> {
        let remember = self
            .0
            .shared
            .remember
            .clone()
            .ok_or(SessionError::RememberMeNotConfigured)?;
        let user = self.user().ok_or(SessionError::NotLoggedIn)?;
        let previous = lock(&self.0.state).remember_token.clone();
        let r = Arc::clone(&remember);
        let issued = self
            .manager()
            .beside(remember.may_block(), move || {
                if let Some(previous) = previous {
                    // Best effort: a token left behind is one nobody holds
                    // once the cookie is replaced, and it expires.
                    let _ = r.forget(&previous);
                }
                r.issue(&user)
            })
            .await
            .map_err(SessionError::Latchkey)?;
        let cookie = remember
            .set_cookie(&issued)
            .map_err(SessionError::SetCookie)?;
        let mut state = lock(&self.0.state);
        state.remember_token = Some(issued.token().to_owned());
        state.remember_cookie = Some(cookie);
        state.involved = true;
        Ok(())
    }

    /// Forgets the request's remember-me token and clears its cookie; the
    /// session stays. For a login without "keep me signed in" on a device
    /// that was remembered, or a "forget this device" button.
    ///
    /// # Errors
    /// [`SessionError::RememberMeNotConfigured`] (500) without
    /// [`with_remember_me`](crate::SessionLayer::with_remember_me); backend
    /// failures (503), with the cookie kept.
    ///
    /// # Example
    /// ```
    /// use axum::{Router, routing::post};
    /// use latchkey_tower::{SessionError, SessionHandle};
    ///
    /// async fn forget_device(handle: SessionHandle) -> Result<&'static str, SessionError> {
    ///     handle.forget_remembered().await?;
    ///     Ok("this device is no longer remembered")
    /// }
    /// let app: Router = Router::new().route("/forget-device", post(forget_device));
    /// ```
    pub async fn forget_remembered(&self) -> Result<(), SessionError> {
        if self.0.shared.remember.is_none() {
            return Err(SessionError::RememberMeNotConfigured);
        }
        self.forget_remember_token().await
    }

    /// Forgets the request's remember-me token, if any, and clears the
    /// remember-me cookie (also when no token could be read: the browser
    /// may hold one all the same).
    async fn forget_remember_token(&self) -> Result<(), SessionError> {
        let Some(remember) = self.0.shared.remember.clone() else {
            return Ok(());
        };
        let token = lock(&self.0.state).remember_token.clone();
        if let Some(token) = token {
            let r = Arc::clone(&remember);
            match self
                .manager()
                .beside(remember.may_block(), move || r.forget(&token))
                .await
            {
                // Forgotten, or nothing live to forget.
                Ok(_) => {}
                // A malformed token: nothing to forget.
                Err(e) if e.is_rejection() => {}
                Err(e) => return Err(SessionError::Latchkey(e)),
            }
        }
        let mut state = lock(&self.0.state);
        state.remember_token = None;
        state.remember_cookie = Some(remember.cookie().clear_cookie());
        Ok(())
    }

    /// Creates a session from `new`; the response carries its cookie.
    async fn create(&self, new: NewSession) -> Result<Session, SessionError> {
        let created = self.manager().create(new).await;
        let (session, issued) = created.map_err(|e| self.fail(e))?;
        self.commit(&session, Some(issued));
        Ok(session)
    }

    /// A session for `flash` and `csrf_token`: the request's, or a new
    /// anonymous one (see [Implicit sessions](Self#implicit-sessions)).
    async fn ensure_session(&self) -> Result<(), SessionError> {
        {
            let state = lock(&self.0.state);
            if state.session.is_some() {
                return Ok(());
            }
            if state.protect_cookie {
                return Err(SessionError::NoSession);
            }
        }
        self.create(NewSession::new()).await.map(drop)
    }

    /// Applies `change` and runs `op` on the handle's copy of the session,
    /// reloading and re-applying on a version conflict (see the type docs).
    async fn retrying<R, E, F>(
        &self,
        mut change: F,
        write: Write,
    ) -> Result<(R, Session), SessionError>
    where
        F: FnMut(&mut Session) -> Result<R, E> + Send,
        SessionError: From<E>,
        R: Send,
    {
        let own = self.session().ok_or(SessionError::NoSession)?;
        // Queue behind this layer's other writers of the session, and start
        // from the copy the last of them saved (see `latchkey_adapter::Writers`).
        let key = *own.store_key();
        let mut turn = self.0.shared.writers.turn(key, self.0.watch.as_ref()).await;
        let mut session = turn.newest(own);
        let attempts = self.0.shared.max_attempts;
        let mut attempt = 1;
        loop {
            let r = change(&mut session)?;
            let ran = self.manager().write(write.clone(), session).await;
            let (back, result) = ran.map_err(|e| self.fail(e))?;
            session = back;
            match result {
                Ok(issued) => {
                    turn.saved(&session);
                    self.commit(&session, issued);
                    return Ok((r, session));
                }
                Err(Error::Conflict) if attempt < attempts => {
                    backoff(attempt).await;
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
        let loaded = self.manager().load(token).await;
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
            if e.clears_cookie() {
                state.change = CookieChange::Clear;
            } else {
                state.change = CookieChange::Keep;
                state.protect_cookie = true;
            }
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
        // the tokens kept here (session and remember-me) are left out.
        f.debug_struct("SessionHandle")
            .field("session", &state.session)
            .field("cookie", &change)
            .field("remembered", &state.remember_token.is_some())
            .finish_non_exhaustive()
    }
}
