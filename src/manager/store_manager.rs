//! [`StoreManager`]: sessions kept in a [`Store`].

use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, Timestamp};
use crate::error::Error;
use crate::event::{Event, Observer, RejectKind};
use crate::id::{Fingerprint, SessionId, StoreKey};
use crate::manager::{SessionInfo, SessionManager};

// The rotation chain: ending it, rolling a crashed rotation forward.
#[path = "chain.rs"]
mod chain;
use crate::lifecycle::{Core, Login, Rotation, Verdict};
use crate::policy::{Policy, ReuseResponse, UserLimitAction};
use crate::session::{Issued, Loaded, NewSession, Session, SessionData};
use crate::store::{EndReason, LiveRef, LiveSession, Peek, Record, RecordState, Store, StoreError};

/// How many times [`StoreManager::update`] and internal read-modify-write
/// loops retry a version conflict before giving up with it.
const MAX_RETRIES: usize = 8;

/// How many rotations a retired token may follow within its grace window
/// (two quick privilege changes in a row).
const MAX_CHAIN: usize = 4;

/// Server-side sessions: the token is a random ID, the state lives in a
/// [`Store`].
///
/// # Example
/// ```
/// use latchkey::{MemoryStore, NewSession, Policy, SessionManager, StoreManager};
///
/// let manager = StoreManager::new(MemoryStore::new()).with_policy(Policy::nist_aal2());
/// let issued = manager.create(NewSession::new().with_user("alice"))?;
/// let loaded = manager.load(issued.token())?;
/// assert_eq!(loaded.session.user(), Some("alice"));
/// assert_eq!(manager.sessions_of("alice")?.len(), 1);
/// # Ok::<(), latchkey::Error>(())
/// ```
#[derive(Debug)]
pub struct StoreManager<S> {
    store: S,
    /// Policy, clock, observer and the shared decisions (`lifecycle`).
    core: Core,
}

impl<S: Store> StoreManager<S> {
    /// A manager over `store` with [`Policy::default`] and the system clock.
    ///
    /// # Example
    /// ```
    /// use latchkey::{MemoryStore, NewSession, SessionManager, StoreManager};
    /// let manager = StoreManager::new(MemoryStore::new());
    /// assert!(manager.store().is_empty());
    /// ```
    pub fn new(store: S) -> StoreManager<S> {
        StoreManager {
            store,
            core: Core::new(Policy::default()),
        }
    }

    /// Uses `policy`.
    ///
    /// # Example
    /// ```
    /// use latchkey::{MemoryStore, Policy, StoreManager};
    /// let manager = StoreManager::new(MemoryStore::new()).with_policy(Policy::nist_aal3());
    /// assert_eq!(manager.policy(), &Policy::nist_aal3());
    /// ```
    #[must_use]
    pub fn with_policy(mut self, policy: Policy) -> StoreManager<S> {
        self.core.policy = policy;
        self
    }

    /// Takes time from `clock` (share it with the store if the store sweeps).
    ///
    /// # Example
    /// ```
    /// use std::sync::Arc;
    /// use latchkey::{ManualClock, MemoryStore, NewSession, SessionManager, StoreManager, Timestamp};
    /// let clock = Arc::new(ManualClock::new(Timestamp::from_unix_millis(1_800_000_000_000)));
    /// let manager = StoreManager::new(MemoryStore::new()).with_clock(clock);
    /// let issued = manager.create(NewSession::new())?;
    /// assert_eq!(manager.load(issued.token())?.session.created_at().as_unix_millis(), 1_800_000_000_000);
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> StoreManager<S> {
        self.core.clock = clock;
        self
    }

    /// Reports lifecycle events to `observer`.
    ///
    /// # Example
    /// ```
    /// use std::sync::Arc;
    /// use latchkey::{Event, MemoryStore, NewSession, Observer, SessionManager, StoreManager};
    /// #[derive(Debug)]
    /// struct Log;
    /// impl Observer for Log {
    ///     fn on_event(&self, event: &Event) { println!("{event}"); }
    /// }
    /// let manager = StoreManager::new(MemoryStore::new()).with_observer(Arc::new(Log));
    /// manager.create(NewSession::new())?; // prints "session created: <fingerprint>"
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    #[must_use]
    pub fn with_observer(mut self, observer: Arc<dyn Observer>) -> StoreManager<S> {
        self.core.observer = Some(observer);
        self
    }

    /// The store.
    ///
    /// # Example
    /// ```
    /// use latchkey::{MemoryStore, NewSession, SessionManager, StoreManager};
    /// let manager = StoreManager::new(MemoryStore::new());
    /// manager.create(NewSession::new())?;
    /// assert_eq!(manager.store().len(), 1);
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The policy.
    ///
    /// # Example
    /// ```
    /// use latchkey::{MemoryStore, Policy, StoreManager};
    /// assert_eq!(StoreManager::new(MemoryStore::new()).policy(), &Policy::default());
    /// ```
    pub fn policy(&self) -> &Policy {
        &self.core.policy
    }

    fn check_size(&self, data: &SessionData) -> Result<(), Error> {
        // Borrowed: a clean encoding, as a store is handed, is not copied.
        self.core.check_size(data.encoded_text().len())
    }

    fn live_record(&self, version: u64, live: LiveSession) -> Record {
        let expires_at = self
            .core
            .idle_deadline(live.last_seen, live.absolute_deadline);
        Record {
            version,
            expires_at,
            state: RecordState::Live(live),
        }
    }

    fn to_session(
        &self,
        id: Option<SessionId>,
        key: StoreKey,
        version: u64,
        live: LiveSession,
    ) -> Session {
        Session {
            id,
            key,
            version,
            created_at: live.created_at,
            last_seen: live.last_seen,
            auth_at: live.auth_at,
            absolute_deadline: live.absolute_deadline,
            idle_deadline: self
                .core
                .idle_deadline(live.last_seen, live.absolute_deadline),
            user: live.user,
            device: live.device,
            data: live.data,
        }
    }

    /// The token for `id`, whose store key `key` the caller already has (a
    /// second SHA-256 for the fingerprint would be wasted work).
    /// `last_seen` sets the idle deadline; `now` is when it is issued (the
    /// cookie's `Max-Age` counts from it).
    fn issued(
        &self,
        id: &SessionId,
        key: &StoreKey,
        last_seen: Timestamp,
        absolute: Timestamp,
        now: Timestamp,
    ) -> Issued {
        Issued {
            token: id.to_token(),
            fingerprint: key.fingerprint(),
            idle_deadline: self.core.idle_deadline(last_seen, absolute),
            absolute_deadline: absolute,
            issued_at: now,
        }
    }

    /// [`SessionManager::create`] at an explicit instant.
    ///
    /// # Errors
    /// As for [`SessionManager::create`].
    ///
    /// # Example
    /// ```
    /// use std::{sync::Arc, time::Duration};
    /// use latchkey::{Error, ManualClock, MemoryStore, NewSession, StoreManager, Timestamp};
    /// let t0 = Timestamp::from_unix_millis(1_800_000_000_000);
    /// let clock = Arc::new(ManualClock::new(t0));
    /// let manager = StoreManager::new(MemoryStore::new().with_clock(clock.clone())).with_clock(clock);
    /// let issued = manager.create_at(NewSession::new(), t0)?;
    /// assert_eq!(issued.absolute_deadline(), t0.saturating_add(Duration::from_secs(8 * 3600)));
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    pub fn create_at(&self, new: NewSession, now: Timestamp) -> Result<Issued, Error> {
        self.core
            .check_labels(new.user.as_deref(), new.device.as_deref())?;
        let data = SessionData::from_encoded(Arc::from(new.data_json()));
        self.check_size(&data)?;
        if let Some(user) = &new.user {
            self.make_room_for(user, None, now)?;
        }
        let live = LiveSession {
            created_at: now,
            last_seen: now,
            auth_at: new.auth_at_for(now),
            absolute_deadline: now.saturating_add(self.core.policy.absolute_timeout()),
            user: new.user,
            device: new.device,
            data,
        };
        let absolute = live.absolute_deadline;
        let record = self.live_record(1, live);
        let (id, key) = self.insert_fresh(&record)?;
        self.core.emit_with(|| Event::Created {
            session: key.fingerprint(),
            user: record.user().map(str::to_owned),
        });
        Ok(self.issued(&id, &key, now, absolute, now))
    }

    /// Inserts under a fresh random ID. A collision of 256-bit random IDs
    /// does not happen; the retry only keeps a broken RNG from overwriting.
    fn insert_fresh(&self, record: &Record) -> Result<(SessionId, StoreKey), Error> {
        let mut last = StoreError::Exists;
        for _ in 0..3 {
            let id = SessionId::generate();
            let key = id.store_key();
            match self.store.insert(&key, record) {
                Ok(()) => return Ok((id, key)),
                Err(StoreError::Exists) => last = StoreError::Exists,
                Err(e) => return Err(e.into()),
            }
        }
        Err(last.into())
    }

    /// Enforces the per-user limit before `user` gains a session.
    /// `except` is a session that is about to be replaced and so not counted.
    fn make_room_for(
        &self,
        user: &str,
        except: Option<&StoreKey>,
        now: Timestamp,
    ) -> Result<(), Error> {
        let Some(max) = self.core.policy.max_sessions_per_user() else {
            return Ok(());
        };
        let mut live: Vec<(StoreKey, Timestamp)> = self
            .store
            .sessions_of(user)?
            .into_iter()
            .filter(|(k, _)| Some(k) != except)
            .filter_map(|(k, r)| match r.state {
                RecordState::Live(s) if self.expiry(&s, now).is_none() => Some((k, s.created_at)),
                _ => None,
            })
            .collect();
        if live.len() < max {
            return Ok(());
        }
        if self.core.policy.user_limit_action() == UserLimitAction::Refuse {
            return Err(Error::UserLimit { limit: max });
        }
        live.sort_by_key(|(_, created)| *created);
        let excess = live.len() + 1 - max;
        for (key, _) in live.into_iter().take(excess) {
            self.end(&key, EndReason::Evicted, now)?;
        }
        Ok(())
    }

    /// Which clock, if any, has ended a live session at `now`.
    fn expiry(&self, s: &LiveSession, now: Timestamp) -> Option<Error> {
        self.core.expiry(s.absolute_deadline, s.last_seen, now)
    }

    /// [`SessionManager::load`] at an explicit instant.
    ///
    /// # Errors
    /// As for [`SessionManager::load`].
    ///
    /// # Example
    /// ```
    /// use std::{sync::Arc, time::Duration};
    /// use latchkey::{Error, ManualClock, MemoryStore, NewSession, StoreManager, Timestamp};
    /// let t0 = Timestamp::from_unix_millis(1_800_000_000_000);
    /// let clock = Arc::new(ManualClock::new(t0));
    /// let manager = StoreManager::new(MemoryStore::new().with_clock(clock.clone())).with_clock(clock);
    /// let issued = manager.create_at(NewSession::new(), t0)?;
    /// // Unused for longer than the idle timeout (20 min by default):
    /// let later = t0.saturating_add(Duration::from_secs(21 * 60));
    /// assert!(matches!(manager.load_at(issued.token(), later), Err(Error::IdleExpired { .. })));
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    #[inline]
    pub fn load_at(&self, token: &str, now: Timestamp) -> Result<Loaded, Error> {
        self.load_when(token, || now)
    }

    /// The load, reading the time from `now` once the key is known.
    #[inline]
    fn load_when(&self, token: &str, now: impl FnOnce() -> Timestamp) -> Result<Loaded, Error> {
        let id = match SessionId::parse(token) {
            Ok(id) => id,
            Err(e) => {
                self.core.emit(Event::Rejected {
                    kind: RejectKind::Malformed,
                    session: None,
                });
                return Err(e.into());
            }
        };
        // The common case, a live session needing no touch, is built from
        // its record where the store keeps it (`Store::peek`), straight into
        // the result. Everything else (rotations, ends, touches) takes
        // `resolve`, which copies the record out first: `None` below.
        let key = id.store_key();
        let now = now();
        let shown = self.store.peek(&key, |seen| match seen {
            Ok(Peek::Live(live)) => self.load_live(&id, key, live, now),
            Ok(Peek::Missing) => Some(Err(Error::Unknown)),
            Ok(Peek::NotLive) => None,
            Err(e) => Some(Err(e.into())),
        });
        // Taken apart by value: the common case's `Loaded` (352 bytes) then
        // moves once, into the result. Bound to a name first and returned
        // after the error check, it took one more copy, which cost a load
        // at 100k live sessions about 80 ns (BENCHMARKS.md, "The result's
        // moves").
        match shown {
            None => self.load_resolved(id, key, now),
            Some(Err(err)) => {
                match &err {
                    // Strict mode: an ID we did not issue is refused, never
                    // adopted.
                    Error::Unknown => self.core.emit(Event::Rejected {
                        kind: RejectKind::Unknown,
                        session: Some(key.fingerprint()),
                    }),
                    Error::AbsoluteExpired { .. } | Error::IdleExpired { .. } => {
                        self.core.report_expired(&key, &err);
                    }
                    _ => {}
                }
                Err(err)
            }
            Some(Ok(loaded)) => Ok(loaded),
        }
    }

    /// A load's common case: the live session shown by the store, built in
    /// one step. Runs under the store's lock, so it only reads and builds;
    /// what must write or report is left to the caller: an expiry comes
    /// back as its error, to be reported, and a due touch as `None`, to be
    /// made by [`Self::resolve`].
    #[inline]
    fn load_live(
        &self,
        id: &SessionId,
        key: StoreKey,
        live: LiveRef<'_>,
        now: Timestamp,
    ) -> Option<Result<Loaded, Error>> {
        if let Some(err) = self
            .core
            .expiry(live.absolute_deadline, live.last_seen, now)
        {
            return Some(Err(err));
        }
        if self.core.touch_due(live.last_seen, now) {
            return None;
        }
        Some(Ok(Loaded {
            session: Session {
                id: Some(id.clone()),
                key,
                version: live.version,
                created_at: live.created_at,
                last_seen: live.last_seen,
                auth_at: live.auth_at,
                absolute_deadline: live.absolute_deadline,
                idle_deadline: self
                    .core
                    .idle_deadline(live.last_seen, live.absolute_deadline),
                user: live.user.map(String::from),
                device: live.device.map(String::from),
                data: live.data.to_data(),
            },
            reissue: None,
        }))
    }

    /// [`Self::load_at`] by way of [`Self::resolve`]; `key` is `id`'s.
    fn load_resolved(&self, id: SessionId, key: StoreKey, now: Timestamp) -> Result<Loaded, Error> {
        let (session, reissued) = self.resolve(id, key, now, 0)?;
        // The reissued ID is the resolved session's, so its key is the
        // session's key.
        let reissue = reissued.map(|id| {
            self.issued(
                &id,
                &session.key,
                session.last_seen,
                session.absolute_deadline,
                now,
            )
        });
        Ok(Loaded { session, reissue })
    }

    /// Resolves `id`, whose store key is `key`, to a live session,
    /// following rotations within their grace window. Returns the session
    /// and, if a rotation was followed, the ID the client should now hold.
    #[inline]
    fn resolve(
        &self,
        id: SessionId,
        key: StoreKey,
        now: Timestamp,
        depth: usize,
    ) -> Result<(Session, Option<SessionId>), Error> {
        let Some(record) = self.store.get(&key)? else {
            return Err(self
                .core
                .reject(RejectKind::Unknown, Some(&key), Error::Unknown));
        };
        match self.core.judge(record, now) {
            Verdict::Unknown => {
                Err(self
                    .core
                    .reject(RejectKind::Unknown, Some(&key), Error::Unknown))
            }
            Verdict::Expired(err) => {
                self.core.report_expired(&key, &err);
                Err(err)
            }
            Verdict::Live {
                version,
                mut live,
                touch,
            } => {
                if let Some(expires) = touch {
                    match self.store.touch(&key, now, expires) {
                        Ok(true) => live.last_seen = now,
                        // A touch that finds the record gone or retired
                        // means a concurrent logout or rotation: resolve
                        // again to report the state that won.
                        Ok(false) => {
                            return if depth < MAX_CHAIN {
                                self.resolve(id, key, now, depth + 1)
                            } else {
                                Err(Error::Conflict)
                            };
                        }
                        // A touch is best effort: the session was read and
                        // is live, so a store that cannot write (a full
                        // disk) costs the idle deadline's slide, reported,
                        // not the request.
                        Err(e) => self.core.emit(Event::TouchFailed {
                            session: key.fingerprint(),
                            error: e.to_string(),
                        }),
                    }
                }
                Ok((self.to_session(Some(id), key, version, live), None))
            }
            Verdict::Superseded => {
                Err(self
                    .core
                    .reject(RejectKind::Superseded, Some(&key), Error::Superseded))
            }
            Verdict::Follow {
                version,
                successor,
                sealed,
                pending,
            } if depth < MAX_CHAIN => {
                let corrupt = |why: &'static str| -> Error {
                    StoreError::Corrupt {
                        key: key.fingerprint(),
                        source: why.into(),
                    }
                    .into()
                };
                let sealed = sealed
                    .ok_or_else(|| corrupt("a routine rotation without its sealed successor"))?;
                let next = id.open(&sealed);
                if next.store_key() != successor {
                    return Err(corrupt("sealed successor does not match its key"));
                }
                if let Some(pending) = pending
                    && !self.roll_forward(&key, version, &successor, &pending, now)?
                {
                    // The chain changed under us (a logout ended it):
                    // report the state that won.
                    return self.resolve(id, key, now, depth + 1);
                }
                let (session, deeper) = self.resolve(next.clone(), successor, now, depth + 1)?;
                Ok((session, Some(deeper.unwrap_or(next))))
            }
            // A chain longer than a retired token may follow is reuse.
            Verdict::Follow { successor, .. } => {
                let revoke = self.core.policy.reuse_response() == ReuseResponse::RevokeSuccessor;
                self.reused(&key, successor, revoke, now)
            }
            Verdict::Reused { successor, revoke } => self.reused(&key, successor, revoke, now),
            Verdict::Ended(reason) => Err(Error::Terminated { reason }),
        }
    }

    /// Answers reuse of the retired `key`: ends its successor's chain if
    /// `revoke`, reports it, and refuses.
    fn reused(
        &self,
        key: &StoreKey,
        successor: StoreKey,
        revoke: bool,
        now: Timestamp,
    ) -> Result<(Session, Option<SessionId>), Error> {
        let successor_revoked = revoke && self.revoke_chain(successor, now)?;
        self.core.emit(Event::ReuseDetected {
            retired: key.fingerprint(),
            successor: successor.fingerprint(),
            successor_revoked,
        });
        Err(Error::RotatedTokenReused { successor_revoked })
    }

    /// Checks that a session copy is still usable at `now`.
    fn check_live(&self, session: &Session, now: Timestamp) -> Result<(), Error> {
        if now >= session.absolute_deadline {
            return Err(Error::AbsoluteExpired {
                deadline: session.absolute_deadline,
            });
        }
        Ok(())
    }

    fn live_from(&self, session: &Session, now: Timestamp) -> LiveSession {
        LiveSession {
            created_at: session.created_at,
            last_seen: now,
            auth_at: session.auth_at,
            absolute_deadline: session.absolute_deadline,
            user: session.user.clone(),
            device: session.device.clone(),
            data: session.data.to_stored(),
        }
    }

    /// Maps a failed versioned write on a session to the error that explains it.
    fn write_error(&self, session: &Session, e: StoreError, now: Timestamp) -> Error {
        match e {
            StoreError::NotFound => Error::Unknown,
            StoreError::Conflict => match self.store.get(&session.key) {
                Ok(Some(Record {
                    state: RecordState::Ended { reason, .. },
                    ..
                })) => Error::Terminated { reason },
                Ok(Some(Record {
                    state: RecordState::Rotated { .. },
                    ..
                })) if now >= session.absolute_deadline => Error::AbsoluteExpired {
                    deadline: session.absolute_deadline,
                },
                _ => Error::Conflict,
            },
            e => e.into(),
        }
    }

    /// [`SessionManager::save`] at an explicit instant.
    ///
    /// # Errors
    /// As for [`SessionManager::save`].
    ///
    /// # Example
    /// ```
    /// use std::{sync::Arc, time::Duration};
    /// use latchkey::{Error, ManualClock, MemoryStore, NewSession, StoreManager, Timestamp};
    /// let t0 = Timestamp::from_unix_millis(1_800_000_000_000);
    /// let clock = Arc::new(ManualClock::new(t0));
    /// let manager = StoreManager::new(MemoryStore::new().with_clock(clock.clone())).with_clock(clock);
    /// let issued = manager.create_at(NewSession::new(), t0)?;
    /// let mut s = manager.load_at(issued.token(), t0)?.session;
    /// s.insert("theme", &"dark")?;
    /// manager.save_at(&mut s, t0)?;
    /// assert_eq!(s.version(), 2);
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    pub fn save_at(&self, session: &mut Session, now: Timestamp) -> Result<Option<Issued>, Error> {
        if !session.is_modified() {
            return Ok(None);
        }
        self.check_live(session, now)?;
        let live = self.live_from(session, now);
        self.check_size(&live.data)?;
        let data = live.data.clone();
        let record = self.live_record(session.version + 1, live);
        self.store
            .replace(&session.key, session.version, &record)
            .map_err(|e| self.write_error(session, e, now))?;
        session.version += 1;
        session.last_seen = now;
        session.idle_deadline = self.core.idle_deadline(now, session.absolute_deadline);
        session.data.saved_as(data);
        Ok(None)
    }

    /// Rotation shared by `rotate`, `change_privilege`, `login` and
    /// `reauthenticate`: `session` as modified by the caller is written
    /// under a fresh ID, with what `rotation` changes, and the old ID is
    /// retired. The copy is checked as it is, before `rotation` applies.
    fn rotate_inner(
        &self,
        session: &mut Session,
        now: Timestamp,
        rotation: Rotation,
    ) -> Result<SessionId, Error> {
        self.check_live(session, now)?;
        let privilege_change = rotation.privilege_change();
        let mut live = self.live_from(session, now);
        (live.auth_at, live.absolute_deadline) =
            rotation.successor_times(live.auth_at, live.absolute_deadline);
        let (auth_at, absolute) = (live.auth_at, live.absolute_deadline);
        self.check_size(&live.data)?;
        let data = live.data.clone();
        let record = self.live_record(1, live);
        let new_id = SessionId::generate();
        let new_key = new_id.store_key();
        let retired_state = match &session.id {
            Some(old) => RecordState::Rotated {
                successor: new_key,
                // Only a routine rotation hands its old token the successor.
                sealed_successor: (!privilege_change).then(|| old.seal(&new_id)),
                at: now,
                grace_until: now.saturating_add(self.core.policy.rotation_grace()),
                privilege_change,
                pending: None,
            },
            // A session copy that never held its ID (built by hand) cannot
            // seal a successor; its old token simply ends.
            None => RecordState::Ended {
                reason: EndReason::Logout,
                at: now,
            },
        };
        let retired = Record {
            version: session.version + 1,
            // Retained until the session's absolute deadline (the
            // successor's, which a re-authentication may have moved): reuse
            // of the old token is detectable for as long as the session
            // could live.
            expires_at: absolute,
            state: retired_state,
        };
        self.store
            .rotate(&session.key, session.version, &retired, &new_key, &record)
            .map_err(|e| self.write_error(session, e, now))?;
        session.id = Some(new_id.clone());
        session.key = new_key;
        session.version = 1;
        session.last_seen = now;
        session.auth_at = auth_at;
        session.absolute_deadline = absolute;
        session.idle_deadline = self.core.idle_deadline(now, absolute);
        session.data.saved_as(data);
        Ok(new_id)
    }

    /// [`SessionManager::rotate`] at an explicit instant.
    ///
    /// # Errors
    /// As for [`SessionManager::rotate`].
    ///
    /// # Example
    /// ```
    /// use std::{sync::Arc, time::Duration};
    /// use latchkey::{Error, ManualClock, MemoryStore, NewSession, StoreManager, Timestamp};
    /// let t0 = Timestamp::from_unix_millis(1_800_000_000_000);
    /// let clock = Arc::new(ManualClock::new(t0));
    /// let manager = StoreManager::new(MemoryStore::new().with_clock(clock.clone())).with_clock(clock);
    /// let issued = manager.create_at(NewSession::new(), t0)?;
    /// let mut s = manager.load_at(issued.token(), t0)?.session;
    /// let fresh = manager.rotate_at(&mut s, t0)?;
    /// // Within the grace window the old token still works and hands back the new one.
    /// let l = manager.load_at(issued.token(), t0.saturating_add(Duration::from_secs(5)))?;
    /// assert_eq!(l.reissue.map(|i| i.fingerprint()), Some(fresh.fingerprint()));
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    pub fn rotate_at(&self, session: &mut Session, now: Timestamp) -> Result<Issued, Error> {
        self.rotate_and_report(session, now, Rotation::Routine)
    }

    /// [`SessionManager::change_privilege`] at an explicit instant.
    ///
    /// # Errors
    /// As for [`SessionManager::rotate`].
    ///
    /// # Example
    /// ```
    /// use std::sync::Arc;
    /// use latchkey::{Error, ManualClock, MemoryStore, NewSession, StoreManager, Timestamp};
    /// let t0 = Timestamp::from_unix_millis(1_800_000_000_000);
    /// let manager = StoreManager::new(MemoryStore::new()).with_clock(Arc::new(ManualClock::new(t0)));
    /// let before = manager.create_at(NewSession::new().with_user("alice"), t0)?;
    /// let mut s = manager.load_at(before.token(), t0)?.session;
    /// s.insert("role", &"admin")?;
    /// let admin = manager.change_privilege_at(&mut s, t0)?;
    /// // The old token never sees the new privileges, even within the grace window.
    /// assert!(matches!(manager.load_at(before.token(), t0), Err(Error::Superseded)));
    /// assert_eq!(manager.load_at(admin.token(), t0)?.session.get::<String>("role")?.as_deref(), Some("admin"));
    /// # Ok::<(), latchkey::Error>(())
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
        let id = self.rotate_inner(session, now, rotation)?;
        self.core.emit(Event::Rotated {
            from,
            to: session.key.fingerprint(),
        });
        Ok(self.issued(&id, &session.key, now, session.absolute_deadline, now))
    }

    /// [`SessionManager::login`] at an explicit instant.
    ///
    /// # Errors
    /// As for [`SessionManager::login`].
    ///
    /// # Example
    /// ```
    /// use std::{sync::Arc, time::Duration};
    /// use latchkey::{Error, ManualClock, MemoryStore, NewSession, StoreManager, Timestamp};
    /// let t0 = Timestamp::from_unix_millis(1_800_000_000_000);
    /// let clock = Arc::new(ManualClock::new(t0));
    /// let manager = StoreManager::new(MemoryStore::new().with_clock(clock.clone())).with_clock(clock);
    /// let issued = manager.create_at(NewSession::new(), t0)?;
    /// let mut s = manager.load_at(issued.token(), t0)?.session;
    /// let later = t0.saturating_add(Duration::from_secs(60));
    /// manager.login_at(&mut s, "alice", later)?;
    /// assert_eq!(s.authenticated_at(), Some(later));
    /// assert_eq!(s.created_at(), t0); // the absolute deadline does not move
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    pub fn login_at(
        &self,
        session: &mut Session,
        user: &str,
        now: Timestamp,
    ) -> Result<Issued, Error> {
        self.core.check_labels(Some(user), None)?;
        let from = session.fingerprint();
        match self.core.login_of(session, user) {
            Login::Replace { fresh } => {
                self.end(&session.key, EndReason::Replaced, now)?;
                let issued = self.create_at(fresh, now)?;
                *session = self.load_at(issued.token(), now)?.session;
                self.core.report_login(from, issued.fingerprint(), user);
                Ok(issued)
            }
            Login::Rebind => {
                self.make_room_for(user, Some(&session.key), now)?;
                let id = self.core.bind_then(session, user, now, |s| {
                    self.rotate_inner(s, now, Rotation::Privilege)
                })?;
                self.core
                    .report_login(from, session.key.fingerprint(), user);
                Ok(self.issued(&id, &session.key, now, session.absolute_deadline, now))
            }
        }
    }

    /// [`SessionManager::reauthenticate`] at an explicit instant: the
    /// caller has verified the user's credential; `session` is now
    /// authenticated at `now`, under a new ID, and its old token is refused
    /// as after a privilege change.
    ///
    /// # Errors
    /// As for [`SessionManager::reauthenticate`]. On any error `session` is
    /// as it was.
    ///
    /// # Example
    /// ```
    /// use std::{sync::Arc, time::Duration};
    /// use latchkey::{Error, ManualClock, MemoryStore, NewSession, StoreManager, Timestamp};
    /// let t0 = Timestamp::from_unix_millis(1_800_000_000_000);
    /// let clock = Arc::new(ManualClock::new(t0));
    /// let manager = StoreManager::new(MemoryStore::new().with_clock(clock.clone())).with_clock(clock);
    /// let before = manager.create_at(NewSession::new().with_user("alice"), t0)?;
    /// // 15 minutes on: still live (idle timeout 20 minutes), no longer fresh.
    /// let later = t0.saturating_add(Duration::from_secs(15 * 60));
    /// let mut s = manager.load_at(before.token(), later)?.session;
    /// assert!(s.require_recent_auth_at(Duration::from_secs(600), later).is_err());
    /// // The user typed their password again, and it checked out:
    /// let after = manager.reauthenticate_at(&mut s, later)?;
    /// assert_eq!(s.authenticated_at(), Some(later));
    /// assert!(s.require_recent_auth_at(Duration::from_secs(600), later).is_ok());
    /// // The absolute deadline stays (by default), and the old token is refused.
    /// assert_eq!(after.absolute_deadline(), before.absolute_deadline());
    /// assert!(matches!(manager.load_at(before.token(), later), Err(Error::Superseded)));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn reauthenticate_at(
        &self,
        session: &mut Session,
        now: Timestamp,
    ) -> Result<Issued, Error> {
        let rotation = self.core.reauthentication_of(session, now)?;
        let from = session.fingerprint();
        let id = self.rotate_inner(session, now, rotation)?;
        if let Some(user) = session.user() {
            self.core
                .report_login(from, session.key.fingerprint(), user);
        }
        Ok(self.issued(&id, &session.key, now, session.absolute_deadline, now))
    }

    /// [`SessionManager::terminate`] at an explicit instant.
    ///
    /// # Errors
    /// As for [`SessionManager::terminate`].
    ///
    /// # Example
    /// ```
    /// use std::{sync::Arc, time::Duration};
    /// use latchkey::{Error, ManualClock, MemoryStore, NewSession, StoreManager, Timestamp};
    /// let t0 = Timestamp::from_unix_millis(1_800_000_000_000);
    /// let clock = Arc::new(ManualClock::new(t0));
    /// let manager = StoreManager::new(MemoryStore::new().with_clock(clock.clone())).with_clock(clock);
    /// let issued = manager.create_at(NewSession::new(), t0)?;
    /// let s = manager.load_at(issued.token(), t0)?.session;
    /// manager.terminate_at(&s, t0)?;
    /// assert!(matches!(manager.load_at(issued.token(), t0), Err(Error::Terminated { .. })));
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    pub fn terminate_at(&self, session: &Session, now: Timestamp) -> Result<(), Error> {
        self.end(&session.key, EndReason::Logout, now)?;
        Ok(())
    }

    /// Loads, applies `f`, saves; on a version conflict, loads again and
    /// re-applies `f`, up to 8 times. Returns `f`'s result, the session as
    /// saved, and any token to reissue.
    ///
    /// # Errors
    /// As for load and save; [`Error::Conflict`] if every attempt conflicted.
    ///
    /// # Example
    /// ```
    /// use latchkey::{MemoryStore, NewSession, SessionManager, StoreManager};
    ///
    /// let manager = StoreManager::new(MemoryStore::new());
    /// let issued = manager.create(NewSession::new())?;
    /// let (count, _, _) = manager.update(issued.token(), |s| {
    ///     let n = s.get::<u64>("visits")?.unwrap_or(0) + 1;
    ///     s.insert("visits", &n)?;
    ///     Ok::<_, latchkey::Error>(n)
    /// })?;
    /// assert_eq!(count?, 1);
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    pub fn update<F, R>(&self, token: &str, mut f: F) -> Result<(R, Session, Option<Issued>), Error>
    where
        F: FnMut(&mut Session) -> R,
    {
        for _ in 0..MAX_RETRIES {
            let now = self.core.now();
            let Loaded {
                mut session,
                reissue,
            } = self.load_at(token, now)?;
            let r = f(&mut session);
            match self.save_at(&mut session, now) {
                Ok(_) => return Ok((r, session, reissue)),
                Err(Error::Conflict) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::Conflict)
    }

    /// The user's live sessions, oldest first.
    ///
    /// # Errors
    /// Store errors.
    ///
    /// # Example
    /// ```
    /// use latchkey::{MemoryStore, NewSession, SessionManager, StoreManager};
    /// let manager = StoreManager::new(MemoryStore::new());
    /// manager.create(NewSession::new().with_user("alice").with_device("phone"))?;
    /// let list = manager.sessions_of("alice")?;
    /// assert_eq!(list[0].device.as_deref(), Some("phone"));
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    pub fn sessions_of(&self, user: &str) -> Result<Vec<SessionInfo>, Error> {
        let now = self.core.now();
        let mut out: Vec<SessionInfo> = self
            .store
            .sessions_of(user)?
            .into_iter()
            .filter_map(|(key, r)| match r.state {
                RecordState::Live(s)
                    if s.user.as_deref() == Some(user) && self.expiry(&s, now).is_none() =>
                {
                    Some(SessionInfo {
                        fingerprint: key.fingerprint(),
                        created_at: s.created_at,
                        last_seen: s.last_seen,
                        authenticated_at: s.auth_at,
                        idle_deadline: self.core.idle_deadline(s.last_seen, s.absolute_deadline),
                        absolute_deadline: s.absolute_deadline,
                        device: s.device,
                    })
                }
                _ => None,
            })
            .collect();
        out.sort_by_key(|i| (i.created_at, i.fingerprint));
        Ok(out)
    }

    /// Ends one of the user's sessions named by fingerprint (a "log out that
    /// device" button). Only sessions bound to `user` are considered, so a
    /// fingerprint from another account ends nothing. Returns whether one
    /// ended.
    ///
    /// # Errors
    /// Store errors.
    ///
    /// # Example
    /// ```
    /// use latchkey::{MemoryStore, NewSession, SessionManager, StoreManager};
    /// let manager = StoreManager::new(MemoryStore::new());
    /// let phone = manager.create(NewSession::new().with_user("alice"))?;
    /// assert!(!manager.terminate_by_fingerprint("mallory", phone.fingerprint())?);
    /// assert!(manager.terminate_by_fingerprint("alice", phone.fingerprint())?);
    /// assert!(manager.load(phone.token()).is_err());
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    pub fn terminate_by_fingerprint(
        &self,
        user: &str,
        fingerprint: Fingerprint,
    ) -> Result<bool, Error> {
        let now = self.core.now();
        for (key, record) in self.store.sessions_of(user)? {
            if key.fingerprint() == fingerprint && record.user() == Some(user) {
                return self.end(&key, EndReason::Logout, now);
            }
        }
        Ok(false)
    }

    /// Deletes every record whose retention has passed; returns how many.
    ///
    /// # Errors
    /// Store errors.
    ///
    /// # Example
    /// ```
    /// use latchkey::{MemoryStore, NewSession, SessionManager, StoreManager};
    /// let manager = StoreManager::new(MemoryStore::new());
    /// manager.create(NewSession::new())?;
    /// assert_eq!(manager.purge_expired()?, 0); // nothing has expired yet
    /// # Ok::<(), latchkey::Error>(())
    /// ```
    pub fn purge_expired(&self) -> Result<usize, Error> {
        Ok(self.store.purge_expired(self.core.now())?)
    }
}

impl<S: Store> SessionManager for StoreManager<S> {
    fn create(&self, new: NewSession) -> Result<Issued, Error> {
        self.create_at(new, self.core.now())
    }

    #[inline]
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
        let now = self.core.now();
        let mut n = 0;
        for (key, record) in self.store.sessions_of(user)? {
            if except.is_some_and(|s| s.key == key) || record.user() != Some(user) {
                continue;
            }
            if self.end(&key, EndReason::LogoutAll, now)? {
                n += 1;
            }
        }
        Ok(Some(n))
    }

    fn may_block(&self) -> bool {
        self.store.may_block()
    }
}
