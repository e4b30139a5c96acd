//! The ticket wire format, version 1: encoding, strict decoding, the MAC.
//!
//! The normative description, precise enough to implement in another
//! language, is `docs/TICKET_FORMAT.md`; this module is its reference
//! implementation and the test vectors in `tests/vectors/tickets.json` pin
//! both. In short:
//!
//! ```text
//! ticket  = "lk1." base64url-nopad( payload || tag )
//! payload = version(1) purpose_id(4) key_id(4) flags(1)
//!           created_at(8) issued_at(8) auth_at(8) idle_deadline(8) absolute_deadline(8)
//!           session_key(32) user_len(2) device_len(2) data_len(2)
//!           user device data
//! tag     = HMAC-SHA256(key, pad64("latchkey/v1/ticket\0" || u8(len(purpose)) || purpose) || payload)
//! ```
//!
//! Integers are big-endian, instants are milliseconds since the Unix epoch.
//! There is no algorithm field: version 1 means HMAC-SHA256, full 32-byte
//! tag, and nothing else, so there is nothing for an attacker to downgrade.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::clock::Timestamp;
use crate::ticket::mac::PrefixedMac;

/// The base64url engine for the tickets we issue: the `base64` crate's
/// SIMD engine (AVX2 or NEON when the CPU has it, detected once, else its
/// scalar engine), which takes about 30 of the 320 ns an issue cost with
/// the scalar engine alone. Its kernels are the crate's `unsafe` code; here
/// they only ever read bytes this module just wrote, never a client's.
///
/// Decoding, which reads what clients send, stays on the scalar engine
/// ([`URL_SAFE_NO_PAD`]), which has no `unsafe` code: verify already meets
/// its goal, and a parser of hostile input is the last place for it.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
static ENCODER: std::sync::LazyLock<base64::engine::Simd> = std::sync::LazyLock::new(|| {
    base64::engine::Simd::url_safe(base64::engine::general_purpose::NO_PAD)
});
/// The base64url engine for the tickets we issue (no SIMD engine for this
/// target: the scalar one).
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
static ENCODER: base64::engine::GeneralPurpose = URL_SAFE_NO_PAD;

/// The text every version-1 ticket starts with. Lets a server tell a ticket
/// from a session ID (43 characters, no dot) without decoding, and changes
/// with the version so a future format is never misread as this one.
pub(crate) const PREFIX: &str = "lk1.";

/// The version byte, the first byte of the payload (and so under the MAC).
pub(crate) const VERSION: u8 = 1;

/// The most characters a ticket may have: the size browsers guarantee for a
/// cookie (RFC 6265 §6.1). Longer tickets are refused at issue, and longer
/// input is refused at load before it is decoded.
pub const MAX_TICKET_LEN: usize = 4096;

/// The domain-separation label that starts every MAC input, so an HMAC
/// computed by this format can never be mistaken for one computed by any
/// other use of the same key.
pub(crate) const LABEL: &[u8] = b"latchkey/v1/ticket\0";

/// The label hashed with the purpose to make its 4-byte id.
const PURPOSE_ID_LABEL: &[u8] = b"latchkey/v1/ticket-purpose\0";

/// Bytes before the variable-length fields.
pub(crate) const HEADER_LEN: usize = 88;

/// Bytes of the HMAC-SHA256 tag, untruncated.
pub(crate) const TAG_LEN: usize = 32;

/// The largest payload plus tag that fits in [`MAX_TICKET_LEN`] characters:
/// 4092 base64 characters decode to at most 3069 bytes; the buffer is the
/// decoder's estimate for the longest input, rounded to whole quanta.
pub(crate) const MAX_BINARY_LEN: usize = 3072;

/// Tickets whose payload fits this many bytes are built and decoded in a
/// small stack buffer; zeroing the full [`MAX_BINARY_LEN`] on every request
/// would cost more than the rest of the parsing.
pub(crate) const SMALL_BINARY_LEN: usize = 512;

/// A scratch buffer big enough to decode `token_len` characters (or to hold
/// `token_len` bytes when encoding): `small` when it fits, else `large`
/// grown to [`MAX_BINARY_LEN`] (the length limit is checked before any
/// decoding, so nothing bigger is ever needed).
pub(crate) fn scratch<'a>(
    needed: usize,
    small: &'a mut [u8; SMALL_BINARY_LEN],
    large: &'a mut Vec<u8>,
) -> &'a mut [u8] {
    if needed <= SMALL_BINARY_LEN {
        small
    } else {
        large.resize(MAX_BINARY_LEN, 0);
        large
    }
}

/// The decoder's buffer need for a ticket of `len` characters: whole
/// 3-byte groups for every started 4-character quantum.
pub(crate) const fn decode_need(len: usize) -> usize {
    len.div_ceil(4) * 3
}

/// The shortest well-formed ticket: prefix plus the encoding of a header
/// and a tag with empty variable fields.
const MIN_TICKET_LEN: usize = PREFIX.len() + encoded_len(HEADER_LEN + TAG_LEN);

const FLAG_AUTH: u8 = 0b001;
const FLAG_USER: u8 = 0b010;
const FLAG_DEVICE: u8 = 0b100;

/// Why a string is not a well-formed ticket. Found before any MAC is
/// computed; the reason never quotes the input.
///
/// # Example
/// ```
/// use latchkey::{Error, KeyRing, SessionManager, TicketError, TicketKey, TicketManager};
///
/// let manager = TicketManager::new("session", KeyRing::new(1, TicketKey::generate()))?;
/// let err = manager.load(&"A".repeat(5000)).unwrap_err();
/// assert!(matches!(
///     err,
///     Error::MalformedTicket(TicketError::TooLong { len: 5000, limit: 4096 })
/// ));
/// assert_eq!(err.reason(), "malformed");
/// # Ok::<(), latchkey::TicketConfigError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TicketError {
    /// Longer than [`MAX_TICKET_LEN`]: refused after one comparison.
    #[error("the ticket has {len} bytes, over the limit of {limit}")]
    TooLong {
        /// The input's length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// Shorter than the smallest possible ticket.
    #[error("the ticket has {0} bytes, too few for a ticket")]
    TooShort(usize),
    /// Does not start with the version-1 prefix `lk1.`.
    #[error("the ticket does not start with the version 1 prefix")]
    WrongPrefix,
    /// Not canonical unpadded base64url: a character outside the alphabet,
    /// padding, or non-zero trailing bits (a second spelling of a ticket).
    #[error("the ticket is not canonical unpadded base64url")]
    NotBase64,
    /// The payload's version byte is not 1.
    #[error("the ticket has format version {0}, not 1")]
    UnsupportedVersion(u8),
    /// Reserved flag bits are set, or a field marked absent is not zero.
    #[error("the ticket's flags are inconsistent")]
    BadFlags,
    /// The declared field lengths do not add up to the ticket's length.
    #[error("the ticket's field lengths do not match its size")]
    BadLength,
    /// The user, device or data field is not UTF-8.
    #[error("a text field of the ticket is not UTF-8")]
    NotUtf8,
}

/// The authenticated contents of a ticket, borrowing its text fields.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Claims<'a> {
    pub(crate) created_at: Timestamp,
    pub(crate) issued_at: Timestamp,
    pub(crate) auth_at: Option<Timestamp>,
    pub(crate) idle_deadline: Timestamp,
    pub(crate) absolute_deadline: Timestamp,
    /// The session's store key: SHA-256 of a random id drawn at creation.
    pub(crate) session_key: [u8; 32],
    pub(crate) user: Option<&'a str>,
    pub(crate) device: Option<&'a str>,
    pub(crate) data: &'a str,
}

impl fmt::Debug for Claims<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Claims")
            .field(
                "session",
                &crate::id::StoreKey::from_bytes(self.session_key).fingerprint(),
            )
            .field("created_at", &self.created_at)
            .field("issued_at", &self.issued_at)
            .field("auth_at", &self.auth_at)
            .field("idle_deadline", &self.idle_deadline)
            .field("absolute_deadline", &self.absolute_deadline)
            .field("user", &self.user)
            .field("device", &self.device)
            .field("data_bytes", &self.data.len())
            .finish()
    }
}

/// A decoded, not yet verified ticket.
#[derive(Debug)]
pub(crate) struct Parsed<'a> {
    pub(crate) purpose_id: [u8; 4],
    pub(crate) key_id: u32,
    pub(crate) claims: Claims<'a>,
    /// The payload: the bytes the tag covers after the label and purpose.
    pub(crate) signed: &'a [u8],
    pub(crate) tag: &'a [u8],
}

/// Unpadded base64 length of `n` bytes.
pub(crate) const fn encoded_len(n: usize) -> usize {
    (n * 4).div_ceil(3)
}

/// The 4-byte purpose id carried in the payload: the first 4 bytes of
/// SHA-256(label || purpose). It lets a misrouted ticket be reported as
/// "wrong purpose" instead of "bad signature"; the MAC, which covers the
/// full purpose, is what actually refuses it.
pub(crate) fn purpose_id(purpose: &str) -> [u8; 4] {
    let h = Sha256::new()
        .chain_update(PURPOSE_ID_LABEL)
        .chain_update(purpose.as_bytes())
        .finalize();
    [h[0], h[1], h[2], h[3]]
}

/// The MAC under `key` with the label and the purpose already absorbed, so
/// neither the key schedule nor the prefix is recomputed per ticket.
///
/// The prefix is zero-padded to whole SHA-256 blocks, so the state holds it
/// already compressed and each ticket pays only for its own payload.
pub(crate) fn prefixed_mac(key: &[u8], purpose: &str) -> PrefixedMac {
    PrefixedMac::new(key, &mac_prefix(purpose))
}

/// `label || u8(len(purpose)) || purpose`, zero-padded to a multiple of 64
/// bytes. Purposes are 1..=255 bytes (the manager checks), so the length
/// fits one byte and, with it, the padding is unambiguous.
pub(crate) fn mac_prefix(purpose: &str) -> Vec<u8> {
    let mut p = Vec::with_capacity(LABEL.len() + 1 + purpose.len() + 64);
    p.extend_from_slice(LABEL);
    p.push(u8::try_from(purpose.len()).unwrap_or(u8::MAX));
    p.extend_from_slice(purpose.as_bytes());
    p.resize(p.len().div_ceil(64) * 64, 0);
    p
}

/// The number of characters `claims` encodes to.
pub(crate) fn ticket_len(claims: &Claims<'_>) -> usize {
    let bin = HEADER_LEN
        + claims.user.map_or(0, str::len)
        + claims.device.map_or(0, str::len)
        + claims.data.len()
        + TAG_LEN;
    PREFIX.len() + encoded_len(bin)
}

/// Encodes and signs `c`. The caller has checked [`ticket_len`] against
/// [`MAX_TICKET_LEN`]; `None` means it did not (a field too long to encode).
pub(crate) fn encode(
    mac: &PrefixedMac,
    purpose_id: [u8; 4],
    key_id: u32,
    c: &Claims<'_>,
) -> Option<String> {
    let user = c.user.unwrap_or("").as_bytes();
    let device = c.device.unwrap_or("").as_bytes();
    let data = c.data.as_bytes();
    let body_len = HEADER_LEN + user.len() + device.len() + data.len();
    let total = body_len + TAG_LEN;
    if total > MAX_BINARY_LEN {
        return None;
    }
    // A small stack buffer for usual tickets; one heap allocation (the
    // returned string).
    let (mut small, mut large) = ([0u8; SMALL_BINARY_LEN], Vec::new());
    let buf = scratch(total, &mut small, &mut large);
    let mut flags = 0;
    if c.auth_at.is_some() {
        flags |= FLAG_AUTH;
    }
    if c.user.is_some() {
        flags |= FLAG_USER;
    }
    if c.device.is_some() {
        flags |= FLAG_DEVICE;
    }
    buf[0] = VERSION;
    buf[1..5].copy_from_slice(&purpose_id);
    buf[5..9].copy_from_slice(&key_id.to_be_bytes());
    buf[9] = flags;
    let times = [
        c.created_at,
        c.issued_at,
        c.auth_at.unwrap_or(Timestamp::UNIX_EPOCH),
        c.idle_deadline,
        c.absolute_deadline,
    ];
    for (i, t) in times.iter().enumerate() {
        let at = 10 + 8 * i;
        buf[at..at + 8].copy_from_slice(&t.as_unix_millis().to_be_bytes());
    }
    buf[50..82].copy_from_slice(&c.session_key);
    buf[82..84].copy_from_slice(&u16::try_from(user.len()).ok()?.to_be_bytes());
    buf[84..86].copy_from_slice(&u16::try_from(device.len()).ok()?.to_be_bytes());
    buf[86..88].copy_from_slice(&u16::try_from(data.len()).ok()?.to_be_bytes());
    let mut at = HEADER_LEN;
    for field in [user, device, data] {
        buf[at..at + field.len()].copy_from_slice(field);
        at += field.len();
    }
    let tag = mac.tag(&buf[..body_len]);
    buf[body_len..total].copy_from_slice(&tag);
    // Encode straight into the exact-size buffer the string will own.
    // Allocated with `with_capacity` and then filled, not `vec![0; n]`:
    // glibc's calloc bypasses its per-thread cache, and the zeroing is
    // overwritten anyway.
    let len = PREFIX.len() + encoded_len(total);
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(PREFIX.as_bytes());
    out.resize(len, b'A');
    let n = ENCODER
        .encode_slice(&buf[..total], &mut out[PREFIX.len()..])
        .ok()?;
    debug_assert_eq!(PREFIX.len() + n, len);
    String::from_utf8(out).ok()
}

fn be_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(a)
}

fn be_u16(b: &[u8], at: usize) -> usize {
    usize::from(u16::from_be_bytes([b[at], b[at + 1]]))
}

/// Decodes `token` into `buf` and checks its structure. No MAC is computed
/// here: everything this refuses costs no cryptography, and nothing it
/// returns may be trusted until [`verify`] says so.
///
/// # Errors
/// [`TicketError`] naming the first structural fault.
pub(crate) fn parse<'a>(token: &str, buf: &'a mut [u8]) -> Result<Parsed<'a>, TicketError> {
    let len = token.len();
    // Length first: a megabyte of header is refused after one comparison.
    if len > MAX_TICKET_LEN {
        return Err(TicketError::TooLong {
            len,
            limit: MAX_TICKET_LEN,
        });
    }
    if len < MIN_TICKET_LEN {
        return Err(TicketError::TooShort(len));
    }
    let Some(b64) = token.strip_prefix(PREFIX) else {
        return Err(TicketError::WrongPrefix);
    };
    // The engine refuses bytes outside the alphabet, any padding, and
    // non-zero trailing bits, so each byte string has exactly one spelling.
    if buf.len() < decode_need(b64.len()) {
        // The caller's scratch is sized with `decode_need`; never reached.
        return Err(TicketError::TooLong {
            len,
            limit: MAX_TICKET_LEN,
        });
    }
    let n = URL_SAFE_NO_PAD
        .decode_slice(b64.as_bytes(), buf)
        .map_err(|_| TicketError::NotBase64)?;
    let bin: &'a [u8] = &buf[..n];
    debug_assert!(n <= MAX_BINARY_LEN);
    if n < HEADER_LEN + TAG_LEN {
        return Err(TicketError::TooShort(len));
    }
    if bin[0] != VERSION {
        return Err(TicketError::UnsupportedVersion(bin[0]));
    }
    let purpose_id = [bin[1], bin[2], bin[3], bin[4]];
    let key_id = u32::from_be_bytes([bin[5], bin[6], bin[7], bin[8]]);
    let flags = bin[9];
    let auth_raw = be_u64(bin, 26);
    let (user_len, device_len, data_len) = (be_u16(bin, 82), be_u16(bin, 84), be_u16(bin, 86));
    // One meaning per bit string: reserved bits clear, absent fields zero.
    if flags & !(FLAG_AUTH | FLAG_USER | FLAG_DEVICE) != 0
        || (flags & FLAG_AUTH == 0 && auth_raw != 0)
        || (flags & FLAG_USER == 0 && user_len != 0)
        || (flags & FLAG_DEVICE == 0 && device_len != 0)
    {
        return Err(TicketError::BadFlags);
    }
    let body_len = HEADER_LEN + user_len + device_len + data_len;
    if body_len + TAG_LEN != n {
        return Err(TicketError::BadLength);
    }
    // The three text fields are adjacent: one UTF-8 pass over all of them,
    // then the two inner boundaries must fall between characters.
    let texts =
        std::str::from_utf8(&bin[HEADER_LEN..body_len]).map_err(|_| TicketError::NotUtf8)?;
    let (user_end, device_end) = (user_len, user_len + device_len);
    if !texts.is_char_boundary(user_end) || !texts.is_char_boundary(device_end) {
        return Err(TicketError::NotUtf8);
    }
    let user = &texts[..user_end];
    let device = &texts[user_end..device_end];
    let data = &texts[device_end..];
    let mut session_key = [0u8; 32];
    session_key.copy_from_slice(&bin[50..82]);
    let ts = |at| Timestamp::from_unix_millis(be_u64(bin, at));
    let claims = Claims {
        created_at: ts(10),
        issued_at: ts(18),
        auth_at: (flags & FLAG_AUTH != 0).then(|| ts(26)),
        idle_deadline: ts(34),
        absolute_deadline: ts(42),
        session_key,
        user: (flags & FLAG_USER != 0).then_some(user),
        device: (flags & FLAG_DEVICE != 0).then_some(device),
        data,
    };
    Ok(Parsed {
        purpose_id,
        key_id,
        claims,
        signed: &bin[..body_len],
        tag: &bin[body_len..],
    })
}

/// Whether `tag` is the MAC of `signed` under `mac` (a [`prefixed_mac`]
/// state). The comparison runs in constant time, so a forger learns
/// nothing from how long a wrong guess took to refuse.
pub(crate) fn verify(mac: &PrefixedMac, signed: &[u8], tag: &[u8]) -> bool {
    let expected = mac.tag(signed);
    if tag.len() != TAG_LEN {
        return false;
    }
    // Word by word: the same constant-time guarantee as a byte-wise
    // `ct_eq`, at an eighth of the optimization barriers.
    let word = |b: &[u8], i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[i * 8..i * 8 + 8]);
        u64::from_ne_bytes(w)
    };
    let same = (0..TAG_LEN / 8).fold(subtle::Choice::from(1), |acc, i| {
        acc & word(&expected, i).ct_eq(&word(tag, i))
    });
    same.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::{Hmac, KeyInit as _, Mac as _};

    fn mac() -> PrefixedMac {
        prefixed_mac(&[7u8; 32], "session")
    }

    #[test]
    fn tag_is_hmac_sha256_of_the_padded_prefix_and_the_payload() {
        let c = claims();
        let t = encode(&mac(), purpose_id("session"), 7, &c).unwrap();
        let mut buf = [0u8; MAX_BINARY_LEN];
        let p = parse(&t, &mut buf).unwrap();
        let mut reference = Hmac::<Sha256>::new_from_slice(&[7u8; 32]).unwrap();
        reference.update(&mac_prefix("session"));
        reference.update(p.signed);
        assert_eq!(p.tag, reference.finalize().into_bytes().as_slice());
    }

    /// The SIMD engine must spell every ticket exactly as the scalar one
    /// (which decodes them): every length a ticket can have, bytes from a
    /// fixed xorshift stream so a failure replays, plus all-zero and
    /// all-one inputs (the alphabet's ends).
    #[test]
    fn issuing_engine_spells_every_length_as_the_scalar_engine() {
        let mut x = 0x9E37_79B9_7F4A_7C15_u64;
        let mut bytes = vec![0u8; MAX_BINARY_LEN];
        for b in &mut bytes {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        let mut out = vec![0u8; encoded_len(MAX_BINARY_LEN)];
        for input in [
            bytes,
            vec![0u8; MAX_BINARY_LEN],
            vec![0xffu8; MAX_BINARY_LEN],
        ] {
            for len in 0..=MAX_BINARY_LEN {
                let n = ENCODER.encode_slice(&input[..len], &mut out).unwrap();
                let reference = URL_SAFE_NO_PAD.encode(&input[..len]);
                assert_eq!(&out[..n], reference.as_bytes(), "length {len}");
                assert_eq!(n, encoded_len(len));
            }
        }
    }

    fn claims() -> Claims<'static> {
        Claims {
            created_at: Timestamp::from_unix_millis(1_000),
            issued_at: Timestamp::from_unix_millis(2_000),
            auth_at: Some(Timestamp::from_unix_millis(1_500)),
            idle_deadline: Timestamp::from_unix_millis(3_000),
            absolute_deadline: Timestamp::from_unix_millis(9_000),
            session_key: [9u8; 32],
            user: Some("alice"),
            device: None,
            data: r#"{"a":1}"#,
        }
    }

    #[test]
    fn encode_then_parse_round_trips_and_verifies() {
        let c = claims();
        let t = encode(&mac(), purpose_id("session"), 7, &c).unwrap();
        assert_eq!(t.len(), ticket_len(&c));
        let mut buf = [0u8; MAX_BINARY_LEN];
        let p = parse(&t, &mut buf).unwrap();
        assert_eq!(p.claims, c);
        assert_eq!(p.key_id, 7);
        assert_eq!(p.purpose_id, purpose_id("session"));
        assert!(verify(&mac(), p.signed, p.tag));
    }

    #[test]
    fn shortest_possible_ticket_parses() {
        let c = Claims {
            auth_at: None,
            user: None,
            data: "",
            ..claims()
        };
        let t = encode(&mac(), [0; 4], 0, &c).unwrap();
        assert_eq!(t.len(), MIN_TICKET_LEN);
        let mut buf = [0u8; MAX_BINARY_LEN];
        assert_eq!(parse(&t, &mut buf).unwrap().claims, c);
    }

    #[test]
    fn oversized_and_short_input_is_refused_by_length() {
        let mut buf = [0u8; MAX_BINARY_LEN];
        let long = "A".repeat(MAX_TICKET_LEN + 1);
        assert_eq!(
            parse(&long, &mut buf).unwrap_err(),
            TicketError::TooLong {
                len: MAX_TICKET_LEN + 1,
                limit: MAX_TICKET_LEN
            }
        );
        assert_eq!(
            parse("lk1.AAAA", &mut buf).unwrap_err(),
            TicketError::TooShort(8)
        );
    }

    #[test]
    fn non_canonical_base64_is_refused() {
        // 133 bytes: the last character carries 4 bits that must be zero.
        let c = Claims {
            data: r#"{"a":12}"#,
            ..claims()
        };
        let t = encode(&mac(), [0; 4], 0, &c).unwrap();
        let mut buf = [0u8; MAX_BINARY_LEN];
        assert!(parse(&t, &mut buf).is_ok());
        let head = &t[..t.len() - 1];
        let last = t.as_bytes()[t.len() - 1];
        // Setting a padding bit spells the same bytes a second way.
        let twin = match last {
            b'A' => 'B',
            b'Q' => 'R',
            b'g' => 'h',
            b'w' => 'x',
            other => panic!("unexpected final character {other}"),
        };
        for bad in [
            format!("{head}{twin}"),
            format!("{t}="),
            format!("{head}+"),
            format!("{head} "),
        ] {
            assert_eq!(
                parse(&bad, &mut buf).unwrap_err(),
                TicketError::NotBase64,
                "{bad}"
            );
        }
    }

    #[test]
    fn wrong_prefix_and_version_are_malformed() {
        let t = encode(&mac(), [0; 4], 0, &claims()).unwrap();
        let mut buf = [0u8; MAX_BINARY_LEN];
        let other = t.replacen("lk1.", "lk2.", 1);
        assert_eq!(
            parse(&other, &mut buf).unwrap_err(),
            TicketError::WrongPrefix
        );
        let mut bin = URL_SAFE_NO_PAD.decode(&t[4..]).unwrap();
        bin[0] = 2;
        let v2 = format!("lk1.{}", URL_SAFE_NO_PAD.encode(&bin));
        assert_eq!(
            parse(&v2, &mut buf).unwrap_err(),
            TicketError::UnsupportedVersion(2)
        );
    }

    #[test]
    fn inconsistent_flags_and_lengths_are_malformed() {
        let t = encode(&mac(), [0; 4], 0, &claims()).unwrap();
        let bin = URL_SAFE_NO_PAD.decode(&t[4..]).unwrap();
        let mut buf = [0u8; MAX_BINARY_LEN];
        let reencode = |b: &[u8]| format!("lk1.{}", URL_SAFE_NO_PAD.encode(b));
        let mut reserved = bin.clone();
        reserved[9] |= 0x80;
        assert_eq!(
            parse(&reencode(&reserved), &mut buf).unwrap_err(),
            TicketError::BadFlags
        );
        let mut no_auth = bin.clone();
        no_auth[9] &= !FLAG_AUTH;
        assert_eq!(
            parse(&reencode(&no_auth), &mut buf).unwrap_err(),
            TicketError::BadFlags
        );
        let mut long_data = bin.clone();
        long_data[87] += 1;
        assert_eq!(
            parse(&reencode(&long_data), &mut buf).unwrap_err(),
            TicketError::BadLength
        );
        let mut bad_utf8 = bin;
        bad_utf8[HEADER_LEN] = 0xff;
        assert_eq!(
            parse(&reencode(&bad_utf8), &mut buf).unwrap_err(),
            TicketError::NotUtf8
        );
    }

    #[test]
    fn verify_refuses_any_single_bit_change_of_the_tag() {
        let t = encode(&mac(), [0; 4], 0, &claims()).unwrap();
        let mut buf = [0u8; MAX_BINARY_LEN];
        let p = parse(&t, &mut buf).unwrap();
        assert!(verify(&mac(), p.signed, p.tag));
        for i in 0..TAG_LEN * 8 {
            let mut tag = p.tag.to_vec();
            tag[i / 8] ^= 1 << (i % 8);
            assert!(!verify(&mac(), p.signed, &tag), "bit {i}");
        }
        assert!(!verify(&mac(), p.signed, &p.tag[..31]));
    }

    #[test]
    fn mac_prefix_fills_whole_blocks() {
        for purpose in [
            "a",
            "session",
            &"p".repeat(44),
            &"p".repeat(45),
            &"p".repeat(255),
        ] {
            let prefix = mac_prefix(purpose);
            assert_eq!(prefix.len() % 64, 0);
            assert!(prefix.starts_with(LABEL));
            assert_eq!(usize::from(prefix[LABEL.len()]), purpose.len());
        }
        assert_eq!(mac_prefix("session").len(), 64);
        assert_eq!(mac_prefix(&"p".repeat(45)).len(), 128);
    }

    #[test]
    fn claims_debug_shows_the_fingerprint_not_the_key_bytes() {
        let c = claims();
        let s = format!("{c:?}");
        assert!(!s.contains("[9, 9"));
        assert!(s.contains("Fingerprint(090909090909)"), "{s}");
    }
}
