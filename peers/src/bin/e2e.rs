//! End to end through axum: latchkey-tower beside tower-sessions, over the
//! memory store and over Redis, a counter handler, 64 keep-alive
//! connections on loopback.
//!
//! # Running
//!
//! ```sh
//! # every case, 3 interleaved rounds (~4 min with Redis, ~1.5 min without);
//! # records its headline figures for BENCHMARKS.md (see below):
//! LATCHKEY_REDIS_URL=redis://127.0.0.1:6379/ \
//!   cargo run --release -p latchkey-peers --features e2e --bin e2e
//! # a few seconds: one round of 1 s per case, a small one-cookie burst
//! # (records nothing)
//! cargo run --release -p latchkey-peers --features e2e --bin e2e -- --quick
//! ```
//!
//! Three stacks: **latchkey** (latchkey-tower; over Redis the async driver,
//! `SessionLayer::from_async` on `AsyncStoreManager<AsyncRedisStore>`),
//! **latchkey-sync** (Redis only: `SessionLayer::new` on
//! `StoreManager<RedisStore>`, its calls on tokio's blocking pool, kept for
//! comparison) and **tower-sessions**.
//!
//! To see where a server's time goes, run it under a profiler:
//! `E2E_SERVER_WRAPPER="valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.%p"`
//! with `--quick --rounds 1 --stacks latchkey --stores memory --ops
//! increment --one-cookie 0` (the figures printed are then the profiler's,
//! not the server's; the profile is what counts).
//!
//! Without `LATCHKEY_REDIS_URL` the Redis cases are skipped with a notice.
//! With it, both stacks use that Redis (latchkey's keys under a prefix of
//! their own per case; tower-sessions' keys are bare session IDs); nothing
//! is flushed.
//!
//! Flags (all optional): `--quick`, `--duration SECS` (5), `--warmup SECS`
//! (1), `--rounds N` (3), `--sessions N` (1000), `--connections N` (64),
//! `--one-cookie N` (requests per connection in the one-cookie test, 20),
//! `--stores memory,redis`, `--ops increment,read`,
//! `--stacks latchkey,latchkey-sync,tower-sessions`, `--port P` (the
//! server's port on 127.0.0.1; 0, the default, lets the system choose),
//! `--server-cpu I` (0) and `--client-cpu I` (1) (indexes among the CPUs
//! this process may use; `--server-cpu none` leaves both unpinned),
//! `--workers N` (the server's tokio worker threads, 1),
//! `--one-cookie-workers N` (the same for the one-cookie test, 2),
//! `--max-attempts N` (latchkey's attempts for a conflicting save; its
//! default unless given), `--latchkey-redis-idle N` (latchkey-sync's
//! `RedisStore::with_max_idle_connections`; its default unless given),
//! `--out PATH` (the JSON file; default
//! `$CARGO_TARGET_DIR/e2e.json`, else `target/e2e.json`).
//!
//! # What it does
//!
//! Each case starts a fresh server: this binary again, as `e2e serve` (see
//! `peers/src/e2e/server.rs` for the routes and the two stacks), pinned to
//! one CPU with all its threads (the tokio worker, tokio's blocking pool,
//! fred's tasks). The driver, pinned to the other CPU, is the load client:
//! one current-thread tokio runtime, raw HTTP/1.1 keep-alive over
//! `TcpStream`, every request rendered up front
//! (`peers/src/e2e/client.rs`). It
//!
//! 1. logs in `--sessions` users through the stack's own login route
//!    (`POST /login/user{i}`), collecting the cookies;
//! 2. runs `--connections` connections, each sending requests back to back,
//!    each request with the cookie of a session picked at random: `GET
//!    /counter` (**read**: load the session, read the counter) or `POST
//!    /counter` (**increment**: load, add 1, save). Every request carries
//!    `Sec-Fetch-Site: same-origin` (latchkey's origin check wants it on a
//!    POST; tower-sessions ignores it). The first `--warmup` seconds are not
//!    counted; then `--duration` seconds are;
//! 3. reads the server's CPU time and memory from `/proc`, and closes the
//!    server's standard input, on which it exits.
//!
//! The **one-cookie test** logs one user in, opens `--connections`
//! connections, and has each send `--one-cookie` increments back to back
//! on that one cookie, all starting together; then it reads the counter.
//! Every 200 answered an increment that should have landed: `lost` = 200s
//! minus the final counter. latchkey answers 409 when a save still
//! conflicts after its attempts (the client then knows it did not land);
//! tower-sessions has no versions, so its concurrent saves overwrite each
//! other and increments are lost silently. This test's server runs
//! `--one-cookie-workers` worker threads (2), unpinned: on one worker
//! thread a memory-store request never yields between loading and saving
//! the session, so no two can race, which would hide the lost updates any
//! multi-core server shows (Redis round trips interleave requests even on
//! one thread).
//!
//! Rounds interleave the stacks: within each round every case runs once for
//! each stack, back to back, the stacks' order rotating by one each round
//! (latchkey first in round 1, latchkey-sync in round 2, tower-sessions in
//! round 3), so a slow spell of the shared machine
//! falls on both. Each figure reported is the median over rounds, taken per
//! figure (one-cookie counts are summed over rounds).
//!
//! # What each number means
//!
//! - **req/s**: requests answered in the counted window (any status) over
//!   the window's wall time (from its start until the last counted request
//!   has its answer).
//! - **p50, p99**: latency of each counted request as the client saw it,
//!   from just before its bytes are written until its whole response is
//!   read, over all connections (a log-linear histogram, buckets 1.6% wide).
//! - **CPU/req**: the server process's user + system CPU time over the
//!   counted window (`/proc/<pid>/stat`, all its threads, 10 ms ticks)
//!   divided by the requests counted. **redis CPU/req**: the same for the
//!   redis-server process (its pid from `INFO server`; absent when that
//!   cannot be read, e.g. a Redis behind a password).
//! - **CPU util**: that CPU time over the window's wall time (1.0 = one
//!   CPU busy throughout); for the client too, so a saturated client shows.
//!   A server pinned to one CPU that stays well under 1.0 while 64
//!   requests are in flight was waiting (on Redis) or was starved by other
//!   processes on its CPU: on a shared machine, compare CPU/req, which
//!   holds steadier than req/s.
//! - **RSS**: the server's `VmRSS` at the end of the window, and `VmHWM`
//!   (its peak), in KiB, 1000 sessions live.
//! - **switches/req**: context switches (voluntary and involuntary) of
//!   the server's threads over the window, per request
//!   (`/proc/<pid>/task/*/status`; threads that exit in the window are not
//!   counted), and **threads**: how many the server has at the end (tokio's
//!   blocking pool grows with the store calls in flight).
//! - **non-200**: responses of another status, and requests without a
//!   response (status `0`: a broken connection, a response this client
//!   cannot read), summed over rounds; a case with any is suspect.
//!
//! # The results file
//!
//! A full run (not `--quick`) records through `latchkey_peers::results`
//! (BENCHMARKS.md's table, `report`): `e2e_axum_rps_{memory,redis}` and
//! `e2e_axum_p99_{memory,redis}` (the increment case, latchkey beside
//! tower-sessions), `e2e_axum_rps_redis_sync` (latchkey-sync beside
//! tower-sessions), and from the one-cookie test
//! `e2e_axum_lost_{memory,redis}` and `e2e_axum_409_{memory,redis}` (409s
//! per 100 requests).
//!
//! # The JSON file
//!
//! Written anew by each run. One object: `"harness": "e2e"`, `"format": 1`,
//! `"config"`, `"cases"` and `"one_cookie"`. A figure that could not be
//! measured is `null`.
//!
//! - `config`: `duration_s`, `warmup_s`, `rounds`, `sessions`,
//!   `connections`, `one_cookie_per_connection`, `port`, `server_cpu`,
//!   `client_cpu` (null: unpinned), `server_workers`, `one_cookie_workers`,
//!   `max_attempts`, `latchkey_redis_idle` (null: latchkey's defaults), and
//!   `redis` (whether the Redis cases ran).
//!
//! - `cases[]`: `stack` (`"latchkey"` | `"latchkey-sync"` |
//!   `"tower-sessions"`), `store`
//!   (`"memory"` | `"redis"`), `op` (`"increment"` | `"read"`), `median`
//!   {`rps`, `p50_us`, `p99_us`, `cpu_us_per_req`, `server_cpu_util`,
//!   `rss_kib`, `hwm_kib`, `redis_cpu_us_per_req` (null without Redis or
//!   its pid), `client_cpu_util`, `switches_per_req`, `threads`}, `non_200`
//!   (summed over rounds), and
//!   `rounds[]` with the same figures for each round plus `requests`,
//!   `seconds` and `statuses` (a map from status, as a string, to count).
//! - `one_cookie[]`: `stack`, `store`, summed over rounds: `requests`,
//!   `ok` (200s), `conflicts` (409s), `other` (any other status, or none),
//!   `landed` (the final counters added up), `lost` (`ok - landed`),
//!   `conflict_pct` (409s per 100 requests); and `rounds[]` with, for each
//!   round, those counts plus `final_counter`, `seconds`, `p50_us`,
//!   `p99_us` and `statuses`.
#![deny(missing_docs)]

#[path = "../e2e/client.rs"]
mod client;
#[path = "../e2e/server.rs"]
mod server;

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::client::Tally;
use crate::server::{Stack, Store};

/// Which request the load sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Increment,
    Read,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Increment => "increment",
            Op::Read => "read",
        }
    }
}

/// The driver's settings.
#[derive(Clone, Debug, Serialize)]
struct Config {
    duration_s: f64,
    warmup_s: f64,
    rounds: usize,
    sessions: usize,
    connections: usize,
    one_cookie_per_connection: usize,
    #[serde(skip)]
    stores: Vec<Store>,
    #[serde(skip)]
    ops: Vec<Op>,
    #[serde(skip)]
    stacks: Vec<Stack>,
    port: u16,
    server_cpu: Option<usize>,
    client_cpu: Option<usize>,
    server_workers: usize,
    one_cookie_workers: usize,
    max_attempts: Option<u32>,
    latchkey_redis_idle: Option<usize>,
    redis: bool,
    #[serde(skip)]
    redis_url: Option<String>,
    #[serde(skip)]
    out: PathBuf,
    /// Whether to record the headline figures (not after `--quick`).
    #[serde(skip)]
    record: bool,
    /// The machine, as recorded (taken before the driver pins itself).
    #[serde(skip)]
    machine: String,
}

fn usage(message: &str) -> ! {
    eprintln!("e2e: {message}\n(see the module docs of peers/src/bin/e2e.rs for the flags)");
    std::process::exit(2)
}

impl Config {
    fn parse(args: &[String]) -> Config {
        let out = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("target"))
            .join("e2e.json");
        let mut c = Config {
            duration_s: 5.0,
            warmup_s: 1.0,
            rounds: 3,
            sessions: 1000,
            connections: 64,
            one_cookie_per_connection: 20,
            stores: vec![Store::Memory, Store::Redis],
            ops: vec![Op::Increment, Op::Read],
            stacks: Stack::ALL.to_vec(),
            port: 0,
            server_cpu: Some(0),
            client_cpu: Some(1),
            server_workers: 1,
            one_cookie_workers: 2,
            max_attempts: None,
            latchkey_redis_idle: None,
            redis: false,
            redis_url: std::env::var("LATCHKEY_REDIS_URL")
                .ok()
                .filter(|u| !u.is_empty()),
            out,
            record: true,
            machine: latchkey_peers::results::machine(),
        };
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            if flag == "--quick" {
                c.duration_s = 1.0;
                c.warmup_s = 0.3;
                c.rounds = 1;
                c.one_cookie_per_connection = 4;
                c.record = false;
                continue;
            }
            let Some(value) = it.next() else {
                usage(&format!("{flag} needs a value"))
            };
            let bad = || -> ! { usage(&format!("bad value for {flag}: {value}")) };
            let num = |v: &str| v.parse::<usize>().unwrap_or_else(|_| bad());
            let secs = |v: &str| {
                v.parse::<f64>()
                    .ok()
                    .filter(|s| s.is_finite() && *s >= 0.0)
                    .unwrap_or_else(|| bad())
            };
            match flag.as_str() {
                "--duration" => c.duration_s = secs(value).max(0.1),
                "--warmup" => c.warmup_s = secs(value),
                "--rounds" => c.rounds = num(value).max(1),
                "--sessions" => c.sessions = num(value).max(1),
                "--connections" => c.connections = num(value).max(1),
                "--one-cookie" => c.one_cookie_per_connection = num(value),
                "--port" => c.port = value.parse().unwrap_or_else(|_| bad()),
                "--server-cpu" if value == "none" => {
                    c.server_cpu = None;
                    c.client_cpu = None;
                }
                "--server-cpu" => c.server_cpu = Some(num(value)),
                "--client-cpu" => c.client_cpu = Some(num(value)),
                "--workers" => c.server_workers = num(value).max(1),
                "--one-cookie-workers" => c.one_cookie_workers = num(value).max(1),
                "--max-attempts" => {
                    c.max_attempts = Some(u32::try_from(num(value)).unwrap_or_else(|_| bad()))
                }
                "--latchkey-redis-idle" => c.latchkey_redis_idle = Some(num(value)),
                "--out" => c.out = PathBuf::from(value),
                "--stores" => {
                    c.stores = value
                        .split(',')
                        .map(|s| Store::parse(s).unwrap_or_else(|| bad()))
                        .collect();
                }
                "--stacks" => {
                    c.stacks = value
                        .split(',')
                        .map(|s| Stack::parse(s).unwrap_or_else(|| bad()))
                        .collect();
                }
                "--ops" => {
                    c.ops = value
                        .split(',')
                        .map(|s| match s {
                            "increment" => Op::Increment,
                            "read" => Op::Read,
                            _ => bad(),
                        })
                        .collect();
                }
                _ => usage(&format!("unknown flag {flag}")),
            }
        }
        if c.stores.contains(&Store::Redis) {
            if c.redis_url.is_some() {
                c.redis = true;
            } else {
                eprintln!("e2e: LATCHKEY_REDIS_URL is not set: the Redis cases are skipped");
                c.stores.retain(|s| *s != Store::Redis);
            }
        }
        c
    }
}

/// The figures of one case in one round.
#[derive(Clone, Debug, Serialize)]
struct CaseRound {
    round: usize,
    rps: f64,
    p50_us: f64,
    p99_us: f64,
    cpu_us_per_req: f64,
    server_cpu_util: f64,
    rss_kib: u64,
    hwm_kib: u64,
    redis_cpu_us_per_req: Option<f64>,
    client_cpu_util: f64,
    switches_per_req: f64,
    threads: u64,
    requests: u64,
    seconds: f64,
    statuses: BTreeMap<String, u64>,
}

/// Medians over rounds, per figure.
#[derive(Debug, Serialize)]
struct Median {
    rps: f64,
    p50_us: f64,
    p99_us: f64,
    cpu_us_per_req: f64,
    server_cpu_util: f64,
    rss_kib: f64,
    hwm_kib: f64,
    redis_cpu_us_per_req: Option<f64>,
    client_cpu_util: f64,
    switches_per_req: f64,
    threads: f64,
}

#[derive(Debug, Serialize)]
struct CaseResult {
    stack: &'static str,
    store: &'static str,
    op: &'static str,
    median: Median,
    non_200: u64,
    rounds: Vec<CaseRound>,
}

#[derive(Clone, Debug, Serialize)]
struct OneCookieRound {
    round: usize,
    requests: u64,
    ok: u64,
    conflicts: u64,
    other: u64,
    final_counter: u64,
    lost: i64,
    seconds: f64,
    p50_us: f64,
    p99_us: f64,
    statuses: BTreeMap<String, u64>,
}

#[derive(Debug, Serialize)]
struct OneCookieResult {
    stack: &'static str,
    store: &'static str,
    requests: u64,
    ok: u64,
    conflicts: u64,
    other: u64,
    landed: u64,
    lost: i64,
    conflict_pct: f64,
    rounds: Vec<OneCookieRound>,
}

#[derive(Debug, Serialize)]
struct Results {
    harness: &'static str,
    format: u32,
    config: Config,
    cases: Vec<CaseResult>,
    one_cookie: Vec<OneCookieResult>,
}

/// A server process of this binary (`e2e serve`), exiting when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    /// `one_cookie`: the one-cookie test's server (its worker threads,
    /// unpinned) instead of the load cases' (pinned).
    fn start(c: &Config, stack: Stack, store: Store, tag: &str, one_cookie: bool) -> Server {
        let (workers, cpu) = if one_cookie {
            (c.one_cookie_workers, None)
        } else {
            (c.server_workers, c.server_cpu)
        };
        let exe = std::env::current_exe().unwrap_or_else(|e| usage(&format!("where am I? {e}")));
        // E2E_SERVER_WRAPPER: a command to run the server under, e.g.
        // `valgrind --tool=callgrind` (words split on spaces).
        let wrapper = std::env::var("E2E_SERVER_WRAPPER").unwrap_or_default();
        let mut words = wrapper.split_whitespace();
        let mut cmd = match words.next() {
            Some(program) => {
                let mut cmd = Command::new(program);
                cmd.args(words).arg(exe);
                cmd
            }
            None => Command::new(exe),
        };
        cmd.arg("serve")
            .args(["--stack", stack.name(), "--store", store.name()])
            .args(["--port", &c.port.to_string()])
            .args(["--workers", &workers.to_string()])
            .args([
                "--prefix",
                &format!("latchkey-e2e:{}:{tag}:", std::process::id()),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(cpu) = cpu {
            cmd.args(["--cpu", &cpu.to_string()]);
        }
        if let Some(n) = c.max_attempts {
            cmd.args(["--max-attempts", &n.to_string()]);
        }
        if let Some(n) = c.latchkey_redis_idle {
            cmd.args(["--redis-idle", &n.to_string()]);
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the server: {e}"));
        let Some(stdout) = child.stdout.take() else {
            panic!("the server's stdout is not piped")
        };
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let port: u16 = match line.trim().strip_prefix("listening ").map(str::parse) {
            Some(Ok(p)) => p,
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the {} server over {} did not start (it said {line:?})",
                    stack.name(),
                    store.name()
                )
            }
        };
        Server {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Closing its stdin tells it to exit.
        drop(self.child.stdin.take());
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        // Our own child, by its handle.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// User + system CPU time of process `pid`, all threads, from
/// `/proc/<pid>/stat` (in ticks of 1/100 s, Linux's `USER_HZ`).
fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: the fields start after its ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 (utime) and 15 (stime), counting from 1 at the pid.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

/// `VmRSS` and `VmHWM` of process `pid`, in KiB.
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Context switches (voluntary and not) of every live thread of process
/// `pid`, and how many threads it has.
fn switches(pid: u32) -> (u64, u64) {
    let mut total = 0;
    let mut threads = 0;
    if let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for task in dir.flatten() {
            threads += 1;
            let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
            for line in status.lines() {
                if let Some(v) = line
                    .strip_prefix("voluntary_ctxt_switches:")
                    .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"))
                {
                    total += v.trim().parse::<u64>().unwrap_or(0);
                }
            }
        }
    }
    (total, threads)
}

/// redis-server's pid, from `INFO server` over a plain connection to the
/// URL's host and port; `None` if that does not work (a password, TLS).
fn redis_pid(url: &str) -> Option<u32> {
    let rest = url.strip_prefix("redis://")?;
    let authority = rest.split('/').next()?;
    if authority.contains('@') {
        return None;
    }
    let addr = if authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:6379")
    };
    let addr: SocketAddr = std::net::ToSocketAddrs::to_socket_addrs(&addr)
        .ok()?
        .next()?;
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    s.write_all(b"*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n").ok()?;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(11).any(|w| w == b"process_id:") || !got.ends_with(b"\r\n") {
        let n = s.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got);
    text.lines()
        .find_map(|l| l.strip_prefix("process_id:"))
        .and_then(|v| v.trim().parse().ok())
}

fn statuses(t: &Tally) -> BTreeMap<String, u64> {
    t.statuses
        .iter()
        .map(|(s, n)| (s.to_string(), *n))
        .collect()
}

fn client_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("no tokio runtime: {e}"))
}

/// Snapshot of CPU times at the start or end of a window.
#[derive(Clone, Copy)]
struct Cpu {
    server: Option<Duration>,
    switches: u64,
    redis: Option<Duration>,
    client: Option<Duration>,
}

fn cpu_now(server: u32, redis: Option<u32>) -> Cpu {
    Cpu {
        server: cpu_time(server),
        switches: switches(server).0,
        redis: redis.and_then(cpu_time),
        client: cpu_time(std::process::id()),
    }
}

fn per_req_us(a: Option<Duration>, b: Option<Duration>, requests: u64) -> Option<f64> {
    let d = b?.checked_sub(a?)?;
    Some(d.as_secs_f64() * 1e6 / requests.max(1) as f64)
}

fn util(a: Option<Duration>, b: Option<Duration>, wall: Duration) -> f64 {
    match (a, b) {
        (Some(a), Some(b)) => b.saturating_sub(a).as_secs_f64() / wall.as_secs_f64().max(1e-9),
        _ => f64::NAN,
    }
}

fn run_case(
    c: &Config,
    rt: &tokio::runtime::Runtime,
    stack: Stack,
    store: Store,
    op: Op,
    round: usize,
    redis: Option<u32>,
) -> CaseRound {
    let tag = format!("r{round}-{}-{}", store.name(), op.name());
    let server = Server::start(c, stack, store, &tag, false);
    let (addr, pid) = (server.addr, server.pid());
    let local = tokio::task::LocalSet::new();
    let (tally, start, end, wall) = local.block_on(rt, async move {
        let cookies = client::seed(addr, c.sessions, c.connections).await;
        let requests: Vec<Vec<u8>> = cookies
            .iter()
            .map(|k| client::counter_request(k, op == Op::Increment))
            .collect();
        // A logged-in read first: a stack that does not recognise its own
        // cookies would otherwise be timed answering 401s.
        let mut probe = client::Conn::new(addr);
        match probe
            .send(&client::counter_request(&cookies[0], false))
            .await
        {
            Ok(r) if r.status == 200 => {}
            Ok(r) => panic!(
                "{} over {}: a seeded cookie reads {}",
                stack.name(),
                store.name(),
                r.status
            ),
            Err(e) => panic!("{} over {}: {e}", stack.name(), store.name()),
        }
        drop(probe);
        let measure_from = Instant::now() + Duration::from_secs_f64(c.warmup_s);
        client::load(
            addr,
            Rc::new(requests),
            c.connections,
            measure_from,
            Duration::from_secs_f64(c.duration_s),
            move || cpu_now(pid, redis),
            || cpu_now(pid, redis),
        )
        .await
    });
    let (rss_kib, hwm_kib) = memory_kib(pid);
    let threads = switches(pid).1;
    drop(server);
    let requests = tally.requests();
    CaseRound {
        round,
        rps: requests as f64 / wall.as_secs_f64(),
        p50_us: tally.latency.quantile_us(0.50),
        p99_us: tally.latency.quantile_us(0.99),
        cpu_us_per_req: per_req_us(start.server, end.server, requests).unwrap_or(f64::NAN),
        server_cpu_util: util(start.server, end.server, wall),
        rss_kib,
        hwm_kib,
        redis_cpu_us_per_req: per_req_us(start.redis, end.redis, requests),
        client_cpu_util: util(start.client, end.client, wall),
        switches_per_req: end.switches.saturating_sub(start.switches) as f64
            / requests.max(1) as f64,
        threads,
        requests,
        seconds: wall.as_secs_f64(),
        statuses: statuses(&tally),
    }
}

fn run_one_cookie(
    c: &Config,
    rt: &tokio::runtime::Runtime,
    stack: Stack,
    store: Store,
    round: usize,
) -> OneCookieRound {
    let server = Server::start(
        c,
        stack,
        store,
        &format!("r{round}-{}-one", store.name()),
        true,
    );
    let addr = server.addr;
    let local = tokio::task::LocalSet::new();
    let (tally, wall, final_counter) = local.block_on(rt, async move {
        let cookies = client::seed(addr, 1, 1).await;
        let (tally, wall) = client::burst(
            addr,
            Rc::new(client::counter_request(&cookies[0], true)),
            c.connections,
            c.one_cookie_per_connection,
        )
        .await;
        let mut conn = client::Conn::new(addr);
        let r = match conn
            .send(&client::counter_request(&cookies[0], false))
            .await
        {
            Ok(r) if r.status == 200 => r,
            Ok(r) => panic!(
                "{} over {}: the final read answered {}",
                stack.name(),
                store.name(),
                r.status
            ),
            Err(e) => panic!(
                "{} over {}: the final read failed: {e}",
                stack.name(),
                store.name()
            ),
        };
        let counter: u64 = String::from_utf8_lossy(&r.body)
            .trim()
            .parse()
            .unwrap_or_else(|_| {
                panic!(
                    "{} over {}: the counter reads {:?}",
                    stack.name(),
                    store.name(),
                    r.body
                )
            });
        (tally, wall, counter)
    });
    drop(server);
    let requests = tally.requests();
    let ok = tally.count(200);
    let conflicts = tally.count(409);
    OneCookieRound {
        round,
        requests,
        ok,
        conflicts,
        other: requests - ok - conflicts,
        final_counter,
        lost: ok as i64 - final_counter as i64,
        seconds: wall.as_secs_f64(),
        p50_us: tally.latency.quantile_us(0.50),
        p99_us: tally.latency.quantile_us(0.99),
        statuses: statuses(&tally),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| !x.is_nan());
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn summarize(stack: Stack, store: Store, op: Op, rounds: Vec<CaseRound>) -> CaseResult {
    let m = |f: fn(&CaseRound) -> f64| median(rounds.iter().map(f).collect());
    let redis = rounds
        .iter()
        .filter_map(|r| r.redis_cpu_us_per_req)
        .collect::<Vec<_>>();
    CaseResult {
        stack: stack.name(),
        store: store.name(),
        op: op.name(),
        median: Median {
            rps: m(|r| r.rps),
            p50_us: m(|r| r.p50_us),
            p99_us: m(|r| r.p99_us),
            cpu_us_per_req: m(|r| r.cpu_us_per_req),
            server_cpu_util: m(|r| r.server_cpu_util),
            rss_kib: m(|r| r.rss_kib as f64),
            hwm_kib: m(|r| r.hwm_kib as f64),
            redis_cpu_us_per_req: (!redis.is_empty()).then(|| median(redis)),
            client_cpu_util: m(|r| r.client_cpu_util),
            switches_per_req: m(|r| r.switches_per_req),
            threads: m(|r| r.threads as f64),
        },
        non_200: rounds
            .iter()
            .map(|r| r.requests - r.statuses.get("200").copied().unwrap_or(0))
            .sum(),
        rounds,
    }
}

fn summarize_one(stack: Stack, store: Store, rounds: Vec<OneCookieRound>) -> OneCookieResult {
    let sum = |f: fn(&OneCookieRound) -> u64| rounds.iter().map(f).sum::<u64>();
    let requests = sum(|r| r.requests);
    let conflicts = sum(|r| r.conflicts);
    OneCookieResult {
        stack: stack.name(),
        store: store.name(),
        requests,
        ok: sum(|r| r.ok),
        conflicts,
        other: sum(|r| r.other),
        landed: sum(|r| r.final_counter),
        lost: rounds.iter().map(|r| r.lost).sum(),
        conflict_pct: conflicts as f64 * 100.0 / requests.max(1) as f64,
        rounds,
    }
}

/// The stacks in round `round`'s order: each round starts one further
/// along, so over 3 rounds each stack runs once in each place.
fn order(round: usize) -> [Stack; 3] {
    let mut all = Stack::ALL;
    all.rotate_left(round % Stack::ALL.len());
    all
}

fn k(x: f64) -> String {
    if x.is_nan() {
        "–".into()
    } else if x >= 1000.0 {
        format!("{:.1}k", x / 1000.0)
    } else {
        format!("{x:.0}")
    }
}

fn ms(us: f64) -> String {
    if us.is_nan() {
        "–".into()
    } else {
        format!("{:.2}", us / 1000.0)
    }
}

fn opt(x: Option<f64>) -> String {
    x.filter(|x| !x.is_nan())
        .map_or("–".into(), |x| format!("{x:.1}"))
}

fn print_tables(r: &Results) {
    let c = &r.config;
    println!(
        "\n### End to end through axum ({} sessions, {} connections, {} s × {} rounds, server on {} worker thread(s){})\n",
        c.sessions,
        c.connections,
        c.duration_s,
        c.rounds,
        c.server_workers,
        c.server_cpu
            .map_or(", unpinned".into(), |i| format!(", pinned to CPU {i}"))
    );
    let find = |stack: &str, store: Store, op: Op| {
        r.cases
            .iter()
            .find(|x| x.stack == stack && x.store == store.name() && x.op == op.name())
    };
    // Each cell: ours / theirs, "–" for a stack that did not run.
    let pair =
        |a: Option<&CaseResult>, b: Option<&CaseResult>, f: &dyn Fn(&CaseResult) -> String| {
            let cell = |x: Option<&CaseResult>| x.map_or("–".into(), f);
            format!("{} / {}", cell(a), cell(b))
        };
    let ratio = |a: Option<&CaseResult>, b: Option<&CaseResult>, f: fn(&Median) -> f64| match (a, b)
    {
        (Some(a), Some(b)) => format!("{:.2}×", f(&a.median) / f(&b.median)),
        _ => "–".into(),
    };
    let mut rows = Vec::new();
    for &store in &c.stores {
        for &op in &c.ops {
            for ours in ["latchkey", "latchkey-sync"] {
                let (a, b) = (find(ours, store, op), find("tower-sessions", store, op));
                if a.is_some() || (ours == "latchkey" && b.is_some()) {
                    rows.push((store, op, ours, a, b));
                }
            }
        }
    }
    println!(
        "| store | op | ours | req/s (ours / tower-sessions) | ratio | p50 ms | p99 ms | p99 ratio | server CPU µs/req | redis CPU µs/req | RSS MiB | non-200 |"
    );
    println!("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for &(store, op, ours, a, b) in &rows {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            store.name(),
            op.name(),
            ours,
            pair(a, b, &|x| k(x.median.rps)),
            ratio(a, b, |m| m.rps),
            pair(a, b, &|x| ms(x.median.p50_us)),
            pair(a, b, &|x| ms(x.median.p99_us)),
            ratio(a, b, |m| m.p99_us),
            pair(a, b, &|x| format!("{:.1}", x.median.cpu_us_per_req)),
            pair(a, b, &|x| opt(x.median.redis_cpu_us_per_req)),
            pair(a, b, &|x| format!("{:.1}", x.median.rss_kib / 1024.0)),
            pair(a, b, &|x| x.non_200.to_string()),
        );
    }
    println!(
        "
The server's side (ours / tower-sessions, medians):
"
    );
    println!(
        "| store | op | ours | server CPU util | context switches/req | threads | client CPU util |"
    );
    println!("|---|---|---|---:|---:|---:|---:|");
    for &(store, op, ours, a, b) in &rows {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} |",
            store.name(),
            op.name(),
            ours,
            pair(a, b, &|x| format!("{:.2}", x.median.server_cpu_util)),
            pair(a, b, &|x| format!("{:.1}", x.median.switches_per_req)),
            pair(a, b, &|x| format!("{:.0}", x.median.threads)),
            pair(a, b, &|x| format!("{:.2}", x.median.client_cpu_util)),
        );
    }
    if !r.one_cookie.is_empty() {
        println!(
            "\n{} concurrent increments × {} each on one cookie, summed over {} round(s); server on {} worker thread(s), unpinned:\n",
            c.connections, c.one_cookie_per_connection, c.rounds, c.one_cookie_workers
        );
        println!("| store | stack | requests | 200 | 409 | other | landed | lost | 409 % |");
        println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
        for o in &r.one_cookie {
            println!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {:.1}% |",
                o.store,
                o.stack,
                o.requests,
                o.ok,
                o.conflicts,
                o.other,
                o.landed,
                o.lost,
                o.conflict_pct
            );
        }
    }
}

/// Records the headline figures in the results file
/// (`latchkey_peers::results`), for BENCHMARKS.md's table: per store, the
/// increment case's req/s and p99 (latchkey, the async driver over Redis,
/// beside tower-sessions; the sync driver's req/s as a row of its own), and
/// the one-cookie test's lost increments and 409 share.
fn record_figures(r: &Results) {
    use latchkey_peers::results::{Figure, record};
    let c = &r.config;
    let how = format!(
        "median of {} interleaved rounds of {} s, {} connections, {} sessions, server on 1 pinned CPU",
        c.rounds, c.duration_s, c.connections, c.sessions
    );
    let case = |stack: &str, store: &str| {
        r.cases
            .iter()
            .find(|x| x.stack == stack && x.store == store && x.op == "increment")
    };
    let figure = |ours: Option<f64>, peer: Option<f64>, how: &str| Figure {
        latchkey: ours.filter(|v| v.is_finite()),
        peer: peer.filter(|v| v.is_finite()),
        how: how.to_owned(),
        machine: c.machine.clone(),
        ..Figure::default()
    };
    for store in ["memory", "redis"] {
        let (ours, theirs) = (case("latchkey", store), case("tower-sessions", store));
        if let (Some(a), Some(b)) = (ours, theirs) {
            let (a, b) = (&a.median, &b.median);
            record(
                &format!("e2e_axum_rps_{store}"),
                figure(Some(a.rps), Some(b.rps), &how),
            );
            record(
                &format!("e2e_axum_p99_{store}"),
                figure(Some(a.p99_us * 1e3), Some(b.p99_us * 1e3), &how),
            );
        }
        if store == "redis"
            && let (Some(a), Some(b)) = (case("latchkey-sync", store), theirs)
        {
            record(
                "e2e_axum_rps_redis_sync",
                figure(Some(a.median.rps), Some(b.median.rps), &how),
            );
        }
        let one = |stack: &str| {
            r.one_cookie
                .iter()
                .find(|o| o.stack == stack && o.store == store)
        };
        if let Some(a) = one("latchkey") {
            let how = format!(
                "{} connections × {} increments on one cookie, summed over {} rounds, server on {} unpinned workers",
                c.connections, c.one_cookie_per_connection, c.rounds, c.one_cookie_workers
            );
            let peer = one("tower-sessions");
            record(
                &format!("e2e_axum_lost_{store}"),
                figure(Some(a.lost as f64), peer.map(|p| p.lost as f64), &how),
            );
            record(
                &format!("e2e_axum_409_{store}"),
                figure(Some(a.conflict_pct), peer.map(|p| p.conflict_pct), &how),
            );
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("serve") {
        match server::ServeArgs::parse(&args[1..]) {
            Ok(a) => server::serve(a),
            Err(e) => usage(&e),
        }
    }
    let c = Config::parse(&args);
    if let Some(cpu) = c.client_cpu {
        latchkey_peers::pin_to_cpu(cpu);
    }
    let redis = match (&c.redis_url, c.redis) {
        (Some(url), true) => {
            let pid = redis_pid(url);
            if pid.is_none() {
                eprintln!(
                    "e2e: redis-server's pid is unknown (INFO failed): its CPU is not reported"
                );
            }
            pid
        }
        _ => None,
    };
    let rt = client_runtime();
    let mut cases: BTreeMap<(usize, usize, usize), Vec<CaseRound>> = BTreeMap::new();
    let mut ones: BTreeMap<(usize, usize), Vec<OneCookieRound>> = BTreeMap::new();
    let stack_index = |s: Stack| Stack::ALL.iter().position(|x| *x == s).unwrap_or(0);
    for round in 0..c.rounds {
        for (si, &store) in c.stores.iter().enumerate() {
            let redis = redis.filter(|_| store == Store::Redis);
            for (oi, &op) in c.ops.iter().enumerate() {
                for stack in order(round)
                    .into_iter()
                    .filter(|s| c.stacks.contains(s) && s.runs_on(store))
                {
                    let r = run_case(&c, &rt, stack, store, op, round, redis);
                    eprintln!(
                        "round {}/{} {} {} {}: {} req/s, p50 {} ms, p99 {} ms, {:.1} µs CPU/req, RSS {} KiB, non-200 {}",
                        round + 1,
                        c.rounds,
                        store.name(),
                        op.name(),
                        stack.name(),
                        k(r.rps),
                        ms(r.p50_us),
                        ms(r.p99_us),
                        r.cpu_us_per_req,
                        r.rss_kib,
                        r.requests - r.statuses.get("200").copied().unwrap_or(0)
                    );
                    cases
                        .entry((si, oi, stack_index(stack)))
                        .or_default()
                        .push(r);
                }
            }
        }
        if c.one_cookie_per_connection > 0 {
            for (si, &store) in c.stores.iter().enumerate() {
                for stack in order(round)
                    .into_iter()
                    .filter(|s| c.stacks.contains(s) && s.runs_on(store))
                {
                    let r = run_one_cookie(&c, &rt, stack, store, round);
                    eprintln!(
                        "round {}/{} {} one cookie {}: {} requests, {} ok, {} 409, {} other, counter {}, lost {}",
                        round + 1,
                        c.rounds,
                        store.name(),
                        stack.name(),
                        r.requests,
                        r.ok,
                        r.conflicts,
                        r.other,
                        r.final_counter,
                        r.lost
                    );
                    ones.entry((si, stack_index(stack))).or_default().push(r);
                }
            }
        }
    }
    let stacks = Stack::ALL;
    let results = Results {
        harness: "e2e",
        format: 1,
        cases: cases
            .into_iter()
            .map(|((si, oi, k), rounds)| summarize(stacks[k], c.stores[si], c.ops[oi], rounds))
            .collect(),
        one_cookie: ones
            .into_iter()
            .map(|((si, k), rounds)| summarize_one(stacks[k], c.stores[si], rounds))
            .collect(),
        config: c,
    };
    print_tables(&results);
    if results.config.record {
        record_figures(&results);
    }
    let out = &results.config.out;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = std::fs::create_dir_all(dir);
    }
    match serde_json::to_string_pretty(&results) {
        Ok(json) => match std::fs::write(out, json + "\n") {
            Ok(()) => println!("\nResults: {}", out.display()),
            Err(e) => eprintln!("e2e: cannot write {}: {e}", out.display()),
        },
        Err(e) => eprintln!("e2e: cannot encode the results: {e}"),
    }
}
