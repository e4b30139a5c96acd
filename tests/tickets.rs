//! TicketManager through the public API, as an application uses it: two
//! server processes sharing a key ring and a revocation store, a key
//! rotation, logout and "log out everywhere".

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use latchkey::store::Record;
use latchkey::{
    CookieConfig, CookieLifetime, EndReason, Error, KeyRing, ManualClock, MemoryStore, NewSession,
    Policy, SameSite, SessionManager, Store, StoreError, StoreKey, TicketKey, TicketManager,
    Timestamp, UserLimitAction,
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

// ---------------------------------------------------------------------------
// A ticket is issued only if its cookie can carry it (issue 26, item 8).

/// Issues tickets whose session data grows one byte at a time across the
/// cookie's limit: every ticket that is issued renders as a `Set-Cookie`
/// the cookie accepts, and the first that would not is refused at issue.
#[test]
fn every_ticket_the_default_manager_issues_fits_the_default_cookie() {
    let m = TicketManager::new("__Host-session", KeyRing::new(1, TicketKey::generate())).unwrap();
    let cookie = CookieConfig::default();
    let now = Timestamp::from_unix_millis(1_800_000_000_000);
    let (mut issued, mut refused) = (0, 0);
    // Tickets of about 4000 to 4140 characters.
    for n in 2860..2960 {
        let new = NewSession::new()
            .with_value("blob", &"x".repeat(n))
            .unwrap();
        match m.create_at(new, now) {
            Ok(ticket) => {
                issued += 1;
                let rendered = cookie.set_cookie(&ticket);
                assert!(
                    rendered.is_ok(),
                    "a {}-byte ticket was issued that the cookie refuses: {rendered:?}",
                    ticket.token().len()
                );
            }
            Err(e) => {
                refused += 1;
                assert!(matches!(e, Error::TicketTooLarge { .. }), "{e}");
            }
        }
    }
    assert!(issued > 0 && refused > 0, "the range crosses the limit");
}

/// A login that replaces another user's session must not end that session
/// when the new ticket cannot be issued: the refusal comes before any write
/// to the revocation store.
#[test]
fn a_login_whose_ticket_cannot_fit_ends_nothing() {
    let policy = Policy::builder()
        .with_max_label_bytes(3000)
        .with_max_sessions_per_user(None, UserLimitAction::Refuse)
        .build()
        .unwrap();
    let m = TicketManager::new("__Host-session", KeyRing::new(1, TicketKey::generate()))
        .unwrap()
        .with_policy(policy)
        .with_revocation(MemoryStore::new());
    let now = Timestamp::from_unix_millis(1_800_000_000_000);
    // bob's ticket carries a long device label: just under the cookie's
    // limit (4032 characters).
    let bob = m
        .create_at(
            NewSession::new()
                .with_user("bob")
                .with_device("d".repeat(2900)),
            now,
        )
        .unwrap();
    assert!(bob.token().len() <= 4040);
    let mut session = m.load_at(bob.token(), now).unwrap().session;
    // Another user on this browser: a fresh session, with the device label
    // kept and a longer user name, that no cookie can carry.
    let err = m.login_at(&mut session, &"c".repeat(100), now).unwrap_err();
    assert!(matches!(err, Error::TicketTooLarge { .. }), "{err}");
    assert_eq!(session.user(), Some("bob"), "the session is as it was");
    let still = m.load_at(bob.token(), now);
    assert!(still.is_ok(), "bob's session was ended: {:?}", still.err());
}

/// A revocation store that counts writes, to prove a refused issue wrote
/// nothing.
#[derive(Debug, Default)]
struct CountingStore {
    inner: MemoryStore,
    writes: AtomicUsize,
}

impl CountingStore {
    fn wrote(&self) {
        self.writes.fetch_add(1, Ordering::SeqCst);
    }
}

impl Store for CountingStore {
    fn insert(&self, key: &StoreKey, record: &Record) -> Result<(), StoreError> {
        self.wrote();
        self.inner.insert(key, record)
    }
    fn get(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        self.inner.get(key)
    }
    fn replace(&self, key: &StoreKey, expected: u64, record: &Record) -> Result<(), StoreError> {
        self.wrote();
        self.inner.replace(key, expected, record)
    }
    fn touch(&self, key: &StoreKey, seen: Timestamp, exp: Timestamp) -> Result<bool, StoreError> {
        self.wrote();
        self.inner.touch(key, seen, exp)
    }
    fn rotate(
        &self,
        old: &StoreKey,
        expected: u64,
        retired: &Record,
        new: &StoreKey,
        record: &Record,
    ) -> Result<(), StoreError> {
        self.wrote();
        self.inner.rotate(old, expected, retired, new, record)
    }
    fn remove(&self, key: &StoreKey) -> Result<bool, StoreError> {
        self.wrote();
        self.inner.remove(key)
    }
    fn sessions_of(&self, user: &str) -> Result<Vec<(StoreKey, Record)>, StoreError> {
        self.inner.sessions_of(user)
    }
    fn purge_expired(&self, now: Timestamp) -> Result<usize, StoreError> {
        self.wrote();
        self.inner.purge_expired(now)
    }
}

const NOW: Timestamp = Timestamp::from_unix_millis(1_800_000_000_000);

/// Cookies whose names and attributes leave budgets of different sizes.
fn cookies() -> Vec<(&'static str, CookieConfig)> {
    let long = || {
        CookieConfig::builder()
            .with_name("__Secure-accounts-app-ticket")
            .with_domain("accounts.eu-west-1.internal.example.com")
            .with_path("/accounts/self-service/v2/")
            .with_same_site(SameSite::Strict)
    };
    vec![
        ("default", CookieConfig::default()),
        ("plain http", CookieConfig::danger_insecure_http()),
        ("long name, Domain and Path", long().build().unwrap()),
        (
            "long scope, persistent",
            long()
                .with_lifetime(CookieLifetime::UntilAbsoluteDeadline)
                .build()
                .unwrap(),
        ),
        (
            "short name",
            CookieConfig::builder()
                .with_name("s")
                .danger_insecure_http()
                .build()
                .unwrap(),
        ),
    ]
}

fn manager_for(cookie: &CookieConfig) -> (TicketManager, Arc<CountingStore>) {
    let store = Arc::new(CountingStore::default());
    let m = TicketManager::new(cookie.name(), KeyRing::new(1, TicketKey::generate()))
        .unwrap()
        .with_policy(Policy::default().without_user_cap())
        .with_revocation(store.clone())
        .with_cookie(cookie);
    (m, store)
}

fn with_blob(n: usize) -> NewSession {
    NewSession::new()
        .with_user("alice")
        .with_value("blob", &"x".repeat(n))
        .unwrap()
}

/// The largest blob a ticket can carry under `m` (issue is monotone in the
/// blob's size, so a binary search finds the edge).
fn largest_blob(m: &TicketManager) -> usize {
    let (mut fits, mut over) = (0, 8192);
    assert!(m.create_at(with_blob(fits), NOW).is_ok());
    assert!(m.create_at(with_blob(over), NOW).is_err());
    while over - fits > 1 {
        let mid = (fits + over) / 2;
        match m.create_at(with_blob(mid), NOW) {
            Ok(_) => fits = mid,
            Err(_) => over = mid,
        }
    }
    fits
}

#[test]
fn a_ticket_just_fitting_the_cookie_is_issued_and_one_byte_more_is_refused() {
    let mut exact = 0;
    for (what, cookie) in cookies() {
        let (m, store) = manager_for(&cookie);
        let budget = m.max_ticket_len();
        assert_eq!(budget, cookie.max_value_len().min(4096), "{what}");
        let n = largest_blob(&m);

        let fits = m.create_at(with_blob(n), NOW).unwrap();
        // Tickets come in lengths of base64: the edge is the budget or,
        // when no ticket has exactly that length, one byte short of it.
        let len = fits.token().len();
        assert!(
            len == budget || len + 1 == budget,
            "{what}: {len} of {budget}"
        );
        if what == "default" {
            // The default budget is 4041, and no ticket has 4041 bytes
            // (4037 base64 characters encode no whole number of bytes).
            assert_eq!((budget, len), (4041, 4040));
        }
        // The cookie carries it, under the longest Max-Age too.
        for now in [NOW, Timestamp::UNIX_EPOCH] {
            let rendered = cookie.set_cookie_at(&fits, now);
            assert!(rendered.is_ok(), "{what}: {rendered:?}");
            assert!(rendered.unwrap().len() <= 4096);
        }
        if cookie.lifetime() == CookieLifetime::BrowserSession && len == budget {
            assert_eq!(cookie.set_cookie(&fits).unwrap().len(), 4096, "{what}");
            exact += 1;
        }

        // One byte more of data: refused, with the budget as the limit.
        let err = m.create_at(with_blob(n + 1), NOW).unwrap_err();
        match err {
            Error::TicketTooLarge { size, limit } => {
                assert_eq!(limit, budget, "{what}");
                assert!(size > budget && size <= budget + 2, "{what}: {size}");
            }
            e => panic!("{what}: {e}"),
        }
        assert_eq!(store.writes.load(Ordering::SeqCst), 0, "{what}");
    }
    assert!(exact > 0, "some cookie was filled to its last byte");
}

#[test]
fn save_rotate_and_login_refuse_a_ticket_the_cookie_cannot_carry_before_writing() {
    for (what, cookie) in cookies() {
        let (m, store) = manager_for(&cookie);
        let n = largest_blob(&m);
        let issued = m.create_at(with_blob(n - 8), NOW).unwrap();
        let mut s = m.load_at(issued.token(), NOW).unwrap().session;
        // Ten bytes more than fit.
        s.insert("more", &"y").unwrap();
        let too_large = |e: Error| match e {
            Error::TicketTooLarge { limit, .. } => assert_eq!(limit, m.max_ticket_len()),
            e => panic!("{what}: {e}"),
        };
        too_large(m.save_at(&mut s, NOW).unwrap_err());
        assert!(s.is_modified(), "{what}: the change is kept, unsaved");
        too_large(m.rotate_at(&mut s, NOW).unwrap_err());
        too_large(m.change_privilege_at(&mut s, NOW).unwrap_err());
        too_large(m.login_at(&mut s, "alice", NOW).unwrap_err());
        assert_eq!(s.user(), Some("alice"));
        assert_eq!(
            s.fingerprint(),
            issued.fingerprint(),
            "{what}: same session"
        );
        // Nothing reached the revocation store: the old ticket is the live
        // tip of its session, neither retired nor superseded.
        assert_eq!(store.writes.load(Ordering::SeqCst), 0, "{what}");
        let again = m.load_at(issued.token(), NOW).unwrap();
        assert!(again.reissue.is_none(), "{what}");
        // Once the session is small enough, the same calls go through.
        s.remove("blob");
        let saved = m.save_at(&mut s, NOW).unwrap().unwrap();
        assert!(cookie.set_cookie(&saved).is_ok(), "{what}");
        let rotated = m.rotate_at(&mut s, NOW).unwrap();
        assert!(cookie.set_cookie(&rotated).is_ok(), "{what}");
        assert!(store.writes.load(Ordering::SeqCst) > 0, "{what}: retired");
    }
}

#[test]
fn a_ticket_issued_under_a_larger_budget_loads_without_a_reissue() {
    let keys = KeyRing::new(1, TicketKey::generate());
    let roomy = TicketManager::new("__Host-session", keys.clone()).unwrap();
    let tight_cookie = CookieConfig::builder()
        .with_name("__Host-session")
        .with_lifetime(CookieLifetime::UntilAbsoluteDeadline)
        .build()
        .unwrap();
    let tight = TicketManager::new("__Host-session", keys)
        .unwrap()
        .with_cookie(&tight_cookie);
    assert!(tight.max_ticket_len() < roomy.max_ticket_len());
    let n = largest_blob(&roomy);
    let big = roomy.create_at(with_blob(n), NOW).unwrap();
    assert!(big.token().len() > tight.max_ticket_len());
    // Due for a reissue, which the tight cookie could not carry: the
    // session is served as the ticket says, without one.
    let later = NOW.saturating_add(tight.policy().touch_interval());
    let loaded = tight.load_at(big.token(), later).unwrap();
    assert!(loaded.reissue.is_none());
    assert_eq!(loaded.session.idle_deadline(), big.idle_deadline());
    assert_eq!(loaded.session.user(), Some("alice"));
    // A smaller ticket is reissued as usual.
    let small = roomy.create_at(with_blob(10), NOW).unwrap();
    assert!(
        tight
            .load_at(small.token(), later)
            .unwrap()
            .reissue
            .is_some()
    );
}

#[test]
fn stateless_tickets_never_block_and_revocation_blocks_as_its_store_does() {
    let keys = || KeyRing::new(1, TicketKey::generate());
    let stateless = TicketManager::new("__Host-session", keys()).unwrap();
    assert!(!stateless.may_block());
    let in_memory = TicketManager::new("__Host-session", keys())
        .unwrap()
        .with_revocation(MemoryStore::new());
    assert!(!in_memory.may_block());
    #[cfg(unix)]
    {
        let dir = tempfile::tempdir().unwrap();
        let on_disk = TicketManager::new("__Host-session", keys())
            .unwrap()
            .with_revocation(latchkey::FileStore::open(dir.path()).unwrap());
        assert!(on_disk.may_block());
    }
}
