//! HMAC-SHA256 (RFC 2104) for tickets, with the per-key prefix absorbed once.
//!
//! A ticket's MAC input starts with a prefix fixed per key and purpose (the
//! label and purpose, padded to whole blocks; see `docs/TICKET_FORMAT.md`).
//! The keyed state after that prefix is computed when the key ring is
//! installed, and each ticket clones it and absorbs only its own bytes.
//!
//! This is the `hmac` crate's HMAC, not our own. A hand-written HMAC on
//! SHA-256's block function (two 8-word states, padding built on the stack)
//! was measured at about 25 ns less per verify and 15 ns less per issue; no
//! speed goal changed side because of it, and a session library is chosen
//! for trust first, so the audited implementation stays.

use hmac::{Hmac, KeyInit, Mac as _};
use rand::Rng as _;
use sha2::Sha256;

/// HMAC-SHA256 under one key, with a prefix of every message already
/// absorbed. Holds key-derived secrets: no `Debug`.
#[derive(Clone)]
pub(crate) struct PrefixedMac(Hmac<Sha256>);

impl PrefixedMac {
    /// The MAC under `key` of messages that start with `prefix`.
    pub(crate) fn new(key: &[u8], prefix: &[u8]) -> PrefixedMac {
        // HMAC takes keys of any length (RFC 2104 hashes long ones), so the
        // error arm cannot be taken. Were it ever, it fails closed: a fresh
        // random key that nobody holds, so nothing minted or presented
        // verifies (never a fixed key, which anyone could sign with).
        let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
            Ok(mac) => mac,
            Err(_) => {
                let mut random = hmac::digest::Key::<Hmac<Sha256>>::default();
                rand::rng().fill_bytes(&mut random);
                <Hmac<Sha256> as KeyInit>::new(&random)
            }
        };
        mac.update(prefix);
        PrefixedMac(mac)
    }

    /// HMAC-SHA256(key, prefix || `message`).
    pub(crate) fn tag(&self, message: &[u8]) -> [u8; 32] {
        let mut mac = self.0.clone();
        mac.update(message);
        mac.finalize().into_bytes().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// RFC 4231 §4.3 (key "Jefe"), with the message split anywhere between
    /// prefix and per-ticket part: the prefix is absorbed exactly once.
    #[test]
    fn matches_rfc_4231_test_case_2_wherever_the_prefix_ends() {
        let expected = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
        let data = b"what do ya want for nothing?";
        for split in 0..=data.len() {
            let mac = PrefixedMac::new(b"Jefe", &data[..split]);
            assert_eq!(hex(&mac.tag(&data[split..])), expected, "split at {split}");
            // The keyed state is reused, never consumed.
            assert_eq!(hex(&mac.tag(&data[split..])), expected, "split at {split}");
        }
    }
}
