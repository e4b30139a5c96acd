//! `StoreManager<MemoryStore>`: load, create, rotate and save.
//!
//! ```text
//! cargo bench -p latchkey --bench manager
//! cargo bench -p latchkey --bench manager -- --warm-up-time 1 --measurement-time 3 'load_100k/'
//! ```
//!
//! Every session holds the shared three-entry payload (`latchkey_bench_support::payload`);
//! every case asserts its result inside the timed loop.
//!
//! Cases (`group/case`):
//! - `load_100k/1t`, `load_1m/1t`: `load(token)` with 100k or 1M sessions
//!   live, probed in a scattered order on one thread.
//! - `load_100k/2t`, `load_1m/2t`: the same on two threads sharing the
//!   manager; throughput is the aggregate (two loads per iteration). The
//!   threads run where the scheduler puts them; `latchkey-peers`' `compare`
//!   pins each to a CPU of its own (BENCHMARKS.md).
//! - `load_100k/store_get`: `MemoryStore::get` alone (the store's share).
//! - `manager/create`: a new session with the payload.
//! - `manager/rotate`: load-free rotation of one session, again and again
//!   (each rotation leaves a retired record, as in production).
//! - `manager/save`: one changed value written back.
//! - `capacity/create_refused`: a create refused by a memory store at its
//!   capacity of 100k live sessions (compare with `manager/create`).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use latchkey::{SessionManager as _, Store as _};

use latchkey_bench_support::{
    Walk, load_next, load_two_threads, new_session, seed_latchkey, thread_walks,
};

fn load(c: &mut Criterion, label: &str, n: usize) {
    let mut g = c.benchmark_group(format!("load_{label}"));
    g.sample_size(30);
    // Seeded on first use, so a filtered run skips what it does not run.
    let mut fixture = None;
    g.throughput(Throughput::Elements(1));
    let mut walk = Walk::new(n, 0x9E37_79B9_7F4A_7C15);
    g.bench_function("1t", |b| {
        let (manager, tokens) = fixture.get_or_insert_with(|| seed_latchkey(n));
        b.iter(|| load_next(manager, tokens, &mut walk))
    });
    g.throughput(Throughput::Elements(2));
    let mut walks = thread_walks(n);
    g.bench_function("2t", |b| {
        let (manager, tokens) = &*fixture.get_or_insert_with(|| seed_latchkey(n));
        // Free: the scheduler places the two threads (see the module docs).
        b.iter_custom(|iters| load_two_threads(manager, tokens, &mut walks, iters, &|_| {}))
    });
    g.throughput(Throughput::Elements(1));
    g.bench_function("store_get", |b| {
        let (manager, tokens) = &*fixture.get_or_insert_with(|| seed_latchkey(n));
        let keys: Vec<_> = (0..n)
            .map(|i| match latchkey::SessionId::parse(tokens.get(i)) {
                Ok(id) => id.store_key(),
                Err(e) => panic!("bad token: {e}"),
            })
            .collect();
        b.iter(|| {
            let record = manager.store().get(&keys[walk.next_index()]);
            assert!(matches!(record, Ok(Some(ref r)) if r.version == 1));
            record
        })
    });
    g.finish();
}

fn load_100k(c: &mut Criterion) {
    load(c, "100k", 100_000);
}

fn load_1m(c: &mut Criterion) {
    load(c, "1m", 1_000_000);
}

fn manager(c: &mut Criterion) {
    let mut g = c.benchmark_group("manager");
    g.throughput(Throughput::Elements(1));
    // 100k live sessions, so the maps are not trivially small.
    let (manager, tokens) = seed_latchkey(100_000);
    let new = new_session();
    g.bench_function("create", |b| {
        b.iter(|| {
            let issued = manager.create(new.clone());
            assert!(matches!(issued, Ok(ref i) if i.token().len() == 43));
            issued
        })
    });
    let mut session = match manager.load(tokens.get(7)) {
        Ok(l) => l.session,
        Err(e) => panic!("load failed: {e}"),
    };
    g.bench_function("rotate", |b| {
        b.iter(|| {
            let issued = manager.rotate(&mut session);
            assert!(matches!(issued, Ok(ref i) if i.token().len() == 43));
            issued
        })
    });
    let mut session = match manager.load(tokens.get(8)) {
        Ok(l) => l.session,
        Err(e) => panic!("load failed: {e}"),
    };
    let mut n = 0u64;
    g.bench_function("save", |b| {
        b.iter(|| {
            n += 1;
            assert!(session.insert("user_id", &n).is_ok());
            let saved = manager.save(&mut session);
            assert!(saved.is_ok() && !session.is_modified());
        })
    });
    g.finish();
}

fn capacity(c: &mut Criterion) {
    use latchkey::{Error, MemoryStore, StoreError, StoreManager};
    let mut g = c.benchmark_group("capacity");
    g.throughput(Throughput::Elements(1));
    let n = 100_000;
    let manager = StoreManager::new(MemoryStore::new().with_capacity_limit(n));
    let new = new_session();
    for _ in 0..n {
        assert!(manager.create(new.clone()).is_ok());
    }
    g.bench_function("create_refused", |b| {
        b.iter(|| {
            let refused = manager.create(new.clone());
            assert!(matches!(
                refused,
                Err(Error::Store(StoreError::Full { capacity })) if capacity == n
            ));
            refused
        })
    });
    g.finish();
}

criterion_group!(benches, manager, capacity, load_100k, load_1m);
criterion_main!(benches);
