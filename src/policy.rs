//! Timeouts, rotation grace, limits: what a session is allowed to do.
//!
//! A [`Policy`] is built once and shared by a manager. Every nonsensical
//! combination (a zero duration, an idle timeout longer than the absolute
//! one, a touch interval that would never let a session slide) is a
//! construction error, so a running manager never holds one.
//!
//! | preset | idle | absolute | re-authentication extends absolute | source |
//! |---|---|---|---|---|
//! | [`Policy::owasp`] (the default) | 20 min | 8 h | no | OWASP Session Management Cheat Sheet |
//! | [`Policy::nist_aal1`] | 30 days (none required) | 30 days | no | NIST SP 800-63B-4, AAL1 |
//! | [`Policy::nist_aal2`] | 1 h | 24 h | no | NIST SP 800-63B-4, AAL2 |
//! | [`Policy::nist_aal3`] | 15 min | 12 h | no | NIST SP 800-63B-4, AAL3 |
//!
//! No preset lets a re-authentication extend the absolute deadline
//! ([`Policy::reauthentication_extends_absolute`]): NIST allows it, but
//! nothing requires it, and without it every session ends at its absolute
//! deadline whatever happens in it.

use std::time::Duration;

/// What happens when a user already has the most sessions the policy allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum UserLimitAction {
    /// End the user's oldest session (by creation time) to make room.
    EvictOldest,
    /// Refuse the new session with [`Error::UserLimit`](crate::Error::UserLimit).
    Refuse,
}

/// What happens when a token retired by rotation is presented after the
/// grace window.
///
/// Reuse of a retired token is a sign it was copied (RFC 9700 §4.14.2): the
/// legitimate client moved on to the successor long ago.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReuseResponse {
    /// Refuse the old token and end the successor session too, so whoever
    /// holds a stolen copy of either loses it. The default.
    RevokeSuccessor,
    /// Refuse the old token only.
    RejectOnly,
}

/// Why a [`PolicyBuilder`] refused to build.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// A duration that must be positive is zero.
    #[error("the {0} must be longer than zero")]
    ZeroDuration(&'static str),
    /// The idle timeout is longer than the absolute timeout.
    #[error("the idle timeout ({idle:?}) is longer than the absolute timeout ({absolute:?})")]
    IdleExceedsAbsolute {
        /// The idle timeout given.
        idle: Duration,
        /// The absolute timeout given.
        absolute: Duration,
    },
    /// The touch interval is not shorter than the idle timeout, so an
    /// active session could expire between two recorded activities.
    #[error("the touch interval ({touch:?}) must be shorter than the idle timeout ({idle:?})")]
    TouchNotBelowIdle {
        /// The touch interval given.
        touch: Duration,
        /// The idle timeout given.
        idle: Duration,
    },
    /// The rotation grace is not shorter than the idle timeout.
    #[error("the rotation grace ({grace:?}) must be shorter than the idle timeout ({idle:?})")]
    GraceNotBelowIdle {
        /// The grace given.
        grace: Duration,
        /// The idle timeout given.
        idle: Duration,
    },
    /// A limit that must be at least one is zero.
    #[error("the {0} must be at least 1")]
    ZeroLimit(&'static str),
    /// The remember-me lifetime is longer than browsers keep a cookie (400
    /// days, RFC 6265bis): the cookie would vanish before the token.
    #[error("the remember-me lifetime ({lifetime:?}) is longer than a cookie lives ({max:?})")]
    RememberMeTooLong {
        /// The lifetime given.
        lifetime: Duration,
        /// The most allowed: 400 days.
        max: Duration,
    },
}

/// The rules a manager enforces on every session.
///
/// # Example
/// ```
/// use std::time::Duration;
/// use latchkey::{Policy, PolicyError};
///
/// let p = Policy::builder()
///     .with_idle_timeout(Duration::from_secs(600))
///     .with_absolute_timeout(Duration::from_secs(4 * 3600))
///     .build()?;
/// assert_eq!(p.idle_timeout(), Duration::from_secs(600));
///
/// let bad = Policy::builder()
///     .with_idle_timeout(Duration::from_secs(7200))
///     .with_absolute_timeout(Duration::from_secs(3600))
///     .build();
/// assert!(matches!(bad, Err(PolicyError::IdleExceedsAbsolute { .. })));
/// # Ok::<(), PolicyError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    idle_timeout: Duration,
    absolute_timeout: Duration,
    rotation_grace: Duration,
    touch_interval: Duration,
    max_data_bytes: usize,
    max_label_bytes: usize,
    max_sessions_per_user: Option<usize>,
    user_limit_action: UserLimitAction,
    reuse_response: ReuseResponse,
    reauthentication_extends_absolute: bool,
    remember_me_lifetime: Duration,
}

const MIN: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

impl Policy {
    /// OWASP Session Management Cheat Sheet defaults: 20 minutes idle (the
    /// cheat sheet gives 15–30 minutes for low-risk applications), 8 hours
    /// absolute (the top of its 4–8 hour office-day range), 30 s rotation
    /// grace, 60 s touch interval, 16 KiB of data, 32 sessions per user with
    /// the oldest evicted, reuse of a rotated token revoking its
    /// successor, and a re-authentication keeping the absolute deadline.
    ///
    /// # Example
    /// ```
    /// use latchkey::Policy;
    /// use std::time::Duration;
    /// assert_eq!(Policy::owasp().idle_timeout(), Duration::from_secs(20 * 60));
    /// assert_eq!(Policy::owasp().absolute_timeout(), Duration::from_secs(8 * 3600));
    /// assert!(!Policy::owasp().reauthentication_extends_absolute());
    /// ```
    pub fn owasp() -> Policy {
        Policy {
            idle_timeout: 20 * MIN,
            absolute_timeout: 8 * HOUR,
            rotation_grace: Duration::from_secs(30),
            touch_interval: MIN,
            max_data_bytes: 16 * 1024,
            max_label_bytes: 256,
            max_sessions_per_user: Some(32),
            user_limit_action: UserLimitAction::EvictOldest,
            reuse_response: ReuseResponse::RevokeSuccessor,
            // The cheat sheet's absolute timeout ends a session whatever
            // happens in it.
            reauthentication_extends_absolute: false,
            remember_me_lifetime: 30 * 24 * HOUR,
        }
    }

    /// NIST SP 800-63B-4 AAL1: reauthentication at least every 30 days, no
    /// idle requirement (so the idle timeout equals the absolute one). A
    /// re-authentication keeps the absolute deadline, as in every preset:
    /// NIST lets it start a new period, which
    /// [`with_reauthentication_extends_absolute`](PolicyBuilder::with_reauthentication_extends_absolute)
    /// turns on.
    ///
    /// # Example
    /// ```
    /// use latchkey::Policy;
    /// use std::time::Duration;
    /// assert_eq!(Policy::nist_aal1().absolute_timeout(), Duration::from_secs(30 * 24 * 3600));
    /// assert!(!Policy::nist_aal1().reauthentication_extends_absolute());
    /// ```
    pub fn nist_aal1() -> Policy {
        Policy {
            idle_timeout: 30 * 24 * HOUR,
            absolute_timeout: 30 * 24 * HOUR,
            reauthentication_extends_absolute: false,
            ..Policy::owasp()
        }
    }

    /// NIST SP 800-63B-4 AAL2: 24 hours absolute, 1 hour idle; a
    /// re-authentication keeps the absolute deadline (see
    /// [`nist_aal1`](Self::nist_aal1)).
    ///
    /// # Example
    /// ```
    /// use latchkey::Policy;
    /// use std::time::Duration;
    /// let p = Policy::nist_aal2();
    /// assert_eq!((p.idle_timeout(), p.absolute_timeout()), (Duration::from_secs(3600), Duration::from_secs(24 * 3600)));
    /// assert!(!p.reauthentication_extends_absolute());
    /// ```
    pub fn nist_aal2() -> Policy {
        Policy {
            idle_timeout: HOUR,
            absolute_timeout: 24 * HOUR,
            reauthentication_extends_absolute: false,
            ..Policy::owasp()
        }
    }

    /// NIST SP 800-63B-4 AAL3: 12 hours absolute, 15 minutes idle; a
    /// re-authentication keeps the absolute deadline (see
    /// [`nist_aal1`](Self::nist_aal1)).
    ///
    /// # Example
    /// ```
    /// use latchkey::Policy;
    /// use std::time::Duration;
    /// let p = Policy::nist_aal3();
    /// assert_eq!((p.idle_timeout(), p.absolute_timeout()), (Duration::from_secs(15 * 60), Duration::from_secs(12 * 3600)));
    /// assert!(!p.reauthentication_extends_absolute());
    /// ```
    pub fn nist_aal3() -> Policy {
        Policy {
            idle_timeout: 15 * MIN,
            absolute_timeout: 12 * HOUR,
            reauthentication_extends_absolute: false,
            ..Policy::owasp()
        }
    }

    /// This policy without a per-user session cap: for stateless tickets,
    /// which cannot count a user's sessions and so refuse a policy with a
    /// cap ([`TicketManager::with_policy`](crate::TicketManager::with_policy)).
    ///
    /// # Example
    /// ```
    /// use latchkey::Policy;
    /// let p = Policy::nist_aal2().without_user_cap();
    /// assert_eq!(p.max_sessions_per_user(), None);
    /// assert_eq!(p.idle_timeout(), Policy::nist_aal2().idle_timeout());
    /// ```
    #[must_use]
    pub fn without_user_cap(mut self) -> Policy {
        self.max_sessions_per_user = None;
        self
    }

    /// A builder starting from [`Policy::owasp`].
    ///
    /// # Example
    /// ```
    /// use latchkey::Policy;
    /// assert_eq!(Policy::builder().build()?, Policy::owasp());
    /// # Ok::<(), latchkey::PolicyError>(())
    /// ```
    pub fn builder() -> PolicyBuilder {
        PolicyBuilder(Policy::owasp())
    }

    /// A builder starting from this policy.
    ///
    /// # Example
    /// ```
    /// use latchkey::{Policy, UserLimitAction};
    /// let p = Policy::nist_aal2().to_builder()
    ///     .with_max_sessions_per_user(Some(3), UserLimitAction::Refuse)
    ///     .build()?;
    /// assert_eq!(p.max_sessions_per_user(), Some(3));
    /// # Ok::<(), latchkey::PolicyError>(())
    /// ```
    pub fn to_builder(&self) -> PolicyBuilder {
        PolicyBuilder(self.clone())
    }

    /// A session unused for this long ends.
    ///
    /// # Example
    /// ```
    /// use latchkey::Policy;
    /// use std::time::Duration;
    /// assert_eq!(Policy::nist_aal3().idle_timeout(), Duration::from_secs(900));
    /// ```
    pub fn idle_timeout(&self) -> Duration {
        self.idle_timeout
    }

    /// A session ends this long after creation, however active it is.
    ///
    /// # Example
    /// ```
    /// use latchkey::Policy;
    /// use std::time::Duration;
    /// assert_eq!(Policy::nist_aal3().absolute_timeout(), Duration::from_secs(12 * 3600));
    /// ```
    pub fn absolute_timeout(&self) -> Duration {
        self.absolute_timeout
    }

    /// How long a token retired by rotation still resolves to its successor.
    ///
    /// # Example
    /// ```
    /// use latchkey::Policy;
    /// use std::time::Duration;
    /// assert_eq!(Policy::default().rotation_grace(), Duration::from_secs(30));
    /// ```
    pub fn rotation_grace(&self) -> Duration {
        self.rotation_grace
    }

    /// A load records new activity only when the stored activity is at least
    /// this old, so busy sessions do not write on every request. The idle
    /// timeout is therefore enforced to within this interval.
    ///
    /// # Example
    /// ```
    /// use latchkey::Policy;
    /// use std::time::Duration;
    /// assert_eq!(Policy::default().touch_interval(), Duration::from_secs(60));
    /// ```
    pub fn touch_interval(&self) -> Duration {
        self.touch_interval
    }

    /// The most bytes a session's encoded data may take.
    ///
    /// # Example
    /// ```
    /// use latchkey::Policy;
    /// assert_eq!(Policy::default().max_data_bytes(), 16 * 1024);
    /// ```
    pub fn max_data_bytes(&self) -> usize {
        self.max_data_bytes
    }

    /// The most bytes of a user name or a device label: a session bound to
    /// a longer one is refused at `create` and `login`
    /// ([`Error::LabelTooLong`](crate::Error::LabelTooLong)), so no store is
    /// handed a record it cannot read back.
    ///
    /// # Example
    /// ```
    /// use latchkey::Policy;
    /// assert_eq!(Policy::default().max_label_bytes(), 256);
    /// ```
    pub fn max_label_bytes(&self) -> usize {
        self.max_label_bytes
    }

    /// The most live sessions one user may have, if limited.
    ///
    /// # Example
    /// ```
    /// use latchkey::Policy;
    /// assert_eq!(Policy::default().max_sessions_per_user(), Some(32));
    /// ```
    pub fn max_sessions_per_user(&self) -> Option<usize> {
        self.max_sessions_per_user
    }

    /// What happens when the per-user limit is reached.
    ///
    /// # Example
    /// ```
    /// use latchkey::{Policy, UserLimitAction};
    /// assert_eq!(Policy::default().user_limit_action(), UserLimitAction::EvictOldest);
    /// ```
    pub fn user_limit_action(&self) -> UserLimitAction {
        self.user_limit_action
    }

    /// What happens when a rotated token is reused after the grace window.
    ///
    /// # Example
    /// ```
    /// use latchkey::{Policy, ReuseResponse};
    /// assert_eq!(Policy::default().reuse_response(), ReuseResponse::RevokeSuccessor);
    /// ```
    pub fn reuse_response(&self) -> ReuseResponse {
        self.reuse_response
    }

    /// Whether a [re-authentication](crate::SessionManager::reauthenticate)
    /// also starts a new absolute period (the absolute deadline becomes the
    /// re-authentication time plus the absolute timeout). `false` in every
    /// preset: the absolute deadline stays where login put it.
    ///
    /// Activity never extends the absolute deadline (ASVS 5.0 7.3.2); this
    /// is only about a fresh proof of identity. NIST SP 800-63B-4 (§5.2)
    /// lets a re-authentication extend a session, so `true` is allowed. It
    /// is off by default because a step-up prompt is often weaker than the
    /// login it would stand in for (a password alone, where login also
    /// asked for a second factor), and because with it a session that
    /// keeps re-authenticating has no upper bound: whoever holds a stolen
    /// cookie and the password keeps the session for as long as they like.
    /// Off, every session ends at its absolute deadline and the user logs
    /// in again, which is itself a re-authentication, so the NIST
    /// requirement to re-authenticate at least once per absolute timeout
    /// holds either way.
    ///
    /// # Example
    /// ```
    /// use latchkey::Policy;
    /// assert!(!Policy::default().reauthentication_extends_absolute());
    /// let p = Policy::nist_aal2().to_builder().with_reauthentication_extends_absolute(true).build()?;
    /// assert!(p.reauthentication_extends_absolute());
    /// # Ok::<(), latchkey::PolicyError>(())
    /// ```
    pub fn reauthentication_extends_absolute(&self) -> bool {
        self.reauthentication_extends_absolute
    }

    /// How long a remember-me series lasts: a token issued at a password
    /// login, and every replacement of it, logs in for this long after that
    /// login and no longer (use does not extend it). 30 days in every
    /// preset; at most 400 days.
    ///
    /// A remember-me login proves only possession of a long-lived cookie:
    /// where a policy asks for re-authentication within hours (NIST AAL2
    /// and AAL3), do not offer remember-me at all.
    ///
    /// # Example
    /// ```
    /// use latchkey::Policy;
    /// use std::time::Duration;
    /// assert_eq!(Policy::default().remember_me_lifetime(), Duration::from_secs(30 * 24 * 3600));
    /// ```
    pub fn remember_me_lifetime(&self) -> Duration {
        self.remember_me_lifetime
    }
}

/// The longest remember-me lifetime: 400 days, the longest `Max-Age`
/// browsers honour.
const MAX_REMEMBER_ME_LIFETIME: Duration = Duration::from_secs(400 * 24 * 3600);

impl Default for Policy {
    fn default() -> Policy {
        Policy::owasp()
    }
}

/// Builds a [`Policy`], checking it as a whole in [`build`](Self::build).
#[derive(Clone, Debug)]
#[must_use]
pub struct PolicyBuilder(Policy);

impl PolicyBuilder {
    /// Sets the idle timeout.
    ///
    /// # Example
    /// ```
    /// use latchkey::Policy;
    /// use std::time::Duration;
    /// let p = Policy::builder().with_idle_timeout(Duration::from_secs(300)).build()?;
    /// assert_eq!(p.idle_timeout(), Duration::from_secs(300));
    /// # Ok::<(), latchkey::PolicyError>(())
    /// ```
    pub fn with_idle_timeout(mut self, d: Duration) -> Self {
        self.0.idle_timeout = d;
        self
    }

    /// Sets the absolute timeout.
    ///
    /// # Example
    /// ```
    /// use latchkey::Policy;
    /// use std::time::Duration;
    /// let p = Policy::builder().with_absolute_timeout(Duration::from_secs(4 * 3600)).build()?;
    /// assert_eq!(p.absolute_timeout(), Duration::from_secs(4 * 3600));
    /// # Ok::<(), latchkey::PolicyError>(())
    /// ```
    pub fn with_absolute_timeout(mut self, d: Duration) -> Self {
        self.0.absolute_timeout = d;
        self
    }

    /// Sets the rotation grace window.
    ///
    /// # Example
    /// ```
    /// use latchkey::Policy;
    /// use std::time::Duration;
    /// let p = Policy::builder().with_rotation_grace(Duration::from_secs(5)).build()?;
    /// assert_eq!(p.rotation_grace(), Duration::from_secs(5));
    /// # Ok::<(), latchkey::PolicyError>(())
    /// ```
    pub fn with_rotation_grace(mut self, d: Duration) -> Self {
        self.0.rotation_grace = d;
        self
    }

    /// Sets the touch interval.
    ///
    /// # Example
    /// ```
    /// use latchkey::Policy;
    /// use std::time::Duration;
    /// let p = Policy::builder().with_touch_interval(Duration::from_secs(10)).build()?;
    /// assert_eq!(p.touch_interval(), Duration::from_secs(10));
    /// # Ok::<(), latchkey::PolicyError>(())
    /// ```
    pub fn with_touch_interval(mut self, d: Duration) -> Self {
        self.0.touch_interval = d;
        self
    }

    /// Sets the most bytes of encoded session data.
    ///
    /// # Example
    /// ```
    /// use latchkey::Policy;
    /// let p = Policy::builder().with_max_data_bytes(1024).build()?;
    /// assert_eq!(p.max_data_bytes(), 1024);
    /// # Ok::<(), latchkey::PolicyError>(())
    /// ```
    pub fn with_max_data_bytes(mut self, n: usize) -> Self {
        self.0.max_data_bytes = n;
        self
    }

    /// Sets the most bytes of a user name or a device label.
    ///
    /// # Example
    /// ```
    /// use latchkey::Policy;
    /// let p = Policy::builder().with_max_label_bytes(64).build()?;
    /// assert_eq!(p.max_label_bytes(), 64);
    /// # Ok::<(), latchkey::PolicyError>(())
    /// ```
    pub fn with_max_label_bytes(mut self, n: usize) -> Self {
        self.0.max_label_bytes = n;
        self
    }

    /// Sets the per-user session limit (`None`: unlimited) and what happens
    /// when it is reached.
    ///
    /// # Example
    /// ```
    /// use latchkey::{Policy, UserLimitAction};
    /// let p = Policy::builder().with_max_sessions_per_user(None, UserLimitAction::Refuse).build()?;
    /// assert_eq!(p.max_sessions_per_user(), None);
    /// # Ok::<(), latchkey::PolicyError>(())
    /// ```
    pub fn with_max_sessions_per_user(
        mut self,
        max: Option<usize>,
        action: UserLimitAction,
    ) -> Self {
        self.0.max_sessions_per_user = max;
        self.0.user_limit_action = action;
        self
    }

    /// Sets the response to reuse of a rotated token.
    ///
    /// # Example
    /// ```
    /// use latchkey::{Policy, ReuseResponse};
    /// let p = Policy::builder().with_reuse_response(ReuseResponse::RejectOnly).build()?;
    /// assert_eq!(p.reuse_response(), ReuseResponse::RejectOnly);
    /// # Ok::<(), latchkey::PolicyError>(())
    /// ```
    pub fn with_reuse_response(mut self, r: ReuseResponse) -> Self {
        self.0.reuse_response = r;
        self
    }

    /// Sets whether a re-authentication starts a new absolute period
    /// ([`Policy::reauthentication_extends_absolute`], which says why it is
    /// off by default).
    ///
    /// # Example
    /// ```
    /// use latchkey::Policy;
    /// let p = Policy::builder().with_reauthentication_extends_absolute(true).build()?;
    /// assert!(p.reauthentication_extends_absolute());
    /// # Ok::<(), latchkey::PolicyError>(())
    /// ```
    pub fn with_reauthentication_extends_absolute(mut self, extends: bool) -> Self {
        self.0.reauthentication_extends_absolute = extends;
        self
    }

    /// Sets how long a remember-me series lasts
    /// ([`Policy::remember_me_lifetime`]).
    ///
    /// # Example
    /// ```
    /// use latchkey::{Policy, PolicyError};
    /// use std::time::Duration;
    /// let week = Duration::from_secs(7 * 24 * 3600);
    /// let p = Policy::builder().with_remember_me_lifetime(week).build()?;
    /// assert_eq!(p.remember_me_lifetime(), week);
    /// let forever = Policy::builder().with_remember_me_lifetime(Duration::from_secs(10 * 365 * 24 * 3600)).build();
    /// assert!(matches!(forever, Err(PolicyError::RememberMeTooLong { .. })));
    /// # Ok::<(), PolicyError>(())
    /// ```
    pub fn with_remember_me_lifetime(mut self, d: Duration) -> Self {
        self.0.remember_me_lifetime = d;
        self
    }

    /// Checks the policy as a whole.
    ///
    /// # Errors
    /// [`PolicyError`] naming the first rule broken.
    ///
    /// # Example
    /// ```
    /// use latchkey::{Policy, PolicyError};
    /// use std::time::Duration;
    /// let err = Policy::builder().with_touch_interval(Duration::from_secs(3600)).build().unwrap_err();
    /// assert!(matches!(err, PolicyError::TouchNotBelowIdle { .. }));
    /// ```
    pub fn build(self) -> Result<Policy, PolicyError> {
        let p = self.0;
        for (name, d) in [
            ("idle timeout", p.idle_timeout),
            ("absolute timeout", p.absolute_timeout),
            ("rotation grace", p.rotation_grace),
            ("touch interval", p.touch_interval),
            ("remember-me lifetime", p.remember_me_lifetime),
        ] {
            if d.is_zero() {
                return Err(PolicyError::ZeroDuration(name));
            }
        }
        if p.idle_timeout > p.absolute_timeout {
            return Err(PolicyError::IdleExceedsAbsolute {
                idle: p.idle_timeout,
                absolute: p.absolute_timeout,
            });
        }
        if p.touch_interval >= p.idle_timeout {
            return Err(PolicyError::TouchNotBelowIdle {
                touch: p.touch_interval,
                idle: p.idle_timeout,
            });
        }
        if p.rotation_grace >= p.idle_timeout {
            return Err(PolicyError::GraceNotBelowIdle {
                grace: p.rotation_grace,
                idle: p.idle_timeout,
            });
        }
        if p.max_data_bytes == 0 {
            return Err(PolicyError::ZeroLimit("maximum data size"));
        }
        if p.max_label_bytes == 0 {
            return Err(PolicyError::ZeroLimit(
                "maximum user name and device label size",
            ));
        }
        if p.max_sessions_per_user == Some(0) {
            return Err(PolicyError::ZeroLimit("maximum sessions per user"));
        }
        if p.remember_me_lifetime > MAX_REMEMBER_ME_LIFETIME {
            return Err(PolicyError::RememberMeTooLong {
                lifetime: p.remember_me_lifetime,
                max: MAX_REMEMBER_ME_LIFETIME,
            });
        }
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid_and_match_their_standards() {
        for p in [
            Policy::owasp(),
            Policy::nist_aal1(),
            Policy::nist_aal2(),
            Policy::nist_aal3(),
        ] {
            assert_eq!(p.to_builder().build(), Ok(p.clone()));
        }
        assert_eq!(Policy::nist_aal1().absolute_timeout(), 30 * 24 * HOUR);
        assert_eq!(Policy::nist_aal2().absolute_timeout(), 24 * HOUR);
        assert_eq!(Policy::nist_aal2().idle_timeout(), HOUR);
        assert_eq!(Policy::nist_aal3().absolute_timeout(), 12 * HOUR);
        assert_eq!(Policy::nist_aal3().idle_timeout(), 15 * MIN);
        assert_eq!(Policy::default(), Policy::owasp());
    }

    #[test]
    fn nonsensical_policies_are_refused() {
        let b = Policy::builder;
        assert_eq!(
            b().with_idle_timeout(Duration::ZERO).build(),
            Err(PolicyError::ZeroDuration("idle timeout"))
        );
        assert_eq!(
            b().with_rotation_grace(Duration::ZERO).build(),
            Err(PolicyError::ZeroDuration("rotation grace"))
        );
        assert!(matches!(
            b().with_absolute_timeout(MIN).build(),
            Err(PolicyError::IdleExceedsAbsolute { .. })
        ));
        assert!(matches!(
            b().with_touch_interval(HOUR).build(),
            Err(PolicyError::TouchNotBelowIdle { .. })
        ));
        assert!(matches!(
            b().with_rotation_grace(HOUR).build(),
            Err(PolicyError::GraceNotBelowIdle { .. })
        ));
        assert_eq!(
            b().with_max_data_bytes(0).build(),
            Err(PolicyError::ZeroLimit("maximum data size"))
        );
        assert_eq!(
            b().with_max_sessions_per_user(Some(0), UserLimitAction::Refuse)
                .build(),
            Err(PolicyError::ZeroLimit("maximum sessions per user"))
        );
    }
}
