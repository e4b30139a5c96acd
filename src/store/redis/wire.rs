//! The JSON a Redis store writes for a [`Record`]: the same shape as the
//! record's own serde form (which the file and Postgres stores keep), with
//! short field names where they repeat in every session, so a record costs
//! Redis less memory. The mapping is in the module docs of `store::redis`.
//! [`encode`](super::encode) and [`decode`](super::decode) are its only
//! users.

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::data::SessionData;
use crate::id::{SealedId, StoreKey};
use crate::store::{EndReason, LiveSession, Record, RecordState};

/// A record to write, borrowed. Field order is the order written, which
/// the scripts' head patterns rely on.
#[derive(Serialize)]
pub(super) struct RecordOut<'a> {
    v: u64,
    e: Timestamp,
    s: StateOut<'a>,
    /// The mark of the `replace` that wrote the record (see `LUA_REPLACE`):
    /// last, so a touch, which rewrites the head, keeps it.
    #[serde(skip_serializing_if = "Option::is_none")]
    w: Option<u64>,
}

#[derive(Serialize)]
enum StateOut<'a> {
    #[serde(rename = "live")]
    Live(LiveOut<'a>),
    #[serde(rename = "rotated")]
    Rotated {
        successor: &'a StoreKey,
        #[serde(skip_serializing_if = "Option::is_none")]
        sealed_successor: Option<&'a SealedId>,
        at: Timestamp,
        grace_until: Timestamp,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        privilege_change: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        pending: Option<Box<RecordOut<'a>>>,
    },
    #[serde(rename = "ended")]
    Ended { reason: EndReason, at: Timestamp },
}

#[derive(Serialize)]
struct LiveOut<'a> {
    c: Timestamp,
    l: Timestamp,
    a: Option<Timestamp>,
    d: Timestamp,
    u: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dv: Option<&'a str>,
    data: &'a SessionData,
}

impl<'a> RecordOut<'a> {
    pub(super) fn new(record: &'a Record) -> RecordOut<'a> {
        let s = match &record.state {
            RecordState::Live(live) => StateOut::Live(LiveOut {
                c: live.created_at,
                l: live.last_seen,
                a: live.auth_at,
                d: live.absolute_deadline,
                u: live.user.as_deref(),
                dv: live.device.as_deref(),
                data: &live.data,
            }),
            RecordState::Rotated {
                successor,
                sealed_successor,
                at,
                grace_until,
                privilege_change,
                pending,
            } => StateOut::Rotated {
                successor,
                sealed_successor: sealed_successor.as_ref(),
                at: *at,
                grace_until: *grace_until,
                privilege_change: *privilege_change,
                pending: pending.as_deref().map(|p| Box::new(RecordOut::new(p))),
            },
            RecordState::Ended { reason, at } => StateOut::Ended {
                reason: *reason,
                at: *at,
            },
        };
        RecordOut {
            v: record.version,
            e: record.expires_at,
            s,
            w: None,
        }
    }

    /// The record as a `replace` marked `mark` writes it.
    pub(super) fn marked(record: &'a Record, mark: u64) -> RecordOut<'a> {
        RecordOut {
            w: Some(mark),
            ..RecordOut::new(record)
        }
    }
}

/// A record read back. Unknown fields are refused, as the record's own
/// serde form refuses nothing but is only ever written by this crate.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RecordIn {
    v: u64,
    e: Timestamp,
    s: StateIn,
    /// A `replace`'s mark: only its retry reads it, in Redis.
    #[serde(default, rename = "w")]
    _w: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
enum StateIn {
    #[serde(rename = "live")]
    Live(LiveIn),
    #[serde(rename = "rotated")]
    Rotated {
        successor: StoreKey,
        #[serde(default)]
        sealed_successor: Option<SealedId>,
        at: Timestamp,
        grace_until: Timestamp,
        #[serde(default)]
        privilege_change: bool,
        #[serde(default)]
        pending: Option<Box<RecordIn>>,
    },
    #[serde(rename = "ended")]
    Ended { reason: EndReason, at: Timestamp },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LiveIn {
    c: Timestamp,
    l: Timestamp,
    a: Option<Timestamp>,
    d: Timestamp,
    u: Option<String>,
    #[serde(default)]
    dv: Option<String>,
    data: SessionData,
}

impl From<RecordIn> for Record {
    fn from(w: RecordIn) -> Record {
        let state = match w.s {
            StateIn::Live(live) => RecordState::Live(LiveSession {
                created_at: live.c,
                last_seen: live.l,
                auth_at: live.a,
                absolute_deadline: live.d,
                user: live.u,
                device: live.dv,
                data: live.data,
            }),
            StateIn::Rotated {
                successor,
                sealed_successor,
                at,
                grace_until,
                privilege_change,
                pending,
            } => RecordState::Rotated {
                successor,
                sealed_successor,
                at,
                grace_until,
                privilege_change,
                pending: pending.map(|p| Box::new(Record::from(*p))),
            },
            StateIn::Ended { reason, at } => RecordState::Ended { reason, at },
        };
        Record {
            version: w.v,
            expires_at: w.e,
            state,
        }
    }
}
