//! The login demo (the `login_server` binary of this package) driven over
//! loopback HTTP.
//!
//! Each test starts the binary on `--port 0`, reads the address it prints,
//! and talks to it with the small client in `http.rs`. A [`Demo`] guard
//! kills the process when the test ends, pass or fail.
//!
//! Finding the binary: cargo builds a package's binaries before its
//! integration tests and names the path in `CARGO_BIN_EXE_<name>`, so
//! `cargo test -p latchkey-demo` (or `--workspace`) always runs the demo as
//! built from the current source.

mod features;
mod http;
#[cfg(all(unix, feature = "postgres"))]
mod postgres;
#[cfg(feature = "redis-cluster")]
mod redis_cluster;

use std::io::{BufRead as _, BufReader, Read as _};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use http::{HttpResponse, request};

fn demo_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_login_server"))
}

/// A running demo server; killed on drop.
struct Demo {
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<String>>,
}

impl Demo {
    fn start(args: &[&str]) -> Demo {
        Demo::start_with_env(args, &[])
    }

    fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Demo {
        Demo::spawn(args, env, None)
    }

    /// Starts the demo in `cwd` (default: the test's own directory).
    fn spawn(args: &[&str], env: &[(&str, &str)], cwd: Option<&std::path::Path>) -> Demo {
        let mut command = Command::new(demo_binary());
        if let Some(dir) = cwd {
            command.current_dir(dir);
        }
        let mut child = command
            .args(["--port", "0"])
            .args(args)
            .env_remove("LATCHKEY_DEMO_TICKET_KEY")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the demo starts");
        let log = Arc::new(Mutex::new(String::new()));
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut first = String::new();
        stdout
            .read_line(&mut first)
            .expect("the demo prints a line");
        // Keep draining both pipes so a chatty server never blocks on a
        // full pipe; keep the text for failure messages.
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                sink.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
        // Line by line, so a test can read what the server logged while it
        // runs.
        let stderr = BufReader::new(child.stderr.take().expect("piped stderr"));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                sink.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
        let Some(addr) = first
            .trim()
            .strip_prefix("listening on http://")
            .and_then(|a| a.parse().ok())
        else {
            let _ = child.kill();
            let _ = child.wait();
            std::thread::sleep(Duration::from_millis(100));
            panic!("the demo did not start: {first:?}\n{}", log.lock().unwrap());
        };
        Demo { child, addr, log }
    }

    fn get(&self, path: &str, cookie: Option<&str>) -> HttpResponse {
        let headers: Vec<(&str, &str)> = cookie.map(|c| ("Cookie", c)).into_iter().collect();
        request(self.addr, "GET", path, &headers, None).expect("GET answered")
    }

    fn post(&self, path: &str, cookie: Option<&str>, body: &str) -> HttpResponse {
        let headers: Vec<(&str, &str)> = cookie.map(|c| ("Cookie", c)).into_iter().collect();
        request(self.addr, "POST", path, &headers, Some(body)).expect("POST answered")
    }

    /// The lines the server has printed so far that contain `needle`.
    fn log_lines(&self, needle: &str) -> Vec<String> {
        let log = self.log.lock().unwrap();
        log.lines()
            .filter(|l| l.contains(needle))
            .map(str::to_owned)
            .collect()
    }

    /// Logs `user` in; returns the `name=value` cookie pair.
    fn login(&self, user: &str) -> String {
        let r = self.post(
            "/login",
            None,
            &format!("username={user}&password=latchkey"),
        );
        assert_eq!(r.status, 303, "login: {r:?}");
        r.cookie_pair()
    }

    /// A CSRF token from the session page, as a browser finds it in the
    /// page's forms. `cookies` (a `Cookie` header) takes any cookie the
    /// page sets: with tickets, the save that keeps the new CSRF secret
    /// issues a new ticket.
    fn csrf(&self, cookies: &mut String) -> String {
        let page = self.get("/", Some(cookies));
        assert_eq!(page.status, 200, "the session page: {page:?}");
        assert!(page.body.contains("session fingerprint"), "{}", page.body);
        *cookies = with_set_cookies(cookies, &page);
        csrf_in(&page.body)
    }

    /// Posts a form of the session as a browser would: with the CSRF token
    /// of a page it just loaded, then `fields`.
    fn submit(&self, path: &str, cookies: &mut String, fields: &str) -> HttpResponse {
        let token = self.csrf(cookies);
        let body = match fields {
            "" => format!("csrf_token={token}"),
            _ => format!("csrf_token={token}&{fields}"),
        };
        self.post(path, Some(cookies), &body)
    }
}

/// The CSRF token in the first form of `page`.
/// The walk every shared store's two-instance test takes (`postgres.rs`,
/// `redis_cluster.rs`): a login on one instance is a session on the other,
/// a privilege change and its CSRF token cross over, both list the user's
/// sessions, a logout on one ends the session for the other while the
/// user's other session lives on, and a restarted instance still knows it.
/// Returns the restarted instance, the other one, and that other session's
/// cookie, for the store's own checks.
#[cfg(any(all(unix, feature = "postgres"), feature = "redis-cluster"))]
fn two_instances_share_sessions(store: &str) -> (Demo, Demo, String) {
    let a = Demo::start(&["--store", store]);
    let b = Demo::start(&["--store", store]);
    // A login on A is a session on B.
    let mut cookie = a.login("alice");
    let on_b = b.get("/me", Some(&cookie));
    assert_eq!(on_b.status, 200, "{}", on_b.body);
    assert_eq!(on_b.field("user"), Some("alice"));

    // A privilege change on B is seen on A, under the new cookie; the CSRF
    // token of a page A rendered is good on B.
    let token = a.csrf(&mut cookie);
    let mut admin = b
        .post("/admin", Some(&cookie), &format!("csrf_token={token}"))
        .cookie_pair();
    assert_eq!(a.get("/me", Some(&admin)).field("role"), Some("admin"));

    // Both instances list the user's sessions from the one store.
    let other = b.login("alice");
    for demo in [&a, &b] {
        let page = demo.get("/sessions", Some(&admin));
        assert_eq!(page.status, 200, "{}", page.body);
    }

    // Logout on B ends it for A too; the other session lives on.
    assert_eq!(b.submit("/logout", &mut admin, "").status, 303);
    let on_a = a.get("/me", Some(&admin));
    assert_eq!(on_a.status, 401);
    assert_eq!(on_a.field("rejected"), Some("terminated"));
    assert_eq!(a.get("/me", Some(&other)).field("user"), Some("alice"));

    // A restarted instance still knows every live session.
    drop(a);
    let a = Demo::start(&["--store", store]);
    assert_eq!(a.get("/me", Some(&other)).field("user"), Some("alice"));
    (a, b, other)
}

fn csrf_in(page: &str) -> String {
    let marker = "name=csrf_token value=\"";
    let start = page
        .find(marker)
        .unwrap_or_else(|| panic!("no CSRF token in {page}"))
        + marker.len();
    let token: String = page[start..].chars().take_while(|&c| c != '"').collect();
    assert_eq!(token.len(), 86, "{token:?}");
    token
}

/// `cookies` (a `Cookie` header) after the browser applied `r`'s
/// `Set-Cookie` headers: set ones replace, cleared ones go.
fn with_set_cookies(cookies: &str, r: &HttpResponse) -> String {
    let mut jar: Vec<(String, String)> = cookies
        .split("; ")
        .filter_map(|c| c.split_once('='))
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect();
    for set in r.set_cookies() {
        let pair = set.split(';').next().unwrap_or_default();
        let Some((name, value)) = pair.split_once('=') else {
            continue;
        };
        jar.retain(|(n, _)| n != name);
        if !set.contains("Max-Age=0") {
            jar.push((name.to_owned(), value.to_owned()));
        }
    }
    jar.iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect::<Vec<_>>()
        .join("; ")
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- demo output ---\n{}", self.log.lock().unwrap());
        }
    }
}

/// A fresh directory for one test's file store; removed on drop. The file
/// store is Unix-only (elsewhere the demo falls back to memory), and so are
/// the tests that use one.
#[cfg(unix)]
struct TempDir(PathBuf);

#[cfg(unix)]
impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "latchkey-demo-{tag}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        TempDir(dir)
    }

    fn store_arg(&self) -> String {
        format!("file:{}", self.0.display())
    }
}

#[cfg(unix)]
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn login_sets_a_hardened_cookie_and_the_session_page_is_not_cached() {
    let demo = Demo::start(&["--store", "memory"]);
    let r = demo.post("/login", None, "username=alice&password=latchkey");
    assert_eq!(r.status, 303);
    assert_eq!(r.header("Location"), Some("/"));
    let cookies = r.set_cookies();
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    let attrs: Vec<&str> = cookies[0].split("; ").collect();
    let (name, value) = attrs[0].split_once('=').unwrap();
    // Plain-http demo: the named-risky dev cookie, without the prefix.
    assert_eq!(name, "latchkey-session");
    assert_eq!(value.len(), 43, "a 256-bit token in base64url");
    assert_eq!(&attrs[1..], ["Path=/", "HttpOnly", "SameSite=Lax"]);
    assert!(!cookies[0].contains("Domain"));
    assert!(!cookies[0].contains("Max-Age"), "a browser-session cookie");

    let cookie = r.cookie_pair();
    let page = demo.get("/", Some(&cookie));
    assert_eq!(page.status, 200);
    assert_eq!(page.header("Cache-Control"), Some("no-store"));
    assert!(page.body.contains("alice"));
    let me = demo.get("/me", Some(&cookie));
    assert_eq!(me.field("user"), Some("alice"));
    assert_eq!(me.field("role"), Some("user"));
}

#[test]
fn secure_cookie_mode_sends_the_production_cookie() {
    let demo = Demo::start(&["--store", "memory", "--secure-cookie"]);
    let r = demo.post("/login", None, "username=alice&password=latchkey");
    let cookies = r.set_cookies();
    assert_eq!(cookies.len(), 1);
    assert!(cookies[0].starts_with("__Host-session="), "{}", cookies[0]);
    assert!(
        cookies[0].ends_with("; Path=/; Secure; HttpOnly; SameSite=Lax"),
        "{}",
        cookies[0]
    );
    // The browser would only send it over https; a client that does gets in.
    assert_eq!(demo.get("/me", Some(&r.cookie_pair())).status, 200);
}

#[test]
fn wrong_password_issues_no_cookie() {
    let demo = Demo::start(&["--store", "memory"]);
    let r = demo.post("/login", None, "username=alice&password=guess");
    assert_eq!(r.status, 401);
    assert!(r.set_cookies().is_empty());
}

#[test]
fn privilege_change_rotates_and_refuses_the_old_cookie_even_in_flight() {
    // Default 30 s grace: a routine rotation's old cookie would still
    // resolve; a privilege change's never reaches the new privileges.
    let demo = Demo::start(&["--store", "memory"]);
    let mut old = demo.login("alice");
    let old_fp = demo
        .get("/me", Some(&old))
        .field("fingerprint")
        .map(str::to_owned);
    let r = demo.submit("/admin", &mut old, "");
    assert_eq!(r.status, 303);
    let new = r.cookie_pair();
    assert_ne!(new, old, "a privilege change issues a new token");
    let me = demo.get("/me", Some(&new));
    assert_eq!(me.field("role"), Some("admin"));
    assert_ne!(me.field("fingerprint").map(str::to_owned), old_fp);

    let late = demo.get("/me", Some(&old));
    assert_eq!(late.status, 401, "within the grace window: {}", late.body);
    assert_eq!(late.field("rejected"), Some("superseded"));
    assert_ne!(late.field("role"), Some("admin"));
    assert!(
        late.set_cookies().is_empty(),
        "an in-flight request must not clear the cookie the change just set"
    );
    assert_eq!(demo.get("/me", Some(&new)).field("role"), Some("admin"));
}

#[test]
fn old_cookie_is_refused_after_the_grace_window_and_its_successor_revoked() {
    let demo = Demo::start(&["--store", "memory", "--rotation-grace-ms", "200"]);
    let mut old = demo.login("alice");
    let new = demo.submit("/admin", &mut old, "").cookie_pair();
    assert_eq!(demo.get("/me", Some(&new)).status, 200);
    // Past the window: no assertion on speed, only that it has passed.
    std::thread::sleep(Duration::from_millis(600));
    let reused = demo.get("/me", Some(&old));
    assert_eq!(reused.status, 401);
    assert_eq!(reused.field("rejected"), Some("rotated_token_reused"));
    assert_eq!(
        reused.set_cookies(),
        ["latchkey-session=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax"],
        "a refused cookie is cleared"
    );
    // Reuse means a copy is loose: the successor is revoked as well.
    let successor = demo.get("/me", Some(&new));
    assert_eq!(successor.status, 401);
    assert_eq!(successor.field("rejected"), Some("terminated"));
}

#[test]
fn logout_clears_the_cookie_and_the_token_is_refused_afterwards() {
    let demo = Demo::start(&["--store", "memory"]);
    let mut cookie = demo.login("alice");
    let r = demo.submit("/logout", &mut cookie, "");
    assert_eq!(r.status, 303);
    assert_eq!(
        r.set_cookies(),
        ["latchkey-session=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax"]
    );
    let after = demo.get("/me", Some(&cookie));
    assert_eq!(after.status, 401);
    assert_eq!(after.field("rejected"), Some("terminated"));
    let page = demo.get("/", Some(&cookie));
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Your session ended"));
}

#[test]
fn log_out_everywhere_else_ends_only_the_users_other_sessions() {
    let demo = Demo::start(&["--store", "memory"]);
    let mut laptop = demo.login("alice");
    let phone = demo.login("alice");
    let bob = demo.login("bob");
    let list = demo.get("/sessions", Some(&laptop));
    assert_eq!(list.status, 200);
    assert!(list.body.contains("2 live session(s)"), "{}", list.body);

    let r = demo.submit("/sessions/others", &mut laptop, "");
    assert_eq!(r.status, 303);
    assert_eq!(demo.get("/me", Some(&laptop)).status, 200);
    assert_eq!(
        demo.get("/me", Some(&phone)).field("rejected"),
        Some("terminated")
    );
    assert_eq!(
        demo.get("/me", Some(&bob)).status,
        200,
        "other users untouched"
    );
    assert!(
        demo.get("/sessions", Some(&laptop))
            .body
            .contains("1 live session(s)")
    );
}

#[test]
fn ending_one_session_by_fingerprint_cannot_reach_another_user() {
    let demo = Demo::start(&["--store", "memory"]);
    let mut alice = demo.login("alice");
    let alice2 = demo.login("alice");
    let bob = demo.login("bob");
    let bob_fp = demo
        .get("/me", Some(&bob))
        .field("fingerprint")
        .unwrap()
        .to_owned();
    let a2_fp = demo
        .get("/me", Some(&alice2))
        .field("fingerprint")
        .unwrap()
        .to_owned();

    let r = demo.submit(
        "/sessions/end",
        &mut alice,
        &format!("fingerprint={bob_fp}"),
    );
    assert_eq!(r.status, 303);
    assert_eq!(demo.get("/me", Some(&bob)).status, 200);
    let r = demo.submit("/sessions/end", &mut alice, &format!("fingerprint={a2_fp}"));
    assert_eq!(r.status, 303);
    assert_eq!(demo.get("/me", Some(&alice2)).status, 401);
    assert_eq!(demo.get("/me", Some(&alice)).status, 200);
}

#[test]
fn cross_site_posts_are_refused() {
    let demo = Demo::start(&["--store", "memory"]);
    let cookie = demo.login("alice");
    let r = request(
        demo.addr,
        "POST",
        "/logout",
        &[("Cookie", &cookie), ("Origin", "https://evil.example")],
        Some(""),
    )
    .unwrap();
    assert_eq!(r.status, 403);
    assert_eq!(
        demo.get("/me", Some(&cookie)).status,
        200,
        "still logged in"
    );
}

/// What Chromium sends for the demo's own forms under `Referrer-Policy:
/// no-referrer`: `Origin: null` with `Sec-Fetch-Site: same-origin`.
#[test]
fn the_browsers_own_same_origin_form_posts_are_accepted() {
    let demo = Demo::start(&["--store", "memory"]);
    let headers = |site: &'static str| vec![("Origin", "null"), ("Sec-Fetch-Site", site)];
    let body = Some("username=alice&password=latchkey");
    let ours = request(demo.addr, "POST", "/login", &headers("same-origin"), body).unwrap();
    assert_eq!(ours.status, 303, "{}", ours.body);
    let theirs = request(demo.addr, "POST", "/login", &headers("cross-site"), body).unwrap();
    assert_eq!(theirs.status, 403);
    // Without the browser's word, `null` cannot be told from a sandboxed page.
    let unknown = request(demo.addr, "POST", "/login", &[("Origin", "null")], body).unwrap();
    assert_eq!(unknown.status, 403);
}

#[test]
fn hostile_cookie_headers_get_clear_answers() {
    let demo = Demo::start(&["--store", "memory"]);
    let cookie = demo.login("alice");
    // Two different session cookies (cookie tossing): neither is trusted.
    let tossed = format!("latchkey-session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA; {cookie}");
    let r = demo.get("/me", Some(&tossed));
    assert_eq!(r.status, 401);
    assert_eq!(r.field("rejected"), Some("bad_cookie"));
    // The same cookie twice is fine.
    assert_eq!(
        demo.get("/me", Some(&format!("{cookie}; {cookie}"))).status,
        200
    );
    // Not a token: refused before the store is asked.
    let r = demo.get("/me", Some("latchkey-session=nope"));
    assert_eq!(r.field("rejected"), Some("malformed"));
    // Nor is a value longer than any cookie holds: no session, cleared.
    let long = format!("latchkey-session={}", "A".repeat(5000));
    let r = demo.get("/me", Some(&long));
    assert_eq!(r.field("rejected"), Some("malformed"));
    let page = demo.get("/", Some(&long));
    assert_eq!(page.status, 200);
    assert_eq!(
        page.set_cookies(),
        ["latchkey-session=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax"]
    );
    assert_eq!(
        demo.get("/me", Some(&cookie)).status,
        200,
        "server still up"
    );
}

/// At least `n` bytes of other applications' cookies on the same host.
fn foreign_cookies(n: usize) -> String {
    let mut out = String::new();
    let mut i = 0;
    while out.len() < n {
        if !out.is_empty() {
            out.push_str("; ");
        }
        out.push_str(&format!("other_app_{i}={}", "v".repeat(100)));
        i += 1;
    }
    out
}

#[test]
fn other_apps_cookies_never_turn_a_page_into_an_error() {
    let demo = Demo::start(&["--store", "memory"]);
    let foreign = foreign_cookies(10 * 1024);
    // A visitor with no session of ours: the page, logged out.
    let page = demo.get("/", Some(&foreign));
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("action=/login"), "the login form");
    assert!(!page.body.contains("Your session ended"));
    assert!(page.set_cookies().is_empty(), "nothing of ours to clear");
    let me = demo.get("/me", Some(&foreign));
    assert_eq!(me.status, 401);
    assert_eq!(me.field("rejected"), Some(""), "simply anonymous");
    // A logged-in user keeps the session among them, wherever ours is.
    let cookie = demo.login("alice");
    for header in [
        format!("{cookie}; {foreign}"),
        format!("{foreign}; {cookie}"),
        format!("{foreign}; {cookie}; {foreign}"),
    ] {
        let me = demo.get("/me", Some(&header));
        assert_eq!(me.status, 200, "{}", me.body);
        assert_eq!(me.field("user"), Some("alice"));
        let page = demo.get("/", Some(&header));
        assert_eq!(page.status, 200);
        assert!(page.body.contains("alice"));
        assert!(page.set_cookies().is_empty(), "the cookie is left alone");
    }
}

#[test]
fn a_cookie_header_past_the_scan_limit_is_served_logged_out_and_keeps_the_cookie() {
    let demo = Demo::start(&["--store", "memory"]);
    let cookie = demo.login("alice");
    // Over the 64 KiB scanned: nothing in it is read, ours included.
    let crowded = format!("{cookie}; {}", foreign_cookies(64 * 1024));
    let page = demo.get("/", Some(&crowded));
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("action=/login"));
    assert!(page.body.contains("more than 64 KiB of cookies"));
    assert!(
        page.set_cookies().is_empty(),
        "the cookie was not even read"
    );
    let me = demo.get("/me", Some(&crowded));
    assert_eq!(me.status, 401);
    assert_eq!(me.field("rejected"), Some("cookie_header_too_large"));
    // Once the other cookies are gone, the session is there again.
    assert_eq!(demo.get("/me", Some(&cookie)).field("user"), Some("alice"));
}

#[test]
fn tickets_mode_keeps_a_ticket_session_among_other_apps_cookies() {
    let demo = Demo::start(&["--store", "memory", "--tickets"]);
    let cookie = demo.login("alice");
    let header = format!("{}; {cookie}", foreign_cookies(10 * 1024));
    let me = demo.get("/me", Some(&header));
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.field("user"), Some("alice"));
}

#[test]
fn form_fields_are_decoded_and_user_names_escaped_in_pages() {
    let demo = Demo::start(&["--store", "memory"]);
    let r = demo.post(
        "/login",
        None,
        "username=%3Cscript%3Ealert(1)%3C%2Fscript%3E+x&password=latchkey",
    );
    let cookie = r.cookie_pair();
    assert_eq!(
        demo.get("/me", Some(&cookie)).field("user"),
        Some("<script>alert(1)</script> x")
    );
    let page = demo.get("/", Some(&cookie)).body;
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt; x"));
    assert!(!page.contains("<script>"));
}

#[test]
fn tickets_mode_logs_in_rotates_and_logs_out_without_server_side_sessions() {
    let demo = Demo::start(&[
        "--store",
        "memory",
        "--tickets",
        "--rotation-grace-ms",
        "200",
    ]);
    let mut old = demo.login("alice");
    let ticket = old.split_once('=').unwrap().1;
    assert!(ticket.len() > 43, "a signed ticket, not a bare session ID");
    assert_eq!(demo.get("/me", Some(&old)).field("user"), Some("alice"));

    // The page's CSRF secret travels in the ticket: `old` is the ticket
    // that carries it, and the one the privilege change retires.
    let new = demo.submit("/admin", &mut old, "").cookie_pair();
    assert_ne!(new, old);
    assert_eq!(demo.get("/me", Some(&new)).field("role"), Some("admin"));
    std::thread::sleep(Duration::from_millis(600));
    let reused = demo.get("/me", Some(&old));
    assert_eq!(reused.status, 401, "{}", reused.body);
    assert_eq!(reused.field("rejected"), Some("rotated_token_reused"));
    // As with server-side sessions, reuse revokes the successor.
    assert_eq!(
        demo.get("/me", Some(&new)).field("rejected"),
        Some("terminated")
    );

    // No per-session state: no session list. Logout still ends the ticket,
    // through the revocation store.
    let mut new = demo.login("alice");
    assert_eq!(demo.get("/sessions", Some(&new)).status, 404);
    assert_eq!(demo.submit("/logout", &mut new, "").status, 303);
    assert_eq!(
        demo.get("/me", Some(&new)).field("rejected"),
        Some("terminated")
    );
}

/// A private `redis-server` on a free port; killed on drop.
#[cfg(feature = "redis")]
struct RedisServer {
    child: Child,
    port: u16,
}

#[cfg(feature = "redis")]
impl RedisServer {
    fn start() -> RedisServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "redis-server on PATH (the redis feature's tests need it; .ci/run installs it)",
            );
        let server = RedisServer { child, port };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return server;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis-server did not come up on port {port}");
    }

    fn store_arg(&self) -> String {
        format!("redis:redis://127.0.0.1:{}/0", self.port)
    }
}

#[cfg(feature = "redis")]
impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(feature = "redis")]
#[test]
fn two_instances_share_sessions_through_redis() {
    let redis = RedisServer::start();
    let store = redis.store_arg();
    let a = Demo::start(&["--store", &store]);
    let b = Demo::start(&["--store", &store]);
    let mut cookie = a.login("alice");
    assert_eq!(b.get("/me", Some(&cookie)).field("user"), Some("alice"));
    assert_eq!(b.submit("/logout", &mut cookie, "").status, 303);
    assert_eq!(
        a.get("/me", Some(&cookie)).field("rejected"),
        Some("terminated")
    );
}

#[cfg(not(feature = "redis-cluster"))]
#[test]
fn without_its_feature_the_redis_cluster_store_says_how_to_build_it() {
    let (status, stderr) = run_to_exit(&[
        "--port",
        "0",
        "--store",
        "redis-cluster:redis://127.0.0.1:1/",
    ]);
    assert!(!status.success(), "{status}: {stderr}");
    assert!(
        stderr.contains("--features redis-cluster -- --store redis-cluster:"),
        "{stderr}"
    );
}

#[test]
fn tickets_signed_by_one_instance_verify_on_another_with_the_shared_key() {
    // The key travels in the environment, as it would from a secret store.
    let key = "c2hhcmVkLXRpY2tldC1rZXktZm9yLXRoZS1kZW1vLXRlc3Q";
    let a = Demo::start_with_env(
        &["--store", "memory", "--tickets"],
        &[("LATCHKEY_DEMO_TICKET_KEY", key)],
    );
    let b = Demo::start_with_env(
        &["--store", "memory", "--tickets"],
        &[("LATCHKEY_DEMO_TICKET_KEY", key)],
    );
    let cookie = a.login("alice");
    assert_eq!(b.get("/me", Some(&cookie)).field("user"), Some("alice"));
    let other = Demo::start(&["--store", "memory", "--tickets"]);
    assert_eq!(
        other.get("/me", Some(&cookie)).field("rejected"),
        Some("bad_signature"),
        "another key does not verify it"
    );
}

#[cfg(unix)]
#[test]
fn a_restart_keeps_the_session_with_the_file_store() {
    let dir = TempDir::new("restart");
    let store = dir.store_arg();
    let cookie = {
        let before = Demo::start(&["--store", &store]);
        before.login("alice")
        // Dropped here: the process is killed, not asked to shut down.
    };
    let after = Demo::start(&["--store", &store]);
    let me = after.get("/me", Some(&cookie));
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.field("user"), Some("alice"));
}

#[cfg(unix)]
#[test]
fn the_default_store_is_files_under_latchkey_sessions() {
    let dir = TempDir::new("default");
    std::fs::create_dir_all(&dir.0).unwrap();
    let cookie = {
        let first = Demo::spawn(&[], &[], Some(&dir.0));
        first.login("alice")
    };
    assert!(dir.0.join("latchkey-sessions").is_dir());
    let second = Demo::spawn(&[], &[], Some(&dir.0));
    assert_eq!(
        second.get("/me", Some(&cookie)).field("user"),
        Some("alice")
    );
}

#[cfg(unix)]
#[test]
fn two_instances_sharing_a_file_store_need_no_sticky_sessions() {
    // The load-balancer story: requests of one browser land on either
    // instance; both read and write one directory.
    let dir = TempDir::new("lb");
    let store = dir.store_arg();
    let a = Demo::start(&["--store", &store]);
    let b = Demo::start(&["--store", &store]);

    let mut cookie = a.login("alice");
    let on_b = b.get("/me", Some(&cookie));
    assert_eq!(on_b.status, 200, "{}", on_b.body);
    assert_eq!(on_b.field("user"), Some("alice"));

    // A privilege change on B is visible on A, under the new cookie; the
    // CSRF token of a page A rendered is good on B.
    let token = a.csrf(&mut cookie);
    let admin = b
        .post("/admin", Some(&cookie), &format!("csrf_token={token}"))
        .cookie_pair();
    assert_eq!(a.get("/me", Some(&admin)).field("role"), Some("admin"));

    // Logout on B ends it for A too.
    let mut admin = admin;
    assert_eq!(b.submit("/logout", &mut admin, "").status, 303);
    let on_a = a.get("/me", Some(&admin));
    assert_eq!(on_a.status, 401);
    assert_eq!(on_a.field("rejected"), Some("terminated"));
}

#[cfg(unix)]
#[test]
fn log_out_everywhere_else_reaches_sessions_made_by_another_instance() {
    let dir = TempDir::new("lb-all");
    let store = dir.store_arg();
    let a = Demo::start(&["--store", &store]);
    let b = Demo::start(&["--store", &store]);
    let mut laptop = a.login("alice");
    let phone = b.login("alice");
    assert!(
        a.get("/sessions", Some(&laptop))
            .body
            .contains("2 live session(s)")
    );
    assert_eq!(a.submit("/sessions/others", &mut laptop, "").status, 303);
    assert_eq!(
        b.get("/me", Some(&phone)).field("rejected"),
        Some("terminated")
    );
    assert_eq!(b.get("/me", Some(&laptop)).status, 200);
}

/// Runs the demo with `args` (no `--port 0` added) until it exits, at most
/// 30 seconds; its exit status and stderr.
fn run_to_exit(args: &[&str]) -> (ExitStatus, String) {
    let mut child = Command::new(demo_binary())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the demo starts");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("the demo can be waited on") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the demo was expected to exit, and kept running");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("piped stderr")
        .read_to_string(&mut stderr)
        .expect("stderr is readable");
    (status, stderr)
}

#[cfg(not(feature = "postgres"))]
#[test]
fn the_postgres_store_without_its_feature_says_how_to_build_it() {
    let (status, stderr) = run_to_exit(&["--port", "0", "--store", "postgres:host=127.0.0.1"]);
    assert!(!status.success(), "{status}: {stderr}");
    assert!(stderr.contains("--features postgres"), "{stderr}");
}

#[test]
fn a_busy_port_is_named_in_a_sentence_and_the_demo_exits_non_zero() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("a free port");
    let port = taken.local_addr().unwrap().port().to_string();
    let (status, stderr) = run_to_exit(&["--store", "memory", "--port", &port]);
    assert!(!status.success(), "{status}: {stderr}");
    let message = stderr
        .lines()
        .find(|l| l.starts_with("login_server: "))
        .unwrap_or_else(|| panic!("no error line in {stderr:?}"));
    assert!(
        message.contains(&format!("port {port} on 127.0.0.1 is already in use")),
        "{message}"
    );
    assert!(message.contains("--port"), "says what to do: {message}");
    assert!(!stderr.contains("Os {"), "no Debug dump: {stderr}");
    drop(taken);
}

#[cfg(unix)]
#[test]
fn a_double_clicked_privilege_change_on_two_instances_is_never_a_500() {
    // Two instances behind a load balancer, one browser double-clicking
    // "Become admin": both POSTs carry the same cookie and race on the
    // same session. The loser must not see a server error.
    let dir = TempDir::new("double-click");
    let store = dir.store_arg();
    let a = Demo::start(&["--store", &store]);
    let b = Demo::start(&["--store", &store]);
    for round in 0..20 {
        let mut cookie = a.login("alice");
        // Both clicks come from one page, with one token.
        let form = format!("csrf_token={}", a.csrf(&mut cookie));
        let both_clicked = Barrier::new(2);
        let answers = std::thread::scope(|scope| {
            let clicks = [&a, &b].map(|demo| {
                let (cookie, form, both_clicked) = (&cookie, &form, &both_clicked);
                scope.spawn(move || {
                    both_clicked.wait();
                    demo.post("/admin", Some(cookie), form)
                })
            });
            clicks.map(|c| c.join().expect("the click thread"))
        });
        for r in &answers {
            assert!(
                matches!(r.status, 303 | 409),
                "round {round}: a 303 to the page or a 409 that says to retry, got {}: {}",
                r.status,
                r.body
            );
        }
        // Exactly one click made the change, and its cookie is the admin's;
        // the other one sends the browser to the page (or asks for a retry)
        // without touching the cookie.
        let changed: Vec<_> = answers
            .iter()
            .filter(|r| !r.set_cookies().is_empty())
            .collect();
        assert_eq!(changed.len(), 1, "round {round}: {answers:?}");
        let admin = changed[0].cookie_pair();
        for demo in [&a, &b] {
            assert_eq!(
                demo.get("/me", Some(&admin)).field("role"),
                Some("admin"),
                "round {round}"
            );
        }
    }
}

#[cfg(unix)]
#[test]
fn a_store_failure_is_logged_once_per_request_and_answered_503() {
    let dir = TempDir::new("broken-store");
    let demo = Demo::start(&["--store", &dir.store_arg()]);
    let cookie = demo.login("alice");
    // Break the store under the running server: where its directory was,
    // a plain file, so every read fails with an I/O error.
    std::fs::remove_dir_all(&dir.0).unwrap();
    std::fs::write(&dir.0, b"not a directory").unwrap();

    assert_eq!(demo.get("/", Some(&cookie)).status, 503);
    // What a browser asks for next: answered without the store.
    assert_eq!(demo.get("/favicon.ico", Some(&cookie)).status, 404);
    assert_eq!(demo.post("/admin", Some(&cookie), "").status, 503);

    let deadline = Instant::now() + Duration::from_secs(5);
    while demo.log_lines("store failed").len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    // Give a duplicate line the time to show up, if there were one.
    std::thread::sleep(Duration::from_millis(200));
    let lines = demo.log_lines("store failed");
    assert_eq!(lines.len(), 2, "one line per failed request: {lines:#?}");
    for line in &lines {
        assert_eq!(line.matches("store failed").count(), 1, "said once: {line}");
        assert!(line.contains("Not a directory"), "the cause: {line}");
    }
    let _ = std::fs::remove_file(&dir.0);
}

#[test]
fn the_sessions_page_labels_devices_and_tells_two_sessions_apart() {
    let demo = Demo::start(&["--store", "memory"]);
    let chrome = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
                  Chrome/126.0.0.0 Safari/537.36";
    let login = |ua: &str| {
        let r = request(
            demo.addr,
            "POST",
            "/login",
            &[("User-Agent", ua)],
            Some("username=alice&password=latchkey"),
        )
        .unwrap();
        assert_eq!(r.status, 303);
        r.cookie_pair()
    };
    let laptop = login(chrome);
    let phone = login(chrome);
    let robot = login(&format!("Robot ({}) {}", "x; ".repeat(40), "y".repeat(300)));

    let page = demo.get("/sessions", Some(&laptop));
    assert_eq!(page.status, 200);
    let body = &page.body;
    assert_eq!(body.matches("Chrome on Linux").count(), 2, "{body}");
    assert!(!body.contains("AppleWebKit"), "no raw User-Agent: {body}");
    assert!(body.contains("Robot (x; x;"), "{body}");
    assert!(
        body.contains("…"),
        "a long one is cut with an ellipsis: {body}"
    );
    assert!(!body.contains(&"y".repeat(100)), "and cut short: {body}");
    // The two Chrome rows differ: each shows its fingerprint, and the
    // current one is marked.
    for cookie in [&laptop, &phone, &robot] {
        let fp = demo.get("/me", Some(cookie));
        let fp = fp.field("fingerprint").unwrap();
        assert!(body.contains(fp), "{fp} listed: {body}");
    }
    assert_eq!(body.matches("(this browser)").count(), 1, "{body}");
    assert!(body.contains("last seen"));
    // Long values wrap instead of widening the page.
    assert!(body.contains("td{overflow-wrap:anywhere}"), "{body}");
}
