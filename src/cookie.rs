//! Hardened session cookies: rendering `Set-Cookie` and finding the token in
//! a `Cookie` header.
//!
//! [`CookieConfig`] is built once and shared. Its defaults are the ones the
//! standards ask for (ASVS 3.4.1–3.4.5, NIST SP 800-63B-4 §5.1.1):
//!
//! | attribute | default | why |
//! |---|---|---|
//! | name | `__Host-session` | the browser accepts a `__Host-` cookie only if it is `Secure`, has `Path=/` and no `Domain`, so a sibling subdomain or a plain-http page cannot plant one (cookie tossing) |
//! | `Secure` | on | the token never travels over plain http |
//! | `HttpOnly` | on | script (an XSS payload) cannot read the token |
//! | `SameSite` | `Lax` | cross-site POSTs carry no cookie (CSRF), top-level links still work |
//! | `Path` | `/` | one cookie for the whole site |
//! | `Domain` | none | host-only: not sent to other subdomains |
//! | `Max-Age` | none | a browser-session cookie that dies with the browser (S16) |
//!
//! Combinations browsers reject or that silently undo the protection are
//! build errors ([`CookieError`]); plain-http development needs the
//! explicitly named [`CookieConfig::danger_insecure_http`].
//!
//! # Duplicate cookies
//!
//! A `Cookie` header can carry one name several times: the browser sends
//! every cookie whose domain and path match, and an attacker who controls a
//! sibling subdomain or a plain-http response can add one with a broader
//! `Domain` or a narrower `Path` (cookie tossing). Browsers list cookies with
//! longer paths first, so "take the first" hands the choice to the
//! attacker, and "take the last" merely moves it. latchkey therefore takes a
//! value only when it is unambiguous: identical duplicates collapse to one;
//! duplicates with *different* values are [`CookieError::Ambiguous`], which a
//! framework treats like any other rejection (401, clear the cookie). Under
//! the default `__Host-` name a second value cannot be planted by another
//! host, so ambiguity there means tampering or a badly broken client; the
//! worst an attacker gets is a denial of service, which anyone who can toss
//! cookies already has (by overflowing the header).
//!
//! One legitimate way to get two values: changing a deployed cookie's `Path`
//! or `Domain`, so browsers keep the old copy beside the new one and
//! clearing reaches only the new scope. When you change either, change the
//! name too.
//!
//! # Size limits
//!
//! **Sending.** A browser keeps a cookie of up to [`MAX_SET_COOKIE_BYTES`]
//! (4096) bytes, counting the name, the value and the attributes;
//! [`CookieConfig::set_cookie`] refuses anything longer
//! ([`CookieError::TooLarge`]). [`CookieConfig::max_value_len`] is what that
//! leaves for the value under a given name and attributes (4041 bytes for
//! the default config). A [`TicketManager`](crate::TicketManager) given the
//! config with [`with_cookie`](crate::TicketManager::with_cookie) never
//! issues a ticket longer than that, so a ticket it issues is one the cookie
//! carries.
//!
//! **Reading.** The `Cookie` header holds every cookie of the host, other
//! applications' too, so its size is not ours to police: our cookie is
//! found anywhere in it, up to a cap on the bytes scanned
//! ([`DEFAULT_MAX_HEADER_BYTES`], 64 KiB, settable with
//! [`CookieConfigBuilder::with_max_header_bytes`]). The scan is one linear
//! pass. Past the cap nothing is scanned at all (reading a prefix would let
//! whoever pads the header choose which copy of our cookie is seen), and
//! the lookup is [`CookieError::HeaderTooLarge`]: a rejection that keeps the
//! cookie, so the request runs logged out rather than failing. Every lookup
//! error means the same: no usable session; answer as for a request without
//! a cookie, and clear the cookie if [`CookieError::clears_cookie`] says so.
//!
//! # Example
//! ```
//! use latchkey::{CookieConfig, MemoryStore, NewSession, SessionManager, StoreManager};
//!
//! let cookies = CookieConfig::default();
//! let manager = StoreManager::new(MemoryStore::new());
//! let issued = manager.create(NewSession::new().with_user("alice"))?;
//!
//! // Response: send this as a `Set-Cookie` header.
//! let set_cookie = cookies.set_cookie(&issued)?;
//! assert!(set_cookie.starts_with("__Host-session="));
//! assert!(set_cookie.ends_with("; Path=/; Secure; HttpOnly; SameSite=Lax"));
//!
//! // Next request: the browser sends it back among other cookies.
//! let header = format!("theme=dark; __Host-session={}; lang=en", issued.token());
//! let token = cookies.find_token(&header)?.expect("the session cookie is there");
//! assert_eq!(manager.load(token)?.session.user(), Some("alice"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt::Write as _;

use subtle::ConstantTimeEq;

use crate::clock::Timestamp;
use crate::session::Issued;

/// The most bytes a rendered `Set-Cookie` value may have. RFC 6265 §6.1 asks
/// browsers to keep at least 4096 bytes per cookie, counting name, value and
/// attributes; anything longer may be dropped silently, which would look
/// like a random logout (ASVS 5.0 3.3.5).
pub const MAX_SET_COOKIE_BYTES: usize = 4096;

/// The default cap on the `Cookie` header(s) [`CookieConfig::find_token`]
/// scans: 64 KiB, all `Cookie` headers of a request together.
///
/// Why 64 KiB: front servers refuse a request with a header line of more
/// than 8 KiB (nginx, Apache) to 16 KiB (Node.js) by default, so a header
/// that reaches the application has passed one of those, or a server that
/// allows far more (Go: 1 MiB of headers; hyper: about 400 KiB). 64 KiB is
/// several times what any default front server forwards, so a host full of
/// other applications' cookies never hides ours, while the scan (one linear
/// pass) stays in the microseconds. Past it, [`CookieConfig::find_token`]
/// scans nothing and answers [`CookieError::HeaderTooLarge`]: no session.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 64 * 1024;

/// The longest `Max-Age` a persistent cookie gets: 400 days, the cap RFC
/// 6265bis lets browsers apply anyway.
const MAX_AGE_CAP_SECS: u64 = 400 * 24 * 3600;

/// The longest `; Max-Age=N` a persistent cookie renders: N is at most
/// [`MAX_AGE_CAP_SECS`], eight digits.
const MAX_AGE_ATTR_MAX_LEN: usize = "; Max-Age=".len() + 8;

/// The `SameSite` attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SameSite {
    /// Sent only on same-site requests: the strongest CSRF defence, but a
    /// link from another site (an e-mail) arrives logged out.
    Strict,
    /// Sent on same-site requests and top-level cross-site GET navigations:
    /// cross-site POSTs carry no cookie. The default.
    Lax,
    /// Sent on every request, cross-site included. Requires `Secure`;
    /// needs its own CSRF defence.
    None,
}

impl SameSite {
    fn as_str(self) -> &'static str {
        match self {
            SameSite::Strict => "Strict",
            SameSite::Lax => "Lax",
            SameSite::None => "None",
        }
    }
}

/// How long the browser keeps the cookie.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CookieLifetime {
    /// No `Max-Age`: the cookie dies when the browser session ends, so a
    /// shared computer does not stay logged in (NIST SP 800-63B §7.2). The
    /// default.
    BrowserSession,
    /// `Max-Age` is the session's remaining absolute lifetime (whole
    /// seconds, rounded down, at most 400 days): "remember me" that still
    /// never outlives the server-side session.
    UntilAbsoluteDeadline,
}

/// Why a cookie configuration, a `Set-Cookie` value or a `Cookie` header was
/// refused.
///
/// No variant quotes a cookie value: it may be a token.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CookieError {
    /// The cookie name is empty or has a character outside the HTTP token
    /// set (RFC 9110 §5.6.2).
    #[error("the cookie name is not a valid HTTP token")]
    InvalidName,
    /// A `__Host-` cookie without `Secure`: browsers drop it.
    #[error("a `__Host-` cookie must be Secure")]
    HostPrefixWithoutSecure,
    /// A `__Host-` cookie with a `Domain`: browsers drop it.
    #[error("a `__Host-` cookie must not have a Domain")]
    HostPrefixWithDomain,
    /// A `__Host-` cookie with a path other than `/`: browsers drop it.
    #[error("a `__Host-` cookie must have Path=/")]
    HostPrefixWithPath,
    /// A `__Secure-` cookie without `Secure`: browsers drop it.
    #[error("a `__Secure-` cookie must be Secure")]
    SecurePrefixWithoutSecure,
    /// `SameSite=None` without `Secure`: browsers drop it.
    #[error("a SameSite=None cookie must be Secure")]
    SameSiteNoneWithoutSecure,
    /// The domain is not a plain host name (letters, digits, `-`, `.`).
    #[error("the cookie domain is not a valid host name")]
    InvalidDomain,
    /// The path does not start with `/` or has a control character or `;`.
    #[error("the cookie path must start with `/` and hold no `;` or control characters")]
    InvalidPath,
    /// A cookie value has a character outside RFC 6265's cookie-octet set
    /// (or is empty): it would be mangled or split by the browser.
    #[error("the cookie value has characters a cookie cannot carry")]
    InvalidValue,
    /// The rendered `Set-Cookie` value is longer than browsers keep.
    #[error("the Set-Cookie value is {size} bytes, over the limit of {limit}")]
    TooLarge {
        /// The rendered size.
        size: usize,
        /// The limit, [`MAX_SET_COOKIE_BYTES`].
        limit: usize,
    },
    /// The `Cookie` header is longer than the configured cap
    /// ([`DEFAULT_MAX_HEADER_BYTES`] unless set); the lookup stopped before
    /// parsing the header that crossed it. The request has no usable
    /// session: run it logged out, and keep the cookie (it was not looked
    /// at, and works again once the header shrinks).
    #[error("the Cookie header is {size} bytes, over the limit of {limit}")]
    HeaderTooLarge {
        /// The bytes counted up to and including the header that crossed
        /// the cap (all `Cookie` headers together).
        size: usize,
        /// The configured cap.
        limit: usize,
    },
    /// The session cookie appears with different values, so which one the
    /// client meant cannot be told (see the module docs on cookie tossing).
    #[error("the session cookie appears more than once with different values")]
    Ambiguous,
}

impl CookieError {
    /// Whether this lookup error means the request carries no usable session
    /// cookie: run the request logged out (answer 401 where a session is
    /// required), never a 400. True of every error
    /// [`CookieConfig::find_token`] returns, [`CookieError::HeaderTooLarge`]
    /// included; false of the configuration and rendering errors.
    ///
    /// # Example
    /// ```
    /// use latchkey::CookieError;
    /// assert!(CookieError::Ambiguous.is_rejection());
    /// assert!(CookieError::HeaderTooLarge { size: 70_000, limit: 65_536 }.is_rejection());
    /// assert!(!CookieError::InvalidName.is_rejection());
    /// ```
    pub fn is_rejection(&self) -> bool {
        matches!(
            self,
            CookieError::InvalidValue | CookieError::Ambiguous | CookieError::HeaderTooLarge { .. }
        )
    }

    /// Whether a framework should clear the session cookie after this lookup
    /// error: yes when our cookie was read and is unusable
    /// ([`CookieError::Ambiguous`], [`CookieError::InvalidValue`]); no for
    /// [`CookieError::HeaderTooLarge`], where the cookie was not looked at
    /// and may be fine (the other cookies crowding the header may go away).
    ///
    /// # Example
    /// ```
    /// use latchkey::CookieError;
    /// assert!(CookieError::Ambiguous.clears_cookie());
    /// let crowded = CookieError::HeaderTooLarge { size: 70_000, limit: 65_536 };
    /// assert!(crowded.is_rejection() && !crowded.clears_cookie());
    /// ```
    pub fn clears_cookie(&self) -> bool {
        matches!(self, CookieError::InvalidValue | CookieError::Ambiguous)
    }
}

/// How the session cookie is named, scoped and found.
///
/// Build one with [`CookieConfig::builder`] (or take the
/// [`Default`]), share it, and use [`set_cookie`](Self::set_cookie),
/// [`clear_cookie`](Self::clear_cookie) and
/// [`find_token`](Self::find_token). A built config always renders a
/// cookie browsers accept.
///
/// # Example
/// ```
/// use latchkey::{CookieConfig, CookieError, CookieLifetime, SameSite};
///
/// let strict = CookieConfig::builder()
///     .with_same_site(SameSite::Strict)
///     .with_lifetime(CookieLifetime::UntilAbsoluteDeadline)
///     .build()?;
/// assert_eq!(strict.name(), "__Host-session");
///
/// // Browsers drop a `__Host-` cookie that names a Domain: refused up front.
/// let bad = CookieConfig::builder().with_domain("example.com").build();
/// assert_eq!(bad.unwrap_err(), CookieError::HostPrefixWithDomain);
/// # Ok::<(), CookieError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CookieConfig {
    name: String,
    secure: bool,
    http_only: bool,
    same_site: SameSite,
    path: String,
    domain: Option<String>,
    lifetime: CookieLifetime,
    max_header_bytes: usize,
    /// `"; Path=/; Secure; HttpOnly; SameSite=Lax"` and the like: the
    /// attributes after Max-Age, rendered once at build time.
    attributes: String,
}

impl Default for CookieConfig {
    /// The secure defaults: `__Host-session`, `Secure`, `HttpOnly`,
    /// `SameSite=Lax`, `Path=/`, no `Domain`, a browser-session cookie.
    fn default() -> CookieConfig {
        // The default builder passes every check; the fallback only keeps
        // this free of a panic path.
        CookieConfig::builder()
            .build()
            .unwrap_or_else(|_| CookieConfig::assemble(CookieConfigBuilder::default()))
    }
}

impl CookieConfig {
    /// A builder starting from the secure defaults.
    ///
    /// # Example
    /// ```
    /// use latchkey::{CookieConfig, CookieError, CookieLifetime, SameSite};
    /// let c = CookieConfig::builder().with_same_site(SameSite::Strict).build()?;
    /// assert_eq!(c.same_site(), SameSite::Strict);
    /// # Ok::<(), latchkey::CookieError>(())
    /// ```
    pub fn builder() -> CookieConfigBuilder {
        CookieConfigBuilder::default()
    }

    /// The config for plain-http local development: the defaults without
    /// `Secure`, named `latchkey-session` (a `__Host-` name requires
    /// `Secure`).
    ///
    /// **Risky**: over plain http anyone on the path can read the token and
    /// become the user. Use it on `127.0.0.1` only, never in production
    /// (behind a TLS-terminating proxy, keep the default: the browser sees
    /// https).
    ///
    /// # Example
    /// ```
    /// use latchkey::CookieConfig;
    /// let dev = CookieConfig::danger_insecure_http();
    /// assert_eq!(dev.name(), "latchkey-session");
    /// assert!(!dev.is_secure());
    /// ```
    pub fn danger_insecure_http() -> CookieConfig {
        let builder = CookieConfig::builder()
            .with_name("latchkey-session")
            .danger_insecure_http();
        let fallback = builder.clone();
        builder
            .build()
            .unwrap_or_else(|_| CookieConfig::assemble(fallback))
    }

    fn assemble(b: CookieConfigBuilder) -> CookieConfig {
        let mut attributes = String::new();
        if let Some(domain) = &b.domain {
            let _ = write!(attributes, "; Domain={domain}");
        }
        let _ = write!(attributes, "; Path={}", b.path);
        if b.secure {
            attributes.push_str("; Secure");
        }
        if b.http_only {
            attributes.push_str("; HttpOnly");
        }
        let _ = write!(attributes, "; SameSite={}", b.same_site.as_str());
        CookieConfig {
            name: b.name,
            secure: b.secure,
            http_only: b.http_only,
            same_site: b.same_site,
            path: b.path,
            domain: b.domain,
            lifetime: b.lifetime,
            max_header_bytes: b.max_header_bytes,
            attributes,
        }
    }

    /// The cookie name.
    ///
    /// # Example
    /// ```
    /// use latchkey::{CookieConfig, CookieError, CookieLifetime, SameSite};
    /// assert_eq!(CookieConfig::default().name(), "__Host-session");
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the cookie carries `Secure`.
    ///
    /// # Example
    /// ```
    /// use latchkey::{CookieConfig, CookieError, CookieLifetime, SameSite};
    /// assert!(CookieConfig::default().is_secure());
    /// assert!(!CookieConfig::danger_insecure_http().is_secure());
    /// ```
    pub fn is_secure(&self) -> bool {
        self.secure
    }

    /// The `SameSite` attribute.
    ///
    /// # Example
    /// ```
    /// use latchkey::{CookieConfig, CookieError, CookieLifetime, SameSite};
    /// assert_eq!(CookieConfig::default().same_site(), SameSite::Lax);
    /// ```
    pub fn same_site(&self) -> SameSite {
        self.same_site
    }

    /// How long the browser keeps the cookie.
    ///
    /// # Example
    /// ```
    /// use latchkey::{CookieConfig, CookieError, CookieLifetime, SameSite};
    /// assert_eq!(CookieConfig::default().lifetime(), CookieLifetime::BrowserSession);
    /// ```
    pub fn lifetime(&self) -> CookieLifetime {
        self.lifetime
    }

    /// This cookie with another [`CookieLifetime`]: same name, scope and
    /// attributes, so the same cookie is found, replaced and cleared either
    /// way. A lifetime is never a build error, so this cannot fail. It is
    /// how the session cookie's persistence is chosen per session: keep a
    /// browser-session config and its persistent twin, and send each
    /// session in the one its user chose ("keep me signed in").
    ///
    /// # Example
    /// ```
    /// use latchkey::{CookieConfig, CookieLifetime};
    /// let session = CookieConfig::default();
    /// let persistent = session.clone().with_lifetime(CookieLifetime::UntilAbsoluteDeadline);
    /// assert_eq!(persistent.lifetime(), CookieLifetime::UntilAbsoluteDeadline);
    /// assert_eq!(persistent.clear_cookie(), session.clear_cookie());
    /// ```
    #[must_use]
    pub fn with_lifetime(mut self, lifetime: CookieLifetime) -> CookieConfig {
        self.lifetime = lifetime;
        self
    }

    /// The most bytes of `Cookie` header(s) [`find_token`](Self::find_token)
    /// scans ([`DEFAULT_MAX_HEADER_BYTES`] unless set).
    ///
    /// # Example
    /// ```
    /// use latchkey::{CookieConfig, DEFAULT_MAX_HEADER_BYTES};
    /// assert_eq!(CookieConfig::default().max_header_bytes(), DEFAULT_MAX_HEADER_BYTES);
    /// ```
    pub fn max_header_bytes(&self) -> usize {
        self.max_header_bytes
    }

    /// The longest value [`set_cookie`](Self::set_cookie) accepts at any
    /// time: [`MAX_SET_COOKIE_BYTES`] less the name, the `=`, the attributes
    /// and, for a [`CookieLifetime::UntilAbsoluteDeadline`] cookie, the
    /// longest `Max-Age` (`; Max-Age=` and eight digits, 18 bytes). A value
    /// of cookie octets no longer than this always renders; one byte more
    /// is refused by a browser-session cookie (a persistent one may fit a
    /// few more bytes while its `Max-Age` is short, but not for sure). Zero
    /// if the name and attributes alone use up the 4096 bytes.
    ///
    /// [`TicketManager::with_cookie`](crate::TicketManager::with_cookie)
    /// caps the tickets it issues at this.
    ///
    /// # Example
    /// ```
    /// use latchkey::{CookieConfig, CookieLifetime};
    /// // 4096 - "__Host-session=" - "; Path=/; Secure; HttpOnly; SameSite=Lax"
    /// assert_eq!(CookieConfig::default().max_value_len(), 4096 - 15 - 40);
    /// let remember = CookieConfig::builder()
    ///     .with_lifetime(CookieLifetime::UntilAbsoluteDeadline)
    ///     .build()?;
    /// assert_eq!(remember.max_value_len(), 4041 - "; Max-Age=34560000".len());
    /// # Ok::<(), latchkey::CookieError>(())
    /// ```
    pub fn max_value_len(&self) -> usize {
        let max_age = match self.lifetime {
            CookieLifetime::BrowserSession => 0,
            CookieLifetime::UntilAbsoluteDeadline => MAX_AGE_ATTR_MAX_LEN,
        };
        let fixed = self.name.len() + "=".len() + max_age + self.attributes.len();
        MAX_SET_COOKIE_BYTES.saturating_sub(fixed)
    }

    /// The `Set-Cookie` value carrying `issued`'s token. Under
    /// [`CookieLifetime::UntilAbsoluteDeadline`], `Max-Age` counts from
    /// [`Issued::issued_at`], the manager's clock at the call that issued
    /// the token: time enters once, and no second clock is read here.
    ///
    /// # Errors
    /// As for [`set_cookie_at`](Self::set_cookie_at).
    ///
    /// # Example
    /// ```
    /// use latchkey::{CookieConfig, Fingerprint, Issued, Timestamp};
    /// let issued = Issued::new(
    ///     "t0ken".into(),
    ///     Fingerprint::from_hex("0123456789ab").unwrap(),
    ///     Timestamp::UNIX_EPOCH,
    ///     Timestamp::UNIX_EPOCH,
    /// );
    /// let v = CookieConfig::default().set_cookie(&issued)?;
    /// assert_eq!(v, "__Host-session=t0ken; Path=/; Secure; HttpOnly; SameSite=Lax");
    /// # Ok::<(), latchkey::CookieError>(())
    /// ```
    pub fn set_cookie(&self, issued: &Issued) -> Result<String, CookieError> {
        self.set_cookie_at(issued, issued.issued_at())
    }

    /// The `Set-Cookie` value carrying `issued`'s token, with `now` for
    /// `Max-Age` under [`CookieLifetime::UntilAbsoluteDeadline`]. A deadline
    /// already passed gives `Max-Age=0`: the browser drops the cookie, as it
    /// should a dead session's.
    ///
    /// # Errors
    /// [`CookieError::InvalidValue`] if the token has characters a cookie
    /// cannot carry (it never does for tokens latchkey issues);
    /// [`CookieError::TooLarge`] over [`MAX_SET_COOKIE_BYTES`], which a
    /// token no longer than [`max_value_len`](Self::max_value_len) never is.
    ///
    /// # Example
    /// ```
    /// use latchkey::{CookieConfig, CookieLifetime, Fingerprint, Issued, Timestamp};
    /// let issued = Issued::new(
    ///     "t0ken".into(),
    ///     Fingerprint::from_hex("0123456789ab").unwrap(),
    ///     Timestamp::from_unix_millis(60_000),
    ///     Timestamp::from_unix_millis(3_600_000),
    /// );
    /// let remember = CookieConfig::builder()
    ///     .with_lifetime(CookieLifetime::UntilAbsoluteDeadline)
    ///     .build()?;
    /// let v = remember.set_cookie_at(&issued, Timestamp::from_unix_millis(1_000))?;
    /// assert!(v.starts_with("__Host-session=t0ken; Max-Age=3599; Path=/"));
    /// # Ok::<(), latchkey::CookieError>(())
    /// ```
    pub fn set_cookie_at(&self, issued: &Issued, now: Timestamp) -> Result<String, CookieError> {
        let value = issued.token();
        if value.is_empty() || !value.bytes().all(is_cookie_octet) {
            return Err(CookieError::InvalidValue);
        }
        let mut out = String::with_capacity(self.name.len() + value.len() + 80);
        out.push_str(&self.name);
        out.push('=');
        out.push_str(value);
        if self.lifetime == CookieLifetime::UntilAbsoluteDeadline {
            let remaining = issued.absolute_deadline().duration_since(now);
            let secs = remaining.as_secs().min(MAX_AGE_CAP_SECS);
            let _ = write!(out, "; Max-Age={secs}");
        }
        out.push_str(&self.attributes);
        if out.len() > MAX_SET_COOKIE_BYTES {
            return Err(CookieError::TooLarge {
                size: out.len(),
                limit: MAX_SET_COOKIE_BYTES,
            });
        }
        Ok(out)
    }

    /// The `Set-Cookie` value that deletes the session cookie: same name,
    /// path and domain (a browser matches on those), empty value, `Max-Age=0`.
    ///
    /// # Example
    /// ```
    /// use latchkey::CookieConfig;
    /// assert_eq!(
    ///     CookieConfig::default().clear_cookie(),
    ///     "__Host-session=; Max-Age=0; Path=/; Secure; HttpOnly; SameSite=Lax"
    /// );
    /// ```
    pub fn clear_cookie(&self) -> String {
        format!("{}=; Max-Age=0{}", self.name, self.attributes)
    }

    /// Finds the session token in a `Cookie` request header.
    ///
    /// Pairs are split at `;` and at their first `=`, with surrounding
    /// spaces and tabs trimmed and one pair of double quotes removed (RFC
    /// 6265 §4.2.1, §5.4). Names compare byte for byte, case-sensitively, and
    /// are never percent-decoded, so `__host-session` or `__%48ost-session`
    /// is another cookie. A pair without a name (`=x`, or `x` alone) never
    /// matches. Garbage elsewhere in the header is ignored.
    ///
    /// Returns `Ok(None)` when the cookie is absent. The value is not checked
    /// as a token, nor for length: that is the manager's job, and it refuses
    /// without I/O (an overlong ticket before decoding) and tells its
    /// [`Observer`](crate::Observer).
    ///
    /// Other applications' cookies may fill the header: ours is found
    /// wherever it is, in one linear pass over at most
    /// [`max_header_bytes`](Self::max_header_bytes) (64 KiB by default).
    ///
    /// # Errors
    /// Each means the request has no usable session
    /// ([`CookieError::is_rejection`]): run it logged out, never answer 400.
    /// - [`CookieError::HeaderTooLarge`] over the cap; the header that
    ///   crossed it was not parsed, so no copy of our cookie in it is
    ///   trusted, not even one before the cap. Keep the cookie
    ///   ([`CookieError::clears_cookie`] is `false`).
    /// - [`CookieError::Ambiguous`] when the cookie appears with different
    ///   values (see the module docs); identical repeats, however many, are
    ///   one cookie.
    /// - [`CookieError::InvalidValue`] when the cookie is present but no
    ///   occurrence has a valid value. A malformed duplicate next to a valid
    ///   one is skipped, so junk cannot make a good cookie ambiguous.
    ///
    /// # Example
    /// ```
    /// use latchkey::{CookieConfig, CookieError};
    /// let c = CookieConfig::default();
    /// assert_eq!(c.find_token("a=1;  __Host-session=\"abc\" ;b")?, Some("abc"));
    /// assert_eq!(c.find_token("session=abc")?, None);
    /// assert_eq!(
    ///     c.find_token("__Host-session=abc; __Host-session=xyz").unwrap_err(),
    ///     CookieError::Ambiguous
    /// );
    /// # Ok::<(), CookieError>(())
    /// ```
    pub fn find_token<'h, H>(&self, header: &'h H) -> Result<Option<&'h str>, CookieError>
    where
        H: AsRef<[u8]> + ?Sized,
    {
        self.find_token_in([header.as_ref()])
    }

    /// Like [`find_token`](Self::find_token), over several `Cookie` headers
    /// of one request (HTTP/2 may split the cookies across headers, RFC 9113
    /// §8.2.3). The size cap applies to all of them together, and the work
    /// stays linear in their total size however many there are.
    ///
    /// # Errors
    /// As for [`find_token`](Self::find_token).
    ///
    /// # Example
    /// ```
    /// use latchkey::CookieConfig;
    /// let c = CookieConfig::default();
    /// let headers: [&[u8]; 2] = [b"a=1", b"__Host-session=abc"];
    /// assert_eq!(c.find_token_in(headers)?, Some("abc"));
    /// # Ok::<(), latchkey::CookieError>(())
    /// ```
    pub fn find_token_in<'h, I>(&self, headers: I) -> Result<Option<&'h str>, CookieError>
    where
        I: IntoIterator<Item = &'h [u8]>,
    {
        let name = self.name.as_bytes();
        let mut found: Option<&'h [u8]> = None;
        let mut ambiguous = false;
        let mut present = false;
        let mut size = 0usize;
        for header in headers {
            // Size before parsing: an oversized header costs one addition,
            // and the whole request never costs more than the cap to parse.
            // All or nothing: stopping at the cap but trusting what came
            // before it would let whoever pads the header (a sibling
            // subdomain's cookies) push our real copy out of sight of a
            // tossed one listed first.
            size = size.saturating_add(header.len());
            if size > self.max_header_bytes {
                return Err(CookieError::HeaderTooLarge {
                    size,
                    limit: self.max_header_bytes,
                });
            }
            for pair in header.split(|&b| b == b';') {
                let Some(eq) = pair.iter().position(|&b| b == b'=') else {
                    continue;
                };
                if trim_ows(&pair[..eq]) != name {
                    continue;
                }
                present = true;
                let Some(value) = cookie_value(&pair[eq + 1..]) else {
                    continue;
                };
                match found {
                    None => found = Some(value),
                    // Both values come from the client, but they are tokens:
                    // compare without a data-dependent early exit anyway.
                    Some(prev) if bool::from(prev.ct_eq(value)) => {}
                    Some(_) => ambiguous = true,
                }
            }
        }
        match found {
            _ if ambiguous => Err(CookieError::Ambiguous),
            // Cookie octets are ASCII, so this conversion cannot fail.
            Some(v) => Ok(std::str::from_utf8(v).ok()),
            None if present => Err(CookieError::InvalidValue),
            None => Ok(None),
        }
    }
}

/// Builds a [`CookieConfig`], checking the combination as a whole.
///
/// # Example
/// ```
/// use latchkey::{CookieConfig, CookieError, SameSite};
///
/// let cfg = CookieConfig::builder()
///     .with_name("__Secure-sid")
///     .with_domain("example.com")
///     .build()?;
/// assert!(cfg.clear_cookie().contains("; Domain=example.com; "));
///
/// let bad = CookieConfig::builder()
///     .with_name("sid")
///     .with_same_site(SameSite::None)
///     .danger_insecure_http()
///     .build();
/// assert_eq!(bad.unwrap_err(), CookieError::SameSiteNoneWithoutSecure);
/// # Ok::<(), CookieError>(())
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct CookieConfigBuilder {
    name: String,
    secure: bool,
    http_only: bool,
    same_site: SameSite,
    path: String,
    domain: Option<String>,
    lifetime: CookieLifetime,
    max_header_bytes: usize,
}

impl Default for CookieConfigBuilder {
    fn default() -> CookieConfigBuilder {
        CookieConfigBuilder {
            name: "__Host-session".into(),
            secure: true,
            http_only: true,
            same_site: SameSite::Lax,
            path: "/".into(),
            domain: None,
            lifetime: CookieLifetime::BrowserSession,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
        }
    }
}

impl CookieConfigBuilder {
    /// Names the cookie. Keep a `__Host-` prefix unless you need a
    /// `Domain` or a narrower path (then prefer `__Secure-`).
    ///
    /// # Example
    /// ```
    /// use latchkey::{CookieConfig, CookieError, CookieLifetime, SameSite};
    /// let c = CookieConfig::builder().with_name("__Host-app").build()?;
    /// assert_eq!(c.name(), "__Host-app");
    /// # Ok::<(), latchkey::CookieError>(())
    /// ```
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Sets `SameSite`.
    ///
    /// # Example
    /// ```
    /// use latchkey::{CookieConfig, CookieError, CookieLifetime, SameSite};
    /// let err = CookieConfig::builder().with_same_site(SameSite::None).danger_insecure_http().build();
    /// assert!(err.is_err()); // SameSite=None needs Secure
    /// ```
    pub fn with_same_site(mut self, same_site: SameSite) -> Self {
        self.same_site = same_site;
        self
    }

    /// Sets `Path` (default `/`).
    ///
    /// # Example
    /// ```
    /// use latchkey::{CookieConfig, CookieError, CookieLifetime, SameSite};
    /// // __Host- cookies must use Path=/.
    /// assert_eq!(CookieConfig::builder().with_path("/app").build().unwrap_err(), CookieError::HostPrefixWithPath);
    /// ```
    pub fn with_path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// Sets `Domain`, sharing the cookie with every subdomain of `domain`
    /// (and exposing it to all of them). Incompatible with `__Host-`.
    ///
    /// # Example
    /// ```
    /// use latchkey::{CookieConfig, CookieError, CookieLifetime, SameSite};
    /// assert_eq!(CookieConfig::builder().with_domain("example.com").build().unwrap_err(), CookieError::HostPrefixWithDomain);
    /// ```
    pub fn with_domain(mut self, domain: impl Into<String>) -> Self {
        self.domain = Some(domain.into());
        self
    }

    /// Chooses a browser-session cookie (default) or one that lives until
    /// the session's absolute deadline.
    ///
    /// # Example
    /// ```
    /// use latchkey::{CookieConfig, CookieError, CookieLifetime, SameSite};
    /// let c = CookieConfig::builder().with_lifetime(CookieLifetime::UntilAbsoluteDeadline).build()?;
    /// assert_eq!(c.lifetime(), CookieLifetime::UntilAbsoluteDeadline);
    /// # Ok::<(), latchkey::CookieError>(())
    /// ```
    pub fn with_lifetime(mut self, lifetime: CookieLifetime) -> Self {
        self.lifetime = lifetime;
        self
    }

    /// Caps the `Cookie` header(s) [`CookieConfig::find_token`] will scan
    /// (default [`DEFAULT_MAX_HEADER_BYTES`], 64 KiB). Past the cap the
    /// lookup is [`CookieError::HeaderTooLarge`]: no session, cookie kept.
    /// Keep it at least as large as what your front server lets through, or
    /// users of a host crowded with cookies are logged out.
    ///
    /// # Example
    /// ```
    /// use latchkey::{CookieConfig, CookieError, CookieLifetime, SameSite};
    /// let c = CookieConfig::builder().with_max_header_bytes(64).build()?;
    /// let err = c.find_token(&"a=b; ".repeat(100)).unwrap_err();
    /// assert!(err.is_rejection() && !err.clears_cookie());
    /// # Ok::<(), latchkey::CookieError>(())
    /// ```
    pub fn with_max_header_bytes(mut self, n: usize) -> Self {
        self.max_header_bytes = n;
        self
    }

    /// Drops `Secure` so the cookie works over plain http.
    ///
    /// **Risky**: the token then crosses the network in clear text. For
    /// local development on `127.0.0.1` only. A `__Host-` or `__Secure-`
    /// name, or `SameSite=None`, still requires `Secure`, so rename the
    /// cookie too (or use [`CookieConfig::danger_insecure_http`]).
    ///
    /// # Example
    /// ```
    /// use latchkey::{CookieConfig, CookieError, CookieLifetime, SameSite};
    /// let dev = CookieConfig::danger_insecure_http();
    /// assert!(!dev.is_secure());
    /// assert!(!dev.name().starts_with("__Host-"));
    /// ```
    pub fn danger_insecure_http(mut self) -> Self {
        self.secure = false;
        self
    }

    /// Drops `HttpOnly`, letting page scripts (and any XSS payload) read the
    /// token.
    ///
    /// **Risky**: only for a client that must read the token from script
    /// and has no safer channel.
    ///
    /// # Example
    /// ```
    /// use latchkey::{CookieConfig, CookieError, CookieLifetime, SameSite};
    /// let c = CookieConfig::builder().danger_script_readable().build()?;
    /// assert!(c.is_secure());
    /// # Ok::<(), latchkey::CookieError>(())
    /// ```
    pub fn danger_script_readable(mut self) -> Self {
        self.http_only = false;
        self
    }

    /// Checks the combination and builds the config.
    ///
    /// # Errors
    /// [`CookieError::InvalidName`], [`CookieError::InvalidPath`],
    /// [`CookieError::InvalidDomain`], and the combinations browsers reject:
    /// [`CookieError::HostPrefixWithoutSecure`],
    /// [`CookieError::HostPrefixWithDomain`],
    /// [`CookieError::HostPrefixWithPath`],
    /// [`CookieError::SecurePrefixWithoutSecure`],
    /// [`CookieError::SameSiteNoneWithoutSecure`].
    ///
    /// # Example
    /// ```
    /// use latchkey::{CookieConfig, CookieError, CookieLifetime, SameSite};
    /// assert_eq!(CookieConfig::builder().build()?, CookieConfig::default());
    /// # Ok::<(), latchkey::CookieError>(())
    /// ```
    pub fn build(self) -> Result<CookieConfig, CookieError> {
        if self.name.is_empty() || !self.name.bytes().all(is_tchar) {
            return Err(CookieError::InvalidName);
        }
        if self.path.is_empty()
            || !self.path.starts_with('/')
            || self
                .path
                .bytes()
                .any(|b| b == b';' || !(0x20..0x7f).contains(&b))
        {
            return Err(CookieError::InvalidPath);
        }
        if let Some(d) = &self.domain
            && (d.is_empty()
                || d.len() > 253
                || d.starts_with('.')
                || d.ends_with('.')
                || d.contains("..")
                || !d
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.'))
        {
            return Err(CookieError::InvalidDomain);
        }
        // RFC 6265bis §4.1.3: browsers match the prefixes case-insensitively
        // when accepting a cookie, so `__host-` gets the same rules here.
        let lower = self.name.to_ascii_lowercase();
        if lower.starts_with("__host-") {
            if !self.secure {
                return Err(CookieError::HostPrefixWithoutSecure);
            }
            if self.domain.is_some() {
                return Err(CookieError::HostPrefixWithDomain);
            }
            if self.path != "/" {
                return Err(CookieError::HostPrefixWithPath);
            }
        }
        if lower.starts_with("__secure-") && !self.secure {
            return Err(CookieError::SecurePrefixWithoutSecure);
        }
        if self.same_site == SameSite::None && !self.secure {
            return Err(CookieError::SameSiteNoneWithoutSecure);
        }
        Ok(CookieConfig::assemble(self))
    }
}

/// RFC 9110 §5.6.2 `tchar`: what a cookie name may hold.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// RFC 6265 §4.1.1 `cookie-octet`: visible ASCII except `"`, `,`, `;` and
/// `\`.
fn is_cookie_octet(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E)
}

/// Trims optional whitespace (spaces and tabs) from both ends.
fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// The cookie value in `raw` (what follows the first `=`): trimmed, one
/// pair of surrounding double quotes removed, and `None` unless what remains
/// is a non-empty run of cookie octets.
fn cookie_value(raw: &[u8]) -> Option<&[u8]> {
    let mut v = trim_ows(raw);
    if let [b'"', inner @ .., b'"'] = v {
        v = inner;
    }
    (!v.is_empty() && v.iter().copied().all(is_cookie_octet)).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::{Fingerprint, SessionId};

    fn issued(token: &str, absolute_ms: u64) -> Issued {
        Issued::new(
            token.into(),
            Fingerprint::from_hex("0123456789ab").unwrap_or_else(|| unreachable!()),
            Timestamp::from_unix_millis(absolute_ms),
            Timestamp::from_unix_millis(absolute_ms),
        )
    }

    #[test]
    fn max_age_counts_from_when_the_token_was_issued() {
        let remember = CookieConfig::builder()
            .with_lifetime(CookieLifetime::UntilAbsoluteDeadline)
            .build()
            .unwrap();
        let issued =
            issued("t0ken", 3_600_000).with_issued_at(Timestamp::from_unix_millis(600_000));
        let v = remember.set_cookie(&issued).unwrap();
        assert!(v.contains("; Max-Age=3000;"), "{v}");
    }

    #[test]
    fn defaults_render_every_hardening_attribute() {
        let token = SessionId::generate().to_token();
        let v = CookieConfig::default()
            .set_cookie_at(&issued(&token, 0), Timestamp::UNIX_EPOCH)
            .unwrap();
        assert_eq!(
            v,
            format!("__Host-session={token}; Path=/; Secure; HttpOnly; SameSite=Lax")
        );
        assert!(
            !v.contains("Max-Age"),
            "a browser-session cookie by default"
        );
        assert!(!v.contains("Domain"));
    }

    #[test]
    fn persistent_cookie_lives_until_the_absolute_deadline_rounded_down() {
        let c = CookieConfig::builder()
            .with_lifetime(CookieLifetime::UntilAbsoluteDeadline)
            .build()
            .unwrap();
        let i = issued("t", 10_999);
        let v = c
            .set_cookie_at(&i, Timestamp::from_unix_millis(1_000))
            .unwrap();
        assert!(v.contains("; Max-Age=9; "), "{v}");
        let past = c
            .set_cookie_at(&i, Timestamp::from_unix_millis(20_000))
            .unwrap();
        assert!(past.contains("; Max-Age=0; "), "{past}");
        let far = issued("t", u64::MAX);
        let v = c.set_cookie_at(&far, Timestamp::UNIX_EPOCH).unwrap();
        assert!(
            v.contains(&format!("; Max-Age={MAX_AGE_CAP_SECS}; ")),
            "{v}"
        );
    }

    #[test]
    fn combinations_browsers_reject_are_build_errors() {
        let b = CookieConfig::builder;
        assert_eq!(
            b().danger_insecure_http().build().unwrap_err(),
            CookieError::HostPrefixWithoutSecure
        );
        assert_eq!(
            b().with_domain("example.com").build().unwrap_err(),
            CookieError::HostPrefixWithDomain
        );
        assert_eq!(
            b().with_path("/app").build().unwrap_err(),
            CookieError::HostPrefixWithPath
        );
        assert_eq!(
            b().with_name("__HOST-x")
                .danger_insecure_http()
                .build()
                .unwrap_err(),
            CookieError::HostPrefixWithoutSecure
        );
        assert_eq!(
            b().with_name("__Secure-x")
                .danger_insecure_http()
                .build()
                .unwrap_err(),
            CookieError::SecurePrefixWithoutSecure
        );
        assert_eq!(
            b().with_name("x")
                .with_same_site(SameSite::None)
                .danger_insecure_http()
                .build()
                .unwrap_err(),
            CookieError::SameSiteNoneWithoutSecure
        );
        for bad in ["", "a b", "a=b", "a;b", "sess\u{e9}", "a\"b", "a,b"] {
            assert_eq!(
                b().with_name(bad).build().unwrap_err(),
                CookieError::InvalidName,
                "{bad:?}"
            );
        }
        for bad in ["", "app", "/a;b", "/a\nb"] {
            assert_eq!(
                b().with_name("s").with_path(bad).build().unwrap_err(),
                CookieError::InvalidPath,
                "{bad:?}"
            );
        }
        for bad in ["", ".example.com", "a..b", "ex ample.com", "a;b", "é.com"] {
            assert_eq!(
                b().with_name("s").with_domain(bad).build().unwrap_err(),
                CookieError::InvalidDomain,
                "{bad:?}"
            );
        }
        assert!(
            b().with_name("__Secure-s")
                .with_domain("example.com")
                .build()
                .is_ok()
        );
        assert!(b().with_same_site(SameSite::None).build().is_ok());
    }

    #[test]
    fn insecure_dev_config_drops_secure_and_the_prefix_only() {
        let c = CookieConfig::danger_insecure_http();
        let v = c
            .set_cookie_at(&issued("t", 0), Timestamp::UNIX_EPOCH)
            .unwrap();
        assert_eq!(v, "latchkey-session=t; Path=/; HttpOnly; SameSite=Lax");
    }

    #[test]
    fn clearing_matches_the_issued_cookie_scope() {
        let c = CookieConfig::builder()
            .with_name("__Secure-s")
            .with_domain("example.com")
            .with_path("/app")
            .build()
            .unwrap();
        assert_eq!(
            c.clear_cookie(),
            "__Secure-s=; Max-Age=0; Domain=example.com; Path=/app; Secure; HttpOnly; SameSite=Lax"
        );
    }

    #[test]
    fn render_refuses_values_a_cookie_cannot_carry() {
        let c = CookieConfig::default();
        for bad in ["", "a b", "a;b", "a,b", "a\"b", "a\\b", "é", "a\nb"] {
            assert_eq!(
                c.set_cookie_at(&issued(bad, 0), Timestamp::UNIX_EPOCH),
                Err(CookieError::InvalidValue),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn render_refuses_cookies_over_4096_bytes() {
        let c = CookieConfig::default();
        let fixed = "__Host-session=; Path=/; Secure; HttpOnly; SameSite=Lax".len();
        let fits = "a".repeat(MAX_SET_COOKIE_BYTES - fixed);
        let v = c
            .set_cookie_at(&issued(&fits, 0), Timestamp::UNIX_EPOCH)
            .unwrap();
        assert_eq!(v.len(), MAX_SET_COOKIE_BYTES);
        let over = "a".repeat(MAX_SET_COOKIE_BYTES - fixed + 1);
        assert_eq!(
            c.set_cookie_at(&issued(&over, 0), Timestamp::UNIX_EPOCH),
            Err(CookieError::TooLarge {
                size: MAX_SET_COOKIE_BYTES + 1,
                limit: MAX_SET_COOKIE_BYTES
            })
        );
    }

    #[test]
    fn lookup_tolerates_whitespace_quotes_and_garbage() {
        let c = CookieConfig::default();
        let cases: &[(&str, Option<&str>)] = &[
            ("__Host-session=abc", Some("abc")),
            ("  __Host-session = abc  ", Some("abc")),
            ("\t__Host-session=\"abc\"", Some("abc")),
            ("x=1;__Host-session=abc;y=2", Some("abc")),
            (";;;__Host-session=abc;;", Some("abc")),
            ("garbage; \u{1}\u{2}=; ===; __Host-session=abc", Some("abc")),
            ("__Host-session=a=b", Some("a=b")),
            ("", None),
            ("__host-session=abc", None),
            ("__%48ost-session=abc", None),
            ("Host-session=abc", None),
            ("__Host-session", None),
            ("=__Host-session=abc", None),
            ("x__Host-session=abc", None),
            ("__Host-sessionx=abc", None),
        ];
        for (header, want) in cases {
            assert_eq!(c.find_token(header).unwrap(), *want, "{header:?}");
        }
    }

    #[test]
    fn lookup_collapses_identical_duplicates_and_refuses_different_ones() {
        let c = CookieConfig::default();
        assert_eq!(
            c.find_token("__Host-session=abc; __Host-session=\"abc\"")
                .unwrap(),
            Some("abc")
        );
        // A tossed cookie listed first (longer path) must not win.
        assert_eq!(
            c.find_token("__Host-session=evil; __Host-session=abc"),
            Err(CookieError::Ambiguous)
        );
        assert_eq!(
            c.find_token("__Host-session=a; __Host-session=b; __Host-session=a; __Host-session=c"),
            Err(CookieError::Ambiguous)
        );
    }

    #[test]
    fn lookup_skips_malformed_duplicates_but_reports_a_lone_malformed_value() {
        let c = CookieConfig::default();
        assert_eq!(
            c.find_token("__Host-session=a b; __Host-session=abc")
                .unwrap(),
            Some("abc")
        );
        for bad in [
            "__Host-session=",
            "__Host-session=\"\"",
            "__Host-session=a b",
            "__Host-session=a,b",
            "__Host-session=\"abc",
            "__Host-session=a\\b",
        ] {
            assert_eq!(c.find_token(bad), Err(CookieError::InvalidValue), "{bad:?}");
        }
    }

    #[test]
    fn lookup_accepts_non_utf8_headers_and_splits_across_headers() {
        let c = CookieConfig::default();
        let header: &[u8] = b"junk=\xff\xfe; __Host-session=abc";
        assert_eq!(c.find_token(header).unwrap(), Some("abc"));
        let split: [&[u8]; 3] = [b"a=1", b"__Host-session=abc", b"__Host-session=xyz"];
        assert_eq!(c.find_token_in(split), Err(CookieError::Ambiguous));
    }

    #[test]
    fn lookup_refuses_oversized_headers_before_parsing() {
        let c = CookieConfig::default();
        let mut h = "__Host-session=abc; ".to_string();
        h.push_str(&"x".repeat(DEFAULT_MAX_HEADER_BYTES - h.len()));
        assert_eq!(c.find_token(&h), Ok(Some("abc")), "up to the cap is read");
        h.push('x');
        assert_eq!(
            c.find_token(&h),
            Err(CookieError::HeaderTooLarge {
                size: h.len(),
                limit: DEFAULT_MAX_HEADER_BYTES
            })
        );
        let small = CookieConfig::builder()
            .with_max_header_bytes(10)
            .build()
            .unwrap();
        let parts: [&[u8]; 2] = [b"a=123456", b"b=123"];
        assert!(matches!(
            small.find_token_in(parts),
            Err(CookieError::HeaderTooLarge {
                size: 13,
                limit: 10
            })
        ));
    }

    #[test]
    fn every_lookup_error_is_a_rejection_and_only_a_read_cookie_is_cleared() {
        for e in [CookieError::InvalidValue, CookieError::Ambiguous] {
            assert!(e.is_rejection() && e.clears_cookie(), "{e}");
        }
        let crowded = CookieError::HeaderTooLarge { size: 1, limit: 0 };
        assert!(crowded.is_rejection() && !crowded.clears_cookie());
        for config in [
            CookieError::InvalidName,
            CookieError::InvalidDomain,
            CookieError::TooLarge { size: 1, limit: 0 },
        ] {
            assert!(
                !config.is_rejection() && !config.clears_cookie(),
                "{config}"
            );
        }
    }

    #[test]
    fn a_value_of_max_value_len_renders_and_one_byte_more_does_not() {
        let long_scope = CookieConfig::builder()
            .with_name("__Secure-a-rather-long-cookie-name")
            .with_domain(format!("{}.example.com", "sub".repeat(60)))
            .with_path(format!("/{}", "p".repeat(300)))
            .with_same_site(SameSite::Strict)
            .build()
            .unwrap();
        for c in [
            CookieConfig::default(),
            CookieConfig::danger_insecure_http(),
            long_scope,
        ] {
            let n = c.max_value_len();
            let fits = c
                .set_cookie_at(&issued(&"a".repeat(n), 0), Timestamp::UNIX_EPOCH)
                .unwrap();
            assert_eq!(fits.len(), MAX_SET_COOKIE_BYTES, "{c:?}");
            assert!(matches!(
                c.set_cookie_at(&issued(&"a".repeat(n + 1), 0), Timestamp::UNIX_EPOCH),
                Err(CookieError::TooLarge { size: 4097, .. })
            ));
        }
    }

    #[test]
    fn a_persistent_cookie_keeps_room_for_the_longest_max_age() {
        let c = CookieConfig::builder()
            .with_lifetime(CookieLifetime::UntilAbsoluteDeadline)
            .build()
            .unwrap();
        let value = "a".repeat(c.max_value_len());
        // Whatever the deadline: Max-Age=0 up to the 400-day cap.
        for deadline in [0, 9_999, 86_400_000, u64::MAX] {
            let v = c
                .set_cookie_at(&issued(&value, deadline), Timestamp::UNIX_EPOCH)
                .unwrap();
            assert!(v.len() <= MAX_SET_COOKIE_BYTES);
        }
        let longest = c
            .set_cookie_at(&issued(&value, u64::MAX), Timestamp::UNIX_EPOCH)
            .unwrap();
        assert_eq!(longest.len(), MAX_SET_COOKIE_BYTES);
    }

    #[test]
    fn a_name_and_scope_too_long_for_any_value_leave_a_budget_of_zero() {
        let c = CookieConfig::builder()
            .with_name("n".repeat(5000))
            .danger_insecure_http()
            .build()
            .unwrap();
        assert_eq!(c.max_value_len(), 0);
    }

    #[test]
    fn errors_never_quote_the_cookie_value() {
        let secret = SessionId::generate().to_token();
        let c = CookieConfig::default();
        let header = format!("__Host-session={secret}; __Host-session=other");
        let err = c.find_token(&header).unwrap_err();
        assert!(!format!("{err} {err:?}").contains(&secret));
    }
}
