//! # latchkey-actix
//!
//! [latchkey](https://docs.rs/latchkey) sessions for
//! [actix-web](https://docs.rs/actix-web): a [`SessionMiddleware`] that
//! finds the session cookie, loads the session and writes the response's
//! `Set-Cookie`, and the extractors handlers take: [`SessionHandle`] (the
//! session, if any, and the operations that change it) and
//! [`Authenticated`] (a logged-in session, or 401).
//!
//! It follows latchkey's guide for framework authors
//! ([`latchkey::framework`]) to the letter: which errors mean 401, 503 or
//! 409, when the cookie is cleared and when it is kept, reissue hints,
//! `Cache-Control: no-store`, blocking stores off the worker thread, and a
//! cross-site check against login CSRF.
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
//! | **errors** | rejections 401 (the cookie cleared, except a superseded token's); store failures 503 (the cookie kept); version conflicts retried with a reload, then 409; bodies are the stable [`reason`](SessionError::reason) code, never a token ([`SessionError`]) |
//! | **caching** | `Cache-Control: no-store` on every response a session took part in or that sets a cookie |
//! | **blocking** | manager calls run in place when [`may_block`](latchkey::SessionManager::may_block) is false (memory store, tickets), else on the blocking pool; a panicking or cancelled call is a 503 |
//! | **CSRF** | state-changing requests from other sites are refused 403 before the handler ([`latchkey::check_origin`]); on by default |
//!
//! ## Cargo features
//!
//! None. The crate needs actix-web with no default features, so the
//! application chooses compression, HTTP/2, TLS and macros.
#![forbid(unsafe_code)]
// Document ALL THE THINGS!
#![deny(missing_docs)]
#![warn(missing_debug_implementations, unreachable_pub)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod dispatch;
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
