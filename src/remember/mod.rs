//! Remember-me: a long-lived login token, separate from the session, that
//! logs the user in again when the browser comes back without a session
//! ("keep me signed in").
//!
//! A [`RememberMe`] issues a token after a password login
//! ([`issue`](RememberMe::issue)), trades a presented token for a fresh
//! session and a replacement token ([`log_in`](RememberMe::log_in)), and
//! forgets one device's token ([`forget`](RememberMe::forget)) or every
//! token of a user ([`forget_all`](RememberMe::forget_all)). How a
//! framework wires it is in the [framework guide](crate::framework#remember-me).
//!
//! # The token
//!
//! `rm1.` followed by 64 characters of base64url (68 in all): a 16-byte
//! *selector* and a 32-byte *verifier*, both from the operating system-
//! seeded CSPRNG. [`RememberToken`] is what is issued; a presented token is
//! parsed strictly (length first, then the prefix, then the alphabet) and
//! refused with a [`RememberTokenError`] before any store is asked. `Debug`
//! output, errors and events name a token by the [`Fingerprint`] of its
//! store key only.
//!
//! # Storage
//!
//! Tokens are ordinary [`Record`](crate::store::Record)s in any
//! [`Store`]: a [`MemoryStore`](crate::MemoryStore), a
//! [`FileStore`](crate::FileStore), Redis, the store of a
//! [`StoreManager`](crate::StoreManager) or the revocation store of a
//! [`TicketManager`](crate::TicketManager). The store trait is used as it
//! is.
//!
//! | key | record |
//! |---|---|
//! | SHA-256(`latchkey/v1/remember-me\0` ‖ selector) | a token: `Live`, bound to **no user** (`user: None`), its state as the data (below); `expires_at` the series' deadline |
//! | the same | a forgotten token: `Ended { reason: logout, at }` |
//! | SHA-256(`latchkey/v1/remember-cutoff\0` ‖ user) | the user's cutoff: `Ended { reason, at }`; tokens of a series started before `at` are refused |
//!
//! A token's data is one JSON object:
//!
//! ```json
//! {"kind":"latchkey.remember-me/1","user":"alice",
//!  "verifier":"<64 hex: SHA-256(latchkey/v1/remember-verifier\0 ‖ verifier)>",
//!  "authenticated_at":1800000000000,"issued_at":1800000000000,"expires_at":1802592000000,
//!  "used":{"at":…,"grace_until":…,"successor":"<64 hex: the replacement's key>",
//!          "sealed":"<64 base64url: the replacement, sealed with this token>"}}
//! ```
//!
//! The store never sees the selector or the verifier: the key is a hash of
//! the selector under a label of its own (so it can never equal a session's
//! key, SHA-256 of 32 bytes, a ticket's random key, or the ticket
//! manager's `latchkey/v1/user-cutoff\0` keys), and the record keeps a hash
//! of the verifier, compared in constant time. A record bound to no user
//! is never listed by [`Store::sessions_of`], so a manager sharing the
//! store never shows, counts or ends it as a session, and no session token
//! hashes to its key. The `sealed` replacement is the only secret-derived
//! value at rest: it opens only with the used token, which the store never
//! holds (as a rotated session's sealed successor).
//!
//! Each token record, unused or used, is one live record of the store: it
//! counts against a [`MemoryStore`](crate::MemoryStore)'s capacity limit,
//! and is purged with the rest once its series' deadline has passed
//! ([`Store::purge_expired`]). A series used daily for 30 days leaves 30
//! small records until then.
//!
//! Why not an `Ended` record for a used token: reuse of a used token must
//! end every token and session of *its user*, and an `Ended` record has no
//! room to say whose it was. A used token keeps its user, verifier digest
//! and deadline, so it is recognised, and reuse answered, until the series
//! would have expired.
//!
//! # Single use, one series
//!
//! [`log_in`](RememberMe::log_in) consumes the token with one versioned
//! `replace` of its record (unused → used), after inserting the
//! replacement's record. Of two requests presenting the same token, exactly
//! one wins that write; the other reads the used record. The replacement
//! continues the **series**: same user, same password-login time, same
//! deadline. The deadline is absolute: the password login plus
//! [`Policy::remember_me_lifetime`](crate::Policy::remember_me_lifetime)
//! (30 days by default); use does not extend it, so the user types the
//! password again at least that often. If creating the session fails after
//! the token was consumed, the token is put back as it was and the
//! replacement removed, so the client's cookie still works.
//!
//! # Theft
//!
//! Two things only a copy explains:
//!
//! - a **used token presented again** after the grace window
//!   ([`TheftKind::Reused`]): one of two holders used it, and the other
//!   has come back with it;
//! - a **wrong verifier for a known selector** ([`TheftKind::WrongVerifier`]):
//!   someone has part of a token, or is forging.
//!
//! Either ends every remember-me token of the user (a cutoff covering
//! every token issued up to that instant) and every session of the user
//! ([`SessionManager::terminate_all`]`(user, None)`), emits
//! [`Event::RememberMeTheft`] naming the
//! token and the user's sessions by fingerprint, and fails with
//! [`RememberError::Theft`] saying which and what was ended. For a
//! [`TicketManager`](crate::TicketManager), `terminate_all` writes the
//! ticket cutoff and cannot count (`sessions_ended` is `None`); without a
//! revocation store it cannot end tickets at all, and the error carries
//! that failure ([`Error::RevocationNotConfigured`]) as its source: the
//! remember-me tokens are still ended.
//!
//! Once the cutoff is written, the series' tokens are refused as
//! [`RememberError::Revoked`] without a second alarm, so whoever holds a
//! stolen copy cannot log the user out everywhere again and again.
//!
//! # The race: two tabs
//!
//! A browser restoring two tabs sends the same token twice at once. The
//! first request wins; the second finds the token used a moment ago. Within
//! the policy's [`rotation_grace`](crate::Policy::rotation_grace) (30 s by
//! default) after the use, that is no alarm: the second request gets
//! [`RememberError::Superseded`], which carries the **replacement** the
//! first request received (if it is still unused), and is not a login. The
//! framework sets the remember-me cookie to it again (the browser usually
//! has it already from the first response) and answers the request as
//! anonymous, or redirects it to itself so that it logs in with the
//! replacement. After the window, the same presentation is theft.
//!
//! The price: a copy of the token presented within the window after the
//! legitimate use is handed the replacement too, and the theft is noticed
//! only at the next reuse. The same window exists for rotated sessions
//! ([`crate::lifecycle`]). Handing out nothing instead would turn every
//! lost response (the replacement never reached the browser) into a false
//! theft alarm at the next visit.
//!
//! # The session a token creates
//!
//! [`log_in`](RememberMe::log_in) calls [`SessionManager::create`] with the
//! user, one data entry ([`REMEMBERED_KEY`]: when the series' password
//! login was, and which token made the session), and that password login
//! as the session's authentication time
//! ([`NewSession::with_authenticated_at`]): its
//! [`authenticated_at`](crate::Session::authenticated_at) is **not** the
//! remember-me login, so a step-up check
//! ([`Session::require_recent_auth_at`](crate::Session::require_recent_auth_at))
//! asks for the password again once that login is old. The session cookie
//! of such a session is chosen as
//! for any session (see [`RememberMe::set_cookie`]).

use std::sync::Arc;

use serde::Serialize;

use crate::clock::{Clock, SystemClock, Timestamp};
use crate::cookie::{CookieConfig, CookieError, CookieLifetime};
use crate::error::Error;
use crate::event::{Event, Observer};
use crate::id::{Fingerprint, StoreKey};
use crate::manager::SessionManager;
use crate::policy::Policy;
use crate::session::{Issued, NewSession};
use crate::store::{EndReason, Store, StoreError};

mod record;
mod token;

use self::record::{Sealed, Stored, TokenState, Used};
pub use self::token::{RememberToken, RememberTokenError};
use self::token::{Secret, cutoff_key};

/// How many times `log_in` and `forget` start over after losing a race
/// for a record.
const MAX_RETRIES: usize = 8;

/// How many replacements `forget` follows from a used token to the live
/// end of its series.
const MAX_SERIES_WALK: usize = 64;

/// The session data key under which a session created by
/// [`RememberMe::log_in`] records that it was: the password-login time of
/// the remember-me series and the token's fingerprint. Reserved (it starts
/// with `latchkey.`): do not write it.
///
/// # Example
/// ```
/// assert_eq!(latchkey::REMEMBERED_KEY, "latchkey.remembered");
/// ```
pub const REMEMBERED_KEY: &str = "latchkey.remembered";

/// What [`REMEMBERED_KEY`] holds.
#[derive(Serialize)]
struct RememberedMark {
    /// The password login the series started from.
    authenticated_at: Timestamp,
    /// The token that created the session.
    token: Fingerprint,
}

/// What gave a stolen remember-me token away.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TheftKind {
    /// A token already used was presented again after the grace window.
    Reused,
    /// A known selector came with a wrong verifier.
    WrongVerifier,
}

impl TheftKind {
    /// A short stable code for logs and metrics.
    ///
    /// # Example
    /// ```
    /// use latchkey::TheftKind;
    /// assert_eq!(TheftKind::Reused.as_str(), "reused");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            TheftKind::Reused => "reused",
            TheftKind::WrongVerifier => "wrong_verifier",
        }
    }
}

impl std::fmt::Display for TheftKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TheftKind::Reused => "was used again after it had been used up",
            TheftKind::WrongVerifier => "came with a wrong verifier",
        })
    }
}

/// Why a remember-me token was refused. Carried by [`Error::RememberMe`].
///
/// Every variant means the request has no usable remember-me token: answer
/// it as anonymous and, if [`clears_cookie`](Self::clears_cookie), clear the
/// remember-me cookie. None quotes the token.
///
/// # Example
/// ```
/// use latchkey::RememberError;
/// let e = RememberError::Unknown;
/// assert_eq!(e.reason(), "remember_unknown");
/// assert!(e.clears_cookie());
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RememberError {
    /// Not a well-formed remember-me token; no store was asked.
    #[error("malformed remember-me token")]
    Malformed(#[source] RememberTokenError),
    /// No token has this selector: never issued here, or expired and
    /// purged.
    #[error("unknown remember-me token")]
    Unknown,
    /// The token's series reached its deadline.
    #[error("remember-me token expired at {deadline}")]
    Expired {
        /// When it expired.
        deadline: Timestamp,
    },
    /// The token was ended: forgotten on its device
    /// ([`EndReason::Logout`]), or issued before its user's cutoff
    /// ([`EndReason::LogoutAll`] from [`RememberMe::forget_all`],
    /// [`EndReason::ReuseDetected`] after a theft).
    #[error("remember-me token was revoked at {at} ({reason})")]
    Revoked {
        /// Why.
        reason: EndReason,
        /// When.
        at: Timestamp,
    },
    /// The token was used moments ago by another request (another tab),
    /// within the grace window: no alarm, and no login. `replacement` is
    /// the token that request received, while it is unused: set the
    /// remember-me cookie to it and answer as anonymous (or redirect the
    /// request to itself). Do not clear the cookie.
    #[error("remember-me token was used moments ago by another request")]
    Superseded {
        /// The replacement the winning request received, if still unused.
        replacement: Option<RememberToken>,
    },
    /// The token was presented as only a stolen copy explains: every
    /// remember-me token and every session of its user was ended, and
    /// [`Event::RememberMeTheft`] emitted.
    /// If ending them failed in part, the failure is the
    /// [`source`](std::error::Error::source).
    #[error("remember-me token {kind}; treated as stolen: {}", theft_detail(*.sessions_ended, .incomplete.is_some()))]
    Theft {
        /// What gave it away.
        kind: TheftKind,
        /// What [`SessionManager::terminate_all`] reported: how many
        /// sessions ended, or `None` where the manager cannot count
        /// (tickets) or the call failed.
        sessions_ended: Option<usize>,
        /// Why ending the tokens or the sessions did not complete, if it
        /// did not.
        #[source]
        incomplete: Option<Box<Error>>,
    },
}

/// The rest of [`RememberError::Theft`]'s sentence.
fn theft_detail(sessions_ended: Option<usize>, incomplete: bool) -> String {
    if incomplete {
        return "ending the user's remember-me tokens and sessions did not complete".to_owned();
    }
    match sessions_ended {
        Some(n) => format!("every remember-me token of the user and {n} session(s) were ended"),
        None => "every remember-me token and session of the user was ended".to_owned(),
    }
}

impl RememberError {
    /// A short stable code for logs and metrics, e.g. `remember_theft`.
    ///
    /// # Example
    /// ```
    /// use latchkey::{Error, RememberError, Timestamp};
    /// let e = Error::RememberMe(RememberError::Expired { deadline: Timestamp::UNIX_EPOCH });
    /// assert_eq!(e.reason(), "remember_expired");
    /// ```
    pub fn reason(&self) -> &'static str {
        match self {
            RememberError::Malformed(_) => "remember_malformed",
            RememberError::Unknown => "remember_unknown",
            RememberError::Expired { .. } => "remember_expired",
            RememberError::Revoked { .. } => "remember_revoked",
            RememberError::Superseded { .. } => "remember_superseded",
            RememberError::Theft { .. } => "remember_theft",
        }
    }

    /// Whether the framework should clear the remember-me cookie: yes for
    /// every refusal but [`RememberError::Superseded`], whose browser has
    /// (or is being sent) the replacement.
    ///
    /// # Example
    /// ```
    /// use latchkey::RememberError;
    /// assert!(RememberError::Unknown.clears_cookie());
    /// assert!(!RememberError::Superseded { replacement: None }.clears_cookie());
    /// ```
    pub fn clears_cookie(&self) -> bool {
        !matches!(self, RememberError::Superseded { .. })
    }
}

impl From<RememberError> for Error {
    fn from(e: RememberError) -> Error {
        Error::RememberMe(e)
    }
}

/// Remember-me tokens kept in a [`Store`], under a [`Policy`]'s
/// [`remember_me_lifetime`](Policy::remember_me_lifetime).
///
/// Build one per process beside the session manager, usually over the
/// manager's store (or a ticket manager's revocation store), and share it:
/// it is `Send + Sync`. Every call has an `*_at(now)` twin for tests.
///
/// # Example
/// ```
/// use std::{sync::Arc, time::Duration};
/// use latchkey::{Error, ManualClock, MemoryStore, RememberError, RememberMe, SessionManager, StoreManager};
///
/// let clock = Arc::new(ManualClock::starting_now());
/// let store = Arc::new(MemoryStore::new().with_clock(clock.clone()));
/// let manager = StoreManager::new(store.clone()).with_clock(clock.clone());
/// let remember = RememberMe::new(store, manager.policy().clone()).with_clock(clock.clone());
///
/// // After a password login with "keep me signed in" ticked:
/// let token = remember.issue("alice")?;
///
/// // Days later the browser comes back with no session, only the token:
/// let (issued, replacement) = remember.log_in(&manager, token.token())?;
/// assert_eq!(manager.load(issued.token())?.session.user(), Some("alice"));
///
/// // The token was single-use: the replacement goes in the cookie.
/// assert_ne!(replacement, token);
/// remember.log_in(&manager, replacement.token())?;
///
/// // The first token, back once more after the grace window, can only
/// // be a copy:
/// clock.advance(Duration::from_secs(60));
/// let err = remember.log_in(&manager, token.token()).unwrap_err();
/// assert!(matches!(err, Error::RememberMe(RememberError::Theft { .. })));
/// assert!(manager.load(issued.token()).is_err()); // every session ended
/// # Ok::<(), Error>(())
/// ```
#[derive(Debug)]
pub struct RememberMe {
    store: Arc<dyn Store>,
    policy: Policy,
    clock: Arc<dyn Clock>,
    observer: Option<Arc<dyn Observer>>,
    cookie: CookieConfig,
}

impl RememberMe {
    /// Remember-me tokens in `store`, with `policy`'s lifetime and grace
    /// window, the system clock, and the cookie `__Host-remember`.
    ///
    /// Give it the session manager's store (server-side sessions) or its
    /// revocation store (tickets), or a store of its own: the keys never
    /// meet (see the module docs on storage).
    ///
    /// # Example
    /// ```
    /// use std::sync::Arc;
    /// use latchkey::{MemoryStore, Policy, RememberMe};
    /// let remember = RememberMe::new(Arc::new(MemoryStore::new()), Policy::default());
    /// assert_eq!(remember.cookie().name(), "__Host-remember");
    /// ```
    pub fn new(store: Arc<dyn Store>, policy: Policy) -> RememberMe {
        let cookie = CookieConfig::builder()
            .with_name("__Host-remember")
            .with_lifetime(CookieLifetime::UntilAbsoluteDeadline)
            .build()
            // The name is a valid `__Host-` name and the rest the defaults,
            // so this never fails; the fallback only avoids a panic path.
            .unwrap_or_else(|_| {
                CookieConfig::default().with_lifetime(CookieLifetime::UntilAbsoluteDeadline)
            });
        RememberMe {
            store,
            policy,
            clock: Arc::new(SystemClock),
            observer: None,
            cookie,
        }
    }

    /// Takes time from `clock` (the session manager's, in tests).
    ///
    /// # Example
    /// ```
    /// use std::sync::Arc;
    /// use latchkey::{ManualClock, MemoryStore, Policy, RememberMe, Timestamp};
    /// let t0 = Timestamp::from_unix_millis(1_800_000_000_000);
    /// let remember = RememberMe::new(Arc::new(MemoryStore::new()), Policy::default())
    ///     .with_clock(Arc::new(ManualClock::new(t0)));
    /// assert_eq!(remember.issue("alice")?.issued_at(), t0);
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> RememberMe {
        self.clock = clock;
        self
    }

    /// Reports thefts to `observer`
    /// ([`Event::RememberMeTheft`]).
    ///
    /// # Example
    /// ```
    /// use std::sync::Arc;
    /// use latchkey::{Event, MemoryStore, Observer, Policy, RememberMe};
    /// #[derive(Debug)]
    /// struct Log;
    /// impl Observer for Log {
    ///     fn on_event(&self, e: &Event) { eprintln!("{e}"); }
    /// }
    /// let remember = RememberMe::new(Arc::new(MemoryStore::new()), Policy::default())
    ///     .with_observer(Arc::new(Log));
    /// # let _ = remember;
    /// ```
    #[must_use]
    pub fn with_observer(mut self, observer: Arc<dyn Observer>) -> RememberMe {
        self.observer = Some(observer);
        self
    }

    /// Sends the token in `cookie` instead of `__Host-remember`: its name,
    /// scope and attributes, made persistent (a remember-me cookie always
    /// carries `Max-Age`: the token's remaining lifetime). Give it a name
    /// other than the session cookie's.
    ///
    /// # Example
    /// ```
    /// use std::sync::Arc;
    /// use latchkey::{CookieConfig, CookieLifetime, MemoryStore, Policy, RememberMe, SameSite};
    /// let cookie = CookieConfig::builder()
    ///     .with_name("__Host-keep")
    ///     .with_same_site(SameSite::Strict)
    ///     .build()?;
    /// let remember = RememberMe::new(Arc::new(MemoryStore::new()), Policy::default())
    ///     .with_cookie(cookie);
    /// assert_eq!(remember.cookie().name(), "__Host-keep");
    /// assert_eq!(remember.cookie().lifetime(), CookieLifetime::UntilAbsoluteDeadline);
    /// # Ok::<(), latchkey::CookieError>(())
    /// ```
    #[must_use]
    pub fn with_cookie(mut self, cookie: CookieConfig) -> RememberMe {
        self.cookie = cookie.with_lifetime(CookieLifetime::UntilAbsoluteDeadline);
        self
    }

    /// Whether its calls may block on I/O: as its store says
    /// ([`Store::may_block`]). Async middleware runs them where it runs a
    /// manager whose calls may block.
    ///
    /// # Example
    /// ```
    /// use std::sync::Arc;
    /// use latchkey::{MemoryStore, Policy, RememberMe};
    /// let remember = RememberMe::new(Arc::new(MemoryStore::new()), Policy::default());
    /// assert!(!remember.may_block());
    /// ```
    pub fn may_block(&self) -> bool {
        self.store.may_block()
    }

    /// The policy: its [`remember_me_lifetime`](Policy::remember_me_lifetime)
    /// bounds every series, its [`rotation_grace`](Policy::rotation_grace)
    /// is the two-tab window, and its
    /// [`max_label_bytes`](Policy::max_label_bytes) bounds user names.
    ///
    /// # Example
    /// ```
    /// use std::sync::Arc;
    /// use latchkey::{MemoryStore, Policy, RememberMe};
    /// let remember = RememberMe::new(Arc::new(MemoryStore::new()), Policy::nist_aal1());
    /// assert_eq!(remember.policy(), &Policy::nist_aal1());
    /// ```
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The remember-me cookie: find the token with
    /// [`find_token`](CookieConfig::find_token), delete the cookie with
    /// [`clear_cookie`](CookieConfig::clear_cookie); set it with
    /// [`RememberMe::set_cookie`].
    ///
    /// # Example
    /// ```
    /// use std::sync::Arc;
    /// use latchkey::{MemoryStore, Policy, RememberMe};
    /// let remember = RememberMe::new(Arc::new(MemoryStore::new()), Policy::default());
    /// let header = "__Host-session=abc; __Host-remember=rm1.xyz";
    /// assert_eq!(remember.cookie().find_token(header)?, Some("rm1.xyz"));
    /// assert!(remember.cookie().clear_cookie().starts_with("__Host-remember=; Max-Age=0"));
    /// # Ok::<(), latchkey::CookieError>(())
    /// ```
    pub fn cookie(&self) -> &CookieConfig {
        &self.cookie
    }

    /// The `Set-Cookie` value carrying `token`: the remember-me cookie,
    /// always persistent, `Max-Age` the token's remaining lifetime from
    /// its [`issued_at`](RememberToken::issued_at) (at most 400 days).
    ///
    /// The session cookie is separate and chosen per session: a
    /// browser-session cookie ([`CookieLifetime::BrowserSession`], the
    /// default and the usual choice beside a remember-me token, since the
    /// token brings the user back), or one that persists until the
    /// session's absolute deadline
    /// ([`CookieConfig::with_lifetime`]`(`[`CookieLifetime::UntilAbsoluteDeadline`]`)`).
    ///
    /// # Errors
    /// As for [`CookieConfig::set_cookie_at`]; never for a token this
    /// issued.
    ///
    /// # Example
    /// ```
    /// use std::sync::Arc;
    /// use latchkey::{CookieConfig, CookieLifetime, MemoryStore, Policy, RememberMe, Timestamp};
    /// let remember = RememberMe::new(Arc::new(MemoryStore::new()), Policy::default());
    /// let token = remember.issue_at("alice", Timestamp::from_unix_millis(0))?;
    /// let set_cookie = remember.set_cookie(&token)?;
    /// assert!(set_cookie.starts_with("__Host-remember=rm1."));
    /// assert!(set_cookie.contains("; Max-Age=2592000; Path=/; Secure; HttpOnly; SameSite=Lax"));
    ///
    /// // The session cookie: per session, browser-session or persistent.
    /// let session_cookies = CookieConfig::default();
    /// let keep = session_cookies.clone().with_lifetime(CookieLifetime::UntilAbsoluteDeadline);
    /// assert_eq!(keep.name(), session_cookies.name());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_cookie(&self, token: &RememberToken) -> Result<String, CookieError> {
        self.set_cookie_at(token, token.issued_at)
    }

    /// [`set_cookie`](Self::set_cookie) with `Max-Age` counted from `now`
    /// (to send an older token again, as after
    /// [`RememberError::Superseded`]).
    ///
    /// # Errors
    /// As for [`CookieConfig::set_cookie_at`].
    ///
    /// # Example
    /// ```
    /// use std::{sync::Arc, time::Duration};
    /// use latchkey::{MemoryStore, Policy, RememberMe, Timestamp};
    /// let remember = RememberMe::new(Arc::new(MemoryStore::new()), Policy::default());
    /// let t0 = Timestamp::from_unix_millis(0);
    /// let token = remember.issue_at("alice", t0)?;
    /// let day_later = t0.saturating_add(Duration::from_secs(24 * 3600));
    /// assert!(remember.set_cookie_at(&token, day_later)?.contains("; Max-Age=2505600;"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_cookie_at(
        &self,
        token: &RememberToken,
        now: Timestamp,
    ) -> Result<String, CookieError> {
        let issued = Issued::new(
            token.token.clone(),
            token.fingerprint,
            token.expires_at,
            token.expires_at,
        )
        .with_issued_at(token.issued_at);
        self.cookie.set_cookie_at(&issued, now)
    }

    /// [`issue_at`](Self::issue_at) on this remember-me's clock.
    ///
    /// # Errors
    /// As for [`issue_at`](Self::issue_at).
    ///
    /// # Example
    /// ```
    /// use std::sync::Arc;
    /// use latchkey::{MemoryStore, Policy, RememberMe};
    /// let remember = RememberMe::new(Arc::new(MemoryStore::new()), Policy::default());
    /// assert!(remember.issue("alice")?.token().starts_with("rm1."));
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    pub fn issue(&self, user: &str) -> Result<RememberToken, Error> {
        self.issue_at(user, self.clock.now())
    }

    /// Issues a remember-me token for `user`, starting a series that ends
    /// [`remember_me_lifetime`](Policy::remember_me_lifetime) after `now`.
    /// Call it right after a successful password login (the series counts
    /// as authenticated at `now`), and send the token with
    /// [`set_cookie`](Self::set_cookie).
    ///
    /// # Errors
    /// [`Error::LabelTooLong`] for a user name over the policy's
    /// [`max_label_bytes`](Policy::max_label_bytes); store errors
    /// ([`StoreError::Full`] at capacity).
    ///
    /// # Example
    /// ```
    /// use std::{sync::Arc, time::Duration};
    /// use latchkey::{MemoryStore, Policy, RememberMe, Timestamp};
    /// let policy = Policy::builder().with_remember_me_lifetime(Duration::from_secs(7 * 24 * 3600)).build()?;
    /// let remember = RememberMe::new(Arc::new(MemoryStore::new()), policy);
    /// let now = Timestamp::from_unix_millis(1_800_000_000_000);
    /// let token = remember.issue_at("alice", now)?;
    /// assert_eq!(token.expires_at(), now.saturating_add(Duration::from_secs(7 * 24 * 3600)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn issue_at(&self, user: &str, now: Timestamp) -> Result<RememberToken, Error> {
        let limit = self.policy.max_label_bytes();
        if user.len() > limit {
            return Err(Error::LabelTooLong {
                field: "user name",
                len: user.len(),
                limit,
            });
        }
        let expires_at = now.saturating_add(self.policy.remember_me_lifetime());
        let (secret, key) = self.insert_fresh(|secret| {
            TokenState::fresh(user, secret.verifier_digest(), now, now, expires_at)
        })?;
        Ok(RememberToken {
            token: secret.encode(),
            fingerprint: key.fingerprint(),
            issued_at: now,
            expires_at,
        })
    }

    /// Inserts a fresh token's record. A collision of 128-bit random
    /// selectors does not happen; the retry only keeps a broken RNG from
    /// overwriting a record.
    fn insert_fresh(
        &self,
        state: impl Fn(&Secret) -> TokenState,
    ) -> Result<(Secret, StoreKey), Error> {
        let mut last = StoreError::Exists;
        for _ in 0..3 {
            let secret = Secret::generate();
            let key = secret.key();
            match self.store.insert(&key, &state(&secret).to_record(1)?) {
                Ok(()) => return Ok((secret, key)),
                Err(StoreError::Exists) => last = StoreError::Exists,
                Err(e) => return Err(e.into()),
            }
        }
        Err(last.into())
    }

    /// [`log_in_at`](Self::log_in_at) on this remember-me's clock.
    ///
    /// # Errors
    /// As for [`log_in_at`](Self::log_in_at).
    ///
    /// # Example
    /// ```
    /// use std::sync::Arc;
    /// use latchkey::{MemoryStore, Policy, RememberMe, SessionManager, StoreManager};
    /// let store = Arc::new(MemoryStore::new());
    /// let manager = StoreManager::new(store.clone());
    /// let remember = RememberMe::new(store, Policy::default());
    /// let token = remember.issue("alice")?;
    /// let (issued, _replacement) = remember.log_in(&manager, token.token())?;
    /// assert_eq!(manager.load(issued.token())?.session.user(), Some("alice"));
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    pub fn log_in(
        &self,
        manager: &dyn SessionManager,
        token: &str,
    ) -> Result<(Issued, RememberToken), Error> {
        self.log_in_at(manager, token, self.clock.now())
    }

    /// Trades a presented remember-me token for a new logged-in session of
    /// its user (from `manager`) and a replacement token. Call it for a
    /// request that has no usable session cookie but a remember-me cookie;
    /// send both returned tokens as cookies. The presented token is used
    /// up.
    ///
    /// The session is created by [`SessionManager::create`] on the
    /// manager's clock, with the user and [`REMEMBERED_KEY`] in its data;
    /// its `authenticated_at` is the series' password login, not this one.
    ///
    /// # Errors
    /// [`Error::RememberMe`] with a [`RememberError`]: `Malformed`,
    /// `Unknown`, `Expired`, `Revoked`; `Superseded` for a token used by
    /// another request within the grace window (no login; the replacement
    /// to send again); `Theft` for a used token after the window or a
    /// wrong verifier, after every token and session of the user was
    /// ended. Store errors. Errors of [`SessionManager::create`]
    /// ([`Error::UserLimit`], ...), after which the token works as before.
    ///
    /// # Example
    /// ```
    /// use std::{sync::Arc, time::Duration};
    /// use latchkey::{Error, ManualClock, MemoryStore, Policy, RememberError, RememberMe, StoreManager, Timestamp};
    /// let t0 = Timestamp::from_unix_millis(1_800_000_000_000);
    /// let clock = Arc::new(ManualClock::new(t0));
    /// let store = Arc::new(MemoryStore::new().with_clock(clock.clone()));
    /// let manager = StoreManager::new(store.clone()).with_clock(clock.clone());
    /// let remember = RememberMe::new(store, Policy::default());
    /// let token = remember.issue_at("alice", t0)?;
    ///
    /// let (_session, replacement) = remember.log_in_at(&manager, token.token(), t0)?;
    /// // Another tab, a moment later, with the same token: no login, no
    /// // alarm, and the replacement to send again.
    /// let err = remember.log_in_at(&manager, token.token(), t0).unwrap_err();
    /// assert!(matches!(
    ///     err,
    ///     Error::RememberMe(RememberError::Superseded { replacement: Some(r) }) if r == replacement
    /// ));
    ///
    /// // 31 days on, the series is over.
    /// let later = t0.saturating_add(Duration::from_secs(31 * 24 * 3600));
    /// clock.set(later);
    /// let err = remember.log_in_at(&manager, replacement.token(), later).unwrap_err();
    /// assert_eq!(err.reason(), "remember_expired");
    /// # Ok::<(), Error>(())
    /// ```
    pub fn log_in_at(
        &self,
        manager: &dyn SessionManager,
        token: &str,
        now: Timestamp,
    ) -> Result<(Issued, RememberToken), Error> {
        let secret = Secret::parse(token).map_err(RememberError::Malformed)?;
        let key = secret.key();
        for _ in 0..MAX_RETRIES {
            let Some(record) = self.store.get(&key)? else {
                return Err(RememberError::Unknown.into());
            };
            let state = match record::decode(&key, &record)? {
                Stored::Token(state) => state,
                Stored::Ended { reason, at } => {
                    return Err(RememberError::Revoked { reason, at }.into());
                }
            };
            // A dead series first: it grants nothing, so its reuse raises
            // no alarm (and a copy of a token already answered for cannot
            // log the user out everywhere again).
            self.check_series(&state, now)?;
            if !secret.verifies(&state.verifier.0) {
                return Err(self.theft(manager, &key, &state.user, TheftKind::WrongVerifier, now));
            }
            match &state.used {
                Some(used) if now < used.grace_until => {
                    let replacement = self.replacement(&secret, used, now)?;
                    return Err(RememberError::Superseded { replacement }.into());
                }
                Some(_) => {
                    return Err(self.theft(manager, &key, &state.user, TheftKind::Reused, now));
                }
                None => {}
            }
            match self.consume(manager, &secret, &key, record.version, state, now)? {
                Some(done) => return Ok(done),
                None => continue, // lost the race for the record: read it again
            }
        }
        Err(Error::Conflict)
    }

    /// Refuses a token whose series is past its deadline (the stored one,
    /// or the current lifetime's, whichever is earlier: shortening the
    /// lifetime shortens live series too) or started before its user's
    /// cutoff.
    fn check_series(&self, state: &TokenState, now: Timestamp) -> Result<(), Error> {
        let deadline = state.expires_at.min(
            state
                .authenticated_at
                .saturating_add(self.policy.remember_me_lifetime()),
        );
        if now >= deadline {
            return Err(RememberError::Expired { deadline }.into());
        }
        if let Some((reason, at)) = record::read_cutoff(&*self.store, &cutoff_key(&state.user))?
            && state.authenticated_at < at
        {
            return Err(RememberError::Revoked { reason, at }.into());
        }
        Ok(())
    }

    /// The replacement a used token led to, for a request that raced its
    /// use: only while that replacement is itself unused and alive.
    fn replacement(
        &self,
        secret: &Secret,
        used: &Used,
        now: Timestamp,
    ) -> Result<Option<RememberToken>, Error> {
        let next = secret.open(&used.sealed.0);
        // A sealed value that does not open to the recorded successor is
        // not handed out, whatever it holds.
        if next.key() != used.successor {
            return Ok(None);
        }
        let Some(record) = self.store.get(&used.successor)? else {
            return Ok(None);
        };
        match record::decode(&used.successor, &record)? {
            Stored::Token(state)
                if state.used.is_none()
                    && now < state.expires_at
                    && next.verifies(&state.verifier.0) =>
            {
                Ok(Some(RememberToken {
                    token: next.encode(),
                    fingerprint: used.successor.fingerprint(),
                    issued_at: state.issued_at,
                    expires_at: state.expires_at,
                }))
            }
            _ => Ok(None),
        }
    }

    /// Uses the unused token at `version`: writes the replacement, marks
    /// the token used (the one versioned write two racing requests contend
    /// for), creates the session. `Ok(None)` if another request changed
    /// the record first. If the session cannot be created, the token is
    /// put back unused and the replacement removed.
    fn consume(
        &self,
        manager: &dyn SessionManager,
        secret: &Secret,
        key: &StoreKey,
        version: u64,
        state: TokenState,
        now: Timestamp,
    ) -> Result<Option<(Issued, RememberToken)>, Error> {
        // Everything that can fail without side effects goes first.
        let new_session = NewSession::new()
            .with_user(&*state.user)
            .with_authenticated_at(state.authenticated_at)
            .with_value(
                REMEMBERED_KEY,
                &RememberedMark {
                    authenticated_at: state.authenticated_at,
                    token: key.fingerprint(),
                },
            )?;
        let (next, next_key) = self.insert_fresh(|next| TokenState {
            verifier: record::Digest(next.verifier_digest()),
            issued_at: now,
            used: None,
            ..state.clone()
        })?;
        let used = TokenState {
            used: Some(Used {
                at: now,
                grace_until: now.saturating_add(self.policy.rotation_grace()),
                successor: next_key,
                sealed: Sealed(secret.seal(&next)),
            }),
            ..state.clone()
        };
        match self
            .store
            .replace(key, version, &used.to_record(version + 1)?)
        {
            Ok(()) => {}
            Err(StoreError::Conflict | StoreError::NotFound) => {
                // Another request used (or forgot) the token first. Best
                // effort: an orphaned replacement nobody holds expires
                // with its series.
                let _ = self.store.remove(&next_key);
                return Ok(None);
            }
            // The write may have landed: keep the replacement, so that a
            // retry within the grace window is handed it.
            Err(e @ StoreError::OutcomeUnknown(_)) => return Err(e.into()),
            Err(e) => {
                let _ = self.store.remove(&next_key);
                return Err(e.into());
            }
        }
        match manager.create(new_session) {
            Ok(issued) => Ok(Some((
                issued,
                RememberToken {
                    token: next.encode(),
                    fingerprint: next_key.fingerprint(),
                    issued_at: now,
                    expires_at: state.expires_at,
                },
            ))),
            Err(e) => {
                // Undo, so the client's cookie still works: the token back
                // to unused (only if no one has written it since), then
                // the replacement gone. Best effort: the error the caller
                // needs is the manager's.
                if let Ok(restored) = state.to_record(version + 2) {
                    let _ = self.store.replace(key, version + 1, &restored);
                }
                let _ = self.store.remove(&next_key);
                Err(e)
            }
        }
    }

    /// Answers a stolen token: cuts off every remember-me token of `user`
    /// issued until now, ends every session of `user`, reports it, and
    /// returns the error that says so.
    fn theft(
        &self,
        manager: &dyn SessionManager,
        key: &StoreKey,
        user: &str,
        kind: TheftKind,
        now: Timestamp,
    ) -> Error {
        // One millisecond on: the cutoff refuses series started *before*
        // it, and this one must cover every token issued up to and
        // including now.
        let cut = self.cut_off(
            user,
            EndReason::ReuseDetected,
            now.saturating_add(ONE_MS),
            now,
        );
        // Name the sessions before they end: the user's live records in
        // this store, which are the sessions when this is the session
        // manager's store (a ticket manager's tickets are not listed).
        let mut sessions: Vec<Fingerprint> = self
            .store
            .sessions_of(user)
            .map(|found| {
                found
                    .into_iter()
                    .filter(|(_, r)| r.user() == Some(user) && r.expires_at > now)
                    .map(|(k, _)| k.fingerprint())
                    .collect()
            })
            .unwrap_or_default();
        sessions.sort_unstable();
        let ended = manager.terminate_all(user, None);
        let (sessions_ended, incomplete) = match (cut, ended) {
            (Ok(()), Ok(n)) => (n, None),
            (Err(e), Ok(n)) => (n, Some(e)),
            (Ok(()), Err(e)) => (None, Some(e)),
            // The first failure: the tokens, which this type answers for.
            (Err(e), Err(_)) => (None, Some(e)),
        };
        if let Some(observer) = &self.observer {
            observer.on_event(&Event::RememberMeTheft {
                user: user.to_owned(),
                token: key.fingerprint(),
                kind,
                sessions,
                sessions_ended,
                contained: incomplete.is_none(),
            });
        }
        RememberError::Theft {
            kind,
            sessions_ended,
            incomplete: incomplete.map(Box::new),
        }
        .into()
    }

    /// Writes `user`'s cutoff at `at`, kept as long as a token issued
    /// before it could live.
    fn cut_off(
        &self,
        user: &str,
        reason: EndReason,
        at: Timestamp,
        now: Timestamp,
    ) -> Result<(), Error> {
        let keep_until = now
            .max(at)
            .saturating_add(self.policy.remember_me_lifetime());
        record::write_cutoff(&*self.store, &cutoff_key(user), reason, at, keep_until)
    }

    /// [`forget_at`](Self::forget_at) on this remember-me's clock.
    ///
    /// # Errors
    /// As for [`forget_at`](Self::forget_at).
    ///
    /// # Example
    /// ```
    /// use std::sync::Arc;
    /// use latchkey::{MemoryStore, Policy, RememberMe};
    /// let remember = RememberMe::new(Arc::new(MemoryStore::new()), Policy::default());
    /// let token = remember.issue("alice")?;
    /// assert!(remember.forget(token.token())?);
    /// assert!(!remember.forget(token.token())?);
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    pub fn forget(&self, token: &str) -> Result<bool, Error> {
        self.forget_at(token, self.clock.now())
    }

    /// Forgets this device's token: call it at logout with the
    /// remember-me cookie's value, and clear that cookie. Ends the live
    /// token of the presented token's series: the token itself, or, if it
    /// was used, the replacement it led to (the device's newer cookie).
    /// Returns whether a token was ended.
    ///
    /// Never raises the theft alarm (a logout takes access away, it grants
    /// none): a wrong verifier, an unknown or already ended token is
    /// `Ok(false)`.
    ///
    /// # Errors
    /// [`RememberError::Malformed`] for a malformed token; store errors.
    ///
    /// # Example
    /// ```
    /// use std::sync::Arc;
    /// use latchkey::{Error, EndReason, MemoryStore, Policy, RememberError, RememberMe, StoreManager, Timestamp};
    /// let store = Arc::new(MemoryStore::new());
    /// let manager = StoreManager::new(store.clone());
    /// let remember = RememberMe::new(store, Policy::default());
    /// let now = Timestamp::from_unix_millis(1_800_000_000_000);
    /// let token = remember.issue_at("alice", now)?;
    /// assert!(remember.forget_at(token.token(), now)?);
    /// let err = remember.log_in_at(&manager, token.token(), now).unwrap_err();
    /// assert!(matches!(err, Error::RememberMe(RememberError::Revoked { reason: EndReason::Logout, .. })));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn forget_at(&self, token: &str, now: Timestamp) -> Result<bool, Error> {
        let secret = Secret::parse(token).map_err(RememberError::Malformed)?;
        let first = secret.key();
        'retry: for _ in 0..MAX_RETRIES {
            let mut key = first;
            for step in 0..MAX_SERIES_WALK {
                let Some(record) = self.store.get(&key)? else {
                    return Ok(false);
                };
                let state = match record::decode(&key, &record)? {
                    Stored::Token(state) => state,
                    Stored::Ended { .. } => return Ok(false),
                };
                // Only the presented token is checked: the others are
                // reached through it.
                if step == 0 && !secret.verifies(&state.verifier.0) {
                    return Ok(false);
                }
                if let Some(used) = &state.used {
                    key = used.successor;
                    continue;
                }
                let ended = record::ended(record.version + 1, record.expires_at, now);
                match self.store.replace(&key, record.version, &ended) {
                    Ok(()) => return Ok(true),
                    // Used or ended meanwhile: walk again.
                    Err(StoreError::Conflict | StoreError::NotFound) => continue 'retry,
                    Err(e) => return Err(e.into()),
                }
            }
            return Ok(false);
        }
        Err(Error::Conflict)
    }

    /// [`forget_all_at`](Self::forget_all_at) on this remember-me's clock.
    ///
    /// # Errors
    /// As for [`forget_all_at`](Self::forget_all_at).
    ///
    /// # Example
    /// ```
    /// use std::sync::Arc;
    /// use latchkey::{MemoryStore, Policy, RememberMe};
    /// let remember = RememberMe::new(Arc::new(MemoryStore::new()), Policy::default());
    /// remember.forget_all("alice")?;
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    pub fn forget_all(&self, user: &str) -> Result<(), Error> {
        self.forget_all_at(user, self.clock.now())
    }

    /// Ends every remember-me token of `user` whose series started before
    /// `now` ("log out everywhere", a password change, a disabled
    /// account), with one cutoff record; it does not end sessions (that is
    /// [`SessionManager::terminate_all`]). A token issued at `now` itself,
    /// or later, is not affected, so a request may forget all and then
    /// issue a token for the device it runs on; a password login on another
    /// device in the same millisecond counts as one just after, as it would
    /// a moment later.
    ///
    /// # Errors
    /// Store errors; [`Error::Conflict`] if the cutoff record kept changing
    /// under 8 attempts.
    ///
    /// # Example
    /// ```
    /// use std::{sync::Arc, time::Duration};
    /// use latchkey::{Error, MemoryStore, Policy, RememberError, RememberMe, StoreManager, Timestamp};
    /// let store = Arc::new(MemoryStore::new());
    /// let manager = StoreManager::new(store.clone());
    /// let remember = RememberMe::new(store, Policy::default());
    /// let t0 = Timestamp::from_unix_millis(1_800_000_000_000);
    /// let laptop = remember.issue_at("alice", t0)?;
    /// let t1 = t0.saturating_add(Duration::from_secs(60));
    /// remember.forget_all_at("alice", t1)?;
    /// let phone = remember.issue_at("alice", t1)?; // issued at the cutoff: kept
    /// assert_eq!(remember.log_in_at(&manager, laptop.token(), t1).unwrap_err().reason(), "remember_revoked");
    /// assert!(remember.log_in_at(&manager, phone.token(), t1).is_ok());
    /// # Ok::<(), Error>(())
    /// ```
    pub fn forget_all_at(&self, user: &str, now: Timestamp) -> Result<(), Error> {
        self.cut_off(user, EndReason::LogoutAll, now, now)
    }
}

/// One millisecond, the resolution of a [`Timestamp`].
const ONE_MS: std::time::Duration = std::time::Duration::from_millis(1);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::manager::StoreManager;
    use crate::store::memory::MemoryStore;

    const T0: Timestamp = Timestamp::from_unix_millis(1_800_000_000_000);

    fn setup(policy: Policy) -> (StoreManager<Arc<MemoryStore>>, RememberMe) {
        let clock = Arc::new(ManualClock::new(T0));
        let store = Arc::new(MemoryStore::new().with_clock(clock.clone()));
        let manager = StoreManager::new(store.clone())
            .with_policy(policy)
            .with_clock(clock.clone());
        let remember = RememberMe::new(store, Policy::default()).with_clock(clock);
        (manager, remember)
    }

    #[test]
    fn a_failed_session_create_leaves_the_token_usable() {
        // A manager that refuses a second session of the user.
        let policy = Policy::builder()
            .with_max_sessions_per_user(Some(1), crate::policy::UserLimitAction::Refuse)
            .build()
            .unwrap();
        let (manager, remember) = setup(policy);
        manager
            .create(NewSession::new().with_user("alice"))
            .unwrap();
        let token = remember.issue_at("alice", T0).unwrap();
        let err = remember.log_in_at(&manager, token.token(), T0).unwrap_err();
        assert!(matches!(err, Error::UserLimit { limit: 1 }), "{err}");
        // Not used up: once the place is free it works, with no alarm,
        // however long after the failed attempt.
        manager.terminate_all("alice", None).unwrap();
        let later = T0.saturating_add(std::time::Duration::from_secs(3600));
        assert!(remember.log_in_at(&manager, token.token(), later).is_ok());
    }

    #[test]
    fn the_session_records_the_series_password_time() {
        let (manager, remember) = setup(Policy::default());
        let token = remember.issue_at("alice", T0).unwrap();
        let (issued, _) = remember.log_in_at(&manager, token.token(), T0).unwrap();
        let mut session = manager.load(issued.token()).unwrap().session;
        assert_eq!(session.authenticated_at(), Some(T0));
        // A real login later stamps a newer time.
        let later = T0.saturating_add(std::time::Duration::from_secs(60));
        manager.login_at(&mut session, "alice", later).unwrap();
        assert_eq!(session.authenticated_at(), Some(later));
    }

    #[test]
    fn theft_errors_read_as_a_chain() {
        let e = Error::RememberMe(RememberError::Theft {
            kind: TheftKind::Reused,
            sessions_ended: None,
            incomplete: Some(Box::new(Error::RevocationNotConfigured)),
        });
        let mut chain = e.to_string();
        let mut cur = std::error::Error::source(&e);
        while let Some(c) = cur {
            chain.push_str(": ");
            chain.push_str(&c.to_string());
            cur = c.source();
        }
        assert_eq!(
            chain,
            "remember-me token refused: remember-me token was used again after it had been \
             used up; treated as stolen: ending the user's remember-me tokens and sessions did \
             not complete: ticket revocation is not configured; the ticket stays valid until \
             it expires"
        );
        assert!(e.is_rejection());
        assert!(e.clears_cookie());
        assert_eq!(e.reason(), "remember_theft");
    }
}
