//! Ticket issue and verify beside JWT encode and the verify floor, timed in
//! a way a busy shared machine disturbs less than a criterion run, and a
//! loop to profile under callgrind.
//!
//! ```text
//! cargo run --release -p latchkey-peers --bin ticket_timing             # all cases, 40 rounds
//! cargo run --release -p latchkey-peers --bin ticket_timing -- issue 10 # one case
//! valgrind --tool=callgrind --toggle-collect='*TicketManager::create_at*' \
//!     target/release/ticket_timing issue 1                               # instructions per issue
//! ```
//!
//! Same payload and cases as the `stateless` group of `benches/compare.rs`:
//! `issue` (`TicketManager::create_at`, inputs cloned in batches of 64
//! outside the timing, each ticket dropped inside it), `verify` (`load`,
//! reading the system clock), `floor` (base64url-decode the ticket and
//! HMAC-SHA256 it with a precomputed key schedule) and `jwt_encode`
//! (jsonwebtoken HS256). Each round runs every case for 8 192 operations,
//! interleaved, and each case's figure is its fastest round: other processes
//! only ever add time, so the least disturbed round is the closest to the
//! code's own cost. Ratios are printed against JWT encode (issue) and the
//! floor (verify).

use std::hint::black_box;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit as _, Mac as _};
use latchkey::{
    Clock as _, KeyRing, NewSession, SessionManager as _, SystemClock, TicketKey, TicketManager,
    Timestamp,
};
use latchkey_peers::{new_session, payload};
use serde::Serialize;
use sha2::Sha256;

/// Operations per case per round.
const OPS: usize = 8192;
/// Inputs cloned at a time for `issue`.
const BATCH: usize = 64;

/// JWT claims: the payload and an expiry (as in `benches/compare.rs`).
#[derive(Serialize)]
struct Claims {
    exp: u64,
    data: serde_json::Map<String, serde_json::Value>,
}

struct Fixture {
    tickets: TicketManager,
    now: Timestamp,
    new: NewSession,
    ticket: String,
    keyed: Hmac<Sha256>,
    header: jsonwebtoken::Header,
    enc: jsonwebtoken::EncodingKey,
    claims: Claims,
}

fn fixture() -> Fixture {
    let secret = [7u8; 64];
    let Ok(key) = TicketKey::try_from(&secret[..32]) else {
        panic!("ticket key")
    };
    let tickets = match TicketManager::new("session", KeyRing::new(1, key)) {
        Ok(m) => m,
        Err(e) => panic!("ticket manager: {e}"),
    };
    let now = SystemClock.now();
    let new = new_session();
    let ticket = match tickets.create_at(new.clone(), now) {
        Ok(i) => i.token().to_owned(),
        Err(e) => panic!("issue failed: {e}"),
    };
    let Ok(keyed) = Hmac::<Sha256>::new_from_slice(&secret[..32]) else {
        panic!("hmac key")
    };
    Fixture {
        tickets,
        now,
        new,
        ticket,
        keyed,
        header: jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        enc: jsonwebtoken::EncodingKey::from_secret(&secret),
        claims: Claims {
            exp: 1_800_000_000,
            data: payload(),
        },
    }
}

/// Time for `OPS` operations of `case`.
fn round(f: &Fixture, case: &str) -> Duration {
    let mut total = Duration::ZERO;
    match case {
        "issue" => {
            for _ in 0..OPS / BATCH {
                let inputs: Vec<NewSession> = vec![f.new.clone(); BATCH];
                let t = Instant::now();
                for n in inputs {
                    let issued = f.tickets.create_at(black_box(n), f.now);
                    assert!(matches!(issued, Ok(ref i) if i.token().len() > 100));
                    drop(black_box(issued));
                }
                total += t.elapsed();
            }
        }
        "verify" => {
            let t = Instant::now();
            for _ in 0..OPS {
                // Checked and kept by reference, dropped in place: moved
                // into `black_box`, the 352-byte result would be copied
                // once more per verify by the harness itself (as the load
                // harness in `benches/support` explains).
                let loaded = f.tickets.load(black_box(&f.ticket));
                assert!(matches!(loaded, Ok(ref l) if l.reissue.is_none()));
                black_box(&loaded);
            }
            total = t.elapsed();
        }
        "floor" => {
            let body = &f.ticket[4..];
            let mut buf = vec![0u8; body.len()];
            let t = Instant::now();
            for _ in 0..OPS {
                let decoded = URL_SAFE_NO_PAD.decode_slice(black_box(body).as_bytes(), &mut buf);
                let Ok(n) = decoded else { panic!("base64url") };
                let mut mac = f.keyed.clone();
                mac.update(&buf[..n]);
                black_box(mac.finalize().into_bytes());
            }
            total = t.elapsed();
        }
        "jwt_encode" => {
            let t = Instant::now();
            for _ in 0..OPS {
                let token = jsonwebtoken::encode(&f.header, black_box(&f.claims), &f.enc);
                assert!(matches!(token, Ok(ref t) if t.len() > 100));
                drop(black_box(token));
            }
            total = t.elapsed();
        }
        other => panic!("unknown case {other}: issue, verify, floor, jwt_encode or all"),
    }
    total
}

fn main() {
    let mut args = std::env::args().skip(1);
    let case = args.next().unwrap_or_else(|| "all".into());
    let rounds: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(40);
    let cases: Vec<&str> = if case == "all" {
        vec!["issue", "jwt_encode", "verify", "floor"]
    } else {
        vec![case.as_str()]
    };
    let f = fixture();
    let mut best = vec![f64::MAX; cases.len()];
    for _ in 0..rounds {
        for (case, best) in cases.iter().zip(best.iter_mut()) {
            let ns = round(&f, case).as_nanos() as f64 / OPS as f64;
            *best = best.min(ns);
        }
    }
    for (case, ns) in cases.iter().zip(&best) {
        println!("{case:>10}: {ns:6.1} ns (fastest of {rounds} rounds of {OPS})");
    }
    let get = |name: &str| cases.iter().position(|c| *c == name).map(|i| best[i]);
    if let (Some(issue), Some(jwt)) = (get("issue"), get("jwt_encode")) {
        println!("issue / JWT encode: {:.2}x (goal <= 0.6x)", issue / jwt);
    }
    if let (Some(verify), Some(floor)) = (get("verify"), get("floor")) {
        println!("verify / floor:     {:.2}x (goal <= 1.3x)", verify / floor);
    }
}
