//! `timing save` and `timing refuse`: the memory store's writes.
//!
//! Save: one value changed, then the session written back, 100k sessions
//! live, one thread. latchkey: `Session::insert` then `StoreManager::save`
//! (the data encoded, a versioned replace: the write fails if another
//! writer saved first); tower-sessions: one `HashMap` insert then
//! `MemoryStore::save` (an unconditional overwrite), on a current-thread
//! runtime.
//!
//! Refuse: a create refused at capacity (`MemoryStore::with_capacity_limit`,
//! the store full of live sessions), beside a create into a store of the
//! same size without a limit (which grows: its figure includes the
//! table's growth steps, amortized). Inputs are cloned in batches outside
//! the timing, as for ticket issue.

use std::cell::Cell;
use std::str::FromStr as _;
use std::time::{Duration, Instant};

use latchkey::{Error, MemoryStore, NewSession, SessionManager as _, StoreError, StoreManager};
use latchkey_peers::harness::{Case, interleaved};
use latchkey_peers::results::{Figure, record};
use latchkey_peers::{
    current_thread_runtime, new_session, seed_latchkey, seed_tower, tower_record,
};
use serde_json::Value;
use tower_sessions_core::SessionStore as _;
use tower_sessions_core::session::Id;

use crate::Opts;

pub(crate) fn save(opts: &Opts) {
    let n = opts.sizes(&[100_000])[0];
    let ops = opts.ops(100_000);
    let rounds = opts.rounds(15);
    let (manager, tokens) = seed_latchkey(n);
    let mut session = match manager.load(tokens.get(n / 2)) {
        Ok(l) => l.session,
        Err(e) => panic!("load failed: {e}"),
    };
    let rt = current_thread_runtime();
    let (store, tower_tokens) = seed_tower(&rt, n);
    let mut tower = tower_record();
    tower.id = match Id::from_str(tower_tokens.get(n / 2)) {
        Ok(id) => id,
        Err(_) => panic!("bad id"),
    };
    // Every save changes the value.
    let counter = Cell::new(0u64);
    let (manager, counter, rt, store) = (&manager, &counter, &rt, &store);
    let mut cases = [
        Case::new("latchkey", ops, |_| {
            let start = Instant::now();
            for _ in 0..ops {
                counter.set(counter.get() + 1);
                let changed = session.insert("user_id", &counter.get());
                assert!(changed.is_ok());
                let saved = manager.save(&mut session);
                assert!(saved.is_ok() && !session.is_modified());
            }
            start.elapsed()
        }),
        Case::new("tower", ops, |_| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..ops {
                    counter.set(counter.get() + 1);
                    tower
                        .data
                        .insert("user_id".into(), Value::from(counter.get()));
                    let saved = store.save(&tower).await;
                    assert!(saved.is_ok());
                }
                start.elapsed()
            })
        }),
    ];
    let t = interleaved(rounds, &mut cases);
    println!("save, {n} live, one thread:");
    t.print();
    let (ours, peer) = (t.fastest("latchkey"), t.fastest("tower"));
    println!("  latchkey ÷ tower {:.2}x", ours / peer);
    if opts.record {
        record(
            "save_100k",
            Figure {
                latchkey: Some(ours),
                peer: Some(peer),
                floor: None,
                how: format!("fastest of {rounds} interleaved rounds of {ops} saves"),
                ..Figure::default()
            },
        );
    }
}

/// Inputs cloned at a time.
const BATCH: u64 = 64;

/// `ops` creates of `new` on `manager`, inputs cloned in batches outside
/// the time, each result checked by `check`.
fn creates(
    manager: &StoreManager<MemoryStore>,
    new: &NewSession,
    ops: u64,
    check: impl Fn(&Result<latchkey::Issued, Error>),
) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..ops.div_ceil(BATCH) {
        let inputs = vec![new.clone(); BATCH as usize];
        let start = Instant::now();
        for input in inputs {
            let made = manager.create(input);
            check(&made);
            drop(std::hint::black_box(made));
        }
        total += start.elapsed();
    }
    total
}

pub(crate) fn refuse(opts: &Opts) {
    let n = opts.sizes(&[100_000])[0];
    let ops = opts.ops(10_000).div_ceil(BATCH) * BATCH;
    let rounds = opts.rounds(15);
    let full = StoreManager::new(MemoryStore::new().with_capacity_limit(n));
    let new = new_session();
    for _ in 0..n {
        if let Err(e) = full.create(new.clone()) {
            panic!("seeding failed: {e}");
        }
    }
    let (growing, _) = seed_latchkey(n);
    let (full, growing, new) = (&full, &growing, &new);
    let mut cases = [
        Case::new("refused at capacity", ops, move |_| {
            creates(full, new, ops, |r| {
                assert!(
                    matches!(r, Err(Error::Store(StoreError::Full { capacity })) if *capacity == n),
                    "a create past the capacity was not refused"
                )
            })
        }),
        Case::new("create", ops, move |_| {
            creates(growing, new, ops, |r| assert!(r.is_ok(), "a create failed"))
        }),
    ];
    let t = interleaved(rounds, &mut cases);
    println!("create refused at capacity ({n} live) beside a create:");
    t.print();
    let (ours, create) = (t.median("refused at capacity"), t.median("create"));
    println!("  refused ÷ create {:.2}x (medians)", ours / create);
    if opts.record {
        record(
            "refuse",
            Figure {
                latchkey: Some(ours),
                peer: None,
                floor: Some(create),
                how: format!(
                    "median of {rounds} interleaved rounds of {ops} (a create's store grows)"
                ),
                ..Figure::default()
            },
        );
    }
}
