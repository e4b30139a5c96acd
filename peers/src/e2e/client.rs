//! The load client: HTTP/1.1 keep-alive over plain `TcpStream`s on one
//! current-thread tokio runtime, requests rendered once up front, and a
//! fixed log-linear latency histogram.
//!
//! It speaks just enough HTTP for the two servers: a status line, headers,
//! and a `Content-Length` body (axum sets it on every response here); a
//! chunked or unframed response is an error.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// A response: its status, the first `name=value` pair of its
/// `Set-Cookie` (if any), and its body.
#[derive(Debug)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// `name=value` of the first `Set-Cookie`.
    pub cookie: Option<String>,
    /// The body.
    pub body: Vec<u8>,
}

/// One keep-alive connection.
pub struct Conn {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
    /// Bytes of `buf` read but not yet consumed: `buf[start..end]`.
    start: usize,
    end: usize,
}

fn bad(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned())
}

impl Conn {
    /// A connection to `addr`, opened on first use.
    pub fn new(addr: SocketAddr) -> Conn {
        Conn {
            addr,
            stream: None,
            buf: vec![0; 16 * 1024],
            start: 0,
            end: 0,
        }
    }

    /// Sends `request` (whole, rendered) and reads its response. On any
    /// error the connection is dropped and the next request opens another.
    pub async fn send(&mut self, request: &[u8]) -> std::io::Result<Response> {
        let r = self.try_send(request).await;
        if r.is_err() {
            self.stream = None;
        }
        r
    }

    async fn try_send(&mut self, request: &[u8]) -> std::io::Result<Response> {
        if self.stream.is_none() {
            self.try_connect().await?;
        }
        let Some(stream) = self.stream.as_mut() else {
            return Err(bad("no stream"));
        };
        stream.write_all(request).await?;
        // The head.
        let head_end = loop {
            if let Some(i) = find(&self.buf[self.start..self.end], b"\r\n\r\n") {
                break self.start + i + 4;
            }
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.end == self.buf.len() {
                return Err(bad("response head too large"));
            }
            let n = stream.read(&mut self.buf[self.end..]).await?;
            if n == 0 {
                return Err(bad("connection closed"));
            }
            self.end += n;
        };
        let head = &self.buf[self.start..head_end];
        let mut lines = head.split(|&b| b == b'\n');
        let status_line = lines.next().ok_or_else(|| bad("no status line"))?;
        let status = status_line
            .get(9..12)
            .and_then(|s| std::str::from_utf8(s).ok())
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or_else(|| bad("bad status line"))?;
        let mut length = None;
        let mut cookie = None;
        let mut close = false;
        for line in lines {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                continue;
            };
            let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
            if name.eq_ignore_ascii_case(b"content-length") {
                length = std::str::from_utf8(value)
                    .ok()
                    .and_then(|v| v.parse::<usize>().ok());
            } else if name.eq_ignore_ascii_case(b"set-cookie") && cookie.is_none() {
                let pair = value.split(|&b| b == b';').next().unwrap_or(value);
                cookie = Some(String::from_utf8_lossy(pair).into_owned());
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                return Err(bad("chunked responses are not supported"));
            } else if name.eq_ignore_ascii_case(b"connection")
                && value.eq_ignore_ascii_case(b"close")
            {
                close = true;
            }
        }
        let length = match (length, status) {
            (Some(n), _) => n,
            (None, 204 | 304) => 0,
            (None, _) => return Err(bad("response without Content-Length")),
        };
        self.start = head_end;
        // The body.
        while self.end - self.start < length {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.end == self.buf.len() {
                self.buf.resize(self.buf.len().max(length) * 2, 0);
            }
            let n = stream.read(&mut self.buf[self.end..]).await?;
            if n == 0 {
                return Err(bad("connection closed in a body"));
            }
            self.end += n;
        }
        let body = self.buf[self.start..self.start + length].to_vec();
        self.start += length;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        if close {
            self.stream = None;
        }
        Ok(Response {
            status,
            cookie,
            body,
        })
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// `POST /login/{user}`, as a same-origin browser request.
pub fn login_request(user: &str) -> Vec<u8> {
    format!(
        "POST /login/{user} HTTP/1.1\r\nHost: 127.0.0.1\r\nSec-Fetch-Site: same-origin\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// `GET /counter` (`increment: false`) or `POST /counter` with `cookie`.
pub fn counter_request(cookie: &str, increment: bool) -> Vec<u8> {
    let (method, length) = if increment {
        ("POST", "Content-Length: 0\r\n")
    } else {
        ("GET", "")
    };
    format!(
        "{method} /counter HTTP/1.1\r\nHost: 127.0.0.1\r\nSec-Fetch-Site: same-origin\r\nCookie: {cookie}\r\n{length}\r\n"
    )
    .into_bytes()
}

/// Latencies in nanoseconds, 64 buckets per power of two (each bucket at
/// most 1/64 = 1.6% wide), no allocation per sample.
#[derive(Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
}

const SUB: u32 = 64;
const SUB_BITS: u32 = 6;

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Histogram {
        Histogram {
            counts: vec![0; ((64 - SUB_BITS + 1) * SUB) as usize],
            total: 0,
        }
    }

    fn index(ns: u64) -> usize {
        if ns < u64::from(SUB) {
            return ns as usize;
        }
        let e = 63 - ns.leading_zeros(); // >= SUB_BITS
        let mantissa = (ns >> (e - SUB_BITS)) - u64::from(SUB); // 0..SUB
        ((e - SUB_BITS + 1) * SUB) as usize + mantissa as usize
    }

    /// The middle of bucket `i`, in nanoseconds.
    fn value(i: usize) -> u64 {
        let i = i as u64;
        let sub = u64::from(SUB);
        if i < sub {
            return i;
        }
        let shift = i / sub - 1;
        let low = (sub + i % sub) << shift;
        low + ((1u64 << shift) >> 1)
    }

    /// Adds one sample.
    pub fn record(&mut self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.counts[Histogram::index(ns)] += 1;
        self.total += 1;
    }

    /// Adds every sample of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
    }

    /// The `q`-quantile (0..=1) in microseconds; 0 when empty.
    pub fn quantile_us(&self, q: f64) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Histogram::value(i) as f64 / 1000.0;
            }
        }
        0.0
    }
}

/// What a run of requests saw.
#[derive(Clone)]
pub struct Tally {
    /// Latency of every counted request.
    pub latency: Histogram,
    /// Responses by status; `0` counts requests that got no response (a
    /// broken connection, a response this client cannot read).
    pub statuses: BTreeMap<u16, u64>,
}

impl Tally {
    /// An empty tally.
    pub fn new() -> Tally {
        Tally {
            latency: Histogram::new(),
            statuses: BTreeMap::new(),
        }
    }

    /// Requests counted.
    pub fn requests(&self) -> u64 {
        self.statuses.values().sum()
    }

    /// Responses with `status`.
    pub fn count(&self, status: u16) -> u64 {
        self.statuses.get(&status).copied().unwrap_or(0)
    }

    fn add(&mut self, status: u16, d: Duration) {
        self.latency.record(d);
        *self.statuses.entry(status).or_insert(0) += 1;
    }

    fn merge(&mut self, other: &Tally) {
        self.latency.merge(&other.latency);
        for (s, n) in &other.statuses {
            *self.statuses.entry(*s).or_insert(0) += n;
        }
    }
}

/// Logs in `users` users (`user0`, `user1`, …) over `connections`
/// connections and returns each one's cookie (`name=value`), in order.
///
/// # Panics
/// If a login fails or sets no cookie: the comparison would be void.
pub async fn seed(addr: SocketAddr, users: usize, connections: usize) -> Vec<String> {
    let connections = connections.clamp(1, users.max(1));
    let mut tasks = Vec::new();
    for k in 0..connections {
        tasks.push(tokio::task::spawn_local(async move {
            let mut conn = Conn::new(addr);
            let mut out = Vec::new();
            for i in (k..users).step_by(connections) {
                let r = conn.send(&login_request(&format!("user{i}"))).await;
                match r {
                    Ok(Response {
                        status: 200,
                        cookie: Some(c),
                        ..
                    }) => out.push((i, c)),
                    Ok(r) => panic!(
                        "login of user{i} answered {} (cookie: {})",
                        r.status,
                        r.cookie.is_some()
                    ),
                    Err(e) => panic!("login of user{i} failed: {e}"),
                }
            }
            out
        }));
    }
    let mut cookies = vec![String::new(); users];
    for t in tasks {
        match t.await {
            Ok(list) => {
                for (i, c) in list {
                    cookies[i] = c;
                }
            }
            Err(e) => panic!("a seeding task failed: {e}"),
        }
    }
    cookies
}

/// A small xorshift generator: which session each request uses.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

/// Runs `connections` connections, each sending requests picked at random
/// from `requests` back to back, from now until `measure_from + duration`;
/// counts the requests sent from `measure_from` on (the time before is
/// warm-up). `at_start` runs once at `measure_from`, `at_end` once the last
/// counted request has its answer; their results are returned with the
/// tally and the wall time between them.
pub async fn load<S, E>(
    addr: SocketAddr,
    requests: Rc<Vec<Vec<u8>>>,
    connections: usize,
    measure_from: Instant,
    duration: Duration,
    at_start: impl FnOnce() -> S + 'static,
    at_end: impl FnOnce() -> E,
) -> (Tally, S, E, Duration)
where
    S: 'static,
{
    let until = measure_from + duration;
    let mut tasks = Vec::new();
    for k in 0..connections {
        let requests = Rc::clone(&requests);
        tasks.push(tokio::task::spawn_local(async move {
            let mut rng =
                XorShift(0x9E37_79B9_7F4A_7C15 ^ ((k as u64 + 1) * 0x2545_F491_4F6C_DD1D));
            let mut conn = Conn::new(addr);
            let mut tally = Tally::new();
            loop {
                let t0 = Instant::now();
                if t0 >= until {
                    break;
                }
                let request = &requests[(rng.next() % requests.len() as u64) as usize];
                let status = conn.send(request).await.map_or(0, |r| r.status);
                if t0 >= measure_from {
                    tally.add(status, t0.elapsed());
                }
            }
            tally
        }));
    }
    let start = tokio::task::spawn_local(async move {
        tokio::time::sleep_until(measure_from.into()).await;
        (at_start(), Instant::now())
    });
    let mut tally = Tally::new();
    for t in tasks {
        match t.await {
            Ok(t) => tally.merge(&t),
            Err(e) => panic!("a load task failed: {e}"),
        }
    }
    let end = at_end();
    let stopped = Instant::now();
    let (s, started) = match start.await {
        Ok(s) => s,
        Err(e) => panic!("the start task failed: {e}"),
    };
    (tally, s, end, stopped - started)
}

/// `connections` connections start together and each sends `request`
/// `per_connection` times, back to back.
pub async fn burst(
    addr: SocketAddr,
    request: Rc<Vec<u8>>,
    connections: usize,
    per_connection: usize,
) -> (Tally, Duration) {
    // Open every connection first, so the requests start together.
    let mut conns = Vec::new();
    for _ in 0..connections {
        let mut c = Conn::new(addr);
        if let Err(e) = c.try_connect().await {
            panic!("cannot connect to {addr}: {e}");
        }
        conns.push(c);
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for mut conn in conns {
        let request = Rc::clone(&request);
        tasks.push(tokio::task::spawn_local(async move {
            let mut tally = Tally::new();
            for _ in 0..per_connection {
                let t0 = Instant::now();
                let status = conn.send(&request).await.map_or(0, |r| r.status);
                tally.add(status, t0.elapsed());
            }
            tally
        }));
    }
    let mut tally = Tally::new();
    for t in tasks {
        match t.await {
            Ok(t) => tally.merge(&t),
            Err(e) => panic!("a burst task failed: {e}"),
        }
    }
    (tally, started.elapsed())
}

impl Conn {
    async fn try_connect(&mut self) -> std::io::Result<()> {
        let s = TcpStream::connect(self.addr).await?;
        s.set_nodelay(true)?;
        self.stream = Some(s);
        self.start = 0;
        self.end = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Histogram;
    use std::time::Duration;

    #[test]
    fn histogram_quantiles_are_within_two_percent() {
        let mut h = Histogram::new();
        for us in 1..=10_000u64 {
            h.record(Duration::from_micros(us));
        }
        for (q, want) in [(0.5, 5_000.0), (0.99, 9_900.0), (1.0, 10_000.0)] {
            let got = h.quantile_us(q);
            assert!(
                (got - want).abs() / want < 0.02,
                "q{q}: {got} against {want}"
            );
        }
    }
}
