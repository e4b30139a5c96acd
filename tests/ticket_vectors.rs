//! The ticket format's test vectors, checked by an independent
//! implementation: `tests/vectors/verify_ticket.py`, Python's standard
//! library only. If this passes, another language can verify our tickets.
//!
//! The Rust side of the vectors (the encoder reproduces each ticket
//! exactly) is pinned by the unit tests in `src/ticket/vectors.rs`; here the
//! public API loads every valid vector too.

use std::path::Path;
use std::process::Command;

use latchkey::{KeyRing, Policy, TicketKey, TicketManager, Timestamp};
use serde_json::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn python_standard_library_verifies_every_vector() {
    let out = Command::new("python3")
        .arg(root().join("tests/vectors/verify_ticket.py"))
        .arg(root().join("tests/vectors/tickets.json"))
        .output()
        .expect("python3 is installed (CI installs it)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the Python verifier disagrees:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(", 0 failures"), "{stdout}");
}

#[test]
fn python_verifies_a_ticket_minted_now() {
    // Not a pinned vector: a ticket from the public API with a random session
    // id, handed to the Python verifier as a one-vector file.
    let key = [0x42u8; 48];
    let manager = TicketManager::new(
        "session",
        KeyRing::new(9, TicketKey::try_from(&key[..]).unwrap()),
    )
    .unwrap()
    .with_policy(Policy::nist_aal2().without_user_cap());
    let now = Timestamp::from_unix_millis(1_800_000_000_000);
    let issued = manager
        .create_at(
            latchkey::NewSession::new()
                .with_user("ünïcode")
                .with_value("k", &[1, 2, 3])
                .unwrap(),
            now,
        )
        .unwrap();
    let session = manager.load_at(issued.token(), now).unwrap().session;
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    let vectors = serde_json::json!({
        "valid": [{
            "name": "minted by the test",
            "keys": { "9": hex },
            "purpose": "session",
            "key_id": 9,
            "now": now.as_unix_millis(),
            "claims": {
                "created_at": now.as_unix_millis(),
                "issued_at": now.as_unix_millis(),
                "auth_at": now.as_unix_millis(),
                "idle_deadline": issued.idle_deadline().as_unix_millis(),
                "absolute_deadline": issued.absolute_deadline().as_unix_millis(),
                "session_key": session.store_key().to_hex(),
                "user": "ünïcode",
                "device": null,
                "data": session.data().encoded().as_ref(),
            },
            "ticket": issued.token(),
        }],
        "invalid": [],
    });
    let dir = std::env::temp_dir().join(format!("latchkey-vectors-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("minted.json");
    std::fs::write(&file, vectors.to_string()).unwrap();
    let out = Command::new("python3")
        .arg(root().join("tests/vectors/verify_ticket.py"))
        .arg(&file)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).ok();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn public_api_loads_every_valid_vector_and_refuses_every_invalid_one() {
    let all: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("tests/vectors/tickets.json")).unwrap(),
    )
    .unwrap();
    let manager_for = |v: &Value| {
        let mut ids: Vec<(u32, TicketKey)> = v["keys"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(id, hex)| {
                let hex = hex.as_str().unwrap();
                let bytes: Vec<u8> = (0..hex.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                    .collect();
                (
                    id.parse().unwrap(),
                    TicketKey::try_from(bytes.as_slice()).unwrap(),
                )
            })
            .collect();
        let (id, key) = ids.remove(0);
        let ring = ids.into_iter().fold(KeyRing::new(id, key), |r, (id, k)| {
            r.with_verify_key(id, k).unwrap()
        });
        TicketManager::new(v["purpose"].as_str().unwrap(), ring)
            .unwrap()
            .with_policy(Policy::nist_aal1().without_user_cap())
    };
    let now = |v: &Value| Timestamp::from_unix_millis(v["now"].as_u64().unwrap());
    for v in all["valid"].as_array().unwrap() {
        let loaded = manager_for(v)
            .load_at(v["ticket"].as_str().unwrap(), now(v))
            .unwrap();
        assert_eq!(loaded.session.user(), v["claims"]["user"].as_str());
        assert_eq!(
            loaded.session.data().encoded().as_ref(),
            v["claims"]["data"].as_str().unwrap()
        );
    }
    for v in all["invalid"].as_array().unwrap() {
        let m = manager_for(v);
        let err = m
            .load_at(v["ticket"].as_str().unwrap(), now(v))
            .unwrap_err();
        assert!(err.is_rejection(), "{}: {err}", v["name"]);
        assert_eq!(err.reason(), v["error"].as_str().unwrap(), "{}", v["name"]);
    }
}
