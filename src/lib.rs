//! # latchkey
//!
//! Session management for Rust servers: the code that decides whether the
//! request in front of you belongs to a live, logged-in session, and keeps
//! that answer right under rotation, expiry, logout, crashes, many processes
//! and hostile input.
//!
//! ## Quick start
//!
//! ```
//! use latchkey::{Error, MemoryStore, NewSession, Policy, SessionManager, StoreManager};
//!
//! // One manager for the whole process; share it (it is Send + Sync).
//! let manager = StoreManager::new(MemoryStore::new()).with_policy(Policy::nist_aal2());
//!
//! // A visitor arrives: start an anonymous session, send `token` as the cookie.
//! let issued = manager.create(NewSession::new())?;
//! let cookie = issued.token().to_owned();
//!
//! // Every request: resolve the cookie. Rejections say why.
//! let mut session = manager.load(&cookie)?.session;
//! session.insert("cart", &["book"])?;
//! manager.save(&mut session)?;
//!
//! // Login: a fresh ID, the user bound, the data kept. The pre-login token
//! // is refused from now on: whoever planted it gains nothing (no fixation).
//! let after_login = manager.login(&mut session, "alice")?;
//! assert!(matches!(manager.load(&cookie), Err(Error::Superseded)));
//! let cookie = after_login.token().to_owned();
//!
//! // A routine rotation keeps in-flight requests working: for the grace
//! // window the old token resolves and hands back the new one.
//! let rotated = manager.rotate(&mut session)?;
//! assert!(manager.load(&cookie)?.reissue.is_some());
//! let cookie = rotated.token().to_owned();
//!
//! // Logout: the token is dead everywhere.
//! manager.terminate(&session)?;
//! let err = manager.load(&cookie).unwrap_err();
//! assert!(err.is_rejection());
//! assert_eq!(err.reason(), "terminated");
//! # Ok::<(), Error>(())
//! ```
//!
//! ## What it guarantees
//!
//! - **IDs**: 256 bits from the OS-seeded CSPRNG, 43 characters of
//!   base64url; [`SessionId::parse`] accepts that shape and nothing else,
//!   before any store is touched. Unknown IDs are refused, never adopted.
//! - **Hashed at rest**: stores key records by SHA-256 of the ID
//!   ([`StoreKey`]); logs name sessions by [`Fingerprint`]. No `Debug`
//!   output shows a token.
//! - **Two clocks**: an idle deadline that activity slides, an absolute
//!   deadline nothing moves. The error says which one ended a session.
//! - **Rotation**: [`SessionManager::rotate`],
//!   [`SessionManager::change_privilege`] and [`SessionManager::login`]
//!   retire the old ID. After a routine rotation it still resolves for a
//!   short grace window (and [`Loaded::reissue`] carries the new token);
//!   after a login or privilege change it never reaches the changed session
//!   ([`Error::Superseded`]). Past the window the old token is
//!   [`Error::RotatedTokenReused`] and, by default, its successor is
//!   revoked. A crash between a rotation's writes leaves no ghost and
//!   brings back no ended token. The [`lifecycle`] module holds the rules
//!   as one table, the same for both managers.
//! - **Step-up**: [`SessionManager::require_recent_auth`] refuses a
//!   sensitive action on a stale authentication
//!   ([`Error::ReauthenticationRequired`], which keeps the session);
//!   [`SessionManager::reauthenticate`] records a fresh one and rotates as
//!   a privilege change. Activity never counts as authentication.
//! - **Remember-me**: [`RememberMe`] issues a long-lived login token in
//!   a cookie of its own, single use (each use hands a replacement), kept
//!   hashed in any store; a used token presented again ends every token
//!   and session of its user ([`RememberError::Theft`]).
//! - **No write storms**: a load writes only when the recorded activity is
//!   older than the touch interval.
//! - **No lost updates**: saves are versioned; a stale copy gets
//!   [`Error::Conflict`].
//! - **Termination is final**: ending any token of a rotation chain ends
//!   the whole chain, and `terminate` never returns `Ok` while a token of
//!   the session still loads. Every failure is a typed [`Error`], never a
//!   panic.
//! - **Stateless tickets**, when you want no server-side state:
//!   [`TicketManager`] implements the same [`SessionManager`] with signed
//!   tickets (HMAC-SHA256, key ids and rotation through a [`KeyRing`], bound
//!   to the cookie name, both deadlines carried, a published format with test
//!   vectors). Revocation needs state and is opt-in
//!   ([`TicketManager::with_revocation`]).
//!
//! ## For framework authors
//!
//! Hold an `Arc<dyn SessionManager>`. Map [`Error::is_rejection`] to 401
//! (and clear the cookie if [`Error::clears_cookie`]); map [`Error::is_backend_failure`] to 503 and keep it.
//! When a call returns an [`Issued`] (or [`Loaded::reissue`] is `Some`), set
//! the cookie to its token. A synchronous manager's store calls may block
//! ([`SessionManager::may_block`]): on an async executor run those on a
//! blocking pool, or use the async manager (next section).
//!
//! [`CookieConfig`] renders the hardened `Set-Cookie` and finds the token in
//! a `Cookie` header. The [`framework`] module is the full guide: which
//! errors mean 401 and clear the cookie, which mean 503, how to apply a
//! reissue hint, and `Cache-Control: no-store` on authenticated responses.
//!
//! ## Sync or async
//!
//! The lifecycle ([`lifecycle`]) is written once, as async code over a
//! store's operations, and driven two ways:
//!
//! - [`StoreManager`] over a [`Store`], whose calls return when done: each
//!   store call's future is ready when it is made, so one poll runs an
//!   operation to its end, on the calling thread, with no runtime. This is
//!   the default build, and a [`MemoryStore`] load costs what it did before
//!   the async driver existed (`benches/manager.rs`).
//! - `AsyncStoreManager` over an `AsyncStore` (feature `async`): the same
//!   operations as `async fn`s, every store call awaited. No runtime is
//!   named (plain `Send` futures), so the feature adds no dependency.
//!   Frameworks hold it as `Arc<dyn AsyncSessionManager>` and await its
//!   calls in place: no thread hop to a blocking pool per request
//!   (`latchkey_tower::SessionLayer::from_async`).
//!
//! Both run the same code: the same decisions, the same store calls in the
//! same order, the same events; the manager conformance suite passes
//! against both. Pick the driver your store's client has: a synchronous
//! client (the memory and file stores, `RedisStore`, `PostgresStore`)
//! with [`StoreManager`], an async one with `AsyncStoreManager`.
//!
//! A store call of the async driver (a sketch; the feature's docs have
//! complete examples) reads the same as the synchronous one with `.await`:
//!
//! ```
//! use latchkey::{MemoryStore, NewSession, SessionManager, StoreManager};
//!
//! let manager = StoreManager::new(MemoryStore::new());
//! let issued = manager.create(NewSession::new().with_user("alice"))?;
//! let loaded = manager.load(issued.token())?;
//! // With feature `async`, over an async store:
//! //     let manager = AsyncStoreManager::new(store).with_sleep(tokio::time::sleep);
//! //     let loaded = manager.load(issued.token()).await?;
//! assert_eq!(loaded.session.user(), Some("alice"));
//! # Ok::<(), latchkey::Error>(())
//! ```
//!
//! ## Stores
//!
//! [`MemoryStore`] keeps sessions in one process. [`FileStore`] (Unix)
//! keeps them in a directory that survives restarts and crashes, that
//! several processes on one host may share, and that an operator can read
//! with `cat` (layout in [`store::file`]). `RedisStore` (feature `redis`),
//! `RedisClusterStore` (feature `redis-cluster`) and `PostgresStore`
//! (feature `postgres`) serve many app servers.
//!
//! ## Cargo features
//!
//! - `redis` (off by default): `RedisStore`, sessions in Redis shared by many
//!   app servers, on the `redis` crate's synchronous client (see
//!   `latchkey::store::redis`).
//! - `redis-tls` (off by default): `rediss://` URLs and
//!   `RedisStore::open_tls` for a private CA, over rustls (no OpenSSL).
//! - `redis-cluster` (off by default, implies `redis`): `RedisClusterStore`,
//!   the same sessions in a Redis Cluster (see
//!   `latchkey::store::redis::cluster`).
//! - `redis-async` (off by default): `AsyncRedisStore`, the same keys,
//!   scripts and records as `RedisStore` over one multiplexed connection
//!   on Tokio, so async and blocking servers share one Redis.
//! - `redis-async-tls` (off by default): `AsyncRedisStore` over TLS. It
//!   is `redis-async` plus `redis-tls`, and what to turn on when both are
//!   wanted: the two alone do not build together.
//! - `postgres` (off by default): `PostgresStore`, sessions in one
//!   PostgreSQL table, over `tokio-postgres` driven by the store with a
//!   timeout on every wait (see `latchkey::store::postgres`).
//! - `async` (off by default): `AsyncStore`, `AsyncStoreManager` and
//!   `AsyncSessionManager`: the same lifecycle, awaited on an async store
//!   (see "Sync or async" above). No dependency.
//! - `test-util` (off by default): `latchkey::store::conformance` and
//!   `store_conformance!`, the store conformance suite, for the tests of a
//!   store of your own; with `async`, `store::asynchronous::PendingOnce`
//!   (an async store over any store, yielding before every call) and a
//!   minimal `block_on`.
#![forbid(unsafe_code)]
// On docs.rs: mark each feature-gated item with the feature it needs.
#![cfg_attr(docsrs, feature(doc_cfg))]
// Document ALL THE THINGS!
#![deny(missing_docs)]
#![warn(missing_debug_implementations, unreachable_pub)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod clock;
mod cookie;
pub mod csrf;
mod data;
mod error;
mod event;
pub mod flash;
pub mod framework;
mod id;
pub mod lifecycle;
mod manager;
mod origin;
mod policy;
pub mod remember;
pub mod resume;
mod session;
pub mod store;
mod ticket;

// Time.
pub use crate::clock::{Clock, ManualClock, SystemClock, Timestamp};
// Identifiers: the secret token, the hashed store key, the log fingerprint.
pub use crate::id::{Fingerprint, SessionId, StoreKey, TokenError};
// Rules.
pub use crate::policy::{Policy, PolicyBuilder, PolicyError, ReuseResponse, UserLimitAction};
// Sessions and what managers hand back.
pub use crate::session::{Issued, Loaded, NewSession, Session, SessionData};
// Managers.
#[cfg(feature = "async")]
#[cfg_attr(docsrs, doc(cfg(feature = "async")))]
pub use crate::manager::{AsyncSessionManager, AsyncStoreManager, BoxFuture};
pub use crate::manager::{SessionInfo, SessionManager, StoreManager};

// Is a state-changing request from our own pages (login CSRF)?
pub use crate::origin::{CrossSiteRequest, FetchHeaders, check_origin};
// Per-session CSRF tokens, and flash messages (reserved data keys).
pub use crate::csrf::{CSRF_KEY, CSRF_TOKEN_LEN, CsrfError, RESERVED_PREFIX};
pub use crate::flash::{
    FLASH_KEY, Flash, FlashError, MAX_FLASH_KIND_LEN, MAX_FLASH_MESSAGE_LEN, MAX_FLASHES,
};
// Sessions across reconnects: checkpoints and sequence numbers.
pub use crate::resume::{Checkpoint, MAX_CHECKPOINT_NAME_LEN, MAX_CHECKPOINTS, ResumeError};
// Storage.
#[cfg(unix)]
pub use crate::store::file::{Durability, FileStore};
pub use crate::store::memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use crate::store::postgres::PostgresStore;
#[cfg(feature = "redis")]
pub use crate::store::redis::RedisStore;
#[cfg(feature = "redis-async")]
pub use crate::store::redis::aio::AsyncRedisStore;
#[cfg(feature = "redis-cluster")]
pub use crate::store::redis::cluster::RedisClusterStore;
// What a store implementer also needs (`Record`, `RecordState`,
// `LiveSession`, `Peek`, `LiveRef`, `DataRef`, `SealedId`) stays in
// `latchkey::store`.
#[cfg(feature = "async")]
#[cfg_attr(docsrs, doc(cfg(feature = "async")))]
pub use crate::store::asynchronous::AsyncStore;
pub use crate::store::{EndReason, Store, StoreError};
// Cookies: rendering Set-Cookie, finding the token in a Cookie header.
pub use crate::cookie::{
    CookieConfig, CookieConfigBuilder, CookieError, CookieLifetime, DEFAULT_MAX_HEADER_BYTES,
    MAX_SET_COOKIE_BYTES, SameSite,
};
// Errors and events.
pub use crate::error::Error;
pub use crate::event::{Event, ExpiryKind, Observer, RejectKind};
// Stateless signed tickets.
pub use crate::ticket::{
    KeyRing, MAX_TICKET_LEN, TicketConfigError, TicketError, TicketKey, TicketManager,
    UnverifiedTicket,
};
// Remember-me: a long-lived login token beside the session.
pub use crate::remember::{
    REMEMBERED_KEY, RememberError, RememberMe, RememberToken, RememberTokenError, TheftKind,
};

// The README's Rust examples are doctests, so they cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExamples;
