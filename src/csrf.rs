//! CSRF tokens bound to the session: the synchronizer token pattern, with
//! tokens masked per response against BREACH.
//!
//! # How it works
//!
//! - **A secret per session**: 32 bytes from the operating system-seeded
//!   CSPRNG (as a [`SessionId`](crate::SessionId) is made), created the
//!   first time [`Session::csrf_token`] is called and kept in the session's
//!   data under [`CSRF_KEY`]. Creating it changes the data: the caller
//!   saves the session (the framework adapters do).
//! - **Bound to the login**: the secret is stored with a digest of the
//!   session's user and authentication time. A secret whose binding is not
//!   the session's current one counts as absent: [`Session::verify_csrf`]
//!   refuses every token ([`CsrfError::NoSecret`]) and the next
//!   [`Session::csrf_token`] makes a fresh secret. The managers carry the
//!   data over a login (so a cart survives it) and stamp a new
//!   authentication time, so a token handed out before the login, to the
//!   visitor or to whoever planted the pre-login session, never works
//!   after it. A login as another user starts an empty session anyway.
//!   Anything else that records a new authentication time (a
//!   re-authentication for a sensitive action) renews the secret the same
//!   way: pages rendered before it must be reloaded to post. A routine
//!   [`rotate`](crate::SessionManager::rotate) and a
//!   [`change_privilege`](crate::SessionManager::change_privilege) keep the
//!   secret (the user and the authentication time stay), so forms open in
//!   other tabs keep working; call [`Session::reset_csrf`] to renew it
//!   there too.
//! - **Masked per response**: a token is `base64url(mask ‖ (secret ⊕
//!   mask))` with a fresh random 32-byte mask each call, 86 characters.
//!   Every page carries a different string, so a compressed response
//!   (BREACH) has no repeated secret to leak; each one unmasks to the same
//!   secret. Django and Rails do the same.
//! - **Checked in constant time**, after a strict parse that refuses
//!   anything but 86 characters of canonical base64url before decoding.
//!
//! The secret never appears in `Debug` output: a session's data prints its
//! keys and size, never its values. It is in the session data, so it rests
//! in the store as the rest of the data does; a stateless
//! [`TicketManager`](crate::TicketManager) ticket is signed, not encrypted,
//! so the browser holding the cookie could read it, which gives a cross-site
//! attacker nothing (the cookie is `HttpOnly` and never reaches their page).
//!
//! # Reserved keys
//!
//! Data keys starting with [`RESERVED_PREFIX`] (`latchkey.`) belong to
//! latchkey: [`CSRF_KEY`] and [`FLASH_KEY`](crate::FLASH_KEY) today. Do not
//! write them; a value there that latchkey did not write is treated as
//! absent and replaced. [`Session::keys`] lists them like any other key,
//! and [`Session::clear`] removes them with the rest (the CSRF secret and
//! pending flash messages included).
//!
//! When a token is needed on top of `SameSite=Lax` and
//! [`check_origin`](crate::check_origin), and how to carry it, is in the
//! [framework guide](crate::framework#csrf).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::Rng as _;
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::session::Session;

/// The prefix of the session data keys latchkey keeps for itself.
///
/// # Example
/// ```
/// assert!(latchkey::CSRF_KEY.starts_with(latchkey::RESERVED_PREFIX));
/// assert!(latchkey::FLASH_KEY.starts_with(latchkey::RESERVED_PREFIX));
/// ```
pub const RESERVED_PREFIX: &str = "latchkey.";

/// The session data key that holds the CSRF secret (and its binding).
///
/// # Example
/// ```
/// use latchkey::{CSRF_KEY, MemoryStore, NewSession, SessionManager, StoreManager};
/// let manager = StoreManager::new(MemoryStore::new());
/// let mut session = manager.load(manager.create(NewSession::new())?.token())?.session;
/// let _token = session.csrf_token();
/// assert!(session.keys().any(|k| k == CSRF_KEY));
/// # Ok::<(), latchkey::Error>(())
/// ```
pub const CSRF_KEY: &str = "latchkey.csrf";

/// The length in characters of every token [`Session::csrf_token`] hands
/// out: 64 bytes (mask and masked secret) in unpadded base64url.
///
/// # Example
/// ```
/// use latchkey::{CSRF_TOKEN_LEN, MemoryStore, NewSession, SessionManager, StoreManager};
/// let manager = StoreManager::new(MemoryStore::new());
/// let mut session = manager.load(manager.create(NewSession::new())?.token())?.session;
/// assert_eq!(session.csrf_token().len(), CSRF_TOKEN_LEN);
/// # Ok::<(), latchkey::Error>(())
/// ```
pub const CSRF_TOKEN_LEN: usize = 86;

/// Bytes in the secret, and in each token's mask.
const SECRET_LEN: usize = 32;
/// The secret's length in unpadded base64url, as stored.
const SECRET_B64_LEN: usize = 43;
/// Bytes of the binding digest kept beside the secret.
const BINDING_LEN: usize = 16;
/// Field names in the stored entry: `{"secret": "…", "bound_to": "…"}`.
const SECRET_FIELD: &str = "secret";
const BINDING_FIELD: &str = "bound_to";

/// Why a CSRF token was refused. Answer **403** and leave the session and
/// its cookie alone: clearing the cookie here would let any other site log
/// users out by posting garbage.
///
/// `Display` says what was wrong without echoing the token.
///
/// # Example
/// ```
/// use latchkey::{CsrfError, MemoryStore, NewSession, SessionManager, StoreManager};
/// let manager = StoreManager::new(MemoryStore::new());
/// let session = manager.load(manager.create(NewSession::new())?.token())?.session;
/// let refused = session.verify_csrf("").unwrap_err();
/// assert_eq!(refused, CsrfError::Missing);
/// assert_eq!(refused.to_string(), "the request carries no CSRF token");
/// assert_eq!(refused.reason(), "csrf_missing");
/// # Ok::<(), latchkey::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CsrfError {
    /// The request carried no token (an empty string was checked).
    #[error("the request carries no CSRF token")]
    Missing,
    /// The token is not 86 characters of canonical unpadded base64url: not
    /// one this library handed out.
    #[error("the CSRF token is malformed")]
    Malformed,
    /// The token is well formed but was not made from this session's
    /// secret: another session's token, one from before a login, or a
    /// forgery.
    #[error("the CSRF token does not match the session")]
    Mismatch,
    /// The session holds no current secret: no token was ever handed out
    /// in it, or it was handed out before the login that followed (see
    /// [`Session::verify_csrf`]).
    #[error("the session has no CSRF secret to check the token against")]
    NoSecret,
}

impl CsrfError {
    /// A short stable code for logs and metrics, e.g. `csrf_mismatch`.
    ///
    /// # Example
    /// ```
    /// assert_eq!(latchkey::CsrfError::NoSecret.reason(), "csrf_no_secret");
    /// ```
    pub fn reason(&self) -> &'static str {
        match self {
            CsrfError::Missing => "csrf_missing",
            CsrfError::Malformed => "csrf_malformed",
            CsrfError::Mismatch => "csrf_mismatch",
            CsrfError::NoSecret => "csrf_no_secret",
        }
    }
}

/// The per-session secret. Its `Debug` omits the bytes.
struct Secret([u8; SECRET_LEN]);

impl Secret {
    fn generate() -> Secret {
        let mut bytes = [0u8; SECRET_LEN];
        rand::rng().fill_bytes(&mut bytes);
        Secret(bytes)
    }

    /// A fresh masked token: `mask ‖ (secret ⊕ mask)`, base64url.
    fn masked_token(&self) -> String {
        let mut raw = [0u8; 2 * SECRET_LEN];
        let (mask, masked) = raw.split_at_mut(SECRET_LEN);
        rand::rng().fill_bytes(mask);
        for ((out, s), m) in masked.iter_mut().zip(&self.0).zip(mask.iter()) {
            *out = s ^ m;
        }
        URL_SAFE_NO_PAD.encode(raw)
    }
}

/// The session state a secret is bound to: a digest of the user and the
/// authentication time, which every login sets. Not secret; a digest only
/// so that the entry has one small fixed size and holds no user name.
fn binding(session: &Session) -> String {
    let mut h = Sha256::new();
    h.update(b"latchkey csrf binding v1\0");
    match session.user() {
        // Length-prefixed, so no two (user, time) pairs share an input.
        Some(user) => {
            h.update([1]);
            h.update((user.len() as u64).to_be_bytes());
            h.update(user.as_bytes());
        }
        None => h.update([0]),
    }
    match session.authenticated_at() {
        Some(at) => {
            h.update([1]);
            h.update(at.as_unix_millis().to_be_bytes());
        }
        None => h.update([0]),
    }
    let digest = h.finalize();
    URL_SAFE_NO_PAD.encode(&digest[..BINDING_LEN])
}

/// Splits an untrusted token into mask and masked secret: length first
/// (a megabyte of form field costs one comparison), then a strict decode.
fn parse_token(token: &str) -> Result<[u8; 2 * SECRET_LEN], CsrfError> {
    if token.is_empty() {
        return Err(CsrfError::Missing);
    }
    if token.len() != CSRF_TOKEN_LEN {
        return Err(CsrfError::Malformed);
    }
    let mut raw = [0u8; 2 * SECRET_LEN];
    // The scalar engine: no `unsafe` on client input. It refuses padding,
    // bytes outside the alphabet and non-zero trailing bits.
    match URL_SAFE_NO_PAD.decode_slice(token.as_bytes(), &mut raw) {
        Ok(n) if n == raw.len() => Ok(raw),
        _ => Err(CsrfError::Malformed),
    }
}

impl Session {
    /// The session's current CSRF secret: `None` if there is none, if it
    /// is bound to another login, or if the entry is not one we wrote.
    fn csrf_secret(&self) -> Option<Secret> {
        let entry = self.data.map().get(CSRF_KEY)?.as_object()?;
        let bound = entry.get(BINDING_FIELD)?.as_str()?;
        if bound != binding(self) {
            return None;
        }
        let text = entry.get(SECRET_FIELD)?.as_str()?;
        if text.len() != SECRET_B64_LEN {
            return None;
        }
        let mut bytes = [0u8; SECRET_LEN];
        match URL_SAFE_NO_PAD.decode_slice(text.as_bytes(), &mut bytes) {
            Ok(SECRET_LEN) => Some(Secret(bytes)),
            _ => None,
        }
    }

    /// A CSRF token for a page this response carries: put it in a hidden
    /// form field or hand it to scripts to send as a header, and check it
    /// with [`verify_csrf`](Self::verify_csrf) on the state-changing
    /// request that comes back.
    ///
    /// Each call returns a different string (a fresh mask; see the
    /// [module docs](crate::csrf)), and every one of them verifies while
    /// the session's secret lasts. The first call, and the first after a
    /// login, creates the secret: the session is then
    /// [modified](Self::is_modified) and the caller must save it (the
    /// framework adapters do), or the token will not verify on the next
    /// request. With a [`TicketManager`](crate::TicketManager) that save
    /// issues a new ticket, which the response must set as the cookie.
    ///
    /// # Example
    /// ```
    /// use latchkey::{MemoryStore, NewSession, SessionManager, StoreManager};
    /// let manager = StoreManager::new(MemoryStore::new());
    /// let issued = manager.create(NewSession::new())?;
    /// let mut session = manager.load(issued.token())?.session;
    ///
    /// let token = session.csrf_token();
    /// assert!(session.is_modified()); // the secret was created: save it
    /// manager.save(&mut session)?;
    ///
    /// // The next request, carrying the token back in a form field.
    /// let session = manager.load(issued.token())?.session;
    /// assert!(session.verify_csrf(&token).is_ok());
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    #[must_use = "a CSRF token belongs in the page or response being built"]
    pub fn csrf_token(&mut self) -> String {
        let secret = match self.csrf_secret() {
            Some(secret) => secret,
            None => {
                let secret = Secret::generate();
                let mut entry = Map::new();
                entry.insert(
                    SECRET_FIELD.into(),
                    Value::String(URL_SAFE_NO_PAD.encode(secret.0)),
                );
                entry.insert(BINDING_FIELD.into(), Value::String(binding(self)));
                self.data
                    .map_mut()
                    .insert(CSRF_KEY.into(), Value::Object(entry));
                secret
            }
        };
        secret.masked_token()
    }

    /// Checks a CSRF token the request carried (a form field or header; an
    /// empty string if it carried none) against the session's secret. Call
    /// it on every state-changing request (POST, PUT, PATCH, DELETE) that
    /// acts on the session; never creates a secret, never changes the
    /// session.
    ///
    /// # Errors
    /// [`CsrfError`], checked in this order: [`Missing`](CsrfError::Missing)
    /// for an empty token, [`Malformed`](CsrfError::Malformed) for one that
    /// is not 86 characters of canonical base64url,
    /// [`NoSecret`](CsrfError::NoSecret) if the session has no current
    /// secret (none was made, or it was made before the last login), and
    /// [`Mismatch`](CsrfError::Mismatch) for a token made from another
    /// secret. Answer 403 and keep the session cookie.
    ///
    /// # Example
    /// ```
    /// use latchkey::{CsrfError, MemoryStore, NewSession, SessionManager, StoreManager};
    /// let manager = StoreManager::new(MemoryStore::new());
    /// let mut mine = manager.load(manager.create(NewSession::new())?.token())?.session;
    /// let mut theirs = manager.load(manager.create(NewSession::new())?.token())?.session;
    ///
    /// assert_eq!(mine.verify_csrf(&theirs.csrf_token()), Err(CsrfError::NoSecret));
    /// let token = mine.csrf_token();
    /// assert_eq!(mine.verify_csrf(&token), Ok(()));
    /// assert_eq!(mine.verify_csrf(&theirs.csrf_token()), Err(CsrfError::Mismatch));
    /// assert_eq!(mine.verify_csrf("not-a-token"), Err(CsrfError::Malformed));
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    pub fn verify_csrf(&self, token: &str) -> Result<(), CsrfError> {
        let raw = parse_token(token)?;
        let secret = self.csrf_secret().ok_or(CsrfError::NoSecret)?;
        let (mask, masked) = raw.split_at(SECRET_LEN);
        let mut unmasked = [0u8; SECRET_LEN];
        for ((out, c), m) in unmasked.iter_mut().zip(masked).zip(mask) {
            *out = c ^ m;
        }
        // Constant time: how many leading bytes of a forged token were
        // right must not show in the response time.
        if bool::from(unmasked.ct_eq(&secret.0)) {
            Ok(())
        } else {
            Err(CsrfError::Mismatch)
        }
    }

    /// Drops the session's CSRF secret, so that every token handed out so
    /// far fails and the next [`csrf_token`](Self::csrf_token) makes a new
    /// one; returns whether there was one. A login renews the secret by
    /// itself; call this after a
    /// [`change_privilege`](crate::SessionManager::change_privilege) if
    /// pages rendered before it must not post after it. The session is then
    /// modified: save it.
    ///
    /// # Example
    /// ```
    /// use latchkey::{CsrfError, MemoryStore, NewSession, SessionManager, StoreManager};
    /// let manager = StoreManager::new(MemoryStore::new());
    /// let mut session = manager.load(manager.create(NewSession::new())?.token())?.session;
    /// let token = session.csrf_token();
    /// assert!(session.reset_csrf());
    /// assert_eq!(session.verify_csrf(&token), Err(CsrfError::NoSecret));
    /// assert!(!session.reset_csrf());
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    pub fn reset_csrf(&mut self) -> bool {
        self.remove(CSRF_KEY)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{KeyRing, MemoryStore, NewSession, SessionManager, StoreManager, TicketKey};
    use crate::{TicketManager, Timestamp};
    use proptest::prelude::*;

    fn session() -> Session {
        let m = StoreManager::new(MemoryStore::new());
        m.load(m.create(NewSession::new()).unwrap().token())
            .unwrap()
            .session
    }

    /// The secret as stored, for tests that look for leaks.
    fn stored_secret(s: &Session) -> String {
        s.data.map()[CSRF_KEY][SECRET_FIELD]
            .as_str()
            .unwrap()
            .to_owned()
    }

    #[test]
    fn a_token_unmasks_to_the_stored_secret() {
        let mut s = session();
        let token = s.csrf_token();
        let raw = parse_token(&token).unwrap();
        let secret: Vec<u8> = raw[..32]
            .iter()
            .zip(&raw[32..])
            .map(|(m, c)| m ^ c)
            .collect();
        assert_eq!(URL_SAFE_NO_PAD.encode(secret), stored_secret(&s));
        assert!(!token.contains(&stored_secret(&s)));
    }

    #[test]
    fn a_token_of_every_other_length_is_malformed_before_decoding() {
        let mut s = session();
        let token = s.csrf_token();
        assert_eq!(s.verify_csrf(&token[..85]), Err(CsrfError::Malformed));
        assert_eq!(
            s.verify_csrf(&format!("{token}A")),
            Err(CsrfError::Malformed)
        );
        assert_eq!(
            s.verify_csrf(&"A".repeat(1 << 20)),
            Err(CsrfError::Malformed)
        );
        assert_eq!(s.verify_csrf(""), Err(CsrfError::Missing));
    }

    #[test]
    fn non_canonical_or_foreign_alphabet_tokens_are_malformed() {
        let mut s = session();
        let token = s.csrf_token();
        // 86 characters carry 516 bits for 512: the last character holds
        // two bits and four that must be zero, so its alphabet index is a
        // multiple of 16. One more sets a trailing bit.
        const ALPHABET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let last = ALPHABET.find(&token[85..]).unwrap();
        assert_eq!(last % 16, 0);
        let non_canonical = format!("{}{}", &token[..85], &ALPHABET[last + 1..last + 2]);
        assert_eq!(s.verify_csrf(&non_canonical), Err(CsrfError::Malformed));
        // Standard base64's '+' and '/', padding, whitespace, multibyte.
        for bad in ["+", "/", "=", " ", "é"] {
            let mut t = token[..CSRF_TOKEN_LEN - bad.len()].to_owned();
            t.push_str(bad);
            assert_eq!(s.verify_csrf(&t), Err(CsrfError::Malformed), "{bad:?}");
        }
    }

    #[test]
    fn a_changed_byte_is_a_mismatch() {
        let mut s = session();
        let token = s.csrf_token();
        let mut raw = parse_token(&token).unwrap();
        for i in [0, 31, 32, 63] {
            raw[i] ^= 1;
            let t = URL_SAFE_NO_PAD.encode(raw);
            assert_eq!(s.verify_csrf(&t), Err(CsrfError::Mismatch), "byte {i}");
            raw[i] ^= 1;
        }
        assert_eq!(s.verify_csrf(&URL_SAFE_NO_PAD.encode(raw)), Ok(()));
    }

    #[test]
    fn a_foreign_value_under_the_reserved_key_is_replaced() {
        let mut s = session();
        for junk in [
            serde_json::json!("x"),
            serde_json::json!({ "secret": 1, "bound_to": 2 }),
            serde_json::json!({ "secret": "short", "bound_to": binding(&s) }),
        ] {
            s.insert(CSRF_KEY, &junk).unwrap();
            assert_eq!(
                s.verify_csrf(&"A".repeat(CSRF_TOKEN_LEN)),
                Err(CsrfError::NoSecret)
            );
            let token = s.csrf_token();
            assert_eq!(s.verify_csrf(&token), Ok(()));
        }
    }

    #[test]
    fn binding_changes_with_the_user_and_the_authentication_time() {
        let mut s = session();
        let anonymous = binding(&s);
        s.user = Some("alice".into());
        s.auth_at = Some(Timestamp::from_unix_millis(1));
        let alice = binding(&s);
        s.auth_at = Some(Timestamp::from_unix_millis(2));
        let alice_again = binding(&s);
        s.user = Some("bob".into());
        let bob = binding(&s);
        let all = [anonymous, alice, alice_again, bob];
        for (i, a) in all.iter().enumerate() {
            assert_eq!(a.len(), 22);
            for b in &all[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn debug_does_not_leak_the_secret() {
        let mut s = session();
        let _ = s.csrf_token();
        let secret = stored_secret(&s);
        for shown in [format!("{s:?}"), format!("{:?}", s.data())] {
            assert!(!shown.contains(&secret), "{shown}");
            assert!(shown.contains(CSRF_KEY), "{shown}");
        }
        assert_eq!(format!("{:?}", Secret([7; 32])), "Secret(<redacted>)");
    }

    #[test]
    fn tickets_carry_the_secret() {
        let key = TicketKey::try_from(&[9u8; 32][..]).unwrap();
        let m = TicketManager::new("session", KeyRing::new(1, key)).unwrap();
        let mut s = m
            .load(m.create(NewSession::new()).unwrap().token())
            .unwrap()
            .session;
        let token = s.csrf_token();
        let issued = m.save(&mut s).unwrap().unwrap();
        let again = m.load(issued.token()).unwrap().session;
        assert_eq!(again.verify_csrf(&token), Ok(()));
    }

    proptest! {
        #[test]
        fn any_string_gets_a_typed_answer(token in ".{0,100}") {
            let mut s = session();
            let _ = s.csrf_token();
            let out = s.verify_csrf(&token);
            prop_assert!(out.is_err());
        }

        #[test]
        fn any_86_base64url_chars_are_a_mismatch_or_malformed(token in "[A-Za-z0-9_-]{86}") {
            let mut s = session();
            let _ = s.csrf_token();
            let out = s.verify_csrf(&token);
            prop_assert!(matches!(out, Err(CsrfError::Mismatch | CsrfError::Malformed)), "{:?}", out);
        }
    }
}
