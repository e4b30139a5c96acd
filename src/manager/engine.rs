//! The store manager's lifecycle, written once: every store call of
//! [`StoreManager`](crate::StoreManager) and (feature `async`)
//! `AsyncStoreManager`, interleaved with the decisions of
//! [`crate::lifecycle`], as async code over a [`Driver`].
//!
//! The synchronous manager's driver answers each call with a ready future,
//! so one poll runs an operation to its end (`driver::now_or_never`); the
//! asynchronous manager's driver awaits its store. Either way the control
//! flow is this file's, and nothing here names a runtime.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::Timestamp;
use crate::error::Error;
use crate::event::{Event, RejectKind};
use crate::id::{Fingerprint, SessionId, StoreKey};
use crate::lifecycle::{self, ChainEnd, Core, Link, Login, Rotation, Verdict};
use crate::manager::SessionInfo;
use crate::policy::{ReuseResponse, UserLimitAction};
use crate::session::{Issued, Loaded, NewSession, Session, SessionData};
use crate::store::driver::{self, Driver};
use crate::store::{EndReason, LiveRef, LiveSession, Peek, Record, RecordState, StoreError};

/// How many times internal read-modify-write loops (ending a record)
/// retry a version conflict before giving up with it.
pub(crate) const MAX_RETRIES: usize = 8;

/// How many attempts [`Engine::update`] makes before it gives up with the
/// conflict: enough that, with the backoff between them, 64 requests
/// updating one session at once all get through (see `tests/update_contention.rs`).
pub(crate) const UPDATE_ATTEMPTS: u32 = 12;

/// How many rotations a retired token may follow within its grace window
/// (two quick privilege changes in a row).
const MAX_CHAIN: usize = 4;

/// The most `update` waits before its `retry`-th retry (1-based): 1 ms,
/// doubling, at most 32 ms.
pub(crate) fn backoff_ceiling(retry: u32) -> Duration {
    Duration::from_millis(1 << retry.clamp(1, 6).saturating_sub(1))
}

/// A random wait up to [`backoff_ceiling`] ("full jitter"): requests that
/// conflicted on one session were released together, and retried at once
/// they collide again; spread out, each reload sees the others' writes.
pub(crate) fn backoff(retry: u32) -> Duration {
    use rand::RngExt as _;
    let ceiling = u64::try_from(backoff_ceiling(retry).as_micros()).unwrap_or(u64::MAX);
    Duration::from_micros(rand::rng().random_range(0..=ceiling))
}

/// A manager's state: where sessions live, and the decisions.
#[derive(Debug)]
pub(crate) struct Engine<D> {
    pub(crate) store: D,
    /// Policy, clock, observer and the shared decisions (`lifecycle`).
    pub(crate) core: Core,
}

/// The steps of ending a chain on this engine's store, with one reason at
/// one instant.
struct EndSteps<'a, D> {
    engine: &'a Engine<D>,
    reason: EndReason,
    now: Timestamp,
}

impl<D: Driver> ChainEnd for EndSteps<'_, D> {
    fn end_link(
        &mut self,
        key: StoreKey,
        retire: bool,
    ) -> impl Future<Output = Result<Link, Error>> + Send {
        self.engine.end_link(key, self.reason, self.now, retire)
    }

    fn after_link(
        &mut self,
        successor: StoreKey,
    ) -> impl Future<Output = Result<bool, Error>> + Send {
        let (engine, reason, now) = (self.engine, self.reason, self.now);
        async move {
            if engine
                .store
                .get(&successor)
                .await?
                .is_some_and(|r| r.is_live())
            {
                // Boxed: `end` reaches itself through here. Rare (a
                // successor written during the end), so the allocation is.
                engine.end_boxed(successor, reason, now).await
            } else {
                Ok(false)
            }
        }
    }
}

/// The data of a live record this engine just wrote, taken back for the
/// session (which keeps the stored encoding) instead of cloned before the
/// write. Every record `live_record` builds is live.
#[inline]
fn written_data(record: Record) -> SessionData {
    match record.state {
        RecordState::Live(live) => live.data,
        _ => unreachable!("live_record builds live records"),
    }
}

impl<D: Driver> Engine<D> {
    fn check_size(&self, data: &SessionData) -> Result<(), Error> {
        // Borrowed: a clean encoding, as a store is handed, is not copied.
        self.core.check_size(data.encoded_len())
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

    pub(crate) async fn create_at(&self, new: NewSession, now: Timestamp) -> Result<Issued, Error> {
        self.core
            .check_labels(new.user.as_deref(), new.device.as_deref())?;
        let data = SessionData::from_encoded(Arc::from(new.data_json()));
        self.check_size(&data)?;
        if let Some(user) = &new.user {
            self.make_room_for(user, None, now).await?;
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
        let (id, key) = self.insert_fresh(&record).await?;
        self.core.emit_with(|| Event::Created {
            session: key.fingerprint(),
            user: record.user().map(str::to_owned),
        });
        Ok(self.issued(&id, &key, now, absolute, now))
    }

    /// Inserts under a fresh random ID. A collision of 256-bit random IDs
    /// does not happen; the retry only keeps a broken RNG from overwriting.
    async fn insert_fresh(&self, record: &Record) -> Result<(SessionId, StoreKey), Error> {
        let mut last = StoreError::Exists;
        for _ in 0..3 {
            let id = SessionId::generate();
            let key = id.store_key();
            match self.store.insert(&key, record).await {
                Ok(()) => return Ok((id, key)),
                Err(StoreError::Exists) => last = StoreError::Exists,
                Err(e) => return Err(e.into()),
            }
        }
        Err(last.into())
    }

    /// Enforces the per-user limit before `user` gains a session.
    /// `except` is a session that is about to be replaced and so not counted.
    async fn make_room_for(
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
            .sessions_of(user)
            .await?
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
            self.end(&key, EndReason::Evicted, now).await?;
        }
        Ok(())
    }

    /// Which clock, if any, has ended a live session at `now`.
    fn expiry(&self, s: &LiveSession, now: Timestamp) -> Option<Error> {
        self.core.expiry(s.absolute_deadline, s.last_seen, now)
    }

    /// The load, reading the time from `now` once the key is known: the
    /// token parsed ([`Self::parse`]), the record shown by the store
    /// ([`Self::shown`]), and unless that settled it, the record resolved
    /// ([`Self::load_resolved`]). The synchronous manager composes the same
    /// steps around its store's own `peek` (`StoreManager::load_at`), so
    /// that its common case runs without a future.
    #[inline]
    pub(crate) async fn load_when(
        &self,
        token: &str,
        now: impl FnOnce() -> Timestamp,
    ) -> Result<Loaded, Error> {
        let id = self.parse(token)?;
        let key = id.store_key();
        let now = now();
        let shown = self
            .store
            .peek(&key, |seen| self.shown(&id, key, now, seen))
            .await;
        match shown {
            None => self.load_resolved(id, key, now).await,
            Some(Err(err)) => Err(self.refused(&key, err)),
            Some(Ok(loaded)) => Ok(loaded),
        }
    }

    /// A load's first step: the token as an ID; a malformed one is
    /// reported and refused before any store is asked.
    #[inline]
    pub(crate) fn parse(&self, token: &str) -> Result<SessionId, Error> {
        SessionId::parse(token).map_err(|e| {
            self.core.emit(Event::Rejected {
                kind: RejectKind::Malformed,
                session: None,
            });
            e.into()
        })
    }

    /// What a load makes of what the store shows of `key` (runs under the
    /// store's lock, so it only reads and builds).
    ///
    /// The common case, a live session needing no touch, is built from
    /// its record where the store keeps it (`Store::peek`), straight into
    /// the result. Everything else (rotations, ends, touches) takes
    /// `resolve`, which copies the record out first: `None`.
    #[inline]
    pub(crate) fn shown(
        &self,
        id: &SessionId,
        key: StoreKey,
        now: Timestamp,
        seen: Result<Peek<'_>, StoreError>,
    ) -> Option<Result<Loaded, Error>> {
        match seen {
            Ok(Peek::Live(live)) => self.load_live(id, key, live, now),
            Ok(Peek::Missing) => Some(Err(Error::Unknown)),
            Ok(Peek::NotLive) => None,
            Err(e) => Some(Err(e.into())),
        }
    }

    /// Reports a refusal [`Self::shown`] found, and hands it back.
    #[cold]
    pub(crate) fn refused(&self, key: &StoreKey, err: Error) -> Error {
        match &err {
            // Strict mode: an ID we did not issue is refused, never
            // adopted.
            Error::Unknown => self.core.emit(Event::Rejected {
                kind: RejectKind::Unknown,
                session: Some(key.fingerprint()),
            }),
            Error::AbsoluteExpired { .. } | Error::IdleExpired { .. } => {
                self.core.report_expired(key, &err);
            }
            _ => {}
        }
        err
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

    /// The load by way of [`Self::resolve`]; `key` is `id`'s.
    pub(crate) async fn load_resolved(
        &self,
        id: SessionId,
        key: StoreKey,
        now: Timestamp,
    ) -> Result<Loaded, Error> {
        let (session, reissued) = self.resolve(id, key, now).await?;
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
    /// and, if a rotation was followed, the ID the client should now hold
    /// (the last one followed).
    async fn resolve(
        &self,
        mut id: SessionId,
        mut key: StoreKey,
        now: Timestamp,
    ) -> Result<(Session, Option<SessionId>), Error> {
        let mut followed = None;
        // Each pass reads one record: again after a lost race, or the next
        // link after a followed rotation, up to `MAX_CHAIN` more.
        for depth in 0..=MAX_CHAIN {
            let Some(record) = self.store.get(&key).await? else {
                return Err(self
                    .core
                    .reject(RejectKind::Unknown, Some(&key), Error::Unknown));
            };
            match self.core.judge(record, now) {
                Verdict::Unknown => {
                    return Err(self
                        .core
                        .reject(RejectKind::Unknown, Some(&key), Error::Unknown));
                }
                Verdict::Expired(err) => {
                    self.core.report_expired(&key, &err);
                    return Err(err);
                }
                Verdict::Live {
                    version,
                    mut live,
                    touch,
                } => {
                    if let Some(expires) = touch {
                        match self.store.touch(&key, now, expires).await {
                            Ok(true) => live.last_seen = now,
                            // A touch that finds the record gone or retired
                            // means a concurrent logout or rotation: resolve
                            // again to report the state that won.
                            Ok(false) if depth < MAX_CHAIN => continue,
                            Ok(false) => return Err(Error::Conflict),
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
                    return Ok((self.to_session(Some(id), key, version, live), followed));
                }
                Verdict::Superseded => {
                    return Err(self.core.reject(
                        RejectKind::Superseded,
                        Some(&key),
                        Error::Superseded,
                    ));
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
                    let sealed = sealed.ok_or_else(|| {
                        corrupt("a routine rotation without its sealed successor")
                    })?;
                    let next = id.open(&sealed);
                    if next.store_key() != successor {
                        return Err(corrupt("sealed successor does not match its key"));
                    }
                    if let Some(pending) = pending
                        && !self
                            .roll_forward(&key, version, &successor, &pending, now)
                            .await?
                    {
                        // The chain changed under us (a logout ended it):
                        // report the state that won.
                        continue;
                    }
                    followed = Some(next.clone());
                    (id, key) = (next, successor);
                }
                // A chain longer than a retired token may follow is reuse.
                Verdict::Follow { successor, .. } => {
                    let revoke =
                        self.core.policy.reuse_response() == ReuseResponse::RevokeSuccessor;
                    return self.reused(&key, successor, revoke, now).await;
                }
                Verdict::Reused { successor, revoke } => {
                    return self.reused(&key, successor, revoke, now).await;
                }
                Verdict::Ended(reason) => return Err(Error::Terminated { reason }),
            }
        }
        // Every pass at `MAX_CHAIN` returns; a guard, not a path.
        Err(Error::Conflict)
    }

    /// Answers reuse of the retired `key`: ends its successor's chain if
    /// `revoke`, reports it, and refuses.
    async fn reused(
        &self,
        key: &StoreKey,
        successor: StoreKey,
        revoke: bool,
        now: Timestamp,
    ) -> Result<(Session, Option<SessionId>), Error> {
        let successor_revoked = revoke && self.revoke_chain(successor, now).await?;
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
    async fn write_error(&self, session: &Session, e: StoreError, now: Timestamp) -> Error {
        match e {
            StoreError::NotFound => Error::Unknown,
            StoreError::Conflict => match self.store.get(&session.key).await {
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

    pub(crate) async fn save_at(
        &self,
        session: &mut Session,
        now: Timestamp,
    ) -> Result<Option<Issued>, Error> {
        if !session.is_modified() {
            return Ok(None);
        }
        self.check_live(session, now)?;
        let live = self.live_from(session, now);
        self.check_size(&live.data)?;
        let record = self.live_record(session.version + 1, live);
        if let Err(e) = self
            .store
            .replace(&session.key, session.version, &record)
            .await
        {
            return Err(self.write_error(session, e, now).await);
        }
        session.version += 1;
        session.last_seen = now;
        session.idle_deadline = self.core.idle_deadline(now, session.absolute_deadline);
        session.data.saved_as(written_data(record));
        Ok(None)
    }

    /// Rotation shared by `rotate`, `change_privilege`, `login` and
    /// `reauthenticate`: `session` as modified by the caller is written
    /// under a fresh ID, with what `rotation` changes, and the old ID is
    /// retired. The copy is checked as it is, before `rotation` applies.
    async fn rotate_inner(
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
        if let Err(e) = self
            .store
            .rotate(&session.key, session.version, &retired, &new_key, &record)
            .await
        {
            return Err(self.write_error(session, e, now).await);
        }
        session.id = Some(new_id.clone());
        session.key = new_key;
        session.version = 1;
        session.last_seen = now;
        session.auth_at = auth_at;
        session.absolute_deadline = absolute;
        session.idle_deadline = self.core.idle_deadline(now, absolute);
        session.data.saved_as(written_data(record));
        Ok(new_id)
    }

    /// A rotation (`Routine` or `Privilege`), reported.
    pub(crate) async fn rotate_and_report(
        &self,
        session: &mut Session,
        now: Timestamp,
        rotation: Rotation,
    ) -> Result<Issued, Error> {
        let from = session.fingerprint();
        let id = self.rotate_inner(session, now, rotation).await?;
        self.core.emit(Event::Rotated {
            from,
            to: session.key.fingerprint(),
        });
        Ok(self.issued(&id, &session.key, now, session.absolute_deadline, now))
    }

    pub(crate) async fn login_at(
        &self,
        session: &mut Session,
        user: &str,
        now: Timestamp,
    ) -> Result<Issued, Error> {
        self.core.check_labels(Some(user), None)?;
        let from = session.fingerprint();
        match self.core.login_of(session, user) {
            Login::Replace { fresh } => {
                self.end(&session.key, EndReason::Replaced, now).await?;
                let issued = self.create_at(fresh, now).await?;
                *session = self.load_when(issued.token(), || now).await?.session;
                self.core.report_login(from, issued.fingerprint(), user);
                Ok(issued)
            }
            Login::Rebind => {
                self.make_room_for(user, Some(&session.key), now).await?;
                // `Core::bind_then`, with an awaited rotation: on failure
                // the copy is put back as it was.
                let before = self.core.bind(session, user, now);
                let id = match self.rotate_inner(session, now, Rotation::Privilege).await {
                    Ok(id) => id,
                    Err(e) => {
                        before.restore(session);
                        return Err(e);
                    }
                };
                self.core
                    .report_login(from, session.key.fingerprint(), user);
                Ok(self.issued(&id, &session.key, now, session.absolute_deadline, now))
            }
        }
    }

    pub(crate) async fn reauthenticate_at(
        &self,
        session: &mut Session,
        now: Timestamp,
    ) -> Result<Issued, Error> {
        let rotation = self.core.reauthentication_of(session, now)?;
        let from = session.fingerprint();
        let id = self.rotate_inner(session, now, rotation).await?;
        if let Some(user) = session.user() {
            self.core
                .report_login(from, session.key.fingerprint(), user);
        }
        Ok(self.issued(&id, &session.key, now, session.absolute_deadline, now))
    }

    pub(crate) async fn terminate_at(
        &self,
        session: &Session,
        now: Timestamp,
    ) -> Result<(), Error> {
        self.end(&session.key, EndReason::Logout, now).await?;
        Ok(())
    }

    pub(crate) async fn terminate_all_at(
        &self,
        user: &str,
        except: Option<&Session>,
        now: Timestamp,
    ) -> Result<Option<usize>, Error> {
        let mut n = 0;
        for (key, record) in self.store.sessions_of(user).await? {
            if except.is_some_and(|s| s.key == key) || record.user() != Some(user) {
                continue;
            }
            if self.end(&key, EndReason::LogoutAll, now).await? {
                n += 1;
            }
        }
        Ok(Some(n))
    }

    /// Loads, applies `f`, saves; on a version conflict waits a jittered
    /// backoff (`Driver::pause`), loads again and re-applies `f`, up to
    /// [`UPDATE_ATTEMPTS`] times.
    pub(crate) async fn update<F, R>(
        &self,
        token: &str,
        mut f: F,
    ) -> Result<(R, Session, Option<Issued>), Error>
    where
        F: FnMut(&mut Session) -> R,
    {
        for attempt in 1..=UPDATE_ATTEMPTS {
            if attempt > 1 {
                self.store.pause(backoff(attempt - 1)).await;
            }
            let now = self.core.now();
            let Loaded {
                mut session,
                reissue,
            } = self.load_when(token, || now).await?;
            let r = f(&mut session);
            match self.save_at(&mut session, now).await {
                Ok(_) => return Ok((r, session, reissue)),
                Err(Error::Conflict) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::Conflict)
    }

    pub(crate) async fn sessions_of(&self, user: &str) -> Result<Vec<SessionInfo>, Error> {
        let now = self.core.now();
        let mut out: Vec<SessionInfo> = self
            .store
            .sessions_of(user)
            .await?
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

    pub(crate) async fn terminate_by_fingerprint(
        &self,
        user: &str,
        fingerprint: Fingerprint,
    ) -> Result<bool, Error> {
        let now = self.core.now();
        for (key, record) in self.store.sessions_of(user).await? {
            if key.fingerprint() == fingerprint && record.user() == Some(user) {
                return self.end(&key, EndReason::Logout, now).await;
            }
        }
        Ok(false)
    }

    pub(crate) async fn purge_expired(&self) -> Result<usize, Error> {
        Ok(self.store.purge_expired(self.core.now()).await?)
    }

    // The rotation chain: ending it, rolling a crashed rotation forward.

    /// Writes a rotation's successor from its retired record's `pending`
    /// intent if a crash (or a failed write) left it unwritten, so the old
    /// token resolves as if the rotation had completed. Returns whether the
    /// rotation stands; `false` if the retired record changed meanwhile.
    async fn roll_forward(
        &self,
        old: &StoreKey,
        retired_version: u64,
        successor: &StoreKey,
        pending: &Record,
        now: Timestamp,
    ) -> Result<bool, Error> {
        if self.store.get(successor).await?.is_some() {
            return Ok(true);
        }
        // A successor that would already be dead is not brought back: it
        // may have lived, expired and been purged.
        if pending.expires_at <= now || !pending.is_live() {
            return Ok(true);
        }
        Ok(
            driver::complete_rotation(&self.store, old, retired_version, successor, pending)
                .await?,
        )
    }

    /// Ends the live session at the end of a rotation chain starting at
    /// `key` (reuse detected). Returns whether one was ended.
    async fn revoke_chain(&self, key: StoreKey, now: Timestamp) -> Result<bool, Error> {
        self.end(&key, EndReason::ReuseDetected, now).await
    }

    /// Ends the session whose chain passes through `key`: the live tip,
    /// then every retired link from `key` on, newest first, each rewritten
    /// as ended (so no old token follows it and no pending successor can be
    /// rolled forward from it). Returns whether a live session was ended.
    ///
    /// The order makes a retry after a failure anywhere find what is left:
    /// the walk to the tip only reads, and a link is rewritten only once
    /// everything after it has ended. A link's successor is looked at again
    /// after the link is written: a rotation made of single-key writes reads
    /// its old record after writing the successor, so one of the two sees
    /// the other (see `driver::complete_rotation`), and a successor written
    /// meanwhile is ended too.
    pub(crate) async fn end(
        &self,
        key: &StoreKey,
        reason: EndReason,
        now: Timestamp,
    ) -> Result<bool, Error> {
        let mut steps = EndSteps {
            engine: self,
            reason,
            now,
        };
        lifecycle::end_chain_with(*key, &mut steps).await
    }

    /// [`Self::end`], boxed: the recursion through `after_link` needs a
    /// future of known size.
    fn end_boxed(
        &self,
        key: StoreKey,
        reason: EndReason,
        now: Timestamp,
    ) -> Pin<Box<dyn Future<Output = Result<bool, Error>> + Send + '_>> {
        Box::pin(async move { self.end(&key, reason, now).await })
    }

    /// Ends one record of a chain, retrying conflicts: a live record
    /// always, a retired link only if `retire_links` (otherwise it is only
    /// read, and its successor returned).
    async fn end_link(
        &self,
        key: StoreKey,
        reason: EndReason,
        now: Timestamp,
        retire_links: bool,
    ) -> Result<Link, Error> {
        for _ in 0..MAX_RETRIES {
            let Some(record) = self.store.get(&key).await? else {
                return Ok(Link::Done);
            };
            let (next, keep_until) = match &record.state {
                RecordState::Live(live) => (Link::Tip, live.absolute_deadline),
                RecordState::Rotated { successor, .. } if !retire_links => {
                    return Ok(Link::Rotated(*successor));
                }
                RecordState::Rotated { successor, .. } => {
                    (Link::Rotated(*successor), record.expires_at)
                }
                _ => return Ok(Link::Done),
            };
            let ended = Record {
                version: record.version + 1,
                // Kept until the session would have died anyway, so a later
                // load can say "terminated" rather than "unknown".
                expires_at: keep_until,
                state: RecordState::Ended { reason, at: now },
            };
            match self.store.replace(&key, record.version, &ended).await {
                Ok(()) => {
                    if next == Link::Tip {
                        self.core.emit(Event::Terminated {
                            session: key.fingerprint(),
                            reason,
                        });
                    }
                    return Ok(next);
                }
                Err(StoreError::Conflict) => continue,
                Err(StoreError::NotFound) => return Ok(Link::Done),
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Conflict)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_backoff_doubles_from_one_millisecond_to_thirty_two() {
        let ms: Vec<u128> = (1..=8).map(|r| backoff_ceiling(r).as_millis()).collect();
        assert_eq!(ms, [1, 2, 4, 8, 16, 32, 32, 32]);
        for retry in 1..=8 {
            assert!(backoff(retry) <= backoff_ceiling(retry));
        }
    }
}
