//! Time, as the session layer sees it.
//!
//! Every time-dependent decision in latchkey takes its "now" from a [`Clock`],
//! so tests move time with a [`ManualClock`] instead of sleeping. Instants are
//! [`Timestamp`]s: whole milliseconds since the Unix epoch, which is also how
//! stores write them.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// An instant: milliseconds since the Unix epoch, in UTC.
///
/// Arithmetic saturates instead of overflowing, so a huge policy duration
/// yields "far in the future", never a panic or a wrapped-around past.
///
/// # Example
/// ```
/// use std::time::Duration;
/// use latchkey::Timestamp;
///
/// let t = Timestamp::from_unix_millis(1_000);
/// assert_eq!(t.saturating_add(Duration::from_secs(2)).as_unix_millis(), 3_000);
/// assert_eq!(t.to_string(), "1970-01-01T00:00:01.000Z");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The Unix epoch, 1970-01-01T00:00:00Z.
    pub const UNIX_EPOCH: Timestamp = Timestamp(0);

    /// The instant `millis` milliseconds after the Unix epoch.
    ///
    /// # Example
    /// ```
    /// # use latchkey::Timestamp;
    /// assert_eq!(Timestamp::from_unix_millis(5).as_unix_millis(), 5);
    /// ```
    pub const fn from_unix_millis(millis: u64) -> Timestamp {
        Timestamp(millis)
    }

    /// Milliseconds since the Unix epoch.
    ///
    /// # Example
    /// ```
    /// # use latchkey::Timestamp;
    /// assert_eq!(Timestamp::UNIX_EPOCH.as_unix_millis(), 0);
    /// ```
    pub const fn as_unix_millis(self) -> u64 {
        self.0
    }

    /// This instant moved `d` later, saturating at the largest instant.
    ///
    /// # Example
    /// ```
    /// # use latchkey::Timestamp;
    /// # use std::time::Duration;
    /// let far = Timestamp::from_unix_millis(u64::MAX).saturating_add(Duration::from_secs(1));
    /// assert_eq!(far.as_unix_millis(), u64::MAX);
    /// ```
    pub fn saturating_add(self, d: Duration) -> Timestamp {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Timestamp(self.0.saturating_add(ms))
    }

    /// This instant moved `d` earlier, saturating at the epoch.
    ///
    /// # Example
    /// ```
    /// # use latchkey::Timestamp;
    /// # use std::time::Duration;
    /// let t = Timestamp::from_unix_millis(10).saturating_sub(Duration::from_secs(1));
    /// assert_eq!(t, Timestamp::UNIX_EPOCH);
    /// ```
    pub fn saturating_sub(self, d: Duration) -> Timestamp {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Timestamp(self.0.saturating_sub(ms))
    }

    /// How long after `earlier` this instant is; zero if it is not later.
    ///
    /// # Example
    /// ```
    /// # use latchkey::Timestamp;
    /// # use std::time::Duration;
    /// let a = Timestamp::from_unix_millis(1_000);
    /// let b = Timestamp::from_unix_millis(3_500);
    /// assert_eq!(b.duration_since(a), Duration::from_millis(2_500));
    /// assert_eq!(a.duration_since(b), Duration::ZERO);
    /// ```
    pub fn duration_since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

/// Formats as RFC 3339 in UTC with milliseconds, e.g. `2026-11-23T01:02:03.004Z`,
/// so log lines and error messages read without a conversion step.
impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let millis = self.0 % 1000;
        let secs = self.0 / 1000;
        let days = secs / 86_400;
        let rem = secs % 86_400;
        let (y, m, d) = civil_from_days(days);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
            rem / 3600,
            (rem % 3600) / 60,
            rem % 60
        )
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day).
/// Howard Hinnant's `civil_from_days`, restricted to non-negative day counts.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// A source of the current time.
///
/// Managers and stores ask their clock instead of calling the system directly,
/// so expiry can be tested by moving a [`ManualClock`].
///
/// # Example
/// ```
/// use latchkey::{Clock, SystemClock, Timestamp};
///
/// assert!(SystemClock.now() > Timestamp::UNIX_EPOCH);
/// ```
pub trait Clock: fmt::Debug + Send + Sync {
    /// The current instant.
    fn now(&self) -> Timestamp;
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> Timestamp {
        (**self).now()
    }
}

/// The operating system's wall clock.
///
/// A clock set before 1970 reads as the epoch rather than failing.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        Timestamp(ms)
    }
}

/// A clock that moves only when told to; clones share one time.
///
/// # Example
/// ```
/// use std::time::Duration;
/// use latchkey::{Clock, ManualClock, Timestamp};
///
/// let clock = ManualClock::new(Timestamp::from_unix_millis(1_000));
/// let shared = clock.clone();
/// clock.advance(Duration::from_secs(1));
/// assert_eq!(shared.now().as_unix_millis(), 2_000);
/// ```
#[derive(Clone, Debug)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// A clock that reads `start` until moved.
    ///
    /// # Example
    /// ```
    /// use latchkey::{Clock, ManualClock, Timestamp};
    /// let clock = ManualClock::new(Timestamp::from_unix_millis(42));
    /// assert_eq!(clock.now().as_unix_millis(), 42);
    /// ```
    pub fn new(start: Timestamp) -> ManualClock {
        ManualClock(Arc::new(AtomicU64::new(start.0)))
    }

    /// A clock starting at the system's current time.
    ///
    /// # Example
    /// ```
    /// use latchkey::{Clock, ManualClock, Timestamp};
    /// assert!(ManualClock::starting_now().now() > Timestamp::UNIX_EPOCH);
    /// ```
    pub fn starting_now() -> ManualClock {
        ManualClock::new(SystemClock.now())
    }

    /// Moves the time forward by `d` (saturating).
    ///
    /// # Example
    /// ```
    /// use std::time::Duration;
    /// use latchkey::{Clock, ManualClock, Timestamp};
    /// let clock = ManualClock::new(Timestamp::UNIX_EPOCH);
    /// clock.advance(Duration::from_millis(1500));
    /// assert_eq!(clock.now().as_unix_millis(), 1500);
    /// ```
    pub fn advance(&self, d: Duration) {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        // fetch_update cannot fail with a closure that always returns Some.
        let _ = self
            .0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |t| {
                Some(t.saturating_add(ms))
            });
    }

    /// Sets the time to `t`, forwards or backwards.
    ///
    /// # Example
    /// ```
    /// use latchkey::{Clock, ManualClock, Timestamp};
    /// let clock = ManualClock::new(Timestamp::from_unix_millis(100));
    /// clock.set(Timestamp::from_unix_millis(7));
    /// assert_eq!(clock.now().as_unix_millis(), 7);
    /// ```
    pub fn set(&self, t: Timestamp) {
        self.0.store(t.0, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_rfc3339_utc() {
        assert_eq!(Timestamp(0).to_string(), "1970-01-01T00:00:00.000Z");
        // 2000-02-29 (a leap day) 12:34:56.789
        assert_eq!(
            Timestamp(951_827_696_789).to_string(),
            "2000-02-29T12:34:56.789Z"
        );
        assert_eq!(
            Timestamp(1_795_395_723_004).to_string(),
            "2026-11-23T01:02:03.004Z"
        );
    }

    #[test]
    fn arithmetic_saturates() {
        let t = Timestamp(u64::MAX - 1);
        assert_eq!(t.saturating_add(Duration::MAX), Timestamp(u64::MAX));
        assert_eq!(Timestamp(1).saturating_sub(Duration::MAX), Timestamp(0));
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::new(Timestamp(10));
        assert_eq!(c.now(), Timestamp(10));
        c.advance(Duration::from_millis(5));
        assert_eq!(c.now(), Timestamp(15));
        c.set(Timestamp(3));
        assert_eq!(c.now(), Timestamp(3));
    }
}
