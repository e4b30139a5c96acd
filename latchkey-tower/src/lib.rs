//! # latchkey-tower
//!
//! [latchkey](https://docs.rs/latchkey) sessions for [tower] services and
//! [axum]: one [`SessionLayer`] that reads the session cookie, loads the
//! session and writes the response's cookie, and extractors
//! ([`SessionHandle`], [`Authenticated`]) that let handlers log in, change
//! privilege, save and log out; CSRF tokens, flash messages,
//! re-authentication for sensitive actions and remember-me included.
//!
//! The layer follows latchkey's guide for framework authors
//! ([`latchkey::framework`]) so that applications do not have to. Its
//! framework-agnostic half (where a manager call runs, the retry backoff,
//! the queue of one session's writers) is [`latchkey_adapter`], shared with
//! latchkey-actix.
//!
//! ## Quick start
//!
//! ```
//! use std::sync::Arc;
//! use axum::{Router, extract::Path, routing::{get, post}};
//! use latchkey::{CookieConfig, MemoryStore, StoreManager};
//! use latchkey_tower::{Authenticated, SessionError, SessionHandle, SessionLayer};
//!
//! async fn login(handle: SessionHandle, Path(user): Path<String>) -> Result<&'static str, SessionError> {
//!     // ... check the user's password first ...
//!     handle.login(&user).await?; // a fresh token: no session fixation
//!     Ok("logged in")
//! }
//!
//! async fn me(auth: Authenticated) -> String {
//!     format!("hello, {}", auth.user()) // 401 without a logged-in session
//! }
//!
//! let manager = Arc::new(StoreManager::new(MemoryStore::new()));
//! let app: Router = Router::new()
//!     .route("/login/{user}", post(login))
//!     .route("/me", get(me))
//!     .layer(SessionLayer::new(manager, CookieConfig::default()));
//! # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//! # rt.block_on(async {
//! #     use tower::ServiceExt as _;
//! #     let req = http::Request::post("/login/alice")
//! #         .header("sec-fetch-site", "same-origin")
//! #         .body(axum::body::Body::empty())?;
//! #     let res = app.clone().oneshot(req).await?;
//! #     assert_eq!(res.status(), 200);
//! #     let cookie = res.headers()["set-cookie"].to_str()?.split(';').next().unwrap_or("").to_owned();
//! #     let req = http::Request::get("/me").header("cookie", cookie).body(axum::body::Body::empty())?;
//! #     let res = app.oneshot(req).await?;
//! #     assert_eq!(res.status(), 200);
//! #     assert_eq!(res.headers()["cache-control"], "no-store");
//! #     Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## What the layer does
//!
//! | situation | response |
//! |---|---|
//! | a cross-site POST/PUT/DELETE/... (`Sec-Fetch-Site`, else `Origin` vs `Host`; `Origin: null` only with `Sec-Fetch-Site: same-origin`) | 403 `cross_origin` before the handler and before any session read or write |
//! | no cookie, or one that cannot be used (two different values, a crowded `Cookie` header) | the request runs logged out, never a 400; a bad or ambiguous cookie is cleared |
//! | the cookie's session is expired, ended, reused or forged | the request runs logged out; the cookie is cleared (unless a login moments ago superseded it: that response sets the new one) |
//! | the store is down | 503 `backend` at once; the cookie is kept |
//! | a handler issued a token (login, privilege change, rotation, a ticket save) or the load handed back a newer one | one `Set-Cookie` with the newest token |
//! | a handler logged out | one `Set-Cookie` clearing the cookie |
//! | a session was involved, or a `Set-Cookie` goes out | `Cache-Control: no-store` |
//! | a save conflicted with another request's | reload, apply the change again, retry with a short random backoff; 409 once the attempts run out |
//! | no usable session but a remember-me cookie ([`with_remember_me`](SessionLayer::with_remember_me), opt-in) | logged in through it, both cookies rotated; a refused one is cleared, a stolen one clears both |
//! | a state-changing request with a session and no valid CSRF token in the header ([`with_csrf_header`](SessionLayer::with_csrf_header), opt-in) | 403 `csrf_*` before the handler; the cookie is kept |
//!
//! Errors answer with the stable [`latchkey::Error::reason`] code as the
//! body, never a token: rejections 401, backend failures 503, conflicts 409,
//! a stale login for a sensitive action 401 `reauthentication_required`, a
//! refused CSRF token 403 ([`SessionError`] has the full table).
//!
//! ## CSRF tokens, flash messages, step-up, remember-me
//!
//! The handle carries latchkey's web-app features, each saved through the
//! same versioned path as [`SessionHandle::update`], and the layer applies
//! their cookies; latchkey's guide ([`latchkey::framework`]) says when and
//! why:
//!
//! - **CSRF tokens**: [`SessionHandle::csrf_token`] for a page's form or
//!   scripts, [`SessionHandle::verify_csrf`] for a form field in the
//!   handler, or the layer's header check
//!   ([`SessionLayer::with_csrf_header`], off by default: the origin check
//!   and `SameSite=Lax` suffice unless the guide's conditions apply).
//! - **Flash messages**: [`SessionHandle::flash`] before a redirect,
//!   [`SessionHandle::take_flashes`] on the page after it. A visitor
//!   without a session gets an anonymous one to carry them.
//! - **Re-authentication**: [`SessionHandle::require_recent_auth`] in a
//!   sensitive action (401 `reauthentication_required`, the cookie kept),
//!   [`SessionHandle::reauthenticate`] after the password prompt checked
//!   out (a new cookie; the old one is refused).
//! - **Remember-me**: [`SessionLayer::with_remember_me`], then
//!   [`SessionHandle::remember`] after a login with the box ticked;
//!   [`SessionHandle::logout`] forgets the token.
//!
//! ```
//! use std::{sync::Arc, time::Duration};
//! use axum::{Router, response::Redirect, routing::{get, post}};
//! use latchkey::{CookieConfig, MemoryStore, RememberMe, StoreManager};
//! use latchkey_tower::{Authenticated, SessionError, SessionHandle, SessionLayer};
//!
//! async fn settings(handle: SessionHandle) -> Result<String, SessionError> {
//!     let notices: Vec<String> = handle.take_flashes().await?.iter().map(|f| f.message().to_owned()).collect();
//!     let token = handle.csrf_token().await?; // into the form's hidden field
//!     Ok(format!("{notices:?} <form>…{token}…</form>"))
//! }
//!
//! async fn change_email(auth: Authenticated) -> Result<Redirect, SessionError> {
//!     // The form's token was checked (verify_csrf); now the step-up check.
//!     auth.handle().require_recent_auth(Duration::from_secs(600)).await?;
//!     // ... change it ...
//!     auth.handle().flash("notice", "Email changed.").await?;
//!     Ok(Redirect::to("/settings"))
//! }
//!
//! let store = Arc::new(MemoryStore::new());
//! let manager = StoreManager::new(store.clone());
//! let remember = RememberMe::new(store, manager.policy().clone());
//! let app: Router = Router::new()
//!     .route("/settings", get(settings))
//!     .route("/settings/email", post(change_email))
//!     .layer(SessionLayer::new(Arc::new(manager), CookieConfig::default()).with_remember_me(remember));
//! ```
//!
//! **Blocking.** Store calls may block (a file store does disk I/O, a Redis
//! store a network round trip). The layer asks the manager
//! ([`latchkey::SessionManager::may_block`]): calls that cannot block (a
//! `MemoryStore`) run in place on the executor; the others run on tokio's
//! blocking pool (`tokio::task::spawn_blocking`, as
//! [`latchkey_adapter::Manager`] dispatches). A call that panics is a
//! backend failure (503), never a rejection.
//!
//! The layer works with any manager behind `Arc<dyn SessionManager>`:
//! server-side sessions ([`latchkey::StoreManager`]) or stateless tickets
//! ([`latchkey::TicketManager`]).
//!
//! **Async stores.** [`SessionLayer::from_async`] takes an
//! `Arc<dyn AsyncSessionManager>` ([`latchkey::AsyncStoreManager`] over an
//! async store, such as an async Redis client): the same lifecycle, every
//! call awaited in place on the request's task, so a networked store costs
//! no trip to the blocking pool. Behaviour, answers and cookies are the
//! same as with a synchronous manager.
//!
//! ## Without axum
//!
//! [`SessionLayer`] is a plain [`tower_layer::Layer`] over
//! `http::Request`/`http::Response` services (hyper, tonic-style stacks):
//! the [`SessionHandle`] is in the request's extensions. The response body
//! type needs `From<&'static str>` for the layer's own error responses.
//!
//! ## Cargo features
//!
//! - `axum` (on by default): [`SessionHandle`] and [`Authenticated`] as
//!   axum extractors, and [`SessionError`] as an axum response.
//!
//! [tower]: https://docs.rs/tower
//! [axum]: https://docs.rs/axum
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
// Document ALL THE THINGS!
#![deny(missing_docs)]
#![warn(missing_debug_implementations, unreachable_pub)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod error;
#[cfg(feature = "axum")]
mod extract;
mod handle;
mod layer;

// The layer, and the service and future it makes.
pub use crate::layer::{ResponseFuture, SessionLayer, SessionService};
// What handlers use.
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub use crate::extract::Authenticated;
pub use crate::handle::SessionHandle;
// Errors, and the responses they become.
pub use crate::error::SessionError;

// The README's Rust examples are doctests, so they cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExamples;
