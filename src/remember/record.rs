//! How remember-me tokens and cutoffs are kept as ordinary [`Record`]s in
//! any [`Store`]. The layout is described in the module docs of
//! [`crate::remember`] ("Storage").

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::token::RAW_LEN;
use crate::clock::Timestamp;
use crate::data::SessionData;
use crate::error::Error;
use crate::id::StoreKey;
use crate::store::{EndReason, LiveSession, Record, RecordState, Store, StoreError};

/// How many times a cutoff write retries a version conflict.
const MAX_RETRIES: usize = 8;

/// The `kind` a token record's data carries: what it is, and its version.
const KIND: &str = "latchkey.remember-me/1";

/// A token's state, as its record's data holds it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct TokenState {
    /// Always [`KIND`]: a record under a remember-me key without it is
    /// corrupt, not a token.
    pub(crate) kind: String,
    /// The user the token logs in.
    pub(crate) user: String,
    /// SHA-256 of a label and the verifier (64 hex digits).
    pub(crate) verifier: Digest,
    /// The password login the token's series started from: every
    /// replacement keeps it, the cutoff compares against it, and a session
    /// the token creates reports it.
    pub(crate) authenticated_at: Timestamp,
    /// When this token was issued.
    pub(crate) issued_at: Timestamp,
    /// When the series ends: `authenticated_at` plus the lifetime at the
    /// time, kept by every replacement.
    pub(crate) expires_at: Timestamp,
    /// Set once the token has been used: a used token never logs in again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) used: Option<Used>,
}

/// What using a token left in its record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Used {
    /// When it was used.
    pub(crate) at: Timestamp,
    /// Until then, presenting it again is a request that raced the use
    /// (another tab), not theft.
    pub(crate) grace_until: Timestamp,
    /// The replacement's store key.
    pub(crate) successor: StoreKey,
    /// The replacement token sealed with this one (see `Secret::seal`), so
    /// that within the grace window a racing request is handed the
    /// replacement. Opening it needs this token, which the store never
    /// holds.
    pub(crate) sealed: Sealed,
}

/// What a record under a remember-me key says.
#[derive(Debug)]
pub(crate) enum Stored {
    /// A token, unused or used.
    Token(TokenState),
    /// A forgotten token (logout on that device): refused, no alarm.
    Ended {
        /// Why.
        reason: EndReason,
        /// When.
        at: Timestamp,
    },
}

impl TokenState {
    /// A fresh, unused token of a series.
    pub(crate) fn fresh(
        user: &str,
        verifier: [u8; 32],
        authenticated_at: Timestamp,
        issued_at: Timestamp,
        expires_at: Timestamp,
    ) -> TokenState {
        TokenState {
            kind: KIND.to_owned(),
            user: user.to_owned(),
            verifier: Digest(verifier),
            authenticated_at,
            issued_at,
            expires_at,
            used: None,
        }
    }

    /// The record that keeps this state at `version`: a live record bound
    /// to no user, so it is never listed by [`Store::sessions_of`] and no
    /// session manager ever counts or ends it; the state is its data.
    pub(crate) fn to_record(&self, version: u64) -> Result<Record, Error> {
        let text = serde_json::to_string(self).map_err(|source| Error::Data {
            key: KIND.to_owned(),
            source,
        })?;
        Ok(Record {
            version,
            // Used records are kept as long as the series could be
            // presented: reuse of any of them until then is theft.
            expires_at: self.expires_at,
            state: RecordState::Live(LiveSession {
                created_at: self.issued_at,
                last_seen: self.used.as_ref().map_or(self.issued_at, |u| u.at),
                auth_at: Some(self.authenticated_at),
                absolute_deadline: self.expires_at,
                user: None,
                device: None,
                data: SessionData::from_encoded(Arc::from(text)),
            }),
        })
    }
}

/// Reads the record under a remember-me `key`.
///
/// # Errors
/// [`StoreError::Corrupt`] for a record that is not one this module wrote.
pub(crate) fn decode(key: &StoreKey, record: &Record) -> Result<Stored, StoreError> {
    let corrupt = |why: Box<dyn std::error::Error + Send + Sync>| StoreError::Corrupt {
        key: key.fingerprint(),
        source: why,
    };
    match &record.state {
        RecordState::Live(live) if live.user.is_none() => {
            let state: TokenState = serde_json::from_str(&live.data.encoded_text())
                .map_err(|e| corrupt(Box::new(e)))?;
            if state.kind != KIND {
                return Err(corrupt("not a remember-me token record".into()));
            }
            Ok(Stored::Token(state))
        }
        RecordState::Ended { reason, at } => Ok(Stored::Ended {
            reason: *reason,
            at: *at,
        }),
        _ => Err(corrupt("not a remember-me token record".into())),
    }
}

/// The record that ends a token: logged out on its device.
pub(crate) fn ended(version: u64, expires_at: Timestamp, at: Timestamp) -> Record {
    Record {
        version,
        expires_at,
        state: RecordState::Ended {
            reason: EndReason::Logout,
            at,
        },
    }
}

/// The user's cutoff, if any: tokens of a series started before `at` are
/// refused.
///
/// # Errors
/// Store errors; [`StoreError::Corrupt`] for a record that is not a cutoff.
pub(crate) fn read_cutoff(
    store: &dyn Store,
    key: &StoreKey,
) -> Result<Option<(EndReason, Timestamp)>, StoreError> {
    match store.get(key)? {
        None => Ok(None),
        Some(Record {
            state: RecordState::Ended { reason, at },
            ..
        }) => Ok(Some((reason, at))),
        Some(_) => Err(StoreError::Corrupt {
            key: key.fingerprint(),
            source: "not a remember-me cutoff record".into(),
        }),
    }
}

/// Writes the user's cutoff at `at`, or moves an earlier one up to it (a
/// later cutoff covers everything an earlier one did). Kept until
/// `keep_until`. Retries version conflicts, as the ticket manager's
/// revocation writes do.
pub(crate) fn write_cutoff(
    store: &dyn Store,
    key: &StoreKey,
    reason: EndReason,
    at: Timestamp,
    keep_until: Timestamp,
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
        let (reason, at) = match old.state {
            RecordState::Ended {
                reason: old_reason,
                at: old_at,
            } if old_at >= at => {
                if old.expires_at >= keep_until {
                    return Ok(()); // already covers this one
                }
                (old_reason, old_at)
            }
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

/// 32 bytes written as 64 hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Digest(pub(crate) [u8; 32]);

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::id::hex(&self.0))
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Digest, D::Error> {
        // Same text form as a store key.
        let key = StoreKey::deserialize(d)?;
        Ok(Digest(*key.as_bytes()))
    }
}

/// A sealed replacement token, written as 64 characters of base64url.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Sealed(pub(crate) [u8; RAW_LEN]);

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealed(..)")
    }
}

impl Serialize for Sealed {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&URL_SAFE_NO_PAD.encode(self.0))
    }
}

impl<'de> Deserialize<'de> for Sealed {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Sealed, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        let mut out = [0u8; RAW_LEN];
        match URL_SAFE_NO_PAD.decode_slice(s.as_bytes(), &mut out) {
            Ok(RAW_LEN) if s.len() == RAW_LEN / 3 * 4 => Ok(Sealed(out)),
            _ => Err(serde::de::Error::custom(
                "sealed replacement is not 48 bytes of base64url",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remember::token::Secret;
    use crate::store::memory::MemoryStore;

    const T0: Timestamp = Timestamp::from_unix_millis(1_800_000_000_000);

    #[test]
    fn token_records_round_trip_and_are_bound_to_no_user() {
        let s = Secret::generate();
        let mut state = TokenState::fresh("alice", s.verifier_digest(), T0, T0, T0);
        state.used = Some(Used {
            at: T0,
            grace_until: T0,
            successor: s.key(),
            sealed: Sealed(s.seal(&Secret::generate())),
        });
        let record = state.to_record(3).unwrap();
        assert_eq!(record.user(), None);
        assert_eq!(record.version, 3);
        match decode(&s.key(), &record).unwrap() {
            Stored::Token(back) => assert_eq!(back, state),
            other => panic!("{other:?}"),
        }
        // The data holds the digest of the verifier, never the token.
        let RecordState::Live(live) = &record.state else {
            panic!("not live")
        };
        let text = live.data.encoded_text();
        assert!(!text.contains(&s.encode()[4..]));
        assert!(text.contains(&crate::id::hex(&s.verifier_digest())));
    }

    #[test]
    fn a_foreign_record_under_a_remember_key_is_corrupt() {
        let key = Secret::generate().key();
        let mut record = TokenState::fresh("a", [0; 32], T0, T0, T0)
            .to_record(1)
            .unwrap();
        if let RecordState::Live(live) = &mut record.state {
            live.data = SessionData::from_encoded(Arc::from(r#"{"kind":"other"}"#));
        }
        assert!(decode(&key, &record).unwrap_err().is_corrupt());
    }

    #[test]
    fn cutoffs_only_move_later() {
        let store = MemoryStore::new();
        let key = cutoff_key_for_test();
        let later = T0.saturating_add(std::time::Duration::from_secs(60));
        write_cutoff(&store, &key, EndReason::LogoutAll, later, later).unwrap();
        write_cutoff(&store, &key, EndReason::ReuseDetected, T0, later).unwrap();
        assert_eq!(
            read_cutoff(&store, &key).unwrap(),
            Some((EndReason::LogoutAll, later))
        );
        let latest = later.saturating_add(std::time::Duration::from_secs(60));
        write_cutoff(&store, &key, EndReason::ReuseDetected, latest, latest).unwrap();
        assert_eq!(
            read_cutoff(&store, &key).unwrap(),
            Some((EndReason::ReuseDetected, latest))
        );
    }

    fn cutoff_key_for_test() -> StoreKey {
        crate::remember::token::cutoff_key("alice")
    }
}
