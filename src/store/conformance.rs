//! The store conformance suite: the tests every [`Store`] must pass, for
//! third-party stores as for latchkey's own (feature `test-util`).
//!
//! [`store_conformance!`](crate::store_conformance) generates one `#[test]`
//! per case from a closure that builds a fresh, empty store. The first half
//! of the cases drives the `Store` contract directly (versioned writes,
//! touch, rotation, listings, purge, records of every state, concurrency);
//! the second drives a [`StoreManager`] over the store, so a backend also
//! proves the session invariants end to end. The manager's own rules are
//! the [`lifecycle`](crate::lifecycle) table.
//!
//! A store that keeps native expiry (as Redis does) should build itself on
//! the clock it is handed; the cases start at [`START`], a fixed instant
//! near real time.
//!
//! # Example
//! In a test file of your store's crate, with `latchkey = { version = "…",
//! features = ["test-util"] }` among its dev-dependencies:
//! ```
//! use latchkey::{ManualClock, MemoryStore};
//!
//! // Your store here; MemoryStore stands in for it.
//! latchkey::store_conformance!(my_store, |clock: &ManualClock| {
//!     MemoryStore::new().with_clock(std::sync::Arc::new(clock.clone()))
//! });
//! # fn main() {}
//! ```
// Test code: a failed `unwrap` is the failure being reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use crate::store::{LiveSession, Peek, Record, RecordState, Store, StoreError};
use crate::{
    Clock, EndReason, Error, ManualClock, NewSession, Policy, SessionData, SessionId,
    SessionManager, StoreKey, StoreManager, Timestamp,
};

/// 2026-11-23T00:00:00Z: the instant every case starts at, fixed and near
/// real time, so backends with native expiry (Redis) see deadlines in the
/// future.
///
/// # Example
/// ```
/// assert_eq!(latchkey::store::conformance::START.as_unix_millis(), 1_795_392_000_000);
/// ```
pub const START: Timestamp = Timestamp::from_unix_millis(1_795_392_000_000);

/// Generates the store conformance suite for a backend: a module `$name`
/// with one `#[test]` per case, each building a fresh store with `$make`,
/// a closure from `&ManualClock` to the store (any `Store`, a `Box<dyn
/// Store>` too). Attributes before the name go on every generated test:
/// `#[ignore = "needs a server"]` for a store that needs one running.
/// Feature `test-util`; see [`store::conformance`](crate::store::conformance).
///
/// # Example
/// ```
/// latchkey::store_conformance!(memory, |clock: &latchkey::ManualClock| {
///     latchkey::MemoryStore::new().with_clock(std::sync::Arc::new(clock.clone()))
/// });
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! store_conformance {
    ($(#[$attr:meta])* $name:ident, $make:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            fn make(clock: &$crate::ManualClock) -> impl $crate::store::Store + use<> {
                #[allow(clippy::redundant_closure_call)]
                ($make)(clock)
            }

            $crate::store_conformance!(@cases make [$(#[$attr])*];
                insert_then_get_returns_the_record,
                insert_fails_on_an_existing_key_in_any_state,
                get_of_a_missing_key_is_none,
                replace_at_the_expected_version_succeeds,
                replace_from_a_stale_version_conflicts_and_changes_nothing,
                replace_of_a_missing_key_is_not_found,
                touch_records_activity_without_a_version_bump,
                touch_never_moves_activity_backwards,
                touch_of_a_retired_or_missing_key_is_false,
                rotate_retires_old_and_inserts_new_atomically,
                rotate_from_a_stale_version_changes_nothing,
                rotate_onto_an_existing_key_changes_nothing,
                remove_really_deletes,
                sessions_of_lists_exactly_the_users_live_records,
                sessions_of_follows_replace_and_rotate,
                purge_expired_deletes_dead_records_only,
                records_round_trip_every_state,
                peek_shows_what_get_returns,
                concurrent_replaces_from_one_version_admit_exactly_one,
                readers_beside_a_writer_see_whole_records,
                manager_lifecycle_works_end_to_end,
                manager_termination_is_final,
                manager_rotation_grace_then_reuse_detection,
                manager_stale_save_conflicts,
                manager_terminate_all_spares_the_current_session,
                manager_idle_and_absolute_expiry,
                manager_unknown_token_is_never_adopted,
            );
        }
    };
    (@cases $make:ident $attrs:tt; $($case:ident),* $(,)?) => {
        $(
            $crate::store_conformance!(@case $make $attrs $case);
        )*
    };
    (@case $make:ident [$($attr:tt)*] $case:ident) => {
        #[test]
        $($attr)*
        fn $case() {
            $crate::store::conformance::$case(&$make);
        }
    };
}

fn clock() -> ManualClock {
    ManualClock::new(START)
}

fn key() -> StoreKey {
    SessionId::generate().store_key()
}

fn live(user: Option<&str>, version: u64) -> Record {
    let mut data = serde_json::Map::new();
    data.insert("cart".into(), serde_json::json!(["book", "lamp"]));
    data.insert("n".into(), serde_json::json!(version));
    Record {
        version,
        expires_at: START.saturating_add(Duration::from_secs(600)),
        state: RecordState::Live(LiveSession {
            created_at: START,
            last_seen: START,
            auth_at: user.map(|_| START),
            absolute_deadline: START.saturating_add(Duration::from_secs(3600)),
            user: user.map(str::to_owned),
            device: Some("test device \u{2603}".into()),
            data: SessionData::from_map(data),
        }),
    }
}

fn ended(version: u64) -> Record {
    Record {
        version,
        expires_at: START.saturating_add(Duration::from_secs(3600)),
        state: RecordState::Ended {
            reason: EndReason::Logout,
            at: START,
        },
    }
}

fn last_seen(r: &Record) -> Timestamp {
    match &r.state {
        RecordState::Live(s) => s.last_seen,
        other => panic!("expected a live record, got {other:?}"),
    }
}

#[doc(hidden)]
pub fn insert_then_get_returns_the_record<S: Store>(make: &dyn Fn(&ManualClock) -> S) {
    let s = make(&clock());
    let (k, r) = (key(), live(Some("alice"), 1));
    s.insert(&k, &r).unwrap();
    assert_eq!(s.get(&k).unwrap(), Some(r));
}

#[doc(hidden)]
pub fn insert_fails_on_an_existing_key_in_any_state<S: Store>(make: &dyn Fn(&ManualClock) -> S) {
    let s = make(&clock());
    let k = key();
    s.insert(&k, &live(None, 1)).unwrap();
    assert!(matches!(
        s.insert(&k, &live(None, 9)),
        Err(StoreError::Exists)
    ));
    assert_eq!(s.get(&k).unwrap().unwrap().version, 1);
    let k2 = key();
    s.insert(&k2, &ended(3)).unwrap();
    assert!(matches!(
        s.insert(&k2, &live(None, 1)),
        Err(StoreError::Exists)
    ));
    assert_eq!(s.get(&k2).unwrap(), Some(ended(3)));
}

#[doc(hidden)]
pub fn get_of_a_missing_key_is_none<S: Store>(make: &dyn Fn(&ManualClock) -> S) {
    let s = make(&clock());
    assert_eq!(s.get(&key()).unwrap(), None);
}

#[doc(hidden)]
pub fn replace_at_the_expected_version_succeeds<S: Store>(make: &dyn Fn(&ManualClock) -> S) {
    let s = make(&clock());
    let k = key();
    s.insert(&k, &live(None, 1)).unwrap();
    s.replace(&k, 1, &live(None, 2)).unwrap();
    assert_eq!(s.get(&k).unwrap(), Some(live(None, 2)));
}

#[doc(hidden)]
pub fn replace_from_a_stale_version_conflicts_and_changes_nothing<S: Store>(
    make: &dyn Fn(&ManualClock) -> S,
) {
    let s = make(&clock());
    let k = key();
    s.insert(&k, &live(None, 1)).unwrap();
    s.replace(&k, 1, &live(None, 2)).unwrap();
    assert!(matches!(
        s.replace(&k, 1, &live(None, 2)),
        Err(StoreError::Conflict)
    ));
    assert!(matches!(
        s.replace(&k, 7, &ended(8)),
        Err(StoreError::Conflict)
    ));
    assert_eq!(s.get(&k).unwrap(), Some(live(None, 2)));
}

#[doc(hidden)]
pub fn replace_of_a_missing_key_is_not_found<S: Store>(make: &dyn Fn(&ManualClock) -> S) {
    let s = make(&clock());
    let k = key();
    assert!(matches!(
        s.replace(&k, 1, &live(None, 2)),
        Err(StoreError::NotFound)
    ));
    assert_eq!(s.get(&k).unwrap(), None);
}

#[doc(hidden)]
pub fn touch_records_activity_without_a_version_bump<S: Store>(make: &dyn Fn(&ManualClock) -> S) {
    let s = make(&clock());
    let k = key();
    s.insert(&k, &live(None, 1)).unwrap();
    let later = START.saturating_add(Duration::from_secs(120));
    let exp = later.saturating_add(Duration::from_secs(600));
    assert!(s.touch(&k, later, exp).unwrap());
    let r = s.get(&k).unwrap().unwrap();
    assert_eq!(r.version, 1);
    assert_eq!(last_seen(&r), later);
    assert_eq!(r.expires_at, exp);
    // A save from the copy loaded before the touch still lands.
    s.replace(&k, 1, &live(None, 2)).unwrap();
}

#[doc(hidden)]
pub fn touch_never_moves_activity_backwards<S: Store>(make: &dyn Fn(&ManualClock) -> S) {
    let s = make(&clock());
    let k = key();
    s.insert(&k, &live(None, 1)).unwrap();
    let later = START.saturating_add(Duration::from_secs(120));
    let exp = later.saturating_add(Duration::from_secs(600));
    assert!(s.touch(&k, later, exp).unwrap());
    assert!(s.touch(&k, START, START).unwrap());
    let r = s.get(&k).unwrap().unwrap();
    assert_eq!(last_seen(&r), later);
    assert_eq!(r.expires_at, exp);
}

#[doc(hidden)]
pub fn touch_of_a_retired_or_missing_key_is_false<S: Store>(make: &dyn Fn(&ManualClock) -> S) {
    let s = make(&clock());
    let k = key();
    s.insert(&k, &ended(2)).unwrap();
    let later = START.saturating_add(Duration::from_secs(120));
    assert!(!s.touch(&k, later, later).unwrap());
    assert_eq!(s.get(&k).unwrap(), Some(ended(2)));
    assert!(!s.touch(&key(), later, later).unwrap());
}

fn retired(successor: StoreKey, version: u64) -> Record {
    let old = SessionId::generate();
    // Any sealed value will do for the store: it is opaque to it.
    let sealed = serde_json::from_value(serde_json::json!(old.to_token())).unwrap();
    Record {
        version,
        expires_at: START.saturating_add(Duration::from_secs(3600)),
        state: RecordState::Rotated {
            successor,
            sealed_successor: Some(sealed),
            at: START,
            grace_until: START,
            privilege_change: false,
            pending: None,
        },
    }
}

/// `r` without the successor a single-key rotation carries as its intent
/// (the provided `Store::rotate` adds it; an atomic store does not).
fn without_pending(mut r: Record) -> Record {
    if let RecordState::Rotated { pending, .. } = &mut r.state {
        *pending = None;
    }
    r
}

#[doc(hidden)]
pub fn rotate_retires_old_and_inserts_new_atomically<S: Store>(make: &dyn Fn(&ManualClock) -> S) {
    let s = make(&clock());
    let (old, new) = (key(), key());
    s.insert(&old, &live(Some("alice"), 3)).unwrap();
    let ret = retired(new, 4);
    s.rotate(&old, 3, &ret, &new, &live(Some("alice"), 1))
        .unwrap();
    let stored = s.get(&old).unwrap().unwrap();
    if let RecordState::Rotated {
        pending: Some(p), ..
    } = &stored.state
    {
        assert_eq!(**p, live(Some("alice"), 1), "the intent is the successor");
    }
    assert_eq!(without_pending(stored), ret);
    assert_eq!(s.get(&new).unwrap(), Some(live(Some("alice"), 1)));
}

#[doc(hidden)]
pub fn rotate_from_a_stale_version_changes_nothing<S: Store>(make: &dyn Fn(&ManualClock) -> S) {
    let s = make(&clock());
    let (old, new) = (key(), key());
    s.insert(&old, &live(None, 3)).unwrap();
    let res = s.rotate(&old, 2, &retired(new, 3), &new, &live(None, 1));
    assert!(matches!(res, Err(StoreError::Conflict)), "{res:?}");
    assert_eq!(s.get(&old).unwrap(), Some(live(None, 3)));
    assert_eq!(s.get(&new).unwrap(), None);
    let missing = key();
    let res = s.rotate(&missing, 1, &retired(new, 2), &new, &live(None, 1));
    assert!(matches!(res, Err(StoreError::NotFound)), "{res:?}");
    assert_eq!(s.get(&new).unwrap(), None);
}

#[doc(hidden)]
pub fn rotate_onto_an_existing_key_changes_nothing<S: Store>(make: &dyn Fn(&ManualClock) -> S) {
    let s = make(&clock());
    let (old, new) = (key(), key());
    s.insert(&old, &live(None, 1)).unwrap();
    s.insert(&new, &ended(5)).unwrap();
    let res = s.rotate(&old, 1, &retired(new, 2), &new, &live(None, 1));
    assert!(matches!(res, Err(StoreError::Exists)), "{res:?}");
    assert_eq!(s.get(&old).unwrap(), Some(live(None, 1)));
    assert_eq!(s.get(&new).unwrap(), Some(ended(5)));
    // `old` is checked first: a stale version or a missing key says so,
    // whatever `new` holds.
    let res = s.rotate(&old, 7, &retired(new, 8), &new, &live(None, 1));
    assert!(matches!(res, Err(StoreError::Conflict)), "{res:?}");
    let res = s.rotate(&key(), 1, &retired(new, 2), &new, &live(None, 1));
    assert!(matches!(res, Err(StoreError::NotFound)), "{res:?}");
}

#[doc(hidden)]
pub fn remove_really_deletes<S: Store>(make: &dyn Fn(&ManualClock) -> S) {
    let s = make(&clock());
    let k = key();
    s.insert(&k, &live(Some("bob"), 1)).unwrap();
    assert!(s.remove(&k).unwrap());
    assert_eq!(s.get(&k).unwrap(), None);
    assert!(!s.remove(&k).unwrap());
    assert!(s.sessions_of("bob").unwrap().is_empty());
    // The key is free again.
    s.insert(&k, &live(None, 1)).unwrap();
}

fn keys_of<S: Store>(s: &S, user: &str) -> Vec<StoreKey> {
    let mut v: Vec<StoreKey> = s
        .sessions_of(user)
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    v.sort();
    v
}

fn sorted(mut v: Vec<StoreKey>) -> Vec<StoreKey> {
    v.sort();
    v
}

#[doc(hidden)]
pub fn sessions_of_lists_exactly_the_users_live_records<S: Store>(
    make: &dyn Fn(&ManualClock) -> S,
) {
    let s = make(&clock());
    let (a1, a2, b, anon, gone) = (key(), key(), key(), key(), key());
    s.insert(&a1, &live(Some("alice"), 1)).unwrap();
    s.insert(&a2, &live(Some("alice"), 1)).unwrap();
    s.insert(&b, &live(Some("bob"), 1)).unwrap();
    s.insert(&anon, &live(None, 1)).unwrap();
    s.insert(&gone, &ended(2)).unwrap();
    assert_eq!(keys_of(&s, "alice"), sorted(vec![a1, a2]));
    assert_eq!(keys_of(&s, "bob"), vec![b]);
    assert!(keys_of(&s, "carol").is_empty());
    // User names are data, not patterns or paths.
    assert!(keys_of(&s, "*").is_empty());
    assert!(keys_of(&s, "../alice").is_empty());
    for (_, r) in s.sessions_of("alice").unwrap() {
        assert_eq!(r.user(), Some("alice"));
    }
}

#[doc(hidden)]
pub fn sessions_of_follows_replace_and_rotate<S: Store>(make: &dyn Fn(&ManualClock) -> S) {
    let s = make(&clock());
    let (k, k2, k3) = (key(), key(), key());
    s.insert(&k, &live(None, 1)).unwrap();
    s.replace(&k, 1, &live(Some("alice"), 2)).unwrap();
    assert_eq!(keys_of(&s, "alice"), vec![k]);
    s.rotate(&k, 2, &retired(k2, 3), &k2, &live(Some("alice"), 1))
        .unwrap();
    assert_eq!(keys_of(&s, "alice"), vec![k2]);
    s.rotate(&k2, 1, &retired(k3, 2), &k3, &live(Some("bob"), 1))
        .unwrap();
    assert!(keys_of(&s, "alice").is_empty());
    assert_eq!(keys_of(&s, "bob"), vec![k3]);
    s.replace(&k3, 1, &ended(2)).unwrap();
    assert!(keys_of(&s, "bob").is_empty());
}

#[doc(hidden)]
pub fn purge_expired_deletes_dead_records_only<S: Store>(make: &dyn Fn(&ManualClock) -> S) {
    let s = make(&clock());
    let (dead, alive, tomb) = (key(), key(), key());
    let mut d = live(Some("alice"), 1);
    d.expires_at = START.saturating_add(Duration::from_secs(10));
    s.insert(&dead, &d).unwrap();
    s.insert(&alive, &live(Some("alice"), 1)).unwrap();
    let mut t = ended(2);
    t.expires_at = START.saturating_add(Duration::from_secs(10));
    s.insert(&tomb, &t).unwrap();
    let n = s
        .purge_expired(START.saturating_add(Duration::from_secs(10)))
        .unwrap();
    assert_eq!(n, 2);
    assert_eq!(s.get(&dead).unwrap(), None);
    assert_eq!(s.get(&tomb).unwrap(), None);
    assert_eq!(s.get(&alive).unwrap(), Some(live(Some("alice"), 1)));
    assert_eq!(keys_of(&s, "alice"), vec![alive]);
    assert_eq!(s.purge_expired(START).unwrap(), 0);
}

#[doc(hidden)]
pub fn records_round_trip_every_state<S: Store>(make: &dyn Fn(&ManualClock) -> S) {
    let s = make(&clock());
    let mut odd = live(Some("ünïcødé \"quoted\" \n user"), 1);
    if let RecordState::Live(l) = &mut odd.state {
        let mut m = serde_json::Map::new();
        m.insert(
            "nested".into(),
            serde_json::json!({"a": [1, 2, {"b": null}], "big": u64::MAX}),
        );
        m.insert("".into(), serde_json::json!("empty key"));
        l.data = SessionData::from_map(m);
        l.device = None;
        l.auth_at = None;
    }
    let mut privileged = retired(key(), 4);
    if let RecordState::Rotated {
        sealed_successor,
        privilege_change,
        pending,
        ..
    } = &mut privileged.state
    {
        *sealed_successor = None;
        *privilege_change = true;
        *pending = Some(Box::new(live(Some("alice"), 1)));
    }
    let cases = [
        odd,
        live(None, u64::MAX - 1),
        ended(2),
        retired(key(), 9),
        privileged,
    ];
    for r in cases {
        let k = key();
        s.insert(&k, &r).unwrap();
        assert_eq!(s.get(&k).unwrap(), Some(r));
    }
}

#[doc(hidden)]
pub fn peek_shows_what_get_returns<S: Store>(make: &dyn Fn(&ManualClock) -> S) {
    let s = make(&clock());
    let mut big = live(None, 5);
    if let RecordState::Live(l) = &mut big.state {
        let mut m = serde_json::Map::new();
        m.insert("blob".into(), serde_json::json!("ü".repeat(300)));
        l.data = SessionData::from_map(m);
    }
    let lives = [live(Some("alice"), 1), live(None, u64::MAX - 1), big];
    for r in lives {
        let k = key();
        s.insert(&k, &r).unwrap();
        s.touch(
            &k,
            START.saturating_add(Duration::from_secs(9)),
            r.expires_at,
        )
        .unwrap();
        let Some(Record {
            version,
            state: RecordState::Live(want),
            ..
        }) = s.get(&k).unwrap()
        else {
            panic!("not live");
        };
        let shown = s.peek(&k, |seen| match seen {
            Ok(Peek::Live(l)) => {
                // Data is never shown by Debug, in place or not.
                assert!(!format!("{l:?}").contains("book"), "{l:?}");
                (
                    l.version,
                    LiveSession {
                        created_at: l.created_at,
                        last_seen: l.last_seen,
                        auth_at: l.auth_at,
                        absolute_deadline: l.absolute_deadline,
                        user: l.user.map(str::to_owned),
                        device: l.device.map(str::to_owned),
                        data: l.data.to_data(),
                    },
                )
            }
            other => panic!("not shown as live: {other:?}"),
        });
        assert_eq!(shown, (version, want));
    }
    let (gone, over, tomb) = (key(), key(), key());
    s.insert(&over, &retired(key(), 2)).unwrap();
    s.insert(&tomb, &ended(3)).unwrap();
    let shown = |k: &StoreKey| s.peek(k, |seen| format!("{seen:?}"));
    assert_eq!(shown(&gone), "Ok(Missing)");
    assert_eq!(shown(&over), "Ok(NotLive)");
    assert_eq!(shown(&tomb), "Ok(NotLive)");
}

#[doc(hidden)]
pub fn concurrent_replaces_from_one_version_admit_exactly_one<S: Store>(
    make: &dyn Fn(&ManualClock) -> S,
) {
    let s = make(&clock());
    let k = key();
    s.insert(&k, &live(None, 1)).unwrap();
    let wins = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| match s.replace(&k, 1, &live(None, 2)) {
                Ok(()) => {
                    wins.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                Err(StoreError::Conflict) => {}
                Err(e) => panic!("unexpected error {e:?}"),
            });
        }
    });
    assert_eq!(wins.into_inner(), 1);
    assert_eq!(s.get(&k).unwrap().unwrap().version, 2);
}

/// Readers running beside a writer see each record whole: every record
/// written here holds its own version in its data, so a read that mixed
/// two writes would show one version and another's data.
#[doc(hidden)]
pub fn readers_beside_a_writer_see_whole_records<S: Store>(make: &dyn Fn(&ManualClock) -> S) {
    const WRITES: u64 = 200;
    let s = make(&clock());
    let k = key();
    s.insert(&k, &live(None, 1)).unwrap();
    let n_of = |data: &SessionData| -> u64 {
        let value: serde_json::Value = serde_json::from_str(&data.encoded()).unwrap();
        value["n"].as_u64().unwrap()
    };
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                let (mut last, mut reads) = (0, 0);
                // At least a few reads, should the writer finish first.
                while reads < 10 || !done.load(std::sync::atomic::Ordering::Acquire) {
                    reads += 1;
                    let Some(Record {
                        version,
                        state: RecordState::Live(l),
                        ..
                    }) = s.get(&k).unwrap()
                    else {
                        panic!("the record went missing or stopped being live");
                    };
                    assert_eq!(n_of(&l.data), version, "get saw half a write");
                    assert!(version >= last, "a read went back in time");
                    last = version;
                    let shown = s.peek(&k, |seen| match seen {
                        Ok(Peek::Live(l)) => (l.version, n_of(&l.data.to_data())),
                        other => panic!("not shown as live: {other:?}"),
                    });
                    assert_eq!(shown.0, shown.1, "peek saw half a write");
                }
            });
        }
        for v in 1..WRITES {
            s.replace(&k, v, &live(None, v + 1)).unwrap();
        }
        done.store(true, std::sync::atomic::Ordering::Release);
    });
    assert_eq!(s.get(&k).unwrap().unwrap().version, WRITES);
}

fn manager<S: Store>(make: &dyn Fn(&ManualClock) -> S, clock: &ManualClock) -> StoreManager<S> {
    let policy = Policy::builder()
        .with_idle_timeout(Duration::from_secs(600))
        .with_absolute_timeout(Duration::from_secs(3600))
        .with_rotation_grace(Duration::from_secs(30))
        .with_touch_interval(Duration::from_secs(60))
        .build()
        .unwrap();
    StoreManager::new(make(clock))
        .with_policy(policy)
        .with_clock(Arc::new(clock.clone()))
}

#[doc(hidden)]
pub fn manager_lifecycle_works_end_to_end<S: Store>(make: &dyn Fn(&ManualClock) -> S) {
    let clock = clock();
    let m = manager(make, &clock);
    let issued = m
        .create(NewSession::new().with_value("cart", &["book"]).unwrap())
        .unwrap();
    let mut s = m.load(issued.token()).unwrap().session;
    assert_eq!(
        s.get::<Vec<String>>("cart").unwrap(),
        Some(vec!["book".to_owned()])
    );
    s.insert("cart", &["book", "lamp"]).unwrap();
    m.save(&mut s).unwrap();
    let logged = m.login(&mut s, "alice").unwrap();
    let again = m.load(logged.token()).unwrap().session;
    assert_eq!(again.user(), Some("alice"));
    assert_eq!(again.authenticated_at(), Some(START));
    assert_eq!(again.get::<Vec<String>>("cart").unwrap().unwrap().len(), 2);
    assert_eq!(m.sessions_of("alice").unwrap().len(), 1);
    m.terminate(&again).unwrap();
    assert!(m.sessions_of("alice").unwrap().is_empty());
}

#[doc(hidden)]
pub fn manager_termination_is_final<S: Store>(make: &dyn Fn(&ManualClock) -> S) {
    let clock = clock();
    let m = manager(make, &clock);
    let issued = m.create(NewSession::new().with_user("alice")).unwrap();
    let s = m.load(issued.token()).unwrap().session;
    m.terminate(&s).unwrap();
    for _ in 0..3 {
        let err = m.load(issued.token()).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Terminated {
                    reason: EndReason::Logout
                }
            ),
            "{err:?}"
        );
        clock.advance(Duration::from_secs(100));
    }
    // A save from a copy loaded before the logout does not resurrect it.
    let mut stale = s.clone();
    stale.insert("x", &1).unwrap();
    let err = m.save(&mut stale).unwrap_err();
    assert!(err.is_rejection(), "{err:?}");
    assert!(m.load(issued.token()).unwrap_err().is_rejection());
}

#[doc(hidden)]
pub fn manager_rotation_grace_then_reuse_detection<S: Store>(make: &dyn Fn(&ManualClock) -> S) {
    let clock = clock();
    let m = manager(make, &clock);
    let old = m.create(NewSession::new()).unwrap();
    let mut s = m.load(old.token()).unwrap().session;
    let new = m.rotate(&mut s).unwrap();
    clock.advance(Duration::from_secs(10));
    let in_grace = m.load(old.token()).unwrap();
    assert_eq!(in_grace.session.fingerprint(), new.fingerprint());
    assert_eq!(
        in_grace.reissue.as_ref().map(|i| i.token().to_owned()),
        Some(new.token().to_owned())
    );
    clock.advance(Duration::from_secs(30));
    let err = m.load(old.token()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::RotatedTokenReused {
                successor_revoked: true
            }
        ),
        "{err:?}"
    );
    let err = m.load(new.token()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Terminated {
                reason: EndReason::ReuseDetected
            }
        ),
        "{err:?}"
    );
}

#[doc(hidden)]
pub fn manager_stale_save_conflicts<S: Store>(make: &dyn Fn(&ManualClock) -> S) {
    let clock = clock();
    let m = manager(make, &clock);
    let issued = m.create(NewSession::new()).unwrap();
    let mut a = m.load(issued.token()).unwrap().session;
    let mut b = m.load(issued.token()).unwrap().session;
    a.insert("who", &"a").unwrap();
    b.insert("who", &"b").unwrap();
    m.save(&mut a).unwrap();
    assert!(matches!(m.save(&mut b), Err(Error::Conflict)));
    let now = m.load(issued.token()).unwrap().session;
    assert_eq!(now.get::<String>("who").unwrap().as_deref(), Some("a"));
}

#[doc(hidden)]
pub fn manager_terminate_all_spares_the_current_session<S: Store>(
    make: &dyn Fn(&ManualClock) -> S,
) {
    let clock = clock();
    let m = manager(make, &clock);
    let tokens: Vec<_> = (0..3)
        .map(|_| {
            clock.advance(Duration::from_millis(1));
            m.create(NewSession::new().with_user("alice")).unwrap()
        })
        .collect();
    let bob = m.create(NewSession::new().with_user("bob")).unwrap();
    let current = m.load(tokens[1].token()).unwrap().session;
    assert_eq!(m.terminate_all("alice", Some(&current)).unwrap(), Some(2));
    assert!(m.load(tokens[0].token()).unwrap_err().is_rejection());
    assert!(m.load(tokens[2].token()).unwrap_err().is_rejection());
    assert!(m.load(tokens[1].token()).is_ok());
    assert!(m.load(bob.token()).is_ok());
    assert_eq!(m.sessions_of("alice").unwrap().len(), 1);
}

#[doc(hidden)]
pub fn manager_idle_and_absolute_expiry<S: Store>(make: &dyn Fn(&ManualClock) -> S) {
    let clock = clock();
    let m = manager(make, &clock);
    let idle = m.create(NewSession::new()).unwrap();
    let busy = m.create(NewSession::new()).unwrap();
    // Keep `busy` active every 5 minutes; leave `idle` alone.
    for _ in 0..2 {
        clock.advance(Duration::from_secs(300));
        m.load(busy.token()).unwrap();
    }
    let err = m.load(idle.token()).unwrap_err();
    assert!(matches!(err, Error::IdleExpired { .. }), "{err:?}");
    for _ in 0..10 {
        clock.advance(Duration::from_secs(300));
        match m.load(busy.token()) {
            Ok(_) => {}
            Err(e) => {
                assert!(matches!(e, Error::AbsoluteExpired { .. }), "{e:?}");
                assert!(clock.now() >= START.saturating_add(Duration::from_secs(3600)));
                return;
            }
        }
    }
    panic!("activity extended the session past its absolute deadline");
}

#[doc(hidden)]
pub fn manager_unknown_token_is_never_adopted<S: Store>(make: &dyn Fn(&ManualClock) -> S) {
    let clock = clock();
    let m = manager(make, &clock);
    let chosen = SessionId::generate().to_token();
    for _ in 0..2 {
        assert!(matches!(m.load(&chosen), Err(Error::Unknown)));
    }
    assert_eq!(
        m.store()
            .get(&SessionId::parse(&chosen).unwrap().store_key())
            .unwrap(),
        None
    );
}
