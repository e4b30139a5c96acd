//! `timing load`: a session load beside tower-sessions' and the floor's,
//! one thread on a plain walk and on a chained one, and two threads
//! sharing one store (latchkey's and the floor's, pinned to a CPU each).
//!
//! - `latchkey`: `StoreManager<MemoryStore>::load`, checked;
//! - `tower`: `Id::from_str` then tower-sessions' `MemoryStore::load` on a
//!   tokio current-thread runtime;
//! - `floor`: SHA-256 of the raw ID, then a read-locked `HashMap` lookup
//!   copying 64 bytes out (`floor_load`);
//! - `floor + clock`: the floor reading the system clock where a load
//!   reads it, after the hash (for reference, no goal);
//! - `chained`: each load's position waits for the previous load's result,
//!   so no two loads' cache misses overlap (`Chained`);
//! - `2t`: two threads on walks of their own, one store, pinned to a CPU
//!   each; the figure is time per load of the pair, and the goal is the
//!   pair's rate ÷ one thread's.
//!
//! tower-sessions' pair is left out: its two threads get a few percent of
//! one thread's rate (one mutex), so a round would take seconds.

use std::hint::black_box;
use std::str::FromStr as _;

use latchkey::{Clock as _, MemoryStore, StoreManager, SystemClock};
use latchkey_peers::harness::{Case, interleaved, seed_for, timed};
use latchkey_peers::results::{Figure, record};
use latchkey_peers::{
    Apart, Chained, FloorMap, Tokens, Walk, current_thread_runtime, floor_load_with, load_chained,
    load_next, load_two_threads, pin_to_cpu, seed_floor, seed_latchkey, seed_tower, two_threads,
};
use tower_sessions_core::SessionStore as _;
use tower_sessions_core::session::Id;

use crate::Opts;

/// `ops` floor loads at the positions `next(previous load's value)` gives;
/// with `CLOCK`, each also reads the system clock after the hash.
fn floor_loads<const CLOCK: bool>(
    floor: &FloorMap,
    ids: &[[u8; 32]],
    ops: u64,
    mut next: impl FnMut(usize) -> usize,
) {
    let mut previous = 0;
    for _ in 0..ops {
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

/// `ops` tower-sessions loads at the positions `next(previous)` gives,
/// `previous` read from the record (its expiry), which no check pins down.
fn tower_loads(
    rt: &tokio::runtime::Runtime,
    store: &tower_sessions_memory_store::MemoryStore,
    tokens: &Tokens,
    ops: u64,
    mut next: impl FnMut(usize) -> usize,
) {
    rt.block_on(async {
        let mut previous = 0;
        for _ in 0..ops {
            let Ok(id) = Id::from_str(tokens.get(next(previous))) else {
                panic!("bad id")
            };
            let loaded = store.load(&id).await;
            match &loaded {
                Ok(Some(r)) if r.data.len() == 3 => {
                    previous = r.expiry_date.nanosecond() as usize;
                }
                _ => panic!("tower-sessions load failed"),
            }
            black_box(&loaded);
        }
    });
}

fn latchkey_loads(manager: &StoreManager<MemoryStore>, tokens: &Tokens, walk: &mut Walk, ops: u64) {
    for _ in 0..ops {
        black_box(load_next(manager, tokens, walk));
    }
}

/// A size's name in case names: `100k`, `1m`, or the number.
pub(crate) fn size_name(n: usize) -> String {
    match n {
        100_000 => "100k".into(),
        1_000_000 => "1m".into(),
        n => n.to_string(),
    }
}

pub(crate) fn run(opts: &Opts) {
    let ops = opts.ops(100_000);
    let rounds = opts.rounds(15);
    for n in opts.sizes(&[100_000, 1_000_000]) {
        let (manager, tokens) = seed_latchkey(n);
        let rt = current_thread_runtime();
        let (tower, tower_tokens) = seed_tower(&rt, n);
        let (floor, ids) = seed_floor(n);
        let (m, t, f, ids, rt, tower, tt) = (
            &manager,
            &tokens,
            &floor,
            &ids[..],
            &rt,
            &tower,
            &tower_tokens,
        );
        // Every pass walks from a seed of its own (case, round), and no case
        // runs right after another over the same store (the floor's cases
        // share one), so none finds the last one's records cached.
        let walk = move |case: u64, round: usize| Walk::new(n, seed_for(round as u64 * 16 + case));
        let chain =
            move |case: u64, round: usize| Chained::new(n, seed_for(round as u64 * 16 + case));
        let mut cases = [
            Case::new("latchkey", ops, move |r| {
                let mut w = walk(0, r);
                timed(|| latchkey_loads(m, t, &mut w, ops))
            }),
            Case::new("floor", ops, move |r| {
                let mut w = walk(1, r);
                timed(|| floor_loads::<false>(f, ids, ops, |_| w.next_index()))
            }),
            Case::new("tower", ops, move |r| {
                let mut w = walk(2, r);
                timed(|| tower_loads(rt, tower, tt, ops, |_| w.next_index()))
            }),
            Case::new("floor + clock", ops, move |r| {
                let mut w = walk(3, r);
                timed(|| floor_loads::<true>(f, ids, ops, |_| w.next_index()))
            }),
            Case::new("latchkey chained", ops, move |r| {
                let mut c = chain(4, r);
                timed(|| {
                    for _ in 0..ops {
                        black_box(load_chained(m, t, &mut c));
                    }
                })
            }),
            Case::new("floor chained", ops, move |r| {
                let mut c = chain(5, r);
                timed(|| {
                    floor_loads::<false>(f, ids, ops, |p| {
                        c.feed(p);
                        c.next_index()
                    })
                })
            }),
            Case::new("tower chained", ops, move |r| {
                let mut c = chain(6, r);
                timed(|| {
                    tower_loads(rt, tower, tt, ops, |p| {
                        c.feed(p);
                        c.next_index()
                    })
                })
            }),
            Case::new("floor + clock chained", ops, move |r| {
                let mut c = chain(7, r);
                timed(|| {
                    floor_loads::<true>(f, ids, ops, |p| {
                        c.feed(p);
                        c.next_index()
                    })
                })
            }),
            // A pair does `ops` loads on each thread: 2 × ops in its time.
            Case::new("latchkey 2t", 2 * ops, move |r| {
                let mut walks = [8, 9].map(|c| Apart(walk(c, r)));
                load_two_threads(m, t, &mut walks, ops, &pin_to_cpu)
            }),
            Case::new("floor 2t", 2 * ops, move |r| {
                let mut walks = [10, 11].map(|c| Apart(walk(c, r)));
                two_threads(&mut walks, ops, &pin_to_cpu, |w, ops| {
                    floor_loads::<false>(f, ids, ops, |_| w.next_index())
                })
            }),
        ];
        let t = interleaved(rounds, &mut cases);
        println!("load, {n} live:");
        t.print();
        let best = |c: &str| t.fastest(c);
        let (ours, peer, least) = (best("latchkey"), best("tower"), best("floor"));
        println!(
            "  latchkey ÷ tower {:.2}x, ÷ floor {:.2}x, ÷ (floor + clock) {:.2}x; chained: ÷ tower {:.2}x, ÷ floor {:.2}x",
            ours / peer,
            ours / least,
            ours / best("floor + clock"),
            best("latchkey chained") / best("tower chained"),
            best("latchkey chained") / best("floor chained"),
        );
        let (ours_2t, floor_2t) = (ours / best("latchkey 2t"), least / best("floor 2t"));
        println!("  two threads ÷ one: latchkey {ours_2t:.2}x, floor {floor_2t:.2}x");
        if opts.record {
            let how = format!("fastest of {rounds} interleaved rounds of {ops} loads, plain walk");
            let size = size_name(n);
            record(
                &format!("load_{size}"),
                Figure {
                    latchkey: Some(ours),
                    peer: Some(peer),
                    floor: Some(least),
                    how: how.clone(),
                    ..Figure::default()
                },
            );
            record(
                &format!("load_{size}_2t"),
                Figure {
                    latchkey: Some(ours_2t),
                    peer: None,
                    floor: Some(floor_2t),
                    how: format!("{how}; each thread's pair pinned to a CPU each"),
                    ..Figure::default()
                },
            );
        }
    }
}
