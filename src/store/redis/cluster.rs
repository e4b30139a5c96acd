//! [`RedisClusterStore`]: the Redis store's sessions in a Redis Cluster
//! (feature `redis-cluster`).
//!
//! The keys, the record encoding (the short JSON names), the Lua scripts
//! and the reading of their answers are
//! [`RedisStore`](crate::RedisStore)'s, from the code both share (see the
//! [parent module](super)),
//! so an operator reads a cluster as they read one Redis, node by node:
//! `redis-cli -c --scan --pattern 'latchkey:session:*'` on each master.
//! What changes is which writes can be atomic: a cluster runs a script only
//! if every key it touches is in one hash slot, and each key name carries
//! its hash tag (the hex in braces) for that reason.
//!
//! # One slot per call
//!
//! | operation | keys it touches | one slot because |
//! |---|---|---|
//! | `remove` | the record and the write's receipt | the receipt `op:{<record hex>}:…` is tagged with the record's hex |
//! | `insert`, `replace`, `touch`, `get` | the record | |
//! | adding to a user index | the index | the index alone |
//! | `rotate` | two records, each in its own call | [`Store::rotate`]'s provided method (below) |
//! | `sessions_of`, `purge_expired` | one key per command | |
//!
//! A rotation cannot be one script: the old and the new session keys hash
//! to different slots, often on different masters. The store therefore
//! keeps [`Store::rotate`]'s provided method, made of single-key writes
//! (retire `old` with the successor recorded as pending, insert `new`,
//! check `old`), whose every crash point the manager rolls forward on the
//! next load of the old token ([`crate::lifecycle`]).
//!
//! # The per-user index across slots
//!
//! A user's index (a hash whose fields are the user's session keys, as
//! with one Redis) lives in the slot of the user's hash, not in the slot
//! of any of their sessions, so it cannot be updated in the script that
//! writes a record. The protocol that keeps it exact without a
//! cross-slot transaction:
//!
//! - **A write that binds a record to a user** (an `insert` or `replace` of
//!   a live record with a user) adds the record to the index (`HSET`, in a
//!   one-key script that also raises the index's expiry), writes the
//!   record, and adds it again, and returns `Ok` only after the second
//!   add. `insert` adds it again on [`StoreError::Exists`] too: a
//!   rotation's roll-forward may find the successor already written by
//!   the rotation it completes.
//! - **The cleaner** (in `sessions_of` and `purge_expired`) never removes
//!   the member of a record it would return: it reads the record, and only
//!   if the record is missing, not live, or bound to someone else does it
//!   remove the member (`HDEL`), then read the record again; if the record
//!   is *now* live and bound to the user, it adds the member back and
//!   returns the record.
//!
//! Why no write that returned loses its member: take a write W that made
//! record R live for user U and a cleaner C that removes R from U's index.
//! W's SET of R was acknowledged before W sent its second add, and C's
//! HDEL was acknowledged before C sent its second GET. If the HDEL came
//! before W's second add in the index's order, that add puts the member
//! back. Otherwise the HDEL, and so C's second GET, came after W's SET,
//! so that GET sees R as W wrote it (or as a later write left it): if R is
//! still live for U, C adds the member back; if a later write changed R,
//! the member is that write's business, by the same argument. (If the
//! second GET fails, the cleaner adds the member back unchecked and
//! reports the error: a stale member is harmless, a missing one is not.)
//!
//! No client holds a new session's token until `insert` returns, so a
//! process that dies between the SET and the second add of an insert
//! leaves an orphan record that no one can present, which expires by
//! itself. The first add covers a `replace` that binds a user to a
//! session a client already holds: the member is in the index before the
//! record says so.
//!
//! One Redis skips the index write of a `replace` that keeps the stored
//! record's user and absolute deadline (see "The per-user index" in the
//! [parent module](super)). This store does not: every binding write makes
//! both adds. The skip would keep the argument above while every process
//! completes the protocol, but each binding save is also what puts back
//! a member lost to a crash in the windows below; with the skip, such a
//! session would stay out of its user's index until it is rotated.
//!
//! What the protocol does not cover is a process dying in the middle of
//! it while the other side works on the same member of the same user's
//! index: a writer dying between its SET and its second add after a
//! cleaner removed the member between the writer's first add and its SET,
//! or a cleaner dying between its HDEL and its second GET after a writer
//! completed in between its first GET and its HDEL. Either leaves a live
//! session out of its user's index, so `terminate_all` would miss it; it
//! still expires by its deadlines. Both need a crash inside a window of
//! one round trip, during a concurrent write and cleaning of that very
//! session. Members are removed only by the cleaner; a logout or an
//! expiry leaves them to it. The cleaner keeps a member while its record
//! is live and bound to the user, by the rule of one Redis, so
//! `purge_expired` drops the members of the records it deletes on its
//! pass over the indexes.
//!
//! # Costs
//!
//! - `get`, `touch` and `remove`: one round trip, as with one Redis.
//! - A write that binds a user (`insert` or `replace` of a live session
//!   with a user): three round trips (add, write, add), to the masters of
//!   two slots; without a user, one. Like one Redis, an `insert` writes no
//!   receipt (its retry after a lost reply takes its own bytes as proof),
//!   nor does a `replace` (its record carries its mark).
//! - `rotate`: two reads, then a `replace`, an `insert` (three round trips
//!   with a user) and a read: seven round trips with a user, five without,
//!   instead of one.
//! - `sessions_of`: one for the index, then one pipelined batch of GETs
//!   (the cluster client groups them by master), plus two or three per
//!   stale member it cleans.
//! - `purge_expired`: a SCAN of every master, one script call per session
//!   key, then the cleaning of every user index. With native expiry in
//!   place it is optional, as with one Redis.
//! - Connections: the store keeps a pool of cluster connections, each
//!   holding one connection to every node that serves slots.
//!
//! # Failover, redirects, a master down
//!
//! The store's client follows the cluster: a `MOVED` reply (slots moved,
//! or a replica promoted) or a `READONLY` one (a write that reached a
//! demoted master) makes it read the slot map again and send the command
//! where the map now says; an `ASK` reply (a slot being migrated) makes it
//! send the command once to the node named, behind `ASKING`; `TRYAGAIN`,
//! `CLUSTERDOWN`, `MASTERDOWN`, `LOADING` and a refused connection make it
//! wait briefly and try again, with a fresh slot map. A command that
//! received an error reply did not run, so these retries are safe; after
//! [`MAX_ATTEMPTS`] the call fails with [`StoreError::Unavailable`] (nothing
//! changed). While a slot migrates, reads of its sessions follow `ASK`, but
//! a remove, which writes a receipt, touches two keys, one of
//! them new, which neither node accepts until the slot has moved
//! (`TRYAGAIN`): it waits out the retries and then fails as `Unavailable`
//! if the migration of that slot takes longer.
//!
//! A connection that drops after a command was sent is handled as by
//! [`RedisStore`](crate::RedisStore) (see its Faults): retried once on a
//! fresh connection, writes made safe by their receipts (kept in the
//! record's slot, so a receipt and its write replicate together) or marks,
//! and a
//! write whose fate stays unknown is [`StoreError::OutcomeUnknown`]. A
//! timeout is not retried. Nothing is ever a rejection and nothing panics.
//!
//! What a user sees when a master dies (SIGKILL, a lost host):
//!
//! - **With a replica** (`--cluster-replicas 1` or more): the sessions on
//!   that master's slots fail with backend errors (HTTP 503; the cookie is
//!   kept) for about `cluster-node-timeout` plus the election (a few
//!   seconds with a 2 s node timeout; the default 15 s timeout means about
//!   15 to 20 s), while sessions on the other masters go on working. Once
//!   the replica is promoted, the same cookies load again. Replication is
//!   asynchronous: writes the dead master acknowledged but had not passed on
//!   are lost (a touch not recorded, a logout undone, a session created in
//!   its last moments gone), receipts with them.
//! - **Without a replica**: those slots stay down until the master comes
//!   back (with its data only if it persisted them), and with the default
//!   `cluster-require-full-coverage yes` the whole cluster answers
//!   `CLUSTERDOWN`, so every session fails with backend errors meanwhile.
//!
//! # Deployment
//!
//! Redis 7.0 or later in cluster mode, at least three masters, each with a
//! replica. Give [`RedisClusterStore::open`] a few nodes' URLs: it needs
//! one to answer, and learns the rest from `CLUSTER SLOTS`. Reads go to
//! masters only, so a read never sees a replica's stale copy. With the
//! `redis-tls` feature the nodes may be `rediss://` URLs, verified against
//! the system's roots (a `#insecure` URL is refused).
//!
//! # Example
//! ```no_run
//! use latchkey::{NewSession, RedisClusterStore, SessionManager, StoreManager};
//!
//! let store = RedisClusterStore::open([
//!     "redis://10.0.0.1:6379/",
//!     "redis://10.0.0.2:6379/",
//!     "redis://10.0.0.3:6379/",
//! ])?
//! .with_prefix("myapp:");
//! store.ping()?; // every master answers
//! let manager = StoreManager::new(store);
//! let issued = manager.create(NewSession::new().with_user("alice"))?;
//! assert!(manager.load(issued.token()).is_ok());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use parking_lot::Mutex;
use redis::cluster::{ClusterClientBuilder, ClusterConnection, cluster_pipe};
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{
    ConnectionInfo, ErrorKind, FromRedisValue, IntoConnectionInfo, RedisError, RedisResult,
    ServerErrorKind, Value,
};

use super::core::{
    Access, Call, Core, KeyKind, decode_for, insert_answer, keeps_member, may_have_run,
    remove_answer, replace_answer, scan_cmd, touch_answer, unavailable,
};
use super::{BATCH, DEFAULT_MAX_IDLE_CONNECTIONS, decode};
use crate::clock::{Clock, Timestamp};
use crate::id::StoreKey;
use crate::store::{Record, Store, StoreError};

/// How many times one call is sent, at most, while the cluster redirects
/// it or reports itself down (see the [module docs](self)). The waits
/// between them add up to 350 ms.
pub const MAX_ATTEMPTS: u32 = 4;

/// A cluster connection as one attempt of a call uses it: commands go
/// where the slot map says, or, after an `ASK` reply (a slot being
/// migrated), to the node that reply named, each behind `ASKING`.
struct Con<'a> {
    inner: &'a mut ClusterConnection,
    ask: Option<&'a (String, u16)>,
}

impl Con<'_> {
    fn query<T: FromRedisValue>(&mut self, cmd: &redis::Cmd) -> RedisResult<T> {
        let Some((host, port)) = self.ask else {
            return cmd.query(self.inner);
        };
        let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
            host: host.clone(),
            port: *port,
        });
        // The same node, so the same connection: ASKING applies to the
        // command right after it.
        self.inner
            .route_command(&redis::cmd("ASKING"), route.clone())?;
        let v = self.inner.route_command(cmd, route)?;
        Ok(redis::from_redis_value(v)?)
    }
}

/// Sends a script call as `EVALSHA`, and `EVAL` with the source when the
/// node does not know it yet (a fresh node, a promoted replica), to the
/// node of the first key's slot only. (The `redis` crate's own fallback
/// loads the script on every node, and so fails while any node is down.)
/// `retry` says an earlier attempt of the call may have run (see
/// `LUA_INSERT`).
fn run(con: &mut Con<'_>, call: &Call<'_>, retry: bool) -> RedisResult<i64> {
    match con.query(&call.cmd(false, retry)) {
        Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
            con.query(&call.cmd(true, retry))
        }
        other => other,
    }
}

/// A [`Store`] in a Redis Cluster, shared by every process that opens the
/// same cluster with the same prefix.
///
/// The same keys, records and scripts as [`RedisStore`](crate::RedisStore),
/// each call within one hash slot; see the [module docs](self) for the
/// per-user index protocol, the costs, and what a failover looks like.
///
/// # Example
/// ```no_run
/// use std::time::Duration;
/// use latchkey::{RedisClusterStore, StoreManager};
///
/// let store = RedisClusterStore::open(["redis://10.0.0.1:6379/", "redis://10.0.0.2:6379/"])?
///     .with_io_timeout(Duration::from_millis(500));
/// store.ping()?;
/// let manager = StoreManager::new(store);
/// # Ok::<(), latchkey::StoreError>(())
/// ```
pub struct RedisClusterStore {
    nodes: Vec<ConnectionInfo>,
    /// Key names, records, scripts and answers: `RedisStore`'s, with the
    /// user index left out of the write scripts.
    core: Core,
    max_idle: usize,
    /// Idle cluster connections. As with `RedisStore`, one is taken out
    /// for one operation and put back only if it succeeded; after any
    /// failed attempt (most often a redirect or a failed node) all are
    /// dropped, since they may share a slot map that is now stale.
    idle: Mutex<Vec<ClusterConnection>>,
}

impl fmt::Debug for RedisClusterStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Addresses only: a node URL may carry a password.
        let nodes: Vec<String> = self.nodes.iter().map(|n| n.addr().to_string()).collect();
        f.debug_struct("RedisClusterStore")
            .field("nodes", &nodes)
            .field("prefix", &self.core.prefix)
            .field("connect_timeout", &self.core.connect_timeout)
            .field("io_timeout", &self.core.io_timeout)
            .field("idle_connections", &self.idle.lock().len())
            .finish_non_exhaustive()
    }
}

/// Whether a failed attempt may have run: as for one Redis, except that a
/// refused connection (a dead master still in the slot map) sent nothing.
fn attempt_may_have_run(e: &RedisError) -> bool {
    may_have_run(e) && !e.is_connection_refusal()
}

/// How long to wait before sending again a command that did not run, or
/// `None` if the error is not one the cluster recovers from by itself.
fn retry_wait(e: &RedisError, attempt: u32) -> Option<Duration> {
    let backoff = Duration::from_millis(25u64 << attempt.min(4));
    match e.kind() {
        // A fresh slot map, or the ASK reply, says where to go: no wait.
        ErrorKind::Server(ServerErrorKind::Moved | ServerErrorKind::Ask) => Some(Duration::ZERO),
        ErrorKind::Server(
            ServerErrorKind::ReadOnly
            | ServerErrorKind::TryAgain
            | ServerErrorKind::ClusterDown
            | ServerErrorKind::MasterDown
            | ServerErrorKind::BusyLoading,
        ) => Some(backoff),
        _ if e.is_connection_refusal() => Some(backoff),
        _ => None,
    }
}

/// The node an `ASK` reply sends the call to: `ASK <slot> <host>:<port>`.
fn asked_node(e: &RedisError) -> Option<(String, u16)> {
    if e.kind() != ErrorKind::Server(ServerErrorKind::Ask) {
        return None;
    }
    let (addr, _slot) = e.redirect_node()?;
    let (host, port) = addr.rsplit_once(':')?;
    Some((host.to_owned(), port.parse().ok()?))
}

/// Reads the masters from a `CLUSTER SLOTS` reply: `[[start, end, [host,
/// port, id, …], replicas…], …]`.
fn masters_of(reply: Value) -> Result<BTreeSet<(String, u16)>, RedisError> {
    let bad = || RedisError::from((ErrorKind::Parse, "an unexpected CLUSTER SLOTS reply"));
    let Value::Array(ranges) = reply else {
        return Err(bad());
    };
    let mut masters = BTreeSet::new();
    for range in ranges {
        let Value::Array(parts) = range else {
            return Err(bad());
        };
        let Some(Value::Array(master)) = parts.into_iter().nth(2) else {
            return Err(bad());
        };
        let mut fields = master.into_iter();
        let host: String = fields
            .next()
            .and_then(|v| redis::from_redis_value(v).ok())
            .ok_or_else(bad)?;
        let port: u16 = fields
            .next()
            .and_then(|v| redis::from_redis_value(v).ok())
            .ok_or_else(bad)?;
        masters.insert((host, port));
    }
    Ok(masters)
}

impl RedisClusterStore {
    /// A store for the cluster that any of `nodes` belongs to (seed URLs,
    /// `redis://[[user]:password@]host[:port]/`), with the default prefix,
    /// timeouts and the system clock. Nothing is connected yet (see
    /// [`RedisClusterStore::ping`]); the first call connects to the first
    /// seed that answers and learns the others from it.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] (a configuration error) if `nodes` is
    /// empty, a URL does not parse, the URLs disagree on credentials, or
    /// one is a `rediss://` URL without the `redis-tls` feature or with
    /// `#insecure`.
    ///
    /// # Example
    /// ```
    /// use latchkey::RedisClusterStore;
    ///
    /// // No server needed: connecting waits for the first operation.
    /// let store = RedisClusterStore::open(["redis://127.0.0.1:7000/", "redis://127.0.0.1:7001/"])?;
    /// assert_eq!(store.prefix(), "latchkey:");
    /// assert!(RedisClusterStore::open(["not a url"]).is_err());
    /// assert!(RedisClusterStore::open(Vec::<String>::new()).is_err());
    /// # Ok::<(), latchkey::StoreError>(())
    /// ```
    pub fn open<I>(nodes: I) -> Result<RedisClusterStore, StoreError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let nodes = nodes
            .into_iter()
            .map(|url| url.as_ref().into_connection_info())
            .collect::<Result<Vec<_>, _>>()
            .map_err(unavailable)?;
        for node in &nodes {
            if let redis::ConnectionAddr::TcpTls { insecure: true, .. } = node.addr() {
                // As for RedisStore: no certificate check is never allowed.
                return Err(unavailable(RedisError::from((
                    ErrorKind::InvalidClientConfig,
                    "a rediss:// URL with #insecure (no certificate check) is refused",
                ))));
            }
        }
        // Checks the list (not empty, one set of credentials) now rather
        // than at the first call.
        ClusterClientBuilder::new(nodes.clone())
            .build()
            .map_err(unavailable)?;
        Ok(RedisClusterStore {
            nodes,
            core: Core::without_index_in_scripts(),
            max_idle: DEFAULT_MAX_IDLE_CONNECTIONS,
            idle: Mutex::new(Vec::new()),
        })
    }

    /// Puts every key under `prefix` instead of
    /// [`DEFAULT_PREFIX`](super::DEFAULT_PREFIX), as
    /// [`RedisStore::with_prefix`](crate::RedisStore::with_prefix) does.
    ///
    /// # Panics
    /// If `prefix` contains `{` or `}`, which would displace the hash tags
    /// every call relies on; [`RedisClusterStore::try_with_prefix`] returns
    /// an error instead.
    ///
    /// # Example
    /// ```
    /// # use latchkey::RedisClusterStore;
    /// let store = RedisClusterStore::open(["redis://127.0.0.1:7000/"])?.with_prefix("shop:");
    /// assert_eq!(store.prefix(), "shop:");
    /// # Ok::<(), latchkey::StoreError>(())
    /// ```
    #[must_use]
    pub fn with_prefix(self, prefix: impl Into<String>) -> RedisClusterStore {
        match self.try_with_prefix(prefix) {
            Ok(store) => store,
            Err(_) => panic!("a Redis key prefix must not contain '{{' or '}}'"),
        }
    }

    /// Puts every key under `prefix` instead of
    /// [`DEFAULT_PREFIX`](super::DEFAULT_PREFIX).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] (a configuration error) if `prefix`
    /// contains `{` or `}`.
    ///
    /// # Example
    /// ```
    /// # use latchkey::RedisClusterStore;
    /// let open = || RedisClusterStore::open(["redis://127.0.0.1:7000/"]);
    /// assert_eq!(open()?.try_with_prefix("shop:")?.prefix(), "shop:");
    /// assert!(open()?.try_with_prefix("{shop}:").is_err());
    /// # Ok::<(), latchkey::StoreError>(())
    /// ```
    pub fn try_with_prefix(
        mut self,
        prefix: impl Into<String>,
    ) -> Result<RedisClusterStore, StoreError> {
        self.core.set_prefix(prefix.into())?;
        Ok(self)
    }

    /// Waits at most `timeout` to connect to a node (default
    /// [`DEFAULT_CONNECT_TIMEOUT`](super::DEFAULT_CONNECT_TIMEOUT)). A zero
    /// duration means the default.
    ///
    /// # Example
    /// ```
    /// # use std::time::Duration;
    /// # use latchkey::RedisClusterStore;
    /// let store = RedisClusterStore::open(["redis://127.0.0.1:7000/"])?
    ///     .with_connect_timeout(Duration::from_millis(250));
    /// # Ok::<(), latchkey::StoreError>(())
    /// ```
    #[must_use]
    pub fn with_connect_timeout(mut self, timeout: Duration) -> RedisClusterStore {
        self.core.set_connect_timeout(timeout);
        self
    }

    /// Waits at most `timeout` for each read and each write on a connection
    /// (default [`DEFAULT_IO_TIMEOUT`](super::DEFAULT_IO_TIMEOUT)). A zero
    /// duration means the default.
    ///
    /// # Example
    /// ```
    /// # use std::time::Duration;
    /// # use latchkey::RedisClusterStore;
    /// let store = RedisClusterStore::open(["redis://127.0.0.1:7000/"])?
    ///     .with_io_timeout(Duration::from_millis(500));
    /// # Ok::<(), latchkey::StoreError>(())
    /// ```
    #[must_use]
    pub fn with_io_timeout(mut self, timeout: Duration) -> RedisClusterStore {
        self.core.set_io_timeout(timeout);
        self
    }

    /// Keeps at most `max` idle cluster connections for reuse (default
    /// [`DEFAULT_MAX_IDLE_CONNECTIONS`]); each holds a connection to every
    /// node that serves slots. `0` connects afresh for every operation.
    ///
    /// # Example
    /// ```
    /// # use latchkey::RedisClusterStore;
    /// let store = RedisClusterStore::open(["redis://127.0.0.1:7000/"])?.with_max_idle_connections(4);
    /// # Ok::<(), latchkey::StoreError>(())
    /// ```
    #[must_use]
    pub fn with_max_idle_connections(mut self, max: usize) -> RedisClusterStore {
        self.max_idle = max;
        self
    }

    /// Measures native expiry with `clock` (default the system clock), as
    /// [`RedisStore::with_clock`](crate::RedisStore::with_clock) does.
    ///
    /// # Example
    /// ```
    /// use std::sync::Arc;
    /// use latchkey::{ManualClock, RedisClusterStore, StoreManager, Timestamp};
    ///
    /// let clock = ManualClock::new(Timestamp::from_unix_millis(1_800_000_000_000));
    /// let store = RedisClusterStore::open(["redis://127.0.0.1:7000/"])?
    ///     .with_clock(Arc::new(clock.clone()));
    /// let manager = StoreManager::new(store).with_clock(Arc::new(clock));
    /// # Ok::<(), latchkey::StoreError>(())
    /// ```
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> RedisClusterStore {
        self.core.clock = clock;
        self
    }

    /// The key prefix.
    ///
    /// # Example
    /// ```
    /// # use latchkey::RedisClusterStore;
    /// assert_eq!(RedisClusterStore::open(["redis://127.0.0.1:7000/"])?.prefix(), "latchkey:");
    /// # Ok::<(), latchkey::StoreError>(())
    /// ```
    pub fn prefix(&self) -> &str {
        &self.core.prefix
    }

    /// The Redis key holding the record under `key`, the same name
    /// [`RedisStore::record_key`](crate::RedisStore::record_key) gives.
    ///
    /// # Example
    /// ```
    /// # use latchkey::{RedisClusterStore, SessionId};
    /// let store = RedisClusterStore::open(["redis://127.0.0.1:7000/"])?;
    /// let key = SessionId::generate().store_key();
    /// assert_eq!(store.record_key(&key), format!("latchkey:session:{{{}}}", key.to_hex()));
    /// # Ok::<(), latchkey::StoreError>(())
    /// ```
    pub fn record_key(&self, key: &StoreKey) -> String {
        self.core.record_key(key)
    }

    /// The Redis key of `user`'s index, the same name
    /// [`RedisStore::user_key`](crate::RedisStore::user_key) gives.
    ///
    /// # Example
    /// ```
    /// # use latchkey::RedisClusterStore;
    /// let store = RedisClusterStore::open(["redis://127.0.0.1:7000/"])?;
    /// assert!(store.user_key("alice").starts_with("latchkey:user:{"));
    /// # Ok::<(), latchkey::StoreError>(())
    /// ```
    pub fn user_key(&self, user: &str) -> String {
        self.core.user_key(user)
    }

    /// Checks that every master answers, connecting if needed.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] if one does not, within the timeouts
    /// and [`MAX_ATTEMPTS`].
    ///
    /// # Example
    /// ```no_run
    /// # use latchkey::RedisClusterStore;
    /// let store = RedisClusterStore::open(["redis://127.0.0.1:7000/"])?;
    /// store.ping()?;
    /// # Ok::<(), latchkey::StoreError>(())
    /// ```
    pub fn ping(&self) -> Result<(), StoreError> {
        // PING goes to every master.
        self.with_con(Access::Read, |con, _| con.query::<()>(&redis::cmd("PING")))
    }

    fn connect(&self) -> Result<ClusterConnection, RedisError> {
        #[cfg(feature = "redis-tls")]
        if self
            .nodes
            .iter()
            .any(|n| matches!(n.addr(), redis::ConnectionAddr::TcpTls { .. }))
        {
            super::ensure_crypto_provider();
        }
        // No retries in the client: `with_con` retries, so that it knows
        // of every attempt whether it may have run.
        let client = ClusterClientBuilder::new(self.nodes.clone())
            .connection_timeout(self.core.connect_timeout)
            .response_timeout(self.core.io_timeout)
            .retries(0)
            .build()?;
        let con = client.get_connection()?;
        con.set_write_timeout(Some(self.core.io_timeout))?;
        Ok(con)
    }

    fn release(&self, con: ClusterConnection) {
        let mut idle = self.idle.lock();
        if idle.len() < self.max_idle {
            idle.push(con);
        }
    }

    /// Runs `op` on a pooled or fresh cluster connection. An attempt that
    /// did not run (an error reply the cluster recovers from, a refused
    /// connection) is sent again on a fresh connection, up to
    /// [`MAX_ATTEMPTS`]; one whose connection dropped after sending is
    /// retried once, as by `RedisStore`. So `op` may run more than once: a
    /// write must carry a receipt or be idempotent. Its second argument
    /// says whether an earlier attempt may have run (an insert's retry
    /// then accepts its own bytes).
    fn with_con<T>(
        &self,
        access: Access,
        mut op: impl FnMut(&mut Con<'_>, bool) -> Result<T, RedisError>,
    ) -> Result<T, StoreError> {
        // The first attempt that may have run, if any: after it, a failure
        // of a write is `OutcomeUnknown` whatever the later attempts say.
        let mut lost: Option<RedisError> = None;
        let fail = |lost: Option<RedisError>, e: RedisError| match (access, lost) {
            (Access::Write, Some(first)) => StoreError::OutcomeUnknown(Box::new(first)),
            _ => unavailable(e),
        };
        // Where the last `ASK` reply sent the call.
        let mut ask: Option<(String, u16)> = None;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let pooled = self.idle.lock().pop();
            let mut con = match pooled {
                Some(con) => con,
                // Connecting sends nothing of `op`.
                None => match self.connect() {
                    Ok(con) => con,
                    Err(e) => return Err(fail(lost, e)),
                },
            };
            let outcome = op(
                &mut Con {
                    inner: &mut con,
                    ask: ask.as_ref(),
                },
                lost.is_some(),
            );
            let e = match outcome {
                Ok(v) => {
                    self.release(con);
                    return Ok(v);
                }
                Err(e) => e,
            };
            // A reply may still arrive on it: never reused. The others share
            // its view of the cluster, which a redirect or a failed node
            // just proved stale.
            drop(con);
            self.idle.lock().clear();
            if attempt_may_have_run(&e) {
                // Not after a timeout (the command may still be queued on a
                // stalled node), and only once after a dropped connection.
                if e.is_timeout() || !e.is_connection_dropped() || lost.is_some() {
                    return Err(match access {
                        Access::Read => unavailable(e),
                        Access::Write => StoreError::OutcomeUnknown(Box::new(lost.unwrap_or(e))),
                    });
                }
                lost = Some(e);
                continue;
            }
            // Only the call right after an ASK goes where it said; any
            // other answer sends the next one by the slot map again.
            ask = asked_node(&e);
            match retry_wait(&e, attempt) {
                Some(wait) if attempt < MAX_ATTEMPTS => thread::sleep(wait),
                _ => return Err(fail(lost, e)),
            }
        }
    }

    /// Adds `member` to `set`, raising the set's expiry to `set_ttl`.
    fn add_member(
        &self,
        access: Access,
        set: &str,
        member: &str,
        set_ttl: u64,
    ) -> Result<(), StoreError> {
        let call = self.core.index_call(set, member, set_ttl);
        self.with_con(access, |con, retry| run(con, &call, retry))
            .map(drop)
    }

    /// The live records in `set` that `keep` accepts; removes the members
    /// whose records are missing or rejected, by the protocol in the
    /// [module docs](self): remove, read again, and add back a record that
    /// `keep` now accepts. Corrupt records are skipped and left to expire.
    fn read_index(
        &self,
        set: &str,
        keep: impl Fn(&Record) -> bool,
    ) -> Result<Vec<(StoreKey, Record)>, StoreError> {
        let members_cmd = self.core.members_cmd(set);
        let members: Vec<String> = self.with_con(Access::Read, |con, _| con.query(&members_cmd))?;
        let keys: Vec<StoreKey> = members
            .iter()
            .filter_map(|m| StoreKey::from_hex(m))
            .collect();
        let mut values: Vec<Option<Vec<u8>>> = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(BATCH) {
            // One GET per record, pipelined by master (never an MGET, which
            // a cluster refuses across slots). Bytes, not strings: a value
            // that is not UTF-8 is one corrupt record, not a failed call.
            let got: Vec<Option<Vec<u8>>> = self.with_con(Access::Read, |con, _| {
                let mut pipe = cluster_pipe();
                for k in chunk {
                    pipe.cmd("GET").arg(self.core.record_key(k));
                }
                pipe.query(con.inner)
            })?;
            values.extend(got);
        }
        let (mut out, stale) = self.core.sort_index(members, values, &keep);
        let mut odd = Vec::new();
        for (member, key, _seen) in stale {
            match key {
                Some(key) => {
                    if let Some(record) = self.unindex(set, &key, &member, &keep)? {
                        out.push((key, record));
                    }
                }
                None => odd.push(member),
            }
        }
        if !odd.is_empty() {
            // Not written by this store: nothing can ever match them.
            self.with_con(Access::Read, |con, _| {
                con.query::<i64>(redis::cmd("HDEL").arg(set).arg(&odd))
            })?;
        }
        Ok(out)
    }

    /// Removes `member` from `set`, then reads its record again and, if
    /// `keep` now accepts it (a write bound it meanwhile), adds it back and
    /// returns it. Repeating it is harmless.
    fn unindex(
        &self,
        set: &str,
        key: &StoreKey,
        member: &str,
        keep: &impl Fn(&Record) -> bool,
    ) -> Result<Option<Record>, StoreError> {
        let get = self.core.get_cmd(key);
        self.with_con(Access::Read, |con, _| {
            con.query::<i64>(redis::cmd("HDEL").arg(set).arg(member))
        })?;
        let raw: Option<Vec<u8>> = match self.with_con(Access::Read, |con, _| con.query(&get)) {
            Ok(raw) => raw,
            Err(e) => {
                // Unchecked, the removal might have dropped the member
                // of a record a write just bound: put it back (a stale
                // member is harmless, a missing one is not). No expiry
                // is set, in case the removal emptied the index: the
                // next binding write or cleaning sets one again.
                let _ = self.with_con(Access::Read, |con, _| {
                    con.query::<i64>(redis::cmd("HSET").arg(set).arg(member).arg(""))
                });
                return Err(e);
            }
        };
        let Some(Ok(record)) = raw.as_deref().map(decode) else {
            return Ok(None);
        };
        if !keep(&record) {
            return Ok(None);
        }
        let now = self.core.now();
        let set_ttl = self
            .core
            .index_entry(&record, now)
            .map_or_else(|| self.core.ttl(record.expires_at, now), |(_, t)| t);
        self.add_member(Access::Read, set, member, set_ttl)?;
        Ok(Some(record))
    }

    /// The masters that serve slots, from `CLUSTER SLOTS`.
    fn masters(&self) -> Result<BTreeSet<(String, u16)>, StoreError> {
        self.with_con(Access::Read, |con, _| {
            let reply: Value = con.query(redis::cmd("CLUSTER").arg("SLOTS"))?;
            masters_of(reply)
        })
    }

    /// One SCAN pass over the keys of `kind` on every master, handing each
    /// batch of names to `f`.
    fn scan(
        &self,
        kind: KeyKind,
        mut f: impl FnMut(Vec<String>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let pattern = self.core.scan_pattern(kind);
        for (host, port) in self.masters()? {
            let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                host: host.clone(),
                port,
            });
            let mut cursor: u64 = 0;
            loop {
                let (next, keys): (u64, Vec<String>) = self.with_con(Access::Read, |con, _| {
                    let v = con
                        .inner
                        .route_command(&scan_cmd(&pattern, cursor), route.clone())?;
                    Ok(redis::from_redis_value(v)?)
                })?;
                if !keys.is_empty() {
                    f(keys)?;
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(())
    }

    /// A write script call (insert, replace) of `record` under `key`,
    /// between the two adds to the user's index if the record binds one
    /// (see the [module docs](self)). `again` says which answers still
    /// need the second add.
    fn bound_write(
        &self,
        key: &StoreKey,
        record: &Record,
        call: &Call<'_>,
        again: impl Fn(i64) -> bool,
    ) -> Result<i64, StoreError> {
        let index = self.core.index_entry(record, self.core.now());
        let member = key.to_hex();
        if let Some((set, set_ttl)) = &index {
            // A member whose record is not (yet) bound is invisible to
            // readers, so a failure here leaves nothing to allow for.
            self.add_member(Access::Read, set, &member, *set_ttl)?;
        }
        let code = self.with_con(Access::Write, |con, retry| run(con, call, retry))?;
        if let Some((set, set_ttl)) = &index
            && again(code)
        {
            let access = if code == 1 {
                // The record was written: if the index may lag it, the
                // caller must allow for both states.
                Access::Write
            } else {
                Access::Read
            };
            self.add_member(access, set, &member, *set_ttl)?;
        }
        Ok(code)
    }
}

impl Store for RedisClusterStore {
    fn insert(&self, key: &StoreKey, record: &Record) -> Result<(), StoreError> {
        // No receipt, as with one Redis: the retry after a lost reply
        // takes its own bytes as proof (see `LUA_INSERT`). Exists (0) adds
        // again too: a rotation's roll-forward may find the successor
        // written by the rotation it completes.
        let call = self.core.insert_call(key, record)?;
        let code = self.bound_write(key, record, &call, |code| code == 1 || code == 0)?;
        insert_answer(code)
    }

    fn get(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        let cmd = self.core.get_cmd(key);
        let raw: Option<Vec<u8>> = self.with_con(Access::Read, |con, _| con.query(&cmd))?;
        raw.map(|raw| decode_for(key, &raw)).transpose()
    }

    fn replace(&self, key: &StoreKey, expected: u64, record: &Record) -> Result<(), StoreError> {
        let call = self.core.replace_call(key, expected, record)?;
        let code = self.bound_write(key, record, &call, |code| code == 1)?;
        replace_answer(key, code)
    }

    fn touch(
        &self,
        key: &StoreKey,
        last_seen: Timestamp,
        expires_at: Timestamp,
    ) -> Result<bool, StoreError> {
        // No receipt: a touch only raises deadlines, so a retry that runs
        // it again changes nothing more.
        let call = self.core.touch_call(key, last_seen, expires_at);
        let code = self.with_con(Access::Write, |con, retry| run(con, &call, retry))?;
        touch_answer(key, code)
    }

    // `rotate`: the provided method. The old and new records hash to
    // different slots, so no script may write both (module docs).

    fn remove(&self, key: &StoreKey) -> Result<bool, StoreError> {
        // The user index keeps the member until a cleaner finds it stale.
        let call = self.core.remove_call(key);
        let n = self.with_con(Access::Write, |con, retry| run(con, &call, retry))?;
        Ok(remove_answer(n))
    }

    fn sessions_of(&self, user: &str) -> Result<Vec<(StoreKey, Record)>, StoreError> {
        self.read_index(&self.user_key(user), |r| r.user() == Some(user))
    }

    /// Deletes the records with `expires_at <= now` on every master (Redis's
    /// native expiry already dropped most of them), one compare-and-delete
    /// script per record, then cleans every user index by the rule of
    /// `RedisStore` (a member stays while its record is live and bound to
    /// the user). It costs time in proportion to the number of sessions:
    /// with native expiry in place, calling it is optional.
    fn purge_expired(&self, now: Timestamp) -> Result<usize, StoreError> {
        let mut purged = 0usize;
        self.scan(KeyKind::Session, |keys| {
            for k in keys {
                // One key per call: records of one SCAN batch are in
                // different slots.
                let call = self.core.purge_call(vec![k], now);
                let n = self.with_con(Access::Write, |con, retry| run(con, &call, retry))?;
                purged += usize::try_from(n).unwrap_or(0);
            }
            Ok(())
        })?;
        self.scan(KeyKind::User, |sets| {
            for set in sets {
                let Some(hash) = self.core.index_owner(&set).map(str::to_owned) else {
                    continue;
                };
                self.read_index(&set, |r| keeps_member(r, &hash))?;
            }
            Ok(())
        })?;
        Ok(purged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::SessionId;

    #[test]
    fn debug_does_not_leak_a_node_password() {
        let store = RedisClusterStore::open([
            "redis://:hunter2@127.0.0.1:7000/",
            "redis://:hunter2@127.0.0.1:7001/",
        ])
        .unwrap();
        let dbg = format!("{store:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert!(dbg.contains("127.0.0.1:7001"), "{dbg}");
    }

    #[test]
    fn an_unreachable_cluster_is_unavailable_not_a_panic() {
        let store = RedisClusterStore::open(["redis://127.0.0.1:1/"])
            .unwrap()
            .with_connect_timeout(Duration::from_millis(200));
        let key = SessionId::generate().store_key();
        assert!(matches!(store.get(&key), Err(StoreError::Unavailable(_))));
        assert!(matches!(store.ping(), Err(StoreError::Unavailable(_))));
        assert!(matches!(
            store.remove(&key),
            Err(StoreError::Unavailable(_))
        ));
    }

    #[test]
    fn redirects_and_a_cluster_down_are_retried_other_errors_are_not() {
        let reply = |kind| RedisError::from((ErrorKind::Server(kind), "x"));
        assert_eq!(
            retry_wait(&reply(ServerErrorKind::Moved), 1),
            Some(Duration::ZERO)
        );
        for kind in [
            ServerErrorKind::Ask,
            ServerErrorKind::ClusterDown,
            ServerErrorKind::TryAgain,
            ServerErrorKind::ReadOnly,
            ServerErrorKind::MasterDown,
        ] {
            assert!(retry_wait(&reply(kind), 1).is_some(), "{kind:?}");
            assert!(!attempt_may_have_run(&reply(kind)));
        }
        assert_eq!(retry_wait(&reply(ServerErrorKind::ResponseError), 1), None);
        // As MAX_ATTEMPTS's docs say: the waits between attempts.
        let waits: Duration = (1..MAX_ATTEMPTS)
            .filter_map(|a| retry_wait(&reply(ServerErrorKind::ClusterDown), a))
            .sum();
        assert_eq!(waits, Duration::from_millis(350));
        let refused = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(!attempt_may_have_run(&refused));
        assert!(retry_wait(&refused, 1).is_some());
        let reset = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(attempt_may_have_run(&reset));
    }

    #[test]
    fn an_ask_reply_names_the_node_to_ask() {
        let ask = RedisError::from((
            ErrorKind::Server(ServerErrorKind::Ask),
            "An error was signalled by the server",
            "3999 127.0.0.1:27001".to_owned(),
        ));
        assert_eq!(asked_node(&ask), Some(("127.0.0.1".to_owned(), 27001)));
        let moved = RedisError::from((
            ErrorKind::Server(ServerErrorKind::Moved),
            "An error was signalled by the server",
            "3999 127.0.0.1:27001".to_owned(),
        ));
        assert_eq!(asked_node(&moved), None);
    }

    #[test]
    fn masters_come_from_cluster_slots_once_each() {
        let node = |host: &str, port: i64| {
            Value::Array(vec![
                Value::BulkString(host.as_bytes().to_vec()),
                Value::Int(port),
                Value::BulkString(b"id".to_vec()),
            ])
        };
        let reply = Value::Array(vec![
            Value::Array(vec![
                Value::Int(0),
                Value::Int(5460),
                node("127.0.0.1", 7000),
                node("127.0.0.1", 7003),
            ]),
            Value::Array(vec![
                Value::Int(5461),
                Value::Int(5500),
                node("127.0.0.1", 7001),
            ]),
            Value::Array(vec![
                Value::Int(5501),
                Value::Int(10922),
                node("127.0.0.1", 7001),
            ]),
        ]);
        let masters = masters_of(reply).unwrap();
        assert_eq!(
            masters.into_iter().collect::<Vec<_>>(),
            [
                ("127.0.0.1".to_owned(), 7000),
                ("127.0.0.1".to_owned(), 7001)
            ]
        );
        assert!(masters_of(Value::Int(1)).is_err());
    }
}
