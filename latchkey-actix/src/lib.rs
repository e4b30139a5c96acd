//! # latchkey-actix
//!
//! [latchkey](https://docs.rs/latchkey) sessions for
//! [actix-web](https://docs.rs/actix-web): a [`SessionMiddleware`] that
//! finds the session cookie, loads the session and writes the response's
//! `Set-Cookie`, and the extractors handlers take: [`SessionHandle`] (the
//! session, if any, and the operations that change it) and
//! [`Authenticated`] (a logged-in session, or 401). CSRF tokens, flash
//! messages, re-authentication for sensitive actions and remember-me are
//! included.
//!
//! It follows latchkey's guide for framework authors
//! ([`latchkey::framework`]) to the letter: which errors mean 401, 503 or
//! 409, when the cookie is cleared and when it is kept, reissue hints,
//! `Cache-Control: no-store`, blocking stores off the worker thread, and a
//! cross-site check against login CSRF. Its framework-agnostic half (where
//! a manager call runs, the retry backoff, the queue of one session's
//! writers) is [`latchkey_adapter`], shared with latchkey-tower.
//!
//! ## Quick start
//!
//! ```
//! use std::sync::Arc;
//! use actix_web::{App, HttpResponse, test, web};
//! use latchkey::{CookieConfig, MemoryStore, StoreManager};
//! use latchkey_actix::{Authenticated, SessionError, SessionHandle, SessionMiddleware};
//!
//! async fn login(handle: SessionHandle) -> Result<HttpResponse, SessionError> {
//!     // ... check the credentials first ...
//!     handle.login("alice").await?;
//!     Ok(HttpResponse::SeeOther().insert_header(("Location", "/me")).finish())
//! }
//!
//! async fn me(auth: Authenticated) -> String {
//!     format!("hello, {}", auth.user())
//! }
//!
//! # actix_web::rt::System::new().block_on(async {
//! // One manager for the process: server-side sessions in memory here; a
//! // FileStore, a RedisStore or stateless tickets work the same way.
//! let manager = Arc::new(StoreManager::new(MemoryStore::new()));
//! let sessions = SessionMiddleware::new(manager, CookieConfig::default());
//! let app = test::init_service(
//!     App::new()
//!         .wrap(sessions)
//!         .route("/login", web::post().to(login))
//!         .route("/me", web::get().to(me)),
//! )
//! .await;
//!
//! let res = test::call_service(&app, test::TestRequest::post().uri("/login").to_request()).await;
//! let cookie = res.headers().get("set-cookie").unwrap().to_str()?;
//! assert!(cookie.starts_with("__Host-session="));
//! assert!(cookie.ends_with("; Path=/; Secure; HttpOnly; SameSite=Lax"));
//! assert_eq!(res.headers().get("cache-control").unwrap(), "no-store");
//!
//! let pair = cookie.split(';').next().unwrap();
//! let req = test::TestRequest::get().uri("/me").insert_header(("Cookie", pair));
//! let body = test::call_and_read_body(&app, req.to_request()).await;
//! assert_eq!(body, "hello, alice");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! To serve it, clone the middleware into the `HttpServer` factory (see
//! [`SessionMiddleware::new`]).
//!
//! ## What the middleware does
//!
//! | | |
//! |---|---|
//! | **cookie** | found in every `Cookie` header with [`CookieConfig::find_token_in`](latchkey::CookieConfig::find_token_in); a missing, refused or crowded-out cookie runs the request logged out (never a 400). At most one `Set-Cookie` per response: the newest token, or the clearing cookie, never both |
//! | **reissue** | a token rotated moments ago (within the grace window) loads, and the response carries its successor |
//! | **errors** | rejections 401 (the cookie cleared, except a superseded token's); store failures 503 (the cookie kept); one request at a time writes a session within the middleware (shared by all workers), so its requests on one cookie do not conflict; conflicts with other processes retried with a reload (12 attempts, a random wait of up to 1 ms doubling to 32 ms), then 409; a stale login for a sensitive action 401 `reauthentication_required` (the cookie kept); bodies are the stable [`reason`](SessionError::reason) code, never a token ([`SessionError`]) |
//! | **caching** | `Cache-Control: no-store` on every response a session took part in or that sets a cookie |
//! | **blocking** | manager calls run in place when [`may_block`](latchkey::SessionManager::may_block) is false (memory store, tickets), else on the blocking pool; an async manager's ([`SessionMiddleware::from_async`]) awaited in place on the worker; a panicking or cancelled call is a 503 |
//! | **CSRF** | state-changing requests from other sites are refused 403 before the handler ([`latchkey::check_origin`]); on by default. Opt-in: a CSRF token in a header on state-changing requests with a session ([`with_csrf_header`](SessionMiddleware::with_csrf_header)), 403 `csrf_*` without it, the cookie kept |
//! | **remember-me** | opt-in ([`with_remember_me`](SessionMiddleware::with_remember_me)): a request with no usable session but a remember-me cookie is logged in through it, both cookies rotated; a refused one is cleared, a stolen one clears both |
//!
//! ## CSRF tokens, flash messages, step-up, remember-me
//!
//! The handle carries latchkey's web-app features, each saved through the
//! same versioned path as [`SessionHandle::update`], and the middleware
//! applies their cookies; latchkey's guide ([`latchkey::framework`]) says
//! when and why:
//!
//! - **CSRF tokens**: [`SessionHandle::csrf_token`] for a page's form or
//!   scripts, [`SessionHandle::verify_csrf`] for a form field in the
//!   handler, or the middleware's header check
//!   ([`SessionMiddleware::with_csrf_header`], off by default: the origin
//!   check and `SameSite=Lax` suffice unless the guide's conditions
//!   apply).
//! - **Flash messages**: [`SessionHandle::flash`] before a redirect,
//!   [`SessionHandle::take_flashes`] on the page after it. A visitor
//!   without a session gets an anonymous one to carry them.
//! - **Re-authentication**: [`SessionHandle::require_recent_auth`] in a
//!   sensitive action (401 `reauthentication_required`, the cookie kept),
//!   [`SessionHandle::reauthenticate`] after the password prompt checked
//!   out (a new cookie; the old one is refused).
//! - **Remember-me**: [`SessionMiddleware::with_remember_me`], then
//!   [`SessionHandle::remember`] after a login with the box ticked;
//!   [`SessionHandle::logout`] forgets the token.
//!
//! ```
//! use std::{sync::Arc, time::Duration};
//! use actix_web::{App, HttpResponse, web};
//! use latchkey::{CookieConfig, MemoryStore, RememberMe, StoreManager};
//! use latchkey_actix::{Authenticated, SessionError, SessionHandle, SessionMiddleware};
//!
//! async fn settings(handle: SessionHandle) -> Result<String, SessionError> {
//!     let notices: Vec<String> = handle.take_flashes().await?.iter().map(|f| f.message().to_owned()).collect();
//!     let token = handle.csrf_token().await?; // into the form's hidden field
//!     Ok(format!("{notices:?} <form>…{token}…</form>"))
//! }
//!
//! async fn change_email(auth: Authenticated) -> Result<HttpResponse, SessionError> {
//!     // The form's token was checked (verify_csrf); now the step-up check.
//!     auth.handle().require_recent_auth(Duration::from_secs(600)).await?;
//!     // ... change it ...
//!     auth.handle().flash("notice", "Email changed.").await?;
//!     Ok(HttpResponse::SeeOther().insert_header(("Location", "/settings")).finish())
//! }
//!
//! let store = Arc::new(MemoryStore::new());
//! let manager = StoreManager::new(store.clone());
//! let remember = RememberMe::new(store, manager.policy().clone());
//! let sessions = SessionMiddleware::new(Arc::new(manager), CookieConfig::default())
//!     .with_remember_me(remember);
//! let app = App::new()
//!     .wrap(sessions)
//!     .route("/settings", web::get().to(settings))
//!     .route("/settings/email", web::post().to(change_email));
//! ```
//!
//! ## Cargo features
//!
//! None. The crate needs actix-web with no default features, so the
//! application chooses compression, HTTP/2, TLS and macros. It turns on
//! latchkey's `async` feature (no dependency) for
//! [`SessionMiddleware::from_async`].
#![forbid(unsafe_code)]
// Document ALL THE THINGS!
#![deny(missing_docs)]
#![warn(missing_debug_implementations, unreachable_pub)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod error;
mod handle;
mod middleware;

// The middleware, and the service it wraps around an application's.
pub use crate::middleware::{SessionMiddleware, SessionService};
// The extractors.
pub use crate::handle::{Authenticated, SessionHandle};
// The error, and the response it becomes.
pub use crate::error::SessionError;

// The README's Rust examples are doctests, so they cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExamples;
