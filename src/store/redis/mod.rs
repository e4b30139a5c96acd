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
//! | `{prefix}session:{<64 hex>}` | string | the [`Record`] as JSON with short names (below), e.g. `{"v":1,"e":…,"s":{"live":{"c":…,"l":…,"a":…,"d":…,"u":"alice","data":{…}}}}` |
//! | `{prefix}user:{<64 hex>}` | hash | the user's index: the hex store keys of the user's sessions as fields, with empty values (`redis-cli HKEYS`) |
//! | `{prefix}op:{<64 hex>}:<32 hex>` | string | a `rotate`'s or `remove`'s receipt: its answer, for some seconds (see [Faults](RedisStore#faults)); the first hex is the record's |
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
//!   (`printf %s alice | sha256sum`), so `redis-cli HKEYS
//!   'latchkey:user:{<that hex>}'` lists alice's session keys. User names
//!   are not secret, but they are data from outside: hashing keeps every
//!   key short, fixed-format and free of the bytes (`*`, `?`, newlines, a
//!   huge name) that would make key names a second parser of untrusted
//!   input. The index's members are
//!   checked against the user name on every read, so a hash collision could
//!   at worst add work, never show one user another's sessions.
//! - A record's JSON ([`encode`], [`decode`]) is the [`Record`]'s own
//!   serde form with the names that repeat in every session cut short,
//!   which takes a typical session from about 280 bytes to about 200 (and
//!   Redis's allocation for it from 320 bytes to 224): `v` version, `e`
//!   expires_at, `s` state; in a live state `c` created_at, `l` last_seen,
//!   `a` auth_at, `d` absolute_deadline, `u` user, `dv` device (left out
//!   when there is none) and `data`; last, `w`, the random mark of the
//!   `replace` that wrote it (see [Faults](RedisStore#faults)), on records
//!   written by one. Rotated and ended states keep their
//!   long names: they live for a grace window or until expiry, not for a
//!   session's life.
//! - The prefix (default [`DEFAULT_PREFIX`], `latchkey:`) lets several
//!   applications, or several test runs, share one Redis. It must not
//!   contain `{` or `}` ([`RedisStore::with_prefix`]).
//!
//! A typical session (three small values, bound to a user of its own,
//! saved once) costs Redis about 610 bytes by `MEMORY USAGE`: 390 for the
//! record (230 bytes of JSON, 25 of them the save's mark) and its key,
//! 216 for the user's index. Receipts add about 90 bytes per rotation or
//! logout for their few seconds; saves leave none. The `redis_costs`
//! example in the repository measures it on your Redis.
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
//! expiries past its range). A user index lives until the latest deadline of
//! the sessions added to it, so it disappears with them.
//!
//! # Atomicity
//!
//! `insert`, the versioned `replace`, `touch`, `rotate` and `remove` each
//! run as one Lua script (sent as `EVALSHA`, loaded on first use), so they
//! are atomic on the server: a stale version never lands, and a rotation is
//! seen whole or not at all. Each script makes all its checks, and the one
//! call that can fail (adding to a user index), before its first write, so a
//! script that fails has changed nothing. The scripts read only the head of
//! a record's JSON, `{"v":N,"e":N,"s":{"live":{"c":N,"l":N,`,
//! which is the fixed shape [`encode`] gives a [`Record`]; `touch` rewrites those
//! digits and keeps the rest of the value byte for byte, so no JSON is ever
//! re-encoded in Lua (whose numbers would round a `u64`). A value that does
//! not have that head is [`StoreError::Corrupt`] for that session only,
//! for reads ([`decode`]) as for writes.
//!
//! # The per-user index
//!
//! A user's index is a hash rather than a set: Redis keeps a small hash
//! (up to 128 fields of up to 64 bytes, its defaults) as one compact
//! listpack, where a set of strings before Redis 7.2 takes a hash table,
//! about 110 bytes more per user.
//!
//! A write that binds a session to a user adds it to the user's index:
//! `insert` and `rotate` always, and `replace` only when the binding
//! changes. The replace script reads the stored record's head anyway (for
//! its version); if the stored record is live and its bytes after
//! `"a":…,` are `"d":N,"u":"…",` with the new
//! record's deadline and user (the bytes [`encode`] writes for them), the
//! session is already in that index, and the index lives at least until
//! that deadline, which the new record cannot outlive (a record that
//! would is indexed as usual). So an ordinary save, which keeps both,
//! writes one key, not two, and the check costs no extra read. The check
//! runs inside the same script as the write, so it is as atomic as
//! before: no other write comes between reading the stored record and
//! replacing it.
//!
//! Nothing removes a member eagerly. An index may therefore hold keys that
//! expired, were removed, were retired by rotation, or now belong to
//! someone else. [`Store::sessions_of`] reads the index and the records,
//! returns exactly the live records bound to the user, and removes the
//! stale members, each only if its record is still what it read (a
//! compare-and-remove script), so a concurrent write that binds a key to
//! the user again is never undone. A member is stale only when its record
//! is missing, not live, or bound to someone else: then the next write
//! that binds it to the user again is no same-binding save, and adds it
//! back. [`Store::purge_expired`] cleans every index by the same rule; it
//! does not drop the member of a live record that is past its deadline
//! but still stored, since a save that revived that record would not add
//! it back (it deletes such records first, and their members go on the
//! next read). An index deleted by hand loses its sessions from
//! `sessions_of` until they are next rotated or change user.
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
//! `redis-cluster`, module `cluster`), which shares these keys, records
//! and scripts: a `RedisStore` pointed at one node of a cluster fails (a
//! backend error, never a rejection) on every key that node does not
//! serve, and its rotation writes two session keys and a user index in one
//! script, which a cluster allows only within one hash slot. The client is the `redis` crate's synchronous one (see
//! [Connections](RedisStore#connections)); async servers use
//! `AsyncRedisStore` (feature `redis-async`, module `aio`), which
//! shares this store's keys, scripts and records, so both kinds of server
//! can share one Redis. With the
//! `redis-tls` feature it speaks TLS (rustls) to a `rediss://` URL, see
//! [TLS](RedisStore#tls). Without it, reach a remote Redis over a private
//! network or a local TLS tunnel.

use std::fmt::{self, Write as _};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use redis::{Client, Connection, ErrorKind, RedisError};

use crate::clock::{Clock, Timestamp};
use crate::id::StoreKey;
use crate::store::{Record, RecordState, Store, StoreError};

use self::core::{
    Access, Core, KeyKind, after_failed_retry, after_first_failure, decode_for, insert_answer,
    remove_answer, replace_answer, rotate_answer, scan_cmd, touch_answer, unavailable,
};

/// The key prefix a [`RedisStore`] uses unless told otherwise.
pub const DEFAULT_PREFIX: &str = "latchkey:";

/// How long a [`RedisStore`] waits to connect, unless told otherwise.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// How long a [`RedisStore`] waits for one read or write on a connection,
/// unless told otherwise.
pub const DEFAULT_IO_TIMEOUT: Duration = Duration::from_secs(2);

/// The most idle connections a [`RedisStore`] keeps, unless told
/// otherwise. The pool holds as many as the most calls it has seen in
/// flight at once, up to this cap, and closes those left unused for
/// [`POOL_SHRINK_AFTER`]: see [Connections](RedisStore#connections).
pub const DEFAULT_MAX_IDLE_CONNECTIONS: usize = 256;

/// How long an idle connection of a [`RedisStore`]'s pool may go unused
/// before it is closed.
pub const POOL_SHRINK_AFTER: Duration = Duration::from_secs(30);

/// How long a write's receipt outlives the longest retry of it (see Faults
/// on [`RedisStore`]); twice the connect and I/O timeouts are added.
const RECEIPT_MARGIN_MS: u64 = 10_000;
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
mod core;
mod scripts;
mod wire;

#[cfg(feature = "redis-async")]
pub mod aio;

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
///   again. A `rotate` or `remove` carries a random receipt id: the script
///   that applies it also writes `{prefix}op:{<record hex>}:<id>` holding
///   its answer, in the same atomic step, and a script that finds its
///   receipt returns that answer instead of running again. A `replace`
///   writes no receipt: its record ends with a random mark (`"w"`), which a
///   touch keeps, and its retry, told it is one, takes a record still
///   carrying its own mark as its first attempt's. An `insert` needs
///   neither: its key is fresh and random, so its retry takes a record
///   holding exactly the bytes it sends as its own. So the retry reports
///   what happened, exactly once: `Ok` if either attempt applied the write,
///   and [`StoreError::Conflict`], [`StoreError::NotFound`] or
///   [`StoreError::Exists`] only if neither did (those answers are final:
///   versions only grow, and a key removed or taken stays so). One case
///   stays open: a `replace` whose retry finds that another write already
///   followed (a version above its own) cannot tell whether its first
///   attempt landed before that one, and is `OutcomeUnknown`. If the retry
///   gets no answer either, or Redis answers it with an error while the
///   first attempt may still be queued: a read is `Unavailable`, a write
///   [`StoreError::OutcomeUnknown`].
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
///   last moments may be gone although they returned `Ok`. A receipt or a
///   mark is kept, or lost, with its write.
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
/// | `replace` | the record at `expected` | the new record, or a later write that followed it |
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
/// A receipt costs one short key per `rotate` and `remove`,
/// dropped by Redis after ten seconds plus twice the connect and I/O
/// timeouts (16 s by default): past the longest the retry can take, twice
/// over. A late copy of the first attempt that arrives after its receipt
/// is gone is refused by its own checks (the retry already moved the
/// version or removed the key), so it still never applies twice.
/// `purge_expired` and the cleaning of user indexes are compare-and-delete
/// steps that a retry repeats harmlessly; only their counts may come out
/// lower.
///
/// # Connections
///
/// Each call takes a connection from the store's pool for its one round
/// trip (two or three for `sessions_of`) and puts it back. A connection is
/// made only when none is idle, so the pool grows to the most calls that
/// were ever in flight at once, up to `with_max_idle_connections`
/// (default [`DEFAULT_MAX_IDLE_CONNECTIONS`], 256), and stays there while
/// that concurrency lasts: 64 threads calling at once keep 64
/// connections and make no new ones. Connections that sat idle for a
/// whole [`POOL_SHRINK_AFTER`] (30 s) are closed when a call next
/// returns one, so the pool shrinks when the load does. With a cap below
/// the number of threads that call at once, every call past the cap
/// connects and disconnects, costing Redis a connection per call: raise
/// the cap instead (the `redis_costs` example in the repository measures
/// it).
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
    core: Core,
    max_idle: usize,
    pool: Mutex<Pool>,
}

/// The idle connections. A connection is taken out for one operation and
/// put back only if the operation succeeded, so a connection left in an
/// unknown state (a timeout mid-reply) is never reused.
///
/// A connection is made only when none is idle, so the pool never holds
/// more than the most operations that were in flight at once: its size
/// follows the concurrency it meets. `fewest` is the fewest connections
/// that sat idle at any moment since `since`; that many went unused the
/// whole time, and are closed when the period ends.
struct Pool {
    idle: Vec<Connection>,
    fewest: usize,
    since: Instant,
}

impl fmt::Debug for RedisStore {
    /// Shows where the store points, never the URL: it may carry a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let info = self.client.get_connection_info();
        f.debug_struct("RedisStore")
            .field("addr", &info.addr().to_string())
            .field("db", &info.redis_settings().db())
            .field("tls", &self.is_tls())
            .field("prefix", &self.core.prefix)
            .field("connect_timeout", &self.core.connect_timeout)
            .field("io_timeout", &self.core.io_timeout)
            .field("idle_connections", &self.pool.lock().idle.len())
            .finish_non_exhaustive()
    }
}

/// Refuses a client for a `rediss://…#insecure` URL: `#insecure` turns
/// off certificate checks, and anyone on the path could read and forge
/// sessions. Refused when the store is made rather than at the first call.
fn refuse_insecure(client: &Client) -> Result<(), StoreError> {
    if let redis::ConnectionAddr::TcpTls { insecure: true, .. } =
        client.get_connection_info().addr()
    {
        return Err(unavailable(RedisError::from((
            ErrorKind::InvalidClientConfig,
            "a rediss:// URL with #insecure (no certificate check) is refused",
        ))));
    }
    Ok(())
}

/// A client for a `rediss://` `url` trusting the CAs in `root_ca_pem` if
/// given (else the system's roots), checked as `RedisStore::open_tls`
/// documents.
#[cfg(feature = "redis-tls")]
fn tls_client(url: &str, root_ca_pem: Option<&[u8]>) -> Result<Client, StoreError> {
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
    Client::build_with_tls(url, certificates).map_err(unavailable)
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

/// Encodes a record as [`RedisStore`] stores it: JSON with short field
/// names (see "What Redis holds" in the [module docs](self)), starting with
/// the head its scripts read.
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
/// assert!(json.starts_with(r#"{"v":3,"e":10,"s":{"ended":"#));
/// assert_eq!(decode(json.as_bytes())?, r);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn encode(record: &Record) -> Result<String, serde_json::Error> {
    serde_json::to_string(&wire::RecordOut::new(record))
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
/// assert!(matches!(decode(b"{\"v\":"), Err(DecodeError::Body(_))));
/// // Valid JSON of a record, but not as the store writes it: a space.
/// let spaced = br#"{"v": 1,"e":5,"s":{"ended":{"reason":"logout","at":4}}}"#;
/// assert!(matches!(decode(spaced), Err(DecodeError::Head)));
/// let tight = br#"{"v":1,"e":5,"s":{"ended":{"reason":"logout","at":4}}}"#;
/// assert_eq!(decode(tight)?.version, 1);
/// # Ok::<(), DecodeError>(())
/// ```
pub fn decode(value: &[u8]) -> Result<Record, DecodeError> {
    let record: Record = serde_json::from_slice::<wire::RecordIn>(value)
        .map_err(DecodeError::Body)?
        .into();
    // The head the scripts match, built from the numbers just decoded: a
    // leading zero, a space or another field order would make the scripts
    // call the record corrupt on the next write, so reads do too.
    let mut head = format!(
        r#"{{"v":{},"e":{},"s":{{""#,
        record.version,
        record.expires_at.as_unix_millis()
    );
    if let RecordState::Live(live) = &record.state {
        // `write!` to a String cannot fail.
        let _ = write!(
            head,
            r#"live":{{"c":{},"l":{},"#,
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
        RedisStore::from_client(tls_client(url, root_ca_pem)?)
    }

    fn from_client(client: Client) -> Result<RedisStore, StoreError> {
        refuse_insecure(&client)?;
        Ok(RedisStore {
            client,
            core: Core::new(),
            max_idle: DEFAULT_MAX_IDLE_CONNECTIONS,
            pool: Mutex::new(Pool {
                idle: Vec::new(),
                fewest: 0,
                since: Instant::now(),
            }),
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
        self.core.set_prefix(prefix.into())?;
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
        self.core.set_connect_timeout(timeout);
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
        self.core.set_io_timeout(timeout);
        self
    }

    /// Keeps at most `max` idle connections for reuse (default
    /// [`DEFAULT_MAX_IDLE_CONNECTIONS`]). Busy threads each hold one
    /// connection while they work; connections beyond `max` are closed when
    /// done, and the next call past `max` in flight connects again, so set
    /// it at least to the number of threads that call the store at once
    /// (see [Connections](RedisStore#connections)). `0` connects afresh for
    /// every operation.
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
        self.core.clock = clock;
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
        &self.core.prefix
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
        self.core.record_key(key)
    }

    /// The Redis key of `user`'s index (a hash): the prefix, `user:`, and
    /// the hex SHA-256 of the name in braces (a Redis Cluster hash tag).
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
        self.core.user_key(user)
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
        self.with_con(Access::Read, |con, _| redis::cmd("PING").query::<()>(con))
    }

    fn connect(&self) -> Result<Connection, RedisError> {
        #[cfg(feature = "redis-tls")]
        if self.is_tls() {
            ensure_crypto_provider();
        }
        let con = self
            .client
            .get_connection_with_timeout(self.core.connect_timeout)?;
        con.set_read_timeout(Some(self.core.io_timeout))?;
        con.set_write_timeout(Some(self.core.io_timeout))?;
        Ok(con)
    }

    /// Whether connections use TLS (a `rediss://` URL).
    fn is_tls(&self) -> bool {
        matches!(
            self.client.get_connection_info().addr(),
            redis::ConnectionAddr::TcpTls { .. }
        )
    }

    /// An idle connection, if there is one.
    fn take(&self) -> Option<Connection> {
        let mut pool = self.pool.lock();
        let con = pool.idle.pop();
        pool.fewest = pool.fewest.min(pool.idle.len());
        con
    }

    /// Puts a connection that worked back, unless `max_idle` are idle, and
    /// closes the connections that went unused for a whole
    /// [`POOL_SHRINK_AFTER`].
    fn release(&self, con: Connection) {
        let unused: Vec<Connection> = {
            let mut pool = self.pool.lock();
            if pool.idle.len() < self.max_idle {
                pool.idle.push(con);
            }
            if pool.since.elapsed() < POOL_SHRINK_AFTER {
                return;
            }
            // The oldest first: the bottom of the stack is what sat idle.
            let n = pool.fewest.min(pool.idle.len());
            let unused = pool.idle.drain(..n).collect();
            pool.fewest = pool.idle.len();
            pool.since = Instant::now();
            unused
        };
        // Closed outside the lock.
        drop(unused);
    }

    /// Runs `op` on a pooled or fresh connection, retrying it once on a
    /// fresh one if the connection dropped; see Faults on [`RedisStore`]
    /// for what each failure becomes. `op` may therefore run twice (its
    /// second argument says whether this is the retry): a write must carry
    /// a receipt or a mark, or be idempotent.
    fn with_con<T>(
        &self,
        access: Access,
        mut op: impl FnMut(&mut Connection, bool) -> Result<T, RedisError>,
    ) -> Result<T, StoreError> {
        let mut con = match self.take() {
            Some(con) => con,
            // Nothing was sent: whatever went wrong, nothing changed.
            None => self.connect().map_err(unavailable)?,
        };
        let first = match op(&mut con, false) {
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
            let closed = std::mem::take(&mut self.pool.lock().idle);
            drop(closed);
        }
        let first = after_first_failure(access, first)?;
        let retried = self.connect().and_then(|mut fresh| {
            let v = op(&mut fresh, true)?;
            Ok((v, fresh))
        });
        match retried {
            Ok((v, fresh)) => {
                self.release(fresh);
                Ok(v)
            }
            Err(e) => Err(after_failed_retry(access, first, e)),
        }
    }

    /// The live records in the index `set` that `keep` accepts; removes
    /// the members that are missing or rejected (unless their record
    /// changed since it was read). Corrupt records are skipped and left
    /// to expire.
    fn read_index(
        &self,
        set: &str,
        keep: impl Fn(&Record) -> bool,
    ) -> Result<Vec<(StoreKey, Record)>, StoreError> {
        let (members, values) = self.with_con(Access::Read, |con, _| {
            let members: Vec<String> = self.core.members_cmd(set).query(con)?;
            // Bytes, not strings: a value that is not UTF-8 is one corrupt
            // record, not a failed call.
            let mut values: Vec<Option<Vec<u8>>> = Vec::with_capacity(members.len());
            for cmd in self.core.values_cmds(&members) {
                values.extend(cmd.query::<Vec<Option<Vec<u8>>>>(con)?);
            }
            Ok((members, values))
        })?;
        let (out, stale) = self.core.sort_index(members, values, keep);
        if !stale.is_empty() {
            let (call, hdel) = self.core.unindex_requests(set, &stale);
            self.with_con(Access::Read, |con, _| {
                if let Some(call) = &call {
                    call.invocation(false).invoke::<i64>(con)?;
                }
                if let Some(hdel) = &hdel {
                    hdel.query::<i64>(con)?;
                }
                Ok(())
            })?;
        }
        Ok(out)
    }

    /// One SCAN pass over the keys of `kind`, handing each batch of names
    /// to `f`.
    fn scan(
        &self,
        kind: KeyKind,
        mut f: impl FnMut(Vec<String>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let pattern = self.core.scan_pattern(kind);
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<String>) =
                self.with_con(Access::Read, |con, _| scan_cmd(&pattern, cursor).query(con))?;
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

impl Store for RedisStore {
    fn insert(&self, key: &StoreKey, record: &Record) -> Result<(), StoreError> {
        let call = self.core.insert_call(key, record)?;
        let code = self.with_con(Access::Write, |con, retry| {
            call.invocation(retry).invoke(con)
        })?;
        insert_answer(code)
    }

    fn get(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        let cmd = self.core.get_cmd(key);
        let raw: Option<Vec<u8>> = self.with_con(Access::Read, |con, _| cmd.query(con))?;
        raw.map(|raw| decode_for(key, &raw)).transpose()
    }

    fn replace(&self, key: &StoreKey, expected: u64, record: &Record) -> Result<(), StoreError> {
        let call = self.core.replace_call(key, expected, record)?;
        let code = self.with_con(Access::Write, |con, retry| {
            call.invocation(retry).invoke(con)
        })?;
        replace_answer(key, code)
    }

    fn touch(
        &self,
        key: &StoreKey,
        last_seen: Timestamp,
        expires_at: Timestamp,
    ) -> Result<bool, StoreError> {
        let call = self.core.touch_call(key, last_seen, expires_at);
        let code = self.with_con(Access::Write, |con, retry| {
            call.invocation(retry).invoke(con)
        })?;
        touch_answer(key, code)
    }

    fn rotate(
        &self,
        old: &StoreKey,
        expected: u64,
        retired: &Record,
        new: &StoreKey,
        record: &Record,
    ) -> Result<(), StoreError> {
        let call = self.core.rotate_call(old, expected, retired, new, record)?;
        let code = self.with_con(Access::Write, |con, retry| {
            call.invocation(retry).invoke(con)
        })?;
        rotate_answer(old, code)
    }

    fn remove(&self, key: &StoreKey) -> Result<bool, StoreError> {
        // The user index keeps the member until the next read cleans it.
        let call = self.core.remove_call(key);
        let n = self.with_con(Access::Write, |con, retry| {
            call.invocation(retry).invoke(con)
        })?;
        Ok(remove_answer(n))
    }

    fn sessions_of(&self, user: &str) -> Result<Vec<(StoreKey, Record)>, StoreError> {
        self.read_index(&self.core.user_key(user), |r| r.user() == Some(user))
    }

    /// Deletes the records with `expires_at <= now` (Redis's native expiry
    /// already dropped most of them, measured by the store's clock), then
    /// cleans every user index. It visits every key under the prefix with
    /// SCAN, in batches, so it never blocks Redis for long but costs time
    /// in proportion to the number of sessions: with native expiry in
    /// place, calling it is optional (say, hourly, to trim user indexes).
    fn purge_expired(&self, now: Timestamp) -> Result<usize, StoreError> {
        let mut purged = 0usize;
        self.scan(KeyKind::Session, |keys| {
            let call = self.core.purge_call(keys, now);
            let n: i64 = self.with_con(Access::Write, |con, retry| {
                call.invocation(retry).invoke(con)
            })?;
            purged += usize::try_from(n).unwrap_or(0);
            Ok(())
        })?;
        self.scan(KeyKind::User, |sets| {
            for set in sets {
                let Some(hash) = self.core.index_owner(&set).map(str::to_owned) else {
                    continue;
                };
                // No time check: see `core::keeps_member`.
                self.read_index(&set, |r| core::keeps_member(r, &hash))?;
            }
            Ok(())
        })?;
        Ok(purged)
    }
}

#[cfg(test)]
mod tests {
    use super::core::{glob_escape, may_have_run, user_hash};
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
        let json = encode(&live_record()).unwrap();
        assert!(
            json.starts_with(
                r#"{"v":7,"e":1800000600000,"s":{"live":{"c":1800000000000,"l":1800000000001,"#
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
            encode(&ended)
                .unwrap()
                .starts_with(r#"{"v":3,"e":5,"s":{"ended":"#),
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
        let zero = good.replacen(r#"{"v":7"#, r#"{"v":07"#, 1);
        assert!(decode(zero.as_bytes()).is_err(), "{zero}");
        let variants = [
            good.replacen(r#"{"v":7"#, r#"{ "v":7"#, 1),
            good.replacen(r#""l":"#, r#""l" :"#, 1),
            // The same live session, fields in another order.
            good.replacen(
                r#""c":1800000000000,"l":1800000000001"#,
                r#""l":1800000000001,"c":1800000000000"#,
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
            b"{\"v\":18446744073709551616}",
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
        let (a, b) = (store.core.receipt(&k), store.core.receipt(&k));
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
        let store = RedisStore::open("redis://127.0.0.1/")
            .unwrap()
            .with_prefix("p:");
        let k = SessionId::generate().store_key();
        let tag = |name: &str| {
            let open = name.find('{').unwrap();
            let close = open + name[open..].find('}').unwrap();
            name[open + 1..close].to_owned()
        };
        assert_eq!(tag(&store.record_key(&k)), k.to_hex());
        assert_eq!(tag(&store.core.receipt(&k)), k.to_hex());
        assert_eq!(tag(&store.user_key("alice")), user_hash("alice"));
        assert_eq!(
            store.core.index_owner(&store.user_key("alice")),
            Some(user_hash("alice").as_str())
        );
        let other = RedisStore::open("redis://127.0.0.1/")
            .unwrap()
            .with_prefix("q:");
        assert_eq!(other.core.index_owner(&store.user_key("alice")), None);
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
    fn a_receipt_outlives_the_longest_retry_twice_over_by_ten_seconds() {
        let store = RedisStore::open("redis://127.0.0.1/")
            .unwrap()
            .with_connect_timeout(Duration::from_secs(1))
            .with_io_timeout(Duration::from_secs(2));
        assert_eq!(store.core.receipt_ttl(), 10_000 + 2 * 3_000);
        let slow = store.with_io_timeout(Duration::MAX);
        assert_eq!(slow.core.receipt_ttl(), MAX_TTL_MS);
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
        let t = |ms: u64| store.core.ttl(Timestamp::from_unix_millis(ms), now);
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
