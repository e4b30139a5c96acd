//! Sessions that outlive their connections: checkpoints and sequence
//! numbers, so a client that loses its connection reconnects with its
//! token and carries on where the server says it stopped.
//!
//! Nothing here does I/O or knows a transport: the state lives in the
//! session data under reserved keys ([`CHECKPOINTS_KEY`],
//! [`SEQUENCE_KEY`]), like [flash messages](crate::flash) and the
//! [CSRF secret](crate::csrf), and every change is committed by the
//! manager's ordinary save. It expires with the session, survives
//! [`rotate`](crate::SessionManager::rotate),
//! [`change_privilege`](crate::SessionManager::change_privilege) and the
//! login of an anonymous session (a login as another user starts empty),
//! and [`Session::clear`] removes it with the rest.
//!
//! # Checkpoints
//!
//! A [`Checkpoint`] is a fixed, small mark: an offset and a 32-byte digest
//! of what the offset covers (the application chooses the digest; the
//! example hashes each chunk onto the previous digest, so the chain resumes
//! from the checkpoint alone). A session holds at most
//! [`MAX_CHECKPOINTS`], each named by at most
//! [`MAX_CHECKPOINT_NAME_LEN`] bytes ("upload:report.pdf").
//!
//! A checkpoint only moves by compare-and-set:
//! [`Session::advance_checkpoint`] states the checkpoint it expects to
//! replace, as the connection last read it. Two connections resuming the
//! same session both read the same checkpoint; the first advance wins and
//! the second finds it changed ([`ResumeError::Stale`], which carries the
//! checkpoint now in force). That check runs on the copy in hand; across
//! processes the save is what decides:
//!
//! - **[`StoreManager`](crate::StoreManager)** (any store): saves are
//!   versioned. Two processes that loaded the same version and both
//!   advanced cannot both land: the loser's
//!   [`save`](crate::SessionManager::save) is [`Error::Conflict`]. The
//!   caller reloads and retries (its expected checkpoint is then stale, so
//!   the retry fails with [`ResumeError::Stale`] unless nothing moved) or
//!   gives up and tells its client to resume from the stored checkpoint.
//!   [`StoreManager::update`](crate::StoreManager::update) runs the reload
//!   loop for you.
//! - **[`TicketManager`]**: see [Tickets](#tickets).
//!
//! # Sequence numbers
//!
//! [`Session::accept_sequence`] keeps one counter per session, starting at
//! 0 ("nothing accepted yet"), and accepts exactly `last + 1`: requests
//! are numbered 1, 2, 3, … with no window. A number at or below the last
//! accepted one is [`ResumeError::Replayed`]; one past `last + 1` is
//! [`ResumeError::OutOfOrder`]. After `u64::MAX` every number is refused.
//!
//! **Retrying after a reconnect.** A client keeps its last request until
//! it is acknowledged. When the connection drops before the
//! acknowledgement, it reconnects with its token and resends that request
//! with **the same number**. If the server had applied it (only the
//! acknowledgement was lost), the number is now `last` and
//! `accept_sequence` answers [`ResumeError::Replayed`]: the server must not
//! apply it again, and answers "already applied" with its current state
//! (the acknowledgement, again). `Replayed` is therefore an error to the
//! session (nothing changes, nothing to save) but not to the client: map
//! it to the acknowledgement you would have sent. An attacker replaying a
//! captured request gets the same harmless answer. If the server had not
//! applied it, the number is `last + 1` and it is accepted as usual.
//!
//! # Tickets
//!
//! With a [`TicketManager`] the counter and the
//! checkpoints travel in the ticket, signed. A save issues a new ticket but
//! does **not** retire the old one: every older ticket still loads, with
//! the counter and checkpoints it carried. So with a plain
//! [`save`](crate::SessionManager::save) the guarantees hold only for a
//! client that always presents its newest ticket; whoever holds an older
//! ticket (a copy on the wire, a client that reconnects with a stale one)
//! can present it and have a request it covers accepted again, and two
//! requests on the same ticket both succeed (ticket saves never conflict).
//!
//! To make a ticket single-use, commit with [`commit_ticket`] instead of
//! `save`. It needs revocation
//! ([`TicketManager::with_revocation`](crate::TicketManager::with_revocation))
//! and refuses without it ([`Error::RevocationNotConfigured`], nothing
//! issued). With it, each commit is a
//! [`change_privilege`](crate::SessionManager::change_privilege): the
//! ticket the session was loaded from is retired by one insert-if-absent in
//! the revocation store, so
//!
//! - exactly one commit from a given ticket lands; a second one (another
//!   connection, another process, on the same ticket) is
//!   [`Error::Conflict`];
//! - the old ticket is refused from then on: [`Error::Superseded`] during
//!   the rotation grace window, [`Error::RotatedTokenReused`] after it,
//!   which by default also ends the session (a stale ticket presented late
//!   looks like a stolen copy).
//!
//! The client must then use the ticket each commit returns. That is the
//! same guarantee the store gives, at the cost of one store write per
//! commit, i.e. the state revocation needs anyway.

use std::fmt;

use serde_json::{Map, Value};

use crate::error::Error;
use crate::session::{Issued, Session};
use crate::ticket::TicketManager;

/// The session data key that holds the checkpoints, by name.
///
/// # Example
/// ```
/// use latchkey::{Checkpoint, MemoryStore, NewSession, SessionManager, StoreManager};
/// use latchkey::resume::CHECKPOINTS_KEY;
/// let manager = StoreManager::new(MemoryStore::new());
/// let mut session = manager.load(manager.create(NewSession::new())?.token())?.session;
/// session.advance_checkpoint("upload", None, Checkpoint::new(10, [0; 32]))?;
/// assert!(session.keys().any(|k| k == CHECKPOINTS_KEY));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub const CHECKPOINTS_KEY: &str = "latchkey.checkpoints";

/// The session data key that holds the last accepted sequence number.
///
/// # Example
/// ```
/// use latchkey::{MemoryStore, NewSession, SessionManager, StoreManager};
/// use latchkey::resume::SEQUENCE_KEY;
/// let manager = StoreManager::new(MemoryStore::new());
/// let mut session = manager.load(manager.create(NewSession::new())?.token())?.session;
/// session.accept_sequence(1)?;
/// assert_eq!(session.get::<u64>(SEQUENCE_KEY)?, Some(1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub const SEQUENCE_KEY: &str = "latchkey.sequence";

/// The most checkpoints a session holds.
///
/// # Example
/// ```
/// use latchkey::{Checkpoint, MAX_CHECKPOINTS, MemoryStore, NewSession, ResumeError};
/// use latchkey::{SessionManager, StoreManager};
/// let manager = StoreManager::new(MemoryStore::new());
/// let mut session = manager.load(manager.create(NewSession::new())?.token())?.session;
/// for n in 0..MAX_CHECKPOINTS {
///     session.advance_checkpoint(&format!("t{n}"), None, Checkpoint::new(0, [0; 32]))?;
/// }
/// let err = session.advance_checkpoint("one more", None, Checkpoint::new(0, [0; 32]));
/// assert_eq!(err, Err(ResumeError::TooManyCheckpoints { limit: MAX_CHECKPOINTS }));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub const MAX_CHECKPOINTS: usize = 8;

/// The longest checkpoint name, in bytes.
///
/// # Example
/// ```
/// use latchkey::{Checkpoint, MAX_CHECKPOINT_NAME_LEN, MemoryStore, NewSession};
/// use latchkey::{SessionManager, StoreManager};
/// let manager = StoreManager::new(MemoryStore::new());
/// let mut session = manager.load(manager.create(NewSession::new())?.token())?.session;
/// let long = "n".repeat(MAX_CHECKPOINT_NAME_LEN + 1);
/// assert!(session.advance_checkpoint(&long, None, Checkpoint::new(0, [0; 32])).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub const MAX_CHECKPOINT_NAME_LEN: usize = 64;

/// Field names in each stored checkpoint: `{"offset": 1024, "digest": "<64 hex>"}`.
const OFFSET_FIELD: &str = "offset";
const DIGEST_FIELD: &str = "digest";

/// A named mark in a long exchange: how far it got (`offset`) and a digest
/// of what that covers, as the application computes it.
///
/// It is a fixed 40-byte value, so a session's checkpoints stay small
/// enough for a ticket. It is not secret: `Debug` shows the digest in hex.
///
/// # Example
/// ```
/// use latchkey::Checkpoint;
/// let c = Checkpoint::new(4096, [7; 32]);
/// assert_eq!((c.offset(), c.digest()), (4096, &[7; 32]));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Checkpoint {
    offset: u64,
    digest: [u8; 32],
}

impl Checkpoint {
    /// A checkpoint at `offset` whose content hashes to `digest`.
    ///
    /// # Example
    /// ```
    /// use latchkey::Checkpoint;
    /// assert_eq!(Checkpoint::new(0, [0; 32]).offset(), 0);
    /// ```
    pub fn new(offset: u64, digest: [u8; 32]) -> Checkpoint {
        Checkpoint { offset, digest }
    }

    /// How far the exchange got: bytes, records, whatever the application
    /// counts.
    ///
    /// # Example
    /// ```
    /// use latchkey::Checkpoint;
    /// assert_eq!(Checkpoint::new(12, [0; 32]).offset(), 12);
    /// ```
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The digest of what [`offset`](Self::offset) covers.
    ///
    /// # Example
    /// ```
    /// use latchkey::Checkpoint;
    /// assert_eq!(Checkpoint::new(12, [3; 32]).digest(), &[3; 32]);
    /// ```
    pub fn digest(&self) -> &[u8; 32] {
        &self.digest
    }

    fn to_value(self) -> Value {
        let mut m = Map::new();
        m.insert(OFFSET_FIELD.into(), Value::from(self.offset));
        m.insert(DIGEST_FIELD.into(), Value::String(to_hex(&self.digest)));
        Value::Object(m)
    }

    fn from_value(v: &Value) -> Option<Checkpoint> {
        let offset = v.get(OFFSET_FIELD)?.as_u64()?;
        let digest = from_hex(v.get(DIGEST_FIELD)?.as_str()?)?;
        Some(Checkpoint { offset, digest })
    }
}

impl fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Checkpoint")
            .field("offset", &self.offset)
            .field("digest", &to_hex(&self.digest))
            .finish()
    }
}

fn to_hex(bytes: &[u8; 32]) -> String {
    use fmt::Write as _;
    let mut s = String::with_capacity(64);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Lower-case hex only, exactly 64 digits: what [`to_hex`] writes.
fn from_hex(s: &str) -> Option<[u8; 32]> {
    fn digit(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    let s = s.as_bytes();
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        *o = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

/// Why a checkpoint was not advanced or a sequence number not accepted;
/// the session is then unchanged.
///
/// None of these is a rejection of the session: it stays valid.
///
/// # Example
/// ```
/// use latchkey::{MemoryStore, NewSession, ResumeError, SessionManager, StoreManager};
/// let manager = StoreManager::new(MemoryStore::new());
/// let mut session = manager.load(manager.create(NewSession::new())?.token())?.session;
/// session.accept_sequence(1)?;
/// let err = session.accept_sequence(1).unwrap_err();
/// assert_eq!(err, ResumeError::Replayed { last: 1, got: 1 });
/// assert_eq!(err.to_string(), "request 1 was already accepted (the last accepted is 1)");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResumeError {
    /// The checkpoint is not the one the caller expected to replace:
    /// another connection advanced it since the caller read it (or the
    /// caller expected one where there is none, or none where there is
    /// one). Resume from `current`.
    #[error("the checkpoint changed since it was read")]
    Stale {
        /// The checkpoint in force, if any.
        current: Option<Checkpoint>,
    },
    /// The session already holds [`MAX_CHECKPOINTS`] other checkpoints.
    #[error("the session already holds {limit} checkpoints, the most it keeps")]
    TooManyCheckpoints {
        /// The limit.
        limit: usize,
    },
    /// The checkpoint name is over [`MAX_CHECKPOINT_NAME_LEN`] bytes.
    #[error("the checkpoint name is {len} bytes, over the limit of {limit}")]
    NameTooLong {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// The sequence number was accepted before (`got <= last`): the request
    /// is already applied. Do not apply it again; answer as for an applied
    /// request (see [the module docs](crate::resume#sequence-numbers)).
    #[error("request {got} was already accepted (the last accepted is {last})")]
    Replayed {
        /// The last accepted number.
        last: u64,
        /// The number presented.
        got: u64,
    },
    /// The sequence number skips ahead (`got > last + 1`): a request in
    /// between is missing. The client resends from `expected`.
    #[error("request {got} is out of order: expected {expected}")]
    OutOfOrder {
        /// The only number accepted next (`last + 1`).
        expected: u64,
        /// The number presented.
        got: u64,
    },
    /// The reserved key holds a value latchkey did not write. Resume state
    /// fails closed: a counter that read as zero would let every old
    /// request be replayed. Remove the key (or clear the session) to start
    /// over.
    #[error("the session data under {key} is not resume state latchkey wrote")]
    Unreadable {
        /// [`CHECKPOINTS_KEY`] or [`SEQUENCE_KEY`].
        key: &'static str,
    },
}

impl Session {
    /// The stored checkpoints: `Ok(None)` if there are none,
    /// `Err(Unreadable)` if the key holds something else.
    fn stored_checkpoints(&self) -> Result<Option<&Map<String, Value>>, ResumeError> {
        match self.data.map().get(CHECKPOINTS_KEY) {
            None => Ok(None),
            Some(Value::Object(m)) => Ok(Some(m)),
            Some(_) => Err(ResumeError::Unreadable {
                key: CHECKPOINTS_KEY,
            }),
        }
    }

    /// The checkpoint named `name`, if one was set. A value under
    /// [`CHECKPOINTS_KEY`] that latchkey did not write reads as none (and
    /// [`advance_checkpoint`](Self::advance_checkpoint) refuses to
    /// overwrite it).
    ///
    /// # Example
    /// ```
    /// use latchkey::{Checkpoint, MemoryStore, NewSession, SessionManager, StoreManager};
    /// let manager = StoreManager::new(MemoryStore::new());
    /// let issued = manager.create(NewSession::new())?;
    /// let mut session = manager.load(issued.token())?.session;
    /// assert_eq!(session.checkpoint("upload"), None);
    /// session.advance_checkpoint("upload", None, Checkpoint::new(512, [1; 32]))?;
    /// manager.save(&mut session)?;
    ///
    /// // A new connection, the same token: resume where it stopped.
    /// let resumed = manager.load(issued.token())?.session;
    /// assert_eq!(resumed.checkpoint("upload").map(|c| c.offset()), Some(512));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn checkpoint(&self, name: &str) -> Option<Checkpoint> {
        self.stored_checkpoints()
            .ok()
            .flatten()
            .and_then(|m| m.get(name))
            .and_then(Checkpoint::from_value)
    }

    /// Replaces the checkpoint `name` with `next` if it is still `expected`
    /// (`None`: there is none yet), compare-and-set. Pass the checkpoint as
    /// this connection last read or set it. `next` may be any checkpoint,
    /// even a lower offset (a restart). The session is then
    /// [modified](Self::is_modified): save it, and treat the advance as
    /// done only when the save succeeds (see [the module
    /// docs](crate::resume#checkpoints) for what a save guarantees).
    ///
    /// # Errors
    /// [`ResumeError::NameTooLong`]; [`ResumeError::Unreadable`];
    /// [`ResumeError::Stale`] if the checkpoint is not `expected`;
    /// [`ResumeError::TooManyCheckpoints`] for a new name when
    /// [`MAX_CHECKPOINTS`] are set. The session is then unchanged.
    ///
    /// # Example
    /// ```
    /// use latchkey::{Checkpoint, MemoryStore, NewSession, ResumeError, SessionManager, StoreManager};
    /// let manager = StoreManager::new(MemoryStore::new());
    /// let issued = manager.create(NewSession::new())?;
    /// let first = Checkpoint::new(100, [1; 32]);
    /// let mut session = manager.load(issued.token())?.session;
    /// session.advance_checkpoint("upload", None, first)?;
    /// manager.save(&mut session)?;
    ///
    /// // Two connections resume from the same checkpoint ...
    /// let mut a = manager.load(issued.token())?.session;
    /// let mut b = a.clone();
    /// let seen = a.checkpoint("upload");
    /// // ... the first advance wins ...
    /// a.advance_checkpoint("upload", seen.as_ref(), Checkpoint::new(200, [2; 32]))?;
    /// // ... and the second, on its own copy, must rely on the save:
    /// b.advance_checkpoint("upload", seen.as_ref(), Checkpoint::new(150, [3; 32]))?;
    /// manager.save(&mut a)?;
    /// assert!(matches!(manager.save(&mut b), Err(latchkey::Error::Conflict)));
    ///
    /// // Reloaded, b's expectation is stale, and it learns where to resume.
    /// let mut b = manager.load(issued.token())?.session;
    /// let err = b.advance_checkpoint("upload", Some(&first), Checkpoint::new(150, [3; 32]));
    /// assert_eq!(err, Err(ResumeError::Stale { current: Some(Checkpoint::new(200, [2; 32])) }));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn advance_checkpoint(
        &mut self,
        name: &str,
        expected: Option<&Checkpoint>,
        next: Checkpoint,
    ) -> Result<(), ResumeError> {
        if name.len() > MAX_CHECKPOINT_NAME_LEN {
            return Err(ResumeError::NameTooLong {
                len: name.len(),
                limit: MAX_CHECKPOINT_NAME_LEN,
            });
        }
        let stored = self.stored_checkpoints()?;
        let present = stored.and_then(|m| m.get(name));
        // A present but unreadable entry is not silently replaced: the
        // caller could not have expected it.
        let current = match present {
            None => None,
            Some(v) => Some(Checkpoint::from_value(v).ok_or(ResumeError::Unreadable {
                key: CHECKPOINTS_KEY,
            })?),
        };
        if current.as_ref() != expected {
            return Err(ResumeError::Stale { current });
        }
        if present.is_none() && stored.is_some_and(|m| m.len() >= MAX_CHECKPOINTS) {
            return Err(ResumeError::TooManyCheckpoints {
                limit: MAX_CHECKPOINTS,
            });
        }
        let entry = self
            .data
            .map_mut()
            .entry(CHECKPOINTS_KEY)
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(m) = entry {
            m.insert(name.into(), next.to_value());
        }
        Ok(())
    }

    /// Removes the checkpoint `name` (the exchange finished or was
    /// abandoned); returns whether it was there. Removing the last one
    /// removes [`CHECKPOINTS_KEY`].
    ///
    /// # Example
    /// ```
    /// use latchkey::{Checkpoint, MemoryStore, NewSession, SessionManager, StoreManager};
    /// let manager = StoreManager::new(MemoryStore::new());
    /// let mut session = manager.load(manager.create(NewSession::new())?.token())?.session;
    /// session.advance_checkpoint("upload", None, Checkpoint::new(1, [0; 32]))?;
    /// assert!(session.remove_checkpoint("upload"));
    /// assert!(!session.remove_checkpoint("upload"));
    /// assert_eq!(session.keys().count(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn remove_checkpoint(&mut self, name: &str) -> bool {
        match self.stored_checkpoints() {
            Ok(Some(m)) if m.contains_key(name) => {}
            _ => return false,
        }
        let map = self.data.map_mut();
        let now_empty = match map.get_mut(CHECKPOINTS_KEY) {
            Some(Value::Object(m)) => {
                m.remove(name);
                m.is_empty()
            }
            _ => false,
        };
        if now_empty {
            map.remove(CHECKPOINTS_KEY);
        }
        true
    }

    /// The last accepted sequence number; 0 if none was.
    ///
    /// # Errors
    /// [`ResumeError::Unreadable`] if [`SEQUENCE_KEY`] holds something
    /// other than a number latchkey wrote.
    ///
    /// # Example
    /// ```
    /// use latchkey::{MemoryStore, NewSession, SessionManager, StoreManager};
    /// let manager = StoreManager::new(MemoryStore::new());
    /// let mut session = manager.load(manager.create(NewSession::new())?.token())?.session;
    /// assert_eq!(session.last_sequence()?, 0);
    /// session.accept_sequence(1)?;
    /// assert_eq!(session.last_sequence()?, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn last_sequence(&self) -> Result<u64, ResumeError> {
        match self.data.map().get(SEQUENCE_KEY) {
            None => Ok(0),
            Some(v) => v
                .as_u64()
                .ok_or(ResumeError::Unreadable { key: SEQUENCE_KEY }),
        }
    }

    /// Accepts request number `n` if it is exactly the next one
    /// (`last + 1`, so the first is 1) and records it; the session is then
    /// [modified](Self::is_modified): apply the request, save, and
    /// acknowledge only once the save succeeded.
    ///
    /// # Errors
    /// [`ResumeError::Replayed`] if `n <= last` (already applied: answer
    /// "already applied", never apply twice);
    /// [`ResumeError::OutOfOrder`] if `n > last + 1`;
    /// [`ResumeError::Unreadable`]. The session is then unchanged.
    ///
    /// # Example
    /// ```
    /// use latchkey::{MemoryStore, NewSession, ResumeError, SessionManager, StoreManager};
    /// let manager = StoreManager::new(MemoryStore::new());
    /// let issued = manager.create(NewSession::new())?;
    /// let mut session = manager.load(issued.token())?.session;
    /// session.accept_sequence(1)?;
    /// manager.save(&mut session)?;
    ///
    /// // The connection drops before the client sees the ack; it
    /// // reconnects and resends request 1.
    /// let mut session = manager.load(issued.token())?.session;
    /// assert_eq!(session.accept_sequence(1), Err(ResumeError::Replayed { last: 1, got: 1 }));
    /// assert!(!session.is_modified()); // already applied: ack it again
    /// assert_eq!(session.accept_sequence(3), Err(ResumeError::OutOfOrder { expected: 2, got: 3 }));
    /// session.accept_sequence(2)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn accept_sequence(&mut self, n: u64) -> Result<(), ResumeError> {
        let last = self.last_sequence()?;
        if n <= last {
            return Err(ResumeError::Replayed { last, got: n });
        }
        // `n > last`, so `last + 1` cannot overflow.
        if n != last + 1 {
            return Err(ResumeError::OutOfOrder {
                expected: last + 1,
                got: n,
            });
        }
        self.data
            .map_mut()
            .insert(SEQUENCE_KEY.into(), Value::from(n));
        Ok(())
    }
}

/// Commits a session loaded from a ticket so that ticket can never be used
/// again: the single-use commit that gives tickets the replay protection a
/// store gives (see [Tickets](crate::resume#tickets)). It is a
/// [`change_privilege`](crate::SessionManager::change_privilege): send the
/// returned ticket to the client in place of the old one.
///
/// # Errors
/// [`Error::RevocationNotConfigured`] if `tickets` has no revocation store
/// (nothing is issued: without one no ticket can be retired);
/// [`Error::Conflict`] if the ticket was committed already (another
/// connection won); otherwise as for
/// [`TicketManager::change_privilege_at`].
///
/// # Example
/// ```
/// use latchkey::{Error, KeyRing, MemoryStore, NewSession, SessionManager, TicketKey, TicketManager};
/// use latchkey::resume::commit_ticket;
/// let tickets = TicketManager::new("session", KeyRing::new(1, TicketKey::generate()))?
///     .with_revocation(MemoryStore::new());
/// let first = tickets.create(NewSession::new())?;
///
/// let mut a = tickets.load(first.token())?.session;
/// a.accept_sequence(1)?;
/// let second = commit_ticket(&tickets, &mut a)?;
///
/// // The old ticket, replayed with its old counter, is refused ...
/// assert!(matches!(tickets.load(first.token()), Err(Error::Superseded)));
/// // ... and the new one carries the counter.
/// let mut b = tickets.load(second.token())?.session;
/// assert!(b.accept_sequence(1).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn commit_ticket(tickets: &TicketManager, session: &mut Session) -> Result<Issued, Error> {
    if !tickets.has_revocation() {
        return Err(Error::RevocationNotConfigured);
    }
    crate::SessionManager::change_privilege(tickets, session)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_refuses_anything_else() {
        let mut d = [0u8; 32];
        for (i, b) in d.iter_mut().enumerate() {
            *b = (i * 37) as u8;
        }
        assert_eq!(from_hex(&to_hex(&d)), Some(d));
        assert_eq!(from_hex(&to_hex(&d).to_uppercase()), None);
        assert_eq!(from_hex(&to_hex(&d)[..62]), None);
        assert_eq!(from_hex(&"g".repeat(64)), None);
        assert_eq!(from_hex(&"é".repeat(32)), None);
    }

    #[test]
    fn debug_shows_the_digest_in_hex() {
        let shown = format!("{:?}", Checkpoint::new(3, [0x0f; 32]));
        assert_eq!(
            shown,
            format!(
                "Checkpoint {{ offset: 3, digest: \"{}\" }}",
                "0f".repeat(32)
            )
        );
    }

    #[test]
    fn checkpoints_are_stored_as_offset_and_hex_digest() {
        let v = Checkpoint::new(7, [0xab; 32]).to_value();
        assert_eq!(v[OFFSET_FIELD], 7);
        assert_eq!(v[DIGEST_FIELD], "ab".repeat(32));
        assert_eq!(
            Checkpoint::from_value(&v),
            Some(Checkpoint::new(7, [0xab; 32]))
        );
    }
}
