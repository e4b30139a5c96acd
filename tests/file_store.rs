//! FileStore against the shared store conformance suite, plus what only a
//! directory on disk can get wrong: crashes (a child process SIGKILLed in
//! the middle of writes, again and again), several processes updating the
//! same sessions, corrupt files, permissions and failed writes.
//!
//! The multi-process tests re-run this test binary as the child, selecting
//! the `child_process_entry` test and passing its job in environment
//! variables.
#![cfg(unix)]

mod conformance;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use conformance::store_conformance;
use latchkey::store::file::{DecodeError, decode};
use latchkey::store::{LiveSession, Record, RecordState};
use latchkey::{
    Durability, FileStore, ManualClock, NewSession, SessionData, SessionId, SessionManager, Store,
    StoreError, StoreKey, StoreManager, Timestamp,
};
use tempfile::TempDir;

/// A FileStore that owns its temporary directory, deleted on drop.
#[derive(Debug)]
struct TempFileStore {
    store: FileStore,
    _dir: TempDir,
}

impl TempFileStore {
    fn new() -> TempFileStore {
        let dir = tempfile::tempdir().unwrap();
        TempFileStore {
            store: FileStore::open(dir.path().join("store")).unwrap(),
            _dir: dir,
        }
    }
}

impl Store for TempFileStore {
    conformance::forward_store!(store);
}

store_conformance!(file, |_clock: &ManualClock| TempFileStore::new());

store_conformance!(file_boxed_dyn, |_clock: &ManualClock| -> Box<dyn Store> {
    Box::new(TempFileStore::new())
});

// ---------------------------------------------------------------- helpers

const START: Timestamp = conformance::START;

/// A live record whose data carries its own version as `n`, padded to a
/// length that changes with the version, so a torn or mixed file cannot
/// pass as valid.
fn counted(version: u64, user: Option<&str>) -> Record {
    let mut data = serde_json::Map::new();
    data.insert("n".into(), serde_json::json!(version));
    data.insert(
        "pad".into(),
        serde_json::json!("x".repeat((version % 97) as usize * 13)),
    );
    Record {
        version,
        expires_at: START.saturating_add(Duration::from_secs(3600)),
        state: RecordState::Live(LiveSession {
            created_at: START,
            last_seen: START,
            auth_at: None,
            absolute_deadline: START.saturating_add(Duration::from_secs(7200)),
            user: user.map(str::to_owned),
            device: None,
            data: SessionData::from_map(data),
        }),
    }
}

/// The `n` a record's data carries.
fn n_of(r: &Record) -> u64 {
    match &r.state {
        RecordState::Live(s) => {
            let v: serde_json::Value = serde_json::from_str(&s.data.encoded()).unwrap();
            v["n"].as_u64().unwrap()
        }
        other => panic!("expected a live record, got {other:?}"),
    }
}

/// A fixed key for slot `i`, the same in parent and child.
fn fixed_key(i: u64) -> StoreKey {
    let mut b = [0u8; 32];
    b[..8].copy_from_slice(&i.to_le_bytes());
    // Spread over shards: the first byte picks the shard directory.
    b[0] = (i as u8).wrapping_mul(37);
    b[31] = 0x5a;
    StoreKey::from_bytes(b)
}

/// Every `*.session` file under the store, decoded: panics on any that
/// does not decode, which is the point.
fn decode_all(dir: &Path) -> HashMap<String, Record> {
    let mut out = HashMap::new();
    let sessions = dir.join("sessions");
    for shard in std::fs::read_dir(&sessions).unwrap() {
        for f in std::fs::read_dir(shard.unwrap().path()).unwrap() {
            let f = f.unwrap();
            let name = f.file_name().into_string().unwrap();
            if name.ends_with(".session") {
                let bytes = std::fs::read(f.path()).unwrap();
                let r = decode(&bytes)
                    .unwrap_or_else(|e| panic!("{name} does not decode ({e}): a torn write"));
                out.insert(name, r);
            }
        }
    }
    out
}

fn spawn_child(job: &str, dir: &Path, arg: u64) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_process_entry",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("LATCHKEY_TEST_CHILD", job)
        .env("LATCHKEY_TEST_DIR", dir)
        .env("LATCHKEY_TEST_ARG", arg.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// Waits until the child prints `ready`.
fn await_ready(child: &mut Child) -> BufReader<std::process::ChildStdout> {
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "child exited early");
        // The harness prints "test child_process_entry ... " first.
        if line.trim_end().ends_with("ready") {
            return out;
        }
    }
}

/// A tiny deterministic generator (xorshift), so children need no RNG
/// dependency and runs can be replayed from the seed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

// ------------------------------------------------------- child processes

/// Not a test on its own: when run with `LATCHKEY_TEST_CHILD` set, this is
/// the child process of the multi-process tests.
#[test]
fn child_process_entry() {
    let Ok(job) = std::env::var("LATCHKEY_TEST_CHILD") else {
        return;
    };
    let dir = PathBuf::from(std::env::var("LATCHKEY_TEST_DIR").unwrap());
    let arg: u64 = std::env::var("LATCHKEY_TEST_ARG").unwrap().parse().unwrap();
    let store = FileStore::open(&dir).unwrap();
    println!("ready");
    match job.as_str() {
        "crash" => crash_writer(&store, arg),
        "increment" => increment_worker(&store, arg),
        "rotate" => rotate_worker(&store, arg),
        "manager_rotate" => manager_rotate_worker(store, &dir),
        "hold_lock" => hold_lock_worker(&dir, arg),
        other => panic!("unknown child job {other}"),
    }
}

/// Takes session lock `s-ARG` of the store as any process sharing it
/// would, prints `locked`, and keeps it until killed.
fn hold_lock_worker(dir: &Path, shard: u64) {
    let lock = std::fs::File::open(dir.join("locks").join(format!("s-{shard:02x}"))).unwrap();
    lock.lock().unwrap();
    println!("locked");
    loop {
        std::thread::park();
    }
}

const CRASH_KEYS: u64 = 16;

/// Writes forever (until killed): versioned replaces, touches, and
/// insert/rotate/remove cycles of scratch sessions.
fn crash_writer(store: &FileStore, seed: u64) {
    let mut rng = Rng(seed | 1);
    loop {
        let i = rng.next() % CRASH_KEYS;
        let key = fixed_key(i);
        match rng.next() % 8 {
            0 => {
                let r = store.get(&key).unwrap().unwrap();
                let later = START.saturating_add(Duration::from_millis(rng.next() % 1000));
                store.touch(&key, later, r.expires_at).unwrap();
            }
            1 => {
                let a = SessionId::generate().store_key();
                let b = SessionId::generate().store_key();
                store.insert(&a, &counted(1, Some("carol"))).unwrap();
                store
                    .rotate(&a, 1, &counted(2, None), &b, &counted(1, Some("carol")))
                    .unwrap();
                store.remove(&a).unwrap();
                store.remove(&b).unwrap();
            }
            _ => {
                let r = store.get(&key).unwrap().unwrap();
                let user = if r.version.is_multiple_of(2) {
                    Some("bob")
                } else {
                    None
                };
                store
                    .replace(&key, r.version, &counted(r.version + 1, user))
                    .unwrap();
            }
        }
    }
}

/// Adds 1 to the counter session `arg` times (retrying on conflict) and
/// creates `arg / 10` sessions for the shared user "dave".
fn increment_worker(store: &FileStore, times: u64) {
    let key = fixed_key(0);
    for i in 0..times {
        loop {
            let r = store.get(&key).unwrap().unwrap();
            match store.replace(&key, r.version, &counted(r.version + 1, None)) {
                Ok(()) => break,
                Err(StoreError::Conflict) => continue,
                Err(e) => panic!("{e}"),
            }
        }
        if i.is_multiple_of(10) {
            store
                .insert(
                    &SessionId::generate().store_key(),
                    &counted(1, Some("dave")),
                )
                .unwrap();
        }
    }
}

/// Rotates the head of the chain starting at `fixed_key(1)` until it has
/// won `times` rotations; losing a race (Conflict, or Exists never) just
/// means following the chain again.
fn rotate_worker(store: &FileStore, times: u64) {
    let sealed: latchkey::store::SealedId =
        serde_json::from_str(&format!("\"{}\"", "A".repeat(43))).unwrap();
    let mut won = 0;
    while won < times {
        let mut k = fixed_key(1);
        // Another process may be between a rotation's two writes: its
        // successor is not there yet. Walk again from the start.
        let Some((head, r)) = (loop {
            let Some(r) = store.get(&k).unwrap() else {
                break None;
            };
            match &r.state {
                RecordState::Rotated { successor, .. } => k = *successor,
                _ => break Some((k, r)),
            }
        }) else {
            continue;
        };
        let new = SessionId::generate().store_key();
        let retired = Record {
            version: r.version + 1,
            expires_at: r.expires_at,
            state: RecordState::Rotated {
                successor: new,
                sealed_successor: Some(sealed.clone()),
                at: START,
                grace_until: START,
                privilege_change: false,
                pending: None,
            },
        };
        match store.rotate(&head, r.version, &retired, &new, &counted(1, Some("zed"))) {
            Ok(()) => won += 1,
            Err(StoreError::Conflict) => {}
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn two_processes_rotating_one_session_never_fork_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let store = FileStore::open(&dir).unwrap();
    store
        .insert(&fixed_key(1), &counted(0, Some("zed")))
        .unwrap();
    const EACH: u64 = 40;
    let mut children: Vec<Child> = (0..2).map(|_| spawn_child("rotate", &dir, EACH)).collect();
    for c in &mut children {
        let status = c.wait().unwrap();
        assert!(status.success(), "a child failed: {status}");
    }
    // Walk the chain: every rotation that succeeded is one link.
    let mut k = fixed_key(1);
    let mut links = 0;
    let head = loop {
        match store.get(&k).unwrap().unwrap().state {
            RecordState::Rotated { successor, .. } => {
                links += 1;
                k = successor;
            }
            _ => break k,
        }
    };
    assert_eq!(links, 2 * EACH, "a rotation was lost or forked");
    // A fork would leave two live successors of one key, both zed's.
    let live: Vec<_> = store.sessions_of("zed").unwrap();
    assert_eq!(live.len(), 1, "the session forked");
    assert_eq!(live[0].0, head);
}

/// Rotates one user-bound session through a `StoreManager` until killed,
/// printing each new token once its rotation has returned. It starts from
/// the token in the file `token` beside the store directory.
fn manager_rotate_worker(store: FileStore, dir: &Path) {
    let manager = StoreManager::new(store);
    let mut token = std::fs::read_to_string(dir.with_file_name("token")).unwrap();
    loop {
        let mut session = manager.load(&token).unwrap().session;
        token = manager.rotate(&mut session).unwrap().token().to_owned();
        println!("token {token}");
    }
}

// ------------------------------------------------------------ crash tests

/// SIGKILLs a child that rotates a session through the manager, again and
/// again, and checks after each kill that the session is exactly one: the
/// last token the child reported still resolves (to the session or, within
/// the grace window, to its successor), and the user has exactly one live
/// session: no ghost left beside the new one, none lost.
#[test]
fn sigkill_mid_rotation_leaves_exactly_one_live_session() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let manager = StoreManager::new(FileStore::open(&dir).unwrap());
    let mut token = manager
        .create(NewSession::new().with_user("zed"))
        .unwrap()
        .token()
        .to_owned();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let (mut rotations, mut mid_rotation) = (0usize, 0usize);
    const KILLS: usize = 80;
    for kill in 0..KILLS {
        std::fs::write(tmp.path().join("token"), &token).unwrap();
        let mut child = spawn_child("manager_rotate", &dir, 0);
        let mut out = await_ready(&mut child);
        // Long enough for a few rotations (each fsyncs twice), short and
        // random enough to land inside one often.
        std::thread::sleep(Duration::from_micros(5_000 + rng.next() % 40_000));
        child.kill().unwrap();
        child.wait().unwrap();
        let mut line = String::new();
        while out.read_line(&mut line).unwrap_or(0) > 0 {
            if let Some(t) = line.trim_end().strip_prefix("token ") {
                token = t.to_owned();
                rotations += 1;
            }
            line.clear();
        }
        // A kill between a rotation's two writes leaves the last token's
        // record retired with its successor pending and unwritten.
        let key = SessionId::parse(&token).unwrap().store_key();
        if let Some(Record {
            state:
                RecordState::Rotated {
                    successor,
                    pending: Some(_),
                    ..
                },
            ..
        }) = manager.store().get(&key).unwrap()
            && manager.store().get(&successor).unwrap().is_none()
        {
            mid_rotation += 1;
        }
        let loaded = manager
            .load(&token)
            .unwrap_or_else(|e| panic!("kill {kill}: the last token no longer loads: {e}"));
        assert_eq!(loaded.session.user(), Some("zed"));
        if let Some(newer) = loaded.reissue {
            token = newer.token().to_owned();
        }
        let live = manager.sessions_of("zed").unwrap();
        assert_eq!(
            live.len(),
            1,
            "kill {kill}: the user has {} live sessions",
            live.len()
        );
    }
    eprintln!(
        "{rotations} rotations reported between {KILLS} kills, {mid_rotation} of which landed between a rotation's two writes"
    );
}

/// Kills a writing child `kills` times at random instants and checks after
/// each kill that every session file decodes, every fixed session is
/// present with data matching its version, and no version went backwards.
fn crash_many_times(kills: u64) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let store = FileStore::open(&dir).unwrap();
    for i in 0..CRASH_KEYS {
        store.insert(&fixed_key(i), &counted(0, None)).unwrap();
    }
    let mut seen = vec![0u64; CRASH_KEYS as usize];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for kill in 0..kills {
        let mut child = spawn_child("crash", &dir, rng.next());
        let _out = await_ready(&mut child);
        // Let it write for a random while (0 to 15 ms), then SIGKILL.
        std::thread::sleep(Duration::from_micros(rng.next() % 15_000));
        child.kill().unwrap();
        let status = child.wait().unwrap();
        assert!(!status.success(), "the child must have been killed");

        decode_all(&dir);
        for i in 0..CRASH_KEYS {
            let r = store
                .get(&fixed_key(i))
                .unwrap()
                .unwrap_or_else(|| panic!("session {i} missing after kill {kill}"));
            assert_eq!(n_of(&r), r.version, "session {i} mixed after kill {kill}");
            assert!(r.version >= seen[i as usize], "session {i} went back");
            seen[i as usize] = r.version;
        }
    }
    // The writers made progress, and purge leaves no debris behind.
    let landed: u64 = seen.iter().sum();
    eprintln!("{kills} kills, {landed} versioned writes landed");
    assert!(
        landed >= kills / 3,
        "too few writes landed between kills: {landed}"
    );
    store.purge_expired(START).unwrap();
    let leftovers: Vec<_> = walk(&dir.join("sessions"))
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // Sessions of the rotate cycles that a kill interrupted may remain, but
    // each is whole; the index never lists a session that is not carol's.
    for (_, r) in store.sessions_of("carol").unwrap() {
        assert_eq!(r.user(), Some("carol"));
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn sigkill_mid_write_leaves_every_session_whole_300_times() {
    crash_many_times(300);
}

#[test]
#[ignore = "long run: cargo test --test file_store -- --ignored"]
fn sigkill_mid_write_leaves_every_session_whole_5000_times() {
    crash_many_times(5000);
}

#[test]
fn two_processes_lose_no_increment_and_no_index_entry() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let store = FileStore::open(&dir).unwrap();
    store.insert(&fixed_key(0), &counted(0, None)).unwrap();
    const EACH: u64 = 150;
    let mut children: Vec<Child> = (0..2)
        .map(|_| spawn_child("increment", &dir, EACH))
        .collect();
    for c in &mut children {
        let status = c.wait().unwrap();
        assert!(status.success(), "a child failed: {status}");
    }
    let r = store.get(&fixed_key(0)).unwrap().unwrap();
    assert_eq!(r.version, 2 * EACH, "an update was lost");
    assert_eq!(n_of(&r), 2 * EACH);
    assert_eq!(
        store.sessions_of("dave").unwrap().len() as u64,
        2 * EACH.div_ceil(10),
        "an index entry was lost"
    );
}

// ---------------------------------------------------- corruption tests

#[test]
fn corrupt_truncated_empty_or_foreign_files_are_errors_for_that_key_only() {
    let s = TempFileStore::new();
    let good = SessionId::generate().store_key();
    s.insert(&good, &counted(1, Some("erin"))).unwrap();
    let full = std::fs::read(s.store.session_path(&good)).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("truncated", full[..full.len() / 2].to_vec()),
        ("header only", b"latchkey-session 1\n".to_vec()),
        ("foreign", b"\x89PNG\r\n\x1a\n\0\0\0".to_vec()),
        ("future version", b"latchkey-session 2\n{}".to_vec()),
        (
            "garbage json",
            b"latchkey-session 1\n{\"version\":\"x\"}".to_vec(),
        ),
        (
            "invalid utf-8",
            [b"latchkey-session 1\n".as_slice(), &[0xff, 0xfe]].concat(),
        ),
    ];
    for (what, bytes) in cases {
        let bad = SessionId::generate().store_key();
        s.insert(&bad, &counted(1, Some("erin"))).unwrap();
        std::fs::write(s.store.session_path(&bad), &bytes).unwrap();
        let err = s.get(&bad).unwrap_err();
        assert!(
            matches!(&err, StoreError::Corrupt { key, .. } if *key == bad.fingerprint()),
            "{what}: {err:?}"
        );
        assert!(err.is_corrupt());
        assert!(matches!(
            s.replace(&bad, 1, &counted(2, None)),
            Err(StoreError::Corrupt { .. })
        ));
        // The others are untouched and still listed.
        assert_eq!(s.get(&good).unwrap(), Some(counted(1, Some("erin"))));
        let listed: Vec<_> = s.sessions_of("erin").unwrap();
        assert!(listed.iter().any(|(k, _)| *k == good), "{what}");
        assert!(!listed.iter().any(|(k, _)| *k == bad), "{what}");
    }
}

#[test]
fn decode_names_what_is_wrong() {
    assert!(matches!(decode(b""), Err(DecodeError::Empty)));
    assert!(matches!(
        decode(b"hello world"),
        Err(DecodeError::NotASessionFile)
    ));
    assert!(matches!(
        decode(b"latchkey-session 2\n{}"),
        Err(DecodeError::UnsupportedVersion)
    ));
    assert!(matches!(
        decode(b"latchkey-session 1\n[]"),
        Err(DecodeError::Body(_))
    ));
}

#[test]
fn purge_moves_corrupt_files_aside_and_removes_expired_ones() {
    let s = TempFileStore::new();
    let (bad, dead, alive) = (
        SessionId::generate().store_key(),
        SessionId::generate().store_key(),
        SessionId::generate().store_key(),
    );
    s.insert(&bad, &counted(1, None)).unwrap();
    let mut expired = counted(1, Some("frank"));
    expired.expires_at = START;
    s.insert(&dead, &expired).unwrap();
    s.insert(&alive, &counted(1, Some("frank"))).unwrap();
    std::fs::write(s.store.session_path(&bad), b"not a session").unwrap();
    // A foreign file with another name is the operator's: left alone.
    let note = s.store.path().join("sessions").join("README");
    std::fs::write(&note, "operator note").unwrap();

    assert_eq!(s.purge_expired(START).unwrap(), 1);
    assert_eq!(s.get(&bad).unwrap(), None);
    assert_eq!(s.get(&dead).unwrap(), None);
    assert!(s.get(&alive).unwrap().is_some());
    let moved = s
        .store
        .path()
        .join("corrupt")
        .join(format!("{}.session", bad.to_hex()));
    assert_eq!(std::fs::read(moved).unwrap(), b"not a session");
    assert!(note.exists());
    // The index no longer names the purged session.
    let keys: Vec<_> = s
        .sessions_of("frank")
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(keys, vec![alive]);
}

#[test]
fn a_corrupt_user_index_hides_nothing_and_purge_rebuilds_it() {
    let s = TempFileStore::new();
    let k = SessionId::generate().store_key();
    s.insert(&k, &counted(1, Some("gina"))).unwrap();
    let idx = walk(&s.store.path().join("users"))
        .into_iter()
        .find(|p| p.to_string_lossy().ends_with(".user"))
        .unwrap();
    let keys_of = |s: &TempFileStore| {
        let mut v: Vec<_> = s
            .sessions_of("gina")
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        v.sort();
        v
    };
    let is_index = |p: &Path| {
        std::fs::read_to_string(p)
            .unwrap()
            .starts_with("latchkey-user-index 1\n")
    };
    std::fs::write(&idx, b"garbage").unwrap();
    // Until the index is rebuilt, listings fall back to a scan.
    assert_eq!(keys_of(&s), vec![k]);
    // A login while the index is corrupt rebuilds it from the records
    // rather than starting an empty one that would hide the first session.
    let k2 = SessionId::generate().store_key();
    s.insert(&k2, &counted(1, Some("gina"))).unwrap();
    assert!(is_index(&idx));
    let mut want = vec![k, k2];
    want.sort();
    assert_eq!(keys_of(&s), want);
    // And purge replaces a corrupt index outright.
    std::fs::write(&idx, b"garbage").unwrap();
    s.purge_expired(START).unwrap();
    assert!(is_index(&idx));
    assert_eq!(keys_of(&s), want);
}

#[test]
fn layout_names_files_by_hashes_never_by_token_or_user() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let m = StoreManager::new(FileStore::open(&dir).unwrap());
    let user = "../../etc/passwd\0 \u{202e}evil";
    let issued = m.create(NewSession::new().with_user(user)).unwrap();
    let token = issued.token().to_owned();
    let key = SessionId::parse(&token).unwrap().store_key();
    let path = m.store().session_path(&key);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.starts_with("latchkey-session 1\n{\"version\":"),
        "{text}"
    );
    for p in walk(&dir) {
        let s = p.to_string_lossy();
        assert!(!s.contains(&token), "{s}");
        assert!(!s.contains("passwd") && !s.contains("evil"), "{s}");
        assert!(
            !std::fs::read_to_string(&p)
                .unwrap_or_default()
                .contains(&token)
        );
    }
    // The user index is named by SHA-256 of the user and holds the name.
    use sha2_hex::sha256_hex;
    let h = sha256_hex(user.as_bytes());
    let idx = dir.join("users").join(&h[..2]).join(format!("{h}.user"));
    let text = std::fs::read_to_string(idx).unwrap();
    assert!(text.starts_with("latchkey-user-index 1\n"));
    assert!(text.contains(&key.to_hex()));
    assert_eq!(m.sessions_of(user).unwrap().len(), 1);
    assert!(!format!("{:?}", m.store()).contains(&token));
}

/// SHA-256 without a new dev-dependency: the test shells out to the same
/// `sha256sum` an operator would use.
mod sha2_hex {
    pub(super) fn sha256_hex(bytes: &[u8]) -> String {
        use std::io::Write;
        let mut child = std::process::Command::new("sha256sum")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(bytes).unwrap();
        let out = child.wait_with_output().unwrap();
        String::from_utf8(out.stdout).unwrap()[..64].to_owned()
    }
}

// ---------------------------------------------------- permission tests

#[test]
fn creates_directory_0700_and_files_0600() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a").join("store");
    let s = FileStore::open(&dir).unwrap();
    let k = SessionId::generate().store_key();
    s.insert(&k, &counted(1, Some("hank"))).unwrap();
    s.purge_expired(START).unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    let all = walk(&dir);
    assert!(all.len() >= 3, "session, index and lock files: {all:?}");
    for p in all {
        assert_eq!(mode(&p), 0o600, "{}", p.display());
        assert_eq!(mode(p.parent().unwrap()), 0o700, "{}", p.display());
    }
}

#[test]
fn refuses_group_or_world_writable_directories() {
    for bad in [0o777, 0o770, 0o702, 0o720] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("store");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(bad)).unwrap();
        let err = FileStore::open(&dir).unwrap_err();
        assert!(
            matches!(&err, StoreError::InsecureDirectory { path, .. } if *path == dir),
            "{bad:o}: {err:?}"
        );
        assert!(
            err.to_string().contains("writable by group or others"),
            "{err}"
        );
    }
    // Readable by others but writable only by the owner is allowed.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(FileStore::open(&dir).is_ok());
}

#[test]
fn refuses_a_directory_another_user_owns() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    std::fs::create_dir(&dir).unwrap();
    let me = std::fs::metadata(&dir).unwrap().uid();
    let other = if me == 0 { 4242 } else { 0 };
    // Only root may give a directory away; elsewhere this test needs a
    // directory some other user already owns, e.g. "/" (owned by root).
    let target = if std::os::unix::fs::chown(&dir, Some(other), None).is_ok() {
        dir
    } else {
        PathBuf::from("/")
    };
    if std::fs::metadata(&target).unwrap().uid() == me {
        return; // running as the owner of "/": nothing to test with
    }
    let err = FileStore::open(&target).unwrap_err();
    // Root may write in another user's directory and gets the clear error;
    // anyone else cannot even create the probe.
    assert!(
        matches!(&err, StoreError::InsecureDirectory { reason, .. } if reason.contains("another user"))
            || matches!(&err, StoreError::Io(e) if e.kind() == std::io::ErrorKind::PermissionDenied),
        "{err:?}"
    );
}

// ------------------------------------------------------- failed writes

#[test]
fn a_failed_write_returns_an_error_and_keeps_the_previous_record() {
    let s = TempFileStore::new();
    let k = SessionId::generate().store_key();
    s.insert(&k, &counted(1, None)).unwrap();
    // Block the temporary file's name with a directory: the write fails the
    // way a full disk or read-only file system would, even for root.
    let h = k.to_hex();
    let blocker = s
        .store
        .path()
        .join("sessions")
        .join(&h[..2])
        .join(format!(".{h}.tmp"));
    std::fs::create_dir(&blocker).unwrap();
    let err = s.replace(&k, 1, &counted(2, None)).unwrap_err();
    assert!(matches!(err, StoreError::Io(_)), "{err:?}");
    assert_eq!(s.get(&k).unwrap(), Some(counted(1, None)));
    // A rotation whose second write fails changes neither key.
    let other = SessionId::generate().store_key();
    let err = s
        .rotate(&k, 1, &counted(2, None), &other, &counted(1, None))
        .unwrap_err();
    assert!(matches!(err, StoreError::Io(_)), "{err:?}");
    assert_eq!(s.get(&k).unwrap(), Some(counted(1, None)));
    assert_eq!(s.get(&other).unwrap(), None);
    std::fs::remove_dir(&blocker).unwrap();
    s.replace(&k, s.get(&k).unwrap().unwrap().version, &counted(9, None))
        .unwrap();
    assert_eq!(n_of(&s.get(&k).unwrap().unwrap()), 9);
}

/// Unmounts on drop, so a failing assertion does not leave a mount behind.
struct Unmount(PathBuf);
impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn full_disk_and_read_only_file_system_are_errors_not_losses() {
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    // A real full disk and a real read-only file system need a small tmpfs
    // of our own, which needs root (CAP_SYS_ADMIN). Elsewhere the same
    // path is covered by simulation in
    // a_failed_write_returns_an_error_and_keeps_the_previous_record.
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs"])
        .arg(&mnt)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    }
    let _unmount = Unmount(mnt.clone());
    let s = FileStore::open(mnt.join("store")).unwrap();
    let k = SessionId::generate().store_key();
    s.insert(&k, &counted(1, Some("jo"))).unwrap();

    // Fill the disk to the last byte.
    let filler = mnt.join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    let chunk = vec![0u8; 4096];
    while std::io::Write::write_all(&mut f, &chunk).is_ok() {}
    drop(f);
    for attempt in [
        s.replace(&k, 1, &counted(2, Some("jo"))),
        s.insert(&SessionId::generate().store_key(), &counted(1, None)),
    ] {
        let err = attempt.unwrap_err();
        assert!(
            matches!(&err, StoreError::Io(e) if e.raw_os_error() == Some(28)),
            "expected ENOSPC: {err:?}"
        );
    }
    assert_eq!(s.get(&k).unwrap(), Some(counted(1, Some("jo"))));
    assert_eq!(s.sessions_of("jo").unwrap().len(), 1);

    // Read-only.
    std::fs::remove_file(&filler).unwrap();
    let remounted = Command::new("mount")
        .args(["-o", "remount,ro"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(remounted.success());
    let err = s.replace(&k, 1, &counted(2, Some("jo"))).unwrap_err();
    assert!(
        matches!(&err, StoreError::Io(e) if e.raw_os_error() == Some(30)),
        "expected EROFS: {err:?}"
    );
    assert_eq!(s.get(&k).unwrap(), Some(counted(1, Some("jo"))));
    assert!(matches!(s.remove(&k), Err(StoreError::Io(_))));
    assert_eq!(s.get(&k).unwrap(), Some(counted(1, Some("jo"))));
}

/// A symlink at a session's path (to a valid record elsewhere) is not
/// served as that session: an error for it alone, which purge moves aside
/// and goes on.
#[test]
fn a_symlink_at_a_session_path_is_refused_not_followed() {
    let store = TempFileStore::new();
    let (k, other) = (fixed_key(5), fixed_key(6));
    store.insert(&other, &counted(1, None)).unwrap();
    // A valid record outside the store, and a link to it at k's path.
    let outside = store._dir.path().join("outside.session");
    std::fs::write(
        &outside,
        latchkey::store::file::encode(&counted(4, None)).unwrap(),
    )
    .unwrap();
    let path = store.store.session_path(&k);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(&outside, &path).unwrap();
    let e = store.get(&k).unwrap_err();
    assert!(e.is_corrupt(), "{e:?}");
    assert!(
        format!("{e:?}").contains("NotRegularFile"),
        "says why: {e:?}"
    );
    assert_eq!(store.get(&other).unwrap(), Some(counted(1, None)));
    store.purge_expired(START).unwrap();
    assert_eq!(store.get(&k).unwrap(), None, "purge moved the link aside");
    assert!(outside.exists(), "the link's target is left alone");
}

/// A symlink planted at a session's temporary name does not redirect the
/// next write of that session to the file it points at.
#[test]
fn a_symlink_at_a_temporary_name_does_not_redirect_a_write() {
    let store = TempFileStore::new();
    let k = fixed_key(7);
    store.insert(&k, &counted(1, None)).unwrap();
    let victim = store._dir.path().join("victim.txt");
    std::fs::write(&victim, b"precious").unwrap();
    let path = store.store.session_path(&k);
    let tmp = path.with_file_name(format!(".{}.tmp", k.to_hex()));
    std::os::unix::fs::symlink(&victim, &tmp).unwrap();
    store.replace(&k, 1, &counted(2, None)).unwrap();
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    assert_eq!(store.get(&k).unwrap(), Some(counted(2, None)));
}

/// A FIFO at a session's path is refused at once: opening it for reading
/// would block until a writer came, hanging the request.
#[test]
fn a_fifo_at_a_session_path_is_refused_without_blocking() {
    let store = std::sync::Arc::new(TempFileStore::new());
    let k = fixed_key(8);
    let path = store.store.session_path(&k);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let made = Command::new("mkfifo").arg(&path).status().expect("mkfifo");
    assert!(made.success());
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = store.clone();
    std::thread::spawn(move || {
        let _ = tx.send(reader.get(&k).map(|_| ()).map_err(|e| e.is_corrupt()));
    });
    // A guard, not a measurement: a regression hangs here instead of forever.
    let got = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("get blocked on a FIFO");
    assert_eq!(got, Err(true), "a per-session error, not a backend failure");
}

/// A record the store would refuse to read back (over the 16 MiB file
/// limit) is refused when written, and the record it would have replaced
/// stays readable.
#[test]
fn a_record_too_large_to_read_back_is_refused_at_write() {
    let store = TempFileStore::new();
    let k = fixed_key(3);
    store.insert(&k, &counted(1, None)).unwrap();
    let mut huge = counted(2, None);
    if let RecordState::Live(l) = &mut huge.state {
        let mut data = serde_json::Map::new();
        data.insert("blob".into(), "x".repeat(17 * 1024 * 1024).into());
        l.data = SessionData::from_map(data);
    }
    let e = store.replace(&k, 1, &huge).unwrap_err();
    assert!(matches!(e, StoreError::RecordTooLarge { .. }), "{e:?}");
    assert_eq!(store.get(&k).unwrap(), Some(counted(1, None)));
    let e = store.insert(&fixed_key(4), &huge).unwrap_err();
    assert!(matches!(e, StoreError::RecordTooLarge { .. }), "{e:?}");
    assert_eq!(store.get(&fixed_key(4)).unwrap(), None);
}

#[test]
fn durability_option_keeps_the_same_semantics() {
    let tmp = tempfile::tempdir().unwrap();
    let s = FileStore::open(tmp.path().join("s"))
        .unwrap()
        .with_durability(Durability::DangerNoSync);
    assert_eq!(s.durability(), Durability::DangerNoSync);
    let k = SessionId::generate().store_key();
    s.insert(&k, &counted(1, None)).unwrap();
    assert!(matches!(
        s.insert(&k, &counted(1, None)),
        Err(StoreError::Exists)
    ));
    s.replace(&k, 1, &counted(2, None)).unwrap();
    assert!(matches!(
        s.replace(&k, 1, &counted(3, None)),
        Err(StoreError::Conflict)
    ));
    let reopened = FileStore::open(tmp.path().join("s")).unwrap();
    assert_eq!(reopened.get(&k).unwrap(), Some(counted(2, None)));
}

#[test]
fn sessions_survive_reopening_with_a_manager() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let clock = ManualClock::new(START);
    let m = StoreManager::new(FileStore::open(&dir).unwrap())
        .with_clock(std::sync::Arc::new(clock.clone()));
    let issued = m.create(NewSession::new().with_user("ivy")).unwrap();
    let mut s = m.load(issued.token()).unwrap().session;
    s.insert("theme", &"dark").unwrap();
    m.save(&mut s).unwrap();
    drop(m);
    let m = StoreManager::new(FileStore::open(&dir).unwrap())
        .with_clock(std::sync::Arc::new(clock.clone()));
    let s = m.load(issued.token()).unwrap().session;
    assert_eq!(s.get::<String>("theme").unwrap().as_deref(), Some("dark"));
}

// ------------------------------------------------- purge past bad entries

/// A key whose file lies in `sessions/XX` for `first` = XX; `tag` tells
/// keys of one directory apart.
fn key_at(first: u8, tag: u8) -> StoreKey {
    let mut b = [tag; 32];
    b[0] = first;
    StoreKey::from_bytes(b)
}

/// A record of `user` that has expired by `START`.
fn expired(user: Option<&str>) -> Record {
    let mut r = counted(1, user);
    r.expires_at = START;
    r
}

/// What a purge meets in a directory that has seen operators and crashes:
/// a broken fan-out directory, files where directories belong and a
/// `corrupt/` it cannot move anything into. It goes on past each of them
/// and still deletes every expired record it can reach.
#[test]
fn purge_expired_goes_on_past_entries_it_cannot_handle() {
    let s = TempFileStore::new();
    let dir = s.store.path().to_path_buf();
    // Expired sessions in directories before, between and after the bad
    // entries (a purge visits sessions/00 to sessions/ff in order).
    let dead = [key_at(0x01, 1), key_at(0x80, 2), key_at(0xfe, 3)];
    for k in &dead {
        s.insert(k, &expired(Some("frank"))).unwrap();
    }
    let alive = key_at(0x02, 4);
    s.insert(&alive, &counted(1, Some("frank"))).unwrap();
    // An undecodable session file that cannot be moved aside, because a
    // plain file stands where `corrupt/` belongs.
    let bad = key_at(0x40, 5);
    s.insert(&bad, &counted(1, None)).unwrap();
    std::fs::write(s.store.session_path(&bad), b"not a session").unwrap();
    std::fs::write(dir.join("corrupt"), b"in the way").unwrap();
    // A file where the fan-out directory sessions/7f belongs, and an
    // operator's note among the index directories.
    std::fs::write(dir.join("sessions").join("7f"), b"in the way").unwrap();
    std::fs::write(dir.join("users").join("README"), b"operator note").unwrap();

    assert_eq!(s.purge_expired(START).unwrap(), dead.len());
    for k in &dead {
        assert_eq!(s.get(k).unwrap(), None);
    }
    assert!(s.get(&alive).unwrap().is_some());
    let keys: Vec<_> = s
        .sessions_of("frank")
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        keys,
        vec![alive],
        "the index was pruned past the bad entries"
    );
    // What could not be moved aside is still there, for the next purge.
    assert_eq!(
        std::fs::read(s.store.session_path(&bad)).unwrap(),
        b"not a session"
    );
}

/// The fingerprint of the user index of `user`: the first 12 hex digits
/// of its file name, SHA-256 of the name.
fn index_fingerprint(user: &str) -> latchkey::Fingerprint {
    latchkey::Fingerprint::from_hex(&sha2_hex::sha256_hex(user.as_bytes())[..12]).unwrap()
}

#[test]
fn purge_report_lists_each_skipped_entry_by_fingerprint_with_its_reason() {
    use latchkey::store::file::{PurgeEntry, SkipReason};

    let s = TempFileStore::new();
    let dir = s.store.path().to_path_buf();
    let dead = key_at(0x10, 1);
    s.insert(&dead, &expired(Some("frank"))).unwrap();
    let alive = key_at(0x10, 2);
    s.insert(&alive, &counted(1, Some("gina"))).unwrap();
    // A directory, a FIFO and an undecodable file where session files
    // belong, and a directory at a session's temporary name.
    let (at_dir, at_fifo, at_bad, at_tmp) = (
        key_at(0x20, 3),
        key_at(0x21, 4),
        key_at(0x22, 5),
        key_at(0x23, 6),
    );
    std::fs::create_dir_all(s.store.session_path(&at_dir).join("inside")).unwrap();
    let fifo = s.store.session_path(&at_fifo);
    std::fs::create_dir_all(fifo.parent().unwrap()).unwrap();
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    s.insert(&at_bad, &counted(1, None)).unwrap();
    std::fs::write(s.store.session_path(&at_bad), b"\x89PNG").unwrap();
    let tmp_name = format!(".{}.tmp", at_tmp.to_hex());
    let tmp = dir.join("sessions").join("23").join(&tmp_name);
    std::fs::create_dir_all(&tmp).unwrap();
    // A file where the fan-out directory sessions/ee belongs.
    std::fs::write(dir.join("sessions").join("ee"), b"").unwrap();
    // Gina's user index, corrupt.
    let gina = sha2_hex::sha256_hex(b"gina");
    let index = dir
        .join("users")
        .join(&gina[..2])
        .join(format!("{gina}.user"));
    std::fs::write(&index, b"garbage").unwrap();
    // Not the store's: left alone, and not reported.
    std::fs::write(dir.join("sessions").join("10").join("README"), b"note").unwrap();

    let report = s.store.purge_expired_report(START).unwrap();
    assert_eq!(report.removed(), 1);
    assert_eq!(s.get(&dead).unwrap(), None);
    let found = |entry: PurgeEntry| {
        report
            .skips()
            .iter()
            .find(|skip| skip.entry() == entry)
            .unwrap_or_else(|| panic!("{entry} is not in {:#?}", report.skips()))
    };
    for k in [at_dir, at_fifo] {
        let skip = found(PurgeEntry::Session(k.fingerprint()));
        assert!(
            matches!(skip.reason(), SkipReason::NotRegularFile),
            "{skip}"
        );
        assert!(skip.moved_aside(), "{skip}");
        assert!(
            dir.join("corrupt")
                .join(format!("{}.session", k.to_hex()))
                .exists()
        );
    }
    let skip = found(PurgeEntry::Session(at_bad.fingerprint()));
    assert!(matches!(skip.reason(), SkipReason::Corrupt), "{skip}");
    assert!(skip.moved_aside(), "{skip}");
    let skip = found(PurgeEntry::SessionTemp(at_tmp.fingerprint()));
    assert!(
        matches!(skip.reason(), SkipReason::NotRegularFile),
        "{skip}"
    );
    assert!(skip.moved_aside() && dir.join("corrupt").join(&tmp_name).is_dir());
    let skip = found(PurgeEntry::SessionDir(0xee));
    assert!(
        matches!(skip.reason(), SkipReason::Io(e) if e.kind() == std::io::ErrorKind::NotADirectory),
        "{skip}"
    );
    assert!(!skip.moved_aside(), "{skip}");
    let skip = found(PurgeEntry::UserIndex(index_fingerprint("gina")));
    assert!(matches!(skip.reason(), SkipReason::Corrupt), "{skip}");
    assert!(skip.moved_aside(), "{skip}");
    assert_eq!(
        (report.skipped(), report.skips().len(), report.unlisted()),
        (6, 6, 0)
    );
    assert_eq!(
        report.to_string(),
        "removed 1 expired records; skipped 6 entries"
    );

    // Out of the way now: the sessions can be written again, and gina's
    // index was rebuilt from her records.
    for k in [at_dir, at_fifo, at_bad, at_tmp] {
        s.insert(&k, &counted(1, None)).unwrap();
    }
    assert!(
        std::fs::read(&index)
            .unwrap()
            .starts_with(b"latchkey-user-index 1\n")
    );
    let keys: Vec<_> = s
        .sessions_of("gina")
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(keys, vec![alive]);

    // Safe to log: fingerprints only, never a whole key, nor a user name.
    let logged = format!(
        "{report} {report:?} {}",
        report
            .skips()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    );
    for k in [dead, alive, at_dir, at_fifo, at_bad, at_tmp] {
        assert!(!logged.contains(&k.to_hex()), "{logged}");
    }
    assert!(
        logged.contains(&at_bad.fingerprint().to_string()),
        "{logged}"
    );
    assert!(
        !logged.contains(&gina) && !logged.contains("gina"),
        "{logged}"
    );
    assert!(
        logged.contains(&format!("sessions/22/{}*.session", at_bad.fingerprint())),
        "{logged}"
    );
}

#[test]
fn purge_report_lists_at_most_max_listed_entries_and_counts_the_rest() {
    use latchkey::store::file::PurgeReport;

    let s = TempFileStore::new();
    let bad = PurgeReport::MAX_LISTED + 7;
    for i in 0..bad {
        let k = key_at(i as u8, (i / 256) as u8 + 1);
        let path = s.store.session_path(&k);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"").unwrap();
    }
    let report = s.store.purge_expired_report(START).unwrap();
    assert_eq!(report.skipped(), bad);
    assert_eq!(report.skips().len(), PurgeReport::MAX_LISTED);
    assert_eq!(report.unlisted(), 7);
}

// ------------------------------------------------------ stopped lock holders

/// The lock file of session shard `shard` (a key's first byte modulo 64).
fn session_lock(dir: &Path, key: &StoreKey) -> PathBuf {
    dir.join("locks")
        .join(format!("s-{:02x}", key.as_bytes()[0] % 64))
}

/// Takes the lock file `path` (which the store has created) the way
/// another process sharing the store does: an open file of its own and
/// `flock`. Held until dropped.
fn hold(path: &Path) -> std::fs::File {
    let f = std::fs::File::open(path).unwrap();
    f.lock().unwrap();
    f
}

/// Runs `f` on another thread and returns its result. A guard, not a
/// measurement: a write that waits without end fails the test here
/// instead of hanging it.
fn within_30s<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("the write waited without end for a held lock")
}

/// Kills and reaps the child when dropped, so that a failed assertion
/// leaves no stopped process behind.
struct KillOnDrop(Child);
impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A process that holds a session lock and is stopped (SIGSTOP) releases
/// it never, until it dies. Writes of the sessions that lock guards fail
/// after the lock timeout with an error naming the lock file; they changed
/// nothing, and work again once the holder is gone.
#[test]
fn a_stopped_lock_holder_makes_writes_fail_after_the_timeout_naming_the_lock() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let timeout = Duration::from_millis(50);
    let store = std::sync::Arc::new(FileStore::open(&dir).unwrap().with_lock_timeout(timeout));
    assert_eq!(store.lock_timeout(), timeout);
    let k = key_at(0x66, 1);
    store.insert(&k, &counted(1, None)).unwrap();
    let lock = session_lock(&dir, &k);

    let mut child = KillOnDrop(spawn_child(
        "hold_lock",
        &dir,
        u64::from(k.as_bytes()[0] % 64),
    ));
    let mut out = await_ready(&mut child.0);
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim_end(), "locked");
    let stopped = Command::new("kill")
        .args(["-STOP", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());

    let other = key_at(0x66, 2); // another session of the same shard
    type Write = Box<dyn FnOnce(&FileStore) -> Result<(), StoreError> + Send>;
    let writes: Vec<(&str, Write)> = vec![
        (
            "replace",
            Box::new(move |s| s.replace(&k, 1, &counted(2, None))),
        ),
        (
            "touch",
            Box::new(move |s| s.touch(&k, START, START).map(drop)),
        ),
        ("remove", Box::new(move |s| s.remove(&k).map(drop))),
        (
            "insert",
            Box::new(move |s| s.insert(&other, &counted(1, None))),
        ),
    ];
    for (what, write) in writes {
        let s = store.clone();
        let err = within_30s(move || write(&s)).unwrap_err();
        match &err {
            StoreError::LockTimeout {
                lock: named,
                waited,
            } => {
                assert_eq!(*named, lock, "{what}");
                assert!(*waited >= timeout, "{what}: {waited:?}");
            }
            other => panic!("{what}: expected LockTimeout, got {other:?}"),
        }
        assert!(
            err.to_string().contains(&lock.display().to_string()),
            "{err}"
        );
        assert!(latchkey::Error::Store(err).is_backend_failure());
    }
    // Nothing changed, and reads never waited.
    assert_eq!(store.get(&k).unwrap(), Some(counted(1, None)));
    assert_eq!(store.get(&other).unwrap(), None);

    // Only its death frees the lock.
    drop(child);
    let s = store.clone();
    within_30s(move || s.replace(&k, 1, &counted(2, None))).unwrap();
    assert_eq!(store.get(&k).unwrap(), Some(counted(2, None)));
}

/// The user-index lock too: a login of a user whose index lock is held
/// fails before it writes anything; the clean-up of the index after a
/// write that landed does not turn it into a failure.
#[test]
fn a_held_index_lock_fails_only_writes_that_have_not_changed_anything() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let store = std::sync::Arc::new(
        FileStore::open(&dir)
            .unwrap()
            .with_lock_timeout(Duration::from_millis(50)),
    );
    let mine = key_at(0x30, 1);
    store.insert(&mine, &counted(1, Some("alice"))).unwrap();
    // SHA-256("alice") starts with 0x2b, so its index lock is u-0b.
    let lock = dir.join("locks").join("u-0b");
    let holder = hold(&lock);

    let s = store.clone();
    let new = key_at(0x31, 2);
    let err = within_30s(move || s.insert(&new, &counted(1, Some("alice")))).unwrap_err();
    assert!(
        matches!(&err, StoreError::LockTimeout { lock: named, .. } if *named == lock),
        "{err:?}"
    );
    assert_eq!(store.get(&new).unwrap(), None, "nothing was written");
    // Sessions of no user need no index lock.
    store.insert(&key_at(0x31, 3), &counted(1, None)).unwrap();
    // A logout removes the session; the index entry it leaves behind is
    // filtered from listings.
    let s = store.clone();
    assert!(within_30s(move || s.remove(&mine)).unwrap());
    assert_eq!(store.get(&mine).unwrap(), None);
    assert!(store.sessions_of("alice").unwrap().is_empty());

    drop(holder);
    store.insert(&new, &counted(1, Some("alice"))).unwrap();
    let keys: Vec<_> = store
        .sessions_of("alice")
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(keys, vec![new]);
}

/// A purge skips what a held lock guards, reports it once per lock (it
/// waits for each lock at most once), and purges everything else.
#[test]
fn purge_skips_and_reports_what_a_held_lock_guards() {
    use latchkey::store::file::{PurgeEntry, SkipReason};

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let store = FileStore::open(&dir)
        .unwrap()
        .with_lock_timeout(Duration::from_millis(50));
    // sessions/05 and sessions/45 share lock s-05; sessions/06 has s-06.
    let (a, b, c) = (key_at(0x05, 1), key_at(0x45, 2), key_at(0x06, 3));
    for k in [a, b, c] {
        store.insert(&k, &expired(None)).unwrap();
    }
    let lock = session_lock(&dir, &a);
    let holder = hold(&lock);

    let report = within_30s({
        let dir = dir.clone();
        move || {
            FileStore::open(&dir)
                .unwrap()
                .with_lock_timeout(Duration::from_millis(50))
                .purge_expired_report(START)
        }
    })
    .unwrap();
    assert_eq!(report.removed(), 1);
    assert_eq!(store.get(&c).unwrap(), None);
    let waits: Vec<Duration> = [0x05, 0x45]
        .into_iter()
        .map(|byte| {
            let skip = report
                .skips()
                .iter()
                .find(|skip| skip.entry() == PurgeEntry::SessionDir(byte))
                .unwrap_or_else(|| panic!("sessions/{byte:02x} not in {:#?}", report.skips()));
            match skip.reason() {
                SkipReason::LockTimeout {
                    lock: named,
                    waited,
                } => {
                    assert_eq!(*named, lock);
                    *waited
                }
                other => panic!("{other:?}"),
            }
        })
        .collect();
    assert_eq!(
        waits[0], waits[1],
        "the second directory reused the first wait"
    );
    assert_eq!(report.skipped(), 2);

    drop(holder);
    assert_eq!(store.purge_expired(START).unwrap(), 2);
    assert_eq!(
        (store.get(&a).unwrap(), store.get(&b).unwrap()),
        (None, None)
    );
}
