//! What a `RedisStore` costs the Redis it uses: new connections under
//! concurrent load, and memory per session.
//!
//! ```text
//! LATCHKEY_REDIS_URL=redis://127.0.0.1:6379/ cargo run --release --features redis --example redis_costs
//! LATCHKEY_REDIS_URL=redis://127.0.0.1:6379/ cargo run --release --features redis --example redis_costs -- connections 64 5 200
//! LATCHKEY_REDIS_URL=redis://127.0.0.1:6379/ cargo run --release --features redis --example redis_costs -- memory 1000
//! LATCHKEY_REDIS_URL=redis://127.0.0.1:6379/ cargo run --release --features redis-async --example redis_costs -- async 64 5 200
//! ```
//!
//! - `connections THREADS SECONDS THINK_US` (default 64 threads, 5 s,
//!   200 µs): every thread loads and saves (a changed value, so every save
//!   writes) one session of its own, through one shared
//!   `StoreManager<RedisStore>` at its default settings, and spends
//!   `THINK_US` microseconds between the load and the save, off the
//!   store, as a request handler would. Prints the calls made and how many connections Redis
//!   accepted meanwhile (`INFO stats` `total_connections_received`).
//! - `async TASKS SECONDS THINK_US` (feature `redis-async`; default 64
//!   tasks, 5 s, 200 µs): the same load through one `AsyncRedisStore` on
//!   a single-threaded Tokio runtime, at the store level (a `get`, the
//!   pause, a versioned `replace`, as a load and a save do), so every
//!   task shares its one multiplexed connection.
//! - `memory N` (default 1000): creates N sessions, each bound to its own
//!   user with the data `{"user_id":…,"theme":"dark","csrf":"<22 chars>"}`,
//!   saves each once (`theme` changed), and prints Redis's `used_memory` growth per 1000 sessions, then
//!   `MEMORY USAGE` summed over the keys of each kind (records, user sets,
//!   receipts).
//!
//! It writes under a fresh prefix as long as the default `latchkey:` (so
//! the key names cost what they cost by default); everything it writes
//! expires by itself.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use latchkey::{NewSession, RedisStore, SessionId, SessionManager, StoreManager};

fn info_field(con: &mut redis::Connection, section: &str, field: &str) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg(section)
        .query(con)
        .expect("INFO failed");
    info.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in INFO {section}"))
}

fn manager(url: &str) -> (StoreManager<RedisStore>, String) {
    // `lk` and 6 random hex digits: as long as the default prefix.
    let fingerprint = SessionId::generate().fingerprint().to_string();
    let prefix = format!("lk{}:", &fingerprint[..6]);
    assert_eq!(prefix.len(), latchkey::store::redis::DEFAULT_PREFIX.len());
    let store = RedisStore::open(url)
        .expect("bad LATCHKEY_REDIS_URL")
        .with_prefix(prefix.clone());
    (StoreManager::new(store), prefix)
}

fn typical(user: u64) -> NewSession {
    NewSession::new()
        .with_user(format!("user-{user}"))
        .with_value("user_id", &user)
        .and_then(|s| s.with_value("theme", &"dark"))
        .and_then(|s| s.with_value("csrf", &"3q2-7w8AAAAAAAAAAAAAAA"))
        .expect("plain values serialize")
}

fn connections(url: &str, threads: usize, seconds: u64, think: Duration) {
    let (m, _) = manager(url);
    let tokens: Vec<String> = (0..threads)
        .map(|i| {
            m.create(typical(4_200_000 + i as u64))
                .expect("create")
                .token()
                .to_owned()
        })
        .collect();
    let mut con = redis::Client::open(url)
        .and_then(|c| c.get_connection())
        .expect("connect");
    let before = info_field(&mut con, "stats", "total_connections_received");
    let (stop, calls, errors) = (AtomicBool::new(false), AtomicU64::new(0), AtomicU64::new(0));
    let start = Instant::now();
    thread::scope(|s| {
        for token in &tokens {
            let (m, stop, calls, errors) = (&m, &stop, &calls, &errors);
            s.spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let ok = m.load(token).and_then(|loaded| {
                        let mut session = loaded.session;
                        thread::sleep(think);
                        session.insert("n", &n)?;
                        m.save(&mut session)
                    });
                    match ok {
                        Ok(_) => calls.fetch_add(2, Ordering::Relaxed),
                        Err(_) => errors.fetch_add(1, Ordering::Relaxed),
                    };
                }
            });
        }
        thread::sleep(Duration::from_secs(seconds));
        stop.store(true, Ordering::Relaxed);
    });
    let elapsed = start.elapsed().as_secs_f64();
    let after = info_field(&mut con, "stats", "total_connections_received");
    let calls = calls.into_inner();
    println!(
        "connections: {threads} threads, {elapsed:.1} s, {think:?} between load and save: {calls} calls ({:.0}/s), {} errors, \
         Redis accepted {} new connections meanwhile",
        calls as f64 / elapsed,
        errors.into_inner(),
        after - before,
    );
    println!("store after the run: {:?}", m.store());
}

#[cfg(feature = "redis-async")]
fn async_load(url: &str, tasks: usize, seconds: u64, think: Duration) {
    use latchkey::store::{LiveSession, Record, RecordState};
    use latchkey::{AsyncRedisStore, AsyncStore, Clock, SessionData, SystemClock};
    use std::sync::Arc;

    let record = |version: u64, user: u64| -> Record {
        let now = SystemClock.now();
        let mut data = serde_json::Map::new();
        data.insert("user_id".into(), serde_json::json!(user));
        data.insert("theme".into(), serde_json::json!("dark"));
        data.insert("csrf".into(), serde_json::json!("3q2-7w8AAAAAAAAAAAAAAA"));
        Record {
            version,
            expires_at: now.saturating_add(Duration::from_secs(1800)),
            state: RecordState::Live(LiveSession {
                created_at: now,
                last_seen: now,
                auth_at: Some(now),
                absolute_deadline: now.saturating_add(Duration::from_secs(8 * 3600)),
                user: Some(format!("user-{user}")),
                device: None,
                data: SessionData::from_map(data),
            }),
        }
    };
    let fingerprint = SessionId::generate().fingerprint().to_string();
    let store = Arc::new(
        AsyncRedisStore::open(url)
            .expect("bad LATCHKEY_REDIS_URL")
            .with_prefix(format!("lk{}:", &fingerprint[..6])),
    );
    let mut con = redis::Client::open(url)
        .and_then(|c| c.get_connection())
        .expect("connect");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime");
    rt.block_on(store.ping()).expect("ping");
    let before = info_field(&mut con, "stats", "total_connections_received");
    let (calls, errors) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let start = Instant::now();
    rt.block_on(async {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
        let mut set = tokio::task::JoinSet::new();
        for i in 0..tasks as u64 {
            let (store, calls, errors) = (store.clone(), calls.clone(), errors.clone());
            set.spawn(async move {
                let key = SessionId::generate().store_key();
                store
                    .insert(&key, &record(1, 4_200_000 + i))
                    .await
                    .expect("insert");
                let mut version = 1;
                while tokio::time::Instant::now() < deadline {
                    let ok = async {
                        store.get(&key).await?;
                        tokio::time::sleep(think).await;
                        store
                            .replace(&key, version, &record(version + 1, 4_200_000 + i))
                            .await
                    }
                    .await;
                    match ok {
                        Ok(()) => {
                            version += 1;
                            calls.fetch_add(2, Ordering::Relaxed)
                        }
                        Err(_) => errors.fetch_add(1, Ordering::Relaxed),
                    };
                }
            });
        }
        while set.join_next().await.is_some() {}
    });
    let elapsed = start.elapsed().as_secs_f64();
    let after = info_field(&mut con, "stats", "total_connections_received");
    let calls = calls.load(Ordering::Relaxed);
    println!(
        "async: {tasks} tasks, {elapsed:.1} s, {think:?} between get and replace: {calls} calls \
         ({:.0}/s), {} errors, Redis accepted {} new connections meanwhile",
        calls as f64 / elapsed,
        errors.load(Ordering::Relaxed),
        after - before,
    );
}

fn memory(url: &str, n: u64) {
    let (m, prefix) = manager(url);
    let mut con = redis::Client::open(url)
        .and_then(|c| c.get_connection())
        .expect("connect");
    // Warm up: the scripts' cache and the connection, outside the count.
    drop(m.create(NewSession::new()));
    let before = info_field(&mut con, "memory", "used_memory");
    for i in 0..n {
        let issued = m.create(typical(4_200_000 + i)).expect("create");
        // Saved once, as a session in use is: its record then carries the
        // save's mark.
        let mut session = m.load(issued.token()).expect("load").session;
        session.insert("theme", "light").expect("insert");
        m.save(&mut session).expect("save");
    }
    let after = info_field(&mut con, "memory", "used_memory");
    println!(
        "memory: {n} sessions: used_memory grew {} bytes, {:.1} kB per 1000 sessions",
        after.saturating_sub(before),
        after.saturating_sub(before) as f64 * 1000.0 / n as f64 / 1000.0
    );
    let mut by_kind: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
    let mut cursor = 0u64;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query(&mut con)
            .expect("SCAN");
        for k in keys {
            let usage: Option<u64> = redis::cmd("MEMORY")
                .arg("USAGE")
                .arg(&k)
                .arg("SAMPLES")
                .arg(0)
                .query(&mut con)
                .expect("MEMORY USAGE");
            let kind = k[prefix.len()..].split(':').next().unwrap_or("").to_owned();
            let e = by_kind.entry(kind).or_default();
            e.0 += 1;
            e.1 += usage.unwrap_or(0);
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
    let mut total = 0;
    for (kind, (keys, bytes)) in &by_kind {
        total += bytes;
        println!(
            "  {kind}: {keys} keys, MEMORY USAGE {bytes} bytes ({:.1} kB per 1000 sessions)",
            *bytes as f64 / n as f64
        );
    }
    println!(
        "  all: {:.1} kB per 1000 sessions by MEMORY USAGE",
        total as f64 / n as f64
    );
    let sample: Option<String> = redis::cmd("GET")
        .arg({
            let mut c = 0u64;
            loop {
                let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                    .arg(c)
                    .arg("MATCH")
                    .arg(format!("{prefix}session:*"))
                    .arg("COUNT")
                    .arg(1000)
                    .query(&mut con)
                    .expect("SCAN");
                if let Some(k) = keys.into_iter().next() {
                    break k;
                }
                assert!(next != 0, "no record found");
                c = next;
            }
        })
        .query(&mut con)
        .expect("GET");
    if let Some(v) = sample {
        println!("  a record ({} bytes): {v}", v.len());
    }
}

fn main() {
    let url = match std::env::var("LATCHKEY_REDIS_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => {
            eprintln!("set LATCHKEY_REDIS_URL to a Redis URL, e.g. redis://127.0.0.1:6379/");
            std::process::exit(2);
        }
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize, default: u64| -> u64 {
        args.get(i)
            .map(|a| a.parse().expect("a number"))
            .unwrap_or(default)
    };
    match args.first().map(String::as_str) {
        Some("connections") => connections(
            &url,
            num(1, 64) as usize,
            num(2, 5),
            Duration::from_micros(num(3, 200)),
        ),
        Some("memory") => memory(&url, num(1, 1000)),
        #[cfg(feature = "redis-async")]
        Some("async") => async_load(
            &url,
            num(1, 64) as usize,
            num(2, 5),
            Duration::from_micros(num(3, 200)),
        ),
        None => {
            memory(&url, 1000);
            connections(&url, 64, 5, Duration::from_micros(200));
        }
        Some(other) => {
            eprintln!(
                "unknown mode {other}: connections [THREADS SECONDS THINK_US] | async [TASKS SECONDS THINK_US] | memory [N]"
            );
            std::process::exit(2);
        }
    }
}
