//! Model-based tests: random sequences of session operations run against
//! `StoreManager<MemoryStore>` and against a small reference model written
//! from DESIGN.md's invariants; every outcome must agree.
//!
//! The model keeps one entry per issued token and answers each operation
//! the way the invariants say it must: idle and absolute expiry, rotation
//! grace with reissue after a routine rotation and refusal (superseded)
//! after a login, reuse detection revoking the successor, termination of
//! whole rotation chains, per-user eviction, versioned updates, purge.

use std::sync::Arc;
use std::time::Duration;

use latchkey::{
    EndReason, Error, ManualClock, MemoryStore, NewSession, Policy, SessionId, SessionManager,
    StoreManager, Timestamp, UserLimitAction,
};
use proptest::prelude::*;

const START: u64 = 1_795_392_000_000;
const IDLE: u64 = 600_000;
const ABS: u64 = 3_600_000;
const GRACE: u64 = 30_000;
const TOUCH: u64 = 60_000;
const MAX_PER_USER: usize = 2;
const MAX_CHAIN: usize = 4;

#[derive(Clone, Debug)]
enum Op {
    Create(Option<u8>),
    Load(usize),
    Update(usize),
    Rotate(usize),
    Login(usize, u8),
    Terminate(usize),
    TerminateAll(u8),
    SessionsOf(u8),
    Advance(u64),
    Purge,
    Garbage,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => proptest::option::of(0u8..3).prop_map(Op::Create),
        5 => any::<usize>().prop_map(Op::Load),
        3 => any::<usize>().prop_map(Op::Update),
        2 => any::<usize>().prop_map(Op::Rotate),
        2 => (any::<usize>(), 0u8..3).prop_map(|(t, u)| Op::Login(t, u)),
        1 => any::<usize>().prop_map(Op::Terminate),
        1 => (0u8..3).prop_map(Op::TerminateAll),
        1 => (0u8..3).prop_map(Op::SessionsOf),
        // Mostly short steps (inside grace and touch windows), sometimes long.
        4 => prop_oneof![0u64..40_000, 40_000u64..700_000, 700_000u64..4_000_000].prop_map(Op::Advance),
        1 => Just(Op::Purge),
        1 => Just(Op::Garbage),
    ]
}

#[derive(Clone, Debug)]
struct MLive {
    created: u64,
    last_seen: u64,
    abs: u64,
    user: Option<u8>,
    auth: Option<u64>,
    n: u64,
}

#[derive(Clone, Debug)]
enum MState {
    Live(MLive),
    /// `privileged`: a login's retirement, refused within grace.
    Rotated {
        succ: usize,
        grace_until: u64,
        privileged: bool,
    },
    Ended(EndReason),
    Gone,
}

#[derive(Clone, Debug)]
struct MRec {
    token: String,
    state: MState,
    expires_at: u64,
}

#[derive(Clone, Debug, PartialEq)]
enum Expect {
    Unknown,
    Idle(u64),
    Absolute(u64),
    Terminated(EndReason),
    Reused(bool),
    Superseded,
}

fn actual(e: &Error) -> Expect {
    match e {
        Error::Unknown => Expect::Unknown,
        Error::IdleExpired { deadline } => Expect::Idle(deadline.as_unix_millis()),
        Error::AbsoluteExpired { deadline } => Expect::Absolute(deadline.as_unix_millis()),
        Error::Terminated { reason } => Expect::Terminated(*reason),
        Error::RotatedTokenReused { successor_revoked } => Expect::Reused(*successor_revoked),
        Error::Superseded => Expect::Superseded,
        other => panic!("unexpected error kind {other:?}"),
    }
}

#[derive(Default)]
struct Model {
    recs: Vec<MRec>,
}

fn user_name(u: u8) -> String {
    format!("user{u}")
}

impl Model {
    fn live_expired(s: &MLive, now: u64) -> Option<Expect> {
        if now >= s.abs {
            Some(Expect::Absolute(s.abs))
        } else if now >= s.last_seen + IDLE {
            Some(Expect::Idle(s.last_seen + IDLE))
        } else {
            None
        }
    }

    /// Ends the chain from `k` on: every retired link, then the live tip.
    /// Returns whether a live session ended.
    fn end(&mut self, mut k: usize, reason: EndReason) -> bool {
        loop {
            match self.recs[k].state.clone() {
                MState::Live(s) => {
                    self.recs[k].state = MState::Ended(reason);
                    self.recs[k].expires_at = s.abs;
                    return true;
                }
                MState::Rotated { succ, .. } => {
                    self.recs[k].state = MState::Ended(reason);
                    k = succ;
                }
                _ => return false,
            }
        }
    }

    /// Returns the live record index and the record whose token to reissue.
    fn resolve(
        &mut self,
        i: usize,
        now: u64,
        depth: usize,
    ) -> Result<(usize, Option<usize>), Expect> {
        let rec = &self.recs[i];
        let live = matches!(rec.state, MState::Live(_));
        if matches!(rec.state, MState::Gone) || (!live && rec.expires_at <= now) {
            return Err(Expect::Unknown);
        }
        match rec.state.clone() {
            MState::Live(s) => {
                if let Some(e) = Self::live_expired(&s, now) {
                    return Err(e);
                }
                if now - s.last_seen >= TOUCH {
                    let exp = (now + IDLE).min(s.abs);
                    let r = &mut self.recs[i];
                    if let MState::Live(l) = &mut r.state {
                        l.last_seen = now;
                    }
                    r.expires_at = r.expires_at.max(exp);
                }
                Ok((i, None))
            }
            MState::Rotated {
                succ,
                grace_until,
                privileged,
            } => {
                if now < grace_until && privileged {
                    return Err(Expect::Superseded);
                }
                if now < grace_until && depth < MAX_CHAIN {
                    let (j, deeper) = self.resolve(succ, now, depth + 1)?;
                    return Ok((j, Some(deeper.unwrap_or(succ))));
                }
                Err(Expect::Reused(self.end(succ, EndReason::ReuseDetected)))
            }
            MState::Ended(r) => Err(Expect::Terminated(r)),
            MState::Gone => Err(Expect::Unknown),
        }
    }

    fn live(&self, k: usize) -> MLive {
        match &self.recs[k].state {
            MState::Live(s) => s.clone(),
            other => panic!("model: record {k} is not live: {other:?}"),
        }
    }

    fn make_room(&mut self, user: u8, except: Option<usize>, now: u64) {
        let mut live: Vec<(u64, usize)> = self
            .recs
            .iter()
            .enumerate()
            .filter(|(k, _)| Some(*k) != except)
            .filter_map(|(k, r)| match &r.state {
                MState::Live(s) if s.user == Some(user) && Self::live_expired(s, now).is_none() => {
                    Some((s.created, k))
                }
                _ => None,
            })
            .collect();
        if live.len() < MAX_PER_USER {
            return;
        }
        live.sort();
        let excess = live.len() + 1 - MAX_PER_USER;
        for (_, k) in live.into_iter().take(excess) {
            self.end(k, EndReason::Evicted);
        }
    }

    fn push_live(&mut self, token: String, s: MLive, now: u64) -> usize {
        let expires_at = (now + IDLE).min(s.abs);
        self.recs.push(MRec {
            token,
            state: MState::Live(s),
            expires_at,
        });
        self.recs.len() - 1
    }

    fn rotate_to(&mut self, k: usize, token: String, mut s: MLive, now: u64, privileged: bool) {
        s.last_seen = now;
        let abs = s.abs;
        let j = self.push_live(token, s, now);
        self.recs[k].state = MState::Rotated {
            succ: j,
            grace_until: now + GRACE,
            privileged,
        };
        self.recs[k].expires_at = abs;
    }
}

fn fingerprint(token: &str) -> String {
    SessionId::parse(token).unwrap().fingerprint().to_string()
}

fn run(ops: Vec<Op>) {
    let clock = ManualClock::new(Timestamp::from_unix_millis(START));
    let policy = Policy::builder()
        .with_idle_timeout(Duration::from_millis(IDLE))
        .with_absolute_timeout(Duration::from_millis(ABS))
        .with_rotation_grace(Duration::from_millis(GRACE))
        .with_touch_interval(Duration::from_millis(TOUCH))
        .with_max_sessions_per_user(Some(MAX_PER_USER), UserLimitAction::EvictOldest)
        .build()
        .unwrap();
    let m = StoreManager::new(MemoryStore::new().with_clock(Arc::new(clock.clone())))
        .with_policy(policy)
        .with_clock(Arc::new(clock.clone()));
    let mut model = Model::default();
    let mut now = START;

    for op in ops {
        // Every step takes a millisecond, so creation times never tie.
        now += 1;
        clock.set(Timestamp::from_unix_millis(now));
        let pick = |t: usize, model: &Model| (!model.recs.is_empty()).then(|| t % model.recs.len());
        match op {
            Op::Create(user) => {
                let mut new = NewSession::new();
                if let Some(u) = user {
                    new = new.with_user(user_name(u));
                    model.make_room(u, None, now);
                }
                let issued = m.create(new).unwrap();
                let s = MLive {
                    created: now,
                    last_seen: now,
                    abs: now + ABS,
                    user,
                    auth: user.map(|_| now),
                    n: 0,
                };
                model.push_live(issued.token().to_owned(), s, now);
            }
            Op::Load(t) => {
                let Some(i) = pick(t, &model) else { continue };
                let token = model.recs[i].token.clone();
                let expected = model.resolve(i, now, 0);
                match (m.load(&token), expected) {
                    (Ok(loaded), Ok((k, reissue))) => {
                        let s = model.live(k);
                        assert_eq!(
                            loaded.session.fingerprint().to_string(),
                            fingerprint(&model.recs[k].token)
                        );
                        assert_eq!(loaded.session.user(), s.user.map(user_name).as_deref());
                        assert_eq!(loaded.session.get::<u64>("n").unwrap().unwrap_or(0), s.n);
                        assert_eq!(loaded.session.created_at().as_unix_millis(), s.created);
                        assert_eq!(loaded.session.last_seen().as_unix_millis(), s.last_seen);
                        assert_eq!(
                            loaded
                                .session
                                .authenticated_at()
                                .map(|t| t.as_unix_millis()),
                            s.auth
                        );
                        assert_eq!(loaded.session.absolute_deadline().as_unix_millis(), s.abs);
                        assert_eq!(
                            loaded.reissue.map(|r| r.token().to_owned()),
                            reissue.map(|r| model.recs[r].token.clone())
                        );
                    }
                    (Err(e), Err(x)) => assert_eq!(actual(&e), x, "load of record {i}"),
                    (got, want) => panic!("load of record {i}: got {got:?}, model says {want:?}"),
                }
            }
            Op::Update(t) => {
                let Some(i) = pick(t, &model) else { continue };
                let token = model.recs[i].token.clone();
                let expected = model.resolve(i, now, 0);
                let got = m.update(&token, |s| {
                    let n = s.get::<u64>("n").unwrap().unwrap_or(0);
                    s.insert("n", &(n + 1)).unwrap();
                });
                match (got, expected) {
                    (Ok(_), Ok((k, _))) => {
                        let mut s = model.live(k);
                        s.n += 1;
                        s.last_seen = now;
                        model.recs[k].expires_at = (now + IDLE).min(s.abs);
                        model.recs[k].state = MState::Live(s);
                    }
                    (Err(e), Err(x)) => assert_eq!(actual(&e), x),
                    (got, want) => panic!("update: got {:?}, model says {want:?}", got.map(|_| ())),
                }
            }
            Op::Rotate(t) | Op::Login(t, _) | Op::Terminate(t) => {
                let Some(i) = pick(t, &model) else { continue };
                let token = model.recs[i].token.clone();
                let expected = model.resolve(i, now, 0);
                let mut session = match (m.load(&token), expected.clone()) {
                    (Ok(l), Ok(_)) => l.session,
                    (Err(e), Err(x)) => {
                        assert_eq!(actual(&e), x);
                        continue;
                    }
                    (got, want) => panic!("load before {op:?}: got {got:?}, model says {want:?}"),
                };
                let Ok((k, _)) = expected else { unreachable!() };
                match op {
                    Op::Rotate(_) => {
                        let issued = m.rotate(&mut session).unwrap();
                        let s = model.live(k);
                        model.rotate_to(k, issued.token().to_owned(), s, now, false);
                    }
                    Op::Login(_, u) => {
                        let issued = m.login(&mut session, &user_name(u)).unwrap();
                        let s = model.live(k);
                        if s.user.is_some_and(|o| o != u) {
                            model.end(k, EndReason::Replaced);
                            model.make_room(u, None, now);
                            let fresh = MLive {
                                created: now,
                                last_seen: now,
                                abs: now + ABS,
                                user: Some(u),
                                auth: Some(now),
                                n: 0,
                            };
                            model.push_live(issued.token().to_owned(), fresh, now);
                        } else {
                            model.make_room(u, Some(k), now);
                            let s = MLive {
                                user: Some(u),
                                auth: Some(now),
                                ..s
                            };
                            model.rotate_to(k, issued.token().to_owned(), s, now, true);
                        }
                        assert_eq!(session.user(), Some(user_name(u).as_str()));
                    }
                    _ => {
                        m.terminate(&session).unwrap();
                        model.end(k, EndReason::Logout);
                    }
                }
            }
            Op::TerminateAll(u) => {
                let n = m.terminate_all(&user_name(u), None).unwrap();
                let keys: Vec<usize> = (0..model.recs.len())
                    .filter(
                        |&k| matches!(&model.recs[k].state, MState::Live(s) if s.user == Some(u)),
                    )
                    .collect();
                for &k in &keys {
                    model.end(k, EndReason::LogoutAll);
                }
                assert_eq!(n, Some(keys.len()));
            }
            Op::SessionsOf(u) => {
                let mut got: Vec<String> = m
                    .sessions_of(&user_name(u))
                    .unwrap()
                    .iter()
                    .map(|i| i.fingerprint.to_string())
                    .collect();
                let mut want: Vec<String> = model
                    .recs
                    .iter()
                    .filter(|r| matches!(&r.state, MState::Live(s) if s.user == Some(u) && Model::live_expired(s, now).is_none()))
                    .map(|r| fingerprint(&r.token))
                    .collect();
                got.sort();
                want.sort();
                assert_eq!(got, want);
            }
            Op::Advance(ms) => {
                now += ms;
                clock.set(Timestamp::from_unix_millis(now));
            }
            Op::Purge => {
                m.purge_expired().unwrap();
                for r in &mut model.recs {
                    if !matches!(r.state, MState::Gone) && r.expires_at <= now {
                        r.state = MState::Gone;
                    }
                }
            }
            Op::Garbage => {
                let t = SessionId::generate().to_token();
                assert!(matches!(m.load(&t), Err(Error::Unknown)));
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Fewer than 64 inserts per run, so MemoryStore's incremental sweep
    /// (which needs 64 inserts into one shard) never fires and only
    /// `Purge` removes records: the model can then predict every answer.
    #[test]
    fn manager_agrees_with_the_reference_model(ops in proptest::collection::vec(op(), 1..60)) {
        run(ops);
    }
}

#[test]
fn model_covers_a_hand_written_story() {
    run(vec![
        Op::Create(None),
        Op::Update(0),
        Op::Login(0, 1),
        Op::Load(0),
        Op::Advance(40_000),
        Op::Load(0),
        Op::Load(1),
        Op::Create(Some(1)),
        Op::Create(Some(1)),
        Op::SessionsOf(1),
        Op::Advance(700_000),
        Op::Load(2),
        Op::Purge,
        Op::Load(2),
    ]);
}
