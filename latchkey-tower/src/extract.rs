//! The axum extractors (feature `axum`).

use axum::extract::FromRequestParts;
use http::request::Parts;
use latchkey::Session;

use crate::error::SessionError;
use crate::handle::SessionHandle;

impl<S: Send + Sync> FromRequestParts<S> for SessionHandle {
    type Rejection = SessionError;

    /// The handle the [`SessionLayer`](crate::SessionLayer) put in the
    /// request; [`SessionError::LayerMissing`] (500) on a route the layer
    /// does not wrap.
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, SessionError> {
        parts
            .extensions
            .get::<SessionHandle>()
            .cloned()
            .ok_or(SessionError::LayerMissing)
    }
}

/// A logged-in session, or 401: the extractor for routes that need a user.
///
/// It rejects with [`SessionError::NotLoggedIn`] (401, body
/// `not_logged_in`) when the request has no session, or one without a user
/// (an anonymous visitor's). A cookie the layer refused has already been
/// cleared by then. The operations ([`change_privilege`](SessionHandle::change_privilege),
/// [`logout`](SessionHandle::logout), ...) are on [`handle`](Self::handle).
///
/// # Example
/// ```
/// use axum::{Router, routing::{get, post}};
/// use latchkey_tower::{Authenticated, SessionError};
///
/// async fn me(auth: Authenticated) -> String {
///     format!("user={} since={:?}", auth.user(), auth.session().authenticated_at())
/// }
///
/// async fn logout(auth: Authenticated) -> Result<&'static str, SessionError> {
///     auth.handle().logout().await?;
///     Ok("logged out")
/// }
///
/// let app: Router = Router::new().route("/me", get(me)).route("/logout", post(logout));
/// ```
#[derive(Clone, Debug)]
pub struct Authenticated {
    user: String,
    session: Session,
    handle: SessionHandle,
}

impl Authenticated {
    /// The logged-in user.
    ///
    /// # Example
    /// ```
    /// use latchkey_tower::Authenticated;
    /// async fn hello(auth: Authenticated) -> String {
    ///     format!("hello, {}", auth.user())
    /// }
    /// let app: axum::Router = axum::Router::new().route("/", axum::routing::get(hello));
    /// ```
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The session as the layer loaded it (a copy: operations on the
    /// handle change [`SessionHandle::session`], not this).
    ///
    /// # Example
    /// ```
    /// use latchkey_tower::Authenticated;
    /// async fn role(auth: Authenticated) -> String {
    ///     auth.session().get::<String>("role").ok().flatten().unwrap_or_else(|| "user".into())
    /// }
    /// let app: axum::Router = axum::Router::new().route("/role", axum::routing::get(role));
    /// ```
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The request's [`SessionHandle`], for the operations.
    ///
    /// # Example
    /// ```
    /// use latchkey_tower::{Authenticated, SessionError};
    /// async fn seen(auth: Authenticated) -> Result<String, SessionError> {
    ///     let pages = auth.handle().update(|s| {
    ///         let n = s.get::<u32>("pages")?.unwrap_or(0) + 1;
    ///         s.insert("pages", &n)?;
    ///         Ok(n)
    ///     }).await?;
    ///     Ok(format!("{pages} pages seen"))
    /// }
    /// let app: axum::Router = axum::Router::new().route("/seen", axum::routing::post(seen));
    /// ```
    pub fn handle(&self) -> &SessionHandle {
        &self.handle
    }

    /// The session, by value.
    ///
    /// # Example
    /// ```
    /// use latchkey::Session;
    /// use latchkey_tower::Authenticated;
    /// async fn fingerprint(auth: Authenticated) -> String {
    ///     let session: Session = auth.into_session();
    ///     session.fingerprint().to_string()
    /// }
    /// let app: axum::Router = axum::Router::new().route("/fp", axum::routing::get(fingerprint));
    /// ```
    pub fn into_session(self) -> Session {
        self.session
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = SessionError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, SessionError> {
        let handle = SessionHandle::from_request_parts(parts, state).await?;
        let session = handle.session().ok_or(SessionError::NotLoggedIn)?;
        let user = session
            .user()
            .map(str::to_owned)
            .ok_or(SessionError::NotLoggedIn)?;
        Ok(Authenticated {
            user,
            session,
            handle,
        })
    }
}
