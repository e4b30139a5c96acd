//! # latchkey-adapter
//!
//! The framework-agnostic half of latchkey's web adapters
//! ([latchkey-tower](https://docs.rs/latchkey-tower) and
//! [latchkey-actix](https://docs.rs/latchkey-actix)), for framework authors
//! writing an adapter of their own on tokio. What is left to the framework
//! is the cookie, the request and the response; this crate has the rest of
//! what latchkey's guide for framework authors ([`latchkey::framework`])
//! asks of a write:
//!
//! - **Where a manager call runs** ([`Manager`]): a synchronous
//!   [`SessionManager`](latchkey::SessionManager) in place when it cannot
//!   block, on tokio's blocking pool when it may; an
//!   [`AsyncSessionManager`](latchkey::AsyncSessionManager) awaited in
//!   place. A panic in the manager is a backend failure (503), never a
//!   rejection that would clear the cookie.
//! - **The retry of a conflicting write** ([`Write`], [`backoff`],
//!   [`DEFAULT_MAX_ATTEMPTS`]): reload, apply the change again, and wait a
//!   random time of up to 1 ms, doubling to 32 ms, between attempts.
//! - **One writer per session at a time** ([`Writers`], [`Place`],
//!   [`Turn`]): the requests of one process that write the same session
//!   queue instead of conflicting, each starting from the last one's save.
//!
//! ## Example
//!
//! A write as an adapter's session handle makes it: in the session's turn,
//! retried on a conflict.
//!
//! ```
//! use std::sync::Arc;
//! use latchkey::{Error, MemoryStore, NewSession, Session, StoreManager};
//! use latchkey_adapter::{DEFAULT_MAX_ATTEMPTS, Manager, Place, Write, Writers, backoff};
//!
//! /// Sets `n` in the session, retrying on conflicts.
//! async fn set_n(
//!     manager: &Manager,
//!     writers: &Arc<Writers>,
//!     watch: &Place,
//!     token: &str,
//!     loaded: Session,
//!     n: i32,
//! ) -> Result<Session, Error> {
//!     let mut turn = writers.turn(*loaded.store_key(), Some(watch)).await;
//!     let mut session = turn.newest(loaded);
//!     let mut attempt = 1;
//!     loop {
//!         session.insert("n", &n)?;
//!         let (written, result) = manager.write(Write::Save, session).await?;
//!         match result {
//!             Ok(_) => {
//!                 turn.saved(&written);
//!                 return Ok(written);
//!             }
//!             Err(Error::Conflict) if attempt < DEFAULT_MAX_ATTEMPTS => {
//!                 backoff(attempt).await;
//!                 attempt += 1;
//!                 // Another process wrote it first: start from its save.
//!                 session = manager.load(token.to_owned()).await?.session;
//!             }
//!             Err(e) => return Err(e),
//!         }
//!     }
//! }
//!
//! #[tokio::main(flavor = "current_thread")]
//! async fn main() -> Result<(), Error> {
//!     // One of each per adapter instance (a layer, a middleware).
//!     let manager = Manager::Sync(Arc::new(StoreManager::new(MemoryStore::new())));
//!     let writers = Arc::new(Writers::default());
//!
//!     // A request: its cookie's session loaded, and watched while it runs.
//!     let (_, issued) = manager.create(NewSession::new()).await?;
//!     let loaded = manager.load(issued.token().to_owned()).await?.session;
//!     let watch = writers.watch(*loaded.store_key());
//!     let session = set_n(&manager, &writers, &watch, issued.token(), loaded, 7).await?;
//!     assert_eq!(session.get::<i32>("n")?, Some(7));
//!     Ok(())
//! }
//! ```
//!
//! Every method of [`Manager`] needs a tokio runtime (`rt`); the adapters
//! run their frameworks' handlers on one (actix-web's runtime is tokio).
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
// Document ALL THE THINGS!
#![deny(missing_docs)]
#![warn(missing_debug_implementations, unreachable_pub)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod dispatch;
mod writers;

// Where a manager call runs, and the retry of a conflicting write.
pub use crate::dispatch::{DEFAULT_MAX_ATTEMPTS, Manager, Write, backoff, backoff_ceiling};
// One writer per session at a time.
pub use crate::writers::{Place, Turn, Writers};

// The README's Rust examples are doctests, so they cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExamples;
