//! Purging a [`FileStore`]: [`FileStore::purge_expired_report`] and the
//! [`PurgeReport`] it returns.
//!
//! A purge walks every file of the store, so it meets whatever else has
//! come to lie in the directory: a directory, FIFO or symlink where a file
//! belongs, a corrupt or foreign file, a file it may not read or remove, a
//! lock held by a stopped process. None of these stops it. Each is an
//! entry it skips, counted and (up to [`PurgeReport::MAX_LISTED`]) listed
//! with its reason, and the purge goes on with the next entry. Only when
//! the store's own `sessions/` or `users/` directory cannot be listed does
//! it fail as a whole, before it has changed anything.

use std::collections::HashSet;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{
    FileStore, INDEX_HEADER, LockTable, ReadFault, SESSION_LOCKS, ShardGuard, USER_LOCKS,
    UserIndex, ensure_dir, is_not_regular, read_limited, read_record, user_hash,
};
use crate::clock::Timestamp;
use crate::id::{Fingerprint, StoreKey};
use crate::store::StoreError;

/// What a purge of a [`FileStore`] did: how many expired records it
/// deleted, and which entries it skipped, and why.
///
/// An entry is skipped when the purge cannot treat it as the store's file:
/// something other than a regular file, a file that does not decode, a
/// file it cannot read or remove, a directory it cannot list, or a lock
/// that was held past the [lock timeout](FileStore::with_lock_timeout).
/// What it could, it moved into `corrupt/` (see [`PurgeSkip::moved_aside`]);
/// the rest is where it was, for the next purge or an operator.
///
/// The report is bounded whatever the directory holds: it lists the first
/// [`MAX_LISTED`](Self::MAX_LISTED) skipped entries and counts all of them.
/// Nothing in it is secret, so it can be logged as it is: entries are named
/// by [`Fingerprint`] (the first 12 hex digits of a file's name, as log
/// lines name sessions), and reasons never quote a file's contents.
///
/// # Example
/// ```
/// use latchkey::{FileStore, Fingerprint, Timestamp};
/// use latchkey::store::file::{PurgeEntry, SkipReason};
///
/// let dir = std::env::temp_dir().join(format!("latchkey-doc-purge-report-{}", std::process::id()));
/// let store = FileStore::open(&dir)?;
/// // A directory where the session file of key abab…ab belongs.
/// let key = "ab".repeat(32);
/// std::fs::create_dir_all(dir.join("sessions/ab").join(format!("{key}.session")))?;
///
/// let report = store.purge_expired_report(Timestamp::from_unix_millis(1_800_000_000_000))?;
/// assert_eq!((report.removed(), report.skipped()), (0, 1));
/// let skip = &report.skips()[0];
/// assert_eq!(skip.entry(), PurgeEntry::Session(Fingerprint::from_hex("abababababab").unwrap()));
/// assert!(matches!(skip.reason(), SkipReason::NotRegularFile));
/// assert!(skip.moved_aside());
/// assert_eq!(
///     skip.to_string(),
///     "sessions/ab/abababababab*.session: not a regular file (a directory, symlink, FIFO, socket or device); moved to corrupt/"
/// );
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Default)]
pub struct PurgeReport {
    removed: usize,
    skipped: usize,
    skips: Vec<PurgeSkip>,
}

impl PurgeReport {
    /// The most skipped entries a report lists; [`skipped`](Self::skipped)
    /// counts those beyond. A directory filled with a million bad files
    /// makes a report of this size, not a million entries.
    ///
    /// # Example
    /// ```
    /// use latchkey::store::file::PurgeReport;
    /// assert_eq!(PurgeReport::MAX_LISTED, 100);
    /// ```
    pub const MAX_LISTED: usize = 100;

    /// How many expired records the purge deleted.
    ///
    /// # Example
    /// ```
    /// use latchkey::{FileStore, NewSession, SessionManager, StoreManager, Timestamp};
    ///
    /// let dir = std::env::temp_dir().join(format!("latchkey-doc-purge-removed-{}", std::process::id()));
    /// let manager = StoreManager::new(FileStore::open(&dir)?);
    /// manager.create(NewSession::new())?;
    /// // Far in the future: every session has expired by then.
    /// let report = manager.store().purge_expired_report(Timestamp::from_unix_millis(u64::MAX))?;
    /// assert_eq!(report.removed(), 1);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn removed(&self) -> usize {
        self.removed
    }

    /// How many entries the purge skipped, listed or not.
    ///
    /// # Example
    /// ```
    /// use latchkey::{FileStore, Timestamp};
    /// let dir = std::env::temp_dir().join(format!("latchkey-doc-purge-skipped-{}", std::process::id()));
    /// let report = FileStore::open(&dir)?.purge_expired_report(Timestamp::UNIX_EPOCH)?;
    /// assert_eq!(report.skipped(), 0);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn skipped(&self) -> usize {
        self.skipped
    }

    /// The first [`MAX_LISTED`](Self::MAX_LISTED) skipped entries, in the
    /// order the purge met them.
    ///
    /// # Example
    /// ```
    /// use latchkey::{FileStore, Timestamp};
    /// let dir = std::env::temp_dir().join(format!("latchkey-doc-purge-skips-{}", std::process::id()));
    /// let store = FileStore::open(&dir)?;
    /// // Not a session file: an empty file where one belongs.
    /// std::fs::create_dir_all(dir.join("sessions/00"))?;
    /// std::fs::write(dir.join("sessions/00").join(format!("{}.session", "0".repeat(64))), b"")?;
    /// let report = store.purge_expired_report(Timestamp::UNIX_EPOCH)?;
    /// for skip in report.skips() {
    ///     eprintln!("purge skipped {skip}");
    /// }
    /// assert_eq!(report.skips().len(), 1);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn skips(&self) -> &[PurgeSkip] {
        &self.skips
    }

    /// How many skipped entries the report counts but does not list.
    ///
    /// # Example
    /// ```
    /// use latchkey::{FileStore, Timestamp};
    /// let dir = std::env::temp_dir().join(format!("latchkey-doc-purge-unlisted-{}", std::process::id()));
    /// let report = FileStore::open(&dir)?.purge_expired_report(Timestamp::UNIX_EPOCH)?;
    /// assert_eq!(report.unlisted(), report.skipped() - report.skips().len());
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn unlisted(&self) -> usize {
        self.skipped - self.skips.len()
    }
}

/// A summary line: `removed 3 expired records; skipped 2 entries`.
impl fmt::Display for PurgeReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "removed {} expired records; skipped {} entries",
            self.removed, self.skipped
        )
    }
}

/// One entry a purge skipped: which, why, and whether it was moved aside.
///
/// Its `Display` is a line for a log:
/// `sessions/66/66687aadf862*.session: the file does not decode as a record (empty, truncated, foreign, or another format version); moved to corrupt/`.
///
/// # Example
/// ```
/// use latchkey::{FileStore, Timestamp};
/// use latchkey::store::file::SkipReason;
///
/// let dir = std::env::temp_dir().join(format!("latchkey-doc-purge-skip-{}", std::process::id()));
/// let store = FileStore::open(&dir)?;
/// std::fs::create_dir_all(dir.join("sessions/00"))?;
/// std::fs::write(dir.join("sessions/00").join(format!("{}.session", "0".repeat(64))), b"GIF89a")?;
/// let report = store.purge_expired_report(Timestamp::UNIX_EPOCH)?;
/// let skip = &report.skips()[0];
/// assert!(matches!(skip.reason(), SkipReason::Corrupt));
/// assert!(skip.moved_aside() && dir.join("corrupt").join(format!("{}.session", "0".repeat(64))).exists());
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct PurgeSkip {
    entry: PurgeEntry,
    reason: SkipReason,
    moved_aside: bool,
}

impl PurgeSkip {
    /// The entry skipped.
    ///
    /// # Example
    /// ```
    /// use latchkey::{FileStore, Timestamp};
    /// use latchkey::store::file::PurgeEntry;
    /// let dir = std::env::temp_dir().join(format!("latchkey-doc-purge-entry-{}", std::process::id()));
    /// let store = FileStore::open(&dir)?;
    /// // A file where the fan-out directory sessions/ee belongs.
    /// std::fs::write(dir.join("sessions/ee"), b"")?;
    /// let report = store.purge_expired_report(Timestamp::UNIX_EPOCH)?;
    /// assert_eq!(report.skips()[0].entry(), PurgeEntry::SessionDir(0xee));
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn entry(&self) -> PurgeEntry {
        self.entry
    }

    /// Why it was skipped.
    ///
    /// # Example
    /// ```
    /// use latchkey::{FileStore, Timestamp};
    /// use latchkey::store::file::SkipReason;
    /// let dir = std::env::temp_dir().join(format!("latchkey-doc-purge-reason-{}", std::process::id()));
    /// let store = FileStore::open(&dir)?;
    /// std::fs::write(dir.join("sessions/ee"), b"")?;
    /// let report = store.purge_expired_report(Timestamp::UNIX_EPOCH)?;
    /// assert!(matches!(report.skips()[0].reason(), SkipReason::Io(e) if e.kind() == std::io::ErrorKind::NotADirectory));
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn reason(&self) -> &SkipReason {
        &self.reason
    }

    /// Whether the purge moved the entry into the store's `corrupt/`
    /// directory, under its own name, for an operator to inspect. Entries
    /// that are not the store's files (a directory, FIFO or symlink in
    /// their place) and files that do not decode are moved aside when they
    /// can be, so they no longer stand in a session's way; anything else
    /// stays where it is.
    ///
    /// # Example
    /// ```
    /// use latchkey::{FileStore, Timestamp};
    /// let dir = std::env::temp_dir().join(format!("latchkey-doc-purge-moved-{}", std::process::id()));
    /// let store = FileStore::open(&dir)?;
    /// std::fs::write(dir.join("sessions/ee"), b"")?;
    /// let report = store.purge_expired_report(Timestamp::UNIX_EPOCH)?;
    /// assert!(!report.skips()[0].moved_aside()); // a broken directory stays put
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn moved_aside(&self) -> bool {
        self.moved_aside
    }
}

impl fmt::Display for PurgeSkip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.entry, self.reason)?;
        if self.moved_aside {
            f.write_str("; moved to corrupt/")?;
        }
        Ok(())
    }
}

/// An entry of a [`FileStore`]'s directory that a purge skipped.
///
/// Files are named by the [`Fingerprint`] of their name: the first 12 hex
/// digits of the session's [`StoreKey`], the same fingerprint log lines and
/// [`StoreError::Corrupt`] name the session by (for a user index, of the
/// SHA-256 of the user name). Its `Display` is the path under the store's
/// directory, as a pattern for `ls`: `sessions/66/66687aadf862*.session`.
///
/// # Example
/// ```
/// use latchkey::{Fingerprint, SessionId};
/// use latchkey::store::file::PurgeEntry;
///
/// let key = SessionId::generate().store_key();
/// let entry = PurgeEntry::Session(key.fingerprint());
/// let hex = key.to_hex();
/// assert_eq!(entry.to_string(), format!("sessions/{}/{}*.session", &hex[..2], &hex[..12]));
/// assert!(!entry.to_string().contains(&hex)); // never the whole key
/// assert_eq!(PurgeEntry::UserIndexDir(0x2b).to_string(), "users/2b/");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PurgeEntry {
    /// A session's file, `sessions/XX/KEY.session`.
    Session(Fingerprint),
    /// A session's temporary file, `sessions/XX/.KEY.tmp`, left by a
    /// writer that crashed.
    SessionTemp(Fingerprint),
    /// A fan-out directory `sessions/XX`, by its byte, as a whole: it could
    /// not be listed (or, after removals, synced), or its lock was held
    /// past the timeout. The purge skipped the rest of it.
    SessionDir(u8),
    /// A user's index file, `users/XX/HASH.user`.
    UserIndex(Fingerprint),
    /// A user index's temporary file, `users/XX/.HASH.tmp`.
    UserIndexTemp(Fingerprint),
    /// A fan-out directory `users/XX`, by its byte, as a whole: it could
    /// not be listed.
    UserIndexDir(u8),
}

impl fmt::Display for PurgeEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The first two digits of a fingerprint are its fan-out directory.
        let dir = |fp: &Fingerprint| fp.to_string()[..2].to_owned();
        match self {
            PurgeEntry::Session(fp) => write!(f, "sessions/{}/{fp}*.session", dir(fp)),
            PurgeEntry::SessionTemp(fp) => write!(f, "sessions/{}/.{fp}*.tmp", dir(fp)),
            PurgeEntry::SessionDir(b) => write!(f, "sessions/{b:02x}/"),
            PurgeEntry::UserIndex(fp) => write!(f, "users/{}/{fp}*.user", dir(fp)),
            PurgeEntry::UserIndexTemp(fp) => write!(f, "users/{}/.{fp}*.tmp", dir(fp)),
            PurgeEntry::UserIndexDir(b) => write!(f, "users/{b:02x}/"),
        }
    }
}

/// Why a purge skipped an entry.
///
/// # Example
/// ```
/// use latchkey::store::file::SkipReason;
/// let why = SkipReason::Io(std::io::Error::from(std::io::ErrorKind::PermissionDenied));
/// assert_eq!(why.to_string(), "I/O error: permission denied");
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum SkipReason {
    /// Something other than a regular file where the store keeps one: a
    /// directory, symlink, FIFO, socket or device. It was never followed
    /// nor opened (a FIFO's open would block).
    NotRegularFile,
    /// A regular file that does not decode: empty, truncated, foreign, or
    /// written in another format version. The reason does not say more,
    /// because a decoder's message can quote the file, and session files
    /// hold application data; the file itself is in `corrupt/` when
    /// [`PurgeSkip::moved_aside`] says so.
    Corrupt,
    /// The entry could not be read, listed, removed or synced.
    Io(io::Error),
    /// The lock that guards the entry was held by someone else for longer
    /// than the store's lock timeout, as [`StoreError::LockTimeout`]
    /// reports for a write. The purge waits for each lock at most once: it
    /// skips the rest of what a held lock guards at once.
    LockTimeout {
        /// The lock file.
        lock: PathBuf,
        /// How long the purge waited for it.
        waited: Duration,
    },
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::NotRegularFile => {
                f.write_str("not a regular file (a directory, symlink, FIFO, socket or device)")
            }
            SkipReason::Corrupt => f.write_str(
                "the file does not decode (empty, truncated, foreign, or another format version)",
            ),
            // A report line, not an error chain: the cause is the point.
            SkipReason::Io(e) => write!(f, "I/O error: {e}"),
            SkipReason::LockTimeout { lock, waited } => write!(
                f,
                "gave up after {waited:?} waiting for the lock {}",
                lock.display()
            ),
        }
    }
}

/// One purge in progress: the report so far, and the locks found held.
#[derive(Default)]
struct Purge {
    report: PurgeReport,
    /// Locks that timed out during this purge, with how long was waited:
    /// the purge does not wait for them again, so a stopped holder costs
    /// it one timeout per lock, not one per entry the lock guards.
    stuck: Vec<(PathBuf, Duration)>,
}

impl Purge {
    fn skip(&mut self, entry: PurgeEntry, reason: SkipReason, moved_aside: bool) {
        self.report.skipped += 1;
        if self.report.skips.len() < PurgeReport::MAX_LISTED {
            self.report.skips.push(PurgeSkip {
                entry,
                reason,
                moved_aside,
            });
        }
    }

    /// `Err` if `lock` timed out earlier in this purge.
    fn check_stuck(&self, lock: &Path) -> Result<(), SkipReason> {
        match self.stuck.iter().find(|(held, _)| held == lock) {
            Some((held, waited)) => Err(SkipReason::LockTimeout {
                lock: held.clone(),
                waited: *waited,
            }),
            None => Ok(()),
        }
    }

    /// Takes a shard lock, unless it timed out earlier in this purge.
    fn lock<'a>(
        &mut self,
        table: &'a LockTable,
        shard: usize,
    ) -> Result<ShardGuard<'a>, SkipReason> {
        self.check_stuck(&table.path(shard))?;
        table.lock(shard).map_err(|e| self.reason(e.into()))
    }

    /// The reason to report for a failed store operation; remembers a lock
    /// that timed out.
    fn reason(&mut self, e: StoreError) -> SkipReason {
        match e {
            StoreError::LockTimeout { lock, waited } => {
                self.stuck.push((lock.clone(), waited));
                SkipReason::LockTimeout { lock, waited }
            }
            StoreError::Io(e) => SkipReason::Io(e),
            // The index updates a purge makes fail only with the two above.
            other => SkipReason::Io(io::Error::other(other)),
        }
    }
}

/// The fan-out directories `parent/XX` present, by byte; none if `parent`
/// does not exist. Other names are not the store's, and are left alone.
fn fanout_dirs(parent: &Path) -> io::Result<Vec<u8>> {
    let entries = match fs::read_dir(parent) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for entry in entries {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        // Exactly two lowercase hex digits, as the store names them.
        if name.len() == 2 && name.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
            out.extend(u8::from_str_radix(name, 16).ok());
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// `HASH{suffix}` or `.HASH.tmp`, where HASH is 64 lowercase hex digits
/// (how the store names its files), as the hash and whether the name is a
/// temporary file's. Any other name is not the store's: `None`.
fn parse_file_name(name: &str, suffix: &str) -> Option<([u8; 32], bool)> {
    let (stem, temp) = match name.strip_prefix('.').and_then(|n| n.strip_suffix(".tmp")) {
        Some(stem) => (stem, true),
        None => (name.strip_suffix(suffix)?, false),
    };
    let parsed = StoreKey::from_hex(stem)?;
    (parsed.to_hex() == stem).then_some((*parsed.as_bytes(), temp))
}

/// The fingerprint of a file named by a hash: its first 12 hex digits.
fn fingerprint_of(hash: [u8; 32]) -> Fingerprint {
    StoreKey::from_bytes(hash).fingerprint()
}

/// The index lock guarding `user`'s index.
fn index_lock_of(user: &str) -> usize {
    usize::from(user_hash(user)[0]) % USER_LOCKS
}

/// An index file as a purge sees it.
enum IndexFile {
    Missing,
    Valid(UserIndex),
    Invalid(SkipReason),
}

fn read_index_file(path: &Path) -> io::Result<IndexFile> {
    match read_limited(path) {
        Ok(None) => Ok(IndexFile::Missing),
        Ok(Some(bytes)) => Ok(bytes
            .strip_prefix(INDEX_HEADER.as_bytes())
            .and_then(|body| serde_json::from_slice::<UserIndex>(body).ok())
            .map_or(IndexFile::Invalid(SkipReason::Corrupt), IndexFile::Valid)),
        Err(e) if is_not_regular(&e) => Ok(IndexFile::Invalid(SkipReason::NotRegularFile)),
        Err(e) => Err(e),
    }
}

impl FileStore {
    /// Deletes every record with `expires_at <= now`, as
    /// [`Store::purge_expired`](crate::Store::purge_expired) does, and
    /// reports what it did, including every entry it had to skip and why.
    ///
    /// It goes on past every entry it cannot handle (see [`PurgeReport`]
    /// for which): each is skipped and reported, and what is in a
    /// session's way (a directory, FIFO or symlink at its path, a file that
    /// does not decode) is moved into `corrupt/`. It also deletes the
    /// temporary files of crashed writers, and brings the user index in
    /// line with the records: drops entries of sessions that are gone,
    /// and rebuilds an index that is corrupt.
    ///
    /// It takes each lock for one file at a time, so no write waits on a
    /// purge for longer than one file takes; a lock held past the [lock
    /// timeout](Self::with_lock_timeout) skips what it guards, once.
    ///
    /// # Errors
    /// [`StoreError::Io`] only if the store's `sessions/` or `users/`
    /// directory cannot be listed, in which case nothing was changed.
    /// Everything else is in the report.
    ///
    /// # Example
    /// ```
    /// use latchkey::{FileStore, NewSession, SessionManager, StoreManager, Timestamp};
    ///
    /// let dir = std::env::temp_dir().join(format!("latchkey-doc-purge-{}", std::process::id()));
    /// let manager = StoreManager::new(FileStore::open(&dir)?);
    /// manager.create(NewSession::new().with_user("alice"))?;
    /// // An operator's mistake: a directory where a session file belongs.
    /// std::fs::create_dir_all(dir.join("sessions/ab").join(format!("{}.session", "ab".repeat(32))))?;
    ///
    /// let report = manager.store().purge_expired_report(Timestamp::from_unix_millis(u64::MAX))?;
    /// assert_eq!(report.removed(), 1);
    /// assert_eq!(report.skipped(), 1);
    /// if report.skipped() > 0 {
    ///     eprintln!("session purge: {report}");
    ///     for skip in report.skips() {
    ///         eprintln!("  {skip}");
    ///     }
    /// }
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn purge_expired_report(&self, now: Timestamp) -> Result<PurgeReport, StoreError> {
        // Listed before anything changes: a store whose own directories
        // cannot be read fails as a whole, and changes nothing.
        let session_dirs = fanout_dirs(&self.sessions)?;
        let index_dirs = fanout_dirs(&self.users)?;
        let mut purge = Purge::default();
        let mut live = Vec::new();
        for byte in session_dirs {
            self.purge_session_dir(byte, now, &mut live, &mut purge);
        }
        self.repair_indexes(&index_dirs, &live, &mut purge);
        Ok(purge.report)
    }

    /// Purges `sessions/XX`: deletes expired records and stray temporary
    /// files, moves aside what is in a session's way, and collects the
    /// user-bound keys it saw alive into `live`.
    fn purge_session_dir(
        &self,
        byte: u8,
        now: Timestamp,
        live: &mut Vec<(String, StoreKey)>,
        purge: &mut Purge,
    ) {
        let dir = self.sessions.join(format!("{byte:02x}"));
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return,
            Err(e) => return purge.skip(PurgeEntry::SessionDir(byte), SkipReason::Io(e), false),
        };
        // Every file of sessions/XX has a key whose first byte is XX.
        let shard = usize::from(byte) % SESSION_LOCKS;
        let mut removed_any = false;
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    purge.skip(PurgeEntry::SessionDir(byte), SkipReason::Io(e), false);
                    break;
                }
            };
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            // Not the store's (an operator's note, a backup), or not in
            // its own fan-out directory: left alone.
            let Some((bytes, temp)) = parse_file_name(name, ".session") else {
                continue;
            };
            if bytes[0] != byte {
                continue;
            }
            let key = StoreKey::from_bytes(bytes);
            let path = entry.path();
            // The lock is taken for one file at a time, not for the whole
            // directory: on a cold cache, a directory of a large store
            // could take longer than the lock timeout, and fail the writes
            // waiting on the purge.
            let _guard = match purge.lock(&self.session_locks, shard) {
                Ok(guard) => guard,
                Err(reason) => {
                    purge.skip(PurgeEntry::SessionDir(byte), reason, false);
                    break;
                }
            };
            if temp {
                // Left by a crashed writer: we hold the shard's lock, so no
                // write is in progress.
                self.remove_stray_temp(
                    &path,
                    name,
                    PurgeEntry::SessionTemp(key.fingerprint()),
                    purge,
                );
                continue;
            }
            let this = PurgeEntry::Session(key.fingerprint());
            match read_record(&path) {
                Ok(None) => {}
                Ok(Some(r)) if r.expires_at <= now => match fs::remove_file(&path) {
                    Ok(()) => {
                        purge.report.removed += 1;
                        removed_any = true;
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => purge.skip(this, SkipReason::Io(e), false),
                },
                Ok(Some(r)) => {
                    if let Some(u) = r.user() {
                        live.push((u.to_owned(), key));
                    }
                }
                Err(ReadFault::NotRegular(_)) => {
                    let moved = self.set_aside(&path, name);
                    purge.skip(this, SkipReason::NotRegularFile, moved);
                }
                Err(ReadFault::Undecodable(_)) => {
                    let moved = self.set_aside(&path, name);
                    purge.skip(this, SkipReason::Corrupt, moved);
                }
                Err(ReadFault::Io(e)) => purge.skip(this, SkipReason::Io(e), false),
            }
        }
        // One fsync makes the directory's removals durable. Should it fail,
        // a power loss may bring back records that are expired anyway.
        if removed_any && let Err(e) = self.sync_dir(&dir) {
            purge.skip(PurgeEntry::SessionDir(byte), SkipReason::Io(e), false);
        }
    }

    /// Removes a crashed writer's temporary file; the caller holds the
    /// lock its writer would hold. Only a directory resists `unlink` (a
    /// FIFO, socket, device or symlink is unlinked as a file is, and a
    /// symlink's target is untouched); one at a temporary name would fail
    /// every write of its session or index, so it is moved aside.
    fn remove_stray_temp(&self, path: &Path, name: &str, this: PurgeEntry, purge: &mut Purge) {
        match fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                if fs::symlink_metadata(path).is_ok_and(|m| m.is_dir()) {
                    let moved = self.set_aside(path, name);
                    purge.skip(this, SkipReason::NotRegularFile, moved);
                } else {
                    purge.skip(this, SkipReason::Io(e), false);
                }
            }
        }
    }

    /// Moves an entry the store cannot use into `corrupt/`, for an operator
    /// to inspect; returns whether it moved. (An earlier entry of the same
    /// name there is replaced.)
    fn set_aside(&self, path: &Path, name: &str) -> bool {
        let corrupt = self.root.join("corrupt");
        ensure_dir(&corrupt)
            .and_then(|_| fs::rename(path, corrupt.join(name)))
            .is_ok()
    }

    /// Brings every index file in line with the records: drops entries
    /// whose record is gone or no longer the user's, moves aside corrupt
    /// index files, and re-adds the `live` keys (which rebuilds what a
    /// corrupt index lost, and changes nothing otherwise).
    fn repair_indexes(&self, dirs: &[u8], live: &[(String, StoreKey)], purge: &mut Purge) {
        for &byte in dirs {
            let dir = self.users.join(format!("{byte:02x}"));
            let entries = match fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => {
                    purge.skip(PurgeEntry::UserIndexDir(byte), SkipReason::Io(e), false);
                    continue;
                }
            };
            let shard = usize::from(byte) % USER_LOCKS;
            for entry in entries {
                let entry = match entry {
                    Ok(entry) => entry,
                    Err(e) => {
                        purge.skip(PurgeEntry::UserIndexDir(byte), SkipReason::Io(e), false);
                        break;
                    }
                };
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                let Some((hash, temp)) = parse_file_name(name, ".user") else {
                    continue;
                };
                if hash[0] != byte {
                    continue;
                }
                let path = entry.path();
                if temp {
                    // Under the index lock: an update in progress writes
                    // this very name, and must not lose it to the purge.
                    let this = PurgeEntry::UserIndexTemp(fingerprint_of(hash));
                    match purge.lock(&self.user_locks, shard) {
                        Ok(_guard) => self.remove_stray_temp(&path, name, this, purge),
                        Err(reason) => purge.skip(this, reason, false),
                    }
                    continue;
                }
                self.repair_index(&path, name, fingerprint_of(hash), shard, purge);
            }
        }
        // One report per user at most: the entries of an index that failed
        // once would fail again for the same reason.
        let mut failed = HashSet::new();
        for (user, key) in live {
            if failed.contains(user.as_str()) {
                continue;
            }
            if let Err(reason) = self.restore_index_entry(user, key, purge) {
                failed.insert(user.as_str());
                let this = PurgeEntry::UserIndex(fingerprint_of(user_hash(user)));
                purge.skip(this, reason, false);
            }
        }
    }

    /// Prunes the index file at `path`, or moves it aside if it is corrupt.
    fn repair_index(
        &self,
        path: &Path,
        name: &str,
        fingerprint: Fingerprint,
        shard: usize,
        purge: &mut Purge,
    ) {
        let this = PurgeEntry::UserIndex(fingerprint);
        match read_index_file(path) {
            Err(e) => purge.skip(this, SkipReason::Io(e), false),
            Ok(IndexFile::Missing) => {}
            Ok(IndexFile::Valid(index)) => {
                for key in &index.keys {
                    if let Err(reason) = self.prune_index_entry(&index.user, key, purge) {
                        purge.skip(this, reason, false);
                        break;
                    }
                }
            }
            Ok(IndexFile::Invalid(_)) => {
                // Looked at again under the index lock: a writer may have
                // rebuilt it since (a write rebuilds a corrupt index from
                // the records). The live keys re-added afterwards rebuild
                // it here.
                let _guard = match purge.lock(&self.user_locks, shard) {
                    Ok(guard) => guard,
                    Err(reason) => return purge.skip(this, reason, false),
                };
                match read_index_file(path) {
                    Ok(IndexFile::Invalid(reason)) => {
                        let moved = self.set_aside(path, name);
                        purge.skip(this, reason, moved);
                    }
                    Ok(IndexFile::Missing | IndexFile::Valid(_)) => {}
                    Err(e) => purge.skip(this, SkipReason::Io(e), false),
                }
            }
        }
    }

    /// Removes `key` from `user`'s index if its record is gone, is no
    /// longer the user's, or cannot be a session (it does not decode). A
    /// record that could not be read stays listed: the index must stay a
    /// superset of the truth. Holds the key's shard lock, so a concurrent
    /// insert (which adds the index entry before writing the record, under
    /// that same lock) is never mistaken for a stale entry.
    fn prune_index_entry(
        &self,
        user: &str,
        key: &StoreKey,
        purge: &mut Purge,
    ) -> Result<(), SkipReason> {
        let _guard = purge.lock(&self.session_locks, Self::lock_of(key))?;
        let stale = match self.read(key) {
            Ok(Some(r)) => r.user() != Some(user),
            Ok(None) | Err(StoreError::Corrupt { .. }) => true,
            Err(_) => false,
        };
        if stale {
            purge.check_stuck(&self.user_locks.path(index_lock_of(user)))?;
            self.index_remove(Some(user), key)
                .map_err(|e| purge.reason(e))?;
        }
        Ok(())
    }

    /// Adds `key` to `user`'s index if its record is still the user's.
    fn restore_index_entry(
        &self,
        user: &str,
        key: &StoreKey,
        purge: &mut Purge,
    ) -> Result<(), SkipReason> {
        let _guard = purge.lock(&self.session_locks, Self::lock_of(key))?;
        if let Ok(Some(r)) = self.read(key)
            && r.user() == Some(user)
        {
            purge.check_stuck(&self.user_locks.path(index_lock_of(user)))?;
            self.index_add(Some(user), key)
                .map_err(|e| purge.reason(e))?;
        }
        Ok(())
    }
}
