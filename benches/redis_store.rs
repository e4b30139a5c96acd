//! Load and save over loopback Redis, case for case with the other
//! networked stores (`latchkey_bench_support::remote`).
//!
//! ```text
//! LATCHKEY_REDIS_URL=redis://127.0.0.1:6379/ \
//!   cargo bench --features redis --bench redis_store -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! Groups `redis_store` (get, replace, touch) and `redis_manager` (load,
//! save, rotate: one script retires the old record and writes the new one).
//! Without `LATCHKEY_REDIS_URL` the bench prints a notice and measures
//! nothing.

use std::sync::Arc;

use criterion::Criterion;
use latchkey::{ManualClock, RedisStore};
use latchkey_bench_support::remote::{manager_cases, run_tag, store_cases};

fn store(url: &str) -> RedisStore {
    match RedisStore::open(url) {
        Ok(s) => s.with_prefix(format!("latchkey-bench:{}:", run_tag())),
        Err(e) => panic!("bad LATCHKEY_REDIS_URL: {e}"),
    }
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
    store_cases(&mut c, "redis_store", &store(&url));
    let clock = ManualClock::starting_now();
    let s = store(&url).with_clock(Arc::new(clock.clone()));
    manager_cases(&mut c, "redis_manager", s, &clock);
    c.final_summary();
}
