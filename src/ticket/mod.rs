//! Signed stateless tickets: the session travels with the client.
//!
//! A [`TicketManager`] implements [`SessionManager`](crate::SessionManager)
//! without keeping state per session: the cookie is a ticket holding the
//! session's metadata and data, signed with HMAC-SHA256 under a key from a
//! [`KeyRing`]. It is the idea of TLS session tickets (RFC 8446 §4.6.1),
//! and what people reach for JWT to do, without JWT's pitfalls:
//!
//! - **No algorithm field.** Format version 1 is HMAC-SHA256 with a full
//!   32-byte tag; there is no `alg` to confuse and no `none`.
//! - **Key ids inside the MAC**, so keys rotate without logging anyone out.
//! - **Bound to a purpose** (the cookie name), under the MAC and a
//!   domain-separation label.
//! - **An absolute deadline** that reissue, rotation and login copy and never
//!   extend, next to a sliding idle deadline.
//! - **Strict parsing**: length checked before decoding, one canonical
//!   base64url spelling, structure checked before any MAC, the tag compared
//!   in constant time.
//! - **Honest revocation**: ending a ticket before it expires needs state,
//!   so it is opt-in ([`TicketManager::with_revocation`]) and without it
//!   `terminate` says [`Error::RevocationNotConfigured`](crate::Error::RevocationNotConfigured).
//!
//! Tickets are signed, **not encrypted**: the client can read them.
//!
//! The byte layout, MAC input and revocation records are specified in
//! `docs/TICKET_FORMAT.md`; `tests/vectors/tickets.json` pins them and
//! `tests/vectors/verify_ticket.py` verifies them with Python's standard
//! library alone.

mod format;
mod keyring;
mod mac;
mod manager;
mod revocation;
mod unverified;
#[cfg(test)]
mod vectors;

pub use self::format::{MAX_TICKET_LEN, TicketError};
pub use self::keyring::{KeyRing, TicketConfigError, TicketKey};
pub use self::manager::TicketManager;
pub use self::unverified::UnverifiedTicket;
