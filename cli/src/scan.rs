//! Reading a file store's directory, read-only, by its documented layout
//! (`latchkey::store::file`): the core has no API that walks every record,
//! so `stats`, `check` and `revoke --fingerprint` read the files
//! themselves. Nothing here writes, takes a lock or follows a symlink.
//!
//! ```text
//! DIR/sessions/XX/KEY.session    a record: "latchkey-session 1\n" then JSON
//! DIR/sessions/XX/.KEY.tmp       a write in progress, or left by a crash
//! DIR/users/XX/HASH.user         "latchkey-user-index 1\n" then {"user","keys"}
//! DIR/users/XX/.HASH.tmp
//! DIR/locks/s-00 … s-3f, u-00 … u-0f
//! DIR/corrupt/                   what purge moved aside
//! ```

use std::fs::{self, File};
use std::io::{self, Read as _};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use latchkey::store::file::{DecodeError, decode};
use latchkey::store::{Record, RecordState};
use latchkey::{Clock as _, Fingerprint, StoreKey, SystemClock, Timestamp};
use serde_json::json;
use sha2::{Digest as _, Sha256};

use crate::error::Failure;
use crate::exit;
use crate::output;
use crate::store::StoreSpec;

/// The most a session or index file may hold (the store reads no more).
const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;
/// The first line of a user index file.
pub(crate) const INDEX_HEADER: &str = "latchkey-user-index 1\n";
/// Session lock files `s-00` to `s-3f`, index lock files `u-00` to `u-0f`.
const SESSION_LOCKS: u8 = 64;
const USER_LOCKS: u8 = 16;

/// What reading one file of the store found.
#[derive(Debug)]
pub(crate) enum Read {
    Missing,
    /// A directory, symlink, FIFO, socket or device: never opened.
    NotRegular,
    Bytes(Vec<u8>),
    Io(io::Error),
}

/// Reads a regular file without following a symlink or opening a FIFO:
/// `lstat` first, then `fstat` on the opened file must name the same inode.
pub(crate) fn read_regular(path: &Path) -> Read {
    for _ in 0..8 {
        let named = match fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Read::Missing,
            Err(e) => return Read::Io(e),
        };
        if !named.file_type().is_file() {
            return Read::NotRegular;
        }
        let f = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Read::Missing,
            Err(e) => return Read::Io(e),
        };
        let opened = match f.metadata() {
            Ok(m) => m,
            Err(e) => return Read::Io(e),
        };
        if (opened.dev(), opened.ino()) != (named.dev(), named.ino()) {
            // Renamed over while we looked: a write landing. Look again.
            continue;
        }
        let mut buf = Vec::new();
        return match f.take(MAX_FILE_BYTES + 1).read_to_end(&mut buf) {
            Ok(_) => Read::Bytes(buf),
            Err(e) => Read::Io(e),
        };
    }
    Read::Io(io::Error::new(
        io::ErrorKind::Interrupted,
        "the file kept changing while it was read",
    ))
}

/// A session file's contents.
#[derive(Debug)]
pub(crate) enum Content {
    Record(Box<Record>),
    /// A regular file that does not decode as a record: empty, truncated,
    /// another format version, or too large.
    Corrupt,
    /// A regular file that is not a session file at all (no magic bytes).
    Foreign,
    NotRegular,
    Unreadable(io::Error),
}

/// One `sessions/XX/KEY.session` entry.
#[derive(Debug)]
pub(crate) struct SessionFile {
    pub(crate) rel: String,
    pub(crate) key: StoreKey,
    pub(crate) bytes: u64,
    pub(crate) content: Content,
}

/// A user index file's contents.
#[derive(Debug)]
pub(crate) enum IndexContent {
    Valid { user: String, keys: Vec<StoreKey> },
    Corrupt,
    NotRegular,
    Unreadable(io::Error),
}

/// One `users/XX/HASH.user` entry.
#[derive(Debug)]
pub(crate) struct IndexFile {
    pub(crate) rel: String,
    pub(crate) hash: [u8; 32],
    pub(crate) content: IndexContent,
}

/// Something in the directory that is not what the layout says.
#[derive(Debug)]
pub(crate) struct Oddity {
    pub(crate) rel: String,
    pub(crate) kind: OddityKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OddityKind {
    /// A name the store never uses (an operator's note, a backup): the
    /// store ignores it.
    UnknownEntry,
    /// A store-named file in another key's fan-out directory: never read.
    Misplaced,
    /// A session or index temporary file: a write in progress, or (far
    /// more likely, if it stays) left by a crashed writer.
    OrphanedTemp,
    /// A regular, empty file in `locks/` that is none of the store's lock
    /// files (left by another version, or by hand): no store locks it.
    UnusedLock,
    /// Something other than a regular file at a lock file's name: every
    /// write of that shard fails.
    BadLock,
    /// Something other than a directory where a directory belongs.
    NotADirectory,
    /// A directory that could not be listed.
    Unlistable,
}

/// Everything a walk of the store found.
#[derive(Debug, Default)]
pub(crate) struct Layout {
    pub(crate) sessions: Vec<SessionFile>,
    pub(crate) indexes: Vec<IndexFile>,
    pub(crate) oddities: Vec<Oddity>,
    /// Entries in `corrupt/`, waiting for an operator.
    pub(crate) set_aside: usize,
    /// `sessions/`, `users/` or `locks/` absent.
    pub(crate) missing_dirs: Vec<&'static str>,
}

/// `NAME` as a 64-hex-digit file name with `suffix`, or `.NAME.tmp`:
/// the hash, and whether it is a temporary file.
fn parse_name(name: &str, suffix: &str) -> Option<([u8; 32], bool)> {
    let (stem, temp) = match name.strip_prefix('.').and_then(|n| n.strip_suffix(".tmp")) {
        Some(stem) => (stem, true),
        None => (name.strip_suffix(suffix)?, false),
    };
    let key = StoreKey::from_hex(stem)?;
    // Lowercase only, as the store names its files.
    (key.to_hex() == stem).then_some((*key.as_bytes(), temp))
}

/// Two lowercase hex digits, as fan-out directories are named.
fn fanout_byte(name: &str) -> Option<u8> {
    (name.len() == 2 && name.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')))
        .then(|| u8::from_str_radix(name, 16).ok())
        .flatten()
}

/// The entries of `dir` by name (non-UTF-8 names as unknown entries), or
/// `None` (with an oddity noted) if it cannot be listed.
fn list(dir: &Path, rel: &str, layout: &mut Layout) -> Option<Vec<(String, PathBuf)>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Some(Vec::new()),
        Err(e) => {
            let kind = if e.kind() == io::ErrorKind::NotADirectory {
                OddityKind::NotADirectory
            } else {
                OddityKind::Unlistable
            };
            layout.oddities.push(Oddity {
                rel: rel.to_owned(),
                kind,
            });
            return None;
        }
    };
    let mut out = Vec::new();
    for entry in entries {
        let Ok(entry) = entry else {
            layout.oddities.push(Oddity {
                rel: rel.to_owned(),
                kind: OddityKind::Unlistable,
            });
            break;
        };
        let name = entry.file_name().to_string_lossy().into_owned();
        out.push((name, entry.path()));
    }
    out.sort();
    Some(out)
}

/// Walks the whole store directory. Fails only if `root` itself cannot be
/// read.
pub(crate) fn walk(root: &Path) -> Result<Layout, Failure> {
    let meta = fs::metadata(root)
        .map_err(|e| Failure::store(format!("cannot open the file store {}", root.display()), e))?;
    if !meta.is_dir() {
        return Err(Failure::store(
            format!("cannot open the file store {}", root.display()),
            io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
        ));
    }
    let mut layout = Layout::default();
    let top = list(root, ".", &mut layout).ok_or_else(|| {
        Failure::store(
            format!("cannot list the file store {}", root.display()),
            io::Error::other("the directory cannot be listed"),
        )
    })?;
    for (name, path) in &top {
        match name.as_str() {
            "sessions" => walk_sessions(path, &mut layout),
            "users" => walk_users(path, &mut layout),
            "locks" => walk_locks(path, &mut layout),
            "corrupt" => {
                layout.set_aside = list(path, "corrupt", &mut layout).map_or(0, |v| v.len());
            }
            _ => layout.oddities.push(Oddity {
                rel: name.clone(),
                kind: OddityKind::UnknownEntry,
            }),
        }
    }
    for dir in ["sessions", "users", "locks"] {
        if !top.iter().any(|(name, _)| name == dir) {
            layout.missing_dirs.push(dir);
        }
    }
    Ok(layout)
}

/// Calls `f(byte, rel, path)` for each fan-out directory under `parent`,
/// noting everything else there.
fn fanouts(parent: &Path, area: &str, layout: &mut Layout) -> Vec<(u8, String, PathBuf)> {
    let Some(entries) = list(parent, area, layout) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (name, path) in entries {
        let rel = format!("{area}/{name}");
        match fanout_byte(&name) {
            Some(byte) => out.push((byte, rel, path)),
            None => layout.oddities.push(Oddity {
                rel,
                kind: OddityKind::UnknownEntry,
            }),
        }
    }
    out
}

fn walk_sessions(dir: &Path, layout: &mut Layout) {
    for (byte, rel_dir, path) in fanouts(dir, "sessions", layout) {
        let Some(entries) = list(&path, &rel_dir, layout) else {
            continue;
        };
        for (name, path) in entries {
            let rel = format!("{rel_dir}/{name}");
            let Some((hash, temp)) = parse_name(&name, ".session") else {
                layout.oddities.push(Oddity {
                    rel,
                    kind: OddityKind::UnknownEntry,
                });
                continue;
            };
            if hash[0] != byte {
                layout.oddities.push(Oddity {
                    rel,
                    kind: OddityKind::Misplaced,
                });
                continue;
            }
            if temp {
                layout.oddities.push(Oddity {
                    rel,
                    kind: OddityKind::OrphanedTemp,
                });
                continue;
            }
            let (bytes, content) = match read_regular(&path) {
                // Gone since the listing: deleted by a purge or a logout.
                Read::Missing => continue,
                Read::NotRegular => (0, Content::NotRegular),
                Read::Io(e) => (0, Content::Unreadable(e)),
                Read::Bytes(b) => {
                    let content = match decode(&b) {
                        Ok(r) => Content::Record(Box::new(r)),
                        Err(DecodeError::NotASessionFile) => Content::Foreign,
                        Err(_) => Content::Corrupt,
                    };
                    (b.len() as u64, content)
                }
            };
            layout.sessions.push(SessionFile {
                rel,
                key: StoreKey::from_bytes(hash),
                bytes,
                content,
            });
        }
    }
}

/// The body of a user index file.
#[derive(serde::Deserialize)]
struct IndexBody {
    user: String,
    keys: Vec<StoreKey>,
}

fn walk_users(dir: &Path, layout: &mut Layout) {
    for (byte, rel_dir, path) in fanouts(dir, "users", layout) {
        let Some(entries) = list(&path, &rel_dir, layout) else {
            continue;
        };
        for (name, path) in entries {
            let rel = format!("{rel_dir}/{name}");
            let Some((hash, temp)) = parse_name(&name, ".user") else {
                layout.oddities.push(Oddity {
                    rel,
                    kind: OddityKind::UnknownEntry,
                });
                continue;
            };
            if hash[0] != byte {
                layout.oddities.push(Oddity {
                    rel,
                    kind: OddityKind::Misplaced,
                });
                continue;
            }
            if temp {
                layout.oddities.push(Oddity {
                    rel,
                    kind: OddityKind::OrphanedTemp,
                });
                continue;
            }
            let content = match read_regular(&path) {
                Read::Missing => continue,
                Read::NotRegular => IndexContent::NotRegular,
                Read::Io(e) => IndexContent::Unreadable(e),
                Read::Bytes(b) => b
                    .strip_prefix(INDEX_HEADER.as_bytes())
                    .and_then(|body| serde_json::from_slice::<IndexBody>(body).ok())
                    .map_or(IndexContent::Corrupt, |i| IndexContent::Valid {
                        user: i.user,
                        keys: i.keys,
                    }),
            };
            layout.indexes.push(IndexFile { rel, hash, content });
        }
    }
}

/// Whether `name` is one of the store's lock files.
fn is_lock_name(name: &str) -> bool {
    let parse = |prefix: &str, n: u8| {
        name.strip_prefix(prefix)
            .and_then(fanout_byte)
            .is_some_and(|b| b < n)
    };
    parse("s-", SESSION_LOCKS) || parse("u-", USER_LOCKS)
}

fn walk_locks(dir: &Path, layout: &mut Layout) {
    let Some(entries) = list(dir, "locks", layout) else {
        return;
    };
    for (name, path) in entries {
        let rel = format!("locks/{name}");
        let meta = fs::symlink_metadata(&path);
        let regular_empty = meta.as_ref().is_ok_and(|m| m.is_file() && m.len() == 0);
        let regular = meta.as_ref().is_ok_and(|m| m.is_file());
        let kind = if is_lock_name(&name) {
            if regular {
                continue;
            }
            OddityKind::BadLock
        } else if regular_empty {
            OddityKind::UnusedLock
        } else {
            OddityKind::UnknownEntry
        };
        layout.oddities.push(Oddity { rel, kind });
    }
}

/// SHA-256 of a user name: how the store names the user's index file.
pub(crate) fn user_hash(user: &str) -> [u8; 32] {
    Sha256::digest(user.as_bytes()).into()
}

/// The decodable records of the sessions whose fingerprint is `fp`
/// (normally one; 48 bits can in principle collide).
pub(crate) fn find_by_fingerprint(root: &Path, fp: Fingerprint) -> Result<Vec<Record>, Failure> {
    let hex = fp.to_string();
    let dir = root.join("sessions").join(&hex[..2]);
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(Failure::store(format!("cannot list {}", dir.display()), e));
        }
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry =
            entry.map_err(|e| Failure::store(format!("cannot list {}", dir.display()), e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with(&hex) {
            continue;
        }
        if let Some((_, false)) = parse_name(&name, ".session")
            && let Read::Bytes(b) = read_regular(&entry.path())
            && let Ok(r) = decode(&b)
        {
            out.push(r);
        }
    }
    Ok(out)
}

/// `latchkey stats`.
pub(crate) fn stats(spec: &StoreSpec, json: bool) -> Result<u8, Failure> {
    let root = spec.file_dir("stats")?;
    let layout = walk(root)?;
    let now = SystemClock.now();
    let soon = now.saturating_add(Duration::from_secs(3600));
    // In the order a person reads them.
    const STATES: [&str; 5] = ["live", "rotated", "ended", "expired", "corrupt"];
    let mut counts = [0usize; STATES.len()];
    let mut bytes = 0u64;
    let mut expiring = 0usize;
    let mut oldest: Option<(Timestamp, StoreKey)> = None;
    let mut users = std::collections::BTreeSet::new();
    for file in &layout.sessions {
        bytes += file.bytes;
        let state = match &file.content {
            Content::Record(r) if r.expires_at <= now => "expired",
            Content::Record(r) => match &r.state {
                RecordState::Live(s) if s.absolute_deadline <= now => "expired",
                RecordState::Live(s) => {
                    if r.expires_at.min(s.absolute_deadline) <= soon {
                        expiring += 1;
                    }
                    if oldest.is_none_or(|(t, k)| (s.created_at, file.key) < (t, k)) {
                        oldest = Some((s.created_at, file.key));
                    }
                    if let Some(u) = &s.user {
                        users.insert(u.clone());
                    }
                    "live"
                }
                RecordState::Rotated { .. } => "rotated",
                _ => "ended",
            },
            _ => "corrupt",
        };
        if let Some(i) = STATES.iter().position(|s| *s == state) {
            counts[i] += 1;
        }
    }
    let temps = layout
        .oddities
        .iter()
        .filter(|o| o.kind == OddityKind::OrphanedTemp)
        .count();
    if json {
        output::json(&json!({
            "records": layout.sessions.len(),
            "by_state": STATES.iter().zip(counts).map(|(s, n)| (s.to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
            "users_with_live_sessions": users.len(),
            "oldest_live": oldest.map(|(t, k)| json!({
                "fingerprint": k.fingerprint().to_string(),
                "created_at": output::time(t),
            })),
            "expiring_within_hour": expiring,
            "session_bytes": bytes,
            "temp_files": temps,
            "set_aside": layout.set_aside,
        }));
    } else {
        let mut pairs = vec![("records", layout.sessions.len().to_string())];
        for (state, n) in STATES.iter().zip(counts) {
            pairs.push((state, n.to_string()));
        }
        pairs.push(("users with live sessions", users.len().to_string()));
        pairs.push((
            "oldest live",
            oldest.map_or_else(
                || "-".to_owned(),
                |(t, k)| format!("{} ({})", output::time(t), k.fingerprint()),
            ),
        ));
        pairs.push(("expiring within 1h", expiring.to_string()));
        pairs.push(("session bytes", bytes.to_string()));
        pairs.push(("temporary files", temps.to_string()));
        pairs.push(("in corrupt/", layout.set_aside.to_string()));
        output::fields(&pairs);
    }
    Ok(exit::OK)
}
