//! Every interleaving of concurrent requests on one session, explored
//! exhaustively. Two or three requests (each a short sequence such as
//! load-then-rotate or load-then-terminate) run on threads of their own; a
//! store wrapper makes every store call wait for a deterministic scheduler,
//! which lets one call through at a time and enumerates, depth first, every
//! order of the requests' store calls. After each run the lifecycle's
//! invariants are checked: a logout that returned `Ok` left no token of
//! the session loading, no session has two live records, and a rotation
//! that returned its token left that token loading.
//!
//! It runs over both rotation protocols: the atomic `Store::rotate` of the
//! memory store, and the provided protocol of single-key writes.

mod faulty;

use std::collections::BTreeSet;
use std::sync::{Arc, Condvar, Mutex};

use latchkey::store::Record;
use latchkey::{
    Error, Issued, ManualClock, NewSession, Policy, Session, SessionManager, Store, StoreError,
    StoreKey, StoreManager, Timestamp, UserLimitAction,
};

use faulty::Faulty;

const START: Timestamp = Timestamp::from_unix_millis(1_795_392_000_000);

/// Which thread is allowed to make its next store call.
#[derive(Default)]
struct Scheduler {
    state: Mutex<State>,
    turn: Condvar,
}

#[derive(Default)]
struct State {
    /// The thread that holds the turn, between two of its store calls.
    running: Option<usize>,
    /// Threads waiting at their next store call.
    waiting: BTreeSet<usize>,
    finished: usize,
}

thread_local! {
    /// The request this thread runs; `None` for the test's own thread,
    /// whose store calls (setup, checks) are not scheduled.
    static REQUEST: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

impl Scheduler {
    /// Called before every store call: give up the turn, wait for it.
    fn gate(&self) {
        let Some(me) = REQUEST.with(|r| r.get()) else {
            return;
        };
        let mut st = self.state.lock().unwrap();
        if st.running == Some(me) {
            st.running = None;
        }
        st.waiting.insert(me);
        self.turn.notify_all();
        while st.running != Some(me) {
            st = self.turn.wait(st).unwrap();
        }
    }

    fn finish(&self, me: usize) {
        let mut st = self.state.lock().unwrap();
        if st.running == Some(me) {
            st.running = None;
        }
        st.finished += 1;
        self.turn.notify_all();
    }

    /// Drives `n` requests along `prefix` (then the first enabled request
    /// at every further step); returns each step's choice and how many
    /// requests could have gone.
    fn drive(&self, n: usize, prefix: &[usize]) -> Vec<(usize, usize)> {
        let mut trace = Vec::new();
        let mut st = self.state.lock().unwrap();
        loop {
            while !(st.running.is_none() && st.waiting.len() + st.finished == n) {
                st = self.turn.wait(st).unwrap();
            }
            if st.finished == n {
                return trace;
            }
            let enabled: Vec<usize> = st.waiting.iter().copied().collect();
            let pick = prefix.get(trace.len()).copied().unwrap_or(0);
            trace.push((pick, enabled.len()));
            st.waiting.remove(&enabled[pick]);
            st.running = Some(enabled[pick]);
            self.turn.notify_all();
        }
    }
}

/// One lock around one map, with an atomic `rotate`: the smallest correct
/// store, cheap to make thousands of times (the manager's decisions, not
/// the store's internals, are under test here; the memory store passes the
/// same store conformance suite).
#[derive(Debug, Default)]
struct Map(parking_lot::Mutex<std::collections::HashMap<StoreKey, Record>>);

impl Store for Map {
    fn insert(&self, key: &StoreKey, record: &Record) -> Result<(), StoreError> {
        let mut m = self.0.lock();
        if m.contains_key(key) {
            return Err(StoreError::Exists);
        }
        m.insert(*key, record.clone());
        Ok(())
    }
    fn get(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        Ok(self.0.lock().get(key).cloned())
    }
    fn replace(&self, key: &StoreKey, expected: u64, record: &Record) -> Result<(), StoreError> {
        match self.0.lock().get_mut(key) {
            None => Err(StoreError::NotFound),
            Some(r) if r.version != expected => Err(StoreError::Conflict),
            Some(r) => {
                *r = record.clone();
                Ok(())
            }
        }
    }
    fn touch(&self, key: &StoreKey, seen: Timestamp, exp: Timestamp) -> Result<bool, StoreError> {
        Ok(self
            .0
            .lock()
            .get_mut(key)
            .is_some_and(|r| r.touch(seen, exp)))
    }
    fn rotate(
        &self,
        old: &StoreKey,
        expected: u64,
        retired: &Record,
        new: &StoreKey,
        record: &Record,
    ) -> Result<(), StoreError> {
        let mut m = self.0.lock();
        match m.get(old) {
            None => return Err(StoreError::NotFound),
            Some(r) if r.version != expected => return Err(StoreError::Conflict),
            Some(_) if m.contains_key(new) => return Err(StoreError::Exists),
            Some(_) => {}
        }
        m.insert(*old, retired.clone());
        m.insert(*new, record.clone());
        Ok(())
    }
    fn remove(&self, key: &StoreKey) -> Result<bool, StoreError> {
        Ok(self.0.lock().remove(key).is_some())
    }
    fn sessions_of(&self, user: &str) -> Result<Vec<(StoreKey, Record)>, StoreError> {
        Ok(self
            .0
            .lock()
            .iter()
            .filter(|(_, r)| r.user() == Some(user))
            .map(|(k, r)| (*k, r.clone()))
            .collect())
    }
    fn purge_expired(&self, now: Timestamp) -> Result<usize, StoreError> {
        let mut m = self.0.lock();
        let before = m.len();
        m.retain(|_, r| r.expires_at > now);
        Ok(before - m.len())
    }
}

/// A store whose every call waits for the scheduler. Without `rotate`: a
/// rotation is the provided protocol of single-key writes.
struct Gated {
    inner: Map,
    sched: Arc<Scheduler>,
}

impl std::fmt::Debug for Gated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Gated")
    }
}

impl Store for Gated {
    fn insert(&self, key: &StoreKey, record: &Record) -> Result<(), StoreError> {
        self.sched.gate();
        self.inner.insert(key, record)
    }
    fn get(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        self.sched.gate();
        self.inner.get(key)
    }
    fn replace(&self, key: &StoreKey, expected: u64, record: &Record) -> Result<(), StoreError> {
        self.sched.gate();
        self.inner.replace(key, expected, record)
    }
    fn touch(&self, key: &StoreKey, seen: Timestamp, exp: Timestamp) -> Result<bool, StoreError> {
        self.sched.gate();
        self.inner.touch(key, seen, exp)
    }
    fn remove(&self, key: &StoreKey) -> Result<bool, StoreError> {
        self.sched.gate();
        self.inner.remove(key)
    }
    fn sessions_of(&self, user: &str) -> Result<Vec<(StoreKey, Record)>, StoreError> {
        self.sched.gate();
        self.inner.sessions_of(user)
    }
    fn purge_expired(&self, now: Timestamp) -> Result<usize, StoreError> {
        self.sched.gate();
        self.inner.purge_expired(now)
    }
}

/// As [`Gated`], with the memory store's atomic `rotate` as one step.
#[derive(Debug)]
struct GatedAtomic(Gated);

impl Store for GatedAtomic {
    fn insert(&self, key: &StoreKey, record: &Record) -> Result<(), StoreError> {
        self.0.insert(key, record)
    }
    fn get(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        self.0.get(key)
    }
    fn replace(&self, key: &StoreKey, expected: u64, record: &Record) -> Result<(), StoreError> {
        self.0.replace(key, expected, record)
    }
    fn touch(&self, key: &StoreKey, seen: Timestamp, exp: Timestamp) -> Result<bool, StoreError> {
        self.0.touch(key, seen, exp)
    }
    fn rotate(
        &self,
        old: &StoreKey,
        expected: u64,
        retired: &Record,
        new: &StoreKey,
        record: &Record,
    ) -> Result<(), StoreError> {
        self.0.sched.gate();
        self.0.inner.rotate(old, expected, retired, new, record)
    }
    fn remove(&self, key: &StoreKey) -> Result<bool, StoreError> {
        self.0.remove(key)
    }
    fn sessions_of(&self, user: &str) -> Result<Vec<(StoreKey, Record)>, StoreError> {
        self.0.sessions_of(user)
    }
    fn purge_expired(&self, now: Timestamp) -> Result<usize, StoreError> {
        self.0.purge_expired(now)
    }
}

type Manager = StoreManager<Arc<dyn Store>>;

/// What a request did: the token it was issued, if any, or its error.
type Outcome = Result<Option<Issued>, Error>;

/// One request: a short sequence of manager calls.
type Request<C> = fn(&Manager, &C) -> Outcome;

fn manager(atomic: bool, sched: &Arc<Scheduler>) -> Manager {
    let clock = Arc::new(ManualClock::new(START));
    let gated = Gated {
        inner: Map::default(),
        sched: sched.clone(),
    };
    let store: Arc<dyn Store> = if atomic {
        Arc::new(GatedAtomic(gated))
    } else {
        Arc::new(gated)
    };
    let policy = Policy::builder()
        .with_max_sessions_per_user(None, UserLimitAction::EvictOldest)
        .build()
        .unwrap();
    StoreManager::new(store)
        .with_policy(policy)
        .with_clock(clock)
}

/// Runs `requests` concurrently in every order of their store calls, over
/// both rotation protocols, checking each outcome. Returns how many
/// interleavings ran.
fn explore<C: Sync>(
    setup: impl Fn(&Manager) -> C,
    requests: &[Request<C>],
    check: impl Fn(&Manager, &C, &[Outcome]),
) -> usize {
    let mut runs = 0;
    for atomic in [true, false] {
        let mut prefix: Vec<usize> = Vec::new();
        loop {
            let sched = Arc::new(Scheduler::default());
            let m = manager(atomic, &sched);
            let ctx = setup(&m);
            let mut outcomes: Vec<Option<Outcome>> = (0..requests.len()).map(|_| None).collect();
            let trace = std::thread::scope(|scope| {
                let handles: Vec<_> = requests
                    .iter()
                    .enumerate()
                    .map(|(i, request)| {
                        let (m, ctx, sched) = (&m, &ctx, &sched);
                        scope.spawn(move || {
                            REQUEST.with(|r| r.set(Some(i)));
                            let out =
                                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                    request(m, ctx)
                                }));
                            sched.finish(i);
                            out
                        })
                    })
                    .collect();
                let trace = sched.drive(requests.len(), &prefix);
                for (i, h) in handles.into_iter().enumerate() {
                    match h.join().unwrap() {
                        Ok(out) => outcomes[i] = Some(out),
                        Err(p) => std::panic::resume_unwind(p),
                    }
                }
                trace
            });
            let outcomes: Vec<Outcome> = outcomes.into_iter().map(Option::unwrap).collect();
            let schedule: Vec<usize> = trace.iter().map(|t| t.0).collect();
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                check(&m, &ctx, &outcomes)
            }));
            if let Err(p) = result {
                eprintln!(
                    "interleaving failed (atomic rotate: {atomic}), choices {schedule:?}, outcomes {outcomes:?}"
                );
                std::panic::resume_unwind(p);
            }
            runs += 1;
            // The next schedule, depth first: the last step with an untried
            // choice takes it; everything after starts from the first.
            let Some(i) = trace.iter().rposition(|&(pick, n)| pick + 1 < n) else {
                break;
            };
            prefix = schedule[..i].to_vec();
            prefix.push(trace[i].0 + 1);
        }
    }
    runs
}

fn loads(m: &Manager, token: &str) -> bool {
    m.load(token).is_ok()
}

/// A session of alice's, its token, and a copy of it loaded before the
/// requests start (for requests that skip their own load).
struct Alice {
    token: String,
    copy: Session,
}

fn alice(m: &Manager) -> Alice {
    let issued = m.create(NewSession::new().with_user("alice")).unwrap();
    Alice {
        token: issued.token().to_owned(),
        copy: m.load(issued.token()).unwrap().session,
    }
}

fn terminate_copy(m: &Manager, c: &Alice) -> Outcome {
    m.terminate(&c.copy).map(|()| None)
}

fn rotate_copy(m: &Manager, c: &Alice) -> Outcome {
    m.rotate(&mut c.copy.clone()).map(Some)
}

fn save_copy(m: &Manager, c: &Alice) -> Outcome {
    let mut s = c.copy.clone();
    s.insert("n", &1).unwrap();
    m.save(&mut s)
}

fn load_then_terminate(m: &Manager, c: &Alice) -> Outcome {
    let s = m.load(&c.token)?.session;
    m.terminate(&s).map(|()| None)
}

fn load_then_rotate(m: &Manager, c: &Alice) -> Outcome {
    let mut s = m.load(&c.token)?.session;
    m.rotate(&mut s).map(Some)
}

fn load_then_login_bob(m: &Manager, c: &Alice) -> Outcome {
    let mut s = m.load(&c.token)?.session;
    m.login(&mut s, "bob").map(Some)
}

fn load_then_save(m: &Manager, c: &Alice) -> Outcome {
    let mut s: Session = m.load(&c.token)?.session;
    s.insert("n", &1).unwrap();
    m.save(&mut s)
}

/// Every token any request was issued, and the first one.
fn tokens(c: &Alice, outcomes: &[Outcome]) -> Vec<String> {
    let mut all = vec![c.token.clone()];
    all.extend(
        outcomes
            .iter()
            .filter_map(|o| o.as_ref().ok().and_then(Option::as_ref))
            .map(|i| i.token().to_owned()),
    );
    all
}

fn live_sessions(m: &Manager, user: &str) -> usize {
    m.sessions_of(user).unwrap().len()
}

/// The logout race: request A loads and logs out while request B loads and
/// rotates. A logout that returned `Ok` leaves nothing loading.
#[test]
fn a_logout_racing_a_rotation_ends_the_session_in_every_interleaving() {
    let runs = explore(
        alice,
        &[load_then_terminate, load_then_rotate],
        |m, c, out| {
            if out[0].is_ok() {
                for t in tokens(c, out) {
                    assert!(!loads(m, &t), "a token loads after a logout returned Ok");
                }
                assert_eq!(live_sessions(m, "alice"), 0);
            }
            assert!(live_sessions(m, "alice") <= 1, "a ghost");
            if let Ok(Some(rotated)) = &out[1]
                && out[0].is_err()
            {
                assert!(loads(m, rotated.token()), "a returned rotation was lost");
            }
        },
    );
    eprintln!("logout vs rotation: {runs} interleavings");
}

/// Another user logging in on a copy while the session rotates: alice's
/// session ends whichever way it goes, and bob's starts.
#[test]
fn a_login_of_another_user_racing_a_rotation_never_leaves_the_previous_user_in() {
    let runs = explore(
        alice,
        &[load_then_login_bob, load_then_rotate],
        |m, c, out| {
            if let Ok(Some(bob)) = &out[0] {
                assert_eq!(m.load(bob.token()).unwrap().session.user(), Some("bob"));
                for t in tokens(c, &out[1..]) {
                    assert!(
                        m.load(&t)
                            .map_or(true, |l| l.session.user() != Some("alice")),
                        "alice's session outlived bob's login"
                    );
                }
                assert_eq!(live_sessions(m, "alice"), 0);
            }
            assert!(live_sessions(m, "alice") <= 1, "a ghost");
        },
    );
    eprintln!("login vs rotation: {runs} interleavings");
}

/// Two rotations of one session: exactly one wins, and the session stays
/// one session.
#[test]
fn two_rotations_of_one_session_never_fork_it() {
    let runs = explore(alice, &[load_then_rotate, load_then_rotate], |m, c, out| {
        let won: Vec<&Issued> = out
            .iter()
            .filter_map(|o| o.as_ref().ok().and_then(Option::as_ref))
            .collect();
        assert!(!won.is_empty(), "both rotations failed: {out:?}");
        assert_eq!(live_sessions(m, "alice"), 1, "the session forked");
        for w in &won {
            assert!(loads(m, w.token()));
        }
        assert!(loads(m, &c.token), "the old token within grace");
    });
    eprintln!("rotation vs rotation: {runs} interleavings");
}

/// A save racing a rotation: a save that returned `Ok` is never lost (the
/// session, whichever token reaches it, holds the change).
#[test]
fn a_save_racing_a_rotation_is_never_lost() {
    let runs = explore(alice, &[load_then_save, load_then_rotate], |m, c, out| {
        assert_eq!(
            live_sessions(m, "alice"),
            1,
            "the session forked or vanished"
        );
        if out[0].is_ok() {
            for t in tokens(c, out) {
                let n = m.load(&t).unwrap().session.get::<u32>("n").unwrap();
                assert_eq!(n, Some(1), "a saved change was lost");
            }
        }
    });
    eprintln!("save vs rotation: {runs} interleavings");
}

/// Three requests on copies loaded together: a logout, a rotation and a
/// save. A returned logout leaves nothing loading; otherwise one live
/// session.
#[test]
fn logout_rotation_and_save_together_keep_every_invariant() {
    let runs = explore(
        alice,
        &[terminate_copy, rotate_copy, save_copy],
        |m, c, out| {
            if out[0].is_ok() {
                for t in tokens(c, out) {
                    assert!(!loads(m, &t), "a token loads after a logout returned Ok");
                }
            }
            assert!(live_sessions(m, "alice") <= 1, "a ghost");
        },
    );
    eprintln!("logout, rotation and save: {runs} interleavings");
}

/// A rotation whose process died after its first write, then two requests
/// with the old token: one loads it (rolling the rotation forward), one
/// logs out. The rolled-forward successor never outlives the logout.
#[test]
fn a_roll_forward_racing_a_logout_never_revives_the_session() {
    struct Crashed {
        token: String,
    }
    fn load_old(m: &Manager, c: &Crashed) -> Outcome {
        m.load(&c.token).map(|l| l.reissue)
    }
    fn logout_old(m: &Manager, c: &Crashed) -> Outcome {
        let s = m.load(&c.token)?.session;
        m.terminate(&s).map(|()| None)
    }
    let runs = explore(
        |m: &Manager| {
            // The crash: write the retired record with its intent, and stop.
            let issued = m.create(NewSession::new().with_user("alice")).unwrap();
            let store = m.store();
            let key = latchkey::SessionId::parse(issued.token())
                .unwrap()
                .store_key();
            let mut copy = m.load(issued.token()).unwrap().session;
            let before = store.get(&key).unwrap().unwrap();
            // The first write (the retired record) lands, the rest fail.
            let failing = Faulty::new(store.clone());
            failing.arm(1);
            let crashed = StoreManager::new(failing)
                .with_policy(m.policy().clone())
                .with_clock(Arc::new(ManualClock::new(START)));
            assert!(crashed.rotate(&mut copy).is_err());
            assert!(store.get(&key).unwrap().unwrap().version > before.version);
            Crashed {
                token: issued.token().to_owned(),
            }
        },
        &[load_old, logout_old],
        |m, c, out| {
            if out[1].is_ok() {
                assert!(!loads(m, &c.token), "the old token loads after logout");
                if let Ok(Some(reissued)) = &out[0] {
                    assert!(
                        !loads(m, reissued.token()),
                        "the rolled-forward successor lives"
                    );
                }
                assert_eq!(live_sessions(m, "alice"), 0, "a session came back");
            }
            assert!(live_sessions(m, "alice") <= 1, "a ghost");
        },
    );
    eprintln!("roll forward vs logout: {runs} interleavings");
}
