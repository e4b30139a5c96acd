//! Load and save over loopback Redis.
//!
//! ```text
//! LATCHKEY_REDIS_URL=redis://127.0.0.1:6379/ \
//!   cargo bench --features redis --bench redis_store -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! Cases (`group/case`):
//! - `redis_store/get`: one `Store::get` (GET and JSON decoding).
//! - `redis_store/replace`: one versioned `Store::replace` (a Lua script).
//! - `redis_store/touch`: one `Store::touch` that moves the deadline.
//! - `redis_manager/load`: `StoreManager::load` of a token: parse, hash,
//!   GET, policy checks (within the touch interval, so no write).
//! - `redis_manager/save`: `StoreManager::save` of a changed session.
//! - `redis_manager/rotate`: `SessionManager::rotate` of a session bound to
//!   a user (one script that retires the old record and writes the new
//!   one), to compare with `benches/redis_cluster_store.rs`.
//!
//! Every iteration checks its result. Without `LATCHKEY_REDIS_URL` the
//! bench prints a notice and measures nothing.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::Criterion;
use latchkey::store::{LiveSession, Record, RecordState};
use latchkey::{
    Clock, ManualClock, NewSession, RedisStore, SessionData, SessionId, SessionManager, Store,
    StoreManager, SystemClock,
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

fn store(url: &str) -> RedisStore {
    let prefix = format!("latchkey-bench:{}:", SessionId::generate().fingerprint());
    match RedisStore::open(url) {
        Ok(s) => s.with_prefix(prefix),
        Err(e) => panic!("bad LATCHKEY_REDIS_URL: {e}"),
    }
}

fn store_cases(c: &mut Criterion, url: &str) {
    let s = store(url);
    let now = SystemClock.now();
    let key = SessionId::generate().store_key();
    s.insert(&key, &record(1, now)).unwrap();
    let mut g = c.benchmark_group("redis_store");
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

fn manager_cases(c: &mut Criterion, url: &str) {
    let clock = ManualClock::starting_now();
    let m = StoreManager::new(store(url).with_clock(Arc::new(clock.clone())))
        .with_clock(Arc::new(clock.clone()));
    let issued = m
        .create(
            NewSession::new()
                .with_user("alice@example.com")
                .with_value("cart", &["book", "lamp", "pen"])
                .unwrap(),
        )
        .unwrap();
    let mut g = c.benchmark_group("redis_manager");
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
    // Each rotation leaves a retired record, as in production.
    g.bench_function("rotate", |b| {
        b.iter(|| {
            let issued = m.rotate(&mut session).unwrap();
            assert_eq!(issued.token().len(), 43);
        })
    });
    g.finish();
}

fn main() {
    let url = match std::env::var("LATCHKEY_REDIS_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => {
            eprintln!(
                "notice: LATCHKEY_REDIS_URL is unset; the Redis benchmarks measure nothing. \
                 Set it to a Redis URL, e.g. redis://127.0.0.1:6379/"
            );
            return;
        }
    };
    let mut c = Criterion::default().configure_from_args();
    store_cases(&mut c, &url);
    manager_cases(&mut c, &url);
    c.final_summary();
}
