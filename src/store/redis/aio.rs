//! [`AsyncRedisStore`]: [`RedisStore`](super::RedisStore)'s sessions for
//! async servers (feature `redis-async`).
//!
//! The same keys, Lua scripts, receipts and record encoding as
//! `RedisStore`, from the same code (everything but the connection is
//! shared), so blocking and async app servers can share one Redis and one
//! session space, and an operator reads both with the same `redis-cli`
//! commands (see the [module docs](super) for the layout, expiry,
//! atomicity and the per-user index).
//!
//! # Connection
//!
//! One multiplexed connection (the `redis` crate's, on Tokio) carries
//! every call of every task: requests are pipelined on it as they come,
//! so many calls in flight cost one socket and no pool. It is opened by
//! the first call, and opened again by the first call after it failed:
//! one caller connects while the others wait for it. Connecting waits at
//! most the connect timeout, each call at most the I/O timeout (defaults
//! as for `RedisStore`). Nothing runs in the background but the
//! connection's own driver task.
//!
//! The futures need a Tokio runtime: polled outside one, a call fails
//! with [`StoreError::Unavailable`] rather than panicking. TLS
//! (`rediss://`, and `open_tls` for a private CA) needs the feature
//! `redis-async-tls`, and then checks certificates exactly as
//! [`RedisStore`'s TLS](super::RedisStore#tls) does.
//!
//! # Faults
//!
//! As for `RedisStore` (see [Faults](super::RedisStore#faults)), decided
//! by the same code: an error reply or a failed connect is `Unavailable`
//! (nothing changed); a dropped connection is retried once on a fresh
//! one, a write under its receipt or mark, so it is applied at most once and
//! reported exactly; a timeout, or a retry that fails too, leaves a read
//! `Unavailable` and a write [`StoreError::OutcomeUnknown`]. After a
//! timeout or an I/O error on the shared connection, new calls go to a
//! fresh one (one reconnect per failed connection, however many calls
//! failed on it), so a late reply is never taken for another call's
//! answer.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, ErrorKind, RedisError};

use super::core::{
    Access, Core, KeyKind, after_failed_retry, after_first_failure, decode_for, insert_answer,
    keeps_member, remove_answer, replace_answer, rotate_answer, scan_cmd, touch_answer,
    unavailable,
};
use crate::clock::{Clock, Timestamp};
use crate::id::StoreKey;
use crate::store::{AsyncStore, Record, StoreError};

/// An [`AsyncStore`] in Redis: [`RedisStore`](super::RedisStore)'s keys,
/// scripts and records over one multiplexed connection.
///
/// See the [module docs](self) for the connection and faults.
///
/// # Example
/// ```no_run
/// use std::time::Duration;
/// use latchkey::{AsyncRedisStore, AsyncStore, SessionId};
///
/// # async fn run() -> Result<(), latchkey::StoreError> {
/// let store = AsyncRedisStore::open("redis://127.0.0.1:6379/")?
///     .with_prefix("myapp:sessions:")
///     .with_io_timeout(Duration::from_millis(500));
/// store.ping().await?; // fail fast at startup if Redis is not there
/// let key = SessionId::generate().store_key();
/// assert!(store.get(&key).await?.is_none());
/// # Ok(())
/// # }
/// ```
pub struct AsyncRedisStore {
    client: Client,
    core: Core,
    /// The shared connection and its generation, once connected.
    slot: Mutex<Option<(u64, MultiplexedConnection)>>,
    /// Held by the one caller that connects; counts the generations.
    connecting: tokio::sync::Mutex<u64>,
}

impl fmt::Debug for AsyncRedisStore {
    /// Shows where the store points, never the URL: it may carry a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let info = self.client.get_connection_info();
        f.debug_struct("AsyncRedisStore")
            .field("addr", &info.addr().to_string())
            .field("db", &info.redis_settings().db())
            .field("prefix", &self.core.prefix)
            .field("connect_timeout", &self.core.connect_timeout)
            .field("io_timeout", &self.core.io_timeout)
            .field("connected", &self.slot.lock().is_some())
            .finish_non_exhaustive()
    }
}

impl AsyncRedisStore {
    /// A store for the Redis at `url` (`redis://…` or `redis+unix://…`, as
    /// for [`RedisStore::open`](super::RedisStore::open)), with the
    /// default prefix, timeouts and the system clock. Nothing is connected
    /// yet (see [`AsyncRedisStore::ping`]).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] if `url` is not a Redis URL this build
    /// supports: `rediss://` (TLS, checked against the system's roots)
    /// needs the feature `redis-async-tls`, and `#insecure` is always
    /// refused.
    ///
    /// # Example
    /// ```
    /// use latchkey::AsyncRedisStore;
    ///
    /// let store = AsyncRedisStore::open("redis://127.0.0.1:6379/0")?;
    /// assert_eq!(store.prefix(), "latchkey:");
    /// assert!(AsyncRedisStore::open("not a url").is_err());
    /// # Ok::<(), latchkey::StoreError>(())
    /// ```
    pub fn open(url: &str) -> Result<AsyncRedisStore, StoreError> {
        AsyncRedisStore::from_client(Client::open(url).map_err(unavailable)?)
    }

    /// A store for the Redis at a `rediss://` `url`, over TLS, trusting
    /// the CA certificates in `root_ca_pem` instead of the system's roots
    /// when it is `Some` (feature `redis-async-tls`): the same checks as
    /// [`RedisStore::open_tls`](super::RedisStore::open_tls).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] if `url` is not a `rediss://` URL, asks
    /// for `#insecure`, or `root_ca_pem` holds no certificate or one that
    /// does not parse.
    ///
    /// # Example
    /// ```no_run
    /// use latchkey::AsyncRedisStore;
    ///
    /// let ca = std::fs::read("/etc/myapp/redis-ca.pem")?;
    /// let store = AsyncRedisStore::open_tls("rediss://:secret@redis.internal:6380/", Some(&ca))?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "redis-async-tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis-async-tls")))]
    pub fn open_tls(url: &str, root_ca_pem: Option<&[u8]>) -> Result<AsyncRedisStore, StoreError> {
        AsyncRedisStore::from_client(super::tls_client(url, root_ca_pem)?)
    }

    fn from_client(client: Client) -> Result<AsyncRedisStore, StoreError> {
        if !cfg!(feature = "redis-async-tls") && is_tls(&client) {
            return Err(unavailable(RedisError::from((
                ErrorKind::InvalidClientConfig,
                "AsyncRedisStore speaks TLS (rediss://) only with the feature redis-async-tls",
            ))));
        }
        super::refuse_insecure(&client)?;
        Ok(AsyncRedisStore {
            client,
            core: Core::new(),
            slot: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(0),
        })
    }

    /// Puts every key under `prefix` instead of
    /// [`DEFAULT_PREFIX`](super::DEFAULT_PREFIX): a `RedisStore` with the
    /// same prefix shares its sessions.
    ///
    /// # Panics
    /// If `prefix` contains `{` or `}`, which would displace the hash tags
    /// in the key names (see the [parent module](super));
    /// [`AsyncRedisStore::try_with_prefix`] returns an error instead.
    ///
    /// # Example
    /// ```
    /// # use latchkey::AsyncRedisStore;
    /// let store = AsyncRedisStore::open("redis://127.0.0.1/")?.with_prefix("shop:");
    /// assert_eq!(store.prefix(), "shop:");
    /// # Ok::<(), latchkey::StoreError>(())
    /// ```
    #[must_use]
    pub fn with_prefix(self, prefix: impl Into<String>) -> AsyncRedisStore {
        match self.try_with_prefix(prefix) {
            Ok(store) => store,
            Err(_) => panic!("a Redis key prefix must not contain '{{' or '}}'"),
        }
    }

    /// Puts every key under `prefix`, as
    /// [`AsyncRedisStore::with_prefix`] does.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] (a configuration error) if `prefix`
    /// contains `{` or `}`.
    ///
    /// # Example
    /// ```
    /// # use latchkey::AsyncRedisStore;
    /// let open = || AsyncRedisStore::open("redis://127.0.0.1/");
    /// assert_eq!(open()?.try_with_prefix("shop:")?.prefix(), "shop:");
    /// assert!(open()?.try_with_prefix("{shop}:").is_err());
    /// # Ok::<(), latchkey::StoreError>(())
    /// ```
    pub fn try_with_prefix(
        mut self,
        prefix: impl Into<String>,
    ) -> Result<AsyncRedisStore, StoreError> {
        self.core.set_prefix(prefix.into())?;
        Ok(self)
    }

    /// Waits at most `timeout` to connect (default
    /// [`DEFAULT_CONNECT_TIMEOUT`](super::DEFAULT_CONNECT_TIMEOUT)). A
    /// zero duration means the default.
    ///
    /// # Example
    /// ```
    /// # use std::time::Duration;
    /// # use latchkey::AsyncRedisStore;
    /// let store = AsyncRedisStore::open("redis://127.0.0.1/")?
    ///     .with_connect_timeout(Duration::from_millis(250));
    /// # Ok::<(), latchkey::StoreError>(())
    /// ```
    #[must_use]
    pub fn with_connect_timeout(mut self, timeout: Duration) -> AsyncRedisStore {
        self.core.set_connect_timeout(timeout);
        self
    }

    /// Waits at most `timeout` for the answer to each call (default
    /// [`DEFAULT_IO_TIMEOUT`](super::DEFAULT_IO_TIMEOUT)). A zero
    /// duration means the default.
    ///
    /// # Example
    /// ```
    /// # use std::time::Duration;
    /// # use latchkey::AsyncRedisStore;
    /// let store = AsyncRedisStore::open("redis://127.0.0.1/")?
    ///     .with_io_timeout(Duration::from_millis(500));
    /// # Ok::<(), latchkey::StoreError>(())
    /// ```
    #[must_use]
    pub fn with_io_timeout(mut self, timeout: Duration) -> AsyncRedisStore {
        self.core.set_io_timeout(timeout);
        self
    }

    /// Measures native expiry with `clock` (default the system clock).
    ///
    /// # Example
    /// ```
    /// use std::sync::Arc;
    /// use latchkey::{AsyncRedisStore, ManualClock, Timestamp};
    ///
    /// let clock = ManualClock::new(Timestamp::from_unix_millis(1_800_000_000_000));
    /// let store = AsyncRedisStore::open("redis://127.0.0.1/")?.with_clock(Arc::new(clock));
    /// # Ok::<(), latchkey::StoreError>(())
    /// ```
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> AsyncRedisStore {
        self.core.clock = clock;
        self
    }

    /// The key prefix.
    ///
    /// # Example
    /// ```
    /// # use latchkey::AsyncRedisStore;
    /// assert_eq!(AsyncRedisStore::open("redis://127.0.0.1/")?.prefix(), "latchkey:");
    /// # Ok::<(), latchkey::StoreError>(())
    /// ```
    pub fn prefix(&self) -> &str {
        &self.core.prefix
    }

    /// The Redis key holding the record under `key`: the same as
    /// [`RedisStore::record_key`](super::RedisStore::record_key).
    ///
    /// # Example
    /// ```
    /// # use latchkey::{AsyncRedisStore, SessionId};
    /// let store = AsyncRedisStore::open("redis://127.0.0.1/")?;
    /// let key = SessionId::generate().store_key();
    /// assert_eq!(store.record_key(&key), format!("latchkey:session:{{{}}}", key.to_hex()));
    /// # Ok::<(), latchkey::StoreError>(())
    /// ```
    pub fn record_key(&self, key: &StoreKey) -> String {
        self.core.record_key(key)
    }

    /// The Redis key of `user`'s index: the same as
    /// [`RedisStore::user_key`](super::RedisStore::user_key).
    ///
    /// # Example
    /// ```
    /// # use latchkey::AsyncRedisStore;
    /// let store = AsyncRedisStore::open("redis://127.0.0.1/")?;
    /// assert!(store.user_key("alice").starts_with("latchkey:user:{"));
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
    /// # use latchkey::AsyncRedisStore;
    /// # async fn run() -> Result<(), latchkey::StoreError> {
    /// AsyncRedisStore::open("redis://127.0.0.1/")?.ping().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.with_con(Access::Read, |mut con, _| async move {
            redis::cmd("PING").query_async::<()>(&mut con).await
        })
        .await
    }

    /// The shared connection, connecting if there is none.
    async fn connection(&self) -> Result<(u64, MultiplexedConnection), RedisError> {
        if let Some(current) = self.slot.lock().clone() {
            return Ok(current);
        }
        // Without a Tokio runtime the client would panic.
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(RedisError::from((
                ErrorKind::Client,
                "AsyncRedisStore needs a Tokio runtime",
            )));
        }
        let mut generation = self.connecting.lock().await;
        // Another caller may have connected while this one waited.
        if let Some(current) = self.slot.lock().clone() {
            return Ok(current);
        }
        #[cfg(feature = "redis-async-tls")]
        if is_tls(&self.client) {
            super::ensure_crypto_provider();
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.core.connect_timeout))
            .set_response_timeout(Some(self.core.io_timeout));
        let con = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        *generation += 1;
        let current = (*generation, con);
        *self.slot.lock() = Some(current.clone());
        Ok(current)
    }

    /// Forgets the connection of `generation` if it is still the shared
    /// one, so the next call connects afresh.
    fn discard(&self, generation: u64) {
        let mut slot = self.slot.lock();
        if slot.as_ref().is_some_and(|(g, _)| *g == generation) {
            *slot = None;
        }
    }

    /// Forgets a connection after an I/O failure or a timeout on it, as
    /// `RedisStore` drops one: new calls go to a fresh connection, and
    /// calls already sent on the old one finish there. A timeout alone
    /// would leave the multiplexed connection in order (the late reply is
    /// matched to its request and dropped), but only as long as every
    /// reply does come, which a connection that stalled has stopped
    /// proving.
    fn after_error(&self, generation: u64, e: &RedisError) {
        if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() {
            self.discard(generation);
        }
    }

    /// Runs `op` on the shared connection, retrying it once on a fresh one
    /// if the connection dropped; what each failure becomes is decided by
    /// the same code as for `RedisStore`. `op`'s second argument says
    /// whether this is the retry.
    async fn with_con<T, F, Fut>(&self, access: Access, op: F) -> Result<T, StoreError>
    where
        F: Fn(MultiplexedConnection, bool) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        // Nothing was sent: whatever went wrong, nothing changed.
        let (generation, con) = self.connection().await.map_err(unavailable)?;
        let first = match op(con, false).await {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        self.after_error(generation, &first);
        let first = after_first_failure(access, first)?;
        let (generation, con) = match self.connection().await {
            Ok(c) => c,
            Err(e) => return Err(after_failed_retry(access, first, e)),
        };
        match op(con, true).await {
            Ok(v) => Ok(v),
            Err(e) => {
                self.after_error(generation, &e);
                Err(after_failed_retry(access, first, e))
            }
        }
    }

    /// The live records in the index `set` that `keep` accepts, cleaning
    /// the stale members, exactly as `RedisStore` does.
    async fn read_index(
        &self,
        set: &str,
        keep: impl Fn(&Record) -> bool,
    ) -> Result<Vec<(StoreKey, Record)>, StoreError> {
        let members_cmd = self.core.members_cmd(set);
        let members: Vec<String> = self
            .with_con(Access::Read, |mut con, _| {
                let cmd = &members_cmd;
                async move { cmd.query_async(&mut con).await }
            })
            .await?;
        let cmds = self.core.values_cmds(&members);
        let values: Vec<Option<Vec<u8>>> = self
            .with_con(Access::Read, |mut con, _| {
                let cmds = &cmds;
                async move {
                    let mut values = Vec::new();
                    for cmd in cmds {
                        // Bytes, not strings: a value that is not UTF-8 is
                        // one corrupt record, not a failed call.
                        values.extend(cmd.query_async::<Vec<Option<Vec<u8>>>>(&mut con).await?);
                    }
                    Ok(values)
                }
            })
            .await?;
        let (out, stale) = self.core.sort_index(members, values, keep);
        if !stale.is_empty() {
            let (call, hdel) = self.core.unindex_requests(set, &stale);
            self.with_con(Access::Read, |mut con, _| {
                let (call, hdel) = (&call, &hdel);
                async move {
                    if let Some(call) = call {
                        call.invocation(false).invoke_async::<i64>(&mut con).await?;
                    }
                    if let Some(hdel) = hdel {
                        hdel.query_async::<i64>(&mut con).await?;
                    }
                    Ok(())
                }
            })
            .await?;
        }
        Ok(out)
    }

    /// All the keys of `kind`, by SCAN in batches.
    async fn scan(&self, kind: KeyKind) -> Result<Vec<Vec<String>>, StoreError> {
        let pattern = self.core.scan_pattern(kind);
        let mut cursor: u64 = 0;
        let mut batches = Vec::new();
        loop {
            let cmd = scan_cmd(&pattern, cursor);
            let (next, keys): (u64, Vec<String>) = self
                .with_con(Access::Read, |mut con, _| {
                    let cmd = &cmd;
                    async move { cmd.query_async(&mut con).await }
                })
                .await?;
            if !keys.is_empty() {
                batches.push(keys);
            }
            if next == 0 {
                return Ok(batches);
            }
            cursor = next;
        }
    }

    /// Runs a script call as a write, with its receipt on a retry.
    async fn write(&self, call: &super::core::Call<'_>) -> Result<i64, StoreError> {
        self.with_con(Access::Write, |mut con, retry| {
            let inv = call.invocation(retry);
            async move { inv.invoke_async::<i64>(&mut con).await }
        })
        .await
    }
}

/// Whether `client` connects with TLS (a `rediss://` URL).
fn is_tls(client: &Client) -> bool {
    matches!(
        client.get_connection_info().addr(),
        redis::ConnectionAddr::TcpTls { .. }
    )
}

impl AsyncStore for AsyncRedisStore {
    async fn insert(&self, key: &StoreKey, record: &Record) -> Result<(), StoreError> {
        let call = self.core.insert_call(key, record)?;
        insert_answer(self.write(&call).await?)
    }

    async fn get(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        let cmd = self.core.get_cmd(key);
        let raw: Option<Vec<u8>> = self
            .with_con(Access::Read, |mut con, _| {
                let cmd = &cmd;
                async move { cmd.query_async(&mut con).await }
            })
            .await?;
        raw.map(|raw| decode_for(key, &raw)).transpose()
    }

    async fn replace(
        &self,
        key: &StoreKey,
        expected: u64,
        record: &Record,
    ) -> Result<(), StoreError> {
        let call = self.core.replace_call(key, expected, record)?;
        replace_answer(key, self.write(&call).await?)
    }

    async fn touch(
        &self,
        key: &StoreKey,
        last_seen: Timestamp,
        expires_at: Timestamp,
    ) -> Result<bool, StoreError> {
        let call = self.core.touch_call(key, last_seen, expires_at);
        touch_answer(key, self.write(&call).await?)
    }

    async fn rotate(
        &self,
        old: &StoreKey,
        expected: u64,
        retired: &Record,
        new: &StoreKey,
        record: &Record,
    ) -> Result<(), StoreError> {
        let call = self.core.rotate_call(old, expected, retired, new, record)?;
        rotate_answer(old, self.write(&call).await?)
    }

    async fn remove(&self, key: &StoreKey) -> Result<bool, StoreError> {
        let call = self.core.remove_call(key);
        Ok(remove_answer(self.write(&call).await?))
    }

    async fn sessions_of(&self, user: &str) -> Result<Vec<(StoreKey, Record)>, StoreError> {
        self.read_index(&self.core.user_key(user), |r| r.user() == Some(user))
            .await
    }

    /// As `RedisStore`'s: deletes the records with `expires_at <= now`,
    /// then cleans every user index, by SCAN in batches.
    async fn purge_expired(&self, now: Timestamp) -> Result<usize, StoreError> {
        let mut purged = 0usize;
        for keys in self.scan(KeyKind::Session).await? {
            let call = self.core.purge_call(keys, now);
            purged += usize::try_from(self.write(&call).await?).unwrap_or(0);
        }
        for sets in self.scan(KeyKind::User).await? {
            for set in sets {
                let Some(hash) = self.core.index_owner(&set).map(str::to_owned) else {
                    continue;
                };
                self.read_index(&set, |r| keeps_member(r, &hash)).await?;
            }
        }
        Ok(purged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::SessionId;

    #[test]
    fn debug_does_not_leak_the_url_password() {
        let store = AsyncRedisStore::open("redis://admin:hunter2@127.0.0.1:6390/3").unwrap();
        let dbg = format!("{store:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert!(!dbg.contains("admin"), "{dbg}");
        assert!(dbg.contains("127.0.0.1:6390"), "{dbg}");
    }

    #[test]
    fn keys_are_the_blocking_stores_keys() {
        let sync = super::super::RedisStore::open("redis://127.0.0.1/")
            .unwrap()
            .with_prefix("app:");
        let async_ = AsyncRedisStore::open("redis://127.0.0.1/")
            .unwrap()
            .with_prefix("app:");
        let key = SessionId::generate().store_key();
        assert_eq!(sync.record_key(&key), async_.record_key(&key));
        assert_eq!(sync.user_key("alice"), async_.user_key("alice"));
    }

    #[test]
    fn insecure_tls_urls_are_refused_not_downgraded() {
        for url in [
            "rediss://127.0.0.1/#insecure",
            "redis://127.0.0.1/#insecure",
        ] {
            let Err(err) = AsyncRedisStore::open(url) else {
                // A plain URL ignores the fragment: no TLS to weaken.
                assert!(url.starts_with("redis://"), "{url}");
                continue;
            };
            assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
        }
        #[cfg(not(feature = "redis-async-tls"))]
        assert!(AsyncRedisStore::open("rediss://127.0.0.1/").is_err());
    }

    #[test]
    fn outside_a_tokio_runtime_a_call_is_unavailable_not_a_panic() {
        let store = AsyncRedisStore::open("redis://127.0.0.1:1/").unwrap();
        let key = SessionId::generate().store_key();
        let got = block_on_without_runtime(store.get(&key));
        assert!(matches!(got, Err(StoreError::Unavailable(_))), "{got:?}");
    }

    /// Polls a future to completion on this thread, with no runtime.
    fn block_on_without_runtime<F: Future>(f: F) -> F::Output {
        use std::pin::pin;
        use std::task::{Context, Poll, Waker};
        let mut f = pin!(f);
        let mut cx = Context::from_waker(Waker::noop());
        loop {
            if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
        }
    }
}
