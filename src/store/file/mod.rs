//! [`FileStore`]: sessions in a directory that survives restarts, crashes
//! and several processes, and that an operator can read with `ls` and `cat`.
//!
//! Unix only (it relies on Unix file modes and ownership).
//!
//! # Layout
//!
//! ```text
//! DIR/                                  0700, owned by the process's user
//!   sessions/66/66687aadf862…2925.session   one file per session, 0600
//!   sessions/66/.66687aadf862…2925.tmp      a write in progress (or left by a crash)
//!   users/2b/2bd806c97f0e…6e90.user         per-user index, named by SHA-256(user)
//!   locks/s-26   locks/u-0b                 lock files (empty)
//!   corrupt/                                what purge found in a file's place, moved aside
//! ```
//!
//! - A session's file is named by its [`StoreKey`] in hex, the SHA-256 of
//!   the session ID, never the token: a copy of the directory cannot be
//!   replayed as cookies. Its [`Fingerprint`](crate::Fingerprint), the 12 hex
//!   digits in log lines, is a prefix of the name, so
//!   `ls DIR/sessions/66/66687aadf862*` finds the session a log line names.
//! - Files fan out into 256 subdirectories by the key's first byte, so no
//!   directory grows huge.
//! - Each file is a header line, then the JSON encoding of the [`Record`]:
//!
//!   ```text
//!   latchkey-session 1
//!   {"version":3,"expires_at":1795393800000,"state":{"live":{"created_at":…,"user":"alice",…}}}
//!   ```
//!
//!   The header carries the format version; [`decode`] refuses any other.
//! - The per-user index lists the keys of a user's live sessions. User names
//!   come from applications and, ultimately, from clients, so they never
//!   become path components: the index file is named by the SHA-256 of the
//!   user name (`printf alice | sha256sum`), and the readable name is kept
//!   inside it (`latchkey-user-index 1` then `{"user":"alice","keys":[…]}`).
//!   No path is ever built from anything but hex digits of a hash.
//!
//! # Crash safety
//!
//! Every write goes to a temporary file beside its target (same directory,
//! so the same file system), is flushed with `fsync`, renamed over the
//! target, and the directory is fsynced so the rename itself is durable.
//! `rename` replaces a name atomically, so a process killed at any instant
//! leaves each session's file at its old or its new content, never torn and
//! never missing. A leftover temporary file is harmless: the next write of
//! that session reuses its name, and [`Store::purge_expired`] deletes it.
//!
//! Multi-file operations are ordered so that a crash between their steps
//! leaves a safe state:
//! - the user index is a superset of the truth: a key is added to the index
//!   before its record is written and removed only after, and listings
//!   check each record, so a stale entry is filtered, never a missed one;
//! - [`Store::rotate`] follows the trait's provided protocol of single-key
//!   writes: the old record is first rewritten as retired, carrying its
//!   successor's record (a write-ahead intent), and the successor is
//!   written second. Between the two, one write of the user index adds the
//!   successor's key and drops the old one (the provided protocol's
//!   `replace` then `insert` would write it twice). A crash between the two leaves the old token retired
//!   and the successor missing; the next load of the old token within the
//!   grace window writes the successor from the intent (rolls forward), and
//!   a logout ends the retired record so nothing can roll forward after it.
//!   No crash point leaves two live records of one session or brings an
//!   ended token back ([`crate::lifecycle`] has the rules).
//!
//! [`Durability::DangerNoSync`] skips the fsyncs. A killed process still
//! leaves old-or-new files (the kernel keeps the written pages), but a power
//! failure or kernel crash can lose recent writes or leave empty files.
//!
//! # Several processes
//!
//! Processes (and threads) coordinate through lock files taken with
//! `flock` ([`File::try_lock`]): 64 session locks (`locks/s-00` to
//! `locks/s-3f`; a key's lock is its first byte modulo 64) and 16 index
//! locks (`locks/u-00` to `locks/u-0f`, by the first byte of the user hash
//! modulo 16). Every write
//! of a session holds its shard's lock from reading the current version to
//! renaming the new file into place, so versioned saves are
//! compare-and-swap across processes and no update is lost. An index
//! update holds its index shard's lock for its read-modify-write. Locks
//! nest only in the order one session shard, then one index shard.
//!
//! Why shards rather than one lock for the directory: a write spends most
//! of its time in `fsync`, and one directory-wide lock would let only one
//! process fsync at a time. With 64 lock shards, writes to different
//! sessions mostly proceed in parallel, yet an operation needs at most one
//! session lock and one index lock, so the protocol stays small, and a
//! process keeps at most 80 lock files open. Reads take no file lock:
//! rename makes every file read see a whole record. Within one process a
//! read does wait for a write in progress on the same shard (1/64 of the
//! sessions).
//!
//! A lock's holder may stop without dying: `SIGSTOP`, a debugger, I/O that
//! hangs. The kernel frees the locks of a process that dies, never those
//! of one that is stopped, so no wait for a lock is without end: after
//! [`FileStore::lock_timeout`] (five seconds unless
//! [`FileStore::with_lock_timeout`] says otherwise) the operation fails
//! with [`StoreError::LockTimeout`], which names the lock file. A
//! single-key write that times out has changed nothing (the builder method
//! has the details); a purge skips and reports what the held lock guards,
//! and goes on.
//!
//! # Security
//!
//! The directory is created 0700 and files 0600. [`FileStore::open`]
//! refuses a directory that is group- or world-writable (anyone who can
//! write there can forge sessions) or that another user owns
//! ([`StoreError::InsecureDirectory`]).
//!
//! Inside it, only regular files are read: a symlink, FIFO, directory or
//! device where a session file belongs is [`StoreError::Corrupt`] for that
//! session alone (never followed, never opened so as to block), and purge
//! moves it aside. Temporary files are created exclusively (`O_EXCL`,
//! which never follows a symlink) after any leftover is removed, so a link
//! planted at a temporary name cannot redirect a write; lock files are
//! created the same way.
//!
//! # Robustness
//!
//! A record whose file would be larger than the 16 MiB the store reads
//! back is refused when written ([`StoreError::RecordTooLarge`]), and the
//! record it would have replaced stays as it was.
//!
//! A corrupt, truncated, empty or foreign session file is
//! [`StoreError::Corrupt`] for that key only; listings skip it and
//! [`Store::purge_expired`] moves it to `corrupt/`. A failed write (full
//! disk, read-only directory) returns the I/O error and leaves the previous
//! record in place, since the rename that would replace it never happens.
//! A corrupt user index makes that user's listing scan every record until
//! [`Store::purge_expired`] rebuilds the index.
//!
//! A purge goes on past every entry it cannot handle: something other than
//! a regular file or an undecodable file where a file of the store belongs
//! (moved to `corrupt/`), a file it cannot read or delete, a fan-out
//! directory it cannot list, a lock held past the timeout (all left where
//! they are). [`FileStore::purge_expired_report`] returns a
//! [`PurgeReport`] that counts them and lists the first
//! [`MAX_LISTED`](PurgeReport::MAX_LISTED), each by fingerprint with a
//! typed [`SkipReason`]; [`Store::purge_expired`] returns only the number
//! of records deleted. A purge fails as a whole only when `sessions/` or
//! `users/` itself cannot be listed, and then before it has changed
//! anything. On a full disk a purge still deletes
//! (a deletion needs no space); an index it cannot rewrite is reported and
//! stays a superset, which listings filter.

use std::collections::BTreeSet;
use std::fmt;
use std::fs::{self, DirBuilder, File, OpenOptions, TryLockError};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{RwLock, RwLockWriteGuard};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::clock::Timestamp;

mod format;
mod purge;

use self::format::MAX_FILE_BYTES;
pub use self::format::{DecodeError, SESSION_HEADER, decode, encode};
pub use self::purge::{PurgeEntry, PurgeReport, PurgeSkip, SkipReason};
use crate::id::{StoreKey, hex};
use crate::store::driver::{self, Ready};
use crate::store::{Record, RecordState, Store, StoreError};

const INDEX_HEADER: &str = "latchkey-user-index 1\n";

/// Subdirectories per fan-out level: one per value of the first byte.
const DIRS: usize = 256;
/// Session lock files. Fewer than the directories, so a process holds at
/// most 64 + 16 lock files open (well under a default 1024-descriptor
/// limit); key `k` is guarded by lock `k[0] % 64`.
const SESSION_LOCKS: usize = 64;
/// User-index lock files; index `h` (the user hash) by lock `h[0] % 16`.
const USER_LOCKS: usize = 16;

/// How hard [`FileStore`] works to make a finished write survive power loss.
///
/// # Example
/// ```
/// use latchkey::{Durability, FileStore};
///
/// let dir = std::env::temp_dir().join(format!("latchkey-doc-durability-{}", std::process::id()));
/// let store = FileStore::open(&dir)?.with_durability(Durability::Full);
/// assert_eq!(store.durability(), Durability::Full);
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Durability {
    /// fsync every written file before renaming it into place, and the
    /// directory after. A write that returned `Ok` survives power loss.
    /// `touch` skips only the directory fsync: after power loss a touch may
    /// be lost (the record keeps its previous activity stamp), never torn.
    #[default]
    Full,
    /// **Danger**: no fsync at all. A killed process still leaves every
    /// session at its old or new version, but a power failure or kernel
    /// crash can lose recent writes, resurrect logged-out sessions, or
    /// leave empty (corrupt) files. For tests and throw-away deployments.
    DangerNoSync,
}

/// The per-user index file's body.
#[derive(Debug, Default, Serialize, Deserialize)]
struct UserIndex {
    /// The readable user name; also guards against (astronomically
    /// unlikely) hash collisions.
    user: String,
    keys: BTreeSet<StoreKey>,
}

/// A set of lock files, each paired with an in-process lock.
///
/// `flock`-style locks belong to an open file, which the threads of this
/// process share, so they exclude other processes only; the `RwLock` in
/// front excludes this process's other threads. Writers hold both; readers
/// of this process hold the `RwLock` shared, which keeps multi-file
/// operations atomic for them.
struct LockTable {
    dir: PathBuf,
    prefix: &'static str,
    slots: Box<[RwLock<Option<File>>]>,
    /// How long [`LockTable::lock`] waits, in all (see
    /// [`FileStore::with_lock_timeout`]).
    timeout: Duration,
}

/// An exclusive hold on one shard, for this process and all others.
struct ShardGuard<'a>(RwLockWriteGuard<'a, Option<File>>);

impl Drop for ShardGuard<'_> {
    fn drop(&mut self) {
        if let Some(f) = self.0.as_ref() {
            // Closing the file would release the lock too; unlocking now
            // lets the next process in without waiting for that.
            let _ = f.unlock();
        }
    }
}

/// Why a shard lock was not taken.
#[derive(Debug)]
enum LockError {
    /// The lock file could not be opened, created or locked.
    Io(io::Error),
    /// Someone held the lock for the whole timeout.
    Timeout { lock: PathBuf, waited: Duration },
}

impl From<LockError> for StoreError {
    fn from(e: LockError) -> StoreError {
        match e {
            LockError::Io(e) => StoreError::Io(e),
            LockError::Timeout { lock, waited } => StoreError::LockTimeout { lock, waited },
        }
    }
}

impl From<io::Error> for LockError {
    fn from(e: io::Error) -> LockError {
        LockError::Io(e)
    }
}

/// The longest pause between two tries of a held file lock: short beside
/// the default timeout, long enough that a waiter costs no CPU to speak of.
const MAX_LOCK_PAUSE: Duration = Duration::from_millis(20);

impl LockTable {
    fn new(dir: PathBuf, prefix: &'static str, n: usize) -> LockTable {
        LockTable {
            dir,
            prefix,
            slots: (0..n).map(|_| RwLock::new(None)).collect(),
            timeout: FileStore::DEFAULT_LOCK_TIMEOUT,
        }
    }

    /// The lock file of `shard`, e.g. `DIR/locks/s-26`.
    fn path(&self, shard: usize) -> PathBuf {
        self.dir.join(format!("{}{shard:02x}", self.prefix))
    }

    /// Takes `shard` for this thread against every other thread and
    /// process, waiting at most the table's timeout in all.
    fn lock(&self, shard: usize) -> Result<ShardGuard<'_>, LockError> {
        let start = Instant::now();
        let timed_out = || LockError::Timeout {
            lock: self.path(shard),
            waited: start.elapsed(),
        };
        // Bounded too: the thread of this process that holds the slot may
        // itself be waiting out a stopped process's file lock, or be stuck
        // in I/O.
        let mut slot = self.slots[shard]
            .try_write_for(self.timeout)
            .ok_or_else(timed_out)?;
        if slot.is_none() {
            let path = self.path(shard);
            // Held open read-only (flock needs no write access), so an open
            // store does not keep the file system from being remounted
            // read-only; created on first use.
            let f = match open_regular(&path)? {
                Some(f) => f,
                None => {
                    // Created exclusively (never through a symlink); a
                    // concurrent creator's file is as good as ours.
                    match OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .mode(0o600)
                        .open(&path)
                    {
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                        Err(e) => return Err(e.into()),
                    }
                    open_regular(&path)?.ok_or_else(|| {
                        io::Error::new(
                            io::ErrorKind::NotFound,
                            "a lock file vanished as it was created",
                        )
                    })?
                }
            };
            *slot = Some(f);
        }
        if let Some(f) = slot.as_ref() {
            // There is no portable timed flock, so a held lock is polled,
            // with pauses that double up to MAX_LOCK_PAUSE. A holder that
            // is merely slow (an fsync on a busy disk) lets go long before
            // the timeout; one that is stopped never does, and without the
            // bound would stop every writer of this shard with it.
            let mut pause = Duration::from_micros(500);
            loop {
                match f.try_lock() {
                    Ok(()) => break,
                    Err(TryLockError::WouldBlock) => {}
                    Err(TryLockError::Error(e)) => return Err(e.into()),
                }
                let left = self.timeout.saturating_sub(start.elapsed());
                if left.is_zero() {
                    return Err(timed_out());
                }
                std::thread::sleep(pause.min(left));
                pause = (pause * 2).min(MAX_LOCK_PAUSE);
            }
        }
        Ok(ShardGuard(slot))
    }
}

/// A [`Store`] in a directory: crash-safe, shared by processes, readable by
/// operators. See the [module docs](self) for the layout, the guarantees,
/// and what it does under each fault: a foreign or corrupt entry (Security
/// and Robustness), a stopped lock holder (Several processes), a full disk
/// (Robustness).
///
/// # Example
/// ```
/// use latchkey::{FileStore, NewSession, SessionManager, StoreManager};
///
/// let dir = std::env::temp_dir().join(format!("latchkey-doc-filestore-{}", std::process::id()));
/// let manager = StoreManager::new(FileStore::open(&dir)?);
/// let issued = manager.create(NewSession::new().with_user("alice"))?;
///
/// // A restart (a new store on the same directory) keeps the session.
/// let manager = StoreManager::new(FileStore::open(&dir)?);
/// assert!(manager.load(issued.token()).is_ok());
/// assert_eq!(manager.sessions_of("alice")?.len(), 1);
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct FileStore {
    root: PathBuf,
    sessions: PathBuf,
    users: PathBuf,
    durability: Durability,
    session_locks: LockTable,
    user_locks: LockTable,
    /// Which `sessions/XX` directories are known to exist.
    session_dirs: Box<[OnceLock<()>]>,
    /// Which `users/XX` directories are known to exist.
    user_dirs: Box<[OnceLock<()>]>,
}

impl fmt::Debug for FileStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileStore")
            .field("root", &self.root)
            .field("durability", &self.durability)
            .finish_non_exhaustive()
    }
}

fn user_hash(user: &str) -> [u8; 32] {
    Sha256::digest(user.as_bytes()).into()
}

/// Creates `path` as a 0700 directory; an existing one is fine.
fn ensure_dir(path: &Path) -> io::Result<bool> {
    match DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

/// Reads a whole file, refusing to pull more than [`MAX_FILE_BYTES`] into
/// memory. `None` when the file does not exist.
fn read_limited(path: &Path) -> io::Result<Option<Vec<u8>>> {
    let Some(f) = open_regular(path)? else {
        return Ok(None);
    };
    let mut buf = Vec::with_capacity(1024);
    f.take(MAX_FILE_BYTES + 1).read_to_end(&mut buf)?;
    Ok(Some(buf))
}

/// Something other than a regular file where the store keeps one: a
/// symlink (which could lead out of the directory), a FIFO (whose open
/// would block), a directory or a device.
#[derive(Debug)]
struct NotRegularFile;

impl fmt::Display for NotRegularFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a regular file (a symlink, FIFO, directory or device)")
    }
}

impl std::error::Error for NotRegularFile {}

fn not_regular() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, NotRegularFile)
}

fn is_not_regular(e: &io::Error) -> bool {
    e.get_ref()
        .is_some_and(|inner| inner.is::<NotRegularFile>())
}

/// Opens `path` for reading only if it is a regular file, without following
/// a symlink and without opening a FIFO (which would block): the name is
/// checked with `lstat` first, and the opened file with `fstat` against it.
/// A different file behind the opened handle means the name changed in
/// between: another process renaming a new version into place, which is
/// how every write lands, so the check is made again; a symlink or FIFO
/// found on the next look is refused. `None` if nothing is there.
/// (Without `O_NOFOLLOW`, which the crate cannot name without `unsafe` or a
/// libc binding, a swap to a FIFO in the instant between the two checks can
/// still block the open; only someone who can write the directory, who
/// could forge sessions anyway, can make it.)
fn open_regular(path: &Path) -> io::Result<Option<File>> {
    for _ in 0..8 {
        let named = match fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        if !named.file_type().is_file() {
            return Err(not_regular());
        }
        let f = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let opened = f.metadata()?;
        if !opened.file_type().is_file() {
            return Err(not_regular());
        }
        if (opened.dev(), opened.ino()) == (named.dev(), named.ino()) {
            return Ok(Some(f));
        }
    }
    Err(io::Error::new(
        io::ErrorKind::Interrupted,
        "the file kept changing while it was opened",
    ))
}

/// Why a session file was not read as a record.
#[derive(Debug)]
enum ReadFault {
    /// Not a regular file (the error says so: see [`NotRegularFile`]).
    NotRegular(io::Error),
    /// A regular file that does not decode.
    Undecodable(DecodeError),
    /// The file could not be read.
    Io(io::Error),
}

/// Reads and decodes the session file at `path`; `None` if there is none.
fn read_record(path: &Path) -> Result<Option<Record>, ReadFault> {
    match read_limited(path) {
        Ok(None) => Ok(None),
        Ok(Some(bytes)) => decode(&bytes).map(Some).map_err(ReadFault::Undecodable),
        Err(e) if is_not_regular(&e) => Err(ReadFault::NotRegular(e)),
        Err(e) => Err(ReadFault::Io(e)),
    }
}

static PROBE_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Checks that `dir` is a directory only this process's user can write.
///
/// The crate forbids `unsafe`, so it cannot ask the OS for its user ID;
/// instead it creates a probe file, whose owner is by definition the
/// process's effective user, and compares owners.
fn check_directory(dir: &Path) -> Result<(), StoreError> {
    let insecure = |reason: &'static str| StoreError::InsecureDirectory {
        path: dir.to_path_buf(),
        reason,
    };
    let meta = fs::metadata(dir)?;
    if !meta.is_dir() {
        return Err(insecure("it is not a directory"));
    }
    // Anyone who can write here can plant or swap session files: forge a
    // login, resurrect a logged-out session.
    if meta.permissions().mode() & 0o022 != 0 {
        return Err(insecure("it is writable by group or others"));
    }
    let probe = dir.join(format!(
        ".probe-{}-{}",
        std::process::id(),
        PROBE_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&probe)?;
    let me = f.metadata().map(|m| m.uid());
    drop(f);
    let _ = fs::remove_file(&probe);
    if me? != meta.uid() {
        return Err(insecure("another user owns it"));
    }
    Ok(())
}

impl FileStore {
    /// Opens the store in `dir`, creating it (mode 0700, with parents) if
    /// missing. Durability is [`Durability::Full`].
    ///
    /// # Errors
    /// [`StoreError::InsecureDirectory`] if `dir` is group- or
    /// world-writable or owned by another user; [`StoreError::Io`] if it
    /// cannot be created or read.
    ///
    /// # Example
    /// ```
    /// use latchkey::{FileStore, StoreError};
    /// use std::os::unix::fs::PermissionsExt;
    ///
    /// let dir = std::env::temp_dir().join(format!("latchkey-doc-open-{}", std::process::id()));
    /// FileStore::open(&dir)?;
    /// std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))?;
    /// let err = FileStore::open(&dir).unwrap_err();
    /// assert!(matches!(err, StoreError::InsecureDirectory { .. }));
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(dir: impl AsRef<Path>) -> Result<FileStore, StoreError> {
        let root = dir.as_ref().to_path_buf();
        DirBuilder::new()
            .mode(0o700)
            .recursive(true)
            .create(&root)?;
        check_directory(&root)?;
        let sessions = root.join("sessions");
        let users = root.join("users");
        let locks = root.join("locks");
        let mut created = false;
        for d in [&sessions, &users, &locks] {
            created |= ensure_dir(d)?;
        }
        if created {
            // Make the new subdirectories' names durable before any session
            // is written into them (the default durability is Full).
            File::open(&root)?.sync_all()?;
        }
        Ok(FileStore {
            sessions,
            users,
            durability: Durability::Full,
            session_locks: LockTable::new(locks.clone(), "s-", SESSION_LOCKS),
            user_locks: LockTable::new(locks, "u-", USER_LOCKS),
            session_dirs: (0..DIRS).map(|_| OnceLock::new()).collect(),
            user_dirs: (0..DIRS).map(|_| OnceLock::new()).collect(),
            root,
        })
    }

    /// Sets how hard writes work to survive power loss.
    ///
    /// # Example
    /// ```
    /// use latchkey::{Durability, FileStore};
    /// let dir = std::env::temp_dir().join(format!("latchkey-doc-nosync-{}", std::process::id()));
    /// // Tests only: a power failure can lose or empty recent writes.
    /// let store = FileStore::open(&dir)?.with_durability(Durability::DangerNoSync);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn with_durability(mut self, durability: Durability) -> FileStore {
        self.durability = durability;
        self
    }

    /// The durability in force.
    ///
    /// # Example
    /// ```
    /// use latchkey::{Durability, FileStore};
    /// let dir = std::env::temp_dir().join(format!("latchkey-doc-dur-{}", std::process::id()));
    /// assert_eq!(FileStore::open(&dir)?.durability(), Durability::Full);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// How long an operation waits for a lock before it gives up with
    /// [`StoreError::LockTimeout`], unless
    /// [`with_lock_timeout`](Self::with_lock_timeout) says otherwise: five
    /// seconds.
    ///
    /// A healthy holder keeps a lock for one write, a few milliseconds;
    /// an `fsync` on an overloaded disk can stretch that to a second or
    /// more. Five seconds is well above either, so a slow but working store
    /// does not fail writes, and well below the 30 to 60 seconds after
    /// which proxies and clients give up on a request, so a stopped holder
    /// costs its requests a prompt backend error (a 503) rather than a
    /// hang.
    ///
    /// # Example
    /// ```
    /// use latchkey::FileStore;
    /// use std::time::Duration;
    /// assert_eq!(FileStore::DEFAULT_LOCK_TIMEOUT, Duration::from_secs(5));
    /// ```
    pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(5);

    /// Sets how long an operation waits, in all, for the locks it needs
    /// before it fails with [`StoreError::LockTimeout`]
    /// ([`DEFAULT_LOCK_TIMEOUT`](Self::DEFAULT_LOCK_TIMEOUT) unless set).
    ///
    /// Locks are held only for the length of one write (see the [module
    /// docs](self)), so a wait this long means the holder is stopped
    /// (`SIGSTOP`, a debugger) or stuck in I/O: without a bound, every
    /// writer of its shard would wait for as long as it stays so. The error
    /// names the lock file, whose holder `fuser -v` shows.
    ///
    /// A single-key write (`insert`, `replace`, `touch`, `remove`) that
    /// times out has changed nothing: it takes each lock before its first
    /// change, but for the user index's clean-up after a change of user or
    /// a removal, which is best effort (a stale index entry is harmless:
    /// listings check each record, and
    /// [`purge_expired_report`](Self::purge_expired_report) prunes it). A
    /// `rotate` is such a write of the old record, then the user index's
    /// and the successor's, and [`Store::rotate`] says what an error after
    /// the first leaves. Reads take no file lock (in this
    /// process they may wait behind a write of their shard, which the
    /// timeout bounds). A purge skips what a held lock guards and reports
    /// it. `Duration::ZERO` tries each lock once; `Duration::MAX` waits
    /// without end.
    ///
    /// # Example
    /// ```
    /// use latchkey::FileStore;
    /// use std::time::Duration;
    ///
    /// let dir = std::env::temp_dir().join(format!("latchkey-doc-lock-timeout-{}", std::process::id()));
    /// let store = FileStore::open(&dir)?.with_lock_timeout(Duration::from_millis(500));
    /// assert_eq!(store.lock_timeout(), Duration::from_millis(500));
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn with_lock_timeout(mut self, timeout: Duration) -> FileStore {
        self.session_locks.timeout = timeout;
        self.user_locks.timeout = timeout;
        self
    }

    /// How long an operation waits for a lock (see
    /// [`with_lock_timeout`](Self::with_lock_timeout)).
    ///
    /// # Example
    /// ```
    /// use latchkey::FileStore;
    /// let dir = std::env::temp_dir().join(format!("latchkey-doc-lock-default-{}", std::process::id()));
    /// assert_eq!(FileStore::open(&dir)?.lock_timeout(), FileStore::DEFAULT_LOCK_TIMEOUT);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn lock_timeout(&self) -> Duration {
        self.session_locks.timeout
    }

    /// The store's directory.
    ///
    /// # Example
    /// ```
    /// use latchkey::FileStore;
    /// let dir = std::env::temp_dir().join(format!("latchkey-doc-root-{}", std::process::id()));
    /// assert_eq!(FileStore::open(&dir)?.path(), dir);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Where the session file of `key` lives (whether or not it exists):
    /// for operators and tests. The name is the key's hex, never a token.
    ///
    /// # Example
    /// ```
    /// use latchkey::{FileStore, SessionId};
    /// let dir = std::env::temp_dir().join(format!("latchkey-doc-path-{}", std::process::id()));
    /// let store = FileStore::open(&dir)?;
    /// let key = SessionId::generate().store_key();
    /// let path = store.session_path(&key);
    /// assert!(path.ends_with(format!("{}/{}.session", &key.to_hex()[..2], key.to_hex())));
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn session_path(&self, key: &StoreKey) -> PathBuf {
        let h = key.to_hex();
        self.sessions.join(&h[..2]).join(format!("{h}.session"))
    }

    fn temp_path(&self, key: &StoreKey) -> PathBuf {
        let h = key.to_hex();
        self.sessions.join(&h[..2]).join(format!(".{h}.tmp"))
    }

    /// The session lock guarding `key`.
    fn lock_of(key: &StoreKey) -> usize {
        usize::from(key.as_bytes()[0]) % SESSION_LOCKS
    }

    /// The fan-out directory `parent/XX`, created (and its creation made
    /// durable) the first time this store needs it. No handle is kept open:
    /// opening a directory to fsync it costs microseconds beside the fsync,
    /// and 512 cached handles would crowd a default descriptor limit.
    fn shard_dir(&self, known: &[OnceLock<()>], parent: &Path, dir: usize) -> io::Result<PathBuf> {
        let path = parent.join(format!("{dir:02x}"));
        if known[dir].get().is_none() {
            if ensure_dir(&path)? && self.durability == Durability::Full {
                File::open(parent)?.sync_all()?;
            }
            let _ = known[dir].set(());
        }
        Ok(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        if self.durability == Durability::Full {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    }

    fn read(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        read_record(&self.session_path(key)).map_err(|fault| match fault {
            // That one session's path holds something else, or something
            // undecodable: an error for it alone.
            ReadFault::NotRegular(e) => StoreError::Corrupt {
                key: key.fingerprint(),
                source: Box::new(e),
            },
            ReadFault::Undecodable(e) => StoreError::Corrupt {
                key: key.fingerprint(),
                source: Box::new(e),
            },
            ReadFault::Io(e) => StoreError::Io(e),
        })
    }

    /// Writes `bytes` as the file `target` via `tmp`: write, fsync,
    /// rename, fsync the directory. On error the previous `target` is
    /// untouched and the temporary file is removed.
    fn write_atomic(
        &self,
        dir: &Path,
        tmp: &Path,
        target: &Path,
        bytes: &[u8],
        sync_dir: bool,
    ) -> Result<(), StoreError> {
        let durable = self.durability == Durability::Full;
        let result = (|| -> io::Result<()> {
            // A leftover temporary file (a crashed writer's) is removed, not
            // reopened, and the new one is created exclusively: `O_EXCL`
            // never follows a symlink, so one planted at the temporary name
            // cannot redirect the write to a file elsewhere.
            match fs::remove_file(tmp) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(tmp)?;
            f.write_all(bytes)?;
            if durable {
                f.sync_data()?;
            }
            drop(f);
            fs::rename(tmp, target)
        })();
        if let Err(e) = result {
            let _ = fs::remove_file(tmp);
            return Err(e.into());
        }
        if sync_dir {
            self.sync_dir(dir)?;
        }
        Ok(())
    }

    fn write_record(
        &self,
        key: &StoreKey,
        record: &Record,
        sync_dir: bool,
    ) -> Result<(), StoreError> {
        let bytes = encode(record).map_err(|e| StoreError::Io(io::Error::other(e)))?;
        // What `decode` would refuse to read back is refused here, before
        // it replaces a readable record.
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(StoreError::RecordTooLarge {
                size: bytes.len(),
                limit: usize::try_from(MAX_FILE_BYTES).unwrap_or(usize::MAX),
            });
        }
        let dir = self.shard_dir(
            &self.session_dirs,
            &self.sessions,
            usize::from(key.as_bytes()[0]),
        )?;
        self.write_atomic(
            &dir,
            &self.temp_path(key),
            &self.session_path(key),
            &bytes,
            sync_dir,
        )
    }

    fn index_path(&self, hash: &[u8; 32]) -> PathBuf {
        let h = hex(hash);
        self.users.join(&h[..2]).join(format!("{h}.user"))
    }

    /// Reads a user's index. A missing file is an empty index; an index
    /// whose stored name differs (a hash collision) is treated as empty; an
    /// undecodable one is `Io(InvalidData)`.
    fn read_index(&self, user: &str, hash: &[u8; 32]) -> Result<BTreeSet<StoreKey>, StoreError> {
        let Some(bytes) = read_limited(&self.index_path(hash))? else {
            return Ok(BTreeSet::new());
        };
        let idx = bytes
            .strip_prefix(INDEX_HEADER.as_bytes())
            .and_then(|body| serde_json::from_slice::<UserIndex>(body).ok())
            .ok_or_else(|| {
                StoreError::Io(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "a user index file is corrupt",
                ))
            })?;
        Ok(if idx.user == user {
            idx.keys
        } else {
            BTreeSet::new()
        })
    }

    /// Applies `change` to a user's index under the index shard's lock.
    fn update_index(
        &self,
        user: &str,
        change: impl FnOnce(&mut BTreeSet<StoreKey>) -> bool,
    ) -> Result<(), StoreError> {
        let hash = user_hash(user);
        let _guard = self.user_locks.lock(usize::from(hash[0]) % USER_LOCKS)?;
        let mut keys = match self.read_index(user, &hash) {
            Ok(k) => k,
            // Rebuild a corrupt index from the records themselves: starting
            // an empty one would hide the user's other sessions from
            // terminate_all.
            Err(StoreError::Io(e)) if e.kind() == io::ErrorKind::InvalidData => {
                self.scan_user(user)?
            }
            Err(e) => return Err(e),
        };
        if !change(&mut keys) {
            return Ok(());
        }
        let path = self.index_path(&hash);
        let h = hex(&hash);
        let dir = self.shard_dir(&self.user_dirs, &self.users, usize::from(hash[0]))?;
        if keys.is_empty() {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
            self.sync_dir(&dir)?;
            return Ok(());
        }
        let mut bytes = INDEX_HEADER.as_bytes().to_vec();
        serde_json::to_writer(
            &mut bytes,
            &UserIndex {
                user: user.to_owned(),
                keys,
            },
        )
        .map_err(|e| StoreError::Io(io::Error::other(e)))?;
        bytes.push(b'\n');
        let tmp = self.users.join(&h[..2]).join(format!(".{h}.tmp"));
        self.write_atomic(&dir, &tmp, &path, &bytes, true)
    }

    fn index_add(&self, user: Option<&str>, key: &StoreKey) -> Result<(), StoreError> {
        match user {
            Some(u) => self.update_index(u, |keys| keys.insert(*key)),
            None => Ok(()),
        }
    }

    fn index_remove(&self, user: Option<&str>, key: &StoreKey) -> Result<(), StoreError> {
        match user {
            Some(u) => self.update_index(u, |keys| keys.remove(key)),
            None => Ok(()),
        }
    }

    fn remove_file_synced(&self, key: &StoreKey) -> Result<bool, StoreError> {
        match fs::remove_file(self.session_path(key)) {
            Ok(()) => {
                if let Some(dir) = self.session_path(key).parent() {
                    self.sync_dir(dir)?;
                }
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Every session key with a file, from a directory scan.
    fn all_keys(&self) -> Result<BTreeSet<StoreKey>, StoreError> {
        let mut keys = BTreeSet::new();
        let shards = match fs::read_dir(&self.sessions) {
            Ok(s) => s,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(keys),
            Err(e) => return Err(e.into()),
        };
        for shard in shards {
            let shard = shard?;
            if !shard.file_type()?.is_dir() {
                continue;
            }
            for entry in fs::read_dir(shard.path())? {
                let name = entry?.file_name();
                if let Some(key) = name
                    .to_str()
                    .and_then(|n| n.strip_suffix(".session"))
                    .and_then(StoreKey::from_hex)
                {
                    keys.insert(key);
                }
            }
        }
        Ok(keys)
    }

    /// The keys of the live records bound to `user`, from a scan of every
    /// record: how a corrupt index is rebuilt.
    fn scan_user(&self, user: &str) -> Result<BTreeSet<StoreKey>, StoreError> {
        let mut keys = self.all_keys()?;
        keys.retain(|k| matches!(self.read(k), Ok(Some(r)) if r.user() == Some(user)));
        Ok(keys)
    }
}

impl Store for FileStore {
    fn insert(&self, key: &StoreKey, record: &Record) -> Result<(), StoreError> {
        let _guard = self.session_locks.lock(Self::lock_of(key))?;
        if fs::symlink_metadata(self.session_path(key)).is_ok() {
            return Err(StoreError::Exists);
        }
        self.index_add(record.user(), key)?;
        self.write_record(key, record, true)
    }

    fn get(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        // In-process readers wait out a rotation in progress; the file
        // read itself needs no lock, as rename makes it see a whole record.
        let _guard = self.session_locks.slots[Self::lock_of(key)].read();
        self.read(key)
    }

    fn replace(&self, key: &StoreKey, expected: u64, record: &Record) -> Result<(), StoreError> {
        let _guard = self.session_locks.lock(Self::lock_of(key))?;
        let current = self.read(key)?.ok_or(StoreError::NotFound)?;
        if current.version != expected {
            return Err(StoreError::Conflict);
        }
        let (before, after) = (current.user(), record.user());
        if before != after {
            self.index_add(after, key)?;
        }
        self.write_record(key, record, true)?;
        if before != after {
            // Clean-up after the write has landed: reporting its failure
            // (a held index lock, a full disk) would make a write that
            // happened look like one that did not. The stale entry keeps
            // the index a superset, which listings filter and purge prunes.
            let _ = self.index_remove(before, key);
        }
        Ok(())
    }

    fn touch(
        &self,
        key: &StoreKey,
        last_seen: Timestamp,
        expires_at: Timestamp,
    ) -> Result<bool, StoreError> {
        let _guard = self.session_locks.lock(Self::lock_of(key))?;
        let Some(mut record) = self.read(key)? else {
            return Ok(false);
        };
        let changes = match &record.state {
            RecordState::Live(s) => last_seen > s.last_seen || expires_at > record.expires_at,
            _ => return Ok(false),
        };
        record.touch(last_seen, expires_at);
        if changes {
            // No directory fsync: a touch lost to power failure only costs
            // an activity stamp (see Durability::Full).
            self.write_record(key, &record, false)?;
        }
        Ok(true)
    }

    /// The provided protocol's steps (the old record rewritten as retired,
    /// carrying its successor; then the successor written), with the user
    /// index changed once instead of twice: three durable writes where
    /// `replace` then `insert` make four for a session bound to a user.
    ///
    /// 1. `old` becomes the retired intent. Its index entry stays: the
    ///    index may list a key that is no longer live (a superset), never
    ///    miss a live one.
    /// 2. One index write adds `new` and drops `old` (one user's index,
    ///    the usual case: rotation keeps the user).
    /// 3. `new` is written. It is live only from here, its index entry
    ///    already durable.
    ///
    /// A crash after 1 or 2 leaves `old` retired with its successor
    /// pending, as the provided protocol does between its two writes; the
    /// next load of `old` rolls forward through [`Store::insert`], which
    /// indexes `new` if step 2 did not land. The two record files cannot
    /// be renamed into place together, so a crash-free rotation still
    /// needs both.
    fn rotate(
        &self,
        old: &StoreKey,
        expected: u64,
        retired: &Record,
        new: &StoreKey,
        record: &Record,
    ) -> Result<(), StoreError> {
        match self.get(old)? {
            None => return Err(StoreError::NotFound),
            Some(r) if r.version != expected => return Err(StoreError::Conflict),
            Some(_) => {}
        }
        if self.get(new)?.is_some() {
            return Err(StoreError::Exists);
        }
        let mut intent = retired.clone();
        if let RecordState::Rotated { pending, .. } = &mut intent.state {
            *pending = Some(Box::new(record.clone()));
        }
        if intent.user().is_some() {
            // A retired record that names a user (no caller in this crate
            // makes one) takes the general path: `replace` indexes it.
            self.replace(old, expected, &intent)?;
            let completed = driver::now_or_never(driver::complete_rotation(
                &Ready(self),
                old,
                intent.version,
                new,
                record,
            ))
            .unwrap_or_else(|| Err(driver::not_ready()));
            return match completed? {
                true => Ok(()),
                false => Err(StoreError::Conflict),
            };
        }
        // 1. The retired intent, checked and written under `old`'s lock.
        let before = {
            let _guard = self.session_locks.lock(Self::lock_of(old))?;
            let current = self.read(old)?.ok_or(StoreError::NotFound)?;
            if current.version != expected {
                return Err(StoreError::Conflict);
            }
            self.write_record(old, &intent, true)?;
            current.user().map(str::to_owned)
        };
        // On an error from here on `old` stays retired with its successor
        // pending, as after a crash: putting `old` back live could race a
        // load that rolled the rotation forward and leave two live records.
        let after = record.user();
        let moved = before.is_some() && before.as_deref() == after;
        // 2. The index: `new` in before its record exists.
        if let Some(user) = after {
            if moved {
                self.update_index(user, |keys| {
                    let added = keys.insert(*new);
                    keys.remove(old) || added
                })?;
            } else {
                self.index_add(Some(user), new)?;
            }
        }
        // 3. The successor, unless a load rolled the rotation forward
        // first (as `complete_rotation` allows).
        {
            let _guard = self.session_locks.lock(Self::lock_of(new))?;
            if fs::symlink_metadata(self.session_path(new)).is_err() {
                self.write_record(new, record, true)?;
            }
        }
        if !moved {
            // Clean-up of `old`'s entry in another user's index, best
            // effort as in `replace`.
            let _ = self.index_remove(before.as_deref(), old);
        }
        let stands = self.get(old)?.is_some_and(|r| r.version == intent.version);
        if !stands {
            self.remove(new)?;
            return Err(StoreError::Conflict);
        }
        Ok(())
    }

    fn remove(&self, key: &StoreKey) -> Result<bool, StoreError> {
        let _guard = self.session_locks.lock(Self::lock_of(key))?;
        // A corrupt record's user is unknown; its index entry, if any, is
        // pruned by purge_expired.
        let user = self
            .read(key)
            .ok()
            .flatten()
            .and_then(|r| r.user().map(str::to_owned));
        let removed = self.remove_file_synced(key)?;
        // Clean-up after the removal, best effort for the reason given in
        // `replace`: a logout that happened must not report failure.
        let _ = self.index_remove(user.as_deref(), key);
        Ok(removed)
    }

    fn sessions_of(&self, user: &str) -> Result<Vec<(StoreKey, Record)>, StoreError> {
        let keys = match self.read_index(user, &user_hash(user)) {
            Ok(keys) => keys,
            // A corrupt index must not hide sessions from terminate_all:
            // list by scanning every record instead (slow, and only until
            // purge_expired rebuilds the index).
            Err(StoreError::Io(e)) if e.kind() == io::ErrorKind::InvalidData => self.all_keys()?,
            Err(e) => return Err(e),
        };
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            // A corrupt record is that session's problem: skip it rather
            // than hide the user's other sessions.
            if let Ok(Some(r)) = self.get(&key)
                && r.user() == Some(user)
            {
                out.push((key, r));
            }
        }
        Ok(out)
    }

    /// Purges as [`FileStore::purge_expired_report`] does and returns the
    /// number of expired records deleted; what it had to skip is in that
    /// method's report, and only there.
    fn purge_expired(&self, now: Timestamp) -> Result<usize, StoreError> {
        self.purge_expired_report(now)
            .map(|report| report.removed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::SessionData;
    use crate::id::SessionId;
    use crate::store::{EndReason, LiveSession};

    fn sample(user: Option<&str>) -> Record {
        Record {
            version: 7,
            expires_at: Timestamp::from_unix_millis(5_000),
            state: RecordState::Live(LiveSession {
                created_at: Timestamp::from_unix_millis(1_000),
                last_seen: Timestamp::from_unix_millis(2_000),
                auth_at: None,
                absolute_deadline: Timestamp::from_unix_millis(9_000),
                user: user.map(str::to_owned),
                device: Some("cli".into()),
                data: SessionData::default(),
            }),
        }
    }

    #[test]
    fn encode_then_decode_round_trips_every_state() {
        let ended = Record {
            version: 2,
            expires_at: Timestamp::from_unix_millis(1),
            state: RecordState::Ended {
                reason: EndReason::LogoutAll,
                at: Timestamp::UNIX_EPOCH,
            },
        };
        for r in [sample(None), sample(Some("alice")), ended] {
            let bytes = encode(&r).unwrap();
            assert!(bytes.starts_with(SESSION_HEADER.as_bytes()));
            assert!(bytes.ends_with(b"\n"));
            assert_eq!(decode(&bytes).unwrap(), r);
        }
    }

    #[test]
    fn decode_refuses_oversized_input_without_parsing_it() {
        let huge = vec![b' '; MAX_FILE_BYTES as usize + 1];
        assert!(matches!(decode(&huge), Err(DecodeError::TooLarge)));
    }

    #[test]
    fn a_cat_of_the_file_shows_the_metadata() {
        let text = String::from_utf8(encode(&sample(Some("alice"))).unwrap()).unwrap();
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("latchkey-session 1"));
        let body = lines.next().unwrap();
        assert!(body.contains(r#""user":"alice""#), "{body}");
        assert!(body.contains(r#""version":7"#), "{body}");
    }

    #[test]
    fn debug_shows_the_directory_and_no_session_material() {
        let dir = std::env::temp_dir().join(format!("latchkey-unit-debug-{}", std::process::id()));
        let store = FileStore::open(&dir).unwrap();
        let id = SessionId::generate();
        store
            .insert(&id.store_key(), &sample(Some("alice")))
            .unwrap();
        let dbg = format!("{store:?}");
        assert!(dbg.contains("FileStore") && dbg.contains("Full"), "{dbg}");
        assert!(
            !dbg.contains(&id.to_token()) && !dbg.contains("alice"),
            "{dbg}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The in-process half of a shard lock is bounded too: a thread of
    /// this process holding a shard (here the test itself) makes another
    /// thread's write fail after the timeout, naming the lock file.
    #[test]
    fn a_thread_holding_a_shard_makes_writes_of_other_threads_time_out() {
        let dir = std::env::temp_dir().join(format!("latchkey-unit-lock-{}", std::process::id()));
        let timeout = Duration::from_millis(50);
        let store = std::sync::Arc::new(FileStore::open(&dir).unwrap().with_lock_timeout(timeout));
        let key = StoreKey::from_bytes([0x26; 32]);
        store.insert(&key, &sample(None)).unwrap();
        let held = store.session_locks.lock(FileStore::lock_of(&key)).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let writer = store.clone();
        std::thread::spawn(move || {
            let _ = tx.send(writer.replace(&key, 7, &sample(Some("bob"))));
        });
        // A guard, not a measurement: an unbounded wait fails here.
        let err = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the write waited without end")
            .unwrap_err();
        assert!(
            matches!(&err, StoreError::LockTimeout { lock, waited }
                if *lock == dir.join("locks").join("s-26") && *waited >= timeout),
            "{err:?}"
        );
        drop(held);
        store.replace(&key, 7, &sample(Some("bob"))).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn user_index_path_is_the_sha256_of_the_user() {
        let dir = std::env::temp_dir().join(format!("latchkey-unit-index-{}", std::process::id()));
        let store = FileStore::open(&dir).unwrap();
        // SHA-256("alice"), as `printf alice | sha256sum` prints it.
        let p = store.index_path(&user_hash("alice"));
        assert!(p.ends_with(
            "users/2b/2bd806c97f0e00af1a1fc3328fa763a9269723c8db8fac4f93af71db186d6e90.user"
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_rotation_moves_the_users_index_entry_in_one_write() {
        let dir = std::env::temp_dir().join(format!("latchkey-unit-rotate-{}", std::process::id()));
        let store = FileStore::open(&dir).unwrap();
        let (old, new) = (
            SessionId::generate().store_key(),
            SessionId::generate().store_key(),
        );
        store.insert(&old, &sample(Some("alice"))).unwrap();
        let at = Timestamp::from_unix_millis(3_000);
        let retired = Record {
            version: 8,
            expires_at: Timestamp::from_unix_millis(4_000),
            state: RecordState::Rotated {
                successor: new,
                sealed_successor: None,
                at,
                grace_until: at,
                privilege_change: false,
                pending: None,
            },
        };
        let mut successor = sample(Some("alice"));
        successor.version = 1;
        store.rotate(&old, 7, &retired, &new, &successor).unwrap();
        // The index lists the successor only: the old key left it in the
        // same write that added the new one.
        let index = store.read_index("alice", &user_hash("alice")).unwrap();
        assert_eq!(index, BTreeSet::from([new]));
        assert_eq!(store.get(&new).unwrap(), Some(successor.clone()));
        // The retired record carries its successor, as the provided
        // protocol's intent does, for a roll-forward after a crash.
        match store.get(&old).unwrap().map(|r| r.state) {
            Some(RecordState::Rotated {
                pending: Some(p), ..
            }) => assert_eq!(*p, successor),
            other => panic!("the old record is not the retired intent: {other:?}"),
        }
        // A rotation from a stale version changes nothing.
        let newer = SessionId::generate().store_key();
        assert!(matches!(
            store.rotate(&old, 7, &retired, &newer, &successor),
            Err(StoreError::Conflict)
        ));
        assert_eq!(store.get(&newer).unwrap(), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
