//! Load and save over loopback PostgreSQL, case for case as
//! `benches/redis_store.rs` measures Redis.
//!
//! ```text
//! LATCHKEY_POSTGRES_URL='host=127.0.0.1 port=5432 user=postgres dbname=latchkey_bench' \
//!   cargo bench --features postgres --bench postgres_store -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! Cases (`group/case`):
//! - `postgres_store/get`: one `Store::get` (a `SELECT` and JSON decoding).
//! - `postgres_store/replace`: one versioned `Store::replace` (`BEGIN`, a
//!   versioned `UPDATE`, `COMMIT`).
//! - `postgres_store/touch`: one `Store::touch` that moves the deadline.
//! - `postgres_manager/load`: `StoreManager::load` of a token: parse,
//!   hash, `SELECT`, policy checks (within the touch interval, so no
//!   write).
//! - `postgres_manager/save`: `StoreManager::save` of a changed session.
//! - `postgres_manager/rotate`: `SessionManager::rotate` of a session
//!   bound to a user (one transaction).
//!
//! Each run works in a table of its own (`latchkey_bench_<12 hex>`, made
//! by `migrate` and left behind). What a write costs depends on the
//! server's `synchronous_commit` and `fsync`: say which when you quote a
//! number. Every iteration checks its result. Without
//! `LATCHKEY_POSTGRES_URL` the bench prints a notice and measures nothing.

use criterion::Criterion;
use latchkey::{ManualClock, PostgresStore};
use latchkey_bench_support::remote::{manager_cases, run_tag, store_cases};

fn store(url: &str) -> PostgresStore {
    let store = match PostgresStore::connect(url) {
        Ok(s) => s.with_table(&format!("latchkey_bench_{}", run_tag())),
        Err(e) => panic!("bad LATCHKEY_POSTGRES_URL: {e}"),
    };
    store.migrate().unwrap();
    store
}

fn main() {
    let url = match std::env::var("LATCHKEY_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => {
            eprintln!(
                "notice: LATCHKEY_POSTGRES_URL is unset; the PostgreSQL benchmarks measure \
                 nothing. Set it to connection parameters, e.g. \
                 'host=127.0.0.1 port=5432 user=postgres dbname=latchkey_bench'"
            );
            return;
        }
    };
    let mut c = Criterion::default().configure_from_args();
    store_cases(&mut c, "postgres_store", &store(&url));
    manager_cases(
        &mut c,
        "postgres_manager",
        store(&url),
        &ManualClock::starting_now(),
    );
    c.final_summary();
}
