//! The rotation chain of a [`StoreManager`]'s session: ending it whole,
//! and rolling a rotation forward that a crash cut short (the rules and
//! the crash argument are in [`crate::lifecycle`]).

use crate::clock::Timestamp;
use crate::error::Error;
use crate::event::Event;
use crate::id::StoreKey;
use crate::lifecycle::{self, Link};
use crate::store::{EndReason, Record, RecordState, Store, StoreError, complete_rotation};

use super::{MAX_RETRIES, StoreManager};

impl<S: Store> StoreManager<S> {
    /// Writes a rotation's successor from its retired record's `pending`
    /// intent if a crash (or a failed write) left it unwritten, so the old
    /// token resolves as if the rotation had completed. Returns whether the
    /// rotation stands; `false` if the retired record changed meanwhile.
    pub(super) fn roll_forward(
        &self,
        old: &StoreKey,
        retired_version: u64,
        successor: &StoreKey,
        pending: &Record,
        now: Timestamp,
    ) -> Result<bool, Error> {
        if self.store.get(successor)?.is_some() {
            return Ok(true);
        }
        // A successor that would already be dead is not brought back: it
        // may have lived, expired and been purged.
        if pending.expires_at <= now || !pending.is_live() {
            return Ok(true);
        }
        Ok(complete_rotation(
            &self.store,
            old,
            retired_version,
            successor,
            pending,
        )?)
    }

    /// Ends the live session at the end of a rotation chain starting at
    /// `key` (reuse detected). Returns whether one was ended.
    pub(super) fn revoke_chain(&self, key: StoreKey, now: Timestamp) -> Result<bool, Error> {
        self.end(&key, EndReason::ReuseDetected, now)
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
    /// the other (see `complete_rotation`), and a successor written
    /// meanwhile is ended too.
    pub(super) fn end(
        &self,
        key: &StoreKey,
        reason: EndReason,
        now: Timestamp,
    ) -> Result<bool, Error> {
        lifecycle::end_chain(
            *key,
            |link, retire| self.end_link(link, reason, now, retire),
            |successor| {
                if self.store.get(&successor)?.is_some_and(|r| r.is_live()) {
                    self.end(&successor, reason, now)
                } else {
                    Ok(false)
                }
            },
        )
    }

    /// Ends one record of a chain, retrying conflicts: a live record
    /// always, a retired link only if `retire_links` (otherwise it is only
    /// read, and its successor returned).
    fn end_link(
        &self,
        key: &StoreKey,
        reason: EndReason,
        now: Timestamp,
        retire_links: bool,
    ) -> Result<Link, Error> {
        for _ in 0..MAX_RETRIES {
            let Some(record) = self.store.get(key)? else {
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
            match self.store.replace(key, record.version, &ended) {
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
