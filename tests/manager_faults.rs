//! Crash points, swept: a store wrapper fails every write after the k-th,
//! as a process that dies there (or a store that goes away) would leave it,
//! for every k of every lifecycle operation, over the rotation made of
//! single-key writes (the wrapper keeps `Store::rotate`'s provided
//! protocol) on the memory and file stores, and over a ticket revocation
//! store. After each, with writes working again (a restart: managers keep
//! no state of their own), the outcome must be one the lifecycle allows:
//! no ghost (a second live record of one session), no resurrected token
//! (a token that failed to load, or a logout that returned, coming back),
//! and no change that returned `Ok` lost.

mod faulty;

use std::sync::Arc;
use std::time::Duration;

use faulty::Faulty;

use latchkey::{
    Error, KeyRing, ManualClock, MemoryStore, NewSession, Policy, SessionManager, Store,
    StoreManager, TicketKey, TicketManager, Timestamp, UserLimitAction,
};

const START: Timestamp = Timestamp::from_unix_millis(1_795_392_000_000);

fn policy() -> Policy {
    Policy::builder()
        .with_rotation_grace(Duration::from_secs(30))
        .with_max_sessions_per_user(None, UserLimitAction::EvictOldest)
        .build()
        .unwrap()
}

/// Counts a user's live sessions.
type Count = Box<dyn Fn(&str) -> usize>;

/// A fresh faulty store and a manager over it, for one crash point.
struct Setup {
    m: Arc<dyn SessionManager>,
    arm: Box<dyn Fn(usize)>,
    /// Stops the faults; returns how many writes were attempted.
    disarm: Box<dyn Fn() -> usize>,
    /// The user's live sessions, where the manager can list them
    /// (server-side); tickets cannot.
    count: Option<Count>,
}

fn server<S: Store + 'static>(inner: S) -> Setup {
    let store = Arc::new(Faulty::new(inner));
    let m = StoreManager::new(store.clone())
        .with_policy(policy())
        .with_clock(Arc::new(ManualClock::new(START)));
    let m = Arc::new(m);
    let (a, d) = (store.clone(), store.clone());
    let listing = m.clone();
    Setup {
        m,
        arm: Box::new(move |k| a.arm(k)),
        disarm: Box::new(move || d.disarm()),
        count: Some(Box::new(move |user: &str| {
            listing.sessions_of(user).unwrap().len()
        })),
    }
}

fn tickets<S: Store + 'static>(inner: S) -> Setup {
    let store = Arc::new(Faulty::new(inner));
    let m = TicketManager::new("session", KeyRing::new(1, TicketKey::generate()))
        .unwrap()
        .with_policy(policy())
        .with_clock(Arc::new(ManualClock::new(START)))
        .with_revocation(store.clone());
    let (a, d) = (store.clone(), store);
    Setup {
        m: Arc::new(m),
        arm: Box::new(move |k| a.arm(k)),
        disarm: Box::new(move || d.disarm()),
        count: None,
    }
}

fn memory() -> MemoryStore {
    MemoryStore::new().with_clock(Arc::new(ManualClock::new(START)))
}

/// Runs `scenario` at every crash point until one run makes every write it
/// wants; returns how many crash points were tried.
fn sweep(make: &dyn Fn() -> Setup, scenario: &dyn Fn(&Setup, usize)) -> usize {
    for k in 0..64 {
        let setup = make();
        scenario(&setup, k);
        // The run wrote fewer than k times: every crash point is covered.
        if (setup.disarm)() < k {
            return k;
        }
    }
    panic!("an operation kept writing past 64 writes");
}

fn loads_as(m: &dyn SessionManager, token: &str) -> Option<(Option<String>, String)> {
    m.load(token).ok().map(|l| {
        (
            l.session.user().map(str::to_owned),
            l.session.fingerprint().to_string(),
        )
    })
}

/// A routine rotation cut short: the old token still resolves (rolled
/// forward if the successor was never written), a returned new token
/// resolves to the same session, and the user has one live session.
fn rotate_scenario(s: &Setup, k: usize) {
    let Setup {
        m,
        arm,
        disarm,
        count,
    } = s;
    let t0 = m.create(NewSession::new().with_user("alice")).unwrap();
    let mut session = m.load(t0.token()).unwrap().session;
    arm(k);
    let result = m.rotate(&mut session);
    disarm();
    let old = loads_as(&**m, t0.token()).unwrap_or_else(|| panic!("k={k}: the old token died"));
    assert_eq!(old.0.as_deref(), Some("alice"), "k={k}");
    if let Ok(t1) = &result {
        let new = loads_as(&**m, t1.token()).unwrap_or_else(|| panic!("k={k}: rotated but lost"));
        assert_eq!(new.0, old.0, "k={k}");
        // Server-side, the old token resolves to the very session (a
        // ticket carries its own claims under its own key).
        if count.is_some() {
            assert_eq!(
                new.1, old.1,
                "k={k}: the old token resolves to another session"
            );
        }
    }
    if let Some(count) = count {
        assert_eq!(count("alice"), 1, "k={k}: a ghost or a lost session");
    }
}

/// A login cut short: the planted token never loads as the user, and the
/// user has a live session exactly when login returned `Ok`.
fn login_scenario(s: &Setup, k: usize) {
    let Setup {
        m,
        arm,
        disarm,
        count,
    } = s;
    let planted = m.create(NewSession::new()).unwrap();
    let mut session = m.load(planted.token()).unwrap().session;
    arm(k);
    let result = m.login(&mut session, "victim");
    disarm();
    if let Some((user, _)) = loads_as(&**m, planted.token()) {
        assert_eq!(user, None, "k={k}: the planted token loads the login");
    }
    match &result {
        Ok(t1) => assert_eq!(
            loads_as(&**m, t1.token()).map(|l| l.0),
            Some(Some("victim".to_owned())),
            "k={k}"
        ),
        Err(e) => assert!(e.is_backend_failure(), "k={k}: {e:?}"),
    }
    if let Some(count) = count {
        assert_eq!(count("victim"), usize::from(result.is_ok()), "k={k}");
    }
}

/// A logout cut short, from a copy older than a rotation: if it returned
/// `Ok`, no token of the session loads; either way, one that stopped
/// loading never comes back.
fn terminate_scenario(s: &Setup, k: usize) {
    let Setup {
        m,
        arm,
        disarm,
        count,
    } = s;
    let t0 = m.create(NewSession::new().with_user("alice")).unwrap();
    let stale = m.load(t0.token()).unwrap().session;
    let mut fresh = m.load(t0.token()).unwrap().session;
    let t1 = m.rotate(&mut fresh).unwrap();
    arm(k);
    let result = m.terminate(&stale);
    disarm();
    let alive = |t: &str| m.load(t).is_ok();
    let before = (alive(t0.token()), alive(t1.token()));
    match &result {
        Ok(()) => assert_eq!(
            before,
            (false, false),
            "k={k}: logout returned, a token loads"
        ),
        Err(e) => assert!(e.is_backend_failure(), "k={k}: {e:?}"),
    }
    // The rest of the logout, as the user's retry makes it.
    m.terminate(&stale).unwrap();
    assert_eq!(
        (alive(t0.token()), alive(t1.token())),
        (false, false),
        "k={k}"
    );
    if let Some(count) = count {
        assert_eq!(count("alice"), 0, "k={k}");
    }
}

/// A rotation that died after retiring the old record, then a logout: the
/// successor the rotation carried must never be rolled forward afterwards.
fn crashed_rotation_then_logout_scenario(s: &Setup, k: usize) {
    let Setup {
        m,
        arm,
        disarm,
        count,
    } = s;
    let t0 = m.create(NewSession::new().with_user("alice")).unwrap();
    let mut session = m.load(t0.token()).unwrap().session;
    let copy = session.clone();
    arm(k);
    let rotated = m.rotate(&mut session);
    disarm();
    let mut logout = m.terminate(&copy);
    if let Err(Error::Conflict) = logout {
        logout = m.terminate(&m.load(t0.token()).unwrap().session);
    }
    logout.unwrap();
    assert!(m.load(t0.token()).is_err(), "k={k}: the old token lives");
    if let Ok(t1) = &rotated {
        assert!(m.load(t1.token()).is_err(), "k={k}: the successor lives");
    }
    // Loading the old token again (within grace) must not roll anything forward.
    assert!(m.load(t0.token()).is_err(), "k={k}");
    if let Some(count) = count {
        assert_eq!(count("alice"), 0, "k={k}: a successor came back");
    }
}

/// A save cut short: `Ok` means the change is there; an error means it is
/// not (nothing half-written).
fn save_scenario(s: &Setup, k: usize) {
    let Setup { m, arm, disarm, .. } = s;
    let t0 = m.create(NewSession::new()).unwrap();
    let mut session = m.load(t0.token()).unwrap().session;
    session.insert("n", &7u32).unwrap();
    arm(k);
    let result = m.save(&mut session);
    disarm();
    let token = match &result {
        Ok(Some(reissued)) => reissued.token().to_owned(),
        _ => t0.token().to_owned(),
    };
    let n = m.load(&token).unwrap().session.get::<u32>("n").unwrap();
    match result {
        Ok(_) => assert_eq!(n, Some(7), "k={k}: a saved change was lost"),
        Err(e) => {
            assert!(e.is_backend_failure(), "k={k}: {e:?}");
            assert_eq!(n, None, "k={k}: a failed save landed");
        }
    }
}

type Scenario = fn(&Setup, usize);
const SCENARIOS: [(&str, Scenario); 5] = [
    ("rotate", rotate_scenario),
    ("login", login_scenario),
    ("terminate", terminate_scenario),
    (
        "crashed rotation, then logout",
        crashed_rotation_then_logout_scenario,
    ),
    ("save", save_scenario),
];

fn sweep_all(name: &str, make: &dyn Fn() -> Setup) {
    for (scenario, run) in SCENARIOS {
        let points = sweep(make, &run);
        eprintln!("{name}: {scenario}: {points} crash points");
    }
}

#[test]
fn every_crash_point_of_the_store_manager_on_memory_is_safe() {
    sweep_all("memory", &|| server(memory()));
}

#[cfg(unix)]
#[test]
fn every_crash_point_of_the_store_manager_on_files_is_safe() {
    sweep_all("files", &|| {
        let dir = tempfile::tempdir().unwrap();
        let store = latchkey::FileStore::open(dir.path().join("s")).unwrap();
        // The directory lives as long as the test process; each is small.
        std::mem::forget(dir);
        server(store)
    });
}

#[test]
fn every_crash_point_of_ticket_revocation_is_safe() {
    sweep_all("tickets", &|| tickets(memory()));
}
