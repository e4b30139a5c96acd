//! Ticket keys and the [`KeyRing`] that rotates them.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use rand::Rng as _;
use subtle::ConstantTimeEq as _;

/// Why a key, a key ring or a ticket manager could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TicketConfigError {
    /// The key is shorter than [`TicketKey::MIN_LEN`] bytes. HMAC-SHA256's
    /// security rests on the key; a short one can be guessed offline from a
    /// single ticket.
    #[error("the ticket key has {len} bytes; at least 32 are required")]
    KeyTooShort {
        /// The length given.
        len: usize,
    },
    /// The text is not base64 (standard or URL-safe, padded or not).
    #[error("the ticket key is not valid base64")]
    KeyNotBase64,
    /// Two keys in one ring share an id, so a ticket's key id would not say
    /// which key signed it.
    #[error("the key ring already has a key with id {0}")]
    DuplicateKeyId(u32),
    /// The purpose is empty or longer than 255 bytes.
    #[error("the ticket purpose must be 1 to 255 bytes long, not {0}")]
    BadPurpose(usize),
}

/// A secret HMAC-SHA256 key for tickets: at least 32 bytes.
///
/// `Debug` never shows it, and equality runs in constant time. A
/// [`TicketManager`](crate::TicketManager) computes each key's HMAC states
/// once when it is given the ring, so signing and verifying a ticket never
/// redo the key schedule.
///
/// # Example
/// ```
/// use latchkey::TicketKey;
///
/// let key = TicketKey::generate();
/// let text = key.to_base64(); // store this in your secret manager
/// let again = TicketKey::from_base64(&text)?;
/// assert_eq!(key, again);
/// assert_eq!(format!("{key:?}"), "TicketKey(<redacted>)");
/// assert!(TicketKey::try_from(&[0u8; 16][..]).is_err());
/// # Ok::<(), latchkey::TicketConfigError>(())
/// ```
#[derive(Clone)]
pub struct TicketKey {
    bytes: Box<[u8]>,
}

impl TicketKey {
    /// The shortest key accepted, in bytes.
    pub const MIN_LEN: usize = 32;

    /// A fresh 32-byte key from the operating-system-seeded CSPRNG.
    ///
    /// # Example
    /// ```
    /// use latchkey::{KeyRing, TicketKey};
    /// assert_ne!(TicketKey::generate(), TicketKey::generate());
    /// ```
    pub fn generate() -> TicketKey {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        // 32 bytes is MIN_LEN, so this cannot fail; keep it typed anyway.
        TicketKey::build(&bytes)
    }

    /// A key from base64 text, standard or URL-safe alphabet, padded or
    /// not (what `openssl rand -base64 32` prints).
    ///
    /// # Errors
    /// [`TicketConfigError::KeyNotBase64`], or
    /// [`TicketConfigError::KeyTooShort`] if it decodes to under 32 bytes.
    ///
    /// # Example
    /// ```
    /// use latchkey::{TicketConfigError, TicketKey};
    ///
    /// // `openssl rand -base64 32`
    /// let key = TicketKey::from_base64("q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=")?;
    /// assert_eq!(key, TicketKey::from_base64("q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA")?);
    /// assert_eq!(
    ///     TicketKey::from_base64("c2hvcnQ=").unwrap_err(),
    ///     TicketConfigError::KeyTooShort { len: 5 }
    /// );
    /// # Ok::<(), TicketConfigError>(())
    /// ```
    pub fn from_base64(text: &str) -> Result<TicketKey, TicketConfigError> {
        let text = text.trim();
        let bytes = [&STANDARD, &URL_SAFE, &STANDARD_NO_PAD, &URL_SAFE_NO_PAD]
            .iter()
            .find_map(|engine| engine.decode(text).ok())
            .ok_or(TicketConfigError::KeyNotBase64)?;
        TicketKey::try_from(bytes.as_slice())
    }

    /// The key as unpadded base64url: a secret, for your secret store and
    /// nothing else.
    ///
    /// # Example
    /// ```
    /// use latchkey::{KeyRing, TicketKey};
    /// let key = TicketKey::generate();
    /// assert_eq!(TicketKey::from_base64(&key.to_base64())?, key);
    /// # Ok::<(), latchkey::TicketConfigError>(())
    /// ```
    pub fn to_base64(&self) -> String {
        URL_SAFE_NO_PAD.encode(&self.bytes)
    }

    fn build(bytes: &[u8]) -> TicketKey {
        TicketKey {
            bytes: bytes.into(),
        }
    }

    /// The secret key bytes, for the MAC.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl TryFrom<&[u8]> for TicketKey {
    type Error = TicketConfigError;

    /// A key from its bytes.
    ///
    /// # Errors
    /// [`TicketConfigError::KeyTooShort`] under 32 bytes.
    fn try_from(bytes: &[u8]) -> Result<TicketKey, TicketConfigError> {
        if bytes.len() < Self::MIN_LEN {
            return Err(TicketConfigError::KeyTooShort { len: bytes.len() });
        }
        Ok(TicketKey::build(bytes))
    }
}

impl PartialEq for TicketKey {
    fn eq(&self, other: &TicketKey) -> bool {
        // Lengths are not secret; contents are compared in constant time.
        self.bytes.len() == other.bytes.len() && bool::from(self.bytes.ct_eq(&other.bytes))
    }
}

impl Eq for TicketKey {}

impl fmt::Debug for TicketKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TicketKey(<redacted>)")
    }
}

/// The keys a ticket manager signs and verifies with: one signing key and
/// any number of verify-only keys, each under a `u32` id that every ticket
/// carries (inside the MAC).
///
/// Rotating keys logs nobody out: [`rotate`](Self::rotate) makes a new key
/// the signing key and keeps the old one for verification, and a ticket
/// signed with the old key is reissued under the new one on its next load.
/// Once the old key's tickets have all expired (the policy's absolute
/// timeout after the rotation), [`retire`](Self::retire) it.
///
/// `Debug` shows only the key ids.
///
/// # Example
/// ```
/// use latchkey::{KeyRing, TicketKey};
///
/// let mut ring = KeyRing::new(1, TicketKey::generate());
/// ring.rotate(2, TicketKey::generate())?;
/// assert_eq!(ring.signing_key_id(), 2);
/// assert_eq!(ring.key_ids().collect::<Vec<_>>(), [2, 1]);
/// assert!(ring.retire(1));
/// assert_eq!(format!("{ring:?}"), "KeyRing { signing: 2, verify_only: [] }");
/// # Ok::<(), latchkey::TicketConfigError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct KeyRing {
    signing: (u32, TicketKey),
    verify_only: Vec<(u32, TicketKey)>,
}

impl KeyRing {
    /// A ring that signs with `key`, known by `id`.
    ///
    /// # Example
    /// ```
    /// use latchkey::{KeyRing, TicketKey};
    /// let ring = KeyRing::new(1, TicketKey::generate());
    /// assert_eq!(ring.signing_key_id(), 1);
    /// ```
    pub fn new(id: u32, key: TicketKey) -> KeyRing {
        KeyRing {
            signing: (id, key),
            verify_only: Vec::new(),
        }
    }

    /// Adds a key that verifies tickets but never signs them.
    ///
    /// # Errors
    /// [`TicketConfigError::DuplicateKeyId`] if `id` is taken.
    ///
    /// # Example
    /// ```
    /// use latchkey::{KeyRing, TicketConfigError, TicketKey};
    ///
    /// // Roll a new key out as verify-only everywhere before any server
    /// // signs with it, so no server meets a ticket it cannot verify.
    /// let ring = KeyRing::new(1, TicketKey::generate()).with_verify_key(2, TicketKey::generate())?;
    /// assert_eq!(ring.signing_key_id(), 1);
    /// assert_eq!(
    ///     ring.with_verify_key(1, TicketKey::generate()).unwrap_err(),
    ///     TicketConfigError::DuplicateKeyId(1)
    /// );
    /// # Ok::<(), TicketConfigError>(())
    /// ```
    pub fn with_verify_key(
        mut self,
        id: u32,
        key: TicketKey,
    ) -> Result<KeyRing, TicketConfigError> {
        if self.get(id).is_some() {
            return Err(TicketConfigError::DuplicateKeyId(id));
        }
        self.verify_only.push((id, key));
        Ok(self)
    }

    /// Makes `key` the signing key; the previous signing key becomes
    /// verify-only, so tickets it signed keep working.
    ///
    /// # Errors
    /// [`TicketConfigError::DuplicateKeyId`] if `id` is taken; the ring is
    /// then unchanged.
    ///
    /// # Example
    /// ```
    /// use latchkey::{KeyRing, TicketKey};
    /// let mut ring = KeyRing::new(1, TicketKey::generate());
    /// ring.rotate(2, TicketKey::generate())?;
    /// assert_eq!(ring.signing_key_id(), 2);
    /// assert_eq!(ring.key_ids().count(), 2); // key 1 still verifies
    /// # Ok::<(), latchkey::TicketConfigError>(())
    /// ```
    pub fn rotate(&mut self, id: u32, key: TicketKey) -> Result<(), TicketConfigError> {
        if self.get(id).is_some() {
            return Err(TicketConfigError::DuplicateKeyId(id));
        }
        let old = std::mem::replace(&mut self.signing, (id, key));
        self.verify_only.insert(0, old);
        Ok(())
    }

    /// Removes a verify-only key: tickets it signed now fail with
    /// [`Error::UnknownKey`](crate::Error::UnknownKey). Returns whether
    /// there was one. The signing key cannot be retired, only rotated out.
    ///
    /// # Example
    /// ```
    /// use latchkey::{KeyRing, TicketKey};
    /// let mut ring = KeyRing::new(1, TicketKey::generate());
    /// ring.rotate(2, TicketKey::generate())?;
    /// assert!(ring.retire(1));
    /// assert_eq!(ring.key_ids().collect::<Vec<_>>(), [2]);
    /// # Ok::<(), latchkey::TicketConfigError>(())
    /// ```
    pub fn retire(&mut self, id: u32) -> bool {
        let before = self.verify_only.len();
        self.verify_only.retain(|(k, _)| *k != id);
        self.verify_only.len() != before
    }

    /// The id of the signing key.
    ///
    /// # Example
    /// ```
    /// use latchkey::{KeyRing, TicketKey};
    /// assert_eq!(KeyRing::new(7, TicketKey::generate()).signing_key_id(), 7);
    /// ```
    pub fn signing_key_id(&self) -> u32 {
        self.signing.0
    }

    /// Every key id, the signing key's first.
    ///
    /// # Example
    /// ```
    /// use latchkey::{KeyRing, TicketKey};
    /// assert_eq!(KeyRing::new(7, TicketKey::generate()).key_ids().collect::<Vec<_>>(), [7]);
    /// ```
    pub fn key_ids(&self) -> impl Iterator<Item = u32> + '_ {
        std::iter::once(self.signing.0).chain(self.verify_only.iter().map(|(id, _)| *id))
    }

    /// The key with `id`, signing or verify-only.
    pub(crate) fn get(&self, id: u32) -> Option<&TicketKey> {
        std::iter::once(&self.signing)
            .chain(self.verify_only.iter())
            .find(|(k, _)| *k == id)
            .map(|(_, key)| key)
    }

    /// The signing key.
    pub(crate) fn signing(&self) -> (u32, &TicketKey) {
        (self.signing.0, &self.signing.1)
    }

    /// All keys, the signing key first.
    pub(crate) fn all(&self) -> impl Iterator<Item = (u32, &TicketKey)> {
        std::iter::once(&self.signing)
            .chain(self.verify_only.iter())
            .map(|(id, key)| (*id, key))
    }
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("signing", &self.signing.0)
            .field(
                "verify_only",
                &self
                    .verify_only
                    .iter()
                    .map(|(id, _)| *id)
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_does_not_leak_key() {
        let bytes = [0xABu8; 40];
        let key = TicketKey::try_from(&bytes[..]).unwrap();
        let ring = KeyRing::new(5, key.clone());
        for shown in [format!("{key:?}"), format!("{key:#?}"), format!("{ring:?}")] {
            assert!(!shown.contains(&key.to_base64()), "{shown}");
            assert!(!shown.to_lowercase().contains("abab"), "{shown}");
            assert!(!shown.contains("171"), "{shown}"); // 0xAB in decimal
        }
    }

    #[test]
    fn short_keys_are_refused() {
        assert_eq!(
            TicketKey::try_from(&[1u8; 31][..]).unwrap_err(),
            TicketConfigError::KeyTooShort { len: 31 }
        );
        assert!(TicketKey::try_from(&[1u8; 32][..]).is_ok());
        // 16 bytes of valid base64 is still too short.
        assert_eq!(
            TicketKey::from_base64("AAAAAAAAAAAAAAAAAAAAAA==").unwrap_err(),
            TicketConfigError::KeyTooShort { len: 16 }
        );
        assert_eq!(
            TicketKey::from_base64("not base64!").unwrap_err(),
            TicketConfigError::KeyNotBase64
        );
    }

    #[test]
    fn base64_in_every_common_spelling_gives_the_same_key() {
        let bytes: Vec<u8> = (0u8..32).map(|b| b.wrapping_mul(67)).collect();
        let key = TicketKey::try_from(bytes.as_slice()).unwrap();
        for engine in [&STANDARD, &URL_SAFE, &STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
            let text = engine.encode(&bytes);
            assert_eq!(TicketKey::from_base64(&text).unwrap(), key, "{text}");
        }
        assert_eq!(TicketKey::from_base64(&key.to_base64()).unwrap(), key);
    }

    #[test]
    fn equality_compares_contents() {
        let a = TicketKey::try_from(&[1u8; 32][..]).unwrap();
        let b = TicketKey::try_from(&[1u8; 32][..]).unwrap();
        let c = TicketKey::try_from(&[2u8; 32][..]).unwrap();
        let d = TicketKey::try_from(&[1u8; 33][..]).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
        assert_ne!(TicketKey::generate(), TicketKey::generate());
    }

    #[test]
    fn rotation_keeps_old_keys_for_verification_and_refuses_duplicate_ids() {
        let k1 = TicketKey::generate();
        let k2 = TicketKey::generate();
        let mut ring = KeyRing::new(1, k1.clone());
        assert_eq!(
            ring.rotate(1, k2.clone()).unwrap_err(),
            TicketConfigError::DuplicateKeyId(1)
        );
        assert_eq!(ring.signing_key_id(), 1);
        ring.rotate(2, k2.clone()).unwrap();
        assert_eq!(ring.signing().0, 2);
        assert_eq!(ring.get(1), Some(&k1));
        assert_eq!(ring.get(2), Some(&k2));
        assert!(!ring.retire(2), "the signing key cannot be retired");
        assert!(ring.retire(1));
        assert_eq!(ring.get(1), None);
        let ring = ring.with_verify_key(9, k1).unwrap();
        assert_eq!(ring.all().map(|(id, _)| id).collect::<Vec<_>>(), [2, 9]);
        assert!(ring.with_verify_key(2, TicketKey::generate()).is_err());
    }
}
