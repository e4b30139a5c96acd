//! RedisStore when a write's reply is lost: Redis ran the command (or never
//! got it), and the connection dropped or stalled before the answer came
//! back. A fault-injecting proxy on loopback sits between the store and a
//! real `redis-server` and breaks exactly one chosen request, so every case
//! is deterministic: no sleeps, no timing luck.
//!
//! What must hold (see "Faults" on `RedisStore`): a retried write is
//! applied at most once and reports what happened; a write the store cannot
//! settle is `StoreError::OutcomeUnknown`, never `Unavailable` ("nothing
//! changed"), and leaves the record in exactly one of its two states; and
//! the manager never turns an applied write into a conflict, a second
//! application, or a lost rotation.
//!
//! Like `redis_store.rs`, the tests need a server and are `#[ignore]`d
//! unless asked for:
//!
//! ```text
//! LATCHKEY_REDIS_URL=redis://127.0.0.1:6379/ cargo test --features redis --test redis_lost_reply -- --include-ignored
//! ```
#![cfg(feature = "redis")]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

use latchkey::store::redis::decode;
use latchkey::store::{EndReason, LiveSession, Record, RecordState};
use latchkey::{
    Clock, Error, ManualClock, NewSession, RedisStore, SessionData, SessionId, SessionManager,
    Store, StoreError, StoreKey, StoreManager, Timestamp,
};

const URL_VAR: &str = "LATCHKEY_REDIS_URL";

fn redis_url() -> String {
    match std::env::var(URL_VAR) {
        Ok(url) if !url.is_empty() => url,
        _ => {
            panic!("{URL_VAR} is unset: the Redis tests need a Redis server (see this file's docs)")
        }
    }
}

/// What the proxy does to the one request it is armed for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    /// Forwards the request, lets Redis run it, and closes the client's
    /// connection instead of passing the reply on.
    LoseReply,
    /// Closes the client's connection instead of forwarding the request:
    /// Redis never sees it.
    LoseRequest,
    /// Forwards the request and swallows the reply, keeping the connection
    /// open: the client sees a stall until its I/O timeout.
    HoldReply,
}

/// What the proxy does after the fault fired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Then {
    /// Serves every other request, so the store's retry gets through.
    Serve,
    /// Closes every new connection at once, as if Redis had gone, until
    /// [`Proxy::restore`]: the store's retry cannot get an answer.
    GoDown,
}

#[derive(Default)]
struct ProxyState {
    /// The armed fault and the bytes of the request it is for.
    armed: Option<(Fault, Vec<u8>, Then)>,
    /// How many faults fired (each armed fault fires once).
    fired: usize,
    down: bool,
    /// Run when the armed fault fires, before the client's connection is
    /// closed: another client's write that lands before the store's retry.
    hook: Option<Box<dyn FnOnce() + Send>>,
}

/// A TCP proxy on loopback in front of Redis that breaks one chosen
/// request. The client is the store's synchronous connection: one request,
/// then its reply, so the first bytes from Redis after a request are its
/// reply.
struct Proxy {
    addr: SocketAddr,
    state: Arc<(Mutex<ProxyState>, Condvar)>,
    closed: Arc<AtomicBool>,
}

impl Proxy {
    fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let state: Arc<(Mutex<ProxyState>, Condvar)> = Arc::default();
        let closed = Arc::new(AtomicBool::new(false));
        let (st, cl) = (state.clone(), closed.clone());
        thread::spawn(move || {
            for client in listener.incoming() {
                if cl.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                if st.0.lock().unwrap().down {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let server = TcpStream::connect(upstream).unwrap();
                Proxy::pump(client, server, st.clone());
            }
        });
        Proxy {
            addr,
            state,
            closed,
        }
    }

    /// Two threads per connection, one each way. `doomed` is set by the
    /// request pump before it forwards the armed request, so the reply pump
    /// always knows in time what to do with the reply.
    fn pump(client: TcpStream, server: TcpStream, state: Arc<(Mutex<ProxyState>, Condvar)>) {
        let doomed: Arc<Mutex<Option<Fault>>> = Arc::default();
        let (c_in, mut s_out) = (client.try_clone().unwrap(), server.try_clone().unwrap());
        let (mut s_in, mut c_out) = (server, client);
        let (req_doomed, req_state) = (doomed.clone(), state.clone());
        let c_for_req = c_out.try_clone().unwrap();
        thread::spawn(move || {
            let mut c_in = c_in;
            let mut buf = vec![0u8; 64 * 1024];
            // The end of the previous read, so a pattern split across two
            // reads is still found.
            let mut tail: Vec<u8> = Vec::new();
            loop {
                let n = match c_in.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let chunk = &buf[..n];
                let mut window = std::mem::take(&mut tail);
                window.extend_from_slice(chunk);
                let fault = {
                    let mut st = req_state.0.lock().unwrap();
                    let hit = st.armed.as_ref().is_some_and(|(_, pattern, _)| {
                        window
                            .windows(pattern.len())
                            .any(|w| w == pattern.as_slice())
                    });
                    if hit {
                        let (fault, pattern, then) = st.armed.take().unwrap();
                        st.down = then == Then::GoDown;
                        drop(pattern);
                        Some(fault)
                    } else {
                        None
                    }
                };
                let keep = window.len().min(256);
                tail = window[window.len() - keep..].to_vec();
                match fault {
                    Some(Fault::LoseRequest) => {
                        let hook = req_state.0.lock().unwrap().hook.take();
                        if let Some(hook) = hook {
                            hook();
                        }
                        let _ = c_for_req.shutdown(Shutdown::Both);
                        let _ = s_out.shutdown(Shutdown::Both);
                        let mut st = req_state.0.lock().unwrap();
                        st.fired += 1;
                        req_state.1.notify_all();
                        return;
                    }
                    Some(fault) => *req_doomed.lock().unwrap() = Some(fault),
                    None => {}
                }
                if s_out.write_all(chunk).is_err() {
                    break;
                }
            }
            let _ = s_out.shutdown(Shutdown::Both);
        });
        thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = match s_in.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let fault = *doomed.lock().unwrap();
                match fault {
                    Some(Fault::LoseReply) => {
                        // Redis has run the command: its reply is here.
                        let hook = state.0.lock().unwrap().hook.take();
                        if let Some(hook) = hook {
                            hook();
                        }
                        let _ = c_out.shutdown(Shutdown::Both);
                        let _ = s_in.shutdown(Shutdown::Both);
                        let mut st = state.0.lock().unwrap();
                        st.fired += 1;
                        state.1.notify_all();
                        return;
                    }
                    Some(Fault::HoldReply) => {
                        // Swallowed; the connection stays open until the
                        // client gives up on it.
                        *doomed.lock().unwrap() = None;
                        let mut st = state.0.lock().unwrap();
                        st.fired += 1;
                        state.1.notify_all();
                        continue;
                    }
                    _ => {}
                }
                if c_out.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            let _ = c_out.shutdown(Shutdown::Both);
        });
    }

    /// Breaks the next request whose bytes contain `pattern`.
    fn arm(&self, fault: Fault, pattern: &[u8], then: Then) {
        let mut st = self.state.0.lock().unwrap();
        st.armed = Some((fault, pattern.to_vec(), then));
    }

    /// Like [`Proxy::arm`] with [`Then::Serve`], and runs `hook` when the
    /// fault fires, before the client hears of it.
    fn arm_with(&self, fault: Fault, pattern: &[u8], hook: impl FnOnce() + Send + 'static) {
        let mut st = self.state.0.lock().unwrap();
        st.armed = Some((fault, pattern.to_vec(), Then::Serve));
        st.hook = Some(Box::new(hook));
    }

    /// Waits until `n` faults have fired (a bounded wait: the fault fires
    /// as the store's call goes through the proxy).
    fn wait_fired(&self, n: usize) {
        let (lock, cv) = &*self.state;
        let st = lock.lock().unwrap();
        let (st, timeout) = cv
            .wait_timeout_while(st, Duration::from_secs(10), |st| st.fired < n)
            .unwrap();
        assert!(!timeout.timed_out(), "fired {} of {n} faults", st.fired);
    }

    fn fired(&self) -> usize {
        self.state.0.lock().unwrap().fired
    }

    /// Serves new connections again after [`Then::GoDown`].
    fn restore(&self) {
        self.state.0.lock().unwrap().down = false;
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees `closed`.
        let _ = TcpStream::connect(self.addr);
    }
}

/// A proxy in front of the test server, and a store under a fresh prefix
/// reaching Redis directly (to set up, and to look at the truth).
struct Rig {
    proxy: Proxy,
    direct: RedisStore,
    /// The server's URL with the proxy's address in place of its own.
    proxied_url: String,
    clock: ManualClock,
}

impl Rig {
    fn new() -> Rig {
        let url = redis_url();
        let info = redis::Client::open(url.as_str())
            .unwrap()
            .get_connection_info()
            .clone();
        let upstream = match info.addr() {
            redis::ConnectionAddr::Tcp(host, port) => format!("{host}:{port}"),
            other => panic!("the proxy needs a TCP Redis URL, not {other:?}"),
        };
        let proxy = Proxy::start(upstream.parse().unwrap());
        let proxied_url = url.replacen(&upstream, &proxy.addr.to_string(), 1);
        assert_ne!(
            proxied_url, url,
            "{URL_VAR} must name the server as host:port"
        );
        let clock = ManualClock::starting_now();
        let direct = RedisStore::open(&url)
            .unwrap()
            .with_prefix(format!(
                "latchkey-test:{}:",
                SessionId::generate().fingerprint()
            ))
            .with_clock(Arc::new(clock.clone()));
        warm_up(&direct);
        Rig {
            proxy,
            direct,
            proxied_url,
            clock,
        }
    }

    /// A store with the same prefix and clock, through the proxy.
    fn store(&self) -> RedisStore {
        RedisStore::open(&self.proxied_url)
            .unwrap()
            .with_prefix(self.direct.prefix())
            .with_clock(Arc::new(self.clock.clone()))
    }

    /// Another store like [`Rig::direct`]: a second client, for a hook.
    fn direct_clone(&self) -> RedisStore {
        RedisStore::open(&redis_url())
            .unwrap()
            .with_prefix(self.direct.prefix())
            .with_clock(Arc::new(self.clock.clone()))
    }

    /// A manager over [`Rig::store`].
    fn manager(&self) -> StoreManager<RedisStore> {
        StoreManager::new(self.store()).with_clock(Arc::new(self.clock.clone()))
    }
}

/// Loads every script into Redis's script cache (it is server-wide), so
/// an armed request is the write itself, never a `NOSCRIPT` round first.
fn warm_up(store: &RedisStore) {
    let now = Timestamp::from_unix_millis(1_800_000_000_000);
    let (a, b) = (key(), key());
    let mut warm = live(1, now, "warm");
    if let RecordState::Live(s) = &mut warm.state {
        s.user = None;
    }
    store.insert(&a, &warm).unwrap();
    warm.version = 2;
    store.replace(&a, 1, &warm).unwrap();
    store.touch(&a, now, now).unwrap();
    store.rotate(&a, 2, &ended(3, now), &b, &warm).unwrap();
    store.remove(&a).unwrap();
    store.remove(&b).unwrap();
    store.sessions_of("alice").unwrap();
    store.purge_expired(now).unwrap();
}

fn key() -> StoreKey {
    SessionId::generate().store_key()
}

/// A live record whose data carries `marker`, so its bytes pick out the
/// request that writes it.
fn live(version: u64, now: Timestamp, marker: &str) -> Record {
    let mut data = serde_json::Map::new();
    data.insert("marker".into(), serde_json::json!(marker));
    Record {
        version,
        expires_at: now.saturating_add(Duration::from_secs(600)),
        state: RecordState::Live(LiveSession {
            created_at: now,
            last_seen: now,
            auth_at: None,
            absolute_deadline: now.saturating_add(Duration::from_secs(3600)),
            user: Some("alice".into()),
            device: None,
            data: SessionData::from_map(data),
        }),
    }
}

fn ended(version: u64, now: Timestamp) -> Record {
    Record {
        version,
        expires_at: now.saturating_add(Duration::from_secs(600)),
        state: RecordState::Ended {
            reason: EndReason::Logout,
            at: now,
        },
    }
}

/// What Redis holds for `key`, read directly and decoded whole.
fn stored(rig: &Rig, key: &StoreKey) -> Option<Record> {
    let mut con = redis::Client::open(redis_url().as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let raw: Option<Vec<u8>> = redis::cmd("GET")
        .arg(rig.direct.record_key(key))
        .query(&mut con)
        .unwrap();
    raw.map(|raw| decode(&raw).unwrap())
}

/// What [`stored`] reads after the store wrote `record`.
fn written(record: &Record) -> Option<Record> {
    Some(record.clone())
}

fn is_outcome_unknown(e: &StoreError) -> bool {
    matches!(e, StoreError::OutcomeUnknown(_))
}

// ---- The store: a lost reply is retried and reported exactly. ----

#[test]
#[ignore = "needs a Redis server: set LATCHKEY_REDIS_URL and pass --include-ignored (.ci/run does)"]
fn a_replace_whose_reply_is_lost_is_retried_and_reported_applied() {
    let rig = Rig::new();
    let store = rig.store();
    let (k, now) = (key(), rig.clock.now());
    rig.direct.insert(&k, &live(1, now, "before")).unwrap();
    // A pooled connection, as in production: the lost reply is on it.
    assert!(store.get(&k).unwrap().is_some());
    rig.proxy.arm(Fault::LoseReply, b"\"after\"", Then::Serve);
    store.replace(&k, 1, &live(2, now, "after")).unwrap();
    assert_eq!(rig.proxy.fired(), 1);
    assert_eq!(stored(&rig, &k), written(&live(2, now, "after")));
}

#[test]
#[ignore = "needs a Redis server: set LATCHKEY_REDIS_URL and pass --include-ignored (.ci/run does)"]
fn a_rotation_whose_reply_is_lost_is_retried_and_reported_applied() {
    let rig = Rig::new();
    let store = rig.store();
    let (old, new, now) = (key(), key(), rig.clock.now());
    rig.direct.insert(&old, &live(1, now, "before")).unwrap();
    rig.proxy
        .arm(Fault::LoseReply, b"\"successor\"", Then::Serve);
    let retired = ended(2, now);
    store
        .rotate(&old, 1, &retired, &new, &live(1, now, "successor"))
        .unwrap();
    assert_eq!(rig.proxy.fired(), 1);
    assert_eq!(stored(&rig, &old), written(&retired));
    assert_eq!(stored(&rig, &new), written(&live(1, now, "successor")));
}

#[test]
#[ignore = "needs a Redis server: set LATCHKEY_REDIS_URL and pass --include-ignored (.ci/run does)"]
fn an_insert_whose_reply_is_lost_is_retried_and_reported_inserted() {
    let rig = Rig::new();
    let store = rig.store();
    let (k, now) = (key(), rig.clock.now());
    rig.proxy.arm(Fault::LoseReply, b"\"fresh\"", Then::Serve);
    store.insert(&k, &live(1, now, "fresh")).unwrap();
    assert_eq!(rig.proxy.fired(), 1);
    assert_eq!(stored(&rig, &k), written(&live(1, now, "fresh")));
    assert_eq!(rig.direct.sessions_of("alice").unwrap().len(), 1);
}

#[test]
#[ignore = "needs a Redis server: set LATCHKEY_REDIS_URL and pass --include-ignored (.ci/run does)"]
fn a_remove_whose_reply_is_lost_still_says_it_removed_the_record() {
    let rig = Rig::new();
    let store = rig.store();
    let k = key();
    rig.direct
        .insert(&k, &live(1, rig.clock.now(), "doomed"))
        .unwrap();
    rig.proxy
        .arm(Fault::LoseReply, k.to_hex().as_bytes(), Then::Serve);
    assert!(store.remove(&k).unwrap());
    assert_eq!(rig.proxy.fired(), 1);
    assert_eq!(stored(&rig, &k), None);
}

#[test]
#[ignore = "needs a Redis server: set LATCHKEY_REDIS_URL and pass --include-ignored (.ci/run does)"]
fn a_request_lost_before_redis_saw_it_is_retried_and_applied_once() {
    let rig = Rig::new();
    let store = rig.store();
    let (k, now) = (key(), rig.clock.now());
    rig.direct.insert(&k, &live(1, now, "before")).unwrap();
    rig.proxy.arm(Fault::LoseRequest, b"\"after\"", Then::Serve);
    store.replace(&k, 1, &live(2, now, "after")).unwrap();
    assert_eq!(rig.proxy.fired(), 1);
    assert_eq!(stored(&rig, &k), written(&live(2, now, "after")));
}

#[test]
#[ignore = "needs a Redis server: set LATCHKEY_REDIS_URL and pass --include-ignored (.ci/run does)"]
fn a_replace_whose_reply_is_lost_and_then_touched_is_still_reported_applied() {
    let rig = Rig::new();
    let store = rig.store();
    let (k, now) = (key(), rig.clock.now());
    rig.direct.insert(&k, &live(1, now, "before")).unwrap();
    let other = rig.direct_clone();
    let later = now.saturating_add(Duration::from_secs(5));
    let until = later.saturating_add(Duration::from_secs(600));
    rig.proxy.arm_with(Fault::LoseReply, b"\"after\"", move || {
        assert!(other.touch(&k, later, until).unwrap());
    });
    store.replace(&k, 1, &live(2, now, "after")).unwrap();
    // The write and the touch are both there.
    let mut want = live(2, now, "after");
    want.expires_at = until;
    if let RecordState::Live(s) = &mut want.state {
        s.last_seen = later;
    }
    assert_eq!(stored(&rig, &k), Some(want));
}

#[test]
#[ignore = "needs a Redis server: set LATCHKEY_REDIS_URL and pass --include-ignored (.ci/run does)"]
fn a_replace_lost_before_redis_saw_it_and_beaten_by_another_write_is_a_conflict() {
    let rig = Rig::new();
    let store = rig.store();
    let (k, now) = (key(), rig.clock.now());
    rig.direct.insert(&k, &live(1, now, "before")).unwrap();
    let other = rig.direct_clone();
    rig.proxy
        .arm_with(Fault::LoseRequest, b"\"after\"", move || {
            other.replace(&k, 1, &live(2, now, "other")).unwrap();
        });
    // The retry finds version 2 written by another: the first attempt
    // never ran, so this write did not land. That is final.
    let e = store.replace(&k, 1, &live(2, now, "after")).unwrap_err();
    assert!(matches!(e, StoreError::Conflict), "{e:?}");
    assert_eq!(stored(&rig, &k), written(&live(2, now, "other")));
}

// ---- The store: what it cannot settle is OutcomeUnknown, never torn. ----

#[test]
#[ignore = "needs a Redis server: set LATCHKEY_REDIS_URL and pass --include-ignored (.ci/run does)"]
fn a_replace_whose_reply_is_lost_and_then_overwritten_is_outcome_unknown() {
    let rig = Rig::new();
    let store = rig.store();
    let (k, now) = (key(), rig.clock.now());
    rig.direct.insert(&k, &live(1, now, "before")).unwrap();
    let other = rig.direct_clone();
    rig.proxy.arm_with(Fault::LoseReply, b"\"after\"", move || {
        other.replace(&k, 2, &live(3, now, "other")).unwrap();
    });
    // The first attempt landed, then another write replaced it: the retry
    // sees only a later version, which it cannot tell from one written
    // instead of it.
    let e = store.replace(&k, 1, &live(2, now, "after")).unwrap_err();
    assert!(is_outcome_unknown(&e), "{e:?}");
    assert_eq!(stored(&rig, &k), written(&live(3, now, "other")));
}

#[test]
#[ignore = "needs a Redis server: set LATCHKEY_REDIS_URL and pass --include-ignored (.ci/run does)"]
fn a_lost_reply_that_cannot_be_retried_is_outcome_unknown_and_the_write_landed_whole() {
    let rig = Rig::new();
    let store = rig.store();
    let (old, new, now) = (key(), key(), rig.clock.now());
    rig.direct.insert(&old, &live(1, now, "before")).unwrap();
    rig.proxy
        .arm(Fault::LoseReply, b"\"successor\"", Then::GoDown);
    let retired = ended(2, now);
    let err = store
        .rotate(&old, 1, &retired, &new, &live(1, now, "successor"))
        .unwrap_err();
    assert!(is_outcome_unknown(&err), "{err:?}");
    assert!(Error::Store(err).is_backend_failure());
    // It ran: both keys as written, nothing half-done.
    assert_eq!(stored(&rig, &old), written(&retired));
    assert_eq!(stored(&rig, &new), written(&live(1, now, "successor")));
}

#[test]
#[ignore = "needs a Redis server: set LATCHKEY_REDIS_URL and pass --include-ignored (.ci/run does)"]
fn a_lost_request_that_cannot_be_retried_is_outcome_unknown_and_nothing_changed() {
    let rig = Rig::new();
    let store = rig.store();
    let (old, new, now) = (key(), key(), rig.clock.now());
    rig.direct.insert(&old, &live(1, now, "before")).unwrap();
    rig.proxy
        .arm(Fault::LoseRequest, b"\"successor\"", Then::GoDown);
    let err = store
        .rotate(&old, 1, &ended(2, now), &new, &live(1, now, "successor"))
        .unwrap_err();
    // The store cannot tell this from the case above: the same answer.
    assert!(is_outcome_unknown(&err), "{err:?}");
    assert_eq!(stored(&rig, &old), written(&live(1, now, "before")));
    assert_eq!(stored(&rig, &new), None);
    // Once Redis is back, the caller's own retry settles it.
    rig.proxy.restore();
    assert!(
        store
            .rotate(&old, 1, &ended(2, now), &new, &live(1, now, "successor"))
            .is_ok()
    );
}

#[test]
#[ignore = "needs a Redis server: set LATCHKEY_REDIS_URL and pass --include-ignored (.ci/run does)"]
fn a_write_that_times_out_is_outcome_unknown_and_a_read_unavailable() {
    let rig = Rig::new();
    let store = rig.store().with_io_timeout(Duration::from_millis(200));
    let (k, now) = (key(), rig.clock.now());
    rig.direct.insert(&k, &live(1, now, "before")).unwrap();

    rig.proxy.arm(Fault::HoldReply, b"\"after\"", Then::Serve);
    let err = store.replace(&k, 1, &live(2, now, "after")).unwrap_err();
    assert!(is_outcome_unknown(&err), "{err:?}");
    // The reply reached the proxy, so Redis ran it: the record is whole.
    rig.proxy.wait_fired(1);
    assert_eq!(stored(&rig, &k), written(&live(2, now, "after")));

    rig.proxy.arm(
        Fault::HoldReply,
        rig.direct.record_key(&k).as_bytes(),
        Then::Serve,
    );
    let err = store.get(&k).unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
}

// ---- The manager: an applied write is never turned into something else. ----

#[test]
#[ignore = "needs a Redis server: set LATCHKEY_REDIS_URL and pass --include-ignored (.ci/run does)"]
fn an_update_whose_save_reply_is_lost_runs_the_change_once() {
    let rig = Rig::new();
    let m = rig.manager();
    let issued = m.create(NewSession::new()).unwrap();
    rig.proxy
        .arm(Fault::LoseReply, b"\"visits\":1", Then::Serve);
    let mut calls = 0;
    let (visits, session, _) = m
        .update(issued.token(), |s| {
            calls += 1;
            let n = s.get::<u64>("visits").unwrap().unwrap_or(0) + 1;
            s.insert("visits", &n).unwrap();
            n
        })
        .unwrap();
    assert_eq!(rig.proxy.fired(), 1);
    assert_eq!(
        calls, 1,
        "the change was applied again after its save landed"
    );
    assert_eq!(visits, 1);
    assert_eq!(session.version(), 2);
    let now = m.load(issued.token()).unwrap().session;
    assert_eq!(now.get::<u64>("visits").unwrap(), Some(1));
    assert_eq!(now.version(), 2);
}

#[test]
#[ignore = "needs a Redis server: set LATCHKEY_REDIS_URL and pass --include-ignored (.ci/run does)"]
fn a_rotation_whose_reply_is_lost_hands_out_the_new_token_not_a_conflict() {
    let rig = Rig::new();
    let m = rig.manager();
    let issued = m.create(NewSession::new().with_user("alice")).unwrap();
    let mut s = m.load(issued.token()).unwrap().session;
    rig.proxy.arm(Fault::LoseReply, b"\"rotated\"", Then::Serve);
    let fresh = m.rotate(&mut s).unwrap();
    assert_eq!(rig.proxy.fired(), 1);
    assert_eq!(s.fingerprint(), fresh.fingerprint());
    assert!(m.load(fresh.token()).is_ok());
    // The old token is retired, and within the grace window leads to the
    // new session: one rotation, not two and not none.
    let old = m.load(issued.token()).unwrap();
    assert_eq!(
        old.reissue.map(|i| i.fingerprint()),
        Some(fresh.fingerprint())
    );
    assert_eq!(m.sessions_of("alice").unwrap().len(), 1);
}

#[test]
#[ignore = "needs a Redis server: set LATCHKEY_REDIS_URL and pass --include-ignored (.ci/run does)"]
fn a_create_whose_reply_is_lost_makes_exactly_one_session() {
    let rig = Rig::new();
    let m = rig.manager();
    rig.proxy.arm(Fault::LoseReply, b"\"created\"", Then::Serve);
    let issued = m
        .create(
            NewSession::new()
                .with_user("alice")
                .with_value("marker", &"created")
                .unwrap(),
        )
        .unwrap();
    assert_eq!(rig.proxy.fired(), 1);
    assert!(m.load(issued.token()).is_ok());
    assert_eq!(m.sessions_of("alice").unwrap().len(), 1);
}

#[test]
#[ignore = "needs a Redis server: set LATCHKEY_REDIS_URL and pass --include-ignored (.ci/run does)"]
fn a_logout_whose_reply_is_lost_still_reports_the_session_ended() {
    let rig = Rig::new();
    let m = rig.manager();
    let phone = m.create(NewSession::new().with_user("alice")).unwrap();
    rig.proxy.arm(Fault::LoseReply, b"\"logout\"", Then::Serve);
    assert!(
        m.terminate_by_fingerprint("alice", phone.fingerprint())
            .unwrap()
    );
    assert_eq!(rig.proxy.fired(), 1);
    assert!(matches!(
        m.load(phone.token()),
        Err(Error::Terminated {
            reason: EndReason::Logout
        })
    ));
}

#[test]
#[ignore = "needs a Redis server: set LATCHKEY_REDIS_URL and pass --include-ignored (.ci/run does)"]
fn an_unsettled_save_is_a_backend_failure_and_is_not_applied_twice() {
    let rig = Rig::new();
    let m = rig.manager();
    let issued = m.create(NewSession::new()).unwrap();
    rig.proxy
        .arm(Fault::LoseReply, b"\"visits\":1", Then::GoDown);
    let mut calls = 0;
    let err = m
        .update(issued.token(), |s| {
            calls += 1;
            let n = s.get::<u64>("visits").unwrap().unwrap_or(0) + 1;
            s.insert("visits", &n).unwrap();
        })
        .unwrap_err();
    assert!(
        matches!(&err, Error::Store(e) if is_outcome_unknown(e)),
        "{err:?}"
    );
    assert!(err.is_backend_failure() && !err.is_rejection());
    assert_eq!(calls, 1);
    rig.proxy.restore();
    // It landed once: the next load sees it, at the next version, and a
    // save from it is no conflict.
    let mut s = m.load(issued.token()).unwrap().session;
    assert_eq!(s.get::<u64>("visits").unwrap(), Some(1));
    assert_eq!(s.version(), 2);
    s.insert("visits", &2u64).unwrap();
    m.save(&mut s).unwrap();
}

#[test]
#[ignore = "needs a Redis server: set LATCHKEY_REDIS_URL and pass --include-ignored (.ci/run does)"]
fn an_unsettled_rotation_that_landed_is_reached_through_the_old_token() {
    let rig = Rig::new();
    let m = rig.manager();
    let issued = m.create(NewSession::new().with_user("alice")).unwrap();
    let mut s = m.load(issued.token()).unwrap().session;
    rig.proxy
        .arm(Fault::LoseReply, b"\"rotated\"", Then::GoDown);
    let err = m.rotate(&mut s).unwrap_err();
    assert!(
        matches!(&err, Error::Store(e) if is_outcome_unknown(e)),
        "{err:?}"
    );
    // The copy was not advanced: the caller keeps the old cookie.
    assert_eq!(s.fingerprint(), issued.fingerprint());
    rig.proxy.restore();
    // Within the grace window the old cookie leads to the successor the
    // rotation wrote: no reuse alarm, no conflict, one live session.
    let loaded = m.load(issued.token()).unwrap();
    let successor = loaded.reissue.expect("the rotation landed");
    assert!(m.load(successor.token()).is_ok());
    assert_eq!(m.sessions_of("alice").unwrap().len(), 1);
}

// ---- An error reply from Redis: nothing changed. ----

#[test]
#[ignore = "needs a Redis server: set LATCHKEY_REDIS_URL and pass --include-ignored (.ci/run does)"]
fn a_write_redis_refuses_is_unavailable_and_changed_nothing() {
    let rig = Rig::new();
    let (k, now) = (key(), rig.clock.now());
    // Alice's user set is a string: adding to it fails with WRONGTYPE,
    // after the script's checks and before any write of the record.
    let mut con = redis::Client::open(redis_url().as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg(rig.direct.user_key("alice"))
        .arg("not a set")
        .arg("EX")
        .arg(600)
        .query(&mut con)
        .unwrap();
    let err = rig.direct.insert(&k, &live(1, now, "refused")).unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert_eq!(stored(&rig, &k), None);

    let mut bob = live(1, now, "bob's");
    if let RecordState::Live(s) = &mut bob.state {
        s.user = Some("bob".into());
    }
    rig.direct.insert(&k, &bob).unwrap();
    let err = rig
        .direct
        .replace(&k, 1, &live(2, now, "refused"))
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert_eq!(stored(&rig, &k), written(&bob));
}

// ---- The async store: the same faults, the same answers. ----

#[cfg(feature = "redis-async")]
mod async_store {
    use super::*;
    use latchkey::{AsyncRedisStore, AsyncStore};

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    /// An async store with the rig's prefix and clock, through the proxy.
    fn store(rig: &Rig) -> AsyncRedisStore {
        AsyncRedisStore::open(&rig.proxied_url)
            .unwrap()
            .with_prefix(rig.direct.prefix())
            .with_clock(Arc::new(rig.clock.clone()))
    }

    #[test]
    #[ignore = "needs a Redis server: set LATCHKEY_REDIS_URL and pass --include-ignored (.ci/run does)"]
    fn an_async_replace_whose_reply_is_lost_is_retried_and_reported_applied() {
        let (rig, rt) = (Rig::new(), rt());
        let store = store(&rig);
        let (k, now) = (key(), rig.clock.now());
        rig.direct.insert(&k, &live(1, now, "before")).unwrap();
        // The shared connection is open: the lost reply is on it.
        assert!(rt.block_on(store.get(&k)).unwrap().is_some());
        rig.proxy.arm(Fault::LoseReply, b"\"after\"", Then::Serve);
        rt.block_on(store.replace(&k, 1, &live(2, now, "after")))
            .unwrap();
        assert_eq!(rig.proxy.fired(), 1);
        assert_eq!(stored(&rig, &k), written(&live(2, now, "after")));
    }

    #[test]
    #[ignore = "needs a Redis server: set LATCHKEY_REDIS_URL and pass --include-ignored (.ci/run does)"]
    fn an_async_insert_whose_reply_is_lost_is_retried_and_reported_inserted() {
        let (rig, rt) = (Rig::new(), rt());
        let store = store(&rig);
        let (k, now) = (key(), rig.clock.now());
        rig.proxy.arm(Fault::LoseReply, b"\"fresh\"", Then::Serve);
        rt.block_on(store.insert(&k, &live(1, now, "fresh")))
            .unwrap();
        assert_eq!(rig.proxy.fired(), 1);
        assert_eq!(stored(&rig, &k), written(&live(1, now, "fresh")));
        // A second insert of the very same record is still refused.
        assert!(matches!(
            rt.block_on(store.insert(&k, &live(1, now, "fresh"))),
            Err(StoreError::Exists)
        ));
    }

    #[test]
    #[ignore = "needs a Redis server: set LATCHKEY_REDIS_URL and pass --include-ignored (.ci/run does)"]
    fn an_async_rotation_that_cannot_be_retried_is_outcome_unknown_and_landed_whole() {
        let (rig, rt) = (Rig::new(), rt());
        let store = store(&rig);
        let (old, new, now) = (key(), key(), rig.clock.now());
        rig.direct.insert(&old, &live(1, now, "before")).unwrap();
        rig.proxy
            .arm(Fault::LoseReply, b"\"successor\"", Then::GoDown);
        let retired = ended(2, now);
        let err = rt
            .block_on(store.rotate(&old, 1, &retired, &new, &live(1, now, "successor")))
            .unwrap_err();
        assert!(is_outcome_unknown(&err), "{err:?}");
        assert_eq!(stored(&rig, &old), written(&retired));
        assert_eq!(stored(&rig, &new), written(&live(1, now, "successor")));
        // Once Redis is back, the store reconnects by itself.
        rig.proxy.restore();
        assert!(rt.block_on(store.get(&new)).unwrap().is_some());
    }

    #[test]
    #[ignore = "needs a Redis server: set LATCHKEY_REDIS_URL and pass --include-ignored (.ci/run does)"]
    fn an_async_write_that_times_out_is_outcome_unknown_and_a_read_unavailable() {
        let (rig, rt) = (Rig::new(), rt());
        let store = store(&rig).with_io_timeout(Duration::from_millis(200));
        let (k, now) = (key(), rig.clock.now());
        rig.direct.insert(&k, &live(1, now, "before")).unwrap();
        rig.proxy.arm(Fault::HoldReply, b"\"after\"", Then::Serve);
        let err = rt
            .block_on(store.replace(&k, 1, &live(2, now, "after")))
            .unwrap_err();
        assert!(is_outcome_unknown(&err), "{err:?}");
        rig.proxy.wait_fired(1);
        assert_eq!(stored(&rig, &k), written(&live(2, now, "after")));
        rig.proxy.arm(
            Fault::HoldReply,
            rig.direct.record_key(&k).as_bytes(),
            Then::Serve,
        );
        let err = rt.block_on(store.get(&k)).unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
        // Later calls get their own answers, on a fresh connection.
        assert_eq!(
            rt.block_on(store.get(&k)).unwrap(),
            Some(live(2, now, "after"))
        );
    }
}
