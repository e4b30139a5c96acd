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
//!    `save` or `terminate`.
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
//! | `TooLarge`, `TicketTooLarge`, `UserLimit`, `Data`, `RevocationNotConfigured`, `Unsupported` | an application or configuration problem: 4xx/500 as fits | keep it |
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
