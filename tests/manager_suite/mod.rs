//! The manager conformance suite: the rules of `latchkey::lifecycle`, one
//! test each, run through `Arc<dyn SessionManager>` against every manager
//! over every store. A test file includes this module and invokes
//! [`manager_conformance!`] with a closure that builds a manager from a
//! clock and a policy, and says which kind it is:
//!
//! ```ignore
//! mod manager_suite;
//! use manager_suite::{Kind, manager_conformance};
//! manager_conformance!(memory, |clock: &latchkey::ManualClock, policy| {
//!     let m = latchkey::StoreManager::new(latchkey::MemoryStore::new())
//!         .with_policy(policy)
//!         .with_clock(std::sync::Arc::new(clock.clone()));
//!     (std::sync::Arc::new(m) as _, Kind::Server)
//! });
//! ```
//!
//! One behaviour behind the trait: every case asserts the same outcome for
//! every manager, except where stateless tickets cannot keep a rule
//! without state. There the case asserts what the lifecycle docs promise
//! instead (a typed error, or the old ticket's own, unchanged claims).
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use latchkey::{
    Clock, EndReason, Error, ManualClock, NewSession, Policy, SessionId, SessionManager,
    UserLimitAction,
};

pub const IDLE: Duration = Duration::from_secs(600);
pub const ABSOLUTE: Duration = Duration::from_secs(3600);
pub const GRACE: Duration = Duration::from_secs(30);
pub const TOUCH: Duration = Duration::from_secs(60);
/// The re-authentication window the step-up cases ask for: shorter than
/// the idle timeout, so a session can be live and still not fresh.
pub const SUDO: Duration = Duration::from_secs(300);

/// Which manager a subject is, for the rules stateless tickets cannot keep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `StoreManager`: server-side state.
    Server,
    /// `TicketManager` with a revocation store.
    RevocableTickets,
    /// `TicketManager` without one.
    StatelessTickets,
}

impl Kind {
    /// Whether the manager keeps the state that retiring and ending a
    /// token needs.
    pub fn stateful(self) -> bool {
        self != Kind::StatelessTickets
    }
}

/// The suite's policy: short, distinct windows, and no per-user cap
/// (stateless tickets refuse one; the cap has a case of its own).
pub fn policy() -> Policy {
    Policy::builder()
        .with_idle_timeout(IDLE)
        .with_absolute_timeout(ABSOLUTE)
        .with_rotation_grace(GRACE)
        .with_touch_interval(TOUCH)
        .with_max_sessions_per_user(None, UserLimitAction::EvictOldest)
        .build()
        .unwrap()
}

/// Builds a manager under test from its clock and policy.
pub type Make = dyn Fn(&ManualClock, Policy) -> (Arc<dyn SessionManager>, Kind);

/// A manager under test.
pub struct Subject {
    pub m: Arc<dyn SessionManager>,
    pub clock: ManualClock,
    pub kind: Kind,
}

/// Builds a subject; the clock starts at the real time (Redis computes its
/// native expiry from it).
pub fn subject(make: &Make, policy: Policy) -> Subject {
    let clock = ManualClock::starting_now();
    let (m, kind) = make(&clock, policy);
    Subject { m, clock, kind }
}

/// Generates one `#[test]` per case for a manager.
macro_rules! manager_conformance {
    ($(#[$attr:meta])* $name:ident, $make:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            fn make(
                clock: &latchkey::ManualClock,
                policy: latchkey::Policy,
            ) -> (
                std::sync::Arc<dyn latchkey::SessionManager>,
                super::manager_suite::Kind,
            ) {
                #[allow(clippy::redundant_closure_call)]
                ($make)(clock, policy)
            }

            manager_conformance!(@cases make [$(#[$attr])*];
                created_session_loads_with_what_it_was_given,
                a_token_never_issued_is_refused_and_never_adopted,
                idle_and_absolute_expiry_say_which_clock_ended_the_session,
                activity_slides_the_idle_deadline_but_never_the_absolute_one,
                rotation_keeps_data_and_the_absolute_deadline,
                routine_rotation_keeps_in_flight_requests_working_in_grace,
                login_refuses_the_pre_login_token,
                change_privilege_refuses_the_old_token,
                reuse_after_grace_revokes_the_successor,
                terminate_ends_every_token_of_the_chain,
                terminate_from_a_copy_older_than_a_rotation_ends_the_session,
                login_as_another_user_ends_the_previous_users_session,
                a_copy_older_than_a_rotation_cannot_write,
                a_stale_copys_write_is_a_conflict_never_reuse,
                terminate_is_idempotent_and_final,
                terminate_all_ends_every_session_of_the_user,
                per_user_cap_is_kept_or_refused,
                a_label_over_the_limit_is_refused_at_create_and_login,
                debug_output_never_shows_a_token,
                a_fresh_login_passes_the_recent_auth_check_and_activity_never_refreshes_it,
                reauthenticate_refreshes_the_auth_time_and_refuses_the_old_token,
                reauthentication_keeps_the_absolute_deadline_by_default,
                reauthentication_extends_the_absolute_deadline_when_the_policy_says_so,
                an_anonymous_session_fails_the_check_and_cannot_reauthenticate,
                reauthenticate_never_revives_an_expired_ended_or_stale_copy,
            );
        }
    };
    (@cases $make:ident $attrs:tt; $($case:ident),* $(,)?) => {
        $(
            manager_conformance!(@case $make $attrs $case);
        )*
    };
    (@case $make:ident [$($attr:tt)*] $case:ident) => {
        #[test]
        $($attr)*
        fn $case() {
            super::manager_suite::$case(&$make);
        }
    };
}

pub(crate) use manager_conformance;

fn rejected(what: &str, r: Result<latchkey::Loaded, Error>) -> Error {
    match r {
        Ok(l) => panic!(
            "{what}: loaded (user {:?}, reissue {})",
            l.session.user(),
            l.reissue.is_some()
        ),
        Err(e) => {
            assert!(e.is_rejection(), "{what}: not a rejection: {e:?}");
            e
        }
    }
}

/// Loads `token` and returns the token the client holds afterwards (the
/// reissued one, if any).
fn visit(s: &Subject, token: &str) -> String {
    let loaded = s.m.load(token).unwrap();
    loaded
        .reissue
        .map_or_else(|| token.to_owned(), |i| i.token().to_owned())
}

pub fn created_session_loads_with_what_it_was_given(make: &Make) {
    let s = subject(make, policy());
    let new = NewSession::new()
        .with_user("alice")
        .with_device("phone")
        .with_value("cart", &["book"])
        .unwrap();
    let issued = s.m.create(new).unwrap();
    let loaded = s.m.load(issued.token()).unwrap();
    assert!(loaded.reissue.is_none());
    let session = loaded.session;
    assert_eq!(session.user(), Some("alice"));
    assert_eq!(session.device(), Some("phone"));
    assert_eq!(
        session.get::<Vec<String>>("cart").unwrap(),
        Some(vec!["book".to_owned()])
    );
    assert_eq!(session.fingerprint(), issued.fingerprint());
    assert_eq!(session.absolute_deadline(), issued.absolute_deadline());
}

pub fn a_token_never_issued_is_refused_and_never_adopted(make: &Make) {
    let s = subject(make, policy());
    let chosen = SessionId::generate().to_token();
    let e = rejected("a client-chosen token", s.m.load(&chosen));
    assert!(e.clears_cookie());
    for garbage in ["", "x", &"a".repeat(5000), "lk1.AAAA"] {
        rejected("garbage", s.m.load(garbage));
    }
}

pub fn idle_and_absolute_expiry_say_which_clock_ended_the_session(make: &Make) {
    let s = subject(make, policy());
    let idle = s.m.create(NewSession::new()).unwrap();
    s.clock.advance(IDLE);
    let e = rejected("idle", s.m.load(idle.token()));
    assert!(matches!(e, Error::IdleExpired { .. }), "{e:?}");

    let busy = s.m.create(NewSession::new().with_user("alice")).unwrap();
    let mut token = busy.token().to_owned();
    let steps = ABSOLUTE.as_secs() / (IDLE.as_secs() / 2);
    for _ in 0..steps - 1 {
        s.clock.advance(IDLE / 2);
        token = visit(&s, &token);
    }
    s.clock.advance(IDLE / 2);
    let e = rejected("absolute", s.m.load(&token));
    assert!(
        matches!(e, Error::AbsoluteExpired { deadline } if deadline == busy.absolute_deadline()),
        "{e:?}"
    );
}

pub fn activity_slides_the_idle_deadline_but_never_the_absolute_one(make: &Make) {
    let s = subject(make, policy());
    let issued = s.m.create(NewSession::new()).unwrap();
    s.clock.advance(TOUCH * 2);
    let token = visit(&s, issued.token());
    let later = s.m.load(&token).unwrap().session;
    assert!(later.idle_deadline() > issued.idle_deadline());
    assert_eq!(later.absolute_deadline(), issued.absolute_deadline());
}

pub fn rotation_keeps_data_and_the_absolute_deadline(make: &Make) {
    let s = subject(make, policy());
    let issued = s.m.create(NewSession::new().with_user("alice")).unwrap();
    let mut session = s.m.load(issued.token()).unwrap().session;
    session.insert("theme", &"dark").unwrap();
    s.clock.advance(Duration::from_secs(5));
    let rotated = s.m.rotate(&mut session).unwrap();
    assert_ne!(rotated.fingerprint(), issued.fingerprint());
    assert_eq!(rotated.absolute_deadline(), issued.absolute_deadline());
    let again = s.m.load(rotated.token()).unwrap().session;
    assert_eq!(
        again.get::<String>("theme").unwrap().as_deref(),
        Some("dark")
    );
    assert_eq!(again.user(), Some("alice"));
    assert_eq!(again.created_at(), session.created_at());
}

pub fn routine_rotation_keeps_in_flight_requests_working_in_grace(make: &Make) {
    let s = subject(make, policy());
    let issued = s.m.create(NewSession::new().with_user("alice")).unwrap();
    let mut session = s.m.load(issued.token()).unwrap().session;
    let rotated = s.m.rotate(&mut session).unwrap();
    s.clock.advance(GRACE / 2);
    let late = s.m.load(issued.token()).unwrap();
    assert_eq!(late.session.user(), Some("alice"));
    match s.kind {
        // Server-side: the old token resolves to the successor and moves
        // the client on to its token.
        Kind::Server => {
            assert_eq!(late.session.fingerprint(), rotated.fingerprint());
            assert_eq!(
                late.reissue.map(|i| i.fingerprint()),
                Some(rotated.fingerprint())
            );
        }
        // Tickets: the old ticket carries its own claims, and is not
        // re-signed (the client should hold the successor by now).
        _ => assert!(late.reissue.is_none()),
    }
}

/// Session fixation: a token planted before login never reaches the
/// logged-in session, nor its token, in the grace window or after.
pub fn login_refuses_the_pre_login_token(make: &Make) {
    let s = subject(make, policy());
    let planted = s.m.create(NewSession::new()).unwrap();
    let mut session = s.m.load(planted.token()).unwrap().session;
    let mine = s.m.login(&mut session, "victim").unwrap();
    assert_eq!(session.user(), Some("victim"));
    for (after, in_grace) in [(Duration::ZERO, true), (GRACE, false)] {
        s.clock.advance(after);
        let r = s.m.load(planted.token());
        if s.kind.stateful() {
            let e = rejected("the planted token", r);
            if in_grace {
                assert!(matches!(e, Error::Superseded), "{e:?}");
                assert!(!e.clears_cookie(), "an in-flight request keeps the cookie");
            } else {
                assert!(matches!(e, Error::RotatedTokenReused { .. }), "{e:?}");
            }
        } else {
            // A stateless ticket cannot be retired: it stays the anonymous
            // session it was, and never gains the login.
            let l = r.unwrap();
            assert_eq!(l.session.user(), None);
            assert!(l.reissue.is_none());
        }
        if in_grace {
            assert_eq!(
                s.m.load(mine.token()).unwrap().session.user(),
                Some("victim")
            );
        }
    }
}

pub fn change_privilege_refuses_the_old_token(make: &Make) {
    let s = subject(make, policy());
    let before = s.m.create(NewSession::new().with_user("alice")).unwrap();
    let mut session = s.m.load(before.token()).unwrap().session;
    session.insert("role", &"admin").unwrap();
    let after = s.m.change_privilege(&mut session).unwrap();
    assert_eq!(after.absolute_deadline(), before.absolute_deadline());
    let role = |t: &str| -> Option<String> {
        s.m.load(t)
            .ok()
            .and_then(|l| l.session.get::<String>("role").unwrap())
    };
    assert_eq!(role(after.token()).as_deref(), Some("admin"));
    assert_eq!(role(before.token()), None, "the old token gained the role");
    if s.kind.stateful() {
        let e = rejected("the old token", s.m.load(before.token()));
        assert!(matches!(e, Error::Superseded), "{e:?}");
    }
}

pub fn reuse_after_grace_revokes_the_successor(make: &Make) {
    let s = subject(make, policy());
    let first = s.m.create(NewSession::new().with_user("alice")).unwrap();
    let mut session = s.m.load(first.token()).unwrap().session;
    let second = s.m.rotate(&mut session).unwrap();
    s.clock.advance(GRACE);
    if !s.kind.stateful() {
        // Nothing records the rotation: the old ticket is still valid until
        // its idle deadline, and reuse cannot be seen.
        assert!(s.m.load(first.token()).is_ok());
        return;
    }
    let e = rejected("reuse", s.m.load(first.token()));
    assert!(
        matches!(
            e,
            Error::RotatedTokenReused {
                successor_revoked: true
            }
        ),
        "{e:?}"
    );
    let e = rejected("the successor", s.m.load(second.token()));
    assert!(
        matches!(
            e,
            Error::Terminated {
                reason: EndReason::ReuseDetected
            }
        ),
        "{e:?}"
    );
}

pub fn terminate_ends_every_token_of_the_chain(make: &Make) {
    let s = subject(make, policy());
    let t0 = s.m.create(NewSession::new().with_user("alice")).unwrap();
    let mut session = s.m.load(t0.token()).unwrap().session;
    let t1 = s.m.rotate(&mut session).unwrap();
    let t2 = s.m.login(&mut session, "alice").unwrap();
    let result = s.m.terminate(&session);
    if !s.kind.stateful() {
        assert!(matches!(result, Err(Error::RevocationNotConfigured)));
        assert!(s.m.load(t2.token()).is_ok(), "nothing was ended");
        return;
    }
    result.unwrap();
    for (name, t) in [("t0", &t0), ("t1", &t1), ("t2", &t2)] {
        rejected(name, s.m.load(t.token()));
    }
    s.clock.advance(GRACE);
    for (name, t) in [("t0", &t0), ("t1", &t1), ("t2", &t2)] {
        rejected(name, s.m.load(t.token()));
    }
}

/// Request A loads, request B rotates, A logs out with its copy.
pub fn terminate_from_a_copy_older_than_a_rotation_ends_the_session(make: &Make) {
    let s = subject(make, policy());
    if !s.kind.stateful() {
        return; // terminate is RevocationNotConfigured: its own case
    }
    let issued = s.m.create(NewSession::new().with_user("alice")).unwrap();
    let a = s.m.load(issued.token()).unwrap().session;
    let mut b = s.m.load(issued.token()).unwrap().session;
    let rotated = s.m.rotate(&mut b).unwrap();
    s.m.terminate(&a).unwrap();
    rejected("the old token", s.m.load(issued.token()));
    let e = rejected("the successor", s.m.load(rotated.token()));
    assert!(
        matches!(
            e,
            Error::Terminated {
                reason: EndReason::Logout
            }
        ),
        "{e:?}"
    );
}

pub fn login_as_another_user_ends_the_previous_users_session(make: &Make) {
    let s = subject(make, policy());
    let alice =
        s.m.create(
            NewSession::new()
                .with_user("alice")
                .with_value("secret", &"alice's")
                .unwrap(),
        )
        .unwrap();
    let mut a = s.m.load(alice.token()).unwrap().session;
    let mut b = s.m.load(alice.token()).unwrap().session;
    let rotated = s.m.rotate(&mut b).unwrap();
    let bob = s.m.login(&mut a, "bob").unwrap();
    let loaded = s.m.load(bob.token()).unwrap().session;
    assert_eq!(loaded.user(), Some("bob"));
    assert_eq!(
        loaded.get::<String>("secret").unwrap(),
        None,
        "data passed on"
    );
    if s.kind.stateful() {
        for t in [&alice, &rotated] {
            let e = rejected("alice's session", s.m.load(t.token()));
            assert!(
                matches!(
                    e,
                    Error::Terminated {
                        reason: EndReason::Replaced
                    }
                ),
                "{e:?}"
            );
        }
    }
}

pub fn a_copy_older_than_a_rotation_cannot_write(make: &Make) {
    let s = subject(make, policy());
    let issued = s.m.create(NewSession::new().with_user("alice")).unwrap();
    let mut stale = s.m.load(issued.token()).unwrap().session;
    let mut fresh = s.m.load(issued.token()).unwrap().session;
    s.m.rotate(&mut fresh).unwrap();
    stale.insert("n", &1).unwrap();
    let saved = s.m.save(&mut stale);
    let rotated = s.m.rotate(&mut stale);
    if s.kind.stateful() {
        assert!(matches!(saved, Err(Error::Conflict)), "{saved:?}");
        assert!(matches!(rotated, Err(Error::Conflict)), "{rotated:?}");
    } else {
        // Each ticket carries its own copy: there is no shared state to
        // overwrite, so nothing conflicts.
        assert!(saved.is_ok() && rotated.is_ok());
    }
}

/// A handler's copy from before a privilege change, written in the grace
/// window and after: a conflict each time, never a reuse that revokes the
/// new session.
pub fn a_stale_copys_write_is_a_conflict_never_reuse(make: &Make) {
    let s = subject(make, policy());
    if !s.kind.stateful() {
        return;
    }
    let issued = s.m.create(NewSession::new().with_user("alice")).unwrap();
    let stale = s.m.load(issued.token()).unwrap().session;
    let mut fresh = s.m.load(issued.token()).unwrap().session;
    let admin = s.m.change_privilege(&mut fresh).unwrap();
    for _ in 0..2 {
        let mut copy = stale.clone();
        copy.insert("n", &1).unwrap();
        let saved = s.m.save(&mut copy);
        assert!(matches!(saved, Err(Error::Conflict)), "{saved:?}");
        let rotated = s.m.rotate(&mut stale.clone());
        assert!(matches!(rotated, Err(Error::Conflict)), "{rotated:?}");
        assert!(
            s.m.load(admin.token()).is_ok(),
            "a stale write revoked the session"
        );
        s.clock.advance(GRACE);
    }
}

pub fn terminate_is_idempotent_and_final(make: &Make) {
    let s = subject(make, policy());
    if !s.kind.stateful() {
        return;
    }
    let issued = s.m.create(NewSession::new()).unwrap();
    let session = s.m.load(issued.token()).unwrap().session;
    s.m.terminate(&session).unwrap();
    s.m.terminate(&session).unwrap();
    let e = rejected("after logout", s.m.load(issued.token()));
    assert!(
        matches!(
            e,
            Error::Terminated {
                reason: EndReason::Logout
            }
        ),
        "{e:?}"
    );
    let mut copy = session.clone();
    copy.insert("n", &1).unwrap();
    let e = s.m.save(&mut copy).unwrap_err();
    assert!(e.is_rejection(), "a save after logout: {e:?}");
    s.clock.advance(IDLE);
    rejected("later", s.m.load(issued.token()));
}

/// "Log out everywhere": every session of the user ends, other users'
/// stay; sparing the current one where the manager can.
pub fn terminate_all_ends_every_session_of_the_user(make: &Make) {
    let s = subject(make, policy());
    let phone = s.m.create(NewSession::new().with_user("alice")).unwrap();
    let laptop = s.m.create(NewSession::new().with_user("alice")).unwrap();
    let bob = s.m.create(NewSession::new().with_user("bob")).unwrap();
    let current = s.m.load(laptop.token()).unwrap().session;
    let spared = s.m.terminate_all("alice", Some(&current));
    match s.kind {
        Kind::Server => {
            assert_eq!(spared.unwrap(), Some(1));
            rejected("the phone", s.m.load(phone.token()));
            assert!(
                s.m.load(laptop.token()).is_ok(),
                "the current one was spared"
            );
        }
        // A cutoff cannot spare one ticket: refused, not ignored.
        _ => assert!(matches!(spared, Err(Error::Unsupported(_))), "{spared:?}"),
    }
    s.clock.advance(Duration::from_millis(1));
    let all = s.m.terminate_all("alice", None);
    if !s.kind.stateful() {
        assert!(
            matches!(all, Err(Error::RevocationNotConfigured)),
            "{all:?}"
        );
        return;
    }
    let counted = all.unwrap();
    assert_eq!(counted.is_some(), s.kind == Kind::Server, "{counted:?}");
    for t in [&phone, &laptop] {
        let e = rejected("alice's session", s.m.load(t.token()));
        assert!(
            matches!(
                e,
                Error::Terminated {
                    reason: EndReason::LogoutAll
                }
            ),
            "{e:?}"
        );
    }
    assert!(
        s.m.load(bob.token()).is_ok(),
        "another user's session ended"
    );
}

pub fn per_user_cap_is_kept_or_refused(make: &Make) {
    let capped = Policy::builder()
        .with_idle_timeout(IDLE)
        .with_absolute_timeout(ABSOLUTE)
        .with_max_sessions_per_user(Some(1), UserLimitAction::EvictOldest)
        .build()
        .unwrap();
    let s = subject(make, capped);
    let first = s.m.create(NewSession::new().with_user("alice"));
    if s.kind != Kind::Server {
        // Tickets cannot count a user's sessions: refused, not ignored.
        assert!(matches!(first, Err(Error::Unsupported(_))), "{first:?}");
        let anon = s.m.create(NewSession::new()).unwrap();
        let mut session = s.m.load(anon.token()).unwrap().session;
        let login = s.m.login(&mut session, "alice");
        assert!(matches!(login, Err(Error::Unsupported(_))), "{login:?}");
        return;
    }
    let first = first.unwrap();
    s.clock.advance(Duration::from_millis(1));
    let second = s.m.create(NewSession::new().with_user("alice")).unwrap();
    let e = rejected("the evicted session", s.m.load(first.token()));
    assert!(
        matches!(
            e,
            Error::Terminated {
                reason: EndReason::Evicted
            }
        ),
        "{e:?}"
    );
    assert!(s.m.load(second.token()).is_ok());
}

/// A user name or device label the policy does not allow is refused with
/// a typed error, never stored (a 17 MiB user name once made a record the
/// file store wrote and then could not read back).
pub fn a_label_over_the_limit_is_refused_at_create_and_login(make: &Make) {
    let s = subject(make, policy());
    let limit = policy().max_label_bytes();
    let (fits, long) = ("u".repeat(limit), "u".repeat(limit + 1));
    assert!(
        s.m.create(NewSession::new().with_user(fits.as_str()))
            .is_ok()
    );
    for new in [
        NewSession::new().with_user(long.as_str()),
        NewSession::new().with_device(long.as_str()),
    ] {
        let e = s.m.create(new).unwrap_err();
        assert!(
            matches!(e, Error::LabelTooLong { len, .. } if len == limit + 1),
            "{e:?}"
        );
        assert!(!e.is_rejection() && !e.is_backend_failure());
    }
    let anon = s.m.create(NewSession::new()).unwrap();
    let mut session = s.m.load(anon.token()).unwrap().session;
    let e = s.m.login(&mut session, &long).unwrap_err();
    assert!(matches!(e, Error::LabelTooLong { .. }), "{e:?}");
    assert_eq!(session.user(), None, "a refused login changes nothing");
    assert!(s.m.load(anon.token()).is_ok());
}

pub fn debug_output_never_shows_a_token(make: &Make) {
    let s = subject(make, policy());
    let issued = s.m.create(NewSession::new().with_user("alice")).unwrap();
    let loaded = s.m.load(issued.token()).unwrap();
    for shown in [
        format!("{:?}", s.m),
        format!("{issued:?}"),
        format!("{loaded:?}"),
    ] {
        assert!(!shown.contains(issued.token()), "{shown}");
    }
}

/// Asserts `r` is the step-up error, with `age`, and that a framework
/// keeps the session for it.
fn needs_reauthentication(what: &str, r: Result<(), Error>, age: Option<Duration>) {
    match r {
        Ok(()) => panic!("{what}: passed the recent-auth check"),
        Err(e) => {
            assert!(
                matches!(e, Error::ReauthenticationRequired { age: a, max_age } if a == age && max_age == SUDO),
                "{what}: {e:?}"
            );
            assert!(!e.is_rejection(), "{what}: a rejection");
            assert!(!e.clears_cookie(), "{what}: clears the cookie");
            assert!(!e.is_backend_failure(), "{what}: a backend failure");
            assert_eq!(e.reason(), "reauthentication_required");
        }
    }
}

/// Keeps `token` in use (a load every half idle timeout) until `until`,
/// and returns the token the client holds then.
fn keep_alive(s: &Subject, token: &str, until: latchkey::Timestamp) -> String {
    let mut token = token.to_owned();
    while s.clock.now().saturating_add(IDLE / 2) < until {
        s.clock.advance(IDLE / 2);
        token = visit(s, &token);
    }
    token
}

/// Step-up (ASVS 5.0 7.5.1): a login is fresh; time makes it stale, and
/// loads (activity) never refresh it.
pub fn a_fresh_login_passes_the_recent_auth_check_and_activity_never_refreshes_it(make: &Make) {
    let s = subject(make, policy());
    let created = s.m.create(NewSession::new().with_user("alice")).unwrap();
    let session = s.m.load(created.token()).unwrap().session;
    s.m.require_recent_auth(&session, SUDO).unwrap();

    let anon = s.m.create(NewSession::new()).unwrap();
    let mut session = s.m.load(anon.token()).unwrap().session;
    s.clock.advance(Duration::from_secs(7));
    let login_at = s.clock.now();
    let mine = s.m.login(&mut session, "alice").unwrap();
    assert_eq!(session.authenticated_at(), Some(login_at));
    s.m.require_recent_auth(&session, SUDO).unwrap();

    // Activity past the touch interval, up to just before the window ends:
    // still fresh, and the authentication time has not moved.
    s.clock.advance(TOUCH * 2);
    let token = visit(&s, mine.token());
    s.clock.advance(SUDO - TOUCH * 2 - Duration::from_millis(1));
    let loaded = s.m.load(&token).unwrap().session;
    assert_eq!(loaded.authenticated_at(), Some(login_at));
    s.m.require_recent_auth(&loaded, SUDO).unwrap();

    // The window is over: stale, though the session is live and busy.
    s.clock.advance(Duration::from_millis(1));
    let token = visit(&s, &token);
    let loaded = s.m.load(&token).unwrap().session;
    assert_eq!(loaded.authenticated_at(), Some(login_at));
    needs_reauthentication(
        "the loaded session",
        s.m.require_recent_auth(&loaded, SUDO),
        Some(SUDO),
    );
    needs_reauthentication(
        "the login's copy",
        s.m.require_recent_auth(&session, SUDO),
        Some(SUDO),
    );
}

/// A re-authentication stamps a new authentication time, writes the
/// session's changes, and rotates as a privilege change: the old token is
/// refused as after `change_privilege` (stateless tickets: it keeps its
/// own, stale claims).
pub fn reauthenticate_refreshes_the_auth_time_and_refuses_the_old_token(make: &Make) {
    let s = subject(make, policy());
    let before = s.m.create(NewSession::new().with_user("alice")).unwrap();
    let first_auth = s.clock.now();
    s.clock.advance(SUDO * 3 / 2);
    let mut session = s.m.load(before.token()).unwrap().session;
    needs_reauthentication(
        "before",
        s.m.require_recent_auth(&session, SUDO),
        Some(SUDO * 3 / 2),
    );

    session.insert("step", &"up").unwrap();
    let now = s.clock.now();
    let after = s.m.reauthenticate(&mut session).unwrap();
    assert_ne!(after.fingerprint(), before.fingerprint(), "not rotated");
    assert_eq!(session.fingerprint(), after.fingerprint());
    assert_eq!(session.authenticated_at(), Some(now));
    assert_eq!(session.user(), Some("alice"));
    s.m.require_recent_auth(&session, SUDO).unwrap();

    let fresh = s.m.load(after.token()).unwrap().session;
    assert_eq!(fresh.authenticated_at(), Some(now));
    assert_eq!(fresh.user(), Some("alice"));
    assert_eq!(fresh.get::<String>("step").unwrap().as_deref(), Some("up"));
    s.m.require_recent_auth(&fresh, SUDO).unwrap();

    for (after_grace, in_grace) in [(Duration::ZERO, true), (GRACE, false)] {
        s.clock.advance(after_grace);
        let r = s.m.load(before.token());
        if s.kind.stateful() {
            let e = rejected("the pre-reauthentication token", r);
            if in_grace {
                assert!(matches!(e, Error::Superseded), "{e:?}");
                assert!(!e.clears_cookie(), "an in-flight request keeps the cookie");
            } else {
                assert!(matches!(e, Error::RotatedTokenReused { .. }), "{e:?}");
            }
        } else {
            // Not retired: the old ticket is what it was, with its old
            // authentication time, and never gains the fresh one.
            let l = r.unwrap();
            assert_eq!(l.session.authenticated_at(), Some(first_auth));
            if let Some(r) = &l.reissue {
                assert_eq!(
                    r.fingerprint(),
                    before.fingerprint(),
                    "handed a new session"
                );
            }
            assert_eq!(l.session.get::<String>("step").unwrap(), None);
            needs_reauthentication(
                "the old ticket",
                s.m.require_recent_auth(&l.session, SUDO),
                Some(s.clock.now().duration_since(first_auth)),
            );
        }
        if in_grace {
            s.m.require_recent_auth(&s.m.load(after.token()).unwrap().session, SUDO)
                .unwrap();
        }
    }
}

/// By default a re-authentication keeps the absolute deadline: the session
/// still ends when its login said it would (ASVS 5.0 7.3.2).
pub fn reauthentication_keeps_the_absolute_deadline_by_default(make: &Make) {
    let p = policy();
    assert!(!p.reauthentication_extends_absolute());
    let s = subject(make, p);
    let created = s.m.create(NewSession::new().with_user("alice")).unwrap();
    let deadline = created.absolute_deadline();
    let token = keep_alive(
        &s,
        created.token(),
        s.clock.now().saturating_add(ABSOLUTE / 2),
    );
    let mut session = s.m.load(&token).unwrap().session;
    let again = s.m.reauthenticate(&mut session).unwrap();
    assert_eq!(again.absolute_deadline(), deadline);
    assert_eq!(session.absolute_deadline(), deadline);
    assert_eq!(
        s.m.load(again.token()).unwrap().session.absolute_deadline(),
        deadline
    );

    let token = keep_alive(&s, again.token(), deadline);
    assert!(s.clock.now() < deadline);
    s.clock.advance(deadline.duration_since(s.clock.now()));
    let e = rejected("past the login's absolute deadline", s.m.load(&token));
    assert!(
        matches!(e, Error::AbsoluteExpired { deadline: d } if d == deadline),
        "{e:?}"
    );
}

/// With `reauthentication_extends_absolute`, a re-authentication (and only
/// a re-authentication: not activity, not a login) starts a new absolute
/// period.
pub fn reauthentication_extends_the_absolute_deadline_when_the_policy_says_so(make: &Make) {
    let p = policy()
        .to_builder()
        .with_reauthentication_extends_absolute(true)
        .build()
        .unwrap();
    let s = subject(make, p);
    let anon = s.m.create(NewSession::new()).unwrap();
    let created_at = s.clock.now();
    let first = anon.absolute_deadline();
    s.clock.advance(Duration::from_secs(5));
    let mut session = s.m.load(anon.token()).unwrap().session;
    let login = s.m.login(&mut session, "alice").unwrap();
    assert_eq!(
        login.absolute_deadline(),
        first,
        "a login moved the deadline"
    );

    let token = keep_alive(
        &s,
        login.token(),
        s.clock.now().saturating_add(ABSOLUTE / 2),
    );
    let loaded = s.m.load(&token).unwrap().session;
    assert_eq!(
        loaded.absolute_deadline(),
        first,
        "activity moved the deadline"
    );

    let mut session = loaded;
    let now = s.clock.now();
    let extended = now.saturating_add(ABSOLUTE);
    let again = s.m.reauthenticate(&mut session).unwrap();
    assert_eq!(again.absolute_deadline(), extended);
    assert_eq!(session.absolute_deadline(), extended);
    assert_eq!(session.created_at(), created_at, "creation is history");
    let loaded = s.m.load(again.token()).unwrap().session;
    assert_eq!(loaded.absolute_deadline(), extended);
    assert_eq!(loaded.created_at(), created_at);

    // Alive past the first deadline, ended at the new one.
    let token = keep_alive(&s, again.token(), extended);
    assert!(s.clock.now() > first);
    assert!(s.m.load(&token).is_ok());
    s.clock.advance(extended.duration_since(s.clock.now()));
    let e = rejected("past the new absolute deadline", s.m.load(&token));
    assert!(
        matches!(e, Error::AbsoluteExpired { deadline } if deadline == extended),
        "{e:?}"
    );
}

/// An anonymous session never authenticated: it fails the check (with no
/// age), and re-authenticating it is a typed error that changes nothing:
/// it logs in instead.
pub fn an_anonymous_session_fails_the_check_and_cannot_reauthenticate(make: &Make) {
    let s = subject(make, policy());
    let anon = s.m.create(NewSession::new()).unwrap();
    let mut session = s.m.load(anon.token()).unwrap().session;
    assert_eq!(session.authenticated_at(), None);
    needs_reauthentication("anonymous", s.m.require_recent_auth(&session, SUDO), None);

    let e = s.m.reauthenticate(&mut session).unwrap_err();
    assert!(matches!(e, Error::NotAuthenticated), "{e:?}");
    assert!(!e.is_rejection() && !e.clears_cookie() && !e.is_backend_failure());
    assert_eq!(e.reason(), "not_authenticated");
    assert_eq!(
        session.fingerprint(),
        anon.fingerprint(),
        "the session changed"
    );
    assert_eq!(session.authenticated_at(), None);
    let still = s.m.load(anon.token()).unwrap();
    assert_eq!(still.session.user(), None);
    assert!(still.reissue.is_none());

    // Logging in is the way.
    s.m.login(&mut session, "alice").unwrap();
    s.m.require_recent_auth(&session, SUDO).unwrap();
}

/// A re-authentication writes from a session copy like any rotation, and is
/// checked as that copy: it never brings back a session past its absolute
/// deadline (even where the policy would extend it), ended, or rotated
/// meanwhile.
pub fn reauthenticate_never_revives_an_expired_ended_or_stale_copy(make: &Make) {
    let extending = policy()
        .to_builder()
        .with_reauthentication_extends_absolute(true)
        .build()
        .unwrap();
    let s = subject(make, extending);

    // Past the absolute deadline.
    let issued = s.m.create(NewSession::new().with_user("alice")).unwrap();
    let token = keep_alive(&s, issued.token(), issued.absolute_deadline());
    let mut late = s.m.load(&token).unwrap().session;
    s.clock
        .advance(issued.absolute_deadline().duration_since(s.clock.now()));
    let e = s.m.reauthenticate(&mut late).unwrap_err();
    assert!(matches!(e, Error::AbsoluteExpired { .. }), "{e:?}");
    rejected("the expired session", s.m.load(&token));

    // Rotated meanwhile (another request's copy).
    let issued = s.m.create(NewSession::new().with_user("alice")).unwrap();
    let mut stale = s.m.load(issued.token()).unwrap().session;
    let mut other = s.m.load(issued.token()).unwrap().session;
    let rotated = s.m.rotate(&mut other).unwrap();
    let r = s.m.reauthenticate(&mut stale);
    if s.kind.stateful() {
        assert!(matches!(r, Err(Error::Conflict)), "{r:?}");
        assert!(
            s.m.load(rotated.token()).is_ok(),
            "a stale copy revoked the session"
        );
    } else {
        // Each ticket carries its own copy: nothing to conflict with.
        r.unwrap();
    }
    if !s.kind.stateful() {
        return; // nothing can be ended without state
    }

    // Logged out meanwhile.
    let issued = s.m.create(NewSession::new().with_user("alice")).unwrap();
    let mut copy = s.m.load(issued.token()).unwrap().session;
    s.m.terminate(&copy).unwrap();
    let e = s.m.reauthenticate(&mut copy).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Terminated {
                reason: EndReason::Logout
            }
        ),
        "{e:?}"
    );
    rejected("after logout", s.m.load(issued.token()));

    // Logged out everywhere meanwhile: a fresh proof on a copy from before
    // does not undo it.
    let issued = s.m.create(NewSession::new().with_user("bob")).unwrap();
    let mut copy = s.m.load(issued.token()).unwrap().session;
    s.clock.advance(Duration::from_millis(1));
    s.m.terminate_all("bob", None).unwrap();
    s.clock.advance(Duration::from_millis(1));
    let e = s.m.reauthenticate(&mut copy).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Terminated {
                reason: EndReason::LogoutAll
            }
        ),
        "{e:?}"
    );
    assert_eq!(copy.fingerprint(), issued.fingerprint(), "the copy changed");
    rejected("after logout everywhere", s.m.load(issued.token()));
}
