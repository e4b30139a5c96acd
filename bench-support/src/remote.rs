//! The cases every networked store is measured by (`benches/redis_store.rs`,
//! `benches/redis_cluster_store.rs`, `benches/postgres_store.rs`), so their
//! figures compare case for case. Each iteration checks its result.
//!
//! - `{store}/get`: one `Store::get` of a user-bound record.
//! - `{store}/replace`: one versioned `Store::replace`.
//! - `{store}/touch`: one `Store::touch` that moves the deadline.
//! - `{manager}/load`: `StoreManager::load` of a token: parse, hash, read,
//!   policy checks (within the touch interval, so no write).
//! - `{manager}/save`: `StoreManager::save` of a changed session.
//! - `{manager}/rotate`: `SessionManager::rotate` of a session bound to a
//!   user; each leaves a retired record, as in production.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::Criterion;
use latchkey::store::{LiveSession, Record, RecordState};
use latchkey::{
    Clock, ManualClock, NewSession, SessionData, SessionId, SessionManager, Store, StoreManager,
    SystemClock, Timestamp,
};

/// A live record bound to a user, with a small cart and a CSRF token.
pub fn record(version: u64, now: Timestamp) -> Record {
    let mut data = serde_json::Map::new();
    data.insert("cart".into(), serde_json::json!(["book", "lamp", "pen"]));
    data.insert("csrf".into(), serde_json::json!("3q2+7w8AAAAAAAAAAAAAAA"));
    Record {
        version,
        expires_at: now.saturating_add(Duration::from_secs(1800)),
        state: RecordState::Live(LiveSession {
            created_at: now,
            last_seen: now,
            auth_at: Some(now),
            absolute_deadline: now.saturating_add(Duration::from_secs(8 * 3600)),
            user: Some("alice@example.com".into()),
            device: Some("Firefox on Linux".into()),
            data: SessionData::from_map(data),
        }),
    }
}

/// A key prefix (or table name part) of its own for one run, so runs never
/// read each other's records.
pub fn run_tag() -> String {
    SessionId::generate().fingerprint().to_string()
}

/// `{group}/get`, `{group}/replace` and `{group}/touch` on `store`.
pub fn store_cases<S: Store>(c: &mut Criterion, group: &str, store: &S) {
    let now = SystemClock.now();
    let key = SessionId::generate().store_key();
    store.insert(&key, &record(1, now)).unwrap();
    let mut g = c.benchmark_group(group);
    g.bench_function("get", |b| {
        b.iter(|| {
            let r = store.get(black_box(&key)).unwrap();
            assert!(r.is_some());
        })
    });
    let mut version = 1;
    g.bench_function("replace", |b| {
        b.iter(|| {
            store
                .replace(&key, version, &record(version + 1, now))
                .unwrap();
            version += 1;
        })
    });
    let mut t = now;
    g.bench_function("touch", |b| {
        b.iter(|| {
            t = t.saturating_add(Duration::from_millis(1));
            let exp = t.saturating_add(Duration::from_secs(1800));
            assert!(store.touch(&key, t, exp).unwrap());
        })
    });
    g.finish();
}

/// `{group}/load`, `{group}/save` and `{group}/rotate` through a
/// `StoreManager` over `store`, on `clock` (give the store the same clock
/// if it measures time itself).
pub fn manager_cases<S: Store>(c: &mut Criterion, group: &str, store: S, clock: &ManualClock) {
    let m = StoreManager::new(store).with_clock(Arc::new(clock.clone()));
    let issued = m
        .create(
            NewSession::new()
                .with_user("alice@example.com")
                .with_value("cart", &["book", "lamp", "pen"])
                .unwrap(),
        )
        .unwrap();
    let mut g = c.benchmark_group(group);
    g.bench_function("load", |b| {
        b.iter(|| {
            let loaded = m.load(black_box(issued.token())).unwrap();
            assert!(loaded.reissue.is_none());
        })
    });
    let mut session = m.load(issued.token()).unwrap().session;
    let mut n = 0u64;
    g.bench_function("save", |b| {
        b.iter(|| {
            n += 1;
            session.insert("n", &n).unwrap();
            m.save(&mut session).unwrap();
        })
    });
    g.bench_function("rotate", |b| {
        b.iter(|| {
            let issued = m.rotate(&mut session).unwrap();
            assert_eq!(issued.token().len(), 43);
        })
    });
    g.finish();
}
