//! `StoreManager<FileStore>`: load and save against a session directory.
//!
//! ```text
//! cargo bench -p latchkey --bench file_store
//! cargo bench -p latchkey --bench file_store -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! The directory is a fresh temporary one (on whatever file system holds
//! the temp dir; tmpfs makes fsync nearly free, a real disk does not, so
//! note where it ran). Sessions hold the shared three-entry payload; every
//! case asserts its result inside the timed loop.
//!
//! Cases (`group/case`):
//! - `file_store/load_10k`: `load(token)` with 10k sessions on disk, probed
//!   in a scattered order (read, decode, check; no touch: the clock is
//!   frozen).
//! - `file_store/save_full`: one changed value written back with
//!   `Durability::Full` (write, fsync, rename, fsync the directory).
//! - `file_store/save_nosync`: the same with `Durability::DangerNoSync`.

use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use latchkey::{Clock, Durability, FileStore, ManualClock, SessionManager as _, StoreManager};

mod support;
use support::{Tokens, Walk, new_session};

const N: usize = 10_000;

fn manager(dir: &std::path::Path, durability: Durability) -> StoreManager<FileStore> {
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::starting_now());
    let store = match FileStore::open(dir) {
        Ok(s) => s.with_durability(durability),
        Err(e) => panic!("cannot open the file store: {e}"),
    };
    StoreManager::new(store).with_clock(clock)
}

fn file_store(c: &mut Criterion) {
    let mut g = c.benchmark_group("file_store");
    g.sample_size(20);
    g.throughput(Throughput::Elements(1));

    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("no temp dir: {e}"),
    };
    let m = manager(dir.path(), Durability::DangerNoSync);
    let new = new_session();
    let mut tokens = Tokens::with_capacity(N, 43);
    for _ in 0..N {
        match m.create(new.clone()) {
            Ok(i) => tokens.push(i.token()),
            Err(e) => panic!("seeding failed: {e}"),
        }
    }
    let mut walk = Walk::new(N, 0x9E37_79B9_7F4A_7C15);
    g.bench_function("load_10k", |b| {
        b.iter(|| {
            let loaded = m.load(tokens.get(walk.next_index()));
            assert!(matches!(loaded, Ok(ref l) if l.session.version() == 1));
            loaded
        })
    });

    for (case, durability) in [
        ("save_full", Durability::Full),
        ("save_nosync", Durability::DangerNoSync),
    ] {
        let m = manager(dir.path(), durability);
        let mut session = match m.load(tokens.get(N / 2)) {
            Ok(l) => l.session,
            Err(e) => panic!("load failed: {e}"),
        };
        let mut n = 0u64;
        g.bench_function(case, |b| {
            b.iter(|| {
                n += 1;
                assert!(session.insert("user_id", &n).is_ok());
                let saved = m.save(&mut session);
                assert!(saved.is_ok() && !session.is_modified());
            })
        });
    }
    g.finish();
}

criterion_group!(benches, file_store);
criterion_main!(benches);
