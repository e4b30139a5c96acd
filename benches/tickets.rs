//! Ticket issue and verify, next to their floor.
//!
//! Run: `cargo bench --bench tickets -- --warm-up-time 1 --measurement-time 3`
//!
//! - `tickets/issue`: `TicketManager::create_at` for a user with a device
//!   label and three data entries (JSON-encode the data, draw a session
//!   key, sign, base64url-encode), in batches of 64 fresh inputs, each
//!   ticket dropped in the loop.
//! - `tickets/verify`: `TicketManager::load_at` of that ticket inside the
//!   touch interval (decode, check, MAC, build the `Session`; no reissue).
//! - `tickets/reissue`: the same load past the touch interval, which also
//!   signs a fresh ticket.
//! - `tickets/floor_verify`: the floor for verify, base64url-decoding the
//!   same ticket and computing HMAC-SHA256 over the same bytes with a
//!   precomputed key (`floor_verify_rekey` keys the HMAC on every call, as a
//!   naive implementation would).
//!
//! Goals (issue 7): verify ≤ 1.3× `floor_verify`; verify ≤ 0.35× and issue
//! ≤ 0.6× jsonwebtoken HS256 decode and encode (measured by the peers
//! package).

use std::hint::black_box;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use hmac::{Hmac, KeyInit as _, Mac as _};
use latchkey::{KeyRing, NewSession, Policy, TicketKey, TicketManager, Timestamp};
use sha2::Sha256;

const KEY: [u8; 32] = [0x42; 32];
const NOW: Timestamp = Timestamp::from_unix_millis(1_800_000_000_000);

fn payload() -> NewSession {
    NewSession::new()
        .with_user("alice@example.org")
        .with_device("Firefox on Linux")
        .with_value("cart", &[3, 5, 8])
        .and_then(|n| n.with_value("theme", "dark"))
        .and_then(|n| n.with_value("csrf", "b6f1c0a5e2d94c7f"))
        .expect("serializable")
}

fn bench(c: &mut Criterion) {
    let key = TicketKey::try_from(&KEY[..]).expect("32 bytes");
    let manager = TicketManager::new("__Host-session", KeyRing::new(1, key))
        .expect("valid purpose")
        .with_policy(Policy::nist_aal2().without_user_cap());
    let new = payload();
    let token = manager
        .create_at(new.clone(), NOW)
        .expect("issues")
        .token()
        .to_owned();
    let mut g = c.benchmark_group("tickets");

    g.bench_function("issue", |b| {
        // Small batches, each ticket dropped inside the loop: a server
        // builds the `NewSession` just before issuing and sends the ticket
        // off at once. With large batches criterion would keep thousands of
        // tickets alive and time the heap growth, and consume inputs built
        // long before (out of cache).
        b.iter_batched(
            || new.clone(),
            |n| {
                let issued = manager.create_at(n, NOW);
                assert!(issued.is_ok());
                drop(black_box(issued));
            },
            BatchSize::NumIterations(64),
        )
    });

    g.bench_function("verify", |b| {
        b.iter(|| {
            let loaded = manager.load_at(black_box(&token), NOW);
            assert!(loaded.as_ref().is_ok_and(|l| l.reissue.is_none()));
            loaded
        })
    });

    let later = NOW.saturating_add(Duration::from_secs(120));
    g.bench_function("reissue", |b| {
        b.iter(|| {
            let loaded = manager.load_at(black_box(&token), later);
            assert!(loaded.as_ref().is_ok_and(|l| l.reissue.is_some()));
            loaded
        })
    });

    // The floor: what any HMAC ticket must do at least.
    let body = &token[4..];
    let keyed = Hmac::<Sha256>::new_from_slice(&KEY).expect("any length");
    g.bench_function("floor_verify", |b| {
        let mut buf = [0u8; 3072];
        b.iter(|| {
            let n = URL_SAFE_NO_PAD
                .decode_slice(black_box(body).as_bytes(), &mut buf)
                .expect("base64url");
            let mut mac = keyed.clone();
            mac.update(&buf[..n]);
            let tag = mac.finalize().into_bytes();
            assert_eq!(tag.len(), 32);
            tag
        })
    });
    g.bench_function("floor_verify_rekey", |b| {
        let mut buf = [0u8; 3072];
        b.iter(|| {
            let n = URL_SAFE_NO_PAD
                .decode_slice(black_box(body).as_bytes(), &mut buf)
                .expect("base64url");
            let mut mac = Hmac::<Sha256>::new_from_slice(&KEY).expect("any length");
            mac.update(&buf[..n]);
            let tag = mac.finalize().into_bytes();
            assert_eq!(tag.len(), 32);
            tag
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
