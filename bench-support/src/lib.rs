//! Fixtures shared by latchkey's benches (`benches/`, a dev-dependency of
//! the `latchkey` package) and the peer benchmarks (`peers/`), so both
//! measure latchkey the same way. Not published; nothing here reaches a
//! user's build.
//!
//! Every benchmark gets the same payload, a three-entry data map
//! ([`payload`]), and the same access pattern: live sessions seeded up
//! front, then loads at pseudo-random positions ([`Walk`]) so that a run over
//! a million sessions misses the CPU caches the way a real server does,
//! instead of hitting the same few records.
#![deny(missing_docs)]

pub mod remote;

use std::sync::Barrier;
use std::time::{Duration, Instant};

use latchkey::{MemoryStore, NewSession, SessionManager, StoreManager};
use serde_json::{Map, Value, json};

/// The payload every benchmark stores: three entries, about 60 bytes of JSON
/// (a user id, a preference and a CSRF token), typical of a web session.
pub fn payload() -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("user_id".into(), json!(4_200_042));
    m.insert("theme".into(), json!("dark"));
    m.insert("csrf".into(), json!("vQ3kR9zX2mL7pT5wY8nB4c"));
    m
}

/// A cheap deterministic walk over `0..n` (xorshift64), so every library
/// is probed in the same scattered order at the same cost (about 1 ns).
#[derive(Clone, Debug)]
pub struct Walk {
    state: u64,
    n: usize,
}

impl Walk {
    /// A walk over `0..n` from `seed` (non-zero).
    pub fn new(n: usize, seed: u64) -> Walk {
        Walk { state: seed | 1, n }
    }

    /// The next index.
    #[inline]
    pub fn next_index(&mut self) -> usize {
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.state = x;
        // Multiply-shift: uniform enough and free of a division.
        ((u128::from(x) * self.n as u128) >> 64) as usize
    }
}

/// A [`Walk`] whose every position waits for the previous operation's
/// result, so that no two operations' memory reads overlap: each one pays
/// its whole latency, as a server's lone session load per request does.
///
/// A plain walk lets the processor start the next iteration's reads while
/// the current one's are still in flight, which a tight benchmark loop
/// allows and a request handler (thousands of instructions between two
/// loads) does not. The position is XORed with the previous result masked
/// by a zero the compiler cannot see through: the value never changes, the
/// dependency is real.
#[derive(Clone, Debug)]
pub struct Chained {
    walk: Walk,
    zero: usize,
    last: usize,
}

impl Chained {
    /// A chained walk over `0..n` from `seed` (non-zero).
    pub fn new(n: usize, seed: u64) -> Chained {
        Chained {
            walk: Walk::new(n, seed),
            zero: std::hint::black_box(0),
            last: 0,
        }
    }

    /// The next index, available only once the last result is.
    #[inline]
    pub fn next_index(&mut self) -> usize {
        self.walk.next_index() ^ (self.last & self.zero)
    }

    /// Hands over a value read from the last operation's result.
    #[inline]
    pub fn feed(&mut self, v: usize) {
        self.last = v;
    }
}

/// Cookie values of equal length packed in one buffer, so that reading the
/// i-th costs what reading a request's header does (no pointer chase to a
/// separate allocation per token, which would add a cache miss that a real
/// request, whose header was just parsed, does not pay).
#[derive(Clone, Debug, Default)]
pub struct Tokens {
    buf: String,
    width: usize,
}

impl Tokens {
    /// Room for `n` tokens of `width` bytes.
    pub fn with_capacity(n: usize, width: usize) -> Tokens {
        Tokens {
            buf: String::with_capacity(n * width),
            width,
        }
    }

    /// Appends a token of the declared width.
    pub fn push(&mut self, token: &str) {
        assert_eq!(token.len(), self.width, "tokens must have equal length");
        self.buf.push_str(token);
    }

    /// The i-th token.
    #[inline]
    pub fn get(&self, i: usize) -> &str {
        &self.buf[i * self.width..(i + 1) * self.width]
    }
}

/// Our side: a manager over a [`MemoryStore`] with the default policy, with
/// `n` live anonymous sessions holding [`payload`], and their tokens.
///
/// Both read the system clock, as a server's do, so every load pays for its
/// clock read as tower-sessions' load does. A session is touched (one write)
/// once per 60-second touch interval, so a run that ends within a minute of
/// seeding, as every case here does, measures loads without touches.
pub fn seed_latchkey(n: usize) -> (StoreManager<MemoryStore>, Tokens) {
    let manager = StoreManager::new(MemoryStore::new());
    let new = new_session();
    let mut tokens = Tokens::with_capacity(n, 43);
    for _ in 0..n {
        match manager.create(new.clone()) {
            Ok(issued) => tokens.push(issued.token()),
            Err(e) => panic!("seeding failed: {e}"),
        }
    }
    (manager, tokens)
}

/// An anonymous [`NewSession`] holding [`payload`].
pub fn new_session() -> NewSession {
    let mut s = NewSession::new();
    for (k, v) in payload() {
        s = match s.with_value(&k, &v) {
            Ok(s) => s,
            Err(e) => panic!("payload does not encode: {e}"),
        };
    }
    s
}

/// One load at the walk's next position, checked: every seeded session is
/// live and unchanged, so anything but its first version, loaded without a
/// reissue, means the benchmark measures a failure path. Returns the
/// session's creation time (see [`load_checked`]).
#[inline]
pub fn load_next(manager: &StoreManager<MemoryStore>, tokens: &Tokens, walk: &mut Walk) -> u64 {
    load_checked(manager, tokens.get(walk.next_index()))
}

/// The load, checked and dropped where it was made; returns the session's
/// creation time in milliseconds.
///
/// The result (a `Result<Loaded, Error>`, 352 bytes) is read by reference
/// and handed to `black_box` by reference, never moved: a move is a copy
/// of the whole result that the harness would add to what it measures (a
/// `let`, a check, then returning the value took one, a `memcpy` call per
/// load under callgrind). `black_box(&loaded)` keeps every field built, so
/// the compiler cannot skip the parts the check does not read; the drop at
/// the end is the caller's and is timed.
///
/// The creation time is read from the record and no check pins it down, so
/// a [`Chained`] walk fed with it truly waits for the record. A value the
/// check compares for equality (the version, say) would be a constant to
/// the compiler after the check, and the chain no chain at all.
#[inline]
fn load_checked(manager: &StoreManager<MemoryStore>, token: &str) -> u64 {
    let loaded = manager.load(token);
    let created = match &loaded {
        Ok(l) if l.session.version() == 1 && l.reissue.is_none() => {
            l.session.created_at().as_unix_millis()
        }
        Ok(_) => panic!("a seeded session changed"),
        Err(e) => panic!("a seeded session failed to load: {e}"),
    };
    std::hint::black_box(&loaded);
    created
}

/// [`load_next`] on a [`Chained`] walk: the next load waits for this one's
/// session.
#[inline]
pub fn load_chained(
    manager: &StoreManager<MemoryStore>,
    tokens: &Tokens,
    chain: &mut Chained,
) -> u64 {
    let created = load_checked(manager, tokens.get(chain.next_index()));
    chain.feed(created as usize);
    created
}

/// `iters` checked loads on `walk`: one thread's share of a pair.
#[inline]
fn load_walk(manager: &StoreManager<MemoryStore>, tokens: &Tokens, walk: &mut Walk, iters: u64) {
    for _ in 0..iters {
        std::hint::black_box(load_next(manager, tokens, walk));
    }
}

/// `iters` checked loads on each of two threads sharing `manager`, each
/// on its own walk (see [`thread_walks`]), each thread first calling `pin`
/// with its index; the wall time as for [`two_threads`].
pub fn load_two_threads(
    manager: &StoreManager<MemoryStore>,
    tokens: &Tokens,
    walks: &mut [Apart<Walk>; 2],
    iters: u64,
    pin: &(dyn Fn(usize) + Sync),
) -> Duration {
    two_threads(walks, iters, pin, |walk, iters| {
        load_walk(manager, tokens, walk, iters)
    })
}

/// [`load_two_threads`], returning each thread's own time and
/// [`Placement`] (see [`two_threads_placed`]).
pub fn load_two_threads_placed(
    manager: &StoreManager<MemoryStore>,
    tokens: &Tokens,
    walks: &mut [Apart<Walk>; 2],
    iters: u64,
    pin: &(dyn Fn(usize) + Sync),
) -> [(Duration, Placement); 2] {
    two_threads_placed(walks, iters, pin, |walk, iters| {
        load_walk(manager, tokens, walk, iters)
    })
}

/// The two walks over `0..n` of a two-thread case, one per thread, from
/// different seeds.
///
/// Create them once per case, outside criterion's `iter_custom`, as the
/// one-thread cases create their walk outside `iter`: each sample then goes
/// on where the last one stopped. A walk made afresh per sample repeats the
/// same first positions in every sample, and those sessions are then in
/// the cache, which flatters two threads against one.
pub fn thread_walks(n: usize) -> [Apart<Walk>; 2] {
    [
        Apart(Walk::new(n, 0x1234_5678)),
        Apart(Walk::new(n, 0x8765_4321)),
    ]
}

/// A value on cache lines of its own (128 bytes, the pair of lines x86
/// processors fetch together).
///
/// Each thread of [`two_threads`] updates its own state on every iteration
/// (a walk's position). Two states side by side would share a line, which
/// then moves between the two cores on every iteration: the threads would
/// slow each other down through the benchmark's own bookkeeping.
#[derive(Clone, Debug)]
#[repr(align(128))]
pub struct Apart<T>(pub T);

/// Runs `per_thread(state, iters)` on two threads started together, each
/// with its own of `states` (kept across calls, so a walk goes on where it
/// stopped), and returns the wall time until the slower one finished: with
/// one operation per thread per iteration, criterion's throughput (declared
/// as two elements per iteration) is the aggregate rate.
///
/// Each thread first calls `pin` with its index (0 or 1), before the two
/// wait for each other and outside the time: a pair pinned to a CPU each
/// (`latchkey_peers::pin_to_cpu`) measures the code rather than where the
/// scheduler put its threads. Left free (`&|_| {}`), the scheduler
/// sometimes keeps both threads on one CPU, where they take turns (see
/// [`Placement`]).
pub fn two_threads<S, F>(
    states: &mut [Apart<S>; 2],
    iters: u64,
    pin: &(dyn Fn(usize) + Sync),
    per_thread: F,
) -> Duration
where
    S: Send,
    F: Fn(&mut S, u64) + Sync,
{
    // No CPU reads here: criterion's cases have no use for them.
    let [(a, _), (b, _)] = run_pair::<S, F, false>(states, iters, pin, per_thread);
    a.max(b)
}

/// Where a thread of [`two_threads_placed`] ran: its CPU as it started its
/// timed loop and as it finished it, where the system says (`None`
/// elsewhere than Linux, or if `/proc` cannot be read).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    /// The CPU at the start of the loop.
    pub start: Option<u32>,
    /// The CPU at its end.
    pub end: Option<u32>,
}

impl Placement {
    /// Whether the two threads were seen on the same CPU, at their start or
    /// at their end. The scheduler sometimes keeps both threads of a pair on
    /// one CPU for a whole run; they then take turns, and the pair measures
    /// the scheduler as much as the code. A thread that moves between the
    /// two looks is not caught.
    pub fn shared(pair: [Placement; 2]) -> bool {
        let [a, b] = pair;
        let same = |x: Option<u32>, y: Option<u32>| x.is_some() && x == y;
        same(a.start, b.start) || same(a.end, b.end)
    }
}

/// The calling thread's current CPU, from field 39 of
/// `/proc/thread-self/stat` (Linux); `None` where that cannot be read.
pub fn current_cpu() -> Option<u32> {
    cpu_in_stat(&std::fs::read_to_string("/proc/thread-self/stat").ok()?)
}

/// Field 39 (`processor`) of a `/proc/[pid]/stat` line. The command name
/// (field 2) is in parentheses and may hold spaces and parentheses of its
/// own: count from the last `)`, after which field 3 comes first.
pub fn cpu_in_stat(stat: &str) -> Option<u32> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(36)?.parse().ok()
}

/// [`two_threads`], returning each thread's own time and
/// [`Placement`] instead of the wall time alone. The CPU is read outside
/// the timed loop.
pub fn two_threads_placed<S, F>(
    states: &mut [Apart<S>; 2],
    iters: u64,
    pin: &(dyn Fn(usize) + Sync),
    per_thread: F,
) -> [(Duration, Placement); 2]
where
    S: Send,
    F: Fn(&mut S, u64) + Sync,
{
    run_pair::<S, F, true>(states, iters, pin, per_thread)
}

/// The pair behind [`two_threads`] and [`two_threads_placed`];
/// reads each thread's CPU only with `PLACE` (otherwise its [`Placement`]
/// is unknown).
fn run_pair<S, F, const PLACE: bool>(
    states: &mut [Apart<S>; 2],
    iters: u64,
    pin: &(dyn Fn(usize) + Sync),
    per_thread: F,
) -> [(Duration, Placement); 2]
where
    S: Send,
    F: Fn(&mut S, u64) + Sync,
{
    let cpu = || if PLACE { current_cpu() } else { None };
    let barrier = Barrier::new(2);
    std::thread::scope(|s| {
        let [a, b] = states.each_mut();
        let [a, b] = [(0, a), (1, b)].map(|(index, Apart(state))| {
            let (barrier, per_thread, cpu) = (&barrier, &per_thread, &cpu);
            s.spawn(move || {
                pin(index);
                barrier.wait();
                let start_cpu = cpu();
                let start = Instant::now();
                per_thread(state, iters);
                let elapsed = start.elapsed();
                let placement = Placement {
                    start: start_cpu,
                    end: cpu(),
                };
                (elapsed, placement)
            })
        });
        [a, b].map(|h| match h.join() {
            Ok(result) => result,
            Err(_) => panic!("bench thread panicked"),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `stat` line for a thread named `name` on CPU `cpu`.
    fn stat_line(name: &str, cpu: u32) -> String {
        // Fields 3 to 38, then the processor, then two more.
        let middle: Vec<String> = (3..=38).map(|i| i.to_string()).collect();
        format!("4242 ({name}) {} {cpu} 0 0\n", middle.join(" "))
    }

    #[test]
    fn the_cpu_is_read_after_the_command_name() {
        assert_eq!(cpu_in_stat(&stat_line("timing", 1)), Some(1));
        // A name with spaces and parentheses does not shift the fields.
        assert_eq!(cpu_in_stat(&stat_line("a) (b c", 7)), Some(7));
        assert_eq!(cpu_in_stat("4242 (cut short) R 1"), None);
        assert_eq!(cpu_in_stat("no name at all"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_thread_has_a_cpu() {
        assert!(current_cpu().is_some());
    }

    #[test]
    fn a_pair_shares_a_cpu_when_seen_together_at_either_end() {
        let at = |start, end| Placement { start, end };
        assert!(!Placement::shared([
            at(Some(0), Some(1)),
            at(Some(1), Some(0))
        ]));
        assert!(Placement::shared([
            at(Some(0), Some(1)),
            at(Some(0), Some(0))
        ]));
        assert!(Placement::shared([
            at(Some(1), Some(0)),
            at(Some(0), Some(0))
        ]));
        // Unknown is never the same as unknown.
        assert!(!Placement::shared([at(None, None), at(None, None)]));
    }

    #[test]
    fn each_thread_of_a_pair_runs_its_own_state() {
        let mut states = [Apart(0u64), Apart(10u64)];
        let [(_, a), (_, b)] = two_threads_placed(&mut states, 5, &|_| {}, |s, iters| *s += iters);
        assert_eq!(states.map(|Apart(s)| s), [5, 15]);
        if cfg!(target_os = "linux") {
            assert!(a.start.is_some() && b.end.is_some());
        }
        // The unplaced pair, criterion's, runs them the same way.
        let mut states = [Apart(0u64), Apart(10u64)];
        two_threads(&mut states, 3, &|_| {}, |s, iters| *s += iters);
        assert_eq!(states.map(|Apart(s)| s), [3, 13]);
    }
}
