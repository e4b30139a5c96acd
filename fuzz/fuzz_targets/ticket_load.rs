//! Arbitrary input and mutated valid tickets fed to `TicketManager::load`:
//! never a panic, and nothing is accepted unless it is byte-identical to a
//! ticket the manager issued.
//!
//! The first input byte picks a mode:
//! - 0: the rest of the input, as text, is the ticket;
//! - 1: edit the text of a valid ticket (each pair of bytes: a position and
//!   a replacement), so prefix, alphabet and canonical-encoding checks are hit;
//! - 2: edit the decoded bytes of a valid ticket and re-encode them
//!   canonically, so the structure checks and the MAC are what must refuse.
#![no_main]

use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use latchkey::{KeyRing, NewSession, TicketKey, TicketManager, Timestamp};
use libfuzzer_sys::fuzz_target;

const NOW: Timestamp = Timestamp::from_unix_millis(1_800_000_000_000);

struct Fixture {
    manager: TicketManager,
    valid: Vec<String>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let key = TicketKey::try_from(&[0x5au8; 32][..]).unwrap();
        let manager = TicketManager::new("session", KeyRing::new(3, key)).unwrap();
        let valid = vec![
            manager.create_at(NewSession::new(), NOW).unwrap(),
            manager
                .create_at(
                    NewSession::new()
                        .with_user("alice")
                        .with_device("phone")
                        .with_value("cart", &[1, 2, 3])
                        .unwrap(),
                    NOW,
                )
                .unwrap(),
        ]
        .into_iter()
        .map(|i| i.token().to_owned())
        .collect();
        Fixture { manager, valid }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let base = &f.valid[usize::from(mode / 3) % f.valid.len()];
    let candidate: Vec<u8> = match mode % 3 {
        0 => rest.to_vec(),
        1 => {
            let mut t = base.clone().into_bytes();
            for pair in rest.chunks_exact(2) {
                let at = usize::from(pair[0]) * t.len() / 256;
                t[at] = pair[1];
            }
            t
        }
        _ => {
            let mut raw = URL_SAFE_NO_PAD.decode(&base[4..]).unwrap();
            for pair in rest.chunks_exact(2) {
                let at = usize::from(pair[0]) * raw.len() / 256;
                raw[at] ^= pair[1];
            }
            if rest.len() % 2 == 1 {
                // An odd tail truncates or extends the payload.
                let n = usize::from(rest[rest.len() - 1]);
                if n < raw.len() {
                    raw.truncate(raw.len() - n);
                } else {
                    raw.extend(std::iter::repeat_n(0u8, n % 64));
                }
            }
            format!("lk1.{}", URL_SAFE_NO_PAD.encode(&raw)).into_bytes()
        }
    };
    let Ok(text) = std::str::from_utf8(&candidate) else {
        return;
    };
    match f.manager.load_at(text, NOW) {
        Ok(loaded) => {
            assert!(
                f.valid.iter().any(|v| v == text),
                "accepted a ticket the manager never issued"
            );
            // Reading the data must not panic either.
            let _ = loaded.session.keys().count();
        }
        Err(e) => assert!(e.is_rejection(), "a load failed without a rejection: {e}"),
    }
});
