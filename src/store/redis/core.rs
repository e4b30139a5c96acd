//! What [`RedisStore`](super::RedisStore), the asynchronous store and the
//! cluster store share, so that all write the same keys with the same
//! scripts and read each other's records: key names (with their hash
//! tags), receipts, time to live, the request each operation sends and
//! how its answer is read, and what a failure means. Nothing here does
//! I/O: each store drives the requests over its own connections
//! (blocking, a multiplexed async one, or a cluster's) and hands the
//! answers back. The cluster store runs the write scripts without the
//! user index ([`Core::without_index_in_scripts`]) and keeps the index
//! itself, across slots.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng as _;
use redis::{Cmd, ErrorKind, RedisError, Script, ScriptInvocation};
use sha2::{Digest, Sha256};

use super::scripts::{
    LUA_COMMON, LUA_INDEX, LUA_INSERT, LUA_PURGE, LUA_REMOVE, LUA_REPLACE, LUA_ROTATE, LUA_TOUCH,
    LUA_UNINDEX,
};
use super::{
    BATCH, DEFAULT_CONNECT_TIMEOUT, DEFAULT_IO_TIMEOUT, DEFAULT_PREFIX, DecodeError, MAX_TTL_MS,
    MIN_TTL_MS, RECEIPT_MARGIN_MS, decode, encode,
};
use crate::clock::{Clock, SystemClock, Timestamp};
use crate::id::StoreKey;
use crate::store::{Record, RecordState, StoreError};

/// One script: the shared Lua, then its body. `Script` keeps the SHA-1 so
/// calls send `EVALSHA` and fall back to `EVAL` once when Redis does not
/// know it yet; the source is kept for the cluster store, which sends
/// `EVAL` itself (to the key's node only).
pub(super) struct Lua {
    script: Script,
    source: String,
}

impl Lua {
    fn new(body: &str) -> Lua {
        let source = format!("{LUA_COMMON}{body}");
        Lua {
            script: Script::new(&source),
            source,
        }
    }
}

/// The scripts, the same for every Redis store (so the same SHA-1s).
pub(super) struct Scripts {
    insert: Lua,
    replace: Lua,
    touch: Lua,
    rotate: Lua,
    remove: Lua,
    purge: Lua,
    unindex: Lua,
    index: Lua,
}

impl Scripts {
    fn new() -> Scripts {
        Scripts {
            insert: Lua::new(LUA_INSERT),
            replace: Lua::new(LUA_REPLACE),
            touch: Lua::new(LUA_TOUCH),
            rotate: Lua::new(LUA_ROTATE),
            remove: Lua::new(LUA_REMOVE),
            purge: Lua::new(LUA_PURGE),
            unindex: Lua::new(LUA_UNINDEX),
            index: Lua::new(LUA_INDEX),
        }
    }
}

/// The settings and the request logic of a Redis store, without its
/// connections.
pub(super) struct Core {
    pub(super) prefix: String,
    pub(super) connect_timeout: Duration,
    pub(super) io_timeout: Duration,
    pub(super) clock: Arc<dyn Clock>,
    /// Whether the write scripts update the user index themselves (one
    /// Redis), or leave it to the caller (a cluster, where an index lives
    /// in another slot than the record: see `store::redis::cluster`).
    index_in_scripts: bool,
    scripts: Scripts,
}

/// One script call, ready to send: its keys and arguments are fixed
/// before the first attempt, so a retry sends the same receipt.
pub(super) struct Call<'a> {
    script: &'a Lua,
    keys: Vec<String>,
    args: Vec<Vec<u8>>,
    /// The argument that tells the script it runs as a retry ("1") rather
    /// than a first attempt ("0"), for the scripts that need to know.
    retry_arg: Option<usize>,
}

impl Call<'_> {
    /// The invocation for the first attempt (`retry` false) or the retry.
    pub(super) fn invocation(&self, retry: bool) -> ScriptInvocation<'_> {
        let mut inv = self.script.script.prepare_invoke();
        for k in &self.keys {
            inv.key(k);
        }
        for (i, a) in self.args.iter().enumerate() {
            inv.arg(self.arg(i, a, retry));
        }
        inv
    }

    /// The call as one `EVALSHA` (`source` false) or `EVAL` command, for a
    /// store that sends scripts itself (the cluster store).
    #[cfg_attr(not(feature = "redis-cluster"), allow(dead_code))]
    pub(super) fn cmd(&self, source: bool, retry: bool) -> Cmd {
        let mut cmd = if source {
            let mut c = redis::cmd("EVAL");
            c.arg(&self.script.source);
            c
        } else {
            let mut c = redis::cmd("EVALSHA");
            c.arg(self.script.script.get_hash());
            c
        };
        cmd.arg(self.keys.len()).arg(&self.keys);
        for (i, a) in self.args.iter().enumerate() {
            cmd.arg(self.arg(i, a, retry));
        }
        cmd
    }

    fn arg<'s>(&self, i: usize, a: &'s [u8], retry: bool) -> &'s [u8] {
        if Some(i) == self.retry_arg {
            if retry { b"1" } else { b"0" }
        } else {
            a
        }
    }
}

/// What a call does to Redis, which decides what a failure after its
/// request left means (see Faults on [`RedisStore`](super::RedisStore)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Access {
    /// Reads, or removes what no reader can tell from its absence (a stale
    /// member of a user index): a failure is `Unavailable`.
    Read,
    /// Changes records: a failure after the request left is
    /// `OutcomeUnknown`.
    Write,
}

/// Wraps a client error as the store being unavailable.
pub(super) fn unavailable(e: RedisError) -> StoreError {
    StoreError::Unavailable(Box::new(e))
}

/// Whether a command that failed may have run on the server. An error
/// reply from Redis means it did not (the write scripts check before they
/// write), and neither did one the client refused before sending; any
/// other failure (I/O, a timeout, a reply that did not parse) came after
/// the request may have left.
pub(super) fn may_have_run(e: &RedisError) -> bool {
    !matches!(
        e.kind(),
        ErrorKind::Server(_)
            | ErrorKind::Extension
            | ErrorKind::Client
            | ErrorKind::InvalidClientConfig
            | ErrorKind::AuthenticationFailed
    )
}

/// What the first failed attempt of a call leaves: `Ok` with the error to
/// retry once, on a fresh connection, or the final error. Shared by both
/// stores, so their faults mean the same.
pub(super) fn after_first_failure(
    access: Access,
    first: RedisError,
) -> Result<RedisError, StoreError> {
    if !may_have_run(&first) {
        return Err(unavailable(first));
    }
    // Not after a timeout: the command may still be queued on a stalled
    // server, and the caller must hear at once that Redis is slow, not
    // wait for a second timeout.
    if first.is_timeout() || !first.is_connection_dropped() {
        return Err(lost(access, first));
    }
    Ok(first)
}

/// The error when the retry failed too.
pub(super) fn after_failed_retry(access: Access, first: RedisError, e: RedisError) -> StoreError {
    match access {
        Access::Read => unavailable(e),
        // Even an error reply to the retry settles nothing: the first
        // attempt may still be queued behind it (a proxy between us and
        // Redis).
        Access::Write => lost(access, first),
    }
}

fn lost(access: Access, e: RedisError) -> StoreError {
    match access {
        Access::Read => unavailable(e),
        Access::Write => StoreError::OutcomeUnknown(Box::new(e)),
    }
}

/// A stored value the scripts cannot read.
pub(super) fn corrupt(key: &StoreKey, why: DecodeError) -> StoreError {
    StoreError::Corrupt {
        key: key.fingerprint(),
        source: Box::new(why),
    }
}

/// The JSON written for `record` under `key`. If serializing ever failed,
/// the write is refused rather than storing a placeholder.
fn encode_for(key: &StoreKey, record: &Record) -> Result<String, StoreError> {
    encode(record).map_err(|e| unencodable(key, e))
}

/// [`encode_for`], with the mark of a `replace` (see `LUA_REPLACE`) last.
fn encode_marked(key: &StoreKey, record: &Record, mark: u64) -> Result<String, StoreError> {
    serde_json::to_string(&super::wire::RecordOut::marked(record, mark))
        .map_err(|e| unencodable(key, e))
}

fn unencodable(key: &StoreKey, e: serde_json::Error) -> StoreError {
    StoreError::Corrupt {
        key: key.fingerprint(),
        source: Box::new(e),
    }
}

/// The record in a stored value under `key`.
pub(super) fn decode_for(key: &StoreKey, value: &[u8]) -> Result<Record, StoreError> {
    decode(value).map_err(|e| corrupt(key, e))
}

/// Escapes the glob characters of SCAN's MATCH so a prefix is matched
/// literally.
pub(super) fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Hex SHA-256 of a user name: fixed length, no bytes from the name.
pub(super) fn user_hash(user: &str) -> String {
    StoreKey::from_bytes(Sha256::digest(user.as_bytes()).into()).to_hex()
}

/// The kinds of key under the prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum KeyKind {
    /// A session record.
    Session,
    /// A user's index.
    User,
    /// A write's receipt.
    Receipt,
}

/// A member of a user index that no longer belongs there: its name, its
/// store key if it is one, and the value read for it ('' for missing).
pub(super) type Stale = (String, Option<StoreKey>, Vec<u8>);

impl Core {
    pub(super) fn new() -> Core {
        Core {
            prefix: DEFAULT_PREFIX.to_owned(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            io_timeout: DEFAULT_IO_TIMEOUT,
            clock: Arc::new(SystemClock),
            index_in_scripts: true,
            scripts: Scripts::new(),
        }
    }

    /// A core whose write scripts leave the user index to the caller (the
    /// cluster store), and which has no `rotate_call`.
    #[cfg_attr(not(feature = "redis-cluster"), allow(dead_code))]
    pub(super) fn without_index_in_scripts() -> Core {
        Core {
            index_in_scripts: false,
            ..Core::new()
        }
    }

    /// Sets the prefix, refusing one with a brace: it would move the hash
    /// tag out of the key's hex (see [`Core::key`]).
    pub(super) fn set_prefix(&mut self, prefix: String) -> Result<(), StoreError> {
        if prefix.contains(['{', '}']) {
            return Err(unavailable(RedisError::from((
                ErrorKind::InvalidClientConfig,
                "a key prefix must not contain '{' or '}'",
            ))));
        }
        self.prefix = prefix;
        Ok(())
    }

    /// A zero duration means the default (a zero timeout would make the
    /// socket calls fail outright).
    pub(super) fn set_connect_timeout(&mut self, timeout: Duration) {
        self.connect_timeout = if timeout.is_zero() {
            DEFAULT_CONNECT_TIMEOUT
        } else {
            timeout
        };
    }

    pub(super) fn set_io_timeout(&mut self, timeout: Duration) {
        self.io_timeout = if timeout.is_zero() {
            DEFAULT_IO_TIMEOUT
        } else {
            timeout
        };
    }

    // ---- Key names: every name the stores use is made here. ----

    /// The name of a key: the prefix, the kind, and the hex that names it
    /// in braces, `{prefix}session:{<64 hex>}`. The braces are a Redis
    /// Cluster hash tag: a key's slot is the hash of that hex alone, so a
    /// record and the receipts of its writes (tagged with the record's
    /// hex) share a slot. One Redis ignores them. The prefix holds no
    /// brace ([`Core::set_prefix`]), so the first `{` is always the tag's.
    pub(super) fn key(&self, kind: KeyKind, hex: &str) -> String {
        let kind = self.kind_prefix(kind);
        let mut name = String::with_capacity(self.prefix.len() + kind.len() + hex.len() + 2);
        name.push_str(&self.prefix);
        name.push_str(kind);
        name.push('{');
        name.push_str(hex);
        name.push('}');
        name
    }

    /// What follows the prefix in every key of `kind`, before its hex.
    pub(super) fn kind_prefix(&self, kind: KeyKind) -> &'static str {
        match kind {
            KeyKind::Session => "session:",
            KeyKind::User => "user:",
            KeyKind::Receipt => "op:",
        }
    }

    pub(super) fn record_key(&self, key: &StoreKey) -> String {
        self.key(KeyKind::Session, &key.to_hex())
    }

    pub(super) fn user_key(&self, user: &str) -> String {
        self.key(KeyKind::User, &user_hash(user))
    }

    /// A fresh receipt key for one write to the record under `record`
    /// (see Faults on [`RedisStore`](super::RedisStore)),
    /// `{prefix}op:{<record hex>}:<32 hex>`, in that record's slot: 128
    /// random bits, so no other write, here or in another process, ever
    /// finds it.
    pub(super) fn receipt(&self, record: &StoreKey) -> String {
        let mut id = [0u8; 16];
        rand::rng().fill_bytes(&mut id);
        let mut name = self.key(KeyKind::Receipt, &record.to_hex());
        name.reserve(1 + 2 * id.len());
        name.push(':');
        for b in id {
            // `write!` to a String cannot fail.
            let _ = write!(name, "{b:02x}");
        }
        name
    }

    /// How long a receipt lives, in milliseconds: long enough for the
    /// retry of its write, the longest the retry can take twice over plus
    /// a margin (within what Redis accepts). After that a late copy of the
    /// first attempt finds no receipt, and its own checks refuse it: the
    /// retry already moved the version, took the key, or removed it.
    pub(super) fn receipt_ttl(&self) -> u64 {
        let retry = self.connect_timeout.saturating_add(self.io_timeout);
        let retry_ms = u64::try_from(retry.as_millis()).unwrap_or(u64::MAX);
        RECEIPT_MARGIN_MS
            .saturating_add(retry_ms.saturating_mul(2))
            .min(MAX_TTL_MS)
    }

    pub(super) fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// The native time to live for a record that dies at `deadline`.
    pub(super) fn ttl(&self, deadline: Timestamp, now: Timestamp) -> u64 {
        deadline
            .as_unix_millis()
            .saturating_sub(now.as_unix_millis())
            .clamp(MIN_TTL_MS, MAX_TTL_MS)
    }

    /// The user index a record belongs in, and how long that index must
    /// live: until the later of the record's expiry and, for a live
    /// record, its absolute deadline, which no touch can pass.
    pub(super) fn index_entry(&self, record: &Record, now: Timestamp) -> Option<(String, u64)> {
        let RecordState::Live(live) = &record.state else {
            return None;
        };
        let user = live.user.as_deref()?;
        let until = record.expires_at.max(live.absolute_deadline);
        Some((self.user_key(user), self.ttl(until, now)))
    }

    /// [`Core::index_entry`] when the write scripts update the index.
    fn scripted_index_entry(&self, record: &Record, now: Timestamp) -> Option<(String, u64)> {
        if self.index_in_scripts {
            self.index_entry(record, now)
        } else {
            None
        }
    }

    // ---- The requests of each operation, and how their answers read. ----

    /// KEYS: index. ARGV: member, index ttl. Adds one member to one index
    /// on its own, raising the index's expiry: the cluster store's index
    /// step, since there an index lives in another slot than the record.
    #[cfg_attr(not(feature = "redis-cluster"), allow(dead_code))]
    pub(super) fn index_call(&self, set: &str, member: &str, set_ttl: u64) -> Call<'_> {
        Call {
            script: &self.scripts.index,
            keys: vec![set.to_owned()],
            args: bytes(vec![member.to_owned(), set_ttl.to_string()]),
            retry_arg: None,
        }
    }

    pub(super) fn get_cmd(&self, key: &StoreKey) -> Cmd {
        let mut cmd = redis::cmd("GET");
        cmd.arg(self.record_key(key));
        cmd
    }

    /// KEYS: record, index... ARGV: json, ttl, retry, (member, index
    /// ttl)... No receipt: an insert that finds its own bytes on retry was
    /// its own (see `LUA_INSERT`).
    pub(super) fn insert_call(
        &self,
        key: &StoreKey,
        record: &Record,
    ) -> Result<Call<'_>, StoreError> {
        let now = self.now();
        let mut keys = vec![self.record_key(key)];
        let mut args = vec![
            encode_for(key, record)?,
            self.ttl(record.expires_at, now).to_string(),
            String::new(),
        ];
        if let Some((set, set_ttl)) = self.scripted_index_entry(record, now) {
            keys.push(set);
            args.extend([key.to_hex(), set_ttl.to_string()]);
        }
        Ok(Call {
            script: &self.scripts.insert,
            keys,
            args: bytes(args),
            retry_arg: Some(2),
        })
    }

    /// KEYS: record, index? ARGV: expected, json, ttl, retry, mark, the
    /// version written, (member, index ttl, binding)? No receipt: the
    /// record carries a random mark that its retry looks for (see
    /// `LUA_REPLACE`).
    pub(super) fn replace_call(
        &self,
        key: &StoreKey,
        expected: u64,
        record: &Record,
    ) -> Result<Call<'_>, StoreError> {
        let now = self.now();
        let mark = rand::rng().next_u64();
        let json = encode_marked(key, record, mark)?;
        // The bytes the serializer writes last, which the retry looks for.
        let tail = format!(r#","w":{mark}}}"#);
        debug_assert!(json.ends_with(&tail));
        let mut keys = vec![self.record_key(key)];
        let mut args = vec![
            expected.to_string(),
            json,
            self.ttl(record.expires_at, now).to_string(),
            String::new(),
            tail,
            record.version.to_string(),
        ];
        if let Some((set, set_ttl)) = self.scripted_index_entry(record, now) {
            keys.push(set);
            args.extend([key.to_hex(), set_ttl.to_string()]);
            // The stored record already in this index, if its head shows
            // this binding: see "The per-user index" in the module docs.
            args.push(binding_marker(record).unwrap_or_default());
        }
        Ok(Call {
            script: &self.scripts.replace,
            keys,
            args: bytes(args),
            retry_arg: Some(3),
        })
    }

    /// No receipt: a touch only raises deadlines, so a retry that runs it
    /// again changes nothing more.
    pub(super) fn touch_call(
        &self,
        key: &StoreKey,
        last_seen: Timestamp,
        expires_at: Timestamp,
    ) -> Call<'_> {
        Call {
            script: &self.scripts.touch,
            keys: vec![self.record_key(key)],
            args: bytes(vec![
                last_seen.as_unix_millis().to_string(),
                expires_at.as_unix_millis().to_string(),
                self.ttl(expires_at, self.now()).to_string(),
            ]),
            retry_arg: None,
        }
    }

    pub(super) fn rotate_call(
        &self,
        old: &StoreKey,
        expected: u64,
        retired: &Record,
        new: &StoreKey,
        record: &Record,
    ) -> Result<Call<'_>, StoreError> {
        let now = self.now();
        // One Redis only: the two records are in different slots. The
        // receipt is in the old record's slot.
        debug_assert!(self.index_in_scripts);
        let mut keys = vec![
            self.receipt(old),
            self.record_key(old),
            self.record_key(new),
        ];
        let mut args = vec![
            self.receipt_ttl().to_string(),
            expected.to_string(),
            encode_for(old, retired)?,
            self.ttl(retired.expires_at, now).to_string(),
            encode_for(new, record)?,
            self.ttl(record.expires_at, now).to_string(),
        ];
        let sets = [
            self.index_entry(retired, now).map(|e| (e, old.to_hex())),
            self.index_entry(record, now).map(|e| (e, new.to_hex())),
        ];
        for ((set, set_ttl), member) in sets.into_iter().flatten() {
            keys.push(set);
            args.extend([member, set_ttl.to_string()]);
        }
        Ok(Call {
            script: &self.scripts.rotate,
            keys,
            args: bytes(args),
            retry_arg: None,
        })
    }

    pub(super) fn remove_call(&self, key: &StoreKey) -> Call<'_> {
        Call {
            script: &self.scripts.remove,
            keys: vec![self.receipt(key), self.record_key(key)],
            args: bytes(vec![self.receipt_ttl().to_string()]),
            retry_arg: None,
        }
    }

    pub(super) fn purge_call(&self, keys: Vec<String>, now: Timestamp) -> Call<'_> {
        Call {
            script: &self.scripts.purge,
            keys,
            args: bytes(vec![now.as_unix_millis().to_string()]),
            retry_arg: None,
        }
    }

    // ---- User indexes. ----

    /// The command listing the members of an index.
    pub(super) fn members_cmd(&self, set: &str) -> Cmd {
        let mut cmd = redis::cmd("HKEYS");
        cmd.arg(set);
        cmd
    }

    /// The record keys of the members that are store keys, in batches of
    /// at most [`BATCH`], each an `MGET`.
    pub(super) fn values_cmds(&self, members: &[String]) -> Vec<Cmd> {
        let keys: Vec<String> = members
            .iter()
            .filter_map(|m| StoreKey::from_hex(m))
            .map(|k| self.record_key(&k))
            .collect();
        keys.chunks(BATCH)
            .map(|chunk| {
                let mut cmd = redis::cmd("MGET");
                cmd.arg(chunk);
                cmd
            })
            .collect()
    }

    /// Sorts an index's members into the live records `keep` accepts and
    /// the stale members. `values` holds one value per member that is a
    /// store key, in order. Corrupt records are neither: left to expire.
    pub(super) fn sort_index(
        &self,
        members: Vec<String>,
        values: Vec<Option<Vec<u8>>>,
        keep: impl Fn(&Record) -> bool,
    ) -> (Vec<(StoreKey, Record)>, Vec<Stale>) {
        let mut out = Vec::new();
        let mut stale = Vec::new();
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
        (out, stale)
    }

    /// The requests that remove `stale` members from `set`: a
    /// compare-and-remove script for store keys (removed only if the
    /// record is still what was read, so a concurrent write that binds the
    /// key to the user again is never undone; a retry repeats it
    /// harmlessly), and a plain `HDEL` for members that are not keys.
    pub(super) fn unindex_requests(
        &self,
        set: &str,
        stale: &[Stale],
    ) -> (Option<Call<'_>>, Option<Cmd>) {
        let mut keys = vec![set.to_owned()];
        let mut args = Vec::new();
        let mut odd = Vec::new();
        for (member, key, seen) in stale {
            match key {
                Some(k) => {
                    keys.push(self.record_key(k));
                    args.push(member.clone().into_bytes());
                    args.push(seen.clone());
                }
                None => odd.push(member.clone()),
            }
        }
        let call = (keys.len() > 1).then_some(Call {
            script: &self.scripts.unindex,
            keys,
            args,
            retry_arg: None,
        });
        let hdel = (!odd.is_empty()).then(|| {
            let mut cmd = redis::cmd("HDEL");
            cmd.arg(set).arg(&odd);
            cmd
        });
        (call, hdel)
    }

    /// The user hash that names the index `set`, if it is one.
    pub(super) fn index_owner<'s>(&self, set: &'s str) -> Option<&'s str> {
        set.strip_prefix(self.prefix.as_str())?
            .strip_prefix(self.kind_prefix(KeyKind::User))?
            .strip_prefix('{')?
            .strip_suffix('}')
    }

    /// The SCAN pattern for every key of `kind`.
    pub(super) fn scan_pattern(&self, kind: KeyKind) -> String {
        format!("{}{}*", glob_escape(&self.prefix), self.kind_prefix(kind))
    }
}

fn bytes(args: Vec<String>) -> Vec<Vec<u8>> {
    args.into_iter().map(String::into_bytes).collect()
}

/// The SCAN step from `cursor` over `pattern`.
pub(super) fn scan_cmd(pattern: &str, cursor: u64) -> Cmd {
    let mut cmd = redis::cmd("SCAN");
    cmd.arg(cursor)
        .arg("MATCH")
        .arg(pattern)
        .arg("COUNT")
        .arg(BATCH);
    cmd
}

/// The bytes a stored live record has right after `"a":…,` when it
/// has the same absolute deadline and user as `record`, or `None` if a
/// save of `record` must always index it. The replace script compares
/// them with the stored record's head: a record that matches is already
/// in this user's index, which lives at least until that deadline, and
/// `record` expires no later (checked here), so the index needs no write.
fn binding_marker(record: &Record) -> Option<String> {
    let RecordState::Live(live) = &record.state else {
        return None;
    };
    let user = live.user.as_deref()?;
    if record.expires_at > live.absolute_deadline {
        return None;
    }
    // serde_json writes a string the same way every time, so these are
    // exactly the bytes `encode` wrote for the stored record if it has
    // this binding.
    let user_json = serde_json::to_string(user).ok()?;
    Some(format!(
        r#""d":{},"u":{user_json},"#,
        live.absolute_deadline.as_unix_millis()
    ))
}

/// `remove`: whether a record was deleted.
pub(super) fn remove_answer(n: i64) -> bool {
    n > 0
}

/// Whether `purge_expired` keeps a member of the index of the user whose
/// hash is `hash`: its record is live and bound to that user. No time
/// check: a live record past its deadline is deleted by Redis or by the
/// purge itself, and its member goes on the next read; dropping the
/// member while the record stands could hide it from `sessions_of` and
/// `terminate_all` for good, since a save that keeps the binding does not
/// add it again.
pub(super) fn keeps_member(record: &Record, hash: &str) -> bool {
    record.user().is_some_and(|u| user_hash(u) == hash)
}

/// `insert`: 1 inserted, 0 the key exists.
pub(super) fn insert_answer(code: i64) -> Result<(), StoreError> {
    match code {
        1 => Ok(()),
        _ => Err(StoreError::Exists),
    }
}

/// `replace`: 1 done, 0 missing, -1 conflict, -2 unreadable, -4 a retry
/// that found a later write and cannot tell whether its first attempt
/// landed before it.
pub(super) fn replace_answer(key: &StoreKey, code: i64) -> Result<(), StoreError> {
    match code {
        1 => Ok(()),
        0 => Err(StoreError::NotFound),
        -1 => Err(StoreError::Conflict),
        -4 => Err(StoreError::OutcomeUnknown(
            "the reply was lost, and before the retry another write replaced the record: \
             whether this one landed first cannot be told"
                .into(),
        )),
        _ => Err(corrupt(key, DecodeError::Head)),
    }
}

/// `touch`: 1 live, 0 missing or not live, -2 unreadable.
pub(super) fn touch_answer(key: &StoreKey, code: i64) -> Result<bool, StoreError> {
    match code {
        1 => Ok(true),
        0 => Ok(false),
        _ => Err(corrupt(key, DecodeError::Head)),
    }
}

/// `rotate`: 1 done, 0 old missing, -1 conflict, -3 new exists, -2 old
/// unreadable.
pub(super) fn rotate_answer(old: &StoreKey, code: i64) -> Result<(), StoreError> {
    match code {
        1 => Ok(()),
        0 => Err(StoreError::NotFound),
        -1 => Err(StoreError::Conflict),
        -3 => Err(StoreError::Exists),
        _ => Err(corrupt(old, DecodeError::Head)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::SessionData;
    use crate::store::LiveSession;

    #[test]
    fn the_binding_marker_is_the_bytes_encode_writes_after_auth_at() {
        let t = Timestamp::from_unix_millis(1_800_000_000_000);
        let record = Record {
            version: 2,
            expires_at: t,
            state: RecordState::Live(LiveSession {
                created_at: t,
                last_seen: t,
                auth_at: None,
                absolute_deadline: Timestamp::from_unix_millis(1_800_003_600_000),
                user: Some("al\"ice\n☃".into()),
                device: None,
                data: SessionData::default(),
            }),
        };
        let json = encode(&record).unwrap();
        let marker = binding_marker(&record).unwrap();
        let after_auth = json.split_once(r#""a":null,"#).unwrap().1;
        assert!(after_auth.starts_with(&marker), "{json} / {marker}");
        // Anonymous, or expiring after its absolute deadline: always index.
        let mut anon = record.clone();
        if let RecordState::Live(l) = &mut anon.state {
            l.user = None;
        }
        assert_eq!(binding_marker(&anon), None);
        let mut late = record;
        late.expires_at = Timestamp::from_unix_millis(1_800_003_600_001);
        assert_eq!(binding_marker(&late), None);
    }

    /// A live record of alice's at `version`, every time the same instant.
    fn alice(version: u64) -> Record {
        let t = Timestamp::from_unix_millis(1_800_000_000_000);
        Record {
            version,
            expires_at: t,
            state: RecordState::Live(LiveSession {
                created_at: t,
                last_seen: t,
                auth_at: None,
                absolute_deadline: t,
                user: Some("alice".into()),
                device: None,
                data: SessionData::default(),
            }),
        }
    }

    #[test]
    fn a_replace_writes_its_mark_last_and_reads_back_the_same_record() {
        let record = alice(7);
        let key = crate::id::SessionId::generate().store_key();
        let core = Core::new();
        let (a, b) = (
            core.replace_call(&key, 6, &record).unwrap(),
            core.replace_call(&key, 6, &record).unwrap(),
        );
        let (json, mark) = (&a.args[1], &a.args[4]);
        assert!(mark.starts_with(br#","w":"#) && json.ends_with(mark));
        assert_ne!(mark, &b.args[4], "each write has a mark of its own");
        assert_eq!(&a.args[5], b"7");
        // The mark changes nothing a reader sees: the JSON is the plain
        // encoding with the mark before its closing brace.
        assert_eq!(decode(json).unwrap(), record);
        let plain = encode(&record).unwrap();
        assert_eq!(
            &json[..plain.len() - 1],
            &plain.as_bytes()[..plain.len() - 1]
        );
    }

    #[test]
    fn without_the_index_in_scripts_every_write_touches_one_slot() {
        let t = Timestamp::from_unix_millis(1_800_000_000_000);
        let record = alice(1);
        let key = crate::id::SessionId::generate().store_key();
        let tag = format!("{{{}}}", key.to_hex());
        let (one, cluster) = (Core::new(), Core::without_index_in_scripts());
        // One Redis: the index rides along; a cluster: the record (and
        // its receipt) only.
        assert_eq!(one.insert_call(&key, &record).unwrap().keys.len(), 2);
        let calls = [
            cluster.insert_call(&key, &record).unwrap(),
            cluster.replace_call(&key, 1, &record).unwrap(),
            cluster.remove_call(&key),
            cluster.touch_call(&key, t, t),
        ];
        for call in &calls {
            assert!(
                call.keys.iter().all(|k| k.contains(&tag)),
                "{:?}",
                call.keys
            );
        }
        assert_eq!(calls[0].keys.len(), 1);
        // EVALSHA sha numkeys keys... args..., the retry flag in place.
        let args = calls[0].cmd(false, true).args_iter().count();
        assert_eq!(args, 3 + calls[0].keys.len() + calls[0].args.len());
        let index = cluster.index_call(&cluster.user_key("alice"), &key.to_hex(), 5);
        assert_eq!(index.keys, [cluster.user_key("alice")]);
    }

    #[test]
    fn only_the_retry_of_an_insert_says_so() {
        let core = Core::new();
        let key = crate::id::SessionId::generate().store_key();
        let record = Record {
            version: 1,
            expires_at: Timestamp::from_unix_millis(5),
            state: RecordState::Ended {
                reason: crate::store::EndReason::Logout,
                at: Timestamp::from_unix_millis(4),
            },
        };
        let call = core.insert_call(&key, &record).unwrap();
        assert_eq!(call.retry_arg, Some(2));
        assert_eq!(call.args.len(), 3);
    }
}
