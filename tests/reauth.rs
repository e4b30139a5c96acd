//! Re-authentication ("sudo mode", step-up) through the public API: the
//! freshness check's edges, the error a framework maps, the policy switch
//! and its presets, what a re-authentication reports, and what a failed one
//! leaves behind. The rules both managers share run over every store in
//! the manager conformance suite (`tests/manager_suite`); these are the
//! details behind them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use latchkey::{
    Error, Event, KeyRing, ManualClock, MemoryStore, NewSession, Observer, Policy, SessionManager,
    Store, StoreManager, TicketKey, TicketManager, Timestamp,
};

const T0: Timestamp = Timestamp::from_unix_millis(1_800_000_000_000);
const SUDO: Duration = Duration::from_secs(600);
const MS: Duration = Duration::from_millis(1);

fn at(d: Duration) -> Timestamp {
    T0.saturating_add(d)
}

fn server(policy: Policy) -> StoreManager<MemoryStore> {
    let clock = Arc::new(ManualClock::new(T0));
    StoreManager::new(MemoryStore::new().with_clock(clock.clone()))
        .with_policy(policy)
        .with_clock(clock)
}

fn tickets(key: &TicketKey, policy: Policy) -> TicketManager {
    TicketManager::new("session", KeyRing::new(1, key.clone()))
        .unwrap()
        .with_policy(policy.without_user_cap())
        .with_clock(Arc::new(ManualClock::new(T0)))
        .with_revocation(MemoryStore::new())
}

fn extending() -> Policy {
    Policy::builder()
        .with_reauthentication_extends_absolute(true)
        .build()
        .unwrap()
}

/// Records every event.
#[derive(Debug, Default)]
struct Log(Mutex<Vec<Event>>);

impl Observer for Log {
    fn on_event(&self, event: &Event) {
        self.0.lock().unwrap().push(event.clone());
    }
}

#[test]
fn the_step_up_error_keeps_the_session_and_reads_as_a_sentence() {
    let stale = Error::ReauthenticationRequired {
        age: Some(Duration::from_secs(900)),
        max_age: SUDO,
    };
    let never = Error::ReauthenticationRequired {
        age: None,
        max_age: SUDO,
    };
    assert_eq!(
        stale.to_string(),
        "re-authentication required: last authenticated 900s ago, over the 600s allowed"
    );
    assert_eq!(
        never.to_string(),
        "re-authentication required: the session was never authenticated"
    );
    assert_eq!(
        Error::NotAuthenticated.to_string(),
        "the session has no user to re-authenticate; log in instead"
    );
    for e in [&stale, &never, &Error::NotAuthenticated] {
        assert!(!e.is_rejection(), "{e}");
        assert!(!e.clears_cookie(), "{e}");
        assert!(!e.is_backend_failure(), "{e}");
        assert!(std::error::Error::source(e).is_none(), "{e}");
    }
    assert_eq!(stale.reason(), "reauthentication_required");
    assert_eq!(never.reason(), "reauthentication_required");
    assert_eq!(Error::NotAuthenticated.reason(), "not_authenticated");
    // Stable codes of their own: no other error shares them.
    for other in [
        Error::Unknown,
        Error::Superseded,
        Error::Conflict,
        Error::RevocationNotConfigured,
        Error::Unsupported("x"),
    ] {
        assert_ne!(other.reason(), stale.reason());
        assert_ne!(other.reason(), Error::NotAuthenticated.reason());
    }
}

#[test]
fn freshness_ends_exactly_max_age_after_authentication() {
    let m = server(Policy::default());
    let issued = m
        .create_at(NewSession::new().with_user("alice"), T0)
        .unwrap();
    let s = m.load_at(issued.token(), T0).unwrap().session;
    assert_eq!(s.authenticated_at(), Some(T0));
    s.require_recent_auth_at(SUDO, T0).unwrap();
    s.require_recent_auth_at(SUDO, at(SUDO - MS)).unwrap();
    let e = s.require_recent_auth_at(SUDO, at(SUDO)).unwrap_err();
    assert!(
        matches!(e, Error::ReauthenticationRequired { age: Some(a), max_age } if a == SUDO && max_age == SUDO),
        "{e:?}"
    );
    // A zero window is never satisfied, not even at the instant of login.
    let e = s.require_recent_auth_at(Duration::ZERO, T0).unwrap_err();
    assert!(
        matches!(
            e,
            Error::ReauthenticationRequired {
                age: Some(Duration::ZERO),
                ..
            }
        ),
        "{e:?}"
    );
    // An authentication stamped by a process whose clock runs ahead counts
    // as just now, not as an error.
    let behind = Timestamp::from_unix_millis(T0.as_unix_millis() - 5_000);
    s.require_recent_auth_at(SUDO, behind).unwrap();
}

#[test]
fn the_managers_check_on_their_own_clock() {
    let clock = Arc::new(ManualClock::new(T0));
    let m = StoreManager::new(MemoryStore::new()).with_clock(clock.clone());
    let issued = m.create(NewSession::new().with_user("alice")).unwrap();
    let s = m.load(issued.token()).unwrap().session;
    m.require_recent_auth(&s, SUDO).unwrap();
    clock.advance(SUDO);
    assert!(m.require_recent_auth(&s, SUDO).is_err());

    let t = TicketManager::new("session", KeyRing::new(1, TicketKey::generate()))
        .unwrap()
        .with_clock(clock.clone());
    let issued = t.create(NewSession::new().with_user("alice")).unwrap();
    let s = t.load(issued.token()).unwrap().session;
    t.require_recent_auth(&s, SUDO).unwrap();
    clock.advance(SUDO);
    assert!(t.require_recent_auth(&s, SUDO).is_err());
}

#[test]
fn no_preset_lets_a_reauthentication_extend_the_absolute_deadline() {
    for p in [
        Policy::default(),
        Policy::owasp(),
        Policy::nist_aal1(),
        Policy::nist_aal2(),
        Policy::nist_aal3(),
    ] {
        assert!(!p.reauthentication_extends_absolute(), "{p:?}");
    }
    let on = Policy::nist_aal2()
        .to_builder()
        .with_reauthentication_extends_absolute(true)
        .build()
        .unwrap();
    assert!(on.reauthentication_extends_absolute());
    assert_ne!(on, Policy::nist_aal2());
    assert_eq!(on.to_builder().build().unwrap(), on, "kept by to_builder");
    assert_eq!(
        on.absolute_timeout(),
        Policy::nist_aal2().absolute_timeout()
    );
}

/// A re-authentication is an authentication: observers (audit logs) see a
/// login of the same user, from the old session key to the new.
#[test]
fn reauthentication_is_reported_as_a_login_without_the_token() {
    let key = TicketKey::generate();
    let managers: [(Arc<Log>, Box<dyn SessionManager>); 2] = {
        let (a, b) = (Arc::new(Log::default()), Arc::new(Log::default()));
        [
            (
                a.clone(),
                Box::new(server(Policy::default()).with_observer(a)),
            ),
            (
                b.clone(),
                Box::new(tickets(&key, Policy::default()).with_observer(b)),
            ),
        ]
    };
    for (log, m) in managers {
        let issued = m.create(NewSession::new().with_user("alice")).unwrap();
        let mut s = m.load(issued.token()).unwrap().session;
        let again = m.reauthenticate(&mut s).unwrap();
        let events = log.0.lock().unwrap();
        let last = events.last().expect("an event");
        assert_eq!(
            last,
            &Event::LoggedIn {
                from: issued.fingerprint(),
                to: again.fingerprint(),
                user: "alice".into(),
            }
        );
        for e in events.iter() {
            assert!(!e.to_string().contains(again.token()), "{e}");
            assert!(!e.to_string().contains(issued.token()), "{e}");
        }
    }
}

#[test]
fn a_failed_server_reauthentication_leaves_the_session_as_it_was() {
    let small = Policy::builder().with_max_data_bytes(64).build().unwrap();
    let m = server(small);
    let issued = m
        .create_at(NewSession::new().with_user("alice"), T0)
        .unwrap();
    let later = at(Duration::from_secs(60));
    let mut s = m.load_at(issued.token(), later).unwrap().session;
    s.insert("blob", &"x".repeat(100)).unwrap();
    let e = m.reauthenticate_at(&mut s, later).unwrap_err();
    assert!(matches!(e, Error::TooLarge { .. }), "{e:?}");
    assert_eq!(s.authenticated_at(), Some(T0));
    assert_eq!(s.fingerprint(), issued.fingerprint());
    assert_eq!(s.absolute_deadline(), issued.absolute_deadline());
    // Nothing was retired: the token still loads, as it was.
    let still = m.load_at(issued.token(), later).unwrap().session;
    assert_eq!(still.authenticated_at(), Some(T0));
    s.remove("blob");
    m.reauthenticate_at(&mut s, later).unwrap();
    assert_eq!(s.authenticated_at(), Some(later));
}

#[test]
fn a_ticket_too_large_to_issue_retires_nothing() {
    let m = tickets(&TicketKey::generate(), Policy::default());
    let issued = m
        .create_at(NewSession::new().with_user("alice"), T0)
        .unwrap();
    let later = at(Duration::from_secs(60));
    let mut s = m.load_at(issued.token(), later).unwrap().session;
    s.insert("blob", &"x".repeat(5_000)).unwrap();
    let e = m.reauthenticate_at(&mut s, later).unwrap_err();
    assert!(matches!(e, Error::TicketTooLarge { .. }), "{e:?}");
    assert_eq!(s.authenticated_at(), Some(T0));
    assert_eq!(s.fingerprint(), issued.fingerprint());
    let still = m.load_at(issued.token(), later).unwrap();
    assert_eq!(still.session.authenticated_at(), Some(T0));
}

/// With the extension, the retired token stays on record for as long as the
/// session can now live: reuse of it stays detectable after the first
/// deadline.
#[test]
fn an_extended_sessions_retired_token_is_kept_until_the_new_deadline() {
    let m = server(extending());
    let issued = m
        .create_at(NewSession::new().with_user("alice"), T0)
        .unwrap();
    // Within the idle timeout (20 minutes), so the session is live.
    let later = at(Duration::from_secs(600));
    let mut s = m.load_at(issued.token(), later).unwrap().session;
    let old_key = *s.store_key();
    let again = m.reauthenticate_at(&mut s, later).unwrap();
    let extended = later.saturating_add(m.policy().absolute_timeout());
    assert_eq!(again.absolute_deadline(), extended);
    assert!(extended > issued.absolute_deadline());
    let retired = m.store().get(&old_key).unwrap().expect("retired record");
    assert_eq!(retired.expires_at, extended);
}

/// A ticket's deadlines are capped by the current policy: one extended by a
/// re-authentication falls back to its creation's deadline on a verifier
/// whose policy does not extend.
#[test]
fn an_extended_ticket_is_capped_again_where_the_policy_does_not_extend() {
    let key = TicketKey::generate();
    let (extend, keep) = (tickets(&key, extending()), tickets(&key, Policy::default()));
    let issued = extend
        .create_at(NewSession::new().with_user("alice"), T0)
        .unwrap();
    let first = issued.absolute_deadline();
    let later = at(Duration::from_secs(600));
    let mut s = extend.load_at(issued.token(), later).unwrap().session;
    let again = extend.reauthenticate_at(&mut s, later).unwrap();
    assert!(again.absolute_deadline() > first);

    let just_after = first.saturating_add(MS);
    // Still in use on the extending verifier (reissued to slide the idle
    // deadline), refused on the other with the creation's deadline.
    let mut token = again.token().to_owned();
    let mut now = later;
    while now < just_after {
        now = now.saturating_add(Duration::from_secs(600)).min(just_after);
        let loaded = extend.load_at(&token, now).unwrap();
        if let Some(r) = loaded.reissue {
            token = r.token().to_owned();
        }
    }
    let e = keep.load_at(&token, just_after).unwrap_err();
    assert!(
        matches!(e, Error::AbsoluteExpired { deadline } if deadline == first),
        "{e:?}"
    );
}

/// Logging out ends the session whichever copy asks: the fresh one, or a
/// request's copy from before the re-authentication (every token of the
/// chain fails; the old one in its grace window as `Superseded`, as after
/// any privilege change).
#[test]
fn logout_after_reauthentication_ends_the_session_from_either_copy() {
    let key = TicketKey::generate();
    let managers: [Box<dyn SessionManager>; 2] = [
        Box::new(server(Policy::default())),
        Box::new(tickets(&key, Policy::default())),
    ];
    for m in managers {
        for from_old_copy in [false, true] {
            let issued = m.create(NewSession::new().with_user("alice")).unwrap();
            let old_copy = m.load(issued.token()).unwrap().session;
            let mut s = m.load(issued.token()).unwrap().session;
            let again = m.reauthenticate(&mut s).unwrap();
            assert!(matches!(m.load(issued.token()), Err(Error::Superseded)));
            m.terminate(if from_old_copy { &old_copy } else { &s })
                .unwrap();
            let e = m.load(again.token()).unwrap_err();
            assert!(
                matches!(
                    e,
                    Error::Terminated {
                        reason: latchkey::EndReason::Logout
                    }
                ),
                "{m:?}, from the old copy: {from_old_copy}: {e:?}"
            );
            assert!(m.load(issued.token()).unwrap_err().is_rejection());
        }
    }
}
