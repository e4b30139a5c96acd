//! `sessions`, `revoke` and `purge`: the commands that work on any store.

use latchkey::store::{Record, RecordState};
use latchkey::{
    Clock as _, Fingerprint, SessionManager as _, Store, StoreKey, StoreManager, SystemClock,
    Timestamp,
};
use serde_json::json;

use crate::error::Failure;
use crate::exit;
use crate::output::{self, safe};
use crate::scan;
use crate::store::{OpenStore, StoreSpec};

/// One live session of a user, as the store holds it.
struct Live {
    key: StoreKey,
    created_at: Timestamp,
    last_seen: Timestamp,
    auth_at: Option<Timestamp>,
    /// The record's own expiry: the idle deadline the application's policy
    /// set at its last write (so the listing needs no copy of that policy).
    idle_deadline: Timestamp,
    absolute_deadline: Timestamp,
    device: Option<String>,
}

/// `user`'s live sessions at `now`, oldest first.
///
/// Read from the store directly rather than through
/// `StoreManager::sessions_of`: that one judges expiry by the manager's
/// policy, which the tool does not know. A record's `expires_at` is the
/// idle deadline the application's own policy wrote.
fn live_sessions(store: &dyn Store, user: &str, now: Timestamp) -> Result<Vec<Live>, Failure> {
    let records = store
        .sessions_of(user)
        .map_err(|e| Failure::store(format!("cannot list the sessions of {}", safe(user)), e))?;
    let mut out: Vec<Live> = records
        .into_iter()
        .filter_map(|(key, r)| {
            let Record {
                expires_at, state, ..
            } = r;
            match state {
                RecordState::Live(s)
                    if s.user.as_deref() == Some(user)
                        && now < expires_at
                        && now < s.absolute_deadline =>
                {
                    Some(Live {
                        key,
                        created_at: s.created_at,
                        last_seen: s.last_seen,
                        auth_at: s.auth_at,
                        idle_deadline: expires_at.min(s.absolute_deadline),
                        absolute_deadline: s.absolute_deadline,
                        device: s.device,
                    })
                }
                _ => None,
            }
        })
        .collect();
    out.sort_by_key(|s| (s.created_at, s.key));
    Ok(out)
}

/// `latchkey sessions`.
pub(crate) fn list(spec: &StoreSpec, user: &str, json: bool) -> Result<u8, Failure> {
    let store = spec.open()?.into_dyn();
    let now = SystemClock.now();
    let sessions = live_sessions(&*store, user, now)?;
    if json {
        let list: Vec<_> = sessions
            .iter()
            .map(|s| {
                json!({
                    "fingerprint": s.key.fingerprint().to_string(),
                    "store_key": s.key.to_hex(),
                    "device": s.device,
                    "created_at": output::time(s.created_at),
                    "last_seen": output::time(s.last_seen),
                    "authenticated_at": s.auth_at.map(output::time),
                    "idle_deadline": output::time(s.idle_deadline),
                    "absolute_deadline": output::time(s.absolute_deadline),
                })
            })
            .collect();
        output::json(&json!({ "user": user, "sessions": list }));
    } else if sessions.is_empty() {
        println!("no live sessions for {}", safe(user));
    } else {
        let rows: Vec<Vec<String>> = sessions
            .iter()
            .map(|s| {
                vec![
                    s.key.fingerprint().to_string(),
                    s.device.as_deref().map_or_else(|| "-".to_owned(), safe),
                    output::time(s.created_at),
                    output::time(s.last_seen),
                    output::time(s.idle_deadline),
                    output::time(s.absolute_deadline),
                ]
            })
            .collect();
        output::table(
            &[
                "FINGERPRINT",
                "DEVICE",
                "CREATED",
                "LAST SEEN",
                "IDLE DEADLINE",
                "ABSOLUTE DEADLINE",
            ],
            &rows,
        );
    }
    Ok(exit::OK)
}

fn parse_fingerprint(text: &str) -> Result<Fingerprint, Failure> {
    Fingerprint::from_hex(text).ok_or_else(|| {
        Failure::Usage("a fingerprint is 12 hex digits, as `latchkey sessions` shows".into())
    })
}

/// `latchkey revoke`.
pub(crate) fn revoke(
    spec: &StoreSpec,
    fingerprint: Option<&str>,
    user: Option<&str>,
    except: Option<&str>,
    json: bool,
) -> Result<u8, Failure> {
    let fingerprint = fingerprint.map(parse_fingerprint).transpose()?;
    let except = except.map(parse_fingerprint).transpose()?;
    let open = spec.open()?;
    match (fingerprint, user) {
        (Some(fp), user) => {
            let user = match user {
                Some(user) => user.to_owned(),
                None => owner_of(&open, spec, fp)?,
            };
            let manager = StoreManager::new(open.into_dyn());
            let ended = manager
                .terminate_by_fingerprint(&user, fp)
                .map_err(|e| Failure::from_latchkey("cannot end the session", e))?;
            if !ended {
                return Err(Failure::NotFound(format!(
                    "no live session {fp} of {} in {}",
                    safe(&user),
                    spec.describe()
                )));
            }
            if json {
                output::json(&json!({ "user": user, "ended": [fp.to_string()] }));
            } else {
                println!("ended session {fp} of {}", safe(&user));
            }
            Ok(exit::OK)
        }
        (None, Some(user)) => {
            let now = SystemClock.now();
            let manager = StoreManager::new(open.into_dyn());
            let live = live_sessions(manager.store().as_ref(), user, now)?;
            if let Some(keep) = except
                && !live.iter().any(|s| s.key.fingerprint() == keep)
            {
                // A mistyped --except must not end the session it meant to
                // keep: end nothing, say so.
                return Err(Failure::NotFound(format!(
                    "{} has no live session {keep} to keep; nothing was ended",
                    safe(user)
                )));
            }
            let mut ended = Vec::new();
            match except {
                None => {
                    // The library's logout-everywhere, exactly as an
                    // application would call it.
                    let before: Vec<_> = live.iter().map(|s| s.key.fingerprint()).collect();
                    manager
                        .terminate_all(user, None)
                        .map_err(|e| Failure::from_latchkey("cannot end the sessions", e))?;
                    ended = before;
                }
                Some(keep) => {
                    // `terminate_all` can keep only a loaded `Session`, not a
                    // fingerprint: end the others one by one.
                    for s in live.iter().filter(|s| s.key.fingerprint() != keep) {
                        let fp = s.key.fingerprint();
                        if manager
                            .terminate_by_fingerprint(user, fp)
                            .map_err(|e| Failure::from_latchkey("cannot end a session", e))?
                        {
                            ended.push(fp);
                        }
                    }
                }
            }
            if json {
                let ended: Vec<String> = ended.iter().map(ToString::to_string).collect();
                output::json(&json!({
                    "user": user,
                    "ended": ended,
                    "kept": except.map(|k| k.to_string()),
                }));
            } else {
                println!("ended {} session(s) of {}", ended.len(), safe(user));
                for fp in &ended {
                    println!("  {fp}");
                }
                if let Some(keep) = except {
                    println!("kept {keep}");
                }
            }
            Ok(exit::OK)
        }
        (None, None) => Err(Failure::Usage("give --fingerprint or --user".into())),
    }
}

/// The user a session named by fingerprint belongs to, found by reading the
/// file store's directory (other stores cannot be searched by fingerprint).
fn owner_of(open: &OpenStore, spec: &StoreSpec, fp: Fingerprint) -> Result<String, Failure> {
    let OpenStore::File(store) = open else {
        return Err(Failure::Usage(format!(
            "{} cannot be searched by fingerprint: give --user too",
            spec.describe()
        )));
    };
    let found = scan::find_by_fingerprint(store.path(), fp)?;
    let mut users = Vec::new();
    let mut states = Vec::new();
    for record in found {
        match &record.state {
            RecordState::Live(s) => match &s.user {
                Some(u) => users.push(u.clone()),
                None => states.push("anonymous (bound to no user; end it from the application)"),
            },
            RecordState::Rotated { .. } => states.push("retired by rotation"),
            RecordState::Ended { .. } => states.push("already ended"),
            _ => states.push("not live"),
        }
    }
    users.dedup();
    match users.as_slice() {
        [user] => Ok(user.clone()),
        [] if states.is_empty() => Err(Failure::NotFound(format!(
            "no session {fp} in {}",
            spec.describe()
        ))),
        [] => Err(Failure::NotFound(format!(
            "session {fp} is {}; nothing was ended",
            states.join(", ")
        ))),
        _ => Err(Failure::Usage(format!(
            "fingerprint {fp} names sessions of several users: give --user"
        ))),
    }
}

/// `latchkey purge`.
pub(crate) fn purge(spec: &StoreSpec, json: bool) -> Result<u8, Failure> {
    let now = SystemClock.now();
    match spec.open()? {
        OpenStore::File(store) => {
            let report = store
                .purge_expired_report(now)
                .map_err(|e| Failure::store(format!("cannot purge {}", spec.describe()), e))?;
            if json {
                let skips: Vec<_> = report
                    .skips()
                    .iter()
                    .map(|s| {
                        json!({
                            "entry": s.entry().to_string(),
                            "reason": s.reason().to_string(),
                            "moved_aside": s.moved_aside(),
                        })
                    })
                    .collect();
                output::json(&json!({
                    "removed": report.removed(),
                    "skipped": report.skipped(),
                    "skips": skips,
                    "unlisted": report.unlisted(),
                }));
            } else {
                println!("{report}");
                for skip in report.skips() {
                    println!("  skipped {skip}");
                }
                if report.unlisted() > 0 {
                    println!("  … and {} more not listed", report.unlisted());
                }
            }
        }
        other => {
            let removed = other
                .into_dyn()
                .purge_expired(now)
                .map_err(|e| Failure::store(format!("cannot purge {}", spec.describe()), e))?;
            if json {
                output::json(&json!({ "removed": removed, "skipped": 0, "skips": [] }));
            } else {
                println!("removed {removed} expired records");
            }
        }
    }
    Ok(exit::OK)
}
