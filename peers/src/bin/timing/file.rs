//! `timing file`: `FileStore` (durability `Full`) beside the bare
//! file-system work each operation cannot avoid, on the same disk, in the
//! same rounds.
//!
//! | case | floor |
//! |---|---|
//! | load (`Store::get`) | open + read + close of a file of the record's size |
//! | save (`Store::replace`) | write a temp file + fsync + rename + fsync the directory |
//! | rotate (`StoreManager::rotate` of a session bound to a user) | two save floors |
//!
//! fsync latency on a shared virtual disk drifts by several times within a
//! minute, so each figure is the median round, not the fastest. The
//! store starts with its 256 fan-out directories made, as a store in use
//! has them. The
//! directory is under `$TMPDIR` (default `/tmp`): point it at the disk you
//! care about, since fsync is the whole story.

use std::cell::Cell;
use std::fs::{self, File, OpenOptions};
use std::hint::black_box;
use std::io::{Read as _, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::Path;

use latchkey::{FileStore, NewSession, SessionManager as _, Store as _, StoreManager};
use latchkey_peers::harness::{Case, interleaved, timed};
use latchkey_peers::payload;
use latchkey_peers::results::{Figure, record};

use crate::Opts;

/// The floor of a durable replace: what any crash-safe file write costs.
fn floor_write(dir: &File, tmp: &Path, target: &Path, bytes: &[u8]) {
    let written = (|| -> std::io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(tmp)?;
        f.write_all(bytes)?;
        f.sync_data()?;
        drop(f);
        fs::rename(tmp, target)?;
        dir.sync_all()
    })();
    if let Err(e) = written {
        panic!("floor write: {e}");
    }
}

fn or_die<T, E: std::fmt::Display>(r: Result<T, E>, what: &str) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{what}: {e}"),
    }
}

pub(crate) fn run(opts: &Opts) {
    let rounds = opts.rounds(15);
    let (load_ops, save_ops, rotate_ops) = if opts.quick { (5, 2, 2) } else { (200, 20, 10) };
    let tmp = or_die(tempfile::tempdir(), "temporary directory");
    let manager = StoreManager::new(or_die(
        FileStore::open(tmp.path().join("store")),
        "file store",
    ));
    // A store in steady state has all 256 fan-out directories; a fresh
    // one creates each on first use and fsyncs its parent then, which
    // would add an fsync to most early rotations here (each new key lands
    // in a directory of its own).
    for dir in 0..=255u8 {
        let path = tmp
            .path()
            .join("store")
            .join("sessions")
            .join(format!("{dir:02x}"));
        or_die(
            std::fs::DirBuilder::new()
                .mode(0o700)
                .recursive(true)
                .create(path),
            "fan-out directory",
        );
    }
    let mut new = NewSession::new().with_user("alice");
    for (k, v) in payload() {
        new = or_die(new.with_value(&k, &v), "payload");
    }
    let issued = or_die(manager.create(new.clone()), "create");
    let mut rotating = or_die(manager.load(issued.token()), "load").session;
    let saving = or_die(manager.create(new), "create");
    let key = or_die(latchkey::SessionId::parse(saving.token()), "token").store_key();
    let store = manager.store();
    let record_len = or_die(fs::metadata(store.session_path(&key)), "session file").len();
    let version = Cell::new(or_die(store.get(&key), "get").map_or(0, |r| r.version));

    let floor_dir = tmp.path().join("floor");
    or_die(fs::create_dir(&floor_dir), "floor directory");
    let dir = or_die(File::open(&floor_dir), "floor directory");
    let bytes = vec![b'x'; record_len as usize];
    let (tmp_file, target) = (floor_dir.join(".f.tmp"), floor_dir.join("f"));
    or_die(fs::write(&target, &bytes), "floor file");

    let (manager, store, key, version) = (&manager, store, &key, &version);
    let (dir, tmp_file, target, bytes) = (&dir, &tmp_file, &target, &bytes);
    let mut cases = [
        Case::new("load", load_ops, move |_| {
            timed(|| {
                for _ in 0..load_ops {
                    assert!(matches!(store.get(black_box(key)), Ok(Some(_))));
                }
            })
        }),
        Case::new("load floor", load_ops, move |_| {
            timed(|| {
                for _ in 0..load_ops {
                    let mut f = or_die(File::open(black_box(target)), "open");
                    let mut buf = Vec::new();
                    or_die(f.read_to_end(&mut buf), "read");
                    assert_eq!(buf.len(), bytes.len());
                }
            })
        }),
        Case::new("save", save_ops, move |_| {
            timed(|| {
                for _ in 0..save_ops {
                    let v = version.get();
                    let Ok(Some(mut r)) = store.get(key) else {
                        panic!("the saved session is gone")
                    };
                    r.version = v + 1;
                    or_die(store.replace(key, v, &r), "replace");
                    version.set(v + 1);
                }
            })
        }),
        Case::new("save floor", save_ops, move |_| {
            timed(|| {
                for _ in 0..save_ops {
                    floor_write(dir, tmp_file, target, bytes);
                }
            })
        }),
        Case::new("rotate", rotate_ops, move |_| {
            timed(|| {
                for _ in 0..rotate_ops {
                    let fresh = manager.rotate(&mut rotating);
                    assert!(fresh.is_ok(), "rotate failed");
                }
            })
        }),
        Case::new("rotate floor", rotate_ops, move |_| {
            timed(|| {
                for _ in 0..rotate_ops {
                    floor_write(dir, tmp_file, target, bytes);
                    floor_write(dir, tmp_file, target, bytes);
                }
            })
        }),
    ];
    let t = interleaved(rounds, &mut cases);
    println!("file store ({record_len}-byte records), medians:");
    t.print();
    for (case, floor) in [
        ("load", "load floor"),
        ("save", "save floor"),
        ("rotate", "rotate floor"),
    ] {
        let (ours, least) = (t.median(case), t.median(floor));
        println!("  {case} ÷ floor {:.2}x", ours / least);
        if opts.record {
            record(
                &format!("file_{case}"),
                Figure {
                    latchkey: Some(ours),
                    peer: None,
                    floor: Some(least),
                    how: format!(
                        "median of {rounds} interleaved rounds ({} a round)",
                        t_ops(case, load_ops, save_ops, rotate_ops)
                    ),
                    ..Figure::default()
                },
            );
        }
    }
}

fn t_ops(case: &str, load: u64, save: u64, rotate: u64) -> u64 {
    match case {
        "load" => load,
        "save" => save,
        _ => rotate,
    }
}
