//! `timing redis`: latchkey's `RedisStore` beside tower-sessions-redis-store
//! (fred), on the same `redis-server` (`$LATCHKEY_REDIS_URL`), in the same
//! rounds.
//!
//! - `load`, `save`: the latency of one operation from one client, one at a
//!   time (latchkey: `StoreManager::load`, then `Session::insert` +
//!   `StoreManager::save`, a versioned write; tower-sessions: `load`, then
//!   a `HashMap` insert + `save`, an unconditional `SET … XX`).
//! - `16 clients`: the load rate of 16 clients at once: latchkey from 16
//!   threads sharing one manager, whose store keeps a pool of synchronous
//!   connections (16 idle at most); tower-sessions from 16 tasks on a
//!   multi-threaded tokio runtime (a worker per CPU) sharing one fred
//!   client, which multiplexes every command over one connection; and
//!   latchkey's `AsyncRedisStore` the same way: 16 tasks on that runtime
//!   sharing one `AsyncStoreManager`, whose store multiplexes every command
//!   over one connection too (the same keys as the `RedisStore`, so the
//!   same sessions).
//!
//! Each figure is the median round: a round trip's time varies with the
//! server and the machine more than a memory-bound loop's does.

use std::str::FromStr as _;
use std::sync::{Arc, Barrier};
use std::time::Instant;

use latchkey::{AsyncRedisStore, AsyncStoreManager, RedisStore, SessionManager as _, StoreManager};
use latchkey_peers::harness::{Case, interleaved, seed_for, timed};
use latchkey_peers::results::{Figure, record};
use latchkey_peers::{Tokens, Walk, new_session, tower_record};
use serde_json::Value;
use tower_sessions_core_014::SessionStore as _;
use tower_sessions_core_014::session::{Id, Record};
use tower_sessions_redis_store::RedisStore as TowerRedis;
use tower_sessions_redis_store::fred::prelude::{ClientLike as _, Config};

use crate::Opts;

/// Concurrent clients of the throughput case.
const CLIENTS: usize = 16;

type Fred = tower_sessions_redis_store::fred::prelude::Client;

fn or_die<T, E: std::fmt::Display>(r: Result<T, E>, what: &str) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{what}: {e}"),
    }
}

/// tower-sessions 0.14's record holding the payload (the peers' fixture
/// is 0.15's; the fields are the same).
fn tower_014_record() -> Record {
    let r = tower_record();
    Record {
        id: Id::default(),
        data: r.data,
        expiry_date: r.expiry_date,
    }
}

pub(crate) fn run(opts: &Opts) {
    let Some(url) = std::env::var("LATCHKEY_REDIS_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        println!(
            "redis: skipped, LATCHKEY_REDIS_URL is not set (start a redis-server and set it, \
             e.g. redis://127.0.0.1:6379/0)"
        );
        return;
    };
    let n = opts.sizes(&[1000])[0];
    let ops = opts.ops(2000);
    let rounds = opts.rounds(9);
    let manager = Arc::new(StoreManager::new(
        or_die(RedisStore::open(&url), "RedisStore").with_prefix("latchkey-bench:"),
    ));
    let new = new_session();
    let mut tokens = Tokens::with_capacity(n, 43);
    for _ in 0..n {
        tokens.push(or_die(manager.create(new.clone()), "latchkey seeding").token());
    }
    let tokens = Arc::new(tokens);
    let mut saving = or_die(manager.load(tokens.get(0)), "load").session;

    let rt = or_die(
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
        "tokio runtime",
    );
    let client = Fred::new(
        or_die(Config::from_url(&url), "fred config"),
        None,
        None,
        None,
    );
    let tower = rt.block_on(async {
        let _connection = client.init().await;
        TowerRedis::new(client)
    });
    let tower = Arc::new(tower);
    // The async store reads the sync store's keys: the same sessions.
    let async_manager = Arc::new(
        AsyncStoreManager::new(
            or_die(AsyncRedisStore::open(&url), "AsyncRedisStore").with_prefix("latchkey-bench:"),
        )
        .with_sleep(tokio::time::sleep),
    );
    rt.block_on(async {
        let loaded = async_manager.load(tokens.get(0)).await;
        assert!(
            loaded.is_ok(),
            "AsyncRedisStore cannot load RedisStore's session"
        );
    });
    let mut tower_ids = Vec::with_capacity(n);
    rt.block_on(async {
        for _ in 0..n {
            let mut r = tower_014_record();
            or_die(tower.create(&mut r).await, "tower seeding");
            tower_ids.push(r.id);
        }
    });
    let tower_ids = Arc::new(tower_ids);
    let mut tower_saving = tower_014_record();
    tower_saving.id = tower_ids[0];
    let counter = std::cell::Cell::new(0u64);

    let (m, t, rt_ref, tw, ids, counter) = (&manager, &tokens, &rt, &tower, &tower_ids, &counter);
    let am = &async_manager;
    let mut cases = [
        Case::new("latchkey load", ops, move |r| {
            let mut w = Walk::new(n, seed_for(r as u64 * 8));
            timed(|| {
                for _ in 0..ops {
                    let loaded = m.load(t.get(w.next_index()));
                    assert!(
                        matches!(loaded, Ok(ref l) if l.reissue.is_none()),
                        "load failed"
                    );
                }
            })
        }),
        Case::new("tower load", ops, move |r| {
            let mut w = Walk::new(n, seed_for(r as u64 * 8 + 1));
            rt_ref.block_on(async {
                let start = Instant::now();
                for _ in 0..ops {
                    let id = Id::from_str(&ids[w.next_index()].to_string());
                    let Ok(id) = id else { panic!("bad id") };
                    let loaded = tw.load(&id).await;
                    assert!(
                        matches!(loaded, Ok(Some(ref r)) if r.data.len() == 3),
                        "load failed"
                    );
                }
                start.elapsed()
            })
        }),
        Case::new("latchkey save", ops, move |_| {
            timed(|| {
                for _ in 0..ops {
                    counter.set(counter.get() + 1);
                    assert!(saving.insert("user_id", &counter.get()).is_ok());
                    assert!(m.save(&mut saving).is_ok(), "save failed");
                }
            })
        }),
        Case::new("tower save", ops, move |_| {
            rt_ref.block_on(async {
                let start = Instant::now();
                for _ in 0..ops {
                    counter.set(counter.get() + 1);
                    tower_saving
                        .data
                        .insert("user_id".into(), Value::from(counter.get()));
                    assert!(tw.save(&tower_saving).await.is_ok(), "save failed");
                }
                start.elapsed()
            })
        }),
        Case::new("latchkey 16 clients", ops, move |r| {
            // The threads start before the time does, and wait for it.
            let go = Barrier::new(CLIENTS + 1);
            std::thread::scope(|s| {
                let go = &go;
                let clients: Vec<_> = (0..CLIENTS)
                    .map(|c| {
                        s.spawn(move || {
                            let mut w = Walk::new(n, seed_for((r * CLIENTS + c) as u64 + 1000));
                            go.wait();
                            for _ in 0..ops / CLIENTS as u64 {
                                let loaded = m.load(t.get(w.next_index()));
                                assert!(loaded.is_ok(), "load failed");
                            }
                        })
                    })
                    .collect();
                go.wait();
                let start = Instant::now();
                for c in clients {
                    or_die(c.join().map_err(|_| "panicked"), "a client thread");
                }
                start.elapsed()
            })
        }),
        Case::new("latchkey async 16 clients", ops, move |r| {
            rt_ref.block_on(async {
                let start = Instant::now();
                let tasks: Vec<_> = (0..CLIENTS)
                    .map(|c| {
                        let (am, t) = (Arc::clone(am), Arc::clone(t));
                        tokio::spawn(async move {
                            let mut w = Walk::new(n, seed_for((r * CLIENTS + c) as u64 + 9000));
                            for _ in 0..ops / CLIENTS as u64 {
                                let loaded = am.load(t.get(w.next_index())).await;
                                assert!(loaded.is_ok(), "load failed");
                            }
                        })
                    })
                    .collect();
                for task in tasks {
                    or_die(task.await, "a client task");
                }
                start.elapsed()
            })
        }),
        Case::new("tower 16 clients", ops, move |r| {
            rt_ref.block_on(async {
                let start = Instant::now();
                let tasks: Vec<_> = (0..CLIENTS)
                    .map(|c| {
                        let (tw, ids) = (Arc::clone(tw), Arc::clone(ids));
                        tokio::spawn(async move {
                            let mut w = Walk::new(n, seed_for((r * CLIENTS + c) as u64 + 5000));
                            for _ in 0..ops / CLIENTS as u64 {
                                let loaded = tw.load(&ids[w.next_index()]).await;
                                assert!(matches!(loaded, Ok(Some(_))), "load failed");
                            }
                        })
                    })
                    .collect();
                for task in tasks {
                    or_die(task.await, "a client task");
                }
                start.elapsed()
            })
        }),
    ];
    let timings = interleaved(rounds, &mut cases);
    println!("redis ({n} sessions each), medians:");
    timings.print();
    let med = |c: &str| timings.median(c);
    let rate = |c: &str| 1e9 / med(c);
    println!(
        "  load ÷ tower {:.2}x, save ÷ tower {:.2}x, 16 clients' rate ÷ tower's {:.2}x (sync pool), {:.2}x (async store)",
        med("latchkey load") / med("tower load"),
        med("latchkey save") / med("tower save"),
        rate("latchkey 16 clients") / rate("tower 16 clients"),
        rate("latchkey async 16 clients") / rate("tower 16 clients"),
    );
    if opts.record {
        let how = format!("median of {rounds} interleaved rounds of {ops}");
        for (case, ours, theirs) in [
            ("redis_load", med("latchkey load"), med("tower load")),
            ("redis_save", med("latchkey save"), med("tower save")),
            (
                "redis_16",
                rate("latchkey 16 clients"),
                rate("tower 16 clients"),
            ),
            (
                "redis_16_async",
                rate("latchkey async 16 clients"),
                rate("tower 16 clients"),
            ),
        ] {
            record(
                case,
                Figure {
                    latchkey: Some(ours),
                    peer: Some(theirs),
                    floor: None,
                    how: how.clone(),
                    ..Figure::default()
                },
            );
        }
    }
}
