//! The lifecycle's edges that once broke, each a test of its own: session
//! fixation through the rotation grace window, a logout lost to a
//! concurrent rotation, tickets that behaved differently from server-side
//! sessions, and a per-user cap that tickets ignored. (The fourth defect,
//! a crash mid-rotation, is `sigkill_mid_rotation_leaves_exactly_one_live_session`
//! in `tests/file_store.rs` and the fault sweep in `tests/manager_faults.rs`.)

use std::sync::Arc;
use std::time::Duration;

use latchkey::{
    Error, KeyRing, ManualClock, MemoryStore, NewSession, Policy, SessionManager, StoreManager,
    TicketKey, TicketManager, Timestamp, UserLimitAction,
};

const START: Timestamp = Timestamp::from_unix_millis(1_795_392_000_000);

fn clock() -> ManualClock {
    ManualClock::new(START)
}

fn store_manager(clock: &ManualClock) -> StoreManager<MemoryStore> {
    StoreManager::new(MemoryStore::new().with_clock(Arc::new(clock.clone())))
        .with_clock(Arc::new(clock.clone()))
}

fn ticket_manager(clock: &ManualClock) -> TicketManager {
    TicketManager::new("session", KeyRing::new(1, TicketKey::generate()))
        .unwrap()
        .with_clock(Arc::new(clock.clone()))
        .with_revocation(MemoryStore::new().with_clock(Arc::new(clock.clone())))
}

/// Defect 1: the token an attacker planted before login must not load the
/// victim's logged-in session, nor be handed the new token, at any time.
fn planted_token_never_reaches_the_login(m: &dyn SessionManager, clock: &ManualClock) {
    let planted = m.create(NewSession::new()).unwrap();
    let mut session = m.load(planted.token()).unwrap().session;
    let logged_in = m.login(&mut session, "victim").unwrap();
    for secs in [0, 1, 29, 31, 600] {
        clock.set(START.saturating_add(Duration::from_secs(secs)));
        match m.load(planted.token()) {
            Ok(loaded) => {
                assert_ne!(
                    loaded.session.user(),
                    Some("victim"),
                    "after {secs} s the planted token loads the victim's session"
                );
                assert!(
                    loaded.reissue.is_none(),
                    "after {secs} s the planted token is handed a new token"
                );
            }
            Err(e) => assert!(e.is_rejection(), "{e:?}"),
        }
        if secs < 600 {
            // The victim's own session is unharmed by the attempt within grace.
            if secs < 30 {
                assert_eq!(
                    m.load(logged_in.token()).unwrap().session.user(),
                    Some("victim")
                );
            }
        }
    }
}

#[test]
fn store_manager_planted_token_never_reaches_the_login() {
    let clock = clock();
    planted_token_never_reaches_the_login(&store_manager(&clock), &clock);
}

#[test]
fn ticket_manager_planted_token_never_reaches_the_login() {
    let clock = clock();
    planted_token_never_reaches_the_login(&ticket_manager(&clock), &clock);
}

/// Defect 2: request A loads, request B rotates, A logs out with its copy.
/// The logout must end the session: neither token may load afterwards.
fn logout_from_a_stale_copy_ends_the_rotated_session(m: &dyn SessionManager) {
    let issued = m.create(NewSession::new().with_user("alice")).unwrap();
    let a = m.load(issued.token()).unwrap().session;
    let mut b = m.load(issued.token()).unwrap().session;
    let rotated = m.rotate(&mut b).unwrap();
    m.terminate(&a).unwrap();
    let old = m.load(issued.token());
    assert!(
        old.as_ref().is_err_and(Error::is_rejection),
        "the old token still loads: {old:?}"
    );
    let new = m.load(rotated.token());
    assert!(
        new.as_ref().is_err_and(Error::is_rejection),
        "the successor outlived the logout: {new:?}"
    );
}

#[test]
fn store_manager_logout_from_a_stale_copy_ends_the_rotated_session() {
    logout_from_a_stale_copy_ends_the_rotated_session(&store_manager(&clock()));
}

#[test]
fn ticket_manager_logout_from_a_stale_copy_ends_the_rotated_session() {
    logout_from_a_stale_copy_ends_the_rotated_session(&ticket_manager(&clock()));
}

/// Defect 2, the login form: another user logs in on a copy loaded before
/// a concurrent rotation; the previous user's session must end.
fn login_as_another_user_on_a_stale_copy_ends_the_previous_session(m: &dyn SessionManager) {
    let issued = m.create(NewSession::new().with_user("alice")).unwrap();
    let mut a = m.load(issued.token()).unwrap().session;
    let mut b = m.load(issued.token()).unwrap().session;
    let rotated = m.rotate(&mut b).unwrap();
    let bob = m.login(&mut a, "bob").unwrap();
    assert_eq!(m.load(bob.token()).unwrap().session.user(), Some("bob"));
    let alice = m.load(rotated.token());
    assert!(
        alice.as_ref().is_err_and(Error::is_rejection),
        "alice's rotated session outlived bob's login: {alice:?}"
    );
}

#[test]
fn store_manager_login_as_another_user_on_a_stale_copy_ends_the_previous_session() {
    login_as_another_user_on_a_stale_copy_ends_the_previous_session(&store_manager(&clock()));
}

#[test]
fn ticket_manager_login_as_another_user_on_a_stale_copy_ends_the_previous_session() {
    login_as_another_user_on_a_stale_copy_ends_the_previous_session(&ticket_manager(&clock()));
}

/// Defect 3: after logout, a ticket from before a rotation must not load,
/// in the grace window or after.
#[test]
fn ticket_from_before_a_rotation_is_dead_after_logout() {
    let clock = clock();
    let m = ticket_manager(&clock);
    let first = m.create(NewSession::new().with_user("alice")).unwrap();
    let mut s = m.load(first.token()).unwrap().session;
    m.rotate(&mut s).unwrap();
    m.terminate(&s).unwrap();
    let old = m.load(first.token());
    assert!(
        old.as_ref().is_err_and(Error::is_rejection),
        "the pre-rotation ticket loads after logout: {old:?}"
    );
}

/// Defect 3: a rotated token reused after the grace window revokes its
/// successor with tickets as it does with server-side sessions (the
/// default `ReuseResponse::RevokeSuccessor`).
fn reuse_after_grace_revokes_the_successor(m: &dyn SessionManager, clock: &ManualClock) {
    let first = m.create(NewSession::new().with_user("alice")).unwrap();
    let mut s = m.load(first.token()).unwrap().session;
    let second = m.rotate(&mut s).unwrap();
    clock.advance(Duration::from_secs(31));
    let err = m.load(first.token()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::RotatedTokenReused {
                successor_revoked: true
            }
        ),
        "{err:?}"
    );
    let successor = m.load(second.token());
    assert!(
        successor.as_ref().is_err_and(Error::is_rejection),
        "the successor survived the reuse: {successor:?}"
    );
}

#[test]
fn store_manager_reuse_after_grace_revokes_the_successor() {
    let clock = clock();
    reuse_after_grace_revokes_the_successor(&store_manager(&clock), &clock);
}

#[test]
fn ticket_manager_reuse_after_grace_revokes_the_successor() {
    let clock = clock();
    reuse_after_grace_revokes_the_successor(&ticket_manager(&clock), &clock);
}

/// Defect 3: a per-user cap that tickets cannot keep is refused with a
/// typed error, never ignored.
#[test]
fn ticket_manager_refuses_a_per_user_cap_it_cannot_enforce() {
    let policy = Policy::builder()
        .with_max_sessions_per_user(Some(1), UserLimitAction::Refuse)
        .build()
        .unwrap();
    let m = ticket_manager(&clock()).with_policy(policy);
    let first = m.create(NewSession::new().with_user("alice"));
    let second = m.create(NewSession::new().with_user("alice"));
    assert!(
        first.is_err() || second.is_err(),
        "two sessions for alice under a cap of one"
    );
}
