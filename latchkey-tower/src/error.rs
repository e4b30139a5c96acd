//! [`SessionError`]: what went wrong, and the response it becomes.

use std::fmt;

use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Response, StatusCode};
use latchkey::{CookieError, CrossSiteRequest, Error};

/// Why the layer or a [`SessionHandle`](crate::SessionHandle) operation
/// refused a request, and the response that says so.
///
/// The response is [`status`](Self::status) with the stable
/// [`reason`](Self::reason) code as a plain-text body: never a token, never
/// a store's error message. With the `axum` feature it is an
/// `IntoResponse`, so handlers return `Result<_, SessionError>` and use `?`.
///
/// | error | status | the cookie (set by the layer) |
/// |---|---|---|
/// | [`NoSession`](Self::NoSession), [`NotLoggedIn`](Self::NotLoggedIn) | 401 | as it was |
/// | [`Latchkey`](Self::Latchkey) with a rejection ([`Error::is_rejection`]) | 401 | cleared, unless [`Error::clears_cookie`] is false ([`Error::Superseded`]) |
/// | [`Latchkey`](Self::Latchkey) with a backend failure ([`Error::is_backend_failure`]) | 503 | kept |
/// | [`Latchkey`](Self::Latchkey) with [`Error::Conflict`] (still conflicting after the retries) | 409 | kept |
/// | [`Latchkey`](Self::Latchkey) with `TooLarge` or `TicketTooLarge` | 413 | kept |
/// | [`Latchkey`](Self::Latchkey) with `LabelTooLong` | 400 | kept |
/// | [`Latchkey`](Self::Latchkey) with `UserLimit` | 403 | kept |
/// | [`Latchkey`](Self::Latchkey), anything else (`Data`, `Unsupported`, ...) | 500 | kept |
/// | [`CrossOrigin`](Self::CrossOrigin) | 403 | untouched (the session was never read) |
/// | [`SetCookie`](Self::SetCookie), [`LayerMissing`](Self::LayerMissing) | 500 | untouched |
///
/// `Display` is a sentence without the cause, and `source()` keeps the
/// cause, so an error reporter prints the chain.
///
/// # Example
/// ```
/// use http::StatusCode;
/// use latchkey::{Error, StoreError};
/// use latchkey_tower::SessionError;
///
/// let down = SessionError::from(Error::Store(StoreError::Unavailable("connection refused".into())));
/// assert_eq!(down.status(), StatusCode::SERVICE_UNAVAILABLE);
/// assert_eq!(down.reason(), "backend");
/// assert!(down.is_backend_failure());
///
/// let response = down.to_response::<String>();
/// assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
/// assert_eq!(response.body(), "backend");
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum SessionError {
    /// The operation needs a session and the request has none (no cookie,
    /// or one that was refused). 401.
    NoSession,
    /// The request has no logged-in session: [`Authenticated`](crate::Authenticated)
    /// was asked for and the session is anonymous or missing. 401.
    NotLoggedIn,
    /// A state-changing request came from another site
    /// ([`latchkey::check_origin`]). 403; the session was not touched.
    CrossOrigin(CrossSiteRequest),
    /// A session manager call failed; the status follows the table above.
    Latchkey(Error),
    /// A token was issued but its `Set-Cookie` could not be rendered (a
    /// ticket too long for the cookie: give the `TicketManager` the same
    /// `CookieConfig` with `with_cookie`). 500.
    SetCookie(CookieError),
    /// The [`SessionHandle`](crate::SessionHandle) was asked for on a
    /// request that did not pass through a [`SessionLayer`](crate::SessionLayer). 500.
    LayerMissing,
}

impl SessionError {
    /// The response status, as in the table on [`SessionError`].
    ///
    /// # Example
    /// ```
    /// use http::StatusCode;
    /// use latchkey::Error;
    /// use latchkey_tower::SessionError;
    /// assert_eq!(SessionError::from(Error::Unknown).status(), StatusCode::UNAUTHORIZED);
    /// assert_eq!(SessionError::from(Error::Conflict).status(), StatusCode::CONFLICT);
    /// assert_eq!(SessionError::NotLoggedIn.status(), StatusCode::UNAUTHORIZED);
    /// ```
    pub fn status(&self) -> StatusCode {
        match self {
            SessionError::NoSession | SessionError::NotLoggedIn => StatusCode::UNAUTHORIZED,
            SessionError::CrossOrigin(_) => StatusCode::FORBIDDEN,
            SessionError::SetCookie(_) | SessionError::LayerMissing => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            SessionError::Latchkey(e) => latchkey_status(e),
        }
    }

    /// A short stable code, the response body: latchkey's
    /// [`Error::reason`] (`idle_expired`, `backend`, `conflict`, ...), or
    /// `no_session`, `not_logged_in`, `cross_origin`, `set_cookie`,
    /// `session_layer_missing`.
    ///
    /// # Example
    /// ```
    /// use latchkey::Error;
    /// use latchkey_tower::SessionError;
    /// assert_eq!(SessionError::from(Error::Superseded).reason(), "superseded");
    /// assert_eq!(SessionError::NoSession.reason(), "no_session");
    /// ```
    pub fn reason(&self) -> &'static str {
        match self {
            SessionError::NoSession => "no_session",
            SessionError::NotLoggedIn => "not_logged_in",
            SessionError::CrossOrigin(_) => "cross_origin",
            SessionError::Latchkey(e) => e.reason(),
            SessionError::SetCookie(_) => "set_cookie",
            SessionError::LayerMissing => "session_layer_missing",
        }
    }

    /// Whether the request carries no usable (or no logged-in) session:
    /// the 401s.
    ///
    /// # Example
    /// ```
    /// use latchkey::Error;
    /// use latchkey_tower::SessionError;
    /// assert!(SessionError::NotLoggedIn.is_rejection());
    /// assert!(SessionError::from(Error::Unknown).is_rejection());
    /// assert!(!SessionError::from(Error::Conflict).is_rejection());
    /// ```
    pub fn is_rejection(&self) -> bool {
        match self {
            SessionError::NoSession | SessionError::NotLoggedIn => true,
            SessionError::Latchkey(e) => e.is_rejection(),
            _ => false,
        }
    }

    /// Whether the session store failed (or a blocking call on it panicked
    /// or was cancelled): the 503s. The session may be fine.
    ///
    /// # Example
    /// ```
    /// use latchkey::{Error, StoreError};
    /// use latchkey_tower::SessionError;
    /// let e = SessionError::from(Error::Store(StoreError::Unavailable("timeout".into())));
    /// assert!(e.is_backend_failure());
    /// assert!(!SessionError::NoSession.is_backend_failure());
    /// ```
    pub fn is_backend_failure(&self) -> bool {
        matches!(self, SessionError::Latchkey(e) if e.is_backend_failure())
    }

    /// The response: [`status`](Self::status), `Content-Type: text/plain`,
    /// and [`reason`](Self::reason) as the body. `B` is any body type that
    /// can be made from a `&'static str` (axum's `Body`, `String`,
    /// `http_body_util::Full<Bytes>`).
    ///
    /// # Example
    /// ```
    /// use latchkey_tower::SessionError;
    /// let r = SessionError::NotLoggedIn.to_response::<String>();
    /// assert_eq!(r.status(), 401);
    /// assert_eq!(r.headers()["content-type"], "text/plain; charset=utf-8");
    /// assert_eq!(r.body(), "not_logged_in");
    /// ```
    pub fn to_response<B: From<&'static str>>(&self) -> Response<B> {
        let mut response = Response::new(B::from(self.reason()));
        *response.status_mut() = self.status();
        response.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        response
    }
}

/// The status for a manager error (src/framework.rs in latchkey: which
/// errors mean 401, 503, 409).
fn latchkey_status(e: &Error) -> StatusCode {
    if e.is_rejection() {
        return StatusCode::UNAUTHORIZED;
    }
    if e.is_backend_failure() {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    match e {
        Error::Conflict => StatusCode::CONFLICT,
        // The application asked to keep more than a session or its cookie
        // holds.
        Error::TooLarge { .. } | Error::TicketTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        // A user name or device label over the policy's limit: in practice
        // the request's input.
        Error::LabelTooLong { .. } => StatusCode::BAD_REQUEST,
        // The policy refuses another session for this user.
        Error::UserLimit { .. } => StatusCode::FORBIDDEN,
        // A value of the wrong type, a manager configured without what the
        // call needs: the server's problem.
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<Error> for SessionError {
    fn from(e: Error) -> SessionError {
        SessionError::Latchkey(e)
    }
}

impl From<CrossSiteRequest> for SessionError {
    fn from(e: CrossSiteRequest) -> SessionError {
        SessionError::CrossOrigin(e)
    }
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SessionError::NoSession => "the request has no session",
            SessionError::NotLoggedIn => "the request has no logged-in session",
            SessionError::CrossOrigin(_) => "a cross-origin request was refused",
            SessionError::Latchkey(_) => "a session operation failed",
            SessionError::SetCookie(_) => "the session cookie could not be rendered",
            SessionError::LayerMissing => "the request did not pass through the session layer",
        })
    }
}

impl std::error::Error for SessionError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SessionError::CrossOrigin(e) => Some(e),
            SessionError::Latchkey(e) => Some(e),
            SessionError::SetCookie(e) => Some(e),
            _ => None,
        }
    }
}

#[cfg(feature = "axum")]
impl axum::response::IntoResponse for SessionError {
    fn into_response(self) -> axum::response::Response {
        self.to_response()
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use latchkey::{StoreError, Timestamp};

    use super::*;

    fn chain(e: &dyn std::error::Error) -> String {
        let mut s = e.to_string();
        let mut cur = e.source();
        while let Some(c) = cur {
            s.push_str(": ");
            s.push_str(&c.to_string());
            cur = c.source();
        }
        s
    }

    #[test]
    fn manager_errors_map_as_the_framework_guide_says() {
        let cases: Vec<(Error, u16)> = vec![
            (Error::Unknown, 401),
            (Error::Superseded, 401),
            (
                Error::IdleExpired {
                    deadline: Timestamp::UNIX_EPOCH,
                },
                401,
            ),
            (Error::BadSignature, 401),
            (Error::Store(StoreError::Unavailable("down".into())), 503),
            (
                Error::Store(StoreError::OutcomeUnknown("reset".into())),
                503,
            ),
            (Error::Conflict, 409),
            (Error::TooLarge { size: 2, limit: 1 }, 413),
            (Error::TicketTooLarge { size: 2, limit: 1 }, 413),
            (
                Error::LabelTooLong {
                    field: "user name",
                    len: 2,
                    limit: 1,
                },
                400,
            ),
            (Error::UserLimit { limit: 1 }, 403),
            (Error::RevocationNotConfigured, 500),
            (Error::Unsupported("x"), 500),
        ];
        for (e, status) in cases {
            let reason = e.reason();
            let e = SessionError::from(e);
            assert_eq!(e.status().as_u16(), status, "{reason}");
            assert_eq!(e.reason(), reason);
            assert_eq!(e.to_response::<String>().body(), reason);
        }
    }

    #[test]
    fn the_body_is_the_reason_code_and_never_the_cause() {
        let e = SessionError::from(Error::Store(StoreError::Unavailable(
            "redis://secret@host refused".into(),
        )));
        let response = e.to_response::<String>();
        assert_eq!(response.body(), "backend");
        assert_eq!(
            chain(&e),
            "a session operation failed: session store failed: the store is unavailable: redis://secret@host refused"
        );
    }

    #[test]
    fn own_variants_have_stable_codes_and_statuses() {
        let cases = [
            (SessionError::NoSession, 401, "no_session"),
            (SessionError::NotLoggedIn, 401, "not_logged_in"),
            (
                SessionError::CrossOrigin(CrossSiteRequest::NullOrigin),
                403,
                "cross_origin",
            ),
            (
                SessionError::SetCookie(CookieError::TooLarge {
                    size: 5000,
                    limit: 4096,
                }),
                500,
                "set_cookie",
            ),
            (SessionError::LayerMissing, 500, "session_layer_missing"),
        ];
        for (e, status, reason) in cases {
            assert_eq!(e.status().as_u16(), status, "{e}");
            assert_eq!(e.reason(), reason);
        }
        assert!(
            SessionError::CrossOrigin(CrossSiteRequest::Origin)
                .source()
                .is_some()
        );
    }
}
