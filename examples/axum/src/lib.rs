//! latchkey behind axum, through [`latchkey_tower`]: the whole integration
//! is one layer and two extractors, so this file is only the application.
//!
//! `GET /` shows the session or a login form, `GET /me` answers 401 without
//! a logged-in session, `POST /login` (form: username, password) logs in
//! with a fresh session ID, `POST /admin` is a privilege change (a new ID;
//! the old cookie is refused from then on), `POST /logout` ends the
//! session. What the layer does with cookies, errors, caching, cross-site
//! requests and blocking stores is in the `latchkey-tower` docs.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use latchkey::{CookieConfig, Session, SessionManager};
use latchkey_tower::{Authenticated, SessionError, SessionHandle, SessionLayer};
use subtle::ConstantTimeEq as _;

/// The demo password (any user name works).
pub const DEMO_PASSWORD: &str = "latchkey";

/// The login form's fields.
#[derive(Debug, serde::Deserialize)]
pub struct LoginForm {
    /// Any name.
    pub username: String,
    /// [`DEMO_PASSWORD`].
    pub password: String,
}

/// The application behind the session layer.
pub fn router(manager: Arc<dyn SessionManager>, cookies: CookieConfig) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/me", get(me))
        .route("/login", post(login))
        .route("/admin", post(admin))
        .route("/logout", post(logout))
        .layer(SessionLayer::new(manager, cookies))
}

fn role(s: &Session) -> String {
    s.get::<String>("role")
        .ok()
        .flatten()
        .unwrap_or_else(|| "user".into())
}

async fn home(handle: SessionHandle) -> Html<String> {
    Html(match handle.session().filter(|s| s.user().is_some()) {
        Some(s) => format!(
            "<p>Session <code>{}</code> ({}). <form method=post action=/admin><button>Become admin</button></form> \
             <form method=post action=/logout><button>Log out</button></form></p>",
            s.fingerprint(),
            role(&s)
        ),
        None => format!(
            "<form method=post action=/login><input name=username placeholder=name> \
             <input name=password type=password placeholder=password> <button>Log in</button></form> \
             <p>Any name; the password is <code>{DEMO_PASSWORD}</code>.</p>"
        ),
    })
}

async fn me(auth: Authenticated) -> String {
    let s = auth.session();
    format!(
        "user={}\nrole={}\nfingerprint={}\n",
        auth.user(),
        role(s),
        s.fingerprint()
    )
}

async fn login(
    handle: SessionHandle,
    Form(form): Form<LoginForm>,
) -> Result<Response, SessionError> {
    let name = form.username.trim();
    let password_ok: bool = form
        .password
        .as_bytes()
        .ct_eq(DEMO_PASSWORD.as_bytes())
        .into();
    if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) || !password_ok {
        return Ok((StatusCode::UNAUTHORIZED, "wrong user name or password\n").into_response());
    }
    handle.login(name).await?;
    Ok(Redirect::to("/").into_response())
}

async fn admin(auth: Authenticated) -> Result<Redirect, SessionError> {
    // A privilege change: a new ID, so a copied cookie gains no admin rights.
    auth.handle()
        .change_privilege(|s| s.insert("role", "admin"))
        .await?;
    Ok(Redirect::to("/"))
}

async fn logout(handle: SessionHandle) -> Result<Redirect, SessionError> {
    handle.logout().await?;
    Ok(Redirect::to("/"))
}
