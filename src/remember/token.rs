//! The remember-me token: its wire format, its strict parser, and the
//! values derived from it (the store key, the verifier digest, the pad that
//! seals a replacement).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::Rng as _;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::clock::Timestamp;
use crate::id::{Fingerprint, StoreKey};

/// What every remember-me token starts with: the format's name and version,
/// so a session token or a ticket pasted into the remember-me cookie is
/// refused by its first bytes, and a later format can be told apart.
pub(crate) const PREFIX: &str = "rm1.";

/// Bytes of the selector: the half of the token that finds the record.
pub(crate) const SELECTOR_LEN: usize = 16;

/// Bytes of the verifier: the half of the token that proves possession.
pub(crate) const VERIFIER_LEN: usize = 32;

/// Selector and verifier together.
pub(crate) const RAW_LEN: usize = SELECTOR_LEN + VERIFIER_LEN;

/// Characters of a token: the prefix and 64 characters of base64url (48
/// bytes are 16 whole groups of three, so there is no padding and no
/// second spelling of any token).
pub(crate) const TOKEN_LEN: usize = PREFIX.len() + RAW_LEN / 3 * 4;

/// Label hashed before the selector to make the record's store key.
const KEY_LABEL: &[u8] = b"latchkey/v1/remember-me\0";
/// Label hashed before the verifier to make the digest a record keeps.
const VERIFIER_LABEL: &[u8] = b"latchkey/v1/remember-verifier\0";
/// Label of the pad that seals a replacement token in a used record.
const SEAL_LABEL: &[u8] = b"latchkey/v1/remember-seal\0";
/// Label hashed before a user name to find the user's remember-me cutoff.
const CUTOFF_LABEL: &[u8] = b"latchkey/v1/remember-cutoff\0";

/// Why a string is not a remember-me token.
///
/// The reason never quotes the input: a near-miss token may still be
/// secret.
///
/// # Example
/// ```
/// use latchkey::{Error, MemoryStore, Policy, RememberMe, RememberTokenError};
/// use latchkey::remember::RememberError;
/// use std::sync::Arc;
///
/// let remember = RememberMe::new(Arc::new(MemoryStore::new()), Policy::default());
/// let err = remember.forget("rm1.short").unwrap_err();
/// assert!(matches!(
///     err,
///     Error::RememberMe(RememberError::Malformed(RememberTokenError::WrongLength(9)))
/// ));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RememberTokenError {
    /// The token is empty.
    #[error("the remember-me token is empty")]
    Empty,
    /// The token does not have the exact length of a remember-me token (68
    /// bytes). Checked first, so an oversized header costs one comparison.
    #[error("the remember-me token has {0} bytes, not the 68 of a remember-me token")]
    WrongLength(usize),
    /// The token does not start with `rm1.`: it is some other kind of
    /// token, or a future format.
    #[error("the remember-me token does not start with `rm1.`")]
    WrongPrefix,
    /// After the prefix, a character outside the base64url alphabet.
    #[error("the remember-me token has a character outside the base64url alphabet")]
    BadCharacter,
}

/// A remember-me token's two secret halves. Never printed, never stored:
/// the store sees [`Secret::key`] and [`Secret::verifier_digest`] only.
#[derive(Clone)]
pub(crate) struct Secret {
    selector: [u8; SELECTOR_LEN],
    verifier: [u8; VERIFIER_LEN],
}

impl Secret {
    /// Fresh halves from the thread-local CSPRNG, which the operating
    /// system seeds (as session IDs are drawn).
    pub(crate) fn generate() -> Secret {
        let mut raw = [0u8; RAW_LEN];
        rand::rng().fill_bytes(&mut raw);
        Secret::from_raw(&raw)
    }

    fn from_raw(raw: &[u8; RAW_LEN]) -> Secret {
        let mut selector = [0u8; SELECTOR_LEN];
        let mut verifier = [0u8; VERIFIER_LEN];
        selector.copy_from_slice(&raw[..SELECTOR_LEN]);
        verifier.copy_from_slice(&raw[SELECTOR_LEN..]);
        Secret { selector, verifier }
    }

    fn to_raw(&self) -> [u8; RAW_LEN] {
        let mut raw = [0u8; RAW_LEN];
        raw[..SELECTOR_LEN].copy_from_slice(&self.selector);
        raw[SELECTOR_LEN..].copy_from_slice(&self.verifier);
        raw
    }

    /// Parses a presented token strictly: exactly [`TOKEN_LEN`] bytes, the
    /// prefix, then base64url. Nothing is looked up before this passes.
    pub(crate) fn parse(token: &str) -> Result<Secret, RememberTokenError> {
        let bytes = token.as_bytes();
        if bytes.is_empty() {
            return Err(RememberTokenError::Empty);
        }
        // Length first: a 10 MB cookie is refused after one comparison.
        if bytes.len() != TOKEN_LEN {
            return Err(RememberTokenError::WrongLength(bytes.len()));
        }
        let Some(body) = bytes.strip_prefix(PREFIX.as_bytes()) else {
            return Err(RememberTokenError::WrongPrefix);
        };
        // 64 characters are 16 whole groups: the scalar decoder accepts
        // exactly the alphabet, with no padding and no spare bits, so each
        // token has one spelling.
        let mut raw = [0u8; RAW_LEN];
        match URL_SAFE_NO_PAD.decode_slice(body, &mut raw) {
            Ok(RAW_LEN) => Ok(Secret::from_raw(&raw)),
            _ => Err(RememberTokenError::BadCharacter),
        }
    }

    /// The token: the text a client stores and presents.
    pub(crate) fn encode(&self) -> String {
        let mut out = String::with_capacity(TOKEN_LEN);
        out.push_str(PREFIX);
        URL_SAFE_NO_PAD.encode_string(self.to_raw(), &mut out);
        out
    }

    /// Where the token's record is kept: SHA-256 of a label and the
    /// selector. See [`remember_key`].
    pub(crate) fn key(&self) -> StoreKey {
        remember_key(&self.selector)
    }

    /// What a record keeps of the verifier: SHA-256 of a label and the
    /// verifier.
    pub(crate) fn verifier_digest(&self) -> [u8; 32] {
        Sha256::new()
            .chain_update(VERIFIER_LABEL)
            .chain_update(self.verifier)
            .finalize()
            .into()
    }

    /// Whether this token's verifier is the one `digest` was made from, in
    /// constant time (the digest of a presented verifier against the
    /// stored one: no early exit tells how many bytes matched).
    pub(crate) fn verifies(&self, digest: &[u8; 32]) -> bool {
        self.verifier_digest().ct_eq(digest).into()
    }

    /// Seals `next` so that only a holder of this token can open it: `next`
    /// XOR a pad of SHA-256 over a label, a counter and this token's both
    /// halves. The store never holds this token, so a dump of the store
    /// alone opens nothing.
    pub(crate) fn seal(&self, next: &Secret) -> [u8; RAW_LEN] {
        let mut out = next.to_raw();
        for (o, p) in out.iter_mut().zip(self.pad()) {
            *o ^= p;
        }
        out
    }

    /// Opens what [`seal`](Self::seal) made with this token.
    pub(crate) fn open(&self, sealed: &[u8; RAW_LEN]) -> Secret {
        let mut raw = *sealed;
        for (o, p) in raw.iter_mut().zip(self.pad()) {
            *o ^= p;
        }
        Secret::from_raw(&raw)
    }

    fn pad(&self) -> [u8; 64] {
        let block = |counter: u8| -> [u8; 32] {
            Sha256::new()
                .chain_update(SEAL_LABEL)
                .chain_update([counter])
                .chain_update(self.selector)
                .chain_update(self.verifier)
                .finalize()
                .into()
        };
        let mut pad = [0u8; 64];
        pad[..32].copy_from_slice(&block(0));
        pad[32..].copy_from_slice(&block(1));
        pad
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({})", self.key().fingerprint())
    }
}

/// The store key of the record of a token with `selector`: SHA-256 over
/// `latchkey/v1/remember-me\0` and the 16 selector bytes.
///
/// It cannot collide with the other keys a shared store holds: a
/// server-side session's key is SHA-256 of exactly 32 bytes (this input is
/// 40), a ticket session's key is 32 random bytes, and the other derived
/// keys hash other labels (`latchkey/v1/user-cutoff\0`,
/// `latchkey/v1/remember-cutoff\0`), which differ from this one within
/// their first 20 bytes.
pub(crate) fn remember_key(selector: &[u8; SELECTOR_LEN]) -> StoreKey {
    StoreKey::from_bytes(
        Sha256::new()
            .chain_update(KEY_LABEL)
            .chain_update(selector)
            .finalize()
            .into(),
    )
}

/// Where a user's remember-me cutoff is kept: SHA-256 over
/// `latchkey/v1/remember-cutoff\0` and the user name, so the store never
/// sees the name in a key. A different label from the ticket manager's
/// per-user cutoff, so the two never share a record in a shared store.
pub(crate) fn cutoff_key(user: &str) -> StoreKey {
    StoreKey::from_bytes(
        Sha256::new()
            .chain_update(CUTOFF_LABEL)
            .chain_update(user.as_bytes())
            .finalize()
            .into(),
    )
}

/// A remember-me token as issued: the value of the remember-me cookie, and
/// what the server knows of it.
///
/// `Debug` shows the fingerprint and the times, never the token; equality
/// runs in constant time.
///
/// # Example
/// ```
/// use std::sync::Arc;
/// use latchkey::{MemoryStore, Policy, RememberMe, Timestamp};
///
/// let remember = RememberMe::new(Arc::new(MemoryStore::new()), Policy::default());
/// let now = Timestamp::from_unix_millis(1_800_000_000_000);
/// let token = remember.issue_at("alice", now)?;
/// assert!(token.token().starts_with("rm1."));
/// assert_eq!(token.token().len(), 68);
/// assert!(!format!("{token:?}").contains(token.token()));
/// # Ok::<(), latchkey::Error>(())
/// ```
#[derive(Clone)]
pub struct RememberToken {
    pub(crate) token: String,
    pub(crate) fingerprint: Fingerprint,
    pub(crate) issued_at: Timestamp,
    pub(crate) expires_at: Timestamp,
}

impl RememberToken {
    /// The secret token: the remember-me cookie's value. Send it to the
    /// client and nowhere else.
    ///
    /// # Example
    /// ```
    /// use std::sync::Arc;
    /// use latchkey::{MemoryStore, Policy, RememberMe, Timestamp};
    /// let remember = RememberMe::new(Arc::new(MemoryStore::new()), Policy::default());
    /// let token = remember.issue_at("alice", Timestamp::from_unix_millis(0))?;
    /// assert!(token.token().starts_with("rm1."));
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The log-safe name of the token: the fingerprint of its record's
    /// store key.
    ///
    /// # Example
    /// ```
    /// use std::sync::Arc;
    /// use latchkey::{MemoryStore, Policy, RememberMe, Timestamp};
    /// let remember = RememberMe::new(Arc::new(MemoryStore::new()), Policy::default());
    /// let token = remember.issue_at("alice", Timestamp::from_unix_millis(0))?;
    /// assert_eq!(token.fingerprint().to_string().len(), 12);
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// When it was issued; the cookie's `Max-Age` counts from here.
    ///
    /// # Example
    /// ```
    /// use std::sync::Arc;
    /// use latchkey::{MemoryStore, Policy, RememberMe, Timestamp};
    /// let remember = RememberMe::new(Arc::new(MemoryStore::new()), Policy::default());
    /// let now = Timestamp::from_unix_millis(1_000);
    /// assert_eq!(remember.issue_at("alice", now)?.issued_at(), now);
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    pub fn issued_at(&self) -> Timestamp {
        self.issued_at
    }

    /// When it stops working: the password login that started its series
    /// plus [`Policy::remember_me_lifetime`](crate::Policy::remember_me_lifetime).
    /// A replacement keeps its predecessor's deadline.
    ///
    /// # Example
    /// ```
    /// use std::{sync::Arc, time::Duration};
    /// use latchkey::{MemoryStore, Policy, RememberMe, Timestamp};
    /// let remember = RememberMe::new(Arc::new(MemoryStore::new()), Policy::default());
    /// let now = Timestamp::from_unix_millis(0);
    /// let token = remember.issue_at("alice", now)?;
    /// assert_eq!(token.expires_at(), now.saturating_add(Duration::from_secs(30 * 24 * 3600)));
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    pub fn expires_at(&self) -> Timestamp {
        self.expires_at
    }
}

impl PartialEq for RememberToken {
    fn eq(&self, other: &RememberToken) -> bool {
        // Tokens are secrets: no early exit on the first differing byte.
        self.token.as_bytes().ct_eq(other.token.as_bytes()).into()
    }
}

impl Eq for RememberToken {}

impl fmt::Debug for RememberToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RememberToken")
            .field("fingerprint", &self.fingerprint)
            .field("issued_at", &self.issued_at)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_have_one_shape() {
        for _ in 0..100 {
            let s = Secret::generate();
            let t = s.encode();
            assert_eq!(t.len(), TOKEN_LEN);
            assert_eq!(TOKEN_LEN, 68);
            assert!(t.starts_with(PREFIX));
            let back = Secret::parse(&t).unwrap();
            assert_eq!(back.to_raw(), s.to_raw());
            assert_eq!(back.key(), s.key());
        }
    }

    #[test]
    fn parse_names_what_is_wrong_without_echoing_it() {
        let good = Secret::generate().encode();
        assert_eq!(Secret::parse("").unwrap_err(), RememberTokenError::Empty);
        assert_eq!(
            Secret::parse(&good[..67]).unwrap_err(),
            RememberTokenError::WrongLength(67)
        );
        let huge = "A".repeat(10 * 1024 * 1024);
        assert_eq!(
            Secret::parse(&huge).unwrap_err(),
            RememberTokenError::WrongLength(10 * 1024 * 1024)
        );
        let other_prefix = format!("rm2.{}", &good[4..]);
        assert_eq!(
            Secret::parse(&other_prefix).unwrap_err(),
            RememberTokenError::WrongPrefix
        );
        let upper = format!("RM1.{}", &good[4..]);
        assert_eq!(
            Secret::parse(&upper).unwrap_err(),
            RememberTokenError::WrongPrefix
        );
        for bad in ["=", "+", "/", " ", "\0", "."] {
            let t = format!("{}{bad}", &good[..67]);
            assert_eq!(
                Secret::parse(&t).unwrap_err(),
                RememberTokenError::BadCharacter,
                "{bad:?}"
            );
        }
        let multibyte = format!("{}é", &good[..66]);
        assert_eq!(multibyte.len(), 68);
        assert_eq!(
            Secret::parse(&multibyte).unwrap_err(),
            RememberTokenError::BadCharacter
        );
        for e in [
            RememberTokenError::WrongLength(67),
            RememberTokenError::BadCharacter,
        ] {
            assert!(!e.to_string().contains(&good[4..20]));
        }
    }

    #[test]
    fn key_is_the_labelled_hash_of_the_selector_only() {
        let s = Secret::parse(&format!("{PREFIX}{}", "A".repeat(64))).unwrap();
        // SHA-256("latchkey/v1/remember-me\0" || 16 zero bytes), pinned so
        // the layout cannot drift.
        let expected: [u8; 32] = Sha256::new()
            .chain_update(b"latchkey/v1/remember-me\0")
            .chain_update([0u8; 16])
            .finalize()
            .into();
        assert_eq!(s.key(), StoreKey::from_bytes(expected));
        assert_eq!(
            s.key().to_hex(),
            crate::id::hex(&expected),
            "the key is the documented derivation"
        );
        // The verifier does not enter the key.
        let mut other = s.clone();
        other.verifier = [9; VERIFIER_LEN];
        assert_eq!(other.key(), s.key());
        assert!(!s.verifies(&other.verifier_digest()));
        assert!(s.verifies(&s.verifier_digest()));
    }

    #[test]
    fn derived_keys_never_meet() {
        let s = Secret::generate();
        assert_ne!(s.key(), cutoff_key("alice"));
        // The cutoff is not the ticket manager's per-user cutoff.
        let ticket_cutoff: [u8; 32] = Sha256::new()
            .chain_update(b"latchkey/v1/user-cutoff\0")
            .chain_update(b"alice")
            .finalize()
            .into();
        assert_ne!(cutoff_key("alice"), StoreKey::from_bytes(ticket_cutoff));
    }

    #[test]
    fn a_sealed_replacement_opens_only_with_the_old_token() {
        let old = Secret::generate();
        let next = Secret::generate();
        let sealed = old.seal(&next);
        assert_eq!(old.open(&sealed).to_raw(), next.to_raw());
        assert_ne!(Secret::generate().open(&sealed).to_raw(), next.to_raw());
        assert_ne!(sealed, next.to_raw());
    }

    #[test]
    fn debug_does_not_leak_token() {
        let s = Secret::generate();
        let t = s.encode();
        let issued = RememberToken {
            token: t.clone(),
            fingerprint: s.key().fingerprint(),
            issued_at: Timestamp::UNIX_EPOCH,
            expires_at: Timestamp::UNIX_EPOCH,
        };
        let dbg = format!("{s:?} {issued:?} {issued:#?}");
        assert!(!dbg.contains(&t[4..]));
        assert!(!dbg.contains(&crate::id::hex(&s.selector)));
        assert!(!dbg.contains(&crate::id::hex(&s.verifier)));
        assert!(dbg.contains(&s.key().fingerprint().to_string()));
    }
}
