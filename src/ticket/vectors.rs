//! Pins the format to `tests/vectors/tickets.json`: the encoder must produce
//! each vector's exact ticket from its inputs, and the manager must accept
//! the valid ones and refuse the invalid ones for the stated reason. If this
//! fails, the format changed: that needs a new version, not new vectors.
//!
//! Test code only: `ticket/mod.rs` declares this module under
//! `#[cfg(test)]`, so its `unwrap`s never reach a build of the library.

use serde_json::Value;

use super::format::{self, Claims};
use super::keyring::{KeyRing, TicketKey};
use super::manager::TicketManager;
use crate::clock::Timestamp;
use crate::policy::Policy;

const VECTORS: &str = include_str!("../../tests/vectors/tickets.json");

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn ring(keys: &Value, signing: Option<u32>) -> KeyRing {
    let mut entries: Vec<(u32, TicketKey)> = keys
        .as_object()
        .unwrap()
        .iter()
        .map(|(id, k)| {
            let key = TicketKey::try_from(hex(k.as_str().unwrap()).as_slice()).unwrap();
            (id.parse().unwrap(), key)
        })
        .collect();
    // The signing key first, if named.
    entries.sort_by_key(|(id, _)| Some(*id) != signing);
    let mut it = entries.into_iter();
    let (id, key) = it.next().unwrap();
    it.fold(KeyRing::new(id, key), |r, (id, k)| {
        r.with_verify_key(id, k).unwrap()
    })
}

fn ts(v: &Value) -> Timestamp {
    Timestamp::from_unix_millis(v.as_u64().unwrap())
}

fn manager(v: &Value, signing: Option<u32>) -> TicketManager {
    TicketManager::new(v["purpose"].as_str().unwrap(), ring(&v["keys"], signing))
        .unwrap()
        .with_policy(Policy::nist_aal1().without_user_cap())
}

#[test]
fn encoder_reproduces_every_pinned_ticket_and_the_manager_accepts_it() {
    let all: Value = serde_json::from_str(VECTORS).unwrap();
    let mut mismatches = Vec::new();
    for v in all["valid"].as_array().unwrap() {
        let c = &v["claims"];
        let key_id = u32::try_from(v["key_id"].as_u64().unwrap()).unwrap();
        let purpose = v["purpose"].as_str().unwrap();
        let key =
            TicketKey::try_from(hex(v["keys"][key_id.to_string()].as_str().unwrap()).as_slice())
                .unwrap();
        let mut session_key = [0u8; 32];
        session_key.copy_from_slice(&hex(c["session_key"].as_str().unwrap()));
        let claims = Claims {
            created_at: ts(&c["created_at"]),
            issued_at: ts(&c["issued_at"]),
            auth_at: (!c["auth_at"].is_null()).then(|| ts(&c["auth_at"])),
            idle_deadline: ts(&c["idle_deadline"]),
            absolute_deadline: ts(&c["absolute_deadline"]),
            session_key,
            user: c["user"].as_str(),
            device: c["device"].as_str(),
            data: c["data"].as_str().unwrap(),
        };
        let mac = format::prefixed_mac(key.as_bytes(), purpose);
        let ticket = format::encode(&mac, format::purpose_id(purpose), key_id, &claims).unwrap();
        if ticket != v["ticket"].as_str().unwrap() {
            mismatches.push(format!("{}: {ticket}", v["name"]));
            continue;
        }
        let m = manager(v, Some(key_id));
        let loaded = m.load_at(&ticket, ts(&v["now"])).unwrap();
        let s = loaded.session;
        assert!(loaded.reissue.is_none(), "{}", v["name"]);
        assert_eq!(s.user(), claims.user);
        assert_eq!(s.device(), claims.device);
        assert_eq!(s.authenticated_at(), claims.auth_at);
        assert_eq!(s.created_at(), claims.created_at);
        assert_eq!(s.last_seen(), claims.issued_at);
        assert_eq!(s.idle_deadline(), claims.idle_deadline);
        assert_eq!(s.absolute_deadline(), claims.absolute_deadline);
        assert_eq!(s.data().encoded().as_ref(), claims.data);
        assert_eq!(s.store_key().as_bytes(), &session_key);
    }
    assert!(
        mismatches.is_empty(),
        "tickets differ from the pinned vectors:\n{}",
        mismatches.join("\n")
    );
}

#[test]
fn every_invalid_vector_is_refused_for_its_reason() {
    let all: Value = serde_json::from_str(VECTORS).unwrap();
    let invalid = all["invalid"].as_array().unwrap();
    assert!(invalid.len() >= 6);
    for v in invalid {
        let m = manager(v, None);
        let err = m
            .load_at(v["ticket"].as_str().unwrap(), ts(&v["now"]))
            .unwrap_err();
        assert_eq!(
            err.reason(),
            v["error"].as_str().unwrap(),
            "{}: {err}",
            v["name"]
        );
    }
}
