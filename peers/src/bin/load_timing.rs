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
//! Then two threads sharing one store, for latchkey and the floor: each
//! thread does 100 000 loads on a plain walk of its own, and the pair's
//! aggregate rate is set against one thread's (the plain walk's figure).
//! tower-sessions is left out here: its two threads get a few percent of
//! one thread's rate (see `benches/compare.rs`), so a round would take
//! seconds.
//!
//! Each round runs every case for 100 000 loads, interleaved (no case right
//! after another over the same store), each from positions of its own, and
//! each case's figure is its fastest round: other processes only ever add
//! time, so the least disturbed round is the closest to the code's own cost.
//! The two-thread figures are fastest rounds too, set against one thread's
//! fastest round; a slow spell that lasts the whole run still reads slow.
//! Beside them: the range of each round's own two threads ÷ one, and how
//! many rounds had their two threads seen on one CPU as they started or
//! finished (Linux only): the scheduler sometimes keeps both on one CPU,
//! where they take turns. Each pair runs twice a round: free, where the
//! scheduler puts it, and pinned to a CPU each (`pin_to_cpu`, as
//! criterion's `*_2t` cases run), free first in even rounds and pinned
//! first in odd ones.

use std::hint::black_box;
use std::str::FromStr as _;
use std::time::{Duration, Instant};

use latchkey::{Clock as _, SystemClock};
use latchkey_peers::{
    Apart, Chained, FloorMap, Placement, Walk, current_thread_runtime, floor_load_with,
    load_chained, load_next, load_two_threads_placed, pin_to_cpu, seed_floor, seed_latchkey,
    seed_tower, sizes_and_rounds, two_threads_placed,
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
    // Two threads: latchkey's pair, the floor's, then the same pinned,
    // and how many rounds of each had its two threads seen on one CPU.
    let mut best_pair = [Duration::MAX; 4];
    let mut shared = [0usize; 4];
    // Each round's own two threads ÷ one, in the same order (lowest,
    // highest): how far the machine swings from round to round.
    let mut spread = [(f64::MAX, 0.0f64); 4];
    for round in 0..rounds {
        // Every case of every round walks from a seed of its own, and the
        // order (latchkey, floor, tower, floor + clock; plain walks, then
        // chained ones) never runs a case right after another over the same
        // store: a case that retraced positions just loaded would find
        // their records in the cache.
        let seed = |case: u64| seed_for(round as u64 * 16 + case);
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
        // Two threads sharing each store, on walks of their own; after the
        // chained floor + clock, latchkey's pair then the floor's, so again
        // no case right after another over the same store. Each runs free
        // (the scheduler places its threads) and pinned (a CPU each);
        // which of the two goes first alternates with the round, as the
        // scheduler treats a pair by its place in the round.
        let mut pair = [Duration::ZERO; 4];
        let pinned_first = round % 2 == 1;
        for step in 0..4 {
            let (case, pinned) = (step % 2, (step < 2) == pinned_first);
            let slot = [LATCHKEY, FLOOR][case];
            let index = case + 2 * usize::from(pinned);
            let first = 8 + 2 * index as u64;
            let mut walks = [first, first + 1].map(|s| Apart(Walk::new(n, seed(s))));
            let pin: &(dyn Fn(usize) + Sync) = if pinned { &pin_to_cpu } else { &|_| {} };
            let [(a, at_a), (b, at_b)] = match slot {
                LATCHKEY => load_two_threads_placed(&manager, &tokens, &mut walks, OPS as u64, pin),
                // `floor_loads` does OPS loads, the count asked of each thread.
                _ => two_threads_placed(&mut walks, OPS as u64, pin, |walk, _| {
                    floor_loads::<false>(&floor, &ids, |_| walk.next_index())
                }),
            };
            // The pair's time is its slower thread's.
            pair[index] = a.max(b);
            if Placement::shared([at_a, at_b]) {
                shared[index] += 1;
            }
        }
        let one = [plain[LATCHKEY], plain[FLOOR]];
        for (index, range) in spread.iter_mut().enumerate() {
            let ratio = 2.0 * one[index % 2].as_secs_f64() / pair[index].as_secs_f64();
            *range = (range.0.min(ratio), range.1.max(ratio));
        }
        for (b, d) in best
            .iter_mut()
            .flatten()
            .zip([plain, chained].iter().flatten())
            .chain(best_pair.iter_mut().zip(pair.iter()))
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
    // A pair does 2 × OPS loads in its time, one thread OPS in its own.
    let [ours_1t, least_1t] = [best[0][LATCHKEY], best[0][FLOOR]].map(per_op);
    let [ours_2t, least_2t, ours_pinned, least_pinned] = best_pair.map(|d| per_op(d) / 2.0);
    for (label, ours, least, at) in [
        ("free", ours_2t, least_2t, 0),
        ("pinned, a CPU each", ours_pinned, least_pinned, 2),
    ] {
        println!("  two threads sharing one store (plain walks, {label}), per load of the pair:");
        println!("        latchkey: {ours:7.1} ns");
        println!("           floor: {least:7.1} ns");
        println!(
            "    two threads / one, latchkey: {:.2}x (goal >= 1.6x), floor: {:.2}x",
            ours_1t / ours,
            least_1t / least
        );
        println!(
            "    rounds whose two threads were seen on one CPU: latchkey {}, floor {} of {rounds}",
            shared[at],
            shared[at + 1]
        );
        let [(a, b), (c, d)] = [spread[at], spread[at + 1]];
        println!("    each round's own: latchkey {a:.2}x to {b:.2}x, floor {c:.2}x to {d:.2}x");
    }
}

fn main() {
    let (sizes, rounds) = sizes_and_rounds(std::env::args().skip(1), 15);
    for n in sizes {
        run(n, rounds);
    }
}
