//! Session load beside tower-sessions and the floor, timed in a way a busy
//! shared machine disturbs less than a criterion run.
//!
//! ```text
//! cargo run --release -p latchkey-peers --bin load_timing            # 100k and 1M, 15 rounds
//! cargo run --release -p latchkey-peers --bin load_timing -- 100000 5 # one size, 5 rounds
//! ```
//!
//! Same fixtures and cases as the `load_*` groups of `benches/compare.rs`,
//! one thread: `latchkey` (`StoreManager<MemoryStore>::load`), `tower`
//! (`Id::from_str` then tower-sessions' `MemoryStore::load` on a tokio
//! current-thread runtime) and `floor` (SHA-256 of the ID, then a
//! read-locked `HashMap` lookup copying 64 bytes out), each in a scattered
//! order over all live sessions. Beside them, for reference and for no
//! goal, `floor + clock`: the floor reading the system clock once per load,
//! as latchkey's and tower-sessions' loads do to check expiry, where
//! latchkey's reads it (after the hash, before the lookup).
//!
//! Each round runs every case for 100 000 loads, interleaved (no case right
//! after another over the same store), each from positions of its own, and
//! each case's figure is its fastest round: other processes only ever add
//! time, so the least disturbed round is the closest to the code's own cost.

use std::hint::black_box;
use std::str::FromStr as _;
use std::time::{Duration, Instant};

use latchkey::{Clock as _, SystemClock};
use latchkey_peers::{
    Chained, FloorMap, Walk, current_thread_runtime, floor_load_with, load_chained, load_next,
    seed_floor, seed_latchkey, seed_tower,
};
use tower_sessions_core::SessionStore as _;
use tower_sessions_core::session::Id;

/// Loads per case per round.
const OPS: usize = 100_000;

fn time(f: impl FnOnce()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

/// A walk's seed for case number `i` (splitmix64's finalizer): seeds that
/// differ in one bit would start [`Walk`]s (xorshift) on nearly the same
/// positions.
fn seed_for(i: u64) -> u64 {
    let mut z = i.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The cases, as indices into a round's figures.
const LATCHKEY: usize = 0;
const TOWER: usize = 1;
const FLOOR: usize = 2;
const FLOOR_CLOCK: usize = 3;

/// The order a round runs them in: no two over the same store in a row
/// (the floor's two cases share one).
const ORDER: [usize; 4] = [LATCHKEY, FLOOR, TOWER, FLOOR_CLOCK];

fn per_op(d: Duration) -> f64 {
    d.as_nanos() as f64 / OPS as f64
}

/// [`OPS`] floor loads at the positions `next(previous load's value)`
/// gives; with `CLOCK`, each also reads the system clock, as a session load
/// must to check its deadlines, where latchkey's load reads it: after the
/// hash, before the lookup. (Read after the lookup, the clock waits for the
/// lookup's cache misses and costs the plain walk its overlap: 100–230 ns
/// at 100k and 1M, against −2 to 25 ns here; BENCHMARKS.md.)
fn floor_loads<const CLOCK: bool>(
    floor: &FloorMap,
    ids: &[[u8; 32]],
    mut next: impl FnMut(usize) -> usize,
) {
    let mut previous = 0;
    for _ in 0..OPS {
        let v = floor_load_with(floor, &ids[next(previous)], || {
            if CLOCK {
                black_box(SystemClock.now());
            }
        });
        assert!(v.0[0] < ids.len() as u64);
        previous = v.0[0] as usize;
        black_box(v);
    }
}

fn run(n: usize, rounds: usize) {
    let (manager, tokens) = seed_latchkey(n);
    let rt = current_thread_runtime();
    let (tower, tower_tokens) = seed_tower(&rt, n);
    let (floor, ids) = seed_floor(n);
    // Indexed by case (`LATCHKEY` ...), on a plain walk, then on a chained
    // one.
    let mut best = [[Duration::MAX; 4]; 2];
    for round in 0..rounds {
        // Every case of every round walks from a seed of its own, and the
        // order (latchkey, floor, tower, floor + clock; plain walks, then
        // chained ones) never runs a case right after another over the same
        // store: a case that retraced positions just loaded would find
        // their records in the cache.
        let seed = |case: u64| seed_for(round as u64 * 8 + case);
        // `next(previous result)` gives each load's position.
        let tower_load = |next: &mut dyn FnMut(usize) -> usize| {
            rt.block_on(async {
                let mut previous = 0;
                for _ in 0..OPS {
                    let Ok(id) = Id::from_str(tower_tokens.get(next(previous))) else {
                        panic!("bad id")
                    };
                    let loaded = tower.load(&id).await;
                    // The expiry is read from the record and no check pins
                    // it down (as latchkey's side feeds the creation time):
                    // the data's length, checked equal to 3, would be a
                    // constant to the compiler, and the chain no chain.
                    match &loaded {
                        Ok(Some(r)) if r.data.len() == 3 => {
                            previous = r.expiry_date.nanosecond() as usize;
                        }
                        _ => panic!("tower-sessions load failed"),
                    }
                    black_box(&loaded);
                }
            });
        };
        let mut plain = [Duration::ZERO; 4];
        let mut chained = [Duration::ZERO; 4];
        for (case, slot) in ORDER.into_iter().enumerate() {
            let mut walk = Walk::new(n, seed(case as u64));
            plain[slot] = time(|| match slot {
                LATCHKEY => {
                    for _ in 0..OPS {
                        black_box(load_next(&manager, &tokens, &mut walk));
                    }
                }
                TOWER => tower_load(&mut |_| walk.next_index()),
                FLOOR => floor_loads::<false>(&floor, &ids, |_| walk.next_index()),
                _ => floor_loads::<true>(&floor, &ids, |_| walk.next_index()),
            });
        }
        for (case, slot) in ORDER.into_iter().enumerate() {
            let mut chain = Chained::new(n, seed(4 + case as u64));
            chained[slot] = time(|| match slot {
                LATCHKEY => {
                    for _ in 0..OPS {
                        black_box(load_chained(&manager, &tokens, &mut chain));
                    }
                }
                _ => {
                    let mut next = |previous| {
                        chain.feed(previous);
                        chain.next_index()
                    };
                    match slot {
                        TOWER => tower_load(&mut next),
                        FLOOR => floor_loads::<false>(&floor, &ids, next),
                        _ => floor_loads::<true>(&floor, &ids, next),
                    }
                }
            });
        }
        for (b, d) in best
            .iter_mut()
            .flatten()
            .zip([plain, chained].iter().flatten())
        {
            *b = (*b).min(*d);
        }
    }
    println!("{n} live, fastest of {rounds} rounds of {OPS}:");
    for (label, b) in [("plain walk", best[0]), ("chained", best[1])] {
        let [ours, theirs, least, least_clock] = b.map(per_op);
        println!("  {label}:");
        println!("        latchkey: {ours:7.1} ns");
        println!("           tower: {theirs:7.1} ns");
        println!("           floor: {least:7.1} ns");
        println!("   floor + clock: {least_clock:7.1} ns");
        println!(
            "    latchkey / tower: {:.2}x (goal <= 0.5x), latchkey / floor: {:.2}x (goal <= 1.5x), latchkey / (floor + clock): {:.2}x",
            ours / theirs,
            ours / least,
            ours / least_clock
        );
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let sizes: Vec<usize> = match args.next().and_then(|s| s.parse().ok()) {
        Some(n) => vec![n],
        None => vec![100_000, 1_000_000],
    };
    let rounds: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(15);
    for n in sizes {
        run(n, rounds);
    }
}
