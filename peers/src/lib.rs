//! Fixtures for the peer benchmarks (`benches/compare.rs`) and the memory
//! census (`src/bin/memory.rs`).
//!
//! latchkey's side comes from `benches/support` of the latchkey package,
//! included by path, so both packages measure latchkey the same way; this
//! file adds tower-sessions' side with the same payload.
//!
//! This package is a workspace member for measurement only. The `latchkey`
//! library never depends on it, so nothing here reaches a user's build.
#![deny(missing_docs)]

#[path = "../../benches/support/mod.rs"]
mod support;

pub use support::*;

use time::OffsetDateTime;
use tower_sessions_core::SessionStore as _;
use tower_sessions_core::session::{Id, Record as TowerRecord};

/// The payload as a `HashMap`, the data type of tower-sessions' records.
pub fn payload_hashmap() -> std::collections::HashMap<String, serde_json::Value> {
    payload().into_iter().collect()
}

/// A tower-sessions record holding [`payload`], expiring in an hour.
pub fn tower_record() -> TowerRecord {
    TowerRecord {
        id: Id::default(),
        data: payload_hashmap(),
        expiry_date: OffsetDateTime::now_utc() + time::Duration::hours(1),
    }
}

/// Their side: a tower-sessions `MemoryStore` with `n` records holding
/// [`payload`], and the cookie values (the IDs' text form) to load them by.
pub fn seed_tower(
    rt: &tokio::runtime::Runtime,
    n: usize,
) -> (tower_sessions_memory_store::MemoryStore, Tokens) {
    let store = tower_sessions_memory_store::MemoryStore::default();
    let tokens = rt.block_on(async {
        let mut tokens = Tokens::with_capacity(n, 22);
        for _ in 0..n {
            let mut r = tower_record();
            if let Err(e) = store.create(&mut r).await {
                panic!("seeding failed: {e}");
            }
            tokens.push(&r.id.to_string());
        }
        tokens
    });
    (store, tokens)
}

/// A current-thread tokio runtime, as tower-sessions runs on in the
/// single-threaded case (one per thread in the two-thread case).
pub fn current_thread_runtime() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_current_thread().build() {
        Ok(rt) => rt,
        Err(e) => panic!("no tokio runtime: {e}"),
    }
}
