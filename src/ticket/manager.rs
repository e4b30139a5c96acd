//! [`TicketManager`]: sessions carried by the client in signed tickets.

use std::fmt;
use std::sync::Arc;

use hmac::Hmac;
use parking_lot::RwLock;
use rand::Rng as _;
use sha2::{Digest as _, Sha256};

use crate::clock::{Clock, SystemClock, Timestamp};
use crate::error::Error;
use crate::event::{Event, ExpiryKind, Observer, RejectKind};
use crate::id::{SessionId, StoreKey};
use crate::manager::SessionManager;
use crate::policy::Policy;
use crate::session::{Issued, Loaded, NewSession, Session, SessionData};
use crate::store::{EndReason, Record, RecordState, Store, StoreError};
use crate::ticket::format::{self, Claims, MAX_BINARY_LEN, MAX_TICKET_LEN};
use crate::ticket::keyring::{KeyRing, TicketConfigError};

/// How many times a revocation write retries a version conflict.
const MAX_RETRIES: usize = 8;

/// The label hashed with a user name to find the user's revocation cutoff.
const USER_CUTOFF_LABEL: &[u8] = b"latchkey/v1/user-cutoff\0";

/// The key ring with one HMAC state per key that has already absorbed the
/// key schedule, the domain label and the purpose. Built once per key
/// change, shared by every request through an `Arc`.
struct Keys {
    ring: KeyRing,
    signing_id: u32,
    signer: Hmac<Sha256>,
    verifiers: Vec<(u32, Hmac<Sha256>)>,
}

impl Keys {
    fn new(ring: KeyRing, purpose: &str) -> Keys {
        let (signing_id, key) = ring.signing();
        let signer = format::prefixed_mac(key.mac(), purpose);
        let verifiers = ring
            .all()
            .map(|(id, key)| (id, format::prefixed_mac(key.mac(), purpose)))
            .collect();
        Keys {
            ring,
            signing_id,
            signer,
            verifiers,
        }
    }

    fn verifier(&self, id: u32) -> Option<&Hmac<Sha256>> {
        // A handful of keys at most: a scan beats a map.
        self.verifiers
            .iter()
            .find(|(k, _)| *k == id)
            .map(|(_, m)| m)
    }
}

/// Stateless sessions: everything about a session travels in a ticket,
/// signed with HMAC-SHA256, that the client presents as its cookie.
///
/// No server-side state per session: any process holding the [`KeyRing`]
/// verifies any ticket, and a load is a MAC check with no I/O. The format
/// is versioned and specified in `docs/TICKET_FORMAT.md`, with test
/// vectors, so other languages can verify tickets too.
///
/// # What a ticket is and is not
/// - **Signed, not encrypted.** Whoever holds a ticket can read its user,
///   device, deadlines and data. Keep secrets out of ticket sessions.
/// - **Bound to its purpose.** The purpose (use the cookie name) is under
///   the MAC: a ticket minted for one purpose fails for another with
///   [`Error::WrongPurpose`] or [`Error::BadSignature`].
/// - **Both clocks hold.** The idle deadline slides: once a ticket is older
///   than the policy's touch interval, [`load`](SessionManager::load)
///   returns a reissued ticket in [`Loaded::reissue`]. The absolute
///   deadline never moves: reissue, save, rotation and login all copy it.
///   Deadlines are also capped by the current policy, so tightening the
///   policy shortens tickets already issued.
/// - **Saves return a ticket.** [`save`](SessionManager::save) returns
///   `Some(Issued)`: the new ticket carrying the new data. There are no
///   versions, so two concurrent saves never conflict; the last cookie the
///   browser keeps wins.
/// - **Size.** A ticket over 4096 bytes is refused at issue with
///   [`Error::TicketTooLarge`].
/// - **Per-user limits** ([`Policy::max_sessions_per_user`]) need state and
///   are not enforced.
///
/// # Ending a ticket needs state
/// A signed ticket is valid until its deadlines pass, whatever the server
/// forgets. To end one sooner the server must remember something, so
/// revocation is opt-in: [`with_revocation`](Self::with_revocation) takes
/// any [`Store`] (the same one as your server-side sessions is fine). With
/// it:
/// - [`terminate`](SessionManager::terminate) puts the ticket's session id
///   on a deny list until its absolute deadline;
/// - [`terminate_all`](Self::terminate_all) stamps a per-user cutoff: every
///   ticket of that user authenticated at or before it fails;
/// - [`rotate`](SessionManager::rotate) and [`login`](SessionManager::login)
///   deny-list the old session id after the policy's rotation grace, so
///   in-flight requests still work and later reuse is refused with
///   [`Error::RotatedTokenReused`];
/// - every load costs one store read (two for a ticket with a user).
///
/// Without it, `terminate` and `terminate_all` return
/// [`Error::RevocationNotConfigured`] rather than pretend: the ticket stays
/// valid until its idle deadline (at most the idle timeout after its last
/// reissue). Clear the cookie anyway; a browser that obeys forgets it, a
/// stolen copy does not. `rotate` and `login` issue a fresh session id but
/// the old ticket keeps working until it expires.
///
/// See `docs/TICKET_FORMAT.md` for how revocation entries are stored.
///
/// # Example
/// ```
/// use latchkey::{Error, KeyRing, MemoryStore, NewSession, SessionManager, TicketKey, TicketManager};
///
/// let keys = KeyRing::new(1, TicketKey::generate());
/// let manager = TicketManager::new("__Host-session", keys)?.with_revocation(MemoryStore::new());
///
/// let issued = manager.create(NewSession::new().with_user("alice"))?;
/// let mut session = manager.load(issued.token())?.session;
/// assert_eq!(session.user(), Some("alice"));
///
/// session.insert("theme", "dark")?;
/// let saved = manager.save(&mut session)?.expect("a ticket session saves into a new ticket");
/// let again = manager.load(saved.token())?.session;
/// assert_eq!(again.get::<String>("theme")?.as_deref(), Some("dark"));
///
/// manager.terminate(&again)?;
/// assert_eq!(manager.load(saved.token()).unwrap_err().reason(), "terminated");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct TicketManager {
    purpose: Box<str>,
    purpose_id: [u8; 4],
    keys: RwLock<Arc<Keys>>,
    policy: Policy,
    clock: Arc<dyn Clock>,
    observer: Option<Arc<dyn Observer>>,
    revocation: Option<Arc<dyn Store>>,
}

impl fmt::Debug for TicketManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TicketManager")
            .field("purpose", &self.purpose)
            .field("keys", &self.keys.read().ring)
            .field("policy", &self.policy)
            .field("clock", &self.clock)
            .field("observer", &self.observer)
            .field("revocation", &self.revocation)
            .finish()
    }
}

impl TicketManager {
    /// A manager for tickets of `purpose` (use the cookie name), signed
    /// with `keys`, with [`Policy::default`], the system clock and no
    /// revocation.
    ///
    /// # Errors
    /// [`TicketConfigError::BadPurpose`] unless `purpose` is 1 to 255 bytes.
    ///
    /// # Example
    /// ```
    /// use latchkey::{KeyRing, TicketKey, TicketManager, TicketConfigError};
    /// let keys = KeyRing::new(1, TicketKey::generate());
    /// assert!(TicketManager::new("session", keys.clone()).is_ok());
    /// assert_eq!(TicketManager::new("", keys).unwrap_err(), TicketConfigError::BadPurpose(0));
    /// ```
    pub fn new(purpose: &str, keys: KeyRing) -> Result<TicketManager, TicketConfigError> {
        if purpose.is_empty() || purpose.len() > 255 {
            return Err(TicketConfigError::BadPurpose(purpose.len()));
        }
        Ok(TicketManager {
            purpose: purpose.into(),
            purpose_id: format::purpose_id(purpose),
            keys: RwLock::new(Arc::new(Keys::new(keys, purpose))),
            policy: Policy::default(),
            clock: Arc::new(SystemClock),
            observer: None,
            revocation: None,
        })
    }

    /// Uses `policy`.
    #[must_use]
    pub fn with_policy(mut self, policy: Policy) -> TicketManager {
        self.policy = policy;
        self
    }

    /// Takes time from `clock`.
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> TicketManager {
        self.clock = clock;
        self
    }

    /// Reports lifecycle events to `observer`.
    #[must_use]
    pub fn with_observer(mut self, observer: Arc<dyn Observer>) -> TicketManager {
        self.observer = Some(observer);
        self
    }

    /// Keeps revocation state (a deny list of session ids and per-user
    /// cutoffs) in `store`, so [`terminate`](SessionManager::terminate) and
    /// [`terminate_all`](Self::terminate_all) really end tickets. Every
    /// load then reads the store. Pass an `Arc` to share a store with other
    /// managers or processes.
    #[must_use]
    pub fn with_revocation<S: Store + 'static>(mut self, store: S) -> TicketManager {
        self.revocation = Some(Arc::new(store));
        self
    }

    /// The purpose tickets are bound to.
    pub fn purpose(&self) -> &str {
        &self.purpose
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Whether revocation is configured.
    pub fn has_revocation(&self) -> bool {
        self.revocation.is_some()
    }

    /// A copy of the current key ring.
    pub fn keys(&self) -> KeyRing {
        self.keys.read().ring.clone()
    }

    /// Replaces the key ring, for rotation while running: new tickets are
    /// signed with the new signing key, and tickets under a key the new ring
    /// still holds keep verifying (and are reissued under the new key on
    /// their next load).
    ///
    /// # Example
    /// ```
    /// use latchkey::{KeyRing, NewSession, SessionManager, TicketKey, TicketManager};
    ///
    /// let manager = TicketManager::new("session", KeyRing::new(1, TicketKey::generate()))?;
    /// let old = manager.create(NewSession::new())?;
    ///
    /// let mut ring = manager.keys();
    /// ring.rotate(2, TicketKey::generate())?;
    /// manager.set_keys(ring);
    ///
    /// let loaded = manager.load(old.token())?; // still valid...
    /// assert!(loaded.reissue.is_some()); // ...and reissued under key 2
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_keys(&self, keys: KeyRing) {
        // Build the HMAC states outside the lock: readers never wait on it.
        let keys = Arc::new(Keys::new(keys, &self.purpose));
        *self.keys.write() = keys;
    }

    fn current_keys(&self) -> Arc<Keys> {
        self.keys.read().clone()
    }

    fn emit(&self, event: Event) {
        if let Some(o) = &self.observer {
            o.on_event(&event);
        }
    }

    fn reject(&self, kind: RejectKind, err: Error) -> Error {
        self.emit(Event::Rejected {
            kind,
            session: None,
        });
        err
    }

    fn idle_deadline(&self, last_seen: Timestamp, absolute: Timestamp) -> Timestamp {
        last_seen
            .saturating_add(self.policy.idle_timeout())
            .min(absolute)
    }

    fn check_size(&self, data: &str) -> Result<(), Error> {
        let limit = self.policy.max_data_bytes();
        if data.len() > limit {
            return Err(Error::TooLarge {
                size: data.len(),
                limit,
            });
        }
        Ok(())
    }

    /// Signs `claims` with the signing key.
    fn mint(&self, keys: &Keys, claims: &Claims<'_>) -> Result<Issued, Error> {
        let size = format::ticket_len(claims);
        if size > MAX_TICKET_LEN {
            return Err(Error::TicketTooLarge {
                size,
                limit: MAX_TICKET_LEN,
            });
        }
        let token = format::encode(&keys.signer, self.purpose_id, keys.signing_id, claims).ok_or(
            Error::TicketTooLarge {
                size,
                limit: MAX_TICKET_LEN,
            },
        )?;
        let key = store_key(&claims.session_id);
        Ok(Issued::new(
            token,
            key.fingerprint(),
            claims.idle_deadline,
            claims.absolute_deadline,
        ))
    }

    /// Signs the current state of `session` under its session id, issued at
    /// `now`.
    fn mint_session(&self, session: &Session, data: &str, now: Timestamp) -> Result<Issued, Error> {
        let Some(id) = &session.id else {
            // Every session this manager hands out carries its id; one that
            // does not came from elsewhere and cannot be re-signed.
            return Err(Error::Unknown);
        };
        let claims = Claims {
            created_at: session.created_at,
            issued_at: now,
            auth_at: session.auth_at,
            idle_deadline: self.idle_deadline(now, session.absolute_deadline),
            absolute_deadline: session.absolute_deadline,
            session_id: *id.as_bytes(),
            user: session.user.as_deref(),
            device: session.device.as_deref(),
            data,
        };
        self.mint(&self.current_keys(), &claims)
    }

    /// Starts a session: fresh id, both deadlines from `now`.
    fn start(&self, new: NewSession, now: Timestamp) -> Result<(Session, Issued), Error> {
        let data = SessionData::from_map(new.data);
        let encoded = data.encoded();
        self.check_size(&encoded)?;
        let mut id = [0u8; 32];
        rand::rng().fill_bytes(&mut id);
        let absolute = now.saturating_add(self.policy.absolute_timeout());
        let session = Session {
            id: Some(SessionId::from_bytes(id)),
            key: store_key(&id),
            version: 0,
            created_at: now,
            last_seen: now,
            auth_at: new.user.as_ref().map(|_| now),
            absolute_deadline: absolute,
            idle_deadline: self.idle_deadline(now, absolute),
            user: new.user,
            device: new.device,
            data,
        };
        let issued = self.mint_session(&session, &encoded, now)?;
        Ok((session, issued))
    }

    /// [`SessionManager::create`] at an explicit instant.
    ///
    /// # Errors
    /// [`Error::TooLarge`] (data over the policy's limit),
    /// [`Error::TicketTooLarge`] (ticket over 4096 bytes).
    pub fn create_at(&self, new: NewSession, now: Timestamp) -> Result<Issued, Error> {
        let user = new.user.clone();
        let (_, issued) = self.start(new, now)?;
        self.emit(Event::Created {
            session: issued.fingerprint(),
            user,
        });
        Ok(issued)
    }

    /// [`SessionManager::load`] at an explicit instant.
    ///
    /// Checks, in order: length (before decoding), structure, purpose and
    /// key id (before any MAC), the MAC (constant time), the two deadlines,
    /// then revocation if configured. A ticket older than the touch
    /// interval, or signed by a key that is no longer the signing key, comes
    /// back with a reissued ticket.
    ///
    /// # Errors
    /// [`Error::MalformedTicket`], [`Error::WrongPurpose`],
    /// [`Error::UnknownKey`], [`Error::BadSignature`],
    /// [`Error::IdleExpired`], [`Error::AbsoluteExpired`],
    /// [`Error::Terminated`] or [`Error::RotatedTokenReused`] (revoked),
    /// store errors from the revocation store.
    pub fn load_at(&self, token: &str, now: Timestamp) -> Result<Loaded, Error> {
        let mut buf = [0u8; MAX_BINARY_LEN];
        let parsed = format::parse(token, &mut buf)
            .map_err(|e| self.reject(RejectKind::Malformed, Error::MalformedTicket(e)))?;
        if parsed.purpose_id != self.purpose_id {
            return Err(self.reject(RejectKind::WrongPurpose, Error::WrongPurpose));
        }
        let keys = self.current_keys();
        let Some(mac) = keys.verifier(parsed.key_id) else {
            return Err(self.reject(
                RejectKind::UnknownKey,
                Error::UnknownKey {
                    key_id: parsed.key_id,
                },
            ));
        };
        if !format::verify(mac, parsed.signed, parsed.tag) {
            return Err(self.reject(RejectKind::BadSignature, Error::BadSignature));
        }
        // From here on the claims are ours: signed by a key we hold.
        let c = parsed.claims;
        let key = store_key(&c.session_id);
        // The policy caps what the ticket says, so a tightened policy
        // applies to tickets already out, and revocation entries kept for
        // the policy's absolute timeout outlive every ticket they cover.
        let absolute = c
            .absolute_deadline
            .min(c.created_at.saturating_add(self.policy.absolute_timeout()));
        if now >= absolute {
            self.emit(Event::Expired {
                session: key.fingerprint(),
                kind: ExpiryKind::Absolute,
            });
            return Err(Error::AbsoluteExpired { deadline: absolute });
        }
        let idle = c
            .idle_deadline
            .min(self.idle_deadline(c.issued_at, absolute));
        if now >= idle {
            self.emit(Event::Expired {
                session: key.fingerprint(),
                kind: ExpiryKind::Idle,
            });
            return Err(Error::IdleExpired { deadline: idle });
        }
        self.check_revoked(&key, c.user, c.auth_at.unwrap_or(c.created_at), now)?;
        let mut session = Session {
            id: Some(SessionId::from_bytes(c.session_id)),
            key,
            version: 0,
            created_at: c.created_at,
            last_seen: c.issued_at,
            auth_at: c.auth_at,
            absolute_deadline: absolute,
            idle_deadline: idle,
            user: c.user.map(str::to_owned),
            device: c.device.map(str::to_owned),
            data: SessionData::from_encoded(Arc::from(c.data)),
        };
        let stale = now.duration_since(c.issued_at) >= self.policy.touch_interval();
        let old_key = parsed.key_id != keys.signing_id;
        let reissue = if stale || old_key {
            let claims = Claims {
                issued_at: now,
                idle_deadline: self.idle_deadline(now, absolute),
                absolute_deadline: absolute,
                ..c
            };
            let issued = self.mint(&keys, &claims)?;
            session.last_seen = now;
            session.idle_deadline = claims.idle_deadline;
            Some(issued)
        } else {
            None
        };
        Ok(Loaded::new(session, reissue))
    }

    /// [`SessionManager::save`] at an explicit instant: always returns the
    /// new ticket when the data changed.
    ///
    /// # Errors
    /// [`Error::AbsoluteExpired`], [`Error::TooLarge`],
    /// [`Error::TicketTooLarge`], a revocation rejection, store errors.
    pub fn save_at(&self, session: &mut Session, now: Timestamp) -> Result<Option<Issued>, Error> {
        if !session.is_modified() {
            return Ok(None);
        }
        self.check_usable(session, now)?;
        let data = session.data.to_stored();
        let encoded = data.encoded();
        self.check_size(&encoded)?;
        let issued = self.mint_session(session, &encoded, now)?;
        session.last_seen = now;
        session.idle_deadline = issued.idle_deadline();
        session.data = data;
        Ok(Some(issued))
    }

    /// Checks that a session copy may still be written to a new ticket.
    fn check_usable(&self, session: &Session, now: Timestamp) -> Result<(), Error> {
        if now >= session.absolute_deadline {
            return Err(Error::AbsoluteExpired {
                deadline: session.absolute_deadline,
            });
        }
        let authed = session.auth_at.unwrap_or(session.created_at);
        self.check_revoked(&session.key, session.user.as_deref(), authed, now)
    }

    /// Re-signs `session` under a fresh session id; the old id is retired
    /// after the grace window if revocation is configured.
    fn rotate_inner(&self, session: &mut Session, now: Timestamp) -> Result<Issued, Error> {
        self.check_usable(session, now)?;
        let data = session.data.to_stored();
        let encoded = data.encoded();
        self.check_size(&encoded)?;
        let mut id = [0u8; 32];
        rand::rng().fill_bytes(&mut id);
        let mut next = session.clone();
        next.id = Some(SessionId::from_bytes(id));
        next.key = store_key(&id);
        let issued = self.mint_session(&next, &encoded, now)?;
        if let Some(store) = &self.revocation {
            // In-flight requests still carry the old ticket: let it work for
            // the grace window, then refuse it as reuse.
            deny(
                store.as_ref(),
                &session.key,
                EndReason::Rotated,
                now.saturating_add(self.policy.rotation_grace()),
                session.absolute_deadline,
            )?;
        }
        *session = next;
        session.last_seen = now;
        session.idle_deadline = issued.idle_deadline();
        session.data = data;
        Ok(issued)
    }

    /// [`SessionManager::rotate`] at an explicit instant. The absolute
    /// deadline is kept.
    ///
    /// # Errors
    /// As for [`save_at`](Self::save_at).
    pub fn rotate_at(&self, session: &mut Session, now: Timestamp) -> Result<Issued, Error> {
        let from = session.fingerprint();
        let issued = self.rotate_inner(session, now)?;
        self.emit(Event::Rotated {
            from,
            to: issued.fingerprint(),
        });
        Ok(issued)
    }

    /// [`SessionManager::login`] at an explicit instant. The same rules as
    /// [`StoreManager`](crate::StoreManager): a fresh session id, the
    /// absolute deadline kept; a session of a different user is ended (if
    /// revocation is configured) and `user` gets a fresh, empty one.
    ///
    /// # Errors
    /// As for [`rotate_at`](Self::rotate_at).
    pub fn login_at(
        &self,
        session: &mut Session,
        user: &str,
        now: Timestamp,
    ) -> Result<Issued, Error> {
        let from = session.fingerprint();
        if session.user.as_deref().is_some_and(|u| u != user) {
            if let Some(store) = &self.revocation {
                deny(
                    store.as_ref(),
                    &session.key,
                    EndReason::Replaced,
                    now,
                    session.absolute_deadline,
                )?;
            }
            let (fresh, issued) = self.start(
                NewSession {
                    user: Some(user.into()),
                    device: session.device.clone(),
                    data: Default::default(),
                },
                now,
            )?;
            *session = fresh;
            self.emit(Event::LoggedIn {
                from,
                to: issued.fingerprint(),
                user: user.into(),
            });
            return Ok(issued);
        }
        let before = (session.user.clone(), session.auth_at);
        session.user = Some(user.into());
        session.auth_at = Some(now);
        let issued = match self.rotate_inner(session, now) {
            Ok(issued) => issued,
            Err(e) => {
                (session.user, session.auth_at) = before;
                return Err(e);
            }
        };
        self.emit(Event::LoggedIn {
            from,
            to: issued.fingerprint(),
            user: user.into(),
        });
        Ok(issued)
    }

    /// [`SessionManager::terminate`] at an explicit instant.
    ///
    /// # Errors
    /// [`Error::RevocationNotConfigured`] without revocation: the ticket
    /// stays valid until it expires, and saying `Ok` would be a lie. Store
    /// errors.
    pub fn terminate_at(&self, session: &Session, now: Timestamp) -> Result<(), Error> {
        let store = self
            .revocation
            .as_deref()
            .ok_or(Error::RevocationNotConfigured)?;
        deny(
            store,
            &session.key,
            EndReason::Logout,
            now,
            session.absolute_deadline,
        )?;
        self.emit(Event::Terminated {
            session: session.fingerprint(),
            reason: EndReason::Logout,
        });
        Ok(())
    }

    /// Ends every ticket of `user` authenticated at or before now ("log out
    /// everywhere", a disabled account, a password change). Tickets from
    /// later logins are unaffected, including one created in the same
    /// request after this call only if the clock has moved on: a login in
    /// the same millisecond counts as before the cutoff.
    ///
    /// # Errors
    /// [`Error::RevocationNotConfigured`] without revocation; store errors.
    ///
    /// # Example
    /// ```
    /// use latchkey::{KeyRing, MemoryStore, NewSession, SessionManager, TicketKey, TicketManager};
    ///
    /// let manager = TicketManager::new("session", KeyRing::new(1, TicketKey::generate()))?
    ///     .with_revocation(MemoryStore::new());
    /// let phone = manager.create(NewSession::new().with_user("alice"))?;
    /// manager.terminate_all("alice")?;
    /// assert_eq!(manager.load(phone.token()).unwrap_err().reason(), "terminated");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn terminate_all(&self, user: &str) -> Result<(), Error> {
        self.terminate_all_at(user, self.clock.now())
    }

    /// [`terminate_all`](Self::terminate_all) at an explicit instant.
    ///
    /// # Errors
    /// As for [`terminate_all`](Self::terminate_all).
    pub fn terminate_all_at(&self, user: &str, now: Timestamp) -> Result<(), Error> {
        let store = self
            .revocation
            .as_deref()
            .ok_or(Error::RevocationNotConfigured)?;
        // Kept for one absolute timeout: every ticket it covers was
        // authenticated before now, so (with the policy cap on load) is dead
        // by then.
        let keep = now.saturating_add(self.policy.absolute_timeout());
        write_revocation(
            store,
            &user_cutoff_key(user),
            EndReason::LogoutAll,
            now,
            keep,
            |old, new| new > old,
        )
    }

    /// Refuses a ticket on the deny list or under its user's cutoff.
    fn check_revoked(
        &self,
        key: &StoreKey,
        user: Option<&str>,
        authenticated: Timestamp,
        now: Timestamp,
    ) -> Result<(), Error> {
        let Some(store) = &self.revocation else {
            return Ok(());
        };
        if let Some(Record {
            state: RecordState::Ended { reason, at },
            ..
        }) = store.get(key)?
        {
            // A deny entry takes effect at `at`: in the future for a ticket
            // retired by rotation and still in its grace window.
            if now >= at {
                self.emit(Event::Terminated {
                    session: key.fingerprint(),
                    reason,
                });
                return Err(match reason {
                    EndReason::Rotated => Error::RotatedTokenReused {
                        successor_revoked: false,
                    },
                    reason => Error::Terminated { reason },
                });
            }
        }
        if let Some(user) = user
            && let Some(Record {
                state: RecordState::Ended { at, .. },
                ..
            }) = store.get(&user_cutoff_key(user))?
            && authenticated <= at
        {
            return Err(Error::Terminated {
                reason: EndReason::LogoutAll,
            });
        }
        Ok(())
    }
}

/// The store key of a ticket's session: SHA-256 of its id, as for
/// server-side sessions.
fn store_key(session_id: &[u8; 32]) -> StoreKey {
    SessionId::from_bytes(*session_id).store_key()
}

/// Where a user's revocation cutoff is kept: SHA-256 of a label and the user
/// name, so it cannot collide with a session's key (a hash of 32 random
/// bytes) and the store never sees the name in a key.
fn user_cutoff_key(user: &str) -> StoreKey {
    StoreKey::from_bytes(
        Sha256::new()
            .chain_update(USER_CUTOFF_LABEL)
            .chain_update(user.as_bytes())
            .finalize()
            .into(),
    )
}

/// Puts a session id on the deny list, effective at `at`, kept until
/// `keep_until`. An existing entry that takes effect earlier wins.
fn deny(
    store: &dyn Store,
    key: &StoreKey,
    reason: EndReason,
    at: Timestamp,
    keep_until: Timestamp,
) -> Result<(), Error> {
    write_revocation(store, key, reason, at, keep_until, |old, new| new < old)
}

/// Writes an `Ended` revocation record, or strengthens an existing one when
/// `stronger(old_at, new_at)`. Retries version conflicts.
fn write_revocation(
    store: &dyn Store,
    key: &StoreKey,
    reason: EndReason,
    at: Timestamp,
    keep_until: Timestamp,
    stronger: impl Fn(Timestamp, Timestamp) -> bool,
) -> Result<(), Error> {
    for _ in 0..MAX_RETRIES {
        let fresh = Record {
            version: 1,
            expires_at: keep_until,
            state: RecordState::Ended { reason, at },
        };
        match store.insert(key, &fresh) {
            Ok(()) => return Ok(()),
            Err(StoreError::Exists) => {}
            Err(e) => return Err(e.into()),
        }
        let Some(old) = store.get(key)? else {
            continue; // purged meanwhile: insert again
        };
        let old_at = match old.state {
            RecordState::Ended { at: old_at, .. } => Some(old_at),
            _ => None,
        };
        if old_at.is_some_and(|old_at| !stronger(old_at, at)) && old.expires_at >= keep_until {
            return Ok(());
        }
        let (reason, at) = match old.state {
            RecordState::Ended {
                reason: old_reason,
                at: old_at,
            } if !stronger(old_at, at) => (old_reason, old_at),
            _ => (reason, at),
        };
        let record = Record {
            version: old.version + 1,
            expires_at: keep_until.max(old.expires_at),
            state: RecordState::Ended { reason, at },
        };
        match store.replace(key, old.version, &record) {
            Ok(()) => return Ok(()),
            Err(StoreError::Conflict | StoreError::NotFound) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::Conflict)
}

impl SessionManager for TicketManager {
    fn create(&self, new: NewSession) -> Result<Issued, Error> {
        self.create_at(new, self.clock.now())
    }

    fn load(&self, token: &str) -> Result<Loaded, Error> {
        self.load_at(token, self.clock.now())
    }

    fn save(&self, session: &mut Session) -> Result<Option<Issued>, Error> {
        self.save_at(session, self.clock.now())
    }

    fn rotate(&self, session: &mut Session) -> Result<Issued, Error> {
        self.rotate_at(session, self.clock.now())
    }

    fn login(&self, session: &mut Session, user: &str) -> Result<Issued, Error> {
        self.login_at(session, user, self.clock.now())
    }

    fn terminate(&self, session: &Session) -> Result<(), Error> {
        self.terminate_at(session, self.clock.now())
    }
}
