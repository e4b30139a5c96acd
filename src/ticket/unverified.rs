//! [`UnverifiedTicket`]: a ticket's header and claims read without a key,
//! for tools that show what a ticket says (the operator CLI's `inspect`).

use std::fmt;

use super::format::{self, MAX_BINARY_LEN, TicketError, VERSION};
use crate::clock::Timestamp;
use crate::id::StoreKey;

/// A ticket decoded as strictly as a verifier decodes it (every structural
/// check of `docs/TICKET_FORMAT.md`, steps 1–5), but **not verified**: no
/// key was used, so anyone could have written every field. Show it; never
/// act on it (use [`TicketManager::load`](crate::TicketManager) for that).
///
/// `Debug` shows the session's fingerprint and the data's size, not the
/// data.
///
/// # Example
/// ```
/// use latchkey::{KeyRing, NewSession, SessionManager, TicketKey, TicketManager, UnverifiedTicket};
/// let manager = TicketManager::new("__Host-session", KeyRing::new(7, TicketKey::generate()))?;
/// let issued = manager.create(NewSession::new().with_user("alice"))?;
/// let seen = UnverifiedTicket::parse(issued.token())?;
/// assert_eq!((seen.key_id(), seen.user()), (7, Some("alice")));
/// assert!(seen.is_for_purpose("__Host-session"));
/// assert_eq!(seen.session_key().fingerprint(), issued.fingerprint());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct UnverifiedTicket {
    purpose_id: [u8; 4],
    key_id: u32,
    created_at: Timestamp,
    issued_at: Timestamp,
    auth_at: Option<Timestamp>,
    idle_deadline: Timestamp,
    absolute_deadline: Timestamp,
    session_key: StoreKey,
    user: Option<String>,
    device: Option<String>,
    data: String,
}

impl fmt::Debug for UnverifiedTicket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnverifiedTicket")
            .field("key_id", &self.key_id)
            .field("session", &self.session_key.fingerprint())
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

impl UnverifiedTicket {
    /// Decodes `ticket` with the verifier's own parser: the same length
    /// limits (checked first), the strict base64url, the flag and length
    /// rules, UTF-8 text.
    ///
    /// # Errors
    /// [`TicketError`] naming the first structural fault.
    ///
    /// # Example
    /// ```
    /// use latchkey::{TicketError, UnverifiedTicket};
    /// assert_eq!(UnverifiedTicket::parse("lk2.AAAA"), Err(TicketError::TooShort(8)));
    /// ```
    pub fn parse(ticket: &str) -> Result<UnverifiedTicket, TicketError> {
        let mut buf = vec![0u8; MAX_BINARY_LEN];
        let parsed = format::parse(ticket, &mut buf)?;
        let c = parsed.claims;
        Ok(UnverifiedTicket {
            purpose_id: parsed.purpose_id,
            key_id: parsed.key_id,
            created_at: c.created_at,
            issued_at: c.issued_at,
            auth_at: c.auth_at,
            idle_deadline: c.idle_deadline,
            absolute_deadline: c.absolute_deadline,
            session_key: StoreKey::from_bytes(c.session_key),
            user: c.user.map(str::to_owned),
            device: c.device.map(str::to_owned),
            data: c.data.to_owned(),
        })
    }

    /// The format version (1: the only one a ticket that parses has).
    pub fn version(&self) -> u8 {
        VERSION
    }

    /// The 4-byte purpose id in the header: the start of SHA-256 of a label
    /// and the purpose (see [`is_for_purpose`](Self::is_for_purpose)).
    pub fn purpose_id(&self) -> [u8; 4] {
        self.purpose_id
    }

    /// Whether the header names `purpose` (a ticket manager's purpose, e.g.
    /// its cookie name). Only a hint: the signature is what binds it.
    pub fn is_for_purpose(&self, purpose: &str) -> bool {
        format::purpose_id(purpose) == self.purpose_id
    }

    /// The id of the key the ticket says it was signed with.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// When the session was created.
    pub fn created_at(&self) -> Timestamp {
        self.created_at
    }

    /// When this ticket was issued.
    pub fn issued_at(&self) -> Timestamp {
        self.issued_at
    }

    /// When the user last authenticated, if bound to one.
    pub fn authenticated_at(&self) -> Option<Timestamp> {
        self.auth_at
    }

    /// The idle deadline written in the ticket (a verifier also caps it by
    /// its policy).
    pub fn idle_deadline(&self) -> Timestamp {
        self.idle_deadline
    }

    /// The absolute deadline written in the ticket.
    pub fn absolute_deadline(&self) -> Timestamp {
        self.absolute_deadline
    }

    /// The session's store key (its fingerprint names it in logs).
    pub fn session_key(&self) -> &StoreKey {
        &self.session_key
    }

    /// The user, if bound to one.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// The device label, if any.
    pub fn device(&self) -> Option<&str> {
        self.device.as_deref()
    }

    /// The session data, as the JSON object text the ticket carries.
    pub fn data(&self) -> &str {
        &self.data
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{KeyRing, NewSession, SessionManager, TicketKey, TicketManager};

    #[test]
    fn reads_what_the_manager_wrote_and_refuses_what_it_refuses() {
        let m = TicketManager::new("p", KeyRing::new(3, TicketKey::generate())).unwrap();
        let issued = m
            .create(
                NewSession::new()
                    .with_user("bob")
                    .with_device("phone")
                    .with_value("secret", "hunter2")
                    .unwrap(),
            )
            .unwrap();
        let t = UnverifiedTicket::parse(issued.token()).unwrap();
        let loaded = m.load(issued.token()).unwrap().session;
        assert_eq!(t.key_id(), 3);
        assert_eq!(t.user(), Some("bob"));
        assert_eq!(t.device(), Some("phone"));
        assert_eq!(t.authenticated_at(), loaded.authenticated_at());
        assert_eq!(t.created_at(), loaded.created_at());
        assert!(t.data().contains("hunter2"));
        assert!(t.is_for_purpose("p") && !t.is_for_purpose("q"));
        assert!(!format!("{t:?}").contains("hunter2"));
        // One character changed in the base64: still parses or is refused,
        // never panics; a truncated ticket is refused.
        let token = issued.token();
        assert!(UnverifiedTicket::parse(&token[..token.len() - 4]).is_err());
        assert!(UnverifiedTicket::parse(&"x".repeat(10_000)).is_err());
    }
}
