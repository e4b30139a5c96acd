//! The session lifecycle: its states, the operations on them, and the
//! outcome of every pair, decided once for both managers.
//!
//! [`StoreManager`](crate::StoreManager) and
//! [`TicketManager`](crate::TicketManager) take each decision below from the
//! functions of this module; the manager conformance suite
//! (`tests/manager_conformance.rs`) runs the same tests of this table
//! against both, over every store.
//!
//! The store manager's side (every store call, interleaved with these
//! decisions) is written once too, as async code over a store's
//! operations: `StoreManager` completes it in one poll over a synchronous
//! [`Store`](crate::Store), and `AsyncStoreManager` (feature `async`)
//! awaits it over an `AsyncStore`. So everything below holds for both
//! drivers, and the suite runs against both (`tests/async_manager.rs`).
//!
//! # States
//!
//! A token names one of these (a ticket's state is its signed claims plus,
//! with revocation, an entry in the revocation store):
//!
//! | state | what it is |
//! |---|---|
//! | **live** | a session within both deadlines |
//! | **expired** | past its idle deadline (last activity + idle timeout) or its absolute deadline (creation + absolute timeout) |
//! | **rotated, routine, in grace** | retired by [`rotate`](crate::SessionManager::rotate); points at its successor; `now < grace_until` |
//! | **rotated, privilege change, in grace** | retired by [`login`](crate::SessionManager::login), [`change_privilege`](crate::SessionManager::change_privilege) or [`reauthenticate`](crate::SessionManager::reauthenticate); `now < grace_until` |
//! | **rotated, past grace** | either kind, `now >= grace_until` |
//! | **ended** | terminated with a reason ([`EndReason`]): logout, logout everywhere, eviction, reuse detected, replaced by another user |
//! | **unknown** | never issued here, or purged |
//!
//! A rotation links the old key to its successor; a session's keys form a
//! chain whose last link (the tip) is the live record. Retired and ended
//! records are kept until the session's absolute deadline, so a late token
//! is refused with its reason rather than as unknown.
//!
//! # Operations and outcomes
//!
//! | token's state | `load` of the token | `save` / `rotate` / `login` / `change_privilege` / `reauthenticate` on a copy loaded through it | `terminate` on such a copy |
//! |---|---|---|---|
//! | live | the session; the idle deadline slides (stored only once per touch interval, and best effort: a store that cannot write reports [`Event::TouchFailed`] and the load still succeeds) | written; a copy older than the stored version is `Conflict` | ended; every token of its chain fails from now on |
//! | expired | `IdleExpired` / `AbsoluteExpired`, naming the deadline | past the absolute deadline, `AbsoluteExpired`; a copy loaded while live may still write past the idle deadline (a write is activity) | `Ok` (nothing loads) |
//! | rotated, routine, in grace | the **successor's** session, with [`Loaded::reissue`](crate::Loaded::reissue) carrying its token (tickets: the ticket's own claims, not re-signed; refused if the chain has ended) | `Conflict` (the copy is stale) | ends the **whole chain**: this link and every successor up to the live tip |
//! | rotated, privilege change, in grace | **`Superseded`**: never the changed session, never its token; no alarm, the cookie is not cleared | `Conflict` | ends the whole chain |
//! | rotated, past grace | `RotatedTokenReused`; with [`ReuseResponse::RevokeSuccessor`](crate::ReuseResponse) (the default) the live tip is ended as `ReuseDetected` | `Conflict`, never reuse: a handler writing a stale copy is not a client presenting an old token | ends the whole chain |
//! | ended | `Terminated { reason }` | `Terminated { reason }` | `Ok` |
//! | unknown | `Unknown` (strict mode: never adopted) | `Unknown` | `Ok` |
//!
//! Stateless tickets (no revocation store) cannot retire or end a ticket:
//! every row but *live* and *expired* needs state. There `terminate` is
//! [`Error::RevocationNotConfigured`], and a rotated ticket stays what it
//! was, with its own claims, until it expires (see below). Two copies of a
//! ticket session never conflict either: each ticket carries its own data.
//!
//! Further rules:
//!
//! - **`login`** always changes privilege. On a session of another user it
//!   ends that session's chain (`Replaced`) and starts a fresh, empty one:
//!   one user's data never passes to another.
//! - **`reauthenticate`** (the caller has verified the user's credential
//!   again) is a privilege change that stamps the authentication time:
//!   the old token is refused as after `change_privilege`, and the
//!   successor carries `authenticated_at = now`. The absolute deadline is
//!   kept, unless [`Policy::reauthentication_extends_absolute`] starts a
//!   new absolute period (`now` + the absolute timeout). A session without
//!   a user is refused with [`Error::NotAuthenticated`] before anything is
//!   written. See [Re-authentication](#re-authentication).
//! - **Freshness**: [`Session::require_recent_auth_at`] (and
//!   [`SessionManager::require_recent_auth`](crate::SessionManager::require_recent_auth)
//!   on the manager's clock) passes if the user authenticated less than
//!   `max_age` ago, else [`Error::ReauthenticationRequired`] (`age: None`
//!   if never). It reads only the session copy: no store, no write.
//! - **`terminate_all(user, except)`** ends every live session of the user
//!   (the tips; their chains follow) but `except`, and says how many. Tickets
//!   keep a per-user cutoff instead: every ticket authenticated until now
//!   ends, no count is known (`None`), and `except` is refused
//!   ([`Error::Unsupported`]).
//! - **Expiry** needs no write: a load checks both deadlines. **Purge**
//!   deletes records past their retention (`expires_at`): the live
//!   record's idle deadline, the retired and ended records' absolute one.
//! - **Limits**: session data, user names and device labels have size
//!   limits in the policy, checked at `create`, `login` and `save` with a
//!   typed error. A per-user session cap evicts the oldest or refuses the
//!   new session, by policy. Stateless tickets cannot count sessions, so
//!   with a cap set their `create` and `login` of a user fail with
//!   [`Error::Unsupported`] instead of ignoring it.
//!
//! # Why a privilege change refuses the old token
//!
//! A routine rotation's grace window keeps concurrent requests working: the
//! old token resolves to the successor and hands the client its token. That
//! is harmless only when nothing about the session's authority changed. If
//! it also held after a login, whoever planted the pre-login cookie (session
//! fixation) would, for the grace window, load the victim's logged-in
//! session and be handed its new token. So after a privilege change the old
//! token is refused: `Superseded` within the window (a request in flight is
//! no attack, and clearing its cookie would race the login's new cookie),
//! `RotatedTokenReused` after it. Showing the old token the pre-change
//! session read-only instead would need a copy of it kept beside the new
//! one, and a second meaning for one token; refusing is what Django, Spring
//! and express do on login. The retired record of a privilege change keeps
//! no sealed successor either, so even a dump of the store plus the old
//! token does not yield the new one.
//!
//! A stateless ticket without revocation cannot be retired at all: after a
//! change it keeps loading with its own, pre-change claims until its idle
//! deadline. It never gains the new privileges or the new ticket, so it is
//! the pre-change session, read-only in effect (after a re-authentication,
//! with its older authentication time, so it fails the freshness check the
//! new ticket passes); with
//! [`TicketManager::with_revocation`](crate::TicketManager::with_revocation)
//! it follows this table.
//!
//! # Re-authentication
//!
//! A step-up ("sudo mode", ASVS 5.0 7.5.1, NIST SP 800-63B-4 §5.2) asks a
//! logged-in user to prove who they are again before a sensitive action.
//! The application checks freshness with
//! [`require_recent_auth`](crate::SessionManager::require_recent_auth);
//! on [`Error::ReauthenticationRequired`] it asks for the password, checks
//! it, and calls [`reauthenticate`](crate::SessionManager::reauthenticate).
//! The decisions, made once here for both managers:
//!
//! - **It rotates as a privilege change.** The session gains authority (it
//!   may now do what needed a fresh proof), so the token from before is
//!   refused, for the reason above: whoever held a copy of it must not
//!   ride on the fresh proof, nor be handed the new token.
//! - **It never revives a session.** The copy is checked as it is, with its
//!   own deadline and (tickets) its own authentication time against the
//!   user's cutoff, before the new time applies: a session that expired,
//!   ended, was logged out everywhere, or was rotated meanwhile fails as
//!   any write from it would.
//! - **An anonymous session is refused** ([`Error::NotAuthenticated`],
//!   not a rejection): there is no user whose credential was checked.
//!   `login` is the operation that binds one. Answering it with
//!   `ReauthenticationRequired` instead would send a framework round a
//!   loop of password prompts.
//! - **The absolute deadline stays by default.** Activity never extends a
//!   session's absolute lifetime, and by default neither does a fresh
//!   proof: the session still ends when login said it would
//!   ([`Policy::reauthentication_extends_absolute`] says why, and how to
//!   let a re-authentication start a new period as NIST allows). With the
//!   extension on, a ticket's policy cap counts from its last
//!   authentication instead of its creation, so switching the policy back
//!   shortens tickets already issued.
//! - **The check is not a rejection.** `ReauthenticationRequired` keeps
//!   the cookie and the session: only the one action needs the fresher
//!   proof.
//!
//! ```
//! use std::{sync::Arc, time::Duration};
//! use latchkey::{Error, ManualClock, MemoryStore, NewSession, SessionManager, StoreManager, Timestamp};
//!
//! let clock = Arc::new(ManualClock::new(Timestamp::from_unix_millis(1_800_000_000_000)));
//! let manager = StoreManager::new(MemoryStore::new()).with_clock(clock.clone());
//! let issued = manager.create(NewSession::new().with_user("alice"))?;
//! let mut session = manager.load(issued.token())?.session;
//! clock.advance(Duration::from_secs(15 * 60)); // still live, no longer fresh
//! let sudo = Duration::from_secs(10 * 60);
//! let err = manager.require_recent_auth(&session, sudo).unwrap_err();
//! assert!(matches!(err, Error::ReauthenticationRequired { .. }) && !err.is_rejection());
//! // ... the user typed their password again, and it checked out ...
//! let fresh = manager.reauthenticate(&mut session)?;
//! manager.require_recent_auth(&session, sudo)?;
//! assert_eq!(fresh.absolute_deadline(), issued.absolute_deadline());
//! assert!(matches!(manager.load(issued.token()), Err(Error::Superseded)));
//! # Ok::<(), Error>(())
//! ```
//!
//! # Rotation from single-key writes, and crashes
//!
//! A store that cannot write two keys atomically (the file store; Redis
//! Cluster across slots) rotates with the provided
//! [`Store::rotate`](crate::Store::rotate):
//!
//! 1. the old record is rewritten as rotated, carrying the successor's
//!    record as `pending` (a write-ahead intent);
//! 2. the successor is inserted;
//! 3. the old record is read again: if a logout ended it in between, the
//!    successor is removed and the rotation fails.
//!
//! A process that dies after step 1 leaves the old key retired and the
//! successor missing. The next load of the old token within the grace window
//! of a routine rotation writes the successor from `pending` (steps 2 and 3
//! again: idempotent) and resolves to it; a privilege change's old token is
//! refused as the table says, so that session needs a new login. No crash
//! point leaves two live records of one session (a ghost), and none brings a
//! token back after a logout: ending a chain rewrites each retired link as
//! ended before it reads the next, so a pending successor can no longer be
//! rolled forward, and step 3 sees the end.
//!
//! # Example
//! ```
//! use std::sync::Arc;
//! use latchkey::{Error, ManualClock, MemoryStore, NewSession, SessionManager, StoreManager, Timestamp};
//!
//! let clock = Arc::new(ManualClock::new(Timestamp::from_unix_millis(1_800_000_000_000)));
//! let manager = StoreManager::new(MemoryStore::new()).with_clock(clock.clone());
//! let planted = manager.create(NewSession::new())?;
//! let mut session = manager.load(planted.token())?.session;
//! let mine = manager.login(&mut session, "alice")?;
//! // The pre-login token never reaches the logged-in session.
//! assert!(matches!(manager.load(planted.token()), Err(Error::Superseded)));
//! assert_eq!(manager.load(mine.token())?.session.user(), Some("alice"));
//! # Ok::<(), Error>(())
//! ```

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, SystemClock, Timestamp};
use crate::error::Error;
use crate::event::{Event, ExpiryKind, Observer, RejectKind};
use crate::id::{Fingerprint, SealedId, StoreKey};
use crate::policy::{Policy, ReuseResponse};
use crate::session::{NewSession, Session};
use crate::store::{EndReason, LiveSession, Record, RecordState};

/// What both managers share, and the one place they take it from: the
/// policy, the clock, the observer, and the decisions and events that do
/// not depend on where a session's state lives. A manager adds only how it
/// persists (a store) or encodes (a ticket).
#[derive(Clone)]
pub(crate) struct Core {
    pub(crate) policy: Policy,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) observer: Option<Arc<dyn Observer>>,
}

impl fmt::Debug for Core {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Core")
            .field("policy", &self.policy)
            .field("clock", &self.clock)
            .field("observer", &self.observer)
            .finish()
    }
}

impl Core {
    /// `policy` on the system clock, reporting to no one.
    pub(crate) fn new(policy: Policy) -> Core {
        Core {
            policy,
            clock: Arc::new(SystemClock),
            observer: None,
        }
    }

    /// The time: the only clock read a manager makes.
    #[inline]
    pub(crate) fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Reports `event`, if someone listens.
    pub(crate) fn emit(&self, event: Event) {
        if let Some(o) = &self.observer {
            o.on_event(&event);
        }
    }

    /// [`Self::emit`] for hot paths: the event (with its fingerprints and
    /// owned strings) is built only if someone listens.
    #[inline]
    pub(crate) fn emit_with(&self, event: impl FnOnce() -> Event) {
        if let Some(o) = &self.observer {
            o.on_event(&event());
        }
    }

    /// The idle deadline of a session last active at `last_seen`: never
    /// past its absolute deadline.
    #[inline]
    pub(crate) fn idle_deadline(&self, last_seen: Timestamp, absolute: Timestamp) -> Timestamp {
        last_seen
            .saturating_add(self.policy.idle_timeout())
            .min(absolute)
    }

    /// Which clock, if any, has ended a session at `now`, as the error that
    /// says so.
    #[inline]
    pub(crate) fn expiry(
        &self,
        absolute_deadline: Timestamp,
        last_seen: Timestamp,
        now: Timestamp,
    ) -> Option<Error> {
        if now >= absolute_deadline {
            return Some(Error::AbsoluteExpired {
                deadline: absolute_deadline,
            });
        }
        let idle = last_seen.saturating_add(self.policy.idle_timeout());
        if now >= idle {
            return Some(Error::IdleExpired { deadline: idle });
        }
        None
    }

    /// Whether a load is due to record activity (once per touch interval).
    #[inline]
    pub(crate) fn touch_due(&self, last_seen: Timestamp, now: Timestamp) -> bool {
        now.duration_since(last_seen) >= self.policy.touch_interval()
    }

    /// What stateless tickets need of a session bound to `user` with
    /// `device`: labels within the policy's limit, and no per-user cap,
    /// which they cannot count (refused, instead of ignored).
    pub(crate) fn check_ticket_binding(
        &self,
        user: Option<&str>,
        device: Option<&str>,
    ) -> Result<(), Error> {
        if user.is_some() && self.policy.max_sessions_per_user().is_some() {
            return Err(Error::Unsupported(
                "a per-user session cap (stateless tickets cannot count sessions)",
            ));
        }
        self.check_labels(user, device)
    }

    /// Refuses session data over the policy's limit.
    pub(crate) fn check_size(&self, size: usize) -> Result<(), Error> {
        let limit = self.policy.max_data_bytes();
        if size > limit {
            return Err(Error::TooLarge { size, limit });
        }
        Ok(())
    }

    /// Refuses a user name or device label over the policy's limit.
    pub(crate) fn check_labels(
        &self,
        user: Option<&str>,
        device: Option<&str>,
    ) -> Result<(), Error> {
        let limit = self.policy.max_label_bytes();
        for (field, value) in [("user name", user), ("device label", device)] {
            if let Some(len) = value.map(str::len).filter(|&len| len > limit) {
                return Err(Error::LabelTooLong { field, len, limit });
            }
        }
        Ok(())
    }

    /// Reports an expiry found by [`Self::expiry`].
    pub(crate) fn report_expired(&self, key: &StoreKey, err: &Error) {
        let kind = match err {
            Error::AbsoluteExpired { .. } => ExpiryKind::Absolute,
            _ => ExpiryKind::Idle,
        };
        self.emit(Event::Expired {
            session: key.fingerprint(),
            kind,
        });
    }

    /// The table's row for a token whose record is `record` at `now`: what
    /// the token means, decided without I/O. The manager carries it out
    /// (touches, follows, revokes, reports) on its store.
    pub(crate) fn judge(&self, record: Record, now: Timestamp) -> Verdict {
        if record.expires_at <= now && !record.is_live() {
            // A retired or ended record past its retention is as good as
            // purged.
            return Verdict::Unknown;
        }
        match record.state {
            RecordState::Live(live) => {
                if let Some(err) = self.expiry(live.absolute_deadline, live.last_seen, now) {
                    return Verdict::Expired(err);
                }
                let touch = self
                    .touch_due(live.last_seen, now)
                    .then(|| self.idle_deadline(now, live.absolute_deadline));
                Verdict::Live {
                    version: record.version,
                    live,
                    touch,
                }
            }
            RecordState::Rotated {
                successor,
                sealed_successor,
                grace_until,
                privilege_change,
                pending,
                ..
            } => match retired(grace_until, privilege_change, now) {
                Retired::Follow => Verdict::Follow {
                    version: record.version,
                    successor,
                    sealed: sealed_successor,
                    pending,
                },
                Retired::Superseded => Verdict::Superseded,
                Retired::Reused => Verdict::Reused {
                    successor,
                    revoke: self.policy.reuse_response() == ReuseResponse::RevokeSuccessor,
                },
            },
            RecordState::Ended { reason, .. } => Verdict::Ended(reason),
        }
    }

    /// The table's `login` rule for `session` and `user`: another user's
    /// session is replaced by a fresh, empty one (one user's data never
    /// passes to another); otherwise the session is rebound.
    pub(crate) fn login_of(&self, session: &Session, user: &str) -> Login {
        if session.user.as_deref().is_some_and(|u| u != user) {
            Login::Replace {
                fresh: NewSession {
                    user: Some(user.into()),
                    device: session.device.clone(),
                    data: Default::default(),
                    // A login authenticates now.
                    auth_at: None,
                },
            }
        } else {
            Login::Rebind
        }
    }

    /// Binds `user` to `session` and stamps the authentication time, then
    /// runs `rotate` (a privilege change); if that fails, `session` is as
    /// it was.
    pub(crate) fn bind_then<T>(
        &self,
        session: &mut Session,
        user: &str,
        now: Timestamp,
        rotate: impl FnOnce(&mut Session) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let before = self.bind(session, user, now);
        let result = rotate(session);
        if result.is_err() {
            before.restore(session);
        }
        result
    }

    /// The first half of [`Self::bind_then`], for a rotation that is
    /// awaited: binds `user` and stamps the time, and returns what to put
    /// back if the rotation fails.
    pub(crate) fn bind(&self, session: &mut Session, user: &str, now: Timestamp) -> Unbound {
        let before = Unbound {
            user: session.user.clone(),
            auth_at: session.auth_at,
        };
        session.user = Some(user.into());
        session.auth_at = Some(now);
        before
    }

    /// The table's `reauthenticate` rule for `session` at `now`, decided
    /// before any write: a session without a user has no one to
    /// re-authenticate ([`Error::NotAuthenticated`]: an anonymous session
    /// logs in instead); otherwise the rotation is a privilege change whose
    /// successor is authenticated at `now` and keeps its absolute deadline,
    /// unless the policy lets a re-authentication start a new absolute
    /// period ([`Policy::reauthentication_extends_absolute`]).
    ///
    /// The manager checks the session copy as it is (its deadline, and for
    /// tickets its revocation with its old authentication time) before it
    /// applies what this returns to the successor: a re-authentication
    /// never revives a session that has expired or ended.
    pub(crate) fn reauthentication_of(
        &self,
        session: &Session,
        now: Timestamp,
    ) -> Result<Rotation, Error> {
        if session.user.is_none() {
            return Err(Error::NotAuthenticated);
        }
        let absolute_deadline = if self.policy.reauthentication_extends_absolute() {
            now.saturating_add(self.policy.absolute_timeout())
        } else {
            session.absolute_deadline
        };
        Ok(Rotation::Reauthentication {
            auth_at: now,
            absolute_deadline,
        })
    }

    /// When the absolute period of a session created at `created_at` and
    /// last authenticated at `auth_at` began: its creation, or, with a
    /// policy that lets a re-authentication start a new period, its last
    /// authentication. A ticket's absolute deadline is capped at this plus
    /// the policy's absolute timeout, so a policy tightened (or switched
    /// back to not extending) applies to tickets already issued.
    #[inline]
    pub(crate) fn absolute_period_start(
        &self,
        created_at: Timestamp,
        auth_at: Option<Timestamp>,
    ) -> Timestamp {
        match auth_at {
            Some(at) if self.policy.reauthentication_extends_absolute() => at.max(created_at),
            _ => created_at,
        }
    }

    /// Reports a login from session `from` to `to`.
    pub(crate) fn report_login(&self, from: Fingerprint, to: Fingerprint, user: &str) {
        self.emit_with(|| Event::LoggedIn {
            from,
            to,
            user: user.into(),
        });
    }

    /// Reports a refused token and hands back the error that says why.
    pub(crate) fn reject(&self, kind: RejectKind, session: Option<&StoreKey>, err: Error) -> Error {
        self.emit(Event::Rejected {
            kind,
            session: session.map(StoreKey::fingerprint),
        });
        err
    }
}

/// How many links a walk along a rotation chain follows before it gives up
/// with [`Error::Conflict`]: a chain grows by one link per rotation and its
/// links are kept until the absolute deadline, so only a pathological
/// session comes near it.
pub(crate) const MAX_CHAIN_WALK: usize = 4096;

/// What a token retired by rotation means when presented at `now`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Retired {
    /// A routine rotation in its grace window: resolve to the successor.
    Follow,
    /// A privilege change in its grace window: refuse, without alarm.
    Superseded,
    /// Past the grace window: reuse, answered by the policy.
    Reused,
}

/// What a rotation changes besides the session's ID: the table's `rotate`,
/// `change_privilege` / `login`, and `reauthenticate`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rotation {
    /// `rotate`: the session's authority is unchanged, so the old token
    /// follows the successor through the grace window.
    Routine,
    /// `change_privilege` and `login`: the old token is refused.
    Privilege,
    /// `reauthenticate` ([`Core::reauthentication_of`]): a privilege change
    /// whose successor carries a new authentication time and absolute
    /// deadline.
    Reauthentication {
        /// The successor's authentication time.
        auth_at: Timestamp,
        /// The successor's absolute deadline.
        absolute_deadline: Timestamp,
    },
}

impl Rotation {
    /// Whether the old token is refused (`Superseded` in the grace window)
    /// rather than followed to the successor.
    #[inline]
    pub(crate) fn privilege_change(self) -> bool {
        self != Rotation::Routine
    }

    /// The successor's authentication time and absolute deadline, from the
    /// rotated session's.
    #[inline]
    pub(crate) fn successor_times(
        self,
        auth_at: Option<Timestamp>,
        absolute_deadline: Timestamp,
    ) -> (Option<Timestamp>, Timestamp) {
        match self {
            Rotation::Reauthentication {
                auth_at,
                absolute_deadline,
            } => (Some(auth_at), absolute_deadline),
            Rotation::Routine | Rotation::Privilege => (auth_at, absolute_deadline),
        }
    }
}

/// The table's freshness rule ([`Session::require_recent_auth_at`]): the
/// user authenticated less than `max_age` before `now`. A session never
/// authenticated fails with `age: None`; a `max_age` of zero always fails.
/// An `auth_at` ahead of `now` (another process's clock) counts as age zero.
pub(crate) fn require_recent_auth(
    auth_at: Option<Timestamp>,
    max_age: Duration,
    now: Timestamp,
) -> Result<(), Error> {
    let age = auth_at.map(|at| now.duration_since(at));
    match age {
        Some(age) if age < max_age => Ok(()),
        age => Err(Error::ReauthenticationRequired { age, max_age }),
    }
}

/// The table's rows for a retired token.
#[inline]
pub(crate) fn retired(grace_until: Timestamp, privilege_change: bool, now: Timestamp) -> Retired {
    match (now < grace_until, privilege_change) {
        (true, false) => Retired::Follow,
        (true, true) => Retired::Superseded,
        (false, _) => Retired::Reused,
    }
}

/// What a token means, as [`Core::judge`] decides it from its record.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// Never issued here, or purged (or a dead record past its retention).
    Unknown,
    /// A live session past a deadline: the error names which.
    Expired(Error),
    /// A live session. `touch` is the raised retention when this load must
    /// record activity (once per touch interval).
    Live {
        version: u64,
        live: LiveSession,
        touch: Option<Timestamp>,
    },
    /// A routine rotation within its grace window: resolve to `successor`
    /// (writing it first from `pending` if a crash left it unwritten).
    Follow {
        version: u64,
        successor: StoreKey,
        sealed: Option<SealedId>,
        pending: Option<Box<Record>>,
    },
    /// A privilege change within its grace window: refused, without alarm.
    Superseded,
    /// Reuse after the grace window; `revoke`: the policy ends the
    /// successor's chain.
    Reused { successor: StoreKey, revoke: bool },
    /// Ended on purpose.
    Ended(EndReason),
}

/// A session's binding before [`Core::bind`]: put back when the rotation
/// that was to follow fails, so a failed login leaves the copy as it was.
#[derive(Debug)]
pub(crate) struct Unbound {
    user: Option<String>,
    auth_at: Option<Timestamp>,
}

impl Unbound {
    /// Puts the binding back.
    pub(crate) fn restore(self, session: &mut Session) {
        session.user = self.user;
        session.auth_at = self.auth_at;
    }
}

/// How a login goes: see [`Core::login_of`].
#[derive(Debug)]
pub(crate) enum Login {
    /// End the session (`EndReason::Replaced`) and start `fresh`.
    Replace { fresh: NewSession },
    /// Bind the user to this session and rotate it as a privilege change.
    Rebind,
}

/// What ending one key of a rotation chain found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Link {
    /// The live tip, now ended.
    Tip,
    /// A retired link (rewritten as ended, if asked); the chain goes on at
    /// this successor.
    Rotated(StoreKey),
    /// Nothing left to end: missing, or ended already.
    Done,
}

/// The two steps of ending a rotation chain, as [`end_chain`] drives them:
/// `end_link(key, retire)` ends a live tip and returns a retired link's
/// successor, rewriting the link as ended only if `retire`; `after_link`
/// looks at a successor again once its link is written.
pub(crate) trait ChainEnd {
    fn end_link(
        &mut self,
        key: StoreKey,
        retire: bool,
    ) -> impl Future<Output = Result<Link, Error>> + Send;
    fn after_link(
        &mut self,
        successor: StoreKey,
    ) -> impl Future<Output = Result<bool, Error>> + Send;
}

/// Ends the rotation chain through `key`, both managers' way: walk to the
/// tip reading only (`end_link(key, false)` ends a live tip and returns a
/// retired link's successor untouched), then rewrite the retired links as
/// ended, newest first (`end_link(key, true)`), calling `after_link` with
/// each one's successor once it is written. Returns whether a live tip was
/// ended.
///
/// The order is the rule: a retry after a failure anywhere finds what is
/// left, since a link is rewritten (losing its pointer) only once
/// everything after it has ended; and a link is ended before its successor
/// is looked at again (`after_link`), which closes the race with a
/// rotation made of single-key writes (see [`crate::store::Store::rotate`]).
pub(crate) async fn end_chain_with(
    key: StoreKey,
    steps: &mut impl ChainEnd,
) -> Result<bool, Error> {
    let mut links = Vec::new();
    let mut key = key;
    let mut ended = false;
    loop {
        if links.len() >= MAX_CHAIN_WALK {
            return Err(Error::Conflict);
        }
        match steps.end_link(key, false).await? {
            Link::Tip => {
                ended = true;
                break;
            }
            Link::Rotated(successor) => {
                links.push(key);
                key = successor;
            }
            Link::Done => break,
        }
    }
    while let Some(link) = links.pop() {
        if let Link::Rotated(successor) = steps.end_link(link, true).await? {
            ended |= steps.after_link(successor).await?;
        }
    }
    Ok(ended)
}

/// [`end_chain_with`] over synchronous steps (the ticket manager's
/// revocation store), completed in one poll.
pub(crate) fn end_chain(
    key: StoreKey,
    end_link: impl FnMut(&StoreKey, bool) -> Result<Link, Error>,
    after_link: impl FnMut(StoreKey) -> Result<bool, Error>,
) -> Result<bool, Error> {
    struct Steps<A, B>(A, B);
    impl<A, B> ChainEnd for Steps<A, B>
    where
        A: FnMut(&StoreKey, bool) -> Result<Link, Error>,
        B: FnMut(StoreKey) -> Result<bool, Error>,
    {
        fn end_link(
            &mut self,
            key: StoreKey,
            retire: bool,
        ) -> impl Future<Output = Result<Link, Error>> + Send {
            std::future::ready((self.0)(&key, retire))
        }
        fn after_link(
            &mut self,
            successor: StoreKey,
        ) -> impl Future<Output = Result<bool, Error>> + Send {
            std::future::ready((self.1)(successor))
        }
    }
    crate::store::driver::now_or_never(end_chain_with(key, &mut Steps(end_link, after_link)))
        .unwrap_or_else(|| Err(crate::store::driver::not_ready().into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn retired_tokens_follow_only_a_routine_rotation_within_grace() {
        let t = Timestamp::from_unix_millis(1_000_000);
        let end = t.saturating_add(Duration::from_secs(30));
        assert_eq!(retired(end, false, t), Retired::Follow);
        assert_eq!(retired(end, true, t), Retired::Superseded);
        assert_eq!(retired(end, false, end), Retired::Reused);
        assert_eq!(retired(end, true, end), Retired::Reused);
    }

    fn live_record(t: Timestamp, p: &Policy) -> Record {
        Record {
            version: 3,
            expires_at: t.saturating_add(p.idle_timeout()),
            state: RecordState::Live(LiveSession {
                created_at: t,
                last_seen: t,
                auth_at: None,
                absolute_deadline: t.saturating_add(p.absolute_timeout()),
                user: None,
                device: None,
                data: crate::SessionData::default(),
            }),
        }
    }

    fn rotated(t: Timestamp, p: &Policy, privilege_change: bool) -> Record {
        Record {
            version: 4,
            expires_at: t.saturating_add(p.absolute_timeout()),
            state: RecordState::Rotated {
                successor: StoreKey::from_bytes([7; 32]),
                sealed_successor: None,
                at: t,
                grace_until: t.saturating_add(p.rotation_grace()),
                privilege_change,
                pending: None,
            },
        }
    }

    #[test]
    fn judge_gives_every_row_of_the_table() {
        let core = Core::new(Policy::default());
        let p = core.policy.clone();
        let t = Timestamp::from_unix_millis(1_800_000_000_000);
        let later = |d: Duration| t.saturating_add(d);
        let grace = p.rotation_grace();

        let v = core.judge(live_record(t, &p), t);
        assert!(
            matches!(
                v,
                Verdict::Live {
                    touch: None,
                    version: 3,
                    ..
                }
            ),
            "{v:?}"
        );
        let v = core.judge(live_record(t, &p), later(p.touch_interval()));
        assert!(matches!(v, Verdict::Live { touch: Some(_), .. }), "{v:?}");
        let v = core.judge(live_record(t, &p), later(p.idle_timeout()));
        assert!(
            matches!(v, Verdict::Expired(Error::IdleExpired { .. })),
            "{v:?}"
        );

        let v = core.judge(rotated(t, &p, false), later(grace / 2));
        assert!(matches!(v, Verdict::Follow { version: 4, .. }), "{v:?}");
        let v = core.judge(rotated(t, &p, true), later(grace / 2));
        assert!(matches!(v, Verdict::Superseded), "{v:?}");
        for privilege_change in [false, true] {
            let v = core.judge(rotated(t, &p, privilege_change), later(grace));
            assert!(matches!(v, Verdict::Reused { revoke: true, .. }), "{v:?}");
        }
        // Retained until the absolute deadline, then as good as purged.
        let v = core.judge(rotated(t, &p, false), later(p.absolute_timeout()));
        assert!(matches!(v, Verdict::Unknown), "{v:?}");

        let ended = Record {
            version: 5,
            expires_at: later(p.absolute_timeout()),
            state: RecordState::Ended {
                reason: EndReason::Logout,
                at: t,
            },
        };
        let v = core.judge(ended, t);
        assert!(matches!(v, Verdict::Ended(EndReason::Logout)), "{v:?}");
    }

    fn session_of(user: Option<&str>, t: Timestamp, p: &Policy) -> Session {
        Session {
            id: None,
            key: StoreKey::from_bytes([1; 32]),
            version: 1,
            created_at: t,
            last_seen: t,
            auth_at: user.map(|_| t),
            absolute_deadline: t.saturating_add(p.absolute_timeout()),
            idle_deadline: t.saturating_add(p.idle_timeout()),
            user: user.map(str::to_owned),
            device: None,
            data: crate::SessionData::default(),
        }
    }

    #[test]
    fn reauthentication_is_a_privilege_change_that_extends_only_by_policy() {
        let t = Timestamp::from_unix_millis(1_800_000_000_000);
        let later = t.saturating_add(Duration::from_secs(3600));
        let keep = Core::new(Policy::default());
        let alice = session_of(Some("alice"), t, &keep.policy);
        let r = keep.reauthentication_of(&alice, later).unwrap();
        assert!(r.privilege_change());
        assert_eq!(
            r.successor_times(alice.auth_at, alice.absolute_deadline),
            (Some(later), alice.absolute_deadline)
        );
        assert!(matches!(
            keep.reauthentication_of(&session_of(None, t, &keep.policy), later),
            Err(Error::NotAuthenticated)
        ));

        let extend = Core::new(
            Policy::builder()
                .with_reauthentication_extends_absolute(true)
                .build()
                .unwrap(),
        );
        let r = extend.reauthentication_of(&alice, later).unwrap();
        let extended = later.saturating_add(extend.policy.absolute_timeout());
        assert_eq!(
            r.successor_times(alice.auth_at, alice.absolute_deadline),
            (Some(later), extended)
        );
        // The ticket cap counts from the last authentication only there.
        assert_eq!(keep.absolute_period_start(t, Some(later)), t);
        assert_eq!(extend.absolute_period_start(t, Some(later)), later);
        assert_eq!(extend.absolute_period_start(later, Some(t)), later);
        assert_eq!(extend.absolute_period_start(t, None), t);

        // The other rotations change neither time.
        for other in [Rotation::Routine, Rotation::Privilege] {
            assert_eq!(
                other.successor_times(alice.auth_at, alice.absolute_deadline),
                (alice.auth_at, alice.absolute_deadline)
            );
        }
        assert!(!Rotation::Routine.privilege_change());
        assert!(Rotation::Privilege.privilege_change());
    }

    #[test]
    fn freshness_is_under_max_age_and_never_without_an_authentication() {
        let t = Timestamp::from_unix_millis(1_800_000_000_000);
        let max = Duration::from_secs(300);
        assert!(require_recent_auth(Some(t), max, t).is_ok());
        let just = t.saturating_add(max - Duration::from_millis(1));
        assert!(require_recent_auth(Some(t), max, just).is_ok());
        let stale = require_recent_auth(Some(t), max, t.saturating_add(max));
        assert!(matches!(
            stale,
            Err(Error::ReauthenticationRequired { age: Some(a), max_age }) if a == max && max_age == max
        ));
        assert!(matches!(
            require_recent_auth(None, max, t),
            Err(Error::ReauthenticationRequired { age: None, .. })
        ));
        assert!(require_recent_auth(Some(t), Duration::ZERO, t).is_err());
    }

    #[test]
    fn expiry_names_the_clock_that_ended_the_session() {
        let core = Core::new(Policy::default());
        let p = core.policy.clone();
        let t = Timestamp::from_unix_millis(1_000_000);
        let abs = t.saturating_add(p.absolute_timeout());
        assert!(core.expiry(abs, t, t).is_none());
        let idle = t.saturating_add(p.idle_timeout());
        assert!(matches!(
            core.expiry(abs, t, idle),
            Some(Error::IdleExpired { .. })
        ));
        assert!(matches!(
            core.expiry(abs, t, abs),
            Some(Error::AbsoluteExpired { .. })
        ));
        assert_eq!(core.idle_deadline(abs, abs), abs);
    }
}
