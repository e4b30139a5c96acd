//! # For framework authors
//!
//! How to wrap latchkey in middleware for a web framework (axum/tower,
//! actix, rocket, hyper) or any request/response protocol. latchkey has no
//! opinion about HTTP types: it gives you a token from a `Cookie` header, a
//! session for a token, and a `Set-Cookie` value for a new token.
//!
//! For tower/axum and actix-web this is done: the `latchkey-tower` and
//! `latchkey-actix` crates follow this guide (a layer or middleware plus
//! extractors). For other frameworks, they and the repository's demo (a
//! synchronous site on `tiny_http`) are complete examples to read.
//!
//! ## Hold
//!
//! - one `Arc<dyn SessionManager>`: [`StoreManager`](crate::StoreManager)
//!   (server-side sessions) or [`TicketManager`](crate::TicketManager)
//!   (stateless tickets), your users pick;
//! - one [`CookieConfig`](crate::CookieConfig), built at startup so a bad
//!   combination fails there and not on a request.
//!
//! ## Every request
//!
//! 0. For a state-changing method, [`check_origin`](crate::check_origin):
//!    a request another site made the browser send is answered 403 before
//!    anything else (this stops login CSRF, which `SameSite` cannot).
//! 1. [`CookieConfig::find_token_in`](crate::CookieConfig::find_token_in)
//!    over the request's `Cookie` headers. `Ok(None)` or any error: no
//!    session, carry on anonymously (and clear the cookie if
//!    [`CookieError::clears_cookie`](crate::CookieError::clears_cookie)).
//!    Never answer 400 for the `Cookie` header: it carries every
//!    application's cookies for the host, and a crowded one is not the
//!    request's fault.
//! 2. [`SessionManager::load`](crate::SessionManager::load) the token:
//!    in place if [`may_block`](crate::SessionManager::may_block) is false
//!    (a memory store, stateless tickets), else off the executor (e.g.
//!    `tokio::task::spawn_blocking`), and the same for every other call.
//! 3. Hand the [`Session`](crate::Session) to the handler; let it call
//!    `login`, `change_privilege` (a role or password changed), `rotate`,
//!    `require_recent_auth` and `reauthenticate` (see
//!    [Re-authentication](#re-authentication)), `save` or `terminate`.
//! 4. Decide the response's `Set-Cookie` (at most one for the session
//!    cookie) and its `Cache-Control`, as below.
//!
//! ## Which errors mean what
//!
//! | outcome | answer | the cookie |
//! |---|---|---|
//! | [`Error::is_rejection`](crate::Error::is_rejection): `Malformed`, `Unknown`, `IdleExpired`, `AbsoluteExpired`, `Terminated`, `RotatedTokenReused`, a corrupt record, and for tickets `MalformedTicket`, `BadSignature`, `UnknownKey`, `WrongPurpose` | **401** (or treat the request as anonymous / redirect to login) | **clear it**: [`clear_cookie`](crate::CookieConfig::clear_cookie) ([`Error::clears_cookie`](crate::Error::clears_cookie) is `true`) |
//! | `Superseded` (a rejection): the token was retired by a login or privilege change moments ago, while this request was in flight | treat the request as anonymous | **leave it**: the response that made the change sets the new cookie, and a clearing cookie arriving after it would log the user out (`clears_cookie()` is `false`) |
//! | [`CookieError::is_rejection`](crate::CookieError::is_rejection): `Ambiguous` (two different session cookies: cookie tossing), `InvalidValue` | treat the request as anonymous (401 where a session is required) | clear it ([`CookieError::clears_cookie`](crate::CookieError::clears_cookie)) |
//! | [`CookieError::HeaderTooLarge`](crate::CookieError::HeaderTooLarge) (also a rejection): the `Cookie` headers are over the bytes scanned, 64 KiB by default | treat the request as anonymous, **not** 400 | **leave it**: it was not read, and works again once the header shrinks (`clears_cookie()` is `false`) |
//! | [`Error::is_backend_failure`](crate::Error::is_backend_failure): the store is down, unreachable, or failed I/O | **503** (with `Retry-After` if you like) | **keep it**: the session is probably fine, and clearing it would log everyone out during an outage |
//! | [`Error::Conflict`](crate::Error::Conflict) on `save` | reload and apply the change again ([`StoreManager::update`](crate::StoreManager::update) does it), else 409 | keep it |
//! | [`Error::ReauthenticationRequired`](crate::Error::ReauthenticationRequired) (not a rejection): the session is fine, but this action needs a fresher proof of identity | ask for the password again (see [Re-authentication](#re-authentication)); with `age: None` (never authenticated), send to login | **keep it** (`clears_cookie()` is `false`) |
//! | `TooLarge`, `TicketTooLarge`, `UserLimit`, `Data`, `RevocationNotConfigured`, `Unsupported`, `NotAuthenticated` | an application or configuration problem: 4xx/500 as fits | keep it |
//!
//! `TicketTooLarge` comes only from a call that issues a ticket, before
//! anything is written: the session is as it was. Give the
//! [`TicketManager`](crate::TicketManager) the cookie it is carried in
//! ([`with_cookie`](crate::TicketManager::with_cookie)), and every ticket it
//! issues renders with `set_cookie`.
//!
//! `reason()` gives a stable short code (`idle_expired`, `terminated`,
//! ...) for logs and metrics; log sessions by
//! [`Session::fingerprint`](crate::Session::fingerprint), never by token.
//!
//! ## Applying a reissue hint
//!
//! A token changes when a call returns an [`Issued`](crate::Issued):
//! `create`, `login`, `rotate`, a `save` that returns `Some` (tickets carry
//! their data), and a `load` whose [`Loaded::reissue`](crate::Loaded::reissue)
//! is `Some`. The last happens when a request carries a token that a
//! concurrent request rotated moments ago (inside the policy's rotation
//! grace window), or a ticket old enough to be renewed. In every case, send
//! `Set-Cookie:` [`set_cookie(&issued)`](crate::CookieConfig::set_cookie)
//! on this response. If the handler also issued a token (it logged in or
//! rotated), its token wins: send only the newest one, and never a clearing
//! cookie in the same response. A client that keeps presenting a retired
//! token after the grace window is refused with `RotatedTokenReused`, and by
//! default its successor is revoked too (a copy is loose), so applying the
//! hint promptly is what keeps legitimate users logged in.
//!
//! ## Re-authentication
//!
//! Some actions need a recent proof of identity, not just a session:
//! changing the password, email address or second factor, a payment,
//! deleting the account (ASVS 5.0 7.5.1; "sudo mode"). The session knows
//! when its user last authenticated
//! ([`Session::authenticated_at`](crate::Session::authenticated_at): set by
//! `login`, by `create` with a user, and by `reauthenticate`; never by
//! activity), and the manager checks it:
//!
//! 1. In the sensitive action's handler, before changing anything:
//!    [`require_recent_auth(&session, max_age)`](crate::SessionManager::require_recent_auth),
//!    with the action's own `max_age` (5 to 15 minutes is usual).
//! 2. On [`Error::ReauthenticationRequired`](crate::Error::ReauthenticationRequired)
//!    do nothing of the action. A page redirects (303) to a password
//!    prompt, carrying where to come back to (a path on this site only, or
//!    it is an open redirect); an API answers 401 with the reason
//!    `reauthentication_required` for its client to prompt. Keep the
//!    cookie: the session is fine. With `age: None` the session never
//!    authenticated: send it to login instead.
//! 3. The prompt's POST (checked like any state change): verify the
//!    password, and the second factor if login asked for one, of
//!    `session.user()` (never of a user name from the form), counting
//!    failures as failed logins. Only if it checks out,
//!    [`reauthenticate(&mut session)`](crate::SessionManager::reauthenticate):
//!    it records the proof; it does not check one. Send its `Issued` as
//!    the new cookie: the session has a new token, and the old one is
//!    refused as `Superseded` (as after a login; the cookie is not
//!    cleared). `NotAuthenticated` means the session has no user (send it
//!    to login); a rejection or `Conflict` means as in the table above.
//! 4. Retry: redirect back to the action's page and let the user submit
//!    again. Render the form afresh rather than replaying the first POST:
//!    a CSRF token rendered before the re-authentication is bound to the
//!    old authentication time and no longer verifies. The check now
//!    passes until `max_age` has run out again.
//!
//! A re-authentication keeps the absolute deadline unless the policy says
//! otherwise ([`Policy::reauthentication_extends_absolute`](crate::Policy::reauthentication_extends_absolute)):
//! by default a session still ends when its login said it would.
//!
//! ```
//! use std::{sync::Arc, time::Duration};
//! use latchkey::{Error, ManualClock, MemoryStore, NewSession, Session, SessionManager, StoreManager};
//!
//! #[derive(Debug, PartialEq)]
//! enum Answer { Done, AskPassword, Login }
//!
//! const SUDO: Duration = Duration::from_secs(10 * 60);
//!
//! /// A sensitive action: only on a recent authentication.
//! fn change_email(m: &dyn SessionManager, session: &Session) -> Result<Answer, Error> {
//!     match m.require_recent_auth(session, SUDO) {
//!         Ok(()) => Ok(Answer::Done), // ... change it ...
//!         Err(Error::ReauthenticationRequired { age: None, .. }) => Ok(Answer::Login),
//!         Err(Error::ReauthenticationRequired { .. }) => Ok(Answer::AskPassword),
//!         Err(e) => Err(e),
//!     }
//! }
//!
//! let clock = Arc::new(ManualClock::starting_now());
//! let manager = StoreManager::new(MemoryStore::new()).with_clock(clock.clone());
//! let issued = manager.create(NewSession::new().with_user("alice"))?;
//! let mut session = manager.load(issued.token())?.session;
//! assert_eq!(change_email(&manager, &session)?, Answer::Done);
//!
//! clock.advance(Duration::from_secs(15 * 60)); // still live, no longer fresh
//! assert_eq!(change_email(&manager, &session)?, Answer::AskPassword);
//! // The prompt's POST: the password of `session.user()` checked out.
//! let fresh = manager.reauthenticate(&mut session)?; // send `fresh` as the cookie
//! let session = manager.load(fresh.token())?.session;
//! assert_eq!(change_email(&manager, &session)?, Answer::Done);
//! assert!(matches!(manager.load(issued.token()), Err(Error::Superseded)));
//! # Ok::<(), Error>(())
//! ```
//!
//! ## Remember-me
//!
//! "Keep me signed in" is a second cookie beside the session cookie: a
//! long-lived [`RememberToken`](crate::RememberToken) that logs the user
//! in again when the browser comes back without a session. Hold one
//! [`RememberMe`](crate::RememberMe) beside the manager, over the
//! manager's store (server-side sessions) or its revocation store
//! (tickets). The design (single use, theft detection, the two-tab race)
//! is in [`crate::remember`].
//!
//! | cookie | lifetime | sent |
//! |---|---|---|
//! | session (`__Host-session`) | browser-session by default; per session, persistent until the absolute deadline with [`CookieConfig::with_lifetime`](crate::CookieConfig::with_lifetime) | [`set_cookie(&issued)`](crate::CookieConfig::set_cookie) whenever a call returns an `Issued` |
//! | remember-me (`__Host-remember`) | always persistent: `Max-Age` is the token's remaining lifetime | [`RememberMe::set_cookie`](crate::RememberMe::set_cookie) whenever a call returns a `RememberToken` |
//!
//! 1. **Password login, box ticked**: after `login`,
//!    [`issue(user)`](crate::RememberMe::issue) and send both cookies.
//!    Box not ticked, but the request carries a remember-me cookie:
//!    [`forget`](crate::RememberMe::forget) it and clear it.
//! 2. **A request with no usable session** (no session cookie, or one
//!    refused as in the table above) **but a remember-me cookie**
//!    ([`remember.cookie().find_token_in(..)`](crate::CookieConfig::find_token_in)):
//!    [`log_in(&*manager, token)`](crate::RememberMe::log_in). Never call
//!    it when the session loaded: each call uses the token up.
//!    - `Ok((issued, replacement))`: send both cookies and go on with the
//!      new session.
//!    - [`RememberError::Superseded`](crate::RememberError::Superseded):
//!      another tab used the token a moment ago. No login and no alarm:
//!      send its `replacement` (if any) with
//!      [`set_cookie_at`](crate::RememberMe::set_cookie_at), and answer as
//!      anonymous or redirect the request (a GET) to itself, once. Clear
//!      no cookie ([`Error::clears_cookie`](crate::Error::clears_cookie)
//!      is `false`).
//!    - Any other rejection (`Malformed`, `Unknown`, `Expired`, `Revoked`,
//!      `Theft`; reasons `remember_*`): anonymous, and clear the
//!      remember-me cookie ([`clear_cookie`](crate::CookieConfig::clear_cookie)
//!      on [`remember.cookie()`](crate::RememberMe::cookie)). On `Theft`
//!      every session of the user has ended too: clear the session cookie,
//!      and alert on [`Event::RememberMeTheft`](crate::Event::RememberMeTheft).
//!    - A backend failure: 503, keep both cookies. Anything else (the
//!      manager refused the session, `UserLimit`): as in the table above;
//!      the token was put back and still works.
//! 3. **Logout**: `terminate` the session, `forget` the remember-me
//!    cookie's token, clear both cookies. **Log out everywhere** (and on a
//!    password change): `terminate_all(user, None)` and
//!    [`forget_all(user)`](crate::RememberMe::forget_all).
//! 4. **Sensitive actions**: a session made by `log_in` carries the password
//!    login its token's series started from as its authentication time, so
//!    `require_recent_auth` asks for the password again once that is old.
//!
//! ```
//! use std::sync::Arc;
//! use latchkey::{CookieConfig, Error, MemoryStore, RememberError, RememberMe, SessionManager, StoreManager};
//!
//! /// A request without a usable session: try the remember-me cookie.
//! /// Returns the Set-Cookie headers and whether the user is logged in.
//! fn resume(m: &dyn SessionManager, r: &RememberMe, c: &CookieConfig, header: &str) -> (Vec<String>, bool) {
//!     let Ok(Some(token)) = r.cookie().find_token(header) else { return (vec![], false) };
//!     match r.log_in(m, token) {
//!         Ok((issued, replacement)) => {
//!             let set = [c.set_cookie(&issued), r.set_cookie(&replacement)];
//!             (set.into_iter().flatten().collect(), true)
//!         }
//!         // Another tab won the race: hand its replacement on, log nobody in.
//!         Err(Error::RememberMe(RememberError::Superseded { replacement })) => {
//!             (replacement.and_then(|t| r.set_cookie(&t).ok()).into_iter().collect(), false)
//!         }
//!         Err(e) if e.clears_cookie() => {
//!             let mut set = vec![r.cookie().clear_cookie()];
//!             if matches!(e, Error::RememberMe(RememberError::Theft { .. })) {
//!                 set.push(c.clear_cookie()); // every session of the user ended
//!             }
//!             (set, false)
//!         }
//!         Err(_) => (vec![], false), // a backend failure: 503, keep the cookies
//!     }
//! }
//!
//! let store = Arc::new(MemoryStore::new());
//! let manager = StoreManager::new(store.clone());
//! let remember = RememberMe::new(store, manager.policy().clone());
//! let cookies = CookieConfig::default();
//!
//! // Password login with "keep me signed in" ticked.
//! let token = remember.issue("alice")?;
//! let header = format!("__Host-remember={}", token.token());
//!
//! // The browser comes back with only the remember-me cookie.
//! let (set, logged_in) = resume(&manager, &remember, &cookies, &header);
//! assert!(logged_in);
//! assert!(set[0].starts_with("__Host-session=") && !set[0].contains("Max-Age"));
//! assert!(set[1].starts_with("__Host-remember=rm1.") && set[1].contains("Max-Age="));
//! # Ok::<(), Error>(())
//! ```
//!
//! ## Caching
//!
//! Send `Cache-Control: no-store` on every response produced with a
//! session: pages showing the user's data, and any response carrying a
//! `Set-Cookie`. Otherwise a shared cache may serve one user's page (or
//! fresh cookie) to another, and a shared computer's back button shows the
//! previous user's pages after logout (OWASP Session Management Cheat
//! Sheet; RFC 9111 §5.2.2.5).
//!
//! ## Blocking calls
//!
//! Store calls may block: the file store does disk I/O, the Redis store a
//! network round trip. On an async executor, run the calls of a manager
//! whose [`may_block`](crate::SessionManager::may_block) is true on a
//! blocking pool (`tokio::task::spawn_blocking`), and call the others (a
//! memory store, stateless tickets) in place: the thread hop costs more
//! than the call. A `JoinError` from the pool is best treated as a backend
//! failure (503).
//!
//! ## CSRF
//!
//! The default `SameSite=Lax` keeps the cookie off cross-site POSTs, so
//! state changes behind POST (never GET) are safe in current browsers.
//! Against login CSRF (which needs no cookie), and for defence in depth,
//! refuse state-changing requests that [`check_origin`](crate::check_origin)
//! refuses; it reads `Sec-Fetch-Site` and `Origin` and treats `Origin: null`
//! correctly.
//!
//! ### CSRF tokens
//!
//! A per-session token ([`Session::csrf_token`](crate::Session::csrf_token),
//! [`Session::verify_csrf`](crate::Session::verify_csrf); how it works in
//! [`csrf`](crate::csrf)) is needed on top of those two when:
//!
//! - the session cookie is not `SameSite=Lax` or `Strict` (`None`, for an
//!   app embedded in other sites): the browser then sends it on every
//!   cross-site POST;
//! - browsers that send neither `Sec-Fetch-Site` nor `Origin` must be
//!   defended: `check_origin` lets such a request through, and the oldest
//!   of them ignore `SameSite` too;
//! - a same-site subdomain is under someone else's control (user content,
//!   another team's app, a forgotten DNS name): to `SameSite` it is the same
//!   site, so the cookie rides along on its POSTs, and only `check_origin`
//!   (when the browser sends the headers) or a token stops them.
//!
//! Without any of these, `SameSite=Lax` plus `check_origin` suffices, and
//! the token is cheap defence in depth. No token makes a GET that changes
//! state safe: `Lax` sends the cookie on a cross-site top-level GET,
//! `check_origin` passes safe methods, and a token in a URL leaks through
//! `Referer`, logs and history. Change state only behind POST (PUT, PATCH,
//! DELETE).
//!
//! Using it:
//!
//! 1. Rendering a page with a form: `session.csrf_token()` into a hidden
//!    field (`<input type="hidden" name="csrf_token" value="…">`); for
//!    scripts, into a `<meta name="csrf-token">` they send back as an
//!    `X-CSRF-Token` header. Each call gives a new string (masked against
//!    BREACH), and all of them verify. The first call creates the secret,
//!    so save the session when [`is_modified`](crate::Session::is_modified)
//!    (with tickets, set the cookie the save issues).
//! 2. Every state-changing request on a session: after `check_origin` and
//!    the load, `session.verify_csrf(token)` with the header or form field
//!    (`""` when the request has neither). Any
//!    [`CsrfError`](crate::CsrfError) is **403**: keep the cookie (clearing
//!    it would let any site log users out), change nothing, log
//!    [`reason()`](crate::CsrfError::reason), never the token.
//! 3. After a login the old secret is void (see [`csrf`](crate::csrf)):
//!    render the pages after it with fresh tokens, as the redirect that
//!    follows a login does anyway. A login form needs a session to hold a
//!    secret; `check_origin` alone covers login CSRF.
//!
//! ## Flash messages
//!
//! [`Session::flash`](crate::Session::flash) before the redirect that
//! follows a form post, [`Session::take_flashes`](crate::Session::take_flashes)
//! while rendering the page that shows them (see [`flash`](crate::flash)).
//! Both change the session: save it after the handler whenever
//! [`is_modified`](crate::Session::is_modified) is true, and with tickets
//! set the cookie that save issues. Flashes ride through rotation and the
//! login of an anonymous session; a login as another user starts empty.
//! They are shown to the user: escape them.
//!
//! ## Sessions across reconnects
//!
//! For a long exchange over connections that drop (an upload, a stream of
//! commands), keep its progress in the session, not the connection: the
//! client reconnects with its token and the server resumes from what the
//! session says ([`resume`](crate::resume) has the rules; the
//! `examples/resume` package is a TCP upload doing it). Per request:
//! [`Session::accept_sequence`](crate::Session::accept_sequence) with the
//! client's request number, then
//! [`Session::advance_checkpoint`](crate::Session::advance_checkpoint)
//! from the checkpoint this connection last saw, apply, save, and
//! acknowledge only after the save. Answer
//! [`ResumeError::Replayed`](crate::ResumeError::Replayed) as "already
//! applied" (with the current checkpoint), `Stale` and
//! [`Error::Conflict`](crate::Error::Conflict) with "resume again"; none of
//! them is a rejection, so keep the cookie. With tickets, commit with
//! [`resume::commit_ticket`](crate::resume::commit_ticket) (revocation
//! required), or an old ticket replays old requests.
//!
//! ## Time
//!
//! Every time-dependent call has an `*_at(now)` twin
//! ([`CookieConfig::set_cookie_at`](crate::CookieConfig::set_cookie_at),
//! [`StoreManager::load_at`](crate::StoreManager::load_at), ...), so
//! middleware tests can pin the clock instead of sleeping.
//!
//! # Example
//!
//! The whole cycle with plain strings standing in for a framework's types:
//!
//! ```
//! use std::sync::Arc;
//! use latchkey::{CookieConfig, Error, MemoryStore, NewSession, SessionManager, StoreManager};
//!
//! /// What the middleware hands back: status, Set-Cookie, Cache-Control.
//! struct Out { status: u16, set_cookie: Option<String>, no_store: bool }
//!
//! fn handle(m: &dyn SessionManager, c: &CookieConfig, cookie_header: &str) -> Out {
//!     let token = match c.find_token(cookie_header) {
//!         Ok(Some(t)) => t,
//!         Ok(None) => return Out { status: 401, set_cookie: None, no_store: false },
//!         // No usable session cookie, whatever the reason: anonymous.
//!         Err(e) => {
//!             let set_cookie = e.clears_cookie().then(|| c.clear_cookie());
//!             return Out { status: 401, set_cookie, no_store: false };
//!         }
//!     };
//!     match m.load(token) {
//!         Ok(loaded) => Out {
//!             status: 200,
//!             // The reissue hint: a newer token for this client.
//!             set_cookie: loaded.reissue.and_then(|i| c.set_cookie(&i).ok()),
//!             no_store: true,
//!         },
//!         Err(e) if e.is_rejection() => Out {
//!             status: 401,
//!             set_cookie: e.clears_cookie().then(|| c.clear_cookie()),
//!             no_store: false,
//!         },
//!         Err(e) if e.is_backend_failure() => Out { status: 503, set_cookie: None, no_store: false },
//!         Err(_) => Out { status: 500, set_cookie: None, no_store: false },
//!     }
//! }
//!
//! let manager: Arc<dyn SessionManager> = Arc::new(StoreManager::new(MemoryStore::new()));
//! let cookies = CookieConfig::default();
//! let issued = manager.create(NewSession::new().with_user("alice"))?;
//! let header = format!("__Host-session={}", issued.token());
//!
//! let ok = handle(&*manager, &cookies, &header);
//! assert_eq!((ok.status, ok.no_store), (200, true));
//!
//! let session = manager.load(issued.token())?.session;
//! manager.terminate(&session)?;
//! let gone = handle(&*manager, &cookies, &header);
//! assert_eq!(gone.status, 401);
//! assert_eq!(gone.set_cookie.as_deref(), Some(cookies.clear_cookie().as_str()));
//!
//! // Other applications' cookies crowding the header past the 64 KiB
//! // scanned: anonymous, and the cookie is kept.
//! let crowded = format!("{header}; other={}", "x".repeat(70_000));
//! let out = handle(&*manager, &cookies, &crowded);
//! assert_eq!((out.status, out.set_cookie), (401, None));
//! # Ok::<(), Error>(())
//! ```
