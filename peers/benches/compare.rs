//! latchkey beside its peers and the floors, in one criterion run: the
//! same comparisons as the `timing` binary's, with criterion's statistics
//! and HTML plots (`target/criterion/report/`). BENCHMARKS.md's table comes
//! from `timing`, whose interleaved rounds a shared machine disturbs less.
//!
//! ```text
//! cargo bench -p latchkey-peers --bench compare
//! cargo bench -p latchkey-peers --bench compare -- --warm-up-time 1 --measurement-time 3 'load_100k/'
//! ```
//!
//! Every case works on the same payload (a three-entry data map, see
//! `latchkey_peers::payload`) and asserts its result inside the timed loop,
//! so nothing is optimized away and a broken case fails loudly.
//!
//! Groups (`group/case`):
//! - `load_100k`, `load_1m`: resolve a cookie value to its session with 100k
//!   or 1M sessions live, probing them in a scattered order. `*_1t` on one
//!   thread; `*_2t` on two threads sharing one store, reported as aggregate
//!   throughput (each iteration is one load on each thread). Every walk
//!   (one per thread in `*_2t`) goes on from sample to sample, so no sample
//!   retraces the positions of the one before. Every `*_2t` case pins its
//!   two threads to a CPU each (`latchkey_peers::pin_to_cpu`), the peers'
//!   and the floors' as ours: left free, the scheduler sometimes keeps a
//!   fresh pair on one CPU for a whole sample (BENCHMARKS.md).
//!   - `latchkey_*`: `StoreManager<MemoryStore>::load(token)`, on the
//!     system clock (tower-sessions' load reads it too).
//!   - `tower_sessions_*`: `Id::from_str(cookie)` then
//!     `tower_sessions_memory_store::MemoryStore::load`, awaited on a tokio
//!     current-thread runtime (one runtime per thread).
//!   - `floor_*`: the work no server-side store can skip: SHA-256 of the
//!     32-byte ID, then a lookup in a `parking_lot::RwLock<HashMap>` copying
//!     the value out.
//! - `save_100k`: write changed data back (one value changed per save), 100k
//!   sessions live. `*_1t` on one thread; `*_2t` on two threads sharing one
//!   store, each saving a session of its own (aggregate throughput, as for
//!   load). `latchkey_*`: `Session::insert` then `StoreManager::save`;
//!   `tower_sessions_*`: one `HashMap` insert then `MemoryStore::save`.
//! - `stateless`: signed-cookie and JWT peers for the ticket manager.
//!   - `cookie_signed_add_get`: the `cookie` crate's `SignedJar` add then get
//!     of the JSON-encoded payload.
//!   - `jwt_hs256_encode`, `jwt_hs256_decode`: jsonwebtoken HS256 with the
//!     payload plus `exp`, decode validating `exp`.
//!   - `latchkey_ticket_issue`, `latchkey_ticket_verify`: latchkey's
//!     `TicketManager` `create_at` (at a given instant, as JWT's `exp` is
//!     given) and `load` (reading the system clock, as JWT's decode does to
//!     check `exp`) with the same payload (issue takes its `NewSession` by
//!     value: cloned in batches of 64 outside the timing, each ticket
//!     dropped inside it, like JWT's token).
//!   - `floor_b64url_hmac`: base64url-decode that ticket and HMAC-SHA256 its
//!     bytes (key schedule precomputed): what any HMAC ticket must do.
//! - `id`: `latchkey_generate_encode` (`SessionId::generate().to_token()`)
//!   against `floor_threadrng_b64url` (ThreadRng 32 bytes + base64url).

use std::hint::black_box;
use std::str::FromStr as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::measurement::WallTime;
use criterion::{
    BatchSize, BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main,
};
use hmac::{KeyInit as _, Mac as _};
use latchkey::{SessionId, SessionManager as _};
use latchkey_peers::{
    Apart, Walk, current_thread_runtime, floor_load, load_next, load_two_threads, new_session,
    payload, pin_to_cpu, seed_floor, seed_latchkey, seed_tower, thread_walks, tower_record,
    two_threads,
};
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::Sha256;
use tower_sessions_core::SessionStore as _;
use tower_sessions_core::session::Id;

fn load_group(c: &mut Criterion, label: &str, n: usize) {
    let mut g = c.benchmark_group(format!("load_{label}"));
    configure(&mut g);

    // Ours.
    {
        // Seeded on first use, so a filtered run skips what it does not run.
        let mut fixture = None;
        g.throughput(Throughput::Elements(1));
        let mut walk = Walk::new(n, 0x9E37_79B9_7F4A_7C15);
        g.bench_function("latchkey_1t", |b| {
            let (manager, tokens) = fixture.get_or_insert_with(|| seed_latchkey(n));
            b.iter(|| load_next(manager, tokens, &mut walk))
        });
        g.throughput(Throughput::Elements(2));
        let mut walks = thread_walks(n);
        g.bench_function("latchkey_2t", |b| {
            let (manager, tokens) = &*fixture.get_or_insert_with(|| seed_latchkey(n));
            b.iter_custom(|iters| load_two_threads(manager, tokens, &mut walks, iters, &pin_to_cpu))
        });
    }

    // tower-sessions.
    {
        let rt = current_thread_runtime();
        let mut fixture = None;
        g.throughput(Throughput::Elements(1));
        let mut walk = Walk::new(n, 0x9E37_79B9_7F4A_7C15);
        g.bench_function("tower_sessions_1t", |b| {
            let (store, tokens) = fixture.get_or_insert_with(|| seed_tower(&rt, n));
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let id = Id::from_str(tokens.get(walk.next_index()));
                        let Ok(id) = id else { panic!("bad id") };
                        let loaded = store.load(&id).await;
                        assert!(matches!(loaded, Ok(Some(ref r)) if r.data.len() == 3));
                        black_box(&loaded);
                    }
                    start.elapsed()
                })
            })
        });
        g.throughput(Throughput::Elements(2));
        // Each thread on its own runtime, made once, with its own walk.
        let mut threads =
            thread_walks(n).map(|Apart(walk)| Apart((current_thread_runtime(), walk)));
        g.bench_function("tower_sessions_2t", |b| {
            let (store, tokens) = &*fixture.get_or_insert_with(|| seed_tower(&rt, n));
            b.iter_custom(|iters| {
                two_threads(&mut threads, iters, &pin_to_cpu, |(rt, walk), iters| {
                    rt.block_on(async {
                        for _ in 0..iters {
                            let id = Id::from_str(tokens.get(walk.next_index()));
                            let Ok(id) = id else { panic!("bad id") };
                            let loaded = store.load(&id).await;
                            assert!(matches!(loaded, Ok(Some(ref r)) if r.data.len() == 3));
                            black_box(&loaded);
                        }
                    })
                })
            })
        });
    }

    // The floor.
    {
        let mut fixture = None;
        g.throughput(Throughput::Elements(1));
        let mut walk = Walk::new(n, 0x9E37_79B9_7F4A_7C15);
        g.bench_function("floor_1t", |b| {
            let (map, ids) = fixture.get_or_insert_with(|| seed_floor(n));
            b.iter(|| {
                let v = floor_load(map, &ids[walk.next_index()]);
                assert!(v.0[0] < n as u64);
                v
            })
        });
        g.throughput(Throughput::Elements(2));
        let mut walks = thread_walks(n);
        g.bench_function("floor_2t", |b| {
            let (map, ids) = &*fixture.get_or_insert_with(|| seed_floor(n));
            b.iter_custom(|iters| {
                two_threads(&mut walks, iters, &pin_to_cpu, |walk, iters| {
                    for _ in 0..iters {
                        let v = floor_load(map, &ids[walk.next_index()]);
                        assert!(v.0[0] < n as u64);
                        black_box(v);
                    }
                })
            })
        });
    }
    g.finish();
}

fn load_100k(c: &mut Criterion) {
    load_group(c, "100k", 100_000);
}

fn load_1m(c: &mut Criterion) {
    load_group(c, "1m", 1_000_000);
}

fn save_100k(c: &mut Criterion) {
    const N: usize = 100_000;
    let mut g = c.benchmark_group("save_100k");
    configure(&mut g);
    // Each thread saves a session of its own (thread `t` the one at
    // `N / 2 + t`), its counter going on from run to run so every save
    // changes the value.
    let counters = [AtomicU64::new(0), AtomicU64::new(0)];
    {
        let (manager, tokens) = seed_latchkey(N);
        // `iters` saves by thread `t`, timed once its session is loaded.
        let save_many = |t: usize, iters: u64| {
            let mut session = match manager.load(tokens.get(N / 2 + t)) {
                Ok(l) => l.session,
                Err(e) => panic!("load failed: {e}"),
            };
            let start = Instant::now();
            for _ in 0..iters {
                let n = counters[t].fetch_add(1, Ordering::Relaxed) + 1;
                let changed = session.insert("user_id", &n);
                assert!(changed.is_ok());
                let saved = manager.save(&mut session);
                assert!(saved.is_ok() && !session.is_modified());
            }
            start.elapsed()
        };
        g.throughput(Throughput::Elements(1));
        g.bench_function("latchkey_1t", |b| {
            b.iter_custom(|iters| save_many(0, iters))
        });
        g.throughput(Throughput::Elements(2));
        g.bench_function("latchkey_2t", |b| {
            b.iter_custom(|iters| {
                two_threads(
                    &mut [Apart(0), Apart(1)],
                    iters,
                    &pin_to_cpu,
                    |&mut t, iters| {
                        save_many(t, iters);
                    },
                )
            })
        });
    }
    {
        let rt = current_thread_runtime();
        let (store, tokens) = seed_tower(&rt, N);
        // As for latchkey, on a current-thread runtime per thread.
        let save_many = |rt: &tokio::runtime::Runtime, t: usize, iters: u64| {
            let mut record = tower_record();
            record.id = match Id::from_str(tokens.get(N / 2 + t)) {
                Ok(id) => id,
                Err(_) => panic!("bad id"),
            };
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let n = counters[t].fetch_add(1, Ordering::Relaxed) + 1;
                    record.data.insert("user_id".into(), Value::from(n));
                    let saved = store.save(&record).await;
                    assert!(saved.is_ok());
                }
                start.elapsed()
            })
        };
        g.throughput(Throughput::Elements(1));
        g.bench_function("tower_sessions_1t", |b| {
            b.iter_custom(|iters| save_many(&rt, 0, iters))
        });
        g.throughput(Throughput::Elements(2));
        // Each thread on its own runtime, made once.
        let mut threads = [0, 1].map(|t| Apart((current_thread_runtime(), t)));
        g.bench_function("tower_sessions_2t", |b| {
            b.iter_custom(|iters| {
                two_threads(&mut threads, iters, &pin_to_cpu, |(rt, t), iters| {
                    save_many(rt, *t, iters);
                })
            })
        });
    }
    g.finish();
}

/// JWT claims: the payload and an expiry.
#[derive(Serialize, Deserialize)]
struct Claims {
    exp: u64,
    data: Map<String, Value>,
}

fn stateless(c: &mut Criterion) {
    let mut g = c.benchmark_group("stateless");
    configure(&mut g);
    g.throughput(Throughput::Elements(1));
    let secret = [7u8; 64];

    let key = cookie::Key::from(&secret);
    let value = Value::Object(payload()).to_string();
    g.bench_function("cookie_signed_add_get", |b| {
        b.iter(|| {
            let mut jar = cookie::CookieJar::new();
            jar.signed_mut(&key)
                .add(cookie::Cookie::new("session", value.clone()));
            let got = jar.signed(&key).get("session");
            assert!(matches!(got, Some(ref c) if c.value() == value));
            got
        })
    });

    let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    let enc = jsonwebtoken::EncodingKey::from_secret(&secret);
    let dec = jsonwebtoken::DecodingKey::from_secret(&secret);
    let exp = jsonwebtoken::get_current_timestamp() + 3600;
    let claims = Claims {
        exp,
        data: payload(),
    };
    g.bench_function("jwt_hs256_encode", |b| {
        b.iter(|| {
            let token = jsonwebtoken::encode(&header, &claims, &enc);
            assert!(matches!(token, Ok(ref t) if t.len() > 100));
            token
        })
    });
    let token = match jsonwebtoken::encode(&header, &claims, &enc) {
        Ok(t) => t,
        Err(e) => panic!("encode failed: {e}"),
    };
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.validate_exp = true;
    g.bench_function("jwt_hs256_decode", |b| {
        b.iter(|| {
            let data = jsonwebtoken::decode::<Claims>(&token, &dec, &validation);
            assert!(matches!(data, Ok(ref d) if d.claims.exp == exp && d.claims.data.len() == 3));
            black_box(&data);
        })
    });

    // Ours: a stateless ticket carrying the same payload.
    let Ok(ticket_key) = latchkey::TicketKey::try_from(&secret[..32]) else {
        panic!("ticket key")
    };
    let tickets =
        match latchkey::TicketManager::new("session", latchkey::KeyRing::new(1, ticket_key)) {
            Ok(m) => m,
            Err(e) => panic!("ticket manager: {e}"),
        };
    let now = latchkey::Timestamp::from_unix_millis(jsonwebtoken::get_current_timestamp() * 1000);
    let new = new_session();
    g.bench_function("latchkey_ticket_issue", |b| {
        b.iter_batched(
            || new.clone(),
            |n| {
                let issued = tickets.create_at(n, now);
                assert!(matches!(issued, Ok(ref i) if i.token().len() > 100));
                // Dropped here, inside the timed loop, as the JWT cases'
                // tokens are. Returned, criterion would keep every ticket of
                // a batch alive until the batch ends and time the heap
                // growth (fresh pages faulted in, then trimmed) as part of
                // issuing; and large batches would feed it inputs cloned
                // long before, out of cache, where JWT encodes one hot
                // claims struct. Batches of 64 keep inputs as fresh as a
                // server's, which builds the NewSession just before issuing.
                drop(black_box(issued));
            },
            BatchSize::NumIterations(64),
        )
    });
    let ticket = match tickets.create_at(new.clone(), now) {
        Ok(i) => i.token().to_owned(),
        Err(e) => panic!("issue failed: {e}"),
    };
    g.bench_function("latchkey_ticket_verify", |b| {
        b.iter(|| {
            // `load` reads the system clock, as `jsonwebtoken::decode` does
            // to validate `exp`.
            let loaded = tickets.load(&ticket);
            assert!(matches!(loaded, Ok(ref l) if l.reissue.is_none() && !l.session.is_modified()));
            // Kept by reference and dropped in place, as every load case's
            // result is (`latchkey-bench-support`): returned, the 352-byte result
            // would be moved once more by the harness.
            black_box(&loaded);
        })
    });

    // The floor under ticket verify: base64url-decode the same ticket body
    // (past its 4-character version prefix) and HMAC-SHA256 the bytes with
    // a key schedule computed once.
    let body = &ticket[4..];
    let keyed = match hmac::Hmac::<Sha256>::new_from_slice(&secret[..32]) {
        Ok(m) => m,
        Err(_) => panic!("hmac key"),
    };
    g.bench_function("floor_b64url_hmac", |b| {
        let mut buf = vec![0u8; body.len()];
        b.iter(|| {
            let decoded = URL_SAFE_NO_PAD.decode_slice(body.as_bytes(), &mut buf);
            let Ok(n) = decoded else { panic!("base64url") };
            let mut mac = keyed.clone();
            mac.update(&buf[..n]);
            mac.finalize().into_bytes()
        })
    });
    g.finish();
}

fn id(c: &mut Criterion) {
    let mut g = c.benchmark_group("id");
    configure(&mut g);
    g.throughput(Throughput::Elements(1));
    g.bench_function("latchkey_generate_encode", |b| {
        b.iter(|| {
            let token = SessionId::generate().to_token();
            assert_eq!(token.len(), 43);
            token
        })
    });
    g.bench_function("floor_threadrng_b64url", |b| {
        b.iter(|| {
            let mut bytes = [0u8; 32];
            rand::rng().fill_bytes(&mut bytes);
            let token = URL_SAFE_NO_PAD.encode(bytes);
            assert_eq!(token.len(), 43);
            token
        })
    });
    g.finish();
}

fn configure(g: &mut BenchmarkGroup<'_, WallTime>) {
    // Defaults sized for a shared 2-core machine; override on the command
    // line (`--measurement-time`, `--sample-size`).
    g.sample_size(30);
}

criterion_group!(benches, id, stateless, save_100k, load_100k, load_1m);
criterion_main!(benches);
