//! Differential: random operation sequences against MemoryStore (the model)
//! and FileStore (on a temporary directory) must give the same results.
//!
//! Each input byte pair is one operation: the first byte picks the
//! operation and its parameters, the second a key (of 6) and a user (of 3)
//! or a version offset. Records are small and carry their version in
//! their data, so any mix-up shows.
#![no_main]

use std::sync::Arc;
use std::time::Duration;

use latchkey::{EndReason, FileStore, ManualClock, MemoryStore, SessionData, Store, StoreError, StoreKey, Timestamp};
use latchkey::store::{LiveSession, Peek, Record, RecordState};
use libfuzzer_sys::fuzz_target;

const T0: Timestamp = Timestamp::from_unix_millis(1_000_000);

fn key(i: u8) -> StoreKey {
    let mut b = [0u8; 32];
    // Keys 0..6, two of them sharing a shard directory with each other.
    b[0] = (i % 6) / 2;
    b[1] = i % 6;
    StoreKey::from_bytes(b)
}

fn user(i: u8) -> Option<&'static str> {
    [None, Some("alice"), Some("bob")][usize::from(i % 3)]
}

fn live(version: u64, u: Option<&str>, ttl: u8) -> Record {
    let mut data = serde_json::Map::new();
    data.insert("v".into(), version.into());
    Record {
        version,
        expires_at: T0.saturating_add(Duration::from_secs(u64::from(ttl % 8))),
        state: RecordState::Live(LiveSession {
            created_at: T0,
            last_seen: T0,
            auth_at: None,
            absolute_deadline: T0.saturating_add(Duration::from_secs(100)),
            user: u.map(str::to_owned),
            device: None,
            data: SessionData::from_map(data),
        }),
    }
}

/// What `peek` shows of `k`, in a form two stores can be compared by
/// (MemoryStore shows its record in place, FileStore a copy from `get`).
fn peeked<S: Store>(s: &S, k: &StoreKey) -> String {
    s.peek(k, |seen| match seen {
        Ok(Peek::Live(l)) => format!(
            "live v{} {:?} {:?} {:?} {:?} {:?} {:?} {}",
            l.version,
            l.created_at,
            l.last_seen,
            l.auth_at,
            l.absolute_deadline,
            l.user,
            l.device,
            l.data.to_data().encoded()
        ),
        Ok(other) => format!("{other:?}"),
        Err(e) => format!("error {:?}", kind::<()>(Err(e))),
    })
}

fn ended(version: u64, ttl: u8) -> Record {
    Record {
        version,
        expires_at: T0.saturating_add(Duration::from_secs(u64::from(ttl % 8))),
        state: RecordState::Ended {
            reason: EndReason::Logout,
            at: T0,
        },
    }
}

/// Results compared by shape: the same Ok value, or the same error kind.
fn kind<T: PartialEq + std::fmt::Debug>(r: Result<T, StoreError>) -> Result<T, String> {
    r.map_err(|e| match e {
        StoreError::Exists => "exists".into(),
        StoreError::Conflict => "conflict".into(),
        StoreError::NotFound => "not found".into(),
        other => panic!("unexpected store failure: {other:?}"),
    })
}

fn sorted(mut v: Vec<(StoreKey, Record)>) -> Vec<(StoreKey, Record)> {
    v.sort_by_key(|(k, _)| *k);
    v
}

fuzz_target!(|data: &[u8]| {
    if data.len() > 512 {
        return;
    }
    let Ok(tmp) = tempfile::tempdir() else { return };
    let file = FileStore::open(tmp.path().join("s"))
        .expect("open")
        .with_durability(latchkey::Durability::DangerNoSync);
    // The model sweeps by its clock: keep that clock at the epoch so only
    // purge_expired removes anything, as in the file store.
    let clock = ManualClock::new(Timestamp::UNIX_EPOCH);
    let model = MemoryStore::new().with_clock(Arc::new(clock));
    let mut now = T0;
    // libFuzzer starts with very short inputs; stretch each one to at least
    // 64 operations with a generator seeded from it, so even the first
    // inputs exercise long sequences while staying deterministic.
    let mut ops = data.to_vec();
    let mut x = data.iter().fold(0x9e37_79b9_7f4a_7c15_u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    }) | 1;
    while ops.len() < 128 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        ops.push(x as u8);
    }
    for op in ops.chunks_exact(2) {
        let (a, b) = (op[0], op[1]);
        let k = key(b);
        let k2 = key(b / 6);
        let u = user(b / 36);
        // Versions near the current one, so some writes succeed.
        let cur = model.get(&k).ok().flatten().map_or(0, |r| r.version);
        let expected = cur.wrapping_add(u64::from(a >> 6)).wrapping_sub(1);
        match a % 8 {
            0 => {
                let r = live(1, u, a);
                assert_eq!(kind(model.insert(&k, &r)), kind(file.insert(&k, &r)));
            }
            1 => {
                let r = live(expected.wrapping_add(1), u, a);
                assert_eq!(
                    kind(model.replace(&k, expected, &r)),
                    kind(file.replace(&k, expected, &r))
                );
            }
            2 => {
                let t = T0.saturating_add(Duration::from_secs(u64::from(a >> 3)));
                assert_eq!(kind(model.touch(&k, t, t)), kind(file.touch(&k, t, t)));
            }
            3 => {
                let retired = ended(expected.wrapping_add(1), a);
                let r = live(1, u, a >> 2);
                assert_eq!(
                    kind(model.rotate(&k, expected, &retired, &k2, &r)),
                    kind(file.rotate(&k, expected, &retired, &k2, &r))
                );
            }
            4 => assert_eq!(kind(model.remove(&k)), kind(file.remove(&k))),
            5 => {
                let who = u.unwrap_or("carol");
                assert_eq!(
                    kind(model.sessions_of(who).map(sorted)),
                    kind(file.sessions_of(who).map(sorted))
                );
            }
            6 => {
                now = now.saturating_add(Duration::from_secs(u64::from(a >> 4)));
                assert_eq!(
                    kind(model.purge_expired(now)),
                    kind(file.purge_expired(now))
                );
            }
            _ => {}
        }
        // After every operation, every key reads the same in both.
        for i in 0..6 {
            let k = key(i);
            assert_eq!(kind(model.get(&k)), kind(file.get(&k)), "key {i}");
            assert_eq!(peeked(&model, &k), peeked(&file, &k), "key {i}");
        }
    }
});
