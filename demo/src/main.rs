//! A small login site on latchkey: log in, see your session, become admin
//! (the session rotates), list and end your sessions, log out.
//!
//! ```sh
//! cargo run -p latchkey-demo              # then open http://127.0.0.1:8080
//! cargo run -p latchkey-demo -- --help    # the options
//! ```
//!
//! It is its own package so that building it builds only latchkey,
//! `tiny_http` and their dependencies, not the library's test and bench
//! tooling.
//!
//! Log in with any user name and the demo password `latchkey`.
//!
//! Sessions live in files under `./latchkey-sessions` by default, so a
//! restart keeps everyone logged in, and two instances started on two ports
//! with the same `--store file:DIR` serve one browser interchangeably (what
//! a load balancer without sticky sessions needs). `--store memory` forgets
//! on restart; `--store redis:URL` (built with `--features redis`) shares
//! sessions across machines; `--tickets` keeps sessions in signed cookies and
//! uses the store only for revocations. The file store is Unix-only: on other
//! systems the demo says so at startup and keeps sessions in memory.
//!
//! # How it is built
//!
//! Every request goes through one path: find the token in the `Cookie`
//! header ([`CookieConfig::find_token`]), `load` it through an
//! `Arc<dyn SessionManager>`, and map the outcome:
//!
//! - no usable session cookie, for whatever reason (expired, logged out,
//!   rotated and reused, malformed, ambiguous cookie, a `Cookie` header
//!   crowded past the 64 KiB scanned by other applications' cookies): the
//!   page is served logged out, never a 400, and the cookie is cleared when
//!   the error says so ([`Error::clears_cookie`],
//!   [`latchkey::CookieError::clears_cookie`]);
//! - a backend failure: 503, and keep the cookie (the session may be fine);
//! - a reissue hint (a request carrying a token rotated moments ago): send
//!   the new token as the cookie.
//!
//! A change to a session (login, "become admin") can race another request
//! on the same session, on this instance or another one sharing the store
//! (a double-click behind a load balancer). The loser gets
//! [`Error::Conflict`]; the demo loads the session again and re-applies the
//! change a few times ([`App::with_retries`]), and if the race goes on,
//! answers 409 with a page saying what happened, never a 500.
//!
//! The server-side extras ("your sessions", "log out everywhere else") need
//! a store, so the app also holds an optional `StoreManager` over a
//! `Box<dyn Store>`; each backend is a few lines in [`open_backend`].
//!
//! # Security notes
//!
//! - **Plain http**: the demo binds to 127.0.0.1 without TLS, so its cookie
//!   is built with [`CookieConfig::danger_insecure_http`] (no `Secure`, no
//!   `__Host-` prefix) and the server prints a warning. Behind an https
//!   proxy pass `--secure-cookie` to get the production defaults.
//! - **CSRF**: every state change is a POST; the cookie is `SameSite=Lax`,
//!   so browsers do not attach it to cross-site POSTs. As a second layer,
//!   [`latchkey::check_origin`] refuses with 403 the POSTs whose
//!   `Sec-Fetch-Site` (or `Origin`) names another site: that also stops
//!   login CSRF, which needs no cookie.
//! - **Caching**: every response carries `Cache-Control: no-store`, so a
//!   page showing a session is never kept by a shared cache or the back
//!   button of a shared computer.
//! - User-supplied text (the user name, the device label) is HTML-escaped.

mod device;

use std::error::Error as StdError;
use std::io::{Read as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[cfg(unix)]
use latchkey::FileStore;
use latchkey::{
    Clock as _, CookieConfig, CookieError, Error, FetchHeaders, Fingerprint, Issued, KeyRing,
    Loaded, MemoryStore, NewSession, Policy, Session, SessionManager, Store, StoreManager,
    SystemClock, TicketKey, TicketManager, Timestamp, UserLimitAction,
};
use subtle::ConstantTimeEq as _;
use tiny_http::{Header, Method, Request, Response, Server};

type BoxError = Box<dyn StdError + Send + Sync>;

/// The one password every demo user has. Says so on the login page.
const DEMO_PASSWORD: &str = "latchkey";

/// Request bodies (login forms) larger than this are refused.
const MAX_BODY_BYTES: u64 = 4096;

/// Where `--store file` keeps sessions unless told otherwise.
const DEFAULT_FILE_DIR: &str = "latchkey-sessions";

/// The environment variable that may hold the ticket signing key (base64).
const TICKET_KEY_ENV: &str = "LATCHKEY_DEMO_TICKET_KEY";

/// How many requests are served at once.
const WORKERS: usize = 4;

/// Every path the demo serves; any other is a 404 that never reads the
/// session.
const PATHS: &[&str] = &[
    "/",
    "/me",
    "/sessions",
    "/login",
    "/admin",
    "/logout",
    "/sessions/others",
    "/sessions/end",
];

/// How many times a change that lost a race (a version conflict) is tried
/// in all before the request is answered 409.
const CONFLICT_ATTEMPTS: usize = 4;

const USAGE: &str = "\
usage: login_server [options]

  --port N                 port on 127.0.0.1 (default 8080; 0 picks a free one,
                           the address is printed on stdout)
  --store file[:DIR]       sessions in files under DIR (default
                           ./latchkey-sessions): a restart keeps everyone
                           logged in, and several instances on one machine
                           can share the directory (the default store;
                           Unix only, elsewhere memory is used instead)
  --store memory           sessions in memory: a restart logs everyone out
  --store redis:URL        sessions in Redis, e.g. redis:redis://127.0.0.1:6379/0
                           (build with: cargo run -p latchkey-demo
                           --features redis -- --store redis:URL)
  --tickets                stateless signed tickets instead of server-side
                           sessions (the store then keeps only revocations);
                           the signing key comes from $LATCHKEY_DEMO_TICKET_KEY
                           (base64) or is generated at start
  --rotation-grace-ms N    how long a rotated token keeps working (default 30000)
  --secure-cookie          production cookie (__Host-session, Secure): only
                           behind an https proxy, browsers drop it on plain http
  --help                   this text
";

/// What the command line asked for.
#[derive(Debug)]
struct Options {
    port: u16,
    store: StoreChoice,
    rotation_grace: Duration,
    secure_cookie: bool,
    tickets: bool,
}

#[derive(Debug)]
enum StoreChoice {
    Memory,
    /// A directory of session files.
    File(PathBuf),
    /// A Redis URL; needs `--features redis`.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    Redis(String),
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut opts = Options {
        port: 8080,
        store: StoreChoice::File(PathBuf::from(DEFAULT_FILE_DIR)),
        rotation_grace: Policy::default().rotation_grace(),
        secure_cookie: false,
        tickets: false,
    };
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--port" => {
                let v = value("--port")?;
                opts.port = v.parse().map_err(|_| format!("bad port {v:?}"))?;
            }
            "--store" => {
                let v = value("--store")?;
                opts.store = parse_store(&v)?;
            }
            "--rotation-grace-ms" => {
                let v = value("--rotation-grace-ms")?;
                let ms: u64 = v
                    .parse()
                    .map_err(|_| format!("bad --rotation-grace-ms {v:?}"))?;
                opts.rotation_grace = Duration::from_millis(ms);
            }
            "--secure-cookie" => opts.secure_cookie = true,
            "--tickets" => opts.tickets = true,
            "--help" | "-h" => return Err(String::new()),
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    Ok(opts)
}

fn parse_store(v: &str) -> Result<StoreChoice, String> {
    match v {
        "memory" => Ok(StoreChoice::Memory),
        "file" => Ok(StoreChoice::File(PathBuf::from(DEFAULT_FILE_DIR))),
        _ if v.starts_with("file:") && v.len() > "file:".len() => {
            Ok(StoreChoice::File(PathBuf::from(&v["file:".len()..])))
        }
        url if url.starts_with("redis://") || url.starts_with("rediss://") => {
            Ok(StoreChoice::Redis(url.to_owned()))
        }
        _ if v.starts_with("redis:") => {
            let url = &v["redis:".len()..];
            let url = if url.is_empty() {
                "redis://127.0.0.1:6379/0"
            } else {
                url
            };
            Ok(StoreChoice::Redis(url.to_owned()))
        }
        other => Err(format!("unknown store {other:?}")),
    }
}

/// The session machinery, whatever the backend.
struct Backend {
    /// What every request goes through.
    manager: Arc<dyn SessionManager>,
    /// The same sessions with the server-side extras, when there is a store.
    server_side: Option<Arc<StoreManager<Box<dyn Store>>>>,
    /// For the page footer.
    label: String,
}

/// A store-backed manager serves as both the manager and the extras.
fn store_backend(store: Box<dyn Store>, policy: Policy, label: String) -> Backend {
    let manager = Arc::new(StoreManager::new(store).with_policy(policy));
    Backend {
        manager: manager.clone(),
        server_side: Some(manager),
        label,
    }
}

/// Opens the store the options name, and the manager over it. Tickets are
/// bound to the cookie's name and never longer than the cookie carries.
fn open_backend(opts: &Options, cookies: &CookieConfig) -> Result<Backend, BoxError> {
    let policy = Policy::builder().with_rotation_grace(opts.rotation_grace);
    // Stateless tickets cannot count a user's sessions: no per-user cap for
    // them (a manager refuses one it cannot keep).
    let policy = if opts.tickets {
        policy.with_max_sessions_per_user(None, UserLimitAction::EvictOldest)
    } else {
        policy
    }
    .build()?;
    let (store, label): (Box<dyn Store>, String) = match &opts.store {
        StoreChoice::Memory => (
            Box::new(MemoryStore::new()),
            "memory (a restart logs everyone out)".into(),
        ),
        #[cfg(unix)]
        StoreChoice::File(dir) => (
            Box::new(FileStore::open(dir)?),
            format!(
                "files in {} (sessions survive a restart; instances sharing the directory share sessions)",
                dir.display()
            ),
        ),
        // `FileStore` relies on Unix file semantics (atomic rename over an
        // open file, permission bits, fsync of a directory) and exists only
        // there: elsewhere the demo still runs, and says what it lost.
        #[cfg(not(unix))]
        StoreChoice::File(dir) => {
            eprintln!(
                "the file store is Unix-only: keeping sessions in memory instead of {} \
                 (a restart logs everyone out, and instances do not share sessions)",
                dir.display()
            );
            (
                Box::new(MemoryStore::new()),
                "memory, as the file store is Unix-only (a restart logs everyone out)".into(),
            )
        }
        #[cfg(feature = "redis")]
        StoreChoice::Redis(url) => (
            Box::new(latchkey::RedisStore::open(url)?),
            "redis (shared by every instance using it)".into(),
        ),
        #[cfg(not(feature = "redis"))]
        StoreChoice::Redis(_) => {
            return Err(
                "the Redis store needs the demo built with its `redis` feature: \
                 cargo run -p latchkey-demo --features redis -- --store redis:URL"
                    .into(),
            );
        }
    };
    if !opts.tickets {
        return Ok(store_backend(store, policy, label));
    }
    // Stateless: the session travels in a signed ticket; the store only
    // keeps revocations (logout, rotated tickets). Instances that should
    // accept each other's tickets, or survive a restart, share the key
    // through the environment (never a command-line argument: `ps` shows
    // those); otherwise it lives as long as this process.
    let key = match std::env::var(TICKET_KEY_ENV) {
        Ok(text) => TicketKey::from_base64(text.trim())?,
        Err(_) => {
            // The key is a secret: never print it.
            eprintln!(
                "tickets: signing with a fresh key, so a restart logs everyone out. \
                 To keep or share one: export {TICKET_KEY_ENV}=\"$(openssl rand -base64 32)\""
            );
            TicketKey::generate()
        }
    };
    let keys = KeyRing::new(1, key);
    // `with_cookie`: a session whose ticket the cookie could not carry is
    // refused when it is issued (`TicketTooLarge`), not silently dropped by
    // the browser afterwards.
    let manager = TicketManager::new(cookies.name(), keys)?
        .with_policy(policy)
        .with_revocation(store)
        .with_cookie(cookies);
    Ok(Backend {
        manager: Arc::new(manager),
        server_side: None,
        label: format!("signed tickets, revocations in {label}"),
    })
}

struct App {
    backend: Backend,
    cookies: CookieConfig,
    clock: SystemClock,
}

/// A response before it is sent.
struct Reply {
    status: u16,
    content_type: &'static str,
    body: String,
    location: Option<&'static str>,
    set_cookies: Vec<String>,
}

impl Reply {
    fn html(status: u16, body: String) -> Reply {
        Reply {
            status,
            content_type: "text/html; charset=utf-8",
            body,
            location: None,
            set_cookies: Vec::new(),
        }
    }

    fn text(status: u16, body: impl Into<String>) -> Reply {
        Reply {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
            location: None,
            set_cookies: Vec::new(),
        }
    }

    /// 303 See Other: after a POST, the browser GETs the page (no resubmit
    /// on reload).
    fn see_other(to: &'static str) -> Reply {
        Reply {
            location: Some(to),
            ..Reply::text(303, "")
        }
    }

    fn with_cookie(mut self, set_cookie: Option<String>) -> Reply {
        self.set_cookies.extend(set_cookie);
        self
    }
}

/// The request's live session, and the token it was loaded with: a change
/// that loses a race loads the session again with it ([`App::with_retries`]).
/// The token is a secret: this type has no `Debug`, and nothing prints it.
struct Current {
    loaded: Loaded,
    token: String,
}

/// Who is asking, as the session layer sees it.
enum Auth {
    /// No session cookie at all.
    Anonymous,
    /// A live session; `reissue` set when the cookie must change.
    Session(Box<Current>),
    /// A cookie that no longer works, why (a stable reason code), and
    /// whether to clear it.
    Rejected(&'static str, bool),
    /// The store failed: 503, keep the cookie.
    Unavailable,
}

fn header<'r>(req: &'r Request, name: &'static str) -> Option<&'r str> {
    req.headers()
        .iter()
        .find(|h| h.field.equiv(name))
        .map(|h| h.value.as_str())
}

impl App {
    fn authenticate(&self, req: &Request) -> Auth {
        let headers = req
            .headers()
            .iter()
            .filter(|h| h.field.equiv("Cookie"))
            .map(|h| h.value.as_str().as_bytes());
        let token = match self.cookies.find_token_in(headers) {
            Ok(Some(token)) => token,
            Ok(None) => return Auth::Anonymous,
            // No usable session cookie: the request runs logged out. A
            // header crowded past the scan limit keeps the cookie (it was
            // not read); an ambiguous or broken one is cleared.
            Err(e @ CookieError::HeaderTooLarge { .. }) => {
                return Auth::Rejected("cookie_header_too_large", e.clears_cookie());
            }
            Err(e) => return Auth::Rejected("bad_cookie", e.clears_cookie()),
        };
        match self.backend.manager.load(token) {
            Ok(loaded) => Auth::Session(Box::new(Current {
                loaded,
                token: token.to_owned(),
            })),
            Err(e) if e.is_rejection() => Auth::Rejected(e.reason(), e.clears_cookie()),
            Err(e) => {
                // Logged here, once: `handle` answers 503 without a word.
                eprintln!("{}", chain(&e));
                Auth::Unavailable
            }
        }
    }

    /// The `Set-Cookie` for a token just issued. A render failure would mean
    /// a token no browser keeps; log it and send nothing.
    fn set_cookie(&self, issued: &Issued) -> Option<String> {
        match self.cookies.set_cookie_at(issued, self.clock.now()) {
            Ok(v) => Some(v),
            Err(e) => {
                eprintln!("cannot send session {}: {e}", issued.fingerprint());
                None
            }
        }
    }

    fn handle(&self, req: &mut Request) -> Reply {
        let path = req.url().split('?').next().unwrap_or("/").to_owned();
        let post = *req.method() == Method::Post;
        if let Err(refused) = same_origin(req) {
            return Reply::text(
                403,
                format!("cross-site form submissions are refused: {refused}\n"),
            );
        }
        // Anything else (a browser's /favicon.ico) is answered without
        // touching the store: it neither slides the idle deadline nor adds
        // a second log line when the store is down.
        if !PATHS.contains(&path.as_str()) {
            return Reply::text(404, "not found\n");
        }
        let auth = self.authenticate(req);
        let (session, mut set_cookie) = match auth {
            Auth::Unavailable => {
                return Reply::text(503, "the session store is unavailable; try again\n");
            }
            Auth::Rejected(reason, clear) => {
                // The cookie is dead: forget it, and carry on as a visitor.
                // Not a superseded one: the response to the login or
                // privilege change that retired it sets the new cookie, and
                // a clearing cookie arriving after it would undo it.
                (Err(reason), clear.then(|| self.cookies.clear_cookie()))
            }
            Auth::Anonymous => (Err(""), None),
            Auth::Session(current) => {
                let Current {
                    loaded:
                        Loaded {
                            session, reissue, ..
                        },
                    token,
                } = *current;
                (
                    Ok((session, token)),
                    reissue.and_then(|i| self.set_cookie(&i)),
                )
            }
        };
        let reply = match (path.as_str(), post, session) {
            ("/", false, Ok((s, _))) => self.session_page(&s),
            ("/", false, Err(reason)) => self.login_page(reason),
            ("/me", false, Ok((s, _))) => me(&s),
            ("/me", false, Err(reason)) => Reply::text(401, format!("rejected={reason}\n")),
            ("/sessions", false, Ok((s, _))) => self.sessions_page(&s),
            ("/login", true, current) => self.login(req, current.ok()),
            ("/admin", true, Ok((s, token))) => self.become_admin(s, &token),
            ("/logout", true, Ok((s, _))) => self.logout(&s),
            ("/sessions/others", true, Ok((s, _))) => self.end_others(&s),
            ("/sessions/end", true, Ok((s, _))) => self.end_one(req, &s),
            // The cookie was retired moments ago by a change of privilege
            // made by another request of this browser (a double-click on
            // "Become admin"), whose answer carries the new cookie: show the
            // page, which the browser asks for with that cookie.
            (_, _, Err("superseded")) => Reply::see_other("/"),
            (_, _, Err(_)) => Reply::text(401, "log in first\n"),
            _ => Reply::text(404, "not found\n"),
        };
        // A handler that issued or cleared a cookie has the last word.
        if !reply.set_cookies.is_empty() {
            set_cookie = None;
        }
        reply.with_cookie(set_cookie)
    }

    fn login(&self, req: &mut Request, current: Option<(Session, String)>) -> Reply {
        let form = match read_form(req) {
            Ok(f) => f,
            Err(reply) => return reply,
        };
        let user = form_value(&form, "username").unwrap_or_default();
        let user = user.trim();
        let password = form_value(&form, "password").unwrap_or_default();
        if user.is_empty() || user.chars().count() > 64 || user.chars().any(char::is_control) {
            return Reply::html(
                400,
                page(
                    "Login",
                    "<p>Pick a user name of 1 to 64 characters.</p><p><a href=\"/\">Back</a></p>",
                ),
            );
        }
        // Constant time: the comparison must not tell how much of a guess
        // was right.
        if !bool::from(password.as_bytes().ct_eq(DEMO_PASSWORD.as_bytes())) {
            return Reply::html(
                401,
                page(
                    "Login",
                    "<p>Wrong password (it is <code>latchkey</code>).</p><p><a href=\"/\">Back</a></p>",
                ),
            );
        }
        let result = match current {
            // Login on an existing session rotates its ID: a token planted
            // before login (session fixation) is worthless after it.
            Some((session, token)) => {
                self.with_retries(session, &token, |s| self.backend.manager.login(s, user))
            }
            None => {
                let mut new = NewSession::new().with_user(user);
                if let Some(ua) = header(req, "User-Agent") {
                    new = new.with_device(device::label(ua));
                }
                self.backend.manager.create(new)
            }
        };
        match result {
            Ok(issued) => {
                println!("login: {user:?} as session {}", issued.fingerprint());
                Reply::see_other("/").with_cookie(self.set_cookie(&issued))
            }
            Err(e) => self.failure(&e),
        }
    }

    fn become_admin(&self, session: Session, token: &str) -> Reply {
        // A privilege change gets a fresh ID (S3), and the old one is
        // refused at once: whoever copied the old cookie does not inherit
        // admin rights, not even within the rotation grace window.
        let result = self.with_retries(session, token, |s| {
            s.insert("role", "admin")?;
            self.backend.manager.change_privilege(s)
        });
        match result {
            Ok(issued) => {
                println!("privilege change: session now {}", issued.fingerprint());
                Reply::see_other("/").with_cookie(self.set_cookie(&issued))
            }
            Err(e) => self.failure(&e),
        }
    }

    fn logout(&self, session: &Session) -> Reply {
        match self.backend.manager.terminate(session) {
            Ok(()) => {
                println!("logout: session {}", session.fingerprint());
                Reply::see_other("/").with_cookie(Some(self.cookies.clear_cookie()))
            }
            Err(e) => self.failure(&e),
        }
    }

    fn end_others(&self, session: &Session) -> Reply {
        let (Some(server), Some(user)) = (&self.backend.server_side, session.user()) else {
            return Reply::text(404, "not available in this mode\n");
        };
        match server.terminate_all(user, Some(session)) {
            Ok(n) => {
                println!("{user:?} ended {} other session(s)", n.unwrap_or(0));
                Reply::see_other("/sessions")
            }
            Err(e) => self.failure(&e),
        }
    }

    fn end_one(&self, req: &mut Request, session: &Session) -> Reply {
        let (Some(server), Some(user)) = (&self.backend.server_side, session.user()) else {
            return Reply::text(404, "not available in this mode\n");
        };
        let form = match read_form(req) {
            Ok(f) => f,
            Err(reply) => return reply,
        };
        let Some(fp) = form_value(&form, "fingerprint").and_then(|f| Fingerprint::from_hex(&f))
        else {
            return Reply::text(400, "no such session\n");
        };
        // Scoped to this user: another account's fingerprint ends nothing.
        match server.terminate_by_fingerprint(user, fp) {
            Ok(_) => Reply::see_other("/sessions"),
            Err(e) => self.failure(&e),
        }
    }

    /// Applies `change` to the request's session. On a version conflict
    /// (another request changed the session since it was loaded: another
    /// tab, a double-click, another instance behind the load balancer) it
    /// loads the session again with the request's token and re-applies the
    /// change, [`CONFLICT_ATTEMPTS`] times in all.
    ///
    /// A reload can be refused: a double-clicked "Become admin" finds its
    /// token retired by the click that won ([`Error::Superseded`]), which
    /// [`App::failure`] answers by showing the page under the new cookie.
    fn with_retries(
        &self,
        mut session: Session,
        token: &str,
        mut change: impl FnMut(&mut Session) -> Result<Issued, Error>,
    ) -> Result<Issued, Error> {
        for _ in 1..CONFLICT_ATTEMPTS {
            match change(&mut session) {
                Err(Error::Conflict) => session = self.backend.manager.load(token)?.session,
                done => return done,
            }
        }
        change(&mut session)
    }

    /// An error from a call on a loaded session. Each failure is logged
    /// here and only here.
    fn failure(&self, e: &Error) -> Reply {
        if e.is_backend_failure() {
            // The error says "session store failed" itself.
            eprintln!("{}", chain(e));
            return Reply::text(503, "the session store is unavailable; try again\n");
        }
        if e.is_rejection() {
            // It ended between load and now (logged out elsewhere), or a
            // concurrent privilege change retired its token (the response
            // to that one set the new cookie, which this must not clear).
            let clear = e.clears_cookie().then(|| self.cookies.clear_cookie());
            return Reply::see_other("/").with_cookie(clear);
        }
        if matches!(e, Error::Conflict) {
            // Still losing the race after every retry: nothing was changed,
            // and saying so beats an error code.
            eprintln!("gave up after {CONFLICT_ATTEMPTS} version conflicts in a row");
            return Reply::html(
                409,
                page(
                    "Please try again",
                    "<p>Your session was being changed by another request at the same \
                     moment (another tab, or a button pressed twice), so this change was \
                     not made.</p>\n<p><a href=/>Back to your session</a>, then try again.</p>",
                ),
            );
        }
        eprintln!("request failed: {}", chain(e));
        Reply::text(500, format!("{}\n", e.reason()))
    }

    fn login_page(&self, reason: &str) -> Reply {
        let notice = match reason {
            "" => String::new(),
            "cookie_header_too_large" => format!(
                "<p class=notice>Your browser sent more than {} KiB of cookies for this \
                 site, so none of them were read. Clear some to stay logged in.</p>",
                self.cookies.max_header_bytes() / 1024
            ),
            r => format!(
                "<p class=notice>Your session ended (<code>{}</code>). Please log in again.</p>",
                escape(r)
            ),
        };
        let body = format!(
            "{notice}
<form method=post action=/login>
  <p><label>User name <input name=username required maxlength=64 autofocus></label></p>
  <p><label>Password <input name=password type=password required></label></p>
  <p><button>Log in</button></p>
</form>
<p class=hint>Any user name works; the password is <code>{DEMO_PASSWORD}</code>.
Log in as the same user from a second browser (or a private window) to see
two sessions under “your sessions”.</p>"
        );
        Reply::html(200, self.page_with_footer("Log in", &body))
    }

    fn session_page(&self, s: &Session) -> Reply {
        let now = self.clock.now();
        let role = s
            .get::<String>("role")
            .ok()
            .flatten()
            .unwrap_or_else(|| "user".into());
        let admin_button = if role == "admin" {
            "<p>You are an admin. (Becoming admin rotated the session: the fingerprint changed.)</p>".to_owned()
        } else {
            "<form method=post action=/admin><button>Become admin</button> \
             (a privilege change: the session gets a new ID)</form>"
                .to_owned()
        };
        let sessions_link = if self.backend.server_side.is_some() {
            "<a href=/sessions>Your sessions</a>"
        } else {
            "(stateless tickets: no session list)"
        };
        let body = format!(
            "<table>
<tr><th>user</th><td>{user}</td></tr>
<tr><th>role</th><td>{role}</td></tr>
<tr><th>session fingerprint</th><td><code>{fp}</code></td></tr>
<tr><th>created</th><td>{created}</td></tr>
<tr><th>logged in</th><td>{auth}</td></tr>
<tr><th>idle deadline</th><td>{idle} ({idle_in})</td></tr>
<tr><th>absolute deadline</th><td>{abs} ({abs_in})</td></tr>
<tr><th>device</th><td>{device}</td></tr>
</table>
{admin_button}
<p>{sessions_link}</p>
<form method=post action=/logout><button>Log out</button></form>",
            user = escape(s.user().unwrap_or("(anonymous)")),
            role = escape(&role),
            fp = s.fingerprint(),
            created = s.created_at(),
            auth = s
                .authenticated_at()
                .map_or_else(|| "-".into(), |t| t.to_string()),
            idle = s.idle_deadline(),
            idle_in = until(now, s.idle_deadline()),
            abs = s.absolute_deadline(),
            abs_in = until(now, s.absolute_deadline()),
            device = escape(&s.device().map_or_else(|| "-".into(), device::display)),
        );
        Reply::html(200, self.page_with_footer("Your session", &body))
    }

    fn sessions_page(&self, s: &Session) -> Reply {
        let (Some(server), Some(user)) = (&self.backend.server_side, s.user()) else {
            return Reply::text(404, "not available in this mode\n");
        };
        let list = match server.sessions_of(user) {
            Ok(l) => l,
            Err(e) => return self.failure(&e),
        };
        let now = self.clock.now();
        let mut rows = String::new();
        // Two sessions of one browser share a device label: the fingerprint
        // and the times tell them apart, and the current one says so.
        for info in &list {
            let this = info.fingerprint == s.fingerprint();
            let (marker, action) = if this {
                (" <span class=this>(this browser)</span>", String::new())
            } else {
                (
                    "",
                    format!(
                        "<form method=post action=/sessions/end><input type=hidden name=fingerprint value={fp}><button>Log out</button></form>",
                        fp = info.fingerprint
                    ),
                )
            };
            rows.push_str(&format!(
                "<tr><td>{device}{marker}</td><td><code>{fp}</code></td>\
                 <td class=when title=\"{created}\">{created_ago}</td>\
                 <td class=when title=\"{seen}\">{seen_ago}</td><td>{action}</td></tr>\n",
                device = escape(
                    &info
                        .device
                        .as_deref()
                        .map_or_else(|| "-".into(), device::display)
                ),
                fp = info.fingerprint,
                created = info.created_at,
                created_ago = ago(now, info.created_at),
                seen = info.last_seen,
                seen_ago = ago(now, info.last_seen),
            ));
        }
        let body = format!(
            "<p>{n} live session(s) for <b>{user}</b>.</p>
<table class=sessions>
<tr><th>device</th><th>session fingerprint</th><th>started</th><th>last seen</th><th></th></tr>
{rows}</table>
<form method=post action=/sessions/others><button>Log out everywhere else</button></form>
<p><a href=/>Back</a></p>",
            n = list.len(),
            user = escape(user),
        );
        Reply::html(200, self.page_with_footer("Your sessions", &body))
    }

    fn page_with_footer(&self, title: &str, body: &str) -> String {
        let warning = if self.cookies.is_secure() {
            ""
        } else {
            "<p class=warn>Demo over plain http: the session cookie is sent without \
             <code>Secure</code>. Never deploy like this.</p>"
        };
        page(
            title,
            &format!(
                "{body}\n<hr><p class=hint>latchkey demo · store: {} · cookie <code>{}</code></p>{warning}",
                escape(&self.backend.label),
                escape(self.cookies.name())
            ),
        )
    }
}

/// Plain text for scripts and tests: who the session belongs to.
fn me(s: &Session) -> Reply {
    let role = s
        .get::<String>("role")
        .ok()
        .flatten()
        .unwrap_or_else(|| "user".into());
    Reply::text(
        200,
        format!(
            "user={}\nrole={role}\nfingerprint={}\n",
            s.user().unwrap_or(""),
            s.fingerprint()
        ),
    )
}

/// Refuses a POST another site made the browser send. SameSite=Lax already
/// keeps the cookie off cross-site POSTs; this also stops login CSRF (which
/// needs no cookie). [`latchkey::check_origin`] trusts the browser's own
/// `Sec-Fetch-Site` and otherwise compares `Origin` with `Host`: under
/// `Referrer-Policy: no-referrer` (which every response here sets) Chromium
/// sends `Origin: null` on our own form posts, so `Origin` alone cannot
/// tell them from a sandboxed page's.
fn same_origin(req: &Request) -> Result<(), latchkey::CrossSiteRequest> {
    let headers = FetchHeaders {
        method: req.method().as_str(),
        sec_fetch_site: header(req, "Sec-Fetch-Site"),
        origin: header(req, "Origin"),
        host: header(req, "Host"),
    };
    latchkey::check_origin(&headers, &[])
}

fn read_form(req: &mut Request) -> Result<Vec<(String, String)>, Reply> {
    let mut body = Vec::new();
    if req
        .as_reader()
        .take(MAX_BODY_BYTES + 1)
        .read_to_end(&mut body)
        .is_err()
    {
        return Err(Reply::text(400, "unreadable body\n"));
    }
    if body.len() as u64 > MAX_BODY_BYTES {
        return Err(Reply::text(413, "form too large\n"));
    }
    Ok(body
        .split(|&b| b == b'&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let mut it = pair.splitn(2, |&b| b == b'=');
            let k = url_decode(it.next().unwrap_or_default());
            let v = url_decode(it.next().unwrap_or_default());
            (k, v)
        })
        .collect())
}

fn form_value(form: &[(String, String)], key: &str) -> Option<String> {
    form.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
}

/// `application/x-www-form-urlencoded` decoding: `+` is a space, `%XY` a
/// byte; malformed escapes are kept as they are.
fn url_decode(s: &[u8]) -> String {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < s.len() => match (hex(s[i + 1]), hex(s[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// How long ago `t` was, to the second, for a person: "just now", "42 s
/// ago", "5 min ago", "2 h 05 min ago".
fn ago(now: Timestamp, t: Timestamp) -> String {
    match now.duration_since(t).as_secs() {
        0 => "just now".into(),
        s @ 1..60 => format!("{s} s ago"),
        s @ 60..3600 => format!("{} min ago", s / 60),
        s => format!("{} h {:02} min ago", s / 3600, s / 60 % 60),
    }
}

fn until(now: Timestamp, t: Timestamp) -> String {
    let secs = t.duration_since(now).as_secs();
    if secs == 0 {
        "now".into()
    } else {
        format!(
            "in {}h {:02}m {:02}s",
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        )
    }
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>
<html lang=en><head><meta charset=utf-8><title>{title} · latchkey demo</title>
<meta name=viewport content=\"width=device-width, initial-scale=1\">
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:52em;margin:2em auto;padding:0 1em;overflow-wrap:break-word}}
table{{border-collapse:collapse;max-width:100%;margin-bottom:1em}}
th,td{{text-align:left;vertical-align:top;padding:.25em .75em .25em 0}}
td{{overflow-wrap:anywhere}} .sessions td,.sessions th{{border-bottom:1px solid #ddd}}
button{{white-space:nowrap}} td.when,.this{{overflow-wrap:normal}} form{{display:inline}} .this{{color:#070}}
.hint{{color:#555}} .warn{{color:#a40}} .notice{{background:#fec;padding:.5em}}</style></head>
<body><h1>{title}</h1>
{body}
</body></html>
"
    )
}

/// An error and its sources as one line, joined by ": ". A source whose
/// text its error already ends with (some clients print their cause
/// themselves) is not repeated.
fn chain(e: &dyn StdError) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let text = c.to_string();
        if !s.ends_with(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        cur = c.source();
    }
    s
}

fn respond(req: Request, reply: Reply) {
    let mut response = Response::from_string(reply.body).with_status_code(reply.status);
    let mut headers = vec![
        ("Content-Type", reply.content_type.to_owned()),
        // Pages show session details: never cache them anywhere.
        ("Cache-Control", "no-store".to_owned()),
        ("X-Content-Type-Options", "nosniff".to_owned()),
        ("Referrer-Policy", "no-referrer".to_owned()),
        (
            "Content-Security-Policy",
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"
                .to_owned(),
        ),
    ];
    if let Some(to) = reply.location {
        headers.push(("Location", to.to_owned()));
    }
    for c in reply.set_cookies {
        headers.push(("Set-Cookie", c));
    }
    for (name, value) in headers {
        if let Ok(h) = Header::from_bytes(name.as_bytes(), value.as_bytes()) {
            response.add_header(h);
        }
    }
    // The client may have gone; nothing to do about it.
    let _ = req.respond(response);
}

fn main() -> ExitCode {
    let opts = match parse_args(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(msg) => {
            if msg.is_empty() {
                print!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            eprint!("{msg}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    // Every failure to start is a sentence and a non-zero exit, never a
    // `Debug` dump of the error.
    match run(opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("login_server: {}", chain(&*e));
            ExitCode::FAILURE
        }
    }
}

/// Binds the server to `127.0.0.1:port`, explaining the usual failures.
fn listen(port: u16) -> Result<Server, BoxError> {
    Server::http(("127.0.0.1", port)).map_err(|e| -> BoxError {
        let kind = e.downcast_ref::<std::io::Error>().map(std::io::Error::kind);
        match kind {
            Some(std::io::ErrorKind::AddrInUse) => format!(
                "port {port} on 127.0.0.1 is already in use, maybe by another copy of the demo. \
                 Stop that program, or pick another port with --port, e.g. \
                 `cargo run -p latchkey-demo -- --port {}` (--port 0 takes any free one)",
                port.checked_add(1).unwrap_or(8081)
            )
            .into(),
            Some(std::io::ErrorKind::PermissionDenied) => format!(
                "not allowed to listen on port {port} (ports below 1024 need privileges): \
                 pick another with --port, e.g. --port 8080"
            )
            .into(),
            _ => format!("cannot listen on 127.0.0.1:{port}: {}", chain(&*e)).into(),
        }
    })
}

/// Binds the port, opens the store and serves until the process is killed.
fn run(opts: Options) -> Result<(), BoxError> {
    // The port first: when it is taken, that is all there is to say.
    let server = Arc::new(listen(opts.port)?);
    let cookies = if opts.secure_cookie {
        CookieConfig::default()
    } else {
        eprintln!(
            "WARNING: plain-http demo. The session cookie `latchkey-session` is sent without \
             Secure (CookieConfig::danger_insecure_http), so anyone who can watch the traffic \
             can take over a session. Fine on 127.0.0.1; never deploy this way."
        );
        CookieConfig::danger_insecure_http()
    };
    let backend = open_backend(&opts, &cookies)?;
    let addr = server
        .server_addr()
        .to_ip()
        .ok_or("the server is not on an IP address")?;
    // The first stdout line is the address: tests with `--port 0` read it.
    println!("listening on http://{addr}");
    println!("store: {}", backend.label);
    std::io::stdout().flush()?;

    let app = Arc::new(App {
        backend,
        cookies,
        clock: SystemClock,
    });
    if let Some(server_side) = app.backend.server_side.clone() {
        // Ended and expired records are kept until their retention passes
        // (so a late request hears "terminated", not "unknown"); sweep them
        // now and then so the store does not grow without bound.
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(Duration::from_secs(60));
                if let Err(e) = server_side.purge_expired() {
                    eprintln!("purge failed: {}", chain(&e));
                }
            }
        });
    }
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let (server, app) = (server.clone(), app.clone());
            std::thread::spawn(move || {
                while let Ok(mut req) = server.recv() {
                    let reply = app.handle(&mut req);
                    respond(req, reply);
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app() -> App {
        App {
            backend: store_backend(
                Box::new(MemoryStore::new()),
                Policy::default(),
                "memory".into(),
            ),
            cookies: CookieConfig::danger_insecure_http(),
            clock: SystemClock,
        }
    }

    #[test]
    fn a_conflict_that_outlasts_the_retries_is_a_409_page_not_a_500() {
        let reply = app().failure(&Error::Conflict);
        assert_eq!(reply.status, 409);
        assert!(reply.content_type.starts_with("text/html"));
        assert!(reply.body.contains("try again"), "{}", reply.body);
        assert!(reply.set_cookies.is_empty(), "the cookie is left alone");
    }

    #[test]
    fn a_change_that_loses_a_race_is_applied_again_to_a_fresh_copy() {
        let app = app();
        let manager = &app.backend.manager;
        let issued = manager
            .create(NewSession::new().with_user("alice"))
            .unwrap();
        let stale = manager.load(issued.token()).unwrap().session;
        // Someone else saves first: `stale` is now an old version.
        let mut other = manager.load(issued.token()).unwrap().session;
        other.insert("theme", "dark").unwrap();
        manager.save(&mut other).unwrap();

        let mut attempts = 0;
        let admin = app
            .with_retries(stale, issued.token(), |s| {
                attempts += 1;
                s.insert("role", "admin")?;
                manager.change_privilege(s)
            })
            .unwrap();
        assert_eq!(attempts, 2, "one conflict, one success");
        let s = manager.load(admin.token()).unwrap().session;
        assert_eq!(s.get::<String>("role").unwrap().as_deref(), Some("admin"));
        assert_eq!(
            s.get::<String>("theme").unwrap().as_deref(),
            Some("dark"),
            "the other change is kept, not overwritten"
        );
    }

    #[test]
    fn retries_are_bounded() {
        let app = app();
        let issued = app.backend.manager.create(NewSession::new()).unwrap();
        let session = app.backend.manager.load(issued.token()).unwrap().session;
        let mut attempts = 0;
        let result = app.with_retries(session, issued.token(), |_| {
            attempts += 1;
            Err(Error::Conflict)
        });
        assert!(matches!(result, Err(Error::Conflict)), "{result:?}");
        assert_eq!(attempts, CONFLICT_ATTEMPTS);
    }

    #[test]
    fn an_error_chain_says_each_cause_once() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "connection failed: {}", self.0)
            }
        }
        impl StdError for Outer {
            fn source(&self) -> Option<&(dyn StdError + 'static)> {
                Some(&self.0)
            }
        }
        let e = Outer(std::io::Error::other("refused"));
        assert_eq!(chain(&e), "connection failed: refused");
        let store = Error::from(latchkey::store::StoreError::Io(std::io::Error::other(
            "disk gone",
        )));
        assert_eq!(chain(&store), "session store failed: I/O error: disk gone");
    }

    #[test]
    fn times_ago_read_like_a_person_would_say_them() {
        let now = Timestamp::from_unix_millis(1_800_000_000_000);
        let before = |secs: u64| Timestamp::from_unix_millis(1_800_000_000_000 - secs * 1000);
        assert_eq!(ago(now, now), "just now");
        assert_eq!(ago(now, before(42)), "42 s ago");
        assert_eq!(ago(now, before(5 * 60 + 3)), "5 min ago");
        assert_eq!(ago(now, before(2 * 3600 + 5 * 60)), "2 h 05 min ago");
    }
}
