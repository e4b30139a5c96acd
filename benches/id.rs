//! Session IDs: generating, encoding, parsing and hashing them.
//!
//! ```text
//! cargo bench -p latchkey --bench id
//! cargo bench -p latchkey --bench id -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! Cases (`group/case`):
//! - `id/generate`: 32 bytes from the thread-local CSPRNG.
//! - `id/generate_encode`: the above plus the 43-character token, what
//!   `create` pays per session (its floor, ThreadRng + base64url, is in
//!   `cargo bench -p latchkey-peers`).
//! - `id/parse`: strict parse of a valid token.
//! - `id/parse_reject`: a token with a bad character, refused.
//! - `id/store_key`: SHA-256 of the ID, the key a store files it under.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use latchkey::SessionId;

fn id(c: &mut Criterion) {
    let mut g = c.benchmark_group("id");
    g.throughput(Throughput::Elements(1));
    g.bench_function("generate", |b| {
        b.iter(|| {
            let id = SessionId::generate();
            assert_ne!(id.store_key().as_bytes(), &[0u8; 32]);
            id
        })
    });
    g.bench_function("generate_encode", |b| {
        b.iter(|| {
            let token = SessionId::generate().to_token();
            assert_eq!(token.len(), SessionId::TOKEN_LEN);
            token
        })
    });
    let token = SessionId::generate().to_token();
    g.bench_function("parse", |b| {
        b.iter(|| {
            let id = SessionId::parse(&token);
            assert!(id.is_ok());
            id
        })
    });
    let bad = format!("{}+", &token[..42]);
    g.bench_function("parse_reject", |b| {
        b.iter(|| {
            let id = SessionId::parse(&bad);
            assert!(id.is_err());
            id
        })
    });
    let id = SessionId::parse(&token).unwrap_or_else(|_| SessionId::generate());
    g.bench_function("store_key", |b| {
        b.iter(|| {
            let key = id.store_key();
            assert_ne!(key.as_bytes(), &[0u8; 32]);
            key
        })
    });
    g.finish();
}

criterion_group!(benches, id);
criterion_main!(benches);
