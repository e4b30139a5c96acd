//! `timing tickets` and `timing id`: the stateless cases.
//!
//! Tickets: `issue` (`TicketManager::create_at`, inputs cloned in batches
//! of 64 outside the timing, each ticket dropped inside it) beside
//! jsonwebtoken HS256 encode; `verify` (`load`, reading the system clock)
//! beside jsonwebtoken decode (with `exp` validation, which reads the
//! clock too) and the verify floor: base64url-decode the ticket and
//! HMAC-SHA256 it with a precomputed key schedule. Same payload as every
//! case. To profile one case under callgrind:
//!
//! ```text
//! valgrind --tool=callgrind --toggle-collect='*TicketManager::create_at*' \
//!     target/release/timing tickets --quick
//! ```
//!
//! ID: `SessionId::generate().to_token()` beside its floor, 32 bytes from
//! `ThreadRng` and base64url.

use std::hint::black_box;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit as _, Mac as _};
use latchkey::{
    Clock as _, KeyRing, NewSession, SessionId, SessionManager as _, SystemClock, TicketKey,
    TicketManager,
};
use latchkey_peers::harness::{Case, interleaved, timed};
use latchkey_peers::results::{Figure, record};
use latchkey_peers::{new_session, payload};
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::Opts;

/// Inputs cloned at a time for `issue`.
const BATCH: u64 = 64;

/// JWT claims: the payload and an expiry (as in `benches/compare.rs`).
#[derive(Serialize, Deserialize)]
struct Claims {
    exp: u64,
    data: serde_json::Map<String, serde_json::Value>,
}

pub(crate) fn tickets(opts: &Opts) {
    let ops = opts.ops(8192).div_ceil(BATCH) * BATCH;
    let rounds = opts.rounds(40);
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
    let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    let enc = jsonwebtoken::EncodingKey::from_secret(&secret);
    let dec = jsonwebtoken::DecodingKey::from_secret(&secret);
    let exp = 4_000_000_000;
    let claims = Claims {
        exp,
        data: payload(),
    };
    let jwt = match jsonwebtoken::encode(&header, &claims, &enc) {
        Ok(t) => t,
        Err(e) => panic!("encode failed: {e}"),
    };
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.validate_exp = true;
    let (tickets, new, ticket, keyed) = (&tickets, &new, &ticket, &keyed);
    let (header, enc, dec, claims, jwt, validation) =
        (&header, &enc, &dec, &claims, &jwt, &validation);
    let mut cases = [
        Case::new("ticket issue", ops, move |_| {
            let mut total = Duration::ZERO;
            for _ in 0..ops / BATCH {
                let inputs: Vec<NewSession> = vec![new.clone(); BATCH as usize];
                let t = Instant::now();
                for n in inputs {
                    let issued = tickets.create_at(black_box(n), now);
                    assert!(matches!(issued, Ok(ref i) if i.token().len() > 100));
                    drop(black_box(issued));
                }
                total += t.elapsed();
            }
            total
        }),
        Case::new("jwt encode", ops, move |_| {
            timed(|| {
                for _ in 0..ops {
                    let token = jsonwebtoken::encode(header, black_box(claims), enc);
                    assert!(matches!(token, Ok(ref t) if t.len() > 100));
                    drop(black_box(token));
                }
            })
        }),
        Case::new("ticket verify", ops, move |_| {
            timed(|| {
                for _ in 0..ops {
                    // Checked and kept by reference, dropped in place: moved
                    // into `black_box`, the result would be copied once more
                    // per verify by the harness itself.
                    let loaded = tickets.load(black_box(ticket));
                    assert!(matches!(loaded, Ok(ref l) if l.reissue.is_none()));
                    black_box(&loaded);
                }
            })
        }),
        Case::new("jwt decode", ops, move |_| {
            timed(|| {
                for _ in 0..ops {
                    let data = jsonwebtoken::decode::<Claims>(black_box(jwt), dec, validation);
                    assert!(
                        matches!(data, Ok(ref d) if d.claims.exp == exp && d.claims.data.len() == 3)
                    );
                    black_box(&data);
                }
            })
        }),
        Case::new("verify floor", ops, move |_| {
            let body = &ticket[4..];
            let mut buf = vec![0u8; body.len()];
            timed(|| {
                for _ in 0..ops {
                    let decoded =
                        URL_SAFE_NO_PAD.decode_slice(black_box(body).as_bytes(), &mut buf);
                    let Ok(n) = decoded else { panic!("base64url") };
                    let mut mac = keyed.clone();
                    mac.update(&buf[..n]);
                    black_box(mac.finalize().into_bytes());
                }
            })
        }),
    ];
    let t = interleaved(rounds, &mut cases);
    println!("tickets:");
    t.print();
    let best = |c: &str| t.fastest(c);
    println!(
        "  issue ÷ JWT encode {:.2}x; verify ÷ JWT decode {:.2}x, ÷ floor {:.2}x",
        best("ticket issue") / best("jwt encode"),
        best("ticket verify") / best("jwt decode"),
        best("ticket verify") / best("verify floor"),
    );
    if opts.record {
        let how = format!("fastest of {rounds} interleaved rounds of {ops}");
        record(
            "ticket_verify",
            Figure {
                latchkey: Some(best("ticket verify")),
                peer: Some(best("jwt decode")),
                floor: Some(best("verify floor")),
                how: how.clone(),
                ..Figure::default()
            },
        );
        record(
            "ticket_issue",
            Figure {
                latchkey: Some(best("ticket issue")),
                peer: Some(best("jwt encode")),
                floor: None,
                how,
                ..Figure::default()
            },
        );
    }
}

pub(crate) fn id(opts: &Opts) {
    let ops = opts.ops(100_000);
    let rounds = opts.rounds(15);
    let mut cases = [
        Case::new("generate + encode", ops, |_| {
            timed(|| {
                for _ in 0..ops {
                    let token = SessionId::generate().to_token();
                    assert_eq!(token.len(), 43);
                    black_box(token);
                }
            })
        }),
        Case::new("floor", ops, |_| {
            timed(|| {
                for _ in 0..ops {
                    let mut bytes = [0u8; 32];
                    rand::rng().fill_bytes(&mut bytes);
                    let token = URL_SAFE_NO_PAD.encode(bytes);
                    assert_eq!(token.len(), 43);
                    black_box(token);
                }
            })
        }),
    ];
    let t = interleaved(rounds, &mut cases);
    println!("ID:");
    t.print();
    let (ours, least) = (t.fastest("generate + encode"), t.fastest("floor"));
    println!("  generate + encode ÷ floor {:.2}x", ours / least);
    if opts.record {
        record(
            "id",
            Figure {
                latchkey: Some(ours),
                peer: None,
                floor: Some(least),
                how: format!("fastest of {rounds} interleaved rounds of {ops}"),
                ..Figure::default()
            },
        );
    }
}
