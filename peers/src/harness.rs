//! The interleaved-rounds harness every case of the `timing` binary runs
//! on.
//!
//! A round runs every case once, one after another, each for a fixed
//! number of operations; the next round starts one case later, so no case
//! always follows the same neighbour. Other processes on a shared machine
//! only ever add time, and a slow spell then falls on every case alike
//! instead of on whichever ran during it: a latchkey figure and its peer's
//! are measured minutes, not hours, apart. Each case keeps every round's
//! time; [`Timings::fastest`] (the least disturbed round, for CPU-bound
//! cases) and [`Timings::median`] (for cases whose own cost varies, as an
//! fsync's does) read them.

use std::time::{Duration, Instant};

/// One case: a name, how many operations one pass does, and the pass,
/// which gets the round's number and returns the time of its timed part
/// (setup outside the timing stays out of it).
pub struct Case<'a> {
    name: &'static str,
    ops: u64,
    pass: Box<dyn FnMut(usize) -> Duration + 'a>,
}

impl<'a> Case<'a> {
    /// A case named `name` whose `pass(round)` does `ops` operations.
    pub fn new(name: &'static str, ops: u64, pass: impl FnMut(usize) -> Duration + 'a) -> Case<'a> {
        Case {
            name,
            ops,
            pass: Box::new(pass),
        }
    }
}

impl std::fmt::Debug for Case<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Case")
            .field("name", &self.name)
            .field("ops", &self.ops)
            .finish_non_exhaustive()
    }
}

/// Every round's time of every case of one [`interleaved`] run.
#[derive(Clone, Debug)]
pub struct Timings {
    cases: Vec<(&'static str, u64, Vec<Duration>)>,
}

impl Timings {
    fn of(&self, name: &str) -> (u64, Vec<Duration>) {
        match self.cases.iter().find(|c| c.0 == name) {
            Some((_, ops, times)) => (*ops, times.clone()),
            None => panic!("no case {name}"),
        }
    }

    /// Nanoseconds per operation in the fastest round of case `name`.
    ///
    /// # Panics
    /// If there is no such case (a typo in the caller).
    pub fn fastest(&self, name: &str) -> f64 {
        let (ops, times) = self.of(name);
        per_op(times.iter().copied().min().unwrap_or_default(), ops)
    }

    /// Nanoseconds per operation in the median round of case `name`.
    ///
    /// # Panics
    /// If there is no such case.
    pub fn median(&self, name: &str) -> f64 {
        let (ops, mut times) = self.of(name);
        times.sort_unstable();
        per_op(times.get(times.len() / 2).copied().unwrap_or_default(), ops)
    }

    /// Prints each case's fastest and median round per operation.
    pub fn print(&self) {
        for (name, ops, times) in &self.cases {
            let rounds = times.len();
            println!(
                "  {name:<28} fastest {:>10}  median {:>10}  ({rounds} rounds of {ops})",
                show_ns(self.fastest(name)),
                show_ns(self.median(name)),
            );
        }
    }
}

fn per_op(d: Duration, ops: u64) -> f64 {
    d.as_nanos() as f64 / ops.max(1) as f64
}

/// A time in nanoseconds as a person reads it (ns, µs or ms).
pub fn show_ns(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e4 {
        format!("{:.1} µs", ns / 1e3)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.1} ns")
    }
}

/// Runs `rounds` rounds of `cases`, each round every case once, round `r`
/// starting with case `r % cases.len()` (see the module docs).
pub fn interleaved(rounds: usize, cases: &mut [Case<'_>]) -> Timings {
    let n = cases.len();
    let mut times: Vec<Vec<Duration>> = vec![Vec::with_capacity(rounds); n];
    for round in 0..rounds {
        for k in 0..n {
            let i = (k + round) % n;
            times[i].push((cases[i].pass)(round));
        }
    }
    Timings {
        cases: cases
            .iter()
            .zip(times)
            .map(|(c, t)| (c.name, c.ops, t))
            .collect(),
    }
}

/// The time `f` takes.
pub fn timed(f: impl FnOnce()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

/// A walk's seed for number `i` (splitmix64's finalizer): seeds that
/// differ in one bit would start [`crate::Walk`]s (xorshift) on nearly the
/// same positions.
pub fn seed_for(i: u64) -> u64 {
    let mut z = i.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_rotate_the_first_case_and_keep_every_time() {
        let order = std::cell::RefCell::new(Vec::new());
        let mut cases = [
            Case::new("a", 2, |r| {
                order.borrow_mut().push(('a', r));
                Duration::from_nanos(10 + r as u64)
            }),
            Case::new("b", 1, |r| {
                order.borrow_mut().push(('b', r));
                Duration::from_nanos(100 - r as u64)
            }),
        ];
        let t = interleaved(3, &mut cases);
        drop(cases);
        assert_eq!(
            order.into_inner(),
            [('a', 0), ('b', 0), ('b', 1), ('a', 1), ('a', 2), ('b', 2)]
        );
        assert_eq!(t.fastest("a"), 5.0);
        assert_eq!(t.median("a"), 5.5);
        assert_eq!(t.fastest("b"), 98.0);
        assert_eq!(t.median("b"), 99.0);
    }

    #[test]
    fn times_read_in_their_unit() {
        assert_eq!(show_ns(12.34), "12.3 ns");
        assert_eq!(show_ns(2_500.0), "2.50 µs");
        assert_eq!(show_ns(25_000.0), "25.0 µs");
        assert_eq!(show_ns(1_450_000.0), "1.45 ms");
    }
}
