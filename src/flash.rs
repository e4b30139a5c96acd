//! Flash messages: values read once, that survive the redirect after a
//! form post and are gone once shown.
//!
//! [`Session::flash`] adds a message ("Saved.", "Wrong password") under a
//! kind the page styles it by; [`Session::take_flashes`] returns them all
//! and removes them. They live in the session data under [`FLASH_KEY`], so
//! they ride along wherever the data goes:
//!
//! - **save and load**: the caller saves the session after
//!   [`flash`](Session::flash) and after [`take_flashes`](Session::take_flashes)
//!   (the framework adapters do), or the message is lost, or shown twice;
//! - **rotation**: [`rotate`](crate::SessionManager::rotate) and
//!   [`change_privilege`](crate::SessionManager::change_privilege) carry
//!   the data, flashes included;
//! - **login**: a login of an anonymous session (or of the same user)
//!   carries the data, so a flash set before it is shown after it. A login
//!   as *another* user starts a fresh, empty session (one user's data never
//!   passes to another): set messages meant for after the login on the
//!   session [`login`](crate::SessionManager::login) leaves you.
//!
//! Both managers behave the same; with a
//! [`TicketManager`](crate::TicketManager) the messages travel in the
//! ticket, so the save issues a new ticket to set as the cookie, and the
//! ticket's size limit counts them ([`Error::TicketTooLarge`](crate::Error::TicketTooLarge)).
//! A session holds at most [`MAX_FLASHES`] messages, each at most
//! [`MAX_FLASH_MESSAGE_LEN`] bytes under a kind of at most
//! [`MAX_FLASH_KIND_LEN`]: flashes are for short notices, not content.
//!
//! Messages are shown to the user: escape them like any other text when
//! rendering.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::session::Session;

/// The session data key that holds the pending flash messages.
///
/// # Example
/// ```
/// use latchkey::{FLASH_KEY, MemoryStore, NewSession, SessionManager, StoreManager};
/// let manager = StoreManager::new(MemoryStore::new());
/// let mut session = manager.load(manager.create(NewSession::new())?.token())?.session;
/// session.flash("notice", "Saved.")?;
/// assert!(session.keys().any(|k| k == FLASH_KEY));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub const FLASH_KEY: &str = "latchkey.flash";

/// The most flash messages a session holds at once.
///
/// # Example
/// ```
/// use latchkey::{FlashError, MAX_FLASHES, MemoryStore, NewSession, SessionManager, StoreManager};
/// let manager = StoreManager::new(MemoryStore::new());
/// let mut session = manager.load(manager.create(NewSession::new())?.token())?.session;
/// for n in 0..MAX_FLASHES {
///     session.flash("notice", &format!("message {n}"))?;
/// }
/// assert_eq!(
///     session.flash("notice", "one too many"),
///     Err(FlashError::TooMany { limit: MAX_FLASHES })
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub const MAX_FLASHES: usize = 8;

/// The longest flash kind, in bytes.
///
/// # Example
/// ```
/// use latchkey::{MAX_FLASH_KIND_LEN, MemoryStore, NewSession, SessionManager, StoreManager};
/// let manager = StoreManager::new(MemoryStore::new());
/// let mut session = manager.load(manager.create(NewSession::new())?.token())?.session;
/// assert!(session.flash(&"k".repeat(MAX_FLASH_KIND_LEN + 1), "hi").is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub const MAX_FLASH_KIND_LEN: usize = 64;

/// The longest flash message, in bytes.
///
/// # Example
/// ```
/// use latchkey::{MAX_FLASH_MESSAGE_LEN, MemoryStore, NewSession, SessionManager, StoreManager};
/// let manager = StoreManager::new(MemoryStore::new());
/// let mut session = manager.load(manager.create(NewSession::new())?.token())?.session;
/// assert!(session.flash("notice", &"x".repeat(MAX_FLASH_MESSAGE_LEN)).is_ok());
/// assert!(session.flash("notice", &"x".repeat(MAX_FLASH_MESSAGE_LEN + 1)).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub const MAX_FLASH_MESSAGE_LEN: usize = 1024;

/// Field names in each stored message: `{"kind": "…", "message": "…"}`.
const KIND_FIELD: &str = "kind";
const MESSAGE_FIELD: &str = "message";

/// One flash message: its kind (`"notice"`, `"error"`, or any key the
/// application picks) and its text.
///
/// # Example
/// ```
/// use latchkey::{MemoryStore, NewSession, SessionManager, StoreManager};
/// let manager = StoreManager::new(MemoryStore::new());
/// let mut session = manager.load(manager.create(NewSession::new())?.token())?.session;
/// session.flash("error", "Wrong password.")?;
/// let shown = session.take_flashes();
/// assert_eq!((shown[0].kind(), shown[0].message()), ("error", "Wrong password."));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Flash {
    kind: String,
    message: String,
}

impl Flash {
    /// The kind the message was added under.
    ///
    /// # Example
    /// ```
    /// use latchkey::{MemoryStore, NewSession, SessionManager, StoreManager};
    /// let manager = StoreManager::new(MemoryStore::new());
    /// let mut session = manager.load(manager.create(NewSession::new())?.token())?.session;
    /// session.flash("notice", "Saved.")?;
    /// assert_eq!(session.take_flashes()[0].kind(), "notice");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The message text (escape it when rendering).
    ///
    /// # Example
    /// ```
    /// use latchkey::{MemoryStore, NewSession, SessionManager, StoreManager};
    /// let manager = StoreManager::new(MemoryStore::new());
    /// let mut session = manager.load(manager.create(NewSession::new())?.token())?.session;
    /// session.flash("notice", "Saved.")?;
    /// assert_eq!(session.take_flashes()[0].message(), "Saved.");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn message(&self) -> &str {
        &self.message
    }

    fn to_value(&self) -> Value {
        let mut m = Map::new();
        m.insert(KIND_FIELD.into(), Value::String(self.kind.clone()));
        m.insert(MESSAGE_FIELD.into(), Value::String(self.message.clone()));
        Value::Object(m)
    }
}

/// Why a flash message was not added; the session is unchanged.
///
/// # Example
/// ```
/// use latchkey::{FlashError, MemoryStore, NewSession, SessionManager, StoreManager};
/// let manager = StoreManager::new(MemoryStore::new());
/// let mut session = manager.load(manager.create(NewSession::new())?.token())?.session;
/// let err = session.flash("notice", &"x".repeat(2000)).unwrap_err();
/// assert_eq!(err, FlashError::TooLong { field: "message", len: 2000, limit: 1024 });
/// assert_eq!(err.to_string(), "the flash message is 2000 bytes, over the limit of 1024");
/// assert!(!session.is_modified());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FlashError {
    /// The session already holds [`MAX_FLASHES`] messages not yet taken.
    #[error("the session already holds {limit} flash messages, the most it keeps")]
    TooMany {
        /// The limit.
        limit: usize,
    },
    /// The kind or the message is too long.
    #[error("the flash {field} is {len} bytes, over the limit of {limit}")]
    TooLong {
        /// Which: `"kind"` or `"message"`.
        field: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The limit.
        limit: usize,
    },
}

impl FlashError {
    /// A short stable code for logs and responses: `flash_too_many` or
    /// `flash_too_long`.
    ///
    /// # Example
    /// ```
    /// use latchkey::FlashError;
    /// assert_eq!(FlashError::TooMany { limit: 8 }.reason(), "flash_too_many");
    /// ```
    pub fn reason(&self) -> &'static str {
        match self {
            FlashError::TooMany { .. } => "flash_too_many",
            FlashError::TooLong { .. } => "flash_too_long",
        }
    }
}

impl Session {
    /// The pending messages as stored. A value under [`FLASH_KEY`] that
    /// latchkey did not write (the key is reserved) reads as none.
    fn stored_flashes(&self) -> Vec<Flash> {
        self.data
            .map()
            .get(FLASH_KEY)
            .and_then(|v| Vec::<Flash>::deserialize(v).ok())
            .unwrap_or_default()
    }

    /// Adds a flash message to show on a later page, typically the one a
    /// redirect leads to. Several may be pending; they are shown in the
    /// order added. The session is then [modified](Self::is_modified): save
    /// it (the framework adapters do).
    ///
    /// # Errors
    /// [`FlashError::TooLong`] if `kind` is over [`MAX_FLASH_KIND_LEN`] or
    /// `message` over [`MAX_FLASH_MESSAGE_LEN`] bytes;
    /// [`FlashError::TooMany`] if [`MAX_FLASHES`] are pending already. The
    /// session is then unchanged.
    ///
    /// # Example
    /// ```
    /// use latchkey::{MemoryStore, NewSession, SessionManager, StoreManager};
    /// let manager = StoreManager::new(MemoryStore::new());
    /// let issued = manager.create(NewSession::new())?;
    ///
    /// // POST /settings: change them, say so, redirect.
    /// let mut session = manager.load(issued.token())?.session;
    /// session.flash("notice", "Settings saved.")?;
    /// manager.save(&mut session)?;
    ///
    /// // GET /settings, after the redirect: show the message once.
    /// let mut session = manager.load(issued.token())?.session;
    /// let shown = session.take_flashes();
    /// assert_eq!(shown[0].message(), "Settings saved.");
    /// manager.save(&mut session)?;
    ///
    /// // A reload shows nothing.
    /// assert!(manager.load(issued.token())?.session.take_flashes().is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn flash(&mut self, kind: &str, message: &str) -> Result<(), FlashError> {
        // Lengths first: nothing is parsed or copied for input refused.
        for (field, len, limit) in [
            ("kind", kind.len(), MAX_FLASH_KIND_LEN),
            ("message", message.len(), MAX_FLASH_MESSAGE_LEN),
        ] {
            if len > limit {
                return Err(FlashError::TooLong { field, len, limit });
            }
        }
        let mut pending = self.stored_flashes();
        if pending.len() >= MAX_FLASHES {
            return Err(FlashError::TooMany { limit: MAX_FLASHES });
        }
        pending.push(Flash {
            kind: kind.into(),
            message: message.into(),
        });
        let list = pending.iter().map(Flash::to_value).collect();
        self.data
            .map_mut()
            .insert(FLASH_KEY.into(), Value::Array(list));
        Ok(())
    }

    /// The pending flash messages, oldest first, left in place.
    ///
    /// # Example
    /// ```
    /// use latchkey::{MemoryStore, NewSession, SessionManager, StoreManager};
    /// let manager = StoreManager::new(MemoryStore::new());
    /// let mut session = manager.load(manager.create(NewSession::new())?.token())?.session;
    /// session.flash("notice", "Saved.")?;
    /// assert_eq!(session.peek_flashes().len(), 1);
    /// assert_eq!(session.take_flashes().len(), 1); // still there to take
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn peek_flashes(&self) -> Vec<Flash> {
        self.stored_flashes()
    }

    /// Returns the pending flash messages, oldest first, and removes them:
    /// call it while rendering the page that shows them, then save the
    /// session (the framework adapters do), or they show again. When there
    /// were none the session is left unmodified, so a page that takes
    /// nothing costs no write.
    ///
    /// # Example
    /// ```
    /// use latchkey::{MemoryStore, NewSession, SessionManager, StoreManager};
    /// let manager = StoreManager::new(MemoryStore::new());
    /// let mut session = manager.load(manager.create(NewSession::new())?.token())?.session;
    /// assert!(session.take_flashes().is_empty());
    /// assert!(!session.is_modified());
    ///
    /// session.flash("notice", "One.")?;
    /// session.flash("error", "Two.")?;
    /// manager.save(&mut session)?;
    /// let shown: Vec<_> = session.take_flashes().iter().map(|f| f.message().to_owned()).collect();
    /// assert_eq!(shown, ["One.", "Two."]);
    /// assert!(session.is_modified()); // save it
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn take_flashes(&mut self) -> Vec<Flash> {
        let pending = self.stored_flashes();
        self.remove(FLASH_KEY);
        pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MemoryStore, NewSession, SessionManager, StoreManager};

    fn session() -> Session {
        let m = StoreManager::new(MemoryStore::new());
        m.load(m.create(NewSession::new()).unwrap().token())
            .unwrap()
            .session
    }

    #[test]
    fn flashes_are_stored_as_kind_and_message_objects() {
        let mut s = session();
        s.flash("notice", "a \"quoted\" <b>").unwrap();
        assert_eq!(
            s.data().encoded().as_ref(),
            r#"{"latchkey.flash":[{"kind":"notice","message":"a \"quoted\" <b>"}]}"#
        );
    }

    #[test]
    fn limits_are_checked_before_anything_changes() {
        let mut s = session();
        let long_kind = "k".repeat(MAX_FLASH_KIND_LEN + 1);
        assert_eq!(
            s.flash(&long_kind, "m"),
            Err(FlashError::TooLong {
                field: "kind",
                len: MAX_FLASH_KIND_LEN + 1,
                limit: MAX_FLASH_KIND_LEN
            })
        );
        assert!(!s.is_modified());
        for n in 0..MAX_FLASHES {
            s.flash("notice", &n.to_string()).unwrap();
        }
        let before = s.data().encoded();
        assert_eq!(
            s.flash("notice", "x"),
            Err(FlashError::TooMany { limit: MAX_FLASHES })
        );
        assert_eq!(s.data().encoded(), before);
        // Taking makes room again.
        assert_eq!(s.take_flashes().len(), MAX_FLASHES);
        s.flash("notice", "x").unwrap();
        // Exactly at the limits is allowed.
        let kind = "k".repeat(MAX_FLASH_KIND_LEN);
        let message = "m".repeat(MAX_FLASH_MESSAGE_LEN);
        s.flash(&kind, &message).unwrap();
    }

    #[test]
    fn a_foreign_value_under_the_reserved_key_reads_as_none_and_is_replaced() {
        let mut s = session();
        s.insert(FLASH_KEY, &"not flashes").unwrap();
        assert!(s.peek_flashes().is_empty());
        s.flash("notice", "fresh").unwrap();
        assert_eq!(s.peek_flashes().len(), 1);
        s.insert(FLASH_KEY, &[1, 2]).unwrap();
        assert!(s.take_flashes().is_empty());
        assert!(!s.keys().any(|k| k == FLASH_KEY));
    }
}
