//! The one error type, and how a framework should read it.
//!
//! Every rejection says why, in words an operator can search for, and
//! [`Error::reason`] gives a short stable code for metrics. A framework needs
//! only two questions:
//!
//! - [`Error::is_rejection`]: the request does not carry a usable session.
//!   Answer 401 (or redirect to login) and, if [`Error::clears_cookie`],
//!   clear the cookie.
//! - [`Error::is_backend_failure`]: the session store failed. Answer 503 and
//!   keep the cookie: the session may be perfectly fine.
//!
//! Anything else ([`Error::Conflict`], [`Error::TooLarge`], ...) is a
//! problem with what the application asked for, except
//! [`Error::ReauthenticationRequired`]: the session is fine but the action
//! needs a fresher proof of identity, so ask for the password again
//! (neither a rejection nor a reason to clear the cookie).

use crate::clock::Timestamp;
use crate::id::TokenError;
use crate::remember::RememberError;
use crate::store::{EndReason, StoreError};
use crate::ticket::TicketError;

/// Everything that can go wrong with a session.
///
/// `Display` is a sentence without the cause; `source()` keeps the cause, so
/// an error reporter prints the chain joined by ": ".
///
/// # Example
/// ```
/// use latchkey::{Error, MemoryStore, SessionManager, StoreManager};
///
/// let manager = StoreManager::new(MemoryStore::new());
/// let err = manager.load("not a token").unwrap_err();
/// assert!(err.is_rejection());
/// assert_eq!(err.reason(), "malformed");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The token is not a well-formed session token; no store was asked.
    #[error("malformed session token")]
    Malformed(#[source] TokenError),
    /// No session has this token: it was never issued here, or it ended long
    /// enough ago to be purged. A client-chosen ID is never adopted.
    #[error("unknown session token")]
    Unknown,
    /// The session was unused for longer than the idle timeout.
    #[error("session expired: idle since before {deadline}")]
    IdleExpired {
        /// When the idle deadline passed.
        deadline: Timestamp,
    },
    /// The session reached its absolute lifetime.
    #[error("session expired: absolute lifetime ended at {deadline}")]
    AbsoluteExpired {
        /// When the absolute deadline passed.
        deadline: Timestamp,
    },
    /// The session was ended on purpose: logout, eviction, revocation.
    #[error("session was terminated ({reason})")]
    Terminated {
        /// Who or what ended it.
        reason: EndReason,
    },
    /// A token retired by rotation was presented after the grace window:
    /// a sign that a copy of it is in the wrong hands.
    #[error("session token was reused after rotation{}", if *.successor_revoked { "; its successor was revoked" } else { "" })]
    RotatedTokenReused {
        /// Whether the successor session was ended in response.
        successor_revoked: bool,
    },
    /// The token was retired moments ago by a change of privilege (a login,
    /// another user, or a declared privilege change) and never resolves to
    /// the changed session: the request is anonymous. Within the rotation
    /// grace window this is no alarm (a request that was in flight during
    /// the change), so [`Error::clears_cookie`] is `false`: the response
    /// that made the change has set the new cookie, and a clearing cookie
    /// racing it would log the user out. After the window the same token is
    /// [`Error::RotatedTokenReused`].
    #[error("session token was superseded by a change of privilege")]
    Superseded,
    /// The session changed in the store since this copy was loaded. Reload
    /// and apply the change again (see `StoreManager::update`).
    #[error("session changed since it was loaded (version conflict)")]
    Conflict,
    /// The session's encoded data exceeds the policy's limit.
    #[error("session data is {size} bytes, over the limit of {limit}")]
    TooLarge {
        /// The encoded size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A user name or device label is longer than the policy allows.
    #[error("the session's {field} is {len} bytes, over the limit of {limit}")]
    LabelTooLong {
        /// Which: `"user name"` or `"device label"`.
        field: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// The user already has the most sessions the policy allows, and the
    /// policy refuses new ones.
    #[error("user already has {limit} sessions, the most the policy allows")]
    UserLimit {
        /// The limit.
        limit: usize,
    },
    /// A session data value did not encode or decode as the requested type.
    #[error("session data value `{key}` does not fit the requested type")]
    Data {
        /// The data key.
        key: String,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
    /// The store failed; the session may be fine.
    #[error("session store failed")]
    Store(#[from] StoreError),
    /// The ticket is not a well-formed version-1 ticket; no MAC was computed.
    #[error("malformed session ticket")]
    MalformedTicket(#[source] TicketError),
    /// The ticket's MAC does not verify: it was altered, forged, or signed
    /// with a different key that happens to share the id.
    #[error("session ticket signature does not verify")]
    BadSignature,
    /// The ticket names a key id the key ring does not hold: signed by a key
    /// already retired, or by another deployment.
    #[error("session ticket was signed with unknown key id {key_id}")]
    UnknownKey {
        /// The key id the ticket carries.
        key_id: u32,
    },
    /// The ticket was minted for another purpose (another cookie name or
    /// ticket manager) and is not valid here.
    #[error("session ticket was issued for a different purpose")]
    WrongPurpose,
    /// The ticket would be longer than its cookie can hold; it was not
    /// issued, and nothing was written. Keep less data in a ticket session,
    /// or use server-side sessions.
    #[error("session ticket would be {size} bytes, over the limit of {limit}")]
    TicketTooLarge {
        /// The encoded size it would have.
        size: usize,
        /// The limit: what the cookie's name and attributes leave of its
        /// 4096 bytes (`TicketManager::max_ticket_len`).
        limit: usize,
    },
    /// The manager cannot keep this rule without state it does not have
    /// (stateless tickets cannot count a user's sessions, so a per-user
    /// session cap is refused rather than ignored).
    #[error("{0} is not supported by this manager")]
    Unsupported(&'static str),
    /// Ending a stateless ticket needs revocation state, and the ticket
    /// manager has none: the ticket stays valid until it expires.
    #[error("ticket revocation is not configured; the ticket stays valid until it expires")]
    RevocationNotConfigured,
    /// The action needs a more recent proof of identity than the session
    /// holds ("sudo mode", step-up): ask the user for their password (or
    /// second factor) again, then call
    /// [`reauthenticate`](crate::SessionManager::reauthenticate) and retry.
    /// Returned by [`Session::require_recent_auth_at`](crate::Session::require_recent_auth_at)
    /// and [`SessionManager::require_recent_auth`](crate::SessionManager::require_recent_auth).
    ///
    /// Not a rejection: the session is valid, only not fresh enough for
    /// this action, so the cookie is kept ([`Error::clears_cookie`] is
    /// `false`) and the user stays logged in for everything else.
    ///
    /// # Example
    /// ```
    /// use std::time::Duration;
    /// use latchkey::Error;
    /// let e = Error::ReauthenticationRequired { age: Some(Duration::from_secs(900)), max_age: Duration::from_secs(600) };
    /// assert_eq!(e.reason(), "reauthentication_required");
    /// assert!(!e.is_rejection() && !e.clears_cookie() && !e.is_backend_failure());
    /// ```
    #[error("re-authentication required: {}", reauth_detail(*.age, *.max_age))]
    ReauthenticationRequired {
        /// How long ago the user last authenticated in this session;
        /// `None` if never (an anonymous session: send it to log in, not to
        /// a re-authentication prompt).
        age: Option<std::time::Duration>,
        /// The most the action allows.
        max_age: std::time::Duration,
    },
    /// [`reauthenticate`](crate::SessionManager::reauthenticate) was asked
    /// of a session with no user: there is no one to re-authenticate. An
    /// anonymous session becomes a user's with
    /// [`login`](crate::SessionManager::login). Not a rejection: the
    /// session is as it was.
    #[error("the session has no user to re-authenticate; log in instead")]
    NotAuthenticated,
    /// A remember-me token was refused ([`RememberMe::log_in`](crate::RememberMe::log_in)):
    /// the [`RememberError`] says why, theft included. A rejection: answer
    /// as for a request without a session, and clear the remember-me cookie
    /// if [`Error::clears_cookie`] (every reason but
    /// [`RememberError::Superseded`]).
    #[error("remember-me token refused")]
    RememberMe(#[source] RememberError),
}

/// The rest of [`Error::ReauthenticationRequired`]'s sentence.
fn reauth_detail(age: Option<std::time::Duration>, max_age: std::time::Duration) -> String {
    match age {
        Some(age) => format!("last authenticated {age:?} ago, over the {max_age:?} allowed"),
        None => "the session was never authenticated".to_owned(),
    }
}

impl From<TokenError> for Error {
    fn from(e: TokenError) -> Error {
        Error::Malformed(e)
    }
}

impl Error {
    /// Whether the request carries no usable session: answer 401 and clear
    /// the cookie. A corrupt record counts: the session cannot be trusted,
    /// and logging in again creates a fresh one.
    ///
    /// # Example
    /// ```
    /// use latchkey::Error;
    /// assert!(Error::Unknown.is_rejection());
    /// assert!(!Error::Conflict.is_rejection());
    /// ```
    pub fn is_rejection(&self) -> bool {
        match self {
            Error::Malformed(_)
            | Error::Unknown
            | Error::IdleExpired { .. }
            | Error::AbsoluteExpired { .. }
            | Error::Terminated { .. }
            | Error::RotatedTokenReused { .. }
            | Error::Superseded => true,
            Error::MalformedTicket(_)
            | Error::BadSignature
            | Error::UnknownKey { .. }
            | Error::WrongPurpose => true,
            Error::Store(e) => e.is_corrupt(),
            Error::Conflict
            | Error::TooLarge { .. }
            | Error::UserLimit { .. }
            | Error::LabelTooLong { .. }
            | Error::Data { .. } => false,
            Error::TicketTooLarge { .. }
            | Error::RevocationNotConfigured
            | Error::Unsupported(_) => false,
            // The session is usable; only this action needs a fresher proof
            // (or, for an anonymous session, a login).
            Error::ReauthenticationRequired { .. } | Error::NotAuthenticated => false,
            Error::RememberMe(_) => true,
        }
    }

    /// Whether a framework should clear the session cookie: every
    /// rejection but [`Error::Superseded`], whose client already holds, or
    /// is about to receive, the successor's cookie.
    ///
    /// # Example
    /// ```
    /// use latchkey::Error;
    /// assert!(Error::Unknown.clears_cookie());
    /// assert!(Error::Superseded.is_rejection() && !Error::Superseded.clears_cookie());
    /// ```
    pub fn clears_cookie(&self) -> bool {
        self.is_rejection()
            && !matches!(
                self,
                Error::Superseded | Error::RememberMe(RememberError::Superseded { .. })
            )
    }

    /// Whether the store failed (down, unreachable, I/O error): answer 503
    /// and keep the cookie.
    ///
    /// # Example
    /// ```
    /// use latchkey::{Error, StoreError};
    /// let down = Error::Store(StoreError::Unavailable("connection refused".into()));
    /// assert!(down.is_backend_failure());
    /// assert!(!down.is_rejection());
    /// ```
    pub fn is_backend_failure(&self) -> bool {
        matches!(self, Error::Store(e) if !e.is_corrupt())
    }

    /// The HTTP status a framework answers this error with, as the
    /// [framework guide](crate::framework) lays out: 401 for a rejection and
    /// for an action that needs a (fresher) login, 503 for a backend
    /// failure, 409 for a version conflict, 413 for data or a ticket too
    /// large, 400 for an over-long label, 403 for the per-user limit, and
    /// 500 for the rest (a configuration or application problem). Whether
    /// to clear the cookie is [`clears_cookie`](Self::clears_cookie)'s to
    /// say, not the status's: a 401 for `ReauthenticationRequired` keeps it.
    ///
    /// # Example
    /// ```
    /// use latchkey::{Error, StoreError};
    /// assert_eq!(Error::Unknown.http_status(), 401);
    /// assert_eq!(Error::Conflict.http_status(), 409);
    /// assert_eq!(Error::Store(StoreError::Unavailable("down".into())).http_status(), 503);
    /// ```
    pub fn http_status(&self) -> u16 {
        if self.is_rejection() {
            return 401;
        }
        if self.is_backend_failure() {
            return 503;
        }
        match self {
            Error::Conflict => 409,
            // More than a session or its cookie holds.
            Error::TooLarge { .. } | Error::TicketTooLarge { .. } => 413,
            // A user name or device label over the policy's limit: in
            // practice the request's input.
            Error::LabelTooLong { .. } => 400,
            Error::UserLimit { .. } => 403,
            // The session is fine, the action needs a fresher proof of
            // identity (or one at all): the client prompts for it.
            Error::ReauthenticationRequired { .. } | Error::NotAuthenticated => 401,
            _ => 500,
        }
    }

    /// A short stable code for logs and metrics, e.g. `idle_expired`.
    ///
    /// # Example
    /// ```
    /// use latchkey::{Error, Timestamp};
    /// let e = Error::IdleExpired { deadline: Timestamp::UNIX_EPOCH };
    /// assert_eq!(e.reason(), "idle_expired");
    /// ```
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Malformed(_) => "malformed",
            Error::Unknown => "unknown",
            Error::IdleExpired { .. } => "idle_expired",
            Error::AbsoluteExpired { .. } => "absolute_expired",
            Error::Terminated { .. } => "terminated",
            Error::RotatedTokenReused { .. } => "rotated_token_reused",
            Error::Conflict => "conflict",
            Error::TooLarge { .. } => "too_large",
            Error::UserLimit { .. } => "user_limit",
            Error::LabelTooLong { .. } => "label_too_long",
            Error::Data { .. } => "data",
            Error::Store(e) if e.is_corrupt() => "corrupt",
            Error::Store(_) => "backend",
            Error::MalformedTicket(_) => "malformed",
            Error::BadSignature => "bad_signature",
            Error::UnknownKey { .. } => "unknown_key",
            Error::WrongPurpose => "wrong_purpose",
            Error::TicketTooLarge { .. } => "ticket_too_large",
            Error::RevocationNotConfigured => "revocation_not_configured",
            Error::Superseded => "superseded",
            Error::Unsupported(_) => "unsupported",
            Error::ReauthenticationRequired { .. } => "reauthentication_required",
            Error::NotAuthenticated => "not_authenticated",
            Error::RememberMe(e) => e.reason(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(e: &dyn std::error::Error) -> String {
        let mut s = e.to_string();
        let mut cur = e.source();
        while let Some(c) = cur {
            s.push_str(": ");
            s.push_str(&c.to_string());
            cur = c.source();
        }
        s
    }

    #[test]
    fn display_reads_as_a_chain_of_sentences() {
        let e = Error::Malformed(TokenError::WrongLength(3));
        assert_eq!(
            chain(&e),
            "malformed session token: the token has 3 bytes, not the 43 of a session ID"
        );
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied");
        let e = Error::Store(StoreError::Io(io));
        assert_eq!(chain(&e), "session store failed: I/O error: denied");
        assert!(e.is_backend_failure());
        assert!(!e.is_rejection());
    }

    #[test]
    fn every_rejection_is_not_a_backend_failure() {
        let all = [
            Error::Malformed(TokenError::Empty),
            Error::Unknown,
            Error::IdleExpired {
                deadline: Timestamp::UNIX_EPOCH,
            },
            Error::AbsoluteExpired {
                deadline: Timestamp::UNIX_EPOCH,
            },
            Error::Terminated {
                reason: EndReason::Logout,
            },
            Error::RotatedTokenReused {
                successor_revoked: true,
            },
            Error::Superseded,
        ];
        for e in &all {
            assert!(e.is_rejection(), "{e}");
            assert!(!e.is_backend_failure(), "{e}");
        }
        let reasons: std::collections::HashSet<_> = all.iter().map(Error::reason).collect();
        assert_eq!(reasons.len(), all.len());
    }

    #[test]
    fn ticket_rejections_say_why_and_configuration_errors_do_not_reject() {
        let rejections = [
            (
                Error::MalformedTicket(TicketError::NotBase64),
                "malformed",
                "malformed session ticket: the ticket is not canonical unpadded base64url",
            ),
            (
                Error::BadSignature,
                "bad_signature",
                "session ticket signature does not verify",
            ),
            (
                Error::UnknownKey { key_id: 7 },
                "unknown_key",
                "session ticket was signed with unknown key id 7",
            ),
            (
                Error::WrongPurpose,
                "wrong_purpose",
                "session ticket was issued for a different purpose",
            ),
        ];
        for (e, reason, text) in &rejections {
            assert!(e.is_rejection(), "{e}");
            assert!(!e.is_backend_failure(), "{e}");
            assert_eq!(e.reason(), *reason);
            assert_eq!(chain(e), *text);
        }
        for e in [
            Error::TicketTooLarge {
                size: 5000,
                limit: 4096,
            },
            Error::RevocationNotConfigured,
        ] {
            assert!(!e.is_rejection(), "{e}");
            assert!(!e.is_backend_failure(), "{e}");
        }
        assert_eq!(
            Error::RevocationNotConfigured.reason(),
            "revocation_not_configured"
        );
    }
}
