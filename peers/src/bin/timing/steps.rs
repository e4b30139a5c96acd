//! What a session load adds to the load floor, one step at a time, with
//! the cache cold and warm.
//!
//! ```text
//! cargo run --release -p latchkey-peers --bin timing -- steps                         # 100k and 1M, 5 rounds
//! cargo run --release -p latchkey-peers --bin timing -- steps --size 100000 --rounds 9
//! ```
//!
//! The floor of the `load_*` goals hashes a raw 32-byte ID and copies a
//! 64-byte value out of a read-locked `HashMap`. A session load must do
//! more before it stores anything of its own: parse the token the client
//! sent, and read the clock to check the deadlines. This timer adds those
//! steps to the floor one at a time, each a case of its own over a
//! `HashMap` like the floor's, then sets latchkey's load beside them:
//!
//! - `floor`: the goals' floor (`floor_load`);
//! - `+ clock`: the floor reading the system clock after the hash, where
//!   latchkey's load reads it;
//! - `+ token parse`: the token parsed by `SessionId::parse` and hashed by
//!   `SessionId::store_key` (the same SHA-256 of the same 32 bytes), then
//!   the clock, then the lookup;
//! - `+ record of our size`: the same, with a 160-byte value, so each entry
//!   is 192 bytes, the size of a `MemoryStore` slot;
//! - `latchkey`: `StoreManager<MemoryStore>::load`, checked as in every
//!   load case.
//!
//! Each case does 100 000 loads on a plain walk of its own (the `load_*`
//! groups' walk), and its figure is its fastest round. Two regimes:
//!
//! - **cold**: before each timed pass, 128 MiB (four times this machine's
//!   L3) are written over, so the pass finds nothing of its store cached,
//!   as when other work has run between two requests;
//! - **warm**: each timed pass follows an untimed pass of its own case
//!   over the same store, so as much of the store as fits stays cached, as
//!   in criterion's loop, which runs one case for seconds.
//!
//! No goal is set against the steps: they show where the time between the
//! floor and a session load goes. Nothing is recorded for the report.

use std::cell::RefCell;
use std::hint::black_box;

use latchkey::{Clock as _, MemoryStore, SessionId, StoreManager, SystemClock};
use latchkey_peers::harness::{Case, interleaved, seed_for, timed};
use latchkey_peers::{
    FirstBytes, FloorMap, Tokens, Walk, floor_load, floor_load_with, load_next, seed_floor,
    seed_latchkey,
};

use crate::Opts;

/// Bytes written over before each cold pass: four times a 32 MiB L3.
const FLUSH_BYTES: usize = 128 << 20;

/// A floor-like map keyed by store key, with `W` words of value; word 0 of
/// each value is its session's index, which a load checks.
type KeyedMap<const W: usize> = parking_lot::RwLock<
    std::collections::HashMap<[u8; 32], [u64; W], std::hash::BuildHasherDefault<FirstBytes>>,
>;

/// A map holding, for each of `tokens`' first `n` sessions, a value of `W`
/// words under its store key.
fn seed_keyed<const W: usize>(tokens: &Tokens, n: usize) -> KeyedMap<W> {
    let mut map = std::collections::HashMap::with_capacity_and_hasher(n, Default::default());
    for i in 0..n {
        let id = match SessionId::parse(tokens.get(i)) {
            Ok(id) => id,
            Err(e) => panic!("a seeded token does not parse: {e}"),
        };
        map.insert(*id.store_key().as_bytes(), [i as u64; W]);
    }
    parking_lot::RwLock::new(map)
}

/// One `+ token parse` load: parse, hash, read the clock, look up, copy the
/// value out.
#[inline]
fn keyed_load<const W: usize>(map: &KeyedMap<W>, token: &str) -> [u64; W] {
    let key = match SessionId::parse(token) {
        Ok(id) => id.store_key(),
        Err(e) => panic!("a seeded token does not parse: {e}"),
    };
    black_box(SystemClock.now());
    match map.read().get(key.as_bytes()) {
        Some(v) => *v,
        None => panic!("a seeded key is missing"),
    }
}

/// The stores every case runs over.
struct Fixture {
    floor: FloorMap,
    ids: Vec<[u8; 32]>,
    small: KeyedMap<8>,
    large: KeyedMap<20>,
    manager: StoreManager<MemoryStore>,
    tokens: Tokens,
}

/// The cases, in the order of [`NAMES`].
const CASES: usize = 5;
const NAMES: [&str; CASES] = [
    "floor",
    "+ clock",
    "+ token parse",
    "+ record of our size",
    "latchkey",
];

/// One pass of `ops` loads of case `case` on `walk`, each checked.
fn pass(f: &Fixture, case: usize, walk: &mut Walk, ops: usize) {
    match case {
        0 => each(walk, ops, |i| {
            black_box(floor_load(&f.floor, &f.ids[i])).0[0]
        }),
        1 => each(walk, ops, |i| {
            let v = floor_load_with(&f.floor, &f.ids[i], || {
                black_box(SystemClock.now());
            });
            black_box(v).0[0]
        }),
        2 => each(walk, ops, |i| {
            black_box(keyed_load(&f.small, f.tokens.get(i)))[0]
        }),
        3 => each(walk, ops, |i| {
            black_box(keyed_load(&f.large, f.tokens.get(i)))[0]
        }),
        _ => {
            for _ in 0..ops {
                black_box(load_next(&f.manager, &f.tokens, walk));
            }
        }
    }
}

/// `ops` loads at `walk`'s positions, each checked to return its own
/// session's index.
#[inline]
fn each(walk: &mut Walk, ops: usize, mut load: impl FnMut(usize) -> u64) {
    for _ in 0..ops {
        let i = walk.next_index();
        assert_eq!(load(i), i as u64, "a load found another session's value");
    }
}

/// Every case's store, with `n` sessions each.
fn seed(n: usize) -> Fixture {
    let (floor, ids) = seed_floor(n);
    // A run at 1M takes about ten seconds from here, well within the
    // sessions' first minute, so no load is due a touch (see
    // `seed_latchkey`).
    let (manager, tokens) = seed_latchkey(n);
    let small = seed_keyed::<8>(&tokens, n);
    let large = seed_keyed::<20>(&tokens, n);
    Fixture {
        floor,
        ids,
        small,
        large,
        manager,
        tokens,
    }
}

pub(crate) fn run(opts: &Opts) {
    let ops = opts.ops(100_000) as usize;
    let rounds = opts.rounds(5);
    for n in opts.sizes(&[100_000, 1_000_000]) {
        let f = seed(n);
        let flush = RefCell::new(vec![0u8; if opts.quick { 1 << 16 } else { FLUSH_BYTES }]);
        let (f, flush) = (&f, &flush);
        let mut cases = Vec::new();
        for (case, name) in NAMES.iter().enumerate() {
            let walk = move |round: usize, warm: u64| {
                Walk::new(n, seed_for(round as u64 * 16 + 2 * case as u64 + warm))
            };
            // Cold: the caches written over first, so the pass finds none
            // of its store cached.
            cases.push(Case::new(COLD[case], ops as u64, move |r| {
                let mut flush = flush.borrow_mut();
                for x in flush.iter_mut() {
                    *x = x.wrapping_add(1);
                }
                black_box(&*flush);
                let mut w = walk(r, 0);
                timed(|| pass(f, case, &mut w, ops))
            }));
            // Warm: an untimed pass of the same case first.
            cases.push(Case::new(WARM[case], ops as u64, move |r| {
                pass(f, case, &mut walk(r, 1), ops);
                let mut w = walk(r, 1);
                timed(|| pass(f, case, &mut w, ops))
            }));
            let _ = name;
        }
        let t = interleaved(rounds, &mut cases);
        println!("{n} live, fastest of {rounds} rounds of {ops} loads, plain walk:");
        println!(
            "  {:<22} {:>16} {:>16}",
            "", "cold (÷ floor)", "warm (÷ floor)"
        );
        let (fc, fw) = (t.fastest(COLD[0]), t.fastest(WARM[0]));
        for (case, name) in NAMES.iter().enumerate() {
            let (cold, warm) = (t.fastest(COLD[case]), t.fastest(WARM[case]));
            println!(
                "  {name:<22} {cold:>7.1} ns {:>5.2}x {warm:>7.1} ns {:>5.2}x",
                cold / fc,
                warm / fw
            );
        }
    }
}

/// The cases' names, cold and warm.
const COLD: [&str; CASES] = [
    "floor, cold",
    "+ clock, cold",
    "+ token parse, cold",
    "+ record of our size, cold",
    "latchkey, cold",
];
const WARM: [&str; CASES] = [
    "floor, warm",
    "+ clock, warm",
    "+ token parse, warm",
    "+ record of our size, warm",
    "latchkey, warm",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_case_finds_its_own_sessions() {
        let n = 500;
        let f = seed(n);
        for case in 0..CASES {
            // Twice the sessions, so each case walks over most of them.
            pass(&f, case, &mut Walk::new(n, case as u64 + 1), 2 * n);
        }
    }

    #[test]
    #[should_panic(expected = "another session's value")]
    fn a_load_of_another_session_fails_the_pass() {
        each(&mut Walk::new(10, 1), 10, |i| i as u64 + 1);
    }

    #[test]
    fn the_large_map_holds_records_of_a_slots_size() {
        // 32-byte key and 160-byte value: a `MemoryStore` slot is 192
        // bytes (a test in the library checks that).
        assert_eq!(std::mem::size_of::<([u8; 32], [u64; 20])>(), 192);
    }
}
