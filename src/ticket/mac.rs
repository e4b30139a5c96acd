//! HMAC-SHA256 (RFC 2104) for tickets, on SHA-256's block function.
//!
//! A ticket's MAC input starts with a prefix fixed per key and purpose (the
//! label and purpose, padded to whole blocks; see `docs/TICKET_FORMAT.md`),
//! so the inner state after `key ^ ipad` and the prefix, and the outer state
//! after `key ^ opad`, are computed once when the key ring is installed.
//! Each ticket then costs only the compressions of its own payload, its
//! padding and the outer block.
//!
//! Why not the `hmac` crate: the result is the same (the tests compare the
//! two on every length around the block boundaries, and the pinned test
//! vectors go through this code), but cloning its keyed state and its
//! generic buffering cost as much as two of the four compressions a typical
//! ticket needs, on every issue and every verify. Here the state is two
//! arrays of eight words and the padding is built in one stack block.
//!
//! Nothing here branches on secret data: lengths are public, and the tag
//! is compared in constant time by the caller.

use sha2::block_api::compress256;
use sha2::{Digest as _, Sha256};

/// SHA-256's block size in bytes.
const BLOCK: usize = 64;

/// SHA-256's initial hash value (FIPS 180-4 §5.3.3).
const IV: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// HMAC-SHA256 under one key, with a block-aligned prefix of the message
/// already absorbed. Holds key-derived secrets: no `Debug`.
#[derive(Clone)]
pub(crate) struct PrefixedMac {
    /// SHA-256 state after `key ^ ipad` and the prefix.
    inner: [u32; 8],
    /// Bytes that state has absorbed (for the length in the padding).
    absorbed: u64,
    /// SHA-256 state after `key ^ opad`.
    outer: [u32; 8],
}

impl PrefixedMac {
    /// The MAC under `key` of messages that start with `prefix`, which is a
    /// whole number of 64-byte blocks (a partial last block is ignored;
    /// the caller pads it, see [`crate::ticket::format::mac_prefix`]).
    pub(crate) fn new(key: &[u8], prefix: &[u8]) -> PrefixedMac {
        // RFC 2104: keys longer than a block are hashed first; shorter ones
        // are padded with zeros.
        let mut k = [0u8; BLOCK];
        if key.len() > BLOCK {
            k[..32].copy_from_slice(&Sha256::digest(key));
        } else {
            k[..key.len()].copy_from_slice(key);
        }
        let pad = |byte: u8| {
            let mut block = [0u8; BLOCK];
            for (b, k) in block.iter_mut().zip(k) {
                *b = k ^ byte;
            }
            block
        };
        let (prefix_blocks, _) = prefix.as_chunks::<BLOCK>();
        let mut inner = IV;
        compress256(&mut inner, &[pad(0x36)]);
        compress256(&mut inner, prefix_blocks);
        let mut outer = IV;
        compress256(&mut outer, &[pad(0x5c)]);
        PrefixedMac {
            inner,
            absorbed: ((1 + prefix_blocks.len()) * BLOCK) as u64,
            outer,
        }
    }

    /// HMAC-SHA256(key, prefix || `message`).
    pub(crate) fn tag(&self, message: &[u8]) -> [u8; 32] {
        let mut state = self.inner;
        let (blocks, rest) = message.as_chunks::<BLOCK>();
        compress256(&mut state, blocks);
        // SHA-256 padding: 0x80, zeros, then the message length in bits as
        // a big-endian u64 ending a block; one block if the rest leaves
        // room for the marker and the length, else two.
        let mut tail = [[0u8; BLOCK]; 2];
        let n = if rest.len() < BLOCK - 8 { 1 } else { 2 };
        let bits = (self.absorbed + message.len() as u64) * 8;
        let flat = tail.as_flattened_mut();
        flat[..rest.len()].copy_from_slice(rest);
        flat[rest.len()] = 0x80;
        flat[n * BLOCK - 8..n * BLOCK].copy_from_slice(&bits.to_be_bytes());
        compress256(&mut state, &tail[..n]);
        // Outer hash: the 32-byte inner digest after the opad block, padded
        // likewise in a single block.
        let mut block = [0u8; BLOCK];
        block[..32].copy_from_slice(&digest_bytes(&state));
        block[32] = 0x80;
        block[BLOCK - 8..].copy_from_slice(&(((BLOCK + 32) * 8) as u64).to_be_bytes());
        let mut outer = self.outer;
        compress256(&mut outer, &[block]);
        digest_bytes(&outer)
    }
}

/// A SHA-256 state as its big-endian digest bytes.
fn digest_bytes(state: &[u32; 8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (o, w) in out.chunks_exact_mut(4).zip(state) {
        o.copy_from_slice(&w.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::{Hmac, KeyInit as _, Mac as _};

    fn reference(key: &[u8], prefix: &[u8], message: &[u8]) -> [u8; 32] {
        let mut m = Hmac::<Sha256>::new_from_slice(key).unwrap();
        m.update(prefix);
        m.update(message);
        m.finalize().into_bytes().into()
    }

    fn bytes(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    #[test]
    fn matches_the_hmac_crate_for_every_message_length_key_size_and_prefix() {
        // Message lengths across three block boundaries (the one- and
        // two-block padding cases, 55/56 bytes), keys shorter than, equal
        // to and longer than a block, and prefixes of 0 to 2 blocks.
        for key_len in [32, 33, 64, 65, 100] {
            let key = bytes(key_len, 1);
            for prefix_blocks in 0..=2 {
                let prefix = bytes(prefix_blocks * BLOCK, 2);
                let mac = PrefixedMac::new(&key, &prefix);
                for len in 0..=200 {
                    let message = bytes(len, 3);
                    assert_eq!(
                        mac.tag(&message),
                        reference(&key, &prefix, &message),
                        "key {key_len}, prefix {prefix_blocks} blocks, message {len}"
                    );
                }
            }
        }
    }

    #[test]
    fn matches_rfc_4231_test_case_2() {
        // RFC 4231 §4.3: key "Jefe", data "what do ya want for nothing?".
        let mac = PrefixedMac::new(b"Jefe", b"");
        let expected = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
        let got: String = mac
            .tag(b"what do ya want for nothing?")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(got, expected);
    }
}
