//! The ticket revocation protocol: how a [`TicketManager`](super::TicketManager)
//! records rotations, ends chains and cuts off a user, in any [`Store`], as
//! ordinary [`Record`]s. The layout is specified in `docs/TICKET_FORMAT.md`
//! ("Revocation records"); the rules are those of [`crate::lifecycle`],
//! with a ticket's session key in the part of a server-side store key and
//! a key with no entry standing for a live ticket.

use sha2::{Digest as _, Sha256};

use crate::clock::Timestamp;
use crate::error::Error;
use crate::id::StoreKey;
use crate::lifecycle::{self, Link};
use crate::store::{EndReason, Record, RecordState, Store, StoreError};

/// How many times a revocation write retries a version conflict.
const MAX_RETRIES: usize = 8;

/// The label hashed with a user name to find the user's revocation cutoff.
const USER_CUTOFF_LABEL: &[u8] = b"latchkey/v1/user-cutoff\0";

/// Where a user's revocation cutoff is kept: SHA-256 of a label and the user
/// name, so it cannot collide with a session's key (a hash of 32 random
/// bytes) and the store never sees the name in a key.
pub(super) fn user_cutoff_key(user: &str) -> StoreKey {
    StoreKey::from_bytes(
        Sha256::new()
            .chain_update(USER_CUTOFF_LABEL)
            .chain_update(user.as_bytes())
            .finalize()
            .into(),
    )
}

/// Records `key` as retired by rotation to `successor`. Exactly one
/// rotation of a ticket wins: a second one from the same ticket (a stale
/// copy) finds the first one's record and is [`Error::Conflict`]; an ended
/// ticket is [`Error::Terminated`].
pub(super) fn retire(
    store: &dyn Store,
    key: &StoreKey,
    successor: &StoreKey,
    at: Timestamp,
    grace_until: Timestamp,
    privilege_change: bool,
    keep_until: Timestamp,
) -> Result<(), Error> {
    let record = Record {
        version: 1,
        expires_at: keep_until,
        state: RecordState::Rotated {
            successor: *successor,
            sealed_successor: None,
            at,
            grace_until,
            privilege_change,
            pending: None,
        },
    };
    match store.insert(key, &record) {
        Ok(()) => Ok(()),
        Err(StoreError::Exists) => match store.get(key)?.map(|r| r.state) {
            Some(RecordState::Ended { reason, at: ended }) if ended <= at => {
                Err(Error::Terminated { reason })
            }
            _ => Err(Error::Conflict),
        },
        Err(e) => Err(e.into()),
    }
}

/// How the chain from `key` on ends, if it has: the reason of the first
/// ended link in force at `now`. `None` if its tip is live.
pub(super) fn chain_end(
    store: &dyn Store,
    key: &StoreKey,
    now: Timestamp,
) -> Result<Option<EndReason>, Error> {
    let mut key = *key;
    for _ in 0..lifecycle::MAX_CHAIN_WALK {
        match store.get(&key)?.map(|r| r.state) {
            Some(RecordState::Rotated { successor, .. }) => key = successor,
            Some(RecordState::Ended { reason, at }) if at <= now => return Ok(Some(reason)),
            _ => return Ok(None),
        }
    }
    Err(Error::Conflict)
}

/// Ends the ticket session whose chain passes through `key`: the live tip
/// (a key with no entry) gets an `Ended` entry, then every retired link
/// from `key` on, newest first, becomes one. The walk to the tip only
/// reads, so a retry after a failure anywhere finds what is left, as the
/// server-side manager's does. Returns whether a live tip was ended (false
/// if the chain had ended already).
pub(super) fn end_chain(
    store: &dyn Store,
    key: &StoreKey,
    reason: EndReason,
    now: Timestamp,
    keep_until: Timestamp,
) -> Result<bool, Error> {
    // A ticket rotation is one insert-if-absent, never half done: no
    // successor needs a second look.
    lifecycle::end_chain(
        *key,
        |link, retire| end_link(store, link, reason, now, keep_until, retire),
        |_| Ok(false),
    )
}

/// Ends one key of a ticket chain, retrying conflicts: the tip always, a
/// retired link only if `retire_links` (otherwise it is only read).
pub(super) fn end_link(
    store: &dyn Store,
    key: &StoreKey,
    reason: EndReason,
    now: Timestamp,
    keep_until: Timestamp,
    retire_links: bool,
) -> Result<Link, Error> {
    let ended = |version: u64, expires_at: Timestamp| Record {
        version,
        expires_at,
        state: RecordState::Ended { reason, at: now },
    };
    for _ in 0..MAX_RETRIES {
        // No entry: the live tip. Insert-if-absent races a rotation's
        // insert of its retired entry, and exactly one wins.
        match store.insert(key, &ended(1, keep_until)) {
            Ok(()) => return Ok(Link::Tip),
            Err(StoreError::Exists) => {}
            Err(e) => return Err(e.into()),
        }
        let Some(old) = store.get(key)? else {
            continue; // purged meanwhile: insert again
        };
        let found = match old.state {
            RecordState::Rotated { successor, .. } if !retire_links => {
                return Ok(Link::Rotated(successor));
            }
            RecordState::Rotated { successor, .. } => Link::Rotated(successor),
            // Ended already, in force: nothing more to end.
            RecordState::Ended { at, .. } if at <= now => return Ok(Link::Done),
            // A legacy entry taking effect later: end it now.
            _ => Link::Tip,
        };
        let expires_at = old.expires_at.max(keep_until);
        match store.replace(key, old.version, &ended(old.version + 1, expires_at)) {
            Ok(()) => return Ok(found),
            Err(StoreError::Conflict | StoreError::NotFound) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::Conflict)
}

/// Writes an `Ended` revocation record, or strengthens an existing one when
/// `stronger(old_at, new_at)`. Retries version conflicts.
pub(super) fn write_revocation(
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
