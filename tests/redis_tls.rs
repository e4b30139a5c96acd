//! RedisStore over TLS (feature `redis-tls`) against a real `redis-server`
//! listening only on a TLS port, with a certificate signed by a private CA.
//!
//! The tests that need the server are `#[ignore]`d; `.ci/redis-tls` makes
//! the certificates, starts the server and runs them with:
//!
//! - `LATCHKEY_REDIS_TLS_URL`: the server, `rediss://127.0.0.1:PORT/`;
//! - `LATCHKEY_REDIS_TLS_CA`: the PEM of the CA that signed its certificate;
//! - `LATCHKEY_REDIS_TLS_WRONG_CA`: the PEM of an unrelated CA.
//!
//! Asked for without them, they fail. The others check what `open_tls`
//! refuses before any connection, and need nothing.
#![cfg(feature = "redis-tls")]

mod conformance;

use std::sync::Arc;
use std::time::Duration;

use conformance::store_conformance;
use latchkey::{
    ManualClock, NewSession, RedisStore, SessionId, SessionManager, StoreError, StoreManager,
};

const URL_VAR: &str = "LATCHKEY_REDIS_TLS_URL";
const CA_VAR: &str = "LATCHKEY_REDIS_TLS_CA";
const WRONG_CA_VAR: &str = "LATCHKEY_REDIS_TLS_WRONG_CA";

fn var(name: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v,
        _ => {
            panic!("{name} is unset: the TLS Redis tests need .ci/redis-tls (see this file's docs)")
        }
    }
}

fn tls_url() -> String {
    let url = var(URL_VAR);
    assert!(
        url.starts_with("rediss://"),
        "{URL_VAR} must be a rediss:// URL, not {url}"
    );
    url
}

fn pem(name: &str) -> Vec<u8> {
    let path = var(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{name}={path}: {e}"))
}

/// A store on the TLS server trusting the right CA, under a prefix no
/// other test uses.
fn tls_store(clock: &ManualClock) -> RedisStore {
    RedisStore::open_tls(&tls_url(), Some(&pem(CA_VAR)))
        .unwrap()
        .with_prefix(format!(
            "latchkey-tls-test:{}:",
            SessionId::generate().fingerprint()
        ))
        .with_clock(Arc::new(clock.clone()))
}

/// Asserts a failed connection is reported as the store being unavailable
/// (a backend failure), not as any answer from Redis.
fn assert_unavailable(r: Result<(), StoreError>, what: &str) {
    match r {
        Err(StoreError::Unavailable(_)) => {}
        other => panic!("{what}: expected Unavailable, got {other:?}"),
    }
}

store_conformance!(
    #[ignore = "needs a TLS redis-server: .ci/redis-tls runs it"]
    redis_tls_server,
    |clock: &ManualClock| tls_store(clock)
);

#[test]
#[ignore = "needs a TLS redis-server: .ci/redis-tls runs it"]
fn sessions_round_trip_over_tls_with_a_private_ca() {
    let clock = ManualClock::new(latchkey::Timestamp::from_unix_millis(1_800_000_000_000));
    let store = tls_store(&clock);
    store.ping().unwrap();
    let m = StoreManager::new(store).with_clock(Arc::new(clock));
    let issued = m
        .create(
            NewSession::new()
                .with_user("alice")
                .with_value("cart", &3u32)
                .unwrap(),
        )
        .unwrap();
    let loaded = m.load(issued.token()).unwrap();
    assert_eq!(loaded.session.get::<u32>("cart").unwrap(), Some(3));
    assert_eq!(m.sessions_of("alice").unwrap().len(), 1);
}

#[test]
#[ignore = "needs a TLS redis-server: .ci/redis-tls runs it"]
fn the_name_localhost_also_checks_out() {
    // The certificate names both 127.0.0.1 and localhost: the check is
    // made against the host in the URL, by IP address or by name.
    let url = tls_url().replacen("127.0.0.1", "localhost", 1);
    let store = RedisStore::open_tls(&url, Some(&pem(CA_VAR))).unwrap();
    store.ping().unwrap();
}

#[test]
#[ignore = "needs a TLS redis-server: .ci/redis-tls runs it"]
fn an_unrelated_ca_is_refused_as_a_backend_failure() {
    let store = RedisStore::open_tls(&tls_url(), Some(&pem(WRONG_CA_VAR)))
        .unwrap()
        .with_connect_timeout(Duration::from_secs(2));
    let err = store.ping().unwrap_err();
    // Refused by the certificate check itself, not by something else
    // going wrong on the way.
    let why = std::error::Error::source(&err).map(ToString::to_string);
    assert!(
        why.as_deref().is_some_and(|w| w.contains("certificate")),
        "expected a certificate error, got {err:?}"
    );
    assert_unavailable(Err(err), "ping with the wrong CA");

    let m = StoreManager::new(store);
    let err = m.create(NewSession::new()).unwrap_err();
    assert!(err.is_backend_failure(), "{err:?}");
    assert!(!err.is_rejection(), "{err:?}");
}

#[test]
#[ignore = "needs a TLS redis-server: .ci/redis-tls runs it"]
fn the_system_roots_do_not_trust_a_private_ca() {
    // `open` with a rediss:// URL trusts only the system's roots, which
    // never include the CA .ci/redis-tls just made.
    let store = RedisStore::open(&tls_url()).unwrap();
    let err = store.ping().unwrap_err();
    let why = std::error::Error::source(&err).map(ToString::to_string);
    assert!(
        why.as_deref().is_some_and(|w| w.contains("certificate")),
        "expected a certificate error, got {err:?}"
    );
    assert_unavailable(Err(err), "ping with the system roots");
}

#[test]
#[ignore = "needs a TLS redis-server: .ci/redis-tls runs it"]
fn a_plain_url_against_the_tls_port_fails() {
    // No silent downgrade either way: plaintext to a TLS-only port is
    // refused by the server, and reported as Redis being unavailable.
    let plain = tls_url().replacen("rediss://", "redis://", 1);
    let store = RedisStore::open(&plain)
        .unwrap()
        .with_io_timeout(Duration::from_millis(500));
    assert_unavailable(store.ping(), "ping in plaintext");
}

#[test]
fn open_tls_refuses_a_plain_url() {
    let ca = b"-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n";
    let err = RedisStore::open_tls("redis://127.0.0.1:6379/", None).unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(RedisStore::open_tls("redis://127.0.0.1:6379/", Some(ca)).is_err());
}

#[test]
fn open_tls_refuses_a_pem_without_a_certificate() {
    for pem in [
        &b""[..],
        b"not a pem",
        b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    ] {
        let err = RedisStore::open_tls("rediss://127.0.0.1:6380/", Some(pem)).unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    }
}

#[test]
fn an_insecure_url_is_refused() {
    // `#insecure` would skip the certificate check: refused by both.
    let url = "rediss://127.0.0.1:6380/#insecure";
    assert!(matches!(
        RedisStore::open(url),
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(
        RedisStore::open_tls(url, None),
        Err(StoreError::Unavailable(_))
    ));
}

#[test]
fn a_rediss_url_opens_without_connecting_and_debug_hides_the_password() {
    let store = RedisStore::open("rediss://:hunter2@127.0.0.1:6380/").unwrap();
    let shown = format!("{store:?}");
    assert!(shown.contains("tls: true"), "{shown}");
    assert!(!shown.contains("hunter2"), "{shown}");
    let plain = RedisStore::open("redis://127.0.0.1:6379/").unwrap();
    assert!(format!("{plain:?}").contains("tls: false"));
}

/// AsyncRedisStore over the same TLS server (feature `redis-async-tls`;
/// `.ci/redis-tls` runs these with `--features redis-async-tls`).
#[cfg(feature = "redis-async-tls")]
mod async_tls {
    use super::*;
    use latchkey::{AsyncRedisStore, AsyncStore};

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    #[ignore = "needs a TLS redis-server: .ci/redis-tls runs it"]
    fn an_async_store_shares_sessions_over_tls_with_a_private_ca() {
        let clock = ManualClock::new(latchkey::Timestamp::from_unix_millis(1_800_000_000_000));
        let sync = tls_store(&clock);
        let store = AsyncRedisStore::open_tls(&tls_url(), Some(&pem(CA_VAR)))
            .unwrap()
            .with_prefix(sync.prefix())
            .with_clock(Arc::new(clock.clone()));
        let rt = rt();
        rt.block_on(store.ping()).unwrap();
        let m = StoreManager::new(sync).with_clock(Arc::new(clock));
        let issued = m.create(NewSession::new().with_user("alice")).unwrap();
        let listed = rt.block_on(store.sessions_of("alice")).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(
            listed[0].0,
            SessionId::parse(issued.token()).unwrap().store_key()
        );
    }

    #[test]
    #[ignore = "needs a TLS redis-server: .ci/redis-tls runs it"]
    fn an_unrelated_ca_is_refused_by_the_async_store_too() {
        let store = AsyncRedisStore::open_tls(&tls_url(), Some(&pem(WRONG_CA_VAR)))
            .unwrap()
            .with_connect_timeout(Duration::from_secs(2));
        let err = rt().block_on(store.ping()).unwrap_err();
        let why = std::error::Error::source(&err).map(ToString::to_string);
        assert!(
            why.as_deref().is_some_and(|w| w.contains("certificate")),
            "expected a certificate error, got {err:?}"
        );
        assert_unavailable(Err(err), "async ping with the wrong CA");
        // The system roots do not trust the private CA either.
        let store = AsyncRedisStore::open(&tls_url())
            .unwrap()
            .with_connect_timeout(Duration::from_secs(2));
        assert_unavailable(rt().block_on(store.ping()), "async ping, system roots");
    }

    #[test]
    fn an_insecure_url_is_refused_by_the_async_store() {
        let err = AsyncRedisStore::open("rediss://127.0.0.1:6380/#insecure").unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
        assert!(AsyncRedisStore::open_tls("redis://127.0.0.1:6380/", None).is_err());
        assert!(AsyncRedisStore::open_tls("rediss://127.0.0.1:6380/", Some(b"no pem")).is_err());
    }
}
