//! Session identifiers, their store keys and their log fingerprints.
//!
//! Three values, three audiences:
//!
//! | type | who sees it | secret? |
//! |---|---|---|
//! | [`SessionId`] | the client, as the cookie value (43 base64url characters) | yes: it is the bearer credential |
//! | [`StoreKey`] | the store: SHA-256 of the ID's 32 bytes | no: a dump of the store cannot be replayed as cookies |
//! | [`Fingerprint`] | logs and operators: the first 6 bytes of the store key, in hex | no |
//!
//! Data flows one way: token string → [`SessionId::parse`] (strict, no I/O)
//! → [`SessionId::store_key`] → store. The raw token never reaches a store,
//! a file name, a log line or a `Debug` output.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::Rng as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Why a string is not a session token.
///
/// The reason never quotes the input: a near-miss token may still be secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The token is empty.
    #[error("the token is empty")]
    Empty,
    /// The token does not have the exact length of an encoded ID.
    #[error("the token has {0} bytes, not the 43 of a session ID")]
    WrongLength(usize),
    /// The token has a byte outside the base64url alphabet.
    #[error("the token has a character outside the base64url alphabet")]
    BadCharacter,
    /// The last character carries non-zero padding bits, so the token is a
    /// second spelling of some valid ID. Accepting it would let two strings
    /// name one session.
    #[error("the token is not in canonical base64url form")]
    NonCanonical,
}

/// A session identifier: 256 bits from the operating-system-seeded CSPRNG.
///
/// Its text form, the token a client presents, is 43 characters of base64url
/// without padding. `Debug` shows only the [`Fingerprint`], and there is no
/// `Display`, so an ID cannot end up in a log line by accident. Equality runs
/// in constant time.
///
/// # Example
/// ```
/// use latchkey::SessionId;
///
/// let id = SessionId::generate();
/// let token = id.to_token();
/// assert_eq!(token.len(), 43);
/// let parsed = SessionId::parse(&token)?;
/// assert_eq!(parsed, id);
/// assert!(!format!("{parsed:?}").contains(&token));
/// # Ok::<(), latchkey::TokenError>(())
/// ```
#[derive(Clone)]
pub struct SessionId([u8; 32]);

impl SessionId {
    /// Length of the token in characters.
    pub const TOKEN_LEN: usize = 43;

    /// A fresh random ID from the thread-local CSPRNG, which the operating
    /// system seeds and periodically reseeds.
    ///
    /// # Example
    /// ```
    /// use latchkey::SessionId;
    /// let id = SessionId::generate();
    /// assert_ne!(id, SessionId::generate());
    /// ```
    pub fn generate() -> SessionId {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        SessionId(bytes)
    }

    /// Parses a token strictly: exactly 43 base64url characters in canonical
    /// form. Anything else is refused before any store is consulted, so
    /// malformed input costs no I/O and never reaches a backend.
    ///
    /// # Errors
    /// [`TokenError`] saying what is wrong, without echoing the input.
    ///
    /// # Example
    /// ```
    /// use latchkey::{SessionId, TokenError};
    ///
    /// assert_eq!(SessionId::parse("").unwrap_err(), TokenError::Empty);
    /// assert_eq!(SessionId::parse("abc").unwrap_err(), TokenError::WrongLength(3));
    /// ```
    pub fn parse(token: &str) -> Result<SessionId, TokenError> {
        let bytes = token.as_bytes();
        if bytes.is_empty() {
            return Err(TokenError::Empty);
        }
        // Length first: a 10 MB header is refused after one comparison.
        let Ok(chars) = <&[u8; Self::TOKEN_LEN]>::try_from(bytes) else {
            return Err(TokenError::WrongLength(bytes.len()));
        };
        // One table lookup per character both validates and decodes it, the
        // value already in its place among four characters' 24 bits; any
        // byte outside the alphabet sets bit 31, and OR-ing every group
        // together tells at the end whether one did. Every character is
        // visited whatever the input, so the time taken does not depend on
        // where a bad character sits.
        let mut out = [0u8; 32];
        let mut seen = 0u32;
        for (quad, bytes) in chars[..40]
            .as_chunks::<4>()
            .0
            .iter()
            .zip(out.chunks_exact_mut(3))
        {
            let &[a, b, c, d] = quad;
            let n = PLACED[0][usize::from(a)]
                | PLACED[1][usize::from(b)]
                | PLACED[2][usize::from(c)]
                | PLACED[3][usize::from(d)];
            seen |= n;
            bytes.copy_from_slice(&n.to_be_bytes()[1..]);
        }
        // 40 characters gave 30 bytes; the last 3 carry 18 bits (bits 23..6
        // here): 16 of data and 2 that a canonical encoding leaves zero.
        let &[.., a, b, c] = chars;
        let tail =
            PLACED[0][usize::from(a)] | PLACED[1][usize::from(b)] | PLACED[2][usize::from(c)];
        if (seen | tail) & BAD != 0 {
            return Err(TokenError::BadCharacter);
        }
        if tail & 0b1100_0000 != 0 {
            return Err(TokenError::NonCanonical);
        }
        out[30..].copy_from_slice(&tail.to_be_bytes()[1..3]);
        Ok(SessionId(out))
    }

    /// The token: the text form a client stores and presents.
    ///
    /// This is the secret. Give it to the client (a cookie, a header) and to
    /// nothing else.
    ///
    /// # Example
    /// ```
    /// use latchkey::SessionId;
    /// let id = SessionId::generate();
    /// assert_eq!(SessionId::parse(&id.to_token()), Ok(id));
    /// ```
    pub fn to_token(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    /// The key a store files this session under: SHA-256 of the ID's bytes.
    ///
    /// # Example
    /// ```
    /// use latchkey::SessionId;
    /// let id = SessionId::generate();
    /// assert_eq!(id.store_key(), id.clone().store_key()); // deterministic
    /// assert_eq!(id.store_key().to_hex().len(), 64);
    /// ```
    pub fn store_key(&self) -> StoreKey {
        StoreKey(Sha256::digest(self.0).into())
    }

    /// The log-safe fingerprint, derived from the store key.
    ///
    /// # Example
    /// ```
    /// use latchkey::SessionId;
    /// let id = SessionId::generate();
    /// assert_eq!(id.fingerprint(), id.store_key().fingerprint());
    /// ```
    pub fn fingerprint(&self) -> Fingerprint {
        self.store_key().fingerprint()
    }

    /// Seals `next` so that only a holder of `self` can recover it.
    ///
    /// Rotation keeps this in the retired record: a request still carrying
    /// the old token during the grace window learns the new token and can
    /// reissue the cookie. The pad is SHA-256 over a label and this ID, which
    /// the store never holds, so a dump of the store alone opens nothing.
    pub(crate) fn seal(&self, next: &SessionId) -> SealedId {
        let pad = self.successor_pad();
        let mut out = [0u8; 32];
        for (o, (a, b)) in out.iter_mut().zip(next.0.iter().zip(pad.iter())) {
            *o = a ^ b;
        }
        SealedId(out)
    }

    /// Opens a [`SealedId`] made by [`SessionId::seal`] on this ID.
    pub(crate) fn open(&self, sealed: &SealedId) -> SessionId {
        let pad = self.successor_pad();
        let mut out = [0u8; 32];
        for (o, (a, b)) in out.iter_mut().zip(sealed.0.iter().zip(pad.iter())) {
            *o = a ^ b;
        }
        SessionId(out)
    }

    fn successor_pad(&self) -> [u8; 32] {
        Sha256::new()
            .chain_update(b"latchkey/v1/successor-pad\0")
            .chain_update(self.0)
            .finalize()
            .into()
    }
}

impl PartialEq for SessionId {
    fn eq(&self, other: &SessionId) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for SessionId {}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({})", self.fingerprint())
    }
}

/// The successor of a rotated session, sealed with the old session's ID.
///
/// Stores persist it as opaque base64url; only the old token opens it.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedId([u8; 32]);

impl fmt::Debug for SealedId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealedId(..)")
    }
}

impl Serialize for SealedId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&URL_SAFE_NO_PAD.encode(self.0))
    }
}

impl<'de> Deserialize<'de> for SealedId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<SealedId, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        let mut out = [0u8; 32];
        match URL_SAFE_NO_PAD.decode_slice(s.as_bytes(), &mut out) {
            Ok(32) if s.len() == 43 => Ok(SealedId(out)),
            _ => Err(serde::de::Error::custom(
                "sealed successor is not 32 bytes of base64url",
            )),
        }
    }
}

/// The key a store files a session under: SHA-256 of the session ID.
///
/// Not secret: knowing it does not let anyone present the session. It is
/// written as 64 lowercase hex digits (file names, Redis keys, JSON).
///
/// # Example
/// ```
/// use latchkey::{SessionId, StoreKey};
///
/// let key = SessionId::generate().store_key();
/// let hex = key.to_hex();
/// assert_eq!(hex.len(), 64);
/// assert_eq!(StoreKey::from_hex(&hex), Some(key));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StoreKey([u8; 32]);

impl StoreKey {
    /// A key from its 32 bytes.
    ///
    /// # Example
    /// ```
    /// use latchkey::StoreKey;
    /// let k = StoreKey::from_bytes([7; 32]);
    /// assert_eq!(k.as_bytes(), &[7; 32]);
    /// ```
    pub const fn from_bytes(bytes: [u8; 32]) -> StoreKey {
        StoreKey(bytes)
    }

    /// The key's 32 bytes.
    ///
    /// # Example
    /// ```
    /// use latchkey::StoreKey;
    /// assert_eq!(StoreKey::from_bytes([1; 32]).as_bytes()[0], 1);
    /// ```
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// 64 lowercase hex digits.
    ///
    /// # Example
    /// ```
    /// use latchkey::StoreKey;
    /// assert_eq!(StoreKey::from_bytes([0xab; 32]).to_hex(), "ab".repeat(32));
    /// ```
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }

    /// Parses 64 hex digits (either case); `None` for anything else.
    ///
    /// # Example
    /// ```
    /// use latchkey::StoreKey;
    /// assert!(StoreKey::from_hex(&"0".repeat(64)).is_some());
    /// assert!(StoreKey::from_hex("../../etc/passwd").is_none());
    /// ```
    pub fn from_hex(s: &str) -> Option<StoreKey> {
        let b = s.as_bytes();
        if b.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (o, pair) in out.iter_mut().zip(b.chunks_exact(2)) {
            *o = (hex_val(pair[0])? << 4) | hex_val(pair[1])?;
        }
        Some(StoreKey(out))
    }

    /// The short log-safe name of this session.
    ///
    /// # Example
    /// ```
    /// use latchkey::StoreKey;
    /// assert_eq!(StoreKey::from_bytes([0xab; 32]).fingerprint().to_string(), "abababababab");
    /// ```
    pub fn fingerprint(&self) -> Fingerprint {
        let mut fp = [0u8; 6];
        fp.copy_from_slice(&self.0[..6]);
        Fingerprint(fp)
    }
}

impl fmt::Display for StoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoreKey({})", self.to_hex())
    }
}

impl Serialize for StoreKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for StoreKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<StoreKey, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        StoreKey::from_hex(&s)
            .ok_or_else(|| serde::de::Error::custom("store key is not 64 hex digits"))
    }
}

/// A short, log-safe name for a session: the first 6 bytes of its store key
/// as 12 hex digits.
///
/// It is a prefix of the session's file name in the file store, so an
/// operator can go from a log line to the record. It names, it does not
/// authenticate: 48 bits are plenty to tell one user's sessions apart and
/// useless as a credential.
///
/// # Example
/// ```
/// use latchkey::SessionId;
///
/// let id = SessionId::generate();
/// let fp = id.fingerprint().to_string();
/// assert_eq!(fp.len(), 12);
/// assert!(id.store_key().to_hex().starts_with(&fp));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint([u8; 6]);

impl Fingerprint {
    /// Parses 12 hex digits; `None` for anything else.
    ///
    /// # Example
    /// ```
    /// use latchkey::Fingerprint;
    /// let fp = Fingerprint::from_hex("00ff00ff00ff").unwrap();
    /// assert_eq!(fp.to_string(), "00ff00ff00ff");
    /// assert!(Fingerprint::from_hex("xyz").is_none());
    /// ```
    pub fn from_hex(s: &str) -> Option<Fingerprint> {
        let b = s.as_bytes();
        if b.len() != 12 {
            return None;
        }
        let mut out = [0u8; 6];
        for (o, pair) in out.iter_mut().zip(b.chunks_exact(2)) {
            *o = (hex_val(pair[0])? << 4) | hex_val(pair[1])?;
        }
        Some(Fingerprint(out))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex(&self.0))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({})", hex(&self.0))
    }
}

impl Serialize for Fingerprint {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex(&self.0))
    }
}

/// Set in a [`PLACED`] value for a byte outside the base64url alphabet
/// (padding, `+`, `/`, whitespace, non-ASCII); above the 24 bits that four
/// characters fill.
const BAD: u32 = 1 << 31;

/// The base64url alphabet inverted, once for each of the four places in a
/// group of four characters: a character's 6-bit value shifted to its bits
/// of the group's 24 (18, 12, 6, 0), or [`BAD`].
const PLACED: [[u32; 256]; 4] = {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut tables = [[BAD; 256]; 4];
    let mut place = 0;
    while place < 4 {
        let mut value = 0;
        while value < 64 {
            tables[place][alphabet[value] as usize] = (value as u32) << (18 - 6 * place);
            value += 1;
        }
        place += 1;
    }
    tables
};

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_43_base64url_chars_and_distinct() {
        let a = SessionId::generate();
        let b = SessionId::generate();
        assert_ne!(a, b);
        let t = a.to_token();
        assert_eq!(t.len(), SessionId::TOKEN_LEN);
        assert!(
            t.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
    }

    #[test]
    fn parse_round_trips() {
        for _ in 0..100 {
            let id = SessionId::generate();
            assert_eq!(SessionId::parse(&id.to_token()).unwrap(), id);
        }
    }

    #[test]
    fn parse_rejects_every_other_shape() {
        let good = SessionId::generate().to_token();
        assert_eq!(SessionId::parse(""), Err(TokenError::Empty));
        assert_eq!(
            SessionId::parse(&good[..42]),
            Err(TokenError::WrongLength(42))
        );
        assert_eq!(
            SessionId::parse(&format!("{good}A")),
            Err(TokenError::WrongLength(44))
        );
        // Padding, standard-alphabet characters, whitespace, NUL, non-ASCII.
        for bad in ["=", "+", "/", " ", "\0", "\n"] {
            let t = format!("{}{bad}", &good[..42]);
            assert_eq!(
                SessionId::parse(&t),
                Err(TokenError::BadCharacter),
                "{bad:?}"
            );
        }
        let multibyte = format!("{}é", &good[..41]);
        assert_eq!(multibyte.len(), 43);
        assert_eq!(SessionId::parse(&multibyte), Err(TokenError::BadCharacter));
        let huge = "A".repeat(10 * 1024 * 1024);
        assert_eq!(
            SessionId::parse(&huge),
            Err(TokenError::WrongLength(10 * 1024 * 1024))
        );
    }

    #[test]
    fn parse_rejects_non_canonical_trailing_bits() {
        // 32 bytes = 256 bits; 43 chars carry 258, so the last char's two low
        // bits must be zero. 'B' (=1) sets one of them.
        let mut t = SessionId::generate().to_token().into_bytes();
        t[42] = b'B';
        let t = String::from_utf8(t).unwrap();
        assert_eq!(SessionId::parse(&t), Err(TokenError::NonCanonical));
    }

    #[test]
    fn store_key_is_sha256_of_id_bytes() {
        let id = SessionId::parse("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").unwrap();
        // SHA-256 of 32 zero bytes.
        assert_eq!(
            id.store_key().to_hex(),
            "66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925"
        );
        assert_eq!(id.fingerprint().to_string(), "66687aadf862");
    }

    #[test]
    fn parse_agrees_with_the_base64_crate_on_every_single_character_change() {
        // Flip each position of a valid token to every byte value: the
        // hand-rolled decoder must accept and decode exactly what the
        // base64 engine does (canonical, no padding), and name the failure.
        let good = SessionId::generate().to_token().into_bytes();
        for pos in 0..good.len() {
            for b in 0..=255u8 {
                let mut t = good.clone();
                t[pos] = b;
                let Ok(s) = String::from_utf8(t) else {
                    continue;
                };
                let mut expected = [0u8; 32];
                let reference = URL_SAFE_NO_PAD.decode_slice(s.as_bytes(), &mut expected);
                match SessionId::parse(&s) {
                    Ok(id) => {
                        assert!(matches!(reference, Ok(32)), "{pos} {b}");
                        assert_eq!(id.0, expected);
                    }
                    Err(TokenError::BadCharacter) => {
                        assert!(!(b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
                        assert!(reference.is_err());
                    }
                    Err(TokenError::NonCanonical) => {
                        assert_eq!(pos, 42);
                        assert!(reference.is_err());
                    }
                    Err(e) => panic!("unexpected {e:?} at {pos} for {b}"),
                }
            }
        }
    }

    #[test]
    fn debug_does_not_leak_token() {
        let id = SessionId::generate();
        let token = id.to_token();
        let dbg = format!("{id:?} {:?}", id.seal(&SessionId::generate()));
        assert!(!dbg.contains(&token));
        assert!(!dbg.contains(&hex(&id.0)));
        assert!(dbg.contains(&id.fingerprint().to_string()));
    }

    #[test]
    fn sealed_successor_opens_only_with_the_old_id() {
        let old = SessionId::generate();
        let new = SessionId::generate();
        let sealed = old.seal(&new);
        assert_eq!(old.open(&sealed), new);
        assert_ne!(SessionId::generate().open(&sealed), new);
        assert_ne!(sealed.0, new.0);
    }

    #[test]
    fn store_key_hex_round_trips_and_rejects_garbage() {
        let k = SessionId::generate().store_key();
        assert_eq!(StoreKey::from_hex(&k.to_hex().to_uppercase()), Some(k));
        assert_eq!(StoreKey::from_hex("zz"), None);
        assert_eq!(StoreKey::from_hex(&"g".repeat(64)), None);
        let json = serde_json::to_string(&k).unwrap();
        assert_eq!(serde_json::from_str::<StoreKey>(&json).unwrap(), k);
    }
}
