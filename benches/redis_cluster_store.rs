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
//!   record bound to a user: three round trips (HSET to the user's index,
//!   the write script, HSET again), to the masters of two slots.
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

use std::sync::Arc;

use criterion::Criterion;
use latchkey::{ManualClock, RedisClusterStore};
use latchkey_bench_support::remote::{manager_cases, run_tag, store_cases};

fn store(urls: &[&str]) -> RedisClusterStore {
    match RedisClusterStore::open(urls) {
        Ok(s) => s.with_prefix(format!("latchkey-bench:{}:", run_tag())),
        Err(e) => panic!("bad LATCHKEY_REDIS_CLUSTER_URLS: {e}"),
    }
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
    store_cases(&mut c, "redis_cluster_store", &store(&urls));
    let clock = ManualClock::starting_now();
    let s = store(&urls).with_clock(Arc::new(clock.clone()));
    manager_cases(&mut c, "redis_cluster_manager", s, &clock);
    c.final_summary();
}
