//! TicketManager through the public API, as an application uses it: two
//! server processes sharing a key ring and a revocation store, a key
//! rotation, logout and "log out everywhere".

use std::sync::Arc;
use std::time::Duration;

use latchkey::{
    EndReason, Error, KeyRing, ManualClock, MemoryStore, NewSession, Policy, SessionManager,
    TicketKey, TicketManager, Timestamp,
};

fn servers() -> (TicketManager, TicketManager, ManualClock, TicketKey) {
    let clock = ManualClock::new(Timestamp::from_unix_millis(1_800_000_000_000));
    // In a deployment the keys come from a secret store.
    let old_key = TicketKey::generate();
    let keys = KeyRing::new(1, old_key.clone());
    let revocation = Arc::new(MemoryStore::new());
    let make = || {
        TicketManager::new("__Host-session", keys.clone())
            .unwrap()
            .with_policy(Policy::nist_aal2().without_user_cap())
            .with_clock(Arc::new(clock.clone()))
            .with_revocation(revocation.clone())
    };
    (make(), make(), clock, old_key)
}

#[test]
fn a_ticket_from_one_server_works_on_another() {
    let (a, b, clock, _) = servers();
    let issued = a.create(NewSession::new().with_user("alice")).unwrap();
    let mut session = b.load(issued.token()).unwrap().session;
    session.insert("step", &2).unwrap();
    let saved = b.save(&mut session).unwrap().unwrap();
    clock.advance(Duration::from_secs(5));
    let again = a.load(saved.token()).unwrap().session;
    assert_eq!(again.get::<u32>("step").unwrap(), Some(2));
}

#[test]
fn logout_on_one_server_ends_the_ticket_on_all() {
    let (a, b, clock, _) = servers();
    let issued = a.create(NewSession::new().with_user("alice")).unwrap();
    let session = a.load(issued.token()).unwrap().session;
    b.terminate(&session).unwrap();
    clock.advance(Duration::from_secs(1));
    let err = a.load(issued.token()).unwrap_err();
    assert!(err.is_rejection());
    assert!(matches!(
        err,
        Error::Terminated {
            reason: EndReason::Logout
        }
    ));
}

#[test]
fn log_out_everywhere_then_log_in_again() {
    let (a, b, clock, _) = servers();
    let phone = a.create(NewSession::new().with_user("alice")).unwrap();
    let laptop = b.create(NewSession::new().with_user("alice")).unwrap();
    let other = b.create(NewSession::new().with_user("bob")).unwrap();
    clock.advance(Duration::from_secs(1));
    a.terminate_all("alice", None).unwrap();
    for t in [phone.token(), laptop.token()] {
        assert_eq!(b.load(t).unwrap_err().reason(), "terminated");
    }
    assert!(a.load(other.token()).is_ok());
    clock.advance(Duration::from_millis(1));
    let fresh = b.create(NewSession::new().with_user("alice")).unwrap();
    assert!(a.load(fresh.token()).is_ok());
}

#[test]
fn key_rotation_across_servers_logs_nobody_out() {
    let (a, b, clock, old_key) = servers();
    let issued = a.create(NewSession::new().with_user("alice")).unwrap();
    let new_key = TicketKey::generate();
    // Step 1: every server learns the new key, verify-only.
    for m in [&a, &b] {
        m.set_keys(m.keys().with_verify_key(2, new_key.clone()).unwrap());
    }
    // Step 2: every server signs with it; the old key verifies only.
    for m in [&a, &b] {
        m.set_keys(
            KeyRing::new(2, new_key.clone())
                .with_verify_key(1, old_key.clone())
                .unwrap(),
        );
    }
    clock.advance(Duration::from_secs(1));
    let loaded = b.load(issued.token()).unwrap();
    let reissued = loaded.reissue.expect("reissued under the new key");
    assert_eq!(reissued.absolute_deadline(), issued.absolute_deadline());
    assert!(a.load(reissued.token()).unwrap().reissue.is_none());
    // Step 3, an absolute timeout later: retire the old key.
    let mut ring = a.keys();
    assert!(ring.retire(1));
    a.set_keys(ring);
    assert_eq!(a.load(issued.token()).unwrap_err().reason(), "unknown_key");
    assert!(a.load(reissued.token()).is_ok());
}

#[test]
fn without_revocation_terminate_is_an_explicit_error() {
    let m = TicketManager::new("session", KeyRing::new(1, TicketKey::generate())).unwrap();
    let issued = m.create(NewSession::new()).unwrap();
    let session = m.load(issued.token()).unwrap().session;
    let err = m.terminate(&session).unwrap_err();
    assert!(matches!(err, Error::RevocationNotConfigured));
    assert!(!err.is_rejection() && !err.is_backend_failure());
}

#[test]
fn huge_or_garbage_cookies_are_refused_cheaply() {
    let (a, _, _, _) = servers();
    for bad in [
        String::new(),
        "x".into(),
        "lk1.".into(),
        "lk1.".to_string() + &"A".repeat(10_000),
        "\u{0}".repeat(300),
        "lk1.".to_string() + &"é".repeat(200),
    ] {
        let err = a.load(&bad).unwrap_err();
        assert_eq!(err.reason(), "malformed", "{err}");
    }
}
