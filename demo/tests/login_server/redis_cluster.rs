//! Two demo instances on one Redis Cluster (`--store
//! redis-cluster:URL,URL,…`, feature `redis-cluster`).
//!
//! The two-instance test needs a running cluster, so it is `#[ignore]`d
//! unless asked for (`--include-ignored`): it takes the nodes' URLs,
//! comma-separated, from `LATCHKEY_REDIS_CLUSTER_URLS` and fails, saying
//! so, without them. `.ci/redis-cluster` starts a six-node cluster and runs
//! it.

use super::two_instances_share_sessions;

const URLS_VAR: &str = "LATCHKEY_REDIS_CLUSTER_URLS";

/// The `--store` argument for the cluster in [`URLS_VAR`].
fn cluster_store() -> String {
    match std::env::var(URLS_VAR) {
        Ok(urls) if !urls.trim().is_empty() => format!("redis-cluster:{urls}"),
        _ => panic!(
            "{URLS_VAR} is unset: set it to the comma-separated URLs of a Redis Cluster's \
             nodes, e.g. redis://127.0.0.1:7000/,redis://127.0.0.1:7001/ \
             (bash .ci/redis-cluster starts one and runs this test)"
        ),
    }
}

#[test]
#[ignore = "needs a Redis Cluster in LATCHKEY_REDIS_CLUSTER_URLS; pass --include-ignored (.ci/redis-cluster does)"]
fn two_instances_share_sessions_through_a_redis_cluster() {
    let store = cluster_store();
    let (a, b, other) = two_instances_share_sessions(&store);

    // The log and the footer name the store, never the nodes' URLs.
    let page = a.get("/", Some(&other)).body;
    assert!(page.contains("redis-cluster, "), "{page}");
    let label = b.log_lines("store: ");
    assert!(
        label.iter().any(|l| l.contains("store: redis-cluster")),
        "{label:?}"
    );
    for demo in [&a, &b] {
        let urls = demo.log_lines("redis://");
        assert!(urls.is_empty(), "{urls:?}");
    }
}

#[test]
fn an_unreachable_cluster_is_a_sentence_without_the_password() {
    // Ports nothing listens on: the demo must exit at start, not wait for
    // the first request.
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port()
    };
    let store = format!(
        "redis-cluster:redis://:hunter2@127.0.0.1:{}/,redis://:hunter2@127.0.0.1:{}/",
        free(),
        free()
    );
    let (status, stderr) = super::run_to_exit(&["--port", "0", "--store", &store]);
    assert!(!status.success(), "{status}: {stderr}");
    assert!(stderr.contains("login_server: "), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
