//! [`TicketManager`]: sessions carried by the client in signed tickets.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use rand::Rng as _;

use crate::clock::{Clock, Timestamp};
use crate::cookie::CookieConfig;
use crate::error::Error;
use crate::event::{Event, ExpiryKind, Observer, RejectKind};
use crate::id::StoreKey;
use crate::lifecycle::{Core, Login, Rotation, Verdict};
use crate::manager::SessionManager;
use crate::policy::Policy;
use crate::session::{Issued, Loaded, NewSession, Session, SessionData};
use crate::store::{EndReason, Record, RecordState, Store};
use crate::ticket::format::{self, Claims, MAX_TICKET_LEN};
use crate::ticket::keyring::{KeyRing, TicketConfigError};
use crate::ticket::mac::PrefixedMac;
use crate::ticket::revocation::{chain_end, end_chain, retire, user_cutoff_key, write_revocation};

/// The key ring with one HMAC state per key that has already absorbed the
/// key schedule, the domain label and the purpose. Built once per key
/// change, shared by every request through an `Arc`.
struct Keys {
    ring: KeyRing,
    signing_id: u32,
    signer: PrefixedMac,
    verifiers: Vec<(u32, PrefixedMac)>,
}

impl Keys {
    fn new(ring: KeyRing, purpose: &str) -> Keys {
        let (signing_id, key) = ring.signing();
        let signer = format::prefixed_mac(key.as_bytes(), purpose);
        let verifiers = ring
            .all()
            .map(|(id, key)| (id, format::prefixed_mac(key.as_bytes(), purpose)))
            .collect();
        Keys {
            ring,
            signing_id,
            signer,
            verifiers,
        }
    }

    fn verifier(&self, id: u32) -> Option<&PrefixedMac> {
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
///   deadline never moves: reissue, save, rotation and login all copy it,
///   and so does a re-authentication unless the policy lets it start a new
///   absolute period ([`Policy::reauthentication_extends_absolute`]).
///   Deadlines are also capped by the current policy, so tightening the
///   policy shortens tickets already issued.
/// - **Saves return a ticket.** [`save`](SessionManager::save) returns
///   `Some(Issued)`: the new ticket carrying the new data. There are no
///   versions, so two concurrent saves never conflict; the last cookie the
///   browser keeps wins.
/// - **Size.** A ticket travels in a cookie, so it is issued only if that
///   cookie can carry it: tell the manager the cookie with
///   [`with_cookie`](Self::with_cookie) (the default is the budget of
///   [`CookieConfig::default`], 4041 bytes). Every call that issues a
///   ticket (`create`, `save`, `rotate`, `change_privilege`, `login`,
///   `reauthenticate`) refuses a longer one with [`Error::TicketTooLarge`]
///   before it signs anything or writes to the revocation store, so a
///   ticket you are handed always renders with [`CookieConfig::set_cookie`].
/// - **Per-user limits** ([`Policy::max_sessions_per_user`]) need a count
///   of a user's sessions that no ticket store keeps: a policy with one is
///   refused ([`Error::Unsupported`]), never silently half-kept.
///
/// # Ending a ticket needs state
/// A signed ticket is valid until its deadlines pass, whatever the server
/// forgets. To end one sooner the server must remember something, so
/// revocation is opt-in: [`with_revocation`](Self::with_revocation) takes
/// any [`Store`] (the same one as your server-side sessions is fine). With
/// it:
/// - [`terminate`](SessionManager::terminate) puts the ticket's session
///   on a deny list until its absolute deadline;
/// - [`terminate_all`](SessionManager::terminate_all) stamps a per-user cutoff: every
///   ticket of that user authenticated at or before it fails;
/// - [`rotate`](SessionManager::rotate), [`login`](SessionManager::login),
///   [`change_privilege`](SessionManager::change_privilege) and
///   [`reauthenticate`](SessionManager::reauthenticate) record the
///   old session key as rotated, pointing at its successor, exactly as a
///   server-side store does ([`crate::lifecycle`]): a routine rotation's old
///   ticket works through the grace window, a privilege change's is refused
///   as [`Error::Superseded`], later reuse is [`Error::RotatedTokenReused`]
///   and by default revokes the successor, and ending any ticket of the
///   chain ends them all;
/// - every load costs one store read (two for a ticket with a user).
///
/// Without it, `terminate` and `terminate_all` return
/// [`Error::RevocationNotConfigured`] rather than pretend: the ticket stays
/// valid until its idle deadline (at most the idle timeout after its last
/// reissue). Clear the cookie anyway; a browser that obeys forgets it, a
/// stolen copy does not. `rotate` and `login` issue a fresh session key but
/// the old ticket keeps working, with its own pre-change claims, until it
/// expires. A per-user session cap needs a count no ticket store keeps:
/// with one in the policy, `create` and `login` of a user fail with
/// [`Error::Unsupported`].
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
    /// The longest ticket issued: what the cookie carrying it holds
    /// (`CookieConfig::max_value_len`), at most `MAX_TICKET_LEN`.
    max_ticket_len: usize,
    keys: RwLock<Arc<Keys>>,
    /// Policy, clock, observer and the shared decisions (`lifecycle`).
    core: Core,
    revocation: Option<Arc<dyn Store>>,
}

impl fmt::Debug for TicketManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TicketManager")
            .field("purpose", &self.purpose)
            .field("max_ticket_len", &self.max_ticket_len)
            .field("keys", &self.keys.read().ring)
            .field("core", &self.core)
            .field("revocation", &self.revocation)
            .finish()
    }
}

impl TicketManager {
    /// A manager for tickets of `purpose` (use the cookie name), signed
    /// with `keys`, with [`Policy::default`], the system clock, no
    /// revocation, and tickets no longer than the default cookie carries
    /// (4041 bytes; see [`with_cookie`](Self::with_cookie)).
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
            max_ticket_len: ticket_budget(&CookieConfig::default()),
            keys: RwLock::new(Arc::new(Keys::new(keys, purpose))),
            // The default policy but for its per-user cap, which tickets
            // cannot count (see `with_policy`).
            core: Core::new(Policy::default().without_user_cap()),
            revocation: None,
        })
    }

    /// Uses `policy`. The default is [`Policy::default`] without its
    /// per-user session cap.
    ///
    /// Stateless tickets cannot count a user's sessions, so a policy with a
    /// per-user cap (every preset has one) is not silently half-kept:
    /// `create` and `login` of a user then fail with
    /// [`Error::Unsupported`]. Turn the cap off for tickets with
    /// [`Policy::without_user_cap`].
    ///
    /// # Example
    /// ```
    /// use latchkey::{Error, KeyRing, NewSession, Policy, SessionManager, TicketKey, TicketManager};
    /// let keys = KeyRing::new(1, TicketKey::generate());
    /// let policy = Policy::nist_aal3().without_user_cap();
    /// let tickets = TicketManager::new("session", keys.clone())?.with_policy(policy.clone());
    /// assert_eq!(tickets.policy(), &policy);
    /// assert!(tickets.create(NewSession::new().with_user("alice")).is_ok());
    ///
    /// // A preset keeps a cap of 32 sessions per user: refused, not ignored.
    /// let capped = TicketManager::new("session", keys)?.with_policy(Policy::nist_aal3());
    /// let err = capped.create(NewSession::new().with_user("alice")).unwrap_err();
    /// assert!(matches!(err, Error::Unsupported(_)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn with_policy(mut self, policy: Policy) -> TicketManager {
        self.core.policy = policy;
        self
    }

    /// Takes time from `clock`.
    ///
    /// # Example
    /// ```
    /// use std::sync::Arc;
    /// use latchkey::{KeyRing, ManualClock, TicketKey, TicketManager};
    /// let tickets = TicketManager::new("session", KeyRing::new(1, TicketKey::generate()))?
    ///     .with_clock(Arc::new(ManualClock::starting_now()));
    /// assert_eq!(tickets.purpose(), "session");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> TicketManager {
        self.core.clock = clock;
        self
    }

    /// Reports lifecycle events to `observer`.
    ///
    /// # Example
    /// ```
    /// use std::sync::Arc;
    /// use latchkey::{Event, KeyRing, Observer, TicketKey, TicketManager};
    /// #[derive(Debug)]
    /// struct Log;
    /// impl Observer for Log {
    ///     fn on_event(&self, e: &Event) { println!("{e}"); }
    /// }
    /// let _tickets = TicketManager::new("session", KeyRing::new(1, TicketKey::generate()))?.with_observer(Arc::new(Log));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn with_observer(mut self, observer: Arc<dyn Observer>) -> TicketManager {
        self.core.observer = Some(observer);
        self
    }

    /// Keeps revocation state (a deny list of session keys and per-user
    /// cutoffs) in `store`, so [`terminate`](SessionManager::terminate) and
    /// [`terminate_all`](SessionManager::terminate_all) really end tickets. Every
    /// load then reads the store. Pass an `Arc` to share a store with other
    /// managers or processes.
    ///
    /// # Example
    /// ```
    /// use latchkey::{KeyRing, MemoryStore, TicketKey, TicketManager};
    /// let tickets = TicketManager::new("session", KeyRing::new(1, TicketKey::generate()))?.with_revocation(MemoryStore::new());
    /// assert!(tickets.has_revocation());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn with_revocation<S: Store + 'static>(mut self, store: S) -> TicketManager {
        self.revocation = Some(Arc::new(store));
        self
    }

    /// Issues only tickets that `cookie` can carry: at most
    /// [`cookie.max_value_len()`](CookieConfig::max_value_len) bytes (what
    /// its name and attributes leave of a cookie's 4096, keeping room for
    /// the longest `Max-Age` of a persistent cookie), and never more than
    /// [`MAX_TICKET_LEN`]. Without this call the budget is that of
    /// [`CookieConfig::default`] (4041 bytes), which a cookie with a longer
    /// name, a `Domain`, a longer `Path` or a `Max-Age` does not have: pass
    /// the config you send tickets in.
    ///
    /// A ticket over the budget is refused with [`Error::TicketTooLarge`]
    /// (`limit` is the budget) by every call that issues one, before any
    /// signing or revocation write. A ticket presented on
    /// [`load`](SessionManager::load) that is itself over the budget (issued
    /// under a larger one) still loads, but is not reissued: it keeps its
    /// own idle deadline, and its signing key must stay in the ring until
    /// it expires.
    ///
    /// # Example
    /// ```
    /// use latchkey::{CookieConfig, Error, KeyRing, NewSession, SessionManager, TicketKey, TicketManager};
    ///
    /// let cookie = CookieConfig::builder()
    ///     .with_name("__Secure-app-session")
    ///     .with_domain("accounts.example.com")
    ///     .build()?;
    /// let keys = KeyRing::new(1, TicketKey::generate());
    /// let tickets = TicketManager::new(cookie.name(), keys)?.with_cookie(&cookie);
    /// assert_eq!(tickets.max_ticket_len(), cookie.max_value_len());
    ///
    /// // Whatever is issued renders; what would not render is not issued.
    /// let issued = tickets.create(NewSession::new().with_value("note", &"x".repeat(2_000))?)?;
    /// assert!(cookie.set_cookie(&issued).is_ok());
    /// let big = NewSession::new().with_value("note", &"x".repeat(3_000))?;
    /// let err = tickets.create(big).unwrap_err();
    /// assert!(matches!(err, Error::TicketTooLarge { limit, .. } if limit == cookie.max_value_len()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn with_cookie(mut self, cookie: &CookieConfig) -> TicketManager {
        self.max_ticket_len = ticket_budget(cookie);
        self
    }

    /// The longest ticket this manager issues, in bytes: set by
    /// [`with_cookie`](Self::with_cookie), at most [`MAX_TICKET_LEN`].
    ///
    /// # Example
    /// ```
    /// use latchkey::{CookieConfig, KeyRing, TicketKey, TicketManager};
    /// let tickets = TicketManager::new("session", KeyRing::new(1, TicketKey::generate()))?;
    /// assert_eq!(tickets.max_ticket_len(), CookieConfig::default().max_value_len());
    /// assert_eq!(tickets.max_ticket_len(), 4041);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn max_ticket_len(&self) -> usize {
        self.max_ticket_len
    }

    /// The purpose tickets are bound to.
    ///
    /// # Example
    /// ```
    /// use latchkey::{KeyRing, TicketKey, TicketManager};
    /// let tickets = TicketManager::new("session", KeyRing::new(1, TicketKey::generate()))?;
    /// assert_eq!(tickets.purpose(), "session");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn purpose(&self) -> &str {
        &self.purpose
    }

    /// The policy.
    ///
    /// # Example
    /// ```
    /// use latchkey::{KeyRing, TicketKey, TicketManager};
    /// let tickets = TicketManager::new("session", KeyRing::new(1, TicketKey::generate()))?;
    /// // The default policy, but for a per-user cap tickets cannot keep.
    /// assert_eq!(tickets.policy(), &latchkey::Policy::default().without_user_cap());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn policy(&self) -> &Policy {
        &self.core.policy
    }

    /// Whether revocation is configured.
    ///
    /// # Example
    /// ```
    /// use latchkey::{KeyRing, TicketKey, TicketManager};
    /// let tickets = TicketManager::new("session", KeyRing::new(1, TicketKey::generate()))?;
    /// assert!(!tickets.has_revocation());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn has_revocation(&self) -> bool {
        self.revocation.is_some()
    }

    /// A copy of the current key ring.
    ///
    /// # Example
    /// ```
    /// use latchkey::{KeyRing, TicketKey, TicketManager};
    /// let tickets = TicketManager::new("session", KeyRing::new(1, TicketKey::generate()))?;
    /// assert_eq!(tickets.keys().signing_key_id(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
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

    /// Signs `claims` with the signing key. `key` is the session's store
    /// key, which the caller already has. A ticket longer than the cookie
    /// carries is refused from its computed length, before any MAC.
    fn mint(&self, keys: &Keys, claims: &Claims<'_>, key: &StoreKey) -> Result<Issued, Error> {
        let size = format::ticket_len(claims);
        let too_large = Error::TicketTooLarge {
            size,
            limit: self.max_ticket_len,
        };
        if size > self.max_ticket_len {
            return Err(too_large);
        }
        let token = format::encode(&keys.signer, self.purpose_id, keys.signing_id, claims)
            .ok_or(too_large)?;
        Ok(Issued::new(
            token,
            key.fingerprint(),
            claims.idle_deadline,
            claims.absolute_deadline,
        )
        .with_issued_at(claims.issued_at))
    }

    /// Signs the current state of `session` under its session key, issued
    /// at `now`.
    fn mint_session(&self, session: &Session, data: &str, now: Timestamp) -> Result<Issued, Error> {
        let claims = Claims {
            created_at: session.created_at,
            issued_at: now,
            auth_at: session.auth_at,
            idle_deadline: self.core.idle_deadline(now, session.absolute_deadline),
            absolute_deadline: session.absolute_deadline,
            session_key: *session.key.as_bytes(),
            user: session.user.as_deref(),
            device: session.device.as_deref(),
            data,
        };
        self.mint(&self.keys.read(), &claims, &session.key)
    }

    /// Starts a session: fresh id, both deadlines from `now`.
    fn start(&self, new: NewSession, now: Timestamp) -> Result<(Session, Issued), Error> {
        self.core
            .check_ticket_binding(new.user.as_deref(), new.device.as_deref())?;
        let data = SessionData::from_encoded(Arc::from(new.data_json()));
        let encoded = data.encoded();
        self.core.check_size(encoded.len())?;
        let absolute = now.saturating_add(self.core.policy.absolute_timeout());
        let session = Session {
            // The ticket carries the key, never the id: see `fresh_key`.
            id: None,
            key: fresh_key(),
            version: 0,
            created_at: now,
            last_seen: now,
            auth_at: new.auth_at_for(now),
            absolute_deadline: absolute,
            idle_deadline: self.core.idle_deadline(now, absolute),
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
    /// [`Error::TicketTooLarge`] (a ticket longer than the cookie carries,
    /// [`max_ticket_len`](Self::max_ticket_len)).
    ///
    /// # Example
    /// ```
    /// use latchkey::{Error, KeyRing, NewSession, TicketKey, TicketManager, Timestamp};
    ///
    /// let manager = TicketManager::new("session", KeyRing::new(1, TicketKey::generate()))?;
    /// let now = Timestamp::from_unix_millis(1_800_000_000_000);
    /// let issued = manager.create_at(NewSession::new().with_user("alice"), now)?;
    /// assert!(issued.token().starts_with("lk1."));
    ///
    /// // A cookie holds 4096 bytes, name and attributes included; a ticket
    /// // that would not fit is refused.
    /// let big = NewSession::new().with_value("blob", &"x".repeat(5000))?;
    /// assert!(matches!(manager.create_at(big, now), Err(Error::TicketTooLarge { .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create_at(&self, new: NewSession, now: Timestamp) -> Result<Issued, Error> {
        // The same ticket `start` would mint, without building a Session
        // only to drop it: issue is on every login's hot path.
        let key = fresh_key();
        let absolute = now.saturating_add(self.core.policy.absolute_timeout());
        let claims = Claims {
            created_at: now,
            issued_at: now,
            auth_at: new.auth_at_for(now),
            idle_deadline: self.core.idle_deadline(now, absolute),
            absolute_deadline: absolute,
            session_key: *key.as_bytes(),
            user: new.user.as_deref(),
            device: new.device.as_deref(),
            // Encoded already (see `NewSession`): copied into the ticket
            // as it is, with no serialization here.
            data: new.data_json(),
        };
        self.core.check_size(claims.data.len())?;
        self.core.check_ticket_binding(claims.user, claims.device)?;
        let issued = self.mint(&self.keys.read(), &claims, &key)?;
        if self.core.observer.is_some() {
            self.core.emit(Event::Created {
                session: issued.fingerprint(),
                user: new.user,
            });
        }
        Ok(issued)
    }

    /// [`SessionManager::load`] at an explicit instant.
    ///
    /// Checks, in order: length (before decoding), structure, purpose and
    /// key id (before any MAC), the MAC (constant time), the two deadlines,
    /// then revocation if configured. A ticket older than the touch
    /// interval, or signed by a key that is no longer the signing key, comes
    /// back with a reissued ticket, unless the reissue would be longer than
    /// [`max_ticket_len`](Self::max_ticket_len) (a ticket issued under a
    /// larger budget): that one loads without a reissue.
    ///
    /// # Example
    /// ```
    /// use std::time::Duration;
    /// use latchkey::{KeyRing, NewSession, TicketKey, TicketManager, Timestamp};
    ///
    /// let manager = TicketManager::new("session", KeyRing::new(1, TicketKey::generate()))?;
    /// let t0 = Timestamp::from_unix_millis(1_800_000_000_000);
    /// let issued = manager.create_at(NewSession::new(), t0)?;
    ///
    /// // Within the touch interval: no new cookie.
    /// assert!(manager.load_at(issued.token(), t0).unwrap().reissue.is_none());
    /// // Later: the idle deadline slides, the absolute one stays.
    /// let later = t0.saturating_add(Duration::from_secs(300));
    /// let fresh = manager.load_at(issued.token(), later)?.reissue.expect("reissued");
    /// assert!(fresh.idle_deadline() > issued.idle_deadline());
    /// assert_eq!(fresh.absolute_deadline(), issued.absolute_deadline());
    /// // Past the idle deadline without activity: expired, and it says so.
    /// let err = manager.load_at(issued.token(), issued.idle_deadline()).unwrap_err();
    /// assert_eq!(err.reason(), "idle_expired");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::MalformedTicket`], [`Error::WrongPurpose`],
    /// [`Error::UnknownKey`], [`Error::BadSignature`],
    /// [`Error::IdleExpired`], [`Error::AbsoluteExpired`],
    /// [`Error::Terminated`] or [`Error::RotatedTokenReused`] (revoked),
    /// store errors from the revocation store.
    pub fn load_at(&self, token: &str, now: Timestamp) -> Result<Loaded, Error> {
        self.load_when(token, || now)
    }

    /// The load, reading the time from `now` once the MAC has been checked:
    /// a forged or malformed ticket costs no clock read.
    fn load_when(&self, token: &str, now: impl FnOnce() -> Timestamp) -> Result<Loaded, Error> {
        let (mut small, mut large) = ([0u8; format::SMALL_BINARY_LEN], Vec::new());
        let buf = format::scratch(format::decode_need(token.len()), &mut small, &mut large);
        let parsed = format::parse(token, buf).map_err(|e| {
            self.core
                .reject(RejectKind::Malformed, None, Error::MalformedTicket(e))
        })?;
        if parsed.purpose_id != self.purpose_id {
            return Err(self
                .core
                .reject(RejectKind::WrongPurpose, None, Error::WrongPurpose));
        }
        // The read lock is held for the MAC check only: no store call or
        // observer runs under it, so `set_keys` never waits on I/O.
        let signed_by_current = {
            let keys = self.keys.read();
            match keys.verifier(parsed.key_id) {
                None => Err((
                    RejectKind::UnknownKey,
                    Error::UnknownKey {
                        key_id: parsed.key_id,
                    },
                )),
                Some(mac) if !format::verify(mac, parsed.signed, parsed.tag) => {
                    Err((RejectKind::BadSignature, Error::BadSignature))
                }
                Some(_) => Ok(parsed.key_id == keys.signing_id),
            }
        };
        let signed_by_current =
            signed_by_current.map_err(|(kind, e)| self.core.reject(kind, None, e))?;
        // From here on the claims are ours: signed by a key we hold.
        let now = now();
        let c = parsed.claims;
        let key = StoreKey::from_bytes(c.session_key);
        // The policy caps what the ticket says, so a tightened policy
        // applies to tickets already out, and revocation entries kept for
        // the policy's absolute timeout outlive every ticket they cover.
        // The period starts at creation, or at the last authentication
        // where the policy lets a re-authentication start a new one.
        let absolute = c.absolute_deadline.min(
            self.core
                .absolute_period_start(c.created_at, c.auth_at)
                .saturating_add(self.core.policy.absolute_timeout()),
        );
        if now >= absolute {
            self.core.emit(Event::Expired {
                session: key.fingerprint(),
                kind: ExpiryKind::Absolute,
            });
            return Err(Error::AbsoluteExpired { deadline: absolute });
        }
        let idle = c
            .idle_deadline
            .min(self.core.idle_deadline(c.issued_at, absolute));
        if now >= idle {
            self.core.emit(Event::Expired {
                session: key.fingerprint(),
                kind: ExpiryKind::Idle,
            });
            return Err(Error::IdleExpired { deadline: idle });
        }
        let retiring = self.check_revoked(
            &key,
            c.user,
            authenticated_since(c.created_at, c.auth_at),
            now,
            false,
        )? == Revocation::Retired;
        let stale = now.duration_since(c.issued_at) >= self.core.policy.touch_interval();
        // A ticket retired by rotation still works during its grace window,
        // but is never re-signed: a fresh copy would only die at the same
        // instant, and the client should be holding the successor.
        let reissue = if (stale || !signed_by_current) && !retiring {
            let claims = Claims {
                issued_at: now,
                idle_deadline: self.core.idle_deadline(now, absolute),
                absolute_deadline: absolute,
                ..c
            };
            match self.mint(&self.keys.read(), &claims, &key) {
                Ok(issued) => Some(issued),
                // Issued under a larger budget than today's (the cookie
                // changed): the cookie could not carry the reissue, so the
                // ticket is served as it is rather than failing a request
                // that holds a valid session.
                Err(Error::TicketTooLarge { .. }) => None,
                Err(e) => return Err(e),
            }
        } else {
            None
        };
        let (last_seen, idle_deadline) = match &reissue {
            Some(issued) => (now, issued.idle_deadline()),
            None => (c.issued_at, idle),
        };
        // Built in one expression, straight into the result: a session
        // built first and then moved into its `Loaded` is one more copy.
        Ok(Loaded {
            session: Session {
                id: None,
                key,
                version: 0,
                created_at: c.created_at,
                last_seen,
                auth_at: c.auth_at,
                absolute_deadline: absolute,
                idle_deadline,
                user: c.user.map(str::to_owned),
                device: c.device.map(str::to_owned),
                data: SessionData::from_text(c.data),
            },
            reissue,
        })
    }

    /// [`SessionManager::save`] at an explicit instant: always returns the
    /// new ticket when the data changed.
    ///
    /// # Errors
    /// [`Error::AbsoluteExpired`], [`Error::TooLarge`],
    /// [`Error::TicketTooLarge`] (the session keeps its unsaved change), a
    /// revocation rejection, store errors.
    ///
    /// # Example
    /// ```
    /// use std::time::Duration;
    /// use latchkey::{KeyRing, NewSession, TicketKey, TicketManager, Timestamp};
    /// let tickets = TicketManager::new("session", KeyRing::new(1, TicketKey::generate()))?;
    /// let t0 = Timestamp::from_unix_millis(1_800_000_000_000);
    /// let issued = tickets.create_at(NewSession::new(), t0)?;
    /// let mut s = tickets.load_at(issued.token(), t0)?.session;
    /// s.insert("theme", &"dark")?;
    /// // A ticket carries its data: saving mints a new ticket.
    /// assert!(tickets.save_at(&mut s, t0)?.is_some());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn save_at(&self, session: &mut Session, now: Timestamp) -> Result<Option<Issued>, Error> {
        if !session.is_modified() {
            return Ok(None);
        }
        self.check_usable(session, now)?;
        let data = session.data.to_stored();
        let encoded = data.encoded_text();
        self.core.check_size(encoded.len())?;
        let issued = self.mint_session(session, &encoded, now)?;
        session.last_seen = now;
        session.idle_deadline = issued.idle_deadline();
        session.data.saved_as(data);
        Ok(Some(issued))
    }

    /// Checks that a session copy may still be written to a new ticket: a
    /// copy whose ticket was rotated meanwhile is stale, as a server-side
    /// copy is ([`Error::Conflict`]).
    fn check_usable(&self, session: &Session, now: Timestamp) -> Result<(), Error> {
        if now >= session.absolute_deadline {
            return Err(Error::AbsoluteExpired {
                deadline: session.absolute_deadline,
            });
        }
        let authed = authenticated_since(session.created_at, session.auth_at);
        match self.check_revoked(&session.key, session.user.as_deref(), authed, now, true)? {
            Revocation::Clear => Ok(()),
            Revocation::Retired => Err(Error::Conflict),
        }
    }

    /// Re-signs `session` under a fresh session key, with what `rotation`
    /// changes; the old one is retired after the grace window if revocation
    /// is configured. The copy is checked as it is (its deadline, and its
    /// revocation with its own authentication time) before `rotation`
    /// applies. The new ticket is minted first: one the cookie cannot carry
    /// retires nothing.
    fn rotate_inner(
        &self,
        session: &mut Session,
        now: Timestamp,
        rotation: Rotation,
    ) -> Result<Issued, Error> {
        self.check_usable(session, now)?;
        let data = session.data.to_stored();
        let encoded = data.encoded_text();
        self.core.check_size(encoded.len())?;
        let mut next = session.clone();
        next.key = fresh_key();
        (next.auth_at, next.absolute_deadline) =
            rotation.successor_times(session.auth_at, session.absolute_deadline);
        let issued = self.mint_session(&next, &encoded, now)?;
        if let Some(store) = &self.revocation {
            // The old key is retired with a pointer to its successor, as a
            // server-side store retires it: in-flight requests of a routine
            // rotation still work for the grace window, a privilege
            // change's are refused, and ending either ticket ends both.
            retire(
                store.as_ref(),
                &session.key,
                &next.key,
                now,
                now.saturating_add(self.core.policy.rotation_grace()),
                rotation.privilege_change(),
                // The chain's deadline: the successor's, which a
                // re-authentication may have moved.
                next.absolute_deadline,
            )?;
        }
        *session = next;
        session.last_seen = now;
        session.idle_deadline = issued.idle_deadline();
        session.data.saved_as(data);
        Ok(issued)
    }

    /// [`SessionManager::rotate`] at an explicit instant. The absolute
    /// deadline is kept.
    ///
    /// # Errors
    /// As for [`save_at`](Self::save_at).
    ///
    /// # Example
    /// ```
    /// use std::time::Duration;
    /// use latchkey::{KeyRing, MemoryStore, NewSession, TicketKey, TicketManager, Timestamp};
    ///
    /// let manager = TicketManager::new("session", KeyRing::new(1, TicketKey::generate()))?
    ///     .with_revocation(MemoryStore::new());
    /// let t0 = Timestamp::from_unix_millis(1_800_000_000_000);
    /// let old = manager.create_at(NewSession::new().with_user("alice"), t0)?;
    /// let mut session = manager.load_at(old.token(), t0)?.session;
    /// let new = manager.rotate_at(&mut session, t0)?;
    /// assert_ne!(new.fingerprint(), old.fingerprint());
    ///
    /// // With revocation, the old ticket works through the grace window only;
    /// // reuse after it revokes the successor too, as a copy may be loose.
    /// assert!(manager.load_at(old.token(), t0).is_ok());
    /// let after_grace = t0.saturating_add(manager.policy().rotation_grace());
    /// let err = manager.load_at(old.token(), after_grace).unwrap_err();
    /// assert_eq!(err.reason(), "rotated_token_reused");
    /// assert_eq!(manager.load_at(new.token(), after_grace).unwrap_err().reason(), "terminated");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn rotate_at(&self, session: &mut Session, now: Timestamp) -> Result<Issued, Error> {
        self.rotate_and_report(session, now, Rotation::Routine)
    }

    /// [`SessionManager::change_privilege`] at an explicit instant.
    ///
    /// # Errors
    /// As for [`rotate_at`](Self::rotate_at).
    ///
    /// # Example
    /// ```
    /// use latchkey::{Error, KeyRing, MemoryStore, NewSession, TicketKey, TicketManager, Timestamp};
    /// let manager = TicketManager::new("session", KeyRing::new(1, TicketKey::generate()))?
    ///     .with_revocation(MemoryStore::new());
    /// let t0 = Timestamp::from_unix_millis(1_800_000_000_000);
    /// let before = manager.create_at(NewSession::new().with_user("alice"), t0)?;
    /// let mut s = manager.load_at(before.token(), t0)?.session;
    /// s.insert("admin", &true)?;
    /// manager.change_privilege_at(&mut s, t0)?;
    /// assert!(matches!(manager.load_at(before.token(), t0), Err(Error::Superseded)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn change_privilege_at(
        &self,
        session: &mut Session,
        now: Timestamp,
    ) -> Result<Issued, Error> {
        self.rotate_and_report(session, now, Rotation::Privilege)
    }

    fn rotate_and_report(
        &self,
        session: &mut Session,
        now: Timestamp,
        rotation: Rotation,
    ) -> Result<Issued, Error> {
        let from = session.fingerprint();
        let issued = self.rotate_inner(session, now, rotation)?;
        self.core.emit(Event::Rotated {
            from,
            to: issued.fingerprint(),
        });
        Ok(issued)
    }

    /// [`SessionManager::login`] at an explicit instant. The same rules as
    /// [`StoreManager`](crate::StoreManager): a fresh session key, the
    /// absolute deadline kept; a session of a different user is ended (if
    /// revocation is configured) and `user` gets a fresh, empty one.
    ///
    /// # Errors
    /// As for [`rotate_at`](Self::rotate_at). On any error, including
    /// [`Error::TicketTooLarge`], `session` is as it was and nothing was
    /// written: the new ticket is minted before the old session is ended.
    ///
    /// # Example
    /// ```
    /// use std::time::Duration;
    /// use latchkey::{KeyRing, NewSession, TicketKey, TicketManager, Timestamp};
    /// let tickets = TicketManager::new("session", KeyRing::new(1, TicketKey::generate()))?;
    /// let t0 = Timestamp::from_unix_millis(1_800_000_000_000);
    /// let issued = tickets.create_at(NewSession::new(), t0)?;
    /// let mut s = tickets.load_at(issued.token(), t0)?.session;
    /// let later = t0.saturating_add(Duration::from_secs(60));
    /// let fresh = tickets.login_at(&mut s, "alice", later)?;
    /// assert_eq!(fresh.absolute_deadline(), issued.absolute_deadline());
    /// assert_eq!(s.user(), Some("alice"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn login_at(
        &self,
        session: &mut Session,
        user: &str,
        now: Timestamp,
    ) -> Result<Issued, Error> {
        let from = session.fingerprint();
        self.core.check_ticket_binding(Some(user), None)?;
        match self.core.login_of(session, user) {
            Login::Replace { fresh } => {
                // Mint first: a fresh ticket the cookie cannot carry (a
                // longer user name) must not leave the old session ended
                // and the browser with nothing.
                let (fresh, issued) = self.start(fresh, now)?;
                if let Some(store) = &self.revocation {
                    end_chain(
                        store.as_ref(),
                        &session.key,
                        EndReason::Replaced,
                        now,
                        session.absolute_deadline,
                    )?;
                }
                *session = fresh;
                self.core.report_login(from, issued.fingerprint(), user);
                Ok(issued)
            }
            Login::Rebind => {
                let issued = self.core.bind_then(session, user, now, |s| {
                    self.rotate_inner(s, now, Rotation::Privilege)
                })?;
                self.core.report_login(from, issued.fingerprint(), user);
                Ok(issued)
            }
        }
    }

    /// [`SessionManager::reauthenticate`] at an explicit instant: the
    /// caller has verified the user's credential. The new ticket carries
    /// `auth_at = now` under a fresh session key, and the absolute deadline
    /// of the old one (or, if the policy lets a re-authentication extend
    /// it, `now` plus the absolute timeout). The old ticket is treated as
    /// after [`change_privilege_at`](Self::change_privilege_at): with
    /// revocation it is refused ([`Error::Superseded`] in the grace window,
    /// reuse after it); without, it keeps loading with its own, older
    /// `auth_at` until it expires, so it never passes a freshness check the
    /// new one passes.
    ///
    /// # Errors
    /// [`Error::NotAuthenticated`] for a ticket without a user; otherwise
    /// as for [`rotate_at`](Self::rotate_at). On any error `session` is as
    /// it was and nothing was written.
    ///
    /// # Example
    /// ```
    /// use std::time::Duration;
    /// use latchkey::{Error, KeyRing, MemoryStore, NewSession, TicketKey, TicketManager, Timestamp};
    /// let tickets = TicketManager::new("session", KeyRing::new(1, TicketKey::generate()))?
    ///     .with_revocation(MemoryStore::new());
    /// let t0 = Timestamp::from_unix_millis(1_800_000_000_000);
    /// let before = tickets.create_at(NewSession::new().with_user("alice"), t0)?;
    /// // 15 minutes on: still live (idle timeout 20 minutes), no longer fresh.
    /// let later = t0.saturating_add(Duration::from_secs(15 * 60));
    /// let mut s = tickets.load_at(before.token(), later)?.session;
    /// assert!(s.require_recent_auth_at(Duration::from_secs(600), later).is_err());
    /// // The user typed their password again, and it checked out:
    /// let after = tickets.reauthenticate_at(&mut s, later)?;
    /// let fresh = tickets.load_at(after.token(), later)?.session;
    /// assert_eq!(fresh.authenticated_at(), Some(later));
    /// assert_eq!(after.absolute_deadline(), before.absolute_deadline());
    /// assert!(matches!(tickets.load_at(before.token(), later), Err(Error::Superseded)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn reauthenticate_at(
        &self,
        session: &mut Session,
        now: Timestamp,
    ) -> Result<Issued, Error> {
        let rotation = self.core.reauthentication_of(session, now)?;
        let from = session.fingerprint();
        let issued = self.rotate_inner(session, now, rotation)?;
        if let Some(user) = session.user() {
            self.core.report_login(from, issued.fingerprint(), user);
        }
        Ok(issued)
    }

    /// [`SessionManager::terminate`] at an explicit instant.
    ///
    /// # Errors
    /// [`Error::RevocationNotConfigured`] without revocation: the ticket
    /// stays valid until it expires, and saying `Ok` would be a lie. Store
    /// errors.
    ///
    /// # Example
    /// ```
    /// use latchkey::{Error, KeyRing, NewSession, TicketKey, TicketManager, Timestamp};
    ///
    /// let keys = KeyRing::new(1, TicketKey::generate());
    /// let stateless = TicketManager::new("session", keys)?;
    /// let now = Timestamp::from_unix_millis(1_800_000_000_000);
    /// let issued = stateless.create_at(NewSession::new(), now)?;
    /// let session = stateless.load_at(issued.token(), now)?.session;
    /// // No state, no revocation: the API says so instead of pretending.
    /// assert!(matches!(
    ///     stateless.terminate_at(&session, now),
    ///     Err(Error::RevocationNotConfigured)
    /// ));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn terminate_at(&self, session: &Session, now: Timestamp) -> Result<(), Error> {
        let store = self
            .revocation
            .as_deref()
            .ok_or(Error::RevocationNotConfigured)?;
        end_chain(
            store,
            &session.key,
            EndReason::Logout,
            now,
            session.absolute_deadline,
        )?;
        self.core.emit(Event::Terminated {
            session: session.fingerprint(),
            reason: EndReason::Logout,
        });
        Ok(())
    }

    /// [`SessionManager::terminate_all`] at an explicit instant: ends every
    /// ticket of `user` authenticated at or before `now`. Tickets from
    /// later logins are unaffected, including one created in the same
    /// request after this call only if the clock has moved on: a login in
    /// the same millisecond counts as before the cutoff.
    ///
    /// # Errors
    /// [`Error::RevocationNotConfigured`] without revocation; store errors.
    ///
    /// # Example
    /// ```
    /// use latchkey::{Error, KeyRing, TicketKey, TicketManager, Timestamp};
    /// let tickets = TicketManager::new("session", KeyRing::new(1, TicketKey::generate()))?;
    /// // Without a revocation store, tickets cannot be ended early: the API says so.
    /// let err = tickets.terminate_all_at("alice", Timestamp::from_unix_millis(0)).unwrap_err();
    /// assert!(matches!(err, Error::RevocationNotConfigured));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn terminate_all_at(&self, user: &str, now: Timestamp) -> Result<(), Error> {
        let store = self
            .revocation
            .as_deref()
            .ok_or(Error::RevocationNotConfigured)?;
        // Kept for one absolute timeout: every ticket it covers was
        // authenticated before now, so (with the policy cap on load) is dead
        // by then.
        let keep = now.saturating_add(self.core.policy.absolute_timeout());
        write_revocation(
            store,
            &user_cutoff_key(user),
            EndReason::LogoutAll,
            now,
            keep,
            |old, new| new > old,
        )
    }

    /// Refuses a ticket that is ended, superseded, reused or under its
    /// user's cutoff, by the rules of [`crate::lifecycle`]; says whether it
    /// is a routine rotation's old ticket within the grace window. With
    /// `write`, a rotated ticket's copy is a [`Error::Conflict`] instead.
    fn check_revoked(
        &self,
        key: &StoreKey,
        user: Option<&str>,
        authenticated: Timestamp,
        now: Timestamp,
        write: bool,
    ) -> Result<Revocation, Error> {
        let Some(store) = &self.revocation else {
            return Ok(Revocation::Clear);
        };
        let mut state = Revocation::Clear;
        let entry = store.get(key)?;
        let verdict = match entry {
            // A write from a copy whose ticket was rotated meanwhile is
            // stale, whatever the rotation and however late: a conflict, as
            // a server-side store's versioned write is, and never reuse
            // (which is a client presenting the old ticket, not a handler
            // writing its copy).
            Some(Record {
                state: RecordState::Rotated { .. },
                ..
            }) if write => return Err(Error::Conflict),
            // Entries written before rotations had records of their own
            // took effect at the end of the grace window (`at` ahead).
            Some(Record {
                state: RecordState::Ended { at, .. },
                ..
            }) if now < at => {
                state = Revocation::Retired;
                None
            }
            // No entry: the live tip. A live record (a store shared with
            // server-side sessions never has one under a ticket's random
            // key) says nothing about the ticket either.
            Some(record) if !record.is_live() => Some(self.core.judge(record, now)),
            _ => None,
        };
        match verdict {
            Some(Verdict::Ended(reason)) => {
                self.core.emit(Event::Terminated {
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
            Some(Verdict::Follow { successor, .. }) => {
                // The old ticket carries its own claims, but it is only as
                // alive as its chain: a logout of the successor ends it.
                if let Some(reason) = chain_end(store.as_ref(), &successor, now)? {
                    return Err(Error::Terminated { reason });
                }
                state = Revocation::Retired;
            }
            Some(Verdict::Superseded) => {
                return Err(self
                    .core
                    .reject(RejectKind::Superseded, Some(key), Error::Superseded));
            }
            Some(Verdict::Reused { successor, revoke }) => {
                let keep = now.saturating_add(self.core.policy.absolute_timeout());
                let successor_revoked = revoke
                    && end_chain(
                        store.as_ref(),
                        &successor,
                        EndReason::ReuseDetected,
                        now,
                        keep,
                    )?;
                self.core.emit(Event::ReuseDetected {
                    retired: key.fingerprint(),
                    successor: successor.fingerprint(),
                    successor_revoked,
                });
                return Err(Error::RotatedTokenReused { successor_revoked });
            }
            // Past its retention (the ticket is past its absolute deadline
            // anyway), or no entry.
            _ => {}
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
        Ok(state)
    }
}

/// The longest ticket `cookie` carries at any time, within the format's
/// limit.
fn ticket_budget(cookie: &CookieConfig) -> usize {
    cookie.max_value_len().min(MAX_TICKET_LEN)
}

/// What the revocation store says of a ticket that is still usable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Revocation {
    /// Nothing: the ticket is the live tip of its session.
    Clear,
    /// Retired by a routine rotation, within the grace window: it loads, but
    /// a copy of it is stale for writes.
    Retired,
}

/// A new session's key: 32 fresh bytes from the CSPRNG (`ThreadRng`, as
/// session ids are drawn).
///
/// A server-side session's store key is SHA-256 of its id, because there
/// the id is the bearer secret and the store must not hold it. A ticket
/// session has no id to protect: its credential is the signature, the key
/// travels in the readable ticket, and no preimage is ever kept or checked.
/// Hashing 32 random bytes that are then thrown away would only cost a
/// SHA-256 per issue (a fifth of it); the random bytes themselves are just
/// as unguessable, as unique and as uniform, so fingerprints, deny-list
/// entries and a store shared with server-side sessions work the same.
fn fresh_key() -> StoreKey {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    StoreKey::from_bytes(bytes)
}

impl SessionManager for TicketManager {
    fn create(&self, new: NewSession) -> Result<Issued, Error> {
        self.create_at(new, self.core.now())
    }

    fn load(&self, token: &str) -> Result<Loaded, Error> {
        self.load_when(token, || self.core.now())
    }

    fn save(&self, session: &mut Session) -> Result<Option<Issued>, Error> {
        self.save_at(session, self.core.now())
    }

    fn rotate(&self, session: &mut Session) -> Result<Issued, Error> {
        self.rotate_at(session, self.core.now())
    }

    fn change_privilege(&self, session: &mut Session) -> Result<Issued, Error> {
        self.change_privilege_at(session, self.core.now())
    }

    fn login(&self, session: &mut Session, user: &str) -> Result<Issued, Error> {
        self.login_at(session, user, self.core.now())
    }

    fn reauthenticate(&self, session: &mut Session) -> Result<Issued, Error> {
        self.reauthenticate_at(session, self.core.now())
    }

    fn require_recent_auth(&self, session: &Session, max_age: Duration) -> Result<(), Error> {
        session.require_recent_auth_at(max_age, self.core.now())
    }

    fn terminate(&self, session: &Session) -> Result<(), Error> {
        self.terminate_at(session, self.core.now())
    }

    fn terminate_all(&self, user: &str, except: Option<&Session>) -> Result<Option<usize>, Error> {
        if except.is_some() {
            return Err(Error::Unsupported(
                "sparing one session from terminate_all (a ticket cutoff ends every ticket of the user)",
            ));
        }
        self.terminate_all_at(user, self.core.now()).map(|()| None)
    }

    /// Stateless tickets never block; with a revocation store, as that
    /// store says.
    fn may_block(&self) -> bool {
        self.revocation.as_ref().is_some_and(|s| s.may_block())
    }
}

/// The time a user's "log out everywhere" cutoff is compared with: the
/// later of the session's creation and its authentication. A session made
/// after a cutoff is not cut off, even when it carries an earlier password
/// login (one a remember-me token created); one logged in after it is not
/// either.
fn authenticated_since(created_at: Timestamp, auth_at: Option<Timestamp>) -> Timestamp {
    auth_at.map_or(created_at, |at| at.max(created_at))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;
    use crate::clock::ManualClock;
    use crate::store::memory::MemoryStore;
    use crate::ticket::keyring::TicketKey;

    const T0: Timestamp = Timestamp::from_unix_millis(1_795_000_000_000);
    const MIN: Duration = Duration::from_secs(60);

    fn key(b: u8) -> TicketKey {
        TicketKey::try_from(&[b; 32][..]).unwrap()
    }

    fn manager() -> TicketManager {
        TicketManager::new("session", KeyRing::new(1, key(1))).unwrap()
    }

    fn revocable() -> TicketManager {
        manager().with_revocation(MemoryStore::new())
    }

    fn alice() -> NewSession {
        NewSession::new()
            .with_user("alice")
            .with_device("laptop")
            .with_value("cart", &[1, 2])
            .unwrap()
    }

    fn bin(ticket: &str) -> Vec<u8> {
        URL_SAFE_NO_PAD.decode(&ticket[4..]).unwrap()
    }

    fn text(bin: &[u8]) -> String {
        format!("lk1.{}", URL_SAFE_NO_PAD.encode(bin))
    }

    #[test]
    fn created_ticket_loads_with_everything_it_carries() {
        let m = manager();
        let issued = m.create_at(alice(), T0).unwrap();
        let loaded = m
            .load_at(issued.token(), T0.saturating_add(MIN / 2))
            .unwrap();
        let s = loaded.session;
        assert!(loaded.reissue.is_none(), "younger than the touch interval");
        assert_eq!(s.user(), Some("alice"));
        assert_eq!(s.device(), Some("laptop"));
        assert_eq!(s.get::<Vec<u32>>("cart").unwrap(), Some(vec![1, 2]));
        assert_eq!(s.created_at(), T0);
        assert_eq!(s.authenticated_at(), Some(T0));
        assert_eq!(
            s.absolute_deadline(),
            T0.saturating_add(m.policy().absolute_timeout())
        );
        assert_eq!(s.idle_deadline(), issued.idle_deadline());
        assert_eq!(s.fingerprint(), issued.fingerprint());
        // The ticket carries the session's store key (random bytes drawn
        // at creation), never an id.
        assert_eq!(&bin(issued.token())[50..82], s.store_key().as_bytes());
        assert!(s.id.is_none());
        assert!(!format!("{s:?}").contains(issued.token()));
    }

    #[test]
    fn every_new_ticket_session_gets_its_own_random_key() {
        let m = manager();
        let keys: std::collections::HashSet<[u8; 32]> = (0..64)
            .map(|_| {
                let issued = m.create_at(alice(), T0).unwrap();
                let key: [u8; 32] = bin(issued.token())[50..82].try_into().unwrap();
                key
            })
            .collect();
        assert_eq!(keys.len(), 64, "session keys repeat");
        assert!(!keys.contains(&[0u8; 32]));
    }

    #[test]
    fn data_too_big_for_the_stack_buffer_is_issued_and_loads_intact() {
        // Issue serializes data into the ticket's stack buffer and falls
        // back to a string beyond it: every length across the boundary
        // (about 360 bytes of blob with alice's user, device and cart) must
        // round-trip, in ASCII and in two-byte characters.
        let m = manager();
        let ascii = (300..420).map(|n| "x".repeat(n));
        let wide = (150..210).map(|n| "é".repeat(n));
        for blob in ascii.chain(wide).chain(["".into(), "y".repeat(2000)]) {
            let len = blob.len();
            let new = alice().with_value("blob", &blob).unwrap();
            let issued = m.create_at(new, T0).unwrap();
            let s = m.load_at(issued.token(), T0).unwrap().session;
            assert_eq!(s.get::<String>("blob").unwrap(), Some(blob), "{len}");
            assert_eq!(s.get::<Vec<u32>>("cart").unwrap(), Some(vec![1, 2]));
        }
        // A user and device that fill the stack buffer on their own (under
        // a policy that allows labels that long).
        let roomy = m
            .policy()
            .to_builder()
            .with_max_label_bytes(512)
            .build()
            .unwrap();
        let m = m.with_policy(roomy);
        let long = NewSession::new()
            .with_user("u".repeat(300))
            .with_device("d".repeat(300))
            .with_value("cart", &[1, 2])
            .unwrap();
        let issued = m.create_at(long, T0).unwrap();
        let s = m.load_at(issued.token(), T0).unwrap().session;
        assert_eq!(s.user().map(str::len), Some(300));
        assert_eq!(s.get::<Vec<u32>>("cart").unwrap(), Some(vec![1, 2]));
        // Over the policy's data limit, whichever path encoded it.
        let limit = m.policy().max_data_bytes();
        let huge = alice().with_value("blob", &"x".repeat(limit)).unwrap();
        assert!(matches!(
            m.create_at(huge, T0),
            Err(Error::TooLarge { limit: l, .. }) if l == limit
        ));
    }

    #[test]
    fn tampering_with_any_byte_is_rejected() {
        let m = manager();
        let issued = m.create_at(alice(), T0).unwrap();
        let token = issued.token();
        // Every character of the text, replaced by another of the alphabet.
        for i in 0..token.len() {
            let mut b = token.as_bytes().to_vec();
            b[i] = if b[i] == b'A' { b'B' } else { b'A' };
            let t = String::from_utf8(b).unwrap();
            let err = m.load_at(&t, T0).unwrap_err();
            assert!(err.is_rejection(), "position {i}: {err}");
        }
        // Every bit of the binary payload and tag, re-encoded canonically so
        // the MAC (not the decoder) is what refuses it.
        let raw = bin(token);
        for i in 0..raw.len() {
            for bit in 0..8 {
                let mut b = raw.clone();
                b[i] ^= 1 << bit;
                let err = m.load_at(&text(&b), T0).unwrap_err();
                assert!(err.is_rejection(), "byte {i} bit {bit}: {err}");
                if i >= format::HEADER_LEN {
                    // Past the header only the MAC (or UTF-8) can notice.
                    assert!(
                        matches!(err, Error::BadSignature | Error::MalformedTicket(_)),
                        "byte {i} bit {bit}: {err}"
                    );
                }
            }
        }
        // Truncated and extended tickets.
        assert!(m.load_at(&text(&raw[..raw.len() - 1]), T0).is_err());
        let mut longer = raw.clone();
        longer.push(0);
        assert!(m.load_at(&text(&longer), T0).is_err());
        assert!(m.load_at(token, T0).is_ok(), "the original still loads");
    }

    #[test]
    fn ticket_for_another_purpose_fails() {
        let a = manager();
        let b = TicketManager::new("admin", KeyRing::new(1, key(1))).unwrap();
        let issued = a.create_at(alice(), T0).unwrap();
        assert!(matches!(
            b.load_at(issued.token(), T0),
            Err(Error::WrongPurpose)
        ));
        // Forge the purpose id: the MAC still covers the full purpose.
        let mut raw = bin(issued.token());
        raw[1..5].copy_from_slice(&format::purpose_id("admin"));
        assert!(matches!(
            b.load_at(&text(&raw), T0),
            Err(Error::BadSignature)
        ));
    }

    #[test]
    fn unknown_key_id_is_named() {
        let a = manager();
        let issued = a.create_at(alice(), T0).unwrap();
        // The same secret under another id is still an unknown key.
        let b = TicketManager::new("session", KeyRing::new(2, key(1))).unwrap();
        assert!(matches!(
            b.load_at(issued.token(), T0),
            Err(Error::UnknownKey { key_id: 1 })
        ));
        // Same id, different secret: a bad signature.
        let c = TicketManager::new("session", KeyRing::new(1, key(2))).unwrap();
        assert!(matches!(
            c.load_at(issued.token(), T0),
            Err(Error::BadSignature)
        ));
    }

    #[test]
    fn idle_and_absolute_expiry_are_enforced_and_named() {
        let m = manager();
        let p = m.policy().clone();
        let issued = m.create_at(alice(), T0).unwrap();
        let idle_end = T0.saturating_add(p.idle_timeout());
        assert!(
            m.load_at(
                issued.token(),
                idle_end.saturating_sub(Duration::from_millis(1))
            )
            .is_ok()
        );
        let err = m.load_at(issued.token(), idle_end).unwrap_err();
        assert!(
            matches!(err, Error::IdleExpired { deadline } if deadline == idle_end),
            "{err}"
        );
        let end = T0.saturating_add(p.absolute_timeout());
        let err = m.load_at(issued.token(), end).unwrap_err();
        assert!(
            matches!(err, Error::AbsoluteExpired { deadline } if deadline == end),
            "{err}"
        );
    }

    #[test]
    fn sliding_reissue_never_extends_the_absolute_deadline() {
        let m = manager();
        let p = m.policy().clone();
        let end = T0.saturating_add(p.absolute_timeout());
        let mut token = m.create_at(alice(), T0).unwrap().token().to_owned();
        let mut now = T0;
        let step = p.idle_timeout() / 2;
        loop {
            now = now.saturating_add(step);
            match m.load_at(&token, now) {
                Ok(loaded) => {
                    assert!(now < end);
                    let r = loaded.reissue.expect("older than the touch interval");
                    assert_eq!(r.absolute_deadline(), end);
                    assert!(r.idle_deadline() <= end);
                    assert_eq!(loaded.session.absolute_deadline(), end);
                    assert_eq!(loaded.session.last_seen(), now);
                    token = r.token().to_owned();
                }
                Err(e) => {
                    assert!(
                        matches!(e, Error::AbsoluteExpired { deadline } if deadline == end),
                        "{e}"
                    );
                    assert!(now >= end);
                    break;
                }
            }
        }
    }

    #[test]
    fn reissue_waits_for_the_touch_interval() {
        let m = manager();
        let issued = m.create_at(alice(), T0).unwrap();
        let touch = m.policy().touch_interval();
        let early = m
            .load_at(
                issued.token(),
                T0.saturating_add(touch - Duration::from_millis(1)),
            )
            .unwrap();
        assert!(early.reissue.is_none());
        // Not reissued, the session is as the ticket says.
        assert_eq!(early.session.last_seen(), T0);
        assert_eq!(early.session.idle_deadline(), issued.idle_deadline());
        let due = m.load_at(issued.token(), T0.saturating_add(touch)).unwrap();
        let r = due.reissue.unwrap();
        assert_eq!(r.fingerprint(), issued.fingerprint(), "same session key");
        assert_eq!(
            r.idle_deadline(),
            T0.saturating_add(touch + m.policy().idle_timeout())
        );
        // Reissued, the session is as the new ticket says.
        assert_eq!(due.session.last_seen(), T0.saturating_add(touch));
        assert_eq!(due.session.idle_deadline(), r.idle_deadline());
    }

    #[test]
    fn key_rotation_logs_nobody_out() {
        let m = manager();
        let old = m.create_at(alice(), T0).unwrap();
        let mut ring = m.keys();
        ring.rotate(2, key(2)).unwrap();
        m.set_keys(ring.clone());
        let loaded = m.load_at(old.token(), T0).unwrap();
        let r = loaded.reissue.expect("signed by a retired key: reissued");
        assert_eq!(bin(r.token())[5..9], 2u32.to_be_bytes());
        assert_eq!(r.absolute_deadline(), old.absolute_deadline());
        // The reissued ticket is current: no further reissue.
        assert!(m.load_at(r.token(), T0).unwrap().reissue.is_none());
        // Retiring the old key ends its tickets, with the reason.
        ring.retire(1);
        m.set_keys(ring);
        assert!(matches!(
            m.load_at(old.token(), T0),
            Err(Error::UnknownKey { key_id: 1 })
        ));
        assert!(m.load_at(r.token(), T0).is_ok());
    }

    #[test]
    fn save_returns_a_ticket_carrying_the_new_data() {
        let m = manager();
        let issued = m.create_at(alice(), T0).unwrap();
        let mut s = m.load_at(issued.token(), T0).unwrap().session;
        assert!(m.save_at(&mut s, T0).unwrap().is_none(), "nothing changed");
        s.insert("theme", "dark").unwrap();
        let now = T0.saturating_add(MIN * 5);
        let saved = m.save_at(&mut s, now).unwrap().unwrap();
        assert!(!s.is_modified());
        assert_eq!(saved.absolute_deadline(), issued.absolute_deadline());
        assert_eq!(saved.fingerprint(), issued.fingerprint());
        let again = m.load_at(saved.token(), now).unwrap().session;
        assert_eq!(
            again.get::<String>("theme").unwrap().as_deref(),
            Some("dark")
        );
        assert_eq!(again.last_seen(), now);
    }

    #[test]
    fn oversized_tickets_are_refused_at_issue() {
        let m = manager();
        let big = "x".repeat(4000);
        let err = m
            .create_at(NewSession::new().with_value("blob", &big).unwrap(), T0)
            .unwrap_err();
        assert!(
            matches!(err, Error::TicketTooLarge { size, limit: 4041 } if size > 4041),
            "{err}"
        );
        // Just under the limit is fine, and loads.
        let fits = "x".repeat(2_800);
        let ok = m
            .create_at(NewSession::new().with_value("blob", &fits).unwrap(), T0)
            .unwrap();
        assert!(ok.token().len() <= MAX_TICKET_LEN);
        assert!(m.load_at(ok.token(), T0).is_ok());
        // The same on save: the session keeps its unsaved change.
        let mut s = m.load_at(ok.token(), T0).unwrap().session;
        s.insert("more", &big).unwrap();
        assert!(matches!(
            m.save_at(&mut s, T0),
            Err(Error::TicketTooLarge { .. })
        ));
        assert!(s.is_modified());
    }

    #[test]
    fn rotate_and_login_mint_fresh_ids_and_keep_the_absolute_deadline() {
        let m = manager();
        let anon = m
            .create_at(NewSession::new().with_value("cart", &3).unwrap(), T0)
            .unwrap();
        let mut s = m.load_at(anon.token(), T0).unwrap().session;
        let later = T0.saturating_add(MIN * 10);
        let logged = m.login_at(&mut s, "bob", later).unwrap();
        assert_ne!(logged.fingerprint(), anon.fingerprint());
        assert_eq!(logged.absolute_deadline(), anon.absolute_deadline());
        assert_eq!(s.user(), Some("bob"));
        assert_eq!(s.authenticated_at(), Some(later));
        assert_eq!(s.created_at(), T0);
        let loaded = m.load_at(logged.token(), later).unwrap().session;
        assert_eq!(loaded.get::<u32>("cart").unwrap(), Some(3), "data kept");
        assert_eq!(loaded.authenticated_at(), Some(later));

        let rotated = m.rotate_at(&mut s, later).unwrap();
        assert_ne!(rotated.fingerprint(), logged.fingerprint());
        assert_eq!(rotated.absolute_deadline(), anon.absolute_deadline());
        assert_eq!(s.fingerprint(), rotated.fingerprint());

        // Another user on this session: a fresh, empty session.
        let carol = m.login_at(&mut s, "carol", later).unwrap();
        assert_eq!(s.user(), Some("carol"));
        assert_eq!(s.keys().count(), 0);
        assert_eq!(s.created_at(), later);
        assert_eq!(
            carol.absolute_deadline(),
            later.saturating_add(m.policy().absolute_timeout())
        );
        assert_eq!(s.device(), None);
    }

    #[test]
    fn terminate_without_revocation_says_so() {
        let m = manager();
        let issued = m.create_at(alice(), T0).unwrap();
        let s = m.load_at(issued.token(), T0).unwrap().session;
        assert!(matches!(
            m.terminate_at(&s, T0),
            Err(Error::RevocationNotConfigured)
        ));
        assert!(matches!(
            m.terminate_all_at("alice", T0),
            Err(Error::RevocationNotConfigured)
        ));
        assert!(m.load_at(issued.token(), T0).is_ok(), "and it is true");
        assert!(!m.has_revocation());
    }

    #[test]
    fn terminate_with_revocation_ends_the_ticket_and_its_reissues() {
        let m = revocable();
        let issued = m.create_at(alice(), T0).unwrap();
        let later = T0.saturating_add(m.policy().touch_interval());
        let loaded = m.load_at(issued.token(), later).unwrap();
        let reissued = loaded.reissue.unwrap();
        m.terminate_at(&loaded.session, later).unwrap();
        for t in [issued.token(), reissued.token()] {
            let err = m.load_at(t, later).unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::Terminated {
                        reason: EndReason::Logout
                    }
                ),
                "{err}"
            );
        }
        // Saving a terminated session is refused too.
        let mut s = loaded.session;
        s.insert("x", &1).unwrap();
        assert!(matches!(
            m.save_at(&mut s, later),
            Err(Error::Terminated { .. })
        ));
        // The deny entry is kept until the ticket's absolute deadline.
        let store = m.revocation.as_ref().unwrap();
        let rec = store.get(s.store_key()).unwrap().unwrap();
        assert_eq!(rec.expires_at, issued.absolute_deadline());
    }

    #[test]
    fn terminate_all_ends_earlier_logins_only() {
        let m = revocable();
        let phone = m.create_at(alice(), T0).unwrap();
        let bob = m.create_at(NewSession::new().with_user("bob"), T0).unwrap();
        let anon = m.create_at(NewSession::new(), T0).unwrap();
        let cut = T0.saturating_add(MIN);
        m.terminate_all_at("alice", cut).unwrap();
        let err = m.load_at(phone.token(), cut).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Terminated {
                    reason: EndReason::LogoutAll
                }
            ),
            "{err}"
        );
        assert!(m.load_at(bob.token(), cut).is_ok());
        assert!(m.load_at(anon.token(), cut).is_ok());
        // A later login by alice works, also on an old anonymous session.
        let after = cut.saturating_add(Duration::from_millis(1));
        let laptop = m.create_at(alice(), after).unwrap();
        assert!(m.load_at(laptop.token(), after).is_ok());
        let mut s = m.load_at(anon.token(), after).unwrap().session;
        let logged = m.login_at(&mut s, "alice", after).unwrap();
        assert!(m.load_at(logged.token(), after).is_ok());
        // An earlier cutoff does not weaken a later one.
        m.terminate_all_at("alice", T0).unwrap();
        assert!(m.load_at(phone.token(), cut).is_err());
    }

    #[test]
    fn rotated_ticket_works_in_grace_then_reuse_revokes_its_successor() {
        let m = revocable();
        let issued = m.create_at(alice(), T0).unwrap();
        let mut s = m.load_at(issued.token(), T0).unwrap().session;
        let rotated = m.rotate_at(&mut s, T0).unwrap();
        let grace = m.policy().rotation_grace();
        let in_grace = T0.saturating_add(grace / 2);
        // In grace and past the touch interval: loads, but is not re-signed;
        // the successor is.
        let signer_changed = {
            let mut ring = m.keys();
            ring.rotate(9, key(9)).unwrap();
            ring
        };
        m.set_keys(signer_changed);
        assert!(
            m.load_at(issued.token(), in_grace)
                .unwrap()
                .reissue
                .is_none(),
            "in flight"
        );
        assert!(
            m.load_at(rotated.token(), in_grace)
                .unwrap()
                .reissue
                .is_some()
        );
        // After the grace window: reuse, and (by default) the successor ends.
        let after = T0.saturating_add(grace);
        let err = m.load_at(issued.token(), after).unwrap_err();
        assert!(
            matches!(
                err,
                Error::RotatedTokenReused {
                    successor_revoked: true
                }
            ),
            "{err}"
        );
        assert!(matches!(
            m.load_at(rotated.token(), after),
            Err(Error::Terminated {
                reason: EndReason::ReuseDetected
            })
        ));
        // Terminating a copy from before a rotation ends the rotated ticket
        // and its predecessor at once.
        let other = m.create_at(alice(), T0).unwrap();
        let mut o = m.load_at(other.token(), T0).unwrap().session;
        let before = o.clone();
        let next = m.rotate_at(&mut o, T0).unwrap();
        m.terminate_at(&before, T0).unwrap();
        for t in [other.token(), next.token()] {
            assert!(matches!(
                m.load_at(t, T0),
                Err(Error::Terminated {
                    reason: EndReason::Logout
                })
            ));
        }
    }

    #[test]
    fn tightened_policy_caps_tickets_already_issued() {
        let m = manager();
        let issued = m.create_at(alice(), T0).unwrap();
        let strict = Policy::builder()
            .with_idle_timeout(MIN * 5)
            .with_absolute_timeout(MIN * 30)
            .build()
            .unwrap();
        let m = TicketManager::new("session", KeyRing::new(1, key(1)))
            .unwrap()
            .with_policy(strict);
        assert!(matches!(
            m.load_at(issued.token(), T0.saturating_add(MIN * 6)),
            Err(Error::IdleExpired { .. })
        ));
        let ok = m
            .load_at(issued.token(), T0.saturating_add(MIN * 4))
            .unwrap();
        assert_eq!(ok.session.absolute_deadline(), T0.saturating_add(MIN * 30));
    }

    #[test]
    fn rejections_are_reported_to_the_observer_without_the_ticket() {
        #[derive(Debug, Default)]
        struct Log(parking_lot::Mutex<Vec<Event>>);
        impl Observer for Log {
            fn on_event(&self, e: &Event) {
                self.0.lock().push(e.clone());
            }
        }
        let log = Arc::new(Log::default());
        let clock = Arc::new(ManualClock::new(T0));
        let m = manager().with_observer(log.clone()).with_clock(clock);
        let issued = m.create(alice()).unwrap();
        let mut raw = bin(issued.token());
        let last = raw.len() - 1;
        raw[last] ^= 1;
        assert!(m.load(&text(&raw)).is_err());
        assert!(m.load("garbage").is_err());
        let events = log.0.lock();
        assert!(matches!(events[0], Event::Created { .. }));
        assert!(matches!(
            events[1],
            Event::Rejected {
                kind: RejectKind::BadSignature,
                ..
            }
        ));
        assert!(matches!(
            events[2],
            Event::Rejected {
                kind: RejectKind::Malformed,
                ..
            }
        ));
        for e in events.iter() {
            assert!(!e.to_string().contains(issued.token()));
        }
    }

    #[test]
    fn debug_shows_no_key_material() {
        let m = manager();
        let shown = format!("{m:?}");
        assert!(shown.contains("KeyRing"));
        assert!(!shown.contains(&key(1).to_base64()));
        assert!(!shown.contains("1, 1, 1"));
    }

    #[test]
    fn works_behind_the_session_manager_trait() {
        let clock = Arc::new(ManualClock::new(T0));
        let m: Box<dyn SessionManager> = Box::new(revocable().with_clock(clock.clone()));
        let anon = m.create(NewSession::new()).unwrap();
        let mut s = m.load(anon.token()).unwrap().session;
        let logged = m.login(&mut s, "alice").unwrap();
        clock.advance(Duration::from_secs(1));
        m.terminate(&s).unwrap();
        assert!(m.load(logged.token()).unwrap_err().is_rejection());
    }
}
