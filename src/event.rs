//! Lifecycle events, for audit logs and metrics.
//!
//! A manager reports each event to its [`Observer`]. Events name sessions by
//! [`Fingerprint`] only; no event carries a token.
//!
//! # Example
//! ```
//! use std::sync::{Arc, Mutex};
//! use latchkey::{Event, MemoryStore, NewSession, Observer, SessionManager, StoreManager};
//!
//! #[derive(Debug, Default)]
//! struct Audit(Mutex<Vec<String>>);
//! impl Observer for Audit {
//!     fn on_event(&self, event: &Event) {
//!         self.0.lock().unwrap().push(event.to_string());
//!     }
//! }
//!
//! let audit = Arc::new(Audit::default());
//! let manager = StoreManager::new(MemoryStore::new()).with_observer(audit.clone());
//! let issued = manager.create(NewSession::new())?;
//! let log = audit.0.lock().unwrap();
//! assert!(log[0].starts_with("session created"));
//! assert!(!log[0].contains(issued.token()));
//! # Ok::<(), latchkey::Error>(())
//! ```

use std::fmt;

use crate::id::Fingerprint;
use crate::remember::TheftKind;
use crate::store::EndReason;

/// Which of the two clocks ended a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExpiryKind {
    /// Unused for longer than the idle timeout.
    Idle,
    /// Reached its absolute lifetime.
    Absolute,
}

/// Why a presented token was refused before any session was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RejectKind {
    /// Not a well-formed token.
    Malformed,
    /// Well formed, but no session has it: possibly a fixation attempt.
    Unknown,
    /// A ticket whose MAC does not verify: altered or forged.
    BadSignature,
    /// A ticket signed with a key id the key ring does not hold.
    UnknownKey,
    /// A ticket minted for another purpose.
    WrongPurpose,
    /// A token retired by a change of privilege, presented within the
    /// grace window: refused without alarm ([`Error::Superseded`](crate::Error::Superseded)).
    Superseded,
}

/// Something that happened to a session.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A session was created.
    Created {
        /// The new session.
        session: Fingerprint,
        /// Its user, if bound at creation.
        user: Option<String>,
    },
    /// A session got a new ID; the old one is retired.
    Rotated {
        /// The retired ID's session.
        from: Fingerprint,
        /// The new one.
        to: Fingerprint,
    },
    /// A user authenticated: the session rotated and was bound to the user.
    LoggedIn {
        /// The session before login.
        from: Fingerprint,
        /// The session after login.
        to: Fingerprint,
        /// The user.
        user: String,
    },
    /// A session was found expired on load.
    Expired {
        /// The session.
        session: Fingerprint,
        /// Which clock ended it.
        kind: ExpiryKind,
    },
    /// A session was ended on purpose.
    Terminated {
        /// The session.
        session: Fingerprint,
        /// Why.
        reason: EndReason,
    },
    /// A token retired by rotation came back after the grace window.
    ReuseDetected {
        /// The retired token's session.
        retired: Fingerprint,
        /// The successor it pointed to.
        successor: Fingerprint,
        /// Whether the successor was ended in response.
        successor_revoked: bool,
    },
    /// A load could not record the session's activity (the store refused
    /// the write: a full disk, say). The load still succeeded: a touch is
    /// best effort, and only the idle deadline's slide was lost.
    TouchFailed {
        /// The session.
        session: Fingerprint,
        /// The store's error, as a sentence (no token, no data).
        error: String,
    },
    /// A presented token was refused before a session was found.
    Rejected {
        /// Why.
        kind: RejectKind,
        /// The session it would name, for an unknown well-formed token.
        session: Option<Fingerprint>,
    },
    /// A remember-me token was presented as only a stolen copy explains
    /// ([`RememberError::Theft`](crate::RememberError::Theft)): every
    /// remember-me token and session of the user was ended.
    RememberMeTheft {
        /// The user whose tokens and sessions were ended.
        user: String,
        /// The presented token: the fingerprint of its store key.
        token: Fingerprint,
        /// What gave it away.
        kind: TheftKind,
        /// The user's sessions found in the remember-me store just before
        /// they were ended: all of them when it is the session manager's
        /// store, none for tickets (which no store lists).
        sessions: Vec<Fingerprint>,
        /// How many sessions the manager reports ended; `None` where it
        /// cannot count (tickets) or failed.
        sessions_ended: Option<usize>,
        /// Whether ending the tokens and the sessions completed; if not,
        /// the error returned says why.
        contained: bool,
    },
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Created {
                session,
                user: Some(u),
            } => {
                write!(f, "session created: {session} for user {u:?}")
            }
            Event::Created {
                session,
                user: None,
            } => write!(f, "session created: {session}"),
            Event::Rotated { from, to } => write!(f, "session rotated: {from} -> {to}"),
            Event::LoggedIn { from, to, user } => {
                write!(f, "session logged in: {from} -> {to} as user {user:?}")
            }
            Event::Expired { session, kind } => {
                let k = match kind {
                    ExpiryKind::Idle => "idle timeout",
                    ExpiryKind::Absolute => "absolute timeout",
                };
                write!(f, "session expired: {session} ({k})")
            }
            Event::Terminated { session, reason } => {
                write!(f, "session terminated: {session} ({reason})")
            }
            Event::ReuseDetected {
                retired,
                successor,
                successor_revoked,
            } => write!(
                f,
                "rotated token reused: {retired} (successor {successor}{})",
                if *successor_revoked {
                    " revoked"
                } else {
                    " kept"
                }
            ),
            Event::TouchFailed { session, error } => {
                write!(f, "activity not recorded: {session} ({error})")
            }
            Event::Rejected {
                kind: RejectKind::Malformed,
                ..
            } => f.write_str("token rejected: malformed"),
            Event::Rejected {
                kind: RejectKind::Unknown,
                session,
            } => match session {
                Some(s) => write!(f, "token rejected: unknown session {s}"),
                None => f.write_str("token rejected: unknown session"),
            },
            Event::Rejected {
                kind: RejectKind::BadSignature,
                ..
            } => f.write_str("ticket rejected: bad signature"),
            Event::Rejected {
                kind: RejectKind::UnknownKey,
                ..
            } => f.write_str("ticket rejected: unknown key id"),
            Event::Rejected {
                kind: RejectKind::WrongPurpose,
                ..
            } => f.write_str("ticket rejected: wrong purpose"),
            Event::Rejected {
                kind: RejectKind::Superseded,
                session,
            } => match session {
                Some(s) => write!(
                    f,
                    "token rejected: {s} was superseded by a privilege change"
                ),
                None => f.write_str("token rejected: superseded by a privilege change"),
            },
            Event::RememberMeTheft {
                user,
                token,
                kind,
                sessions,
                sessions_ended,
                contained,
            } => {
                write!(
                    f,
                    "remember-me token {token} of user {user:?} {kind}: treated as stolen; "
                )?;
                match sessions_ended {
                    Some(n) => write!(f, "{n} session(s) ended")?,
                    None => f.write_str("the user's sessions ended (not counted)")?,
                }
                if !sessions.is_empty() {
                    f.write_str(" [")?;
                    for (i, s) in sessions.iter().enumerate() {
                        if i > 0 {
                            f.write_str(", ")?;
                        }
                        write!(f, "{s}")?;
                    }
                    f.write_str("]")?;
                }
                if !contained {
                    f.write_str("; ending them did not complete")?;
                }
                Ok(())
            }
        }
    }
}

/// Receives lifecycle events. Called synchronously on the request's thread,
/// so keep it quick (push to a channel or a log).
pub trait Observer: fmt::Debug + Send + Sync {
    /// Called once for each event.
    fn on_event(&self, event: &Event);
}
