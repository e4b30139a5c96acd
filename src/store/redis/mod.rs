//! [`RedisStore`]: sessions in Redis, one session space for many app servers
//! (feature `redis`).
//!
//! Put several app servers behind a load balancer without sticky sessions,
//! point them all at one Redis, and a user stays logged in whichever server
//! answers. Reads and writes of one session are one round trip each
//! ([`Store::sessions_of`] takes two or three); the checks that must not
//! race run inside Redis as Lua scripts, so two servers writing the same
//! session cannot both win.
//!
//! # What Redis holds
//!
//! Run `redis-cli --scan --pattern 'latchkey:*'` to see it all:
//!
//! | key | type | value |
//! |---|---|---|
//! | `{prefix}session:{<64 hex>}` | string | the [`Record`] as JSON, e.g. `{"version":1,"expires_at":…,"state":{"live":{…}}}` |
//! | `{prefix}user:{<64 hex>}` | set | the hex store keys of the user's sessions |
//! | `{prefix}op:{<64 hex>}:<32 hex>` | string | a write's receipt: its answer, for a minute or so (see [Faults](RedisStore#faults)); the first hex is the record's |
//!
//! The braces are part of the names: the hex inside them is a Redis Cluster
//! hash tag, so a record and the receipts of its writes share a hash slot.
//! One Redis ignores them; `RedisClusterStore` (feature `redis-cluster`)
//! relies on them.
//!
//! - The hex in a session key is the [`StoreKey`] (SHA-256 of the session
//!   ID), never the token: a dump of Redis cannot be replayed as cookies. A
//!   log line's [`Fingerprint`](crate::Fingerprint) is its first 12 digits,
//!   so `redis-cli --scan --pattern 'latchkey:session:{<fingerprint>*'` finds
//!   the record.
//! - The hex in a user key is SHA-256 of the user name's UTF-8 bytes
//!   (`printf %s alice | sha256sum`), so `redis-cli SMEMBERS
//!   'latchkey:user:{<that hex>}'` lists alice's session keys. User names
//!   are not secret, but they are data from outside: hashing keeps every
//!   key short, fixed-format and free of the bytes (`*`, `?`, newlines, a
//!   huge name) that would make key names a second parser of untrusted
//!   input. The set's members are checked against the user name on every
//!   read, so a hash collision could at worst add work, never show one user
//!   another's sessions.
//! - The prefix (default [`DEFAULT_PREFIX`], `latchkey:`) lets several
//!   applications, or several test runs, share one Redis. It must not
//!   contain `{` or `}` ([`RedisStore::with_prefix`]).
//!
//! # Expiry
//!
//! Every write sets the key's native expiry to the record's
//! [`Record::expires_at`], so Redis itself forgets dead sessions and nobody
//! has to call [`Store::purge_expired`]. The expiry is written as a time to
//! live, `expires_at` minus the store's clock ([`RedisStore::with_clock`]),
//! rather than as an absolute `PEXPIREAT`: the deadline was computed with the
//! app server's clock, so measuring it with the same clock keeps its meaning
//! when Redis's clock disagrees, and lets tests drive time with a
//! [`ManualClock`](crate::ManualClock). The time to live is never under one
//! second (a record written at its deadline stays readable long enough for
//! the manager to say *why* it ended) and never over ten years (Redis rejects
//! expiries past its range). A user set lives until the latest deadline of
//! the sessions added to it, so it disappears with them.
//!
//! # Atomicity
//!
//! `insert`, the versioned `replace`, `touch`, `rotate` and `remove` each
//! run as one Lua script (sent as `EVALSHA`, loaded on first use), so they
//! are atomic on the server: a stale version never lands, and a rotation is
//! seen whole or not at all. Each script makes all its checks, and the one
//! call that can fail (adding to a user set), before its first write, so a
//! script that fails has changed nothing. The scripts read only the head of
//! a record's JSON, `{"version":N,"expires_at":N,"state":{"live":{"created_at":N,"last_seen":N,`,
//! which is the fixed shape serde gives a [`Record`]; `touch` rewrites those
//! digits and keeps the rest of the value byte for byte, so no JSON is ever
//! re-encoded in Lua (whose numbers would round a `u64`). A value that does
//! not have that head is [`StoreError::Corrupt`] for that session only,
//! for reads ([`decode`]) as for writes.
//!
//! # The per-user index
//!
//! Writes add a session to its user's set; nothing removes it eagerly. A
//! set may therefore hold keys that expired, were removed, were retired by
//! rotation, or now belong to someone else. [`Store::sessions_of`] reads the
//! set and the records, returns exactly the live records bound to the user,
//! and removes the stale members, each only if its record is still what it
//! read (a compare-and-remove script), so a concurrent write that binds a
//! key to the user again is never undone. [`Store::purge_expired`] does the
//! same for every set.
//!
//! # Failures
//!
//! Redis down, unreachable, slow past the timeouts, or answering with an
//! error is a backend failure
//! ([`Error::is_backend_failure`](crate::Error::is_backend_failure)), never
//! a rejection that would log the user out: [`StoreError::Unavailable`]
//! when nothing changed, [`StoreError::OutcomeUnknown`] when a write was
//! sent and its answer lost. Connecting waits at most the connect timeout
//! (default 1 s) and each read or write at most the I/O timeout (default
//! 2 s). No call panics, and nothing runs in the background: connections
//! are kept in a small pool, a connection that failed is dropped, and the
//! next call connects again, so service resumes by itself when Redis
//! returns. What a caller may assume after each kind of fault, and how a
//! write whose reply was lost is retried without being applied twice, is
//! under [Faults](RedisStore#faults).
//!
//! # Deployment
//!
//! One Redis (6.0 or later), optionally with replicas and Sentinel in
//! front. For Redis Cluster use `RedisClusterStore` (feature
//! `redis-cluster`): a `RedisStore` pointed at one node of a cluster fails
//! (a backend error, never a rejection) on every key that node does not
//! serve, and its rotation writes two session keys and a user set in one
//! script, which a cluster allows only within one hash slot. The client is
//! the `redis` crate's synchronous one; with the `redis-tls` feature it
//! speaks TLS (rustls) to a `rediss://` URL, see [TLS](RedisStore#tls).
//! Without it, reach a remote Redis over a private network or a local TLS
//! tunnel.

use std::fmt::{self, Write as _};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rand::Rng as _;
use redis::{Client, Connection, ErrorKind, RedisError, Script};
use sha2::{Digest, Sha256};

use crate::clock::{Clock, SystemClock, Timestamp};
use crate::id::StoreKey;
use crate::store::{Record, RecordState, Store, StoreError};

/// The key prefix a [`RedisStore`] uses unless told otherwise.
pub const DEFAULT_PREFIX: &str = "latchkey:";

/// How long a [`RedisStore`] waits to connect, unless told otherwise.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// How long a [`RedisStore`] waits for one read or write on a connection,
/// unless told otherwise.
pub const DEFAULT_IO_TIMEOUT: Duration = Duration::from_secs(2);

/// How many idle connections a [`RedisStore`] keeps, unless told otherwise.
pub const DEFAULT_MAX_IDLE_CONNECTIONS: usize = 16;

/// How long a write's receipt outlives the longest retry of it (see Faults
/// on [`RedisStore`]); twice the connect and I/O timeouts are added.
const RECEIPT_TTL_MS: u64 = 60_000;
/// The shortest native expiry written: see the module docs.
const MIN_TTL_MS: u64 = 1_000;
/// The longest native expiry written (ten years): Redis refuses expiries
/// whose absolute time overflows, and a saturated far-future deadline
/// (`u64::MAX` milliseconds) would.
const MAX_TTL_MS: u64 = 10 * 365 * 24 * 60 * 60 * 1_000;
/// Keys asked for per SCAN step and per purge script call: large enough to
/// make few round trips, small enough that one script never blocks Redis
/// for long.
const BATCH: usize = 500;

#[cfg(feature = "redis-cluster")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis-cluster")))]
pub mod cluster;
mod scripts;

use self::scripts::{
    LUA_COMMON, LUA_INSERT, LUA_PURGE, LUA_REMOVE, LUA_REPLACE, LUA_ROTATE, LUA_TOUCH, LUA_UNINDEX,
};

/// The loaded scripts; `Script` keeps the SHA-1 so calls send `EVALSHA`
/// and fall back to `EVAL` once when Redis does not know it yet.
struct Scripts {
    insert: Script,
    replace: Script,
    touch: Script,
    rotate: Script,
    remove: Script,
    purge: Script,
    unindex: Script,
}

/// The source of a script: the shared Lua, then its body.
fn script_source(body: &str) -> String {
    format!("{LUA_COMMON}{body}")
}

impl Scripts {
    fn new() -> Scripts {
        let with_common = |body: &str| Script::new(&script_source(body));
        Scripts {
            insert: with_common(LUA_INSERT),
            replace: with_common(LUA_REPLACE),
            touch: with_common(LUA_TOUCH),
            rotate: with_common(LUA_ROTATE),
            remove: with_common(LUA_REMOVE),
            purge: with_common(LUA_PURGE),
            unindex: with_common(LUA_UNINDEX),
        }
    }
}

/// A [`Store`] in Redis, shared by every process that opens the same Redis
/// with the same prefix.
///
/// See the [module docs](self) for the key layout, expiry and atomicity.
///
/// # Faults
///
/// Every write is one Lua script, so it takes effect entirely or not at
/// all, and never twice. What a failed call leaves for the caller to
/// assume depends on when it failed:
///
/// - **Redis cannot be reached** (connection refused, connect timeout):
///   [`StoreError::Unavailable`]. Nothing was sent, nothing changed.
/// - **Redis answers with an error** (out of memory, a read-only replica,
///   `BUSY`, a key of the wrong type): `Unavailable`. The scripts of the
///   writes below check everything before their first write, so nothing
///   changed.
/// - **The connection drops before the reply** (Redis restarted or was
///   killed, its `timeout` setting closed a pooled connection, a proxy or
///   the network reset it): the command may or may not have run. The call
///   is retried once, at once, on a fresh connection. A read simply runs
///   again. A write carries a random receipt id: the script that applies it
///   also writes `{prefix}op:{<record hex>}:<id>` holding its answer, in
///   the same atomic step, and a script that finds its receipt returns that
///   answer instead of running again. So the retry reports what happened, exactly once: `Ok`
///   if either attempt applied the write, and [`StoreError::Conflict`],
///   [`StoreError::NotFound`] or [`StoreError::Exists`] only if neither
///   did (those answers are final: versions only grow, and a key removed or
///   taken stays so). If the retry gets no answer either, or Redis answers it
///   with an error while the first attempt may still be queued: a read is
///   `Unavailable`, a write [`StoreError::OutcomeUnknown`].
/// - **No reply within the I/O timeout** (Redis stalled, paused or
///   swamped): no retry, since the command may still be queued and the
///   caller should hear at once that Redis is slow. A read is
///   `Unavailable`, a write `OutcomeUnknown`. If the command runs later,
///   it runs once, with the checks it was sent with.
/// - **Redis restarts**: a connection open across the restart is a dropped
///   connection, as above. What the new process holds is Redis's own
///   durability: without persistence every session is gone (loads are
///   [`Error::Unknown`](crate::Error::Unknown), writes `NotFound`); with
///   RDB snapshots or AOF short of `appendfsync always`, writes from the
///   last moments may be gone although they returned `Ok`. A receipt is
///   kept, or lost, with its write.
/// - **Failover to a replica**: replication is asynchronous, so the same
///   holds for writes the old primary had not passed on. A write and its
///   receipt replicate as one transaction: a retry against the new primary
///   finds both or neither.
///
/// After `OutcomeUnknown` the record is in exactly one of two states,
/// never a mix, and the caller must allow for both:
///
/// | write | as before | as written |
/// |---|---|---|
/// | `insert` | no record | the record (a session no client holds a token for yet; it expires by itself) |
/// | `replace` | the record at `expected` | the new record |
/// | `rotate` | `old` at `expected`, no `new` | `old` retired, `new` written |
/// | `remove` | the record | no record |
/// | `touch` | activity not recorded | recorded (it only raises deadlines, so it needs no receipt) |
///
/// [`StoreManager`](crate::StoreManager) passes it on as
/// [`Error::Store`](crate::Error::Store), a backend failure: answer 503
/// and keep the cookie. It never retries it, so an applied save is never
/// applied again by `update`; a rotation that did land is reached through
/// the old cookie's grace window, like one whose response was lost.
///
/// A receipt costs one short key per write, dropped by Redis after a
/// minute plus twice the connect and I/O timeouts: long past the retry,
/// and past any late copy of the first attempt. `purge_expired` and
/// the cleaning of user sets are compare-and-delete steps that a retry
/// repeats harmlessly; only their counts may come out lower.
///
/// # TLS
///
/// With the `redis-tls` feature (rustls, no OpenSSL), a `rediss://` URL
/// connects over TLS and checks the server's certificate, for the host in
/// the URL, against the system's root certificates:
/// `RedisStore::open("rediss://:password@my-redis.example.com:6380/")`
/// reaches a managed, TLS-only Redis whose certificate a public CA signed.
/// For a server whose certificate a private CA signed, pass that CA's PEM
/// to `RedisStore::open_tls` (feature `redis-tls`); it is then the only CA trusted. A failed
/// handshake (an unknown CA, a certificate for another host, a server
/// without TLS) is a connection failure like any other: a backend failure,
/// [`StoreError::Unavailable`], never a fallback to plaintext. A
/// `redis://` URL never uses TLS, and a `#insecure` URL (no checks) is
/// refused. Client certificates (mutual TLS) are not supported. The
/// handshake counts against the connect timeout, and pooled connections
/// keep their TLS session, so it is paid once per connection. If the
/// application has not installed a rustls crypto provider by the first
/// TLS connection, the store installs `ring` as the process default.
///
/// # Example
/// ```no_run
/// use std::time::Duration;
/// use latchkey::{NewSession, RedisStore, SessionManager, StoreManager};
///
/// let store = RedisStore::open("redis://127.0.0.1:6379/")?
///     .with_prefix("myapp:sessions:")
///     .with_io_timeout(Duration::from_millis(500));
/// store.ping()?; // fail fast at startup if Redis is not there
/// let manager = StoreManager::new(store);
/// let issued = manager.create(NewSession::new().with_user("alice"))?;
/// // Any other app server with the same URL and prefix can load it.
/// assert!(manager.load(issued.token()).is_ok());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RedisStore {
    client: Client,
    prefix: String,
    connect_timeout: Duration,
    io_timeout: Duration,
    max_idle: usize,
    /// Idle connections. A connection is taken out for one operation and
    /// put back only if the operation succeeded, so a connection left in an
    /// unknown state (a timeout mid-reply) is never reused.
    idle: Mutex<Vec<Connection>>,
    clock: Arc<dyn Clock>,
    scripts: Scripts,
}

impl fmt::Debug for RedisStore {
    /// Shows where the store points, never the URL: it may carry a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let info = self.client.get_connection_info();
        f.debug_struct("RedisStore")
            .field("addr", &info.addr().to_string())
            .field("db", &info.redis_settings().db())
            .field("tls", &self.is_tls())
            .field("prefix", &self.prefix)
            .field("connect_timeout", &self.connect_timeout)
            .field("io_timeout", &self.io_timeout)
            .field("idle_connections", &self.idle.lock().len())
            .finish_non_exhaustive()
    }
}

/// Gives rustls a process-wide crypto provider (`ring`) if the
/// application has not installed one: the `redis` crate builds its TLS
/// configuration with rustls's process default, and without one rustls
/// panics. Called before each TLS connection rather than at `open`, so an
/// application that installs its own provider at startup keeps it.
#[cfg(feature = "redis-tls")]
fn ensure_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // rustls 0.23.48 deprecates its ring provider for lacking
        // post-quantum key exchange, yet picks it itself when `ring` is its
        // only backend (as here): aws-lc-rs would add a large C build.
        #[allow(deprecated)]
        let provider = rustls::crypto::ring::default_provider();
        // Err means another thread installed one first: that one is used.
        let _ = provider.install_default();
    }
}

/// Wraps a client error as the store being unavailable.
fn unavailable(e: RedisError) -> StoreError {
    StoreError::Unavailable(Box::new(e))
}

/// What a call does to Redis, which decides what a failure after its
/// request left means (see Faults on [`RedisStore`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Access {
    /// Reads, or removes what no reader can tell from its absence (a stale
    /// member of a user set): a failure is `Unavailable`.
    Read,
    /// Changes records: a failure after the request left is
    /// `OutcomeUnknown`.
    Write,
}

/// Whether a command that failed may have run on the server. An error
/// reply from Redis means it did not (the write scripts check before they
/// write), and neither did one the client refused before sending; any
/// other failure (I/O, a timeout, a reply that did not parse) came after
/// the request may have left.
fn may_have_run(e: &RedisError) -> bool {
    !matches!(
        e.kind(),
        ErrorKind::Server(_)
            | ErrorKind::Extension
            | ErrorKind::Client
            | ErrorKind::InvalidClientConfig
            | ErrorKind::AuthenticationFailed
    )
}

/// A stored value the scripts cannot read.
fn corrupt(key: &StoreKey, why: DecodeError) -> StoreError {
    StoreError::Corrupt {
        key: key.fingerprint(),
        source: Box::new(why),
    }
}

/// Why a stored value is not a record ([`decode`]); the store reports it
/// as [`StoreError::Corrupt`] for that session, with this as the source.
///
/// # Example
/// ```
/// use latchkey::store::redis::{decode, DecodeError};
///
/// let e = decode(b"not json").unwrap_err();
/// assert!(matches!(e, DecodeError::Body(_)));
/// assert_eq!(e.to_string(), "the stored value is not a valid record");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The value is not the JSON of a [`Record`].
    #[error("the stored value is not a valid record")]
    Body(#[source] serde_json::Error),
    /// The value is a record, but does not start with the head the store's
    /// scripts read and rewrite in place (see "Atomicity" in the
    /// [module docs](self)): it was not written by this store, and a write
    /// to it would be refused.
    #[error("the stored value does not start like a latchkey record")]
    Head,
}

/// Encodes a record as [`RedisStore`] stores it: JSON, starting with the
/// head its scripts read.
///
/// # Errors
/// The serde error if the record does not serialize (it always does for a
/// record built through this crate: numbers, strings, and a map with
/// string keys).
///
/// # Example
/// ```
/// use latchkey::store::redis::{decode, encode};
/// use latchkey::store::{Record, RecordState};
/// use latchkey::{EndReason, Timestamp};
///
/// let r = Record {
///     version: 3,
///     expires_at: Timestamp::from_unix_millis(10),
///     state: RecordState::Ended { reason: EndReason::Logout, at: Timestamp::UNIX_EPOCH },
/// };
/// let json = encode(&r)?;
/// assert!(json.starts_with(r#"{"version":3,"expires_at":10,"state":{"ended":"#));
/// assert_eq!(decode(json.as_bytes())?, r);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn encode(record: &Record) -> Result<String, serde_json::Error> {
    serde_json::to_string(record)
}

/// Decodes a stored value, as [`RedisStore`] does on every read. Arbitrary
/// bytes give an error, never a panic; a value is accepted only if the
/// store's scripts could also update it, so a record that reads can be
/// written.
///
/// # Errors
/// [`DecodeError`] saying what is wrong.
///
/// # Example
/// ```
/// use latchkey::store::redis::{decode, DecodeError};
///
/// assert!(matches!(decode(b"{\"version\":"), Err(DecodeError::Body(_))));
/// // Valid JSON of a record, but not as the store writes it: a space.
/// let spaced = br#"{"version": 1,"expires_at":5,"state":{"ended":{"reason":"logout","at":4}}}"#;
/// assert!(matches!(decode(spaced), Err(DecodeError::Head)));
/// let tight = br#"{"version":1,"expires_at":5,"state":{"ended":{"reason":"logout","at":4}}}"#;
/// assert_eq!(decode(tight)?.version, 1);
/// # Ok::<(), DecodeError>(())
/// ```
pub fn decode(value: &[u8]) -> Result<Record, DecodeError> {
    let record: Record = serde_json::from_slice(value).map_err(DecodeError::Body)?;
    // The head the scripts match, built from the numbers just decoded: a
    // leading zero, a space or another field order would make the scripts
    // call the record corrupt on the next write, so reads do too.
    let mut head = format!(
        r#"{{"version":{},"expires_at":{},"state":{{""#,
        record.version,
        record.expires_at.as_unix_millis()
    );
    if let RecordState::Live(live) = &record.state {
        // `write!` to a String cannot fail.
        let _ = write!(
            head,
            r#"live":{{"created_at":{},"last_seen":{},"#,
            live.created_at.as_unix_millis(),
            live.last_seen.as_unix_millis()
        );
    }
    if value.starts_with(head.as_bytes()) {
        Ok(record)
    } else {
        Err(DecodeError::Head)
    }
}

/// The JSON written for `record` under `key`. If serializing ever failed,
/// the write is refused rather than storing a placeholder.
fn encode_for(key: &StoreKey, record: &Record) -> Result<String, StoreError> {
    encode(record).map_err(|e| StoreError::Corrupt {
        key: key.fingerprint(),
        source: Box::new(e),
    })
}

/// The record in a stored value under `key`.
fn decode_for(key: &StoreKey, value: &[u8]) -> Result<Record, StoreError> {
    decode(value).map_err(|e| corrupt(key, e))
}

/// Escapes the glob characters of SCAN's MATCH so a prefix is matched
/// literally.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl RedisStore {
    /// A store for the Redis at `url`, with the default prefix, timeouts and
    /// the system clock. Nothing is connected yet (see [`RedisStore::ping`]).
    ///
    /// `url` is `redis://[[user]:password@]host[:port][/db]` or
    /// `redis+unix:///path/to/socket[?db=N]`; with the `redis-tls` feature
    /// also `rediss://…`, TLS verified against the system's root
    /// certificates (see [TLS](RedisStore#tls); `RedisStore::open_tls`
    /// trusts a private CA instead).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] if `url` is not a Redis URL this build
    /// supports: `rediss://` needs the `redis-tls` feature, and a
    /// `rediss://…#insecure` URL (no certificate check) is always refused.
    ///
    /// # Example
    /// ```
    /// use latchkey::RedisStore;
    ///
    /// // No server needed: connecting waits for the first operation.
    /// let store = RedisStore::open("redis://127.0.0.1:6379/0")?;
    /// assert_eq!(store.prefix(), "latchkey:");
    /// assert!(RedisStore::open("not a url").is_err());
    /// # Ok::<(), latchkey::StoreError>(())
    /// ```
    pub fn open(url: &str) -> Result<RedisStore, StoreError> {
        let client = Client::open(url).map_err(unavailable)?;
        RedisStore::from_client(client)
    }

    /// A store for the Redis at a `rediss://` `url`, over TLS, trusting
    /// the CA certificates in `root_ca_pem` (PEM, one or more) instead of
    /// the system's roots when it is `Some` (feature `redis-tls`). Nothing is
    /// connected yet (see [`RedisStore::ping`]).
    ///
    /// Use it for a Redis whose certificate a private CA signed (a
    /// self-managed server, many managed services); for a certificate from
    /// a public CA, `RedisStore::open("rediss://…")` or `None` here is
    /// enough. Either way the server's certificate must be valid for the
    /// host in `url` (a name or an IP address in its subject alternative
    /// names), or no connection is made.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] if `url` is not a `rediss://` URL, asks
    /// for `#insecure`, or `root_ca_pem` holds no certificate or one that
    /// does not parse: never a connection without TLS or without checks.
    ///
    /// # Example
    /// ```no_run
    /// use latchkey::RedisStore;
    ///
    /// let ca = std::fs::read("/etc/myapp/redis-ca.pem")?;
    /// let store = RedisStore::open_tls("rediss://:secret@redis.internal:6380/", Some(&ca))?;
    /// store.ping()?; // fails (a backend error) if the certificate does not check out
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "redis-tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis-tls")))]
    pub fn open_tls(url: &str, root_ca_pem: Option<&[u8]>) -> Result<RedisStore, StoreError> {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject as _;

        if let Some(pem) = root_ca_pem {
            // An empty or garbled file would otherwise make an empty trust
            // store, and every connection fail later with a less clear error.
            let mut certs = 0usize;
            for cert in CertificateDer::pem_slice_iter(pem) {
                cert.map_err(|e| {
                    unavailable(RedisError::from((
                        ErrorKind::InvalidClientConfig,
                        "the root CA PEM does not parse",
                        e.to_string(),
                    )))
                })?;
                certs += 1;
            }
            if certs == 0 {
                return Err(unavailable(RedisError::from((
                    ErrorKind::InvalidClientConfig,
                    "the root CA PEM holds no certificate",
                ))));
            }
        }
        let certificates = redis::TlsCertificates {
            client_tls: None,
            root_cert: root_ca_pem.map(<[u8]>::to_vec),
        };
        // Refuses a URL that is not `rediss://`: TLS was asked for.
        let client = Client::build_with_tls(url, certificates).map_err(unavailable)?;
        RedisStore::from_client(client)
    }

    fn from_client(client: Client) -> Result<RedisStore, StoreError> {
        if let redis::ConnectionAddr::TcpTls { insecure: true, .. } =
            client.get_connection_info().addr()
        {
            // `#insecure` turns off certificate checks: anyone on the path
            // could read and forge sessions. Refused here rather than at the
            // first call.
            return Err(unavailable(RedisError::from((
                ErrorKind::InvalidClientConfig,
                "a rediss:// URL with #insecure (no certificate check) is refused",
            ))));
        }
        Ok(RedisStore {
            client,
            prefix: DEFAULT_PREFIX.to_owned(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            io_timeout: DEFAULT_IO_TIMEOUT,
            max_idle: DEFAULT_MAX_IDLE_CONNECTIONS,
            idle: Mutex::new(Vec::new()),
            clock: Arc::new(SystemClock),
            scripts: Scripts::new(),
        })
    }

    /// Puts every key under `prefix` instead of [`DEFAULT_PREFIX`]. Stores
    /// with different prefixes on one Redis never see each other's sessions.
    ///
    /// # Panics
    /// If `prefix` contains `{` or `}`: key names carry a hash tag in braces
    /// (see the [module docs](self)), which a brace in the prefix would
    /// displace. [`RedisStore::try_with_prefix`] returns an error instead,
    /// for a prefix read from configuration.
    ///
    /// # Example
    /// ```
    /// # use latchkey::RedisStore;
    /// let store = RedisStore::open("redis://127.0.0.1/")?.with_prefix("shop:");
    /// assert_eq!(store.prefix(), "shop:");
    /// # Ok::<(), latchkey::StoreError>(())
    /// ```
    #[must_use]
    pub fn with_prefix(self, prefix: impl Into<String>) -> RedisStore {
        match self.try_with_prefix(prefix) {
            Ok(store) => store,
            Err(_) => panic!("a Redis key prefix must not contain '{{' or '}}'"),
        }
    }

    /// Puts every key under `prefix` instead of [`DEFAULT_PREFIX`], as
    /// [`RedisStore::with_prefix`] does.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] (a configuration error) if `prefix`
    /// contains `{` or `}`.
    ///
    /// # Example
    /// ```
    /// # use latchkey::RedisStore;
    /// let store = RedisStore::open("redis://127.0.0.1/")?.try_with_prefix("shop:")?;
    /// assert_eq!(store.prefix(), "shop:");
    /// assert!(RedisStore::open("redis://127.0.0.1/")?.try_with_prefix("{shop}:").is_err());
    /// # Ok::<(), latchkey::StoreError>(())
    /// ```
    pub fn try_with_prefix(mut self, prefix: impl Into<String>) -> Result<RedisStore, StoreError> {
        let prefix = prefix.into();
        check_prefix(&prefix)?;
        self.prefix = prefix;
        Ok(self)
    }

    /// Waits at most `timeout` to connect (default
    /// [`DEFAULT_CONNECT_TIMEOUT`]). A zero duration means the default.
    ///
    /// # Example
    /// ```
    /// # use std::time::Duration;
    /// # use latchkey::RedisStore;
    /// let store = RedisStore::open("redis://127.0.0.1/")?
    ///     .with_connect_timeout(Duration::from_millis(250));
    /// # Ok::<(), latchkey::StoreError>(())
    /// ```
    #[must_use]
    pub fn with_connect_timeout(mut self, timeout: Duration) -> RedisStore {
        // A zero timeout would make the socket calls fail outright.
        self.connect_timeout = if timeout.is_zero() {
            DEFAULT_CONNECT_TIMEOUT
        } else {
            timeout
        };
        self
    }

    /// Waits at most `timeout` for each read and each write on a connection
    /// (default [`DEFAULT_IO_TIMEOUT`]). A zero duration means the default.
    ///
    /// # Example
    /// ```
    /// # use std::time::Duration;
    /// # use latchkey::RedisStore;
    /// let store = RedisStore::open("redis://127.0.0.1/")?
    ///     .with_io_timeout(Duration::from_millis(500));
    /// # Ok::<(), latchkey::StoreError>(())
    /// ```
    #[must_use]
    pub fn with_io_timeout(mut self, timeout: Duration) -> RedisStore {
        self.io_timeout = if timeout.is_zero() {
            DEFAULT_IO_TIMEOUT
        } else {
            timeout
        };
        self
    }

    /// Keeps at most `max` idle connections for reuse (default
    /// [`DEFAULT_MAX_IDLE_CONNECTIONS`]). Busy threads each hold one
    /// connection while they work; connections beyond `max` are closed when
    /// done. `0` connects afresh for every operation.
    ///
    /// # Example
    /// ```
    /// # use latchkey::RedisStore;
    /// let store = RedisStore::open("redis://127.0.0.1/")?.with_max_idle_connections(4);
    /// # Ok::<(), latchkey::StoreError>(())
    /// ```
    #[must_use]
    pub fn with_max_idle_connections(mut self, max: usize) -> RedisStore {
        self.max_idle = max;
        self
    }

    /// Measures native expiry with `clock` (default the system clock): give
    /// it the manager's clock in tests.
    ///
    /// # Example
    /// ```
    /// use std::sync::Arc;
    /// use latchkey::{ManualClock, RedisStore, StoreManager, Timestamp};
    ///
    /// let clock = ManualClock::new(Timestamp::from_unix_millis(1_800_000_000_000));
    /// let store = RedisStore::open("redis://127.0.0.1/")?.with_clock(Arc::new(clock.clone()));
    /// let manager = StoreManager::new(store).with_clock(Arc::new(clock));
    /// # Ok::<(), latchkey::StoreError>(())
    /// ```
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> RedisStore {
        self.clock = clock;
        self
    }

    /// The key prefix.
    ///
    /// # Example
    /// ```
    /// # use latchkey::RedisStore;
    /// assert_eq!(RedisStore::open("redis://127.0.0.1/")?.prefix(), "latchkey:");
    /// # Ok::<(), latchkey::StoreError>(())
    /// ```
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The Redis key holding the record under `key`, e.g. for `redis-cli GET`.
    ///
    /// # Example
    /// ```
    /// # use latchkey::{RedisStore, SessionId};
    /// let store = RedisStore::open("redis://127.0.0.1/")?;
    /// let key = SessionId::generate().store_key();
    /// assert_eq!(store.record_key(&key), format!("latchkey:session:{{{}}}", key.to_hex()));
    /// # Ok::<(), latchkey::StoreError>(())
    /// ```
    pub fn record_key(&self, key: &StoreKey) -> String {
        record_key(&self.prefix, key)
    }

    /// The Redis key of `user`'s index set: the prefix, `user:`, and the hex
    /// SHA-256 of the name in braces (a Redis Cluster hash tag).
    ///
    /// # Example
    /// ```
    /// # use latchkey::RedisStore;
    /// let store = RedisStore::open("redis://127.0.0.1/")?;
    /// let set = store.user_key("alice");
    /// assert!(set.starts_with("latchkey:user:{"));
    /// assert_eq!(set.len(), "latchkey:user:{}".len() + 64);
    /// # Ok::<(), latchkey::StoreError>(())
    /// ```
    pub fn user_key(&self, user: &str) -> String {
        user_key(&self.prefix, user)
    }

    /// A fresh receipt key for one write to the record under `key` (see
    /// Faults on [`RedisStore`]): see [`receipt_key`].
    fn receipt(&self, key: &StoreKey) -> String {
        receipt_key(&self.prefix, key)
    }

    /// Checks that Redis answers, connecting if needed.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] if it does not, within the timeouts.
    ///
    /// # Example
    /// ```no_run
    /// # use latchkey::RedisStore;
    /// let store = RedisStore::open("redis://127.0.0.1/")?;
    /// store.ping()?;
    /// # Ok::<(), latchkey::StoreError>(())
    /// ```
    pub fn ping(&self) -> Result<(), StoreError> {
        self.with_con(Access::Read, |con| redis::cmd("PING").query::<()>(con))
    }

    fn connect(&self) -> Result<Connection, RedisError> {
        #[cfg(feature = "redis-tls")]
        if self.is_tls() {
            ensure_crypto_provider();
        }
        let con = self
            .client
            .get_connection_with_timeout(self.connect_timeout)?;
        con.set_read_timeout(Some(self.io_timeout))?;
        con.set_write_timeout(Some(self.io_timeout))?;
        Ok(con)
    }

    /// Whether connections use TLS (a `rediss://` URL).
    fn is_tls(&self) -> bool {
        matches!(
            self.client.get_connection_info().addr(),
            redis::ConnectionAddr::TcpTls { .. }
        )
    }

    fn release(&self, con: Connection) {
        let mut idle = self.idle.lock();
        if idle.len() < self.max_idle {
            idle.push(con);
        }
    }

    /// Runs `op` on a pooled or fresh connection, retrying it once on a
    /// fresh one if the connection dropped; see Faults on [`RedisStore`]
    /// for what each failure becomes. `op` may therefore run twice: a write
    /// must carry a receipt ([`RedisStore::receipt`]) or be idempotent.
    fn with_con<T>(
        &self,
        access: Access,
        mut op: impl FnMut(&mut Connection) -> Result<T, RedisError>,
    ) -> Result<T, StoreError> {
        let pooled = self.idle.lock().pop();
        let mut con = match pooled {
            Some(con) => con,
            // Nothing was sent: whatever went wrong, nothing changed.
            None => self.connect().map_err(unavailable)?,
        };
        let first = match op(&mut con) {
            Ok(v) => {
                self.release(con);
                return Ok(v);
            }
            Err(e) => e,
        };
        // A reply may still arrive on it: never reused.
        drop(con);
        if first.is_io_error() || first.is_connection_dropped() {
            // Whatever closed this connection (a restart, the server's idle
            // timeout) closed its siblings too.
            self.idle.lock().clear();
        }
        if !may_have_run(&first) {
            return Err(unavailable(first));
        }
        let lost = |e: RedisError| match access {
            Access::Read => unavailable(e),
            Access::Write => StoreError::OutcomeUnknown(Box::new(e)),
        };
        // Not after a timeout: the command may still be queued on a
        // stalled server, and the caller must hear at once that Redis is
        // slow, not wait for a second timeout.
        if first.is_timeout() || !first.is_connection_dropped() {
            return Err(lost(first));
        }
        let retried = self.connect().and_then(|mut fresh| {
            let v = op(&mut fresh)?;
            Ok((v, fresh))
        });
        match retried {
            Ok((v, fresh)) => {
                self.release(fresh);
                Ok(v)
            }
            Err(e) => match access {
                Access::Read => Err(unavailable(e)),
                // Even an error reply to the retry settles nothing: the
                // first attempt may still be queued behind it (a proxy
                // between us and Redis).
                Access::Write => Err(lost(first)),
            },
        }
    }

    /// How long a receipt lives, in milliseconds: see [`receipt_ttl`].
    fn receipt_ttl(&self) -> u64 {
        receipt_ttl(self.connect_timeout, self.io_timeout)
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// The native time to live for a record that dies at `deadline`.
    fn ttl(&self, deadline: Timestamp, now: Timestamp) -> u64 {
        ttl(deadline, now)
    }

    /// The user set a record belongs in: see [`index_entry`].
    fn index_entry(&self, record: &Record, now: Timestamp) -> Option<(String, u64)> {
        index_entry(&self.prefix, record, now)
    }

    /// The live records in `set` that `keep` accepts; removes the members
    /// that are missing or rejected (unless their record changed since it
    /// was read). Corrupt records are skipped and left to expire.
    fn read_index(
        &self,
        set: &str,
        keep: impl Fn(&Record) -> bool,
    ) -> Result<Vec<(StoreKey, Record)>, StoreError> {
        let (members, values) = self.with_con(Access::Read, |con| {
            let members: Vec<String> = redis::cmd("SMEMBERS").arg(set).query(con)?;
            let keys: Vec<String> = members
                .iter()
                .filter_map(|m| StoreKey::from_hex(m))
                .map(|k| self.record_key(&k))
                .collect();
            // Bytes, not strings: a value that is not UTF-8 is one corrupt
            // record, not a failed call.
            let mut values: Vec<Option<Vec<u8>>> = Vec::with_capacity(keys.len());
            for chunk in keys.chunks(BATCH) {
                values.extend(
                    redis::cmd("MGET")
                        .arg(chunk)
                        .query::<Vec<Option<Vec<u8>>>>(con)?,
                );
            }
            Ok((members, values))
        })?;
        let mut out = Vec::new();
        let mut stale: Vec<(String, Option<StoreKey>, Vec<u8>)> = Vec::new();
        let mut values = values.into_iter();
        for member in members {
            let Some(key) = StoreKey::from_hex(&member) else {
                // Not written by this store: nothing can ever match it.
                stale.push((member, None, Vec::new()));
                continue;
            };
            match values.next().flatten() {
                None => stale.push((member, Some(key), Vec::new())),
                Some(raw) => match decode(&raw) {
                    Ok(record) if keep(&record) => out.push((key, record)),
                    Ok(_) => stale.push((member, Some(key), raw)),
                    Err(_) => {}
                },
            }
        }
        if !stale.is_empty() {
            // Compare-and-remove: a retry repeats it harmlessly.
            self.with_con(Access::Read, |con| {
                let mut inv = self.scripts.unindex.prepare_invoke();
                inv.key(set);
                let mut odd = Vec::new();
                for (member, key, seen) in &stale {
                    match key {
                        Some(k) => {
                            inv.key(self.record_key(k)).arg(member).arg(seen);
                        }
                        None => odd.push(member),
                    }
                }
                inv.invoke::<i64>(con)?;
                if !odd.is_empty() {
                    redis::cmd("SREM").arg(set).arg(&odd).query::<i64>(con)?;
                }
                Ok(())
            })?;
        }
        Ok(out)
    }

    /// One SCAN pass over the keys under the prefix followed by `rest`,
    /// handing each batch of names to `f`.
    fn scan(
        &self,
        rest: &str,
        mut f: impl FnMut(Vec<String>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let pattern = format!("{}{rest}*", glob_escape(&self.prefix));
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = self.with_con(Access::Read, |con| {
                redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(BATCH)
                    .query(con)
            })?;
            if !keys.is_empty() {
                f(keys)?;
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }
}

/// Hex SHA-256 of a user name: fixed length, no bytes from the name.
fn user_hash(user: &str) -> String {
    StoreKey::from_bytes(Sha256::digest(user.as_bytes()).into()).to_hex()
}

// The key names, shared by every Redis store. Each carries the hex of the
// thing it belongs to in braces, a Redis Cluster hash tag: a record and
// the receipts of its writes hash to one slot, so every script touches one
// slot (see the module docs). The prefix holds no brace ([`check_prefix`]),
// so the first `{` of a name is always the tag's.

/// `{prefix}session:{<64 hex>}`: the record under `key`.
fn record_key(prefix: &str, key: &StoreKey) -> String {
    format!("{prefix}session:{{{}}}", key.to_hex())
}

/// `{prefix}user:{<64 hex>}`: `user`'s index set.
fn user_key(prefix: &str, user: &str) -> String {
    format!("{prefix}user:{{{}}}", user_hash(user))
}

/// The user hash in a user set's name, if it is one under `prefix`.
fn set_user_hash<'a>(prefix: &str, set: &'a str) -> Option<&'a str> {
    set.strip_prefix(prefix)?
        .strip_prefix("user:{")?
        .strip_suffix('}')
}

/// `{prefix}op:{<record hex>}:<32 hex>`: a fresh receipt key for one write
/// to the record under `key` (see Faults on [`RedisStore`]), in that
/// record's slot. 128 random bits, so no other write, here or in another
/// process, ever finds it.
fn receipt_key(prefix: &str, key: &StoreKey) -> String {
    let mut id = [0u8; 16];
    rand::rng().fill_bytes(&mut id);
    let mut name = String::with_capacity(prefix.len() + 3 + 66 + 1 + 2 * id.len());
    name.push_str(prefix);
    name.push_str("op:{");
    name.push_str(&key.to_hex());
    name.push_str("}:");
    for b in id {
        // `write!` to a String cannot fail.
        let _ = write!(name, "{b:02x}");
    }
    name
}

/// Why a prefix is refused: it holds a brace, which would move the Redis
/// Cluster hash tag out of the key's hex.
fn check_prefix(prefix: &str) -> Result<(), StoreError> {
    if prefix.contains(['{', '}']) {
        return Err(unavailable(RedisError::from((
            ErrorKind::InvalidClientConfig,
            "a key prefix must not contain '{' or '}'",
        ))));
    }
    Ok(())
}

/// How long a receipt lives, in milliseconds: a minute past the longest the
/// retry of its write can take (within what Redis accepts).
fn receipt_ttl(connect_timeout: Duration, io_timeout: Duration) -> u64 {
    let retry = connect_timeout.saturating_add(io_timeout);
    let retry_ms = u64::try_from(retry.as_millis()).unwrap_or(u64::MAX);
    RECEIPT_TTL_MS
        .saturating_add(retry_ms.saturating_mul(2))
        .min(MAX_TTL_MS)
}

/// The native time to live for a record that dies at `deadline`.
fn ttl(deadline: Timestamp, now: Timestamp) -> u64 {
    deadline
        .as_unix_millis()
        .saturating_sub(now.as_unix_millis())
        .clamp(MIN_TTL_MS, MAX_TTL_MS)
}

/// The user set a record belongs in, and how long that set must live:
/// until the later of the record's expiry and, for a live record, its
/// absolute deadline, which no touch can pass.
fn index_entry(prefix: &str, record: &Record, now: Timestamp) -> Option<(String, u64)> {
    let RecordState::Live(live) = &record.state else {
        return None;
    };
    let user = live.user.as_deref()?;
    let until = record.expires_at.max(live.absolute_deadline);
    Some((user_key(prefix, user), ttl(until, now)))
}

impl Store for RedisStore {
    fn insert(&self, key: &StoreKey, record: &Record) -> Result<(), StoreError> {
        let now = self.now();
        let (rkey, json) = (self.record_key(key), encode_for(key, record)?);
        let ttl = self.ttl(record.expires_at, now);
        let index = self.index_entry(record, now);
        let (receipt, receipt_ttl) = (self.receipt(key), self.receipt_ttl());
        let code: i64 = self.with_con(Access::Write, |con| {
            let mut inv = self.scripts.insert.prepare_invoke();
            inv.key(&receipt).arg(receipt_ttl);
            inv.key(&rkey).arg(&json).arg(ttl);
            if let Some((set, set_ttl)) = &index {
                inv.key(set).arg(key.to_hex()).arg(set_ttl);
            }
            inv.invoke(con)
        })?;
        match code {
            1 => Ok(()),
            _ => Err(StoreError::Exists),
        }
    }

    fn get(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        let rkey = self.record_key(key);
        let raw: Option<Vec<u8>> =
            self.with_con(Access::Read, |con| redis::cmd("GET").arg(&rkey).query(con))?;
        raw.map(|raw| decode_for(key, &raw)).transpose()
    }

    fn replace(&self, key: &StoreKey, expected: u64, record: &Record) -> Result<(), StoreError> {
        let now = self.now();
        let (rkey, json) = (self.record_key(key), encode_for(key, record)?);
        let ttl = self.ttl(record.expires_at, now);
        let index = self.index_entry(record, now);
        let (receipt, receipt_ttl) = (self.receipt(key), self.receipt_ttl());
        let code: i64 = self.with_con(Access::Write, |con| {
            let mut inv = self.scripts.replace.prepare_invoke();
            inv.key(&receipt).arg(receipt_ttl);
            inv.key(&rkey).arg(expected.to_string()).arg(&json).arg(ttl);
            if let Some((set, set_ttl)) = &index {
                inv.key(set).arg(key.to_hex()).arg(set_ttl);
            }
            inv.invoke(con)
        })?;
        match code {
            1 => Ok(()),
            0 => Err(StoreError::NotFound),
            -1 => Err(StoreError::Conflict),
            _ => Err(corrupt(key, DecodeError::Head)),
        }
    }

    fn touch(
        &self,
        key: &StoreKey,
        last_seen: Timestamp,
        expires_at: Timestamp,
    ) -> Result<bool, StoreError> {
        let rkey = self.record_key(key);
        let ttl = self.ttl(expires_at, self.now());
        // No receipt: a touch only raises deadlines, so a retry that runs
        // it again changes nothing more.
        let code: i64 = self.with_con(Access::Write, |con| {
            self.scripts
                .touch
                .key(&rkey)
                .arg(last_seen.as_unix_millis().to_string())
                .arg(expires_at.as_unix_millis().to_string())
                .arg(ttl)
                .invoke(con)
        })?;
        match code {
            1 => Ok(true),
            0 => Ok(false),
            _ => Err(corrupt(key, DecodeError::Head)),
        }
    }

    fn rotate(
        &self,
        old: &StoreKey,
        expected: u64,
        retired: &Record,
        new: &StoreKey,
        record: &Record,
    ) -> Result<(), StoreError> {
        let now = self.now();
        let (old_key, new_key) = (self.record_key(old), self.record_key(new));
        let (retired_json, record_json) = (encode_for(old, retired)?, encode_for(new, record)?);
        let (retired_ttl, record_ttl) = (
            self.ttl(retired.expires_at, now),
            self.ttl(record.expires_at, now),
        );
        let sets = [
            self.index_entry(retired, now).map(|e| (e, old.to_hex())),
            self.index_entry(record, now).map(|e| (e, new.to_hex())),
        ];
        let (receipt, receipt_ttl) = (self.receipt(old), self.receipt_ttl());
        let code: i64 = self.with_con(Access::Write, |con| {
            let mut inv = self.scripts.rotate.prepare_invoke();
            inv.key(&receipt).arg(receipt_ttl);
            inv.key(&old_key)
                .key(&new_key)
                .arg(expected.to_string())
                .arg(&retired_json)
                .arg(retired_ttl)
                .arg(&record_json)
                .arg(record_ttl);
            for ((set, set_ttl), member) in sets.iter().flatten() {
                inv.key(set).arg(member).arg(set_ttl);
            }
            inv.invoke(con)
        })?;
        match code {
            1 => Ok(()),
            0 => Err(StoreError::NotFound),
            -1 => Err(StoreError::Conflict),
            -3 => Err(StoreError::Exists),
            _ => Err(corrupt(old, DecodeError::Head)),
        }
    }

    fn remove(&self, key: &StoreKey) -> Result<bool, StoreError> {
        // The user set keeps the member until the next read cleans it.
        let rkey = self.record_key(key);
        let (receipt, receipt_ttl) = (self.receipt(key), self.receipt_ttl());
        let n: i64 = self.with_con(Access::Write, |con| {
            self.scripts
                .remove
                .key(&receipt)
                .key(&rkey)
                .arg(receipt_ttl)
                .invoke(con)
        })?;
        Ok(n > 0)
    }

    fn sessions_of(&self, user: &str) -> Result<Vec<(StoreKey, Record)>, StoreError> {
        self.read_index(&self.user_key(user), |r| r.user() == Some(user))
    }

    /// Deletes the records with `expires_at <= now` (Redis's native expiry
    /// already dropped most of them, measured by the store's clock), then
    /// cleans every user set. It visits every key under the prefix with
    /// SCAN, in batches, so it never blocks Redis for long but costs time
    /// in proportion to the number of sessions: with native expiry in
    /// place, calling it is optional (say, hourly, to trim user sets).
    fn purge_expired(&self, now: Timestamp) -> Result<usize, StoreError> {
        let now_arg = now.as_unix_millis().to_string();
        let mut purged = 0usize;
        self.scan("session:", |keys| {
            let n: i64 = self.with_con(Access::Write, |con| {
                let mut inv = self.scripts.purge.prepare_invoke();
                for k in &keys {
                    inv.key(k);
                }
                inv.arg(&now_arg).invoke(con)
            })?;
            purged += usize::try_from(n).unwrap_or(0);
            Ok(())
        })?;
        self.scan("user:", |sets| {
            for set in sets {
                let Some(hash) = set_user_hash(&self.prefix, &set) else {
                    continue;
                };
                let hash = hash.to_owned();
                self.read_index(&set, |r| {
                    r.expires_at > now && r.user().is_some_and(|u| user_hash(u) == hash)
                })?;
            }
            Ok(())
        })?;
        Ok(purged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::SessionData;
    use crate::id::SessionId;
    use crate::store::{EndReason, LiveSession};

    fn live_record() -> Record {
        Record {
            version: 7,
            expires_at: Timestamp::from_unix_millis(1_800_000_600_000),
            state: RecordState::Live(LiveSession {
                created_at: Timestamp::from_unix_millis(1_800_000_000_000),
                last_seen: Timestamp::from_unix_millis(1_800_000_000_001),
                auth_at: None,
                absolute_deadline: Timestamp::from_unix_millis(1_800_003_600_000),
                user: Some("alice".into()),
                device: None,
                data: SessionData::default(),
            }),
        }
    }

    /// The Lua scripts read and rewrite this head in place; if serde ever
    /// wrote the fields in another order, they would call every record
    /// corrupt. This test fails first.
    #[test]
    fn record_json_starts_with_the_head_the_scripts_parse() {
        let k = SessionId::generate().store_key();
        let json = encode_for(&k, &live_record()).unwrap();
        assert!(
            json.starts_with(
                r#"{"version":7,"expires_at":1800000600000,"state":{"live":{"created_at":1800000000000,"last_seen":1800000000001,"#
            ),
            "{json}"
        );
        let ended = Record {
            version: 3,
            expires_at: Timestamp::from_unix_millis(5),
            state: RecordState::Ended {
                reason: EndReason::Logout,
                at: Timestamp::from_unix_millis(4),
            },
        };
        assert!(
            encode_for(&k, &ended)
                .unwrap()
                .starts_with(r#"{"version":3,"expires_at":5,"state":{"ended":"#),
            "{ended:?}"
        );
    }

    #[test]
    fn decode_reads_back_exactly_what_encode_writes() {
        let ended = Record {
            version: 3,
            expires_at: Timestamp::from_unix_millis(5),
            state: RecordState::Ended {
                reason: EndReason::Logout,
                at: Timestamp::from_unix_millis(4),
            },
        };
        for r in [live_record(), ended] {
            let json = encode(&r).unwrap();
            assert_eq!(decode(json.as_bytes()).unwrap(), r);
        }
    }

    /// What `get` accepts, `replace` and `touch` must be able to update:
    /// a value whose head the scripts would not match is corrupt on read
    /// too, not readable and then unwritable.
    #[test]
    fn decode_refuses_records_the_scripts_could_not_update() {
        let good = encode(&live_record()).unwrap();
        assert!(decode(good.as_bytes()).is_ok());
        // A leading zero: the script would compare "07" with "7".
        let zero = good.replacen(r#"{"version":7"#, r#"{"version":07"#, 1);
        assert!(decode(zero.as_bytes()).is_err(), "{zero}");
        let variants = [
            good.replacen(r#"{"version":7"#, r#"{ "version":7"#, 1),
            good.replacen(r#""last_seen":"#, r#""last_seen" :"#, 1),
            // The same live session, fields in another order.
            good.replacen(
                r#""created_at":1800000000000,"last_seen":1800000000001"#,
                r#""last_seen":1800000000001,"created_at":1800000000000"#,
                1,
            ),
        ];
        for v in &variants {
            assert_ne!(v, &good);
            assert!(
                matches!(decode(v.as_bytes()), Err(DecodeError::Head)),
                "{v}"
            );
        }
        for bad in [
            &b""[..],
            b"{",
            b"\xff\xfe{\"version\":1}",
            b"[1,2,3]",
            b"{\"version\":18446744073709551616}",
        ] {
            assert!(matches!(decode(bad), Err(DecodeError::Body(_))), "{bad:?}");
        }
        let trailing = format!("{good} x");
        assert!(matches!(
            decode(trailing.as_bytes()),
            Err(DecodeError::Body(_))
        ));
    }

    #[test]
    fn receipts_are_fresh_fixed_format_keys_in_their_records_slot() {
        let store = RedisStore::open("redis://127.0.0.1/")
            .unwrap()
            .with_prefix("app:");
        let k = SessionId::generate().store_key();
        let (a, b) = (store.receipt(&k), store.receipt(&k));
        assert_ne!(a, b);
        let tag = format!("{{{}}}", k.to_hex());
        assert!(store.record_key(&k).contains(&tag));
        for r in [&a, &b] {
            let rest = r.strip_prefix("app:op:").unwrap();
            let id = rest.strip_prefix(&format!("{tag}:")).unwrap();
            assert_eq!(id.len(), 32, "{r}");
            assert!(id.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')));
        }
    }

    #[test]
    fn every_key_has_its_hex_as_the_first_braced_hash_tag() {
        let k = SessionId::generate().store_key();
        let tag = |name: &str| {
            let open = name.find('{').unwrap();
            let close = open + name[open..].find('}').unwrap();
            name[open + 1..close].to_owned()
        };
        assert_eq!(tag(&record_key("p:", &k)), k.to_hex());
        assert_eq!(tag(&receipt_key("p:", &k)), k.to_hex());
        assert_eq!(tag(&user_key("p:", "alice")), user_hash("alice"));
        assert_eq!(
            set_user_hash("p:", &user_key("p:", "alice")),
            Some(user_hash("alice").as_str())
        );
        assert_eq!(set_user_hash("q:", &user_key("p:", "alice")), None);
    }

    #[test]
    fn a_prefix_with_a_brace_is_refused() {
        let open = || RedisStore::open("redis://127.0.0.1/").unwrap();
        for bad in ["{app}:", "app}", "a{"] {
            assert!(
                matches!(open().try_with_prefix(bad), Err(StoreError::Unavailable(_))),
                "{bad}"
            );
            let caught = std::panic::catch_unwind(|| open().with_prefix(bad));
            assert!(caught.is_err(), "{bad}");
        }
        assert_eq!(open().try_with_prefix("app:").unwrap().prefix(), "app:");
    }

    #[test]
    fn a_receipt_outlives_the_longest_retry_by_a_minute() {
        let store = RedisStore::open("redis://127.0.0.1/")
            .unwrap()
            .with_connect_timeout(Duration::from_secs(1))
            .with_io_timeout(Duration::from_secs(2));
        assert_eq!(store.receipt_ttl(), 60_000 + 2 * 3_000);
        let slow = store.with_io_timeout(Duration::MAX);
        assert_eq!(slow.receipt_ttl(), MAX_TTL_MS);
    }

    #[test]
    fn only_an_error_reply_proves_a_command_did_not_run() {
        use std::io;
        let reply = |kind| RedisError::from((ErrorKind::Server(kind), "refused"));
        assert!(!may_have_run(&reply(redis::ServerErrorKind::ReadOnly)));
        assert!(!may_have_run(&reply(redis::ServerErrorKind::ResponseError)));
        for kind in [
            io::ErrorKind::ConnectionReset,
            io::ErrorKind::UnexpectedEof,
            io::ErrorKind::WouldBlock,
            io::ErrorKind::TimedOut,
        ] {
            assert!(
                may_have_run(&RedisError::from(io::Error::from(kind))),
                "{kind:?}"
            );
        }
    }

    #[test]
    fn debug_does_not_leak_the_url_password() {
        let store = RedisStore::open("redis://admin:hunter2@127.0.0.1:6390/3").unwrap();
        let dbg = format!("{store:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert!(!dbg.contains("admin"), "{dbg}");
        assert!(dbg.contains("127.0.0.1:6390"), "{dbg}");
    }

    #[test]
    fn glob_escape_makes_a_prefix_literal() {
        assert_eq!(glob_escape("app:*?[x]\\"), "app:\\*\\?\\[x\\]\\\\");
        assert_eq!(glob_escape("latchkey:"), "latchkey:");
    }

    #[test]
    fn user_keys_are_fixed_length_whatever_the_name() {
        let store = RedisStore::open("redis://127.0.0.1/").unwrap();
        let long = "x".repeat(100_000);
        for name in ["alice", "*", "a\nb\r\n", "../..", long.as_str(), ""] {
            let k = store.user_key(name);
            assert_eq!(k.len(), "latchkey:user:{}".len() + 64, "{name:.20}");
            assert!(
                k["latchkey:user:{".len()..k.len() - 1]
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit())
            );
        }
        assert_ne!(store.user_key("alice"), store.user_key("Alice"));
    }

    #[test]
    fn ttl_is_clamped_between_a_second_and_ten_years() {
        let store = RedisStore::open("redis://127.0.0.1/").unwrap();
        let now = Timestamp::from_unix_millis(1_800_000_000_000);
        let t = |ms: u64| store.ttl(Timestamp::from_unix_millis(ms), now);
        assert_eq!(t(1_800_000_060_000), 60_000);
        assert_eq!(t(1_000), MIN_TTL_MS);
        assert_eq!(t(u64::MAX), MAX_TTL_MS);
    }

    #[test]
    fn record_keys_hold_the_hash_never_the_token() {
        let store = RedisStore::open("redis://127.0.0.1/").unwrap();
        let id = SessionId::generate();
        let k = store.record_key(&id.store_key());
        assert!(!k.contains(&id.to_token()));
        assert!(k.ends_with(&format!("{{{}}}", id.store_key().to_hex())));
    }

    #[test]
    fn an_unreachable_server_is_unavailable_not_a_panic() {
        // Port 1 on loopback: nothing listens there, so the connect is
        // refused at once.
        let store = RedisStore::open("redis://127.0.0.1:1/").unwrap();
        let key = SessionId::generate().store_key();
        assert!(matches!(store.get(&key), Err(StoreError::Unavailable(_))));
        assert!(matches!(
            store.insert(&key, &live_record()),
            Err(StoreError::Unavailable(_))
        ));
        assert!(matches!(store.ping(), Err(StoreError::Unavailable(_))));
    }
}
