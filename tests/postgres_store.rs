//! PostgresStore against the shared store conformance suite, the manager
//! conformance suite and a real PostgreSQL server, plus its own
//! behaviours: the row an operator sees with `psql`, lost updates between
//! two clients, and what happens when the server goes away and comes back,
//! stalls (a proxy on loopback that stops forwarding, as a server stopped
//! with `SIGSTOP` would), or commits a write whose answer never arrives
//! (the same proxy, swallowing one `COMMIT`'s answer).
//!
//! Every test that needs a server is `#[ignore]`d with the reason, so
//! `cargo test --features postgres` on a machine without PostgreSQL says
//! "ignored" instead of passing them against something else. To run them,
//! point `LATCHKEY_POSTGRES_URL` at a database you can scribble on and ask
//! for them:
//!
//! ```text
//! LATCHKEY_POSTGRES_URL='host=127.0.0.1 port=5432 user=postgres dbname=latchkey_test' \
//!   cargo test --features postgres --test postgres_store -- --include-ignored --skip restart
//! ```
//!
//! Every test works in a table of its own, `latchkey_test_<12 hex>`, made
//! by `PostgresStore::migrate`, so tests run in parallel against one
//! database; the tables are left behind (`.ci/postgres` throws the whole
//! cluster away). Asked for without the URL they fail.
//!
//! The restart test stops and starts the server with the command in
//! `LATCHKEY_POSTGRES_CTL` (a `pg_ctl -D DIR` command line, to which it
//! appends `stop` or `start`), so it must run alone: `.ci/postgres` runs it
//! after the others, and it fails if asked for without that variable.
#![cfg(feature = "postgres")]

mod conformance;
mod manager_suite;

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use conformance::store_conformance;
use latchkey::store::{LiveSession, Record, RecordState};
use latchkey::{
    Clock, Error, ManualClock, NewSession, PostgresStore, SessionData, SessionId, SessionManager,
    Store, StoreError, StoreKey, StoreManager, Timestamp,
};
use manager_suite::{Kind, manager_conformance};

const URL_VAR: &str = "LATCHKEY_POSTGRES_URL";
const CTL_VAR: &str = "LATCHKEY_POSTGRES_CTL";

/// The database these tests run against. They are `#[ignore]`d unless
/// asked for (`--include-ignored`), so a run without a server skips them
/// openly instead of passing them against something else; asked for
/// without a URL, they fail.
fn postgres_url() -> String {
    match std::env::var(URL_VAR) {
        Ok(url) if !url.is_empty() => url,
        _ => {
            panic!("{URL_VAR} is unset: the PostgreSQL tests need a server (see this file's docs)")
        }
    }
}

/// A table no other test (or earlier run) uses.
fn unique_table() -> String {
    format!("latchkey_test_{}", SessionId::generate().fingerprint())
}

/// A store on a fresh table of its own, made by `migrate`.
fn fresh_store(url: &str) -> PostgresStore {
    let store = PostgresStore::connect(url)
        .unwrap()
        .with_table(&unique_table());
    store.migrate().unwrap();
    store
}

/// A second client (its own connections) on the same table as `store`.
fn same_table(url: &str, store: &PostgresStore) -> PostgresStore {
    PostgresStore::connect(url)
        .unwrap()
        .with_table(store.table())
}

// The store keeps no clock: every time it compares comes in through the
// call (`purge_expired(now)`, the records' deadlines).
store_conformance!(
    #[ignore = "needs PostgreSQL: set LATCHKEY_POSTGRES_URL and pass --include-ignored (.ci/postgres does)"]
    postgres_server,
    |_clock: &ManualClock| fresh_store(&postgres_url())
);

// Both managers over PostgreSQL, against the manager conformance suite:
// the server-side manager keeping sessions there, and tickets keeping
// their revocations there.
manager_conformance!(
    #[ignore = "needs PostgreSQL: set LATCHKEY_POSTGRES_URL and pass --include-ignored (.ci/postgres does)"]
    store_manager_postgres,
    |clock: &ManualClock, policy: latchkey::Policy| {
        let store = fresh_store(&postgres_url());
        let m = StoreManager::new(store)
            .with_policy(policy)
            .with_clock(Arc::new(clock.clone()));
        (Arc::new(m) as Arc<dyn SessionManager>, Kind::Server)
    }
);

manager_conformance!(
    #[ignore = "needs PostgreSQL: set LATCHKEY_POSTGRES_URL and pass --include-ignored (.ci/postgres does)"]
    ticket_manager_revocation_in_postgres,
    |clock: &ManualClock, policy: latchkey::Policy| {
        let store = fresh_store(&postgres_url());
        let m = latchkey::TicketManager::new(
            "session",
            latchkey::KeyRing::new(1, latchkey::TicketKey::generate()),
        )
        .unwrap()
        .with_policy(policy)
        .with_clock(Arc::new(clock.clone()))
        .with_revocation(store);
        (
            Arc::new(m) as Arc<dyn SessionManager>,
            Kind::RevocableTickets,
        )
    }
);

fn live(user: Option<&str>, version: u64, now: Timestamp) -> Record {
    let mut data = serde_json::Map::new();
    data.insert("big".into(), serde_json::json!(u64::MAX));
    data.insert("text".into(), serde_json::json!("\"quoted\" ☃ \n \u{0}"));
    Record {
        version,
        expires_at: now.saturating_add(Duration::from_secs(600)),
        state: RecordState::Live(LiveSession {
            created_at: now,
            last_seen: now,
            auth_at: None,
            absolute_deadline: now.saturating_add(Duration::from_secs(3600)),
            user: user.map(str::to_owned),
            device: None,
            data: SessionData::from_map(data),
        }),
    }
}

fn key() -> StoreKey {
    SessionId::generate().store_key()
}

fn now() -> Timestamp {
    ManualClock::starting_now().now()
}

#[test]
#[ignore = "needs PostgreSQL: set LATCHKEY_POSTGRES_URL and pass --include-ignored (.ci/postgres does)"]
fn two_clients_replacing_from_one_version_admit_exactly_one() {
    let url = postgres_url();
    let a = fresh_store(&url);
    let b = same_table(&url, &a);
    let now = now();
    for round in 0..20 {
        let k = key();
        a.insert(&k, &live(Some("alice"), 1, now)).unwrap();
        let (wins, conflicts) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let start = Barrier::new(2);
        thread::scope(|scope| {
            for (store, tag) in [(&a, "a"), (&b, "b")] {
                let (wins, conflicts, start, k) = (&wins, &conflicts, &start, &k);
                scope.spawn(move || {
                    let mut mine = live(Some(tag), 2, now);
                    mine.expires_at = now.saturating_add(Duration::from_secs(900));
                    start.wait();
                    match store.replace(k, 1, &mine) {
                        Ok(()) => wins.fetch_add(1, Ordering::SeqCst),
                        Err(StoreError::Conflict) => conflicts.fetch_add(1, Ordering::SeqCst),
                        Err(e) => panic!("round {round}: unexpected {e:?}"),
                    };
                });
            }
        });
        assert_eq!(
            (wins.into_inner(), conflicts.into_inner()),
            (1, 1),
            "round {round}"
        );
        // The winner's record, whole: no mix of the two writes.
        let stored = b.get(&k).unwrap().unwrap();
        assert_eq!(stored.version, 2);
        let winner = stored.user().unwrap().to_owned();
        assert_eq!(stored, live(Some(&winner), 2, now).with_expiry(now, 900));
    }
}

trait WithExpiry {
    fn with_expiry(self, now: Timestamp, secs: u64) -> Record;
}

impl WithExpiry for Record {
    fn with_expiry(mut self, now: Timestamp, secs: u64) -> Record {
        self.expires_at = now.saturating_add(Duration::from_secs(secs));
        self
    }
}

#[test]
#[ignore = "needs PostgreSQL: set LATCHKEY_POSTGRES_URL and pass --include-ignored (.ci/postgres does)"]
fn concurrent_rotations_from_one_version_admit_exactly_one() {
    let url = postgres_url();
    let store = fresh_store(&url);
    let other = same_table(&url, &store);
    let now = now();
    let old = key();
    store.insert(&old, &live(Some("alice"), 1, now)).unwrap();
    let news: Vec<StoreKey> = (0..4).map(|_| key()).collect();
    let wins = AtomicUsize::new(0);
    thread::scope(|scope| {
        for (i, n) in news.iter().enumerate() {
            let s = if i % 2 == 0 { &store } else { &other };
            let wins = &wins;
            scope.spawn(move || {
                let retired = Record {
                    version: 2,
                    expires_at: now,
                    state: RecordState::Ended {
                        reason: latchkey::EndReason::Replaced,
                        at: now,
                    },
                };
                match s.rotate(&old, 1, &retired, n, &live(Some("alice"), 1, now)) {
                    Ok(()) => {
                        wins.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(StoreError::Conflict) => {}
                    Err(e) => panic!("unexpected {e:?}"),
                }
            });
        }
    });
    assert_eq!(wins.into_inner(), 1);
    let created = news
        .iter()
        .filter(|n| store.get(n).unwrap().is_some())
        .count();
    assert_eq!(created, 1);
    assert_eq!(store.sessions_of("alice").unwrap().len(), 1);
}

#[test]
#[ignore = "needs PostgreSQL: set LATCHKEY_POSTGRES_URL and pass --include-ignored (.ci/postgres does)"]
fn touch_raises_activity_in_place_without_a_version_bump() {
    let store = fresh_store(&postgres_url());
    let now = now();
    let k = key();
    let r = live(Some("alice"), 4, now);
    store.insert(&k, &r).unwrap();
    let later = now.saturating_add(Duration::from_secs(5));
    let deadline = now.saturating_add(Duration::from_secs(1200));
    assert!(store.touch(&k, later, deadline).unwrap());
    // Lower values never move it back.
    assert!(store.touch(&k, now, now).unwrap());
    let mut want = r.clone();
    want.touch(later, deadline);
    assert_eq!(store.get(&k).unwrap(), Some(want));
    // A replace from the version read still lands: touch did not bump it.
    store.replace(&k, 4, &live(Some("alice"), 5, now)).unwrap();
}

#[test]
#[ignore = "needs PostgreSQL: set LATCHKEY_POSTGRES_URL and pass --include-ignored (.ci/postgres does)"]
fn a_corrupt_row_is_an_error_for_that_session_only() {
    let url = postgres_url();
    let store = fresh_store(&url);
    let now = now();
    let (bad, good) = (key(), key());
    store.insert(&bad, &live(Some("alice"), 1, now)).unwrap();
    store.insert(&good, &live(Some("alice"), 1, now)).unwrap();
    raw_execute(
        &url,
        &format!(
            "UPDATE \"{}\" SET record = 'not json' WHERE key = decode('{}', 'hex')",
            store.table(),
            hex(bad.as_bytes())
        ),
    );
    let err = store.get(&bad).unwrap_err();
    assert!(err.is_corrupt(), "{err:?}");
    assert!(store.get(&good).unwrap().is_some());
    let listed: Vec<StoreKey> = store
        .sessions_of("alice")
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(listed, vec![good]);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs `sql` on a connection of its own, as an operator's `psql` would.
fn raw_execute(url: &str, sql: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client.batch_execute(sql).await.unwrap();
    });
}

/// A port nothing listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn an_unreachable_server_is_a_backend_failure_never_a_rejection() {
    let port = free_port();
    let err = PostgresStore::connect(&format!(
        "host=127.0.0.1 port={port} user=nobody connect_timeout=1"
    ))
    .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(Error::Store(err).is_backend_failure());
}

/// Runs the `pg_ctl` command line from `LATCHKEY_POSTGRES_CTL` with `args`.
fn pg_ctl(args: &[&str]) {
    let line = std::env::var(CTL_VAR).unwrap_or_default();
    let mut words = line.split_whitespace();
    let program = words.next().unwrap_or_else(|| {
        panic!("{CTL_VAR} is unset: the restart test needs a pg_ctl command line (see this file's docs)")
    });
    let status = Command::new(program)
        .args(words)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "{line} {args:?}: {status}");
}

#[test]
#[ignore = "stops the server: set LATCHKEY_POSTGRES_URL and LATCHKEY_POSTGRES_CTL, run it alone (.ci/postgres does)"]
fn restart_mid_run_is_a_backend_failure_and_service_resumes() {
    let url = postgres_url();
    // Checked first: a missing variable must not leave the server down.
    assert!(
        std::env::var(CTL_VAR).is_ok_and(|v| !v.is_empty()),
        "{CTL_VAR} is unset"
    );
    let store = fresh_store(&url).with_connect_timeout(Duration::from_millis(500));
    let m = StoreManager::new(store);
    // Several sessions through several threads, so the pool holds more
    // than one connection when the server goes.
    let before: Vec<_> = thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|_| scope.spawn(|| m.create(NewSession::new().with_user("alice")).unwrap()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for t in &before {
        assert!(m.load(t.token()).is_ok());
    }

    pg_ctl(&["stop", "-m", "fast", "-w"]);
    for t in &before {
        let err = m.load(t.token()).unwrap_err();
        assert!(err.is_backend_failure(), "{err:?}");
        assert!(!err.is_rejection(), "{err:?}");
    }
    let err = m.create(NewSession::new()).unwrap_err();
    assert!(err.is_backend_failure(), "{err:?}");
    assert!(!err.is_rejection(), "{err:?}");
    assert!(m.sessions_of("alice").unwrap_err().is_backend_failure());
    let k = key();
    for e in [
        m.store().insert(&k, &live(None, 1, now())).unwrap_err(),
        m.store().remove(&k).unwrap_err(),
        m.store().purge_expired(now()).unwrap_err(),
    ] {
        // Refused before anything was sent: never "outcome unknown".
        assert!(matches!(e, StoreError::Unavailable(_)), "{e:?}");
    }

    pg_ctl(&["start", "-w"]);
    // Committed sessions survived; the next call reconnects by itself.
    for t in &before {
        assert!(m.load(t.token()).is_ok());
    }
    let after = m.create(NewSession::new().with_user("alice")).unwrap();
    assert!(m.load(after.token()).is_ok());
    assert_eq!(m.sessions_of("alice").unwrap().len(), 5);

    // A restart with no call in between: every pooled connection is dead,
    // and the first call still succeeds, on a fresh one.
    thread::scope(|scope| {
        for t in &before {
            let m = &m;
            scope.spawn(move || assert!(m.load(t.token()).is_ok()));
        }
    });
    pg_ctl(&["restart", "-m", "fast", "-w"]);
    assert!(m.load(after.token()).is_ok());
    m.create(NewSession::new()).unwrap();
}

/// A TCP proxy on loopback in front of the test server, which can stall
/// every connection (as a server stopped with `SIGSTOP` would: the kernel
/// still accepts and acknowledges, nothing answers) or swallow the answer
/// to one `COMMIT` after forwarding it, so that the server commits and
/// the client never hears of it.
///
/// The store sends one message and awaits its answer before the next, so
/// the first bytes from the server after a `COMMIT` are its answer.
struct StallProxy {
    port: u16,
    state: Arc<(std::sync::Mutex<ProxyState>, std::sync::Condvar)>,
}

#[derive(Default)]
struct ProxyState {
    /// Nothing is forwarded, either way, while set; it is held, and
    /// forwarded when cleared.
    stalled: bool,
    /// The next `COMMIT` is forwarded and its answer swallowed.
    armed: bool,
    /// A `COMMIT` was forwarded under `armed`.
    commit_sent: bool,
    /// The server answered the `COMMIT` whose answer was swallowed.
    commit_answered: bool,
}

type Shared = Arc<(std::sync::Mutex<ProxyState>, std::sync::Condvar)>;

impl StallProxy {
    fn start(upstream: std::net::SocketAddr) -> StallProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state: Shared = Arc::default();
        let st = state.clone();
        thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(server) = std::net::TcpStream::connect(upstream) else {
                    continue;
                };
                let swallowing = Arc::new(std::sync::atomic::AtomicBool::new(false));
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let (st1, st2, sw1, sw2) = (st.clone(), st.clone(), swallowing.clone(), swallowing);
                thread::spawn(move || StallProxy::pump(client, server, st1, sw1, true));
                thread::spawn(move || StallProxy::pump(s2, c2, st2, sw2, false));
            }
        });
        StallProxy { port, state }
    }

    /// Copies `from` to `to`, holding each chunk while the proxy is
    /// stalled; `requests` is the client-to-server direction.
    fn pump(
        mut from: std::net::TcpStream,
        mut to: std::net::TcpStream,
        state: Shared,
        swallowing: Arc<std::sync::atomic::AtomicBool>,
        requests: bool,
    ) {
        use std::io::{Read, Write};
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let chunk = &buf[..n];
            {
                let (lock, cv) = &*state;
                let mut s = cv.wait_while(lock.lock().unwrap(), |s| s.stalled).unwrap();
                if requests && s.armed && chunk.windows(7).any(|w| w == b"COMMIT\0") {
                    s.armed = false;
                    s.commit_sent = true;
                    swallowing.store(true, Ordering::SeqCst);
                } else if !requests && swallowing.load(Ordering::SeqCst) {
                    s.commit_answered = true;
                    cv.notify_all();
                    continue;
                }
            }
            if to.write_all(chunk).is_err() {
                break;
            }
        }
        let _ = to.shutdown(std::net::Shutdown::Both);
    }

    fn set(&self, f: impl FnOnce(&mut ProxyState)) {
        f(&mut self.state.0.lock().unwrap());
        self.state.1.notify_all();
    }

    fn stall(&self) {
        self.set(|s| s.stalled = true);
    }

    fn resume(&self) {
        self.set(|s| s.stalled = false);
    }

    fn swallow_next_commit_answer(&self) {
        self.set(|s| {
            s.armed = true;
            s.commit_sent = false;
            s.commit_answered = false;
        });
    }

    /// Waits until the server answered the swallowed `COMMIT`: from then
    /// on its outcome is settled on the server.
    fn wait_commit_answered(&self) {
        let (lock, cv) = &*self.state;
        let (s, timeout) = cv
            .wait_timeout_while(lock.lock().unwrap(), Duration::from_secs(30), |s| {
                !s.commit_answered
            })
            .unwrap();
        assert!(!timeout.timed_out() && s.commit_sent, "no COMMIT answered");
    }
}

/// The test server's address and a connection string for the same
/// database through `proxy_port`.
fn through_proxy(url: &str) -> (std::net::SocketAddr, impl Fn(u16) -> String + use<>) {
    use tokio_postgres::config::Host;
    let config: tokio_postgres::Config = url.parse().unwrap();
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        other => panic!("the proxy tests need a TCP host in {URL_VAR}, not {other:?}"),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let upstream = std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port))
        .unwrap()
        .next()
        .unwrap();
    let user = config.get_user().unwrap_or("postgres").to_owned();
    let dbname = config.get_dbname().unwrap_or(&user).to_owned();
    let password = config
        .get_password()
        .map(|p| {
            format!(
                " password='{}'",
                String::from_utf8_lossy(p).replace('\'', "\\'")
            )
        })
        .unwrap_or_default();
    (upstream, move |proxy_port| {
        format!("host=127.0.0.1 port={proxy_port} user='{user}' dbname='{dbname}'{password}")
    })
}

/// Short timeouts, so the stall tests are quick (yet long enough for the
/// calls that must succeed on a busy machine); the bound each call is held
/// to is far above them, so a slow machine does not fail the test.
const SHORT: Duration = Duration::from_secs(1);
const BOUND: Duration = Duration::from_secs(15);

/// A store through a fresh proxy, on a fresh table, with short timeouts.
fn proxied_store() -> (StallProxy, PostgresStore) {
    let url = postgres_url();
    let (upstream, url_for) = through_proxy(&url);
    let proxy = StallProxy::start(upstream);
    let store = PostgresStore::connect(&url_for(proxy.port))
        .unwrap()
        .with_table(&unique_table())
        .with_connect_timeout(SHORT)
        .with_io_timeout(SHORT);
    store.migrate().unwrap();
    (proxy, store)
}

/// Runs `call`, asserts that it ended within [`BOUND`], and returns what it
/// returned.
fn bounded<T>(what: &str, call: impl FnOnce() -> T) -> T {
    let start = std::time::Instant::now();
    let out = call();
    let took = start.elapsed();
    assert!(took < BOUND, "{what} took {took:?}");
    out
}

#[test]
#[ignore = "needs PostgreSQL: set LATCHKEY_POSTGRES_URL and pass --include-ignored (.ci/postgres does)"]
fn a_stalled_server_is_unavailable_within_the_timeout_and_service_resumes() {
    let (proxy, store) = proxied_store();
    let now = now();
    let k = key();
    store.insert(&k, &live(Some("alice"), 1, now)).unwrap();
    // Several connections in the pool, all of which the stall holds.
    thread::scope(|scope| {
        for _ in 0..3 {
            scope.spawn(|| store.get(&k).unwrap().unwrap());
        }
    });

    proxy.stall();
    let other = key();
    let later = now.saturating_add(Duration::from_secs(5));
    type Call<'a> = Box<dyn Fn() -> Result<(), StoreError> + 'a>;
    let calls: Vec<(&str, Call<'_>)> = vec![
        ("get", Box::new(|| store.get(&k).map(drop))),
        ("ping", Box::new(|| store.ping())),
        (
            "insert",
            Box::new(|| store.insert(&other, &live(None, 1, now))),
        ),
        (
            "replace",
            Box::new(|| store.replace(&k, 1, &live(Some("alice"), 2, now))),
        ),
        (
            "touch",
            Box::new(|| store.touch(&k, later, later).map(drop)),
        ),
        ("remove", Box::new(|| store.remove(&k).map(drop))),
        (
            "sessions_of",
            Box::new(|| store.sessions_of("alice").map(drop)),
        ),
        (
            "purge_expired",
            Box::new(|| store.purge_expired(now).map(drop)),
        ),
    ];
    // Twice round: the first calls find the stalled pooled connections,
    // the later ones connect afresh and get no answer to the startup.
    for _ in 0..2 {
        for (what, call) in &calls {
            let err = bounded(what, call).unwrap_err();
            // No COMMIT was sent: nothing changed, and the store says so.
            assert!(matches!(err, StoreError::Unavailable(_)), "{what}: {err:?}");
            assert!(Error::Store(err).is_backend_failure());
        }
    }
    drop(calls);

    proxy.resume();
    // The next call reconnects by itself, and nothing of the stalled
    // writes took effect.
    assert_eq!(store.get(&k).unwrap(), Some(live(Some("alice"), 1, now)));
    assert_eq!(store.get(&other).unwrap(), None);
    store.replace(&k, 1, &live(Some("alice"), 2, now)).unwrap();
    assert_eq!(store.get(&k).unwrap().unwrap().version, 2);
}

#[test]
#[ignore = "needs PostgreSQL: set LATCHKEY_POSTGRES_URL and pass --include-ignored (.ci/postgres does)"]
fn a_lost_commit_answer_is_outcome_unknown_and_a_reload_sees_the_write() {
    let (proxy, store) = proxied_store();
    let now = now();
    let k = key();
    store.insert(&k, &live(Some("alice"), 1, now)).unwrap();

    proxy.swallow_next_commit_answer();
    let err = bounded("replace", || {
        store.replace(&k, 1, &live(Some("alice"), 2, now))
    })
    .unwrap_err();
    assert!(matches!(err, StoreError::OutcomeUnknown(_)), "{err:?}");
    proxy.wait_commit_answered();
    // The server committed it: a reload sees exactly the new record, and a
    // retry from the old version is a conflict, not a second write.
    assert_eq!(store.get(&k).unwrap(), Some(live(Some("alice"), 2, now)));
    assert!(matches!(
        store.replace(&k, 1, &live(Some("alice"), 2, now)),
        Err(StoreError::Conflict)
    ));

    // A rotation: both rows or neither, here both.
    let new = key();
    let retired = Record {
        version: 3,
        expires_at: now,
        state: RecordState::Ended {
            reason: latchkey::EndReason::Replaced,
            at: now,
        },
    };
    proxy.swallow_next_commit_answer();
    let err = bounded("rotate", || {
        store.rotate(&k, 2, &retired, &new, &live(Some("alice"), 1, now))
    })
    .unwrap_err();
    assert!(matches!(err, StoreError::OutcomeUnknown(_)), "{err:?}");
    proxy.wait_commit_answered();
    assert_eq!(store.get(&k).unwrap(), Some(retired));
    assert_eq!(store.get(&new).unwrap(), Some(live(Some("alice"), 1, now)));

    // Through the manager: a backend failure, never a rejection, and the
    // session is there to load afterwards.
    let m = StoreManager::new(store);
    proxy.swallow_next_commit_answer();
    let err = bounded("create", || m.create(NewSession::new().with_user("bob"))).unwrap_err();
    assert!(err.is_backend_failure(), "{err:?}");
    assert!(!err.is_rejection(), "{err:?}");
    proxy.wait_commit_answered();
    assert_eq!(m.sessions_of("bob").unwrap().len(), 1);
}

#[test]
fn a_server_that_never_answers_is_unavailable_within_the_connect_timeout() {
    // Accepted by the kernel (the backlog), never answered: a stopped
    // server looks like this from the client.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let err = bounded("connect", || {
        PostgresStore::connect(&format!(
            "host=127.0.0.1 port={port} user=nobody connect_timeout=1"
        ))
    })
    .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    let why = std::error::Error::source(&err).map(ToString::to_string);
    assert!(
        why.as_deref().is_some_and(|w| w.contains("did not answer")),
        "{why:?}"
    );
    drop(silent);
}

#[test]
fn a_call_on_an_async_runtime_thread_is_an_error_not_a_panic() {
    // An async caller that forgot `spawn_blocking`: tokio refuses to block
    // a thread that runs a runtime, and the store says so.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let port = free_port();
    let err = runtime
        .block_on(async { PostgresStore::connect(&format!("host=127.0.0.1 port={port}")) })
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    let why = std::error::Error::source(&err).map(ToString::to_string);
    assert!(
        why.as_deref().is_some_and(|w| w.contains("spawn_blocking")),
        "{why:?}"
    );
}
