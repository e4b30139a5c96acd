//! [`Striped`]: a reader-writer lock whose readers, on different threads,
//! write no cache line in common.
//!
//! A `parking_lot::RwLock` counts its readers in its lock word, so every
//! read lock writes that word, and two threads reading under the same lock
//! pass its cache line back and forth between their cores even when they
//! read different data. On most machines that costs little; where moving a
//! line between the two cores is dear (two cores far apart, as a virtual
//! machine's vCPUs sometimes are), it cost a memory-store load about 80 ns,
//! a fifth of the load (BENCHMARKS.md, "Pinned pairs, and the price of a
//! shared line").
//!
//! Here the value is shared by [`STRIPES`] locks, each on cache lines of
//! its own and each holding a handle (`Arc`) to the one value. A thread
//! reads under its own stripe only, chosen once per thread, so threads on
//! different stripes never write the same line to read. A writer takes
//! every stripe's write lock, in order, gathers the handles so that it
//! alone holds the value, changes it in place, and hands the handles back.
//! Writes pay for that: [`STRIPES`] lock words and as many handle counts
//! instead of one lock word.
//!
//! Threads take stripes in the order they first read (there is no portable
//! way to ask which CPU a thread is on without a system call), so threads
//! beyond [`STRIPES`] share stripes, as every thread shared the one lock
//! word before.

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::{MappedRwLockReadGuard, RwLock, RwLockReadGuard};

/// How many stripes a [`Striped`] has: enough that the threads of a small
/// server each read under a stripe of their own, few enough that a write,
/// which takes them all, stays cheap.
pub(crate) const STRIPES: usize = 4;

/// One stripe, on cache lines of its own (128 bytes: CPUs that fetch lines
/// in adjacent pairs would otherwise tie two stripes together).
#[repr(align(128))]
struct Stripe<T>(RwLock<Option<Arc<T>>>);

/// A value behind [`STRIPES`] reader-writer locks; see the module docs.
pub(crate) struct Striped<T> {
    stripes: [Stripe<T>; STRIPES],
}

impl<T> Striped<T> {
    pub(crate) fn new(value: T) -> Striped<T> {
        let shared = Arc::new(value);
        Striped {
            stripes: std::array::from_fn(|_| Stripe(RwLock::new(Some(Arc::clone(&shared))))),
        }
    }

    /// The value, read-locked under this thread's stripe. `None` only if
    /// the value was lost, which [`Striped::write`] never lets happen.
    #[inline]
    pub(crate) fn read(&self) -> Option<MappedRwLockReadGuard<'_, T>> {
        let guard = self.stripes[this_thread_stripe()].0.read();
        RwLockReadGuard::try_map(guard, |handle| handle.as_deref()).ok()
    }

    /// Runs `f` on the value with every stripe write-locked. `None`, with
    /// `f` not run, only if the value was lost or is held elsewhere, which
    /// this type never lets happen. If `f` panics, the value (as `f` left
    /// it) is handed back to every stripe before the panic goes on.
    pub(crate) fn write<R>(&self, f: impl FnOnce(&mut T) -> R) -> Option<R> {
        let mut guards = self.stripes.each_ref().map(|stripe| stripe.0.write());
        // Every stripe is locked: the handles are all there are.
        let mut handles = guards.each_mut().map(|guard| guard.take());
        let mut shared = handles.iter_mut().find_map(Option::take)?;
        drop(handles);
        // `None` (the value held elsewhere) cannot happen: no handle ever
        // leaves the stripes.
        let result =
            Arc::get_mut(&mut shared).map(|value| catch_unwind(AssertUnwindSafe(|| f(value))));
        let [first, rest @ ..] = &mut guards;
        for guard in rest {
            **guard = Some(Arc::clone(&shared));
        }
        **first = Some(shared);
        match result? {
            Ok(r) => Some(r),
            Err(panic) => resume_unwind(panic),
        }
    }
}

/// This thread's stripe: the threads of a process take stripes in turn as
/// they first ask. A thread whose thread-locals are being torn down reads
/// under stripe 0.
#[inline]
fn this_thread_stripe() -> usize {
    static TURN: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static STRIPE: usize = next_stripe(&TURN);
    }
    STRIPE.try_with(|stripe| *stripe).unwrap_or(0)
}

/// The stripe for the thread whose turn `turn` counts.
fn next_stripe(turn: &AtomicUsize) -> usize {
    turn.fetch_add(1, Ordering::Relaxed) % STRIPES
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Barrier;

    #[test]
    fn reads_see_what_writes_left() {
        let striped = Striped::new(1u64);
        assert_eq!(striped.read().as_deref(), Some(&1));
        assert_eq!(striped.write(|v| std::mem::replace(v, 2)), Some(1));
        assert_eq!(striped.read().as_deref(), Some(&2));
        // From other threads too, whatever their stripes.
        std::thread::scope(|s| {
            for _ in 0..2 * STRIPES {
                s.spawn(|| assert_eq!(striped.read().as_deref(), Some(&2)));
            }
        });
    }

    #[test]
    fn a_thread_keeps_its_stripe() {
        let first = this_thread_stripe();
        assert!(first < STRIPES);
        assert_eq!(this_thread_stripe(), first);
    }

    #[test]
    fn threads_take_the_stripes_in_turn() {
        let turn = AtomicUsize::new(0);
        let taken: Vec<usize> = (0..2 * STRIPES + 1).map(|_| next_stripe(&turn)).collect();
        let expected: Vec<usize> = (0..2 * STRIPES + 1).map(|i| i % STRIPES).collect();
        assert_eq!(taken, expected);
    }

    #[test]
    fn a_writer_shuts_out_readers_on_every_stripe() {
        // The writer keeps both halves equal; a reader that saw one half
        // changed without the other read during a write.
        let striped = Striped::new((0u64, 0u64));
        let start = Barrier::new(1 + STRIPES);
        std::thread::scope(|s| {
            for _ in 0..STRIPES {
                s.spawn(|| {
                    start.wait();
                    for _ in 0..20_000 {
                        let Some(pair) = striped.read() else {
                            panic!("value lost")
                        };
                        assert_eq!(pair.0, pair.1, "a read saw half a write");
                    }
                });
            }
            start.wait();
            for _ in 0..20_000 {
                let written = striped.write(|pair| {
                    pair.0 += 1;
                    std::hint::black_box(&*pair);
                    pair.1 += 1;
                });
                assert_eq!(written, Some(()));
            }
        });
        assert_eq!(striped.read().map(|p| *p), Some((20_000, 20_000)));
    }

    #[test]
    fn a_panicking_writer_leaves_the_value_in_place() {
        let striped = Striped::new(vec![1]);
        let panicked = catch_unwind(AssertUnwindSafe(|| {
            striped.write(|v| {
                v.push(2);
                panic!("writer fails");
            })
        }));
        assert!(panicked.is_err());
        assert_eq!(striped.read().as_deref(), Some(&vec![1, 2]));
        assert_eq!(striped.write(|v| v.len()), Some(2));
    }
}
