//! A small login site on latchkey: log in, see your session, become admin
//! (the session rotates), list and end your sessions, log out.
//!
//! ```sh
//! cargo run --example login_server            # then open http://127.0.0.1:8080
//! cargo run --example login_server -- --help  # the options
//! ```
//!
//! Log in with any user name and the demo password `latchkey`.
//!
//! Sessions live in files under `./latchkey-sessions` by default, so a
//! restart keeps everyone logged in, and two instances started on two ports
//! with the same `--store file:DIR` serve one browser interchangeably (what
//! a load balancer without sticky sessions needs). `--store memory` forgets
//! on restart; `--store redis:URL` (with `--features redis`) shares sessions
//! across machines; `--tickets` keeps sessions in signed cookies and uses the
//! store only for revocations.
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
//!   POSTs whose `Origin` (or `Sec-Fetch-Site`) names another site are
//!   refused with 403.
//! - **Caching**: every response carries `Cache-Control: no-store`, so a
//!   page showing a session is never kept by a shared cache or the back
//!   button of a shared computer.
//! - User-supplied text (the user name, the device label) is HTML-escaped.

use std::error::Error as StdError;
use std::io::{Read as _, Write as _};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use latchkey::{
    Clock as _, CookieConfig, CookieError, Error, FileStore, Fingerprint, Issued, KeyRing, Loaded,
    MemoryStore, NewSession, Policy, Session, SessionManager, Store, StoreManager, SystemClock,
    TicketKey, TicketManager, Timestamp, UserLimitAction,
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

const USAGE: &str = "\
usage: login_server [options]

  --port N                 port on 127.0.0.1 (default 8080; 0 picks a free one,
                           the address is printed on stdout)
  --store file[:DIR]       sessions in files under DIR (default
                           ./latchkey-sessions): a restart keeps everyone
                           logged in, and several instances on one machine
                           can share the directory (the default store)
  --store memory           sessions in memory: a restart logs everyone out
  --store redis:URL        sessions in Redis, e.g. redis:redis://127.0.0.1:6379/0
                           (build with --features redis)
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
        StoreChoice::File(dir) => (
            Box::new(FileStore::open(dir)?),
            format!(
                "files in {} (sessions survive a restart; instances sharing the directory share sessions)",
                dir.display()
            ),
        ),
        #[cfg(feature = "redis")]
        StoreChoice::Redis(url) => (
            Box::new(latchkey::RedisStore::open(url)?),
            "redis (shared by every instance using it)".into(),
        ),
        #[cfg(not(feature = "redis"))]
        StoreChoice::Redis(_) => {
            return Err("the Redis store needs the `redis` feature: \
                        cargo run --features redis --example login_server -- --store redis:URL"
                .into());
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

/// Who is asking, as the session layer sees it.
enum Auth {
    /// No session cookie at all.
    Anonymous,
    /// A live session; `reissue` set when the cookie must change.
    Session(Box<Loaded>),
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
            Ok(loaded) => Auth::Session(Box::new(loaded)),
            Err(e) if e.is_rejection() => Auth::Rejected(e.reason(), e.clears_cookie()),
            Err(e) => {
                eprintln!("session store failed: {}", chain(&e));
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
        if post && cross_site(req) {
            return Reply::text(403, "cross-site form submissions are refused\n");
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
            Auth::Session(loaded) => {
                let Loaded {
                    session, reissue, ..
                } = *loaded;
                (Ok(session), reissue.and_then(|i| self.set_cookie(&i)))
            }
        };
        let reply = match (path.as_str(), post, session) {
            ("/", false, Ok(s)) => self.session_page(&s),
            ("/", false, Err(reason)) => self.login_page(reason),
            ("/me", false, Ok(s)) => me(&s),
            ("/me", false, Err(reason)) => Reply::text(401, format!("rejected={reason}\n")),
            ("/sessions", false, Ok(s)) => self.sessions_page(&s),
            ("/login", true, current) => self.login(req, current.ok()),
            ("/admin", true, Ok(s)) => self.become_admin(s),
            ("/logout", true, Ok(s)) => self.logout(&s),
            ("/sessions/others", true, Ok(s)) => self.end_others(&s),
            ("/sessions/end", true, Ok(s)) => self.end_one(req, &s),
            (
                "/sessions" | "/admin" | "/logout" | "/sessions/others" | "/sessions/end",
                _,
                Err(_),
            ) => Reply::text(401, "log in first\n"),
            _ => Reply::text(404, "not found\n"),
        };
        // A handler that issued or cleared a cookie has the last word.
        if !reply.set_cookies.is_empty() {
            set_cookie = None;
        }
        reply.with_cookie(set_cookie)
    }

    fn login(&self, req: &mut Request, current: Option<Session>) -> Reply {
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
            Some(mut session) => self.backend.manager.login(&mut session, user),
            None => {
                let mut new = NewSession::new().with_user(user);
                if let Some(device) = header(req, "User-Agent").map(device_label) {
                    new = new.with_device(device);
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

    fn become_admin(&self, mut session: Session) -> Reply {
        if let Err(e) = session.insert("role", "admin") {
            return self.failure(&e);
        }
        // A privilege change gets a fresh ID (S3), and the old one is
        // refused at once: whoever copied the old cookie does not inherit
        // admin rights, not even within the rotation grace window.
        match self.backend.manager.change_privilege(&mut session) {
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

    /// An error from a call on a loaded session.
    fn failure(&self, e: &Error) -> Reply {
        if e.is_backend_failure() {
            eprintln!("session store failed: {}", chain(e));
            return Reply::text(503, "the session store is unavailable; try again\n");
        }
        if e.is_rejection() {
            // It ended between load and now (logged out elsewhere).
            let clear = e.clears_cookie().then(|| self.cookies.clear_cookie());
            return Reply::see_other("/").with_cookie(clear);
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
            device = escape(s.device().unwrap_or("-")),
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
        let mut rows = String::new();
        for info in &list {
            let this = info.fingerprint == s.fingerprint();
            let action = if this {
                "this one".to_owned()
            } else {
                format!(
                    "<form method=post action=/sessions/end><input type=hidden name=fingerprint value={fp}><button>Log out</button></form>",
                    fp = info.fingerprint
                )
            };
            rows.push_str(&format!(
                "<tr><td><code>{fp}</code></td><td>{device}</td><td>{created}</td><td>{seen}</td><td>{idle}</td><td>{action}</td></tr>\n",
                fp = info.fingerprint,
                device = escape(info.device.as_deref().unwrap_or("-")),
                created = info.created_at,
                seen = info.last_seen,
                idle = info.idle_deadline,
            ));
        }
        let body = format!(
            "<p>{n} live session(s) for <b>{user}</b>.</p>
<table>
<tr><th>fingerprint</th><th>device</th><th>created</th><th>last seen</th><th>idle deadline</th><th></th></tr>
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

/// Whether a POST comes from another site. Browsers send `Origin` on POSTs
/// and `Sec-Fetch-Site` on every request; SameSite=Lax already keeps the
/// cookie off cross-site POSTs, this also stops login CSRF (which needs no
/// cookie).
fn cross_site(req: &Request) -> bool {
    // The browser's own word, which no page can set: `same-origin` for our
    // forms, `none` for a request the user made directly. Browsers send
    // `Origin: null` on same-origin form posts under `Referrer-Policy:
    // no-referrer` (which every response here sets), so for them the
    // Origin header alone cannot tell.
    match header(req, "Sec-Fetch-Site") {
        Some("same-origin" | "none") => return false,
        Some(_) => return true,
        None => {}
    }
    // No Sec-Fetch-Site (an older browser, curl): the Origin must be ours;
    // `null` is refused, as it cannot be told from a sandboxed page.
    match (header(req, "Origin"), header(req, "Host")) {
        (Some(origin), Some(host)) => {
            origin != format!("http://{host}") && origin != format!("https://{host}")
        }
        (Some(_), None) => true,
        (None, _) => false,
    }
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

/// A short, printable device label from a User-Agent.
fn device_label(ua: &str) -> String {
    // At most 100 characters and 200 bytes: well inside the policy's label
    // limit (256 bytes by default) whatever the characters.
    let mut out = String::new();
    for c in ua.chars().filter(|c| !c.is_control()).take(100) {
        if out.len() + c.len_utf8() > 200 {
            break;
        }
        out.push(c);
    }
    out
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
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:52em;margin:2em auto;padding:0 1em}}
th{{text-align:left;padding-right:1em}} td{{padding-right:1em}} form{{display:inline}}
.hint{{color:#555}} .warn{{color:#a40}} .notice{{background:#fec;padding:.5em}}</style></head>
<body><h1>{title}</h1>
{body}
</body></html>
"
    )
}

fn chain(e: &dyn StdError) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
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

fn main() -> Result<(), BoxError> {
    let opts = match parse_args(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(msg) => {
            if msg.is_empty() {
                print!("{USAGE}");
                return Ok(());
            }
            eprint!("{msg}\n\n{USAGE}");
            std::process::exit(2);
        }
    };
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
    let server = Arc::new(Server::http(("127.0.0.1", opts.port))?);
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
