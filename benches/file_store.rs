//! FileStore's load, touch, save and rotate, each beside its floor: the bare
//! file-system work the operation cannot avoid, measured in the same run on
//! the same disk, so the report reads as ratios that hold across machines.
//!
//! | bench | what it measures |
//! |---|---|
//! | `load/floor` | open + read + close of a 200-byte file |
//! | `load/file_store` | `Store::get` of one session (~300-byte file) |
//! | `save/floor` | write a temp file + fsync + rename + fsync the directory |
//! | `save/file_store` | `Store::replace` at the current version |
//! | `touch/floor` | write a temp file + fsync + rename (touch skips the directory fsync) |
//! | `touch/file_store` | `Store::touch` with a later activity stamp |
//! | `rotate/floor` | two `save/floor` writes (the new record, then the retired one) |
//! | `rotate/file_store` | `Store::rotate` onto a fresh key |
//!
//! Run: `cargo bench --bench file_store -- --warm-up-time 1 --measurement-time 3`.
//! The temporary directory is under `$TMPDIR` (default `/tmp`): point it at
//! the disk you care about, since fsync cost is the whole story.
#![cfg(unix)]

use std::cell::Cell;
use std::fs::{self, File, OpenOptions};
use std::hint::black_box;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use latchkey::store::{LiveSession, Record, RecordState};
use latchkey::{FileStore, SessionData, SessionId, Store, StoreKey, Timestamp};

const START: Timestamp = Timestamp::from_unix_millis(1_795_392_000_000);

fn record(version: u64) -> Record {
    let mut data = serde_json::Map::new();
    data.insert("theme".into(), "dark".into());
    Record {
        version,
        expires_at: START.saturating_add(Duration::from_secs(1800)),
        state: RecordState::Live(LiveSession {
            created_at: START,
            last_seen: START,
            auth_at: Some(START),
            absolute_deadline: START.saturating_add(Duration::from_secs(43_200)),
            user: Some("alice".into()),
            device: None,
            data: SessionData::from_map(data),
        }),
    }
}

fn fresh_key() -> StoreKey {
    SessionId::generate().store_key()
}

/// Runs `floor` and `op` alternately `n` times and prints both medians and
/// their ratio. On a shared disk, fsync latency drifts by several times
/// within a minute; interleaving exposes both to the same conditions, so
/// this ratio is the figure to trust when the criterion runs disagree.
fn paired(name: &str, n: usize, mut floor: impl FnMut(), mut op: impl FnMut()) {
    let (mut f, mut o) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n {
        let t = Instant::now();
        floor();
        f.push(t.elapsed());
        let t = Instant::now();
        op();
        o.push(t.elapsed());
    }
    f.sort();
    o.sort();
    let (fm, om) = (f[n / 2], o[n / 2]);
    eprintln!(
        "paired {name}: floor {fm:?}, file_store {om:?}, ratio {:.2} (medians of {n})",
        om.as_secs_f64() / fm.as_secs_f64()
    );
}

/// The floor of a durable replace: what any crash-safe file write costs.
fn floor_write(dir: &File, tmp: &Path, target: &Path, bytes: &[u8], sync_dir: bool) {
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(tmp)
        .unwrap();
    f.write_all(bytes).unwrap();
    f.sync_data().unwrap();
    drop(f);
    fs::rename(tmp, target).unwrap();
    if sync_dir {
        dir.sync_all().unwrap();
    }
}

fn benches(c: &mut Criterion) {
    let tmp = tempfile::tempdir().unwrap();
    let store = FileStore::open(tmp.path().join("store")).unwrap();
    let floor_dir = tmp.path().join("floor");
    fs::create_dir(&floor_dir).unwrap();
    let dir_handle = File::open(&floor_dir).unwrap();
    let payload = vec![b'x'; 200];
    let (tmp_file, target) = (floor_dir.join(".f.tmp"), floor_dir.join("f"));
    fs::write(&target, &payload).unwrap();

    let key = fresh_key();
    store.insert(&key, &record(1)).unwrap();
    let file_len = fs::metadata(store.session_path(&key)).unwrap().len();
    eprintln!("session file: {file_len} bytes");

    // Paired medians first (see `paired`).
    let version = Cell::new(store.get(&key).unwrap().unwrap().version);
    let stamp = Cell::new(START);
    let rotating = Cell::new((key, version.get()));
    let load_floor = || {
        let mut f = File::open(black_box(&target)).unwrap();
        let mut buf = Vec::new();
        f.read_to_end(&mut buf).unwrap();
        assert_eq!(buf.len(), 200);
    };
    let load_store = || assert!(store.get(black_box(&key)).unwrap().is_some());
    let save_floor = || floor_write(&dir_handle, &tmp_file, &target, &payload, true);
    let save_store = || {
        let v = version.get();
        store.replace(&key, v, &record(v + 1)).unwrap();
        version.set(v + 1);
    };
    let touch_floor = || floor_write(&dir_handle, &tmp_file, &target, &payload, false);
    let touch_store = || {
        let t = stamp.get().saturating_add(Duration::from_millis(1));
        stamp.set(t);
        assert!(store.touch(&key, t, t).unwrap());
    };
    let rotate_floor = || {
        floor_write(&dir_handle, &tmp_file, &target, &payload, true);
        floor_write(&dir_handle, &tmp_file, &target, &payload, true);
    };
    let rotate_store = || {
        let (current, v) = rotating.get();
        let new = fresh_key();
        let retired = Record {
            version: v + 1,
            expires_at: START.saturating_add(Duration::from_secs(60)),
            state: RecordState::Ended {
                reason: latchkey::EndReason::Logout,
                at: START,
            },
        };
        store
            .rotate(&current, v, &retired, &new, &record(1))
            .unwrap();
        rotating.set((new, 1));
    };
    paired("load", 2000, load_floor, load_store);
    paired("save", 400, save_floor, save_store);
    paired("touch", 400, touch_floor, touch_store);
    // The first rotation moves `key` away: the criterion benches below use
    // a second session.
    rotating.set((key, version.get()));
    paired("rotate", 100, rotate_floor, rotate_store);
    let key = fresh_key();
    store.insert(&key, &record(1)).unwrap();

    let mut g = c.benchmark_group("load");
    g.bench_function("floor", |b| {
        b.iter(|| {
            let mut f = File::open(black_box(&target)).unwrap();
            let mut buf = Vec::new();
            f.read_to_end(&mut buf).unwrap();
            assert_eq!(buf.len(), 200);
        })
    });
    g.bench_function("file_store", |b| {
        b.iter(|| {
            let r = store.get(black_box(&key)).unwrap();
            assert!(r.is_some());
        })
    });
    g.finish();

    let mut g = c.benchmark_group("save");
    g.bench_function("floor", |b| {
        b.iter(|| floor_write(&dir_handle, &tmp_file, &target, &payload, true))
    });
    let mut version = store.get(&key).unwrap().unwrap().version;
    g.bench_function("file_store", |b| {
        b.iter(|| {
            store.replace(&key, version, &record(version + 1)).unwrap();
            version += 1;
        })
    });
    g.finish();

    let mut g = c.benchmark_group("touch");
    g.bench_function("floor", |b| {
        b.iter(|| floor_write(&dir_handle, &tmp_file, &target, &payload, false))
    });
    let mut t = START;
    g.bench_function("file_store", |b| {
        b.iter(|| {
            t = t.saturating_add(Duration::from_millis(1));
            assert!(store.touch(&key, t, t).unwrap());
        })
    });
    g.finish();

    let mut g = c.benchmark_group("rotate");
    g.bench_function("floor", |b| {
        b.iter(|| {
            floor_write(&dir_handle, &tmp_file, &target, &payload, true);
            floor_write(&dir_handle, &tmp_file, &target, &payload, true);
        })
    });
    let mut current = key;
    let mut version = store.get(&key).unwrap().unwrap().version;
    g.bench_function("file_store", |b| {
        b.iter(|| {
            let new = fresh_key();
            let mut retired = record(version + 1);
            retired.state = RecordState::Ended {
                reason: latchkey::EndReason::Logout,
                at: START,
            };
            store
                .rotate(&current, version, &retired, &new, &record(1))
                .unwrap();
            current = new;
            version = 1;
        })
    });
    g.finish();
}

criterion_group!(file_store, benches);
criterion_main!(file_store);
