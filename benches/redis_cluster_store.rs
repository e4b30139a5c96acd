//! Load and save over a loopback Redis Cluster, case for case as
//! `benches/redis_store.rs` measures one Redis.
//!
//! ```text
//! LATCHKEY_REDIS_CLUSTER_URLS=redis://127.0.0.1:7000/,redis://127.0.0.1:7001/ \
//!   cargo bench --features redis-cluster --bench redis_cluster_store -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! Cases (`group/case`):
//! - `redis_cluster_store/get`: one `Store::get` (GET and JSON decoding).
//! - `redis_cluster_store/replace`: one versioned `Store::replace` of a
//!   record bound to a user: three round trips (SADD to the user's set, the
//!   write script, SADD again), to the masters of two slots.
//! - `redis_cluster_store/touch`: one `Store::touch` that moves the
//!   deadline.
//! - `redis_cluster_manager/load`: `StoreManager::load` of a token: parse,
//!   hash, GET, policy checks (within the touch interval, so no write).
//! - `redis_cluster_manager/save`: `StoreManager::save` of a changed
//!   session bound to a user (three round trips, as `replace`).
//! - `redis_cluster_manager/rotate`: `SessionManager::rotate` of a session
//!   bound to a user: `Store::rotate`'s single-key writes, seven round
//!   trips (one Redis runs it as one script).
//!
//! Pass any of the cluster's nodes as seeds; the client learns the others.
//! Every iteration checks its result. Without `LATCHKEY_REDIS_CLUSTER_URLS`
//! the bench prints a notice and measures nothing.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::Criterion;
use latchkey::store::{LiveSession, Record, RecordState};
use latchkey::{
    Clock, ManualClock, NewSession, RedisClusterStore, SessionData, SessionId, SessionManager,
    Store, StoreManager, SystemClock,
};

fn record(version: u64, now: latchkey::Timestamp) -> Record {
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

fn store(urls: &[&str]) -> RedisClusterStore {
    let prefix = format!("latchkey-bench:{}:", SessionId::generate().fingerprint());
    match RedisClusterStore::open(urls) {
        Ok(s) => s.with_prefix(prefix),
        Err(e) => panic!("bad LATCHKEY_REDIS_CLUSTER_URLS: {e}"),
    }
}

fn store_cases(c: &mut Criterion, urls: &[&str]) {
    let s = store(urls);
    let now = SystemClock.now();
    let key = SessionId::generate().store_key();
    s.insert(&key, &record(1, now)).unwrap();
    let mut g = c.benchmark_group("redis_cluster_store");
    g.bench_function("get", |b| {
        b.iter(|| {
            let r = s.get(black_box(&key)).unwrap();
            assert!(r.is_some());
        })
    });
    let mut version = 1;
    g.bench_function("replace", |b| {
        b.iter(|| {
            s.replace(&key, version, &record(version + 1, now)).unwrap();
            version += 1;
        })
    });
    let mut t = now;
    g.bench_function("touch", |b| {
        b.iter(|| {
            t = t.saturating_add(Duration::from_millis(1));
            let exp = t.saturating_add(Duration::from_secs(1800));
            assert!(s.touch(&key, t, exp).unwrap());
        })
    });
    g.finish();
}

fn manager_cases(c: &mut Criterion, urls: &[&str]) {
    let clock = ManualClock::starting_now();
    let m = StoreManager::new(store(urls).with_clock(Arc::new(clock.clone())))
        .with_clock(Arc::new(clock.clone()));
    let issued = m
        .create(
            NewSession::new()
                .with_user("alice@example.com")
                .with_value("cart", &["book", "lamp", "pen"])
                .unwrap(),
        )
        .unwrap();
    let mut g = c.benchmark_group("redis_cluster_manager");
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
    // Each rotation leaves a retired record (and its member in the user's
    // set), as in production.
    g.bench_function("rotate", |b| {
        b.iter(|| {
            let issued = m.rotate(&mut session).unwrap();
            assert_eq!(issued.token().len(), 43);
        })
    });
    g.finish();
}

fn main() {
    let urls = match std::env::var("LATCHKEY_REDIS_CLUSTER_URLS") {
        Ok(urls) if !urls.trim().is_empty() => urls,
        _ => {
            eprintln!(
                "notice: LATCHKEY_REDIS_CLUSTER_URLS is unset; the Redis Cluster benchmarks \
                 measure nothing. Set it to the cluster's nodes, comma-separated, e.g. \
                 redis://127.0.0.1:7000/,redis://127.0.0.1:7001/"
            );
            return;
        }
    };
    let urls: Vec<&str> = urls
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .collect();
    let mut c = Criterion::default().configure_from_args();
    store_cases(&mut c, &urls);
    manager_cases(&mut c, &urls);
    c.final_summary();
}
