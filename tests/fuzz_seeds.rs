//! The fuzz targets' seed corpora stay meaningful.
//!
//! `fuzz/seeds/<target>/` holds a handful of small inputs for every target
//! in `fuzz/fuzz_targets/`, from which each CI fuzzing run starts (see the
//! fuzz step of `.ci/run`): valid tokens, records, tickets and cookie
//! headers, and near misses of each, so a short run gets past the format
//! checks at once. `fuzz/regressions/<target>/` holds inputs that once
//! failed; CI runs them as plain inputs first. This file checks that every
//! target has seeds and that the seeds meant to be valid still are, so a
//! format change that would quietly turn them into noise fails here.
//!
//! The seeds were written by this file; to write them again (say, after a
//! format change), run
//!
//! ```text
//! LATCHKEY_WRITE_SEEDS=1 cargo test --features redis --test fuzz_seeds
//! ```
//!
//! and commit the result. Files named `valid-*` must be accepted, the
//! others are near misses.
#![cfg(unix)]

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use latchkey::store::{LiveSession, Record, RecordState};
use latchkey::{
    CookieConfig, EndReason, MemoryStore, NewSession, SessionData, SessionId, SessionManager,
    Store, StoreManager, Timestamp,
};

const WRITE_VAR: &str = "LATCHKEY_WRITE_SEEDS";

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = fuzz_dir().join("seeds").join(target);
    let mut out: Vec<(String, Vec<u8>)> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, fs::read(&path).unwrap())
        })
        .collect();
    out.sort();
    out
}

fn valid(target: &str) -> Vec<(String, Vec<u8>)> {
    let all = seeds(target);
    let valid: Vec<_> = all
        .into_iter()
        .filter(|(name, _)| name.starts_with("valid-"))
        .collect();
    assert!(!valid.is_empty(), "{target} has no valid-* seed");
    valid
}

#[test]
fn every_fuzz_target_has_a_few_small_seeds() {
    let targets = fs::read_dir(fuzz_dir().join("fuzz_targets")).unwrap();
    let mut n = 0;
    for entry in targets {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let target = path.file_stem().unwrap().to_string_lossy().into_owned();
        let found = seeds(&target);
        assert!(
            (2..=16).contains(&found.len()),
            "{target}: {} seeds",
            found.len()
        );
        for (name, bytes) in &found {
            assert!(bytes.len() <= 4096, "{target}/{name} is not small");
        }
        n += 1;
    }
    assert!(n >= 6, "found only {n} fuzz targets");
}

#[test]
fn token_seeds_marked_valid_parse() {
    for (name, bytes) in valid("token_parse") {
        let token = std::str::from_utf8(&bytes).unwrap();
        assert!(SessionId::parse(token).is_ok(), "{name}");
    }
}

#[test]
fn cookie_seeds_marked_valid_hold_a_session_token() {
    let config = CookieConfig::default();
    for (name, bytes) in valid("cookie_header") {
        let token = config.find_token(&bytes[..]).unwrap();
        assert!(token.is_some_and(|t| SessionId::parse(t).is_ok()), "{name}");
    }
}

#[test]
fn file_record_seeds_marked_valid_decode() {
    for (name, bytes) in valid("file_decode") {
        assert!(latchkey::store::file::decode(&bytes).is_ok(), "{name}");
    }
}

#[cfg(feature = "redis")]
#[test]
fn redis_record_seeds_marked_valid_decode() {
    for (name, bytes) in valid("redis_decode") {
        assert!(latchkey::store::redis::decode(&bytes).is_ok(), "{name}");
    }
}

/// Writes the seeds, when asked to (see the file's docs).
#[test]
fn write_seeds_when_asked() {
    if std::env::var_os(WRITE_VAR).is_none() {
        return;
    }
    let put = |target: &str, name: &str, bytes: &[u8]| {
        let dir = fuzz_dir().join("seeds").join(target);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(name), bytes).unwrap();
    };

    // Tokens: 32 bytes in 43 base64url characters, one spelling each.
    let token = SessionId::generate().to_token();
    put("token_parse", "valid-generated", token.as_bytes());
    put("token_parse", "valid-zeros", "A".repeat(43).as_bytes());
    put("token_parse", "short", &token.as_bytes()[..42]);
    put("token_parse", "long", format!("{token}A").as_bytes());
    put(
        "token_parse",
        "plus",
        format!("+{}", &token[1..]).as_bytes(),
    );
    put(
        "token_parse",
        "not-canonical",
        format!("{}B", "A".repeat(42)).as_bytes(),
    );

    // Cookie headers.
    let header = |s: &str| s.replace("TOKEN", &token);
    for (name, h) in [
        ("valid-alone", "__Host-session=TOKEN"),
        ("valid-among", "theme=dark; __Host-session=TOKEN;lang=en"),
        ("twice", "__Host-session=TOKEN; __Host-session=other"),
        ("quoted", "__Host-session=\"TOKEN\""),
        (
            "lookalikes",
            "session=TOKEN; __Host-sessionx=1; __host-session=2",
        ),
    ] {
        put("cookie_header", name, header(h).as_bytes());
    }

    // Records, as both file-based and Redis stores write them.
    let records = records();
    for (name, r) in &records {
        put(
            "file_decode",
            &format!("valid-{name}"),
            &latchkey::store::file::encode(r).unwrap(),
        );
    }
    let (_, live) = &records[0];
    let body = serde_json::to_vec(live).unwrap();
    put("file_decode", "no-header", &body);
    put(
        "file_decode",
        "future-version",
        &[&b"latchkey-session 9\n"[..], &body].concat(),
    );
    #[cfg(feature = "redis")]
    {
        for (name, r) in &records {
            let value = latchkey::store::redis::encode(r).unwrap();
            put("redis_decode", &format!("valid-{name}"), value.as_bytes());
        }
        let value = latchkey::store::redis::encode(live).unwrap();
        put(
            "redis_decode",
            "spaced",
            value.replacen(':', ": ", 1).as_bytes(),
        );
        put(
            "redis_decode",
            "truncated",
            &value.as_bytes()[..value.len() / 2],
        );
    }

    // ticket_load: the first byte picks the mode (and which valid ticket
    // it edits); the target issues the valid tickets itself.
    for (name, bytes) in [
        ("valid-first-as-issued", &[1u8][..]),
        ("valid-second-as-issued", &[4]),
        ("valid-first-recoded", &[2]),
        ("text-edit", &[1, 0x00, b'X', 0x80, b'-']),
        ("payload-bit-flip", &[2, 0x80, 0x01]),
        ("payload-truncated", &[5, 0x40, 0x10, 0x08]),
        ("raw-text", b"\x00lk1.AAAA"),
    ] {
        put("ticket_load", name, bytes);
    }

    // ticket_cookie: flags, then big-endian lengths (see the target's
    // docs): name, Domain, Path, data, user, device, operation size.
    for (name, bytes) in [
        ("defaults", [0u8; 13]),
        (
            "persistent-user-device",
            [1, 0, 8, 0, 0, 0, 0, 0, 64, 5, 5, 0, 0],
        ),
        (
            "save-grows",
            [0x20, 0, 8, 0, 0, 0, 1, 1, 0, 5, 0, 0x0b, 0xb8],
        ),
        ("login", [0x61, 0, 8, 0, 12, 0, 1, 0, 40, 0, 3, 0, 5]),
        (
            "near-the-limit",
            [0xe3, 0, 200, 0, 253, 3, 232, 7, 208, 64, 64, 0, 64],
        ),
    ] {
        put("ticket_cookie", name, &bytes);
    }

    // file_store_diff: (operation, key) byte pairs (see the target).
    for (name, bytes) in [
        // insert key 0, save it, touch it, rotate it to key 1
        (
            "insert-save-touch-rotate",
            &[0x00u8, 0x00, 0x41, 0x00, 0x0a, 0x00, 0x43, 0x06][..],
        ),
        // two users' sessions, listed, then a purge past their expiry
        (
            "users-then-purge",
            &[0x00, 0x24, 0x00, 0x49, 0x05, 0x24, 0xf6, 0x00, 0x05, 0x48],
        ),
        (
            "remove-then-reinsert",
            &[0x00, 0x02, 0x04, 0x02, 0x00, 0x02, 0x41, 0x02],
        ),
    ] {
        put("file_store_diff", name, bytes);
    }
}

/// One record in each state, with every optional field exercised.
fn records() -> Vec<(&'static str, Record)> {
    let t = Timestamp::from_unix_millis(1_800_000_000_000);
    let mut data = serde_json::Map::new();
    data.insert("cart".into(), serde_json::json!(["book", 2, null]));
    data.insert("big".into(), serde_json::json!(u64::MAX));
    data.insert("text".into(), serde_json::json!("\"quoted\" \u{2603} \n"));
    let live = Record {
        version: 3,
        expires_at: t.saturating_add(Duration::from_secs(1200)),
        state: RecordState::Live(LiveSession {
            created_at: t,
            last_seen: t.saturating_add(Duration::from_secs(5)),
            auth_at: Some(t),
            absolute_deadline: t.saturating_add(Duration::from_secs(8 * 3600)),
            user: Some("alice".into()),
            device: Some("phone".into()),
            data: SessionData::from_map(data),
        }),
    };
    // A routine rotation, with the successor sealed for the old token.
    let manager = StoreManager::new(MemoryStore::new());
    let issued = manager.create(NewSession::new().with_user("bob")).unwrap();
    let mut s = manager.load(issued.token()).unwrap().session;
    manager.rotate(&mut s).unwrap();
    let old = SessionId::parse(issued.token()).unwrap().store_key();
    let rotated = manager.store().get(&old).unwrap().unwrap();
    assert!(matches!(rotated.state, RecordState::Rotated { .. }));
    // A privilege change made of single-key writes, its successor pending.
    let pending = Record {
        version: 1,
        expires_at: t,
        state: RecordState::Live(LiveSession {
            created_at: t,
            last_seen: t,
            auth_at: None,
            absolute_deadline: t,
            user: None,
            device: None,
            data: SessionData::default(),
        }),
    };
    let with_pending = Record {
        version: 4,
        expires_at: t,
        state: RecordState::Rotated {
            successor: SessionId::generate().store_key(),
            sealed_successor: None,
            at: t,
            grace_until: t,
            privilege_change: true,
            pending: Some(Box::new(pending)),
        },
    };
    let ended = Record {
        version: 9,
        expires_at: t,
        state: RecordState::Ended {
            reason: EndReason::ReuseDetected,
            at: t,
        },
    };
    vec![
        ("live", live),
        ("rotated", rotated),
        ("rotated-pending", with_pending),
        ("ended", ended),
    ]
}
