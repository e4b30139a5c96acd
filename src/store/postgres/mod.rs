//! [`PostgresStore`]: sessions in one PostgreSQL table, one session space for
//! many app servers (feature `postgres`).
//!
//! Put several app servers behind a load balancer, point them all at one
//! database, and a user stays logged in whichever server answers. Each
//! record is one row; the version column makes every write a
//! compare-and-set, so two servers writing the same session cannot both
//! win, and a rotation writes both of its rows in one transaction.
//!
//! # Schema
//!
//! Nothing is created behind your back: run [`PostgresStore::migrate`] once
//! (at deploy time, from one process), or apply [`MIGRATION_SQL`] with your
//! own migration tool. For the default table it is:
//!
//! ```sql
//! CREATE TABLE IF NOT EXISTS "latchkey_sessions" (
//!     key        bytea  PRIMARY KEY CHECK (octet_length(key) = 32),
//!     version    bigint NOT NULL,
//!     expires_at bigint NOT NULL,
//!     last_seen  bigint NULL,
//!     user_name  bytea  NULL,
//!     record     text   NOT NULL
//! );
//! CREATE INDEX IF NOT EXISTS "latchkey_sessions_user_name"
//!     ON "latchkey_sessions" (user_name) WHERE user_name IS NOT NULL;
//! CREATE INDEX IF NOT EXISTS "latchkey_sessions_expires_at"
//!     ON "latchkey_sessions" (expires_at);
//! ```
//!
//! [`PostgresStore::with_table`] names another table (the indexes are named
//! after it); [`PostgresStore::migration_sql`] gives its SQL.
//!
//! - `key` is the [`StoreKey`] (SHA-256 of the session ID), never the
//!   token: a dump of the table cannot be replayed as cookies. A log line's
//!   [`Fingerprint`](crate::Fingerprint) is its first 12 hex digits:
//!   `SELECT * FROM latchkey_sessions WHERE encode(key, 'hex') LIKE '<fingerprint>%'`.
//! - `record` is the [`Record`] as JSON, the same text
//!   [`FileStore`](crate::FileStore) and `RedisStore` hold, e.g.
//!   `{"version":1,"expires_at":…,"state":{"live":{…}}}`. It is `text`, not
//!   `jsonb`, so it comes back byte for byte (`jsonb` would reorder keys and
//!   round numbers past 2^53 in some clients). A record over
//!   [`MAX_RECORD_BYTES`] is refused when written
//!   ([`StoreError::RecordTooLarge`]) so that everything written reads back.
//! - `version`, `expires_at` and `last_seen` are copies the SQL compares:
//!   the row's values win over the JSON's on every read, so that `touch`
//!   is one `UPDATE` that rewrites no JSON. Times are Unix milliseconds;
//!   `last_seen` is `NULL` exactly when the record is not live. A time past
//!   `i64::MAX` ms (a "never" deadline) is stored as `i64::MAX` and read
//!   back from the JSON. A version is stored as the `bigint` with the same
//!   bits (versions are only compared for equality).
//! - `user_name` is the UTF-8 bytes of the user bound to a live record, for
//!   [`Store::sessions_of`]. It is `bytea` rather than `text` because a
//!   user name is data from outside and may hold a NUL, which `text`
//!   refuses: `WHERE user_name = convert_to('alice', 'UTF8')`.
//!
//! # Expiry
//!
//! PostgreSQL has no native expiry: a row stays until
//! [`Store::purge_expired`] deletes it (`DELETE … WHERE expires_at <= $1`,
//! on the `expires_at` index). The manager never accepts an expired record,
//! so purging only reclaims space: run it from a timer every few minutes.
//!
//! # Atomicity
//!
//! Every write is one transaction at `READ COMMITTED`:
//!
//! - `insert`: `INSERT … ON CONFLICT (key) DO NOTHING`; no row inserted is
//!   [`StoreError::Exists`].
//! - `replace`: `UPDATE … WHERE key = $1 AND version = $2`. The row lock
//!   makes a concurrent writer wait and then re-check the version, so of
//!   two writers from the same version exactly one wins. No row updated:
//!   a `SELECT` in the same transaction tells [`StoreError::Conflict`]
//!   from [`StoreError::NotFound`].
//! - `touch`: `UPDATE … SET last_seen = GREATEST(last_seen, $2),
//!   expires_at = GREATEST(expires_at, $3)` on a live row, without a
//!   version bump, so a busy session's loads never make its saves
//!   conflict.
//! - `rotate`: the versioned `UPDATE` of `old` and the `INSERT` of `new`
//!   in one transaction, rolled back unless both succeed: readers see the
//!   old record and no new one, or the retired record and the new one.
//! - `remove` and `purge_expired`: `DELETE`.
//!
//! # The connection
//!
//! The client is `tokio-postgres`, driven by the store itself so that its
//! calls block like every other store's and every wait has a deadline:
//! each connection has its own current-thread tokio runtime (I/O and timer
//! drivers, no worker threads), which runs only while a call on that
//! connection blocks, under `tokio::time::timeout`. This is what the
//! synchronous `postgres` crate does too, minus the timeout it lacks. No
//! thread runs in the background and nothing async appears in this API;
//! the one thread tokio may start is its blocking pool's, to resolve a
//! host name while connecting (not for an IP address or a Unix socket).
//! Like every store whose [`Store::may_block`] is true, an async server
//! calls it through `spawn_blocking` (`latchkey-tower` does): tokio does
//! not let a thread that runs a runtime block on another, and a call made
//! there is [`StoreError::Unavailable`], saying so.
//! What the feature adds to a build: `tokio-postgres`, `tokio` (`rt`,
//! `net`, `time`), `futures-util` and friends, `postgres-protocol` with its
//! SCRAM and MD5 authentication (`md-5`, `stringprep`; `hmac`, `sha2` and
//! `rand` are the versions latchkey already uses), `socket2`, `whoami`,
//! `phf`, `log`, and older copies of `base64` (0.22) and `parking_lot`
//! (0.12); none of it enters a build without the feature. Connections are
//! plain TCP or Unix sockets (`NoTls`): reach a remote server over a
//! private network or a local TLS tunnel.
//!
//! The store keeps up to [`DEFAULT_MAX_IDLE_CONNECTIONS`] idle connections
//! in a pool (a mutex around a `Vec`, held only to take or return one);
//! each call takes one out, so calls run in parallel, and a call that finds
//! none opens one. A connection is returned only after a call succeeded.

mod sql;

use std::fmt;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::runtime::Runtime;
use tokio::time::Instant;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Config, NoTls, Row};

use self::sql::Sql;
pub use self::sql::{DEFAULT_TABLE, MIGRATION_SQL};
use crate::clock::Timestamp;
use crate::id::StoreKey;
use crate::store::{Record, RecordState, Store, StoreError};

/// How long a [`PostgresStore`] waits to connect, unless the connection
/// parameters say otherwise (`connect_timeout`).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// How long one statement may run on the server (`statement_timeout`), and
/// how long sent data may go unacknowledged before the connection is
/// dropped (`tcp_user_timeout`), unless told otherwise.
pub const DEFAULT_IO_TIMEOUT: Duration = Duration::from_secs(2);

/// How many idle connections a [`PostgresStore`] keeps, unless told
/// otherwise.
pub const DEFAULT_MAX_IDLE_CONNECTIONS: usize = 16;

/// The largest record, as JSON, that a [`PostgresStore`] writes and reads
/// back: 1 MiB.
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;

/// How many times a transaction the server rolled back as a serialization
/// failure or a deadlock is run in all before the call reports
/// [`StoreError::Conflict`].
const ATTEMPTS: usize = 3;

/// A [`Store`] in a PostgreSQL table, shared by every process that opens
/// the same database and table.
///
/// See the [module docs](self) for the schema, expiry and atomicity.
///
/// # Faults
///
/// Every write runs in an explicit transaction, so it takes effect
/// entirely or not at all, and never twice. What a failed call leaves for
/// the caller to assume depends on when it failed:
///
/// - **The server cannot be reached** (connection refused, no answer
///   within the connect timeout, authentication refused):
///   [`StoreError::Unavailable`].
///   Nothing was sent, nothing changed.
/// - **The server answers with an error** (the table is missing, a
///   statement ran past `statement_timeout`, the server is shutting down):
///   `Unavailable`. The transaction was rolled back: nothing changed.
/// - **Serialization failure or deadlock** (SQLSTATE `40001`, `40P01`):
///   the server rolled the transaction back, so it is run again on the same
///   connection, up to three attempts in all; then
///   [`StoreError::Conflict`]. The store's own statements at
///   `READ COMMITTED` do not raise them; a server whose triggers or
///   settings do will see them retried.
/// - **The connection drops before `COMMIT` was sent** (the server
///   restarted or was killed, an idle pooled connection was closed by the
///   server or a proxy): the open transaction dies with the connection and
///   nothing changed. If the connection came from the pool, the pool is
///   emptied (its siblings died too) and the call runs once more, at once,
///   on a fresh connection; so the first call after a server restart
///   succeeds. Otherwise, or if the retry fails too, `Unavailable`.
/// - **No answer within the I/O timeout, before `COMMIT` was sent** (the
///   server or the network stalled): the connection is closed, so the
///   open transaction dies with it and nothing changed:
///   [`StoreError::Unavailable`], without a retry (the stall holds every
///   connection). A read that times out is `Unavailable` too.
/// - **A lost reply to `COMMIT`**: the connection dropped, was reset or
///   timed out (no answer within the I/O timeout) after `COMMIT` was sent
///   and before its answer arrived, or the server answered it with
///   anything but a serialization failure.
///   PostgreSQL may or may not have committed, so the call reports
///   [`StoreError::OutcomeUnknown`] and never retries. This is the only
///   case of `OutcomeUnknown`; reads never report it.
/// - **The server restarts**: connections open across the restart are
///   dropped connections, as above, and the next call reconnects. What the
///   new server holds is PostgreSQL's durability: every committed write,
///   unless `synchronous_commit` or `fsync` was turned off.
///
/// After `OutcomeUnknown` the record is in exactly one of two states,
/// never a mix, and the caller must allow for both:
///
/// | write | as before | as written |
/// |---|---|---|
/// | `insert` | no row | the row (a session no client holds a token for yet; it expires) |
/// | `replace` | the row at `expected` | the new row |
/// | `rotate` | `old` at `expected`, no `new` | `old` retired, `new` written |
/// | `remove` | the row | no row |
/// | `touch` | activity not recorded | recorded |
///
/// [`StoreManager`](crate::StoreManager) passes it on as
/// [`Error::Store`](crate::Error::Store), a backend failure: answer 503
/// and keep the cookie. Every failure above is a backend failure
/// ([`Error::is_backend_failure`](crate::Error::is_backend_failure)),
/// never a rejection that would log the user out.
///
/// **Timeouts.** No call waits for the server without a deadline:
///
/// - Opening a connection (TCP, authentication, session setup) waits at
///   most the connect timeout ([`DEFAULT_CONNECT_TIMEOUT`], 1 s, or
///   [`with_connect_timeout`](PostgresStore::with_connect_timeout)) for
///   each host the parameters name.
/// - Once connected, a call's statements, `COMMIT` or `ROLLBACK` included,
///   get at most the I/O timeout together ([`DEFAULT_IO_TIMEOUT`], 2 s, or
///   [`with_io_timeout`](PostgresStore::with_io_timeout)). The same value
///   is the server's `statement_timeout` and the socket's
///   `tcp_user_timeout` (Linux).
///
/// So a call that finds a pooled connection returns within the I/O
/// timeout, and one that must connect within the connect timeout plus the
/// I/O timeout (a stale pooled connection that fails at once adds nothing
/// to speak of; a serialization failure's retry gets a fresh I/O timeout).
/// A server that accepts a request and never answers (stopped with
/// `SIGSTOP`, a partition that drops packets, a hung proxy) is a timeout:
/// before `COMMIT` was sent it is `Unavailable` (the transaction dies with
/// the connection); waiting for `COMMIT`'s answer it is `OutcomeUnknown`,
/// as above. Either way the connection is closed, never reused, and the
/// pool is emptied, so the next call connects afresh (and, while the
/// server stays silent, fails within the connect timeout).
///
/// # Example
/// ```no_run
/// use latchkey::{NewSession, PostgresStore, SessionManager, StoreManager};
///
/// let store = PostgresStore::connect("host=127.0.0.1 user=app dbname=app")?;
/// store.migrate()?; // once, at deploy time; or apply MIGRATION_SQL yourself
/// let manager = StoreManager::new(store);
/// let issued = manager.create(NewSession::new().with_user("alice"))?;
/// // Any other app server with the same database can load it.
/// assert!(manager.load(issued.token()).is_ok());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct PostgresStore {
    config: Config,
    table: String,
    sql: Sql,
    connect_timeout: Duration,
    io_timeout: Duration,
    max_idle: usize,
    /// Idle connections. A connection is taken out for one call and put
    /// back only if the call succeeded, so a connection left mid-reply or
    /// mid-transaction is never reused.
    idle: Mutex<Vec<Connection>>,
}

impl fmt::Debug for PostgresStore {
    /// Shows where the store points, never the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("hosts", &self.config.get_hosts())
            .field("ports", &self.config.get_ports())
            .field("dbname", &self.config.get_dbname())
            .field("table", &self.table)
            .field("connect_timeout", &self.connect_timeout)
            .field("io_timeout", &self.io_timeout)
            .field("idle_connections", &self.idle.lock().len())
            .finish_non_exhaustive()
    }
}

/// What went wrong on one connection.
enum Cause {
    /// The client or the server reported an error.
    Pg(tokio_postgres::Error),
    /// No answer within the I/O timeout.
    TimedOut,
    /// The runtime or the client panicked: most likely the call was made
    /// on a thread that runs an async runtime.
    Panicked,
}

/// Why a call's work on one connection failed, and whether it got as far
/// as sending `COMMIT` (which decides whether the outcome is known).
struct Fault {
    cause: Cause,
    committing: bool,
}

impl Fault {
    fn before_commit(cause: Cause) -> Fault {
        Fault {
            cause,
            committing: false,
        }
    }

    fn in_commit(cause: Cause) -> Fault {
        Fault {
            cause,
            committing: true,
        }
    }

    /// Whether the server rolled the transaction back as a serialization
    /// failure or deadlock: running it again is safe and may succeed.
    fn retryable(&self) -> bool {
        matches!(
            &self.cause,
            Cause::Pg(e) if matches!(
                e.code(),
                Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
            )
        )
    }
}

/// The error a caller sees for a fault: the server's or client's, or
/// [`TimedOut`].
fn fault_error(cause: Cause, timeout: Duration) -> Box<dyn std::error::Error + Send + Sync> {
    match cause {
        Cause::Pg(e) => Box::new(e),
        Cause::TimedOut => Box::new(TimedOut(timeout)),
        Cause::Panicked => Box::new(Panicked),
    }
}

/// A call that could not run: see [`Cause::Panicked`].
#[derive(Debug, thiserror::Error)]
#[error(
    "the PostgreSQL client panicked; a PostgresStore blocks, so an async caller \
     must call it through spawn_blocking, never on the runtime's own threads"
)]
struct Panicked;

/// A call or connection attempt that got no answer in time.
#[derive(Debug, thiserror::Error)]
#[error("PostgreSQL did not answer within {0:?}")]
struct TimedOut(Duration);

/// What an operation leaves to do with the transaction it opened, if any.
enum Step<T> {
    /// No transaction is open (a read): `T` is the answer.
    Done(T),
    /// `COMMIT`, then `T` is the answer.
    Commit(T),
    /// `ROLLBACK`: nothing was written, `T` is the answer.
    Rollback(T),
}

/// The statement that starts a write's transaction.
const BEGIN: &str = "BEGIN ISOLATION LEVEL READ COMMITTED";

/// One connection: the client and the current-thread runtime that drives
/// it. The connection's socket task lives on that runtime and runs only
/// while a call on this connection blocks in [`Connection::run`].
struct Connection {
    client: Client,
    runtime: Driver,
}

/// A runtime shut down without waiting when dropped: a host name lookup
/// cut off by the connect timeout may still hold a thread of its blocking
/// pool, which is left to finish on its own.
struct Driver(Option<Runtime>);

impl Drop for Driver {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

impl Driver {
    fn new() -> std::io::Result<Driver> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()?;
        Ok(Driver(Some(runtime)))
    }

    /// Drives `work` (and the connection's socket task) until it is done
    /// or `deadline` passes.
    fn run<R>(
        &self,
        deadline: Instant,
        work: impl Future<Output = Result<R, tokio_postgres::Error>>,
    ) -> Result<R, Cause> {
        // Taken only by `drop`: a live driver always has its runtime.
        let Some(runtime) = self.0.as_ref() else {
            return Err(Cause::TimedOut);
        };
        // The timer is made inside the runtime: it needs its time driver.
        // tokio panics if this thread already runs an async runtime (an
        // async caller that did not use `spawn_blocking`): that panic, or
        // any from the client, becomes an error for this call.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            runtime.block_on(async { tokio::time::timeout_at(deadline, work).await })
        }));
        match outcome {
            Ok(Ok(Ok(r))) => Ok(r),
            Ok(Ok(Err(e))) => Err(Cause::Pg(e)),
            Ok(Err(_)) => Err(Cause::TimedOut),
            Err(_) => Err(Cause::Panicked),
        }
    }
}

impl Connection {
    fn run<R>(
        &self,
        deadline: Instant,
        work: impl Future<Output = Result<R, tokio_postgres::Error>>,
    ) -> Result<R, Cause> {
        self.runtime.run(deadline, work)
    }
}

fn unavailable(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Unavailable(Box::new(e))
}

/// Why a stored row is not a record; reported as [`StoreError::Corrupt`]
/// for that session.
#[derive(Debug, thiserror::Error)]
enum DecodeError {
    #[error("the stored record is {0} bytes, more than a record can be")]
    TooLarge(usize),
    #[error("the stored value is not a valid record")]
    Body(#[source] serde_json::Error),
    #[error("a column of the row has an unexpected type or value")]
    Column(#[source] tokio_postgres::Error),
    #[error("a time column holds {0}, before 1970")]
    Negative(i64),
}

fn corrupt(key: &StoreKey, why: DecodeError) -> StoreError {
    StoreError::Corrupt {
        key: key.fingerprint(),
        source: Box::new(why),
    }
}

/// A version as the `bigint` with the same bits: versions are only
/// compared for equality, and this keeps every `u64` (the conformance
/// suite writes `u64::MAX - 1`).
fn version_column(version: u64) -> i64 {
    i64::from_ne_bytes(version.to_ne_bytes())
}

fn column_version(column: i64) -> u64 {
    u64::from_ne_bytes(column.to_ne_bytes())
}

/// A time as the `bigint` SQL compares: past `i64::MAX` ms (292 million
/// years) it saturates, and [`column_time`] reads the JSON's value.
fn time_column(t: Timestamp) -> i64 {
    i64::try_from(t.as_unix_millis()).unwrap_or(i64::MAX)
}

fn column_time(column: i64, written: Timestamp) -> Result<Timestamp, DecodeError> {
    let millis = u64::try_from(column).map_err(|_| DecodeError::Negative(column))?;
    let t = Timestamp::from_unix_millis(millis);
    Ok(if column == i64::MAX {
        t.max(written)
    } else {
        t
    })
}

/// A record's row values, encoded and size-checked.
struct RowValues {
    version: i64,
    expires_at: i64,
    last_seen: Option<i64>,
    user: Option<Vec<u8>>,
    json: String,
}

impl RowValues {
    fn of(key: &StoreKey, record: &Record) -> Result<RowValues, StoreError> {
        let json = serde_json::to_string(record).map_err(|e| StoreError::Corrupt {
            key: key.fingerprint(),
            source: Box::new(e),
        })?;
        if json.len() > MAX_RECORD_BYTES {
            return Err(StoreError::RecordTooLarge {
                size: json.len(),
                limit: MAX_RECORD_BYTES,
            });
        }
        let last_seen = match &record.state {
            RecordState::Live(live) => Some(time_column(live.last_seen)),
            _ => None,
        };
        Ok(RowValues {
            version: version_column(record.version),
            expires_at: time_column(record.expires_at),
            last_seen,
            user: record.user().map(|u| u.as_bytes().to_vec()),
            json,
        })
    }
}

/// The key of a row selected as `key, version, expires_at, last_seen,
/// record`. A key that is not 32 bytes cannot be named by any caller (the
/// schema's CHECK keeps them out): a listing skips it.
fn row_key(row: &Row) -> Option<StoreKey> {
    let key: &[u8] = row.try_get(0).ok()?;
    Some(StoreKey::from_bytes(key.try_into().ok()?))
}

/// Decodes a row selected as `key, version, expires_at, last_seen, record`:
/// the JSON, then the columns SQL writes over it (see "Schema").
fn decode_row(row: &Row) -> Result<Record, DecodeError> {
    let version: i64 = row.try_get(1).map_err(DecodeError::Column)?;
    let expires_at: i64 = row.try_get(2).map_err(DecodeError::Column)?;
    let last_seen: Option<i64> = row.try_get(3).map_err(DecodeError::Column)?;
    let json: &str = row.try_get(4).map_err(DecodeError::Column)?;
    if json.len() > MAX_RECORD_BYTES {
        return Err(DecodeError::TooLarge(json.len()));
    }
    let mut record: Record = serde_json::from_str(json).map_err(DecodeError::Body)?;
    record.version = column_version(version);
    record.expires_at = column_time(expires_at, record.expires_at)?;
    if let (RecordState::Live(live), Some(seen)) = (&mut record.state, last_seen) {
        live.last_seen = column_time(seen, live.last_seen)?;
    }
    Ok(record)
}

impl PostgresStore {
    /// Opens a store on the database that `params` names, and connects once
    /// to fail fast if it cannot be reached (that connection is kept for
    /// the first call).
    ///
    /// `params` is a libpq-style connection string, `key=value` pairs
    /// (`host=127.0.0.1 port=5432 user=app dbname=app`) or a URL
    /// (`postgresql://app@127.0.0.1/app`). Unless it sets `connect_timeout`,
    /// the connect timeout is [`DEFAULT_CONNECT_TIMEOUT`]; the I/O timeout
    /// is [`DEFAULT_IO_TIMEOUT`] (see "Faults"). The table is
    /// [`DEFAULT_TABLE`]; nothing is created until [`migrate`](Self::migrate).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] if `params` does not parse or the server
    /// cannot be reached, refuses the login or does not answer in time.
    pub fn connect(params: &str) -> Result<PostgresStore, StoreError> {
        let config: Config = params.parse().map_err(unavailable)?;
        let store = PostgresStore::with_config(config);
        let connection = store.open_connection()?;
        store.idle.lock().push(connection);
        Ok(store)
    }

    /// A store on `config`, not yet connected.
    fn with_config(mut config: Config) -> PostgresStore {
        let connect_timeout = config
            .get_connect_timeout()
            .copied()
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT);
        config.connect_timeout(connect_timeout);
        let mut store = PostgresStore {
            config,
            table: DEFAULT_TABLE.to_owned(),
            sql: Sql::new(DEFAULT_TABLE),
            connect_timeout,
            io_timeout: DEFAULT_IO_TIMEOUT,
            max_idle: DEFAULT_MAX_IDLE_CONNECTIONS,
            idle: Mutex::new(Vec::new()),
        };
        store.set_tcp_user_timeout();
        store
    }

    fn set_tcp_user_timeout(&mut self) {
        self.config.tcp_user_timeout(self.io_timeout);
    }

    /// Uses the table `name` instead of [`DEFAULT_TABLE`], for instance to
    /// give each application its own, or to put it in a schema of its own
    /// (`"sessions"` in the connection's `search_path`). The name is one
    /// identifier, quoted in every statement: `my.table` is a table with a
    /// dot in its name, not a table in schema `my`.
    #[must_use]
    pub fn with_table(mut self, name: &str) -> PostgresStore {
        self.table = name.to_owned();
        self.sql = Sql::new(name);
        self
    }

    /// How long a call may wait for the server once connected: its
    /// statements, `COMMIT` included, together (see "Faults"); also the
    /// server's `statement_timeout` and the socket's `tcp_user_timeout`. A
    /// zero timeout means the default. Connections opened before are
    /// closed.
    ///
    /// # Example
    /// ```no_run
    /// # use latchkey::PostgresStore;
    /// use std::time::Duration;
    /// let store = PostgresStore::connect("host=127.0.0.1 dbname=app")?
    ///     .with_io_timeout(Duration::from_millis(500));
    /// # Ok::<(), latchkey::StoreError>(())
    /// ```
    #[must_use]
    pub fn with_io_timeout(mut self, timeout: Duration) -> PostgresStore {
        // Zero would mean "no timeout" to PostgreSQL: the opposite.
        self.io_timeout = if timeout.is_zero() {
            DEFAULT_IO_TIMEOUT
        } else {
            timeout
        };
        self.set_tcp_user_timeout();
        self.idle.get_mut().clear();
        self
    }

    /// How long opening a connection may take, per host the connection
    /// parameters name: TCP, authentication and session setup. A zero
    /// timeout means the default. Connections opened before are kept.
    ///
    /// # Example
    /// ```no_run
    /// # use latchkey::PostgresStore;
    /// use std::time::Duration;
    /// let store = PostgresStore::connect("host=127.0.0.1 dbname=app")?
    ///     .with_connect_timeout(Duration::from_secs(3));
    /// # Ok::<(), latchkey::StoreError>(())
    /// ```
    #[must_use]
    pub fn with_connect_timeout(mut self, timeout: Duration) -> PostgresStore {
        self.connect_timeout = if timeout.is_zero() {
            DEFAULT_CONNECT_TIMEOUT
        } else {
            timeout
        };
        self.config.connect_timeout(self.connect_timeout);
        self
    }

    /// Keeps at most `max` idle connections (0: a new connection per
    /// call).
    #[must_use]
    pub fn with_max_idle_connections(mut self, max: usize) -> PostgresStore {
        self.max_idle = max;
        self.idle.get_mut().truncate(max);
        self
    }

    /// The table this store uses.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The SQL that [`migrate`](Self::migrate) runs for this store's table:
    /// [`MIGRATION_SQL`] with the table's name.
    ///
    /// # Example
    /// ```no_run
    /// # use latchkey::PostgresStore;
    /// let store = PostgresStore::connect("host=127.0.0.1 dbname=app")?.with_table("app_sessions");
    /// assert!(store.migration_sql().contains("CREATE TABLE IF NOT EXISTS \"app_sessions\""));
    /// # Ok::<(), latchkey::StoreError>(())
    /// ```
    pub fn migration_sql(&self) -> &str {
        &self.sql.migrate
    }

    /// Creates the table and its indexes if they do not exist, in one
    /// transaction. Run it once, at deploy time, from one process: two
    /// processes creating the same table at once can fail with a unique
    /// violation from the catalog.
    ///
    /// # Errors
    /// Backend errors, as for the writes (see Faults).
    pub fn migrate(&self) -> Result<(), StoreError> {
        self.call(async |c| {
            c.batch_execute(BEGIN).await?;
            c.batch_execute(&self.sql.migrate).await?;
            Ok(Step::Commit(()))
        })
    }

    /// Checks that the server answers (`SELECT 1`).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    pub fn ping(&self) -> Result<(), StoreError> {
        self.call(async |c| {
            c.batch_execute("SELECT 1").await?;
            Ok(Step::Done(()))
        })
    }

    /// How long opening one connection may take in all: the connect
    /// timeout for each host the parameters name, so that a dead first
    /// host leaves time for the next.
    fn connect_budget(&self) -> Duration {
        let hosts = u32::try_from(self.config.get_hosts().len().max(1)).unwrap_or(u32::MAX);
        self.connect_timeout.saturating_mul(hosts)
    }

    fn open_connection(&self) -> Result<Connection, StoreError> {
        let runtime = Driver::new().map_err(unavailable)?;
        let budget = self.connect_budget();
        let deadline = Instant::now() + budget;
        let ms = self.io_timeout.as_millis().clamp(1, i32::MAX as u128);
        let client = runtime
            .run(deadline, async {
                let (client, connection) = self.config.connect(NoTls).await?;
                // The socket's task, on this connection's runtime: it runs
                // whenever a call blocks on it, and ends with it.
                tokio::spawn(connection);
                client
                    .batch_execute(&format!("SET statement_timeout = {ms}"))
                    .await?;
                Ok(client)
            })
            .map_err(|cause| StoreError::Unavailable(fault_error(cause, budget)))?;
        Ok(Connection { client, runtime })
    }

    fn release(&self, connection: Connection) {
        let mut idle = self.idle.lock();
        if idle.len() < self.max_idle && !connection.client.is_closed() {
            idle.push(connection);
        }
    }

    /// Runs `op` once on `connection`, then the `COMMIT` or `ROLLBACK` it
    /// asks for, all within one I/O timeout. The flag says whether the
    /// connection may be reused.
    fn attempt<T>(
        &self,
        connection: &Connection,
        op: &impl AsyncFn(&Client) -> Result<Step<T>, tokio_postgres::Error>,
    ) -> Result<(T, bool), Fault> {
        let deadline = Instant::now() + self.io_timeout;
        let client = &connection.client;
        match connection
            .run(deadline, op(client))
            .map_err(Fault::before_commit)?
        {
            Step::Done(v) => Ok((v, true)),
            Step::Rollback(v) => {
                // Nothing was written either way: if the ROLLBACK is lost,
                // the transaction dies with the connection.
                let clean = connection
                    .run(deadline, client.batch_execute("ROLLBACK"))
                    .is_ok();
                Ok((v, clean))
            }
            Step::Commit(v) => {
                connection
                    .run(deadline, client.batch_execute("COMMIT"))
                    .map_err(Fault::in_commit)?;
                Ok((v, true))
            }
        }
    }

    /// Runs `op` on a connection, with the timeouts, retries and error
    /// mapping that "Faults" on [`PostgresStore`] describes. `op` starts
    /// its transaction itself (with [`BEGIN`]) and says how to end it.
    fn call<T>(
        &self,
        op: impl AsyncFn(&Client) -> Result<Step<T>, tokio_postgres::Error>,
    ) -> Result<T, StoreError> {
        let mut attempts = 0;
        let mut reconnected = false;
        loop {
            let pooled = self.idle.lock().pop();
            let (connection, from_pool) = match pooled {
                Some(c) => (c, true),
                None => (self.open_connection()?, false),
            };
            attempts += 1;
            let fault = match self.attempt(&connection, &op) {
                Ok((v, reusable)) => {
                    if reusable {
                        self.release(connection);
                    }
                    return Ok(v);
                }
                Err(f) => f,
            };
            if fault.retryable() {
                // Rolled back by the server, the connection still good
                // once out of the failed transaction.
                let deadline = Instant::now() + self.io_timeout;
                let clean = connection
                    .run(deadline, connection.client.batch_execute("ROLLBACK"))
                    .is_ok();
                if attempts < ATTEMPTS {
                    if clean {
                        self.release(connection);
                    }
                    continue;
                }
                return Err(StoreError::Conflict);
            }
            let lost = match &fault.cause {
                Cause::Pg(e) => e.as_db_error().is_none() || connection.client.is_closed(),
                Cause::TimedOut => true,
                // Not the connection's fault: it is dropped all the same.
                Cause::Panicked => false,
            };
            let stale = matches!(fault.cause, Cause::Pg(_));
            // Dropping it closes the socket: an open transaction dies with
            // it, and a late answer is never read as another call's.
            drop(connection);
            if lost {
                // Whatever closed or stalled this connection (a restart, an
                // idle timeout, a stopped server) holds its siblings too:
                // the next call connects afresh.
                self.idle.lock().clear();
            }
            let error = fault_error(fault.cause, self.io_timeout);
            if fault.committing {
                // COMMIT left: whatever came back, if anything, does not
                // prove that it did not commit.
                return Err(StoreError::OutcomeUnknown(error));
            }
            // Nothing was committed: the transaction died with the
            // connection or was refused. A pooled connection that broke
            // (not one that timed out) may just have been stale, so one
            // fresh try.
            if lost && stale && from_pool && !reconnected {
                reconnected = true;
                continue;
            }
            return Err(StoreError::Unavailable(error));
        }
    }

    /// The `NotFound` or `Conflict` of a versioned write that changed no
    /// row, asked inside its transaction.
    async fn missing_or_conflict(
        &self,
        c: &Client,
        key: &[u8],
    ) -> Result<StoreError, tokio_postgres::Error> {
        let exists = c
            .query_typed_opt(&self.sql.exists, &[(&key, Type::BYTEA)])
            .await?
            .is_some();
        Ok(if exists {
            StoreError::Conflict
        } else {
            StoreError::NotFound
        })
    }
}

/// The parameters of an insert of `v` under `key`, as the statement
/// numbers them.
fn insert_params<'a>(key: &'a &[u8], v: &'a RowValues) -> [(&'a (dyn ToSql + Sync), Type); 6] {
    [
        (key, Type::BYTEA),
        (&v.version, Type::INT8),
        (&v.expires_at, Type::INT8),
        (&v.last_seen, Type::INT8),
        (&v.user, Type::BYTEA),
        (&v.json, Type::TEXT),
    ]
}

/// The parameters of a versioned update of `key` from `expected` to `v`.
fn replace_params<'a>(
    key: &'a &[u8],
    expected: &'a i64,
    v: &'a RowValues,
) -> [(&'a (dyn ToSql + Sync), Type); 7] {
    [
        (key, Type::BYTEA),
        (expected, Type::INT8),
        (&v.version, Type::INT8),
        (&v.expires_at, Type::INT8),
        (&v.last_seen, Type::INT8),
        (&v.user, Type::BYTEA),
        (&v.json, Type::TEXT),
    ]
}

impl Store for PostgresStore {
    fn insert(&self, key: &StoreKey, record: &Record) -> Result<(), StoreError> {
        let values = RowValues::of(key, record)?;
        let k: &[u8] = key.as_bytes();
        let inserted = self.call(async |c| {
            c.batch_execute(BEGIN).await?;
            let n = c
                .execute_typed(&self.sql.insert, &insert_params(&k, &values))
                .await?;
            Ok(if n == 1 {
                Step::Commit(true)
            } else {
                Step::Rollback(false)
            })
        })?;
        if inserted {
            Ok(())
        } else {
            Err(StoreError::Exists)
        }
    }

    fn get(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        let k: &[u8] = key.as_bytes();
        let row = self.call(async |c| {
            Ok(Step::Done(
                c.query_typed_opt(&self.sql.get, &[(&k, Type::BYTEA)])
                    .await?,
            ))
        })?;
        row.map(|row| decode_row(&row).map_err(|e| corrupt(key, e)))
            .transpose()
    }

    fn replace(&self, key: &StoreKey, expected: u64, record: &Record) -> Result<(), StoreError> {
        let v = RowValues::of(key, record)?;
        let k: &[u8] = key.as_bytes();
        let expected = version_column(expected);
        self.call(async |c| {
            c.batch_execute(BEGIN).await?;
            let n = c
                .execute_typed(&self.sql.replace, &replace_params(&k, &expected, &v))
                .await?;
            if n == 1 {
                return Ok(Step::Commit(Ok(())));
            }
            Ok(Step::Rollback(Err(self.missing_or_conflict(c, k).await?)))
        })?
    }

    fn touch(
        &self,
        key: &StoreKey,
        last_seen: Timestamp,
        expires_at: Timestamp,
    ) -> Result<bool, StoreError> {
        let k: &[u8] = key.as_bytes();
        let (seen, expires) = (time_column(last_seen), time_column(expires_at));
        self.call(async |c| {
            c.batch_execute(BEGIN).await?;
            let n = c
                .execute_typed(
                    &self.sql.touch,
                    &[
                        (&k, Type::BYTEA),
                        (&seen, Type::INT8),
                        (&expires, Type::INT8),
                    ],
                )
                .await?;
            Ok(if n == 1 {
                Step::Commit(true)
            } else {
                Step::Rollback(false)
            })
        })
    }

    fn rotate(
        &self,
        old: &StoreKey,
        expected: u64,
        retired: &Record,
        new: &StoreKey,
        record: &Record,
    ) -> Result<(), StoreError> {
        let r = RowValues::of(old, retired)?;
        let v = RowValues::of(new, record)?;
        let (old_k, new_k): (&[u8], &[u8]) = (old.as_bytes(), new.as_bytes());
        let expected = version_column(expected);
        self.call(async |c| {
            c.batch_execute(BEGIN).await?;
            // `old` first, as the contract orders the checks; its row lock
            // holds off every other writer of it until the commit.
            let n = c
                .execute_typed(&self.sql.replace, &replace_params(&old_k, &expected, &r))
                .await?;
            if n != 1 {
                return Ok(Step::Rollback(Err(self
                    .missing_or_conflict(c, old_k)
                    .await?)));
            }
            if c.execute_typed(&self.sql.insert, &insert_params(&new_k, &v))
                .await?
                != 1
            {
                // Rolled back: `old` is as it was.
                return Ok(Step::Rollback(Err(StoreError::Exists)));
            }
            Ok(Step::Commit(Ok(())))
        })?
    }

    fn remove(&self, key: &StoreKey) -> Result<bool, StoreError> {
        let k: &[u8] = key.as_bytes();
        self.call(async |c| {
            c.batch_execute(BEGIN).await?;
            let n = c
                .execute_typed(&self.sql.remove, &[(&k, Type::BYTEA)])
                .await?;
            Ok(if n > 0 {
                Step::Commit(true)
            } else {
                Step::Rollback(false)
            })
        })
    }

    fn sessions_of(&self, user: &str) -> Result<Vec<(StoreKey, Record)>, StoreError> {
        let name: &[u8] = user.as_bytes();
        let rows = self.call(async |c| {
            Ok(Step::Done(
                c.query_typed(&self.sql.sessions_of, &[(&name, Type::BYTEA)])
                    .await?,
            ))
        })?;
        // A corrupt row is that session's problem (a load of it says so):
        // the others are listed.
        Ok(rows
            .iter()
            .filter_map(|row| Some((row_key(row)?, decode_row(row).ok()?)))
            .filter(|(_, r)| r.user() == Some(user))
            .collect())
    }

    fn purge_expired(&self, now: Timestamp) -> Result<usize, StoreError> {
        let now = time_column(now);
        let n = self.call(async |c| {
            c.batch_execute(BEGIN).await?;
            let n = c
                .execute_typed(&self.sql.purge, &[(&now, Type::INT8)])
                .await?;
            Ok(Step::Commit(n))
        })?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    /// Always `true`: every call is a network round trip.
    fn may_block(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_module_docs_show_exactly_the_migration_sql() {
        let docs: String = include_str!("mod.rs")
            .lines()
            .filter_map(|l| l.strip_prefix("//! ").or(l.strip_prefix("//!")))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(docs.contains(MIGRATION_SQL), "{MIGRATION_SQL}");
    }

    #[test]
    fn debug_does_not_leak_the_password() {
        let config: Config = "postgresql://admin:hunter2@db.internal:6543/app"
            .parse()
            .unwrap();
        let dbg = format!("{:?}", PostgresStore::with_config(config));
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert!(dbg.contains("db.internal"), "{dbg}");
        assert!(dbg.contains("6543"), "{dbg}");
    }

    #[test]
    fn versions_keep_every_u64_through_a_bigint() {
        for v in [
            0,
            1,
            i64::MAX as u64,
            i64::MAX as u64 + 1,
            u64::MAX - 1,
            u64::MAX,
        ] {
            assert_eq!(column_version(version_column(v)), v);
        }
    }

    #[test]
    fn far_future_times_saturate_in_sql_and_read_back_exactly() {
        let never = Timestamp::from_unix_millis(u64::MAX - 1);
        assert_eq!(time_column(never), i64::MAX);
        assert_eq!(column_time(i64::MAX, never).unwrap(), never);
        let t = Timestamp::from_unix_millis(1_800_000_000_000);
        assert_eq!(time_column(t), 1_800_000_000_000);
        // The column wins: a touch raised it past what the JSON says.
        assert_eq!(
            column_time(1_800_000_000_500, t).unwrap(),
            Timestamp::from_unix_millis(1_800_000_000_500)
        );
        assert!(matches!(column_time(-1, t), Err(DecodeError::Negative(-1))));
    }

    #[test]
    fn a_record_too_large_to_read_back_is_refused_when_written() {
        use crate::data::SessionData;
        use crate::store::LiveSession;
        let t = Timestamp::from_unix_millis(1);
        let mut m = serde_json::Map::new();
        m.insert("blob".into(), "x".repeat(MAX_RECORD_BYTES).into());
        let record = Record {
            version: 1,
            expires_at: t,
            state: RecordState::Live(LiveSession {
                created_at: t,
                last_seen: t,
                auth_at: None,
                absolute_deadline: t,
                user: None,
                device: None,
                data: SessionData::from_map(m),
            }),
        };
        let key = StoreKey::from_bytes([7; 32]);
        assert!(matches!(
            RowValues::of(&key, &record),
            Err(StoreError::RecordTooLarge {
                limit: MAX_RECORD_BYTES,
                ..
            })
        ));
    }

    #[test]
    fn a_zero_io_timeout_means_the_default_not_none() {
        let config: Config = "host=127.0.0.1".parse().unwrap();
        let store = PostgresStore::with_config(config).with_io_timeout(Duration::ZERO);
        assert_eq!(store.io_timeout, DEFAULT_IO_TIMEOUT);
        assert_eq!(
            store.config.get_tcp_user_timeout(),
            Some(&DEFAULT_IO_TIMEOUT)
        );
    }
}
