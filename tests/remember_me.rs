//! Remember-me tokens (`latchkey::remember`): the same cases over a memory
//! store and a file store, with a `StoreManager` sharing the store and with
//! a `TicketManager` whose revocation store it is.

use std::collections::HashSet;
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use latchkey::{
    Clock, CookieConfig, EndReason, Error, Event, KeyRing, ManualClock, MemoryStore, NewSession,
    Observer, Policy, RememberError, RememberMe, RememberToken, RememberTokenError, SessionManager,
    Store, StoreKey, StoreManager, TheftKind, TicketKey, TicketManager, Timestamp,
};
use proptest::prelude::*;
use sha2::{Digest as _, Sha256};

const T0: Timestamp = Timestamp::from_unix_millis(1_800_000_000_000);
const GRACE: Duration = Duration::from_secs(30);
const DAY: Duration = Duration::from_secs(24 * 3600);
const LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);

/// Collects every event, from the managers and from remember-me.
#[derive(Debug, Default)]
struct Audit(Mutex<Vec<Event>>);

impl Observer for Audit {
    fn on_event(&self, event: &Event) {
        self.0.lock().unwrap().push(event.clone());
    }
}

impl Audit {
    fn thefts(&self) -> Vec<Event> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|e| matches!(e, Event::RememberMeTheft { .. }))
            .cloned()
            .collect()
    }

    fn created(&self) -> usize {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|e| matches!(e, Event::Created { .. }))
            .count()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Server,
    Tickets,
}

/// One configuration under test.
struct Harness {
    clock: ManualClock,
    store: Arc<dyn Store>,
    manager: Arc<dyn SessionManager>,
    remember: RememberMe,
    audit: Arc<Audit>,
    kind: Kind,
    /// The file store's directory, if any (deleted on drop).
    dir: Option<tempfile::TempDir>,
}

fn policy() -> Policy {
    Policy::default().without_user_cap()
}

fn harness(kind: Kind, on_disk: bool) -> Harness {
    let clock = ManualClock::new(T0);
    let (store, dir): (Arc<dyn Store>, _) = if on_disk {
        let dir = tempfile::tempdir().unwrap();
        let store = latchkey::FileStore::open(dir.path().join("store")).unwrap();
        (Arc::new(store), Some(dir))
    } else {
        let store = MemoryStore::new().with_clock(Arc::new(clock.clone()));
        (Arc::new(store), None)
    };
    let audit = Arc::new(Audit::default());
    let manager: Arc<dyn SessionManager> = match kind {
        Kind::Server => Arc::new(
            StoreManager::new(store.clone())
                .with_policy(policy())
                .with_clock(Arc::new(clock.clone()))
                .with_observer(audit.clone()),
        ),
        Kind::Tickets => Arc::new(
            TicketManager::new("session", KeyRing::new(1, TicketKey::generate()))
                .unwrap()
                .with_policy(policy())
                .with_clock(Arc::new(clock.clone()))
                .with_observer(audit.clone())
                .with_revocation(store.clone()),
        ),
    };
    let remember = RememberMe::new(store.clone(), policy())
        .with_clock(Arc::new(clock.clone()))
        .with_observer(audit.clone());
    Harness {
        clock,
        store,
        manager,
        remember,
        audit,
        kind,
        dir,
    }
}

impl Harness {
    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    fn log_in(&self, token: &RememberToken) -> Result<(latchkey::Issued, RememberToken), Error> {
        self.remember.log_in(&*self.manager, token.token())
    }

    fn log_in_str(&self, token: &str) -> Result<(latchkey::Issued, RememberToken), Error> {
        self.remember.log_in(&*self.manager, token)
    }

    fn loads(&self, session: &latchkey::Issued) -> bool {
        self.manager.load(session.token()).is_ok()
    }

    fn password_login(&self, user: &str) -> latchkey::Issued {
        self.manager
            .create(NewSession::new().with_user(user))
            .unwrap()
    }
}

fn remember_err(e: Error) -> RememberError {
    match e {
        Error::RememberMe(r) => r,
        other => panic!("expected a remember-me refusal, got {other:?}"),
    }
}

/// The token's selector and verifier, decoded.
fn halves(token: &str) -> ([u8; 16], [u8; 32]) {
    let raw = URL_SAFE_NO_PAD.decode(&token[4..]).unwrap();
    assert_eq!(raw.len(), 48);
    (raw[..16].try_into().unwrap(), raw[16..].try_into().unwrap())
}

/// The documented key derivation: SHA-256 of a label and the selector.
fn documented_key(selector: &[u8; 16]) -> StoreKey {
    StoreKey::from_bytes(
        Sha256::new()
            .chain_update(b"latchkey/v1/remember-me\0")
            .chain_update(selector)
            .finalize()
            .into(),
    )
}

/// The same token with another verifier (its last character changed:
/// the last 22 characters carry verifier bits only).
fn with_wrong_verifier(token: &str) -> String {
    let mut t = token.to_owned();
    let last = t.pop().unwrap();
    t.push(if last == 'A' { 'B' } else { 'A' });
    t
}

// ---------------------------------------------------------------- cases

fn log_in_works_once_and_hands_a_replacement(h: Harness) {
    let token = h.remember.issue("alice").unwrap();
    let (session, replacement) = h.log_in(&token).unwrap();
    let loaded = h.manager.load(session.token()).unwrap().session;
    assert_eq!(loaded.user(), Some("alice"));
    assert_ne!(replacement, token);
    assert_eq!(replacement.issued_at(), h.now());
    // The series keeps its deadline: use does not extend it.
    assert_eq!(replacement.expires_at(), token.expires_at());
    // The replacement works, and hands on another.
    h.clock.advance(Duration::from_secs(3600));
    let (again, third) = h.log_in(&replacement).unwrap();
    assert!(h.loads(&again));
    assert_ne!(third, replacement);
    assert_eq!(third.expires_at(), token.expires_at());
    assert!(h.audit.thefts().is_empty());
}

fn a_used_token_after_the_grace_window_is_theft(h: Harness) {
    let token = h.remember.issue("alice").unwrap();
    let other_device = h.remember.issue("alice").unwrap();
    let password_session = h.password_login("alice");
    let (remembered, replacement) = h.log_in(&token).unwrap();
    h.clock.advance(GRACE + Duration::from_secs(1));

    let err = remember_err(h.log_in(&token).unwrap_err());
    let RememberError::Theft {
        kind,
        sessions_ended,
        incomplete,
    } = &err
    else {
        panic!("expected theft, got {err:?}")
    };
    assert_eq!(*kind, TheftKind::Reused);
    assert!(incomplete.is_none(), "{err}");
    assert!(err.clears_cookie());
    assert!(err.to_string().contains("treated as stolen"), "{err}");

    // Every session of the user ended, whichever device it was on.
    assert!(!h.loads(&password_session));
    assert!(!h.loads(&remembered));
    // Every remember-me token of the user ended, without a second alarm.
    for t in [&replacement, &other_device, &token] {
        let e = remember_err(h.log_in(t).unwrap_err());
        assert!(
            matches!(
                e,
                RememberError::Revoked {
                    reason: EndReason::ReuseDetected,
                    ..
                }
            ),
            "{e:?}"
        );
    }

    let thefts = h.audit.thefts();
    assert_eq!(thefts.len(), 1, "{thefts:?}");
    let Event::RememberMeTheft {
        user,
        token: fp,
        kind,
        sessions,
        sessions_ended: reported,
        contained,
    } = &thefts[0]
    else {
        unreachable!()
    };
    assert_eq!(user, "alice");
    assert_eq!(*fp, token.fingerprint());
    assert_eq!(*kind, TheftKind::Reused);
    assert!(*contained);
    assert_eq!(reported, sessions_ended);
    match h.kind {
        Kind::Server => {
            assert_eq!(*sessions_ended, Some(2));
            let named: HashSet<_> = sessions.iter().copied().collect();
            let expected: HashSet<_> = [password_session.fingerprint(), remembered.fingerprint()]
                .into_iter()
                .collect();
            assert_eq!(named, expected);
        }
        Kind::Tickets => {
            // A ticket cutoff ends them without a count; no store lists
            // tickets.
            assert_eq!(*sessions_ended, None);
            assert!(sessions.is_empty());
        }
    }
    let line = thefts[0].to_string();
    assert!(
        line.starts_with(&format!(
            "remember-me token {} of user \"alice\" was used again after it had been used up: \
             treated as stolen; ",
            token.fingerprint()
        )),
        "{line}"
    );
    assert!(!line.contains(&token.token()[4..]), "{line}");

    // The user can come back with the password, and be remembered anew.
    h.clock.advance(Duration::from_secs(1));
    let fresh_session = h.password_login("alice");
    assert!(h.loads(&fresh_session));
    let fresh = h.remember.issue("alice").unwrap();
    assert!(h.log_in(&fresh).is_ok());
}

fn a_wrong_verifier_for_a_known_selector_is_theft(h: Harness) {
    let token = h.remember.issue("alice").unwrap();
    let session = h.password_login("alice");
    let forged = with_wrong_verifier(token.token());
    assert_eq!(halves(&forged).0, halves(token.token()).0);
    assert_ne!(halves(&forged).1, halves(token.token()).1);

    let err = remember_err(h.log_in_str(&forged).unwrap_err());
    assert!(
        matches!(
            err,
            RememberError::Theft {
                kind: TheftKind::WrongVerifier,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!h.loads(&session));
    // The genuine token is ended too, though issued in the same instant.
    let e = remember_err(h.log_in(&token).unwrap_err());
    assert_eq!(e.reason(), "remember_revoked");
    assert_eq!(h.audit.thefts().len(), 1);
}

fn a_racing_request_within_the_grace_window_gets_the_replacement(h: Harness) {
    let token = h.remember.issue("alice").unwrap();
    let (session, replacement) = h.log_in(&token).unwrap();
    h.clock.advance(GRACE - Duration::from_millis(1));
    let err = remember_err(h.log_in(&token).unwrap_err());
    let RememberError::Superseded {
        replacement: Some(handed),
    } = &err
    else {
        panic!("expected the replacement, got {err:?}")
    };
    assert_eq!(handed, &replacement);
    assert!(!err.clears_cookie());
    assert!(!Error::RememberMe(err).clears_cookie());
    // No alarm: the session lives, and the replacement works.
    assert!(h.loads(&session));
    assert!(h.audit.thefts().is_empty());
    let (_, next) = h.log_in(&replacement).unwrap();
    // Once the replacement is used, there is nothing to hand out.
    let err = remember_err(h.log_in(&token).unwrap_err());
    assert!(
        matches!(err, RememberError::Superseded { replacement: None }),
        "{err:?}"
    );
    // At the end of the window the same presentation is theft.
    h.clock.advance(Duration::from_millis(1));
    let err = remember_err(h.log_in(&token).unwrap_err());
    assert_eq!(err.reason(), "remember_theft");
    assert_eq!(
        remember_err(h.log_in(&next).unwrap_err()).reason(),
        "remember_revoked"
    );
}

fn concurrent_uses_of_one_token_let_exactly_one_in(h: Harness) {
    const THREADS: usize = 4;
    // Several rounds, so that the requests really do meet at the write.
    const ROUNDS: usize = 16;
    for round in 0..ROUNDS {
        let token = h.remember.issue("alice").unwrap();
        let barrier = Barrier::new(THREADS);
        let results: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..THREADS)
                .map(|_| {
                    s.spawn(|| {
                        barrier.wait();
                        h.log_in(&token)
                    })
                })
                .collect();
            handles.into_iter().map(|j| j.join().unwrap()).collect()
        });
        let mut winners = Vec::new();
        let mut handed = Vec::new();
        for r in results {
            match r {
                Ok(done) => winners.push(done),
                // What the others get: no login, no alarm, and the
                // winner's replacement to send again.
                Err(Error::RememberMe(RememberError::Superseded { replacement })) => {
                    handed.push(replacement)
                }
                Err(e) => panic!("unexpected {e:?}"),
            }
        }
        assert_eq!(winners.len(), 1, "exactly one request logs in");
        assert_eq!(handed.len(), THREADS - 1);
        let (session, replacement) = &winners[0];
        for r in &handed {
            assert_eq!(r.as_ref(), Some(replacement));
        }
        assert_eq!(h.audit.created(), round + 1, "one session per round");
        assert!(h.loads(session));
    }
    assert!(h.audit.thefts().is_empty());
}

fn an_expired_token_is_refused(h: Harness) {
    let token = h.remember.issue("alice").unwrap();
    h.clock.advance(10 * DAY);
    let (_, replacement) = h.log_in(&token).unwrap();
    assert_eq!(replacement.expires_at(), T0.saturating_add(LIFETIME));
    h.clock.set(T0.saturating_add(LIFETIME));
    let err = remember_err(h.log_in(&replacement).unwrap_err());
    assert!(
        matches!(err, RememberError::Expired { deadline } if deadline == T0.saturating_add(LIFETIME)),
        "{err:?}"
    );
    // Even the used token: expired is expired, not theft.
    let err = remember_err(h.log_in(&token).unwrap_err());
    assert_eq!(err.reason(), "remember_expired");
    assert!(h.audit.thefts().is_empty());
}

fn forget_ends_this_device_only(h: Harness) {
    let laptop = h.remember.issue("alice").unwrap();
    let phone = h.remember.issue("alice").unwrap();
    // A wrong verifier forgets nothing and raises no alarm.
    assert!(
        !h.remember
            .forget(&with_wrong_verifier(laptop.token()))
            .unwrap()
    );
    assert!(h.remember.forget(laptop.token()).unwrap());
    assert!(!h.remember.forget(laptop.token()).unwrap());
    let err = remember_err(h.log_in(&laptop).unwrap_err());
    assert!(
        matches!(
            err,
            RememberError::Revoked {
                reason: EndReason::Logout,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(h.log_in(&phone).is_ok());
    assert!(h.audit.thefts().is_empty());

    // Forgetting a used token ends the replacement it led to: the
    // device's newer cookie.
    let tablet = h.remember.issue("alice").unwrap();
    let (_, newer) = h.log_in(&tablet).unwrap();
    assert!(h.remember.forget(tablet.token()).unwrap());
    assert_eq!(
        remember_err(h.log_in(&newer).unwrap_err()).reason(),
        "remember_revoked"
    );
    // Unknown and malformed tokens.
    assert!(
        !h.remember
            .forget(&format!("rm1.{}", "A".repeat(64)))
            .unwrap()
    );
    assert!(matches!(
        h.remember.forget("nope"),
        Err(Error::RememberMe(RememberError::Malformed(
            RememberTokenError::WrongLength(4)
        )))
    ));
}

fn forget_all_ends_every_token_of_the_user_only(h: Harness) {
    let laptop = h.remember.issue("alice").unwrap();
    let phone = h.remember.issue("alice").unwrap();
    let bobs = h.remember.issue("bob").unwrap();
    let session = h.password_login("alice");
    h.clock.advance(Duration::from_secs(60));
    h.remember.forget_all("alice").unwrap();
    for t in [&laptop, &phone] {
        let e = remember_err(h.log_in(t).unwrap_err());
        assert!(
            matches!(
                e,
                RememberError::Revoked {
                    reason: EndReason::LogoutAll,
                    ..
                }
            ),
            "{e:?}"
        );
    }
    // Sessions are the manager's to end; other users are untouched; a
    // token issued at the cutoff's instant is after it.
    assert!(h.loads(&session));
    assert!(h.log_in(&bobs).is_ok());
    let here = h.remember.issue("alice").unwrap();
    assert!(h.log_in(&here).is_ok());
    assert!(h.audit.thefts().is_empty());
}

fn theft_leaves_other_users_alone(h: Harness) {
    let alices = h.remember.issue("alice").unwrap();
    let bobs = h.remember.issue("bob").unwrap();
    let bob_session = h.password_login("bob");
    h.log_in(&alices).unwrap();
    h.clock.advance(GRACE);
    assert_eq!(
        remember_err(h.log_in(&alices).unwrap_err()).reason(),
        "remember_theft"
    );
    assert!(h.loads(&bob_session));
    let (bob_again, _) = h.log_in(&bobs).unwrap();
    assert!(h.loads(&bob_again));
}

fn malformed_tokens_are_typed_errors_and_ask_no_store(h: Harness) {
    let good = h.remember.issue("alice").unwrap();
    let session_token = h.password_login("alice");
    let huge = "A".repeat(1 << 20);
    let cases: [(&str, RememberTokenError); 6] = [
        ("", RememberTokenError::Empty),
        ("rm1.", RememberTokenError::WrongLength(4)),
        (&huge, RememberTokenError::WrongLength(1 << 20)),
        (
            session_token.token(),
            RememberTokenError::WrongLength(session_token.token().len()),
        ),
        (
            &format!("lk1.{}", &good.token()[4..]),
            RememberTokenError::WrongPrefix,
        ),
        (
            &format!("{}=", &good.token()[..67]),
            RememberTokenError::BadCharacter,
        ),
    ];
    for (token, expected) in cases {
        let err = remember_err(h.log_in_str(token).unwrap_err());
        match err {
            RememberError::Malformed(e) => assert_eq!(e, expected),
            other => panic!("{other:?}"),
        }
    }
    // Well formed, never issued.
    let unknown = format!("rm1.{}", "A".repeat(64));
    assert!(matches!(
        remember_err(h.log_in_str(&unknown).unwrap_err()),
        RememberError::Unknown
    ));
    assert!(h.audit.thefts().is_empty());
    assert!(h.loads(&session_token));
}

fn store_keys_and_records_hold_no_secret(h: Harness) {
    let token = h.remember.issue("alice").unwrap();
    let (selector, verifier) = halves(token.token());
    let key = documented_key(&selector);
    assert_eq!(key.fingerprint(), token.fingerprint());
    let record = h
        .store
        .get(&key)
        .unwrap()
        .expect("filed under the documented key");
    // Bound to no user: never listed, counted or ended as a session.
    assert_eq!(record.user(), None);
    assert!(h.store.sessions_of("alice").unwrap().is_empty());

    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let json = serde_json::to_string(&record).unwrap();
    let verifier_digest: [u8; 32] = Sha256::new()
        .chain_update(b"latchkey/v1/remember-verifier\0")
        .chain_update(verifier)
        .finalize()
        .into();
    assert!(json.contains(&hex(&verifier_digest)), "{json}");
    let secrets = [
        token.token()[4..].to_owned(),
        hex(&selector),
        hex(&verifier),
        URL_SAFE_NO_PAD.encode(selector),
        URL_SAFE_NO_PAD.encode(verifier),
    ];
    for s in &secrets {
        assert!(!json.contains(s.as_str()));
        assert!(!key.to_hex().contains(s.as_str()));
    }
    assert_ne!(key.as_bytes()[..16], selector);

    // After a use and a cutoff, the same holds for everything on disk.
    let (_, replacement) = h.log_in(&token).unwrap();
    h.remember.forget_all("bob").unwrap();
    let cutoff = StoreKey::from_bytes(
        Sha256::new()
            .chain_update(b"latchkey/v1/remember-cutoff\0")
            .chain_update(b"bob")
            .finalize()
            .into(),
    );
    assert!(h.store.get(&cutoff).unwrap().is_some());
    if let Some(dir) = &h.dir {
        let (sel2, ver2) = halves(replacement.token());
        let mut all = secrets.to_vec();
        all.extend([replacement.token()[4..].to_owned(), hex(&sel2), hex(&ver2)]);
        for entry in walk(dir.path()) {
            let name = entry.to_string_lossy().into_owned();
            let bytes = std::fs::read(&entry).unwrap_or_default();
            let text = String::from_utf8_lossy(&bytes);
            for s in &all {
                assert!(!name.contains(s.as_str()), "{name}");
                assert!(!text.contains(s.as_str()), "{name}");
            }
        }
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn the_session_reports_the_password_login_not_the_remember_me_one(h: Harness) {
    let token = h.remember.issue("alice").unwrap();
    h.clock.advance(3 * DAY);
    let (issued, _) = h.log_in(&token).unwrap();
    let session = h.manager.load(issued.token()).unwrap().session;
    assert_eq!(session.user(), Some("alice"));
    // The password login of the series, not the remember-me login: a
    // step-up check asks for the password again.
    assert_eq!(session.authenticated_at(), Some(T0));
    assert!(matches!(
        h.manager
            .require_recent_auth(&session, Duration::from_secs(600)),
        Err(latchkey::Error::ReauthenticationRequired { .. })
    ));
    assert!(session.keys().any(|k| k == latchkey::REMEMBERED_KEY));
}

macro_rules! remember_suite {
    ($name:ident, $kind:expr, $on_disk:expr) => {
        mod $name {
            use super::*;

            fn h() -> Harness {
                harness($kind, $on_disk)
            }

            #[test]
            fn log_in_works_once_and_hands_a_replacement() {
                super::log_in_works_once_and_hands_a_replacement(h());
            }
            #[test]
            fn a_used_token_after_the_grace_window_is_theft() {
                super::a_used_token_after_the_grace_window_is_theft(h());
            }
            #[test]
            fn a_wrong_verifier_for_a_known_selector_is_theft() {
                super::a_wrong_verifier_for_a_known_selector_is_theft(h());
            }
            #[test]
            fn a_racing_request_within_the_grace_window_gets_the_replacement() {
                super::a_racing_request_within_the_grace_window_gets_the_replacement(h());
            }
            #[test]
            fn concurrent_uses_of_one_token_let_exactly_one_in() {
                super::concurrent_uses_of_one_token_let_exactly_one_in(h());
            }
            #[test]
            fn an_expired_token_is_refused() {
                super::an_expired_token_is_refused(h());
            }
            #[test]
            fn forget_ends_this_device_only() {
                super::forget_ends_this_device_only(h());
            }
            #[test]
            fn forget_all_ends_every_token_of_the_user_only() {
                super::forget_all_ends_every_token_of_the_user_only(h());
            }
            #[test]
            fn theft_leaves_other_users_alone() {
                super::theft_leaves_other_users_alone(h());
            }
            #[test]
            fn malformed_tokens_are_typed_errors_and_ask_no_store() {
                super::malformed_tokens_are_typed_errors_and_ask_no_store(h());
            }
            #[test]
            fn store_keys_and_records_hold_no_secret() {
                super::store_keys_and_records_hold_no_secret(h());
            }
            #[test]
            fn the_session_reports_the_password_login_not_the_remember_me_one() {
                super::the_session_reports_the_password_login_not_the_remember_me_one(h());
            }
        }
    };
}

remember_suite!(store_manager_memory, Kind::Server, false);
remember_suite!(ticket_manager_memory, Kind::Tickets, false);
#[cfg(unix)]
remember_suite!(store_manager_file, Kind::Server, true);
#[cfg(unix)]
remember_suite!(ticket_manager_file, Kind::Tickets, true);

// ------------------------------------------------- single-configuration

#[test]
fn theft_without_ticket_revocation_still_ends_the_tokens_and_says_what_failed() {
    let clock = ManualClock::new(T0);
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new().with_clock(Arc::new(clock.clone())));
    let tickets = TicketManager::new("session", KeyRing::new(1, TicketKey::generate()))
        .unwrap()
        .with_policy(policy())
        .with_clock(Arc::new(clock.clone()));
    let audit = Arc::new(Audit::default());
    let remember = RememberMe::new(store, policy()).with_observer(audit.clone());
    let token = remember.issue_at("alice", T0).unwrap();
    let other = remember.issue_at("alice", T0).unwrap();
    remember.log_in_at(&tickets, token.token(), T0).unwrap();
    let later = T0.saturating_add(GRACE);
    let err = remember
        .log_in_at(&tickets, token.token(), later)
        .unwrap_err();
    let source = std::error::Error::source(&err)
        .and_then(std::error::Error::source)
        .map(ToString::to_string);
    assert_eq!(
        source.as_deref(),
        Some("ticket revocation is not configured; the ticket stays valid until it expires")
    );
    let Error::RememberMe(RememberError::Theft {
        sessions_ended: None,
        incomplete: Some(cause),
        ..
    }) = &err
    else {
        panic!("{err:?}")
    };
    assert!(matches!(**cause, Error::RevocationNotConfigured));
    assert!(matches!(
        audit.thefts()[0],
        Event::RememberMeTheft {
            contained: false,
            ..
        }
    ));
    // The remember-me tokens are ended all the same.
    assert_eq!(
        remember
            .log_in_at(&tickets, other.token(), later)
            .unwrap_err()
            .reason(),
        "remember_revoked"
    );
}

#[test]
fn the_remember_cookie_is_persistent_and_the_session_cookie_is_chosen_per_session() {
    let h = harness(Kind::Server, false);
    let token = h.remember.issue("alice").unwrap();
    let set = h.remember.set_cookie(&token).unwrap();
    assert_eq!(
        set,
        format!(
            "__Host-remember={}; Max-Age={}; Path=/; Secure; HttpOnly; SameSite=Lax",
            token.token(),
            LIFETIME.as_secs()
        )
    );
    // A replacement's cookie lives until the series' deadline.
    h.clock.advance(10 * DAY);
    let (session, replacement) = h.log_in(&token).unwrap();
    let set = h.remember.set_cookie(&replacement).unwrap();
    assert!(
        set.contains(&format!("; Max-Age={};", (LIFETIME - 10 * DAY).as_secs())),
        "{set}"
    );
    // The session cookie: browser-session by default, persistent on request.
    let cookies = CookieConfig::default();
    assert!(!cookies.set_cookie(&session).unwrap().contains("Max-Age"));
    let kept = cookies
        .clone()
        .with_lifetime(latchkey::CookieLifetime::UntilAbsoluteDeadline);
    assert!(kept.set_cookie(&session).unwrap().contains("; Max-Age="));
    // Both found in one header, neither mistaken for the other.
    let header = format!(
        "{}={}; __Host-remember={}",
        cookies.name(),
        session.token(),
        replacement.token()
    );
    assert_eq!(
        h.remember.cookie().find_token(&header).unwrap(),
        Some(replacement.token())
    );
    assert_eq!(cookies.find_token(&header).unwrap(), Some(session.token()));
}

#[test]
fn debug_output_never_shows_a_token() {
    let h = harness(Kind::Server, false);
    let token = h.remember.issue("alice").unwrap();
    let (session, replacement) = h.log_in(&token).unwrap();
    let superseded = h.log_in(&token).unwrap_err();
    h.clock.advance(GRACE);
    let theft = h.log_in(&token).unwrap_err();
    let dump = format!(
        "{token:?} {token:#?} {replacement:?} {:?} {superseded:?} {superseded} {theft:?} {theft} {:?} {:?}",
        h.remember,
        h.audit.thefts(),
        h.audit
            .thefts()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
    );
    for t in [&token, &replacement] {
        assert!(!dump.contains(&t.token()[4..]), "{dump}");
        assert!(dump.contains(&t.fingerprint().to_string()));
    }
    assert!(!dump.contains(session.token()));
}

#[test]
fn a_lifetime_over_400_days_or_zero_is_refused() {
    assert!(matches!(
        Policy::builder()
            .with_remember_me_lifetime(Duration::from_secs(401 * 24 * 3600))
            .build(),
        Err(latchkey::PolicyError::RememberMeTooLong { .. })
    ));
    assert_eq!(
        Policy::builder()
            .with_remember_me_lifetime(Duration::ZERO)
            .build(),
        Err(latchkey::PolicyError::ZeroDuration("remember-me lifetime"))
    );
    for p in [
        Policy::owasp(),
        Policy::nist_aal1(),
        Policy::nist_aal2(),
        Policy::nist_aal3(),
    ] {
        assert_eq!(p.remember_me_lifetime(), LIFETIME);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever a client sends as the remember-me cookie: a typed error,
    /// never a panic, never a login, never an alarm.
    #[test]
    fn arbitrary_strings_never_panic_or_log_in(s in ".{0,100}", tail in "[A-Za-z0-9_-]{64}") {
        let h = harness(Kind::Server, false);
        for token in [s.clone(), format!("rm1.{tail}"), format!("rm1.{}", &s.chars().take(64).collect::<String>())] {
            let r = h.log_in_str(&token);
            prop_assert!(matches!(r, Err(Error::RememberMe(RememberError::Malformed(_) | RememberError::Unknown))), "{r:?}");
            let f = h.remember.forget(&token);
            prop_assert!(matches!(f, Ok(false) | Err(Error::RememberMe(RememberError::Malformed(_)))), "{f:?}");
        }
        prop_assert!(h.audit.thefts().is_empty());
    }
}
