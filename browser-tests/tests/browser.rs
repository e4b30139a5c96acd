//! The README's story in a real browser: headless Chromium, driven through
//! chromedriver (WebDriver), against the demo binary: log in with "Keep me
//! signed in", come back without the session cookie, confirm the password
//! before becoming admin, flash messages shown once, two sessions, log out
//! everywhere else, logout and Back, cross-site forms.
//!
//! Run it with `bash .ci/browser`, which installs Chromium and chromedriver
//! when they are missing and builds the demo first. By hand:
//!
//! ```sh
//! cargo build -p latchkey-demo
//! cargo test -p latchkey-browser-tests -- --include-ignored
//! ```
//!
//! It is `#[ignore]`d so that `cargo test --workspace` on a machine without
//! a browser reports it as ignored instead of passing without having run.
//! Run on purpose, it fails when something it needs is missing.
//!
//! What it needs, and where it looks:
//! - the demo: `$LATCHKEY_DEMO_BIN`, else `login_server` next to this
//!   test's `deps/` directory (where `cargo build -p latchkey-demo` puts it
//!   in the same target directory and profile);
//! - `$CHROMIUM` (default `/usr/bin/chromium`) and `$CHROMEDRIVER`
//!   (default `chromedriver` on `PATH`).
//!
//! Screenshots (and chromedriver's log) go to `$LATCHKEY_BROWSER_ARTIFACTS`
//! when set, and stay there; otherwise to a temporary directory that is
//! removed when the test passes and kept, its path printed, when it fails.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::wd::Capabilities;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;

/// Everything the story does must be over by then.
const WHOLE_TEST: Duration = Duration::from_secs(180);

/// How long to wait for a page to show what a step expects.
const PAGE_WAIT: Duration = Duration::from_secs(15);

const FINGERPRINT: Locator<'static> = Locator::XPath("//tr[th='session fingerprint']/td/code");

#[tokio::test(flavor = "current_thread")]
#[ignore = "needs chromium and chromedriver; run by .ci/browser"]
async fn the_readme_story_in_a_real_browser() {
    let artifacts = Artifacts::new();
    let demo = Demo::start();
    let driver = ChromeDriver::start(&artifacts.dir);
    let other_site = OtherSite::start(demo.addr);
    let outcome = tokio::time::timeout(WHOLE_TEST, story(&demo, &driver, &other_site, &artifacts))
        .await
        .unwrap_or_else(|_| panic!("the story took longer than {WHOLE_TEST:?}"));
    outcome.close().await;
    // Everything that writes into the artifacts directory ends first.
    drop(driver);
    drop(demo);
    artifacts.passed();
}

/// The browsers a story opened, closed when it is over (on a panic the
/// chromedriver guard kills them instead).
struct Browsers(Vec<Client>);

impl Browsers {
    async fn close(self) {
        for client in self.0 {
            let _ = client.close().await;
        }
    }
}

async fn story(
    demo: &Demo,
    driver: &ChromeDriver,
    other_site: &OtherSite,
    artifacts: &Artifacts,
) -> Browsers {
    let base = format!("http://{}", demo.addr);

    // 1. Open the site, log in through the form with "Keep me signed in"
    // ticked. A welcome flash shows once: a reload does not bring it back.
    let first = driver.browser().await;
    log_in(&first, &base, "alice", Remember::Yes).await;
    let page = body_text(&first).await;
    assert!(page.contains("alice"), "the page names the user: {page}");
    wait_for(&first, Locator::XPath(&flash("Welcome back, alice."))).await;
    let fp_login = text_of(&first, FINGERPRINT).await;
    assert_eq!(
        fp_login.len(),
        12,
        "a 12-hex-digit fingerprint: {fp_login:?}"
    );
    artifacts.screenshot(&first, "1-logged-in").await;
    first.refresh().await.expect("reload");
    wait_for(&first, FINGERPRINT).await;
    let page = body_text(&first).await;
    assert!(!page.contains("Welcome back"), "a flash shows once: {page}");
    assert!(
        !page.contains("restored from a remember-me token"),
        "{page}"
    );

    // 1b. The browser loses its session cookie (as when it restarts): the
    // remember-me cookie signs it in again, in a new session.
    let jar = cookie_names(&first).await;
    assert!(
        jar.contains(&"latchkey-session".to_owned())
            && jar.contains(&"latchkey-remember".to_owned()),
        "{jar:?}"
    );
    first
        .delete_cookie("latchkey-session")
        .await
        .expect("the session cookie is deleted");
    assert!(
        !cookie_names(&first)
            .await
            .contains(&"latchkey-session".to_owned())
    );
    first.refresh().await.expect("reload");
    let fp_user = text_of(&first, FINGERPRINT).await;
    assert_ne!(fp_user, fp_login, "a new session");
    let page = body_text(&first).await;
    assert!(page.contains("restored from a remember-me token"), "{page}");
    assert!(
        cookie_names(&first)
            .await
            .contains(&"latchkey-session".to_owned())
    );

    // 2. "Become admin": the demo runs with a 0-second threshold (and the
    // session was restored by a token anyway), so it asks for the password
    // first; then the privilege change gives the session a new ID.
    click(&first, "//button[.='Become admin']").await;
    let password = wait_for(&first, Locator::Css("input[name=password]")).await;
    let prompt = body_text(&first).await;
    assert!(prompt.contains("Confirm your password"), "{prompt}");
    assert!(prompt.contains("needs your password again"), "{prompt}");
    assert!(!prompt.contains("You are an admin"), "{prompt}");
    artifacts.screenshot(&first, "2-password-prompt").await;
    password
        .send_keys("latchkey")
        .await
        .expect("type the password");
    click(&first, "//button[.='Confirm and become admin']").await;
    wait_for(
        &first,
        Locator::XPath("//p[starts-with(., 'You are an admin')]"),
    )
    .await;
    wait_for(&first, Locator::XPath(&flash("You are now an admin."))).await;
    let fp_admin = text_of(&first, FINGERPRINT).await;
    assert_ne!(fp_admin, fp_user, "the fingerprint changes");
    assert!(body_text(&first).await.contains("admin"));
    artifacts.screenshot(&first, "2-admin").await;
    first.refresh().await.expect("reload");
    wait_for(&first, FINGERPRINT).await;
    assert!(!body_text(&first).await.contains("You are now an admin."));

    // 3. A second browser (its own WebDriver session, its own cookie jar)
    // logs in as the same user.
    let second = driver.browser().await;
    log_in(&second, &base, "alice", Remember::No).await;
    let fp_second = text_of(&second, FINGERPRINT).await;
    assert_ne!(fp_second, fp_admin);

    // 4. "Your sessions" lists both, and the session the first browser
    // lost its cookie to (it lives on until it expires or is ended); "log
    // out everywhere else" from the first ends the other two.
    click(&first, "//a[.='Your sessions']").await;
    wait_for(
        &first,
        Locator::XPath("//p[contains(., 'live session(s)')]"),
    )
    .await;
    let list = body_text(&first).await;
    assert!(list.contains("3 live session(s)"), "{list}");
    assert!(
        list.contains(&fp_admin) && list.contains(&fp_second) && list.contains(&fp_login),
        "all three sessions listed: {list}"
    );
    assert!(
        list.contains("Headless Chrome on Linux") || list.contains("Chrome on Linux"),
        "a readable device label: {list}"
    );
    artifacts.screenshot(&first, "3-sessions").await;
    click(&first, "//button[.='Log out everywhere else']").await;
    wait_for(
        &first,
        Locator::XPath("//p[contains(., '1 live session(s)')]"),
    )
    .await;
    wait_for(&first, Locator::XPath(&flash("Ended 2 other sessions."))).await;
    artifacts.screenshot(&first, "4-ended-others").await;
    first.refresh().await.expect("reload");
    wait_for(
        &first,
        Locator::XPath("//p[contains(., '1 live session(s)')]"),
    )
    .await;
    assert!(!body_text(&first).await.contains("Ended 2 other sessions."));
    second.refresh().await.expect("the second browser reloads");
    wait_for(&second, Locator::Css("input[name=username]")).await;
    let ended = body_text(&second).await;
    assert!(ended.contains("Your session ended"), "{ended}");
    assert!(ended.contains("ended from another device"), "{ended}");
    assert!(!ended.contains(&fp_second), "{ended}");

    // 5. Log out; Back must not show a logged-in page from a cache (every
    // page is `Cache-Control: no-store`). The list of sessions has a URL of
    // its own, so a cached copy of it would survive the logout page that
    // replaced the cached `/`.
    first.goto(&base).await.expect("the session page");
    wait_for(&first, FINGERPRINT).await;
    click(&first, "//button[.='Log out']").await;
    wait_for(&first, Locator::Css("input[name=username]")).await;
    let jar = cookie_names(&first).await;
    assert!(
        !jar.iter().any(|name| name.starts_with("latchkey-")),
        "logout clears both cookies: {jar:?}"
    );
    for (step, page) in [(1, "/"), (2, "/sessions")] {
        first.back().await.expect("Back");
        // Whatever Back shows, give it the time to show it.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let url = first.current_url().await.expect("the current URL");
        assert_eq!(url.path(), page, "Back #{step}");
        let shown = body_text(&first).await;
        assert!(
            !shown.contains(&fp_admin)
                && !shown.contains("You are an admin")
                && !shown.contains("live session(s)"),
            "Back #{step} shows a logged-in page after logout: {shown}"
        );
    }

    // 6. Another site (`localhost` is another site than `127.0.0.1`) posts
    // forms to the demo: refused with 403, and nothing changes. First as a
    // logged-in user who is not an admin...
    log_in(&first, &base, "bob", Remember::No).await;
    let fp_bob = text_of(&first, FINGERPRINT).await;
    let refused = other_site.submit(&first, "/admin").await;
    assert_eq!(refused.status, Some(403), "{refused:?}");
    assert!(refused.body.contains("refused"), "{refused:?}");
    first.goto(&format!("{base}/me")).await.expect("/me");
    let me = body_text(&first).await;
    assert!(me.contains("user=bob"), "{me}");
    assert!(me.contains("role=user"), "not made admin: {me}");
    assert!(me.contains(&fp_bob), "the session did not change: {me}");
    // ...then as a login (login CSRF would log the victim into the
    // attacker's account; it needs no cookie, so SameSite cannot stop it).
    let refused = other_site.submit(&first, "/login").await;
    assert_eq!(refused.status, Some(403), "{refused:?}");
    first.goto(&format!("{base}/me")).await.expect("/me");
    let me = body_text(&first).await;
    assert!(me.contains("user=bob"), "not logged in as mallory: {me}");
    // And a visitor with no session is not logged in by it either.
    let visitor = &second;
    let refused = other_site.submit(visitor, "/login").await;
    assert_eq!(refused.status, Some(403), "{refused:?}");
    visitor.goto(&format!("{base}/me")).await.expect("/me");
    let me = body_text(visitor).await;
    assert!(!me.contains("mallory"), "{me}");
    assert!(me.contains("rejected="), "still logged out: {me}");

    Browsers(vec![first, second])
}

/// Whether to tick "Keep me signed in".
#[derive(Clone, Copy, PartialEq)]
enum Remember {
    Yes,
    No,
}

/// Opens the site and logs in through its form, as a person would.
async fn log_in(c: &Client, base: &str, user: &str, remember: Remember) {
    c.goto(base).await.expect("the demo answers");
    let name = wait_for(c, Locator::Css("input[name=username]")).await;
    name.send_keys(user).await.expect("type the user name");
    let password = c
        .find(Locator::Css("input[name=password]"))
        .await
        .expect("a password field");
    password.send_keys("latchkey").await.expect("type");
    if remember == Remember::Yes {
        click(c, "//label[contains(., 'Keep me signed in')]/input").await;
    }
    click(c, "//button[.='Log in']").await;
    // The demo's own form must be accepted: a refusal shows a text page
    // without the session table, and this wait fails.
    let shown = c.wait().at_most(PAGE_WAIT).for_element(FINGERPRINT).await;
    if shown.is_err() {
        panic!(
            "logging in as {user} through the form did not show the session page: {}",
            body_text(c).await
        );
    }
}

/// Where a flash message shows on the page, as an XPath.
fn flash(message: &str) -> String {
    // Messages here hold no quote, so the XPath literal needs no escaping.
    assert!(!message.contains('\''), "{message}");
    format!("//p[contains(@class, 'flash') and .='{message}']")
}

/// The names of the cookies the browser holds for the current page.
async fn cookie_names(c: &Client) -> Vec<String> {
    let cookies = c.get_all_cookies().await.expect("the cookies");
    cookies.iter().map(|k| k.name().to_owned()).collect()
}

async fn click(c: &Client, xpath: &str) {
    let element = match c.find(Locator::XPath(xpath)).await {
        Ok(element) => element,
        Err(e) => panic!("{xpath} is not on the page ({e}):\n{}", body_text(c).await),
    };
    if let Err(e) = element.click().await {
        panic!("clicking {xpath}: {e}");
    }
}

async fn wait_for(c: &Client, what: Locator<'_>) -> fantoccini::elements::Element {
    match c.wait().at_most(PAGE_WAIT).for_element(what).await {
        Ok(e) => e,
        Err(e) => panic!(
            "{what:?} never showed ({e}); the page:\n{}",
            body_text(c).await
        ),
    }
}

async fn text_of(c: &Client, what: Locator<'_>) -> String {
    wait_for(c, what)
        .await
        .text()
        .await
        .expect("the element's text")
}

async fn body_text(c: &Client) -> String {
    match c.find(Locator::Css("body")).await {
        Ok(body) => body.text().await.unwrap_or_default(),
        Err(e) => format!("(no page: {e})"),
    }
}

/// Where screenshots and logs go; see the crate docs.
struct Artifacts {
    dir: PathBuf,
    /// A directory of our own, removed once the test has passed.
    temporary: bool,
    passed: bool,
}

impl Artifacts {
    fn new() -> Artifacts {
        let (dir, temporary) = match std::env::var_os("LATCHKEY_BROWSER_ARTIFACTS") {
            Some(dir) => (PathBuf::from(dir), false),
            None => (
                std::env::temp_dir().join(format!(
                    "latchkey-browser-{}-{}",
                    std::process::id(),
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .expect("a clock after 1970")
                        .as_nanos()
                )),
                true,
            ),
        };
        std::fs::create_dir_all(&dir).expect("the artifacts directory");
        Artifacts {
            dir,
            temporary,
            passed: false,
        }
    }

    async fn screenshot(&self, c: &Client, name: &str) {
        let png = c.screenshot().await.expect("a screenshot");
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        let path = self.dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("the screenshot is written");
        eprintln!("screenshot: {}", path.display());
    }

    fn passed(mut self) {
        self.passed = true;
    }
}

impl Drop for Artifacts {
    fn drop(&mut self) {
        match (self.temporary, self.passed) {
            (true, true) => {
                let _ = std::fs::remove_dir_all(&self.dir);
            }
            (true, false) => eprintln!(
                "screenshots and chromedriver's log kept in {}",
                self.dir.display()
            ),
            (false, _) => {}
        }
    }
}

/// The demo on a free loopback port with the memory store; killed on drop.
struct Demo {
    child: Child,
    addr: SocketAddr,
}

impl Demo {
    fn start() -> Demo {
        let bin = demo_binary();
        let mut child = Command::new(&bin)
            // Every login counts as old: "Become admin" asks for the
            // password.
            .args([
                "--port",
                "0",
                "--store",
                "memory",
                "--reauth-after-secs",
                "0",
            ])
            .env_remove("LATCHKEY_DEMO_TICKET_KEY")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("{} does not start: {e}", bin.display()));
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut first = String::new();
        let _ = stdout.read_line(&mut first);
        // Keep draining, so the server never blocks on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        let addr = first
            .trim()
            .strip_prefix("listening on http://")
            .and_then(|a| a.parse().ok());
        let Some(addr) = addr else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the demo did not start: {first:?}");
        };
        Demo { child, addr }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The demo binary of this workspace, built from the current source.
fn demo_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("LATCHKEY_DEMO_BIN") {
        return PathBuf::from(bin);
    }
    // This test runs from <target>/<profile>/deps/; `cargo build -p
    // latchkey-demo` with the same target directory and profile puts the
    // binary in <target>/<profile>/.
    let exe = std::env::current_exe().expect("the test knows its own path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("tests run from <target>/<profile>/deps");
    let bin = profile_dir.join(format!("login_server{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is missing: build the demo first (`cargo build -p latchkey-demo`, \
         as .ci/browser does) or name it in LATCHKEY_DEMO_BIN",
        bin.display()
    );
    bin
}

/// chromedriver on a free loopback port, in a process group of its own so
/// that the browsers it starts go with it; killed on drop.
struct ChromeDriver {
    child: Child,
    url: String,
    chromium: String,
}

impl ChromeDriver {
    fn start(logs: &Path) -> ChromeDriver {
        let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        assert!(
            Path::new(&chromium).exists(),
            "no Chromium at {chromium} (set CHROMIUM, or run .ci/browser, which installs it)"
        );
        let driver = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
        let port = free_port();
        let mut command = Command::new(&driver);
        command
            .arg(format!("--port={port}"))
            .arg(format!(
                "--log-path={}",
                logs.join("chromedriver.log").display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command.spawn().unwrap_or_else(|e| {
            panic!("{driver} does not start ({e}): install chromium-driver, or run .ci/browser")
        });
        let driver = ChromeDriver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            chromium,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen on port {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        driver
    }

    /// A new browser: its own WebDriver session, its own profile and so its
    /// own cookie jar.
    async fn browser(&self) -> Client {
        let capabilities: Capabilities = serde_json::from_value(serde_json::json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": self.chromium,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-dev-shm-usage",
                    "--window-size=1000,760",
                    "--no-first-run",
                    "--no-default-browser-check",
                ],
            },
        }))
        .expect("capabilities are a JSON object");
        ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .expect("chromedriver starts a headless Chromium")
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        // The whole group: chromedriver and every Chromium process it
        // started, even when the test panicked before closing them.
        #[cfg(unix)]
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// Another site: a tiny HTTP server on `localhost` (the demo is on
/// `127.0.0.1`, another site to the browser) whose pages post a form to
/// the demo as soon as they load, as a cross-site request forgery would.
struct OtherSite {
    origin: String,
}

/// What the browser showed after another site's form was posted.
#[derive(Debug)]
struct Refusal {
    /// The HTTP status of the page, as the browser saw it.
    status: Option<u64>,
    body: String,
}

impl OtherSite {
    fn start(demo: SocketAddr) -> OtherSite {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
        let port = listener.local_addr().expect("its address").port();
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let _ = serve_forgery(stream, demo);
            }
        });
        OtherSite {
            origin: format!("http://localhost:{port}"),
        }
    }

    /// Opens this site's page that posts to the demo's `path`; returns the
    /// demo's answer as the browser shows it.
    async fn submit(&self, c: &Client, path: &str) -> Refusal {
        let page = format!("{}/forge{path}", self.origin);
        c.goto(&page).await.expect("the other site's page");
        // The page submits itself; wait until the browser is on the demo.
        let deadline = Instant::now() + PAGE_WAIT;
        while c.current_url().await.expect("the current URL").host_str() != Some("127.0.0.1") {
            assert!(Instant::now() < deadline, "the forged form was not sent");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let status = c
            .execute(
                "return performance.getEntriesByType('navigation')[0].responseStatus;",
                vec![],
            )
            .await
            .ok()
            .and_then(|v| v.as_u64());
        Refusal {
            status,
            body: body_text(c).await,
        }
    }
}

/// Answers one request of the other site: `/forge/<demo path>` is a page
/// that posts a form to the demo's path at once.
fn serve_forgery(mut stream: TcpStream, demo: SocketAddr) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
        if stream.read(&mut byte)? == 0 {
            break;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    let path = head.split(' ').nth(1).unwrap_or("/");
    let (status, body) = match path.strip_prefix("/forge") {
        Some(target @ ("/login" | "/admin")) => (
            "200 OK",
            format!(
                "<!doctype html><title>another site</title>\
                 <form method=post action=\"http://{demo}{target}\">\
                 <input name=username value=mallory><input name=password value=latchkey>\
                 </form><script>document.forms[0].submit()</script>"
            ),
        ),
        _ => ("404 Not Found", "not found".to_owned()),
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}
