//! Fixtures for the peer benchmarks (`benches/compare.rs`), the memory
//! census (`src/bin/memory.rs`) and the interleaved timer
//! (`src/bin/timing/`), with the harness it runs on ([`harness`]) and the
//! results file the `report` binary reads ([`results`]).
//!
//! latchkey's side comes from `latchkey-bench-support` (re-exported here),
//! which latchkey's own benches use too, so both packages measure latchkey
//! the same way; this file adds tower-sessions' side with the same
//! payload, and the load floor.
//!
//! This package is a workspace member for measurement only. The `latchkey`
//! library never depends on it, so nothing here reaches a user's build.
#![deny(missing_docs)]

pub use latchkey_bench_support::*;

pub mod harness;
pub mod results;

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

/// The load floor's value: a fixed-size 64-byte copy, no allocation.
#[derive(Clone, Copy, Debug)]
pub struct FloorValue(pub [u64; 8]);

/// SHA-256 output is uniform: hash by 8 of its bytes (latchkey's
/// `MemoryStore` does the same), so the floor does not pay for SipHash.
#[derive(Default)]
pub struct FirstBytes(u64);

impl std::hash::Hasher for FirstBytes {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        if bytes.len() >= 8 {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[..8]);
            self.0 = u64::from_le_bytes(b);
        }
    }
}

/// The load floor's store: SHA-256 of an ID to its value, under one
/// `parking_lot` read-write lock.
pub type FloorMap = parking_lot::RwLock<
    std::collections::HashMap<[u8; 32], FloorValue, std::hash::BuildHasherDefault<FirstBytes>>,
>;

/// The load floor with `n` entries, and the raw 32-byte IDs to load them by.
pub fn seed_floor(n: usize) -> (FloorMap, Vec<[u8; 32]>) {
    use rand::Rng as _;
    use sha2::Digest as _;
    let mut map = std::collections::HashMap::with_capacity_and_hasher(n, Default::default());
    let mut ids = Vec::with_capacity(n);
    let mut rng = rand::rng();
    for i in 0..n {
        let mut id = [0u8; 32];
        rng.fill_bytes(&mut id);
        map.insert(sha2::Sha256::digest(id).into(), FloorValue([i as u64; 8]));
        ids.push(id);
    }
    (parking_lot::RwLock::new(map), ids)
}

/// The work no server-side store can skip: SHA-256 of the 32-byte ID, then
/// a read-locked lookup copying the value out.
#[inline]
pub fn floor_load(map: &FloorMap, id: &[u8; 32]) -> FloorValue {
    floor_load_with(map, id, || ())
}

/// [`floor_load`], calling `between` once the key is hashed and before the
/// lookup: where latchkey's load reads the clock.
#[inline]
pub fn floor_load_with(map: &FloorMap, id: &[u8; 32], between: impl FnOnce()) -> FloorValue {
    use sha2::Digest as _;
    let key: [u8; 32] = sha2::Sha256::digest(id).into();
    between();
    match map.read().get(&key) {
        Some(v) => *v,
        None => panic!("floor key missing"),
    }
}

/// Pins the calling thread to the `index`-th CPU it may run on (counting
/// round when `index` passes their number); pass it as the `pin` of
/// [`two_threads`] and its kin, so thread 0 and thread 1 of a pair
/// run on CPUs of their own.
///
/// Left free, the scheduler sometimes keeps both threads of a fresh pair on
/// one CPU for the whole sample, where they take turns, and a pair then
/// measures where the threads were put rather than how the store shares
/// (the history of BENCHMARKS.md in git tells how that was found). Where the
/// CPUs cannot be listed or set, the thread stays where it is.
pub fn pin_to_cpu(index: usize) {
    if let Some(cpus) = core_affinity::get_core_ids()
        && !cpus.is_empty()
    {
        core_affinity::set_for_current(cpus[index % cpus.len()]);
    }
}

/// A load timer's command line, `[SIZE [ROUNDS]]`: one size of store if
/// given, else 100k and 1M live sessions; `default_rounds` rounds unless
/// given. An argument that is not a number counts as absent.
pub fn sizes_and_rounds(
    mut args: impl Iterator<Item = String>,
    default_rounds: usize,
) -> (Vec<usize>, usize) {
    let sizes = match args.next().and_then(|s| s.parse().ok()) {
        Some(n) => vec![n],
        None => vec![100_000, 1_000_000],
    };
    let rounds = args
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default_rounds);
    (sizes, rounds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timer_arguments_default_to_both_sizes_and_the_given_rounds() {
        let args = |a: &[&str]| {
            a.iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .into_iter()
        };
        assert_eq!(
            super::sizes_and_rounds(args(&[]), 5),
            (vec![100_000, 1_000_000], 5)
        );
        assert_eq!(super::sizes_and_rounds(args(&["1000"]), 5), (vec![1000], 5));
        assert_eq!(
            super::sizes_and_rounds(args(&["1000", "9"]), 5),
            (vec![1000], 9)
        );
        assert_eq!(
            super::sizes_and_rounds(args(&["x", "y"]), 5),
            (vec![100_000, 1_000_000], 5)
        );
    }

    #[test]
    fn each_thread_of_a_pair_is_pinned_by_its_own_index() {
        let asked = std::sync::Mutex::new(Vec::new());
        let pin = |index: usize| match asked.lock() {
            Ok(mut asked) => asked.push(index),
            Err(_) => panic!("a pinning thread panicked"),
        };
        let mut states = [Apart(0u64), Apart(10u64)];
        two_threads(&mut states, 2, &pin, |s, iters| *s += iters);
        assert_eq!(states.map(|Apart(s)| s), [2, 12]);
        let mut asked = match asked.into_inner() {
            Ok(asked) => asked,
            Err(_) => panic!("a pinning thread panicked"),
        };
        asked.sort_unstable();
        assert_eq!(asked, [0, 1]);
    }

    /// A thread pinned by `pin_to_cpu` may run on its one CPU only, the
    /// `index`-th of those its process may use (counting round).
    #[cfg(target_os = "linux")]
    #[test]
    fn a_pinned_thread_runs_on_its_cpu_only() {
        let Some(cpus) = core_affinity::get_core_ids() else {
            panic!("Linux lists the CPUs a thread may use")
        };
        for index in 0..cpus.len() + 1 {
            let (allowed, now) = std::thread::spawn(move || {
                super::pin_to_cpu(index);
                (core_affinity::get_core_ids(), current_cpu())
            })
            .join()
            .unwrap_or_else(|_| panic!("the pinned thread panicked"));
            let cpu = cpus[index % cpus.len()];
            assert_eq!(
                allowed.map(|a| a.iter().map(|c| c.id).collect::<Vec<_>>()),
                Some(vec![cpu.id])
            );
            assert_eq!(now, Some(cpu.id as u32));
        }
    }
}
