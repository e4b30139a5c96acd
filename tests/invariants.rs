//! One named test per DESIGN.md invariant that the server-side manager must
//! keep (the store contract itself is in the conformance suite).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use latchkey::store::Record;
use latchkey::{
    Clock, EndReason, Error, Event, ManualClock, MemoryStore, NewSession, Observer, Policy,
    ReuseResponse, SessionId, SessionManager, Store, StoreError, StoreKey, StoreManager, Timestamp,
    UserLimitAction,
};

const START: Timestamp = Timestamp::from_unix_millis(1_795_392_000_000);
const IDLE: Duration = Duration::from_secs(600);
const ABSOLUTE: Duration = Duration::from_secs(3600);
const GRACE: Duration = Duration::from_secs(30);
const TOUCH: Duration = Duration::from_secs(60);

/// A store that counts calls, to prove what does and does not reach it.
#[derive(Default)]
struct Counting {
    inner: MemoryStore,
    reads: AtomicUsize,
    writes: AtomicUsize,
    seen: parking_lot::Mutex<Vec<String>>,
    /// When set, reads fail, as from a store that went away.
    fail_reads: std::sync::atomic::AtomicBool,
    /// When set, writes fail, as on a full disk.
    fail_writes: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Counting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Counting")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl Counting {
    fn note(&self, record: &Record) {
        self.seen
            .lock()
            .push(serde_json::to_string(record).unwrap());
    }
    fn disk_full(&self) -> Result<(), StoreError> {
        if self.fail_writes.load(Ordering::SeqCst) {
            return Err(StoreError::Io(std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                "no space left on device",
            )));
        }
        Ok(())
    }
    fn writes(&self) -> usize {
        self.writes.load(Ordering::SeqCst)
    }
    fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }
}

impl Store for Counting {
    fn insert(&self, key: &StoreKey, record: &Record) -> Result<(), StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.note(record);
        self.inner.insert(key, record)
    }
    fn get(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        if self.fail_reads.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("gone away".into()));
        }
        self.inner.get(key)
    }
    fn replace(&self, key: &StoreKey, expected: u64, record: &Record) -> Result<(), StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.disk_full()?;
        self.note(record);
        self.inner.replace(key, expected, record)
    }
    fn touch(
        &self,
        key: &StoreKey,
        last_seen: Timestamp,
        expires_at: Timestamp,
    ) -> Result<bool, StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.disk_full()?;
        self.inner.touch(key, last_seen, expires_at)
    }
    fn rotate(
        &self,
        old: &StoreKey,
        expected: u64,
        retired: &Record,
        new: &StoreKey,
        record: &Record,
    ) -> Result<(), StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.note(retired);
        self.note(record);
        self.inner.rotate(old, expected, retired, new, record)
    }
    fn remove(&self, key: &StoreKey) -> Result<bool, StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.remove(key)
    }
    fn sessions_of(&self, user: &str) -> Result<Vec<(StoreKey, Record)>, StoreError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.sessions_of(user)
    }
    fn purge_expired(&self, now: Timestamp) -> Result<usize, StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.purge_expired(now)
    }
}

#[derive(Debug, Default)]
struct Events(parking_lot::Mutex<Vec<Event>>);

impl Observer for Events {
    fn on_event(&self, event: &Event) {
        self.0.lock().push(event.clone());
    }
}

fn policy() -> Policy {
    Policy::builder()
        .with_idle_timeout(IDLE)
        .with_absolute_timeout(ABSOLUTE)
        .with_rotation_grace(GRACE)
        .with_touch_interval(TOUCH)
        .build()
        .unwrap()
}

fn setup_with(
    policy: Policy,
) -> (
    StoreManager<Arc<Counting>>,
    Arc<Counting>,
    ManualClock,
    Arc<Events>,
) {
    let clock = ManualClock::new(START);
    let store = Arc::new(Counting {
        inner: MemoryStore::new().with_clock(Arc::new(clock.clone())),
        ..Counting::default()
    });
    let events = Arc::new(Events::default());
    let m = StoreManager::new(store.clone())
        .with_policy(policy)
        .with_clock(Arc::new(clock.clone()))
        .with_observer(events.clone());
    (m, store, clock, events)
}

fn setup() -> (
    StoreManager<Arc<Counting>>,
    Arc<Counting>,
    ManualClock,
    Arc<Events>,
) {
    setup_with(policy())
}

// Invariant 1: IDs.

#[test]
fn issued_tokens_are_43_char_base64url_encodings_of_256_bits() {
    let (m, ..) = setup();
    let mut seen = std::collections::HashSet::new();
    for _ in 0..200 {
        let t = m.create(NewSession::new()).unwrap().token().to_owned();
        assert_eq!(t.len(), 43);
        assert!(
            t.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        assert_eq!(SessionId::parse(&t).unwrap().to_token(), t);
        assert!(seen.insert(t));
    }
}

#[test]
fn malformed_tokens_never_reach_the_store() {
    let (m, store, ..) = setup();
    let valid = m.create(NewSession::new()).unwrap().token().to_owned();
    let reads = store.reads();
    let huge = "a".repeat(10 * 1024 * 1024);
    let near = format!("{}=", &valid[..42]);
    let bad: Vec<&str> = vec![
        "",
        " ",
        "\0",
        "\r\n",
        &huge,
        &valid[..42],
        &near,
        "ÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿ\u{1}",
    ];
    for t in bad {
        let err = m.load(t).unwrap_err();
        assert!(matches!(err, Error::Malformed(_)), "{err:?}");
        assert!(err.is_rejection());
    }
    assert_eq!(store.reads(), reads, "a malformed token reached the store");
}

#[test]
fn a_client_chosen_token_is_refused_and_never_adopted() {
    let (m, store, _, events) = setup();
    let chosen = SessionId::generate().to_token();
    assert!(matches!(m.load(&chosen), Err(Error::Unknown)));
    assert_eq!(
        store.writes(),
        0,
        "loading an unknown token wrote to the store"
    );
    assert!(matches!(m.load(&chosen), Err(Error::Unknown)));
    let rejected = events
        .0
        .lock()
        .iter()
        .filter(|e| matches!(e, Event::Rejected { .. }))
        .count();
    assert_eq!(rejected, 2);
}

// Invariant 2: hashed at rest.

#[test]
fn raw_tokens_appear_in_no_record_debug_output_or_event() {
    let (m, store, clock, events) = setup();
    let a = m.create(NewSession::new().with_user("alice")).unwrap();
    let mut s = m.load(a.token()).unwrap().session;
    s.insert("k", &"v").unwrap();
    m.save(&mut s).unwrap();
    let b = m.rotate(&mut s).unwrap();
    let loaded = m.load(a.token()).unwrap();
    clock.advance(GRACE * 2);
    let err = m.load(a.token()).unwrap_err();
    let debug = format!("{a:?} {b:?} {s:?} {loaded:?} {err:?} {err} {store:?}");
    let records = store.seen.lock().join("\n");
    let events = {
        let log = events.0.lock();
        format!(
            "{log:?} {}",
            log.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" ")
        )
    };
    for token in [a.token(), b.token()] {
        assert!(!debug.contains(token), "token in Debug/Display output");
        assert!(!records.contains(token), "token in a stored record");
        assert!(!events.contains(token), "token in an event");
    }
    // Stores see the hash: the fingerprint is a prefix of the store key.
    assert!(records.contains(&SessionId::parse(b.token()).unwrap().store_key().to_hex()));
}

#[test]
fn a_store_dump_cannot_be_replayed_as_cookies() {
    let (m, store, ..) = setup();
    let a = m.create(NewSession::new()).unwrap();
    let key = SessionId::parse(a.token()).unwrap().store_key();
    // Everything an attacker with the dump has: the key, as hex or base64url.
    assert!(store.inner.get(&key).unwrap().is_some());
    let from_dump = base64_url(key.as_bytes());
    assert_eq!(from_dump.len(), 43);
    assert!(matches!(m.load(&from_dump), Err(Error::Unknown)));
}

fn base64_url(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for &b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 6 {
            bits -= 6;
            out.push(char::from(A[((acc >> bits) & 63) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(A[((acc << (6 - bits)) & 63) as usize]));
    }
    out
}

// Invariant 3: two clocks.

#[test]
fn idle_expiry_names_the_idle_clock() {
    let (m, _, clock, events) = setup();
    let a = m.create(NewSession::new()).unwrap();
    clock.advance(IDLE);
    let err = m.load(a.token()).unwrap_err();
    assert!(
        matches!(err, Error::IdleExpired { deadline } if deadline == START.saturating_add(IDLE)),
        "{err:?}"
    );
    assert_eq!(err.reason(), "idle_expired");
    assert!(events.0.lock().iter().any(|e| matches!(
        e,
        Event::Expired {
            kind: latchkey::ExpiryKind::Idle,
            ..
        }
    )));
}

#[test]
fn absolute_expiry_and_unknown_tokens_are_reported_by_name() {
    let (m, _, clock, events) = setup();
    let a = m.create(NewSession::new()).unwrap();
    let err = loop {
        clock.advance(IDLE / 2);
        if let Err(e) = m.load(a.token()) {
            break e;
        }
    };
    assert!(matches!(err, Error::AbsoluteExpired { .. }), "{err:?}");
    let unknown = SessionId::generate();
    assert!(matches!(m.load(&unknown.to_token()), Err(Error::Unknown)));
    let events = events.0.lock();
    assert!(events.iter().any(|e| matches!(
        e,
        Event::Expired { kind: latchkey::ExpiryKind::Absolute, session }
            if *session == a.fingerprint()
    )));
    assert!(events.iter().any(|e| matches!(
        e,
        Event::Rejected { kind: latchkey::RejectKind::Unknown, session: Some(f) }
            if *f == unknown.fingerprint()
    )));
}

#[test]
fn activity_slides_the_idle_deadline_but_never_the_absolute_one() {
    let (m, _, clock, _) = setup();
    let a = m.create(NewSession::new()).unwrap();
    let mut last = None;
    while clock.now() < START.saturating_add(ABSOLUTE) {
        clock.advance(IDLE / 2);
        match m.load(a.token()) {
            Ok(l) => {
                assert_eq!(
                    l.session.absolute_deadline(),
                    START.saturating_add(ABSOLUTE)
                );
                last = Some(l.session.idle_deadline());
            }
            Err(e) => {
                assert!(
                    matches!(e, Error::AbsoluteExpired { deadline } if deadline == START.saturating_add(ABSOLUTE)),
                    "{e:?}"
                );
                assert_eq!(e.reason(), "absolute_expired");
                assert!(
                    last.is_some(),
                    "the session should have lived past its first idle window"
                );
                return;
            }
        }
    }
    panic!("the absolute deadline did not end the session");
}

#[test]
fn rotation_and_login_keep_the_absolute_deadline() {
    let (m, _, clock, _) = setup();
    let a = m.create(NewSession::new()).unwrap();
    let mut s = m.load(a.token()).unwrap().session;
    clock.advance(Duration::from_secs(100));
    let r = m.rotate(&mut s).unwrap();
    clock.advance(Duration::from_secs(100));
    let l = m.login(&mut s, "alice").unwrap();
    let abs = START.saturating_add(ABSOLUTE);
    assert_eq!(r.absolute_deadline(), abs);
    assert_eq!(l.absolute_deadline(), abs);
    let loaded = m.load(l.token()).unwrap().session;
    assert_eq!(loaded.absolute_deadline(), abs);
    assert_eq!(loaded.created_at(), START);
    assert_eq!(
        loaded.authenticated_at(),
        Some(START.saturating_add(Duration::from_secs(200)))
    );
}

// Invariant 4: rotation.

#[test]
fn old_token_resolves_during_grace_and_says_to_reissue() {
    let (m, _, clock, _) = setup();
    let a = m.create(NewSession::new()).unwrap();
    let mut s = m.load(a.token()).unwrap().session;
    let b = m.rotate(&mut s).unwrap();
    let c = m.rotate(&mut s).unwrap();
    clock.advance(GRACE - Duration::from_millis(1));
    // Two rotations in a row: the oldest token follows the chain to the newest.
    let l = m.load(a.token()).unwrap();
    assert_eq!(l.session.fingerprint(), c.fingerprint());
    assert_eq!(l.reissue.unwrap().token(), c.token());
    assert_eq!(
        m.load(b.token()).unwrap().reissue.unwrap().token(),
        c.token()
    );
    assert!(m.load(c.token()).unwrap().reissue.is_none());
}

#[test]
fn old_token_fails_after_grace_and_revokes_the_successor() {
    let (m, _, clock, events) = setup();
    let a = m.create(NewSession::new()).unwrap();
    let mut s = m.load(a.token()).unwrap().session;
    let b = m.login(&mut s, "alice").unwrap();
    clock.advance(GRACE);
    let err = m.load(a.token()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::RotatedTokenReused {
                successor_revoked: true
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.reason(), "rotated_token_reused");
    let err = m.load(b.token()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Terminated {
                reason: EndReason::ReuseDetected
            }
        ),
        "{err:?}"
    );
    assert!(events.0.lock().iter().any(|e| matches!(
        e,
        Event::ReuseDetected {
            successor_revoked: true,
            ..
        }
    )));
    assert!(m.sessions_of("alice").unwrap().is_empty());
}

#[test]
fn reuse_with_reject_only_policy_keeps_the_successor() {
    let p = policy()
        .to_builder()
        .with_reuse_response(ReuseResponse::RejectOnly)
        .build()
        .unwrap();
    let (m, _, clock, _) = setup_with(p);
    let a = m.create(NewSession::new()).unwrap();
    let mut s = m.load(a.token()).unwrap().session;
    let b = m.rotate(&mut s).unwrap();
    clock.advance(GRACE);
    let err = m.load(a.token()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::RotatedTokenReused {
                successor_revoked: false
            }
        ),
        "{err:?}"
    );
    assert!(m.load(b.token()).is_ok());
}

#[test]
fn login_as_another_user_starts_a_fresh_session_without_the_old_data() {
    let (m, _, clock, _) = setup();
    let a = m
        .create(
            NewSession::new()
                .with_user("alice")
                .with_value("secret", &"alice's")
                .unwrap(),
        )
        .unwrap();
    let mut s = m.load(a.token()).unwrap().session;
    clock.advance(Duration::from_secs(100));
    let b = m.login(&mut s, "bob").unwrap();
    assert_eq!(s.user(), Some("bob"));
    assert_eq!(s.get::<String>("secret").unwrap(), None);
    assert_eq!(
        s.created_at(),
        START.saturating_add(Duration::from_secs(100))
    );
    let err = m.load(a.token()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Terminated {
                reason: EndReason::Replaced
            }
        ),
        "{err:?}"
    );
    assert_eq!(m.load(b.token()).unwrap().session.user(), Some("bob"));
}

// Invariant 5: touch without write storms.

#[test]
fn loads_write_only_once_per_touch_interval() {
    let (m, store, clock, _) = setup();
    let a = m.create(NewSession::new()).unwrap();
    let base = store.writes();
    for _ in 0..50 {
        clock.advance(Duration::from_secs(1));
        m.load(a.token()).unwrap();
    }
    // 50 s of loads, all inside one 60 s touch interval: no writes.
    assert_eq!(store.writes(), base);
    clock.advance(Duration::from_secs(10));
    let l = m.load(a.token()).unwrap();
    assert_eq!(store.writes(), base + 1);
    assert_eq!(l.session.last_seen(), clock.now());
    // A touch does not change the version, so an earlier copy can still save.
    assert_eq!(l.session.version(), 1);
}

// Invariant 6: no lost updates.

#[test]
fn update_retries_conflicts_and_loses_no_increment() {
    let (m, ..) = setup();
    let a = m.create(NewSession::new()).unwrap();
    let (ok, gave_up) = (AtomicUsize::new(0), AtomicUsize::new(0));
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for _ in 0..50 {
                    let r = m.update(a.token(), |s| {
                        let n = s.get::<u64>("n").unwrap().unwrap_or(0);
                        s.insert("n", &(n + 1)).unwrap();
                    });
                    match r {
                        Ok(_) => ok.fetch_add(1, Ordering::SeqCst),
                        // All 8 attempts conflicted: reported, not lost silently.
                        Err(Error::Conflict) => gave_up.fetch_add(1, Ordering::SeqCst),
                        Err(e) => panic!("{e:?}"),
                    };
                }
            });
        }
    });
    let n = m
        .load(a.token())
        .unwrap()
        .session
        .get::<u64>("n")
        .unwrap()
        .unwrap();
    let ok = ok.into_inner();
    assert_eq!(n as usize, ok, "an acknowledged update was lost");
    assert_eq!(ok + gave_up.into_inner(), 200);
    assert!(
        ok >= 100,
        "retries should absorb most conflicts, only {ok} of 200 landed"
    );
}

#[test]
fn every_successful_save_is_reflected_exactly_once() {
    let (m, ..) = setup();
    let a = m.create(NewSession::new()).unwrap();
    let ok = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for _ in 0..100 {
                    let mut s = m.load(a.token()).unwrap().session;
                    let n = s.get::<u64>("n").unwrap().unwrap_or(0);
                    s.insert("n", &(n + 1)).unwrap();
                    match m.save(&mut s) {
                        Ok(_) => {
                            ok.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(Error::Conflict) => {}
                        Err(e) => panic!("{e:?}"),
                    }
                }
            });
        }
    });
    let n = m
        .load(a.token())
        .unwrap()
        .session
        .get::<u64>("n")
        .unwrap()
        .unwrap();
    assert_eq!(n as usize, ok.into_inner());
}

// Invariant 7: termination is final.

#[test]
fn terminated_expired_and_revoked_sessions_stay_dead() {
    let (m, _, clock, _) = setup();
    let logout = m.create(NewSession::new().with_user("u")).unwrap();
    let everywhere = m.create(NewSession::new().with_user("u")).unwrap();
    let idle = m.create(NewSession::new()).unwrap();
    m.terminate(&m.load(logout.token()).unwrap().session)
        .unwrap();
    assert_eq!(m.terminate_all("u", None).unwrap(), Some(1));
    for step in 0..5 {
        assert!(matches!(
            m.load(logout.token()),
            Err(Error::Terminated {
                reason: EndReason::Logout
            })
        ));
        assert!(matches!(
            m.load(everywhere.token()),
            Err(Error::Terminated {
                reason: EndReason::LogoutAll
            })
        ));
        if step > 0 {
            assert!(m.load(idle.token()).unwrap_err().is_rejection());
        }
        clock.advance(IDLE);
        m.purge_expired().unwrap();
    }
    // Long after, purged: still refused, now as unknown.
    clock.advance(ABSOLUTE * 2);
    m.purge_expired().unwrap();
    for t in [&logout, &everywhere, &idle] {
        assert!(matches!(m.load(t.token()), Err(Error::Unknown)));
    }
}

// Invariant 9: limits.

#[test]
fn data_over_the_limit_is_refused_and_nothing_is_written() {
    let p = policy()
        .to_builder()
        .with_max_data_bytes(100)
        .build()
        .unwrap();
    let (m, store, ..) = setup_with(p);
    let too_big = NewSession::new().with_value("x", &"y".repeat(200)).unwrap();
    assert!(matches!(
        m.create(too_big),
        Err(Error::TooLarge { limit: 100, .. })
    ));
    assert_eq!(store.writes(), 0);
    let a = m.create(NewSession::new()).unwrap();
    let mut s = m.load(a.token()).unwrap().session;
    s.insert("x", &"y".repeat(200)).unwrap();
    let err = m.save(&mut s).unwrap_err();
    assert!(matches!(err, Error::TooLarge { limit: 100, .. }), "{err:?}");
    assert_eq!(m.load(a.token()).unwrap().session.keys().count(), 0);
}

#[test]
fn per_user_limit_evicts_the_oldest_session() {
    let p = policy()
        .to_builder()
        .with_max_sessions_per_user(Some(2), UserLimitAction::EvictOldest)
        .build()
        .unwrap();
    let (m, _, clock, _) = setup_with(p);
    let t: Vec<_> = (0..3)
        .map(|_| {
            clock.advance(Duration::from_secs(1));
            m.create(NewSession::new().with_user("alice")).unwrap()
        })
        .collect();
    assert!(matches!(
        m.load(t[0].token()),
        Err(Error::Terminated {
            reason: EndReason::Evicted
        })
    ));
    assert!(m.load(t[1].token()).is_ok());
    assert!(m.load(t[2].token()).is_ok());
    assert_eq!(m.sessions_of("alice").unwrap().len(), 2);
}

#[test]
fn per_user_limit_can_refuse_the_new_session() {
    let p = policy()
        .to_builder()
        .with_max_sessions_per_user(Some(2), UserLimitAction::Refuse)
        .build()
        .unwrap();
    let (m, ..) = setup_with(p);
    let a = m.create(NewSession::new().with_user("alice")).unwrap();
    m.create(NewSession::new().with_user("alice")).unwrap();
    let err = m.create(NewSession::new().with_user("alice")).unwrap_err();
    assert!(matches!(err, Error::UserLimit { limit: 2 }), "{err:?}");
    // Logging in an anonymous session as alice is refused too, and leaves it usable.
    let anon = m.create(NewSession::new()).unwrap();
    let mut s = m.load(anon.token()).unwrap().session;
    assert!(matches!(
        m.login(&mut s, "alice"),
        Err(Error::UserLimit { limit: 2 })
    ));
    assert_eq!(s.user(), None);
    assert!(m.load(anon.token()).is_ok());
    assert!(m.load(a.token()).is_ok());
}

#[test]
fn terminate_by_fingerprint_only_touches_the_named_users_sessions() {
    let (m, ..) = setup();
    let alice = m.create(NewSession::new().with_user("alice")).unwrap();
    let bob = m.create(NewSession::new().with_user("bob")).unwrap();
    assert!(
        !m.terminate_by_fingerprint("alice", bob.fingerprint())
            .unwrap()
    );
    assert!(m.load(bob.token()).is_ok());
    assert!(
        m.terminate_by_fingerprint("alice", alice.fingerprint())
            .unwrap()
    );
    assert!(m.load(alice.token()).unwrap_err().is_rejection());
}

// Secrets in Debug output.

#[test]
fn debug_of_every_secret_bearing_type_leaks_nothing() {
    let (m, ..) = setup();
    let a = m
        .create(
            NewSession::new()
                .with_value("csrf", &"s3cr3t-value")
                .unwrap(),
        )
        .unwrap();
    let id = SessionId::parse(a.token()).unwrap();
    let loaded = m.load(a.token()).unwrap();
    let all = format!("{a:?} {id:?} {loaded:?} {:?} {m:?}", loaded.session);
    assert!(!all.contains(a.token()));
    // Session data values may be secrets too (CSRF tokens, OAuth state).
    assert!(!all.contains("s3cr3t-value"));
    assert!(all.contains("csrf"));
}

#[test]
fn a_store_that_fails_a_load_is_a_backend_failure_not_a_rejection() {
    let (m, store, _, events) = setup();
    let issued = m.create(NewSession::new()).unwrap();
    let before = events.0.lock().len();
    store.fail_reads.store(true, Ordering::SeqCst);
    let err = m.load(issued.token()).unwrap_err();
    assert!(err.is_backend_failure() && !err.is_rejection(), "{err:?}");
    store.fail_reads.store(false, Ordering::SeqCst);
    assert!(m.load(issued.token()).is_ok());
    // A store failure is not reported as a rejected or unknown token.
    assert_eq!(events.0.lock().len(), before, "{:?}", events.0.lock());
}

/// A full disk: a load that is due an activity touch still succeeds (the
/// touch is best effort and reported), while a write that must land fails
/// as a backend failure, not a rejection.
#[test]
fn a_full_disk_costs_the_touch_not_the_load() {
    let (m, store, clock, events) = setup();
    let issued = m.create(NewSession::new().with_user("alice")).unwrap();
    clock.advance(TOUCH);
    store.fail_writes.store(true, Ordering::SeqCst);
    let loaded = m
        .load(issued.token())
        .expect("a load due a touch on a full disk");
    assert_eq!(loaded.session.user(), Some("alice"));
    assert_eq!(
        loaded.session.last_seen(),
        START,
        "the activity was not recorded"
    );
    assert!(
        events.0.lock().iter().any(
            |e| matches!(e, Event::TouchFailed { session, .. } if *session == issued.fingerprint())
        ),
        "the missed touch is reported"
    );
    let mut session = loaded.session;
    session.insert("n", &1).unwrap();
    let err = m.save(&mut session).unwrap_err();
    assert!(err.is_backend_failure() && !err.is_rejection(), "{err:?}");
    store.fail_writes.store(false, Ordering::SeqCst);
    assert!(m.save(&mut session).is_ok());
}
