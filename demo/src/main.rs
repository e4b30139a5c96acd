//! A small login site on latchkey: log in (optionally "keep me signed
//! in"), see your session, become admin (the session rotates; an old login
//! is asked for its password first), list and end your sessions, log out.
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
//! on restart; `--store redis:URL` (built with `--features redis`),
//! `--store redis-cluster:URL,URL,…` (`--features redis-cluster`) and
//! `--store postgres:PARAMS` (`--features postgres`) share sessions across
//! machines; `--tickets` keeps sessions in signed cookies and
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
//! a store, so the app also holds an optional `StoreManager` over an
//! `Arc<dyn Store>`; each backend is a few lines in [`open_backend`]. The
//! same store keeps the remember-me tokens ([`RememberMe`]; with
//! `--tickets`, the revocation store does).
//!
//! # What web apps expect of sessions
//!
//! - **"Keep me signed in"**: ticking the box at login issues a remember-me
//!   token in a second, persistent cookie. A GET with no usable session
//!   cookie but that cookie logs in again through [`RememberMe::log_in`]
//!   (both cookies are replaced); the session page says so. Logout forgets
//!   the token; "log out everywhere else" forgets every token of the user.
//! - **Password before "Become admin"**: a login older than
//!   [`REAUTH_AFTER`] (`--reauth-after-secs`), or a session restored from a
//!   remember-me token, is sent to a password prompt first
//!   ([`SessionManager::require_recent_auth`], then
//!   [`SessionManager::reauthenticate`]).
//! - **Flash messages** after login, after becoming admin and after "log
//!   out everywhere else", shown once on the next page
//!   ([`Session::flash`], [`Session::take_flashes`]).
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
//!   login CSRF, which needs no cookie. As a third, every form of a
//!   logged-in page carries the session's CSRF token
//!   ([`Session::csrf_token`]), and every POST on a session is refused with
//!   403 unless it carries it back ([`Session::verify_csrf`]): this holds
//!   for browsers that send neither `Sec-Fetch-Site` nor `Origin`, and for a
//!   same-site subdomain in someone else's hands. The login form has no
//!   token (see [`App::login`]).
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
    Clock as _, CookieConfig, CookieError, EndReason, Error, FetchHeaders, Fingerprint, Flash,
    Issued, KeyRing, Loaded, MemoryStore, NewSession, Policy, REMEMBERED_KEY, RememberError,
    RememberMe, RememberToken, Session, SessionManager, Store, StoreManager, SystemClock,
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

/// How recent the password login must be for "Become admin" to go ahead
/// without asking for the password again (`--reauth-after-secs` changes it).
const REAUTH_AFTER: Duration = Duration::from_secs(5 * 60);

/// The hidden form field that carries the CSRF token.
const CSRF_FIELD: &str = "csrf_token";

/// The remember-me cookie's name on plain http: a `__Host-` name (the
/// production default, `__Host-remember`) requires `Secure`.
const INSECURE_REMEMBER_COOKIE: &str = "latchkey-remember";

/// Every path the demo serves; any other is a 404 that never reads the
/// session.
const PATHS: &[&str] = &[
    "/",
    "/me",
    "/sessions",
    "/login",
    "/admin",
    "/admin/confirm",
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
  --store redis-cluster:URL,URL,...
                           sessions in a Redis Cluster, given a few of its
                           nodes, e.g. redis-cluster:redis://127.0.0.1:7000/,
                           redis://127.0.0.1:7001/ (build with: cargo run -p
                           latchkey-demo --features redis-cluster -- --store
                           redis-cluster:URL,URL)
  --store postgres:PARAMS  sessions in a PostgreSQL table, e.g.
                           postgres:postgresql://app@127.0.0.1/app or
                           postgres:'host=127.0.0.1 user=app dbname=app';
                           the table is created if missing (build with:
                           cargo run -p latchkey-demo --features postgres
                           -- --store postgres:PARAMS)
  --tickets                stateless signed tickets instead of server-side
                           sessions (the store then keeps only revocations);
                           the signing key comes from $LATCHKEY_DEMO_TICKET_KEY
                           (base64) or is generated at start
  --rotation-grace-ms N    how long a rotated token, or a used remember-me
                           token, keeps working (default 30000)
  --reauth-after-secs N    \"Become admin\" asks for the password again when the
                           login is older than this (default 300; 0 always asks)
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
    reauth_after: Duration,
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
    /// Seed node URLs of a Redis Cluster; needs `--features redis-cluster`.
    #[cfg_attr(not(feature = "redis-cluster"), allow(dead_code))]
    RedisCluster(Vec<String>),
    /// PostgreSQL connection parameters (a URL or `key=value` pairs);
    /// needs `--features postgres`.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    Postgres(String),
    // A store of another kind is one more variant here, one more prefix in
    // `parse_store` (matched before any prefix it starts with), and one
    // more arm in `open_backend`, behind its feature.
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut opts = Options {
        port: 8080,
        store: StoreChoice::File(PathBuf::from(DEFAULT_FILE_DIR)),
        rotation_grace: Policy::default().rotation_grace(),
        reauth_after: REAUTH_AFTER,
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
            "--reauth-after-secs" => {
                let v = value("--reauth-after-secs")?;
                let secs: u64 = v
                    .parse()
                    .map_err(|_| format!("bad --reauth-after-secs {v:?}"))?;
                opts.reauth_after = Duration::from_secs(secs);
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
        _ if v.starts_with("redis-cluster:") => {
            let nodes: Vec<String> = v["redis-cluster:".len()..]
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(str::to_owned)
                .collect();
            if nodes.is_empty() {
                return Err(
                    "--store redis-cluster: needs the URLs of one or more of the \
                     cluster's nodes, comma-separated, e.g. \
                     redis-cluster:redis://127.0.0.1:7000/,redis://127.0.0.1:7001/"
                        .into(),
                );
            }
            Ok(StoreChoice::RedisCluster(nodes))
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
        url if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            Ok(StoreChoice::Postgres(url.to_owned()))
        }
        _ if v.starts_with("postgres:") => {
            let params = &v["postgres:".len()..];
            if params.trim().is_empty() {
                return Err("--store postgres: needs connection parameters, e.g. \
                     postgres:postgresql://app@127.0.0.1/app"
                    .into());
            }
            Ok(StoreChoice::Postgres(params.to_owned()))
        }
        other => Err(format!("unknown store {other:?}")),
    }
}

/// The session machinery, whatever the backend.
struct Backend {
    /// What every request goes through.
    manager: Arc<dyn SessionManager>,
    /// The same sessions with the server-side extras, when there is a store.
    server_side: Option<Arc<StoreManager<Arc<dyn Store>>>>,
    /// "Keep me signed in" tokens, in the same store.
    remember: RememberMe,
    /// For the page footer.
    label: String,
}

/// A store-backed manager serves as both the manager and the extras, and
/// its store keeps the remember-me tokens too (they are records bound to
/// no user, so they never show up as sessions).
fn store_backend(
    store: Arc<dyn Store>,
    policy: Policy,
    label: String,
    cookies: &CookieConfig,
) -> Result<Backend, CookieError> {
    let remember = remember_me(store.clone(), policy.clone(), cookies)?;
    let manager = Arc::new(StoreManager::new(store).with_policy(policy));
    Ok(Backend {
        manager: manager.clone(),
        server_side: Some(manager),
        remember,
        label,
    })
}

/// Remember-me tokens in `store`, under the sessions' policy (its rotation
/// grace is the two-tab window of a used token). On plain http the cookie
/// is the demo's insecure kind, as the session cookie is.
fn remember_me(
    store: Arc<dyn Store>,
    policy: Policy,
    cookies: &CookieConfig,
) -> Result<RememberMe, CookieError> {
    let remember = RememberMe::new(store, policy);
    if cookies.is_secure() {
        return Ok(remember);
    }
    let insecure = CookieConfig::builder()
        .with_name(INSECURE_REMEMBER_COOKIE)
        .danger_insecure_http()
        .build()?;
    Ok(remember.with_cookie(insecure))
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
    let (store, label): (Arc<dyn Store>, String) = match &opts.store {
        StoreChoice::Memory => (
            Arc::new(MemoryStore::new()),
            "memory (a restart logs everyone out)".into(),
        ),
        #[cfg(unix)]
        StoreChoice::File(dir) => (
            Arc::new(FileStore::open(dir)?),
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
                Arc::new(MemoryStore::new()),
                "memory, as the file store is Unix-only (a restart logs everyone out)".into(),
            )
        }
        #[cfg(feature = "redis")]
        StoreChoice::Redis(url) => (
            Arc::new(latchkey::RedisStore::open(url)?),
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
        // A node URL may hold a password: the URLs are never printed, and
        // the label gives only how many there are. `ping` reaches every
        // master now, so a wrong address ends the start with a sentence
        // rather than failing the first request.
        #[cfg(feature = "redis-cluster")]
        StoreChoice::RedisCluster(nodes) => {
            let store = latchkey::RedisClusterStore::open(nodes)?;
            store.ping()?;
            let label = format!(
                "redis-cluster, {} seed node{}, keys under {} (shared by every instance using it)",
                nodes.len(),
                if nodes.len() == 1 { "" } else { "s" },
                store.prefix()
            );
            (Arc::new(store), label)
        }
        #[cfg(not(feature = "redis-cluster"))]
        StoreChoice::RedisCluster(_) => {
            return Err(
                "the Redis Cluster store needs the demo built with its `redis-cluster` feature: \
                 cargo run -p latchkey-demo --features redis-cluster -- \
                 --store redis-cluster:URL,URL"
                    .into(),
            );
        }
        // The parameters may hold a password: they are never printed, and
        // the label names only the table.
        #[cfg(feature = "postgres")]
        StoreChoice::Postgres(params) => {
            let store = latchkey::PostgresStore::connect(params)?;
            // A demo creates its own table; a deployment runs the migration
            // once, at deploy time (see `PostgresStore::migrate`).
            store.migrate()?;
            let label = format!(
                "postgres, table {} (shared by every instance using it)",
                store.table()
            );
            (Arc::new(store), label)
        }
        #[cfg(not(feature = "postgres"))]
        StoreChoice::Postgres(_) => {
            return Err(
                "the PostgreSQL store needs the demo built with its `postgres` feature: \
                 cargo run -p latchkey-demo --features postgres -- --store postgres:PARAMS"
                    .into(),
            );
        }
    };
    if !opts.tickets {
        return Ok(store_backend(store, policy, label, cookies)?);
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
    let remember = remember_me(store.clone(), policy.clone(), cookies)?;
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
        remember,
        label: format!("signed tickets, revocations in {label}"),
    })
}

struct App {
    backend: Backend,
    cookies: CookieConfig,
    clock: SystemClock,
    /// How recent a login "Become admin" accepts without a password prompt.
    reauth_after: Duration,
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

    /// Adds the cookies set before the handler ran (a reissue hint, a
    /// remember-me login, a refused cookie to clear) under the handler's
    /// own: for a cookie name the handler set or cleared, its word is the
    /// last, and the earlier one is dropped.
    fn after(mut self, earlier: Vec<String>) -> Reply {
        let name = |c: &str| c.split('=').next().unwrap_or_default().to_owned();
        let own: Vec<String> = self.set_cookies.iter().map(|c| name(c)).collect();
        let mut all: Vec<String> = earlier
            .into_iter()
            .filter(|c| !own.contains(&name(c)))
            .collect();
        all.append(&mut self.set_cookies);
        self.set_cookies = all;
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

/// Why a request runs logged out.
#[derive(Clone, Copy)]
struct Refusal {
    /// A stable reason code (`""`: there was no session cookie at all).
    reason: &'static str,
    /// Ended by "log out everywhere else" in another browser.
    ended_elsewhere: bool,
}

impl Refusal {
    const NONE: Refusal = Refusal::because("");

    const fn because(reason: &'static str) -> Refusal {
        Refusal {
            reason,
            ended_elsewhere: false,
        }
    }

    fn of(e: &Error) -> Refusal {
        Refusal {
            reason: e.reason(),
            ended_elsewhere: matches!(
                e,
                Error::Terminated {
                    reason: EndReason::LogoutAll
                }
            ),
        }
    }
}

/// Who is asking, as the session layer sees it.
enum Auth {
    /// No usable session: no cookie, or one refused for the reason given.
    Visitor(Refusal),
    /// A live session; `reissue` set when the cookie must change.
    Session(Box<Current>),
    /// The store failed: 503. Keep the cookies, but send the ones just
    /// issued (a remember-me login whose session did not load).
    Unavailable,
}

fn header<'r>(req: &'r Request, name: &'static str) -> Option<&'r str> {
    req.headers()
        .iter()
        .find(|h| h.field.equiv(name))
        .map(|h| h.value.as_str())
}

/// Every `Cookie` header of the request.
fn cookie_headers(req: &Request) -> impl Iterator<Item = &[u8]> {
    req.headers()
        .iter()
        .filter(|h| h.field.equiv("Cookie"))
        .map(|h| h.value.as_str().as_bytes())
}

/// Whether the password typed matches. Constant time: the comparison must
/// not tell how much of a guess was right.
fn password_ok(password: &str) -> bool {
    bool::from(password.as_bytes().ct_eq(DEMO_PASSWORD.as_bytes()))
}

fn is_admin(s: &Session) -> bool {
    s.get::<String>("role").ok().flatten().as_deref() == Some("admin")
}

/// Whether [`RememberMe::log_in`] made this session (it marks the data).
fn remembered(s: &Session) -> bool {
    s.keys().any(|k| k == REMEMBERED_KEY)
}

/// Adds a flash message. One can only be refused for its size or for too
/// many pending, neither of which a demo page should fail over.
fn flash(s: &mut Session, message: &str) {
    if let Err(e) = s.flash("notice", message) {
        eprintln!("flash message dropped: {e}");
    }
}

/// A duration as a person would say it: "5 min", "90 s".
fn span(d: Duration) -> String {
    match d.as_secs() {
        s if s >= 60 && s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

impl App {
    /// Finds the request's session. A GET without a usable session cookie
    /// (`may_resume`) tries the remember-me cookie. Returns who is asking
    /// and the cookies to set whatever the handler does.
    fn authenticate(&self, req: &Request, may_resume: bool) -> (Auth, Vec<String>) {
        let (refusal, clear) = match self.cookies.find_token_in(cookie_headers(req)) {
            Ok(Some(token)) => match self.backend.manager.load(token) {
                Ok(loaded) => {
                    let current = Current {
                        loaded,
                        token: token.to_owned(),
                    };
                    return (Auth::Session(Box::new(current)), Vec::new());
                }
                Err(e) if e.is_rejection() => (Refusal::of(&e), e.clears_cookie()),
                Err(e) => {
                    // Logged here, once: `handle` answers 503 without a word.
                    eprintln!("{}", chain(&e));
                    return (Auth::Unavailable, Vec::new());
                }
            },
            Ok(None) => (Refusal::NONE, false),
            // No usable session cookie: the request runs logged out. A
            // header crowded past the scan limit keeps the cookie (it was
            // not read, and neither can the remember-me cookie be); an
            // ambiguous or broken one is cleared.
            Err(e @ CookieError::HeaderTooLarge { .. }) => {
                let refusal = Refusal::because("cookie_header_too_large");
                let clear = e.clears_cookie().then(|| self.cookies.clear_cookie());
                return (Auth::Visitor(refusal), clear.into_iter().collect());
            }
            Err(e) => (Refusal::because("bad_cookie"), e.clears_cookie()),
        };
        // The dead cookie is forgotten, unless it was superseded: the
        // response to the login or privilege change that retired it sets
        // the new cookie, and a clearing cookie arriving after it would
        // undo it.
        let set: Vec<String> = clear
            .then(|| self.cookies.clear_cookie())
            .into_iter()
            .collect();
        // Only a GET trades a remember-me token for a session: a POST on a
        // dead session carries no CSRF token a new session could verify.
        // A superseded cookie has a successor on its way: using the token
        // up here would only add a second session.
        if !may_resume || refusal.reason == "superseded" {
            return (Auth::Visitor(refusal), set);
        }
        self.resume(req, refusal, set)
    }

    /// "Keep me signed in": a request without a usable session presents
    /// its remember-me cookie, if it has one.
    fn resume(&self, req: &Request, refusal: Refusal, mut set: Vec<String>) -> (Auth, Vec<String>) {
        let remember = &self.backend.remember;
        let token = match remember.cookie().find_token_in(cookie_headers(req)) {
            Ok(Some(token)) => token,
            Ok(None) => return (Auth::Visitor(refusal), set),
            Err(e) => {
                set.extend(e.clears_cookie().then(|| remember.cookie().clear_cookie()));
                return (Auth::Visitor(refusal), set);
            }
        };
        let failed = match remember.log_in(&*self.backend.manager, token) {
            Ok((issued, replacement)) => {
                // Both cookies are new, whatever happens next: the token
                // presented is used up, and presenting it again later would
                // look like theft. The dead session cookie's clearing is
                // replaced by the new one.
                let set: Vec<String> = [
                    self.set_cookie(&issued),
                    self.set_remember_cookie(&replacement),
                ]
                .into_iter()
                .flatten()
                .collect();
                match self.backend.manager.load(issued.token()) {
                    Ok(loaded) => {
                        println!(
                            "remember-me: {:?} signed in again as session {}",
                            loaded.session.user().unwrap_or_default(),
                            issued.fingerprint()
                        );
                        let current = Current {
                            loaded,
                            token: issued.token().to_owned(),
                        };
                        return (Auth::Session(Box::new(current)), set);
                    }
                    Err(e) if e.is_backend_failure() => {
                        eprintln!("{}", chain(&e));
                        return (Auth::Unavailable, set);
                    }
                    Err(e) => {
                        eprintln!("the restored session did not load: {}", chain(&e));
                        return (Auth::Visitor(refusal), set);
                    }
                }
            }
            Err(e) => e,
        };
        match failed {
            // Another tab used the token a moment ago and got the
            // replacement: no alarm, no login here; hand the replacement on
            // (the browser usually has it already).
            Error::RememberMe(RememberError::Superseded { replacement }) => {
                set.extend(replacement.and_then(|r| self.set_remember_cookie(&r)));
                (Auth::Visitor(refusal), set)
            }
            // Keep both cookies: the token may be fine.
            e if e.is_backend_failure() => {
                eprintln!("{}", chain(&e));
                (Auth::Unavailable, Vec::new())
            }
            e if e.clears_cookie() => {
                eprintln!("remember-me token refused: {}", chain(&e));
                set.push(remember.cookie().clear_cookie());
                if !matches!(e, Error::RememberMe(RememberError::Theft { .. })) {
                    return (Auth::Visitor(refusal), set);
                }
                // A stolen copy: every session of the user has ended, this
                // browser's included.
                let clear = self.cookies.clear_cookie();
                if !set.contains(&clear) {
                    set.push(clear);
                }
                (Auth::Visitor(Refusal::because(e.reason())), set)
            }
            // The manager refused the session (a user limit): the token was
            // put back and still works.
            e => {
                eprintln!("remember-me login failed: {}", chain(&e));
                (Auth::Visitor(refusal), set)
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

    /// The `Set-Cookie` for a remember-me token: persistent, `Max-Age` its
    /// remaining lifetime.
    fn set_remember_cookie(&self, token: &RememberToken) -> Option<String> {
        match self.backend.remember.set_cookie_at(token, self.clock.now()) {
            Ok(v) => Some(v),
            Err(e) => {
                eprintln!("cannot send remember-me token {}: {e}", token.fingerprint());
                None
            }
        }
    }

    /// The remember-me token the request carries, if any (a broken one is
    /// none: it is not a token to forget).
    fn presented_remember_token(&self, req: &Request) -> Option<String> {
        let found = self
            .backend
            .remember
            .cookie()
            .find_token_in(cookie_headers(req));
        found.ok().flatten().map(str::to_owned)
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
        let form = if post {
            match read_form(req) {
                Ok(f) => f,
                Err(reply) => return reply,
            }
        } else {
            Vec::new()
        };
        let (auth, mut set_cookies) = self.authenticate(req, !post);
        let session = match auth {
            Auth::Unavailable => {
                return Reply::text(503, "the session store is unavailable; try again\n")
                    .after(set_cookies);
            }
            Auth::Visitor(refusal) => Err(refusal),
            Auth::Session(current) => {
                let Current {
                    loaded:
                        Loaded {
                            session, reissue, ..
                        },
                    token,
                } = *current;
                set_cookies.extend(reissue.and_then(|i| self.set_cookie(&i)));
                Ok((session, token))
            }
        };
        // Every POST on a session carries the session's CSRF token back.
        // The login form is the exception: see `login`.
        if let (true, Ok((s, _))) = (post && path != "/login", &session) {
            let token = form_value(&form, CSRF_FIELD).unwrap_or_default();
            if let Err(refused) = s.verify_csrf(&token) {
                // The reason, never the token. The session and its cookie
                // stay as they are: clearing the cookie here would let any
                // page log our users out.
                eprintln!("refused a POST to {path}: {}", refused.reason());
                return self.csrf_refused().after(set_cookies);
            }
        }
        let reply = match (path.as_str(), post, session) {
            ("/", false, Ok((s, token))) => self.session_page(s, &token),
            ("/", false, Err(refusal)) => self.login_page(refusal),
            ("/me", false, Ok((s, _))) => me(&s),
            ("/me", false, Err(refusal)) => {
                Reply::text(401, format!("rejected={}\n", refusal.reason))
            }
            ("/sessions", false, Ok((s, token))) => self.sessions_page(s, &token),
            ("/login", true, current) => self.login(req, &form, current.ok()),
            ("/admin", true, Ok((s, token))) => self.become_admin(s, &token),
            ("/admin/confirm", false, Ok((s, token))) => self.confirm_page(s, &token, false),
            ("/admin/confirm", true, Ok((s, token))) => self.confirm(s, &token, &form),
            ("/logout", true, Ok((s, _))) => self.logout(req, Some(&s)),
            ("/sessions/others", true, Ok((s, token))) => self.end_others(req, s, &token),
            ("/sessions/end", true, Ok((s, _))) => self.end_one(&form, &s),
            // The cookie was retired moments ago by a change of privilege
            // made by another request of this browser (a double-click on
            // "Become admin"), whose answer carries the new cookie: show the
            // page, which the browser asks for with that cookie.
            (_, _, Err(refusal)) if refusal.reason == "superseded" => Reply::see_other("/"),
            // Logged out already, maybe still remembered: forget that too.
            ("/logout", true, Err(_)) => self.logout(req, None),
            (_, _, Err(_)) => Reply::text(401, "log in first\n"),
            _ => Reply::text(404, "not found\n"),
        };
        reply.after(set_cookies)
    }

    /// 403 for a POST without the session's CSRF token: a form from
    /// another site, or a page rendered before the last login.
    fn csrf_refused(&self) -> Reply {
        Reply::html(
            403,
            page(
                "Form refused",
                "<p>This form did not carry the security token of your session, so \
                 nothing was changed. It may come from another site, or from a page \
                 opened before you last logged in.</p>\n\
                 <p><a href=/>Reload your session page</a> and try again.</p>",
            ),
        )
    }

    /// Renders a page of the session with `view`, and saves the session if
    /// rendering changed it (a CSRF secret created, flash messages taken).
    /// On a version conflict the page is rendered again from a fresh copy.
    fn render(
        &self,
        mut session: Session,
        token: &str,
        view: impl Fn(&mut Session) -> Reply,
    ) -> Reply {
        let result = self.with_retries(&mut session, token, |s| {
            let reply = view(s);
            if !s.is_modified() {
                return Ok(reply);
            }
            // Tickets carry the data: the save issues a new one.
            let issued = self.backend.manager.save(s)?;
            Ok(reply.with_cookie(issued.and_then(|i| self.set_cookie(&i))))
        });
        result.unwrap_or_else(|e| self.failure(&e))
    }

    /// The password login. Its form carries no CSRF token: a visitor has no
    /// session to keep a secret in, and making one for every visitor who
    /// opens the page would let anyone fill the store with empty sessions.
    /// Login CSRF (logging the victim into the attacker's account) is
    /// stopped by `check_origin` in `handle`, and the token would add
    /// nothing against it: the attacker knows their own password.
    fn login(
        &self,
        req: &Request,
        form: &[(String, String)],
        current: Option<(Session, String)>,
    ) -> Reply {
        let user = form_value(form, "username").unwrap_or_default();
        let user = user.trim();
        let password = form_value(form, "password").unwrap_or_default();
        if user.is_empty() || user.chars().count() > 64 || user.chars().any(char::is_control) {
            return Reply::html(
                400,
                page(
                    "Login",
                    "<p>Pick a user name of 1 to 64 characters.</p><p><a href=\"/\">Back</a></p>",
                ),
            );
        }
        if !password_ok(&password) {
            return Reply::html(
                401,
                page(
                    "Login",
                    "<p>Wrong password (it is <code>latchkey</code>).</p><p><a href=\"/\">Back</a></p>",
                ),
            );
        }
        let manager = &self.backend.manager;
        let logged_in = match current {
            // Login on an existing session rotates its ID: a token planted
            // before login (session fixation) is worthless after it.
            Some((mut session, token)) => self
                .with_retries(&mut session, &token, |s| manager.login(s, user))
                .map(|issued| (session, issued)),
            None => {
                let mut new = NewSession::new().with_user(user);
                if let Some(ua) = header(req, "User-Agent") {
                    new = new.with_device(device::label(ua));
                }
                manager
                    .create(new)
                    .and_then(|issued| Ok((manager.load(issued.token())?.session, issued)))
            }
        };
        let (mut session, mut issued) = match logged_in {
            Ok(done) => done,
            Err(e) => return self.failure(&e),
        };
        println!("login: {user:?} as session {}", issued.fingerprint());
        // A token this browser held before is of an older login: forget it
        // whether or not the box is ticked now.
        let old = self.presented_remember_token(req);
        if let Some(Err(e)) = old.as_deref().map(|t| self.backend.remember.forget(t)) {
            eprintln!("forgetting the old remember-me token failed: {}", chain(&e));
        }
        let mut remember_cookie = old.map(|_| self.backend.remember.cookie().clear_cookie());
        if form_value(form, "remember").is_some() {
            match self.backend.remember.issue(user) {
                Ok(token) => remember_cookie = self.set_remember_cookie(&token),
                Err(e) => {
                    eprintln!("cannot issue a remember-me token: {}", chain(&e));
                    flash(
                        &mut session,
                        "You are signed in, but could not be kept signed in.",
                    );
                }
            }
        }
        // Set on the session the login left: a login as another user starts
        // an empty one.
        flash(&mut session, &format!("Welcome back, {user}."));
        match manager.save(&mut session) {
            Ok(newer) => issued = newer.unwrap_or(issued),
            // The login stands; only the greeting is lost.
            Err(e) => eprintln!("saving the welcome message failed: {}", chain(&e)),
        }
        Reply::see_other("/")
            .with_cookie(self.set_cookie(&issued))
            .with_cookie(remember_cookie)
    }

    /// Whether "Become admin" must ask for the password first.
    fn needs_password(&self, s: &Session) -> Result<bool, Error> {
        // A restored session proves that the browser kept a cookie, not that
        // the person at it knows the password. Its authentication time is
        // the password login its token's series started from, which may be
        // recent: ask anyway.
        if remembered(s) {
            return Ok(true);
        }
        match self
            .backend
            .manager
            .require_recent_auth(s, self.reauth_after)
        {
            Ok(()) => Ok(false),
            Err(Error::ReauthenticationRequired { .. }) => Ok(true),
            Err(e) => Err(e),
        }
    }

    fn become_admin(&self, mut session: Session, token: &str) -> Reply {
        match self.needs_password(&session) {
            // Nothing is changed; the prompt's own POST makes the change.
            Ok(true) => return Reply::see_other("/admin/confirm"),
            Ok(false) => {}
            Err(e) => return self.failure(&e),
        }
        match self.make_admin(&mut session, token) {
            Ok(issued) => Reply::see_other("/").with_cookie(self.set_cookie(&issued)),
            Err(e) => self.failure(&e),
        }
    }

    /// The privilege change itself. It gets a fresh ID (S3), and the old
    /// one is refused at once: whoever copied the old cookie does not
    /// inherit admin rights, not even within the rotation grace window.
    fn make_admin(&self, session: &mut Session, token: &str) -> Result<Issued, Error> {
        let issued = self.with_retries(session, token, |s| {
            s.insert("role", "admin")?;
            flash(s, "You are now an admin.");
            self.backend.manager.change_privilege(s)
        })?;
        println!("privilege change: session now {}", issued.fingerprint());
        Ok(issued)
    }

    /// The password prompt before "Become admin".
    fn confirm_page(&self, session: Session, token: &str, wrong: bool) -> Reply {
        if is_admin(&session) {
            return Reply::see_other("/");
        }
        let now = self.clock.now();
        self.render(session, token, |s| {
            let why = if remembered(s) {
                "This session was restored from a remember-me token, which does not prove \
                 who is at the keyboard."
                    .to_owned()
            } else {
                format!(
                    "You logged in {} (more than {} ago counts as old).",
                    s.authenticated_at()
                        .map_or_else(|| "-".into(), |t| ago(now, t)),
                    span(self.reauth_after)
                )
            };
            let error = if wrong {
                "<p class=\"flash error\" role=alert>Wrong password. Try again.</p>\n"
            } else {
                ""
            };
            let body = format!(
                "{error}<p>Becoming admin needs your password again, <b>{user}</b>. {why}</p>
<form method=post action=/admin/confirm>{csrf}
  <p><label>Password <input name=password type=password required autofocus></label></p>
  <p><button>Confirm and become admin</button> <a href=/>Cancel</a></p>
</form>",
                user = escape(s.user().unwrap_or_default()),
                csrf = csrf_input(&s.csrf_token()),
            );
            let status = if wrong { 401 } else { 200 };
            Reply::html(
                status,
                self.page_with_footer("Confirm your password", &body),
            )
        })
    }

    /// The prompt's POST: the password of the session's own user (the form
    /// names none), then the re-authentication, then the change.
    fn confirm(&self, mut session: Session, token: &str, form: &[(String, String)]) -> Reply {
        if is_admin(&session) {
            return Reply::see_other("/");
        }
        let password = form_value(form, "password").unwrap_or_default();
        if !password_ok(&password) {
            // A real site counts these as failed logins and slows them down.
            eprintln!(
                "re-authentication: wrong password for session {}",
                session.fingerprint()
            );
            return self.confirm_page(session, token, true);
        }
        let manager = &self.backend.manager;
        // It records the proof just checked, under a new ID.
        let fresh = match self.with_retries(&mut session, token, |s| manager.reauthenticate(s)) {
            Ok(issued) => issued,
            Err(e) => return self.failure(&e),
        };
        println!("re-authenticated: session now {}", fresh.fingerprint());
        // From here on the request's token is the fresh one.
        match self.make_admin(&mut session, fresh.token()) {
            Ok(issued) => Reply::see_other("/").with_cookie(self.set_cookie(&issued)),
            Err(e) => self
                .failure(&e)
                .after(self.set_cookie(&fresh).into_iter().collect()),
        }
    }

    /// Ends the session and forgets this browser's remember-me token;
    /// clears both cookies.
    fn logout(&self, req: &Request, session: Option<&Session>) -> Reply {
        let remember = self.presented_remember_token(req);
        if session.is_none() && remember.is_none() {
            return Reply::text(401, "log in first\n");
        }
        if let Some(token) = &remember {
            match self.backend.remember.forget(token) {
                Ok(_) => {}
                Err(e) if e.is_backend_failure() => return self.failure(&e),
                // Not a token of ours: nothing to forget.
                Err(_) => {}
            }
        }
        if let Some(s) = session {
            if let Err(e) = self.backend.manager.terminate(s) {
                return self.failure(&e);
            }
            println!("logout: session {}", s.fingerprint());
        }
        let clear_remember = remember.map(|_| self.backend.remember.cookie().clear_cookie());
        Reply::see_other("/")
            .with_cookie(Some(self.cookies.clear_cookie()))
            .with_cookie(clear_remember)
    }

    /// "Log out everywhere else": the user's other sessions end, and so
    /// does every remember-me token of the user.
    fn end_others(&self, req: &Request, mut session: Session, token: &str) -> Reply {
        let (Some(server), Some(user)) = (&self.backend.server_side, session.user()) else {
            return Reply::text(404, "not available in this mode\n");
        };
        let user = user.to_owned();
        let ended = match server.terminate_all(&user, Some(&session)) {
            Ok(n) => n.unwrap_or(0),
            Err(e) => return self.failure(&e),
        };
        println!("{user:?} ended {ended} other session(s)");
        // This browser's token goes too: a token issued now in its place
        // would claim a password login that did not happen now.
        if let Err(e) = self.backend.remember.forget_all(&user) {
            return self.failure(&e);
        }
        let had_remember = self.presented_remember_token(req).is_some();
        // The ended sessions cannot be told (their data is gone); the page
        // of this one can. They hear it from their rejection (`login_page`).
        let message = match ended {
            0 => "There were no other sessions to end.".to_owned(),
            1 => "Ended 1 other session.".to_owned(),
            n => format!("Ended {n} other sessions."),
        };
        let saved = self.with_retries(&mut session, token, |s| {
            flash(s, &message);
            if had_remember {
                flash(
                    s,
                    "“Keep me signed in” is now off on every device, this one included.",
                );
            }
            self.backend.manager.save(s)
        });
        match saved {
            Ok(issued) => Reply::see_other("/sessions")
                .with_cookie(issued.and_then(|i| self.set_cookie(&i)))
                .with_cookie(had_remember.then(|| self.backend.remember.cookie().clear_cookie())),
            Err(e) => self.failure(&e),
        }
    }

    fn end_one(&self, form: &[(String, String)], session: &Session) -> Reply {
        let (Some(server), Some(user)) = (&self.backend.server_side, session.user()) else {
            return Reply::text(404, "not available in this mode\n");
        };
        let Some(fp) = form_value(form, "fingerprint").and_then(|f| Fingerprint::from_hex(&f))
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
    /// change, [`CONFLICT_ATTEMPTS`] times in all. `session` is left as the
    /// change left it.
    ///
    /// A reload can be refused: a double-clicked "Become admin" finds its
    /// token retired by the click that won ([`Error::Superseded`]), which
    /// [`App::failure`] answers by showing the page under the new cookie.
    fn with_retries<T>(
        &self,
        session: &mut Session,
        token: &str,
        mut change: impl FnMut(&mut Session) -> Result<T, Error>,
    ) -> Result<T, Error> {
        for _ in 1..CONFLICT_ATTEMPTS {
            match change(session) {
                Err(Error::Conflict) => *session = self.backend.manager.load(token)?.session,
                done => return done,
            }
        }
        change(session)
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

    fn login_page(&self, refusal: Refusal) -> Reply {
        let notice = match refusal.reason {
            "" => String::new(),
            "cookie_header_too_large" => format!(
                "<p class=notice>Your browser sent more than {} KiB of cookies for this \
                 site, so none of them were read. Clear some to stay logged in.</p>",
                self.cookies.max_header_bytes() / 1024
            ),
            // Nothing can be stored in a session that has ended: this is
            // told from the reason it was refused, not by a flash message.
            r if refusal.ended_elsewhere => format!(
                "<p class=notice>Your session ended (<code>{}</code>): it was ended from \
                 another device, with “log out everywhere else”. Please log in again.</p>",
                escape(r)
            ),
            r @ "remember_theft" => format!(
                "<p class=notice>Your session ended (<code>{}</code>): your “keep me signed \
                 in” cookie was used twice, as only a stolen copy would be, so every session \
                 of yours was ended. Please log in again.</p>",
                escape(r)
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
  <p><label><input name=remember type=checkbox value=yes> Keep me signed in</label></p>
  <p><button>Log in</button></p>
</form>
<p class=hint>Any user name works; the password is <code>{DEMO_PASSWORD}</code>.
Log in as the same user from a second browser (or a private window) to see
two sessions under “your sessions”.</p>"
        );
        Reply::html(200, self.page_with_footer("Log in", &body))
    }

    fn session_page(&self, session: Session, token: &str) -> Reply {
        let now = self.clock.now();
        self.render(session, token, |s| {
            let flashes = flashes_html(&s.take_flashes());
            let csrf = s.csrf_token();
            let role = s
                .get::<String>("role")
                .ok()
                .flatten()
                .unwrap_or_else(|| "user".into());
            let admin_button = if role == "admin" {
                "<p>You are an admin. (Becoming admin rotated the session: the fingerprint changed.)</p>".to_owned()
            } else {
                let when = if self.reauth_after.is_zero() {
                    "first".to_owned()
                } else {
                    format!("again if you logged in more than {} ago", span(self.reauth_after))
                };
                format!(
                    "<form method=post action=/admin>{}<button>Become admin</button> \
                     (a privilege change: the session gets a new ID; asks for your password \
                     {when})</form>",
                    csrf_input(&csrf),
                )
            };
            let sessions_link = if self.backend.server_side.is_some() {
                "<a href=/sessions>Your sessions</a>"
            } else {
                "(stateless tickets: no session list)"
            };
            let signed_in_by = if remembered(s) {
                "restored from a remember-me token (“keep me signed in”)"
            } else {
                "password"
            };
            let body = format!(
                "{flashes}<table>
<tr><th>user</th><td>{user}</td></tr>
<tr><th>role</th><td>{role}</td></tr>
<tr><th>session fingerprint</th><td><code>{fp}</code></td></tr>
<tr><th>created</th><td>{created}</td></tr>
<tr><th>signed in by</th><td>{signed_in_by}</td></tr>
<tr><th>logged in</th><td>{auth}</td></tr>
<tr><th>idle deadline</th><td>{idle} ({idle_in})</td></tr>
<tr><th>absolute deadline</th><td>{abs} ({abs_in})</td></tr>
<tr><th>device</th><td>{device}</td></tr>
</table>
{admin_button}
<p>{sessions_link}</p>
<form method=post action=/logout>{csrf_field}<button>Log out</button></form>",
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
                csrf_field = csrf_input(&s.csrf_token()),
            );
            Reply::html(200, self.page_with_footer("Your session", &body))
        })
    }

    fn sessions_page(&self, session: Session, token: &str) -> Reply {
        let Some(server) = &self.backend.server_side else {
            return Reply::text(404, "not available in this mode\n");
        };
        let now = self.clock.now();
        self.render(session, token, |s| {
            let Some(user) = s.user().map(str::to_owned) else {
                return Reply::text(404, "not available in this mode\n");
            };
            let list = match server.sessions_of(&user) {
                Ok(l) => l,
                Err(e) => return self.failure(&e),
            };
            let flashes = flashes_html(&s.take_flashes());
            let mut rows = String::new();
            // Two sessions of one browser share a device label: the
            // fingerprint and the times tell them apart, and the current one
            // says so.
            for info in &list {
                let this = info.fingerprint == s.fingerprint();
                let (marker, action) = if this {
                    (" <span class=this>(this browser)</span>", String::new())
                } else {
                    (
                        "",
                        format!(
                            "<form method=post action=/sessions/end>{csrf}<input type=hidden name=fingerprint value={fp}><button>Log out</button></form>",
                            csrf = csrf_input(&s.csrf_token()),
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
                "{flashes}<p>{n} live session(s) for <b>{user}</b>.</p>
<table class=sessions>
<tr><th>device</th><th>session fingerprint</th><th>started</th><th>last seen</th><th></th></tr>
{rows}</table>
<form method=post action=/sessions/others>{csrf}<button>Log out everywhere else</button></form>
<p><a href=/>Back</a></p>",
                n = list.len(),
                user = escape(&user),
                csrf = csrf_input(&s.csrf_token()),
            );
            Reply::html(200, self.page_with_footer("Your sessions", &body))
        })
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
            "user={}\nrole={role}\nfingerprint={}\nremembered={}\n",
            s.user().unwrap_or(""),
            s.fingerprint(),
            if remembered(s) { "yes" } else { "no" },
        ),
    )
}

/// The hidden field that carries a CSRF token (86 characters of
/// base64url: nothing in it needs escaping).
fn csrf_input(token: &str) -> String {
    format!("<input type=hidden name={CSRF_FIELD} value=\"{token}\">")
}

/// Flash messages, once each: the caller took them from the session.
fn flashes_html(flashes: &[Flash]) -> String {
    flashes
        .iter()
        .map(|f| {
            format!(
                "<p class=\"flash {}\" role=status>{}</p>\n",
                escape(f.kind()),
                escape(f.message())
            )
        })
        .collect()
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
.hint{{color:#555}} .warn{{color:#a40}} .notice{{background:#fec;padding:.5em}}
.flash{{background:#e3f4e6;padding:.5em}} .flash.error{{background:#fde3e3}}</style></head>
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
        reauth_after: opts.reauth_after,
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
        let cookies = CookieConfig::danger_insecure_http();
        App {
            backend: store_backend(
                Arc::new(MemoryStore::new()),
                Policy::default(),
                "memory".into(),
                &cookies,
            )
            .unwrap(),
            cookies,
            clock: SystemClock,
            reauth_after: REAUTH_AFTER,
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
        let mut stale = manager.load(issued.token()).unwrap().session;
        // Someone else saves first: `stale` is now an old version.
        let mut other = manager.load(issued.token()).unwrap().session;
        other.insert("theme", "dark").unwrap();
        manager.save(&mut other).unwrap();

        let mut attempts = 0;
        let admin = app
            .with_retries(&mut stale, issued.token(), |s| {
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
    fn a_redis_cluster_store_takes_comma_separated_node_urls() {
        let cases: [(&str, &[&str]); 4] = [
            ("redis-cluster:redis://a:7000/", &["redis://a:7000/"]),
            (
                "redis-cluster:redis://a:7000/,redis://b:7001/",
                &["redis://a:7000/", "redis://b:7001/"],
            ),
            // Spaces and stray commas are forgiven.
            (
                "redis-cluster: redis://a:7000/ , redis://b:7001/,",
                &["redis://a:7000/", "redis://b:7001/"],
            ),
            (
                "redis-cluster:rediss://:pw@a:7000/",
                &["rediss://:pw@a:7000/"],
            ),
        ];
        for (arg, nodes) in cases {
            match parse_store(arg) {
                Ok(StoreChoice::RedisCluster(n)) => assert_eq!(n, nodes, "{arg}"),
                other => panic!("{arg}: {other:?}"),
            }
        }
        for empty in ["redis-cluster:", "redis-cluster: ", "redis-cluster:,,"] {
            let e = parse_store(empty).unwrap_err();
            assert!(e.contains("redis-cluster:redis://"), "{empty}: {e}");
        }
        // Not the single-node store, whichever is matched first.
        assert!(matches!(
            parse_store("redis:redis://a:6379/"),
            Ok(StoreChoice::Redis(_))
        ));
        let opts = parse_args(
            ["--store", "redis-cluster:redis://a:7000/,redis://b:7001/"]
                .into_iter()
                .map(String::from),
        )
        .unwrap();
        assert!(matches!(opts.store, StoreChoice::RedisCluster(n) if n.len() == 2));
    }

    #[test]
    fn a_postgres_store_takes_a_url_or_key_value_pairs() {
        for (arg, params) in [
            ("postgres:host=/run/pg user=app", "host=/run/pg user=app"),
            (
                "postgres:postgresql://app@db/app",
                "postgresql://app@db/app",
            ),
            ("postgresql://app@db/app", "postgresql://app@db/app"),
            ("postgres://app@db/app", "postgres://app@db/app"),
        ] {
            match parse_store(arg) {
                Ok(StoreChoice::Postgres(p)) => assert_eq!(p, params, "{arg}"),
                other => panic!("{arg}: {other:?}"),
            }
        }
        assert!(parse_store("postgres:").is_err());
        assert!(parse_store("postgres: ").is_err());
    }

    #[test]
    fn retries_are_bounded() {
        let app = app();
        let issued = app.backend.manager.create(NewSession::new()).unwrap();
        let mut session = app.backend.manager.load(issued.token()).unwrap().session;
        let mut attempts = 0;
        let result = app.with_retries(&mut session, issued.token(), |_| -> Result<(), _> {
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
